//! SVG plots of a sweep: metrics vs the x axis (one line per series
//! value, the worst over any other axes), and the worst case's waveform.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use models::transient::{Outcome, TransientParams};
use plotters::prelude::*;

use super::report::plot_axes;
use super::{CaseResult, Study};

/// One metric plot.
struct MetricPlot {
    file: &'static str,
    title: &'static str,
    y_label: &'static str,
    metric: fn(&CaseResult) -> f64,
    /// The worst of several cases at one point is the largest (else the smallest).
    worst_is_max: bool,
    /// The limit line, if any.
    limit: Option<fn(&CaseResult) -> f64>,
}

const METRIC_PLOTS: &[MetricPlot] = &[
    MetricPlot {
        file: "peak_current.svg",
        title: "Peak short-circuit current",
        y_label: "peak current (A)",
        metric: |r| r.metrics.peak_current_a,
        worst_is_max: true,
        limit: Some(|_| models::variant::MAX_PEAK_CURRENT_A),
    },
    MetricPlot {
        file: "shutdown.svg",
        title: "Time above 250 A until the switch is off",
        y_label: "overcurrent (µs)",
        metric: |r| r.metrics.overcurrent_us.unwrap_or(0.0),
        worst_is_max: true,
        limit: Some(|_| models::variant::MAX_PEAK_DURATION_S * 1e6),
    },
    MetricPlot {
        file: "arrester_margin.svg",
        title: "Arrester margin: 1 − P_peak / P_allowed(pulse)",
        y_label: "margin (%)",
        metric: |r| r.metrics.arrester_margin_pct,
        worst_is_max: false,
        limit: Some(|_| 0.0),
    },
    MetricPlot {
        file: "arrester_energy.svg",
        title: "Energy into the arrester",
        y_label: "energy (J)",
        metric: |r| r.metrics.arrester_energy_j,
        worst_is_max: true,
        limit: None,
    },
    MetricPlot {
        file: "switch_voltage.svg",
        title: "Peak voltage across the switch",
        y_label: "voltage (V)",
        metric: |r| r.metrics.peak_switch_voltage_v,
        worst_is_max: true,
        limit: Some(|r| r.metrics.switch_voltage_rating_v),
    },
];

fn err<E: std::fmt::Display>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("plotting {}: {e}", path.display())
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - d, hi + d);
    }
    let d = (hi - lo) * 0.05;
    (lo - d, hi + d)
}

/// The metric plots, when the study has a numeric axis. Returns the files written.
pub fn metric_plots(dir: &Path, study: &Study, results: &[CaseResult]) -> Result<Vec<PathBuf>, String> {
    let (Some(x), series) = plot_axes(study) else { return Ok(Vec::new()) };
    let mut written = Vec::new();
    for MetricPlot { file, title, y_label, metric, worst_is_max, limit } in METRIC_PLOTS {
        // series index → x → worst value over the other axes
        let mut groups: BTreeMap<usize, BTreeMap<usize, f64>> = BTreeMap::new();
        let mut limit_v: Option<f64> = None;
        for r in results {
            let v = metric(r);
            let at = study.coordinates(r.index);
            let e = groups.entry(series.map_or(0, |s| at[s])).or_default().entry(at[x]).or_insert(v);
            *e = if *worst_is_max { e.max(v) } else { e.min(v) };
            if let Some(l) = limit {
                limit_v = Some(limit_v.map_or(l(r), |lv: f64| if *worst_is_max { lv.min(l(r)) } else { lv.max(l(r)) }));
            }
        }
        let lines: Vec<(String, Vec<(f64, f64)>)> = groups
            .into_iter()
            .map(|(g, pts)| {
                let mut p: Vec<(f64, f64)> = pts
                    .into_iter()
                    .filter_map(|(j, v)| super::study::number(&study.axes[x].values[j]).map(|xv| (xv, v)))
                    .collect();
                p.sort_by(|a, b| a.0.total_cmp(&b.0));
                let name = series
                    .map_or_else(String::new, |s| format!("{} = {}", study.axes[s].param, study.axes[s].labels[g]));
                (name, p)
            })
            .collect();
        let all = lines.iter().flat_map(|(_, p)| p.iter());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
        for &(a, b) in all {
            (x0, x1, y0, y1) = (x0.min(a), x1.max(a), y0.min(b), y1.max(b));
        }
        if let Some(l) = limit_v {
            (y0, y1) = (y0.min(l), y1.max(l));
        }
        if *worst_is_max {
            y0 = y0.min(0.0);
        }
        let (x0, x1) = padded(x0, x1);
        let (y0, y1) = padded(y0, y1);
        let path = dir.join(file);
        let e = err(&path);
        let root = SVGBackend::new(&path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(&e)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{} — {}", study.name, title), ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(&e)?;
        chart.configure_mesh().x_desc(study.axes[x].param.as_str()).y_desc(*y_label).draw().map_err(&e)?;
        if let Some(l) = limit_v {
            chart
                .draw_series(LineSeries::new([(x0, l), (x1, l)], RED.stroke_width(2)))
                .map_err(&e)?
                .label(format!("limit {l}"))
                .legend(|(a, b)| PathElement::new([(a, b), (a + 20, b)], RED.stroke_width(2)));
        }
        for (i, (name, pts)) in lines.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let s = chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2))).map_err(&e)?;
            if !name.is_empty() {
                s.label(name.as_str())
                    .legend(move |(a, b)| PathElement::new([(a, b), (a + 20, b)], color.stroke_width(2)));
            }
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(&e)?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(&e)?;
        root.present().map_err(&e)?;
        written.push(path.clone());
    }
    Ok(written)
}

