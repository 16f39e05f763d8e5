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
    // identification
    DeviceType,
    VariantV,
    FirmwareVersion,
    SerialNumber,
    // measurements
    BatteryVoltage,
    Current,
    Soc,
    Temperature,
    Status,
    Faults,
    RemainingCharge,
    Uptime,
    Power,
    Clock,
    // SOC
    SocAh,
    SocWh,
    SocTemperatureCompensated,
    RemainingEnergy,
    UsableCapacity,
    // diagnostics
    Soh,
    CapacityEstimate,
    InternalResistance,
    InternalResistanceValid,
    Efficiency,
    ChargedTotal,
    DischargedTotal,
    ChargedEnergyTotal,
    DischargedEnergyTotal,
    Cycles,
    MinVoltage,
    MaxVoltage,
    MinTemperature,
    MaxTemperature,
    MaxChargeCurrent,
    MaxDischargeCurrent,
    TimeSinceFull,
    LastCalTime,
    LastCalKind,
    SocSyncLast,
    SocSyncPoint,
    SocSyncBound,
    SocSyncRefused,
    // fault log: count, then entries (0 = newest)
    FaultLogCount,
    FaultLogTime(u8),
    FaultLogCode(u8),
    FaultLogValue(u8),
    // settings
    Capacity,
    SocMethod,
    ChargeEfficiency,
    SelfConsumptionCounted,
    FullVoltage,
    FullTailCurrent,
    FullDelay,
    LvpThreshold,
    LvpRelease,
    LvpDelay,
    OvpThreshold,
    OvpRelease,
    OvpDelay,
    OccThreshold,
    OccDelay,
    OcdThreshold,
    OcdDelay,
    OcRetry,
    OtcThreshold,
    UtcThreshold,
    OtdThreshold,
    UtdThreshold,
    TempHysteresis,
    TempDelay,
    ScAutoRetry,
    ScRetry,
    ScMaxRetries,
    AuxMode,
    AuxOn,
    AuxOff,
    AuxSoc,
    // calibration
    CurrentOffset,
    CurrentGain,
    VoltageGain,
    TemperatureOffset,
    CurrentGainTc,
    // commands
    SetSoc,
    ClearFaults,
    ResetCounters,
    CalUnlock,
    CalZeroCurrent,
    CalCurrent,
    CalVoltage,
}

impl RegId {
    /// Writes to these registers need the calibration unlock ([`CAL_UNLOCK_KEY`]
    /// written to `cal_unlock` less than [`CAL_UNLOCK_WINDOW_S`] before); a
    /// locked write is refused with exception 01 (the board is in the wrong
    /// state for it).
    pub const fn protected(self) -> bool {
        matches!(
            self,
            RegId::CurrentOffset
                | RegId::CurrentGain
                | RegId::VoltageGain
                | RegId::TemperatureOffset
                | RegId::CurrentGainTc
                | RegId::CalZeroCurrent
                | RegId::CalCurrent
                | RegId::CalVoltage
        )
    }
}

/// Written to `cal_unlock` to open the calibration registers.
pub const CAL_UNLOCK_KEY: u16 = 0xCA1B;
/// How long the calibration registers stay open after the unlock, s.
pub const CAL_UNLOCK_WINDOW_S: u64 = 60;
/// Written to `reset_counters` to clear totals, extremes and the fault log.
pub const RESET_COUNTERS_KEY: u16 = 0x5A5A;
/// Entries in the fault log.
pub const FAULT_LOG_LEN: usize = 8;

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
    /// Aux output on.
    pub const AUX_ON: u16 = 1 << 6;
    /// Calibration registers unlocked.
    pub const CAL_UNLOCKED: u16 = 1 << 7;
    /// Full charge detected since the last discharge.
    pub const FULL: u16 = 1 << 8;
    pub const NAMES: &[(u16, &str)] = &[
        (SWITCH_ON, "switch_on"),
        (LVP_OUTPUT, "lvp_output"),
        (OVP_OUTPUT, "ovp_output"),
        (CHARGING, "charging"),
        (DISCHARGING, "discharging"),
        (SOC_SYNCED, "soc_synced"),
        (AUX_ON, "aux_on"),
        (CAL_UNLOCKED, "cal_unlocked"),
        (FULL, "full"),
    ];
}

