//! Settings persistence: a CRC-protected record in two slots written
//! alternately, so a power loss during a save never loses the last good
//! settings (issue 5, item 6).
//!
//! # Storage model
//!
//! [`Nvm`] is byte-writable EEPROM: a write replaces bytes in place, no erase.
//! The save protocol relies on three properties of the backend:
//!
//! 1. `write` returns only once its bytes are durable (an EEPROM driver polls
//!    the end of the write cycle), and calls take effect in call order;
//! 2. a power loss during a `write` leaves every byte either old or new (the
//!    fault model of [`RamNvm::cut_power_after`]: the bytes land in ascending
//!    order until the power goes);
//! 3. `read` returns what was last written.
//!
//! A flash backend must emulate this, and must keep the two slots in
//! different erase sectors: erasing a sector that holds both would destroy the
//! good record together with the one being replaced.
//!
//! # Record layout (layout version 2, little-endian, [`RECORD_LEN`] bytes)
//!
//! | offset | size | field                                          |
//! |-------:|-----:|------------------------------------------------|
//! |      0 |    2 | magic [`MAGIC`] (bytes `53 50`, "SP")          |
//! |      2 |    1 | layout version [`LAYOUT_VERSION`]              |
//! |      3 |    4 | sequence number (u32, +1 per save, wrapping)   |
//! |      7 |    … | payload: every persisted register of [`crate::map::REGISTERS`] in table order, its raw value in 2 or 4 bytes |
//! |    end |    2 | CRC-16/MODBUS of everything before, low byte first |
//!
//! The payload derives from the register map (`map::settings()`), so adding a
//! persisted setting to the map extends the record; change
//! [`LAYOUT_VERSION`] when the map's persisted registers change.
//!
//! Magic and version form the header every layout version keeps, so a record
//! of another layout is reported as [`Reason::VersionMismatch`]. As on the
//! Modbus wire, a whole record checks to `crc16(record) == 0`.
//!
//! Slot A starts at offset 0 and slot B at [`SLOT_LEN`] = 128 ([`SLOT_OFFSETS`]);
//! the storage must hold at least [`STORE_LEN`] = 256 bytes. The slack after
//! each record leaves room for later layouts and keeps slots on page
//! boundaries of 16/32/64-byte-page EEPROMs.
//!
//! # Save protocol
//!
//! [`SettingsStore::save`] reads both slots (the same checks as
//! [`SettingsStore::load`]) and replaces the one *not* holding the newest valid
//! record, with the newest sequence number + 1:
//!
//! 1. overwrite the target's magic with `00 00`: the target is now certainly
//!    invalid, while the other slot still holds the newest valid record;
//! 2. write bytes 2.. of the new record (version, sequence, payload, CRC);
//! 3. write the magic: the commit;
//! 4. read the slot back and compare.
//!
//! A save cut anywhere before the last magic byte lands leaves the target
//! without its magic, so the old record wins regardless of what the CRC of a
//! torn record happens to be. [`BYTES_PER_SAVE`] bytes are written per save.

use core::fmt;
use core::ops::Range;

use crate::map::{self, RegId};
use crate::modbus::crc::crc16;
use crate::settings::{Settings, SettingsError, Variant};

/// Byte-writable non-volatile storage (EEPROM), the settings store's hardware seam.
///
/// See the [module docs](self) for the write semantics the store relies on.
pub trait Nvm {
    type Error: fmt::Debug + Copy;
    /// Size in bytes of the storage.
    fn capacity(&self) -> usize;
    /// Reads `buf.len()` bytes starting at `offset`.
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error>;
    /// Writes `data` starting at `offset`; returns once the bytes are durable.
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Self::Error>;
}

impl<T: Nvm + ?Sized> Nvm for &mut T {
    type Error = T::Error;
    fn capacity(&self) -> usize {
        T::capacity(self)
    }
    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), Self::Error> {
        T::read(self, offset, buf)
    }
    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), Self::Error> {
        T::write(self, offset, data)
    }
}

/// Errors of [`RamNvm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NvmError {
    /// The access reaches past the end of the storage.
    OutOfBounds,
}

impl fmt::Display for NvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NvmError::OutOfBounds => "access past the end of the storage",
        })
    }
}

/// What erased EEPROM reads as.
pub const ERASED: u8 = 0xFF;

/// An in-memory EEPROM of `N` bytes (the twin's storage), with fault injection:
/// [`Self::cut_power_after`] makes writes stop silently, as in a brown-out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RamNvm<const N: usize> {
    bytes: [u8; N],
    /// Bytes still written before the power goes, if a cut is armed.
    cut_after: Option<usize>,
}

impl<const N: usize> RamNvm<N> {
    /// Erased storage: every byte [`ERASED`].
    pub const fn new() -> Self {
        Self::from_bytes([ERASED; N])
    }
    /// Storage holding `bytes`.
    pub const fn from_bytes(bytes: [u8; N]) -> Self {
        RamNvm { bytes, cut_after: None }
    }
    pub fn bytes(&self) -> &[u8; N] {
        &self.bytes
    }
    /// Direct access, e.g. to corrupt cells in a test.
    pub fn bytes_mut(&mut self) -> &mut [u8; N] {
        &mut self.bytes
    }
    /// Cuts the power after `bytes` more bytes have been written: the rest of
    /// that write and every later write are lost, and `write` still reports
    /// success (the writer browns out and never learns of it).
    pub fn cut_power_after(&mut self, bytes: usize) {
        self.cut_after = Some(bytes);
    }
    /// Powers up again: writes land normally.
    pub fn restore_power(&mut self) {
        self.cut_after = None;
    }
    /// Has an armed power cut happened (writes are being lost)?
    pub fn is_power_cut(&self) -> bool {
        self.cut_after == Some(0)
    }
    fn range(offset: usize, len: usize) -> Result<Range<usize>, NvmError> {
        match offset.checked_add(len) {
            Some(end) if end <= N => Ok(offset..end),
            _ => Err(NvmError::OutOfBounds),
        }
    }
}

