//! The comparison itself: per quantity, the board's value against the
//! twin's, within the tolerances; the named findings; the protection
//! trips; the registers' documented ranges.

use firmware_core::map::{RegId, faults, status};
use models::variant::{CURRENT_OFFSET_ERROR_PCT_FS, CURRENT_RESOLUTION_A, CURRENT_TOTAL_ERROR_PCT_FS};
use smartpro_sim::engine::Truth;

use crate::decode;
use crate::source::Registers;
use crate::tolerance::{CURRENT_FS_A, STEP_A, Tolerances, soc_temp_term};
use crate::twin::Drive;

/// A quantity compared board vs twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Q {
    Current,
    Voltage,
    Soc,
    SocAh,
    SocWh,
    SocTemp,
    SocTracked,
    Temperature,
    InternalResistance,
    ChargedAh,
    DischargedAh,
    ChargedWh,
    DischargedWh,
}

impl Q {
    pub const ALL: [Q; 13] = [
        Q::Current,
        Q::Voltage,
        Q::Soc,
        Q::SocAh,
        Q::SocWh,
        Q::SocTemp,
        Q::SocTracked,
        Q::Temperature,
        Q::InternalResistance,
        Q::ChargedAh,
        Q::DischargedAh,
        Q::ChargedWh,
        Q::DischargedWh,
    ];

    /// Name in tables, CSV columns and file names.
    pub fn key(self) -> &'static str {
        match self {
            Q::Current => "current",
            Q::Voltage => "voltage",
            Q::Soc => "soc",
            Q::SocAh => "soc_ah",
            Q::SocWh => "soc_wh",
            Q::SocTemp => "soc_temp",
            Q::SocTracked => "soc_tracked",
            Q::Temperature => "temperature",
            Q::InternalResistance => "internal_resistance",
            Q::ChargedAh => "charged_ah",
            Q::DischargedAh => "discharged_ah",
            Q::ChargedWh => "charged_wh",
            Q::DischargedWh => "discharged_wh",
        }
    }

    /// What the board's value is and what the twin's.
    pub fn title(self) -> &'static str {
        match self {
            Q::Current => "current: board's measurement vs the twin's true current",
            Q::Voltage => "battery voltage: board's measurement vs the twin's true pack voltage",
            Q::Soc => "SOC, selected method (soc_centipct)",
            Q::SocAh => "SOC, Ah method (soc_ah_centipct)",
            Q::SocWh => "SOC, Wh method (soc_wh_centipct)",
            Q::SocTemp => "SOC, temperature-compensated (soc_temp_centipct)",
            Q::SocTracked => "SOC: board's Ah method vs the twin's tracking filter (±2σ band)",
            Q::Temperature => "battery temperature: board's NTC vs the twin's true cell temperature",
            Q::InternalResistance => "internal resistance: board's estimate vs the twin's R0",
            Q::ChargedAh => "charged total since the start (charged_total_dah)",
            Q::DischargedAh => "discharged total since the start (discharged_total_dah)",
            Q::ChargedWh => "charged energy since the start (charged_total_wh)",
            Q::DischargedWh => "discharged energy since the start (discharged_total_wh)",
        }
    }

    /// Unit of the values (tables, plots).
    pub fn unit(self) -> &'static str {
        match self {
            Q::Current => "A",
            Q::Voltage => "V",
            Q::Soc | Q::SocAh | Q::SocWh | Q::SocTemp | Q::SocTracked => "%",
            Q::Temperature => "°C",
            Q::InternalResistance => "mΩ",
            Q::ChargedAh | Q::DischargedAh => "Ah",
            Q::ChargedWh | Q::DischargedWh => "Wh",
        }
    }

    /// Unit in CSV column names (ASCII).
    pub fn csv_unit(self) -> &'static str {
        match self {
            Q::Soc | Q::SocAh | Q::SocWh | Q::SocTemp | Q::SocTracked => "pct",
            Q::Temperature => "C",
            Q::InternalResistance => "mohm",
            q => q.unit(),
        }
    }

    /// Decimals shown.
    pub fn decimals(self) -> usize {
        match self {
            Q::Current | Q::Voltage | Q::InternalResistance => 3,
            Q::Soc | Q::SocAh | Q::SocWh | Q::SocTemp | Q::SocTracked => 2,
            Q::Temperature | Q::ChargedAh | Q::DischargedAh => 1,
            Q::ChargedWh | Q::DischargedWh => 0,
        }
    }

    fn soc_register(self) -> Option<RegId> {
        match self {
            Q::Soc => Some(RegId::Soc),
            Q::SocAh => Some(RegId::SocAh),
            Q::SocWh => Some(RegId::SocWh),
            Q::SocTemp => Some(RegId::SocTemperatureCompensated),
            _ => None,
        }
    }

    fn total_register(self) -> Option<RegId> {
        match self {
            Q::ChargedAh => Some(RegId::ChargedTotal),
            Q::DischargedAh => Some(RegId::DischargedTotal),
            Q::ChargedWh => Some(RegId::ChargedEnergyTotal),
            Q::DischargedWh => Some(RegId::DischargedEnergyTotal),
            _ => None,
        }
    }
}

/// One quantity at one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    pub board: Option<f64>,
    pub twin: Option<f64>,
    /// board − twin (less the initial difference where that applies).
    pub err: Option<f64>,
    pub tol: f64,
    /// Counted in the statistics (outside grace times, both values present).
    pub judged: bool,
    /// The twin's own uncertainty, if it has one: the tracking filter's 2σ.
    pub band: Option<f64>,
}

/// Running statistics of one quantity.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Judged samples.
    pub n: u64,
    /// Judged samples out of tolerance.
    pub out: u64,
    pub sum_abs: f64,
    pub max_abs: f64,
    /// The tolerance at the sample of `max_abs`, and its time.
    pub tol_at_max: f64,
    pub max_at_s: f64,
    /// The first judged sample out of tolerance.
    pub first_out_s: Option<f64>,
    /// The sample most out of tolerance: (error, tolerance, time, board, twin).
    pub worst: Option<(f64, f64, f64, f64, f64)>,
    /// Least-squares sums of the error over time (h): Σt, Σe, Σt², Σte.
    lsq: [f64; 4],
}

