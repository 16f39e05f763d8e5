//! `hil-rig compare`: runs the twin in lock-step with a board (live, or from
//! a recording) and compares them quantity by quantity within the
//! datasheet's tolerances. See `docs/hil-rig.md`, "compare".
//!
//! From the library: [`source`] (the board's samples, every readable
//! register), [`twin`] (`smartpro_sim`'s engine from a scenario, stepped by
//! the elapsed board time, in measured or scenario drive), [`tolerance`]
//! (the datasheet's figures and the `--tolerances` file). Here:
//!
//! - [`checks`]: per quantity board vs twin, the named findings;
//! - [`report`]: `compare.csv`, `report.md`, `junit.xml`, plots.

pub mod checks;
pub mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use clap::{Args, value_parser};
use firmware_core::map::{REGISTERS, RegId};
use models::variant::Variant;
use smartpro_sim::scenario::Scenario;
use tokio::time::{Instant, MissedTickBehavior, interval_at, sleep_until};

use self::checks::{Judge, Q, Setup, Tracked, TwinState};
use self::report::{Csv, Meta, Trace};
use crate::Failure;
use crate::decode::{self, MAX_REGS_PER_REQUEST};
use crate::estimate::fit;
use crate::estimate::tracking::{SocTracker, TrackerModel, TrackerNoise};
use crate::exit::{Exit, Table};
use crate::link::{Link, LinkArgs};
use crate::recording;
use crate::session::{MAX_BOARD_SKEW_S, Reading, SILENT_SAMPLES, Sample, SampleArgs, interrupted, summary};
use crate::source::{self, BoardSample, Registers};
use crate::tolerance::Tolerances;
use crate::twin::{self, Drive, GapCurrent, Twin, TwinStart};
use smartpro_sim::serial;

/// `compare`'s exit codes, for `--help`.
pub const EXIT_CODES: &Table = &[
    (Exit::Ok, "every quantity within tolerance, nothing found"),
    (Exit::Failed, "a discrepancy: a quantity out of tolerance or a named finding (see report.md)"),
    (
        Exit::BadInput,
        "bad input: flags, scenario, ECM or tolerance file, recording, a port that cannot be opened, \
         a board of another variant than the twin",
    ),
    (
        Exit::Runtime,
        "runtime failure: the port vanished, the board never answered or fell silent, fewer samples than \
         --min-samples were compared, the twin failed, a report could not be written. What was compared so far \
         is kept: compare.csv is written as samples come, and the reports are written before exiting",
    ),
];

/// The board's `uptime_s` counts whole seconds (it truncates): a sample read
/// at uptime `u` was taken at board time `u..u + 1`, estimated as its middle.
/// A scenario's steps at whole seconds then fall on the same side for the
/// board and the twin.
pub const UPTIME_MIDPOINT_S: f64 = 0.5;

// Live: a live value read more than MAX_BOARD_SKEW_S from its sample's
// `uptime_s` is not compared. Wall time is mapped onto board time by the
// board clock's rate (`BoardClock`); `--max-skew-ms` bounds it in wall time too.

/// Board seconds after which the board clock's rate (board s per wall s) is
/// taken from the uptime instead of assumed 1 (a twin served with `--speed`
/// runs faster).
const RATE_BASELINE_S: f64 = 10.0;

/// The board's clock against the wall clock: maps a wall-time skew between
/// two requests onto board time.
#[derive(Clone, Copy, Debug, Default)]
struct BoardClock {
    /// The first (wall s, uptime s) seen.
    first: Option<(f64, f64)>,
    /// Board seconds per wall second, once the uptime has advanced [`RATE_BASELINE_S`].
    rate: Option<f64>,
}

impl BoardClock {
    fn observe(&mut self, wall_s: f64, uptime_s: f64) {
        let (w0, u0) = *self.first.get_or_insert((wall_s, uptime_s));
        if uptime_s < u0 {
            // A restart: start again.
            *self = BoardClock { first: Some((wall_s, uptime_s)), rate: None };
        } else if uptime_s - u0 >= RATE_BASELINE_S && wall_s > w0 {
            self.rate = Some((uptime_s - u0) / (wall_s - w0));
        }
    }

    /// The wall-time skew that is [`MAX_BOARD_SKEW_S`] of board time, at most `max`.
    fn max_wall_skew(&self, max: Duration) -> Duration {
        let rate = self.rate.unwrap_or(1.0).max(1e-3);
        Duration::try_from_secs_f64(MAX_BOARD_SKEW_S / rate).map_or(max, |d| d.min(max))
    }
}

/// Default 1σ of the tracking filter's initial SOC (points): about what a
/// board that guessed its SOC from the LFP voltage plateau can be off by.
pub const DEFAULT_INITIAL_SOC_SIGMA_PCT: f64 = 20.0;

