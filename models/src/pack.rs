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
//! The element tables are resampled once, when the pack is built, onto
//! the union of their SOC breakpoints ([`crate::table::Resampled`]); a
//! lookup is then one interpolation in temperature, SOC and current from
//! brackets kept per axis (the cell's SOC segment, the pack's current and
//! temperature segments), with the arithmetic of slicing the tables at the
//! temperature, so the values are those of a slice to the last bit.
//! Temperature enters through [`Pack::set_temperature_c`], which locates it
//! on the tables' temperature axes (about the cost of a step, however
//! often it is called); ageing through [`AgeingParams`] and the counters
//! the step keeps.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::cell::{Cell, CellParams, SECONDS_PER_HOUR};
use crate::decay::{Decay, decay_factor};
use crate::ecm::{self, EcmParams, Tables};
use crate::error::{self, ParamError};
use crate::table::{self, Bracket, Resampled, Table};
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
    /// One cell built differently from the lot (a weak or a high cell), applied after the draws.
    pub odd_cell: Option<OddCell>,
}

/// One cell of the string that deviates from the drawn lot (`[pack.odd_cell]`): its capacity
/// scaled, its initial SOC shifted. The draws of every cell are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OddCell {
    /// Position in the string, 1 = the cell at the pack's negative pole.
    pub index: usize,
    /// Its capacity relative to the drawn one (0.92: 8 % low).
    #[serde(default = "one")]
    pub capacity_rel: f64,
    /// Added to its drawn initial SOC (0..1 scale; clamped to 0..1).
    #[serde(default)]
    pub soc_offset: f64,
}

