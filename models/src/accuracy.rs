//! Monte Carlo of the measurement accuracy against the datasheet's table.
//!
//! Each simulated board is a [`MeasurementChain`] drawn from its own seed.
//! A production line calibrates it at [`AccuracyConfig::cal_temp_c`]: it
//! averages the current channel at 0 A and at a reference current, and the
//! voltage channel at a reference voltage, then computes the calibration
//! the board stores (offset and gain). The line's sources are not perfect:
//! each board sees the reference current and voltage off by a drawn
//! deviation within the line's uncertainty. Then, at each test temperature
//! (the whole board at that temperature, no gradient), the board converts a
//! set of test currents and voltages; the error of its reading is taken
//! against the true value.
//!
//! How codes become readings (and how the calibration is computed) is the
//! firmware's business: [`Readout`] abstracts it. `smartpro-sim accuracy`
//! uses the board firmware's own integer formulas; [`FloatReadout`] is an
//! independent float implementation of the same arithmetic for tests.
//!
//! Errors are % of full scale: 250 A for current, the variant's measuring
//! range for voltage. Readings use the noise-free mean code (rounded to an
//! integer code): the datasheet's accuracy is that of an averaged reading;
//! the per-sample noise is reported beside it.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::chain::{ChainParams, CurrentSample, MeasurementChain, draw_within};
use crate::rng::SeedStreams;
use crate::variant::{self, Variant};

/// What the production line measured on one board, from which a
/// [`Readout`] computes the calibration the board stores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineMeasurement {
    /// The board's variant.
    pub variant: Variant,
    /// Mean current-channel code at 0 A.
    pub zero_current_code: f64,
    /// The reference current the line believes it applied (A).
    pub ref_current_a: f64,
    /// Mean current-channel code at the reference current as applied.
    pub ref_current_code: f64,
    /// The reference voltage the line believes it applied (V).
    pub ref_voltage_v: f64,
    /// Mean voltage-channel code at the reference voltage as applied.
    pub ref_voltage_code: f64,
}

/// How a board turns codes into readings, and computes its calibration.
pub trait Readout {
    /// The calibration the board stores.
    type Calibration;
    /// The calibration from the line's measurements.
    fn calibrate(&self, line: &LineMeasurement) -> Self::Calibration;
    /// Current reading (A) of a current-channel code, the board at
    /// `board_temp_c` (for firmware that compensates a gain tempco).
    fn current_a(&self, code: i32, cal: &Self::Calibration, board_temp_c: f64) -> f64;
    /// Voltage reading (V) of a voltage-channel code.
    fn voltage_v(&self, code: i32, cal: &Self::Calibration) -> f64;
}

/// Calibration in floats: offset code, A per code, V per code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloatCalibration {
    /// Current-channel code at 0 A (rounded to a whole code, as stored).
    pub current_offset_code: f64,
    /// A per code.
    pub current_a_per_code: f64,
    /// V per code.
    pub voltage_v_per_code: f64,
}

/// A float implementation of the board's readout: `I = (code − offset)·g_I`,
/// `V = code·g_V`, offset rounded to a whole code, gains from the line's
/// reference points.
#[derive(Clone, Copy, Debug, Default)]
pub struct FloatReadout;

impl Readout for FloatReadout {
    type Calibration = FloatCalibration;

    fn calibrate(&self, line: &LineMeasurement) -> FloatCalibration {
        let offset = line.zero_current_code.round();
        FloatCalibration {
            current_offset_code: offset,
            current_a_per_code: line.ref_current_a / (line.ref_current_code - offset),
            voltage_v_per_code: line.ref_voltage_v / line.ref_voltage_code,
        }
    }

    fn current_a(&self, code: i32, cal: &FloatCalibration, _board_temp_c: f64) -> f64 {
        (f64::from(code) - cal.current_offset_code) * cal.current_a_per_code
    }

    fn voltage_v(&self, code: i32, cal: &FloatCalibration) -> f64 {
        f64::from(code) * cal.voltage_v_per_code
    }
}

