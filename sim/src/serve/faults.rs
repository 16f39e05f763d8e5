//! Bus fault injection: what a flaky RS-485 bus and a misbehaving slave do to
//! a gateway, per unit and seeded.
//!
//! The configuration is the `[faults]` section of a TOML file (`serve --faults
//! FILE`), shaped so that it can later be embedded in a scenario as is:
//!
//! ```toml
//! [faults]
//! seed = 42                        # --fault-seed overrides; default 0
//!
//! [[faults.unit]]                  # without `id`: every served unit without an entry of its own
//! delay_ms = 5.0                   # every reply this much later ...
//! delay_jitter_ms = 2.0            # ... plus uniform 0..jitter
//!
//! [[faults.unit]]
//! id = 2
//! drop_probability = 0.1           # executed, but the reply is lost
//! crc_error_probability = 0.05     # reply sent with a broken CRC
//! wrong_unit_probability = 0.05    # reply (valid CRC) carrying another unit id
//! wrong_unit_id = 9                # default: id + 1 (247 → 1)
//! exception_probability = 0.1      # request NOT executed, exception reply instead
//! exception_code = 6               # default 6 (server device busy)
//! garble_byte_rate = 0.001         # each reply byte replaced with this probability
//! offline = [{ from_s = 10.0, to_s = 20.0 }]   # simulated time: hears nothing, answers nothing
//! ```
//!
//! Order per request addressed to a unit: offline (the unit does not even hear
//! the request) → injected exception (decided before execution: the board is
//! not handed the request) → the board executes and answers → dropped →
//! wrong unit id → corrupted CRC → garbled bytes → delay. CRC and garbling do
//! not apply to Modbus TCP (no CRC; TCP does not garble).
//!
//! Random decisions draw from a SplitMix64 stream per unit, derived from the
//! fault seed and the unit id with fixed arithmetic, so a run with the same
//! seed, configuration and request sequence injects the same faults.
//!
//! # Reading the counters over the bus
//!
//! What was injected is counted per unit ([`FaultCounters`]) and readable with
//! FC08 Diagnostics sub-functions of the serve layer's own
//! ([`FAULT_COUNTER_SUB_FUNCTIONS`], 0x0100..=0x0107, request data `00 00`,
//! reply: the 16-bit count, saturating at 65535). The injection is a fault of
//! the line, not of the board, so the board's own FC08 counters (0x0B..=0x12)
//! must stay what its slave saw: these requests are answered by the serve layer
//! and never reach a board, and they are exempt from every fault (offline
//! windows included) and draw nothing from the fault stream, so a test tool
//! reads them reliably without changing the faults injected afterwards. Like
//! the board's diagnostic counters, they count since start or since the board
//! last cleared its counters (FC08 0x0A, or 0x01); the exit report counts since
//! start.

use std::path::Path;

use firmware_core::modbus::ExceptionCode;
use firmware_core::modbus::diagnostics::{DIAGNOSTICS, DiagnosticResponse};
use firmware_core::modbus::pdu::Response;
use serde::Deserialize;

/// The `[faults]` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    /// Seed of the fault streams; `--fault-seed` overrides it.
    pub seed: Option<u64>,
    /// Per-unit entries; an entry without `id` applies to every unit without its own.
    #[serde(default, rename = "unit")]
    pub units: Vec<UnitFaults>,
}

/// A file holding only a `[faults]` section (what `--faults FILE` reads).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    #[serde(default)]
    faults: FaultsConfig,
}

/// An offline window in simulated seconds since the start: `from_s <= t < to_s`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
}

/// The faults of one unit. All probabilities are per request (garbling: per byte).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnitFaults {
    /// The unit this entry is for; `None`: every unit without an entry of its own.
    pub id: Option<u8>,
    #[serde(default)]
    pub delay_ms: f64,
    #[serde(default)]
    pub delay_jitter_ms: f64,
    #[serde(default)]
    pub drop_probability: f64,
    #[serde(default)]
    pub crc_error_probability: f64,
    #[serde(default)]
    pub wrong_unit_probability: f64,
    pub wrong_unit_id: Option<u8>,
    #[serde(default)]
    pub exception_probability: f64,
    #[serde(default = "default_exception_code")]
    pub exception_code: u8,
    #[serde(default)]
    pub garble_byte_rate: f64,
    #[serde(default)]
    pub offline: Vec<Window>,
}

