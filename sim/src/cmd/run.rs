//! `smartpro-sim run`: run one scenario or a directory of them.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::exit;
use crate::engine::EngineError;
use crate::runner::{self, RunError, Summary};
use crate::scenario::Scenario;

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Scenario files and directories, any number (a directory: its `*.toml` files, sorted by name);
    /// a file named twice runs once.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Where `<name>/trace.csv` and `<name>/summary.json` go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Also write `<name>/trace.svg`: true vs measured vs estimated current, voltage, SOC and temperature
    /// over time (long traces decimated, keeping peaks), the cells (with `[lipro]`), switches, outputs and
    /// faults, the run's events and trips marked; and `<name>/transient.svg`, each transient event's µs
    /// waveform.
    #[arg(long)]
    pub plots: bool,
}

/// Runs everything; returns the process exit code.
pub fn execute(cmd: &Cmd) -> u8 {
    let files = match crate::tomlfile::toml_files(&cmd.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    let mut code = exit::OK;
    let mut names = std::collections::HashSet::new();
    // Every scenario's verdicts (or its error) for junit.xml.
    let mut junit: Vec<(String, Result<Summary, String>)> = Vec::new();
    println!(
        "{:<6} {:<34} {:<7} {:>10} {:>8} {:>9}  expectations",
        "result", "scenario", "variant", "sim_s", "wall_s", "speed"
    );
    for file in &files {
        let scenario = match Scenario::load(file) {
            Ok(s) => s,
            Err(e) => {
                println!("{:<6} {}", "ERROR", file.display());
                eprintln!("error: {e}");
                junit.push((file.display().to_string(), Err(e.to_string())));
                code = code.max(exit::BAD_INPUT);
                continue;
            }
        };
        if !names.insert(scenario.name.clone()) {
            eprintln!(
                "error: {}: scenario name {:?} is used twice; outputs would collide",
                file.display(),
                scenario.name
            );
            code = code.max(exit::BAD_INPUT);
            continue;
        }
        let result = run_one(&scenario, &cmd.out).and_then(|summary| {
            if cmd.plots {
                plot_trace(&cmd.out.join(&scenario.name), &scenario, &summary)?;
            }
            Ok(summary)
        });
        junit.push((scenario.name.clone(), result.as_ref().map(Summary::clone).map_err(|e| format!("{e:#}"))));
        match result {
            Ok(summary) => {
                print_line(&summary);
                if !summary.passed {
                    for c in summary.expectations.iter().filter(|c| !c.passed) {
                        let value = c.value.map_or("never happened".to_owned(), |v| format!("{v:.4}"));
                        let note = c.note.as_ref().map_or(String::new(), |n| format!(" ({n})"));
                        eprintln!(
                            "  {}: {} = {value}, expected {}{note}",
                            scenario.name,
                            c.metric,
                            bounds(c.min, c.max)
                        );
                    }
                    code = code.max(exit::EXPECTATION_FAILED);
                }
            }
            Err(e) => {
                println!("{:<6} {}", "ERROR", scenario.name);
                eprintln!("error: {}: {e:#}", file.display());
                // A set-up the board refuses is the scenario's fault, not the run's.
                let bad_setup = matches!(
                    e.downcast_ref::<RunError>(),
                    Some(RunError::Engine(EngineError::RegisterWrite { .. } | EngineError::Settings(_)))
                );
                code = code.max(if bad_setup { exit::BAD_INPUT } else { exit::RUNTIME });
            }
        }
    }
    print_totals(&junit);
    let junit_path = cmd.out.join("junit.xml");
    let written = fs::create_dir_all(&cmd.out)
        .and_then(|()| fs::File::create(&junit_path))
        .and_then(|f| write_junit(&mut BufWriter::new(f), &junit));
    if let Err(e) = written {
        eprintln!("error: writing {}: {e}", junit_path.display());
        code = code.max(exit::RUNTIME);
    }
    code
}

/// junit.xml: a test suite per scenario, a test case per expectation; a
/// scenario that could not run is one errored test case.
fn write_junit(w: &mut dyn std::io::Write, runs: &[(String, Result<Summary, String>)]) -> std::io::Result<()> {
    use crate::report::junit::{self, Case, Outcome, Problem, Report, Suite};
    let suites = runs
        .iter()
        .map(|(name, r)| match r {
            Ok(s) => Suite {
                name: name.clone(),
                time_s: Some(s.wall_s),
                cases: s
                    .expectations
                    .iter()
                    .map(|c| {
                        let outcome = if c.passed {
                            Outcome::Passed
                        } else {
                            let value = c.value.map_or("never happened".to_owned(), |v| format!("{v:.6}"));
                            let note = c.note.as_ref().map_or(String::new(), |n| format!(" ({n})"));
                            let msg = format!("{} = {value}, expected {}{note}", c.metric, bounds(c.min, c.max));
                            Outcome::Failure(Problem::message(msg))
                        };
                        Case::new(name.clone(), c.metric.clone(), outcome)
                    })
                    .collect(),
                ..Suite::default()
            },
            Err(e) => Suite {
                name: name.clone(),
                cases: vec![Case::new(name.clone(), "run", Outcome::Error(Problem::message(e.clone())))],
                ..Suite::default()
            },
        })
        .collect();
    junit::write(w, &Report { name: "smartpro-sim run".into(), time_s: None, suites })
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("within {a}..={b}"),
        (Some(a), None) => format!("≥ {a}"),
        (None, Some(b)) => format!("≤ {b}"),
        (None, None) => "anything".into(),
    }
}

