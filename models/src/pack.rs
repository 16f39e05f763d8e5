//! A series string of cells with manufacturing spread.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::cell::{Cell, CellParams};
use crate::decay::Decay;
use crate::error::{self, ParamError};
use crate::ocv::OcvTable;
use crate::variant::Variant;

/// Default 1σ relative spread of cell capacity within a pack (1 %, typical
/// of a matched/graded lot of prismatic LFP cells).
pub const DEFAULT_CAPACITY_SPREAD_REL: f64 = 0.01;
/// Default 1σ relative spread of cell R0 within a pack (3 %).
pub const DEFAULT_R0_SPREAD_REL: f64 = 0.03;
/// Default 1σ spread of the initial cell SOC around the pack SOC (0.5 %
/// SOC, an unbalanced-but-assembled pack).
pub const DEFAULT_SOC_SPREAD: f64 = 0.005;

/// A drawn relative factor is kept at or above this, so that an extreme
/// draw (or an absurd spread) cannot make a capacity or resistance ≤ 0.
const MIN_SPREAD_FACTOR: f64 = 0.05;

/// Parameters of the battery pack.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackParams {
    /// The nominal cell.
    pub cell: CellParams,
    /// Cells in series; 0 takes the variant's count (4/8/16 LiFePO4).
    pub cells_in_series: usize,
    /// 1σ relative spread of cell capacity.
    pub capacity_spread_rel: f64,
    /// 1σ relative spread of cell R0.
    pub r0_spread_rel: f64,
    /// 1σ spread of initial cell SOC around the pack SOC (absolute, 0..1 scale).
    pub soc_spread: f64,
}

impl Default for PackParams {
    fn default() -> Self {
        Self {
            cell: CellParams::default(),
            cells_in_series: 0,
            capacity_spread_rel: DEFAULT_CAPACITY_SPREAD_REL,
            r0_spread_rel: DEFAULT_R0_SPREAD_REL,
            soc_spread: DEFAULT_SOC_SPREAD,
        }
    }
}

impl PackParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.cell.validate()?;
        error::non_negative("capacity_spread_rel", self.capacity_spread_rel)?;
        error::non_negative("r0_spread_rel", self.r0_spread_rel)?;
        error::non_negative("soc_spread", self.soc_spread)
    }

    /// Number of cells for `variant` (`cells_in_series`, or the variant's
    /// count when that is 0).
    pub fn cells_for(&self, variant: Variant) -> usize {
        if self.cells_in_series == 0 { variant.cells_in_series() } else { self.cells_in_series }
    }
}

/// A series string of cells.
///
/// All cells share τ1 (the spread is in capacity, R0 and initial SOC), so a
/// step needs one `exp`, and none at all while `dt` stays the same.
#[derive(Clone, Debug)]
pub struct Pack {
    cells: Vec<Cell>,
    /// OCV table of the (common) chemistry.
    table: &'static OcvTable,
    r1_ohm: f64,
    decay: Decay,
    /// Σ (OCV + v_rc1) over the cells, refreshed after every state change.
    rest_v: f64,
    r0_total_ohm: f64,
    capacity_ah: f64,
}

impl Pack {
    /// Builds a pack for `variant` at `initial_soc`, drawing each cell's
    /// capacity, R0 and initial SOC from `rng` (the scenario's "pack"
    /// stream). For every cell, in order, exactly three standard normals are
    /// drawn (capacity, R0, SOC), whether or not the spreads are zero, so
    /// changing one spread does not reshuffle the others.
    pub fn new<R: Rng + ?Sized>(params: &PackParams, variant: Variant, initial_soc: f64, rng: &mut R) -> Pack {
        let n = params.cells_for(variant);
        let initial_soc = initial_soc.clamp(0.0, 1.0);
        let cells: Vec<Cell> = (0..n)
            .map(|_| {
                let z_cap: f64 = StandardNormal.sample(rng);
                let z_r0: f64 = StandardNormal.sample(rng);
                let z_soc: f64 = StandardNormal.sample(rng);
                let cell = CellParams {
                    capacity_ah: params.cell.capacity_ah
                        * (1.0 + params.capacity_spread_rel * z_cap).max(MIN_SPREAD_FACTOR),
                    r0_ohm: params.cell.r0_ohm * (1.0 + params.r0_spread_rel * z_r0).max(MIN_SPREAD_FACTOR),
                    ..params.cell
                };
                Cell::new(&cell, initial_soc + params.soc_spread * z_soc)
            })
            .collect();
        Self::from_cells(cells, &params.cell)
    }