/// Reference current of the default line calibration (A).
pub const DEFAULT_CAL_CURRENT_A: f64 = 100.0;
/// Reference voltage of the default line calibration, as a fraction of the
/// measuring range.
pub const DEFAULT_CAL_VOLTAGE_FRACTION: f64 = 0.8;
/// Uncertainty limit of the line's reference current, ±0.005 % (a
/// calibrated precision shunt read by a 6½-digit meter).
pub const DEFAULT_LINE_CURRENT_UNCERTAINTY_REL: f64 = 50e-6;
/// Uncertainty limit of the line's reference voltage, ±0.005 %.
pub const DEFAULT_LINE_VOLTAGE_UNCERTAINTY_REL: f64 = 50e-6;
/// Conversions the line averages per calibration point (1 s at 1 kSPS).
pub const DEFAULT_CAL_SAMPLES: u32 = 1000;

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyConfig {
    /// Number of boards.
    pub boards: usize,
    /// Variant (voltage range).
    pub variant: Variant,
    /// Seed of the Monte Carlo (board k uses `SeedStreams::new(seed).derive("board", k)`).
    pub seed: u64,
    /// The design's component parameters.
    pub chain: ChainParams,
    /// Test temperatures (°C), whole board.
    pub temps_c: Vec<f64>,
    /// Temperature of the line calibration (°C).
    pub cal_temp_c: f64,
    /// Reference current of the line (A).
    pub cal_current_a: f64,
    /// Reference voltage of the line, fraction of the measuring range.
    pub cal_voltage_fraction: f64,
    /// Uncertainty limit of the line's current (relative, ±; drawn per board, σ = limit/3).
    pub line_current_uncertainty_rel: f64,
    /// Uncertainty limit of the line's voltage (relative, ±).
    pub line_voltage_uncertainty_rel: f64,
    /// Conversions averaged per calibration point.
    pub cal_samples: u32,
    /// Test currents (A).
    pub test_currents_a: Vec<f64>,
    /// Test voltages as fractions of the measuring range.
    pub test_voltage_fractions: Vec<f64>,
}

impl AccuracyConfig {
    /// The datasheet's conditions: −10, 25 and +50 °C, calibration at
    /// 25 °C, test currents over ±250 A, voltages over the range.
    pub fn datasheet(variant: Variant, boards: usize, seed: u64) -> Self {
        Self {
            boards,
            variant,
            seed,
            chain: ChainParams::default(),
            temps_c: vec![variant::ACCURACY_TEMP_RANGE_C.0, 25.0, variant::ACCURACY_TEMP_RANGE_C.1],
            cal_temp_c: 25.0,
            cal_current_a: DEFAULT_CAL_CURRENT_A,
            cal_voltage_fraction: DEFAULT_CAL_VOLTAGE_FRACTION,
            line_current_uncertainty_rel: DEFAULT_LINE_CURRENT_UNCERTAINTY_REL,
            line_voltage_uncertainty_rel: DEFAULT_LINE_VOLTAGE_UNCERTAINTY_REL,
            cal_samples: DEFAULT_CAL_SAMPLES,
            test_currents_a: vec![-250.0, -200.0, -125.0, -50.0, -10.0, 0.0, 10.0, 50.0, 125.0, 200.0, 250.0],
            test_voltage_fractions: vec![0.1, 0.25, 0.5, 0.75, 0.9, 1.0],
        }
    }
}

/// One board at one temperature (% FS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoardResult {
    /// Largest |current error| over the test currents.
    pub current_total_pct_fs: f64,
    /// |current reading| at 0 A.
    pub current_offset_pct_fs: f64,
    /// Largest |voltage error| over the test voltages.
    pub voltage_total_pct_fs: f64,
}

/// Distribution of one metric over the boards.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stat {
    /// Largest value.
    pub worst: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Boards within the limit.
    pub within: usize,
    /// The datasheet limit.
    pub limit: f64,
}

impl Stat {
    fn of(values: &mut [f64], limit: f64) -> Self {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = ((0.99 * n as f64).ceil() as usize).clamp(1, n.max(1));
        Self {
            worst: values.last().copied().unwrap_or(0.0),
            p99: values.get(rank - 1).copied().unwrap_or(0.0),
            mean: values.iter().sum::<f64>() / n.max(1) as f64,
            within: values.iter().filter(|v| **v < limit).count(),
            limit,
        }
    }
}

