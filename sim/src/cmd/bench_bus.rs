//! `smartpro-sim bench-bus`: a Modbus RTU master polling several twins over a
//! pty as fast as the protocol allows, for a fixed time; prints transactions/s,
//! latency percentiles and missed responses (and, with `--line-timing`, the
//! throughput against the line-rate limit of the request mix).
//!
//! The master runs on a thread of its own with blocking I/O and the operating
//! system's sleep, so its own timing (the 3.5-character gap it leaves between
//! a reply and the next request) is precise to well under a character time.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use firmware_core::modbus::frame::{Frame, emit_frame};
use firmware_core::modbus::rtu::RtuConfig;
use tokio_serial::SerialPort;

use super::exit;
use crate::scenario::Scenario;
use crate::serve::{Options, RtuLine, Transports};

/// Exit codes of `bench-bus`, for `--help`.
pub const EXIT_CODES_HELP: &str = "Exit codes:\n  0  every response arrived\n  1  a response was missed or malformed\n  2  bad arguments\n  3  runtime failure (pty, server)";

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// How long to poll, wall-clock seconds.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Units on the bus (ids 1..=N), polled in turn.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub units: u8,
    /// Holding registers per read (FC03).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=125))]
    pub registers: u16,
    /// First register read.
    #[arg(long, default_value_t = 0x0100)]
    pub address: u16,
    /// Pace the line at the baud rate, as a real RS-485 line would.
    #[arg(long)]
    pub line_timing: bool,
    /// Baud rate (8E1).
    #[arg(long, default_value_t = 19_200, value_parser = clap::value_parser!(u32).range(300..=4_000_000))]
    pub baud: u32,
    /// Polls per second per unit; 0: as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// A reply not complete after this many ms is missed.
    #[arg(long, default_value_t = 200)]
    pub timeout_ms: u64,
}

/// What the master measured.
#[derive(Debug, Default)]
pub struct Stats {
    pub transactions: u64,
    pub missed: u64,
    pub bad: u64,
    pub latencies_us: Vec<u64>,
    pub wall_s: f64,
}

pub fn execute(cmd: &Cmd) -> u8 {
    if !(cmd.seconds.is_finite() && cmd.seconds > 0.0 && cmd.rate.is_finite() && cmd.rate >= 0.0) {
        eprintln!("error: --seconds must be positive and --rate non-negative");
        return exit::BAD_INPUT;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::RUNTIME;
        }
    };
    match rt.block_on(run(cmd)) {
        Ok(0) => exit::OK,
        Ok(_) => exit::EXPECTATION_FAILED,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::RUNTIME
        }
    }
}

