//! Protection: one table row per function (threshold, release, delay, the
//! path it opens); every row is a [`DelayedTrip`]. A threshold must be
//! crossed for longer than its delay to trip; a tripped function holds until
//! its release condition (hysteresis, or a retry time) is met or a clear
//! command finds its condition gone. The outputs are a pure function of which
//! rows are tripped ([`Protection::paths_open`]): every fault opens the path it
//! protects.

use crate::map::faults;
use crate::measure::Measurements;
use crate::settings::Settings;
use crate::time::{Duration, Instant};

/// Paths a protection function opens.
pub mod path {
    /// The main switch (MOSFETs): everything.
    pub const SWITCH: u8 = 1 << 0;
    /// The LVP control output: the load.
    pub const LOAD: u8 = 1 << 1;
    /// The OVP control output: the charger.
    pub const CHARGER: u8 = 1 << 2;
    /// The aux output.
    pub const AUX: u8 = 1 << 3;
}

/// The protection functions, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Function {
    Lvp,
    Ovp,
    LvpInput,
    OvpInput,
    Occ,
    Ocd,
    Otc,
    Utc,
    Otd,
    Utd,
    ShortCircuit,
    AuxOvercurrent,
}

/// One row of the protection table: what a function is and what it opens.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub function: Function,
    /// Its bit in the `faults` register (and its code in the fault log: the bit number).
    pub fault: u16,
    /// The paths it opens while tripped ([`path`]).
    pub opens: u8,
}

/// The protection table.
pub const TABLE: [Row; 12] = [
    Row { function: Function::Lvp, fault: faults::LVP, opens: path::SWITCH | path::LOAD },
    Row { function: Function::Ovp, fault: faults::OVP, opens: path::SWITCH | path::CHARGER },
    Row { function: Function::LvpInput, fault: faults::LVP_INPUT, opens: path::LOAD },
    Row { function: Function::OvpInput, fault: faults::OVP_INPUT, opens: path::CHARGER },
    Row { function: Function::Occ, fault: faults::OCC, opens: path::SWITCH | path::CHARGER },
    Row { function: Function::Ocd, fault: faults::OCD, opens: path::SWITCH | path::LOAD },
    Row { function: Function::Otc, fault: faults::OTC, opens: path::CHARGER },
    Row { function: Function::Utc, fault: faults::UTC, opens: path::CHARGER },
    Row { function: Function::Otd, fault: faults::OTD, opens: path::SWITCH | path::LOAD | path::CHARGER },
    Row { function: Function::Utd, fault: faults::UTD, opens: path::LOAD },
    Row {
        function: Function::ShortCircuit,
        fault: faults::SHORT_CIRCUIT,
        opens: path::SWITCH | path::LOAD | path::CHARGER,
    },
    Row { function: Function::AuxOvercurrent, fault: faults::AUX_OVERCURRENT, opens: path::AUX },
];

/// The LiPro control inputs are debounced this long.
pub const INPUT_DEBOUNCE: Duration = Duration::from_millis(100);
/// The aux driver's over-current latch is retried after this long.
pub const AUX_RETRY: Duration = Duration::from_secs(10);

/// What the protection functions look at in one poll.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    pub meas: Measurements,
    pub lvp_input_ok: bool,
    pub ovp_input_ok: bool,
    pub sc_latched: bool,
    pub aux_overcurrent: bool,
}

/// A function's trip and release condition and delay for the present
/// measurements and settings: (beyond the threshold, released, delay).
fn condition(f: Function, c: &Conditions, s: &Settings, trip: &DelayedTrip, now: Instant) -> (bool, bool, Duration) {
    let v = c.meas.voltage_mv();
    let i_ma = c.meas.current_ma();
    let t = i32::from(c.meas.temperature_dc);
    let hyst = i32::from(s.temp_hysteresis_dc);
    let ms = |d: u16| Duration::from_millis(u64::from(d));
    let retry_s = |r: u16| r != 0 && trip.tripped_for(now) >= Duration::from_secs(u64::from(r));
    match f {
        Function::Lvp => (v < i32::from(s.lvp_mv), v > i32::from(s.lvp_release_mv), ms(s.lvp_delay_ms)),
        Function::Ovp => (v > i32::from(s.ovp_mv), v < i32::from(s.ovp_release_mv), ms(s.ovp_delay_ms)),
        Function::LvpInput => (!c.lvp_input_ok, c.lvp_input_ok, INPUT_DEBOUNCE),
        Function::OvpInput => (!c.ovp_input_ok, c.ovp_input_ok, INPUT_DEBOUNCE),
        Function::Occ => (i_ma > i32::from(s.occ_da) * 100, retry_s(s.oc_retry_s), ms(s.occ_delay_ms)),
        Function::Ocd => (i_ma < -i32::from(s.ocd_da) * 100, retry_s(s.oc_retry_s), ms(s.ocd_delay_ms)),
        Function::Otc => (t > i32::from(s.otc_dc), t < i32::from(s.otc_dc) - hyst, ms(s.temp_delay_ms)),
        Function::Utc => (t < i32::from(s.utc_dc), t > i32::from(s.utc_dc) + hyst, ms(s.temp_delay_ms)),
        Function::Otd => (t > i32::from(s.otd_dc), t < i32::from(s.otd_dc) - hyst, ms(s.temp_delay_ms)),
        Function::Utd => (t < i32::from(s.utd_dc), t > i32::from(s.utd_dc) + hyst, ms(s.temp_delay_ms)),
        // The latch is the hardware's: it trips at once; its release is the retry policy's.
        Function::ShortCircuit => (c.sc_latched, false, Duration::ZERO),
        Function::AuxOvercurrent => (c.aux_overcurrent, trip.tripped_for(now) >= AUX_RETRY, Duration::ZERO),
    }
}

