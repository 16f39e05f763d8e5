//! A fuse as a first-order thermal element with a pre-arcing (melting)
//! integral and an arcing phase.
//!
//! # Equations
//!
//! ```text
//! dW/dt = i² − W/τ          W: the element's "heat" in A²s, W(0) = 0
//! melts when W ≥ I²t_pa     (pre-arcing I²t)
//! ```
//!
//! For a constant current `I` the element melts at
//! `t_pa(I) = −τ·ln(1 − I²t_pa/(I²·τ))`: adiabatic (`t_pa → I²t_pa/I²`) at
//! high current, and never below the minimum fusing current
//! `I_min = √(I²t_pa/τ)`. After melting the arc carries the current down to
//! zero over `arcing_s` (a linear fall: the arcing I²t of a constant current
//! `I` is `I²·arcing_s/3`); then the fuse is cleared (open for good).
//!
//! # Class and defaults
//!
//! The defaults describe a 200 A bolt-in fuse of the ISO 8820-5 class
//! (MEGA / ANL type, 32–58 V DC, the fuses used at the pole of 12–48 V
//! battery systems). The two constants are fitted to the shape such fuses'
//! published time–current curves have: about 1.35·I_n as the minimum fusing
//! current (ISO 8820-5's conventional fusing current) and a few tens of
//! milliseconds at 10·I_n. They are the model's parameters, not a given
//! part's guarantee: take `pre_arcing_i2t_a2s` and `tau_s` from the fuse's
//! own datasheet (its melting-I²t and its curve at 1.35·I_n) for a real
//! installation.
//!
//! Published data: no manufacturer's melting I²t or tabulated curve points
//! for a MEGA / MIDI / ANL / AMG / MCASE fuse could be found in the
//! reference material searched (Littelfuse automotive catalogues, Bussmann
//! catalogues, fuse-characteristic pages); the figures above are therefore
//! the class's shape, not a part's data, and stay named and overridable
//! (`[powerpro.fuse]` in a scenario, `[powerpro.fuse]` in a study).
//!
//! # In the µs circuit
//!
//! The same element sits in the transient loop ([`crate::transient`]) with
//! its cold resistance `resistance_mohm`. There the current between two
//! breakpoints is an exponential `i(t) = a + b·e^(−t/τ_L)` (or, while an arc
//! takes it down, a line), and the heat equation is integrated exactly over
//! it ([`FuseParams::heat_after_exp`], [`FuseParams::heat_after_linear`]);
//! the melting instant is the root of that closed form ([`melt_time_s`]).
//! The arc is the same as here: the current falls linearly from its value at
//! melting to zero in `arcing_s`; the circuit derives the arc's voltage from
//! the loop (`v_arc = E − R·i − v_switch − L·di/dt`).

use serde::{Deserialize, Serialize};

use crate::error::{self, ParamError};

/// Default rating (A).
pub const DEFAULT_RATING_A: f64 = 200.0;
/// Minimum fusing current / rating of the class (ISO 8820-5 conventional fusing current, 135 %).
pub const MIN_FUSING_RATIO: f64 = 1.35;
/// Default pre-arcing I²t (A²s): 10·I_n (2 kA) melts in ≈ 40 ms (≈ 4·10⁵ A²s/(2 kA)²·(1 + ε)).
pub const DEFAULT_PRE_ARCING_I2T_A2S: f64 = 1.6e5;
/// Default arcing time after melting (s): a few ms for a sand-filled element at 12–48 V DC.
pub const DEFAULT_ARCING_S: f64 = 2e-3;
/// Default cold resistance (mΩ): plausible for a 200 A bolt-in fuse, ≈ 60 mV at its rating
/// (the order of the voltage drops such fuses are specified with; not a given part's figure).
pub const DEFAULT_RESISTANCE_MOHM: f64 = 0.3;

/// A fuse's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FuseParams {
    /// Rated current I_n (A).
    pub rating_a: f64,
    /// Pre-arcing (melting) I²t at high current (A²s).
    pub pre_arcing_i2t_a2s: f64,
    /// Minimum fusing current / rating (sets τ = I²t_pa/(ratio·I_n)²).
    pub min_fusing_ratio: f64,
    /// Arcing time from melting to zero current (s).
    pub arcing_s: f64,
    /// Cold resistance of the element (mΩ): in series in the µs circuit.
    pub resistance_mohm: f64,
}

