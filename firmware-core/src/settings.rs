//! The board's variant identity and its settings (limits, delays, calibration).
//!
//! Settings are plain `Copy` data: a register write edits a copy, which is
//! validated as a whole before it replaces the live settings, so a refused
//! write changes nothing.

use core::fmt;

/// Hardware variant of the board (datasheet, "Electrical data").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    V12,
    V24,
    V48,
}

impl Variant {
    /// The variant for a nominal system voltage of 12, 24 or 48 V.
    pub const fn from_nominal_v(v: u16) -> Option<Variant> {
        match v {
            12 => Some(Variant::V12),
            24 => Some(Variant::V24),
            48 => Some(Variant::V48),
            _ => None,
        }
    }
    /// Nominal system voltage (datasheet, "Electrical data").
    pub const fn nominal_v(self) -> u16 {
        match self {
            Variant::V12 => 12,
            Variant::V24 => 24,
            Variant::V48 => 48,
        }
    }
    /// LiFePO4 cells in series the board's defaults are made for.
    pub const fn cells_in_series(self) -> u16 {
        match self {
            Variant::V12 => 4,
            Variant::V24 => 8,
            Variant::V48 => 16,
        }
    }
    /// Max operating voltage (datasheet, "Electrical data"), in mV.
    pub const fn max_operating_mv(self) -> u16 {
        match self {
            Variant::V12 => 15_000,
            Variant::V24 => 30_000,
            Variant::V48 => 60_000,
        }
    }
    /// Battery-voltage measuring range (datasheet, "Voltage measurement accuracy"), in mV.
    pub const fn voltage_range_mv(self) -> u16 {
        self.max_operating_mv()
    }
}

/// Hardware design constants of the measurement chain. The default
/// calibration is derived from these; per-unit deviations are calibrated out.
pub mod design {
    /// ADC codes for +V_ref (24-bit bipolar, two's complement).
    pub const ADC_FULL_SCALE_CODES: i32 = 1 << 23;
    /// Current per code: V_ref / 2²³ / (gain 50 × 100 µΩ) = 59.604645 µA.
    pub const CURRENT_GAIN_PA_PER_CODE: u32 = 59_604_645;
    /// Battery voltage per code for the 12/24/48 V dividers (range → 2.0 V at a 2.5 V reference).
    pub const VOLTAGE_GAIN_PV_PER_CODE: [u32; 3] = [2_235_174, 4_470_348, 8_940_697];
    /// NTC: 10 kΩ at 25 °C, β = 3435 K, 10 kΩ pull-up from the reference (ratiometric).
    pub const NTC_R25_OHM: f32 = 10_000.0;
    pub const NTC_BETA_K: f32 = 3435.0;
    pub const NTC_PULLUP_OHM: f32 = 10_000.0;
}

/// Conversion constants of the measurement chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Current-channel code at zero current.
    pub current_offset_code: i32,
    /// Current per code, in pA.
    pub current_gain_pa_per_code: u32,
    /// Battery voltage per code, in pV.
    pub voltage_gain_pv_per_code: u32,
    /// Added to the NTC temperature, in 0.1 °C.
    pub temperature_offset_dc: i16,
}

impl Calibration {
    /// The design values for a variant (an uncalibrated board).
    pub const fn nominal(variant: Variant) -> Self {
        let v = match variant {
            Variant::V12 => 0,
            Variant::V24 => 1,
            Variant::V48 => 2,
        };
        Calibration {
            current_offset_code: 0,
            current_gain_pa_per_code: design::CURRENT_GAIN_PA_PER_CODE,
            voltage_gain_pv_per_code: design::VOLTAGE_GAIN_PV_PER_CODE[v],
            temperature_offset_dc: 0,
        }
    }
}

/// Everything a user can set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Rated capacity in 0.1 Ah.
    pub capacity_dah: u16,
    pub lvp_mv: u16,
    pub lvp_release_mv: u16,
    pub lvp_delay_ms: u16,
    pub ovp_mv: u16,
    pub ovp_release_mv: u16,
    pub ovp_delay_ms: u16,
    pub calibration: Calibration,
}

