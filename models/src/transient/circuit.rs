//! The short-circuit loop and its exact integrator.
//!
//! ```text
//!  V_rest ─ R_batt ─ L_pack ─ battery line (R, L) ─┬─ switch G(t) ─┬─ shunt ─ load line (R, L) ─ fault / load
//!                                                  └── arrester ───┘
//! ```
//!
//! One loop, one state: the loop current `i` (here `> 0` in the discharge
//! direction, battery → switch → fault). With `E = V_rest − V_ext` (the
//! load side as a Thevenin source, `V_ext = 0` for a load or a short) and
//! `R` every series resistance outside the switch,
//!
//! `L·di/dt = E − R·i − v_sw(i, G)`,
//!
//! where `v_sw` is the voltage across the switch and arrester in parallel,
//! found from `i = G·v + i_tvs(v)`. It is piecewise linear in `i`:
//!
//! - arrester off (`|i| ≤ G·V_BR`): `v = i/G`;
//! - arrester on: `v = (R_d·i + s·V_BR)/(1 + G·R_d)`, `s = sign(i)`;
//! - switch off (`G = 0`) and `i = 0`: blocked while `|E| ≤ V_BR`.
//!
//! With `G` and `E` held over a step the equation is linear inside each
//! piece, so it is integrated *exactly*: `i(t) = i∞ + (i0 − i∞)·e^(−t/τ)`.
//! Steps run from breakpoint to breakpoint, however far apart: the end of a
//! gate sub-step or a load-dump source sub-step, the caller's target, and
//! the points where `i` reaches a piece boundary (arrester breakdown entry
//! or exit), the comparator threshold, the continuous rating or zero (those
//! are located in closed form, `t = τ·ln((i0 − i∞)/(x − i∞))`, only when the
//! step's end value shows the level is crossed). Energies and I²t are
//! integrated in closed form as well (∫i and ∫i² of the exponential). Inside
//! a piece `i`, the switch voltage and the arrester power are monotone, so
//! the peaks are exact at the breakpoints. The only approximations are the
//! gate ramp (`G(t)` falls linearly over the turn-off time and is held at its
//! mid value over each of `ramp_steps` sub-steps) and the load-dump source
//! (held at its mid value over sub-steps of at most `source_step_v`).
//! Stiffness costs nothing: a τ of picoseconds is as exact as one of
//! milliseconds, and a quiet stretch of 10 ms is one step.
//!
//! The recorded waveform (when asked for) is filled from the closed form
//! between breakpoints: a sample on every multiple of `max_step_us` while the
//! current is still more than `record_tolerance_a` away from the step's end
//! value, and one at every breakpoint; a flat stretch is recorded by its ends
//! (`record_tolerance_a = 0` records every grid point).
//!
//! Time is seconds since the circuit was built (`f64`; steps end on
//! breakpoints computed from their absolute times, so nothing drifts).

use serde::{Deserialize, Serialize};

use super::powerpro::PowerProLoop;
use super::source::{LoadDumpParams, Pulse};
use super::{BatteryState, EventKind, EventParams, TransientParams};
use crate::companions::fuse::{self, Fuse, FuseState};
use crate::companions::powerpro::Trip;
use crate::error::ParamError;
use crate::variant::Variant;

/// The load side before an event when no current flows: an open load (Ω).
pub const OPEN_LOAD_OHM: f64 = 1e6;
/// Source resistance of a charger feeding the pack before an event (Ω).
pub const CHARGER_SOURCE_OHM: f64 = 10e-3;
/// The settle tolerance never goes below this (A): a steady state at 0 A is reached at 1 mA.
pub const SETTLE_FLOOR_A: f64 = 1e-3;

/// One point of the recorded waveform.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Time (s) since the circuit was built, or since the origin set with
    /// [`Circuit::set_record_origin`] ([`super::simulate`]: since the event).
    pub t_s: f64,
    /// Loop current (A), `> 0` discharging.
    pub current_a: f64,
    /// Voltage across the switch (and arrester) (V).
    pub switch_voltage_v: f64,
    /// Current in the arrester (A).
    pub arrester_current_a: f64,
    /// Power into the arrester (W).
    pub arrester_power_w: f64,
    /// Channel conductance relative to on (1 on, 0 off).
    pub gate: f64,
}

/// Energies and integrals since the circuit was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    /// Energy the battery's source delivered, `V_rest·∫i` (J).
    pub source_j: f64,
    /// Heat in the battery's R0 (J).
    pub battery_heat_j: f64,
    /// Heat in lines, joints, shunt, fault and load (J).
    pub circuit_heat_j: f64,
    /// Energy into the switch's channel (J).
    pub switch_j: f64,
    /// Energy into the arrester (J).
    pub arrester_j: f64,
    /// Energy into the load side's source (a charger) (J).
    pub external_j: f64,
    /// Charge moved, `∫i` (C), `> 0` out of the battery.
    pub charge_c: f64,
    /// ∫ i_channel² dt through the switch's channel (A²s).
    pub switch_i2t_a2s: f64,
    /// ∫ i² dt through the board's terminals (A²s).
    pub loop_i2t_a2s: f64,
    /// Energy into the arcs of the PowerPro's fuse and contacts (J).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub arc_j: f64,
}

/// Largest values seen since the circuit was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    /// Largest |loop current| (A) and when (s).
    pub current_a: f64,
    pub current_t_s: f64,
    /// Largest |voltage across the switch| (V).
    pub switch_voltage_v: f64,
    /// Largest power into the arrester (W).
    pub arrester_power_w: f64,
    /// Highest voltage of the load-side bus, the board's output terminal (V):
    /// the battery side's voltage (rest voltage less R·i and L·di/dt of the
    /// pack and battery line) minus the switch voltage; in a load dump the
    /// battery plus the arrester's clamp.
    pub bus_voltage_v: f64,
    /// Largest voltage across the PowerPro's arcs (fuse and contacts) (V).
    #[serde(default, skip_serializing_if = "super::is_zero")]
    pub arc_voltage_v: f64,
}

