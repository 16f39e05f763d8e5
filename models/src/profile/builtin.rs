//! Built-in one-hour current profiles at 1 s rows, sized for one 100 Ah cell
//! (PyBaMM's `ECM_Example`: OCV 3.2 V at 0 % SOC, 4.19 V at 100 %) and
//! kept inside its 3.2..4.2 V window from their initial SOC: the four kinds
//! the pack model is timed on (`smartpro-sim ecm PARAMS builtin:NAME`,
//! `smartpro-sim bench`), reproducible bit for bit.
//!
//! | name | initial SOC | what |
//! |---|---|---|
//! | `cc` | 0.90 | 300 s rest, 1 C (100 A) discharge for 2700 s, 600 s rest |
//! | `hppc` | 0.90 | 6 × (60 s rest, 200 A discharge pulse 10 s, 40 s rest, 150 A charge pulse 10 s, 40 s rest, 10 % SOC at 1 C), 480 s rest |
//! | `drive` | 0.90 | a vehicle on random speed phases (seeded), tractive power scaled to 300 A drive / 150 A regen |
//! | `sine` | 0.80 | −30 A + 150 A·sin(2π·t/600 s) plus Gaussian noise of 20 A rms (seeded) |
//!
//! Current + = charge, as everywhere in this project; a step in current is
//! two rows at one time (the profile format of [`super::CurrentProfile`]).

use rand::RngExt;
use rand_distr::{Distribution, StandardNormal};

use super::{CurrentProfile, Interpolation};
use crate::rng::SeedStreams;

/// Length of every built-in profile (s).
pub const DURATION_S: u32 = 3600;
/// Seed of the random parts (the drive cycle's speed phases, the sine's noise).
pub const SEED: u64 = 18;

/// One built-in profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// Constant-current discharge between rests.
    Cc,
    /// HPPC pulse train.
    Hppc,
    /// Synthetic drive cycle.
    Drive,
    /// Noisy sine.
    Sine,
}

impl Builtin {
    /// Every built-in profile, in the order of the module doc's table.
    pub const ALL: [Builtin; 4] = [Builtin::Cc, Builtin::Hppc, Builtin::Drive, Builtin::Sine];

    /// The name on the command line (`builtin:NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Cc => "cc",
            Builtin::Hppc => "hppc",
            Builtin::Drive => "drive",
            Builtin::Sine => "sine",
        }
    }

    /// The profile called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Builtin> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// The SOC the profile is meant to start from (0..1).
    pub fn initial_soc(self) -> f64 {
        match self {
            Builtin::Cc | Builtin::Hppc | Builtin::Drive => 0.9,
            Builtin::Sine => 0.8,
        }
    }

    /// The rows (time_s, current_a), 1 s apart, from 0 to [`DURATION_S`].
    pub fn rows(self) -> Vec<(f64, f64)> {
        match self {
            Builtin::Cc => from_segments(&[(0.0, 300), (-100.0, 2700), (0.0, 600)]),
            Builtin::Hppc => {
                let block = [(0.0, 60), (-200.0, 10), (0.0, 40), (150.0, 10), (0.0, 40), (-100.0, 360)];
                let mut segments: Vec<(f64, u32)> = block.iter().copied().cycle().take(6 * block.len()).collect();
                segments.push((0.0, 480));
                from_segments(&segments)
            }
            Builtin::Drive => drive(),
            Builtin::Sine => sine(),
        }
    }

    /// The profile with `interpolation` between rows.
    pub fn profile(self, interpolation: Interpolation) -> CurrentProfile {
        CurrentProfile::from_rows(&self.rows(), interpolation).expect("the built-in rows are a valid profile")
    }
}

/// Rows at 1 s of constant currents `(current_a, duration_s)`; a change of
/// current is a second row at the same time.
fn from_segments(segments: &[(f64, u32)]) -> Vec<(f64, f64)> {
    let mut rows: Vec<(f64, f64)> = Vec::new();
    let mut t = 0u32;
    for &(current_a, duration_s) in segments {
        match rows.last() {
            Some(&(_, i)) if i == current_a => {}
            _ => rows.push((f64::from(t), current_a)),
        }
        for _ in 0..duration_s {
            t += 1;
            rows.push((f64::from(t), current_a));
        }
    }
    rows
}

/// Vehicle mass (kg), drag area (m²), rolling resistance and air density
/// (kg/m³) of the drive cycle: a compact car.
const MASS_KG: f64 = 1500.0;
const CDA_M2: f64 = 0.65;
const CRR: f64 = 0.01;
const AIR_KG_PER_M3: f64 = 1.2;
const G_M_PER_S2: f64 = 9.81;
/// Largest drive current and regen current limit (A), and the fraction of
/// the braking power recovered.
const DRIVE_PEAK_A: f64 = 300.0;
const REGEN_LIMIT_A: f64 = 150.0;
const REGEN_FRACTION: f64 = 0.6;

