//! Plots: a [`Figure`] — stacked [`Panel`]s of [`Series`] sharing one x
//! axis — drawn once per backend: plotters' SVG backend, and its bitmap
//! backend into a buffer that the `png` crate encodes. PNG text uses the
//! DejaVu Sans subset compiled in from `fonts/` (see its README), so it needs
//! no installed fonts. Used by `run --plots` (a scenario's trace), `sweep`
//! (metrics, waveforms) and `hil-rig compare` (board vs twin).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// The font PNG text is drawn with (SVG names `sans-serif` and leaves it to the viewer).
const FONT_TTF: &[u8] = include_bytes!("fonts/DejaVuSans-subset.ttf");
/// Most points per series in a trace plot; longer traces are decimated.
pub const MAX_TRACE_POINTS: usize = 2000;

/// Makes the compiled-in font plotters' `sans-serif` (needed before any
/// plot: plotters lays out text with it; repeating it is harmless).
pub fn register_font() -> Result<(), String> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, FONT_TTF)
        .map_err(|_| "the compiled-in plot font (sim/src/report/fonts) is not a valid TrueType font".to_owned())
}

/// Which files a plot is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Formats {
    pub svg: bool,
    pub png: bool,
}

impl Formats {
    pub const SVG_AND_PNG: Formats = Formats { svg: true, png: true };
    pub const SVG: Formats = Formats { svg: true, png: false };
}

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A line with a dot at each point (grid studies).
    LineAndPoints,
    /// A line (traces, waveforms).
    Line,
    /// Dots only (Monte Carlo scatter).
    Points,
    /// Crosses only (rated values beside the dots).
    Crosses,
}

/// One named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: RGBAColor,
    pub width: u32,
    pub style: Style,
    pub points: Vec<(f64, f64)>,
}

/// One chart of a figure.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub y_desc: String,
    pub series: Vec<Series>,
    /// Horizontal limit lines (red), with their legend text (give the unit: "1300 A peak rating").
    pub limits: Vec<(f64, String)>,
    /// Start the y axis at 0 (or below, if values are negative).
    pub y_from_zero: bool,
    /// The y axis spans at least this (y units), so that a flat reading
    /// quantised to its resolution (0.1 °C) stays a flat line and not a
    /// jagged "error" filling the panel. 0: the data's own span.
    pub min_span: f64,
    /// A state panel: lane `k` is a digital signal drawn between `k − 0.3`
    /// (off) and `k + 0.3` (on) ([`lane`]), its name the y label at `k`.
    pub lanes: Vec<String>,
    /// Shaded bands (e.g. the truth ± the datasheet's accuracy), under the series.
    pub bands: Vec<Band>,
}

/// A shaded band: (x, low, high) points.
#[derive(Debug, Clone)]
pub struct Band {
    pub name: String,
    pub color: RGBAColor,
    pub points: Vec<(f64, f64, f64)>,
}

/// A vertical mark across every panel at `x` (an event, a trip), numbered
/// at the top of the first panel and listed with its label beside the last.
#[derive(Debug, Clone)]
pub struct Mark {
    pub x: f64,
    pub label: String,
    pub color: RGBAColor,
}

/// A titled stack of panels over one x axis.
#[derive(Debug, Clone, Default)]
pub struct Figure {
    pub title: String,
    pub x_desc: String,
    pub size: (u32, u32),
    pub panels: Vec<Panel>,
    pub marks: Vec<Mark>,
}

/// A corner of a panel's plot area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corner {
    UpperRight,
    UpperLeft,
    LowerRight,
    LowerLeft,
}

/// Where a panel's legend goes: inside, in a corner it covers nothing in,
/// or outside the plot area (a strip right of every panel).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegendPlace {
    Inside(Corner),
    Outside,
}

/// Widest and narrowest legend strip right of the plot areas (px): as wide
/// as its longest row needs within these (longer rows wrap).
pub const LEGEND_STRIP_PX: (u32, u32) = (370, 160);
/// Legend rows (px), the text's size, an average character's width at that size.
const LEGEND_ROW_PX: i32 = 17;
const LEGEND_FONT_PX: u32 = 13;
const LEGEND_CHAR_PX: f64 = 7.0;
/// The swatch and the gaps around it in a legend row (px).
const LEGEND_SWATCH_PX: i32 = 24;
const LEGEND_PAD_PX: i32 = 6;
/// Margin around a chart and its label areas (px).
const MARGIN_PX: u32 = 10;
const X_LABEL_PX: u32 = 40;
const Y_LABEL_PX: u32 = 78;
/// A lane name's characters (px each) in a state panel's y labels.
const LANE_CHAR_PX: u32 = 7;
/// The title's largest and smallest size (px).
const TITLE_PX: (f64, f64) = (20.0, 12.0);

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