impl<const N: usize> Default for RamNvm<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Nvm for RamNvm<N> {
    type Error = NvmError;

    fn capacity(&self) -> usize {
        N
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), NvmError> {
        let src = self.bytes.get(Self::range(offset, buf.len())?).ok_or(NvmError::OutOfBounds)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), NvmError> {
        let dst = self.bytes.get_mut(Self::range(offset, data.len())?).ok_or(NvmError::OutOfBounds)?;
        let landed = match &mut self.cut_after {
            None => data.len(),
            Some(left) => {
                let n = data.len().min(*left);
                *left -= n; // n ≤ *left
                n
            }
        };
        for (d, s) in dst.iter_mut().zip(data).take(landed) {
            *d = *s;
        }
        Ok(())
    }
}

/// Identifies a settings record: "SP", stored `53 50`.
pub const MAGIC: u16 = 0x5053;
/// The record layout this firmware writes and reads.
pub const LAYOUT_VERSION: u8 = 2;
/// Bytes of one record.
pub const RECORD_LEN: usize = field::CRC.end;
/// Bytes reserved per slot.
pub const SLOT_LEN: usize = 128;
/// Start of slot A and slot B.
pub const SLOT_OFFSETS: [usize; 2] = [0, SLOT_LEN];
/// Storage the store needs, from offset 0.
pub const STORE_LEN: usize = 2 * SLOT_LEN;
/// Bytes written by a save that changes the settings: the invalidated magic, then the record.
pub const BYTES_PER_SAVE: usize = INVALID_MAGIC.len() + RECORD_LEN;

/// Written over the target's magic first. Differs from [`MAGIC`] in both
/// bytes, so a half-written magic is never valid.
const INVALID_MAGIC: [u8; 2] = [0x00, 0x00];

const _: () = {
    assert!(RECORD_LEN <= SLOT_LEN);
    let m = MAGIC.to_le_bytes();
    assert!(m[0] != INVALID_MAGIC[0] && m[1] != INVALID_MAGIC[1]);
    // A record of one repeated byte is blank, never a record.
    assert!(m[0] != m[1]);
};

/// Bytes of the payload: every persisted register's words.
const PAYLOAD_LEN: usize = {
    let mut n = 0;
    let mut i = 0;
    while i < map::REGISTERS.len() {
        if map::REGISTERS[i].persisted {
            n += 2 * map::REGISTERS[i].ty.words() as usize;
        }
        i += 1;
    }
    n
};

/// Byte ranges of the record fields.
mod field {
    use core::ops::Range;

    type Field = Range<usize>;

    pub const MAGIC: Field = 0..2;
    pub const VERSION: Field = 2..3;
    pub const SEQUENCE: Field = 3..7;
    pub const PAYLOAD: Field = 7..7 + super::PAYLOAD_LEN;
    pub const CRC: Field = PAYLOAD.end..PAYLOAD.end + 2;
}

type Record = [u8; RECORD_LEN];

/// The `W` bytes of field `f` (zeros if the range were wrong; the layout test rules that out).
fn get<const W: usize>(rec: &Record, f: Range<usize>) -> [u8; W] {
    rec.get(f).and_then(|s| s.try_into().ok()).unwrap_or([0; W])
}

fn set(rec: &mut Record, f: Range<usize>, bytes: &[u8]) {
    if let Some(dst) = rec.get_mut(f) {
        for (d, s) in dst.iter_mut().zip(bytes) {
            *d = *s;
        }
    }
}

/// CRC of everything before the CRC field.
fn body_crc(rec: &Record) -> u16 {
    crc16(rec.get(..field::CRC.start).unwrap_or_default())
}

/// The record of `s` with `sequence`. Does not check `s`.
fn encode(s: &Settings, sequence: u32) -> Record {
    let mut rec = [0; RECORD_LEN];
    set(&mut rec, field::MAGIC, &MAGIC.to_le_bytes());
    set(&mut rec, field::VERSION, &[LAYOUT_VERSION]);
    set(&mut rec, field::SEQUENCE, &sequence.to_le_bytes());
    let mut at = field::PAYLOAD.start;
    for def in map::settings() {
        let n = 2 * usize::from(def.ty.words());
        // Two's complement, truncated to the register's width (its range fits it: map tests).
        let raw = s.get(def.id).unwrap_or(0).to_le_bytes();
        set(&mut rec, at..at + n, raw.get(..n).unwrap_or_default());
        at += n;
    }
    let crc = body_crc(&rec);
    set(&mut rec, field::CRC, &crc.to_le_bytes());
    rec
}

/// The payload of a record (over the defaults of `variant`, which every
/// field then replaces); `None` if a value does not fit its field. Does not
/// check the header, the CRC or the ranges.
fn decode(rec: &Record, variant: Variant) -> Option<Settings> {
    let mut s = Settings::defaults(variant);
    let mut at = field::PAYLOAD.start;
    for def in map::settings() {
        let raw = if def.ty.words() == 2 {
            let b: [u8; 4] = get(rec, at..at + 4);
            if def.ty.signed() { i64::from(i32::from_le_bytes(b)) } else { i64::from(u32::from_le_bytes(b)) }
        } else {
            let b: [u8; 2] = get(rec, at..at + 2);
            if def.ty.signed() { i64::from(i16::from_le_bytes(b)) } else { i64::from(u16::from_le_bytes(b)) }
        };
        if !s.set(def.id, raw) {
            return None;
        }
        at += 2 * usize::from(def.ty.words());
    }
    Some(s)
}