/// Default LVP per LiFePO4 cell: 2.80 V (a common LFP discharge cut-off).
pub const LVP_CELL_MV: u16 = 2_800;
/// Default LVP release per cell: 3.25 V, on the charge plateau, so a relaxing
/// empty battery does not re-enable its load by itself.
pub const LVP_RELEASE_CELL_MV: u16 = 3_250;
/// Default OVP per cell: 3.65 V (LFP charge voltage limit).
pub const OVP_CELL_MV: u16 = 3_650;
/// Default OVP release per cell: 3.35 V.
pub const OVP_RELEASE_CELL_MV: u16 = 3_350;
/// Default LVP/OVP delay.
pub const PROTECTION_DELAY_MS: u16 = 2_000;
/// Default capacity: 100 Ah.
pub const CAPACITY_DAH: u16 = 1_000;

impl Settings {
    /// Factory defaults for a variant.
    pub const fn defaults(variant: Variant) -> Self {
        let n = variant.cells_in_series();
        Settings {
            capacity_dah: CAPACITY_DAH,
            lvp_mv: LVP_CELL_MV * n,
            lvp_release_mv: LVP_RELEASE_CELL_MV * n,
            lvp_delay_ms: PROTECTION_DELAY_MS,
            ovp_mv: OVP_CELL_MV * n,
            ovp_release_mv: OVP_RELEASE_CELL_MV * n,
            ovp_delay_ms: PROTECTION_DELAY_MS,
            calibration: Calibration::nominal(variant),
        }
    }

    /// Cross-field checks a single register's range cannot express.
    pub fn validate(&self, variant: Variant) -> Result<(), SettingsError> {
        if self.lvp_release_mv <= self.lvp_mv {
            return Err(SettingsError::LvpReleaseNotAboveThreshold);
        }
        if self.ovp_release_mv >= self.ovp_mv {
            return Err(SettingsError::OvpReleaseNotBelowThreshold);
        }
        if self.lvp_release_mv >= self.ovp_release_mv {
            return Err(SettingsError::LvpAboveOvp);
        }
        if self.ovp_mv > variant.max_operating_mv() {
            return Err(SettingsError::AboveMaxOperatingVoltage);
        }
        Ok(())
    }
}

/// Why a set of settings is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsError {
    LvpReleaseNotAboveThreshold,
    OvpReleaseNotBelowThreshold,
    LvpAboveOvp,
    AboveMaxOperatingVoltage,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SettingsError::LvpReleaseNotAboveThreshold => "LVP release voltage must be above the LVP threshold",
            SettingsError::OvpReleaseNotBelowThreshold => "OVP release voltage must be below the OVP threshold",
            SettingsError::LvpAboveOvp => "LVP release voltage must be below the OVP release voltage",
            SettingsError::AboveMaxOperatingVoltage => "OVP threshold is above the variant's max operating voltage",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_for_every_variant() {
        for v in [Variant::V12, Variant::V24, Variant::V48] {
            Settings::defaults(v).validate(v).unwrap();
        }
    }

    #[test]
    fn nominal_gains_match_the_design_chain() {
        // 2.5 V / 2^23 / (50 × 100 µΩ) in pA
        let current = 2.5 / 8_388_608.0 / (50.0 * 100e-6) * 1e12;
        assert!((current - f64::from(design::CURRENT_GAIN_PA_PER_CODE)).abs() < 0.5);
        for (i, range_v) in [15.0, 30.0, 60.0].iter().enumerate() {
            let pv = 2.5 / 8_388_608.0 * (range_v / 2.0) * 1e12;
            assert!((pv - f64::from(design::VOLTAGE_GAIN_PV_PER_CODE[i])).abs() < 0.5, "{range_v}");
        }
    }
}
