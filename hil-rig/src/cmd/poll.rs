//! `hil-rig poll`: read the board's registers periodically, print each poll as
//! a table, optionally log physical values to CSV.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, value_parser};
use firmware_core::map::{Access, REGISTERS, RegDef, by_name};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::Failure;
use crate::decode::{self, Block, MAX_REGS_PER_REQUEST};
use crate::exit::{Exit, Table};
use crate::link::{Link, LinkArgs};
use crate::session::{CsvLog, Reading, Sample, SampleArgs, interrupted, plural, summary};

/// Width of the value column of the table.
const VALUE_WIDTH: usize = 14;

/// `poll`'s exit codes, for `--help`.
pub const EXIT_CODES: &Table = &[
    (Exit::Ok, "ok (--count polls done, or Ctrl-C), at least --min-samples of them complete"),
    (
        Exit::Failed,
        "the first poll read nothing (no reply, exceptions only, garbled replies), the port failed while polling, \
         or fewer than --min-samples polls (default 1) read every register; later timeouts are counted, not fatal",
    ),
    (Exit::BadInput, "bad usage, or the serial port cannot be opened"),
];

#[derive(Args, Debug)]
pub struct Cmd {
    /// Time from the start of one poll to the start of the next
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = value_parser!(u64).range(1..))]
    interval_ms: u64,
    /// Poll this many times, then exit (default: until Ctrl-C)
    #[arg(long, value_name = "K", value_parser = value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Also write every poll to FILE as a CSV row (header
    /// `t_s,<physical name>[<unit>],...` with physical values, or with --raw
    /// `t_s,<register name>,...` with raw values; FILE is overwritten)
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Read only these registers (comma-separated names from the register map)
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', conflicts_with_all = ["group", "all"])]
    registers: Vec<String>,
    /// Read a group of registers: bench (the default: current, voltage,
    /// temperature, SOC, status with the switch and outputs, faults) or a
    /// section of the map: identification, measurements, soc, diagnostics,
    /// fault-log, settings, calibration
    #[arg(long, value_name = "NAME", conflicts_with = "all")]
    group: Option<String>,
    /// Read every readable register
    #[arg(long)]
    all: bool,
    /// Show the register map's names with raw (unscaled) values, instead of
    /// physical names (battery_voltage_v) with physical values and units
    #[arg(long)]
    raw: bool,

    #[command(flatten)]
    samples: SampleArgs,

    #[command(flatten)]
    link: LinkArgs,
}

impl Cmd {
    #[cfg(test)]
    pub fn link(&self) -> &LinkArgs {
        &self.link
    }

    #[cfg(test)]
    pub fn register_names(&self) -> &[String] {
        &self.registers
    }

    pub async fn run(self) -> Result<(), Failure> {
        let regs = match (&self.group, self.all) {
            (_, true) => decode::readable(REGISTERS),
            (Some(g), false) => decode::group(REGISTERS, g)
                .ok_or_else(|| Failure::Usage(anyhow!("unknown group {g:?}; groups: {}", decode::group_names())))?,
            (None, false) if self.registers.iter().all(|n| n.trim().is_empty()) => {
                decode::group(REGISTERS, "bench").expect("the bench group")
            }
            (None, false) => select(&self.registers)?,
        };
        let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
        let mut csv = match &self.csv {
            Some(path) => {
                let name = |r: &&RegDef| if self.raw { r.name.to_string() } else { decode::column_name(r) };
                let header: Vec<String> = std::iter::once("t_s".to_string()).chain(regs.iter().map(name)).collect();
                let log = if self.raw {
                    CsvLog::create_raw(path, &header, &regs)
                } else {
                    CsvLog::create(path, &header, &regs)
                };
                Some(log.map_err(|e| Failure::Usage(e.into()))?)
            }
            None => None,
        };
        let mut link = Link::open(&self.link).map_err(|e| Failure::Usage(e.into()))?;
        println!(
            "polling {}: {} in {}, every {} ms",
            self.link.describe(),
            plural(regs.len(), "register"),
            plural(blocks.len(), "request"),
            self.interval_ms
        );

        let (mut polls, mut complete) = (0, 0);
        let mut stdout = io::stdout();
        let outcome = tokio::select! {
            r = self.poll_loop(&mut link, &regs, &blocks, csv.as_mut(), &mut stdout, (&mut polls, &mut complete)) => r,
            () = interrupted() => Ok(()),
        };
        println!("{}  complete polls {complete}", summary("polls", polls, &link.counters()));
        outcome?;
        self.samples
            .enough("polls (every register read)", complete, polls, &link.counters())
            .map_err(|e| Failure::Device(e.into()))
    }

