//! The PowerPro in the µs loop (issue 15): its fuse ([`crate::companions::fuse`],
//! the one fuse model) and its main switch in series on the battery side, and
//! its secondary protection watching the loop.
//!
//! ```text
//!  V_rest ─ R_batt ─ L_pack ─ fuse (R_f) ─ contactor (R_on) ─ battery line ─ SmartPro ─ …
//! ```
//!
//! - **Fuse.** Intact it is the resistance `fuse.resistance_mohm`; its heat
//!   `W` (`dW/dt = i² − W/τ`) is integrated in closed form over each of the
//!   circuit's exact pieces; the melting instant is the root of that closed
//!   form. From melting the arc takes the current linearly to zero in
//!   `fuse.arcing_s` (the fuse model's arc), then the fuse is open for good.
//!   Before the event the fuse carries the load's current: it starts at
//!   its steady heat `W = τ·i₀²` (at most its melting integral).
//! - **Secondary protection.** `|i| > oc_a` for `oc_delay_s`, the pack
//!   voltage below `cell_uv_v × cells` for `uv_delay_s` or above
//!   `cell_ov_v × cells` for `ov_delay_s` trips it (latched). The pack
//!   voltage it reads is `V_rest − R_batt·i` (its filter removes the
//!   inductive spikes), so every threshold is a level of the loop current,
//!   located in closed form like the comparator's.
//! - **Main switch.** `r_on_ohm` in series; a trip opens the contacts
//!   `release_s` later. Contacts that part under current draw an arc that
//!   takes the current linearly to zero in `break_arcing_s`; then the loop
//!   is open. Two arcs at once (the fuse melting while the contacts arc)
//!   add their rates of fall.

use crate::companions::fuse::{Fuse, FuseState};
use crate::companions::powerpro::{PowerProParams, Trip};

/// The PowerPro's part of the loop and its state.
#[derive(Clone, Debug)]
pub(super) struct PowerProLoop {
    pub(super) params: PowerProParams,
    pub(super) fuse: Fuse,
    /// Loop currents (discharge > 0) beyond which the pack voltage is below the
    /// under-voltage threshold (`i > uv`) or above the over-voltage one (`i < ov`).
    uv_level_a: f64,
    ov_level_a: f64,
    /// When each condition (over-current, under-voltage, over-voltage) began to hold (s).
    since_s: [Option<f64>; 3],
    pub(super) trip: Option<Trip>,
    pub(super) trip_at_s: Option<f64>,
    /// When the contacts part (trip + release time) (s).
    pub(super) open_at_s: Option<f64>,
    pub(super) contacts_open: bool,
    /// Rates of fall of the arcs (A/s): the fuse's, the contacts'.
    pub(super) fuse_arc_a_per_s: Option<f64>,
    pub(super) contact_arc_a_per_s: Option<f64>,
    pub(super) melt_at_s: Option<f64>,
    pub(super) melt_current_a: f64,
    pub(super) cleared_at_s: Option<f64>,
    /// The loop is open for good (fuse cleared, or the contacts' arc out) since (s).
    pub(super) open_since_s: Option<f64>,
}

impl PowerProLoop {
    /// The PowerPro of a pack of `cells` cells at rest voltage `v_rest` behind `r_batt`,
    /// carrying `i0` (discharge > 0) before the event.
    pub(super) fn new(params: &PowerProParams, cells: usize, v_rest: f64, r_batt: f64, i0: f64) -> Self {
        let n = cells as f64;
        let level = |dv: f64| if r_batt > 0.0 { dv / r_batt } else { dv.signum() * f64::INFINITY };
        let mut fuse = Fuse::new(&params.fuse);
        let w0 = (params.fuse.tau_s() * i0 * i0).min(params.fuse.pre_arcing_i2t_a2s);
        fuse.carried(w0, 0.0);
        PowerProLoop {
            params: *params,
            fuse,
            uv_level_a: level(v_rest - params.cell_uv_v * n),
            ov_level_a: level(v_rest - params.cell_ov_v * n),
            since_s: [None; 3],
            trip: None,
            trip_at_s: None,
            open_at_s: None,
            contacts_open: false,
            fuse_arc_a_per_s: None,
            contact_arc_a_per_s: None,
            melt_at_s: None,
            melt_current_a: 0.0,
            cleared_at_s: None,
            open_since_s: None,
        }
    }

