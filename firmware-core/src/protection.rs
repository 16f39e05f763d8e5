//! Protection: one const row per function ([`TABLE`], after foxBMS's
//! `diag_cfg.c`): what trips it (a quantity beyond a level, or a digital input),
//! its delay, how it releases (a release level, a hysteresis, a retry time, a
//! hardware latch), its severity, the value the fault log records, and the paths
//! it opens. One state machine ([`Protection::update`], a [`DelayedTrip`] per row)
//! acts on the rows and knows no function by name: a condition must hold for
//! longer than its delay to trip; a tripped function holds until its release
//! condition is met or a clear command finds its condition gone. The outputs are
//! a pure function of which rows are tripped ([`Protection::paths_open`]): every
//! fault opens the path it protects.
//!
//! Levels, delays and retry times are settings: a row names the setting (its
//! register, [`RegId`]) and the factor from the register's unit to the
//! quantity's, so the table reads like the settings table of the docs.

use crate::diag::LogEntry;
use crate::map::{RegId, faults};
use crate::measure::Measurements;
use crate::settings::{Settings, Variant};
use crate::time::{Duration, Instant};

/// Paths a protection function opens.
///
/// The main switch is two back-to-back MOSFET banks. The discharge bank is on
/// while the switch is enabled and the LVP output is on, the charge bank while
/// the switch is enabled and the OVP output is on: a bank that is off blocks its
/// direction only, the other direction flows through its body diodes.
pub mod path {
    /// The main switch (MOSFETs): everything, both ways.
    pub const SWITCH: u8 = 1 << 0;
    /// The LVP control output (the load) and the discharge bank: discharging.
    pub const LOAD: u8 = 1 << 1;
    /// The OVP control output (the charger) and the charge bank: charging.
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
    AuxOvervoltage,
}

/// How grave a trip is (foxBMS's severity): what it does besides opening its paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The main switch opens too: the battery is cut off both ways.
    Fatal,
    /// The battery is cut off in one direction: the row's paths ([`path::LOAD`]:
    /// discharging, [`path::CHARGER`]: charging) open, with that direction's bank of
    /// the main switch; the other direction stays open, so the current that undoes
    /// the fault can flow (a charger recovers a pack cut off by LVP, a load one cut
    /// off by OVP) — issue 16, the LVP lock-out.
    OneWay,
    /// Only the row's control outputs (or the aux output) switch: the charger or the
    /// load is told to stop, the main switch stays closed.
    Warning,
}

/// A measured quantity, in the unit of its register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    /// Battery voltage, mV.
    VoltageMv,
    /// Battery current, mA, positive into the battery.
    CurrentMa,
    /// Battery temperature, 0.1 °C.
    TemperatureDc,
}

/// A digital input that reports a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// The LiPro LVP control input lost its control voltage (a cell under-voltage).
    LvpInputLost,
    /// The LiPro OVP control input lost its control voltage (a cell over-voltage).
    OvpInputLost,
    /// The hardware short-circuit comparator latched the switch open.
    ScLatched,
    /// The aux output driver reports over-current.
    AuxOvercurrent,
}

/// A datasheet rating of the board's variant (a fixed level, not a setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rating {
    /// The aux output's max switching voltage, mV (datasheet, "Additional (aux)
    /// output": 15 / 30 / 60 V).
    AuxMaxSwitchingMv,
}

impl Rating {
    /// The rating of `v`, in its quantity's unit.
    pub const fn value(self, v: Variant) -> i64 {
        match self {
            Rating::AuxMaxSwitchingMv => v.aux_max_switching_mv() as i64,
        }
    }
}

/// A level, in the quantity's unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A setting's raw register value times `scale`.
    Setting { setting: RegId, scale: i32 },
    /// A rating of the variant.
    Rating(Rating),
}

/// A time: a setting times a unit, or a fixed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    Setting(RegId, Duration),
    Fixed(Duration),
}

/// What trips a function (once it has held for the row's delay).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trip {
    Above(Quantity, Level),
    Below(Quantity, Level),
    Signal(Signal),
}

/// How a tripped function releases by itself (besides the clear command, which
/// releases every function whose trip condition has gone). Releases are considered
/// only while the trip condition is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The quantity back above this level (a release level of its own).
    Above(Level),
    /// The quantity back below this level.
    Below(Level),
    /// The quantity this far back inside the trip level.
    Hysteresis(Level),
    /// As soon as the trip condition is gone.
    Cleared,
    /// This long after the trip; a setting of 0 means never (the clear command only).
    After(Time),
    /// A hardware latch holds it: a reset pulse releases it, sent by the clear
    /// command, or automatically `retry` after the trip, at most `max` times in a row
    /// (setting) while `enabled` (setting) is not 0.
    Latch { enabled: RegId, retry: Time, max: RegId },
}

/// What the fault log records when a function trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    /// Battery voltage, 10 mV.
    Voltage10mV,
    /// Battery current, 0.1 A.
    CurrentDa,
    /// Battery temperature, 0.1 °C.
    TemperatureDc,
}

