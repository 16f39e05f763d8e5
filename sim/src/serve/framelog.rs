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

/// The writer thread's handle: lines go in by channel.
#[derive(Debug)]
pub struct FrameLog {
    tx: Option<mpsc::Sender<String>>,
    join: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
}

impl FrameLog {
    /// Creates (truncates) `path` and starts the writer thread.
    pub fn create(path: &Path) -> std::io::Result<FrameLog> {
        let file = std::fs::File::create(path)?;
        let (tx, rx) = mpsc::channel::<String>();
        let join = std::thread::Builder::new().name("frame-log".into()).spawn(move || {
            let mut w = std::io::BufWriter::new(file);
            writeln!(w, "# smartpro-sim serve frame log: wall_s sim_s link dir unit meaning [bytes]")?;
            let mut lines = 0u64;
            loop {
                // Flush whenever the queue runs dry, so `tail -f` shows traffic at once.
                let line = match rx.try_recv() {
                    Ok(l) => l,
                    Err(mpsc::TryRecvError::Empty) => {
                        w.flush()?;
                        match rx.recv() {
                            Ok(l) => l,
                            Err(_) => break,
                        }
                    }
                    Err(mpsc::TryRecvError::Disconnected) => break,
                };
                w.write_all(line.as_bytes())?;
                w.write_all(b"\n")?;
                lines += 1;
            }
            w.flush()?;
            Ok(lines)
        })?;
        Ok(FrameLog { tx: Some(tx), join: Some(join) })
    }

    /// Queues one line (never blocks).
    pub fn line(&self, line: String) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(line);
        }
    }

    /// Stops the writer and returns how many lines were written, or why writing failed.
    pub fn finish(mut self) -> std::io::Result<u64> {
        self.tx = None;
        match self.join.take().map(|j| j.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(std::io::Error::other("frame-log thread panicked")),
            None => Ok(0),
        }
    }
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
}
