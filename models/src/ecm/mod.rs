//! Equivalent-circuit parameter sets: the built-in cells and external ones
//! read from TOML or JSON text.
//!
//! One cell is
//!
//! ```text
//!  + ─[ OCV(x,T) + M(x)·h ]─[ R0 ]─[ R1 ∥ C1 ]─[ R2 ∥ C2 ]─ −
//! ```
//!
//! with every element a table over (temperature, current, SOC) — see
//! [`crate::table`] — and `x` the SOC the tables are read at (the true SOC
//! shifted by the capacity lost to the cold, [`EcmParams::capacity_factor`]).
//! The equations are in [`crate::pack`] and `docs/models.md`.
//!
//! # File format
//!
//! ```toml
//! name = "pybamm-ecm-example"
//! capacity_ah = 100.0
//! cells_in_series = 1            # 0 or absent: the board variant's count
//! soc = [0.0, 0.5, 1.0]           # SOC axis shared by every table
//! temp_c = [0.0, 25.0, 50.0]      # temperature axis (°C), optional
//! current_a = [-100.0, 100.0]     # current axis (A, + = charge), optional
//! ocv_v = [3.0, 3.6, 4.2]         # over SOC, or [[…] per temperature]
//! r0_ohm = 0.4e-3                 # scalar, [soc], [[soc] per T] or [[[soc] per I] per T]
//! r1_ohm = 0.6e-3
//! c1_f = 5e4                      # or tau1_s (one of the two)
//! # r2_ohm, c2_f | tau2_s: a second RC pair
//! # entropic_v_per_k: dOCV/dT for the reversible heat (not added to the OCV)
//! # hysteresis_v (M), hysteresis_rate (γ), coulombic_efficiency,
//! # self_discharge_per_day, capacity_factor (over temp_c)
//! [axes.ocv_v]                    # optional: a table's own breakpoints
//! soc = [0.0, 0.25, 0.5, 0.75, 1.0]   # replace the shared soc / temp_c for it
//! [thermal]                       # optional, per cell
//! cell_heat_capacity_j_per_k = 1000.0
//! cell_to_jig_w_per_k = 10.0
//! jig_heat_capacity_j_per_k = 500.0   # 0: the cell goes straight to ambient
//! jig_to_ambient_w_per_k = 10.0
//! ```
//!
//! Current is + = charge here as everywhere in this project; a table from
//! a tool with + = discharge (PyBaMM) has its current axis negated.
//!
//! [`run`]: a set alone on a current profile with its cell–jig thermal model.

pub mod run;

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};
use crate::ocv::Chemistry;
use crate::table::{self, Table, TableValues};

/// Universal gas constant (J/(mol·K)).
pub const GAS_CONSTANT: f64 = 8.314_462_618;
/// 0 °C in kelvin.
pub const ZERO_C_K: f64 = 273.15;
/// Reference temperature of the tables' "at 25 °C" values (°C).
pub const T_REF_C: f64 = 25.0;

/// Thermal parameters of one cell in an external set (PyBaMM's
/// cell–jig–air model; set the jig's heat capacity to 0 to drop it).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcmThermal {
    /// Heat capacity of the cell (J/K).
    pub cell_heat_capacity_j_per_k: f64,
    /// Conductance cell → jig, or cell → ambient without a jig (W/K).
    pub cell_to_jig_w_per_k: f64,
    /// Heat capacity of the jig (J/K); 0: no jig.
    #[serde(default)]
    pub jig_heat_capacity_j_per_k: f64,
    /// Conductance jig → ambient (W/K).
    #[serde(default)]
    pub jig_to_ambient_w_per_k: f64,
}