impl Stats {
    fn add(&mut self, t_s: f64, p: &Point) {
        let (Some(e), Some(b), Some(w)) = (p.err, p.board, p.twin) else { return };
        self.n += 1;
        let a = e.abs();
        self.sum_abs += a;
        if a > self.max_abs || self.n == 1 {
            (self.max_abs, self.tol_at_max, self.max_at_s) = (a, p.tol, t_s);
        }
        if a > p.tol {
            self.out += 1;
            self.first_out_s.get_or_insert(t_s);
            if self.worst.is_none_or(|(we, wt, ..)| a - p.tol > we.abs() - wt) {
                self.worst = Some((e, p.tol, t_s, b, w));
            }
        }
        let h = t_s / 3600.0;
        self.lsq[0] += h;
        self.lsq[1] += e;
        self.lsq[2] += h * h;
        self.lsq[3] += h * e;
    }

    pub fn mean_abs(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.sum_abs / self.n as f64 }
    }

    /// Mean error (signed).
    pub fn mean(&self) -> f64 {
        if self.n == 0 { 0.0 } else { self.lsq[1] / self.n as f64 }
    }

    /// Least-squares slope of the error over time, per hour (`None` with
    /// fewer than two distinct times).
    pub fn slope_per_h(&self) -> Option<f64> {
        let n = self.n as f64;
        let [st, se, stt, ste] = self.lsq;
        let d = n * stt - st * st;
        (self.n >= 2 && d > 1e-18 * n * n).then(|| (n * ste - st * se) / d)
    }

    pub fn passed(&self) -> bool {
        self.out == 0
    }
}

/// A named discrepancy.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// Short identifier (a JUnit test case name): `current_offset`, `protection_lvp`, …
    pub id: String,
    pub message: String,
}

/// A protection trip seen on one side.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Trip {
    t_s: f64,
    /// Since when the protection's condition held, as this side measured it.
    condition_since_s: Option<f64>,
}

/// One side's (board's or twin's) protection history.
#[derive(Clone, Debug, Default)]
struct Protection {
    prev: Option<u16>,
    /// Per fault bit: since when its condition holds (from the side's own measurements and settings).
    since: [Option<f64>; 16],
    trips: [Vec<Trip>; 16],
    /// Per fault bit: the spans its condition held, (first sample with it,
    /// first sample without it), the last one open (`INFINITY`) while it holds.
    held: [Vec<(f64, f64)>; 16],
    /// SOC synchronisations: full charge (status `full` rising) and empty (LVP trip).
    syncs: Vec<(bool, f64)>,
    prev_full: Option<bool>,
}

impl Protection {
    fn add(&mut self, t_s: f64, regs: &Registers, raw: &[Option<i64>]) {
        let value = |id| regs.value(raw, id);
        let (v, i, temp) = (value(RegId::BatteryVoltage), value(RegId::Current), value(RegId::Temperature));
        let conditions: [(u16, Option<bool>); 8] = [
            (faults::LVP, v.zip(value(RegId::LvpThreshold)).map(|(v, th)| v < th)),
            (faults::OVP, v.zip(value(RegId::OvpThreshold)).map(|(v, th)| v > th)),
            (faults::OCC, i.zip(value(RegId::OccThreshold)).map(|(i, th)| i > th)),
            (faults::OCD, i.zip(value(RegId::OcdThreshold)).map(|(i, th)| -i > th)),
            (faults::OTC, temp.zip(value(RegId::OtcThreshold)).map(|(t, th)| t > th)),
            (faults::UTC, temp.zip(value(RegId::UtcThreshold)).map(|(t, th)| t < th)),
            (faults::OTD, temp.zip(value(RegId::OtdThreshold)).map(|(t, th)| t > th)),
            (faults::UTD, temp.zip(value(RegId::UtdThreshold)).map(|(t, th)| t < th)),
        ];
        for (bit, holds) in conditions {
            let k = bit.trailing_zeros() as usize;
            match holds {
                Some(true) => {
                    if self.since[k].is_none() {
                        self.held[k].push((t_s, f64::INFINITY));
                    }
                    self.since[k].get_or_insert(t_s);
                }
                Some(false) => {
                    if self.since[k].take().is_some()
                        && let Some(last) = self.held[k].last_mut()
                    {
                        last.1 = t_s;
                    }
                }
                None => {}
            }
        }
        if let Some(f) = regs.raw(raw, RegId::Faults).map(|f| f as u16) {
            let rising = f & !self.prev.unwrap_or(0);
            for k in (0..16).filter(|k| rising & (1 << k) != 0) {
                self.trips[k].push(Trip { t_s, condition_since_s: self.since[k] });
                if 1 << k == faults::LVP {
                    self.syncs.push((false, t_s));
                }
            }
            self.prev = Some(f);
        }
        if let Some(st) = regs.raw(raw, RegId::Status).map(|s| s as u16) {
            let full = st & status::FULL != 0;
            if full && self.prev_full == Some(false) {
                self.syncs.push((true, t_s));
            }
            self.prev_full = Some(full);
        }
    }
}

/// A register outside its documented range.
#[derive(Clone, Debug, PartialEq)]
struct OutOfRange {
    first_s: f64,
    raw: i64,
    count: u64,
}

/// The twin at a board sample.
#[derive(Clone, Copy, Debug)]
pub struct TwinState<'a> {
    /// The twin's own time (s; scenario drive: since the scenario's start).
    pub t_s: f64,
    /// Its board's registers.
    pub registers: &'a [Option<i64>],
    /// Its battery's true state.
    pub truth: &'a Truth,
    /// Its pack's R0 now (Ω).
    pub r0_ohm: f64,
    /// Its tracking filter.
    pub tracked: &'a Tracked,
}

/// What the comparison is set up with.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub drive: Drive,
    pub tol: Tolerances,
    /// Typical time between samples (s) until the samples' own board times tell.
    pub interval_s: f64,
}