/// The state of every protection function, and the short-circuit retry policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Protection {
    trips: [DelayedTrip; TABLE.len()],
    /// Automatic short-circuit retries since the last manual reset.
    sc_retries: u16,
    /// The hardware latch should be reset (a pulse on its reset line) this poll.
    sc_reset: bool,
}

impl Protection {
    /// Evaluates every row; calls `on_trip` for each function that tripped in this poll.
    pub fn update(&mut self, now: Instant, c: &Conditions, s: &Settings, mut on_trip: impl FnMut(&Row)) {
        self.sc_reset = false;
        for (row, trip) in TABLE.iter().zip(self.trips.iter_mut()) {
            let was = trip.is_tripped();
            let (beyond, released, delay) = condition(row.function, c, s, trip, now);
            let mut beyond = beyond;
            if row.function == Function::ShortCircuit && was && s.sc_auto_retry != 0 {
                // Retry policy: after sc_retry_s, reset the hardware latch (up to sc_max_retries times).
                if self.sc_retries < s.sc_max_retries
                    && trip.tripped_for(now) >= Duration::from_secs(u64::from(s.sc_retry_s))
                {
                    self.sc_retries += 1;
                    self.sc_reset = true;
                    *trip = DelayedTrip::default();
                    beyond = false;
                }
            }
            let now_tripped = trip.update(now, beyond, released, delay);
            if now_tripped && !was {
                on_trip(row);
            }
        }
    }

    /// Fault bits of the tripped functions.
    pub fn faults(&self) -> u16 {
        TABLE.iter().zip(&self.trips).filter(|(_, t)| t.is_tripped()).fold(0, |f, (r, _)| f | r.fault)
    }

    /// Paths opened by the tripped functions ([`path`] bits).
    pub fn paths_open(&self) -> u8 {
        TABLE.iter().zip(&self.trips).filter(|(_, t)| t.is_tripped()).fold(0, |p, (r, _)| p | r.opens)
    }

    /// Whether the hardware short-circuit latch is to be reset now.
    pub fn sc_latch_reset(&self) -> bool {
        self.sc_reset
    }

    /// Clears every function whose condition has gone (a manual reset);
    /// resets the short-circuit latch and its retry count.
    pub fn clear(&mut self, now: Instant, c: &Conditions, s: &Settings) {
        for (row, trip) in TABLE.iter().zip(self.trips.iter_mut()) {
            if row.function == Function::ShortCircuit {
                if trip.is_tripped() {
                    self.sc_reset = true;
                    self.sc_retries = 0;
                    *trip = DelayedTrip::default();
                }
                continue;
            }
            let (beyond, _, _) = condition(row.function, c, s, trip, now);
            trip.clear(beyond);
        }
    }

    /// The earliest time a pending delay expires (for `poll_at`).
    pub fn next_deadline(&self, c: &Conditions, s: &Settings, now: Instant) -> Option<Instant> {
        TABLE.iter().zip(&self.trips).filter_map(|(row, t)| t.trips_at(condition(row.function, c, s, t, now).2)).min()
    }
}

/// One delayed, latching protection function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DelayedTrip {
    /// When the current uninterrupted excursion beyond the threshold began.
    beyond_since: Option<Instant>,
    tripped: bool,
    /// When it last tripped.
    tripped_at: Instant,
}

