//! The 24-bit ADC: reference and its drift, offset and drift, INL, noise, quantization.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{Line, REF_TEMP_C, draw_within, gaussian, nominal, round_half_away};

/// Reference initial-accuracy limit, ±0.02 % (precision series reference).
pub const ADC_VREF_TOLERANCE_REL: f64 = 0.0002;
/// ADC noise at the data rate (LSB rms).
pub const ADC_NOISE_RMS_LSB: f64 = 2.0;
/// Reference temperature-coefficient limit, ±2 ppm/K (precision series
/// references of the ADR45xx/REF50xx class specify 2–3 ppm/K max).
pub const ADC_VREF_DRIFT_PPM_PER_K: f64 = 2.0;
/// ADC input offset limit after its self-calibration, ±2 µV (24-bit Σ-Δ
/// converters with chopping specify a few µV).
pub const ADC_OFFSET_V: f64 = 2e-6;
/// ADC input offset drift limit, ±0.02 µV/K (chopped Σ-Δ modulators: tens
/// of nV/K).
pub const ADC_OFFSET_DRIFT_V_PER_K: f64 = 0.02e-6;
/// Integral non-linearity limit (fraction of the ±Vref span, endpoint
/// fit), ±6 ppm (24-bit Σ-Δ ADCs: 2–4 ppm typical, 6–15 ppm max).
pub const ADC_INL_REL: f64 = 6e-6;

/// Parameters of the ADC.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdcParams {
    /// Nominal reference voltage (V).
    pub vref_v: f64,
    /// Reference tolerance limit (relative, ±).
    pub vref_tolerance_rel: f64,
    /// Conversion noise (LSB rms).
    pub noise_rms_lsb: f64,
    /// Resolution (bits, bipolar two's complement; 8..=32).
    pub bits: u32,
    /// Reference drift limit (ppm/K, ±).
    pub vref_drift_ppm_per_k: f64,
    /// Input offset limit (V, ±).
    pub offset_v: f64,
    /// Input offset drift limit (V/K, ±).
    pub offset_drift_v_per_k: f64,
    /// INL limit as a fraction of the 2·Vref span (±); shape: the cubic
    /// `x³ − x` (x = v/Vref), zero at 0 and ±Vref, scaled so its peak is
    /// the drawn value.
    pub inl_rel: f64,
    /// Temperature at which reference and offset are their drawn values (°C).
    pub ref_temp_c: f64,
}

impl Default for AdcParams {
    fn default() -> Self {
        Self {
            vref_v: nominal::ADC_VREF_V,
            vref_tolerance_rel: ADC_VREF_TOLERANCE_REL,
            noise_rms_lsb: ADC_NOISE_RMS_LSB,
            bits: nominal::ADC_BITS,
            vref_drift_ppm_per_k: ADC_VREF_DRIFT_PPM_PER_K,
            offset_v: ADC_OFFSET_V,
            offset_drift_v_per_k: ADC_OFFSET_DRIFT_V_PER_K,
            inl_rel: ADC_INL_REL,
            ref_temp_c: REF_TEMP_C,
        }
    }
}

/// One built ADC (shared by all channels through its multiplexer).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adc {
    vref_v: f64,
    full_scale: f64,
    pub(super) codes_per_v: f64,
    pub(super) noise_rms_lsb: f64,
    code_min: f64,
    pub(super) code_max: f64,
    vref_drift_per_k: f64,
    offset_v: f64,
    offset_drift_v_per_k: f64,
    /// INL shape factor: peak in codes / full scale × 3√3/2, so that the
    /// code is `(x + inl_k·(x³ − x))·full_scale`.
    inl_k: f64,
    pub(super) ref_temp_c: f64,
}

/// `x³ − x` peaks at x = 1/√3 with |value| 2/(3√3); this scales it to 1.
const INL_SHAPE_SCALE: f64 = 2.598_076_211_353_316; // 3√3/2

