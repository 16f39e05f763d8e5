//! Runs one scenario to its end: trace, outcomes, expectations.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::engine::{Engine, EngineError};
use crate::stimulus::Stimulus;
use firmware_core::map::faults;
use firmware_core::settings::SocMethod;
use firmware_core::soc::SyncKind;

use crate::scenario::Scenario;

/// Header of trace.csv; one row per trace interval.
pub const TRACE_HEADER: &str = "t_s,true_current_a,true_voltage_v,true_soc_pct,true_temp_c,\
meas_current_a,meas_voltage_v,meas_temp_c,board_soc_pct,switch_on,lvp_output,ovp_output,faults";

/// Outcomes measured during a run (the values expectations check).
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    values: BTreeMap<String, f64>,
    /// Metrics that are bounds, not final (an incomplete transient event's figures).
    bounds: BTreeMap<String, models::transient::Bound>,
}

impl Outcomes {
    pub fn get(&self, m: &str) -> Option<f64> {
        self.values.get(m).copied()
    }
    /// `Some` when `m` is not final: its kind of bound (`Exact` here: not final, neither side known).
    pub fn bound(&self, m: &str) -> Option<models::transient::Bound> {
        self.bounds.get(m).copied()
    }
    fn set(&mut self, m: &str, v: f64) {
        self.values.insert(m.to_owned(), v);
    }
    fn set_once(&mut self, m: &str, v: f64) {
        if !self.values.contains_key(m) {
            self.values.insert(m.to_owned(), v);
        }
    }
    fn raise(&mut self, m: &str, v: f64) {
        let e = self.values.entry(m.to_owned()).or_insert(v);
        *e = e.max(v);
    }
    fn lower(&mut self, m: &str, v: f64) {
        let e = self.values.entry(m.to_owned()).or_insert(v);
        *e = e.min(v);
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> + '_ {
        self.values.iter().map(|(m, &v)| (m.as_str(), v))
    }
}

/// Per-tick extremes, kept in locals (no map look-ups in the hot loop).
#[derive(Debug, Clone, Copy)]
struct Extremes {
    current_error_a: f64,
    voltage_error_v: f64,
    temperature_error_c: f64,
    min_v: f64,
    max_v: f64,
    min_t: f64,
    max_t: f64,
}

/// The verdict on one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `None` when the outcome never happened (e.g. LVP never tripped).
    pub value: Option<f64>,
    pub passed: bool,
    /// Why it failed beyond the figure (a bound that does not decide, an incomplete event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Everything a run produced besides the trace.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub description: String,
    pub variant: String,
    pub seed: u64,
    pub simulated_s: f64,
    pub wall_s: f64,
    pub adc_rate_hz: u32,
    pub ticks: u64,
    pub outcomes: BTreeMap<String, f64>,
    pub expectations: Vec<Checked>,
    pub passed: bool,
}

/// Progress of a long run on a terminal: stderr, only when it is one, once
/// the run has taken [`Progress::AFTER_S`], then every [`Progress::EVERY_S`].
struct Progress {
    enabled: bool,
    started: std::time::Instant,
    next_s: f64,
    /// Ticks until the next look at the clock.
    until_check: u64,
    printed: bool,
}

impl Progress {
    const AFTER_S: f64 = 2.0;
    const EVERY_S: f64 = 0.5;
    const CHECK_TICKS: u64 = 100_000;

    fn new(started: std::time::Instant) -> Self {
        use std::io::IsTerminal;
        let enabled = std::io::stderr().is_terminal();
        Progress { enabled, started, next_s: Self::AFTER_S, until_check: Self::CHECK_TICKS, printed: false }
    }

    /// After `n` more ticks, at simulated `t_s` of `end_s`.
    #[inline]
    fn ticks(&mut self, n: u64, name: &str, t_s: f64, end_s: f64) {
        if !self.enabled {
            return;
        }
        self.until_check = self.until_check.saturating_sub(n);
        if self.until_check == 0 {
            self.until_check = Self::CHECK_TICKS;
            self.show(name, t_s, end_s);
        }
    }

