//! A cable run: the `+` and `−` conductors of one circuit, side by side.
//!
//! Both figures are of the *loop* (out and back), for a run of `length_m`:
//!
//! - resistance `R = 2·ρ(T)·ℓ/A`, with ρ(T) = ρ20·(1 + α·(T − 20 °C)) of
//!   annealed copper (IEC 60028: ρ20 = 1/58 Ω·mm²/m, α = 0.00393 /K). A
//!   stranded cable's IEC 60228 maximum is 5–13 % above this solid-copper
//!   figure; give `resistance_mohm` to use a measured or tabulated value;
//! - inductance of a two-wire line (two parallel round conductors of radius
//!   `r`, centre distance `s`, `s ≫ r`, low frequency, internal inductance
//!   included): `L = (µ0·ℓ/π)·(1/4 + ln(s/r))`, with `r = √(A/π)` (the solid
//!   conductor of the same cross-section) and, unless `spacing_mm` is given,
//!   `s = 2·r + 2·insulation_mm` (the two cables touching). For 95 mm² and
//!   2 mm insulation this is 0.50 µH per metre of run. Cables routed apart
//!   (a wide loop) have more; twisted or sheathed pairs slightly less. Give
//!   `inductance_uh` to use a measured value.

use core::f64::consts::PI;

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};

/// Resistivity of annealed copper at 20 °C (Ω·m), IEC 60028: 1/58 Ω·mm²/m.
pub const COPPER_RESISTIVITY_OHM_M: f64 = 1.0 / 58.0 * 1e-6;
/// Temperature coefficient of copper's resistance at 20 °C (1/K), IEC 60028.
pub const COPPER_ALPHA_PER_K: f64 = 0.003_93;
/// Reference temperature of [`COPPER_RESISTIVITY_OHM_M`] (°C).
pub const COPPER_REF_TEMP_C: f64 = 20.0;
/// Permeability of free space (H/m).
pub const MU0_H_PER_M: f64 = 1.256_637_062_12e-6;

/// A cable run (`+` and `−` pair). Geometry gives R and L unless they are given directly.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LineParams {
    /// Length of the run, one way (m); the loop is twice as long.
    pub length_m: f64,
    /// Copper cross-section of each conductor (mm²).
    pub cross_section_mm2: f64,
    /// Insulation thickness of each cable (mm), for the default spacing.
    pub insulation_mm: f64,
    /// Centre-to-centre distance of the two conductors (mm); default: touching cables.
    pub spacing_mm: Option<f64>,
    /// Conductor temperature (°C); default: the battery's temperature.
    pub temperature_c: Option<f64>,
    /// Bolted joints of the loop (lugs on studs, 4 per run), total (mΩ).
    pub joints_resistance_mohm: f64,
    /// Loop inductance (µH), replacing the geometric formula.
    pub inductance_uh: Option<f64>,
    /// Loop resistance (mΩ) including joints, replacing ρ·ℓ/A.
    pub resistance_mohm: Option<f64>,
}

impl Default for LineParams {
    /// 2 m of 95 mm² (a usual size for 250 A continuous), cables touching.
    fn default() -> Self {
        Self {
            length_m: 2.0,
            cross_section_mm2: 95.0,
            insulation_mm: 2.0,
            spacing_mm: None,
            temperature_c: None,
            joints_resistance_mohm: 0.04,
            inductance_uh: None,
            resistance_mohm: None,
        }
    }
}

impl LineParams {
    /// The short connection from the pack's poles to the board (0.3 m of 95 mm²).
    pub fn battery_side() -> Self {
        Self { length_m: 0.3, ..Self::default() }
    }

    /// Conductor radius of the solid equivalent, √(A/π) (m).
    pub fn radius_m(&self) -> f64 {
        (self.cross_section_mm2 * 1e-6 / PI).sqrt()
    }

    /// Centre-to-centre spacing (m).
    pub fn spacing_m(&self) -> f64 {
        self.spacing_mm.map_or(2.0 * self.radius_m() + 2.0 * self.insulation_mm * 1e-3, |s| s * 1e-3)
    }

