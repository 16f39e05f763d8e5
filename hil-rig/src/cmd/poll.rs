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
use crate::link::{Link, LinkArgs};
use crate::session::{CsvLog, Reading, Sample, interrupted, plural, summary};

/// Width of the value column of the table.
const VALUE_WIDTH: usize = 14;

#[derive(Args, Debug)]
pub struct Cmd {
    /// Time from the start of one poll to the start of the next
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = value_parser!(u64).range(1..))]
    interval_ms: u64,
    /// Poll this many times, then exit (default: until Ctrl-C)
    #[arg(long, value_name = "K", value_parser = value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Also write every poll to FILE as a CSV row of physical values
    /// (header `t_s,<name>[<unit>],...` with physical values; FILE is overwritten)
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Read only these registers (comma-separated names from the register map;
    /// default: every readable register)
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    registers: Vec<String>,

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
        let regs = select(&self.registers)?;
        let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
        let mut csv = match &self.csv {
            Some(path) => {
                let header: Vec<String> =
                    std::iter::once("t_s".to_string()).chain(regs.iter().map(|r| decode::column_name(r))).collect();
                Some(CsvLog::create(path, &header, &regs).map_err(|e| Failure::Usage(e.into()))?)
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

        let mut polls = 0;
        let mut stdout = io::stdout();
        let outcome = tokio::select! {
            r = self.poll_loop(&mut link, &regs, &blocks, csv.as_mut(), &mut stdout, &mut polls) => r,
            () = interrupted() => Ok(()),
        };
        println!("{}", summary("polls", polls, &link.counters()));
        outcome
    }

    /// Polls until `--count` is reached or the device fails ([`Sample::verdict`]: exit 1).
    async fn poll_loop<T>(
        &self,
        link: &mut Link<T>,
        regs: &[&'static RegDef],
        blocks: &[Block],
        mut csv: Option<&mut CsvLog>,
        out: &mut impl Write,
        polls: &mut u64,
    ) -> Result<(), Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut ticker = interval(Duration::from_millis(self.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let t0 = Instant::now();
        while self.count.is_none_or(|k| *polls < k) {
            ticker.tick().await;
            let t_s = t0.elapsed().as_secs_f64();
            let sample = Sample::read(link, regs, blocks).await;
            *polls += 1;

            write_table(out, *polls, t_s, regs, &sample.readings)
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
fn select(names: &[String]) -> Result<Vec<&'static RegDef>, Failure> {
    let readable = decode::readable(REGISTERS);
    if names.iter().all(|n| n.trim().is_empty()) {
        return Ok(readable);
    }
    let valid = || readable.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
    let mut out: Vec<&'static RegDef> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match by_name(name) {
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

/// One poll as a table: name, physical value, unit, set bits.
fn write_table(
    out: &mut impl Write,
    poll_no: u64,
    t_s: f64,
    regs: &[&'static RegDef],
    readings: &[Reading],
) -> io::Result<()> {
    let name_w = regs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    writeln!(out, "poll {poll_no}  t={t_s:.3} s")?;
    for (reg, reading) in regs.iter().zip(readings) {
        let name = reg.name;
        match reading {
            Reading::Value(raw) => match decode::bit_table(reg) {
                Some(names) => {
                    let bits = decode::bit_names(*raw as u16, names).join(" ");
                    let hex = format!("0x{:04X}", *raw as u16);
                    let line = format!("  {name:<name_w$}  {hex:>VALUE_WIDTH$} {}  {bits}", reg.unit);
                    writeln!(out, "{}", line.trim_end())?;
                }
                None => {
                    let v = decode::format_value(reg, *raw);
                    let line = format!("  {name:<name_w$}  {v:>VALUE_WIDTH$} {}", reg.unit);
                    writeln!(out, "{}", line.trim_end())?;
                }
            },
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
        write_table(&mut out, 7, 6.0004, &regs, &readings).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "poll 7  t=6.000 s");
        assert_eq!(lines[1], "  battery_voltage_mv          13.284 V");
        assert_eq!(lines[2], "  current_ma                  -1.234 A");
        assert_eq!(lines[3], "  status                      0x0023 bits  switch_on lvp_output soc_synced");
        assert_eq!(lines[4], "  faults                      0x0000 bits");
        assert_eq!(lines[5], "  uptime_s            no reply after 3 tries (timeout 500 ms)");
    }
}
