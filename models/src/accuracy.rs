//! Monte Carlo of the measurement accuracy against the datasheet's table,
//! with each board's thermal state.
//!
//! Each simulated board is a [`MeasurementChain`] and a [`Switch`] drawn
//! from its own seed. A production line calibrates it at
//! [`AccuracyConfig::cal_temp_c`] (the whole board at that temperature): it
//! averages the current channel at 0 A and at a reference current, and the
//! voltage channel at a reference voltage, then computes the calibration
//! the board stores (offset and gain). The line's sources are not perfect:
//! each board sees the reference current and voltage off by a drawn
//! deviation within the line's uncertainty.
//!
//! Then, for every [`Condition`] and every ambient temperature, the board
//! lives through the condition's history — a current and an ambient over
//! time ([`History`]: e.g. 20 min at full current, then 1 min at 0 A; or the
//! ambient ramped from +25 °C) — in the engine's thermal network
//! ([`ThermalNetwork`]: cells, board, shunt), heated by its own shunt's I²R
//! ([`crate::chain::Shunt::power_w`]), its own switch's conduction loss
//! ([`Switch::r_on_ohm`]), its own consumption and the cells' losses
//! ([`Pack::heat_w`]). The temperatures the history leaves — shunt element,
//! board, and the difference across the shunt's terminals that drives its
//! thermoelectric EMF ([`ThermalNetwork::shunt_terminal_delta_k`]) — are
//! the conditions of its readings ([`CurrentSample`]): the board converts
//! the test currents and voltages there, and the error of each reading is
//! taken against the true value.
//!
//! Which parts are drawn is [`Parts`]: the design's tolerances, or parts at
//! the datasheet's own feature limits ([`datasheet_limits`]), so the table
//! tells a designer what the datasheet's figures require.
//!
//! The verdict is a yield against [`YIELD_TARGET`] with its Clopper–Pearson
//! interval ([`YieldEstimate`]): PASS when the whole interval is at or
//! above the target, FAIL when it is below, undecided when it straddles it.
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

use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

use crate::chain::{ChainParams, ChainTemperatures, CurrentSample, MeasurementChain, Shunt, ShuntParams, draw_within};
use crate::loads::SelfConsumption;
use crate::pack::{Pack, PackParams};
use crate::rng::SeedStreams;
use crate::switch::{Switch, SwitchParams};
use crate::thermal::{HeatInputs, NetworkParams, ThermalNetwork};
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

/// Current of the default soak: a discharge at the datasheet's max
/// continuous current (electrical data, 250 A).
pub const DEFAULT_SOAK_CURRENT_A: f64 = -variant::MAX_CONTINUOUS_CURRENT_A;
/// Duration of the default soak (s): 20 min, the scenario of issue 16
/// (20 min at 240 A) at the full 250 A; the board (τ ≈ 4 min) is then within
/// 1 % of its steady temperature.
pub const DEFAULT_SOAK_S: f64 = 1200.0;
/// Times after the soak at which the default conditions read (s): at its
/// end, 1 min and 5 min later.
pub const DEFAULT_AFTER_SOAK_S: [f64; 3] = [0.0, 60.0, 300.0];
/// The pack's SOC when the soak starts: full, so that 20 min at 250 A
/// (83 Ah of the default 100 Ah cells) stays within the cells' capacity
/// down to −10 °C.
pub const DEFAULT_SOAK_START_SOC: f64 = 1.0;
/// The default ambient ramp starts at +25 °C (the calibration's
/// temperature) and reaches the column's ambient in 1 h: a pack carried from
/// a workshop into the cold or the heat; the cells (τ ≈ 2.2 h) lag the
/// board (τ ≈ 4 min), so the shunt's terminals sit at different temperatures.
pub const DEFAULT_AMBIENT_RAMP_FROM_C: f64 = 25.0;
/// Duration of the default ambient ramp (s).
pub const DEFAULT_AMBIENT_RAMP_S: f64 = 3600.0;
/// Longest step of the thermal network through a history (s). The heat is
/// held over a step at the temperatures it starts from (as the engine holds
/// it between its 100 ms thermal steps); it changes within one through R(T)
/// of the shunt and the switch (0.5 %/K) and the cells' R0(T), so the
/// temperatures agree with 0.5 s steps to < 0.05 K (`thermal_steps_converge`;
/// 10 s steps are 0.1 K off at −10 °C).
pub const THERMAL_STEP_S: f64 = 5.0;
/// A history starts with the board in equilibrium at its first ambient: the
/// network is first stepped over this long (s), ≫ the cells' τ ≈ 8000 s.
pub const SETTLE_S: f64 = 1.0e6;

/// The yield the verdict asks for: at least 99 % of boards within every
/// datasheet figure under every condition. A Monte Carlo cannot show that
/// every board meets a maximum; it can show, at [`VERDICT_CONFIDENCE`], that
/// the fraction that does not is below 1 %.
pub const YIELD_TARGET: f64 = 0.99;
/// Confidence of the yield's interval (two-sided Clopper–Pearson).
pub const VERDICT_CONFIDENCE: f64 = 0.95;

/// The datasheet's own figures for the parts it names: what
/// [`Parts::Datasheet`] draws within.
pub mod datasheet_limits {
    /// Product features: "High-precision current measurement, shunt
    /// temperature coefficient < 10 ppm" (ppm/K, ±).
    pub const SHUNT_TCR_PPM_PER_K: f64 = 10.0;
    /// Product features: "Current measuring amplifier with < 0.1 µV/°C
    /// drift" (V/K, ±).
    pub const AMP_OFFSET_DRIFT_V_PER_K: f64 = 0.1e-6;
    /// Electrical data: "Switch-on resistance < 0.45 / 0.55 / 0.6 mΩ" (Ω),
    /// [`Variant::switch_on_resistance_ohm`]: the most heat a board within
    /// the datasheet may make at full current.
    pub const fn switch_on_resistance_ohm(variant: super::Variant) -> f64 {
        variant.switch_on_resistance_ohm()
    }
}

/// Stream a datasheet-limits board draws its shunt TCR and amplifier drift
/// from (under the board's seed; the design's draws are left as they are).
const DATASHEET_PARTS_STREAM: &str = "accuracy.parts.datasheet";
/// Stream of a board's switch (the engine's name for it).
const SWITCH_STREAM: &str = "switch";
/// Stream of the pack whose losses heat the cells (under the run's seed).
const PACK_STREAM: &str = "pack";

/// Which parts the boards are built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parts {
    /// The design's component tolerances ([`ChainParams`], [`SwitchParams`]
    /// as given): limits drawn normal, σ = limit/3, truncated at the limit.
    Design,
    /// The parts the datasheet names at the datasheet's own limits
    /// ([`datasheet_limits`]): the shunt's TCR and the amplifier's offset
    /// drift uniform over ±limit, the switch-on resistance at its maximum
    /// (no spread); every other part as designed, each board's other draws
    /// unchanged (board k of both sets differs only in those parts).
    ///
    /// Why uniform: a "< X" figure is a bound, not a distribution; every
    /// value within it is allowed and none is preferred, and the uniform
    /// distribution is the one that assumes nothing else (maximum entropy
    /// on a bounded interval). It puts σ = limit/√3 — 1.7 × the design's
    /// limit/3 at the same limit — and a sixth of the units within 17 % of
    /// either end. All parts at the corners (±limit) would be a worst-case
    /// stack-up, which no datasheet promises of its parts. The on-resistance
    /// is a one-sided maximum whose only effect here is heat, and more heat
    /// is never better, so every unit takes the maximum.
    Datasheet,
}