/// The table's last line: how many scenarios passed, failed or could not run,
/// and the simulated and wall time of those that ran.
fn print_totals(runs: &[(String, Result<Summary, String>)]) {
    let ran: Vec<&Summary> = runs.iter().filter_map(|(_, r)| r.as_ref().ok()).collect();
    let passed = ran.iter().filter(|s| s.passed).count();
    let (sim_s, wall_s) = ran.iter().fold((0.0, 0.0), |(a, b), s| (a + s.simulated_s, b + s.wall_s));
    let (checks_passed, checks) = ran
        .iter()
        .fold((0, 0), |(p, n), s| (p + s.expectations.iter().filter(|c| c.passed).count(), n + s.expectations.len()));
    println!(
        "{:<6} {:<34} {:<7} {:>10.1} {:>8.2} {:>8.0}x  {checks_passed}/{checks}",
        "total",
        format!("{passed} passed, {} failed, {} errors", ran.len() - passed, runs.len() - ran.len()),
        "",
        sim_s,
        wall_s,
        sim_s / f64::max(wall_s, 1e-9)
    );
}

fn print_line(s: &Summary) {
    let passed = s.expectations.iter().filter(|c| c.passed).count();
    println!(
        "{:<6} {:<34} {:<7} {:>10.1} {:>8.2} {:>8.0}x  {}/{}",
        if s.passed { "PASS" } else { "FAIL" },
        s.name,
        s.variant,
        s.simulated_s,
        s.wall_s,
        s.simulated_s / s.wall_s.max(1e-9),
        passed,
        s.expectations.len()
    );
}

/// Runs one scenario into `out/<name>/`.
pub fn run_one(scenario: &Scenario, out: &Path) -> anyhow::Result<Summary> {
    let dir = out.join(&scenario.name);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let trace_path = dir.join("trace.csv");
    let file = fs::File::create(&trace_path).with_context(|| format!("creating {}", trace_path.display()))?;
    let mut trace = BufWriter::new(file);
    // The trace is flushed even when the run fails midway: what was recorded is kept.
    let result = runner::run(scenario, Some(&mut trace));
    std::io::Write::flush(&mut trace).with_context(|| format!("writing {}", trace_path.display()))?;
    let summary = result?;
    let json = serde_json::to_string_pretty(&summary)?;
    let summary_path = dir.join("summary.json");
    fs::write(&summary_path, json + "\n").with_context(|| format!("writing {}", summary_path.display()))?;
    Ok(summary)
}

/// Writes `trace.svg` beside `trace.csv` in `dir`, and `transient.svg` for
/// each transient event of the run ([`crate::report::trace::plot_run`]);
/// returns the files written.
pub fn plot_trace(dir: &Path, scenario: &Scenario, summary: &Summary) -> anyhow::Result<Vec<PathBuf>> {
    crate::report::trace::plot_run(dir, scenario, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Checked;

    #[test]
    fn junit_names_failures_and_errors() {
        let summary = |passed: bool| Summary {
            name: "s".into(),
            description: String::new(),
            variant: "12-209".into(),
            seed: 0,
            simulated_s: 1.0,
            wall_s: 0.5,
            adc_rate_hz: 1000,
            ticks: 1000,
            outcomes: Default::default(),
            expectations: vec![Checked {
                metric: "final_soc_error_pct".into(),
                min: None,
                max: Some(1.0),
                value: Some(if passed { 0.5 } else { 2.0 }),
                passed,
                note: None,
            }],
            passed,
        };
        let runs = vec![
            ("good".to_owned(), Ok(summary(true))),
            ("bad".to_owned(), Ok(summary(false))),
            ("broken <x>".to_owned(), Err("x.toml:3:1: unknown field `bogus`".to_owned())),
        ];
        let mut out = Vec::new();
        write_junit(&mut out, &runs).unwrap();
        let xml = String::from_utf8(out).unwrap();
        assert!(xml.contains(r#"tests="3" failures="1" errors="1""#), "{xml}");
        assert!(xml.contains("final_soc_error_pct = 2.000000, expected ≤ 1"), "{xml}");
        assert!(xml.contains("broken &lt;x&gt;") && xml.contains("unknown field `bogus`"), "{xml}");
    }
}
