//! `hil-rig fit RECORDING --out params.toml`: identify the battery's
//! equivalent circuit from a recording of `hil-rig record` and write it as a
//! parameter file the twin loads (`ecm_file = "…"` in a scenario,
//! `hil-rig compare --ecm`).
//!
//! The fit itself is [`crate::estimate::fit`]: the pack's equations (n identical
//! cells, the chemistry's OCV table plus an offset, R0 and two RC pairs with
//! the exact zero-order hold over each sample interval, resistances scaled
//! with the recorded temperature), Levenberg–Marquardt over capacity, R0,
//! R1/τ1, R2/τ2, OCV offset and the initial SOC. This file turns a recording
//! into samples (the time axis, the rows that can be used), and prints and
//! writes the result.
//!
//! Time axis: the board's `uptime_s` when the recording has it (for a twin
//! served with `--speed K` it is simulated time), read through the
//! recording's own clock for sub-second resolution (`uptime = a + K·time_s`
//! fitted over the rows) when the two agree to the uptime's 1 s resolution,
//! else the uptime itself; without it, `time_s`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, ValueEnum, value_parser};
use firmware_core::map::by_name;
use models::cell::DEFAULT_R_ACTIVATION_J_PER_MOL;
use models::ecm::{self, EcmParams};
use models::ocv::Chemistry;
use models::variant::{POWER_CONSUMPTION_TYP_W, Variant};

use crate::Failure;
use crate::decode;
use crate::estimate::fit::{self, EcmFit, EcmFitConfig, FitError, FitSample, Param, ParamStatus, SeriesModel, figure};
use crate::estimate::lm::LmOptions;
use crate::exit::{Exit, Table};
use crate::recording::{self, Recording};

/// `fit`'s exit codes, for `--help`.
pub const EXIT_CODES: &Table = &[
    (
        Exit::Ok,
        "parameters written; parameters the recording does not determine are reported as such \
         (and held at a stated prior), not fatal",
    ),
    (Exit::Failed, "the fit did not converge or failed numerically (the reason is printed); nothing is written"),
    (
        Exit::BadInput,
        "bad usage: RECORDING missing or garbled (file and line named), without a current_A or voltage_V column, \
         too few usable samples, a bad --fix, no variant (neither --variant, --cells nor a variant_v column), \
         or FILE cannot be written",
    ),
];

/// Resolution of `voltage_V` in a recording: the board's `battery_voltage_mv`
/// register, 1 mV.
const VOLTAGE_RESOLUTION_V: f64 = crate::tolerance::VOLTAGE_RESOLUTION_V;
/// Correlations at least this strong are reported.
const STRONG_CORRELATION: f64 = 0.95;
/// Residuals this autocorrelated (lag 1) mean the model misses part of the dynamics.
const CORRELATED_RESIDUALS: f64 = 0.9;
/// A gap between samples longer than this many times the median interval is reported.
const GAP_FACTOR: f64 = 10.0;
/// Temperature assumed when the recording has no `temp_C` column (°C): the
/// tables' reference temperature.
const DEFAULT_TEMP_C: f64 = ecm::T_REF_C;
/// `uptime_s` has 1 s resolution: a line through (time_s, uptime) whose
/// residuals have an RMS within this (≈ the 0.29 s of uniform 1 s
/// quantization, with margin) is the uptime seen through the recording clock.
const UPTIME_LINE_RMS_S: f64 = 0.5;

