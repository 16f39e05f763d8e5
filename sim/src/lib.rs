//! The SmartPro twin's engine, scenario runner and Modbus server, behind the
//! `smartpro-sim` binary.
//!
//! The library's core never imports `cmd/` (the binary's subcommands), and
//! no two of its modules import each other.

pub mod cmd;
pub mod engine;
pub mod handover;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod serial;
pub mod serve;
pub mod stimulus;
pub mod sweep;
#[doc(hidden)]
pub mod testing;
pub mod tomlfile;