/// What the engine takes back after an event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EndState {
    /// Time since the circuit was built (s).
    pub t_s: f64,
    /// Current at the end (A), `> 0` charges the battery.
    pub current_a: f64,
    /// The switch's gate has been turned off (by the comparator or a command).
    pub switch_off: bool,
    /// The comparator tripped (latched until the firmware clears it).
    pub comparator_latched: bool,
    /// Net charge into the battery during the event (C), `> 0` charges.
    pub charge_c: f64,
    /// Heat in the battery's R0 (J), for the thermal model.
    pub battery_heat_j: f64,
    /// Energy into the arrester (J).
    pub arrester_energy_j: f64,
    /// Energy into the switch's channel (J).
    pub switch_energy_j: f64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Region {
    /// Arrester off, channel conducting: v = i/G.
    Channel,
    /// Arrester conducting with sign s (±1).
    Clamp(f64),
}

/// One piece of the solution for the record: `i(dt) = i_inf + b·e^(−dt/τ)`,
/// `v = v.0·i + v.1`, `i_tvs = i_tvs.0·i + i_tvs.1`.
struct Piece {
    i_inf: f64,
    b: f64,
    tau: f64,
    v: (f64, f64),
    i_tvs: (f64, f64),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hit {
    Threshold,
    Boundary,
    Zero,
    Overcurrent,
    /// The switch on for good, the source constant: within the settle tolerance of the steady state.
    Settled,
    /// The PowerPro's fuse melts.
    Melt,
    /// A level of the PowerPro's secondary protection.
    Level,
}

/// The loop of one event, stepped exactly. See the module docs.
#[derive(Clone, Debug)]
pub struct Circuit {
    v_rest: f64,
    r_batt: f64,
    /// Series resistance without battery and load line: battery line, shunt.
    r_fixed: f64,
    r_load_line: f64,
    l_fixed: f64,
    l_load_line: f64,
    /// Load side before a fault: Thevenin (V, Ω).
    v_load: f64,
    r_load: f64,
    // the present loop
    v_ext: f64,
    r: f64,
    l: f64,
    // switch, arrester, comparator
    g_on: f64,
    turn_off_s: f64,
    ramp_steps: u32,
    v_br: f64,
    r_d: f64,
    threshold_a: f64,
    trip_delay_s: f64,
    comparator_enabled: bool,
    /// Above this |current| the switch is in overcurrent (A).
    continuous_a: f64,
    /// Record grid (s) and the tolerance below which a settling current is not sampled (A).
    max_step_s: f64,
    record_tolerance_a: f64,
    /// The load-dump generator and its sub-step (V).
    load_dump: LoadDumpParams,
    variant: Variant,
    source_step_v: f64,
    source: Option<Pulse>,
    // state
    t_s: f64,
    i: f64,
    off_at_s: Option<f64>,
    trip_at_s: Option<f64>,
    trip_current_a: f64,
    over_at_s: Option<f64>,
    zero_at_s: Option<f64>,
    /// When the current came within the settle tolerance of its steady state with nothing left to change it (s).
    steady_at_s: Option<f64>,
    /// Settle tolerance: a fraction of the steady-state current, at least [`SETTLE_FLOOR_A`].
    settle_frac: f64,
    totals: Totals,
    peaks: Peaks,
    record: Option<Vec<Sample>>,
    /// Recorded times are from this circuit time (s).
    record_origin_s: f64,
    last_gate: f64,
    /// The PowerPro's fuse, contacts and secondary protection in the loop, if configured.
    pp: Option<Box<PowerProLoop>>,
}

impl Circuit {
    /// The loop before any event: the battery in `state` feeding its load
    /// (a resistance drawing `state.current_a`; a charger as a source behind
    /// [`CHARGER_SOURCE_OHM`] when it charges; an open load at 0 A) through
    /// both lines and the closed switch. `record` keeps the waveform.
    pub fn new(
        params: &TransientParams,
        variant: Variant,
        state: &BatteryState,
        record: bool,
    ) -> Result<Circuit, ParamError> {
        params.validate()?;
        params.load_dump.validate_for(variant)?;
        let bad = |name, value, requirement| Err(ParamError { name, value, requirement });
        if !(state.rest_voltage_v.is_finite() && state.rest_voltage_v > 0.0) {
            return bad("battery.rest_voltage_v", state.rest_voltage_v, "finite and > 0");
        }
        if !(state.r_internal_ohm.is_finite() && state.r_internal_ohm >= 0.0) {
            return bad("battery.r_internal_ohm", state.r_internal_ohm, "finite and >= 0");
        }
        let temp = state.temperature_c;
        let r_on = params.switch.on_resistance_ohm(variant);
        let i0 = -state.current_a;
        let pp = params.powerpro.as_ref().map(|p| {
            let cells = params.battery.cells_for(variant);
            Box::new(PowerProLoop::new(p, cells, state.rest_voltage_v, state.r_internal_ohm, i0))
        });
        let r_fixed = params.battery_line.resistance_ohm(temp)
            + params.switch.series_resistance_mohm * 1e-3
            + pp.as_ref().map_or(0.0, |p| p.resistance_ohm());
        let r_load_line = params.load_line.resistance_ohm(temp);
        let l_fixed = params.battery.inductance_h(variant) + params.battery_line.inductance_h();
        let l_load_line = params.load_line.inductance_h();
        if state.r_internal_ohm + r_fixed <= 0.0 {
            return bad(
                "battery.r_internal_ohm",
                state.r_internal_ohm,
                "a loop with some resistance outside the switch",
            );
        }
        if l_fixed <= 0.0 {
            return bad("battery.inductance_per_cell_nh", l_fixed, "a loop with some inductance on the battery side");
        }
        let r_through = state.r_internal_ohm + r_fixed + r_on + r_load_line;
        let (v_load, r_load) = if i0 > 0.0 {
            let r = (state.rest_voltage_v - i0 * r_through) / i0;
            if r <= 0.0 {
                return bad("battery.current_a", state.current_a, "below the pack's short-circuit current");
            }
            (0.0, r)
        } else if i0 < 0.0 {
            (state.rest_voltage_v - i0 * (r_through + CHARGER_SOURCE_OHM), CHARGER_SOURCE_OHM)
        } else {
            (0.0, OPEN_LOAD_OHM)
        };
        let ramp_steps = params.solver.ramp_steps.max(1);
        let mut c = Circuit {
            v_rest: state.rest_voltage_v,
            r_batt: state.r_internal_ohm,
            r_fixed,
            r_load_line,
            l_fixed,
            l_load_line,
            v_load,
            r_load,
            v_ext: v_load,
            r: state.r_internal_ohm + r_fixed + r_load_line + r_load,
            l: l_fixed + l_load_line,
            g_on: 1.0 / r_on,
            turn_off_s: params.switch.turn_off_us * 1e-6,
            ramp_steps,
            v_br: params.arrester.breakdown_v(variant),
            r_d: params.arrester.dynamic_resistance_ohm(variant),
            threshold_a: params.comparator.threshold_a,
            trip_delay_s: params.comparator.delay_s(),
            comparator_enabled: params.comparator.enabled,
            continuous_a: params.limits.continuous_current_a,
            max_step_s: params.solver.max_step_us * 1e-6,
            record_tolerance_a: params.solver.record_tolerance_a,
            load_dump: params.load_dump,
            variant,
            source_step_v: params.solver.source_step_v,
            source: None,
            t_s: 0.0,
            i: i0,
            off_at_s: None,
            trip_at_s: None,
            trip_current_a: 0.0,
            over_at_s: None,
            zero_at_s: None,
            steady_at_s: None,
            settle_frac: params.solver.settle_pct * 1e-2,
            totals: Totals::default(),
            peaks: Peaks::default(),
            record: record.then(Vec::new),
            record_origin_s: 0.0,
            last_gate: f64::NAN,
            pp,
        };
        c.observe(1.0);
        Ok(c)
    }

