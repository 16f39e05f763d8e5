//! The reports of `hil-rig compare`: `compare.csv` (written as the samples
//! come, so what was compared survives a vanished port), and at the end the
//! table per quantity (`report.md`, also printed), `junit.xml` and the plots
//! (`plots/<quantity>.svg` and `.png`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use smartpro_sim::report::junit::{self, Case, Outcome, Problem, Report, Suite};
use smartpro_sim::report::plot::{self, Figure, Formats, Panel, Series, Style};

use super::checks::{Finding, Judge, Point, Q};

/// Most points kept per quantity for the plots; longer sessions are decimated.
pub const MAX_PLOT_POINTS: usize = 2000;

/// What the session compared, for the reports' headings.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    /// The board: `unit 1 on /dev/ttyUSB0 at 19200 8E1` or `recording r.csv`.
    pub board: String,
    /// The twin: `scenario 24v-cycle (24 V, seed 3)`.
    pub twin: String,
    /// `measured` or `scenario`.
    pub drive: String,
    /// Where the twin started and why (`scenario, … run … to the board's
    /// first sample` or `rest, at the board's first SOC reading (…)`).
    pub start: String,
    /// The time axis: `uptime_s` or `time_s`.
    pub axis: String,
    /// Samples skipped (their measurements could not be read).
    pub skipped: u64,
    /// Remarks: settings that differ between board and twin, and the like.
    pub notes: Vec<String>,
    /// Why the session ended early (a vanished port, a silent board).
    pub error: Option<String>,
}

/// `compare.csv`, one row per compared sample, flushed at once.
#[derive(Debug)]
pub struct Csv {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Csv {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        let mut out = BufWriter::new(File::create(path)?);
        let mut header = vec!["time_s".to_string()];
        for q in Q::ALL {
            header.push(format!("{}_board_{}", q.key(), q.csv_unit()));
            header.push(format!("{}_twin_{}", q.key(), q.csv_unit()));
        }
        header.extend(["status_board", "status_twin", "faults_board", "faults_twin"].map(String::from));
        header.push(format!("{}_2sigma_pct", Q::SocTracked.key()));
        writeln!(out, "{}", header.join(","))?;
        out.flush()?;
        Ok(Self { path: path.to_owned(), out })
    }

