//! Piecewise-linear look-up tables over temperature, current and SOC.
//!
//! A [`Table`] holds values on a rectangular grid of up to three axes, in
//! the order (temperature, current, SOC) — the order PyBaMM's equivalent
//! circuit tables use. Between breakpoints it interpolates linearly along
//! each axis (multilinear); outside an axis it holds the end value (no
//! extrapolation).
//!
//! The hot path never searches a whole axis: [`locate`] takes a hint (the
//! segment found last time) and walks from there, which is O(1) while the
//! argument moves slowly (SOC changes by < 1e-5 per millisecond step).
//! [`Resampled`] is a table prepared for the hot path: on a finer SOC axis
//! shared by a cell's tables, evaluated from [`Bracket`]s found once per
//! axis, with no work when the temperature moves.

use serde::{Deserialize, Serialize};

use crate::error::ParamError;

/// A table's values as written in a parameter file: a scalar, or nested
/// arrays whose depth is the number of axes the table uses.
///
/// | form | axes |
/// |---|---|
/// | `0.5e-3` | constant |
/// | `[v_soc…]` | SOC |
/// | `[[v_soc…] per temperature]` | temperature × SOC |
/// | `[[[v_soc…] per current] per temperature]` | temperature × current × SOC |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TableValues {
    /// The same value everywhere.
    Scalar(f64),
    /// Over SOC.
    Soc(Vec<f64>),
    /// Over temperature × SOC.
    TempSoc(Vec<Vec<f64>>),
    /// Over temperature × current × SOC.
    TempCurrentSoc(Vec<Vec<Vec<f64>>>),
}

/// A table on a rectangular grid: `temp_c × current_a × soc`, each axis
/// strictly increasing; an unused axis has the single breakpoint 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    temp_c: Vec<f64>,
    current_a: Vec<f64>,
    soc: Vec<f64>,
    /// Row-major: `values[(it * n_current + ic) * n_soc + is]`.
    values: Vec<f64>,
}

/// Checks that `axis` is non-empty, finite and strictly increasing.
pub fn check_axis(name: &'static str, axis: &[f64]) -> Result<(), ParamError> {
    if axis.is_empty() {
        return Err(ParamError { name, value: 0.0, requirement: "a non-empty axis" });
    }
    for w in axis.windows(2) {
        if w[1] <= w[0] || w[1].is_nan() {
            return Err(ParamError { name, value: w[1], requirement: "strictly increasing breakpoints" });
        }
    }
    if let Some(&bad) = axis.iter().find(|v| !v.is_finite()) {
        return Err(ParamError { name, value: bad, requirement: "finite breakpoints" });
    }
    Ok(())
}

impl Table {
    /// A constant table.
    pub fn constant(value: f64) -> Self {
        Self { temp_c: vec![0.0], current_a: vec![0.0], soc: vec![0.0], values: vec![value] }
    }

    /// A table from its file form and the parameter set's axes. `name`
    /// names the table in errors. Axes the values do not use are dropped.
    pub fn from_values(
        name: &'static str,
        values: &TableValues,
        temp_c: &[f64],
        current_a: &[f64],
        soc: &[f64],
    ) -> Result<Self, ParamError> {
        let shape_err = |n: usize| ParamError { name, value: n as f64, requirement: "as many values as breakpoints" };
        let (t_axis, c_axis, s_axis, flat): (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) = match values {
            TableValues::Scalar(v) => (vec![0.0], vec![0.0], vec![0.0], vec![*v]),
            TableValues::Soc(v) => {
                if v.len() != soc.len() {
                    return Err(shape_err(v.len()));
                }
                (vec![0.0], vec![0.0], soc.to_vec(), v.clone())
            }
            TableValues::TempSoc(rows) => {
                if rows.len() != temp_c.len() {
                    return Err(shape_err(rows.len()));
                }
                let mut flat = Vec::with_capacity(rows.len() * soc.len());
                for r in rows {
                    if r.len() != soc.len() {
                        return Err(shape_err(r.len()));
                    }
                    flat.extend_from_slice(r);
                }
                (temp_c.to_vec(), vec![0.0], soc.to_vec(), flat)
            }
            TableValues::TempCurrentSoc(blocks) => {
                if blocks.len() != temp_c.len() {
                    return Err(shape_err(blocks.len()));
                }
                let mut flat = Vec::with_capacity(blocks.len() * current_a.len() * soc.len());
                for b in blocks {
                    if b.len() != current_a.len() {
                        return Err(shape_err(b.len()));
                    }
                    for r in b {
                        if r.len() != soc.len() {
                            return Err(shape_err(r.len()));
                        }
                        flat.extend_from_slice(r);
                    }
                }
                (temp_c.to_vec(), current_a.to_vec(), soc.to_vec(), flat)
            }
        };
        if let Some(&bad) = flat.iter().find(|v| !v.is_finite()) {
            return Err(ParamError { name, value: bad, requirement: "finite values" });
        }
        Ok(Self { temp_c: t_axis, current_a: c_axis, soc: s_axis, values: flat })
    }