/// A panel's y axis: the data, bands and limits (and 0 with
/// `y_from_zero`), widened to `min_span` about their middle (upwards from
/// a 0 start), then padded by 5 %; a state panel's lanes fixed.
pub fn y_range(panel: &Panel) -> (f64, f64) {
    if !panel.lanes.is_empty() {
        return (-0.5, panel.lanes.len() as f64 - 0.5);
    }
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut take = |v: f64| {
        if v.is_finite() {
            (lo, hi) = (lo.min(v), hi.max(v));
        }
    };
    panel.series.iter().flat_map(|s| &s.points).for_each(|p| take(p.1));
    panel.bands.iter().flat_map(|b| &b.points).for_each(|p| {
        take(p.1);
        take(p.2);
    });
    panel.limits.iter().for_each(|l| take(l.0));
    if panel.y_from_zero {
        take(0.0);
    }
    if !(lo.is_finite() && hi.is_finite()) {
        return (0.0, 1.0);
    }
    let widen = panel.min_span - (hi - lo);
    if widen > 0.0 {
        if panel.y_from_zero && lo == 0.0 {
            hi += widen;
        } else {
            (lo, hi) = (lo - widen / 2.0, hi + widen / 2.0);
        }
    }
    padded(lo, hi)
}

/// A digital state as lane `k` of a state panel: `on` values step between
/// `k − 0.3` and `k + 0.3`, keeping only the rows where it changed (exact,
/// however long the trace). The row at `t` holds the state at `t`: a change
/// is drawn at the first row that shows it.
pub fn lane(k: usize, name: &str, t: &[f64], on: &[bool], color: RGBAColor) -> Series {
    let y = |v: bool| k as f64 + if v { 0.3 } else { -0.3 };
    let mut points = Vec::new();
    for (i, (&t, &v)) in t.iter().zip(on).enumerate() {
        if i == 0 {
            points.push((t, y(v)));
        } else if v != on[i - 1] {
            points.push((t, y(on[i - 1])));
            points.push((t, y(v)));
        }
    }
    if let (Some(&tl), Some(&vl)) = (t.last(), on.last()) {
        if points.last().is_some_and(|p| p.0 != tl) {
            points.push((tl, y(vl)));
        }
    }
    Series { name: name.into(), color, width: 2, style: Style::Line, points }
}

/// One row of a legend: the swatch and its text.
enum Swatch {
    Line(RGBAColor, u32),
    Dot(RGBAColor),
    Cross(RGBAColor),
    Fill(RGBAColor),
    Number(String, RGBAColor),
}

fn legend_entries(panel: &Panel) -> Vec<(Swatch, String)> {
    let mut rows: Vec<(Swatch, String)> =
        panel.limits.iter().map(|(_, n)| (Swatch::Line(RED.to_rgba(), 2), n.clone())).collect();
    for s in panel.series.iter().filter(|s| !s.name.is_empty()) {
        let swatch = match s.style {
            Style::Line | Style::LineAndPoints => Swatch::Line(s.color, s.width.max(2)),
            Style::Points => Swatch::Dot(s.color),
            Style::Crosses => Swatch::Cross(s.color),
        };
        rows.push((swatch, s.name.clone()));
    }
    rows.extend(panel.bands.iter().filter(|b| !b.name.is_empty()).map(|b| (Swatch::Fill(b.color), b.name.clone())));
    rows
}

/// A legend box of `rows` rows of at most `chars` characters (px).
fn legend_box_px(rows: usize, chars: usize) -> (f64, f64) {
    (
        chars as f64 * LEGEND_CHAR_PX + f64::from(LEGEND_SWATCH_PX + 3 * LEGEND_PAD_PX),
        rows as f64 * f64::from(LEGEND_ROW_PX) + f64::from(2 * LEGEND_PAD_PX),
    )
}

/// Does the segment a–b pass through the box (Liang–Barsky clipping)?
fn segment_in_box(a: (f64, f64), b: (f64, f64), (x0, x1): (f64, f64), (y0, y1): (f64, f64)) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [(-dx, a.0 - x0), (dx, x1 - a.0), (-dy, a.1 - y0), (dy, y1 - a.1)] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                if r > t1 {
                    return false;
                }
                t0 = t0.max(r);
            } else {
                if r < t0 {
                    return false;
                }
                t1 = t1.min(r);
            }
        }
    }
    t0 <= t1
}