    /// One row: the time, each quantity's board and twin value (empty: none),
    /// the status and fault bits of both, the tracking filter's 2σ band.
    pub fn row(&mut self, t_s: f64, points: &[(Q, Point)], bits: [Option<i64>; 4]) -> std::io::Result<()> {
        let mut line = format!("{t_s:.3}");
        let cell = |v: Option<f64>, d: usize| v.map_or(String::new(), |v| format!("{v:.d$}"));
        for (q, p) in points {
            line.push(',');
            line.push_str(&cell(p.board, q.decimals() + 1));
            line.push(',');
            line.push_str(&cell(p.twin, q.decimals() + 1));
        }
        for b in bits {
            line.push(',');
            if let Some(b) = b {
                line.push_str(&b.to_string());
            }
        }
        line.push(',');
        let band = points.iter().find(|(q, _)| *q == Q::SocTracked).and_then(|(_, p)| p.band);
        line.push_str(&cell(band, Q::SocTracked.decimals() + 1));
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The points of one quantity kept for its plot: every `stride`-th sample;
/// when there are too many, every other one is dropped and the stride doubles.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    stride: u64,
    seen: u64,
    pub points: Vec<(f64, Point)>,
}

impl Trace {
    pub fn push(&mut self, t_s: f64, p: Point) {
        self.stride = self.stride.max(1);
        if self.seen % self.stride == 0 {
            self.points.push((t_s, p));
            if self.points.len() > MAX_PLOT_POINTS {
                let mut k = 0;
                self.points.retain(|_| {
                    k += 1;
                    k % 2 == 1
                });
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

/// The verdict of one quantity, in words.
fn verdict(judge: &Judge, q: Q) -> String {
    if let Some((_, why)) = judge.not_compared.iter().find(|(k, _)| *k == q) {
        return format!("not compared ({why})");
    }
    let s = judge.stats(q);
    match (s.n, s.out) {
        (0, _) => "no samples".into(),
        (_, 0) => "pass".into(),
        (n, out) => format!("FAIL ({out} of {n} samples)"),
    }
}

/// The table per quantity and the findings (Markdown).
pub fn table(judge: &Judge, meta: &Meta) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "# hil-rig compare\n");
    let _ = writeln!(o, "- board: {}", meta.board);
    let _ = writeln!(o, "- twin: {}, drive: {}", meta.twin, meta.drive);
    if !meta.start.is_empty() {
        let _ = writeln!(o, "- twin start: {}", meta.start);
    }
    let _ = writeln!(
        o,
        "- {} samples over {:.1} s of board time ({}){}\n",
        judge.samples,
        judge.last_t_s,
        meta.axis,
        if meta.skipped > 0 { format!(", {} skipped (measurements not read)", meta.skipped) } else { String::new() }
    );
    let _ = writeln!(
        o,
        "| quantity | unit | samples | max \\|error\\| | mean \\|error\\| | tolerance at max | first out of tolerance | verdict |"
    );
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---|");
    for q in Q::ALL {
        let s = judge.stats(q);
        let d = q.decimals() + 1;
        let (max, mean, tol) = if s.n > 0 {
            (format!("{:.d$}", s.max_abs), format!("{:.d$}", s.mean_abs()), format!("{:.d$}", s.tol_at_max))
        } else {
            ("—".into(), "—".into(), "—".into())
        };
        let first = s.first_out_s.map_or("—".to_string(), |t| format!("{t:.1} s"));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {max} | {mean} | {tol} | {first} | {} |",
            q.key(),
            q.unit(),
            s.n,
            verdict(judge, q)
        );
    }
    let findings = judge.findings();
    let _ = writeln!(o, "\n## Findings\n");
    if findings.is_empty() {
        let _ = writeln!(o, "none");
    }
    for f in &findings {
        let _ = writeln!(o, "- {}", f.message);
    }
    if !meta.notes.is_empty() {
        let _ = writeln!(o, "\n## Notes\n");
        for n in &meta.notes {
            let _ = writeln!(o, "- {n}");
        }
    }
    if let Some(e) = &meta.error {
        let _ = writeln!(o, "\n## Session ended early\n\n{e}");
    }
    let _ = writeln!(
        o,
        "\nverdict: {}",
        if passed(judge) {
            "PASS (every quantity within tolerance)".to_string()
        } else {
            {
                let n = findings.len();
                format!("FAIL ({n} finding{})", if n == 1 { "" } else { "s" })
            }
        }
    );
    o
}

/// Every quantity within tolerance and nothing found.
pub fn passed(judge: &Judge) -> bool {
    Q::ALL.iter().all(|&q| judge.stats(q).passed()) && judge.findings().is_empty()
}

/// `junit.xml`: a test case per quantity (skipped when not compared) and
/// per finding; an errored test case when the session ended early.
pub fn write_junit(w: &mut dyn Write, judge: &Judge, meta: &Meta) -> std::io::Result<()> {
    let mut cases = Vec::new();
    for q in Q::ALL {
        let s = judge.stats(q);
        let outcome = if s.n == 0 {
            Outcome::Skipped(verdict(judge, q))
        } else if s.passed() {
            Outcome::Passed
        } else {
            let d = q.decimals() + 1;
            Outcome::Failure(Problem::message(format!(
                "{}: max error {:.d$} {u} (tolerance there {:.d$} {u}); first out of tolerance at {:.1} s; {} of {} samples out",
                q.title(),
                s.max_abs,
                s.tol_at_max,
                s.first_out_s.unwrap_or(0.0),
                s.out,
                s.n,
                u = q.unit()
            )))
        };
        cases.push(Case::new("quantity", q.key(), outcome));
    }
    let findings: Vec<Finding> = judge.findings();
    for f in findings {
        cases.push(Case::new("finding", f.id, Outcome::Failure(Problem::message(f.message))));
    }
    if let Some(e) = &meta.error {
        cases.push(Case::new("session", "session", Outcome::Error(Problem::message(e.clone()))));
    }
    let suite = Suite { name: format!("{} vs {}", meta.board, meta.twin), cases, ..Suite::default() };
    junit::write(w, &Report { name: "hil-rig compare".into(), time_s: None, suites: vec![suite] })
}

/// One figure per quantity with samples: board and twin over time, and the
/// error of the judged samples (not those in a grace time) with its
/// ±tolerance band. Returns the files written.
pub fn write_plots(dir: &Path, traces: &[(Q, Trace)]) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written = Vec::new();
    for (q, trace) in traces {
        let pts = &trace.points;
        if !pts.iter().any(|(_, p)| p.board.is_some()) {
            continue;
        }
        let series = |name: &str, i: usize, f: &dyn Fn(&Point) -> Option<f64>| Series {
            name: name.into(),
            color: plot::color(i),
            width: 2,
            style: Style::Line,
            points: pts.iter().filter_map(|(t, p)| f(p).map(|v| (*t, v))).collect(),
        };
        let red = |name: &str, sign: f64| Series {
            name: name.into(),
            color: plotters::style::RED.into(),
            width: 1,
            style: Style::Line,
            points: pts.iter().filter(|(_, p)| p.judged).map(|(t, p)| (*t, sign * p.tol)).collect(),
        };
        let mut value_series = vec![series("board", 0, &|p| p.board), series("twin", 1, &|p| p.twin)];
        if pts.iter().any(|(_, p)| p.band.is_some()) {
            value_series.push(series("twin ± 2σ", 3, &|p| p.twin.zip(p.band).map(|(y, b)| y + b)));
            value_series.push(series("", 3, &|p| p.twin.zip(p.band).map(|(y, b)| y - b)));
        }
        let values = Panel {
            y_desc: format!("{} ({})", q.key(), q.unit()),
            series: value_series,
            limits: Vec::new(),
            y_from_zero: false,
            ..Panel::default()
        };
        let error = Panel {
            y_desc: format!("board − twin ({})", q.unit()),
            series: vec![series("error", 2, &|p| p.err.filter(|_| p.judged)), red("± tolerance", 1.0), red("", -1.0)],
            limits: Vec::new(),
            y_from_zero: true,
            ..Panel::default()
        };
        let figure = Figure {
            title: q.title().to_string(),
            x_desc: "board time (s)".into(),
            size: (1000, 700),
            panels: vec![values, error],
            ..Figure::default()
        };
        written.extend(figure.render(dir, q.key(), Formats::SVG_AND_PNG)?);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_keeps_at_most_its_limit_evenly() {
        let mut t = Trace::default();
        for k in 0..10_000 {
            t.push(f64::from(k), Point::default());
        }
        assert!(t.points.len() <= MAX_PLOT_POINTS && t.points.len() > MAX_PLOT_POINTS / 2, "{}", t.points.len());
        let gaps: Vec<f64> = t.points.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(gaps.iter().all(|&g| g == gaps[0]), "even spacing");
        assert_eq!(t.points[0].0, 0.0);
    }
}