    /// The SOC breakpoints.
    pub fn soc_axis(&self) -> &[f64] {
        &self.soc
    }

    /// The current breakpoints (`[0]` when the table does not depend on current).
    pub fn current_axis(&self) -> &[f64] {
        &self.current_a
    }

    /// `true` if every value is the same.
    pub fn is_constant(&self) -> bool {
        self.values.iter().all(|v| v.to_bits() == self.values[0].to_bits())
    }

    /// Smallest value.
    pub fn min_value(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The temperature breakpoints (`[0]` when the table does not depend on temperature).
    pub fn temp_axis(&self) -> &[f64] {
        &self.temp_c
    }

    /// Value at (temperature, current, SOC), multilinear, clamped.
    pub fn eval(&self, temp_c: f64, current_a: f64, soc: f64) -> f64 {
        let (it, ft) = locate(&self.temp_c, temp_c, 0);
        let c = locate(&self.current_a, current_a, 0);
        let s = locate(&self.soc, soc, 0);
        let t1 = (it + 1).min(self.temp_c.len() - 1);
        lerp(self.plane(it, c, s), self.plane(t1, c, s), ft)
    }

    /// The bilinear interpolation over (current, SOC) on the temperature
    /// breakpoint `t`, at the located current `(ic, fc)` and SOC `(is, fs)`.
    #[inline]
    fn plane(&self, t: usize, (ic, fc): (usize, f64), (is, fs): (usize, f64)) -> f64 {
        let nc = self.current_a.len();
        let ns = self.soc.len();
        let at = |c: usize, s: usize| self.values[(t * nc + c) * ns + s];
        let c1 = (ic + 1).min(nc - 1);
        let s1 = (is + 1).min(ns - 1);
        let lo = lerp(at(ic, is), at(ic, s1), fs);
        let hi = lerp(at(c1, is), at(c1, s1), fs);
        lerp(lo, hi, fc)
    }
}

/// `a + f·(b − a)`: the one linear interpolation every table lookup uses
/// (the same operations in the same order everywhere, so that two paths
/// to one value give the same bits).
#[inline(always)]
fn lerp(a: f64, b: f64, f: f64) -> f64 {
    a + f * (b - a)
}

/// Where an argument sits on an axis: the segment `[axis[i], axis[i+1]]`
/// and the fraction `f` (0..1) of the way along it, as [`locate`] finds it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bracket {
    /// Segment index.
    pub i: usize,
    /// Fraction along the segment, clamped to 0..1.
    pub f: f64,
}

impl Bracket {
    /// `x` on `axis`, walking from the segment `hint` (the one found last
    /// time: O(1) while `x` moves slowly).
    #[inline]
    pub fn locate(axis: &[f64], x: f64, hint: usize) -> Bracket {
        let (i, f) = locate(axis, x, hint);
        Bracket { i, f }
    }
}

