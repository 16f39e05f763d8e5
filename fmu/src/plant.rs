//! The one place the FMU calls into `sim`'s engine: build it from the
//! FMU's parameters, advance it to a time with a signed current demand,
//! and read what it shows.
//!
//! Everything else in this crate sees only [`Plant`], [`PlantConfig`],
//! [`PlantInputs`] and [`PlantOutputs`]; when the engine's API changes, this
//! module is the one to change.

use std::path::PathBuf;

use smartpro_sim::engine::{Engine, EngineError, HeldCurrent};
use smartpro_sim::scenario::Scenario;

/// The FMU's structural parameters, as the importer set them.
#[derive(Debug, Clone, PartialEq)]
pub struct PlantConfig {
    /// Board variant: 12, 24 or 48 (V).
    pub variant: i32,
    /// Seed of every random stream.
    pub seed: u64,
    /// True initial SOC of the pack, 0..=1.
    pub initial_soc: f64,
    /// ADC conversion rate (Hz): the engine's tick is its period.
    pub adc_rate_hz: u32,
    /// A scenario file or an external cell parameter (ECM) file; empty: the built-in defaults.
    pub config_file: String,
    /// Ambient temperature at the start (°C).
    pub ambient_c: f64,
}

/// Why the plant could not be built or advanced.
#[derive(Debug, thiserror::Error)]
pub enum PlantError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("current demand {0} A is not a finite number")]
    BadCurrent(f64),
    #[error("ambient temperature {0} °C is not a finite number")]
    BadAmbient(f64),
    #[error("time {target_s} s lies before the plant's time {now_s} s")]
    TimeBackwards { target_s: f64, now_s: f64 },
}

/// The inputs over one communication step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlantInputs {
    /// Load/charger current demand (A, > 0 charges).
    pub current_a: f64,
    /// Ambient temperature (°C).
    pub ambient_c: f64,
    /// LiPro LVP/OVP control inputs (true: control voltage present).
    pub lvp_input: bool,
    pub ovp_input: bool,
    /// The short-circuit trigger; its rising edge starts the engine's transient short circuit.
    pub short_circuit: bool,
}

/// What the plant shows after a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlantOutputs {
    /// Plant time (s): a whole number of ADC periods.
    pub t_s: f64,
    pub terminal_voltage_v: f64,
    pub pack_current_a: f64,
    pub true_soc_pct: f64,
    pub true_temp_c: f64,
    pub board_soc_pct: f64,
    pub meas_current_a: f64,
    pub meas_voltage_v: f64,
    pub meas_temp_c: f64,
    pub switch_on: bool,
    pub lvp_output: bool,
    pub ovp_output: bool,
    pub aux_on: bool,
    pub faults: u16,
}

/// A running engine, one FMU instance's plant.
#[derive(Debug)]
pub struct Plant {
    engine: Engine,
    /// The ambient last given to the engine (°C).
    ambient_c: f64,
    /// The trigger's level at the last step (for its rising edge).
    short_circuit: bool,
    /// The LiPro inputs last given to the engine.
    lipro: (bool, bool),
}

/// A change of the ambient input smaller than this (K) is not applied: an
/// importer that interpolates a constant input rounds it by an ulp or so
/// (FMPy gives 25.000000000000004 for a table of 25.0).
pub const AMBIENT_TOLERANCE_K: f64 = 1e-6;

/// Resistance of the short the trigger starts (mΩ): bolted, as a scenario event's default.
pub const SHORT_CIRCUIT_RESISTANCE_MOHM: f64 = 0.0;
/// Where on the load line the trigger's short is (0 board terminals … 1 far end), as a scenario event's default.
pub const SHORT_CIRCUIT_POSITION: f64 = 1.0;

impl Plant {
    /// Builds the scenario for `config` and the engine from it.
    pub fn new(config: &PlantConfig) -> Result<Plant, PlantError> {
        let scenario = scenario_for(config)?;
        let engine = Engine::new(&scenario)?;
        Ok(Plant { engine, ambient_c: config.ambient_c, short_circuit: false, lipro: (true, true) })
    }

    /// The engine's tick (ns).
    pub fn step_ns(&self) -> u64 {
        self.engine.step_ns()
    }

    /// The plant's time (ns).
    pub fn t_ns(&self) -> u64 {
        self.engine.t_ns()
    }

