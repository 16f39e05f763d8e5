//! `smartpro-sim sweep`: what-if studies of short circuits and turn-off
//! surges (grids and Monte Carlo), and `smartpro-sim merge` (also `sweep
//! merge`): shards' folders joined into the outputs of one unsharded run.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::exit::{self, Exit};
use crate::report::plot::Formats;
use crate::sweep::plot;
use crate::sweep::report::{self, RunInfo};
use crate::sweep::{self, CaseResult, Study};

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cmd {
    #[command(subcommand)]
    pub action: Option<Action>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Join the output folders of `--shard` runs into the outputs one unsharded run would write
    /// (the same as `smartpro-sim merge`).
    #[command(after_help = help())]
    Merge(MergeArgs),
}

/// Slice K of N of a study's cases (0-based K).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "{s:?}: expected K/N with 0 <= K < N, e.g. 0/4 (K is 0-based, as $SLURM_ARRAY_TASK_ID or $JOB_COMPLETION_INDEX)"
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) =
            (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Study files and directories of them, any number (a directory: its `*.toml` files, sorted by
    /// name): one case, a grid of cases ([[axis]] tables) and/or a Monte Carlo ([[random]] tables,
    /// samples, seed); see docs/studies.md. Each study writes its own folder.
    #[arg(value_name = "STUDY")]
    pub studies: Vec<PathBuf>,
    /// Output folder of one study [default: out/<study name>, or out/<study name>/shard-K-of-N with
    /// --shard]; with several studies each writes out/<study name>, and --out-dir is refused.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", alias = "out")]
    pub out: Option<PathBuf>,
    /// Worker threads [default: all cores].
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..), usize::from))]
    pub jobs: Option<usize>,
    /// Run only slice K of N of the cases (0-based K: 0/4 … 3/4), for a cluster; join the folders with
    /// `smartpro-sim merge`. A shard draws the same Monte Carlo values for its cases as an unsharded run.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Write no plots (SVG and PNG); shards never write them.
    #[arg(long)]
    pub no_plots: bool,
}

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The shards' output folders (each with study.toml and cases.jsonl), in any order.
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the joined outputs go [default: out/<study name>].
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", alias = "out")]
    pub out: Option<PathBuf>,
    /// Write no plots (SVG and PNG).
    #[arg(long)]
    pub no_plots: bool,
}

/// `sweep`'s (and `merge`'s) exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "every case passed every datasheet check"),
    (
        Exit::Failed,
        "a case failed a check (peak current, shutdown, arrester, switch voltage) or is INCOMPLETE \
         (its event had not ended within solver.window_us)",
    ),
    (Exit::BadInput, "bad input: a study file, arguments, shards that do not fit together"),
    (Exit::Runtime, "runtime failure: an output that cannot be written"),
];

/// The end of `sweep --help` and `merge --help`: the outputs and the exit codes.
pub fn help() -> String {
    "Outputs: results.csv, summary.md, summary.json, junit.xml, cases.jsonl, study.toml; plots as SVG and PNG \
     (not for shards).\n\n"
        .to_owned()
        + &exit::help(EXIT_CODES)
}

/// When `sweep` shows its progress: on a terminal (stderr), once the cases
/// have taken [`Progress::AFTER_S`], then at most every [`Progress::EVERY_S`]
/// (one line redrawn); in a log (not a terminal), a line every
/// [`Progress::LOG_EVERY_S`]. A job done before [`Progress::AFTER_S`] prints none.
#[derive(Debug)]
struct Progress {
    cases: usize,
    terminal: bool,
    started: Instant,
    /// When the last line was shown (s since the start), and whether a terminal line is open.
    last: std::sync::Mutex<(Option<f64>, bool)>,
}

impl Progress {
    /// Seconds before the first progress line (as `run`'s progress: `runner::Progress`).
    const AFTER_S: f64 = 2.0;
    /// Seconds between two redraws on a terminal.
    const EVERY_S: f64 = 0.5;
    /// Seconds between two lines in a log.
    const LOG_EVERY_S: f64 = 30.0;

    fn new(cases: usize, terminal: bool) -> Self {
        Progress { cases, terminal, started: Instant::now(), last: std::sync::Mutex::new((None, false)) }
    }

