//! One cell: its parameters (the built-in parameter set) and its state.
//!
//! ```text
//!  + ─[ OCV(x,T) + M·h ]─[ R0 ]─[ R1 ∥ C1 ]─[ R2 ∥ C2 ]─ −
//!        v = OCV(x,T) + M·h + v1 + v2 + I·R0
//! ```
//!
//! Current `I > 0` charges the cell. The state is the SOC, the voltages
//! across the two RC pairs and the hysteresis state `h` (−1..1); the
//! equations and their exact discretisation are in [`crate::pack`], which
//! steps all cells of a string together.

use serde::{Deserialize, Serialize};

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
/// (charge transfer and short-range diffusion) and a slower tail of minutes
/// (solid diffusion). Split here as R0 = 0.5 mΩ (instantaneous), R1 = 0.3 mΩ
/// with τ1 = 30 s and R2 = 0.2 mΩ with τ2 = 600 s.
pub const DEFAULT_CAPACITY_AH: f64 = 100.0;
/// Ohmic resistance of the default cell at 25 °C, 50 % SOC (Ω); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_R0_OHM: f64 = 0.5e-3;
/// Fast polarisation resistance of the default cell (Ω); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_R1_OHM: f64 = 0.3e-3;
/// Fast polarisation time constant of the default cell (s); see [`DEFAULT_CAPACITY_AH`].
pub const DEFAULT_TAU1_S: f64 = 30.0;
/// Slow (diffusion) polarisation resistance of the default cell (Ω).
pub const DEFAULT_R2_OHM: f64 = 0.2e-3;
/// Slow polarisation time constant of the default cell (s).
pub const DEFAULT_TAU2_S: f64 = 600.0;
/// OCV hysteresis half-width of LFP (V): charge and discharge branches of
/// the LFP OCV lie ≈ 20 mV apart on the plateau (widely reported, e.g.
/// Dreyer et al., Nature Materials 9 (2010) 448).
pub const DEFAULT_HYSTERESIS_V: f64 = 0.010;
/// Coulombic efficiency of LFP/graphite at moderate rates (≥ 99.9 % is
/// typical of commercial cells).
pub const DEFAULT_COULOMBIC_EFFICIENCY: f64 = 0.999;
/// Self-discharge of LFP at 25 °C: ≈ 3 % per month (cell makers' figures
/// are 2–3 %/month).
pub const DEFAULT_SELF_DISCHARGE_PER_MONTH: f64 = 0.03;
/// Activation energy of the cell resistances (J/mol): 20 kJ/mol, the value
/// PyBaMM's `ECM_Example` uses; measurements on LFP give 20–35 kJ/mol.
pub const DEFAULT_R_ACTIVATION_J_PER_MOL: f64 = 20_000.0;

/// Parameters of one cell (the built-in equivalent circuit; for tables of
/// your own see [`crate::ecm::EcmParams`]). Resistances are at 25 °C and
/// 50 % SOC; they follow [`crate::ecm::resistance_soc_factor`] over SOC and
/// an Arrhenius law over temperature; the time constants are constant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CellParams {
    /// Rated capacity at 25 °C (Ah).
    pub capacity_ah: f64,
    /// Ohmic (instantaneous) resistance (Ω).
    pub r0_ohm: f64,
    /// Resistance of the first RC pair (Ω).
    pub r1_ohm: f64,
    /// Time constant R1·C1 of the first RC pair (s).
    pub tau1_s: f64,
    /// Resistance of the second RC pair (Ω); 0: no second pair.
    pub r2_ohm: f64,
    /// Time constant R2·C2 of the second RC pair (s).
    pub tau2_s: f64,
    /// Chemistry, selecting the OCV table, entropic coefficient and
    /// capacity-vs-temperature curve.
    pub chemistry: Chemistry,
    /// OCV hysteresis half-width M (V); 0: none.
    pub hysteresis_v: f64,
    /// Hysteresis rate γ (per unit SOC of throughput).
    pub hysteresis_rate: f64,
    /// Fraction of the charge current stored.
    pub coulombic_efficiency: f64,
    /// Self-discharge at 25 °C (fraction of capacity per 30 days); doubles every 10 K.
    pub self_discharge_per_month: f64,
    /// Activation energy of the resistances (J/mol); 0: no temperature dependence.
    pub r_activation_j_per_mol: f64,
    /// Usable capacity falls in the cold ([`crate::ecm::capacity_temperature_factor`]).
    pub capacity_vs_temperature: bool,
}