impl Default for FuseParams {
    fn default() -> Self {
        Self {
            rating_a: DEFAULT_RATING_A,
            pre_arcing_i2t_a2s: DEFAULT_PRE_ARCING_I2T_A2S,
            min_fusing_ratio: MIN_FUSING_RATIO,
            arcing_s: DEFAULT_ARCING_S,
            resistance_mohm: DEFAULT_RESISTANCE_MOHM,
        }
    }
}

impl FuseParams {
    /// Checks that every field is physical.
    pub fn validate(&self) -> Result<(), ParamError> {
        error::positive("fuse.rating_a", self.rating_a)?;
        error::positive("fuse.pre_arcing_i2t_a2s", self.pre_arcing_i2t_a2s)?;
        if !(self.min_fusing_ratio.is_finite() && self.min_fusing_ratio > 1.0 && self.min_fusing_ratio <= 3.0) {
            return Err(ParamError {
                name: "fuse.min_fusing_ratio",
                value: self.min_fusing_ratio,
                requirement: "within (1, 3]",
            });
        }
        error::non_negative("fuse.arcing_s", self.arcing_s)?;
        if self.arcing_s > 1.0 {
            return Err(ParamError { name: "fuse.arcing_s", value: self.arcing_s, requirement: "within 0..=1 s" });
        }
        if !(self.resistance_mohm.is_finite() && (0.0..=100.0).contains(&self.resistance_mohm)) {
            return Err(ParamError {
                name: "fuse.resistance_mohm",
                value: self.resistance_mohm,
                requirement: "within 0..=100 mΩ",
            });
        }
        Ok(())
    }

    /// The element's thermal time constant τ (s).
    pub fn tau_s(&self) -> f64 {
        let i_min = self.min_fusing_ratio * self.rating_a;
        self.pre_arcing_i2t_a2s / (i_min * i_min)
    }

    /// The minimum fusing current (A).
    pub fn min_fusing_a(&self) -> f64 {
        self.min_fusing_ratio * self.rating_a
    }

    /// Pre-arcing time for a constant current (s); `None` at or below the minimum fusing current.
    pub fn pre_arcing_time_s(&self, current_a: f64) -> Option<f64> {
        let tau = self.tau_s();
        let x = self.pre_arcing_i2t_a2s / (current_a * current_a * tau);
        (x < 1.0).then(|| -tau * (-x).ln_1p())
    }

    /// Clearing time (pre-arcing plus arcing) for a constant current (s).
    pub fn clearing_time_s(&self, current_a: f64) -> Option<f64> {
        self.pre_arcing_time_s(current_a).map(|t| t + self.arcing_s)
    }

    /// Let-through I²t for a constant current up to melting, then the arc's linear fall
    /// (A²s): `I²·t_pa + I²·arcing_s/3`; `None` where it never melts.
    pub fn clearing_i2t_a2s(&self, current_a: f64) -> Option<f64> {
        let i2 = current_a * current_a;
        self.pre_arcing_time_s(current_a).map(|t| i2 * t + i2 * self.arcing_s / 3.0)
    }

    /// The element's heat `W` (A²s) after `h_s` from `w0_a2s` carrying
    /// `i(t) = a + b·e^(−t/τ_L)`: the exact solution of `dW/dt = i² − W/τ`,
    /// `W(h) = e^(−h/τ)·W0 + ∫₀ʰ e^(−(h−s)/τ)·i(s)² ds`.
    pub fn heat_after_exp(&self, w0_a2s: f64, h_s: f64, a: f64, b: f64, tau_l_s: f64) -> f64 {
        let tau = self.tau_s();
        let decay = (-h_s / tau).exp();
        // J(k) = ∫₀ʰ e^(−(h−s)/τ)·e^(−k·s) ds = (e^(−k·h) − e^(−h/τ))/(1/τ − k)
        let j = |k: f64| {
            let c = 1.0 / tau - k;
            let x = c * h_s;
            if x.abs() < 1e-12 {
                decay * h_s
            } else if x > 1.0 {
                ((-k * h_s).exp() - decay) / c
            } else {
                // e^(−h/τ)·(e^(c·h) − 1)/c: no overflow for c·h ≤ 1, exact for small c·h
                decay * x.exp_m1() / c
            }
        };
        let mut w = decay * w0_a2s + a * a * j(0.0);
        if b != 0.0 && tau_l_s.is_finite() && tau_l_s > 0.0 {
            let k = 1.0 / tau_l_s;
            w += 2.0 * a * b * j(k) + b * b * j(2.0 * k);
        } else if b != 0.0 {
            // τ_L = ∞: a constant a + b
            w = decay * w0_a2s + (a + b) * (a + b) * j(0.0);
        }
        w
    }