impl Adc {
    /// Builds a unit: draws its reference voltage, then reference drift,
    /// offset, offset drift and INL.
    pub fn new<R: Rng + ?Sized>(params: &AdcParams, rng: &mut R) -> Self {
        let vref_v = params.vref_v * (1.0 + draw_within(rng, params.vref_tolerance_rel));
        let bits = params.bits.clamp(2, 32);
        let full_scale = f64::from(1u32 << (bits - 2)) * 2.0; // 2^(bits-1), exact
        let vref_drift_per_k = draw_within(rng, params.vref_drift_ppm_per_k) * 1e-6;
        let offset_v = draw_within(rng, params.offset_v);
        let offset_drift_v_per_k = draw_within(rng, params.offset_drift_v_per_k);
        let inl_codes = draw_within(rng, params.inl_rel) * 2.0 * full_scale;
        Self {
            vref_v,
            full_scale,
            codes_per_v: full_scale / vref_v,
            noise_rms_lsb: params.noise_rms_lsb,
            code_min: -full_scale,
            code_max: full_scale - 1.0,
            vref_drift_per_k,
            offset_v,
            offset_drift_v_per_k,
            inl_k: inl_codes / full_scale * INL_SHAPE_SCALE,
            ref_temp_c: params.ref_temp_c,
        }
    }

    /// Noise-free code (unrounded, unsaturated) for `v_in` at `temp_c`:
    /// reference drift, offset and its drift, INL.
    #[inline]
    pub fn transfer(&self, v_in: f64, temp_c: f64) -> f64 {
        let dt = temp_c - self.ref_temp_c;
        let v = v_in + self.offset_v + self.offset_drift_v_per_k * dt;
        self.code_of(v / (self.vref_v * (1.0 + self.vref_drift_per_k * dt)))
    }

    /// Noise-free code (unrounded, unsaturated) of an input of `x` times
    /// the reference: `(x + INL·(3√3/2)·(x³ − x))·2^(bits−1)`.
    #[inline]
    pub fn code_of(&self, x: f64) -> f64 {
        // Beyond ±2·Vref the input saturates anyway; the clamp keeps the
        // cubic INL term finite for infinite inputs.
        let x = x.clamp(-2.0, 2.0);
        (x + self.inl_k * (x * x * x - x)) * self.full_scale
    }

    /// The input side of [`Self::transfer`] at `temp_c` as a line:
    /// `x = v_in·per_v + offset` is the input in units of the reference
    /// (offset, its drift and the reference's drift applied), and
    /// [`Self::code_of`]`(x)` the code.
    #[inline]
    pub(super) fn input_line_at(&self, temp_c: f64) -> Line {
        let dt = temp_c - self.ref_temp_c;
        let per_v = 1.0 / (self.vref_v * (1.0 + self.vref_drift_per_k * dt));
        Line { per_unit: per_v, offset: (self.offset_v + self.offset_drift_v_per_k * dt) * per_v }
    }

    /// Noise-free code of a ratiometric input (the reference cancels; the
    /// offset and INL do not).
    #[inline]
    pub fn transfer_ratio(&self, ratio: f64, temp_c: f64) -> f64 {
        let dt = temp_c - self.ref_temp_c;
        self.code_of(ratio + (self.offset_v + self.offset_drift_v_per_k * dt) / self.vref_v)
    }

    /// Converts `v_in` at `temp_c` with one noise draw from `rng`.
    #[inline]
    pub fn convert_at<R: Rng + ?Sized>(&self, v_in: f64, temp_c: f64, rng: &mut R) -> i32 {
        self.quantize(self.transfer(v_in, temp_c) + self.noise_rms_lsb * gaussian(rng))
    }

    /// The noise per conversion (LSB rms).
    pub fn noise_rms_lsb(&self) -> f64 {
        self.noise_rms_lsb
    }

    /// This unit's reference voltage (V).
    pub fn vref_v(&self) -> f64 {
        self.vref_v
    }

    /// Codes per volt of input, this unit.
    pub fn codes_per_v(&self) -> f64 {
        self.codes_per_v
    }

    /// Rounds a code (in LSB, may be fractional) and saturates it to the
    /// code range.
    #[inline]
    pub fn quantize(&self, code: f64) -> i32 {
        // The code range has integer ends, so clamping before rounding is
        // the same as after; `as` maps NaN to 0.
        round_half_away(code.clamp(self.code_min, self.code_max)) as i32
    }

    /// Converts input voltage `v_in` at the reference temperature, with
    /// one noise draw from `rng`.
    #[inline]
    pub fn convert<R: Rng + ?Sized>(&self, v_in: f64, rng: &mut R) -> i32 {
        self.convert_at(v_in, self.ref_temp_c, rng)
    }
}
