//! `hil-rig test PLAN.toml`: a scripted bench test. The plan (TOML) is a
//! list of steps — waits, reads with limits, setting round-trips,
//! comparisons with the twin, calibrations, commands — that put a board
//! through an acceptance test; see `docs/hil-rig.md`, "test".
//!
//! - [`plan`]: the file, loaded and checked in full before the port is opened;
//! - [`bench`]: each step against the board;
//! - [`lockstep`]: compare's twin, run from the start of the plan;
//! - [`report`]: the console lines, `junit.xml` and `report.md`.

pub mod bench;
pub mod lockstep;
pub mod plan;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, anyhow};
use clap::{Args, value_parser};
use smartpro_sim::scenario::Scenario;
use tokio::io::{AsyncRead, AsyncWrite};

use self::bench::{Abort, Bench};
use self::plan::{Plan, Step};
use self::report::{Meta, StepReport, Verdict};
use crate::Failure;
use crate::exit::{Exit, Table};
use crate::link::{Link, LinkArgs};
use crate::session::interrupted;

/// `test`'s exit codes, for `--help`.
pub const EXIT_CODES: &Table = &[
    (Exit::Ok, "every step passed (with --check: the plan is valid)"),
    (Exit::Failed, "a step failed, or Ctrl-C stopped the plan (see report.md)"),
    (
        Exit::BadInput,
        "bad plan or usage: the plan (or the twin's scenario or ECM file it names) has errors, each printed as \
         FILE:LINE:COLUMN: cause, before anything is sent to the board; the port cannot be opened; the output \
         directory cannot be created; the twin cannot be built for this board",
    ),
    (
        Exit::Runtime,
        "the port was lost or the board fell silent during the plan, or a report could not be written; \
         report.md and junit.xml keep the steps done so far (the rest are marked not run)",
    ),
];

/// The end of `test --help`: the exit codes, and the plan's clock.
pub fn help() -> String {
    crate::exit::help(EXIT_CODES)
        + "\n\nDurations in a plan are board time (the board's uptime_s): wall time on a real board, K times \
           faster on a stand-in served with `smartpro-sim serve --speed K`."
}

#[derive(Args, Debug)]
#[command(override_usage = "hil-rig test <PLAN.toml> --check\n       hil-rig test <PLAN.toml> --port <DEVICE> [OPTIONS]",
          mut_arg("port", |a| a.required(false).required_unless_present("check")))]
pub struct Cmd {
    /// The test plan (TOML; see docs/hil-rig.md, "test", and hil-rig/plans/)
    #[arg(value_name = "PLAN.toml")]
    plan: PathBuf,
    /// Only check the plan and list its steps; talk to no board (a port given
    /// by HIL_RIG_PORT or --port is not opened)
    #[arg(long)]
    check: bool,
    /// Directory for report.md and junit.xml (created)
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = "out/test", alias = "out")]
    out: PathBuf,
    /// Time between two polls of the board while a step waits (default:
    /// the plan's poll_interval_ms, else 1000)
    #[arg(long, value_name = "MS", value_parser = value_parser!(u64).range(10..=60_000))]
    interval_ms: Option<u64>,
    /// The twin's battery and settings for expect_twin steps (a scenario;
    /// overrides the plan's [twin] scenario; default: a battery at rest of
    /// the board's variant)
    #[arg(long, value_name = "FILE", help_heading = "Twin")]
    scenario: Option<PathBuf>,

    #[command(flatten)]
    link: Option<LinkArgs>,
}

impl Cmd {
    #[cfg(test)]
    pub fn link(&self) -> Option<&LinkArgs> {
        self.link.as_ref()
    }

