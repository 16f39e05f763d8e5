//! Open-circuit voltage of one cell as a function of state of charge.
//!
//! Tables of (SOC, OCV) breakpoints, interpolated linearly and clamped at
//! the ends. Both columns are strictly increasing, so the inverse
//! ([`OcvTable::soc_from_ocv`]) is unique — even on the LiFePO4 plateau,
//! whose slope is small but never zero.
//!
//! The curves are representative of the chemistries, not of a particular
//! cell's datasheet: LiFePO4/graphite rests at ≈ 3.2–3.35 V over most of its
//! range with two shallow plateaus (the graphite staging steps near 30–60 %
//! and 65–90 %), a steep knee below ≈ 10 % and a sharp rise above ≈ 95 %.

use serde::{Deserialize, Serialize};

/// A cell chemistry, selecting its OCV table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Chemistry {
    /// LiFePO4 (the cells the SmartPro-209 variants are sized for).
    #[default]
    Lfp,
    /// NMC (Li(NiMnCo)O2), for later use.
    Nmc,
}

impl Chemistry {
    /// The OCV table of this chemistry.
    pub const fn table(self) -> &'static OcvTable {
        match self {
            Chemistry::Lfp => &LFP,
            Chemistry::Nmc => &NMC,
        }
    }
}

/// Resolution of the uniform lookup grid: every breakpoint SOC must be a
/// multiple of `1 / GRID_STEPS`, so that linear interpolation on the grid is
/// the same piecewise-linear curve as on the breakpoints.
pub const GRID_STEPS: usize = 100;

/// An OCV(SOC) curve: breakpoints `(soc, ocv_v)`, both strictly increasing,
/// SOC from 0 to 1 in multiples of 1/[`GRID_STEPS`].
///
/// `ocv_v` — called per cell per step — is an O(1) lookup in a uniform grid
/// built at compile time from the breakpoints; `soc_from_ocv` searches the
/// breakpoints.
#[derive(Debug)]
pub struct OcvTable {
    points: &'static [(f64, f64)],
    grid: [f64; GRID_STEPS + 1],
}

/// LiFePO4 cell OCV (V) at rest, 25 °C, by SOC (0..1). 21 breakpoints:
/// 2.50 V empty, knee ≈ 3.20 V at 10 %, plateau 3.26–3.34 V from 20 % to
/// 90 %, 3.40 V at 97 %, 3.60 V full (the usual charge cut-off of LFP).
pub const LFP: OcvTable = OcvTable::new(&[
    (0.00, 2.500),
    (0.02, 2.900),
    (0.05, 3.100),
    (0.10, 3.200),
    (0.15, 3.240),
    (0.20, 3.260),
    (0.25, 3.270),
    (0.30, 3.280),
    (0.35, 3.285),
    (0.40, 3.290),
    (0.50, 3.295),
    (0.60, 3.300),
    (0.65, 3.315),
    (0.70, 3.325),
    (0.80, 3.330),
    (0.85, 3.333),
    (0.90, 3.340),
    (0.95, 3.360),
    (0.97, 3.400),
    (0.99, 3.480),
    (1.00, 3.600),
]);

/// NMC/graphite cell OCV (V) at rest, 25 °C, by SOC (0..1): 3.0 V empty,
/// ≈ 3.65 V at 50 %, 4.2 V full; sloped throughout.
pub const NMC: OcvTable = OcvTable::new(&[
    (0.00, 3.000),
    (0.05, 3.300),
    (0.10, 3.420),
    (0.15, 3.480),
    (0.20, 3.520),
    (0.25, 3.550),
    (0.30, 3.575),
    (0.35, 3.600),
    (0.40, 3.620),
    (0.45, 3.640),
    (0.50, 3.660),
    (0.55, 3.690),
    (0.60, 3.730),
    (0.65, 3.775),
    (0.70, 3.820),
    (0.75, 3.865),
    (0.80, 3.915),
    (0.85, 3.970),
    (0.90, 4.030),
    (0.95, 4.100),
    (1.00, 4.200),
]);

impl OcvTable {
    /// A table from breakpoints. Panics (at compile time, in a `const`)
    /// unless there are at least two, both columns strictly increase, SOC
    /// runs from 0 to 1, and every SOC is a multiple of 1/[`GRID_STEPS`].
    pub const fn new(points: &'static [(f64, f64)]) -> Self {
        let n = points.len();
        assert!(n >= 2, "OCV table needs at least two breakpoints");
        assert!(points[0].0 == 0.0 && points[n - 1].0 == 1.0, "OCV table must span SOC 0..1");
        let mut k = 0;
        while k < n {
            let x = points[k].0 * GRID_STEPS as f64;
            let xi = (x + 0.5) as usize as f64;
            assert!(x - xi < 1e-9 && xi - x < 1e-9, "OCV breakpoint SOC is not a multiple of 1/GRID_STEPS");
            if k > 0 {
                assert!(
                    points[k].0 > points[k - 1].0 && points[k].1 > points[k - 1].1,
                    "OCV table must be strictly increasing"
                );
            }
            k += 1;
        }
        let mut grid = [0.0; GRID_STEPS + 1];
        let mut seg = 0;
        let mut j = 0;
        while j <= GRID_STEPS {
            let soc = j as f64 / GRID_STEPS as f64;
            while seg + 2 < n && points[seg + 1].0 <= soc {
                seg += 1;
            }
            let (a, b) = (points[seg], points[seg + 1]);
            let t = (soc - a.0) / (b.0 - a.0);
            grid[j] = a.1 + t * (b.1 - a.1);
            j += 1;
        }
        Self { points, grid }
    }

