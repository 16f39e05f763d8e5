//! Least-squares identification of a pack's equivalent circuit from a
//! recording of its current and terminal voltage, with the solver of
//! [`super::lm`].
//!
//! # The model fitted
//!
//! [`SeriesModel`]: `n` identical cells in series with the equations of
//! [`models::pack`] (no hysteresis, resistances flat over SOC), sampled at the
//! recording's instants `t_k`, the current `I_k` held over `[t_k, t_k+1)`:
//!
//! ```text
//! soc_k    = soc_0 + Σ_{i<k} I_i·Δt_i / (3600·Q)
//! x_j,k+1  = a_j,k·x_j,k + (1 − a_j,k)·g(T_k)·I_k,   a_j,k = exp(−Δt_k/τ_j),  j = 1, 2
//! V_k      = n·[ OCV(soc_k) + ΔOCV + R1·x_1,k + R2·x_2,k + g(T_k)·R0·I_k ]
//! ```
//!
//! — the exact zero-order-hold update of the RC pairs over each interval,
//! whatever its length (`v_j = R_j·x_j`). `OCV` is the chemistry's table
//! ([`models::ocv`]), shifted by `ΔOCV` per cell; `g(T)` scales every
//! resistance with temperature as the built-in cells do: Arrhenius
//! ([`models::ecm::arrhenius`]) at the breakpoints [`models::ecm::BUILTIN_TEMPS_C`],
//! linear in between, 1 at 25 °C — so the fitted values are at 25 °C. The RC
//! pairs start relaxed when the first sample is at rest, else in steady
//! state at the first current.
//!
//! [`SeriesModel::to_ecm_params`] writes the result as an [`EcmParams`] set
//! whose [`models::pack::Pack`] reproduces [`SeriesModel::simulate`] exactly
//! (test `simulate_matches_the_pack`).
//!
//! # Identification ([`fit_ecm`])
//!
//! 1. A grid over capacity and initial SOC (the nonlinear parameters that
//!    make LFP hard), each point solving the parameters the voltage is linear
//!    in (ΔOCV, R0, R1, R2) by linear least squares; then a grid over τ1, τ2.
//! 2. Levenberg–Marquardt over every free parameter (log-scaled where
//!    positive) from the three best distinct grid points; the lowest cost
//!    wins.
//! 3. A parameter whose standard error exceeds its limit
//!    ([`Param::identifiable_std_err`]) is not identifiable from the
//!    recording: it is fixed at a prior (the rated capacity, the SOC hint,
//!    the chemistry's built-in cell) with the reason, and the rest refitted.

use models::cell::{CellParams, SECONDS_PER_HOUR};
use models::decay::decay_factor;
use models::ecm::{self, EcmParams};
use models::ocv::Chemistry;
use models::table::{self, TableValues};
use models::variant::{CURRENT_OFFSET_ERROR_PCT_FS, CURRENT_RANGE_A};
use nalgebra::DMatrix;

use super::lm::{
    LmError, LmOptions, LmSolution, Termination, Uncertainty, half_norm2, levenberg_marquardt, uncertainty,
};

/// A current below this is rest (A): ten times the datasheet's offset
/// error bound ("Current measurement accuracy": offset < 0.01 % FS of ±250 A).
pub const REST_CURRENT_A: f64 = 10.0 * CURRENT_OFFSET_ERROR_PCT_FS / 100.0 * CURRENT_RANGE_A;

/// Fewest samples [`fit_ecm`] accepts.
pub const MIN_SAMPLES: usize = 20;

/// A fit that cannot be done.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FitError {
    /// Fewer residuals than parameters (or samples than [`MIN_SAMPLES`]).
    #[error("{residuals} samples cannot determine {parameters} parameters (need at least {needed})")]
    TooFewSamples {
        /// Residuals (samples) available.
        residuals: usize,
        /// Parameters to determine.
        parameters: usize,
        /// The least number accepted.
        needed: usize,
    },
    /// A residual is not finite at the starting point.
    #[error("the model gives a non-finite residual at sample {index} at the starting point")]
    NonFiniteStart {
        /// 0-based index of the residual.
        index: usize,
    },
    /// A sample that cannot be used.
    #[error("sample {index}: {message}")]
    BadSample {
        /// 0-based index of the sample.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A parameter fixed at an impossible value.
    #[error("{name} = {value} cannot be used: {requirement}")]
    BadFixedValue {
        /// The parameter.
        name: &'static str,
        /// The value given.
        value: f64,
        /// What it must be.
        requirement: &'static str,
    },
    /// The iteration did not converge.
    #[error("the fit did not converge in {iterations} iterations (RMSE {rmse_mv:.2} mV when it stopped)")]
    NotConverged {
        /// Iterations done.
        iterations: usize,
        /// RMSE of the residuals when it stopped (mV).
        rmse_mv: f64,
    },
}

impl From<LmError> for FitError {
    fn from(e: LmError) -> Self {
        match e {
            LmError::TooFewResiduals { residuals, parameters } => {
                FitError::TooFewSamples { residuals, parameters, needed: parameters.max(1) }
            }
            LmError::NonFiniteStart { index } => FitError::NonFiniteStart { index },
        }
    }
}

/// One sample of a recording, as the fit uses it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FitSample {
    /// Time (s), strictly increasing.
    pub t_s: f64,
    /// Current (A, + = charge), held until the next sample.
    pub current_a: f64,
    /// Terminal voltage of the pack (V).
    pub voltage_v: f64,
    /// Cell temperature (°C).
    pub temp_c: f64,
}

/// The parameters of [`fit_ecm`], per cell (index order of [`CellEstimate::get`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Param {
    /// Capacity (Ah).
    CapacityAh,
    /// SOC at the first sample (0..1): a nuisance parameter.
    InitialSoc,
    /// Series resistance at 25 °C (Ω).
    R0Ohm,
    /// First RC pair: resistance at 25 °C (Ω).
    R1Ohm,
    /// First RC pair: time constant (s).
    Tau1S,
    /// Second RC pair: resistance at 25 °C (Ω).
    R2Ohm,
    /// Second RC pair: time constant (s).
    Tau2S,
    /// Shift of the chemistry's OCV table (V per cell).
    OcvOffsetV,
}

impl Param {
    /// Every parameter, in index order.
    pub const ALL: [Param; 8] = [
        Param::CapacityAh,
        Param::InitialSoc,
        Param::R0Ohm,
        Param::R1Ohm,
        Param::Tau1S,
        Param::R2Ohm,
        Param::Tau2S,
        Param::OcvOffsetV,
    ];