#[derive(Args, Debug)]
#[command(
    override_usage = "hil-rig compare --port <DEVICE> [OPTIONS]\n       hil-rig compare --recording <FILE> [OPTIONS]"
)]
pub struct Cmd {
    /// Compare a recording made by `hil-rig record` instead of a live board
    #[arg(long, value_name = "FILE", conflicts_with = "port", required_unless_present = "port")]
    recording: Option<PathBuf>,
    /// Live: stop after this many seconds (default: until Ctrl-C)
    #[arg(long, value_name = "S", value_parser = serial::duration_parser())]
    duration: Option<f64>,
    /// Live: time from the start of one sample to the start of the next
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = value_parser!(u64).range(1..))]
    interval_ms: u64,

    /// The twin's battery, variant and firmware settings, and with --drive
    /// scenario its stimulus (its [chain.injected] defects are ignored: the
    /// twin is the reference)
    #[arg(long, value_name = "FILE", help_heading = "Twin")]
    scenario: Option<PathBuf>,
    /// The twin's variant without --scenario (default: the board's variant_v)
    #[arg(long, value_name = "12|24|48", help_heading = "Twin")]
    variant: Option<Variant>,
    /// The twin's cells from an ECM parameter file (TOML, or JSON by
    /// extension; e.g. written by `hil-rig fit`)
    #[arg(long, value_name = "FILE", help_heading = "Twin")]
    ecm: Option<PathBuf>,
    /// What drives the twin's battery: the board's measured current
    /// (follows any bench; the current is not judged), or the scenario's
    /// stimulus, which the bench applies to the battery (the twin knows the
    /// true current: the board's current measurement is judged too)
    #[arg(long, value_enum, default_value_t = Drive::Measured, help_heading = "Twin")]
    drive: Drive,
    /// The tracking filter's initial SOC in % (default: the board's first
    /// SOC reading). The measured-drive twin always starts at the board's
    /// first SOC reading (at this value only when the board's SOC is not read)
    #[arg(long = "initial-soc-pct", value_name = "PCT", value_parser = percent, help_heading = "Twin",
          alias = "initial-soc")]
    initial_soc: Option<f64>,
    /// 1σ of that initial SOC for the tracking filter, in points (the true
    /// initial SOC is unknown: a board's SOC that was never synchronised
    /// can be tens of points off)
    #[arg(long = "initial-soc-sigma-pct", value_name = "PCT", default_value_t = DEFAULT_INITIAL_SOC_SIGMA_PCT,
          value_parser = sigma_percent, help_heading = "Twin", alias = "initial-soc-sigma")]
    initial_soc_sigma: f64,
    /// Scenario drive: the board's uptime (s) at the scenario's t = 0
    /// (default 0: the stimulus starts at power-up, as `smartpro-sim serve
    /// --scenario` starts it)
    #[arg(long, value_name = "S", default_value_t = 0.0, value_parser = non_negative, help_heading = "Twin")]
    scenario_start: f64,
    /// Measured drive: where the twin starts. `scenario`: the scenario ran
    /// from its t = 0 to the board's first uptime (a recording of the twin
    /// of that scenario: every state is the scenario's own); `rest`: at the
    /// board's first SOC reading (a real board). Default: `scenario` when
    /// the board's first uptime is within the scenario's duration and its
    /// first sample is the scenario's there (SOC and settings), else `rest`
    #[arg(long, value_enum, value_name = "FROM", help_heading = "Twin")]
    twin_start: Option<TwinStart>,

    /// Tolerance overrides per quantity (TOML; see docs/hil-rig.md); default: the datasheet's
    #[arg(long, value_name = "FILE")]
    tolerances: Option<PathBuf>,
    /// Directory for compare.csv, report.md, junit.xml and plots/ (created)
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = "out/compare", alias = "out")]
    out: PathBuf,

    #[command(flatten)]
    samples: SampleArgs,

    #[command(flatten)]
    link: Option<LinkArgs>,
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} must be a number of seconds ≥ 0")),
    }
}

fn sigma_percent(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 100.0 => Ok(v),
        _ => Err(format!("{s:?} must be a SOC σ within (0, 100] points")),
    }
}

fn percent(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} must be a SOC within 0..=100 %")),
    }
}

/// How a session stopped early.
#[derive(Debug)]
enum Stop {
    /// The input's fault: exit 2.
    BadInput(anyhow::Error),
    /// The run's: exit 3.
    Runtime(anyhow::Error),
}

impl Cmd {
    #[cfg(test)]
    pub fn link(&self) -> Option<&LinkArgs> {
        self.link.as_ref()
    }

