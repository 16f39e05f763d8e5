//! The board: settings + measurements + estimators + protection, updated in a
//! fixed order on every poll, and its Modbus face.
//!
//! `Board::poll(now, &inputs)` is called once per ADC conversion; it never
//! reads a clock. Modbus bytes enter through [`Board::rtu_receive`] with their
//! arrival time (or frames through [`Board::rtu_accept`], from a bus monitor
//! that framed the line); replies leave through [`Board::rtu_poll`]. The
//! register face (the value of every register, register writes) is
//! `board/registers.rs`. Settings changed over the bus are flagged
//! ([`Board::take_settings_changed`]) for the main loop to save with
//! [`crate::nvm::SettingsStore`].
//!
//! Order of one poll: measure → average window for calibration → count
//! (SOC methods, totals, capacity) → diagnostics (extremes, internal
//! resistance) → full-charge detection → protection (and the fault log, SOC
//! sync to empty at LVP) → rest anchor → aux output → outputs.

use crate::diag::{Anchor, CapacityTracker, FaultLog, ResistanceEstimator, Totals};
use crate::map::faults;
use crate::measure::{self, Measurements};
use crate::modbus::framer::Completed;
use crate::modbus::rtu::{RtuConfig, RtuSlave};
use crate::modbus::{ExceptionCode, MAX_ADU_LEN, RegisterBank, RegisterKind};
use crate::protection::{Conditions, Protection, path};
use crate::settings::{AuxMode, Settings, SettingsError, Variant, design};
use crate::soc::{self, SocEstimator, SyncKind, SyncPoint};
use crate::time::{Duration, Instant};

mod registers;

/// Firmware version reported in the register map: major × 256 + minor.
pub const FIRMWARE_VERSION: u16 = 0x0100;
/// The same as text, for Modbus read device identification (FC43/14).
pub const FIRMWARE_REVISION: &[u8] = b"1.0";
/// Vendor name for FC43/14 (the datasheet names the product, not its maker).
pub const VENDOR_NAME: &[u8] = b"SmartPro";

/// Samples further apart than this are not integrated (a stalled ADC or a
/// restarted poll loop must not count a huge Δt at a stale current).
pub const MAX_SAMPLE_GAP: Duration = Duration::from_millis(1_000);
/// Currents within ±0.5 A count as rest.
pub const REST_CURRENT_UA: i32 = 500_000;
/// A rest this long relaxes the OCV enough to anchor the SOC where the curve is steep.
pub const REST_ANCHOR: Duration = Duration::from_secs(30 * 60);
/// Resting cell voltages where the LiFePO4 OCV curve gives SOC well (below the plateau), mV.
pub const OCV_RELIABLE_BELOW_CELL_MV: i32 = 3_220;
/// … and above it.
pub const OCV_RELIABLE_ABOVE_CELL_MV: i32 = 3_380;
/// The voltage channel's total error is the measuring range / this (datasheet,
/// "Voltage measurement accuracy": 0.1 % FS).
pub const VOLTAGE_ERROR_PER_FS: i32 = 1_000;
/// Calibration averages the codes over windows of this length.
pub const CAL_WINDOW: Duration = Duration::from_secs(1);
/// A gain calibration needs at least this reference current, mA.
pub const CAL_MIN_CURRENT_MA: i32 = 10_000;

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
    /// The hardware short-circuit comparator has latched the switch open.
    pub sc_latched: bool,
    /// The aux output driver reports over-current.
    pub aux_overcurrent: bool,
}

impl Inputs {
    /// Codes only; digital inputs in their healthy state.
    pub const fn codes(current_code: i32, voltage_code: i32, temperature_code: i32) -> Self {
        Inputs {
            current_code,
            voltage_code,
            temperature_code,
            lvp_input_ok: true,
            ovp_input_ok: true,
            sc_latched: false,
            aux_overcurrent: false,
        }
    }
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
    /// Aux output on.
    pub aux_on: bool,
    /// Pulse on the hardware short-circuit latch's reset line.
    pub sc_latch_reset: bool,
    /// Fault bits ([`crate::map::faults`]).
    pub faults: u16,
}

impl Outputs {
    /// Power-up state: paths closed, aux off, no faults.
    pub const IDLE: Outputs = Outputs {
        switch_on: true,
        lvp_output: true,
        ovp_output: true,
        aux_on: false,
        sc_latch_reset: false,
        faults: 0,
    };
}

/// Mean codes of the last completed averaging window, for calibration.
#[derive(Clone, Copy, Debug, Default)]
struct CodeWindow {
    start: Option<Instant>,
    sum_current: i64,
    sum_voltage: i64,
    n: i64,
    /// (current, voltage) mean codes of the last completed window.
    mean: Option<(i32, i32)>,
}

impl CodeWindow {
    fn add(&mut self, now: Instant, inputs: &Inputs) {
        let start = *self.start.get_or_insert(now);
        if now.saturating_since(start) >= CAL_WINDOW && self.n > 0 {
            self.mean = Some(((self.sum_current / self.n) as i32, (self.sum_voltage / self.n) as i32));
            *self = CodeWindow { start: Some(now), mean: self.mean, ..CodeWindow::default() };
        }
        self.sum_current = self.sum_current.saturating_add(i64::from(inputs.current_code));
        self.sum_voltage = self.sum_voltage.saturating_add(i64::from(inputs.voltage_code));
        self.n += 1;
    }
}

/// Everything but the serial line: implements the register map.
#[derive(Debug)]
struct Core {
    variant: Variant,
    serial_number: u32,
    settings: Settings,
    settings_changed: bool,
    meas: Measurements,
    /// Codes → measurements, remembering the last temperature code's conversion.
    converter: measure::Converter,
    cond: Conditions,
    window: CodeWindow,
    soc: SocEstimator,
    soc_synced: bool,
    /// The last sync point (applied or refused) and how many of each.
    last_sync: Option<SyncPoint>,
    syncs_applied: u16,
    syncs_refused: u16,
    totals: Totals,
    ir: ResistanceEstimator,
    capacity: CapacityTracker,
    log: FaultLog,
    prot: Protection,
    /// Full-charge condition held since.
    full_since: Option<Instant>,
    /// Full charge detected and not yet left (until the SOC falls 1 point below `full_soc`).
    full: bool,
    full_soc: u16,
    last_full: Option<Instant>,
    /// At rest since, and whether this rest has anchored already.
    rest_since: Option<Instant>,
    rest_anchored: bool,
    heating: bool,
    cal_unlocked_until: Option<Instant>,
    /// `clock_s` = base + seconds since `clock_set_at`.
    clock_base_s: u32,
    clock_set_at: Instant,
    started: Option<Instant>,
    last_sample: Option<Instant>,
    now: Instant,
    outputs: Outputs,
}

