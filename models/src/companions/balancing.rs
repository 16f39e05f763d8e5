//! Passive balancing: a bleed resistor across each cell, switched by its
//! module.
//!
//! # Rule and equations
//!
//! A cell's bleed resistor is on while its reading `v_i` satisfies
//!
//! ```text
//! v_i ≥ start_v  and  v_i − min_j v_j ≥ delta_mv  and  v_i ≥ floor_v
//! ```
//!
//! and, with `only_while_charging`, the pack is charging (current > 0).
//! `delta_mv = 0` balances by the voltage threshold alone. While on, the
//! resistor draws `I_b = V_i/R_b` from its cell alone (not through the
//! shunt: the SmartPro never sees it), moving `ΔQ = I_b·dt` per step and
//! dissipating `V_i·I_b` into the cells' thermal node. The floor keeps the
//! bleed from ever taking a cell below `floor_v`.

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};
use crate::pack::Pack;

/// Balancing configuration (`[lipro.balancing]`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancingParams {
    pub enabled: bool,
    /// Bleed only above this reading (V).
    pub start_v: f64,
    /// Bleed only this far above the lowest cell's reading (mV); 0: by the threshold alone.
    pub delta_mv: f64,
    /// Never bleed a cell reading below this (V).
    pub floor_v: f64,
    /// The bleed resistor (Ω): 3.3 Ω draws ≈ 1 A at 3.4 V, the class of LiPro-type modules.
    pub bleed_resistance_ohm: f64,
    /// Bleed only while the pack is charging.
    pub only_while_charging: bool,
}

impl Default for BalancingParams {
    fn default() -> Self {
        Self {
            enabled: true,
            start_v: 3.40,
            delta_mv: 10.0,
            floor_v: 3.30,
            bleed_resistance_ohm: 3.3,
            only_while_charging: true,
        }
    }
}

impl BalancingParams {
    pub fn validate(&self) -> Result<(), ParamError> {
        let v_range = |name: &'static str, v: f64| {
            if v.is_finite() && (2.0..=5.0).contains(&v) {
                Ok(())
            } else {
                Err(ParamError { name, value: v, requirement: "within 2..=5 V" })
            }
        };
        v_range("balancing.start_v", self.start_v)?;
        v_range("balancing.floor_v", self.floor_v)?;
        error::non_negative("balancing.delta_mv", self.delta_mv)?;
        if self.delta_mv > 1000.0 {
            return Err(ParamError {
                name: "balancing.delta_mv",
                value: self.delta_mv,
                requirement: "at most 1000 mV",
            });
        }
        if !(self.bleed_resistance_ohm.is_finite() && (0.1..=10_000.0).contains(&self.bleed_resistance_ohm)) {
            return Err(ParamError {
                name: "balancing.bleed_resistance_ohm",
                value: self.bleed_resistance_ohm,
                requirement: "within 0.1..=10000 Ω",
            });
        }
        Ok(())
    }
}

/// The bleed resistors' state and totals.
#[derive(Clone, Debug)]
pub struct Balancer {
    params: BalancingParams,
    on: Vec<bool>,
    heat_w: Vec<f64>,
    bled_c: Vec<f64>,
    energy_j: f64,
}

impl Balancer {
    pub fn new(params: &BalancingParams, cells: usize) -> Self {
        Balancer {
            params: *params,
            on: vec![false; cells],
            heat_w: vec![0.0; cells],
            bled_c: vec![0.0; cells],
            energy_j: 0.0,
        }
    }

    /// Decides each resistor from the readings and bleeds the cells over `dt_s`; returns the heat (W).
    pub fn step(&mut self, dt_s: f64, pack: &mut Pack, readings: &[f64], current_a: f64) -> f64 {
        let p = self.params;
        let min_v = readings.iter().copied().fold(f64::INFINITY, f64::min);
        let allowed = p.enabled && (current_a > 0.0 || !p.only_while_charging);
        let mut total_w = 0.0;
        for (i, &v) in readings.iter().enumerate().take(pack.cells().len()) {
            let on = allowed && v >= p.start_v && v >= p.floor_v && (v - min_v) * 1e3 >= p.delta_mv;
            self.on[i] = on;
            self.heat_w[i] = 0.0;
            if on {
                let v_cell = pack.cell_voltage_v(i, current_a);
                let i_b = v_cell / p.bleed_resistance_ohm;
                pack.bleed_cell(i, i_b * dt_s);
                self.bled_c[i] += i_b * dt_s;
                self.heat_w[i] = v_cell * i_b;
                total_w += self.heat_w[i];
            }
        }
        self.energy_j += total_w * dt_s;
        total_w
    }

    pub fn is_bleeding(&self, cell: usize) -> bool {
        self.on.get(cell).copied().unwrap_or(false)
    }

    /// Cell `cell`'s bleed heat over the last step (W).
    pub fn heat_w(&self, cell: usize) -> f64 {
        self.heat_w.get(cell).copied().unwrap_or(0.0)
    }