    pub async fn run(self) -> Result<(), Failure> {
        let (header, regs) = recording::record_columns().map_err(|e| Failure::Usage(anyhow!(e)))?;
        let regs = Registers::new(regs);
        let base = self.base_scenario().map_err(Failure::Usage)?;
        // The board's samples: a recording at once; a live board, opened now.
        let recorded = match &self.recording {
            Some(path) => Some(source::from_recording(path, &header, &regs).map_err(|e| Failure::Usage(e.into()))?),
            None => None,
        };
        let mut link = match (&self.link, &recorded) {
            (Some(args), None) => Some((Link::open(args).map_err(|e| Failure::Usage(e.into()))?, args.clone())),
            _ => None,
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create the output directory {}", self.out.display()))
            .map_err(Failure::Usage)?;
        let csv = Csv::create(&self.out.join("compare.csv"))
            .with_context(|| format!("cannot create {}", self.out.join("compare.csv").display()))
            .map_err(Failure::Usage)?;

        if self.drive == Drive::Scenario && self.twin_start.is_some() {
            return Err(Failure::Usage(anyhow!(
                "--twin-start applies to --drive measured: in scenario drive the twin runs the scenario from the \
                 board's power-up (--scenario-start)"
            )));
        }
        // The twin's scenario in scenario drive does not depend on the board;
        // in measured drive it is the one a scenario start runs.
        let scenario_twin = self.scenario.is_some().then(|| twin::twin_scenario(&base, Drive::Scenario, 0.0));
        let variant = self.variant.unwrap_or(base.variant);
        let tol = match &self.tolerances {
            Some(path) => Tolerances::load(path, variant).map_err(|e| Failure::Usage(e.into()))?,
            None => Tolerances::datasheet(variant),
        };
        let interval_s = match &recorded {
            Some(rows) => median_step_s(rows),
            None => self.interval_ms as f64 / 1000.0,
        };
        let mut meta = Meta {
            board: match (&self.recording, &self.link) {
                (Some(p), _) => format!("recording {}", p.display()),
                (None, Some(l)) => l.describe(),
                (None, None) => String::new(),
            },
            twin: self.describe_twin(&base),
            drive: self.drive.name().into(),
            ..Meta::default()
        };
        let mut session = Session {
            cmd: &self,
            base: &base,
            adopted: None,
            scenario_twin: scenario_twin.as_ref(),
            start: None,
            from_scenario: None,
            regs: regs.clone(),
            judge: Judge::new(Setup { drive: self.drive, tol, interval_s }, regs),
            csv,
            traces: Q::ALL.iter().map(|&q| (q, Trace::default())).collect(),
            twin: None,
            tracker: None,
            axis: None,
            t0: 0.0,
            last_axis: None,
            notes: Vec::new(),
            skipped: 0,
            repeated: 0,
            skewed: 0,
            counted_gaps: 0,
            tripped_before: None,
        };
        if let Some(args) = &self.link {
            println!(
                "comparing {} with the twin ({}, {} drive) every {} ms{}; reports in {}",
                args.describe(),
                meta.twin,
                self.drive.name(),
                self.interval_ms,
                self.duration.map_or(" until Ctrl-C".to_string(), |d| format!(" for {d} s")),
                self.out.display()
            );
        }
        let stop = match (recorded, &mut link) {
            (Some(rows), _) => {
                let mut stop = None;
                for row in rows {
                    match session.sample(row) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(e) => {
                            stop = Some(e);
                            break;
                        }
                    }
                }
                stop
            }
            (None, Some((link, args))) => self.live(link, args, &mut session).await.err(),
            (None, None) => Some(Stop::BadInput(anyhow!("give --port DEVICE or --recording FILE"))),
        };
        let stop = match stop {
            None if session.judge.samples > 0 && session.judge.samples < self.samples.min_samples => {
                let why = anyhow!(
                    "only {} samples were compared (--min-samples {}; {} skipped)",
                    session.judge.samples,
                    self.samples.min_samples,
                    session.skipped
                );
                Some(if self.recording.is_some() { Stop::BadInput(why) } else { Stop::Runtime(why) })
            }
            None if session.judge.samples == 0 => {
                let why = match session.tripped_before {
                    Some((faults, n, _)) => anyhow!(
                        "nothing was compared: the board's protection was active ({}) in every one of its {n} samples \
                         — it tripped before the first one, and the twin, started from a sample, cannot have that \
                         state (the load cut off, an output open); record from before the trip",
                        fault_names(faults)
                    ),
                    None => anyhow!(
                        "nothing was compared: no sample held the board's current and voltage ({} skipped)",
                        session.skipped
                    ),
                };
                Some(if self.recording.is_some() { Stop::BadInput(why) } else { Stop::Runtime(why) })
            }
            stop => stop,
        };
        meta.twin = self.describe_twin(session.base());
        meta.start = session.start.as_ref().map_or(String::new(), |(_, why)| why.clone());
        meta.axis = session.axis.map_or("no samples".into(), |a| a.name().into());
        meta.skipped = session.skipped;
        meta.notes = std::mem::take(&mut session.notes);
        meta.notes.extend(session.judge.remarks());
        if session.repeated > 0 {
            meta.notes.push(format!(
                "{} samples had the same board time as the one before (uptime_s counts whole seconds): sample at \
                 most once per board second",
                session.repeated
            ));
        }
        if session.skewed > 0 {
            meta.notes.push(format!(
                "{} live values were read more than {MAX_BOARD_SKEW_S} s of board time from their sample's uptime_s \
                 (retries between a sample's requests) and were not compared",
                session.skewed
            ));
        }
        if let (Some((faults, n, from)), true) = (session.tripped_before, session.judge.samples > 0) {
            meta.notes.push(format!(
                "the first {n} samples (board time {} s to {} s) were not compared: the board's protection was \
                 active ({}), a trip before the first sample that the twin, started from a sample, cannot have; \
                 the comparison starts at the first sample without an active fault",
                fit::figure(from, 1),
                fit::figure(session.t0, 1),
                fault_names(faults)
            ));
        }
        if session.counted_gaps > 0 {
            meta.notes.push(format!(
                "{} intervals between samples hid a change of current (retries, an offline window): the twin ran \
                 them at the mean current the board counted (remaining_mah over the interval), not the held one",
                session.counted_gaps
            ));
        }
        if let Some((link, _)) = &link {
            meta.notes.push(summary("link: samples", session.judge.samples, &link.counters()));
        }
        meta.error = stop.as_ref().map(|s| match s {
            Stop::BadInput(e) | Stop::Runtime(e) => format!("{e:#}"),
        });
        let written = session.write_reports(&meta);
        let table = report::table(&session.judge, &meta);
        print!("{table}");
        if let Err(e) = written {
            return Err(Failure::Runtime(e));
        }
        println!("reports: {}", self.out.display());
        match stop {
            Some(Stop::BadInput(e)) => Err(Failure::Usage(e)),
            Some(Stop::Runtime(e)) => Err(Failure::Runtime(e)),
            None if report::passed(&session.judge) => Ok(()),
            None => Err(Failure::Device(anyhow!(
                "the board differs from the twin: {} (see {})",
                summary_line(&session.judge),
                self.out.join("report.md").display()
            ))),
        }
    }

    /// The scenario the twin is built from: `--scenario`, or a battery at
    /// rest of `--variant` (without either, 12 V until the board's first
    /// sample tells its `variant_v`: [`Self::built_in`]), with `--ecm`'s cells.
    fn base_scenario(&self) -> anyhow::Result<Scenario> {
        let s = match &self.scenario {
            Some(path) => Scenario::load(path)?,
            None => {
                if self.drive == Drive::Scenario {
                    return Err(anyhow!("--drive scenario needs --scenario FILE: the stimulus the bench applies"));
                }
                return self.built_in(self.variant.unwrap_or(Variant::V12));
            }
        };
        self.with_cells(s)
    }

    /// A battery at rest of `variant` with the default pack (or `--ecm`'s cells).
    fn built_in(&self, variant: Variant) -> anyhow::Result<Scenario> {
        let text =
            format!("name = \"compare-twin\"\nvariant = {}\ninitial_soc = 0.5\nduration_s = 1\n", variant.system_v());
        self.with_cells(Scenario::parse(&text, Path::new("(built-in twin)"))?)
    }

