//! Twin tracking: a Kalman filter that corrects the twin's battery state
//! from a board's measured current and battery voltage.
//!
//! The filter runs the same equivalent circuit as [`models::pack::Pack`]
//! (built from the same [`PackParams`] + [`Variant`] or [`EcmParams`],
//! through the same compiled tables), at pack level:
//!
//! ```text
//! state  x = [SOC, v1, v2, h, b]     v1, v2: pack RC voltages (V); h: hysteresis (−1..1);
//!                                     b: slowly varying error of the board's voltage reading (V)
//! predict (exact ZOH over dt, current I held, elements at the state at the start of the step):
//!   SOC' = SOC + (η·I⁺ + I⁻)·dt/(3600·Q) − k_sd(T)·dt
//!   vk'  = ak·vk + (1 − ak)·n·Rk(x,T)·I,      ak = exp(−dt/τk)
//!   h'   = ah·h  + (1 − ah)·sgn I,            ah = exp(−γ·|I|·dt/(3600·Q_nom))
//!   b'   = ab·b,                               ab = exp(−dt/τ_b)
//! measure:
//!   V = n·(OCV(x,T) + M(x,T)·h + R0(x,T,I)·I) + v1 + v2 + b,   x = 1 − (1 − SOC)/f_Q(T)
//! ```
//!
//! Given the SOC, everything else is linear: the measurement is linear in
//! (v1, v2, h, b) and the dynamics are exact. The only nonlinearity is
//! OCV(SOC) (and M, R0 of SOC), piecewise linear with slopes that differ
//! 40× (LFP: 0.05 V per unit SOC and cell on the plateau, 2 V at the top
//! knee). So a wide initial SOC uncertainty is represented by a bank of
//! extended Kalman filters on a grid of SOC (a Gaussian sum / point-mass
//! filter over SOC, Rao–Blackwellised over the linear states), each at
//! most [`SPLIT_SOC_SIGMA`] wide so that its linearisation is exact within
//! an OCV segment, weighted by how well it predicts the measurements,
//! pruned when negligible and merged when two agree. On a plateau the
//! members stay spread — every SOC across it fits about equally — and the
//! reported σ says so; at a knee they collapse to one. Each member's
//! covariance is updated in Joseph form. The choices, the noise defaults
//! and the measured convergence: `docs/models.md`, "Tracking (Kalman
//! filter)".

use models::cell::SECONDS_PER_HOUR;
use models::decay::decay_factor;
use models::ecm::{self, EcmParams, Tables};
use models::error::{self, ParamError};
use models::pack::PackParams;
use models::table::{self, Table};
use models::variant::{self, Variant};
use nalgebra::{SMatrix, SVector};

/// Number of filter states.
pub const STATES: usize = 5;
/// Index of the SOC (0..1) in the state.
pub const SOC: usize = 0;
/// Index of the first RC pair's pack voltage (V).
pub const V_RC1: usize = 1;
/// Index of the second RC pair's pack voltage (V).
pub const V_RC2: usize = 2;
/// Index of the hysteresis state h (−1..1).
pub const HYSTERESIS: usize = 3;
/// Index of the voltage-measurement bias (V).
pub const VOLTAGE_BIAS: usize = 4;

type Vector = SVector<f64, STATES>;
type Matrix = SMatrix<f64, STATES, STATES>;

/// A datasheet "total maximum error" is taken as a 3σ limit, the
/// convention of [`models::chain`] ("σ = limit/3").
pub const LIMIT_SIGMAS: f64 = 3.0;
/// Voltage measurement accuracy table: total maximum error 0.1 % FS, as a
/// fraction of the variant's measuring range (15 / 30 / 60 V).
pub const VOLTAGE_ERROR_FRACTION_FS: f64 = variant::VOLTAGE_TOTAL_ERROR_PCT_FS / 100.0;
/// Current measurement accuracy table: total maximum error 0.04 % FS of
/// the ±250 A range = 0.1 A.
pub const CURRENT_ERROR_LIMIT_A: f64 = variant::CURRENT_TOTAL_ERROR_PCT_FS / 100.0 * variant::CURRENT_RANGE_A;
/// Correlation time of the voltage error's slowly varying part (s): gain
/// and offset move with the board temperature, i.e. over the board's
/// thermal time constants (minutes to hours). A modelling choice.
pub const DEFAULT_VOLTAGE_BIAS_CORRELATION_S: f64 = 3600.0;
/// Correlation time of the current error (s): the datasheet's error is
/// mostly offset and gain, which integrate into SOC like a bias, not like
/// white noise; the SOC variance grows as a random walk whose 1σ after
/// this time equals the drift of a 1σ bias (a modelling choice).
pub const DEFAULT_CURRENT_CORRELATION_S: f64 = 3600.0;
/// 1σ relative uncertainty of the capacity the filter counts with: the
/// pack's default cell capacity spread ([`models::pack::DEFAULT_CAPACITY_SPREAD_REL`]).
pub const DEFAULT_CAPACITY_SIGMA_REL: f64 = models::pack::DEFAULT_CAPACITY_SPREAD_REL;
/// 1σ relative uncertainty of the resistances R0, R1, R2 of a real
/// battery against the twin's (a modelling choice: cell-to-cell spread
/// is 3 %, fitted ECM parameters are rarely better than ±10 %).
pub const DEFAULT_RESISTANCE_SIGMA_REL: f64 = 0.1;
/// Initial 1σ of each RC voltage: the voltage this C-rate would leave on
/// the pair (the history before the first sample is unknown: a pack
/// loaded at up to ±1.5 C, 3σ). A modelling choice.
pub const INITIAL_RC_C_RATE: f64 = 0.5;
/// Initial 1σ of the hysteresis state: uniform on −1..1.
pub const INITIAL_HYSTERESIS_SIGMA: f64 = 0.577_350_269_189_625_8;
/// Upper bound of the SOC's 1σ in one filter: a uniform SOC on 0..1 has
/// 0.29; beyond 0.5 the band says nothing more.
pub const MAX_SOC_SIGMA: f64 = 0.5;
/// An initial SOC σ above this is split into a bank of filters on a grid
/// of SOC, each at most this wide: narrow enough that one filter's SOC
/// spans a fraction of an OCV segment (LFP: 5 % SOC), so linearising the
/// measurement at its mean is accurate.
pub const SPLIT_SOC_SIGMA: f64 = 0.01;
/// The bank covers the initial SOC ± this many σ (within 0..1).
pub const PRIOR_SPAN_SIGMAS: f64 = 4.0;
/// Every member of the initial bank has at least this weight relative to
/// the prior's peak (a heavy tail: robustness against a bad guess).
const PRIOR_WEIGHT_FLOOR: f64 = 1e-3;
/// Most filters in the bank (the grid step is at least 1/63).
pub const MAX_FILTERS: usize = 64;
/// A filter whose weight falls below this fraction of the largest is
/// dropped.
const PRUNE_WEIGHT: f64 = 1e-6;
/// Two neighbouring filters closer than this (squared Mahalanobis
/// distance of their states under the sum of their covariances) are
/// merged.
const MERGE_DISTANCE_SQ: f64 = 0.25;
/// Floor added to every state's variance per step, keeping the covariance
/// positive definite when a state is unused (no second RC pair, no
/// hysteresis, no bias): (1 µV)², (1e-6)² in SOC and h.
const VARIANCE_FLOOR: f64 = 1e-12;

/// Noise model of the filter. [`TrackerNoise::datasheet`] derives the
/// defaults from the SmartPro-209 accuracy tables.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackerNoise {
    /// Per-sample (white) voltage error, 1σ (V).
    pub voltage_sigma_v: f64,
    /// Slowly varying voltage error (gain and offset drift), 1σ (V): the
    /// stationary spread of the bias state; 0 drops the bias state.
    pub voltage_bias_sigma_v: f64,
    /// Correlation time of the bias (s).
    pub voltage_bias_correlation_s: f64,
    /// Current error, 1σ (A).
    pub current_sigma_a: f64,
    /// Correlation time of the current error (s): SOC variance grows by
    /// `(σ_I/(3600·Q))²·τ_I` per second.
    pub current_correlation_s: f64,
    /// 1σ relative error of the capacity: SOC variance grows by `σ_Q²` per
    /// unit SOC moved.
    pub capacity_sigma_rel: f64,
    /// 1σ relative error of the resistances R0, R1, R2: what it leaves on
    /// the RC voltages is process noise, on R0·I measurement noise.
    pub resistance_sigma_rel: f64,
    /// 1σ spread of the cells' SOC around the mean the filter tracks (the
    /// cells' initial SOC spread; `capacity_sigma_rel` × the depth of
    /// discharge adds the capacity spread's). Where the OCV is steep (near
    /// empty or full) the string's voltage says as much about the cells
    /// that deviate as about the mean: `n·(dOCV/dSOC·σ)²` is measurement
    /// noise, so the SOC's σ does not collapse below what the voltage can
    /// tell (issue 17, item 5).
    #[serde(default = "default_cell_soc_sigma")]
    pub cell_soc_sigma: f64,
}

/// [`TrackerNoise::cell_soc_sigma`]'s default: the pack's default SOC spread.
fn default_cell_soc_sigma() -> f64 {
    models::pack::DEFAULT_SOC_SPREAD
}

