//! `smartpro-sim`: the SmartPro-209 digital twin. The command line and its
//! dispatch are [`smartpro_sim::cmd::Cli`].

use std::process::ExitCode;

use clap::Parser;
use smartpro_sim::cmd::Cli;

fn main() -> ExitCode {
    smartpro_sim::cmd::exit::stop_on_a_closed_stdout();
    ExitCode::from(Cli::parse().execute())
}