    /// `s` with `--variant` (checked against a scenario's) and `--ecm`'s cells.
    fn with_cells(&self, mut s: Scenario) -> anyhow::Result<Scenario> {
        if let Some(v) = self.variant {
            if self.scenario.is_some() && v != s.variant {
                return Err(anyhow!(
                    "--variant {} contradicts the scenario's variant {}",
                    v.system_v(),
                    s.variant.system_v()
                ));
            }
            s.variant = v;
        }
        if let Some(path) = &self.ecm {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read ECM file {}", path.display()))?;
            let ecm = if path.extension().is_some_and(|e| e == "json") {
                models::ecm::EcmParams::from_json_str(&text)
            } else {
                models::ecm::EcmParams::from_toml_str(&text)
            }
            .with_context(|| format!("ECM file {}", path.display()))?;
            ecm.validate().with_context(|| format!("ECM file {}", path.display()))?;
            s.ecm = Some(ecm);
        }
        Ok(s)
    }

    fn describe_twin(&self, s: &Scenario) -> String {
        let cells = match (&self.ecm, &s.ecm_file) {
            (Some(p), _) => format!(", cells from {}", p.display()),
            (None, Some(f)) => format!(", cells from {f}"),
            _ => String::new(),
        };
        let what = match &self.scenario {
            Some(p) => format!("scenario {} ({})", s.name, p.display()),
            None => "a battery at rest".to_string(),
        };
        format!("{what}, {} V, seed {}{cells}", s.variant.system_v(), s.seed)
    }

    /// Samples the board every `--interval-ms` until `--duration`, Ctrl-C,
    /// or a failure of the link.
    async fn live(
        &self,
        link: &mut Link<tokio_serial::SerialStream>,
        args: &LinkArgs,
        session: &mut Session<'_>,
    ) -> Result<(), Stop> {
        let blocks = decode::plan(REGISTERS, &session.regs.list, MAX_REGS_PER_REQUEST);
        let t0 = Instant::now();
        // A duration beyond what the clock can count: until Ctrl-C.
        let deadline = self.duration.and_then(|d| Duration::try_from_secs_f64(d).ok()).and_then(|d| t0.checked_add(d));
        let mut ticker = interval_at(t0, Duration::from_millis(self.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut n, mut silent) = (0u64, 0u32);
        let regs = session.regs.list.clone();
        // The sample's instant is its uptime's read (with the current and voltage, in one request).
        let reference = session.regs.index(RegId::Uptime).or(session.regs.index(RegId::Current)).unwrap_or(0);
        let mut clock = BoardClock::default();
        let sampling = async {
            loop {
                ticker.tick().await;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(());
                }
                let tick_s = t0.elapsed().as_secs_f64();
                let mut sample = Sample::read(link, &regs, &blocks).await;
                n += 1;
                let time_s = sample.read_at(reference).map_or(tick_s, |t| (t - t0).as_secs_f64());
                if let Some(up) = session.regs.value(&sample.raw(), RegId::Uptime) {
                    clock.observe(time_s, up);
                }
                session.skewed += sample.drop_skewed(&regs, reference, clock.max_wall_skew(self.samples.max_skew()));
                sample.verdict(n, args, &blocks).map_err(|e| Stop::Runtime(e.into()))?;
                let raw = sample.raw();
                let measured = session.measured(&raw);
                silent = if measured { 0 } else { silent + 1 };
                if silent >= SILENT_SAMPLES {
                    let why = sample.readings.iter().find_map(|r| match r {
                        Reading::Failed(w) => Some(w.clone()),
                        Reading::Value(_) => None,
                    });
                    return Err(Stop::Runtime(anyhow!(
                        "{} fell silent: no measurements in the last {SILENT_SAMPLES} samples ({})",
                        args.describe(),
                        why.unwrap_or_default()
                    )));
                }
                if !session.sample(BoardSample { time_s, raw, line: None })? {
                    return Ok(());
                }
            }
        };
        tokio::select! {
            biased;
            () = stop_at(deadline) => Ok(()),
            r = sampling => r,
            () = interrupted() => Ok(()),
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

/// The persisted settings (calibration aside) whose values differ between
/// the board's sample `board` and the twin's registers `twin`: (register, board's, twin's).
fn settings_differing<'r>(
    regs: &'r Registers,
    board: &'r [Option<i64>],
    twin: &'r [Option<i64>],
) -> impl Iterator<Item = (&'static firmware_core::map::RegDef, i64, i64)> + 'r {
    regs.list.iter().enumerate().filter_map(move |(k, reg)| {
        let calibration =
            (0x0300..0x0400).contains(&reg.addr) || reg.id == RegId::LastCalTime || reg.id == RegId::LastCalKind;
        match (board[k], twin[k]) {
            (Some(b), Some(w)) if reg.persisted && !calibration && b != w => Some((*reg, b, w)),
            _ => None,
        }
    })
}

/// The set bits of a `faults` value, as `poll` shows them.
fn fault_names(faults: i64) -> String {
    match firmware_core::map::by_name("faults").and_then(|reg| decode::meaning(reg, faults)) {
        Some(bits) => format!("faults 0x{faults:04X}: {bits}"),
        None => format!("faults 0x{faults:04X}"),
    }
}

/// The median time between a recording's rows (s); 1 s for fewer than two.
fn median_step_s(rows: &[BoardSample]) -> f64 {
    let mut d: Vec<f64> = rows.windows(2).map(|w| w[1].time_s - w[0].time_s).collect();
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(f64::total_cmp);
    d[d.len() / 2]
}

/// `voltage, soc_ah out of tolerance; 2 findings`.
fn summary_line(judge: &Judge) -> String {
    let failed: Vec<&str> = Q::ALL.iter().filter(|&&q| !judge.stats(q).passed()).map(|q| q.key()).collect();
    let findings = judge.findings();
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!("{} out of tolerance", failed.join(", ")));
    }
    if !findings.is_empty() {
        parts.push(format!("{} finding{}", findings.len(), if findings.len() == 1 { "" } else { "s" }));
    }
    parts.join("; ")
}

/// The board's time axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Axis {
    /// The board's `uptime_s` register: board time, simulated time on a twin served with `--speed`.
    Uptime,
    /// The source's clock (wall time live, `time_s` of a recording).
    Source,
}