    /// Applies `event` now: a fault changes the loop, `switch_open` starts the
    /// gate turn-off, `load_dump` starts it with the load-dump generator on the load side.
    pub fn apply(&mut self, event: &EventParams) {
        self.over_at_s = (self.i.abs() > self.continuous_a).then_some(self.t_s);
        self.steady_at_s = None;
        match event.kind {
            EventKind::ShortCircuit => self.short_circuit(event.fault_resistance_mohm * 1e-3, event.position),
            EventKind::SwitchOpen => self.command_off(),
            EventKind::LoadDump => {
                self.load_dump_source();
                self.command_off();
            }
        }
    }

    /// From now on the load side is the load-dump generator (see [`super::source`]):
    /// the ISO 16750-2 test pulse behind `R_i`, from the generator's operating
    /// voltage `U_A` up to `U_s` and back.
    pub fn load_dump_source(&mut self) {
        let ri = self.load_dump.source_resistance_ohm(self.variant);
        let pulse = Pulse::new(&self.load_dump, self.variant, self.t_s, self.source_step_v);
        self.steady_at_s = None;
        self.v_load = pulse.supply_v();
        self.r_load = ri;
        self.r = self.r_batt + self.r_fixed + self.r_load_line + ri;
        self.v_ext = pulse.held(self.t_s).0;
        self.source = Some(pulse);
        self.observe(self.gate_rel());
    }

    /// A short of `r_fault_ohm` across the load line at `position` (0 = the
    /// board's output terminals, 1 = the far end), from now on. The load
    /// beyond the short stays in parallel with it (resistively; the
    /// inductance of the line beyond the short leaves the loop).
    pub fn short_circuit(&mut self, r_fault_ohm: f64, position: f64) {
        let p = position.clamp(0.0, 1.0);
        let r_beyond = (1.0 - p) * self.r_load_line + self.r_load;
        let (v_th, r_th) = if r_fault_ohm <= 0.0 {
            (0.0, 0.0)
        } else {
            let k = r_fault_ohm / (r_fault_ohm + r_beyond);
            (self.v_load * k, r_beyond * k)
        };
        self.steady_at_s = None;
        self.v_ext = v_th;
        self.r = self.r_batt + self.r_fixed + p * self.r_load_line + r_th;
        self.l = self.l_fixed + p * self.l_load_line;
        self.observe(self.gate_rel());
    }

    /// The firmware (or anything) opens the switch now; latched.
    pub fn command_off(&mut self) {
        if self.off_at_s.is_none_or(|t| t > self.t_s) {
            self.off_at_s = Some(self.t_s);
        }
        self.steady_at_s = None;
    }

    /// Advances to `t_end_s` (no-op if already there).
    pub fn advance_to(&mut self, t_end_s: f64) {
        while self.t_s < t_end_s {
            self.step_towards(t_end_s);
        }
    }

    /// Advances to `t_end_s` or until [`Self::is_settled`], whichever comes
    /// first; returns whether it settled.
    pub fn advance_until_settled(&mut self, t_end_s: f64) -> bool {
        while self.t_s < t_end_s {
            if self.is_settled() {
                return true;
            }
            self.step_towards(t_end_s);
        }
        self.is_settled()
    }

    /// One step: from now to the next breakpoint, at most to `t_end_s`.
    fn step_towards(&mut self, t_end_s: f64) {
        if self.comparator_armed() && self.i.abs() >= self.threshold_a {
            self.trip();
        }
        let (g, t_gate) = self.conductance(self.t_s);
        let mut t_seg_end = t_end_s.min(t_gate);
        if let Some(p) = &self.source {
            let (v, t_next) = p.held(self.t_s);
            self.v_ext = v;
            t_seg_end = t_seg_end.min(t_next);
        }
        if self.pp.is_some() {
            self.powerpro_update(g);
            if let Some(pp) = &self.pp {
                t_seg_end = t_seg_end.min(pp.next_change_s().max(self.t_s));
                if pp.arc_rate_a_per_s().is_some() && self.i != 0.0 && !pp.is_open() {
                    self.arc_segment(g, t_seg_end);
                    return;
                }
            }
        }
        self.segment(g, t_seg_end);
    }

    /// The PowerPro's protection and contacts at the present time (see [`super::powerpro`]).
    fn powerpro_update(&mut self, g: f64) {
        let dir = match self.pp.as_ref().and_then(|p| p.arc_rate_a_per_s()) {
            Some(_) => -self.i.signum(),
            None => {
                let (i_inf, _) = self.heading_with(g);
                (i_inf - self.i).signum()
            }
        };
        let (t, i) = (self.t_s, self.i);
        let Some(pp) = self.pp.as_mut() else { return };
        pp.update(t, i, dir);
        if !pp.contacts_open && pp.open_at_s.is_some_and(|t1| t1 <= t) {
            pp.contacts_open = true;
            self.steady_at_s = None;
            if i == 0.0 || pp.is_open() {
                pp.open_since_s.get_or_insert(t);
            } else if pp.params.break_arcing_s > 0.0 {
                pp.contact_arc_a_per_s = Some(i.abs() / pp.params.break_arcing_s);
            } else {
                self.interrupt_now();
            }
        }
    }

