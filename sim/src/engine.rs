//! The simulation engine: owns time (integer ns), the order of updates, the
//! models and the board, and the one tick loop every user of the twin runs.
//!
//! One tick is one ADC conversion period, driven by a [`Drive`]:
//! what is due now (scenario events, bus writes) → the signed current demand
//! → gated by the board's outputs → pack and thermal models → measurement
//! chain (codes) → `Board::poll` → outputs gate the next tick's demand.
//! [`Engine::tick`] is that tick; [`Engine::advance_to`] and
//! [`Engine::advance_to_with`] repeat it to a time. `run` (the scenario
//! runner), `serve` and `hil-rig`'s twin call them, with a scenario's
//! [`Stimulus`](crate::stimulus::Stimulus) or a [`HeldCurrent`] as the drive.
//!
//! Rates at `adc_rate_hz` (1 kSPS by default): the current and voltage
//! channels convert every tick and the chain sums their codes into the
//! firmware's block (its noise drawn once per block, see
//! `MeasurementChain::add_conversion`), handed over when the board polls
//! ([`firmware_core::board::POLL_PERIOD`], 10 ms, or at once on a digital
//! input); the pack steps every [`PACK_DECIMATION`] ticks on the span's mean
//! current; the thermal network every [`THERMAL_DECIMATION`] ticks, and the
//! chain's transfers are re-linearised at its new temperatures then; the NTC
//! channel converts every [`TEMPERATURE_DECIMATION`] ticks.

use firmware_core::map::{self, faults};
use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::nvm::{self, RamNvm, SettingsStore};
use firmware_core::{Board, Inputs, Instant, Outputs};
use models::chain::ChainTemperatures;
use models::chain::MeasurementChain;
use models::loads::{AuxHeater, Gate, SelfConsumption, Thevenin};
use models::pack::Pack;
use models::rng::SeedStreams;
use models::switch::{Switch, SwitchState};
use models::thermal::{HeatInputs, ThermalNetwork};
use models::variant::Variant;

use crate::handover::{self, board_variant};
use crate::scenario::Scenario;

/// The pack's state advances every this many ticks (10 ms at 1 kSPS) with the span's mean current.
pub const PACK_DECIMATION: u64 = 10;

/// The pack's temperature-dependent tables follow the cells' temperature in steps of this size.
const PACK_TEMPERATURE_STEP_K: f64 = 0.05;

/// The temperature channel is converted every this many ticks (NTCs are slow).
pub const TEMPERATURE_DECIMATION: u32 = 100;

/// The thermal network steps every this many ticks (100 ms at 1 kSPS) with
/// the heat of the span; its fastest time constant (the shunt's) is 10 s.
pub const THERMAL_DECIMATION: u64 = 100;

/// Set-up or runtime errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("firmware settings refused: {0}")]
    Settings(firmware_core::settings::SettingsError),
    #[error("firmware.registers.{name} = {value}: the board refused the write: {exception}")]
    RegisterWrite { name: String, value: i64, exception: firmware_core::modbus::ExceptionCode },
    #[error("saving settings to the board's EEPROM: {0}")]
    Nvm(nvm::SaveError<nvm::NvmError>),
    #[error("the external cell parameters (ecm_file): {0}")]
    Ecm(models::error::ParamError),
    #[error("{0}")]
    Thermal(String),
    #[error("transient event: {0}")]
    Transient(models::error::ParamError),
    #[error("transient event at t = {t_s:.6} s: the previous one is still running")]
    TransientBusy { t_s: f64 },
    #[error("non-finite model state at t = {t_s:.6} s: {what}")]
    NonFinite { t_s: f64, what: &'static str },
}

/// What drives the engine, tick by tick: a scenario's stimulus
/// ([`crate::stimulus::Stimulus`]), a held current ([`HeldCurrent`]: a
/// bench's measured current, an FMU's input), …
pub trait Drive {
    /// Applies what is due at the engine's time, before the tick: scenario
    /// events, bus-side register writes, changes of the digital inputs,
    /// transient events. Nothing by default.
    fn apply_due(&mut self, engine: &mut Engine) -> Result<(), EngineError> {
        let _ = engine;
        Ok(())
    }

    /// The current the load or charger asks for over the tick starting at
    /// the engine's time (A, signed: > 0 charges, < 0 discharges, 0 rests).
    /// The engine gates it by the board's outputs: the main switch and the
    /// short-circuit latch, the LVP output for a discharge, the OVP output
    /// for a charge.
    fn demand_a(&mut self, engine: &Engine) -> f64;

    /// The demand of the next ticks when it is steady: `Some((demand_a, n))`
    /// when, for the `n ≥ 1` ticks (at most `max_n` asked for) starting at the engine's time,
    /// [`Self::apply_due`] has nothing to do and [`Self::demand_a`] would
    /// return `demand_a` with no change of state. The engine then advances
    /// those ticks as one run ([`Engine::advance_to_with_runs`]). `None`
    /// (the default): every tick asks.
    fn steady(&self, engine: &Engine, max_n: u64) -> Option<(f64, u64)> {
        let _ = (engine, max_n);
        None
    }
}

/// Ticks of `step_ns` starting at `t_ns`, `t_ns + step_ns`, … strictly before `bound_ns`.
#[inline]
pub fn ticks_before(t_ns: u64, bound_ns: u64, step_ns: u64) -> u64 {
    if bound_ns <= t_ns { 0 } else { (bound_ns - t_ns - 1) / step_ns + 1 }
}

/// [`ticks_before`], at most `max_n` (no division when the bound is further away).
#[inline]
pub fn ticks_before_at_most(t_ns: u64, bound_ns: u64, step_ns: u64, max_n: u64) -> u64 {
    if bound_ns.saturating_sub(t_ns) > max_n.saturating_mul(step_ns) {
        max_n
    } else {
        ticks_before(t_ns, bound_ns, step_ns).min(max_n)
    }
}

/// A constant demand (A, > 0 charges) until it is changed: a measured
/// current held between two samples, an FMU's current input.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HeldCurrent {
    pub current_a: f64,
}

impl HeldCurrent {
    pub fn new(current_a: f64) -> Self {
        HeldCurrent { current_a }
    }
}

impl Drive for HeldCurrent {
    #[inline]
    fn demand_a(&mut self, _: &Engine) -> f64 {
        self.current_a
    }