impl Axis {
    fn name(self) -> &'static str {
        match self {
            Axis::Uptime => "board time from uptime_s",
            Axis::Source => "time_s: the recording's or the wall clock (the board has no uptime_s)",
        }
    }
}

/// One comparison in progress.
struct Session<'a> {
    cmd: &'a Cmd,
    base: &'a Scenario,
    /// The built-in twin of the board's variant, when neither `--scenario`
    /// nor `--variant` said one and the board is not 12 V.
    adopted: Option<Scenario>,
    /// The twin's scenario with `--scenario` (borrowed by the twin's
    /// stimulus in scenario drive; run to the first sample by a scenario start).
    scenario_twin: Option<&'a Scenario>,
    /// Where the twin started, and what the report's header says of it.
    start: Option<(TwinStart, String)>,
    /// The twin of a scenario start, run to the first sample, until [`Session::start`] takes it.
    from_scenario: Option<Twin<'a>>,
    regs: Registers,
    judge: Judge,
    csv: Csv,
    traces: Vec<(Q, Trace)>,
    twin: Option<Twin<'a>>,
    /// The twin's tracking filter, or why there is none.
    tracker: Option<Result<Tracker, String>>,
    axis: Option<Axis>,
    /// Board time of the first compared sample.
    t0: f64,
    last_axis: Option<f64>,
    notes: Vec<String>,
    skipped: u64,
    /// Samples with the same board time as the one before.
    repeated: u64,
    /// Live values left out: read more than [`MAX_BOARD_SKEW_S`] from their sample's uptime.
    skewed: u64,
    /// Intervals the twin ran at the board's counted mean current ([`GapCurrent::Counted`]).
    counted_gaps: u64,
    /// Samples before the comparison started because a fault was active
    /// at them: (the faults seen, how many, board time of the first).
    tripped_before: Option<(i64, u64, f64)>,
}

impl<'a> Session<'a> {
    /// The scenario the twin is built from.
    fn base(&self) -> &Scenario {
        self.adopted.as_ref().unwrap_or(self.base)
    }

    /// A sample holds what the twin needs: current, voltage (and the uptime, once it is the axis).
    fn measured(&self, raw: &[Option<i64>]) -> bool {
        let has = |id| self.regs.raw(raw, id).is_some();
        has(RegId::Current) && has(RegId::BatteryVoltage) && (self.axis != Some(Axis::Uptime) || has(RegId::Uptime))
    }

    /// Compares one sample; `Ok(false)`: the comparison cannot go on (the board restarted).
    fn sample(&mut self, s: BoardSample) -> Result<bool, Stop> {
        if !self.measured(&s.raw) {
            self.skipped += 1;
            return Ok(true);
        }
        let regs = &self.regs;
        let uptime = regs.value(&s.raw, RegId::Uptime);
        let axis = *self.axis.get_or_insert(if uptime.is_some() { Axis::Uptime } else { Axis::Source });
        let t = match axis {
            Axis::Uptime => uptime.unwrap_or(0.0) + UPTIME_MIDPOINT_S,
            Axis::Source => s.time_s,
        };
        if let Some(last) = self.last_axis {
            if axis == Axis::Uptime && t < last {
                self.judge.board_restarted(last - self.t0, last, t);
                return Ok(false);
            }
            self.repeated += u64::from(t == last);
        }
        self.last_axis = Some(t);
        let current_a = regs.value(&s.raw, RegId::Current).unwrap_or(0.0);
        if self.twin.is_none() {
            if self.start.is_none() {
                let start = self.choose_start(t, &s, current_a)?;
                self.start = Some(start);
            }
            let regs = &self.regs;
            // A protection that tripped before the first sample (the switch or
            // an output open) is a state the twin, started from a sample,
            // cannot have: the comparison starts once no fault is active. A
            // twin started from the scenario has that trip too.
            if let (Some(faults), false) =
                (regs.raw(&s.raw, RegId::Faults).filter(|&f| f != 0), self.from_scenario.is_some())
            {
                let (first, n, _) = self.tripped_before.get_or_insert((faults, 0, t));
                *first |= faults;
                *n += 1;
                return Ok(true);
            }
            self.start(t, &s, current_a)?;
        }
        let twin_t = match (self.cmd.drive, axis) {
            (Drive::Scenario, Axis::Uptime) => t - self.cmd.scenario_start,
            _ => t - self.t0,
        };
        let scenario_started = self.scenario_started();
        let twin = self.twin.as_mut().expect("started above");
        let remaining_ah = self.regs.value(&s.raw, RegId::RemainingCharge);
        let gap = twin.advance_counted(twin_t, current_a, remaining_ah).map_err(|e| engine_stop(e, s.line))?;
        self.counted_gaps += u64::from(matches!(gap, GapCurrent::Counted(_)));
        let twin_raw = twin.registers(&self.regs);
        let truth = twin.truth();
        let tracked = match self.tracker.as_mut() {
            Some(Ok(tracker)) => {
                // The board's current, in either drive: measured with its voltage, in the same
                // averaging block (the twin's true current may show a step a board second later).
                let temp_c = self.regs.value(&s.raw, RegId::Temperature).unwrap_or(truth.temp_c);
                let v = self.regs.value(&s.raw, RegId::BatteryVoltage).unwrap_or(truth.voltage_v);
                tracker.track(t, current_a, v, temp_c)
            }
            Some(Err(why)) => Tracked::None(why.clone()),
            None => Tracked::None("no tracking filter".into()),
        };
        // A twin started from the scenario has the board's history of the
        // internal-resistance estimate: its own estimate is the reference
        // once valid (a twin started at rest has none: its pack's R0).
        let twin_ir_ohm = self
            .regs
            .value(&twin_raw, RegId::InternalResistance)
            .filter(|_| self.regs.raw(&twin_raw, RegId::InternalResistanceValid) == Some(1))
            .filter(|_| scenario_started);
        let twin_state = TwinState {
            t_s: twin.t_s(),
            registers: &twin_raw,
            truth: &truth,
            r0_ohm: twin_ir_ohm.unwrap_or(twin.r0_ohm()),
            tracked: &tracked,
        };
        let points = self.judge.add(t - self.t0, &s.raw, &twin_state);
        for ((_, trace), (_, p)) in self.traces.iter_mut().zip(&points) {
            trace.push(t - self.t0, *p);
        }
        let bits = [
            self.regs.raw(&s.raw, RegId::Status),
            self.regs.raw(&twin_raw, RegId::Status),
            self.regs.raw(&s.raw, RegId::Faults),
            self.regs.raw(&twin_raw, RegId::Faults),
        ];
        self.csv
            .row(t - self.t0, &points, bits)
            .with_context(|| format!("cannot write {}", self.csv.path().display()))
            .map_err(Stop::Runtime)?;
        Ok(true)
    }

