//! The measurement chain: what the board's 24-bit ADC sees.
//!
//! ```text
//! current:      I ─► shunt R(T) + EMF(ΔT) ─► amplifier ×G(T) (+offset, drift, noise) ─► ADC (Vref(T), offset, INL) ─► code
//! voltage:      V ─► divider ÷k(T) ─────────────────────────────────────► ADC (Vref) ─► code
//! temperature:  Vref ─ R_pull ─┬─ NTC(T) ─ GND, ratiometric ────────────► ADC ────────► code
//! ```
//!
//! The nominal design ([`nominal`]) is what the firmware's default
//! calibration is derived from. Each built unit deviates from it: at
//! construction every part draws its deviations from a seeded stream of its
//! own, and every channel draws its noise from another.
//!
//! # Tolerances are limits
//!
//! Per-unit deviation parameters (`tolerance_rel`, `gain_error_rel`,
//! `input_offset_v`, `tcr_ppm_per_k`, `offset_drift_v_per_k`, …) are
//! written the way component datasheets state them: as limits (±). A unit's
//! deviation is drawn from a normal distribution with σ = limit / 3,
//! truncated at ±limit ([`draw_within`]). Noise parameters (`*_rms_*`) are
//! 1σ per sample.
//!
//! The current path does no `exp`/`ln` and no allocation; the NTC path
//! evaluates one `exp`.
//!
//! One file per part — `shunt`, `amplifier`, `adc`, `divider`, `ntc` (its
//! limits as named constants, its `XxxParams`, the built unit) — and here
//! the chain that joins them: the nominal design, the parameters of the
//! whole chain, the per-block conversion sums, the seeded streams.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};
use crate::rng::{ModelRng, SeedStreams};
use crate::variant::Variant;

mod adc;
mod amplifier;
mod divider;
mod ntc;
mod shunt;

pub use adc::{
    ADC_INL_REL, ADC_NOISE_RMS_LSB, ADC_OFFSET_DRIFT_V_PER_K, ADC_OFFSET_V, ADC_VREF_DRIFT_PPM_PER_K,
    ADC_VREF_TOLERANCE_REL, Adc, AdcParams,
};
pub use amplifier::{
    AMP_GAIN_DRIFT_PPM_PER_K, AMP_GAIN_ERROR_REL, AMP_INPUT_OFFSET_V, AMP_NOISE_RMS_V, AMP_OFFSET_DRIFT_V_PER_K,
    Amplifier, AmplifierParams,
};
pub use divider::{DIVIDER_TCR_PPM_PER_K, DIVIDER_TOLERANCE_REL, Divider, DividerParams};
pub use ntc::{NTC_BETA_TOLERANCE_REL, NTC_PULLUP_TOLERANCE_REL, NTC_TOLERANCE_REL, Ntc, NtcParams};
pub use shunt::{SHUNT_TCR_PPM_PER_K, SHUNT_THERMAL_EMF_V_PER_K, SHUNT_TOLERANCE_REL, Shunt, ShuntParams};

/// The nominal design of the measurement chain. The firmware's default
/// calibration is derived from exactly these values.
pub mod nominal {
    use crate::variant::Variant;

    /// Shunt resistance: 100 µΩ (±250 A full scale → ±25 mV).
    pub const SHUNT_R_OHM: f64 = 100e-6;
    /// Current amplifier gain (±25 mV → ±1.25 V at full scale).
    pub const AMP_GAIN: f64 = 50.0;
    /// ADC reference voltage (V).
    pub const ADC_VREF_V: f64 = 2.5;
    /// ADC resolution: 24-bit bipolar, two's complement
    /// (datasheet, product features: "24-bit precision ADC").
    pub const ADC_BITS: u32 = 24;
    /// Codes per Vref: 2^(ADC_BITS − 1) = 2^23.
    /// `code = round(v_in / ADC_VREF_V × ADC_FULL_SCALE_CODES)`.
    pub const ADC_FULL_SCALE_CODES: f64 = 8_388_608.0;
    /// Most negative ADC code, −2^23.
    pub const ADC_CODE_MIN: i32 = -8_388_608;
    /// Most positive ADC code, 2^23 − 1.
    pub const ADC_CODE_MAX: i32 = 8_388_607;
    /// Current measuring range ±250 A (datasheet, current measurement accuracy).
    pub const CURRENT_FS_A: f64 = 250.0;
    /// ADC codes per ampere: SHUNT_R_OHM × AMP_GAIN / ADC_VREF_V × 2^23
    /// = 16777.216.
    pub const CURRENT_CODES_PER_A: f64 = SHUNT_R_OHM * AMP_GAIN / ADC_VREF_V * ADC_FULL_SCALE_CODES;
    /// ADC input of the voltage channel at the top of the measuring range (V).
    pub const DIVIDER_OUTPUT_AT_RANGE_V: f64 = 2.0;
    /// NTC resistance at 25 °C (Ω).
    pub const NTC_R25_OHM: f64 = 10_000.0;
    /// NTC B constant (K).
    pub const NTC_BETA_K: f64 = 3435.0;
    /// Pull-up from Vref to the NTC (Ω); the NTC goes to ground and the ADC
    /// reads the midpoint ratiometrically: `code = round(R_ntc / (R_ntc +
    /// R_pull) × 2^23)`.
    pub const NTC_PULLUP_OHM: f64 = 10_000.0;
    /// 25 °C in kelvin, the NTC's reference temperature.
    pub const NTC_T25_K: f64 = 298.15;
    /// 0 °C in kelvin.
    pub const ZERO_C_IN_K: f64 = 273.15;

    /// Voltage divider ratio (input / ADC input): the measuring range maps
    /// to [`DIVIDER_OUTPUT_AT_RANGE_V`] at the ADC (15 V range → 7.5).
    pub const fn divider_ratio(variant: Variant) -> f64 {
        variant.voltage_range_v() / DIVIDER_OUTPUT_AT_RANGE_V
    }

    /// ADC codes per volt of pack voltage, nominal.
    pub const fn voltage_codes_per_v(variant: Variant) -> f64 {
        ADC_FULL_SCALE_CODES / ADC_VREF_V / divider_ratio(variant)
    }
}

/// Draws a per-unit deviation within ±`limit`: normal, σ = limit/3,
/// truncated at the limit. Consumes exactly one standard normal, even when
/// `limit` is 0, so that zeroing one tolerance leaves the other draws of
/// the stream unchanged.
pub fn draw_within<R: Rng + ?Sized>(rng: &mut R, limit: f64) -> f64 {
    let z: f64 = StandardNormal.sample(rng);
    let limit = limit.abs();
    (z * limit / 3.0).clamp(-limit, limit)
}

#[inline]
fn gaussian<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

/// `x.round()` (half away from zero) as an integer, for |x| < 2^63; NaN
/// gives 0. `f64::round` is a libm call on the baseline x86-64 target (no
/// SSE4.1 `roundsd`); this is one truncating conversion and two compares,
/// and gives the same integer.
#[inline]
fn round_half_away(x: f64) -> i64 {
    // Truncates toward zero (NaN → 0); the fraction is exact, since both
    // are within one binade of `x` or `x` is an integer already.
    let t = x as i64;
    let frac = x - t as f64;
    t + i64::from(frac >= 0.5) - i64::from(frac <= -0.5)
}

