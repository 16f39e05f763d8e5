//! The SmartPro twin as an FMI 3.0 co-simulation FMU (issue 19, part 1).
//!
//! The FMU steps the very engine `smartpro-sim run` steps (pack, thermal
//! network, measurement chain, firmware-core board), through [`plant`], the
//! one module that calls into `sim`. Variables, units and stepping rules:
//! `docs/fmu.md`. Build the `.fmu`:
//! `cargo run --release -p smartpro-fmu --bin build-fmu -- --out smartpro.fmu`.
//!
//! The FMI C API comes from the `fmi-export` crate (0.3): `#[derive(FmuModel)]`
//! lays out the variables and their get/set functions, `export_fmu!` the
//! `fmi3*` symbols, and [`UserModel`] is implemented here (build the plant
//! when initialisation ends, step it in `fmi3DoStep`). What it could and could
//! not do, measured here with FMPy 0.3.32 (also in `docs/fmu.md`):
//! - could: co-simulation instantiate/step/terminate/free, `fmi3Reset` (start
//!   values back; the plant is rebuilt at the next initialisation), Float64,
//!   Int32, UInt16/32, Boolean and String variables, logging through the
//!   importer's callback, many instances in one process; its metadata
//!   serialises to a `modelDescription.xml` that FMPy validates;
//! - could not: 64-bit integer variables (no builder for `u64`/`i64`: the
//!   seed is a UInt32); a `unit` on a variable (the derive has no such key and the
//!   schema's variables no such attribute) — [`description`] adds a
//!   `TypeDefinitions` entry per unit and a `declaredType` on each variable;
//!   refusing a parameter set after initialisation (its generated check
//!   accepts every set in every state) — [`SmartPro::do_step`] refuses to
//!   step on a parameter changed since initialisation; logging when the
//!   importer instantiated with `loggingOn = false` (its context drops every
//!   message then, errors too); `fmi3GetFMUState`/`SetFMUState` (they
//!   `todo!()`: `canGetAndSetFMUState` stays false); packaging (that is
//!   `cargo-fmi`, a separate install: `build-fmu` does it from the same metadata).

pub mod description;
pub mod plant;

use fmi::fmi3::{Fmi3Error, Fmi3Res, Fmi3Status};
use fmi_export::FmuModel;
use fmi_export::fmi3::{CSDoStepResult, Context, DefaultLoggingCategory, UserModel};

use plant::{Plant, PlantConfig, PlantInputs};

/// SmartPro-209 battery monitor and switch with its LiFePO4 pack: the project's digital twin.
#[derive(FmuModel, Default, Debug)]
#[model(model_exchange = false, co_simulation = true, user_model = false)]
pub struct SmartPro {
    /// Board variant: 12, 24 or 48 (nominal pack voltage, V).
    #[variable(causality = Parameter, variability = Fixed, start = 12)]
    pub variant: i32,
    /// Seed of every random stream (cell spread, chain tolerances, noise); 0..=4294967295.
    #[variable(causality = Parameter, variability = Fixed, start = 1)]
    pub seed: u32,
    /// True initial SOC of the pack, 0..1 (fraction).
    #[variable(causality = Parameter, variability = Fixed, start = 0.8)]
    pub initial_soc: f64,
    /// ADC conversion rate, Hz (must divide 1e9; at most 100000): the engine's tick is its period.
    #[variable(causality = Parameter, variability = Fixed, start = 1000)]
    pub adc_rate_hz: u32,
    /// Scenario file or external cell parameter (ECM) file; empty: the built-in defaults.
    #[variable(causality = Parameter, variability = Fixed, start = String::new())]
    pub config_file: String,

    /// Load/charger current demand, A (> 0 charges, < 0 discharges); the board's switch gates it.
    #[variable(causality = Input, variability = Continuous, start = 0.0)]
    pub current_demand_a: f64,
    /// Ambient temperature, degC (taken when initialisation ends; a later change is refused).
    #[variable(causality = Input, variability = Continuous, start = 25.0)]
    pub ambient_c: f64,
    /// LiPro LVP control input: true while the cells' control voltage is present.
    #[variable(causality = Input, variability = Discrete, start = true)]
    pub lvp_input: bool,
    /// LiPro OVP control input: true while the cells' control voltage is present.
    #[variable(causality = Input, variability = Discrete, start = true)]
    pub ovp_input: bool,
    /// Short-circuit trigger: a rising edge starts a bolted short at the load line's far end.
    #[variable(causality = Input, variability = Discrete, start = false)]
    pub short_circuit: bool,

    /// True pack terminal voltage, V.
    #[variable(causality = Output, variability = Continuous)]
    pub terminal_voltage_v: f64,
    /// True pack current through the shunt, A (> 0 charges).
    #[variable(causality = Output, variability = Continuous)]
    pub pack_current_a: f64,
    /// True pack SOC, %.
    #[variable(causality = Output, variability = Continuous)]
    pub true_soc_pct: f64,
    /// True pack (cells) temperature, degC.
    #[variable(causality = Output, variability = Continuous)]
    pub true_temp_c: f64,
    /// The board's SOC (its selected method), %.
    #[variable(causality = Output, variability = Discrete)]
    pub board_soc_pct: f64,
    /// Battery current as the board reports it, A (> 0 charges).
    #[variable(causality = Output, variability = Discrete)]
    pub meas_current_a: f64,
    /// Battery voltage as the board reports it, V.
    #[variable(causality = Output, variability = Discrete)]
    pub meas_voltage_v: f64,
    /// Battery temperature as the board reports it, degC.
    #[variable(causality = Output, variability = Discrete)]
    pub meas_temp_c: f64,
    /// Main switch closed.
    #[variable(causality = Output, variability = Discrete)]
    pub switch_on: bool,
    /// LVP control output: the load may draw.
    #[variable(causality = Output, variability = Discrete)]
    pub lvp_output: bool,
    /// OVP control output: the charger may charge.
    #[variable(causality = Output, variability = Discrete)]
    pub ovp_output: bool,
    /// Aux output on.
    #[variable(causality = Output, variability = Discrete)]
    pub aux_on: bool,
    /// The board's fault bit word (register `faults`; bits in docs/register-map.md).
    #[variable(causality = Output, variability = Discrete)]
    pub faults: u16,

