//! The plots of a sweep, in SVG and PNG (drawn by [`crate::report::plot`]):
//! metrics vs the x parameter (one line per series value, the worst over
//! any other axes and draws; a scatter when x is a random parameter),
//! arrester energy vs loop inductance with the rated energy, and the worst
//! case's waveform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use models::transient::{Outcome, TransientParams};
use plotters::style::{BLUE, Color as _, RED};

use super::region::{Param, plot_axes};
use super::{CaseResult, Study};
use crate::report::plot::{Figure, Formats, Mark, Panel, Series, Style, color};

/// One metric plot.
struct MetricPlot {
    stem: &'static str,
    title: &'static str,
    y_desc: &'static str,
    metric: fn(&CaseResult) -> f64,
    /// The worst of several cases at one point is the largest (else the smallest).
    worst_is_max: bool,
    /// The limit line, if any, and what it is (its legend: the name, the value and `unit`).
    limit: Option<fn(&CaseResult) -> f64>,
    limit_name: &'static str,
    unit: &'static str,
}

const METRIC_PLOTS: &[MetricPlot] = &[
    MetricPlot {
        stem: "peak_current",
        title: "Peak short-circuit current",
        y_desc: "peak current (A)",
        metric: |r| r.metrics.peak_current_a,
        worst_is_max: true,
        limit: Some(|_| models::variant::MAX_PEAK_CURRENT_A),
        limit_name: "datasheet max peak current",
        unit: "A",
    },
    MetricPlot {
        stem: "shutdown",
        title: "Time above 250 A until the switch is off",
        y_desc: "overcurrent (µs)",
        metric: |r| r.metrics.overcurrent_us.unwrap_or(0.0),
        worst_is_max: true,
        limit: Some(|_| models::variant::MAX_PEAK_DURATION_S * 1e6),
        limit_name: "datasheet max duration of the peak",
        unit: "µs",
    },
    MetricPlot {
        stem: "arrester_margin",
        title: "Arrester margin: 1 − P_peak / P_allowed(pulse)",
        y_desc: "margin (%)",
        metric: |r| r.metrics.arrester_margin_pct,
        worst_is_max: false,
        limit: Some(|_| 0.0),
        limit_name: "arrester at its derated rating",
        unit: "%",
    },
    MetricPlot {
        stem: "arrester_energy",
        title: "Energy into the arrester",
        y_desc: "energy (J)",
        metric: |r| r.metrics.arrester_energy_j,
        worst_is_max: true,
        limit: None,
        limit_name: "",
        unit: "J",
    },
    MetricPlot {
        stem: "switch_voltage",
        title: "Peak voltage across the switch",
        y_desc: "voltage (V)",
        metric: |r| r.metrics.peak_switch_voltage_v,
        worst_is_max: true,
        limit: Some(|r| r.metrics.switch_voltage_rating_v),
        limit_name: "switch V_DS rating",
        unit: "V",
    },
];

/// The series axis's index of case `r` (0 without a series axis).
fn series_of(study: &Study, series: Option<usize>, r: &CaseResult) -> usize {
    series.and_then(|s| study.cases.get(r.index).map(|c| c.at[s])).unwrap_or(0)
}

fn series_name(study: &Study, series: Option<usize>, g: usize) -> String {
    series.map_or_else(String::new, |s| {
        let (name, unit) = param_name_unit(&study.axes[s].param);
        let label = &study.axes[s].labels[g];
        // a unit only after a number ("35 mm²", not "arrester = 40kW-type mm²")
        let unit = if unit.is_empty() || label.parse::<f64>().is_err() { String::new() } else { format!(" {unit}") };
        format!("{name} = {label}{unit}")
    })
}

/// The documented names of study parameters ([docs/transients.md](../../../docs/transients.md)'s
/// parameter table) for axis labels: (dotted key, name). Others are named from their key.
const PARAM_NAMES: &[(&str, &str)] = &[
    ("load_line.length_m", "load line length, one way"),
    ("load_line.cross_section_mm2", "load line cross-section"),
    ("battery_line.length_m", "battery line length, one way"),
    ("battery_line.cross_section_mm2", "battery line cross-section"),
    ("battery.temperature_c", "battery temperature"),
    ("battery.soc", "battery SOC"),
    ("battery.current_a", "current before the event (> 0 charges)"),
    ("battery.cell_r0_ohm", "cell R0 at 25 °C"),
    ("event.position", "fault position (0 = board terminals, 1 = far end)"),
    ("event.fault_resistance_mohm", "fault resistance"),
    ("switch.on_resistance_mohm", "switch on-resistance"),
    ("switch.turn_off_us", "switch turn-off time"),
    ("comparator.threshold_a", "short-circuit comparator threshold"),
    ("arrester.breakdown_v", "arrester breakdown voltage"),
    ("arrester.pppm_w", "arrester peak pulse power Pppm"),
    ("arrester", "arrester"),
];

