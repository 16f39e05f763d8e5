//! `smartpro-sim run`: run one scenario or a directory of them.

use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::exit::{self, Exit};
use crate::engine::EngineError;
use crate::runner::{self, RunError, Summary};
use crate::scenario::Scenario;

/// `run`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "every scenario ran and every expectation passed"),
    (Exit::Failed, "a scenario ran and one of its expectations failed"),
    (
        Exit::BadInput,
        "bad input: arguments, a scenario that cannot be read or is malformed (file, line and column named), \
         two scenarios of one name, a set-up the board refuses",
    ),
    (Exit::Runtime, "runtime failure: an output that cannot be written, a model that left its valid range"),
];

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Scenario files and directories, any number (a directory: its `*.toml` files, sorted by name);
    /// a file named twice runs once.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Folder for `<name>/trace.csv`, `<name>/summary.json` and `junit.xml` (created).
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = "out", alias = "out")]
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
    // The trace is flushed even when the run fails midway: what was recorded is kept. A write
    // that fails (a full disk) stops the run at once, and the error names the file (issue 20).
    let result = runner::run(scenario, Some(&mut trace));
    let flushed = std::io::Write::flush(&mut trace);
    let stopped = |e: &std::io::Error| {
        anyhow::anyhow!("writing {}: {e}; the run stopped there, the rows before are kept", trace_path.display())
    };
    if let Err(RunError::Io(e)) = &result {
        return Err(stopped(e));
    }
    flushed.map_err(|e| stopped(&e))?;
    let summary = result?;
    let json = serde_json::to_string_pretty(&summary_json(&summary)?)?;
    let summary_path = dir.join("summary.json");
    fs::write(&summary_path, json + "\n").with_context(|| format!("writing {}", summary_path.display()))?;
    Ok(summary)
}

