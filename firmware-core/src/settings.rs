//! The board's variant identity and its settings (limits, delays, functions,
//! calibration).
//!
//! Settings are plain `Copy` data in raw register units. Every field is one
//! register of [`crate::map::REGISTERS`]: [`Settings::get`] and
//! [`Settings::set`] are the only mapping between the two, so the register
//! dispatch, the EEPROM record ([`crate::nvm`]) and the range checks all
//! derive from the map table. A register write edits a copy, which is
//! validated as a whole before it replaces the live settings, so a refused
//! write changes nothing.

use core::fmt;

use crate::map::RegId;

/// Hardware variant of the board (datasheet, "Electrical data").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    V12,
    V24,
    V48,
}

impl Variant {
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
    /// The aux output's max switching voltage (datasheet, "Additional (aux) output"), in mV.
    pub const fn aux_max_switching_mv(self) -> u16 {
        match self {
            Variant::V12 => 15_000,
            Variant::V24 => 30_000,
            Variant::V48 => 60_000,
        }
    }
    const fn index(self) -> usize {
        match self {
            Variant::V12 => 0,
            Variant::V24 => 1,
            Variant::V48 => 2,
        }
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
    /// Board self-consumption (datasheet, "Control system": 0.1 W typ.), in mW.
    pub const SELF_CONSUMPTION_MW: u32 = 100;
}

/// How the `soc_centipct` register is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocMethod {
    /// Coulomb counting against the rated capacity.
    Ah = 0,
    /// Energy counting against the rated energy.
    Wh = 1,
    /// Coulomb counting against the capacity usable at the battery's temperature.
    TemperatureCompensated = 2,
}

impl SocMethod {
    pub const fn from_raw(raw: u16) -> SocMethod {
        match raw {
            1 => SocMethod::Wh,
            2 => SocMethod::TemperatureCompensated,
            _ => SocMethod::Ah,
        }
    }
}

/// The programmable function of the aux output (datasheet: "heating control,
/// SOC display, error message, others").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuxMode {
    Off = 0,
    On = 1,
    /// Thermostat: on below `aux_on_dc`, off above `aux_off_dc`.
    Heating = 2,
    /// On while SOC ≥ `aux_soc_centipct`.
    SocAbove = 3,
    /// On while SOC < `aux_soc_centipct`.
    SocBelow = 4,
    /// On while any fault is active.
    Fault = 5,
}

impl AuxMode {
    pub const fn from_raw(raw: u16) -> AuxMode {
        match raw {
            1 => AuxMode::On,
            2 => AuxMode::Heating,
            3 => AuxMode::SocAbove,
            4 => AuxMode::SocBelow,
            5 => AuxMode::Fault,
            _ => AuxMode::Off,
        }
    }
}

/// Kinds of calibration stamped in `last_cal_kind`.
pub mod cal_kind {
    pub const NONE: u16 = 0;
    pub const CURRENT_ZERO: u16 = 1;
    pub const CURRENT_GAIN: u16 = 2;
    pub const VOLTAGE: u16 = 3;
}

/// Conversion constants of the measurement chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Current-channel code at zero current.
    pub current_offset_code: i32,
    /// Current per code at 25 °C, in pA.
    pub current_gain_pa_per_code: u32,
    /// Temperature coefficient of the current gain, ppm/K (relative to 25 °C).
    pub current_gain_tc_ppm_per_k: i16,
    /// Battery voltage per code, in pV.
    pub voltage_gain_pv_per_code: u32,
    /// Added to the NTC temperature, in 0.1 °C.
    pub temperature_offset_dc: i16,
}

impl Calibration {
    /// The design values for a variant (an uncalibrated board).
    pub const fn nominal(variant: Variant) -> Self {
        Calibration {
            current_offset_code: 0,
            current_gain_pa_per_code: design::CURRENT_GAIN_PA_PER_CODE,
            current_gain_tc_ppm_per_k: 0,
            voltage_gain_pv_per_code: design::VOLTAGE_GAIN_PV_PER_CODE[variant.index()],
            temperature_offset_dc: 0,
        }
    }
}

