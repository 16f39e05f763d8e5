//! Least-squares identification of a pack's equivalent circuit from a
//! recording of its current and terminal voltage, with the solver of
//! [`super::lm`].
//!
//! # The model fitted
//!
//! [`SeriesModel`]: `n` identical cells in series with the equations of
//! [`models::pack`] (no hysteresis, resistances flat over SOC), sampled at the
//! recording's instants `t_k`, the pack's current `I_k` held over
//! `[t_k, t_k+1)`. That is the recorded (measured) current less the board's
//! own consumption, which the board draws from the pack upstream of its shunt
//! (datasheet, "Control system": 0.1 W typ.): `I_k = I_meas,k − P_own/V_k`
//! ([`SeriesModel::own_consumption_w`]). Left out, it made every capacity
//! fitted from a discharge low by `P_own/(V·|Ī|)` — 0.025 % at 0.1 W, 13 V
//! and a mean 30 A (issue 17, item 4):
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
//! pairs start relaxed when the first sample is at rest. Else their
//! voltages then are unknown: the model starts them in steady state at the
//! first current, and what they were instead, decaying as `exp(−t/τ_j)`,
//! is solved for by linear least squares inside the residuals (variable
//! projection: two nuisance amplitudes, like the initial SOC not written to
//! the file).
//!
//! [`SeriesModel::to_ecm_params`] writes the result as an [`EcmParams`] set
//! whose [`models::pack::Pack`] reproduces [`SeriesModel::simulate`] exactly
//! (test `simulate_matches_the_pack`).
//!
//! # Identification ([`fit_ecm`])
//!
//! 0. A recording whose current never moves by a step cannot tell R0, R1,
//!    R2 and the OCV offset apart (they add up to one voltage level), nor,
//!    if it starts at rest, show a time constant: those are not
//!    identifiable before any fit (the offset carries the level).
//! 1. A grid over capacity and initial SOC (the nonlinear parameters that
//!    make LFP hard), each point solving the parameters the voltage is linear
//!    in (ΔOCV, R0, R1, R2, the unknown starting RC voltages) by linear
//!    least squares; then a grid over τ1, τ2.
//! 2. Levenberg–Marquardt over every free parameter (log-scaled where
//!    positive) from the three best distinct grid points; the lowest cost
//!    wins.
//! 3. A parameter whose standard error exceeds its limit
//!    ([`Param::identifiable_std_err`]) is not identifiable from the
//!    recording: it is fixed at a prior (the rated capacity, the SOC hint,
//!    the chemistry's built-in cell) and the rest refitted, worst first —
//!    of those the recording says next to nothing about (1σ ≥ 100× the
//!    limit), time constants first and the offset last. So is a capacity or
//!    initial SOC for which a distant value explains the recording as well
//!    (a distant value that explains it clearly better is taken instead).
//!    The priors that derive from other parameters (R0 from the capacity,
//!    R1 and R2 from R0) follow them; the reasons are written from the final
//!    estimate.
//!
//! Degenerate input never panics: no free parameter, no free linear one,
//! singular or non-finite matrices (see [`super::lm::checked_svd`]) give a
//! result or a [`FitError`].

use models::cell::{CellParams, SECONDS_PER_HOUR};
use models::decay::decay_factor;
use models::ecm::{self, EcmParams};
use models::loads::SelfConsumption;
use models::ocv::Chemistry;
use models::table::{self, TableValues};
use models::variant::{CURRENT_OFFSET_ERROR_PCT_FS, CURRENT_RANGE_A, CURRENT_TOTAL_ERROR_PCT_FS};
use nalgebra::DMatrix;

use super::lm::{
    LmError, LmOptions, LmSolution, Termination, Uncertainty, half_norm2, levenberg_marquardt, pseudo_inverse,
    uncertainty,
};

/// A current below this is rest (A): ten times the datasheet's offset
/// error bound ("Current measurement accuracy": offset < 0.01 % FS of ±250 A).
pub const REST_CURRENT_A: f64 = 10.0 * CURRENT_OFFSET_ERROR_PCT_FS / 100.0 * CURRENT_RANGE_A;

/// 1σ of the board's current offset that the fit cannot see (A): the
/// datasheet's offset bound ("Current measurement accuracy": < 0.01 % FS of
/// ±250 A = 25 mA) taken as a limit at 3σ, as the project's part tolerances
/// are ([`models::chain`]). The typical 0.1 W of the board's own consumption
/// ([`SeriesModel::own_consumption_w`]) is 7.7 mA at 13 V: an error in it acts
/// as such an offset, and is within this.
pub const CURRENT_OFFSET_SIGMA_A: f64 = CURRENT_OFFSET_ERROR_PCT_FS / 100.0 * CURRENT_RANGE_A / 3.0;

/// 1σ of the board's current gain error (relative): what the datasheet's
/// total error bound leaves beside the offset at full scale ((0.04 − 0.01) %
/// FS at 250 A = 0.03 % of the reading), a limit at 3σ.
pub const CURRENT_GAIN_SIGMA_REL: f64 = (CURRENT_TOTAL_ERROR_PCT_FS - CURRENT_OFFSET_ERROR_PCT_FS) / 100.0 / 3.0;

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
    #[error("{name} = {} cannot be used: {requirement}", plain_or_sci(*value))]
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

