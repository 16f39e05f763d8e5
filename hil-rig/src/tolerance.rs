//! Board-vs-twin tolerances of `hil-rig compare` and `test`: the datasheet's figures by default,
//! per-quantity overrides from a TOML file (`--tolerances FILE`).
//!
//! Every default is a named constant citing its source; the derivations
//! (SOC, totals, temperature) are in `docs/hil-rig.md`, "Tolerances".

use std::path::Path;

use firmware_core::soc::usable_permille;
use models::chain::{NTC_BETA_TOLERANCE_REL, NTC_PULLUP_TOLERANCE_REL, NTC_TOLERANCE_REL, nominal};
use models::variant::{
    ACCURACY_TEMP_RANGE_C, CURRENT_OFFSET_ERROR_PCT_FS, CURRENT_RANGE_A, CURRENT_RESOLUTION_A,
    CURRENT_TOTAL_ERROR_PCT_FS, VOLTAGE_TOTAL_ERROR_PCT_FS, Variant,
};
use serde::Deserialize;

/// Resolution of the battery voltage register (`battery_voltage_mv`): 1 mV.
pub const VOLTAGE_RESOLUTION_V: f64 = 0.001;
/// Resolution of the SOC registers (`soc_centipct` and the methods): 0.01 %.
pub const SOC_RESOLUTION_PCT: f64 = 0.01;
/// Resolution of the temperature register (`temperature_dc`): 0.1 K.
pub const TEMPERATURE_RESOLUTION_K: f64 = 0.1;
/// Resolution of the charge totals (`charged_total_dah`, `discharged_total_dah`): 0.1 Ah.
pub const TOTAL_AH_RESOLUTION: f64 = 0.1;
/// Resolution of the energy totals (`charged_total_wh`, `discharged_total_wh`): 1 Wh.
pub const TOTAL_WH_RESOLUTION: f64 = 1.0;
/// The internal-resistance estimate may differ from the twin's R0 by this
/// much (%). Not a datasheet figure (the datasheet lists internal resistance
/// as a diagnostic, without an accuracy): the bound the scenario library
/// holds the firmware's ΔV/ΔI estimate to against the model's R0
/// (`scenarios/24v-internal-resistance.toml`).
pub const INTERNAL_RESISTANCE_PCT: f64 = 10.0;
/// Time after a current step (and after the start) during which current
/// and voltage are not judged: the board and the twin see the step up to
/// one second of board time apart (the `uptime_s` resolution), and a
/// sample may fall inside the firmware's 10 ms averaging block.
pub const STEP_GRACE_S: f64 = 2.0;
/// A change of current between two samples larger than this is a step (A):
/// at the twin's R0 of a few mΩ it moves the voltage by more than the
/// voltage register's resolution.
pub const STEP_A: f64 = 0.5;
/// A protection may trip this much later or earlier on the board than on
/// the twin (s), on top of one sample interval: the protection delays are
/// counted from the firmware's 10 ms polls, the twin's time is the board's
/// to one second (the `uptime_s` resolution).
pub const PROTECTION_GRACE_S: f64 = 2.0;

/// Current full scale (A): the measuring range ±250 A (datasheet, current
/// measurement accuracy).
pub const CURRENT_FS_A: f64 = CURRENT_RANGE_A;

/// Why a tolerance file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ToleranceError {
    #[error("cannot read tolerance file {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// One quantity's entry in a tolerance file: an absolute value (in the
/// quantity's unit) or a percentage of its full scale, and a grace time.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    abs: Option<f64>,
    pct_fs: Option<f64>,
    grace_s: Option<f64>,
}

/// `[current]`: besides the total error, the offset at rest.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CurrentEntry {
    abs: Option<f64>,
    pct_fs: Option<f64>,
    offset_abs: Option<f64>,
    offset_pct_fs: Option<f64>,
    grace_s: Option<f64>,
}

/// `[soc]`: a floor and the current error that integrates into the SOC.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SocEntry {
    abs: Option<f64>,
    current_abs: Option<f64>,
    current_pct_fs: Option<f64>,
}

/// `[internal_resistance]`: relative (% of the twin's R0) or absolute (Ω).
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResistanceEntry {
    abs: Option<f64>,
    pct: Option<f64>,
}

/// `[totals]`: the floors of the charge and energy totals.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TotalsEntry {
    abs_ah: Option<f64>,
    abs_wh: Option<f64>,
}

/// `[protection]`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProtectionEntry {
    grace_s: Option<f64>,
}