#[derive(Args, Debug)]
pub struct Cmd {
    /// Recording to fit: the CSV of `hil-rig record` (time_s, current_A,
    /// voltage_V; uptime_s[s], temp_C, soc_pct, variant_v[V] and
    /// capacity_dah[Ah] are used when present)
    #[arg(value_name = "RECORDING")]
    recording: PathBuf,
    /// Parameter file to write (overwritten): an equivalent-circuit set for
    /// `ecm_file = "FILE"` in a scenario or `hil-rig compare --ecm FILE`
    #[arg(short = 'o', long, value_name = "FILE")]
    out: PathBuf,
    /// Board variant 12, 24 or 48 (the cell count); default: the recording's
    /// variant_v column
    #[arg(long, value_name = "12|24|48")]
    variant: Option<Variant>,
    /// Cell chemistry: its OCV table, and the built-in cell whose values are
    /// the priors of parameters the recording does not determine
    #[arg(long, value_enum, default_value_t = ChemistryArg::Lfp)]
    chemistry: ChemistryArg,
    /// Cells in series (default: as many full cells as the variant's maximum
    /// operating voltage takes — LFP 4/8/16, NMC 3/7/14)
    #[arg(long, value_name = "N", value_parser = value_parser!(u16).range(1..=100))]
    cells: Option<u16>,
    /// Hold a parameter at a value instead of fitting it (repeatable; per
    /// cell): capacity_ah, initial_soc (0..1), r0_ohm, r1_ohm, tau1_s, r2_ohm,
    /// tau2_s, ocv_offset_v. r1_ohm=0 or r2_ohm=0 drops that RC pair
    #[arg(long = "fix", value_name = "NAME=VALUE", value_parser = parse_fix)]
    fix: Vec<(Param, f64)>,
    /// Activation energy of the resistances (J/mol) that scales them with the
    /// recorded temperature to 25 °C; 0: no temperature dependence
    #[arg(long, value_name = "J_PER_MOL", default_value_t = DEFAULT_R_ACTIVATION_J_PER_MOL,
          value_parser = non_negative)]
    r_activation: f64,
    /// The board's own consumption (W), drawn from the pack before its shunt:
    /// the pack's current is the recorded one less this over the voltage; 0
    /// when the board is supplied otherwise
    #[arg(long, value_name = "W", default_value_t = POWER_CONSUMPTION_TYP_W, value_parser = non_negative)]
    own_consumption_w: f64,
    /// Give up after this many Levenberg–Marquardt iterations (exit 1)
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = value_parser!(u32).range(1..))]
    max_iterations: u32,
}

/// `--chemistry`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ChemistryArg {
    /// LiFePO4: flat plateau, knees below 10 % and above 95 %
    Lfp,
    /// NMC: sloped OCV
    Nmc,
}

impl ChemistryArg {
    fn chemistry(self) -> Chemistry {
        match self {
            ChemistryArg::Lfp => Chemistry::Lfp,
            ChemistryArg::Nmc => Chemistry::Nmc,
        }
    }
}

/// `NAME=VALUE` of `--fix`.
fn parse_fix(s: &str) -> Result<(Param, f64), String> {
    let names = || Param::ALL.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ");
    let (name, value) = s.split_once('=').ok_or_else(|| format!("{s:?} is not NAME=VALUE (names: {})", names()))?;
    let p = Param::from_name(name.trim())
        .ok_or_else(|| format!("unknown parameter {:?}; parameters: {}", name.trim(), names()))?;
    let v: f64 = value.trim().parse().map_err(|_| format!("{name}: {value:?} is not a number"))?;
    if !v.is_finite() {
        return Err(format!("{name}: {value:?} is not a finite number"));
    }
    Ok((p, v))
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} must be a number >= 0")),
    }
}

/// Cells of `chemistry` in series for `variant`: as many as stay within the
/// variant's maximum operating voltage when full.
fn default_cells(variant: Variant, chemistry: Chemistry) -> usize {
    let points = chemistry.table().points();
    let full_v = points[points.len() - 1].1;
    (variant.max_operating_voltage_v() / full_v).floor() as usize
}

/// How the fit's times were obtained.
#[derive(Clone, Debug, PartialEq)]
enum TimeAxis {
    /// `uptime = a + K·time_s` over the rows.
    UptimeLine { speed: f64 },
    /// The uptime itself (1 s resolution).
    Uptime,
    /// `time_s`, and why not the uptime.
    RecordingClock { why: String },
}

impl TimeAxis {
    fn describe(&self) -> String {
        match self {
            TimeAxis::UptimeLine { speed } => {
                format!("board uptime (uptime_s), read through the recording clock: {speed:.4}× time_s")
            }
            TimeAxis::Uptime => "board uptime (uptime_s, 1 s resolution)".to_string(),
            TimeAxis::RecordingClock { why } => format!("the recording clock (time_s): {why}"),
        }
    }
}