impl Parts {
    /// Both sets, design first.
    pub const ALL: [Parts; 2] = [Parts::Design, Parts::Datasheet];

    /// The set's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Parts::Design => "design",
            Parts::Datasheet => "datasheet",
        }
    }

    /// What the set is, for the table's header.
    fn describe(self, config: &AccuracyConfig) -> String {
        let c = &config.chain;
        let v = config.variant;
        match self {
            Parts::Design => format!(
                "design parts (shunt TCR ±{} ppm/K, amplifier offset drift ±{:.2} µV/K, normal σ = limit/3; \
                 switch-on resistance {:.3} mΩ ±{} % per FET)",
                c.shunt.tcr_ppm_per_k,
                c.amplifier.offset_drift_v_per_k * 1e6,
                config.switch.on_resistance_ohm(v) * 1e3,
                config.switch.rds_spread_rel * 100.0
            ),
            Parts::Datasheet => format!(
                "parts at the datasheet's limits (uniform over ±limit: shunt TCR ±{} ppm/K and amplifier \
                 offset drift ±{:.2} µV/K, product features; switch-on resistance {} mΩ, its maximum in the \
                 electrical data; every other part as designed)",
                datasheet_limits::SHUNT_TCR_PPM_PER_K,
                datasheet_limits::AMP_OFFSET_DRIFT_V_PER_K * 1e6,
                datasheet_limits::switch_on_resistance_ohm(v) * 1e3
            ),
        }
    }

    /// The switch the boards of this set are built with.
    fn switch_params(self, design: &SwitchParams, variant: Variant) -> SwitchParams {
        match self {
            Parts::Design => *design,
            Parts::Datasheet => SwitchParams {
                on_resistance_mohm: Some(datasheet_limits::switch_on_resistance_ohm(variant) * 1e3),
                rds_spread_rel: 0.0,
                ..*design
            },
        }
    }
}

impl std::str::FromStr for Parts {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Parts::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown parts '{s}': expected 'design' or 'datasheet'"))
    }
}

/// A deviation uniform over ±`limit` (one uniform draw).
fn uniform_within<R: Rng + ?Sized>(rng: &mut R, limit: f64) -> f64 {
    limit.abs() * (2.0 * rng.random::<f64>() - 1.0)
}

/// One stretch of a history: `current_a` through the board for
/// `duration_s`, the ambient moving linearly from `ambient_start_c` to
/// `ambient_end_c`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    /// Duration (s).
    pub duration_s: f64,
    /// Current through the switch and the shunt (A, + = charge).
    pub current_a: f64,
    /// Ambient at the start (°C).
    pub ambient_start_c: f64,
    /// Ambient at the end (°C).
    pub ambient_end_c: f64,
}

/// What a board lives through before it is read: in equilibrium at
/// `start_c` with no current, then `segments` in order; the readings are
/// taken at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct History {
    /// Ambient of the initial equilibrium (°C).
    pub start_c: f64,
    /// The current and the ambient after it.
    pub segments: Vec<Segment>,
}

/// A thermal condition of the readings, defined for every ambient of the
/// table ([`Condition::history`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// In equilibrium at the ambient with no current before: the
    /// datasheet's table as it is usually read (the board at the ambient,
    /// warmed only by its own 0.1 W).
    Steady,
    /// From equilibrium at the ambient, `soak_s` at `current_a`, then
    /// `after_s` at 0 A: the readings (0 A for the offset, every test current
    /// for the total error, each a short pulse on that thermal state).
    AfterSoak {
        /// Soak current (A).
        current_a: f64,
        /// Soak duration (s).
        soak_s: f64,
        /// Time at 0 A after the soak (s); 0: at its end.
        after_s: f64,
    },
    /// From equilibrium at `from_c`, the ambient ramped to the column's
    /// ambient over `ramp_s`, no current: the readings at the ramp's end. Not
    /// defined for the column at `from_c`.
    AmbientRamp {
        /// Ambient before the ramp (°C).
        from_c: f64,
        /// Ramp duration (s).
        ramp_s: f64,
    },
}

/// A duration for a label: whole minutes as minutes, else seconds.
fn duration_label(s: f64) -> String {
    if s >= 60.0 && (s / 60.0).fract() == 0.0 { format!("{} min", s / 60.0) } else { format!("{s} s") }
}

impl Condition {
    /// The default conditions: steady, the end of a 20 min soak at 250 A
    /// and 1 and 5 min after it, and a 1 h ambient ramp from +25 °C.
    pub fn defaults() -> Vec<Condition> {
        let mut c = vec![Condition::Steady];
        c.extend(DEFAULT_AFTER_SOAK_S.map(|after_s| Condition::AfterSoak {
            current_a: DEFAULT_SOAK_CURRENT_A,
            soak_s: DEFAULT_SOAK_S,
            after_s,
        }));
        c.push(Condition::AmbientRamp { from_c: DEFAULT_AMBIENT_RAMP_FROM_C, ramp_s: DEFAULT_AMBIENT_RAMP_S });
        c
    }

    /// The condition in words, for the table.
    pub fn label(&self) -> String {
        match *self {
            Condition::Steady => "steady at the ambient".to_owned(),
            Condition::AfterSoak { current_a, soak_s, after_s: 0.0 } => {
                format!("end of {} at {current_a:+} A", duration_label(soak_s))
            }
            Condition::AfterSoak { current_a, soak_s, after_s } => {
                format!("0 A, {} after {} at {current_a:+} A", duration_label(after_s), duration_label(soak_s))
            }
            Condition::AmbientRamp { from_c, ramp_s } => {
                format!("end of a {} ambient ramp from {from_c:+} °C", duration_label(ramp_s))
            }
        }
    }

    /// What a board lives through under this condition at `ambient_c`
    /// (`None`: not defined there).
    pub fn history(&self, ambient_c: f64) -> Option<History> {
        let at = |duration_s, current_a| Segment {
            duration_s,
            current_a,
            ambient_start_c: ambient_c,
            ambient_end_c: ambient_c,
        };
        match *self {
            Condition::Steady => Some(History { start_c: ambient_c, segments: Vec::new() }),
            Condition::AfterSoak { current_a, soak_s, after_s } => {
                Some(History { start_c: ambient_c, segments: vec![at(soak_s, current_a), at(after_s, 0.0)] })
            }
            Condition::AmbientRamp { from_c, .. } if from_c == ambient_c => None,
            Condition::AmbientRamp { from_c, ramp_s } => Some(History {
                start_c: from_c,
                segments: vec![Segment {
                    duration_s: ramp_s,
                    current_a: 0.0,
                    ambient_start_c: from_c,
                    ambient_end_c: ambient_c,
                }],
            }),
        }
    }