    /// Advances whole ADC periods while the next one ends at or before
    /// `target_ns`, with `inputs` held over them; what is left of the step
    /// (less than one period) is carried to the next call.
    pub fn advance_to(&mut self, target_ns: u64, inputs: &PlantInputs) -> Result<(), PlantError> {
        if !inputs.current_a.is_finite() {
            return Err(PlantError::BadCurrent(inputs.current_a));
        }
        if !inputs.ambient_c.is_finite() {
            return Err(PlantError::BadAmbient(inputs.ambient_c));
        }
        // An importer that interpolates a constant input rounds it by an ulp or so
        // (FMPy gives 25.000000000000004 for a table of 25.0): only a real change is applied.
        if (inputs.ambient_c - self.ambient_c).abs() > AMBIENT_TOLERANCE_K {
            self.engine.set_ambient_c(inputs.ambient_c);
            self.ambient_c = inputs.ambient_c;
        }
        if target_ns < self.engine.t_ns() {
            return Err(PlantError::TimeBackwards { target_s: target_ns as f64 * 1e-9, now_s: self.engine.t_s() });
        }
        // As a scenario event: inputs first, then the tick at the same time.
        let lipro = (inputs.lvp_input, inputs.ovp_input);
        if lipro != self.lipro {
            self.engine.set_lipro_inputs(Some(lipro.0), Some(lipro.1));
            self.lipro = lipro;
        }
        if inputs.short_circuit && !self.short_circuit {
            self.engine.transient_event(
                models::transient::EventKind::ShortCircuit,
                SHORT_CIRCUIT_RESISTANCE_MOHM,
                SHORT_CIRCUIT_POSITION,
            )?;
        }
        self.short_circuit = inputs.short_circuit;
        let mut demand = HeldCurrent::new(inputs.current_a);
        let step_ns = self.engine.step_ns();
        while self.engine.t_ns() + step_ns <= target_ns {
            self.engine.tick(&mut demand)?;
        }
        Ok(())
    }

    /// What the plant shows now.
    pub fn outputs(&self) -> PlantOutputs {
        let e = &self.engine;
        let t = e.truth();
        let m = e.board().measurements();
        let o = e.outputs();
        PlantOutputs {
            t_s: e.t_s(),
            terminal_voltage_v: t.voltage_v,
            pack_current_a: t.current_a,
            true_soc_pct: t.soc * 100.0,
            true_temp_c: t.temp_c,
            board_soc_pct: f64::from(e.board().soc_centipct()) / 100.0,
            meas_current_a: f64::from(m.current_ua) * 1e-6,
            meas_voltage_v: f64::from(m.voltage_uv) * 1e-6,
            meas_temp_c: f64::from(m.temperature_dc) * 0.1,
            switch_on: o.switch_on,
            lvp_output: o.lvp_output,
            ovp_output: o.ovp_output,
            aux_on: o.aux_on,
            faults: o.faults,
        }
    }
}

