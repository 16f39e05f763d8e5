//! The outputs of a sweep: results.csv, cases.jsonl, summary.json, summary.md, junit.xml, the table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use models::transient::{Bound, CHECK_NAMES, FUSE_CHECK};
use serde::Serialize;

use super::region::{self, Boundary, plot_axes};
use super::{CaseResult, Study, case_label, wilson_95, worst};
use crate::report::junit::{self, Case, Outcome, Problem, Report, Suite};

/// How a run came about (not part of the deterministic files except `shard`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunInfo {
    /// `(k, n)`: this is shard k of n (0-based).
    pub shard: Option<(usize, usize)>,
    pub jobs: usize,
    pub wall_s: f64,
}

type Column = (&'static str, fn(&CaseResult) -> String);

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(String::new, |x| format!("{x:.decimals$}"))
}

/// Output columns of results.csv, after `case`, the axes, `variant` and `event`.
const COLUMNS: &[Column] = &[
    ("source_v", |r| format!("{:.3}", r.metrics.source_v)),
    ("loop_inductance_uh", |r| format!("{:.4}", r.metrics.loop_inductance_uh)),
    ("loop_resistance_mohm", |r| format!("{:.4}", r.metrics.loop_resistance_mohm)),
    ("prospective_current_a", |r| format!("{:.1}", r.metrics.prospective_current_a)),
    ("peak_current_a", |r| format!("{:.1}", r.metrics.peak_current_a)),
    ("peak_current_us", |r| format!("{:.2}", r.metrics.peak_current_us)),
    ("trip_us", |r| opt(r.metrics.trip_us, 2)),
    ("switch_off_us", |r| opt(r.metrics.switch_off_us, 2)),
    ("overcurrent_us", |r| opt(r.metrics.overcurrent_us, 2)),
    ("time_to_zero_us", |r| opt(r.metrics.time_to_zero_us, 2)),
    ("final_current_a", |r| format!("{:.1}", r.metrics.final_current_a)),
    ("arrester_energy_j", |r| format!("{:.4}", r.metrics.arrester_energy_j)),
    ("arrester_peak_power_w", |r| format!("{:.0}", r.metrics.arrester_peak_power_w)),
    ("arrester_pulse_us", |r| format!("{:.2}", r.metrics.arrester_pulse_us)),
    ("arrester_allowed_power_w", |r| format!("{:.0}", r.metrics.arrester_allowed_power_w)),
    ("arrester_margin_pct", |r| format!("{:.1}", r.metrics.arrester_margin_pct)),
    ("peak_switch_voltage_v", |r| format!("{:.2}", r.metrics.peak_switch_voltage_v)),
    ("switch_voltage_rating_v", |r| format!("{:.0}", r.metrics.switch_voltage_rating_v)),
    ("switch_i2t_a2s", |r| format!("{:.4}", r.metrics.switch_i2t_a2s)),
    ("switch_energy_j", |r| format!("{:.4}", r.metrics.switch_energy_j)),
    ("peak_bus_voltage_v", |r| format!("{:.2}", r.metrics.peak_bus_voltage_v)),
    ("followed_us", |r| format!("{:.2}", r.metrics.followed_us)),
    // An incomplete event's figures that are bounds: `name>=` lower, `name<=` upper (empty: all final).
    ("bounds", |r| {
        let b = r.metrics.bounds();
        b.iter()
            .map(|(f, b)| format!("{f}{}", if *b == Bound::Upper { "<=" } else { ">=" }))
            .collect::<Vec<_>>()
            .join(" ")
    }),
    ("utilisation", |r| format!("{:.4}", r.utilisation)),
];

/// With a PowerPro in any case (`[powerpro]`): its fuse's and switch's figures, after [`COLUMNS`]
/// (then `fuse_ok` after the checks); a study without one keeps its columns.
const POWERPRO_COLUMNS: &[Column] = &[
    ("fuse_melt_us", |r| opt(r.metrics.fuse_melt_us, 2)),
    ("fuse_cleared_us", |r| opt(r.metrics.fuse_cleared_us, 2)),
    ("fuse_i2t_a2s", |r| opt(r.metrics.fuse_i2t_a2s, 1)),
    ("fuse_curve_cleared_us", |r| opt(r.metrics.fuse_curve_cleared_us, 2)),
    ("fuse_curve_i2t_a2s", |r| opt(r.metrics.fuse_curve_i2t_a2s, 1)),
    ("powerpro_trip_us", |r| opt(r.metrics.powerpro_trip_us, 2)),
    ("powerpro_interrupted_us", |r| opt(r.metrics.powerpro_interrupted_us, 2)),
    ("arc_energy_j", |r| format!("{:.4}", r.metrics.arc_energy_j)),
    ("peak_arc_voltage_v", |r| format!("{:.2}", r.metrics.peak_arc_voltage_v)),
];

