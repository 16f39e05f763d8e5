//! `hil-rig poll`: read the board's registers periodically, print each poll as
//! a table, optionally log physical values to CSV.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, value_parser};
use firmware_core::map::{Access, REGISTERS, RegDef, by_name};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, interval};

use crate::Failure;
use crate::decode::{self, Block, MAX_REGS_PER_REQUEST};
use crate::link::{self, Counters, Link, LinkArgs, LinkError, ReadResult};
use crate::recording;

/// Width of the value column of the table.
const VALUE_WIDTH: usize = 14;

#[derive(Args, Debug)]
pub struct Cmd {
    /// Time from the start of one poll to the start of the next
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = value_parser!(u64).range(1..))]
    interval_ms: u64,
    /// Poll this many times, then exit (default: until Ctrl-C)
    #[arg(long, value_name = "K", value_parser = value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Also write every poll to FILE as a CSV row of physical values
    /// (header `t_s,<name>[<unit>],...` with physical values; FILE is overwritten)
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Read only these registers (comma-separated names from the register map;
    /// default: every readable register)
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    registers: Vec<String>,

    #[command(flatten)]
    link: LinkArgs,
}

impl Cmd {
    #[cfg(test)]
    pub fn link(&self) -> &LinkArgs {
        &self.link
    }

    #[cfg(test)]
    pub fn register_names(&self) -> &[String] {
        &self.registers
    }

    pub async fn run(self) -> Result<(), Failure> {
        let regs = select(&self.registers)?;
        let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
        let mut csv = match &self.csv {
            Some(path) => {
                let header: Vec<String> =
                    std::iter::once("t_s".to_string()).chain(regs.iter().map(|r| decode::column_name(r))).collect();
                Some(CsvLog::create(path, &header, &regs).map_err(Failure::Usage)?)
            }
            None => None,
        };
        let mut link = Link::open(&self.link).map_err(|e| Failure::Usage(e.into()))?;
        println!(
            "polling {}: {} in {}, every {} ms",
            self.link.describe(),
            plural(regs.len(), "register"),
            plural(blocks.len(), "request"),
            self.interval_ms
        );

        let mut polls = 0;
        let mut stdout = io::stdout();
        let outcome = tokio::select! {
            r = self.poll_loop(&mut link, &regs, &blocks, csv.as_mut(), &mut stdout, &mut polls) => r,
            () = interrupted() => Ok(()),
        };
        println!("{}", summary("polls", polls, &link.counters()));
        outcome
    }

    /// Polls until `--count` is reached or the device fails (see [`Failure`]).
    async fn poll_loop<T>(
        &self,
        link: &mut Link<T>,
        regs: &[&'static RegDef],
        blocks: &[Block],
        mut csv: Option<&mut CsvLog>,
        out: &mut impl Write,
        polls: &mut u64,
    ) -> Result<(), Failure>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut ticker = interval(Duration::from_millis(self.interval_ms));
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let t0 = Instant::now();
        while self.count.is_none_or(|k| *polls < k) {
            ticker.tick().await;
            let t_s = t0.elapsed().as_secs_f64();
            let sample = Sample::read(link, regs, blocks).await;
            *polls += 1;

            write_table(out, *polls, t_s, regs, &sample.readings)
                .map_err(|e| Failure::Device(anyhow!("cannot write to stdout: {e}")))?;
            if let Some(csv) = csv.as_deref_mut() {
                csv.row(t_s, &sample.readings).map_err(Failure::Device)?;
            }
            sample.verdict(*polls, &self.link, blocks)?;
        }
        Ok(())
    }
}

/// Resolves `--registers` names; none means every readable register.
fn select(names: &[String]) -> Result<Vec<&'static RegDef>, Failure> {
    let readable = decode::readable(REGISTERS);
    if names.iter().all(|n| n.trim().is_empty()) {
        return Ok(readable);
    }
    let valid = || readable.iter().map(|r| r.name).collect::<Vec<_>>().join(", ");
    let mut out: Vec<&'static RegDef> = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match by_name(name) {
            Some(r) if r.access == Access::W => {
                return Err(Failure::Usage(anyhow!(
                    "{name} is a write-only command register and reads as 0; readable registers: {}",
                    valid()
                )));
            }
            Some(r) => {
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(r);
                }
            }
            None => {
                return Err(Failure::Usage(anyhow!("unknown register {name:?}; valid names: {}", valid())));
            }
        }
    }
    Ok(out)
}