    #[cold]
    fn show(&mut self, name: &str, t_s: f64, end_s: f64) {
        let wall_s = self.started.elapsed().as_secs_f64();
        if wall_s < self.next_s || t_s <= 0.0 {
            return;
        }
        self.next_s = wall_s + Self::EVERY_S;
        let left_s = wall_s * (end_s - t_s).max(0.0) / t_s;
        eprint!(
            "\r{name}: {:.1} of {:.1} h simulated ({:.0} %), {:.0} x realtime, {} left   ",
            t_s / 3600.0,
            end_s / 3600.0,
            100.0 * t_s / end_s,
            t_s / wall_s,
            hms(left_s)
        );
        self.printed = true;
    }

    fn finish(&self) {
        if self.printed {
            eprintln!();
        }
    }
}

/// `s` seconds as `1h02m03s` / `2m03s` / `3s`.
fn hms(s: f64) -> String {
    let s = s.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m{sec:02}s"),
        (h, m, sec) => format!("{h}h{m:02}m{sec:02}s"),
    }
}

/// Runs `scenario`, writing trace rows to `trace` (if given). On a terminal
/// (stderr), a long run shows its progress and an estimate of the time left.
pub fn run(scenario: &Scenario, mut trace: Option<&mut dyn Write>) -> Result<Summary, RunError> {
    let started = std::time::Instant::now();
    let mut engine = Engine::new(scenario)?;
    let mut stimulus = Stimulus::new(scenario);
    let mut out = Outcomes::default();
    let end_ns = scenario.duration_ns();
    let trace_every = (crate::scenario::secs_to_ns(scenario.trace_interval_s) / engine.step_ns()).max(1);
    // Ticks until the next trace row (a countdown: no division per tick).
    let mut until_trace = trace_every;
    let mut progress = Progress::new(started);
    let end_s = end_ns as f64 * 1e-9;
    let mut ticks: u64 = 0;
    let mut true_discharged_as = 0.0f64;
    let mut true_charged_as = 0.0f64;
    let mut aux_on_ticks: u64 = 0;
    let mut faults_seen = 0u16;
    // The board's sync points (an LVP trip: empty; the full-charge detection: full) as last seen.
    let mut syncs_seen = engine.board().sync_counts();
    let mut was_aux_on = false;
    // Truth summed over the board's current sample block: (current, voltage, samples).
    let mut block = (0.0f64, 0.0f64, 0.0f64);
    let dt_s = engine.step_ns() as f64 * 1e-9;
    let t0 = engine.truth().temp_c;
    let mut x = Extremes {
        current_error_a: 0.0,
        voltage_error_v: 0.0,
        temperature_error_c: 0.0,
        min_v: f64::INFINITY,
        max_v: f64::NEG_INFINITY,
        min_t: t0,
        max_t: t0,
    };

    // Cell SOC spread at the start (for the balancing metrics).
    let soc_spread = |e: &Engine| (e.pack().max_soc() - e.pack().min_soc()) * 100.0;
    if engine.companions().is_some_and(|c| c.lipro().is_some()) {
        out.set("cell_soc_spread_start_pct", soc_spread(&engine));
    }
    if let Some(w) = trace.as_deref_mut() {
        writeln!(w, "{TRACE_HEADER}{}", companion_header(&engine))?;
        write_row(w, &engine)?;
    }
    // The per-tick bookkeeping; the engine's loop drives the ticks.
    // The per-tick bookkeeping of `n` ticks of the same truth (see `Engine::advance_to_with_runs`): sums are
    // added once per tick as before (bit-identical), the rest once per run.
    engine.advance_to_with_runs(end_ns, &mut stimulus, |engine, truth, n| {
        ticks += n;
        if truth.current_a < 0.0 {
            for _ in 0..n {
                true_discharged_as -= truth.current_a * dt_s;
            }
        } else {
            for _ in 0..n {
                true_charged_as += truth.current_a * dt_s;
            }
        }
        // The board measures block means (one poll per block): compare with the truth's mean over the block.
        for _ in 0..n {
            block.0 += truth.current_a;
            block.1 += truth.voltage_v;
            block.2 += 1.0;
        }
        if engine.board().last_poll() == Some(firmware_core::Instant(engine.t_ns())) {
            let m = *engine.board().measurements();
            let (i_mean, v_mean) = (block.0 / block.2, block.1 / block.2);
            block = (0.0, 0.0, 0.0);
            x.current_error_a = x.current_error_a.max((f64::from(m.current_ua) * 1e-6 - i_mean).abs());
            x.voltage_error_v = x.voltage_error_v.max((f64::from(m.voltage_uv) * 1e-6 - v_mean).abs());
            x.temperature_error_c = x.temperature_error_c.max((f64::from(m.temperature_dc) * 0.1 - truth.temp_c).abs());
        }
        // Plain compares (a NaN never wins, as with f64::min/max).
        if truth.voltage_v < x.min_v {
            x.min_v = truth.voltage_v;
        }
        if truth.voltage_v > x.max_v {
            x.max_v = truth.voltage_v;
        }
        if truth.temp_c < x.min_t {
            x.min_t = truth.temp_c;
        }
        if truth.temp_c > x.max_t {
            x.max_t = truth.temp_c;
        }
        let o = engine.outputs();
        let new_faults = o.faults & !faults_seen;
        if new_faults != 0 || !o.switch_on || !o.lvp_output || !o.ovp_output || o.aux_on != was_aux_on {
            // The first tick of the run (the outputs were the same in all of them).
            let t_s = (engine.t_ns() - (n - 1) * engine.step_ns()) as f64 * 1e-9;
            for (bit, name) in faults::NAMES.iter().filter(|(b, _)| new_faults & b != 0) {
                faults_seen |= bit;
                out.set_once(&format!("{name}_trip_time_s"), t_s);
            }
            for (off, name) in [
                (!o.switch_on, "switch_off_time_s"),
                (!o.lvp_output, "load_off_time_s"),
                (!o.ovp_output, "charger_off_time_s"),
            ] {
                if off {
                    out.set_once(name, t_s);
                }
            }
            if o.aux_on && !was_aux_on {
                out.set_once("aux_on_time_s", t_s);
            }
            if !o.aux_on && was_aux_on {
                out.set_once("aux_off_time_s", t_s);
            }
            was_aux_on = o.aux_on;
        }
        // At each sync point the board applied: how far its SOC is from the truth it estimates
        // (a refused one changed nothing, issue 16).
        let syncs = engine.board().sync_counts();
        if syncs != syncs_seen {
            if syncs.0 != syncs_seen.0 {
                let metric = match engine.board().last_sync().map(|p| p.kind) {
                    Some(SyncKind::Empty) => "max_empty_sync_error_pct",
                    _ => "max_full_sync_error_pct",
                };
                out.raise(metric, soc_error_pct(engine));
            }
            syncs_seen = syncs;
        }
        aux_on_ticks += u64::from(o.aux_on) * n;
        // A run never passes a trace row: the engine takes at most `until_trace` ticks in one.
        until_trace -= n;
        if until_trace == 0 {
            until_trace = trace_every;
            out.raise("max_soc_error_pct", soc_error_pct(engine));
            if let Some(w) = trace.as_deref_mut() {
                write_row(w, engine)?;
            }
        }
        progress.ticks(n, &scenario.name, engine.t_s(), end_s);
        Ok::<u64, RunError>(until_trace)
    })?;
    progress.finish();
    out.set("max_current_error_a", x.current_error_a);
    out.set("max_voltage_error_v", x.voltage_error_v);
    out.set("max_temperature_error_c", x.temperature_error_c);
    if x.min_v.is_finite() {
        out.set("min_voltage_v", x.min_v);
        out.set("max_voltage_v", x.max_v);
    }
    out.lower("min_temp_c", x.min_t);
    out.raise("max_temp_c", x.max_t);
    out.set("final_temp_c", engine.truth().temp_c);

    let true_soc_pct = engine.truth().soc * 100.0;
    let b = engine.board();
    let pct = |centi: u16| f64::from(centi) / 100.0;
    out.set("final_true_soc_pct", true_soc_pct);
    out.set("final_board_soc_pct", pct(b.soc_centipct()));
    out.set("final_soc_error_pct", soc_error_pct(&engine));
    out.raise("max_soc_error_pct", soc_error_pct(&engine));
    out.set("final_soc_ah_error_pct", (pct(b.soc_ah_centipct()) - true_soc_pct).abs());
    out.set("final_soc_wh_error_pct", (pct(b.soc_wh_centipct()) - true_soc_pct).abs());
    // The temperature-compensated method estimates the usable SOC (issue 16: like with like).
    let usable_soc_pct = engine.pack().usable_soc() * 100.0;
    out.set("final_true_usable_soc_pct", usable_soc_pct);
    out.set("final_soc_temp_error_pct", (pct(b.soc_temperature_compensated_centipct()) - usable_soc_pct).abs());
    out.set("true_discharged_ah", true_discharged_as / 3600.0);
    out.set("true_charged_ah", true_charged_as / 3600.0);
    out.set("board_soh_pct", pct(b.soh_centipct()));
    let r0_mohm = engine.pack().r0_total_ohm() * 1e3;
    out.set("true_r0_mohm", r0_mohm);
    if let Some(r_uohm) = b.internal_resistance_uohm() {
        let r_mohm = f64::from(r_uohm) * 1e-3;
        out.set("board_internal_resistance_mohm", r_mohm);
        out.set("internal_resistance_error_pct", (r_mohm - r0_mohm).abs() / r0_mohm * 100.0);
    }
    out.set("soc_syncs_applied", f64::from(syncs_seen.0));
    out.set("soc_syncs_refused", f64::from(syncs_seen.1));
    out.set("aux_on_fraction_pct", aux_on_ticks as f64 / ticks.max(1) as f64 * 100.0);
    if let Some(c) = engine.companions() {
        for (metric, at) in [
            ("lipro_uv_trip_time_s", c.lipro_uv_at_s),
            ("lipro_ov_trip_time_s", c.lipro_ov_at_s),
            ("fuse_cleared_time_s", c.fuse_cleared_at_s),
            ("powerpro_trip_time_s", c.powerpro_trip_at_s),
        ] {
            if let Some(t) = at {
                out.set(metric, t);
            }
        }
        if c.lipro().is_some() {
            let i = engine.truth().current_a;
            let v = (0..engine.pack().cells().len()).map(|k| engine.pack().cell_voltage_v(k, i));
            let (lo, hi) = v.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(x), hi.max(x)));
            out.set("cell_voltage_spread_mv", (hi - lo) * 1e3);
            out.set("cell_soc_spread_pct", soc_spread(&engine));
        }
        if let Some(p) = c.powerpro() {
            out.set("fuse_i2t_a2s", p.fuse().let_through_i2t_a2s());
        }
    }
    // An event still running at the end is reported as far as it got.
    engine.finish_transient();
    // An incomplete event: what was still happening (its figures are bounds).
    let mut transient_incomplete = None;
    if let Some(t) = engine.last_transient() {
        let m = &t.metrics;
        for (metric, figure, v) in [
            ("transient_peak_current_a", "peak_current_a", Some(m.peak_current_a)),
            ("transient_time_to_zero_us", "time_to_zero_us", m.time_to_zero_us),
            ("transient_arrester_energy_j", "arrester_energy_j", Some(m.arrester_energy_j)),
            ("transient_arrester_margin_pct", "arrester_margin_pct", Some(m.arrester_margin_pct)),
            ("transient_arrester_peak_power_w", "arrester_peak_power_w", Some(m.arrester_peak_power_w)),
            ("transient_switch_i2t_a2s", "switch_i2t_a2s", Some(m.switch_i2t_a2s)),
            ("transient_peak_switch_voltage_v", "peak_switch_voltage_v", Some(m.peak_switch_voltage_v)),
            ("transient_peak_bus_voltage_v", "peak_bus_voltage_v", Some(m.peak_bus_voltage_v)),
            // the net charge of an event not ended is not final either way
            ("transient_charge_c", if m.complete { "" } else { "charge_c" }, Some(t.end.charge_c)),
        ] {
            let Some(v) = v else { continue };
            out.set(metric, v);
            if !m.complete {
                // `Exact` in `bounds`: not final and no side known (the net charge), decides nothing
                let b = if figure == "charge_c" { models::transient::Bound::Exact } else { m.bound(figure) };
                out.bounds.insert(metric.to_owned(), b);
            }
        }
        out.set("transient_checks_passed", if t.passed() { 1.0 } else { 0.0 });
        out.set("transient_complete", f64::from(u8::from(m.complete)));
        if !m.complete {
            transient_incomplete =
                t.checks.iter().find(|c| c.name == models::transient::COMPLETE_CHECK).map(|c| c.reason.clone());
        }
    }
    for (name, metric, positive_only) in [
        ("discharged_total_dah", "board_discharged_ah", false),
        ("capacity_estimate_dah", "board_capacity_estimate_ah", true),
        ("efficiency_centipct", "board_efficiency_pct", true),
    ] {
        if let Some(v) = read_physical(engine.board_mut(), name) {
            if !positive_only || v > 0.0 {
                out.set(metric, v);
            }
        }
    }

    let mut expectations: Vec<Checked> = scenario
        .expectations
        .iter()
        .map(|e| {
            let value = out.get(&e.metric);
            let within = value.is_some_and(|v| e.min.is_none_or(|min| v >= min) && e.max.is_none_or(|max| v <= max));
            // A bound decides an expectation only from its side: a lower bound above `max` fails
            // for sure, one at or above `min` passes it for sure; anything else is undecided.
            let (passed, note) = match out.bound(&e.metric) {
                None => (within, None),
                Some(b) => {
                    let v = value.unwrap_or(f64::NAN);
                    let decided = match b {
                        models::transient::Bound::Lower => e.max.is_none_or(|max| v > max) || !within,
                        models::transient::Bound::Upper => e.min.is_none_or(|min| v < min) || !within,
                        models::transient::Bound::Exact => !within,
                    };
                    let side = match b {
                        models::transient::Bound::Lower => "a lower bound",
                        models::transient::Bound::Upper => "an upper bound",
                        models::transient::Bound::Exact => "not final",
                    };
                    let note = if decided && !within {
                        format!("{side} of an event that had not ended, already outside the expectation")
                    } else if decided {
                        format!("{side} of an event that had not ended, deciding the expectation")
                    } else {
                        format!("undecided: {side} of an event that had not ended")
                    };
                    (within && decided, Some(note))
                }
            };
            Checked { metric: e.metric.clone(), min: e.min, max: e.max, value, passed, note }
        })
        .collect();
    if let Some(reason) = transient_incomplete {
        // INCOMPLETE fails the run whatever the expectations say.
        expectations.push(Checked {
            metric: "transient_complete".to_owned(),
            min: Some(1.0),
            max: None,
            value: Some(0.0),
            passed: false,
            note: Some(reason),
        });
    }
    let passed = expectations.iter().all(|c| c.passed);
    Ok(Summary {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        variant: scenario.variant.to_string(),
        seed: scenario.seed,
        simulated_s: engine.t_s(),
        wall_s: started.elapsed().as_secs_f64(),
        adc_rate_hz: scenario.adc_rate_hz,
        ticks,
        outcomes: out.iter().map(|(m, v)| (m.to_owned(), v)).collect(),
        expectations,
        passed,
    })
}