/// Bits of the `faults` register: the protection functions currently tripped
/// (each also logged in the fault log with its time). Codes in the fault
/// log are the bit numbers.
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
    /// Charge current above `occ_da` for `occ_delay_ms`.
    pub const OCC: u16 = 1 << 5;
    /// Discharge current above `ocd_da` for `ocd_delay_ms`.
    pub const OCD: u16 = 1 << 6;
    /// Too hot to charge.
    pub const OTC: u16 = 1 << 7;
    /// Too cold to charge (LiFePO4: below 0 °C).
    pub const UTC: u16 = 1 << 8;
    /// Too hot to discharge.
    pub const OTD: u16 = 1 << 9;
    /// Too cold to discharge.
    pub const UTD: u16 = 1 << 10;
    /// The hardware short-circuit comparator latched.
    pub const SHORT_CIRCUIT: u16 = 1 << 11;
    /// The aux output driver reported over-current (variant limit 10/5/2.5 A).
    pub const AUX_OVERCURRENT: u16 = 1 << 12;
    /// The battery (the aux output's supply) above the aux output's max switching
    /// voltage (variant rating 15/30/60 V): the aux output is held off.
    pub const AUX_OVERVOLTAGE: u16 = 1 << 13;
    pub const NAMES: &[(u16, &str)] = &[
        (LVP, "lvp"),
        (OVP, "ovp"),
        (LVP_INPUT, "lvp_input"),
        (OVP_INPUT, "ovp_input"),
        (ADC_SATURATED, "adc_saturated"),
        (OCC, "occ"),
        (OCD, "ocd"),
        (OTC, "otc"),
        (UTC, "utc"),
        (OTD, "otd"),
        (UTD, "utd"),
        (SHORT_CIRCUIT, "short_circuit"),
        (AUX_OVERCURRENT, "aux_overcurrent"),
        (AUX_OVERVOLTAGE, "aux_overvoltage"),
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

/// Device type reported in register 0: the board family number.
pub const DEVICE_TYPE: u16 = 209;

/// The three registers of fault-log entry `$i` at `$addr`.
macro_rules! log_entry {
    ($i:literal, $addr:expr) => {
        [
            reg(
                $addr,
                RegId::FaultLogTime($i),
                concat!("fault_log_", stringify!($i), "_time_s"),
                U32,
                1.0,
                "s",
                R,
                false,
                0,
                U32_MAX,
                concat!("Fault log entry ", stringify!($i), " (0 = newest): board clock when it happened"),
            ),
            reg(
                $addr + 2,
                RegId::FaultLogCode($i),
                concat!("fault_log_", stringify!($i), "_code"),
                U16,
                1.0,
                "",
                R,
                false,
                0,
                15,
                "Fault bit number (see the fault table); 0 with time 0: empty",
            ),
            reg(
                $addr + 3,
                RegId::FaultLogValue($i),
                concat!("fault_log_", stringify!($i), "_value"),
                I16,
                1.0,
                "",
                R,
                false,
                -32768,
                32767,
                "Value at the trip: voltage in 10 mV, current in 0.1 A or temperature in 0.1 °C",
            ),
        ]
    };
}

const LOG: [[RegDef; 3]; FAULT_LOG_LEN] = [
    log_entry!(0, 0x0181),
    log_entry!(1, 0x0185),
    log_entry!(2, 0x0189),
    log_entry!(3, 0x018D),
    log_entry!(4, 0x0191),
    log_entry!(5, 0x0195),
    log_entry!(6, 0x0199),
    log_entry!(7, 0x019D),
];

const fn log_row(i: usize) -> RegDef {
    LOG[i / 3][i % 3]
}

/// The register map, sorted by address.
#[rustfmt::skip]
pub const REGISTERS: &[RegDef] = &[
    // --- identification (0x0000) ---
    reg(0x0000, RegId::DeviceType, "device_type", U16, 1.0, "", R, false, 209, 209, "Board family: 209 (SmartPro-209)"),
    reg(0x0001, RegId::VariantV, "variant_v", U16, 1.0, "V", R, false, 12, 48, "Nominal system voltage of the variant: 12, 24 or 48"),
    reg(0x0002, RegId::FirmwareVersion, "firmware_version", U16, 1.0, "", R, false, 0, 0xFFFF, "Firmware version, major × 256 + minor"),
    reg(0x0003, RegId::SerialNumber, "serial_number", U32, 1.0, "", R, false, 0, U32_MAX, "Serial number (factory)"),
    // --- measurements (0x0100) ---
    reg(0x0100, RegId::BatteryVoltage, "battery_voltage_mv", U16, 0.001, "V", R, false, 0, 65535, "Battery voltage (measuring range 15/30/60 V per variant)"),
    reg(0x0101, RegId::Current, "current_ma", I32, 0.001, "A", R, false, -500_000, 500_000, "Battery current, + = charge, − = discharge; 1 mA resolution, ±250 A range"),
    reg(0x0103, RegId::Soc, "soc_centipct", U16, 0.01, "%", R, false, 0, 10000, "State of charge by the method chosen in soc_method"),
    reg(0x0104, RegId::Temperature, "temperature_dc", I16, 0.1, "°C", R, false, -550, 1500, "Battery temperature (NTC); −55.0 reads an open sensor, 150.0 a shorted one"),
    reg(0x0105, RegId::Status, "status", U16, 1.0, "bits", R, false, 0, 0xFFFF, "Status bits: see the status table"),
    reg(0x0106, RegId::Faults, "faults", U16, 1.0, "bits", R, false, 0, 0xFFFF, "Active faults: see the fault table"),
    reg(0x0107, RegId::RemainingCharge, "remaining_mah", U32, 0.001, "Ah", R, false, 0, U32_MAX, "Remaining charge (Ah method)"),
    reg(0x0109, RegId::Uptime, "uptime_s", U32, 1.0, "s", R, false, 0, U32_MAX, "Time since power-up"),
    reg(0x010B, RegId::Power, "power_dw", I32, 0.1, "W", R, false, -3_000_000, 3_000_000, "Battery power, + = charge"),
    reg(0x010D, RegId::Clock, "clock_s", U32, 1.0, "s", RW, false, 0, U32_MAX, "Board clock: seconds since power-up unless set (e.g. to Unix time) by a gateway; stamps calibrations and the fault log"),
    // --- state of charge (0x0110) ---
    reg(0x0110, RegId::SocAh, "soc_ah_centipct", U16, 0.01, "%", R, false, 0, 10000, "SOC, Ah method: remaining charge / rated capacity"),
    reg(0x0111, RegId::SocWh, "soc_wh_centipct", U16, 0.01, "%", R, false, 0, 10000, "SOC, Wh method: remaining energy / rated energy"),
    reg(0x0112, RegId::SocTemperatureCompensated, "soc_temp_centipct", U16, 0.01, "%", R, false, 0, 10000, "SOC, temperature-compensated: remaining charge / capacity usable at the present temperature"),
    reg(0x0113, RegId::RemainingEnergy, "remaining_wh", U32, 1.0, "Wh", R, false, 0, U32_MAX, "Remaining energy (Wh method)"),
    reg(0x0115, RegId::UsableCapacity, "usable_capacity_dah", U16, 0.1, "Ah", R, false, 0, 65535, "Capacity usable at the present temperature"),
    // --- diagnostics (0x0120) ---
    reg(0x0120, RegId::Soh, "soh_centipct", U16, 0.01, "%", R, false, 0, 20000, "State of health: estimated capacity / rated capacity"),
    reg(0x0121, RegId::CapacityEstimate, "capacity_estimate_dah", U16, 0.1, "Ah", R, false, 0, 65535, "Capacity measured over full and anchored partial passages (0: none yet)"),
    reg(0x0122, RegId::InternalResistance, "internal_resistance_uohm", U32, 1e-6, "Ω", R, false, 0, U32_MAX, "Battery internal resistance from ΔV/ΔI at current steps, filtered"),
    reg(0x0124, RegId::InternalResistanceValid, "internal_resistance_valid", U16, 1.0, "", R, false, 0, 1, "1 once enough current steps were seen"),
    reg(0x0125, RegId::Efficiency, "efficiency_centipct", U16, 0.01, "%", R, false, 0, 10000, "Battery efficiency: Wh out / Wh in over the last completed full-to-full cycle (0: none yet)"),
    reg(0x0126, RegId::ChargedTotal, "charged_total_dah", U32, 0.1, "Ah", R, false, 0, U32_MAX, "Total charge into the battery"),
    reg(0x0128, RegId::DischargedTotal, "discharged_total_dah", U32, 0.1, "Ah", R, false, 0, U32_MAX, "Total charge out of the battery"),
    reg(0x012A, RegId::ChargedEnergyTotal, "charged_total_wh", U32, 1.0, "Wh", R, false, 0, U32_MAX, "Total energy into the battery"),
    reg(0x012C, RegId::DischargedEnergyTotal, "discharged_total_wh", U32, 1.0, "Wh", R, false, 0, U32_MAX, "Total energy out of the battery"),
    reg(0x012E, RegId::Cycles, "cycles_centi", U32, 0.01, "", R, false, 0, U32_MAX, "Equivalent full cycles: discharged Ah / rated capacity"),
    reg(0x0130, RegId::MinVoltage, "min_voltage_mv", U16, 0.001, "V", R, false, 0, 65535, "Lowest battery voltage seen"),
    reg(0x0131, RegId::MaxVoltage, "max_voltage_mv", U16, 0.001, "V", R, false, 0, 65535, "Highest battery voltage seen"),
    reg(0x0132, RegId::MinTemperature, "min_temperature_dc", I16, 0.1, "°C", R, false, -550, 1500, "Lowest battery temperature seen"),
    reg(0x0133, RegId::MaxTemperature, "max_temperature_dc", I16, 0.1, "°C", R, false, -550, 1500, "Highest battery temperature seen"),
    reg(0x0134, RegId::MaxChargeCurrent, "max_charge_current_ma", I32, 0.001, "A", R, false, 0, 500_000, "Highest charge current seen"),
    reg(0x0136, RegId::MaxDischargeCurrent, "max_discharge_current_ma", I32, 0.001, "A", R, false, 0, 500_000, "Highest discharge current seen (magnitude)"),
    reg(0x0138, RegId::TimeSinceFull, "time_since_full_s", U32, 1.0, "s", R, false, 0, U32_MAX, "Time since the last full charge was detected (4294967295: never)"),
    reg(0x013A, RegId::LastCalTime, "last_cal_time_s", U32, 1.0, "s", R, true, 0, U32_MAX, "Board clock at the last calibration"),
    reg(0x013C, RegId::LastCalKind, "last_cal_kind", U16, 1.0, "", R, true, 0, 3, "Last calibration: 0 none, 1 current zero, 2 current gain, 3 voltage"),
    reg(0x013D, RegId::SocSyncLast, "soc_sync_last", U16, 1.0, "", R, false, 0, 4, "Last SOC sync point: 0 none, 1 full, 2 empty (applied); 3 full, 4 empty refused (bound above 0.5 %)"),
    reg(0x013E, RegId::SocSyncPoint, "soc_sync_point_centipct", U16, 0.01, "%", R, false, 0, 10000, "The charge SOC the last sync point stood for (OCV of the cell voltage less overpotential and hysteresis)"),
    reg(0x013F, RegId::SocSyncBound, "soc_sync_bound_centipct", U16, 0.01, "%", R, false, 0, 10000, "Error bound of the last sync point; applied only if ≤ 0.50 %"),
    reg(0x0140, RegId::SocSyncRefused, "soc_sync_refused_count", U16, 1.0, "", R, false, 0, 65535, "Sync points refused since power-up (wraps)"),
    // --- fault log (0x0180) ---
    reg(0x0180, RegId::FaultLogCount, "fault_log_count", U16, 1.0, "", R, false, 0, 65535, "Faults logged since the last counter reset (wraps)"),
    log_row(0), log_row(1), log_row(2), log_row(3), log_row(4), log_row(5), log_row(6), log_row(7),
    log_row(8), log_row(9), log_row(10), log_row(11), log_row(12), log_row(13), log_row(14), log_row(15),
    log_row(16), log_row(17), log_row(18), log_row(19), log_row(20), log_row(21), log_row(22), log_row(23),
    // --- settings (0x0200) ---
    reg(0x0200, RegId::Capacity, "capacity_dah", U16, 0.1, "Ah", RW, true, 10, 60000, "Rated battery capacity, 1.0 to 6000.0 Ah"),
    reg(0x0201, RegId::SocMethod, "soc_method", U16, 1.0, "", RW, true, 0, 2, "SOC shown in soc_centipct: 0 Ah, 1 Wh, 2 temperature-compensated"),
    reg(0x0202, RegId::ChargeEfficiency, "charge_efficiency_centipct", U16, 0.01, "%", RW, true, 8000, 10000, "Share of the charge into the battery that is counted"),
    reg(0x0203, RegId::SelfConsumptionCounted, "self_consumption_counted", U16, 1.0, "", RW, true, 0, 1, "1: the board's own 0.1 W (drawn before the shunt) is counted as discharge; 0: not (calibration)"),
    reg(0x0204, RegId::FullVoltage, "full_mv", U16, 0.001, "V", RW, true, 4000, 60000, "Full charge: voltage above this …"),
    reg(0x0205, RegId::FullTailCurrent, "full_tail_da", U16, 0.1, "A", RW, true, 1, 2000, "… and charge current below this …"),
    reg(0x0206, RegId::FullDelay, "full_delay_s", U16, 1.0, "s", RW, true, 1, 3600, "… for this long: SOC is set to the SOC derived at the criterion (if its bound allows)"),
    reg(0x0210, RegId::LvpThreshold, "lvp_mv", U16, 0.001, "V", RW, true, 4000, 60000, "LVP: trips below this battery voltage (must be < lvp_release_mv)"),
    reg(0x0211, RegId::LvpRelease, "lvp_release_mv", U16, 0.001, "V", RW, true, 4000, 60000, "LVP releases above this voltage"),
    reg(0x0212, RegId::LvpDelay, "lvp_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "LVP: voltage must stay below the threshold this long"),
    reg(0x0213, RegId::OvpThreshold, "ovp_mv", U16, 0.001, "V", RW, true, 4000, 60000, "OVP: trips above this battery voltage (must be > ovp_release_mv, ≤ max operating voltage)"),
    reg(0x0214, RegId::OvpRelease, "ovp_release_mv", U16, 0.001, "V", RW, true, 4000, 60000, "OVP releases below this voltage"),
    reg(0x0215, RegId::OvpDelay, "ovp_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "OVP: voltage must stay above the threshold this long"),
    reg(0x0216, RegId::OccThreshold, "occ_da", U16, 0.1, "A", RW, true, 10, 3000, "Over-current charge: trips above this charge current"),
    reg(0x0217, RegId::OccDelay, "occ_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "Over-current charge delay"),
    reg(0x0218, RegId::OcdThreshold, "ocd_da", U16, 0.1, "A", RW, true, 10, 3000, "Over-current discharge: trips above this discharge current"),
    reg(0x0219, RegId::OcdDelay, "ocd_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "Over-current discharge delay"),
    reg(0x021A, RegId::OcRetry, "oc_retry_s", U16, 1.0, "s", RW, true, 0, 3600, "Over-current trips release after this long (0: only by clear_faults)"),
    reg(0x021B, RegId::OtcThreshold, "otc_dc", I16, 0.1, "°C", RW, true, 0, 800, "No charging above this temperature"),
    reg(0x021C, RegId::UtcThreshold, "utc_dc", I16, 0.1, "°C", RW, true, -400, 200, "No charging below this temperature (LiFePO4: 0 °C)"),
    reg(0x021D, RegId::OtdThreshold, "otd_dc", I16, 0.1, "°C", RW, true, 0, 800, "No discharging above this temperature"),
    reg(0x021E, RegId::UtdThreshold, "utd_dc", I16, 0.1, "°C", RW, true, -400, 200, "No discharging below this temperature"),
    reg(0x021F, RegId::TempHysteresis, "temp_hysteresis_dc", U16, 0.1, "°C", RW, true, 0, 200, "Temperature trips release this far inside their limit"),
    reg(0x0220, RegId::TempDelay, "temp_delay_ms", U16, 0.001, "s", RW, true, 0, 60000, "Temperature trip delay"),
    reg(0x0221, RegId::ScAutoRetry, "sc_auto_retry", U16, 1.0, "", RW, true, 0, 1, "Short-circuit latch: 0 manual reset (clear_faults), 1 automatic retry"),
    reg(0x0222, RegId::ScRetry, "sc_retry_s", U16, 1.0, "s", RW, true, 1, 3600, "Short circuit: wait before an automatic retry"),
    reg(0x0223, RegId::ScMaxRetries, "sc_max_retries", U16, 1.0, "", RW, true, 0, 10, "Short circuit: automatic retries before a manual reset is needed"),
    reg(0x0230, RegId::AuxMode, "aux_mode", U16, 1.0, "", RW, true, 0, 5, "Aux output: 0 off, 1 on, 2 heating, 3 on while SOC ≥ aux_soc, 4 on while SOC < aux_soc, 5 on any fault"),
    reg(0x0231, RegId::AuxOn, "aux_on_dc", I16, 0.1, "°C", RW, true, -400, 600, "Heating: on at or below this temperature"),
    reg(0x0232, RegId::AuxOff, "aux_off_dc", I16, 0.1, "°C", RW, true, -400, 600, "Heating: off at or above this temperature"),
    reg(0x0233, RegId::AuxSoc, "aux_soc_centipct", U16, 0.01, "%", RW, true, 0, 10000, "SOC display threshold"),
    // --- calibration (0x0300, write after cal_unlock) ---
    reg(0x0300, RegId::CurrentOffset, "current_offset_code", I32, 1.0, "code", RW, true, -100_000, 100_000, "Current channel ADC code at zero current"),
    reg(0x0302, RegId::CurrentGain, "current_gain_pa_per_code", U32, 1e-12, "A/code", RW, true, 56_000_000, 63_000_000, "Current per ADC code at 25 °C (nominal 59 604 645 pA/code)"),
    reg(0x0304, RegId::VoltageGain, "voltage_gain_pv_per_code", U32, 1e-12, "V/code", RW, true, 2_000_000, 9_500_000, "Battery voltage per ADC code (nominal 2 235 174 / 4 470 348 / 8 940 697 pV/code for 12/24/48 V)"),
    reg(0x0306, RegId::TemperatureOffset, "temperature_offset_dc", I16, 0.1, "°C", RW, true, -100, 100, "Added to the NTC temperature"),
    reg(0x0307, RegId::CurrentGainTc, "current_gain_tc_ppm_per_k", I16, 1.0, "ppm/K", RW, true, -200, 200, "Temperature coefficient of the current gain, corrected with the battery temperature"),
    // --- commands (0x0400) ---
    reg(0x0400, RegId::SetSoc, "set_soc_centipct", U16, 0.01, "%", W, false, 0, 10000, "Command: set the SOC of every method (e.g. after a known full charge)"),
    reg(0x0401, RegId::ClearFaults, "clear_faults", U16, 1.0, "", W, false, 1, 1, "Command: write 1 to clear latched faults whose condition has gone (also resets a short-circuit latch)"),
    reg(0x0402, RegId::ResetCounters, "reset_counters", U16, 1.0, "", W, false, 0x5A5A, 0x5A5A, "Command: write 0x5A5A to reset totals, extremes, cycle count and the fault log"),
    reg(0x0403, RegId::CalUnlock, "cal_unlock", U16, 1.0, "", W, false, 0xCA1B, 0xCA1B, "Command: write 0xCA1B to open the calibration registers for 60 s"),
    reg(0x0404, RegId::CalZeroCurrent, "cal_zero_current", U16, 1.0, "", W, false, 1, 1, "Calibration: write 1 with no current flowing; the mean code of the last second becomes the offset"),
    reg(0x0405, RegId::CalCurrent, "cal_current_ma", I32, 0.001, "A", W, false, -300_000, 300_000, "Calibration: write the reference current now flowing (|I| ≥ 10 A); the gain is set from the mean code of the last second"),
    reg(0x0407, RegId::CalVoltage, "cal_voltage_mv", U16, 0.001, "V", W, false, 1000, 65000, "Calibration: write the reference battery voltage now applied; the voltage gain is set from the mean code of the last second"),
];

/// The settings registers: every register kept in the settings EEPROM.
pub fn settings() -> impl Iterator<Item = &'static RegDef> {
    REGISTERS.iter().filter(|r| r.persisted)
}

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
    fn fault_log_rows_are_contiguous() {
        let first = by_id(RegId::FaultLogTime(0)).unwrap();
        let last = by_id(RegId::FaultLogValue(FAULT_LOG_LEN as u8 - 1)).unwrap();
        assert_eq!(first.addr, 0x0181);
        assert_eq!(last.addr as usize, 0x0181 + 4 * FAULT_LOG_LEN - 1);
        assert_eq!(by_name("fault_log_7_code").map(|r| r.id), Some(RegId::FaultLogCode(7)));
    }

    #[test]
    fn i32_round_trips_high_word_first() {
        let w = RegType::I32.encode(-1234);
        assert_eq!(w, [0xFFFF, 0xFB2E]);
        assert_eq!(RegType::I32.decode(&w), -1234);
        assert_eq!(RegType::U16.encode(70_000)[0], u16::MAX);
    }
}
