//! Monte Carlo parameters of a study: distributions and seeded draws.
//!
//! A study with `samples = N`, `seed = S` and `[[random]]` tables draws
//! every random parameter N times per grid point. Draw `s` (0-based) of a
//! parameter comes from the stream named after the parameter in
//! `SeedStreams::new(S).derive("sweep.draw", s)` ([`models::rng`]): it
//! depends on the seed, the draw index and the parameter's name only — not
//! on the grid point, the other parameters, the shard or the thread that
//! runs the case. So a shard draws for a case exactly what an unsharded run
//! draws, and every grid point sees the same N draws (common random
//! numbers: differences between grid points come from the grid, not from
//! the luck of the draw).
//!
//! ```toml
//! samples = 500
//! seed = 209
//! [[random]]
//! param = "load_line.length_m"
//! dist = "normal"            # normal | lognormal | uniform | triangular
//! mean = 3.0
//! sd = 0.3
//! min = 2.0                  # optional truncation (normal, lognormal)
//! ```

use models::rng::{ModelRng, SeedStreams};
use rand_distr::{Distribution, LogNormal, Normal, Triangular, Uniform};
use serde::Deserialize;
use toml::{Table, Value};

/// Significant digits a draw is rounded to, so that the value in
/// results.csv is exactly the value simulated.
pub const DRAW_SIGNIFICANT_DIGITS: i32 = 6;
/// Smallest share of a distribution a truncation window may keep: below
/// it, rejection sampling would be slow and the study most likely wrong.
pub const MIN_TRUNCATED_SHARE: f64 = 0.01;
/// Most rejected draws for one value of a truncated distribution. With at
/// least [`MIN_TRUNCATED_SHARE`] kept, running out has a probability of
/// 0.99^10000 ≈ 2e-44.
const MAX_REJECTIONS: usize = 10_000;
/// Family name under the study seed from which draw `s` derives its streams.
const DRAW_FAMILY: &str = "sweep.draw";

/// A distribution of one parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Gaussian, optionally truncated to `min..=max` (by rejection).
    Normal { mean: f64, sd: f64, min: Option<f64>, max: Option<f64> },
    /// Log-normal with the given mean and standard deviation of the value
    /// itself (not of its logarithm), optionally truncated.
    LogNormal { mean: f64, sd: f64, min: Option<f64>, max: Option<f64> },
    /// Uniform over `min..max`.
    Uniform { min: f64, max: f64 },
    /// Triangular over `min..=max`, peaking at `mode`.
    Triangular { min: f64, mode: f64, max: f64 },
}

/// One random parameter of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomParam {
    /// Dotted path of the parameter (`load_line.length_m`).
    pub param: String,
    pub dist: Dist,
}

/// The Monte Carlo part of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct MonteCarlo {
    /// Draws per grid point.
    pub samples: usize,
    pub seed: u64,
    pub params: Vec<RandomParam>,
}

/// A `[[random]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomSpec {
    param: String,
    dist: String,
    mean: Option<f64>,
    sd: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    mode: Option<f64>,
}