    #[inline]
    fn steady(&self, _: &Engine, max_n: u64) -> Option<(f64, u64)> {
        Some((self.current_a, max_n))
    }
}

/// The true physical state after a tick (what the models know, the board does not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Truth {
    pub current_a: f64,
    pub voltage_v: f64,
    pub soc: f64,
    pub temp_c: f64,
}

/// Engine time: integer ns, advanced by whole ADC periods.
#[derive(Debug, Clone, Copy)]
struct Clock {
    t_ns: u64,
    step_ns: u64,
    /// `step_ns` in seconds.
    dt_s: f64,
}

/// Ticks until the next pack step, thermal step and NTC conversion
/// (countdowns: no division per tick).
#[derive(Debug, Clone, Copy)]
struct Countdowns {
    pack: u64,
    thermal: u64,
    ntc: u32,
}

/// What the ticks sum for the slower models until their next step.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulators {
    /// Heat into the thermal nodes since the last thermal step (J): cells, board, shunt.
    heat_j: [f64; 3],
    /// Charge through the pack since its last step (A·s).
    pack_charge_as: f64,
    /// Σ I²·dt since the last thermal step (A²·s): through the shunt, and through the switch while it is on.
    shunt_i2_as: f64,
    switch_on_i2_as: f64,
}

/// What the ticks hold between the slower models' steps.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The pack's EMF and R0 after its last step.
    pack_emf_v: f64,
    pack_r_ohm: f64,
    /// The temperature the pack's tables were last sliced at.
    pack_temp_c: f64,
    /// The true SOC after the pack's last step.
    pack_soc: f64,
    /// The board's own supply current (A) at the voltage `own_at_v`.
    own_a: f64,
    own_at_v: f64,
    /// The thermal nodes' temperatures, held between thermal steps: the cells (°C) and the chain's parts.
    cells_c: f64,
    chain_temps: ChainTemperatures,
}

/// The ambient temperature now, and its profile.
#[derive(Debug, Clone)]
struct Ambient {
    now_c: f64,
    /// `[t_s, temp_c]` points; empty: constant `now_c`.
    profile: Vec<(f64, f64)>,
}

impl Ambient {
    /// Ambient temperature at `t_s` (profile linear in between, held at its ends).
    fn at(&self, t_s: f64) -> f64 {
        let p = &self.profile;
        let i = p.partition_point(|&(t, _)| t <= t_s);
        match (i.checked_sub(1).and_then(|j| p.get(j)), p.get(i)) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => c0 + (c1 - c0) * (t_s - t0) / (t1 - t0),
            (Some(&(_, c0)), _) => c0,
            (None, Some(&(_, c1))) => c1,
            (None, None) => self.now_c,
        }
    }
}

/// Transient events: the circuit's parameters, the one in progress, the last outcome.
#[derive(Debug)]
struct Transients {
    /// Wiring, switch, comparator and arrester for transient events.
    params: models::transient::TransientParams,
    /// The hardware short-circuit comparator has latched the switch open.
    sc_latched: bool,
    /// The transient event in progress, stepped at µs resolution tick by tick.
    active: Option<Box<ActiveEvent>>,
    /// The last finished transient event's outcome.
    last: Option<models::transient::Outcome>,
    /// Keep each event's µs waveform in its outcome (a plot's replay; results do not depend on it).
    record: bool,
}

/// A transient event in progress inside the engine's ticks.
#[derive(Debug)]
struct ActiveEvent {
    run: models::transient::EventRun,
    /// Circuit time at the end of the last tick (s; the event started at 0).
    t_s: f64,
    /// The circuit's totals then.
    totals: models::transient::Totals,
    /// The comparator's trip has been passed to the latch.
    latched: bool,
}

/// The board's settings EEPROM and its record format.
#[derive(Debug)]
struct Eeprom {
    nvm: RamNvm<{ nvm::STORE_LEN }>,
    store: SettingsStore,
}

/// A running simulation of one board and its battery.
#[derive(Debug)]
pub struct Engine {
    clock: Clock,
    until: Countdowns,
    sums: Accumulators,
    held: Held,
    ambient: Ambient,
    variant: Variant,
    /// The aux heater, if the scenario has one.
    heater: Option<AuxHeater>,
    self_consumption: SelfConsumption,
    pack: Pack,
    thermal: ThermalNetwork,
    switch: Switch,
    chain: MeasurementChain,
    transient: Transients,
    board: Board,
    inputs: Inputs,
    outputs: Outputs,
    truth: Truth,
    eeprom: Eeprom,
    /// LiPro modules and PowerPro, when the scenario has them (issue 15; docs/companions.md).
    companions: Option<Box<models::companions::Companions>>,
}

/// The contents of the board's settings EEPROM.
pub type NvmImage = [u8; nvm::STORE_LEN];

impl Engine {
    /// Builds the models and the board of a scenario (factory-fresh EEPROM),
    /// and applies its firmware set-up at t = 0.
    pub fn new(scenario: &Scenario) -> Result<Engine, EngineError> {
        Self::with_nvm(scenario, None)
    }