impl Default for CellParams {
    fn default() -> Self {
        Self {
            capacity_ah: DEFAULT_CAPACITY_AH,
            r0_ohm: DEFAULT_R0_OHM,
            r1_ohm: DEFAULT_R1_OHM,
            tau1_s: DEFAULT_TAU1_S,
            r2_ohm: DEFAULT_R2_OHM,
            tau2_s: DEFAULT_TAU2_S,
            chemistry: Chemistry::Lfp,
            hysteresis_v: DEFAULT_HYSTERESIS_V,
            hysteresis_rate: crate::ecm::DEFAULT_HYSTERESIS_RATE,
            coulombic_efficiency: DEFAULT_COULOMBIC_EFFICIENCY,
            self_discharge_per_month: DEFAULT_SELF_DISCHARGE_PER_MONTH,
            r_activation_j_per_mol: DEFAULT_R_ACTIVATION_J_PER_MOL,
            capacity_vs_temperature: true,
        }
    }
}

impl CellParams {
    /// A 50 Ah NMC/graphite cell: R0 0.8 mΩ, R1 0.5 mΩ / 20 s, R2 0.3 mΩ /
    /// 400 s, 3 mV hysteresis, 99.95 % coulombic efficiency, 2 %/month
    /// self-discharge (typical of large-format NMC pouch cells).
    pub fn nmc() -> Self {
        Self {
            capacity_ah: 50.0,
            r0_ohm: 0.8e-3,
            r1_ohm: 0.5e-3,
            tau1_s: 20.0,
            r2_ohm: 0.3e-3,
            tau2_s: 400.0,
            chemistry: Chemistry::Nmc,
            hysteresis_v: 0.003,
            coulombic_efficiency: 0.9995,
            self_discharge_per_month: 0.02,
            ..Self::default()
        }
    }

    /// The ideal Thevenin cell of the closed-form tests: no hysteresis,
    /// no losses of charge, no temperature or SOC dependence of R.
    pub fn ideal_thevenin() -> Self {
        Self {
            hysteresis_v: 0.0,
            coulombic_efficiency: 1.0,
            self_discharge_per_month: 0.0,
            r_activation_j_per_mol: 0.0,
            capacity_vs_temperature: false,
            ..Self::default()
        }
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("cell.capacity_ah", self.capacity_ah)?;
        error::non_negative("cell.r0_ohm", self.r0_ohm)?;
        error::non_negative("cell.r1_ohm", self.r1_ohm)?;
        error::non_negative("cell.tau1_s", self.tau1_s)?;
        error::non_negative("cell.r2_ohm", self.r2_ohm)?;
        error::non_negative("cell.tau2_s", self.tau2_s)?;
        error::non_negative("cell.hysteresis_v", self.hysteresis_v)?;
        error::non_negative("cell.hysteresis_rate", self.hysteresis_rate)?;
        if !(self.coulombic_efficiency > 0.0 && self.coulombic_efficiency <= 1.0) {
            return Err(ParamError {
                name: "cell.coulombic_efficiency",
                value: self.coulombic_efficiency,
                requirement: "within (0, 1]",
            });
        }
        error::non_negative("cell.self_discharge_per_month", self.self_discharge_per_month)?;
        error::non_negative("cell.r_activation_j_per_mol", self.r_activation_j_per_mol)
    }
}

/// One cell's state and its as-built deviations from the nominal cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// State of charge, 0..1 (charge content relative to this cell's
    /// capacity at 25 °C).
    pub soc: f64,
    /// Voltage across the first RC pair (V); positive while charging.
    pub v_rc1_v: f64,
    /// Voltage across the second RC pair (V).
    pub v_rc2_v: f64,
    /// Hysteresis state h, −1 (discharge branch) .. +1 (charge branch).
    pub hysteresis: f64,
    /// As-built capacity at 25 °C, new (Ah).
    pub(crate) capacity_ah: f64,
    /// As-built resistance factor (all resistances), new.
    pub(crate) r_factor: f64,
    /// SOC per coulomb, with ageing: 1 / (capacity·SOH·3600).
    pub(crate) soc_per_coulomb: f64,
    /// Resistance scale with ageing: r_factor · growth.
    pub(crate) r_scale: f64,
    /// SOC-axis segment found last.
    pub(crate) hint: usize,
    /// Element values at the present state (Ω, s, V), refreshed after each step.
    pub(crate) r0_ohm: f64,
    pub(crate) r1_ohm: f64,
    pub(crate) tau1_s: f64,
    pub(crate) r2_ohm: f64,
    pub(crate) tau2_s: f64,
    pub(crate) ocv_v: f64,
    pub(crate) hyst_v: f64,
}