/// The exception codes Modbus defines (*Modbus Application Protocol V1.1b3*
/// §7; 07 from the serial-line programming functions), with their names.
pub const EXCEPTION_CODES: &[(u8, &str)] = &[
    (0x01, "illegal function"),
    (0x02, "illegal data address"),
    (0x03, "illegal data value"),
    (0x04, "server device failure"),
    (0x05, "acknowledge"),
    (0x06, "server device busy"),
    (0x07, "negative acknowledge"),
    (0x08, "memory parity error"),
    (0x0A, "gateway path unavailable"),
    (0x0B, "gateway target device failed to respond"),
];

/// The name of a Modbus exception code, or `None` for a code Modbus does not define.
pub fn exception_code_name(code: u8) -> Option<&'static str> {
    EXCEPTION_CODES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// An injected exception must be one Modbus defines: a master could not tell
/// another code from a garbled reply (issue 17: `--fault-exception 99:0.1` was accepted).
pub fn check_exception_code(code: u8) -> Result<(), String> {
    if exception_code_name(code).is_some() {
        return Ok(());
    }
    let known: Vec<String> = EXCEPTION_CODES.iter().map(|(c, n)| format!("{c} {n}")).collect();
    Err(format!("{code} is not a Modbus exception code; the defined ones: {}", known.join(", ")))
}

fn default_exception_code() -> u8 {
    6
}

impl Default for UnitFaults {
    fn default() -> Self {
        UnitFaults {
            id: None,
            delay_ms: 0.0,
            delay_jitter_ms: 0.0,
            drop_probability: 0.0,
            crc_error_probability: 0.0,
            wrong_unit_probability: 0.0,
            wrong_unit_id: None,
            exception_probability: 0.0,
            exception_code: default_exception_code(),
            garble_byte_rate: 0.0,
            offline: Vec::new(),
        }
    }
}

/// Fault settings given on the command line; each `Some` overrides the file's
/// value for the units it applies to.
#[derive(Debug, Clone, Default)]
pub struct FaultOverrides {
    /// Units the overrides apply to; empty: all served units.
    pub units: Vec<u8>,
    pub delay_ms: Option<(f64, f64)>,
    pub drop_probability: Option<f64>,
    pub crc_error_probability: Option<f64>,
    pub wrong_unit_probability: Option<f64>,
    pub exception: Option<(u8, f64)>,
    pub garble_byte_rate: Option<f64>,
    pub offline: Vec<Window>,
}

impl FaultOverrides {
    pub fn is_empty(&self) -> bool {
        self.delay_ms.is_none()
            && self.drop_probability.is_none()
            && self.crc_error_probability.is_none()
            && self.wrong_unit_probability.is_none()
            && self.exception.is_none()
            && self.garble_byte_rate.is_none()
            && self.offline.is_empty()
    }

    fn apply(&self, f: &mut UnitFaults) {
        if let Some((d, j)) = self.delay_ms {
            f.delay_ms = d;
            f.delay_jitter_ms = j;
        }
        if let Some(p) = self.drop_probability {
            f.drop_probability = p;
        }
        if let Some(p) = self.crc_error_probability {
            f.crc_error_probability = p;
        }
        if let Some(p) = self.wrong_unit_probability {
            f.wrong_unit_probability = p;
        }
        if let Some((code, p)) = self.exception {
            f.exception_code = code;
            f.exception_probability = p;
        }
        if let Some(r) = self.garble_byte_rate {
            f.garble_byte_rate = r;
        }
        if !self.offline.is_empty() {
            f.offline = self.offline.clone();
        }
    }
}