/// Reference temperature of resistances and offsets (°C).
pub const REF_TEMP_C: f64 = 25.0;

/// Stream names the chain draws from (under the scenario's [`SeedStreams`]).
pub mod streams {
    /// Shunt resistance, TCR, thermal EMF.
    pub const SHUNT: &str = "chain.shunt";
    /// Amplifier gain, offset, drift, gain drift.
    pub const AMPLIFIER: &str = "chain.amplifier";
    /// ADC reference, reference drift, offset, offset drift, INL.
    pub const ADC: &str = "chain.adc";
    /// Divider ratio and TCR.
    pub const DIVIDER: &str = "chain.divider";
    /// Battery (cell) NTC: R25, B, pull-up.
    pub const NTC: &str = "chain.ntc";
    /// Board NTC: R25, B, pull-up.
    pub const NTC_BOARD: &str = "chain.ntc.board";
    /// Per-sample noise of the current channel (amplifier, then ADC).
    pub const NOISE_CURRENT: &str = "chain.noise.current";
    /// Per-sample noise of the voltage channel.
    pub const NOISE_VOLTAGE: &str = "chain.noise.voltage";
    /// Per-sample noise of the temperature channel.
    pub const NOISE_TEMPERATURE: &str = "chain.noise.temperature";
    /// Per-sample noise of the board-temperature channel.
    pub const NOISE_BOARD_TEMPERATURE: &str = "chain.noise.board_temperature";
}

/// Parameters of the whole measurement chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainParams {
    /// Current shunt.
    pub shunt: ShuntParams,
    /// Current amplifier.
    pub amplifier: AmplifierParams,
    /// ADC (all channels).
    pub adc: AdcParams,
    /// Battery-voltage divider.
    pub divider: DividerParams,
    /// Temperature sensors (the battery's and the board's NTC are the same part).
    pub ntc: NtcParams,
    /// Deliberate defects of one board, outside its tolerances (none by
    /// default): what a stand-in board for `hil-rig compare` is given to find.
    pub injected: InjectedErrors,
}

/// Deliberate measurement defects of a board, beyond the drawn component
/// tolerances: an uncalibrated zero, a wrong voltage gain, a misplaced
/// temperature sensor. All zero by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InjectedErrors {
    /// Current offset in % of full scale (±250 A): the channel reads
    /// `I + current_offset_pct_fs/100 × 250 A`. The datasheet allows 0.01 % FS.
    pub current_offset_pct_fs: f64,
    /// Voltage gain error in %: the divider passes `V × (1 + pct/100)`.
    pub voltage_gain_error_pct: f64,
    /// Offset of the battery temperature sensor (K).
    pub temperature_offset_k: f64,
}

impl InjectedErrors {
    /// The current offset in amperes.
    pub fn current_offset_a(&self) -> f64 {
        self.current_offset_pct_fs / 100.0 * nominal::CURRENT_FS_A
    }
}

impl ChainParams {
    /// The nominal design with no deviations and no noise: every unit is
    /// exactly [`nominal`], and codes are the rounded nominal transfer.
    pub fn ideal() -> Self {
        Self {
            shunt: ShuntParams {
                tolerance_rel: 0.0,
                tcr_ppm_per_k: 0.0,
                thermal_emf_v_per_k: 0.0,
                ..ShuntParams::default()
            },
            amplifier: AmplifierParams {
                gain_error_rel: 0.0,
                input_offset_v: 0.0,
                offset_drift_v_per_k: 0.0,
                noise_rms_v: 0.0,
                gain_drift_ppm_per_k: 0.0,
                ..AmplifierParams::default()
            },
            adc: AdcParams {
                vref_tolerance_rel: 0.0,
                noise_rms_lsb: 0.0,
                vref_drift_ppm_per_k: 0.0,
                offset_v: 0.0,
                offset_drift_v_per_k: 0.0,
                inl_rel: 0.0,
                ..AdcParams::default()
            },
            divider: DividerParams { tolerance_rel: 0.0, tcr_ppm_per_k: 0.0, ..DividerParams::default() },
            ntc: NtcParams {
                tolerance_rel: 0.0,
                beta_tolerance_rel: 0.0,
                pullup_tolerance_rel: 0.0,
                ..NtcParams::default()
            },
            injected: InjectedErrors::default(),
        }
    }

    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        use error::{finite, non_negative, positive};
        let s = &self.shunt;
        positive("shunt.r_nominal_ohm", s.r_nominal_ohm)?;
        non_negative("shunt.tolerance_rel", s.tolerance_rel)?;
        non_negative("shunt.tcr_ppm_per_k", s.tcr_ppm_per_k)?;
        finite("shunt.ref_temp_c", s.ref_temp_c)?;
        non_negative("shunt.thermal_emf_v_per_k", s.thermal_emf_v_per_k)?;
        let a = &self.amplifier;
        positive("amplifier.gain", a.gain)?;
        non_negative("amplifier.gain_error_rel", a.gain_error_rel)?;
        non_negative("amplifier.input_offset_v", a.input_offset_v)?;
        non_negative("amplifier.offset_drift_v_per_k", a.offset_drift_v_per_k)?;
        non_negative("amplifier.noise_rms_v", a.noise_rms_v)?;
        finite("amplifier.ref_temp_c", a.ref_temp_c)?;
        non_negative("amplifier.gain_drift_ppm_per_k", a.gain_drift_ppm_per_k)?;
        let c = &self.adc;
        positive("adc.vref_v", c.vref_v)?;
        non_negative("adc.vref_tolerance_rel", c.vref_tolerance_rel)?;
        non_negative("adc.noise_rms_lsb", c.noise_rms_lsb)?;
        if !(8..=32).contains(&c.bits) {
            return Err(ParamError { name: "adc.bits", value: f64::from(c.bits), requirement: "in 8..=32" });
        }
        non_negative("adc.vref_drift_ppm_per_k", c.vref_drift_ppm_per_k)?;
        non_negative("adc.offset_v", c.offset_v)?;
        non_negative("adc.offset_drift_v_per_k", c.offset_drift_v_per_k)?;
        non_negative("adc.inl_rel", c.inl_rel)?;
        finite("adc.ref_temp_c", c.ref_temp_c)?;
        let d = &self.divider;
        non_negative("divider.tolerance_rel", d.tolerance_rel)?;
        non_negative("divider.tcr_ppm_per_k", d.tcr_ppm_per_k)?;
        finite("divider.ref_temp_c", d.ref_temp_c)?;
        let n = &self.ntc;
        positive("ntc.r25_ohm", n.r25_ohm)?;
        positive("ntc.beta_k", n.beta_k)?;
        positive("ntc.pullup_ohm", n.pullup_ohm)?;
        non_negative("ntc.tolerance_rel", n.tolerance_rel)?;
        non_negative("ntc.beta_tolerance_rel", n.beta_tolerance_rel)?;
        non_negative("ntc.pullup_tolerance_rel", n.pullup_tolerance_rel)?;
        let j = &self.injected;
        finite("injected.current_offset_pct_fs", j.current_offset_pct_fs)?;
        finite("injected.voltage_gain_error_pct", j.voltage_gain_error_pct)?;
        finite("injected.temperature_offset_k", j.temperature_offset_k)
    }
}

