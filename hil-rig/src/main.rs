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

use exit::Exit;
/// The exit codes (one table for `smartpro-sim` and `hil-rig`); each
/// subcommand lists its own in `cmd::<name>::EXIT_CODES`.
pub(crate) use smartpro_sim::cmd::exit;

#[derive(Parser, Debug)]
#[command(
    name = "hil-rig",
    version,
    about = "Modbus RTU master for the SmartPro-209 board and its digital twin",
    after_help = exit::overview(),
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read the board's registers periodically, print them, optionally log CSV
    #[command(after_help = exit::help(cmd::poll::EXIT_CODES))]
    Poll(cmd::poll::Cmd),
    /// Record a board session to CSV that `smartpro-sim run` replays as a
    /// `kind = "profile"` segment
    #[command(after_help = cmd::record::help())]
    Record(cmd::record::Cmd),
    /// Fit the battery's equivalent circuit (capacity, R0, RC pairs, OCV
    /// offset) to a recording; write it as a parameter file for the twin
    #[command(after_help = exit::help(cmd::fit::EXIT_CODES))]
    Fit(cmd::fit::Cmd),
    /// Run the twin in lock-step with a board (live or recorded) and compare
    /// them quantity by quantity within the datasheet's tolerances
    #[command(after_help = exit::help(cmd::compare::EXIT_CODES))]
    Compare(Box<cmd::compare::Cmd>),
    /// Run a TOML test plan against a board (waits, reads with limits,
    /// setting round-trips, comparisons with the twin, calibrations,
    /// commands); write an acceptance report and junit.xml
    #[command(after_help = cmd::test_plan::help())]
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
            Failure::Device(_) => Exit::Failed,
            Failure::Usage(_) => Exit::BadInput,
            Failure::Runtime(_) => Exit::Runtime,
        }
        .code()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    exit::stop_on_a_closed_stdout();
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
            // As smartpro-sim: `error: ` and the causes after it.
            eprintln!("error: {e:#}");
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

    /// Every subcommand of both binaries, with its path (`smartpro-sim sweep merge`).
    fn subcommands() -> Vec<(String, clap::Command)> {
        fn walk(prefix: &str, c: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{prefix} {}", sub.get_name());
                out.push((path.clone(), sub.clone()));
                walk(&path, sub, out);
            }
        }
        let mut out = Vec::new();
        for mut root in [Cli::command(), smartpro_sim::cmd::Cli::command()] {
            root.build();
            walk(root.get_name(), &root, &mut out);
        }
        out
    }

    /// Issue 21 (5): every subcommand's --help ends with the exit codes it
    /// returns (from the shared table: known codes, in order, 0 and 2 always).
    #[test]
    fn issue_21_every_subcommand_documents_its_exit_codes() {
        for (path, mut c) in subcommands() {
            let help = c.render_long_help().to_string();
            let codes = exit::listed(&help);
            assert!(codes.contains(&0) && codes.contains(&2), "{path}: {codes:?}\n{help}");
            assert!(codes.windows(2).all(|w| w[0] < w[1]), "{path}: {codes:?}");
            assert!(codes.iter().all(|c| Exit::ALL.iter().any(|e| e.code() == *c)), "{path}: {codes:?}");
        }
        assert_eq!(exit::listed(&Cli::command().render_long_help().to_string()), [0, 1, 2, 3]);
    }

    /// Issue 21 (5): one convention across `smartpro-sim` and `hil-rig`. A
    /// long flag means one thing everywhere (the same value name and short
    /// flag), a short flag one long flag; `--out` is a FILE, a folder is
    /// `--out-dir DIR`, and either has `-o`; `*-ms` flags take MS, `*-s` and
    /// `--duration` take S; the old spellings (`--seconds`, `--out` for a
    /// folder) are hidden aliases only.
    #[test]
    fn issue_21_flags_follow_one_convention_in_both_binaries() {
        use std::collections::BTreeMap;
        let mut by_long: BTreeMap<String, (Vec<String>, Option<char>, String)> = BTreeMap::new();
        let mut by_short: BTreeMap<char, (String, String)> = BTreeMap::new();
        let mut differ = Vec::new();
        for (path, c) in subcommands() {
            let mut outputs = 0;
            for a in c.get_arguments() {
                let Some(long) = a.get_long() else { continue };
                if long == "help" || long == "version" {
                    continue;
                }
                let values: Vec<String> =
                    a.get_value_names().into_iter().flatten().map(|v| v.as_str().to_owned()).collect();
                let takes_value = a.get_num_args().is_some_and(|n| n.takes_values());
                let here = format!("{path} --{long}");
                if let Some((v0, s0, at)) = by_long.get(long) {
                    if (v0, s0) != (&values, &a.get_short()) {
                        differ.push(format!("{here} {values:?} {:?} differs from {at} {v0:?} {s0:?}", a.get_short()));
                    }
                } else {
                    by_long.insert(long.to_owned(), (values.clone(), a.get_short(), here.clone()));
                }
                // -o is --out or --out-dir, whichever the command writes.
                if let Some(short) = a.get_short().filter(|&s| s != 'o') {
                    let (l0, at) = by_short.entry(short).or_insert((long.to_owned(), here.clone()));
                    assert_eq!(l0, long, "-{short}: {here} and {at}");
                }
                if takes_value && (long.ends_with("-ms") || long.ends_with("-s") || long == "duration") {
                    let want = if long.ends_with("-ms") { "MS" } else { "S" };
                    assert_eq!(values, [want], "{here}");
                }
                match long {
                    "out" => assert_eq!(values, ["FILE"], "{here}"),
                    "out-dir" => assert_eq!(values, ["DIR"], "{here}"),
                    "seconds" => panic!("{here}: the duration is --duration"),
                    _ => {}
                }
                if long == "out" || long == "out-dir" {
                    outputs += 1;
                    assert_eq!(a.get_short(), Some('o'), "{here}");
                }
                let visible: Vec<&str> = a.get_visible_aliases().unwrap_or_default();
                assert!(!visible.contains(&"out") && !visible.contains(&"seconds"), "{here}: {visible:?}");
            }
            assert!(outputs <= 1, "{path}: both --out and --out-dir");
        }
        assert!(differ.is_empty(), "{differ:#?}");
        for (long, short) in [("port", 'p'), ("jobs", 'j')] {
            assert_eq!(by_long.get(long).map(|v| v.1), Some(Some(short)), "--{long}");
        }
    }

    /// Issue 21 (5): the old spellings still parse (scripts), and `test
    /// --check`'s usage asks for no port.
    #[test]
    fn issue_21_old_spellings_parse_and_test_check_needs_no_port() {
        let cli = Cli::try_parse_from(["hil-rig", "compare", "--recording", "r.csv", "--out", "d"]).unwrap();
        assert!(matches!(cli.command, Command::Compare(_)));
        let cli = Cli::try_parse_from(["hil-rig", "test", "p.toml", "-o", "d", "-p", "/dev/ttyUSB0"]).unwrap();
        let Command::Test(t) = cli.command else { panic!("not test") };
        assert_eq!(t.link().map(|l| l.port.as_str()), Some("/dev/ttyUSB0"));
        assert!(Cli::try_parse_from(["hil-rig", "test", "p.toml", "--check"]).is_ok());
        // `export HIL_RIG_PORT=…` as docs/hil-rig.md suggests, then a check: no conflict.
        assert!(Cli::try_parse_from(["hil-rig", "test", "p.toml", "--check", "--port", "/dev/ttyUSB0"]).is_ok());
        let mut root = Cli::command();
        root.build();
        let usage = root.find_subcommand_mut("test").unwrap().render_usage().to_string();
        let check_line = usage.lines().find(|l| l.contains("--check")).unwrap();
        assert!(!check_line.contains("--port"), "{usage}");
        for args in [
            &["smartpro-sim", "bench-bus", "--seconds", "5", "--units", "2"][..],
            &["smartpro-sim", "run", "scenarios/", "--out", "o"],
            &["smartpro-sim", "sweep", "s.toml", "--out", "o", "-j", "2"],
        ] {
            smartpro_sim::cmd::Cli::try_parse_from(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
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
