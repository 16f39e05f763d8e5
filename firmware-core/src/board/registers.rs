//! The board's register face: the value behind every register of
//! [`map::REGISTERS`], and register writes, staged on a copy and applied only if
//! the whole request is valid. [`Core`] is the [`RegisterBank`] the Modbus slave
//! and [`Board::read_registers`](super::Board::read_registers) /
//! [`Board::write_registers`](super::Board::write_registers) act on.
//!
//! Time-dependent effects of a write (the calibration averaging window, the
//! calibration unlock, the clock, the calibration stamp) run on the board's own
//! clock, the time of its last poll, as reads do: a write carries no time of its
//! own. On the real board the two agree within one 10 ms poll period; in a twin
//! served at `--speed K` the transport runs on the wall clock, which is not the
//! board's.

use super::{CAL_MIN_CURRENT_MA, Core, FIRMWARE_REVISION, FIRMWARE_VERSION, REST_CURRENT_UA, VENDOR_NAME};
use crate::diag::{FaultLog, Totals};
use crate::map::{self, RegDef, RegId, status};
use crate::modbus::{ExceptionCode, RegisterBank, RegisterKind};
use crate::settings::{Settings, Variant, cal_kind};
use crate::soc;
use crate::time::{Duration, Instant};

impl Core {
    fn status_bits(&self, now: Instant) -> u16 {
        let o = &self.outputs;
        let i = self.meas.current_ua;
        [
            (o.switch_on, status::SWITCH_ON),
            (o.lvp_output, status::LVP_OUTPUT),
            (o.ovp_output, status::OVP_OUTPUT),
            (i > REST_CURRENT_UA, status::CHARGING),
            (i < -REST_CURRENT_UA, status::DISCHARGING),
            (self.soc_synced, status::SOC_SYNCED),
            (o.aux_on, status::AUX_ON),
            (self.cal_unlocked(now), status::CAL_UNLOCKED),
            (self.full, status::FULL),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |s, (_, bit)| s | bit)
    }

    fn cal_unlocked(&self, now: Instant) -> bool {
        self.cal_unlocked_until.is_some_and(|until| now < until)
    }

    /// The raw value of a register.
    fn value(&self, id: RegId) -> i64 {
        if let Some(v) = self.settings.get(id) {
            return v;
        }
        let m = &self.meas;
        let t = &self.totals;
        let dah = |uah: u64| (uah / 100_000) as i64;
        let wh = |mwh: u64| (mwh / 1_000) as i64;
        let or0 = |x: i64, seen: bool| if seen { x } else { 0 };
        let seen = t.max_voltage_mv >= t.min_voltage_mv;
        match id {
            RegId::DeviceType => i64::from(map::DEVICE_TYPE),
            RegId::VariantV => i64::from(self.variant.nominal_v()),
            RegId::FirmwareVersion => i64::from(FIRMWARE_VERSION),
            RegId::SerialNumber => i64::from(self.serial_number),
            RegId::BatteryVoltage => i64::from(m.voltage_mv()),
            RegId::Current => i64::from(m.current_ma()),
            RegId::Soc => i64::from(self.soc_selected()),
            RegId::Temperature => i64::from(m.temperature_dc),
            RegId::Status => i64::from(self.status_bits(self.now)),
            RegId::Faults => i64::from(self.outputs.faults),
            RegId::RemainingCharge => self.soc.remaining_uah() / 1_000,
            RegId::Uptime => self.started.map_or(0, |s| self.now.saturating_since(s).as_secs() as i64),
            RegId::Power => i64::from(soc::power_mw(m.current_ua, m.voltage_uv)) / 100,
            RegId::Clock => i64::from(self.clock_s(self.now)),
            RegId::SocAh => i64::from(self.soc.soc_ah()),
            RegId::SocWh => i64::from(self.soc.soc_wh()),
            RegId::SocTemperatureCompensated => i64::from(self.soc.soc_temperature_compensated(m.temperature_dc)),
            RegId::RemainingEnergy => self.soc.remaining_mwh() / 1_000,
            RegId::UsableCapacity => self.soc.usable_uah(m.temperature_dc) / 100_000,
            RegId::Soh => i64::from(self.capacity.soh_centipct(self.soc.capacity_uah())),
            RegId::CapacityEstimate => self.capacity.capacity_uah() / 100_000,
            RegId::InternalResistance => i64::from(self.ir.resistance_uohm()),
            RegId::InternalResistanceValid => i64::from(self.ir.valid()),
            RegId::Efficiency => i64::from(self.capacity.efficiency_centipct()),
            RegId::ChargedTotal => dah(t.charged.micro_hours()),
            RegId::DischargedTotal => dah(t.discharged.micro_hours()),
            RegId::ChargedEnergyTotal => wh(t.charged_energy.micro_hours()),
            RegId::DischargedEnergyTotal => wh(t.discharged_energy.micro_hours()),
            RegId::Cycles => {
                let cap = self.soc.capacity_uah().max(1).unsigned_abs();
                (u128::from(t.discharged.micro_hours()) * 100 / u128::from(cap)) as i64
            }
            RegId::MinVoltage => or0(i64::from(t.min_voltage_mv), seen),
            RegId::MaxVoltage => or0(i64::from(t.max_voltage_mv), seen),
            RegId::MinTemperature => or0(i64::from(t.min_temperature_dc), seen),
            RegId::MaxTemperature => or0(i64::from(t.max_temperature_dc), seen),
            RegId::MaxChargeCurrent => i64::from(t.max_charge_ma),
            RegId::MaxDischargeCurrent => i64::from(t.max_discharge_ma),
            RegId::TimeSinceFull => {
                self.last_full.map_or(i64::from(u32::MAX), |f| self.now.saturating_since(f).as_secs() as i64)
            }
            RegId::SocSyncLast => i64::from(soc::SyncPoint::code(self.last_sync)),
            RegId::SocSyncPoint => self.last_sync.map_or(0, |p| i64::from(p.soc_centipct)),
            RegId::SocSyncBound => self.last_sync.map_or(0, |p| i64::from(p.bound_centipct)),
            RegId::SocSyncRefused => i64::from(self.syncs_refused),
            RegId::FaultLogCount => i64::from(self.log.count()),
            RegId::FaultLogTime(i) => i64::from(self.log.get(usize::from(i)).time_s),
            RegId::FaultLogCode(i) => i64::from(self.log.get(usize::from(i)).code),
            RegId::FaultLogValue(i) => i64::from(self.log.get(usize::from(i)).value),
            // Settings were answered above; commands read as 0.
            _ => 0,
        }
    }

