//! `smartpro-sim` subcommands, one file each, and the command line that
//! dispatches to them ([`Cli`]: the binary only parses and runs it).
//!
//! One convention for both binaries (`smartpro-sim` and `hil-rig`, whose
//! tests check it on both command trees): the exit codes of [`exit::Exit`],
//! listed in every subcommand's `--help` from its own table; `--out FILE`
//! where a command writes one file and `--out-dir DIR` where it writes a
//! folder (`-o` for either); `--duration <S>`; `--unit ID` for one unit and
//! `--units ID,...` for a bus of them; `-p/--port`, `-j/--jobs`; the serial
//! line's flags and their validation from [`crate::serial`]; every error on
//! stderr as `error: …` with its causes.

use clap::{Parser, Subcommand};

pub mod accuracy;
pub mod bench;
pub mod bench_bus;
pub mod ecm;
pub mod map;
pub mod run;
pub mod serve;
pub mod sweep;

/// Exit codes, shared by `smartpro-sim` and `hil-rig`: the one table of
/// what each number means. Each subcommand lists the codes it returns, and
/// when, as `&[(Exit, &str)]`; its `--help` section is [`help`] of that list.
pub mod exit {
    /// The four outcomes of a command.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Exit {
        /// Everything ran and every check passed.
        Ok = 0,
        /// It ran, and a check failed: an expectation, a datasheet figure, a comparison, the board's answers.
        Failed = 1,
        /// Bad input: arguments (clap's usage errors exit 2 too), input files, a port that cannot be opened.
        BadInput = 2,
        /// A failure while running: an output that cannot be written, a port lost.
        Runtime = 3,
    }

    impl Exit {
        /// Every code, in order.
        pub const ALL: [Exit; 4] = [Exit::Ok, Exit::Failed, Exit::BadInput, Exit::Runtime];

        /// The process exit code.
        pub const fn code(self) -> u8 {
            self as u8
        }

        /// What the code means, whichever command returns it.
        pub const fn meaning(self) -> &'static str {
            match self {
                Exit::Ok => "ok: everything ran and every check passed",
                Exit::Failed => {
                    "a check failed (an expectation, a datasheet figure, a comparison, the board's answers)"
                }
                Exit::BadInput => "bad input: arguments, input files, a port that cannot be opened",
                Exit::Runtime => "runtime failure: an output that cannot be written, a port lost",
            }
        }
    }

    /// Every scenario ran and every expectation passed.
    pub const OK: u8 = Exit::Ok.code();
    /// A scenario ran but an expectation failed.
    pub const EXPECTATION_FAILED: u8 = Exit::Failed.code();
    /// Bad input: unreadable or malformed input, bad arguments, unusable port.
    pub const BAD_INPUT: u8 = Exit::BadInput.code();
    /// A runtime failure: a port that vanished, an output that could not be written.
    pub const RUNTIME: u8 = Exit::Runtime.code();

    /// A subcommand's exit codes: each code it returns, and when.
    pub type Table = [(Exit, &'static str)];

    /// What a closed stdout prints before the binary stops with [`RUNTIME`].
    pub const CLOSED_STDOUT: &str = "error: stdout was closed (its reader ended): stopping";

    /// Makes a write to a closed stdout (`smartpro-sim serve … | head -1`) end the process
    /// with [`RUNTIME`] ("an output that cannot be written") and one line on stderr, instead of
    /// the panic `println!` raises on it (Rust ignores SIGPIPE, so the write fails with EPIPE).
    /// Every other panic keeps the default report. Called first in both binaries' `main`.
    pub fn stop_on_a_closed_stdout() {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or_default();
            let broken_pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string();
            if message.starts_with("failed printing to stdout")
                && (message.contains("os error 32") || message.contains(&broken_pipe))
            {
                eprintln!("{CLOSED_STDOUT}");
                std::process::exit(i32::from(RUNTIME));
            }
            default(info);
        }));
    }

    /// Width the help text is wrapped to.
    const WIDTH: usize = 80;
    /// Indent of a row's text (after `  N  `).
    const INDENT: usize = 5;

    /// The `Exit codes:` section of a `--help`: one row per code of `table`, wrapped.
    pub fn help(table: &[(Exit, &str)]) -> String {
        let mut s = String::from("Exit codes:");
        for (code, when) in table {
            s.push_str(&format!("\n  {}  ", code.code()));
            let mut col = INDENT;
            for (i, word) in when.split_whitespace().enumerate() {
                if i > 0 && col + 1 + word.chars().count() > WIDTH {
                    s.push('\n');
                    s.push_str(&" ".repeat(INDENT));
                    col = INDENT;
                } else if i > 0 {
                    s.push(' ');
                    col += 1;
                }
                s.push_str(word);
                col += word.chars().count();
            }
        }
        s
    }

    /// [`help`] of every code with its general meaning: the end of a binary's top-level `--help`.
    pub fn overview() -> String {
        let rows: Vec<(Exit, &'static str)> = Exit::ALL.iter().map(|e| (*e, e.meaning())).collect();
        help(&rows) + "\n\nEach subcommand's --help says exactly when it returns which."
    }

    /// The codes a `--help` text lists in its `Exit codes:` section.
    pub fn listed(help_text: &str) -> Vec<u8> {
        let Some((_, section)) = help_text.split_once("Exit codes:") else { return Vec::new() };
        section
            .lines()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter_map(|l| l.strip_prefix("  ")?.split_once("  ")?.0.parse().ok())
            .collect()
    }
}