/// An equivalent-circuit parameter set for one cell (see the module doc for
/// the file format).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcmParams {
    /// Free text.
    #[serde(default)]
    pub name: String,
    /// Capacity at 25 °C (Ah).
    pub capacity_ah: f64,
    /// Cells in series; 0: the board variant's count.
    #[serde(default)]
    pub cells_in_series: usize,
    /// SOC breakpoints (0..1, strictly increasing) of every table.
    pub soc: Vec<f64>,
    /// Temperature breakpoints (°C) of the tables that depend on it.
    #[serde(default = "default_axis")]
    pub temp_c: Vec<f64>,
    /// Current breakpoints (A, + = charge) of the tables that depend on it.
    #[serde(default = "default_axis")]
    pub current_a: Vec<f64>,
    /// Open-circuit voltage (V).
    pub ocv_v: TableValues,
    /// Series resistance (Ω).
    pub r0_ohm: TableValues,
    /// First RC pair: resistance (Ω).
    #[serde(default)]
    pub r1_ohm: Option<TableValues>,
    /// First RC pair: capacitance (F). Give this or `tau1_s`.
    #[serde(default)]
    pub c1_f: Option<TableValues>,
    /// First RC pair: time constant (s). Give this or `c1_f`.
    #[serde(default)]
    pub tau1_s: Option<TableValues>,
    /// Second RC pair: resistance (Ω).
    #[serde(default)]
    pub r2_ohm: Option<TableValues>,
    /// Second RC pair: capacitance (F).
    #[serde(default)]
    pub c2_f: Option<TableValues>,
    /// Second RC pair: time constant (s).
    #[serde(default)]
    pub tau2_s: Option<TableValues>,
    /// Entropic coefficient dOCV/dT (V/K) for the reversible heat; absent:
    /// from the OCV table's temperature axis (0 without one).
    #[serde(default)]
    pub entropic_v_per_k: Option<TableValues>,
    /// Hysteresis half-width M (V); absent: none.
    #[serde(default)]
    pub hysteresis_v: Option<TableValues>,
    /// Hysteresis rate γ: `h` moves by 1 − e⁻¹ of the way to ±1 per 1/γ of
    /// SOC throughput.
    #[serde(default = "default_hysteresis_rate")]
    pub hysteresis_rate: f64,
    /// Fraction of the charge current stored (discharge: 1).
    #[serde(default = "one")]
    pub coulombic_efficiency: f64,
    /// Self-discharge at 25 °C (fraction of capacity per day); doubles
    /// every 10 K.
    #[serde(default)]
    pub self_discharge_per_day: f64,
    /// Usable capacity relative to 25 °C, over `temp_c` (absent: 1).
    #[serde(default)]
    pub capacity_factor: Option<Vec<f64>>,
    /// Lumped thermal parameters of one cell.
    #[serde(default)]
    pub thermal: Option<EcmThermal>,
    /// Tables with breakpoints of their own (a fine OCV table beside coarse
    /// resistance tables, as PyBaMM's sets have).
    #[serde(default, skip_serializing_if = "TableAxesSet::is_empty")]
    pub axes: TableAxesSet,
}

/// Breakpoints of one table that replace the set's shared `soc` and/or
/// `temp_c` axes for that table. The current axis is always the shared one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableAxes {
    /// SOC breakpoints (0..1, strictly increasing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soc: Option<Vec<f64>>,
    /// Temperature breakpoints (°C, strictly increasing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_c: Option<Vec<f64>>,
}

/// The tables that have axes of their own, by table name (`[axes.ocv_v]`
/// in a file); an unknown name is a parse error naming it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableAxesSet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ocv_v: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r0_ohm: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r1_ohm: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c1_f: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau1_s: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r2_ohm: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c2_f: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau2_s: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropic_v_per_k: Option<TableAxes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis_v: Option<TableAxes>,
}