    /// An arc of no duration: the current is cut now, its magnetic energy into the arc.
    fn interrupt_now(&mut self) {
        self.totals.arc_j += 0.5 * self.l * self.i * self.i;
        self.i = 0.0;
        self.loop_opened();
    }

    /// The arcs are out at zero current: the loop is open for good.
    fn loop_opened(&mut self) {
        let t = self.t_s;
        if let Some(pp) = self.pp.as_mut() {
            if pp.fuse.state() == FuseState::Arcing {
                pp.fuse.clear();
                pp.cleared_at_s.get_or_insert(t);
            }
            pp.fuse_arc_a_per_s = None;
            pp.contact_arc_a_per_s = None;
            pp.open_since_s.get_or_insert(t);
        }
        self.zero_at_s.get_or_insert(t);
        self.steady_at_s = None;
    }

    /// The fuse melts now: its arc begins (or, with no arcing time, it is cleared at once).
    fn fuse_melts(&mut self) {
        let (t, i) = (self.t_s, self.i);
        let Some(pp) = self.pp.as_mut() else { return };
        pp.fuse.melt(i);
        pp.melt_at_s = Some(t);
        pp.melt_current_a = i;
        self.steady_at_s = None;
        let arcing_s = pp.params.fuse.arcing_s;
        if arcing_s > 0.0 && i != 0.0 {
            pp.fuse_arc_a_per_s = Some(i.abs() / arcing_s);
        } else {
            self.interrupt_now();
        }
    }

    /// One step while an arc of the PowerPro takes the current down on a line
    /// (`di/dt = −sign(i)·rate`), to `t_seg_end` or the next level, the fuse's melting or zero.
    /// The arc's voltage is what the loop leaves: `v_arc = E − R·i − v_sw − L·di/dt`.
    fn arc_segment(&mut self, g: f64, t_seg_end: f64) {
        let gate = g / self.g_on;
        if gate != self.last_gate {
            self.observe(gate);
        }
        let rate = self.pp.as_ref().and_then(|p| p.arc_rate_a_per_s()).unwrap_or(0.0);
        let (i0, t0) = (self.i, self.t_s);
        let slope = -i0.signum() * rate;
        let h_zero = i0.abs() / rate;
        let mut h = (t_seg_end - t0).min(h_zero);
        let mut hit: Option<(f64, Hit)> = (h >= h_zero).then_some((0.0, Hit::Zero));
        let i_end = i0 + slope * h;
        // The switch's region while |i| falls: channel once within g·V_BR.
        let region = if g > 0.0 && i0.abs() <= g * self.v_br { Region::Channel } else { Region::Clamp(i0.signum()) };
        {
            let mut consider = |x: f64, kind: Hit| {
                if x.is_finite() && (x - i0) * (i_end - x) > 0.0 {
                    let th = (x - i0) / slope;
                    if th < h {
                        h = th;
                        hit = Some((x, kind));
                    }
                }
            };
            if self.comparator_armed() {
                consider(self.threshold_a, Hit::Threshold);
                consider(-self.threshold_a, Hit::Threshold);
            }
            if let Region::Clamp(s) = region {
                if g > 0.0 {
                    consider(s * g * self.v_br, Hit::Boundary);
                }
            }
            if let Some(pp) = self.pp.as_ref().filter(|p| p.trip.is_none()) {
                for x in pp.levels() {
                    consider(x, Hit::Level);
                }
            }
        }
        // The fuse, intact while the contacts arc, may melt on the way.
        if let Some(pp) = self.pp.as_ref().filter(|p| p.fuse.state() == FuseState::Intact) {
            let (fp, w0) = (pp.params.fuse, pp.fuse.heat_a2s());
            if let Some(hm) = fuse::melt_time_s(h, fp.pre_arcing_i2t_a2s, |x| fp.heat_after_linear(w0, x, i0, -slope)) {
                if hm < h || hit.is_none() {
                    h = hm;
                    hit = Some((i0 + slope * hm, Hit::Melt));
                }
            }
        }
        let s1 = i0 * h + 0.5 * slope * h * h;
        let s2 = i0 * i0 * h + i0 * slope * h * h + slope * slope * h * h * h / 3.0;
        if self.record.is_some() {
            self.record_line(t0, t0 + h, i0, slope, region, g, gate);
        }
        let (sw0, ar0) = (self.totals.switch_j, self.totals.arrester_j);
        self.integrate(region, g, h, s1, s2);
        let e = self.source_v();
        let to_switch = self.totals.switch_j - sw0 + self.totals.arrester_j - ar0;
        self.totals.arc_j += (e - self.l * slope) * s1 - self.r * s2 - to_switch;
        if let Some(pp) = self.pp.as_mut() {
            if pp.fuse.state() == FuseState::Intact {
                let w = pp.params.fuse.heat_after_linear(pp.fuse.heat_a2s(), h, i0, -slope);
                pp.fuse.carried(w, s2);
            } else {
                pp.fuse.arced(s2);
            }
        }
        self.t_s = t0 + h;
        match hit {
            Some((x, kind)) => {
                self.i = x;
                match kind {
                    Hit::Zero => {
                        // The arc's voltage is largest just before the zero (linear in i over the piece).
                        let v_sw = self.electrical_in(region, 0.0, g).0;
                        let v_arc = self.source_v() - v_sw - self.l * slope;
                        self.peaks.arc_voltage_v = self.peaks.arc_voltage_v.max(v_arc.abs());
                        self.i = 0.0;
                        self.loop_opened();
                    }
                    Hit::Threshold => self.trip(),
                    Hit::Melt => self.fuse_melts(),
                    _ => {}
                }
            }
            None => self.i = i_end,
        }
        self.observe(gate);
    }