/// The physical conditions of one current-channel sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurrentSample {
    /// Current through the shunt (A, + = charge).
    pub current_a: f64,
    /// Temperature of the shunt's resistive element (°C).
    pub shunt_temp_c: f64,
    /// Temperature of the amplifier, ADC and reference: the board (°C).
    pub board_temp_c: f64,
    /// Temperature difference between the shunt's two terminals (K), the
    /// source of its thermoelectric EMF.
    pub shunt_delta_t_k: f64,
}

impl CurrentSample {
    /// Everything at one temperature, no gradient.
    pub fn isothermal(current_a: f64, temp_c: f64) -> Self {
        Self { current_a, shunt_temp_c: temp_c, board_temp_c: temp_c, shunt_delta_t_k: 0.0 }
    }
}

/// The temperatures of the chain's parts, held between steps of the
/// thermal model ([`MeasurementChain::set_temperatures`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChainTemperatures {
    /// Temperature of the shunt's resistive element (°C).
    pub shunt_temp_c: f64,
    /// Temperature of the amplifier, ADC, reference and divider: the board (°C).
    pub board_temp_c: f64,
    /// Temperature difference between the shunt's two terminals (K).
    pub shunt_delta_t_k: f64,
}

impl ChainTemperatures {
    /// Everything at one temperature, no gradient.
    pub fn isothermal(temp_c: f64) -> Self {
        Self { shunt_temp_c: temp_c, board_temp_c: temp_c, shunt_delta_t_k: 0.0 }
    }
}

/// The conversions of the current and voltage channels summed since the
/// last [`MeasurementChain::take_block`]: what the board's ADC interrupt
/// hands its firmware (`firmware_core::Board::sample_sums`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockSums {
    /// Conversions of each channel in the block.
    pub conversions: u32,
    /// Σ current-channel codes.
    pub current_code_sum: i64,
    /// Σ voltage-channel codes.
    pub voltage_code_sum: i64,
}

/// Below this noise per conversion (codes rms) rounding a code is not
/// dithered (the fraction of `code + noise` is no longer uniform: its
/// first Fourier coefficient is `exp(−2π²σ²)`, 3·10⁻⁹ at 1 code), so a
/// block's codes are rounded one by one.
pub const POOLED_NOISE_MIN_RMS_CODES: f64 = 1.0;

/// A conversion whose noise-free code lies within this many noise σ (and
/// one code) of an end of the code range is quantized on its own:
/// saturation is not linear, and pooling assumes no code clips.
pub const POOLED_SATURATION_GUARD_SIGMA: f64 = 8.0;

/// A channel's transfer up to the ADC's INL, at held temperatures: the ADC
/// input in units of the reference is `per_unit·input + offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Line {
    per_unit: f64,
    offset: f64,
}

impl Line {
    #[inline]
    fn at(&self, input: f64) -> f64 {
        self.per_unit * input + self.offset
    }
}

/// One channel's conversions since the last block was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ChannelBlock {
    /// Σ noise-free codes of the conversions whose noise is drawn for the
    /// block at once.
    pooled_code: f64,
    /// How many conversions are quantized one by one (the rest are pooled).
    singles: u32,
    /// Σ codes of the conversions quantized one by one.
    single_code_sum: i64,
    /// The pooled noise (codes rms) of the last pooled count: blocks are
    /// mostly of one length, so the square root is taken once.
    pooled_rms: (u32, f64),
}

impl ChannelBlock {
    /// Adds one conversion of noise-free code `code`: pooled if it is
    /// within `pool_limit_codes` of zero, else quantized now with its own
    /// noise draw.
    #[inline]
    fn add(&mut self, code: f64, pool_limit_codes: f64, noise_rms_codes: f64, adc: &Adc, rng: &mut ModelRng) {
        if code.abs() <= pool_limit_codes {
            self.pooled_code += code;
        } else {
            self.add_single(code, noise_rms_codes, adc, rng);
        }
    }

    /// Quantizes one conversion with its own noise draw (out of line: rare).
    #[cold]
    #[inline(never)]
    fn add_single(&mut self, code: f64, noise_rms_codes: f64, adc: &Adc, rng: &mut ModelRng) {
        self.singles = self.singles.saturating_add(1);
        self.single_code_sum += i64::from(adc.quantize(code + noise_rms_codes * gaussian(rng)));
    }

    /// The code sum of a block of `conversions`: the pooled conversions'
    /// noise in one draw.
    ///
    /// `n` conversions, each `round(c_i + σ·z_i)`, sum to a variable of
    /// mean `Σc_i` and variance `n·(σ² + 1/12)`: the noises add their
    /// variances, and rounding a dithered value adds 1/12 LSB² of
    /// independent error (Sheppard's correction; see
    /// [`POOLED_NOISE_MIN_RMS_CODES`]). One Gaussian of variance
    /// `n·σ² + (n − 1)/12`, rounded once (the last 1/12), has the same mean
    /// and variance; for `n = 1` it is the single conversion's draw.
    /// `noise_rms_codes` is the channel's σ, fixed for the chain's life.
    fn take(&mut self, conversions: u32, noise_rms_codes: f64, rng: &mut ModelRng) -> i64 {
        let mut sum = self.single_code_sum;
        let pooled = conversions.saturating_sub(self.singles);
        if pooled > 0 {
            if pooled != self.pooled_rms.0 {
                let n = f64::from(pooled);
                self.pooled_rms = (pooled, (n * noise_rms_codes * noise_rms_codes + (n - 1.0) / 12.0).sqrt());
            }
            sum += round_half_away(self.pooled_code + self.pooled_rms.1 * gaussian(rng));
        }
        *self = ChannelBlock { pooled_rms: self.pooled_rms, ..ChannelBlock::default() };
        sum
    }
}

/// Codes beyond ± this are quantized one by one: within the guard of the
/// code range, or always (−1) when the noise is too small to dither.
fn pool_limit_codes(adc: &Adc, noise_rms_codes: f64) -> f64 {
    if noise_rms_codes >= POOLED_NOISE_MIN_RMS_CODES {
        adc.code_max - POOLED_SATURATION_GUARD_SIGMA * noise_rms_codes - 1.0
    } else {
        -1.0
    }
}

/// One built board's measurement chain, with its noise streams.
#[derive(Clone, Debug)]
pub struct MeasurementChain {
    shunt: Shunt,
    amplifier: Amplifier,
    adc: Adc,
    divider: Divider,
    ntc: Ntc,
    ntc_board: Ntc,
    noise_current: ModelRng,
    noise_voltage: ModelRng,
    noise_temperature: ModelRng,
    noise_board_temperature: ModelRng,
    /// Combined noise of the current channel (codes rms).
    current_noise_codes: f64,
    /// Deliberate defects.
    injected: InjectedErrors,
    /// The current and voltage transfers at the held temperatures.
    current_line: Line,
    voltage_line: Line,
    /// Noise-free codes beyond ± these are quantized one by one.
    current_pool_limit_codes: f64,
    voltage_pool_limit_codes: f64,
    /// The last (current, voltage) converted and their noise-free codes: a
    /// constant input needs no new transfer (NaN: none yet).
    last_input: (f64, f64),
    last_codes: (f64, f64),
    /// The block of conversions since the last [`Self::take_block`].
    block_conversions: u32,
    current_block: ChannelBlock,
    voltage_block: ChannelBlock,
}