/// `x` as Rust prints it, or in scientific notation outside 10⁻⁴..10⁶ (a
/// message never spells out hundreds of digits).
fn plain_or_sci(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 || (1e-4..1e6).contains(&a) || !a.is_finite() { format!("{x}") } else { format!("{x:e}") }
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

    /// A time constant.
    fn is_tau(self) -> bool {
        matches!(self, Param::Tau1S | Param::Tau2S)
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
    /// The board's own consumption (W, ≥ 0), drawn from the pack before its
    /// shunt: in the pack's current, not in the measured one (see the module
    /// doc). 0: the recorded current is the pack's.
    pub own_consumption_w: f64,
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

    /// The pack's current at a sample (A, + = charge): the measured
    /// `current_a` less the board's own draw at `voltage_v`.
    pub fn pack_current_a(&self, current_a: f64, voltage_v: f64) -> f64 {
        current_a + SelfConsumption { power_w: self.own_consumption_w }.current_a(voltage_v)
    }

    /// The pack voltage the model gives at each sample for `est` (the
    /// samples' own voltages are used only for the board's own draw).
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
    /// g(T_k)·I_k, `I_k` the pack's current.
    scaled_current_a: Vec<f64>,
    /// t_{k+1} − t_k (0 after the last sample).
    dt_s: Vec<f64>,
    /// Σ_{i<k} I_i·Δt_i / 3600 (Ah), `I_i` the pack's current.
    charge_ah: Vec<f64>,
    /// The first sample is not at rest: the model's RC pairs start in
    /// steady state at its current, and their true voltages then are unknown.
    steady_start: bool,
    /// Pairs whose voltage at the first sample is unknown (a start not at
    /// rest, the pair in the model): what it leaves, decaying as
    /// `exp(−t/τ_j)`, is solved for with the linear parameters and taken out
    /// of the residuals ([`Prepared::project_start`]).
    unknown_start: [bool; 2],
}

impl<'a> Prepared<'a> {
    fn new(model: &'a SeriesModel, samples: &[FitSample]) -> Self {
        let n = samples.len();
        let steady_start = samples.first().is_some_and(|s| s.current_a.abs() >= REST_CURRENT_A);
        let pack_a: Vec<f64> = samples.iter().map(|s| model.pack_current_a(s.current_a, s.voltage_v)).collect();
        let mut charge_ah = Vec::with_capacity(n);
        let mut q = 0.0;
        let mut dt_s = Vec::with_capacity(n);
        for (k, s) in samples.iter().enumerate() {
            charge_ah.push(q);
            let dt = samples.get(k + 1).map_or(0.0, |next| next.t_s - s.t_s);
            dt_s.push(dt);
            q += pack_a[k] * dt / SECONDS_PER_HOUR;
        }
        Prepared {
            model,
            voltage_v: samples.iter().map(|s| s.voltage_v).collect(),
            scaled_current_a: samples.iter().zip(&pack_a).map(|(s, i)| model.resistance_factor(s.temp_c) * i).collect(),
            dt_s,
            charge_ah,
            steady_start,
            unknown_start: [steady_start; 2],
        }
    }

    /// `x_k / x_0` of a relaxing RC pair of time constant `tau_s` at every
    /// sample: `Π_{i<k} exp(−Δt_i/τ)`.
    fn decays(&self, tau_s: f64) -> impl Iterator<Item = f64> + '_ {
        let mut cache = (f64::NAN.to_bits(), 0.0);
        self.dt_s.iter().scan(1.0, move |d, &dt| {
            let now = *d;
            if dt.to_bits() != cache.0 {
                cache = (dt.to_bits(), decay_factor(dt, tau_s));
            }
            *d *= cache.1;
            Some(now)
        })
    }

    /// The time constants of the pairs whose start is unknown.
    fn unknown_taus(&self, est: &CellEstimate) -> Vec<f64> {
        [(0, est.tau1_s), (1, est.tau2_s)].into_iter().filter(|(j, _)| self.unknown_start[*j]).map(|(_, t)| t).collect()
    }

    /// Takes out of the residuals `r` the least-squares fit of the unknown
    /// starting voltages ([`Prepared::unknown_start`]): variable projection,
    /// so the fit of the other parameters is the fit with those voltages at
    /// their best. Collinear decays (equal time constants) share one amplitude.
    fn project_start(&self, est: &CellEstimate, r: &mut [f64]) {
        let taus = self.unknown_taus(est);
        match taus[..] {
            [tau] => {
                let (dd, dr) = self.decays(tau).zip(r.iter()).fold((0.0, 0.0), |(a, b), (d, r)| (a + d * d, b + d * r));
                if dd > 0.0 {
                    let u = dr / dd;
                    r.iter_mut().zip(self.decays(tau)).for_each(|(r, d)| *r -= u * d);
                }
            }
            [t1, t2] => {
                let (mut a, mut b, mut c, mut p, mut q) = (0.0, 0.0, 0.0, 0.0, 0.0);
                for ((d1, d2), r) in self.decays(t1).zip(self.decays(t2)).zip(r.iter()) {
                    (a, b, c, p, q) = (a + d1 * d1, b + d1 * d2, c + d2 * d2, p + d1 * r, q + d2 * r);
                }
                let det = a * c - b * b;
                let (u1, u2) = if det > 1e-10 * a * c {
                    ((c * p - b * q) / det, (a * q - b * p) / det)
                } else if a > 0.0 {
                    (p / a, 0.0)
                } else {
                    (0.0, 0.0)
                };
                if u1.is_finite() && u2.is_finite() {
                    for ((r, d1), d2) in r.iter_mut().zip(self.decays(t1)).zip(self.decays(t2)) {
                        *r -= u1 * d1 + u2 * d2;
                    }
                }
            }
            _ => {}
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
        /// The standard error the fit gave before it was fixed, in the units
        /// of [`Param::identifiable_std_err`]: relative for capacity,
        /// resistances and time constants, absolute for the initial SOC
        /// (fraction) and the OCV offset (V); ∞: none.
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
    /// Resolution of the recorded voltage (V; 0: exact): the variance of
    /// its quantisation, q²/12 per sample, is the least by which two
    /// explanations must differ for the recording to tell them apart
    /// ([`fit_ecm`], step 3).
    pub voltage_resolution_v: f64,
    /// Solver settings.
    pub lm: LmOptions,
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
    /// The first sample was not at rest: the model started the RC pairs in
    /// steady state at its current, and fitted the voltages they had then.
    pub loaded_start: bool,
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
    /// A change of current this large is a step ([`settle_band_a`]).
    step_band_a: f64,
    /// Highest less lowest current (A).
    current_span_a: f64,
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
        let (i_lo, i_hi) = samples
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), s| (lo.min(s.current_a), hi.max(s.current_a)));
        Exposure {
            span_s,
            max_step_a,
            step_band_a: band,
            current_span_a: (i_hi - i_lo).max(0.0),
            longest_settle_s: longest,
        }
    }

    /// The current never moves by a step's worth ([`settle_band_a`]) over
    /// the whole recording: R0, R1, R2 and the OCV offset add up to one
    /// voltage level (the RC pairs' part of it settled) that only one of them
    /// can carry; and a recording that starts at rest stays at rest, so the
    /// time constants have no effect at all (a start not at rest may show
    /// them as its RC voltages settle). Returns the parameters free in
    /// `status` that such a recording cannot determine: all but the first
    /// free of (OCV offset, R0, R1, R2), and the time constants after a
    /// start at rest.
    fn structurally_unidentifiable(&self, status: &[ParamStatus; 8], loaded_start: bool) -> Vec<Param> {
        if self.current_span_a >= self.step_band_a {
            return Vec::new();
        }
        let free = |p: &Param| status[p.index()] == ParamStatus::Fitted;
        let level = [Param::OcvOffsetV, Param::R0Ohm, Param::R1Ohm, Param::R2Ohm];
        let carrier = level.iter().copied().find(free);
        FIX_ORDER
            .into_iter()
            .filter(|p| free(p) && ((p.is_tau() && !loaded_start) || (level.contains(p) && Some(*p) != carrier)))
            .collect()
    }
}