    /// The text to show after `done` cases at `elapsed_s`, if any: `\r…` on a terminal, a line in a log.
    fn line(&self, done: usize, elapsed_s: f64) -> Option<String> {
        let Ok(mut last) = self.last.lock() else { return None };
        let (shown_s, open) = *last;
        let every = if self.terminal { Self::EVERY_S } else { Self::LOG_EVERY_S };
        let first = if self.terminal { Self::AFTER_S } else { Self::LOG_EVERY_S };
        let end = done == self.cases;
        let due = match shown_s {
            None => elapsed_s >= first,
            Some(t) => elapsed_s - t >= every,
        };
        // The last case closes an open terminal line; otherwise only what is due is shown.
        if !(due || (end && open)) {
            return None;
        }
        *last = (Some(elapsed_s), self.terminal && !end);
        let text = format!("{done}/{} cases, {elapsed_s:.0} s", self.cases);
        Some(if !self.terminal {
            format!("{text}\n")
        } else if end {
            format!("\r{text}\n")
        } else {
            format!("\r{text}")
        })
    }

    fn report(&self, done: usize) {
        if let Some(text) = self.line(done, self.started.elapsed().as_secs_f64()) {
            eprint!("{text}");
        }
    }
}

/// Runs the command; returns the process exit code.
pub fn execute(cmd: &Cmd) -> u8 {
    match &cmd.action {
        Some(Action::Merge(m)) => merge(m),
        None => run(&cmd.run),
    }
}

fn run(args: &RunArgs) -> u8 {
    if args.studies.is_empty() {
        eprintln!(
            "error: give a study file (smartpro-sim sweep STUDY.toml), or join shards with `smartpro-sim merge DIR...`"
        );
        return exit::BAD_INPUT;
    }
    let files = match crate::tomlfile::toml_files(&args.studies) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    if files.len() > 1 && (args.out.is_some() || args.shard.is_some()) {
        let flag = if args.out.is_some() { "--out-dir" } else { "--shard" };
        eprintln!(
            "error: {flag} applies to one study, and {} were given ({}); run them one by one, or without {flag} \
             (each study writes out/<study name>)",
            files.len(),
            files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
        );
        return exit::BAD_INPUT;
    }
    // The worst outcome of all studies (bad input > runtime failure > a failing case).
    files.iter().map(|path| run_study(path, args)).fold(exit::OK, combine)
}

/// The exit code of several studies: bad input first, then a runtime failure, then a failing case.
fn combine(a: u8, b: u8) -> u8 {
    let rank = |c: u8| match c {
        exit::OK => 0,
        exit::EXPECTATION_FAILED => 1,
        exit::RUNTIME => 2,
        _ => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn run_study(path: &Path, args: &RunArgs) -> u8 {
    let study = match Study::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let range = match args.shard {
        Some(s) => sweep::shard_range(study.len(), s.index, s.count),
        None => 0..study.len(),
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let base = Path::new("out").join(&study.name);
        match args.shard {
            Some(s) => base.join(format!("shard-{}-of-{}", s.index, s.count)),
            None => base,
        }
    });
    println!(
        "study {}: {} case(s){}, {} thread(s) → {}",
        study.name,
        study.len(),
        args.shard.map_or(String::new(), |s| format!(
            ", shard {}/{}: cases {}..{}",
            s.index, s.count, range.start, range.end
        )),
        jobs,
        out.display()
    );
    let progress = Progress::new(range.len(), std::io::stderr().is_terminal());
    let progress = |done: usize| progress.report(done);
    let started = Instant::now();
    let results = match sweep::run_cases(&study, range, jobs, &progress) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return exit::BAD_INPUT;
        }
    };
    let info = RunInfo { shard: args.shard.map(|s| (s.index, s.count)), jobs, wall_s: started.elapsed().as_secs_f64() };
    finish(&study, &results, &info, &out, !args.no_plots && args.shard.is_none())
}