/// Where `panel`'s legend goes, drawn on axes `x` × `y` over a plot area
/// of `plot_px` pixels with vertical marks at `marks`: the first corner
/// (upper right, upper left, lower right, lower left) whose legend box
/// covers no segment of a line, no dot, no band point, no limit line and
/// no mark; outside the plot area when every corner covers something.
pub fn legend_place(
    panel: &Panel,
    marks: &[f64],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (w_px, h_px): (f64, f64),
) -> LegendPlace {
    let rows = legend_entries(panel);
    let chars = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
    let (bw_px, bh_px) = legend_box_px(rows.len(), chars);
    if bw_px > w_px * 0.6 || bh_px > h_px * 0.9 {
        return LegendPlace::Outside;
    }
    // the box plus its margin from the corner, in data units
    let bw = (bw_px + f64::from(LEGEND_PAD_PX)) / w_px.max(1.0) * (x1 - x0);
    let bh = (bh_px + f64::from(LEGEND_PAD_PX)) / h_px.max(1.0) * (y1 - y0);
    let covers = |bx: (f64, f64), by: (f64, f64)| {
        let inside = |(x, y): (f64, f64)| (bx.0..=bx.1).contains(&x) && (by.0..=by.1).contains(&y);
        panel.series.iter().any(|s| match s.style {
            Style::Points | Style::Crosses => s.points.iter().any(|&p| inside(p)),
            Style::Line | Style::LineAndPoints => {
                s.points.len() == 1 && inside(s.points[0])
                    || s.points.windows(2).any(|w| segment_in_box(w[0], w[1], bx, by))
            }
        }) || panel
            .bands
            .iter()
            .flat_map(|b| &b.points)
            .any(|&(x, lo, hi)| (bx.0..=bx.1).contains(&x) && lo <= by.1 && hi >= by.0)
            || panel.limits.iter().any(|(l, _)| (by.0..=by.1).contains(l))
            || marks.iter().any(|m| (bx.0..=bx.1).contains(m))
    };
    let (left, right) = ((x0, x0 + bw), (x1 - bw, x1));
    let (top, bottom) = ((y1 - bh, y1), (y0, y0 + bh));
    [
        (Corner::UpperRight, right, top),
        (Corner::UpperLeft, left, top),
        (Corner::LowerRight, right, bottom),
        (Corner::LowerLeft, left, bottom),
    ]
    .into_iter()
    .find(|&(_, bx, by)| !covers(bx, by))
    .map_or(LegendPlace::Outside, |(c, _, _)| LegendPlace::Inside(c))
}

/// Tick labels with as many decimals as the axis's span needs (a point,
/// never a comma; no "−0").
pub fn tick_label(v: f64, span: f64) -> String {
    let decimals = if span > 0.0 && span.is_finite() { (-(span / 10.0).log10()).ceil().clamp(0.0, 6.0) } else { 0.0 };
    let s = format!("{v:.*}", decimals as usize);
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.trim_start_matches('-').to_owned()
    } else {
        s
    }
}

/// The title's lines and size so that it fits `width_px`: one line at up
/// to [`TITLE_PX`], else two lines split at the space nearest the middle.
fn title_layout(title: &str, width_px: f64) -> (Vec<String>, f64) {
    let fit = |chars: usize| ((width_px - 20.0) / (chars.max(1) as f64 * 0.56)).min(TITLE_PX.0);
    let n = title.chars().count();
    if fit(n) >= TITLE_PX.1 {
        return (vec![title.to_owned()], fit(n).floor());
    }
    let mid = title.len() / 2;
    let split =
        title.char_indices().filter(|&(_, c)| c == ' ').min_by_key(|&(i, _)| i.abs_diff(mid)).map_or(mid, |(i, _)| i);
    let (a, b) = title.split_at(split);
    let (a, b) = (a.trim().to_owned(), b.trim().to_owned());
    let size = fit(a.chars().count().max(b.chars().count())).max(TITLE_PX.1 - 2.0).floor();
    (vec![a, b], size)
}

