//! Numbers in the JSON reports (`run`'s and `sweep`'s summary.json): one rounding rule.

use serde_json::Value;

/// Significant digits of the numbers in a summary.json: below every figure's
/// resolution (a time of 10^5 s to 0.1 µs, a voltage to 1e-11 V), above the
/// binary noise of its arithmetic (`7800.000000000001` is written `7800`).
pub const SUMMARY_DIGITS: usize = 12;

/// Every non-integer number in `v` rounded to [`SUMMARY_DIGITS`] significant
/// digits (then written in the shortest form that reads back to it).
pub fn round_numbers(v: &mut Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            let rounded = n.as_f64().map(|x| round_significant(x, SUMMARY_DIGITS as i32));
            if let Some(x) = rounded.and_then(serde_json::Number::from_f64) {
                *n = x;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(round_numbers),
        Value::Object(o) => o.values_mut().for_each(round_numbers),
        _ => {}
    }
}

/// `x` rounded to `digits` (≥ 1) significant digits by its decimal form: the double nearest
/// the rounded decimal, for any magnitude; ±0 as 0. The one rounding of the twin's
/// reports and of a study's drawn values.
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let d = usize::try_from(digits.max(1) - 1).unwrap_or(0);
    format!("{x:.d$e}").parse::<f64>().map_or(x, |r| r + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21 item 8: `7800.000000000001` in summary.json (run's, and the sweep's too).
    #[test]
    fn issue_21_binary_noise_is_rounded_away_and_figures_kept() {
        let mut v = serde_json::json!({"t": 7800.000000000001, "x": [0.1 + 0.2, -0.0, 1e-11], "n": 3});
        round_numbers(&mut v);
        assert_eq!(v.to_string(), r#"{"n":3,"t":7800.0,"x":[0.3,0.0,1e-11]}"#);
    }
}
