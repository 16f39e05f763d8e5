//! The board: settings + measurements + estimators + protection, updated in a
//! fixed order on every poll, and its Modbus face.
//!
//! `Board::poll(now, &inputs)` is called once per ADC conversion; it never
//! reads a clock. Modbus bytes enter through [`Board::rtu_receive`] with their
//! arrival time; replies leave through [`Board::rtu_poll`].

use crate::counter::Total;
use crate::map::{self, RegDef, RegId, faults, status};
use crate::measure::{self, Measurements};
use crate::modbus::rtu::{RtuConfig, RtuSlave};
use crate::modbus::{ExceptionCode, MAX_ADU_LEN, RegisterBank, RegisterKind};
use crate::protection::DelayedTrip;
use crate::settings::{Settings, SettingsError, Variant};
use crate::soc::{self, AhSoc};
use crate::time::{Duration, Instant};

/// Firmware version reported in the register map: major × 256 + minor.
pub const FIRMWARE_VERSION: u16 = 0x0001;

/// Samples further apart than this are not integrated (a stalled ADC or a
/// restarted poll loop must not count a huge Δt at a stale current).
pub const MAX_SAMPLE_GAP: Duration = Duration::from_millis(1_000);

/// Currents within ±0.5 A count as rest in the status bits.
const REST_CURRENT_UA: i32 = 500_000;

/// What the board reads each poll: raw ADC codes and digital inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inputs {
    /// Current channel: shunt → amplifier → 24-bit ADC, two's complement.
    pub current_code: i32,
    /// Battery voltage channel: divider → ADC.
    pub voltage_code: i32,
    /// Battery NTC channel, ratiometric.
    pub temperature_code: i32,
    /// LVP control input carries its control voltage (LiPro loop: all cells above UV).
    pub lvp_input_ok: bool,
    /// OVP control input carries its control voltage (LiPro loop: all cells below OV).
    pub ovp_input_ok: bool,
}

/// What the board drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outputs {
    /// Main switch (MOSFETs) closed.
    pub switch_on: bool,
    /// LVP control output: the load may draw.
    pub lvp_output: bool,
    /// OVP control output: the charger may charge.
    pub ovp_output: bool,
    /// Fault bits ([`crate::map::faults`]).
    pub faults: u16,
}

/// Everything but the serial line: implements the register map.
#[derive(Debug)]
struct Core {
    variant: Variant,
    serial_number: u32,
    settings: Settings,
    meas: Measurements,
    soc: AhSoc,
    soc_synced: bool,
    charged: Total,
    discharged: Total,
    lvp: DelayedTrip,
    ovp: DelayedTrip,
    lvp_input_ok: bool,
    ovp_input_ok: bool,
    started: Option<Instant>,
    last_sample: Option<Instant>,
    now: Instant,
    outputs: Outputs,
    /// A register write changed the settings since the last [`Board::take_settings_changed`].
    settings_changed: bool,
}

/// The SmartPro-209 firmware.
#[derive(Debug)]
pub struct Board {
    core: Core,
    rtu: RtuSlave,
}

impl Board {
    /// A board of `variant` with `settings`, answering as Modbus unit `rtu.unit_id`.
    pub fn new(
        variant: Variant,
        settings: Settings,
        serial_number: u32,
        rtu: RtuConfig,
    ) -> Result<Board, SettingsError> {
        settings.validate(variant)?;
        let core = Core {
            variant,
            serial_number,
            settings,
            meas: Measurements::default(),
            soc: AhSoc::new(settings.capacity_dah, 5_000),
            soc_synced: false,
            charged: Total::new(),
            discharged: Total::new(),
            lvp: DelayedTrip::default(),
            ovp: DelayedTrip::default(),
            lvp_input_ok: true,
            ovp_input_ok: true,
            started: None,
            last_sample: None,
            now: Instant::ZERO,
            outputs: Outputs { switch_on: true, lvp_output: true, ovp_output: true, faults: 0 },
            settings_changed: false,
        };
        Ok(Board { core, rtu: RtuSlave::new(rtu) })
    }

    /// Processes one ADC conversion taken at `now`: measure, count, protect.
    pub fn poll(&mut self, now: Instant, inputs: &Inputs) -> Outputs {
        self.core.poll(now, inputs)
    }

