//! `smartpro-sim bench-bus`: a Modbus RTU master polling several twins over a
//! pty as fast as the protocol allows, for a fixed time; prints transactions/s,
//! latency percentiles and missed responses (and, with `--line-timing`, the
//! throughput against the line-rate limit of the request mix).
//!
//! The master runs on a thread of its own with blocking I/O and the operating
//! system's sleep, so its own timing (the 3.5-character gap it leaves between
//! a reply and the next request) is precise to well under a character time.
//!
//! For soak runs it prints the process's resident memory (`VmRSS`) at the
//! start, every `--memory-every-s` and at the end, and the peak (`VmHWM`), so
//! that flat memory can be seen; latencies go into a fixed-size histogram, so
//! the master itself does not grow with the length of the run.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use firmware_core::modbus::frame::{Frame, emit_frame};
use firmware_core::modbus::rtu::RtuConfig;

use super::exit::{self, Exit};
use crate::scenario::Scenario;
use crate::serial;
use crate::serve::{Options, Pty, RtuLine, Transports};

/// `bench-bus`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "every response arrived"),
    (Exit::Failed, "a response was missed or malformed"),
    (Exit::BadInput, "bad arguments"),
    (Exit::Runtime, "runtime failure: the pty or the server failed"),
];

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// How long to poll, wall-clock seconds (also `--seconds`, its old name).
    #[arg(long = "duration", value_name = "S", default_value_t = 10.0, value_parser = serial::duration_parser(),
          alias = "seconds")]
    pub seconds: f64,
    /// Units on the bus (ids 1..=N), polled in turn (also `--units`, its old name).
    #[arg(long = "unit-count", value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=32),
          alias = "units")]
    pub units: u8,
    /// Holding registers per read (FC03) (also `--registers`, its old name).
    #[arg(long = "register-count", value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(1..=125), alias = "registers")]
    pub registers: u16,
    /// First register read.
    #[arg(long, default_value_t = 0x0100)]
    pub address: u16,
    /// Pace the line at the baud rate, as a real RS-485 line would.
    #[arg(long)]
    pub line_timing: bool,
    /// Baud rate (8E1).
    #[arg(long, default_value_t = 19_200, value_parser = serial::baud_parser())]
    pub baud: u32,
    /// Polls per second per unit; 0: as fast as possible.
    #[arg(long, value_name = "HZ", default_value_t = 0.0)]
    pub rate: f64,
    /// A reply not complete after this many ms is missed.
    #[arg(long, value_name = "MS", default_value_t = 200)]
    pub timeout_ms: u64,
    /// Print the resident memory every this many seconds (and at start and end); 0: only at start and end.
    #[arg(long, value_name = "S", default_value_t = 600.0)]
    pub memory_every_s: f64,
}

/// What the master measured.
#[derive(Debug, Default)]
pub struct Stats {
    pub transactions: u64,
    pub missed: u64,
    pub bad: u64,
    pub latency: LatencyHistogram,
    /// When the slowest reply was asked for, s since the start.
    pub slowest_at_s: f64,
    pub wall_s: f64,
}

/// Missed or bad responses listed one by one (when, which unit), at most.
const PROBLEMS_LISTED: u64 = 50;

/// Latencies in µs, exact below [`LatencyHistogram::EXACT_US`] and within
/// 1/[`LatencyHistogram::SUB`] (0.2 %) above, in a fixed number of buckets
/// (log-linear, as HdrHistogram does): a one-hour soak costs no more memory
/// than a ten-second run. The maximum is kept exactly.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    n: u64,
    max_us: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram { counts: vec![0; Self::BUCKETS], n: 0, max_us: 0 }
    }
}

impl LatencyHistogram {
    /// Values below this are counted exactly (1 µs buckets).
    pub const EXACT_US: u64 = 1024;
    /// Buckets per power of two above [`Self::EXACT_US`].
    pub const SUB: u64 = 512;
    /// Powers of two covered above `EXACT_US` (up to 2^40 µs, 12.7 days); larger values share the last bucket.
    const OCTAVES: u64 = 30;
    const BUCKETS: usize = (Self::EXACT_US + Self::OCTAVES * Self::SUB) as usize;

    fn index(us: u64) -> usize {
        if us < Self::EXACT_US {
            return us as usize;
        }
        // us in [2^k, 2^(k+1)), k >= 10: SUB buckets of width 2^(k-9).
        let k = u64::from(63 - us.leading_zeros());
        let octave = k - 10;
        if octave >= Self::OCTAVES {
            return Self::BUCKETS - 1;
        }
        let sub = (us >> (k - 9)) - Self::SUB;
        (Self::EXACT_US + octave * Self::SUB + sub) as usize
    }

