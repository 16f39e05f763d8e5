//! A series string of cells with manufacturing spread, temperature and
//! ageing.
//!
//! # Equations (per cell, + = charge)
//!
//! ```text
//! x     = 1 − (1 − soc)/f_Q(T)                SOC the tables are read at
//! v     = OCV(x,T) + M(x)·h + v1 + v2 + I·R0(x,T,I)
//! dsoc  = (η·I⁺ + I⁻)·dt/(3600·Q·SOH) − k_sd(T)·dt
//! dvk/dt = −vk/τk + I/Ck,   τk = Rk·Ck          k = 1, 2
//! dh/dt = −γ·|I|/(3600·Q)·(h − sgn I)
//! ```
//!
//! # Discretisation
//!
//! With I held over a step (zero-order hold) and the element values taken
//! at the start of the step, each linear state has its exact update
//!
//! ```text
//! vk' = ak·vk + (1 − ak)·Rk·I,  ak = exp(−dt/τk)
//! h'  = ah·h + (1 − ah)·sgn I,  ah = exp(−γ·|I|·dt/(3600·Q))
//! ```
//!
//! the closed form of `x' = A·x + B·u` with a diagonal `A`: the matrix
//! exponential `exp(A·dt)` is the diagonal of `ak`, and `∫exp(Aτ)dτ·B` is
//! `(1 − ak)·Rk`. So a 1 s step and a thousand 1 ms steps give the same
//! answer for a constant current, up to the slow drift of the element
//! values with SOC. `exp` is evaluated only when `dt` or `|I|` changes
//! (constant τ, the built-in cells) or per cell and step (τ from R·C
//! tables).
//!
//! Temperature enters through [`Pack::set_temperature_c`], which re-slices
//! the tables at the new temperature (call it at the thermal model's rate);
//! ageing through [`AgeingParams`] and the counters the step keeps.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::cell::{Cell, CellParams, SECONDS_PER_HOUR};
use crate::decay::{Decay, decay_factor};
use crate::ecm::{self, EcmParams, Tables};
use crate::error::{self, ParamError};
use crate::table::{self, Table};
use crate::variant::Variant;

/// Default 1σ relative spread of cell capacity within a pack (1 %, typical
/// of a matched/graded lot of prismatic LFP cells).
pub const DEFAULT_CAPACITY_SPREAD_REL: f64 = 0.01;
/// Default 1σ relative spread of cell resistance within a pack (3 %).
pub const DEFAULT_R0_SPREAD_REL: f64 = 0.03;
/// Default 1σ spread of the initial cell SOC around the pack SOC (0.5 %
/// SOC, an unbalanced-but-assembled pack).
pub const DEFAULT_SOC_SPREAD: f64 = 0.005;

/// A drawn relative factor is kept at or above this, so that an extreme
/// draw (or an absurd spread) cannot make a capacity or resistance ≤ 0.
const MIN_SPREAD_FACTOR: f64 = 0.05;

/// Ageing of the cells: capacity fade and resistance growth, each the sum
/// of a cycle term (linear in full equivalent cycles, FEC = Ah throughput /
/// (2·capacity)) and a calendar term (∝ √time, time accelerated by an
/// Arrhenius factor in temperature).
///
/// Defaults: LFP that keeps 80 % capacity after 6000 FEC with +30 %
/// resistance, and loses ≈ 2 % capacity and gains ≈ 3 % resistance per √year
/// at 25 °C — typical of datasheet cycle-life and storage figures of
/// prismatic LFP.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgeingParams {
    /// Full equivalent cycles done before the simulation starts.
    pub initial_efc: f64,
    /// Calendar age at 25 °C before the simulation starts (days).
    pub initial_age_days: f64,
    /// Capacity lost per FEC (fraction).
    pub capacity_fade_per_efc: f64,
    /// Capacity lost per √day at 25 °C (fraction).
    pub capacity_fade_per_sqrt_day: f64,
    /// Resistance gained per FEC (fraction).
    pub resistance_growth_per_efc: f64,
    /// Resistance gained per √day at 25 °C (fraction).
    pub resistance_growth_per_sqrt_day: f64,
    /// Activation energy of calendar ageing (J/mol): ≈ 50 kJ/mol, so it
    /// roughly doubles every 10 K.
    pub calendar_activation_j_per_mol: f64,
}

impl Default for AgeingParams {
    fn default() -> Self {
        Self {
            initial_efc: 0.0,
            initial_age_days: 0.0,
            capacity_fade_per_efc: 0.20 / 6000.0,
            capacity_fade_per_sqrt_day: 0.02 / 365.0_f64.sqrt(),
            resistance_growth_per_efc: 0.30 / 6000.0,
            resistance_growth_per_sqrt_day: 0.03 / 365.0_f64.sqrt(),
            calendar_activation_j_per_mol: 50_000.0,
        }
    }
}

impl AgeingParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::non_negative("ageing.initial_efc", self.initial_efc)?;
        error::non_negative("ageing.initial_age_days", self.initial_age_days)?;
        error::non_negative("ageing.capacity_fade_per_efc", self.capacity_fade_per_efc)?;
        error::non_negative("ageing.capacity_fade_per_sqrt_day", self.capacity_fade_per_sqrt_day)?;
        error::non_negative("ageing.resistance_growth_per_efc", self.resistance_growth_per_efc)?;
        error::non_negative("ageing.resistance_growth_per_sqrt_day", self.resistance_growth_per_sqrt_day)?;
        error::non_negative("ageing.calendar_activation_j_per_mol", self.calendar_activation_j_per_mol)
    }

    /// No ageing at all.
    pub fn none() -> Self {
        Self {
            capacity_fade_per_efc: 0.0,
            capacity_fade_per_sqrt_day: 0.0,
            resistance_growth_per_efc: 0.0,
            resistance_growth_per_sqrt_day: 0.0,
            ..Self::default()
        }
    }

    /// (capacity health, resistance growth factor) after `efc` cycles and
    /// `age_days` equivalent days at 25 °C. Health is kept ≥ 0.05.
    pub fn state(&self, efc: f64, age_days: f64) -> (f64, f64) {
        let sq = age_days.max(0.0).sqrt();
        let fade = self.capacity_fade_per_efc * efc + self.capacity_fade_per_sqrt_day * sq;
        let growth = self.resistance_growth_per_efc * efc + self.resistance_growth_per_sqrt_day * sq;
        ((1.0 - fade).max(0.05), 1.0 + growth)
    }
}

/// Parameters of the battery pack.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PackParams {
    /// The nominal cell.
    pub cell: CellParams,
    /// Cells in series; 0 takes the variant's count (4/8/16 LiFePO4).
    pub cells_in_series: usize,
    /// 1σ relative spread of cell capacity.
    pub capacity_spread_rel: f64,
    /// 1σ relative spread of cell resistance (R0, R1 and R2 together).
    pub r0_spread_rel: f64,
    /// 1σ spread of initial cell SOC around the pack SOC (absolute, 0..1 scale).
    pub soc_spread: f64,
    /// Ageing of the cells.
    pub ageing: AgeingParams,
}

