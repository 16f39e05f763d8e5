//! The safe region of a study: along each varied parameter, up to where
//! (or from where) every case passes.
//!
//! A point is one value of the parameter; it passes when every case at that
//! value passes (over all other axes and draws). For a grid axis the points
//! are its values; for a random parameter every drawn value is a point of
//! its own, so the boundary is the largest drawn value below the smallest
//! failing one (resolution: the spacing of the draws there).

use std::collections::BTreeMap;

use serde::Serialize;

use super::study::number;
use super::{CaseResult, Study};

/// A varied parameter: a grid axis or a random parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    /// Index into [`Study::axes`].
    Axis(usize),
    /// Index into the Monte Carlo's parameters.
    Random(usize),
}

impl Param {
    /// The parameter's dotted path.
    pub fn name(self, study: &Study) -> &str {
        match self {
            Param::Axis(i) => &study.axes[i].param,
            Param::Random(j) => study.monte_carlo.as_ref().map_or("", |m| m.params[j].param.as_str()),
        }
    }

    /// Its value in case `r`, if numeric.
    pub fn value(self, study: &Study, r: &CaseResult) -> Option<f64> {
        let case = study.cases.get(r.index)?;
        match self {
            Param::Axis(i) => number(&study.axes[i].values[case.at[i]]),
            Param::Random(j) => case.drawn.get(j).copied(),
        }
    }

    /// Every value is a number.
    pub fn is_numeric(self, study: &Study) -> bool {
        match self {
            Param::Axis(i) => study.axes[i].values.iter().all(|v| number(v).is_some()),
            Param::Random(_) => true,
        }
    }

    /// Every varied parameter of `study`: the axes, then the random parameters.
    pub fn all(study: &Study) -> Vec<Param> {
        let random = study.monte_carlo.as_ref().map_or(0, |m| m.params.len());
        (0..study.axes.len()).map(Param::Axis).chain((0..random).map(Param::Random)).collect()
    }
}

/// The plots' x parameter and series axis: `[plot]`, else the first numeric
/// axis (else the first random parameter) and the first other axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlotAxes {
    pub x: Option<Param>,
    /// Index into [`Study::axes`].
    pub series: Option<usize>,
}

/// The plot axes of `study`.
pub fn plot_axes(study: &Study) -> PlotAxes {
    let by_name = |p: &str| Param::all(study).into_iter().find(|q| q.name(study) == p);
    let x = study.plot.x.as_deref().and_then(by_name).or_else(|| {
        let axis = (0..study.axes.len()).map(Param::Axis).find(|p| p.is_numeric(study));
        axis.or_else(|| study.monte_carlo.as_ref().filter(|m| !m.params.is_empty()).map(|_| Param::Random(0)))
    });
    let series = match study.plot.series.as_deref() {
        Some(s) => study.axes.iter().position(|a| a.param == s),
        None => (0..study.axes.len()).find(|&i| x != Some(Param::Axis(i))),
    };
    PlotAxes { x, series }
}

/// Where the cases stop passing along one parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Boundary {
    /// Smallest and largest value seen.
    pub min: f64,
    pub max: f64,
    /// Number of distinct values, and how many of them had a failing case.
    pub points: usize,
    pub failing_points: usize,
    /// Largest value up to which (from `min`) every case passes; `None` when
    /// a case at `min` fails.
    pub passes_up_to: Option<f64>,
    /// Smallest value at which a case fails.
    pub first_failure_at: Option<f64>,
    /// Smallest value from which (to `max`) every case passes; `None` when a
    /// case at `max` fails.
    pub passes_from: Option<f64>,
    /// Largest value at which a case fails.
    pub last_failure_at: Option<f64>,
}

impl Boundary {
    /// The boundary of `(value, passed)` points (a value passes when all
    /// its points pass); `None` without points.
    pub fn of(points: impl IntoIterator<Item = (f64, bool)>) -> Option<Boundary> {
        // keyed by the value's bits in total order, so equal values fold
        let mut by_value: BTreeMap<i64, (f64, bool)> = BTreeMap::new();
        for (x, ok) in points {
            if !x.is_finite() {
                continue;
            }
            let bits = x.to_bits() as i64;
            let key = bits ^ (((bits >> 63) as u64) >> 1) as i64;
            by_value.entry(key).or_insert((x, true)).1 &= ok;
        }
        let pts: Vec<(f64, bool)> = by_value.into_values().collect();
        let (&(min, _), &(max, _)) = (pts.first()?, pts.last()?);
        let first_failure_at = pts.iter().find(|p| !p.1).map(|p| p.0);
        let last_failure_at = pts.iter().rev().find(|p| !p.1).map(|p| p.0);
        Some(Boundary {
            min,
            max,
            points: pts.len(),
            failing_points: pts.iter().filter(|p| !p.1).count(),
            passes_up_to: pts.iter().take_while(|p| p.1).last().map(|p| p.0),
            first_failure_at,
            passes_from: pts.iter().rev().take_while(|p| p.1).last().map(|p| p.0),
            last_failure_at,
        })
    }