    fn from_cells(cells: Vec<Cell>, cell: &CellParams) -> Pack {
        let mut pack = Pack {
            table: cell.chemistry.table(),
            r1_ohm: cell.r1_ohm,
            decay: Decay::new(cell.tau1_s),
            r0_total_ohm: cells.iter().map(|c| c.params().r0_ohm).sum(),
            capacity_ah: cells.iter().map(|c| c.params().capacity_ah).fold(f64::INFINITY, f64::min),
            cells,
            rest_v: 0.0,
        };
        pack.refresh();
        pack
    }

    fn refresh(&mut self) {
        self.rest_v = self.cells.iter().map(|c| c.ocv_v() + c.v_rc1_v).sum();
    }

    /// Advances every cell by `dt_s` with `current_a` (> 0 charges) held
    /// constant: coulomb counting (SOC clamped to 0..1) and the exact RC
    /// update. `exp` is evaluated only when `dt_s` changes.
    pub fn step(&mut self, dt_s: f64, current_a: f64) {
        let a = self.decay.factor(dt_s);
        let b = self.r1_ohm * (1.0 - a);
        let charge_c = current_a * dt_s;
        let mut rest_v = 0.0;
        for cell in &mut self.cells {
            cell.step_zoh(charge_c, current_a, a, b);
            rest_v += self.table.ocv_v(cell.soc) + cell.v_rc1_v;
        }
        self.rest_v = rest_v;
    }

    /// Terminal voltage while `current_a` flows (V):
    /// Σ (OCV(soc_i) + v_rc1_i + I·R0_i).
    #[inline]
    pub fn terminal_voltage_v(&self, current_a: f64) -> f64 {
        self.rest_v + current_a * self.r0_total_ohm
    }

    /// Σ OCV of the cells (V).
    pub fn ocv_v(&self) -> f64 {
        self.cells.iter().map(Cell::ocv_v).sum()
    }

    /// Mean cell SOC (0..1).
    pub fn soc(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.iter().map(|c| c.soc).sum::<f64>() / self.cells.len() as f64
    }

    /// Lowest cell SOC.
    pub fn min_soc(&self) -> f64 {
        self.cells.iter().map(|c| c.soc).fold(f64::INFINITY, f64::min)
    }

    /// Highest cell SOC.
    pub fn max_soc(&self) -> f64 {
        self.cells.iter().map(|c| c.soc).fold(f64::NEG_INFINITY, f64::max)
    }

    /// The cells, in series order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Capacity of the series string: that of its smallest cell (Ah).
    pub fn capacity_ah(&self) -> f64 {
        self.capacity_ah
    }

    /// Σ R0 of the cells (Ω).
    pub fn r0_total_ohm(&self) -> f64 {
        self.r0_total_ohm
    }

    /// Heat dissipated in all cells at `current_a` (W).
    pub fn heat_w(&self, current_a: f64) -> f64 {
        self.cells.iter().map(|c| c.heat_w(current_a)).sum()
    }