/// The time of every row (`time_s`, uptime if read) on the fit's axis.
fn time_axis(rows: &[(usize, f64, Option<f64>)]) -> (Vec<f64>, TimeAxis) {
    let own = |why: String| (rows.iter().map(|r| r.1).collect(), TimeAxis::RecordingClock { why });
    let pairs: Vec<(usize, f64, f64)> = rows.iter().filter_map(|&(l, t, u)| u.map(|u| (l, t, u))).collect();
    if pairs.len() < 2 {
        return own("no uptime_s readings".into());
    }
    if let Some(w) = pairs.windows(2).find(|w| w[1].2 < w[0].2) {
        return own(format!(
            "uptime_s falls from {} s to {} s at line {} (the board restarted?)",
            w[0].2, w[1].2, w[1].0
        ));
    }
    let n = pairs.len() as f64;
    let tm = pairs.iter().map(|p| p.1).sum::<f64>() / n;
    let um = pairs.iter().map(|p| p.2).sum::<f64>() / n;
    let stt: f64 = pairs.iter().map(|p| (p.1 - tm).powi(2)).sum();
    let stu: f64 = pairs.iter().map(|p| (p.1 - tm) * (p.2 - um)).sum();
    let speed = stu / stt;
    if !(speed.is_finite() && speed > 0.0) {
        return own("uptime_s does not advance".into());
    }
    let line = |t: f64| um + speed * (t - tm);
    let rms = (pairs.iter().map(|p| (p.2 - line(p.1)).powi(2)).sum::<f64>() / n).sqrt();
    if rms <= UPTIME_LINE_RMS_S {
        return (rows.iter().map(|r| line(r.1)).collect(), TimeAxis::UptimeLine { speed });
    }
    // The recording clock jitters more than the uptime's resolution (a twin at
    // a high --speed): the uptime itself, read in the same request as the
    // current and voltage, is the better time — if every row has one and it rises.
    let all: Option<Vec<f64>> = rows.iter().map(|r| r.2).collect();
    match all {
        Some(u) if u.windows(2).all(|w| w[1] > w[0]) => (u, TimeAxis::Uptime),
        _ => (rows.iter().map(|r| line(r.1)).collect(), TimeAxis::UptimeLine { speed }),
    }
}

/// Why the rows from a protection trip on are not used: the trip opened
/// the switch at an instant between two samples that the recording does not
/// show, so the charge drawn until then is unknown (a discharge into LVP
/// held its last current over the whole interval: up to `I·Δt` too much
/// charge, which at the knee's OCV slope moved the fitted capacity by 0.1 %).
const AFTER_TRIP: &str = "after a protection trip (a fault bit rose; the switch opened between two samples)";