    /// The name used in parameter files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Param::CapacityAh => "capacity_ah",
            Param::InitialSoc => "initial_soc",
            Param::R0Ohm => "r0_ohm",
            Param::R1Ohm => "r1_ohm",
            Param::Tau1S => "tau1_s",
            Param::R2Ohm => "r2_ohm",
            Param::Tau2S => "tau2_s",
            Param::OcvOffsetV => "ocv_offset_v",
        }
    }

    /// The parameter called `name`.
    pub fn from_name(name: &str) -> Option<Param> {
        Param::ALL.into_iter().find(|p| p.name() == name)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Fitted as a logarithm (positive by construction).
    fn is_log(self) -> bool {
        !matches!(self, Param::InitialSoc | Param::OcvOffsetV)
    }

    /// The largest 1σ standard error at which the parameter counts as
    /// identified: relative for capacity, resistances and time constants,
    /// absolute for the initial SOC (fraction) and the OCV offset (V).
    ///
    /// | parameter | limit | why |
    /// |---|---|---|
    /// | capacity | 10 % | a coarser capacity is no better than the rating |
    /// | initial SOC | 0.10 | ten points: worse than a rest-voltage guess |
    /// | R0 | 20 % | the board's own ΔV/ΔI estimate does better |
    /// | R1, τ1, R2, τ2 | 30 % | the shape of the relaxation is not seen |
    /// | OCV offset | 20 mV per cell | beyond the spread of cells of one type |
    pub fn identifiable_std_err(self) -> f64 {
        match self {
            Param::CapacityAh => 0.10,
            Param::InitialSoc => 0.10,
            Param::R0Ohm => 0.20,
            Param::R1Ohm | Param::Tau1S | Param::R2Ohm | Param::Tau2S => 0.30,
            Param::OcvOffsetV => 0.020,
        }
    }

    /// Bounds a fixed value must respect.
    fn check_fixed(self, value: f64) -> Result<(), FitError> {
        let bad = |requirement| Err(FitError::BadFixedValue { name: self.name(), value, requirement });
        if !value.is_finite() {
            return bad("a finite number");
        }
        match self {
            Param::CapacityAh | Param::Tau1S | Param::Tau2S if value <= 0.0 => bad("> 0"),
            Param::R0Ohm | Param::R1Ohm | Param::R2Ohm if value < 0.0 => bad(">= 0 (0 for R1 or R2 drops the pair)"),
            Param::InitialSoc if !(0.0..=1.0).contains(&value) => bad("within 0..=1"),
            _ => Ok(()),
        }
    }
}

/// Values of the parameters of one cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CellEstimate {
    /// Capacity (Ah).
    pub capacity_ah: f64,
    /// SOC at the first sample (0..1).
    pub initial_soc: f64,
    /// Series resistance at 25 °C (Ω).
    pub r0_ohm: f64,
    /// First RC pair: resistance at 25 °C (Ω); 0: no pair.
    pub r1_ohm: f64,
    /// First RC pair: time constant (s).
    pub tau1_s: f64,
    /// Second RC pair: resistance at 25 °C (Ω); 0: no pair.
    pub r2_ohm: f64,
    /// Second RC pair: time constant (s).
    pub tau2_s: f64,
    /// Shift of the chemistry's OCV table (V per cell).
    pub ocv_offset_v: f64,
}

impl CellEstimate {
    /// The built-in cell of `chemistry` at `initial_soc`, no offset.
    pub fn builtin(chemistry: Chemistry, initial_soc: f64) -> Self {
        let c = builtin_cell(chemistry);
        Self {
            capacity_ah: c.capacity_ah,
            initial_soc,
            r0_ohm: c.r0_ohm,
            r1_ohm: c.r1_ohm,
            tau1_s: c.tau1_s,
            r2_ohm: c.r2_ohm,
            tau2_s: c.tau2_s,
            ocv_offset_v: 0.0,
        }
    }

    /// The value of `p`.
    pub fn get(&self, p: Param) -> f64 {
        match p {
            Param::CapacityAh => self.capacity_ah,
            Param::InitialSoc => self.initial_soc,
            Param::R0Ohm => self.r0_ohm,
            Param::R1Ohm => self.r1_ohm,
            Param::Tau1S => self.tau1_s,
            Param::R2Ohm => self.r2_ohm,
            Param::Tau2S => self.tau2_s,
            Param::OcvOffsetV => self.ocv_offset_v,
        }
    }

    /// Sets `p`.
    pub fn set(&mut self, p: Param, v: f64) {
        match p {
            Param::CapacityAh => self.capacity_ah = v,
            Param::InitialSoc => self.initial_soc = v,
            Param::R0Ohm => self.r0_ohm = v,
            Param::R1Ohm => self.r1_ohm = v,
            Param::Tau1S => self.tau1_s = v,
            Param::R2Ohm => self.r2_ohm = v,
            Param::Tau2S => self.tau2_s = v,
            Param::OcvOffsetV => self.ocv_offset_v = v,
        }
    }
}

/// The built-in cell of a chemistry (the priors of the fit).
fn builtin_cell(chemistry: Chemistry) -> CellParams {
    match chemistry {
        Chemistry::Lfp => CellParams::default(),
        Chemistry::Nmc => CellParams::nmc(),
    }
}

/// `n` identical cells in series (see the module doc for the equations).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeriesModel {
    /// The OCV table's chemistry.
    pub chemistry: Chemistry,
    /// Cells in series (≥ 1).
    pub cells_in_series: usize,
    /// Activation energy of every resistance (J/mol); 0: no temperature dependence.
    pub r_activation_j_per_mol: f64,
}

impl SeriesModel {
    /// Resistance at `temp_c` relative to 25 °C: Arrhenius at
    /// [`ecm::BUILTIN_TEMPS_C`], linear in between, held outside — what a
    /// table over those temperatures gives in the pack.
    pub fn resistance_factor(&self, temp_c: f64) -> f64 {
        if self.r_activation_j_per_mol == 0.0 {
            return 1.0;
        }
        let axis = &ecm::BUILTIN_TEMPS_C;
        let (i, f) = table::locate(axis, temp_c, 0);
        let j = (i + 1).min(axis.len() - 1);
        let a = ecm::arrhenius(self.r_activation_j_per_mol, axis[i]);
        let b = ecm::arrhenius(self.r_activation_j_per_mol, axis[j]);
        a + f * (b - a)
    }

    /// The pack voltage the model gives at each sample for `est` (the
    /// samples' own voltages are not used).
    pub fn simulate(&self, est: &CellEstimate, samples: &[FitSample]) -> Vec<f64> {
        let prep = Prepared::new(self, samples);
        let mut out = vec![0.0; samples.len()];
        prep.simulate(est, &mut out);
        out
    }

    /// The fitted cell as an external parameter set: the chemistry's OCV
    /// table shifted by the offset, the resistances as tables over
    /// [`ecm::BUILTIN_TEMPS_C`] (scalars without temperature dependence),
    /// the pairs with a resistance > 0, `cells_in_series` set.
    pub fn to_ecm_params(&self, est: &CellEstimate, name: &str) -> EcmParams {
        let points = self.chemistry.table().points();
        let soc: Vec<f64> = points.iter().map(|p| p.0).collect();
        let ocv: Vec<f64> = points.iter().map(|p| p.1 + est.ocv_offset_v).collect();
        let temps: Vec<f64> =
            if self.r_activation_j_per_mol == 0.0 { vec![ecm::T_REF_C] } else { ecm::BUILTIN_TEMPS_C.to_vec() };
        let n_soc = soc.len();
        let resistance = |r: f64| {
            if self.r_activation_j_per_mol == 0.0 {
                TableValues::Scalar(r)
            } else {
                TableValues::TempSoc(temps.iter().map(|&t| vec![r * self.resistance_factor(t); n_soc]).collect())
            }
        };
        let pairs: Vec<(f64, f64)> =
            [(est.r1_ohm, est.tau1_s), (est.r2_ohm, est.tau2_s)].into_iter().filter(|(r, _)| *r > 0.0).collect();
        let pair = |k: usize| pairs.get(k).map(|&(r, tau)| (resistance(r), TableValues::Scalar(tau)));
        let (r1, tau1) = pair(0).unzip();
        let (r2, tau2) = pair(1).unzip();
        EcmParams {
            name: name.to_owned(),
            capacity_ah: est.capacity_ah,
            cells_in_series: self.cells_in_series,
            soc,
            temp_c: temps.clone(),
            // A single breakpoint: nothing depends on current.
            current_a: vec![0.0],
            ocv_v: TableValues::Soc(ocv),
            r0_ohm: resistance(est.r0_ohm),
            r1_ohm: r1,
            c1_f: None,
            tau1_s: tau1,
            r2_ohm: r2,
            c2_f: None,
            tau2_s: tau2,
            entropic_v_per_k: None,
            hysteresis_v: None,
            hysteresis_rate: ecm::DEFAULT_HYSTERESIS_RATE,
            coulombic_efficiency: 1.0,
            self_discharge_per_day: 0.0,
            capacity_factor: None,
            thermal: None,
            axes: Default::default(),
        }
    }
}