    /// Checks that the condition's figures are physical.
    fn validate(&self) -> Result<(), String> {
        let durations: &[(&str, f64)] = match self {
            Condition::Steady => &[],
            Condition::AfterSoak { soak_s, after_s, .. } => &[("soak_s", *soak_s), ("after_s", *after_s)],
            Condition::AmbientRamp { ramp_s, .. } => &[("ramp_s", *ramp_s)],
        };
        for (name, d) in durations {
            if !(d.is_finite() && *d >= 0.0) {
                return Err(format!("condition '{}': {name} = {d} must be finite and ≥ 0", self.label()));
            }
        }
        match self {
            Condition::AfterSoak { current_a, .. }
                if current_a.is_nan() || current_a.abs() > variant::CURRENT_RANGE_A =>
            {
                Err(format!(
                    "condition '{}': the soak current must be within ±{} A",
                    self.label(),
                    variant::CURRENT_RANGE_A
                ))
            }
            Condition::AmbientRamp { from_c, .. } if !from_c.is_finite() => {
                Err(format!("condition '{}': from_c must be finite", self.label()))
            }
            _ => Ok(()),
        }
    }
}

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
    /// Which parts the boards are built from.
    pub parts: Parts,
    /// The design's main switch (its conduction loss heats the board).
    pub switch: SwitchParams,
    /// The pack whose cells' losses heat the cells node (the same pack for
    /// every board; drawn from the run's seed).
    pub pack: PackParams,
    /// The thermal network; `None`: the engine's default for the variant's
    /// pack (`NetworkParams::for_cells`).
    pub thermal: Option<NetworkParams>,
    /// The board's own consumption (W), heating the board.
    pub self_consumption_w: f64,
    /// Pack SOC at the start of every history.
    pub soak_start_soc: f64,
    /// Ambient temperatures (°C): the table's columns.
    pub temps_c: Vec<f64>,
    /// The thermal conditions: the table's row groups.
    pub conditions: Vec<Condition>,
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
    /// The yield the verdict asks for.
    pub yield_target: f64,
    /// Confidence of the yield's interval.
    pub confidence: f64,
}

impl AccuracyConfig {
    /// The datasheet's conditions: ambients −10, 25 and +50 °C, the default
    /// thermal conditions ([`Condition::defaults`]), the design's parts,
    /// calibration at 25 °C, test currents over ±250 A, voltages over the
    /// range.
    pub fn datasheet(variant: Variant, boards: usize, seed: u64) -> Self {
        Self {
            boards,
            variant,
            seed,
            chain: ChainParams::default(),
            parts: Parts::Design,
            switch: SwitchParams::default(),
            pack: PackParams::default(),
            thermal: None,
            self_consumption_w: SelfConsumption::default().power_w,
            soak_start_soc: DEFAULT_SOAK_START_SOC,
            temps_c: vec![variant::ACCURACY_TEMP_RANGE_C.0, 25.0, variant::ACCURACY_TEMP_RANGE_C.1],
            conditions: Condition::defaults(),
            cal_temp_c: 25.0,
            cal_current_a: DEFAULT_CAL_CURRENT_A,
            cal_voltage_fraction: DEFAULT_CAL_VOLTAGE_FRACTION,
            line_current_uncertainty_rel: DEFAULT_LINE_CURRENT_UNCERTAINTY_REL,
            line_voltage_uncertainty_rel: DEFAULT_LINE_VOLTAGE_UNCERTAINTY_REL,
            cal_samples: DEFAULT_CAL_SAMPLES,
            test_currents_a: vec![-250.0, -200.0, -125.0, -50.0, -10.0, 0.0, 10.0, 50.0, 125.0, 200.0, 250.0],
            test_voltage_fractions: vec![0.1, 0.25, 0.5, 0.75, 0.9, 1.0],
            yield_target: YIELD_TARGET,
            confidence: VERDICT_CONFIDENCE,
        }
    }

    /// The thermal network of the boards.
    pub fn network(&self) -> NetworkParams {
        self.thermal.unwrap_or_else(|| NetworkParams::for_cells(self.pack.cells_for(self.variant)))
    }

    /// Checks that the configuration can be run, naming what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.boards == 0 {
            return Err("boards must be at least 1".to_owned());
        }
        self.chain.validate().map_err(|e| format!("chain: {e}"))?;
        self.pack.validate().map_err(|e| format!("pack: {e}"))?;
        self.network().validate().map_err(|e| format!("thermal: {e}"))?;
        if let Some(t) = self.temps_c.iter().find(|t| !t.is_finite()) {
            return Err(format!("ambient temperature {t} °C is not finite"));
        }
        for c in &self.conditions {
            c.validate()?;
        }
        let fraction = |name: &str, x: f64| {
            if x > 0.0 && x < 1.0 { Ok(()) } else { Err(format!("{name} = {x} must be within (0, 1)")) }
        };
        fraction("yield_target", self.yield_target)?;
        fraction("confidence", self.confidence)?;
        if !(0.0..=1.0).contains(&self.soak_start_soc) {
            return Err(format!("soak_start_soc = {} must be within 0..=1", self.soak_start_soc));
        }
        if !(self.self_consumption_w.is_finite() && self.self_consumption_w >= 0.0) {
            return Err(format!("self_consumption_w = {} must be finite and ≥ 0", self.self_consumption_w));
        }
        Ok(())
    }
}

/// One board at one thermal state (% FS).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoardResult {
    /// Largest |current error| over the test currents.
    pub current_total_pct_fs: f64,
    /// |current reading| at 0 A.
    pub current_offset_pct_fs: f64,
    /// Largest |voltage error| over the test voltages.
    pub voltage_total_pct_fs: f64,
}

impl BoardResult {
    /// `true` if every figure is within the datasheet's.
    pub fn within_datasheet(&self) -> bool {
        self.current_total_pct_fs < variant::CURRENT_TOTAL_ERROR_PCT_FS
            && self.current_offset_pct_fs < variant::CURRENT_OFFSET_ERROR_PCT_FS
            && self.voltage_total_pct_fs < variant::VOLTAGE_TOTAL_ERROR_PCT_FS
    }
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

/// The statistics of one condition at one ambient.
#[derive(Clone, Debug, PartialEq)]
pub struct TempRow {
    /// Index of the condition in [`AccuracyConfig::conditions`].
    pub condition: usize,
    /// Ambient temperature (°C).
    pub temp_c: f64,
    /// Total current error (% FS).
    pub current_total: Stat,
    /// Current offset (% FS).
    pub current_offset: Stat,
    /// Total voltage error (% FS).
    pub voltage_total: Stat,
    /// Boards within every figure here.
    pub within: usize,
    /// Board temperature above the ambient at the readings, mean over the boards (K).
    pub board_rise_k: f64,
    /// Shunt element above the board, mean (K).
    pub shunt_rise_k: f64,
    /// Temperature difference across the shunt's terminals, mean (K).
    pub shunt_delta_t_k: f64,
}

/// A fraction of boards and its two-sided Clopper–Pearson interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct YieldEstimate {
    /// Boards within every figure under every condition.
    pub passing: usize,
    /// Boards simulated.
    pub boards: usize,
    /// Confidence of the interval.
    pub confidence: f64,
    /// Lower end of the interval.
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

/// P(X ≤ k) for X ~ Binomial(n, p).
fn binomial_cdf(k: usize, n: usize, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if k >= n { 1.0 } else { 0.0 };
    }
    let (lp, lq) = (p.ln(), (-p).ln_1p());
    let mut ln_choose = 0.0;
    let mut sum = 0.0;
    for i in 0..=k.min(n) {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        sum += (ln_choose + i as f64 * lp + (n - i) as f64 * lq).exp();
    }
    sum.min(1.0)
}

