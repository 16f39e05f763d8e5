//! The PowerPro: the pack's main switch, its fuse and the secondary
//! protection that opens the switch when the SmartPro fails to act.
//!
//! # Main switch
//!
//! A contactor of the TE/Kilovac EV200 class (the datasheet class of
//! 12–48 V battery main contactors): contact resistance `r_on_ohm`
//! (0.2 mΩ typical), operate time `operate_s` (15 ms max), release time
//! `release_s` (12 ms max) and a coil that draws `coil_w` (1.7 W held,
//! economised) from the pack while closed. A command to open takes effect
//! after the release time, to close after the operate time. A MOSFET bank
//! is the same model with its on-resistance and µs times.
//!
//! # Secondary protection
//!
//! Independent of the SmartPro: the pack voltage above `ov_v` for
//! `ov_delay_s`, below `uv_v` for `uv_delay_s`, or |current| above `oc_a`
//! for `oc_delay_s` trips it; a trip latches (only a new run clears it)
//! and opens the main switch. The fuse ([`super::fuse`]) is in series.

use serde::{Deserialize, Serialize};

use super::fuse::{Fuse, FuseParams, FuseState};
use super::lipro::Debounce;
use crate::error::{self, ParamError};

/// EV200-class contact resistance (Ω).
pub const CONTACTOR_R_ON_OHM: f64 = 0.2e-3;
/// EV200-class operate time, max (s).
pub const CONTACTOR_OPERATE_S: f64 = 0.015;
/// EV200-class release time, max (s).
pub const CONTACTOR_RELEASE_S: f64 = 0.012;
/// EV200-class economised coil power (W).
pub const CONTACTOR_COIL_W: f64 = 1.7;
/// Arcing time of the contacts parting under current (s): plausible for a contactor of this
/// class with magnetic blow-out at 12–48 V DC (a few ms; no published figure was at hand).
/// Used by the µs circuit ([`crate::transient`]): the current falls linearly to zero over it.
pub const CONTACTOR_BREAK_ARCING_S: f64 = 2e-3;

/// PowerPro configuration (`[powerpro]`); the pack-level thresholds are per cell × cells.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PowerProParams {
    pub r_on_ohm: f64,
    pub operate_s: f64,
    pub release_s: f64,
    pub coil_w: f64,
    /// Secondary over-voltage per cell (V; pack threshold = this × cells).
    pub cell_ov_v: f64,
    pub ov_delay_s: f64,
    /// Secondary under-voltage per cell (V).
    pub cell_uv_v: f64,
    pub uv_delay_s: f64,
    /// Secondary over-current (A, either direction).
    pub oc_a: f64,
    pub oc_delay_s: f64,
    /// Arcing time when the contacts part under current (s; the µs circuit only).
    pub break_arcing_s: f64,
    pub fuse: FuseParams,
}

impl Default for PowerProParams {
    fn default() -> Self {
        Self {
            r_on_ohm: CONTACTOR_R_ON_OHM,
            operate_s: CONTACTOR_OPERATE_S,
            release_s: CONTACTOR_RELEASE_S,
            coil_w: CONTACTOR_COIL_W,
            cell_ov_v: 3.75,
            ov_delay_s: 2.0,
            cell_uv_v: 2.5,
            uv_delay_s: 2.0,
            oc_a: 400.0,
            oc_delay_s: 1.0,
            break_arcing_s: CONTACTOR_BREAK_ARCING_S,
            fuse: FuseParams::default(),
        }
    }
}

impl PowerProParams {
    pub fn validate(&self) -> Result<(), ParamError> {
        let within = |name: &'static str, v: f64, lo: f64, hi: f64, requirement: &'static str| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(ParamError { name, value: v, requirement })
            }
        };
        within("r_on_ohm", self.r_on_ohm, 0.0, 0.1, "within 0..=0.1 Ω")?;
        within("operate_s", self.operate_s, 0.0, 1.0, "within 0..=1 s")?;
        within("release_s", self.release_s, 0.0, 1.0, "within 0..=1 s")?;
        within("coil_w", self.coil_w, 0.0, 50.0, "within 0..=50 W")?;
        within("break_arcing_s", self.break_arcing_s, 0.0, 1.0, "within 0..=1 s")?;
        within("cell_ov_v", self.cell_ov_v, 2.0, 5.0, "within 2..=5 V")?;
        within("cell_uv_v", self.cell_uv_v, 1.0, 4.0, "within 1..=4 V")?;
        if self.cell_uv_v >= self.cell_ov_v {
            return Err(ParamError { name: "cell_uv_v", value: self.cell_uv_v, requirement: "below cell_ov_v" });
        }
        error::positive("oc_a", self.oc_a)?;
        for (name, v) in
            [("ov_delay_s", self.ov_delay_s), ("uv_delay_s", self.uv_delay_s), ("oc_delay_s", self.oc_delay_s)]
        {
            within(name, v, 0.0, 3600.0, "within 0..=3600 s")?;
        }
        self.fuse.validate()
    }
}

/// Why the secondary protection tripped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trip {
    OverVoltage,
    UnderVoltage,
    OverCurrent,
}

