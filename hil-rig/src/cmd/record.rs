//! `hil-rig record`: record a board session (every readable register, as
//! physical values) into a CSV that `smartpro-sim run` replays as a
//! `kind = "profile"` segment.
//!
//! The file's first columns are the profile's: `time_s` (from the first
//! sample) and `current_A` (+ = charge), then `voltage_V`, `temp_C` and
//! `soc_pct`, then every other readable register of the map as `name[unit]`.
//! Each row is flushed as soon as it is read, so a Ctrl-C, the end of
//! `--duration` or a vanished port loses nothing already recorded.
//!
//! A sample whose current could not be read (timeout, CRC error, exception)
//! is still written, with empty cells for what was not read, but as a
//! `# ` comment line: the profile reader skips comments (the previous current
//! is held) and would refuse an empty current.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, value_parser};
use firmware_core::map::{REGISTERS, RegDef};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use crate::Failure;
use crate::decode::{self, Block, MAX_REGS_PER_REQUEST};
use crate::exit::{Exit, Table};
use crate::link::{Link, LinkArgs};
use crate::recording;
use crate::session::{CsvLog, Reading, Sample, SampleArgs, interrupted, plural, summary};
use smartpro_sim::serial;

/// `record`'s exit codes, for `--help`.
pub const EXIT_CODES: &Table = &[
    (Exit::Ok, "ok (--duration elapsed, or Ctrl-C), at least --min-samples rows with a current"),
    (
        Exit::Failed,
        "the first sample read nothing (no reply, exceptions only, garbled replies), the port failed while \
         recording, or fewer than --min-samples rows (default 1) hold a current; later timeouts and CRC errors \
         are counted and their cells left empty, not fatal. Rows already written are kept (each is flushed at once)",
    ),
    (Exit::BadInput, "bad usage, the serial port cannot be opened, or FILE cannot be created"),
];

/// The end of `record --help`: the exit codes, and the rows that are comments.
pub fn help() -> String {
    crate::exit::help(EXIT_CODES)
        + "\n\nA row whose current could not be read is written as a `# ` comment, which the profile reader of \
           `smartpro-sim run` skips (the previous current holds)."
}

#[derive(Args, Debug)]
pub struct Cmd {
    /// CSV file to write (overwritten): `time_s,current_A,voltage_V,temp_C,soc_pct`,
    /// then every other readable register as `name[unit]`; replay it with a
    /// scenario segment `kind = "profile"`, `csv = "FILE"`
    #[arg(short = 'o', long, value_name = "FILE")]
    out: PathBuf,
    /// Stop after this many seconds (default: until Ctrl-C)
    #[arg(long, value_name = "S", value_parser = serial::duration_parser())]
    duration: Option<f64>,
    /// Time from the start of one sample to the start of the next
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = value_parser!(u64).range(1..))]
    interval_ms: u64,

    #[command(flatten)]
    samples: SampleArgs,

    #[command(flatten)]
    link: LinkArgs,
}

/// The CSV header and the register of each column after the time: the
/// leading four, then every other readable register in map order
/// ([`recording::record_columns`]).
pub(crate) fn columns() -> Result<(Vec<String>, Vec<&'static RegDef>), Failure> {
    recording::record_columns().map_err(|e| Failure::Usage(anyhow!(e)))
}

/// What a recording wrote, for the summary at exit.
#[derive(Clone, Copy, Debug, Default)]
struct Rows {
    /// Rows written, comment rows included.
    written: u64,
    /// Rows with at least one empty cell.
    incomplete: u64,
    /// Rows without a current, written as comments.
    no_current: u64,
    /// Values left out: read too far from their row's current (`--max-skew-ms`).
    skewed: u64,
}

impl Cmd {
    #[cfg(test)]
    pub fn link(&self) -> &LinkArgs {
        &self.link
    }

    pub async fn run(self) -> Result<(), Failure> {
        let (header, regs) = columns()?;
        let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
        let mut link = Link::open(&self.link).map_err(|e| Failure::Usage(e.into()))?;
        let mut log = CsvLog::create(&self.out, &header, &regs).map_err(|e| Failure::Usage(e.into()))?;
        let until = match self.duration {
            Some(d) => format!("for {d} s"),
            None => "until Ctrl-C".to_string(),
        };
        println!(
            "recording {} to {}: {} in {}, every {} ms, {until}",
            self.link.describe(),
            self.out.display(),
            plural(regs.len(), "register"),
            plural(blocks.len(), "request"),
            self.interval_ms
        );

        let t0 = Instant::now();
        let mut rows = Rows::default();
        let deadline = self.deadline(t0);
        let outcome = tokio::select! {
            biased;
            () = stop_at(deadline) => Ok(()),
            r = self.record_loop(t0, &mut link, &regs, &blocks, &mut log, &mut rows) => r,
            () = interrupted() => Ok(()),
        };
        println!(
            "{}  incomplete rows {}  rows without current {}  skewed values {}",
            summary("rows", rows.written, &link.counters()),
            rows.incomplete,
            rows.no_current,
            rows.skewed
        );
        outcome?;
        let data_rows = rows.written - rows.no_current;
        self.samples
            .enough("rows (with a current)", data_rows, rows.written, &link.counters())
            .map_err(|e| Failure::Device(e.into()))
    }

