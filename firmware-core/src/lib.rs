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

/// A deliberate panic path (features `prove-panic-nvm`, `prove-panic-pdu`): a
/// bounds check on an index the compiler cannot see (it is 0: nothing panics at
/// run time), so firmware-image's link-time no-panic check must fail the link
/// wherever this is called from a path the image reaches.
#[cfg(any(feature = "prove-panic-nvm", feature = "prove-panic-pdu"))]
#[inline(always)]
fn prove_panic_path() {
    let probe = [0u8; 2];
    core::hint::black_box(probe[core::hint::black_box(0usize)]);
}
