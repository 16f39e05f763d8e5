//! summary.md: a study's results for people — pass rate, the worst cases
//! per check with their parameters and reasons, the boundary of the safe
//! region along every varied parameter (and per value of every other
//! axis), and what a Monte Carlo drew.
//!
//! Everything in it follows from the study and the results alone (no wall
//! time, no thread count), so an unsharded run and a merge of shards write
//! the same bytes.

use std::fmt::Write as _;

use models::transient::{CHECK_NAMES, COMPLETE_CHECK, Check, Verdict};

use super::random::{Dist, round_significant};
use super::region::{self, Param};
use super::{CaseResult, Study, case_label, wilson_95};

/// Worst cases listed per check.
const WORST_PER_CHECK: usize = 3;
/// Per-value tables only for axes with at most this many values.
const MAX_TABLE_ROWS: usize = 30;

/// `x` to 4 significant digits, as few characters as it takes.
fn num(x: f64) -> String {
    round_significant(x, 4).to_string()
}

/// A check's figure with its unit, W as kW.
fn with_unit(x: f64, unit: &str) -> String {
    if unit == "W" && x.abs() >= 1e3 { format!("{} kW", num(x * 1e-3)) } else { format!("{} {unit}", num(x)) }
}

/// A check's verdict in a table: pass, **FAIL**, or **undecided** (a bound of an incomplete event within its limit).
fn check_verdict(c: &Check) -> &'static str {
    match (c.passed, c.decided) {
        (true, _) => "pass",
        (false, true) if c.name == COMPLETE_CHECK => "**INCOMPLETE**",
        (false, true) => "**FAIL**",
        (false, false) => "**undecided**",
    }
}

/// How far a check is from failing: value/limit (> 1 fails).
fn ratio(c: &Check) -> f64 {
    if c.limit > 0.0 && c.value.is_finite() {
        c.value / c.limit
    } else if c.passed {
        0.0
    } else {
        f64::INFINITY
    }
}

fn dist_text(d: &Dist) -> String {
    let window = |min: Option<f64>, max: Option<f64>| match (min, max) {
        (None, None) => String::new(),
        (a, b) => format!(
            ", truncated to {} … {}",
            a.map_or("−∞".into(), |v| v.to_string()),
            b.map_or("∞".into(), |v| v.to_string())
        ),
    };
    match *d {
        Dist::Normal { mean, sd, min, max } => format!("normal, mean {mean}, sd {sd}{}", window(min, max)),
        Dist::LogNormal { mean, sd, min, max } => format!("lognormal, mean {mean}, sd {sd}{}", window(min, max)),
        Dist::Uniform { min, max } => format!("uniform {min} … {max}"),
        Dist::Triangular { min, mode, max } => format!("triangular {min} … {max}, mode {mode}"),
    }
}

