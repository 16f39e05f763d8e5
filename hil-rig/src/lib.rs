//! `hil-rig` as a library: the serial link to a board, the register
//! decoding and the recording format, shared by the `hil-rig` binary's
//! subcommands and by its tests.

pub mod decode;
pub mod link;
pub mod recording;