impl TrackerNoise {
    /// The defaults for `variant` (see the constants of this module):
    ///
    /// | field | value | source |
    /// |---|---|---|
    /// | `voltage_sigma_v` | 0.1 % FS / 3 = 5 / 10 / 20 mV | voltage accuracy table, limit = 3σ |
    /// | `voltage_bias_sigma_v` | the same | the same error, its slow part |
    /// | `current_sigma_a` | 0.04 % FS × 250 A / 3 = 33 mA | current accuracy table |
    /// | `*_correlation_s` | 3600 s | modelling choice |
    /// | `capacity_sigma_rel` | 1 % | the pack's capacity spread |
    /// | `resistance_sigma_rel` | 10 % | modelling choice |
    /// | `cell_soc_sigma` | 0.5 % | the pack's default SOC spread |
    pub fn datasheet(variant: Variant) -> Self {
        let voltage_sigma_v = VOLTAGE_ERROR_FRACTION_FS * variant.voltage_range_v() / LIMIT_SIGMAS;
        Self {
            voltage_sigma_v,
            voltage_bias_sigma_v: voltage_sigma_v,
            voltage_bias_correlation_s: DEFAULT_VOLTAGE_BIAS_CORRELATION_S,
            current_sigma_a: CURRENT_ERROR_LIMIT_A / LIMIT_SIGMAS,
            current_correlation_s: DEFAULT_CURRENT_CORRELATION_S,
            capacity_sigma_rel: DEFAULT_CAPACITY_SIGMA_REL,
            resistance_sigma_rel: DEFAULT_RESISTANCE_SIGMA_REL,
            cell_soc_sigma: default_cell_soc_sigma(),
        }
    }

    /// Checks that every field is usable: `voltage_sigma_v` and the
    /// correlation times finite and > 0, the rest finite and ≥ 0.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("tracker.voltage_sigma_v", self.voltage_sigma_v)?;
        error::non_negative("tracker.voltage_bias_sigma_v", self.voltage_bias_sigma_v)?;
        error::positive("tracker.voltage_bias_correlation_s", self.voltage_bias_correlation_s)?;
        error::non_negative("tracker.current_sigma_a", self.current_sigma_a)?;
        error::positive("tracker.current_correlation_s", self.current_correlation_s)?;
        error::non_negative("tracker.capacity_sigma_rel", self.capacity_sigma_rel)?;
        error::non_negative("tracker.resistance_sigma_rel", self.resistance_sigma_rel)?;
        error::non_negative("tracker.cell_soc_sigma", self.cell_soc_sigma)
    }
}

/// An input the filter did not use, and why. The state is left as it was.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum TrackerError {
    /// A NaN or infinite input.
    #[error("tracker: input `{input}` = {value} is not finite; sample ignored")]
    NonFinite {
        /// Which argument (`dt_s`, `current_a`, `temp_c`, `measured_voltage_v`).
        input: &'static str,
        /// Its value.
        value: f64,
    },
    /// A time step that is zero or negative (a repeated or out-of-order row).
    #[error("tracker: dt_s = {dt_s} s is not > 0; step ignored")]
    NonPositiveStep {
        /// The step (s).
        dt_s: f64,
    },
    /// The update would have left a non-finite or indefinite state
    /// (cannot happen with finite inputs and valid parameters; reported
    /// rather than stored).
    #[error("tracker: the update gave a non-finite state; measurement ignored")]
    Diverged,
}

/// What [`SocTracker::update`] did with a measurement.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateStatus {
    /// The state was corrected.
    Applied,
    /// The measurement was not used (the state is unchanged).
    Rejected(TrackerError),
}

/// The innovation of one voltage measurement: measured minus predicted,
/// with its predicted 1σ, both before the correction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Innovation {
    /// Predicted measurement: terminal voltage + bias (V).
    pub predicted_v: f64,
    /// Measured − predicted (V); NaN if the inputs were not finite.
    pub innovation_v: f64,
    /// 1σ of the innovation (V): measurement noise, the spread of the
    /// prediction and the spread between the bank's filters.
    pub sigma_v: f64,
    /// Whether the state was corrected.
    pub status: UpdateStatus,
}

/// The battery model the filter runs: the twin pack's tables, cell count
/// and (initial) ageing, for a pack of identical nominal cells.
#[derive(Clone, Debug)]
pub struct TrackerModel {
    tables: Tables,
    variant: Variant,
    cells: f64,
    /// Capacity with the pack's initial ageing (Ah).
    capacity_ah: f64,
    /// Resistance growth of the pack's initial ageing.
    r_scale: f64,
    /// γ/(3600·Q_nominal): hysteresis decay per coulomb (as the pack).
    hyst_per_coulomb: f64,
    has_hysteresis: bool,
    /// Union of every table's SOC breakpoints.
    soc_axis: Vec<f64>,
    /// Some table depends on current.
    current_dependent: bool,
}

impl TrackerModel {
    /// The model of a pack built by [`models::pack::Pack::new`] from the
    /// same `params` and `variant` (the built-in cell `params.cell`).
    pub fn from_pack_params(params: &PackParams, variant: Variant) -> Result<Self, ParamError> {
        params.validate()?;
        Self::from_ecm(&EcmParams::from_cell(&params.cell), params, variant)
    }

    /// The model of a pack built by [`models::pack::Pack::from_ecm`] from
    /// the same arguments: the cells of `ecm` (its `cells_in_series`, or
    /// `params.cells_for(variant)` when that is 0), the initial ageing of
    /// `params`. Cell spread is not modelled (the filter tracks the mean
    /// cell).
    pub fn from_ecm(ecm: &EcmParams, params: &PackParams, variant: Variant) -> Result<Self, ParamError> {
        let tables = ecm.compile()?;
        params.ageing.validate()?;
        let cells = if ecm.cells_in_series == 0 { params.cells_for(variant) } else { ecm.cells_in_series };
        if cells == 0 {
            return Err(ParamError { name: "cells_in_series", value: 0.0, requirement: "at least one cell" });
        }
        let (health, growth) = params.ageing.state(params.ageing.initial_efc, params.ageing.initial_age_days);
        let mut all: Vec<&Table> = vec![&tables.ocv, &tables.r0];
        for rc in &tables.rc {
            all.push(&rc.r);
            all.push(&rc.x);
        }
        all.extend(tables.hysteresis.iter());
        let axes: Vec<&[f64]> = all.iter().map(|t| t.soc_axis()).collect();
        let mut soc_axis = table::union_axis(&axes);
        if soc_axis.len() < 2 {
            soc_axis = vec![0.0, 1.0];
        }
        let current_dependent = all.iter().any(|t| t.current_axis().len() > 1);
        Ok(Self {
            has_hysteresis: tables.hysteresis.is_some() && tables.hysteresis_rate > 0.0,
            hyst_per_coulomb: tables.hysteresis_rate / (tables.capacity_ah * SECONDS_PER_HOUR),
            capacity_ah: tables.capacity_ah * health,
            r_scale: growth,
            cells: cells as f64,
            variant,
            tables,
            soc_axis,
            current_dependent,
        })
    }

    /// Usable capacity at `temp_c` relative to 25 °C, interpolated as
    /// `Pack::set_temperature_c` does.
    fn capacity_factor(&self, temp_c: f64) -> f64 {
        match &self.tables.capacity_factor {
            Some((temps, f)) => {
                let (i, fr) = table::locate(temps, temp_c, 0);
                let j = (i + 1).min(f.len() - 1);
                f[i] + fr * (f[j] - f[i])
            }
            None => 1.0,
        }
    }

    /// The tables at (T, I) on the union SOC axis, as the pack slices them.
    fn slice(&self, temp_c: f64, current_a: f64) -> Slice {
        let t = &self.tables;
        let ev = |tab: &Table, s: f64| tab.eval(temp_c, current_a, s);
        let mut rows = Vec::with_capacity(self.soc_axis.len());
        for &s in &self.soc_axis {
            let mut row = [0.0; SLICE_WIDTH];
            row[Q_OCV] = ev(&t.ocv, s);
            if self.has_hysteresis {
                row[Q_M] = t.hysteresis.as_ref().map_or(0.0, |h| ev(h, s));
            }
            row[Q_R0] = ev(&t.r0, s) * self.r_scale;
            for (k, rc) in t.rc.iter().enumerate().take(2) {
                row[Q_R1 + 2 * k] = ev(&rc.r, s) * self.r_scale;
                row[Q_X1 + 2 * k] = ev(&rc.x, s);
            }
            rows.push(row);
        }
        let mut x_is_tau = [true; 2];
        for (k, rc) in t.rc.iter().enumerate().take(2) {
            x_is_tau[k] = rc.x_is_tau;
        }
        Slice {
            key: (temp_c.to_bits(), if self.current_dependent { current_a.to_bits() } else { 0 }),
            inv_f_q: 1.0 / self.capacity_factor(temp_c),
            soc: self.soc_axis.clone(),
            rows,
            x_is_tau,
        }
    }

    /// The key a slice at (T, I) has.
    fn slice_key(&self, temp_c: f64, current_a: f64) -> (u64, u64) {
        (temp_c.to_bits(), if self.current_dependent { current_a.to_bits() } else { 0 })
    }