/// One row of the protection table: everything about one function.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub function: Function,
    /// Its bit in the `faults` register (and its code in the fault log: the bit number).
    pub fault: u16,
    pub severity: Severity,
    pub trip: Trip,
    /// How long the trip condition must hold.
    pub delay: Time,
    pub release: Release,
    pub logged: Logged,
    /// The control outputs it opens while tripped ([`path`]); a [`Severity::Fatal`]
    /// row opens [`path::SWITCH`] as well ([`Row::paths`]).
    pub opens: u8,
}

/// The LiPro control inputs are debounced this long.
pub const INPUT_DEBOUNCE: Duration = Duration::from_millis(100);
/// The aux driver's over-current latch is retried after this long.
pub const AUX_RETRY: Duration = Duration::from_secs(10);

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);
const fn setting(setting: RegId, scale: i32) -> Level {
    Level::Setting { setting, scale }
}
const HYSTERESIS: Release = Release::Hysteresis(setting(RegId::TempHysteresis, 1));
const TEMP_DELAY: Time = Time::Setting(RegId::TempDelay, MS);
const OC_RETRY: Release = Release::After(Time::Setting(RegId::OcRetry, S));

use Quantity::{CurrentMa, TemperatureDc, VoltageMv};
use Severity::{Fatal, OneWay, Warning};

/// How many protection functions there are: [`TABLE`]'s rows.
pub const FUNCTIONS: usize = 13;

/// The protection table, in fault-bit order: one table in flash that every use refers to.
#[rustfmt::skip]
pub static TABLE: [Row; FUNCTIONS] = [
    // LVP and OVP cut off one direction (issue 16): a charger recovers a pack cut off for
    // under-voltage, a load one cut off for over-voltage, whatever the release level.
    Row { function: Function::Lvp, fault: faults::LVP, severity: OneWay,
          trip: Trip::Below(VoltageMv, setting(RegId::LvpThreshold, 1)), delay: Time::Setting(RegId::LvpDelay, MS),
          release: Release::Above(setting(RegId::LvpRelease, 1)), logged: Logged::Voltage10mV, opens: path::LOAD },
    Row { function: Function::Ovp, fault: faults::OVP, severity: OneWay,
          trip: Trip::Above(VoltageMv, setting(RegId::OvpThreshold, 1)), delay: Time::Setting(RegId::OvpDelay, MS),
          release: Release::Below(setting(RegId::OvpRelease, 1)), logged: Logged::Voltage10mV, opens: path::CHARGER },
    Row { function: Function::LvpInput, fault: faults::LVP_INPUT, severity: Warning,
          trip: Trip::Signal(Signal::LvpInputLost), delay: Time::Fixed(INPUT_DEBOUNCE),
          release: Release::Cleared, logged: Logged::CurrentDa, opens: path::LOAD },
    Row { function: Function::OvpInput, fault: faults::OVP_INPUT, severity: Warning,
          trip: Trip::Signal(Signal::OvpInputLost), delay: Time::Fixed(INPUT_DEBOUNCE),
          release: Release::Cleared, logged: Logged::CurrentDa, opens: path::CHARGER },
    Row { function: Function::Occ, fault: faults::OCC, severity: Fatal,
          trip: Trip::Above(CurrentMa, setting(RegId::OccThreshold, 100)), delay: Time::Setting(RegId::OccDelay, MS),
          release: OC_RETRY, logged: Logged::CurrentDa, opens: path::CHARGER },
    Row { function: Function::Ocd, fault: faults::OCD, severity: Fatal,
          trip: Trip::Below(CurrentMa, setting(RegId::OcdThreshold, -100)), delay: Time::Setting(RegId::OcdDelay, MS),
          release: OC_RETRY, logged: Logged::CurrentDa, opens: path::LOAD },
    Row { function: Function::Otc, fault: faults::OTC, severity: Warning,
          trip: Trip::Above(TemperatureDc, setting(RegId::OtcThreshold, 1)), delay: TEMP_DELAY,
          release: HYSTERESIS, logged: Logged::TemperatureDc, opens: path::CHARGER },
    Row { function: Function::Utc, fault: faults::UTC, severity: Warning,
          trip: Trip::Below(TemperatureDc, setting(RegId::UtcThreshold, 1)), delay: TEMP_DELAY,
          release: HYSTERESIS, logged: Logged::TemperatureDc, opens: path::CHARGER },
    Row { function: Function::Otd, fault: faults::OTD, severity: Fatal,
          trip: Trip::Above(TemperatureDc, setting(RegId::OtdThreshold, 1)), delay: TEMP_DELAY,
          release: HYSTERESIS, logged: Logged::TemperatureDc, opens: path::LOAD | path::CHARGER },
    Row { function: Function::Utd, fault: faults::UTD, severity: Warning,
          trip: Trip::Below(TemperatureDc, setting(RegId::UtdThreshold, 1)), delay: TEMP_DELAY,
          release: HYSTERESIS, logged: Logged::TemperatureDc, opens: path::LOAD },
    // The latch is the hardware's: it trips at once (the switch opened in µs).
    Row { function: Function::ShortCircuit, fault: faults::SHORT_CIRCUIT, severity: Fatal,
          trip: Trip::Signal(Signal::ScLatched), delay: Time::Fixed(Duration::ZERO),
          release: Release::Latch { enabled: RegId::ScAutoRetry, retry: Time::Setting(RegId::ScRetry, S), max: RegId::ScMaxRetries },
          logged: Logged::CurrentDa, opens: path::LOAD | path::CHARGER },
    Row { function: Function::AuxOvercurrent, fault: faults::AUX_OVERCURRENT, severity: Warning,
          trip: Trip::Signal(Signal::AuxOvercurrent), delay: Time::Fixed(Duration::ZERO),
          release: Release::After(Time::Fixed(AUX_RETRY)), logged: Logged::CurrentDa, opens: path::AUX },
    // The aux driver is rated to the variant's max switching voltage: above it, off (issue 16).
    Row { function: Function::AuxOvervoltage, fault: faults::AUX_OVERVOLTAGE, severity: Warning,
          trip: Trip::Above(VoltageMv, Level::Rating(Rating::AuxMaxSwitchingMv)), delay: Time::Fixed(Duration::ZERO),
          release: Release::After(Time::Fixed(AUX_RETRY)), logged: Logged::Voltage10mV, opens: path::AUX },
];

