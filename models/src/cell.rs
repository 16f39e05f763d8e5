//! One cell: equivalent circuit OCV(SOC) + R0 + (R1 ∥ C1).
//!
//! ```text
//!   + ──[ OCV(soc) ]──[ R0 ]──[ R1 ∥ C1 ]── −        v = OCV + v_rc1 + I·R0
//! ```
//!
//! Current `I > 0` charges the cell. State: `soc` (coulomb counted, clamped
//! to 0..1) and `v_rc1_v`, the voltage across the RC pair. Under a current
//! held constant over a step (zero-order hold) the RC pair has the exact
//! update `v' = v·a + R1·(1 − a)·I` with `a = exp(−dt/τ1)`, so the result
//! does not depend on the step size.

use serde::{Deserialize, Serialize};

use crate::decay::decay_factor;
use crate::error::{self, ParamError};
use crate::ocv::Chemistry;

/// Seconds per hour, for Ah ↔ A·s.
pub const SECONDS_PER_HOUR: f64 = 3600.0;

/// Default cell: a 100 Ah prismatic LiFePO4 cell (the cell class the
/// SmartPro-209's 209 mm cell-width mounting is made for).
///
/// The figures are typical of that class, not of one product: datasheets of
/// 100 Ah prismatic LFP cells quote an AC (1 kHz) impedance of about
/// 0.3–0.6 mΩ, and HPPC pulse tests give a 10 s DC resistance of roughly
/// 1.5–2× that, the excess relaxing with a time constant of tens of seconds
/// (charge transfer and short-range diffusion). Split here as R0 = 0.5 mΩ
/// (instantaneous) and R1 = 0.3 mΩ with τ1 = 30 s.
pub const DEFAULT_CAPACITY_AH: f64 = 100.0;
/// Ohmic resistance of the default cell (Ω); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_R0_OHM: f64 = 0.5e-3;
/// Polarisation resistance of the default cell (Ω); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_R1_OHM: f64 = 0.3e-3;
/// Polarisation time constant of the default cell (s); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_TAU1_S: f64 = 30.0;

/// Parameters of one cell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellParams {
    /// Rated capacity (Ah).
    pub capacity_ah: f64,
    /// Ohmic (instantaneous) resistance (Ω).
    pub r0_ohm: f64,
    /// Resistance of the RC pair (Ω).
    pub r1_ohm: f64,
    /// Time constant R1·C1 of the RC pair (s).
    pub tau1_s: f64,
    /// Chemistry, selecting the OCV table.
    pub chemistry: Chemistry,
}

impl Default for CellParams {
    fn default() -> Self {
        Self {
            capacity_ah: DEFAULT_CAPACITY_AH,
            r0_ohm: DEFAULT_R0_OHM,
            r1_ohm: DEFAULT_R1_OHM,
            tau1_s: DEFAULT_TAU1_S,
            chemistry: Chemistry::Lfp,
        }
    }
}

impl CellParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("cell.capacity_ah", self.capacity_ah)?;
        error::non_negative("cell.r0_ohm", self.r0_ohm)?;
        error::non_negative("cell.r1_ohm", self.r1_ohm)?;
        error::non_negative("cell.tau1_s", self.tau1_s)
    }
}

/// One cell's state and its own (as-built) parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// State of charge, 0..1.
    pub soc: f64,
    /// Voltage across the RC pair (V); positive while charging.
    pub v_rc1_v: f64,
    params: CellParams,
    /// 1 / (capacity in A·s): SOC change per coulomb.
    soc_per_coulomb: f64,
}

impl Cell {
    /// A relaxed cell (`v_rc1_v = 0`) at `soc` (clamped to 0..1).
    pub fn new(params: &CellParams, soc: f64) -> Self {
        Self {
            soc: soc.clamp(0.0, 1.0),
            v_rc1_v: 0.0,
            params: *params,
            soc_per_coulomb: 1.0 / (params.capacity_ah * SECONDS_PER_HOUR),
        }
    }

    /// This cell's parameters (including its drawn manufacturing spread).
    pub fn params(&self) -> &CellParams {
        &self.params
    }

    /// Advances by `dt_s` with `current_a` held constant (> 0 charges).
    pub fn step(&mut self, dt_s: f64, current_a: f64) {
        let a = decay_factor(dt_s, self.params.tau1_s);
        self.step_zoh(current_a * dt_s, current_a, a, self.params.r1_ohm * (1.0 - a));
    }

    /// The update with the step's charge `charge_c = I·dt` (C) and the RC
    /// factors precomputed: `a = exp(-dt/τ1)`, `b = R1·(1 − a)`.
    #[inline]
    pub(crate) fn step_zoh(&mut self, charge_c: f64, current_a: f64, a: f64, b: f64) {
        self.soc = (self.soc + charge_c * self.soc_per_coulomb).clamp(0.0, 1.0);
        self.v_rc1_v = self.v_rc1_v * a + b * current_a;
    }

