//! Raw ADC codes → calibrated current, voltage and temperature (integers).

use crate::settings::{Calibration, design};

/// Codes at or beyond these are treated as a saturated channel.
pub const ADC_CODE_MAX: i32 = (1 << 23) - 1;
pub const ADC_CODE_MIN: i32 = -(1 << 23);

/// The current channel's full scale (µA): the ADC saturates just beyond ±500 A, so a calibrated
/// reading past it (a rail code times a gain a little above nominal read 500.03 A) is a
/// saturated channel's, not a current; it reads as the full scale, which the register map
/// documents as `current_ma`'s range.
pub const CURRENT_FULL_SCALE_UA: i32 = 500_000_000;

/// Calibrated measurements of one sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Measurements {
    /// Battery current in µA; + = charge.
    pub current_ua: i32,
    /// Battery voltage in µV.
    pub voltage_uv: i32,
    /// Battery temperature in 0.1 °C.
    pub temperature_dc: i16,
    /// One of the channels is at its ADC limit.
    pub saturated: bool,
}

impl Measurements {
    /// Current rounded to mA.
    pub fn current_ma(&self) -> i32 {
        div_round(i64::from(self.current_ua), 1_000) as i32
    }
    /// Voltage rounded to mV.
    pub fn voltage_mv(&self) -> i32 {
        div_round(i64::from(self.voltage_uv), 1_000) as i32
    }
}

/// Integer division rounding half away from zero.
pub const fn div_round(n: i64, d: i64) -> i64 {
    if (n < 0) != (d < 0) { n.saturating_sub(d / 2) / d } else { n.saturating_add(d / 2) / d }
}

/// Current-channel code → µA, with the gain corrected to `temp_dc` by its
/// temperature coefficient (the gain is calibrated at 25 °C).
pub fn current_ua(code: i32, cal: &Calibration, temp_dc: i16) -> i32 {
    current_ua_at_gain(code, cal, gain_at(cal, temp_dc))
}

/// Current-channel code → µA at the gain `gain_pa_per_code` ([`gain_at`]).
#[inline]
fn current_ua_at_gain(code: i32, cal: &Calibration, gain_pa_per_code: i64) -> i32 {
    let net = i64::from(code) - i64::from(cal.current_offset_code);
    let ua = div_round(net.saturating_mul(gain_pa_per_code), 1_000_000);
    ua.clamp(-i64::from(CURRENT_FULL_SCALE_UA), i64::from(CURRENT_FULL_SCALE_UA)) as i32
}

/// The current gain at `temp_dc`, pA/code: gain × (1 + tc × (T − 25 °C)).
pub fn gain_at(cal: &Calibration, temp_dc: i16) -> i64 {
    let ppm = i64::from(cal.current_gain_tc_ppm_per_k) * (i64::from(temp_dc) - 250) / 10;
    i64::from(cal.current_gain_pa_per_code) * (1_000_000 + ppm) / 1_000_000
}