/// Everything compared so far.
#[derive(Debug)]
pub struct Judge {
    setup: Setup,
    regs: Registers,
    pub stats: Vec<(Q, Stats)>,
    /// Why a quantity is not compared at all.
    pub not_compared: Vec<(Q, String)>,
    first: Option<First>,
    prev_current: Option<(f64, f64)>,
    grace_until_s: f64,
    /// Offsets of the SOC methods (measured drive: board − twin at the start, or at a common sync).
    soc_offset: [f64; 4],
    /// Time the SOC tolerance accumulates from, and the sync term (points).
    soc_ref_s: f64,
    soc_sync_pct: f64,
    /// Measured drive: the SOC the uptime's resolution at the current steps
    /// since the SOC reference can put between board and twin (points).
    soc_step_pct: f64,
    /// The energy totals' tolerance accumulated so far (Wh), and the previous sample's time.
    wh_tol: f64,
    prev_t_s: Option<f64>,
    /// Board current at rest (twin at 0 A), judged samples: Σ, n.
    rest_sum_a: f64,
    rest_n: u64,
    /// Board current under load: Σb·t, Σt², Σt (t: the twin's true current).
    load_gain: [f64; 3],
    /// Voltage: Σ b·t, Σ t².
    volt_gain: [f64; 2],
    board_prot: Protection,
    twin_prot: Protection,
    ranges: Vec<(usize, OutOfRange)>,
    /// The board restarted: (time, uptime before, after).
    pub restarted: Option<(f64, f64, f64)>,
    pub samples: u64,
    pub last_t_s: f64,
    /// The last board-time steps between samples (s), for [`Judge::interval_s`].
    steps_s: Vec<f64>,
}

/// Board-time steps kept for the sample interval's median.
const STEPS_KEPT: usize = 101;

/// Values at the first sample.
#[derive(Clone, Debug)]
struct First {
    capacity_ah: f64,
    board_totals: [f64; 4],
    twin_totals: [f64; 4],
}

const TOTALS: [Q; 4] = [Q::ChargedAh, Q::DischargedAh, Q::ChargedWh, Q::DischargedWh];
const SOCS: [Q; 4] = [Q::Soc, Q::SocAh, Q::SocWh, Q::SocTemp];

/// The twin's current is "at rest" within the current register's resolution.
const REST_A: f64 = CURRENT_RESOLUTION_A;

/// The board's SOC is judged against the tracking filter's within this
/// many of the filter's σ (plus the SOC tolerance of the Ah method): the
/// plots and the CSV show the 2σ band; 3σ keeps a consistent filter's
/// chance excursions from failing a good board.
pub const TRACKED_SIGMAS: f64 = 3.0;

/// The twin's tracking filter now: SOC and its 1σ (points), or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum Tracked {
    Estimate { soc_pct: f64, sigma_pct: f64 },
    None(String),
}

impl Judge {
    pub fn new(setup: Setup, regs: Registers) -> Self {
        let mut not_compared = Vec::new();
        if setup.drive == Drive::Measured {
            not_compared.push((Q::Current, "measured drive: the twin is fed the board's current".to_string()));
        }
        Self {
            setup,
            regs,
            stats: Q::ALL.iter().map(|&q| (q, Stats::default())).collect(),
            not_compared,
            first: None,
            prev_current: None,
            grace_until_s: 0.0,
            soc_offset: [0.0; 4],
            soc_ref_s: 0.0,
            soc_sync_pct: 0.0,
            soc_step_pct: 0.0,
            wh_tol: 0.0,
            prev_t_s: None,
            rest_sum_a: 0.0,
            rest_n: 0,
            load_gain: [0.0; 3],
            volt_gain: [0.0; 2],
            board_prot: Protection::default(),
            twin_prot: Protection::default(),
            ranges: Vec::new(),
            restarted: None,
            samples: 0,
            last_t_s: 0.0,
            steps_s: Vec::new(),
        }
    }

    /// Replaces the tolerances (before the first sample: the board turned out
    /// to be of another variant than the twin was first built for).
    pub fn set_tolerances(&mut self, tol: Tolerances) {
        self.setup.tol = tol;
    }

    /// The tolerances in use.
    pub fn tolerances(&self) -> &Tolerances {
        &self.setup.tol
    }

    /// The board time between samples (s): the median of the recent steps
    /// (a stand-in at `--speed K` runs K board seconds per wall second), or
    /// the set-up's figure before there are any.
    pub fn interval_s(&self) -> f64 {
        if self.steps_s.is_empty() {
            return self.setup.interval_s;
        }
        let mut d = self.steps_s.clone();
        d.sort_by(f64::total_cmp);
        d[d.len() / 2]
    }

    pub fn stats(&self, q: Q) -> &Stats {
        &self.stats.iter().find(|(k, _)| *k == q).expect("every quantity has stats").1
    }