/// The recording in the form the model loop wants.
struct Prepared<'a> {
    model: &'a SeriesModel,
    voltage_v: Vec<f64>,
    /// g(T_k)·I_k.
    scaled_current_a: Vec<f64>,
    /// t_{k+1} − t_k (0 after the last sample).
    dt_s: Vec<f64>,
    /// Σ_{i<k} I_i·Δt_i / 3600 (Ah).
    charge_ah: Vec<f64>,
    /// The first sample is not at rest: the RC pairs start in steady state.
    steady_start: bool,
}

impl<'a> Prepared<'a> {
    fn new(model: &'a SeriesModel, samples: &[FitSample]) -> Self {
        let n = samples.len();
        let mut charge_ah = Vec::with_capacity(n);
        let mut q = 0.0;
        let mut dt_s = Vec::with_capacity(n);
        for (k, s) in samples.iter().enumerate() {
            charge_ah.push(q);
            let dt = samples.get(k + 1).map_or(0.0, |next| next.t_s - s.t_s);
            dt_s.push(dt);
            q += s.current_a * dt / SECONDS_PER_HOUR;
        }
        Prepared {
            model,
            voltage_v: samples.iter().map(|s| s.voltage_v).collect(),
            scaled_current_a: samples.iter().map(|s| model.resistance_factor(s.temp_c) * s.current_a).collect(),
            dt_s,
            charge_ah,
            steady_start: samples.first().is_some_and(|s| s.current_a.abs() >= REST_CURRENT_A),
        }
    }

    fn len(&self) -> usize {
        self.voltage_v.len()
    }

    /// The unit-resistance RC states x_j,k for time constant `tau_s`.
    fn rc_states(&self, tau_s: f64) -> Vec<f64> {
        let gi = &self.scaled_current_a;
        let mut x = if self.steady_start { gi[0] } else { 0.0 };
        let mut out = Vec::with_capacity(gi.len());
        let mut cache = (f64::NAN.to_bits(), 0.0);
        for (k, &dt) in self.dt_s.iter().enumerate() {
            out.push(x);
            if dt.to_bits() != cache.0 {
                cache = (dt.to_bits(), decay_factor(dt, tau_s));
            }
            x = cache.1 * x + (1.0 - cache.1) * gi[k];
        }
        out
    }

    /// Model voltages for `est` into `out`.
    fn simulate(&self, est: &CellEstimate, out: &mut [f64]) {
        let n = self.model.cells_in_series as f64;
        let ocv = self.model.chemistry.table();
        let gi = &self.scaled_current_a;
        let (mut x1, mut x2) = if self.steady_start { (gi[0], gi[0]) } else { (0.0, 0.0) };
        let mut cache = (f64::NAN.to_bits(), 0.0, 0.0);
        let inv_q = 1.0 / est.capacity_ah;
        for k in 0..self.len() {
            let soc = est.initial_soc + self.charge_ah[k] * inv_q;
            out[k] = n * (ocv.ocv_v(soc) + est.ocv_offset_v + est.r1_ohm * x1 + est.r2_ohm * x2 + est.r0_ohm * gi[k]);
            let dt = self.dt_s[k];
            if dt.to_bits() != cache.0 {
                cache = (dt.to_bits(), decay_factor(dt, est.tau1_s), decay_factor(dt, est.tau2_s));
            }
            x1 = cache.1 * x1 + (1.0 - cache.1) * gi[k];
            x2 = cache.2 * x2 + (1.0 - cache.2) * gi[k];
        }
    }

    /// SOC at every sample for `est`.
    fn soc_range(&self, est: &CellEstimate) -> (f64, f64) {
        let lo = self.charge_ah.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.charge_ah.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (est.initial_soc + lo / est.capacity_ah, est.initial_soc + hi / est.capacity_ah)
    }
}

/// How a parameter got its value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamStatus {
    /// Identified from the recording.
    Fitted,
    /// Fixed by the caller.
    Fixed,
    /// Held at the value of the other RC pair's absence (its resistance is fixed at 0).
    Unused,
    /// The recording does not determine it: fixed at a prior.
    NotIdentifiable {
        /// Why, in terms of the recording.
        reason: String,
        /// Where the value it was fixed at comes from.
        prior: &'static str,
        /// The standard error the fit gave before it was fixed (natural units; ∞: none).
        std_err: f64,
    },
}

/// What [`fit_ecm`] needs besides the samples.
#[derive(Clone, Debug, PartialEq)]
pub struct EcmFitConfig {
    /// The model.
    pub model: SeriesModel,
    /// Parameters held at a value.
    pub fixed: Vec<(Param, f64)>,
    /// The rated capacity (e.g. the board's setting): the prior of a
    /// capacity the recording does not determine.
    pub rated_capacity_ah: Option<f64>,
    /// A guess of the SOC at the first sample (e.g. the board's own): the
    /// prior of an initial SOC the recording does not determine.
    pub initial_soc_hint: Option<f64>,
    /// Solver settings.
    pub lm: LmOptions,
}

impl EcmFitConfig {
    /// A configuration with nothing fixed and no priors.
    pub fn new(model: SeriesModel) -> Self {
        Self { model, fixed: Vec::new(), rated_capacity_ah: None, initial_soc_hint: None, lm: LmOptions::default() }
    }
}

/// The result of [`fit_ecm`].
#[derive(Clone, Debug)]
pub struct EcmFit {
    /// The model fitted.
    pub model: SeriesModel,
    /// Every parameter's value (fitted, fixed or prior).
    pub estimate: CellEstimate,
    /// How each parameter got its value, by [`Param`] index.
    pub status: [ParamStatus; 8],
    /// 1σ of each fitted parameter in its own unit (NaN when not fitted).
    pub std_err: [f64; 8],
    /// Correlations between fitted parameters (each pair once).
    pub correlations: Vec<(Param, Param, f64)>,
    /// Model − measured voltage at each sample (V).
    pub residuals_v: Vec<f64>,
    /// Root mean square of the residuals (V).
    pub rmse_v: f64,
    /// Index and value of the largest |residual| (V).
    pub max_residual: (usize, f64),
    /// Lowest and highest SOC the fitted trajectory reaches.
    pub soc_range: (f64, f64),
    /// Lag-1 autocorrelation of the residuals.
    pub lag1_autocorrelation: f64,
    /// LM iterations of the final fit.
    pub iterations: usize,
    /// The RC pairs started in steady state (the first sample was not at rest).
    pub steady_start: bool,
}