impl Default for PackParams {
    fn default() -> Self {
        Self {
            cell: CellParams::default(),
            cells_in_series: 0,
            capacity_spread_rel: DEFAULT_CAPACITY_SPREAD_REL,
            r0_spread_rel: DEFAULT_R0_SPREAD_REL,
            soc_spread: DEFAULT_SOC_SPREAD,
            ageing: AgeingParams::default(),
        }
    }
}

impl PackParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.cell.validate()?;
        error::non_negative("capacity_spread_rel", self.capacity_spread_rel)?;
        error::non_negative("r0_spread_rel", self.r0_spread_rel)?;
        error::non_negative("soc_spread", self.soc_spread)?;
        self.ageing.validate()?;
        EcmParams::from_cell(&self.cell).validate()
    }

    /// Number of cells for `variant` (`cells_in_series`, or the variant's
    /// count when that is 0).
    pub fn cells_for(&self, variant: Variant) -> usize {
        if self.cells_in_series == 0 { variant.cells_in_series() } else { self.cells_in_series }
    }

    /// Number of cells of a pack of the external parameter set `ecm` (its
    /// `cells_in_series`, unless 0) or, without one or with 0, [`Self::cells_for`].
    pub fn cells_with(&self, ecm: Option<&EcmParams>, variant: Variant) -> usize {
        match ecm {
            Some(e) if e.cells_in_series != 0 => e.cells_in_series,
            _ => self.cells_for(variant),
        }
    }

    /// No spread, no ageing: every cell is the nominal cell.
    pub fn uniform(cell: CellParams) -> Self {
        Self {
            cell,
            capacity_spread_rel: 0.0,
            r0_spread_rel: 0.0,
            soc_spread: 0.0,
            ageing: AgeingParams::none(),
            ..Self::default()
        }
    }
}

/// A table sliced at one temperature: values on the pack's SOC axis, one
/// row per current breakpoint (one row if it does not depend on current).
#[derive(Clone, Debug, Default)]
struct Quantity {
    rows: usize,
    v: Vec<f64>,
}

impl Quantity {
    fn fill(&mut self, t: &Table, temp_c: f64, soc_axis: &[f64]) {
        t.slice_at_temp(temp_c, soc_axis, &mut self.v);
        self.rows = t.current_axis().len();
    }

    #[inline(always)]
    fn at(&self, n: usize, loc: &Loc) -> f64 {
        let s = loc.is;
        if self.rows == 1 {
            let a = self.v[s];
            a + loc.fs * (self.v[s + 1] - a)
        } else {
            let r0 = loc.ic * n;
            let r1 = (loc.ic + 1).min(self.rows - 1) * n;
            let lo = self.v[r0 + s] + loc.fs * (self.v[r0 + s + 1] - self.v[r0 + s]);
            let hi = self.v[r1 + s] + loc.fs * (self.v[r1 + s + 1] - self.v[r1 + s]);
            lo + loc.fc * (hi - lo)
        }
    }
}

/// Where a cell sits in the slice.
#[derive(Clone, Copy, Debug)]
struct Loc {
    is: usize,
    fs: f64,
    ic: usize,
    fc: f64,
}

/// The tables at the present temperature.
#[derive(Clone, Debug)]
struct Slice {
    soc: Vec<f64>,
    inv_ds: Vec<f64>,
    current_a: Vec<f64>,
    ocv: Quantity,
    r0: Quantity,
    rc_r: [Quantity; 2],
    rc_x: [Quantity; 2],
    hyst: Quantity,
    entropic: Quantity,
    /// Constant τ of each RC pair, if its table is a constant τ.
    tau_const: [Option<f64>; 2],
    /// The second table of each RC pair is C (τ = R·C), not τ.
    x_is_c: [bool; 2],
    inv_cap_factor: f64,
    /// The common case, packed per SOC segment for one cache line per
    /// lookup: `[ocv, Δocv, M, ΔM, R0, ΔR0, R1, ΔR1, R2, ΔR2]` (Δ = value at
    /// the segment's end minus its start). Present when nothing depends on
    /// current and every τ is constant.
    fast: Vec<[f64; FAST_WIDTH]>,
    use_fast: bool,
}

/// Values per segment in [`Slice::fast`].
const FAST_WIDTH: usize = 10;

impl Slice {
    /// Fills [`Slice::fast`] if the slice qualifies.
    fn build_fast(&mut self, n_rc: usize) {
        let mut qs: Vec<&Quantity> = vec![&self.ocv, &self.hyst, &self.r0];
        for k in 0..n_rc {
            qs.push(&self.rc_r[k]);
        }
        self.use_fast = qs.iter().all(|q| q.rows == 1) && (0..n_rc).all(|k| self.tau_const[k].is_some());
        self.fast.clear();
        if !self.use_fast {
            return;
        }
        let n = self.soc.len();
        let zero = Quantity { rows: 1, v: vec![0.0; n] };
        let cols = [
            &self.ocv,
            &self.hyst,
            &self.r0,
            if n_rc > 0 { &self.rc_r[0] } else { &zero },
            if n_rc > 1 { &self.rc_r[1] } else { &zero },
        ];
        for i in 0..n - 1 {
            let mut row = [0.0; FAST_WIDTH];
            for (k, q) in cols.iter().enumerate() {
                row[2 * k] = q.v[i];
                row[2 * k + 1] = q.v[i + 1] - q.v[i];
            }
            self.fast.push(row);
        }
    }
}

/// A series string of cells.
#[derive(Clone, Debug)]
pub struct Pack {
    cells: Vec<Cell>,
    tables: Tables,
    slice: Slice,
    n_rc: usize,
    has_hysteresis: bool,
    temp_c: f64,
    decay: [Decay; 2],
    /// γ / (3600·Q_nominal): hysteresis decay per coulomb.
    hyst_per_coulomb: f64,
    hyst_cache: (u64, f64),
    cur_hint: usize,
    self_discharge_per_s: f64,
    ageing: AgeingParams,
    nominal_capacity_ah: f64,
    throughput_ah: f64,
    age_eq_s: f64,
    age_rate: f64,
    health: f64,
    growth: f64,
    last_current_a: f64,
    rest_v: f64,
    r0_total_ohm: f64,
}

