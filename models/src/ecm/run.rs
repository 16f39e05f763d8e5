//! The pack model alone on a current profile: an external equivalent-circuit
//! parameter set and its cell–jig thermal model, for comparison with other
//! ECM implementations (PyBaMM's `Thevenin`: `tools/pybamm/`) and for
//! timing the pack model (`smartpro-sim ecm`, `smartpro-sim bench`).
//!
//! The pack is [`Pack::from_ecm`] without spread or ageing; the thermal model
//! is the set's `[thermal]` table (the twin's [`ThermalNetwork`] of the pack's
//! cells and jig, [`NetworkParams::for_pack`], with the board cut off from
//! the cells, so each cell follows PyBaMM's cell–jig–air model; ambient and
//! initial temperature from [`EcmRun`]), or none (isothermal at the ambient)
//! without one. Between two profile rows the pack is stepped with exact
//! zero-order hold in substeps of at most `max_step_s`, each with the
//! profile's mean current over the substep (so the charge is exact for
//! linear and held profiles); the elements are evaluated at the substep's
//! current, the state at its start and the temperature at its start; the
//! heat of a substep (of the pack, [`Heat`]) is the mean of its values at the
//! start and the end, plus `R0·ΔI²/12` when the current ramps by ΔI over
//! the substep (the mean of I² on a ramp exceeds the square of the mean
//! current by that much). Each output row is the state at a profile
//! row's time with that row's current: at a step in current (two rows at
//! one time) the first row has the voltage with the old current, the second
//! with the new one.

use super::EcmParams;
use crate::cell::CellParams;
use crate::error::ParamError;
use crate::pack::{Pack, PackParams};
use crate::profile::CurrentProfile;
use crate::rng::SeedStreams;
use crate::thermal::{HeatInputs, NetworkParams, ThermalNetwork};
use crate::variant::Variant;

/// Which heat drives the thermal model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heat {
    /// The twin's: `Pack::heat_w` = I²R0 + Σ vk²/Rk (the RC resistors' dissipation) + I·T·dOCV/dT.
    #[default]
    Pack,
    /// Bernardi's (PyBaMM's `Thevenin`, Nieto et al. 2012 eq. 1): I·(V − OCV) + I·T·dOCV/dT; the RC
    /// pairs' term is I·vk, which also counts the energy charging their capacitors.
    Bernardi,
}

impl Heat {
    /// Heat of the whole pack at `current_a` and its present state (W).
    pub fn of(self, pack: &Pack, current_a: f64) -> f64 {
        match self {
            Heat::Pack => pack.heat_w(current_a),
            Heat::Bernardi => {
                current_a * (pack.terminal_voltage_v(current_a) - pack.emf_v()) + pack.reversible_heat_w(current_a)
            }
        }
    }
}

/// Settings of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EcmRun {
    /// Initial SOC of every cell (0..1).
    pub initial_soc: f64,
    /// Ambient temperature (°C).
    pub ambient_c: f64,
    /// Initial cell and jig temperature (°C).
    pub initial_temp_c: f64,
    /// Longest internal step (s).
    pub max_step_s: f64,
    /// Cell count when the set's `cells_in_series` is 0.
    pub variant: Variant,
    /// Heat that drives the thermal model.
    pub heat: Heat,
}

impl Default for EcmRun {
    /// ECM_Example's run settings: 50 % SOC, 25 °C, 1 s steps.
    fn default() -> Self {
        Self {
            initial_soc: 0.5,
            ambient_c: 25.0,
            initial_temp_c: 25.0,
            max_step_s: 1.0,
            variant: Variant::V12,
            heat: Heat::Pack,
        }
    }
}

/// One output row: the state at a profile row's time with its current.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub time_s: f64,
    /// + = charge (A).
    pub current_a: f64,
    /// Pack terminal voltage (V).
    pub voltage_v: f64,
    /// Mean cell SOC (0..1).
    pub soc: f64,
    /// Cell temperature (°C).
    pub temp_c: f64,
    /// Jig temperature (°C; the ambient without a jig).
    pub jig_temp_c: f64,
}

/// A run that cannot start or cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum EcmRunError {
    /// A setting out of range.
    #[error("{name} = {value} is invalid: must be {requirement}")]
    Setting { name: &'static str, value: f64, requirement: &'static str },
    /// The parameter set does not build a pack.
    #[error("parameter set: {0}")]
    Params(#[from] ParamError),
    /// The state became NaN or infinite.
    #[error("the model state is not finite at t = {time_s} s (profile row {row})")]
    NotFinite { time_s: f64, row: usize },
}

