//! The simulation engine: owns time (integer ns), the order of updates, the
//! models and the board.
//!
//! One tick is one ADC conversion period:
//! stimulus → pack and thermal models → measurement chain (codes) →
//! `Board::poll` → outputs gate the next tick's stimulus.

use firmware_core::map::{self, faults};
use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::nvm::{self, RamNvm, SettingsStore};
use firmware_core::{Board, Inputs, Instant, Outputs};
use models::chain::CurrentSample;
use models::chain::MeasurementChain;
use models::loads::{AuxHeater, Charger, ChargerParams, Gate, Load, SelfConsumption, Thevenin};
use models::pack::Pack;
use models::rng::SeedStreams;
use models::switch::{Switch, SwitchState};
use models::thermal::{HeatInputs, NetworkParams, ThermalNetwork};
use models::variant::Variant;

use crate::scenario::{Scenario, SegmentKind, Until, secs_to_ns};

/// The pack's state advances every this many ticks (10 ms at 1 kSPS) with the span's mean current.
pub const PACK_DECIMATION: u64 = 10;

/// The pack's temperature-dependent tables follow the cells' temperature in steps of this size.
const PACK_TEMPERATURE_STEP_K: f64 = 0.05;

/// The temperature channel is converted every this many ticks (NTCs are slow).
pub const TEMPERATURE_DECIMATION: u32 = 100;

/// The firmware's variant for a model variant.
pub fn board_variant(v: Variant) -> firmware_core::Variant {
    match v {
        Variant::V12 => firmware_core::Variant::V12,
        Variant::V24 => firmware_core::Variant::V24,
        Variant::V48 => firmware_core::Variant::V48,
    }
}

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
    #[error("transient event: {0}")]
    Transient(models::error::ParamError),
    #[error("non-finite model state at t = {t_s:.6} s: {what}")]
    NonFinite { t_s: f64, what: &'static str },
}

/// The true physical state after a tick (what the models know, the board does not).
#[derive(Debug, Clone, Copy, Default)]
pub struct Truth {
    pub current_a: f64,
    pub voltage_v: f64,
    pub soc: f64,
    pub temp_c: f64,
}

