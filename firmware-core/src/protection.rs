//! Protection: a threshold must be crossed for longer than its delay to trip;
//! a tripped function holds until its release condition (hysteresis) is met
//! or a clear command finds its condition gone.

use crate::time::{Duration, Instant};

/// One delayed, latching protection function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DelayedTrip {
    /// When the current uninterrupted excursion beyond the threshold began.
    beyond_since: Option<Instant>,
    tripped: bool,
}

impl DelayedTrip {
    /// Updates with this sample's conditions; returns whether the function is tripped.
    ///
    /// - `beyond`: the value is beyond the trip threshold.
    /// - `released`: the value is back inside the release threshold (hysteresis).
    pub fn update(&mut self, now: Instant, beyond: bool, released: bool, delay: Duration) -> bool {
        if beyond {
            let since = *self.beyond_since.get_or_insert(now);
            if now.saturating_since(since) >= delay {
                self.tripped = true;
            }
        } else {
            self.beyond_since = None;
            if self.tripped && released {
                self.tripped = false;
            }
        }
        self.tripped
    }

    /// When this function would trip if the excursion continues (for `poll_at`).
    pub fn trips_at(&self, delay: Duration) -> Option<Instant> {
        match (self.tripped, self.beyond_since) {
            (false, Some(since)) => Some(since + delay),
            _ => None,
        }
    }

    pub const fn is_tripped(&self) -> bool {
        self.tripped
    }

    /// Clears the latch if the trip condition has gone (`beyond` false).
    pub fn clear(&mut self, beyond: bool) {
        if !beyond {
            *self = DelayedTrip::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DELAY: Duration = Duration::from_millis(2_000);

    #[test]
    fn trips_only_after_the_delay() {
        let mut t = DelayedTrip::default();
        let ms = Instant::from_millis;
        assert!(!t.update(ms(0), true, false, DELAY));
        assert!(!t.update(ms(1_999), true, false, DELAY));
        assert_eq!(t.trips_at(DELAY), Some(ms(2_000)));
        assert!(t.update(ms(2_000), true, false, DELAY));
    }

    #[test]
    fn a_short_excursion_restarts_the_delay() {
        let mut t = DelayedTrip::default();
        let ms = Instant::from_millis;
        t.update(ms(0), true, false, DELAY);
        t.update(ms(1_500), false, false, DELAY);
        assert!(!t.update(ms(1_600), true, false, DELAY));
        assert!(!t.update(ms(3_000), true, false, DELAY));
        assert!(t.update(ms(3_600), true, false, DELAY));
    }

    #[test]
    fn holds_until_released_or_cleared() {
        let mut t = DelayedTrip::default();
        t.update(Instant::from_millis(0), true, false, Duration::ZERO);
        assert!(t.update(Instant::from_millis(1), false, false, DELAY), "between threshold and release: held");
        assert!(!t.update(Instant::from_millis(2), false, true, DELAY));
        t.update(Instant::from_millis(3), true, false, Duration::ZERO);
        t.clear(true);
        assert!(t.is_tripped(), "clear refused while the condition holds");
        t.clear(false);
        assert!(!t.is_tripped());
    }

    proptest! {
        /// If the condition holds continuously for longer than the delay, the function trips;
        /// it never releases while the condition holds; it never trips before the delay.
        #[test]
        fn delay_invariants(
            steps in proptest::collection::vec((1u64..500, any::<bool>(), any::<bool>()), 1..400),
            delay_ms in 0u64..3_000,
        ) {
            let delay = Duration::from_millis(delay_ms);
            let mut t = DelayedTrip::default();
            let mut now = Instant::ZERO;
            let mut beyond_since: Option<Instant> = None;
            let mut was_tripped = false;
            for (dt, beyond, released) in steps {
                now += Duration::from_millis(dt);
                let released = released && !beyond;
                if beyond { beyond_since.get_or_insert(now); } else { beyond_since = None; }
                let tripped = t.update(now, beyond, released, delay);
                if let Some(since) = beyond_since {
                    if now - since >= delay { prop_assert!(tripped, "held {:?} ≥ delay {:?}", now - since, delay); }
                    if was_tripped { prop_assert!(tripped, "released while the condition holds"); }
                    if !was_tripped && now - since < delay { prop_assert!(!tripped, "tripped early"); }
                }
                was_tripped = tripped;
            }
        }
    }
}
