//! A session with a board, as `poll`, `record`, `compare` and `test` run
//! it: one sample of the selected registers per tick ([`Sample`]), whether
//! the session may go on after it ([`Sample::verdict`]), the CSV log of
//! physical values ([`CsvLog`]), the counters' summary at exit and Ctrl-C.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use firmware_core::map::RegDef;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

use crate::decode::{self, Block};
use crate::link::{self, Counters, Link, LinkArgs, LinkError, ReadResult};
use crate::recording;

/// Consecutive live samples without measurements after which the board is
/// taken to have fallen silent (`compare`, `test`).
pub const SILENT_SAMPLES: u32 = 3;

/// Default of `--max-skew-ms`: the most a reading of a sample may be read
/// away from the sample's reference register (the current; in `compare`
/// the uptime) and still count as of the same instant. A sample's requests
/// follow each other within a few ms on a healthy bus; a retry (a timeout, a
/// bad CRC, a busy board) takes at least 50 ms of back-off and usually a
/// timeout more.
pub const DEFAULT_MAX_SKEW_MS: u64 = 200;

/// The most board time a live value may be read away from the board's
/// uptime it is compared at (`compare`, `test`): the uptime's own resolution.
pub const MAX_BOARD_SKEW_S: f64 = 1.0;

/// How a session judges its samples: shared by `poll`, `record` and `compare`.
#[derive(clap::Args, Clone, Debug)]
#[command(next_help_heading = "Samples")]
pub struct SampleArgs {
    /// A value read more than this after (or before) its sample's reference
    /// register (the current; compare: the board's uptime) is not of the
    /// sample's instant: it is left out (an empty cell, not compared) and
    /// counted as skewed
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_MAX_SKEW_MS,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub max_skew_ms: u64,
    /// Fewer valid samples than this (poll: every register read; record: the
    /// current read; compare: a sample compared) by the end is a failure:
    /// exit 1 with the counters
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..))]
    pub min_samples: u64,
}

impl SampleArgs {
    pub fn max_skew(&self) -> Duration {
        Duration::from_millis(self.max_skew_ms)
    }

    /// `Err` with the counters when fewer than `--min-samples` of the `n`
    /// samples were valid.
    pub fn enough(&self, what: &str, valid: u64, n: u64, counters: &Counters) -> Result<(), SessionError> {
        if valid >= self.min_samples {
            return Ok(());
        }
        Err(SessionError::TooFewSamples(format!(
            "{valid} valid {what} of {n} (--min-samples {}): the bus failed too often ({})",
            self.min_samples,
            summary("samples", n, counters)
        )))
    }
}

/// Why a session cannot go on, or its log cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The first sample read nothing; the message names the likely cause.
    #[error("{0}")]
    NothingRead(String),
    /// Every request of a sample failed with an I/O error of the port itself:
    /// the adapter is gone.
    #[error("lost {port}: {source}")]
    PortLost {
        /// The serial device.
        port: String,
        /// The first request's error.
        source: io::Error,
    },
    /// Fewer valid samples than `--min-samples` (issue 17: 0 data rows in 8 s exited 0).
    #[error("{0}")]
    TooFewSamples(String),
    /// The CSV log cannot be created or written.
    #[error("cannot {action} CSV file {}: {source}", path.display())]
    Csv {
        /// `create` or `write`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: io::Error,
    },
}

/// One register's value in one poll.
#[derive(Clone, Debug, PartialEq)]
pub enum Reading {
    /// Raw integer, before scaling.
    Value(i64),
    /// Why there is no value (exception, no reply, ...).
    Failed(String),
}

impl Reading {
    /// The raw value, if it was read.
    pub fn raw(&self) -> Option<i64> {
        match self {
            Reading::Value(v) => Some(*v),
            Reading::Failed(_) => None,
        }
    }
}

/// One poll of the selected registers (a request per block) and what it read.
///
/// A sample is not one instant: its blocks are read one after the other, and
/// retries (a bad CRC, a timeout, a busy board) can put seconds between them
/// (issue 17). Each reading therefore carries the time it was read
/// ([`Sample::read_at`]): the middle of its block's successful exchange.
#[derive(Debug)]
pub struct Sample {
    results: Vec<ReadResult>,
    /// One per selected register, in the order they were given.
    pub readings: Vec<Reading>,
    /// When each reading was read (`None`: it was not).
    read_at: Vec<Option<Instant>>,
}