    /// Charge each cell has bled so far (C).
    pub fn bled_c(&self) -> &[f64] {
        &self.bled_c
    }

    /// Energy the bleed resistors have dissipated so far (J).
    pub fn energy_j(&self) -> f64 {
        self.energy_j
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::PackParams;
    use crate::rng::ModelRng;
    use rand::SeedableRng;

    fn ideal_pack(soc: f64) -> Pack {
        let p = PackParams { cells_in_series: 2, ..PackParams::uniform(crate::CellParams::ideal_thevenin()) };
        Pack::new(&p, crate::Variant::V12, soc, &mut ModelRng::seed_from_u64(0))
    }

    #[test]
    fn bleed_current_and_the_charge_it_moves() {
        // One cell bleeds at rest for an hour: I_b = V/R, ΔSOC = ∫I_b dt/(3600·Q).
        let params = BalancingParams {
            only_while_charging: false,
            start_v: 2.0,
            floor_v: 2.0,
            delta_mv: 0.0,
            ..Default::default()
        };
        let mut pack = ideal_pack(0.9);
        let mut b = Balancer::new(&params, 2);
        let v0 = pack.cell_voltage_v(0, 0.0);
        let (dt, steps) = (1.0, 3600);
        let mut q = 0.0;
        for _ in 0..steps {
            let v = pack.cell_voltage_v(0, 0.0);
            q += v / params.bleed_resistance_ohm * dt;
            // cell 1 reads far below cell 0's start: only cell 0 bleeds
            b.step(dt, &mut pack, &[v, 1.0], 0.0);
            pack.step(dt, 0.0);
        }
        assert!(b.is_bleeding(0) && !b.is_bleeding(1));
        assert!((b.bled_c()[0] - q).abs() < 1e-9 * q);
        // ≈ 1 A for an hour: ≈ 1 Ah, 1 % of the 100 Ah cell
        assert!((q / 3600.0 - v0 / params.bleed_resistance_ohm).abs() < 0.02, "{} Ah", q / 3600.0);
        let cap_c = pack.cells()[0].capacity_ah() * 3600.0;
        assert!((pack.cells()[0].soc - (0.9 - q / cap_c)).abs() < 1e-9);
        assert_eq!(pack.cells()[1].soc, 0.9);
        // the heat is V·I_b: the energy is Σ V²/R·dt
        assert!((b.energy_j() / (q * v0) - 1.0).abs() < 0.02);
    }

    #[test]
    fn energy_balance_with_the_bleed_resistors() {
        // Charging with one cell bleeding: the charger's energy = Δ(chemical energy) + I²R heat
        // + the bleed heat (+ the RC pairs' stored energy), step by step with the OCV at each
        // cell's mean SOC over the step.
        let params = BalancingParams { start_v: 2.0, floor_v: 2.0, delta_mv: 0.0, ..Default::default() };
        let mut pack = ideal_pack(0.5);
        let mut b = Balancer::new(&params, 2);
        let i = 20.0;
        let dt = 0.1;
        let (mut e_in, mut e_heat, mut e_chem) = (0.0, 0.0, 0.0);
        let e_rc0 = pack.rc_energy_j();
        for _ in 0..36_000 {
            let soc0: Vec<f64> = pack.cells().iter().map(|c| c.soc).collect();
            let ocv0: Vec<f64> = pack.cells().iter().map(|c| c.ocv_v()).collect();
            e_in += pack.terminal_voltage_v(i) * i * dt;
            pack.step(dt, i);
            e_heat += pack.irreversible_heat_w(i) * dt;
            let readings = [pack.cell_voltage_v(0, i), 1.0];
            e_heat += b.step(dt, &mut pack, &readings, i) * dt;
            for (k, c) in pack.cells().iter().enumerate() {
                let dq_c = (c.soc - soc0[k]) * c.capacity_ah() * 3600.0;
                e_chem += 0.5 * (ocv0[k] + c.ocv_v()) * dq_c;
            }
        }
        let e_out = e_chem + e_heat + (pack.rc_energy_j() - e_rc0);
        assert!(b.energy_j() > 0.01 * e_in, "the bleed took part: {} J of {e_in} J", b.energy_j());
        assert!((e_out / e_in - 1.0).abs() < 2e-3, "in {e_in} J, accounted {e_out} J");
    }

    #[test]
    fn never_below_the_floor_nor_at_rest_by_default() {
        let mut pack = ideal_pack(0.9);
        let mut b = Balancer::new(&BalancingParams::default(), 2);
        b.step(1.0, &mut pack, &[3.6, 3.2], 0.0);
        assert!(!b.is_bleeding(0), "at rest");
        b.step(1.0, &mut pack, &[3.25, 3.0], 10.0);
        assert!(!b.is_bleeding(0), "below the floor");
        b.step(1.0, &mut pack, &[3.6, 3.2], 10.0);
        assert!(b.is_bleeding(0) && !b.is_bleeding(1));
        assert!(BalancingParams { bleed_resistance_ohm: 0.0, ..Default::default() }.validate().is_err());
    }
}
