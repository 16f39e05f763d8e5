//! LiPro cell modules: each cell's voltage and temperature through the
//! module's own measurement, the cell thresholds with delay and hysteresis,
//! and the daisy-chain loop that holds the SmartPro's LVP / OVP control
//! inputs at a control voltage while every cell is in its window.
//!
//! # Measurement (per module; one module monitors `cells_per_module` cells)
//!
//! ```text
//! v_read = q(v_cell·(1 + g) + o + n),   q(x) = round(x/res)·res
//! ```
//!
//! with the module's gain error `g` and offset `o` drawn once (uniform in
//! ±`gain_error_max_pct`, ±`offset_max_mv`) and the noise `n` (normal, σ
//! `noise_mv`) drawn per reading, all from the scenario's "lipro" stream.
//! Defaults are those of a cell-monitor IC of the TI BQ76952 / ADI LTC6811
//! class: 1 mV resolution (BQ76952: cell voltages reported in mV), ±2 mV
//! offset and ±0.05 % gain (±1.7 mV at 3.4 V; LTC6811: ±1.2…2.2 mV total
//! measurement error at 3.3 V, BQ76952: ±5 mV over temperature), 0.5 mV rms noise.
//!
//! # Temperature
//!
//! The thermal network has one node for the cells. A cell's temperature is
//! that node plus its own extra heat through a per-cell resistance:
//! `T_i = T_cells + R_th·(P_i − P̄)`, `P_i` its irreversible heat plus its
//! bleed resistor's, `P̄` the mean over the cells. A module reads the mean of
//! its cells' temperatures (one sensor per module).
//!
//! # Thresholds and loop
//!
//! A cell is under-voltage once its reading stays below `uv_v` for
//! `uv_delay_s`, and released once it reads above `uv_v + uv_hysteresis_v`;
//! over-voltage likewise above `ov_v` (released below `ov_v − ov_hysteresis_v`);
//! a module over-temperature above `ot_c` for `ot_delay_s` (released below
//! `ot_c − ot_hysteresis_k`). The LVP loop carries `loop_voltage_v` while no
//! cell is under-voltage and no module over-temperature; the OVP loop while
//! no cell is over-voltage and no module over-temperature.

use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::balancing::{Balancer, BalancingParams};
use crate::chain::draw_within;
use crate::error::ParamError;
use crate::pack::Pack;
use crate::rng::ModelRng;

/// Cell-voltage resolution of the class (BQ76952: cell voltages in 1 mV units).
pub const RESOLUTION_MV: f64 = 1.0;
/// Offset error bound (mV), BQ76952 / LTC6811 class.
pub const OFFSET_MAX_MV: f64 = 2.0;
/// Gain error bound (%): ±1.7 mV at 3.4 V.
pub const GAIN_ERROR_MAX_PCT: f64 = 0.05;
/// Reading noise, 1σ (mV).
pub const NOISE_MV: f64 = 0.5;
/// The SmartPro's LVP / OVP control inputs need 4.7 to 60 V (datasheet SmartPro-209, "Control voltage LVP, OVP").
pub const CONTROL_VOLTAGE_MIN_V: f64 = 4.7;
/// The upper end of the control inputs' range (same table).
pub const CONTROL_VOLTAGE_MAX_V: f64 = 60.0;

/// LiPro configuration (`[lipro]` in a scenario).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiproParams {
    /// Cells one module monitors (1: a module per cell).
    pub cells_per_module: usize,
    pub resolution_mv: f64,
    pub offset_max_mv: f64,
    pub gain_error_max_pct: f64,
    pub noise_mv: f64,
    pub uv_v: f64,
    pub uv_hysteresis_v: f64,
    pub uv_delay_s: f64,
    pub ov_v: f64,
    pub ov_hysteresis_v: f64,
    pub ov_delay_s: f64,
    pub ot_c: f64,
    pub ot_hysteresis_k: f64,
    pub ot_delay_s: f64,
    /// The loop's control voltage while closed (V, within 4.7..=60).
    pub loop_voltage_v: f64,
    /// A cell's temperature rise per W of its extra heat (K/W).
    pub cell_thermal_resistance_k_per_w: f64,
    pub balancing: BalancingParams,
}

impl Default for LiproParams {
    fn default() -> Self {
        Self {
            cells_per_module: 1,
            resolution_mv: RESOLUTION_MV,
            offset_max_mv: OFFSET_MAX_MV,
            gain_error_max_pct: GAIN_ERROR_MAX_PCT,
            noise_mv: NOISE_MV,
            uv_v: 2.8,
            uv_hysteresis_v: 0.2,
            uv_delay_s: 1.0,
            ov_v: 3.65,
            ov_hysteresis_v: 0.25,
            ov_delay_s: 1.0,
            ot_c: 55.0,
            ot_hysteresis_k: 5.0,
            ot_delay_s: 5.0,
            loop_voltage_v: 12.0,
            cell_thermal_resistance_k_per_w: 2.0,
            balancing: BalancingParams::default(),
        }
    }
}