    /// Self-discharge at `temp_c` (SOC per second), as the pack.
    fn self_discharge_per_s(&self, temp_c: f64) -> f64 {
        self.tables.self_discharge_per_s * 2f64.powf((temp_c - ecm::T_REF_C) / 10.0)
    }
}

/// Columns of a [`Slice`] row.
const Q_OCV: usize = 0;
const Q_M: usize = 1;
const Q_R0: usize = 2;
const Q_R1: usize = 3;
const Q_X1: usize = 4;
const SLICE_WIDTH: usize = 7;

/// The tables at one temperature (and current, if they depend on it), on
/// the union SOC axis: at fixed T and I every table is piecewise linear in
/// SOC on its own axis, so linear interpolation on the union axis is the
/// same function (what `Pack::set_temperature_c` relies on too).
#[derive(Clone, Debug)]
struct Slice {
    key: (u64, u64),
    inv_f_q: f64,
    soc: Vec<f64>,
    /// Per breakpoint: OCV, M, R0, R1, C1|τ1, R2, C2|τ2 (R scaled by ageing).
    rows: Vec<[f64; SLICE_WIDTH]>,
    x_is_tau: [bool; 2],
}

impl Slice {
    /// The elements at `soc`, each with its slope in SOC.
    fn at(&self, soc: f64) -> Elements {
        let x = 1.0 - (1.0 - soc.clamp(0.0, 1.0)) * self.inv_f_q;
        let n = self.soc.len();
        let i = table::locate_segment(&self.soc, x, n / 2);
        let ds = self.soc[i + 1] - self.soc[i];
        let inside = x >= self.soc[0] && x <= self.soc[n - 1];
        let f = ((x - self.soc[i]) / ds).clamp(0.0, 1.0);
        let (a, b) = (&self.rows[i], &self.rows[i + 1]);
        // slope in SOC = slope in x · dx/dSOC; 0 where the tables clamp
        let k = if inside { self.inv_f_q / ds } else { 0.0 };
        let q = |c: usize| (a[c] + f * (b[c] - a[c]), (b[c] - a[c]) * k);
        let mut rc = [Rc::default(); 2];
        for (j, item) in rc.iter_mut().enumerate() {
            let (r, dr) = q(Q_R1 + 2 * j);
            let (xv, dxv) = q(Q_X1 + 2 * j);
            // as `pack::rc_tau`: τ is the table, or R·C
            let (tau, dtau) = if self.x_is_tau[j] { (xv, dxv) } else { (xv * r, dxv * r + xv * dr) };
            *item = Rc { r, dr, tau, dtau };
        }
        Elements { ocv: q(Q_OCV), m: q(Q_M), r0: q(Q_R0), rc }
    }
}

/// One RC pair of a cell: R (Ω) and τ (s), and their slopes in SOC.
#[derive(Clone, Copy, Debug, Default)]
struct Rc {
    r: f64,
    dr: f64,
    tau: f64,
    dtau: f64,
}

/// A cell's elements at one point, each as (value, d/dSOC).
#[derive(Clone, Copy, Debug)]
struct Elements {
    ocv: (f64, f64),
    m: (f64, f64),
    r0: (f64, f64),
    rc: [Rc; 2],
}

/// One member of the bank.
#[derive(Clone, Debug)]
struct Filter {
    x: Vector,
    p: Matrix,
    /// Weight (normalised: the bank's weights sum to 1).
    w: f64,
}

/// The filter: predict with [`SocTracker::step`], correct with
/// [`SocTracker::update`] (see the module doc).
#[derive(Clone, Debug)]
pub struct SocTracker {
    model: TrackerModel,
    noise: TrackerNoise,
    bank: Vec<Filter>,
    /// The bias state is used (`voltage_bias_sigma_v` > 0).
    bias_on: bool,
    /// The tables at the (T, I) of the last call.
    slice: Slice,
}

impl SocTracker {
    /// A filter at `initial_soc` (0..1) with 1σ `initial_soc_sigma`, the
    /// RC pairs at 0 V with the spread [`INITIAL_RC_C_RATE`] could
    /// leave, hysteresis 0 ± [`INITIAL_HYSTERESIS_SIGMA`], bias 0 ± its σ.
    /// A σ above [`SPLIT_SOC_SIGMA`] starts a bank of up to
    /// [`MAX_FILTERS`] filters spread over `initial_soc ±` [`PRIOR_SPAN_SIGMAS`]`σ` (within 0..1).
    ///
    /// Never panics: a non-finite `initial_soc` starts at 0.5, the SOC is
    /// clamped to 0..1, a non-finite or non-positive σ becomes
    /// [`MAX_SOC_SIGMA`], and a `noise` that fails
    /// [`TrackerNoise::validate`] is replaced by
    /// [`TrackerNoise::datasheet`].
    pub fn new(model: TrackerModel, initial_soc: f64, initial_soc_sigma: f64, noise: TrackerNoise) -> SocTracker {
        let soc = if initial_soc.is_finite() { initial_soc.clamp(0.0, 1.0) } else { 0.5 };
        let sigma = if initial_soc_sigma.is_finite() && initial_soc_sigma > 0.0 {
            initial_soc_sigma.min(MAX_SOC_SIGMA)
        } else {
            MAX_SOC_SIGMA
        };
        let noise = if noise.validate().is_ok() { noise } else { TrackerNoise::datasheet(model.variant) };
        let slice = model.slice(ecm::T_REF_C, 0.0);
        let e = slice.at(0.5);
        let rc_sigma = |k: usize| model.cells * e.rc[k].r * INITIAL_RC_C_RATE * model.capacity_ah;
        let h_sigma = if model.has_hysteresis { INITIAL_HYSTERESIS_SIGMA } else { 0.0 };
        let prior = |soc: f64, soc_sigma: f64, w: f64| {
            let diag = [soc_sigma, rc_sigma(0), rc_sigma(1), h_sigma, noise.voltage_bias_sigma_v];
            let mut p = Matrix::zeros();
            for (k, s) in diag.iter().enumerate() {
                p[(k, k)] = s * s + VARIANCE_FLOOR;
            }
            let mut x = Vector::zeros();
            x[SOC] = soc;
            Filter { x, p, w }
        };
        let bank = if sigma <= SPLIT_SOC_SIGMA {
            vec![prior(soc, sigma, 1.0)]
        } else {
            // Means on a grid over soc ± 4σ (within 0..1), each filter
            // half a grid step wide, weights from the prior with the
            // members' own variance taken out, so the sum has about the
            // prior's spread, plus a floor: a guess worse than its σ
            // says is recovered from, not excluded.
            let lo = (soc - PRIOR_SPAN_SIGMAS * sigma).max(0.0);
            let hi = (soc + PRIOR_SPAN_SIGMAS * sigma).min(1.0);
            let count = (((hi - lo) / (2.0 * SPLIT_SOC_SIGMA)).ceil() as usize + 1).clamp(2, MAX_FILTERS);
            let step = (hi - lo) / (count - 1) as f64;
            let member_sigma = (0.5 * step).min(sigma);
            let spread_var = (sigma * sigma - member_sigma * member_sigma).max(member_sigma * member_sigma);
            let mut bank: Vec<Filter> = (0..count)
                .map(|j| {
                    let m = lo + step * j as f64;
                    prior(m, member_sigma, (-(m - soc).powi(2) / (2.0 * spread_var)).exp() + PRIOR_WEIGHT_FLOOR)
                })
                .collect();
            let total: f64 = bank.iter().map(|f| f.w).sum();
            for f in &mut bank {
                f.w /= total;
            }
            bank
        };
        SocTracker { bias_on: noise.voltage_bias_sigma_v > 0.0, model, noise, bank, slice }
    }

    /// Estimated SOC (0..1): the bank's weighted mean.
    pub fn soc(&self) -> f64 {
        self.bank.iter().map(|f| f.w * f.x[SOC]).sum()
    }

    /// 1σ of the SOC estimate: each filter's own variance plus the spread
    /// of the filters around the mean.
    pub fn soc_sigma(&self) -> f64 {
        self.moments(SOC).1.sqrt()
    }

    /// Weighted mean and variance of state `k` over the bank.
    fn moments(&self, k: usize) -> (f64, f64) {
        let mean: f64 = self.bank.iter().map(|f| f.w * f.x[k]).sum();
        let var = self.bank.iter().map(|f| f.w * (f.p[(k, k)] + (f.x[k] - mean).powi(2))).sum();
        (mean, var)
    }

    /// Re-slices the tables if (T, I) changed.
    fn refresh_slice(&mut self, temp_c: f64, current_a: f64) {
        if self.slice.key != self.model.slice_key(temp_c, current_a) {
            self.slice = self.model.slice(temp_c, current_a);
        }
    }

    /// Predict: advances the state by `dt_s` with `current_a` (+ = charge)
    /// held and the cells at `temp_c`. A non-finite input or `dt_s` ≤ 0 is
    /// an error and changes nothing.
    pub fn step(&mut self, dt_s: f64, current_a: f64, temp_c: f64) -> Result<(), TrackerError> {
        finite("dt_s", dt_s)?;
        finite("current_a", current_a)?;
        finite("temp_c", temp_c)?;
        if dt_s <= 0.0 {
            return Err(TrackerError::NonPositiveStep { dt_s });
        }
        self.refresh_slice(temp_c, current_a);
        let mut next = Vec::with_capacity(self.bank.len());
        for f in &self.bank {
            let (x, p) = self.predict(f, dt_s, current_a, temp_c);
            let (x, p) = settle(x, p).ok_or(TrackerError::Diverged)?;
            next.push(Filter { x, p, w: f.w });
        }
        self.bank = next;
        Ok(())
    }

