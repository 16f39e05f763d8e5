//! Lumped (single-node) thermal model: heat capacity C, conductance G to
//! ambient.
//!
//! `C·dT/dt = P − G·(T − T_amb)`. With P and T_amb held over a step the
//! exact update is `T' = T_amb + P/G + (T − T_amb − P/G)·exp(−dt·G/C)`.

use nalgebra::{Matrix3, Matrix3x4, SMatrix, Vector3, Vector4};
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

// ---------------------------------------------------------------- network

/// Heat capacity of the board with its MOSFETs and busbars (J/K): the
/// datasheet's 540 g at ≈ 0.6 J/(g·K) (FR-4, copper and aluminium mix).
pub const BOARD_HEAT_CAPACITY_J_PER_K: f64 = 320.0;
/// Board → ambient (W/K): natural convection from both faces of the
/// 275 × 241 mm board (≈ 0.13 m², h ≈ 6 W/(m²·K)), IP00.
pub const BOARD_TO_AMBIENT_W_PER_K: f64 = 0.8;
/// Board → cells (W/K): the flange mounting and the M8 terminal bolts.
pub const BOARD_TO_CELLS_W_PER_K: f64 = 0.5;
/// Shunt heat capacity (J/K): ≈ 25 g of manganin and copper terminals.
pub const SHUNT_HEAT_CAPACITY_J_PER_K: f64 = 10.0;
/// Shunt → board (W/K): bolted to the board's busbars; τ = C/G = 10 s.
pub const SHUNT_TO_BOARD_W_PER_K: f64 = 1.0;
/// Fraction of the board–cells temperature difference that appears across
/// the shunt's two terminals (one end on the cell busbar, the other on the
/// MOSFET copper): the source of its thermoelectric EMF.
pub const SHUNT_TERMINAL_COUPLING: f64 = 0.5;

/// Parameters of the thermal network: cells, board (MOSFETs), shunt, and
/// ambient as the boundary.
///
/// ```text
///            G_cb              G_sb
///  cells ─────────── board ─────────── shunt
///    │ G_ca            │ G_ba
///  ambient          ambient
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkParams {
    /// Heat capacity and conductance to ambient of the cells (the pack's lumped node).
    pub cells: ThermalParams,
    /// Board heat capacity (J/K).
    pub board_heat_capacity_j_per_k: f64,
    /// Board → ambient (W/K).
    pub board_to_ambient_w_per_k: f64,
    /// Board → cells (W/K).
    pub board_to_cells_w_per_k: f64,
    /// Shunt heat capacity (J/K).
    pub shunt_heat_capacity_j_per_k: f64,
    /// Shunt → board (W/K).
    pub shunt_to_board_w_per_k: f64,
    /// Fraction of T_board − T_cells across the shunt's terminals.
    pub shunt_terminal_coupling: f64,
}

impl Default for NetworkParams {
    fn default() -> Self {
        Self::for_cells(DEFAULT_CELLS)
    }
}

impl NetworkParams {
    /// The default network with the cells node of a pack of `cells` cells.
    pub fn for_cells(cells: usize) -> Self {
        Self {
            cells: ThermalParams::for_cells(cells),
            board_heat_capacity_j_per_k: BOARD_HEAT_CAPACITY_J_PER_K,
            board_to_ambient_w_per_k: BOARD_TO_AMBIENT_W_PER_K,
            board_to_cells_w_per_k: BOARD_TO_CELLS_W_PER_K,
            shunt_heat_capacity_j_per_k: SHUNT_HEAT_CAPACITY_J_PER_K,
            shunt_to_board_w_per_k: SHUNT_TO_BOARD_W_PER_K,
            shunt_terminal_coupling: SHUNT_TERMINAL_COUPLING,
        }
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.cells.validate()?;
        error::positive("board_heat_capacity_j_per_k", self.board_heat_capacity_j_per_k)?;
        error::non_negative("board_to_ambient_w_per_k", self.board_to_ambient_w_per_k)?;
        error::non_negative("board_to_cells_w_per_k", self.board_to_cells_w_per_k)?;
        error::positive("shunt_heat_capacity_j_per_k", self.shunt_heat_capacity_j_per_k)?;
        error::positive("shunt_to_board_w_per_k", self.shunt_to_board_w_per_k)?;
        error::non_negative("shunt_terminal_coupling", self.shunt_terminal_coupling)?;
        if self.board_to_ambient_w_per_k + self.board_to_cells_w_per_k <= 0.0 {
            return Err(ParamError {
                name: "board_to_ambient_w_per_k",
                value: self.board_to_ambient_w_per_k,
                requirement: "> 0 or a path through board_to_cells_w_per_k",
            });
        }
        Ok(())
    }