    /// As [`Self::heat_after_exp`] for a current falling on a line, `i(t) = i0 − r·t`.
    pub fn heat_after_linear(&self, w0_a2s: f64, h_s: f64, i0: f64, r: f64) -> f64 {
        let tau = self.tau_s();
        let x = h_s / tau;
        let decay = (-x).exp();
        // N_n = ∫₀ʰ u^n·e^(−u/τ) du (u = h − s), by series where x is small (no cancellation)
        let (n0, n1, n2) = if x < 1e-3 {
            let h = h_s;
            (
                h * (1.0 - x / 2.0 + x * x / 6.0 - x * x * x / 24.0),
                h * h * (0.5 - x / 3.0 + x * x / 8.0 - x * x * x / 30.0),
                h * h * h * (1.0 / 3.0 - x / 4.0 + x * x / 10.0 - x * x * x / 36.0),
            )
        } else {
            (
                tau * -(-x).exp_m1(),
                tau * tau * (1.0 - decay * (1.0 + x)),
                tau * tau * tau * (2.0 - decay * (x * x + 2.0 * x + 2.0)),
            )
        };
        // i(s)² with s = h − u: (i0 − r·h + r·u)² = c² + 2·c·r·u + r²·u², c = i0 − r·h
        let c = i0 - r * h_s;
        decay * w0_a2s + c * c * n0 + 2.0 * c * r * n1 + r * r * n2
    }
}