/// A current step counts when it is at least 5 % of the largest current,
/// and at least 1 A.
fn settle_band_a(i_max: f64) -> f64 {
    (0.05 * i_max).max(1.0)
}

/// A standard error this many times its limit ([`Param::identifiable_std_err`]):
/// the recording says next to nothing about the parameter (∞: nothing).
const UNINFORMED_RATIO: f64 = 100.0;

/// Of several parameters the recording says next to nothing about
/// ([`UNINFORMED_RATIO`]), the one earliest here is fixed first: a time
/// constant before its resistance, the resistances before capacity and
/// initial SOC, the OCV offset last — so that what such a recording does
/// show (a voltage level under a constant current, say) stays with the one
/// parameter that can carry it instead of being shared out at random
/// among parameters it cannot tell apart.
const FIX_ORDER: [Param; 8] = [
    Param::Tau2S,
    Param::Tau1S,
    Param::R2Ohm,
    Param::R1Ohm,
    Param::R0Ohm,
    Param::CapacityAh,
    Param::InitialSoc,
    Param::OcvOffsetV,
];

/// At most this many refits in a row to bring the priors of the held
/// parameters up to date with the estimate they derive from (R1 and R2
/// follow R0, R0 the capacity).
const PRIOR_PASSES: usize = 4;

/// At most this many moves to a distant optimum that fits clearly better
/// ([`Alternative::Better`]).
const BETTER_MOVES: usize = 3;

/// The parameter to fix next, if any exceeds its limit: of those the
/// recording says next to nothing about, the first in [`FIX_ORDER`]; else the
/// worst (largest standard error for its limit).
fn worst_determined(free: &[Param], unc: &Uncertainty) -> Option<Param> {
    let ratio = |k: usize, p: Param| {
        let r = unc.std_err[k] / p.identifiable_std_err();
        if r.is_nan() { f64::INFINITY } else { r }
    };
    let order = |p: &Param| FIX_ORDER.iter().position(|q| q == p).unwrap_or(FIX_ORDER.len());
    let uninformed =
        free.iter().enumerate().filter(|&(k, p)| ratio(k, *p) >= UNINFORMED_RATIO).map(|(_, p)| *p).min_by_key(order);
    uninformed.or_else(|| {
        free.iter()
            .enumerate()
            .map(|(k, p)| (*p, ratio(k, *p)))
            .filter(|(_, r)| *r > 1.0)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p)
    })
}

/// Identifies the cell parameters of `config.model` from `samples` (see
/// the module doc). Never panics: degenerate input (a recording that
/// determines nothing, every parameter fixed) gives a result or an error.
pub fn fit_ecm(samples: &[FitSample], config: &EcmFitConfig) -> Result<EcmFit, FitError> {
    check_samples(samples)?;
    check_config(config)?;
    let mut fixed = [None; 8];
    for &(p, v) in &config.fixed {
        p.check_fixed(v)?;
        fixed[p.index()] = Some(v);
    }
    let mut prep = Prepared::new(&config.model, samples);
    // A pair dropped by its resistance fixed at 0 has no voltage to start from.
    for (j, r) in [Param::R1Ohm, Param::R2Ohm].into_iter().enumerate() {
        if fixed[r.index()] == Some(0.0) {
            prep.unknown_start[j] = false;
        }
    }
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
    // 0. What a recording at one current cannot show, whatever the values.
    let exposure = Exposure::of(samples);
    let mut flagged: Vec<(Param, Option<String>)> = Vec::new();
    for p in exposure.structurally_unidentifiable(&status, prep.steady_start) {
        let (value, prior) = prior_of(p, &base, &status, config);
        base.set(p, value);
        status[p.index()] = ParamStatus::NotIdentifiable { reason: String::new(), prior, std_err: f64::INFINITY };
        flagged.push((p, None));
    }

    // 1. Starting points from the grids.
    let starts = grid_starts(&prep, &base, &status);
    // 2. LM from each; the lowest cost wins.
    let free = free_of(&status);
    let mut best: Option<(CellEstimate, LmSolution)> = None;
    for start in starts {
        let (est, sol) = refit(&prep, &start, &free, &config.lm)?;
        if best.as_ref().is_none_or(|(_, b)| sol.cost < b.cost) {
            best = Some((est, sol));
        }
    }
    let (mut est, mut sol) = match best {
        Some(b) => b,
        None => refit(&prep, &base, &free, &config.lm)?,
    };
    // 3. Fix what the recording does not determine, one at a time, worst
    // first; the reasons are written at the end, from the final estimate.
    let mut std_err;
    let mut correlations = Vec::new();
    let mut lag1 = 0.0;
    let (mut prior_passes, mut better_moves) = (0, 0);
    loop {
        // The priors of what is held follow the estimate they derive from.
        if prior_passes < PRIOR_PASSES {
            let mut moved = false;
            for (p, _) in &flagged {
                let (value, source) = prior_of(*p, &est, &status, config);
                let held = est.get(*p);
                if (value - held).abs() > 1e-9 * value.abs().max(held.abs()) {
                    est.set(*p, value);
                    moved = true;
                }
                if let ParamStatus::NotIdentifiable { prior, .. } = &mut status[p.index()] {
                    *prior = source;
                }
            }
            if moved {
                prior_passes += 1;
                (est, sol) = refit(&prep, &est, &free_of(&status), &config.lm)?;
                continue;
            }
        }
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
        let Some(unc) = unc else { break };
        let next = match worst_determined(&free, &unc) {
            Some(p) => Some((p, None)),
            None => match alternative_explanation(&prep, &est, &status, &sol, &unc, config)? {
                Alternative::Ambiguous(p, what) => Some((p, Some(what))),
                Alternative::Better(e, s) if better_moves < BETTER_MOVES => {
                    better_moves += 1;
                    prior_passes = 0;
                    (est, sol) = (e, s);
                    continue;
                }
                Alternative::Better(..) | Alternative::None => None,
            },
        };
        let Some((p, what)) = next else { break };
        let k = free.iter().position(|q| *q == p).unwrap_or(0);
        let (value, prior) = prior_of(p, &est, &status, config);
        est.set(p, value);
        status[p.index()] = ParamStatus::NotIdentifiable { reason: String::new(), prior, std_err: unc.std_err[k] };
        flagged.push((p, what));
        prior_passes = 0;
        (est, sol) = refit(&prep, &est, &free_of(&status), &config.lm)?;
    }
    for (p, what) in flagged {
        let why = reason_for(p, &est, &prep, &exposure, chem);
        if let ParamStatus::NotIdentifiable { reason, .. } = &mut status[p.index()] {
            *reason = match what {
                Some(what) => format!("{what}; {why}"),
                None => why,
            };
        }
    }
    // The board's current errors, which no residual shows (an offset or a
    // gain error of the current is, to the voltage, another capacity).
    let final_free = free_of(&status);
    if !final_free.is_empty() {
        let systematic = current_error_variances(samples, &prep, &est, &final_free, &sol);
        for (p, var) in final_free.into_iter().zip(systematic) {
            let k = p.index();
            let sys = if p.is_log() { est.get(p) * var.sqrt() } else { var.sqrt() };
            if std_err[k].is_finite() && sys.is_finite() {
                std_err[k] = std_err[k].hypot(sys);
            }
        }
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
        loaded_start: prep.steady_start,
    })
}