impl FaultsConfig {
    /// Reads a TOML file with a `[faults]` section; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<FaultsConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `[faults]` file; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<FaultsConfig, String> {
        let file: FaultsFile =
            toml::from_str(text).map_err(|e| crate::tomlfile::toml_error(text, path, &e).to_string())?;
        Ok(file.faults)
    }

    /// The faults of each unit in `units` (same order), with `overrides` applied
    /// and everything checked.
    pub fn resolve(&self, units: &[u8], overrides: &FaultOverrides) -> Result<Vec<UnitFaults>, String> {
        let mut catch_all: Option<&UnitFaults> = None;
        let mut seen = Vec::new();
        for f in &self.units {
            match f.id {
                None if catch_all.is_some() => return Err("faults: more than one [[faults.unit]] without id".into()),
                None => catch_all = Some(f),
                Some(id) if seen.contains(&id) => {
                    return Err(format!("faults: two [[faults.unit]] entries for id {id}"));
                }
                Some(id) if !units.contains(&id) => {
                    return Err(format!("faults: [[faults.unit]] id = {id}, but unit {id} is not served"));
                }
                Some(id) => seen.push(id),
            }
        }
        for u in &overrides.units {
            if !units.contains(u) {
                return Err(format!("--fault-units: unit {u} is not served"));
            }
        }
        let mut out = Vec::with_capacity(units.len());
        for &id in units {
            let mut f = self.units.iter().find(|f| f.id == Some(id)).or(catch_all).cloned().unwrap_or_default();
            f.id = Some(id);
            if overrides.units.is_empty() || overrides.units.contains(&id) {
                overrides.apply(&mut f);
            }
            f.check().map_err(|e| format!("faults of unit {id}: {e}"))?;
            out.push(f);
        }
        Ok(out)
    }
}

impl UnitFaults {
    /// Whether any fault is configured.
    pub fn any(&self) -> bool {
        self.delay_ms > 0.0
            || self.delay_jitter_ms > 0.0
            || self.drop_probability > 0.0
            || self.crc_error_probability > 0.0
            || self.wrong_unit_probability > 0.0
            || self.exception_probability > 0.0
            || self.garble_byte_rate > 0.0
            || !self.offline.is_empty()
    }

    fn check(&self) -> Result<(), String> {
        let prob = |name: &str, p: f64| {
            if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(format!("{name} = {p} must be within 0..=1")) }
        };
        prob("drop_probability", self.drop_probability)?;
        prob("crc_error_probability", self.crc_error_probability)?;
        prob("wrong_unit_probability", self.wrong_unit_probability)?;
        prob("exception_probability", self.exception_probability)?;
        prob("garble_byte_rate", self.garble_byte_rate)?;
        for (name, ms) in [("delay_ms", self.delay_ms), ("delay_jitter_ms", self.delay_jitter_ms)] {
            if !(0.0..=60_000.0).contains(&ms) {
                return Err(format!("{name} = {ms} must be within 0..=60000 ms"));
            }
        }
        check_exception_code(self.exception_code).map_err(|e| format!("exception_code = {e}"))?;
        if let Some(w) = self.wrong_unit_id {
            if !(1..=247).contains(&w) || Some(w) == self.id {
                return Err(format!("wrong_unit_id = {w} must be within 1..=247 and not the unit's own id"));
            }
        }
        for w in &self.offline {
            if !(w.from_s.is_finite() && w.to_s.is_finite() && 0.0 <= w.from_s && w.from_s < w.to_s) {
                return Err(format!("offline window {}..{} s: need 0 <= from_s < to_s", w.from_s, w.to_s));
            }
        }
        Ok(())
    }
}

/// What was injected, per unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounters {
    /// Requests addressed to the unit while it was offline (not heard).
    pub offline: u64,
    /// Exception replies injected instead of executing the request.
    pub exceptions: u64,
    /// Replies dropped after execution.
    pub dropped: u64,
    /// Replies sent with another unit id.
    pub wrong_unit: u64,
    /// Replies sent with a corrupted CRC.
    pub crc_corrupted: u64,
    /// Replies with at least one garbled byte, and the bytes garbled.
    pub garbled_replies: u64,
    pub garbled_bytes: u64,
    /// Replies sent late by a configured delay.
    pub delayed: u64,
}