    /// Every point passed.
    pub fn all_pass(&self) -> bool {
        self.failing_points == 0
    }

    /// In words, for a parameter called `name`: `≤ 9.5 passes (first failure at 10)`.
    pub fn describe(&self, name: &str) -> String {
        if self.all_pass() {
            return format!("all pass over {name} = {} … {}", self.min, self.max);
        }
        if self.failing_points == self.points {
            return format!("a case fails at every value of {name} ({} … {})", self.min, self.max);
        }
        let mut parts = Vec::new();
        if let (Some(a), Some(f)) = (self.passes_up_to, self.first_failure_at) {
            parts.push(format!("{name} ≤ {a} passes (first failure at {f})"));
        }
        if let (Some(b), Some(g)) = (self.passes_from, self.last_failure_at) {
            parts.push(format!("{name} ≥ {b} passes (last failure at {g})"));
        }
        if parts.is_empty() {
            format!(
                "no safe end: cases fail at {name} = {} and at {}; {} of {} values have a failing case",
                self.min, self.max, self.failing_points, self.points
            )
        } else {
            parts.join("; ")
        }
    }

    /// The safe range alone, for a table cell: `≤ 9.5`, `≥ 2`, `all (0.5 … 10)`, `none`.
    pub fn safe_range(&self) -> String {
        if self.all_pass() {
            return format!("all ({} … {})", self.min, self.max);
        }
        match (self.passes_up_to, self.passes_from) {
            (Some(a), Some(b)) => format!("≤ {a} and ≥ {b}"),
            (Some(a), None) => format!("≤ {a}"),
            (None, Some(b)) => format!("≥ {b}"),
            (None, None) if self.failing_points == self.points => "none".into(),
            (None, None) => "no safe end".into(),
        }
    }
}

/// The boundary along `x` over the cases in `results` that `keep` selects.
pub fn boundary_of(
    study: &Study,
    results: &[CaseResult],
    x: Param,
    keep: impl Fn(&CaseResult) -> bool,
) -> Option<Boundary> {
    Boundary::of(results.iter().filter(|r| keep(r)).filter_map(|r| x.value(study, r).map(|v| (v, r.passed))))
}

/// The boundary along `x` for each value of the axis `by` (in axis order).
pub fn boundaries_by(study: &Study, results: &[CaseResult], x: Param, by: usize) -> Vec<(String, Option<Boundary>)> {
    study.axes[by]
        .labels
        .iter()
        .enumerate()
        .map(|(j, label)| {
            let b = boundary_of(study, results, x, |r| study.cases.get(r.index).is_some_and(|c| c.at[by] == j));
            (label.clone(), b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_from_below_and_above() {
        let b = Boundary::of([(1.0, true), (2.0, true), (3.0, false), (4.0, true), (5.0, false)]).unwrap();
        assert_eq!((b.passes_up_to, b.first_failure_at), (Some(2.0), Some(3.0)));
        assert_eq!((b.passes_from, b.last_failure_at), (None, Some(5.0)));
        assert_eq!(b.safe_range(), "≤ 2");
        assert_eq!(b.describe("L"), "L ≤ 2 passes (first failure at 3)");
        // a value fails if any of its cases fails; order of input does not matter
        let b = Boundary::of([(5.0, true), (1.0, false), (3.0, true), (1.0, true), (3.0, false), (4.0, true)]).unwrap();
        assert_eq!((b.passes_up_to, b.passes_from, b.points, b.failing_points), (None, Some(4.0), 4, 2));
        assert_eq!(b.describe("T"), "T ≥ 4 passes (last failure at 3)");
        let all = Boundary::of([(0.5, true), (10.0, true)]).unwrap();
        assert!(all.all_pass());
        assert_eq!(all.safe_range(), "all (0.5 … 10)");
        let middle = Boundary::of([(-1.0, false), (0.0, true), (1.0, false)]).unwrap();
        assert_eq!(middle.safe_range(), "no safe end");
        assert!(Boundary::of([(-0.0, false), (f64::NAN, true)]).unwrap().safe_range() == "none");
        assert!(Boundary::of(std::iter::empty()).is_none());
    }

    #[test]
    fn negative_values_sort_below_positive() {
        let b = Boundary::of([(-20.0, false), (-5.0, true), (20.0, true), (0.0, true)]).unwrap();
        assert_eq!((b.min, b.max, b.passes_from, b.last_failure_at), (-20.0, 20.0, Some(-5.0), Some(-20.0)));
    }
}