/// The PowerPro's state.
#[derive(Clone, Debug)]
pub struct PowerPro {
    params: PowerProParams,
    ov_v: f64,
    uv_v: f64,
    /// Contacts closed (conducting).
    closed: bool,
    /// Time the contacts have been commanded the other way (s).
    moving_s: f64,
    ov: Debounce,
    uv: Debounce,
    oc: Debounce,
    trip: Option<Trip>,
    fuse: Fuse,
    loss_j: f64,
}

impl PowerPro {
    /// A PowerPro for a pack of `cells` cells, its switch closed.
    pub fn new(params: &PowerProParams, cells: usize) -> Self {
        let n = cells as f64;
        PowerPro {
            params: *params,
            ov_v: params.cell_ov_v * n,
            uv_v: params.cell_uv_v * n,
            closed: true,
            moving_s: 0.0,
            ov: Debounce::default(),
            uv: Debounce::default(),
            oc: Debounce::default(),
            trip: None,
            fuse: Fuse::new(&params.fuse),
            loss_j: 0.0,
        }
    }

    /// One step of `dt_s`: the protection watches the pack voltage and current (> 0 charges)
    /// of the step, the switch follows its command, the fuse integrates the current.
    pub fn step(&mut self, dt_s: f64, pack_voltage_v: f64, current_a: f64) {
        let p = self.params;
        let ov = self.ov.update(dt_s, p.ov_delay_s, pack_voltage_v > self.ov_v, false);
        let uv = self.uv.update(dt_s, p.uv_delay_s, pack_voltage_v < self.uv_v, false);
        let oc = self.oc.update(dt_s, p.oc_delay_s, current_a.abs() > p.oc_a, false);
        if self.trip.is_none() {
            self.trip = [(ov, Trip::OverVoltage), (uv, Trip::UnderVoltage), (oc, Trip::OverCurrent)]
                .into_iter()
                .find_map(|(t, why)| t.then_some(why));
        }
        let want_closed = self.trip.is_none();
        if want_closed != self.closed {
            self.moving_s += dt_s;
            let t = if want_closed { p.operate_s } else { p.release_s };
            if self.moving_s >= t - 0.5 * dt_s {
                self.closed = want_closed;
                self.moving_s = 0.0;
            }
        } else {
            self.moving_s = 0.0;
        }
        let through = if self.closed { current_a } else { 0.0 };
        let passed = self.fuse.step(dt_s, through);
        self.loss_j += passed * passed * p.r_on_ohm * dt_s;
    }

    /// The current the PowerPro lets through for `current_a` asked (A).
    #[inline]
    pub fn gate_a(&self, current_a: f64) -> f64 {
        if self.conducts() { current_a } else { 0.0 }
    }

    /// The switch is closed and the fuse intact.
    pub fn conducts(&self) -> bool {
        self.closed && self.fuse.state() == FuseState::Intact
    }

    pub fn switch_closed(&self) -> bool {
        self.closed
    }

    pub fn trip(&self) -> Option<Trip> {
        self.trip
    }

    pub fn fuse(&self) -> &Fuse {
        &self.fuse
    }

    /// The coil's current from the pack at `pack_voltage_v` while closed (A, > 0 drawn).
    pub fn coil_current_a(&self, pack_voltage_v: f64) -> f64 {
        if self.closed && pack_voltage_v > 1.0 { self.params.coil_w / pack_voltage_v } else { 0.0 }
    }

    /// Energy lost in the contacts so far (J).
    pub fn loss_j(&self) -> f64 {
        self.loss_j
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_voltage_trips_after_the_delay_opens_after_the_release_time_and_latches() {
        let p = PowerProParams::default();
        let mut pp = PowerPro::new(&p, 4);
        let dt = 1e-3;
        let mut t = 0.0;
        let mut opened_at = None;
        for _ in 0..5_000 {
            let v = if t < 1.0 { 14.0 } else { 15.2 }; // above 4 × 3.75 V from 1 s
            pp.step(dt, v, 10.0);
            t += dt;
            if opened_at.is_none() && !pp.switch_closed() {
                opened_at = Some(t);
            }
        }
        let opened = opened_at.unwrap();
        assert!((opened - (1.0 + p.ov_delay_s + p.release_s)).abs() < 2.5 * dt, "{opened}");
        assert_eq!(pp.trip(), Some(Trip::OverVoltage));
        assert_eq!(pp.gate_a(10.0), 0.0);
        pp.step(dt, 13.0, 0.0);
        assert!(!pp.switch_closed(), "latched");
    }

    #[test]
    fn a_sustained_overload_below_oc_is_cleared_by_the_fuse() {
        let p = PowerProParams { oc_a: 2_000.0, ..PowerProParams::default() };
        let mut pp = PowerPro::new(&p, 4);
        let i = 600.0;
        let expected = p.fuse.clearing_time_s(i).unwrap();
        let mut t = 0.0;
        while pp.conducts() {
            pp.step(1e-3, 13.0, -i);
            t += 1e-3;
        }
        assert!((t - p.fuse.pre_arcing_time_s(i).unwrap()).abs() < 2e-3, "{t} vs {expected}");
        assert!(pp.switch_closed() && pp.trip().is_none());
        assert!(pp.loss_j() > 0.0);
        assert!(PowerProParams { cell_uv_v: 4.0, ..p }.validate().is_err());
    }
}
