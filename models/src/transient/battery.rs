//! The battery during a µs event: a voltage source behind its ohmic
//! resistance and the inductance of its cells and busbars.
//!
//! Over the ≤ 10 ms of an event the pack's charge changes by well under
//! 0.1 % and its polarisation (τ of tens of seconds) not at all, so the
//! source is held at its rest voltage `OCV + v_rc` and only the ohmic R0
//! answers at once. Standalone studies derive both from SOC and
//! temperature ([`BatteryParams::state`]); the engine passes the pack's own
//! ([`BatteryState`]).
//!
//! R0 follows an Arrhenius law, `R0(T) = R0(25 °C)·exp(B·(1/T − 1/T25))`,
//! with `B = Ea/R = 2000 K` (Ea ≈ 17 kJ/mol, typical of the electrolyte's
//! ionic conduction that dominates a LiFePO4 cell's high-frequency
//! resistance): ×1.12 at 20 °C, ×1.85 at 0 °C, ×3.6 at −20 °C.

use serde::{Deserialize, Serialize};

use crate::cell::DEFAULT_R0_OHM;
use crate::error::{self, ParamError};
use crate::ocv::Chemistry;
use crate::variant::Variant;

/// Reference temperature of the cell's R0 (°C).
pub const R0_REF_TEMP_C: f64 = 25.0;
/// Default Arrhenius constant of R0, Ea/R (K); see the module docs.
pub const DEFAULT_R0_ARRHENIUS_K: f64 = 2000.0;
/// Default inductance per cell of the pack (nH): the cell's own (≈ 5–10 nH
/// for a prismatic cell) and its share of busbars and the pack's loop.
pub const DEFAULT_INDUCTANCE_PER_CELL_NH: f64 = 20.0;
/// 0 °C in kelvin.
const ZERO_C_K: f64 = 273.15;

/// The battery's electrical state at the start of an event: what the
/// engine hands to [`super::Circuit::new`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatteryState {
    /// Source voltage behind R0: OCV plus polarisation (V).
    pub rest_voltage_v: f64,
    /// Ohmic resistance of the pack at its temperature (Ω).
    pub r_internal_ohm: f64,
    /// Pack temperature (°C); the cables default to it.
    pub temperature_c: f64,
    /// Current flowing at the start (A), `> 0` charges the battery.
    pub current_a: f64,
}

/// The pack, as a standalone what-if study describes it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatteryParams {
    /// State of charge, 0..=1; sets the OCV from the chemistry's table.
    pub soc: f64,
    /// Pack temperature (°C); sets R0 (Arrhenius) and the cables' copper resistance.
    pub temperature_c: f64,
    /// Load current before the event (A), `> 0` charges, `< 0` discharges.
    pub current_a: f64,
    /// Cells in series; 0 takes the variant's count (4/8/16).
    pub cells_in_series: usize,
    /// Cell chemistry (OCV table).
    pub chemistry: Chemistry,
    /// Ohmic resistance of one cell at 25 °C (Ω).
    pub cell_r0_ohm: f64,
    /// Arrhenius constant Ea/R of R0 (K); 0 makes R0 independent of temperature.
    pub r0_arrhenius_k: f64,
    /// Inductance per cell: cell, busbars, pack loop (nH).
    pub inductance_per_cell_nh: f64,
    /// Rest voltage of the pack (V), replacing `soc` and the table.
    pub ocv_v: Option<f64>,
    /// Ohmic resistance of the pack (mΩ), replacing cell R0 and temperature.
    pub resistance_mohm: Option<f64>,
}

impl Default for BatteryParams {
    /// A fully charged pack of 100 Ah LiFePO4 cells (`crate::cell` defaults)
    /// at 25 °C, at rest: the worst case for both the short-circuit current
    /// and the arrester (highest source voltage).
    fn default() -> Self {
        Self {
            soc: 1.0,
            temperature_c: R0_REF_TEMP_C,
            current_a: 0.0,
            cells_in_series: 0,
            chemistry: Chemistry::Lfp,
            cell_r0_ohm: DEFAULT_R0_OHM,
            r0_arrhenius_k: DEFAULT_R0_ARRHENIUS_K,
            inductance_per_cell_nh: DEFAULT_INDUCTANCE_PER_CELL_NH,
            ocv_v: None,
            resistance_mohm: None,
        }
    }
}