    /// As [`Self::new`], with the board's settings EEPROM holding `image`
    /// (e.g. kept from an earlier session): the board boots with the settings
    /// stored there, or, without a valid record (a factory-fresh EEPROM), as
    /// it leaves the production line: the defaults with its measurement chain
    /// calibrated ([`handover::production_calibrated`]).
    pub fn with_nvm(scenario: &Scenario, image: Option<NvmImage>) -> Result<Engine, EngineError> {
        let streams = SeedStreams::new(scenario.seed);
        let mut pack_rng = streams.stream("pack");
        let start_c = scenario.ambient_profile.first().map_or(scenario.ambient_c, |p| p.1);
        let mut pack = match &scenario.ecm {
            Some(ecm) => Pack::from_ecm(ecm, &scenario.pack, scenario.variant, scenario.initial_soc, &mut pack_rng)
                .map_err(EngineError::Ecm)?,
            None => Pack::new(&scenario.pack, scenario.variant, scenario.initial_soc, &mut pack_rng),
        };
        pack.set_temperature_c(start_c);
        let thermal_params = scenario.thermal_params().map_err(EngineError::Thermal)?;
        let thermal = ThermalNetwork::new(&thermal_params, start_c);
        let switch = Switch::new(&scenario.switch, scenario.variant, &mut streams.stream("switch"));
        let chain = MeasurementChain::new(&scenario.chain, scenario.variant, &streams);
        let bv = board_variant(scenario.variant);
        let rtu = RtuConfig { unit_id: scenario.firmware.unit, ..RtuConfig::default() };
        let serial = (scenario.seed as u32) ^ 0x5A20_9000;
        let mut nvm = image.map_or_else(RamNvm::new, RamNvm::from_bytes);
        let store = SettingsStore::new(bv);
        // RamNvm cannot fail to read. Without a valid record (a factory-fresh EEPROM) the board is
        // as it leaves the production line: the defaults, calibrated.
        let settings = match store.load(&mut nvm) {
            Ok(loaded) if matches!(loaded.source, nvm::Source::Slot { .. }) => loaded.settings,
            _ => handover::production_calibrated(&scenario.chain, scenario.variant, scenario.seed, &streams),
        };
        let board = Board::new(bv, settings, serial, rtu).map_err(EngineError::Settings)?;
        let step_ns = 1_000_000_000 / u64::from(scenario.adc_rate_hz);
        let mut engine = Engine {
            clock: Clock { t_ns: 0, step_ns, dt_s: step_ns as f64 * 1e-9 },
            until: Countdowns { pack: PACK_DECIMATION, thermal: THERMAL_DECIMATION, ntc: TEMPERATURE_DECIMATION },
            sums: Accumulators::default(),
            held: Held {
                pack_emf_v: 0.0,
                pack_r_ohm: 0.0,
                pack_temp_c: start_c,
                pack_soc: 0.0,
                own_a: 0.0,
                own_at_v: f64::NAN,
                cells_c: start_c,
                chain_temps: ChainTemperatures::isothermal(start_c),
            },
            ambient: Ambient { now_c: start_c, profile: scenario.ambient_profile.clone() },
            variant: scenario.variant,
            // `aux_heater_w` is the heater's rating at the variant's nominal voltage: a resistance, drawing V²/R
            // at the battery's voltage.
            heater: (scenario.aux_heater_w > 0.0)
                .then(|| AuxHeater::for_power(scenario.aux_heater_w, scenario.variant.nominal_voltage_v())),
            self_consumption: SelfConsumption::default(),
            pack,
            thermal,
            switch,
            chain,
            transient: Transients {
                params: scenario.transient,
                sc_latched: false,
                active: None,
                last: None,
                record: false,
            },
            board,
            inputs: Inputs::codes(0, 0, 0),
            outputs: Outputs::IDLE,
            truth: Truth::default(),
            eeprom: Eeprom { nvm, store },
            companions: models::companions::Companions::new(
                scenario.lipro.as_ref(),
                scenario.powerpro.as_ref(),
                scenario.pack.cells_with(scenario.ecm.as_ref(), scenario.variant),
                start_c,
                &streams,
            ),
        };
        // The board boots on the battery at rest: one conversion, then the set-up writes.
        engine.held.pack_emf_v = engine.pack.terminal_voltage_v(0.0);
        engine.held.pack_r_ohm = engine.pack.r0_total_ohm();
        engine.held.pack_soc = engine.pack.soc();
        engine.hold_temperatures();
        engine.sample(0.0, true);
        let (current_code, voltage_code) = handover::single_conversion_codes(&engine.chain.take_block());
        engine.inputs.current_code = current_code;
        engine.inputs.voltage_code = voltage_code;
        engine.outputs = engine.board.poll(Instant::ZERO, &engine.inputs);
        // Commissioning: the board is set to the pack it is installed on, as an installer
        // would, unless the scenario writes the rated capacity itself (an aged pack behind a
        // board rated for the new one). The factory value needs no write.
        if let Some(dah) = scenario.commissioned_capacity_dah() {
            engine.write_register_by_name(crate::scenario::RATED_CAPACITY_REGISTER, i64::from(dah))?;
        }
        for (name, &value) in &scenario.firmware.registers {
            engine.write_register_by_name(name, value)?;
        }
        if let Some(pct) = scenario.firmware.initial_soc_pct {
            engine.write_register_by_name("set_soc_centipct", (pct * 100.0).round() as i64)?;
        }
        Ok(engine)
    }

    /// One tick: applies what `drive` has due now, takes its demand for the
    /// next ADC period and advances one period; returns the true state after
    /// it (the same as [`Self::truth`]).
    // Always inlined: in a caller's loop the tick's state stays in registers.
    #[inline(always)]
    pub fn tick<D: Drive + ?Sized>(&mut self, drive: &mut D) -> Result<Truth, EngineError> {
        drive.apply_due(self)?;
        let demand_a = drive.demand_a(self);
        self.step(demand_a)
    }

    /// Ticks while the engine's time is before `t_ns` (it ends at the first
    /// ADC period boundary at or after it; never backwards).
    pub fn advance_to<D: Drive + ?Sized>(&mut self, t_ns: u64, drive: &mut D) -> Result<(), EngineError> {
        self.advance_to_with_runs(t_ns, drive, |_, _, _| Ok::<_, EngineError>(u64::MAX))
    }

    /// As [`Self::advance_to_with`], with the ticks that repeat the state
    /// of the one before them taken as one run: `each(engine, truth, n)`
    /// stands for `n ≥ 1` ticks of the same true state (`n − 1` of them
    /// before the engine's time `engine.t_ns()`, none polling the board,
    /// stepping the pack or the thermal network, or converting the NTC; the
    /// board's outputs the same as after the tick before them), and returns
    /// the most ticks the next call may stand for (≥ 1).
    ///
    /// A run is taken when the drive's demand is steady ([`Drive::steady`]),
    /// no transient event is running and the tick's inputs (the current, the
    /// battery's voltage, the heater's draw) are those it leaves: each
    /// tick's sums are then added `n` times in the same order, so the
    /// result is bit-identical to `n` ticks.
    #[inline]
    pub fn advance_to_with_runs<D, E>(
        &mut self,
        t_ns: u64,
        drive: &mut D,
        mut each: impl FnMut(&Engine, Truth, u64) -> Result<u64, E>,
    ) -> Result<(), E>
    where
        D: Drive + ?Sized,
        E: From<EngineError>,
    {
        let mut max_run = 1u64;
        while self.clock.t_ns < t_ns {
            let mut n = 0;
            // (A run ends before the next pack step, thermal step, NTC conversion and poll: a tick
            // that polls is an ordinary one, and the drive is not asked.)
            let u = &self.until;
            if max_run > 1
                && u.pack > 1
                && u.thermal > 1
                && u.ntc > 1
                && !self.board.sample_due(Instant(self.clock.t_ns + self.clock.step_ns), &self.inputs)
            {
                let limit = ticks_before_at_most(self.clock.t_ns, t_ns, self.clock.step_ns, max_run);
                if limit > 1
                    && let Some((demand_a, steady_n)) = drive.steady(self, limit)
                {
                    n = self.run_steady(demand_a, limit.min(steady_n));
                }
            }
            let truth = if n > 0 {
                self.truth
            } else {
                n = 1;
                self.tick(drive)?
            };
            max_run = each(self, truth, n)?.max(1);
        }
        Ok(())
    }