    /// Compares one sample: `t_s` board time since the start, the board's
    /// registers, and the twin's state at the same time. Returns the points
    /// of every quantity (for the CSV and the plots).
    pub fn add(&mut self, t_s: f64, board: &[Option<i64>], twin_state: &TwinState<'_>) -> Vec<(Q, Point)> {
        let TwinState { t_s: twin_t_s, registers: twin, truth, r0_ohm, tracked } = *twin_state;
        let regs = &self.regs;
        let tol = self.setup.tol;
        let b = |id| regs.value(board, id);
        let w = |id| regs.value(twin, id);
        self.samples += 1;
        self.last_t_s = t_s;

        let first = self
            .first
            .get_or_insert_with(|| First {
                capacity_ah: b(RegId::Capacity).or(w(RegId::Capacity)).unwrap_or(100.0).max(0.1),
                board_totals: TOTALS.map(|q| q.total_register().and_then(b).unwrap_or(0.0)),
                twin_totals: TOTALS.map(|q| q.total_register().and_then(w).unwrap_or(0.0)),
            })
            .clone();
        let capacity_ah = first.capacity_ah;
        let start = self.prev_t_s.is_none();
        if start && self.setup.drive == Drive::Measured {
            for (k, q) in SOCS.iter().enumerate() {
                let reg = q.soc_register().expect("a SOC quantity");
                if let (Some(x), Some(y)) = (b(reg), w(reg)) {
                    self.soc_offset[k] = x - y;
                }
            }
        }
        let dt_s = self.prev_t_s.map_or(0.0, |p| (t_s - p).max(0.0));
        if self.prev_t_s.is_some() {
            if self.steps_s.len() == STEPS_KEPT {
                self.steps_s.remove(0);
            }
            self.steps_s.push(dt_s);
        }
        self.prev_t_s = Some(t_s);

        // Steps: the start, or the board's or the twin's current moving by more than STEP_A.
        let board_i = b(RegId::Current);
        let now_i = (board_i.unwrap_or(truth.current_a), truth.current_a);
        let stepped =
            self.prev_current.is_none_or(|(pb, pt)| (now_i.0 - pb).abs() > STEP_A || (now_i.1 - pt).abs() > STEP_A);
        // A step of the board's current between two samples is taken by the
        // measured-drive twin at the sample (its last two blocks before it),
        // the board took it up to the uptime's resolution earlier: up to
        // ½ × UPTIME_RESOLUTION_S × |ΔI| of charge (the board's count over
        // such an interval runs the twin at the mean current only beyond that:
        // `Twin::advance_counted`).
        if let (Drive::Measured, Some((pb, _)), Some(bi)) = (self.setup.drive, self.prev_current, board_i)
            && (bi - pb).abs() > STEP_A
        {
            self.soc_step_pct +=
                0.5 * crate::twin::UPTIME_RESOLUTION_S * (bi - pb).abs() / 3600.0 / capacity_ah * 100.0;
        }
        self.prev_current = Some(now_i);
        if stepped {
            self.grace_until_s = t_s;
        }
        let since_step_s = t_s - self.grace_until_s;

        // SOC synchronisations (full, empty) on both sides within the protection
        // grace: the SOC error starts again from there.
        self.board_prot.add(t_s, regs, board);
        self.twin_prot.add(t_s, regs, twin);
        let window = tol.protection_grace_s + self.interval_s();
        if let (Some(&(bk, bt)), Some(&(tk, tt))) = (self.board_prot.syncs.last(), self.twin_prot.syncs.last()) {
            let later = bt.max(tt);
            if bk == tk && (bt - tt).abs() <= window && later > self.soc_ref_s && later <= t_s {
                self.soc_ref_s = later;
                self.soc_step_pct = 0.0;
                let i = board_i.unwrap_or(0.0).abs();
                self.soc_sync_pct = i * (bt - tt).abs() / 3600.0 / capacity_ah * 100.0;
                for (k, q) in SOCS.iter().enumerate() {
                    let reg = q.soc_register().expect("a SOC quantity");
                    if let (Some(x), Some(y)) = (b(reg), w(reg)) {
                        self.soc_offset[k] = x - y;
                    }
                }
            }
        }

        let soc_tol = tol.soc_pct
            + self.soc_sync_pct
            + self.soc_step_pct
            + tol.soc_current_a * (twin_t_s - self.soc_ref_s).max(0.0) / 3600.0 / capacity_ah * 100.0;
        let v_now = b(RegId::BatteryVoltage).unwrap_or(truth.voltage_v);
        self.wh_tol += (tol.soc_current_a * v_now + truth.current_a.abs() * tol.voltage_v) * dt_s / 3600.0;

        let mut points = Vec::with_capacity(Q::ALL.len());
        for q in Q::ALL {
            let p = match q {
                Q::Current if self.setup.drive == Drive::Measured => Point { board: board_i, ..Point::default() },
                Q::Current => {
                    let twin_i = truth.current_a;
                    let rest = twin_i.abs() <= REST_A;
                    let judged = board_i.is_some() && since_step_s >= tol.current_grace_s;
                    if judged {
                        let bi = board_i.unwrap_or(0.0);
                        if rest {
                            self.rest_sum_a += bi;
                            self.rest_n += 1;
                        } else {
                            self.load_gain[0] += bi * twin_i;
                            self.load_gain[1] += twin_i * twin_i;
                            self.load_gain[2] += twin_i;
                        }
                    }
                    Point {
                        board: board_i,
                        twin: Some(twin_i),
                        err: board_i.map(|x| x - twin_i),
                        tol: if rest { tol.current_offset_a } else { tol.current_a },
                        judged,
                        band: None,
                    }
                }
                Q::Voltage => {
                    let bv = b(RegId::BatteryVoltage);
                    let judged = bv.is_some() && since_step_s >= tol.voltage_grace_s;
                    if let (true, Some(x)) = (judged, bv) {
                        self.volt_gain[0] += x * truth.voltage_v;
                        self.volt_gain[1] += truth.voltage_v * truth.voltage_v;
                    }
                    Point {
                        board: bv,
                        twin: Some(truth.voltage_v),
                        err: bv.map(|x| x - truth.voltage_v),
                        tol: tol.voltage_v,
                        judged,
                        band: None,
                    }
                }
                Q::Soc | Q::SocAh | Q::SocWh | Q::SocTemp => {
                    let k = SOCS.iter().position(|s| *s == q).expect("a SOC quantity");
                    let reg = q.soc_register().expect("a SOC quantity");
                    let (x, y) = (b(reg), w(reg));
                    let mut t = soc_tol;
                    if q == Q::SocTemp {
                        t += soc_temp_term(b(RegId::SocAh), b(RegId::Temperature), tol.temperature_k);
                    }
                    let err = x.zip(y).map(|(x, y)| x - y - self.soc_offset[k]);
                    Point { board: x, twin: y, err, tol: t, judged: err.is_some(), band: None }
                }
                Q::SocTracked => match tracked {
                    Tracked::Estimate { soc_pct, sigma_pct } => {
                        let x = b(RegId::SocAh);
                        Point {
                            board: x,
                            twin: Some(*soc_pct),
                            err: x.map(|x| x - soc_pct),
                            tol: soc_tol + TRACKED_SIGMAS * sigma_pct,
                            judged: x.is_some(),
                            band: Some(2.0 * sigma_pct),
                        }
                    }
                    Tracked::None(why) => {
                        if !self.not_compared.iter().any(|(k, _)| *k == Q::SocTracked) {
                            self.not_compared.push((Q::SocTracked, why.clone()));
                        }
                        Point { board: b(RegId::SocAh), ..Point::default() }
                    }
                },
                Q::Temperature => {
                    let x = b(RegId::Temperature);
                    Point {
                        board: x,
                        twin: Some(truth.temp_c),
                        err: x.map(|x| x - truth.temp_c),
                        tol: tol.temperature_k,
                        judged: x.is_some() && t_s >= tol.temperature_grace_s,
                        band: None,
                    }
                }
                Q::InternalResistance => {
                    let valid = regs.raw(board, RegId::InternalResistanceValid) == Some(1);
                    let x = b(RegId::InternalResistance).filter(|_| valid).map(|r| r * 1e3);
                    let y = r0_ohm * 1e3;
                    Point {
                        board: x,
                        twin: Some(y),
                        err: x.map(|x| x - y),
                        tol: tol.resistance_at(r0_ohm) * 1e3,
                        judged: x.is_some(),
                        band: None,
                    }
                }
                Q::ChargedAh | Q::DischargedAh | Q::ChargedWh | Q::DischargedWh => {
                    let k = TOTALS.iter().position(|s| *s == q).expect("a total");
                    let reg = q.total_register().expect("a total");
                    let x = b(reg).map(|v| v - first.board_totals[k]);
                    let y = w(reg).map(|v| v - first.twin_totals[k]);
                    let t = if matches!(q, Q::ChargedAh | Q::DischargedAh) {
                        tol.total_ah + tol.soc_current_a * twin_t_s.max(0.0).min(t_s) / 3600.0
                    } else {
                        tol.total_wh + self.wh_tol
                    };
                    let err = x.zip(y).map(|(x, y)| x - y);
                    Point { board: x, twin: y, err, tol: t, judged: err.is_some(), band: None }
                }
            };
            if p.judged {
                self.stats.iter_mut().find(|(k, _)| *k == q).expect("every quantity has stats").1.add(t_s, &p);
            }
            points.push((q, p));
        }

        for (k, reg) in regs.list.iter().enumerate() {
            let Some(raw) = board.get(k).copied().flatten() else { continue };
            if (reg.min..=reg.max).contains(&raw) {
                continue;
            }
            match self.ranges.iter_mut().find(|(j, _)| *j == k) {
                Some((_, o)) => o.count += 1,
                None => self.ranges.push((k, OutOfRange { first_s: t_s, raw, count: 1 })),
            }
        }
        points
    }