    /// Records a line `i0 + slope·(t − t0)` on the grid points strictly inside `(t0, t_stop)`.
    #[allow(clippy::too_many_arguments)]
    fn record_line(&mut self, t0: f64, t_stop: f64, i0: f64, slope: f64, region: Region, g: f64, gate: f64) {
        let step = self.max_step_s;
        let mut k = (t0 / step).floor() + 1.0;
        let origin = self.record_origin_s;
        let mut out = Vec::new();
        while k * step < t_stop {
            let t = k * step;
            let i = i0 + slope * (t - t0);
            let (v, i_tvs, p) = self.electrical_in(region, i, g);
            out.push(Sample {
                t_s: t - origin,
                current_a: i,
                switch_voltage_v: v,
                arrester_current_a: i_tvs,
                arrester_power_w: p,
                gate,
            });
            k += 1.0;
        }
        if let Some(rec) = self.record.as_mut() {
            rec.extend(out);
        }
    }

    /// Time since the circuit was built (s).
    pub fn t_s(&self) -> f64 {
        self.t_s
    }

    /// Loop current (A), `> 0` discharging (battery → fault).
    pub fn discharge_current_a(&self) -> f64 {
        self.i
    }

    /// Loop inductance (H) and resistance outside the switch (Ω), as now.
    pub fn loop_l_r(&self) -> (f64, f64) {
        (self.l, self.r)
    }

    /// Source voltage of the loop, `V_rest − V_ext` (V), as now.
    pub fn source_v(&self) -> f64 {
        self.v_rest - self.v_ext
    }

    /// Source voltage of the loop once a load-dump pulse is over, `V_rest − U_A`
    /// (V); without one, as now.
    pub fn final_source_v(&self) -> f64 {
        self.source.map_or(self.source_v(), |p| self.v_rest - p.supply_v())
    }

    /// The load-dump pulse, if one runs.
    pub fn pulse(&self) -> Option<&Pulse> {
        self.source.as_ref()
    }

    /// When the comparator tripped (s).
    pub fn trip_at_s(&self) -> Option<f64> {
        self.trip_at_s
    }

    /// The loop current when the comparator tripped (A, `> 0` discharging).
    pub fn trip_current_a(&self) -> Option<f64> {
        self.trip_at_s.map(|_| self.trip_current_a)
    }

    /// When the gate turn-off started or will start (s).
    pub fn off_at_s(&self) -> Option<f64> {
        self.off_at_s
    }

    /// When the switch is (or will be) fully off: the end of the gate ramp (s).
    pub fn switch_off_at_s(&self) -> Option<f64> {
        self.off_at_s.map(|t| t + self.turn_off_s)
    }

    /// When |current| last rose above the continuous rating (`limits.continuous_current_a`)
    /// since the event was applied (s).
    pub fn overcurrent_at_s(&self) -> Option<f64> {
        self.over_at_s
    }

    /// When the current last reached zero with the switch off (s); `None`
    /// again while a load-dump source drives current through the arrester.
    pub fn zero_at_s(&self) -> Option<f64> {
        self.zero_at_s
    }

    /// The event has ended by a physical criterion: switch fully off, no
    /// current, and no source left that could push the arrester into
    /// conduction again; or, with the switch on for good (no turn-off coming,
    /// the comparator not going to trip) and the source constant, the current
    /// within the settle tolerance (`solver.settle_pct` of its steady state,
    /// at least [`SETTLE_FLOOR_A`]) of the steady state of the loop's own
    /// exponential. Nothing more happens.
    pub fn is_settled(&self) -> bool {
        if self.steady_at_s.is_some() {
            return true;
        }
        if self.pp.as_ref().is_some_and(|p| p.is_open()) && self.i == 0.0 {
            // The fuse cleared or the contacts' arc is out: nothing can flow again.
            return true;
        }
        if self.zero_at_s.is_none() || self.i != 0.0 {
            return false;
        }
        match &self.source {
            // Whatever the rest of the pulse does, |V_rest − u| stays within the breakdown.
            Some(p) => {
                let (u_min, u_max) = p.range_from(self.t_s);
                self.v_rest - u_max >= -self.v_br && self.v_rest - u_min <= self.v_br
            }
            None => self.source_v().abs() <= self.v_br,
        }
    }

    /// When the current came within the settle tolerance of a steady state
    /// the loop keeps (switch on, source constant, no trip ahead) (s).
    pub fn steady_at_s(&self) -> Option<f64> {
        self.steady_at_s
    }

    /// The PowerPro's fuse, if one is in the loop.
    pub fn fuse(&self) -> Option<&Fuse> {
        self.pp.as_ref().map(|p| &p.fuse)
    }

    /// When the fuse melted (s) and the current then (A, `> 0` discharging).
    pub fn fuse_melted_at(&self) -> Option<(f64, f64)> {
        self.pp.as_ref().and_then(|p| p.melt_at_s.map(|t| (t, p.melt_current_a)))
    }

    /// When the fuse cleared (its arc out, open for good) (s).
    pub fn fuse_cleared_at_s(&self) -> Option<f64> {
        self.pp.as_ref().and_then(|p| p.cleared_at_s)
    }

    /// When the PowerPro's secondary protection tripped (s), and why.
    pub fn powerpro_trip(&self) -> Option<(f64, Trip)> {
        self.pp.as_ref().and_then(|p| p.trip_at_s.zip(p.trip))
    }

    /// When the PowerPro's contacts parted (or will part) (s).
    pub fn powerpro_open_at_s(&self) -> Option<f64> {
        self.pp.as_ref().and_then(|p| p.open_at_s)
    }

    /// When the PowerPro opened the loop for good (fuse cleared or contacts' arc out) (s).
    pub fn powerpro_interrupted_at_s(&self) -> Option<f64> {
        self.pp.as_ref().and_then(|p| p.open_since_s)
    }

    /// The running arcs' rate of fall (A/s), if an arc of the PowerPro runs.
    pub fn arc_rate_a_per_s(&self) -> Option<f64> {
        self.pp.as_ref().filter(|p| !p.is_open()).and_then(|p| p.arc_rate_a_per_s())
    }

    /// The PowerPro's next change by itself (protection timer, contacts) (s), ∞ without one.
    pub fn powerpro_next_change_s(&self) -> f64 {
        self.pp.as_ref().map_or(f64::INFINITY, |p| p.next_change_s())
    }

    /// Where the current is heading now and how fast: the steady state
    /// `i∞` (A, `> 0` discharging) and time constant `τ = L/(R + dv_sw/di)`
    /// (s) of the present piece (gate and source as held now); `(0, ∞)` when blocked.
    pub fn heading(&self) -> (f64, f64) {
        let (g, _) = self.conductance(self.t_s);
        self.heading_with(g)
    }