/// Voltage-channel code → µV.
pub fn voltage_uv(code: i32, cal: &Calibration) -> i32 {
    let uv = div_round(i64::from(code) * i64::from(cal.voltage_gain_pv_per_code), 1_000_000);
    uv.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Temperature-channel code (NTC divider ratio × 2²³) → 0.1 °C, Beta model.
/// An open NTC (ratio → 1) reads as the lowest value, a shorted one as the highest.
pub fn temperature_dc(code: i32, cal: &Calibration) -> i16 {
    const T0_K: f32 = 298.15;
    let full = design::ADC_FULL_SCALE_CODES as f32;
    let ratio = (code as f32 / full).clamp(1e-6, 1.0 - 1e-6);
    let r_ntc = design::NTC_PULLUP_OHM * ratio / (1.0 - ratio);
    let inv_t = 1.0 / T0_K + libm::logf(r_ntc / design::NTC_R25_OHM) / design::NTC_BETA_K;
    // A shorted NTC drives 1/T through zero: read it as the hottest value.
    let temp_c = if inv_t > 1e-4 { 1.0 / inv_t - 273.15 } else { 150.0 };
    let dc = libm::roundf(temp_c * 10.0).clamp(-550.0, 1500.0) as i16;
    dc.saturating_add(cal.temperature_offset_dc)
}

/// Converts one set of codes.
pub fn convert(current_code: i32, voltage_code: i32, temperature_code: i32, cal: &Calibration) -> Measurements {
    let sat = |c: i32| c >= ADC_CODE_MAX || c <= ADC_CODE_MIN;
    let temperature_dc = temperature_dc(temperature_code, cal);
    Measurements {
        current_ua: current_ua(current_code, cal, temperature_dc),
        voltage_uv: voltage_uv(voltage_code, cal),
        temperature_dc,
        saturated: sat(current_code) || sat(voltage_code),
    }
}

/// [`convert`] that remembers the last temperature code's conversion and the
/// current gain at it: the NTC channel converts every 100 ms and the board
/// polls every 10 ms, so most polls see the code (and calibration) they saw
/// before, and their temperature (`logf`) and gain are those of the last.
#[derive(Clone, Copy, Debug, Default)]
pub struct Converter {
    /// (temperature code, calibration) last converted → (0.1 °C, current gain at it, pA/code).
    last: Option<(i32, Calibration, i16, i64)>,
}

impl Converter {
    /// The same as [`convert`] of the same arguments.
    pub fn convert(
        &mut self,
        current_code: i32,
        voltage_code: i32,
        temperature_code: i32,
        cal: &Calibration,
    ) -> Measurements {
        let (temperature_dc, gain) = match self.last {
            Some((code, c, t, g)) if code == temperature_code && c == *cal => (t, g),
            _ => {
                let t = temperature_dc(temperature_code, cal);
                let g = gain_at(cal, t);
                self.last = Some((temperature_code, *cal, t, g));
                (t, g)
            }
        };
        let sat = |c: i32| c >= ADC_CODE_MAX || c <= ADC_CODE_MIN;
        Measurements {
            current_ua: current_ua_at_gain(current_code, cal, gain),
            voltage_uv: voltage_uv(voltage_code, cal),
            temperature_dc,
            saturated: sat(current_code) || sat(voltage_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Variant;

    fn cal() -> Calibration {
        Calibration::nominal(Variant::V12)
    }

    /// 100 µΩ × 50 into a 2.5 V, 24-bit bipolar ADC: 16 777.216 codes per amp.
    const CODES_PER_A: f64 = 16_777.216;

    #[test]
    fn current_at_both_ends_of_the_range() {
        let plus = (250.0 * CODES_PER_A).round() as i32; // 4 194 304
        let minus = -plus;
        assert_eq!(plus, 4_194_304);
        // 1 mA resolution: both ends convert to ±250.000 A exactly.
        assert_eq!(convert(plus, 0, 1 << 22, &cal()).current_ma(), 250_000);
        assert_eq!(convert(minus, 0, 1 << 22, &cal()).current_ma(), -250_000);
        // One code is 59.6 µA, well below the 1 mA resolution.
        assert_eq!(current_ua(1, &cal(), 250), 60);
        assert_eq!(current_ua(0, &cal(), 250), 0);
    }

    #[test]
    fn offset_and_gain_calibration_apply() {
        let mut c = cal();
        c.current_offset_code = 100;
        assert_eq!(current_ua(100, &c, 250), 0);
        c.current_gain_pa_per_code = 60_000_000;
        assert_eq!(current_ua(1100, &c, 250), 60_000);
    }

    #[test]
    fn gain_temperature_coefficient_applies_around_25c() {
        let mut c = cal();
        c.current_gain_tc_ppm_per_k = 100;
        let code = 4_194_304; // 250 A nominal
        assert_eq!(current_ua(code, &c, 250) / 1_000, 250_000);
        // +25 K × 100 ppm/K = +0.25 %.
        assert!((current_ua(code, &c, 500) - 250_625_000).abs() < 1_000);
    }

    #[test]
    fn saturation_is_flagged_and_does_not_overflow() {
        let m = convert(i32::MAX, i32::MIN, 0, &cal());
        assert!(m.saturated);
        let mut c = cal();
        c.current_offset_code = -100_000;
        c.current_gain_pa_per_code = u32::MAX;
        assert_eq!(current_ua(i32::MAX, &c, 250), CURRENT_FULL_SCALE_UA);
        assert_eq!(current_ua(i32::MIN, &c, 250), -CURRENT_FULL_SCALE_UA);
    }

    /// Found by hil-rig's self-comparison (issue 21 item 2): at the ADC's rail a gain 0.006 %
    /// above nominal read 500.030 A, outside `max_discharge_current_ma`'s documented 0..500 A.
    #[test]
    fn issue_21_a_saturated_current_reads_the_full_scale_not_beyond() {
        let mut c = cal();
        c.current_gain_pa_per_code = c.current_gain_pa_per_code + c.current_gain_pa_per_code / 16_000;
        for code in [ADC_CODE_MIN, ADC_CODE_MAX] {
            let m = convert(code, 0, 0, &c);
            assert!(m.saturated);
            assert_eq!(m.current_ua.abs(), CURRENT_FULL_SCALE_UA);
        }
        let map_range = crate::map::by_name("current_ma").map(|r| (r.min, r.max));
        let full_scale_ma = i64::from(CURRENT_FULL_SCALE_UA / 1_000);
        assert_eq!(map_range, Some((-full_scale_ma, full_scale_ma)));
    }

    #[test]
    fn voltage_full_range_per_variant() {
        // 2.0 V at the ADC is the measuring range: 15 V on the 12 V variant.
        let code = (2.0 / 2.5 * 8_388_608.0) as i32;
        assert_eq!(div_round(i64::from(voltage_uv(code, &cal())), 1_000), 15_000);
        let c48 = Calibration::nominal(Variant::V48);
        assert_eq!(div_round(i64::from(voltage_uv(code, &c48)), 1_000), 60_000);
    }

    /// Issue 18: the converter that remembers the temperature code converts as `convert` does,
    /// through changes of the codes and of the calibration.
    #[test]
    fn issue_18_remembered_temperature_converts_as_convert() {
        let mut conv = Converter::default();
        let mut c = cal();
        let mut x: u32 = 12_345;
        for k in 0..20_000 {
            // A small LCG: codes that repeat (as between two NTC conversions) and jump.
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let t_code = if k % 10 == 0 { (x >> 8) as i32 - (1 << 23) } else { 1 << 22 };
            let i_code = (x as i32) >> 7;
            let v_code = (x.rotate_left(13) as i32) >> 8;
            if k % 997 == 0 {
                c.temperature_offset_dc = (x % 21) as i16 - 10;
                c.current_gain_tc_ppm_per_k = (x % 201) as i16 - 100;
                c.current_offset_code = (x % 2001) as i32 - 1000;
            }
            assert_eq!(conv.convert(i_code, v_code, t_code, &c), convert(i_code, v_code, t_code, &c), "{k}");
        }
    }

    #[test]
    fn ntc_reads_25c_at_half_scale_and_follows_beta() {
        assert_eq!(temperature_dc(1 << 22, &cal()), 250);
        // R(0 °C) = 10k·exp(3435·(1/273.15 − 1/298.15)) = 28 704 Ω
        let r = 10_000.0 * f64::exp(3435.0 * (1.0 / 273.15 - 1.0 / 298.15));
        let code = (r / (r + 10_000.0) * 8_388_608.0) as i32;
        assert_eq!(temperature_dc(code, &cal()), 0);
        assert_eq!(temperature_dc(i32::MAX, &cal()), -550);
        assert_eq!(temperature_dc(i32::MIN, &cal()), 1500);
    }
}