/// A register's physical value (raw × scale), read as a master would.
fn read_physical(board: &mut firmware_core::Board, name: &str) -> Option<f64> {
    let def = firmware_core::map::by_name(name)?;
    let mut regs = [0u16; 2];
    board.read_registers(def.addr, &mut regs[..usize::from(def.ty.words())]).ok()?;
    Some(def.to_physical(def.ty.decode(&regs)))
}

/// |board SOC (selected method) − the truth it estimates|, points: the charge SOC for
/// the Ah and Wh methods, the usable SOC ([`models::pack::Pack::usable_soc`]) for
/// the temperature-compensated one.
fn soc_error_pct(engine: &Engine) -> f64 {
    let b = engine.board();
    let truth = match b.settings().soc_method() {
        SocMethod::TemperatureCompensated => engine.pack().usable_soc(),
        SocMethod::Ah | SocMethod::Wh => engine.truth().soc,
    };
    (f64::from(b.soc_centipct()) / 100.0 - truth * 100.0).abs()
}

/// The trace's columns for the companions the scenario has (none without them): per cell its
/// true voltage, temperature and bleed state, the LiPro loops' voltages; the PowerPro's switch,
/// trip, fuse state and let-through I²t.
fn companion_header(e: &Engine) -> String {
    let Some(c) = e.companions() else { return String::new() };
    let mut h = String::new();
    if let Some(l) = c.lipro() {
        for k in 1..=l.cells().len() {
            h.push_str(&format!(",cell{k}_v,cell{k}_temp_c,cell{k}_bleed"));
        }
        h.push_str(",lipro_lvp_loop_v,lipro_ovp_loop_v");
    }
    if c.powerpro().is_some() {
        h.push_str(",powerpro_switch,powerpro_trip,fuse_state,fuse_i2t_a2s");
    }
    h
}