impl DelayedTrip {
    /// Updates with this sample's conditions; returns whether the function is tripped.
    ///
    /// - `beyond`: the value is beyond the trip threshold.
    /// - `released`: the value is back inside the release threshold (hysteresis).
    pub fn update(&mut self, now: Instant, beyond: bool, released: bool, delay: Duration) -> bool {
        if beyond {
            let since = *self.beyond_since.get_or_insert(now);
            if !self.tripped && now.saturating_since(since) >= delay {
                self.tripped = true;
                self.tripped_at = now;
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

    /// How long it has been tripped (zero if it is not).
    pub fn tripped_for(&self, now: Instant) -> Duration {
        if self.tripped { now.saturating_since(self.tripped_at) } else { Duration::ZERO }
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

#[cfg(test)]
mod table_tests {
    use super::*;
    use crate::settings::Variant;
    use proptest::prelude::*;

    fn cond(voltage_mv: i32, current_ma: i32, temp_dc: i16) -> Conditions {
        Conditions {
            meas: Measurements {
                current_ua: current_ma * 1_000,
                voltage_uv: voltage_mv * 1_000,
                temperature_dc: temp_dc,
                saturated: false,
            },
            lvp_input_ok: true,
            ovp_input_ok: true,
            sc_latched: false,
            aux_overcurrent: false,
        }
    }

    #[test]
    fn every_fault_bit_has_one_row_and_every_row_opens_something() {
        for (i, a) in TABLE.iter().enumerate() {
            assert_ne!(a.opens, 0, "{:?}", a.function);
            for b in &TABLE[i + 1..] {
                assert_ne!(a.fault, b.fault);
            }
        }
    }

    #[test]
    fn no_charging_below_zero_celsius_but_discharging_goes_on() {
        let s = Settings::defaults(Variant::V12);
        let mut p = Protection::default();
        let c = cond(13_000, -10_000, -50);
        for ms in 0..=5_000 {
            p.update(Instant::from_millis(ms), &c, &s, |_| {});
        }
        assert_eq!(p.faults(), faults::UTC);
        assert_eq!(p.paths_open(), path::CHARGER);
        // Warm again past the hysteresis: released.
        p.update(Instant::from_millis(5_001), &cond(13_000, 0, 60), &s, |_| {});
        assert_eq!(p.faults(), 0);
    }

    #[test]
    fn over_current_retries_after_its_time() {
        let s = Settings::defaults(Variant::V12);
        let mut p = Protection::default();
        let mut trips = 0;
        p.update(Instant::ZERO, &cond(13_000, -300_000, 250), &s, |_| trips += 1);
        p.update(Instant::from_millis(1_000), &cond(13_000, -300_000, 250), &s, |_| trips += 1);
        assert_eq!((p.faults(), trips), (faults::OCD, 1));
        assert_eq!(p.paths_open(), path::SWITCH | path::LOAD);
        p.update(Instant::from_secs(30), &cond(13_000, 0, 250), &s, |_| {});
        assert_eq!(p.faults(), faults::OCD, "29 s after the trip: held");
        p.update(Instant::from_millis(31_000), &cond(13_000, 0, 250), &s, |_| {});
        assert_eq!(p.faults(), 0);
    }

    #[test]
    fn short_circuit_manual_and_automatic_reset() {
        let mut s = Settings::defaults(Variant::V12);
        let mut p = Protection::default();
        let mut sc = cond(13_000, 0, 250);
        sc.sc_latched = true;
        p.update(Instant::ZERO, &sc, &s, |_| {});
        assert_eq!(p.paths_open(), path::SWITCH | path::LOAD | path::CHARGER);
        p.update(Instant::from_secs(100), &sc, &s, |_| {});
        assert!(!p.sc_latch_reset(), "manual policy: no automatic reset");
        p.clear(Instant::from_secs(100), &sc, &s);
        assert!(p.sc_latch_reset());
        assert_eq!(p.faults(), 0);

        s.sc_auto_retry = 1;
        s.sc_max_retries = 2;
        let mut resets = 0;
        for t in 101..200 {
            p.update(Instant::from_secs(t), &sc, &s, |_| {});
            resets += u32::from(p.sc_latch_reset());
        }
        assert_eq!(resets, 2, "two automatic retries, then it waits for a manual reset");
        assert_eq!(p.faults(), faults::SHORT_CIRCUIT);
    }

    proptest! {
        /// For every function: if its condition holds longer than its delay, the
        /// path it protects is open; it is never re-closed while the condition holds.
        #[test]
        fn any_fault_held_past_its_delay_opens_its_path(
            steps in proptest::collection::vec((0i32..70_000, -400_000i32..400_000, -300i16..800, any::<bool>(), any::<bool>()), 1..150),
            dt_ms in 1u64..400,
        ) {
            let v = Variant::V48;
            let s = Settings::defaults(v);
            let mut p = Protection::default();
            let mut held: [Option<Instant>; TABLE.len()] = [None; TABLE.len()];
            let mut now = Instant::ZERO;
            for (mv, ma, t, lvp_ok, ovp_ok) in steps {
                now += Duration::from_millis(dt_ms);
                let mut c = cond(mv, ma, t);
                c.lvp_input_ok = lvp_ok;
                c.ovp_input_ok = ovp_ok;
                p.update(now, &c, &s, |_| {});
                for (k, row) in TABLE.iter().enumerate() {
                    let (beyond, _, delay) = condition(row.function, &c, &s, &p.trips[k], now);
                    if beyond { held[k].get_or_insert(now); } else { held[k] = None; }
                    if let Some(since) = held[k] {
                        if now - since >= delay {
                            prop_assert!(p.faults() & row.fault != 0, "{:?} held {:?}", row.function, now - since);
                            prop_assert_eq!(p.paths_open() & row.opens, row.opens);
                        }
                    }
                }
                let open = p.paths_open();
                prop_assert!(open & path::SWITCH == 0 || p.faults() != 0);
            }
        }
    }
}
