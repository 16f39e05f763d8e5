//! The three SmartPro-209 versions and their datasheet figures.
//!
//! Every figure here is transcribed from `datasheet/SmartPro-209.md`; the
//! table each comes from is named beside it. Figures the datasheet gives as
//! a bound ("< 0.45 mΩ") are returned as that bound.

use core::fmt;
use core::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A SmartPro-209 version: 12-209, 24-209 or 48-209.
///
/// Deserializes from the integer `12`/`24`/`48` or from the strings
/// `"12"`, `"24"`, `"48"` (also `"12-209"` etc., the form [`fmt::Display`]
/// prints). Serializes as the integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// SmartPro 12-209, 12 V systems (4 LiFePO4 cells in series).
    V12,
    /// SmartPro 24-209, 24 V systems (8 LiFePO4 cells in series).
    V24,
    /// SmartPro 48-209, 48 V systems (16 LiFePO4 cells in series).
    V48,
}

/// Electrical data: max continuous current, all versions (A).
pub const MAX_CONTINUOUS_CURRENT_A: f64 = 250.0;
/// Electrical data: max peak current, all versions (A), for [`MAX_PEAK_DURATION_S`].
pub const MAX_PEAK_CURRENT_A: f64 = 1300.0;
/// Electrical data: duration of the max peak current (100 µs).
pub const MAX_PEAK_DURATION_S: f64 = 100e-6;
/// Current measurement accuracy: measuring range ±250 A, all versions (A).
pub const CURRENT_RANGE_A: f64 = 250.0;
/// Current measurement accuracy: resolution (A).
pub const CURRENT_RESOLUTION_A: f64 = 0.001;
/// Current measurement accuracy: total maximum error, −10..+50 °C (% FS).
pub const CURRENT_TOTAL_ERROR_PCT_FS: f64 = 0.04;
/// Current measurement accuracy: offset error, −10..+50 °C (% FS).
pub const CURRENT_OFFSET_ERROR_PCT_FS: f64 = 0.01;
/// Voltage measurement accuracy: total maximum error, all versions (% FS).
pub const VOLTAGE_TOTAL_ERROR_PCT_FS: f64 = 0.1;
/// Current measurement accuracy: temperature range the error figures hold over (°C).
pub const ACCURACY_TEMP_RANGE_C: (f64, f64) = (-10.0, 50.0);
/// Control system: control voltage LVP, OVP, all versions (V), min..max.
pub const CONTROL_VOLTAGE_RANGE_V: (f64, f64) = (4.7, 60.0);
/// Control system: power consumption, typical (W).
pub const POWER_CONSUMPTION_TYP_W: f64 = 0.1;

impl Variant {
    /// All versions, smallest first.
    pub const ALL: [Variant; 3] = [Variant::V12, Variant::V24, Variant::V48];

    /// Number of LiFePO4 cells in series for this system voltage
    /// (3.2 V nominal per cell: 12 V → 4, 24 V → 8, 48 V → 16).
    pub const fn cells_in_series(self) -> usize {
        match self {
            Variant::V12 => 4,
            Variant::V24 => 8,
            Variant::V48 => 16,
        }
    }

    /// Electrical data: nominal system voltage (V).
    pub const fn nominal_voltage_v(self) -> f64 {
        match self {
            Variant::V12 => 12.0,
            Variant::V24 => 24.0,
            Variant::V48 => 48.0,
        }
    }

    /// Electrical data: max operating voltage (V).
    pub const fn max_operating_voltage_v(self) -> f64 {
        match self {
            Variant::V12 => 15.0,
            Variant::V24 => 30.0,
            Variant::V48 => 60.0,
        }
    }

    /// Voltage measurement accuracy: measuring range of the battery voltage (V).
    pub const fn voltage_range_v(self) -> f64 {
        match self {
            Variant::V12 => 15.0,
            Variant::V24 => 30.0,
            Variant::V48 => 60.0,
        }
    }

