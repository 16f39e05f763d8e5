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
    /// A scenario file, or a directory whose `*.toml` files are all run (sorted by name).
    pub path: PathBuf,
    /// Where `<name>/trace.csv` and `<name>/summary.json` go.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
}

/// The scenario files named by `path`.
pub fn scenario_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = fs::read_dir(path)
            .with_context(|| format!("reading directory {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("{}: no *.toml scenario files", path.display());
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_owned()])
    } else {
        anyhow::bail!("{}: no such file or directory", path.display())
    }
}

/// Runs everything; returns the process exit code.
pub fn execute(cmd: &Cmd) -> u8 {
    let files = match scenario_files(&cmd.path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    let mut code = exit::OK;
    let mut names = std::collections::HashSet::new();
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
        match run_one(&scenario, &cmd.out) {
            Ok(summary) => {
                print_line(&summary);
                if !summary.passed {
                    for c in summary.expectations.iter().filter(|c| !c.passed) {
                        let value = c.value.map_or("never happened".to_owned(), |v| format!("{v:.4}"));
                        eprintln!("  {}: {} = {value}, expected {}", scenario.name, c.metric, bounds(c.min, c.max));
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
    code
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("within {a}..={b}"),
        (Some(a), None) => format!("≥ {a}"),
        (None, Some(b)) => format!("≤ {b}"),
        (None, None) => "anything".into(),
    }
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