impl MeasurementChain {
    /// Builds the chain of one board for `variant`, each part drawing its
    /// deviations from its own stream (names in [`streams`]).
    pub fn new(params: &ChainParams, variant: Variant, streams: &SeedStreams) -> Self {
        let mut chain = Self {
            shunt: Shunt::new(&params.shunt, &mut streams.stream(streams::SHUNT)),
            amplifier: Amplifier::new(&params.amplifier, &mut streams.stream(streams::AMPLIFIER)),
            adc: Adc::new(&params.adc, &mut streams.stream(streams::ADC)),
            divider: Divider::new(&params.divider, variant, &mut streams.stream(streams::DIVIDER)),
            ntc: Ntc::new(&params.ntc, &mut streams.stream(streams::NTC)),
            ntc_board: Ntc::new(&params.ntc, &mut streams.stream(streams::NTC_BOARD)),
            noise_current: streams.stream(streams::NOISE_CURRENT),
            noise_voltage: streams.stream(streams::NOISE_VOLTAGE),
            noise_temperature: streams.stream(streams::NOISE_TEMPERATURE),
            noise_board_temperature: streams.stream(streams::NOISE_BOARD_TEMPERATURE),
            current_noise_codes: 0.0,
            injected: params.injected,
            current_line: Line::default(),
            voltage_line: Line::default(),
            current_pool_limit_codes: -1.0,
            voltage_pool_limit_codes: -1.0,
            last_input: (f64::NAN, f64::NAN),
            last_codes: (0.0, 0.0),
            block_conversions: 0,
            current_block: ChannelBlock::default(),
            voltage_block: ChannelBlock::default(),
        };
        chain.current_noise_codes = chain.current_noise_rms_codes();
        chain.current_pool_limit_codes = pool_limit_codes(&chain.adc, chain.current_noise_codes);
        chain.voltage_pool_limit_codes = pool_limit_codes(&chain.adc, chain.adc.noise_rms_lsb);
        chain.set_temperatures(&ChainTemperatures::isothermal(REF_TEMP_C));
        chain
    }

    /// Holds the parts at `t` for [`Self::add_conversion`]: the current and
    /// voltage transfers become lines (`per_unit·input + offset`, then the
    /// ADC's INL), so a conversion is a multiply-add and the cubic. Call it
    /// whenever the temperatures change (the thermal model's step); until
    /// the first call the chain sits at 25 °C.
    pub fn set_temperatures(&mut self, t: &ChainTemperatures) {
        let adc = self.adc.input_line_at(t.board_temp_c);
        // Current: x = (G·(I·R + I_inj·R + EMF + offset) + ADC offset) / Vref.
        let gain = self.amplifier.gain_at(t.board_temp_c);
        let r_ohm = self.shunt.resistance_ohm(t.shunt_temp_c);
        let fixed_v = self.injected.current_offset_a() * r_ohm
            + self.shunt.thermal_emf_v(t.shunt_delta_t_k)
            + self.amplifier.input_offset_v(t.board_temp_c);
        self.current_line =
            Line { per_unit: gain * r_ohm * adc.per_unit, offset: gain * fixed_v * adc.per_unit + adc.offset };
        // Voltage: x = (V·(1 + injected gain error) / ratio + ADC offset) / Vref.
        let per_v = (1.0 + self.injected.voltage_gain_error_pct / 100.0) / self.divider.ratio(t.board_temp_c);
        self.voltage_line = Line { per_unit: per_v * adc.per_unit, offset: adc.offset };
        self.last_input = (f64::NAN, f64::NAN);
    }

    /// Noise-free codes (unrounded, unsaturated) of the current and voltage
    /// channels at the held temperatures.
    #[inline]
    fn held_codes(&self, current_a: f64, pack_voltage_v: f64) -> (f64, f64) {
        (self.adc.code_of(self.current_line.at(current_a)), self.adc.code_of(self.voltage_line.at(pack_voltage_v)))
    }

    /// One conversion of the current and the voltage channel at the held
    /// temperatures ([`Self::set_temperatures`]), added to the block that
    /// [`Self::take_block`] returns.
    ///
    /// The firmware sees only a block's sums, so the noise of the
    /// conversions is drawn at the end of the block, in one Gaussian per
    /// channel with the variance of the per-conversion noise and rounding
    /// summed ([`ChannelBlock::take`]): same mean and variance of every
    /// sum as [`Self::current_code_at`] and [`Self::voltage_code`] per
    /// conversion, one draw per block instead of one per conversion.
    /// Conversions near the ends of the code range (saturation), and
    /// channels whose noise is below [`POOLED_NOISE_MIN_RMS_CODES`], are
    /// quantized one by one with their own draw, exactly as those methods do.
    #[inline]
    pub fn add_conversion(&mut self, current_a: f64, pack_voltage_v: f64) {
        if (current_a, pack_voltage_v) != self.last_input {
            self.last_input = (current_a, pack_voltage_v);
            self.last_codes = self.held_codes(current_a, pack_voltage_v);
        }
        let (current_code, voltage_code) = self.last_codes;
        self.block_conversions = self.block_conversions.saturating_add(1);
        self.current_block.add(
            current_code,
            self.current_pool_limit_codes,
            self.current_noise_codes,
            &self.adc,
            &mut self.noise_current,
        );
        self.voltage_block.add(
            voltage_code,
            self.voltage_pool_limit_codes,
            self.adc.noise_rms_lsb,
            &self.adc,
            &mut self.noise_voltage,
        );
    }

    /// `n` conversions of the same input, as `n` calls of
    /// [`Self::add_conversion`] (bit-identical: the same sums in the same order).
    #[inline]
    pub fn add_conversions(&mut self, current_a: f64, pack_voltage_v: f64, n: u32) {
        if (current_a, pack_voltage_v) != self.last_input {
            self.last_input = (current_a, pack_voltage_v);
            self.last_codes = self.held_codes(current_a, pack_voltage_v);
        }
        let (current_code, voltage_code) = self.last_codes;
        self.block_conversions = self.block_conversions.saturating_add(n);
        for _ in 0..n {
            self.current_block.add(
                current_code,
                self.current_pool_limit_codes,
                self.current_noise_codes,
                &self.adc,
                &mut self.noise_current,
            );
        }
        for _ in 0..n {
            self.voltage_block.add(
                voltage_code,
                self.voltage_pool_limit_codes,
                self.adc.noise_rms_lsb,
                &self.adc,
                &mut self.noise_voltage,
            );
        }
    }

    /// The sums of the conversions since the last call (draws the block's
    /// noise); the next block starts empty.
    pub fn take_block(&mut self) -> BlockSums {
        let n = core::mem::take(&mut self.block_conversions);
        BlockSums {
            conversions: n,
            current_code_sum: self.current_block.take(n, self.current_noise_codes, &mut self.noise_current),
            voltage_code_sum: self.voltage_block.take(n, self.adc.noise_rms_lsb, &mut self.noise_voltage),
        }
    }

