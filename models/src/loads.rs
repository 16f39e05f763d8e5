//! Loads, chargers and the board's own consumption, as pure functions of
//! the circuit they see.
//!
//! The battery side is a Thevenin source ([`Thevenin`]: the pack's rest
//! voltage behind its R0, plus whatever sits in series — switch, shunt,
//! cables). Each model solves its own operating point in closed form:
//!
//! | model | law | current (+ = charge) |
//! |---|---|---|
//! | constant current | I = −I_set | −I_set |
//! | resistive | V = −I·R_L | −E/(R_L + R_s) |
//! | constant power | −V·I = P | the smaller root of R_s·I² + E·I + P = 0 (above the collapse point: I = −E/(2R_s)) |
//! | CC-CV charger | I ≤ I_max, V ≤ V_cv, V·I ≤ P_max | min(I_max, (V_cv − E)/R_s, power limit), ≥ 0 |
//!
//! A load runs only while the switch is on and the LVP control output
//! allows discharge; a charger only while the switch is on and the OVP
//! output allows charge ([`Gate`]).

use serde::{Deserialize, Serialize};

use crate::variant;

/// The battery as the load sees it: `V = emf_v + I·r_ohm` (+ = charge).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thevenin {
    /// Open-circuit voltage at the load's terminals (V).
    pub emf_v: f64,
    /// Series resistance (Ω): pack R0 + switch + shunt + cables.
    pub r_ohm: f64,
}

impl Thevenin {
    /// Terminal voltage with `current_a` flowing (V).
    pub fn voltage_v(&self, current_a: f64) -> f64 {
        self.emf_v + current_a * self.r_ohm
    }
}

/// The board's outputs that gate loads and chargers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Main switch closed.
    pub switch_on: bool,
    /// LVP control output: loads may draw.
    pub lvp_output: bool,
    /// OVP control output: chargers may charge.
    pub ovp_output: bool,
}

impl Gate {
    /// Everything allowed.
    pub const OPEN: Gate = Gate { switch_on: true, lvp_output: true, ovp_output: true };

    /// A load may draw.
    pub fn discharge_allowed(&self) -> bool {
        self.switch_on && self.lvp_output
    }

    /// A charger may charge.
    pub fn charge_allowed(&self) -> bool {
        self.switch_on && self.ovp_output
    }
}

/// A load on the battery.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Load {
    /// Draws a fixed current (A, magnitude).
    ConstantCurrent {
        /// Current drawn (A, ≥ 0).
        current_a: f64,
    },
    /// Draws a fixed power (W) while the voltage is above `min_voltage_v`
    /// (an inverter's undervoltage cut-out).
    ConstantPower {
        /// Power drawn (W, ≥ 0).
        power_w: f64,
        /// Below this the load switches itself off (V).
        #[serde(default)]
        min_voltage_v: f64,
    },
    /// A resistor (Ω).
    Resistive {
        /// Resistance (Ω, > 0).
        resistance_ohm: f64,
    },
}

impl Load {
    /// The current it draws from `source` (≤ 0), 0 when `gate` forbids.
    pub fn current_a(&self, source: &Thevenin, gate: Gate) -> f64 {
        if !gate.discharge_allowed() {
            return 0.0;
        }
        let (e, r) = (source.emf_v, source.r_ohm);
        match *self {
            Load::ConstantCurrent { current_a } => -current_a.max(0.0),
            Load::Resistive { resistance_ohm } => {
                if resistance_ohm > 0.0 && e > 0.0 {
                    -e / (resistance_ohm + r)
                } else {
                    0.0
                }
            }
            Load::ConstantPower { power_w, min_voltage_v } => {
                if power_w <= 0.0 || e <= 0.0 {
                    return 0.0;
                }
                let i = if r > 0.0 {
                    let disc = e * e - 4.0 * r * power_w;
                    if disc >= 0.0 {
                        // −I = (E − √disc)/(2R): the stable (high-voltage) root,
                        // written to avoid cancellation.
                        -2.0 * power_w / (e + disc.sqrt())
                    } else {
                        -e / (2.0 * r)
                    }
                } else {
                    -power_w / e
                };
                if source.voltage_v(i) < min_voltage_v { 0.0 } else { i }
            }
        }
    }
}

/// Parameters of a CC-CV charger.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargerParams {
    /// Constant-current limit (A).
    pub current_limit_a: f64,
    /// Constant-voltage setpoint at its terminals (V).
    pub voltage_limit_v: f64,
    /// Output power limit (W); 0: none.
    #[serde(default)]
    pub power_limit_w: f64,
    /// In CV, stop when the current falls below this (A); 0: never stop.
    #[serde(default)]
    pub termination_current_a: f64,
}

