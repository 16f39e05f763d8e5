//! Scenario files: TOML describing a battery system, a stimulus and expectations.
//!
//! See `docs/scenarios.md` for the reference. Unknown keys are errors, and a
//! TOML error names the file, line and column.

use std::path::Path;

use serde::Deserialize;

use models::thermal::NetworkParams;
use models::variant::Variant;

/// A scenario as written in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name of the scenario; also the name of its output folder.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Board variant: 12, 24 or 48.
    pub variant: Variant,
    /// Seed of every random stream (cell spread, measurement-chain deviations, noise).
    #[serde(default)]
    pub seed: u64,
    /// Total simulated time; defaults to the sum of the segments' durations.
    pub duration_s: Option<f64>,
    /// True initial SOC of the pack, 0..=1.
    pub initial_soc: f64,
    /// Ambient (and initial pack) temperature.
    #[serde(default = "default_ambient_c")]
    pub ambient_c: f64,
    /// ADC conversion rate of every channel; the engine's base step is its period.
    #[serde(default = "default_adc_rate_hz")]
    pub adc_rate_hz: u32,
    /// Interval between rows of trace.csv.
    #[serde(default = "default_trace_interval_s")]
    pub trace_interval_s: f64,
    /// Ambient temperature profile: `[[t_s, temp_c], …]`, linear in between,
    /// held after the last point; overrides `ambient_c` from t = 0 when given.
    #[serde(default)]
    pub ambient_profile: Vec<(f64, f64)>,
    /// Ambient temperature from a CSV file with columns `time_s` and `temp_C`
    /// (found by name, others ignored; e.g. a `hil-rig record` recording),
    /// relative to the scenario file: becomes `ambient_profile` (linear
    /// between rows, held after the last). Rows starting with `#` and rows
    /// with an empty `temp_C` are skipped.
    pub ambient_csv: Option<String>,
    /// Heater on the aux output: its power at the battery voltage (0: none). It
    /// heats the pack and its current flows through the shunt.
    #[serde(default)]
    pub aux_heater_w: f64,
    #[serde(default)]
    pub firmware: FirmwareSetup,
    #[serde(default)]
    pub pack: models::pack::PackParams,
    /// Thermal network (cells, board, shunt, jig) as written: its keys
    /// replace those of the default network ([`Self::thermal_params`]).
    pub thermal: Option<toml::Table>,
    /// The main switch's MOSFETs.
    #[serde(default)]
    pub switch: models::switch::SwitchParams,
    /// An external equivalent-circuit parameter set (TOML or JSON, by
    /// extension; relative to the scenario file) for the cells instead of `[pack.cell]`.
    pub ecm_file: Option<String>,
    /// The parsed `ecm_file`.
    #[serde(skip)]
    pub ecm: Option<models::ecm::EcmParams>,
    #[serde(default)]
    pub chain: models::chain::ChainParams,
    #[serde(default, rename = "segment")]
    pub segments: Vec<Segment>,
    #[serde(default, rename = "event")]
    pub events: Vec<Event>,
    /// The wiring, switch, comparator and arrester for transient events (`[[event]] transient = …`).
    #[serde(default)]
    pub transient: models::transient::TransientParams,
    /// LiPro cell modules on every cell, their loop driving the LVP / OVP control inputs
    /// (docs/companions.md); absent: the inputs follow `[[event]]`s only.
    pub lipro: Option<models::companions::LiproParams>,
    /// The PowerPro: main switch, fuse and secondary protection in the current path (docs/companions.md).
    pub powerpro: Option<models::companions::PowerProParams>,
    /// Bus faults for `serve` (docs/serve.md; `--faults FILE` replaces them); ignored by `run`.
    #[serde(default)]
    pub faults: crate::serve::faults::FaultsConfig,
    #[serde(default, rename = "expect")]
    pub expectations: Vec<Expectation>,
}

/// Something that happens at a time: bus-side register writes (as a gateway
/// would make them, in order) and changes of the board's digital inputs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub at_s: f64,
    #[serde(default)]
    pub write: Vec<RegisterWrite>,
    /// LiPro loop: the LVP control input carries its control voltage (false: a cell under-voltage).
    pub lvp_input: Option<bool>,
    /// LiPro loop: the OVP control input carries its control voltage (false: a cell over-voltage).
    pub ovp_input: Option<bool>,
    /// A µs-resolved event at this time: `short_circuit` (on the load line, as
    /// `[transient]` describes it), `switch_open` (alias `switch_open_under_load`:
    /// the switch opened under load) or `load_dump` (the switch opened while a
    /// charging source, `[transient.load_dump]`, pushes current into the battery).
    pub transient: Option<TransientEvent>,
    /// When a `switch_open` or `load_dump` happens: at `at_s` (the event opens
    /// the switch), or when the board opens its switch at or after `at_s`.
    #[serde(default)]
    pub trigger: Trigger,
    /// Resistance of the short, mΩ (0: bolted).
    #[serde(default)]
    pub fault_resistance_mohm: f64,
    /// Where on the load line, 0 (board terminals) to 1 (far end).
    #[serde(default = "far_end")]
    pub position: f64,
}