impl EcmFit {
    /// The status of `p`.
    pub fn status_of(&self, p: Param) -> &ParamStatus {
        &self.status[p.index()]
    }

    /// The 1σ of `p` (NaN when not fitted).
    pub fn std_err_of(&self, p: Param) -> f64 {
        self.std_err[p.index()]
    }

    /// Correlations with |r| ≥ `min_abs`, strongest first.
    pub fn strong_correlations(&self, min_abs: f64) -> Vec<(Param, Param, f64)> {
        let mut v: Vec<_> = self.correlations.iter().copied().filter(|c| c.2.abs() >= min_abs).collect();
        v.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
        v
    }

    /// The fitted cell as an external parameter set ([`SeriesModel::to_ecm_params`]).
    pub fn to_ecm_params(&self, name: &str) -> EcmParams {
        self.model.to_ecm_params(&self.estimate, name)
    }
}

/// What the recording offers for identification, for the reasons given
/// when a parameter is not identifiable.
#[derive(Clone, Copy, Debug)]
struct Exposure {
    span_s: f64,
    /// Largest change of current between two samples (A).
    max_step_a: f64,
    /// Longest time the current stays within ±[`settle_band_a`] of its
    /// value after a step of at least that size (s).
    longest_settle_s: f64,
}

impl Exposure {
    fn of(samples: &[FitSample]) -> Self {
        let i_max = samples.iter().map(|s| s.current_a.abs()).fold(0.0, f64::max);
        let band = settle_band_a(i_max);
        let mut max_step_a: f64 = 0.0;
        let mut longest: f64 = 0.0;
        let mut since: Option<(f64, f64)> = None; // (start time, level)
        for w in samples.windows(2) {
            let step = (w[1].current_a - w[0].current_a).abs();
            max_step_a = max_step_a.max(step);
            if step >= band {
                since = Some((w[1].t_s, w[1].current_a));
            } else if let Some((t0, level)) = since {
                if (w[1].current_a - level).abs() <= band {
                    longest = longest.max(w[1].t_s - t0);
                } else {
                    since = None;
                }
            }
        }
        let span_s = samples.last().map_or(0.0, |l| l.t_s) - samples.first().map_or(0.0, |f| f.t_s);
        Exposure { span_s, max_step_a, longest_settle_s: longest }
    }
}

/// A current step counts when it is at least 5 % of the largest current,
/// and at least 1 A.
fn settle_band_a(i_max: f64) -> f64 {
    (0.05 * i_max).max(1.0)
}

/// Identifies the cell parameters of `config.model` from `samples` (see
/// the module doc).
pub fn fit_ecm(samples: &[FitSample], config: &EcmFitConfig) -> Result<EcmFit, FitError> {
    check_samples(samples)?;
    if config.model.cells_in_series == 0 {
        return Err(FitError::BadFixedValue { name: "cells_in_series", value: 0.0, requirement: ">= 1" });
    }
    let mut fixed = [None; 8];
    for &(p, v) in &config.fixed {
        p.check_fixed(v)?;
        fixed[p.index()] = Some(v);
    }
    let prep = Prepared::new(&config.model, samples);
    let chem = config.model.chemistry;
    let mut status: [ParamStatus; 8] = std::array::from_fn(|i| match fixed[i] {
        Some(_) => ParamStatus::Fixed,
        None => ParamStatus::Fitted,
    });
    // A pair whose resistance is fixed at 0 has no time constant to fit.
    for (r, tau) in [(Param::R1Ohm, Param::Tau1S), (Param::R2Ohm, Param::Tau2S)] {
        if fixed[r.index()] == Some(0.0) && fixed[tau.index()].is_none() {
            status[tau.index()] = ParamStatus::Unused;
        }
    }
    let soc_guess = config.initial_soc_hint.unwrap_or_else(|| rest_soc_guess(&prep, samples));
    let mut base = CellEstimate::builtin(chem, soc_guess);
    if let Some(q) = config.rated_capacity_ah {
        base.capacity_ah = q;
    }
    for p in Param::ALL {
        if let Some(v) = fixed[p.index()] {
            base.set(p, v);
        }
    }
    let free_of = |status: &[ParamStatus; 8]| -> Vec<Param> {
        Param::ALL.into_iter().filter(|p| status[p.index()] == ParamStatus::Fitted).collect()
    };

    // 1. Starting points from the grids.
    let starts = grid_starts(&prep, &base, &status);
    // 2. LM from each; the lowest cost wins.
    let free = free_of(&status);
    let mut best: Option<(CellEstimate, LmSolution)> = None;
    for start in starts {
        let (est, sol) = solve(&prep, &start, &free, &config.lm)?;
        if best.as_ref().is_none_or(|(_, b)| sol.cost < b.cost) {
            best = Some((est, sol));
        }
    }
    let Some((mut est, mut sol)) = best else {
        return Err(FitError::TooFewSamples { residuals: samples.len(), parameters: 0, needed: MIN_SAMPLES });
    };
    // 3. Fix what the recording does not determine, one at a time, worst first.
    let exposure = Exposure::of(samples);
    let mut std_err;
    let mut correlations = Vec::new();
    let mut lag1 = 0.0;
    loop {
        let free = free_of(&status);
        let unc = if free.is_empty() { None } else { Some(uncertainty(&sol)) };
        std_err = [f64::NAN; 8];
        correlations.clear();
        if let Some(unc) = &unc {
            lag1 = unc.lag1_autocorrelation;
            for (k, p) in free.iter().enumerate() {
                let se = unc.std_err[k];
                // Log-scaled parameters: the standard error of ln x is the relative one.
                std_err[p.index()] = if p.is_log() { est.get(*p) * se } else { se };
                for (l, q) in free.iter().enumerate().skip(k + 1) {
                    correlations.push((*p, *q, unc.correlation[(k, l)]));
                }
            }
        }
        let worst = unc.as_ref().and_then(|unc| {
            free.iter()
                .enumerate()
                .map(|(k, p)| (*p, unc.std_err[k] / p.identifiable_std_err()))
                .filter(|(_, ratio)| ratio.is_nan() || *ratio > 1.0)
                .max_by(|a, b| a.1.total_cmp(&b.1))
        });
        let flagged = match worst {
            Some((p, _)) => Some((p, reason_for(p, &est, &prep, &exposure, chem))),
            None => match &unc {
                Some(unc) => alternative_explanation(&prep, &est, &status, &sol, unc, &exposure, config)?,
                None => None,
            },
        };
        let Some((p, reason)) = flagged else { break };
        let se = std_err[p.index()];
        let (value, prior) = prior_of(p, &est, config);
        est.set(p, value);
        status[p.index()] = ParamStatus::NotIdentifiable { reason, prior, std_err: se };
        let free = free_of(&status);
        if free.is_empty() {
            let mut r = vec![0.0; prep.len()];
            residuals_into(&prep, &est, &mut r);
            sol = LmSolution {
                cost: half_norm2(&r),
                residuals: r,
                theta: Vec::new(),
                jacobian: DMatrix::zeros(prep.len(), 0),
                iterations: 0,
                termination: Termination::SmallGradient,
            };
            continue;
        }
        let (e, s) = solve(&prep, &est, &free, &config.lm)?;
        est = e;
        sol = s;
    }
    if !sol.termination.converged() {
        let rmse_mv = 1e3 * (2.0 * sol.cost / prep.len() as f64).sqrt();
        return Err(FitError::NotConverged { iterations: sol.iterations, rmse_mv });
    }
    let residuals_v = sol.residuals;
    let rmse_v = (residuals_v.iter().map(|r| r * r).sum::<f64>() / residuals_v.len() as f64).sqrt();
    let max_residual =
        residuals_v.iter().copied().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).unwrap_or((0, 0.0));
    Ok(EcmFit {
        model: config.model,
        soc_range: prep.soc_range(&est),
        estimate: est,
        status,
        std_err,
        correlations,
        residuals_v,
        rmse_v,
        max_residual,
        lag1_autocorrelation: lag1,
        iterations: sol.iterations,
        steady_start: prep.steady_start,
    })
}