/// A running simulation of one board and its battery.
#[derive(Debug)]
pub struct Engine {
    t_ns: u64,
    step_ns: u64,
    ambient_c: f64,
    /// `[t_s, temp_c]` points; empty: constant `ambient_c`.
    ambient_profile: Vec<(f64, f64)>,
    variant: Variant,
    /// The aux heater, if the scenario has one.
    heater: Option<AuxHeater>,
    self_consumption: SelfConsumption,
    pack: Pack,
    thermal: ThermalNetwork,
    /// Heat into the thermal nodes since the last thermal step (J): cells, board, shunt.
    heat_j: [f64; 3],
    /// Charge through the pack since its last step (A·s), and its EMF and R0 then.
    pack_charge_as: f64,
    pack_emf_v: f64,
    pack_r_ohm: f64,
    /// The temperature the pack's tables were last sliced at.
    pack_temp_c: f64,
    /// Wiring, switch, comparator and arrester for transient events.
    transient: models::transient::TransientParams,
    /// The hardware short-circuit comparator has latched the switch open.
    sc_latched: bool,
    /// The last transient event's outcome.
    last_transient: Option<models::transient::Outcome>,
    switch: Switch,
    chain: MeasurementChain,
    board: Board,
    inputs: Inputs,
    outputs: Outputs,
    truth: Truth,
    ticks: u64,
    /// The board's settings EEPROM.
    nvm: RamNvm<{ nvm::STORE_LEN }>,
    store: SettingsStore,
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
    /// stored there, or its defaults if no valid record is found.
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
        let cells = pack.cells().len();
        let thermal_params = scenario.thermal.unwrap_or_else(|| NetworkParams::for_cells(cells));
        let thermal = ThermalNetwork::new(&thermal_params, start_c);
        let switch = Switch::new(&scenario.switch, scenario.variant, &mut streams.stream("switch"));
        let chain = MeasurementChain::new(&scenario.chain, scenario.variant, &streams);
        let bv = board_variant(scenario.variant);
        let rtu = RtuConfig { unit_id: scenario.firmware.unit, ..RtuConfig::default() };
        let serial = (scenario.seed as u32) ^ 0x5A20_9000;
        let mut nvm = image.map_or_else(RamNvm::new, RamNvm::from_bytes);
        let store = SettingsStore::new(bv);
        // RamNvm cannot fail to read; a store that does falls back to defaults, as the board would.
        let settings = store.load(&mut nvm).map_or(firmware_core::Settings::defaults(bv), |l| l.settings);
        let board = Board::new(bv, settings, serial, rtu).map_err(EngineError::Settings)?;
        let mut engine = Engine {
            t_ns: 0,
            step_ns: 1_000_000_000 / u64::from(scenario.adc_rate_hz),
            ambient_c: scenario.ambient_profile.first().map_or(scenario.ambient_c, |p| p.1),
            ambient_profile: scenario.ambient_profile.clone(),
            variant: scenario.variant,
            heater: (scenario.aux_heater_w > 0.0)
                .then(|| AuxHeater::for_power(scenario.aux_heater_w, scenario.variant.nominal_voltage_v())),
            self_consumption: SelfConsumption::default(),
            pack,
            thermal,
            heat_j: [0.0; 3],
            pack_charge_as: 0.0,
            pack_emf_v: 0.0,
            pack_r_ohm: 0.0,
            pack_temp_c: start_c,
            transient: scenario.transient,
            sc_latched: false,
            last_transient: None,
            switch,
            chain,
            board,
            inputs: Inputs::codes(0, 0, 0),
            outputs: Outputs::IDLE,
            truth: Truth::default(),
            ticks: 0,
            nvm,
            store,
        };
        // The board boots on the battery at rest: one conversion, then the set-up writes.
        engine.pack_emf_v = engine.pack.terminal_voltage_v(0.0);
        engine.pack_r_ohm = engine.pack.r0_total_ohm();
        engine.sample(0.0, 0);
        engine.outputs = engine.board.poll(Instant::ZERO, &engine.inputs);
        for (name, &value) in &scenario.firmware.registers {
            engine.write_register_by_name(name, value)?;
        }
        if let Some(pct) = scenario.firmware.initial_soc_pct {
            engine.write_register_by_name("set_soc_centipct", (pct * 100.0).round() as i64)?;
        }
        Ok(engine)
    }

    /// Saves the board's settings to its EEPROM if a write changed them;
    /// returns whether the EEPROM was written.
    pub fn persist_settings(&mut self) -> Result<bool, EngineError> {
        if !self.board.take_settings_changed() {
            return Ok(false);
        }
        let saved = self.store.save(&mut self.nvm, self.board.settings()).map_err(EngineError::Nvm)?;
        Ok(saved.written)
    }

    /// The board's settings EEPROM.
    pub fn nvm_image(&self) -> &NvmImage {
        self.nvm.bytes()
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
        self.board.write_registers(Instant(self.t_ns), def.addr, &words[..n]).map_err(refused)?;
        self.persist_settings()?;
        Ok(())
    }

    /// Converts the channels for the true state after this tick.
    fn sample(&mut self, current_a: f64, tick: u64) {
        let net = &self.thermal;
        let temp_c = net.cells_c();
        // Between pack steps the terminal voltage is the held EMF plus I·R0 (the R0 response is instantaneous).
        let voltage_v = self.pack_emf_v + current_a * self.pack_r_ohm;
        self.truth = Truth { current_a, voltage_v, soc: self.pack.soc(), temp_c };
        self.inputs.current_code = self.chain.current_code_at(&CurrentSample {
            current_a,
            shunt_temp_c: net.shunt_c(),
            board_temp_c: net.board_c(),
            shunt_delta_t_k: net.shunt_terminal_delta_k(),
        });
        self.inputs.voltage_code = self.chain.voltage_code(voltage_v, net.board_c());
        if tick % u64::from(TEMPERATURE_DECIMATION) == 0 {
            self.inputs.temperature_code = self.chain.temperature_code(temp_c);
        }
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

    /// Runs a µs-resolved event from the present state (the slower models
    /// hold while it lasts, well under one ADC period): the battery gives the
    /// event's charge and heat, the comparator's latch reaches the board.
    pub fn transient_event(
        &mut self,
        kind: models::transient::EventKind,
        fault_resistance_mohm: f64,
        position: f64,
    ) -> Result<(), EngineError> {
        use models::transient::{BatteryState, EventParams};
        let state = BatteryState {
            rest_voltage_v: self.pack_emf_v,
            r_internal_ohm: self.pack_r_ohm,
            temperature_c: self.thermal.cells_c(),
            current_a: self.truth.current_a,
        };
        let event = EventParams { kind, at_us: 10.0, fault_resistance_mohm, position };
        let outcome = models::transient::simulate(&self.transient, self.variant, &state, &event, false)
            .map_err(EngineError::Transient)?;
        let end = outcome.end;
        if end.t_s > 0.0 {
            self.pack.step(end.t_s, end.charge_c / end.t_s);
            self.pack_emf_v = self.pack.terminal_voltage_v(0.0);
        }
        self.heat_j[0] += end.battery_heat_j;
        self.heat_j[1] += outcome.totals.switch_j;
        if end.comparator_latched {
            self.sc_latched = true;
            self.inputs.sc_latched = true;
        }
        self.last_transient = Some(outcome);
        Ok(())
    }

    /// The last transient event's outcome, if there was one.
    pub fn last_transient(&self) -> Option<&models::transient::Outcome> {
        self.last_transient.as_ref()
    }

    /// The current that flows this tick for a demanded stimulus, gated by the board's outputs.
    fn gated_current_a(&self, kind: SegmentKind, magnitude_a: f64) -> f64 {
        let o = &self.outputs;
        match kind {
            SegmentKind::Rest => 0.0,
            // The hardware latch holds the switch open whatever the firmware says.
            _ if !o.switch_on || self.sc_latched => 0.0,
            SegmentKind::Discharge if o.lvp_output => -magnitude_a,
            SegmentKind::Charge if o.ovp_output => magnitude_a,
            _ => 0.0,
        }
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

    /// Ambient temperature at `t_s` (profile linear in between, held at its ends).
    fn ambient_at(&self, t_s: f64) -> f64 {
        let p = &self.ambient_profile;
        let i = p.partition_point(|&(t, _)| t <= t_s);
        match (i.checked_sub(1).and_then(|j| p.get(j)), p.get(i)) {
            (Some(&(t0, c0)), Some(&(t1, c1))) if t1 > t0 => c0 + (c1 - c0) * (t_s - t0) / (t1 - t0),
            (Some(&(_, c0)), _) => c0,
            (None, Some(&(_, c1))) => c1,
            (None, None) => self.ambient_c,
        }
    }

    /// Advances one ADC period with the given stimulus.
    pub fn step(&mut self, kind: SegmentKind, magnitude_a: f64) -> Result<(), EngineError> {
        let load_a = self.gated_current_a(kind, magnitude_a);
        let dt_s = self.step_ns as f64 * 1e-9;
        let v = self.truth.voltage_v.max(1.0);
        // The aux heater sits on the battery side of the main switch; its current flows through the shunt.
        let aux_on = self.outputs.aux_on;
        let (heater_a, heater_w) = match &self.heater {
            Some(h) => {
                // The driver reports over-current when the heater would draw more than the variant's limit.
                self.inputs.aux_overcurrent = aux_on && v / h.resistance_ohm > self.variant.aux_max_current_a();
                (h.current_a(v, aux_on, self.variant), h.power_w(v, aux_on, self.variant))
            }
            None => (0.0, 0.0),
        };
        let current_a = load_a + heater_a;
        // The board's own supply is taken before the shunt: the pack delivers it, the shunt never sees it.
        let own_a = self.self_consumption.current_a(v);
        // The pack's state (SOC, RC pairs, hysteresis) advances every PACK_DECIMATION ticks with the
        // mean current of the span: charge stays exact, and τ ≥ 30 s makes the 10 ms hold invisible.
        self.pack_charge_as += (current_a + own_a) * dt_s;
        let state = SwitchState::from_outputs(self.outputs.switch_on, self.outputs.lvp_output, self.outputs.ovp_output);
        let net = &self.thermal;
        self.heat_j[1] += (self.switch.power_w(state, load_a, net.board_c()) + self.self_consumption.power_w) * dt_s;
        self.heat_j[2] += self.chain.shunt_power_w(current_a, net.shunt_c()) * dt_s;
        self.heat_j[0] += heater_w * dt_s;
        if (self.ticks + 1) % PACK_DECIMATION == 0 {
            let span_s = dt_s * PACK_DECIMATION as f64;
            let mean_a = std::mem::take(&mut self.pack_charge_as) / span_s;
            self.pack.step(span_s, mean_a);
            self.heat_j[0] += self.pack.heat_w(mean_a) * span_s;
            self.pack_emf_v = self.pack.terminal_voltage_v(0.0);
            self.pack_r_ohm = self.pack.r0_total_ohm();
        }
        if (self.ticks + 1) % u64::from(TEMPERATURE_DECIMATION) == 0 {
            let span_s = dt_s * f64::from(TEMPERATURE_DECIMATION);
            if !self.ambient_profile.is_empty() {
                self.ambient_c = self.ambient_at(self.t_s());
            }
            let [cells_j, board_j, shunt_j] = std::mem::take(&mut self.heat_j);
            self.thermal.step(
                span_s,
                &HeatInputs {
                    cells_w: cells_j / span_s,
                    board_w: board_j / span_s,
                    shunt_w: shunt_j / span_s,
                    ambient_c: self.ambient_c,
                },
            );
            // Re-slicing the pack's temperature tables is costly: follow the cells in 0.05 K steps.
            let cells_c = self.thermal.cells_c();
            if (cells_c - self.pack_temp_c).abs() >= PACK_TEMPERATURE_STEP_K {
                self.pack.set_temperature_c(cells_c);
                self.pack_temp_c = cells_c;
            }
        }
        self.t_ns += self.step_ns;
        self.ticks += 1;
        self.sample(current_a, self.ticks);
        if !(self.truth.voltage_v.is_finite() && self.truth.temp_c.is_finite() && self.truth.soc.is_finite()) {
            let what =
                if !self.truth.voltage_v.is_finite() { "pack terminal voltage" } else { "pack temperature or SOC" };
            return Err(EngineError::NonFinite { t_s: self.t_s(), what });
        }
        self.outputs = self.board.sample(Instant(self.t_ns), &self.inputs);
        if self.outputs.sc_latch_reset {
            // The firmware pulsed the latch's reset line (the short itself was a one-off event).
            self.sc_latched = false;
            self.inputs.sc_latched = false;
        }
        Ok(())
    }

    pub fn t_ns(&self) -> u64 {
        self.t_ns
    }
    pub fn t_s(&self) -> f64 {
        self.t_ns as f64 * 1e-9
    }
    pub fn step_ns(&self) -> u64 {
        self.step_ns
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

/// Walks a scenario's segments tick by tick: which stimulus applies now, and
/// when a segment ends (its duration or its `until` event).
#[derive(Debug)]
pub struct Stimulus<'a> {
    scenario: &'a Scenario,
    index: usize,
    segment_start_ns: u64,
    segment_end_ns: u64,
    /// Scenario events sorted by time, and how many have been applied.
    events: Vec<&'a crate::scenario::Event>,
    events_done: usize,
    /// The CC-CV charger of the current segment (it keeps its termination state).
    charger: Option<Charger>,
    /// Row hint for the current segment's CSV profile.
    profile_hint: usize,
}

impl<'a> Stimulus<'a> {
    pub fn new(scenario: &'a Scenario) -> Self {
        let first = scenario.segments.first().map_or(u64::MAX, |s| secs_to_ns(s.duration_s));
        let mut events: Vec<_> = scenario.events.iter().collect();
        events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut stim = Stimulus {
            scenario,
            index: 0,
            segment_start_ns: 0,
            segment_end_ns: first,
            events,
            events_done: 0,
            charger: None,
            profile_hint: 0,
        };
        stim.enter_segment(scenario.variant);
        stim
    }

    /// Sets up the per-segment state of the segment at `index`.
    fn enter_segment(&mut self, variant: Variant) {
        self.profile_hint = 0;
        self.charger = self.scenario.segments.get(self.index).and_then(|seg| {
            seg.cv_voltage_v.map(|v| {
                Charger::new(ChargerParams { voltage_limit_v: v, ..ChargerParams::lfp(variant, seg.current_a) })
            })
        });
    }

    /// Applies the scenario events due at `engine`'s time (bus writes in order, input changes).
    pub fn apply_due_events(&mut self, engine: &mut Engine) -> Result<(), EngineError> {
        while let Some(ev) = self.events.get(self.events_done) {
            if secs_to_ns(ev.at_s) > engine.t_ns() {
                break;
            }
            self.events_done += 1;
            for w in &ev.write {
                engine.write_register_by_name(&w.register, w.value)?;
            }
            engine.set_lipro_inputs(ev.lvp_input, ev.ovp_input);
            if let Some(kind) = ev.transient {
                let kind = match kind {
                    crate::scenario::TransientEvent::ShortCircuit => models::transient::EventKind::ShortCircuit,
                    crate::scenario::TransientEvent::SwitchOpen => models::transient::EventKind::SwitchOpen,
                };
                engine.transient_event(kind, ev.fault_resistance_mohm, ev.position)?;
            }
        }
        Ok(())
    }

    /// The stimulus for the tick starting at `engine`'s time: (kind, |current|).
    /// After the last segment the battery rests.
    pub fn current(&mut self, engine: &Engine) -> (SegmentKind, f64) {
        let t = engine.t_ns();
        while let Some(seg) = self.scenario.segments.get(self.index) {
            let ended_by_event = match seg.until {
                Some(Until::Lvp) => engine.lvp_tripped(),
                Some(Until::Ovp) => engine.ovp_tripped(),
                Some(Until::SwitchOff) => !engine.outputs().switch_on,
                None => false,
            };
            if t < self.segment_end_ns && !ended_by_event {
                if let Some(period_s) = seg.period_s {
                    // Pulsed: on for duty × period at the start of each period.
                    let period_ns = secs_to_ns(period_s).max(1);
                    let on_ns = secs_to_ns(period_s * seg.duty.unwrap_or(0.5));
                    if t.saturating_sub(self.segment_start_ns) % period_ns >= on_ns {
                        return (SegmentKind::Rest, 0.0);
                    }
                }
                return self.demand(seg, engine, t);
            }
            self.index += 1;
            // The next segment starts now (an early end shifts the rest).
            if let Some(next) = self.scenario.segments.get(self.index) {
                self.segment_start_ns = t;
                self.segment_end_ns = t.saturating_add(secs_to_ns(next.duration_s));
            }
            self.enter_segment(self.scenario.variant);
        }
        (SegmentKind::Rest, 0.0)
    }

    /// The current a segment's load, charger or profile asks for now: (kind, |current|).
    fn demand(&mut self, seg: &crate::scenario::Segment, engine: &Engine, t: u64) -> (SegmentKind, f64) {
        if let Some(p) = &seg.profile {
            let i = p.current_a(t.saturating_sub(self.segment_start_ns) as f64 * 1e-9, &mut self.profile_hint);
            return if i >= 0.0 { (SegmentKind::Charge, i) } else { (SegmentKind::Discharge, -i) };
        }
        if let Some(charger) = &mut self.charger {
            return (SegmentKind::Charge, charger.current_a(&engine.source(), engine.gate()));
        }
        let load = match (seg.power_w, seg.resistance_ohm) {
            (Some(power_w), _) => Load::ConstantPower { power_w, min_voltage_v: 0.0 },
            (None, Some(resistance_ohm)) => Load::Resistive { resistance_ohm },
            _ => return (seg.kind, seg.current_a),
        };
        (SegmentKind::Discharge, -load.current_a(&engine.source(), engine.gate()))
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
}