/// The statistics at one temperature.
#[derive(Clone, Debug, PartialEq)]
pub struct TempRow {
    /// Temperature (°C).
    pub temp_c: f64,
    /// Total current error (% FS).
    pub current_total: Stat,
    /// Current offset (% FS).
    pub current_offset: Stat,
    /// Total voltage error (% FS).
    pub voltage_total: Stat,
}

/// The outcome of a Monte Carlo run.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyReport {
    /// The configuration it ran.
    pub config: AccuracyConfig,
    /// One row per test temperature.
    pub rows: Vec<TempRow>,
    /// Per-sample noise of the current channel, mean over the boards (% FS, 1σ).
    pub current_noise_pct_fs: f64,
    /// Boards that met every datasheet figure at every temperature.
    pub boards_passing: usize,
}

impl AccuracyReport {
    /// `true` if every board met every figure at every temperature.
    pub fn all_pass(&self) -> bool {
        self.boards_passing == self.config.boards
    }

    /// The table, shaped like the datasheet's accuracy tables (Markdown).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "SmartPro {} measurement accuracy: Monte Carlo over {} boards (seed {}), calibrated at {} °C \
             (0 A and {:+} A; {:.1} V)\n",
            c.variant,
            c.boards,
            c.seed,
            c.cal_temp_c,
            c.cal_current_a,
            c.cal_voltage_fraction * c.variant.voltage_range_v()
        );
        let temps: Vec<String> = self.rows.iter().map(|r| format!("{:+} °C", r.temp_c)).collect();
        let _ = writeln!(out, "| | {} | datasheet | Unit |", temps.join(" | "));
        let _ = writeln!(out, "|---|{}---|---|", "---|".repeat(self.rows.len()));
        let line = |out: &mut String, name: &str, f: &dyn Fn(&TempRow) -> f64, limit: f64| {
            let cells: Vec<String> = self.rows.iter().map(|r| format!("{:.4}", f(r))).collect();
            let _ = writeln!(out, "| {name} | {} | < {limit} | % FS |", cells.join(" | "));
        };
        line(
            &mut out,
            "Current total error, worst board",
            &|r| r.current_total.worst,
            variant::CURRENT_TOTAL_ERROR_PCT_FS,
        );
        line(
            &mut out,
            "Current total error, 99th percentile",
            &|r| r.current_total.p99,
            variant::CURRENT_TOTAL_ERROR_PCT_FS,
        );
        line(
            &mut out,
            "Current offset error, worst board",
            &|r| r.current_offset.worst,
            variant::CURRENT_OFFSET_ERROR_PCT_FS,
        );
        line(
            &mut out,
            "Current offset error, 99th percentile",
            &|r| r.current_offset.p99,
            variant::CURRENT_OFFSET_ERROR_PCT_FS,
        );
        line(
            &mut out,
            "Voltage total error, worst board",
            &|r| r.voltage_total.worst,
            variant::VOLTAGE_TOTAL_ERROR_PCT_FS,
        );
        line(
            &mut out,
            "Voltage total error, 99th percentile",
            &|r| r.voltage_total.p99,
            variant::VOLTAGE_TOTAL_ERROR_PCT_FS,
        );
        let within: Vec<String> = self
            .rows
            .iter()
            .map(|r| {
                let w = r.current_total.within.min(r.current_offset.within).min(r.voltage_total.within);
                format!("{w}/{}", c.boards)
            })
            .collect();
        let _ = writeln!(out, "| Boards within every figure | {} | all | boards |", within.join(" | "));
        let _ = writeln!(
            out,
            "\nCurrent-channel noise per sample (1σ, not averaged): {:.4} % FS. Measuring range ±{} A, \
             voltage range {} V.",
            self.current_noise_pct_fs,
            variant::CURRENT_RANGE_A,
            c.variant.voltage_range_v()
        );
        let _ = writeln!(
            out,
            "verdict: {} ({} of {} boards meet every datasheet figure at every temperature)",
            if self.all_pass() { "PASS" } else { "FAIL" },
            self.boards_passing,
            c.boards
        );
        out
    }
}