/// Everything a user can set, in raw register units (see `docs/register-map.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Rated capacity in 0.1 Ah.
    pub capacity_dah: u16,
    /// [`SocMethod`] as its raw value.
    pub soc_method: u16,
    /// Charge efficiency applied to counted charge, 0.01 %.
    pub charge_efficiency_centipct: u16,
    /// 1: the board's own 0.1 W is counted as discharge (it is drawn upstream of the shunt).
    pub self_consumption_counted: u16,
    /// Full-charge detection: voltage above this …
    pub full_mv: u16,
    /// … and charge current below this (0.1 A) …
    pub full_tail_da: u16,
    /// … for this long → SOC synchronised to the full sync point.
    pub full_delay_s: u16,
    pub lvp_mv: u16,
    pub lvp_release_mv: u16,
    pub lvp_delay_ms: u16,
    pub ovp_mv: u16,
    pub ovp_release_mv: u16,
    pub ovp_delay_ms: u16,
    /// Over-current charge threshold, 0.1 A.
    pub occ_da: u16,
    pub occ_delay_ms: u16,
    /// Over-current discharge threshold, 0.1 A.
    pub ocd_da: u16,
    pub ocd_delay_ms: u16,
    /// Over-current trips release by themselves after this long (0: only by a clear command).
    pub oc_retry_s: u16,
    /// Temperature limits, 0.1 °C: over/under temperature for charge and discharge.
    pub otc_dc: i16,
    pub utc_dc: i16,
    pub otd_dc: i16,
    pub utd_dc: i16,
    /// Temperature trips release this far inside the limit, 0.1 °C.
    pub temp_hysteresis_dc: u16,
    pub temp_delay_ms: u16,
    /// Hardware short-circuit latch: 0 manual reset (clear command), 1 automatic retry.
    pub sc_auto_retry: u16,
    pub sc_retry_s: u16,
    /// Automatic retries before the latch needs a clear command.
    pub sc_max_retries: u16,
    /// [`AuxMode`] as its raw value.
    pub aux_mode: u16,
    /// Heating: on at or below, 0.1 °C.
    pub aux_on_dc: i16,
    /// Heating: off at or above, 0.1 °C.
    pub aux_off_dc: i16,
    /// SOC display threshold, 0.01 %.
    pub aux_soc_centipct: u16,
    pub calibration: Calibration,
    /// Board clock (`clock_s`) when the last calibration was made.
    pub last_cal_time_s: u32,
    /// What the last calibration was ([`cal_kind`]).
    pub last_cal_kind: u16,
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
/// Default full-charge voltage per cell: 3.45 V (above the LFP plateau, below OVP).
pub const FULL_CELL_MV: u16 = 3_450;
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
            soc_method: SocMethod::Ah as u16,
            charge_efficiency_centipct: 10_000,
            self_consumption_counted: 1,
            full_mv: FULL_CELL_MV * n,
            full_tail_da: 50,
            full_delay_s: 30,
            lvp_mv: LVP_CELL_MV * n,
            lvp_release_mv: LVP_RELEASE_CELL_MV * n,
            lvp_delay_ms: PROTECTION_DELAY_MS,
            ovp_mv: OVP_CELL_MV * n,
            ovp_release_mv: OVP_RELEASE_CELL_MV * n,
            ovp_delay_ms: PROTECTION_DELAY_MS,
            occ_da: 1_500,
            occ_delay_ms: 2_000,
            ocd_da: 2_600,
            ocd_delay_ms: 1_000,
            oc_retry_s: 30,
            otc_dc: 450,
            utc_dc: 0,
            otd_dc: 600,
            utd_dc: -200,
            temp_hysteresis_dc: 50,
            temp_delay_ms: 5_000,
            sc_auto_retry: 0,
            sc_retry_s: 10,
            sc_max_retries: 3,
            aux_mode: AuxMode::Off as u16,
            aux_on_dc: 50,
            aux_off_dc: 100,
            aux_soc_centipct: 2_000,
            calibration: Calibration::nominal(variant),
            last_cal_time_s: 0,
            last_cal_kind: cal_kind::NONE,
        }
    }

    pub fn soc_method(&self) -> SocMethod {
        SocMethod::from_raw(self.soc_method)
    }

    pub fn aux_mode(&self) -> AuxMode {
        AuxMode::from_raw(self.aux_mode)
    }

    /// The raw register value of a settings field; `None` if `id` is not a setting.
    pub fn get(&self, id: RegId) -> Option<i64> {
        let c = &self.calibration;
        Some(match id {
            RegId::Capacity => self.capacity_dah.into(),
            RegId::SocMethod => self.soc_method.into(),
            RegId::ChargeEfficiency => self.charge_efficiency_centipct.into(),
            RegId::SelfConsumptionCounted => self.self_consumption_counted.into(),
            RegId::FullVoltage => self.full_mv.into(),
            RegId::FullTailCurrent => self.full_tail_da.into(),
            RegId::FullDelay => self.full_delay_s.into(),
            RegId::LvpThreshold => self.lvp_mv.into(),
            RegId::LvpRelease => self.lvp_release_mv.into(),
            RegId::LvpDelay => self.lvp_delay_ms.into(),
            RegId::OvpThreshold => self.ovp_mv.into(),
            RegId::OvpRelease => self.ovp_release_mv.into(),
            RegId::OvpDelay => self.ovp_delay_ms.into(),
            RegId::OccThreshold => self.occ_da.into(),
            RegId::OccDelay => self.occ_delay_ms.into(),
            RegId::OcdThreshold => self.ocd_da.into(),
            RegId::OcdDelay => self.ocd_delay_ms.into(),
            RegId::OcRetry => self.oc_retry_s.into(),
            RegId::OtcThreshold => self.otc_dc.into(),
            RegId::UtcThreshold => self.utc_dc.into(),
            RegId::OtdThreshold => self.otd_dc.into(),
            RegId::UtdThreshold => self.utd_dc.into(),
            RegId::TempHysteresis => self.temp_hysteresis_dc.into(),
            RegId::TempDelay => self.temp_delay_ms.into(),
            RegId::ScAutoRetry => self.sc_auto_retry.into(),
            RegId::ScRetry => self.sc_retry_s.into(),
            RegId::ScMaxRetries => self.sc_max_retries.into(),
            RegId::AuxMode => self.aux_mode.into(),
            RegId::AuxOn => self.aux_on_dc.into(),
            RegId::AuxOff => self.aux_off_dc.into(),
            RegId::AuxSoc => self.aux_soc_centipct.into(),
            RegId::CurrentOffset => c.current_offset_code.into(),
            RegId::CurrentGain => c.current_gain_pa_per_code.into(),
            RegId::CurrentGainTc => c.current_gain_tc_ppm_per_k.into(),
            RegId::VoltageGain => c.voltage_gain_pv_per_code.into(),
            RegId::TemperatureOffset => c.temperature_offset_dc.into(),
            RegId::LastCalTime => self.last_cal_time_s.into(),
            RegId::LastCalKind => self.last_cal_kind.into(),
            _ => return None,
        })
    }

    /// Sets a settings field from its raw register value. Returns false (and
    /// changes nothing) if `id` is not a setting or `raw` does not fit the
    /// field's type; the map's range is the caller's check.
    pub fn set(&mut self, id: RegId, raw: i64) -> bool {
        fn put<T: TryFrom<i64>>(field: &mut T, raw: i64) -> bool {
            match T::try_from(raw) {
                Ok(v) => {
                    *field = v;
                    true
                }
                Err(_) => false,
            }
        }
        let c = &mut self.calibration;
        match id {
            RegId::Capacity => put(&mut self.capacity_dah, raw),
            RegId::SocMethod => put(&mut self.soc_method, raw),
            RegId::ChargeEfficiency => put(&mut self.charge_efficiency_centipct, raw),
            RegId::SelfConsumptionCounted => put(&mut self.self_consumption_counted, raw),
            RegId::FullVoltage => put(&mut self.full_mv, raw),
            RegId::FullTailCurrent => put(&mut self.full_tail_da, raw),
            RegId::FullDelay => put(&mut self.full_delay_s, raw),
            RegId::LvpThreshold => put(&mut self.lvp_mv, raw),
            RegId::LvpRelease => put(&mut self.lvp_release_mv, raw),
            RegId::LvpDelay => put(&mut self.lvp_delay_ms, raw),
            RegId::OvpThreshold => put(&mut self.ovp_mv, raw),
            RegId::OvpRelease => put(&mut self.ovp_release_mv, raw),
            RegId::OvpDelay => put(&mut self.ovp_delay_ms, raw),
            RegId::OccThreshold => put(&mut self.occ_da, raw),
            RegId::OccDelay => put(&mut self.occ_delay_ms, raw),
            RegId::OcdThreshold => put(&mut self.ocd_da, raw),
            RegId::OcdDelay => put(&mut self.ocd_delay_ms, raw),
            RegId::OcRetry => put(&mut self.oc_retry_s, raw),
            RegId::OtcThreshold => put(&mut self.otc_dc, raw),
            RegId::UtcThreshold => put(&mut self.utc_dc, raw),
            RegId::OtdThreshold => put(&mut self.otd_dc, raw),
            RegId::UtdThreshold => put(&mut self.utd_dc, raw),
            RegId::TempHysteresis => put(&mut self.temp_hysteresis_dc, raw),
            RegId::TempDelay => put(&mut self.temp_delay_ms, raw),
            RegId::ScAutoRetry => put(&mut self.sc_auto_retry, raw),
            RegId::ScRetry => put(&mut self.sc_retry_s, raw),
            RegId::ScMaxRetries => put(&mut self.sc_max_retries, raw),
            RegId::AuxMode => put(&mut self.aux_mode, raw),
            RegId::AuxOn => put(&mut self.aux_on_dc, raw),
            RegId::AuxOff => put(&mut self.aux_off_dc, raw),
            RegId::AuxSoc => put(&mut self.aux_soc_centipct, raw),
            RegId::CurrentOffset => put(&mut c.current_offset_code, raw),
            RegId::CurrentGain => put(&mut c.current_gain_pa_per_code, raw),
            RegId::CurrentGainTc => put(&mut c.current_gain_tc_ppm_per_k, raw),
            RegId::VoltageGain => put(&mut c.voltage_gain_pv_per_code, raw),
            RegId::TemperatureOffset => put(&mut c.temperature_offset_dc, raw),
            RegId::LastCalTime => put(&mut self.last_cal_time_s, raw),
            RegId::LastCalKind => put(&mut self.last_cal_kind, raw),
            _ => false,
        }
    }

    /// Every field within its register's range, and the cross-field checks.
    pub fn check(&self, variant: Variant) -> Result<(), SettingsError> {
        for def in crate::map::settings() {
            match self.get(def.id) {
                Some(raw) if (def.min..=def.max).contains(&raw) => {}
                _ => return Err(SettingsError::OutOfRange(def.id)),
            }
        }
        self.validate(variant)
    }

    /// Cross-field checks a single register's range cannot express.
    pub fn validate(&self, variant: Variant) -> Result<(), SettingsError> {
        use SettingsError as E;
        let checks = [
            (self.lvp_release_mv > self.lvp_mv, E::LvpReleaseNotAboveThreshold),
            (self.ovp_release_mv < self.ovp_mv, E::OvpReleaseNotBelowThreshold),
            (self.lvp_release_mv < self.ovp_release_mv, E::LvpAboveOvp),
            (self.ovp_mv <= variant.max_operating_mv(), E::AboveMaxOperatingVoltage),
            (self.full_mv > self.lvp_release_mv && self.full_mv < self.ovp_mv, E::FullVoltageOutsideWindow),
            (self.utc_dc < self.otc_dc && self.utd_dc < self.otd_dc, E::TemperatureWindowEmpty),
            (self.aux_on_dc < self.aux_off_dc, E::AuxHeatingHysteresis),
        ];
        for (ok, err) in checks {
            if !ok {
                return Err(err);
            }
        }
        Ok(())
    }
}

