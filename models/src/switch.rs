//! The main switch: two back-to-back banks of parallel MOSFETs.
//!
//! ```text
//!  battery ─┤ discharge bank (n ∥) ├─┤ charge bank (n ∥) ├─ load/charger
//!              body diodes →            ← body diodes
//! ```
//!
//! A bank that is on conducts both ways through its channels, `R = Rds/n`
//! per bank (each FET's Rds drawn within its spread, rising with junction
//! temperature by `rds_tempco_per_k`). A bank that is off still passes
//! current in its body diodes' forward direction: `v = Vf + I·Rd/n`. So
//! with only the charge bank on, a charge current flows (through the
//! discharge bank's diodes) and a discharge current is blocked — the
//! charge-only state a BMS uses after LVP.
//!
//! One parameter set, [`SwitchParams`], for both models of the switch:
//! this one (the engine's, at the ADC rate) and the µs one of transient
//! events ([`crate::transient`]: the channel conductance falling over
//! `turn_off_us`), which takes its on-resistance from the same
//! [`SwitchParams::on_resistance_ohm`].
//!
//! The total on-resistance at 25 °C defaults to a typical unit of the
//! variant, [`Variant::switch_on_resistance_typ_ohm`]:
//! [`SWITCH_TYP_FRACTION`](crate::variant::SWITCH_TYP_FRACTION) of the datasheet bound (Electrical data, "Switch-on resistance
//! < 0.45 / 0.55 / 0.6 mΩ"), 0.36 / 0.44 / 0.48 mΩ.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::chain::draw_within;
use crate::error::{self, ParamError};
use crate::variant::Variant;

/// MOSFETs in parallel per bank: 8 (250 A continuous is ≈ 31 A per FET).
pub const DEFAULT_MOSFETS_PER_BANK: usize = 8;
/// Rds(on) temperature coefficient: +0.5 %/K (trench MOSFETs roughly
/// 1.5× Rds(on) from 25 to 125 °C).
pub const DEFAULT_RDS_TEMPCO_PER_K: f64 = 0.005;
/// Per-FET Rds(on) spread limit, ±10 % (one datasheet lot).
pub const DEFAULT_RDS_SPREAD_REL: f64 = 0.10;
/// Body-diode forward voltage at low current (V).
pub const DEFAULT_DIODE_VF_V: f64 = 0.7;
/// Body-diode slope resistance per FET (Ω).
pub const DEFAULT_DIODE_R_OHM: f64 = 2e-3;
/// Gate-driver turn-off time (µs): the Miller plateau and the fall of the
/// gate below threshold, lumped.
pub const DEFAULT_TURN_OFF_US: f64 = 1.0;

/// Parameters of the main switch, for the engine's model ([`Switch`]) and
/// the µs model of transient events alike (`[switch]` in a scenario and in
/// a what-if study).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SwitchTable")]
pub struct SwitchParams {
    /// MOSFETs in parallel in each of the two banks.
    pub mosfets_per_bank: usize,
    /// Total on-resistance of both banks at 25 °C (mΩ); absent: a typical
    /// unit of the variant ([`SwitchParams::on_resistance_ohm`]).
    pub on_resistance_mohm: Option<f64>,
    /// Rds(on) temperature coefficient (1/K).
    pub rds_tempco_per_k: f64,
    /// Per-FET Rds(on) spread limit (relative, ±).
    pub rds_spread_rel: f64,
    /// Body-diode forward voltage (V).
    pub diode_vf_v: f64,
    /// Body-diode slope resistance per FET (Ω).
    pub diode_r_ohm: f64,
    /// Gate-driver turn-off (µs model): time for the channel conductance to
    /// fall from on to 0.
    pub turn_off_us: f64,
    /// Drain–source voltage rating (V), the limit of the µs model's
    /// switch-voltage check; absent: [`default_v_ds_rating_v`].
    pub v_ds_rating_v: Option<f64>,
    /// Shunt and board copper in series with the switch in the µs model's
    /// loop (mΩ); the shunt is `chain::nominal::SHUNT_R_OHM`.
    pub series_resistance_mohm: f64,
}

impl Default for SwitchParams {
    fn default() -> Self {
        Self {
            mosfets_per_bank: DEFAULT_MOSFETS_PER_BANK,
            on_resistance_mohm: None,
            rds_tempco_per_k: DEFAULT_RDS_TEMPCO_PER_K,
            rds_spread_rel: DEFAULT_RDS_SPREAD_REL,
            diode_vf_v: DEFAULT_DIODE_VF_V,
            diode_r_ohm: DEFAULT_DIODE_R_OHM,
            turn_off_us: DEFAULT_TURN_OFF_US,
            v_ds_rating_v: None,
            series_resistance_mohm: crate::chain::nominal::SHUNT_R_OHM * 1e3,
        }
    }
}