    /// Polls until `--count` is reached or the device fails ([`Sample::verdict`]: exit 1).
    async fn poll_loop<T>(
        &self,
        link: &mut Link<T>,
        regs: &[&'static RegDef],
        blocks: &[Block],
        mut csv: Option<&mut CsvLog>,
        out: &mut impl Write,
        (polls, complete): (&mut u64, &mut u64),
    ) -> Result<(), Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut ticker = interval(Duration::from_millis(self.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let t0 = Instant::now();
        while self.count.is_none_or(|k| *polls < k) {
            ticker.tick().await;
            let tick_s = t0.elapsed().as_secs_f64();
            let mut sample = Sample::read(link, regs, blocks).await;
            *polls += 1;
            // The poll's time is when its first register was read.
            sample.drop_skewed(regs, 0, self.samples.max_skew());
            let t_s = sample.read_at(0).map_or(tick_s, |t| (t - t0).as_secs_f64());
            *complete += u64::from(sample.complete());

            write_table(out, *polls, t_s, regs, &sample.readings, self.raw)
                .map_err(|e| Failure::Device(anyhow!("cannot write to stdout: {e}")))?;
            if let Some(csv) = csv.as_deref_mut() {
                csv.row(t_s, &sample.readings).map_err(|e| Failure::Device(e.into()))?;
            }
            sample.verdict(*polls, &self.link, blocks).map_err(|e| Failure::Device(e.into()))?;
        }
        Ok(())
    }
}

/// Resolves `--registers` names; none means every readable register.
/// Both the map's names and the physical names poll shows are taken.
fn select(names: &[String]) -> Result<Vec<&'static RegDef>, Failure> {
    let readable = decode::readable(REGISTERS);
    if names.iter().all(|n| n.trim().is_empty()) {
        return Ok(readable);
    }
    let valid = || readable.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
    let mut out: Vec<&'static RegDef> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        let found = by_name(name).or_else(|| REGISTERS.iter().find(|r| decode::physical_name(r) == name));
        match found {
            Some(r) if r.access == Access::W => {
                return Err(Failure::Usage(anyhow!(
                    "{name} is a write-only command register and reads as 0; readable registers: {}",
                    valid()
                )));
            }
            Some(r) => {
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(r);
                }
            }
            None => {
                return Err(Failure::Usage(anyhow!("unknown register {name:?}; valid names: {}", valid())));
            }
        }
    }
    Ok(out)
}