fn far_end() -> f64 {
    1.0
}

/// Kinds of µs-resolved events in a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransientEvent {
    ShortCircuit,
    #[serde(alias = "switch_open_under_load")]
    SwitchOpen,
    LoadDump,
}

impl TransientEvent {
    /// The model's event kind.
    pub fn kind(self) -> models::transient::EventKind {
        match self {
            TransientEvent::ShortCircuit => models::transient::EventKind::ShortCircuit,
            TransientEvent::SwitchOpen => models::transient::EventKind::SwitchOpen,
            TransientEvent::LoadDump => models::transient::EventKind::LoadDump,
        }
    }
}

/// What starts a transient event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// At the event's `at_s`.
    #[default]
    At,
    /// The board's main switch opening (its own decision: OVP, over-current, …)
    /// at or after `at_s`.
    SwitchOff,
}

/// One register write by name, raw value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterWrite {
    pub register: String,
    pub value: i64,
}

fn default_ambient_c() -> f64 {
    25.0
}
fn default_adc_rate_hz() -> u32 {
    1_000
}
fn default_trace_interval_s() -> f64 {
    1.0
}

/// How the board is set up before the run starts (as a gateway would, over the bus).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareSetup {
    /// Modbus unit id.
    #[serde(default = "default_unit")]
    pub unit: u8,
    /// Set the board's SOC (percent) at t = 0 with the `set_soc_centipct` command;
    /// without it the board guesses the SOC from the resting voltage.
    pub initial_soc_pct: Option<f64>,
    /// Register writes at t = 0, by register name, raw values (e.g. `lvp_mv = 11500`).
    #[serde(default)]
    pub registers: std::collections::BTreeMap<String, i64>,
}

fn default_unit() -> u8 {
    1
}

impl Default for FirmwareSetup {
    fn default() -> Self {
        FirmwareSetup { unit: default_unit(), initial_soc_pct: None, registers: Default::default() }
    }
}

/// One piece of the stimulus.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub kind: SegmentKind,
    /// Magnitude of the current for charge/discharge (always ≥ 0; the kind gives the sign).
    #[serde(default)]
    pub current_a: f64,
    pub duration_s: f64,
    /// Discharge at constant power instead of `current_a` (W).
    pub power_w: Option<f64>,
    /// Discharge into a resistor instead of `current_a` (Ω).
    pub resistance_ohm: Option<f64>,
    /// Charge CC-CV: `current_a` until the terminals reach this voltage, then
    /// constant voltage until the current falls below C/50.
    pub cv_voltage_v: Option<f64>,
    /// `kind = "profile"`: the current from a CSV file (`time_s,current_a`, + = charge,
    /// held between rows, relative to the scenario file; time from the segment's start).
    pub csv: Option<String>,
    /// The parsed `csv`.
    #[serde(skip)]
    pub profile: Option<std::sync::Arc<models::profile::CurrentProfile>>,
    /// Pulsed: the current flows for `duty × period_s`, then rests for the rest of each period.
    pub period_s: Option<f64>,
    /// Share of each period with current, 0 < duty ≤ 1 (default 0.5 when `period_s` is given).
    pub duty: Option<f64>,
    /// End the segment early when this happens.
    pub until: Option<Until>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentKind {
    Rest,
    Charge,
    Discharge,
    /// The current of a CSV profile (`csv`).
    Profile,
}

/// Something the board does that a segment can wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// The LVP fault bit is set.
    Lvp,
    /// The OVP fault bit is set.
    Ovp,
    /// The main switch opened.
    SwitchOff,
}

/// A check on an outcome of the run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// One of [`crate::metrics::metric_names`].
    pub metric: String,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A scenario file that could not be used.
pub type ScenarioError = crate::tomlfile::FileError;