impl ChargerParams {
    /// A LiFePO4 charger for `variant`: 3.55 V per cell, `current_a`,
    /// terminating at C/50 of a 100 Ah pack (2 A).
    pub fn lfp(variant: variant::Variant, current_a: f64) -> Self {
        Self {
            current_limit_a: current_a,
            voltage_limit_v: 3.55 * variant.cells_in_series() as f64,
            power_limit_w: 0.0,
            termination_current_a: 2.0,
        }
    }
}

/// A CC-CV charger: its only state is whether it has terminated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Charger {
    /// The charger's settings.
    pub params: ChargerParams,
    done: bool,
}

impl Charger {
    /// A charger ready to charge.
    pub fn new(params: ChargerParams) -> Self {
        Self { params, done: false }
    }

    /// The charge current into `source` (≥ 0), 0 when `gate` forbids or
    /// after termination.
    pub fn current_a(&mut self, source: &Thevenin, gate: Gate) -> f64 {
        if self.done || !gate.charge_allowed() {
            return 0.0;
        }
        let p = &self.params;
        let mut i = p.current_limit_a.max(0.0);
        let mut cv = false;
        if source.r_ohm > 0.0 {
            let i_cv = (p.voltage_limit_v - source.emf_v) / source.r_ohm;
            if i_cv < i {
                i = i_cv;
                cv = true;
            }
        } else if source.emf_v >= p.voltage_limit_v {
            i = 0.0;
            cv = true;
        }
        if p.power_limit_w > 0.0 {
            // V·I ≤ P with V = E + I·R
            let (e, r) = (source.emf_v, source.r_ohm);
            let i_p = if r > 0.0 {
                (-e + (e * e + 4.0 * r * p.power_limit_w).sqrt()) / (2.0 * r)
            } else {
                p.power_limit_w / e
            };
            i = i.min(i_p);
        }
        let i = i.max(0.0);
        if cv && i < p.termination_current_a {
            self.done = true;
            return 0.0;
        }
        i
    }

    /// `true` once the CV phase fell below the termination current.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// The board's own consumption (datasheet, control system: 0.1 W typ).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelfConsumption {
    /// Power drawn from the pack (W).
    pub power_w: f64,
}

impl Default for SelfConsumption {
    fn default() -> Self {
        Self { power_w: variant::POWER_CONSUMPTION_TYP_W }
    }
}

impl SelfConsumption {
    /// Current drawn from the pack at `pack_voltage_v` (≤ 0, A). The board
    /// draws it upstream of its shunt, so it is in the pack current but not
    /// in the measured one; its power heats the board.
    pub fn current_a(&self, pack_voltage_v: f64) -> f64 {
        if pack_voltage_v > 1.0 { -self.power_w / pack_voltage_v } else { 0.0 }
    }
}

/// A resistive heater on the aux output (e.g. a cell-heating mat).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuxHeater {
    /// Heater resistance (Ω).
    pub resistance_ohm: f64,
}

impl AuxHeater {
    /// A heater rated `power_w` at `voltage_v` (a resistance: at another
    /// battery voltage `V` it draws `V²/R`, see [`Self::power_w`]).
    pub fn for_power(power_w: f64, voltage_v: f64) -> Self {
        Self { resistance_ohm: voltage_v * voltage_v / power_w }
    }

    /// Current (≤ 0, A) at `voltage_v` when `on`, limited to the variant's
    /// aux switching current (the output's own limit).
    pub fn current_a(&self, voltage_v: f64, on: bool, variant: variant::Variant) -> f64 {
        if !on || self.resistance_ohm <= 0.0 {
            return 0.0;
        }
        -(voltage_v / self.resistance_ohm).clamp(0.0, variant.aux_max_current_a())
    }

    /// Heat into the cells (W) at `voltage_v` when `on`: `I²·R`, which is
    /// `V²/R` until the output limits the current.
    pub fn power_w(&self, voltage_v: f64, on: bool, variant: variant::Variant) -> f64 {
        let i = self.current_a(voltage_v, on, variant);
        i * i * self.resistance_ohm
    }