/// A [`Table`] on a finer SOC axis, evaluated in the hot path from
/// brackets found once per axis: no re-slicing when the temperature moves,
/// no allocation.
///
/// The axis holds every SOC breakpoint of the table (the union of the
/// axes of a cell's tables), so the table is the same piecewise-linear
/// function of SOC on it. Stored per point of the axis, current breakpoint
/// and temperature breakpoint: the table's bilinear (current, SOC) value
/// there. [`Resampled::eval`] interpolates linearly in temperature at the
/// corners of the SOC segment, then in SOC, then in current — the
/// arithmetic of slicing the table at the temperature on that axis and
/// interpolating the slice, so its results are the same to the last bit
/// (pinned by a test), at the cost of one trilinear lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct Resampled {
    /// The table's temperature breakpoints (one: no temperature dependence).
    temp_c: Vec<f64>,
    /// Current breakpoints of the table (1: no current dependence).
    rows: usize,
    /// Points of the SOC axis.
    n: usize,
    /// `values[(row · n + j) · nt + it]`, temperature innermost (the two
    /// temperatures of a lookup share a cache line). Without a temperature
    /// axis the interpolation in temperature is already applied.
    values: Vec<f64>,
}

impl Resampled {
    /// `table` on `soc_axis`, which must hold every SOC breakpoint of the
    /// table (for the result to be the same function of SOC).
    pub fn new(table: &Table, soc_axis: &[f64]) -> Self {
        let nt = table.temp_c.len();
        let rows = table.current_a.len();
        let n = soc_axis.len();
        let ns = table.soc.len();
        // `plane` at every (current breakpoint, SOC point, temperature), its
        // arithmetic unrolled: this runs once per pack, over every value.
        let soc_at: Vec<(usize, usize, f64)> = soc_axis
            .iter()
            .map(|&s| {
                let (is, fs) = locate(&table.soc, s, 0);
                (is, (is + 1).min(ns - 1), fs)
            })
            .collect();
        let mut values = vec![0.0; rows * n * nt];
        for (r, &c) in table.current_a.iter().enumerate() {
            let (ic, fc) = locate(&table.current_a, c, 0);
            let c1 = (ic + 1).min(rows - 1);
            for (j, &(is, s1, fs)) in soc_at.iter().enumerate() {
                let out = &mut values[(r * n + j) * nt..(r * n + j + 1) * nt];
                for (t, o) in out.iter_mut().enumerate() {
                    let lo_row = &table.values[(t * rows + ic) * ns..][..ns];
                    let hi_row = &table.values[(t * rows + c1) * ns..][..ns];
                    let lo = lerp(lo_row[is], lo_row[s1], fs);
                    let hi = lerp(hi_row[is], hi_row[s1], fs);
                    *o = lerp(lo, hi, fc);
                }
                if nt == 1 {
                    // One temperature breakpoint: what `eval` does with it.
                    out[0] = lerp(out[0], out[0], 0.0);
                }
            }
        }
        Self { temp_c: table.temp_c.clone(), rows, n, values }
    }

    /// The temperature breakpoints to locate the temperature on.
    pub fn temp_axis(&self) -> &[f64] {
        &self.temp_c
    }

    /// Number of current breakpoints (1: the table does not depend on current).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The value at SOC point `j` and current breakpoint `row`, interpolated
    /// in temperature at `t`.
    #[inline(always)]
    pub fn at_point(&self, t: Bracket, row: usize, j: usize) -> f64 {
        let nt = self.temp_c.len();
        let k = (row * self.n + j) * nt;
        if nt == 1 {
            self.values[k]
        } else {
            let t1 = (t.i + 1).min(nt - 1);
            lerp(self.values[k + t.i], self.values[k + t1], t.f)
        }
    }

    /// The value at temperature `t` (on [`Self::temp_axis`]), current `c` (on
    /// the table's current axis; ignored without one) and SOC `s` (on the
    /// SOC axis it was resampled on).
    #[inline(always)]
    pub fn eval(&self, t: Bracket, c: Bracket, s: Bracket) -> f64 {
        interpolate(self.rows, c, s, |row, j| self.at_point(t, row, j))
    }
}