    /// One filter's prediction: `x' = f(x)`, `P' = F·P·Fᵀ + Q` with
    /// `F = diag(d) + c·e_SOCᵀ` (written out: O(n²), no general product).
    fn predict(&self, f: &Filter, dt_s: f64, current_a: f64, temp_c: f64) -> (Vector, Matrix) {
        let m = &self.model;
        let n = m.cells;
        let soc = f.x[SOC];
        let e = self.slice.at(soc);
        let mut d = [1.0; STATES];
        let mut c = [0.0; STATES];
        let mut q = [VARIANCE_FLOOR; STATES];
        let mut x = f.x;

        // SOC: coulomb counting, as Pack::step.
        let stored_a = if current_a > 0.0 { current_a * m.tables.coulombic_efficiency } else { current_a };
        let dsoc = stored_a * dt_s / (SECONDS_PER_HOUR * m.capacity_ah) - m.self_discharge_per_s(temp_c) * dt_s;
        x[SOC] = soc + dsoc;
        let count_sigma = self.noise.current_sigma_a / (SECONDS_PER_HOUR * m.capacity_ah);
        q[SOC] += count_sigma * count_sigma * self.noise.current_correlation_s * dt_s
            + self.noise.capacity_sigma_rel.powi(2) * dsoc.abs();

        // RC pairs: exact ZOH; ∂/∂SOC through R(x) and τ(x). Process
        // noise: what the current error and the resistance error build on
        // the pair, (1 − a²)·(n·R)²·(σ_I² + (σ_R·I)²).
        let i_var = self.noise.current_sigma_a.powi(2) + (self.noise.resistance_sigma_rel * current_a).powi(2);
        for (k, idx) in [V_RC1, V_RC2].into_iter().enumerate() {
            let rc = e.rc[k];
            let a = decay_factor(dt_s, rc.tau);
            let r_pack = n * rc.r;
            x[idx] = a * f.x[idx] + (1.0 - a) * r_pack * current_a;
            d[idx] = a;
            let da = if rc.tau > 0.0 { a * dt_s / (rc.tau * rc.tau) * rc.dtau } else { 0.0 };
            c[idx] = (1.0 - a) * n * rc.dr * current_a + da * (f.x[idx] - r_pack * current_a);
            q[idx] += (1.0 - a * a) * r_pack * r_pack * i_var;
        }

        // Hysteresis, as Pack::step.
        if m.has_hysteresis && current_a != 0.0 {
            let ah = (-(current_a * dt_s).abs() * m.hyst_per_coulomb).exp();
            x[HYSTERESIS] = ah * f.x[HYSTERESIS] + (1.0 - ah) * current_a.signum();
            d[HYSTERESIS] = ah;
        }

        // Voltage bias: first-order Gauss–Markov.
        if self.bias_on {
            let ab = (-dt_s / self.noise.voltage_bias_correlation_s).exp();
            x[VOLTAGE_BIAS] = ab * f.x[VOLTAGE_BIAS];
            d[VOLTAGE_BIAS] = ab;
            q[VOLTAGE_BIAS] += (1.0 - ab * ab) * self.noise.voltage_bias_sigma_v.powi(2);
        }

        // (F·P·Fᵀ)ij = di·dj·Pij + di·cj·Pi,s + ci·dj·Ps,j + ci·cj·Ps,s
        let p0 = &f.p;
        let mut p = Matrix::zeros();
        for i in 0..STATES {
            for j in 0..STATES {
                p[(i, j)] = d[i] * d[j] * p0[(i, j)]
                    + d[i] * c[j] * p0[(i, SOC)]
                    + c[i] * d[j] * p0[(SOC, j)]
                    + c[i] * c[j] * p0[(SOC, SOC)];
            }
            p[(i, i)] += q[i];
        }
        (x, p)
    }

    /// Correct: uses the board's `measured_voltage_v` taken while
    /// `current_a` flowed at `temp_c`. Returns the innovation (before the
    /// correction); a non-finite input is not used and the returned
    /// [`Innovation::status`] says why.
    pub fn update(&mut self, measured_voltage_v: f64, current_a: f64, temp_c: f64) -> Innovation {
        let bad = [("measured_voltage_v", measured_voltage_v), ("current_a", current_a), ("temp_c", temp_c)]
            .into_iter()
            .find(|(_, v)| !v.is_finite());
        if let Some((input, value)) = bad {
            return Innovation {
                predicted_v: f64::NAN,
                innovation_v: f64::NAN,
                sigma_v: f64::NAN,
                status: UpdateStatus::Rejected(TrackerError::NonFinite { input, value }),
            };
        }
        self.refresh_slice(temp_c, current_a);
        // Measurement noise: the board's voltage error and what a wrong R0
        // makes of I·R0, the same for every filter (evaluated at the
        // bank's SOC): it belongs to the battery, not to a SOC hypothesis,
        // and a per-filter value would tilt the weights through ln S.
        let soc = self.soc();
        let at = self.slice.at(soc);
        let r0_pack = self.model.cells * at.r0.0;
        // The cells' spread around the mean SOC, seen through the OCV slope.
        let cell_var = self.noise.cell_soc_sigma.powi(2) + (self.noise.capacity_sigma_rel * (1.0 - soc)).powi(2);
        let r = self.noise.voltage_sigma_v.powi(2)
            + (self.noise.resistance_sigma_rel * r0_pack * current_a).powi(2)
            + self.model.cells * at.ocv.1.powi(2) * cell_var;
        let mut next = Vec::with_capacity(self.bank.len());
        let mut predicted = Vec::with_capacity(self.bank.len());
        for f in &self.bank {
            let (y, h) = self.measurement(&self.slice, &f.x, current_a);
            let s = h.dot(&(f.p * h)) + r;
            let nu = measured_voltage_v - y;
            let Some((x, p)) = joseph(&f.x, &f.p, &h, r, nu) else {
                return self.rejected(TrackerError::Diverged, current_a);
            };
            predicted.push((f.w, y, s));
            // predictive likelihood of the measurement under this filter
            next.push((Filter { x, p, w: f.w }, -0.5 * (nu * nu / s + s.ln())));
        }
        let mean_v: f64 = predicted.iter().map(|(w, y, _)| w * y).sum();
        let var_v: f64 = predicted.iter().map(|(w, y, s)| w * (s + (y - mean_v).powi(2))).sum();
        let max_ll = next.iter().map(|(_, l)| *l).fold(f64::NEG_INFINITY, f64::max);
        let mut bank: Vec<Filter> = next
            .into_iter()
            .map(|(mut f, l)| {
                f.w *= (l - max_ll).exp();
                f
            })
            .collect();
        let total: f64 = bank.iter().map(|f| f.w).sum();
        if !(total.is_finite() && total > 0.0) {
            return self.rejected(TrackerError::Diverged, current_a);
        }
        for f in &mut bank {
            f.w /= total;
        }
        self.bank = bank;
        self.prune_and_merge();
        Innovation {
            predicted_v: mean_v,
            innovation_v: measured_voltage_v - mean_v,
            sigma_v: var_v.sqrt(),
            status: UpdateStatus::Applied,
        }
    }

    /// An innovation that was not applied.
    fn rejected(&self, error: TrackerError, current_a: f64) -> Innovation {
        let predicted_v = self.bank.iter().map(|f| f.w * self.measurement(&self.slice, &f.x, current_a).0).sum();
        Innovation { predicted_v, innovation_v: f64::NAN, sigma_v: f64::NAN, status: UpdateStatus::Rejected(error) }
    }

    /// Drops filters of negligible weight and merges filters that agree
    /// (neighbours in SOC; moment matching), keeping at most
    /// [`MAX_FILTERS`].
    fn prune_and_merge(&mut self) {
        let max_w = self.bank.iter().map(|f| f.w).fold(0.0, f64::max);
        self.bank.retain(|f| f.w >= PRUNE_WEIGHT * max_w);
        self.bank.sort_by(|a, b| a.x[SOC].total_cmp(&b.x[SOC]));
        let mut i = 0;
        while i + 1 < self.bank.len() {
            let (a, b) = (&self.bank[i], &self.bank[i + 1]);
            let d = a.x - b.x;
            let close = (a.p + b.p).cholesky().is_some_and(|c| d.dot(&c.solve(&d)) < MERGE_DISTANCE_SQ);
            if close || self.bank.len() > MAX_FILTERS {
                let merged = merge(a, b);
                self.bank[i] = merged;
                self.bank.remove(i + 1);
            } else {
                i += 1;
            }
        }
        let total: f64 = self.bank.iter().map(|f| f.w).sum();
        for f in &mut self.bank {
            f.w /= total;
        }
    }

