//! What-if sweeps of short circuits and turn-off surges.
//!
//! A [`Study`] expands into cases (a grid of [`study::Axis`] values, times
//! the seeded draws of a Monte Carlo, [`random`]); [`run_cases`] simulates
//! a range of them on all cores ([`models::transient::simulate`],
//! milliseconds each at most); [`report`] writes `results.csv`,
//! `cases.jsonl`, `summary.json` and `junit.xml`, [`summary`] the
//! `summary.md` for people (pass rate, worst cases per check, the
//! boundary of the safe region, [`region`]); [`plot`] the SVG and PNG
//! plots. A shard runs a contiguous slice of the case indices; [`merge`]
//! joins shards' `cases.jsonl` into the outputs one unsharded run would
//! have written.

pub mod plot;
pub mod random;
pub mod region;
pub mod report;
pub mod study;
pub mod summary;

use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use models::transient::{self, Check, Metrics, Outcome, Verdict};
use serde::{Deserialize, Serialize};

pub use study::{Case, Study, StudyError};

/// The result of one case: what `cases.jsonl` holds, one per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    /// Position in the study.
    pub index: usize,
    /// The case's entries for [`Study::value_columns`]: the axes' value
    /// labels, then (Monte Carlo) the draw index and the drawn values.
    pub values: Vec<String>,
    pub variant: u32,
    pub event: String,
    pub metrics: Metrics,
    pub checks: Vec<Check>,
    pub passed: bool,
    /// Largest check value relative to its limit (> 1 fails); the worst case has the largest.
    pub utilisation: f64,
}

impl CaseResult {
    /// PASS, FAIL or INCOMPLETE (the event had not ended in its window and no check decided against it).
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.checks)
    }
}

/// Simulates one case (with the waveform when `record`).
pub fn simulate_case(case: &Case, record: bool) -> Result<Outcome, models::ParamError> {
    let state = case.params.battery.state(case.variant);
    transient::simulate(&case.params, case.variant, &state, &case.event, record)
}

/// The result row of a simulated case.
pub fn result_of(study: &Study, case: &Case, outcome: &Outcome) -> CaseResult {
    CaseResult {
        index: case.index,
        values: study.case_values(case),
        variant: case.variant.system_v(),
        event: serde_json::to_value(case.event.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        metrics: outcome.metrics,
        checks: outcome.checks.clone(),
        passed: outcome.passed(),
        utilisation: utilisation(&outcome.metrics, &outcome.checks),
    }
}

/// Largest ratio of a checked value to its limit.
pub fn utilisation(m: &Metrics, checks: &[Check]) -> f64 {
    let mut u: f64 = 0.0;
    for c in checks {
        let r = match c.name.as_str() {
            // an event not followed to its end ranks above everything judged
            transient::COMPLETE_CHECK => f64::from(u8::from(!c.passed)) * 10.0,
            // margin: P/P_allowed; "source above breakdown" is in V/V
            "arrester" if c.unit == "W" && m.arrester_allowed_power_w > 0.0 => {
                m.arrester_peak_power_w / m.arrester_allowed_power_w
            }
            _ if c.limit > 0.0 && c.value.is_finite() => c.value / c.limit,
            _ => f64::from(u8::from(!c.passed)) * 10.0,
        };
        u = u.max(r);
    }
    u
}

/// Runs `range` of the study's cases on `jobs` threads; `progress(done)`
/// is called after each case. Results come back in case order.
pub fn run_cases(
    study: &Study,
    range: Range<usize>,
    jobs: usize,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<CaseResult>, models::ParamError> {
    let next = AtomicUsize::new(range.start);
    let done = AtomicUsize::new(0);
    let out: Mutex<Vec<Result<CaseResult, models::ParamError>>> = Mutex::new(Vec::with_capacity(range.len()));
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1).min(range.len().max(1)) {
            s.spawn(|| {
                let mut local = Vec::new();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= range.end {
                        break;
                    }
                    let case = &study.cases[k];
                    local.push(simulate_case(case, false).map(|o| result_of(study, case, &o)));
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
                out.lock().expect("no worker panics holding the lock").extend(local);
            });
        }
    });
    let mut results = out.into_inner().expect("workers finished").into_iter().collect::<Result<Vec<_>, _>>()?;
    results.sort_by_key(|r| r.index);
    Ok(results)
}