/// The p at which the decreasing `f(p)` crosses `target`, by bisection.
fn solve_decreasing(f: impl Fn(f64) -> f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if f(mid) > target { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

impl YieldEstimate {
    /// `passing` of `boards` and the Clopper–Pearson interval at `confidence`:
    /// `low` is the p at which P(X ≥ passing) = α/2, `high` the p at which
    /// P(X ≤ passing) = α/2 (closed forms at 0 and at all).
    pub fn of(passing: usize, boards: usize, confidence: f64) -> Self {
        let tail = (1.0 - confidence) / 2.0;
        let n = boards as f64;
        let low = match passing {
            0 => 0.0,
            k if k >= boards => tail.powf(1.0 / n),
            k => solve_decreasing(|p| binomial_cdf(k - 1, boards, p), 1.0 - tail),
        };
        let high = match passing {
            k if k >= boards => 1.0,
            0 => 1.0 - tail.powf(1.0 / n),
            k => solve_decreasing(|p| binomial_cdf(k, boards, p), tail),
        };
        Self { passing, boards, confidence, low, high }
    }

    /// The fraction passing.
    pub fn fraction(&self) -> f64 {
        self.passing as f64 / self.boards.max(1) as f64
    }

    /// PASS if the whole interval is at or above `target`, FAIL if it is
    /// below, undecided if it straddles it.
    pub fn verdict(&self, target: f64) -> Verdict {
        if self.low >= target {
            Verdict::Pass
        } else if self.high < target {
            Verdict::Fail
        } else {
            Verdict::Undecided
        }
    }

    /// One line: "998/1000 boards = 99.80 % (95 % interval 99.28–99.98 %)".
    pub fn describe(&self) -> String {
        format!(
            "{}/{} boards = {:.2} % ({:.0} % interval {:.2}–{:.2} %)",
            self.passing,
            self.boards,
            100.0 * self.fraction(),
            100.0 * self.confidence,
            100.0 * self.low,
            100.0 * self.high
        )
    }
}

/// The fewest boards with which a run in which none fails is a PASS:
/// `(α/2)^(1/n) ≥ target`, n = ⌈ln(α/2) / ln(target)⌉.
pub fn boards_for_a_pass(target: f64, confidence: f64) -> usize {
    let tail = (1.0 - confidence) / 2.0;
    (tail.ln() / target.ln()).ceil() as usize
}

/// What a Monte Carlo concludes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The yield is at or above the target at the confidence asked.
    Pass,
    /// The yield is below the target at the confidence asked.
    Fail,
    /// The interval straddles the target: more boards would decide.
    Undecided,
}

/// One figure of a row, for the table.
type Figure = dyn Fn(&TempRow) -> f64;

/// The outcome of a Monte Carlo run.
#[derive(Clone, Debug, PartialEq)]
pub struct AccuracyReport {
    /// The configuration it ran.
    pub config: AccuracyConfig,
    /// One row per condition and ambient where the condition is defined
    /// (conditions in order, ambients in order within each).
    pub rows: Vec<TempRow>,
    /// Per-sample noise of the current channel, mean over the boards (% FS, 1σ).
    pub current_noise_pct_fs: f64,
    /// Boards that met every datasheet figure under every condition at every ambient.
    pub boards_passing: usize,
}

impl AccuracyReport {
    /// `true` if every board met every figure under every condition.
    pub fn all_pass(&self) -> bool {
        self.boards_passing == self.config.boards
    }

    /// The yield and its interval.
    pub fn yield_estimate(&self) -> YieldEstimate {
        YieldEstimate::of(self.boards_passing, self.config.boards, self.config.confidence)
    }

    /// The verdict on the yield.
    pub fn verdict(&self) -> Verdict {
        self.yield_estimate().verdict(self.config.yield_target)
    }

    /// The row of condition `condition` at `temp_c`, if it is defined there.
    pub fn row(&self, condition: usize, temp_c: f64) -> Option<&TempRow> {
        self.rows.iter().find(|r| r.condition == condition && r.temp_c == temp_c)
    }

    /// The verdict line: one statement, with why.
    pub fn verdict_line(&self) -> String {
        let c = &self.config;
        let y = self.yield_estimate();
        let (target, conf) = (100.0 * c.yield_target, 100.0 * c.confidence);
        let interval = format!("{:.2}–{:.2} %", 100.0 * y.low, 100.0 * y.high);
        match y.verdict(c.yield_target) {
            Verdict::Pass => format!(
                "verdict: PASS (yield {:.2} %, its {conf:.0} % interval {interval} at or above the {target} % target)",
                100.0 * y.fraction()
            ),
            Verdict::Fail => format!(
                "verdict: FAIL (yield {:.2} %, its {conf:.0} % interval {interval} below the {target} % target)",
                100.0 * y.fraction()
            ),
            Verdict::Undecided => format!(
                "verdict: undecided ({} boards, {} failing: the yield's {conf:.0} % interval {interval} straddles \
                 the {target} % target; with none failing a PASS needs ≥ {} boards)",
                c.boards,
                c.boards - self.boards_passing,
                boards_for_a_pass(c.yield_target, c.confidence)
            ),
        }
    }

    /// The table, shaped like the datasheet's accuracy tables (Markdown):
    /// one group of rows per condition, one column per ambient.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "SmartPro {} measurement accuracy: Monte Carlo over {} boards (seed {}) of {}, calibrated at {} °C \
             (0 A and {:+} A; {:.1} V)\n",
            c.variant,
            c.boards,
            c.seed,
            c.parts.describe(c),
            c.cal_temp_c,
            c.cal_current_a,
            c.cal_voltage_fraction * c.variant.voltage_range_v()
        );
        let temps: Vec<String> = c.temps_c.iter().map(|t| format!("{t:+} °C")).collect();
        let _ = writeln!(out, "| condition | | {} | datasheet | Unit |", temps.join(" | "));
        let _ = writeln!(out, "|---|---|{}---|---|", "---|".repeat(temps.len()));
        for (ic, cond) in c.conditions.iter().enumerate() {
            let cells = |f: &dyn Fn(&TempRow) -> String| -> String {
                c.temps_c
                    .iter()
                    .map(|&t| self.row(ic, t).map_or_else(|| "—".to_owned(), f))
                    .collect::<Vec<_>>()
                    .join(" | ")
            };
            let _ = writeln!(
                out,
                "| {} | board − ambient / shunt − board / shunt terminal ΔT, mean | {} | | K |",
                cond.label(),
                cells(&|r| format!("{:+.1} / {:+.1} / {:+.2}", r.board_rise_k, r.shunt_rise_k, r.shunt_delta_t_k))
            );
            let figures: [(&str, &Figure, f64); 5] = [
                ("current total error, worst board", &|r| r.current_total.worst, variant::CURRENT_TOTAL_ERROR_PCT_FS),
                ("current total error, 99th percentile", &|r| r.current_total.p99, variant::CURRENT_TOTAL_ERROR_PCT_FS),
                (
                    "current offset error, worst board",
                    &|r| r.current_offset.worst,
                    variant::CURRENT_OFFSET_ERROR_PCT_FS,
                ),
                (
                    "current offset error, 99th percentile",
                    &|r| r.current_offset.p99,
                    variant::CURRENT_OFFSET_ERROR_PCT_FS,
                ),
                ("voltage total error, worst board", &|r| r.voltage_total.worst, variant::VOLTAGE_TOTAL_ERROR_PCT_FS),
            ];
            for (name, f, limit) in figures {
                let _ = writeln!(out, "| | {name} | {} | < {limit} | % FS |", cells(&|r| format!("{:.4}", f(r))));
            }
            let _ = writeln!(
                out,
                "| | boards within every figure | {} | all | boards |",
                cells(&|r| format!("{}/{}", r.within, c.boards))
            );
        }
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
            "Within every datasheet figure under every condition at every ambient: {}.",
            self.yield_estimate().describe()
        );
        let _ = writeln!(out, "{}", self.verdict_line());
        out
    }
}