/// Some case has the PowerPro in its loop.
pub fn has_powerpro(results: &[CaseResult]) -> bool {
    results.iter().any(|r| r.metrics.fuse_i2t_a2s.is_some())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// results.csv: one row per case, inputs (axes) then outputs and verdicts.
pub fn write_csv(w: &mut dyn Write, study: &Study, results: &[CaseResult]) -> std::io::Result<()> {
    let mut head = vec!["case".to_owned()];
    head.extend(study.value_columns().iter().map(|c| csv_field(c)));
    head.extend(["variant".into(), "event".into()]);
    let pp = has_powerpro(results);
    let extra: &[Column] = if pp { POWERPRO_COLUMNS } else { &[] };
    let checks: Vec<&str> = CHECK_NAMES.iter().copied().chain(pp.then_some(FUSE_CHECK)).collect();
    head.extend(COLUMNS.iter().chain(extra).map(|(h, _)| (*h).to_owned()));
    head.extend(checks.iter().map(|c| format!("{c}_ok")));
    head.extend(["passed".into(), "verdict".into()]);
    writeln!(w, "{}", head.join(","))?;
    for r in results {
        let mut row = vec![r.index.to_string()];
        row.extend(r.values.iter().map(|v| csv_field(v)));
        row.extend([r.variant.to_string(), r.event.clone()]);
        row.extend(COLUMNS.iter().chain(extra).map(|(_, f)| f(r)));
        row.extend(checks.iter().map(|name| {
            r.checks.iter().find(|c| c.name == *name).map_or(String::new(), |c| u8::from(c.passed).to_string())
        }));
        row.extend([u8::from(r.passed).to_string(), r.verdict().as_str().to_owned()]);
        writeln!(w, "{}", row.join(","))?;
    }
    Ok(())
}

/// cases.jsonl: one JSON object per case, what `smartpro-sim merge` reads.
pub fn write_jsonl(w: &mut dyn Write, results: &[CaseResult]) -> std::io::Result<()> {
    for r in results {
        serde_json::to_writer(&mut *w, r)?;
        writeln!(w)?;
    }
    Ok(())
}

/// Reads a cases.jsonl.
pub fn read_jsonl(path: &Path) -> Result<Vec<CaseResult>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::io::BufReader::new(f)
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(n, l)| {
            let l = l.map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}

/// junit.xml: one test case per case and check; a failed check carries its reason.
pub fn write_junit(w: &mut dyn Write, study: &Study, results: &[CaseResult]) -> std::io::Result<()> {
    let width = study.len().saturating_sub(1).to_string().len();
    let mut cases = Vec::new();
    for r in results {
        let label = case_label(study, r);
        let class = format!("{}.case{:0width$}", study.name, r.index);
        for c in &r.checks {
            let name = if label.is_empty() { c.name.clone() } else { format!("{} [{label}]", c.name) };
            let outcome = if c.passed {
                Outcome::Passed
            } else {
                Outcome::Failure(Problem {
                    message: c.reason.clone(),
                    kind: Some(c.name.clone()),
                    text: Some(format!(
                        "{}: {} (value {:.3} {}, limit {:.3} {})",
                        c.name, c.reason, c.value, c.unit, c.limit, c.unit
                    )),
                })
            };
            cases.push(Case { time_s: Some(0.0), ..Case::new(class.clone(), name, outcome) });
        }
    }
    let suite = Suite { name: study.name.clone(), cases, ..Suite::default() };
    junit::write(w, &Report { name: "smartpro-sim sweep".into(), time_s: None, suites: vec![suite] })
}

#[derive(Debug, Serialize)]
struct SeriesBoundary {
    series: Option<String>,
    #[serde(flatten)]
    boundary: Option<Boundary>,
}

/// Where along the plots' x parameter the design stops passing, per series value.
fn safe_region(study: &Study, results: &[CaseResult]) -> Option<(String, Vec<SeriesBoundary>)> {
    let axes = plot_axes(study);
    let x = axes.x.filter(|x| x.is_numeric(study))?;
    let rows = match axes.series {
        Some(s) => region::boundaries_by(study, results, x, s)
            .into_iter()
            .map(|(label, boundary)| SeriesBoundary { series: Some(label), boundary })
            .collect(),
        None => vec![SeriesBoundary { series: None, boundary: region::boundary_of(study, results, x, |_| true) }],
    };
    Some((x.name(study).to_owned(), rows))
}

/// summary.json.
pub fn summary_json(study: &Study, results: &[CaseResult], info: &RunInfo) -> serde_json::Value {
    let passed = results.iter().filter(|r| r.passed).count();
    let mut failures: BTreeMap<&str, usize> = CHECK_NAMES.iter().map(|c| (*c, 0)).collect();
    for r in results {
        for c in r.checks.iter().filter(|c| !c.passed) {
            *failures.entry(c.name.as_str()).or_default() += 1;
        }
    }
    let mut ranked: Vec<&CaseResult> = results.iter().collect();
    ranked.sort_by(|a, b| b.utilisation.total_cmp(&a.utilisation).then(a.index.cmp(&b.index)));
    let worst_cases: Vec<serde_json::Value> = ranked
        .iter()
        .take(5)
        .map(|r| {
            serde_json::json!({
                "case": r.index,
                "values": case_label(study, r),
                "utilisation": r.utilisation,
                "passed": r.passed,
                "checks": r.checks.iter().map(|c| serde_json::json!({"name": c.name, "passed": c.passed, "reason": c.reason})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let safe = safe_region(study, results).map(|(x, rows)| serde_json::json!({ "x": x, "series": rows }));
    let (ci_lo, ci_hi) = wilson_95(passed, results.len());
    let monte_carlo = study.monte_carlo.as_ref().map(|m| {
        serde_json::json!({
            "samples_per_grid_point": m.samples,
            "grid_points": study.len() / m.samples,
            "seed": m.seed,
            "random": m.params.iter().map(|p| serde_json::to_value(p.to_table()).unwrap_or_default()).collect::<Vec<_>>(),
        })
    });
    let mut json = serde_json::json!({
        "study": study.name,
        "description": study.description,
        "cases_in_study": study.len(),
        "shard": info.shard.map(|(k, n)| {
            let r = super::shard_range(study.len(), k, n);
            serde_json::json!({ "index": k, "count": n, "first_case": r.start, "end_case": r.end })
        }),
        "cases": results.len(),
        "passed": passed,
        "failed": results.len() - passed,
        "pass_rate": if results.is_empty() { 1.0 } else { passed as f64 / results.len() as f64 },
        "pass_rate_ci95": [ci_lo, ci_hi],
        "monte_carlo": monte_carlo,
        "check_failures": failures,
        "worst": worst_cases,
        "safe_region": safe,
        "jobs": info.jobs,
        "wall_s": info.wall_s,
        "cases_per_s": results.len() as f64 / info.wall_s.max(1e-9),
    });
    crate::report::json::round_numbers(&mut json);
    json
}

/// Writes study.toml, cases.jsonl, results.csv, summary.json, summary.md and junit.xml into `dir`.
pub fn write_files(dir: &Path, study: &Study, results: &[CaseResult], info: &RunInfo) -> std::io::Result<()> {
    let with = |name: &str, f: &dyn Fn(&mut dyn Write) -> std::io::Result<()>| -> std::io::Result<()> {
        let path = dir.join(name);
        let file = std::fs::File::create(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        w.flush().map_err(|e| std::io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    with("study.toml", &|w| w.write_all(study.resolved_toml().as_bytes()))?;
    with("cases.jsonl", &|w| write_jsonl(w, results))?;
    with("results.csv", &|w| write_csv(w, study, results))?;
    with("junit.xml", &|w| write_junit(w, study, results))?;
    with("summary.md", &|w| w.write_all(super::summary::markdown(study, results, info.shard).as_bytes()))?;
    with("summary.json", &|w| {
        serde_json::to_writer_pretty(&mut *w, &summary_json(study, results, info))?;
        writeln!(w)
    })
}

/// The table printed at the end: every case when there are few, else the
/// worst ten; then the totals.
pub fn table(study: &Study, results: &[CaseResult], info: &RunInfo) -> String {
    let mut s = String::new();
    let axes = study.value_columns();
    let _ = writeln!(
        s,
        "{:<6} {:>6}  {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}  {}",
        "result",
        "case",
        "peak_A",
        "trip_us",
        "over_us",
        "zero_us",
        "tvs_J",
        "margin%",
        "v_sw_V",
        if axes.is_empty() { String::new() } else { axes.join(", ") }
    );
    let mut shown: Vec<&CaseResult> = results.iter().collect();
    let few = results.len() <= 25;
    if !few {
        shown.sort_by(|a, b| b.utilisation.total_cmp(&a.utilisation).then(a.index.cmp(&b.index)));
        shown.truncate(10);
    }
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"));
    for r in &shown {
        let m = &r.metrics;
        let _ = writeln!(
            s,
            "{:<6} {:>6}  {:>8.0} {:>8} {:>8} {:>9} {:>8.3} {:>8.0} {:>8.1}  {}",
            r.verdict().as_str(),
            r.index,
            m.peak_current_a,
            f(m.trip_us),
            f(m.overcurrent_us),
            f(m.time_to_zero_us),
            m.arrester_energy_j,
            m.arrester_margin_pct,
            m.peak_switch_voltage_v,
            r.values.join(", ")
        );
        for c in r.checks.iter().filter(|c| !c.passed) {
            let _ = writeln!(s, "         {}: {}", c.name, c.reason);
        }
    }
    if !few {
        let _ = writeln!(s, "(the 10 worst of {} cases; all in results.csv)", results.len());
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(
        s,
        "{} cases: {} passed, {} failed; {:.2} s on {} thread(s), {:.0} cases/s",
        results.len(),
        passed,
        results.len() - passed,
        info.wall_s,
        info.jobs,
        results.len() as f64 / info.wall_s.max(1e-9)
    );
    if let Some(w) = worst(results) {
        let label = case_label(study, w);
        let label = if label.is_empty() { String::new() } else { format!(" ({label})") };
        let _ = writeln!(
            s,
            "worst: case {}{label}, utilisation {:.2} (largest check value / limit)",
            w.index, w.utilisation
        );
    }
    s
}