/// `Err` unless `value` is within `lo..=hi`.
fn within(name: &'static str, value: f64, lo: f64, hi: f64, requirement: &'static str) -> Result<(), ParamError> {
    if value.is_finite() && (lo..=hi).contains(&value) { Ok(()) } else { Err(ParamError { name, value, requirement }) }
}

impl LiproParams {
    /// Checks every value's range.
    pub fn validate(&self) -> Result<(), ParamError> {
        if !(1..=64).contains(&self.cells_per_module) {
            return Err(ParamError {
                name: "cells_per_module",
                value: self.cells_per_module as f64,
                requirement: "within 1..=64",
            });
        }
        within("resolution_mv", self.resolution_mv, 0.01, 20.0, "within 0.01..=20 mV")?;
        within("offset_max_mv", self.offset_max_mv, 0.0, 50.0, "within 0..=50 mV")?;
        within("gain_error_max_pct", self.gain_error_max_pct, 0.0, 2.0, "within 0..=2 %")?;
        within("noise_mv", self.noise_mv, 0.0, 20.0, "within 0..=20 mV")?;
        within("uv_v", self.uv_v, 1.5, 4.5, "within 1.5..=4.5 V")?;
        within("ov_v", self.ov_v, 2.0, 5.0, "within 2..=5 V")?;
        if self.ov_v <= self.uv_v + self.uv_hysteresis_v {
            return Err(ParamError { name: "ov_v", value: self.ov_v, requirement: "above uv_v + uv_hysteresis_v" });
        }
        within("uv_hysteresis_v", self.uv_hysteresis_v, 0.0, 1.0, "within 0..=1 V")?;
        within("ov_hysteresis_v", self.ov_hysteresis_v, 0.0, 1.0, "within 0..=1 V")?;
        within("ot_c", self.ot_c, 0.0, 120.0, "within 0..=120 °C")?;
        within("ot_hysteresis_k", self.ot_hysteresis_k, 0.0, 30.0, "within 0..=30 K")?;
        for (name, v) in
            [("uv_delay_s", self.uv_delay_s), ("ov_delay_s", self.ov_delay_s), ("ot_delay_s", self.ot_delay_s)]
        {
            within(name, v, 0.0, 3600.0, "within 0..=3600 s")?;
        }
        within(
            "loop_voltage_v",
            self.loop_voltage_v,
            CONTROL_VOLTAGE_MIN_V,
            CONTROL_VOLTAGE_MAX_V,
            "within the SmartPro's control-voltage range 4.7..=60 V",
        )?;
        within(
            "cell_thermal_resistance_k_per_w",
            self.cell_thermal_resistance_k_per_w,
            0.0,
            100.0,
            "within 0..=100 K/W",
        )?;
        self.balancing.validate()
    }
}

/// A threshold with a delay on tripping and hysteresis on release.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Debounce {
    beyond_s: f64,
    tripped: bool,
}

impl Debounce {
    /// Advances `dt_s`: `beyond` the value is past the threshold now, `returned` it is back past the
    /// release level. Trips once `beyond` has held for `delay_s`; releases on `returned`.
    pub fn update(&mut self, dt_s: f64, delay_s: f64, beyond: bool, returned: bool) -> bool {
        if self.tripped {
            if returned {
                self.tripped = false;
                self.beyond_s = 0.0;
            }
        } else if beyond {
            self.beyond_s += dt_s;
            // (a whole number of steps of a delay: compare with half a step's margin)
            if self.beyond_s >= delay_s - 0.5 * dt_s {
                self.tripped = true;
            }
        } else {
            self.beyond_s = 0.0;
        }
        self.tripped
    }

    pub fn tripped(&self) -> bool {
        self.tripped
    }
}

/// One module's as-built measurement errors.
#[derive(Clone, Copy, Debug)]
struct Module {
    offset_v: f64,
    gain: f64,
    ot: Debounce,
    temp_c: f64,
}

/// What one cell's monitor holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CellReading {
    /// The module's reading of the cell voltage (V).
    pub voltage_v: f64,
    /// The cell's true temperature (°C).
    pub temp_c: f64,
    /// Its bleed resistor is on.
    pub bleeding: bool,
    uv: Debounce,
    ov: Debounce,
}

