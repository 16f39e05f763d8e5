//! hil-rig's integration tests: the binary against a twin on a pty, fits, plans.
//!
//! One integration-test binary per crate (issue 21 item 9): each former
//! `tests/*.rs` file is a module here, so the crate's dependencies link once
//! rather than once per file. Run one module with
//! `cargo test -p hil-rig --test it MODULE::`.

mod bus_faults;
mod common;
mod compare_common;
mod compare_failures;
mod compare_replay;
mod compare_standin;
mod fit_errors;
mod fit_twin;
mod poll_pty;
mod record_pty;
mod test_plan_acceptance;
mod test_plan_errors;