    /// Predicted measurement (terminal voltage + bias) at state `x` and its
    /// Jacobian (the SOC column from the slope of the segment `x` is on).
    fn measurement(&self, slice: &Slice, x: &Vector, current_a: f64) -> (f64, Vector) {
        let n = self.model.cells;
        let e = slice.at(x[SOC]);
        let h = x[HYSTERESIS];
        let mut y = n * (e.ocv.0 + e.m.0 * h + e.r0.0 * current_a) + x[V_RC1] + x[V_RC2];
        let mut jac = Vector::zeros();
        jac[SOC] = n * (e.ocv.1 + e.m.1 * h + e.r0.1 * current_a);
        jac[V_RC1] = 1.0;
        jac[V_RC2] = 1.0;
        jac[HYSTERESIS] = n * e.m.0;
        if self.bias_on {
            y += x[VOLTAGE_BIAS];
            jac[VOLTAGE_BIAS] = 1.0;
        }
        (y, jac)
    }
}

/// The Kalman correction of (`x`, `p`) by a scalar measurement with slope
/// `h`, noise variance `r` and innovation `nu`, covariance in Joseph form
/// `(I − k·hᵀ)·P·(I − k·hᵀ)ᵀ + r·k·kᵀ` written as two rank-one
/// corrections (O(n²)); `None` if the result is unusable.
fn joseph(x: &Vector, p: &Matrix, h: &Vector, r: f64, nu: f64) -> Option<(Vector, Matrix)> {
    let ph = p * h;
    let k = ph / (h.dot(&ph) + r);
    let mut b = *p;
    for i in 0..STATES {
        for j in 0..STATES {
            b[(i, j)] -= k[i] * ph[j];
        }
    }
    let bh = b * h;
    let mut out = b;
    for i in 0..STATES {
        for j in 0..STATES {
            out[(i, j)] += -bh[i] * k[j] + r * k[i] * k[j];
        }
    }
    settle(x + k * nu, out)
}

/// Two filters as one (moment matching).
fn merge(a: &Filter, b: &Filter) -> Filter {
    let w = a.w + b.w;
    let (wa, wb) = if w > 0.0 { (a.w / w, b.w / w) } else { (0.5, 0.5) };
    let x = a.x * wa + b.x * wb;
    let (da, db) = (a.x - x, b.x - x);
    let mut p = a.p * wa + b.p * wb;
    for i in 0..STATES {
        for j in 0..STATES {
            p[(i, j)] += wa * da[i] * da[j] + wb * db[i] * db[j];
        }
    }
    Filter { x, p, w }
}

/// A state and covariance fit to keep, or `None`: clamps SOC and h,
/// symmetrises P, bounds the SOC and h variances (a congruence scaling of
/// their row and column, which keeps P positive definite), and checks that
/// everything is finite with a positive diagonal.
fn settle(mut x: Vector, mut p: Matrix) -> Option<(Vector, Matrix)> {
    x[SOC] = x[SOC].clamp(0.0, 1.0);
    x[HYSTERESIS] = x[HYSTERESIS].clamp(-1.0, 1.0);
    p = (p + p.transpose()) * 0.5;
    for (idx, max_sigma) in [(SOC, MAX_SOC_SIGMA), (HYSTERESIS, 1.0)] {
        let v = p[(idx, idx)];
        if v > max_sigma * max_sigma {
            let c = max_sigma / v.sqrt();
            for j in 0..STATES {
                p[(idx, j)] *= c;
                p[(j, idx)] *= c;
            }
        }
    }
    let ok = x.iter().all(|v| v.is_finite()) && p.iter().all(|v| v.is_finite()) && p.diagonal().min() > 0.0;
    ok.then_some((x, p))
}

fn finite(input: &'static str, value: f64) -> Result<(), TrackerError> {
    if value.is_finite() { Ok(()) } else { Err(TrackerError::NonFinite { input, value }) }
}

#[cfg(test)]
mod tests {
    use rand_distr::{Distribution, StandardNormal};

    use super::*;
    use models::cell::CellParams;
    use models::ocv;
    use models::pack::Pack;
    use models::profile::{CurrentProfile, Interpolation};
    use models::rng::{ModelRng, SeedStreams};

    // What the tests observe of the filter (the product reads only the SOC and its σ).

    /// A point estimate with its 1σ bands (over the whole bank).
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct TrackerEstimate {
        /// SOC (0..1).
        soc: f64,
        /// 1σ of the SOC.
        soc_sigma: f64,
        /// First RC pair's pack voltage (V).
        v_rc1_v: f64,
        /// Second RC pair's pack voltage (V).
        v_rc2_v: f64,
        /// Hysteresis state (−1 discharge branch .. +1 charge branch).
        hysteresis: f64,
        /// Estimated voltage-measurement bias (V): board reading − battery.
        voltage_bias_v: f64,
        /// 1σ of the bias (V).
        voltage_bias_sigma_v: f64,
        /// Filters in the bank (1 once the SOC is pinned).
        filters: usize,
    }

    impl SocTracker {
        /// Mean and covariance of the bank (moment matching).
        fn collapsed(&self) -> (Vector, Matrix) {
            let mean: Vector = self.bank.iter().fold(Vector::zeros(), |acc, f| acc + f.x * f.w);
            let mut p = Matrix::zeros();
            for f in &self.bank {
                let d = f.x - mean;
                for i in 0..STATES {
                    for j in 0..STATES {
                        p[(i, j)] += f.w * (f.p[(i, j)] + d[i] * d[j]);
                    }
                }
            }
            (mean, p)
        }

        /// Terminal voltage (without bias) at state `x`.
        fn terminal_v(&self, slice: &Slice, x: &Vector, current_a: f64) -> f64 {
            let e = slice.at(x[SOC]);
            self.model.cells * (e.ocv.0 + e.m.0 * x[HYSTERESIS] + e.r0.0 * current_a) + x[V_RC1] + x[V_RC2]
        }

        /// The whole estimate.
        fn estimate(&self) -> TrackerEstimate {
            let (soc, soc_var) = self.moments(SOC);
            let (bias, bias_var) = self.moments(VOLTAGE_BIAS);
            TrackerEstimate {
                soc,
                soc_sigma: soc_var.sqrt(),
                v_rc1_v: self.moments(V_RC1).0,
                v_rc2_v: self.moments(V_RC2).0,
                hysteresis: self.moments(HYSTERESIS).0,
                voltage_bias_v: bias,
                voltage_bias_sigma_v: bias_var.sqrt(),
                filters: self.bank.len(),
            }
        }

