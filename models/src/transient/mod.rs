//! µs-resolved transients: short circuits, turn-off surges and load dumps.
//!
//! One loop — battery (rest voltage, R0, pack inductance), battery line,
//! the board (shunt, main switch with the surge arrester across it), load
//! line, and a fault, the load or a charging source — integrated exactly
//! between breakpoints (see [`circuit`]). The hardware comparator turns the
//! switch off; the line inductance then drives the current into the
//! arrester until it is zero. In a load dump the switch opens while a
//! charging source pushes current into the battery, and the source's surge
//! drives the arrester for as long as it lasts ([`source`]).
//!
//! | module | model |
//! |---|---|
//! | [`line`] | cable run: R from ρ·ℓ/A, L of a two-wire line |
//! | [`battery`] | OCV/R0 from SOC and temperature; the [`BatteryState`] the engine passes |
//! | [`switch`] | MOSFET switch (R_on, turn-off ramp, V_DS rating) and the short-circuit comparator |
//! | [`arrester`] | TVS: breakdown, dynamic resistance, Pppm and its derating with pulse length |
//! | [`source`] | the load-dump generator (ISO 16750-2): U_s, R_i, t_r, t_d, U_A, suppression U_s* |
//! | `powerpro` | the PowerPro's fuse ([`crate::companions::fuse`]), contacts and secondary protection in series (`[powerpro]`) |
//! | [`circuit`] | the loop and its exact integrator; the engine's stepping API |
//!
//! [`simulate`] runs one event from a battery state and returns its
//! [`Metrics`], the [`Check`]s against the datasheet and the [`EndState`]
//! (current after the event, latches, charge and energies) the engine
//! continues from. [`EventRun`] is the same run in pieces, for an engine
//! that steps the event alongside its slower models. Everything is deterministic: no random effect enters a
//! transient (a study varies parameters itself, seeded, if it wants spread).
//!
//! Sign: the loop works with the discharge current (`> 0`, battery →
//! fault); at the interfaces ([`BatteryState::current_a`],
//! [`EndState::current_a`], [`EndState::charge_c`]) the crate's convention
//! holds, `> 0` charges the battery.

pub mod arrester;
pub mod battery;
pub mod circuit;
pub mod line;
mod powerpro;
pub mod source;
pub mod switch;

use serde::{Deserialize, Serialize};

use crate::companions::powerpro::PowerProParams;
use crate::error::{self, ParamError};
use crate::variant::{self, Variant};

use crate::companions::fuse::Fuse;
pub use arrester::ArresterParams;
pub use battery::{BatteryParams, BatteryState};
pub use circuit::{Circuit, EndState, Peaks, Sample, Totals};
pub use line::LineParams;
pub use source::LoadDumpParams;
pub use switch::{ComparatorParams, SwitchParams};

/// Everything about the circuit of a what-if event except the variant and
/// the event itself. Every field has a datasheet or documented default;
/// variant-dependent figures are `Option`s that default to the variant's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransientParams {
    /// The pack (standalone studies; the engine passes its own [`BatteryState`]).
    pub battery: BatteryParams,
    /// Pack poles to the board's input.
    pub battery_line: LineParams,
    /// Board's output to the load (and the fault).
    pub load_line: LineParams,
    pub switch: SwitchParams,
    pub comparator: ComparatorParams,
    pub arrester: ArresterParams,
    /// The charging source of a `load_dump` event.
    pub load_dump: LoadDumpParams,
    pub solver: SolverParams,
    pub limits: LimitParams,
    /// The PowerPro (fuse, main switch, secondary protection) in series on the
    /// battery side (`[powerpro]`, as in a scenario); none without the section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub powerpro: Option<PowerProParams>,
}

impl Default for TransientParams {
    fn default() -> Self {
        Self {
            battery: BatteryParams::default(),
            battery_line: LineParams::battery_side(),
            load_line: LineParams::default(),
            switch: SwitchParams::default(),
            comparator: ComparatorParams::default(),
            arrester: ArresterParams::default(),
            load_dump: LoadDumpParams::default(),
            solver: SolverParams::default(),
            limits: LimitParams::default(),
            powerpro: None,
        }
    }
}

impl TransientParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.battery.validate()?;
        self.battery_line.validate()?;
        self.load_line.validate()?;
        self.switch.validate()?;
        self.comparator.validate()?;
        self.arrester.validate()?;
        self.load_dump.validate()?;
        self.solver.validate()?;
        self.limits.validate()?;
        self.powerpro.as_ref().map_or(Ok(()), PowerProParams::validate)
    }
}