/// The variance, in the solver's parameters (`ln x` for a log-scaled
/// one), that the board's current errors leave in each of `free` at `est`:
/// a current offset of [`CURRENT_OFFSET_SIGMA_A`] and a gain error of
/// [`CURRENT_GAIN_SIGMA_REL`], each propagated through the fit — the
/// parameters' least-squares response `δθ = −J⁺·∂r/∂e` to the residuals'
/// change with the error `e` (numerically, one evaluation each), times its
/// variance. An offset `e` moves a capacity from a net discharge `Ī` by about
/// `e/Ī`; a gain error moves it by itself.
fn current_error_variances(
    samples: &[FitSample],
    prep: &Prepared,
    est: &CellEstimate,
    free: &[Param],
    sol: &LmSolution,
) -> Vec<f64> {
    let n = free.len();
    let mut var = vec![0.0; n];
    if sol.jacobian.ncols() != n {
        return vec![f64::NAN; n];
    }
    let Some(pinv) = pseudo_inverse(sol.jacobian.clone(), 1e-12) else { return vec![f64::NAN; n] };
    let mut r0 = vec![0.0; prep.len()];
    residuals_into(prep, est, &mut r0);
    // Perturbations of 10 mA and 1e-4: far above rounding, small for the model.
    // (perturbation, its 1σ, the sample's current with it)
    type Perturbed = fn(&FitSample, f64) -> f64;
    let sources: [(f64, f64, Perturbed); 2] = [
        (0.01, CURRENT_OFFSET_SIGMA_A, |s, h| s.current_a + h),
        (1e-4, CURRENT_GAIN_SIGMA_REL, |s, h| s.current_a * (1.0 + h)),
    ];
    for (h, sigma, perturb) in sources {
        let moved: Vec<FitSample> = samples.iter().map(|s| FitSample { current_a: perturb(s, h), ..*s }).collect();
        let mut p = Prepared::new(prep.model, &moved);
        p.unknown_start = prep.unknown_start;
        let mut r = vec![0.0; prep.len()];
        residuals_into(&p, est, &mut r);
        let d = nalgebra::DVector::from_iterator(r.len(), r.iter().zip(&r0).map(|(a, b)| (a - b) / h));
        let dtheta = &pinv * d;
        for (v, x) in var.iter_mut().zip(dtheta.iter()) {
            *v += (x * sigma).powi(2);
        }
    }
    var
}