/// The cases of shard `k` of `n` (0-based): a contiguous slice, the same
/// on every machine.
pub fn shard_range(total: usize, k: usize, n: usize) -> Range<usize> {
    (k * total / n)..((k + 1) * total / n)
}

/// The index of the worst case (largest utilisation; the first of equals).
pub fn worst(results: &[CaseResult]) -> Option<&CaseResult> {
    results.iter().fold(None, |w: Option<&CaseResult>, r| match w {
        Some(w) if w.utilisation >= r.utilisation => Some(w),
        _ => Some(r),
    })
}

/// The case's axis (and drawn) values as `param=label, …`.
pub fn case_label(study: &Study, r: &CaseResult) -> String {
    study.value_columns().iter().zip(&r.values).map(|(c, v)| format!("{c}={v}")).collect::<Vec<_>>().join(", ")
}

/// Wilson score interval (95 %) of a pass rate of `passed` out of `n`.
pub fn wilson_95(passed: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    // two-sided 95 % normal quantile
    const Z: f64 = 1.959_963_984_540_054;
    let (n, p) = (n as f64, passed as f64 / n as f64);
    let centre = (p + Z * Z / (2.0 * n)) / (1.0 + Z * Z / n);
    let half = Z / (1.0 + Z * Z / n) * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Joins shards' results: every case of a `total`-case study exactly once.
pub fn merge(mut parts: Vec<CaseResult>, total: usize) -> Result<Vec<CaseResult>, String> {
    parts.sort_by_key(|r| r.index);
    for (k, r) in parts.iter().enumerate() {
        if r.index != k {
            return Err(if r.index < k {
                format!("case {} is in more than one shard", r.index)
            } else {
                format!("case {k} is in no shard")
            });
        }
    }
    if parts.len() != total {
        return Err(format!("the shards hold {} of {total} cases; case {} is missing", parts.len(), parts.len()));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_15_fuse_backup_study_clears_within_the_fuses_curve() {
        // scenarios/whatif/48v-fuse-backup.toml: with the comparator off the fuse clears every
        // short, at its own curve (closed form at the prospective current) up to the current's
        // L/R rise, with the curve's let-through I²t; with the comparator on it stays intact.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/whatif/48v-fuse-backup.toml");
        let study = Study::load(&path).unwrap();
        let results = run_cases(&study, 0..study.len(), 1, &|_| {}).unwrap();
        assert_eq!(results.len(), 8);
        for (r, case) in results.iter().zip(&study.cases) {
            let m = &r.metrics;
            let fuse = case.params.powerpro.unwrap().fuse;
            let fc = r.checks.iter().find(|c| c.name == transient::FUSE_CHECK).unwrap();
            assert!(m.complete, "case {}: {:?}", r.index, r.checks);
            if case.params.comparator.enabled {
                assert_eq!(m.fuse_melt_us, None);
                assert!(fc.passed && fc.value < 1e-3 * fuse.pre_arcing_i2t_a2s, "{fc:?}");
                assert_eq!(r.verdict(), Verdict::Pass);
                continue;
            }
            let i = m.prospective_current_a;
            let t_curve_s = fuse.clearing_time_s(i).unwrap();
            let t_s = m.fuse_cleared_us.unwrap() * 1e-6;
            let tau_l_s = m.loop_inductance_uh / m.loop_resistance_mohm * 1e-3;
            assert!(t_s > t_curve_s && t_s < t_curve_s + 3.0 * tau_l_s, "case {}: {t_s} vs {t_curve_s}", r.index);
            let i2t = m.fuse_i2t_a2s.unwrap();
            assert!((i2t / fuse.clearing_i2t_a2s(i).unwrap() - 1.0).abs() < 0.01, "case {}: {i2t}", r.index);
            assert_eq!(m.time_to_zero_us, m.fuse_cleared_us);
            assert!(!fc.passed && fc.decided && r.verdict() == Verdict::Fail);
        }
        // the summary shows the fuse's figures beside its curve
        let md = summary::markdown(&study, &results, None);
        assert!(md.contains("## The PowerPro's fuse") && md.contains("4 of 8 case(s)"), "{md}");
    }

    #[test]
    fn shards_cover_every_case_once() {
        for total in [0, 1, 7, 100, 1001] {
            for n in 1..=9 {
                let mut all = Vec::new();
                for k in 0..n {
                    all.extend(shard_range(total, k, n));
                }
                assert_eq!(all, (0..total).collect::<Vec<_>>());
            }
        }
    }
}