/// The whole file.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    current: CurrentEntry,
    #[serde(default)]
    voltage: Entry,
    #[serde(default)]
    temperature: Entry,
    #[serde(default)]
    soc: SocEntry,
    #[serde(default)]
    internal_resistance: ResistanceEntry,
    #[serde(default)]
    totals: TotalsEntry,
    #[serde(default)]
    protection: ProtectionEntry,
}

/// The tolerances in force, in physical units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Current, total error (A).
    pub current_a: f64,
    /// Current at rest: the offset (A).
    pub current_offset_a: f64,
    /// Current: not judged this long after a step (s).
    pub current_grace_s: f64,
    /// Battery voltage (V).
    pub voltage_v: f64,
    /// Voltage: not judged this long after a step (s).
    pub voltage_grace_s: f64,
    /// Battery temperature (K).
    pub temperature_k: f64,
    /// Temperature: not judged this long after the start (s).
    pub temperature_grace_s: f64,
    /// SOC floor (points).
    pub soc_pct: f64,
    /// The current error that integrates into SOC and the charge totals (A).
    pub soc_current_a: f64,
    /// Internal resistance, relative to the twin's R0 (%), or absolute (Ω) if given.
    pub resistance_pct: f64,
    pub resistance_ohm: Option<f64>,
    /// Floors of the totals.
    pub total_ah: f64,
    pub total_wh: f64,
    /// Protection trips: board vs twin (s, on top of one sample interval).
    pub protection_grace_s: f64,
}

impl Tolerances {
    /// The datasheet's figures for `variant` (see the constants of this module).
    pub fn datasheet(variant: Variant) -> Self {
        let pct = |p: f64, fs: f64| p / 100.0 * fs;
        Self {
            current_a: pct(CURRENT_TOTAL_ERROR_PCT_FS, CURRENT_FS_A) + CURRENT_RESOLUTION_A,
            current_offset_a: pct(CURRENT_OFFSET_ERROR_PCT_FS, CURRENT_FS_A) + CURRENT_RESOLUTION_A,
            current_grace_s: STEP_GRACE_S,
            voltage_v: pct(VOLTAGE_TOTAL_ERROR_PCT_FS, variant.voltage_range_v()) + VOLTAGE_RESOLUTION_V,
            voltage_grace_s: STEP_GRACE_S,
            temperature_k: ntc_error_limit_k() + TEMPERATURE_RESOLUTION_K / 2.0,
            temperature_grace_s: 0.0,
            soc_pct: 2.0 * SOC_RESOLUTION_PCT,
            soc_current_a: pct(CURRENT_TOTAL_ERROR_PCT_FS, CURRENT_FS_A),
            resistance_pct: INTERNAL_RESISTANCE_PCT,
            resistance_ohm: None,
            total_ah: 2.0 * TOTAL_AH_RESOLUTION,
            total_wh: 2.0 * TOTAL_WH_RESOLUTION,
            protection_grace_s: PROTECTION_GRACE_S,
        }
    }