    /// `A` and `B` of `dT/dt = A·T + B·[P_cells, P_board, P_shunt, T_amb]`.
    fn state_space(&self) -> (Matrix3<f64>, Matrix3x4<f64>) {
        let c = [self.cells.heat_capacity_j_per_k, self.board_heat_capacity_j_per_k, self.shunt_heat_capacity_j_per_k];
        let (g_ca, g_cb) = (self.cells.conductance_w_per_k, self.board_to_cells_w_per_k);
        let (g_ba, g_sb) = (self.board_to_ambient_w_per_k, self.shunt_to_board_w_per_k);
        #[rustfmt::skip]
        let l = Matrix3::new(
            g_ca + g_cb, -g_cb,              0.0,
            -g_cb,       g_cb + g_ba + g_sb, -g_sb,
            0.0,         -g_sb,              g_sb,
        );
        let mut a = -l;
        let mut b = Matrix3x4::zeros();
        let g_amb = [g_ca, g_ba, 0.0];
        for i in 0..3 {
            for j in 0..3 {
                a[(i, j)] /= c[i];
            }
            b[(i, i)] = 1.0 / c[i];
            b[(i, 3)] = g_amb[i] / c[i];
        }
        (a, b)
    }
}

/// Heat into the network's nodes over a step (W), and the ambient (°C).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HeatInputs {
    /// Into the cells: their losses, plus an aux heater's power.
    pub cells_w: f64,
    /// Into the board: MOSFET conduction loss and the board's own consumption.
    pub board_w: f64,
    /// Into the shunt: I²R.
    pub shunt_w: f64,
    /// Ambient temperature (°C).
    pub ambient_c: f64,
}

/// The three-node thermal network, stepped exactly:
/// `T' = Φ·T + Γ·u` with `Φ = exp(A·dt)` and `Γ = ∫₀^dt exp(A·s) ds · B`,
/// both taken from the exponential of the augmented matrix `[[A, B], [0,
/// 0]]·dt` (Van Loan), recomputed only when `dt` changes.
#[derive(Clone, Debug)]
pub struct ThermalNetwork {
    params: NetworkParams,
    a: Matrix3<f64>,
    b: Matrix3x4<f64>,
    dt_s: f64,
    phi: Matrix3<f64>,
    gamma: Matrix3x4<f64>,
    temps: Vector3<f64>,
}

impl ThermalNetwork {
    /// Every node at `temp_c`.
    pub fn new(params: &NetworkParams, temp_c: f64) -> Self {
        let (a, b) = params.state_space();
        Self {
            params: *params,
            a,
            b,
            dt_s: f64::NAN,
            phi: Matrix3::identity(),
            gamma: Matrix3x4::zeros(),
            temps: Vector3::repeat(temp_c),
        }
    }

    /// Advances by `dt_s` with `inputs` held over the step.
    pub fn step(&mut self, dt_s: f64, inputs: &HeatInputs) {
        if dt_s.to_bits() != self.dt_s.to_bits() {
            self.dt_s = dt_s;
            let mut m = SMatrix::<f64, 7, 7>::zeros();
            m.fixed_view_mut::<3, 3>(0, 0).copy_from(&(self.a * dt_s));
            m.fixed_view_mut::<3, 4>(0, 3).copy_from(&(self.b * dt_s));
            let e = m.exp();
            self.phi = e.fixed_view::<3, 3>(0, 0).into_owned();
            self.gamma = e.fixed_view::<3, 4>(0, 3).into_owned();
        }
        let u = Vector4::new(inputs.cells_w, inputs.board_w, inputs.shunt_w, inputs.ambient_c);
        self.temps = self.phi * self.temps + self.gamma * u;
    }

