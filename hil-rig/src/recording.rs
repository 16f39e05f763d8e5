//! Reading a recording written by `hil-rig record` (or any CSV of the same
//! shape): a header of column names, `time_s` first, then one value per
//! column; an empty cell is a value that could not be read. Its columns and
//! rows are made by [`record_columns`] and [`format_row`], whatever the
//! register source (a board on a serial link, or a twin in a test).
//!
//! A row written as a `# ` comment is a sample whose current could not be
//! read: it is kept (its other cells may hold values) and marked
//! [`Row::commented`]; other comment lines (free text) and blank lines are
//! skipped. Times must increase strictly.

use std::path::{Path, PathBuf};

use firmware_core::map::{REGISTERS, RegDef, RegId};

use crate::decode;

/// The columns `hil-rig record` leads with, after `time_s`.
pub const CURRENT: &str = "current_A";
/// Battery voltage column.
pub const VOLTAGE: &str = "voltage_V";
/// Battery temperature column.
pub const TEMPERATURE: &str = "temp_C";
/// State of charge column (the board's SOC register, %).
pub const SOC: &str = "soc_pct";

/// The leading columns after `time_s`, in order: the register and its column.
/// `current_A` is what a `kind = "profile"` segment reads.
pub const LEADING: [(RegId, &str); 4] =
    [(RegId::Current, CURRENT), (RegId::BatteryVoltage, VOLTAGE), (RegId::Temperature, TEMPERATURE), (RegId::Soc, SOC)];

/// The header `hil-rig record` writes and the register of each column after
/// `time_s`: the leading four ([`LEADING`]), then every other readable
/// register in map order as `name[unit]`. Err names a leading register the
/// map lacks.
pub fn record_columns() -> Result<(Vec<String>, Vec<&'static RegDef>), String> {
    let readable = decode::readable(REGISTERS);
    let mut header = vec!["time_s".to_string()];
    let mut regs = Vec::with_capacity(readable.len());
    for (id, column) in LEADING {
        let reg = readable
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| format!("the register map has no readable {id:?} register for {column}"))?;
        header.push(column.to_string());
        regs.push(*reg);
    }
    for reg in readable {
        if !LEADING.iter().any(|(id, _)| *id == reg.id) {
            header.push(decode::column_name(reg));
            regs.push(reg);
        }
    }
    Ok((header, regs))
}

/// One row as `hil-rig record` writes it: the time with ms resolution, then
/// the physical value of each register of `regs` from its raw value in
/// `raws` (`None`, not read: an empty cell).
pub fn format_row(t_s: f64, regs: &[&RegDef], raws: &[Option<i64>]) -> String {
    let mut line = format!("{t_s:.3}");
    for (reg, raw) in regs.iter().zip(raws) {
        line.push(',');
        if let Some(raw) = raw {
            line.push_str(&decode::format_value(reg, *raw));
        }
    }
    line
}

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// The file cannot be read.
    #[error("cannot read recording {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The content is malformed.
    #[error("{path}:{line}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One sample of a recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// 1-based line number in the file.
    pub line: usize,
    /// Seconds from the start of the recording.
    pub time_s: f64,
    /// One value per column after `time_s` (`None`: not read).
    pub values: Vec<Option<f64>>,
    /// Written as a `# ` comment: the current was not read.
    pub commented: bool,
}

/// A whole recording in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct Recording {
    /// Where it was read from.
    pub path: PathBuf,
    /// Column names after `time_s`.
    pub columns: Vec<String>,
    /// The samples, in time order.
    pub rows: Vec<Row>,
}