impl RandomParam {
    /// Checks a `[[random]]` table and makes the parameter.
    pub fn from_spec(s: RandomSpec) -> Result<RandomParam, String> {
        let p = &s.param;
        if p.is_empty() || p.split('.').any(str::is_empty) {
            return Err(format!("[[random]] param {p:?} is not a dotted key path"));
        }
        let fail = |m: String| format!("[[random]] {p:?} ({}): {m}", s.dist);
        let need = |name: &str, v: Option<f64>| v.ok_or_else(|| fail(format!("needs `{name}`")));
        let refuse = |given: &[(&str, Option<f64>)]| -> Result<(), String> {
            match given.iter().find(|(_, v)| v.is_some()) {
                Some((name, _)) => Err(fail(format!("`{name}` does not apply to this distribution"))),
                None => Ok(()),
            }
        };
        for (name, v) in [("mean", s.mean), ("sd", s.sd), ("min", s.min), ("max", s.max), ("mode", s.mode)] {
            if v.is_some_and(|v| !v.is_finite()) {
                return Err(fail(format!("`{name}` must be finite")));
            }
        }
        let window = |min: Option<f64>, max: Option<f64>| match (min, max) {
            (Some(a), Some(b)) if a >= b => Err(fail(format!("min {a} must be below max {b}"))),
            _ => Ok(()),
        };
        let dist = match s.dist.as_str() {
            "normal" => {
                refuse(&[("mode", s.mode)])?;
                let (mean, sd) = (need("mean", s.mean)?, need("sd", s.sd)?);
                if sd <= 0.0 {
                    return Err(fail(format!("sd {sd} must be > 0")));
                }
                window(s.min, s.max)?;
                Dist::Normal { mean, sd, min: s.min, max: s.max }
            }
            "lognormal" => {
                refuse(&[("mode", s.mode)])?;
                let (mean, sd) = (need("mean", s.mean)?, need("sd", s.sd)?);
                if mean <= 0.0 || sd <= 0.0 {
                    return Err(fail(format!("mean {mean} and sd {sd} must be > 0")));
                }
                window(s.min, s.max)?;
                Dist::LogNormal { mean, sd, min: s.min, max: s.max }
            }
            "uniform" => {
                refuse(&[("mean", s.mean), ("sd", s.sd), ("mode", s.mode)])?;
                let (min, max) = (need("min", s.min)?, need("max", s.max)?);
                window(Some(min), Some(max))?;
                Dist::Uniform { min, max }
            }
            "triangular" => {
                refuse(&[("mean", s.mean), ("sd", s.sd)])?;
                let (min, mode, max) = (need("min", s.min)?, need("mode", s.mode)?, need("max", s.max)?);
                window(Some(min), Some(max))?;
                if !(min..=max).contains(&mode) {
                    return Err(fail(format!("mode {mode} must lie within min {min} ..= max {max}")));
                }
                Dist::Triangular { min, mode, max }
            }
            other => {
                return Err(format!(
                    "[[random]] {p:?}: dist {other:?} is not one of \"normal\", \"lognormal\", \"uniform\", \"triangular\""
                ));
            }
        };
        let share = dist.kept_share();
        if share < MIN_TRUNCATED_SHARE {
            return Err(fail(format!(
                "min/max keep {:.3} % of the distribution (at least {} % needed); widen the window or move the mean",
                share * 100.0,
                MIN_TRUNCATED_SHARE * 100.0
            )));
        }
        Ok(RandomParam { param: s.param, dist })
    }

    /// The table this parameter was written as (what study.toml records).
    pub fn to_table(&self) -> Table {
        let mut t = Table::new();
        t.insert("param".into(), Value::String(self.param.clone()));
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                t.insert(k.into(), Value::Float(v));
            }
        };
        let name = match self.dist {
            Dist::Normal { mean, sd, min, max } | Dist::LogNormal { mean, sd, min, max } => {
                put("mean", Some(mean));
                put("sd", Some(sd));
                put("min", min);
                put("max", max);
                if matches!(self.dist, Dist::Normal { .. }) { "normal" } else { "lognormal" }
            }
            Dist::Uniform { min, max } => {
                put("min", Some(min));
                put("max", Some(max));
                "uniform"
            }
            Dist::Triangular { min, mode, max } => {
                put("min", Some(min));
                put("mode", Some(mode));
                put("max", Some(max));
                "triangular"
            }
        };
        t.insert("dist".into(), Value::String(name.into()));
        t
    }
}

impl Dist {
    /// Parameters of the underlying normal of a log-normal with this mean and sd.
    fn ln_mu_sigma(mean: f64, sd: f64) -> (f64, f64) {
        let s2 = (1.0 + (sd / mean).powi(2)).ln();
        (mean.ln() - 0.5 * s2, s2.sqrt())
    }

    /// Share of the untruncated distribution inside the truncation window (1 without one).
    pub fn kept_share(&self) -> f64 {
        let share = |mu: f64, sigma: f64, lo: Option<f64>, hi: Option<f64>| {
            let cdf = |x: f64| normal_cdf((x - mu) / sigma);
            hi.map_or(1.0, cdf) - lo.map_or(0.0, cdf)
        };
        match *self {
            Dist::Normal { mean, sd, min, max } => share(mean, sd, min, max),
            Dist::LogNormal { mean, sd, min, max } => {
                let (mu, sigma) = Self::ln_mu_sigma(mean, sd);
                // ln of a bound ≤ 0 is −∞: everything above it is kept
                let ln = |b: Option<f64>| b.filter(|&b| b > 0.0).map(f64::ln);
                match max {
                    Some(m) if m <= 0.0 => 0.0,
                    _ => share(mu, sigma, ln(min), ln(max)),
                }
            }
            Dist::Uniform { .. } | Dist::Triangular { .. } => 1.0,
        }
    }