    /// The latest time the board wants to be polled again without new samples
    /// (a protection delay expiring or a Modbus frame to finish).
    pub fn poll_at(&self) -> Option<Instant> {
        let s = &self.core.settings;
        [
            self.core.lvp.trips_at(Duration::from_millis(u64::from(s.lvp_delay_ms))),
            self.core.ovp.trips_at(Duration::from_millis(u64::from(s.ovp_delay_ms))),
            self.rtu.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn variant(&self) -> Variant {
        self.core.variant
    }
    pub fn settings(&self) -> &Settings {
        &self.core.settings
    }
    /// True once after a register write changed the settings: the main loop
    /// then saves them ([`crate::nvm::SettingsStore::save`]) outside the Modbus reply path.
    pub fn take_settings_changed(&mut self) -> bool {
        core::mem::take(&mut self.core.settings_changed)
    }
    pub fn measurements(&self) -> &Measurements {
        &self.core.meas
    }
    pub fn outputs(&self) -> Outputs {
        self.core.outputs
    }
    /// SOC (Ah method) in 0.01 %.
    pub fn soc_centipct(&self) -> u16 {
        self.core.soc.soc_centipct()
    }
    pub fn remaining_uah(&self) -> i64 {
        self.core.soc.remaining_uah()
    }

    /// Reads registers as a Modbus master would (same checks, same errors).
    pub fn read_registers(&mut self, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
        self.core.read_registers(RegisterKind::Holding, addr, out)
    }

    /// Writes registers as a Modbus master would: all or nothing.
    pub fn write_registers(&mut self, now: Instant, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        self.core.write_registers(now, addr, values)
    }

    /// Bytes received on the serial line; `now` is the arrival time of the last one.
    pub fn rtu_receive(&mut self, now: Instant, bytes: &[u8]) {
        self.rtu.receive(now, bytes);
    }

    /// Finishes a received frame once its silent interval has passed; returns
    /// the reply to send, if any.
    pub fn rtu_poll(&mut self, now: Instant, tx: &mut [u8; MAX_ADU_LEN]) -> Option<usize> {
        self.rtu.poll(now, &mut self.core, tx)
    }

    /// Processes one Modbus request PDU (function code + data) that arrived by
    /// another transport (Modbus TCP: the MBAP header is the caller's); writes
    /// the response PDU into `response` (≥ 253 bytes) and returns its length.
    pub fn process_pdu(&mut self, now: Instant, request: &[u8], response: &mut [u8]) -> Option<usize> {
        crate::modbus::pdu::process_request(&mut self.core, now, request, response)
    }

    /// When [`Self::rtu_poll`] should be called next.
    pub fn rtu_poll_at(&self) -> Option<Instant> {
        self.rtu.poll_at()
    }

    /// Changes the line settings (baud, parity) the frame timing is computed from.
    pub fn rtu_set_config(&mut self, config: RtuConfig) {
        self.rtu.set_config(config);
    }

    pub fn rtu(&self) -> &RtuSlave {
        &self.rtu
    }
}

impl Core {
    fn poll(&mut self, now: Instant, inputs: &Inputs) -> Outputs {
        self.now = now;
        // 1. Measure.
        self.meas = measure::convert(
            inputs.current_code,
            inputs.voltage_code,
            inputs.temperature_code,
            &self.settings.calibration,
        );
        self.lvp_input_ok = inputs.lvp_input_ok;
        self.ovp_input_ok = inputs.ovp_input_ok;

        // 2. Count: the sample stands for the interval since the previous one.
        match self.last_sample {
            None => {
                self.started = Some(now);
                if !self.soc_synced {
                    // First sample: guess SOC from the voltage (meaningful at rest).
                    let cells = i32::from(self.variant.cells_in_series());
                    let cell_mv = self.meas.voltage_mv() / cells.max(1);
                    self.soc.set_soc(soc::soc_from_cell_ocv(cell_mv));
                }
            }
            Some(last) => {
                let dt = now.saturating_since(last);
                if dt <= MAX_SAMPLE_GAP {
                    let dt_us = dt.as_micros() as u32; // ≤ 1 s fits easily
                    let i = self.meas.current_ua;
                    self.soc.count(i, dt_us);
                    self.charged.add(i, dt_us);
                    self.discharged.add(i.saturating_neg(), dt_us);
                }
            }
        }
        self.last_sample = Some(now);

        // 3. Protect.
        let s = &self.settings;
        let v_mv = self.meas.voltage_mv();
        let lvp = self.lvp.update(
            now,
            v_mv < i32::from(s.lvp_mv),
            v_mv > i32::from(s.lvp_release_mv),
            Duration::from_millis(u64::from(s.lvp_delay_ms)),
        );
        let ovp = self.ovp.update(
            now,
            v_mv > i32::from(s.ovp_mv),
            v_mv < i32::from(s.ovp_release_mv),
            Duration::from_millis(u64::from(s.ovp_delay_ms)),
        );
        self.outputs = self.decide(lvp, ovp);
        self.outputs
    }

    /// Outputs from the protection state: every fault opens the path it protects.
    fn decide(&self, lvp: bool, ovp: bool) -> Outputs {
        let mut f = 0;
        if lvp {
            f |= faults::LVP;
        }
        if ovp {
            f |= faults::OVP;
        }
        if !self.lvp_input_ok {
            f |= faults::LVP_INPUT;
        }
        if !self.ovp_input_ok {
            f |= faults::OVP_INPUT;
        }
        if self.meas.saturated {
            f |= faults::ADC_SATURATED;
        }
        Outputs {
            switch_on: !(lvp || ovp),
            lvp_output: !lvp && self.lvp_input_ok,
            ovp_output: !ovp && self.ovp_input_ok,
            faults: f,
        }
    }

    fn status_bits(&self) -> u16 {
        let o = &self.outputs;
        let i = self.meas.current_ua;
        let mut s = 0;
        for (on, bit) in [
            (o.switch_on, status::SWITCH_ON),
            (o.lvp_output, status::LVP_OUTPUT),
            (o.ovp_output, status::OVP_OUTPUT),
            (i > REST_CURRENT_UA, status::CHARGING),
            (i < -REST_CURRENT_UA, status::DISCHARGING),
            (self.soc_synced, status::SOC_SYNCED),
        ] {
            if on {
                s |= bit;
            }
        }
        s
    }

    /// The raw value of a register.
    fn value(&self, id: RegId) -> i64 {
        let s = &self.settings;
        let c = &s.calibration;
        match id {
            RegId::DeviceType => i64::from(map::DEVICE_TYPE),
            RegId::VariantV => i64::from(self.variant.nominal_v()),
            RegId::FirmwareVersion => i64::from(FIRMWARE_VERSION),
            RegId::SerialNumber => i64::from(self.serial_number),
            RegId::BatteryVoltage => i64::from(self.meas.voltage_mv()),
            RegId::Current => i64::from(self.meas.current_ma()),
            RegId::Soc => i64::from(self.soc.soc_centipct()),
            RegId::Temperature => i64::from(self.meas.temperature_dc),
            RegId::Status => i64::from(self.status_bits()),
            RegId::Faults => i64::from(self.outputs.faults),
            RegId::RemainingCharge => self.soc.remaining_uah() / 1_000,
            RegId::Uptime => self.started.map_or(0, |t| self.now.saturating_since(t).as_secs() as i64),
            RegId::ChargedTotal => (self.charged.micro_hours() / 1_000) as i64,
            RegId::DischargedTotal => (self.discharged.micro_hours() / 1_000) as i64,
            RegId::Capacity => i64::from(s.capacity_dah),
            RegId::LvpThreshold => i64::from(s.lvp_mv),
            RegId::LvpRelease => i64::from(s.lvp_release_mv),
            RegId::LvpDelay => i64::from(s.lvp_delay_ms),
            RegId::OvpThreshold => i64::from(s.ovp_mv),
            RegId::OvpRelease => i64::from(s.ovp_release_mv),
            RegId::OvpDelay => i64::from(s.ovp_delay_ms),
            RegId::CurrentOffset => i64::from(c.current_offset_code),
            RegId::CurrentGain => i64::from(c.current_gain_pa_per_code),
            RegId::VoltageGain => i64::from(c.voltage_gain_pv_per_code),
            RegId::TemperatureOffset => i64::from(c.temperature_offset_dc),
            RegId::SetSoc | RegId::ClearFaults => 0,
        }
    }

    /// Applies a range-checked raw value to a settings copy, or queues a command.
    fn stage(&self, def: &RegDef, raw: i64, staged: &mut Settings, cmds: &mut Commands) -> Result<(), ExceptionCode> {
        if raw < def.min || raw > def.max {
            return Err(ExceptionCode::IllegalDataValue);
        }
        // In range of the table's bounds, which fit the field types (tested in map).
        let u16v = raw as u16;
        let c = &mut staged.calibration;
        match def.id {
            RegId::Capacity => staged.capacity_dah = u16v,
            RegId::LvpThreshold => staged.lvp_mv = u16v,
            RegId::LvpRelease => staged.lvp_release_mv = u16v,
            RegId::LvpDelay => staged.lvp_delay_ms = u16v,
            RegId::OvpThreshold => staged.ovp_mv = u16v,
            RegId::OvpRelease => staged.ovp_release_mv = u16v,
            RegId::OvpDelay => staged.ovp_delay_ms = u16v,
            RegId::CurrentOffset => c.current_offset_code = raw as i32,
            RegId::CurrentGain => c.current_gain_pa_per_code = raw as u32,
            RegId::VoltageGain => c.voltage_gain_pv_per_code = raw as u32,
            RegId::TemperatureOffset => c.temperature_offset_dc = raw as i16,
            RegId::SetSoc => cmds.set_soc = Some(u16v),
            RegId::ClearFaults => cmds.clear_faults = true,
            _ => return Err(ExceptionCode::IllegalDataAddress),
        }
        Ok(())
    }
}

/// Commands collected from one write request, run only if the whole request is valid.
#[derive(Default)]
struct Commands {
    set_soc: Option<u16>,
    clear_faults: bool,
}

impl RegisterBank for Core {
    fn read_registers(&mut self, _kind: RegisterKind, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
        for (i, slot) in out.iter_mut().enumerate() {
            let a = u16::try_from(i).ok().and_then(|i| addr.checked_add(i)).ok_or(ExceptionCode::IllegalDataAddress)?;
            let def = map::find(a).ok_or(ExceptionCode::IllegalDataAddress)?;
            let words = def.ty.encode(self.value(def.id));
            *slot = words.get(usize::from(a - def.addr)).copied().unwrap_or(0);
        }
        Ok(())
    }

    fn write_registers(&mut self, _now: Instant, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        let mut staged = self.settings;
        let mut cmds = Commands::default();
        let mut i = 0usize;
        while i < values.len() {
            let a = u16::try_from(i).ok().and_then(|i| addr.checked_add(i)).ok_or(ExceptionCode::IllegalDataAddress)?;
            let def = map::find(a).ok_or(ExceptionCode::IllegalDataAddress)?;
            let n = usize::from(def.ty.words());
            // A write must start at a register's first word and cover all its words.
            if a != def.addr || !def.access.writable() {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            let words = values.get(i..i + n).ok_or(ExceptionCode::IllegalDataAddress)?;
            self.stage(def, def.ty.decode(words), &mut staged, &mut cmds)?;
            i += n;
        }
        staged.validate(self.variant).map_err(|_| ExceptionCode::IllegalDataValue)?;
        // All checked: apply.
        if staged.capacity_dah != self.settings.capacity_dah {
            self.soc.set_capacity(staged.capacity_dah);
        }
        self.settings_changed |= staged != self.settings;
        self.settings = staged;
        if let Some(soc) = cmds.set_soc {
            self.soc.set_soc(soc);
            self.soc_synced = true;
        }
        if cmds.clear_faults {
            let v = self.meas.voltage_mv();
            self.lvp.clear(v < i32::from(self.settings.lvp_mv));
            self.ovp.clear(v > i32::from(self.settings.ovp_mv));
            self.outputs = self.decide(self.lvp.is_tripped(), self.ovp.is_tripped());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::design;

    const CODES_PER_A: f64 = 16_777.216;

    fn board(v: Variant) -> Board {
        Board::new(v, Settings::defaults(v), 1234, RtuConfig::default()).unwrap()
    }

    /// Codes for a battery at `volts`, `amps` and 25 °C on the nominal chain.
    fn inputs(v: Variant, volts: f64, amps: f64) -> Inputs {
        let pv = f64::from(
            design::VOLTAGE_GAIN_PV_PER_CODE[match v {
                Variant::V12 => 0,
                Variant::V24 => 1,
                Variant::V48 => 2,
            }],
        );
        Inputs {
            current_code: (amps * CODES_PER_A).round() as i32,
            voltage_code: (volts * 1e12 / pv).round() as i32,
            temperature_code: 1 << 22,
            lvp_input_ok: true,
            ovp_input_ok: true,
        }
    }

    fn run(b: &mut Board, from_ms: u64, to_ms: u64, inp: Inputs) -> Outputs {
        let mut out = b.outputs();
        for t in from_ms..to_ms {
            out = b.poll(Instant::from_millis(t), &inp);
        }
        out
    }

    #[test]
    fn lvp_opens_the_switch_after_its_delay_only() {
        let v = Variant::V12;
        let mut b = board(v);
        run(&mut b, 0, 1_000, inputs(v, 13.2, -50.0));
        assert!(b.outputs().switch_on);
        // 11.0 V < 11.2 V LVP: held 1.999 s → still on, 2 s → off.
        let low = inputs(v, 11.0, -50.0);
        let out = run(&mut b, 1_000, 3_000, low);
        assert!(out.switch_on, "tripped before the 2 s delay");
        let out = b.poll(Instant::from_millis(3_000), &low);
        assert!(!out.switch_on && !out.lvp_output);
        assert_ne!(out.faults & faults::LVP, 0);
        // Resting voltage below the 13.0 V release: stays off.
        let out = run(&mut b, 3_001, 6_000, inputs(v, 12.4, 0.0));
        assert!(!out.switch_on);
        // Clear command with the condition gone re-enables the path.
        b.write_registers(Instant::from_millis(6_000), 0x0401, &[1]).unwrap();
        assert!(b.outputs().switch_on);
    }

    #[test]
    fn ovp_opens_the_switch_and_the_charger_output() {
        let v = Variant::V48;
        let mut b = board(v);
        run(&mut b, 0, 100, inputs(v, 53.0, 20.0));
        let out = run(&mut b, 100, 2_200, inputs(v, 58.5, 20.0));
        assert!(!out.switch_on && !out.ovp_output && out.lvp_output);
        assert_ne!(out.faults & faults::OVP, 0);
    }

    #[test]
    fn coulomb_counting_through_the_board() {
        let v = Variant::V24;
        let mut b = board(v);
        b.write_registers(Instant::ZERO, 0x0400, &[10_000]).unwrap(); // set SOC 100 %
        // 50 A discharge for 360 s at 1 kSPS: 5 Ah of 100 Ah.
        run(&mut b, 0, 360_001, inputs(v, 26.0, -50.0));
        assert_eq!(b.soc_centipct(), 9_500);
        let mut regs = [0u16; 2];
        b.read_registers(0x010D, &mut regs).unwrap();
        assert_eq!(map::RegType::U32.decode(&regs), 5_000); // discharged_total_mah
    }

    #[test]
    fn register_reads_decode_measurements() {
        let v = Variant::V12;
        let mut b = board(v);
        b.poll(Instant::ZERO, &inputs(v, 13.284, -12.345));
        let mut r = [0u16; 5];
        b.read_registers(0x0100, &mut r).unwrap();
        assert_eq!(r[0], 13_284);
        assert_eq!(map::RegType::I32.decode(&r[1..3]), -12_345);
        assert_eq!(r[4], 250);
        let mut id = [0u16; 3];
        b.read_registers(0, &mut id).unwrap();
        assert_eq!(id, [209, 12, FIRMWARE_VERSION]);
    }

    #[test]
    fn bad_writes_change_nothing() {
        let v = Variant::V12;
        let mut b = board(v);
        let before = *b.settings();
        let t = Instant::ZERO;
        // Out of range capacity → 03.
        assert_eq!(b.write_registers(t, 0x0200, &[5]), Err(ExceptionCode::IllegalDataValue));
        // Valid capacity followed by an invalid LVP (above its release) in one request → 03, capacity unchanged.
        assert_eq!(b.write_registers(t, 0x0200, &[2_000, 14_000]), Err(ExceptionCode::IllegalDataValue));
        // Read-only register → 02; half of a 32-bit register → 02; gap → 02.
        assert_eq!(b.write_registers(t, 0x0100, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(t, 0x0303, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(t, 0x0302, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(t, 0x0207, &[1]), Err(ExceptionCode::IllegalDataAddress));
        // OVP above the variant's 15 V max operating voltage → 03.
        assert_eq!(b.write_registers(t, 0x0204, &[15_500]), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(*b.settings(), before);
        assert!(!b.take_settings_changed(), "refused writes change nothing");
        // A valid write lands and is flagged for saving once.
        b.write_registers(t, 0x0200, &[2_000]).unwrap();
        assert_eq!(b.settings().capacity_dah, 2_000);
        assert!(b.take_settings_changed());
        assert!(!b.take_settings_changed());
        // A command is not a settings change.
        b.write_registers(t, 0x0400, &[5_000]).unwrap();
        assert!(!b.take_settings_changed());
    }

    #[test]
    fn reads_of_unmapped_addresses_are_refused() {
        let mut b = board(Variant::V12);
        let mut r = [0u16; 10];
        assert_eq!(b.read_registers(0x0000, &mut r), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.read_registers(0xFFFF, &mut r[..2]), Err(ExceptionCode::IllegalDataAddress));
        assert!(b.read_registers(0x0102, &mut r[..1]).is_ok(), "low word of current alone is readable");
    }
}