    /// The board restarted: its uptime went back.
    pub fn board_restarted(&mut self, t_s: f64, before: f64, after: f64) {
        self.restarted = Some((t_s, before, after));
    }

    /// Every named discrepancy found so far.
    pub fn findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let tol = &self.setup.tol;
        let fs_pct = |a: f64| a / CURRENT_FS_A * 100.0;
        let spec_or_tol = |default: f64, spec_pct: f64, now: f64| {
            if (default - now).abs() < 1e-12 {
                format!("spec {spec_pct} % FS")
            } else {
                format!("tolerance {:.4} % FS", fs_pct(now))
            }
        };
        let datasheet = Tolerances::datasheet(models::variant::Variant::V12);

        // Current: the offset at rest, the error under load.
        let cur = self.stats(Q::Current);
        let offset_a = (self.rest_n > 0).then(|| self.rest_sum_a / self.rest_n as f64);
        if let Some(o) = offset_a.filter(|o| o.abs() > tol.current_offset_a) {
            out.push(Finding {
                id: "current_offset".into(),
                message: format!(
                    "current offset {:.3} % FS at rest ({:+.3} A; {})",
                    fs_pct(o.abs()),
                    o,
                    spec_or_tol(datasheet.current_offset_a, CURRENT_OFFSET_ERROR_PCT_FS, tol.current_offset_a)
                ),
            });
        }
        if let Some((e, t, at, _, twin_i)) = cur.worst.filter(|w| w.4.abs() > REST_A) {
            let o = offset_a.unwrap_or(0.0);
            // The gain through the offset at rest: b = o + (1 + g)·t.
            let [sbt, stt, st] = self.load_gain;
            let gain = (stt > 0.0)
                .then(|| (sbt - o * st) / stt - 1.0)
                .map_or(String::new(), |g| format!("; gain error {:+.3} %", g * 100.0));
            out.push(Finding {
                id: "current_error".into(),
                message: format!(
                    "current error {:+.3} A ({:.3} % FS) at {twin_i:.1} A, t = {at:.1} s ({}{gain})",
                    e,
                    fs_pct(e.abs()),
                    if (t - datasheet.current_a).abs() < 1e-12 {
                        format!("spec {CURRENT_TOTAL_ERROR_PCT_FS} % FS")
                    } else {
                        format!("tolerance {t:.3} A")
                    }
                ),
            });
        }

        // Voltage: as a gain error.
        let v = self.stats(Q::Voltage);
        if !v.passed() && self.volt_gain[1] > 0.0 {
            let g = self.volt_gain[0] / self.volt_gain[1] - 1.0;
            out.push(Finding {
                id: "voltage_gain".into(),
                message: format!(
                    "voltage gain error {:+.2} % (max error {:.3} V at t = {:.1} s, tolerance {:.3} V)",
                    g * 100.0,
                    v.max_abs,
                    v.max_at_s,
                    v.tol_at_max
                ),
            });
        }

        // SOC: as a drift.
        for q in SOCS {
            let s = self.stats(q);
            if s.passed() {
                continue;
            }
            let rate = tol.soc_current_a / self.first.as_ref().map_or(100.0, |f| f.capacity_ah) * 100.0;
            let slope = s.slope_per_h().map_or("an unknown rate".to_string(), |r| format!("{r:+.3} %/h"));
            out.push(Finding {
                id: format!("{}_drift", q.key()),
                message: format!(
                    "SOC ({}) drifts from the twin's at {slope} (max error {:.2} points at t = {:.1} s; the \
                     datasheet's current error allows {rate:.3} %/h)",
                    q.key(),
                    s.max_abs,
                    s.max_at_s
                ),
            });
        }

        let k = self.stats(Q::SocTracked);
        if let Some((e, tl, at, x, y)) = k.worst {
            out.push(Finding {
                id: "soc_tracked".into(),
                message: format!(
                    "the board's SOC (Ah method) {x:.2} % is {e:+.2} points from the twin's tracked SOC {y:.2} % \
                     at t = {at:.1} s (allowed there: {tl:.2} points, the filter's {TRACKED_SIGMAS}σ and the SOC \
                     tolerance)"
                ),
            });
        }