/// A history prepared for every board: the network in equilibrium at its
/// start, and its steps with the cells' heat (the same pack for every board).
#[derive(Clone, Debug)]
struct Trace {
    start: ThermalNetwork,
    steps: Vec<TraceStep>,
    /// The ambient at the end (°C).
    ambient_end_c: f64,
}

#[derive(Clone, Copy, Debug)]
struct TraceStep {
    dt_s: f64,
    current_a: f64,
    ambient_c: f64,
    cells_w: f64,
}

/// The board's parts that heat it: its switch and its shunt.
struct Heaters<'a> {
    switch: &'a Switch,
    shunt: &'a Shunt,
    own_w: f64,
}

impl Heaters<'_> {
    /// One step of `net` with `current_a` through the switch and the shunt,
    /// the heat at the temperatures the step starts from (as the engine holds
    /// them between its thermal steps).
    fn step(&self, net: &mut ThermalNetwork, dt_s: f64, current_a: f64, ambient_c: f64, cells_w: f64) {
        let i2 = current_a * current_a;
        let inputs = HeatInputs {
            cells_w,
            board_w: self.switch.r_on_ohm(net.board_c()) * i2 + self.own_w,
            shunt_w: self.shunt.power_w(current_a, net.shunt_c()),
            ambient_c,
        };
        net.step(dt_s, &inputs);
    }
}

/// The steps of a history: each segment in equal steps of at most
/// `max_step_s`, the ambient at each step's middle.
fn steps_of(history: &History, max_step_s: f64) -> Vec<(f64, f64, f64)> {
    let mut out = Vec::new();
    for seg in &history.segments {
        if seg.duration_s <= 0.0 {
            continue;
        }
        let n = (seg.duration_s / max_step_s).ceil().max(1.0) as usize;
        let dt = seg.duration_s / n as f64;
        for k in 0..n {
            let x = (k as f64 + 0.5) / n as f64;
            out.push((dt, seg.current_a, seg.ambient_start_c + x * (seg.ambient_end_c - seg.ambient_start_c)));
        }
    }
    out
}

/// The network in equilibrium at `ambient_c` with only the board's own
/// consumption, its step cached at [`THERMAL_STEP_S`].
fn settled(params: &NetworkParams, ambient_c: f64, own_w: f64) -> ThermalNetwork {
    let mut net = ThermalNetwork::new(params, ambient_c);
    let inputs = HeatInputs { board_w: own_w, ambient_c, ..HeatInputs::default() };
    net.step(SETTLE_S, &inputs);
    net.step(THERMAL_STEP_S, &inputs);
    net
}

/// Prepares `history`: the cells' heat at each step from the pack, stepped
/// with a nominal board of the parts set (its switch without spread, a
/// nominal shunt).
fn trace(config: &AccuracyConfig, history: &History, max_step_s: f64) -> Trace {
    let v = config.variant;
    let params = config.network();
    let start = settled(&params, history.start_c, config.self_consumption_w);
    let switch_params = SwitchParams { rds_spread_rel: 0.0, ..config.parts.switch_params(&config.switch, v) };
    let nominal_rng = &mut SeedStreams::new(config.seed).stream("accuracy.nominal");
    let switch = Switch::new(&switch_params, v, nominal_rng);
    let shunt_params = ShuntParams { tolerance_rel: 0.0, tcr_ppm_per_k: 0.0, ..config.chain.shunt };
    let shunt = Shunt::new(&shunt_params, nominal_rng);
    let heaters = Heaters { switch: &switch, shunt: &shunt, own_w: config.self_consumption_w };
    let mut pack =
        Pack::new(&config.pack, v, config.soak_start_soc, &mut SeedStreams::new(config.seed).stream(PACK_STREAM));
    pack.set_temperature_c(start.cells_c());
    let mut net = start.clone();
    let steps = steps_of(history, max_step_s)
        .into_iter()
        .map(|(dt_s, current_a, ambient_c)| {
            let cells_w = pack.heat_w(current_a);
            heaters.step(&mut net, dt_s, current_a, ambient_c, cells_w);
            pack.step(dt_s, current_a);
            pack.set_temperature_c(net.cells_c());
            TraceStep { dt_s, current_a, ambient_c, cells_w }
        })
        .collect();
    let ambient_end_c = history.segments.last().map_or(history.start_c, |s| s.ambient_end_c);
    Trace { start, steps, ambient_end_c }
}

/// One board's chain and switch, drawn from its streams as `config.parts` says.
fn build_board(config: &AccuracyConfig, streams: &SeedStreams) -> (MeasurementChain, Switch) {
    let v = config.variant;
    let mut chain = MeasurementChain::new(&config.chain, v, streams);
    if config.parts == Parts::Datasheet {
        let rng = &mut streams.stream(DATASHEET_PARTS_STREAM);
        let tcr_per_k = uniform_within(rng, datasheet_limits::SHUNT_TCR_PPM_PER_K) * 1e-6;
        let drift_v_per_k = uniform_within(rng, datasheet_limits::AMP_OFFSET_DRIFT_V_PER_K);
        let shunt = chain.shunt().with_tcr_per_k(tcr_per_k);
        let amplifier = chain.amplifier().with_offset_drift_v_per_k(drift_v_per_k);
        chain = chain.with_current_parts(shunt, amplifier);
    }
    let switch = Switch::new(&config.parts.switch_params(&config.switch, v), v, &mut streams.stream(SWITCH_STREAM));
    (chain, switch)
}

/// The temperatures one board reaches through `trace`.
fn board_state(trace: &Trace, chain: &MeasurementChain, switch: &Switch, own_w: f64) -> ChainTemperatures {
    let heaters = Heaters { switch, shunt: chain.shunt(), own_w };
    let mut net = trace.start.clone();
    for s in &trace.steps {
        heaters.step(&mut net, s.dt_s, s.current_a, s.ambient_c, s.cells_w);
    }
    ChainTemperatures {
        shunt_temp_c: net.shunt_c(),
        board_temp_c: net.board_c(),
        shunt_delta_t_k: net.shunt_terminal_delta_k(),
    }
}

