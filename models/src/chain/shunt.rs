//! The current shunt: resistance with tolerance and TCR, thermoelectric EMF of its terminals.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{REF_TEMP_C, draw_within, nominal};

/// Shunt resistance tolerance limit, ±0.02 % (precision manganin-class shunt).
pub const SHUNT_TOLERANCE_REL: f64 = 0.0002;
/// Shunt temperature-coefficient limit, ±5 ppm/K: inside the datasheet's
/// "shunt temperature coefficient < 10 ppm" (product features). Why not
/// the full 10 ppm/K: calibrated at 25 °C, a board at −10 °C carries 35 K ×
/// TCR of gain error, 350 ppm at 10 ppm/K, which with the reference and
/// amplifier drifts pushes ≈ 0.1 % of boards over the 0.04 % FS total
/// error (21 of 20 000 in `smartpro-sim accuracy`, then isothermal); at
/// 5 ppm/K none do at steady temperatures (after a soak at full current the
/// board's own heat adds: `docs/models.md`, accuracy).
pub const SHUNT_TCR_PPM_PER_K: f64 = 5.0;
/// Thermoelectric EMF of the shunt's terminal pair against copper, limit
/// ±0.25 µV/K (manganin precision shunts specify < 0.25 µV/K vs Cu; the
/// sign depends on the assembly, so it is drawn per unit).
pub const SHUNT_THERMAL_EMF_V_PER_K: f64 = 0.25e-6;

/// Parameters of the current shunt.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShuntParams {
    /// Nominal resistance at `ref_temp_c` (Ω).
    pub r_nominal_ohm: f64,
    /// Resistance tolerance limit at `ref_temp_c` (relative, ±).
    pub tolerance_rel: f64,
    /// Temperature-coefficient limit (ppm/K, ±).
    pub tcr_ppm_per_k: f64,
    /// Temperature at which the resistance is `r_nominal_ohm` (°C).
    pub ref_temp_c: f64,
    /// Thermoelectric EMF limit of the terminal pair vs copper (V/K, ±):
    /// `EMF = S·(T_in − T_out)`.
    pub thermal_emf_v_per_k: f64,
}

impl Default for ShuntParams {
    fn default() -> Self {
        Self {
            r_nominal_ohm: nominal::SHUNT_R_OHM,
            tolerance_rel: SHUNT_TOLERANCE_REL,
            tcr_ppm_per_k: SHUNT_TCR_PPM_PER_K,
            ref_temp_c: REF_TEMP_C,
            thermal_emf_v_per_k: SHUNT_THERMAL_EMF_V_PER_K,
        }
    }
}

/// One built shunt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shunt {
    r_ref_ohm: f64,
    tcr_per_k: f64,
    ref_temp_c: f64,
    emf_v_per_k: f64,
}

impl Shunt {
    /// Builds a unit: draws its resistance, its TCR, then its thermal EMF.
    pub fn new<R: Rng + ?Sized>(params: &ShuntParams, rng: &mut R) -> Self {
        let dev = draw_within(rng, params.tolerance_rel);
        let tcr = draw_within(rng, params.tcr_ppm_per_k) * 1e-6;
        let emf = draw_within(rng, params.thermal_emf_v_per_k);
        Self {
            r_ref_ohm: params.r_nominal_ohm * (1.0 + dev),
            tcr_per_k: tcr,
            ref_temp_c: params.ref_temp_c,
            emf_v_per_k: emf,
        }
    }

    /// Thermoelectric EMF with its terminals `delta_t_k` apart (V).
    #[inline]
    pub fn thermal_emf_v(&self, delta_t_k: f64) -> f64 {
        self.emf_v_per_k * delta_t_k
    }

    /// Conduction loss with `current_a` at `temp_c` (W): the shunt node's
    /// heat in the thermal network.
    #[inline]
    pub fn power_w(&self, current_a: f64, temp_c: f64) -> f64 {
        current_a * current_a * self.resistance_ohm(temp_c)
    }

    /// Resistance at `temp_c` (Ω).
    #[inline]
    pub fn resistance_ohm(&self, temp_c: f64) -> f64 {
        self.r_ref_ohm * (1.0 + self.tcr_per_k * (temp_c - self.ref_temp_c))
    }

    /// Voltage across the shunt with `current_a` at `temp_c` (V; sign follows
    /// the current).
    #[inline]
    pub fn voltage_v(&self, current_a: f64, temp_c: f64) -> f64 {
        current_a * self.resistance_ohm(temp_c)
    }

    /// This unit's temperature coefficient (1/K).
    pub fn tcr_per_k(&self) -> f64 {
        self.tcr_per_k
    }

    /// This unit with its temperature coefficient set to `tcr_per_k` (1/K),
    /// its other draws kept: for a Monte Carlo that draws the coefficient
    /// from another distribution (`accuracy::Parts::Datasheet`).
    pub fn with_tcr_per_k(self, tcr_per_k: f64) -> Self {
        Self { tcr_per_k, ..self }
    }

    /// This unit's thermoelectric coefficient (V/K).
    pub fn thermal_emf_v_per_k(&self) -> f64 {
        self.emf_v_per_k
    }
}