/// What the protection functions look at in one poll.
#[derive(Clone, Copy, Debug)]
pub struct Conditions {
    /// The board's variant (its ratings, [`Level::Rating`]).
    pub variant: Variant,
    pub meas: Measurements,
    pub lvp_input_ok: bool,
    pub ovp_input_ok: bool,
    pub sc_latched: bool,
    pub aux_overcurrent: bool,
}

impl Conditions {
    fn quantity(&self, q: Quantity) -> i64 {
        i64::from(match q {
            VoltageMv => self.meas.voltage_mv(),
            CurrentMa => self.meas.current_ma(),
            TemperatureDc => i32::from(self.meas.temperature_dc),
        })
    }

    fn signal(&self, s: Signal) -> bool {
        match s {
            Signal::LvpInputLost => !self.lvp_input_ok,
            Signal::OvpInputLost => !self.ovp_input_ok,
            Signal::ScLatched => self.sc_latched,
            Signal::AuxOvercurrent => self.aux_overcurrent,
        }
    }
}

impl Level {
    /// The level for `s` on a board of `v`, in the quantity's unit.
    pub fn value(&self, s: &Settings, v: Variant) -> i64 {
        match *self {
            Level::Setting { setting, scale } => s.get(setting).unwrap_or(0).saturating_mul(i64::from(scale)),
            Level::Rating(r) => r.value(v),
        }
    }
}

impl Time {
    /// The time for `s`.
    pub fn value(&self, s: &Settings) -> Duration {
        match *self {
            Time::Setting(id, unit) => {
                Duration(u64::try_from(s.get(id).unwrap_or(0)).unwrap_or(0).saturating_mul(unit.0))
            }
            Time::Fixed(d) => d,
        }
    }
}

impl Logged {
    /// The value logged for `m`.
    pub fn value(&self, m: &Measurements) -> i16 {
        let v = match self {
            Logged::Voltage10mV => m.voltage_mv() / 10,
            Logged::CurrentDa => m.current_ma() / 100,
            Logged::TemperatureDc => i32::from(m.temperature_dc),
        };
        v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
    }
}

impl Row {
    /// Every path it opens while tripped: `opens`, and the main switch if it is fatal.
    pub const fn paths(&self) -> u8 {
        match self.severity {
            Fatal => self.opens | path::SWITCH,
            OneWay | Warning => self.opens,
        }
    }

    /// The fault-log entry of a trip at board time `time_s` with measurements `m`.
    pub fn log_entry(&self, time_s: u32, m: &Measurements) -> LogEntry {
        LogEntry { time_s, code: self.fault.trailing_zeros() as u16, value: self.logged.value(m) }
    }

    /// Whether the trip condition holds.
    fn beyond(&self, c: &Conditions, s: &Settings) -> bool {
        match self.trip {
            Trip::Above(q, level) => c.quantity(q) > level.value(s, c.variant),
            Trip::Below(q, level) => c.quantity(q) < level.value(s, c.variant),
            Trip::Signal(signal) => c.signal(signal),
        }
    }

    /// Whether a tripped function releases by itself now (if its condition is gone).
    fn released(&self, c: &Conditions, s: &Settings, trip: &DelayedTrip, now: Instant) -> bool {
        let level = |l: &Level| l.value(s, c.variant);
        match (self.release, self.trip) {
            (Release::Above(l), Trip::Above(q, _) | Trip::Below(q, _)) => c.quantity(q) > level(&l),
            (Release::Below(l), Trip::Above(q, _) | Trip::Below(q, _)) => c.quantity(q) < level(&l),
            (Release::Hysteresis(h), Trip::Above(q, l)) => c.quantity(q) < level(&l) - level(&h),
            (Release::Hysteresis(h), Trip::Below(q, l)) => c.quantity(q) > level(&l) + level(&h),
            (Release::Cleared, _) => true,
            (Release::After(t), _) => {
                let after = t.value(s);
                after > Duration::ZERO && trip.tripped_for(now) >= after
            }
            // A level release of a digital input: never by itself.
            (Release::Above(_) | Release::Below(_) | Release::Hysteresis(_), Trip::Signal(_)) => false,
            (Release::Latch { .. }, _) => false,
        }
    }
}