/// One board after `history`: built from `streams` as `config` says (the
/// Monte Carlo builds board k from `SeedStreams::new(seed).derive("board",
/// k)`; a scenario's engine builds its board from `SeedStreams::new(seed)`,
/// with the pack of the same seed), calibrated by the line through
/// `readout`. Returns the temperatures the history leaves and the board's
/// reading (A) of `current_a` there.
pub fn reading_after<R: Readout>(
    config: &AccuracyConfig,
    readout: &R,
    streams: &SeedStreams,
    history: &History,
    current_a: f64,
) -> (ChainTemperatures, f64) {
    let (chain, switch) = build_board(config, streams);
    let cal = readout.calibrate(&line_measurement(config, &chain, &mut streams.stream("line")));
    let t = board_state(&trace(config, history, THERMAL_STEP_S), &chain, &switch, config.self_consumption_w);
    let s = CurrentSample {
        current_a,
        shunt_temp_c: t.shunt_temp_c,
        board_temp_c: t.board_temp_c,
        shunt_delta_t_k: t.shunt_delta_t_k,
    };
    let code = chain.adc().quantize(chain.current_code_noiseless_at(&s));
    (t, readout.current_a(code, &cal, t.board_temp_c))
}

/// Runs the Monte Carlo with the readout `readout`. `config` must pass
/// [`AccuracyConfig::validate`].
pub fn run<R: Readout>(config: &AccuracyConfig, readout: &R) -> AccuracyReport {
    run_with_step(config, readout, THERMAL_STEP_S)
}