/// What the recording gives the fit.
#[derive(Debug)]
struct Extracted {
    samples: Vec<FitSample>,
    /// The file line of each sample.
    lines: Vec<usize>,
    /// Rows that could not be used: (line, why).
    skipped: Vec<(usize, &'static str)>,
    axis: TimeAxis,
    has_temperature: bool,
    /// The board's SOC at the first sample (0..1).
    soc_hint: Option<f64>,
    /// The board's rated capacity setting (Ah).
    rated_capacity_ah: Option<f64>,
    /// The board's variant.
    variant: Option<Variant>,
}

/// The column of register `name` as `record` names it.
fn register_column(rec: &Recording, name: &str) -> Option<usize> {
    by_name(name).and_then(|r| rec.column(&decode::column_name(r)))
}

/// The first value read in column `k`.
fn first_value(rec: &Recording, k: Option<usize>) -> Option<f64> {
    let k = k?;
    rec.rows.iter().find_map(|r| r.values.get(k).copied().flatten())
}

fn extract(rec: &Recording) -> Result<Extracted, Failure> {
    let usage = |e: recording::RecordingError| Failure::Usage(e.into());
    let ci = rec.require(recording::CURRENT).map_err(usage)?;
    let cv = rec.require(recording::VOLTAGE).map_err(usage)?;
    let ct = rec.column(recording::TEMPERATURE);
    let cs = rec.column(recording::SOC);
    let cu = register_column(rec, "uptime_s");
    let cf = register_column(rec, "faults");
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    let mut raw = Vec::new();
    // The faults of the last row that had them, and whether a trip was seen.
    let (mut faults, mut tripped) = (None::<u64>, false);
    for row in &rec.rows {
        let get = |k: usize| row.values.get(k).copied().flatten();
        if let Some(f) = cf.and_then(get).map(|f| f as u64) {
            tripped |= faults.is_some_and(|before| f & !before != 0);
            faults = Some(f);
        }
        let why = if tripped {
            Some(AFTER_TRIP)
        } else if row.commented {
            Some("a `# ` row: the current was not read")
        } else if get(ci).is_none() {
            Some("no current")
        } else if get(cv).is_none() {
            Some("no voltage")
        } else {
            None
        };
        if let Some(why) = why {
            skipped.push((row.line, why));
            continue;
        }
        rows.push((row.line, row.time_s, cu.and_then(get)));
        raw.push((get(ci).unwrap_or(0.0), get(cv).unwrap_or(0.0), ct.and_then(get), cs.and_then(get)));
    }
    let (times, axis) = time_axis(&rows);
    // Temperature: held over missing cells; before the first reading, the first.
    let first_temp = raw.iter().find_map(|r| r.2);
    let mut temp_c = first_temp.unwrap_or(DEFAULT_TEMP_C);
    let samples = raw
        .iter()
        .zip(&times)
        .map(|(&(current_a, voltage_v, t, _), &t_s)| {
            if let Some(t) = t {
                temp_c = t;
            }
            FitSample { t_s, current_a, voltage_v, temp_c }
        })
        .collect();
    let variant = first_value(rec, register_column(rec, "variant_v")).and_then(|v| Variant::from_system_v(v as u64));
    Ok(Extracted {
        samples,
        lines: rows.iter().map(|r| r.0).collect(),
        skipped,
        axis,
        has_temperature: first_temp.is_some(),
        soc_hint: raw.first().and_then(|r| r.3).map(|pct| (pct / 100.0).clamp(0.0, 1.0)),
        rated_capacity_ah: first_value(rec, register_column(rec, "capacity_dah")).filter(|q| *q > 0.0),
        variant,
    })
}

impl Cmd {
    pub fn run(self) -> Result<(), Failure> {
        let rec = Recording::read(&self.recording).map_err(|e| Failure::Usage(e.into()))?;
        let data = extract(&rec)?;
        let path = self.recording.display();
        if data.samples.len() < fit::MIN_SAMPLES {
            return Err(Failure::Usage(anyhow!(
                "{path}: {} usable samples (rows with a time, a current and a voltage); the fit needs at least {}",
                data.samples.len(),
                fit::MIN_SAMPLES
            )));
        }
        let chemistry = self.chemistry.chemistry();
        let variant = self.variant.or(data.variant);
        let cells = match (self.cells, variant) {
            (Some(n), _) => usize::from(n),
            (None, Some(v)) => default_cells(v, chemistry),
            (None, None) => {
                return Err(Failure::Usage(anyhow!(
                    "{path} has no variant_v[V] column: give --variant 12|24|48 or --cells N"
                )));
            }
        };
        let model = SeriesModel {
            chemistry,
            cells_in_series: cells,
            r_activation_j_per_mol: self.r_activation,
            own_consumption_w: self.own_consumption_w,
        };
        let config = EcmFitConfig {
            model,
            fixed: self.fix.clone(),
            rated_capacity_ah: data.rated_capacity_ah,
            initial_soc_hint: data.soc_hint,
            voltage_resolution_v: VOLTAGE_RESOLUTION_V,
            lm: LmOptions { max_iterations: self.max_iterations as usize, ..LmOptions::default() },
        };
        let fitted = fit::fit_ecm(&data.samples, &config).map_err(|e| match e {
            FitError::NotConverged { .. } | FitError::NonFiniteStart { .. } => {
                Failure::Device(anyhow!("{path}: {e}; nothing written"))
            }
            other => Failure::Usage(anyhow!("{path}: {other}")),
        })?;
        let mut notes = Vec::new();
        if let (Some(given), Some(recorded)) = (self.variant, data.variant) {
            if given != recorded {
                notes.push(format!(
                    "--variant {} differs from the recording's variant_v {}: the cell count follows --variant",
                    given.system_v(),
                    recorded.system_v()
                ));
            }
        }
        let report = Report { cmd: &self, data: &data, fit: &fitted, cells, variant, extra_notes: notes };
        print!("{}", report.text());
        let name = format!("hil-rig fit of {}", file_name(&self.recording));
        let ecm = fitted.to_ecm_params(&name);
        let body =
            toml::to_string(&ecm).map_err(|e| Failure::Device(anyhow!("cannot write the parameter set: {e}")))?;
        let text = format!("{}{body}", report.file_header());
        // What is written must load where it is meant to.
        EcmParams::from_toml_str(&text)
            .map_err(|e| Failure::Device(anyhow!("the parameter set written would not load: {e}")))?;
        std::fs::write(&self.out, text)
            .map_err(|e| Failure::Usage(anyhow!("cannot write parameter file {}: {e}", self.out.display())))?;
        println!(
            "wrote {}: `ecm_file = \"{}\"` in a scenario, `hil-rig compare --ecm {}`",
            self.out.display(),
            self.out.display(),
            self.out.display()
        );
        Ok(())
    }
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |f| f.to_string_lossy().into_owned())
}

