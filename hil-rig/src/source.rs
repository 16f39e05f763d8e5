//! Where the board's samples come from: a live board on a serial link, or a
//! recording made by `hil-rig record`. Either way a sample is every readable
//! register's raw value (or nothing, when it could not be read), in the
//! column order of `record`.

use std::path::Path;

use firmware_core::map::{RegDef, RegId};

use crate::recording::{Recording, RecordingError};

/// One sample of the board.
#[derive(Clone, Debug, PartialEq)]
pub struct BoardSample {
    /// Seconds on the source's own clock: since the start of a live session,
    /// or a recording's `time_s`.
    pub time_s: f64,
    /// Raw register values, one per register of [`Registers`] (`None`: not read).
    pub raw: Vec<Option<i64>>,
    /// The recording's line, for messages.
    pub line: Option<usize>,
}

/// The registers a sample holds, in order.
#[derive(Clone, Debug)]
pub struct Registers {
    pub list: Vec<&'static RegDef>,
}

impl Registers {
    pub fn new(list: Vec<&'static RegDef>) -> Self {
        Self { list }
    }

    /// Index of the register `id` in a sample.
    pub fn index(&self, id: RegId) -> Option<usize> {
        self.list.iter().position(|r| r.id == id)
    }

    /// The raw value of `id` in `raw`.
    pub fn raw(&self, raw: &[Option<i64>], id: RegId) -> Option<i64> {
        self.index(id).and_then(|k| raw.get(k).copied().flatten())
    }

    /// The physical value of `id` in `raw`.
    pub fn value(&self, raw: &[Option<i64>], id: RegId) -> Option<f64> {
        let k = self.index(id)?;
        raw.get(k).copied().flatten().map(|v| self.list[k].to_physical(v))
    }
}

/// The samples of a recording, with each column matched to its register by
/// the names `hil-rig record` writes (`header[k + 1]` for register `k`).
/// Columns the file lacks read as not read; the values are turned back into
/// raw register values (`value / scale`, rounded).
pub fn from_recording(path: &Path, header: &[String], regs: &Registers) -> Result<Vec<BoardSample>, RecordingError> {
    let rec = Recording::read(path)?;
    let names = header.get(1..).unwrap_or_default();
    let columns: Vec<Option<usize>> = names.iter().map(|name| rec.column(name)).collect();
    // The measurements must be there, matched to their registers or not.
    let needed = [(RegId::Current, crate::recording::CURRENT), (RegId::BatteryVoltage, crate::recording::VOLTAGE)];
    for (id, name) in needed {
        if regs.index(id).and_then(|k| columns.get(k).copied().flatten()).is_none() {
            rec.require(name)?;
        }
    }
    Ok(rec
        .rows
        .iter()
        .map(|row| BoardSample {
            time_s: row.time_s,
            raw: columns
                .iter()
                .zip(&regs.list)
                .map(|(c, reg)| c.and_then(|c| row.values[c]).map(|v| (v / reg.scale).round() as i64))
                .collect(),
            line: Some(row.line),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_and_regs() -> (Vec<String>, Registers) {
        let (header, regs) = crate::recording::record_columns().unwrap();
        (header, Registers::new(regs))
    }

    #[test]
    fn a_recording_reads_back_as_raw_register_values() {
        let (header, regs) = header_and_regs();
        let dir = std::env::temp_dir().join(format!("hil-rig-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.csv");
        std::fs::write(
            &path,
            "time_s,current_A,voltage_V,temp_C,soc_pct,uptime_s[s],status[bits]\n\
             0.0,-20.000,13.104,24.9,59.99,12,35\n\
             # 1.0,,13.103,24.9,59.98,13,\n",
        )
        .unwrap();
        let s = from_recording(&path, &header, &regs).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(regs.raw(&s[0].raw, RegId::Current), Some(-20_000));
        assert_eq!(regs.raw(&s[0].raw, RegId::BatteryVoltage), Some(13_104));
        assert_eq!(regs.raw(&s[0].raw, RegId::Temperature), Some(249));
        assert_eq!(regs.raw(&s[0].raw, RegId::Soc), Some(5_999));
        assert_eq!(regs.raw(&s[0].raw, RegId::Uptime), Some(12));
        assert_eq!(regs.raw(&s[0].raw, RegId::Status), Some(35));
        assert_eq!(regs.raw(&s[0].raw, RegId::Faults), None, "no such column");
        assert!((regs.value(&s[0].raw, RegId::BatteryVoltage).unwrap() - 13.104).abs() < 1e-12);
        assert_eq!(regs.raw(&s[1].raw, RegId::Current), None, "the commented row's current");
        assert_eq!((s[1].time_s, s[1].line), (1.0, Some(3)));

        std::fs::write(&path, "time_s,current_A,temp_C\n0,1,20\n").unwrap();
        let e = from_recording(&path, &header, &regs).unwrap_err().to_string();
        assert!(e.contains("no column \"voltage_V\""), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