/// summary.json: the summary with every non-integer number rounded
/// ([`crate::report::json::round_numbers`]), and the yes/no metrics
/// ([`crate::metrics::BOOLEAN_METRICS`]) as `true`/`false` among the
/// outcomes and as an expectation's value.
pub fn summary_json(summary: &Summary) -> serde_json::Result<serde_json::Value> {
    use serde_json::Value;
    let boolean = |v: &mut Value| {
        if let Some(x) = v.as_f64() {
            *v = Value::Bool(x != 0.0);
        }
    };
    let mut json = serde_json::to_value(summary)?;
    crate::report::json::round_numbers(&mut json);
    if let Some(outcomes) = json.get_mut("outcomes").and_then(Value::as_object_mut) {
        for (metric, v) in outcomes.iter_mut() {
            if crate::metrics::BOOLEAN_METRICS.contains(&metric.as_str()) {
                boolean(v);
            }
        }
    }
    for e in json.get_mut("expectations").and_then(Value::as_array_mut).into_iter().flatten() {
        if e.get("metric").and_then(Value::as_str).is_some_and(|m| crate::metrics::BOOLEAN_METRICS.contains(&m)) {
            if let Some(v) = e.get_mut("value") {
                boolean(v);
            }
        }
    }
    Ok(json)
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

    /// Issue 21 (8): summary.json wrote `7800.000000000001` and the yes/no
    /// metrics as `1.0`.
    #[test]
    fn issue_21_summary_json_rounds_and_writes_booleans() {
        let mut outcomes = std::collections::BTreeMap::new();
        outcomes.insert("lvp_trip_time_s".to_owned(), 7800.000000000001);
        outcomes.insert("min_voltage_v".to_owned(), 0.1 + 0.2);
        outcomes.insert("transient_checks_passed".to_owned(), 1.0);
        outcomes.insert("transient_complete".to_owned(), 0.0);
        outcomes.insert("tiny_a".to_owned(), -1e-310);
        let summary = Summary {
            name: "s".into(),
            description: String::new(),
            variant: "12-209".into(),
            seed: u64::MAX,
            simulated_s: 7800.000000000001,
            wall_s: 0.123456789012345,
            adc_rate_hz: 1000,
            ticks: 7_800_000,
            outcomes,
            expectations: vec![Checked {
                metric: "transient_complete".into(),
                min: Some(1.0),
                max: None,
                value: Some(0.0),
                passed: false,
                note: None,
            }],
            passed: false,
        };
        let text = serde_json::to_string(&summary_json(&summary).unwrap()).unwrap();
        assert!(text.contains(r#""lvp_trip_time_s":7800.0"#), "{text}");
        assert!(text.contains(r#""simulated_s":7800.0"#) && text.contains(r#""wall_s":0.123456789012"#), "{text}");
        assert!(text.contains(r#""min_voltage_v":0.3"#), "{text}");
        assert!(text.contains(r#""transient_checks_passed":true"#), "{text}");
        assert!(text.contains(r#""transient_complete":false"#), "{text}");
        assert!(text.contains(r#""min":1.0"#) && text.contains(r#""value":false"#), "{text}");
        assert!(text.contains(&format!(r#""seed":{}"#, u64::MAX)) && text.contains(r#""ticks":7800000"#), "{text}");
        assert!(!text.contains("000000000001"), "{text}");
        // Each number reads back within its stated precision.
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        let v = back["outcomes"]["tiny_a"].as_f64().unwrap();
        assert!((v + 1e-310).abs() <= 1e-310 * 1e-11, "{v}");
    }

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

    /// Issue 20: a trace on a full disk (here /dev/full behind the trace's name) stops the run
    /// with an error naming the file and the cause; no summary is written as if it had passed.
    #[test]
    fn issue_20_a_trace_on_a_full_disk_stops_with_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("smartpro-run-full-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("full-disk")).unwrap();
        let trace = dir.join("full-disk/trace.csv");
        if std::os::unix::fs::symlink("/dev/full", &trace).is_err() || !Path::new("/dev/full").exists() {
            return;
        }
        let text = "name = \"full-disk\"\nvariant = 12\nseed = 1\ninitial_soc = 0.8\nadc_rate_hz = 100\n\
                    trace_interval_s = 0.01\n[[segment]]\nkind = \"rest\"\nduration_s = 600\n";
        let scenario = Scenario::parse(text, Path::new("full-disk.toml")).unwrap();
        let msg = format!("{:#}", run_one(&scenario, &dir).unwrap_err());
        assert!(msg.starts_with(&format!("writing {}: ", trace.display())), "{msg}");
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(msg.ends_with("the run stopped there, the rows before are kept"), "{msg}");
        assert!(!dir.join("full-disk/summary.json").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Issue 20: the rows written before the disk filled stay, whole, in order.
    #[test]
    fn issue_20_the_trace_rows_before_a_full_disk_are_kept() {
        struct FullAfter(Vec<u8>, usize);
        impl std::io::Write for FullAfter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let n = buf.len().min(self.1 - self.0.len());
                if n == 0 {
                    return Err(std::io::Error::from_raw_os_error(28));
                }
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let text = "name = \"kept\"\nvariant = 12\nseed = 1\ninitial_soc = 0.8\nadc_rate_hz = 100\n\
                    trace_interval_s = 0.01\n[[segment]]\nkind = \"rest\"\nduration_s = 600\n";
        let scenario = Scenario::parse(text, Path::new("kept.toml")).unwrap();
        let mut out = FullAfter(Vec::new(), 5000);
        let e = runner::run(&scenario, Some(&mut out)).unwrap_err();
        assert!(matches!(&e, RunError::Io(io) if io.raw_os_error() == Some(28)), "{e}");
        let kept = String::from_utf8(out.0).unwrap();
        assert_eq!(kept.len(), 5000);
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(lines[0], runner::TRACE_HEADER.trim_end());
        let cols = lines[0].split(',').count();
        for l in &lines[1..lines.len() - 1] {
            assert_eq!(l.split(',').count(), cols, "a whole row: {l}");
        }
    }
}