impl SwitchParams {
    /// Total on-resistance of both banks at 25 °C for `variant` (Ω):
    /// `on_resistance_mohm`, or a typical unit,
    /// [`Variant::switch_on_resistance_typ_ohm`]. The engine's switch draws
    /// its FETs around it; the µs model uses it as it is.
    pub fn on_resistance_ohm(&self, variant: Variant) -> f64 {
        self.on_resistance_mohm.map_or_else(|| variant.switch_on_resistance_typ_ohm(), |r| r * 1e-3)
    }

    /// V_DS rating for `variant` (V).
    pub fn v_ds_rating_v(&self, variant: Variant) -> f64 {
        self.v_ds_rating_v.unwrap_or(default_v_ds_rating_v(variant))
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        if self.mosfets_per_bank == 0 {
            return Err(ParamError { name: "switch.mosfets_per_bank", value: 0.0, requirement: ">= 1" });
        }
        if let Some(r) = self.on_resistance_mohm {
            error::positive("switch.on_resistance_mohm", r)?;
        }
        error::finite("switch.rds_tempco_per_k", self.rds_tempco_per_k)?;
        error::non_negative("switch.rds_spread_rel", self.rds_spread_rel)?;
        error::non_negative("switch.diode_vf_v", self.diode_vf_v)?;
        error::non_negative("switch.diode_r_ohm", self.diode_r_ohm)?;
        error::non_negative("switch.turn_off_us", self.turn_off_us)?;
        if let Some(v) = self.v_ds_rating_v {
            error::positive("switch.v_ds_rating_v", v)?;
        }
        error::non_negative("switch.series_resistance_mohm", self.series_resistance_mohm)
    }
}

/// The switch's drain–source voltage rating per variant (V): the smallest
/// standard MOSFET voltage class above the arrester's clamp voltage at the
/// 1300 A peak rating with the default arrester (30.5 / 61 / 122 V; see
/// [`crate::transient::ArresterParams`]). A design choice, not a datasheet figure.
pub const fn default_v_ds_rating_v(variant: Variant) -> f64 {
    match variant {
        Variant::V12 => 40.0,
        Variant::V24 => 80.0,
        Variant::V48 => 150.0,
    }
}

/// `[switch]` as written: [`SwitchParams`]' keys, and the engine model's
/// former on-resistance key, which is refused with what to write instead.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SwitchTable {
    mosfets_per_bank: usize,
    on_resistance_mohm: Option<f64>,
    rds_tempco_per_k: f64,
    rds_spread_rel: f64,
    diode_vf_v: f64,
    diode_r_ohm: f64,
    turn_off_us: f64,
    v_ds_rating_v: Option<f64>,
    series_resistance_mohm: f64,
    r_on_total_25c_ohm: Option<f64>,
}

impl Default for SwitchTable {
    fn default() -> Self {
        let d = SwitchParams::default();
        Self {
            mosfets_per_bank: d.mosfets_per_bank,
            on_resistance_mohm: d.on_resistance_mohm,
            rds_tempco_per_k: d.rds_tempco_per_k,
            rds_spread_rel: d.rds_spread_rel,
            diode_vf_v: d.diode_vf_v,
            diode_r_ohm: d.diode_r_ohm,
            turn_off_us: d.turn_off_us,
            v_ds_rating_v: d.v_ds_rating_v,
            series_resistance_mohm: d.series_resistance_mohm,
            r_on_total_25c_ohm: None,
        }
    }
}

impl TryFrom<SwitchTable> for SwitchParams {
    type Error = String;

    fn try_from(t: SwitchTable) -> Result<Self, String> {
        if let Some(r) = t.r_on_total_25c_ohm {
            let instead = if r > 0.0 {
                format!("write on_resistance_mohm = {}", r * 1e3)
            } else {
                "remove it: absent, on_resistance_mohm is the variant's typical value".to_owned()
            };
            return Err(format!(
                "r_on_total_25c_ohm (Ω) is now on_resistance_mohm (mΩ, one key for the engine's and the µs model): {instead}"
            ));
        }
        Ok(SwitchParams {
            mosfets_per_bank: t.mosfets_per_bank,
            on_resistance_mohm: t.on_resistance_mohm,
            rds_tempco_per_k: t.rds_tempco_per_k,
            rds_spread_rel: t.rds_spread_rel,
            diode_vf_v: t.diode_vf_v,
            diode_r_ohm: t.diode_r_ohm,
            turn_off_us: t.turn_off_us,
            v_ds_rating_v: t.v_ds_rating_v,
            series_resistance_mohm: t.series_resistance_mohm,
        })
    }
}