fn check_samples(samples: &[FitSample]) -> Result<(), FitError> {
    if samples.len() < MIN_SAMPLES {
        return Err(FitError::TooFewSamples { residuals: samples.len(), parameters: 8, needed: MIN_SAMPLES });
    }
    for (index, s) in samples.iter().enumerate() {
        let bad = |message: String| Err(FitError::BadSample { index, message });
        if !(s.t_s.is_finite() && s.current_a.is_finite() && s.voltage_v.is_finite() && s.temp_c.is_finite()) {
            return bad(format!("not finite: {s:?}"));
        }
        if index > 0 && s.t_s <= samples[index - 1].t_s {
            return bad(format!("time {} s does not follow {} s", s.t_s, samples[index - 1].t_s));
        }
    }
    Ok(())
}

/// SOC from the first sample's voltage if it is at rest, else mid-range.
fn rest_soc_guess(prep: &Prepared, samples: &[FitSample]) -> f64 {
    if prep.steady_start {
        return 0.5;
    }
    let n = prep.model.cells_in_series as f64;
    prep.model.chemistry.table().soc_from_ocv(samples[0].voltage_v / n)
}

/// Model − measured into `out`.
fn residuals_into(prep: &Prepared, est: &CellEstimate, out: &mut [f64]) {
    prep.simulate(est, out);
    for (o, v) in out.iter_mut().zip(&prep.voltage_v) {
        *o -= v;
    }
}

/// The parameter vector of `free` at `est`.
fn theta_of(est: &CellEstimate, free: &[Param]) -> Vec<f64> {
    free.iter().map(|p| if p.is_log() { est.get(*p).max(1e-300).ln() } else { est.get(*p) }).collect()
}

/// `base` with the free parameters from `theta`.
fn estimate_of(base: &CellEstimate, free: &[Param], theta: &[f64]) -> CellEstimate {
    let mut e = *base;
    for (p, &t) in free.iter().zip(theta) {
        e.set(*p, if p.is_log() { t.exp() } else { t });
    }
    e
}

/// LM over `free` from `start`.
fn solve(
    prep: &Prepared,
    start: &CellEstimate,
    free: &[Param],
    opts: &LmOptions,
) -> Result<(CellEstimate, LmSolution), FitError> {
    let theta0 = theta_of(start, free);
    let sol = levenberg_marquardt(
        |theta, out| residuals_into(prep, &estimate_of(start, free, theta), out),
        &theta0,
        prep.len(),
        opts,
    )?;
    Ok((estimate_of(start, free, &sol.theta), sol))
}

/// 99 % quantile of χ² with one degree of freedom: a second optimum whose
/// sum of squares exceeds the best by less than this many residual
/// variances explains the recording as well.
const CHI2_99_1DOF: f64 = 6.635;

/// Looks for a distant second optimum of capacity or initial SOC that
/// explains the recording as well as `est` — which the local standard
/// errors of the Jacobian cannot see (an LFP plateau has several stretches
/// of similar slope). "Distant" is beyond the parameter's identifiability
/// limit; "as well" is within [`CHI2_99_1DOF`] residual variances (widened
/// for correlated residuals, as the standard errors are). Returns the
/// parameter and why.
fn alternative_explanation(
    prep: &Prepared,
    est: &CellEstimate,
    status: &[ParamStatus; 8],
    sol: &LmSolution,
    unc: &Uncertainty,
    exposure: &Exposure,
    config: &EcmFitConfig,
) -> Result<Option<(Param, String)>, FitError> {
    let free: Vec<Param> = Param::ALL.into_iter().filter(|p| status[p.index()] == ParamStatus::Fitted).collect();
    let checked: Vec<Param> = [Param::CapacityAh, Param::InitialSoc].into_iter().filter(|p| free.contains(p)).collect();
    if checked.is_empty() {
        return Ok(None);
    }
    let dof = prep.len().saturating_sub(free.len()).max(1) as f64;
    let rho = unc.lag1_autocorrelation;
    let variance = 2.0 * sol.cost / dof * (1.0 + rho) / (1.0 - rho);
    // Costs are ½·Σr².
    let allowed = 0.5 * CHI2_99_1DOF * variance;
    let rows = grid_rows(prep);
    let grid = grid_costs(prep, est, status, &rows);
    let rmse_mv = |cost: f64| 1e3 * (2.0 * cost / prep.len() as f64).sqrt();
    for p in checked {
        let limit = p.identifiable_std_err();
        let far = |e: &CellEstimate| match p {
            Param::CapacityAh => (e.capacity_ah / est.capacity_ah).ln().abs() > limit,
            _ => (e.initial_soc - est.initial_soc).abs() > limit,
        };
        let Some((_, start)) = grid.iter().find(|(_, e)| far(e)) else { continue };
        let others: Vec<Param> = free.iter().copied().filter(|q| *q != p).collect();
        let (alt, alt_cost) = if others.is_empty() {
            let mut r = vec![0.0; prep.len()];
            residuals_into(prep, start, &mut r);
            (*start, half_norm2(&r))
        } else {
            let (alt, alt_sol) = solve(prep, start, &others, &config.lm)?;
            (alt, alt_sol.cost)
        };
        if alt_cost - sol.cost <= allowed {
            let what = match p {
                Param::CapacityAh => format!(
                    "a capacity of {:.1} Ah (initial SOC {:.1} %) fits as well as {:.1} Ah (RMSE {:.2} vs {:.2} mV)",
                    alt.capacity_ah,
                    100.0 * alt.initial_soc,
                    est.capacity_ah,
                    rmse_mv(alt_cost),
                    rmse_mv(sol.cost)
                ),
                _ => format!(
                    "an initial SOC of {:.1} % (capacity {:.1} Ah) fits as well as {:.1} % (RMSE {:.2} vs {:.2} mV)",
                    100.0 * alt.initial_soc,
                    alt.capacity_ah,
                    100.0 * est.initial_soc,
                    rmse_mv(alt_cost),
                    rmse_mv(sol.cost)
                ),
            };
            let why = reason_for(p, est, prep, exposure, config.model.chemistry);
            return Ok(Some((p, format!("{what}; {why}"))));
        }
    }
    Ok(None)
}