    /// [`Self::heading`] with conductance `g`.
    fn heading_with(&self, g: f64) -> (f64, f64) {
        if self.pp.as_ref().is_some_and(|p| p.is_open()) {
            return (0.0, f64::INFINITY);
        }
        let e = self.source_v();
        if g == 0.0 && self.i == 0.0 && e.abs() <= self.v_br {
            return (0.0, f64::INFINITY);
        }
        let (slope, offset) = self.linear_v(self.region(self.i, g), g);
        let r_tot = self.r + slope;
        ((e - offset) / r_tot, self.l / r_tot)
    }

    /// Voltage across the switch now (V), `> 0` with the discharge current.
    pub fn switch_voltage_v(&self) -> f64 {
        let (g, _) = self.conductance(self.t_s);
        self.electrical(self.i, g).0
    }

    /// Current in the arrester now (A), `> 0` with the discharge current.
    pub fn arrester_current_a(&self) -> f64 {
        let (g, _) = self.conductance(self.t_s);
        self.electrical(self.i, g).1
    }

    /// Energies and integrals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Peaks so far.
    pub fn peaks(&self) -> &Peaks {
        &self.peaks
    }

    /// The recorded waveform (empty unless built with `record`).
    pub fn samples(&self) -> &[Sample] {
        self.record.as_deref().unwrap_or(&[])
    }

    /// Takes the recorded waveform out.
    pub fn take_samples(&mut self) -> Vec<Sample> {
        self.record.take().unwrap_or_default()
    }

    /// What the engine takes back: see [`EndState`].
    pub fn end_state(&self) -> EndState {
        EndState {
            t_s: self.t_s,
            current_a: -self.i,
            switch_off: self.off_at_s.is_some_and(|t| t <= self.t_s),
            comparator_latched: self.trip_at_s.is_some(),
            charge_c: -self.totals.charge_c,
            battery_heat_j: self.totals.battery_heat_j,
            arrester_energy_j: self.totals.arrester_j,
            switch_energy_j: self.totals.switch_j,
        }
    }

    fn comparator_armed(&self) -> bool {
        self.comparator_enabled && self.trip_at_s.is_none()
    }

    fn trip(&mut self) {
        self.trip_at_s = Some(self.t_s);
        self.trip_current_a = self.i;
        let t = self.t_s + self.trip_delay_s;
        if self.off_at_s.is_none_or(|t0| t0 > t) {
            self.off_at_s = Some(t);
        }
    }

    fn gate_rel(&self) -> f64 {
        self.conductance(self.t_s).0 / self.g_on
    }

    /// The channel conductance held from `t` and the time it next changes.
    fn conductance(&self, t: f64) -> (f64, f64) {
        let Some(t0) = self.off_at_s else { return (self.g_on, f64::INFINITY) };
        if t < t0 {
            return (self.g_on, t0);
        }
        if self.turn_off_s <= 0.0 {
            return (0.0, f64::INFINITY);
        }
        let n = self.ramp_steps;
        let h = self.turn_off_s / f64::from(n);
        // A time that sits on a sub-step boundary belongs to the next sub-step: decided on the
        // boundaries' own absolute times (a quotient's rounding, ~ulp(t)/h, grows with t).
        let mut k = ((t - t0) / h).floor().max(0.0);
        while k < f64::from(n) && t0 + (k + 1.0) * h <= t {
            k += 1.0;
        }
        while k > 0.0 && t0 + k * h > t {
            k -= 1.0;
        }
        if k >= f64::from(n) || t >= t0 + self.turn_off_s {
            return (0.0, f64::INFINITY);
        }
        let mid = (k + 0.5) * h;
        let next = if k + 1.0 >= f64::from(n) { t0 + self.turn_off_s } else { t0 + (k + 1.0) * h };
        (self.g_on * (1.0 - mid / self.turn_off_s), next)
    }

    fn region(&self, i: f64, g: f64) -> Region {
        let edge = g * self.v_br;
        if g > 0.0 {
            if i.abs() < edge {
                return Region::Channel;
            }
            if i.abs() == edge {
                // On the boundary: the side the current moves to.
                let s = i.signum();
                let di = self.source_v() - self.r * i - s * self.v_br;
                return if di * s > 0.0 { Region::Clamp(s) } else { Region::Channel };
            }
        }
        if i == 0.0 { Region::Clamp(self.source_v().signum()) } else { Region::Clamp(i.signum()) }
    }

    /// `v_sw = slope·i + offset` in a region.
    fn linear_v(&self, region: Region, g: f64) -> (f64, f64) {
        match region {
            Region::Channel => (1.0 / g, 0.0),
            Region::Clamp(s) => {
                let k = 1.0 + g * self.r_d;
                (self.r_d / k, s * self.v_br / k)
            }
        }
    }

    /// Voltage, arrester current and power at current `i`, conductance `g`.
    fn electrical(&self, i: f64, g: f64) -> (f64, f64, f64) {
        if i == 0.0 && self.pp.as_ref().is_some_and(|p| p.is_open()) {
            // The open fuse or contacts hold the voltage; nothing is across the board's switch.
            return (0.0, 0.0, 0.0);
        }
        if g == 0.0 && i == 0.0 {
            return (self.source_v(), 0.0, 0.0);
        }
        self.electrical_in(self.region(i, g), i, g)
    }

    /// [`Self::electrical`] in a known region.
    fn electrical_in(&self, region: Region, i: f64, g: f64) -> (f64, f64, f64) {
        match region {
            Region::Channel => (i / g, 0.0, 0.0),
            Region::Clamp(s) => {
                let k = 1.0 + g * self.r_d;
                let v = (self.r_d * i + s * self.v_br) / k;
                let i_tvs = (i - s * g * self.v_br) / k;
                (v, i_tvs, v * i_tvs)
            }
        }
    }