/// Settings a register write could have produced: every field within its
/// register's range, and [`Settings::validate`].
fn check(s: &Settings, variant: Variant) -> Result<(), ValueError> {
    s.check(variant).map_err(|e| match e {
        SettingsError::OutOfRange(id) => ValueError::OutOfRange(id),
        e => ValueError::Inconsistent(e),
    })
}

/// Is sequence `a` newer than `b`? Serial-number arithmetic: `a` is newer if
/// it is 1..2³¹ steps ahead of `b`, so the count may wrap past `u32::MAX`.
fn is_newer(a: u32, b: u32) -> bool {
    let ahead = a.wrapping_sub(b);
    ahead != 0 && ahead < 1 << 31
}

/// The other slot.
const fn other(index: usize) -> usize {
    if index == 0 { 1 } else { 0 }
}

/// Why a slot's record was not used, and why defaults were. Ordered by how far
/// a record got through the checks: with no usable slot, the furthest reason is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Never written: every byte 0xFF (erased) or 0x00.
    Blank,
    /// Bad magic or CRC mismatch: a torn write or decayed cells.
    Corrupt,
    /// A record of another layout version (e.g. after a firmware downgrade).
    VersionMismatch,
    /// An intact record whose values this firmware refuses (out of a register's
    /// range, inconsistent, or not for this variant).
    InvalidValues,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Blank => "settings storage is blank",
            Reason::Corrupt => "settings record is corrupt (bad magic or CRC)",
            Reason::VersionMismatch => "settings record has another layout version",
            Reason::InvalidValues => "settings record holds invalid values",
        })
    }
}

/// Where loaded settings came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The newest valid record: slot 0 (A) or 1 (B), with its sequence number.
    Slot { index: usize, sequence: u32 },
    /// No slot held a valid record; the variant's factory defaults.
    Defaults(Reason),
}

/// The result of [`SettingsStore::load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub settings: Settings,
    pub source: Source,
}

impl Loaded {
    pub fn used_defaults(&self) -> bool {
        matches!(self.source, Source::Defaults(_))
    }
}

/// The result of [`SettingsStore::save`]: the slot now holding the newest record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub index: usize,
    pub sequence: u32,
    /// False if the newest record already held these settings (nothing written).
    pub written: bool,
}

/// Why settings are refused for storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The field written through this register is outside the register's range.
    OutOfRange(RegId),
    /// The fields contradict each other or the variant.
    Inconsistent(SettingsError),
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueError::OutOfRange(id) => {
                let name = map::by_id(*id).map_or("a setting", |d| d.name);
                write!(f, "{name} is outside its register's range")
            }
            ValueError::Inconsistent(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// Why [`SettingsStore::load`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError<E> {
    /// The storage failed.
    Nvm(E),
    /// The storage is smaller than [`STORE_LEN`].
    TooSmall,
}

impl<E: fmt::Debug> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Nvm(e) => write!(f, "settings storage failed: {e:?}"),
            LoadError::TooSmall => write!(f, "settings storage is smaller than {STORE_LEN} bytes"),
        }
    }
}

/// Why [`SettingsStore::save`] failed. The previous newest record is intact in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveError<E> {
    /// The storage failed.
    Nvm(E),
    /// The storage is smaller than [`STORE_LEN`].
    TooSmall,
    /// The settings would not load again; nothing was written.
    Invalid(ValueError),
    /// The slot did not read back as written.
    VerifyFailed,
}

impl<E> From<LoadError<E>> for SaveError<E> {
    fn from(e: LoadError<E>) -> Self {
        match e {
            LoadError::Nvm(e) => SaveError::Nvm(e),
            LoadError::TooSmall => SaveError::TooSmall,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for SaveError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveError::Nvm(e) => write!(f, "settings storage failed: {e:?}"),
            SaveError::TooSmall => write!(f, "settings storage is smaller than {STORE_LEN} bytes"),
            SaveError::Invalid(e) => write!(f, "settings not saved: {e}"),
            SaveError::VerifyFailed => f.write_str("settings record did not read back as written"),
        }
    }
}

/// What a slot holds: a usable record, or why not.
type SlotState = Result<(u32, Settings), Reason>;

/// Reads and writes a board's settings in the two slots at [`SLOT_OFFSETS`].
///
/// Stateless apart from the variant: every call reads the slots, so a record
/// that decayed since the last call is never mistaken for the good one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingsStore {
    variant: Variant,
}

impl SettingsStore {
    /// The store of a `variant` board: records are checked against its limits.
    pub const fn new(variant: Variant) -> Self {
        SettingsStore { variant }
    }

    pub const fn variant(&self) -> Variant {
        self.variant
    }

    /// The newest valid settings, or the variant's defaults and why.
    pub fn load<N: Nvm>(&self, nvm: &mut N) -> Result<Loaded, LoadError<N::Error>> {
        #[cfg(feature = "prove-panic-nvm")]
        crate::prove_panic_path();
        let slots = self.scan(nvm)?;
        Ok(match newest(&slots) {
            Some((index, sequence, settings)) => Loaded { settings, source: Source::Slot { index, sequence } },
            None => {
                let reason = slots.iter().filter_map(|s| s.err()).max().unwrap_or(Reason::Blank);
                Loaded { settings: Settings::defaults(self.variant), source: Source::Defaults(reason) }
            }
        })
    }

