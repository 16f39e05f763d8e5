//! Lumped (single-node) thermal model: heat capacity C, conductance G to
//! ambient.
//!
//! `C·dT/dt = P − G·(T − T_amb)`. With P and T_amb held over a step the
//! exact update is `T' = T_amb + P/G + (T − T_amb − P/G)·exp(−dt·G/C)`.

use serde::{Deserialize, Serialize};

use crate::decay::Decay;
use crate::error::{self, ParamError};

/// Heat capacity of one 100 Ah prismatic LFP cell (J/K): ≈ 2.0 kg (typical
/// mass of the class, 1.9–2.2 kg) × ≈ 1000 J/(kg·K) (specific heat measured
/// on LFP prismatic cells is about 0.9–1.1 kJ/(kg·K)).
pub const CELL_HEAT_CAPACITY_J_PER_K: f64 = 2000.0;
/// Conductance to ambient of one cell in a pack (W/K): natural convection,
/// h ≈ 5 W/(m²·K) over ≈ 0.05 m² of exposed surface per cell.
pub const CELL_CONDUCTANCE_W_PER_K: f64 = 0.25;
/// Cells in the default pack (the 12-209's four).
pub const DEFAULT_CELLS: usize = 4;

/// Parameters of a lumped thermal node.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThermalParams {
    /// Heat capacity C (J/K).
    pub heat_capacity_j_per_k: f64,
    /// Conductance G to ambient (W/K).
    pub conductance_w_per_k: f64,
}

impl Default for ThermalParams {
    /// A pack of four 100 Ah cells: C = 8 kJ/K, G = 1 W/K (τ = C/G ≈ 2.2 h).
    fn default() -> Self {
        Self::for_cells(DEFAULT_CELLS)
    }
}

impl ThermalParams {
    /// A pack of `cells` 100 Ah cells in one row: C and G scale with the
    /// number of cells (each adds its mass and its exposed faces).
    pub fn for_cells(cells: usize) -> Self {
        let n = cells as f64;
        Self {
            heat_capacity_j_per_k: n * CELL_HEAT_CAPACITY_J_PER_K,
            conductance_w_per_k: n * CELL_CONDUCTANCE_W_PER_K,
        }
    }

    /// Time constant C/G (s).
    pub fn tau_s(&self) -> f64 {
        self.heat_capacity_j_per_k / self.conductance_w_per_k
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("heat_capacity_j_per_k", self.heat_capacity_j_per_k)?;
        error::positive("conductance_w_per_k", self.conductance_w_per_k)
    }
}

/// A lumped thermal node.
#[derive(Clone, Debug)]
pub struct LumpedThermal {
    /// Temperature (°C).
    pub temp_c: f64,
    conductance_w_per_k: f64,
    decay: Decay,
}

impl LumpedThermal {
    /// A node at `temp_c`.
    pub fn new(params: &ThermalParams, temp_c: f64) -> Self {
        Self { temp_c, conductance_w_per_k: params.conductance_w_per_k, decay: Decay::new(params.tau_s()) }
    }

    /// Advances by `dt_s` with `power_w` dissipated in the node and ambient
    /// at `ambient_c`, both held over the step (exact). Returns the new
    /// temperature (°C).
    pub fn step(&mut self, dt_s: f64, power_w: f64, ambient_c: f64) -> f64 {
        let target = self.steady_state_c(power_w, ambient_c);
        let a = self.decay.factor(dt_s);
        self.temp_c = target + (self.temp_c - target) * a;
        self.temp_c
    }

    /// The temperature the node settles at (°C): `T_amb + P/G`.
    pub fn steady_state_c(&self, power_w: f64, ambient_c: f64) -> f64 {
        ambient_c + power_w / self.conductance_w_per_k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state() {
        let p = ThermalParams::default();
        let mut n = LumpedThermal::new(&p, 25.0);
        for _ in 0..(20.0 * p.tau_s()) as usize {
            n.step(1.0, 10.0, 25.0);
        }
        let expected = 25.0 + 10.0 / p.conductance_w_per_k;
        assert!((n.temp_c - expected).abs() < 1e-6, "{}", n.temp_c);
    }

    #[test]
    fn one_time_constant_reaches_63_percent() {
        let p = ThermalParams::default();
        let mut n = LumpedThermal::new(&p, 20.0);
        let dt = p.tau_s() / 1000.0;
        for _ in 0..1000 {
            n.step(dt, 5.0, 20.0);
        }
        let rise = 5.0 / p.conductance_w_per_k;
        let frac = (n.temp_c - 20.0) / rise;
        assert!((frac - (1.0 - (-1.0f64).exp())).abs() < 1e-9, "{frac}");
        assert!((frac - 0.632).abs() < 1e-3);
    }

    #[test]
    fn step_size_independent() {
        let p = ThermalParams::for_cells(16);
        let mut a = LumpedThermal::new(&p, 0.0);
        let mut b = LumpedThermal::new(&p, 0.0);
        a.step(3600.0, 40.0, 10.0);
        for _ in 0..3600 {
            b.step(1.0, 40.0, 10.0);
        }
        assert!((a.temp_c - b.temp_c).abs() < 1e-9);
    }

    #[test]
    fn defaults_are_physical() {
        let p = ThermalParams::default();
        assert!(p.validate().is_ok());
        assert!((p.tau_s() - 8000.0).abs() < 1e-9);
    }
}