    /// The datasheet's figures with the overrides of the TOML file at `path`.
    pub fn load(path: &Path, variant: Variant) -> Result<Self, ToleranceError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ToleranceError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, variant)
            .map_err(|message| ToleranceError::Invalid { path: path.display().to_string(), message })
    }

    /// Parses tolerance-file text (errors name the table and key, or the TOML line).
    pub fn parse(text: &str, variant: Variant) -> Result<Self, String> {
        let file: File = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| {
                let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
                format!("line {line}: ")
            });
            format!("{}{}", at.unwrap_or_default(), e.message())
        })?;
        let mut t = Self::datasheet(variant);
        let c = &file.current;
        if let Some(v) = either("current", "abs", c.abs, "pct_fs", c.pct_fs, CURRENT_FS_A)? {
            t.current_a = v;
        }
        if let Some(v) = either("current", "offset_abs", c.offset_abs, "offset_pct_fs", c.offset_pct_fs, CURRENT_FS_A)?
        {
            t.current_offset_a = v;
        }
        set(&mut t.current_grace_s, "current.grace_s", c.grace_s)?;
        let v = &file.voltage;
        if let Some(x) = either("voltage", "abs", v.abs, "pct_fs", v.pct_fs, variant.voltage_range_v())? {
            t.voltage_v = x;
        }
        set(&mut t.voltage_grace_s, "voltage.grace_s", v.grace_s)?;
        let temp = &file.temperature;
        if temp.pct_fs.is_some() {
            return Err("temperature.pct_fs: a temperature has no full scale; give abs (K)".into());
        }
        set(&mut t.temperature_k, "temperature.abs", temp.abs)?;
        set(&mut t.temperature_grace_s, "temperature.grace_s", temp.grace_s)?;
        let s = &file.soc;
        set(&mut t.soc_pct, "soc.abs", s.abs)?;
        if let Some(x) = either("soc", "current_abs", s.current_abs, "current_pct_fs", s.current_pct_fs, CURRENT_FS_A)?
        {
            t.soc_current_a = x;
        }
        let r = &file.internal_resistance;
        if r.abs.is_some() && r.pct.is_some() {
            return Err("internal_resistance: give abs or pct, not both".into());
        }
        set(&mut t.resistance_pct, "internal_resistance.pct", r.pct)?;
        if let Some(x) = r.abs {
            check("internal_resistance.abs", x)?;
            t.resistance_ohm = Some(x);
        }
        set(&mut t.total_ah, "totals.abs_ah", file.totals.abs_ah)?;
        set(&mut t.total_wh, "totals.abs_wh", file.totals.abs_wh)?;
        set(&mut t.protection_grace_s, "protection.grace_s", file.protection.grace_s)?;
        Ok(t)
    }

    /// The tolerance of the internal resistance at the twin's `r0_ohm`.
    pub fn resistance_at(&self, r0_ohm: f64) -> f64 {
        self.resistance_ohm.unwrap_or(self.resistance_pct / 100.0 * r0_ohm)
    }
}

/// A finite, non-negative value.
fn check(name: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v >= 0.0 { Ok(v) } else { Err(format!("{name} = {v} must be a finite number ≥ 0")) }
}

fn set(slot: &mut f64, name: &str, v: Option<f64>) -> Result<(), String> {
    if let Some(v) = v {
        *slot = check(name, v)?;
    }
    Ok(())
}

/// `abs` or `pct_fs` of `fs` (not both), in the quantity's unit.
fn either(
    table: &str,
    abs_name: &str,
    abs: Option<f64>,
    pct_name: &str,
    pct: Option<f64>,
    fs: f64,
) -> Result<Option<f64>, String> {
    match (abs, pct) {
        (Some(_), Some(_)) => Err(format!("{table}: give {abs_name} or {pct_name}, not both")),
        (Some(a), None) => check(&format!("{table}.{abs_name}"), a).map(Some),
        (None, Some(p)) => check(&format!("{table}.{pct_name}"), p).map(|p| Some(p / 100.0 * fs)),
        (None, None) => Ok(None),
    }
}

/// The largest error of the board's temperature channel over the
/// datasheet's accuracy range (−10..+50 °C) from its NTC design tolerances
/// (`models::chain`: R25 ±1 %, B ±1 %, pull-up ±0.1 %), summed as limits:
/// ≈ 0.60 K, at +50 °C. The datasheet gives no temperature accuracy.
///
/// With `R = R25·exp(B·(1/T − 1/T25))`, a relative resistance error ε moves
/// the reading by `T²/B·ln(1 + ε)`, a relative B error β by
/// `β·T·|T25 − T|/T25`.
pub fn ntc_error_limit_k() -> f64 {
    let (lo, hi) = ACCURACY_TEMP_RANGE_C;
    let at = |temp_c: f64| {
        let t_k = temp_c + nominal::ZERO_C_IN_K;
        let r = t_k * t_k / nominal::NTC_BETA_K;
        let resistance = r * ((1.0 + NTC_TOLERANCE_REL).ln() + (1.0 + NTC_PULLUP_TOLERANCE_REL).ln());
        let beta = NTC_BETA_TOLERANCE_REL * t_k * (nominal::NTC_T25_K - t_k).abs() / nominal::NTC_T25_K;
        resistance + beta
    };
    // The sum grows towards both ends of the range; sample it finely.
    (0..=60).map(|k| at(lo + (hi - lo) * f64::from(k) / 60.0)).fold(0.0, f64::max)
}