    /// Electrical data: switch-on resistance (Ω). The datasheet gives an
    /// upper bound ("< 0.45 mΩ" …); this returns the bound. See
    /// [`Variant::switch_on_resistance_typ_ohm`] for a typical unit.
    pub const fn switch_on_resistance_ohm(self) -> f64 {
        match self {
            Variant::V12 => 0.45e-3,
            Variant::V24 => 0.55e-3,
            Variant::V48 => 0.6e-3,
        }
    }

    /// A typical unit's switch-on resistance: [`SWITCH_TYP_FRACTION`] of the
    /// datasheet bound (Ω). A modelling choice, not a datasheet figure.
    pub const fn switch_on_resistance_typ_ohm(self) -> f64 {
        self.switch_on_resistance_ohm() * SWITCH_TYP_FRACTION
    }

    /// Electrical data: max continuous current (A), all versions.
    pub const fn max_continuous_current_a(self) -> f64 {
        MAX_CONTINUOUS_CURRENT_A
    }

    /// Electrical data: max peak current (A) for 100 µs, all versions.
    pub const fn max_peak_current_a(self) -> f64 {
        MAX_PEAK_CURRENT_A
    }

    /// Electrical data: max continuous power (W).
    pub const fn max_continuous_power_w(self) -> f64 {
        match self {
            Variant::V12 => 3000.0,
            Variant::V24 => 6000.0,
            Variant::V48 => 12000.0,
        }
    }

    /// Overvoltage protection: surge arrester breakdown voltage (V).
    pub const fn arrester_breakdown_v(self) -> f64 {
        match self {
            Variant::V12 => 17.5,
            Variant::V24 => 35.0,
            Variant::V48 => 70.0,
        }
    }

    /// Overvoltage protection: total surge power Pppm, 10/1000 µs waveform (W).
    pub const fn arrester_pppm_w(self) -> f64 {
        match self {
            Variant::V12 => 20e3,
            Variant::V24 => 40e3,
            Variant::V48 => 80e3,
        }
    }

    /// Aux output: max switching voltage (V).
    pub const fn aux_max_voltage_v(self) -> f64 {
        match self {
            Variant::V12 => 15.0,
            Variant::V24 => 30.0,
            Variant::V48 => 60.0,
        }
    }

    /// Aux output: max switching current (A).
    pub const fn aux_max_current_a(self) -> f64 {
        match self {
            Variant::V12 => 10.0,
            Variant::V24 => 5.0,
            Variant::V48 => 2.5,
        }
    }

    /// The system voltage as the integer used in names and scenarios (12, 24, 48).
    pub const fn system_v(self) -> u32 {
        match self {
            Variant::V12 => 12,
            Variant::V24 => 24,
            Variant::V48 => 48,
        }
    }

    /// The variant for a system voltage of 12, 24 or 48.
    pub const fn from_system_v(v: u64) -> Option<Variant> {
        match v {
            12 => Some(Variant::V12),
            24 => Some(Variant::V24),
            48 => Some(Variant::V48),
            _ => None,
        }
    }
}

/// Fraction of the datasheet's switch-on-resistance bound taken as a typical
/// unit's value (modelling choice: a "<" bound usually carries ~20 % margin).
pub const SWITCH_TYP_FRACTION: f64 = 0.8;

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-209", self.system_v())
    }
}

/// A string that names no SmartPro-209 variant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown SmartPro variant {0:?}: expected 12, 24 or 48")]
pub struct ParseVariantError(pub String);

impl FromStr for Variant {
    type Err = ParseVariantError;

    /// Accepts `"12"`, `"24"`, `"48"` and `"12-209"`, `"24-209"`, `"48-209"`
    /// (surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_suffix("-209").unwrap_or(t);
        t.parse::<u64>().ok().and_then(Variant::from_system_v).ok_or_else(|| ParseVariantError(s.to_owned()))
    }
}