    fn observe(&mut self, gate: f64) {
        let g = gate * self.g_on;
        let (v, i_tvs, p) = self.electrical(self.i, g);
        if self.i.abs() > self.peaks.current_a {
            self.peaks.current_a = self.i.abs();
            self.peaks.current_t_s = self.t_s;
        }
        self.peaks.switch_voltage_v = self.peaks.switch_voltage_v.max(v.abs());
        self.peaks.arrester_power_w = self.peaks.arrester_power_w.max(p);
        // The battery side: V_rest − R_b·i − L_b·di/dt, di/dt = (E − R·i − v)/L (0 while blocked).
        let arc_rate = self.pp.as_ref().filter(|p| !p.is_open()).and_then(|p| p.arc_rate_a_per_s());
        let (di_dt, v_arc) = match arc_rate {
            Some(rate) if self.i != 0.0 => {
                let di_dt = -self.i.signum() * rate;
                (di_dt, self.source_v() - self.r * self.i - v - self.l * di_dt)
            }
            _ if (g == 0.0 && self.i == 0.0 && i_tvs == 0.0) || self.pp.as_ref().is_some_and(|p| p.is_open()) => {
                (0.0, 0.0)
            }
            _ => ((self.source_v() - self.r * self.i - v) / self.l, 0.0),
        };
        self.peaks.arc_voltage_v = self.peaks.arc_voltage_v.max(v_arc.abs());
        let v_in = self.v_rest - (self.r_batt + self.r_fixed) * self.i - self.l_fixed * di_dt - v_arc;
        if !self.pp.as_ref().is_some_and(|p| p.is_open()) {
            self.peaks.bus_voltage_v = self.peaks.bus_voltage_v.max(v_in - v);
        }
        if let Some(rec) = self.record.as_mut() {
            rec.push(Sample {
                t_s: self.t_s - self.record_origin_s,
                current_a: self.i,
                switch_voltage_v: v,
                arrester_current_a: i_tvs,
                arrester_power_w: p,
                gate,
            });
        }
        self.last_gate = gate;
    }

    /// Integrates from now with conductance `g` up to `t_seg_end`, or less
    /// when the current reaches a boundary, the threshold, the continuous
    /// rating or zero.
    fn segment(&mut self, g: f64, t_seg_end: f64) {
        let gate = g / self.g_on;
        if gate != self.last_gate {
            self.observe(gate);
        }
        let e = self.source_v();
        let i0 = self.i;
        let t0 = self.t_s;
        let open = self.pp.as_ref().is_some_and(|p| p.is_open());
        if (g == 0.0 && i0 == 0.0 && e.abs() <= self.v_br) || (open && i0 == 0.0) {
            // Blocked: nothing flows (the fuse cools).
            if self.record.is_some() && self.record_tolerance_a == 0.0 {
                let v = if open { 0.0 } else { e };
                let flat = Piece { i_inf: 0.0, b: 0.0, tau: 1.0, v: (0.0, v), i_tvs: (0.0, 0.0) };
                self.record_piece(t0, t_seg_end, &flat, gate);
            }
            if let Some(pp) = self.pp.as_mut().filter(|p| p.fuse.state() == FuseState::Intact) {
                let w = pp.params.fuse.heat_after_exp(pp.fuse.heat_a2s(), t_seg_end - t0, 0.0, 0.0, 1.0);
                pp.fuse.carried(w, 0.0);
            }
            self.t_s = t_seg_end;
            self.observe(gate);
            return;
        }
        if g == 0.0 && i0 == 0.0 {
            // The source drives the arrester into conduction (again): no current zero yet.
            self.zero_at_s = None;
        }
        let region = self.region(i0, g);
        let (slope, offset) = self.linear_v(region, g);
        let r_tot = self.r + slope;
        let tau = self.l / r_tot;
        let i_inf = (e - offset) / r_tot;
        let b = i0 - i_inf;
        let h_full = t_seg_end - t0;
        let em1_full = -(-h_full / tau).exp_m1();
        let i_end = i_inf + b * (1.0 - em1_full);
        if self.over_at_s.is_none()
            && self.off_at_s.is_none()
            && i0.abs() == self.continuous_a
            && i_inf * i0.signum() > self.continuous_a
        {
            // Starting on the continuous rating and rising above it: in overcurrent from now.
            self.over_at_s = Some(t0);
        }
        // The switch on for good and the source constant: the loop settles on i∞ with τ.
        let steady = self.steady_at_s.is_none()
            && g == self.g_on
            && self.off_at_s.is_none()
            && region == Region::Channel
            && self.source.as_ref().is_none_or(|p| t0 >= p.end_s())
            && !(self.comparator_armed() && i_inf.abs() >= self.threshold_a)
            && self.pp.as_ref().is_none_or(|p| p.quiet_at(i_inf));
        let settle_tol = (self.settle_frac * i_inf.abs()).max(SETTLE_FLOOR_A);
        if steady && b.abs() <= settle_tol {
            // Settled already: mark it and return without a step (the next call steps on).
            self.steady_at_s = Some(t0);
            return;
        }

        // The first level crossed on the way from i0 to i_end (i monotone towards i∞).
        let mut h = h_full;
        let mut hit: Option<(f64, Hit)> = None;
        let mut consider = |x: f64, kind: Hit| {
            if (x - i0) * (i_inf - x) > 0.0 && (x - i0) * (i_end - x) >= 0.0 {
                let th = -tau * ((x - i_inf) / b).ln();
                if th <= h {
                    h = th;
                    hit = Some((x, kind));
                }
            }
        };
        if self.comparator_enabled && self.trip_at_s.is_none() {
            consider(self.threshold_a, Hit::Threshold);
            consider(-self.threshold_a, Hit::Threshold);
        }
        if self.over_at_s.is_none() && self.off_at_s.is_none() {
            consider(self.continuous_a, Hit::Overcurrent);
            consider(-self.continuous_a, Hit::Overcurrent);
        }
        match region {
            Region::Channel => {
                consider(g * self.v_br, Hit::Boundary);
                consider(-g * self.v_br, Hit::Boundary);
            }
            Region::Clamp(s) if g > 0.0 => consider(s * g * self.v_br, Hit::Boundary),
            Region::Clamp(_) => consider(0.0, Hit::Zero),
        }
        if steady && b.abs() > settle_tol {
            consider(i_inf + b.signum() * settle_tol, Hit::Settled);
        }
        if let Some(pp) = self.pp.as_ref().filter(|p| p.trip.is_none()) {
            for x in pp.levels() {
                if x.is_finite() {
                    consider(x, Hit::Level);
                }
            }
        }
        // The fuse's melting: the root of its heat's closed form over this piece.
        if let Some(pp) = self.pp.as_ref().filter(|p| p.fuse.state() == FuseState::Intact) {
            let (fp, w0) = (pp.params.fuse, pp.fuse.heat_a2s());
            if let Some(hm) = fuse::melt_time_s(h, fp.pre_arcing_i2t_a2s, |x| fp.heat_after_exp(w0, x, i_inf, b, tau)) {
                h = hm;
                hit = Some((i_inf + b * (-hm / tau).exp(), Hit::Melt));
            }
        }

        // ∫1, ∫i, ∫i² over [0, h] of i(t) = a + b·e^(−t/τ); 1 − e^(−2x) = em1·(2 − em1).
        let em1 = if hit.is_some() { -(-h / tau).exp_m1() } else { em1_full };
        let em2 = em1 * (2.0 - em1);
        let a = i_inf;
        let s1 = a * h + b * tau * em1;
        let s2 = a * a * h + 2.0 * a * b * tau * em1 + b * b * 0.5 * tau * em2;
        let i_final = hit.map_or(i_end, |(x, _)| x);
        if self.record.is_some() {
            // Grid samples while the current is more than the tolerance from its end value:
            // |b|·(e^(−dt/τ) − e^(−h/τ)) ≥ tol  ⇔  dt ≤ −τ·ln(tol/|b| + e^(−h/τ)).
            let tol = self.record_tolerance_a;
            let t_flat = if tol == 0.0 {
                t0 + h
            } else if b == 0.0 {
                t0
            } else {
                t0 - tau * (tol / b.abs() + (i_final - i_inf) / b).ln()
            };
            let i_tvs = match region {
                Region::Channel => (0.0, 0.0),
                Region::Clamp(s) => {
                    let k = 1.0 + g * self.r_d;
                    (1.0 / k, -s * g * self.v_br / k)
                }
            };
            let piece = Piece { i_inf, b, tau, v: (slope, offset), i_tvs };
            self.record_piece(t0, t_flat.min(t0 + h), &piece, gate);
        }
        self.integrate(region, g, h, s1, s2);
        if let Some(pp) = self.pp.as_mut() {
            if pp.fuse.state() == FuseState::Intact {
                let w = pp.params.fuse.heat_after_exp(pp.fuse.heat_a2s(), h, i_inf, b, tau);
                pp.fuse.carried(w, s2);
            } else {
                pp.fuse.arced(s2);
            }
        }

        match hit {
            Some((x, kind)) => {
                self.t_s = t0 + h;
                self.i = x;
                match kind {
                    Hit::Threshold => self.trip(),
                    Hit::Overcurrent => self.over_at_s = Some(self.t_s),
                    Hit::Zero if e.abs() <= self.v_br => {
                        self.i = 0.0;
                        self.zero_at_s.get_or_insert(self.t_s);
                    }
                    Hit::Settled => self.steady_at_s = Some(self.t_s),
                    Hit::Melt => self.fuse_melts(),
                    Hit::Zero | Hit::Boundary | Hit::Level => {}
                }
            }
            None => {
                self.t_s = t_seg_end;
                self.i = i_end;
            }
        }
        self.observe(gate);
    }