/// The scenario the engine is built from: the file's (a scenario, or a
/// built-in one around an ECM file), with the FMU's parameters in place of
/// its variant, seed, initial SOC, ADC rate and ambient (an ambient profile is
/// dropped: the ambient is the FMU's input). Its segments and events are
/// not used: the FMU's inputs drive the engine.
fn scenario_for(config: &PlantConfig) -> Result<Scenario, PlantError> {
    let bad = |message: String| PlantError::Config(message);
    if !config.ambient_c.is_finite() {
        return Err(bad(format!("ambient_c = {}: the ambient temperature must be a finite number", config.ambient_c)));
    }
    if ![12, 24, 48].contains(&config.variant) {
        return Err(bad(format!("variant = {}: the SmartPro comes as 12, 24 or 48 (V)", config.variant)));
    }
    let (mut table, path) = if config.config_file.is_empty() {
        (toml::Table::new(), PathBuf::from("<the FMU's parameters>"))
    } else {
        let path = PathBuf::from(&config.config_file);
        let text = std::fs::read_to_string(&path).map_err(|e| bad(format!("config_file {}: {e}", path.display())))?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| bad(format!("config_file {}: {}", path.display(), e.message())))?;
        if table.contains_key("ocv_v") {
            // An external cell parameter set: the built-in scenario around it (read relative to its folder).
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut t = toml::Table::new();
            t.insert("ecm_file".into(), toml::Value::String(name));
            (t, path)
        } else {
            (table, path)
        }
    };
    table.entry("name").or_insert_with(|| toml::Value::String("fmu".into()));
    if !table.contains_key("segment") {
        let mut rest = toml::Table::new();
        rest.insert("kind".into(), "rest".into());
        rest.insert("duration_s".into(), 1.0.into());
        table.insert("segment".into(), toml::Value::Array(vec![toml::Value::Table(rest)]));
    }
    table.insert("variant".into(), i64::from(config.variant).into());
    let seed = i64::try_from(config.seed).map_err(|_| bad(format!("seed = {}: at most {}", config.seed, i64::MAX)))?;
    table.insert("seed".into(), seed.into());
    table.insert("initial_soc".into(), config.initial_soc.into());
    table.insert("adc_rate_hz".into(), i64::from(config.adc_rate_hz).into());
    table.insert("ambient_c".into(), config.ambient_c.into());
    table.remove("ambient_profile");
    table.remove("ambient_csv");
    // Events would never fire (the FMU's inputs drive the engine): refuse rather than ignore them.
    if table.contains_key("event") {
        return Err(bad(format!(
            "config_file {}: has [[event]]s, which the FMU does not run (its inputs drive the engine)",
            path.display()
        )));
    }
    let text = toml::to_string(&table).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    Scenario::parse(&text, &path).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use smartpro_sim::stimulus::Stimulus;
    use std::path::Path;

    fn config() -> PlantConfig {
        PlantConfig {
            variant: 12,
            seed: 7,
            initial_soc: 0.8,
            adc_rate_hz: 1000,
            config_file: String::new(),
            ambient_c: 25.0,
        }
    }

    /// The equivalent scenario of the FMU's built-in defaults with `config()`.
    const SCENARIO: &str = "name = \"fmu-equivalent\"\nvariant = 12\nseed = 7\ninitial_soc = 0.8\n\
        [[segment]]\nkind = \"discharge\"\ncurrent_a = 50.0\nduration_s = 3\n\
        [[segment]]\nkind = \"rest\"\nduration_s = 2\n\
        [[segment]]\nkind = \"charge\"\ncurrent_a = 30.0\nduration_s = 3\n\
        [[event]]\nat_s = 6.5\novp_input = false\n";

    fn bits(o: &PlantOutputs) -> Vec<u64> {
        vec![
            o.t_s.to_bits(),
            o.terminal_voltage_v.to_bits(),
            o.pack_current_a.to_bits(),
            o.true_soc_pct.to_bits(),
            o.true_temp_c.to_bits(),
            o.board_soc_pct.to_bits(),
            o.meas_current_a.to_bits(),
            o.meas_voltage_v.to_bits(),
            o.meas_temp_c.to_bits(),
            u64::from(o.switch_on),
            u64::from(o.lvp_output),
            u64::from(o.ovp_output),
            u64::from(o.aux_on),
            u64::from(o.faults),
        ]
    }

    /// The signed demand of the scenario's segments at `t_s` (and the OVP input).
    fn inputs_at(t_s: f64) -> PlantInputs {
        let current_a = if t_s < 3.0 {
            -50.0
        } else if t_s < 5.0 {
            0.0
        } else {
            30.0
        };
        PlantInputs { current_a, ambient_c: 25.0, lvp_input: true, ovp_input: t_s < 6.5, short_circuit: false }
    }

    #[test]
    fn the_plant_steps_bit_for_bit_as_the_scenario_runner_s_engine() {
        let scenario = Scenario::parse(SCENARIO, Path::new("eq.toml")).unwrap();
        let mut engine = Engine::new(&scenario).unwrap();
        let mut stim = Stimulus::new(&scenario);
        let mut plant = Plant::new(&config()).unwrap();
        let (mut compared, mut charged) = (0, false);
        // Communication points every 10 ms, as the runner's ticks every 1 ms.
        for k in 0..800u64 {
            let t_ns = k * 10_000_000;
            plant.advance_to(t_ns + 10_000_000, &inputs_at(t_ns as f64 * 1e-9)).unwrap();
            engine.advance_to(t_ns + 10_000_000, &mut stim).unwrap();
            let plant_out = plant.outputs();
            let reference = Plant { engine, ambient_c: 25.0, short_circuit: false, lipro: (true, true) };
            assert_eq!(bits(&plant_out), bits(&reference.outputs()), "at t = {} s", plant_out.t_s);
            engine = reference.engine;
            compared += 1;
            charged |= plant_out.pack_current_a > 0.0;
        }
        assert_eq!(compared, 800);
        // It charged, until the OVP input dropped: the board's OVP output then gates the charge.
        let end = plant.outputs();
        assert!(charged && end.pack_current_a == 0.0 && !end.ovp_output, "{end:?}");
    }

    #[test]
    fn a_step_that_is_not_a_whole_number_of_adc_periods_carries_the_remainder() {
        let mut plant = Plant::new(&config()).unwrap();
        let inputs = inputs_at(0.0);
        plant.advance_to(1_500_000, &inputs).unwrap();
        assert_eq!(plant.t_ns(), 1_000_000);
        plant.advance_to(3_000_000, &inputs).unwrap();
        assert_eq!(plant.t_ns(), 3_000_000);
        // The same ticks as whole steps.
        let mut whole = Plant::new(&config()).unwrap();
        whole.advance_to(3_000_000, &inputs).unwrap();
        assert_eq!(bits(&plant.outputs()), bits(&whole.outputs()));
    }

    #[test]
    fn bad_parameters_and_inputs_are_refused_naming_the_cause() {
        let err = |c: PlantConfig| Plant::new(&c).unwrap_err().to_string();
        assert!(err(PlantConfig { variant: 13, ..config() }).contains("variant"));
        assert!(err(PlantConfig { adc_rate_hz: 7, ..config() }).contains("adc_rate_hz"));
        assert!(err(PlantConfig { initial_soc: 1.5, ..config() }).contains("initial_soc"));
        let missing = err(PlantConfig { config_file: "/nonexistent/x.toml".into(), ..config() });
        assert!(missing.contains("/nonexistent/x.toml"), "{missing}");
        let mut plant = Plant::new(&config()).unwrap();
        let nan = PlantInputs { current_a: f64::NAN, ..inputs_at(0.0) };
        assert!(matches!(plant.advance_to(1_000_000, &nan), Err(PlantError::BadCurrent(_))));
        let hot = PlantInputs { ambient_c: f64::INFINITY, ..inputs_at(0.0) };
        assert!(matches!(plant.advance_to(1_000_000, &hot), Err(PlantError::BadAmbient(_))));
    }

    #[test]
    fn an_ecm_file_and_a_scenario_file_configure_the_plant() {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let ecm = PlantConfig { config_file: data.join("data/lfp-100ah-ecm.toml").display().to_string(), ..config() };
        let mut with_ecm = Plant::new(&ecm).unwrap();
        let mut plain = Plant::new(&config()).unwrap();
        let load = PlantInputs { current_a: -100.0, ..inputs_at(0.0) };
        with_ecm.advance_to(100_000_000, &load).unwrap();
        plain.advance_to(100_000_000, &load).unwrap();
        assert_ne!(with_ecm.outputs().terminal_voltage_v, plain.outputs().terminal_voltage_v);
        // A scenario file brings its firmware set-up (here the board's initial SOC).
        let aged = PlantConfig { config_file: data.join("12v-aged-pack-soh.toml").display().to_string(), ..config() };
        let p = Plant::new(&aged).unwrap();
        assert_eq!(p.outputs().board_soc_pct, 100.0);
        // A scenario with events is refused: they would never run.
        let events = PlantConfig { config_file: data.join("12v-load-dump.toml").display().to_string(), ..config() };
        assert!(Plant::new(&events).unwrap_err().to_string().contains("[[event]]"));
        // One with the companions brings them: the LiPro loop holds the board's inputs.
        let lipro = PlantConfig { config_file: data.join("24v-lipro-cell-uv.toml").display().to_string(), ..config() };
        let p = Plant::new(&lipro).unwrap();
        assert!(p.engine.companions().is_some());
    }

    #[test]
    fn the_short_circuit_trigger_starts_one_transient_on_its_rising_edge() {
        let mut plant = Plant::new(&PlantConfig { variant: 48, ..config() }).unwrap();
        let mut inputs = PlantInputs { current_a: -10.0, ..inputs_at(0.0) };
        plant.advance_to(200_000_000, &inputs).unwrap();
        assert_eq!(plant.outputs().faults & firmware_core::map::faults::SHORT_CIRCUIT, 0);
        inputs.short_circuit = true;
        plant.advance_to(210_000_000, &inputs).unwrap();
        // Held high: no second event.
        plant.advance_to(400_000_000, &inputs).unwrap();
        let o = plant.outputs();
        assert!(o.faults & firmware_core::map::faults::SHORT_CIRCUIT != 0, "{o:?}");
        assert!(!o.switch_on && o.pack_current_a.abs() < 1.0, "{o:?}");
    }
}