/// The FC08 sub-functions that read a unit's [`FaultCounters`] (the serve
/// layer's, outside the Modbus specification's 0x00..=0x14), and what each counts.
pub const FAULT_COUNTER_SUB_FUNCTIONS: [(u16, &str); 8] = [
    (0x0100, "replies dropped"),
    (0x0101, "replies delayed"),
    (0x0102, "replies with a corrupted CRC"),
    (0x0103, "replies with a wrong unit id"),
    (0x0104, "exceptions injected instead of executing"),
    (0x0105, "requests not heard while offline"),
    (0x0106, "bytes garbled"),
    (0x0107, "replies with garbled bytes"),
];

impl FaultCounters {
    /// The count that FC08 sub-function `sub` reads ([`FAULT_COUNTER_SUB_FUNCTIONS`]).
    pub fn by_sub_function(&self, sub: u16) -> Option<u64> {
        Some(match sub {
            0x0100 => self.dropped,
            0x0101 => self.delayed,
            0x0102 => self.crc_corrupted,
            0x0103 => self.wrong_unit,
            0x0104 => self.exceptions,
            0x0105 => self.offline,
            0x0106 => self.garbled_bytes,
            0x0107 => self.garbled_replies,
            _ => return None,
        })
    }

    /// The counts since `base` was taken (field by field).
    pub fn since(&self, base: &FaultCounters) -> FaultCounters {
        FaultCounters {
            offline: self.offline.saturating_sub(base.offline),
            exceptions: self.exceptions.saturating_sub(base.exceptions),
            dropped: self.dropped.saturating_sub(base.dropped),
            wrong_unit: self.wrong_unit.saturating_sub(base.wrong_unit),
            crc_corrupted: self.crc_corrupted.saturating_sub(base.crc_corrupted),
            garbled_replies: self.garbled_replies.saturating_sub(base.garbled_replies),
            garbled_bytes: self.garbled_bytes.saturating_sub(base.garbled_bytes),
            delayed: self.delayed.saturating_sub(base.delayed),
        }
    }

    pub fn total(&self) -> u64 {
        self.offline
            + self.exceptions
            + self.dropped
            + self.wrong_unit
            + self.crc_corrupted
            + self.garbled_replies
            + self.delayed
    }
}

impl std::fmt::Display for FaultCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "offline {}, exceptions {}, dropped {}, wrong unit {}, bad CRC {}, garbled {} ({} bytes), delayed {}",
            self.offline,
            self.exceptions,
            self.dropped,
            self.wrong_unit,
            self.crc_corrupted,
            self.garbled_replies,
            self.garbled_bytes,
            self.delayed
        )
    }
}

/// The answer to a request PDU if it reads a fault counter: `Some(response)` for
/// FC08 with a sub-function of [`FAULT_COUNTER_SUB_FUNCTIONS`] (the count,
/// saturating at 65535; exception 03 if the data is not `00 00`, as the board
/// answers its own counter sub-functions), `None` for any other request (it is
/// the board's). The response is written by the same emitter as the board's replies.
pub fn fault_counter_response(pdu: &[u8], counters: &FaultCounters) -> Option<Response<'static>> {
    let [DIAGNOSTICS, s_hi, s_lo, data @ ..] = pdu else {
        return None;
    };
    let sub = u16::from_be_bytes([*s_hi, *s_lo]);
    let count = counters.by_sub_function(sub)?;
    if data != [0, 0] {
        return Some(Response::Exception { function: DIAGNOSTICS, code: ExceptionCode::IllegalDataValue });
    }
    let count = u16::try_from(count).unwrap_or(u16::MAX);
    Some(Response::Diagnostics(DiagnosticResponse::word(sub, count)))
}

/// What happens to one reply after execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyFate {
    pub dropped: bool,
    pub wrong_unit: Option<u8>,
    pub corrupt_crc: bool,
    /// Extra delay before the reply goes out, ns.
    pub delay_ns: u64,
}

/// The fault state of one unit: its settings, random stream and counters.
#[derive(Debug, Clone)]
pub struct Injector {
    pub faults: UnitFaults,
    /// Since start (the exit report).
    pub counters: FaultCounters,
    /// `counters` when the board last cleared its diagnostic counters: what
    /// FC08 reads is the difference ([`Injector::diagnostic_counters`]).
    cleared_at: FaultCounters,
    unit: u8,
    rng: SplitMix64,
}

