//! The main switch (a bank of back-to-back MOSFETs) and the hardware
//! short-circuit comparator that turns it off. The switch's parameters are
//! the engine's, [`SwitchParams`] (`crate::switch`): this model takes its
//! on-resistance, turn-off time, V_DS rating and series resistance from them.
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

pub use crate::switch::{SwitchParams, default_v_ds_rating_v};

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
    use crate::variant::Variant;

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