    /// The breakpoints `(soc, ocv_v)`.
    pub const fn points(&self) -> &'static [(f64, f64)] {
        self.points
    }

    /// OCV (V) at `soc` (0..1, clamped; NaN gives the empty-cell voltage).
    #[inline]
    pub fn ocv_v(&self, soc: f64) -> f64 {
        let x = soc * GRID_STEPS as f64;
        if x.is_nan() || x <= 0.0 {
            return self.grid[0];
        }
        if x >= GRID_STEPS as f64 {
            return self.grid[GRID_STEPS];
        }
        // 0 < x < GRID_STEPS, so i + 1 <= GRID_STEPS.
        let i = x as usize;
        let t = x - i as f64;
        let (a, b) = (self.grid[i], self.grid[i + 1]);
        a + t * (b - a)
    }

    /// SOC (0..1) whose OCV is `v` (clamped to the table's voltage range).
    #[inline]
    pub fn soc_from_ocv(&self, v: f64) -> f64 {
        interpolate(self.points, v, |p| p.1, |p| p.0)
    }

    /// dOCV/dSOC (V per unit SOC) of the segment containing `soc`.
    pub fn slope_v_per_soc(&self, soc: f64) -> f64 {
        let i = segment(self.points, soc, |p| p.0);
        let (a, b) = (self.points[i], self.points[i + 1]);
        (b.1 - a.1) / (b.0 - a.0)
    }
}

/// Index `i` of the segment `[pts[i], pts[i+1]]` holding `x` (clamped to the
/// first/last segment).
#[inline]
fn segment(pts: &[(f64, f64)], x: f64, key: impl Fn(&(f64, f64)) -> f64) -> usize {
    // Number of breakpoints with key <= x, minus one, limited to a valid segment.
    let n = pts.partition_point(|p| key(p) <= x);
    n.saturating_sub(1).min(pts.len() - 2)
}

#[inline]
fn interpolate(
    pts: &[(f64, f64)],
    x: f64,
    key: impl Fn(&(f64, f64)) -> f64 + Copy,
    val: impl Fn(&(f64, f64)) -> f64,
) -> f64 {
    let first = &pts[0];
    let last = &pts[pts.len() - 1];
    if x.is_nan() || x <= key(first) {
        return val(first);
    }
    if x >= key(last) {
        return val(last);
    }
    let i = segment(pts, x, key);
    let (a, b) = (&pts[i], &pts[i + 1]);
    let t = (x - key(a)) / (key(b) - key(a));
    val(a) + t * (val(b) - val(a))
}

/// LiFePO4 OCV (V) at `soc` — shorthand for `LFP.ocv_v(soc)`.
#[inline]
pub fn ocv_v(soc: f64) -> f64 {
    LFP.ocv_v(soc)
}

/// LiFePO4 SOC at OCV `v` — shorthand for `LFP.soc_from_ocv(v)`.
#[inline]
pub fn soc_from_ocv(v: f64) -> f64 {
    LFP.soc_from_ocv(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strictly_increasing(t: &OcvTable) {
        for w in t.points().windows(2) {
            assert!(w[1].0 > w[0].0, "soc not increasing at {:?}", w);
            assert!(w[1].1 > w[0].1, "ocv not increasing at {:?}", w);
        }
        assert_eq!(t.points()[0].0, 0.0);
        assert_eq!(t.points()[t.points().len() - 1].0, 1.0);
    }

    #[test]
    fn tables_are_monotonic_and_span_0_to_1() {
        strictly_increasing(&LFP);
        strictly_increasing(&NMC);
        assert_eq!(LFP.points().len(), 21);
    }

    #[test]
    fn lfp_landmarks() {
        for (soc, v) in [(0.0, 2.50), (0.10, 3.20), (0.97, 3.40), (1.0, 3.60)] {
            assert!((ocv_v(soc) - v).abs() < 1e-12, "{soc}");
        }
        // plateau
        for i in 20..=90 {
            let v = ocv_v(f64::from(i) / 100.0);
            assert!((3.26..=3.34).contains(&v), "{i} % → {v}");
        }
    }

    #[test]
    fn grid_lookup_equals_breakpoint_interpolation() {
        for t in [&LFP, &NMC] {
            for i in -10..=10_010 {
                let soc = f64::from(i) / 10_000.0;
                let direct = interpolate(t.points(), soc, |p| p.0, |p| p.1);
                assert!((t.ocv_v(soc) - direct).abs() < 1e-12, "{soc}");
            }
        }
    }

    #[test]
    fn interpolation_is_linear_between_breakpoints() {
        let mid = ocv_v(0.45);
        assert!((mid - (3.290 + 3.295) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn clamps_outside_range() {
        assert_eq!(ocv_v(-0.5), 2.50);
        assert_eq!(ocv_v(1.5), 3.60);
        assert_eq!(ocv_v(f64::NAN), 2.50);
        assert_eq!(soc_from_ocv(1.0), 0.0);
        assert_eq!(soc_from_ocv(5.0), 1.0);
    }

    #[test]
    fn inverse_roundtrips() {
        for t in [&LFP, &NMC] {
            for i in 0..=1000 {
                let soc = f64::from(i) / 1000.0;
                let back = t.soc_from_ocv(t.ocv_v(soc));
                assert!((back - soc).abs() < 1e-9, "{soc} → {back}");
            }
        }
    }

    #[test]
    fn slope_matches_segment() {
        let s = LFP.slope_v_per_soc(0.45);
        assert!((s - 0.005 / 0.10).abs() < 1e-12);
        assert!(LFP.slope_v_per_soc(0.995) > 10.0);
    }
}
