//! The temperature channel: an NTC to ground with a pull-up to the reference, read ratiometrically.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{draw_within, nominal};

/// NTC R25 tolerance limit, ±1 %.
pub const NTC_TOLERANCE_REL: f64 = 0.01;
/// NTC B-constant tolerance limit, ±1 %.
pub const NTC_BETA_TOLERANCE_REL: f64 = 0.01;
/// Pull-up tolerance limit, ±0.1 %.
pub const NTC_PULLUP_TOLERANCE_REL: f64 = 0.001;

/// Parameters of the temperature channel: NTC to ground, pull-up to Vref.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NtcParams {
    /// NTC resistance at 25 °C (Ω).
    pub r25_ohm: f64,
    /// NTC B constant (K).
    pub beta_k: f64,
    /// Pull-up resistance (Ω).
    pub pullup_ohm: f64,
    /// R25 tolerance limit (relative, ±).
    pub tolerance_rel: f64,
    /// B tolerance limit (relative, ±).
    pub beta_tolerance_rel: f64,
    /// Pull-up tolerance limit (relative, ±).
    pub pullup_tolerance_rel: f64,
}

impl Default for NtcParams {
    fn default() -> Self {
        Self {
            r25_ohm: nominal::NTC_R25_OHM,
            beta_k: nominal::NTC_BETA_K,
            pullup_ohm: nominal::NTC_PULLUP_OHM,
            tolerance_rel: NTC_TOLERANCE_REL,
            beta_tolerance_rel: NTC_BETA_TOLERANCE_REL,
            pullup_tolerance_rel: NTC_PULLUP_TOLERANCE_REL,
        }
    }
}

/// One built NTC with its pull-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ntc {
    r25_ohm: f64,
    beta_k: f64,
    pullup_ohm: f64,
}

impl Ntc {
    /// Builds a unit: draws R25, B, then the pull-up.
    pub fn new<R: Rng + ?Sized>(params: &NtcParams, rng: &mut R) -> Self {
        let r25 = params.r25_ohm * (1.0 + draw_within(rng, params.tolerance_rel));
        let beta = params.beta_k * (1.0 + draw_within(rng, params.beta_tolerance_rel));
        let pullup = params.pullup_ohm * (1.0 + draw_within(rng, params.pullup_tolerance_rel));
        Self { r25_ohm: r25, beta_k: beta, pullup_ohm: pullup }
    }

    /// NTC resistance at `temp_c` (Ω): `R25·exp(B·(1/T − 1/298.15 K))`.
    #[inline]
    pub fn resistance_ohm(&self, temp_c: f64) -> f64 {
        let t_k = temp_c + nominal::ZERO_C_IN_K;
        self.r25_ohm * (self.beta_k * (1.0 / t_k - 1.0 / nominal::NTC_T25_K)).exp()
    }

    /// Midpoint as a fraction of the reference: `R_ntc / (R_ntc + R_pull)`.
    #[inline]
    pub fn ratio(&self, temp_c: f64) -> f64 {
        let r = self.resistance_ohm(temp_c);
        r / (r + self.pullup_ohm)
    }
}