/// Puts the keys of `over` into `base`, merging tables present in both.
fn merge_tables(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge_tables(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The register commissioning writes at t = 0: the board's rated capacity (0.1 Ah).
pub const RATED_CAPACITY_REGISTER: &str = "capacity_dah";

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = crate::tomlfile::read(path)?;
        Self::parse(&text, path)
    }

    /// Parses and checks scenario text; `path` names it in messages, and the
    /// files it refers to (`ecm_file`, a segment's `csv`) are read relative to its folder.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let mut scenario: Scenario = toml::from_str(text).map_err(|e| crate::tomlfile::toml_error(text, path, &e))?;
        scenario.check().map_err(|message| ScenarioError::Invalid { path: path.to_owned(), message })?;
        // One switch: `[switch]` drives the engine's model and the µs model of transient events.
        scenario.transient.switch = scenario.switch;
        scenario.load_files(path)?;
        scenario.thermal_params().map_err(|message| ScenarioError::Invalid { path: path.to_owned(), message })?;
        scenario.check_commissioning().map_err(|message| ScenarioError::Invalid { path: path.to_owned(), message })?;
        Ok(scenario)
    }

    /// The pack's nominal capacity (Ah): its cell's rated capacity, from the `ecm_file` when it
    /// has one, else `[pack.cell]`. Spread, an odd cell and ageing are departures from it that
    /// an installer would not know of.
    pub fn nominal_capacity_ah(&self) -> f64 {
        self.ecm.as_ref().map_or(self.pack.cell.capacity_ah, |e| e.capacity_ah)
    }

    /// The rated capacity (0.1 Ah) the board is commissioned with at t = 0, before the
    /// scenario's own writes: the pack's nominal capacity, as an installer would set it. `None`
    /// when the scenario writes [`RATED_CAPACITY_REGISTER`] itself (e.g. an aged pack behind a
    /// board rated for the new one) or the nominal capacity is the factory setting.
    pub fn commissioned_capacity_dah(&self) -> Option<u16> {
        if self.firmware.registers.contains_key(RATED_CAPACITY_REGISTER) {
            return None;
        }
        let dah = (self.nominal_capacity_ah() * 10.0).round();
        let dah = dah.clamp(0.0, f64::from(u16::MAX)) as u16;
        (dah != firmware_core::settings::CAPACITY_DAH).then_some(dah)
    }

    /// A pack whose nominal capacity the board cannot be set to is refused here, naming both,
    /// rather than as a refused write the scenario never made.
    fn check_commissioning(&self) -> Result<(), String> {
        let Some(dah) = self.commissioned_capacity_dah() else { return Ok(()) };
        let Some(reg) = firmware_core::map::by_name(RATED_CAPACITY_REGISTER) else {
            return Err(format!("the register map has no {RATED_CAPACITY_REGISTER} to commission the board with"));
        };
        if !(reg.min..=reg.max).contains(&i64::from(dah)) {
            return Err(format!(
                "the pack's nominal capacity {} Ah is outside the board's rated capacity range {:.1}..={:.1} Ah \
                 ({RATED_CAPACITY_REGISTER}); set firmware.registers.{RATED_CAPACITY_REGISTER} to the value the board \
                 is rated for",
                self.nominal_capacity_ah(),
                reg.min as f64 / 10.0,
                reg.max as f64 / 10.0
            ));
        }
        Ok(())
    }

    /// The thermal network: the default one for the pack's cell count
    /// (with the `ecm_file`'s per-cell `[thermal]` table when it has one,
    /// [`NetworkParams::for_pack`]), with the keys of the scenario's
    /// `[thermal]` (nested tables key by key) in place of the defaults.
    pub fn thermal_params(&self) -> Result<NetworkParams, String> {
        let cells = self.pack.cells_with(self.ecm.as_ref(), self.variant);
        let base = NetworkParams::for_pack(cells, self.ecm.as_ref().and_then(|e| e.thermal.as_ref()));
        let Some(over) = &self.thermal else { return Ok(base) };
        let fail = |e: &dyn std::fmt::Display| format!("[thermal]: {e}");
        let mut merged = toml::Table::try_from(base).map_err(|e| fail(&e))?;
        merge_tables(&mut merged, over);
        let params: NetworkParams = toml::Value::Table(merged).try_into().map_err(|e| fail(&e))?;
        params.validate().map_err(|e| fail(&e))?;
        Ok(params)
    }

    /// Reads and parses the files the scenario names.
    fn load_files(&mut self, path: &Path) -> Result<(), ScenarioError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let read = |name: &str| {
            let file = dir.join(name);
            std::fs::read_to_string(&file)
                .map(|t| (file.clone(), t))
                .map_err(|source| ScenarioError::Io { path: file, source })
        };
        if let Some(name) = &self.ecm_file {
            let (file, text) = read(name)?;
            let is_json = file.extension().is_some_and(|e| e == "json");
            let ecm = if is_json {
                models::ecm::EcmParams::from_json_str(&text)
            } else {
                models::ecm::EcmParams::from_toml_str(&text)
            };
            self.ecm = Some(ecm.map_err(|e| ScenarioError::Invalid { path: file, message: e.to_string() })?);
        }
        if let Some(name) = &self.ambient_csv {
            let (file, text) = read(name)?;
            let points = ambient_from_csv(&text).map_err(|message| ScenarioError::Invalid { path: file, message })?;
            self.ambient_profile = points;
        }
        for seg in &mut self.segments {
            if let Some(name) = &seg.csv {
                let (file, text) = read(name)?;
                let profile = models::profile::CurrentProfile::from_csv(&text, models::profile::Interpolation::Hold)
                    .map_err(|e| ScenarioError::Invalid { path: file, message: e.to_string() })?;
                seg.profile = Some(std::sync::Arc::new(profile));
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(format!("name {:?} must be non-empty and usable as a folder name", self.name));
        }
        if !(0.0..=1.0).contains(&self.initial_soc) {
            return Err(format!("initial_soc = {} must be within 0..=1", self.initial_soc));
        }
        if !(-40.0..=85.0).contains(&self.ambient_c) {
            return Err(format!("ambient_c = {} must be within -40..=85 °C", self.ambient_c));
        }
        if self.adc_rate_hz == 0 || 1_000_000_000 % self.adc_rate_hz != 0 || self.adc_rate_hz > 100_000 {
            return Err(format!(
                "adc_rate_hz = {} must divide 1e9 (the step is a whole number of ns) and be ≤ 100000",
                self.adc_rate_hz
            ));
        }
        if !(self.trace_interval_s.is_finite() && self.trace_interval_s >= 1.0 / f64::from(self.adc_rate_hz)) {
            return Err(format!("trace_interval_s = {} must be at least one ADC period", self.trace_interval_s));
        }
        if let Some(d) = self.duration_s {
            if !(finite_nonneg(d) && d > 0.0) {
                return Err(format!("duration_s = {d} must be positive"));
            }
        }
        if self.segments.is_empty() && self.duration_s.is_none() {
            return Err("no [[segment]] and no duration_s: nothing to run".into());
        }
        // The sum of finite segments can still be absurd (or overflow to infinity).
        let total_s = self.duration_s.unwrap_or_else(|| self.segments.iter().map(|s| s.duration_s).sum());
        if total_s > MAX_DURATION_S {
            return Err(format!(
                "the run lasts {total_s:e} s, longer than the bound of {MAX_DURATION_S:.0} s (ten years, what the \
                 board's counters are specified for); shorten it or split it into runs"
            ));
        }
        for (i, s) in self.segments.iter().enumerate() {
            if !(finite_nonneg(s.duration_s) && s.duration_s > 0.0) {
                return Err(format!("segment {}: duration_s = {} must be positive", i + 1, s.duration_s));
            }
            if !finite_nonneg(s.current_a) || s.current_a > 2_000.0 {
                return Err(format!("segment {}: current_a = {} must be within 0..=2000 A", i + 1, s.current_a));
            }
            if s.kind == SegmentKind::Rest && s.current_a != 0.0 {
                return Err(format!("segment {}: a rest segment has no current_a", i + 1));
            }
            let n = i + 1;
            let positive = |name: &str, v: Option<f64>| match v {
                Some(x) if !(x.is_finite() && x > 0.0) => Err(format!("segment {n}: {name} = {x} must be positive")),
                _ => Ok(()),
            };
            positive("power_w", s.power_w)?;
            positive("resistance_ohm", s.resistance_ohm)?;
            positive("cv_voltage_v", s.cv_voltage_v)?;
            if (s.power_w.is_some() || s.resistance_ohm.is_some()) && s.kind != SegmentKind::Discharge {
                return Err(format!("segment {n}: power_w and resistance_ohm are for discharge segments"));
            }
            if s.power_w.is_some() && s.resistance_ohm.is_some() {
                return Err(format!("segment {n}: give power_w or resistance_ohm, not both"));
            }
            if s.cv_voltage_v.is_some() && s.kind != SegmentKind::Charge {
                return Err(format!("segment {n}: cv_voltage_v is for charge segments"));
            }
            if (s.kind == SegmentKind::Profile) != s.csv.is_some() {
                return Err(format!("segment {n}: kind = \"profile\" and csv go together"));
            }
        }
        if !(1..=247).contains(&self.firmware.unit) {
            return Err(format!("firmware.unit = {} must be a Modbus unit id within 1..=247", self.firmware.unit));
        }
        if let Some(p) = self.firmware.initial_soc_pct {
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("firmware.initial_soc_pct = {p} must be within 0..=100"));
            }
        }
        for name in self.firmware.registers.keys() {
            if firmware_core::map::by_name(name).is_none() {
                return Err(format!("firmware.registers: no register named {name:?} (see `smartpro-sim map`)"));
            }
        }
        self.pack.validate().map_err(|e| format!("[pack]: {e}"))?;
        self.chain.validate().map_err(|e| format!("[chain]: {e}"))?;
        self.switch.validate().map_err(|e| format!("[switch]: {e}"))?;
        if self.transient.switch != models::switch::SwitchParams::default() {
            return Err("[transient.switch]: the switch has one parameter set, [switch], for the engine and for \
                        transient events alike: move these keys there"
                .into());
        }
        if self.transient.powerpro.is_some() {
            return Err("[transient.powerpro]: the PowerPro is configured once, [powerpro]; a run's transient \
                        events do not carry it into their µs circuit yet (docs/companions.md)"
                .into());
        }
        self.transient.validate().map_err(|e| format!("[transient]: {e}"))?;
        if let Some(l) = &self.lipro {
            l.validate().map_err(|e| format!("[lipro]: {e}"))?;
            if let Some(i) = self.events.iter().position(|e| e.lvp_input.is_some() || e.ovp_input.is_some()) {
                return Err(format!(
                    "event {}: lvp_input / ovp_input with [lipro]: the LiPro loop drives the control inputs \
                     (remove the event's key, or the [lipro] section)",
                    i + 1
                ));
            }
        }
        if let Some(p) = &self.powerpro {
            p.validate().map_err(|e| format!("[powerpro]: {e}"))?;
        }
        for (i, ev) in self.events.iter().enumerate() {
            let physical = ev.fault_resistance_mohm.is_finite() && ev.fault_resistance_mohm >= 0.0;
            if !(physical && (0.0..=1.0).contains(&ev.position)) {
                return Err(format!("event {}: fault_resistance_mohm must be ≥ 0 and position within 0..=1", i + 1));
            }
            if ev.trigger == Trigger::SwitchOff
                && !matches!(ev.transient, Some(TransientEvent::SwitchOpen | TransientEvent::LoadDump))
            {
                return Err(format!(
                    "event {}: trigger = \"switch_off\" needs transient = \"switch_open\" or \"load_dump\"",
                    i + 1
                ));
            }
            if ev.transient == Some(TransientEvent::LoadDump) {
                self.transient
                    .load_dump
                    .validate_for(self.variant)
                    .map_err(|e| format!("[transient.load_dump] (event {}): {e}", i + 1))?;
            }
        }
        for (i, e) in self.expectations.iter().enumerate() {
            if !crate::metrics::metric_known(&e.metric) {
                return Err(format!(
                    "expect {} : unknown metric {:?}; known: {}",
                    i + 1,
                    e.metric,
                    crate::metrics::metric_names().join(", ")
                ));
            }
            if e.min.is_none() && e.max.is_none() {
                return Err(format!("expect {} ({}): give min, max or both", i + 1, e.metric));
            }
        }
        for (i, s) in self.segments.iter().enumerate() {
            if let Some(p) = s.period_s {
                if !(p.is_finite() && p > 0.0) {
                    return Err(format!("segment {}: period_s = {p} must be positive", i + 1));
                }
            }
            if let Some(d) = s.duty {
                if !(d > 0.0 && d <= 1.0) || s.period_s.is_none() {
                    return Err(format!("segment {}: duty = {d} needs period_s and must be within (0, 1]", i + 1));
                }
            }
        }
        let mut last = f64::NEG_INFINITY;
        for (i, &(t, c)) in self.ambient_profile.iter().enumerate() {
            if !ambient_point_ok(last, t, c) {
                return Err(format!(
                    "ambient_profile point {}: [{t}, {c}] must have rising times ≥ 0 and −40..=85 °C",
                    i + 1
                ));
            }
            last = t;
        }
        if self.ambient_csv.is_some() && !self.ambient_profile.is_empty() {
            return Err("give ambient_profile or ambient_csv, not both".into());
        }
        if !(self.aux_heater_w.is_finite() && (0.0..=5_000.0).contains(&self.aux_heater_w)) {
            return Err(format!("aux_heater_w = {} must be within 0..=5000 W", self.aux_heater_w));
        }
        for (i, ev) in self.events.iter().enumerate() {
            if !(ev.at_s.is_finite() && ev.at_s >= 0.0) {
                return Err(format!("event {}: at_s = {} must be ≥ 0", i + 1, ev.at_s));
            }
            for w in &ev.write {
                if firmware_core::map::by_name(&w.register).is_none() {
                    return Err(format!(
                        "event {}: no register named {:?} (see `smartpro-sim map`)",
                        i + 1,
                        w.register
                    ));
                }
            }
        }
        Ok(())
    }

    /// Simulated duration in ns (whole ADC periods); at most [`MAX_DURATION_S`] once validated.
    pub fn duration_ns(&self) -> u64 {
        let total_s = self.duration_s.unwrap_or_else(|| self.segments.iter().map(|s| s.duration_s).sum());
        secs_to_ns(total_s)
    }
}