    /// One value from `rng`, inside the truncation window, not yet rounded.
    fn sample(&self, rng: &mut ModelRng) -> Result<f64, String> {
        let bad = |e: &dyn std::fmt::Display| format!("invalid distribution: {e}");
        match *self {
            Dist::Normal { mean, sd, min, max } => {
                let n = Normal::new(mean, sd).map_err(|e| bad(&e))?;
                truncated(rng, &n, min, max)
            }
            Dist::LogNormal { mean, sd, min, max } => {
                let (mu, sigma) = Self::ln_mu_sigma(mean, sd);
                let n = LogNormal::new(mu, sigma).map_err(|e| bad(&e))?;
                truncated(rng, &n, min, max)
            }
            Dist::Uniform { min, max } => Ok(Uniform::new(min, max).map_err(|e| bad(&e))?.sample(rng)),
            Dist::Triangular { min, mode, max } => {
                Ok(Triangular::new(min, max, mode).map_err(|e| bad(&e))?.sample(rng))
            }
        }
    }

    /// The window a drawn value must lie in.
    fn bounds(&self) -> (f64, f64) {
        match *self {
            Dist::Normal { min, max, .. } | Dist::LogNormal { min, max, .. } => {
                (min.unwrap_or(f64::NEG_INFINITY), max.unwrap_or(f64::INFINITY))
            }
            Dist::Uniform { min, max } | Dist::Triangular { min, max, .. } => (min, max),
        }
    }
}

impl MonteCarlo {
    /// The values of draw `s` (0-based), one per parameter in order,
    /// rounded to [`DRAW_SIGNIFICANT_DIGITS`].
    pub fn draw(&self, s: usize) -> Result<Vec<f64>, String> {
        let streams = SeedStreams::new(self.seed).derive(DRAW_FAMILY, s as u64);
        self.params
            .iter()
            .map(|p| {
                let mut rng = streams.stream(&p.param);
                let x = p.dist.sample(&mut rng).map_err(|e| format!("draw {s} of {:?}: {e}", p.param))?;
                let (lo, hi) = p.dist.bounds();
                Ok(round_significant(x, DRAW_SIGNIFICANT_DIGITS).clamp(lo, hi))
            })
            .collect()
    }
}

/// A draw of `d` inside `min..=max`, by rejection.
fn truncated(
    rng: &mut ModelRng,
    d: &impl Distribution<f64>,
    min: Option<f64>,
    max: Option<f64>,
) -> Result<f64, String> {
    let inside = |x: f64| min.is_none_or(|m| x >= m) && max.is_none_or(|m| x <= m);
    for _ in 0..MAX_REJECTIONS {
        let x = d.sample(rng);
        if inside(x) {
            return Ok(x);
        }
    }
    Err(format!("{MAX_REJECTIONS} draws in a row fell outside min..max"))
}

pub use crate::report::json::round_significant;

