//! `run --plots`: a scenario's `trace.svg` — the truth against what the
//! board measured or estimated, the cells (with `[lipro]`), the switches and
//! faults as a state panel, the run's events and trips as numbered marks —
//! and `transient.svg` (`transient-2.svg`, …): the µs waveform of each
//! transient event the run had, which the trace (one row per
//! `trace_interval_s`) cannot resolve.
//!
//! Everything drawn is what the run recorded: the trace's columns, the
//! summary's `*_time_s` metrics and the scenario's `[[event]]`s. The µs
//! waveform is the run's own: the engine is replayed from the scenario (a
//! seeded run is deterministic) with its waveform record on, which changes
//! no figure ([`Engine::record_transient_waveforms`]), and the replay's
//! last event is checked against the summary's `transient_*` metrics
//! before it is drawn.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use firmware_core::map::faults;
use firmware_core::settings::SocMethod;
use models::transient::Outcome;
use plotters::style::{BLACK, Color as _, RGBColor};

use super::plot::{self, Band, Figure, Formats, MAX_TRACE_POINTS, Mark, Panel, Series, Style};
use crate::engine::{Engine, EngineError};
use crate::runner::Summary;
use crate::scenario::{Scenario, TransientEvent, Trigger};
use crate::stimulus::Stimulus;

/// The y axes' least spans, so that a reading quantised to its register's
/// resolution stays a flat line: temperature 2 °C (20 steps of the 0.1 °C
/// register: a one-step flicker is 5 % of the axis), voltage 0.1 V (the
/// 12 V board's ±15 mV datasheet error band ×3), current 2 A, SOC 2 points,
/// cell voltage 50 mV (a LiPro's 1 mV class resolution ×50).
pub const MIN_SPAN_TEMP_C: f64 = 2.0;
pub const MIN_SPAN_VOLTAGE_V: f64 = 0.1;
pub const MIN_SPAN_CURRENT_A: f64 = 2.0;
pub const MIN_SPAN_SOC_PCT: f64 = 2.0;
pub const MIN_SPAN_CELL_V: f64 = 0.05;

/// Most scenario `[[event]]`s marked (a run with more gets the first ones and a count).
const MAX_EVENT_MARKS: usize = 24;

/// Colours: the truth wide and light, the board's value narrow and dark on top;
/// marks of trips red, of output changes grey, of scenario events blue.
const TRIP: RGBColor = RGBColor(200, 0, 0);
const OUTPUT: RGBColor = RGBColor(90, 90, 90);
const EVENT: RGBColor = RGBColor(0, 70, 200);

/// trace.csv as columns.
struct Trace {
    path: PathBuf,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Trace {
    fn read(path: &Path) -> anyhow::Result<Trace> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default().split(',').map(str::to_owned).collect();
        let rows = lines.map(|l| l.split(',').map(str::to_owned).collect()).collect();
        Ok(Trace { path: path.to_owned(), header, rows })
    }

    fn has(&self, name: &str) -> bool {
        self.header.iter().any(|h| h == name)
    }

    fn text(&self, name: &str) -> anyhow::Result<Vec<&str>> {
        let i = self
            .header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no column {name:?}", self.path.display()))?;
        Ok(self.rows.iter().map(|r| r.get(i).map_or("", String::as_str)).collect())
    }

    fn f64(&self, name: &str) -> anyhow::Result<Vec<f64>> {
        self.text(name)?
            .into_iter()
            .enumerate()
            .map(|(n, c)| {
                c.trim()
                    .parse()
                    .with_context(|| format!("{}:{}: {name} = {c:?} is not a number", self.path.display(), n + 2))
            })
            .collect()
    }
}

/// The SOC method the board used ("Ah counting (soc_method = 0)"), and
/// when a scenario event writes another.
pub fn soc_method_text(scenario: &Scenario) -> anyhow::Result<String> {
    let name = |m: SocMethod| match m {
        SocMethod::Ah => "Ah counting (soc_method = 0)",
        SocMethod::Wh => "Wh counting (soc_method = 1)",
        SocMethod::TemperatureCompensated => "temperature-compensated Ah (soc_method = 2)",
    };
    let engine = Engine::new(scenario).context("building the scenario's board to read its SOC method")?;
    let mut text = name(engine.board().settings().soc_method()).to_owned();
    for ev in &scenario.events {
        for w in ev.write.iter().filter(|w| w.register == "soc_method") {
            let raw = u16::try_from(w.value).unwrap_or(u16::MAX);
            text.push_str(&format!(", from {} s {}", ev.at_s, name(SocMethod::from_raw(raw))));
        }
    }
    Ok(text)
}