/// Which banks are on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SwitchState {
    /// Both banks on: current flows both ways.
    #[default]
    On,
    /// Both off: no current.
    Off,
    /// Charge bank on, discharge bank off: charging through its body diodes.
    ChargeOnly,
    /// Discharge bank on, charge bank off: discharging through its body diodes.
    DischargeOnly,
}

impl SwitchState {
    /// The state for the board's outputs: main switch, and whether the
    /// load (LVP) and charger (OVP) may run.
    pub fn from_outputs(switch_on: bool, discharge_allowed: bool, charge_allowed: bool) -> Self {
        match (switch_on, discharge_allowed, charge_allowed) {
            (false, _, _) | (true, false, false) => SwitchState::Off,
            (true, true, true) => SwitchState::On,
            (true, false, true) => SwitchState::ChargeOnly,
            (true, true, false) => SwitchState::DischargeOnly,
        }
    }

    /// Whether a current of this sign can flow (+ = charge).
    pub fn conducts(self, current_a: f64) -> bool {
        match self {
            SwitchState::On => true,
            SwitchState::Off => current_a == 0.0,
            SwitchState::ChargeOnly => current_a >= 0.0,
            SwitchState::DischargeOnly => current_a <= 0.0,
        }
    }
}

/// One built switch.
#[derive(Clone, Debug, PartialEq)]
pub struct Switch {
    /// Per-bank channel resistance at 25 °C (Ω): [discharge bank, charge bank].
    bank_r_25c_ohm: [f64; 2],
    tempco_per_k: f64,
    diode_vf_v: f64,
    /// Per-bank diode slope resistance (Ω).
    diode_r_ohm: f64,
}

impl Switch {
    /// Builds a unit for `variant`, drawing each FET's Rds(on) within the spread.
    pub fn new<R: Rng + ?Sized>(params: &SwitchParams, variant: Variant, rng: &mut R) -> Self {
        let total = params.on_resistance_ohm(variant);
        let n = params.mosfets_per_bank.max(1);
        // Each bank is half the total; each FET n × the bank's.
        let rds_nominal = total / 2.0 * n as f64;
        let mut bank = [0.0; 2];
        for b in &mut bank {
            let g: f64 = (0..n).map(|_| 1.0 / (rds_nominal * (1.0 + draw_within(rng, params.rds_spread_rel)))).sum();
            *b = 1.0 / g;
        }
        Self {
            bank_r_25c_ohm: bank,
            tempco_per_k: params.rds_tempco_per_k,
            diode_vf_v: params.diode_vf_v,
            diode_r_ohm: params.diode_r_ohm / n as f64,
        }
    }

    /// Total on-resistance with both banks on at `temp_c` (Ω).
    pub fn r_on_ohm(&self, temp_c: f64) -> f64 {
        (self.bank_r_25c_ohm[0] + self.bank_r_25c_ohm[1]) * (1.0 + self.tempco_per_k * (temp_c - 25.0))
    }

    /// The switch as a linearised element for `state` and the current's
    /// direction: (series voltage opposing the current (V), resistance (Ω)).
    /// `None` if that direction is blocked.
    pub fn element(&self, state: SwitchState, current_a: f64, temp_c: f64) -> Option<(f64, f64)> {
        if !state.conducts(current_a) {
            return None;
        }
        let k = 1.0 + self.tempco_per_k * (temp_c - 25.0);
        let [rd, rc] = self.bank_r_25c_ohm;
        Some(match state {
            SwitchState::On | SwitchState::Off => (0.0, (rd + rc) * k),
            SwitchState::ChargeOnly => (self.diode_vf_v, rc * k + self.diode_r_ohm),
            SwitchState::DischargeOnly => (self.diode_vf_v, rd * k + self.diode_r_ohm),
        })
    }

    /// Voltage across the switch (battery side minus load side, V) with
    /// `current_a` flowing (+ = charge, i.e. into the battery: the load
    /// side is then higher). 0 if blocked.
    pub fn voltage_drop_v(&self, state: SwitchState, current_a: f64, temp_c: f64) -> f64 {
        match self.element(state, current_a, temp_c) {
            Some((vf, r)) => -(current_a.signum() * vf + current_a * r),
            None => 0.0,
        }
    }

