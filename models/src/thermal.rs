//! Lumped (single-node) thermal model: heat capacity C, conductance G to
//! ambient.
//!
//! `C·dT/dt = P − G·(T − T_amb)`. With P and T_amb held over a step the
//! exact update is `T' = T_amb + P/G + (T − T_amb − P/G)·exp(−dt·G/C)`.

use nalgebra::{Matrix4, SMatrix, Vector4};
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

/// A jig (fixture, module frame) the cells sit in, between them and the
/// ambient: PyBaMM's cell–jig–air thermal model, for a whole pack.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JigParams {
    /// Heat capacity of the jig (J/K).
    pub heat_capacity_j_per_k: f64,
    /// Cells → jig (W/K).
    pub cells_to_jig_w_per_k: f64,
    /// Jig → ambient (W/K).
    pub jig_to_ambient_w_per_k: f64,
}

/// Parameters of the thermal network: cells, board (MOSFETs), shunt, an
/// optional jig around the cells, and ambient as the boundary.
///
/// ```text
///            G_cb              G_sb
///  cells ─────────── board ─────────── shunt
///    │ G_ca   │ G_cj   │ G_ba
///  ambient   jig    ambient
///             │ G_ja
///           ambient
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkParams {
    /// Heat capacity and conductance straight to ambient of the cells (the
    /// pack's lumped node); the conductance may be 0 when a jig carries the heat.
    pub cells: ThermalParams,
    /// A jig between the cells and the ambient; absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jig: Option<JigParams>,
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

/// Nodes of the network, in the order of its state vector.
const NODES: [&str; 4] = ["cells", "board", "shunt", "jig"];

impl NetworkParams {
    /// The default network with the cells node of a pack of `cells` cells.
    pub fn for_cells(cells: usize) -> Self {
        Self {
            cells: ThermalParams::for_cells(cells),
            jig: None,
            board_heat_capacity_j_per_k: BOARD_HEAT_CAPACITY_J_PER_K,
            board_to_ambient_w_per_k: BOARD_TO_AMBIENT_W_PER_K,
            board_to_cells_w_per_k: BOARD_TO_CELLS_W_PER_K,
            shunt_heat_capacity_j_per_k: SHUNT_HEAT_CAPACITY_J_PER_K,
            shunt_to_board_w_per_k: SHUNT_TO_BOARD_W_PER_K,
            shunt_terminal_coupling: SHUNT_TERMINAL_COUPLING,
        }
    }

    /// The network of a pack of `cells` cells, each with the per-cell
    /// thermal parameters `cell` of an external parameter set
    /// ([`crate::ecm::EcmThermal`]; `None`: the built-in cells'): heat
    /// capacities and conductances scale with the cell count, so every
    /// cell of the pack follows the per-cell model with `1/cells` of the
    /// pack's heat. Without a jig the cells go straight to ambient through
    /// `cell_to_jig_w_per_k`. Board and shunt keep their defaults.
    pub fn for_pack(cells: usize, cell: Option<&crate::ecm::EcmThermal>) -> Self {
        let base = Self::for_cells(cells);
        let Some(th) = cell else { return base };
        let n = cells as f64;
        let cell_c = n * th.cell_heat_capacity_j_per_k;
        let g_cj = n * th.cell_to_jig_w_per_k;
        if th.jig_heat_capacity_j_per_k > 0.0 {
            Self {
                cells: ThermalParams { heat_capacity_j_per_k: cell_c, conductance_w_per_k: 0.0 },
                jig: Some(JigParams {
                    heat_capacity_j_per_k: n * th.jig_heat_capacity_j_per_k,
                    cells_to_jig_w_per_k: g_cj,
                    jig_to_ambient_w_per_k: n * th.jig_to_ambient_w_per_k,
                }),
                ..base
            }
        } else {
            Self { cells: ThermalParams { heat_capacity_j_per_k: cell_c, conductance_w_per_k: g_cj }, ..base }
        }
    }

    /// Checks that every field is physical and that every node has a path
    /// to ambient (else the network has no steady state).
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("cells.heat_capacity_j_per_k", self.cells.heat_capacity_j_per_k)?;
        error::non_negative("cells.conductance_w_per_k", self.cells.conductance_w_per_k)?;
        if let Some(j) = &self.jig {
            error::positive("jig.heat_capacity_j_per_k", j.heat_capacity_j_per_k)?;
            error::non_negative("jig.cells_to_jig_w_per_k", j.cells_to_jig_w_per_k)?;
            error::non_negative("jig.jig_to_ambient_w_per_k", j.jig_to_ambient_w_per_k)?;
        }
        error::positive("board_heat_capacity_j_per_k", self.board_heat_capacity_j_per_k)?;
        error::non_negative("board_to_ambient_w_per_k", self.board_to_ambient_w_per_k)?;
        error::non_negative("board_to_cells_w_per_k", self.board_to_cells_w_per_k)?;
        error::positive("shunt_heat_capacity_j_per_k", self.shunt_heat_capacity_j_per_k)?;
        error::positive("shunt_to_board_w_per_k", self.shunt_to_board_w_per_k)?;
        error::non_negative("shunt_terminal_coupling", self.shunt_terminal_coupling)?;
        // Flood from the ambient through the non-zero conductances.
        let (g, g_amb) = self.conductances();
        let mut reached = g_amb.map(|x| x > 0.0);
        for _ in 0..NODES.len() {
            for i in 0..NODES.len() {
                reached[i] |= (0..NODES.len()).any(|j| reached[j] && g[i][j] > 0.0);
            }
        }
        match reached.iter().position(|r| !r) {
            None => Ok(()),
            Some(i) => Err(ParamError {
                name: NODES[i],
                value: 0.0,
                requirement: "connected to ambient: every node needs a path of non-zero conductances to it",
            }),
        }
    }

    /// Conductances between the nodes and from each node to ambient (W/K).
    /// Without a jig the jig node is a stand-in of 1 J/K tied to ambient by
    /// 1 W/K and to nothing else: it follows the ambient and carries no heat.
    fn conductances(&self) -> ([[f64; 4]; 4], [f64; 4]) {
        let (g_cj, g_ja) = match &self.jig {
            Some(j) => (j.cells_to_jig_w_per_k, j.jig_to_ambient_w_per_k),
            None => (0.0, 1.0),
        };
        let (g_cb, g_sb) = (self.board_to_cells_w_per_k, self.shunt_to_board_w_per_k);
        #[rustfmt::skip]
        let g = [
            [0.0,  g_cb, 0.0,  g_cj],
            [g_cb, 0.0,  g_sb, 0.0],
            [0.0,  g_sb, 0.0,  0.0],
            [g_cj, 0.0,  0.0,  0.0],
        ];
        (g, [self.cells.conductance_w_per_k, self.board_to_ambient_w_per_k, 0.0, g_ja])
    }

    /// `A` and `B` of `dT/dt = A·T + B·[P_cells, P_board, P_shunt, T_amb]`,
    /// T = [cells, board, shunt, jig] (no heat is generated in the jig).
    fn state_space(&self) -> (Matrix4<f64>, Matrix4<f64>) {
        let c = [
            self.cells.heat_capacity_j_per_k,
            self.board_heat_capacity_j_per_k,
            self.shunt_heat_capacity_j_per_k,
            self.jig.map_or(1.0, |j| j.heat_capacity_j_per_k),
        ];
        let (g, g_amb) = self.conductances();
        let mut a = Matrix4::zeros();
        let mut b = Matrix4::zeros();
        for i in 0..4 {
            let out: f64 = g[i].iter().sum::<f64>() + g_amb[i];
            for j in 0..4 {
                a[(i, j)] = if i == j { -out } else { g[i][j] } / c[i];
            }
            if i < 3 {
                b[(i, i)] = 1.0 / c[i];
            }
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

impl HeatInputs {
    fn vector(&self) -> Vector4<f64> {
        Vector4::new(self.cells_w, self.board_w, self.shunt_w, self.ambient_c)
    }
}

/// The thermal network, stepped exactly:
/// `T' = Φ·T + Γ·u` with `Φ = exp(A·dt)` and `Γ = ∫₀^dt exp(A·s) ds · B`,
/// both taken from the exponential of the augmented matrix `[[A, B], [0,
/// 0]]·dt` (Van Loan), recomputed only when `dt` changes.
#[derive(Clone, Debug)]
pub struct ThermalNetwork {
    params: NetworkParams,
    a: Matrix4<f64>,
    b: Matrix4<f64>,
    dt_s: f64,
    phi: Matrix4<f64>,
    gamma: Matrix4<f64>,
    temps: Vector4<f64>,
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
            phi: Matrix4::identity(),
            gamma: Matrix4::zeros(),
            temps: Vector4::repeat(temp_c),
        }
    }

    /// Advances by `dt_s` with `inputs` held over the step.
    pub fn step(&mut self, dt_s: f64, inputs: &HeatInputs) {
        if dt_s.to_bits() != self.dt_s.to_bits() {
            self.dt_s = dt_s;
            let mut m = SMatrix::<f64, 8, 8>::zeros();
            m.fixed_view_mut::<4, 4>(0, 0).copy_from(&(self.a * dt_s));
            m.fixed_view_mut::<4, 4>(0, 4).copy_from(&(self.b * dt_s));
            let e = m.exp();
            self.phi = e.fixed_view::<4, 4>(0, 0).into_owned();
            self.gamma = e.fixed_view::<4, 4>(0, 4).into_owned();
        }
        self.temps = self.phi * self.temps + self.gamma * inputs.vector();
    }

    /// The steady state for constant `inputs` (°C): `−A⁻¹·B·u`, as
    /// [cells, board, shunt, jig] (the jig: ambient when there is none).
    pub fn steady_state_c(&self, inputs: &HeatInputs) -> Option<[f64; 4]> {
        let x = -(self.a.try_inverse()? * self.b * inputs.vector());
        Some([x[0], x[1], x[2], x[3]])
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

    /// Jig temperature (°C), when the network has a jig.
    pub fn jig_c(&self) -> Option<f64> {
        self.params.jig.map(|_| self.temps[3])
    }

    /// Temperature difference across the shunt's terminals (K), for its
    /// thermoelectric EMF.
    pub fn shunt_terminal_delta_k(&self) -> f64 {
        self.params.shunt_terminal_coupling * (self.temps[1] - self.temps[0])
    }

    /// The parameters.
    pub fn params(&self) -> &NetworkParams {
        &self.params
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

    const EXAMPLE_CELL: crate::ecm::EcmThermal = crate::ecm::EcmThermal {
        cell_heat_capacity_j_per_k: 1000.0,
        cell_to_jig_w_per_k: 10.0,
        jig_heat_capacity_j_per_k: 500.0,
        jig_to_ambient_w_per_k: 10.0,
    };

    /// The network of `cells` cells of `cell` with the board cut off from
    /// them (board and shunt get no heat and stay out of the cells' path).
    fn cells_and_jig(cells: usize, cell: &crate::ecm::EcmThermal) -> ThermalNetwork {
        let p = NetworkParams { board_to_cells_w_per_k: 0.0, ..NetworkParams::for_pack(cells, Some(cell)) };
        p.validate().unwrap();
        ThermalNetwork::new(&p, 25.0)
    }

    #[test]
    fn cell_and_jig_settle_at_the_series_resistance_rise() {
        // Per cell 20 W through 1/10 + 1/10 K/W: cell +4 K, jig +2 K, for
        // one cell and for a pack of four with four times the heat.
        for cells in [1, 4] {
            let mut n = cells_and_jig(cells, &EXAMPLE_CELL);
            let u = HeatInputs { cells_w: 20.0 * cells as f64, ambient_c: 25.0, ..HeatInputs::default() };
            for _ in 0..100 {
                n.step(60.0, &u);
            }
            assert!((n.cells_c() - 29.0).abs() < 1e-9, "{}", n.cells_c());
            assert!((n.jig_c().unwrap() - 27.0).abs() < 1e-9, "{:?}", n.jig_c());
            let ss = n.steady_state_c(&u).unwrap();
            assert!((ss[0] - 29.0).abs() < 1e-9 && (ss[3] - 27.0).abs() < 1e-9, "{ss:?}");
        }
        // Without a jig: one node, C = 1000 J/K, G = 10 W/K, τ = 100 s.
        let no_jig = crate::ecm::EcmThermal { jig_heat_capacity_j_per_k: 0.0, ..EXAMPLE_CELL };
        let mut m = cells_and_jig(1, &no_jig);
        assert_eq!(m.jig_c(), None);
        m.step(100.0, &HeatInputs { cells_w: 20.0, ambient_c: 25.0, ..HeatInputs::default() });
        let expected = 25.0 + 2.0 * (1.0 - (-1.0f64).exp());
        assert!((m.cells_c() - expected).abs() < 1e-9, "{}", m.cells_c());
    }

    #[test]
    fn cell_and_jig_transient_matches_the_two_node_closed_form() {
        // C_c·Tc' = Q − G(Tc − Tj), C_j·Tj' = G(Tc − Tj) − G(Tj − Ta) with
        // C_c = 1000, C_j = 500, G = 10: eigenvalues λ = (−0.05 ± √0.0017)/2
        // of A = [[−0.01, 0.01], [0.02, −0.04]]; the rise x = T − T_ss from
        // x(0) = −[4, 2] is Σ kᵢ·vᵢ·e^{λᵢ t}.
        let mut n = cells_and_jig(1, &EXAMPLE_CELL);
        let u = HeatInputs { cells_w: 20.0, ambient_c: 25.0, ..HeatInputs::default() };
        let t_s = 150.0;
        n.step(t_s, &u);
        let d = 0.0017f64.sqrt();
        let (l1, l2) = ((-0.05 + d) / 2.0, (-0.05 - d) / 2.0);
        // eigenvectors [1, 1 + 100·λ] (from the first row: −0.01 + 0.01·v = λ)
        let (v1, v2) = (1.0 + 100.0 * l1, 1.0 + 100.0 * l2);
        // k1 + k2 = −4, k1·v1 + k2·v2 = −2
        let k1 = (-2.0 + 4.0 * v2) / (v1 - v2);
        let k2 = -4.0 - k1;
        let cell = 29.0 + k1 * (l1 * t_s).exp() + k2 * (l2 * t_s).exp();
        let jig = 27.0 + k1 * v1 * (l1 * t_s).exp() + k2 * v2 * (l2 * t_s).exp();
        assert!((n.cells_c() - cell).abs() < 1e-9, "{} vs {cell}", n.cells_c());
        assert!((n.jig_c().unwrap() - jig).abs() < 1e-9, "{:?} vs {jig}", n.jig_c());
    }

    #[test]
    fn for_pack_without_cell_parameters_is_the_default_network() {
        assert_eq!(NetworkParams::for_pack(16, None), NetworkParams::for_cells(16));
        assert!(NetworkParams::for_pack(16, Some(&EXAMPLE_CELL)).validate().is_ok());
    }

    #[test]
    fn a_node_without_a_path_to_ambient_is_rejected() {
        // Cells in a jig that does not reach the ambient, cut off from the board.
        let jig = JigParams { heat_capacity_j_per_k: 500.0, cells_to_jig_w_per_k: 10.0, jig_to_ambient_w_per_k: 0.0 };
        let mut p = NetworkParams { jig: Some(jig), board_to_cells_w_per_k: 0.0, ..NetworkParams::default() };
        p.cells.conductance_w_per_k = 0.0;
        assert_eq!(p.validate().unwrap_err().name, "cells");
        // Through the board the cells and jig reach the ambient again.
        p.board_to_cells_w_per_k = 0.5;
        assert!(p.validate().is_ok());
        let mut isolated_board = NetworkParams { board_to_ambient_w_per_k: 0.0, board_to_cells_w_per_k: 0.0, ..p };
        isolated_board.cells.conductance_w_per_k = 0.25;
        assert_eq!(isolated_board.validate().unwrap_err().name, "board");
    }
}