    /// Stores `settings` in the slot not holding the newest valid record (see
    /// the [module docs](self)). Settings equal to the newest record's are not
    /// written again.
    pub fn save<N: Nvm>(&self, nvm: &mut N, settings: &Settings) -> Result<Saved, SaveError<N::Error>> {
        check(settings, self.variant).map_err(SaveError::Invalid)?;
        let slots = self.scan(nvm)?;
        let (index, sequence) = match newest(&slots) {
            Some((index, sequence, current)) if current == *settings => {
                return Ok(Saved { index, sequence, written: false });
            }
            Some((index, sequence, _)) => (other(index), sequence.wrapping_add(1)),
            None => (0, 0),
        };
        let base = slot_offset(index);
        let rec = encode(settings, sequence);
        let (magic, rest) = rec.split_at(field::MAGIC.end);
        nvm.write(base, &INVALID_MAGIC).map_err(SaveError::Nvm)?;
        nvm.write(base + field::MAGIC.end, rest).map_err(SaveError::Nvm)?;
        nvm.write(base, magic).map_err(SaveError::Nvm)?;
        let mut back = [0; RECORD_LEN];
        nvm.read(base, &mut back).map_err(SaveError::Nvm)?;
        if back != rec {
            return Err(SaveError::VerifyFailed);
        }
        Ok(Saved { index, sequence, written: true })
    }

    fn scan<N: Nvm>(&self, nvm: &mut N) -> Result<[SlotState; 2], LoadError<N::Error>> {
        if nvm.capacity() < STORE_LEN {
            return Err(LoadError::TooSmall);
        }
        let mut slots = [Err(Reason::Blank); 2];
        for (index, slot) in slots.iter_mut().enumerate() {
            let mut rec = [0; RECORD_LEN];
            nvm.read(slot_offset(index), &mut rec).map_err(LoadError::Nvm)?;
            *slot = inspect(&rec, self.variant);
        }
        Ok(slots)
    }
}

const fn slot_offset(index: usize) -> usize {
    if index == 0 { SLOT_OFFSETS[0] } else { SLOT_OFFSETS[1] }
}

/// Checks a slot's bytes, in the order blank → magic → version → CRC → values.
fn inspect(rec: &Record, variant: Variant) -> SlotState {
    if rec.iter().all(|&b| b == ERASED) || rec.iter().all(|&b| b == 0) {
        return Err(Reason::Blank);
    }
    if get(rec, field::MAGIC) != MAGIC.to_le_bytes() {
        return Err(Reason::Corrupt);
    }
    if get(rec, field::VERSION) != [LAYOUT_VERSION] {
        return Err(Reason::VersionMismatch);
    }
    if u16::from_le_bytes(get(rec, field::CRC)) != body_crc(rec) {
        return Err(Reason::Corrupt);
    }
    let settings = decode(rec, variant).ok_or(Reason::InvalidValues)?;
    check(&settings, variant).map_err(|_| Reason::InvalidValues)?;
    Ok((u32::from_le_bytes(get(rec, field::SEQUENCE)), settings))
}