/// The model and the priors must be usable.
fn check_config(config: &EcmFitConfig) -> Result<(), FitError> {
    if config.model.cells_in_series == 0 {
        return Err(FitError::BadFixedValue { name: "cells_in_series", value: 0.0, requirement: ">= 1" });
    }
    let activation = config.model.r_activation_j_per_mol;
    let factors_finite = ecm::BUILTIN_TEMPS_C.iter().all(|&t| {
        let g = config.model.resistance_factor(t);
        g.is_finite() && g > 0.0
    });
    if !(activation.is_finite() && activation >= 0.0 && factors_finite) {
        return Err(FitError::BadFixedValue {
            name: "r_activation_j_per_mol",
            value: activation,
            requirement: "finite, >= 0 and small enough that every resistance factor is finite",
        });
    }
    let own = config.model.own_consumption_w;
    if !(own.is_finite() && own >= 0.0) {
        return Err(FitError::BadFixedValue { name: "own_consumption_w", value: own, requirement: "finite and >= 0" });
    }
    if let Some(q) = config.rated_capacity_ah.filter(|q| !(q.is_finite() && *q > 0.0)) {
        return Err(FitError::BadFixedValue { name: "rated_capacity_ah", value: q, requirement: "finite and > 0" });
    }
    let q = config.voltage_resolution_v;
    if !(q.is_finite() && q >= 0.0) {
        return Err(FitError::BadFixedValue { name: "voltage_resolution_v", value: q, requirement: "finite and >= 0" });
    }
    if let Some(s) = config.initial_soc_hint.filter(|s| !(0.0..=1.0).contains(s)) {
        return Err(FitError::BadFixedValue { name: "initial_soc_hint", value: s, requirement: "within 0..=1" });
    }
    Ok(())
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

/// Model − measured into `out`, less what the RC pairs' unknown voltages at
/// the first sample explain ([`Prepared::project_start`]).
fn residuals_into(prep: &Prepared, est: &CellEstimate, out: &mut [f64]) {
    prep.simulate(est, out);
    for (o, v) in out.iter_mut().zip(&prep.voltage_v) {
        *o -= v;
    }
    prep.project_start(est, out);
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

/// LM over `free` from `start`; without free parameters, `start` evaluated
/// (a solution of no parameters, converged).
fn refit(
    prep: &Prepared,
    start: &CellEstimate,
    free: &[Param],
    opts: &LmOptions,
) -> Result<(CellEstimate, LmSolution), FitError> {
    if free.is_empty() {
        let mut r = vec![0.0; prep.len()];
        residuals_into(prep, start, &mut r);
        let sol = LmSolution {
            cost: half_norm2(&r),
            residuals: r,
            theta: Vec::new(),
            jacobian: DMatrix::zeros(prep.len(), 0),
            iterations: 0,
            termination: Termination::SmallGradient,
        };
        if sol.cost.is_finite() {
            return Ok((*start, sol));
        }
        let worst = sol.residuals.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()));
        return Err(FitError::NonFiniteStart { index: worst.map_or(0, |(k, _)| k) });
    }
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

/// What [`alternative_explanation`] found.
#[derive(Debug)]
enum Alternative {
    /// No distant optimum explains the recording as well.
    None,
    /// A distant value of the parameter explains it as well: why, in words
    /// (both optima, their RMSE).
    Ambiguous(Param, String),
    /// A distant optimum explains it clearly better (beyond the bound the
    /// other way): the estimate was a local optimum; this is the refit.
    Better(CellEstimate, LmSolution),
}

/// Looks for a distant second optimum of capacity or initial SOC that
/// explains the recording as well as `est` — which the local standard
/// errors of the Jacobian cannot see (an LFP plateau has several stretches
/// of similar slope). "Distant" is beyond the parameter's identifiability
/// limit; "as well" is within [`CHI2_99_1DOF`] residual variances (widened
/// for correlated residuals, as the standard errors are).
fn alternative_explanation(
    prep: &Prepared,
    est: &CellEstimate,
    status: &[ParamStatus; 8],
    sol: &LmSolution,
    unc: &Uncertainty,
    config: &EcmFitConfig,
) -> Result<Alternative, FitError> {
    let free: Vec<Param> = Param::ALL.into_iter().filter(|p| status[p.index()] == ParamStatus::Fitted).collect();
    let checked: Vec<Param> = [Param::CapacityAh, Param::InitialSoc].into_iter().filter(|p| free.contains(p)).collect();
    if checked.is_empty() {
        return Ok(Alternative::None);
    }
    let dof = prep.len().saturating_sub(free.len()).max(1) as f64;
    let rho = unc.lag1_autocorrelation;
    let variance = 2.0 * sol.cost / dof * (1.0 + rho) / (1.0 - rho);
    // Costs are ½·Σr². Explanations whose residuals differ by less than the
    // recording's own quantisation noise are not told apart by it, however
    // many samples it has (a model that misses part of the battery fits such
    // differences).
    let quantisation = 0.5 * prep.len() as f64 * config.voltage_resolution_v.powi(2) / 12.0;
    let allowed = (0.5 * CHI2_99_1DOF * variance).max(quantisation);
    let rows = grid_rows(prep);
    let grid = grid_costs(prep, est, status, &rows);
    let rmse_mv = |cost: f64| 1e3 * (2.0 * cost / prep.len() as f64).sqrt();
    for (p, below) in checked.iter().flat_map(|p| [(*p, true), (*p, false)]) {
        // The best grid point beyond the limit, on either side of the estimate.
        let limit = p.identifiable_std_err();
        let distance = |e: &CellEstimate| match p {
            Param::CapacityAh => (e.capacity_ah / est.capacity_ah).ln(),
            _ => e.initial_soc - est.initial_soc,
        };
        let far = |e: &CellEstimate| if below { distance(e) < -limit } else { distance(e) > limit };
        let Some((_, start)) = grid.iter().find(|(_, e)| far(e)) else { continue };
        let others: Vec<Param> = free.iter().copied().filter(|q| *q != p).collect();
        let (alt, alt_sol) = refit(prep, start, &others, &config.lm)?;
        if alt_sol.cost < sol.cost - allowed {
            let (better, better_sol) = refit(prep, &alt, &free, &config.lm)?;
            if better_sol.termination.converged() && better_sol.cost < sol.cost - allowed {
                return Ok(Alternative::Better(better, better_sol));
            }
        }
        if alt_sol.cost - sol.cost <= allowed {
            let what = match p {
                Param::CapacityAh => format!(
                    "capacities of {} Ah (initial SOC {} %, RMSE {} mV) and {} Ah (initial SOC {} %, RMSE {} mV) \
                     explain it equally well",
                    figure(est.capacity_ah, 1),
                    figure(100.0 * est.initial_soc, 1),
                    figure(rmse_mv(sol.cost), 2),
                    figure(alt.capacity_ah, 1),
                    figure(100.0 * alt.initial_soc, 1),
                    figure(rmse_mv(alt_sol.cost), 2),
                ),
                _ => format!(
                    "initial SOCs of {} % (capacity {} Ah, RMSE {} mV) and {} % (capacity {} Ah, RMSE {} mV) \
                     explain it equally well",
                    figure(100.0 * est.initial_soc, 1),
                    figure(est.capacity_ah, 1),
                    figure(rmse_mv(sol.cost), 2),
                    figure(100.0 * alt.initial_soc, 1),
                    figure(alt.capacity_ah, 1),
                    figure(rmse_mv(alt_sol.cost), 2),
                ),
            };
            return Ok(Alternative::Ambiguous(p, what));
        }
    }
    Ok(Alternative::None)
}

/// The value a parameter the recording does not determine is fixed at, and
/// where it comes from. Resistances of a cell design scale as 1/capacity;
/// RC resistances follow R0 when R0 is fitted or fixed (else its prior).
fn prior_of(p: Param, est: &CellEstimate, status: &[ParamStatus; 8], config: &EcmFitConfig) -> (f64, &'static str) {
    let cell = builtin_cell(config.model.chemistry);
    let r0_prior = cell.r0_ohm * cell.capacity_ah / est.capacity_ah;
    let r0_known = matches!(status[Param::R0Ohm.index()], ParamStatus::Fitted | ParamStatus::Fixed)
        && est.r0_ohm.is_finite()
        && est.r0_ohm > 0.0;
    let rc = |r: f64, own: &'static str, scaled: &'static str| {
        if r0_known { (est.r0_ohm * r / cell.r0_ohm, own) } else { (r0_prior * r / cell.r0_ohm, scaled) }
    };
    match p {
        Param::CapacityAh => match config.rated_capacity_ah {
            Some(q) => (q, "the rated capacity"),
            None => (cell.capacity_ah, "the chemistry's built-in cell"),
        },
        Param::InitialSoc => match config.initial_soc_hint {
            Some(s) => (s, "the SOC hint (the board's SOC at the first sample)"),
            None => (0.5, "mid-range (no SOC hint)"),
        },
        Param::R0Ohm => (r0_prior, "the chemistry's built-in cell, scaled to the capacity"),
        Param::R1Ohm => rc(
            cell.r1_ohm,
            "R0 × R1/R0 of the chemistry's built-in cell",
            "the chemistry's built-in cell, scaled to the capacity",
        ),
        Param::R2Ohm => rc(
            cell.r2_ohm,
            "R0 × R2/R0 of the chemistry's built-in cell",
            "the chemistry's built-in cell, scaled to the capacity",
        ),
        Param::Tau1S => (cell.tau1_s, "the chemistry's built-in cell"),
        Param::Tau2S => (cell.tau2_s, "the chemistry's built-in cell"),
        Param::OcvOffsetV => (0.0, "no offset"),
    }
}

/// Why the recording does not determine `p`, in terms of the recording and
/// of the final estimate `est` (its SOC range, the time constants it holds).
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
    let steps = x.max_step_a >= x.step_band_a;
    match p {
        Param::CapacityAh | Param::InitialSoc | Param::OcvOffsetV => format!(
            "the recording moves {} Ah (SOC {}–{} % at {} Ah), where the OCV changes by {relief_mv:.0} mV per \
             cell: too little to tell capacity, initial SOC and OCV offset apart (record into an end of the OCV \
             curve, {ends})",
            figure(throughput_ah, 1),
            figure(100.0 * lo, 1),
            figure(100.0 * hi, 1),
            figure(est.capacity_ah, 1)
        ),
        Param::R0Ohm if !steps => format!(
            "the current never changes by more than {} A between two samples: R0 cannot be told from the OCV",
            figure(x.max_step_a, 2)
        ),
        Param::R0Ohm => format!(
            "the current steps here (up to {} A between two samples) do not tell R0 from the RC pairs and the OCV",
            figure(x.max_step_a, 1)
        ),
        Param::R1Ohm | Param::Tau1S | Param::R2Ohm | Param::Tau2S => {
            let tau = if matches!(p, Param::R1Ohm | Param::Tau1S) { est.tau1_s } else { est.tau2_s };
            if !steps {
                format!(
                    "the current never changes by more than {} A between two samples: an RC pair (τ ≈ {} s) shows \
                     only after a current step",
                    figure(x.max_step_a, 2),
                    figure(tau, 0)
                )
            } else if x.span_s < 3.0 * tau {
                format!(
                    "τ ≈ {} s needs a recording of at least 3τ; this one lasts {} s",
                    figure(tau, 0),
                    figure(x.span_s, 0)
                )
            } else {
                format!(
                    "τ ≈ {} s needs a current step followed by about τ of steady current or rest; the longest such \
                     stretch here is {} s",
                    figure(tau, 0),
                    figure(x.longest_settle_s, 0)
                )
            }
        }
    }
}