    /// `false` if any state variable is NaN or infinite.
    pub fn is_finite(&self) -> bool {
        self.rest_v.is_finite() && self.cells.iter().all(|c| c.soc.is_finite() && c.v_rc1_v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocv;
    use crate::rng::SeedStreams;

    fn pack(params: &PackParams, variant: Variant, soc: f64, seed: u64) -> Pack {
        Pack::new(params, variant, soc, &mut SeedStreams::new(seed).stream("pack"))
    }

    fn no_spread() -> PackParams {
        PackParams { capacity_spread_rel: 0.0, r0_spread_rel: 0.0, soc_spread: 0.0, ..PackParams::default() }
    }

    #[test]
    fn cell_count_from_variant_or_override() {
        for v in Variant::ALL {
            assert_eq!(pack(&PackParams::default(), v, 0.5, 1).cells().len(), v.cells_in_series());
        }
        let p = PackParams { cells_in_series: 15, ..PackParams::default() };
        assert_eq!(pack(&p, Variant::V48, 0.5, 1).cells().len(), 15);
    }

    #[test]
    fn rc_step_response_matches_closed_form() {
        let p = no_spread();
        let mut pk = pack(&p, Variant::V12, 0.5, 1);
        let i = -120.0;
        let ocv0 = pk.ocv_v();
        let dt = 1e-3;
        let mut t = 0.0;
        for k in 1..=100_000u32 {
            pk.step(dt, i);
            t = f64::from(k) * dt;
        }
        let n = 4.0;
        let v_rc = n * p.cell.r1_ohm * i * (1.0 - (-t / p.cell.tau1_s).exp());
        let expected_rc: f64 = pk.cells().iter().map(|c| c.v_rc1_v).sum();
        assert!((expected_rc - v_rc).abs() < 1e-9);
        // terminal = Σocv(soc(t)) + v_rc + I·R0
        let v = pk.terminal_voltage_v(i);
        assert!((v - (pk.ocv_v() + v_rc + i * n * p.cell.r0_ohm)).abs() < 1e-9);
        assert!(pk.ocv_v() < ocv0);
    }

    #[test]
    fn fixed_step_sizes_agree_after_600_s() {
        let p = PackParams::default();
        let i = -100.0;
        let mut coarse = pack(&p, Variant::V48, 0.8, 7);
        let mut fine = pack(&p, Variant::V48, 0.8, 7);
        for _ in 0..600 {
            coarse.step(1.0, i);
        }
        for _ in 0..600_000 {
            fine.step(1e-3, i);
        }
        let dv = coarse.terminal_voltage_v(i) - fine.terminal_voltage_v(i);
        assert!(dv.abs() < 0.1e-3, "dv = {dv}");
    }

    #[test]
    fn ocv_at_rest_after_relaxation() {
        let p = PackParams::default();
        let mut pk = pack(&p, Variant::V24, 0.7, 3);
        for _ in 0..600 {
            pk.step(1.0, 200.0);
        }
        assert!(pk.terminal_voltage_v(0.0) - pk.ocv_v() > 10e-3);
        for _ in 0..(10.0 * p.cell.tau1_s) as usize {
            pk.step(1.0, 0.0);
        }
        let sum_ocv: f64 = pk.cells().iter().map(|c| ocv::ocv_v(c.soc)).sum();
        assert!((pk.terminal_voltage_v(0.0) - sum_ocv).abs() < 0.1e-3);
    }

    #[test]
    fn coulomb_50a_for_1h_moves_soc_by_half() {
        let p = no_spread();
        let mut pk = pack(&p, Variant::V12, 0.2, 1);
        for _ in 0..3600 {
            pk.step(1.0, 50.0);
        }
        for c in pk.cells() {
            assert!((c.soc - 0.7).abs() < 1e-9);
        }
        assert!((pk.soc() - 0.7).abs() < 1e-9);
    }

    #[test]
    fn spreads_are_drawn_and_reproducible() {
        let p = PackParams::default();
        let a = pack(&p, Variant::V48, 0.5, 11);
        let b = pack(&p, Variant::V48, 0.5, 11);
        let c = pack(&p, Variant::V48, 0.5, 12);
        assert_eq!(a.cells(), b.cells());
        assert_ne!(a.cells(), c.cells());
        assert!(a.max_soc() > a.min_soc());
        let caps: Vec<f64> = a.cells().iter().map(|c| c.params().capacity_ah).collect();
        assert_eq!(a.capacity_ah(), caps.iter().copied().fold(f64::INFINITY, f64::min));
        let r0: f64 = a.cells().iter().map(|c| c.params().r0_ohm).sum();
        assert!((a.r0_total_ohm() - r0).abs() < 1e-15);
        assert!(a.is_finite());
    }

    #[test]
    fn zero_spread_keeps_other_draws() {
        // Changing one spread must not reshuffle the others.
        let p = PackParams::default();
        let q = PackParams { capacity_spread_rel: 0.0, ..p };
        let a = pack(&p, Variant::V24, 0.5, 5);
        let b = pack(&q, Variant::V24, 0.5, 5);
        for (x, y) in a.cells().iter().zip(b.cells()) {
            assert_eq!(x.params().r0_ohm, y.params().r0_ohm);
            assert_eq!(x.soc, y.soc);
            assert_eq!(y.params().capacity_ah, 100.0);
        }
    }

    #[test]
    fn params_override_any_field_and_reject_unknown() {
        use serde::de::value::{Error, MapDeserializer};
        let de = |kv: Vec<(&'static str, f64)>| -> Result<PackParams, Error> {
            PackParams::deserialize(MapDeserializer::new(kv.into_iter()))
        };
        let p = de(vec![("soc_spread", 0.02)]).unwrap();
        assert_eq!(p, PackParams { soc_spread: 0.02, ..PackParams::default() });
        assert!(de(vec![("soc_sprad", 0.02)]).is_err());
        assert!(PackParams::default().validate().is_ok());
    }

    #[test]
    fn soc_spread_statistics() {
        // 1σ of initial SOC over many cells ≈ soc_spread.
        let p = PackParams { cells_in_series: 4000, ..PackParams::default() };
        let pk = pack(&p, Variant::V12, 0.5, 99);
        let n = pk.cells().len() as f64;
        let mean = pk.soc();
        let var = pk.cells().iter().map(|c| (c.soc - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 0.5).abs() < 4.0 * p.soc_spread / n.sqrt());
        assert!((var.sqrt() / p.soc_spread - 1.0).abs() < 0.05);
    }
}