/// The default bound on how long an event is followed (µs): 1 s. Every
/// realistic event ends well inside it by its physical criterion: the
/// longest ISO 16750-2 load dump (t_d = 400 ms), a 20 mH load line opened
/// at 250 A on 48 V (current zero after ≈ 0.16 s), a loop with L/R up to
/// 140 ms settling to 0.1 % (7 τ ≈ 1 s). Ordinary events end in µs to ms
/// and cost nothing more for it (the integrator steps from breakpoint to
/// breakpoint). Raise it with `solver.window_us`.
pub const DEFAULT_WINDOW_US: f64 = 1e6;

/// Step control and how long an event is followed.
///
/// The loop is integrated exactly from breakpoint to breakpoint (see
/// [`circuit`]); the steps' length costs no accuracy. What is approximated,
/// and set here: the gate ramp (`ramp_steps`), the load-dump source
/// (`source_step_v`), and the recorded waveform's resolution (`max_step_us`,
/// `record_tolerance_a`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SolverParams {
    /// Resolution of the recorded waveform (µs): a sample on every multiple
    /// of it while the current settles (plus one at every breakpoint).
    pub max_step_us: f64,
    /// A current within this of its value at the next breakpoint is flat for
    /// the record (A): no more grid samples until then. 0 records every grid point.
    pub record_tolerance_a: f64,
    /// Sub-steps over the gate's turn-off ramp (G held at each one's mid value).
    pub ramp_steps: u32,
    /// The load-dump source is held over sub-steps in which it changes by at most this (V).
    pub source_step_v: f64,
    /// Longest an event is followed (µs). An event is followed until it has
    /// ended by a physical criterion ([`Circuit::is_settled`]); one that has
    /// not ended when this bound is reached is INCOMPLETE (the `complete`
    /// check fails) and its figures are bounds ([`Metrics::bounds`]).
    pub window_us: f64,
    /// A loop that keeps its switch on settles when its current is within
    /// this share of its steady state (%, at least 1 mA), judged on the
    /// exact exponential of the loop's own time constant.
    pub settle_pct: f64,
    /// Followed on after the current reached zero (µs), for the record.
    pub tail_us: f64,
}

impl Default for SolverParams {
    fn default() -> Self {
        Self {
            max_step_us: 1.0,
            record_tolerance_a: 0.01,
            ramp_steps: 40,
            source_step_v: 0.1,
            window_us: DEFAULT_WINDOW_US,
            settle_pct: 0.1,
            tail_us: 20.0,
        }
    }
}

impl SolverParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !(self.max_step_us.is_finite() && self.max_step_us > 0.0 && self.max_step_us <= 1.0) {
            return Err(ParamError {
                name: "solver.max_step_us",
                value: self.max_step_us,
                requirement: "within (0, 1]",
            });
        }
        if self.ramp_steps == 0 {
            return Err(ParamError { name: "solver.ramp_steps", value: 0.0, requirement: ">= 1" });
        }
        error::non_negative("solver.record_tolerance_a", self.record_tolerance_a)?;
        error::positive("solver.source_step_v", self.source_step_v)?;
        error::positive("solver.window_us", self.window_us)?;
        if !(self.settle_pct.is_finite() && self.settle_pct > 0.0 && self.settle_pct < 100.0) {
            return Err(ParamError {
                name: "solver.settle_pct",
                value: self.settle_pct,
                requirement: "within (0, 100)",
            });
        }
        error::non_negative("solver.tail_us", self.tail_us)
    }
}

/// The datasheet limits an event is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitParams {
    /// Max peak current (A): datasheet 1300 A.
    pub peak_current_a: f64,
    /// The current must be back to zero this soon after the fault (µs): datasheet 100 µs.
    pub shutdown_us: f64,
    /// A current that never exceeds this needs no hardware shutdown (A):
    /// datasheet max continuous current, 250 A.
    pub continuous_current_a: f64,
}

impl Default for LimitParams {
    fn default() -> Self {
        Self {
            peak_current_a: variant::MAX_PEAK_CURRENT_A,
            shutdown_us: variant::MAX_PEAK_DURATION_S * 1e6,
            continuous_current_a: variant::MAX_CONTINUOUS_CURRENT_A,
        }
    }
}

impl LimitParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("limits.peak_current_a", self.peak_current_a)?;
        error::positive("limits.shutdown_us", self.shutdown_us)?;
        error::positive("limits.continuous_current_a", self.continuous_current_a)
    }
}

/// What happens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A short across the load line; the comparator has to clear it.
    #[default]
    ShortCircuit,
    /// The switch is opened under load (by the firmware): the turn-off kick alone.
    #[serde(alias = "switch_open_under_load")]
    SwitchOpen,
    /// The switch opens while a charging source (alternator, charger) pushes
    /// current into the battery: the turn-off kick, then the source's surge
    /// (ISO 16750-2 load dump, `[load_dump]`) into the arrester.
    LoadDump,
}

