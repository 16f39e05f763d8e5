//! smartpro-sim's integration tests: determinism, the PyBaMM reference, serve, studies.
//!
//! One integration-test binary per crate (issue 21 item 9): each former
//! `tests/*.rs` file is a module here, so the crate's dependencies link once
//! rather than once per file. Run one module with
//! `cargo test -p smartpro-sim --test it MODULE::`.

mod closed_stdout;
mod determinism;
mod issue_4_pybamm_reference;
mod serve_common;
mod serve_faults;
mod serve_pty;
mod serve_tcp;
mod sweep_study;

/// The serve tests time replies; the heavy ones take the machine whole
/// ([`smartpro_sim::testing::machine`]).
pub use smartpro_sim::testing::machine;