/// ADC conversions summed between two polls: the ADC interrupt's work
/// ([`Board::sample`]). Sums of codes are exact, and every algorithm that
/// integrates (charge, energy) is linear in the codes, so counting from the
/// block mean over the block's duration loses nothing.
#[derive(Clone, Copy, Debug, Default)]
struct SampleBlock {
    n: i64,
    sum_current: i64,
    sum_voltage: i64,
    last: Option<Inputs>,
    last_poll: Option<Instant>,
}

/// How often [`Board::sample`] runs the full poll on the block mean.
pub const POLL_PERIOD: Duration = Duration::from_millis(10);

/// Conversions handed to the firmware as sums ([`Board::sample_sums`]): the
/// ADC interrupt's running sums in one piece, as a hardware oversampler or
/// a simulator that knows where a block ends delivers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeSums {
    /// Conversions summed (of the current and of the voltage channel each).
    pub conversions: u32,
    /// Σ current-channel codes.
    pub current_code_sum: i64,
    /// Σ voltage-channel codes.
    pub voltage_code_sum: i64,
}

impl CodeSums {
    /// The one conversion in `inputs`.
    pub const fn one(inputs: &Inputs) -> Self {
        CodeSums {
            conversions: 1,
            current_code_sum: inputs.current_code as i64,
            voltage_code_sum: inputs.voltage_code as i64,
        }
    }
}

/// The digital inputs whose change ends a block at once.
fn digital_inputs(i: &Inputs) -> (bool, bool, bool, bool) {
    (i.lvp_input_ok, i.ovp_input_ok, i.sc_latched, i.aux_overcurrent)
}

/// The SmartPro-209 firmware.
#[derive(Debug)]
pub struct Board {
    core: Core,
    rtu: RtuSlave,
    block: SampleBlock,
}

impl Board {
    /// A board of `variant` with `settings` (e.g. loaded from its EEPROM),
    /// answering as Modbus unit `rtu.unit_id`.
    pub fn new(
        variant: Variant,
        settings: Settings,
        serial_number: u32,
        rtu: RtuConfig,
    ) -> Result<Board, SettingsError> {
        settings.check(variant)?;
        let meas = Measurements::default();
        let core = Core {
            variant,
            serial_number,
            settings,
            settings_changed: false,
            meas,
            converter: measure::Converter::default(),
            cond: Conditions {
                variant,
                meas,
                lvp_input_ok: true,
                ovp_input_ok: true,
                sc_latched: false,
                aux_overcurrent: false,
            },
            window: CodeWindow::default(),
            soc: SocEstimator::new(settings.capacity_dah, variant.cells_in_series(), 5_000),
            soc_synced: false,
            last_sync: None,
            syncs_applied: 0,
            syncs_refused: 0,
            totals: Totals::default(),
            ir: ResistanceEstimator::default(),
            capacity: CapacityTracker::default(),
            log: FaultLog::default(),
            prot: Protection::default(),
            full_since: None,
            full: false,
            full_soc: 0,
            last_full: None,
            rest_since: None,
            rest_anchored: false,
            heating: false,
            cal_unlocked_until: None,
            clock_base_s: 0,
            clock_set_at: Instant::ZERO,
            started: None,
            last_sample: None,
            now: Instant::ZERO,
            outputs: Outputs::IDLE,
        };
        let mut board = Board { core, rtu: RtuSlave::new(rtu), block: SampleBlock::default() };
        board.core.prot.configure(&settings, variant);
        Ok(board)
    }

    /// Processes one ADC conversion taken at `now` in full: measure, count,
    /// protect. For one call per conversion at high rates, [`Self::sample`]
    /// does the same on block means at [`POLL_PERIOD`].
    pub fn poll(&mut self, now: Instant, inputs: &Inputs) -> Outputs {
        self.core.poll(now, inputs)
    }

    /// One ADC conversion, as the ADC interrupt sees it: summed into the
    /// current block; every [`POLL_PERIOD`] (and at once when a digital input
    /// changes, e.g. the short-circuit latch) the block mean is polled.
    pub fn sample(&mut self, now: Instant, inputs: &Inputs) -> Outputs {
        self.sample_sums(now, &CodeSums::one(inputs), inputs)
    }

    /// Whether a conversion at `now` with `inputs` ends the block, i.e.
    /// [`Self::sample`] would poll: [`POLL_PERIOD`] has passed since the last
    /// poll, or a digital input differs from the last conversion's.
    #[inline]
    pub fn sample_due(&self, now: Instant, inputs: &Inputs) -> bool {
        let b = &self.block;
        b.last_poll.is_none_or(|t| now.saturating_since(t) >= POLL_PERIOD)
            || b.last.is_some_and(|l| digital_inputs(&l) != digital_inputs(inputs))
    }

    /// `sums.conversions` conversions at once, the last one taken at `now`
    /// with `inputs` (its temperature code and digital inputs; its current
    /// and voltage codes are not used): the same as that many
    /// [`Self::sample`] calls whose codes add up to `sums`, provided
    /// [`Self::sample_due`] was false for all but the last of them. A
    /// simulator that asks `sample_due` every conversion hands over each
    /// block once.
    pub fn sample_sums(&mut self, now: Instant, sums: &CodeSums, inputs: &Inputs) -> Outputs {
        let due = self.sample_due(now, inputs);
        let b = &mut self.block;
        b.n = b.n.saturating_add(i64::from(sums.conversions));
        b.sum_current = b.sum_current.saturating_add(sums.current_code_sum);
        b.sum_voltage = b.sum_voltage.saturating_add(sums.voltage_code_sum);
        b.last = Some(*inputs);
        if !due {
            return self.core.outputs;
        }
        let mean =
            |sum: i64| measure::div_round(sum, b.n.max(1)).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        let block_inputs = Inputs { current_code: mean(b.sum_current), voltage_code: mean(b.sum_voltage), ..*inputs };
        *b = SampleBlock { last: b.last, last_poll: Some(now), ..SampleBlock::default() };
        self.core.poll(now, &block_inputs)
    }