/// The event of a what-if case.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventParams {
    pub kind: EventKind,
    /// When, after the start of the record (µs).
    pub at_us: f64,
    /// Resistance of the short (mΩ): 0 is a bolted short.
    pub fault_resistance_mohm: f64,
    /// Where along the load line: 0 at the board's output terminals, 1 at the far end.
    pub position: f64,
}

impl Default for EventParams {
    /// A bolted short at the far end of the load line, 10 µs into the record.
    fn default() -> Self {
        Self { kind: EventKind::ShortCircuit, at_us: 10.0, fault_resistance_mohm: 0.0, position: 1.0 }
    }
}

impl EventParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::non_negative("event.at_us", self.at_us)?;
        error::non_negative("event.fault_resistance_mohm", self.fault_resistance_mohm)?;
        if !(0.0..=1.0).contains(&self.position) {
            return Err(ParamError { name: "event.position", value: self.position, requirement: "within 0..=1" });
        }
        Ok(())
    }
}

/// The figures of one event. Times are from the event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Source voltage of the loop after the event (V).
    pub source_v: f64,
    /// Loop inductance after the event (µH).
    pub loop_inductance_uh: f64,
    /// Loop resistance after the event with the switch on (mΩ).
    pub loop_resistance_mohm: f64,
    /// Current the loop would settle at without a shutdown (A).
    pub prospective_current_a: f64,
    /// Largest |current| (A) and when (µs).
    pub peak_current_a: f64,
    pub peak_current_us: f64,
    /// Comparator trip (µs), if it tripped.
    pub trip_us: Option<f64>,
    /// Switch fully off (end of the gate ramp) (µs), if it was turned off.
    pub switch_off_us: Option<f64>,
    /// How long the switch carried more than the continuous rating before
    /// it was off (µs); `None` if it never did. Without a shutdown: until
    /// the end of the window.
    pub overcurrent_us: Option<f64>,
    /// Current back to zero with the switch off (µs), if within the window.
    pub time_to_zero_us: Option<f64>,
    /// |current| at the end of the record (A).
    pub final_current_a: f64,
    /// Energy into the arrester (J).
    pub arrester_energy_j: f64,
    /// Peak power into the arrester (W).
    pub arrester_peak_power_w: f64,
    /// Rectangular-equivalent duration of the arrester pulse, E/P_peak (µs).
    pub arrester_pulse_us: f64,
    /// Peak power the arrester is rated for at that duration (W).
    pub arrester_allowed_power_w: f64,
    /// 100·(1 − P_peak/P_allowed) (%); 100 when it never conducted.
    pub arrester_margin_pct: f64,
    /// Largest |voltage across the switch| (V).
    pub peak_switch_voltage_v: f64,
    /// The switch's V_DS rating (V).
    pub switch_voltage_rating_v: f64,
    /// ∫ i² dt through the switch's channel (A²s).
    pub switch_i2t_a2s: f64,
    /// Energy into the switch's channel (J).
    pub switch_energy_j: f64,
    /// Magnetic energy at the trip, ½·L·i² (J).
    pub magnetic_energy_at_trip_j: Option<f64>,
    /// Highest voltage of the load-side bus (the board's output terminal) (V):
    /// what the loads see, battery plus clamp in a load dump.
    pub peak_bus_voltage_v: f64,
    /// The event ended by its physical criterion ([`Circuit::is_settled`])
    /// before the window's bound; `false`: INCOMPLETE, see [`Self::bounds`].
    pub complete: bool,
    /// How long after the event the circuit was followed (µs).
    pub followed_us: f64,
    // The PowerPro's figures are written only with one in the loop (other outputs keep their bytes).
    /// With a PowerPro (`[powerpro]`): the fuse melted (µs), cleared (µs) and
    /// the ∫i² dt through it over the event (A²s); its melting integral I²t_pa (A²s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_melt_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_cleared_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_i2t_a2s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_pre_arcing_i2t_a2s: Option<f64>,
    /// The fuse's own curve at the prospective current (closed form, constant
    /// current from a cold fuse): clearing time (µs) and let-through I²t (A²s);
    /// `None` below its minimum fusing current.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_curve_cleared_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuse_curve_i2t_a2s: Option<f64>,
    /// The PowerPro's secondary protection tripped (µs) and its contacts parted (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powerpro_trip_us: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powerpro_open_us: Option<f64>,
    /// The PowerPro opened the loop for good: fuse cleared or contacts' arc out (µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powerpro_interrupted_us: Option<f64>,
    /// Energy into the PowerPro's arcs (fuse, contacts) (J) and their largest voltage (V).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub arc_energy_j: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub peak_arc_voltage_v: f64,
}

/// A figure that is 0 without a PowerPro is not serialized (outputs without one keep their bytes).
pub(crate) fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// What a figure of an event is: final, or a bound because the event had not
/// ended when it stopped being followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    Exact,
    /// The true figure is at least this (peaks, energies, times still running).
    Lower,
    /// The true figure is at most this (the arrester's margin only falls).
    Upper,
}