    /// Open-circuit voltage at the present SOC (V).
    #[inline]
    pub fn ocv_v(&self) -> f64 {
        self.params.chemistry.table().ocv_v(self.soc)
    }

    /// Terminal voltage while `current_a` flows (V).
    #[inline]
    pub fn terminal_voltage_v(&self, current_a: f64) -> f64 {
        self.ocv_v() + self.v_rc1_v + current_a * self.params.r0_ohm
    }

    /// Heat dissipated in the cell's resistances at `current_a` (W):
    /// `I²·R0 + v_rc1²/R1`.
    pub fn heat_w(&self, current_a: f64) -> f64 {
        let rc = if self.params.r1_ohm > 0.0 { self.v_rc1_v * self.v_rc1_v / self.params.r1_ohm } else { 0.0 };
        current_a * current_a * self.params.r0_ohm + rc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(cell: &mut Cell, dt_s: f64, steps: usize, current_a: f64) {
        for _ in 0..steps {
            cell.step(dt_s, current_a);
        }
    }

    #[test]
    fn rc_step_response_matches_closed_form() {
        let p = CellParams::default();
        let i = -80.0;
        let mut cell = Cell::new(&p, 0.5);
        let dt = 0.1;
        for k in 1..=3000 {
            cell.step(dt, i);
            let t = f64::from(k) * dt;
            let expected = p.r1_ohm * i * (1.0 - (-t / p.tau1_s).exp());
            assert!((cell.v_rc1_v - expected).abs() < 1e-12, "t={t}: {} vs {expected}", cell.v_rc1_v);
        }
    }

    #[test]
    fn step_size_does_not_change_the_answer() {
        let p = CellParams::default();
        let i = 100.0;
        let mut coarse = Cell::new(&p, 0.2);
        let mut fine = Cell::new(&p, 0.2);
        run(&mut coarse, 1.0, 600, i);
        run(&mut fine, 1e-3, 600_000, i);
        let dv = coarse.terminal_voltage_v(i) - fine.terminal_voltage_v(i);
        assert!(dv.abs() < 0.1e-3, "dv = {dv}");
    }

    #[test]
    fn relaxes_to_ocv() {
        let p = CellParams::default();
        let mut cell = Cell::new(&p, 0.6);
        run(&mut cell, 1.0, 300, -150.0);
        assert!(cell.v_rc1_v.abs() > 1e-3);
        run(&mut cell, 1.0, (10.0 * p.tau1_s) as usize, 0.0);
        assert!((cell.terminal_voltage_v(0.0) - cell.ocv_v()).abs() < 0.1e-3);
    }

    #[test]
    fn coulomb_counting_is_exact() {
        let p = CellParams::default();
        let mut cell = Cell::new(&p, 0.25);
        run(&mut cell, 1.0, 3600, 50.0);
        assert!((cell.soc - 0.75).abs() < 1e-9, "soc = {}", cell.soc);
        run(&mut cell, 0.5, 7200, -50.0);
        assert!((cell.soc - 0.25).abs() < 1e-9, "soc = {}", cell.soc);
    }

    #[test]
    fn soc_clamps() {
        let mut cell = Cell::new(&CellParams::default(), 0.99);
        run(&mut cell, 60.0, 60, 100.0);
        assert_eq!(cell.soc, 1.0);
        run(&mut cell, 60.0, 200, -100.0);
        assert_eq!(cell.soc, 0.0);
    }

    #[test]
    fn terminal_voltage_sign_convention() {
        let cell = Cell::new(&CellParams::default(), 0.5);
        let ocv = cell.ocv_v();
        assert!(cell.terminal_voltage_v(100.0) > ocv);
        assert!(cell.terminal_voltage_v(-100.0) < ocv);
        assert!((cell.terminal_voltage_v(100.0) - ocv - 100.0 * DEFAULT_R0_OHM).abs() < 1e-15);
    }

    #[test]
    fn heat_at_steady_state() {
        let p = CellParams::default();
        let mut cell = Cell::new(&p, 0.5);
        run(&mut cell, 1.0, 1000, -100.0);
        // steady state: v_rc = I·R1, heat = I²(R0 + R1)
        let expected = 100.0 * 100.0 * (p.r0_ohm + p.r1_ohm);
        assert!((cell.heat_w(-100.0) - expected).abs() < 1e-9);
    }

    #[test]
    fn validate_rejects_unphysical() {
        assert!(CellParams::default().validate().is_ok());
        let bad = CellParams { capacity_ah: 0.0, ..CellParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "cell.capacity_ah");
    }
}
