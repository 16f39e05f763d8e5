//! The SmartPro twin's engine, scenario runner and Modbus server, behind the
//! `smartpro-sim` binary.

pub mod cmd;
pub mod engine;
pub mod runner;
pub mod scenario;
pub mod serve;
pub mod sweep;
pub mod tomlfile;