    /// Records `piece` on the grid points strictly inside `(t0, t_stop)`:
    /// one exp for the first point, then the grid's constant decay factor.
    fn record_piece(&mut self, t0: f64, t_stop: f64, piece: &Piece, gate: f64) {
        let step = self.max_step_s;
        let k0 = (t0 / step).floor() + 1.0;
        if k0 * step >= t_stop {
            return;
        }
        // Grid points k0·step … (k0 + n − 1)·step, all < t_stop.
        let mut n = ((t_stop - k0 * step) / step).ceil().max(1.0);
        while n > 1.0 && (k0 + n - 1.0) * step >= t_stop {
            n -= 1.0;
        }
        let q = (-step / piece.tau).exp();
        let mut decay = (-(k0 * step - t0) / piece.tau).exp();
        let origin = self.record_origin_s;
        let Some(rec) = self.record.as_mut() else { return };
        rec.extend((0..n as usize).map(|j| {
            let i = piece.i_inf + piece.b * decay;
            decay *= q;
            let v = piece.v.0 * i + piece.v.1;
            let i_tvs = piece.i_tvs.0 * i + piece.i_tvs.1;
            Sample {
                t_s: (k0 + j as f64) * step - origin,
                current_a: i,
                switch_voltage_v: v,
                arrester_current_a: i_tvs,
                arrester_power_w: v * i_tvs,
                gate,
            }
        }));
    }

    /// From now on recorded times are from `origin_s` (and those recorded so far are moved to it).
    pub fn set_record_origin(&mut self, origin_s: f64) {
        let shift = origin_s - self.record_origin_s;
        if let Some(rec) = self.record.as_mut() {
            for s in rec.iter_mut() {
                s.t_s -= shift;
            }
        }
        self.record_origin_s = origin_s;
    }

    fn integrate(&mut self, region: Region, g: f64, h: f64, s1: f64, s2: f64) {
        // ∫ (q2·i² + q1·i + q0) dt
        let int = |q2: f64, q1: f64, q0: f64| q2 * s2 + q1 * s1 + q0 * h;
        let t = &mut self.totals;
        t.source_j += self.v_rest * s1;
        t.external_j += self.v_ext * s1;
        t.battery_heat_j += self.r_batt * s2;
        t.circuit_heat_j += (self.r - self.r_batt) * s2;
        t.charge_c += s1;
        t.loop_i2t_a2s += s2;
        match region {
            Region::Channel => {
                t.switch_j += s2 / g;
                t.switch_i2t_a2s += s2;
            }
            Region::Clamp(s) => {
                let (rd, vb) = (self.r_d, self.v_br);
                let k2 = (1.0 + g * rd).powi(2);
                t.arrester_j += int(rd / k2, s * vb * (1.0 - g * rd) / k2, -g * vb * vb / k2);
                t.switch_j += int(g * rd * rd / k2, 2.0 * g * rd * s * vb / k2, g * vb * vb / k2);
                t.switch_i2t_a2s += int(g * g * rd * rd / k2, 2.0 * g * g * rd * s * vb / k2, g * g * vb * vb / k2);
            }
        }
    }
}