/// The LiPro modules of a pack and their loop.
#[derive(Clone, Debug)]
pub struct Lipro {
    params: LiproParams,
    modules: Vec<Module>,
    cells: Vec<CellReading>,
    balancer: Balancer,
    rng: ModelRng,
    lvp_loop: bool,
    ovp_loop: bool,
    /// The loops have dropped for a cell under-/over-voltage at least once.
    uv_seen: bool,
    ov_seen: bool,
}

impl Lipro {
    /// Modules for `cells` cells, their errors drawn from `rng` (the scenario's "lipro" stream);
    /// until the first step the cells read the thermal network's cells node, `cells_node_c`.
    pub fn new(params: &LiproParams, cells: usize, cells_node_c: f64, mut rng: ModelRng) -> Self {
        let n_modules = cells.div_ceil(params.cells_per_module);
        let modules = (0..n_modules)
            .map(|_| {
                // within the bounds at 3σ, as the chain draws its parts' tolerances
                let o = draw_within(&mut rng, params.offset_max_mv * 1e-3);
                let g = draw_within(&mut rng, params.gain_error_max_pct * 1e-2);
                Module { offset_v: o, gain: g, ot: Debounce::default(), temp_c: f64::NAN }
            })
            .collect();
        Lipro {
            params: *params,
            modules,
            cells: vec![CellReading { temp_c: cells_node_c, ..CellReading::default() }; cells],
            balancer: Balancer::new(&params.balancing, cells),
            rng,
            lvp_loop: true,
            ovp_loop: true,
            uv_seen: false,
            ov_seen: false,
        }
    }

    /// One step of `dt_s` after the pack's step at `current_a` (> 0 charges): reads every cell,
    /// updates the thresholds and the loops, and bleeds the balancing cells from the pack.
    /// `cells_node_c` is the thermal network's cells node. Returns the bleed resistors' heat (W).
    pub fn step(&mut self, dt_s: f64, pack: &mut Pack, current_a: f64, cells_node_c: f64) -> f64 {
        let p = self.params;
        let n = self.cells.len().min(pack.cells().len());
        let mean_w = pack.cells().iter().map(|c| c.irreversible_heat_w(current_a)).sum::<f64>() / n.max(1) as f64;
        let res_v = p.resolution_mv * 1e-3;
        let noise_v = p.noise_mv * 1e-3;
        let mut any_uv = false;
        let mut any_ov = false;
        for i in 0..n {
            let m = &self.modules[i / p.cells_per_module];
            let v = pack.cell_voltage_v(i, current_a);
            let z: f64 = StandardNormal.sample(&mut self.rng);
            let read = ((v * (1.0 + m.gain) + m.offset_v + noise_v * z) / res_v).round() * res_v;
            let extra_w = pack.cells()[i].irreversible_heat_w(current_a) - mean_w + self.balancer.heat_w(i);
            let c = &mut self.cells[i];
            c.voltage_v = read;
            c.temp_c = cells_node_c + p.cell_thermal_resistance_k_per_w * extra_w;
            let uv = c.uv.update(dt_s, p.uv_delay_s, read < p.uv_v, read > p.uv_v + p.uv_hysteresis_v);
            let ov = c.ov.update(dt_s, p.ov_delay_s, read > p.ov_v, read < p.ov_v - p.ov_hysteresis_v);
            any_uv |= uv;
            any_ov |= ov;
        }
        let mut any_ot = false;
        for (k, m) in self.modules.iter_mut().enumerate() {
            let group = &self.cells[k * p.cells_per_module..((k + 1) * p.cells_per_module).min(n)];
            m.temp_c = group.iter().map(|c| c.temp_c).sum::<f64>() / group.len().max(1) as f64;
            any_ot |= m.ot.update(dt_s, p.ot_delay_s, m.temp_c > p.ot_c, m.temp_c < p.ot_c - p.ot_hysteresis_k);
        }
        self.uv_seen |= any_uv;
        self.ov_seen |= any_ov;
        self.lvp_loop = !(any_uv || any_ot);
        self.ovp_loop = !(any_ov || any_ot);
        let readings: Vec<f64> = self.cells.iter().map(|c| c.voltage_v).collect();
        let heat_w = self.balancer.step(dt_s, pack, &readings, current_a);
        for (i, c) in self.cells.iter_mut().enumerate() {
            c.bleeding = self.balancer.is_bleeding(i);
        }
        heat_w
    }

    /// The LVP loop's voltage at the SmartPro's input (V): the control voltage or 0.
    pub fn lvp_loop_v(&self) -> f64 {
        if self.lvp_loop { self.params.loop_voltage_v } else { 0.0 }
    }

    /// The OVP loop's voltage at the SmartPro's input (V).
    pub fn ovp_loop_v(&self) -> f64 {
        if self.ovp_loop { self.params.loop_voltage_v } else { 0.0 }
    }