        let t = self.stats(Q::Temperature);
        if !t.passed() {
            out.push(Finding {
                id: "temperature_offset".into(),
                message: format!(
                    "temperature offset {:+.2} K (max error {:.2} K, tolerance {:.2} K)",
                    t.mean(),
                    t.max_abs,
                    tol.temperature_k
                ),
            });
        }
        let r = self.stats(Q::InternalResistance);
        if let Some((e, _, at, x, y)) = r.worst {
            out.push(Finding {
                id: "internal_resistance".into(),
                message: format!(
                    "internal resistance {x:.3} mΩ vs the twin's R0 {y:.3} mΩ ({:+.1} %) at t = {at:.1} s",
                    e / y * 100.0
                ),
            });
        }
        for q in TOTALS {
            if let Some((e, tl, at, ..)) = self.stats(q).worst {
                out.push(Finding {
                    id: q.key().into(),
                    message: format!(
                        "{} differs from the twin's by {e:+.*} {} at t = {at:.1} s (tolerance {tl:.*})",
                        q.key(),
                        q.decimals(),
                        q.unit(),
                        q.decimals()
                    ),
                });
            }
        }
        out.extend(self.protection().0);
        for (k, o) in &self.ranges {
            let reg = self.regs.list[*k];
            let unit = if reg.unit.is_empty() || reg.unit == "bits" { String::new() } else { format!(" {}", reg.unit) };
            out.push(Finding {
                id: format!("range_{}", reg.name),
                message: format!(
                    "register {} = {}{unit} outside [{}, {}] (first at t = {:.1} s, {} samples)",
                    reg.name,
                    decode::format_value(reg, o.raw),
                    decode::format_value(reg, reg.min),
                    decode::format_value(reg, reg.max),
                    o.first_s,
                    o.count
                ),
            });
        }
        if let Some((at, before, after)) = self.restarted {
            out.push(Finding {
                id: "board_restarted".into(),
                message: format!(
                    "the board restarted at t = {at:.1} s (uptime {before} s → {after} s); compared up to there"
                ),
            });
        }
        out
    }

    /// Measured drive: a board trip `b` of fault bit `k` the twin did not
    /// match, where the twin saw the same condition from within `window` of
    /// the board's until the board's trip cut the current the twin is fed
    /// (its condition held through the board's trip sample). The twin's
    /// input is the board's current held between samples, so the length of
    /// the condition is known to the uptime's resolution only: a trip delay
    /// within that of the condition's length cannot be judged in measured
    /// drive. Said as a remark ([`Self::remarks`]), not a discrepancy.
    fn fed_trip(&self, k: usize, name: &str, b: &Trip, window: f64) -> Option<String> {
        if self.setup.drive != Drive::Measured {
            return None;
        }
        // The board's condition: still holding at its trip, or ended by it (its current cut).
        let since = b.condition_since_s.or_else(|| {
            self.board_prot.held[k].iter().rev().find(|(from, to)| *from <= b.t_s && *to >= b.t_s).map(|h| h.0)
        })?;
        let &(from, to) =
            self.twin_prot.held[k].iter().find(|(from, to)| (from - since).abs() <= window && *to >= b.t_s)?;
        Some(format!(
            "protection {name} tripped on the board at t = {:.1} s, {:.1} s after its condition; the twin, fed the \
                 board's current, saw the same condition from t = {from:.1} s{} and did not trip: the condition's \
                 length is known to the uptime's {} s resolution only, so a trip delay that close is not judged in \
                 measured drive (--drive scenario judges it)",
            b.t_s,
            b.t_s - since,
            if to.is_finite() { format!(" to {to:.1} s") } else { String::new() },
            crate::twin::UPTIME_RESOLUTION_S
        ))
    }

    /// What the report's notes say besides the findings: board trips that
    /// measured drive cannot judge ([`Self::fed_trip`]).
    pub fn remarks(&self) -> Vec<String> {
        self.protection().1
    }

    /// Protection trips late, missing, early or spurious, per fault bit; and
    /// the remarks on board trips measured drive cannot judge.
    fn protection(&self) -> (Vec<Finding>, Vec<String>) {
        let mut remarks = Vec::new();
        let window = self.setup.tol.protection_grace_s + self.interval_s();
        let end = self.last_t_s;
        let mut out = Vec::new();
        for &(bit, name) in faults::NAMES {
            let k = bit.trailing_zeros() as usize;
            let (board, twin) = (&self.board_prot.trips[k], &self.twin_prot.trips[k]);
            let mut used = vec![false; board.len()];
            let delay = |t: &Trip| t.condition_since_s.map(|s| t.t_s - s);
            let delays = |b: &Trip, w: &Trip| match (delay(b), delay(w)) {
                (Some(db), Some(dw)) => format!(" (condition to trip: board {db:.1} s, twin {dw:.1} s)"),
                _ => String::new(),
            };
            for (j, w) in twin.iter().enumerate() {
                let next = twin.get(j + 1).map_or(f64::INFINITY, |n| n.t_s);
                // The board's trip for this one: the first unused within [w − window, next).
                let found =
                    board.iter().enumerate().find(|(i, b)| !used[*i] && b.t_s >= w.t_s - window && b.t_s < next);
                match found {
                    Some((i, b)) => {
                        used[i] = true;
                        let late = b.t_s - w.t_s;
                        if late > window {
                            out.push(Finding {
                                id: format!("protection_{name}"),
                                message: format!(
                                    "protection {name} tripped {late:.1} s late (board at t = {:.1} s, twin at {:.1} s){}",
                                    b.t_s,
                                    w.t_s,
                                    delays(b, w)
                                ),
                            });
                        }
                    }
                    None if end - w.t_s > window => out.push(Finding {
                        id: format!("protection_{name}"),
                        message: format!(
                            "protection {name} did not trip (the twin tripped at t = {:.1} s{})",
                            w.t_s,
                            delay(w).map_or(String::new(), |d| format!(", {d:.1} s after its condition"))
                        ),
                    }),
                    None => {}
                }
            }
            for (b, _) in board.iter().zip(&used).filter(|(_, u)| !**u) {
                if let Some(remark) = self.fed_trip(k, name, b, window) {
                    remarks.push(remark);
                    continue;
                }
                let early = twin.iter().find(|w| w.t_s > b.t_s);
                let message = match early {
                    Some(w) => format!(
                        "protection {name} tripped {:.1} s early (board at t = {:.1} s, twin at {:.1} s){}",
                        w.t_s - b.t_s,
                        b.t_s,
                        w.t_s,
                        delays(b, w)
                    ),
                    None => format!(
                        "protection {name} tripped spuriously at t = {:.1} s (the twin did not){}",
                        b.t_s,
                        delay(b).map_or(String::new(), |d| format!("; its condition held {d:.1} s"))
                    ),
                };
                out.push(Finding { id: format!("protection_{name}"), message });
            }
        }
        (out, remarks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::by_name;
    use models::variant::Variant;

    fn regs() -> Registers {
        Registers::new(crate::recording::record_columns().unwrap().1)
    }

    /// A sample with `values` (register name, physical value) set.
    fn sample(regs: &Registers, values: &[(&str, f64)]) -> Vec<Option<i64>> {
        let mut raw = vec![None; regs.list.len()];
        for (name, v) in values {
            let reg = by_name(name).unwrap();
            raw[regs.index(reg.id).unwrap()] = Some((v / reg.scale).round() as i64);
        }
        raw
    }

    fn judge(drive: Drive) -> Judge {
        let setup = Setup { drive, tol: Tolerances::datasheet(Variant::V12), interval_s: 1.0 };
        Judge::new(setup, regs())
    }

    fn none() -> Tracked {
        Tracked::None("no filter in this test".into())
    }

    /// Adds a sample at `t` (board and twin time) with the twin's R0 at 2 mΩ.
    fn add(
        j: &mut Judge,
        t: f64,
        b: &[Option<i64>],
        w: &[Option<i64>],
        truth: Truth,
        tracked: &Tracked,
    ) -> Vec<(Q, Point)> {
        j.add(t, b, &TwinState { t_s: t, registers: w, truth: &truth, r0_ohm: 0.002, tracked })
    }

    fn truth(current_a: f64, voltage_v: f64) -> Truth {
        Truth { current_a, voltage_v, soc: 0.6, temp_c: 25.0 }
    }

    #[test]
    fn an_offset_at_rest_is_named_in_percent_of_full_scale() {
        let mut j = judge(Drive::Scenario);
        let r = regs();
        for k in 0..10 {
            let b = sample(&r, &[("current_ma", 0.125), ("battery_voltage_mv", 13.2)]);
            add(&mut j, f64::from(k), &b, &b, truth(0.0, 13.2), &none());
        }
        let s = j.stats(Q::Current);
        // The start is a step: 2 s of grace, then 8 judged samples, all out.
        assert_eq!((s.n, s.out, s.first_out_s), (8, 8, Some(2.0)));
        let f = j.findings();
        assert_eq!(f[0].id, "current_offset");
        assert_eq!(f[0].message, "current offset 0.050 % FS at rest (+0.125 A; spec 0.01 % FS)");
        assert!(j.stats(Q::Voltage).passed());
    }

    #[test]
    fn a_voltage_gain_error_is_named_and_steps_get_their_grace() {
        let mut j = judge(Drive::Measured);
        let r = regs();
        for k in 0..20 {
            // A current step at 10 s; the board reads 1 % high.
            let (i, v) = if k < 10 { (0.0, 13.3) } else { (-50.0, 13.1) };
            let b = sample(&r, &[("current_ma", i), ("battery_voltage_mv", v * 1.01)]);
            add(&mut j, f64::from(k), &b, &b, truth(i, v), &none());
        }
        let s = j.stats(Q::Voltage);
        assert_eq!(s.n, 16, "2 s of grace after the start and after the step");
        let f = j.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.starts_with("voltage gain error +1.00 %"), "{}", f[0].message);
        assert_eq!(j.not_compared[0].0, Q::Current);
    }

    #[test]
    fn the_soc_tolerance_grows_with_the_current_error_and_a_drift_is_named() {
        let mut j = judge(Drive::Measured);
        let r = regs();
        // 1 h, one sample per minute; the board's SOC runs away at 0.5 %/h from a 0.3 point offset.
        for k in 0..=60 {
            let t = f64::from(k) * 60.0;
            let b = sample(&r, &[("soc_ah_centipct", 60.3 + 0.5 * t / 3600.0), ("capacity_dah", 100.0)]);
            let w = sample(&r, &[("soc_ah_centipct", 60.0)]);
            let points = add(&mut j, t, &b, &w, truth(0.0, 13.2), &none());
            let p = points.iter().find(|(q, _)| *q == Q::SocAh).unwrap().1;
            // 0.02 points + 0.1 A × t / 100 Ah.
            assert!((p.tol - (0.02 + 0.1 * t / 3600.0)).abs() < 1e-9, "{p:?}");
        }
        let s = j.stats(Q::SocAh);
        assert!(!s.passed());
        assert!((s.slope_per_h().unwrap() - 0.5).abs() < 0.02, "{s:?}");
        let f = j.findings();
        assert_eq!(f[0].id, "soc_ah_drift");
        assert!(f[0].message.contains("drifts from the twin's at +0.50"), "{}", f[0].message);
        assert!(f[0].message.contains("allows 0.100 %/h"), "{}", f[0].message);
    }

    #[test]
    fn protection_trips_late_missing_and_spurious_are_named_with_their_delays() {
        let mut j = judge(Drive::Scenario);
        let r = regs();
        let lvp = f64::from(faults::LVP);
        for k in 0..40 {
            let t = f64::from(k);
            // Both see the voltage under the LVP threshold (11.2 V) from 10 s; the
            // twin trips after 2 s, the board 10 s later. The board trips OCD at 30 s alone.
            let v = if k < 10 { 12.0 } else { 11.0 };
            let board_faults = if k >= 22 { lvp } else { 0.0 } + if k >= 30 { f64::from(faults::OCD) } else { 0.0 };
            let twin_faults = if k >= 12 { lvp } else { 0.0 };
            let common = [("battery_voltage_mv", v), ("lvp_mv", 11.2), ("current_ma", 0.0)];
            let b = sample(&r, &[&common[..], &[("faults", board_faults)]].concat());
            let w = sample(&r, &[&common[..], &[("faults", twin_faults)]].concat());
            add(&mut j, t, &b, &w, truth(0.0, v), &none());
        }
        // The window is 2 s plus the samples' own spacing in board time.
        assert_eq!(j.interval_s(), 1.0);
        let f = j.findings();
        let msgs: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
        assert!(
            msgs.contains(
                &"protection lvp tripped 10.0 s late (board at t = 22.0 s, twin at 12.0 s) \
                  (condition to trip: board 12.0 s, twin 2.0 s)"
            ),
            "{msgs:#?}"
        );
        assert!(msgs.contains(&"protection ocd tripped spuriously at t = 30.0 s (the twin did not)"), "{msgs:#?}");
    }

    #[test]
    fn the_board_soc_is_judged_within_three_sigma_of_the_tracking_filter() {
        let r = regs();
        let b = sample(&r, &[("soc_ah_centipct", 70.0), ("capacity_dah", 100.0)]);
        // 10 points off: inside a 5-point σ (3σ = 15), outside a 2-point one.
        for (sigma_pct, passes) in [(5.0, true), (2.0, false)] {
            let mut j = judge(Drive::Measured);
            let est = Tracked::Estimate { soc_pct: 60.0, sigma_pct };
            let points = add(&mut j, 0.0, &b, &b, truth(0.0, 13.2), &est);
            let p = points.iter().find(|(q, _)| *q == Q::SocTracked).unwrap().1;
            assert_eq!((p.board, p.twin, p.band), (Some(70.0), Some(60.0), Some(2.0 * sigma_pct)));
            assert!((p.tol - (0.02 + 3.0 * sigma_pct)).abs() < 1e-9, "{p:?}");
            assert_eq!(j.stats(Q::SocTracked).passed(), passes);
            let f = j.findings();
            assert_eq!(f.iter().any(|f| f.id == "soc_tracked"), !passes, "{f:?}");
        }
        let mut j = judge(Drive::Measured);
        add(&mut j, 0.0, &b, &b, truth(0.0, 13.2), &none());
        assert_eq!(j.stats(Q::SocTracked).n, 0);
        assert_eq!(j.not_compared.last().unwrap().0, Q::SocTracked);
    }

    #[test]
    fn a_register_outside_its_documented_range_is_named() {
        let mut j = judge(Drive::Measured);
        let r = regs();
        let b = sample(&r, &[("soc_centipct", 100.5), ("temperature_dc", 25.0)]);
        add(&mut j, 0.0, &b, &b, truth(0.0, 13.2), &none());
        add(&mut j, 1.0, &b, &b, truth(0.0, 13.2), &none());
        let f = j.findings();
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            f[0].message,
            "register soc_centipct = 100.50 % outside [0.00, 100.00] (first at t = 0.0 s, 2 samples)"
        );
    }

    #[test]
    fn issue_21_a_300_a_step_widens_the_soc_tolerance_by_the_uptimes_resolution() {
        // A measured-drive twin takes a 0 → 300 A step at the sample, the
        // board up to a board second earlier: ½ s × 300 A of a 100 Ah pack.
        let mut j = judge(Drive::Measured);
        let r = regs();
        let at = |i: f64| sample(&r, &[("current_ma", i), ("capacity_dah", 100.0), ("soc_centipct", 80.0)]);
        let tol = |p: &[(Q, Point)]| p.iter().find(|(q, _)| *q == Q::Soc).unwrap().1.tol;
        let before = tol(&add(&mut j, 0.0, &at(0.0), &at(0.0), truth(0.0, 13.3), &none()));
        let after = tol(&add(&mut j, 1.0, &at(-300.0), &at(-300.0), truth(-300.0, 12.7), &none()));
        let step = 0.5 * crate::twin::UPTIME_RESOLUTION_S * 300.0 / 3600.0 / 100.0 * 100.0;
        let integral = Tolerances::datasheet(Variant::V12).soc_current_a * 1.0 / 3600.0;
        assert!((after - before - step - integral).abs() < 1e-9, "{before} → {after}, step {step}");
        // Scenario drive: the twin takes the step when the board does.
        let mut j = judge(Drive::Scenario);
        let before = tol(&add(&mut j, 0.0, &at(0.0), &at(0.0), truth(0.0, 13.3), &none()));
        let after = tol(&add(&mut j, 1.0, &at(-300.0), &at(-300.0), truth(-300.0, 12.7), &none()));
        assert!((after - before - integral).abs() < 1e-9, "{before} → {after}");
    }

    #[test]
    fn issue_21_a_board_trip_that_cut_the_twins_fed_condition_is_a_note_in_measured_drive() {
        // 300 A for one sample against the 260 A / 1 s limit: the board trips
        // at the next sample (its current then 0); the twin, fed that 0, did not.
        let r = regs();
        let s = |i: f64, f: f64| {
            sample(&r, &[("current_ma", i), ("ocd_da", 260.0), ("faults", f), ("battery_voltage_mv", 13.0)])
        };
        for drive in [Drive::Measured, Drive::Scenario] {
            let mut j = judge(drive);
            add(&mut j, 0.0, &s(0.0, 0.0), &s(0.0, 0.0), truth(0.0, 13.0), &none());
            add(&mut j, 1.0, &s(-300.0, 0.0), &s(-300.0, 0.0), truth(-300.0, 12.7), &none());
            add(&mut j, 2.0, &s(0.0, f64::from(faults::OCD)), &s(0.0, 0.0), truth(0.0, 13.0), &none());
            for t in 3..8 {
                add(&mut j, f64::from(t), &s(0.0, f64::from(faults::OCD)), &s(0.0, 0.0), truth(0.0, 13.0), &none());
            }
            let spurious = j.findings().iter().any(|f| f.message.starts_with("protection ocd tripped spuriously"));
            let remark = j.remarks();
            match drive {
                Drive::Measured => {
                    assert!(!spurious, "{:?}", j.findings());
                    assert_eq!(remark.len(), 1, "{remark:?}");
                    assert!(remark[0].starts_with("protection ocd tripped on the board at t = 2.0 s, 1.0 s after its condition; the twin, fed the board's current, saw the same condition from t = 1.0 s to 2.0 s"), "{}", remark[0]);
                }
                Drive::Scenario => assert!(spurious && remark.is_empty(), "{:?} {remark:?}", j.findings()),
            }
        }
    }
}