    /// Whether the measured-drive twin started from the scenario ([`Self::choose_start`]).
    fn scenario_started(&self) -> bool {
        self.cmd.drive == Drive::Measured && matches!(self.start, Some((TwinStart::Scenario, _)))
    }

    /// The first sample: checks the board against the twin and builds the twin.
    fn start(&mut self, t: f64, s: &BoardSample, current_a: f64) -> Result<(), Stop> {
        let regs = &self.regs;
        let at = s.line.map_or(String::new(), |l| format!(" at line {l}"));
        if let Some(v) = regs.raw(&s.raw, RegId::VariantV) {
            let twin_v = self.base().variant.system_v();
            let board_variant = u64::try_from(v).ok().and_then(Variant::from_system_v);
            if let (Some(variant), None, None) = (board_variant, &self.cmd.scenario, self.cmd.variant) {
                // Neither --scenario nor --variant: the twin is of the board's variant.
                if i64::from(twin_v) != v {
                    self.adopted = Some(self.cmd.built_in(variant).map_err(Stop::BadInput)?);
                    let tol = match &self.cmd.tolerances {
                        Some(path) => Tolerances::load(path, variant).map_err(|e| Stop::BadInput(e.into()))?,
                        None => Tolerances::datasheet(variant),
                    };
                    self.judge.set_tolerances(tol);
                }
            } else if v != i64::from(twin_v) {
                return Err(Stop::BadInput(anyhow!(
                    "the board is a {v} V variant (variant_v{at}), the twin {twin_v} V: give --variant {v} or a \
                     scenario with variant = {v}"
                )));
            }
        }
        self.t0 = t;
        self.twin = Some(match (self.cmd.drive, self.scenario_twin) {
            (Drive::Measured, _) if self.from_scenario.is_some() => self.from_scenario.take().expect("checked"),
            (Drive::Scenario, Some(scenario)) => {
                if self.axis == Some(Axis::Uptime) && t < self.cmd.scenario_start {
                    return Err(Stop::BadInput(anyhow!(
                        "--scenario-start {} s is after the board's first uptime {t} s{at}",
                        self.cmd.scenario_start
                    )));
                }
                Twin::scenario(scenario, regs).map_err(|e| engine_stop(e, None))?
            }
            _ => {
                // The board's own SOC: --initial-soc is the tracking filter's
                // start, and moving the twin with it would judge the board
                // against another battery (issue 17, item 5).
                let board_soc = regs.value(&s.raw, RegId::Soc);
                let soc_pct = match (board_soc, self.cmd.initial_soc) {
                    (Some(b), _) => b,
                    (None, Some(given)) => {
                        self.notes.push(format!(
                            "the board's SOC was not read: the twin's battery starts at --initial-soc-pct {given} %"
                        ));
                        given
                    }
                    (None, None) => self.base().initial_soc * 100.0,
                };
                let scenario = twin::twin_scenario(self.base(), Drive::Measured, soc_pct / 100.0);
                // Under load, the twin's RC pairs are first brought to the
                // board's: at most its uptime at the first current.
                let loaded_for_s = regs.value(&s.raw, RegId::Uptime).unwrap_or(twin::MAX_PRE_RUN_S);
                let (twin, pre) = Twin::measured_settled(&scenario, regs, current_a, loaded_for_s)
                    .map_err(|e| engine_stop(e, None))?;
                if pre.seconds > 0.0 {
                    self.notes.push(format!(
                        "the board was under load at its first sample: the twin's battery ran {} s at {} A \
                         (from SOC {} %, to the board's {} %) before it, so that its RC pairs carry that load",
                        fit::figure(pre.seconds, 0),
                        fit::figure(pre.current_a, 2),
                        fit::figure(100.0 * pre.from_soc, 2),
                        fit::figure(soc_pct, 2)
                    ));
                }
                twin
            }
        });
        let soc0_pct = self.cmd.initial_soc.or(regs.value(&s.raw, RegId::Soc));
        self.tracker = Some(match soc0_pct {
            _ if self.scenario_started() => Err("the twin started from the scenario: its battery's SOC is the \
                                                 scenario's own there, and the board's SOC registers are judged \
                                                 against the twin's; an estimate from the voltage is not needed"
                .into()),
            Some(soc_pct) => Tracker::new(self.base(), soc_pct, self.cmd.initial_soc_sigma, t, current_a),
            None => Err("no initial SOC: the board's soc_centipct was not read; give --initial-soc-pct".into()),
        });
        // Settings that differ: not a verdict, but the likeliest cause of one.
        let twin_raw = self.twin.as_mut().expect("built above").registers(regs);
        for (reg, b, w) in settings_differing(regs, &s.raw, &twin_raw) {
            self.notes.push(format!(
                "setting {} differs: board {}, twin {} (set it in the scenario's [firmware.registers])",
                reg.name,
                decode::format_value(reg, b),
                decode::format_value(reg, w)
            ));
        }
        Ok(())
    }