/// The value a parameter the recording does not determine is fixed at, and where it comes from.
fn prior_of(p: Param, est: &CellEstimate, config: &EcmFitConfig) -> (f64, &'static str) {
    let cell = builtin_cell(config.model.chemistry);
    // Resistances of a cell design scale as 1/capacity; RC resistances follow R0.
    let r_ratio = |r: f64| est.r0_ohm * r / cell.r0_ohm;
    match p {
        Param::CapacityAh => match config.rated_capacity_ah {
            Some(q) => (q, "the rated capacity"),
            None => (cell.capacity_ah, "the chemistry's built-in cell"),
        },
        Param::InitialSoc => match config.initial_soc_hint {
            Some(s) => (s.clamp(0.0, 1.0), "the SOC hint (the board's SOC at the first sample)"),
            None => (0.5, "mid-range (no SOC hint)"),
        },
        Param::R0Ohm => {
            (cell.r0_ohm * cell.capacity_ah / est.capacity_ah, "the chemistry's built-in cell, scaled to the capacity")
        }
        Param::R1Ohm => (r_ratio(cell.r1_ohm), "R0 × R1/R0 of the chemistry's built-in cell"),
        Param::R2Ohm => (r_ratio(cell.r2_ohm), "R0 × R2/R0 of the chemistry's built-in cell"),
        Param::Tau1S => (cell.tau1_s, "the chemistry's built-in cell"),
        Param::Tau2S => (cell.tau2_s, "the chemistry's built-in cell"),
        Param::OcvOffsetV => (0.0, "no offset"),
    }
}

/// Why the recording does not determine `p`, in terms of the recording.
fn reason_for(p: Param, est: &CellEstimate, prep: &Prepared, x: &Exposure, chem: Chemistry) -> String {
    let (lo, hi) = prep.soc_range(est);
    let table = chem.table();
    let relief_mv = 1e3 * (table.ocv_v(hi) - table.ocv_v(lo));
    let throughput_ah = prep.charge_ah.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        - prep.charge_ah.iter().copied().fold(f64::INFINITY, f64::min);
    let ends = match chem {
        Chemistry::Lfp => "for LFP below 10 % or above 95 %",
        Chemistry::Nmc => "a wider SOC range",
    };
    match p {
        Param::CapacityAh | Param::InitialSoc | Param::OcvOffsetV => format!(
            "the recording moves {throughput_ah:.1} Ah (SOC {:.0}–{:.0} % at {:.1} Ah), where the OCV changes by \
             {relief_mv:.0} mV per cell: too little to tell capacity, initial SOC and OCV offset apart \
             (record into an end of the OCV curve, {ends})",
            100.0 * lo,
            100.0 * hi,
            est.capacity_ah
        ),
        Param::R0Ohm => format!(
            "the current never changes by more than {:.2} A between two samples: R0 cannot be told from the OCV",
            x.max_step_a
        ),
        Param::R1Ohm | Param::Tau1S | Param::R2Ohm | Param::Tau2S => {
            let tau = if matches!(p, Param::R1Ohm | Param::Tau1S) { est.tau1_s } else { est.tau2_s };
            if x.span_s < 3.0 * tau {
                format!("τ ≈ {tau:.0} s needs a recording of at least 3τ; this one lasts {:.0} s", x.span_s)
            } else {
                format!(
                    "τ ≈ {tau:.0} s needs a current step followed by about τ of steady current or rest; the longest \
                     such stretch here is {:.0} s",
                    x.longest_settle_s
                )
            }
        }
    }
}

/// At most this many rows in the grid searches.
const GRID_ROWS: usize = 600;

/// Every `k`-th row, at most [`GRID_ROWS`].
fn grid_rows(prep: &Prepared) -> Vec<usize> {
    let stride = prep.len().div_ceil(GRID_ROWS).max(1);
    (0..prep.len()).step_by(stride).collect()
}

/// The grid over the free ones of capacity and initial SOC around `base`
/// (its time constants, the linear parameters by least squares on `rows`):
/// (sum of squared residuals, estimate), lowest first. Capacities run
/// log-spaced from the recording's charge span (or 2 % of `base`'s) to 30×
/// the span (or 3× `base`'s); initial SOCs over what keeps the trajectory
/// within 0..1.
fn grid_costs(
    prep: &Prepared,
    base: &CellEstimate,
    status: &[ParamStatus; 8],
    rows: &[usize],
) -> Vec<(f64, CellEstimate)> {
    let free = |p: Param| status[p.index()] == ParamStatus::Fitted;
    let q_lo_ah = prep.charge_ah.iter().copied().fold(f64::INFINITY, f64::min);
    let q_hi_ah = prep.charge_ah.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span_ah = q_hi_ah - q_lo_ah;
    let capacities: Vec<f64> = if free(Param::CapacityAh) {
        let lo = span_ah.max(0.02 * base.capacity_ah).max(1e-3);
        let hi = (30.0 * span_ah).max(3.0 * base.capacity_ah).max(lo * 1.01);
        let k = 48;
        let mut v: Vec<f64> = (0..k).map(|i| lo * (hi / lo).powf(i as f64 / (k - 1) as f64)).collect();
        v.push(base.capacity_ah);
        v
    } else {
        vec![base.capacity_ah]
    };
    let lin = LinearPart::new(prep, base, status, rows);
    let mut y = Vec::with_capacity(rows.len());
    let mut results: Vec<(f64, CellEstimate)> = Vec::new();
    for &q in &capacities {
        let socs: Vec<f64> = if free(Param::InitialSoc) {
            let (lo, hi) = (-q_lo_ah / q, 1.0 - q_hi_ah / q);
            if hi < lo {
                continue;
            }
            let k = 41;
            (0..k).map(|i| lo + (hi - lo) * i as f64 / (k - 1) as f64).collect()
        } else {
            vec![base.initial_soc]
        };
        for soc0 in socs {
            let mut e = *base;
            e.capacity_ah = q;
            e.initial_soc = soc0;
            if let Some((cost, e)) = lin.solve(prep, &e, &mut y) {
                results.push((cost, e));
            }
        }
    }
    results.sort_by(|a, b| a.0.total_cmp(&b.0));
    results
}

/// Starting points for LM: the grid over capacity and initial SOC (linear
/// parameters by least squares), then τ1/τ2 on a grid; up to three distinct.
fn grid_starts(prep: &Prepared, base: &CellEstimate, status: &[ParamStatus; 8]) -> Vec<CellEstimate> {
    let free = |p: Param| status[p.index()] == ParamStatus::Fitted;
    let rows = grid_rows(prep);
    let mut results = grid_costs(prep, base, status, &rows);
    if results.is_empty() {
        results.push((0.0, *base));
    }
    let mut y = Vec::with_capacity(rows.len());
    let mut starts: Vec<CellEstimate> = Vec::new();
    for (_, e) in results {
        let distinct = starts
            .iter()
            .all(|s| (s.capacity_ah / e.capacity_ah).ln().abs() > 0.1 || (s.initial_soc - e.initial_soc).abs() > 0.05);
        if distinct {
            starts.push(e);
        }
        if starts.len() == 3 {
            break;
        }
    }
    // τ grid at each start.
    let tau1s: Vec<f64> = if free(Param::Tau1S) { vec![3.0, 10.0, 30.0, 100.0] } else { vec![base.tau1_s] };
    let tau2s: Vec<f64> = if free(Param::Tau2S) { vec![200.0, 600.0, 2000.0] } else { vec![base.tau2_s] };
    starts
        .into_iter()
        .map(|start| {
            let mut best = (f64::INFINITY, start);
            for &t1 in &tau1s {
                for &t2 in &tau2s {
                    let mut e = start;
                    e.tau1_s = t1;
                    e.tau2_s = t2;
                    let lin = LinearPart::new(prep, &e, status, &rows);
                    if let Some((cost, e)) = lin.solve(prep, &e, &mut y) {
                        if cost < best.0 {
                            best = (cost, e);
                        }
                    }
                }
            }
            best.1
        })
        .collect()
}

