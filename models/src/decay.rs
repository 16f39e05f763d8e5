//! The exponential decay factor of an RC pair or first-order lag over one
//! step, `exp(−dt/τ)` ([`decay_factor`], public: estimators that run the
//! models' equations use the same one), and its cache for fixed-step loops.

/// `exp(-dt / tau)` for the last `dt` seen, so that a loop with a fixed step
/// evaluates `exp` once, not once per step.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decay {
    tau_s: f64,
    dt_s: f64,
    factor: f64,
}

impl Decay {
    /// A cache for the time constant `tau_s` (s). `tau_s <= 0` means no
    /// memory: the factor is 0 for every positive step.
    pub(crate) fn new(tau_s: f64) -> Self {
        Self { tau_s, dt_s: 0.0, factor: 1.0 }
    }

    /// `exp(-dt_s / tau_s)`, recomputed only when `dt_s` differs from the
    /// previous call's.
    #[inline]
    pub(crate) fn factor(&mut self, dt_s: f64) -> f64 {
        // Compare bit patterns: exact equality is what makes the cache valid,
        // and it also treats NaN as "changed" (NaN != NaN) by recomputing.
        if dt_s.to_bits() != self.dt_s.to_bits() {
            self.dt_s = dt_s;
            self.factor = decay_factor(dt_s, self.tau_s);
        }
        self.factor
    }
}

/// `exp(-dt/tau)`, with `tau <= 0` treated as an instantaneous response.
#[inline]
pub fn decay_factor(dt_s: f64, tau_s: f64) -> f64 {
    if dt_s == 0.0 {
        // exp(−0/τ) is exactly 1 (and so is the τ ≤ 0 case): no `exp` call.
        1.0
    } else if tau_s > 0.0 {
        (-dt_s / tau_s).exp()
    } else if dt_s > 0.0 {
        0.0
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caches_and_recomputes() {
        let mut d = Decay::new(10.0);
        assert_eq!(d.factor(0.0), 1.0);
        assert_eq!(d.factor(1.0), (-0.1f64).exp());
        assert_eq!(d.factor(1.0), (-0.1f64).exp());
        assert_eq!(d.factor(10.0), (-1.0f64).exp());
        let mut z = Decay::new(0.0);
        assert_eq!(z.factor(1e-6), 0.0);
    }
}
