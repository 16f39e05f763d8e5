//! `smartpro-sim`: the SmartPro-209 digital twin.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use smartpro_sim::cmd;

#[derive(Debug, Parser)]
#[command(name = "smartpro-sim", version, about = "Digital twin of the SmartPro-209 battery-management board", after_help = cmd::EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file or every *.toml in a directory; write trace.csv and summary.json per scenario.
    #[command(after_help = cmd::EXIT_CODES_HELP)]
    Run(cmd::run::Cmd),
    /// Serve live twins as Modbus RTU slaves (pty, serial port, RTU over TCP) and/or a Modbus TCP server.
    #[command(after_help = cmd::serve::EXIT_CODES_HELP)]
    Serve(cmd::serve::Cmd),
    /// Poll 4 twins x 10 registers over a pty as fast as possible; print transactions/s and latency.
    #[command(name = "bench-bus", after_help = cmd::bench_bus::EXIT_CODES_HELP)]
    BenchBus(cmd::bench_bus::Cmd),
    /// Print the board's register map (md, csv or json).
    Map(cmd::map::Cmd),
    /// Monte Carlo of the measurement chain over component tolerances and temperature, with production
    /// calibration, against the datasheet's accuracy table.
    Accuracy(cmd::accuracy::Cmd),
    /// Run an equivalent-circuit parameter set (one pack, its cell-jig thermal model) on a current profile;
    /// write the terminal voltage per profile row (comparison with PyBaMM and other ECM tools).
    #[command(after_help = cmd::ecm::EXIT_CODES_HELP)]
    Ecm(cmd::ecm::Cmd),
    /// Run a fixed 1 h scenario as fast as possible and print the simulation speed.
    Bench(cmd::bench::Cmd),
    /// What-if study of short circuits and turn-off surges: every case of STUDY.toml (grid and/or Monte Carlo), in parallel; results.csv, summary.md, junit.xml, SVG and PNG plots.
    #[command(after_help = cmd::sweep::EXIT_CODES_HELP)]
    Sweep(cmd::sweep::Cmd),
    /// Join the output folders of `sweep --shard K/N` runs into the outputs of one unsharded run (also `sweep merge`).
    #[command(after_help = cmd::sweep::EXIT_CODES_HELP)]
    Merge(cmd::sweep::MergeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Run(c) => cmd::run::execute(c),
        Command::Serve(c) => cmd::serve::execute(c),
        Command::Map(c) => {
            cmd::map::execute(c);
            cmd::exit::OK
        }
        Command::Accuracy(c) => cmd::accuracy::execute(c),
        Command::Ecm(c) => cmd::ecm::execute(c),
        Command::BenchBus(c) => cmd::bench_bus::execute(c),
        Command::Bench(c) => match cmd::bench::execute(c) {
            Ok(()) => cmd::exit::OK,
            Err(e) => {
                eprintln!("error: {e:#}");
                cmd::exit::RUNTIME
            }
        },
        Command::Sweep(c) => cmd::sweep::execute(c),
        Command::Merge(c) => cmd::sweep::merge(c),
    };
    ExitCode::from(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }
}
