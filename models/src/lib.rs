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
//! | [`ocv`] | open-circuit voltage tables (LiFePO4, NMC) |
//! | [`cell`] | one cell: OCV + R0 + R1∥C1 |
//! | [`pack`] | series string of cells with manufacturing spread |
//! | [`thermal`] | lumped thermal node |
//! | [`chain`] | shunt, amplifier, ADC, divider, NTC: what the board's ADC sees |

pub mod cell;
pub mod chain;
mod decay;
pub mod error;
pub mod ocv;
pub mod pack;
pub mod rng;
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