    /// As [`Self::advance_to`], calling `each` after every tick with the
    /// engine and the tick's true state (a runner's per-tick bookkeeping:
    /// extremes, trace rows); an error of `each` stops the advance.
    #[inline]
    pub fn advance_to_with<D, E>(
        &mut self,
        t_ns: u64,
        drive: &mut D,
        mut each: impl FnMut(&Engine, Truth) -> Result<(), E>,
    ) -> Result<(), E>
    where
        D: Drive + ?Sized,
        E: From<EngineError>,
    {
        while self.clock.t_ns < t_ns {
            let truth = self.tick(drive)?;
            each(self, truth)?;
        }
        Ok(())
    }

    /// Saves the board's settings to its EEPROM if a write changed them;
    /// returns whether the EEPROM was written.
    pub fn persist_settings(&mut self) -> Result<bool, EngineError> {
        if !self.board.take_settings_changed() {
            return Ok(false);
        }
        let Eeprom { nvm, store } = &mut self.eeprom;
        let saved = store.save(nvm, self.board.settings()).map_err(EngineError::Nvm)?;
        Ok(saved.written)
    }

    /// The board's settings EEPROM.
    pub fn nvm_image(&self) -> &NvmImage {
        self.eeprom.nvm.bytes()
    }

    /// Writes one register by name, as a gateway on the bus would.
    pub fn write_register_by_name(&mut self, name: &str, value: i64) -> Result<(), EngineError> {
        let refused = |exception| EngineError::RegisterWrite { name: name.to_owned(), value, exception };
        let def = map::by_name(name).ok_or(refused(firmware_core::modbus::ExceptionCode::IllegalDataAddress))?;
        let words = def.ty.encode(value);
        let n = usize::from(def.ty.words());
        if def.ty.decode(&words[..n]) != value {
            return Err(refused(firmware_core::modbus::ExceptionCode::IllegalDataValue));
        }
        self.board.write_registers(def.addr, &words[..n]).map_err(refused)?;
        self.persist_settings()?;
        Ok(())
    }

    /// Holds the thermal network's temperatures until its next step: for the
    /// truth, and for the chain, whose transfers become lines at them.
    fn hold_temperatures(&mut self) {
        let net = &self.thermal;
        self.held.cells_c = net.cells_c();
        self.held.chain_temps = ChainTemperatures {
            shunt_temp_c: net.shunt_c(),
            board_temp_c: net.board_c(),
            shunt_delta_t_k: net.shunt_terminal_delta_k(),
        };
        self.chain.set_temperatures(&self.held.chain_temps);
    }

    /// Converts the channels for the true state after this tick: the current
    /// and voltage codes into the chain's block, and the NTC if `ntc`.
    #[inline]
    fn sample(&mut self, current_a: f64, ntc: bool) -> Truth {
        // Between pack steps the terminal voltage is the held EMF plus I·R0 (the R0 response is instantaneous).
        let voltage_v = self.held.pack_emf_v + current_a * self.held.pack_r_ohm;
        let truth = Truth { current_a, voltage_v, soc: self.held.pack_soc, temp_c: self.held.cells_c };
        self.truth = truth;
        self.chain.add_conversion(current_a, voltage_v);
        if ntc {
            self.convert_ntc();
        }
        truth
    }

    /// One conversion of the cells' NTC (out of line: every [`TEMPERATURE_DECIMATION`] ticks).
    #[inline(never)]
    fn convert_ntc(&mut self) {
        self.inputs.temperature_code = self.chain.temperature_code(self.held.cells_c);
    }

    /// The battery as a load or charger sees it through the switch and shunt.
    pub fn source(&self) -> Thevenin {
        let r_switch = self.switch.r_on_ohm(self.thermal.board_c());
        Thevenin {
            emf_v: self.pack.terminal_voltage_v(0.0),
            r_ohm: self.pack.r0_total_ohm() + r_switch + models::chain::nominal::SHUNT_R_OHM,
        }
    }

    /// The board's outputs as loads and chargers see them.
    pub fn gate(&self) -> Gate {
        let o = &self.outputs;
        Gate { switch_on: o.switch_on, lvp_output: o.lvp_output, ovp_output: o.ovp_output }
    }

    /// Starts a µs-resolved event now, from the present state: the pack's
    /// EMF and R0, the cells' temperature and the current through the switch
    /// (the load or charger it feeds). The event's circuit then runs inside the
    /// following ticks until it settles (switch off, no current, no source
    /// left) or its window ends; while it runs it is the tick's load: each ADC
    /// period takes the circuit's mean current over that period (what the
    /// Σ-Δ ADC averages, the charge the pack and the firmware count), the
    /// thermal network its heat, and the board the comparator's latch.
    pub fn transient_event(
        &mut self,
        kind: models::transient::EventKind,
        fault_resistance_mohm: f64,
        position: f64,
    ) -> Result<(), EngineError> {
        use models::transient::{BatteryState, EventParams, EventRun};
        if self.transient.active.is_some() {
            return Err(EngineError::TransientBusy { t_s: self.t_s() });
        }
        // The aux heater draws on the battery side of the switch: not through the circuit.
        let v = self.truth.voltage_v.max(1.0);
        let heater_a = self.heater.as_ref().map_or(0.0, |h| h.current_a(v, self.outputs.aux_on, self.variant));
        let state = BatteryState {
            rest_voltage_v: self.held.pack_emf_v,
            r_internal_ohm: self.held.pack_r_ohm,
            temperature_c: self.held.cells_c,
            current_a: self.truth.current_a - heater_a,
        };
        let event = EventParams { kind, at_us: 0.0, fault_resistance_mohm, position };
        let run = EventRun::start(&self.transient.params, self.variant, &state, &event, self.transient.record)
            .map_err(EngineError::Transient)?;
        let totals = *run.circuit().totals();
        self.transient.active = Some(Box::new(ActiveEvent { run, t_s: 0.0, totals, latched: false }));
        Ok(())
    }