/// The markdown text of summary.md.
pub fn markdown(study: &Study, results: &[CaseResult], shard: Option<(usize, usize)>) -> String {
    let mut s = String::new();
    let n = results.len();
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(s, "# {}: summary\n", study.name);
    if !study.description.is_empty() {
        let _ = writeln!(s, "{}\n", study.description);
    }
    let grid_points = study.len() / study.samples().max(1);
    let shape = match &study.monte_carlo {
        Some(m) => format!(
            "{grid_points} grid point(s) × {} Monte Carlo draw(s), seed {}; draw s is the same at every grid point",
            m.samples, m.seed
        ),
        None if study.axes.is_empty() => "a single case".into(),
        None => format!(
            "a grid of {}",
            study.axes.iter().map(|a| format!("{} {}", a.values.len(), a.param)).collect::<Vec<_>>().join(" × ")
        ),
    };
    let _ = writeln!(s, "{} case(s): {shape}.", study.len());
    if let Some((k, count)) = shard {
        let r = super::shard_range(study.len(), k, count);
        let _ = writeln!(
            s,
            "\nThis is shard {k} of {count} (cases {}..{}): `smartpro-sim merge` of all shards gives the study's summary.",
            r.start, r.end
        );
    }
    let rate = if n == 0 { 100.0 } else { 100.0 * passed as f64 / n as f64 };
    let _ = write!(s, "\n**Pass rate: {} %** ({passed} of {n} cases pass every check", num(rate));
    if study.monte_carlo.is_some() {
        let (lo, hi) = wilson_95(passed, n);
        let _ = write!(s, "; 95 % confidence interval {} … {} %, Wilson", num(100.0 * lo), num(100.0 * hi));
    }
    let _ = writeln!(s, ").\n");
    let incomplete: Vec<&CaseResult> = results.iter().filter(|r| !r.metrics.complete).collect();
    if !incomplete.is_empty() {
        let undecided = incomplete.iter().filter(|r| r.verdict() == Verdict::Incomplete).count();
        let _ = writeln!(
            s,
            "**{} case(s) INCOMPLETE**: the event had not ended when the window's bound (`solver.window_us`) was \
             reached; their peaks, energies and times are lower bounds and their arrester margins upper bounds \
             (results.csv: `bounds`). {undecided} of them cannot be judged (verdict INCOMPLETE), the others \
             fail on a bound already past its limit. First: case {}: {}\n",
            incomplete.len(),
            incomplete[0].index,
            incomplete[0]
                .checks
                .iter()
                .find(|c| c.name == COMPLETE_CHECK)
                .map_or("", |c| c.reason.as_str())
                .replace('|', "\\|")
        );
    }

    // failures per check, worst value per check
    let _ = writeln!(s, "| check | failing cases | worst case | worst value | limit |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    let ranked = |name: &str| {
        let mut v: Vec<(&CaseResult, &Check)> =
            results.iter().filter_map(|r| r.checks.iter().find(|c| c.name == name).map(|c| (r, c))).collect();
        v.sort_by(|a, b| {
            a.1.passed.cmp(&b.1.passed).then(ratio(b.1).total_cmp(&ratio(a.1))).then(a.0.index.cmp(&b.0.index))
        });
        v
    };
    let names: Vec<String> = {
        let mut names: Vec<String> = CHECK_NAMES.iter().map(|c| (*c).to_owned()).collect();
        for r in results {
            for c in &r.checks {
                if !names.contains(&c.name) {
                    names.push(c.name.clone());
                }
            }
        }
        names.retain(|name| results.iter().any(|r| r.checks.iter().any(|c| &c.name == name)));
        names
    };
    for name in &names {
        let v = ranked(name);
        let failing = v.iter().filter(|(_, c)| !c.passed).count();
        if let Some((r, c)) = v.first() {
            let _ = writeln!(
                s,
                "| `{name}` | {failing} | {} | {} | {} |",
                r.index,
                with_unit(c.value, &c.unit),
                with_unit(c.limit, &c.unit)
            );
        }
    }

    powerpro_fuse(&mut s, study, results);
    if let [r] = results {
        // one case: its checks, each with its reason
        let _ = writeln!(s, "\n## The checks\n");
        let _ = writeln!(s, "| check | value | limit | verdict | reason |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for c in &r.checks {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} |",
                c.name,
                with_unit(c.value, &c.unit),
                with_unit(c.limit, &c.unit),
                check_verdict(c),
                c.reason.replace('|', "\\|")
            );
        }
        let _ = writeln!(s);
        return s;
    }
    let _ = writeln!(s, "\n## Worst cases per check\n");
    for name in &names {
        let v = ranked(name);
        let Some((_, c0)) = v.first() else { continue };
        let limit = if name == "arrester" && c0.unit == "W" {
            "peak power ≤ the rating derated to the pulse's duration".to_owned()
        } else {
            format!("limit {}", with_unit(c0.limit, &c0.unit))
        };
        let _ = writeln!(s, "### `{name}` ({limit})\n");
        let _ = writeln!(s, "| case | parameters | value | verdict | reason |");
        let _ = writeln!(s, "|---|---|---|---|---|");
        for (r, c) in v.iter().take(WORST_PER_CHECK) {
            let params = case_label(study, r);
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} |",
                r.index,
                if params.is_empty() { "(the base case)".into() } else { params.replace('|', "\\|") },
                with_unit(c.value, &c.unit),
                check_verdict(c),
                c.reason.replace('|', "\\|")
            );
        }
        let _ = writeln!(s);
    }

    safe_region(&mut s, study, results);
    grid_point_rates(&mut s, study, results);
    draws(&mut s, study, results);
    s
}