/// The first time in `(0, h_s]` at which `heat(t)` reaches `threshold` (s), found by bisection
/// on the closed form to a relative 1e-13 of `h_s`; `None` when `heat(h_s)` stays below it.
/// `heat(0)` is below the threshold (the element had not melted).
pub fn melt_time_s(h_s: f64, threshold_a2s: f64, heat: impl Fn(f64) -> f64) -> Option<f64> {
    if heat(h_s) < threshold_a2s {
        return None;
    }
    let (mut lo, mut hi) = (0.0, h_s);
    while hi - lo > 1e-13 * h_s.max(1e-12) {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if heat(mid) >= threshold_a2s {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// Where the fuse is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuseState {
    /// Conducting, element intact.
    Intact,
    /// Melted; the arc carries the current down.
    Arcing,
    /// Open for good.
    Cleared,
}

impl FuseState {
    /// 0 intact, 1 arcing, 2 cleared (the trace's column).
    pub fn code(self) -> u8 {
        match self {
            FuseState::Intact => 0,
            FuseState::Arcing => 1,
            FuseState::Cleared => 2,
        }
    }
}

/// A fuse's state.
#[derive(Clone, Debug)]
pub struct Fuse {
    params: FuseParams,
    tau_s: f64,
    w_a2s: f64,
    state: FuseState,
    /// Time since melting (s).
    arc_s: f64,
    /// The current at melting (A, signed).
    melt_current_a: f64,
    /// ∫ i² dt through the fuse so far (A²s).
    let_through_a2s: f64,
}

impl Fuse {
    pub fn new(params: &FuseParams) -> Self {
        Fuse {
            params: *params,
            tau_s: params.tau_s(),
            w_a2s: 0.0,
            state: FuseState::Intact,
            arc_s: 0.0,
            melt_current_a: 0.0,
            let_through_a2s: 0.0,
        }
    }

    /// Advances `dt_s` with `current_a` asked of it; returns the current it lets through over the
    /// step (the mean: `current_a` intact, the arc's falling current, 0 cleared).
    pub fn step(&mut self, dt_s: f64, current_a: f64) -> f64 {
        match self.state {
            FuseState::Cleared => 0.0,
            FuseState::Intact => {
                let i2 = current_a * current_a;
                // exact update of dW/dt = i² − W/τ over the step
                let a = (-dt_s / self.tau_s).exp();
                let w = a * self.w_a2s + (1.0 - a) * self.tau_s * i2;
                if w >= self.params.pre_arcing_i2t_a2s {
                    // the fraction of the step until melting (W linear in it to first order)
                    let f = ((self.params.pre_arcing_i2t_a2s - self.w_a2s) / (w - self.w_a2s)).clamp(0.0, 1.0);
                    self.w_a2s = self.params.pre_arcing_i2t_a2s;
                    self.let_through_a2s += i2 * f * dt_s;
                    self.state = FuseState::Arcing;
                    self.melt_current_a = current_a;
                    self.arc_s = 0.0;
                    let rest = self.arc(dt_s * (1.0 - f));
                    (current_a * f * dt_s + rest) / dt_s
                } else {
                    self.w_a2s = w;
                    self.let_through_a2s += i2 * dt_s;
                    current_a
                }
            }
            FuseState::Arcing => self.arc(dt_s) / dt_s,
        }
    }

    /// The arc over `dt_s`: returns its charge (A·s) and adds its I²t.
    fn arc(&mut self, dt_s: f64) -> f64 {
        let t_arc = self.params.arcing_s;
        let i0 = self.melt_current_a;
        let (t0, t1) = (self.arc_s, (self.arc_s + dt_s).min(t_arc));
        self.arc_s += dt_s;
        if t_arc <= 0.0 || t1 <= t0 {
            self.state = FuseState::Cleared;
            return 0.0;
        }
        // i(t) = i0·(1 − t/t_arc): ∫i dt and ∫i² dt over [t0, t1]
        let u = |t: f64| 1.0 - t / t_arc;
        let charge = i0 * t_arc * (u(t0) * u(t0) - u(t1) * u(t1)) / 2.0;
        self.let_through_a2s += i0 * i0 * t_arc * (u(t0).powi(3) - u(t1).powi(3)) / 3.0;
        if self.arc_s >= t_arc {
            self.state = FuseState::Cleared;
        }
        charge
    }

    pub fn state(&self) -> FuseState {
        self.state
    }

    /// The element's heat `W` (A²s): it melts at `pre_arcing_i2t_a2s`.
    pub fn heat_a2s(&self) -> f64 {
        self.w_a2s
    }

    /// A µs circuit's step of the intact element: its heat is now `w_a2s` and `i2t_a2s` more
    /// went through it ([`FuseParams::heat_after_exp`]).
    pub fn carried(&mut self, w_a2s: f64, i2t_a2s: f64) {
        if self.state == FuseState::Intact {
            self.w_a2s = w_a2s.min(self.params.pre_arcing_i2t_a2s);
        }
        self.let_through_a2s += i2t_a2s;
    }

    /// A µs circuit's step of the arcing element: `i2t_a2s` went through the arc.
    pub fn arced(&mut self, i2t_a2s: f64) {
        self.let_through_a2s += i2t_a2s;
    }

    /// The element melts now carrying `current_a`: the arc begins.
    pub fn melt(&mut self, current_a: f64) {
        if self.state == FuseState::Intact {
            self.w_a2s = self.params.pre_arcing_i2t_a2s;
            self.state = FuseState::Arcing;
            self.melt_current_a = current_a;
            self.arc_s = 0.0;
        }
    }

    /// The arc is out: the fuse is open for good.
    pub fn clear(&mut self) {
        self.state = FuseState::Cleared;
    }

    /// ∫ i² dt through the fuse so far (A²s).
    pub fn let_through_i2t_a2s(&self) -> f64 {
        self.let_through_a2s
    }

    pub fn params(&self) -> &FuseParams {
        &self.params
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps a fresh fuse at `current_a` until it clears; the time (s).
    fn time_to_clear(p: &FuseParams, current_a: f64, dt_s: f64) -> Option<f64> {
        let mut f = Fuse::new(p);
        let mut t = 0.0;
        while t < 10_000.0 {
            f.step(dt_s, current_a);
            t += dt_s;
            if f.state() == FuseState::Cleared {
                return Some(t);
            }
        }
        None
    }

    #[test]
    fn clearing_time_for_constant_current_follows_the_curve() {
        let p = FuseParams::default();
        for (i, dt) in [(2_000.0, 1e-5), (600.0, 1e-3), (300.0, 1e-2)] {
            let expected = p.clearing_time_s(i).unwrap();
            let got = time_to_clear(&p, i, dt).unwrap();
            assert!((got - expected).abs() <= 2.0 * dt + 1e-9, "{i} A: {got} vs {expected}");
        }
        // the closed form: adiabatic at high current, never below the minimum fusing current
        let t = p.pre_arcing_time_s(20_000.0).unwrap();
        assert!((t * 20_000.0f64.powi(2) / p.pre_arcing_i2t_a2s - 1.0).abs() < 1e-3);
        assert_eq!(p.pre_arcing_time_s(p.min_fusing_a() * 0.999), None);
        assert_eq!(time_to_clear(&p, 260.0, 1.0), None);
    }

    #[test]
    fn let_through_is_pre_arcing_plus_arcing() {
        // 2 kA: pre-arcing I²t ≈ the melting integral plus what τ leaked, arcing I²·t_arc/3.
        let p = FuseParams::default();
        let i = 2_000.0;
        let mut f = Fuse::new(&p);
        while f.state() != FuseState::Cleared {
            f.step(1e-6, i);
        }
        let t_pa = p.pre_arcing_time_s(i).unwrap();
        let expected = i * i * t_pa + i * i * p.arcing_s / 3.0;
        assert!((f.let_through_i2t_a2s() / expected - 1.0).abs() < 1e-3, "{} vs {expected}", f.let_through_i2t_a2s());
        assert_eq!(f.step(1e-3, i), 0.0);
    }

    /// ∫₀ʰ e^(−(h−s)/τ)·i(s)² ds + e^(−h/τ)·W0 by the composite Simpson rule.
    fn heat_numeric(p: &FuseParams, w0: f64, h: f64, i: impl Fn(f64) -> f64) -> f64 {
        let (n, tau) = (20_000, p.tau_s());
        let f = |s: f64| (-(h - s) / tau).exp() * i(s).powi(2);
        let dh = h / n as f64;
        let sum: f64 = (0..=n)
            .map(|k| {
                let w = if k == 0 || k == n {
                    1.0
                } else if k % 2 == 1 {
                    4.0
                } else {
                    2.0
                };
                w * f(k as f64 * dh)
            })
            .sum();
        (-h / tau).exp() * w0 + sum * dh / 3.0
    }

    #[test]
    fn issue_15_heat_over_an_exponential_and_a_line_is_the_closed_form() {
        let p = FuseParams::default();
        // the circuit's pieces: fast and slow exponentials, rising and falling, and lines
        for (h, a, b, tau_l) in [(5e-3, 4800.0, -4800.0, 1e-4), (2e-3, 100.0, 900.0, 5e-3), (0.5, 300.0, -50.0, 2.0)] {
            let exact = p.heat_after_exp(1e4, h, a, b, tau_l);
            let numeric = heat_numeric(&p, 1e4, h, |s| a + b * (-s / tau_l).exp());
            assert!((exact / numeric - 1.0).abs() < 1e-9, "{exact} vs {numeric}");
        }
        // a τ_L of picoseconds: the constant current's heat, no overflow
        let w = p.heat_after_exp(0.0, 1e-3, 1000.0, -1000.0, 1e-12);
        assert!((w / p.heat_after_exp(0.0, 1e-3, 1000.0, 0.0, 1.0) - 1.0).abs() < 1e-6, "{w}");
        for (h, i0, r) in [(2e-3, 4800.0, 2.4e6), (1e-5, 600.0, 1e5), (0.8, 400.0, 100.0)] {
            let exact = p.heat_after_linear(5e3, h, i0, r);
            let numeric = heat_numeric(&p, 5e3, h, |s| i0 - r * s);
            assert!((exact / numeric - 1.0).abs() < 1e-9, "{exact} vs {numeric}");
        }
        // the melting instant of a constant current from cold is the curve's pre-arcing time
        let i = 2_000.0;
        let t = melt_time_s(1.0, p.pre_arcing_i2t_a2s, |x| p.heat_after_exp(0.0, x, i, 0.0, 1.0)).unwrap();
        assert!((t / p.pre_arcing_time_s(i).unwrap() - 1.0).abs() < 1e-10, "{t}");
        assert_eq!(melt_time_s(1e-3, p.pre_arcing_i2t_a2s, |x| p.heat_after_exp(0.0, x, i, 0.0, 1.0)), None);
        assert!(FuseParams { resistance_mohm: -1.0, ..p }.validate().is_err());
    }

    #[test]
    fn unphysical_params_are_refused() {
        assert!(FuseParams::default().validate().is_ok());
        let bad = FuseParams { min_fusing_ratio: 0.9, ..FuseParams::default() };
        assert_eq!(bad.validate().unwrap_err().name, "fuse.min_fusing_ratio");
        assert!(FuseParams { rating_a: -1.0, ..FuseParams::default() }.validate().is_err());
    }
}