impl Injector {
    pub fn new(unit: u8, faults: UnitFaults, seed: u64) -> Self {
        let rng = SplitMix64::new(seed ^ u64::from(unit).wrapping_mul(0xA076_1D64_78BD_642F) ^ 0x6275_732D_6661_756C);
        Injector { faults, counters: FaultCounters::default(), cleared_at: FaultCounters::default(), unit, rng }
    }

    /// The counts since start or the last [`clear_diagnostics`](Self::clear_diagnostics): what FC08 reads.
    pub fn diagnostic_counters(&self) -> FaultCounters {
        self.counters.since(&self.cleared_at)
    }

    /// Restarts the counts FC08 reads (when the board clears its own); the since-start counts are kept.
    pub fn clear_diagnostics(&mut self) {
        self.cleared_at = self.counters;
    }

    /// Whether the unit is off the bus at simulated time `t_s`.
    pub fn offline_at(&self, t_s: f64) -> bool {
        self.faults.offline.iter().any(|w| w.from_s <= t_s && t_s < w.to_s)
    }

    /// Decided before execution: `Some(code)` to answer an exception instead.
    pub fn inject_exception(&mut self) -> Option<u8> {
        let roll = self.rng.unit_f64();
        (roll < self.faults.exception_probability).then(|| {
            self.counters.exceptions += 1;
            self.faults.exception_code
        })
    }

    /// Decided after execution: what happens to the reply.
    pub fn reply_fate(&mut self, serial_line: bool) -> ReplyFate {
        let f = &self.faults;
        let (drop, wrong, crc, jitter) =
            (self.rng.unit_f64(), self.rng.unit_f64(), self.rng.unit_f64(), self.rng.unit_f64());
        if drop < f.drop_probability {
            self.counters.dropped += 1;
            return ReplyFate { dropped: true, ..ReplyFate::default() };
        }
        let mut fate = ReplyFate::default();
        if wrong < f.wrong_unit_probability {
            self.counters.wrong_unit += 1;
            fate.wrong_unit = Some(f.wrong_unit_id.unwrap_or(if self.unit >= 247 { 1 } else { self.unit + 1 }));
        }
        if serial_line && crc < f.crc_error_probability {
            self.counters.crc_corrupted += 1;
            fate.corrupt_crc = true;
        }
        let delay_ms = f.delay_ms + f.delay_jitter_ms * jitter;
        if delay_ms > 0.0 {
            self.counters.delayed += 1;
            fate.delay_ns = (delay_ms * 1e6).round() as u64;
        }
        fate
    }