/// Readable names of the fault bits (register-map.md).
fn fault_name(bit: &str) -> String {
    match bit {
        "lvp" => "LVP (under-voltage)".into(),
        "ovp" => "OVP (over-voltage)".into(),
        "lvp_input" => "LiPro LVP input".into(),
        "ovp_input" => "LiPro OVP input".into(),
        "adc_saturated" => "ADC saturated".into(),
        "occ" => "over-current charge".into(),
        "ocd" => "over-current discharge".into(),
        "otc" => "over-temperature charge".into(),
        "utc" => "under-temperature charge".into(),
        "otd" => "over-temperature discharge".into(),
        "utd" => "under-temperature discharge".into(),
        "short_circuit" => "short circuit".into(),
        other => other.replace('_', " "),
    }
}

/// The marks of a run: every `*_time_s` metric of the summary (the first
/// time of each trip, switch or output change, as the runner recorded it at
/// its tick) and the scenario's `[[event]]`s at their `at_s`, in time order.
pub fn marks(summary: &Summary, scenario: &Scenario, scale: f64) -> Vec<Mark> {
    let mut marks: Vec<(f64, String, RGBColor)> = Vec::new();
    for (metric, &t_s) in &summary.outcomes {
        let Some(what) = metric.strip_suffix("_time_s") else { continue };
        let (text, color) = match what {
            "switch_off" => ("main switch opened (board)".to_owned(), OUTPUT),
            "load_off" => ("load output off (LVP output)".to_owned(), OUTPUT),
            "charger_off" => ("charger output off (OVP output)".to_owned(), OUTPUT),
            "aux_on" => ("aux output on".to_owned(), OUTPUT),
            "aux_off" => ("aux output off".to_owned(), OUTPUT),
            "lipro_uv_trip" => ("LiPro cell under-voltage: LVP loop dropped".to_owned(), TRIP),
            "lipro_ov_trip" => ("LiPro cell over-voltage: OVP loop dropped".to_owned(), TRIP),
            "fuse_cleared" => ("PowerPro fuse cleared".to_owned(), TRIP),
            "powerpro_trip" => ("PowerPro secondary protection tripped".to_owned(), TRIP),
            w => match w.strip_suffix("_trip") {
                Some(f) if faults::NAMES.iter().any(|(_, n)| *n == f) => (format!("{} trip", fault_name(f)), TRIP),
                _ => (w.replace('_', " "), OUTPUT),
            },
        };
        marks.push((t_s, format!("{} s {text}", fmt_s(t_s)), color));
    }
    let events: Vec<_> = scenario.events.iter().collect();
    for ev in events.iter().take(MAX_EVENT_MARKS) {
        let mut what: Vec<String> = ev.write.iter().map(|w| format!("{} = {}", w.register, w.value)).collect();
        if let Some(v) = ev.lvp_input {
            what.push(format!("LVP input {}", if v { "held" } else { "dropped" }));
        }
        if let Some(v) = ev.ovp_input {
            what.push(format!("OVP input {}", if v { "held" } else { "dropped" }));
        }
        if let Some(t) = ev.transient {
            let kind = match t {
                TransientEvent::ShortCircuit => "short circuit",
                TransientEvent::SwitchOpen => "switch opened under load",
                TransientEvent::LoadDump => "load dump",
            };
            what.push(match ev.trigger {
                Trigger::At => kind.to_owned(),
                Trigger::SwitchOff => format!("{kind} armed (at the next switch-off)"),
            });
        }
        marks.push((ev.at_s, format!("{} s event: {}", fmt_s(ev.at_s), what.join(", ")), EVENT));
    }
    if events.len() > MAX_EVENT_MARKS {
        let t = events[MAX_EVENT_MARKS].at_s;
        marks.push((t, format!("… {} more events from {} s", events.len() - MAX_EVENT_MARKS, fmt_s(t)), EVENT));
    }
    marks.sort_by(|a, b| a.0.total_cmp(&b.0));
    marks.into_iter().map(|(t, label, c)| Mark { x: t * scale, label, color: c.to_rgba() }).collect()
}