    /// The end of `--duration` for a recording started at `t0` (none for a
    /// duration beyond what the clock can count: until Ctrl-C).
    fn deadline(&self, t0: Instant) -> Option<Instant> {
        self.duration.and_then(|d| Duration::try_from_secs_f64(d).ok()).and_then(|d| t0.checked_add(d))
    }

    /// Samples every `--interval-ms` and writes each sample at once; ends
    /// only on a device failure (see [`Sample::verdict`]).
    async fn record_loop<T>(
        &self,
        t0: Instant,
        link: &mut Link<T>,
        regs: &[&'static RegDef],
        blocks: &[Block],
        log: &mut CsvLog,
        rows: &mut Rows,
    ) -> Result<(), Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let deadline = self.deadline(t0);
        let mut ticker = interval_at(t0, Duration::from_millis(self.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // No sample is started at or after the end of `--duration`.
                return Ok(());
            }
            let tick_s = t0.elapsed().as_secs_f64();
            let mut sample = Sample::read(link, regs, blocks).await;
            // The row's time is when its current (the first register, see
            // `LEADING`) was read; values read too far from it are another instant's.
            rows.skewed += sample.drop_skewed(regs, 0, self.samples.max_skew());
            let t_s = sample.read_at(0).map_or(tick_s, |t| (t - t0).as_secs_f64());
            let line = log.format_row(t_s, &sample.readings);
            // The current is the first register (see `LEADING`).
            let has_current = matches!(sample.readings.first(), Some(Reading::Value(_)));
            if has_current {
                log.line(&line).map_err(|e| Failure::Device(e.into()))?;
            } else {
                log.line(&format!("# {line}")).map_err(|e| Failure::Device(e.into()))?;
                rows.no_current += 1;
            }
            rows.written += 1;
            if sample.readings.iter().any(|r| matches!(r, Reading::Failed(_))) {
                rows.incomplete += 1;
            }
            sample.verdict(rows.written, &self.link, blocks).map_err(|e| Failure::Device(e.into()))?;
        }
    }
}

/// Completes at the end of `--duration`; never without it.
async fn stop_at(deadline: Option<Instant>) {
    match deadline {
        Some(d) => sleep_until(d).await,
        None => std::future::pending::<()>().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::Access;

    #[test]
    fn header_leads_with_the_profile_columns_then_every_other_readable_register() {
        let (header, regs) = columns().unwrap();
        assert_eq!(header[..5], ["time_s", "current_A", "voltage_V", "temp_C", "soc_pct"]);
        let names: Vec<&str> = regs[..4].iter().map(|r| r.name).collect();
        assert_eq!(names, ["current_ma", "battery_voltage_mv", "temperature_dc", "soc_centipct"]);
        // The leading columns' names promise these physical units.
        let units: Vec<&str> = regs[..4].iter().map(|r| r.unit).collect();
        assert_eq!(units, ["A", "V", "°C", "%"]);
        assert_eq!(header.len(), regs.len() + 1);
        assert_eq!(regs.len(), REGISTERS.iter().filter(|r| r.access != Access::W).count());
        assert!(header.contains(&"status[bits]".to_string()), "{header:?}");
        assert!(!header.iter().any(|h| h.starts_with("current_ma")), "no second current column");
    }

    #[test]
    fn duration_must_be_positive_seconds() {
        let seconds = serial::parse_seconds;
        assert_eq!(seconds("1.5"), Ok(1.5));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("inf").is_err());
        assert!(seconds("1s").is_err());
    }

    #[test]
    fn issue_21_a_duration_beyond_the_clock_is_no_deadline() {
        // `t0 + d` panicked ("overflow when adding duration to instant") for a
        // --duration that Duration holds but Instant cannot reach.
        use clap::Parser;
        let parse = |d: &str| {
            let cli = crate::Cli::try_parse_from(["hil-rig", "record", "--port", "p", "--out", "f", "--duration", d]);
            match cli.unwrap().command {
                crate::Command::Record(cmd) => cmd,
                other => panic!("not record: {other:?}"),
            }
        };
        let t0 = Instant::now();
        assert_eq!(parse("1e19").deadline(t0), None);
        assert_eq!(parse("2.5").deadline(t0), Some(t0 + Duration::from_millis(2500)));
    }
}