/// `smartpro-sim merge` (and `sweep merge`); returns the process exit code.
pub fn merge(args: &MergeArgs) -> u8 {
    let started = Instant::now();
    let mut text: Option<(PathBuf, String)> = None;
    let mut parts: Vec<CaseResult> = Vec::new();
    for dir in &args.dirs {
        let study_path = dir.join("study.toml");
        let t = match std::fs::read_to_string(&study_path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {}: {e} (not the output folder of a sweep?)", study_path.display());
                return exit::BAD_INPUT;
            }
        };
        match &text {
            Some((first, t0)) if *t0 != t => {
                eprintln!(
                    "error: {} and {} are different studies; only shards of one study merge",
                    first.display(),
                    study_path.display()
                );
                return exit::BAD_INPUT;
            }
            Some(_) => {}
            None => text = Some((study_path.clone(), t)),
        }
        match report::read_jsonl(&dir.join("cases.jsonl")) {
            Ok(r) => parts.extend(r),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    let Some((study_path, t)) = text else { return exit::BAD_INPUT };
    let study = match Study::parse(&t, &study_path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let results = match sweep::merge(parts, study.len()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: merging {} folder(s) of study {}: {e}", args.dirs.len(), study.name);
            return exit::BAD_INPUT;
        }
    };
    let out = args.out.clone().unwrap_or_else(|| Path::new("out").join(&study.name));
    println!(
        "study {}: merged {} case(s) from {} shard(s) → {}",
        study.name,
        results.len(),
        args.dirs.len(),
        out.display()
    );
    let info = RunInfo { shard: None, jobs: 1, wall_s: started.elapsed().as_secs_f64() };
    finish(&study, &results, &info, &out, !args.no_plots)
}

/// Writes the outputs, prints the table; the exit code from the verdicts.
fn finish(study: &Study, results: &[CaseResult], info: &RunInfo, out: &Path, plots: bool) -> u8 {
    if let Err(e) = report::write_files(out, study, results, info) {
        eprintln!("error: {e}");
        return exit::RUNTIME;
    }
    let mut written = vec!["results.csv", "summary.md", "summary.json", "junit.xml", "cases.jsonl", "study.toml"]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    if plots {
        match plot_all(out, study, results) {
            Ok(files) => written.extend(files),
            Err(e) => {
                eprintln!("error: {e}");
                return exit::RUNTIME;
            }
        }
    }
    print!("{}", report::table(study, results, info));
    println!("wrote {} in {}", written.join(", "), out.display());
    if results.iter().all(|r| r.passed) { exit::OK } else { exit::EXPECTATION_FAILED }
}

fn plot_all(out: &Path, study: &Study, results: &[CaseResult]) -> Result<Vec<String>, String> {
    let mut files = plot::metric_plots(out, study, results, Formats::SVG_AND_PNG)?;
    if let Some(w) = sweep::worst(results) {
        let case = &study.cases[w.index];
        let outcome = sweep::simulate_case(case, true).map_err(|e| e.to_string())?;
        let label = sweep::case_label(study, w);
        let title = if label.is_empty() {
            format!("{} — {} V, {}", study.name, w.variant, w.verdict().as_str())
        } else {
            format!("{} — worst case {}: {label} ({})", study.name, w.index, w.verdict().as_str())
        };
        let stem = if study.len() == 1 { "waveform" } else { "waveform_worst" };
        files.extend(plot::waveform_figure(&title, &outcome, &case.params).render(out, stem, Formats::SVG_AND_PNG)?);
    }
    Ok(files.iter().filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21 (8): a 10 ms job printed ten progress lines in a log. Now
    /// nothing before 2 s on a terminal (30 s in a log), then at most one
    /// redraw per 0.5 s (a line per 30 s), and a terminal line is closed.
    #[test]
    fn issue_21_sweep_progress_only_when_it_helps() {
        for terminal in [false, true] {
            let p = Progress::new(10_000, terminal);
            let lines: Vec<String> = (1..=10_000).filter_map(|d| p.line(d, d as f64 * 1e-6)).collect();
            assert!(lines.is_empty(), "a 10 ms job showed {lines:?}");
        }
        // 100 s of cases on a terminal: one redraw per 0.5 s from 2 s, the line closed at the end.
        let p = Progress::new(1000, true);
        let lines: Vec<String> = (1..=1000).filter_map(|d| p.line(d, d as f64 * 0.1)).collect();
        assert_eq!(lines.first().map(String::as_str), Some("\r20/1000 cases, 2 s"));
        assert!(lines.len() <= 1 + 98 * 2 + 1, "{}", lines.len());
        assert_eq!(lines.last().map(String::as_str), Some("\r1000/1000 cases, 100 s\n"));
        // In a log: whole lines, every 30 s, none at the end unless due.
        let p = Progress::new(1000, false);
        let lines: Vec<String> = (1..=1000).filter_map(|d| p.line(d, d as f64 * 0.1)).collect();
        assert_eq!(lines, ["300/1000 cases, 30 s\n", "600/1000 cases, 60 s\n", "900/1000 cases, 90 s\n"]);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1-4".parse::<Shard>().is_err());
    }
}