/// The printed report and the parameter file's header.
struct Report<'a> {
    cmd: &'a Cmd,
    data: &'a Extracted,
    fit: &'a EcmFit,
    cells: usize,
    variant: Option<Variant>,
    extra_notes: Vec<String>,
}

/// A parameter's value as shown: number and unit.
fn show_value(p: Param, v: f64) -> String {
    match p {
        Param::CapacityAh => format!("{} Ah", figure(v, 2)),
        Param::InitialSoc => format!("{} %", figure(100.0 * v, 1)),
        Param::R0Ohm | Param::R1Ohm | Param::R2Ohm => format!("{} mΩ", figure(1e3 * v, 4)),
        Param::Tau1S | Param::Tau2S => format!("{} s", figure(v, 1)),
        Param::OcvOffsetV => format!("{}{} mV", if v.is_sign_negative() { "" } else { "+" }, figure(1e3 * v, 1)),
    }
}

/// `x` with two significant digits (at least one decimal), small and large
/// values in scientific notation.
fn two_digits(x: f64) -> String {
    match x.abs() {
        a if a >= 1e4 => format!("{x:.1e}"),
        a if a >= 10.0 => format!("{x:.0}"),
        a if a >= 1.0 => format!("{x:.1}"),
        a if a >= 0.1 => format!("{x:.2}"),
        a if a >= 0.01 => format!("{x:.3}"),
        0.0 => "0".to_string(),
        _ => format!("{x:.1e}"),
    }
}

/// A standard error `se` of a parameter at `v` as shown (natural units;
/// relative to `v` but for the initial SOC and the offset).
fn show_std_err(p: Param, v: f64, se: f64) -> String {
    if !se.is_finite() {
        return "± ∞".into();
    }
    match p {
        Param::InitialSoc => format!("± {} points", two_digits(100.0 * se)),
        Param::OcvOffsetV => format!("± {} mV", two_digits(1e3 * se)),
        _ => format!("± {} %", two_digits(100.0 * se / v.abs().max(f64::MIN_POSITIVE))),
    }
}

