//! `smartpro-sim` subcommands, one file each.

pub mod accuracy;
pub mod bench;
pub mod bench_bus;
pub mod ecm;
pub mod map;
pub mod run;
pub mod serve;
pub mod sweep;

/// Exit codes of `smartpro-sim`.
pub mod exit {
    /// Every scenario ran and every expectation passed.
    pub const OK: u8 = 0;
    /// A scenario ran but an expectation failed.
    pub const EXPECTATION_FAILED: u8 = 1;
    /// Bad input: unreadable or malformed scenario, bad arguments, unusable port.
    pub const BAD_INPUT: u8 = 2;
    /// A runtime failure: a port that vanished, an output that could not be written.
    pub const RUNTIME: u8 = 3;
}

/// Text for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0  all scenarios ran and all expectations passed\n  1  an expectation failed\n  2  bad input (scenario file, arguments, serial port that cannot be opened)\n  3  runtime failure (output not writable, serial port lost)";