/// The parameters the voltage is linear in (offset, R0, R1, R2), solved by
/// least squares for given capacity, initial SOC and time constants, on a
/// subset of the rows. Plain vectors: the grid calls [`LinearPart::solve`]
/// thousands of times.
struct LinearPart {
    rows: Vec<usize>,
    params: Vec<Param>,
    /// Pseudo-inverse of the design matrix, one row of `rows.len()` per parameter.
    pinv: Vec<Vec<f64>>,
    /// The design matrix, one column of `rows.len()` per parameter.
    design: Vec<Vec<f64>>,
    /// Voltage of the fixed linear terms, per row.
    fixed_v: Vec<f64>,
}

impl LinearPart {
    fn new(prep: &Prepared, est: &CellEstimate, status: &[ParamStatus; 8], rows: &[usize]) -> Self {
        let n = prep.model.cells_in_series as f64;
        let x1 = prep.rc_states(est.tau1_s);
        let x2 = prep.rc_states(est.tau2_s);
        let column = |p: Param, k: usize| -> f64 {
            n * match p {
                Param::OcvOffsetV => 1.0,
                Param::R0Ohm => prep.scaled_current_a[k],
                Param::R1Ohm => x1[k],
                Param::R2Ohm => x2[k],
                _ => 0.0,
            }
        };
        let linear = [Param::OcvOffsetV, Param::R0Ohm, Param::R1Ohm, Param::R2Ohm];
        let params: Vec<Param> = linear.into_iter().filter(|p| status[p.index()] == ParamStatus::Fitted).collect();
        let fixed_v: Vec<f64> = rows
            .iter()
            .map(|&k| {
                linear
                    .iter()
                    .filter(|p| status[p.index()] != ParamStatus::Fitted)
                    .map(|p| est.get(*p) * column(*p, k))
                    .sum()
            })
            .collect();
        let design: Vec<Vec<f64>> = params.iter().map(|p| rows.iter().map(|&k| column(*p, k)).collect()).collect();
        // (AᵀA)⁺·Aᵀ: k ≤ 4 columns, so the k × k pseudo-inverse is cheap (a
        // starting point does not need the accuracy of a QR).
        let k = params.len();
        let ata = DMatrix::from_fn(k, k, |a, b| design[a].iter().zip(&design[b]).map(|(x, y)| x * y).sum::<f64>());
        let eps = 1e-12 * (0..k).map(|j| ata[(j, j)]).fold(0.0, f64::max);
        let pinv = match ata.pseudo_inverse(eps) {
            Ok(inv) => (0..k)
                .map(|a| (0..rows.len()).map(|i| (0..k).map(|b| inv[(a, b)] * design[b][i]).sum()).collect())
                .collect(),
            Err(_) => vec![vec![0.0; rows.len()]; k],
        };
        LinearPart { rows: rows.to_vec(), params, pinv, design, fixed_v }
    }