/// `x` with `decimals`, or in scientific notation from 10⁶ on: the fit's
/// messages and `hil-rig fit`'s report never spell out a figure over
/// hundreds of digits (no battery has such a value; a held or absurd one is
/// shown, not written out).
pub fn figure(x: f64, decimals: usize) -> String {
    if x.abs() < 1e6 { format!("{x:.decimals$}") } else { format!("{x:.2e}") }
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

/// The parameters the voltage is linear in (offset, R0, R1, R2, and the
/// unknown starting voltages of the RC pairs), solved by least squares for
/// given capacity, initial SOC and time constants, on a subset of the rows. Plain vectors: the grid calls [`LinearPart::solve`]
/// thousands of times.
struct LinearPart {
    rows: Vec<usize>,
    params: Vec<Param>,
    /// Pseudo-inverse of the design matrix, one row of `rows.len()` per
    /// column: `params`, then the unknown starting voltages.
    pinv: Vec<Vec<f64>>,
    /// The design matrix, one column of `rows.len()` per parameter of
    /// `params`, then one per unknown starting voltage (its decay).
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
        let mut design: Vec<Vec<f64>> = params.iter().map(|p| rows.iter().map(|&k| column(*p, k)).collect()).collect();
        for tau in prep.unknown_taus(est) {
            let d: Vec<f64> = prep.decays(tau).collect();
            design.push(rows.iter().map(|&k| d[k]).collect());
        }
        // (AᵀA)⁺·Aᵀ: k ≤ 6 columns, so the k × k pseudo-inverse is cheap (a
        // starting point does not need the accuracy of a QR). No free linear
        // parameter (k = 0): nothing to solve. A matrix the SVD refuses
        // (non-finite): no solution, the parameters stay at their floor.
        let k = design.len();
        let ata = DMatrix::from_fn(k, k, |a, b| design[a].iter().zip(&design[b]).map(|(x, y)| x * y).sum::<f64>());
        let eps = 1e-12 * (0..k).map(|j| ata[(j, j)]).fold(0.0, f64::max);
        let pinv = match pseudo_inverse(ata, eps) {
            Some(inv) => (0..k)
                .map(|a| (0..rows.len()).map(|i| (0..k).map(|b| inv[(a, b)] * design[b][i]).sum()).collect())
                .collect(),
            None => vec![vec![0.0; rows.len()]; k],
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
        let mut beta = vec![0.0; self.design.len()];
        for (j, b) in beta.iter_mut().enumerate() {
            let v: f64 = self.pinv[j].iter().zip(y.iter()).map(|(a, b)| a * b).sum();
            *b = match self.params.get(j) {
                Some(Param::OcvOffsetV) | None => v,
                Some(_) => v.max(floor),
            };
            if let Some(p) = self.params.get(j) {
                e.set(*p, *b);
            }
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

    /// A configuration with nothing fixed and no priors.
    fn config_of(model: SeriesModel) -> EcmFitConfig {
        EcmFitConfig {
            model,
            fixed: Vec::new(),
            rated_capacity_ah: None,
            initial_soc_hint: None,
            voltage_resolution_v: 0.0,
            lm: LmOptions::default(),
        }
    }

    const LFP4: SeriesModel = SeriesModel {
        chemistry: Chemistry::Lfp,
        cells_in_series: 4,
        r_activation_j_per_mol: 20_000.0,
        own_consumption_w: 0.0,
    };

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
        let model = SeriesModel {
            chemistry: Chemistry::Nmc,
            cells_in_series: 1,
            r_activation_j_per_mol: 0.0,
            own_consumption_w: 0.0,
        };
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
        let config = config_of(LFP4);
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
        let config = EcmFitConfig { rated_capacity_ah: Some(100.0), initial_soc_hint: Some(0.58), ..config_of(LFP4) };
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
        let model = SeriesModel {
            chemistry: Chemistry::Nmc,
            cells_in_series: 3,
            r_activation_j_per_mol: 0.0,
            own_consumption_w: 0.0,
        };
        let est = CellEstimate { capacity_ah: 50.0, initial_soc: 0.9, ..CellEstimate::builtin(Chemistry::Nmc, 0.9) };
        let samples: Vec<FitSample> = (0..400)
            .map(|k| FitSample { t_s: f64::from(k) * 10.0, current_a: -25.0, voltage_v: 0.0, temp_c: 25.0 })
            .collect();
        let samples = with_voltage(&model, &est, samples);
        let fit = fit_ecm(&samples, &config_of(model)).unwrap();
        let not = |p: Param| matches!(fit.status_of(p), ParamStatus::NotIdentifiable { .. });
        assert!(not(Param::R0Ohm) || not(Param::OcvOffsetV), "{:?}", fit.status);
        let ParamStatus::NotIdentifiable { reason, .. } = fit.status_of(Param::R1Ohm) else {
            panic!("R1: {:?}", fit.status_of(Param::R1Ohm));
        };
        assert!(reason.contains("current step"), "{reason}");
    }

    #[test]
    fn fixed_values_are_kept_and_checked() {
        let model = SeriesModel {
            chemistry: Chemistry::Nmc,
            cells_in_series: 3,
            r_activation_j_per_mol: 0.0,
            own_consumption_w: 0.0,
        };
        let est = CellEstimate { r2_ohm: 0.0, ..CellEstimate::builtin(Chemistry::Nmc, 0.95) };
        let samples = with_voltage(&model, &est, pulse_profile(6000.0, 12.0));
        let config = EcmFitConfig { fixed: vec![(Param::R2Ohm, 0.0)], ..config_of(model) };
        let fit = fit_ecm(&samples, &config).unwrap();
        assert_eq!(fit.estimate.r2_ohm, 0.0);
        assert_eq!(*fit.status_of(Param::Tau2S), ParamStatus::Unused);
        assert!((fit.estimate.capacity_ah / 50.0 - 1.0).abs() < 1e-4, "{}", fit.estimate.capacity_ah);
        let ecm = fit.to_ecm_params("one pair");
        assert!(ecm.r1_ohm.is_some() && ecm.r2_ohm.is_none());
        let bad = EcmFitConfig { fixed: vec![(Param::InitialSoc, 1.5)], ..config_of(model) };
        let e = fit_ecm(&samples, &bad).unwrap_err();
        assert!(e.to_string().contains("initial_soc = 1.5"), "{e}");
        let e = fit_ecm(&samples[..5], &config).unwrap_err();
        assert!(matches!(e, FitError::TooFewSamples { residuals: 5, .. }), "{e}");
    }

    /// 400 samples of a constant `current_a` every 10 s, with the voltage of `est`.
    fn constant_current(model: &SeriesModel, est: &CellEstimate, current_a: f64) -> Vec<FitSample> {
        let samples: Vec<FitSample> =
            (0..400).map(|k| FitSample { t_s: f64::from(k) * 10.0, current_a, voltage_v: 0.0, temp_c: 25.0 }).collect();
        with_voltage(model, est, samples)
    }

    #[test]
    fn issue_21_no_free_linear_parameter_is_no_svd_of_an_empty_matrix() {
        // The path of the panic: LinearPart::new (from grid_starts, grid_costs,
        // alternative_explanation) with offset, R0, R1 and R2 all held.
        let est = known_cell();
        let samples = with_voltage(&LFP4, &est, pulse_profile(3000.0, 20.0));
        let prep = Prepared::new(&LFP4, &samples);
        let mut status: [ParamStatus; 8] = std::array::from_fn(|_| ParamStatus::Fitted);
        for p in [Param::OcvOffsetV, Param::R0Ohm, Param::R1Ohm, Param::R2Ohm] {
            status[p.index()] = ParamStatus::Fixed;
        }
        let rows = grid_rows(&prep);
        let lin = LinearPart::new(&prep, &est, &status, &rows);
        assert!(lin.params.is_empty() && lin.pinv.is_empty());
        let (cost, e) = lin.solve(&prep, &est, &mut Vec::new()).unwrap();
        assert!(cost < 1e-12, "the known cell: {cost}");
        assert_eq!(e, est);
        assert!(!grid_costs(&prep, &est, &status, &rows).is_empty());
        // And the whole fit, as `--fix` gives it.
        let fixed = [Param::OcvOffsetV, Param::R0Ohm, Param::R1Ohm, Param::R2Ohm].map(|p| (p, est.get(p))).to_vec();
        let fit = fit_ecm(&samples, &EcmFitConfig { fixed, ..config_of(LFP4) }).unwrap();
        assert!(fit.rmse_v < 1e-6, "{}", fit.rmse_v);
        assert!((fit.estimate.capacity_ah / est.capacity_ah - 1.0).abs() < 1e-4, "{}", fit.estimate.capacity_ah);
    }

    #[test]
    fn issue_21_every_parameter_fixed_evaluates_the_recording() {
        let est = known_cell();
        let samples = with_voltage(&LFP4, &est, pulse_profile(3000.0, 20.0));
        let fixed = Param::ALL.map(|p| (p, est.get(p))).to_vec();
        let fit = fit_ecm(&samples, &EcmFitConfig { fixed, ..config_of(LFP4) }).unwrap();
        assert!(fit.status.iter().all(|s| *s == ParamStatus::Fixed));
        assert_eq!((fit.estimate, fit.iterations), (est, 0));
        assert!(fit.rmse_v < 1e-9 && fit.correlations.is_empty());
    }

    #[test]
    fn issue_21_a_constant_current_holds_what_it_cannot_show_at_sane_values() {
        // LFP at a constant 40 A, in steady state from the first sample: one
        // voltage level for R0, R1, R2 and the offset, no time constant shown.
        let est = CellEstimate { initial_soc: 0.6, ..known_cell() };
        let samples = constant_current(&LFP4, &est, -40.0);
        for fixed in [Vec::new(), vec![(Param::R2Ohm, 0.0)]] {
            let config = EcmFitConfig {
                rated_capacity_ah: Some(100.0),
                initial_soc_hint: Some(0.6),
                fixed: fixed.clone(),
                ..config_of(LFP4)
            };
            let fit = fit_ecm(&samples, &config).unwrap();
            let (lo, hi) = fit.soc_range;
            let range = format!("SOC {:.1}–{:.1} %", 100.0 * lo, 100.0 * hi);
            for p in [Param::R0Ohm, Param::R1Ohm, Param::Tau1S] {
                let ParamStatus::NotIdentifiable { reason, .. } = fit.status_of(p) else {
                    panic!("{} with {fixed:?}: {:?}", p.name(), fit.status_of(p));
                };
                assert!(reason.contains("the current never changes by more than"), "{reason}");
            }
            assert_eq!(*fit.status_of(Param::OcvOffsetV), ParamStatus::Fitted, "the offset carries the level");
            for p in Param::ALL {
                let v = fit.estimate.get(p);
                assert!(v.is_finite() && v.abs() < 1e6, "{} = {v}", p.name());
                if let ParamStatus::NotIdentifiable { reason, .. } = fit.status_of(p) {
                    // Every SOC range given is the fitted one.
                    if reason.contains("SOC ") {
                        assert!(reason.contains(&range), "{}: {reason} vs {range}", p.name());
                    }
                    assert!(!reason.chars().filter(char::is_ascii_digit).collect::<String>().contains("0000000"));
                }
            }
            // The held values are the priors at the final estimate, not a drift of the solver.
            let cell = builtin_cell(Chemistry::Lfp);
            assert_eq!(fit.estimate.tau1_s, cell.tau1_s);
            let r0 = cell.r0_ohm * cell.capacity_ah / fit.estimate.capacity_ah;
            assert!((fit.estimate.r0_ohm / r0 - 1.0).abs() < 1e-9, "{} vs {r0}", fit.estimate.r0_ohm);
            assert!(fit.rmse_v < 1e-3, "{}", fit.rmse_v);
        }
    }

    #[test]
    fn issue_21_a_start_under_load_fits_the_rc_voltages_then() {
        // A pulse profile from a pack that was under load before the first
        // sample: the model's steady-state start is off by what the pairs
        // had not yet built; solved for, the fit is exact again.
        let est = known_cell();
        let mut samples = pulse_profile(11_300.0, 30.0);
        samples.drain(..12); // start inside the first discharge pulse
        let t0 = samples[0].t_s;
        samples.iter_mut().for_each(|s| s.t_s -= t0);
        let mut samples = with_voltage(&LFP4, &est, samples);
        // The true pairs had built only part of their steady state (half, and a tenth).
        let prep = Prepared::new(&LFP4, &samples);
        let i0 = prep.scaled_current_a[0];
        let short: Vec<f64> = prep.decays(est.tau1_s).collect();
        let long: Vec<f64> = prep.decays(est.tau2_s).collect();
        for (k, s) in samples.iter_mut().enumerate() {
            s.voltage_v -= 4.0 * (est.r1_ohm * 0.5 * i0 * short[k] + est.r2_ohm * 0.9 * i0 * long[k]);
        }
        let fit = fit_ecm(&samples, &config_of(LFP4)).unwrap();
        assert!(fit.loaded_start);
        assert!(fit.rmse_v < 1e-5, "{}", fit.rmse_v);
        for p in [Param::CapacityAh, Param::R0Ohm, Param::R1Ohm, Param::Tau1S] {
            let (got, want) = (fit.estimate.get(p), est.get(p));
            assert!((got / want - 1.0).abs() < 1e-3, "{}: {got} vs {want}", p.name());
        }
    }

    #[test]
    fn issue_21_bad_priors_are_errors() {
        let samples = with_voltage(&LFP4, &known_cell(), pulse_profile(3000.0, 20.0));
        for (config, name) in [
            (EcmFitConfig { initial_soc_hint: Some(f64::NAN), ..config_of(LFP4) }, "initial_soc_hint"),
            (EcmFitConfig { rated_capacity_ah: Some(0.0), ..config_of(LFP4) }, "rated_capacity_ah"),
            (EcmFitConfig { voltage_resolution_v: f64::NAN, ..config_of(LFP4) }, "voltage_resolution_v"),
            (
                EcmFitConfig {
                    model: SeriesModel { r_activation_j_per_mol: f64::INFINITY, ..LFP4 },
                    ..config_of(LFP4)
                },
                "r_activation_j_per_mol",
            ),
        ] {
            let e = fit_ecm(&samples, &config).unwrap_err();
            assert!(matches!(e, FitError::BadFixedValue { name: n, .. } if n == name), "{e}");
        }
    }
}
