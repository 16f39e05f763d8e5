//! Exact integer charge and energy accumulation.
//!
//! Each sample adds `value × dt` (µA × µs, or µW × µs) to a remainder; whole
//! micro-amp-hours (micro-watt-hours) are carried out of it into a 64-bit
//! count. Nothing is rounded away: the remainder keeps every µA·µs, so ten
//! years of 1 kSPS counting lose nothing, and a u64 of µAh holds 1.8·10¹³ Ah.

/// µA·µs (or µW·µs) in one µAh (µWh).
pub const UNITS_PER_MICRO_HOUR: i64 = 3_600_000_000;

/// Signed exact accumulator of a quantity per time (charge in µAh, energy in µWh).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accumulator {
    /// Whole micro-hours (µAh or µWh).
    micro_hours: i64,
    /// Remainder in value-units × µs, always in `0..UNITS_PER_MICRO_HOUR`.
    remainder: i64,
}

impl Accumulator {
    pub const fn new() -> Self {
        Accumulator { micro_hours: 0, remainder: 0 }
    }

    /// Starts from a whole number of micro-hours.
    pub const fn from_micro_hours(micro_hours: i64) -> Self {
        Accumulator { micro_hours, remainder: 0 }
    }

    /// Adds `value` (µA or µW) held for `dt_us` microseconds.
    ///
    /// One call adds at most |i32::MIN| × u32::MAX ≈ 9.2·10¹⁸, which fits an
    /// i64 together with the remainder; the carry saturates after 10¹² years.
    pub fn add(&mut self, value: i32, dt_us: u32) {
        let product = i64::from(value) * i64::from(dt_us);
        let sum = self.remainder.saturating_add(product);
        let carry = sum.div_euclid(UNITS_PER_MICRO_HOUR);
        self.remainder = sum.rem_euclid(UNITS_PER_MICRO_HOUR);
        self.micro_hours = self.micro_hours.saturating_add(carry);
    }

    /// Whole micro-hours counted (rounded towards −∞).
    pub const fn micro_hours(&self) -> i64 {
        self.micro_hours
    }

    /// The sub-µAh remainder in value-units × µs.
    pub const fn remainder(&self) -> i64 {
        self.remainder
    }

    /// Limits the count to `[min, max]` micro-hours (e.g. a SOC counter between
    /// empty and full); the remainder is dropped when a limit is hit.
    pub fn clamp(&mut self, min: i64, max: i64) {
        if self.micro_hours < min {
            *self = Self::from_micro_hours(min);
        } else if self.micro_hours >= max {
            *self = Self::from_micro_hours(max);
        }
    }
}

/// Unsigned total that only grows (total charged or discharged).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Total(Accumulator);

impl Total {
    pub const fn new() -> Self {
        Total(Accumulator::new())
    }
    /// Adds a non-negative `value` (negative values are ignored).
    pub fn add(&mut self, value: i32, dt_us: u32) {
        if value > 0 {
            self.0.add(value, dt_us);
        }
    }
    pub const fn micro_hours(&self) -> u64 {
        // Never negative: only positive values are added.
        self.0.micro_hours().unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_amp_for_one_hour_is_exactly_one_ah() {
        let mut acc = Accumulator::new();
        for _ in 0..3_600_000 {
            acc.add(1_000_000, 1_000); // 1 A for 1 ms
        }
        assert_eq!(acc.micro_hours(), 1_000_000);
        assert_eq!(acc.remainder(), 0);
    }

    #[test]
    fn negative_counting_is_exact_and_symmetric() {
        let mut acc = Accumulator::from_micro_hours(10);
        acc.add(-1, 1); // −1 µA·µs
        assert_eq!(acc.micro_hours(), 9);
        assert_eq!(acc.remainder(), UNITS_PER_MICRO_HOUR - 1);
        acc.add(1, 1);
        assert_eq!(acc, Accumulator::from_micro_hours(10));
    }

    /// Ten years at 1 kSPS with an awkward current (1 mA resolution, 250 A
    /// full scale) lose nothing: the count equals the exact closed form.
    /// Fast-forwarded: the per-sample step is applied in bulk with the same
    /// integer arithmetic the per-sample call uses, then finished sample by sample.
    #[test]
    fn ten_years_at_1ksps_lose_nothing() {
        let samples: u64 = 10 * 365 * 24 * 3600 * 1000;
        let current_ua: i32 = 123_457; // 0.123457 A
        let dt_us: u32 = 1_000;
        let mut acc = Accumulator::new();
        // Fast forward: all but the last million samples as one exact jump
        // (the accumulator is linear, so k samples == one product k·I·dt).
        let tail: u64 = 1_000_000;
        let bulk = (samples - tail) as i128 * current_ua as i128 * dt_us as i128;
        let whole = (bulk / UNITS_PER_MICRO_HOUR as i128) as i64;
        let rem = (bulk % UNITS_PER_MICRO_HOUR as i128) as i64;
        acc = Accumulator { micro_hours: acc.micro_hours + whole, remainder: rem };
        for _ in 0..tail {
            acc.add(current_ua, dt_us);
        }
        let exact = samples as i128 * current_ua as i128 * dt_us as i128;
        let total = acc.micro_hours() as i128 * UNITS_PER_MICRO_HOUR as i128 + acc.remainder() as i128;
        assert_eq!(total, exact);
        // 0.123457 A × 87 600 h = 10 814.8332 Ah
        assert_eq!(acc.micro_hours(), 10_814_833_200);
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let mut acc = Accumulator::from_micro_hours(i64::MAX - 1);
        acc.add(i32::MAX, u32::MAX);
        acc.add(i32::MAX, u32::MAX);
        assert_eq!(acc.micro_hours(), i64::MAX);
        let mut acc = Accumulator::from_micro_hours(i64::MIN + 1);
        acc.add(i32::MIN, u32::MAX);
        acc.add(i32::MIN, u32::MAX);
        assert_eq!(acc.micro_hours(), i64::MIN);
    }
}