/// The figures that only grow while an event runs (lower bounds of an incomplete event).
pub const GROWING_FIGURES: [&str; 12] = [
    "peak_current_a",
    "time_to_zero_us",
    "arrester_energy_j",
    "arrester_peak_power_w",
    "peak_switch_voltage_v",
    "peak_bus_voltage_v",
    "switch_i2t_a2s",
    "switch_energy_j",
    "overcurrent_us",
    "fuse_i2t_a2s",
    "arc_energy_j",
    "peak_arc_voltage_v",
];

impl Metrics {
    /// What `figure` (a field name) is: [`Bound::Exact`] for a complete event;
    /// for an incomplete one the growing figures ([`GROWING_FIGURES`]) are
    /// lower bounds (`overcurrent_us` only while the switch was not yet off),
    /// `arrester_margin_pct` an upper bound (peak power and energy only grow,
    /// and the margin falls with both: `P/P_allowed ∝ √(P·E)`).
    pub fn bound(&self, figure: &str) -> Bound {
        if self.complete {
            return Bound::Exact;
        }
        match figure {
            "overcurrent_us" if self.switch_off_us.is_some_and(|t| t <= self.followed_us) => Bound::Exact,
            "arrester_margin_pct" => Bound::Upper,
            f if GROWING_FIGURES.contains(&f) => Bound::Lower,
            _ => Bound::Exact,
        }
    }

    /// The figures that are bounds, with their kind (empty for a complete event).
    pub fn bounds(&self) -> Vec<(&'static str, Bound)> {
        GROWING_FIGURES
            .iter()
            .chain(&["arrester_margin_pct"])
            .map(|f| (*f, self.bound(f)))
            .filter(|(_, b)| *b != Bound::Exact)
            .collect()
    }
}

/// The verdict on one event (or a study's case).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// Ended within its window; every check passed.
    Pass,
    /// A check failed on figures that decide it (final, or a bound already past the limit).
    Fail,
    /// Not ended within its window and no check decided against it: it cannot be judged.
    Incomplete,
}

impl Verdict {
    /// From the checks: a decided failure is FAIL; any other failed check
    /// (undecided, or `complete`) INCOMPLETE; else PASS.
    pub fn of(checks: &[Check]) -> Verdict {
        if checks.iter().any(|c| !c.passed && c.decided && c.name != COMPLETE_CHECK) {
            Verdict::Fail
        } else if checks.iter().any(|c| !c.passed) {
            Verdict::Incomplete
        } else {
            Verdict::Pass
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Incomplete => "INCOMPLETE",
        }
    }
}

/// A pass/fail against a datasheet figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// `peak_current`, `shutdown`, `arrester`, `switch_voltage`.
    pub name: String,
    pub passed: bool,
    /// The value checked and its limit, in `unit`.
    pub value: f64,
    pub limit: f64,
    pub unit: String,
    /// Why, in a sentence with the figures.
    pub reason: String,
    /// The figure decides the check: it is final, or a bound already on the
    /// failing side of the limit. An undecided check does not pass.
    #[serde(default = "decided_by_default")]
    pub decided: bool,
}

fn decided_by_default() -> bool {
    true
}

/// Names of the checks, in report order.
pub const CHECK_NAMES: [&str; 5] = ["peak_current", "shutdown", "arrester", "switch_voltage", COMPLETE_CHECK];

/// The check of the PowerPro's fuse (only with `[powerpro]`): it survives the
/// event (selectivity: the SmartPro interrupts before the fuse melts).
pub const FUSE_CHECK: &str = "fuse";

/// The check that the event ended within its window (its verdict otherwise INCOMPLETE).
pub const COMPLETE_CHECK: &str = "complete";

/// Everything one event produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub metrics: Metrics,
    pub checks: Vec<Check>,
    pub end: EndState,
    pub totals: Totals,
    /// The waveform, when asked for; `t_s` is from the event.
    pub samples: Vec<Sample>,
}

impl Outcome {
    /// Every check passed (the event ended in its window and nothing failed).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    /// PASS, FAIL or INCOMPLETE.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.checks)
    }
}

/// Runs one event: the circuit before it from `state` for `event.at_us`,
/// the event, then until it has ended ([`Circuit::is_settled`]: the current
/// zero with the switch off and no source left to drive the arrester, plus
/// `tail_us` for the record; or a switch that stays on settled on its steady
/// state) or `window_us` after the event, whichever comes first. An event
/// that has not ended by then is INCOMPLETE ([`Metrics::complete`]).
pub fn simulate(
    params: &TransientParams,
    variant: Variant,
    state: &BatteryState,
    event: &EventParams,
    record: bool,
) -> Result<Outcome, ParamError> {
    let mut run = EventRun::start(params, variant, state, event, record)?;
    let t_window = run.window_end_s();
    let c = run.circuit_mut();
    if c.advance_until_settled(t_window) {
        if let Some(t0) = c.zero_at_s() {
            c.advance_to((t0 + params.solver.tail_us * 1e-6).min(t_window).max(c.t_s()));
        }
    }
    Ok(run.finish())
}