/// One register's value in one poll.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reading {
    /// Raw integer, before scaling.
    Value(i64),
    /// Why there is no value (exception, no reply, ...).
    Failed(String),
}

/// One poll of the selected registers (a request per block) and what it read;
/// shared by `poll` and `record`.
#[derive(Debug)]
pub(crate) struct Sample {
    results: Vec<ReadResult>,
    /// One per selected register, in the order they were given.
    pub(crate) readings: Vec<Reading>,
}

impl Sample {
    /// Reads every block once and picks each register's value out of its reply.
    pub(crate) async fn read<T>(link: &mut Link<T>, regs: &[&'static RegDef], blocks: &[Block]) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut results = Vec::with_capacity(blocks.len());
        for b in blocks {
            results.push(link.read_holding(b.start, b.count).await);
        }
        let poll = Poll { blocks, results: &results };
        let readings = regs.iter().map(|r| poll.reading(r)).collect();
        Self { results, readings }
    }

    /// Whether the session may go on after this, its `n`-th (1-based) sample:
    /// a first sample that read nothing, or a port that failed on every
    /// request, ends it with [`Failure::Device`] (exit 1). Later timeouts,
    /// exceptions and bad frames are only counted.
    pub(crate) fn verdict(&self, n: u64, args: &LinkArgs, blocks: &[Block]) -> Result<(), Failure> {
        let poll = Poll { blocks, results: &self.results };
        if n == 1 && !self.readings.iter().any(|r| matches!(r, Reading::Value(_))) {
            return Err(Failure::Device(first_poll_failure(args, &poll)));
        }
        if let Some(e) = poll.port_lost() {
            return Err(Failure::Device(anyhow!("lost {}: {e}", args.port)));
        }
        Ok(())
    }
}

/// The replies of one poll, one per block.
struct Poll<'a> {
    blocks: &'a [Block],
    results: &'a [ReadResult],
}

impl Poll<'_> {
    fn reading(&self, reg: &RegDef) -> Reading {
        let found = self.blocks.iter().zip(self.results).find(|(b, _)| b.regs.iter().any(|r| r.addr == reg.addr));
        match found {
            Some((b, Ok(Ok(words)))) => match b.words_of(reg, words) {
                Some(w) => Reading::Value(reg.ty.decode(w)),
                None => Reading::Failed("short reply".into()),
            },
            Some((b, Ok(Err(code)))) => Reading::Failed(link::describe_exception(*code, b.start)),
            Some((_, Err(e))) => Reading::Failed(e.to_string()),
            None => Reading::Failed("not read".into()),
        }
    }

    /// An I/O error of the port itself on every request: the adapter is gone.
    fn port_lost(&self) -> Option<&io::Error> {
        let mut first = None;
        for r in self.results {
            match r {
                Err(LinkError::Io { source, .. }) => {
                    first.get_or_insert(source);
                }
                _ => return None,
            }
        }
        first
    }
}

/// Why the first poll read nothing, with a hint at the likely cause.
fn first_poll_failure(args: &LinkArgs, poll: &Poll<'_>) -> anyhow::Error {
    let who = args.describe();
    let errors = poll.results.iter().filter_map(|r| r.as_ref().err());
    if let Some(source) = errors.clone().find_map(|e| match e {
        LinkError::Io { source, .. } => Some(source),
        _ => None,
    }) {
        return anyhow!("I/O error talking to {who}: {source}");
    }
    if let Some(message) = errors.clone().find_map(|e| match e {
        LinkError::BadFrame { message, .. } => Some(message),
        _ => None,
    }) {
        return anyhow!("unusable replies from {who} ({message}): check the baud rate, parity and stop bits");
    }
    let exception = poll.blocks.iter().zip(poll.results).find_map(|(b, r)| match r {
        Ok(Err(code)) => Some(link::describe_exception(*code, b.start)),
        _ => None,
    });
    if let Some(first) = exception {
        return anyhow!("{who} answered with exceptions only (first: {first}): is it a SmartPro-209?");
    }
    anyhow!(
        "no reply from {who} after {} tries (timeout {} ms): is the device connected and the unit id right?",
        args.tries(),
        args.timeout_ms
    )
}