/// The usable record with the newest sequence: (slot, sequence, settings). On a
/// tie (only a crafted image has one) slot A wins.
fn newest(slots: &[SlotState; 2]) -> Option<(usize, u32, Settings)> {
    let mut best: Option<(usize, u32, Settings)> = None;
    for (index, slot) in slots.iter().enumerate() {
        if let Ok((sequence, settings)) = *slot {
            if best.is_none_or(|(_, b, _)| is_newer(sequence, b)) {
                best = Some((index, sequence, settings));
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Eeprom = RamNvm<256>;
    const V: Variant = Variant::V24;

    fn store() -> SettingsStore {
        SettingsStore::new(V)
    }

    /// Distinct valid settings, numbered.
    fn settings(n: u16) -> Settings {
        let mut s = Settings::defaults(V);
        s.capacity_dah = 100 + n;
        s.lvp_delay_ms = 1_000 + n;
        s.calibration.current_offset_code = -7 * i32::from(n);
        s.calibration.temperature_offset_dc = (n % 50) as i16;
        s
    }

    fn with(f: impl FnOnce(&mut Settings)) -> Settings {
        let mut s = settings(1);
        f(&mut s);
        s
    }

    fn put(nvm: &mut Eeprom, index: usize, rec: &Record) {
        let at = SLOT_OFFSETS[index];
        nvm.bytes_mut()[at..at + RECORD_LEN].copy_from_slice(rec);
    }

    fn slot(index: usize, sequence: u32) -> Source {
        Source::Slot { index, sequence }
    }

    #[test]
    fn record_layout_is_fixed() {
        let mut s = Settings::defaults(V);
        s.capacity_dah = 0x0102;
        s.calibration.current_offset_code = -2;
        s.calibration.current_gain_pa_per_code = 0x0361_1314;
        let rec = encode(&s, 0xA1B2_C3D4);
        // Header, then the persisted registers in table order, little-endian.
        assert_eq!(rec[..7], [0x53, 0x50, LAYOUT_VERSION, 0xD4, 0xC3, 0xB2, 0xA1]);
        let at = field::PAYLOAD.start + payload_offset(RegId::Capacity);
        assert_eq!(rec[at..at + 2], [0x02, 0x01]);
        // A 32-bit register in four bytes, two's complement.
        let at = field::PAYLOAD.start + payload_offset(RegId::CurrentOffset);
        assert_eq!(rec[at..at + 8], [0xFE, 0xFF, 0xFF, 0xFF, 0x14, 0x13, 0x61, 0x03]);
        assert_eq!(crc16(&rec), 0, "a whole record checks to zero, as a Modbus ADU does");
        assert_eq!(decode(&rec, V), Some(s));
    }

    /// Offset of a register's bytes within the payload.
    fn payload_offset(id: RegId) -> usize {
        map::settings().take_while(|d| d.id != id).map(|d| 2 * usize::from(d.ty.words())).sum()
    }

    #[test]
    fn fields_tile_the_record() {
        let all = [field::MAGIC, field::VERSION, field::SEQUENCE, field::PAYLOAD, field::CRC];
        let mut end = 0;
        for f in all {
            assert_eq!(f.start, end, "{f:?}");
            assert!(f.end > f.start);
            end = f.end;
        }
        assert_eq!(end, RECORD_LEN);
    }

    #[test]
    fn every_persisted_register_round_trips_through_the_record() {
        // Each field at a distinct in-range value: no field is lost or swapped.
        let mut s = Settings::defaults(V);
        for (k, def) in map::settings().enumerate() {
            let raw = def.min + (k as i64 + 1).min(def.max - def.min);
            assert!(s.set(def.id, raw), "{}", def.name);
        }
        assert_eq!(decode(&encode(&s, 1), V), Some(s));
    }

    #[test]
    fn defaults_pass_the_store_checks() {
        for v in [Variant::V12, Variant::V24, Variant::V48] {
            assert_eq!(check(&Settings::defaults(v), v), Ok(()), "{v:?}");
        }
    }

    #[test]
    fn round_trip_for_every_variant() {
        for v in [Variant::V12, Variant::V24, Variant::V48] {
            let store = SettingsStore::new(v);
            let mut s = Settings::defaults(v);
            s.ovp_delay_ms = 1_234;
            s.calibration.current_gain_pa_per_code = 60_000_001;
            let mut nvm = Eeprom::new();
            assert_eq!(store.save(&mut nvm, &s), Ok(Saved { index: 0, sequence: 0, written: true }));
            assert_eq!(store.load(&mut nvm), Ok(Loaded { settings: s, source: slot(0, 0) }));
        }
    }

    #[test]
    fn saves_alternate_slots_and_count_up() {
        let mut nvm = Eeprom::new();
        for (n, index) in [0, 1, 0, 1, 0].into_iter().enumerate() {
            let s = settings(n as u16);
            let sequence = n as u32;
            assert_eq!(store().save(&mut nvm, &s), Ok(Saved { index, sequence, written: true }));
            assert_eq!(store().load(&mut nvm), Ok(Loaded { settings: s, source: slot(index, sequence) }));
        }
    }

    #[test]
    fn saving_unchanged_settings_writes_nothing() {
        let mut nvm = Eeprom::new();
        store().save(&mut nvm, &settings(1)).unwrap();
        store().save(&mut nvm, &settings(2)).unwrap();
        let before = nvm.clone();
        assert_eq!(store().save(&mut nvm, &settings(2)), Ok(Saved { index: 1, sequence: 1, written: false }));
        assert_eq!(nvm, before);
    }

    /// Starting from `prior`, whose newest record is `old`, a save of new settings
    /// cut after every possible number of bytes leaves either the old or the new
    /// record, never defaults; and the next full save recovers.
    fn cut_at_every_byte(prior: &Eeprom) {
        let old = store().load(&mut prior.clone()).unwrap();
        let Source::Slot { index, sequence } = old.source else { panic!("prior holds no record: {old:?}") };
        let new = settings(900);
        assert_ne!(old.settings, new);
        for k in 0..=BYTES_PER_SAVE + 2 {
            let mut nvm = prior.clone();
            nvm.cut_power_after(k);
            let result = store().save(&mut nvm, &new);
            nvm.restore_power();
            let loaded = store().load(&mut nvm).unwrap();
            if k >= BYTES_PER_SAVE {
                let sequence = sequence.wrapping_add(1);
                assert_eq!(result, Ok(Saved { index: other(index), sequence, written: true }), "k={k}");
                assert_eq!(loaded, Loaded { settings: new, source: slot(other(index), sequence) }, "k={k}");
            } else {
                assert_eq!(result, Err(SaveError::VerifyFailed), "k={k}");
                assert_eq!(loaded, old, "k={k}");
            }
            // Power back: the next save lands whatever the cut left behind.
            let next = settings(901);
            let saved = store().save(&mut nvm, &next).unwrap();
            assert_eq!(
                store().load(&mut nvm).unwrap(),
                Loaded { settings: next, source: slot(saved.index, saved.sequence) }
            );
        }
    }

    #[test]
    fn power_cut_at_every_byte_keeps_the_last_good_settings() {
        // The target slot is blank.
        let mut nvm = Eeprom::new();
        store().save(&mut nvm, &settings(1)).unwrap();
        cut_at_every_byte(&nvm);
        // The target slot holds an older valid record (torn = new prefix + old suffix).
        store().save(&mut nvm, &settings(2)).unwrap();
        cut_at_every_byte(&nvm);
        store().save(&mut nvm, &settings(3)).unwrap();
        cut_at_every_byte(&nvm);
        // Zero-filled storage.
        let mut nvm = RamNvm::from_bytes([0; 256]);
        store().save(&mut nvm, &settings(1)).unwrap();
        cut_at_every_byte(&nvm);
    }

    #[test]
    fn power_cut_at_every_byte_across_the_sequence_wrap() {
        for (a, b) in [(u32::MAX - 1, Some(u32::MAX)), (u32::MAX, Some(u32::MAX - 1)), (u32::MAX, None)] {
            let mut nvm = Eeprom::new();
            put(&mut nvm, 0, &encode(&settings(1), a));
            if let Some(b) = b {
                put(&mut nvm, 1, &encode(&settings(2), b));
            }
            let newest = if b == Some(u32::MAX) { slot(1, u32::MAX) } else { slot(0, u32::MAX) };
            assert_eq!(store().load(&mut nvm).unwrap().source, newest);
            cut_at_every_byte(&nvm);
            // Uncut, the count wraps to 0 and 0 is newer than u32::MAX.
            let saved = store().save(&mut nvm, &settings(3)).unwrap();
            assert_eq!(saved.sequence, 0);
            assert_eq!(store().load(&mut nvm).unwrap(), Loaded { settings: settings(3), source: slot(saved.index, 0) });
        }
    }

    #[test]
    fn sequence_comparison_is_wrap_aware() {
        assert!(is_newer(1, 0));
        assert!(!is_newer(0, 1));
        assert!(is_newer(0, u32::MAX));
        assert!(!is_newer(u32::MAX, 0));
        assert!(is_newer(5, u32::MAX - 5));
        assert!(!is_newer(7, 7));
        // Exactly half the circle apart: neither is newer, slot A wins the tie.
        assert!(!is_newer(1 << 31, 0) && !is_newer(0, 1 << 31));
        let mut nvm = Eeprom::new();
        put(&mut nvm, 0, &encode(&settings(1), 1 << 31));
        put(&mut nvm, 1, &encode(&settings(2), 0));
        assert_eq!(store().load(&mut nvm).unwrap().source, slot(0, 1 << 31));
    }

    #[test]
    fn any_corrupted_byte_falls_back_to_the_other_slot() {
        let mut nvm = Eeprom::new();
        store().save(&mut nvm, &settings(1)).unwrap(); // A, sequence 0
        store().save(&mut nvm, &settings(2)).unwrap(); // B, sequence 1
        let newest = Loaded { settings: settings(2), source: slot(1, 1) };
        let older = Loaded { settings: settings(1), source: slot(0, 0) };
        for (bad_slot, expected) in [(1, older), (0, newest)] {
            for i in 0..RECORD_LEN {
                // Every error pattern within one byte is a burst of ≤ 8 bits, which CRC-16 always detects.
                for mask in 1..=u8::MAX {
                    let mut bad = nvm.clone();
                    bad.bytes_mut()[SLOT_OFFSETS[bad_slot] + i] ^= mask;
                    assert_eq!(store().load(&mut bad), Ok(expected), "slot {bad_slot} byte {i} ^ {mask:#04x}");
                }
            }
        }
    }

    #[test]
    fn a_save_after_the_newest_record_decayed_keeps_the_intact_one() {
        let mut nvm = Eeprom::new();
        store().save(&mut nvm, &settings(1)).unwrap(); // A, 0
        store().save(&mut nvm, &settings(2)).unwrap(); // B, 1
        nvm.bytes_mut()[SLOT_OFFSETS[1] + 10] ^= 0x10;
        // B is no longer valid: the save goes to B, and A's record survives a cut.
        let mut cut = nvm.clone();
        cut.cut_power_after(20);
        let _ = store().save(&mut cut, &settings(3));
        cut.restore_power();
        assert_eq!(store().load(&mut cut).unwrap(), Loaded { settings: settings(1), source: slot(0, 0) });
        assert_eq!(store().save(&mut nvm, &settings(3)), Ok(Saved { index: 1, sequence: 1, written: true }));
        assert_eq!(store().load(&mut nvm).unwrap(), Loaded { settings: settings(3), source: slot(1, 1) });
    }

    #[test]
    fn blank_storage_gives_defaults() {
        for mut nvm in [Eeprom::new(), RamNvm::from_bytes([0; 256])] {
            let loaded = store().load(&mut nvm).unwrap();
            assert_eq!(loaded, Loaded { settings: Settings::defaults(V), source: Source::Defaults(Reason::Blank) });
            assert!(loaded.used_defaults());
        }
    }

    #[test]
    fn defaults_report_the_furthest_reason() {
        let mut nvm = Eeprom::new();
        let mut torn = encode(&settings(1), 3);
        torn[20] ^= 1;
        put(&mut nvm, 1, &torn);
        assert_eq!(store().load(&mut nvm).unwrap().source, Source::Defaults(Reason::Corrupt));
        let mut other_layout = encode(&settings(1), 4);
        other_layout[field::VERSION.start] = LAYOUT_VERSION.wrapping_add(1);
        let crc = body_crc(&other_layout).to_le_bytes();
        other_layout[field::CRC].copy_from_slice(&crc);
        put(&mut nvm, 0, &other_layout);
        assert_eq!(store().load(&mut nvm).unwrap().source, Source::Defaults(Reason::VersionMismatch));
        put(&mut nvm, 1, &encode(&with(|s| s.capacity_dah = 0), 5));
        assert_eq!(store().load(&mut nvm).unwrap().source, Source::Defaults(Reason::InvalidValues));
    }

    /// Settings a register write could not produce, each with the error it draws.
    fn refused() -> [(Settings, ValueError); 9] {
        use SettingsError::*;
        use ValueError::{Inconsistent, OutOfRange};
        [
            (with(|s| s.capacity_dah = 9), OutOfRange(RegId::Capacity)),
            (with(|s| s.lvp_delay_ms = 60_001), OutOfRange(RegId::LvpDelay)),
            (with(|s| s.lvp_mv = 3_999), OutOfRange(RegId::LvpThreshold)),
            (with(|s| s.calibration.current_offset_code = -100_001), OutOfRange(RegId::CurrentOffset)),
            (with(|s| s.calibration.current_gain_pa_per_code = 0), OutOfRange(RegId::CurrentGain)),
            (with(|s| s.calibration.voltage_gain_pv_per_code = 9_500_001), OutOfRange(RegId::VoltageGain)),
            (with(|s| s.calibration.temperature_offset_dc = 101), OutOfRange(RegId::TemperatureOffset)),
            (with(|s| s.lvp_release_mv = s.lvp_mv), Inconsistent(LvpReleaseNotAboveThreshold)),
            // In the register's range, above the 24 V variant's 30 V.
            (with(|s| s.ovp_mv = 30_100), Inconsistent(AboveMaxOperatingVoltage)),
        ]
    }

    #[test]
    fn intact_records_with_invalid_values_are_rejected() {
        for (bad, err) in refused() {
            assert_eq!(check(&bad, V), Err(err));
            // Newer than the good record in A, but refused.
            let mut nvm = Eeprom::new();
            store().save(&mut nvm, &settings(1)).unwrap();
            put(&mut nvm, 1, &encode(&bad, 1));
            assert_eq!(store().load(&mut nvm), Ok(Loaded { settings: settings(1), source: slot(0, 0) }), "{err}");
            // Alone: defaults.
            let mut nvm = Eeprom::new();
            put(&mut nvm, 0, &encode(&bad, 1));
            assert_eq!(store().load(&mut nvm).unwrap().source, Source::Defaults(Reason::InvalidValues), "{err}");
        }
    }

    #[test]
    fn invalid_settings_are_not_saved() {
        let mut nvm = Eeprom::new();
        store().save(&mut nvm, &settings(1)).unwrap();
        let before = nvm.clone();
        for (bad, err) in refused() {
            assert_eq!(store().save(&mut nvm, &bad), Err(SaveError::Invalid(err)));
        }
        assert_eq!(nvm, before);
    }

    #[test]
    fn records_are_checked_against_the_stores_variant() {
        let mut nvm = Eeprom::new();
        SettingsStore::new(Variant::V48).save(&mut nvm, &Settings::defaults(Variant::V48)).unwrap();
        // 58.4 V OVP is above a 12 V board's 15 V.
        let loaded = SettingsStore::new(Variant::V12).load(&mut nvm).unwrap();
        assert_eq!(loaded.source, Source::Defaults(Reason::InvalidValues));
        assert_eq!(loaded.settings, Settings::defaults(Variant::V12));
    }

    #[test]
    fn storage_smaller_than_two_slots_is_refused() {
        let mut nvm = RamNvm::<{ STORE_LEN - 1 }>::new();
        assert_eq!(store().load(&mut nvm), Err(LoadError::TooSmall));
        assert_eq!(store().save(&mut nvm, &settings(1)), Err(SaveError::TooSmall));
        let mut exact = RamNvm::<STORE_LEN>::new();
        store().save(&mut exact, &settings(1)).unwrap();
        assert_eq!(store().load(&mut exact).unwrap().settings, settings(1));
    }

    /// Fails its `fail_at`-th write call, or every read.
    #[derive(Debug)]
    struct Faulty {
        inner: Eeprom,
        writes: usize,
        fail_at: usize,
        fail_reads: bool,
    }

    impl Nvm for Faulty {
        type Error = ();
        fn capacity(&self) -> usize {
            self.inner.capacity()
        }
        fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), ()> {
            if self.fail_reads {
                return Err(());
            }
            self.inner.read(offset, buf).map_err(|_| ())
        }
        fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), ()> {
            self.writes += 1;
            if self.writes == self.fail_at {
                return Err(());
            }
            self.inner.write(offset, data).map_err(|_| ())
        }
    }

    #[test]
    fn storage_errors_are_reported_and_keep_the_old_record() {
        let mut good = Eeprom::new();
        store().save(&mut good, &settings(1)).unwrap();
        for fail_at in 1..=3 {
            let mut nvm = Faulty { inner: good.clone(), writes: 0, fail_at, fail_reads: false };
            assert_eq!(store().save(&mut nvm, &settings(2)), Err(SaveError::Nvm(())), "write {fail_at}");
            assert_eq!(store().load(&mut nvm.inner).unwrap().settings, settings(1));
        }
        let mut nvm = Faulty { inner: good, writes: 0, fail_at: 0, fail_reads: true };
        assert_eq!(store().load(&mut nvm), Err(LoadError::Nvm(())));
        assert_eq!(store().save(&mut nvm, &settings(2)), Err(SaveError::Nvm(())));
        assert_eq!(nvm.writes, 0);
        // Through `&mut T`.
        let mut inner = Eeprom::new();
        let mut by_ref = &mut inner;
        store().save(&mut by_ref, &settings(3)).unwrap();
        assert_eq!(store().load(&mut inner).unwrap().settings, settings(3));
    }

    #[test]
    fn ram_nvm_bounds_and_power_cut() {
        let mut nvm = RamNvm::<8>::new();
        let mut buf = [0; 4];
        assert_eq!(nvm.read(5, &mut buf), Err(NvmError::OutOfBounds));
        assert_eq!(nvm.read(usize::MAX, &mut buf), Err(NvmError::OutOfBounds));
        assert_eq!(nvm.write(6, &[1, 2, 3]), Err(NvmError::OutOfBounds));
        assert_eq!(nvm.write(usize::MAX, &[1]), Err(NvmError::OutOfBounds));
        assert_eq!(nvm.bytes(), &[ERASED; 8], "a refused write changes nothing");
        nvm.write(8, &[]).unwrap();
        nvm.cut_power_after(3);
        assert!(!nvm.is_power_cut());
        nvm.write(0, &[1, 2]).unwrap();
        nvm.write(2, &[3, 4, 5]).unwrap(); // only 3 lands
        nvm.write(5, &[6]).unwrap(); // lost
        assert!(nvm.is_power_cut());
        assert_eq!(nvm.bytes(), &[1, 2, 3, ERASED, ERASED, ERASED, ERASED, ERASED]);
        nvm.restore_power();
        nvm.write(4, &[9, 9]).unwrap();
        nvm.read(2, &mut buf).unwrap();
        assert_eq!(buf, [3, ERASED, 9, 9]);
    }

    #[test]
    fn errors_display() {
        let texts = [
            NvmError::OutOfBounds.to_string(),
            Reason::VersionMismatch.to_string(),
            ValueError::OutOfRange(RegId::CurrentGain).to_string(),
            LoadError::<NvmError>::TooSmall.to_string(),
            SaveError::Nvm(NvmError::OutOfBounds).to_string(),
            SaveError::<NvmError>::Invalid(ValueError::Inconsistent(SettingsError::LvpAboveOvp)).to_string(),
        ];
        assert!(texts[2].contains("current_gain_pa_per_code"), "{}", texts[2]);
        assert!(texts[5].contains("LVP release"), "{}", texts[5]);
        assert!(texts.iter().all(|t| !t.is_empty()));
    }

    /// Any field values, mostly invalid.
    fn any_settings() -> impl Strategy<Value = Settings> {
        let n = map::settings().count();
        proptest::collection::vec(any::<i64>(), n).prop_map(|raws| {
            let mut s = Settings::defaults(V);
            for (def, raw) in map::settings().zip(raws) {
                // Any value of the register's type, in or out of its range.
                let words = def.ty.encode(raw);
                s.set(def.id, def.ty.decode(&words));
            }
            s
        })
    }

    /// Settings a 24 V board accepts.
    fn valid_settings() -> impl Strategy<Value = Settings> {
        (
            (10u16..=60_000, 0u16..=60_000, 0u16..=60_000, 8_000u16..=10_000),
            (-100_000i32..=100_000, 56_000_000u32..=63_000_000, 2_000_000u32..=9_500_000, -100i16..=100),
        )
            .prop_map(|((cap, ld, od, eff), (off, ig, vg, t))| {
                let mut s = Settings::defaults(V);
                s.capacity_dah = cap;
                s.lvp_delay_ms = ld;
                s.ovp_delay_ms = od;
                s.charge_efficiency_centipct = eff;
                s.calibration.current_offset_code = off;
                s.calibration.current_gain_pa_per_code = ig;
                s.calibration.voltage_gain_pv_per_code = vg;
                s.calibration.temperature_offset_dc = t;
                s
            })
    }

    /// Storage images: random bytes, or two CRC-valid records of any values
    /// and sequences with a few bytes overwritten.
    fn any_image() -> impl Strategy<Value = [u8; STORE_LEN]> {
        prop_oneof![
            any::<[u8; STORE_LEN]>(),
            (
                any_settings(),
                valid_settings(),
                any::<[u32; 2]>(),
                any::<bool>(),
                proptest::collection::vec((0..STORE_LEN, any::<u8>()), 0..4),
            )
                .prop_map(|(a, b, seq, swap, edits)| {
                    let (a, b) = if swap { (b, a) } else { (a, b) };
                    let mut img = [ERASED; STORE_LEN];
                    img[..RECORD_LEN].copy_from_slice(&encode(&a, seq[0]));
                    img[SLOT_LEN..SLOT_LEN + RECORD_LEN].copy_from_slice(&encode(&b, seq[1]));
                    for (i, v) in edits {
                        img[i] = v;
                    }
                    img
                }),
        ]
    }

    proptest! {
        #[test]
        fn load_never_panics_nor_yields_invalid_settings(img in any_image()) {
            let mut nvm = RamNvm::from_bytes(img);
            let loaded = store().load(&mut nvm).unwrap();
            match loaded.source {
                Source::Slot { index, sequence } => {
                    prop_assert!(index < 2);
                    prop_assert_eq!(check(&loaded.settings, V), Ok(()));
                    let at = SLOT_OFFSETS[index];
                    prop_assert_eq!(&img[at..at + RECORD_LEN], &encode(&loaded.settings, sequence)[..]);
                }
                Source::Defaults(_) => prop_assert_eq!(loaded.settings, Settings::defaults(V)),
            }
        }

        #[test]
        fn a_save_lands_whatever_the_storage_held(img in any_image(), s in valid_settings()) {
            let mut nvm = RamNvm::from_bytes(img);
            let before = store().load(&mut nvm).unwrap();
            let saved = store().save(&mut nvm, &s).unwrap();
            let after = store().load(&mut nvm).unwrap();
            prop_assert_eq!(after, Loaded { settings: s, source: slot(saved.index, saved.sequence) });
            if let (Source::Slot { index, sequence }, true) = (before.source, saved.written) {
                prop_assert_eq!(saved.index, other(index));
                prop_assert_eq!(saved.sequence, sequence.wrapping_add(1));
            }
        }

        #[test]
        fn valid_settings_round_trip(s in valid_settings(), sequence in any::<u32>()) {
            prop_assert_eq!(check(&s, V), Ok(()));
            let rec = encode(&s, sequence);
            prop_assert_eq!(inspect(&rec, V), Ok((sequence, s)));
        }
    }
}
