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
//! With `G` held over a step the equation is linear inside each piece, so
//! it is integrated *exactly*: `i(t) = i∞ + (i0 − i∞)·e^(−t/τ)`, and the
//! step is cut where `i` reaches a piece boundary, the comparator
//! threshold or zero (those times are solved in closed form). Energies and
//! I²t are integrated in closed form as well (∫i and ∫i² of the
//! exponential). The only approximation is the gate ramp: `G(t)` falls
//! linearly over the turn-off time and is held at its mid-step value over
//! each of `ramp_steps` sub-steps; steps are at most `max_step_us` long
//! for the record. Stiffness costs nothing: a τ of picoseconds is as
//! exact as one of milliseconds.
//!
//! Time is seconds since the circuit was built (`f64`; steps end on
//! breakpoints computed from their absolute times, so nothing drifts).

use serde::{Deserialize, Serialize};

use super::{BatteryState, EventKind, EventParams, TransientParams};
use crate::error::ParamError;
use crate::variant::Variant;

/// The load side before an event when no current flows: an open load (Ω).
pub const OPEN_LOAD_OHM: f64 = 1e6;
/// Source resistance of a charger feeding the pack before an event (Ω).
pub const CHARGER_SOURCE_OHM: f64 = 10e-3;

/// One point of the recorded waveform.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Time since the circuit was built (s).
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

#[derive(Clone, Copy, Debug, PartialEq)]
enum Hit {
    Threshold,
    Boundary,
    Zero,
    Overcurrent,
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
    max_step_s: f64,
    // state
    t_s: f64,
    i: f64,
    off_at_s: Option<f64>,
    trip_at_s: Option<f64>,
    trip_current_a: f64,
    over_at_s: Option<f64>,
    zero_at_s: Option<f64>,
    totals: Totals,
    peaks: Peaks,
    record: Option<Vec<Sample>>,
    last_gate: f64,
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
        let bad = |name, value, requirement| Err(ParamError { name, value, requirement });
        if !(state.rest_voltage_v.is_finite() && state.rest_voltage_v > 0.0) {
            return bad("battery.rest_voltage_v", state.rest_voltage_v, "finite and > 0");
        }
        if !(state.r_internal_ohm.is_finite() && state.r_internal_ohm >= 0.0) {
            return bad("battery.r_internal_ohm", state.r_internal_ohm, "finite and >= 0");
        }
        let temp = state.temperature_c;
        let r_on = params.switch.on_resistance_ohm(variant);
        let r_fixed = params.battery_line.resistance_ohm(temp) + params.switch.series_resistance_mohm * 1e-3;
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
        let i0 = -state.current_a;
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
            t_s: 0.0,
            i: i0,
            off_at_s: None,
            trip_at_s: None,
            trip_current_a: 0.0,
            over_at_s: None,
            zero_at_s: None,
            totals: Totals::default(),
            peaks: Peaks::default(),
            record: record.then(Vec::new),
            last_gate: f64::NAN,
        };
        c.observe(1.0);
        Ok(c)
    }

    /// Applies `event` now: a fault changes the loop, `switch_open` starts the
    /// gate turn-off.
    pub fn apply(&mut self, event: &EventParams) {
        self.over_at_s = (self.i.abs() > self.continuous_a).then_some(self.t_s);
        match event.kind {
            EventKind::ShortCircuit => self.short_circuit(event.fault_resistance_mohm * 1e-3, event.position),
            EventKind::SwitchOpen => self.command_off(),
        }
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
    }

    /// Advances to `t_end_s` (no-op if already there).
    pub fn advance_to(&mut self, t_end_s: f64) {
        while self.t_s < t_end_s {
            if self.comparator_armed() && self.i.abs() >= self.threshold_a {
                self.trip();
            }
            let (g, t_gate) = self.conductance(self.t_s);
            let t_seg_end = t_end_s.min(t_gate).min(self.t_s + self.max_step_s);
            self.segment(g, t_seg_end);
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

    /// When the current first reached zero with the switch off (s).
    pub fn zero_at_s(&self) -> Option<f64> {
        self.zero_at_s
    }

    /// Switch fully off and no current: nothing more happens.
    pub fn is_settled(&self) -> bool {
        self.zero_at_s.is_some() && self.i == 0.0
    }

    /// Energies and integrals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Peaks so far.
    pub fn peaks(&self) -> &Peaks {
        &self.peaks
    }

    /// Magnetic energy in the loop now, ½·L·i² (J).
    pub fn magnetic_energy_j(&self) -> f64 {
        0.5 * self.l * self.i * self.i
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
        // The tiny bias puts a time that sits on a sub-step boundary into the next sub-step.
        let k = ((t - t0) / h + 1e-9).floor();
        if k >= f64::from(n) {
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
        if g == 0.0 && i == 0.0 {
            return (self.source_v(), 0.0, 0.0);
        }
        match self.region(i, g) {
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
        if let Some(rec) = self.record.as_mut() {
            rec.push(Sample {
                t_s: self.t_s,
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
    /// when the current reaches a boundary, the threshold or zero.
    fn segment(&mut self, g: f64, t_seg_end: f64) {
        let gate = g / self.g_on;
        if gate != self.last_gate {
            self.observe(gate);
        }
        let e = self.source_v();
        let i0 = self.i;
        if g == 0.0 && i0 == 0.0 && e.abs() <= self.v_br {
            // Blocked: nothing flows.
            self.t_s = t_seg_end;
            self.observe(gate);
            return;
        }
        let region = self.region(i0, g);
        let (slope, offset) = self.linear_v(region, g);
        let r_tot = self.r + slope;
        let tau = self.l / r_tot;
        let i_inf = (e - offset) / r_tot;
        let mut h = t_seg_end - self.t_s;
        let mut hit: Option<(f64, Hit)> = None;
        let mut consider = |x: f64, kind: Hit| {
            if (x - i0) * (i_inf - x) > 0.0 {
                let th = tau * ((i0 - i_inf) / (x - i_inf)).ln();
                if th < h {
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

        // ∫1, ∫i, ∫i² over [0, h] of i(t) = a + b·e^(−t/τ)
        let x = h / tau;
        let em1 = -(-x).exp_m1();
        let em2 = -(-2.0 * x).exp_m1();
        let (a, b) = (i_inf, i0 - i_inf);
        let s1 = a * h + b * tau * em1;
        let s2 = a * a * h + 2.0 * a * b * tau * em1 + b * b * 0.5 * tau * em2;
        self.integrate(region, g, h, s1, s2);

        match hit {
            Some((x, kind)) => {
                self.t_s += h;
                self.i = x;
                match kind {
                    Hit::Threshold => self.trip(),
                    Hit::Overcurrent => self.over_at_s = Some(self.t_s),
                    Hit::Zero if e.abs() <= self.v_br => {
                        self.i = 0.0;
                        self.zero_at_s.get_or_insert(self.t_s);
                    }
                    Hit::Zero | Hit::Boundary => {}
                }
            }
            None => {
                self.t_s = t_seg_end;
                self.i = a + b * (1.0 - em1);
            }
        }
        self.observe(gate);
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