/// The state of every protection function, and of the hardware latch's retries.
///
/// A poll's work is proportional to what changed ([`Protection::update`]):
/// once per set of settings the table gives each quantity its *quiet band*,
/// the values (in the units the measurements carry: µV, µA, 0.1 °C) at which
/// no row on it is beyond ([`Quiet`]); a poll with no row tripped or pending,
/// every quantity inside its band and no fault input set changes nothing, so
/// it evaluates no row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Protection {
    trips: [DelayedTrip; FUNCTIONS],
    /// Automatic latch resets since the last clear command, per row ([`Release::Latch`]).
    retries: [u16; FUNCTIONS],
    /// A latch should be reset (a pulse on its reset line) this poll.
    latch_reset: bool,
    /// Rows tripped or with an excursion pending (bit `k`: row `k`): while one
    /// is, every row is evaluated.
    active: u16,
    /// Fault bits and paths of the tripped rows ([`Self::faults`], [`Self::paths_open`]).
    faults: u16,
    paths: u8,
    /// The quiet bands of the settings configured last.
    quiet: Option<Quiet>,
}

impl Protection {
    /// Evaluates every row, unless none can change; calls `on_trip` for each
    /// function that tripped in this poll.
    ///
    /// The same as evaluating every row of [`TABLE`] in table order, which a
    /// property test pins: a row that is neither tripped nor pending and whose
    /// condition does not hold is left as it is by its evaluation, so when
    /// that is true of every row (each quantity inside its quiet band, no fault
    /// input) the poll stops after three compares.
    pub fn update(&mut self, now: Instant, c: &Conditions, s: &Settings, on_trip: impl FnMut(&Row)) {
        self.configure(s, c.variant);
        self.update_configured(now, c, s, on_trip);
    }

    /// Derives the quiet bands of the settings `s` on a board of `v`: call it
    /// whenever the settings change (about as costly as a poll of every row).
    pub fn configure(&mut self, s: &Settings, v: Variant) {
        self.quiet = Some(Quiet::new(s, v));
    }

    /// [`Self::update`] on the bands [`Self::configure`] derived last, not
    /// derived again: `s` must be the settings configured last, which debug
    /// builds check. The board configures at start and after every change of
    /// its settings.
    pub fn update_configured(&mut self, now: Instant, c: &Conditions, s: &Settings, mut on_trip: impl FnMut(&Row)) {
        self.latch_reset = false;
        let quiet = match self.quiet {
            Some(q) => {
                debug_assert!(q == Quiet::new(s, c.variant), "protection not configured for these settings");
                q
            }
            None => *self.quiet.insert(Quiet::new(s, c.variant)),
        };
        if self.active == 0 && quiet.holds(c) {
            return;
        }
        let (mut active, mut faults, mut paths) = (0u16, 0u16, 0u8);
        for (i, ((row, trip), retries)) in
            TABLE.iter().zip(self.trips.iter_mut()).zip(self.retries.iter_mut()).enumerate()
        {
            let was = trip.is_tripped();
            let mut beyond = row.beyond(c, s);
            // What `DelayedTrip::update` reads: the release only of a tripped function whose
            // condition is gone, the delay only while the condition holds.
            let released = was && !beyond && row.released(c, s, trip, now);
            if let Release::Latch { enabled, retry, max } = row.release {
                let max = s.get(max).unwrap_or(0);
                if was
                    && s.get(enabled).unwrap_or(0) != 0
                    && i64::from(*retries) < max
                    && trip.tripped_for(now) >= retry.value(s)
                {
                    *retries += 1;
                    self.latch_reset = true;
                    *trip = DelayedTrip::default();
                    beyond = false;
                }
            }
            let delay = if beyond { row.delay.value(s) } else { Duration::ZERO };
            let now_tripped = trip.update(now, beyond, released, delay);
            if now_tripped && !was {
                on_trip(row);
            }
            if now_tripped {
                faults |= row.fault;
                paths |= row.paths();
            }
            if now_tripped || trip.beyond_since.is_some() {
                active |= 1 << i;
            }
        }
        (self.active, self.faults, self.paths) = (active, faults, paths);
    }

    /// Fault bits of the tripped functions.
    pub fn faults(&self) -> u16 {
        self.faults
    }

    /// Paths opened by the tripped functions ([`path`] bits).
    pub fn paths_open(&self) -> u8 {
        self.paths
    }

    /// Whether the hardware short-circuit latch is to be reset now.
    pub fn sc_latch_reset(&self) -> bool {
        self.latch_reset
    }

    /// Clears every function whose condition has gone (a manual reset); resets a
    /// tripped latch, whatever its condition, and its retry count.
    pub fn clear(&mut self, c: &Conditions, s: &Settings) {
        for ((row, trip), retries) in TABLE.iter().zip(self.trips.iter_mut()).zip(self.retries.iter_mut()) {
            if let Release::Latch { .. } = row.release {
                if trip.is_tripped() {
                    self.latch_reset = true;
                    *retries = 0;
                    *trip = DelayedTrip::default();
                }
                continue;
            }
            trip.clear(row.beyond(c, s));
        }
        let (mut active, mut faults, mut paths) = (0u16, 0u16, 0u8);
        for (i, (row, trip)) in TABLE.iter().zip(&self.trips).enumerate() {
            if trip.is_tripped() {
                faults |= row.fault;
                paths |= row.paths();
            }
            if trip.is_tripped() || trip.beyond_since.is_some() {
                active |= 1 << i;
            }
        }
        (self.active, self.faults, self.paths) = (active, faults, paths);
    }