    /// From now on, transient events keep their µs waveform in
    /// [`Self::last_transient`]'s `samples` (for plots). The circuit's figures
    /// do not depend on it (models' `record_resolution_is_the_grid_and_metrics_do_not_depend_on_it`).
    pub fn record_transient_waveforms(&mut self, on: bool) {
        self.transient.record = on;
    }

    /// A transient event is running.
    pub fn transient_running(&self) -> bool {
        self.transient.active.is_some()
    }

    /// Ends a running transient event now (e.g. at the end of a run) and keeps its outcome.
    pub fn finish_transient(&mut self) {
        if let Some(ev) = self.transient.active.take() {
            self.transient.last = Some(ev.run.finish());
        }
    }

    /// The last finished transient event's outcome, if there was one.
    pub fn last_transient(&self) -> Option<&models::transient::Outcome> {
        self.transient.last.as_ref()
    }

    /// Advances a running transient event over this tick's ADC period and
    /// returns the period's mean current (A, `> 0` charges), which the tick
    /// then takes as its load current; `None` without an event.
    ///
    /// The tick's own bookkeeping treats that mean like any load current: the
    /// pack's charge, the ADC codes (a Σ-Δ converter averages over its
    /// conversion), the switch's and shunt's I²·R from the mean. What the mean
    /// misses is added here: the arrester's energy, the circuit's switch
    /// energy in place of the tick's switch loss, and ∫i² − mean²·dt (the
    /// pulse's excess over its mean) for the shunt and the cells' R0.
    #[inline(never)]
    fn event_tick(&mut self) -> Option<f64> {
        let ev = self.transient.active.as_mut()?;
        let dt_s = self.clock.dt_s;
        ev.t_s += dt_s;
        ev.run.circuit_mut().advance_to(ev.t_s);
        let c = ev.run.circuit();
        let now = *c.totals();
        let before = std::mem::replace(&mut ev.totals, now);
        let charge_c = -(now.charge_c - before.charge_c);
        let mean_a = charge_c / dt_s;
        let excess_i2_as = (now.loop_i2t_a2s - before.loop_i2t_a2s - mean_a * mean_a * dt_s).max(0.0);
        let r_batt = self.held.pack_r_ohm;
        let sums = &mut self.sums;
        sums.heat_j[0] += (now.battery_heat_j - before.battery_heat_j - r_batt * mean_a * mean_a * dt_s).max(0.0);
        sums.shunt_i2_as += excess_i2_as;
        // The tick adds the switch model's loss for the mean; the circuit's replaces it.
        let state = SwitchState::from_outputs(self.outputs.switch_on, self.outputs.lvp_output, self.outputs.ovp_output);
        let board_c = self.held.chain_temps.board_temp_c;
        let tick_switch_j = if matches!(state, SwitchState::On) {
            self.switch.r_on_ohm(board_c) * mean_a * mean_a * dt_s
        } else {
            self.switch.power_w(state, mean_a, board_c) * dt_s
        };
        sums.heat_j[1] += (now.arrester_j - before.arrester_j) + (now.switch_j - before.switch_j) - tick_switch_j;
        if c.trip_at_s().is_some() && !ev.latched {
            // The comparator tripped in this period: the board reads the latch at its end.
            ev.latched = true;
            self.transient.sc_latched = true;
            self.inputs.sc_latched = true;
        }
        if ev.run.is_done() {
            self.finish_transient();
        }
        Some(mean_a)
    }

    /// The current that flows this tick for a signed demand (A, > 0 charges),
    /// gated by the board's outputs: nothing with the switch open or the
    /// hardware latch set (it holds the switch open whatever the firmware
    /// says), a discharge only with the LVP output on, a charge only with the
    /// OVP output on.
    #[inline]
    fn gated_current_a(&self, demand_a: f64) -> f64 {
        let o = &self.outputs;
        if !o.switch_on || self.transient.sc_latched {
            0.0
        } else if demand_a < 0.0 {
            if o.lvp_output { demand_a } else { 0.0 }
        } else if demand_a > 0.0 {
            if o.ovp_output { demand_a } else { 0.0 }
        } else {
            0.0
        }
    }

    /// The PowerPro's switch and fuse in the current path, after the board's gating: nothing
    /// flows while either is open (issue 15).
    #[inline]
    fn powerpro_gated_a(&self, current_a: f64) -> f64 {
        self.companions.as_ref().map_or(current_a, |c| c.gate_a(current_a))
    }

    /// The LiPro modules and the PowerPro, if the scenario has them.
    pub fn companions(&self) -> Option<&models::companions::Companions> {
        self.companions.as_deref()
    }

    /// Sets the ambient temperature (°C) from now on, in place of the
    /// scenario's ambient and its profile (a co-simulation's input); the
    /// thermal network takes it at its next step.
    pub fn set_ambient_c(&mut self, ambient_c: f64) {
        self.ambient.profile.clear();
        self.ambient.now_c = ambient_c;
    }

    /// Sets the LiPro loop's control inputs (true: control voltage present).
    pub fn set_lipro_inputs(&mut self, lvp_input: Option<bool>, ovp_input: Option<bool>) {
        if let Some(ok) = lvp_input {
            self.inputs.lvp_input_ok = ok;
        }
        if let Some(ok) = ovp_input {
            self.inputs.ovp_input_ok = ok;
        }
    }