    /// The SmartPro's LVP input sees its control voltage.
    pub fn lvp_input_ok(&self) -> bool {
        self.lvp_loop_v() >= CONTROL_VOLTAGE_MIN_V
    }

    /// The SmartPro's OVP input sees its control voltage.
    pub fn ovp_input_ok(&self) -> bool {
        self.ovp_loop_v() >= CONTROL_VOLTAGE_MIN_V
    }

    /// The per-cell readings, in series order.
    pub fn cells(&self) -> &[CellReading] {
        &self.cells
    }

    /// A cell is (latched) under-voltage now / over-voltage now.
    pub fn any_uv(&self) -> bool {
        self.cells.iter().any(|c| c.uv.tripped())
    }

    pub fn any_ov(&self) -> bool {
        self.cells.iter().any(|c| c.ov.tripped())
    }

    /// Energy the bleed resistors have dissipated (J) and charge each cell has bled (C).
    pub fn balancer(&self) -> &Balancer {
        &self.balancer
    }

    pub fn params(&self) -> &LiproParams {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn delay_and_hysteresis_property() {
        // For random delays, excursion lengths and step sizes: outside the window for longer than
        // the delay always trips; returning in time never does. Once tripped, only the release
        // level (not the threshold) releases.
        let mut rng = ModelRng::seed_from_u64(15);
        for _ in 0..2_000 {
            let dt = [1e-3, 1e-2, 0.1][(rng.next_u64() % 3) as usize];
            let delay_steps = 1 + (rng.next_u64() % 299) as u32;
            let delay = f64::from(delay_steps) * dt;
            let outside = (rng.next_u64() % 600) as u32;
            let mut d = Debounce::default();
            let mut tripped = false;
            for _ in 0..outside {
                tripped = d.update(dt, delay, true, false);
            }
            // back inside but not beyond the release level
            for _ in 0..10 {
                tripped = d.update(dt, delay, false, false);
            }
            assert_eq!(tripped, outside >= delay_steps, "dt {dt}, delay {delay_steps} steps, out {outside}");
            if tripped {
                assert!(!d.update(dt, delay, false, true));
            }
        }
    }

    #[test]
    fn params_are_range_checked() {
        assert!(LiproParams::default().validate().is_ok());
        let bad = LiproParams { loop_voltage_v: 3.0, ..LiproParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "loop_voltage_v");
        let bad = LiproParams { ov_v: 2.9, ..LiproParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "ov_v");
        let bad = LiproParams { cells_per_module: 0, ..LiproParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "cells_per_module");
    }

    fn test_pack(soc: f64, cells: usize) -> Pack {
        use crate::pack::PackParams;
        let p = PackParams { cells_in_series: cells, ..PackParams::uniform(crate::CellParams::default()) };
        Pack::new(&p, crate::Variant::V12, soc, &mut ModelRng::seed_from_u64(1))
    }

    /// trace.csv's t = 0 row read every cell at 0.00 °C: before the first step the cells read
    /// the thermal network's cells node, not a default of zero.
    #[test]
    fn issue_15_before_the_first_step_the_cells_read_the_cells_node() {
        let l = Lipro::new(&LiproParams::default(), 4, -7.5, ModelRng::seed_from_u64(3));
        assert!(l.cells().iter().all(|c| c.temp_c == -7.5));
    }

    #[test]
    fn readings_are_within_the_class_error_and_a_low_cell_drops_the_lvp_loop() {
        let mut pack = test_pack(0.5, 4);
        let params =
            LiproParams { balancing: BalancingParams { enabled: false, ..Default::default() }, ..Default::default() };
        let mut l = Lipro::new(&params, 4, 25.0, ModelRng::seed_from_u64(3));
        l.step(0.01, &mut pack, 0.0, 25.0);
        let bound = (OFFSET_MAX_MV + GAIN_ERROR_MAX_PCT * 1e-2 * 3.4e3 + 0.5 * RESOLUTION_MV + 5.0 * NOISE_MV) * 1e-3;
        for (i, c) in l.cells().iter().enumerate() {
            assert!((c.voltage_v - pack.cell_voltage_v(i, 0.0)).abs() <= bound, "{} vs {}", c.voltage_v, bound);
            assert_eq!(c.temp_c, 25.0);
        }
        assert!(l.lvp_input_ok() && l.ovp_input_ok());
        // a deep discharge: the loop drops after the delay, not before
        let mut dropped_at = None;
        for k in 1..=1_000 {
            pack.step(0.01, -5_000.0);
            l.step(0.01, &mut pack, -5_000.0, 25.0);
            if !l.lvp_input_ok() {
                dropped_at = Some(k);
                break;
            }
        }
        let k = dropped_at.expect("the loop dropped");
        assert!(k >= 100, "{k}");
        assert!(l.ovp_input_ok());
    }
}