    /// The steady state for constant `inputs` (°C): `−A⁻¹·B·u`.
    pub fn steady_state_c(&self, inputs: &HeatInputs) -> Option<[f64; 3]> {
        let u = Vector4::new(inputs.cells_w, inputs.board_w, inputs.shunt_w, inputs.ambient_c);
        let x = -(self.a.try_inverse()? * self.b * u);
        Some([x[0], x[1], x[2]])
    }

    /// Cell temperature (°C).
    pub fn cells_c(&self) -> f64 {
        self.temps[0]
    }

    /// Board (MOSFET, amplifier, ADC) temperature (°C).
    pub fn board_c(&self) -> f64 {
        self.temps[1]
    }

    /// Shunt element temperature (°C).
    pub fn shunt_c(&self) -> f64 {
        self.temps[2]
    }

    /// Temperature difference across the shunt's terminals (K), for its
    /// thermoelectric EMF.
    pub fn shunt_terminal_delta_k(&self) -> f64 {
        self.params.shunt_terminal_coupling * (self.temps[1] - self.temps[0])
    }

    /// Sets every node's temperature (°C).
    pub fn set_all_c(&mut self, temp_c: f64) {
        self.temps = Vector3::repeat(temp_c);
    }

    /// The parameters.
    pub fn params(&self) -> &NetworkParams {
        &self.params
    }
}

// ---------------------------------------------------------------- cell and jig

/// Two nodes — a cell and the jig (fixture) it sits in — as in PyBaMM's
/// equivalent-circuit thermal model, for an external parameter set's
/// `[thermal]` table ([`crate::ecm::EcmThermal`]):
///
/// ```text
/// C_cell·dT_cell/dt = Q − G_cj·(T_cell − T_jig)
/// C_jig ·dT_jig/dt  = G_cj·(T_cell − T_jig) − G_ja·(T_jig − T_amb)
/// ```
///
/// Without a jig (`jig_heat_capacity_j_per_k = 0`) the cell goes straight
/// to ambient through `cell_to_jig_w_per_k`. Exact discretisation as in
/// [`ThermalNetwork`].
#[derive(Clone, Debug)]
pub struct CellJigThermal {
    a: nalgebra::Matrix2<f64>,
    b: nalgebra::Matrix2<f64>,
    dt_s: f64,
    phi: nalgebra::Matrix2<f64>,
    gamma: nalgebra::Matrix2<f64>,
    temps: nalgebra::Vector2<f64>,
}

impl CellJigThermal {
    /// Both nodes at `temp_c`.
    pub fn new(p: &crate::ecm::EcmThermal, temp_c: f64) -> Self {
        use nalgebra::Matrix2;
        let (cc, gcj) = (p.cell_heat_capacity_j_per_k, p.cell_to_jig_w_per_k);
        let (a, b) = if p.jig_heat_capacity_j_per_k > 0.0 {
            let (cj, gja) = (p.jig_heat_capacity_j_per_k, p.jig_to_ambient_w_per_k);
            (Matrix2::new(-gcj / cc, gcj / cc, gcj / cj, -(gcj + gja) / cj), Matrix2::new(1.0 / cc, 0.0, 0.0, gja / cj))
        } else {
            // C·dT_cell/dt = Q − G·(T_cell − T_amb); the unused jig state
            // follows the ambient with a 1 s time constant.
            (Matrix2::new(-gcj / cc, 0.0, 0.0, -1.0), Matrix2::new(1.0 / cc, gcj / cc, 0.0, 1.0))
        };
        Self {
            a,
            b,
            dt_s: f64::NAN,
            phi: Matrix2::identity(),
            gamma: Matrix2::zeros(),
            temps: nalgebra::Vector2::repeat(temp_c),
        }
    }

    /// Advances by `dt_s` with `heat_w` generated in the cell and ambient
    /// at `ambient_c`, both held over the step.
    pub fn step(&mut self, dt_s: f64, heat_w: f64, ambient_c: f64) {
        if dt_s.to_bits() != self.dt_s.to_bits() {
            self.dt_s = dt_s;
            let mut m = SMatrix::<f64, 4, 4>::zeros();
            m.fixed_view_mut::<2, 2>(0, 0).copy_from(&(self.a * dt_s));
            m.fixed_view_mut::<2, 2>(0, 2).copy_from(&(self.b * dt_s));
            let e = m.exp();
            self.phi = e.fixed_view::<2, 2>(0, 0).into_owned();
            self.gamma = e.fixed_view::<2, 2>(0, 2).into_owned();
        }
        self.temps = self.phi * self.temps + self.gamma * nalgebra::Vector2::new(heat_w, ambient_c);
    }