/// The boundary of the safe region along each parameter, then per value of each other axis.
fn safe_region(s: &mut String, study: &Study, results: &[CaseResult]) {
    let params = Param::all(study);
    if params.is_empty() {
        return;
    }
    let _ = writeln!(s, "## The boundary of the safe region\n");
    if results.iter().all(|r| r.passed) {
        let _ = writeln!(s, "Every case passes: the safe region covers the whole study.\n");
    } else {
        let _ = writeln!(
            s,
            "Along each parameter: the values up to which (or from which) every case passes, over all \
             other parameters; then the same per value of each other axis. A value passes when every case \
             at it passes.\n"
        );
    }
    for &p in &params {
        let name = p.name(study);
        let _ = writeln!(s, "### `{name}`\n");
        if !p.is_numeric(study) {
            // categorical: pass count per value
            let Param::Axis(i) = p else { continue };
            let a = &study.axes[i];
            let _ = writeln!(s, "| {name} | cases | passing | failing checks |");
            let _ = writeln!(s, "|---|---|---|---|");
            for (j, label) in a.labels.iter().enumerate() {
                let at: Vec<&CaseResult> =
                    results.iter().filter(|r| study.cases.get(r.index).is_some_and(|c| c.at[i] == j)).collect();
                let mut failing: Vec<&str> =
                    at.iter().flat_map(|r| r.checks.iter().filter(|c| !c.passed).map(|c| c.name.as_str())).collect();
                failing.sort_unstable();
                failing.dedup();
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} |",
                    at.len(),
                    at.iter().filter(|r| r.passed).count(),
                    if failing.is_empty() { "—".into() } else { failing.join(", ") }
                );
            }
            let _ = writeln!(s);
            continue;
        }
        if let Some(b) = region::boundary_of(study, results, p, |_| true) {
            let _ = writeln!(s, "Over everything else: {}.\n", b.describe(name));
            if matches!(p, Param::Random(_)) && !b.all_pass() {
                let _ = writeln!(
                    s,
                    "(Every drawn value is a point of its own, with the other random parameters at whatever \
                     they drew: the boundary lies between the last passing and the first failing draw.)\n"
                );
            }
            if b.all_pass() {
                continue;
            }
        }
        for (i, by) in study.axes.iter().enumerate() {
            if p == Param::Axis(i) || by.values.len() > MAX_TABLE_ROWS {
                continue;
            }
            let rows = region::boundaries_by(study, results, p, i);
            let _ = writeln!(s, "| {} | {name} passes | first failure | last failure |", by.param);
            let _ = writeln!(s, "|---|---|---|---|");
            // values where everything passes share one row
            let mut all_pass: Vec<&str> = Vec::new();
            let mut range = (f64::INFINITY, f64::NEG_INFINITY);
            for (label, b) in &rows {
                let Some(b) = b else { continue };
                if b.all_pass() {
                    all_pass.push(label);
                    range = (range.0.min(b.min), range.1.max(b.max));
                    continue;
                }
                let opt = |v: Option<f64>| v.map_or("—".to_owned(), |v| v.to_string());
                let _ = writeln!(
                    s,
                    "| {label} | {} | {} | {} |",
                    b.safe_range(),
                    opt(b.first_failure_at),
                    opt(b.last_failure_at)
                );
            }
            if !all_pass.is_empty() {
                let _ = writeln!(s, "| {} | all ({} … {}) | — | — |", all_pass.join(", "), range.0, range.1);
            }
            let _ = writeln!(s);
        }
    }
}