    /// Where the twin starts (measured drive; see docs/hil-rig.md,
    /// "Self-comparison"), decided at the first sample at board time `t`,
    /// and the report header's words for it. A scenario start leaves its
    /// twin, run to `t`, in `from_scenario`.
    ///
    /// `--twin-start scenario`, or by default when nothing says otherwise:
    /// the scenario that made the recording, run from its t = 0 to `t` with
    /// its own stimulus. It cannot be without `--scenario`, without the
    /// board's uptime, with `--ecm` (other cells than the scenario's), or at
    /// an uptime beyond the scenario's duration; by default also not when the
    /// first sample is not the scenario's at `t` — a persisted setting that
    /// differs, or the board's SOC register off the scenario twin's by more
    /// than the SOC tolerance since the scenario's start and the uptime's
    /// resolution at the current (a real board, or another run): then rest.
    fn choose_start(&mut self, t: f64, s: &BoardSample, current_a: f64) -> Result<(TwinStart, String), Stop> {
        let asked = self.cmd.twin_start;
        if self.cmd.drive == Drive::Scenario {
            return Ok((
                TwinStart::Scenario,
                format!(
                    "scenario drive, the scenario's stimulus from the board's uptime {} s",
                    fit::figure(self.cmd.scenario_start, 1)
                ),
            ));
        }
        let rest = |why: &str| format!("rest, at the board's first SOC reading ({why})");
        let uptime = self.regs.value(&s.raw, RegId::Uptime).filter(|_| self.axis == Some(Axis::Uptime));
        let cannot = match (self.scenario_twin, uptime) {
            (None, _) => Err("no --scenario: the twin is a battery at rest".to_string()),
            (Some(_), None) => Err("the board's uptime_s is not read: its time in a scenario is not known".to_string()),
            _ if self.cmd.ecm.is_some() => Err("--ecm: the twin's cells are not the scenario's".to_string()),
            (Some(scenario), Some(up)) => {
                let duration_s = scenario.duration_ns() as f64 * 1e-9;
                if t > duration_s {
                    Err(format!(
                        "the board's first uptime {} s is beyond the scenario's duration {} s",
                        fit::figure(up, 0),
                        fit::figure(duration_s, 0)
                    ))
                } else {
                    Ok((scenario, up, duration_s))
                }
            }
        };
        let (scenario, up, duration_s) = match (cannot, asked) {
            (Err(why), Some(TwinStart::Scenario)) => {
                return Err(Stop::BadInput(anyhow!("--twin-start scenario: {why}")));
            }
            (Err(why), _) => return Ok((TwinStart::Rest, rest(&why))),
            (Ok(_), Some(TwinStart::Rest)) => return Ok((TwinStart::Rest, rest("--twin-start rest"))),
            (Ok(ok), _) => ok,
        };
        let mut twin =
            Twin::measured_from_scenario(scenario, &self.regs, t, current_a).map_err(|e| engine_stop(e, s.line))?;
        let twin_raw = twin.registers(&self.regs);
        let regs = &self.regs;
        // Signs that the board is not the scenario at `t`.
        let mut signs: Vec<String> = settings_differing(regs, &s.raw, &twin_raw)
            .map(|(reg, b, w)| {
                format!("setting {} {} vs {}", reg.name, decode::format_value(reg, b), decode::format_value(reg, w))
            })
            .collect();
        if let (Some(b), Some(w)) = (regs.value(&s.raw, RegId::Soc), regs.value(&twin_raw, RegId::Soc)) {
            let tol = self.judge.tolerances();
            let capacity_ah = regs.value(&s.raw, RegId::Capacity).unwrap_or(100.0).max(0.1);
            let points_per_ah = 100.0 / capacity_ah;
            let allowed = tol.soc_pct
                + tol.soc_current_a * t / 3600.0 * points_per_ah
                + current_a.abs() * twin::UPTIME_RESOLUTION_S / 3600.0 * points_per_ah;
            if (b - w).abs() > allowed {
                signs.push(format!(
                    "SOC {} % vs the scenario's {} % (allowed ± {} points)",
                    fit::figure(b, 2),
                    fit::figure(w, 2),
                    fit::figure(allowed, 2)
                ));
            }
        }
        let origin = format!(
            "scenario, {} run with its stimulus from its t = 0 to the board's first sample (uptime {} s, board time \
             {} s of its {} s), so the battery, firmware and protection are the scenario's own there",
            scenario.name,
            fit::figure(up, 0),
            fit::figure(t, 1),
            fit::figure(duration_s, 0)
        );
        match (asked, signs.is_empty()) {
            (None, false) => Ok((
                TwinStart::Rest,
                rest(&format!(
                    "the first sample is not the scenario's at board time {} s: {}",
                    fit::figure(t, 1),
                    signs.join("; ")
                )),
            )),
            (_, true) => {
                self.from_scenario = Some(twin);
                let why = if asked.is_some() {
                    "--twin-start scenario"
                } else {
                    "the default: the first sample is the scenario's there"
                };
                Ok((TwinStart::Scenario, format!("{origin} ({why})")))
            }
            (_, false) => {
                self.from_scenario = Some(twin);
                Ok((
                    TwinStart::Scenario,
                    format!("{origin} (--twin-start scenario, though the first sample differs: {})", signs.join("; ")),
                ))
            }
        }
    }

    /// `report.md`, `junit.xml`, the plots (`compare.csv` is written as the samples come).
    fn write_reports(&self, meta: &Meta) -> anyhow::Result<()> {
        let out = &self.cmd.out;
        let md = out.join("report.md");
        std::fs::write(&md, report::table(&self.judge, meta))
            .with_context(|| format!("cannot write {}", md.display()))?;
        let junit = out.join("junit.xml");
        let mut buf = Vec::new();
        report::write_junit(&mut buf, &self.judge, meta).expect("writing to memory");
        std::fs::write(&junit, buf).with_context(|| format!("cannot write {}", junit.display()))?;
        report::write_plots(&out.join("plots"), &self.traces).map_err(|e| anyhow!(e))?;
        Ok(())
    }
}