/// One event stepped in pieces: [`Self::start`] builds the circuit, runs it
/// to the event (`event.at_us`) and applies it; the caller advances
/// [`Self::circuit_mut`] as it likes (e.g. one ADC period at a time, taking
/// the charge and energies of each); [`Self::finish`] gives the [`Outcome`].
/// Times are the circuit's (seconds since it was built).
#[derive(Clone, Debug)]
pub struct EventRun {
    circuit: Circuit,
    params: TransientParams,
    variant: Variant,
    /// When the event was applied (s).
    t_event_s: f64,
    /// Loop as the event left it: L (H), R outside the switch (Ω).
    loop_l_h: f64,
    loop_r_ohm: f64,
    /// Peaks before the event.
    pre_peaks: Peaks,
    /// ∫i² dt through the fuse and the arcs' energy before the event (A²s, J).
    pre_fuse_i2t: f64,
    pre_arc_j: f64,
}

impl EventRun {
    /// Builds the circuit from `state`, advances to the event and applies it.
    pub fn start(
        params: &TransientParams,
        variant: Variant,
        state: &BatteryState,
        event: &EventParams,
        record: bool,
    ) -> Result<EventRun, ParamError> {
        event.validate()?;
        let mut c = Circuit::new(params, variant, state, record)?;
        let t_event_s = event.at_us * 1e-6;
        c.advance_to(t_event_s);
        c.set_record_origin(t_event_s);
        let pre_peaks = *c.peaks();
        c.apply(event);
        let (loop_l_h, loop_r_ohm) = c.loop_l_r();
        let pre_fuse_i2t = c.fuse().map_or(0.0, Fuse::let_through_i2t_a2s);
        let pre_arc_j = c.totals().arc_j;
        Ok(EventRun {
            circuit: c,
            params: *params,
            variant,
            t_event_s,
            loop_l_h,
            loop_r_ohm,
            pre_peaks,
            pre_fuse_i2t,
            pre_arc_j,
        })
    }

    pub fn circuit(&self) -> &Circuit {
        &self.circuit
    }

    pub fn circuit_mut(&mut self) -> &mut Circuit {
        &mut self.circuit
    }

    /// The end of the window the event is followed in (s): `window_us` after the event.
    pub fn window_end_s(&self) -> f64 {
        self.t_event_s + self.params.solver.window_us * 1e-6
    }

    /// Nothing more happens ([`Circuit::is_settled`]) or the window is over.
    pub fn is_done(&self) -> bool {
        self.circuit.is_settled() || self.circuit.t_s() >= self.window_end_s()
    }