/// Runs `ecm` on `profile` (see the module doc); one [`Row`] per profile row.
pub fn simulate(ecm: &EcmParams, profile: &CurrentProfile, run: &EcmRun) -> Result<Vec<Row>, EcmRunError> {
    let setting = |name, value: f64, ok: bool, requirement| {
        if ok { Ok(()) } else { Err(EcmRunError::Setting { name, value, requirement }) }
    };
    setting("initial_soc", run.initial_soc, (0.0..=1.0).contains(&run.initial_soc), "within 0..=1")?;
    setting("ambient_c", run.ambient_c, run.ambient_c.is_finite(), "finite")?;
    setting("initial_temp_c", run.initial_temp_c, run.initial_temp_c.is_finite(), "finite")?;
    setting("max_step_s", run.max_step_s, run.max_step_s.is_finite() && run.max_step_s > 0.0, "finite and > 0")?;
    let params = PackParams::uniform(CellParams::default());
    // No spread: the stream's draws multiply zero spreads.
    let mut rng = SeedStreams::new(0).stream("pack");
    let mut pack = Pack::from_ecm(ecm, &params, run.variant, run.initial_soc, &mut rng)?;
    let mut thermal = ecm.thermal.as_ref().map(|th| {
        let params =
            NetworkParams { board_to_cells_w_per_k: 0.0, ..NetworkParams::for_pack(pack.cells().len(), Some(th)) };
        ThermalNetwork::new(&params, run.initial_temp_c)
    });
    let temps = |th: &Option<ThermalNetwork>| match th {
        Some(t) => (t.cells_c(), t.jig_c().unwrap_or(run.ambient_c)),
        None => (run.ambient_c, run.ambient_c),
    };
    let rows: Vec<(f64, f64)> = profile.rows().collect();
    let mut out = Vec::with_capacity(rows.len());
    let mut hint = 0;
    let (mut cell_c, mut jig_c) = temps(&thermal);
    pack.set_temperature_c(cell_c);
    // The current the pack's elements were last evaluated at: a
    // re-evaluation at the same current, state and temperature is skipped.
    let mut evaluated_at: Option<f64> = None;
    for (k, &(t_k, i_k)) in rows.iter().enumerate() {
        if k > 0 {
            let t_prev = rows[k - 1].0;
            let n = ((t_k - t_prev) / run.max_step_s).ceil().max(0.0);
            for j in 0..n as u64 {
                let a = t_prev + (t_k - t_prev) * j as f64 / n;
                let b = if j + 1 == n as u64 { t_k } else { t_prev + (t_k - t_prev) * (j + 1) as f64 / n };
                let i_mean = profile.mean_current_a(a, b, &mut hint);
                if evaluated_at.map(f64::to_bits) != Some(i_mean.to_bits()) {
                    pack.step(0.0, i_mean); // the elements at this substep's current
                }
                let heat0_w = run.heat.of(&pack, i_mean);
                // A ramp's I² exceeds Ī² by ΔI²/12; ΔI from the means of the
                // two halves (exact on a linear piece, 0 on a held one).
                let mid = 0.5 * (a + b);
                let di = 2.0 * (profile.mean_current_a(mid, b, &mut hint) - profile.mean_current_a(a, mid, &mut hint));
                let ripple_w = pack.r0_total_ohm() * di * di / 12.0;
                pack.step(b - a, i_mean);
                evaluated_at = None;
                if let Some(th) = thermal.as_mut() {
                    let heat1_w = run.heat.of(&pack, i_mean);
                    let cells_w = 0.5 * (heat0_w + heat1_w) + ripple_w;
                    th.step(b - a, &HeatInputs { cells_w, ambient_c: run.ambient_c, ..HeatInputs::default() });
                    (cell_c, jig_c) = temps(&thermal);
                    // The elements at the new temperature and the current they
                    // are read at next: the row's after the last substep.
                    let next_a = if j + 1 == n as u64 { i_k } else { i_mean };
                    pack.set_temperature_at(cell_c, next_a);
                    evaluated_at = Some(next_a);
                }
            }
        }
        if evaluated_at.map(f64::to_bits) != Some(i_k.to_bits()) {
            pack.step(0.0, i_k); // R0 at this row's current
            evaluated_at = Some(i_k);
        }
        let row = Row {
            time_s: t_k,
            current_a: i_k,
            voltage_v: pack.terminal_voltage_v(i_k),
            soc: pack.soc(),
            temp_c: cell_c,
            jig_temp_c: jig_c,
        };
        if !(pack.is_finite() && row.voltage_v.is_finite() && cell_c.is_finite() && jig_c.is_finite()) {
            return Err(EcmRunError::NotFinite { time_s: t_k, row: k + 1 });
        }
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Interpolation;

    /// One cell, linear OCV, constant elements: a voltage a person can check.
    const HAND: &str = r#"
        capacity_ah = 10.0
        cells_in_series = 1
        soc = [0.0, 1.0]
        ocv_v = [3.0, 4.0]
        r0_ohm = 0.010
        r1_ohm = 0.020
        c1_f = 1000.0
    "#;

    #[test]
    fn step_and_pulse_match_closed_forms() {
        let ecm = EcmParams::from_toml_str(HAND).unwrap();
        // rest 10 s, −10 A for 20 s (a step at t = 10: two rows), rest; rows every 5 s
        let text = "time_s,current_A\n0,0\n10,0\n10,-10\n15,-10\n20,-10\n25,-10\n30,-10\n30,0\n40,0\n";
        let profile = CurrentProfile::from_csv(text, Interpolation::Linear).unwrap();
        let run = EcmRun { max_step_s: 0.5, ..EcmRun::default() };
        let rows = simulate(&ecm, &profile, &run).unwrap();
        assert_eq!(rows.len(), 9);
        let tau: f64 = 0.020 * 1000.0;
        let v = |t: f64, i: f64| {
            // soc = 0.5 − 10·(t − 10)/36000 while discharging; v1 = −0.2·(1 − e^(−(t−10)/τ))
            let on = (t - 10.0).clamp(0.0, 20.0);
            let soc = 0.5 - 10.0 * on / 36_000.0;
            let v1_end = -0.2 * (1.0 - (-20.0 / tau).exp());
            let v1 = if t <= 30.0 { -0.2 * (1.0 - (-on / tau).exp()) } else { v1_end * (-(t - 30.0) / tau).exp() };
            3.0 + soc + v1 + 0.010 * i
        };
        for r in &rows {
            let expected = v(r.time_s, r.current_a);
            assert!((r.voltage_v - expected).abs() < 1e-12, "t = {}: {} vs {expected}", r.time_s, r.voltage_v);
            // no [thermal]: isothermal at the ambient
            assert_eq!((r.temp_c, r.jig_temp_c), (25.0, 25.0));
        }
        // the step: same state, two voltages 10 A · 10 mΩ apart
        assert!((rows[1].voltage_v - rows[2].voltage_v - 0.1).abs() < 1e-12);
        assert!((rows.last().unwrap().soc - (0.5 - 200.0 / 36_000.0)).abs() < 1e-12);
    }

    #[test]
    fn jig_heats_by_the_steady_state_of_its_conductances() {
        // 20 A through R0 = 10 mΩ: 4 W; cell → jig 1 W/K, jig → air 1 W/K:
        // steady state cell +8 K, jig +4 K (no RC pair, no entropic term).
        let text = "capacity_ah = 1e6\ncells_in_series = 1\nsoc = [0.0, 1.0]\nocv_v = [3.0, 3.0]\nr0_ohm = 0.010\n\
                    entropic_v_per_k = 0.0\n[thermal]\ncell_heat_capacity_j_per_k = 10.0\ncell_to_jig_w_per_k = 1.0\n\
                    jig_heat_capacity_j_per_k = 10.0\njig_to_ambient_w_per_k = 1.0\n";
        let ecm = EcmParams::from_toml_str(text).unwrap();
        let profile = CurrentProfile::from_rows(&[(0.0, -20.0), (2000.0, -20.0)], Interpolation::Hold).unwrap();
        let run = EcmRun { max_step_s: 5.0, ..EcmRun::default() };
        let last = *simulate(&ecm, &profile, &run).unwrap().last().unwrap();
        assert!((last.temp_c - 33.0).abs() < 1e-6, "{}", last.temp_c);
        assert!((last.jig_temp_c - 29.0).abs() < 1e-6, "{}", last.jig_temp_c);
    }

    #[test]
    fn bad_settings_are_named() {
        let ecm = EcmParams::from_toml_str(HAND).unwrap();
        let profile = CurrentProfile::from_rows(&[(0.0, 0.0)], Interpolation::Hold).unwrap();
        let e = simulate(&ecm, &profile, &EcmRun { initial_soc: 1.5, ..EcmRun::default() }).unwrap_err();
        assert!(e.to_string().contains("initial_soc"), "{e}");
        let e = simulate(&ecm, &profile, &EcmRun { max_step_s: 0.0, ..EcmRun::default() }).unwrap_err();
        assert!(e.to_string().contains("max_step_s"), "{e}");
    }
}