    /// Advances one ADC period with the signed current demand `demand_a`
    /// (A, > 0 charges; gated here by the board's outputs); returns the true
    /// state after it. Private: [`Self::tick`] is the one way to step.
    #[inline(always)]
    fn step(&mut self, demand_a: f64) -> Result<Truth, EngineError> {
        // (The event's µs circuit is out of line: the common tick has none.)
        let event_a = if self.transient.active.is_some() { self.event_tick() } else { None };
        let load_a = event_a.unwrap_or_else(|| self.gated_current_a(demand_a));
        let load_a = self.powerpro_gated_a(load_a);
        let dt_s = self.clock.dt_s;
        let v = self.truth.voltage_v.max(1.0);
        // The aux heater sits on the battery side of the main switch; its current flows through the shunt.
        let (overcurrent, heater_a, heater_w, driver_w) = self.heater_draw(v);
        self.inputs.aux_overcurrent = overcurrent;
        if driver_w > 0.0 {
            self.sums.heat_j[1] += driver_w * self.clock.dt_s;
        }
        let current_a = load_a + heater_a;
        let own_a = self.own_current_a(v);
        // The pack's state (SOC, RC pairs, hysteresis) advances every PACK_DECIMATION ticks with the
        // mean current of the span: charge stays exact, and τ ≥ 30 s makes the 10 ms hold invisible.
        self.sums.pack_charge_as += (current_a + own_a) * dt_s;
        // Conduction losses are I²·R with R at the held temperatures: Σ I²·dt until the thermal step
        // (the switch's body diodes, when a bank is off, are not ohmic: their loss is summed as it comes).
        let state = SwitchState::from_outputs(self.outputs.switch_on, self.outputs.lvp_output, self.outputs.ovp_output);
        if matches!(state, SwitchState::On) {
            self.sums.switch_on_i2_as += load_a * load_a * dt_s;
        } else {
            self.sums.heat_j[1] += self.switch.power_w(state, load_a, self.held.chain_temps.board_temp_c) * dt_s;
        }
        self.sums.shunt_i2_as += current_a * current_a * dt_s;
        // (Without a heater its zero is not added: a sum that starts at +0.0 is never −0.0, and adding
        // ±0.0 to anything else leaves it as it is, bit for bit.)
        if heater_w != 0.0 {
            self.sums.heat_j[0] += heater_w * dt_s;
        }
        // The slower models step out of line: the common tick stays small.
        self.until.pack -= 1;
        if self.until.pack == 0 {
            self.until.pack = PACK_DECIMATION;
            self.step_pack();
        }
        self.until.thermal -= 1;
        if self.until.thermal == 0 {
            self.until.thermal = THERMAL_DECIMATION;
            self.step_thermal();
        }
        self.clock.t_ns += self.clock.step_ns;
        self.until.ntc -= 1;
        let ntc = self.until.ntc == 0;
        if ntc {
            self.until.ntc = TEMPERATURE_DECIMATION;
        }
        let truth = self.sample(current_a, ntc);
        if !(truth.voltage_v.is_finite() && truth.temp_c.is_finite() && truth.soc.is_finite()) {
            let what = if !truth.voltage_v.is_finite() { "pack terminal voltage" } else { "pack temperature or SOC" };
            return Err(EngineError::NonFinite { t_s: self.t_s(), what });
        }
        // The ADC interrupt's sums reach the firmware when it polls; in between its outputs hold
        // (or change by a register write).
        let now = Instant(self.clock.t_ns);
        self.outputs =
            if self.board.sample_due(now, &self.inputs) { self.hand_over_block(now) } else { self.board.outputs() };
        if self.outputs.sc_latch_reset {
            // The firmware pulsed the latch's reset line (the short itself was a one-off event).
            self.transient.sc_latched = false;
            self.inputs.sc_latched = false;
        }
        Ok(truth)
    }

    /// The aux heater's draw at the battery voltage `v` with the aux output
    /// as it is: (the driver's over-current input, current (A, ≤ 0), heat
    /// into the cells (W), the driver's loss on the board (W)). The heater is
    /// a resistance rated at the variant's nominal voltage (see
    /// [`Self::with_nvm`]): at the battery's voltage it draws `V²/R`.
    #[inline]
    fn heater_draw(&self, v: f64) -> (bool, f64, f64, f64) {
        let aux_on = self.outputs.aux_on;
        match &self.heater {
            // The driver reports over-current when the heater would draw more than the variant's limit.
            Some(h) => (
                aux_on && v / h.resistance_ohm > self.variant.aux_max_current_a(),
                h.current_a(v, aux_on, self.variant),
                h.power_w(v, aux_on, self.variant),
                h.driver_loss_w(v, aux_on, self.variant),
            ),
            None => (self.inputs.aux_overcurrent, 0.0, 0.0, 0.0),
        }
    }

    /// The board's own supply current at the battery voltage `v` (A), taken
    /// before the shunt: the pack delivers it, the shunt never sees it. (A
    /// division per tick is costly; the voltage changes only with the current
    /// or at a pack step.)
    #[inline]
    fn own_current_a(&mut self, v: f64) -> f64 {
        if v != self.held.own_at_v {
            self.held.own_at_v = v;
            self.held.own_a = self.self_consumption.current_a(v);
        }
        self.held.own_a
    }

    /// Advances up to `max_n` ticks of the steady demand `demand_a` as one
    /// run, if each of them would repeat the state the last tick left (see
    /// [`Self::advance_to_with_runs`]); returns the ticks advanced (0: none,
    /// the next tick must be an ordinary one).
    #[inline(never)]
    fn run_steady(&mut self, demand_a: f64, max_n: u64) -> u64 {
        if self.transient.active.is_some() {
            return 0;
        }
        // No run reaches a pack step, a thermal step or an NTC conversion.
        let u = &self.until;
        let mut n = max_n.min(u.pack - 1).min(u.thermal - 1).min(u64::from(u.ntc) - 1);
        if n == 0 {
            return 0;
        }
        let load_a = self.gated_current_a(demand_a);
        let v = self.truth.voltage_v.max(1.0);
        let (overcurrent, heater_a, heater_w, driver_w) = self.heater_draw(v);
        let current_a = load_a + heater_a;
        let voltage_v = self.held.pack_emf_v + current_a * self.held.pack_r_ohm;
        // Every tick of the run must see the same inputs: the voltage it leaves is the one it started from.
        if overcurrent != self.inputs.aux_overcurrent
            || driver_w > 0.0
            || voltage_v.max(1.0) != v
            || !(voltage_v.is_finite() && self.held.cells_c.is_finite() && self.held.pack_soc.is_finite())
        {
            return 0;
        }
        // No tick of the run polls the board (the inputs do not change in it: a poll is due by time only).
        let step_ns = self.clock.step_ns;
        let t_ns = self.clock.t_ns;
        if self.board.sample_due(Instant(t_ns + n * step_ns), &self.inputs) {
            n = match self.board.last_poll() {
                Some(last) => {
                    let due_ns = last.0.saturating_add(firmware_core::board::POLL_PERIOD.as_nanos());
                    ticks_before_at_most(t_ns + step_ns, due_ns, step_ns, n)
                }
                None => 0,
            };
            if n == 0 || self.board.sample_due(Instant(t_ns + n * step_ns), &self.inputs) {
                return 0;
            }
        }
        let own_a = self.own_current_a(v);
        let dt_s = self.clock.dt_s;
        // The tick's sums, each added n times in the tick's order (bit-identical to n ticks).
        let pack_as = (current_a + own_a) * dt_s;
        let state = SwitchState::from_outputs(self.outputs.switch_on, self.outputs.lvp_output, self.outputs.ovp_output);
        let on = matches!(state, SwitchState::On);
        let switch_x = if on {
            load_a * load_a * dt_s
        } else {
            self.switch.power_w(state, load_a, self.held.chain_temps.board_temp_c) * dt_s
        };
        let shunt_i2 = current_a * current_a * dt_s;
        let heater_j = heater_w * dt_s;
        let sums = &mut self.sums;
        for _ in 0..n {
            sums.pack_charge_as += pack_as;
            if on {
                sums.switch_on_i2_as += switch_x;
            } else {
                sums.heat_j[1] += switch_x;
            }
            sums.shunt_i2_as += shunt_i2;
            sums.heat_j[0] += heater_j;
        }
        self.until.pack -= n;
        self.until.thermal -= n;
        self.until.ntc -= n as u32;
        self.clock.t_ns += n * step_ns;
        self.truth = Truth { current_a, voltage_v, soc: self.held.pack_soc, temp_c: self.held.cells_c };
        self.chain.add_conversions(current_a, voltage_v, n as u32);
        n
    }

