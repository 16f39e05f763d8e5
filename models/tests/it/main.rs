//! The models' integration tests: energy balance and the pack at table speed.
//!
//! One integration-test binary per crate (issue 21 item 9): each former
//! `tests/*.rs` file is a module here, so the crate's dependencies link once
//! rather than once per file. Run one module with
//! `cargo test -p smartpro-models --test it MODULE::`.

mod energy_balance;
mod issue_18_pack_at_table_speed;