/// Runs the Monte Carlo with the readout `readout`.
pub fn run<R: Readout>(config: &AccuracyConfig, readout: &R) -> AccuracyReport {
    let v = config.variant;
    let fs_a = variant::CURRENT_RANGE_A;
    let fs_v = v.voltage_range_v();
    let nt = config.temps_c.len();
    let mut totals = vec![Vec::with_capacity(config.boards); nt];
    let mut offsets = vec![Vec::with_capacity(config.boards); nt];
    let mut volts = vec![Vec::with_capacity(config.boards); nt];
    let mut noise_sum = 0.0;
    let mut passing = 0;
    let root = SeedStreams::new(config.seed);
    for k in 0..config.boards {
        let streams = root.derive("board", k as u64);
        let chain = MeasurementChain::new(&config.chain, v, &streams);
        let mut line_rng = streams.stream("line");
        let cal = readout.calibrate(&line_measurement(config, &chain, &mut line_rng));
        let noise_codes = chain.current_noise_rms_codes();
        noise_sum += noise_codes / crate::chain::nominal::CURRENT_CODES_PER_A / fs_a * 100.0;
        let mut ok = true;
        for (it, &t) in config.temps_c.iter().enumerate() {
            let r = board_at(config, &chain, readout, &cal, t);
            ok &= r.current_total_pct_fs < variant::CURRENT_TOTAL_ERROR_PCT_FS
                && r.current_offset_pct_fs < variant::CURRENT_OFFSET_ERROR_PCT_FS
                && r.voltage_total_pct_fs < variant::VOLTAGE_TOTAL_ERROR_PCT_FS;
            totals[it].push(r.current_total_pct_fs);
            offsets[it].push(r.current_offset_pct_fs);
            volts[it].push(r.voltage_total_pct_fs);
        }
        passing += usize::from(ok);
    }
    let _ = fs_v;
    let rows = (0..nt)
        .map(|it| TempRow {
            temp_c: config.temps_c[it],
            current_total: Stat::of(&mut totals[it], variant::CURRENT_TOTAL_ERROR_PCT_FS),
            current_offset: Stat::of(&mut offsets[it], variant::CURRENT_OFFSET_ERROR_PCT_FS),
            voltage_total: Stat::of(&mut volts[it], variant::VOLTAGE_TOTAL_ERROR_PCT_FS),
        })
        .collect();
    AccuracyReport {
        config: config.clone(),
        rows,
        current_noise_pct_fs: noise_sum / config.boards.max(1) as f64,
        boards_passing: passing,
    }
}

/// The line's measurements of one board at the calibration temperature
/// (its deviations drawn from `rng`); also what `sim`'s engine calibrates a
/// factory-fresh board with.
pub fn line_measurement<G: Rng + ?Sized>(
    config: &AccuracyConfig,
    chain: &MeasurementChain,
    rng: &mut G,
) -> LineMeasurement {
    let t = config.cal_temp_c;
    let n = f64::from(config.cal_samples.max(1));
    let sigma_mean = chain.current_noise_rms_codes() / n.sqrt();
    let noisy = |code: f64, rng: &mut G| {
        let z: f64 = StandardNormal.sample(rng);
        code + z * sigma_mean
    };
    let i_err = draw_within(rng, config.line_current_uncertainty_rel);
    let v_err = draw_within(rng, config.line_voltage_uncertainty_rel);
    let zero = noisy(chain.current_code_noiseless_at(&CurrentSample::isothermal(0.0, t)), rng);
    let i_applied = config.cal_current_a * (1.0 + i_err);
    let at_ref = noisy(chain.current_code_noiseless_at(&CurrentSample::isothermal(i_applied, t)), rng);
    let v_ref = config.cal_voltage_fraction * config.variant.voltage_range_v();
    let v_applied = v_ref * (1.0 + v_err);
    let v_sigma = chain.adc().noise_rms_lsb() / n.sqrt();
    let z: f64 = StandardNormal.sample(rng);
    let v_code = chain.voltage_code_noiseless(v_applied, t) + z * v_sigma;
    LineMeasurement {
        variant: config.variant,
        zero_current_code: zero,
        ref_current_a: config.cal_current_a,
        ref_current_code: at_ref,
        ref_voltage_v: v_ref,
        ref_voltage_code: v_code,
    }
}