    /// The running engine (built when initialisation ends) and the parameters it was built with.
    plant: Option<(Plant, PlantConfig)>,
    /// The FMU's time at the engine's t = 0 (s).
    start_s: f64,
}

impl SmartPro {
    fn config(&self) -> PlantConfig {
        PlantConfig {
            variant: self.variant,
            seed: u64::from(self.seed),
            initial_soc: self.initial_soc,
            adc_rate_hz: self.adc_rate_hz,
            config_file: self.config_file.clone(),
            ambient_c: self.ambient_c,
        }
    }

    fn show_outputs(&mut self) {
        let Some((plant, _)) = &self.plant else { return };
        let o = plant.outputs();
        self.terminal_voltage_v = o.terminal_voltage_v;
        self.pack_current_a = o.pack_current_a;
        self.true_soc_pct = o.true_soc_pct;
        self.true_temp_c = o.true_temp_c;
        self.board_soc_pct = o.board_soc_pct;
        self.meas_current_a = o.meas_current_a;
        self.meas_voltage_v = o.meas_voltage_v;
        self.meas_temp_c = o.meas_temp_c;
        self.switch_on = o.switch_on;
        self.lvp_output = o.lvp_output;
        self.ovp_output = o.ovp_output;
        self.aux_on = o.aux_on;
        self.faults = o.faults;
    }
}

/// Logs an error through the importer's callback (when its logging is on).
fn log_error(context: &dyn Context<SmartPro>, args: std::fmt::Arguments<'_>) {
    context.log(Fmi3Status::from(Fmi3Error::Error), DefaultLoggingCategory::LogAll, args);
}

impl UserModel for SmartPro {
    type LoggingCategory = DefaultLoggingCategory;

    /// Initialisation ends: build the plant from the parameters (a bad one
    /// is an `fmi3Error` with its cause logged, and no plant).
    fn configurate(&mut self, context: &dyn Context<Self>) -> Result<(), Fmi3Error> {
        self.plant = None;
        self.start_s = context.time();
        let config = self.config();
        match Plant::new(&config) {
            Ok(plant) => {
                self.plant = Some((plant, config));
                self.show_outputs();
                Ok(())
            }
            Err(e) => {
                log_error(context, format_args!("SmartPro: the parameters were refused: {e}"));
                Err(Fmi3Error::Error)
            }
        }
    }

    /// Advances whole ADC periods up to `t + h` (the rest of a period is carried to the next step).
    fn do_step(
        &mut self,
        context: &mut dyn Context<Self>,
        current_communication_point: f64,
        communication_step_size: f64,
        _no_set_fmu_state_prior_to_current_point: bool,
    ) -> Result<CSDoStepResult, Fmi3Error> {
        let end_s = current_communication_point + communication_step_size;
        let config = self.config();
        let inputs = PlantInputs {
            current_a: self.current_demand_a,
            ambient_c: self.ambient_c,
            lvp_input: self.lvp_input,
            ovp_input: self.ovp_input,
            short_circuit: self.short_circuit,
        };
        let start_s = self.start_s;
        let Some((plant, built_with)) = &mut self.plant else {
            log_error(context, format_args!("SmartPro: fmi3DoStep without a plant (its parameters were refused)"));
            return Err(Fmi3Error::Error);
        };
        // (The ambient is an input: the plant checks it.)
        if (PlantConfig { ambient_c: built_with.ambient_c, ..config.clone() }) != *built_with {
            log_error(
                context,
                format_args!(
                    "SmartPro: a parameter changed after initialisation ({built_with:?} → {config:?}); \
                     parameters are fixed: fmi3Reset and initialise again"
                ),
            );
            return Err(Fmi3Error::Error);
        }
        let since_start_s = end_s - start_s;
        if !(communication_step_size >= 0.0 && since_start_s.is_finite() && since_start_s >= 0.0) {
            log_error(
                context,
                format_args!("SmartPro: fmi3DoStep(t = {current_communication_point}, h = {communication_step_size})"),
            );
            return Err(Fmi3Error::Error);
        }
        // To the nearest ns: the engine's time is integer ns.
        let target_ns = (since_start_s * 1e9).round() as u64;
        if let Err(e) = plant.advance_to(target_ns, &inputs) {
            log_error(context, format_args!("SmartPro at t = {current_communication_point} s: {e}"));
            return Err(Fmi3Error::Error);
        }
        self.show_outputs();
        context.set_time(end_s);
        Ok(CSDoStepResult::completed(end_s))
    }

    fn calculate_values(&mut self, _context: &dyn Context<Self>) -> Result<Fmi3Res, Fmi3Error> {
        Ok(Fmi3Res::OK)
    }
}

/// The `fmi3*` C symbols.
// SAFETY: `export_fmu!` expands to the `extern "C"` functions of the FMI 3.0
// API (`#[unsafe(export_name)]`); each dereferences the instance pointer the
// importer passes, which FMI requires to be one this library returned from
// `fmi3InstantiateCoSimulation` and not yet freed, and the value/reference
// arrays, which FMI requires to hold the counts passed with them. No unsafe
// code is written by hand in this crate.
#[allow(unsafe_code)]
mod ffi {
    fmi_export::export_fmu!(super::SmartPro);
}