    /// The event's figures and checks, from the circuit as it is now.
    pub fn finish(self) -> Outcome {
        let EventRun {
            mut circuit,
            params,
            variant,
            t_event_s,
            loop_l_h,
            loop_r_ohm,
            pre_peaks,
            pre_fuse_i2t,
            pre_arc_j,
        } = self;
        let c = &mut circuit;
        let r_on = params.switch.on_resistance_ohm(variant);
        let source_v = c.final_source_v();
        let peaks = *c.peaks();
        let totals = *c.totals();
        let since = |t: f64| (t - t_event_s) * 1e6;
        let complete = c.is_settled();
        let followed_us = since(c.t_s());
        let pulse_s = if peaks.arrester_power_w > 0.0 { totals.arrester_j / peaks.arrester_power_w } else { 0.0 };
        let allowed = params.arrester.allowed_peak_power_w(variant, pulse_s);
        let metrics = Metrics {
            source_v,
            loop_inductance_uh: loop_l_h * 1e6,
            loop_resistance_mohm: (loop_r_ohm + r_on) * 1e3,
            prospective_current_a: source_v / (loop_r_ohm + r_on),
            peak_current_a: peaks.current_a,
            peak_current_us: if peaks.current_a > pre_peaks.current_a { since(peaks.current_t_s) } else { 0.0 },
            trip_us: c.trip_at_s().map(since),
            switch_off_us: c.switch_off_at_s().map(since),
            overcurrent_us: c.overcurrent_at_s().map(|t0| {
                c.switch_off_at_s().or(c.powerpro_interrupted_at_s()).unwrap_or(c.t_s()).max(t0) * 1e6 - t0 * 1e6
            }),
            // Incomplete: the zero is not before the end of what was followed (a lower bound).
            time_to_zero_us: c.zero_at_s().map(since).or((!complete).then_some(followed_us)),
            final_current_a: c.discharge_current_a().abs(),
            arrester_energy_j: totals.arrester_j,
            arrester_peak_power_w: peaks.arrester_power_w,
            arrester_pulse_us: pulse_s * 1e6,
            arrester_allowed_power_w: allowed,
            arrester_margin_pct: if peaks.arrester_power_w > 0.0 {
                100.0 * (1.0 - peaks.arrester_power_w / allowed)
            } else {
                100.0
            },
            peak_switch_voltage_v: peaks.switch_voltage_v,
            switch_voltage_rating_v: params.switch.v_ds_rating_v(variant),
            switch_i2t_a2s: totals.switch_i2t_a2s,
            switch_energy_j: totals.switch_j,
            magnetic_energy_at_trip_j: c.trip_current_a().map(|i| 0.5 * loop_l_h * i * i),
            peak_bus_voltage_v: peaks.bus_voltage_v,
            complete,
            followed_us,
            fuse_melt_us: c.fuse_melted_at().map(|(t, _)| since(t)),
            fuse_cleared_us: c.fuse_cleared_at_s().map(since),
            fuse_i2t_a2s: c.fuse().map(|f| f.let_through_i2t_a2s() - pre_fuse_i2t),
            fuse_pre_arcing_i2t_a2s: params.powerpro.map(|p| p.fuse.pre_arcing_i2t_a2s),
            fuse_curve_cleared_us: None,
            fuse_curve_i2t_a2s: None,
            powerpro_trip_us: c.powerpro_trip().map(|(t, _)| since(t)),
            powerpro_open_us: c.powerpro_open_at_s().map(since),
            powerpro_interrupted_us: c.powerpro_interrupted_at_s().map(since),
            arc_energy_j: totals.arc_j - pre_arc_j,
            peak_arc_voltage_v: peaks.arc_voltage_v,
        };
        let mut metrics = metrics;
        if let Some(p) = &params.powerpro {
            let i = metrics.prospective_current_a;
            metrics.fuse_curve_cleared_us = p.fuse.clearing_time_s(i).map(|t| t * 1e6);
            metrics.fuse_curve_i2t_a2s = p.fuse.clearing_i2t_a2s(i);
        }
        let mut checks = check(&metrics, &params.limits, params.arrester.breakdown_v(variant));
        if params.powerpro.is_some() {
            checks.push(fuse_check(&metrics));
        }
        checks.push(completeness(c, &metrics, &params.solver));
        let samples = c.take_samples();
        Outcome { metrics, checks, end: c.end_state(), totals, samples }
    }
}

/// The `complete` check: the event ended within its window, or what was
/// still happening when the window's bound was reached.
fn completeness(c: &Circuit, m: &Metrics, solver: &SolverParams) -> Check {
    let ms = m.followed_us * 1e-3;
    let reason = if m.complete {
        format!("ended {ms:.3} ms after the event (window {:.0} ms)", solver.window_us * 1e-3)
    } else {
        let mut what = Vec::new();
        let i = c.discharge_current_a();
        let i_tvs = c.arrester_current_a();
        if let Some(rate) = c.arc_rate_a_per_s().filter(|_| i != 0.0) {
            what.push(format!(
                "the PowerPro's {} still arcing: {:.1} A at {ms:.3} ms, zero {:.3} ms later; the fuse's I²t so far {:.4e} A²s is a lower bound",
                if c.fuse().is_some_and(|f| f.state() == crate::companions::FuseState::Arcing) { "fuse" } else { "contacts" },
                i.abs(),
                i.abs() / rate * 1e3,
                m.fuse_i2t_a2s.unwrap_or(0.0)
            ));
        } else if i_tvs != 0.0 {
            what.push(format!(
                "arrester still conducting {:.1} A ({:.1} V across the switch) at {ms:.1} ms; its energy so far {:.3} J is a lower bound",
                i_tvs.abs(),
                c.switch_voltage_v().abs(),
                m.arrester_energy_j
            ));
        } else if i != 0.0 {
            let (i_inf, tau) = c.heading();
            what.push(format!(
                "current still {} through the switch: {:.1} A at {ms:.1} ms, heading for {:.1} A with τ = {:.3} ms",
                if (i_inf - i) * i.signum() > 0.0 { "rising" } else { "falling" },
                i.abs(),
                i_inf.abs(),
                tau * 1e3
            ));
        }
        if let Some(f) = c.fuse().filter(|f| f.state() == crate::companions::FuseState::Intact && i != 0.0) {
            let p = f.params();
            let (i_inf, _) = c.heading();
            let tau = p.tau_s();
            let w_inf = tau * i_inf * i_inf;
            let pct = 100.0 * f.heat_a2s() / p.pre_arcing_i2t_a2s;
            what.push(if w_inf > p.pre_arcing_i2t_a2s {
                // W(t) = W∞ + (W − W∞)·e^(−t/τ) reaches I²t_pa after t = τ·ln((W∞ − W)/(W∞ − I²t_pa))
                let t = tau * ((w_inf - f.heat_a2s()) / (w_inf - p.pre_arcing_i2t_a2s)).ln();
                format!(
                    "the fuse heating at {:.1} A: {pct:.1} % of its melting integral, it melts about {:.3} s later",
                    i.abs(),
                    t
                )
            } else {
                format!("the fuse carrying {:.1} A at {pct:.1} % of its melting integral (it will not melt)", i.abs())
            });
        }
        if c.powerpro_next_change_s().is_finite() {
            what.push(format!(
                "the PowerPro's secondary protection acts {:.3} ms later ({})",
                (c.powerpro_next_change_s() - c.t_s()) * 1e3,
                if c.powerpro_trip().is_some() { "its contacts part" } else { "a trip delay ends" }
            ));
        }
        if let Some(p) = c.pulse().filter(|p| c.t_s() < p.end_s()) {
            what.push(format!(
                "the load-dump pulse still at {:.1} V (back at U_A {:.0} V only {:.1} ms after the event)",
                p.voltage_v(c.t_s()),
                p.supply_v(),
                (p.end_s() - c.t_s()) * 1e3 + ms
            ));
        }
        if what.is_empty() {
            what.push(format!("not settled at {ms:.1} ms"));
        }
        format!(
            "INCOMPLETE: {}; every peak, energy and time is a lower bound (raise solver.window_us, now {:.0} µs)",
            what.join("; "),
            solver.window_us
        )
    };
    Check {
        name: COMPLETE_CHECK.to_owned(),
        passed: m.complete,
        value: m.followed_us,
        limit: solver.window_us,
        unit: "µs".to_owned(),
        reason,
        decided: true,
    }
}