    /// Applies one range-checked raw value to the staged settings, or queues a command.
    fn stage(&self, now: Instant, def: &RegDef, raw: i64, st: &mut Staged) -> Result<(), ExceptionCode> {
        if raw < def.min || raw > def.max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if def.id.protected() && !self.cal_unlocked(now) {
            // Modbus: exception 01 also means "the server is in the wrong state for this request".
            return Err(ExceptionCode::IllegalFunction);
        }
        let clock = self.clock_s(now);
        match def.id {
            RegId::SetSoc => st.set_soc = Some(raw as u16),
            RegId::ClearFaults => st.clear_faults = true,
            RegId::ResetCounters => st.reset_counters = true,
            RegId::CalUnlock => st.unlock = true,
            RegId::Clock => st.clock = Some(raw as u32),
            RegId::CalZeroCurrent => {
                let (i_code, _) = self.window.mean.ok_or(ExceptionCode::ServerDeviceBusy)?;
                st.settings.calibration.current_offset_code = i_code;
                st.stamp(clock, cal_kind::CURRENT_ZERO);
            }
            RegId::CalCurrent => {
                let (i_code, _) = self.window.mean.ok_or(ExceptionCode::ServerDeviceBusy)?;
                let net = i64::from(i_code) - i64::from(st.settings.calibration.current_offset_code);
                if raw.abs() < i64::from(CAL_MIN_CURRENT_MA) || net == 0 || (net < 0) != (raw < 0) {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                // pA/code at the present temperature, referred back to 25 °C.
                let gain = raw * 1_000_000_000 / net;
                let ppm = i64::from(st.settings.calibration.current_gain_tc_ppm_per_k)
                    * (i64::from(self.meas.temperature_dc) - 250)
                    / 10;
                // Saturating: a reference current on a net code of a few counts gives a gain far out of
                // range, refused below, never a wrapped one (issue 16: the image's overflow-checks build).
                let gain25 = gain.saturating_mul(1_000_000) / (1_000_000 + ppm).max(1);
                if !st.settings.set(RegId::CurrentGain, gain25) {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                st.stamp(clock, cal_kind::CURRENT_GAIN);
            }
            RegId::CalVoltage => {
                let (_, v_code) = self.window.mean.ok_or(ExceptionCode::ServerDeviceBusy)?;
                if v_code <= 0 || !st.settings.set(RegId::VoltageGain, raw * 1_000_000_000 / i64::from(v_code)) {
                    return Err(ExceptionCode::IllegalDataValue);
                }
                st.stamp(clock, cal_kind::VOLTAGE);
            }
            id => {
                if !st.settings.set(id, raw) {
                    return Err(ExceptionCode::IllegalDataAddress);
                }
            }
        }
        Ok(())
    }
}

/// The register a write of `len` words from `addr` puts its `i`-th word into:
/// it must be writable, start at that word, and have all its words in the write.
fn write_target(addr: u16, i: usize, len: usize) -> Result<&'static RegDef, ExceptionCode> {
    let a = u16::try_from(i).ok().and_then(|i| addr.checked_add(i)).ok_or(ExceptionCode::IllegalDataAddress)?;
    let def = map::find(a).ok_or(ExceptionCode::IllegalDataAddress)?;
    if a != def.addr || !def.access.writable() || i + usize::from(def.ty.words()) > len {
        return Err(ExceptionCode::IllegalDataAddress);
    }
    Ok(def)
}

/// A write request's effect, applied only if the whole request is valid.
struct Staged {
    settings: Settings,
    set_soc: Option<u16>,
    clear_faults: bool,
    reset_counters: bool,
    unlock: bool,
    clock: Option<u32>,
}

impl Staged {
    fn stamp(&mut self, clock_s: u32, kind: u16) {
        self.settings.last_cal_time_s = clock_s;
        self.settings.last_cal_kind = kind;
    }
}

/// The FC43/14 objects of a variant's board, sorted by object id.
const fn device_id_objects(model: &'static [u8]) -> [(u8, &'static [u8]); 5] {
    use crate::modbus::device_id::object;
    [
        (object::VENDOR_NAME, VENDOR_NAME),
        (object::PRODUCT_CODE, model),
        (object::MAJOR_MINOR_REVISION, FIRMWARE_REVISION),
        (object::PRODUCT_NAME, b"SmartPro-209 battery management board"),
        (object::MODEL_NAME, model),
    ]
}
static DEVICE_ID_12: [(u8, &[u8]); 5] = device_id_objects(b"SmartPro 12-209");
static DEVICE_ID_24: [(u8, &[u8]); 5] = device_id_objects(b"SmartPro 24-209");
static DEVICE_ID_48: [(u8, &[u8]); 5] = device_id_objects(b"SmartPro 48-209");