/// A time in seconds as the summary has it, without float noise (ms resolution).
fn fmt_s(t_s: f64) -> String {
    let s = format!("{t_s:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The axis unit for a run of `end_s`: s, min or h, and the factor from seconds.
fn time_unit(end_s: f64) -> (&'static str, f64) {
    if end_s > 3.0 * 3600.0 {
        ("h", 1.0 / 3600.0)
    } else if end_s > 600.0 {
        ("min", 1.0 / 60.0)
    } else {
        ("s", 1.0)
    }
}

/// The truth ± a datasheet error as a band.
fn band(name: String, points: &[(f64, f64)], err: f64) -> Band {
    Band {
        name,
        color: RGBColor(120, 170, 255).mix(0.3),
        points: points.iter().map(|&(t, y)| (t, y - err, y + err)).collect(),
    }
}

fn truth_and_board(t: &[f64], truth: &[f64], board: &[f64], board_name: &str) -> Vec<Series> {
    truth_named_and_board("true", t, truth, board, board_name)
}

fn truth_named_and_board(truth_name: &str, t: &[f64], truth: &[f64], board: &[f64], board_name: &str) -> Vec<Series> {
    vec![
        Series {
            name: truth_name.into(),
            color: plot::color(0).mix(0.45),
            width: 4,
            style: Style::Line,
            points: plot::decimate(t, truth, MAX_TRACE_POINTS),
        },
        Series {
            name: board_name.into(),
            color: plot::color(1),
            width: 1,
            style: Style::Line,
            points: plot::decimate(t, board, MAX_TRACE_POINTS),
        },
    ]
}

/// The trace figure of a run (see the module's doc).
/// Returns it with the factor from seconds to its time axis's unit.
pub fn trace_figure(trace_path: &Path, scenario: &Scenario, summary: &Summary) -> anyhow::Result<(Figure, f64)> {
    let tr = Trace::read(trace_path)?;
    let t_s = tr.f64("t_s")?;
    let end_s = t_s.last().copied().unwrap_or(0.0);
    let (unit, scale) = time_unit(end_s);
    let t: Vec<f64> = t_s.iter().map(|x| x * scale).collect();
    let variant = scenario.variant;
    // datasheet: current total max error 0.04 % FS of ±250 A, voltage 0.1 % FS of the variant's range
    let current_err_a = models::variant::CURRENT_TOTAL_ERROR_PCT_FS / 100.0 * models::variant::CURRENT_RANGE_A;
    let voltage_err_v = models::variant::VOLTAGE_TOTAL_ERROR_PCT_FS / 100.0 * variant.voltage_range_v();

    let method = soc_method_text(scenario)?;
    let true_i = tr.f64("true_current_a")?;
    let true_v = tr.f64("true_voltage_v")?;
    let mut panels = vec![
        Panel {
            y_desc: "current (A)".into(),
            series: truth_and_board(&t, &true_i, &tr.f64("meas_current_a")?, "measured (board)"),
            bands: vec![band(
                format!("true ± {current_err_a} A (datasheet max error)"),
                &plot::decimate(&t, &true_i, MAX_TRACE_POINTS),
                current_err_a,
            )],
            min_span: MIN_SPAN_CURRENT_A,
            ..Panel::default()
        },
        Panel {
            y_desc: "voltage (V)".into(),
            series: truth_and_board(&t, &true_v, &tr.f64("meas_voltage_v")?, "measured (board)"),
            bands: vec![band(
                format!("true ± {:.3} V (datasheet max error)", voltage_err_v),
                &plot::decimate(&t, &true_v, MAX_TRACE_POINTS),
                voltage_err_v,
            )],
            min_span: MIN_SPAN_VOLTAGE_V,
            ..Panel::default()
        },
        Panel {
            y_desc: "SOC (%)".into(),
            series: truth_named_and_board(
                if method.contains("temperature-compensated") {
                    "true (charge SOC; that method estimates the usable SOC)"
                } else {
                    "true"
                },
                &t,
                &tr.f64("true_soc_pct")?,
                &tr.f64("board_soc_pct")?,
                &format!("board: {method}"),
            ),
            min_span: MIN_SPAN_SOC_PCT,
            ..Panel::default()
        },
        Panel {
            y_desc: "temperature (°C)".into(),
            series: truth_and_board(
                &t,
                &tr.f64("true_temp_c")?,
                &tr.f64("meas_temp_c")?,
                "measured (board, 0.1 °C steps)",
            ),
            min_span: MIN_SPAN_TEMP_C,
            ..Panel::default()
        },
    ];
    if tr.has("cell1_v") {
        panels.extend(cell_panels(&tr, &t, scenario)?);
    }
    panels.push(state_panel(&tr, &t)?);
    let figure = Figure {
        title: format!("{}: true vs measured vs estimated, cells, switches and events", scenario.name),
        x_desc: format!("time ({unit})"),
        size: (1300, 80 + 230 * panels.len() as u32),
        marks: marks(summary, scenario, scale),
        panels,
    };
    Ok((figure, scale))
}

/// With `[lipro]`: the cells' voltages (with the LiPro thresholds), their
/// temperatures and how many cells are bleeding.
fn cell_panels(tr: &Trace, t: &[f64], scenario: &Scenario) -> anyhow::Result<Vec<Panel>> {
    let cells = (1..).take_while(|k| tr.has(&format!("cell{k}_v"))).count();
    let per_cell = |what: &str| -> anyhow::Result<Vec<Series>> {
        (1..=cells)
            .map(|k| {
                Ok(Series {
                    name: format!("cell {k}"),
                    color: plot::color(k + 1),
                    width: 1,
                    style: Style::Line,
                    points: plot::decimate(t, &tr.f64(&format!("cell{k}{what}"))?, MAX_TRACE_POINTS),
                })
            })
            .collect()
    };
    let mut limits = Vec::new();
    if let Some(l) = &scenario.lipro {
        limits.push((l.uv_v, format!("LiPro UV threshold {} V", l.uv_v)));
        limits.push((l.ov_v, format!("LiPro OV threshold {} V", l.ov_v)));
    }
    let mut bleeding = vec![0.0; t.len()];
    for k in 1..=cells {
        for (b, v) in bleeding.iter_mut().zip(tr.f64(&format!("cell{k}_bleed"))?) {
            *b += v;
        }
    }
    let any_bleed = bleeding.iter().any(|&b| b > 0.0);
    let mut panels = vec![
        Panel {
            y_desc: "cell voltage (V)".into(),
            series: per_cell("_v")?,
            limits,
            min_span: MIN_SPAN_CELL_V,
            ..Panel::default()
        },
        Panel {
            y_desc: "cell temperature (°C)".into(),
            series: per_cell("_temp_c")?,
            min_span: MIN_SPAN_TEMP_C,
            ..Panel::default()
        },
    ];
    if any_bleed || cells > 0 {
        panels.push(Panel {
            y_desc: "balancing (cells bleeding)".into(),
            series: vec![Series {
                name: if any_bleed { "cells with the bleed resistor on".into() } else { "no cell bled".into() },
                color: plot::color(2),
                width: 2,
                style: Style::Line,
                points: steps(t, &bleeding),
            }],
            y_from_zero: true,
            min_span: cells as f64,
            ..Panel::default()
        });
    }
    Ok(panels)
}

/// A sampled value as a step line through its changes (exact, however long the trace).
fn steps(t: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (i, (&t, &v)) in t.iter().zip(y).enumerate() {
        if i == 0 || v != y[i - 1] {
            if i > 0 {
                out.push((t, y[i - 1]));
            }
            out.push((t, v));
        }
    }
    if let (Some(&tl), Some(&vl)) = (t.last(), y.last()) {
        if out.last().is_some_and(|p| p.0 != tl) {
            out.push((tl, vl));
        }
    }
    out
}

/// The switches, outputs, loops and fault bits as lanes (high = on /
/// closed / held / set, as each lane's name says); a fault bit that was
/// never set gets no lane.
fn state_panel(tr: &Trace, t: &[f64]) -> anyhow::Result<Panel> {
    let on = |name: &str| -> anyhow::Result<Vec<bool>> { Ok(tr.f64(name)?.into_iter().map(|v| v != 0.0).collect()) };
    let mut lanes: Vec<(String, Vec<bool>)> = vec![
        ("board switch closed".into(), on("switch_on")?),
        ("load output on (LVP)".into(), on("lvp_output")?),
        ("charger output on (OVP)".into(), on("ovp_output")?),
    ];
    if tr.has("lipro_lvp_loop_v") {
        lanes.push(("LiPro LVP loop held".into(), on("lipro_lvp_loop_v")?));
        lanes.push(("LiPro OVP loop held".into(), on("lipro_ovp_loop_v")?));
    }
    if tr.has("powerpro_switch") {
        lanes.push(("PowerPro switch closed".into(), on("powerpro_switch")?));
        let trip = tr.text("powerpro_trip")?;
        lanes.push(("PowerPro tripped".into(), trip.iter().map(|s| s.trim() != "none").collect()));
        lanes.push(("fuse intact".into(), tr.f64("fuse_state")?.into_iter().map(|v| v == 0.0).collect()));
    }
    let fault_words: Vec<u16> =
        tr.f64("faults")?.into_iter().map(|v| u16::try_from(v as i64).unwrap_or(u16::MAX)).collect();
    for (bit, name) in faults::NAMES {
        let set: Vec<bool> = fault_words.iter().map(|w| w & bit != 0).collect();
        if set.iter().any(|&s| s) {
            lanes.push((format!("fault: {}", fault_name(name)), set));
        }
    }
    // top to bottom in the order above
    let n = lanes.len();
    let series = lanes
        .iter()
        .enumerate()
        .map(|(i, (_, v))| plot::lane(n - 1 - i, "", t, v, if i < 3 { BLACK.to_rgba() } else { plot::color(i) }))
        .collect();
    Ok(Panel {
        y_desc: String::new(),
        series,
        lanes: lanes.into_iter().rev().map(|(name, _)| name).collect(),
        ..Panel::default()
    })
}

/// A transient event the run had, as the replay recorded it.
#[derive(Debug, Clone)]
pub struct TransientRecord {
    /// When it started (the start of the tick it began in, s).
    pub start_s: f64,
    pub outcome: Outcome,
}

enum Replay {
    Engine(EngineError),
    Done,
}

impl From<EngineError> for Replay {
    fn from(e: EngineError) -> Self {
        Replay::Engine(e)
    }
}

/// Replays `scenario` with the engine's waveform record on until every
/// transient event it has is over (at most to its end) and returns each
/// event's outcome with its waveform.
pub fn replay_transients(scenario: &Scenario) -> anyhow::Result<Vec<TransientRecord>> {
    let mut engine = Engine::new(scenario)?;
    engine.record_transient_waveforms(true);
    let mut stimulus = Stimulus::new(scenario);
    let expected = scenario.events.iter().filter(|e| e.transient.is_some()).count();
    let step_ns = engine.step_ns();
    let mut out: Vec<TransientRecord> = Vec::new();
    let (mut start_s, mut running) = (None::<f64>, false);
    let mut last_metrics = None;
    let r = engine.advance_to_with_runs(scenario.duration_ns(), &mut stimulus, |e, _, _| {
        let tick_start_s = (e.t_ns() - step_ns) as f64 * 1e-9;
        if e.transient_running() && !running {
            start_s = Some(tick_start_s);
        }
        running = e.transient_running();
        let m = e.last_transient().map(|o| o.metrics);
        if m.is_some() && m != last_metrics {
            last_metrics = m;
            let outcome = e.last_transient().cloned().expect("checked above");
            out.push(TransientRecord { start_s: start_s.take().unwrap_or(tick_start_s), outcome });
            if out.len() == expected && !running {
                return Err(Replay::Done);
            }
        }
        Ok(u64::MAX)
    });
    match r {
        Ok(()) | Err(Replay::Done) => {}
        Err(Replay::Engine(e)) => return Err(e.into()),
    }
    if engine.transient_running() {
        engine.finish_transient();
        if let Some(o) = engine.last_transient() {
            out.push(TransientRecord { start_s: start_s.unwrap_or(engine.t_s()), outcome: o.clone() });
        }
    }
    Ok(out)
}

/// Writes `trace.svg` (and `transient.svg`, `transient-2.svg`, … for the
/// run's transient events) into `dir` beside its `trace.csv`; returns the
/// files written.
pub fn plot_run(dir: &Path, scenario: &Scenario, summary: &Summary) -> anyhow::Result<Vec<PathBuf>> {
    let (mut figure, scale) = trace_figure(&dir.join("trace.csv"), scenario, summary)?;
    let mut written = Vec::new();
    let mut transients = Vec::new();
    if let Some(&peak) = summary.outcomes.get("transient_peak_current_a") {
        let records = replay_transients(scenario)?;
        let last = records.last().context("the replay had no transient event, the run had one")?;
        if last.outcome.metrics.peak_current_a != peak {
            bail!(
                "the replay's last transient event (peak {} A) is not the run's (peak {peak} A): its waveform is not drawn",
                last.outcome.metrics.peak_current_a
            );
        }
        transients = records;
    }
    for (k, rec) in transients.iter().enumerate() {
        let stem = if k == 0 { "transient".to_owned() } else { format!("transient-{}", k + 1) };
        // the scenario event that started it, else (an armed one) a mark of its own
        let note = format!("(µs waveform: {stem}.svg)");
        let x = rec.start_s * scale;
        let tick_s = 1.0 / f64::from(scenario.adc_rate_hz);
        match figure.marks.iter_mut().find(|m| m.label.contains(" event: ") && (m.x - x).abs() <= tick_s * scale) {
            Some(m) => m.label = format!("{} {note}", m.label),
            None => figure.marks.push(Mark {
                x,
                label: format!("{} s transient event {note}", fmt_s(rec.start_s)),
                color: EVENT.to_rgba(),
            }),
        }
        written
            .extend(transient_figure(scenario, rec, k).render(dir, &stem, Formats::SVG).map_err(anyhow::Error::msg)?);
    }
    figure.marks.sort_by(|a, b| a.x.total_cmp(&b.x));
    let mut files = figure.render(dir, "trace", Formats::SVG).map_err(anyhow::Error::msg)?;
    files.extend(written);
    Ok(files)
}

/// One event's µs waveform: current, switch voltage and arrester power
/// from the event, its trip, switch-off and zero marked
/// ([`crate::sweep::plot::waveform_figure`]).
fn transient_figure(scenario: &Scenario, rec: &TransientRecord, k: usize) -> Figure {
    let m = &rec.outcome.metrics;
    crate::sweep::plot::waveform_figure(
        &format!(
            "{}: transient event {} at {} s, µs-resolved (peak {:.0} A, {})",
            scenario.name,
            k + 1,
            fmt_s(rec.start_s),
            m.peak_current_a,
            rec.outcome.verdict().as_str()
        ),
        &rec.outcome,
        &scenario.transient,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `text` into `dir/<name>/trace.csv` and returns the scenario and its summary.
    fn run_into(dir: &Path, text: &str) -> (Scenario, Summary) {
        let scenario = Scenario::parse(text, Path::new("t.toml")).unwrap();
        let run_dir = dir.join(&scenario.name);
        std::fs::create_dir_all(&run_dir).unwrap();
        let mut trace = std::io::BufWriter::new(std::fs::File::create(run_dir.join("trace.csv")).unwrap());
        let summary = crate::runner::run(&scenario, Some(&mut trace)).unwrap();
        std::io::Write::flush(&mut trace).unwrap();
        (scenario, summary)
    }

    fn texts(svg: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(svg).expect("well-formed SVG");
        doc.descendants().filter_map(|n| n.text()).map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()).collect()
    }

    const SHORT: &str = "name = \"plot-sc\"\nvariant = 12\nseed = 3\ninitial_soc = 0.8\n\
        [firmware]\nregisters = { sc_auto_retry = 1, sc_retry_s = 4 }\n\
        [[event]]\nat_s = 5\ntransient = \"short_circuit\"\n\
        [[segment]]\nkind = \"discharge\"\ncurrent_a = 20.0\nduration_s = 12\n";

    /// Issue 21 item 7: trace.svg marks the run's events and trips (from the
    /// summary's metrics and the scenario's events), has the switch/fault
    /// panel and names the SOC method; transient.svg is the event's µs waveform.
    #[test]
    fn issue_21_trace_plot_marks_events_trips_and_the_transient() {
        let dir = std::env::temp_dir().join(format!("smartpro-trace-plot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (scenario, summary) = run_into(&dir, SHORT);
        let files = plot_run(&dir.join("plot-sc"), &scenario, &summary).unwrap();
        assert_eq!(files, vec![dir.join("plot-sc/trace.svg"), dir.join("plot-sc/transient.svg")]);
        let t = texts(&std::fs::read_to_string(&files[0]).unwrap());
        let has = |s: &str| t.iter().any(|x| x.contains(s));
        let trip_s = summary.outcomes["short_circuit_trip_time_s"];
        let off_s = summary.outcomes["switch_off_time_s"];
        assert!(has(&format!("{} s short circuit trip", fmt_s(trip_s))), "{t:?}");
        assert!(has(&format!("{} s main switch opened (board)", fmt_s(off_s))), "{t:?}");
        // a long label wraps onto a second row
        assert!(has("5 s event: short circuit (µs waveform:") && has("transient.svg)"), "{t:?}");
        for lane in ["board switch closed", "load output on (LVP)", "charger output on (OVP)", "fault: short circuit"] {
            assert!(t.iter().any(|x| x == lane), "no lane {lane:?} in {t:?}");
        }
        assert!(has("board: Ah counting (soc_method = 0)"), "{t:?}");
        for panel in ["current (A)", "voltage (V)", "SOC (%)", "temperature (°C)"] {
            assert!(t.iter().any(|x| x == panel), "no panel {panel:?}");
        }
        assert!(has("datasheet max error"), "error bands named: {t:?}");
        // the waveform is the run's own event
        let w = texts(&std::fs::read_to_string(&files[1]).unwrap());
        let peak = summary.outcomes["transient_peak_current_a"];
        assert!(w.iter().any(|x| x.contains(&format!("µs-resolved (peak {peak:.0} A, PASS)"))), "{w:?}");
        assert!(w.iter().any(|x| x.contains("µs comparator trip")), "{w:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The replay with the waveform record on reproduces the run's event exactly.
    #[test]
    fn issue_21_replayed_transient_is_the_runs_own() {
        let scenario = Scenario::parse(SHORT, Path::new("t.toml")).unwrap();
        let summary = crate::runner::run(&scenario, None).unwrap();
        let records = replay_transients(&scenario).unwrap();
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert!(r.outcome.samples.len() > 50, "{} samples", r.outcome.samples.len());
        assert!((r.start_s - 5.0).abs() < 1e-9, "{}", r.start_s);
        let m = &r.outcome.metrics;
        for (metric, v) in [
            ("transient_peak_current_a", m.peak_current_a),
            ("transient_arrester_energy_j", m.arrester_energy_j),
            ("transient_switch_i2t_a2s", m.switch_i2t_a2s),
        ] {
            assert_eq!(summary.outcomes[metric], v, "{metric}");
        }
        // the waveform's largest sample is the peak the metrics report (to the record's µs grid)
        let max = r.outcome.samples.iter().map(|s| s.current_a.abs()).fold(0.0, f64::max);
        assert!(max <= m.peak_current_a && max > 0.97 * m.peak_current_a, "{max} vs {}", m.peak_current_a);
    }

    /// Issue 15 item 5: with [lipro] and [powerpro] the plot shows the cells
    /// (voltages with the LiPro thresholds, temperatures, balancing) and the
    /// companions' lanes; a missing column is a clear error.
    #[test]
    fn issue_15_trace_plot_shows_the_cells() {
        let dir = std::env::temp_dir().join(format!("smartpro-trace-cells-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let text = "name = \"plot-cells\"\nvariant = 12\nseed = 5\ninitial_soc = 0.5\n[lipro]\n[powerpro]\n\
                    [[segment]]\nkind = \"charge\"\ncurrent_a = 10.0\nduration_s = 20\n";
        let (scenario, summary) = run_into(&dir, text);
        let files = plot_run(&dir.join("plot-cells"), &scenario, &summary).unwrap();
        assert_eq!(files.len(), 1, "no transient: {files:?}");
        let t = texts(&std::fs::read_to_string(&files[0]).unwrap());
        let lipro = scenario.lipro.as_ref().unwrap();
        for s in [
            "cell voltage (V)".to_owned(),
            "cell temperature (°C)".to_owned(),
            "balancing (cells bleeding)".to_owned(),
            "cell 1".to_owned(),
            "cell 4".to_owned(),
            format!("LiPro UV threshold {} V", lipro.uv_v),
            format!("LiPro OV threshold {} V", lipro.ov_v),
            "LiPro LVP loop held".to_owned(),
            "PowerPro switch closed".to_owned(),
            "fuse intact".to_owned(),
        ] {
            assert!(t.contains(&s), "no {s:?} in {t:?}");
        }
        assert!(!t.iter().any(|x| x == "cell 5"), "a 12 V pack has 4 cells");
        let trace = dir.join("plot-cells/trace.csv");
        let csv = std::fs::read_to_string(&trace).unwrap().replacen("cell2_temp_c", "x", 1);
        std::fs::write(&trace, csv).unwrap();
        let e = plot_run(&dir.join("plot-cells"), &scenario, &summary).unwrap_err();
        assert!(format!("{e:#}").contains("no column \"cell2_temp_c\""), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