fn run_with_step<R: Readout>(config: &AccuracyConfig, readout: &R, max_step_s: f64) -> AccuracyReport {
    let fs_a = variant::CURRENT_RANGE_A;
    // The (condition, ambient) pairs where a condition is defined, with their histories prepared.
    let cases: Vec<(usize, f64, Trace)> = config
        .conditions
        .iter()
        .enumerate()
        .flat_map(|(ic, cond)| config.temps_c.iter().map(move |&t| (ic, t, cond.history(t))))
        .filter_map(|(ic, t, h)| h.map(|h| (ic, t, trace(config, &h, max_step_s))))
        .collect();
    let nc = cases.len();
    let mut totals = vec![Vec::with_capacity(config.boards); nc];
    let mut offsets = vec![Vec::with_capacity(config.boards); nc];
    let mut volts = vec![Vec::with_capacity(config.boards); nc];
    let mut within = vec![0usize; nc];
    let mut thermal = vec![[0.0; 3]; nc];
    let mut noise_sum = 0.0;
    let mut passing = 0;
    let root = SeedStreams::new(config.seed);
    for k in 0..config.boards {
        let streams = root.derive("board", k as u64);
        let (chain, switch) = build_board(config, &streams);
        let mut line_rng = streams.stream("line");
        let cal = readout.calibrate(&line_measurement(config, &chain, &mut line_rng));
        let noise_codes = chain.current_noise_rms_codes();
        noise_sum += noise_codes / crate::chain::nominal::CURRENT_CODES_PER_A / fs_a * 100.0;
        let mut ok = true;
        for (ic, (_, _, trace)) in cases.iter().enumerate() {
            let state = board_state(trace, &chain, &switch, config.self_consumption_w);
            let r = board_in(config, &chain, readout, &cal, &state);
            ok &= r.within_datasheet();
            within[ic] += usize::from(r.within_datasheet());
            totals[ic].push(r.current_total_pct_fs);
            offsets[ic].push(r.current_offset_pct_fs);
            volts[ic].push(r.voltage_total_pct_fs);
            let th = &mut thermal[ic];
            th[0] += state.board_temp_c - trace.ambient_end_c;
            th[1] += state.shunt_temp_c - state.board_temp_c;
            th[2] += state.shunt_delta_t_k;
        }
        passing += usize::from(ok);
    }
    let n = config.boards.max(1) as f64;
    let rows = cases
        .iter()
        .enumerate()
        .map(|(i, (condition, temp_c, _))| TempRow {
            condition: *condition,
            temp_c: *temp_c,
            current_total: Stat::of(&mut totals[i], variant::CURRENT_TOTAL_ERROR_PCT_FS),
            current_offset: Stat::of(&mut offsets[i], variant::CURRENT_OFFSET_ERROR_PCT_FS),
            voltage_total: Stat::of(&mut volts[i], variant::VOLTAGE_TOTAL_ERROR_PCT_FS),
            within: within[i],
            board_rise_k: thermal[i][0] / n,
            shunt_rise_k: thermal[i][1] / n,
            shunt_delta_t_k: thermal[i][2] / n,
        })
        .collect();
    AccuracyReport { config: config.clone(), rows, current_noise_pct_fs: noise_sum / n, boards_passing: passing }
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

/// One calibrated board's errors with its parts at the temperatures `t`:
/// each test current a short pulse on that thermal state.
pub fn board_in<R: Readout>(
    config: &AccuracyConfig,
    chain: &MeasurementChain,
    readout: &R,
    cal: &R::Calibration,
    t: &ChainTemperatures,
) -> BoardResult {
    let fs_a = variant::CURRENT_RANGE_A;
    let fs_v = config.variant.voltage_range_v();
    let code = |x: f64| chain.adc().quantize(x);
    let i_err = |current_a: f64| {
        let s = CurrentSample {
            current_a,
            shunt_temp_c: t.shunt_temp_c,
            board_temp_c: t.board_temp_c,
            shunt_delta_t_k: t.shunt_delta_t_k,
        };
        let c = code(chain.current_code_noiseless_at(&s));
        (readout.current_a(c, cal, t.board_temp_c) - current_a).abs() / fs_a * 100.0
    };
    let total = config.test_currents_a.iter().map(|&i| i_err(i)).fold(0.0, f64::max);
    let offset = i_err(0.0);
    let voltage = config
        .test_voltage_fractions
        .iter()
        .map(|&f| {
            let v = f * fs_v;
            let c = code(chain.voltage_code_noiseless(v, t.board_temp_c));
            (readout.voltage_v(c, cal) - v).abs() / fs_v * 100.0
        })
        .fold(0.0, f64::max);
    BoardResult {
        current_total_pct_fs: total.max(offset),
        current_offset_pct_fs: offset,
        voltage_total_pct_fs: voltage,
    }
}

/// One calibrated board's errors with the whole board at `temp_c`, no
/// gradient ([`board_in`] at [`ChainTemperatures::isothermal`]).
pub fn board_at<R: Readout>(
    config: &AccuracyConfig,
    chain: &MeasurementChain,
    readout: &R,
    cal: &R::Calibration,
    temp_c: f64,
) -> BoardResult {
    board_in(config, chain, readout, cal, &ChainTemperatures::isothermal(temp_c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the steady condition: the board at the ambient.
    fn steady(variant: Variant, boards: usize, seed: u64) -> AccuracyConfig {
        AccuracyConfig { conditions: vec![Condition::Steady], ..AccuracyConfig::datasheet(variant, boards, seed) }
    }

    fn index_of(config: &AccuracyConfig, condition: Condition) -> usize {
        config.conditions.iter().position(|c| *c == condition).unwrap()
    }

    const END_OF_SOAK: Condition =
        Condition::AfterSoak { current_a: DEFAULT_SOAK_CURRENT_A, soak_s: DEFAULT_SOAK_S, after_s: 0.0 };
    const ONE_MIN_AFTER: Condition =
        Condition::AfterSoak { current_a: DEFAULT_SOAK_CURRENT_A, soak_s: DEFAULT_SOAK_S, after_s: 60.0 };

    #[test]
    fn ideal_chain_has_no_error() {
        // Ideal parts: no TCR, no EMF, no drift, so no thermal state moves a reading.
        let mut c = AccuracyConfig::datasheet(Variant::V12, 5, 1);
        c.chain = ChainParams::ideal();
        c.line_current_uncertainty_rel = 0.0;
        c.line_voltage_uncertainty_rel = 0.0;
        let r = run(&c, &FloatReadout);
        assert_eq!(r.rows.len(), c.conditions.len() * 3 - 1, "the ramp from +25 °C has no +25 °C column");
        for row in &r.rows {
            // only code rounding remains (one code = 60 µA = 0.000024 % FS)
            assert!(row.current_total.worst < 1e-4, "{row:?}");
            assert!(row.voltage_total.worst < 1e-4, "{row:?}");
        }
        assert!(r.all_pass());
    }

    #[test]
    fn default_design_meets_the_datasheet_at_steady_temperatures_small_n() {
        // The full run (≥ 368 boards) is `smartpro-sim accuracy`; here 60.
        for v in Variant::ALL {
            let r = run(&steady(v, 60, 4), &FloatReadout);
            assert!(r.all_pass(), "{}", r.table());
            assert_eq!(r.rows.len(), 3);
        }
    }

    #[test]
    fn the_datasheet_drift_limit_alone_fails_the_offset_figure() {
        // 0.1 µV/K over 35 K is 3.5 µV = 0.014 % FS: some boards fail.
        let mut c = steady(Variant::V24, 200, 9);
        c.chain.amplifier.offset_drift_v_per_k = 0.1e-6;
        let r = run(&c, &FloatReadout);
        let cold = r.row(0, -10.0).unwrap();
        assert!(cold.current_offset.worst > 0.01, "{}", r.table());
        assert!(!r.all_pass());
        // and calibration matters: at 25 °C the offset is gone
        assert!(r.row(0, 25.0).unwrap().current_offset.worst < 0.001, "{}", r.table());
    }

    #[test]
    fn table_has_the_datasheet_shape() {
        let r = run(&AccuracyConfig::datasheet(Variant::V48, 10, 2), &FloatReadout);
        let t = r.table();
        assert!(t.contains("| condition | | -10 °C | +25 °C | +50 °C | datasheet | Unit |"), "{t}");
        assert!(t.contains("| steady at the ambient | board − ambient"), "{t}");
        assert!(t.contains("| end of 20 min at -250 A |"), "{t}");
        assert!(t.contains("| 0 A, 1 min after 20 min at -250 A |"), "{t}");
        assert!(t.contains("| | current offset error, worst board |"), "{t}");
        assert!(t.contains("< 0.01 | % FS |") && t.contains("< 0.04 | % FS |"), "{t}");
        assert_eq!(t.matches("verdict:").count(), 1, "{t}");
    }

    #[test]
    fn percentile_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = Stat::of(&mut v, 150.0);
        assert_eq!(s.worst, 200.0);
        assert_eq!(s.p99, 198.0);
        assert_eq!(s.within, 149);
    }

    #[test]
    fn clopper_pearson_interval() {
        // The ends have closed forms; the bisection agrees with them.
        let y = YieldEstimate::of(100, 100, 0.95);
        assert!((y.low - 0.025f64.powf(0.01)).abs() < 1e-12 && y.high == 1.0);
        assert!((solve_decreasing(|p| binomial_cdf(99, 100, p), 0.975) - y.low).abs() < 1e-9);
        let z = YieldEstimate::of(0, 50, 0.95);
        assert!(z.low == 0.0 && (z.high - (1.0 - 0.025f64.powf(1.0 / 50.0))).abs() < 1e-12);
        // 963 of 1000 (a textbook value: 95 % Clopper–Pearson 0.9494–0.9738)
        let m = YieldEstimate::of(963, 1000, 0.95);
        assert!((m.low - 0.9494).abs() < 2e-4 && (m.high - 0.9738).abs() < 2e-4, "{m:?}");
        // The tails are α/2 at the ends found.
        assert!((1.0 - binomial_cdf(962, 1000, m.low) - 0.025).abs() < 1e-9);
        assert!((binomial_cdf(963, 1000, m.high) - 0.025).abs() < 1e-9);
        // The fewest boards for a PASS with none failing, and one fewer is not enough.
        let n = boards_for_a_pass(0.99, 0.95);
        assert_eq!(n, 368);
        assert_eq!(YieldEstimate::of(n, n, 0.95).verdict(0.99), Verdict::Pass);
        assert_eq!(YieldEstimate::of(n - 1, n - 1, 0.95).verdict(0.99), Verdict::Undecided);
        assert_eq!(YieldEstimate::of(900, 1000, 0.95).verdict(0.99), Verdict::Fail);
    }

    #[test]
    fn thermal_steps_converge() {
        // The default steps against steps ten times shorter: the same temperatures to < 0.05 K, so the same errors.
        let c = AccuracyConfig {
            conditions: vec![END_OF_SOAK, ONE_MIN_AFTER],
            ..AccuracyConfig::datasheet(Variant::V12, 3, 5)
        };
        let coarse = run_with_step(&c, &FloatReadout, THERMAL_STEP_S);
        let fine = run_with_step(&c, &FloatReadout, THERMAL_STEP_S / 10.0);
        for (a, b) in coarse.rows.iter().zip(&fine.rows) {
            assert!((a.board_rise_k - b.board_rise_k).abs() < 0.05, "{a:?} {b:?}");
            assert!((a.shunt_rise_k - b.shunt_rise_k).abs() < 0.05, "{a:?} {b:?}");
            assert!((a.shunt_delta_t_k - b.shunt_delta_t_k).abs() < 0.05, "{a:?} {b:?}");
            assert!((a.current_offset.worst - b.current_offset.worst).abs() < 3e-5, "{a:?} {b:?}");
        }
    }

    #[test]
    fn the_soak_heats_the_board_and_the_shunt_as_the_network_says() {
        // At the end of the soak the shunt sits I²R/G above the board within a
        // few % (τ = 10 s ≪ 20 min; the board still rises slowly), and the
        // board far above the ambient; 1 min later the shunt has followed the board.
        let c = AccuracyConfig {
            conditions: vec![END_OF_SOAK, ONE_MIN_AFTER],
            ..AccuracyConfig::datasheet(Variant::V24, 4, 6)
        };
        let r = run(&c, &FloatReadout);
        let net = c.network();
        let rise = 250.0 * 250.0 * crate::chain::nominal::SHUNT_R_OHM / net.shunt_to_board_w_per_k;
        let end = r.row(0, 25.0).unwrap();
        assert!((end.shunt_rise_k / rise - 1.0).abs() < 0.03, "{end:?} vs {rise}");
        assert!(end.board_rise_k > 20.0, "{end:?}");
        let after = r.row(1, 25.0).unwrap();
        assert!(after.shunt_rise_k < 0.2 * rise && after.board_rise_k < end.board_rise_k, "{after:?}");
    }

    #[test]
    fn issue_16_raising_the_thermal_emf_coefficient_changes_the_post_soak_offset_row() {
        // Isothermal, the EMF never entered the table; now the soak's gradient across the shunt's terminals reaches
        // the offset 1 min after it, and 40 × the coefficient moves that row by far more than the steady one.
        let base = AccuracyConfig {
            conditions: vec![Condition::Steady, ONE_MIN_AFTER],
            ..AccuracyConfig::datasheet(Variant::V12, 40, 7)
        };
        let mut hot = base.clone();
        hot.chain.shunt.thermal_emf_v_per_k *= 40.0;
        let (a, b) = (run(&base, &FloatReadout), run(&hot, &FloatReadout));
        let after = index_of(&base, ONE_MIN_AFTER);
        for t in [-10.0, 25.0, 50.0] {
            let (ra, rb) = (a.row(after, t).unwrap(), b.row(after, t).unwrap());
            assert!(rb.shunt_delta_t_k.abs() > 0.5, "{rb:?}");
            assert!(rb.current_offset.worst > 5.0 * ra.current_offset.worst, "{t} °C: {ra:?} → {rb:?}");
            // the steady board has (almost) no gradient: the EMF barely moves it
            let (sa, sb) = (a.row(0, t).unwrap(), b.row(0, t).unwrap());
            assert!(
                sb.current_offset.worst - sa.current_offset.worst
                    < 0.1 * (rb.current_offset.worst - ra.current_offset.worst)
            );
        }
        assert!(!b.all_pass(), "{}", b.table());
    }

    #[test]
    fn issue_16_the_datasheet_parts_yield_is_below_the_design_parts_yield() {
        // The same boards (seed), built from the design's parts and from the
        // parts at the datasheet's limits: the datasheet's figures for its
        // parts do not by themselves give a board within its accuracy figures.
        let design = AccuracyConfig::datasheet(Variant::V48, 150, 11);
        let datasheet = AccuracyConfig { parts: Parts::Datasheet, ..design.clone() };
        let (d, s) = (run(&design, &FloatReadout), run(&datasheet, &FloatReadout));
        let (yd, ys) = (d.yield_estimate(), s.yield_estimate());
        assert!(ys.passing < yd.passing, "design {yd:?}, datasheet {ys:?}");
        // and the difference is more than the draw: the intervals do not overlap
        assert!(ys.high < yd.low, "design {yd:?}, datasheet {ys:?}");
        assert_eq!(s.verdict(), Verdict::Fail, "{}", s.table());
        // steady, at −10 °C, the datasheet's drift limit alone fails boards (0.1 µV/K × 35 K = 0.014 % FS)
        assert!(s.row(0, -10.0).unwrap().current_offset.worst > variant::CURRENT_OFFSET_ERROR_PCT_FS);
        assert!(d.row(0, -10.0).unwrap().current_offset.worst < variant::CURRENT_OFFSET_ERROR_PCT_FS);
    }

    #[test]
    fn datasheet_parts_are_uniform_over_the_limits_and_leave_other_draws() {
        let c = AccuracyConfig { parts: Parts::Datasheet, ..AccuracyConfig::datasheet(Variant::V12, 1, 3) };
        let d = AccuracyConfig::datasheet(Variant::V12, 1, 3);
        let n = 4000;
        let (mut tcr, mut drift) = (Vec::new(), Vec::new());
        for k in 0..n {
            let streams = SeedStreams::new(3).derive("board", k);
            let (chain, switch) = build_board(&c, &streams);
            let (design_chain, _) = build_board(&d, &streams);
            tcr.push(chain.shunt().tcr_per_k() / 1e-6);
            drift.push(chain.amplifier().offset_drift_v_per_k() / 1e-7);
            // the other draws are the design board's
            assert_eq!(chain.shunt().resistance_ohm(25.0), design_chain.shunt().resistance_ohm(25.0));
            assert_eq!(chain.amplifier().input_offset_v(25.0), design_chain.amplifier().input_offset_v(25.0));
            assert_eq!(chain.shunt().thermal_emf_v_per_k(), design_chain.shunt().thermal_emf_v_per_k());
            assert!((switch.r_on_ohm(25.0) - Variant::V12.switch_on_resistance_ohm()).abs() < 1e-12);
        }
        for (xs, limit) in [(tcr, datasheet_limits::SHUNT_TCR_PPM_PER_K), (drift, 1.0)] {
            assert!(xs.iter().all(|x| x.abs() <= limit));
            // uniform: σ = limit/√3, and the outer fifth of the range holds a fifth of the units
            let rms = (xs.iter().map(|x| x * x).sum::<f64>() / n as f64).sqrt();
            assert!((rms / (limit / 3f64.sqrt()) - 1.0).abs() < 0.04, "{rms}");
            let outer = xs.iter().filter(|x| x.abs() > 0.8 * limit).count() as f64 / n as f64;
            assert!((outer - 0.2).abs() < 0.03, "{outer}");
        }
    }

    #[test]
    fn issue_16_a_small_run_is_undecided_and_says_so_once() {
        // 100 boards, none failing, cannot show a 99 % yield at 95 %: one statement, undecided.
        let r = run(&steady(Variant::V12, 100, 1), &FloatReadout);
        assert!(r.all_pass(), "{}", r.table());
        assert_eq!(r.verdict(), Verdict::Undecided);
        let t = r.table();
        assert_eq!(t.matches("verdict:").count(), 1, "{t}");
        assert!(t.contains("verdict: undecided (100 boards, 0 failing"), "{t}");
        assert!(t.contains("a PASS needs ≥ 368 boards"), "{t}");
        assert!(!t.contains("PASS (") && !t.contains("FAIL"), "{t}");
        // with enough boards the same design passes
        let big = run(&steady(Variant::V12, 400, 1), &FloatReadout);
        assert_eq!(big.verdict(), Verdict::Pass, "{}", big.table());
    }

    #[test]
    fn bad_configurations_are_refused_with_their_cause() {
        let ok = AccuracyConfig::datasheet(Variant::V24, 10, 1);
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.conditions.push(Condition::AfterSoak { current_a: -400.0, soak_s: 60.0, after_s: 0.0 });
        assert!(c.validate().unwrap_err().contains("soak current"));
        let mut c = ok.clone();
        c.conditions.push(Condition::AmbientRamp { from_c: 25.0, ramp_s: f64::NAN });
        assert!(c.validate().unwrap_err().contains("ramp_s"));
        let c = AccuracyConfig { boards: 0, ..ok.clone() };
        assert!(c.validate().unwrap_err().contains("boards"));
        let c = AccuracyConfig { yield_target: 1.0, ..ok };
        assert!(c.validate().unwrap_err().contains("yield_target"));
        assert_eq!("datasheet".parse::<Parts>(), Ok(Parts::Datasheet));
        assert!("typical".parse::<Parts>().unwrap_err().contains("'typical'"));
    }
}