    /// Replaces each byte of `adu` with probability `garble_byte_rate` by a different value.
    pub fn garble(&mut self, adu: &mut [u8]) {
        let rate = self.faults.garble_byte_rate;
        if rate <= 0.0 {
            return;
        }
        let mut hit = 0;
        for b in adu.iter_mut() {
            if self.rng.unit_f64() < rate {
                // A non-zero mask, so the byte really changes.
                *b ^= (self.rng.next_u64() % 255 + 1) as u8;
                hit += 1;
            }
        }
        if hit > 0 {
            self.counters.garbled_replies += 1;
            self.counters.garbled_bytes += hit;
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fixed, platform-independent.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[faults]
seed = 3
[[faults.unit]]
delay_ms = 5.0
[[faults.unit]]
id = 2
drop_probability = 0.5
offline = [{ from_s = 1.0, to_s = 2.0 }]
"#;

    #[test]
    fn file_resolves_per_unit_with_catch_all_and_overrides() {
        let c = FaultsConfig::parse(FILE, Path::new("f.toml")).unwrap();
        assert_eq!(c.seed, Some(3));
        let o = FaultOverrides { units: vec![3], drop_probability: Some(0.25), ..FaultOverrides::default() };
        let r = c.resolve(&[1, 2, 3], &o).unwrap();
        assert_eq!(r[0].delay_ms, 5.0);
        assert_eq!(r[1].delay_ms, 0.0, "an entry of its own replaces the catch-all");
        assert_eq!(r[1].drop_probability, 0.5);
        assert_eq!((r[2].delay_ms, r[2].drop_probability), (5.0, 0.25));
        let inj = Injector::new(2, r[1].clone(), 3);
        assert!(inj.offline_at(1.5) && !inj.offline_at(2.0) && !inj.offline_at(0.5));
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let e = FaultsConfig::parse("[faults]\nbogus = 1\n", Path::new("f.toml")).unwrap_err();
        assert!(e.starts_with("f.toml:2:") && e.contains("bogus"), "{e}");
        let e = FaultsConfig::parse("[faults]\n[[faults.unit]]\ndrop_probability = 1.5\n", Path::new("f.toml"))
            .unwrap()
            .resolve(&[1], &FaultOverrides::default())
            .unwrap_err();
        assert!(e.contains("drop_probability"), "{e}");
        let c = FaultsConfig::parse("[faults]\n[[faults.unit]]\nid = 9\n", Path::new("f.toml")).unwrap();
        assert!(c.resolve(&[1], &FaultOverrides::default()).unwrap_err().contains("not served"));
    }

    #[test]
    fn fault_counters_are_read_by_their_sub_function_saturating_at_16_bits() {
        let c = FaultCounters {
            dropped: 1,
            delayed: 2,
            crc_corrupted: 3,
            wrong_unit: 4,
            exceptions: 5,
            offline: 6,
            garbled_bytes: 70_000,
            garbled_replies: 8,
        };
        let expected = [1u16, 2, 3, 4, 5, 6, 65_535, 8];
        let bytes = |pdu: &[u8]| {
            let r = fault_counter_response(pdu, &c)?;
            let mut out = [0u8; 8];
            let n = r.emit(&mut out).unwrap();
            Some(out[..n].to_vec())
        };
        for ((sub, name), want) in FAULT_COUNTER_SUB_FUNCTIONS.iter().zip(expected) {
            let [s_hi, s_lo] = sub.to_be_bytes();
            let [w_hi, w_lo] = want.to_be_bytes();
            assert_eq!(bytes(&[0x08, s_hi, s_lo, 0, 0]).unwrap(), [0x08, s_hi, s_lo, w_hi, w_lo], "{sub:#06x} {name}");
        }
        // Other data: exception 03, as the board answers its own counters.
        assert_eq!(bytes(&[0x08, 0x01, 0x00, 0, 1]).unwrap(), [0x88, 0x03]);
        assert_eq!(bytes(&[0x08, 0x01, 0x00]).unwrap(), [0x88, 0x03]);
        // Not ours: the board's sub-functions, unassigned ones, other function codes, short PDUs.
        for pdu in [&[0x08, 0, 0x0B, 0, 0][..], &[0x08, 0x01, 0x08, 0, 0], &[0x03, 0x01, 0x00, 0, 1], &[0x08, 0x01]] {
            assert_eq!(bytes(pdu), None, "{pdu:02x?}");
        }
    }

    #[test]
    fn clearing_restarts_what_fc08_reads_and_keeps_the_since_start_counts() {
        let f = UnitFaults { drop_probability: 1.0, ..UnitFaults::default() };
        let mut inj = Injector::new(1, f, 0);
        for _ in 0..3 {
            assert!(inj.reply_fate(true).dropped);
        }
        assert_eq!(inj.diagnostic_counters().dropped, 3);
        inj.clear_diagnostics();
        assert_eq!(inj.diagnostic_counters(), FaultCounters::default());
        inj.reply_fate(true);
        assert_eq!((inj.diagnostic_counters().dropped, inj.counters.dropped), (1, 4));
    }

    #[test]
    fn same_seed_same_faults() {
        let f = UnitFaults { drop_probability: 0.3, garble_byte_rate: 0.2, ..UnitFaults::default() };
        let run = |seed| {
            let mut inj = Injector::new(1, f.clone(), seed);
            (0..200)
                .map(|_| {
                    let mut b = [0u8; 8];
                    inj.garble(&mut b);
                    (inj.reply_fate(true).dropped, b)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let drops = run(7).iter().filter(|(d, _)| *d).count();
        assert!((30..90).contains(&drops), "{drops} of 200 at p = 0.3");
    }
}