    pub async fn run(self) -> Result<(), Failure> {
        let plan = Plan::load(&self.plan).map_err(|e| Failure::Usage(anyhow!("{e}")))?;
        let scenario = match &self.scenario {
            Some(path) => Some((path.clone(), Scenario::load(path).map_err(|e| Failure::Usage(anyhow!("{e:#}")))?)),
            None => None,
        };
        let Some(args) = self.link.as_ref().filter(|_| !self.check) else {
            println!("{}: {} steps, valid", plan.path.display(), plan.steps.len());
            for (i, s) in plan.steps.iter().enumerate() {
                println!("  {:>2}. {} ({}, line {})", i + 1, s.name, s.action.kind(), s.line);
            }
            println!("run it with --port DEVICE (and the link flags)");
            return Ok(());
        };
        std::fs::create_dir_all(&self.out)
            .with_context(|| format!("cannot create the output directory {}", self.out.display()))
            .map_err(Failure::Usage)?;
        let link = Link::open(args).map_err(|e| Failure::Usage(e.into()))?;
        let interval = self.interval_ms.map_or(plan.poll_interval, Duration::from_millis);
        let bench = Bench::new(link, args.clone(), interval);
        let meta = Meta {
            plan_name: plan.name.clone(),
            plan_path: plan.path.display().to_string(),
            link: args.describe(),
            started: Some(SystemTime::now()),
            ..Meta::default()
        };
        println!(
            "testing {} with {} ({} steps); reports in {}",
            args.describe(),
            plan.path.display(),
            plan.steps.len(),
            self.out.display()
        );
        Session { plan: &plan, out: self.out.clone(), meta, steps: Vec::new(), current: None }
            .run(bench, scenario.as_ref())
            .await
    }
}

/// A plan being run, and its reports.
struct Session<'p> {
    plan: &'p Plan,
    out: PathBuf,
    meta: Meta,
    /// The steps done so far.
    steps: Vec<StepReport>,
    /// The step under way (0-based).
    current: Option<usize>,
}

/// How the steps ended.
enum End {
    Done,
    Abort(Abort),
    /// The twin cannot be built for this board: the plan's fault.
    BadPlan(String),
    Interrupted,
}

impl Session<'_> {
    async fn run<T>(mut self, mut bench: Bench<T>, scenario: Option<&(PathBuf, Scenario)>) -> Result<(), Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let end = tokio::select! {
            biased;
            () = interrupted() => End::Interrupted,
            end = self.steps_of(&mut bench, scenario) => end,
        };
        let total = self.plan.steps.len();
        let reason = match &end {
            End::Done => None,
            End::Abort(a) => Some(a.to_string()),
            End::BadPlan(e) => Some(format!("the twin cannot be built for this board: {e}")),
            End::Interrupted => Some("interrupted (Ctrl-C)".to_string()),
        };
        if let Some(reason) = &reason {
            // The step under way when the session ended is an error; the rest were not run.
            if let Some(at) = self.current.filter(|&at| at < total && at == self.steps.len()) {
                let s = &self.plan.steps[at];
                self.steps.push(step_report(at, s, bench::Outcome::error(reason), 0.0, None));
            }
            self.meta.ended_early = Some(reason.clone());
        }
        let written = self.write_reports();
        println!("{}", report::summary(&self.all_steps()));
        if let Err(e) = &written {
            eprintln!("error: {e:#}");
        } else {
            println!("reports: {}", self.out.display());
        }
        match end {
            End::Abort(Abort::Report(e)) => Err(Failure::Runtime(anyhow!(e))),
            End::Abort(a) => Err(Failure::Runtime(anyhow!("{a} (the reports keep the steps done so far)"))),
            End::BadPlan(e) => Err(Failure::Usage(anyhow!("the twin cannot be built for this board: {e}"))),
            _ if written.is_err() => Err(Failure::Runtime(written.unwrap_err())),
            End::Interrupted => Err(Failure::Device(anyhow!("interrupted: the plan did not finish"))),
            End::Done if report::passed(&self.steps) => Ok(()),
            End::Done => Err(Failure::Device(anyhow!(
                "the board did not pass {}: {} (see {})",
                self.plan.name,
                report::summary(&self.all_steps()),
                self.out.join("report.md").display()
            ))),
        }
    }

    /// Identity, the twin, then every step; reports written after each.
    async fn steps_of<T>(&mut self, bench: &mut Bench<T>, scenario: Option<&(PathBuf, Scenario)>) -> End
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        match bench.identity().await {
            Ok(id) => self.meta.identity = id,
            Err(a) => return End::Abort(a),
        }
        println!("board: {}", self.meta.identity.describe());
        if self
            .meta
            .identity
            .variant_v
            .and_then(|v| u64::try_from(v).ok())
            .and_then(models::variant::Variant::from_system_v)
            .is_none()
        {
            self.meta.notes.push(format!(
                "the board's variant_v could not be read as 12, 24 or 48: the {} V variant is assumed for % FS tolerances",
                bench.variant.system_v()
            ));
        }
        if self.plan.needs_twin() {
            match bench.start_twin(self.plan, scenario).await {
                Ok(Ok(())) => {
                    if let Some(Ok(ls)) = &bench.twin {
                        println!("twin: {}", ls.description);
                        self.meta.twin = Some(ls.description.clone());
                        self.meta.notes.extend(ls.notes.iter().cloned());
                    }
                }
                Ok(Err(e)) => {
                    self.meta.twin = Some(format!("not started: {e}"));
                    return End::BadPlan(e.to_string());
                }
                Err(a) => return End::Abort(a),
            }
        }
        if let Err(a) = self.write_reports().map_err(|e| Abort::Report(format!("{e:#}"))) {
            return End::Abort(a);
        }
        let total = self.plan.steps.len();
        for (i, step) in self.plan.steps.iter().enumerate() {
            self.current = Some(i);
            let wall0 = Instant::now();
            let board_s = match bench.observe().await {
                Ok(m) => m.map(|m| m.uptime_s),
                Err(a) => return End::Abort(a),
            };
            let outcome = match bench.run(step).await {
                Ok(o) => o,
                Err(a) => return End::Abort(a),
            };
            let r = step_report(i, step, outcome, wall0.elapsed().as_secs_f64(), board_s);
            println!("{}", report::console_line(&r, total));
            let failed = r.verdict != Verdict::Pass;
            self.steps.push(r);
            self.current = None;
            if let Err(e) = self.write_reports() {
                return End::Abort(Abort::Report(format!("{e:#}")));
            }
            if failed && self.plan.stop_on_fail {
                self.meta.ended_early =
                    Some(format!("step {} failed and the plan stops on a failure (stop_on_fail)", i + 1));
                break;
            }
        }
        End::Done
    }

    /// The steps done, then the rest as not run.
    fn all_steps(&self) -> Vec<StepReport> {
        let mut all = self.steps.clone();
        let why = self.meta.ended_early.clone().unwrap_or_else(|| "the plan has not reached it yet".into());
        for (i, s) in self.plan.steps.iter().enumerate().skip(all.len()) {
            let o = bench::Outcome {
                verdict: Verdict::NotRun,
                value: format!("not run: {why}"),
                limit: String::new(),
                detail: Vec::new(),
            };
            all.push(step_report(i, s, o, 0.0, None));
        }
        all
    }

    /// `report.md` and `junit.xml`, with every step (those not done yet as not run).
    fn write_reports(&self) -> anyhow::Result<()> {
        let steps = self.all_steps();
        let md = self.out.join("report.md");
        std::fs::write(&md, report::markdown(&self.meta, &steps))
            .with_context(|| format!("cannot write {}", md.display()))?;
        let mut buf = Vec::new();
        report::write_junit(&mut buf, &self.meta, &steps).expect("writing to memory");
        let junit = self.out.join("junit.xml");
        std::fs::write(&junit, buf).with_context(|| format!("cannot write {}", junit.display()))
    }
}