/// One poll as a table: the physical name, value and unit, and what the
/// value means (set bits, an enumeration's name, a special value such as
/// "never"); with `raw`, the map's name and the raw value.
fn write_table(
    out: &mut impl Write,
    poll_no: u64,
    t_s: f64,
    regs: &[&'static RegDef],
    readings: &[Reading],
    raw: bool,
) -> io::Result<()> {
    let names: Vec<String> =
        regs.iter().map(|r| if raw { r.name.to_string() } else { decode::physical_name(r) }).collect();
    let name_w = names.iter().map(String::len).max().unwrap_or(0);
    writeln!(out, "poll {poll_no}  t={t_s:.3} s")?;
    for ((reg, reading), name) in regs.iter().zip(readings).zip(&names) {
        match reading {
            Reading::Value(v) => {
                let meaning = decode::meaning(reg, *v);
                let (value, unit) = match (decode::bit_table(reg), raw) {
                    (Some(_), _) => (format!("0x{:04X}", *v as u16), ""),
                    (None, true) => (v.to_string(), ""),
                    // A special value (never) is not a quantity: no number, no unit.
                    (None, false) if decode::special_value(reg).is_some_and(|(s, _)| s == *v) => {
                        (meaning.clone().unwrap_or_default(), "")
                    }
                    (None, false) => (decode::format_value(reg, *v), if reg.unit == "bits" { "" } else { reg.unit }),
                };
                let meaning = meaning.filter(|m| *m != value).map_or(String::new(), |m| format!("  {m}"));
                let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
                let line = format!("  {name:<name_w$}  {value:>VALUE_WIDTH$}{unit}{meaning}");
                writeln!(out, "{}", line.trim_end())?;
            }
            Reading::Failed(why) => writeln!(out, "  {name:<name_w$}  {why}")?,
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_names_selects_every_readable_register() {
        let all = select(&[]).unwrap();
        assert_eq!(all.len(), REGISTERS.iter().filter(|r| r.access != Access::W).count());
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let Err(Failure::Usage(e)) = select(&names(&["battery_voltage_mv", "volts"])) else {
            panic!("expected a usage error");
        };
        let msg = e.to_string();
        assert!(msg.contains("\"volts\""), "{msg}");
        assert!(msg.contains("current_ma") && msg.contains("faults"), "{msg}");
        assert!(!msg.contains("clear_faults"), "write-only names are not offered: {msg}");
    }

    #[test]
    fn write_only_names_are_refused_and_duplicates_dropped() {
        assert!(matches!(select(&names(&["clear_faults"])), Err(Failure::Usage(_))));
        let sel = select(&names(&["status", " status", "faults"])).unwrap();
        let got: Vec<&str> = sel.iter().map(|r| r.name).collect();
        assert_eq!(got, ["status", "faults"]);
    }

    fn regs(v: &[&str]) -> Vec<&'static RegDef> {
        v.iter().map(|n| by_name(n).unwrap()).collect()
    }

    #[test]
    fn table_shows_scaled_values_units_and_bit_names() {
        let regs = regs(&["battery_voltage_mv", "current_ma", "status", "faults", "uptime_s"]);
        let readings = [
            Reading::Value(13284),
            Reading::Value(-1234),
            Reading::Value(0b100011),
            Reading::Value(0),
            Reading::Failed("no reply after 3 tries (timeout 500 ms)".into()),
        ];
        let mut out = Vec::new();
        write_table(&mut out, 7, 6.0004, &regs, &readings, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "poll 7  t=6.000 s");
        assert_eq!(lines[1], "  battery_voltage_v          13.284 V");
        assert_eq!(lines[2], "  current_a                  -1.234 A");
        assert_eq!(lines[3], "  status                     0x0023  switch_on lvp_output soc_synced");
        assert_eq!(lines[4], "  faults                     0x0000");
        assert_eq!(lines[5], "  uptime_s           no reply after 3 tries (timeout 500 ms)");
    }

    #[test]
    fn issue_21_names_agree_with_values_and_meanings_are_shown() {
        // Before: `battery_voltage_mv 13.205 V`, `lvp_delay_ms 2.000 s`,
        // `internal_resistance_uohm 0.000000 Ω`, `time_since_full_s 4294967295 s`.
        let regs = regs(&["battery_voltage_mv", "lvp_delay_ms", "time_since_full_s", "aux_mode", "soc_method"]);
        let readings = [
            Reading::Value(13205),
            Reading::Value(2000),
            Reading::Value(4_294_967_295),
            Reading::Value(2),
            Reading::Value(0),
        ];
        let mut out = Vec::new();
        write_table(&mut out, 1, 0.0, &regs, &readings, false).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "  battery_voltage_v          13.205 V");
        assert_eq!(lines[2], "  lvp_delay_s                 2.000 s");
        assert_eq!(lines[3], "  time_since_full_s           never");
        assert_eq!(lines[4], "  aux_mode                        2  heating");
        assert_eq!(lines[5], "  soc_method                      0  Ah");
        let mut out = Vec::new();
        write_table(&mut out, 1, 0.0, &regs, &readings, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "  battery_voltage_mv           13205");
        assert_eq!(lines[3], "  time_since_full_s       4294967295  never");
        assert_eq!(lines[4], "  aux_mode                         2  heating");
    }
}