impl TableAxesSet {
    /// `true` if no table has axes of its own.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// (table name, name in errors, its own axes) for every table.
    fn entries(&self) -> [(&'static str, &'static str, &Option<TableAxes>); 10] {
        [
            ("ocv_v", "axes.ocv_v", &self.ocv_v),
            ("r0_ohm", "axes.r0_ohm", &self.r0_ohm),
            ("r1_ohm", "axes.r1_ohm", &self.r1_ohm),
            ("c1_f", "axes.c1_f", &self.c1_f),
            ("tau1_s", "axes.tau1_s", &self.tau1_s),
            ("r2_ohm", "axes.r2_ohm", &self.r2_ohm),
            ("c2_f", "axes.c2_f", &self.c2_f),
            ("tau2_s", "axes.tau2_s", &self.tau2_s),
            ("entropic_v_per_k", "axes.entropic_v_per_k", &self.entropic_v_per_k),
            ("hysteresis_v", "axes.hysteresis_v", &self.hysteresis_v),
        ]
    }

    /// The own axes of the table `name`, if any.
    fn get(&self, name: &str) -> Option<&TableAxes> {
        self.entries().into_iter().find(|e| e.0 == name).and_then(|e| e.2.as_ref())
    }

    /// Checks every table's own axes (strictly increasing, SOC within 0..=1).
    fn check(&self) -> Result<(), ParamError> {
        for (_, name, axes) in self.entries() {
            let Some(axes) = axes else { continue };
            if let Some(soc) = &axes.soc {
                table::check_axis(name, soc)?;
                check_soc_range(name, soc)?;
            }
            if let Some(temp) = &axes.temp_c {
                table::check_axis(name, temp)?;
            }
        }
        Ok(())
    }
}

/// `Err` unless every SOC breakpoint is within 0..=1.
fn check_soc_range(name: &'static str, soc: &[f64]) -> Result<(), ParamError> {
    match soc.iter().find(|s| !(0.0..=1.0).contains(*s)) {
        Some(&bad) => Err(ParamError { name, value: bad, requirement: "breakpoints within 0..=1" }),
        None => Ok(()),
    }
}

fn default_axis() -> Vec<f64> {
    vec![T_REF_C]
}
fn one() -> f64 {
    1.0
}
fn default_hysteresis_rate() -> f64 {
    DEFAULT_HYSTERESIS_RATE
}

/// Default hysteresis rate γ (per unit SOC): the branch switches (to 95 %)
/// within ≈ 5 % SOC of throughput, as measured for LFP (Plett's one-state
/// model fitted to LFP: γ of tens to ~100).
pub const DEFAULT_HYSTERESIS_RATE: f64 = 60.0;

/// An external parameter set that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EcmError {
    /// TOML syntax or type error.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// JSON syntax or type error.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A value out of range or a table of the wrong shape.
    #[error(transparent)]
    Param(#[from] ParamError),
}

impl EcmParams {
    /// Parses a TOML parameter set and checks it.
    pub fn from_toml_str(text: &str) -> Result<Self, EcmError> {
        let p: EcmParams = toml::from_str(text)?;
        p.validate()?;
        Ok(p)
    }

    /// Parses a JSON parameter set and checks it.
    pub fn from_json_str(text: &str) -> Result<Self, EcmError> {
        let p: EcmParams = serde_json::from_str(text)?;
        p.validate()?;
        Ok(p)
    }

    /// Checks ranges and table shapes.
    pub fn validate(&self) -> Result<(), ParamError> {
        self.compile().map(|_| ())
    }