/// One poll as a table: name, physical value, unit, set bits.
fn write_table(
    out: &mut impl Write,
    poll_no: u64,
    t_s: f64,
    regs: &[&'static RegDef],
    readings: &[Reading],
) -> io::Result<()> {
    let name_w = regs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    writeln!(out, "poll {poll_no}  t={t_s:.3} s")?;
    for (reg, reading) in regs.iter().zip(readings) {
        let name = reg.name;
        match reading {
            Reading::Value(raw) => match decode::bit_table(reg) {
                Some(names) => {
                    let bits = decode::bit_names(*raw as u16, names).join(" ");
                    let hex = format!("0x{:04X}", *raw as u16);
                    let line = format!("  {name:<name_w$}  {hex:>VALUE_WIDTH$} {}  {bits}", reg.unit);
                    writeln!(out, "{}", line.trim_end())?;
                }
                None => {
                    let v = decode::format_value(reg, *raw);
                    let line = format!("  {name:<name_w$}  {v:>VALUE_WIDTH$} {}", reg.unit);
                    writeln!(out, "{}", line.trim_end())?;
                }
            },
            Reading::Failed(why) => writeln!(out, "  {name:<name_w$}  {why}")?,
        }
    }
    out.flush()
}

/// A CSV log: one row of physical values per poll, flushed at once (shared
/// by `poll --csv` and `record`).
#[derive(Debug)]
pub(crate) struct CsvLog {
    path: PathBuf,
    out: BufWriter<File>,
    regs: Vec<&'static RegDef>,
}

impl CsvLog {
    /// Creates (overwrites) `path` and writes `header`: the time column's
    /// name, then one name per register of `regs`.
    pub(crate) fn create(path: &Path, header: &[String], regs: &[&'static RegDef]) -> anyhow::Result<Self> {
        debug_assert_eq!(header.len(), regs.len() + 1);
        let file = File::create(path).map_err(|e| anyhow!("cannot create CSV file {}: {e}", path.display()))?;
        let mut log = Self { path: path.to_owned(), out: BufWriter::new(file), regs: regs.to_vec() };
        log.line(&header.join(","))?;
        Ok(log)
    }

    /// Writes [`CsvLog::format_row`].
    pub(crate) fn row(&mut self, t_s: f64, readings: &[Reading]) -> anyhow::Result<()> {
        let line = self.format_row(t_s, readings);
        self.line(&line)
    }

    /// The time with ms resolution, then each value; a failed read is an
    /// empty cell ([`recording::format_row`]).
    pub(crate) fn format_row(&self, t_s: f64, readings: &[Reading]) -> String {
        let raws: Vec<Option<i64>> = readings
            .iter()
            .map(|r| match r {
                Reading::Value(raw) => Some(*raw),
                Reading::Failed(_) => None,
            })
            .collect();
        recording::format_row(t_s, &self.regs, &raws)
    }

    /// Writes one line and flushes it to the file.
    pub(crate) fn line(&mut self, line: &str) -> anyhow::Result<()> {
        writeln!(self.out, "{line}")
            .and_then(|()| self.out.flush())
            .map_err(|e| anyhow!("cannot write CSV file {}: {e}", self.path.display()))
    }
}

/// `polls 3  requests 12  ...` (`what` names the count), printed at exit.
pub(crate) fn summary(what: &str, n: u64, c: &Counters) -> String {
    format!(
        "{what} {n}  requests {}  replies {}  timeouts {}  exceptions {}  io errors {}  bad frames {}  stray bytes {}",
        c.requests, c.replies, c.timeouts, c.exceptions, c.io_errors, c.bad_frames, c.stray_bytes
    )
}

pub(crate) fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Completes on Ctrl-C; never, if the signal cannot be watched.
pub(crate) async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_modbus::ExceptionCode;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_names_selects_every_readable_register() {
        let all = select(&[]).unwrap();
        assert_eq!(all.len(), REGISTERS.iter().filter(|r| r.access != Access::W).count());
    }

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let Err(Failure::Usage(e)) = select(&names(&["battery_voltage_mv", "volts"])) else {
            panic!("expected a usage error");
        };
        let msg = e.to_string();
        assert!(msg.contains("\"volts\""), "{msg}");
        assert!(msg.contains("current_ma") && msg.contains("faults"), "{msg}");
        assert!(!msg.contains("clear_faults"), "write-only names are not offered: {msg}");
    }

    #[test]
    fn write_only_names_are_refused_and_duplicates_dropped() {
        assert!(matches!(select(&names(&["clear_faults"])), Err(Failure::Usage(_))));
        let sel = select(&names(&["status", " status", "faults"])).unwrap();
        let got: Vec<&str> = sel.iter().map(|r| r.name).collect();
        assert_eq!(got, ["status", "faults"]);
    }

    fn regs(v: &[&str]) -> Vec<&'static RegDef> {
        v.iter().map(|n| by_name(n).unwrap()).collect()
    }

    #[test]
    fn table_shows_scaled_values_units_and_bit_names() {
        let regs = regs(&["battery_voltage_mv", "current_ma", "status", "faults", "uptime_s"]);
        let readings = [
            Reading::Value(13284),
            Reading::Value(-1234),
            Reading::Value(0b100011),
            Reading::Value(0),
            Reading::Failed("no reply after 3 tries (timeout 500 ms)".into()),
        ];
        let mut out = Vec::new();
        write_table(&mut out, 7, 6.0004, &regs, &readings).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "poll 7  t=6.000 s");
        assert_eq!(lines[1], "  battery_voltage_mv          13.284 V");
        assert_eq!(lines[2], "  current_ma                  -1.234 A");
        assert_eq!(lines[3], "  status                      0x0023 bits  switch_on lvp_output soc_synced");
        assert_eq!(lines[4], "  faults                      0x0000 bits");
        assert_eq!(lines[5], "  uptime_s            no reply after 3 tries (timeout 500 ms)");
    }

    #[test]
    fn readings_come_from_their_block_and_exceptions_name_the_address() {
        let regs = regs(&["battery_voltage_mv", "current_ma", "serial_number"]);
        let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
        assert_eq!(blocks.len(), 2);
        let results: Vec<ReadResult> =
            vec![Ok(Err(ExceptionCode::IllegalDataAddress)), Ok(Ok(vec![13284, 0xFFFF, 0xFB2E]))];
        let poll = Poll { blocks: &blocks, results: &results };
        assert_eq!(poll.reading(regs[0]), Reading::Value(13284));
        assert_eq!(poll.reading(regs[1]), Reading::Value(-1234));
        assert_eq!(poll.reading(regs[2]), Reading::Failed("exception 02 illegal data address at 0x0003".into()));
        assert!(poll.port_lost().is_none());
    }

    #[test]
    fn first_poll_messages_name_unit_port_and_line() {
        let args = LinkArgs {
            port: "/dev/pts/7".into(),
            baud: 19_200,
            parity: link::Parity::Even,
            stop_bits: 1,
            unit: 1,
            timeout_ms: 500,
            retries: 2,
        };
        let blocks = decode::plan(REGISTERS, &regs(&["status"]), MAX_REGS_PER_REQUEST);
        let results: Vec<ReadResult> = vec![Err(LinkError::NoReply { tries: 3, timeout_ms: 500 })];
        let poll = Poll { blocks: &blocks, results: &results };
        assert_eq!(
            first_poll_failure(&args, &poll).to_string(),
            "no reply from unit 1 on /dev/pts/7 at 19200 8E1 after 3 tries (timeout 500 ms): \
             is the device connected and the unit id right?"
        );
        let results: Vec<ReadResult> = vec![Ok(Err(ExceptionCode::IllegalFunction))];
        let poll = Poll { blocks: &blocks, results: &results };
        let msg = first_poll_failure(&args, &poll).to_string();
        assert!(msg.contains("exception 01 illegal function at 0x0105"), "{msg}");
    }

    #[test]
    fn csv_rows_hold_physical_values_and_empty_cells_for_failures() {
        let dir = std::env::temp_dir().join(format!("hil-rig-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("poll.csv");
        let regs = regs(&["current_ma", "status", "temperature_dc"]);
        let header: Vec<String> =
            ["t_s".to_string()].into_iter().chain(regs.iter().map(|r| decode::column_name(r))).collect();
        let mut log = CsvLog::create(&path, &header, &regs).unwrap();
        log.row(0.0, &[Reading::Value(-1234), Reading::Value(3), Reading::Failed("x".into())]).unwrap();
        log.row(1.0004, &[Reading::Value(5), Reading::Value(0), Reading::Value(-105)]).unwrap();
        // Flushed after each row: readable before the log is dropped.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "t_s,current_ma[A],status[bits],temperature_dc[°C]\n0.000,-1.234,3,\n1.000,0.005,0,-10.5\n");
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