    /// The lowest value of bucket `i`.
    fn low(i: usize) -> u64 {
        let i = i as u64;
        if i < Self::EXACT_US {
            return i;
        }
        let octave = (i - Self::EXACT_US) / Self::SUB;
        let sub = (i - Self::EXACT_US) % Self::SUB;
        (Self::SUB + sub) << (octave + 1)
    }

    pub fn record(&mut self, us: u64) {
        self.counts[Self::index(us)] += 1;
        self.n += 1;
        self.max_us = self.max_us.max(us);
    }

    pub fn len(&self) -> u64 {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn max_us(&self) -> u64 {
        self.max_us
    }

    /// The `p`-quantile (0..=1) as the lowest value of its bucket (nearest rank); 0 if empty.
    pub fn quantile_us(&self, p: f64) -> u64 {
        if self.n == 0 {
            return 0;
        }
        if p >= 1.0 {
            return self.max_us;
        }
        let rank = ((self.n - 1) as f64 * p.max(0.0)).round() as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Self::low(i).min(self.max_us);
            }
        }
        self.max_us
    }
}

pub fn execute(cmd: &Cmd) -> u8 {
    if !(cmd.seconds.is_finite()
        && cmd.seconds > 0.0
        && cmd.rate.is_finite()
        && cmd.rate >= 0.0
        && cmd.memory_every_s.is_finite()
        && cmd.memory_every_s >= 0.0)
    {
        eprintln!("error: --duration must be positive, --rate and --memory-every-s finite and non-negative");
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
    let scenario = Scenario::parse(crate::serve::IDLE_SCENARIO, Path::new("<idle>"))?;
    let units: Vec<u8> = (1..=cmd.units).collect();
    let mut opts = Options::new(units.clone());
    opts.line = RtuConfig { baud: cmd.baud, ..RtuConfig::default() };
    opts.line_timing = cmd.line_timing;
    let line = opts.line;
    let pty = Pty::open()?;
    let path = pty.path().to_string_lossy().into_owned();
    let memory_start = Memory::now();
    println!(
        "bench-bus: {} units x {} registers (FC03 @ 0x{:04x}) over {path}, {} 8E1, line timing {}, {} s",
        cmd.units,
        cmd.registers,
        cmd.address,
        cmd.baud,
        if cmd.line_timing { "on" } else { "off" },
        cmd.seconds
    );
    if let Some(m) = memory_start {
        println!("memory at 0 s: {m}");
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let transports = Transports { rtu: Some(RtuLine::Pty(Box::new(pty))), ..Transports::default() };
    let server = crate::serve::serve(&scenario, &opts, transports, async {
        let _ = stop_rx.await;
    });
    let client = {
        let plan = Plan {
            path: path.clone(),
            units,
            line,
            registers: cmd.registers,
            address: cmd.address,
            rate: cmd.rate,
            seconds: cmd.seconds,
            timeout: Duration::from_millis(cmd.timeout_ms),
            memory_every: Duration::from_secs_f64(cmd.memory_every_s),
        };
        tokio::task::spawn_blocking(move || poll(&plan))
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

    let pct = |p: f64| stats.latency.quantile_us(p) as f64 / 1000.0;
    let tps = stats.transactions as f64 / stats.wall_s;
    println!("transactions: {} in {:.2} s", stats.transactions, stats.wall_s);
    println!("transactions_per_s: {tps:.1}");
    println!(
        "latency_ms: p50 {:.3}  p99 {:.3}  max {:.3} (at {:.1} s)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        stats.slowest_at_s
    );
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
        println!("(no line timing: the pty moves bytes instantly; a slave answers as soon as a request is complete)");
    }
    if let (Some(a), Some(b)) = (memory_start, Memory::now()) {
        println!("memory at end: {b}");
        println!(
            "rss_kib: start {}, end {} ({:+}), peak (VmHWM) {}",
            a.rss_kib,
            b.rss_kib,
            b.rss_kib as i64 - a.rss_kib as i64,
            b.hwm_kib
        );
    }
    let served: u64 = report.replies();
    println!("server: {served} replies, {} frames, {} replies not sent", report.frames, report.replies_not_sent);
    Ok(stats.missed + stats.bad)
}

/// What the master does.
struct Plan {
    path: String,
    units: Vec<u8>,
    line: RtuConfig,
    registers: u16,
    address: u16,
    /// Polls per second per unit; 0: as fast as possible.
    rate: f64,
    seconds: f64,
    timeout: Duration,
    memory_every: Duration,
}

/// The master: polls `units` in turn for `seconds`.
fn poll(plan: &Plan) -> anyhow::Result<Stats> {
    let Plan { ref path, ref units, line, registers, address, rate, seconds, timeout, memory_every } = *plan;
    let mut port = tokio_serial::new(path, line.baud).timeout(Duration::from_millis(5)).open()?;
    let gap = Duration::from_nanos(line.t3_5().0);
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / (rate * units.len() as f64)));
    let expected = 5 + 2 * usize::from(registers);
    let mut stats = Stats::default();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut next_send = start;
    let mut next_memory = start + memory_every;
    let mut rx = vec![0u8; 512];
    let mut i = 0usize;
    while Instant::now() < end {
        if !memory_every.is_zero() && Instant::now() >= next_memory {
            if let Some(m) = Memory::now() {
                println!("memory at {:.0} s: {m}", start.elapsed().as_secs_f64());
            }
            next_memory += memory_every;
        }
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
        let at_s = (t0 - start).as_secs_f64();
        if !complete {
            stats.missed += 1;
            if stats.missed + stats.bad <= PROBLEMS_LISTED {
                println!("missed: unit {unit} at {at_s:.3} s: {got} bytes within {} ms", timeout.as_millis());
            }
            std::thread::sleep(gap);
            port.clear(tokio_serial::ClearBuffer::Input)?;
            continue;
        }
        let ok = Frame::new_checked(&rx[..got]).is_ok_and(|f| f.unit_id() == unit && f.pdu().first() == Some(&0x03));
        if !ok {
            stats.bad += 1;
            if stats.missed + stats.bad <= PROBLEMS_LISTED {
                println!("bad reply: unit {unit} at {at_s:.3} s: {:02x?}", &rx[..got]);
            }
        }
        let us = latency.as_micros() as u64;
        if us > stats.latency.max_us() {
            stats.slowest_at_s = at_s;
        }
        stats.latency.record(us);
        // The 3.5-character silence before the next request.
        std::thread::sleep(gap);
    }
    stats.wall_s = start.elapsed().as_secs_f64();
    Ok(stats)
}