    /// Loss in the aux driver (W) at `voltage_v` when `on`: what the
    /// battery delivers beyond the heater's [`Self::power_w`] (the voltage the
    /// output drops while it limits the current); 0 below the limit.
    pub fn driver_loss_w(&self, voltage_v: f64, on: bool, variant: variant::Variant) -> f64 {
        let i = -self.current_a(voltage_v, on, variant);
        (i * voltage_v - i * i * self.resistance_ohm).max(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variant::Variant;

    const SRC: Thevenin = Thevenin { emf_v: 13.2, r_ohm: 0.004 };

    #[test]
    fn loads_solve_their_operating_point() {
        let g = Gate::OPEN;
        assert_eq!(Load::ConstantCurrent { current_a: 40.0 }.current_a(&SRC, g), -40.0);
        let i = Load::Resistive { resistance_ohm: 0.1 }.current_a(&SRC, g);
        assert!((SRC.voltage_v(i) - (-i * 0.1)).abs() < 1e-12);
        let i = Load::ConstantPower { power_w: 1200.0, min_voltage_v: 10.0 }.current_a(&SRC, g);
        assert!((SRC.voltage_v(i) * -i - 1200.0).abs() < 1e-9, "{i}");
        // beyond the maximum power point: collapse to it
        let i = Load::ConstantPower { power_w: 1e6, min_voltage_v: 0.0 }.current_a(&SRC, g);
        assert!((i + 13.2 / 0.008).abs() < 1e-9);
        // undervoltage cut-out
        let i = Load::ConstantPower { power_w: 1e6, min_voltage_v: 10.0 }.current_a(&SRC, g);
        assert_eq!(i, 0.0);
        let off = Gate { lvp_output: false, ..Gate::OPEN };
        assert_eq!(Load::ConstantCurrent { current_a: 40.0 }.current_a(&SRC, off), 0.0);
    }

    #[test]
    fn charger_cc_then_cv_then_terminates() {
        let mut c = Charger::new(ChargerParams::lfp(Variant::V12, 50.0));
        assert_eq!(c.current_a(&Thevenin { emf_v: 13.0, r_ohm: 0.004 }, Gate::OPEN), 50.0);
        let i = c.current_a(&Thevenin { emf_v: 14.1, r_ohm: 0.004 }, Gate::OPEN);
        assert!((i - (14.2 - 14.1) / 0.004).abs() < 1e-9);
        assert!((Thevenin { emf_v: 14.1, r_ohm: 0.004 }.voltage_v(i) - 14.2).abs() < 1e-12);
        assert_eq!(c.current_a(&Thevenin { emf_v: 14.195, r_ohm: 0.004 }, Gate::OPEN), 0.0);
        assert!(c.is_done());
        let mut p = Charger::new(ChargerParams { power_limit_w: 500.0, ..ChargerParams::lfp(Variant::V12, 50.0) });
        let th = Thevenin { emf_v: 13.0, r_ohm: 0.004 };
        let i = p.current_a(&th, Gate::OPEN);
        assert!((th.voltage_v(i) * i - 500.0).abs() < 1e-9);
        let mut q = Charger::new(ChargerParams::lfp(Variant::V12, 50.0));
        assert_eq!(q.current_a(&th, Gate { ovp_output: false, ..Gate::OPEN }), 0.0);
    }

    #[test]
    fn self_consumption_and_heater() {
        let s = SelfConsumption::default();
        assert!((s.current_a(12.5) + 0.008).abs() < 1e-12);
        let h = AuxHeater::for_power(100.0, 13.0);
        assert!((h.power_w(13.0, true, Variant::V12) - 100.0).abs() < 1e-9);
        assert_eq!(h.driver_loss_w(13.0, true, Variant::V12), 0.0);
        // the 48 V variant's aux output limits the current to 2.5 A
        let big = AuxHeater { resistance_ohm: 1.0 };
        assert_eq!(big.current_a(52.0, true, Variant::V48), -2.5);
        assert_eq!(big.current_a(52.0, false, Variant::V48), 0.0);
    }

    /// Issue 16 item 4: the heater is a resistance rated at the nominal voltage; at the battery's
    /// voltage it draws V²/R, and while the output limits the current it gets I²·R, the driver the rest.
    #[test]
    fn issue_16_aux_heater_draws_v2_over_r_at_the_battery_voltage() {
        let (rated_w, nominal_v) = (100.0, Variant::V12.nominal_voltage_v());
        let h = AuxHeater::for_power(rated_w, nominal_v);
        // (below the 12-209's 10 A aux limit: 14.4 V)
        for v in [10.0, 12.0, 13.3, 14.2] {
            let closed_w = rated_w * (v / nominal_v) * (v / nominal_v);
            assert!((h.power_w(v, true, Variant::V12) - closed_w).abs() < 1e-9 * closed_w, "{v} V");
            let closed_a = -v * rated_w / (nominal_v * nominal_v);
            assert!((h.current_a(v, true, Variant::V12) - closed_a).abs() < 1e-12, "{v} V");
        }
        // 2.5 A limit at 48 V: the heater gets I²·R, the driver V·I − I²·R.
        let big = AuxHeater { resistance_ohm: 10.0 };
        assert!((big.power_w(52.0, true, Variant::V48) - 2.5 * 2.5 * 10.0).abs() < 1e-12);
        assert!((big.driver_loss_w(52.0, true, Variant::V48) - (2.5 * 52.0 - 62.5)).abs() < 1e-12);
    }
}
