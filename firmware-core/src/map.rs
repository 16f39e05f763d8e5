//! The board's Modbus register map: one const table, the single source of truth.
//!
//! Dispatch ([`crate::board`]), range checks, `smartpro-sim map`, the generated
//! `docs/register-map.md` and `hil-rig`'s decoding all derive from [`REGISTERS`].
//!
//! Addresses are PDU addresses (0-based). Every register is readable with both
//! function 03 (read holding registers) and 04 (read input registers). 32-bit
//! values occupy two consecutive registers, **high word first** (big-endian word
//! order, as the bytes within a word); they must be written in one request
//! that covers both words, otherwise the write is refused with exception 02.

/// The wire type of a register value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegType {
    U16,
    I16,
    /// Two registers, high word first.
    U32,
    /// Two registers, high word first, two's complement.
    I32,
}

impl RegType {
    /// Number of 16-bit registers the value occupies.
    pub const fn words(self) -> u16 {
        match self {
            RegType::U16 | RegType::I16 => 1,
            RegType::U32 | RegType::I32 => 2,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            RegType::U16 => "u16",
            RegType::I16 => "i16",
            RegType::U32 => "u32",
            RegType::I32 => "i32",
        }
    }
    pub const fn signed(self) -> bool {
        matches!(self, RegType::I16 | RegType::I32)
    }
    /// Raw integer value from its words (high word first). `words` must hold
    /// at least [`Self::words`] entries; missing words read as 0.
    pub fn decode(self, words: &[u16]) -> i64 {
        let w0 = words.first().copied().unwrap_or(0);
        let w1 = words.get(1).copied().unwrap_or(0);
        match self {
            RegType::U16 => i64::from(w0),
            RegType::I16 => i64::from(w0 as i16),
            RegType::U32 => i64::from((u32::from(w0) << 16) | u32::from(w1)),
            RegType::I32 => i64::from(((u32::from(w0) << 16) | u32::from(w1)) as i32),
        }
    }
    /// Words of a raw value (high word first), saturated to the type's range.
    pub fn encode(self, raw: i64) -> [u16; 2] {
        match self {
            RegType::U16 => [raw.clamp(0, i64::from(u16::MAX)) as u16, 0],
            RegType::I16 => [raw.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16 as u16, 0],
            RegType::U32 => {
                let v = raw.clamp(0, i64::from(u32::MAX)) as u32;
                [(v >> 16) as u16, v as u16]
            }
            RegType::I32 => {
                let v = raw.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32 as u32;
                [(v >> 16) as u16, v as u16]
            }
        }
    }
}

/// Who may do what with a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only.
    R,
    /// Read and write.
    RW,
    /// A command: writing triggers an action; reads return 0.
    W,
}

impl Access {
    pub const fn name(self) -> &'static str {
        match self {
            Access::R => "R",
            Access::RW => "RW",
            Access::W => "W",
        }
    }
    pub const fn writable(self) -> bool {
        matches!(self, Access::RW | Access::W)
    }
}

/// Identifies a register's meaning to the board's dispatch code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegId {
    DeviceType,
    VariantV,
    FirmwareVersion,
    SerialNumber,
    BatteryVoltage,
    Current,
    Soc,
    Temperature,
    Status,
    Faults,
    RemainingCharge,
    Uptime,
    ChargedTotal,
    DischargedTotal,
    Capacity,
    LvpThreshold,
    LvpRelease,
    LvpDelay,
    OvpThreshold,
    OvpRelease,
    OvpDelay,
    CurrentOffset,
    CurrentGain,
    VoltageGain,
    TemperatureOffset,
    SetSoc,
    ClearFaults,
}

/// One row of the register map.
#[derive(Clone, Copy, Debug)]
pub struct RegDef {
    pub addr: u16,
    pub id: RegId,
    /// Unit-suffixed name, as printed by `smartpro-sim map` and `hil-rig`.
    pub name: &'static str,
    pub ty: RegType,
    /// Physical value = raw × `scale`, in `unit`.
    pub scale: f64,
    pub unit: &'static str,
    pub access: Access,
    /// Kept in the settings image across power loss.
    pub persisted: bool,
    /// Accepted raw range for writes (inclusive); for read-only registers, the documented range.
    pub min: i64,
    pub max: i64,
    pub description: &'static str,
}

impl RegDef {
    /// Physical value of a raw register value.
    pub fn to_physical(&self, raw: i64) -> f64 {
        raw as f64 * self.scale
    }
    /// Does this register occupy `addr`?
    pub const fn covers(&self, addr: u16) -> bool {
        addr >= self.addr && (addr as u32) < self.addr as u32 + self.ty.words() as u32
    }
}