/// Grid × Monte Carlo: the pass rate at each grid point.
fn grid_point_rates(s: &mut String, study: &Study, results: &[CaseResult]) {
    let Some(m) = &study.monte_carlo else { return };
    let points = study.len() / m.samples;
    if study.axes.is_empty() || points > MAX_TABLE_ROWS {
        return;
    }
    let _ = writeln!(s, "## Pass rate per grid point\n");
    let head: Vec<&str> = study.axes.iter().map(|a| a.param.as_str()).collect();
    let _ = writeln!(s, "| {} | cases | passing | pass rate (95 % interval) |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len() + 3));
    for g in 0..points {
        let range = g * m.samples..(g + 1) * m.samples;
        let at: Vec<&CaseResult> = results.iter().filter(|r| range.contains(&r.index)).collect();
        if at.is_empty() {
            continue;
        }
        let labels: Vec<&str> =
            study.axes.iter().zip(study.coordinates(range.start)).map(|(a, j)| a.labels[j].as_str()).collect();
        let ok = at.iter().filter(|r| r.passed).count();
        let (lo, hi) = wilson_95(ok, at.len());
        let _ = writeln!(
            s,
            "| {} | {} | {ok} | {} % ({} … {} %) |",
            labels.join(" | "),
            at.len(),
            num(100.0 * ok as f64 / at.len() as f64),
            num(100.0 * lo),
            num(100.0 * hi)
        );
    }
    let _ = writeln!(s);
}

/// What the Monte Carlo drew.
fn draws(s: &mut String, study: &Study, results: &[CaseResult]) {
    let Some(m) = &study.monte_carlo else { return };
    let _ = writeln!(s, "## Monte Carlo draws\n");
    let _ = writeln!(s, "| parameter | distribution | drawn min | mean | max |");
    let _ = writeln!(s, "|---|---|---|---|---|");
    for (j, p) in m.params.iter().enumerate() {
        let xs: Vec<f64> = results.iter().filter_map(|r| Param::Random(j).value(study, r)).collect();
        if xs.is_empty() {
            continue;
        }
        let (lo, hi) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let _ = writeln!(s, "| `{}` | {} | {} | {} | {} |", p.param, dist_text(&p.dist), num(lo), num(mean), num(hi));
    }
    let _ = writeln!(s);
}

/// With a PowerPro (`[powerpro]`): the cases whose fuse melted — when it melted and cleared and
/// its let-through I²t, beside its own curve at the prospective current (closed form).
fn powerpro_fuse(s: &mut String, study: &Study, results: &[CaseResult]) {
    let with: Vec<&CaseResult> = results.iter().filter(|r| r.metrics.fuse_i2t_a2s.is_some()).collect();
    if with.is_empty() {
        return;
    }
    let melted: Vec<&&CaseResult> = with.iter().filter(|r| r.metrics.fuse_melt_us.is_some()).collect();
    let _ = writeln!(
        s,
        "\n## The PowerPro's fuse\n\n{} of {} case(s) with a PowerPro melted its fuse (the SmartPro did not \
         interrupt first).\n",
        melted.len(),
        with.len()
    );
    if melted.is_empty() {
        return;
    }
    let ms = |v: Option<f64>| v.map_or("—".to_owned(), |t| num(t * 1e-3));
    let a2s = |v: Option<f64>| v.map_or("—".to_owned(), num);
    let _ = writeln!(
        s,
        "| case | parameters | prospective | melted | cleared | let-through I²t | curve: cleared | curve: I²t |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
    for r in melted.iter().take(MAX_TABLE_ROWS) {
        let m = &r.metrics;
        let params = case_label(study, r);
        let _ = writeln!(
            s,
            "| {} | {} | {} A | {} ms | {} ms | {} A²s | {} ms | {} A²s |",
            r.index,
            if params.is_empty() { "(the base case)".into() } else { params.replace('|', "\\|") },
            num(m.prospective_current_a),
            ms(m.fuse_melt_us),
            ms(m.fuse_cleared_us),
            a2s(m.fuse_i2t_a2s),
            ms(m.fuse_curve_cleared_us),
            a2s(m.fuse_curve_i2t_a2s)
        );
    }
    if melted.len() > MAX_TABLE_ROWS {
        let _ = writeln!(s, "\n(the first {MAX_TABLE_ROWS}; all in results.csv)");
    }
}