/// The `fuse` check (with a PowerPro): the fuse must survive what the board
/// interrupts — its let-through I²t below its melting integral. A fuse that
/// melted fails it (decided: I²t only grows), with when it cleared and its curve.
pub fn fuse_check(m: &Metrics) -> Check {
    let value = m.fuse_i2t_a2s.unwrap_or(0.0);
    let limit = m.fuse_pre_arcing_i2t_a2s.unwrap_or(f64::INFINITY);
    let curve = match (m.fuse_curve_cleared_us, m.fuse_curve_i2t_a2s) {
        (Some(t), Some(x)) => format!(
            "its curve at the prospective {:.0} A: cleared {:.3} ms, {:.4e} A²s",
            m.prospective_current_a,
            t * 1e-3,
            x
        ),
        _ => format!("the prospective {:.0} A is below its minimum fusing current", m.prospective_current_a),
    };
    let (passed, decided, reason) = match (m.fuse_melt_us, m.fuse_cleared_us) {
        (Some(t_m), Some(t_c)) => (
            false,
            true,
            format!(
                "the fuse melted {:.3} ms and cleared {:.3} ms after the event, let-through {value:.4e} A²s \
                 ({curve}): the PowerPro, not the SmartPro, interrupted the fault",
                t_m * 1e-3,
                t_c * 1e-3
            ),
        ),
        (Some(t_m), None) => (
            false,
            true,
            format!(
                "the fuse melted {:.3} ms after the event and had not cleared when the event stopped being \
                 followed; let-through ≥ {value:.4e} A²s ({curve})",
                t_m * 1e-3
            ),
        ),
        _ => (
            m.complete,
            m.complete,
            format!(
                "the fuse {}: let-through {value:.4e} A²s, {:.2} % of its melting integral {limit:.4e} A²s{}",
                if m.complete { "intact" } else { "intact so far" },
                100.0 * value / limit,
                if m.complete { "" } else { "; undecided, the event had not ended" }
            ),
        ),
    };
    Check { name: FUSE_CHECK.to_owned(), passed, value, limit, unit: "A²s".to_owned(), reason, decided }
}