    /// The pack's state over the last [`PACK_DECIMATION`] ticks, on their mean current.
    #[inline(never)]
    fn step_pack(&mut self) {
        let span_s = self.clock.dt_s * PACK_DECIMATION as f64;
        let mean_a = std::mem::take(&mut self.sums.pack_charge_as) / span_s;
        self.pack.step(span_s, mean_a);
        if let Some(c) = self.companions.as_mut() {
            // The LiPros read the cells (bleeding them), the PowerPro watches the pack (issue 15).
            let s = c.step(span_s, &mut self.pack, mean_a, self.held.cells_c);
            self.sums.heat_j[0] += s.heat_w * span_s;
            self.sums.pack_charge_as -= s.coil_a * span_s;
            self.set_lipro_inputs(s.lvp_input_ok, s.ovp_input_ok);
        }
        self.sums.heat_j[0] += self.pack.heat_w(mean_a) * span_s;
        self.held.pack_emf_v = self.pack.terminal_voltage_v(0.0);
        self.held.pack_r_ohm = self.pack.r0_total_ohm();
        self.held.pack_soc = self.pack.soc();
    }

    /// The thermal network over the last [`THERMAL_DECIMATION`] ticks, with their heat; the
    /// temperatures it reaches are held for the next span.
    #[inline(never)]
    fn step_thermal(&mut self) {
        let span_s = self.clock.dt_s * THERMAL_DECIMATION as f64;
        if !self.ambient.profile.is_empty() {
            self.ambient.now_c = self.ambient.at(self.t_s());
        }
        let t = self.held.chain_temps;
        let sums = &mut self.sums;
        sums.heat_j[1] += self.switch.r_on_ohm(t.board_temp_c) * std::mem::take(&mut sums.switch_on_i2_as)
            + self.self_consumption.power_w * span_s;
        sums.heat_j[2] += self.chain.shunt_power_w(1.0, t.shunt_temp_c) * std::mem::take(&mut sums.shunt_i2_as);
        let [cells_j, board_j, shunt_j] = std::mem::take(&mut sums.heat_j);
        self.thermal.step(
            span_s,
            &HeatInputs {
                cells_w: cells_j / span_s,
                board_w: board_j / span_s,
                shunt_w: shunt_j / span_s,
                ambient_c: self.ambient.now_c,
            },
        );
        self.hold_temperatures();
        // Re-slicing the pack's temperature tables is costly: follow the cells in 0.05 K steps.
        let cells_c = self.held.cells_c;
        if (cells_c - self.held.pack_temp_c).abs() >= PACK_TEMPERATURE_STEP_K {
            self.pack.set_temperature_c(cells_c);
            self.held.pack_temp_c = cells_c;
        }
    }

    /// The block of conversions ends at `now`: its sums (the noise drawn) go to the board, which polls.
    #[inline(never)]
    fn hand_over_block(&mut self, now: Instant) -> Outputs {
        let sums = handover::code_sums(&self.chain.take_block());
        self.board.sample_sums(now, &sums, &self.inputs)
    }

