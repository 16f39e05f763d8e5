//! The surge arrester: a bidirectional TVS (bank) across the switch.
//!
//! I–V: no current below the breakdown voltage `V_BR`; above it a straight
//! line of slope `1/R_d`: `|i| = (|v| − V_BR)/R_d`. Unless `R_d` is given it
//! follows from the usual datasheet triple: the clamp voltage at the rated
//! peak pulse current is `V_C = clamp_ratio·V_BR` (1.45, typical of TVS
//! "A" series: 1.4–1.6), the rated current is `I_PP = Pppm/V_C`, so
//! `R_d = (V_C − V_BR)/I_PP`: 10 / 20 / 40 mΩ for the 12 / 24 / 48 V boards
//! (each I_PP ≈ 790 A).
//!
//! Rating: Pppm is given for the 10/1000 µs pulse. The peak power a TVS
//! survives falls with the pulse's duration as
//! `P_allowed(t) = Pppm·(t/t_ref)^(−k)` with `k = 0.5`: the Wunsch–Bell
//! thermal-diffusion law (failure power ∝ t^(−1/2) for pulses too short for
//! the heat to leave the die; D. C. Wunsch, R. R. Bell, IEEE Trans. Nucl.
//! Sci. 15 (1968) 244), the straight line of slope −1/2 on the log–log
//! "peak pulse power vs pulse width" curve of TVS datasheets. Pulses are
//! compared by their rectangular equivalent `t = E/P_peak`; for the rating
//! pulse (decay to 50 % at 1000 µs, exponential) that is
//! `t_ref = 1000 µs/ln 2 = 1443 µs`. Below `min_pulse_us` (1 µs) the curve is
//! held flat (datasheet curves end there).

use core::f64::consts::LN_2;

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};
use crate::variant::Variant;

/// Default clamp ratio V_C/V_BR at the rated peak pulse current.
pub const DEFAULT_CLAMP_RATIO: f64 = 1.45;
/// Rectangular-equivalent duration of the 10/1000 µs rating pulse (µs).
pub const RATING_PULSE_US: f64 = 1000.0 / LN_2;

/// The surge arrester across the switch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArresterParams {
    /// Breakdown voltage (V); default: the variant's (17.5 / 35 / 70 V).
    pub breakdown_v: Option<f64>,
    /// Peak pulse power, 10/1000 µs (W); default: the variant's (20 / 40 / 80 kW).
    pub pppm_w: Option<f64>,
    /// Dynamic resistance above breakdown (mΩ); default from `clamp_ratio`.
    pub dynamic_resistance_mohm: Option<f64>,
    /// V_C/V_BR at the rated peak pulse current, for the default `R_d`.
    pub clamp_ratio: f64,
    /// Exponent k of the derating `P_allowed ∝ t^(−k)`.
    pub derating_exponent: f64,
    /// Rectangular-equivalent duration of the rating pulse (µs).
    pub rating_pulse_us: f64,
    /// Shortest pulse of the derating curve (µs); shorter pulses get its value.
    pub min_pulse_us: f64,
}

impl Default for ArresterParams {
    fn default() -> Self {
        Self {
            breakdown_v: None,
            pppm_w: None,
            dynamic_resistance_mohm: None,
            clamp_ratio: DEFAULT_CLAMP_RATIO,
            derating_exponent: 0.5,
            rating_pulse_us: RATING_PULSE_US,
            min_pulse_us: 1.0,
        }
    }
}

impl ArresterParams {
    /// Breakdown voltage for `variant` (V).
    pub fn breakdown_v(&self, variant: Variant) -> f64 {
        self.breakdown_v.unwrap_or(variant.arrester_breakdown_v())
    }

    /// Peak pulse power for `variant` (W).
    pub fn pppm_w(&self, variant: Variant) -> f64 {
        self.pppm_w.unwrap_or(variant.arrester_pppm_w())
    }

    /// Dynamic resistance for `variant` (Ω).
    pub fn dynamic_resistance_ohm(&self, variant: Variant) -> f64 {
        self.dynamic_resistance_mohm.map_or_else(
            || {
                let v_br = self.breakdown_v(variant);
                let v_c = self.clamp_ratio * v_br;
                (v_c - v_br) * v_c / self.pppm_w(variant)
            },
            |r| r * 1e-3,
        )
    }

    /// Peak power allowed for a pulse of rectangular-equivalent duration `pulse_s` (W).
    pub fn allowed_peak_power_w(&self, variant: Variant, pulse_s: f64) -> f64 {
        let t_us = (pulse_s * 1e6).max(self.min_pulse_us);
        self.pppm_w(variant) * (t_us / self.rating_pulse_us).powf(-self.derating_exponent)
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        if let Some(v) = self.breakdown_v {
            error::positive("arrester.breakdown_v", v)?;
        }
        if let Some(p) = self.pppm_w {
            error::positive("arrester.pppm_w", p)?;
        }
        if let Some(r) = self.dynamic_resistance_mohm {
            error::non_negative("arrester.dynamic_resistance_mohm", r)?;
        }
        if !(self.clamp_ratio.is_finite() && self.clamp_ratio >= 1.0) {
            return Err(ParamError { name: "arrester.clamp_ratio", value: self.clamp_ratio, requirement: ">= 1" });
        }
        error::non_negative("arrester.derating_exponent", self.derating_exponent)?;
        error::positive("arrester.rating_pulse_us", self.rating_pulse_us)?;
        error::positive("arrester.min_pulse_us", self.min_pulse_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_resistance_from_clamp_ratio() {
        let a = ArresterParams::default();
        for (v, r_mohm) in [(Variant::V12, 10.0), (Variant::V24, 20.0), (Variant::V48, 40.0)] {
            let r = a.dynamic_resistance_ohm(v);
            assert!((r * 1e3 - r_mohm).abs() < 0.2, "{v}: {r}");
            // at I_PP = Pppm/V_C the clamp is V_C
            let v_c = 1.45 * v.arrester_breakdown_v();
            let i_pp = v.arrester_pppm_w() / v_c;
            assert!((v.arrester_breakdown_v() + i_pp * r - v_c).abs() < 1e-9);
        }
    }

    #[test]
    fn derating_curve() {
        let a = ArresterParams::default();
        let v = Variant::V48;
        // the rating pulse gets exactly Pppm
        assert!((a.allowed_peak_power_w(v, RATING_PULSE_US * 1e-6) - 80e3).abs() < 1e-6);
        // a quarter of the duration: twice the power
        assert!((a.allowed_peak_power_w(v, RATING_PULSE_US * 0.25e-6) - 160e3).abs() < 1e-6);
        // flat below 1 µs
        assert_eq!(a.allowed_peak_power_w(v, 0.1e-6), a.allowed_peak_power_w(v, 1e-6));
    }
}