    /// The tables, checked: what [`crate::pack::Pack::from_ecm`] runs on,
    /// and what an estimator that runs the pack's equations (`hil-rig`'s
    /// tracking filter) reads. The error names the first bad field.
    pub fn compile(&self) -> Result<Tables, ParamError> {
        error::positive("capacity_ah", self.capacity_ah)?;
        table::check_axis("soc", &self.soc)?;
        table::check_axis("temp_c", &self.temp_c)?;
        table::check_axis("current_a", &self.current_a)?;
        check_soc_range("soc", &self.soc)?;
        self.axes.check()?;
        let t = |name: &'static str, v: &TableValues| {
            let own = self.axes.get(name);
            let soc = own.and_then(|a| a.soc.as_deref()).unwrap_or(&self.soc);
            let temp_c = own.and_then(|a| a.temp_c.as_deref()).unwrap_or(&self.temp_c);
            Table::from_values(name, v, temp_c, &self.current_a, soc)
        };
        let non_neg = |name: &'static str, tab: &Table| {
            let m = tab.min_value();
            if m >= 0.0 { Ok(()) } else { Err(ParamError { name, value: m, requirement: "values >= 0" }) }
        };
        let pos = |name: &'static str, tab: &Table| {
            let m = tab.min_value();
            if m > 0.0 { Ok(()) } else { Err(ParamError { name, value: m, requirement: "values > 0" }) }
        };
        let ocv = t("ocv_v", &self.ocv_v)?;
        let r0 = t("r0_ohm", &self.r0_ohm)?;
        non_neg("r0_ohm", &r0)?;
        let mut rc = Vec::new();
        for (k, (r, c, tau)) in
            [(&self.r1_ohm, &self.c1_f, &self.tau1_s), (&self.r2_ohm, &self.c2_f, &self.tau2_s)].into_iter().enumerate()
        {
            let (rn, cn, tn) = if k == 0 { ("r1_ohm", "c1_f", "tau1_s") } else { ("r2_ohm", "c2_f", "tau2_s") };
            match (r, c, tau) {
                (None, None, None) => {}
                (Some(r), Some(c), None) => {
                    let (r, c) = (t(rn, r)?, t(cn, c)?);
                    non_neg(rn, &r)?;
                    pos(cn, &c)?;
                    rc.push(RcTables { r, x: c, x_is_tau: false });
                }
                (Some(r), None, Some(tau)) => {
                    let (r, tau) = (t(rn, r)?, t(tn, tau)?);
                    non_neg(rn, &r)?;
                    pos(tn, &tau)?;
                    rc.push(RcTables { r, x: tau, x_is_tau: true });
                }
                _ => {
                    return Err(ParamError {
                        name: rn,
                        value: f64::NAN,
                        requirement: "given with exactly one of its capacitance (c_f) or time constant (tau_s)",
                    });
                }
            }
        }
        if rc.len() == 1 && self.r1_ohm.is_none() {
            return Err(ParamError { name: "r1_ohm", value: f64::NAN, requirement: "given when r2_ohm is" });
        }
        let entropic = match &self.entropic_v_per_k {
            Some(v) => Some(t("entropic_v_per_k", v)?),
            None => None,
        };
        let hysteresis = match &self.hysteresis_v {
            Some(v) => {
                let h = t("hysteresis_v", v)?;
                non_neg("hysteresis_v", &h)?;
                Some(h)
            }
            None => None,
        };
        error::non_negative("hysteresis_rate", self.hysteresis_rate)?;
        if !(self.coulombic_efficiency > 0.0 && self.coulombic_efficiency <= 1.0) {
            return Err(ParamError {
                name: "coulombic_efficiency",
                value: self.coulombic_efficiency,
                requirement: "within (0, 1]",
            });
        }
        error::non_negative("self_discharge_per_day", self.self_discharge_per_day)?;
        let capacity_factor = match &self.capacity_factor {
            Some(v) => {
                if v.len() != self.temp_c.len() {
                    return Err(ParamError {
                        name: "capacity_factor",
                        value: v.len() as f64,
                        requirement: "one value per temp_c breakpoint",
                    });
                }
                if let Some(&bad) = v.iter().find(|x| !(x.is_finite() && **x > 0.0 && **x <= 1.0)) {
                    return Err(ParamError { name: "capacity_factor", value: bad, requirement: "within (0, 1]" });
                }
                Some((self.temp_c.clone(), v.clone()))
            }
            None => None,
        };
        if let Some(th) = &self.thermal {
            error::positive("thermal.cell_heat_capacity_j_per_k", th.cell_heat_capacity_j_per_k)?;
            error::positive("thermal.cell_to_jig_w_per_k", th.cell_to_jig_w_per_k)?;
            error::non_negative("thermal.jig_heat_capacity_j_per_k", th.jig_heat_capacity_j_per_k)?;
            if th.jig_heat_capacity_j_per_k > 0.0 {
                error::positive("thermal.jig_to_ambient_w_per_k", th.jig_to_ambient_w_per_k)?;
            }
        }
        Ok(Tables {
            capacity_ah: self.capacity_ah,
            ocv,
            r0,
            rc,
            entropic,
            hysteresis,
            hysteresis_rate: self.hysteresis_rate,
            coulombic_efficiency: self.coulombic_efficiency,
            self_discharge_per_s: self.self_discharge_per_day / 86_400.0,
            capacity_factor,
        })
    }

    /// The built-in parameter set of a cell ([`crate::cell::CellParams`]) in
    /// this form: tables over SOC (the chemistry's OCV breakpoints) and
    /// temperature ([`BUILTIN_TEMPS_C`]).
    pub fn from_cell(cell: &crate::cell::CellParams) -> Self {
        let chem = cell.chemistry;
        let soc: Vec<f64> = chem.table().points().iter().map(|p| p.0).collect();
        let temps = BUILTIN_TEMPS_C.to_vec();
        let grid = |f: &dyn Fn(f64, f64) -> f64| -> TableValues {
            TableValues::TempSoc(temps.iter().map(|&t| soc.iter().map(|&s| f(t, s)).collect()).collect())
        };
        let arr = |t: f64| arrhenius(cell.r_activation_j_per_mol, t);
        let r = |base: f64| grid(&|t, s| base * resistance_soc_factor(s) * arr(t));
        let entropic = |s: f64| entropic_v_per_k(chem, s);
        let rc_pair = |r_ohm: f64, tau_s: f64| {
            if r_ohm > 0.0 && tau_s > 0.0 { (Some(r(r_ohm)), Some(TableValues::Scalar(tau_s))) } else { (None, None) }
        };
        let (r1, tau1) = rc_pair(cell.r1_ohm, cell.tau1_s);
        let (r2, tau2) = rc_pair(cell.r2_ohm, cell.tau2_s);
        let (r1, tau1, r2, tau2) = if r1.is_none() { (r2, tau2, None, None) } else { (r1, tau1, r2, tau2) };
        EcmParams {
            name: format!("built-in {chem:?}"),
            capacity_ah: cell.capacity_ah,
            cells_in_series: 0,
            soc: soc.clone(),
            temp_c: temps.clone(),
            current_a: default_axis(),
            ocv_v: grid(&|t, s| chem.table().ocv_v(s) + entropic(s) * (t - T_REF_C)),
            r0_ohm: r(cell.r0_ohm),
            r1_ohm: r1,
            c1_f: None,
            tau1_s: tau1,
            r2_ohm: r2,
            c2_f: None,
            tau2_s: tau2,
            entropic_v_per_k: Some(TableValues::Soc(soc.iter().map(|&s| entropic(s)).collect())),
            hysteresis_v: (cell.hysteresis_v > 0.0).then_some(TableValues::Scalar(cell.hysteresis_v)),
            hysteresis_rate: cell.hysteresis_rate,
            coulombic_efficiency: cell.coulombic_efficiency,
            self_discharge_per_day: cell.self_discharge_per_month / 30.0,
            capacity_factor: cell
                .capacity_vs_temperature
                .then(|| temps.iter().map(|&t| capacity_temperature_factor(chem, t)).collect()),
            thermal: None,
            axes: TableAxesSet::default(),
        }
    }
}