/// A point of an ambient profile after one at `last_t_s`: times rising (or
/// equal), ≥ 0, temperatures within −40..=85 °C.
fn ambient_point_ok(last_t_s: f64, t_s: f64, temp_c: f64) -> bool {
    t_s.is_finite() && t_s >= last_t_s && t_s >= 0.0 && (-40.0..=85.0).contains(&temp_c)
}

/// The `(time_s, temp_C)` points of an `ambient_csv` file: the header names
/// the columns (any order, case-insensitive, others ignored); `#` lines,
/// blank lines and rows with an empty `temp_C` cell are skipped. Errors name
/// the 1-based line.
fn ambient_from_csv(text: &str) -> Result<Vec<(f64, f64)>, String> {
    let mut cols: Option<(usize, usize)> = None;
    let mut points: Vec<(f64, f64)> = Vec::new();
    for (k, raw) in text.lines().enumerate() {
        let line_no = k + 1;
        let line = raw.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let Some((ct, cc)) = cols else {
            let find = |name: &str| cells.iter().position(|c| c.eq_ignore_ascii_case(name));
            match (find("time_s"), find("temp_C")) {
                (Some(t), Some(c)) => cols = Some((t, c)),
                _ => return Err(format!("line {line_no}: the header must name the columns time_s and temp_C")),
            }
            continue;
        };
        let cell = |c: usize| cells.get(c).copied().unwrap_or("");
        let (t, c) = (cell(ct), cell(cc));
        if c.is_empty() {
            continue;
        }
        let number =
            |what: &str, v: &str| v.parse::<f64>().map_err(|_| format!("line {line_no}: {what} {v:?} is not a number"));
        let (t_s, temp_c) = (number("time_s", t)?, number("temp_C", c)?);
        let last = points.last().map_or(f64::NEG_INFINITY, |p| p.0);
        if !ambient_point_ok(last, t_s, temp_c) {
            return Err(format!(
                "line {line_no}: ({t_s} s, {temp_c} °C): times must rise from ≥ 0 and temperatures be within −40..=85 °C"
            ));
        }
        points.push((t_s, temp_c));
    }
    match (cols, points.is_empty()) {
        (None, _) => Err("no header line naming time_s and temp_C".into()),
        (Some(_), true) => Err("no row with a temperature".into()),
        _ => Ok(points),
    }
}