    /// One sample of the current channel: `current_a` (> 0 charge) with the
    /// whole chain at `shunt_temp_c` and no gradient across the shunt. See
    /// [`Self::current_code_at`] for separate temperatures.
    #[inline]
    pub fn current_code(&mut self, current_a: f64, shunt_temp_c: f64) -> i32 {
        self.current_code_at(&CurrentSample::isothermal(current_a, shunt_temp_c))
    }

    /// One sample of the current channel under the conditions `s`:
    /// `v = I·R(T_shunt) + S·ΔT` → amplifier at the board temperature (gain
    /// drift, offset drift, noise) → ADC (reference drift, offset, INL,
    /// noise, rounding, saturation).
    ///
    /// The amplifier's and the ADC's noise are independent Gaussians, so
    /// they are drawn as one, of their combined σ
    /// ([`Self::current_noise_rms_codes`]): one draw per sample.
    #[inline]
    pub fn current_code_at(&mut self, s: &CurrentSample) -> i32 {
        let code = self.current_code_noiseless_at(s);
        self.adc.quantize(code + self.current_noise_codes * gaussian(&mut self.noise_current))
    }

    /// One sample of the voltage channel: `pack_voltage_v` through the
    /// divider at `board_temp_c` (the ADC at the same temperature).
    #[inline]
    pub fn voltage_code(&mut self, pack_voltage_v: f64, board_temp_c: f64) -> i32 {
        let v_in = pack_voltage_v * (1.0 + self.injected.voltage_gain_error_pct / 100.0);
        let v = self.divider.output_v(v_in, board_temp_c);
        self.adc.convert_at(v, board_temp_c, &mut self.noise_voltage)
    }

    /// One sample of the battery temperature channel with the cell NTC at
    /// `temp_c` (the ADC at the reference temperature; its drift is
    /// negligible on a ratiometric channel).
    #[inline]
    pub fn temperature_code(&mut self, temp_c: f64) -> i32 {
        let ratio = self.ntc.ratio(temp_c + self.injected.temperature_offset_k);
        self.adc.quantize(
            self.adc.transfer_ratio(ratio, self.adc.ref_temp_c)
                + self.adc.noise_rms_lsb * gaussian(&mut self.noise_temperature),
        )
    }

    /// One sample of the board temperature channel (its own NTC, same
    /// part, own noise stream).
    #[inline]
    pub fn board_temperature_code(&mut self, temp_c: f64) -> i32 {
        let ratio = self.ntc_board.ratio(temp_c);
        self.adc.quantize(
            self.adc.transfer_ratio(ratio, self.adc.ref_temp_c)
                + self.adc.noise_rms_lsb * gaussian(&mut self.noise_board_temperature),
        )
    }

    /// The current channel's noise-free transfer (code, unrounded,
    /// unsaturated), everything at `shunt_temp_c`: for tolerance studies.
    pub fn current_code_noiseless(&self, current_a: f64, shunt_temp_c: f64) -> f64 {
        self.current_code_noiseless_at(&CurrentSample::isothermal(current_a, shunt_temp_c))
    }

    /// The current channel's noise-free transfer under the conditions `s`.
    pub fn current_code_noiseless_at(&self, s: &CurrentSample) -> f64 {
        let current_a = s.current_a + self.injected.current_offset_a();
        let v_shunt = self.shunt.voltage_v(current_a, s.shunt_temp_c) + self.shunt.thermal_emf_v(s.shunt_delta_t_k);
        self.adc.transfer(self.amplifier.mean_output_v(v_shunt, s.board_temp_c), s.board_temp_c)
    }

    /// The current channel's noise per sample (codes rms): amplifier noise
    /// through the gain, and the ADC's own.
    pub fn current_noise_rms_codes(&self) -> f64 {
        let amp = self.amplifier.noise_rms_v * self.amplifier.gain * self.adc.codes_per_v;
        (amp * amp + self.adc.noise_rms_lsb * self.adc.noise_rms_lsb).sqrt()
    }

    /// The voltage channel's noise-free transfer (code, unrounded, unsaturated).
    pub fn voltage_code_noiseless(&self, pack_voltage_v: f64, board_temp_c: f64) -> f64 {
        self.adc.transfer(self.divider.output_v(pack_voltage_v, board_temp_c), board_temp_c)
    }

    /// Conduction loss of the shunt (W) at `current_a` and `shunt_temp_c`.
    pub fn shunt_power_w(&self, current_a: f64, shunt_temp_c: f64) -> f64 {
        self.shunt.power_w(current_a, shunt_temp_c)
    }

    /// The built shunt.
    pub fn shunt(&self) -> &Shunt {
        &self.shunt
    }

    /// The built amplifier.
    pub fn amplifier(&self) -> &Amplifier {
        &self.amplifier
    }

    /// The built ADC.
    pub fn adc(&self) -> &Adc {
        &self.adc
    }

    /// The built divider.
    pub fn divider(&self) -> &Divider {
        &self.divider
    }

    /// The built battery NTC.
    pub fn ntc(&self) -> &Ntc {
        &self.ntc
    }

    /// The built board NTC.
    pub fn board_ntc(&self) -> &Ntc {
        &self.ntc_board
    }
}

#[cfg(test)]
mod tests {
    use super::nominal::*;
    use super::*;

    const FS_CODE: f64 = 4_194_304.0; // 250 A nominal
    /// 0.04 % of full scale, in codes.
    const TOTAL_ERROR_CODES: f64 = 0.0004 * FS_CODE;

    fn chain(params: &ChainParams, variant: Variant, seed: u64) -> MeasurementChain {
        MeasurementChain::new(params, variant, &SeedStreams::new(seed))
    }

    fn mean_current_code(c: &mut MeasurementChain, i: f64, t: f64, n: usize) -> f64 {
        (0..n).map(|_| f64::from(c.current_code(i, t))).sum::<f64>() / n as f64
    }

    #[test]
    fn nominal_figures() {
        assert_eq!(SHUNT_R_OHM, 100e-6);
        assert_eq!(AMP_GAIN, 50.0);
        assert_eq!(ADC_VREF_V, 2.5);
        assert_eq!(ADC_BITS, 24);
        assert_eq!(ADC_FULL_SCALE_CODES, f64::from(1u32 << (ADC_BITS - 1)));
        assert_eq!(ADC_CODE_MIN, -(1 << 23));
        assert_eq!(ADC_CODE_MAX, (1 << 23) - 1);
        assert!((CURRENT_CODES_PER_A - 16_777.216).abs() < 1e-9);
        // ±250 A → ±25 mV at the shunt → ±1.25 V at the ADC
        assert!((CURRENT_FS_A * SHUNT_R_OHM - 25e-3).abs() < 1e-15);
        assert!((CURRENT_FS_A * SHUNT_R_OHM * AMP_GAIN - 1.25).abs() < 1e-12);
        assert_eq!(divider_ratio(Variant::V12), 7.5);
        assert_eq!(divider_ratio(Variant::V24), 15.0);
        assert_eq!(divider_ratio(Variant::V48), 30.0);
        // 1 mA resolution is ≈ 16.8 codes
        const { assert!(CURRENT_CODES_PER_A * 0.001 > 1.0) };
    }

