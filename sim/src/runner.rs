//! Runs one scenario to its end: trace, outcomes, expectations.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::engine::{Engine, EngineError, Stimulus};
use crate::scenario::{Metric, Scenario};

/// Header of trace.csv; one row per trace interval.
pub const TRACE_HEADER: &str = "t_s,true_current_a,true_voltage_v,true_soc_pct,true_temp_c,\
meas_current_a,meas_voltage_v,meas_temp_c,board_soc_pct,switch_on,lvp_output,ovp_output,faults";

/// Outcomes measured during a run (the values expectations check).
#[derive(Debug, Default, Clone)]
pub struct Outcomes {
    values: BTreeMap<Metric, f64>,
}

impl Outcomes {
    pub fn get(&self, m: Metric) -> Option<f64> {
        self.values.get(&m).copied()
    }
    fn set(&mut self, m: Metric, v: f64) {
        self.values.insert(m, v);
    }
    fn set_once(&mut self, m: Metric, v: f64) {
        self.values.entry(m).or_insert(v);
    }
    fn raise(&mut self, m: Metric, v: f64) {
        let e = self.values.entry(m).or_insert(v);
        *e = e.max(v);
    }
    fn lower(&mut self, m: Metric, v: f64) {
        let e = self.values.entry(m).or_insert(v);
        *e = e.min(v);
    }
    pub fn iter(&self) -> impl Iterator<Item = (Metric, f64)> + '_ {
        self.values.iter().map(|(&m, &v)| (m, v))
    }
}

/// The verdict on one expectation.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub metric: Metric,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `None` when the outcome never happened (e.g. LVP never tripped).
    pub value: Option<f64>,
    pub passed: bool,
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
    pub outcomes: BTreeMap<&'static str, f64>,
    pub expectations: Vec<Checked>,
    pub passed: bool,
}

/// Runs `scenario`, writing trace rows to `trace` (if given).
pub fn run(scenario: &Scenario, mut trace: Option<&mut dyn Write>) -> Result<Summary, RunError> {
    let started = std::time::Instant::now();
    let mut engine = Engine::new(scenario)?;
    let mut stimulus = Stimulus::new(scenario);
    let mut out = Outcomes::default();
    let end_ns = scenario.duration_ns();
    let trace_every = (crate::scenario::secs_to_ns(scenario.trace_interval_s) / engine.step_ns()).max(1);
    let mut ticks: u64 = 0;
    let mut true_discharged_as = 0.0f64;
    let dt_s = engine.step_ns() as f64 * 1e-9;

    if let Some(w) = trace.as_deref_mut() {
        writeln!(w, "{TRACE_HEADER}")?;
        write_row(w, &engine)?;
    }
    while engine.t_ns() < end_ns {
        let (kind, amps) = stimulus.current(&engine);
        engine.step(kind, amps)?;
        ticks += 1;
        let truth = *engine.truth();
        let m = *engine.board().measurements();
        if truth.current_a < 0.0 {
            true_discharged_as -= truth.current_a * dt_s;
        }
        out.raise(Metric::MaxCurrentErrorA, (f64::from(m.current_ua) * 1e-6 - truth.current_a).abs());
        out.raise(Metric::MaxVoltageErrorV, (f64::from(m.voltage_uv) * 1e-6 - truth.voltage_v).abs());
        out.raise(Metric::MaxTemperatureErrorC, (f64::from(m.temperature_dc) * 0.1 - truth.temp_c).abs());
        out.raise(Metric::MaxVoltageV, truth.voltage_v);
        out.lower(Metric::MinVoltageV, truth.voltage_v);
        let t_s = engine.t_s();
        if engine.lvp_tripped() {
            out.set_once(Metric::LvpTripTimeS, t_s);
        }
        if engine.ovp_tripped() {
            out.set_once(Metric::OvpTripTimeS, t_s);
        }
        if !engine.outputs().switch_on {
            out.set_once(Metric::SwitchOffTimeS, t_s);
        }
        if ticks % trace_every == 0 {
            out.raise(Metric::MaxSocErrorPct, soc_error_pct(&engine));
            if let Some(w) = trace.as_deref_mut() {
                write_row(w, &engine)?;
            }
        }
    }
    let board_soc = f64::from(engine.board().soc_centipct()) / 100.0;
    out.set(Metric::FinalTrueSocPct, engine.truth().soc * 100.0);
    out.set(Metric::FinalBoardSocPct, board_soc);
    out.set(Metric::FinalSocErrorPct, soc_error_pct(&engine));
    out.raise(Metric::MaxSocErrorPct, soc_error_pct(&engine));
    out.set(Metric::TrueDischargedAh, true_discharged_as / 3600.0);
    let mut regs = [0u16; 2];
    let discharged = firmware_core::map::by_id(firmware_core::map::RegId::DischargedTotal).expect("in the map");
    if engine.board_mut().read_registers(discharged.addr, &mut regs).is_ok() {
        out.set(Metric::BoardDischargedAh, discharged.to_physical(discharged.ty.decode(&regs)));
    }

    let expectations: Vec<Checked> = scenario
        .expectations
        .iter()
        .map(|e| {
            let value = out.get(e.metric);
            let passed = value.is_some_and(|v| e.min.is_none_or(|min| v >= min) && e.max.is_none_or(|max| v <= max));
            Checked { metric: e.metric, min: e.min, max: e.max, value, passed }
        })
        .collect();
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
        outcomes: out.iter().map(|(m, v)| (m.name(), v)).collect(),
        expectations,
        passed,
    })
}

fn soc_error_pct(engine: &Engine) -> f64 {
    (f64::from(engine.board().soc_centipct()) / 100.0 - engine.truth().soc * 100.0).abs()
}

fn write_row(w: &mut dyn Write, e: &Engine) -> std::io::Result<()> {
    let t = e.truth();
    let m = e.board().measurements();
    let o = e.outputs();
    writeln!(
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

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("writing the trace: {0}")]
    Io(#[from] std::io::Error),
}