/// The longest run a scenario may ask for (s): ten years, the span the board's
/// charge and energy counters are specified for (DESIGN.md, firmware-core).
/// A longer run (e.g. `duration_s = 1e300`, which would run until killed) is
/// refused when the scenario is read.
pub const MAX_DURATION_S: f64 = 10.0 * 365.25 * 86_400.0;

/// Seconds (finite, ≥ 0) to integer nanoseconds, rounded.
pub fn secs_to_ns(s: f64) -> u64 {
    (s * 1e9).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_17_an_absurd_duration_is_refused_not_run_until_killed() {
        for (what, text) in [
            ("duration_s", MINIMAL.replace("initial_soc = 0.5\n", "initial_soc = 0.5\nduration_s = 1e300\n")),
            ("one segment", MINIMAL.replace("duration_s = 10", "duration_s = 1e300")),
            (
                "segments summed",
                format!("{MINIMAL}{}", "[[segment]]\nkind = \"rest\"\nduration_s = 1.7e308\n".repeat(2)),
            ),
        ] {
            let err = Scenario::parse(&text, Path::new("long.toml")).unwrap_err().to_string();
            assert!(err.contains("ten years") && err.contains("long.toml"), "{what}: {err}");
        }
        // A year (issue 18's long run) is fine.
        let year = MINIMAL.replace("duration_s = 10", "duration_s = 31557600");
        assert!(Scenario::parse(&year, Path::new("year.toml")).is_ok());
    }

    const MINIMAL: &str =
        "name = \"t\"\nvariant = 12\ninitial_soc = 0.5\n[[segment]]\nkind = \"rest\"\nduration_s = 10\n";

    #[test]
    fn minimal_scenario_parses_with_defaults() {
        let s = Scenario::parse(MINIMAL, Path::new("t.toml")).unwrap();
        assert_eq!(s.firmware.unit, 1, "the board answers unit 1 without a [firmware] section");
        assert_eq!(s.variant, Variant::V12);
        assert_eq!(s.adc_rate_hz, 1_000);
        assert_eq!(s.duration_ns(), 10_000_000_000);
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let text = format!("{MINIMAL}bogus = 1\n");
        let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.starts_with("x.toml:7:"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = MINIMAL.replace("0.5", "1.5");
        let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("initial_soc"), "{err}");
        let text = format!("{MINIMAL}[firmware.registers]\nnope = 3\n");
        let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        let text = MINIMAL.replace("variant = 12", "variant = 36");
        assert!(Scenario::parse(&text, Path::new("x.toml")).is_err());
        let text = format!("{MINIMAL}[pack.cell]\ncapacity_ah = -5.0\n");
        let err = Scenario::parse(&text, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("[pack]"), "{err}");
    }

    #[test]
    fn referenced_files_are_read_relative_to_the_scenario_and_errors_name_them() {
        let dir = std::env::temp_dir().join(format!("smartpro-scn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.csv"), "time_s,current_A\n0,-10\n5,20\n").unwrap();
        let text = "name = \"t\"\nvariant = 12\ninitial_soc = 0.5\n[[segment]]\nkind = \"profile\"\ncsv = \"p.csv\"\nduration_s = 10\n";
        let s = Scenario::parse(text, &dir.join("t.toml")).unwrap();
        assert!(s.segments[0].profile.is_some());
        let err = Scenario::parse(&text.replace("p.csv", "missing.csv"), &dir.join("t.toml")).unwrap_err();
        assert!(err.to_string().contains("missing.csv"), "{err}");
        std::fs::write(dir.join("bad.csv"), "time_s,current_A\n0,-10\n5,oops\n").unwrap();
        let err = Scenario::parse(&text.replace("p.csv", "bad.csv"), &dir.join("t.toml")).unwrap_err().to_string();
        assert!(err.contains("bad.csv"), "{err}");
        // A recording's temperature as the ambient: comment rows and empty cells skipped.
        std::fs::write(
            dir.join("rec.csv"),
            "time_s,current_A,voltage_V,temp_C\n0,-10,13.2,20.5\n# 1,,13.2,21.0\n2,-10,13.2,\n3,-10,13.1,22.5\n",
        )
        .unwrap();
        let amb = text.replacen("variant = 12", "variant = 12\nambient_csv = \"rec.csv\"", 1);
        let s = Scenario::parse(&amb, &dir.join("t.toml")).unwrap();
        assert_eq!(s.ambient_profile, [(0.0, 20.5), (3.0, 22.5)]);
        std::fs::write(dir.join("cold.csv"), "time_s,temp_C\n0,20\n5,-55.0\n").unwrap();
        let err = Scenario::parse(&amb.replace("rec.csv", "cold.csv"), &dir.join("t.toml")).unwrap_err().to_string();
        assert!(err.contains("cold.csv") && err.contains("line 3") && err.contains("-55"), "{err}");
        std::fs::write(dir.join("nohdr.csv"), "time_s,current_A\n0,1\n").unwrap();
        let err = Scenario::parse(&amb.replace("rec.csv", "nohdr.csv"), &dir.join("t.toml")).unwrap_err().to_string();
        assert!(err.contains("nohdr.csv") && err.contains("time_s and temp_C"), "{err}");
        let both = amb.replacen("variant = 12", "variant = 12\nambient_profile = [[0, 20]]", 1);
        let err = Scenario::parse(&both, &dir.join("t.toml")).unwrap_err().to_string();
        assert!(err.contains("not both"), "{err}");
        let with_ecm = text.replacen("variant = 12", "variant = 12\necm_file = \"nope.toml\"", 1);
        let err = Scenario::parse(&with_ecm, &dir.join("t.toml")).unwrap_err().to_string();
        assert!(err.contains("nope.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn thermal_keys_replace_the_defaults_of_the_packs_network() {
        // A partial [thermal] keeps the rest scaled to the variant's 16 cells.
        let v48 = MINIMAL.replace("variant = 12", "variant = 48");
        let s =
            Scenario::parse(&format!("{v48}[thermal]\nboard_to_ambient_w_per_k = 1.2\n"), Path::new("t.toml")).unwrap();
        let p = s.thermal_params().unwrap();
        assert_eq!(p, NetworkParams { board_to_ambient_w_per_k: 1.2, ..NetworkParams::for_cells(16) });
        // Nested tables key by key.
        let s = Scenario::parse(&format!("{v48}[thermal.cells]\nconductance_w_per_k = 8.0\n"), Path::new("t.toml"))
            .unwrap();
        let p = s.thermal_params().unwrap();
        assert_eq!(p.cells.conductance_w_per_k, 8.0);
        assert_eq!(p.cells.heat_capacity_j_per_k, NetworkParams::for_cells(16).cells.heat_capacity_j_per_k);
        // Errors name the section and the cause.
        for (body, cause) in [
            ("[thermal]\nboard_to_ambiant_w_per_k = 1.0\n", "board_to_ambiant_w_per_k"),
            ("[thermal]\nboard_heat_capacity_j_per_k = -3.0\n", "board_heat_capacity_j_per_k"),
            ("[thermal.jig]\nheat_capacity_j_per_k = 100.0\n", "cells_to_jig_w_per_k"),
            ("[thermal]\nboard_to_ambient_w_per_k = 0.0\nboard_to_cells_w_per_k = 0.0\n", "board"),
        ] {
            let err = Scenario::parse(&format!("{MINIMAL}{body}"), Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains("x.toml") && err.contains("[thermal]") && err.contains(cause), "{err}");
        }
    }

    #[test]
    fn an_ecm_files_thermal_table_is_the_packs_cells_and_jig() {
        let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/t.toml");
        let text = MINIMAL.replacen("variant = 12", "variant = 12\necm_file = \"data/lfp-100ah-ecm.toml\"", 1);
        let s = Scenario::parse(&text, &scenarios).unwrap();
        let cell = s.ecm.as_ref().and_then(|e| e.thermal).unwrap();
        let p = s.thermal_params().unwrap();
        // four cells of the 12 V pack, each with its share of the jig
        assert_eq!(p.cells.heat_capacity_j_per_k, 4.0 * cell.cell_heat_capacity_j_per_k);
        assert_eq!(p.cells.conductance_w_per_k, 0.0);
        let jig = p.jig.unwrap();
        assert_eq!(jig.heat_capacity_j_per_k, 4.0 * cell.jig_heat_capacity_j_per_k);
        assert_eq!(jig.cells_to_jig_w_per_k, 4.0 * cell.cell_to_jig_w_per_k);
        assert_eq!(jig.jig_to_ambient_w_per_k, 4.0 * cell.jig_to_ambient_w_per_k);
        assert_eq!(p.board_to_cells_w_per_k, NetworkParams::default().board_to_cells_w_per_k);
        // The scenario's [thermal] still overrides the file's values.
        let s = Scenario::parse(&format!("{text}[thermal.jig]\njig_to_ambient_w_per_k = 3.0\n"), &scenarios).unwrap();
        let p = s.thermal_params().unwrap();
        assert_eq!(p.jig.unwrap().jig_to_ambient_w_per_k, 3.0);
        assert_eq!(p.jig.unwrap().cells_to_jig_w_per_k, 4.0 * cell.cell_to_jig_w_per_k);
    }

    #[test]
    fn transient_events_parse_with_aliases_and_triggers() {
        let ev = |body: &str| format!("{MINIMAL}[[event]]\nat_s = 1\n{body}");
        let s = Scenario::parse(&ev("transient = \"switch_open_under_load\"\n"), Path::new("t.toml")).unwrap();
        assert_eq!(s.events[0].transient, Some(TransientEvent::SwitchOpen));
        assert_eq!(s.events[0].trigger, Trigger::At);
        let s =
            Scenario::parse(&ev("transient = \"load_dump\"\ntrigger = \"switch_off\"\n"), Path::new("t.toml")).unwrap();
        assert_eq!(s.events[0].transient.map(TransientEvent::kind), Some(models::transient::EventKind::LoadDump));
        assert_eq!(s.events[0].trigger, Trigger::SwitchOff);
        // a short circuit is not started by the board
        let err =
            Scenario::parse(&ev("transient = \"short_circuit\"\ntrigger = \"switch_off\"\n"), Path::new("t.toml"))
                .unwrap_err()
                .to_string();
        assert!(err.contains("event 1") && err.contains("trigger"), "{err}");
        // the load-dump source is checked against the variant
        let text = format!("{}[transient.load_dump]\nsupply_v = 80.0\n", ev("transient = \"load_dump\"\n"));
        let err = Scenario::parse(&text, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("load_dump.surge_v"), "{err}");
    }

    #[test]
    fn issue_14_one_switch_for_the_engine_and_transient_events() {
        let s = Scenario::parse(
            &format!("{MINIMAL}[switch]\non_resistance_mohm = 0.3\nturn_off_us = 2.0\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(s.transient.switch, s.switch);
        assert_eq!(s.transient.switch.on_resistance_ohm(s.variant), 0.3e-3);
        let err = Scenario::parse(&format!("{MINIMAL}[transient.switch]\nturn_off_us = 2.0\n"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("[transient.switch]") && err.contains("[switch]"), "{err}");
        let err =
            Scenario::parse(&format!("{MINIMAL}[transient.powerpro]\n"), Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("[transient.powerpro]") && err.contains("[powerpro]"), "{err}");
        let err = Scenario::parse(&format!("{MINIMAL}[switch]\nr_on_total_25c_ohm = 0.0004\n"), Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("on_resistance_mohm = 0.4"), "{err}");
    }

    /// A 20 Ah pack behind a board left at its factory 100 Ah counted a tenth of the truth's
    /// SOC swing (12v-lipro-balancing-cycles): the board is commissioned for the pack it is on.
    #[test]
    fn issue_15_the_board_is_commissioned_with_the_packs_nominal_capacity() {
        let parse = |extra: &str| Scenario::parse(&format!("{MINIMAL}{extra}"), Path::new("t.toml"));
        assert_eq!(parse("").unwrap().commissioned_capacity_dah(), None, "100 Ah is the factory setting");
        let small = parse("[pack.cell]\ncapacity_ah = 20.0\n").unwrap();
        assert_eq!(small.commissioned_capacity_dah(), Some(200));
        let engine = crate::engine::Engine::new(&small).unwrap();
        assert_eq!(engine.board().settings().capacity_dah, 200);
        // an aged pack behind a board rated for the new one: the scenario's own write wins
        let aged = parse("[pack.cell]\ncapacity_ah = 85.0\n[firmware]\nregisters = { capacity_dah = 1000 }\n").unwrap();
        assert_eq!(aged.commissioned_capacity_dah(), None);
        assert_eq!(crate::engine::Engine::new(&aged).unwrap().board().settings().capacity_dah, 1000);
        let err = parse("[pack.cell]\ncapacity_ah = 7000.0\n").unwrap_err().to_string();
        assert!(err.contains("7000 Ah") && err.contains("capacity_dah") && err.contains("t.toml"), "{err}");
    }

    #[test]
    fn lipro_and_powerpro_sections_are_checked_by_key() {
        let s = Scenario::parse(
            &format!("{MINIMAL}[lipro]\nuv_v = 2.9\n[lipro.balancing]\nstart_v = 3.45\n[powerpro]\noc_a = 300.0\n[powerpro.fuse]\nrating_a = 150.0\n"),
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(s.lipro.unwrap().uv_v, 2.9);
        assert_eq!(s.lipro.unwrap().balancing.start_v, 3.45);
        assert_eq!(s.powerpro.unwrap().fuse.rating_a, 150.0);
        assert!(Scenario::parse(MINIMAL, Path::new("t.toml")).unwrap().lipro.is_none());
        for (text, needle) in [
            ("[lipro]\nuv_volts = 2.9\n", "uv_volts"),
            ("[lipro]\nloop_voltage_v = 70.0\n", "loop_voltage_v"),
            ("[lipro.balancing]\nbleed_resistance_ohm = 0.0\n", "balancing.bleed_resistance_ohm"),
            ("[powerpro]\ncell_ov_v = 9.0\n", "cell_ov_v"),
            ("[powerpro.fuse]\nmin_fusing_ratio = 0.5\n", "fuse.min_fusing_ratio"),
            ("[pack.odd_cell]\nindex = 0\n", "odd_cell.index"),
        ] {
            let err = Scenario::parse(&format!("{MINIMAL}{text}"), Path::new("bad.toml")).unwrap_err().to_string();
            assert!(err.contains(needle) && err.contains("bad.toml"), "{text}: {err}");
        }
        let ev = format!("{MINIMAL}[lipro]\n[[event]]\nat_s = 1\nlvp_input = false\n");
        let err = Scenario::parse(&ev, Path::new("t.toml")).unwrap_err().to_string();
        assert!(err.contains("event 1") && err.contains("[lipro]"), "{err}");
    }
}