    /// Conduction loss (W) into the MOSFET/board thermal node.
    pub fn power_w(&self, state: SwitchState, current_a: f64, temp_c: f64) -> f64 {
        match self.element(state, current_a, temp_c) {
            Some((vf, r)) => current_a.abs() * vf + current_a * current_a * r,
            None => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedStreams;

    #[test]
    fn on_resistance_meets_the_datasheet_for_every_unit() {
        for v in Variant::ALL {
            for seed in 0..200 {
                let s = Switch::new(&SwitchParams::default(), v, &mut SeedStreams::new(seed).stream("switch"));
                let r = s.r_on_ohm(25.0);
                assert!(r < v.switch_on_resistance_ohm(), "{v}: {r}");
                assert!((r / v.switch_on_resistance_typ_ohm() - 1.0).abs() < 0.05, "{v}: {r}");
                // positive tempco: hotter is worse
                assert!(s.r_on_ohm(85.0) > 1.25 * r);
            }
        }
    }

    #[test]
    fn issue_14_one_parameter_set_for_the_engine_and_the_us_model() {
        // One table carries both models' keys.
        let p: SwitchParams =
            toml::from_str("mosfets_per_bank = 6\non_resistance_mohm = 0.4\nrds_spread_rel = 0.0\nturn_off_us = 2.0\n")
                .unwrap();
        assert_eq!((p.mosfets_per_bank, p.turn_off_us), (6, 2.0));
        assert_eq!(p.on_resistance_ohm(Variant::V48), 0.4e-3);
        let unit = Switch::new(&p, Variant::V48, &mut SeedStreams::new(1).stream("switch"));
        assert!((unit.r_on_ohm(25.0) - 0.4e-3).abs() < 1e-15);
        // Defaults: a typical unit, 80 % of the datasheet's bound, for both models.
        let d = SwitchParams::default();
        for (v, bound_mohm) in [(Variant::V12, 0.45), (Variant::V24, 0.55), (Variant::V48, 0.6)] {
            assert_eq!(d.on_resistance_ohm(v), v.switch_on_resistance_typ_ohm());
            assert!((d.on_resistance_ohm(v) - 0.8 * bound_mohm * 1e-3).abs() < 1e-18);
        }
        assert_eq!(toml::from_str::<SwitchParams>("").unwrap(), d);
        // The engine model's former key is refused with what to write instead.
        let e = toml::from_str::<SwitchParams>("r_on_total_25c_ohm = 0.0004\n").unwrap_err().to_string();
        assert!(e.contains("on_resistance_mohm = 0.4"), "{e}");
        let e = toml::from_str::<SwitchParams>("r_on_total_25c_ohm = 0.0\n").unwrap_err().to_string();
        assert!(e.contains("remove it"), "{e}");
        let e = toml::from_str::<SwitchParams>("on_resistance = 0.3\n").unwrap_err().to_string();
        assert!(e.contains("unknown field `on_resistance`"), "{e}");
        assert_eq!(SwitchParams { turn_off_us: -1.0, ..d }.validate().unwrap_err().name, "switch.turn_off_us");
    }

    #[test]
    fn loss_and_drop_follow_the_state() {
        let p = SwitchParams { rds_spread_rel: 0.0, ..SwitchParams::default() };
        let s = Switch::new(&p, Variant::V12, &mut SeedStreams::new(1).stream("switch"));
        let r = Variant::V12.switch_on_resistance_typ_ohm();
        assert!((s.power_w(SwitchState::On, -250.0, 25.0) - 250.0 * 250.0 * r).abs() < 1e-9);
        assert!((s.voltage_drop_v(SwitchState::On, -100.0, 25.0) - 100.0 * r).abs() < 1e-12);
        assert_eq!(s.power_w(SwitchState::Off, -100.0, 25.0), 0.0);
        assert!(s.element(SwitchState::ChargeOnly, -10.0, 25.0).is_none());
        let (vf, rr) = s.element(SwitchState::ChargeOnly, 10.0, 25.0).unwrap();
        assert_eq!(vf, DEFAULT_DIODE_VF_V);
        assert!((rr - (r / 2.0 + DEFAULT_DIODE_R_OHM / 8.0)).abs() < 1e-12);
        // the diode dominates the loss in charge-only
        assert!(s.power_w(SwitchState::ChargeOnly, 10.0, 25.0) > 7.0);
        assert_eq!(SwitchState::from_outputs(true, false, true), SwitchState::ChargeOnly);
        assert_eq!(SwitchState::from_outputs(false, true, true), SwitchState::Off);
        assert!(SwitchParams::default().validate().is_ok());
    }
}