impl Sample {
    /// Reads every block once and picks each register's value out of its reply.
    pub async fn read<T>(link: &mut Link<T>, regs: &[&'static RegDef], blocks: &[Block]) -> Self
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let mut results = Vec::with_capacity(blocks.len());
        let mut times = Vec::with_capacity(blocks.len());
        for b in blocks {
            let r = link.read_holding(b.start, b.count).await;
            let at = match (&r, link.last_exchange()) {
                (Ok(Ok(_)), Some((sent, done))) => Some(sent + (done - sent) / 2),
                _ => None,
            };
            results.push(r);
            times.push(at);
        }
        let poll = Poll { blocks, results: &results };
        let readings: Vec<Reading> = regs.iter().map(|r| poll.reading(r)).collect();
        let read_at = regs
            .iter()
            .zip(&readings)
            .map(|(reg, reading)| {
                let k = blocks.iter().position(|b| b.regs.iter().any(|r| r.addr == reg.addr))?;
                reading.raw().and(times[k])
            })
            .collect();
        Self { results, readings, read_at }
    }

    /// When reading `k` was read: the middle of its block's exchange.
    pub fn read_at(&self, k: usize) -> Option<Instant> {
        self.read_at.get(k).copied().flatten()
    }

    /// Drops the live values ([`decode::is_live`]; `regs` are the sample's
    /// registers) read more than `max` away from reading `reference`: they
    /// belong to another instant. Returns how many. Settings and identity are
    /// kept (they do not change between requests); nothing is dropped when
    /// the reference was not read.
    pub fn drop_skewed(&mut self, regs: &[&RegDef], reference: usize, max: Duration) -> u64 {
        let Some(t_ref) = self.read_at(reference) else { return 0 };
        let mut dropped = 0;
        for ((reading, at), reg) in self.readings.iter_mut().zip(&mut self.read_at).zip(regs) {
            let Some(t) = *at else { continue };
            if !decode::is_live(reg) {
                continue;
            }
            let skew = if t > t_ref { t - t_ref } else { t_ref - t };
            if skew > max {
                *reading = Reading::Failed(format!(
                    "read {:.3} s after the sample's reference register (retries between requests): not of this instant",
                    skew.as_secs_f64()
                ));
                *at = None;
                dropped += 1;
            }
        }
        dropped
    }

    /// Whether every reading holds a value.
    pub fn complete(&self) -> bool {
        self.readings.iter().all(|r| matches!(r, Reading::Value(_)))
    }

    /// Each register's raw value, `None` where it was not read.
    pub fn raw(&self) -> Vec<Option<i64>> {
        self.readings.iter().map(Reading::raw).collect()
    }

    /// Whether the session may go on after this, its `n`-th (1-based) sample:
    /// a first sample that read nothing ([`SessionError::NothingRead`]), or a
    /// port that failed on every request ([`SessionError::PortLost`]), ends
    /// it. Later timeouts, exceptions and bad frames are only counted.
    pub fn verdict(&self, n: u64, args: &LinkArgs, blocks: &[Block]) -> Result<(), SessionError> {
        let poll = Poll { blocks, results: &self.results };
        if n == 1 && !self.readings.iter().any(|r| matches!(r, Reading::Value(_))) {
            return Err(SessionError::NothingRead(first_poll_failure(args, &poll)));
        }
        if let Some(e) = poll.port_lost() {
            return Err(SessionError::PortLost {
                port: args.port.clone(),
                source: io::Error::new(e.kind(), e.to_string()),
            });
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
fn first_poll_failure(args: &LinkArgs, poll: &Poll<'_>) -> String {
    let who = args.describe();
    let errors = poll.results.iter().filter_map(|r| r.as_ref().err());
    if let Some(source) = errors.clone().find_map(|e| match e {
        LinkError::Io { source, .. } => Some(source),
        _ => None,
    }) {
        return format!("I/O error talking to {who}: {source}");
    }
    if let Some(fault) = errors.clone().find_map(|e| match e {
        LinkError::BadFrame { fault, .. } => Some(fault),
        _ => None,
    }) {
        let hint = match fault {
            link::Fault::WrongUnit { got, .. } => {
                format!("another unit answers: is the board's unit id {got}? (--unit)")
            }
            _ => "check the baud rate, parity and stop bits".to_string(),
        };
        return format!("unusable replies from {who} ({fault}): {hint}");
    }
    let exception = poll.blocks.iter().zip(poll.results).find_map(|(b, r)| match r {
        Ok(Err(code)) => Some(link::describe_exception(*code, b.start)),
        _ => None,
    });
    if let Some(first) = exception {
        return format!("{who} answered with exceptions only (first: {first}): is it a SmartPro-209?");
    }
    format!(
        "no reply from {who} after {} tries (timeout {} ms): is the device connected and the unit id right?",
        args.tries(),
        args.timeout_ms
    )
}

/// A CSV log: one row of physical values per poll, flushed at once (`poll
/// --csv` and `record`).
#[derive(Debug)]
pub struct CsvLog {
    path: PathBuf,
    out: BufWriter<File>,
    regs: Vec<&'static RegDef>,
    /// Raw values instead of physical ones (`poll --raw`).
    raw: bool,
}

impl CsvLog {
    /// Creates (overwrites) `path` and writes `header`: the time column's
    /// name, then one name per register of `regs`.
    pub fn create(path: &Path, header: &[String], regs: &[&'static RegDef]) -> Result<Self, SessionError> {
        debug_assert_eq!(header.len(), regs.len() + 1);
        let file = File::create(path).map_err(|source| SessionError::Csv {
            action: "create",
            path: path.to_owned(),
            source,
        })?;
        let mut log = Self { path: path.to_owned(), out: BufWriter::new(file), regs: regs.to_vec(), raw: false };
        log.line(&header.join(","))?;
        Ok(log)
    }

    /// As [`CsvLog::create`], for rows of raw register values.
    pub fn create_raw(path: &Path, header: &[String], regs: &[&'static RegDef]) -> Result<Self, SessionError> {
        let mut log = Self::create(path, header, regs)?;
        log.raw = true;
        Ok(log)
    }

    /// Writes [`CsvLog::format_row`].
    pub fn row(&mut self, t_s: f64, readings: &[Reading]) -> Result<(), SessionError> {
        let line = self.format_row(t_s, readings);
        self.line(&line)
    }

    /// The time with ms resolution, then each value; a failed read is an
    /// empty cell ([`recording::format_row`]).
    pub fn format_row(&self, t_s: f64, readings: &[Reading]) -> String {
        let raws: Vec<Option<i64>> = readings.iter().map(Reading::raw).collect();
        if self.raw {
            let mut line = format!("{t_s:.3}");
            for raw in &raws {
                line.push(',');
                if let Some(v) = raw {
                    line.push_str(&v.to_string());
                }
            }
            return line;
        }
        recording::format_row(t_s, &self.regs, &raws)
    }

    /// Writes one line and flushes it to the file.
    pub fn line(&mut self, line: &str) -> Result<(), SessionError> {
        writeln!(self.out, "{line}").and_then(|()| self.out.flush()).map_err(|source| SessionError::Csv {
            action: "write",
            path: self.path.clone(),
            source,
        })
    }
}

/// `polls 3  requests 12  ...` (`what` names the count), printed at exit:
/// every class of outcome of a try ([`Counters`]).
pub fn summary(what: &str, n: u64, c: &Counters) -> String {
    format!(
        "{what} {n}  requests {}  replies {}  timeouts {}  bad crc {}  wrong unit {}  wrong function {}  \
         short frames {}  bad replies {}  busy {}  exceptions {}  io errors {}  stray bytes {}",
        c.requests,
        c.replies,
        c.timeouts,
        c.bad_crc,
        c.wrong_unit,
        c.wrong_function,
        c.short_frames,
        c.bad_content,
        c.busy,
        c.exceptions,
        c.io_errors,
        c.stray_bytes
    )
}

/// `1 register`, `3 registers`.
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Completes on Ctrl-C; never, if the signal cannot be watched.
pub async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::{REGISTERS, by_name};
    use tokio_modbus::ExceptionCode;

    use crate::decode::MAX_REGS_PER_REQUEST;

    fn regs(v: &[&str]) -> Vec<&'static RegDef> {
        v.iter().map(|n| by_name(n).unwrap()).collect()
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
    fn issue_17_live_values_read_far_from_the_reference_are_dropped_settings_kept() {
        let regs = regs(&["current_ma", "soc_ah_centipct", "capacity_dah"]);
        let t = Instant::now();
        let ms = |n: u64| Some(t + Duration::from_millis(n));
        let mut sample = Sample {
            results: Vec::new(),
            readings: vec![Reading::Value(1), Reading::Value(2), Reading::Value(3)],
            read_at: vec![ms(0), ms(600), ms(700)],
        };
        assert_eq!(sample.drop_skewed(&regs, 0, Duration::from_millis(200)), 1);
        assert_eq!(sample.readings[0], Reading::Value(1));
        assert!(matches!(&sample.readings[1], Reading::Failed(w) if w.contains("read 0.600 s after")), "{sample:?}");
        assert_eq!(sample.readings[2], Reading::Value(3), "a setting does not change between requests");
        assert_eq!(sample.read_at(1), None);
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
            first_poll_failure(&args, &poll),
            "no reply from unit 1 on /dev/pts/7 at 19200 8E1 after 3 tries (timeout 500 ms): \
             is the device connected and the unit id right?"
        );
        let results: Vec<ReadResult> = vec![Ok(Err(ExceptionCode::IllegalFunction))];
        let poll = Poll { blocks: &blocks, results: &results };
        let msg = first_poll_failure(&args, &poll);
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
        assert_eq!(text, "t_s,current_a[A],status[bits],temperature_c[°C]\n0.000,-1.234,3,\n1.000,0.005,0,-10.5\n");
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