/// Units of key suffixes, longest first.
const UNIT_SUFFIXES: &[(&str, &str)] = &[
    ("_mm2", "mm²"),
    ("_mohm", "mΩ"),
    ("_ohm", "Ω"),
    ("_uh", "µH"),
    ("_nh", "nH"),
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_mm", "mm"),
    ("_pct", "%"),
    ("_m", "m"),
    ("_c", "°C"),
    ("_v", "V"),
    ("_a", "A"),
    ("_w", "W"),
    ("_k", "K"),
];

/// A study parameter's documented name and its unit ("" without one).
fn param_name_unit(key: &str) -> (String, &'static str) {
    let last = key.rsplit('.').next().unwrap_or(key);
    let (stem, unit) =
        UNIT_SUFFIXES.iter().find_map(|(s, u)| last.strip_suffix(s).map(|stem| (stem, *u))).unwrap_or((last, ""));
    let name = PARAM_NAMES.iter().find(|(k, _)| *k == key).map_or_else(
        || {
            let section = key.rsplit_once('.').map_or(String::new(), |(s, _)| format!("{} ", s.replace('_', " ")));
            format!("{section}{}", stem.replace('_', " "))
        },
        |(_, n)| (*n).to_owned(),
    );
    (name, unit)
}

/// An axis label for a study parameter: its documented name and unit, "load line length, one way (m)".
pub fn param_label(key: &str) -> String {
    match param_name_unit(key) {
        (name, "") => name,
        (name, unit) => format!("{name} ({unit})"),
    }
}

/// The metric plots (studies with a numeric axis or a random parameter) and
/// arrester energy vs loop inductance (studies of more than one case).
/// Returns the files written.
pub fn metric_plots(
    dir: &Path,
    study: &Study,
    results: &[CaseResult],
    formats: Formats,
) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    let axes = plot_axes(study);
    if let Some(x) = axes.x.filter(|x| x.is_numeric(study)) {
        for m in METRIC_PLOTS {
            written.extend(metric_figure(study, results, x, axes.series, m).render(dir, m.stem, formats)?);
        }
    }
    if results.len() > 1 {
        written.extend(energy_vs_inductance(study, results, axes.series).render(
            dir,
            "arrester_energy_vs_inductance",
            formats,
        )?);
    }
    Ok(written)
}

fn metric_figure(study: &Study, results: &[CaseResult], x: Param, series: Option<usize>, m: &MetricPlot) -> Figure {
    let scatter = matches!(x, Param::Random(_));
    // series index → points (for a grid x: x index → worst value over the other axes and draws)
    let mut groups: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    let mut folded: BTreeMap<(usize, usize), (f64, f64)> = BTreeMap::new();
    let mut limit: Option<f64> = None;
    for r in results {
        let v = (m.metric)(r);
        let Some(xv) = x.value(study, r) else { continue };
        let g = series_of(study, series, r);
        if let Some(l) = m.limit {
            let l = l(r);
            limit = Some(limit.map_or(l, |lv: f64| if m.worst_is_max { lv.min(l) } else { lv.max(l) }));
        }
        match x {
            Param::Random(_) => groups.entry(g).or_default().push((xv, v)),
            Param::Axis(i) => {
                let j = study.cases.get(r.index).map_or(0, |c| c.at[i]);
                let e = folded.entry((g, j)).or_insert((xv, v));
                e.1 = if m.worst_is_max { e.1.max(v) } else { e.1.min(v) };
            }
        }
    }
    for ((g, _), p) in folded {
        groups.entry(g).or_default().push(p);
    }
    let lines: Vec<Series> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (g, mut points))| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series {
                name: series_name(study, series, g),
                color: color(i),
                width: 2,
                style: if scatter { Style::Points } else { Style::LineAndPoints },
                points,
            }
        })
        .collect();
    let folded_note = if scatter {
        " (every case)"
    } else if study.axes.len() > 1 + usize::from(series.is_some()) || study.monte_carlo.is_some() {
        " (worst over the other parameters)"
    } else {
        ""
    };
    Figure {
        title: format!("{} — {}{folded_note}", study.name, m.title),
        x_desc: param_label(x.name(study)),
        size: (900, 560),
        panels: vec![Panel {
            y_desc: m.y_desc.into(),
            series: lines,
            limits: limit
                .map(|l| (l, format!("{}: {} {}", m.limit_name, super::random::round_significant(l, 4), m.unit)))
                .into_iter()
                .collect(),
            y_from_zero: m.worst_is_max,
            ..Panel::default()
        }],
        ..Figure::default()
    }
}