/// The twin's tracking filter ([`crate::estimate::tracking`]): its SOC corrected from
/// the board's measured voltage, predicted with the current held between
/// samples, as the twin.
struct Tracker {
    filter: SocTracker,
    prev_t: f64,
    prev_current_a: f64,
}

impl Tracker {
    /// A filter for the twin's battery (`base`'s pack or ECM cells and
    /// variant) starting at `soc_pct` ± `sigma_pct`, at board time `t`.
    fn new(base: &Scenario, soc_pct: f64, sigma_pct: f64, t: f64, current_a: f64) -> Result<Self, String> {
        let model = match &base.ecm {
            Some(ecm) => TrackerModel::from_ecm(ecm, &base.pack, base.variant),
            None => TrackerModel::from_pack_params(&base.pack, base.variant),
        }
        .map_err(|e| format!("the tracking filter's battery model: {e}"))?;
        let noise = TrackerNoise::datasheet(base.variant);
        let filter = SocTracker::new(model, soc_pct / 100.0, sigma_pct / 100.0, noise);
        Ok(Self { filter, prev_t: t, prev_current_a: current_a })
    }

    /// Predicts to board time `t` with the previous sample's current, then
    /// corrects with the board's voltage `voltage_v` at `current_a`.
    fn track(&mut self, t: f64, current_a: f64, voltage_v: f64, temp_c: f64) -> Tracked {
        let dt = t - self.prev_t;
        if dt > 0.0 {
            // A refused input (non-finite) leaves the state as it was: the next sample goes on.
            let _ = self.filter.step(dt, self.prev_current_a, temp_c);
        }
        let _ = self.filter.update(voltage_v, current_a, temp_c);
        (self.prev_t, self.prev_current_a) = (t, current_a);
        Tracked::Estimate { soc_pct: self.filter.soc() * 100.0, sigma_pct: self.filter.soc_sigma() * 100.0 }
    }
}

/// An engine error as a stop: the input's fault or the run's.
fn engine_stop(e: smartpro_sim::engine::EngineError, line: Option<usize>) -> Stop {
    let at = line.map_or(String::new(), |l| format!(" at line {l} of the recording"));
    let err = anyhow!("the twin{at}: {e}");
    if twin::is_bad_input(&e) { Stop::BadInput(err) } else { Stop::Runtime(err) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Box<Cmd>, clap::Error> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([&["hil-rig", "compare"], args].concat())?;
        match cli.command {
            crate::Command::Compare(cmd) => Ok(cmd),
            other => panic!("not compare: {other:?}"),
        }
    }

    #[test]
    fn a_port_or_a_recording_but_not_both() {
        let live =
            parse(&["--port", "/dev/ttyUSB0", "--unit", "3", "--drive", "scenario", "--scenario", "s.toml"]).unwrap();
        assert_eq!(live.link().unwrap().describe(), "unit 3 on /dev/ttyUSB0 at 19200 8E1");
        assert_eq!(
            (live.drive, live.interval_ms, live.out.as_path()),
            (Drive::Scenario, 1000, Path::new("out/compare"))
        );
        let rec = parse(&["--recording", "r.csv", "--variant", "24", "--initial-soc", "55"]).unwrap();
        assert!(rec.link().is_none());
        assert_eq!((rec.variant, rec.initial_soc, rec.drive), (Some(Variant::V24), Some(55.0), Drive::Measured));
        assert!(parse(&[]).is_err(), "neither");
        assert!(parse(&["--recording", "r.csv", "--port", "p"]).is_err(), "both");
        assert!(parse(&["--recording", "r.csv", "--initial-soc", "101"]).is_err());
        assert!(parse(&["--recording", "r.csv", "--variant", "36"]).is_err());
        assert!(parse(&["--recording", "r.csv", "--duration", "0"]).is_err());
    }

    #[test]
    fn the_twin_takes_its_cells_from_an_ecm_file_and_bad_ones_are_named() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/data");
        let ecm = data.join("lfp-100ah-ecm.toml");
        let cmd = parse(&["--recording", "r.csv", "--variant", "24", "--ecm", ecm.to_str().unwrap()]).unwrap();
        let s = cmd.base_scenario().unwrap();
        assert_eq!(s.variant, Variant::V24);
        assert!(s.ecm.is_some());
        assert!(cmd.describe_twin(&s).ends_with("lfp-100ah-ecm.toml"), "{}", cmd.describe_twin(&s));
        let bad = std::env::temp_dir().join(format!("hil-rig-bad-ecm-{}.toml", std::process::id()));
        std::fs::write(&bad, "capacity_ah = -1\n").unwrap();
        let cmd = parse(&["--recording", "r.csv", "--ecm", bad.to_str().unwrap()]).unwrap();
        let e = format!("{:#}", cmd.base_scenario().unwrap_err());
        assert!(e.starts_with(&format!("ECM file {}", bad.display())), "{e}");
        std::fs::remove_file(&bad).unwrap();
        let cmd = parse(&["--recording", "r.csv", "--drive", "scenario"]).unwrap();
        assert!(cmd.base_scenario().unwrap_err().to_string().contains("--drive scenario needs --scenario FILE"));
    }

    #[test]
    fn the_median_step_ignores_gaps() {
        let rows: Vec<BoardSample> = [0.0, 1.0, 2.0, 3.0, 10.0, 11.0]
            .iter()
            .map(|&t| BoardSample { time_s: t, raw: Vec::new(), line: None })
            .collect();
        assert_eq!(median_step_s(&rows), 1.0);
        assert_eq!(median_step_s(&rows[..1]), 1.0);
    }
}