impl Pack {
    /// Builds a pack of the built-in cell `params.cell` for `variant` at
    /// `initial_soc` and 25 °C (call [`Pack::set_temperature_c`] for
    /// another), drawing each cell's capacity, resistance and initial SOC
    /// from `rng` (the scenario's "pack" stream). For every cell, in order,
    /// exactly three standard normals are drawn (capacity, resistance,
    /// SOC), whether or not the spreads are zero, so changing one spread
    /// does not reshuffle the others.
    ///
    /// Panics if `params` fails [`PackParams::validate`].
    pub fn new<R: Rng + ?Sized>(params: &PackParams, variant: Variant, initial_soc: f64, rng: &mut R) -> Pack {
        Self::from_ecm(&EcmParams::from_cell(&params.cell), params, variant, initial_soc, rng)
            .expect("PackParams::validate() accepts the built-in cell")
    }

    /// Builds a pack of the external equivalent circuit `ecm` (its
    /// `cells_in_series`, or `params.cells_for(variant)` when that is 0);
    /// spread and ageing from `params` (`params.cell` is not used).
    pub fn from_ecm<R: Rng + ?Sized>(
        ecm: &EcmParams,
        params: &PackParams,
        variant: Variant,
        initial_soc: f64,
        rng: &mut R,
    ) -> Result<Pack, ParamError> {
        let tables = ecm.compile()?;
        if ecm.soc.len() < 2 {
            return Err(ParamError { name: "soc", value: 1.0, requirement: "at least two breakpoints" });
        }
        params.ageing.validate()?;
        let n = params.cells_with(Some(ecm), variant);
        let initial_soc = initial_soc.clamp(0.0, 1.0);
        let cells: Vec<Cell> = (0..n)
            .map(|_| {
                let z_cap: f64 = StandardNormal.sample(rng);
                let z_r: f64 = StandardNormal.sample(rng);
                let z_soc: f64 = StandardNormal.sample(rng);
                let cap = tables.capacity_ah * (1.0 + params.capacity_spread_rel * z_cap).max(MIN_SPREAD_FACTOR);
                let rf = (1.0 + params.r0_spread_rel * z_r).max(MIN_SPREAD_FACTOR);
                Cell::new(initial_soc + params.soc_spread * z_soc, cap, rf)
            })
            .collect();
        let mut soc_axes: Vec<&[f64]> = vec![tables.ocv.soc_axis(), tables.r0.soc_axis()];
        for rc in &tables.rc {
            soc_axes.push(rc.r.soc_axis());
            soc_axes.push(rc.x.soc_axis());
        }
        for t in tables.hysteresis.iter().chain(tables.entropic.iter()) {
            soc_axes.push(t.soc_axis());
        }
        let mut soc_axis = table::union_axis(&soc_axes);
        if soc_axis.len() < 2 {
            soc_axis = vec![0.0, 1.0];
        }
        let inv_ds = soc_axis.windows(2).map(|w| 1.0 / (w[1] - w[0])).collect();
        let n_rc = tables.rc.len();
        let slice = Slice {
            soc: soc_axis,
            inv_ds,
            current_a: ecm.current_a.clone(),
            ocv: Quantity::default(),
            r0: Quantity::default(),
            rc_r: Default::default(),
            rc_x: Default::default(),
            hyst: Quantity::default(),
            entropic: Quantity::default(),
            tau_const: [None; 2],
            x_is_c: [false; 2],
            inv_cap_factor: 1.0,
            fast: Vec::new(),
            use_fast: false,
        };
        let (efc0, age0) = (params.ageing.initial_efc, params.ageing.initial_age_days);
        let mut pack = Pack {
            has_hysteresis: tables.hysteresis.is_some() && tables.hysteresis_rate > 0.0,
            hyst_per_coulomb: tables.hysteresis_rate / (tables.capacity_ah * SECONDS_PER_HOUR),
            nominal_capacity_ah: tables.capacity_ah,
            throughput_ah: efc0 * 2.0 * tables.capacity_ah,
            age_eq_s: age0 * 86_400.0,
            cells,
            tables,
            slice,
            n_rc,
            temp_c: f64::NAN,
            decay: [Decay::new(0.0), Decay::new(0.0)],
            hyst_cache: (f64::NAN.to_bits(), 1.0),
            cur_hint: 0,
            self_discharge_per_s: 0.0,
            ageing: params.ageing,
            age_rate: 1.0,
            health: 1.0,
            growth: 1.0,
            last_current_a: 0.0,
            rest_v: 0.0,
            r0_total_ohm: 0.0,
        };
        pack.set_temperature_c(ecm::T_REF_C);
        Ok(pack)
    }

    /// Sets the cell temperature (°C, common to the string): re-slices the
    /// tables, the usable capacity, self-discharge and calendar-ageing
    /// rates, and applies the ageing accumulated so far. Costs O(table
    /// size) when the temperature changed; call it at the thermal rate.
    pub fn set_temperature_c(&mut self, temp_c: f64) {
        if temp_c.to_bits() != self.temp_c.to_bits() {
            self.temp_c = temp_c;
            let t = &self.tables;
            let s = &mut self.slice;
            s.ocv.fill(&t.ocv, temp_c, &s.soc);
            s.r0.fill(&t.r0, temp_c, &s.soc);
            for (k, rc) in t.rc.iter().enumerate() {
                s.rc_r[k].fill(&rc.r, temp_c, &s.soc);
                s.rc_x[k].fill(&rc.x, temp_c, &s.soc);
                s.x_is_c[k] = !rc.x_is_tau;
                s.tau_const[k] = (rc.x_is_tau && rc.x.is_constant()).then(|| rc.x.eval(0.0, 0.0, 0.0));
                if let Some(tau) = s.tau_const[k] {
                    self.decay[k] = Decay::new(tau);
                }
            }
            match &t.hysteresis {
                Some(h) => s.hyst.fill(h, temp_c, &s.soc),
                None => s.hyst.fill(&Table::constant(0.0), temp_c, &s.soc),
            }
            match &t.entropic {
                Some(e) => s.entropic.fill(e, temp_c, &s.soc),
                None => {
                    // dOCV/dT of the OCV table, central difference over ±0.5 K.
                    let mut hi = Vec::new();
                    let mut lo = Vec::new();
                    t.ocv.slice_at_temp(temp_c + 0.5, &s.soc, &mut hi);
                    t.ocv.slice_at_temp(temp_c - 0.5, &s.soc, &mut lo);
                    s.entropic.v = hi.iter().zip(&lo).map(|(a, b)| a - b).collect();
                    s.entropic.rows = t.ocv.current_axis().len();
                }
            }
            let cap_factor = match &t.capacity_factor {
                Some((temps, f)) => {
                    let (i, fr) = table::locate(temps, temp_c, 0);
                    let j = (i + 1).min(f.len() - 1);
                    f[i] + fr * (f[j] - f[i])
                }
                None => 1.0,
            };
            s.inv_cap_factor = 1.0 / cap_factor;
            s.build_fast(self.n_rc);
            self.self_discharge_per_s = t.self_discharge_per_s * 2f64.powf((temp_c - ecm::T_REF_C) / 10.0);
            self.age_rate = 1.0 / ecm::arrhenius(self.ageing.calendar_activation_j_per_mol, temp_c);
        }
        self.refresh_ageing();
    }

