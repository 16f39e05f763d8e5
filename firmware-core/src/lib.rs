//! The SmartPro-209 board firmware's algorithms, as they would be flashed onto
//! the board's Cortex-M4F: poll-driven, no heap, no panics, no `unsafe`.
//!
//! The firmware sees only raw ADC codes, digital inputs, time and Modbus bytes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod modbus;
pub mod time;

pub use time::{Duration, Instant};
