//! The battery-voltage divider: ratio tolerance and tracking TCR.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{REF_TEMP_C, draw_within, nominal};
use crate::variant::Variant;

/// Divider ratio tolerance limit, ±0.05 % (matched thin-film network).
pub const DIVIDER_TOLERANCE_REL: f64 = 0.0005;
/// Divider ratio tracking temperature-coefficient limit, ±5 ppm/K.
pub const DIVIDER_TCR_PPM_PER_K: f64 = 5.0;

/// Parameters of the battery-voltage divider. The nominal ratio comes from
/// the variant ([`nominal::divider_ratio`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DividerParams {
    /// Ratio tolerance limit (relative, ±).
    pub tolerance_rel: f64,
    /// Ratio temperature-coefficient limit (ppm/K, ±).
    pub tcr_ppm_per_k: f64,
    /// Temperature at which the ratio is its drawn value (°C).
    pub ref_temp_c: f64,
}

impl Default for DividerParams {
    fn default() -> Self {
        Self { tolerance_rel: DIVIDER_TOLERANCE_REL, tcr_ppm_per_k: DIVIDER_TCR_PPM_PER_K, ref_temp_c: REF_TEMP_C }
    }
}

/// One built divider.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Divider {
    ratio: f64,
    tcr_per_k: f64,
    ref_temp_c: f64,
}

impl Divider {
    /// Builds a unit for `variant`: draws its ratio, then its TCR.
    pub fn new<R: Rng + ?Sized>(params: &DividerParams, variant: Variant, rng: &mut R) -> Self {
        let dev = draw_within(rng, params.tolerance_rel);
        let tcr = draw_within(rng, params.tcr_ppm_per_k) * 1e-6;
        Self { ratio: nominal::divider_ratio(variant) * (1.0 + dev), tcr_per_k: tcr, ref_temp_c: params.ref_temp_c }
    }

    /// Ratio input/output at `temp_c`.
    #[inline]
    pub fn ratio(&self, temp_c: f64) -> f64 {
        self.ratio * (1.0 + self.tcr_per_k * (temp_c - self.ref_temp_c))
    }

    /// Output voltage for input `v_in` at `temp_c` (V).
    #[inline]
    pub fn output_v(&self, v_in: f64, temp_c: f64) -> f64 {
        v_in / self.ratio(temp_c)
    }
}