    /// Applies the ageing accumulated so far (throughput and calendar time)
    /// to every cell's capacity and resistances.
    pub fn refresh_ageing(&mut self) {
        let (health, growth) = self.ageing.state(self.efc(), self.age_eq_s / 86_400.0);
        self.health = health;
        self.growth = growth;
        for c in &mut self.cells {
            c.soc_per_coulomb = 1.0 / (c.capacity_ah * health * SECONDS_PER_HOUR);
            c.r_scale = c.r_factor * growth;
        }
        self.evaluate(self.last_current_a);
    }

    /// Index and fraction of `current_a` on the tables' current axis (0, 0 without one).
    fn locate_current(&mut self, current_a: f64) -> (usize, f64) {
        if self.slice.current_a.len() > 1 {
            let (i, f) = table::locate(&self.slice.current_a, current_a, self.cur_hint);
            self.cur_hint = i;
            (i, f)
        } else {
            (0, 0.0)
        }
    }

    /// Re-evaluates every cell's elements at its state and `current_a`.
    fn evaluate(&mut self, current_a: f64) {
        let (ic, fc) = self.locate_current(current_a);
        let mut rest_v = 0.0;
        let mut r0_total = 0.0;
        for cell in &mut self.cells {
            evaluate_cell(&self.slice, self.n_rc, cell, ic, fc);
            rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
            r0_total += cell.r0_ohm;
        }
        self.rest_v = rest_v;
        self.r0_total_ohm = r0_total;
    }

    /// Advances every cell by `dt_s` with `current_a` (> 0 charges) held
    /// constant (see the module doc for the update). Allocation-free.
    pub fn step(&mut self, dt_s: f64, current_a: f64) {
        let charge_c = current_a * dt_s;
        let stored_c = if current_a > 0.0 { charge_c * self.tables.coulombic_efficiency } else { charge_c };
        let dsoc_leak = self.self_discharge_per_s * dt_s;
        // Hysteresis: pack-level factor (nominal capacity), cached on |I|·dt.
        let (ah, target) = if self.has_hysteresis && current_a != 0.0 {
            let k = charge_c.abs();
            if k.to_bits() != self.hyst_cache.0 {
                self.hyst_cache = (k.to_bits(), exp_neg(k * self.hyst_per_coulomb));
            }
            (self.hyst_cache.1, current_a.signum())
        } else {
            (1.0, 0.0)
        };
        let a_const = [
            self.slice.tau_const[0].map(|_| self.decay[0].factor(dt_s)),
            self.slice.tau_const[1].map(|_| self.decay[1].factor(dt_s)),
        ];
        self.throughput_ah += charge_c.abs() / SECONDS_PER_HOUR;
        self.age_eq_s += dt_s * self.age_rate;
        let (ic, fc) = self.locate_current(current_a);
        let n_rc = self.n_rc;
        let mut rest_v = 0.0;
        let mut r0_total = 0.0;
        if self.slice.use_fast {
            let s = &self.slice;
            let (a1, a2) = (a_const[0].unwrap_or(1.0), a_const[1].unwrap_or(1.0));
            let (b1, b2) = ((1.0 - a1) * current_a, (1.0 - a2) * current_a);
            let bh = (1.0 - ah) * target;
            for cell in &mut self.cells {
                cell.v_rc1_v = a1 * cell.v_rc1_v + b1 * cell.r1_ohm;
                cell.v_rc2_v = a2 * cell.v_rc2_v + b2 * cell.r2_ohm;
                cell.hysteresis = ah * cell.hysteresis + bh;
                cell.soc = (cell.soc + stored_c * cell.soc_per_coulomb - dsoc_leak).clamp(0.0, 1.0);
                let x = 1.0 - (1.0 - cell.soc) * s.inv_cap_factor;
                let is = table::locate_segment(&s.soc, x, cell.hint);
                cell.hint = is;
                let fs = ((x - s.soc[is]) * s.inv_ds[is]).clamp(0.0, 1.0);
                let row = &s.fast[is];
                cell.ocv_v = row[0] + fs * row[1];
                cell.hyst_v = row[2] + fs * row[3];
                cell.r0_ohm = (row[4] + fs * row[5]) * cell.r_scale;
                cell.r1_ohm = (row[6] + fs * row[7]) * cell.r_scale;
                cell.r2_ohm = (row[8] + fs * row[9]) * cell.r_scale;
                rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
                r0_total += cell.r0_ohm;
            }
            self.rest_v = rest_v;
            self.r0_total_ohm = r0_total;
            self.last_current_a = current_a;
            return;
        }
        for cell in &mut self.cells {
            if n_rc > 0 {
                let a1 = a_const[0].unwrap_or_else(|| decay_factor(dt_s, cell.tau1_s));
                cell.v_rc1_v = a1 * cell.v_rc1_v + (1.0 - a1) * cell.r1_ohm * current_a;
            }
            if n_rc > 1 {
                let a2 = a_const[1].unwrap_or_else(|| decay_factor(dt_s, cell.tau2_s));
                cell.v_rc2_v = a2 * cell.v_rc2_v + (1.0 - a2) * cell.r2_ohm * current_a;
            }
            cell.hysteresis = ah * cell.hysteresis + (1.0 - ah) * target;
            cell.soc = (cell.soc + stored_c * cell.soc_per_coulomb - dsoc_leak).clamp(0.0, 1.0);
            evaluate_cell(&self.slice, n_rc, cell, ic, fc);
            rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
            r0_total += cell.r0_ohm;
        }
        self.rest_v = rest_v;
        self.r0_total_ohm = r0_total;
        self.last_current_a = current_a;
    }

    /// Terminal voltage while `current_a` flows (V):
    /// Σ (OCV_i + M_i·h_i + v1_i + v2_i + I·R0_i), R0 as evaluated after the
    /// last step (at that step's current, where R0 depends on current).
    #[inline]
    pub fn terminal_voltage_v(&self, current_a: f64) -> f64 {
        self.rest_v + current_a * self.r0_total_ohm
    }

    /// Σ OCV of the cells at their SOC and the pack temperature, without
    /// hysteresis (V).
    pub fn ocv_v(&self) -> f64 {
        self.cells.iter().map(|c| c.ocv_v).sum()
    }

    /// Σ (OCV + M·h): the voltage of the pack after full relaxation of the
    /// RC pairs, hysteresis as it stands (V).
    pub fn emf_v(&self) -> f64 {
        self.cells.iter().map(|c| c.ocv_v + c.hyst_v * c.hysteresis).sum()
    }

    /// Mean cell SOC (0..1).
    pub fn soc(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.iter().map(|c| c.soc).sum::<f64>() / self.cells.len() as f64
    }