    /// Cell temperature (°C).
    pub fn cell_c(&self) -> f64 {
        self.temps[0]
    }

    /// Jig temperature (°C).
    pub fn jig_c(&self) -> f64 {
        self.temps[1]
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

    #[test]
    fn network_steady_state_and_step_independence() {
        let p = NetworkParams::default();
        let u = HeatInputs { cells_w: 10.0, board_w: 22.5, shunt_w: 6.25, ambient_c: 20.0 };
        let mut coarse = ThermalNetwork::new(&p, 20.0);
        let mut fine = ThermalNetwork::new(&p, 20.0);
        coarse.step(3600.0, &u);
        for _ in 0..36_000 {
            fine.step(0.1, &u);
        }
        assert!((coarse.board_c() - fine.board_c()).abs() < 1e-9);
        assert!((coarse.shunt_c() - fine.shunt_c()).abs() < 1e-9);
        // long run → the closed-form steady state
        for _ in 0..200 {
            coarse.step(3600.0, &u);
        }
        let ss = coarse.steady_state_c(&u).unwrap();
        assert!((coarse.cells_c() - ss[0]).abs() < 1e-6);
        assert!((coarse.board_c() - ss[1]).abs() < 1e-6);
        // the shunt sits P/G above the board
        assert!((ss[2] - ss[1] - 6.25 / p.shunt_to_board_w_per_k).abs() < 1e-9);
        // energy balance at steady state: all heat leaves to ambient
        let out = p.cells.conductance_w_per_k * (ss[0] - 20.0) + p.board_to_ambient_w_per_k * (ss[1] - 20.0);
        assert!((out - (10.0 + 22.5 + 6.25)).abs() < 1e-9);
    }

    #[test]
    fn shunt_self_heating_time_constant() {
        // With the board held (huge heat capacity), the shunt rises with τ = C/G.
        let p = NetworkParams { board_heat_capacity_j_per_k: 1e12, ..NetworkParams::default() };
        let mut n = ThermalNetwork::new(&p, 25.0);
        let tau = p.shunt_heat_capacity_j_per_k / p.shunt_to_board_w_per_k;
        let u = HeatInputs { shunt_w: 6.25, ambient_c: 25.0, ..HeatInputs::default() };
        for _ in 0..1000 {
            n.step(tau / 1000.0, &u);
        }
        let rise = 6.25 / p.shunt_to_board_w_per_k;
        let frac = (n.shunt_c() - 25.0) / rise;
        assert!((frac - (1.0 - (-1.0f64).exp())).abs() < 1e-6, "{frac}");
    }

    #[test]
    fn cell_and_jig_settle_at_the_series_resistance_rise() {
        let p = crate::ecm::EcmThermal {
            cell_heat_capacity_j_per_k: 1000.0,
            cell_to_jig_w_per_k: 10.0,
            jig_heat_capacity_j_per_k: 500.0,
            jig_to_ambient_w_per_k: 10.0,
        };
        let mut n = CellJigThermal::new(&p, 25.0);
        for _ in 0..100 {
            n.step(60.0, 20.0, 25.0);
        }
        // 20 W through 1/10 + 1/10 K/W: cell +4 K, jig +2 K
        assert!((n.cell_c() - 29.0).abs() < 1e-9, "{}", n.cell_c());
        assert!((n.jig_c() - 27.0).abs() < 1e-9, "{}", n.jig_c());
        let no_jig = crate::ecm::EcmThermal { jig_heat_capacity_j_per_k: 0.0, ..p };
        let mut m = CellJigThermal::new(&no_jig, 25.0);
        m.step(100.0, 20.0, 25.0);
        let expected = 25.0 + 2.0 * (1.0 - (-1.0f64).exp());
        assert!((m.cell_c() - expected).abs() < 1e-9, "{}", m.cell_c());
    }
}