/// Linear in SOC between the points `s.i` and `s.i + 1`, then (with more
/// than one row) linear in current between the rows `c.i` and `c.i + 1`,
/// of the values `point(row, j)`.
#[inline(always)]
pub fn interpolate(rows: usize, c: Bracket, s: Bracket, point: impl Fn(usize, usize) -> f64) -> f64 {
    let j = s.i;
    let along = |row: usize| lerp(point(row, j), point(row, j + 1), s.f);
    if rows == 1 {
        along(0)
    } else {
        let r1 = (c.i + 1).min(rows - 1);
        lerp(along(c.i), along(r1), c.f)
    }
}

/// Segment of `axis` holding `x`: `(i, f)` with `x ≈ axis[i] + f·(axis[i+1]
/// − axis[i])`, `f` clamped to 0..1 (a single-breakpoint axis gives
/// `(0, 0)`). `hint` is where to start looking.
#[inline]
pub fn locate(axis: &[f64], x: f64, hint: usize) -> (usize, f64) {
    let n = axis.len();
    if n < 2 {
        return (0, 0.0);
    }
    let i = locate_segment(axis, x, hint);
    let (a, b) = (axis[i], axis[i + 1]);
    let f = ((x - a) / (b - a)).clamp(0.0, 1.0);
    // NaN clamps to NaN: treat it as the segment start.
    (i, if f.is_nan() { 0.0 } else { f })
}

/// Index `i` of the segment `[axis[i], axis[i+1]]` holding `x` (clamped to
/// the first/last segment), walking from `hint`. `axis.len() >= 2`.
#[inline]
pub fn locate_segment(axis: &[f64], x: f64, hint: usize) -> usize {
    let last = axis.len() - 2;
    let mut i = hint.min(last);
    if x >= axis[i] {
        while i < last && x >= axis[i + 1] {
            i += 1;
        }
    } else {
        while i > 0 && x < axis[i] {
            i -= 1;
        }
    }
    i
}