/// The datasheet checks of one event's metrics. For an incomplete event
/// ([`Metrics::complete`] false) a check decides only on the failing side of
/// a bound: a peak already above its limit, a margin already negative, an
/// overcurrent already too long fail; a figure still within its limit is
/// undecided (`decided` false) and does not pass.
pub fn check(m: &Metrics, limits: &LimitParams, arrester_breakdown_v: f64) -> Vec<Check> {
    let mk = |name: &str, ok: bool, bound: Bound, value, limit, unit: &str, reason: String| {
        // A lower bound decides only a failure of a `≤ limit` check (an upper bound the `≥` margin).
        let decided = bound == Bound::Exact || !ok;
        Check {
            name: name.to_owned(),
            passed: ok && decided,
            value,
            limit,
            unit: unit.to_owned(),
            reason: if decided {
                reason
            } else {
                format!("undecided: {reason}, but the event had not ended: the figure is a bound, not final")
            },
            decided,
        }
    };
    let peak_ok = m.peak_current_a <= limits.peak_current_a;
    let peak = mk(
        "peak_current",
        peak_ok,
        m.bound("peak_current_a"),
        m.peak_current_a,
        limits.peak_current_a,
        "A",
        format!(
            "peak {:.0} A at {:.1} µs {} {:.0} A",
            m.peak_current_a,
            m.peak_current_us,
            if peak_ok { "≤" } else { ">" },
            limits.peak_current_a
        ),
    );
    let zero = match (m.time_to_zero_us, m.complete) {
        (Some(t), true) => format!("current zero at {t:.1} µs"),
        (Some(t), false) => format!("no current zero in the {t:.1} µs followed"),
        (None, _) => "no current zero".to_owned(),
    };
    let switch_off_by_end = m.switch_off_us.is_some_and(|t| t <= m.followed_us);
    let shutdown = match (m.overcurrent_us, m.switch_off_us) {
        (None, _) => mk(
            "shutdown",
            true,
            if switch_off_by_end { Bound::Exact } else { m.bound("overcurrent_us") },
            0.0,
            limits.shutdown_us,
            "µs",
            format!(
                "never above {:.0} A continuous: no shutdown needed (peak {:.0} A)",
                limits.continuous_current_a, m.peak_current_a
            ),
        ),
        (Some(d), Some(_)) => {
            let ok = d <= limits.shutdown_us;
            mk(
                "shutdown",
                ok,
                m.bound("overcurrent_us"),
                d,
                limits.shutdown_us,
                "µs",
                format!(
                    "above {:.0} A for {d:.1} µs until the switch was off {} {:.0} µs; {zero}",
                    limits.continuous_current_a,
                    if ok { "≤" } else { ">" },
                    limits.shutdown_us
                ),
            )
        }
        (Some(d), None) => mk(
            "shutdown",
            false,
            Bound::Exact,
            d,
            limits.shutdown_us,
            "µs",
            if m.complete {
                match (m.fuse_cleared_us, m.powerpro_interrupted_us) {
                    (Some(t), _) => format!(
                        "no hardware shutdown: the comparator never tripped; the PowerPro's fuse cleared the \
                         fault {:.3} ms after it (let-through {:.4e} A²s)",
                        t * 1e-3,
                        m.fuse_i2t_a2s.unwrap_or(0.0)
                    ),
                    (None, Some(t)) => format!(
                        "no hardware shutdown: the comparator never tripped; the PowerPro's secondary protection \
                         opened its contacts and interrupted the fault {:.3} ms after it",
                        t * 1e-3
                    ),
                    (None, None) => format!(
                        "no hardware shutdown: the comparator never tripped; the current settles at {:.0} A",
                        m.final_current_a
                    ),
                }
            } else {
                format!(
                    "no hardware shutdown: the comparator never tripped in the {:.1} ms followed; above {:.0} A \
                     for at least {d:.1} µs, {:.0} A at the end and not settled",
                    m.followed_us * 1e-3,
                    limits.continuous_current_a,
                    m.final_current_a
                )
            },
        ),
    };
    let arrester = if m.source_v.abs() >= arrester_breakdown_v {
        mk(
            "arrester",
            false,
            Bound::Exact,
            m.source_v.abs(),
            arrester_breakdown_v,
            "V",
            format!(
                "the source ({:.1} V) is at or above the arrester's breakdown ({:.1} V): it conducts without end",
                m.source_v.abs(),
                arrester_breakdown_v
            ),
        )
    } else {
        mk(
            "arrester",
            m.arrester_margin_pct >= 0.0,
            m.bound("arrester_margin_pct"),
            m.arrester_peak_power_w,
            m.arrester_allowed_power_w,
            "W",
            if m.arrester_peak_power_w > 0.0 {
                format!(
                    "{:.2} J, peak {:.1} kW over {:.1} µs; rated {:.1} kW there (margin {:.0} %)",
                    m.arrester_energy_j,
                    m.arrester_peak_power_w * 1e-3,
                    m.arrester_pulse_us,
                    m.arrester_allowed_power_w * 1e-3,
                    m.arrester_margin_pct
                )
            } else {
                "the arrester never conducted".to_owned()
            },
        )
    };
    let v_ok = m.peak_switch_voltage_v <= m.switch_voltage_rating_v;
    let volt = mk(
        "switch_voltage",
        v_ok,
        m.bound("peak_switch_voltage_v"),
        m.peak_switch_voltage_v,
        m.switch_voltage_rating_v,
        "V",
        format!(
            "peak {:.1} V across the switch {} {:.0} V rating",
            m.peak_switch_voltage_v,
            if v_ok { "≤" } else { ">" },
            m.switch_voltage_rating_v
        ),
    );
    vec![peak, shutdown, arrester, volt]
}

#[cfg(test)]
mod tests;