impl Report<'_> {
    fn samples_line(&self) -> String {
        let s = &self.data.samples;
        let span = s[s.len() - 1].t_s - s[0].t_s;
        format!("{} samples over {} s ({} h)", s.len(), figure(span, 0), figure(span / 3600.0, 2))
    }

    fn model_line(&self) -> String {
        let chem = match self.cmd.chemistry {
            ChemistryArg::Lfp => "LFP",
            ChemistryArg::Nmc => "NMC",
        };
        let variant = self.variant.map_or_else(String::new, |v| format!(" ({} V variant)", v.system_v()));
        let temp = if self.cmd.r_activation > 0.0 {
            format!(
                "resistances at 25 °C, scaled with the recorded temperature (Arrhenius, {:.0} J/mol)",
                self.cmd.r_activation
            )
        } else {
            "resistances independent of temperature".to_string()
        };
        let own = match self.cmd.own_consumption_w {
            0.0 => "the recorded current taken as the pack's".to_string(),
            w => format!("the pack's current: the recorded one less the board's own {} W", figure(w, 3)),
        };
        format!(
            "{} {chem} cells in series{variant}: the {chem} OCV table + an offset, R0 and two RC pairs flat over \
             SOC; {temp}; {own}",
            self.cells
        )
    }

    /// One line per parameter: name, value, error or status, pack value.
    fn parameter_lines(&self) -> Vec<String> {
        let est = &self.fit.estimate;
        let n = self.cells as f64;
        Param::ALL
            .iter()
            .map(|&p| {
                let v = est.get(p);
                let shown = show_value(p, v);
                let pack = match p {
                    Param::R0Ohm | Param::R1Ohm | Param::R2Ohm => format!("  ({:.3} mΩ per pack)", 1e3 * n * v),
                    Param::OcvOffsetV => format!(" per cell ({:+.1} mV per pack)", 1e3 * n * v),
                    _ => String::new(),
                };
                let status = match self.fit.status_of(p) {
                    ParamStatus::Fitted => show_std_err(p, v, self.fit.std_err_of(p)),
                    ParamStatus::Fixed => "fixed (--fix)".to_string(),
                    ParamStatus::Unused => "unused (its pair's resistance is fixed at 0)".to_string(),
                    ParamStatus::NotIdentifiable { prior, .. } => format!("NOT IDENTIFIABLE: held at {prior}"),
                };
                format!("  {:<13} {shown:>12}{pack}  {status}", p.name())
            })
            .collect()
    }

    /// Warnings worth the reader's attention.
    fn warnings(&self) -> Vec<String> {
        let fit = self.fit;
        let mut w = self.extra_notes.clone();
        for p in Param::ALL {
            if let ParamStatus::NotIdentifiable { reason, prior, std_err } = fit.status_of(p) {
                w.push(format!(
                    "{} is not identifiable from this recording (local 1σ {}): {reason}. It is held at {} \
                     ({prior}) and the other parameters are fitted with it there; give --fix {}=VALUE if you know it",
                    p.name(),
                    // In the units of the limit: relative but for the initial SOC and the offset.
                    show_std_err(p, 1.0, *std_err).replace("± ", "±"),
                    show_value(p, fit.estimate.get(p)),
                    p.name()
                ));
            }
        }
        for (a, b, r) in fit.strong_correlations(STRONG_CORRELATION) {
            let hint = match (a, b) {
                (Param::CapacityAh, Param::InitialSoc) | (Param::InitialSoc, Param::CapacityAh) => {
                    ": a recording over a wider SOC span separates them"
                }
                (Param::InitialSoc, Param::OcvOffsetV) | (Param::CapacityAh, Param::OcvOffsetV) => {
                    ": the OCV curve's shape alone separates them; rest periods at both ends help"
                }
                _ => ": their errors compensate, only a combination is well determined",
            };
            w.push(format!("{} and {} are correlated (r = {r:+.3}){hint}", a.name(), b.name()));
        }
        let (lo, hi) = fit.soc_range;
        if lo < -0.005 || hi > 1.005 {
            w.push(format!(
                "the fitted SOC runs over {}–{} %, outside 0–100 %: the capacity or initial SOC is off, or the \
                 chemistry's OCV table does not suit this battery",
                figure(100.0 * lo, 1),
                figure(100.0 * hi, 1)
            ));
        }
        if fit.loaded_start {
            w.push(
                "the recording does not start at rest: the RC pairs' voltages at the first sample are unknown and \
                 were fitted too (a recording that starts at rest determines more)"
                    .to_string(),
            );
        }
        if fit.lag1_autocorrelation > CORRELATED_RESIDUALS {
            w.push(format!(
                "the residuals are correlated in time (lag-1 ρ = {:.2}): the model misses part of the dynamics \
                 (hysteresis, resistance varying with SOC or current); the errors above are widened for it",
                fit.lag1_autocorrelation
            ));
        }
        if !self.data.skipped.is_empty() {
            let first: Vec<String> =
                self.data.skipped.iter().take(5).map(|(l, why)| format!("line {l}: {why}")).collect();
            let more = self.data.skipped.len().saturating_sub(5);
            let more = if more > 0 { format!(", and {more} more") } else { String::new() };
            w.push(format!("{} rows not used ({}{more})", self.data.skipped.len(), first.join("; ")));
        }
        let s = &self.data.samples;
        let mut dts: Vec<f64> = s.windows(2).map(|p| p[1].t_s - p[0].t_s).collect();
        let gap = dts.iter().copied().enumerate().max_by(|a, b| a.1.total_cmp(&b.1));
        dts.sort_by(f64::total_cmp);
        let median = dts[dts.len() / 2];
        if let Some((k, g)) = gap {
            if g > GAP_FACTOR * median {
                w.push(format!(
                    "a gap of {} s after line {} (median interval {} s): the current is held over it",
                    figure(g, 0),
                    self.data.lines[k],
                    figure(median, 2)
                ));
            }
        }
        if !self.data.has_temperature {
            w.push(format!("no temperature in the recording: {DEFAULT_TEMP_C} °C assumed"));
        }
        w
    }

    fn text(&self) -> String {
        let fit = self.fit;
        let s = &self.data.samples;
        let mut out = String::new();
        let _ = writeln!(out, "fit of {}: {}", self.cmd.recording.display(), self.samples_line());
        let _ = writeln!(out, "time axis: {}", self.data.axis.describe());
        let (tlo, thi) =
            s.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x.temp_c), b.max(x.temp_c)));
        let (ilo, ihi) =
            s.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| (a.min(x.current_a), b.max(x.current_a)));
        let _ = writeln!(
            out,
            "recording: current {} … {} A, temperature {} … {} °C",
            figure(ilo, 1),
            figure(ihi, 1),
            figure(tlo, 1),
            figure(thi, 1)
        );
        let _ = writeln!(out, "model: {}", self.model_line());
        let (k, worst) = fit.max_residual;
        let _ = writeln!(
            out,
            "fit: RMSE {} mV, max |residual| {} mV at {} s (line {}), {} iterations, fitted SOC {} → \
             {} % (range {}–{} %)",
            figure(1e3 * fit.rmse_v, 2),
            figure(1e3 * worst.abs(), 2),
            figure(s[k].t_s - s[0].t_s, 1),
            self.data.lines[k],
            fit.iterations,
            figure(100.0 * fit.estimate.initial_soc, 1),
            figure(100.0 * (fit.estimate.initial_soc + charge_ah(s) / fit.estimate.capacity_ah), 1),
            figure(100.0 * fit.soc_range.0, 1),
            figure(100.0 * fit.soc_range.1, 1),
        );
        let _ = writeln!(out, "parameters (per cell; ± 1σ: the residuals' and the board's current errors'):");
        for line in self.parameter_lines() {
            let _ = writeln!(out, "{line}");
        }
        let warnings = self.warnings();
        if !warnings.is_empty() {
            let _ = writeln!(out, "warnings:");
            for w in warnings {
                let _ = writeln!(out, "  - {w}");
            }
        }
        out
    }

    /// The parameter file's comment header.
    fn file_header(&self) -> String {
        let mut h = String::new();
        let _ =
            writeln!(h, "# Equivalent-circuit parameters fitted by `hil-rig fit` to {}", self.cmd.recording.display());
        let _ = writeln!(h, "# ({}; time axis: {}).", self.samples_line(), self.data.axis.describe());
        let _ = writeln!(h, "# Model: {}.", self.model_line());
        let _ = writeln!(h, "# Fit RMSE {} mV per pack. Values per cell (± 1σ):", figure(1e3 * self.fit.rmse_v, 2));
        for line in self.parameter_lines() {
            let _ = writeln!(h, "#{line}");
        }
        let _ = writeln!(h, "# Load with `ecm_file = \"…\"` in a scenario or `hil-rig compare --ecm …`.");
        h
    }
}