    #[test]
    fn ideal_chain_is_the_nominal_transfer() {
        let mut c = chain(&ChainParams::ideal(), Variant::V12, 1);
        assert_eq!(c.current_code(0.0, 40.0), 0);
        assert_eq!(c.current_code(250.0, 25.0), 4_194_304);
        assert_eq!(c.current_code(-250.0, 25.0), -4_194_304);
        assert_eq!(c.current_code(1.0, 25.0), 16_777);
        assert_eq!(c.voltage_code(15.0, 25.0), 6_710_886);
        assert_eq!(c.temperature_code(25.0), 4_194_304);
    }

    #[test]
    fn injected_errors_shift_the_ideal_transfer_by_their_amounts() {
        let mut p = ChainParams::ideal();
        p.injected =
            InjectedErrors { current_offset_pct_fs: 0.05, voltage_gain_error_pct: 1.0, temperature_offset_k: 0.0 };
        let mut c = chain(&p, Variant::V12, 1);
        // 0.05 % of 250 A = 0.125 A → 0.125 × 16 777.216 codes
        assert_eq!(c.current_code(0.0, 25.0), (0.125 * CURRENT_CODES_PER_A).round() as i32);
        // 15 V read as 15.15 V
        let mut ideal = chain(&ChainParams::ideal(), Variant::V12, 1);
        assert_eq!(c.voltage_code(15.0, 25.0), ideal.voltage_code(15.15, 25.0));
        p.injected = InjectedErrors { temperature_offset_k: 3.0, ..InjectedErrors::default() };
        let mut hot = chain(&p, Variant::V12, 1);
        assert_eq!(hot.temperature_code(22.0), ideal.temperature_code(25.0));
        p.injected.voltage_gain_error_pct = f64::NAN;
        assert!(p.validate().is_err());
    }

    #[test]
    fn zero_current_reads_the_offset() {
        let t = 25.0;
        let mut c = chain(&ChainParams::default(), Variant::V24, 17);
        let expected = c.current_code_noiseless(0.0, t);
        let n = 20_000;
        let mean = mean_current_code(&mut c, 0.0, t, n);
        // per-sample noise ≈ 50 LSB rms (0.3 µV at the input) → σ_mean ≈ 0.36 LSB
        assert!((mean - expected).abs() < 3.0, "{mean} vs {expected}");
        // and the offset of this unit is inside the datasheet's 0.01 % FS
        assert!(expected.abs() < 0.0001 * FS_CODE, "offset {expected} codes");
    }

    #[test]
    fn offset_follows_drift() {
        let mut c = chain(&ChainParams::default(), Variant::V12, 3);
        let a = c.amplifier();
        let expected = (a.input_offset_v(50.0) - a.input_offset_v(-10.0)) * a.gain() * c.adc().codes_per_v();
        let hot = mean_current_code(&mut c, 0.0, 50.0, 20_000);
        let cold = mean_current_code(&mut c, 0.0, -10.0, 20_000);
        assert!((hot - cold - expected).abs() < 3.0);
    }

    #[test]
    fn full_scale_within_total_error() {
        let mut c = chain(&ChainParams::default(), Variant::V48, 2024);
        for (i, nominal) in [(250.0, FS_CODE), (-250.0, -FS_CODE)] {
            let mean = mean_current_code(&mut c, i, 25.0, 2_000);
            assert!((mean - nominal).abs() < TOTAL_ERROR_CODES, "{i} A: {mean} vs {nominal}");
            let predicted = c.current_code_noiseless(i, 25.0);
            assert!((mean - predicted).abs() < 10.0);
        }
    }

    #[test]
    fn default_units_meet_total_error_at_25c() {
        // Tolerance budget of the default parts: gain error limits 0.02 %
        // (shunt) + 0.01 % (amplifier) + 0.02 % (reference) at σ = limit/3
        // → σ ≈ 0.01 % of reading. Nearly every unit meets 0.04 % FS at
        // 25 °C without calibration.
        let units = 500;
        let ok = (0..units)
            .filter(|&seed| {
                let c = chain(&ChainParams::default(), Variant::V12, seed);
                [250.0, -250.0, 0.0].iter().all(|&i| {
                    let err = c.current_code_noiseless(i, 25.0) - i * CURRENT_CODES_PER_A;
                    err.abs() < TOTAL_ERROR_CODES
                })
            })
            .count();
        assert!(ok >= units as usize * 99 / 100, "{ok} of {units}");
    }

    #[test]
    fn overcurrent_saturates() {
        let mut c = chain(&ChainParams::default(), Variant::V12, 5);
        assert_eq!(c.current_code(1300.0, 25.0), ADC_CODE_MAX);
        assert_eq!(c.current_code(-1300.0, 25.0), ADC_CODE_MIN);
        assert_eq!(c.current_code(f64::INFINITY, 25.0), ADC_CODE_MAX);
        assert_eq!(c.voltage_code(100.0, 25.0), ADC_CODE_MAX);
    }

    #[test]
    fn voltage_at_range() {
        for v in Variant::ALL {
            let mut c = chain(&ChainParams::default(), v, 8);
            let nominal = ADC_FULL_SCALE_CODES * DIVIDER_OUTPUT_AT_RANGE_V / ADC_VREF_V;
            let code = f64::from(c.voltage_code(v.voltage_range_v(), 25.0));
            // datasheet total error 0.1 % FS
            assert!((code - nominal).abs() < 0.001 * nominal, "{v}: {code}");
            assert!((voltage_codes_per_v(v) * v.voltage_range_v() - nominal).abs() < 1e-6);
        }
    }

    #[test]
    fn ntc_transfer() {
        let mut c = chain(&ChainParams::default(), Variant::V12, 9);
        let code = f64::from(c.temperature_code(25.0));
        // at 25 °C R_ntc ≈ R_pull → half scale, within the 1 % R25 tolerance
        assert!((code - 4_194_304.0).abs() < 0.006 * 4_194_304.0, "{code}");
        // hotter → lower resistance → lower code
        assert!(c.temperature_code(60.0) < c.temperature_code(0.0));
        // closed form for the ideal NTC at 85 °C
        let ideal = Ntc::new(&ChainParams::ideal().ntc, &mut SeedStreams::new(0).stream("x"));
        let r85 = 10_000.0 * (3435.0_f64 * (1.0 / 358.15 - 1.0 / 298.15)).exp();
        assert!((ideal.resistance_ohm(85.0) - r85).abs() < 1e-9);
        assert!((ideal.ratio(85.0) - r85 / (r85 + 10_000.0)).abs() < 1e-15);
    }

