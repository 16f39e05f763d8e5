//! The SmartPro-209 board firmware's algorithms, as they would be flashed onto
//! the board's Cortex-M4F: poll-driven, no heap, no panics, no `unsafe`.
//!
//! The firmware sees only raw ADC codes, digital inputs, time and Modbus bytes.
//! [`board::Board`] is the entry point; [`map::REGISTERS`] is the register map.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod board;
pub mod counter;
pub mod diag;
pub mod map;
pub mod measure;
pub mod modbus;
pub mod nvm;
pub mod protection;
pub mod settings;
pub mod soc;
pub mod time;

pub use board::{Board, Inputs, Outputs};
pub use settings::{Settings, Variant};
pub use time::{Duration, Instant};