/// The extra SOC tolerance of the temperature-compensated method (points):
/// its SOC is `1 − (1 − SOC_Ah)/u(T)` with `u` the usable share of the
/// capacity at the board's temperature (`firmware_core::soc::usable_permille`),
/// so a temperature error `δ` moves it by `(1 − SOC_Ah)/u²·|Δu|`.
pub fn soc_temp_term(soc_ah_pct: Option<f64>, temp_c: Option<f64>, delta_k: f64) -> f64 {
    let (Some(soc), Some(t)) = (soc_ah_pct, temp_c) else { return 0.0 };
    let u = |c: f64| f64::from(usable_permille((c * 10.0).round().clamp(-32768.0, 32767.0) as i16)) / 1000.0;
    let u0 = u(t).max(0.01);
    let du = (u(t + delta_k) - u0).abs().max((u(t - delta_k) - u0).abs());
    (1.0 - soc / 100.0).max(0.0) / (u0 * u0) * du * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_datasheet_figures() {
        let t = Tolerances::datasheet(Variant::V12);
        // 0.04 % of 250 A = 0.1 A, 0.01 % = 25 mA, plus the 1 mA resolution.
        assert!((t.current_a - 0.101).abs() < 1e-12);
        assert!((t.current_offset_a - 0.026).abs() < 1e-12);
        // 0.1 % of 15 / 30 / 60 V plus 1 mV.
        assert!((t.voltage_v - 0.016).abs() < 1e-12);
        assert!((Tolerances::datasheet(Variant::V48).voltage_v - 0.061).abs() < 1e-12);
        assert!((t.soc_current_a - 0.1).abs() < 1e-12);
        assert!((t.resistance_at(0.002) - 0.0002).abs() < 1e-12);
    }

    #[test]
    fn the_ntc_limit_is_its_closed_form_at_the_hot_end() {
        // At +50 °C: T²/B·(ln 1.01 + ln 1.001) + 0.01·T·25 K/298.15 K.
        let t = 323.15f64;
        let want = t * t / 3435.0 * (1.01f64.ln() + 1.001f64.ln()) + 0.01 * t * 25.0 / 298.15;
        assert!((ntc_error_limit_k() - want).abs() < 1e-9, "{} vs {want}", ntc_error_limit_k());
        assert!((0.55..0.65).contains(&want), "{want}");
    }

    #[test]
    fn a_file_overrides_per_quantity_in_absolute_or_percent_of_full_scale() {
        let text = "[current]\npct_fs = 0.08\noffset_abs = 0.05\ngrace_s = 5\n[voltage]\nabs = 0.03\n\
                    [soc]\nabs = 0.5\n[internal_resistance]\nabs = 0.0004\n[protection]\ngrace_s = 10\n";
        let t = Tolerances::parse(text, Variant::V24).unwrap();
        assert!((t.current_a - 0.2).abs() < 1e-12);
        assert_eq!((t.current_offset_a, t.current_grace_s, t.voltage_v), (0.05, 5.0, 0.03));
        assert_eq!((t.soc_pct, t.protection_grace_s), (0.5, 10.0));
        assert_eq!(t.resistance_at(0.002), 0.0004);
        // Untouched quantities keep the datasheet's figure.
        assert_eq!(t.temperature_k, Tolerances::datasheet(Variant::V24).temperature_k);
    }

    #[test]
    fn bad_files_name_the_key_or_the_line() {
        let cases = [
            ("[voltage]\nabs = 0.1\npct_fs = 0.1\n", "voltage: give abs or pct_fs, not both"),
            ("[current]\nabs = -1\n", "current.abs = -1 must be"),
            ("[temperature]\npct_fs = 1\n", "no full scale"),
            ("[voltage]\nslack = 1\n", "line 2: unknown field `slack`"),
            ("[sco]\nabs = 1\n", "unknown field `sco`"),
        ];
        for (text, want) in cases {
            let e = Tolerances::parse(text, Variant::V12).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let e = Tolerances::load(Path::new("/nonexistent/tol.toml"), Variant::V12).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/tol.toml"), "{e}");
    }

    #[test]
    fn the_temperature_compensated_term_follows_the_usable_capacity() {
        // 25 °C: flat usable share, no term; 5 °C: 0.6 %/K (the cell's 90 % at 0 °C to 96 % at
        // 10 °C), usable 93 %, at 60 % SOC; the table is in whole per mille (±0.1 % of du).
        assert_eq!(soc_temp_term(Some(60.0), Some(30.0), 0.6), 0.0);
        let u: f64 = 0.93;
        let want = 0.4 / (u * u) * 0.0036 * 100.0;
        assert!((soc_temp_term(Some(60.0), Some(5.0), 0.6) - want).abs() < 0.03, "{want}");
        assert_eq!(soc_temp_term(None, Some(5.0), 0.6), 0.0);
    }
}