/// Temperature breakpoints of the built-in tables (°C).
pub const BUILTIN_TEMPS_C: [f64; 9] = [-30.0, -20.0, -10.0, 0.0, 10.0, 25.0, 40.0, 50.0, 60.0];

/// Arrhenius factor `exp(Ea/R·(1/T − 1/T25))` of a resistance at `temp_c`.
pub fn arrhenius(activation_j_per_mol: f64, temp_c: f64) -> f64 {
    (activation_j_per_mol / GAS_CONSTANT * (1.0 / (temp_c + ZERO_C_K) - 1.0 / (T_REF_C + ZERO_C_K))).exp()
}

/// Resistance vs SOC relative to mid-SOC: a shallow bowl, +20 % at both
/// ends (the shape of PyBaMM's `ECM_Example` DCIR), plus the steep rise of
/// the charge-transfer resistance of an almost empty cell (+50 % at 0 %).
pub fn resistance_soc_factor(soc: f64) -> f64 {
    let d = 2.0 * soc - 1.0;
    1.0 + 0.2 * d * d + 0.5 * ((0.1 - soc) / 0.1).max(0.0)
}

/// Representative entropic coefficient dOCV/dT (V/K) by SOC. LFP: about
/// −0.1 mV/K near empty, −0.03..+0.02 mV/K on the plateau; NMC: −0.2 mV/K
/// near empty rising to +0.1 mV/K (reported magnitudes for both, e.g.
/// Viswanathan et al., J. Power Sources 195 (2010) 3720).
pub fn entropic_v_per_k(chem: Chemistry, soc: f64) -> f64 {
    let pts: &[(f64, f64)] = match chem {
        Chemistry::Lfp => &[(0.0, -0.10e-3), (0.2, -0.03e-3), (0.5, -0.01e-3), (0.8, 0.02e-3), (1.0, 0.0)],
        Chemistry::Nmc => &[(0.0, -0.20e-3), (0.3, -0.05e-3), (0.6, 0.05e-3), (1.0, 0.10e-3)],
    };
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let (i, f) = table::locate(&xs, soc, 0);
    let j = (i + 1).min(pts.len() - 1);
    pts[i].1 + f * (pts[j].1 - pts[i].1)
}