    /// The latest time the board wants to be polled again without new samples
    /// (a protection delay expiring or a Modbus frame to finish).
    pub fn poll_at(&self) -> Option<Instant> {
        let c = &self.core;
        [c.prot.next_deadline(&c.settings), self.rtu.poll_at()].into_iter().flatten().min()
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
        // Until the flag is taken, each poll has the protection follow the settings; then once more.
        let c = &mut self.core;
        c.prot.configure(&c.settings, c.variant);
        core::mem::take(&mut c.settings_changed)
    }
    /// The calibrated measurements of the last poll (with [`Self::sample`]:
    /// of the last block's mean).
    pub fn measurements(&self) -> &Measurements {
        &self.core.meas
    }
    /// When the last full poll ran.
    pub fn last_poll(&self) -> Option<Instant> {
        self.core.last_sample
    }
    pub fn outputs(&self) -> Outputs {
        self.core.outputs
    }
    /// SOC by the configured method, 0.01 %.
    pub fn soc_centipct(&self) -> u16 {
        self.core.soc_selected()
    }
    /// A full charge detected and not yet left (status bit `full`): set at the full sync.
    pub fn full(&self) -> bool {
        self.core.full
    }
    pub fn soc_ah_centipct(&self) -> u16 {
        self.core.soc.soc_ah()
    }
    pub fn soc_wh_centipct(&self) -> u16 {
        self.core.soc.soc_wh()
    }
    pub fn soc_temperature_compensated_centipct(&self) -> u16 {
        self.core.soc.soc_temperature_compensated(self.core.meas.temperature_dc)
    }
    pub fn remaining_uah(&self) -> i64 {
        self.core.soc.remaining_uah()
    }
    /// Internal-resistance estimate, µΩ, if valid.
    /// The last SOC sync point, applied or refused (issue 16).
    pub fn last_sync(&self) -> Option<SyncPoint> {
        self.core.last_sync
    }

    /// Sync points (applied, refused) since power-up.
    pub fn sync_counts(&self) -> (u16, u16) {
        (self.core.syncs_applied, self.core.syncs_refused)
    }

    pub fn internal_resistance_uohm(&self) -> Option<u32> {
        self.core.ir.valid().then(|| self.core.ir.resistance_uohm())
    }
    /// SOH, 0.01 % (100 % until a capacity passage was measured).
    pub fn soh_centipct(&self) -> u16 {
        self.core.capacity.soh_centipct(self.core.soc.capacity_uah())
    }

    /// Reads registers as a Modbus master would (same checks, same errors).
    pub fn read_registers(&mut self, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
        self.core.read_registers(RegisterKind::Holding, addr, out)
    }

    /// Writes registers as a Modbus master would: all or nothing, on the board's
    /// own clock (the time of its last poll; see `board/registers.rs`).
    pub fn write_registers(&mut self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
        self.core.write_registers(addr, values)
    }

    /// Bytes received on the serial line at `now`, as the line's
    /// [`Arrival`](crate::modbus::framer::Arrival) model says (a UART: `now` is
    /// when the last one ended). The board's own framer decides where frames end.
    pub fn rtu_receive(&mut self, now: Instant, bytes: &[u8]) {
        self.rtu.receive(now, bytes);
    }

    /// A frame that a bus monitor framed (see [`RtuSlave::accept`]): counted and
    /// served exactly as one the board framed itself.
    pub fn rtu_accept(&mut self, completed: Completed<'_>) {
        self.rtu.accept(completed);
    }

    /// Serves a complete request once it is due; returns the reply to send, if any.
    pub fn rtu_poll(&mut self, now: Instant, tx: &mut [u8; MAX_ADU_LEN]) -> Option<usize> {
        self.rtu.poll(now, &mut self.core, tx)
    }