/// Bits of the `status` register.
pub mod status {
    /// Main switch (MOSFETs) closed.
    pub const SWITCH_ON: u16 = 1 << 0;
    /// LVP control output active: the load may draw.
    pub const LVP_OUTPUT: u16 = 1 << 1;
    /// OVP control output active: the charger may charge.
    pub const OVP_OUTPUT: u16 = 1 << 2;
    /// Current above +0.5 A.
    pub const CHARGING: u16 = 1 << 3;
    /// Current below −0.5 A.
    pub const DISCHARGING: u16 = 1 << 4;
    /// SOC has been set by a command or synchronised, not only estimated from voltage.
    pub const SOC_SYNCED: u16 = 1 << 5;
    pub const NAMES: &[(u16, &str)] = &[
        (SWITCH_ON, "switch_on"),
        (LVP_OUTPUT, "lvp_output"),
        (OVP_OUTPUT, "ovp_output"),
        (CHARGING, "charging"),
        (DISCHARGING, "discharging"),
        (SOC_SYNCED, "soc_synced"),
    ];
}

/// Bits of the `faults` register (latched until released or cleared).
pub mod faults {
    /// Battery voltage below the LVP threshold for longer than the LVP delay.
    pub const LVP: u16 = 1 << 0;
    /// Battery voltage above the OVP threshold for longer than the OVP delay.
    pub const OVP: u16 = 1 << 1;
    /// LiPro loop: LVP control input lost its control voltage (a cell under-voltage).
    pub const LVP_INPUT: u16 = 1 << 2;
    /// LiPro loop: OVP control input lost its control voltage (a cell over-voltage).
    pub const OVP_INPUT: u16 = 1 << 3;
    /// An ADC channel is at its saturation limit.
    pub const ADC_SATURATED: u16 = 1 << 4;
    pub const NAMES: &[(u16, &str)] = &[
        (LVP, "lvp"),
        (OVP, "ovp"),
        (LVP_INPUT, "lvp_input"),
        (OVP_INPUT, "ovp_input"),
        (ADC_SATURATED, "adc_saturated"),
    ];
}

/// Row constructor: keeps the table one line per register.
#[allow(clippy::too_many_arguments)]
const fn reg(
    addr: u16,
    id: RegId,
    name: &'static str,
    ty: RegType,
    scale: f64,
    unit: &'static str,
    access: Access,
    persisted: bool,
    min: i64,
    max: i64,
    description: &'static str,
) -> RegDef {
    RegDef { addr, id, name, ty, scale, unit, access, persisted, min, max, description }
}

use Access::{R, RW, W};
use RegType::{I16, I32, U16, U32};

const U32_MAX: i64 = u32::MAX as i64;

/// Device type reported in register 0: the board's family number.
pub const DEVICE_TYPE: u16 = 209;