/// Why a set of settings is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsError {
    OutOfRange(RegId),
    LvpReleaseNotAboveThreshold,
    OvpReleaseNotBelowThreshold,
    LvpAboveOvp,
    AboveMaxOperatingVoltage,
    FullVoltageOutsideWindow,
    TemperatureWindowEmpty,
    AuxHeatingHysteresis,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |id| crate::map::by_id(id).map_or("?", |d| d.name);
        match self {
            SettingsError::OutOfRange(id) => write!(f, "{} is outside its range", name(*id)),
            SettingsError::LvpReleaseNotAboveThreshold => {
                f.write_str("LVP release voltage must be above the LVP threshold")
            }
            SettingsError::OvpReleaseNotBelowThreshold => {
                f.write_str("OVP release voltage must be below the OVP threshold")
            }
            SettingsError::LvpAboveOvp => f.write_str("LVP release voltage must be below the OVP release voltage"),
            SettingsError::AboveMaxOperatingVoltage => {
                f.write_str("OVP threshold is above the variant's max operating voltage")
            }
            SettingsError::FullVoltageOutsideWindow => {
                f.write_str("full-charge voltage must lie between the LVP release and the OVP threshold")
            }
            SettingsError::TemperatureWindowEmpty => {
                f.write_str("under-temperature limits must be below the over-temperature limits")
            }
            SettingsError::AuxHeatingHysteresis => f.write_str("aux heating: on-temperature must be below off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_for_every_variant() {
        for v in [Variant::V12, Variant::V24, Variant::V48] {
            Settings::defaults(v).check(v).unwrap();
        }
    }

    #[test]
    fn every_setting_register_maps_to_a_field_and_back() {
        let d = Settings::defaults(Variant::V24);
        for def in crate::map::settings() {
            let raw = d.get(def.id).unwrap_or_else(|| panic!("{} has no field", def.name));
            let mut s = d;
            assert!(s.set(def.id, raw), "{}", def.name);
            assert_eq!(s, d);
            // The field holds the whole register range.
            for bound in [def.min, def.max] {
                assert!(s.set(def.id, bound), "{} = {bound}", def.name);
                assert_eq!(s.get(def.id), Some(bound));
            }
        }
        let mut s = d;
        assert!(!s.set(RegId::Current, 1), "a measurement is not a setting");
        assert!(!s.set(RegId::Capacity, 70_000), "does not fit u16");
        assert_eq!(s, d);
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

    #[test]
    fn cross_checks_name_the_problem() {
        let v = Variant::V12;
        let mut s = Settings::defaults(v);
        s.aux_on_dc = s.aux_off_dc;
        assert_eq!(s.validate(v), Err(SettingsError::AuxHeatingHysteresis));
        let mut s = Settings::defaults(v);
        s.capacity_dah = 1;
        assert_eq!(s.check(v), Err(SettingsError::OutOfRange(RegId::Capacity)));
    }
}