/// Usable capacity at `temp_c` relative to 25 °C (≤ 1): LFP about 90 % at
/// 0 °C, 80 % at −10 °C, 70 % at −20 °C at moderate rates (cell makers'
/// discharge curves at 0.2–0.5 C); NMC somewhat better in the cold.
pub fn capacity_temperature_factor(chem: Chemistry, temp_c: f64) -> f64 {
    let pts: &[(f64, f64)] = match chem {
        Chemistry::Lfp => &[(-30.0, 0.55), (-20.0, 0.70), (-10.0, 0.80), (0.0, 0.90), (10.0, 0.96), (25.0, 1.0)],
        Chemistry::Nmc => &[(-30.0, 0.65), (-20.0, 0.78), (-10.0, 0.86), (0.0, 0.93), (10.0, 0.97), (25.0, 1.0)],
    };
    let xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    let (i, f) = table::locate(&xs, temp_c, 0);
    let j = (i + 1).min(pts.len() - 1);
    pts[i].1 + f * (pts[j].1 - pts[i].1)
}

/// One RC pair's tables: resistance and either capacitance or time constant.
///
/// Read-only outside this crate (`#[non_exhaustive]`): made by
/// [`EcmParams::compile`] only, so every table in it is checked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RcTables {
    /// Resistance of one cell's pair (Ω) over (T, I, SOC).
    pub r: Table,
    /// Capacitance (F) or, when `x_is_tau`, time constant (s) over (T, I, SOC).
    pub x: Table,
    /// `x` is the time constant τ; else the capacitance C, and τ = R·C.
    pub x_is_tau: bool,
}