impl Cell {
    /// A relaxed cell at `soc` (clamped to 0..1) with its as-built capacity
    /// and resistance factor.
    pub(crate) fn new(soc: f64, capacity_ah: f64, r_factor: f64) -> Self {
        Self {
            soc: soc.clamp(0.0, 1.0),
            v_rc1_v: 0.0,
            v_rc2_v: 0.0,
            hysteresis: 0.0,
            capacity_ah,
            r_factor,
            soc_per_coulomb: 1.0 / (capacity_ah * SECONDS_PER_HOUR),
            r_scale: r_factor,
            hint: 0,
            r0_ohm: 0.0,
            r1_ohm: 0.0,
            tau1_s: 0.0,
            r2_ohm: 0.0,
            tau2_s: 0.0,
            ocv_v: 0.0,
            hyst_v: 0.0,
        }
    }

    /// As-built capacity at 25 °C when new (Ah).
    pub fn capacity_ah(&self) -> f64 {
        self.capacity_ah
    }

    /// As-built resistance factor relative to the nominal cell.
    pub fn resistance_factor(&self) -> f64 {
        self.r_factor
    }

    /// R0 at the present state (Ω).
    pub fn r0_ohm(&self) -> f64 {
        self.r0_ohm
    }

    /// R1 and R2 at the present state (Ω).
    pub fn rc_resistances_ohm(&self) -> (f64, f64) {
        (self.r1_ohm, self.r2_ohm)
    }

    /// OCV at the present state and temperature, without hysteresis (V).
    pub fn ocv_v(&self) -> f64 {
        self.ocv_v
    }

    /// The hysteresis voltage M·h (V).
    pub fn hysteresis_v(&self) -> f64 {
        self.hyst_v * self.hysteresis
    }

    /// Terminal voltage while `current_a` flows (V).
    #[inline]
    pub fn terminal_voltage_v(&self, current_a: f64) -> f64 {
        self.ocv_v + self.hyst_v * self.hysteresis + self.v_rc1_v + self.v_rc2_v + current_a * self.r0_ohm
    }

    /// Heat dissipated in the cell's resistances and hysteresis at
    /// `current_a` (W): `I²·R0 + v1²/R1 + v2²/R2 + I·M·h`.
    pub fn irreversible_heat_w(&self, current_a: f64) -> f64 {
        let rc = |v: f64, r: f64| if r > 0.0 { v * v / r } else { 0.0 };
        current_a * current_a * self.r0_ohm
            + rc(self.v_rc1_v, self.r1_ohm)
            + rc(self.v_rc2_v, self.r2_ohm)
            + current_a * self.hyst_v * self.hysteresis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_reject_unphysical() {
        assert!(CellParams::default().validate().is_ok());
        assert!(CellParams::nmc().validate().is_ok());
        assert!(CellParams::ideal_thevenin().validate().is_ok());
        let bad = CellParams { capacity_ah: 0.0, ..CellParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "cell.capacity_ah");
        let bad = CellParams { coulombic_efficiency: 1.2, ..CellParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "cell.coulombic_efficiency");
    }

    #[test]
    fn old_scenario_keys_still_parse() {
        use serde::de::value::{Error, MapDeserializer};
        let kv = vec![("capacity_ah", 120.0), ("r0_ohm", 0.4e-3), ("r1_ohm", 0.2e-3), ("tau1_s", 20.0)];
        let p = CellParams::deserialize(MapDeserializer::<_, Error>::new(kv.into_iter())).unwrap();
        assert_eq!(p.capacity_ah, 120.0);
        assert_eq!(p.r2_ohm, DEFAULT_R2_OHM);
    }
}