    /// Solves the linear parameters at `est`'s capacity and initial SOC:
    /// (sum of squared residuals, estimate). Resistances are kept positive.
    fn solve(&self, prep: &Prepared, est: &CellEstimate, y: &mut Vec<f64>) -> Option<(f64, CellEstimate)> {
        let n = prep.model.cells_in_series as f64;
        let ocv = prep.model.chemistry.table();
        let inv_q = 1.0 / est.capacity_ah;
        y.clear();
        for (&k, fv) in self.rows.iter().zip(&self.fixed_v) {
            let soc = est.initial_soc + prep.charge_ah[k] * inv_q;
            y.push(prep.voltage_v[k] - n * ocv.ocv_v(soc) - fv);
        }
        let mut e = *est;
        let floor = 1e-3 * est.r0_ohm.max(1e-6);
        let mut beta = [0.0; 4];
        for (j, p) in self.params.iter().enumerate() {
            let v: f64 = self.pinv[j].iter().zip(y.iter()).map(|(a, b)| a * b).sum();
            let v = if *p == Param::OcvOffsetV { v } else { v.max(floor) };
            e.set(*p, v);
            beta[j] = v;
        }
        for (j, col) in self.design.iter().enumerate() {
            for (yi, a) in y.iter_mut().zip(col) {
                *yi -= a * beta[j];
            }
        }
        let cost: f64 = y.iter().map(|r| r * r).sum();
        cost.is_finite().then_some((cost, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::pack::{Pack, PackParams};
    use models::rng::SeedStreams;
    use models::variant::Variant;

    #[test]
    fn param_names_round_trip() {
        for p in Param::ALL {
            assert_eq!(Param::from_name(p.name()), Some(p));
            assert_eq!(Param::ALL[p.index()], p);
        }
        assert_eq!(Param::from_name("r3_ohm"), None);
    }

    const LFP4: SeriesModel =
        SeriesModel { chemistry: Chemistry::Lfp, cells_in_series: 4, r_activation_j_per_mol: 20_000.0 };

    fn known_cell() -> CellEstimate {
        CellEstimate {
            capacity_ah: 90.0,
            initial_soc: 0.97,
            r0_ohm: 0.6e-3,
            r1_ohm: 0.4e-3,
            tau1_s: 40.0,
            r2_ohm: 0.25e-3,
            tau2_s: 500.0,
            ocv_offset_v: 0.004,
        }
    }

    /// A dynamic discharge from `est.initial_soc` at irregular intervals:
    /// pulses, rests and regeneration, temperature drifting 25 → 35 °C.
    fn pulse_profile(duration_s: f64, mean_discharge_a: f64) -> Vec<FitSample> {
        let mut out = Vec::new();
        let mut t = 0.0;
        let mut k = 0u32;
        while t < duration_s {
            let phase = (t / 60.0) as u32 % 8;
            let i = match phase {
                0 => 0.0,
                1 | 2 => -2.0 * mean_discharge_a,
                3 => -0.5 * mean_discharge_a,
                4 => 0.6 * mean_discharge_a,
                5 | 6 => -1.5 * mean_discharge_a,
                _ => 0.0,
            };
            out.push(FitSample { t_s: t, current_a: i, voltage_v: 0.0, temp_c: 25.0 + 10.0 * t / duration_s });
            // Irregular sampling: 3, 5, 7 s.
            t += [3.0, 5.0, 7.0][(k % 3) as usize];
            k += 1;
        }
        out
    }

    #[test]
    fn simulate_matches_the_pack() {
        // The model and a Pack built from to_ecm_params, stepped over the same
        // held currents with the temperature set per interval, agree exactly.
        let est = known_cell();
        let samples = pulse_profile(3000.0, 30.0);
        let v = LFP4.simulate(&est, &samples);
        let ecm = LFP4.to_ecm_params(&est, "known");
        ecm.validate().unwrap();
        let params = PackParams::uniform(CellParams::default());
        let mut rng = SeedStreams::new(0).stream("pack");
        let mut pack = Pack::from_ecm(&ecm, &params, Variant::V12, est.initial_soc, &mut rng).unwrap();
        assert_eq!(pack.cells().len(), 4);
        for (k, s) in samples.iter().enumerate() {
            pack.set_temperature_c(s.temp_c);
            let got = pack.terminal_voltage_v(s.current_a);
            assert!((got - v[k]).abs() < 1e-9, "sample {k}: pack {got} vs model {}", v[k]);
            if let Some(next) = samples.get(k + 1) {
                pack.step(next.t_s - s.t_s, s.current_a);
            }
        }
    }

    #[test]
    fn rc_states_decay_exactly() {
        // After a step of I to rest, x decays as exp(−t/τ) from (1 − exp(−T/τ))·I.
        let model = SeriesModel { chemistry: Chemistry::Nmc, cells_in_series: 1, r_activation_j_per_mol: 0.0 };
        let samples: Vec<FitSample> = (0..30)
            .map(|k| FitSample {
                t_s: f64::from(k) * 10.0,
                current_a: if (1..=6).contains(&k) { -50.0 } else { 0.0 },
                voltage_v: 0.0,
                temp_c: 25.0,
            })
            .collect();
        let prep = Prepared::new(&model, &samples);
        let x = prep.rc_states(30.0);
        let end = -50.0 * (1.0 - (-60.0f64 / 30.0).exp());
        assert!((x[7] - end).abs() < 1e-12);
        assert!((x[17] - end * (-100.0f64 / 30.0).exp()).abs() < 1e-12);
    }

    fn with_voltage(model: &SeriesModel, est: &CellEstimate, mut samples: Vec<FitSample>) -> Vec<FitSample> {
        let v = model.simulate(est, &samples);
        for (s, v) in samples.iter_mut().zip(v) {
            s.voltage_v = v;
        }
        samples
    }

    #[test]
    fn recovers_known_parameters_from_exact_data() {
        let est = known_cell();
        // 0.97 → ≈ 0.05 over the two knees of LFP at a mean ≈ 30 A.
        let samples = with_voltage(&LFP4, &est, pulse_profile(11_300.0, 30.0));
        let config = EcmFitConfig::new(LFP4);
        let fit = fit_ecm(&samples, &config).unwrap();
        for p in Param::ALL {
            assert_eq!(*fit.status_of(p), ParamStatus::Fitted, "{}", p.name());
            let (got, want) = (fit.estimate.get(p), est.get(p));
            assert!((got - want).abs() <= 1e-4 * want.abs().max(1e-3), "{}: {got} vs {want}", p.name());
        }
        assert!(fit.rmse_v < 1e-6, "{}", fit.rmse_v);
        assert!(fit.soc_range.0 < 0.1 && fit.soc_range.1 > 0.96, "{:?}", fit.soc_range);
        // The written set parses back to itself.
        let ecm = fit.to_ecm_params("round trip");
        let text = toml::to_string(&ecm).unwrap();
        assert_eq!(EcmParams::from_toml_str(&text).unwrap(), ecm);
    }

    #[test]
    fn a_plateau_recording_does_not_claim_a_capacity() {
        // 60 % → 40 % on the LFP plateau: capacity and initial SOC are not
        // identifiable; they are held at the rating and the hint, with a reason.
        let est = CellEstimate { initial_soc: 0.6, ..known_cell() };
        let samples = with_voltage(&LFP4, &est, pulse_profile(2400.0, 15.0));
        let config =
            EcmFitConfig { rated_capacity_ah: Some(100.0), initial_soc_hint: Some(0.58), ..EcmFitConfig::new(LFP4) };
        let fit = fit_ecm(&samples, &config).unwrap();
        let ParamStatus::NotIdentifiable { reason, prior, .. } = fit.status_of(Param::CapacityAh) else {
            panic!("capacity: {:?}", fit.status_of(Param::CapacityAh));
        };
        assert_eq!(*prior, "the rated capacity");
        assert!(reason.contains("OCV changes by"), "{reason}");
        assert_eq!(fit.estimate.capacity_ah, 100.0);
        // R0 is still found: the pulses show it.
        assert_eq!(*fit.status_of(Param::R0Ohm), ParamStatus::Fitted);
        assert!((fit.estimate.r0_ohm / est.r0_ohm - 1.0).abs() < 0.05, "{}", fit.estimate.r0_ohm);
    }

    #[test]
    fn a_constant_current_does_not_show_r0() {
        let model = SeriesModel { chemistry: Chemistry::Nmc, cells_in_series: 3, r_activation_j_per_mol: 0.0 };
        let est = CellEstimate { capacity_ah: 50.0, initial_soc: 0.9, ..CellEstimate::builtin(Chemistry::Nmc, 0.9) };
        let samples: Vec<FitSample> = (0..400)
            .map(|k| FitSample { t_s: f64::from(k) * 10.0, current_a: -25.0, voltage_v: 0.0, temp_c: 25.0 })
            .collect();
        let samples = with_voltage(&model, &est, samples);
        let fit = fit_ecm(&samples, &EcmFitConfig::new(model)).unwrap();
        let not = |p: Param| matches!(fit.status_of(p), ParamStatus::NotIdentifiable { .. });
        assert!(not(Param::R0Ohm) || not(Param::OcvOffsetV), "{:?}", fit.status);
        let ParamStatus::NotIdentifiable { reason, .. } = fit.status_of(Param::R1Ohm) else {
            panic!("R1: {:?}", fit.status_of(Param::R1Ohm));
        };
        assert!(reason.contains("current step"), "{reason}");
    }

    #[test]
    fn fixed_values_are_kept_and_checked() {
        let model = SeriesModel { chemistry: Chemistry::Nmc, cells_in_series: 3, r_activation_j_per_mol: 0.0 };
        let est = CellEstimate { r2_ohm: 0.0, ..CellEstimate::builtin(Chemistry::Nmc, 0.95) };
        let samples = with_voltage(&model, &est, pulse_profile(6000.0, 12.0));
        let config = EcmFitConfig { fixed: vec![(Param::R2Ohm, 0.0)], ..EcmFitConfig::new(model) };
        let fit = fit_ecm(&samples, &config).unwrap();
        assert_eq!(fit.estimate.r2_ohm, 0.0);
        assert_eq!(*fit.status_of(Param::Tau2S), ParamStatus::Unused);
        assert!((fit.estimate.capacity_ah / 50.0 - 1.0).abs() < 1e-4, "{}", fit.estimate.capacity_ah);
        let ecm = fit.to_ecm_params("one pair");
        assert!(ecm.r1_ohm.is_some() && ecm.r2_ohm.is_none());
        let bad = EcmFitConfig { fixed: vec![(Param::InitialSoc, 1.5)], ..EcmFitConfig::new(model) };
        let e = fit_ecm(&samples, &bad).unwrap_err();
        assert!(e.to_string().contains("initial_soc = 1.5"), "{e}");
        let e = fit_ecm(&samples[..5], &config).unwrap_err();
        assert!(matches!(e, FitError::TooFewSamples { residuals: 5, .. }), "{e}");
    }
}
