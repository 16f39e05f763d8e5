//! The main switch (a bank of back-to-back MOSFETs) and the hardware
//! short-circuit comparator that turns it off.
//!
//! The switch is a channel conductance `G(t)`: `1/R_on` while on; when the
//! gate driver turns it off, `G` falls linearly to 0 over `turn_off_us`
//! (the Miller plateau and the fall of the gate below threshold, lumped).
//! Back-to-back MOSFETs block both ways, so no body diode conducts when
//! off. The comparator watches `|i|` through the shunt; once it exceeds
//! `threshold_a`, after `filter_us + propagation_us` the driver starts the
//! turn-off, and the comparator latches (the firmware reads and clears the
//! latch; in an event it never releases).

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};
use crate::variant::Variant;

/// The switch's drain–source voltage rating per variant (V): the smallest
/// standard MOSFET voltage class above the arrester's clamp voltage at the
/// 1300 A peak rating with the default arrester (30.5 / 61 / 122 V; see
/// [`super::ArresterParams`]). A design choice, not a datasheet figure.
pub const fn default_v_ds_rating_v(variant: Variant) -> f64 {
    match variant {
        Variant::V12 => 40.0,
        Variant::V24 => 80.0,
        Variant::V48 => 150.0,
    }
}

/// The main switch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchParams {
    /// On-resistance (mΩ); default: a typical unit of the variant (80 % of the
    /// datasheet bound < 0.45 / 0.55 / 0.6 mΩ — lower R, higher fault current).
    pub on_resistance_mohm: Option<f64>,
    /// Gate-driver turn-off: time for the channel conductance to fall from on to 0 (µs).
    pub turn_off_us: f64,
    /// Drain–source voltage rating (V), the limit of the switch-voltage check;
    /// default per variant: [`default_v_ds_rating_v`].
    pub v_ds_rating_v: Option<f64>,
    /// Shunt and board copper in series with the switch (mΩ); the shunt is
    /// `chain::nominal::SHUNT_R_OHM`.
    pub series_resistance_mohm: f64,
}

impl Default for SwitchParams {
    fn default() -> Self {
        Self {
            on_resistance_mohm: None,
            turn_off_us: 1.0,
            v_ds_rating_v: None,
            series_resistance_mohm: crate::chain::nominal::SHUNT_R_OHM * 1e3,
        }
    }
}

impl SwitchParams {
    /// On-resistance for `variant` (Ω).
    pub fn on_resistance_ohm(&self, variant: Variant) -> f64 {
        self.on_resistance_mohm.map_or_else(|| variant.switch_on_resistance_typ_ohm(), |r| r * 1e-3)
    }

    /// V_DS rating for `variant` (V).
    pub fn v_ds_rating_v(&self, variant: Variant) -> f64 {
        self.v_ds_rating_v.unwrap_or(default_v_ds_rating_v(variant))
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        if let Some(r) = self.on_resistance_mohm {
            error::positive("switch.on_resistance_mohm", r)?;
        }
        error::non_negative("switch.turn_off_us", self.turn_off_us)?;
        if let Some(v) = self.v_ds_rating_v {
            error::positive("switch.v_ds_rating_v", v)?;
        }
        error::non_negative("switch.series_resistance_mohm", self.series_resistance_mohm)
    }
}

/// The hardware short-circuit comparator.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComparatorParams {
    /// Trip threshold on |current| (A).
    pub threshold_a: f64,
    /// Input filter delay (µs): a pure delay from the crossing.
    pub filter_us: f64,
    /// Comparator and logic propagation to the gate driver (µs).
    pub propagation_us: f64,
    /// `false` models a board without the hardware shutdown.
    pub enabled: bool,
}

impl Default for ComparatorParams {
    /// 1000 A (4× the 250 A continuous rating, with room below the 1300 A
    /// peak for the current's rise during the ≈ 2 µs until the switch is off).
    fn default() -> Self {
        Self { threshold_a: 1000.0, filter_us: 0.5, propagation_us: 0.5, enabled: true }
    }
}

impl ComparatorParams {
    /// From the threshold crossing to the start of the gate turn-off (s).
    pub fn delay_s(&self) -> f64 {
        (self.filter_us + self.propagation_us) * 1e-6
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("comparator.threshold_a", self.threshold_a)?;
        error::non_negative("comparator.filter_us", self.filter_us)?;
        error::non_negative("comparator.propagation_us", self.propagation_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_defaults() {
        let s = SwitchParams::default();
        for v in Variant::ALL {
            assert!(s.on_resistance_ohm(v) < v.switch_on_resistance_ohm());
            // the rating lies above the arrester's breakdown
            assert!(s.v_ds_rating_v(v) > v.arrester_breakdown_v());
        }
        assert_eq!(SwitchParams { on_resistance_mohm: Some(0.3), ..s }.on_resistance_ohm(Variant::V48), 0.3e-3);
        assert!((ComparatorParams::default().delay_s() - 1e-6).abs() < 1e-18);
    }
}
