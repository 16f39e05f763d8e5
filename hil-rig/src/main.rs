//! `hil-rig`: Modbus RTU master for a physical SmartPro-209 board (or its
//! twin served by `smartpro-sim serve`), reading the register map defined once
//! in `firmware_core::map`.
//!
//! One module per subcommand in `cmd/`; a subcommand imports only the
//! library's modules (`hil_rig`: the link, decoding, the session, the twin,
//! tolerances, estimation), never another subcommand.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd {
    pub mod compare;
    pub mod fit;
    pub mod poll;
    pub mod record;
    pub mod test_plan;
}
pub use hil_rig::{decode, estimate, link, recording, session, source, tolerance, twin};

/// Shown at the end of `hil-rig --help`: the codes all subcommands share.
const ROOT_EXIT_CODES: &str = "\
Exit codes (each subcommand's --help says exactly when):
  0  ok
  1  the board answered wrongly or not at all, a check or comparison failed,
     or a fit did not converge
  2  bad usage or input (arguments, plan, recording), or the serial port
     cannot be opened
  3  runtime failure: the port was lost mid-run or a report cannot be
     written (compare, test); what was done so far is kept";

/// Shown at the end of `poll --help`.
const EXIT_CODES: &str = "\
Exit codes:
  0  ok (--count polls done, or Ctrl-C), at least --min-samples of them complete
  1  the first poll read nothing (no reply, exceptions only, garbled replies),
     the port failed while polling, or fewer than --min-samples polls (default
     1) read every register; later timeouts are counted, not fatal
  2  bad usage, or the serial port cannot be opened";

/// Shown at the end of `record --help`.
const RECORD_EXIT_CODES: &str = "\
Exit codes:
  0  ok (--duration elapsed, or Ctrl-C), at least --min-samples rows with a current
  1  the first sample read nothing (no reply, exceptions only, garbled replies),
     the port failed while recording, or fewer than --min-samples rows (default
     1) hold a current; later timeouts and CRC errors are counted and their
     cells left empty, not fatal. Rows already written are kept (each is
     flushed at once)
  2  bad usage, the serial port cannot be opened, or FILE cannot be created

A row whose current could not be read is written as a `# ` comment, which
the profile reader of `smartpro-sim run` skips (the previous current holds).";

#[derive(Parser, Debug)]
#[command(
    name = "hil-rig",
    version,
    about = "Modbus RTU master for the SmartPro-209 board and its digital twin",
    after_help = ROOT_EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read the board's registers periodically, print them, optionally log CSV
    #[command(after_help = EXIT_CODES)]
    Poll(cmd::poll::Cmd),
    /// Record a board session to CSV that `smartpro-sim run` replays as a
    /// `kind = "profile"` segment
    #[command(after_help = RECORD_EXIT_CODES)]
    Record(cmd::record::Cmd),
    /// Fit the battery's equivalent circuit (capacity, R0, RC pairs, OCV
    /// offset) to a recording; write it as a parameter file for the twin
    #[command(after_help = cmd::fit::EXIT_CODES)]
    Fit(cmd::fit::Cmd),
    /// Run the twin in lock-step with a board (live or recorded) and compare
    /// them quantity by quantity within the datasheet's tolerances
    #[command(after_help = cmd::compare::EXIT_CODES)]
    Compare(Box<cmd::compare::Cmd>),
    /// Run a TOML test plan against a board (waits, reads with limits,
    /// setting round-trips, comparisons with the twin, calibrations,
    /// commands); write an acceptance report and junit.xml
    #[command(after_help = cmd::test_plan::EXIT_CODES)]
    Test(cmd::test_plan::Cmd),
}

/// A command that failed, and the exit code that says how.
#[derive(Debug)]
pub enum Failure {
    /// No reply, or a device error while polling: exit 1.
    Device(anyhow::Error),
    /// Bad usage, or the port cannot be opened: exit 2.
    Usage(anyhow::Error),
    /// A failure while running (a vanished port, a twin that failed): exit 3.
    Runtime(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Device(_) => 1,
            Failure::Usage(_) => 2,
            Failure::Runtime(_) => 3,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Poll(cmd) => cmd.run().await,
        Command::Record(cmd) => cmd.run().await,
        Command::Fit(cmd) => cmd.run(),
        Command::Compare(cmd) => cmd.run().await,
        Command::Test(cmd) => cmd.run().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (Failure::Device(e) | Failure::Usage(e) | Failure::Runtime(e)) = &failure;
            eprintln!("hil-rig: {e:#}");
            ExitCode::from(failure.exit_code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn poll_defaults_are_19200_8e1_unit_1() {
        let cli = Cli::try_parse_from(["hil-rig", "poll", "--port", "/dev/null"]).unwrap();
        let Command::Poll(cmd) = cli.command else { panic!("not poll") };
        assert_eq!(cmd.link().describe(), "unit 1 on /dev/null at 19200 8E1");
    }

    #[test]
    fn register_lists_split_on_commas() {
        let cli = Cli::try_parse_from([
            "hil-rig",
            "poll",
            "--port",
            "p",
            "--registers",
            "status,faults",
            "--parity",
            "none",
            "--stop-bits",
            "2",
        ])
        .unwrap();
        let Command::Poll(cmd) = cli.command else { panic!("not poll") };
        assert_eq!(cmd.register_names(), ["status", "faults"]);
        assert_eq!(cmd.link().mode(), "19200 8N2");
    }

    #[test]
    fn record_takes_the_link_arguments_and_a_duration() {
        let cli = Cli::try_parse_from([
            "hil-rig",
            "record",
            "--port",
            "p",
            "--out",
            "r.csv",
            "--duration",
            "2.5",
            "--interval-ms",
            "50",
            "--unit",
            "3",
        ])
        .unwrap();
        let Command::Record(cmd) = cli.command else { panic!("not record") };
        assert_eq!(cmd.link().describe(), "unit 3 on p at 19200 8E1");
        assert!(Cli::try_parse_from(["hil-rig", "record", "--port", "p"]).is_err(), "--out is required");
        assert!(Cli::try_parse_from(["hil-rig", "record", "--port", "p", "--out", "f", "--duration", "0"]).is_err());
    }

    #[test]
    fn unit_zero_is_refused() {
        let r = Cli::try_parse_from(["hil-rig", "poll", "--port", "p", "--unit", "0"]);
        assert!(r.is_err());
    }
}