    /// The earliest time a pending delay expires (for `poll_at`).
    pub fn next_deadline(&self, s: &Settings) -> Option<Instant> {
        // `trips_at(ZERO)`: when the pending excursion began, if one is pending.
        TABLE
            .iter()
            .zip(&self.trips)
            .filter_map(|(row, t)| Some(t.trips_at(Duration::ZERO)? + row.delay.value(s)))
            .min()
    }
}

impl Quantity {
    /// The largest value in the measurement's unit (µV, µA, 0.1 °C) that reads
    /// as at most `level` in the quantity's (µV → mV and µA → mA round half
    /// away from zero, [`crate::measure::div_round`]; monotonic, so `quantity >
    /// level` is `native > at_most(level)`).
    const fn at_most(self, level: i64) -> i64 {
        match self {
            VoltageMv | CurrentMa => {
                let base = level.saturating_mul(1_000);
                base.saturating_add(if level >= 0 { 499 } else { 500 })
            }
            TemperatureDc => level,
        }
    }

    /// The measurement in its own unit.
    fn native(self, m: &Measurements) -> i64 {
        match self {
            VoltageMv => i64::from(m.voltage_uv),
            CurrentMa => i64::from(m.current_ua),
            TemperatureDc => i64::from(m.temperature_dc),
        }
    }
}

impl Signal {
    const fn bit(self) -> u8 {
        match self {
            Signal::LvpInputLost => 1 << 0,
            Signal::OvpInputLost => 1 << 1,
            Signal::ScLatched => 1 << 2,
            Signal::AuxOvercurrent => 1 << 3,
        }
    }
}

impl Conditions {
    /// The fault inputs that are set ([`Signal::bit`]).
    fn signal_bits(&self) -> u8 {
        let bit = |on: bool, s: Signal| if on { s.bit() } else { 0 };
        bit(!self.lvp_input_ok, Signal::LvpInputLost)
            | bit(!self.ovp_input_ok, Signal::OvpInputLost)
            | bit(self.sc_latched, Signal::ScLatched)
            | bit(self.aux_overcurrent, Signal::AuxOvercurrent)
    }
}

/// A trip condition at a level, as a bound on the measurement's own value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bound {
    /// `quantity > level`: the native value above the bound.
    Above(i64),
    /// `quantity < level`: the native value below the bound.
    Below(i64),
}

impl Bound {
    /// The bound of `Trip::Above(q, level)` or `Trip::Below(q, level)` (`quantity <
    /// level` is `quantity ≤ level − 1`, i.e. `native < at_most(level − 1) + 1`).
    const fn of(above: bool, q: Quantity, level: i64) -> Bound {
        if above {
            Bound::Above(q.at_most(level))
        } else {
            Bound::Below(q.at_most(level.saturating_sub(1)).saturating_add(1))
        }
    }

    #[cfg(test)]
    fn holds(self, native: i64) -> bool {
        match self {
            Bound::Above(b) => native > b,
            Bound::Below(b) => native < b,
        }
    }
}

/// The quiet bands of one set of settings: per quantity (voltage, current,
/// temperature) the native values `lo..=hi` at which no row's trip
/// condition on it holds, and the fault inputs some row trips on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quiet {
    bands: [(i64, i64); 3],
    signals: u8,
}

impl Quiet {
    fn new(s: &Settings, v: Variant) -> Quiet {
        let mut q = Quiet { bands: [(i64::MIN, i64::MAX); 3], signals: 0 };
        for row in &TABLE {
            let (quantity, bound) = match row.trip {
                Trip::Above(quantity, l) => (quantity, Bound::of(true, quantity, l.value(s, v))),
                Trip::Below(quantity, l) => (quantity, Bound::of(false, quantity, l.value(s, v))),
                Trip::Signal(signal) => {
                    q.signals |= signal.bit();
                    continue;
                }
            };
            let [volts, amps, temp] = &mut q.bands;
            let band = match quantity {
                VoltageMv => volts,
                CurrentMa => amps,
                TemperatureDc => temp,
            };
            match bound {
                Bound::Above(b) => band.1 = band.1.min(b),
                Bound::Below(b) => band.0 = band.0.max(b),
            }
        }
        q
    }

