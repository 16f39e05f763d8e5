//! `hil-rig`: Modbus RTU master for a physical SmartPro-209 board (or its
//! twin served by `smartpro-sim serve`), reading the register map defined once
//! in `firmware_core::map`.
//!
//! One file per subcommand in `cmd/`; `link` is the serial link (port,
//! timed requests, retries); `decode` plans requests and formats values.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd {
    pub mod poll;
}
mod decode;
mod link;

/// Shown at the end of `--help` of every command.
const EXIT_CODES: &str = "\
Exit codes:
  0  ok (--count polls done, or Ctrl-C)
  1  the first poll read nothing (no reply, exceptions only, garbled replies),
     or the port failed while polling; later timeouts are counted, not fatal
  2  bad usage, or the serial port cannot be opened";

#[derive(Parser, Debug)]
#[command(
    name = "hil-rig",
    version,
    about = "Modbus RTU master for the SmartPro-209 board and its digital twin",
    after_help = EXIT_CODES,
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
}

/// A command that failed, and the exit code that says how.
#[derive(Debug)]
pub enum Failure {
    /// No reply, or a device error while polling: exit 1.
    Device(anyhow::Error),
    /// Bad usage, or the port cannot be opened: exit 2.
    Usage(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Device(_) => 1,
            Failure::Usage(_) => 2,
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Poll(cmd) => cmd.run().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (Failure::Device(e) | Failure::Usage(e)) = &failure;
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
        let Command::Poll(cmd) = cli.command;
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
        let Command::Poll(cmd) = cli.command;
        assert_eq!(cmd.register_names(), ["status", "faults"]);
        assert_eq!(cmd.link().mode(), "19200 8N2");
    }

    #[test]
    fn unit_zero_is_refused() {
        let r = Cli::try_parse_from(["hil-rig", "poll", "--port", "p", "--unit", "0"]);
        assert!(r.is_err());
    }
}