    #[test]
    fn deterministic_per_seed() {
        let codes = |seed: u64| {
            let mut c = chain(&ChainParams::default(), Variant::V24, seed);
            (0..100)
                .map(|k| {
                    let i = f64::from(k) - 50.0;
                    (c.current_code(i, 30.0), c.voltage_code(26.0, 30.0), c.temperature_code(30.0))
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(codes(42), codes(42));
        assert_ne!(codes(42), codes(43));
    }

    #[test]
    fn channels_draw_from_separate_streams() {
        // Sampling the voltage channel does not change the current channel's
        // noise sequence.
        let mut a = chain(&ChainParams::default(), Variant::V12, 77);
        let mut b = chain(&ChainParams::default(), Variant::V12, 77);
        for _ in 0..10 {
            b.voltage_code(13.0, 25.0);
            b.temperature_code(25.0);
        }
        for _ in 0..100 {
            assert_eq!(a.current_code(10.0, 25.0), b.current_code(10.0, 25.0));
        }
    }

    #[test]
    fn noise_has_the_specified_rms() {
        let mut p = ChainParams::ideal();
        p.amplifier.noise_rms_v = AMP_NOISE_RMS_V;
        p.adc.noise_rms_lsb = ADC_NOISE_RMS_LSB;
        let mut c = chain(&p, Variant::V12, 1);
        let n = 50_000;
        let xs: Vec<f64> = (0..n).map(|_| f64::from(c.current_code(0.0, 25.0))).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let rms = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let lsb_per_v = ADC_FULL_SCALE_CODES / ADC_VREF_V;
        let expected =
            ((AMP_NOISE_RMS_V * AMP_GAIN * lsb_per_v).powi(2) + ADC_NOISE_RMS_LSB.powi(2) + 1.0 / 12.0).sqrt();
        assert!((rms / expected - 1.0).abs() < 0.02, "{rms} vs {expected}");
    }

    #[test]
    fn draw_within_respects_limit() {
        let mut r = SeedStreams::new(1).stream("t");
        let xs: Vec<f64> = (0..20_000).map(|_| draw_within(&mut r, 0.003)).collect();
        assert!(xs.iter().all(|x| x.abs() <= 0.003));
        let rms = (xs.iter().map(|x| x * x).sum::<f64>() / xs.len() as f64).sqrt();
        assert!((rms / 0.001 - 1.0).abs() < 0.03, "{rms}");
        assert_eq!(draw_within(&mut r, 0.0), 0.0);
    }

    #[test]
    fn snapshot_seeded_codes() {
        // If this changes, seeded scenario traces change: update deliberately.
        let mut c = chain(&ChainParams::default(), Variant::V48, 209);
        let got = [c.current_code(100.0, 25.0), c.voltage_code(52.0, 25.0), c.temperature_code(25.0)];
        assert_eq!(got, SNAPSHOT);
    }

    const SNAPSHOT: [i32; 3] = [1_678_007, 5_815_441, 4_193_199];

    #[test]
    fn defaults_validate() {
        assert!(ChainParams::default().validate().is_ok());
        assert!(ChainParams::ideal().validate().is_ok());
        let mut p = ChainParams::default();
        p.adc.bits = 40;
        assert_eq!(p.validate().unwrap_err().name, "adc.bits");
    }

    #[test]
    fn thermal_emf_and_gradients_reach_the_code() {
        let mut p = ChainParams::ideal();
        p.shunt.thermal_emf_v_per_k = 0.25e-6;
        let c = chain(&p, Variant::V12, 21);
        let s = CurrentSample { current_a: 0.0, shunt_temp_c: 25.0, board_temp_c: 25.0, shunt_delta_t_k: 4.0 };
        let emf = c.shunt().thermal_emf_v(4.0);
        assert!(emf.abs() <= 1e-6 && emf != 0.0);
        let expected = emf * AMP_GAIN * ADC_FULL_SCALE_CODES / ADC_VREF_V;
        assert!((c.current_code_noiseless_at(&s) - expected).abs() < 1e-6);
        // I²R of the shunt
        assert!((c.shunt_power_w(250.0, 25.0) - 6.25).abs() < 1e-12);
    }

    #[test]
    fn adc_inl_is_zero_at_zero_and_at_the_endpoints() {
        let mut p = ChainParams::ideal();
        p.adc.inl_rel = 6e-6;
        let c = chain(&p, Variant::V12, 22);
        let adc = c.adc();
        let fs = ADC_FULL_SCALE_CODES;
        assert!(adc.transfer(0.0, 25.0).abs() < 1e-9);
        assert!((adc.transfer(ADC_VREF_V, 25.0) - fs).abs() < 1e-6);
        // the peak at Vref/√3 is the drawn INL, within the limit (6 ppm of 2·2^23 codes)
        let x = 1.0 / 3f64.sqrt();
        let dev = adc.transfer(x * ADC_VREF_V, 25.0) - x * fs;
        assert!(dev.abs() <= 6e-6 * 2.0 * fs + 1e-9 && dev != 0.0, "{dev}");
    }

    #[test]
    fn reference_and_gain_drift_scale_the_reading() {
        let mut p = ChainParams::ideal();
        p.adc.vref_drift_ppm_per_k = 2.0;
        p.amplifier.gain_drift_ppm_per_k = 1.0;
        let c = chain(&p, Variant::V24, 23);
        let hot = c.current_code_noiseless_at(&CurrentSample::isothermal(100.0, 60.0));
        let ref_ = c.current_code_noiseless_at(&CurrentSample::isothermal(100.0, 25.0));
        let rel = hot / ref_ - 1.0;
        // within ±(2 + 1) ppm/K × 35 K
        assert!(rel.abs() <= 3e-6 * 35.0 + 1e-12 && rel != 0.0, "{rel}");
    }

    #[test]
    fn held_temperatures_give_the_full_transfer() {
        let p = ChainParams {
            injected: InjectedErrors {
                current_offset_pct_fs: 0.03,
                voltage_gain_error_pct: -0.2,
                temperature_offset_k: 0.0,
            },
            ..ChainParams::default()
        };
        let mut c = chain(&p, Variant::V24, 31);
        for (shunt_temp_c, board_temp_c, shunt_delta_t_k) in [(25.0, 25.0, 0.0), (48.0, 41.0, 3.5), (-12.0, -9.0, -1.0)]
        {
            c.set_temperatures(&ChainTemperatures { shunt_temp_c, board_temp_c, shunt_delta_t_k });
            for current_a in [-600.0, -250.0, -3.3, 0.0, 0.001, 77.7, 250.0, 600.0] {
                let voltage_v = 26.0 + 0.01 * current_a;
                let (held_i, held_v) = c.held_codes(current_a, voltage_v);
                let s = CurrentSample { current_a, shunt_temp_c, board_temp_c, shunt_delta_t_k };
                let full_i = c.current_code_noiseless_at(&s);
                assert!((held_i - full_i).abs() < 1e-6, "{current_a} A at {board_temp_c} °C: {held_i} vs {full_i}");
                let full_v = c.voltage_code_noiseless(voltage_v * (1.0 - 0.2 / 100.0), board_temp_c);
                assert!((held_v - full_v).abs() < 1e-6, "{voltage_v} V at {board_temp_c} °C: {held_v} vs {full_v}");
            }
        }
    }

    /// Sums of `blocks` blocks of one conversion per entry of `currents_a`
    /// and `voltages_v`: per conversion (as the board's ADC interrupt adds
    /// them) or pooled ([`MeasurementChain::add_conversion`]).
    fn block_sums(
        c: &mut MeasurementChain,
        t: &ChainTemperatures,
        currents_a: &[f64],
        voltages_v: &[f64],
        blocks: usize,
        pooled: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        c.set_temperatures(t);
        (0..blocks)
            .map(|_| {
                if pooled {
                    for (&i, &v) in currents_a.iter().zip(voltages_v) {
                        c.add_conversion(i, v);
                    }
                    let b = c.take_block();
                    assert_eq!(b.conversions as usize, currents_a.len());
                    (b.current_code_sum as f64, b.voltage_code_sum as f64)
                } else {
                    currents_a.iter().zip(voltages_v).fold((0.0, 0.0), |(si, sv), (&i, &v)| {
                        let s = CurrentSample {
                            current_a: i,
                            shunt_temp_c: t.shunt_temp_c,
                            board_temp_c: t.board_temp_c,
                            shunt_delta_t_k: t.shunt_delta_t_k,
                        };
                        (si + f64::from(c.current_code_at(&s)), sv + f64::from(c.voltage_code(v, t.board_temp_c)))
                    })
                }
            })
            .unzip()
    }

    fn mean_and_variance(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        (mean, xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0))
    }

    #[test]
    fn pooled_block_noise_leaves_the_sums_mean_and_variance_as_per_conversion() {
        // The firmware sees only the 10 ms sums of the codes. Per conversion,
        // a sum of n codes round(c_k + σ·z_k) has mean Σc_k and variance
        // n·(σ² + 1/12); pooled, the same, from one draw per block.
        let t = ChainTemperatures { shunt_temp_c: 31.0, board_temp_c: 29.0, shunt_delta_t_k: 1.5 };
        // A ramp inside the block: every conversion different.
        let currents_a: Vec<f64> = (0..10).map(|k| -40.0 + 3.7 * f64::from(k)).collect();
        let voltages_v: Vec<f64> = (0..10).map(|k| 13.1 - 0.002 * f64::from(k)).collect();
        let blocks = 20_000;
        let unit = |seed| chain(&ChainParams::default(), Variant::V12, seed);
        let c = unit(5);
        let n = currents_a.len() as f64;
        let expected_i: f64 = currents_a
            .iter()
            .map(|&i| {
                c.current_code_noiseless_at(&CurrentSample {
                    current_a: i,
                    shunt_temp_c: t.shunt_temp_c,
                    board_temp_c: t.board_temp_c,
                    shunt_delta_t_k: t.shunt_delta_t_k,
                })
            })
            .sum();
        let expected_v: f64 = voltages_v.iter().map(|&v| c.voltage_code_noiseless(v, t.board_temp_c)).sum();
        let sigma_i = c.current_noise_rms_codes();
        let sigma_v = c.adc().noise_rms_lsb();
        assert!(sigma_i > 40.0 && sigma_v >= POOLED_NOISE_MIN_RMS_CODES);
        let var_i = n * (sigma_i * sigma_i + 1.0 / 12.0);
        let var_v = n * (sigma_v * sigma_v + 1.0 / 12.0);
        // 5 standard errors of the mean and of the variance (≈ 1 % at 20 000 blocks).
        let var_tolerance = 5.0 * (2.0 / blocks as f64).sqrt();
        let mut found = Vec::new();
        for pooled in [false, true] {
            let (sums_i, sums_v) = block_sums(&mut unit(5), &t, &currents_a, &voltages_v, blocks, pooled);
            for (sums, mean, var, what) in
                [(&sums_i, expected_i, var_i, "current"), (&sums_v, expected_v, var_v, "voltage")]
            {
                let (m, v) = mean_and_variance(sums);
                let mean_tolerance = 5.0 * (var / blocks as f64).sqrt();
                assert!((m - mean).abs() < mean_tolerance, "{what}, pooled {pooled}: mean {m} vs {mean}");
                assert!((v / var - 1.0).abs() < var_tolerance, "{what}, pooled {pooled}: variance {v} vs {var}");
                found.push((m, v));
            }
        }
        // And the two ways agree with each other.
        for k in 0..2 {
            let ((m0, v0), (m1, v1)) = (found[k], found[k + 2]);
            assert!((m0 - m1).abs() < 7.0 * (v0 / blocks as f64).sqrt() && (v1 / v0 - 1.0).abs() < 1.5 * var_tolerance);
        }
    }

    #[test]
    fn blocks_quantize_each_conversion_without_noise_and_near_saturation() {
        // No noise to dither the rounding: every code is rounded on its own,
        // exactly as per conversion.
        let (mut pooled, mut single) =
            (chain(&ChainParams::ideal(), Variant::V12, 1), chain(&ChainParams::ideal(), Variant::V12, 1));
        pooled.set_temperatures(&ChainTemperatures::isothermal(25.0));
        for (i, v) in [(1.23, 13.001), (-0.7771, 12.9), (249.9994, 14.6)] {
            let mut expected = (0, 0);
            for _ in 0..10 {
                pooled.add_conversion(i, v);
                expected.0 += i64::from(single.current_code(i, 25.0));
                expected.1 += i64::from(single.voltage_code(v, 25.0));
            }
            let b = pooled.take_block();
            assert_eq!((b.current_code_sum, b.voltage_code_sum), expected, "{i} A, {v} V");
        }
        // Beyond the guard at the ends of the range every conversion draws
        // its own noise and saturates on its own: the per-conversion codes.
        let (mut pooled, mut single) =
            (chain(&ChainParams::default(), Variant::V12, 2), chain(&ChainParams::default(), Variant::V12, 2));
        pooled.set_temperatures(&ChainTemperatures::isothermal(25.0));
        for i in [520.0, -515.0, 1300.0, -1300.0, f64::NAN, f64::INFINITY] {
            let mut expected = 0;
            for _ in 0..10 {
                pooled.add_conversion(i, 13.0);
                expected += i64::from(single.current_code(i, 25.0));
            }
            assert_eq!(pooled.take_block().current_code_sum, expected, "{i} A");
        }
        assert_eq!(pooled.take_block(), BlockSums::default(), "an empty block");
    }

    #[test]
    fn rounding_is_half_away_from_zero_like_f64_round() {
        for x in
            [0.0, 0.49999999999999994, 0.5, -0.5, 1.5, -1.5, 2.5, -2.4, 8_388_606.5, -8_388_607.5, 1e15 + 0.5, 4.5e15]
        {
            assert_eq!(round_half_away(x), x.round() as i64, "{x}");
        }
        assert_eq!(round_half_away(f64::NAN), 0);
        let adc = chain(&ChainParams::default(), Variant::V12, 3).adc;
        assert_eq!(adc.quantize(1e12), ADC_CODE_MAX);
        assert_eq!(adc.quantize(-8_388_608.7), ADC_CODE_MIN);
        assert_eq!(adc.quantize(f64::NEG_INFINITY), ADC_CODE_MIN);
    }

    #[test]
    fn board_ntc_is_its_own_part() {
        let mut c = chain(&ChainParams::default(), Variant::V12, 24);
        assert_ne!(c.ntc(), c.board_ntc());
        let a = c.board_temperature_code(25.0);
        assert!((f64::from(a) - 4_194_304.0).abs() < 0.006 * 4_194_304.0);
        assert!(c.board_temperature_code(80.0) < a);
    }
}