fn one() -> f64 {
    1.0
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
            odd_cell: None,
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
        if let Some(odd) = &self.odd_cell {
            if odd.index == 0 {
                return Err(ParamError {
                    name: "odd_cell.index", value: 0.0, requirement: "≥ 1 (cells count from 1)"
                });
            }
            if !(odd.capacity_rel.is_finite() && odd.capacity_rel >= 0.05 && odd.capacity_rel <= 2.0) {
                return Err(ParamError {
                    name: "odd_cell.capacity_rel",
                    value: odd.capacity_rel,
                    requirement: "within 0.05..=2",
                });
            }
            if !(odd.soc_offset.is_finite() && odd.soc_offset.abs() <= 1.0) {
                return Err(ParamError {
                    name: "odd_cell.soc_offset",
                    value: odd.soc_offset,
                    requirement: "within -1..=1",
                });
            }
        }
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

/// One element table on the pack's SOC axis, and where the present
/// temperature sits on its temperature axis.
#[derive(Clone, Debug)]
struct Quantity {
    table: Resampled,
    temp: Bracket,
    /// Its temperature axis is R0's: the bracket is R0's (located once).
    follows_r0: bool,
}

impl Quantity {
    fn new(table: &Table, soc_axis: &[f64]) -> Self {
        Self { table: Resampled::new(table, soc_axis), temp: Bracket::default(), follows_r0: false }
    }

    fn set_temperature_c(&mut self, temp_c: f64, r0: Bracket) {
        self.temp = if self.follows_r0 { r0 } else { Bracket::locate(self.table.temp_axis(), temp_c, self.temp.i) };
    }

    /// The value at the present temperature, current `c` and SOC `s`.
    #[inline(always)]
    fn at(&self, c: Bracket, s: Bracket) -> f64 {
        self.table.eval(self.temp, c, s)
    }
}

/// One RC pair's tables: resistance, and capacitance (τ = R·C) or τ.
#[derive(Clone, Debug)]
struct RcQuantity {
    r: Quantity,
    x: Quantity,
    x_is_c: bool,
    /// τ, when its table is a constant τ.
    tau_const: Option<f64>,
}

/// dOCV/dT for the reversible heat: a table of its own, or the OCV
/// table's central difference over ±0.5 K (the temperatures located).
#[derive(Clone, Debug)]
enum Entropic {
    Table(Quantity),
    OcvSlope { hi: Bracket, lo: Bracket },
}

/// The element tables on the pack's SOC axis (the union of the tables'
/// SOC breakpoints, so each is the same function of SOC there) and the
/// present temperature's place on each: a lookup is one interpolation in
/// temperature, SOC and current from brackets found once per axis.
#[derive(Clone, Debug)]
struct Elements {
    soc: Vec<f64>,
    inv_ds: Vec<f64>,
    current_a: Vec<f64>,
    ocv: Quantity,
    r0: Quantity,
    rc: Vec<RcQuantity>,
    hyst: Quantity,
    entropic: Entropic,
    inv_cap_factor: f64,
    /// Nothing depends on current and every τ is constant: the step's
    /// update of the RC pairs runs in its pack-wide form, and reads the
    /// elements from these per-segment rows.
    segments: Option<SegmentRows>,
}

/// Values per row of [`SegmentRows`].
const SEGMENT_WIDTH: usize = 15;

/// For each SOC segment in use, the elements at the present temperature
/// packed into one row, `[ocv, Δocv, M, ΔM, R0, ΔR0, R1, ΔR1, R2, ΔR2,
/// dOCV/dT, ΔdOCV/dT, SOC₀, SOC₁, 1/(SOC₁ − SOC₀)]` (Δ: the value at the
/// segment's end minus its start; the segment's ends on the SOC axis last),
/// filled when a cell first reads it after a temperature change (`value = v
/// + f·Δ`, the same bits as the tables' own interpolation). The pack-wide
/// step reads one row per cell, and takes the heat at its current from it
/// as well ([`Pack::heat_w`]).
#[derive(Clone, Debug)]
struct SegmentRows {
    rows: Vec<[f64; SEGMENT_WIDTH]>,
    /// The temperature generation each row was filled at.
    filled_at: Vec<u64>,
    generation: u64,
    /// dOCV/dT is a function of SOC alone here (the OCV table's slope, or an
    /// entropic table without a current axis): its columns are filled.
    entropic: bool,
}

impl SegmentRows {
    /// The row of SOC segment `j` at the present temperature, filled from
    /// the element tables if it is older.
    #[inline]
    fn row(
        &mut self,
        j: usize,
        ocv: &Quantity,
        hyst: &Quantity,
        r0: &Quantity,
        rc: &[RcQuantity],
        entropic: &Entropic,
    ) -> &[f64; SEGMENT_WIDTH] {
        if self.filled_at[j] != self.generation {
            let pair = |q: Option<&Quantity>| {
                q.map_or([0.0; 2], |q| [q.table.at_point(q.temp, 0, j), q.table.at_point(q.temp, 0, j + 1)])
            };
            // `Elements::entropic_v_per_k`'s points on the first row of the current axis.
            let slope = match entropic {
                _ if !self.entropic => [0.0; 2],
                Entropic::Table(q) => pair(Some(q)),
                Entropic::OcvSlope { hi, lo } => {
                    let t = &ocv.table;
                    [j, j + 1].map(|j| t.at_point(*hi, 0, j) - t.at_point(*lo, 0, j))
                }
            };
            let cols = [
                pair(Some(ocv)),
                pair(Some(hyst)),
                pair(Some(r0)),
                pair(rc.first().map(|k| &k.r)),
                pair(rc.get(1).map(|k| &k.r)),
                slope,
            ];
            let row = &mut self.rows[j];
            for (k, [a, b]) in cols.into_iter().enumerate() {
                row[2 * k] = a;
                row[2 * k + 1] = b - a;
            }
            self.filled_at[j] = self.generation;
        }
        &self.rows[j]
    }
}

impl Elements {
    fn new(tables: &Tables, soc: Vec<f64>, current_a: Vec<f64>) -> Self {
        let r0 = Quantity::new(&tables.r0, &soc);
        // A table on R0's temperature axis takes R0's bracket (located once).
        let q = |t: &Table| Quantity { follows_r0: t.temp_axis() == tables.r0.temp_axis(), ..Quantity::new(t, &soc) };
        let rc: Vec<RcQuantity> = tables
            .rc
            .iter()
            .map(|rc| RcQuantity {
                r: q(&rc.r),
                x: q(&rc.x),
                x_is_c: !rc.x_is_tau,
                tau_const: (rc.x_is_tau && rc.x.is_constant()).then(|| rc.x.eval(0.0, 0.0, 0.0)),
            })
            .collect();
        let hyst = match &tables.hysteresis {
            Some(h) => q(h),
            None => q(&Table::constant(0.0)),
        };
        let entropic = match &tables.entropic {
            Some(e) => Entropic::Table(q(e)),
            None => Entropic::OcvSlope { hi: Bracket::default(), lo: Bracket::default() },
        };
        let ocv = q(&tables.ocv);
        let pack_wide = [&ocv, &hyst, &r0].into_iter().chain(rc.iter().map(|k| &k.r)).all(|q| q.table.rows() == 1)
            && rc.iter().all(|k| k.tau_const.is_some());
        let inv_ds: Vec<f64> = soc.windows(2).map(|w| 1.0 / (w[1] - w[0])).collect();
        let segments = pack_wide.then(|| SegmentRows {
            rows: soc
                .windows(2)
                .zip(&inv_ds)
                .map(|(w, &inv)| {
                    let mut row = [0.0; SEGMENT_WIDTH];
                    row[12..].copy_from_slice(&[w[0], w[1], inv]);
                    row
                })
                .collect(),
            filled_at: vec![u64::MAX; inv_ds.len()],
            generation: 0,
            entropic: match &entropic {
                Entropic::Table(q) => q.table.rows() == 1,
                Entropic::OcvSlope { .. } => true,
            },
        });
        Self { soc, inv_ds, current_a, ocv, r0, rc, hyst, entropic, inv_cap_factor: 1.0, segments }
    }

    /// Locates `temp_c` on every table's temperature axis.
    fn set_temperature_c(&mut self, temp_c: f64) {
        if let Some(seg) = &mut self.segments {
            seg.generation += 1;
        }
        self.r0.set_temperature_c(temp_c, Bracket::default());
        let r0 = self.r0.temp;
        self.ocv.set_temperature_c(temp_c, r0);
        self.hyst.set_temperature_c(temp_c, r0);
        for rc in &mut self.rc {
            rc.r.set_temperature_c(temp_c, r0);
            rc.x.set_temperature_c(temp_c, r0);
        }
        match &mut self.entropic {
            Entropic::Table(q) => q.set_temperature_c(temp_c, r0),
            Entropic::OcvSlope { hi, lo } => {
                let axis = self.ocv.table.temp_axis();
                *hi = Bracket::locate(axis, temp_c + 0.5, hi.i);
                *lo = Bracket::locate(axis, temp_c - 0.5, lo.i);
            }
        }
    }

    /// dOCV/dT at current `c` and SOC `s` (V/K).
    #[inline]
    fn entropic_v_per_k(&self, c: Bracket, s: Bracket) -> f64 {
        match &self.entropic {
            Entropic::Table(q) => q.at(c, s),
            Entropic::OcvSlope { hi, lo } => {
                let ocv = &self.ocv.table;
                table::interpolate(ocv.rows(), c, s, |row, j| ocv.at_point(*hi, row, j) - ocv.at_point(*lo, row, j))
            }
        }
    }
}

/// A series string of cells.
#[derive(Clone, Debug)]
pub struct Pack {
    cells: Vec<Cell>,
    tables: Tables,
    elements: Elements,
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
    /// [`Self::heat_w`] at the last step's current (its bits), summed by the
    /// pack-wide step from the values it had at hand; `None` once anything
    /// but a step changed the cells.
    step_heat: Option<(u64, f64)>,
    /// [`Self::soc`] after the last step, summed by the pack-wide step; `None`
    /// as `step_heat`.
    step_soc: Option<f64>,
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
        let mut cells: Vec<Cell> = (0..n)
            .map(|_| {
                let z_cap: f64 = StandardNormal.sample(rng);
                let z_r: f64 = StandardNormal.sample(rng);
                let z_soc: f64 = StandardNormal.sample(rng);
                let cap = tables.capacity_ah * (1.0 + params.capacity_spread_rel * z_cap).max(MIN_SPREAD_FACTOR);
                let rf = (1.0 + params.r0_spread_rel * z_r).max(MIN_SPREAD_FACTOR);
                Cell::new(initial_soc + params.soc_spread * z_soc, cap, rf)
            })
            .collect();
        if let Some(odd) = &params.odd_cell {
            let c = cells.get_mut(odd.index.wrapping_sub(1)).ok_or(ParamError {
                name: "odd_cell.index",
                value: odd.index as f64,
                requirement: "at most the pack's cell count",
            })?;
            *c = Cell::new(c.soc + odd.soc_offset, c.capacity_ah * odd.capacity_rel, c.r_factor);
        }
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
        let n_rc = tables.rc.len();
        let elements = Elements::new(&tables, soc_axis, ecm.current_a.clone());
        let decay = [0, 1].map(|k| Decay::new(elements.rc.get(k).and_then(|rc| rc.tau_const).unwrap_or(0.0)));
        let (efc0, age0) = (params.ageing.initial_efc, params.ageing.initial_age_days);
        let mut pack = Pack {
            has_hysteresis: tables.hysteresis.is_some() && tables.hysteresis_rate > 0.0,
            hyst_per_coulomb: tables.hysteresis_rate / (tables.capacity_ah * SECONDS_PER_HOUR),
            nominal_capacity_ah: tables.capacity_ah,
            throughput_ah: efc0 * 2.0 * tables.capacity_ah,
            age_eq_s: age0 * 86_400.0,
            cells,
            tables,
            elements,
            n_rc,
            temp_c: f64::NAN,
            decay,
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
            step_heat: None,
            step_soc: None,
        };
        pack.set_temperature_c(ecm::T_REF_C);
        Ok(pack)
    }

    /// Sets the cell temperature (°C, common to the string): locates it on
    /// the tables' temperature axes, sets the usable capacity, self-discharge
    /// and calendar-ageing rates, and applies the ageing accumulated so far
    /// (re-evaluating the cells). No table is re-sliced: a call costs about
    /// one step.
    pub fn set_temperature_c(&mut self, temp_c: f64) {
        self.set_temperature_at(temp_c, self.last_current_a);
    }

    /// [`Pack::set_temperature_c`] with the elements evaluated at
    /// `current_a` instead of the last step's current: what
    /// `set_temperature_c(temp_c)` followed by `step(0.0, current_a)` leaves,
    /// in one evaluation.
    pub fn set_temperature_at(&mut self, temp_c: f64, current_a: f64) {
        self.step_heat = None;
        self.step_soc = None;
        if temp_c.to_bits() != self.temp_c.to_bits() {
            self.temp_c = temp_c;
            let t = &self.tables;
            let e = &mut self.elements;
            e.set_temperature_c(temp_c);
            let cap_factor = match &t.capacity_factor {
                Some((temps, f)) => {
                    let (i, fr) = table::locate(temps, temp_c, 0);
                    let j = (i + 1).min(f.len() - 1);
                    f[i] + fr * (f[j] - f[i])
                }
                None => 1.0,
            };
            e.inv_cap_factor = 1.0 / cap_factor;
            self.self_discharge_per_s = if t.self_discharge_per_s == 0.0 {
                0.0
            } else {
                t.self_discharge_per_s * 2f64.powf((temp_c - ecm::T_REF_C) / 10.0)
            };
            let a = &self.ageing;
            // Calendar time matters only through the √time terms.
            if a.capacity_fade_per_sqrt_day != 0.0 || a.resistance_growth_per_sqrt_day != 0.0 {
                self.age_rate = 1.0 / ecm::arrhenius(a.calendar_activation_j_per_mol, temp_c);
            }
        }
        self.last_current_a = current_a;
        self.refresh_ageing();
    }

    /// Applies the ageing accumulated so far (throughput and calendar time)
    /// to every cell's capacity and resistances.
    pub fn refresh_ageing(&mut self) {
        self.step_heat = None;
        self.step_soc = None;
        let (health, growth) = self.ageing.state(self.efc(), self.age_eq_s / 86_400.0);
        self.health = health;
        self.growth = growth;
        for c in &mut self.cells {
            c.soc_per_coulomb = 1.0 / (c.capacity_ah * health * SECONDS_PER_HOUR);
            c.r_scale = c.r_factor * growth;
        }
        self.evaluate(self.last_current_a);
    }

    /// `current_a` on the tables' current axis (segment 0, fraction 0 without one).
    fn locate_current(&mut self, current_a: f64) -> Bracket {
        if self.elements.current_a.len() > 1 {
            let c = Bracket::locate(&self.elements.current_a, current_a, self.cur_hint);
            self.cur_hint = c.i;
            c
        } else {
            Bracket::default()
        }
    }

    /// Re-evaluates every cell's elements at its state and `current_a`.
    fn evaluate(&mut self, current_a: f64) {
        self.step_heat = None;
        self.step_soc = None;
        let c = self.locate_current(current_a);
        let mut rest_v = 0.0;
        let mut r0_total = 0.0;
        for cell in &mut self.cells {
            evaluate_cell(&self.elements, cell, c);
            rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
            r0_total += cell.r0_ohm;
        }
        self.rest_v = rest_v;
        self.r0_total_ohm = r0_total;
    }

    /// Advances every cell by `dt_s` with `current_a` (> 0 charges) held
    /// constant (see the module doc for the update). Allocation-free.
    pub fn step(&mut self, dt_s: f64, current_a: f64) {
        self.step_heat = None;
        self.step_soc = None;
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
        let tau_const = |k: usize| self.elements.rc.get(k).and_then(|rc| rc.tau_const);
        let a_const =
            [tau_const(0).map(|_| self.decay[0].factor(dt_s)), tau_const(1).map(|_| self.decay[1].factor(dt_s))];
        self.throughput_ah += charge_c.abs() / SECONDS_PER_HOUR;
        self.age_eq_s += dt_s * self.age_rate;
        let c = self.locate_current(current_a);
        let n_rc = self.n_rc;
        let mut rest_v = 0.0;
        let mut r0_total = 0.0;
        let e = &mut self.elements;
        if let Some(seg) = e.segments.as_mut() {
            // Every τ constant, nothing depends on current: the decay and
            // input factors are the pack's, the elements one row per segment.
            let (a1, a2) = (a_const[0].unwrap_or(1.0), a_const[1].unwrap_or(1.0));
            let (b1, b2) = ((1.0 - a1) * current_a, (1.0 - a2) * current_a);
            let bh = (1.0 - ah) * target;
            // `heat_w(current_a)` of the state the step leaves, summed as it sums (from −0.0, cell by cell).
            let i_t_k = current_a * (self.temp_c + ecm::ZERO_C_K);
            let (mut irreversible_w, mut reversible_w, mut soc_sum) = (-0.0, -0.0, -0.0);
            for cell in &mut self.cells {
                cell.v_rc1_v = a1 * cell.v_rc1_v + b1 * cell.r1_ohm;
                cell.v_rc2_v = a2 * cell.v_rc2_v + b2 * cell.r2_ohm;
                cell.hysteresis = ah * cell.hysteresis + bh;
                cell.soc = (cell.soc + stored_c * cell.soc_per_coulomb - dsoc_leak).clamp(0.0, 1.0);
                let x = 1.0 - (1.0 - cell.soc) * e.inv_cap_factor; // cell_x
                // Still in the segment of the last step (`locate_segment`'s answer then), or walk.
                let is = match seg.rows.get(cell.hint) {
                    Some(r) if x >= r[12] && x < r[13] => cell.hint,
                    _ => table::locate_segment(&e.soc, x, cell.hint),
                };
                cell.hint = is;
                let row = seg.row(is, &e.ocv, &e.hyst, &e.r0, &e.rc, &e.entropic);
                let fs = ((x - row[12]) * row[14]).clamp(0.0, 1.0);
                cell.ocv_v = row[0] + fs * row[1];
                cell.hyst_v = row[2] + fs * row[3];
                cell.r0_ohm = (row[4] + fs * row[5]) * cell.r_scale;
                cell.r1_ohm = (row[6] + fs * row[7]) * cell.r_scale;
                cell.r2_ohm = (row[8] + fs * row[9]) * cell.r_scale;
                rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
                r0_total += cell.r0_ohm;
                irreversible_w += cell.irreversible_heat_w(current_a);
                reversible_w += i_t_k * (row[10] + fs * row[11]);
                soc_sum += cell.soc;
            }
            if !self.cells.is_empty() {
                self.step_soc = Some(soc_sum / self.cells.len() as f64);
            }
            if seg.entropic {
                self.step_heat = Some((current_a.to_bits(), irreversible_w + reversible_w));
            }
        } else {
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
                evaluate_cell(e, cell, c);
                rest_v += cell.ocv_v + cell.hyst_v * cell.hysteresis + cell.v_rc1_v + cell.v_rc2_v;
                r0_total += cell.r0_ohm;
            }
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
        if let Some(soc) = self.step_soc {
            // The pack-wide step's sum: the same terms in the same order.
            return soc;
        }
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
        self.cells.iter().map(|c| cell_x(&self.elements, c).clamp(0.0, 1.0)).sum::<f64>() / self.cells.len() as f64
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

    /// Cell `i`'s terminal voltage while `current_a` flows (V), with its elements as evaluated
    /// after the last step (0 for a cell that does not exist).
    pub fn cell_voltage_v(&self, i: usize, current_a: f64) -> f64 {
        self.cells.get(i).map_or(0.0, |c| c.terminal_voltage_v(current_a))
    }

    /// Takes `charge_c` (C, ≥ 0) out of cell `i` alone, as a bleed resistor across it does (the
    /// string's current does not carry it). Its SOC falls by `charge_c/(3600·Q·SOH)`; its
    /// elements and the string's voltage follow at the next step.
    pub fn bleed_cell(&mut self, i: usize, charge_c: f64) {
        self.step_heat = None;
        self.step_soc = None;
        if let Some(c) = self.cells.get_mut(i) {
            c.soc = (c.soc - charge_c.max(0.0) * c.soc_per_coulomb).clamp(0.0, 1.0);
        }
    }

    /// Capacity of the series string at 25 °C with ageing: that of its
    /// smallest cell (Ah).
    pub fn capacity_ah(&self) -> f64 {
        self.cells.iter().map(|c| c.capacity_ah).fold(f64::INFINITY, f64::min) * self.health
    }

    /// Capacity usable at the present temperature (Ah): [`Self::capacity_ah`] × f_Q(T).
    pub fn usable_capacity_ah(&self) -> f64 {
        self.capacity_ah() / self.elements.inv_cap_factor
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
        match self.step_heat {
            // The pack-wide step's sum: the same terms in the same order.
            Some((bits, heat_w)) if bits == current_a.to_bits() => heat_w,
            _ => self.irreversible_heat_w(current_a) + self.reversible_heat_w(current_a),
        }
    }

    /// The irreversible part of [`Pack::heat_w`] (W).
    pub fn irreversible_heat_w(&self, current_a: f64) -> f64 {
        self.cells.iter().map(|c| c.irreversible_heat_w(current_a)).sum()
    }

    /// The reversible (entropic) part of [`Pack::heat_w`] (W). dOCV/dT is
    /// taken on the current axis's first row (the entropic coefficient
    /// depends on SOC and temperature; a current axis is not used).
    pub fn reversible_heat_w(&self, current_a: f64) -> f64 {
        let t_k = self.temp_c + ecm::ZERO_C_K;
        let e = &self.elements;
        self.cells
            .iter()
            .map(|c| {
                let x = cell_x(e, c);
                let fs = ((x - e.soc[c.hint]) * e.inv_ds[c.hint]).clamp(0.0, 1.0);
                current_a * t_k * e.entropic_v_per_k(Bracket::default(), Bracket { i: c.hint, f: fs })
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
fn cell_x(e: &Elements, c: &Cell) -> f64 {
    1.0 - (1.0 - c.soc) * e.inv_cap_factor
}

/// Looks up a cell's elements at its state (SOC via its hint) and the
/// current `c`.
#[inline]
fn evaluate_cell(e: &Elements, cell: &mut Cell, c: Bracket) {
    let x = cell_x(e, cell);
    let is = table::locate_segment(&e.soc, x, cell.hint);
    cell.hint = is;
    let s = Bracket { i: is, f: ((x - e.soc[is]) * e.inv_ds[is]).clamp(0.0, 1.0) };
    cell.ocv_v = e.ocv.at(c, s);
    cell.hyst_v = e.hyst.at(c, s);
    cell.r0_ohm = e.r0.at(c, s) * cell.r_scale;
    if let Some(rc) = e.rc.first() {
        cell.r1_ohm = rc.r.at(c, s) * cell.r_scale;
        cell.tau1_s = rc_tau(rc, c, s, cell.r1_ohm);
    }
    if let Some(rc) = e.rc.get(1) {
        cell.r2_ohm = rc.r.at(c, s) * cell.r_scale;
        cell.tau2_s = rc_tau(rc, c, s, cell.r2_ohm);
    }
}

/// τ of an RC pair: the constant, R·C for a capacitance table, the value
/// itself for a τ table.
#[inline]
fn rc_tau(rc: &RcQuantity, c: Bracket, s: Bracket, r_ohm: f64) -> f64 {
    match rc.tau_const {
        Some(t) => t,
        None => {
            let v = rc.x.at(c, s);
            if rc.x_is_c { v * r_ohm } else { v }
        }
    }
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
    fn segment_rows_give_the_tables_values_to_the_bit() {
        // The pack-wide step reads the elements from per-segment rows; a
        // re-evaluation (refresh_ageing) reads the tables. Across SOC
        // segments and temperature changes they must agree to the bit
        // (without ageing, which a refresh would apply).
        let p = PackParams { ageing: AgeingParams::none(), ..PackParams::default() };
        let mut pk = pack(&p, Variant::V48, 0.95, 3);
        assert!(pk.elements.segments.is_some());
        for (k, temp_c) in [25.0, 24.97, 10.0, -12.5, 41.0].into_iter().enumerate() {
            pk.set_temperature_c(temp_c);
            for _ in 0..40 {
                pk.step(10.0, if k % 2 == 0 { -150.0 } else { 60.0 });
                let stepped = pk.cells().to_vec();
                let v = pk.terminal_voltage_v(0.0);
                pk.refresh_ageing();
                assert_eq!(pk.cells(), &stepped[..], "{temp_c} °C");
                assert_eq!(pk.terminal_voltage_v(0.0).to_bits(), v.to_bits());
            }
        }
    }

    /// Issue 18: the heat the pack-wide step sums is `heat_w`'s to the bit, across SOC
    /// segments, temperature changes, both directions, rest and a bleed.
    #[test]
    fn issue_18_the_steps_heat_is_heat_w_to_the_bit() {
        let p = PackParams { ageing: AgeingParams::none(), ..PackParams::default() };
        let mut pk = pack(&p, Variant::V48, 0.97, 5);
        assert!(pk.elements.segments.as_ref().is_some_and(|s| s.entropic));
        let mut summed = 0;
        for (k, temp_c) in [25.0, 24.97, 10.0, -12.5, 41.0].into_iter().enumerate() {
            pk.set_temperature_c(temp_c);
            for n in 0..60 {
                let i = [-150.0, 60.0, 0.0, -0.0][(k + n) % 4];
                pk.step(10.0, i);
                if n == 30 {
                    pk.bleed_cell(1, 50.0);
                }
                summed += usize::from(pk.step_heat.is_some());
                let fused = pk.heat_w(i);
                let soc_by_cell = pk.cells().iter().map(|c| c.soc).sum::<f64>() / pk.cells().len() as f64;
                assert_eq!(pk.soc().to_bits(), soc_by_cell.to_bits(), "{temp_c} °C, {i} A, step {n}");
                let by_cell = pk.irreversible_heat_w(i) + pk.reversible_heat_w(i);
                assert_eq!(fused.to_bits(), by_cell.to_bits(), "{temp_c} °C, {i} A, step {n}");
                // Another current than the step's: computed, not the step's sum.
                let other = pk.heat_w(i + 1.0);
                assert_eq!(
                    other.to_bits(),
                    (pk.irreversible_heat_w(i + 1.0) + pk.reversible_heat_w(i + 1.0)).to_bits()
                );
            }
        }
        assert!(summed > 250, "the step's sum was used ({summed} of 300)");
    }

    #[test]
    fn set_temperature_at_is_set_temperature_then_a_zero_step() {
        // The external set's tables depend on current and τ = R·C: the per-cell path.
        let text = HAND.replace(
            "r0_ohm = 0.010",
            "current_a = [-100.0, 0.0, 100.0]\ntemp_c = [0.0, 40.0]\nr0_ohm = [[[0.012, 0.011], [0.010, 0.009], [0.012, 0.013]], [[0.006, 0.005], [0.005, 0.004], [0.006, 0.007]]]",
        );
        let ecm = EcmParams::from_toml_str(&text).unwrap();
        let params = PackParams::uniform(CellParams::default());
        let build = || Pack::from_ecm(&ecm, &params, Variant::V12, 0.6, &mut SeedStreams::new(0).stream("p")).unwrap();
        let (mut a, mut b) = (build(), build());
        for (k, temp_c) in [12.0, 12.5, 30.0].into_iter().enumerate() {
            let i = [-40.0, 75.0, 0.0][k];
            a.step(5.0, -20.0);
            b.step(5.0, -20.0);
            a.set_temperature_c(temp_c);
            a.step(0.0, i);
            b.set_temperature_at(temp_c, i);
            assert_eq!(a.cells(), b.cells());
            assert_eq!(a.terminal_voltage_v(i).to_bits(), b.terminal_voltage_v(i).to_bits());
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
    fn cell_voltages_sum_to_the_terminal_voltage_and_an_odd_cell_keeps_the_draws() {
        let p = PackParams::default();
        let mut pk = pack(&p, Variant::V24, 0.6, 4);
        run(&mut pk, 1.0, 60, -50.0);
        let sum: f64 = (0..8).map(|i| pk.cell_voltage_v(i, -50.0)).sum();
        assert!((sum - pk.terminal_voltage_v(-50.0)).abs() < 1e-9);
        assert_eq!(pk.cell_voltage_v(8, 0.0), 0.0);
        let odd = PackParams { odd_cell: Some(OddCell { index: 3, capacity_rel: 0.92, soc_offset: 0.02 }), ..p };
        let (a, b) = (pack(&p, Variant::V24, 0.6, 4), pack(&odd, Variant::V24, 0.6, 4));
        for (k, (x, y)) in a.cells().iter().zip(b.cells()).enumerate() {
            if k == 2 {
                assert!((y.capacity_ah() / x.capacity_ah() - 0.92).abs() < 1e-12);
                assert!((y.soc - x.soc - 0.02).abs() < 1e-12);
            } else {
                assert_eq!(x, y);
            }
        }
        let far = PackParams { odd_cell: Some(OddCell { index: 9, capacity_rel: 1.0, soc_offset: 0.0 }), ..p };
        let err = Pack::from_ecm(
            &EcmParams::from_cell(&p.cell),
            &far,
            Variant::V24,
            0.5,
            &mut SeedStreams::new(0).stream("p"),
        );
        assert_eq!(err.unwrap_err().name, "odd_cell.index");
    }

    #[test]
    fn bleeding_one_cell_moves_its_charge_only() {
        let p = PackParams::uniform(CellParams::ideal_thevenin());
        let mut pk = pack(&p, Variant::V12, 0.5, 1);
        pk.bleed_cell(1, 3600.0); // 1 Ah of 100 Ah
        pk.step(0.0, 0.0);
        assert!((pk.cells()[1].soc - 0.49).abs() < 1e-12);
        assert_eq!(pk.cells()[0].soc, 0.5);
        assert!(pk.cell_voltage_v(1, 0.0) < pk.cell_voltage_v(0, 0.0));
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
