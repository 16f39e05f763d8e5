//! The reports every tool of the twin writes, one owner each: JUnit XML
//! ([`junit`]), XML escaping ([`xml`]) and plots in SVG and PNG ([`plot`]).
//! `smartpro-sim run` and `sweep`, `hil-rig compare` and `hil-rig test` use
//! them; what each report says stays with its command.

pub mod junit;
pub mod plot;
pub mod xml;