/// A vehicle on random speed phases (a fifth of them stops, the others
/// 5..35 m/s, each held 10..90 s, approached at random fractions of
/// +2.5/−3 m/s²); battery current from the tractive power.
fn drive() -> Vec<(f64, f64)> {
    let mut rng = SeedStreams::new(SEED).stream("profile.drive");
    let n = DURATION_S as usize;
    let mut speed = vec![0.0; n];
    let (mut v, mut target, mut hold) = (0.0_f64, 0.0_f64, 0_u32);
    for s in &mut speed {
        if hold == 0 {
            target = if rng.random::<f64>() < 0.2 { 0.0 } else { rng.random_range(5.0..35.0) };
            hold = rng.random_range(10..90);
        }
        hold -= 1;
        let accel = (target - v).clamp(-3.0, 2.5) * rng.random_range(0.3..1.0);
        v = (v + accel).max(0.0);
        *s = v;
    }
    let power_w: Vec<f64> = (0..n)
        .map(|k| {
            // central differences inside, one-sided at the ends (1 s apart)
            let a = match k {
                0 => speed[1] - speed[0],
                k if k == n - 1 => speed[k] - speed[k - 1],
                k => 0.5 * (speed[k + 1] - speed[k - 1]),
            };
            let v = speed[k];
            let rolling = if v > 0.0 { CRR * MASS_KG * G_M_PER_S2 } else { 0.0 };
            v * (MASS_KG * a + 0.5 * AIR_KG_PER_M3 * CDA_M2 * v * v + rolling)
        })
        .collect();
    let peak_w = power_w.iter().copied().fold(0.0, f64::max);
    let a_per_w = DRIVE_PEAK_A / peak_w;
    let mut rows = vec![(0.0, 0.0)];
    for (k, p) in power_w.iter().enumerate() {
        let current_a = if *p >= 0.0 { -p * a_per_w } else { (-p * REGEN_FRACTION * a_per_w).min(REGEN_LIMIT_A) };
        rows.push(((k + 1) as f64, round_ma(current_a)));
    }
    rows
}

/// Mean (A), amplitude (A) and period (s) of the sine, and the noise's rms (A).
const SINE_MEAN_A: f64 = -30.0;
const SINE_AMPLITUDE_A: f64 = 150.0;
const SINE_PERIOD_S: f64 = 600.0;
const SINE_NOISE_A: f64 = 20.0;

fn sine() -> Vec<(f64, f64)> {
    let mut rng = SeedStreams::new(SEED).stream("profile.sine");
    (0..=DURATION_S)
        .map(|k| {
            let t = f64::from(k);
            let noise: f64 = StandardNormal.sample(&mut rng);
            let i = SINE_MEAN_A + SINE_AMPLITUDE_A * (std::f64::consts::TAU * t / SINE_PERIOD_S).sin();
            (t, round_ma(i + SINE_NOISE_A * noise))
        })
        .collect()
}

/// `x` rounded to 1 mA (−0 as 0), so the rows print short.
fn round_ma(x: f64) -> f64 {
    (x * 1e3).round() / 1e3 + 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hour_at_one_second_rows_within_the_cell() {
        for b in Builtin::ALL {
            let rows = b.rows();
            assert_eq!(rows.first().unwrap().0, 0.0, "{b:?}");
            assert_eq!(rows.last().unwrap().0, f64::from(DURATION_S), "{b:?}");
            // 1 s apart, a step is two rows at one time
            for w in rows.windows(2) {
                let dt = w[1].0 - w[0].0;
                assert!(dt == 1.0 || (dt == 0.0 && w[1].1 != w[0].1), "{b:?}: {w:?}");
            }
            let p = b.profile(Interpolation::Hold);
            assert_eq!(Builtin::from_name(b.name()), Some(b));
            // charge within the 100 Ah cell from the initial SOC
            let ah = p.charge_c(0.0, f64::from(DURATION_S), &mut 0) / 3600.0;
            let soc_end = b.initial_soc() + ah / 100.0;
            assert!((0.05..=1.0).contains(&soc_end), "{b:?}: {soc_end}");
            let peak = rows.iter().map(|r| r.1.abs()).fold(0.0, f64::max);
            assert!(peak <= 320.0, "{b:?}: {peak}");
        }
        assert_eq!(Builtin::from_name("nope"), None);
    }

    #[test]
    fn the_kinds_are_what_they_say() {
        // cc: 2700 s at −100 A = 75 Ah
        let cc = Builtin::Cc.profile(Interpolation::Hold);
        assert_eq!(cc.charge_c(0.0, 3600.0, &mut 0), -100.0 * 2700.0);
        // hppc: 6 blocks of 10 % SOC at 1 C and pulses that net −1000 + 1500 C
        let h = Builtin::Hppc.profile(Interpolation::Hold);
        assert_eq!(h.charge_c(0.0, 3600.0, &mut 0), 6.0 * (-2000.0 + 1500.0 - 36_000.0));
        // drive: both signs, peak drive exactly 300 A, regen capped
        let d = Builtin::Drive.rows();
        let min = d.iter().map(|r| r.1).fold(f64::INFINITY, f64::min);
        let max = d.iter().map(|r| r.1).fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(min, -DRIVE_PEAK_A);
        assert!(max > 20.0 && max <= REGEN_LIMIT_A, "{max}");
        // sine: mean ≈ −30 A over six periods
        let s = Builtin::Sine.profile(Interpolation::Hold);
        let mean = s.charge_c(0.0, 3600.0, &mut 0) / 3600.0;
        assert!((mean - SINE_MEAN_A).abs() < 1.0, "{mean}");
        // reproducible
        assert_eq!(Builtin::Drive.rows(), d);
    }
}