    /// Mean cell *usable* SOC (0..1): the share of the capacity usable at the
    /// present temperature ([`Self::usable_capacity_ah`]) that is still in the
    /// cells. The charge out of reach in the cold sits at the bottom, so it is
    /// `1 − (1 − SOC) / f_Q(T)`, clamped at 0: the SOC the cell's tables are read
    /// at, and the truth the board's temperature-compensated SOC estimates
    /// (issue 16). Equal to [`Self::soc`] wherever `f_Q = 1` (from 25 °C, or
    /// without `capacity_vs_temperature`).
    pub fn usable_soc(&self) -> f64 {
        if self.cells.is_empty() {
            return 0.0;
        }
        self.cells.iter().map(|c| cell_x(&self.slice, c).clamp(0.0, 1.0)).sum::<f64>() / self.cells.len() as f64
    }

    /// Lowest cell SOC.
    pub fn min_soc(&self) -> f64 {
        self.cells.iter().map(|c| c.soc).fold(f64::INFINITY, f64::min)
    }

    /// Highest cell SOC.
    pub fn max_soc(&self) -> f64 {
        self.cells.iter().map(|c| c.soc).fold(f64::NEG_INFINITY, f64::max)
    }

    /// The cells, in series order.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// Terminal voltage of cell `i` while `current_a` flows (V); what a
    /// LiPro module would measure.
    pub fn cell_voltage_v(&self, i: usize, current_a: f64) -> Option<f64> {
        self.cells.get(i).map(|c| c.terminal_voltage_v(current_a))
    }

    /// Capacity of the series string at 25 °C with ageing: that of its
    /// smallest cell (Ah).
    pub fn capacity_ah(&self) -> f64 {
        self.cells.iter().map(|c| c.capacity_ah).fold(f64::INFINITY, f64::min) * self.health
    }

    /// Capacity usable at the present temperature (Ah).
    pub fn usable_capacity_ah(&self) -> f64 {
        self.capacity_ah() / self.slice.inv_cap_factor
    }

    /// Σ R0 of the cells at their present state (Ω).
    pub fn r0_total_ohm(&self) -> f64 {
        self.r0_total_ohm
    }

    /// The cell temperature the tables are sliced at (°C).
    pub fn temperature_c(&self) -> f64 {
        self.temp_c
    }

    /// State of health: capacity relative to new (0..1).
    pub fn soh(&self) -> f64 {
        self.health
    }

    /// Resistance relative to new (≥ 1).
    pub fn resistance_growth(&self) -> f64 {
        self.growth
    }

    /// Full equivalent cycles so far (including [`AgeingParams::initial_efc`]).
    pub fn efc(&self) -> f64 {
        self.throughput_ah / (2.0 * self.nominal_capacity_ah)
    }

    /// Ah moved through the pack so far, both directions.
    pub fn throughput_ah(&self) -> f64 {
        self.throughput_ah
    }

    /// Heat dissipated in all cells at `current_a` (W): the irreversible
    /// part `I²R0 + Σ vk²/Rk + I·M·h` plus the reversible (entropic) part
    /// `I·T·dOCV/dT` (+ = charge, so an endothermic discharge is negative).
    pub fn heat_w(&self, current_a: f64) -> f64 {
        self.irreversible_heat_w(current_a) + self.reversible_heat_w(current_a)
    }

    /// The irreversible part of [`Pack::heat_w`] (W).
    pub fn irreversible_heat_w(&self, current_a: f64) -> f64 {
        self.cells.iter().map(|c| c.irreversible_heat_w(current_a)).sum()
    }

    /// The reversible (entropic) part of [`Pack::heat_w`] (W).
    pub fn reversible_heat_w(&self, current_a: f64) -> f64 {
        let t_k = self.temp_c + ecm::ZERO_C_K;
        let n = self.slice.soc.len();
        self.cells
            .iter()
            .map(|c| {
                let x = cell_x(&self.slice, c);
                let fs = ((x - self.slice.soc[c.hint]) * self.slice.inv_ds[c.hint]).clamp(0.0, 1.0);
                let loc = Loc { is: c.hint, fs, ic: 0, fc: 0.0 };
                current_a * t_k * self.slice.entropic.at(n, &loc)
            })
            .sum()
    }

    /// Energy stored in the RC pairs' capacitors (J): Σ ½·Ck·vk².
    pub fn rc_energy_j(&self) -> f64 {
        self.cells
            .iter()
            .map(|c| {
                let e = |v: f64, r: f64, tau: f64| if r > 0.0 { 0.5 * tau / r * v * v } else { 0.0 };
                e(c.v_rc1_v, c.r1_ohm, c.tau1_s) + e(c.v_rc2_v, c.r2_ohm, c.tau2_s)
            })
            .sum()
    }

    /// `false` if any state variable is NaN or infinite.
    pub fn is_finite(&self) -> bool {
        self.rest_v.is_finite()
            && self.r0_total_ohm.is_finite()
            && self.cells.iter().all(|c| {
                c.soc.is_finite() && c.v_rc1_v.is_finite() && c.v_rc2_v.is_finite() && c.hysteresis.is_finite()
            })
    }
}

/// `exp(−x)` for `x ≥ 0`; below 1e−4 (every millisecond step at up to
/// hundreds of amperes) the series `1 − x + x²/2 − x³/6`, whose error
/// `x⁴/24 < 5e−18` is below the rounding of the result — the current
/// changes every tick (self-consumption follows the voltage), so the cache
/// alone would call `exp` every step.
#[inline]
fn exp_neg(x: f64) -> f64 {
    if x < 1e-4 { 1.0 - x * (1.0 - x * (0.5 - x / 6.0)) } else { (-x).exp() }
}

/// The SOC the tables are read at: the charge below (1 − f_Q) is out of
/// reach at this temperature.
#[inline]
fn cell_x(s: &Slice, c: &Cell) -> f64 {
    1.0 - (1.0 - c.soc) * s.inv_cap_factor
}

/// Looks up a cell's elements at its state (SOC via its hint, current via
/// `ic`/`fc`).
#[inline]
fn evaluate_cell(s: &Slice, n_rc: usize, cell: &mut Cell, ic: usize, fc: f64) {
    let x = cell_x(s, cell);
    let is = table::locate_segment(&s.soc, x, cell.hint);
    cell.hint = is;
    let fs = ((x - s.soc[is]) * s.inv_ds[is]).clamp(0.0, 1.0);
    let loc = Loc { is, fs, ic, fc };
    let n = s.soc.len();
    cell.ocv_v = s.ocv.at(n, &loc);
    cell.hyst_v = s.hyst.at(n, &loc);
    cell.r0_ohm = s.r0.at(n, &loc) * cell.r_scale;
    if n_rc > 0 {
        cell.r1_ohm = s.rc_r[0].at(n, &loc) * cell.r_scale;
        cell.tau1_s = match s.tau_const[0] {
            Some(t) => t,
            None => rc_tau(&s.rc_x[0], n, &loc, cell.r1_ohm, s.x_is_c[0]),
        };
    }
    if n_rc > 1 {
        cell.r2_ohm = s.rc_r[1].at(n, &loc) * cell.r_scale;
        cell.tau2_s = match s.tau_const[1] {
            Some(t) => t,
            None => rc_tau(&s.rc_x[1], n, &loc, cell.r2_ohm, s.x_is_c[1]),
        };
    }
}