/// A checked parameter set of one cell, ready to slice: what
/// [`EcmParams::compile`] makes of it, each table over its own
/// (temperature, current, SOC) axes ([`Table::eval`]).
///
/// Read-only outside this crate (`#[non_exhaustive]`): made by
/// [`EcmParams::compile`] only, so every table in it is checked.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Tables {
    /// Nominal capacity at 25 °C (Ah).
    pub capacity_ah: f64,
    /// Open-circuit voltage (V).
    pub ocv: Table,
    /// Series resistance (Ω).
    pub r0: Table,
    /// The RC pairs, 0 to 2, in order.
    pub rc: Vec<RcTables>,
    /// Entropic coefficient dOCV/dT (V/K) for the reversible heat, if given.
    pub entropic: Option<Table>,
    /// Hysteresis half-width M (V), if given.
    pub hysteresis: Option<Table>,
    /// Hysteresis rate γ: `h` moves by 1 − e⁻¹ of the way to ±1 per 1/γ of SOC throughput.
    pub hysteresis_rate: f64,
    /// Share of the charge current that is stored (0, 1].
    pub coulombic_efficiency: f64,
    /// Self-discharge at 25 °C (SOC per second).
    pub self_discharge_per_s: f64,
    /// Usable capacity relative to 25 °C over temperature: (temperatures °C, factors).
    pub capacity_factor: Option<(Vec<f64>, Vec<f64>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::CellParams;

    const EXAMPLE: &str = r#"
name = "test"
capacity_ah = 100.0
soc = [0.0, 0.5, 1.0]
temp_c = [0.0, 25.0]
ocv_v = [3.0, 3.6, 4.2]
r0_ohm = [[0.8e-3, 0.8e-3, 0.8e-3], [0.4e-3, 0.4e-3, 0.4e-3]]
r1_ohm = 0.6e-3
c1_f = 5e4
[thermal]
cell_heat_capacity_j_per_k = 1000.0
cell_to_jig_w_per_k = 10.0
jig_heat_capacity_j_per_k = 500.0
jig_to_ambient_w_per_k = 10.0
"#;

    #[test]
    fn toml_and_json_parse_the_same() {
        let a = EcmParams::from_toml_str(EXAMPLE).unwrap();
        let json = serde_json::to_string(&a).unwrap();
        let b = EcmParams::from_json_str(&json).unwrap();
        assert_eq!(a, b);
        let t = a.compile().unwrap();
        assert_eq!(t.rc.len(), 1);
        assert!(!t.rc[0].x_is_tau);
        assert!((t.r0.eval(12.5, 0.0, 0.3) - 0.6e-3).abs() < 1e-15);
    }

    #[test]
    fn bad_sets_name_the_field() {
        let e = EcmParams::from_toml_str(&EXAMPLE.replace("c1_f = 5e4", "")).unwrap_err();
        assert!(e.to_string().contains("r1_ohm"), "{e}");
        let e =
            EcmParams::from_toml_str(&EXAMPLE.replace("ocv_v = [3.0, 3.6, 4.2]", "ocv_v = [3.0, 3.6]")).unwrap_err();
        assert!(e.to_string().contains("ocv_v"), "{e}");
        let e = EcmParams::from_toml_str(&EXAMPLE.replace("capacity_ah = 100.0", "capacity_ah = -1.0")).unwrap_err();
        assert!(e.to_string().contains("capacity_ah"), "{e}");
        let e = EcmParams::from_toml_str(&format!("{EXAMPLE}\nbogus = 1")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn tables_with_axes_of_their_own() {
        // A fine OCV table and a temperature-dependent R0 on a coarser SOC
        // axis, beside the shared axes (PyBaMM's sets are built this way).
        let text = format!(
            "{EXAMPLE}\n[axes.ocv_v]\nsoc = [0.0, 0.25, 0.5, 1.0]\n[axes.r0_ohm]\nsoc = [0.0, 1.0]\ntemp_c = [0.0, 40.0]\n"
        )
        .replace("ocv_v = [3.0, 3.6, 4.2]", "ocv_v = [3.0, 3.5, 3.6, 4.2]")
        .replace("r0_ohm = [[0.8e-3, 0.8e-3, 0.8e-3], [0.4e-3, 0.4e-3, 0.4e-3]]", "r0_ohm = [[0.8e-3, 0.6e-3], [0.4e-3, 0.2e-3]]");
        let e = EcmParams::from_toml_str(&text).unwrap();
        assert_eq!(e.axes.ocv_v.as_ref().and_then(|a| a.soc.as_ref()).map(Vec::len), Some(4));
        let t = e.compile().unwrap();
        assert_eq!(t.ocv.soc_axis(), &[0.0, 0.25, 0.5, 1.0]);
        assert!((t.ocv.eval(25.0, 0.0, 0.125) - 3.25).abs() < 1e-12);
        assert!((t.ocv.eval(25.0, 0.0, 0.75) - 3.9).abs() < 1e-12);
        // r0 over its own (0, 40 °C) × (0, 1): at 20 °C and SOC 0.5 the mean of the four corners
        assert!((t.r0.eval(20.0, 0.0, 0.5) - 0.5e-3).abs() < 1e-15);
        // the other tables keep the shared axes
        assert_eq!(t.rc[0].r.eval(0.0, 0.0, 0.0), 0.6e-3);
        // round trip through JSON keeps the axes
        let back = EcmParams::from_json_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        // a set without own axes serialises without the key
        let plain = EcmParams::from_toml_str(EXAMPLE).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("axes"));
    }

    #[test]
    fn bad_own_axes_name_the_table() {
        let e = EcmParams::from_toml_str(&format!("{EXAMPLE}\n[axes.ocv]\nsoc = [0.0, 1.0]\n")).unwrap_err();
        assert!(e.to_string().contains("unknown field `ocv`"), "{e}");
        let e = EcmParams::from_toml_str(&format!("{EXAMPLE}\n[axes.ocv_v]\nsoc = [0.0, 0.5, 1.5]\n")).unwrap_err();
        assert!(e.to_string().contains("axes.ocv_v") && e.to_string().contains("0..=1"), "{e}");
        let e = EcmParams::from_toml_str(&format!("{EXAMPLE}\n[axes.r0_ohm]\ntemp_c = [25.0, 0.0]\n")).unwrap_err();
        assert!(e.to_string().contains("axes.r0_ohm"), "{e}");
        // values that do not fit the table's own axis
        let e = EcmParams::from_toml_str(&format!("{EXAMPLE}\n[axes.ocv_v]\nsoc = [0.0, 1.0]\n")).unwrap_err();
        assert!(e.to_string().contains("ocv_v"), "{e}");
    }

    #[test]
    fn builtin_sets_compile() {
        for chem in [Chemistry::Lfp, Chemistry::Nmc] {
            let cell = CellParams { chemistry: chem, ..CellParams::default() };
            let e = EcmParams::from_cell(&cell);
            let t = e.compile().unwrap();
            assert_eq!(t.rc.len(), 2);
            assert!(t.rc.iter().all(|rc| rc.x_is_tau && rc.x.is_constant()));
            // at 25 °C and mid SOC the tables give the cell's figures
            assert!((t.r0.eval(25.0, 0.0, 0.5) - cell.r0_ohm).abs() < 1e-15);
            assert!((t.ocv.eval(25.0, 0.0, 0.5) - chem.table().ocv_v(0.5)).abs() < 1e-12);
            // colder: higher resistance
            assert!(t.r0.eval(-10.0, 0.0, 0.5) > 2.0 * cell.r0_ohm);
        }
        assert!((arrhenius(20_000.0, 25.0) - 1.0).abs() < 1e-15);
        assert_eq!(capacity_temperature_factor(Chemistry::Lfp, 40.0), 1.0);
        assert_eq!(capacity_temperature_factor(Chemistry::Lfp, -10.0), 0.8);
    }
}