impl Figure {
    fn x_range(&self) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in self.panels.iter().flat_map(|p| &p.series).flat_map(|s| &s.points) {
            if p.0.is_finite() {
                (lo, hi) = (lo.min(p.0), hi.max(p.0));
            }
        }
        padded(lo, hi)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let (w, h) = root.dim_in_pixel();
        let (lines, size) = title_layout(&self.title, f64::from(w));
        let line_px = (size * 1.25).ceil() as i32;
        for (k, line) in lines.iter().enumerate() {
            let style = TextStyle::from(("sans-serif", size).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(line.as_str(), (w as i32 / 2, 6 + k as i32 * line_px), style)).map_err(e)?;
        }
        let title_px = 12 + lines.len() as i32 * line_px;
        let body = root.margin(title_px as u32, 0, 0, 0);
        let (x0, x1) = self.x_range();
        let areas = body.split_evenly((self.panels.len().max(1), 1));
        let mark_xs: Vec<f64> = self.marks.iter().map(|m| m.x).collect();
        // every panel's y label area as wide as the longest lane name needs (the x axes stay aligned)
        let lane_chars = self.panels.iter().flat_map(|p| &p.lanes).map(|l| l.chars().count()).max().unwrap_or(0);
        let y_label_px = Y_LABEL_PX.max(lane_chars as u32 * LANE_CHAR_PX + 16);
        let strip_w = self.strip_px();
        let plot_px = |area_h: u32, strip: bool| {
            let strip = if strip { strip_w } else { 0 };
            (
                f64::from(w.saturating_sub(2 * MARGIN_PX + y_label_px + strip)),
                f64::from(area_h.saturating_sub(2 * MARGIN_PX + X_LABEL_PX)),
            )
        };
        let area_h = areas.first().map_or(h, |a| a.dim_in_pixel().1);
        let place = |strip: bool| -> Vec<LegendPlace> {
            self.panels
                .iter()
                .map(|p| legend_place(p, &mark_xs, (x0, x1), y_range(p), plot_px(area_h, strip)))
                .collect()
        };
        // A strip for all panels (their x axes stay aligned) when a legend fits in no corner or marks need a list.
        let strip = !self.marks.is_empty()
            || place(false)
                .iter()
                .zip(&self.panels)
                .any(|(p, panel)| *p == LegendPlace::Outside && !legend_entries(panel).is_empty());
        let places = if strip { vec![LegendPlace::Outside; self.panels.len()] } else { place(false) };
        let last = self.panels.len().saturating_sub(1);
        for (k, ((area, panel), place)) in areas.iter().zip(&self.panels).zip(places).enumerate() {
            let (y0, y1) = y_range(panel);
            let (chart_area, strip_area) = if strip {
                let (aw, _) = area.dim_in_pixel();
                let (a, b) = area.split_horizontally(aw.saturating_sub(strip_w));
                (a, Some(b))
            } else {
                (area.clone(), None)
            };
            let mut chart = ChartBuilder::on(&chart_area)
                .margin(MARGIN_PX)
                .x_label_area_size(X_LABEL_PX)
                .y_label_area_size(y_label_px)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            let (xs, ys) = (x1 - x0, y1 - y0);
            let x_fmt = |v: &f64| tick_label(*v, xs);
            let y_fmt = |v: &f64| {
                if panel.lanes.is_empty() {
                    tick_label(*v, ys)
                } else if (v - v.round()).abs() < 1e-9 && v.round() >= 0.0 {
                    panel.lanes.get(v.round() as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(self.x_desc.as_str())
                .y_desc(panel.y_desc.as_str())
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15))
                .x_label_formatter(&x_fmt)
                .y_label_formatter(&y_fmt);
            if !panel.lanes.is_empty() {
                mesh.y_labels(4 * panel.lanes.len() + 1).disable_y_mesh();
            }
            mesh.draw().map_err(e)?;
            for b in &panel.bands {
                let mut poly: Vec<(f64, f64)> = b.points.iter().map(|p| (p.0, p.1)).collect();
                poly.extend(b.points.iter().rev().map(|p| (p.0, p.2)));
                chart.draw_series(std::iter::once(Polygon::new(poly, b.color.filled()))).map_err(e)?;
            }
            for (l, _) in &panel.limits {
                chart.draw_series(LineSeries::new([(x0, *l), (x1, *l)], RED.stroke_width(2))).map_err(e)?;
            }
            for m in &self.marks {
                chart
                    .draw_series(LineSeries::new([(m.x, y0), (m.x, y1)], m.color.mix(0.8).stroke_width(1)))
                    .map_err(e)?;
            }
            for s in &panel.series {
                let (color, width) = (s.color, s.width);
                let pts = s.points.iter().copied();
                match s.style {
                    Style::Line | Style::LineAndPoints => {
                        if s.style == Style::LineAndPoints {
                            chart
                                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                                .map_err(e)?;
                        }
                        chart.draw_series(LineSeries::new(pts, color.stroke_width(width))).map_err(e)?;
                    }
                    Style::Points => {
                        chart.draw_series(pts.map(|p| Circle::new(p, 2, color.filled()))).map_err(e)?;
                    }
                    Style::Crosses => {
                        chart.draw_series(pts.map(|p| Cross::new(p, 3, color.stroke_width(1)))).map_err(e)?;
                    }
                }
            }
            // plot area in backend pixels
            let (px0, py0) = chart.backend_coord(&(x0, y1));
            let (px1, py1) = chart.backend_coord(&(x1, y0));
            if k == 0 {
                self.draw_mark_numbers(root, &chart, py0).map_err(e)?;
            }
            let mut rows = legend_entries(panel);
            if k == last && !self.marks.is_empty() {
                rows.extend(
                    self.marks
                        .iter()
                        .enumerate()
                        .map(|(i, m)| (Swatch::Number(format!("{}", i + 1), m.color), m.label.clone())),
                );
            }
            if rows.is_empty() {
                continue;
            }
            match (place, &strip_area) {
                (LegendPlace::Outside, Some(sa)) => {
                    let ((sx, _), (sw, _)) = (sa.get_base_pixel(), sa.dim_in_pixel());
                    let bottom = if k == last { h as i32 - 4 } else { py1 };
                    draw_legend(root, &rows, (sx + LEGEND_PAD_PX, py0), (sw as i32 - 2 * LEGEND_PAD_PX, bottom - py0))
                        .map_err(e)?;
                }
                (place, _) => {
                    let c = if let LegendPlace::Inside(c) = place { c } else { Corner::UpperRight };
                    let chars = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0);
                    let (bw, bh) = legend_box_px(rows.len(), chars);
                    let (bw, bh) = (bw as i32, bh as i32);
                    let p = LEGEND_PAD_PX;
                    let x = match c {
                        Corner::UpperLeft | Corner::LowerLeft => px0 + p,
                        _ => px1 - p - bw,
                    };
                    let y = match c {
                        Corner::UpperLeft | Corner::UpperRight => py0 + p,
                        _ => py1 - p - bh,
                    };
                    root.draw(&Rectangle::new([(x, y), (x + bw, y + bh)], WHITE.mix(0.9).filled())).map_err(e)?;
                    root.draw(&Rectangle::new([(x, y), (x + bw, y + bh)], BLACK.stroke_width(1))).map_err(e)?;
                    draw_legend(root, &rows, (x, y), (bw, bh)).map_err(e)?;
                }
            }
        }
        root.present().map_err(e)
    }

    /// The legend strip's width: its longest row's, within [`LEGEND_STRIP_PX`].
    pub fn strip_px(&self) -> u32 {
        let chars = self
            .panels
            .iter()
            .flat_map(legend_entries)
            .map(|r| r.1)
            .chain(self.marks.iter().map(|m| m.label.clone()))
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(0);
        let need = legend_box_px(1, chars).0 as u32 + 2 * LEGEND_PAD_PX as u32;
        need.clamp(LEGEND_STRIP_PX.1, LEGEND_STRIP_PX.0)
    }

    /// The marks' numbers at the top of the first panel; marks closer than
    /// 16 px share one label ("1,2").
    fn draw_mark_numbers<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        chart: &ChartContext<
            DB,
            Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
        >,
        top_px: i32,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let mut groups: Vec<(i32, String, RGBAColor)> = Vec::new();
        for (i, m) in self.marks.iter().enumerate() {
            let x = chart.backend_coord(&(m.x, 0.0)).0;
            match groups.last_mut() {
                Some(g) if (x - g.0).abs() < 16 => g.1.push_str(&format!(",{}", i + 1)),
                _ => groups.push((x, format!("{}", i + 1), m.color)),
            }
        }
        for (x, text, color) in groups {
            let style = TextStyle::from(("sans-serif", 12).into_font()).color(&color);
            root.draw(&Text::new(text, (x + 3, top_px + 2), style))?;
        }
        Ok(())
    }

    /// Writes `<stem>.svg` and/or `<stem>.png` into `dir`; returns the files written.
    pub fn render(&self, dir: &Path, stem: &str, formats: Formats) -> Result<Vec<PathBuf>, String> {
        register_font()?;
        let mut written = Vec::new();
        let ctx = |path: &Path, e: String| format!("plotting {}: {e}", path.display());
        if formats.svg {
            let path = dir.join(format!("{stem}.svg"));
            {
                let root = SVGBackend::new(&path, self.size).into_drawing_area();
                self.draw(&root).map_err(|e| ctx(&path, e))?;
            }
            written.push(path);
        }
        if formats.png {
            let path = dir.join(format!("{stem}.png"));
            let (w, h) = self.size;
            let mut rgb = vec![255u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, self.size).into_drawing_area();
                self.draw(&root).map_err(|e| ctx(&path, e))?;
            }
            write_png(&path, &rgb, self.size).map_err(|e| ctx(&path, e))?;
            written.push(path);
        }
        Ok(written)
    }
}