/// Current, switch voltage and arrester power of one event against time.
pub fn waveform_plot(path: &Path, title: &str, outcome: &Outcome, params: &TransientParams) -> Result<(), String> {
    let e = err(path);
    let s = &outcome.samples;
    let (t0, t1) = padded(s.first().map_or(0.0, |p| p.t_s * 1e6), s.last().map_or(1.0, |p| p.t_s * 1e6));
    let root = SVGBackend::new(path, (900, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(&e)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(&e)?;
    let panels = root.split_evenly((3, 1));
    let m = &outcome.metrics;
    type Series = (&'static str, fn(&models::transient::Sample) -> f64, Option<(f64, String)>);
    let specs: [Series; 3] = [
        (
            "current (A)",
            |p| p.current_a,
            Some((params.limits.peak_current_a, format!("{} A peak rating", params.limits.peak_current_a))),
        ),
        (
            "switch voltage (V)",
            |p| p.switch_voltage_v,
            Some((m.switch_voltage_rating_v, format!("{} V V_DS rating", m.switch_voltage_rating_v))),
        ),
        ("arrester power (kW)", |p| p.arrester_power_w * 1e-3, None),
    ];
    for (area, (label, f, limit)) in panels.iter().zip(specs) {
        let (mut y0, mut y1) = (0.0f64, 0.0f64);
        for p in s {
            (y0, y1) = (y0.min(f(p)), y1.max(f(p)));
        }
        if let Some((l, _)) = &limit {
            y1 = y1.max(*l);
        }
        let (y0, y1) = padded(y0, y1);
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(t0..t1, y0..y1)
            .map_err(&e)?;
        chart.configure_mesh().x_desc("time from the fault (µs)").y_desc(label).draw().map_err(&e)?;
        if let Some((l, name)) = limit {
            chart
                .draw_series(LineSeries::new([(t0, l), (t1, l)], RED.stroke_width(1)))
                .map_err(&e)?
                .label(name)
                .legend(|(a, b)| PathElement::new([(a, b), (a + 20, b)], RED.stroke_width(1)));
        }
        chart
            .draw_series(LineSeries::new(s.iter().map(|p| (p.t_s * 1e6, f(p))), BLUE.stroke_width(2)))
            .map_err(&e)?
            .label(label)
            .legend(|(a, b)| PathElement::new([(a, b), (a + 20, b)], BLUE.stroke_width(2)));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(&e)?;
    }
    root.present().map_err(&e)?;
    Ok(())
}