/// One calibrated board's errors at `temp_c`.
pub fn board_at<R: Readout>(
    config: &AccuracyConfig,
    chain: &MeasurementChain,
    readout: &R,
    cal: &R::Calibration,
    temp_c: f64,
) -> BoardResult {
    let fs_a = variant::CURRENT_RANGE_A;
    let fs_v = config.variant.voltage_range_v();
    let code = |x: f64| chain.adc().quantize(x);
    let i_err = |i: f64| {
        let c = code(chain.current_code_noiseless_at(&CurrentSample::isothermal(i, temp_c)));
        (readout.current_a(c, cal, temp_c) - i).abs() / fs_a * 100.0
    };
    let total = config.test_currents_a.iter().map(|&i| i_err(i)).fold(0.0, f64::max);
    let offset = i_err(0.0);
    let voltage = config
        .test_voltage_fractions
        .iter()
        .map(|&f| {
            let v = f * fs_v;
            let c = code(chain.voltage_code_noiseless(v, temp_c));
            (readout.voltage_v(c, cal) - v).abs() / fs_v * 100.0
        })
        .fold(0.0, f64::max);
    BoardResult {
        current_total_pct_fs: total.max(offset),
        current_offset_pct_fs: offset,
        voltage_total_pct_fs: voltage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ideal_chain_has_no_error() {
        let mut c = AccuracyConfig::datasheet(Variant::V12, 5, 1);
        c.chain = ChainParams::ideal();
        c.line_current_uncertainty_rel = 0.0;
        c.line_voltage_uncertainty_rel = 0.0;
        let r = run(&c, &FloatReadout);
        for row in &r.rows {
            // only code rounding remains (one code = 60 µA = 0.000024 % FS)
            assert!(row.current_total.worst < 1e-4, "{row:?}");
            assert!(row.voltage_total.worst < 1e-4, "{row:?}");
        }
        assert!(r.all_pass());
    }

    #[test]
    fn default_design_meets_the_datasheet_small_n() {
        // The full run (≥ 200 boards) is `smartpro-sim accuracy`; here 60.
        for v in Variant::ALL {
            let r = run(&AccuracyConfig::datasheet(v, 60, 4), &FloatReadout);
            assert!(r.all_pass(), "{}", r.table());
            assert_eq!(r.rows.len(), 3);
        }
    }

    #[test]
    fn the_datasheet_drift_limit_alone_fails_the_offset_figure() {
        // 0.1 µV/K over 35 K is 3.5 µV = 0.014 % FS: some boards fail.
        let mut c = AccuracyConfig::datasheet(Variant::V24, 200, 9);
        c.chain.amplifier.offset_drift_v_per_k = 0.1e-6;
        let r = run(&c, &FloatReadout);
        let cold = &r.rows[0];
        assert!(cold.current_offset.worst > 0.01, "{}", r.table());
        assert!(!r.all_pass());
        // and calibration matters: at 25 °C the offset is gone
        assert!(r.rows[1].current_offset.worst < 0.001, "{}", r.table());
    }

    #[test]
    fn table_has_the_datasheet_shape() {
        let r = run(&AccuracyConfig::datasheet(Variant::V48, 10, 2), &FloatReadout);
        let t = r.table();
        assert!(t.contains("| | -10 °C | +25 °C | +50 °C | datasheet | Unit |"), "{t}");
        assert!(t.contains("Current total error, worst board"));
        assert!(t.contains("verdict: PASS"), "{t}");
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = Stat::of(&mut v, 150.0);
        assert_eq!(s.worst, 200.0);
        assert_eq!(s.p99, 198.0);
        assert_eq!(s.within, 149);
    }
}