        /// The covariance of the bank as one Gaussian (order: [`SOC`],
        /// [`V_RC1`], [`V_RC2`], [`HYSTERESIS`], [`VOLTAGE_BIAS`]).
        fn covariance(&self) -> [[f64; STATES]; STATES] {
            let (_, p) = self.collapsed();
            let mut out = [[0.0; STATES]; STATES];
            for (i, row) in out.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = p[(i, j)];
                }
            }
            out
        }

        /// Terminal voltage of the tracked battery while `current_a` flows at
        /// `temp_c` (V), without the estimated measurement bias (the board
        /// should read this plus [`TrackerEstimate::voltage_bias_v`]): the
        /// bank's weighted mean.
        fn voltage_v(&self, current_a: f64, temp_c: f64) -> f64 {
            let fresh;
            let slice = if self.slice.key == self.model.slice_key(temp_c, current_a) {
                &self.slice
            } else {
                fresh = self.model.slice(temp_c, current_a);
                &fresh
            };
            self.bank.iter().map(|f| f.w * self.terminal_v(slice, &f.x, current_a)).sum()
        }
    }

    impl TrackerModel {
        /// Pack OCV at `soc` and `temp_c`, without hysteresis (V).
        fn ocv_v(&self, soc: f64, temp_c: f64) -> f64 {
            self.slice(temp_c, 0.0).at(soc).ocv.0 * self.cells
        }
    }

    const DRIVE_CYCLE: &str = include_str!("../../../scenarios/data/drive-cycle.csv");
    const LFP_ECM: &str = include_str!("../../../scenarios/data/lfp-100ah-ecm.toml");

    /// Settling times to 2 points: measured 42 s (LFP) and 0 s (NMC,
    /// docs/models.md), with a margin for other seeds and polling.
    const LFP_SETTLE_LIMIT_S: f64 = 120.0;
    const NMC_SETTLE_LIMIT_S: f64 = 60.0;
    /// "Within 2 points" of the issue.
    const BAND: f64 = 0.02;

    fn drive_cycle() -> CurrentProfile {
        CurrentProfile::from_csv(DRIVE_CYCLE, Interpolation::Hold).unwrap()
    }

    fn gauss(rng: &mut ModelRng) -> f64 {
        StandardNormal.sample(rng)
    }

    /// A twin and the battery it tracks.
    #[derive(Clone, Copy)]
    struct Case {
        params: PackParams,
        variant: Variant,
        true_soc: f64,
        guess_soc: f64,
        guess_sigma: f64,
        /// Scale of the drive cycle's current (C-rate per capacity).
        current_scale: f64,
        /// Seconds to run (the drive cycle repeats with a 10 s rest).
        duration_s: usize,
        /// The board's voltage error: constant (V) and white 1σ (V).
        true_bias_v: f64,
        true_voltage_sigma_v: f64,
        /// The board's current error: constant (A) and white 1σ (A).
        true_current_offset_a: f64,
        true_current_sigma_a: f64,
        seed: u64,
        noise: TrackerNoise,
    }

    impl Case {
        /// A 12 V LFP pack at the upper knee, the filter 30 points low.
        fn lfp() -> Self {
            let noise = TrackerNoise::datasheet(Variant::V12);
            Case {
                params: PackParams::uniform(CellParams::default()),
                variant: Variant::V12,
                true_soc: 0.95,
                guess_soc: 0.65,
                guess_sigma: 0.3,
                current_scale: 1.0,
                duration_s: 3600,
                true_bias_v: 0.0,
                true_voltage_sigma_v: noise.voltage_sigma_v,
                true_current_offset_a: 0.0,
                true_current_sigma_a: noise.current_sigma_a,
                seed: 1,
                noise,
            }
        }

        /// 7 NMC cells (29.4 V full, inside the 24 V variant's 30 V range)
        /// at 90 %, the filter 30 points low; half the drive cycle's
        /// current for the 50 Ah cell.
        fn nmc() -> Self {
            let noise = TrackerNoise::datasheet(Variant::V24);
            Case {
                params: PackParams { cells_in_series: 7, ..PackParams::uniform(CellParams::nmc()) },
                variant: Variant::V24,
                true_soc: 0.90,
                guess_soc: 0.60,
                current_scale: 0.5,
                true_voltage_sigma_v: noise.voltage_sigma_v,
                noise,
                ..Case::lfp()
            }
        }

        /// The board at the datasheet's limits and a pack with the
        /// default cell spread the filter does not model: a constant
        /// voltage error of 2σ of the bias (2/3 of the 0.1 % FS limit),
        /// the 0.01 % FS current offset (25 mA).
        fn at_datasheet_limits(self) -> Self {
            let params = PackParams {
                cell: self.params.cell,
                cells_in_series: self.params.cells_in_series,
                ..PackParams::default()
            };
            Case {
                params,
                true_bias_v: 2.0 * self.noise.voltage_bias_sigma_v,
                true_current_offset_a: variant::CURRENT_OFFSET_ERROR_PCT_FS / 100.0 * variant::CURRENT_RANGE_A,
                ..self
            }
        }
    }

    /// One row per second after the update.
    #[derive(Clone, Copy, Debug)]
    struct Row {
        t_s: f64,
        truth: f64,
        soc: f64,
        sigma: f64,
    }

    /// Every filter's covariance is symmetric positive definite.
    fn assert_spd(tracker: &SocTracker) {
        for f in &tracker.bank {
            assert!((f.p - f.p.transpose()).amax() <= 1e-12 * f.p.amax(), "asymmetric P");
            assert!(f.p.cholesky().is_some(), "P not positive definite: {}", f.p);
        }
        let w: f64 = tracker.bank.iter().map(|f| f.w).sum();
        assert!((w - 1.0).abs() < 1e-9 && tracker.bank.len() <= MAX_FILTERS);
    }

    fn run(c: &Case) -> Vec<Row> {
        let streams = SeedStreams::new(c.seed);
        let mut pack = Pack::new(&c.params, c.variant, c.true_soc, &mut streams.stream("pack"));
        let model = TrackerModel::from_pack_params(&c.params, c.variant).unwrap();
        let mut tracker = SocTracker::new(model, c.guess_soc, c.guess_sigma, c.noise);
        let mut rng = streams.stream("measurement");
        let profile = drive_cycle();
        let period = profile.end_s() + 10.0;
        let mut hint = 0;
        let mut rows = Vec::with_capacity(c.duration_s);
        for k in 0..c.duration_s {
            let t0 = (k as f64) % period;
            if t0 == 0.0 {
                hint = 0;
            }
            let i = c.current_scale * profile.mean_current_a(t0, t0 + 1.0, &mut hint);
            pack.step(1.0, i);
            let v = pack.terminal_voltage_v(i) + c.true_bias_v + c.true_voltage_sigma_v * gauss(&mut rng);
            let i_meas = i + c.true_current_offset_a + c.true_current_sigma_a * gauss(&mut rng);
            tracker.step(1.0, i_meas, 25.0).unwrap();
            let inn = tracker.update(v, i_meas, 25.0);
            assert!(inn.status == UpdateStatus::Applied && inn.sigma_v > 0.0, "{inn:?}");
            if k % 60 == 0 {
                assert_spd(&tracker);
            }
            rows.push(Row { t_s: (k + 1) as f64, truth: pack.soc(), soc: tracker.soc(), sigma: tracker.soc_sigma() });
        }
        rows
    }

    /// Time after which the estimate stays within `band` of the truth.
    fn settled_s(rows: &[Row], band: f64) -> Option<f64> {
        match rows.iter().rposition(|r| (r.soc - r.truth).abs() > band) {
            None => Some(0.0),
            Some(k) if k + 1 < rows.len() => Some(rows[k].t_s),
            Some(_) => None,
        }
    }

    /// Fraction of rows with the truth inside ±3σ.
    fn inside_3_sigma(rows: &[Row]) -> f64 {
        rows.iter().filter(|r| (r.soc - r.truth).abs() <= 3.0 * r.sigma).count() as f64 / rows.len() as f64
    }

    /// The issue's requirement: settles within 2 points in `limit_s`, stays
    /// there and inside its 3σ band.
    fn assert_converges(name: &str, rows: &[Row], limit_s: f64) {
        let settled = settled_s(rows, BAND).unwrap_or_else(|| panic!("{name}: never within 2 points"));
        assert!(settled <= limit_s, "{name}: within 2 points only after {settled} s");
        let after = &rows[settled as usize..];
        let inside = inside_3_sigma(after);
        assert!(inside == 1.0, "{name}: truth inside 3σ in {inside} of the steps after {settled} s");
        // and before, the band was honest about the error
        assert!(inside_3_sigma(rows) >= 0.99, "{name}: truth inside 3σ in {} of all steps", inside_3_sigma(rows));
    }

    #[test]
    fn datasheet_noise_defaults() {
        // 0.1 % FS of 15/30/60 V and 0.04 % FS of 250 A, as 3σ limits
        for (v, sigma_v) in [(Variant::V12, 0.005), (Variant::V24, 0.010), (Variant::V48, 0.020)] {
            let n = TrackerNoise::datasheet(v);
            assert!((n.voltage_sigma_v - sigma_v).abs() < 1e-15, "{v}");
            assert_eq!(n.voltage_bias_sigma_v, n.voltage_sigma_v);
            assert!((n.current_sigma_a - 0.1 / 3.0).abs() < 1e-15);
            assert!(n.validate().is_ok());
        }
        let bad = TrackerNoise { voltage_sigma_v: 0.0, ..TrackerNoise::datasheet(Variant::V12) };
        assert_eq!(bad.validate().unwrap_err().name, "tracker.voltage_sigma_v");
        let model = || TrackerModel::from_pack_params(&PackParams::default(), Variant::V12).unwrap();
        // `new` repairs instead of failing
        let t = SocTracker::new(model(), f64::NAN, -1.0, bad);
        assert!((t.soc() - 0.5).abs() < 1e-12 && t.noise.voltage_sigma_v == 0.005);
        assert!(t.soc_sigma() > 0.2 && t.soc_sigma().is_finite());
    }

    #[test]
    fn relaxed_prediction_is_the_pack_ocv() {
        let lfp = PackParams::uniform(CellParams::default());
        let nmc = PackParams { cells_in_series: 7, ..PackParams::uniform(CellParams::nmc()) };
        for (params, variant) in [(lfp, Variant::V12), (lfp, Variant::V48), (nmc, Variant::V24)] {
            for temp_c in [25.0, 0.0, 45.0] {
                for soc in [0.05, 0.3, 0.6, 0.97] {
                    let mut pack = Pack::new(&params, variant, soc, &mut SeedStreams::new(0).stream("pack"));
                    pack.set_temperature_c(temp_c);
                    let model = TrackerModel::from_pack_params(&params, variant).unwrap();
                    let t = SocTracker::new(model.clone(), soc, 0.01, TrackerNoise::datasheet(variant));
                    let v = t.voltage_v(0.0, temp_c);
                    assert!((v - pack.terminal_voltage_v(0.0)).abs() < 1e-9, "{variant} {temp_c} °C {soc}");
                    assert!((v - model.ocv_v(soc, temp_c)).abs() < 1e-12);
                }
            }
        }
        // at 25 °C: n × the chemistry's table
        let model = TrackerModel::from_pack_params(&lfp, Variant::V12).unwrap();
        assert!((model.ocv_v(0.6, 25.0) - 4.0 * ocv::LFP.ocv_v(0.6)).abs() < 1e-12);
    }

    #[test]
    fn rc_voltages_decay_as_exp_minus_dt_over_tau() {
        let params = PackParams::uniform(CellParams::default());
        let model = TrackerModel::from_pack_params(&params, Variant::V12).unwrap();
        let mut t = SocTracker::new(model, 0.5, 0.01, TrackerNoise::datasheet(Variant::V12));
        for _ in 0..120 {
            t.step(1.0, -100.0, 25.0).unwrap();
        }
        let e0 = t.estimate();
        assert!(e0.v_rc1_v < -0.05 && e0.v_rc2_v < -0.01, "{e0:?}");
        let mut one = t.clone();
        one.step(7.3, 0.0, 25.0).unwrap();
        let e1 = one.estimate();
        let (tau1, tau2) = (params.cell.tau1_s, params.cell.tau2_s);
        assert!((e1.v_rc1_v - e0.v_rc1_v * (-7.3 / tau1).exp()).abs() < 1e-15);
        assert!((e1.v_rc2_v - e0.v_rc2_v * (-7.3 / tau2).exp()).abs() < 1e-15);
        // exact ZOH: one 100 s step = 100 steps of 1 s = 400 of 0.25 s
        let (mut a, mut b, mut c) = (t.clone(), t.clone(), t);
        a.step(100.0, 0.0, 25.0).unwrap();
        (0..100).for_each(|_| b.step(1.0, 0.0, 25.0).unwrap());
        (0..400).for_each(|_| c.step(0.25, 0.0, 25.0).unwrap());
        for x in [b.estimate(), c.estimate()] {
            assert!((x.v_rc1_v - a.estimate().v_rc1_v).abs() < 1e-15);
            assert!((x.v_rc2_v - a.estimate().v_rc2_v).abs() < 1e-15);
        }
    }

    /// Open loop (no updates) the filter's mean is the pack: same tables,
    /// same equations, same discretisation.
    #[test]
    fn open_loop_prediction_matches_the_pack() {
        let builtin = PackParams::uniform(CellParams::default());
        let nmc = PackParams { cells_in_series: 7, ..PackParams::uniform(CellParams::nmc()) };
        let ecm = EcmParams::from_toml_str(LFP_ECM).unwrap();
        let cases: [(Option<&EcmParams>, PackParams, Variant, f64); 4] = [
            (None, builtin, Variant::V12, 25.0),
            (None, builtin, Variant::V48, 10.0),
            (None, nmc, Variant::V24, 35.0),
            (Some(&ecm), builtin, Variant::V24, 5.0),
        ];
        let profile = drive_cycle();
        for (ecm, params, variant, temp_c) in cases {
            let mut rng = SeedStreams::new(3).stream("pack");
            let (mut pack, model) = match ecm {
                Some(e) => (
                    Pack::from_ecm(e, &params, variant, 0.9, &mut rng).unwrap(),
                    TrackerModel::from_ecm(e, &params, variant).unwrap(),
                ),
                None => (
                    Pack::new(&params, variant, 0.9, &mut rng),
                    TrackerModel::from_pack_params(&params, variant).unwrap(),
                ),
            };
            pack.set_temperature_c(temp_c);
            let mut t = SocTracker::new(model, 0.9, 0.01, TrackerNoise::datasheet(variant));
            let mut hint = 0;
            let mut worst = 0.0f64;
            let mut time = 0.0;
            // 1 s steps with a few long ones (missing rows)
            for k in 0..1800 {
                let dt = if k % 97 == 0 { 7.0 } else { 1.0 };
                let i = profile.mean_current_a(time, time + dt, &mut hint);
                time += dt;
                pack.step(dt, i);
                t.step(dt, i, temp_c).unwrap();
                worst = worst.max((t.voltage_v(i, temp_c) - pack.terminal_voltage_v(i)).abs());
                assert!((t.soc() - pack.soc()).abs() < 1e-12, "{variant} k {k}");
            }
            assert!(worst < 1e-9, "{variant} {temp_c} °C: {worst} V");
        }
    }

    #[test]
    fn lfp_converges_from_30_points_off_at_the_upper_knee() {
        let rows = run(&Case::lfp());
        assert_converges("LFP 12 V, 95 % / guess 65 %", &rows, LFP_SETTLE_LIMIT_S);
    }

    #[test]
    fn nmc_converges_from_30_points_off() {
        let rows = run(&Case::nmc());
        assert_converges("NMC 7s, 90 % / guess 60 %", &rows, NMC_SETTLE_LIMIT_S);
    }

    #[test]
    fn converges_with_a_board_at_the_datasheet_limits() {
        let rows = run(&Case::lfp().at_datasheet_limits());
        assert_converges("LFP at the limits", &rows, LFP_SETTLE_LIMIT_S);
        let rows = run(&Case { duration_s: 1200, ..Case::nmc().at_datasheet_limits() });
        assert_converges("NMC at the limits", &rows, NMC_SETTLE_LIMIT_S);
    }

    /// No model mismatch: the battery, the board's errors and the initial
    /// error are drawn from the filter's own assumptions.
    #[test]
    fn estimation_error_is_consistent() {
        let mut steps = 0;
        let mut inside = 0;
        let mut nees = 0.0;
        for seed in 1..=4u64 {
            for r in run(&consistency_case(seed)) {
                let z = (r.soc - r.truth) / r.sigma;
                steps += 1;
                inside += usize::from(z.abs() <= 3.0);
                nees += z * z;
            }
        }
        let fraction = inside as f64 / steps as f64;
        assert!(fraction >= 0.99, "truth inside 3σ in {fraction} of {steps} steps");
        // conservative, not overconfident: mean normalised error² ≤ 1
        assert!(nees / steps as f64 <= 1.0, "mean NEES {}", nees / steps as f64);
    }

    /// A run with no model mismatch: the battery, the board's errors and the
    /// initial error drawn from the filter's own assumptions, the filter
    /// with its default noise. Odd seeds LFP at 92 %, even seeds NMC at
    /// 75 %; 30 min of the drive cycle.
    fn consistency_case(seed: u64) -> Case {
        let base = if seed % 2 == 0 { Case::nmc() } else { Case::lfp() };
        let mut rng = SeedStreams::new(seed).stream("draws");
        let true_soc = if seed % 2 == 0 { 0.75 } else { 0.92 };
        let guess_sigma = 0.05;
        let noise = base.noise;
        Case {
            true_soc,
            guess_soc: (true_soc + guess_sigma * gauss(&mut rng)).clamp(0.0, 1.0),
            guess_sigma,
            true_bias_v: noise.voltage_bias_sigma_v * gauss(&mut rng),
            duration_s: 1800,
            seed,
            noise,
            ..base
        }
    }

    /// At rest on the LFP plateau the voltage says little: the branch of
    /// the hysteresis (±10 mV a cell) and the board's voltage error are
    /// worth several points, and the filter says so; an NMC pack at rest is
    /// pinned once its slow RC pair has relaxed.
    /// Fraction of `rows` with true SOC below `below` whose error is within
    /// 2σ, and their count and the worst |error|/σ.
    fn coverage_below(rows: &[Row], below: f64) -> (f64, usize, f64) {
        let near: Vec<&Row> = rows.iter().filter(|r| r.truth < below).collect();
        let inside = near.iter().filter(|r| (r.soc - r.truth).abs() <= 2.0 * r.sigma).count();
        let worst = near.iter().map(|r| (r.soc - r.truth).abs() / r.sigma).fold(0.0, f64::max);
        (inside as f64 / near.len().max(1) as f64, near.len(), worst)
    }

    #[test]
    fn issue_17_interval_covers_the_error_near_empty() {
        // A seeded discharge from 25 % to near empty at the board's noise
        // and at the datasheet's limits: |error| ≤ 2σ at ≥ 95 % of the
        // samples below 10 % true SOC.
        for (name, case) in [("lfp", Case::lfp()), ("lfp at limits", Case::lfp().at_datasheet_limits())] {
            for seed in [1, 2, 3] {
                let c = Case { true_soc: 0.25, guess_soc: 0.25, guess_sigma: 0.05, duration_s: 1900, seed, ..case };
                let rows = run(&c);
                let last = rows.last().unwrap();
                let (covered, n, worst) = coverage_below(&rows, 0.10);
                eprintln!(
                    "{name} seed {seed}: {n} s below 10 %, {:.1} % within 2σ, worst {worst:.1}σ; end truth {:.3} est {:.3} ± {:.4}",
                    100.0 * covered,
                    last.truth,
                    last.soc,
                    last.sigma
                );
                assert!(
                    n > 300 && last.truth > 0.005,
                    "{name}: reaches near empty ({n} s below 10 %, ends at {:.3})",
                    last.truth
                );
                assert!(covered >= 0.95, "{name} seed {seed}: {:.1} % within 2σ", 100.0 * covered);
            }
        }
    }

    #[test]
    fn lfp_plateau_at_rest_stays_uncertain() {
        for (c, min_sigma, max_sigma_after_5_min) in [(Case::lfp(), 0.05, 1.0), (Case::nmc(), 0.0, 0.01)] {
            let streams = SeedStreams::new(5);
            let mut pack = Pack::new(&c.params, c.variant, 0.45, &mut streams.stream("pack"));
            let model = TrackerModel::from_pack_params(&c.params, c.variant).unwrap();
            let mut t = SocTracker::new(model, 0.6, 0.3, c.noise);
            let mut rng = streams.stream("measurement");
            for k in 1..=900 {
                pack.step(1.0, 0.0);
                t.step(1.0, 0.0, 25.0).unwrap();
                t.update(pack.terminal_voltage_v(0.0) + c.noise.voltage_sigma_v * gauss(&mut rng), 0.0, 25.0);
                let (err, sigma) = (t.soc() - pack.soc(), t.soc_sigma());
                let chem = c.params.cell.chemistry;
                assert!(err.abs() <= 3.0 * sigma, "{chem:?}, {k} s: error {err}, σ {sigma}");
                assert!(sigma > min_sigma, "{chem:?} at rest, {k} s: σ {sigma}");
                assert!(k < 300 || sigma < max_sigma_after_5_min, "{chem:?} at rest, {k} s: σ {sigma}");
            }
        }
    }

    /// A board polled irregularly: steps of 0.5–3 s, one row in ten lost
    /// (its time added to the next step), a NaN voltage now and then.
    #[test]
    fn irregular_polling_and_lost_rows() {
        let c = Case::lfp();
        let streams = SeedStreams::new(9);
        let mut pack = Pack::new(&c.params, c.variant, c.true_soc, &mut streams.stream("pack"));
        let model = TrackerModel::from_pack_params(&c.params, c.variant).unwrap();
        let mut t = SocTracker::new(model, c.guess_soc, c.guess_sigma, c.noise);
        let mut rng = streams.stream("measurement");
        let profile = drive_cycle();
        let (mut hint, mut time, mut pending) = (0, 0.0, 0.0);
        let mut rows = Vec::new();
        while time < 3000.0 {
            let u: f64 = rand::RngExt::random(&mut rng);
            let dt = 0.5 + 2.5 * u;
            let i = profile.mean_current_a(time, time + dt, &mut hint);
            time += dt;
            pack.step(dt, i);
            pending += dt;
            let v = pack.terminal_voltage_v(i) + c.noise.voltage_sigma_v * gauss(&mut rng);
            if rows.len() % 10 == 9 {
                rows.push(Row { t_s: time, truth: pack.soc(), soc: t.soc(), sigma: t.soc_sigma() });
                continue; // lost row
            }
            // the board's current over the gap: the charge-exact mean
            let i_gap = profile.mean_current_a(time - pending, time, &mut 0);
            t.step(pending, i_gap, 25.0).unwrap();
            pending = 0.0;
            let v = if rows.len() % 37 == 0 { f64::NAN } else { v };
            let inn = t.update(v, i, 25.0);
            assert_eq!(inn.status == UpdateStatus::Applied, v.is_finite());
            rows.push(Row { t_s: time, truth: pack.soc(), soc: t.soc(), sigma: t.soc_sigma() });
        }
        let settled = settled_s(&rows, BAND).expect("never within 2 points");
        assert!(settled <= LFP_SETTLE_LIMIT_S, "within 2 points after {settled} s");
        assert!(inside_3_sigma(&rows) >= 0.99, "{}", inside_3_sigma(&rows));
    }

    /// One line of the convergence table: settling time to 2 points, the
    /// fraction of steps with the truth inside 3σ (all; after settling),
    /// mean normalised error², σ at 10 min and at the end.
    fn figures(name: &str, rows: &[Row]) -> String {
        let settled = settled_s(rows, BAND);
        let after = &rows[settled.map_or(rows.len() - 1, |t| t as usize)..];
        let nees = rows.iter().map(|r| ((r.soc - r.truth) / r.sigma).powi(2)).sum::<f64>() / rows.len() as f64;
        let at = |t: usize| rows[t.min(rows.len()) - 1];
        format!(
            "| {name} | {} | {:.1} | {:.1} | {nees:.2} | {:.1} / {:.1} | {:.1} / {:.1} |",
            settled.map_or("never".into(), |t| format!("{t:.0}")),
            100.0 * inside_3_sigma(rows),
            100.0 * inside_3_sigma(after),
            100.0 * (at(600).soc - at(600).truth),
            100.0 * at(600).sigma,
            100.0 * (at(rows.len()).soc - at(rows.len()).truth),
            100.0 * at(rows.len()).sigma,
        )
    }

    /// `cargo test --release -p hil-rig --lib -- --ignored --nocapture convergence_figures`
    #[test]
    #[ignore = "prints the convergence table of docs/models.md"]
    fn convergence_figures() {
        let plateau = Case { true_soc: 0.60, guess_soc: 0.30, ..Case::lfp() };
        let low = Case { true_soc: 0.30, guess_soc: 0.60, current_scale: 0.5, ..Case::lfp() };
        let nmc_mid = Case { true_soc: 0.50, guess_soc: 0.80, ..Case::nmc() };
        let two = Case { duration_s: 7200, ..Case::lfp() };
        let cases = [
            ("LFP 12 V, 95 % (guess 65 %)", Case::lfp()),
            ("LFP 12 V, 95 % (guess 65 %), 2 h", two),
            ("LFP 12 V, 60 % (guess 30 %)", plateau),
            ("LFP 12 V, 30 % (guess 60 %), half current", low),
            ("NMC 7s 24 V, 90 % (guess 60 %)", Case::nmc()),
            ("NMC 7s 24 V, 50 % (guess 80 %)", nmc_mid),
            ("limits: LFP 12 V, 95 % (guess 65 %)", Case::lfp().at_datasheet_limits()),
            ("limits: LFP 12 V, 95 % (guess 65 %), 2 h", two.at_datasheet_limits()),
            ("limits: LFP 12 V, 60 % (guess 30 %)", plateau.at_datasheet_limits()),
            ("limits: NMC 7s 24 V, 90 % (guess 60 %)", Case::nmc().at_datasheet_limits()),
            ("limits: NMC 7s 24 V, 50 % (guess 80 %)", nmc_mid.at_datasheet_limits()),
        ];
        println!(
            "| case | within 2 points after (s) | truth in 3σ, all (%) | after (%) | mean NEES | error / σ at 10 min (points) | at the end |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (name, c) in cases {
            let rows = run(&c);
            println!("{}", figures(name, &rows));
            assert!(inside_3_sigma(&rows) >= 0.99, "{name}");
        }
        let mut steps = 0;
        let mut inside = 0;
        let mut nees = 0.0;
        for seed in 1..=20u64 {
            let c = consistency_case(seed);
            let rows = run(&c);
            println!(
                "{}",
                figures(
                    &format!("seed {seed}: {:.0} % (guess {:.1} %)", 100.0 * c.true_soc, 100.0 * c.guess_soc),
                    &rows
                )
            );
            for r in rows {
                let z = (r.soc - r.truth) / r.sigma;
                steps += 1;
                inside += usize::from(z.abs() <= 3.0);
                nees += z * z;
            }
        }
        println!(
            "consistency, 20 seeds: inside 3σ {:.2} %, mean NEES {:.2}",
            100.0 * inside as f64 / steps as f64,
            nees / steps as f64
        );
        assert!(inside as f64 >= 0.99 * steps as f64 && nees <= steps as f64);
        // cost of step + update: a full bank (σ 0.3, at rest on the plateau) and one filter
        let model = TrackerModel::from_pack_params(&Case::lfp().params, Variant::V12).unwrap();
        for (sigma, what) in [(0.3, "bank"), (0.01, "one filter")] {
            let mut t = SocTracker::new(model.clone(), 0.5, sigma, Case::lfp().noise);
            let filters = t.bank.len();
            let start = std::time::Instant::now();
            for k in 0..1000 {
                t.step(1.0, -1e-3 * f64::from(k % 7), 25.0).unwrap();
                t.update(13.18, 0.0, 25.0);
            }
            let us = start.elapsed().as_secs_f64() * 1e3;
            println!("cost, {what} ({filters} → {} filters): {us:.1} µs per step + update", t.bank.len());
        }
    }

    #[test]
    fn bad_inputs_leave_the_state_alone() {
        let model = TrackerModel::from_pack_params(&PackParams::default(), Variant::V24).unwrap();
        let mut t = SocTracker::new(model, 0.7, 0.3, TrackerNoise::datasheet(Variant::V24));
        t.step(1.0, -50.0, 25.0).unwrap();
        t.update(26.3, -50.0, 25.0);
        let before = (t.estimate(), t.covariance());
        let same = |t: &SocTracker| assert_eq!((t.estimate(), t.covariance()), before);
        for (dt, i, temp) in [(f64::NAN, 1.0, 25.0), (1.0, f64::INFINITY, 25.0), (1.0, 1.0, f64::NAN)] {
            assert!(matches!(t.step(dt, i, temp), Err(TrackerError::NonFinite { .. })));
            same(&t);
        }
        for dt in [0.0, -1.0] {
            assert_eq!(t.step(dt, 1.0, 25.0), Err(TrackerError::NonPositiveStep { dt_s: dt }));
            same(&t);
        }
        for (v, i, temp, input) in [
            (f64::NAN, 1.0, 25.0, "measured_voltage_v"),
            (26.0, f64::NAN, 25.0, "current_a"),
            (26.0, 1.0, f64::NEG_INFINITY, "temp_c"),
        ] {
            let inn = t.update(v, i, temp);
            assert!(
                matches!(inn.status, UpdateStatus::Rejected(TrackerError::NonFinite { input: got, .. }) if got == input)
            );
            assert_ne!(inn.status, UpdateStatus::Applied);
            same(&t);
        }
        let e = t.step(f64::NAN, 1.0, 25.0).unwrap_err();
        assert!(e.to_string().contains("dt_s") && e.to_string().contains("NaN"), "{e}");
        // absurd but finite values are used and leave a finite, bounded state
        t.update(1e6, 1e5, 25.0);
        t.step(1e7, -1e5, 200.0).unwrap();
        t.update(-1e6, 0.0, -300.0);
        let e = t.estimate();
        assert!((0.0..=1.0).contains(&e.soc) && e.soc_sigma.is_finite() && e.soc_sigma <= MAX_SOC_SIGMA);
        assert_spd(&t);
    }
}