fn step_report(i: usize, step: &Step, o: bench::Outcome, wall_s: f64, board_s: Option<f64>) -> StepReport {
    StepReport {
        index: i + 1,
        name: step.name.clone(),
        kind: step.action.kind(),
        line: step.line,
        verdict: o.verdict,
        value: o.value,
        limit: o.limit,
        detail: o.detail,
        wall_s,
        board_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        use clap::Parser;
        let cli = crate::Cli::try_parse_from([&["hil-rig", "test"], args].concat())?;
        match cli.command {
            crate::Command::Test(cmd) => Ok(cmd),
            other => panic!("not test: {other:?}"),
        }
    }

    #[test]
    fn a_plan_with_or_without_a_port() {
        let c =
            parse(&["plans/acceptance.toml", "--port", "/dev/ttyUSB0", "--unit", "2", "--interval-ms", "200"]).unwrap();
        assert_eq!(c.link().unwrap().describe(), "unit 2 on /dev/ttyUSB0 at 19200 8E1");
        assert_eq!((c.interval_ms, c.out.as_path()), (Some(200), std::path::Path::new("out/test")));
        let c = parse(&["p.toml", "--check"]).unwrap();
        assert!(c.link().is_none() && c.check, "checks the plan only");
        assert!(parse(&["p.toml"]).is_err(), "--port or --check");
        // Issue 21 (5): with HIL_RIG_PORT exported (or --port given), --check still only checks.
        assert!(parse(&["p.toml", "--check", "--port", "p"]).unwrap().check, "the check wins");
        assert!(parse(&["--port", "p"]).is_err(), "the plan is required");
        assert!(parse(&["p.toml", "--interval-ms", "5"]).is_err());
    }
}