/// Standard normal CDF Φ(z) = erfc(−z/√2)/2.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function, fractional error < 1.2e-7 everywhere
/// (Chebyshev fit of W. H. Press et al., Numerical Recipes, 2nd ed., §6.2, `erfcc`).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<RandomParam, String> {
        let s: RandomSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        RandomParam::from_spec(s)
    }

    fn mc(params: Vec<RandomParam>) -> MonteCarlo {
        MonteCarlo { samples: 0, seed: 7, params }
    }

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var.sqrt())
    }

    #[test]
    fn normal_cdf_matches_tabulated_values() {
        // Φ(0) = 0.5, Φ(1) = 0.841344746, Φ(−1.959964) = 0.025, Φ(3) = 0.998650102
        for (z, p) in [(0.0, 0.5), (1.0, 0.841_344_746), (-1.959_964, 0.025), (3.0, 0.998_650_102)] {
            assert!((normal_cdf(z) - p).abs() < 2e-7, "Φ({z}) = {} vs {p}", normal_cdf(z));
        }
    }

    #[test]
    fn sample_moments_match_the_distributions() {
        let n = 20_000;
        let cases = [
            ("param = \"a\"\ndist = \"normal\"\nmean = 3.0\nsd = 0.3", 3.0, 0.3),
            ("param = \"a\"\ndist = \"lognormal\"\nmean = 0.5\nsd = 0.1", 0.5, 0.1),
            // uniform a..b: mean (a+b)/2, sd (b−a)/√12
            ("param = \"a\"\ndist = \"uniform\"\nmin = -10\nmax = 45", 17.5, 55.0 / 12f64.sqrt()),
            // triangular: mean (a+b+c)/3, var (a²+b²+c²−ab−ac−bc)/18
            ("param = \"a\"\ndist = \"triangular\"\nmin = 1\nmode = 2\nmax = 6", 3.0, (7.0f64 / 6.0).sqrt()),
        ];
        for (text, mean, sd) in cases {
            let m = mc(vec![spec(text).unwrap()]);
            let xs: Vec<f64> = (0..n).map(|s| m.draw(s).unwrap()[0]).collect();
            let (m1, s1) = moments(&xs);
            // 4 standard errors of the mean; sd within 3 %
            assert!((m1 - mean).abs() < 4.0 * sd / (n as f64).sqrt(), "{text}: mean {m1} vs {mean}");
            assert!((s1 / sd - 1.0).abs() < 0.03, "{text}: sd {s1} vs {sd}");
        }
    }

    #[test]
    fn truncation_keeps_draws_inside_and_matches_the_truncated_mean() {
        // Normal(0, 1) truncated to [0, ∞): mean √(2/π) = 0.79788
        let m = mc(vec![spec("param = \"a\"\ndist = \"normal\"\nmean = 0\nsd = 1\nmin = 0").unwrap()]);
        let xs: Vec<f64> = (0..20_000).map(|s| m.draw(s).unwrap()[0]).collect();
        assert!(xs.iter().all(|&x| x >= 0.0));
        let (mean, _) = moments(&xs);
        assert!((mean - (2.0 / std::f64::consts::PI).sqrt()).abs() < 0.02, "{mean}");
        assert!((m.params[0].dist.kept_share() - 0.5).abs() < 1e-7);
    }

    #[test]
    fn draws_depend_on_seed_index_and_name_only() {
        let a = spec("param = \"a.x\"\ndist = \"uniform\"\nmin = 0\nmax = 1").unwrap();
        let b = spec("param = \"b.y\"\ndist = \"normal\"\nmean = 5\nsd = 1").unwrap();
        let one = mc(vec![a.clone()]);
        let two = mc(vec![b.clone(), a.clone()]);
        for s in [0, 1, 999] {
            // adding a parameter does not change another's draws
            assert_eq!(one.draw(s).unwrap()[0], two.draw(s).unwrap()[1]);
        }
        assert_ne!(one.draw(0).unwrap(), one.draw(1).unwrap());
        let other_seed = MonteCarlo { seed: 8, ..one.clone() };
        assert_ne!(one.draw(0).unwrap(), other_seed.draw(0).unwrap());
        // rounded to 6 significant digits
        let x = one.draw(3).unwrap()[0];
        assert_eq!(x, round_significant(x, 6));
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let e = spec("param = \"a\"\ndist = \"gauss\"\nmean = 1\nsd = 1").unwrap_err();
        assert!(e.contains("\"gauss\" is not one of"), "{e}");
        let e = spec("param = \"a\"\ndist = \"normal\"\nmean = 1").unwrap_err();
        assert!(e.contains("needs `sd`"), "{e}");
        let e = spec("param = \"a\"\ndist = \"uniform\"\nmin = 2\nmax = 1").unwrap_err();
        assert!(e.contains("min 2 must be below max 1"), "{e}");
        let e = spec("param = \"a\"\ndist = \"uniform\"\nmin = 0\nmax = 1\nsd = 3").unwrap_err();
        assert!(e.contains("`sd` does not apply"), "{e}");
        let e = spec("param = \"a\"\ndist = \"normal\"\nmean = 0\nsd = 1\nmin = 4").unwrap_err();
        assert!(e.contains("keep 0.003 %"), "{e}");
        let e = spec("param = \"a\"\ndist = \"triangular\"\nmin = 0\nmode = 3\nmax = 1").unwrap_err();
        assert!(e.contains("mode 3 must lie within"), "{e}");
        let e = spec("param = \"a\"\ndist = \"lognormal\"\nmean = -1\nsd = 1").unwrap_err();
        assert!(e.contains("must be > 0"), "{e}");
    }

    #[test]
    fn spec_round_trips_through_its_table() {
        let p =
            spec("param = \"battery.cell_r0_ohm\"\ndist = \"lognormal\"\nmean = 5e-4\nsd = 5e-5\nmax = 8e-4").unwrap();
        let back: RandomSpec = Value::Table(p.to_table()).try_into().unwrap();
        assert_eq!(RandomParam::from_spec(back).unwrap(), p);
    }

    #[test]
    fn rounding_to_significant_digits() {
        assert_eq!(round_significant(1.234_567_89, 6), 1.23457);
        assert_eq!(round_significant(0.000_512_345_67, 6), 0.000_512_346);
        assert_eq!(round_significant(123_456_789.0, 6), 123_457_000.0);
        assert_eq!(round_significant(-2.5e-9, 6), -2.5e-9);
    }
}