    /// No row's trip condition holds in `c`.
    #[inline]
    fn holds(&self, c: &Conditions) -> bool {
        let inside = |(lo, hi): (i64, i64), q: Quantity| (lo..=hi).contains(&q.native(&c.meas));
        let [volts, amps, temp] = self.bands;
        c.signal_bits() & self.signals == 0
            && inside(volts, VoltageMv)
            && inside(amps, CurrentMa)
            && inside(temp, TemperatureDc)
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
            variant: Variant::V48,
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
            assert_ne!(a.paths(), 0, "{:?}", a.function);
            for b in &TABLE[i + 1..] {
                assert_ne!(a.fault, b.fault);
            }
        }
    }

    #[test]
    fn rows_are_in_fault_bit_order_and_name_settings_that_exist() {
        let s = Settings::defaults(Variant::V12);
        let is_setting = |id: RegId| assert!(s.get(id).is_some(), "{id:?} is not a setting");
        let is_level = |l: Level| match l {
            Level::Setting { setting, .. } => is_setting(setting),
            Level::Rating(_) => {}
        };
        for pair in TABLE.windows(2) {
            assert!(pair[0].fault < pair[1].fault, "{:?} before {:?}", pair[0].function, pair[1].function);
        }
        for row in &TABLE {
            assert_eq!(row.fault.count_ones(), 1, "{:?}", row.function);
            match row.trip {
                Trip::Above(_, l) | Trip::Below(_, l) => is_level(l),
                Trip::Signal(_) => assert!(
                    !matches!(row.release, Release::Above(_) | Release::Below(_) | Release::Hysteresis(_)),
                    "{:?}: a digital input has no release level",
                    row.function
                ),
            }
            match row.release {
                Release::Above(l) | Release::Below(l) | Release::Hysteresis(l) => is_level(l),
                Release::After(Time::Setting(id, _)) => is_setting(id),
                Release::Latch { enabled, retry, max } => {
                    is_setting(enabled);
                    is_setting(max);
                    if let Time::Setting(id, _) = retry {
                        is_setting(id);
                    }
                }
                Release::Cleared | Release::After(Time::Fixed(_)) => {}
            }
            if let Time::Setting(id, _) = row.delay {
                is_setting(id);
            }
            assert_eq!(row.paths() & path::SWITCH != 0, row.severity == Severity::Fatal, "{:?}", row.function);
        }
    }

    #[test]
    fn each_row_logs_its_own_quantity() {
        let m =
            Measurements { current_ua: -123_456_000, voltage_uv: 11_987_000, temperature_dc: -55, saturated: false };
        let logged = |f: Function| TABLE.iter().find(|r| r.function == f).unwrap().log_entry(7, &m);
        assert_eq!(logged(Function::Lvp), LogEntry { time_s: 7, code: 0, value: 1_198 });
        assert_eq!(logged(Function::Ocd).value, -1_234);
        assert_eq!(logged(Function::Utd), LogEntry { time_s: 7, code: 10, value: -55 });
        assert_eq!(logged(Function::ShortCircuit).value, -1_234);
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
        p.clear(&sc, &s);
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

    /// The table's rows as the match they replaced (issue 14): (beyond, released, delay).
    fn condition_as_before(
        f: Function,
        c: &Conditions,
        s: &Settings,
        trip: &DelayedTrip,
        now: Instant,
    ) -> (bool, bool, Duration) {
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
            Function::ShortCircuit => (c.sc_latched, false, Duration::ZERO),
            Function::AuxOvercurrent => (c.aux_overcurrent, trip.tripped_for(now) >= AUX_RETRY, Duration::ZERO),
            Function::AuxOvervoltage => (v > 60_000, trip.tripped_for(now) >= AUX_RETRY, Duration::ZERO),
        }
    }

    /// The poll as it was before the table was compiled (issue 18): every row
    /// every poll, its levels read from the settings through the rows.
    #[derive(Clone, Copy, Debug, Default)]
    struct RowByRow {
        trips: [DelayedTrip; FUNCTIONS],
        retries: [u16; FUNCTIONS],
        latch_reset: bool,
    }

    impl RowByRow {
        fn update(&mut self, now: Instant, c: &Conditions, s: &Settings, mut on_trip: impl FnMut(&Row)) {
            self.latch_reset = false;
            for ((row, trip), retries) in TABLE.iter().zip(self.trips.iter_mut()).zip(self.retries.iter_mut()) {
                let was = trip.is_tripped();
                let mut beyond = row.beyond(c, s);
                let released = was && !beyond && row.released(c, s, trip, now);
                if let Release::Latch { enabled, retry, max } = row.release {
                    let max = s.get(max).unwrap_or(0);
                    if was
                        && s.get(enabled).unwrap_or(0) != 0
                        && i64::from(*retries) < max
                        && trip.tripped_for(now) >= retry.value(s)
                    {
                        *retries += 1;
                        self.latch_reset = true;
                        *trip = DelayedTrip::default();
                        beyond = false;
                    }
                }
                let delay = if beyond { row.delay.value(s) } else { Duration::ZERO };
                if trip.update(now, beyond, released, delay) && !was {
                    on_trip(row);
                }
            }
        }

        fn clear(&mut self, c: &Conditions, s: &Settings) {
            for ((row, trip), retries) in TABLE.iter().zip(self.trips.iter_mut()).zip(self.retries.iter_mut()) {
                if let Release::Latch { .. } = row.release {
                    if trip.is_tripped() {
                        self.latch_reset = true;
                        *retries = 0;
                        *trip = DelayedTrip::default();
                    }
                    continue;
                }
                trip.clear(row.beyond(c, s));
            }
        }

        fn faults(&self) -> u16 {
            TABLE.iter().zip(&self.trips).filter(|(_, t)| t.is_tripped()).fold(0, |f, (r, _)| f | r.fault)
        }

        fn paths_open(&self) -> u8 {
            TABLE.iter().zip(&self.trips).filter(|(_, t)| t.is_tripped()).fold(0, |p, (r, _)| p | r.paths())
        }
    }

    /// Settings with the protection levels and times drawn near small values,
    /// so that random measurements cross them (and their rounding) often.
    fn small_settings(v: Variant, levels: [u16; 6], temps: [i16; 4], times: [u16; 6]) -> Settings {
        let mut s = Settings::defaults(v);
        [s.lvp_mv, s.lvp_release_mv, s.ovp_mv, s.ovp_release_mv, s.occ_da, s.ocd_da] = levels;
        [s.otc_dc, s.utc_dc, s.otd_dc, s.utd_dc] = temps;
        [s.lvp_delay_ms, s.ovp_delay_ms, s.occ_delay_ms, s.ocd_delay_ms, s.temp_delay_ms, s.temp_hysteresis_dc] =
            times.map(|t| t % 60);
        s.oc_retry_s = times[0] % 3;
        s.sc_auto_retry = times[1] % 2;
        s.sc_retry_s = times[2] % 2;
        s.sc_max_retries = times[3] % 4;
        s
    }

    fn measured(uv: i32, ua: i32, dc: i16, inputs: (bool, bool, bool, bool), v: Variant) -> Conditions {
        let mut c = cond(0, 0, dc);
        c.variant = v;
        c.meas.voltage_uv = uv;
        c.meas.current_ua = ua;
        (c.lvp_input_ok, c.ovp_input_ok, c.sc_latched, c.aux_overcurrent) = inputs;
        c
    }

    proptest! {
        // Cheap cases; enough of them to land on each row's rounding edges.
        #![proptest_config(ProptestConfig::with_cases(4_096))]
        /// Issue 18: the levels as bounds in µV, µA and 0.1 °C read as the rows read
        /// the rounded quantities, and the quiet bands are exactly where no row is
        /// beyond, at any settings, on and around every rounding edge.
        #[test]
        fn issue_18_bounds_and_quiet_bands_read_as_the_table(
            vi in 0usize..3,
            levels in any::<[u16; 6]>(),
            small in any::<bool>(),
            temps in any::<[i16; 4]>(),
            times in any::<[u16; 6]>(),
            uv_mv in -70_000i32..70_000, ua_ma in -400_000i32..400_000,
            // Any fraction of the unit, often on the rounding edges (±0.5 mA, ±0.5 mV).
            frac in prop_oneof![-1_000i32..=1_000, -501i32..=-499, 499i32..=501],
            dc in any::<i16>(),
            inputs in any::<(bool, bool, bool, bool)>(),
            (pick, on_release, off) in (0usize..FUNCTIONS, any::<bool>(), -2i64..=2),
        ) {
            let v = [Variant::V12, Variant::V24, Variant::V48][vi];
            // Small levels: the random measurements sit on them and their rounding edges.
            let levels = if small { levels.map(|l| l % 8) } else { levels };
            let temps = if small { temps.map(|t| t % 8) } else { temps };
            let s = small_settings(v, levels, temps, times);
            let (mut uv, mut ua, mut dc) = if small {
                ((uv_mv % 16) * 1_000 + frac, (ua_ma % 1_600) * 1_000 + frac, dc % 16)
            } else {
                (uv_mv.saturating_mul(1_000).saturating_add(frac), ua_ma.saturating_mul(1_000) + frac, dc)
            };
            // One row's quantity on (±2 of) its trip or release level, at any fraction of the unit.
            let row = &TABLE[pick];
            if let Trip::Above(q, l) | Trip::Below(q, l) = row.trip {
                let level = match (on_release, row.release) {
                    (true, Release::Above(r) | Release::Below(r)) => r.value(&s, v),
                    (true, Release::Hysteresis(h)) => l.value(&s, v) + h.value(&s, v),
                    _ => l.value(&s, v),
                } + off;
                let native = |l: i64| (l * 1_000 + i64::from(frac)).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                match q {
                    VoltageMv => uv = native(level),
                    CurrentMa => ua = native(level),
                    TemperatureDc => dc = level.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16,
                }
            }
            let c = measured(uv, ua, dc, inputs, v);
            // Each level of the table as a bound on the measurement's own value reads as the
            // rounded quantity compared with the level.
            for row in &TABLE {
                if let Trip::Above(q, l) | Trip::Below(q, l) = row.trip {
                    let levels = [Some(l.value(&s, v)), match row.release {
                        Release::Above(r) | Release::Below(r) => Some(r.value(&s, v)),
                        Release::Hysteresis(h) => Some(l.value(&s, v) + h.value(&s, v)),
                        _ => None,
                    }];
                    for level in levels.into_iter().flatten().flat_map(|l| [l - 1, l, l + 1]) {
                        let (native, rounded) = (q.native(&c.meas), c.quantity(q));
                        prop_assert_eq!(Bound::of(true, q, level).holds(native), rounded > level, "{:?} {}", q, native);
                        prop_assert_eq!(Bound::of(false, q, level).holds(native), rounded < level, "{:?} {}", q, native);
                    }
                }
            }
            // The quiet bands are exact: inside them (no fault input set) no row is beyond, and
            // outside them one is.
            let beyond_none = TABLE.iter().all(|row| !row.beyond(&c, &s));
            prop_assert_eq!(Quiet::new(&s, v).holds(&c), beyond_none, "{:?}", c.meas);
        }
    }

    proptest! {
        /// Issue 18: a protection that skips the rows which cannot change does what
        /// evaluating every row every poll did: the same trips (and trip calls, in
        /// order), releases, latch resets, retries and deadlines, through changes of
        /// the settings and clear commands.
        #[test]
        fn issue_18_skipping_unchanged_rows_changes_nothing(
            vi in 0usize..3,
            levels in any::<[u16; 6]>(),
            temps in any::<[i16; 4]>(),
            times in any::<[u16; 6]>(),
            steps in proptest::collection::vec(
                (-2i32..18, -1_800i32..1_800, -1_000i32..=1_000, -12i16..12, any::<(bool, bool, bool, bool)>(), 1u64..700, 0u8..40),
                1..300,
            ),
        ) {
            let v = [Variant::V12, Variant::V24, Variant::V48][vi];
            let mut s = small_settings(v, levels.map(|l| l % 12), temps.map(|t| t % 10), times);
            let (mut fast, mut slow) = (Protection::default(), RowByRow::default());
            let mut now = Instant::ZERO;
            for (mv, ma, frac, dc, inputs, dt_ms, what) in steps {
                now += Duration::from_millis(dt_ms);
                // Mostly healthy inputs: faults come and go.
                let inputs = if what % 4 == 0 { inputs } else { (true, true, false, false) };
                let c = measured(mv * 1_000 + frac, ma * 1_000 + frac, dc, inputs, v);
                match what {
                    0 => s.lvp_mv = (s.lvp_mv + 1) % 12,
                    1 => s.ovp_release_mv = (s.ovp_release_mv + 3) % 12,
                    2 => s.temp_hysteresis_dc = (s.temp_hysteresis_dc + 1) % 5,
                    3 => s.sc_auto_retry ^= 1,
                    4 => {
                        fast.clear(&c, &s);
                        slow.clear(&c, &s);
                    }
                    _ => {}
                }
                let (mut a, mut b) = ([0u16; 8], [0u16; 8]);
                let (mut na, mut nb) = (0, 0);
                fast.update(now, &c, &s, |row| { a[na % 8] = row.fault; na += 1; });
                slow.update(now, &c, &s, |row| { b[nb % 8] = row.fault; nb += 1; });
                prop_assert_eq!((na, a), (nb, b), "trips at {:?}", now);
                prop_assert_eq!(fast.trips, slow.trips, "at {:?}", now);
                prop_assert_eq!(fast.retries, slow.retries);
                prop_assert_eq!(fast.faults(), slow.faults());
                prop_assert_eq!(fast.paths_open(), slow.paths_open());
                prop_assert_eq!(fast.sc_latch_reset(), slow.latch_reset);
                prop_assert_eq!(
                    fast.next_deadline(&s),
                    TABLE.iter().zip(&slow.trips).filter_map(|(r, t)| Some(t.trips_at(Duration::ZERO)? + r.delay.value(&s))).min()
                );
            }
        }
    }

    proptest! {
        /// The rows say what the `match` they replaced said, for any conditions and
        /// settings (released only matters while the condition is gone).
        #[test]
        fn rows_agree_with_the_match_they_replaced(
            mv in 0i32..70_000, ma in -400_000i32..400_000, t in -300i16..800,
            inputs in any::<(bool, bool, bool, bool)>(),
            tripped_s in 0u64..100,
            retry_s in prop::sample::select(vec![0u16, 1, 30]),
            hyst in 0u16..100,
        ) {
            let mut s = Settings::defaults(Variant::V48);
            s.oc_retry_s = retry_s;
            s.temp_hysteresis_dc = hyst;
            let mut c = cond(mv, ma, t);
            (c.lvp_input_ok, c.ovp_input_ok, c.sc_latched, c.aux_overcurrent) = inputs;
            let mut trip = DelayedTrip::default();
            trip.update(Instant::ZERO, true, false, Duration::ZERO);
            let now = Instant::from_secs(tripped_s);
            for row in &TABLE {
                let (beyond, released, delay) = condition_as_before(row.function, &c, &s, &trip, now);
                prop_assert_eq!(row.beyond(&c, &s), beyond, "{:?}", row.function);
                prop_assert_eq!(row.delay.value(&s), delay, "{:?}", row.function);
                if !beyond {
                    prop_assert_eq!(row.released(&c, &s, &trip, now), released, "{:?}", row.function);
                }
            }
        }

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
            let mut held: [Option<Instant>; FUNCTIONS] = [None; FUNCTIONS];
            let mut now = Instant::ZERO;
            for (mv, ma, t, lvp_ok, ovp_ok) in steps {
                now += Duration::from_millis(dt_ms);
                let mut c = cond(mv, ma, t);
                c.lvp_input_ok = lvp_ok;
                c.ovp_input_ok = ovp_ok;
                p.update(now, &c, &s, |_| {});
                for (k, row) in TABLE.iter().enumerate() {
                    let (beyond, delay) = (row.beyond(&c, &s), row.delay.value(&s));
                    if beyond { held[k].get_or_insert(now); } else { held[k] = None; }
                    if let Some(since) = held[k] {
                        if now - since >= delay {
                            prop_assert!(p.faults() & row.fault != 0, "{:?} held {:?}", row.function, now - since);
                            prop_assert_eq!(p.paths_open() & row.paths(), row.paths());
                        }
                    }
                }
                let open = p.paths_open();
                prop_assert!(open & path::SWITCH == 0 || p.faults() != 0);
            }
        }
    }
}