/// Charge through the recording (Ah, + = charge), the current held between samples.
fn charge_ah(s: &[FitSample]) -> f64 {
    s.windows(2).map(|w| w[0].current_a * (w[1].t_s - w[0].t_s)).sum::<f64>() / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fix_values_parse_and_name_the_parameters() {
        assert_eq!(parse_fix("r0_ohm=0.5e-3"), Ok((Param::R0Ohm, 0.5e-3)));
        assert_eq!(parse_fix(" r2_ohm = 0 "), Ok((Param::R2Ohm, 0.0)));
        let e = parse_fix("r3_ohm=1").unwrap_err();
        assert!(e.contains("unknown parameter \"r3_ohm\"") && e.contains("tau2_s"), "{e}");
        assert!(parse_fix("capacity_ah").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_fix("capacity_ah=big").unwrap_err().contains("not a number"));
        assert!(parse_fix("capacity_ah=inf").unwrap_err().contains("finite"));
    }

    #[test]
    fn default_cell_counts_follow_the_maximum_operating_voltage() {
        for v in Variant::ALL {
            assert_eq!(default_cells(v, Chemistry::Lfp), v.cells_in_series(), "{v:?}");
        }
        let nmc: Vec<usize> = Variant::ALL.iter().map(|v| default_cells(*v, Chemistry::Nmc)).collect();
        assert_eq!(nmc, [3, 7, 14]);
    }

    #[test]
    fn uptime_through_the_recording_clock_at_a_twins_speed() {
        // A twin served at --speed 60, sampled every 0.1 s of wall clock:
        // uptime = floor(60·t + 3).
        let rows: Vec<(usize, f64, Option<f64>)> =
            (0..200).map(|k| (k + 2, 0.1 * k as f64, Some((60.0 * 0.1 * k as f64 + 3.0).floor()))).collect();
        let (t, axis) = time_axis(&rows);
        let TimeAxis::UptimeLine { speed } = axis else { panic!("{axis:?}") };
        assert!((speed - 60.0).abs() < 1e-9, "{speed}");
        assert!((t[100] - 603.0).abs() < 1e-6, "{}", t[100]);
    }

    #[test]
    fn a_jittery_clock_uses_the_uptime_itself() {
        // Wall-clock jitter of ±0.1 s at --speed 100 is ±10 s of uptime.
        let rows: Vec<(usize, f64, Option<f64>)> = (0..100)
            .map(|k| {
                let wall = k as f64 + if k % 2 == 0 { 0.1 } else { -0.1 };
                (k + 2, k as f64, Some((100.0 * wall).floor()))
            })
            .collect();
        let (t, axis) = time_axis(&rows);
        assert_eq!(axis, TimeAxis::Uptime);
        assert_eq!(t[3], 290.0);
    }

    #[test]
    fn without_a_usable_uptime_the_recording_clock_says_why() {
        let rows = [(2, 0.0, None), (3, 1.0, None), (4, 2.0, None)];
        let (t, axis) = time_axis(&rows);
        assert_eq!(t, [0.0, 1.0, 2.0]);
        assert!(matches!(&axis, TimeAxis::RecordingClock { why } if why.contains("no uptime_s")), "{axis:?}");
        let rows = [(2, 0.0, Some(500.0)), (3, 1.0, Some(501.0)), (4, 2.0, Some(0.0))];
        let (_, axis) = time_axis(&rows);
        assert!(matches!(&axis, TimeAxis::RecordingClock { why } if why.contains("line 4")), "{axis:?}");
    }

    #[test]
    fn rows_without_current_or_voltage_are_skipped_with_their_line() {
        let text = "\
time_s,current_A,voltage_V,temp_C,soc_pct,uptime_s[s],capacity_dah[Ah],variant_v[V]
0.000,0.000,13.300,,80.00,10,100.0,12
# 1.000,,13.300,25.0,80.00,11,100.0,12
2.000,-10.000,,25.0,80.00,12,100.0,12
3.000,-10.000,13.200,26.0,79.99,13,100.0,12
";
        let rec = Recording::parse(text, Path::new("r.csv")).unwrap();
        let d = extract(&rec).unwrap();
        assert_eq!(d.lines, [2, 5]);
        assert_eq!(d.skipped, [(3, "a `# ` row: the current was not read"), (4, "no voltage")]);
        // The first temperature reading covers the rows before it.
        assert_eq!(d.samples[0].temp_c, 26.0);
        assert_eq!(d.samples[1].t_s, 13.0);
        assert_eq!(d.soc_hint, Some(0.8));
        assert_eq!(d.rated_capacity_ah, Some(100.0));
        assert_eq!(d.variant, Some(Variant::V12));
        let rec = Recording::parse("time_s,current_A\n0,1\n", Path::new("r.csv")).unwrap();
        let Err(Failure::Usage(e)) = extract(&rec) else { panic!("a usage error") };
        assert!(e.to_string().contains("r.csv:1: no column \"voltage_V\""), "{e}");
    }

    #[test]
    fn issue_17_the_fit_ends_at_the_last_sample_before_a_protection_trip() {
        // A fault active from the start is no trip; the LVP bit rising at
        // line 5 is: that row and every later one are left out.
        let text = "\
time_s,current_A,voltage_V,faults[bits]
0.000,-30.000,12.000,4
1.000,-30.000,11.900,4
2.000,-30.000,11.800,
3.000,0.000,11.900,5
4.000,0.000,11.950,4
";
        let rec = Recording::parse(text, Path::new("r.csv")).unwrap();
        let d = extract(&rec).unwrap();
        assert_eq!(d.lines, [2, 3, 4]);
        assert_eq!(d.skipped, [(5, AFTER_TRIP), (6, AFTER_TRIP)]);
    }

    #[test]
    fn issue_21_figures_are_never_spelled_out_over_hundreds_of_digits() {
        // `τ ≈ 79378307636023570…` (300 digits) came from `{:.0}` of a drifted value.
        assert_eq!(show_value(Param::Tau2S, 7.9e299), "7.90e299 s");
        assert_eq!(show_value(Param::Tau2S, 600.0), "600.0 s");
        assert_eq!(show_value(Param::CapacityAh, 1e300), "1.00e300 Ah");
        assert_eq!(show_value(Param::R0Ohm, 0.5e-3), "0.5000 mΩ");
        assert_eq!(show_value(Param::OcvOffsetV, -0.0123), "-12.3 mV");
        assert_eq!(show_value(Param::OcvOffsetV, 1e300), "+1.00e303 mV");
        assert_eq!(show_std_err(Param::Tau1S, 1.0, 2301.78), "± 2.3e5 %");
        assert_eq!(show_std_err(Param::Tau1S, 30.0, 0.3), "± 1.0 %");
        assert_eq!(show_std_err(Param::R0Ohm, 1.0, f64::INFINITY), "± ∞");
    }
}