/// The command line of `smartpro-sim`.
#[derive(Debug, Parser)]
#[command(
    name = "smartpro-sim",
    version,
    about = "Digital twin of the SmartPro-209 battery-management board",
    after_help = exit::overview()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario file or every *.toml in a directory; write trace.csv and summary.json per scenario.
    #[command(after_help = exit::help(run::EXIT_CODES))]
    Run(run::Cmd),
    /// Serve live twins as Modbus RTU slaves (pty, serial port, RTU over TCP) and/or a Modbus TCP server.
    #[command(after_help = serve::help())]
    Serve(serve::Cmd),
    /// Poll 4 twins x 10 registers over a pty as fast as possible; print transactions/s and latency.
    #[command(name = "bench-bus", after_help = exit::help(bench_bus::EXIT_CODES))]
    BenchBus(bench_bus::Cmd),
    /// Print the board's register map (md, csv or json).
    #[command(after_help = exit::help(map::EXIT_CODES))]
    Map(map::Cmd),
    /// Monte Carlo of the measurement chain over component tolerances and temperature, with production
    /// calibration, against the datasheet's accuracy table.
    #[command(after_help = exit::help(accuracy::EXIT_CODES))]
    Accuracy(accuracy::Cmd),
    /// Run an equivalent-circuit parameter set (one pack, its cell-jig thermal model) on a current profile;
    /// write the terminal voltage per profile row (comparison with PyBaMM and other ECM tools).
    #[command(after_help = exit::help(ecm::EXIT_CODES))]
    Ecm(ecm::Cmd),
    /// Run a fixed 1 h scenario as fast as possible and print the simulation speed.
    #[command(after_help = exit::help(bench::EXIT_CODES))]
    Bench(bench::Cmd),
    /// What-if study of short circuits and turn-off surges: every case of STUDY.toml (grid and/or Monte Carlo), in parallel; results.csv, summary.md, junit.xml, SVG and PNG plots.
    #[command(after_help = sweep::help())]
    Sweep(sweep::Cmd),
    /// Join the output folders of `sweep --shard K/N` runs into the outputs of one unsharded run (also `sweep merge`).
    #[command(after_help = sweep::help())]
    Merge(sweep::MergeArgs),
}

impl Cli {
    /// Runs the command; returns the process exit code.
    pub fn execute(&self) -> u8 {
        match &self.command {
            Command::Run(c) => run::execute(c),
            Command::Serve(c) => serve::execute(c),
            Command::Map(c) => map::execute(c),
            Command::Accuracy(c) => accuracy::execute(c),
            Command::Ecm(c) => ecm::execute(c),
            Command::BenchBus(c) => bench_bus::execute(c),
            Command::Bench(c) => match bench::execute(c) {
                Ok(()) => exit::OK,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    exit::RUNTIME
                }
            },
            Command::Sweep(c) => sweep::execute(c),
            Command::Merge(c) => sweep::merge(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exit::{self, Exit};
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand's help text, rendered as `--help` prints it.
    fn helps() -> Vec<(String, String)> {
        let mut root = Cli::command();
        root.build();
        root.get_subcommands_mut()
            .filter(|c| c.get_name() != "help")
            .map(|c| (c.get_name().to_owned(), c.render_long_help().to_string()))
            .collect()
    }

    /// Issue 21 (5): every subcommand's --help ends with its exit codes, in
    /// order, without repeats, always with 0 and 2 (clap's usage errors);
    /// and only those that apply: `run` opens no serial port.
    #[test]
    fn issue_21_every_subcommand_documents_its_exit_codes() {
        for (name, help) in helps() {
            let codes = exit::listed(&help);
            assert!(codes.contains(&0) && codes.contains(&2), "{name}: {codes:?} in\n{help}");
            assert!(codes.windows(2).all(|w| w[0] < w[1]), "{name}: {codes:?}");
            assert!(codes.iter().all(|c| Exit::ALL.iter().any(|e| e.code() == *c)), "{name}: {codes:?}");
        }
        let run = helps().into_iter().find(|(n, _)| n == "run").unwrap().1;
        let section = run.split_once("Exit codes:").unwrap().1.to_lowercase();
        assert!(!section.contains("serial") && !section.contains("port"), "{section}");
        let root = Cli::command().render_long_help().to_string();
        assert_eq!(exit::listed(&root), [0, 1, 2, 3]);
    }

    #[test]
    fn exit_code_help_is_wrapped_and_parsed_back() {
        let long = "word ".repeat(40);
        let text = exit::help(&[(Exit::Ok, "fine"), (Exit::Runtime, &long)]);
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(text.lines().skip(3).all(|l| l.starts_with("     word")), "{text}");
        assert_eq!(exit::listed(&text), [0, 3]);
    }
}