/// τ of an RC pair from its second table: R·C for a capacitance table,
/// the value itself for a τ table.
#[inline]
fn rc_tau(x: &Quantity, n: usize, loc: &Loc, r_ohm: f64, is_c: bool) -> f64 {
    let v = x.at(n, loc);
    if is_c { v * r_ohm } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocv;
    use crate::rng::SeedStreams;

    fn pack(params: &PackParams, variant: Variant, soc: f64, seed: u64) -> Pack {
        Pack::new(params, variant, soc, &mut SeedStreams::new(seed).stream("pack"))
    }

    fn ideal(cells: usize) -> PackParams {
        PackParams { cells_in_series: cells, ..PackParams::uniform(CellParams::ideal_thevenin()) }
    }

    fn run(p: &mut Pack, dt: f64, steps: usize, i: f64) {
        for _ in 0..steps {
            p.step(dt, i);
        }
    }

    /// A single cell with a linear OCV and constant elements, so every
    /// voltage has a closed form a person can check with a calculator.
    const HAND: &str = r#"
        name = "hand"
        capacity_ah = 10.0
        cells_in_series = 1
        soc = [0.0, 1.0]
        ocv_v = [3.0, 4.0]
        r0_ohm = 0.010
        r1_ohm = 0.020
        c1_f = 1000.0      # τ1 = R1·C1 = 20 s (the per-step exp path)
        r2_ohm = 0.005
        tau2_s = 100.0     # the cached exp path
    "#;

    fn hand_pack(soc: f64) -> Pack {
        let ecm = EcmParams::from_toml_str(HAND).unwrap();
        let params = PackParams::uniform(CellParams::default());
        Pack::from_ecm(&ecm, &params, Variant::V12, soc, &mut SeedStreams::new(0).stream("pack")).unwrap()
    }

    #[test]
    fn hand_computed_step_response() {
        // −10 A (1 C discharge) from 50 % for 60 s, then rest:
        //   soc(t) = 0.5 − 10·t/36000
        //   V(t)   = 3 + soc(t) − 0.2·(1 − e^(−t/20)) − 0.05·(1 − e^(−t/100)) − 10·0.010
        //   t = 20 s: 3.494444 − 0.126424 − 0.009063 − 0.1 = 3.258957
        // at rest each vk decays with its own τ from its value at 60 s.
        let expected = [
            (1, 3.389_470_598_809_823),
            (20, 3.258_956_870_332_632),
            (60, 3.170_731_328_811_607),
            (80, 3.394_950_483_428_754),
            (120, 3.461_490_798_886_003),
        ];
        for dt in [1.0, 0.25] {
            let mut p = hand_pack(0.5);
            let per_s = (1.0 / dt) as usize;
            let mut t = 0;
            for &(mark, v) in &expected {
                while t < mark {
                    let i = if t < 60 { -10.0 } else { 0.0 };
                    run(&mut p, dt, per_s, i);
                    t += 1;
                }
                let i = if t <= 60 { -10.0 } else { 0.0 };
                let got = p.terminal_voltage_v(i);
                assert!((got - v).abs() < 1e-9, "dt {dt}, t {mark}: {got} vs {v}");
            }
        }
    }

    #[test]
    fn hand_computed_pulse_train() {
        // 3 × (10 s at −20 A, 10 s rest) from 80 %, relaxed. By superposition
        // of steps: after the first pulse v1 = −0.4·(1 − e^(−0.5)),
        // v2 = −0.1·(1 − e^(−0.1)), soc = 0.8 − 200/36000:
        // V = 3.794444 − 0.157388 − 0.009516 − 0.2 = 3.427540.
        let expected = [
            3.427_540_450_133_094,
            3.690_373_290_532_17,
            3.356_293_928_928_708,
            3.642_649_966_747_281,
            3.323_059_320_895_766,
            3.618_403_336_727_451,
        ];
        let mut p = hand_pack(0.8);
        for (k, v) in expected.iter().enumerate() {
            let i = if k % 2 == 0 { -20.0 } else { 0.0 };
            run(&mut p, 0.5, 20, i);
            let got = p.terminal_voltage_v(i);
            assert!((got - v).abs() < 1e-9, "segment {k}: {got} vs {v}");
        }
    }

    #[test]
    fn csv_profile_drives_the_reference_pack() {
        // The pulse train above, as a drive-cycle CSV stepped at 1 ms with
        // the profile's charge-exact mean current: the same hand values.
        let csv = "time_s,current_A\n0,-20\n10,0\n20,-20\n30,0\n40,-20\n50,0\n";
        let profile = crate::profile::CurrentProfile::from_csv(csv, crate::profile::Interpolation::Hold).unwrap();
        let marks = [(10_000, 3.427_540_450_133_094), (40_000, 3.642_649_966_747_281), (60_000, 3.618_403_336_727_451)];
        let mut p = hand_pack(0.8);
        let mut hint = 0;
        let mut k = 0u32;
        for (mark, v) in marks {
            let mut i = 0.0;
            while k < mark {
                let t0 = f64::from(k) * 1e-3;
                i = profile.mean_current_a(t0, t0 + 1e-3, &mut hint);
                p.step(1e-3, i);
                k += 1;
            }
            let got = p.terminal_voltage_v(i);
            assert!((got - v).abs() < 1e-6, "t {mark} ms: {got} vs {v}");
        }
    }

    #[test]
    fn exp_series_is_exact_to_rounding() {
        for k in 0..=1000 {
            let x = f64::from(k) * 1e-7;
            assert!((exp_neg(x) - (-x).exp()).abs() <= f64::EPSILON, "{x}");
        }
        assert_eq!(exp_neg(0.5), (-0.5f64).exp());
    }

    #[test]
    fn cell_count_from_variant_or_override() {
        for v in Variant::ALL {
            assert_eq!(pack(&PackParams::default(), v, 0.5, 1).cells().len(), v.cells_in_series());
        }
        let p = PackParams { cells_in_series: 15, ..PackParams::default() };
        assert_eq!(pack(&p, Variant::V48, 0.5, 1).cells().len(), 15);
    }

    #[test]
    fn rc_step_response_matches_closed_form() {
        let p = ideal(4);
        let mut pk = pack(&p, Variant::V12, 0.5, 1);
        let i = -120.0;
        let dt = 0.01;
        run(&mut pk, dt, 10_000, i);
        let t = 100.0;
        let c = p.cell;
        // R1, R2 follow the SOC factor, which moved by ≈ 0.1 % over the
        // 3.3 % SOC of the run (the exact constant-R case is pinned by the
        // hand-computed tests): compare with the present resistances.
        for cell in pk.cells() {
            let (r1, r2) = cell.rc_resistances_ohm();
            let v1 = r1 * i * (1.0 - (-t / c.tau1_s).exp());
            let v2 = r2 * i * (1.0 - (-t / c.tau2_s).exp());
            assert!((cell.v_rc1_v / v1 - 1.0).abs() < 2e-3, "{} vs {v1}", cell.v_rc1_v);
            assert!((cell.v_rc2_v / v2 - 1.0).abs() < 2e-3, "{} vs {v2}", cell.v_rc2_v);
        }
        let v = pk.terminal_voltage_v(i);
        let sum: f64 = pk.cells().iter().map(|c| c.ocv_v() + c.v_rc1_v + c.v_rc2_v + i * c.r0_ohm()).sum();
        assert!((v - sum).abs() < 1e-12);
    }

    #[test]
    fn one_second_and_one_millisecond_steps_agree() {
        // The full default model (spread, hysteresis, temperature, ageing).
        let p = PackParams { cells_in_series: 1, ..PackParams::default() };
        let i = -100.0;
        let mut coarse = pack(&p, Variant::V48, 0.8, 7);
        let mut fine = pack(&p, Variant::V48, 0.8, 7);
        coarse.set_temperature_c(10.0);
        fine.set_temperature_c(10.0);
        run(&mut coarse, 1.0, 300, i);
        run(&mut fine, 1e-3, 300_000, i);
        let dv = coarse.terminal_voltage_v(i) - fine.terminal_voltage_v(i);
        assert!(dv.abs() < 0.1e-3, "dv = {dv}");
        // and charging, across a current change
        run(&mut coarse, 1.0, 100, 150.0);
        run(&mut fine, 1e-3, 100_000, 150.0);
        let dv = coarse.terminal_voltage_v(150.0) - fine.terminal_voltage_v(150.0);
        assert!(dv.abs() < 0.1e-3, "dv = {dv}");
    }

    #[test]
    fn ocv_at_rest_after_relaxation() {
        let p = PackParams::default();
        let mut pk = pack(&p, Variant::V24, 0.7, 3);
        run(&mut pk, 1.0, 600, 200.0);
        assert!(pk.terminal_voltage_v(0.0) - pk.ocv_v() > 10e-3);
        run(&mut pk, 1.0, (12.0 * p.cell.tau2_s) as usize, 0.0);
        // relaxed to the EMF: OCV plus the charge branch of the hysteresis
        assert!((pk.terminal_voltage_v(0.0) - pk.emf_v()).abs() < 0.1e-3);
        let sum_ocv: f64 = pk.cells().iter().map(|c| ocv::ocv_v(c.soc)).sum();
        let hyst = 8.0 * p.cell.hysteresis_v;
        let err = pk.terminal_voltage_v(0.0) - sum_ocv - hyst;
        assert!(err.abs() < 0.2e-3, "{err}");
    }

    #[test]
    fn hysteresis_separates_charge_and_discharge_branches() {
        let p = PackParams::uniform(CellParams::default());
        let mut up = pack(&PackParams { cells_in_series: 1, ..p }, Variant::V12, 0.45, 1);
        let mut down = pack(&PackParams { cells_in_series: 1, ..p }, Variant::V12, 0.55, 1);
        run(&mut up, 1.0, 180, 100.0); // +5 % SOC
        run(&mut down, 1.0, 180, -100.0); // −5 % SOC
        let gap = up.emf_v() - up.ocv_v() - (down.emf_v() - down.ocv_v());
        // γ = 60 over 5 % SOC: h reaches 1 − e^(−3) = 95 % of ±1
        let expected = 2.0 * p.cell.hysteresis_v * (1.0 - (-3.0f64).exp());
        assert!((gap - expected).abs() < 1e-6, "{gap} vs {expected}");
    }

    #[test]
    fn coulomb_counting_with_efficiency() {
        let mut p = PackParams::uniform(CellParams::ideal_thevenin());
        let mut pk = pack(&p, Variant::V12, 0.2, 1);
        run(&mut pk, 1.0, 3600, 50.0);
        assert!((pk.soc() - 0.7).abs() < 1e-9);
        p.cell.coulombic_efficiency = 0.99;
        let mut pk = pack(&p, Variant::V12, 0.2, 1);
        run(&mut pk, 1.0, 3600, 50.0);
        assert!((pk.soc() - (0.2 + 0.5 * 0.99)).abs() < 1e-9);
        run(&mut pk, 0.5, 7200, -50.0);
        assert!((pk.soc() - (0.2 + 0.5 * 0.99 - 0.5)).abs() < 1e-9);
    }

    #[test]
    fn self_discharge_doubles_per_10_k() {
        let cell = CellParams { self_discharge_per_month: 0.03, ..CellParams::ideal_thevenin() };
        let p = PackParams::uniform(cell);
        let mut a = pack(&p, Variant::V12, 0.8, 1);
        let mut b = pack(&p, Variant::V12, 0.8, 1);
        b.set_temperature_c(35.0);
        run(&mut a, 3600.0, 24 * 30, 0.0);
        run(&mut b, 3600.0, 24 * 30, 0.0);
        assert!((0.8 - a.soc() - 0.03).abs() < 1e-9, "{}", a.soc());
        assert!((0.8 - b.soc() - 0.06).abs() < 1e-9, "{}", b.soc());
    }

    #[test]
    fn cold_cells_deliver_less_and_are_stiffer() {
        let cell = CellParams { capacity_vs_temperature: true, ..CellParams::ideal_thevenin() };
        let cell = CellParams { r_activation_j_per_mol: 20_000.0, ..cell };
        let p = PackParams { cells_in_series: 1, ..PackParams::uniform(cell) };
        let ah_to = |temp_c: f64| {
            let mut pk = pack(&p, Variant::V12, 1.0, 1);
            pk.set_temperature_c(temp_c);
            let mut ah: f64 = 0.0;
            while pk.terminal_voltage_v(-20.0) > 2.8 && ah < 200.0 {
                pk.step(10.0, -20.0);
                ah += 20.0 * 10.0 / 3600.0;
            }
            (ah, pk.r0_total_ohm())
        };
        let (warm, r_warm) = ah_to(25.0);
        let (cold, r_cold) = ah_to(-10.0);
        assert!(warm > 95.0, "{warm}");
        assert!((cold / warm - 0.8).abs() < 0.03, "{cold} of {warm}");
        assert!(r_cold > 2.0 * r_warm);
    }

    /// Issue 16: the usable SOC is the charge SOC less the share out of reach,
    /// over the usable capacity: 1 − (1 − SOC)/f_Q, and 0 % at the empty point.
    #[test]
    fn issue_16_usable_soc_is_the_share_of_the_usable_capacity() {
        let cell = CellParams { capacity_vs_temperature: true, ..CellParams::ideal_thevenin() };
        let p = PackParams { cells_in_series: 1, ..PackParams::uniform(cell) };
        let mut pk = pack(&p, Variant::V12, 0.55, 1);
        assert!((pk.usable_soc() - pk.soc()).abs() < 1e-12, "f_Q = 1 at 25 °C");
        pk.set_temperature_c(0.0);
        let f = pk.usable_capacity_ah() / pk.capacity_ah();
        assert!((f - 0.9).abs() < 1e-9, "{f}");
        assert!((pk.usable_soc() - (1.0 - 0.45 / 0.9)).abs() < 1e-9, "{}", pk.usable_soc());
        let mut low = pack(&p, Variant::V12, 0.05, 1);
        low.set_temperature_c(0.0);
        assert_eq!(low.usable_soc(), 0.0, "5 % charge, all of it out of reach at 0 °C");
    }

    #[test]
    fn ageing_gives_soh_and_resistance_growth() {
        let ageing = AgeingParams { initial_efc: 3000.0, ..AgeingParams::default() };
        let p = PackParams { ageing, ..PackParams::uniform(CellParams::ideal_thevenin()) };
        let mut pk = pack(&p, Variant::V12, 0.5, 1);
        assert!((pk.soh() - 0.9).abs() < 1e-12);
        assert!((pk.resistance_growth() - 1.15).abs() < 1e-12);
        let r_new = pack(&PackParams::uniform(CellParams::ideal_thevenin()), Variant::V12, 0.5, 1).r0_total_ohm();
        assert!((pk.r0_total_ohm() / r_new - 1.15).abs() < 1e-9);
        // an aged cell moves further per Ah
        run(&mut pk, 1.0, 3600, -9.0);
        assert!((pk.soc() - (0.5 - 0.1)).abs() < 1e-9, "{}", pk.soc());
        // 9 + 18 + 18 Ah of throughput = 0.225 full equivalent cycles
        run(&mut pk, 1.0, 3600, 18.0);
        run(&mut pk, 1.0, 3600, -18.0);
        assert!((pk.efc() - 3000.0 - 0.225).abs() < 1e-9, "{}", pk.efc());
        pk.refresh_ageing();
        assert!(pk.soh() < 0.9);
        // calendar: one year at 25 °C costs 2 % capacity; at 35 °C about 1.9× the time
        let cal = AgeingParams { initial_age_days: 365.0, ..AgeingParams::default() };
        assert!((cal.state(0.0, 365.0).0 - 0.98).abs() < 1e-12);
        let hot = ecm::arrhenius(cal.calendar_activation_j_per_mol, 35.0);
        assert!((1.0 / hot - 1.9).abs() < 0.1, "{}", 1.0 / hot);
    }

    #[test]
    fn spreads_are_drawn_and_reproducible() {
        let p = PackParams::default();
        let a = pack(&p, Variant::V48, 0.5, 11);
        let b = pack(&p, Variant::V48, 0.5, 11);
        let c = pack(&p, Variant::V48, 0.5, 12);
        assert_eq!(a.cells(), b.cells());
        assert_ne!(a.cells(), c.cells());
        assert!(a.max_soc() > a.min_soc());
        let caps: Vec<f64> = a.cells().iter().map(|c| c.capacity_ah()).collect();
        assert_eq!(a.capacity_ah(), caps.iter().copied().fold(f64::INFINITY, f64::min));
        let r0: f64 = a.cells().iter().map(|c| c.r0_ohm()).sum();
        assert!((a.r0_total_ohm() - r0).abs() < 1e-15);
        assert!(a.is_finite());
    }

    #[test]
    fn zero_spread_keeps_other_draws() {
        // Changing one spread must not reshuffle the others.
        let p = PackParams::default();
        let q = PackParams { capacity_spread_rel: 0.0, ..p };
        let a = pack(&p, Variant::V24, 0.5, 5);
        let b = pack(&q, Variant::V24, 0.5, 5);
        for (x, y) in a.cells().iter().zip(b.cells()) {
            assert_eq!(x.resistance_factor(), y.resistance_factor());
            assert_eq!(x.soc, y.soc);
            assert_eq!(y.capacity_ah(), 100.0);
        }
    }

    #[test]
    fn params_override_any_field_and_reject_unknown() {
        use serde::de::value::{Error, MapDeserializer};
        let de = |kv: Vec<(&'static str, f64)>| -> Result<PackParams, Error> {
            PackParams::deserialize(MapDeserializer::new(kv.into_iter()))
        };
        let p = de(vec![("soc_spread", 0.02)]).unwrap();
        assert_eq!(p, PackParams { soc_spread: 0.02, ..PackParams::default() });
        assert!(de(vec![("soc_sprad", 0.02)]).is_err());
        assert!(PackParams::default().validate().is_ok());
        let bad = PackParams { ageing: AgeingParams { initial_efc: -1.0, ..AgeingParams::default() }, ..p };
        assert_eq!(bad.validate().unwrap_err().name, "ageing.initial_efc");
    }

    #[test]
    fn soc_spread_statistics() {
        // 1σ of initial SOC over many cells ≈ soc_spread.
        let p = PackParams { cells_in_series: 4000, ..PackParams::default() };
        let pk = pack(&p, Variant::V12, 0.5, 99);
        let n = pk.cells().len() as f64;
        let mean = pk.soc();
        let var = pk.cells().iter().map(|c| (c.soc - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - 0.5).abs() < 4.0 * p.soc_spread / n.sqrt());
        assert!((var.sqrt() / p.soc_spread - 1.0).abs() < 0.05);
    }

    #[test]
    fn current_axis_tables_are_used() {
        // R0 rising with |I| (PyBaMM's ECM_Example form).
        let text = HAND.replace(
            "r0_ohm = 0.010",
            "current_a = [-100.0, 0.0, 100.0]\nr0_ohm = [[[0.012, 0.012], [0.010, 0.010], [0.012, 0.012]]]",
        );
        let text = text.replace("soc = [0.0, 1.0]", "soc = [0.0, 1.0]\ntemp_c = [25.0]");
        let ecm = EcmParams::from_toml_str(&text).unwrap();
        let params = PackParams::uniform(CellParams::default());
        let mut p = Pack::from_ecm(&ecm, &params, Variant::V12, 0.5, &mut SeedStreams::new(0).stream("p")).unwrap();
        p.step(1e-3, -50.0);
        assert!((p.r0_total_ohm() - 0.011).abs() < 1e-12);
        p.step(1e-3, 100.0);
        assert!((p.r0_total_ohm() - 0.012).abs() < 1e-12);
    }
}