/// One row's companion columns (in [`companion_header`]'s order).
fn write_companions(w: &mut dyn Write, e: &Engine) -> std::io::Result<()> {
    let Some(c) = e.companions() else { return Ok(()) };
    if let Some(l) = c.lipro() {
        let i = e.truth().current_a;
        for (k, cell) in l.cells().iter().enumerate() {
            write!(w, ",{:.4},{:.2},{}", e.pack().cell_voltage_v(k, i), cell.temp_c, u8::from(cell.bleeding))?;
        }
        write!(w, ",{:.1},{:.1}", l.lvp_loop_v(), l.ovp_loop_v())?;
    }
    if let Some(p) = c.powerpro() {
        let trip = match p.trip() {
            None => "none",
            Some(models::companions::Trip::OverVoltage) => "ov",
            Some(models::companions::Trip::UnderVoltage) => "uv",
            Some(models::companions::Trip::OverCurrent) => "oc",
        };
        write!(
            w,
            ",{},{trip},{},{:.1}",
            u8::from(p.switch_closed()),
            p.fuse().state().code(),
            p.fuse().let_through_i2t_a2s()
        )?;
    }
    Ok(())
}

fn write_row(w: &mut dyn Write, e: &Engine) -> std::io::Result<()> {
    write_row_board(w, e)?;
    write_companions(w, e)?;
    writeln!(w)
}

fn write_row_board(w: &mut dyn Write, e: &Engine) -> std::io::Result<()> {
    let t = e.truth();
    let m = e.board().measurements();
    let o = e.outputs();
    write!(
        w,
        "{:.3},{:.4},{:.4},{:.3},{:.2},{:.3},{:.3},{:.1},{:.2},{},{},{},{}",
        e.t_s(),
        t.current_a,
        t.voltage_v,
        t.soc * 100.0,
        t.temp_c,
        f64::from(m.current_ua) * 1e-6,
        f64::from(m.voltage_uv) * 1e-6,
        f64::from(m.temperature_dc) * 0.1,
        f64::from(e.board().soc_centipct()) / 100.0,
        u8::from(o.switch_on),
        u8::from(o.lvp_output),
        u8::from(o.ovp_output),
        o.faults
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_left_reads_as_hours_minutes_seconds() {
        assert_eq!(hms(3.4), "3s");
        assert_eq!(hms(123.0), "2m03s");
        assert_eq!(hms(3723.0), "1h02m03s");
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("writing the trace: {0}")]
    Io(#[from] std::io::Error),
}