impl Recording {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Recording, RecordingError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| RecordingError::Io { path: path.to_owned(), source })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a recording; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Recording, RecordingError> {
        let err = |line: usize, message: String| RecordingError::Format { path: path.to_owned(), line, message };
        let mut columns: Option<Vec<String>> = None;
        let mut rows: Vec<Row> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                continue;
            }
            let (body, commented) = match trimmed.strip_prefix('#') {
                Some(rest) => (rest.trim(), true),
                None => (trimmed, false),
            };
            let Some(cols) = &columns else {
                if commented {
                    continue;
                }
                let names: Vec<String> = body.split(',').map(|c| c.trim().to_string()).collect();
                if names.first().map(String::as_str) != Some("time_s") {
                    return Err(err(line, format!("the header must start with time_s, found {:?}", names[0])));
                }
                if let Some(dup) = names.iter().enumerate().find(|(k, n)| names[..*k].contains(n)) {
                    return Err(err(line, format!("column {:?} appears twice", dup.1)));
                }
                columns = Some(names[1..].to_vec());
                continue;
            };
            let mut cells = body.split(',');
            let first = cells.next().unwrap_or("").trim();
            let Ok(time_s) = first.parse::<f64>() else {
                if commented {
                    continue; // free text
                }
                return Err(err(line, format!("time {first:?} is not a number")));
            };
            if !time_s.is_finite() {
                return Err(err(line, format!("time {first:?} is not finite")));
            }
            if let Some(prev) = rows.last()
                && time_s <= prev.time_s
            {
                return Err(err(
                    line,
                    format!("time {time_s} s does not follow {} s (line {})", prev.time_s, prev.line),
                ));
            }
            let mut values = Vec::with_capacity(cols.len());
            for (k, cell) in cells.enumerate() {
                let cell = cell.trim();
                let Some(name) = cols.get(k) else {
                    return Err(err(line, format!("{} cells for {} columns", k + 2, cols.len() + 1)));
                };
                if cell.is_empty() {
                    values.push(None);
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(v) if v.is_finite() => values.push(Some(v)),
                    _ => return Err(err(line, format!("{name}: {cell:?} is not a finite number"))),
                }
            }
            if values.len() != cols.len() {
                return Err(err(line, format!("{} cells for {} columns", values.len() + 1, cols.len() + 1)));
            }
            rows.push(Row { line, time_s, values, commented });
        }
        let Some(columns) = columns else {
            return Err(err(text.lines().count().max(1), "no header line (time_s,…)".to_string()));
        };
        if rows.is_empty() {
            return Err(err(text.lines().count().max(1), "no samples after the header".to_string()));
        }
        Ok(Recording { path: path.to_owned(), columns, rows })
    }

    /// The index of `name` in [`Row::values`]. A register's column
    /// ([`decode::column_name`]) is also found under the name recordings
    /// made before issue 21 gave it ([`decode::legacy_column_name`]).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name).or_else(|| {
            let reg = REGISTERS.iter().find(|r| decode::column_name(r) == name)?;
            let legacy = decode::legacy_column_name(reg);
            self.columns.iter().position(|c| *c == legacy)
        })
    }

    /// The index of `name`, or an error naming the file and the missing column.
    pub fn require(&self, name: &str) -> Result<usize, RecordingError> {
        self.column(name).ok_or_else(|| RecordingError::Format {
            path: self.path.clone(),
            line: 1,
            message: format!("no column {name:?} (columns: time_s,{})", self.columns.join(",")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REC: &str = "\
time_s,current_A,voltage_V,temp_C,soc_pct,status
0.000,-10.000,13.250,25.0,80.00,1
# 1.000,,13.249,25.0,80.00,
2.000,-10.000,,25.0,79.99,1
";

    fn parse(text: &str) -> Result<Recording, RecordingError> {
        Recording::parse(text, Path::new("r.csv"))
    }

    #[test]
    fn reads_values_holes_and_commented_rows() {
        let r = parse(REC).unwrap();
        assert_eq!(r.columns, ["current_A", "voltage_V", "temp_C", "soc_pct", "status"]);
        assert_eq!(r.rows.len(), 3);
        assert!(r.rows[1].commented);
        assert_eq!(r.rows[1].values[0], None);
        assert_eq!(r.rows[1].values[1], Some(13.249));
        assert_eq!(r.rows[2].line, 4);
        let v = r.require(VOLTAGE).unwrap();
        let times: Vec<f64> = r.rows.iter().filter(|row| row.values[v].is_some()).map(|row| row.time_s).collect();
        assert_eq!(times, [0.0, 1.0]);
        assert!(r.require("nope").unwrap_err().to_string().contains("no column \"nope\""));
    }

    #[test]
    fn free_text_comments_before_and_after_the_header_are_skipped() {
        let r = parse("# recorded by hil-rig\ntime_s,current_A\n# note: a pause\n0,1\n1,2\n").unwrap();
        assert_eq!(r.rows.len(), 2);
    }

    #[test]
    fn malformed_files_name_the_line_and_the_cause() {
        let cases = [
            ("current_A,time_s\n0,1\n", ":1: the header must start with time_s"),
            ("time_s,a,a\n0,1,2\n", "column \"a\" appears twice"),
            ("time_s,a\n0,1\n0,2\n", ":3: time 0 s does not follow 0 s (line 2)"),
            ("time_s,a\nx,1\n", ":2: time \"x\" is not a number"),
            ("time_s,a\n0,1,2\n", ":2: 3 cells for 2 columns"),
            ("time_s,a,b\n0,1\n", ":2: 2 cells for 3 columns"),
            ("time_s,a\n0,NaN\n", "a: \"NaN\" is not a finite number"),
            ("time_s,a\n", "no samples"),
            ("", "no header"),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with("r.csv:"), "{e}");
        }
    }

    #[test]
    fn rows_are_written_as_record_writes_them_and_read_back() {
        let (header, regs) = record_columns().unwrap();
        let mut raws = vec![None; regs.len()];
        raws[0] = Some(-1234); // current_ma
        raws[1] = Some(13_284); // battery_voltage_mv
        raws[3] = Some(5_000); // soc_centipct
        let row = format_row(1.0004, &regs, &raws);
        assert!(row.starts_with("1.000,-1.234,13.284,,50.00,"), "{row}");
        let r = Recording::parse(&format!("{}\n{row}\n", header.join(",")), Path::new("r.csv")).unwrap();
        assert_eq!(r.rows[0].values[..4], [Some(-1.234), Some(13.284), None, Some(50.0)]);
        assert_eq!(r.columns.len(), regs.len());
    }

    #[test]
    fn issue_21_columns_say_the_physical_unit_and_old_names_are_still_read() {
        let (header, _) = record_columns().unwrap();
        assert!(header.contains(&"remaining_ah[Ah]".to_string()), "{header:?}");
        assert!(header.contains(&"lvp_delay_s[s]".to_string()), "{header:?}");
        assert!(!header.iter().any(|h| h.contains("_mah[") || h.contains("_mv[") || h.contains("_ms[")), "{header:?}");
        let old = parse("time_s,current_A,remaining_mah[Ah]\n0,1,2\n").unwrap();
        assert_eq!(old.column("remaining_ah[Ah]"), Some(1));
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let e = Recording::read(Path::new("/nonexistent/rec.csv")).unwrap_err().to_string();
        assert!(e.contains("cannot read recording /nonexistent/rec.csv"), "{e}");
    }
}