    /// Series resistance of fuse and contacts (Ω).
    pub(super) fn resistance_ohm(&self) -> f64 {
        self.params.r_on_ohm + self.params.fuse.resistance_mohm * 1e-3
    }

    /// Sum of the running arcs' rates of fall (A/s), if any arc runs.
    pub(super) fn arc_rate_a_per_s(&self) -> Option<f64> {
        match (self.fuse_arc_a_per_s, self.contact_arc_a_per_s) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        }
    }

    /// The current levels at which a protection condition begins or ends.
    pub(super) fn levels(&self) -> [f64; 4] {
        [self.params.oc_a, -self.params.oc_a, self.uv_level_a, self.ov_level_a]
    }

    /// Whether each condition holds at current `i`, moving in direction `dir` (sign of di/dt):
    /// on a level, the side it moves to.
    fn beyond(&self, i: f64, dir: f64) -> [bool; 3] {
        let past = |x: f64, level: f64, up: bool| {
            if up { x > level || (x == level && dir > 0.0) } else { x < level || (x == level && dir < 0.0) }
        };
        let oc = self.params.oc_a;
        [past(i, oc, true) || past(i, -oc, false), past(i, self.uv_level_a, true), past(i, self.ov_level_a, false)]
    }

    fn delays(&self) -> [f64; 3] {
        [self.params.oc_delay_s, self.params.uv_delay_s, self.params.ov_delay_s]
    }

    /// The protection at time `t` with current `i` moving in direction `dir`: timers start
    /// and stop, a condition held for its delay trips (latched) and schedules the contacts.
    pub(super) fn update(&mut self, t: f64, i: f64, dir: f64) {
        if self.trip.is_some() {
            return;
        }
        let beyond = self.beyond(i, dir);
        let delays = self.delays();
        for (k, why) in [Trip::OverCurrent, Trip::UnderVoltage, Trip::OverVoltage].into_iter().enumerate() {
            if !beyond[k] {
                self.since_s[k] = None;
                continue;
            }
            let t0 = *self.since_s[k].get_or_insert(t);
            if self.trip.is_none() && t >= t0 + delays[k] {
                self.trip = Some(why);
                self.trip_at_s = Some(t);
                self.open_at_s = Some(t + self.params.release_s);
            }
        }
    }

    /// The next time the protection changes by itself: a running timer's end or the contacts
    /// parting (s; ∞ when none).
    pub(super) fn next_change_s(&self) -> f64 {
        let mut t = f64::INFINITY;
        if self.trip.is_none() {
            for (s, d) in self.since_s.iter().zip(self.delays()) {
                if let Some(t0) = s {
                    t = t.min(t0 + d);
                }
            }
        }
        if !self.contacts_open {
            if let Some(t1) = self.open_at_s {
                t = t.min(t1);
            }
        }
        t
    }

    /// Nothing of the PowerPro's will change while the loop holds `i_inf` for ever: the fuse
    /// intact and never melting at it (`τ·i∞² < I²t_pa`: below the minimum fusing current),
    /// no timer running, no trip, no condition beyond at `i_inf`.
    pub(super) fn quiet_at(&self, i_inf: f64) -> bool {
        self.fuse.state() == FuseState::Intact
            && self.params.fuse.tau_s() * i_inf * i_inf < self.params.fuse.pre_arcing_i2t_a2s
            && self.trip.is_none()
            && self.since_s.iter().all(Option::is_none)
            && self.beyond(i_inf, 0.0).iter().all(|b| !b)
    }

    /// The loop is open for good.
    pub(super) fn is_open(&self) -> bool {
        self.open_since_s.is_some()
    }
}