/// `text` in lines of at most `max` characters, broken at spaces (a word
/// longer than a line is cut, "…").
fn wrap(text: &str, max: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in text.split(' ') {
        match lines.last_mut() {
            Some(l) if l.chars().count() + 1 + word.chars().count() <= max => {
                l.push(' ');
                l.push_str(word);
            }
            _ => lines.push(word.to_owned()),
        }
    }
    for l in &mut lines {
        if l.chars().count() > max {
            *l = l.chars().take(max.saturating_sub(1)).chain(std::iter::once('…')).collect();
        }
    }
    lines
}

/// Draws legend rows from `(x, y)` (backend px) in a box `w` × `h`: a text
/// too long for its column wraps onto the next rows; one column while the
/// rows fit, else as many columns as they need.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[(Swatch, String)],
    (x, y): (i32, i32),
    (w, h): (i32, i32),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let per_col = ((h - 2 * LEGEND_PAD_PX) / LEGEND_ROW_PX).max(1) as usize;
    let chars = |col_w: i32| {
        ((f64::from(col_w - LEGEND_SWATCH_PX - 3 * LEGEND_PAD_PX) / LEGEND_CHAR_PX).floor() as usize).max(3)
    };
    // the fewest columns the wrapped rows fit in
    let mut cols = 1;
    let lines = loop {
        let lines: Vec<(Option<&Swatch>, String)> = rows
            .iter()
            .flat_map(|(s, t)| {
                wrap(t, chars(w / cols as i32)).into_iter().enumerate().map(move |(k, l)| ((k == 0).then_some(s), l))
            })
            .collect();
        if lines.len() <= per_col * cols || cols >= 4 {
            break lines;
        }
        cols += 1;
    };
    let col_w = w / cols as i32;
    for (i, (swatch, text)) in lines.into_iter().enumerate() {
        let cx = x + (i / per_col) as i32 * col_w + LEGEND_PAD_PX;
        let cy = y + LEGEND_PAD_PX + (i % per_col) as i32 * LEGEND_ROW_PX + LEGEND_ROW_PX / 2;
        let sw = LEGEND_SWATCH_PX;
        match swatch {
            None => {}
            Some(Swatch::Line(c, width)) => {
                root.draw(&PathElement::new([(cx, cy), (cx + sw, cy)], c.stroke_width(*width)))?;
            }
            Some(Swatch::Dot(c)) => root.draw(&Circle::new((cx + sw / 2, cy), 3, c.filled()))?,
            Some(Swatch::Cross(c)) => root.draw(&Cross::new((cx + sw / 2, cy), 4, c.stroke_width(1)))?,
            Some(Swatch::Fill(c)) => root.draw(&Rectangle::new([(cx, cy - 5), (cx + sw, cy + 5)], c.filled()))?,
            Some(Swatch::Number(n, c)) => {
                let style =
                    TextStyle::from(("sans-serif", 12).into_font()).color(c).pos(Pos::new(HPos::Left, VPos::Center));
                root.draw(&Text::new(n.clone(), (cx + 2, cy), style))?;
            }
        }
        let style = TextStyle::from(("sans-serif", LEGEND_FONT_PX).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        root.draw(&Text::new(text, (cx + sw + LEGEND_PAD_PX, cy), style))?;
    }
    Ok(())
}

