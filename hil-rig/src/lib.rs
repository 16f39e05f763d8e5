//! `hil-rig` as a library: what the `hil-rig` binary's subcommands share,
//! and what its tests use. No module here imports a subcommand (`cmd/` is
//! the binary's).
//!
//! | module | job |
//! |---|---|
//! | [`link`] | the serial link to one board: port settings, timed requests, retries |
//! | [`decode`] | request planning over the register map, value formatting |
//! | [`session`] | one sample of the registers per tick, when a session ends, the CSV log |
//! | [`recording`] | the recording format of `record` (columns, rows, reading it back) |
//! | [`source`] | the board's samples for a comparison: live or from a recording |
//! | [`twin`] | `smartpro_sim`'s engine stepped in lock-step with a board |
//! | [`tolerance`] | board-vs-twin tolerances: the datasheet's, or from a file |
//! | [`estimate`] | the equivalent-circuit fit, its least-squares solver, the SOC tracking filter |

pub mod decode;
pub mod estimate;
pub mod link;
pub mod recording;
pub mod session;
pub mod source;
pub mod tolerance;
pub mod twin;
