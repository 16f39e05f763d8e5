//! `--log-frames FILE`: a bus monitor's view of every request and reply, with
//! timestamps and decoded meaning, written by a thread of its own so that a
//! slow disk never stalls the twin.
//!
//! One line per frame:
//!
//! ```text
//!     wall_s      sim_s  link  dir  unit  meaning  [raw bytes]
//!   1.204518    1.203  rtu   ->   1  03 read holding 0x0100 (256) x10  [01 03 01 00 00 0a c4 31]
//!   1.206603    1.205  rtu   <-   1  03 10 regs: 13208 65535 45536 5990 250 ...  [01 03 14 ...]
//! ```
//!
//! `->` is a request (master to twin), `<-` a reply; `!!` lines say what the
//! fault injector did and what happened to the port.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::mpsc;

use firmware_core::modbus::frame::Frame;

/// Lines queued for the writer thread, at most (issue 20: no unbounded queue
/// between the serving threads): a few seconds of a busy bus. When the disk
/// cannot keep up, further lines are dropped and counted, never waited for:
/// the twin's timing matters more than the log.
pub const QUEUE_LINES: usize = 4096;

/// The writer thread's handle: lines go in by a bounded channel.
///
/// When a write fails (a full disk: ENOSPC), the writer stops at once: it
/// says so on stderr, naming the file and how many lines it holds, and
/// `finish` returns that error; what was written before stays in the file
/// (possibly ending in a partial line). Serving goes on without the log.
#[derive(Debug)]
pub struct FrameLog {
    tx: Option<mpsc::SyncSender<String>>,
    join: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
    dropped: std::cell::Cell<u64>,
}

impl FrameLog {
    /// Creates (truncates) `path` and starts the writer thread.
    pub fn create(path: &Path) -> std::io::Result<FrameLog> {
        let file = std::fs::File::create(path)?;
        Self::with_writer(file, path.display().to_string())
    }

    /// Starts the writer thread on `out`, called `name` in messages.
    pub fn with_writer<W: std::io::Write + Send + 'static>(out: W, name: String) -> std::io::Result<FrameLog> {
        let (tx, rx) = mpsc::sync_channel::<String>(QUEUE_LINES);
        let join = std::thread::Builder::new().name("frame-log".into()).spawn(move || {
            let mut lines = 0u64;
            let r = write_lines(out, &rx, &mut lines);
            r.map(|()| lines).map_err(|e| {
                let e = std::io::Error::new(
                    e.kind(),
                    format!("{name}: writing stopped after {lines} lines ({e}); the lines before are kept"),
                );
                eprintln!("warning: frame log {e}; serving goes on without it");
                e
            })
        })?;
        Ok(FrameLog { tx: Some(tx), join: Some(join), dropped: std::cell::Cell::new(0) })
    }

    /// Queues one line (never blocks: a line that finds the queue full is dropped and counted).
    pub fn line(&self, line: String) {
        if let Some(tx) = &self.tx {
            if let Err(mpsc::TrySendError::Full(_)) = tx.try_send(line) {
                self.dropped.set(self.dropped.get() + 1);
            }
        }
    }

    /// Lines dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.get()
    }

    /// Stops the writer and returns how many lines were written, or why writing failed.
    pub fn finish(mut self) -> std::io::Result<u64> {
        let dropped = self.dropped.get();
        if dropped > 0 {
            // Room for one more line once the writer has caught up: wait for it.
            if let Some(tx) = &self.tx {
                let _ = tx.send(format!("# {dropped} lines dropped: the disk could not keep up"));
            }
            eprintln!("warning: frame log: {dropped} lines dropped: the disk could not keep up");
        }
        self.tx = None;
        match self.join.take().map(|j| j.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("frame-log thread panicked")),
            None => Ok(0),
        }
    }
}

/// Bytes gathered before they go to the file (as a `BufWriter`'s buffer).
const WRITE_BATCH: usize = 8192;