impl BatteryParams {
    /// Cells in series for `variant`.
    pub fn cells_for(&self, variant: Variant) -> usize {
        if self.cells_in_series == 0 { variant.cells_in_series() } else { self.cells_in_series }
    }

    /// Arrhenius factor of R0 at `temp_c` relative to 25 °C.
    pub fn r0_factor(&self, temp_c: f64) -> f64 {
        let t = temp_c + ZERO_C_K;
        let t_ref = R0_REF_TEMP_C + ZERO_C_K;
        (self.r0_arrhenius_k * (1.0 / t - 1.0 / t_ref)).exp()
    }

    /// The battery's state at the start of the event.
    pub fn state(&self, variant: Variant) -> BatteryState {
        let n = self.cells_for(variant) as f64;
        BatteryState {
            rest_voltage_v: self.ocv_v.unwrap_or_else(|| n * self.chemistry.table().ocv_v(self.soc)),
            r_internal_ohm: self
                .resistance_mohm
                .map_or_else(|| n * self.cell_r0_ohm * self.r0_factor(self.temperature_c), |r| r * 1e-3),
            temperature_c: self.temperature_c,
            current_a: self.current_a,
        }
    }

    /// Inductance of the pack (H).
    pub fn inductance_h(&self, variant: Variant) -> f64 {
        self.cells_for(variant) as f64 * self.inductance_per_cell_nh * 1e-9
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !(0.0..=1.0).contains(&self.soc) {
            return Err(ParamError { name: "battery.soc", value: self.soc, requirement: "within 0..=1" });
        }
        if !(-40.0..=85.0).contains(&self.temperature_c) {
            return Err(ParamError {
                name: "battery.temperature_c",
                value: self.temperature_c,
                requirement: "within -40..=85 °C",
            });
        }
        error::finite("battery.current_a", self.current_a)?;
        error::non_negative("battery.cell_r0_ohm", self.cell_r0_ohm)?;
        error::non_negative("battery.r0_arrhenius_k", self.r0_arrhenius_k)?;
        error::non_negative("battery.inductance_per_cell_nh", self.inductance_per_cell_nh)?;
        if let Some(v) = self.ocv_v {
            error::positive("battery.ocv_v", v)?;
        }
        if let Some(r) = self.resistance_mohm {
            error::non_negative("battery.resistance_mohm", r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_soc_and_temperature() {
        let p = BatteryParams { soc: 0.5, temperature_c: 25.0, ..BatteryParams::default() };
        let s = p.state(Variant::V48);
        assert!((s.rest_voltage_v - 16.0 * 3.295).abs() < 1e-9);
        assert!((s.r_internal_ohm - 16.0 * 0.5e-3).abs() < 1e-12);
        let cold = BatteryParams { temperature_c: 0.0, ..p }.state(Variant::V48);
        assert!((cold.r_internal_ohm / s.r_internal_ohm - 1.85).abs() < 0.01);
        let warm = BatteryParams { temperature_c: 20.0, ..p }.state(Variant::V48);
        assert!((warm.r_internal_ohm / s.r_internal_ohm - 1.121).abs() < 0.002);
    }

    #[test]
    fn direct_values_override() {
        let p = BatteryParams { ocv_v: Some(52.0), resistance_mohm: Some(7.0), ..BatteryParams::default() };
        let s = p.state(Variant::V12);
        assert_eq!(s.rest_voltage_v, 52.0);
        assert_eq!(s.r_internal_ohm, 7e-3);
        assert!(BatteryParams { soc: 1.2, ..p }.validate().is_err());
        assert!(p.validate().is_ok());
    }
}