    /// Loop inductance of the whole run (H).
    pub fn inductance_h(&self) -> f64 {
        match self.inductance_uh {
            Some(l) => l * 1e-6,
            None => MU0_H_PER_M * self.length_m / PI * (0.25 + (self.spacing_m() / self.radius_m()).ln()),
        }
    }

    /// Loop resistance of the whole run including joints (Ω) at `default_temp_c`
    /// unless the line has its own temperature.
    pub fn resistance_ohm(&self, default_temp_c: f64) -> f64 {
        if let Some(r) = self.resistance_mohm {
            return r * 1e-3;
        }
        let t = self.temperature_c.unwrap_or(default_temp_c);
        let rho = COPPER_RESISTIVITY_OHM_M * (1.0 + COPPER_ALPHA_PER_K * (t - COPPER_REF_TEMP_C));
        2.0 * rho * self.length_m / (self.cross_section_mm2 * 1e-6) + self.joints_resistance_mohm * 1e-3
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::non_negative("length_m", self.length_m)?;
        error::positive("cross_section_mm2", self.cross_section_mm2)?;
        error::non_negative("insulation_mm", self.insulation_mm)?;
        error::non_negative("joints_resistance_mohm", self.joints_resistance_mohm)?;
        if let Some(s) = self.spacing_mm {
            if !(s.is_finite() && s * 1e-3 > self.radius_m()) {
                return Err(ParamError {
                    name: "spacing_mm",
                    value: s,
                    requirement: "larger than the conductor radius",
                });
            }
        }
        if let Some(t) = self.temperature_c {
            error::finite("temperature_c", t)?;
        }
        if let Some(l) = self.inductance_uh {
            error::non_negative("inductance_uh", l)?;
        }
        if let Some(r) = self.resistance_mohm {
            error::non_negative("resistance_mohm", r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copper_resistance_per_metre() {
        // 95 mm², 1 m run, no joints: 2 × 0.017241/95 Ω = 0.363 mΩ at 20 °C.
        let l = LineParams { length_m: 1.0, joints_resistance_mohm: 0.0, ..LineParams::default() };
        let r = l.resistance_ohm(20.0);
        assert!((r - 2.0 * 0.017_241_4e-6 / 95e-6).abs() < 1e-9, "{r}");
        // +39.3 % at 120 °C
        assert!((l.resistance_ohm(120.0) / r - 1.393).abs() < 1e-9);
    }

    #[test]
    fn two_wire_inductance() {
        // 95 mm², touching with 2 mm insulation: r = 5.50 mm, s = 15.0 mm.
        let l = LineParams { length_m: 1.0, ..LineParams::default() };
        assert!((l.radius_m() - 5.499e-3).abs() < 1e-6);
        let per_m = l.inductance_h();
        let expected = 4e-7 * (0.25 + (l.spacing_m() / l.radius_m()).ln());
        assert!((per_m - expected).abs() < 1e-12);
        assert!((0.49e-6..0.51e-6).contains(&per_m), "{per_m}");
        // wider spacing, more inductance; scales with length
        let wide = LineParams { spacing_mm: Some(100.0), ..l };
        assert!(wide.inductance_h() > per_m);
        let three = LineParams { length_m: 3.0, ..l };
        assert!((three.inductance_h() - 3.0 * per_m).abs() < 1e-15);
    }

    #[test]
    fn direct_values_override_geometry() {
        let l = LineParams { inductance_uh: Some(2.5), resistance_mohm: Some(1.2), ..LineParams::default() };
        assert!((l.inductance_h() - 2.5e-6).abs() < 1e-18);
        assert!((l.resistance_ohm(80.0) - 1.2e-3).abs() < 1e-15);
        assert!(LineParams { spacing_mm: Some(1.0), ..l }.validate().is_err());
        assert!(LineParams::default().validate().is_ok());
    }
}