/// The writer thread's loop: the header, then every line until the channel
/// closes. Lines go out in batches, when the queue runs dry (so `tail -f`
/// shows traffic at once) or the batch is full; `lines` counts the lines of
/// the batches the file took, so after a failed write it says how many are
/// in the file for sure.
fn write_lines<W: std::io::Write>(mut out: W, rx: &mpsc::Receiver<String>, lines: &mut u64) -> std::io::Result<()> {
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    writeln!(batch, "# smartpro-sim serve frame log: wall_s sim_s link dir unit meaning [bytes]")?;
    let mut in_batch = 0u64;
    let mut put = |batch: &mut Vec<u8>, in_batch: &mut u64, lines: &mut u64| -> std::io::Result<()> {
        out.write_all(batch)?;
        out.flush()?;
        batch.clear();
        *lines += std::mem::take(in_batch);
        Ok(())
    };
    loop {
        let line = match rx.try_recv() {
            Ok(l) => l,
            Err(mpsc::TryRecvError::Empty) => {
                put(&mut batch, &mut in_batch, lines)?;
                match rx.recv() {
                    Ok(l) => l,
                    Err(_) => break,
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'\n');
        in_batch += 1;
        if batch.len() >= WRITE_BATCH {
            put(&mut batch, &mut in_batch, lines)?;
        }
    }
    put(&mut batch, &mut in_batch, lines)
}

/// `wall_s sim_s link dir` prefix of a log line.
pub fn prefix(wall_ns: u64, sim_ns: u64, link: &str, dir: &str) -> String {
    format!("{:11.6} {:10.3}  {link:<6} {dir}", wall_ns as f64 * 1e-9, sim_ns as f64 * 1e-9)
}

/// Lower-case hex, space separated.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// An RTU ADU (unit + PDU + CRC): unit and meaning, or why it is not a frame.
pub fn describe_rtu(adu: &[u8], request: bool) -> String {
    match Frame::new_checked(adu) {
        Ok(f) => {
            let unit = if f.unit_id() == 0 { "bcast".to_owned() } else { format!("{:>3}", f.unit_id()) };
            let pdu = if request { describe_request(f.pdu()) } else { describe_response(f.pdu()) };
            format!("{unit}  {pdu}  [{}]", hex(adu))
        }
        Err(e) => format!("  -  not a frame ({e}, {} bytes)  [{}]", adu.len(), hex(&adu[..adu.len().min(64)])),
    }
}

/// A Modbus TCP PDU with its MBAP transaction id and unit id.
pub fn describe_tcp(tid: u16, unit: u8, pdu: &[u8], request: bool) -> String {
    let meaning = if request { describe_request(pdu) } else { describe_response(pdu) };
    format!("{unit:>3}  {meaning}  [tid {tid}: {}]", hex(pdu))
}

fn be(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

fn regs(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, w) in b.chunks_exact(2).enumerate() {
        if i == 16 {
            s.push_str(" ...");
            break;
        }
        let _ = write!(s, " {}", u16::from_be_bytes([w[0], w[1]]));
    }
    s
}

fn fc_name(fc: u8) -> &'static str {
    match fc {
        0x03 => "read holding",
        0x04 => "read input",
        0x06 => "write single",
        0x08 => "diagnostics",
        0x10 => "write multiple",
        0x17 => "read/write multiple",
        0x2B => "encapsulated (MEI)",
        _ => "function",
    }
}

/// The meaning of a request PDU (function code + data).
pub fn describe_request(pdu: &[u8]) -> String {
    let Some((&fc, d)) = pdu.split_first() else {
        return "empty PDU".into();
    };
    let name = fc_name(fc);
    let described = match fc {
        0x03 | 0x04 => be(d, 0).zip(be(d, 2)).map(|(a, q)| format!("{fc:02x} {name} 0x{a:04x} ({a}) x{q}")),
        0x06 => be(d, 0).zip(be(d, 2)).map(|(a, v)| format!("{fc:02x} {name} 0x{a:04x} ({a}) = {v}")),
        0x10 => be(d, 0)
            .zip(be(d, 2))
            .map(|(a, q)| format!("{fc:02x} {name} 0x{a:04x} ({a}) x{q} ={}", regs(d.get(5..).unwrap_or(&[])))),
        0x17 => be(d, 0).zip(be(d, 2)).zip(be(d, 4).zip(be(d, 6))).map(|((ra, rq), (wa, wq))| {
            format!(
                "{fc:02x} {name} read 0x{ra:04x} x{rq}, write 0x{wa:04x} x{wq} ={}",
                regs(d.get(9..).unwrap_or(&[]))
            )
        }),
        0x08 => be(d, 0).map(|s| format!("{fc:02x} {name} sub-function {s} data {}", hex(d.get(2..).unwrap_or(&[])))),
        0x2B => match d {
            [0x0E, code, obj, ..] => Some(format!("{fc:02x} read device identification code {code} object {obj}")),
            [mei, ..] => Some(format!("{fc:02x} {name} type 0x{mei:02x}")),
            [] => None,
        },
        _ => Some(format!("{fc:02x} {name} ({} data bytes)", d.len())),
    };
    described.unwrap_or_else(|| format!("{fc:02x} {name}, malformed ({} data bytes)", d.len()))
}

/// The meaning of a response PDU.
pub fn describe_response(pdu: &[u8]) -> String {
    let Some((&fc, d)) = pdu.split_first() else {
        return "empty PDU".into();
    };
    if fc & 0x80 != 0 {
        let code = d.first().copied().unwrap_or(0);
        let what = match code {
            1 => "illegal function",
            2 => "illegal data address",
            3 => "illegal data value",
            4 => "server device failure",
            5 => "acknowledge",
            6 => "server device busy",
            0x0A => "gateway path unavailable",
            0x0B => "gateway target device failed to respond",
            _ => "exception",
        };
        return format!("{:02x} EXCEPTION {code:02x} {what}", fc & 0x7F);
    }
    let name = fc_name(fc);
    match fc {
        0x03 | 0x04 | 0x17 => {
            let n = d.first().copied().unwrap_or(0) as usize / 2;
            format!("{fc:02x} {n} regs:{}", regs(d.get(1..).unwrap_or(&[])))
        }
        0x06 => be(d, 0)
            .zip(be(d, 2))
            .map_or_else(|| format!("{fc:02x} {name}, malformed"), |(a, v)| format!("{fc:02x} ok 0x{a:04x} = {v}")),
        0x10 => be(d, 0)
            .zip(be(d, 2))
            .map_or_else(|| format!("{fc:02x} {name}, malformed"), |(a, q)| format!("{fc:02x} ok 0x{a:04x} x{q}")),
        0x08 => format!("{fc:02x} {name} reply {}", hex(d)),
        0x2B => {
            // 0E code conformity more next count, then (id len value)*
            let mut s = format!("{fc:02x} device identification:");
            let mut rest = d.get(6..).unwrap_or(&[]);
            while let [id, len, tail @ ..] = rest {
                let n = usize::from(*len).min(tail.len());
                let _ = write!(s, " {id:#04x}={:?}", String::from_utf8_lossy(&tail[..n]));
                rest = &tail[n..];
            }
            s
        }
        _ => format!("{fc:02x} {name} ({} data bytes)", d.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_common_frames() {
        let req = [0x01, 0x03, 0x01, 0x00, 0x00, 0x0A, 0xC4, 0x31];
        let s = describe_rtu(&req, true);
        assert!(s.contains("  1  03 read holding 0x0100 (256) x10"), "{s}");
        let s = describe_response(&[0x03, 4, 0x00, 0x01, 0xFF, 0xFF]);
        assert_eq!(s, "03 2 regs: 1 65535");
        assert_eq!(describe_response(&[0x83, 0x02]), "03 EXCEPTION 02 illegal data address");
        assert!(describe_rtu(&[1, 2, 3], true).contains("not a frame"));
        assert!(describe_request(&[0x10, 0, 1, 0, 2, 4, 0, 5, 0, 6]).ends_with("x2 = 5 6"));
        assert!(describe_request(&[0x17, 0, 1, 0, 2, 0, 3, 0, 1, 2, 0, 9]).contains("write 0x0003 x1 = 9"));
        assert!(describe_request(&[0x03, 0]).contains("malformed"));
        let id = describe_response(&[0x2B, 0x0E, 1, 1, 0, 0, 1, 0, 3, b'A', b'B', b'C']);
        assert!(id.contains("0x00=\"ABC\""), "{id}");
    }

    /// Takes `room` bytes, then fails every write as a full disk does (ENOSPC).
    #[derive(Clone)]
    struct FullAfter {
        room: usize,
        kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl std::io::Write for FullAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut kept = self.kept.lock().unwrap();
            let n = buf.len().min(self.room - kept.len());
            if n == 0 {
                return Err(std::io::Error::from_raw_os_error(28));
            }
            kept.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn issue_20_a_frame_log_on_a_full_disk_stops_with_a_clear_error_and_keeps_what_was_written() {
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = FullAfter { room: 1000, kept: kept.clone() };
        let log = FrameLog::with_writer(out, "frames.log".into()).unwrap();
        for i in 0..200 {
            log.line(format!("line {i:04}"));
            // Let the writer see each line on its own (it flushes whenever the queue is empty).
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let e = log.finish().unwrap_err();
        let msg = e.to_string();
        assert_eq!(e.raw_os_error(), None, "a message of its own: {msg}");
        assert!(msg.starts_with("frames.log: writing stopped after "), "{msg}");
        assert!(msg.contains("No space left on device"), "{msg}");
        assert!(msg.ends_with("; the lines before are kept"), "{msg}");
        // What went out before the disk filled is there, in order, whole lines first.
        let kept = String::from_utf8(kept.lock().unwrap().clone()).unwrap();
        assert_eq!(kept.len(), 1000);
        let mut lines = kept.lines().skip(1);
        for (i, l) in lines.by_ref().take(kept.lines().count() - 2).enumerate() {
            assert_eq!(l, format!("line {i:04}"));
        }
        let n: usize = msg["frames.log: writing stopped after ".len()..].split(' ').next().unwrap().parse().unwrap();
        assert!((80..200).contains(&n), "{n} lines counted as written");
    }

    #[test]
    fn issue_20_a_frame_log_on_dev_full_says_so() {
        let Ok(log) = FrameLog::create(Path::new("/dev/full")) else { return };
        log.line("a line".into());
        let msg = log.finish().unwrap_err().to_string();
        assert!(msg.starts_with("/dev/full: writing stopped after 0 lines ("), "{msg}");
        assert!(msg.contains("No space left on device"), "{msg}");
    }

    #[test]
    fn issue_20_lines_beyond_the_queue_are_dropped_and_counted_never_waited_for() {
        // A writer that blocks until released: the queue fills.
        let (release_tx, release_rx) = mpsc::channel::<()>();
        struct Blocked(mpsc::Receiver<()>, bool);
        impl std::io::Write for Blocked {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if !self.1 {
                    let _ = self.0.recv();
                    self.1 = true;
                }
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.write(&[]).map(|_| ())
            }
        }
        let log = FrameLog::with_writer(Blocked(release_rx, false), "slow.log".into()).unwrap();
        let t0 = std::time::Instant::now();
        for i in 0..QUEUE_LINES + 200 {
            log.line(format!("{i}"));
        }
        assert!(t0.elapsed() < std::time::Duration::from_secs(5), "line() waited");
        assert!(log.dropped() >= 100, "{} dropped", log.dropped());
        release_tx.send(()).unwrap();
        let written = log.finish().unwrap();
        assert!(written as usize <= QUEUE_LINES + 2, "{written} lines");
    }
}