/// The register map, sorted by address.
#[rustfmt::skip]
pub const REGISTERS: &[RegDef] = &[
    // --- identification (0x0000) ---
    reg(0x0000, RegId::DeviceType, "device_type", U16, 1.0, "", R, false, 209, 209, "Board family: 209 (SmartPro-209)"),
    reg(0x0001, RegId::VariantV, "variant_v", U16, 1.0, "V", R, false, 12, 48, "Nominal system voltage of the variant: 12, 24 or 48"),
    reg(0x0002, RegId::FirmwareVersion, "firmware_version", U16, 1.0, "", R, false, 0, 0xFFFF, "Firmware version, major × 256 + minor"),
    reg(0x0003, RegId::SerialNumber, "serial_number", U32, 1.0, "", R, true, 0, U32_MAX, "Serial number"),
    // --- measurements (0x0100) ---
    reg(0x0100, RegId::BatteryVoltage, "battery_voltage_mv", U16, 0.001, "V", R, false, 0, 65535, "Battery voltage (measuring range 15/30/60 V per variant)"),
    reg(0x0101, RegId::Current, "current_ma", I32, 0.001, "A", R, false, -500_000, 500_000, "Battery current, + = charge, − = discharge; 1 mA resolution, ±250 A range"),
    reg(0x0103, RegId::Soc, "soc_centipct", U16, 0.01, "%", R, false, 0, 10000, "State of charge (Ah method)"),
    reg(0x0104, RegId::Temperature, "temperature_dc", I16, 0.1, "°C", R, false, -550, 1500, "Battery temperature (NTC); −55.0 reads an open sensor, 150.0 a shorted one"),
    reg(0x0105, RegId::Status, "status", U16, 1.0, "bits", R, false, 0, 0xFFFF, "Status bits: see the status table"),
    reg(0x0106, RegId::Faults, "faults", U16, 1.0, "bits", R, false, 0, 0xFFFF, "Fault bits (latched): see the fault table"),
    reg(0x0107, RegId::RemainingCharge, "remaining_mah", U32, 0.001, "Ah", R, false, 0, U32_MAX, "Remaining charge: SOC × capacity"),
    reg(0x0109, RegId::Uptime, "uptime_s", U32, 1.0, "s", R, false, 0, U32_MAX, "Time since power-up"),
    reg(0x010B, RegId::ChargedTotal, "charged_total_mah", U32, 0.001, "Ah", R, false, 0, U32_MAX, "Total charge into the battery since power-up (saturates)"),
    reg(0x010D, RegId::DischargedTotal, "discharged_total_mah", U32, 0.001, "Ah", R, false, 0, U32_MAX, "Total charge out of the battery since power-up (saturates)"),
    // --- settings (0x0200) ---
    reg(0x0200, RegId::Capacity, "capacity_dah", U16, 0.1, "Ah", RW, true, 10, 60000, "Rated battery capacity, 1.0 to 6000.0 Ah"),
    reg(0x0201, RegId::LvpThreshold, "lvp_mv", U16, 0.001, "V", RW, true, 4000, 60000, "LVP: trips below this battery voltage (must be < lvp_release_mv)"),
    reg(0x0202, RegId::LvpRelease, "lvp_release_mv", U16, 0.001, "V", RW, true, 4000, 60000, "LVP releases above this voltage"),
    reg(0x0203, RegId::LvpDelay, "lvp_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "LVP: voltage must stay below the threshold this long"),
    reg(0x0204, RegId::OvpThreshold, "ovp_mv", U16, 0.001, "V", RW, true, 4000, 60000, "OVP: trips above this battery voltage (must be > ovp_release_mv, ≤ max operating voltage)"),
    reg(0x0205, RegId::OvpRelease, "ovp_release_mv", U16, 0.001, "V", RW, true, 4000, 60000, "OVP releases below this voltage"),
    reg(0x0206, RegId::OvpDelay, "ovp_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "OVP: voltage must stay above the threshold this long"),
    // --- calibration (0x0300) ---
    reg(0x0300, RegId::CurrentOffset, "current_offset_code", I32, 1.0, "code", RW, true, -100_000, 100_000, "Current channel ADC code at zero current"),
    reg(0x0302, RegId::CurrentGain, "current_gain_pa_per_code", U32, 1e-12, "A/code", RW, true, 56_000_000, 63_000_000, "Current per ADC code (nominal 59 604 645 pA/code)"),
    reg(0x0304, RegId::VoltageGain, "voltage_gain_pv_per_code", U32, 1e-12, "V/code", RW, true, 2_000_000, 9_500_000, "Battery voltage per ADC code (nominal 2 235 174 / 4 470 348 / 8 940 697 pV/code for 12/24/48 V)"),
    reg(0x0306, RegId::TemperatureOffset, "temperature_offset_dc", I16, 0.1, "°C", RW, true, -100, 100, "Added to the NTC temperature"),
    // --- commands (0x0400) ---
    reg(0x0400, RegId::SetSoc, "set_soc_centipct", U16, 0.01, "%", W, false, 0, 10000, "Command: set the SOC (e.g. after a known full charge)"),
    reg(0x0401, RegId::ClearFaults, "clear_faults", U16, 1.0, "", W, false, 1, 1, "Command: write 1 to clear latched faults whose condition has gone"),
];

/// The register that occupies `addr`, if any.
pub fn find(addr: u16) -> Option<&'static RegDef> {
    // The table is sorted and small; a binary search over start addresses.
    let idx = REGISTERS.partition_point(|r| r.addr <= addr);
    let r = REGISTERS.get(idx.checked_sub(1)?)?;
    if r.covers(addr) { Some(r) } else { None }
}

/// The register with this name, if any.
pub fn by_name(name: &str) -> Option<&'static RegDef> {
    REGISTERS.iter().find(|r| r.name == name)
}

/// The register with this id.
pub fn by_id(id: RegId) -> Option<&'static RegDef> {
    REGISTERS.iter().find(|r| r.id == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_sorted_unique_and_do_not_overlap() {
        for pair in REGISTERS.windows(2) {
            let end = pair[0].addr as u32 + pair[0].ty.words() as u32;
            assert!(end <= pair[1].addr as u32, "{} overlaps {}", pair[0].name, pair[1].name);
        }
    }

    #[test]
    fn names_and_ids_are_unique() {
        for (i, a) in REGISTERS.iter().enumerate() {
            for b in &REGISTERS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.id, b.id, "{} and {}", a.name, b.name);
            }
        }
    }

    #[test]
    fn writable_ranges_fit_their_type() {
        for r in REGISTERS {
            assert!(r.min <= r.max, "{}", r.name);
            for v in [r.min, r.max] {
                let words = r.ty.encode(v);
                assert_eq!(r.ty.decode(&words), v, "{} bound {v} does not fit {:?}", r.name, r.ty);
            }
        }
    }

    #[test]
    fn find_resolves_both_words_of_32_bit_registers() {
        assert_eq!(find(0x0101).map(|r| r.id), Some(RegId::Current));
        assert_eq!(find(0x0102).map(|r| r.id), Some(RegId::Current));
        assert_eq!(find(0x0103).map(|r| r.id), Some(RegId::Soc));
        assert!(find(0x0005).is_none());
        assert!(find(0xFFFF).is_none());
    }

    #[test]
    fn i32_round_trips_high_word_first() {
        let w = RegType::I32.encode(-1234);
        assert_eq!(w, [0xFFFF, 0xFB2E]);
        assert_eq!(RegType::I32.decode(&w), -1234);
        assert_eq!(RegType::U16.encode(70_000)[0], u16::MAX);
    }
}