/// Arrester energy vs loop inductance, every case; beside each the energy
/// the arrester is rated for at that pulse's duration (P_allowed(t)·t with
/// t = E/P_peak): a case passes the arrester check when its dot is below
/// its cross.
fn energy_vs_inductance(study: &Study, results: &[CaseResult], series: Option<usize>) -> Figure {
    let mut groups: BTreeMap<usize, Vec<(f64, f64)>> = BTreeMap::new();
    let mut rated = Vec::new();
    for r in results {
        let m = &r.metrics;
        groups.entry(series_of(study, series, r)).or_default().push((m.loop_inductance_uh, m.arrester_energy_j));
        if m.arrester_peak_power_w > 0.0 {
            rated.push((m.loop_inductance_uh, m.arrester_allowed_power_w * m.arrester_pulse_us * 1e-6));
        }
    }
    let mut s: Vec<Series> = groups
        .into_iter()
        .enumerate()
        .map(|(i, (g, points))| Series {
            name: series_name(study, series, g),
            color: color(i),
            width: 2,
            style: Style::Points,
            points,
        })
        .collect();
    if !rated.is_empty() {
        s.push(Series {
            name: "rated energy at the pulse's duration (Pppm derated)".into(),
            color: RED.to_rgba(),
            width: 1,
            style: Style::Crosses,
            points: rated,
        });
    }
    Figure {
        title: format!("{} — Arrester energy vs loop inductance", study.name),
        x_desc: "loop inductance after the event (µH)".into(),
        size: (900, 560),
        panels: vec![Panel {
            y_desc: "arrester energy (J)".into(),
            series: s,
            limits: Vec::new(),
            y_from_zero: true,
            ..Panel::default()
        }],
        ..Figure::default()
    }
}

/// Current, switch voltage and arrester power of one event against time,
/// with the comparator's trip, the switch fully off and the current's zero
/// marked at the times the event's metrics give.
pub fn waveform_figure(title: &str, outcome: &Outcome, params: &TransientParams) -> Figure {
    let s = &outcome.samples;
    let m = &outcome.metrics;
    let line = |name: &str, f: fn(&models::transient::Sample) -> f64| Series {
        name: name.into(),
        color: BLUE.to_rgba(),
        width: 2,
        style: Style::Line,
        points: s.iter().map(|p| (p.t_s * 1e6, f(p))).collect(),
    };
    let peak = params.limits.peak_current_a;
    let v_ds = m.switch_voltage_rating_v;
    let mut marks: Vec<Mark> =
        [("comparator trip", m.trip_us), ("switch off", m.switch_off_us), ("current zero", m.time_to_zero_us)]
            .into_iter()
            .filter_map(|(what, us)| us.map(|us| (what, us)))
            .map(|(what, us)| Mark { x: us, label: format!("{us:.1} µs {what}"), color: RED.to_rgba() })
            .collect();
    marks.sort_by(|a, b| a.x.total_cmp(&b.x));
    Figure {
        title: title.into(),
        x_desc: "time from the fault (µs)".into(),
        size: (900, 900),
        panels: vec![
            Panel {
                y_desc: "current (A)".into(),
                series: vec![line("current (A)", |p| p.current_a)],
                limits: vec![(peak, format!("datasheet max peak current: {peak} A"))],
                y_from_zero: true,
                ..Panel::default()
            },
            Panel {
                y_desc: "switch voltage (V)".into(),
                series: vec![line("switch voltage (V)", |p| p.switch_voltage_v)],
                limits: vec![(v_ds, format!("switch V_DS rating: {v_ds} V"))],
                y_from_zero: true,
                ..Panel::default()
            },
            Panel {
                y_desc: "arrester power (kW)".into(),
                series: vec![line("arrester power (kW)", |p| p.arrester_power_w * 1e-3)],
                limits: Vec::new(),
                y_from_zero: true,
                ..Panel::default()
            },
        ],
        marks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21 item 7: study axes are labelled with the documented names and units, not raw keys.
    #[test]
    fn issue_21_study_axes_have_documented_names_and_units() {
        assert_eq!(param_label("load_line.length_m"), "load line length, one way (m)");
        assert_eq!(param_label("load_line.cross_section_mm2"), "load line cross-section (mm²)");
        assert_eq!(param_label("battery.temperature_c"), "battery temperature (°C)");
        assert_eq!(param_label("battery.cell_r0_ohm"), "cell R0 at 25 °C (Ω)");
        assert_eq!(param_label("event.position"), "fault position (0 = board terminals, 1 = far end)");
        // undocumented keys: named from the key, the unit from its suffix
        assert_eq!(param_label("battery_line.inductance_uh"), "battery line inductance (µH)");
        assert_eq!(param_label("arrester"), "arrester");
        for (key, _) in PARAM_NAMES {
            assert!(!param_label(key).contains('_'), "{key}: {}", param_label(key));
        }
    }

    /// Every limit line says what it is and its unit.
    #[test]
    fn issue_21_limits_have_units() {
        for m in METRIC_PLOTS.iter().filter(|m| m.limit.is_some()) {
            assert!(!m.limit_name.is_empty() && !m.unit.is_empty(), "{}", m.stem);
            assert!(m.y_desc.ends_with(&format!("({})", m.unit)), "{}: {} vs {}", m.stem, m.y_desc, m.unit);
        }
        let params = TransientParams::default();
        let outcome = models::transient::simulate(
            &params,
            models::variant::Variant::V12,
            &params.battery.state(models::variant::Variant::V12),
            &models::transient::EventParams::default(),
            true,
        )
        .unwrap();
        let fig = waveform_figure("w", &outcome, &params);
        let limits: Vec<&str> = fig.panels.iter().flat_map(|p| &p.limits).map(|l| l.1.as_str()).collect();
        assert_eq!(limits, ["datasheet max peak current: 1300 A", "switch V_DS rating: 40 V"]);
    }
}