/// Returns the number of missed or bad responses.
async fn run(cmd: &Cmd) -> anyhow::Result<u64> {
    let scenario = Scenario::parse(super::serve::IDLE_SCENARIO, Path::new("<idle>"))?;
    let units: Vec<u8> = (1..=cmd.units).collect();
    let mut opts = Options::new(units.clone());
    opts.line = RtuConfig { baud: cmd.baud, ..RtuConfig::default() };
    opts.line_timing = cmd.line_timing;
    let line = opts.line;
    let (master, slave) = tokio_serial::SerialStream::pair()?;
    let path = slave.name().unwrap_or_default();
    let rss_start = rss_kib();
    println!(
        "bench-bus: {} units x {} registers (FC03 @ 0x{:04x}) over {path}, {} 8E1, line timing {}, {} s",
        cmd.units,
        cmd.registers,
        cmd.address,
        cmd.baud,
        if cmd.line_timing { "on" } else { "off" },
        cmd.seconds
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let transports = Transports { rtu: Some(RtuLine::Stream(Box::new(master))), tcp: None };
    let server = crate::serve::serve(&scenario, &opts, transports, async {
        let _ = stop_rx.await;
    });
    let client = {
        let (path, seconds, registers, address, rate, timeout) =
            (path.clone(), cmd.seconds, cmd.registers, cmd.address, cmd.rate, Duration::from_millis(cmd.timeout_ms));
        tokio::task::spawn_blocking(move || poll(&path, &units, line, registers, address, rate, seconds, timeout))
    };
    tokio::pin!(server);
    let stats = tokio::select! {
        r = &mut server => {
            let e = match r { Ok(_) => "stopped".to_owned(), Err((e, _)) => e.to_string() };
            anyhow::bail!("the server ended before the master: {e}");
        }
        c = client => c??,
    };
    let _ = stop_tx.send(());
    let report = server.await.map_err(|(e, _)| anyhow::anyhow!("server: {e}"))?;
    drop(slave);

    let mut l = stats.latencies_us.clone();
    l.sort_unstable();
    let pct = |p: f64| l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0) as f64 / 1000.0;
    let tps = stats.transactions as f64 / stats.wall_s;
    println!("transactions: {} in {:.2} s", stats.transactions, stats.wall_s);
    println!("transactions_per_s: {tps:.1}");
    println!("latency_ms: p50 {:.3}  p99 {:.3}  max {:.3}", pct(0.5), pct(0.99), pct(1.0));
    println!("missed_responses: {}", stats.missed + stats.bad);
    let req = 8.0;
    let resp = 5.0 + 2.0 * f64::from(cmd.registers);
    let ct = line.char_time().0 as f64 * 1e-9;
    let per_tx = (req + resp) * ct + 2.0 * line.t3_5().0 as f64 * 1e-9;
    let limit = 1.0 / per_tx;
    println!(
        "line_rate_limit_per_s: {limit:.1} ({} + {} bytes at {} baud 8E1 + 2 x t3.5 per transaction)",
        req, resp, cmd.baud
    );
    if cmd.line_timing {
        println!("throughput_vs_line_limit: {:.1} %", 100.0 * tps / limit);
    } else {
        println!("(no line timing: the pty moves bytes instantly; the slaves still wait t3.5 before answering)");
    }
    if let (Some(a), Some(b)) = (rss_start, rss_kib()) {
        println!("rss_kib: start {a}, end {b}");
    }
    let served: u64 = report.replies();
    println!("server: {served} replies, {} frames, {} replies not sent", report.frames, report.replies_not_sent);
    Ok(stats.missed + stats.bad)
}

/// The master: polls `units` in turn for `seconds`.
#[allow(clippy::too_many_arguments)]
fn poll(
    path: &str,
    units: &[u8],
    line: RtuConfig,
    registers: u16,
    address: u16,
    rate: f64,
    seconds: f64,
    timeout: Duration,
) -> anyhow::Result<Stats> {
    let mut port = tokio_serial::new(path, line.baud).timeout(Duration::from_millis(5)).open()?;
    let gap = Duration::from_nanos(line.t3_5().0);
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / (rate * units.len() as f64)));
    let expected = 5 + 2 * usize::from(registers);
    let mut stats = Stats::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut next_send = start;
    let mut rx = vec![0u8; 512];
    let mut i = 0usize;
    while Instant::now() < end {
        let unit = units[i % units.len()];
        i += 1;
        if let Some(iv) = interval {
            let now = Instant::now();
            if next_send > now {
                std::thread::sleep(next_send - now);
            }
            next_send += iv;
        }
        let pdu = [0x03, (address >> 8) as u8, address as u8, (registers >> 8) as u8, registers as u8];
        let mut req = [0u8; 8];
        let n = emit_frame(unit, &pdu, &mut req).unwrap_or(0);
        port.write_all(&req[..n])?;
        let t0 = Instant::now();
        let mut got = 0usize;
        let complete = loop {
            let want = if got >= 2 && rx[1] & 0x80 != 0 { 5 } else { expected };
            if got >= want {
                break true;
            }
            if t0.elapsed() > timeout {
                break false;
            }
            match port.read(&mut rx[got..]) {
                Ok(k) => got += k,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e) => return Err(e.into()),
            }
        };
        let latency = t0.elapsed();
        stats.transactions += 1;
        if !complete {
            stats.missed += 1;
            std::thread::sleep(gap);
            port.clear(tokio_serial::ClearBuffer::Input)?;
            continue;
        }
        let ok = Frame::new_checked(&rx[..got]).is_ok_and(|f| f.unit_id() == unit && f.pdu().first() == Some(&0x03));
        if !ok {
            stats.bad += 1;
        }
        stats.latencies_us.push(latency.as_micros() as u64);
        // The 3.5-character silence before the next request.
        std::thread::sleep(gap);
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// Resident set size from /proc (Linux), KiB.
fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