/// Sorted union of breakpoints (exact duplicates removed).
pub fn union_axis(axes: &[&[f64]]) -> Vec<f64> {
    let mut all: Vec<f64> = axes.iter().flat_map(|a| a.iter().copied()).collect();
    all.sort_by(f64::total_cmp);
    all.dedup_by(|a, b| a.to_bits() == b.to_bits());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_with_any_hint() {
        let ax = [0.0, 0.1, 0.5, 1.0];
        let close = |(i, f): (usize, f64), (j, g): (usize, f64)| i == j && (f - g).abs() < 1e-12;
        for hint in 0..5 {
            assert!(close(locate(&ax, 0.05, hint), (0, 0.5)));
            assert!(close(locate(&ax, 0.3, hint), (1, 0.5)));
            assert!(close(locate(&ax, 0.75, hint), (2, 0.5)));
            assert_eq!(locate(&ax, -1.0, hint), (0, 0.0));
            assert_eq!(locate(&ax, 2.0, hint), (2, 1.0));
            assert_eq!(locate(&ax, 0.5, hint), (2, 0.0));
        }
        assert_eq!(locate(&[3.0], 7.0, 0), (0, 0.0));
    }

    #[test]
    fn bilinear_and_trilinear() {
        let t = Table::from_values(
            "x",
            &TableValues::TempSoc(vec![vec![1.0, 2.0], vec![3.0, 6.0]]),
            &[0.0, 10.0],
            &[0.0],
            &[0.0, 1.0],
        )
        .unwrap();
        assert_eq!(t.eval(5.0, 99.0, 0.5), (1.5 + 4.5) / 2.0);
        assert_eq!(t.eval(-5.0, 0.0, 2.0), 2.0);
        let c = Table::from_values(
            "y",
            &TableValues::TempCurrentSoc(vec![vec![vec![0.0, 1.0], vec![2.0, 3.0]]]),
            &[25.0],
            &[-100.0, 100.0],
            &[0.0, 1.0],
        )
        .unwrap();
        assert_eq!(c.eval(0.0, 0.0, 0.5), 1.5);
        assert_eq!(c.eval(0.0, 100.0, 1.0), 3.0);
    }

    #[test]
    fn shape_errors_are_named() {
        let e = Table::from_values("r0_ohm", &TableValues::Soc(vec![1.0]), &[0.0], &[0.0], &[0.0, 1.0]).unwrap_err();
        assert_eq!(e.name, "r0_ohm");
        assert!(check_axis("soc", &[0.0, 0.0]).is_err());
        assert!(check_axis("soc", &[]).is_err());
    }

    /// A 3-D table with axes of its own, on a SOC axis with extra points.
    fn table_3d() -> (Table, Vec<f64>) {
        let temps = [-10.0, 0.0, 25.0, 40.0];
        let currents = [-100.0, 0.0, 50.0];
        let soc = [0.0, 0.3, 0.7, 1.0];
        let v = TableValues::TempCurrentSoc(
            temps
                .iter()
                .map(|t| {
                    currents
                        .iter()
                        .map(|c| soc.iter().map(|s| 1e-3 * (1.0 + 0.01 * t + 0.002 * c * c / 100.0 + s * s)).collect())
                        .collect()
                })
                .collect(),
        );
        let t = Table::from_values("r", &v, &temps, &currents, &soc).unwrap();
        (t, union_axis(&[&soc, &[0.0, 0.05, 0.5, 0.95, 1.0]]))
    }

    #[test]
    fn resampled_is_the_table_sliced_at_the_temperature_to_the_bit() {
        // The reference: the table sliced at the temperature on the axis
        // (one value per current breakpoint and SOC point), then the slice
        // interpolated in SOC and current — how the pack evaluated before.
        let (t, axis) = table_3d();
        let r = Resampled::new(&t, &axis);
        let n = axis.len();
        for temp_c in [-20.0, -10.0, -3.7, 0.0, 12.5, 25.0, 39.99, 40.0, 55.0] {
            let slice: Vec<f64> = t
                .current_axis()
                .iter()
                .flat_map(|&c| axis.iter().map(move |&s| (c, s)))
                .map(|(c, s)| t.eval(temp_c, c, s))
                .collect();
            let tb = Bracket::locate(r.temp_axis(), temp_c, 0);
            for current_a in [-150.0, -100.0, -20.0, 0.0, 49.0, 50.0, 80.0] {
                let cb = Bracket::locate(t.current_axis(), current_a, 0);
                for soc in [0.0, 0.01, 0.05, 0.29, 0.3, 0.5, 0.66, 0.951, 1.0] {
                    let sb = Bracket::locate(&axis, soc, 0);
                    let q = |row: usize, j: usize| slice[row * n + j];
                    let expected = interpolate(t.current_axis().len(), cb, sb, q);
                    let got = r.eval(tb, cb, sb);
                    assert_eq!(got.to_bits(), expected.to_bits(), "T {temp_c}, I {current_a}, SOC {soc}");
                    // and the same function as the table, to rounding
                    assert!((got - t.eval(temp_c, current_a, soc)).abs() < 1e-18, "{got}");
                }
            }
        }
    }

    #[test]
    fn resampled_without_temperature_or_current_axes() {
        let t = Table::from_values("ocv", &TableValues::Soc(vec![3.0, 3.5, 4.0]), &[0.0], &[0.0], &[0.0, 0.5, 1.0])
            .unwrap();
        let axis = [0.0, 0.25, 0.5, 1.0];
        let r = Resampled::new(&t, &axis);
        assert_eq!(r.rows(), 1);
        let any = Bracket { i: 3, f: 0.7 };
        assert_eq!(r.eval(any, any, Bracket::locate(&axis, 0.375, 0)), 3.375);
        assert_eq!(r.eval(any, any, Bracket::locate(&axis, 1.0, 0)), 4.0);
        let c = Resampled::new(&Table::constant(0.25), &axis);
        assert_eq!(c.eval(any, any, Bracket { i: 2, f: 0.5 }), 0.25);
    }
}
