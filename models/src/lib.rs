//! Physics and electronics models of a SmartPro-209 battery system.
//!
//! Continuous-time models with explicit state, advanced by `step(dt, …)`
//! with inputs held over the step (zero-order hold) and, where the physics
//! is linear, updated exactly so results do not depend on the step size.
//! No model reads a clock, does I/O or keeps global state; every random
//! effect draws from its own named stream of [`rng::SeedStreams`].
//!
//! Sign convention everywhere: `current_a > 0` charges the battery,
//! `< 0` discharges it.
//!
//! | module | model |
//! |---|---|
//! | [`variant`] | the 12/24/48 V versions and their datasheet figures |
//! | [`rng`] | named, independently seeded random streams |
//! | [`decay`] | `exp(−dt/τ)` over one step (also used by the estimators in `hil-rig`) |
//! | [`ocv`] | open-circuit voltage tables (LiFePO4, NMC) |
//! | [`table`] | piecewise-linear tables over temperature, current and SOC; resampled for the hot path |
//! | [`ecm`] | equivalent-circuit parameter sets: built-in and external (TOML/JSON); one set alone on a profile |
//! | [`cell`] | one cell's parameters and state |
//! | [`pack`] | series string: two RC pairs, hysteresis, temperature, ageing, spread; exact ZOH |
//! | [`profile`] | current profiles from CSV text; the built-in one-hour profiles |
//! | [`thermal`] | lumped node; cells–board–shunt network with exact discretisation |
//! | [`chain`] | shunt, amplifier, ADC, divider, NTCs (one file each): what the board's ADC sees |
//! | [`accuracy`] | Monte Carlo of the chain against the datasheet's accuracy table |
//! | [`switch`] | back-to-back MOSFET banks with body diodes; the switch's one parameter set |
//! | [`loads`] | loads, CC-CV charger, self-consumption, aux heater |
//! | [`companions`] | LiPro cell modules (measurement, thresholds, loop, balancing) and the PowerPro (switch, fuse, secondary protection) |
//!
//! Equations, parameters and sources: `docs/models.md`. Estimation from
//! measurements (the equivalent-circuit fit, the SOC tracking filter) is
//! `hil-rig`'s (`hil_rig::estimate`); it runs these models' equations
//! through [`ecm::Tables`] and [`decay::decay_factor`].

pub mod accuracy;
pub mod cell;
pub mod chain;
pub mod companions;
pub mod decay;
pub mod ecm;
pub mod error;
pub mod loads;
pub mod ocv;
pub mod pack;
pub mod profile;
pub mod rng;
pub mod switch;
pub mod table;
pub mod thermal;
pub mod transient;
pub mod variant;

pub use cell::{Cell, CellParams};
pub use chain::{ChainParams, MeasurementChain};
pub use error::ParamError;
pub use ocv::Chemistry;
pub use pack::{Pack, PackParams};
pub use rng::{ModelRng, SeedStreams};
pub use thermal::{LumpedThermal, ThermalParams};
pub use variant::Variant;
