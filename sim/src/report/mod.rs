//! The reports every tool of the twin writes, one owner each: JUnit XML
//! ([`junit`]), numbers in JSON ([`json`]), XML escaping ([`xml`]), plots in SVG and PNG ([`plot`]) and
//! a scenario run's plots ([`trace`]).
//! `smartpro-sim run` and `sweep`, `hil-rig compare` and `hil-rig test` use
//! them; what each report says stays with its command.

pub mod json;
pub mod junit;
pub mod plot;
pub mod trace;
pub mod xml;