struct VariantVisitor;

impl Visitor<'_> for VariantVisitor {
    type Value = Variant;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SmartPro variant: 12, 24 or 48 (integer or string)")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Variant, E> {
        Variant::from_system_v(v).ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Variant, E> {
        u64::try_from(v)
            .ok()
            .and_then(Variant::from_system_v)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Variant, E> {
        v.parse().map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

impl<'de> Deserialize<'de> for Variant {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(VariantVisitor)
    }
}

impl Serialize for Variant {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.system_v())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IntoDeserializer;
    use serde::de::value::Error as DeError;

    fn de_i64(v: i64) -> Result<Variant, DeError> {
        Variant::deserialize(v.into_deserializer())
    }

    fn de_str(v: &str) -> Result<Variant, DeError> {
        Variant::deserialize(v.into_deserializer())
    }

    #[test]
    fn electrical_data_table() {
        // (variant, nominal V, max operating V, max continuous W, switch-on Ω)
        let rows = [
            (Variant::V12, 12.0, 15.0, 3000.0, 0.45e-3),
            (Variant::V24, 24.0, 30.0, 6000.0, 0.55e-3),
            (Variant::V48, 48.0, 60.0, 12000.0, 0.6e-3),
        ];
        for (v, nom, max, p, r) in rows {
            assert_eq!(v.nominal_voltage_v(), nom);
            assert_eq!(v.max_operating_voltage_v(), max);
            assert_eq!(v.max_continuous_power_w(), p);
            assert_eq!(v.switch_on_resistance_ohm(), r);
            assert!(v.switch_on_resistance_typ_ohm() < r);
            assert_eq!(v.max_continuous_current_a(), 250.0);
            assert_eq!(v.max_peak_current_a(), 1300.0);
            // max continuous power = nominal voltage × max continuous current
            assert_eq!(nom * v.max_continuous_current_a(), p);
        }
    }

    #[test]
    fn arrester_aux_and_range_tables() {
        // (variant, breakdown V, Pppm W, aux V, aux A, measuring range V, cells)
        let rows = [
            (Variant::V12, 17.5, 20e3, 15.0, 10.0, 15.0, 4),
            (Variant::V24, 35.0, 40e3, 30.0, 5.0, 30.0, 8),
            (Variant::V48, 70.0, 80e3, 60.0, 2.5, 60.0, 16),
        ];
        for (v, bd, pppm, aux_v, aux_a, range, cells) in rows {
            assert_eq!(v.arrester_breakdown_v(), bd);
            assert_eq!(v.arrester_pppm_w(), pppm);
            assert_eq!(v.aux_max_voltage_v(), aux_v);
            assert_eq!(v.aux_max_current_a(), aux_a);
            assert_eq!(v.voltage_range_v(), range);
            assert_eq!(v.cells_in_series(), cells);
            // the arrester must not conduct inside the operating range
            assert!(v.arrester_breakdown_v() > v.max_operating_voltage_v());
        }
    }

    #[test]
    fn parse_display_roundtrip() {
        for v in Variant::ALL {
            assert_eq!(v.to_string().parse::<Variant>(), Ok(v));
            assert_eq!(v.system_v().to_string().parse::<Variant>(), Ok(v));
        }
        assert_eq!(Variant::V24.to_string(), "24-209");
        assert!("36".parse::<Variant>().is_err());
        assert!("".parse::<Variant>().is_err());
    }

    #[test]
    fn deserialize_int_or_string() {
        assert_eq!(de_i64(12).unwrap(), Variant::V12);
        assert_eq!(de_i64(48).unwrap(), Variant::V48);
        assert_eq!(de_str("24").unwrap(), Variant::V24);
        assert_eq!(de_str("48-209").unwrap(), Variant::V48);
        assert!(de_i64(-12).is_err());
        assert!(de_i64(36).is_err());
        assert!(de_str("V12").is_err());
    }
}