/// The process's memory from `/proc/self/status` (Linux): resident now and peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

impl Memory {
    fn now() -> Option<Memory> {
        Self::parse(&std::fs::read_to_string("/proc/self/status").ok()?)
    }

    fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        Some(Memory { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
    }
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VmRSS {} KiB, VmHWM {} KiB", self.rss_kib, self.hwm_kib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_exact_below_1024_us_and_within_0_2_percent_above() {
        for us in [0, 1, 17, 1023] {
            let mut h = LatencyHistogram::default();
            h.record(us);
            assert_eq!(h.quantile_us(0.5), us);
        }
        for us in [1024u64, 1025, 2047, 2048, 4_999, 123_456, 3_600_000_000] {
            let i = LatencyHistogram::index(us);
            let (lo, hi) = (LatencyHistogram::low(i), LatencyHistogram::low(i + 1));
            assert!(lo <= us && us < hi, "{us} not in bucket {i} [{lo}, {hi})");
            assert!((hi - lo) as f64 <= lo as f64 / LatencyHistogram::SUB as f64, "{us}: bucket [{lo}, {hi})");
        }
        // Buckets are contiguous and increasing across an octave boundary.
        for i in 1000..3000 {
            assert_eq!(LatencyHistogram::index(LatencyHistogram::low(i)), i);
            assert!(LatencyHistogram::low(i) < LatencyHistogram::low(i + 1));
        }
        assert_eq!(LatencyHistogram::index(u64::MAX), LatencyHistogram::BUCKETS - 1);
    }

    #[test]
    fn histogram_quantiles_match_sorted_nearest_rank() {
        // 1..=1000 µs: p50 is the 500th value (rank round(999 * 0.5) = 500 -> 501), p99 -> 990.
        let mut h = LatencyHistogram::default();
        for us in (1..=1000).rev() {
            h.record(us);
        }
        let sorted: Vec<u64> = (1..=1000).collect();
        for p in [0.0, 0.5, 0.9, 0.99] {
            let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
            assert_eq!(h.quantile_us(p), sorted[rank], "p = {p}");
        }
        assert_eq!((h.quantile_us(1.0), h.max_us(), h.len()), (1000, 1000, 1000));
        assert_eq!(LatencyHistogram::default().quantile_us(0.99), 0);
    }

    #[test]
    fn memory_is_read_from_proc_status() {
        let m = Memory::parse("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t    1536 kB\n").unwrap();
        assert_eq!(m, Memory { rss_kib: 1536, hwm_kib: 2048 });
        assert_eq!(Memory::parse("VmRSS: 1 kB\n"), None, "no VmHWM");
        if cfg!(target_os = "linux") {
            let m = Memory::now().expect("/proc/self/status has VmRSS and VmHWM");
            assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib, "{m}");
        }
    }
}