impl RegisterBank for Core {
    fn device_identification(&self) -> &[(u8, &[u8])] {
        match self.variant {
            Variant::V12 => &DEVICE_ID_12,
            Variant::V24 => &DEVICE_ID_24,
            Variant::V48 => &DEVICE_ID_48,
        }
    }

    fn read_registers(&mut self, _kind: RegisterKind, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
        for (i, slot) in out.iter_mut().enumerate() {
            let a = u16::try_from(i).ok().and_then(|i| addr.checked_add(i)).ok_or(ExceptionCode::IllegalDataAddress)?;
            let def = map::find(a).ok_or(ExceptionCode::IllegalDataAddress)?;
            let words = def.ty.encode(self.value(def.id));
            *slot = words.get(usize::from(a - def.addr)).copied().unwrap_or(0);
        }
        Ok(())
    }

    fn write_registers(&mut self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        // On the board's own clock: see the module docs.
        let now = self.now;
        let mut st = Staged {
            settings: self.settings,
            set_soc: None,
            clear_faults: false,
            reset_counters: false,
            unlock: false,
            clock: None,
        };
        // Every address first, then the values: a range that is not all writable registers is
        // exception 02 even when a value before the bad address is out of range (03), as the
        // Modbus Application Protocol's order of checks (§6.12: address, then processing) has it.
        let mut i = 0usize;
        while i < values.len() {
            i += usize::from(write_target(addr, i, values.len())?.ty.words());
        }
        let mut i = 0usize;
        while i < values.len() {
            let def = write_target(addr, i, values.len())?;
            let n = usize::from(def.ty.words());
            let words = values.get(i..i + n).ok_or(ExceptionCode::IllegalDataAddress)?;
            self.stage(now, def, def.ty.decode(words), &mut st)?;
            i += n;
        }
        st.settings.check(self.variant).map_err(|_| ExceptionCode::IllegalDataValue)?;

        // All checked: apply.
        let s = st.settings;
        if s.capacity_dah != self.settings.capacity_dah {
            self.soc.set_capacity(s.capacity_dah, self.variant.cells_in_series());
        }
        self.settings_changed |= s != self.settings;
        self.settings = s;
        if let Some(clock) = st.clock {
            self.clock_base_s = clock;
            self.clock_set_at = now;
        }
        if st.unlock {
            self.cal_unlocked_until = Some(now + Duration::from_secs(map::CAL_UNLOCK_WINDOW_S));
        }
        if let Some(soc) = st.set_soc {
            self.soc.set_soc(soc);
            self.soc_synced = true;
        }
        if st.reset_counters {
            self.totals = Totals::default();
            self.log = FaultLog::default();
        }
        if st.clear_faults {
            self.prot.clear(&self.cond, &self.settings);
            self.outputs = self.decide();
        }
        Ok(())
    }
}
