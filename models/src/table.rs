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

    /// A table over SOC only.
    pub fn over_soc(soc: Vec<f64>, values: Vec<f64>) -> Self {
        assert_eq!(soc.len(), values.len());
        Self { temp_c: vec![0.0], current_a: vec![0.0], soc, values }
    }

    /// A table over temperature × SOC; `values[it][is]`.
    pub fn over_temp_soc(temp_c: Vec<f64>, soc: Vec<f64>, values: &[Vec<f64>]) -> Self {
        assert_eq!(temp_c.len(), values.len());
        let flat: Vec<f64> = values.iter().flat_map(|r| r.iter().copied()).collect();
        assert_eq!(flat.len(), temp_c.len() * soc.len());
        Self { temp_c, current_a: vec![0.0], soc, values: flat }
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

    /// Value at (temperature, current, SOC), multilinear, clamped.
    pub fn eval(&self, temp_c: f64, current_a: f64, soc: f64) -> f64 {
        let (it, ft) = locate(&self.temp_c, temp_c, 0);
        let (ic, fc) = locate(&self.current_a, current_a, 0);
        let (is, fs) = locate(&self.soc, soc, 0);
        let nt = self.temp_c.len();
        let nc = self.current_a.len();
        let ns = self.soc.len();
        let at = |t: usize, c: usize, s: usize| self.values[(t * nc + c) * ns + s];
        let lerp = |a: f64, b: f64, f: f64| a + f * (b - a);
        let t1 = (it + 1).min(nt - 1);
        let c1 = (ic + 1).min(nc - 1);
        let s1 = (is + 1).min(ns - 1);
        let plane = |t: usize| {
            let lo = lerp(at(t, ic, is), at(t, ic, s1), fs);
            let hi = lerp(at(t, c1, is), at(t, c1, s1), fs);
            lerp(lo, hi, fc)
        };
        lerp(plane(it), plane(t1), ft)
    }

    /// The table at a fixed temperature, on `soc_axis` (which must contain
    /// every SOC breakpoint of this table, so that the result is exactly
    /// the same piecewise-linear function of SOC): `out[ic * n + is]` for
    /// each of this table's current breakpoints.
    pub fn slice_at_temp(&self, temp_c: f64, soc_axis: &[f64], out: &mut Vec<f64>) {
        out.clear();
        for &c in &self.current_a {
            for &s in soc_axis {
                out.push(self.eval(temp_c, c, s));
            }
        }
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

    #[test]
    fn slice_keeps_the_curve() {
        let t = Table::over_temp_soc(vec![0.0, 50.0], vec![0.0, 0.3, 1.0], &[vec![1.0, 2.0, 5.0], vec![2.0, 3.0, 7.0]]);
        let axis = union_axis(&[&[0.0, 0.3, 1.0], &[0.0, 0.5, 1.0]]);
        assert_eq!(axis, vec![0.0, 0.3, 0.5, 1.0]);
        let mut out = Vec::new();
        t.slice_at_temp(25.0, &axis, &mut out);
        for (k, s) in axis.iter().enumerate() {
            assert!((out[k] - t.eval(25.0, 0.0, *s)).abs() < 1e-15);
        }
    }
}