    pub fn t_ns(&self) -> u64 {
        self.clock.t_ns
    }
    pub fn t_s(&self) -> f64 {
        self.clock.t_ns as f64 * 1e-9
    }
    pub fn step_ns(&self) -> u64 {
        self.clock.step_ns
    }
    pub fn truth(&self) -> &Truth {
        &self.truth
    }
    pub fn outputs(&self) -> Outputs {
        self.outputs
    }
    pub fn board(&self) -> &Board {
        &self.board
    }
    pub fn board_mut(&mut self) -> &mut Board {
        &mut self.board
    }
    pub fn pack(&self) -> &Pack {
        &self.pack
    }
    pub fn lvp_tripped(&self) -> bool {
        self.outputs.faults & faults::LVP != 0
    }
    pub fn ovp_tripped(&self) -> bool {
        self.outputs.faults & faults::OVP != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const BASE: &str =
        "name = \"nvm\"\nvariant = 12\ninitial_soc = 0.5\n[[segment]]\nkind = \"rest\"\nduration_s = 1\n";

    #[test]
    fn settings_written_over_the_bus_survive_a_restart_via_the_eeprom() {
        let with_write = format!("{BASE}[firmware.registers]\nlvp_mv = 11500\n");
        let s = Scenario::parse(&with_write, Path::new("a.toml")).unwrap();
        let first = Engine::new(&s).unwrap();
        assert_eq!(first.board().settings().lvp_mv, 11_500);
        let image = *first.nvm_image();

        // Power cycle: a fresh engine on the same EEPROM, no set-up writes.
        let s = Scenario::parse(BASE, Path::new("b.toml")).unwrap();
        let second = Engine::with_nvm(&s, Some(image)).unwrap();
        assert_eq!(second.board().settings().lvp_mv, 11_500);
        // A factory-fresh EEPROM boots with the defaults.
        let fresh = Engine::new(&s).unwrap();
        assert_eq!(fresh.board().settings().lvp_mv, 11_200);
        assert!(fresh.nvm_image().iter().all(|&b| b == nvm::ERASED), "nothing written without a change");
    }

    #[test]
    fn an_ecm_files_cell_and_jig_carry_the_packs_heat() {
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/t.toml");
        let text = BASE.replacen("variant = 12", "variant = 12\necm_file = \"data/lfp-100ah-ecm.toml\"", 1);
        let s = Scenario::parse(&text, &scenarios).unwrap();
        let mut e = Engine::new(&s).unwrap();
        assert_eq!(*e.thermal.params(), s.thermal_params().unwrap());
        e.advance_to(20_000 * e.step_ns(), &mut HeldCurrent::new(-200.0)).unwrap();
        // The heat goes cells → jig → ambient: both above the ambient, the cells warmest.
        let (cells_c, jig_c) = (e.thermal.cells_c(), e.thermal.jig_c().unwrap());
        assert!(cells_c > jig_c && jig_c > s.ambient_c + 1e-4, "cells {cells_c} °C, jig {jig_c} °C");
        // Without the file's table, no jig.
        let plain = Engine::new(&Scenario::parse(BASE, Path::new("a.toml")).unwrap()).unwrap();
        assert_eq!(plain.thermal.jig_c(), None);
    }

    /// Issue 16 item 4: the heater is rated at the nominal voltage and draws V²/R at the battery's voltage.
    #[test]
    fn issue_16_aux_heater_draws_v2_over_r_at_the_battery_voltage() {
        let text = BASE.replace("variant = 12", "variant = 12\naux_heater_w = 100.0");
        let s = Scenario::parse(&text, Path::new("heater.toml")).unwrap();
        let mut e = Engine::new(&s).unwrap();
        e.outputs.aux_on = true;
        let nominal_v = Variant::V12.nominal_voltage_v();
        let v = e.truth.voltage_v;
        assert!((v - nominal_v).abs() > 0.5, "a battery voltage away from the nominal: {v} V");
        let (overcurrent, heater_a, heater_w, driver_w) = e.heater_draw(v);
        let closed_w = 100.0 * (v / nominal_v) * (v / nominal_v);
        assert!((heater_w - closed_w).abs() < 1e-9 * closed_w, "{heater_w} W vs V²/R = {closed_w} W at {v} V");
        assert!((heater_a + closed_w / v).abs() < 1e-12, "{heater_a} A");
        assert!(!overcurrent && driver_w == 0.0);
    }

    /// Ticks taken as runs (`advance_to`) leave the state bit-identical to the same ticks one by one.
    #[test]
    fn runs_of_steady_ticks_are_bit_identical_to_single_ticks() {
        let text = BASE.replace("variant = 12", "variant = 12\naux_heater_w = 60.0");
        let s = Scenario::parse(&text, Path::new("runs.toml")).unwrap();
        let (mut runs, mut ticks) = (Engine::new(&s).unwrap(), Engine::new(&s).unwrap());
        let mut t_ns = 0;
        for (demand_a, n) in [(0.0, 95u64), (-40.0, 1_234), (25.0, 777), (-120.0, 3_001), (0.0, 250)] {
            t_ns += n * runs.step_ns();
            runs.advance_to(t_ns, &mut HeldCurrent::new(demand_a)).unwrap();
            while ticks.t_ns() < t_ns {
                ticks.tick(&mut HeldCurrent::new(demand_a)).unwrap();
            }
            let key = |e: &Engine| {
                let t = e.truth;
                (
                    e.t_ns(),
                    [t.current_a, t.voltage_v, t.soc, t.temp_c, e.pack.soc(), e.thermal.shunt_c()].map(f64::to_bits),
                    e.sums.pack_charge_as.to_bits(),
                    format!("{:?}", e.board.measurements()),
                    e.board.soc_centipct(),
                )
            };
            assert_eq!(key(&runs), key(&ticks), "after {demand_a} A");
        }
    }

    /// The board's measured current after 0.2 s at rest (A).
    fn current_at_rest_a(text: &str) -> f64 {
        let s = Scenario::parse(text, Path::new("cal.toml")).unwrap();
        let mut e = Engine::new(&s).unwrap();
        e.advance_to(200 * e.step_ns(), &mut HeldCurrent::new(0.0)).unwrap();
        f64::from(e.board().measurements().current_ua) * 1e-6
    }

    #[test]
    fn a_factory_fresh_board_is_calibrated_and_injected_defects_survive_it() {
        use models::chain::{ChainParams, MeasurementChain, nominal};
        // 0.01 % of 250 A: the datasheet's offset limit.
        let offset_limit_a = models::variant::CURRENT_OFFSET_ERROR_PCT_FS / 100.0 * nominal::CURRENT_FS_A;
        // A unit whose uncalibrated zero is outside the datasheet's offset (≈ 1 in 80).
        let uncalibrated_a = |seed: u64| {
            let c = MeasurementChain::new(&ChainParams::default(), Variant::V12, &SeedStreams::new(seed));
            c.current_code_noiseless(0.0, 25.0) / nominal::CURRENT_CODES_PER_A
        };
        let seed = (0..2_000).find(|&s| uncalibrated_a(s).abs() > offset_limit_a).expect("such a unit");
        let base = BASE.replace("variant = 12", &format!("variant = 12\nseed = {seed}"));
        let s = Scenario::parse(&base, Path::new("cal.toml")).unwrap();
        let cal = Engine::new(&s).unwrap().board().settings().calibration;
        assert_ne!(cal, firmware_core::settings::Calibration::nominal(firmware_core::Variant::V12));
        let at_rest = current_at_rest_a(&base);
        assert!(
            at_rest.abs() < offset_limit_a / 2.0,
            "seed {seed}: {at_rest} A at rest (uncalibrated {} A)",
            uncalibrated_a(seed)
        );
        // 0.05 % FS injected: the line does not see it, the board reads it.
        let injected = format!("{base}[chain.injected]\ncurrent_offset_pct_fs = 0.05\n");
        let defect_a = current_at_rest_a(&injected);
        assert!((defect_a - 0.125).abs() < offset_limit_a / 2.0, "{defect_a} A");
    }
}
