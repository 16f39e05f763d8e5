//! Plots: a [`Figure`] — stacked [`Panel`]s of [`Series`] sharing one x
//! axis — drawn once per backend: plotters' SVG backend, and its bitmap
//! backend into a buffer that the `png` crate encodes. PNG text uses the
//! DejaVu Sans subset compiled in from `fonts/` (see its README), so it needs
//! no installed fonts. Used by `run --plots` (a scenario's trace), `sweep`
//! (metrics, waveforms) and `hil-rig compare` (board vs twin).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

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
#[derive(Debug, Clone)]
pub struct Panel {
    pub y_desc: String,
    pub series: Vec<Series>,
    /// Horizontal limit lines (red), with their legend text.
    pub limits: Vec<(f64, String)>,
    /// Start the y axis at 0 (or below, if values are negative).
    pub y_from_zero: bool,
}

/// A titled stack of panels over one x axis.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub x_desc: String,
    pub size: (u32, u32),
    pub panels: Vec<Panel>,
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

impl Figure {
    fn x_range(&self) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for p in self.panels.iter().flat_map(|p| &p.series).flat_map(|s| &s.points) {
            (lo, hi) = (lo.min(p.0), hi.max(p.0));
        }
        padded(lo, hi)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
        root.fill(&WHITE).map_err(e)?;
        let root = root.titled(&self.title, ("sans-serif", 20)).map_err(e)?;
        let (x0, x1) = self.x_range();
        let areas = root.split_evenly((self.panels.len().max(1), 1));
        for (area, panel) in areas.iter().zip(&self.panels) {
            let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
            for p in panel.series.iter().flat_map(|s| &s.points) {
                (y0, y1) = (y0.min(p.1), y1.max(p.1));
            }
            for (l, _) in &panel.limits {
                (y0, y1) = (y0.min(*l), y1.max(*l));
            }
            if panel.y_from_zero {
                (y0, y1) = (y0.min(0.0), y1.max(0.0));
            }
            let (y0, y1) = padded(y0, y1);
            // plot area without the label areas and margins
            let (w, h) = area.dim_in_pixel();
            let plot_px = (f64::from(w) - 92.0, f64::from(h) - 60.0);
            let mut chart = ChartBuilder::on(area)
                .margin(10)
                .x_label_area_size(40)
                .y_label_area_size(72)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(e)?;
            chart
                .configure_mesh()
                .x_desc(self.x_desc.as_str())
                .y_desc(panel.y_desc.as_str())
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 15))
                .draw()
                .map_err(e)?;
            let mut labelled = false;
            for (l, name) in &panel.limits {
                chart
                    .draw_series(LineSeries::new([(x0, *l), (x1, *l)], RED.stroke_width(2)))
                    .map_err(e)?
                    .label(name.as_str())
                    .legend(|(a, b)| PathElement::new([(a, b), (a + 20, b)], RED.stroke_width(2)));
                labelled = true;
            }
            for s in &panel.series {
                let (color, width) = (s.color, s.width);
                let pts = s.points.iter().copied();
                let anno = match s.style {
                    Style::Line | Style::LineAndPoints => {
                        if s.style == Style::LineAndPoints {
                            chart
                                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                                .map_err(e)?;
                        }
                        chart.draw_series(LineSeries::new(pts, color.stroke_width(width))).map_err(e)?
                    }
                    Style::Points => chart.draw_series(pts.map(|p| Circle::new(p, 2, color.filled()))).map_err(e)?,
                    Style::Crosses => {
                        chart.draw_series(pts.map(|p| Cross::new(p, 3, color.stroke_width(1)))).map_err(e)?
                    }
                };
                if !s.name.is_empty() {
                    labelled = true;
                    anno.label(s.name.as_str()).legend(move |(a, b)| {
                        PathElement::new([(a, b), (a + 20, b)], color.stroke_width(width.max(2)))
                    });
                }
            }
            if labelled {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 13))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .position(legend_corner(panel, (x0, x1), (y0, y1), plot_px))
                    .draw()
                    .map_err(e)?;
            }
        }
        root.present().map_err(e)
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

/// The corner of the chart where the legend covers the least: series
/// segments and dots under it count 1 each, a limit line 3.
fn legend_corner(
    panel: &Panel,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
    (w_px, h_px): (f64, f64),
) -> SeriesLabelPosition {
    let names = panel.series.iter().map(|s| s.name.as_str()).filter(|n| !n.is_empty());
    let names: Vec<&str> = names.chain(panel.limits.iter().map(|(_, n)| n.as_str())).collect();
    let chars = names.iter().map(|n| n.chars().count()).max().unwrap_or(0) as f64;
    // the legend's size as a share of the plot: ~7.5 px per character plus the swatch; 20 px per entry
    let bw = ((chars * 7.5 + 50.0) / w_px.max(1.0)).min(0.95) * (x1 - x0);
    let bh = ((names.len() as f64 * 20.0 + 20.0) / h_px.max(1.0)).min(0.95) * (y1 - y0);
    let hits = |(bx0, bx1): (f64, f64), (by0, by1): (f64, f64)| {
        let inside = |(x, y): (f64, f64)| (bx0..=bx1).contains(&x) && (by0..=by1).contains(&y);
        let mut n = 0usize;
        for s in &panel.series {
            match s.style {
                Style::Points | Style::Crosses => n += s.points.iter().filter(|&&p| inside(p)).count(),
                Style::Line | Style::LineAndPoints => {
                    for w in s.points.windows(2) {
                        let (a, b) = (w[0], w[1]);
                        n += usize::from((0..=8).any(|k| {
                            let f = f64::from(k) / 8.0;
                            inside((a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f))
                        }));
                    }
                }
            }
        }
        n + 3 * panel.limits.iter().filter(|(l, _)| (by0..=by1).contains(l)).count()
    };
    let (left, right) = ((x0, x0 + bw), (x1 - bw, x1));
    let (top, bottom) = ((y1 - bh, y1), (y0, y0 + bh));
    [
        (SeriesLabelPosition::UpperRight, hits(right, top)),
        (SeriesLabelPosition::UpperLeft, hits(left, top)),
        (SeriesLabelPosition::LowerRight, hits(right, bottom)),
        (SeriesLabelPosition::LowerLeft, hits(left, bottom)),
    ]
    .into_iter()
    .min_by_key(|c| c.1)
    .map_or(SeriesLabelPosition::UpperRight, |c| c.0)
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
            }],
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
}