/// Encodes an 8-bit RGB buffer as a PNG file.
fn write_png(path: &Path, rgb: &[u8], (w, h): (u32, u32)) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| e.to_string())?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| e.to_string())?;
    writer.write_image_data(rgb).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())
}

/// Colour of series `i`.
pub fn color(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// At most about `max_points` points of a series, keeping each bucket's
/// smallest and largest value (in time order), so peaks and dips survive.
pub fn decimate(t: &[f64], y: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let n = t.len().min(y.len());
    if n <= max_points.max(2) {
        return (0..n).map(|i| (t[i], y[i])).collect();
    }
    let buckets = (max_points / 2).max(1);
    let mut out = Vec::with_capacity(2 * buckets + 1);
    for b in 0..buckets {
        let (lo, hi) = (b * n / buckets, ((b + 1) * n / buckets).min(n));
        if lo >= hi {
            continue;
        }
        let (mut imin, mut imax) = (lo, lo);
        for i in lo..hi {
            if y[i] < y[imin] {
                imin = i;
            }
            if y[i] > y[imax] {
                imax = i;
            }
        }
        out.push((t[imin.min(imax)], y[imin.min(imax)]));
        if imin != imax {
            out.push((t[imin.max(imax)], y[imin.max(imax)]));
        }
    }
    if out.last().is_some_and(|p| p.0 != t[n - 1]) {
        out.push((t[n - 1], y[n - 1]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_extremes_and_bounds_the_count() {
        let t: Vec<f64> = (0..100_000).map(|i| i as f64).collect();
        let mut y: Vec<f64> = t.iter().map(|x| (x / 5000.0).sin()).collect();
        y[31_337] = 50.0; // a one-sample spike
        y[77_777] = -50.0;
        let d = decimate(&t, &y, 2000);
        assert!(d.len() <= 2001, "{}", d.len());
        assert!(d.contains(&(31_337.0, 50.0)) && d.contains(&(77_777.0, -50.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "time order");
        assert_eq!(d.first().unwrap().0, 0.0);
        assert_eq!(d.last().unwrap().0, 99_999.0);
        // short series pass unchanged
        assert_eq!(decimate(&t[..10], &y[..10], 2000).len(), 10);
    }

    #[test]
    fn a_figure_renders_as_svg_and_png() {
        let dir = std::env::temp_dir().join(format!("smartpro-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fig = Figure {
            title: "t — µs, °C, ≤ 1300 A, Ω".into(),
            x_desc: "x".into(),
            size: (400, 300),
            panels: vec![Panel {
                y_desc: "y".into(),
                series: vec![Series {
                    name: "a".into(),
                    color: color(0),
                    width: 2,
                    style: Style::LineAndPoints,
                    points: vec![(0.0, 1.0), (1.0, 3.0)],
                }],
                limits: vec![(2.0, "limit".into())],
                y_from_zero: true,
                ..Panel::default()
            }],
            ..Figure::default()
        };
        let files = fig.render(&dir, "f", Formats::SVG_AND_PNG).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.join("f.svg")).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("≤ 1300 A"), "{svg}");
        let png = std::fs::read(dir.join("f.png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (400, 300));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn line(points: Vec<(f64, f64)>) -> Series {
        Series { name: "data".into(), color: color(0), width: 2, style: Style::Line, points }
    }

    const PX: (f64, f64) = (800.0, 300.0);

    /// Issue 21 item 7: the legend goes in a corner it covers nothing in, else outside the plot area.
    #[test]
    fn issue_21_legend_never_covers_a_line() {
        let place = |p: &Panel, marks: &[f64]| legend_place(p, marks, (0.0, 10.0), y_range(p), PX);
        // a rising diagonal crosses the upper-right and lower-left corners
        let rising = Panel { series: vec![line(vec![(0.0, 0.0), (10.0, 10.0)])], ..Panel::default() };
        assert_eq!(place(&rising, &[]), LegendPlace::Inside(Corner::UpperLeft));
        // a mark near the left edge takes the upper left too
        assert_eq!(place(&rising, &[0.5]), LegendPlace::Inside(Corner::LowerRight));
        // a falling one: the upper right is free
        let falling = Panel { series: vec![line(vec![(0.0, 10.0), (10.0, 0.0)])], ..Panel::default() };
        assert_eq!(place(&falling, &[]), LegendPlace::Inside(Corner::UpperRight));
        // a segment that crosses the corner with both ends outside it still counts
        let crossing = Panel { series: vec![line(vec![(0.0, 0.0), (8.0, 10.4), (10.0, 9.4)])], ..Panel::default() };
        assert!(segment_in_box((8.0, 10.4), (10.0, 9.4), (9.0, 10.0), (9.5, 11.0)));
        assert!(!segment_in_box((8.0, 10.4), (10.0, 9.4), (9.9, 10.0), (10.0, 11.0)));
        assert_ne!(place(&crossing, &[]), LegendPlace::Inside(Corner::UpperRight));
        // a limit line along the top: a lower corner
        let limit = Panel {
            series: vec![line(vec![(0.0, 0.0), (10.0, 10.0)])],
            limits: vec![(10.0, "limit 10 A".into())],
            ..Panel::default()
        };
        assert_eq!(place(&limit, &[]), LegendPlace::Inside(Corner::LowerRight));
        // lines along the top and the bottom edge: no corner is free
        let full = Panel {
            series: vec![line(vec![(0.0, 0.0), (10.0, 0.0)]), line(vec![(0.0, 10.0), (10.0, 10.0)])],
            ..Panel::default()
        };
        assert_eq!(place(&full, &[]), LegendPlace::Outside);
        // dots count, and a legend too big for a corner goes outside
        let dots = Panel {
            series: vec![Series {
                style: Style::Points,
                points: vec![(0.2, 9.8), (9.8, 9.8), (9.8, 0.2), (0.2, 0.2)],
                ..line(vec![])
            }],
            ..Panel::default()
        };
        assert_eq!(place(&dots, &[]), LegendPlace::Outside);
        let many = Panel { series: (0..30).map(|_| line(vec![(4.0, 5.0), (6.0, 5.0)])).collect(), ..Panel::default() };
        assert_eq!(place(&many, &[]), LegendPlace::Outside);
    }

    /// Issue 21 item 7: a reading flickering by its 0.1 °C resolution does not fill the axis.
    #[test]
    fn issue_21_min_span_keeps_quantisation_flat() {
        let flicker: Vec<(f64, f64)> = (0..100).map(|k| (f64::from(k), if k % 2 == 0 { 24.9 } else { 25.0 })).collect();
        let bare = Panel { series: vec![line(flicker.clone())], ..Panel::default() };
        let (lo, hi) = y_range(&bare);
        assert!(hi - lo < 0.2, "without a span the flicker fills the axis: {lo}..{hi}");
        let spanned = Panel { min_span: 2.0, ..bare.clone() };
        let (lo, hi) = y_range(&spanned);
        assert!(hi - lo >= 2.0 && ((lo + hi) / 2.0 - 24.95).abs() < 1e-9, "{lo}..{hi}");
        // the flicker is at most 5 % of the axis
        assert!(0.1 / (hi - lo) <= 0.05);
        // data wider than the span keep their own range
        let wide = Panel { series: vec![line(vec![(0.0, 0.0), (1.0, 30.0)])], min_span: 2.0, ..Panel::default() };
        assert_eq!(y_range(&wide), padded(0.0, 30.0));
        // from zero: widened upwards
        let small = Panel {
            series: vec![line(vec![(0.0, 0.1), (1.0, 0.2)])],
            y_from_zero: true,
            min_span: 4.0,
            ..Panel::default()
        };
        assert_eq!(y_range(&small), padded(0.0, 4.0));
        // lanes are fixed
        let lanes = Panel { lanes: vec!["a".into(), "b".into()], ..Panel::default() };
        assert_eq!(y_range(&lanes), (-0.5, 1.5));
    }

    /// Issue 21 item 7: tick labels with a decimal point and the decimals the span needs; titles that fit.
    #[test]
    fn issue_21_ticks_and_titles_read_right() {
        assert_eq!(tick_label(25.0, 2.2), "25.0");
        assert_eq!(tick_label(13.305, 0.01), "13.305");
        assert_eq!(tick_label(13.305, 0.1), "13.30");
        assert_eq!(tick_label(1200.0, 1300.0), "1200");
        assert_eq!(tick_label(-0.0001, 1.0), "0.0");
        assert!(!tick_label(0.5, 1.0).contains(','));
        let long = "48v-installation-mc — Time above 250 A until the switch is off (worst over the other parameters)";
        let (lines, size) = title_layout(long, 900.0);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(long.chars().count() as f64 * size * 0.56 <= 880.0, "{size} px");
        let (lines, size) = title_layout(long, 600.0);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            assert!(l.chars().count() as f64 * size * 0.56 <= 580.0, "{l} at {size} px");
        }
        assert_eq!(title_layout("short", 900.0), (vec!["short".to_owned()], TITLE_PX.0));
    }

    /// Marks, lanes and a legend that has no free corner: the SVG holds the
    /// marks' numbers and labels, the lanes' names, and the legend right of the plot area.
    #[test]
    fn issue_21_marks_lanes_and_outside_legend_render() {
        let dir = std::env::temp_dir().join(format!("smartpro-plot-marks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t: Vec<f64> = (0..10).map(f64::from).collect();
        let on: Vec<bool> = t.iter().map(|&x| x < 5.0).collect();
        let fig = Figure {
            title: "marks".into(),
            x_desc: "time (s)".into(),
            size: (900, 600),
            panels: vec![
                Panel {
                    y_desc: "current (A)".into(),
                    series: vec![
                        Series { name: "top line".into(), ..line(vec![(0.0, 10.0), (9.0, 10.0)]) },
                        Series { name: "bottom line".into(), ..line(vec![(0.0, 0.0), (9.0, 0.0)]) },
                    ],
                    ..Panel::default()
                },
                Panel {
                    lanes: vec!["switch closed".into()],
                    series: vec![lane(0, "", &t, &on, color(1))],
                    ..Panel::default()
                },
            ],
            marks: vec![Mark { x: 5.0, label: "5 s short circuit trip".into(), color: RED.to_rgba() }],
        };
        fig.render(&dir, "m", Formats::SVG).unwrap();
        let svg = std::fs::read_to_string(dir.join("m.svg")).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let text_x = |s: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("text") && n.text().is_some_and(|t| t.trim() == s))
                .and_then(|n| n.attribute("x"))
                .and_then(|x| x.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no text {s:?}"))
        };
        let strip_x = f64::from(900 - fig.strip_px());
        for s in ["top line", "bottom line", "5 s short circuit trip"] {
            assert!(text_x(s) >= strip_x, "{s} at x = {} inside the plot area", text_x(s));
        }
        assert!(text_x("1") < strip_x, "the mark's number is on the plot");
        let plot_left = f64::from(MARGIN_PX + "switch closed".len() as u32 * LANE_CHAR_PX + 16);
        assert!(text_x("switch closed") <= plot_left, "the lane's name is its y label");
        // the lane: one change, drawn as a step at the first row that shows it
        assert_eq!(lane(0, "", &t, &on, color(1)).points, vec![(0.0, 0.3), (5.0, 0.3), (5.0, -0.3), (9.0, -0.3)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