    /// Processes one Modbus request PDU (function code + data) that arrived by
    /// another transport (Modbus TCP: the MBAP header is the caller's); writes
    /// the response PDU into `response` (≥ 253 bytes) and returns its length.
    pub fn process_pdu(&mut self, request: &[u8], response: &mut [u8]) -> Option<usize> {
        crate::modbus::pdu::process_request(&mut self.core, request, response)
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
    fn cells(&self) -> i32 {
        i32::from(self.variant.cells_in_series())
    }

    fn soc_selected(&self) -> u16 {
        match self.settings.soc_method() {
            crate::settings::SocMethod::Ah => self.soc.soc_ah(),
            crate::settings::SocMethod::Wh => self.soc.soc_wh(),
            crate::settings::SocMethod::TemperatureCompensated => {
                self.soc.soc_temperature_compensated(self.meas.temperature_dc)
            }
        }
    }

    fn energy_totals_mwh(&self) -> (u64, u64) {
        (self.totals.charged_energy.micro_hours(), self.totals.discharged_energy.micro_hours())
    }

    fn anchor(&mut self, a: Anchor) {
        let min_cycle_mwh = (self.soc.capacity_uah() / 1_000).unsigned_abs()
            * self.cells().unsigned_abs() as u64
            * soc::NOMINAL_CELL_MV.unsigned_abs()
            / 2_000;
        self.capacity.anchor(a, self.energy_totals_mwh(), self.soc.capacity_uah(), min_cycle_mwh);
    }

    /// A sync point at the present measurement (issue 16): the SOC the criterion
    /// stands for, applied if its bound allows ([`SocEstimator::sync`]). The
    /// voltage channel's error per cell is the datasheet's 0.1 % of the variant's
    /// measuring range (15/30/60 V). Returned, so the capacity anchor carries its SOC.
    fn sync(&mut self, kind: SyncKind) -> SyncPoint {
        let cells = self.cells().max(1);
        let error_uv = i32::from(self.variant.max_operating_mv()) * 1_000 / VOLTAGE_ERROR_PER_FS / cells;
        let p = self.soc.sync(
            kind,
            self.variant.cells_in_series(),
            self.meas.voltage_uv / cells,
            self.meas.temperature_dc,
            error_uv,
        );
        if p.applied {
            self.soc_synced = true;
            self.syncs_applied = self.syncs_applied.wrapping_add(1);
        } else {
            self.syncs_refused = self.syncs_refused.wrapping_add(1);
        }
        self.last_sync = Some(p);
        p
    }

    fn clock_s(&self, now: Instant) -> u32 {
        self.clock_base_s.wrapping_add(now.saturating_since(self.clock_set_at).as_secs() as u32)
    }

    fn poll(&mut self, now: Instant, inputs: &Inputs) -> Outputs {
        self.now = now;
        let s = self.settings;
        // 1. Measure.
        self.meas =
            self.converter.convert(inputs.current_code, inputs.voltage_code, inputs.temperature_code, &s.calibration);
        self.window.add(now, inputs);
        let m = self.meas;

        // 2. Count: the sample stands for the interval since the previous one.
        match self.last_sample {
            None => {
                self.started = Some(now);
                if !self.soc_synced {
                    // Power-up: the SOC from the voltage, where the OCV curve is steep enough to tell.
                    let cell_mv = m.voltage_mv() / self.cells().max(1);
                    if !(OCV_RELIABLE_BELOW_CELL_MV..=OCV_RELIABLE_ABOVE_CELL_MV).contains(&cell_mv) {
                        self.soc.set_soc(soc::soc_from_cell_ocv(cell_mv));
                    }
                }
            }
            Some(last) => {
                let dt = now.saturating_since(last);
                if dt <= MAX_SAMPLE_GAP {
                    let dt_us = dt.as_micros() as u32; // ≤ 1 s
                    let own_ua = if s.self_consumption_counted != 0 && m.voltage_uv > 1_000_000 {
                        // 0.1 W drawn before the shunt, at the battery voltage.
                        (i64::from(design::SELF_CONSUMPTION_MW) * 1_000_000_000 / i64::from(m.voltage_uv)) as i32
                    } else {
                        0
                    };
                    let counted = m.current_ua.saturating_sub(own_ua);
                    self.soc.count(counted, m.voltage_uv, dt_us, s.charge_efficiency_centipct);
                    self.capacity.count(soc::efficiency_scaled(counted, s.charge_efficiency_centipct), dt_us);
                    self.totals.count(&m, dt_us);
                }
            }
        }
        self.last_sample = Some(now);

        // 3. Diagnostics.
        self.totals.observe(&m);
        self.ir.update(&m);

        // 4. Full charge: voltage above full_mv and |current| below the tail for full_delay_s.
        let full_cond =
            m.voltage_mv() >= i32::from(s.full_mv) && m.current_ua.unsigned_abs() < u32::from(s.full_tail_da) * 100_000;
        if full_cond && !self.full {
            let since = *self.full_since.get_or_insert(now);
            if now.saturating_since(since) >= Duration::from_secs(u64::from(s.full_delay_s)) {
                self.full = true;
                let p = self.sync(SyncKind::Full);
                self.full_soc = self.soc.soc_ah();
                self.last_full = Some(now);
                self.anchor(Anchor::Full(p.soc_centipct));
            }
        } else if !full_cond {
            self.full_since = None;
        }
        if self.full && self.soc.soc_ah() < self.full_soc.saturating_sub(100) {
            self.full = false;
        }

        // 5. Protect; log each trip; an LVP trip synchronises the SOC to empty.
        self.cond = Conditions {
            variant: self.variant,
            meas: m,
            lvp_input_ok: inputs.lvp_input_ok,
            ovp_input_ok: inputs.ovp_input_ok,
            sc_latched: inputs.sc_latched,
            aux_overcurrent: inputs.aux_overcurrent,
        };
        let mut tripped = 0u16;
        let (time_s, log) = (self.clock_s(now), &mut self.log);
        // A register write that changes the settings raises `settings_changed` (for the EEPROM);
        // until it is taken, the protection table follows the settings here (see
        // `take_settings_changed`), so it is compiled for them at every poll.
        if self.settings_changed {
            self.prot.configure(&s, self.variant);
        }
        self.prot.update_configured(now, &self.cond, &s, |row| {
            tripped |= row.fault;
            log.push(row.log_entry(time_s, &m));
        });
        if tripped & faults::LVP != 0 {
            let p = self.sync(SyncKind::Empty);
            self.anchor(Anchor::Empty(p.soc_centipct));
        }

        // 6. A long rest where the OCV tells the SOC anchors a capacity passage.
        if m.current_ua.unsigned_abs() < REST_CURRENT_UA.unsigned_abs() {
            let since = *self.rest_since.get_or_insert(now);
            if !self.rest_anchored && now.saturating_since(since) >= REST_ANCHOR {
                self.rest_anchored = true;
                let cell_mv = m.voltage_mv() / self.cells().max(1);
                if cell_mv < OCV_RELIABLE_BELOW_CELL_MV {
                    self.anchor(Anchor::Rest(soc::soc_from_cell_ocv(cell_mv)));
                }
            }
        } else {
            self.rest_since = None;
            self.rest_anchored = false;
        }

        // 7. Outputs.
        self.outputs = self.decide();
        self.outputs
    }

    /// Outputs from the protection state: every fault opens the path it protects.
    fn decide(&mut self) -> Outputs {
        let open = self.prot.paths_open();
        let mut f = self.prot.faults();
        if self.meas.saturated {
            f |= faults::ADC_SATURATED;
        }
        let s = &self.settings;
        let t = self.meas.temperature_dc;
        // Thermostat with hysteresis: on at or below aux_on, off at or above aux_off.
        if t <= s.aux_on_dc {
            self.heating = true;
        } else if t >= s.aux_off_dc {
            self.heating = false;
        }
        // (The SOC only where the mode reads it: a division saved in every other poll.)
        let aux = match s.aux_mode() {
            AuxMode::Off => false,
            AuxMode::On => true,
            AuxMode::Heating => self.heating,
            AuxMode::SocAbove => self.soc_selected() >= s.aux_soc_centipct,
            AuxMode::SocBelow => self.soc_selected() < s.aux_soc_centipct,
            AuxMode::Fault => f != 0,
        };
        Outputs {
            switch_on: open & path::SWITCH == 0,
            lvp_output: open & path::LOAD == 0,
            ovp_output: open & path::CHARGER == 0,
            aux_on: aux && open & path::AUX == 0,
            sc_latch_reset: self.prot.sc_latch_reset(),
            faults: f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::{self, status};
    use crate::settings::{cal_kind, design};

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
        Inputs::codes((amps * CODES_PER_A).round() as i32, (volts * 1e12 / pv).round() as i32, 1 << 22)
    }

    fn run(b: &mut Board, from_ms: u64, to_ms: u64, inp: Inputs) -> Outputs {
        let mut out = b.outputs();
        for t in from_ms..to_ms {
            out = b.poll(Instant::from_millis(t), &inp);
        }
        out
    }

    #[test]
    fn issue_16_lvp_blocks_discharge_after_its_delay_only_and_charging_goes_on() {
        let v = Variant::V12;
        let mut b = board(v);
        run(&mut b, 0, 1_000, inputs(v, 13.2, -50.0));
        assert!(b.outputs().lvp_output);
        // 11.0 V < 11.2 V LVP: held 1.999 s → still on, 2 s → discharge blocked.
        let low = inputs(v, 11.0, -50.0);
        let out = run(&mut b, 1_000, 3_000, low);
        assert!(out.lvp_output, "tripped before the 2 s delay");
        let out = b.poll(Instant::from_millis(3_000), &low);
        assert!(!out.lvp_output, "the load path (discharge bank) opens");
        assert!(out.switch_on && out.ovp_output, "the charge path stays closed: {out:?}");
        assert_ne!(out.faults & faults::LVP, 0);
        // Resting voltage below the 13.0 V release: discharge stays blocked.
        let out = run(&mut b, 3_001, 6_000, inputs(v, 12.4, 0.0));
        assert!(!out.lvp_output && out.switch_on && out.ovp_output);
        // Clear command with the condition gone re-enables the path.
        b.write_registers(0x0401, &[1]).unwrap();
        assert!(b.outputs().lvp_output);
    }

    #[test]
    fn issue_16_ovp_blocks_charging_and_a_load_may_discharge() {
        let v = Variant::V48;
        let mut b = board(v);
        run(&mut b, 0, 100, inputs(v, 53.0, 20.0));
        let out = run(&mut b, 100, 2_200, inputs(v, 58.5, 20.0));
        assert!(out.switch_on && !out.ovp_output && out.lvp_output, "{out:?}");
        assert_ne!(out.faults & faults::OVP, 0);
        // Resting above the release (a full pack relaxes slowly): a load still draws, the charger stays off.
        let out = run(&mut b, 2_200, 5_000, inputs(v, 55.0, -30.0));
        assert!(out.switch_on && out.lvp_output && !out.ovp_output, "{out:?}");
    }

    #[test]
    fn issue_16_aux_output_off_above_its_max_switching_voltage() {
        // A 12-209 on a 5-cell pack at 16.7 V: above the aux driver's 15 V rating.
        for (v, ok_v, over_v) in [(Variant::V12, 14.9, 16.7), (Variant::V24, 29.9, 30.2), (Variant::V48, 59.9, 60.5)] {
            let mut b = board(v);
            write(&mut b, "aux_mode", 1).unwrap();
            let out = run(&mut b, 0, 100, inputs(v, ok_v, 0.0));
            assert!(out.aux_on && out.faults & faults::AUX_OVERVOLTAGE == 0, "{v:?} {out:?}");
            let out = b.poll(Instant::from_millis(100), &inputs(v, over_v, 0.0));
            assert!(!out.aux_on, "{v:?}: the aux output switched above its rating");
            assert_ne!(out.faults & faults::AUX_OVERVOLTAGE, 0);
            let entry = b.core.log.get(0);
            assert_eq!((entry.code, entry.value), (13, (over_v * 100.0).round() as i16), "{v:?}");
            // Back under the rating: held for the driver's retry time, then on again.
            let out = run(&mut b, 101, 9_000, inputs(v, ok_v, 0.0));
            assert!(!out.aux_on, "{v:?}: released before the retry time");
            let out = run(&mut b, 9_000, 10_200, inputs(v, ok_v, 0.0));
            assert!(out.aux_on && out.faults & faults::AUX_OVERVOLTAGE == 0, "{v:?} {out:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Issue 16, the LVP lock-out: after any LVP trip, at any thresholds, the charge path
        /// stays closed (a charge current is accepted and counted) while the pack rests or
        /// charges below the release level, and discharge stays blocked until the voltage
        /// is above the release level.
        #[test]
        fn issue_16_after_any_lvp_trip_a_charger_recovers_the_pack(
            vi in 0usize..3,
            lvp_cell_mv in 2_500u16..3_000,
            release_above_mv in 100u16..500,
            delay_ms in 0u16..5_000,
            rest_frac in 0.0f64..1.0,
            charge_a in 1.0f64..140.0, // below the 150 A OCC
        ) {
            let v = [Variant::V12, Variant::V24, Variant::V48][vi];
            let n = f64::from(v.cells_in_series());
            let mut s = Settings::defaults(v);
            s.lvp_mv = lvp_cell_mv * v.cells_in_series();
            s.lvp_release_mv = (lvp_cell_mv + release_above_mv) * v.cells_in_series();
            s.lvp_delay_ms = delay_ms;
            proptest::prop_assume!(s.check(v).is_ok());
            let mut b = Board::new(v, s, 1, RtuConfig::default()).unwrap();
            let lvp_v = f64::from(s.lvp_mv) / 1e3;
            let release_v = f64::from(s.lvp_release_mv) / 1e3;
            run(&mut b, 0, 100, inputs(v, release_v + 0.5, -50.0));
            let t_trip = 100 + u64::from(delay_ms) + 1;
            let out = run(&mut b, 100, t_trip + 1, inputs(v, lvp_v - 0.05 * n, -50.0));
            proptest::prop_assert!(out.faults & faults::LVP != 0);
            // Between the LVP and its release level: at rest, then charging.
            let between_v = lvp_v + rest_frac * (release_v - lvp_v - 0.001);
            let soc_before = b.soc_ah_centipct();
            let mut t = t_trip + 1;
            for amps in [0.0, charge_a] {
                let out = run(&mut b, t, t + 20_000, inputs(v, between_v, amps));
                t += 20_000;
                proptest::prop_assert!(out.switch_on && out.ovp_output, "charge path open: {:?}", out);
                proptest::prop_assert!(!out.lvp_output, "discharge released below the release level");
            }
            proptest::prop_assert!(b.soc_ah_centipct() > soc_before, "the charge is counted");
            // Above the release level: discharge allowed again.
            let out = run(&mut b, t, t + 10, inputs(v, release_v + 0.05, charge_a));
            proptest::prop_assert!(out.lvp_output && out.switch_on && out.ovp_output, "{:?}", out);
        }
    }

    #[test]
    fn coulomb_counting_through_the_board() {
        let v = Variant::V24;
        let mut b = board(v);
        b.write_registers(0x0400, &[10_000]).unwrap(); // set SOC 100 %
        // 50 A discharge for 360 s at 1 kSPS: 5 Ah of 100 Ah.
        run(&mut b, 0, 360_001, inputs(v, 26.0, -50.0));
        assert_eq!(b.soc_centipct(), 9_500);
        let mut regs = [0u16; 2];
        b.read_registers(0x0128, &mut regs).unwrap();
        assert_eq!(map::RegType::U32.decode(&regs), 50); // discharged_total_dah
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
        // Out of range capacity → 03.
        assert_eq!(b.write_registers(0x0200, &[5]), Err(ExceptionCode::IllegalDataValue));
        // Valid capacity followed by an invalid LVP (above its release) in one request → 03, capacity unchanged.
        assert_eq!(b.write_registers(0x0200, &[2_000, 14_000]), Err(ExceptionCode::IllegalDataValue));
        // Read-only register → 02; half of a 32-bit register → 02; gap → 02.
        assert_eq!(b.write_registers(0x0100, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(0x0303, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(0x0302, &[1]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(0x0207, &[1]), Err(ExceptionCode::IllegalDataAddress));
        // OVP above the variant's 15 V max operating voltage → 03.
        assert_eq!(b.write_registers(0x0213, &[15_500]), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(*b.settings(), before);
        assert!(!b.take_settings_changed(), "refused writes change nothing");
        // A valid write lands and is flagged for saving once.
        b.write_registers(0x0200, &[2_000]).unwrap();
        assert_eq!(b.settings().capacity_dah, 2_000);
        assert!(b.take_settings_changed());
        assert!(!b.take_settings_changed());
        // A command is not a settings change.
        b.write_registers(0x0400, &[5_000]).unwrap();
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

    fn read_u(b: &mut Board, name: &str) -> i64 {
        let def = map::by_name(name).unwrap();
        let mut w = [0u16; 2];
        b.read_registers(def.addr, &mut w[..usize::from(def.ty.words())]).unwrap();
        def.ty.decode(&w)
    }

    fn write(b: &mut Board, name: &str, raw: i64) -> Result<(), ExceptionCode> {
        let def = map::by_name(name).unwrap();
        let w = def.ty.encode(raw);
        b.write_registers(def.addr, &w[..usize::from(def.ty.words())])
    }

    #[test]
    fn calibration_needs_the_unlock_and_stamps_time_and_kind() {
        let v = Variant::V12;
        let mut b = board(v);
        // A board whose zero reads 500 codes high.
        let mut inp = inputs(v, 13.0, 0.0);
        inp.current_code += 500;
        run(&mut b, 0, 2_100, inp);
        assert_eq!(write(&mut b, "cal_zero_current", 1), Err(ExceptionCode::IllegalFunction), "locked");
        assert_eq!(write(&mut b, "current_offset_code", 5), Err(ExceptionCode::IllegalFunction));
        write(&mut b, "clock_s", 1_700_000_000).unwrap();
        write(&mut b, "cal_unlock", i64::from(map::CAL_UNLOCK_KEY)).unwrap();
        assert_ne!(read_u(&mut b, "status") as u16 & status::CAL_UNLOCKED, 0);
        write(&mut b, "cal_zero_current", 1).unwrap();
        assert_eq!(b.settings().calibration.current_offset_code, 500);
        assert_eq!(read_u(&mut b, "last_cal_kind"), i64::from(cal_kind::CURRENT_ZERO));
        assert_eq!(read_u(&mut b, "last_cal_time_s"), 1_700_000_000);
        assert!(b.take_settings_changed(), "calibration is saved");

        // Gain: 100.000 A flowing reads 0.5 % low on this board.
        let mut inp = inputs(v, 13.0, 99.5);
        inp.current_code += 500;
        run(&mut b, 2_101, 4_300, inp);
        write(&mut b, "cal_current_ma", 100_000).unwrap();
        assert_eq!(read_u(&mut b, "last_cal_kind"), i64::from(cal_kind::CURRENT_GAIN));
        b.poll(Instant::from_millis(4_301), &inp);
        assert!((b.measurements().current_ma() - 100_000).abs() <= 1, "{}", b.measurements().current_ma());
        // Too small a reference current is refused.
        assert_eq!(write(&mut b, "cal_current_ma", 5_000), Err(ExceptionCode::IllegalDataValue));

        // Voltage: the divider reads 13.000 V where 13.050 V is applied.
        write(&mut b, "cal_voltage_mv", 13_050).unwrap();
        b.poll(Instant::from_millis(4_303), &inp);
        assert!((b.measurements().voltage_mv() - 13_050).abs() <= 1);
        // The unlock expires on the board's own clock (its polls): a write carries no time.
        b.poll(Instant::from_millis(63_000), &inp);
        assert_eq!(write(&mut b, "cal_zero_current", 1), Err(ExceptionCode::IllegalFunction));
    }

    /// Issue 16, the image's overflow-checks build: a gain calibration with the full reference
    /// current on a net code of one count overflowed i64 (3·10²⁰ pA·10⁻⁶/code) and wrapped in
    /// release builds; now it is refused as out of range and changes nothing.
    #[test]
    fn issue_16_gain_calibration_on_a_tiny_net_code_is_refused_not_wrapped() {
        let v = Variant::V48;
        let mut b = board(v);
        let mut inp = inputs(v, 52.0, 0.0);
        inp.current_code = b.settings().calibration.current_offset_code + 1;
        run(&mut b, 0, 2_100, inp);
        write(&mut b, "cal_unlock", i64::from(map::CAL_UNLOCK_KEY)).unwrap();
        let before = *b.settings();
        assert_eq!(write(&mut b, "cal_current_ma", 300_000), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(*b.settings(), before);
    }

    /// Found by the `pdu` fuzz target (issue 20): a write of ocd_da = 0 (below its range) through
    /// the unmapped 0x0224 was answered 03 (illegal value), not 02 (illegal address).
    #[test]
    fn issue_20_a_write_through_an_unmapped_address_is_illegal_address_even_after_a_bad_value() {
        let mut b = board(Variant::V12);
        let before = *b.settings();
        // 0x0218 ocd_da .. 0x0229: 0x0224..=0x022F are not in the map; ocd_da = 0 is below its minimum.
        assert!(map::find(0x0224).is_none());
        assert_eq!(b.write_registers(0x0218, &[0; 18]), Err(ExceptionCode::IllegalDataAddress));
        // aux_soc_centipct = 20000 (above its maximum), then the unmapped 0x0234; a read-only
        // register; half of a 32-bit one: each is the address.
        assert_eq!(b.write_registers(0x0233, &[20_000, 0]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(0x013A, &[0, 0]), Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(b.write_registers(0x0300, &[0]), Err(ExceptionCode::IllegalDataAddress));
        // Within the map a bad value is still a bad value.
        assert_eq!(b.write_registers(0x0218, &[0]), Err(ExceptionCode::IllegalDataValue));
        assert_eq!(*b.settings(), before);
    }

    #[test]
    fn calibration_before_a_full_averaging_window_is_busy() {
        let v = Variant::V12;
        let mut b = board(v);
        b.poll(Instant::ZERO, &inputs(v, 13.0, 0.0));
        write(&mut b, "cal_unlock", i64::from(map::CAL_UNLOCK_KEY)).unwrap();
        assert_eq!(write(&mut b, "cal_zero_current", 1), Err(ExceptionCode::ServerDeviceBusy));
    }

    #[test]
    fn issue_16_full_charge_detection_synchronises_soc_to_the_criterions_soc() {
        let v = Variant::V12;
        let mut b = board(v);
        write(&mut b, "set_soc_centipct", 9_000).unwrap();
        // 14.0 V (3.5 V/cell ≥ 3.45) with a 2 A tail for 30 s.
        run(&mut b, 0, 29_000, inputs(v, 14.0, 2.0));
        assert!(b.soc_centipct() < 9_100);
        assert_eq!(read_u(&mut b, "soc_sync_last"), 0);
        run(&mut b, 29_000, 31_000, inputs(v, 14.0, 2.0));
        // OCV = 3.5 V − 2 A·R0 − R1·ĩ₁ − R2·ĩ₂ − M·h ≈ 3.498 V: 99.15 % for cells all alike
        // (3.48 → 3.60 V is 99 → 100 %); four cells spread by 0.5 % (1σ) reach that mean
        // OCV at a mean SOC of 99.08 % (the cells above the knee pull it up).
        assert!(b.soc_centipct().abs_diff(9_908) <= 3, "{}", b.soc_centipct());
        assert_eq!(read_u(&mut b, "soc_sync_last"), 1);
        assert_eq!(read_u(&mut b, "soc_sync_point_centipct"), i64::from(b.soc_centipct()));
        assert!(read_u(&mut b, "soc_sync_bound_centipct") <= 50);
        // The flag holds while the tail goes on charging (the SOC stays near the sync point).
        run(&mut b, 31_000, 40_000, inputs(v, 14.0, 2.0));
        assert_ne!(read_u(&mut b, "status") as u16 & status::FULL, 0);
        assert!((9..=10).contains(&read_u(&mut b, "time_since_full_s")));
    }

    /// Issue 16: a full criterion set on the LFP plateau fires where the voltage
    /// cannot tell the SOC to 0.5 points: the board refuses the sync, keeps its
    /// count and says so.
    #[test]
    fn issue_16_soc_sync_on_the_plateau_is_refused_and_reported() {
        let v = Variant::V12;
        let mut b = board(v);
        write(&mut b, "full_mv", 13_400).unwrap(); // 3.35 V/cell
        write(&mut b, "set_soc_centipct", 6_000).unwrap();
        run(&mut b, 0, 31_000, inputs(v, 13.42, 0.0)); // 3.355 V/cell at rest
        assert_ne!(read_u(&mut b, "status") as u16 & status::FULL, 0, "the criterion was met");
        assert_eq!(read_u(&mut b, "soc_sync_last"), 3, "full, refused");
        assert_eq!(read_u(&mut b, "soc_sync_refused_count"), 1);
        assert!(read_u(&mut b, "soc_sync_bound_centipct") > 50);
        // 3.355 V less a hysteresis of unknown branch: 93–94 %, on the plateau.
        assert!((9_200..9_500).contains(&read_u(&mut b, "soc_sync_point_centipct")));
        assert!(b.soc_centipct().abs_diff(6_000) <= 1, "the count is kept: {}", b.soc_centipct());
        assert_eq!(b.sync_counts(), (0, 1));
    }

    #[test]
    fn self_consumption_counted_or_not() {
        let v = Variant::V12;
        for (counted, expect_uah) in [(1, 100_000_000 - 7_692), (0, 100_000_000)] {
            let mut b = board(v);
            write(&mut b, "self_consumption_counted", counted).unwrap();
            write(&mut b, "set_soc_centipct", 10_000).unwrap();
            // One hour at rest at 13.0 V: 0.1 W / 13 V = 7.692 mA → 7 692 µAh.
            for t in 0..=3_600 {
                b.poll(Instant::from_secs(t), &inputs(v, 13.0, 0.0));
            }
            assert!((b.remaining_uah() - expect_uah).abs() <= 2, "counted {counted}: {}", b.remaining_uah());
        }
    }

    #[test]
    fn aux_heating_thermostat_and_fault_mode() {
        let v = Variant::V24;
        let mut b = board(v);
        write(&mut b, "aux_mode", 2).unwrap();
        let code_at = |t_c: f64| {
            let r = 10_000.0 * f64::exp(3435.0 * (1.0 / (t_c + 273.15) - 1.0 / 298.15));
            (r / (r + 10_000.0) * 8_388_608.0) as i32
        };
        let mut inp = inputs(v, 26.0, 0.0);
        for (t_c, on) in [(2.0, true), (8.0, true), (10.5, false), (7.0, false), (4.5, true)] {
            inp.temperature_code = code_at(t_c);
            assert_eq!(b.poll(Instant::from_secs(1), &inp).aux_on, on, "{t_c} °C");
        }
        write(&mut b, "aux_mode", 5).unwrap();
        inp.temperature_code = code_at(25.0);
        inp.lvp_input_ok = false;
        run(&mut b, 2_000, 2_200, inp);
        assert!(b.outputs().aux_on, "error-message mode follows the LiPro fault");
        assert!(!b.outputs().lvp_output && b.outputs().switch_on);
    }

    #[test]
    fn trips_are_logged_with_time_code_and_value() {
        let v = Variant::V12;
        let mut b = board(v);
        write(&mut b, "set_soc_centipct", 500).unwrap();
        run(&mut b, 0, 2_200, inputs(v, 11.0, -20.0));
        assert_eq!(read_u(&mut b, "fault_log_count"), 1);
        assert_eq!(read_u(&mut b, "fault_log_0_code"), 0); // bit 0: LVP
        assert_eq!(read_u(&mut b, "fault_log_0_value"), 1_100); // 11.00 V in 10 mV
        assert_eq!(read_u(&mut b, "fault_log_0_time_s"), 2, "the 2 s LVP delay from t = 0");
        // LVP synchronises the SOC to the OCV of 2.75 V/cell + 20 A·R: about 1.3 %.
        assert!(b.soc_centipct().abs_diff(133) <= 10, "{}", b.soc_centipct());
        assert_eq!(read_u(&mut b, "soc_sync_last"), 2);
        write(&mut b, "reset_counters", i64::from(map::RESET_COUNTERS_KEY)).unwrap();
        assert_eq!(read_u(&mut b, "fault_log_count"), 0);
    }

    #[test]
    fn soc_method_selects_the_register() {
        let v = Variant::V12;
        let mut b = board(v);
        write(&mut b, "set_soc_centipct", 5_000).unwrap();
        let code_at_0c = {
            let r = 10_000.0 * f64::exp(3435.0 * (1.0 / 273.15 - 1.0 / 298.15));
            (r / (r + 10_000.0) * 8_388_608.0) as i32
        };
        let mut inp = inputs(v, 13.1, 0.0);
        inp.temperature_code = code_at_0c;
        b.poll(Instant::ZERO, &inp);
        assert_eq!(read_u(&mut b, "soc_centipct"), 5_000);
        write(&mut b, "soc_method", 2).unwrap();
        assert_eq!(read_u(&mut b, "soc_centipct"), 4_444);
        assert_eq!(read_u(&mut b, "usable_capacity_dah"), 900);
    }

    #[test]
    fn sampling_in_blocks_counts_exactly_like_polling_every_sample() {
        let v = Variant::V12;
        let (mut a, mut b) = (board(v), board(v));
        for x in [&mut a, &mut b] {
            write(x, "set_soc_centipct", 8_000).unwrap();
        }
        // A wobbly discharge: every sample different.
        for t in 0..60_000u64 {
            let amps = -30.0 - 10.0 * ((t % 7) as f64);
            let inp = inputs(v, 13.0, amps);
            a.poll(Instant::from_millis(t), &inp);
            b.sample(Instant::from_millis(t), &inp);
        }
        let (ra, rb) = (a.remaining_uah(), b.remaining_uah());
        // The block lags by at most one block: within 10 ms of 60 A.
        assert!((ra - rb).abs() <= 170, "{ra} vs {rb}");
    }

    #[test]
    fn sampling_reacts_at_once_to_the_short_circuit_latch() {
        let v = Variant::V12;
        let mut b = board(v);
        let mut inp = inputs(v, 13.0, -10.0);
        b.sample(Instant::ZERO, &inp);
        b.sample(Instant::from_millis(1), &inp);
        inp.sc_latched = true;
        let out = b.sample(Instant::from_millis(2), &inp);
        assert!(!out.switch_on && out.faults & faults::SHORT_CIRCUIT != 0);
    }

    #[test]
    fn block_sums_handed_over_at_once_equal_sampling_one_by_one() {
        let v = Variant::V12;
        let (mut a, mut b) = (board(v), board(v));
        let mut sums = CodeSums::default();
        let mut polled_at = std::vec::Vec::new();
        for t in 1..5_000u64 {
            let mut inp = inputs(v, 13.0 - 0.001 * ((t % 5) as f64), -30.0 - 10.0 * ((t % 7) as f64));
            // A LiPro cell signal drops for 37 ms in the middle of a block.
            inp.lvp_input_ok = !(2_003..2_040).contains(&t);
            let now = Instant::from_millis(t);
            let out_a = a.sample(now, &inp);
            sums.conversions += 1;
            sums.current_code_sum += i64::from(inp.current_code);
            sums.voltage_code_sum += i64::from(inp.voltage_code);
            if b.sample_due(now, &inp) {
                assert_eq!(out_a, b.sample_sums(now, &core::mem::take(&mut sums), &inp), "t = {t} ms");
                assert_eq!(a.last_poll(), Some(now));
                polled_at.push(t);
            }
            assert_eq!((a.last_poll(), a.measurements()), (b.last_poll(), b.measurements()));
        }
        assert_eq!(a.remaining_uah(), b.remaining_uah());
        // Every 10 ms, and at once when the signal drops and returns.
        for t in [1_991, 2_001, 2_003, 2_013, 2_033, 2_040, 2_050] {
            assert!(polled_at.contains(&t), "no poll at {t} ms");
        }
        assert!(!polled_at.contains(&2_011) && !polled_at.contains(&2_041));
    }

    #[test]
    fn device_identification_answers_fc43() {
        let mut b = board(Variant::V48);
        // FC43 / MEI 14, basic stream from object 0.
        let mut resp = [0u8; 253];
        let n = b.process_pdu(&[0x2B, 0x0E, 0x01, 0x00], &mut resp).unwrap();
        let text = &resp[..n];
        let has = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
        assert!(has(VENDOR_NAME) && has(b"SmartPro 48-209") && has(FIRMWARE_REVISION));
        let (major, minor) = (FIRMWARE_VERSION >> 8, FIRMWARE_VERSION & 0xFF);
        assert_eq!(FIRMWARE_REVISION, std::format!("{major}.{minor}").as_bytes());
    }

    proptest::proptest! {
        /// Random register writes (any address, any values, any count, with or
        /// without the calibration unlock) never panic and never leave a
        /// setting outside its range or inconsistent.
        #[test]
        fn random_writes_keep_settings_valid(
            writes in proptest::collection::vec(
                (0u16..0x0500, proptest::collection::vec(proptest::prelude::any::<u16>(), 1..8), proptest::prelude::any::<bool>()),
                1..60,
            ),
        ) {
            let v = Variant::V48;
            let mut b = board(v);
            let mut t = 0u64;
            for (addr, values, unlock) in writes {
                t += 500;
                b.poll(Instant::from_millis(t), &inputs(v, 52.0, -10.0));
                if unlock {
                    let _ = write(&mut b, "cal_unlock", i64::from(map::CAL_UNLOCK_KEY));
                }
                let before = *b.settings();
                let r = b.write_registers(addr, &values);
                proptest::prop_assert!(b.settings().check(v).is_ok(), "{:?}", b.settings().check(v));
                if r.is_err() {
                    proptest::prop_assert_eq!(*b.settings(), before, "a refused write changed the settings");
                }
            }
        }
    }
}
