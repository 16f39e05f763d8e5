//! The serial link to one Modbus RTU slave: port settings, opening the port,
//! and requests framed here on the raw bytes, with a timeout, retries per
//! class of failure, back-off and the inter-frame gap.
//!
//! Results nest as tokio-modbus's do, `Result<Result<T, ExceptionCode>,
//! LinkError>`: a Modbus exception is the device's answer, not a link failure.

use std::io;
use std::time::Duration;

use clap::{Args, value_parser};
use firmware_core::modbus::crc::crc16;
use smartpro_sim::serial;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_modbus::ExceptionCode;
use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// Serial line and slave settings, shared by every subcommand that talks to a board.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Serial link")]
pub struct LinkArgs {
    /// Serial device: a USB-RS485 adapter (/dev/ttyUSB0) or the /dev/pts/N
    /// that `smartpro-sim serve` prints
    #[arg(short = 'p', long, value_name = "DEVICE", env = "HIL_RIG_PORT")]
    pub port: String,
    /// Baud rate
    #[arg(long, default_value_t = 19_200, env = "HIL_RIG_BAUD", value_parser = serial::baud_parser())]
    pub baud: u32,
    /// Parity (8 data bits always)
    #[arg(long, default_value = "even", env = "HIL_RIG_PARITY", value_parser = serial::parity_parser())]
    pub parity: Parity,
    /// Stop bits: 1 or 2
    #[arg(long, default_value_t = 1, env = "HIL_RIG_STOP_BITS", value_parser = serial::stop_bits_parser())]
    pub stop_bits: u8,
    /// Modbus unit (slave) id of the board
    #[arg(long, value_name = "ID", default_value_t = 1, env = "HIL_RIG_UNIT", value_parser = serial::unit_parser())]
    pub unit: u8,
    /// Reply timeout of one request
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Retries of a request after a timeout, a bad reply or exception 06
    /// (busy); never after another exception
    #[arg(long, default_value_t = 2, value_parser = value_parser!(u32).range(0..=10))]
    pub retries: u32,
}

/// The serial parity: firmware-core's, as `smartpro-sim serve` takes it too.
pub use smartpro_sim::serial::Parity;

/// Data bits of the link: Modbus RTU's 8.
const DATA_BITS: u8 = 8;

impl LinkArgs {
    /// Line settings as usually written: `19200 8E1`.
    pub fn mode(&self) -> String {
        serial::mode(self.baud, DATA_BITS, self.parity, self.stop_bits)
    }

    /// `unit 1 on /dev/pts/7 at 19200 8E1`.
    pub fn describe(&self) -> String {
        format!("unit {} on {} at {}", self.unit, self.port, self.mode())
    }

    /// Tries per request: the first and the retries.
    pub fn tries(&self) -> u32 {
        self.retries + 1
    }
}

/// The port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open serial port {port} ({mode}): {cause}")]
pub struct OpenError {
    pub port: String,
    pub mode: String,
    pub cause: tokio_serial::Error,
}

/// Opens the serial port, 8 data bits, with the given baud, parity and stop bits.
pub fn open(args: &LinkArgs) -> Result<SerialStream, OpenError> {
    serial::port_builder(&args.port, args.baud, DATA_BITS, args.parity, args.stop_bits)
        .timeout(Duration::from_millis(args.timeout_ms))
        .open_native_async()
        .map_err(|cause| OpenError { port: args.port.clone(), mode: args.mode(), cause })
}

/// Silent time between frames: 3.5 characters of 11 bits (start, 8 data,
/// parity or second stop, stop), and a fixed 1.75 ms above 19200 baud
/// (Modbus over Serial Line v1.02, 2.5.1.1).
pub fn inter_frame_gap(baud: u32) -> Duration {
    if baud > 19_200 {
        Duration::from_micros(1_750)
    } else {
        // 38.5 bit times, rounded up to the nanosecond.
        Duration::from_nanos(38_500_000_000u64.div_ceil(u64::from(baud.max(1))))
    }
}

/// Wait before retry `n` (1-based), on top of the inter-frame gap:
/// 50 ms, 100 ms, 200 ms, ... at most 1 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(50u64 << n.saturating_sub(1).min(5)).min(Duration::from_secs(1))
}

/// Why a request got no usable reply, after all its tries: the class of the
/// last try's failure ([`Fault`]).
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no reply after {tries} tries (timeout {timeout_ms} ms)")]
    NoReply { tries: u32, timeout_ms: u64 },
    #[error("I/O error (after {tries} tries): {source}")]
    Io { tries: u32, source: io::Error },
    /// A reply came but could not be used (bad CRC, another unit, another
    /// function, cut short, wrong content).
    #[error("{fault} (after {tries} tries)")]
    BadFrame { tries: u32, fault: Fault },
    /// The request itself cannot be sent (nothing went on the line).
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// What was wrong with a reply that came but could not be used. Each is
/// retried (see [`Link::read_holding`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// The reply's CRC does not match its bytes (noise, a garbled byte).
    #[error("reply with a bad CRC ({len} bytes)")]
    BadCrc { len: usize },
    /// A valid frame from another unit: two units with one id, or an echo of
    /// another master's traffic.
    #[error("reply from unit {got} (expected unit {expected})")]
    WrongUnit { expected: u8, got: u8 },
    /// A reply for another function than the request's.
    #[error("reply with function code {got:#04x} to a request of function {expected:#04x}")]
    WrongFunction { expected: u8, got: u8 },
    /// The reply stopped before its length was complete (the timeout ended it).
    #[error("reply cut short: {got} of {expected} bytes")]
    ShortFrame { got: usize, expected: usize },
    /// A well-formed reply whose content does not answer the request (a
    /// register count, an echo that differs).
    #[error("reply does not match the request: {0}")]
    BadContent(String),
}

/// The outcome of a read: words, or the device's exception, or a link failure.
pub type ReadResult = Result<Result<Vec<u16>, ExceptionCode>, LinkError>;

/// The outcome of a write: done, or the device's exception (e.g. 03 for a
/// value outside the register's range), or a link failure.
pub type WriteResult = Result<Result<(), ExceptionCode>, LinkError>;

/// Most registers one function-16 request may write (Modbus Application
/// Protocol v1.1b3, 6.12).
pub const MAX_REGS_PER_WRITE: u16 = 123;

/// The name of an exception code, from serve's table of the codes Modbus
/// defines (`server device busy`), `non-standard` for the others.
pub fn exception_name(code: ExceptionCode) -> &'static str {
    smartpro_sim::serve::faults::exception_code_name(u8::from(code)).unwrap_or("non-standard")
}

/// `exception 02 illegal data address at 0x0100`.
pub fn describe_exception(code: ExceptionCode, addr: u16) -> String {
    format!("exception {:02X} {} at 0x{addr:04X}", u8::from(code), exception_name(code))
}

/// What happened on the link, for the summary at exit: one counter per class
/// of outcome of a try.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests answered with data.
    pub replies: u64,
    /// Requests answered with a Modbus exception that was the final answer.
    pub exceptions: u64,
    /// Tries with no reply byte before the timeout.
    pub timeouts: u64,
    /// Exception 06 (server device busy) replies, retried after a back-off.
    pub busy: u64,
    /// Replies whose CRC did not match.
    pub bad_crc: u64,
    /// Valid frames from another unit.
    pub wrong_unit: u64,
    /// Replies of another function.
    pub wrong_function: u64,
    /// Replies cut short by the timeout.
    pub short_frames: u64,
    /// Well-formed replies that did not answer the request (count, echo).
    pub bad_content: u64,
    /// Errors of the port itself (e.g. the adapter was unplugged).
    pub io_errors: u64,
    /// Bytes that arrived outside any reply (late replies, noise) and were
    /// dropped before a request.
    pub stray_bytes: u64,
}

impl Counters {
    /// Unusable replies of every class.
    pub fn bad_frames(&self) -> u64 {
        self.bad_crc + self.wrong_unit + self.wrong_function + self.short_frames + self.bad_content
    }
}

/// A Modbus RTU master on one port, talking to one unit.
///
/// The framing is done here, on the raw bytes, rather than by tokio-modbus's
/// RTU client: that client reports a bad CRC, a reply from another unit and a
/// cut frame alike (as an I/O error, a protocol error or a timeout of its
/// stream), and cannot say when the reply arrived. Here each reply is read
/// until the length its function code announces, then checked in the order
/// CRC, unit, function, content, so each failure has its own [`Fault`].
pub struct Link<T> {
    io: T,
    unit: u8,
    timeout: Duration,
    retries: u32,
    gap: Duration,
    /// Earliest start of the next request (end of the last exchange + gap).
    next_tx: Instant,
    counters: Counters,
    /// When the last successful try's request went out and its reply was complete.
    last_exchange: Option<(Instant, Instant)>,
}

impl<T> std::fmt::Debug for Link<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("unit", &self.unit)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("gap", &self.gap)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Link<SerialStream> {
    /// Opens the port.
    pub fn open(args: &LinkArgs) -> Result<Self, OpenError> {
        Ok(Self::new(open(args)?, args))
    }
}

/// Function codes the link sends.
const FC_READ_HOLDING: u8 = 0x03;
const FC_WRITE_SINGLE: u8 = 0x06;
const FC_WRITE_MULTIPLE: u8 = 0x10;

/// Most stray bytes dropped before one request: a device that never stops
/// talking must not stall the master.
const MAX_DRAIN: usize = 4096;

/// Longest RTU frame (Modbus over Serial Line v1.02, 2.5.1.1).
const MAX_ADU: usize = 256;

/// One try's failure.
#[derive(Debug)]
enum Failure {
    Timeout,
    Io(io::Error),
    Bad(Fault),
    Busy,
}

impl<T> Link<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// A link over any byte stream (a serial port, a pty, an in-memory pipe).
    pub fn new(io: T, args: &LinkArgs) -> Self {
        Self {
            io,
            unit: args.unit,
            timeout: Duration::from_millis(args.timeout_ms),
            retries: args.retries,
            gap: inter_frame_gap(args.baud),
            next_tx: Instant::now(),
            counters: Counters::default(),
            last_exchange: None,
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// When the request of the last successful exchange (data or a final
    /// exception) went out, and when its reply was complete: the time its
    /// values were read is between the two.
    pub fn last_exchange(&self) -> Option<(Instant, Instant)> {
        self.last_exchange
    }

    /// Reads `count` holding registers (function 03) from `addr`.
    ///
    /// Each try waits for the inter-frame gap and is bounded by the timeout.
    /// Retried after a back-off ([`backoff`]): no reply, an I/O error, every
    /// [`Fault`] (bad CRC, another unit, another function, a cut frame, a
    /// wrong register count) and exception 06 server device busy. Every
    /// other exception is the device's answer (02 illegal address, 03
    /// illegal value, ...: asking again changes nothing) and is returned at once.
    pub async fn read_holding(&mut self, addr: u16, count: u16) -> ReadResult {
        let mut pdu = vec![FC_READ_HOLDING];
        pdu.extend_from_slice(&addr.to_be_bytes());
        pdu.extend_from_slice(&count.to_be_bytes());
        self.exchange(&pdu, |data| {
            let n = usize::from(count);
            if data.len() != 1 + 2 * n || usize::from(data[0]) != 2 * n {
                return Err(format!(
                    "{} bytes of registers in the reply to a read of {count} at 0x{addr:04X}",
                    data.len().saturating_sub(1)
                ));
            }
            Ok(data[1..].chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]])).collect())
        })
        .await
    }

    /// Writes one holding register (function 06) at `addr`, with the same
    /// timeout, retries and exception handling as [`Self::read_holding`].
    ///
    /// The reply must echo the address and the value; a reply that does not
    /// is a bad frame (retried). A write is idempotent, so retrying one whose
    /// reply was lost is safe for settings; a command register acts again.
    pub async fn write_single(&mut self, addr: u16, value: u16) -> WriteResult {
        let mut pdu = vec![FC_WRITE_SINGLE];
        pdu.extend_from_slice(&addr.to_be_bytes());
        pdu.extend_from_slice(&value.to_be_bytes());
        let echo = pdu[1..].to_vec();
        self.exchange(&pdu, |data| {
            if data == echo {
                return Ok(());
            }
            let word = |i: usize| data.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            Err(format!("write of {value} at 0x{addr:04X} echoed {} at 0x{:04X}", word(2), word(0)))
        })
        .await
    }

    /// Writes `values` to consecutive holding registers from `addr`
    /// (function 16: 1 to [`MAX_REGS_PER_WRITE`] registers, e.g. both words
    /// of a 32-bit register at once), with the same timeout, retries and
    /// exception handling as [`Self::read_holding`]. The reply must echo the
    /// address and the count.
    pub async fn write_multiple(&mut self, addr: u16, values: &[u16]) -> WriteResult {
        if values.is_empty() || values.len() > usize::from(MAX_REGS_PER_WRITE) {
            return Err(LinkError::BadRequest(format!(
                "a write of {} registers at 0x{addr:04X}: function 16 takes 1 to {MAX_REGS_PER_WRITE}",
                values.len()
            )));
        }
        let count = values.len() as u16;
        let mut pdu = vec![FC_WRITE_MULTIPLE];
        pdu.extend_from_slice(&addr.to_be_bytes());
        pdu.extend_from_slice(&count.to_be_bytes());
        pdu.push((2 * values.len()) as u8);
        for v in values {
            pdu.extend_from_slice(&v.to_be_bytes());
        }
        let echo = pdu[1..5].to_vec();
        self.exchange(&pdu, |data| {
            if data == echo {
                return Ok(());
            }
            let word = |i: usize| data.get(i..i + 2).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            Err(format!("write of {count} registers at 0x{addr:04X} acknowledged {} at 0x{:04X}", word(2), word(0)))
        })
        .await
    }

    /// One request (`pdu`: function code and data) with the gap, timeout,
    /// retries and back-off; `accept` turns the reply's data (after the
    /// function code) into the value or says why it does not answer the
    /// request ([`Fault::BadContent`], retried).
    async fn exchange<V>(
        &mut self,
        pdu: &[u8],
        accept: impl Fn(&[u8]) -> Result<V, String>,
    ) -> Result<Result<V, ExceptionCode>, LinkError> {
        let mut adu = vec![self.unit];
        adu.extend_from_slice(pdu);
        let crc = crc16(&adu);
        adu.extend_from_slice(&crc.to_le_bytes());
        let fc = pdu[0];
        let mut last = Failure::Timeout;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                sleep(backoff(attempt)).await;
            }
            sleep_until(self.next_tx).await;
            self.counters.requests += 1;
            let sent = Instant::now();
            let reply = self.try_once(&adu, fc).await;
            let done = Instant::now();
            self.next_tx = done + self.gap;
            let failure = match reply {
                Ok(Reply::Data(data)) => match accept(&data) {
                    Ok(v) => {
                        self.counters.replies += 1;
                        self.last_exchange = Some((sent, done));
                        return Ok(Ok(v));
                    }
                    Err(why) => Failure::Bad(Fault::BadContent(why)),
                },
                Ok(Reply::Exception(ExceptionCode::ServerDeviceBusy)) => Failure::Busy,
                Ok(Reply::Exception(code)) => {
                    self.counters.exceptions += 1;
                    self.last_exchange = Some((sent, done));
                    return Ok(Err(code));
                }
                Err(f) => f,
            };
            match &failure {
                Failure::Timeout => self.counters.timeouts += 1,
                Failure::Io(_) => self.counters.io_errors += 1,
                Failure::Busy => self.counters.busy += 1,
                Failure::Bad(Fault::BadCrc { .. }) => self.counters.bad_crc += 1,
                Failure::Bad(Fault::WrongUnit { .. }) => self.counters.wrong_unit += 1,
                Failure::Bad(Fault::WrongFunction { .. }) => self.counters.wrong_function += 1,
                Failure::Bad(Fault::ShortFrame { .. }) => self.counters.short_frames += 1,
                Failure::Bad(Fault::BadContent(_)) => self.counters.bad_content += 1,
            }
            last = failure;
        }
        let tries = self.retries + 1;
        Err(match last {
            Failure::Io(source) => return Err(LinkError::Io { tries, source }),
            Failure::Bad(fault) => LinkError::BadFrame { tries, fault },
            Failure::Busy => {
                // Busy on every try: the device's answer after all.
                self.counters.exceptions += 1;
                return Ok(Err(ExceptionCode::ServerDeviceBusy));
            }
            Failure::Timeout => LinkError::NoReply { tries, timeout_ms: self.timeout.as_millis() as u64 },
        })
    }

    /// One try: drops stray input, sends `adu`, reads the reply until the
    /// length its function code announces, then checks CRC, unit and function.
    async fn try_once(&mut self, adu: &[u8], fc: u8) -> Result<Reply, Failure> {
        self.drain().await.map_err(Failure::Io)?;
        self.io.write_all(adu).await.map_err(Failure::Io)?;
        self.io.flush().await.map_err(Failure::Io)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = Vec::with_capacity(MAX_ADU);
        let mut chunk = [0u8; MAX_ADU];
        loop {
            let expected = expected_len(&buf, fc);
            if let Some(n) = expected
                && buf.len() >= n
            {
                // Anything after the frame is stray input, dropped before the next request.
                self.counters.stray_bytes += (buf.len() - n) as u64;
                buf.truncate(n);
                break;
            }
            // A function code the request did not ask for: its length is
            // unknown, so the frame ends with a silence of the gap's length.
            let wait_until = if expected.is_none() && buf.len() >= 2 {
                deadline.min(Instant::now() + 2 * self.gap.max(Duration::from_millis(2)))
            } else {
                deadline
            };
            match timeout_at(wait_until, self.io.read(&mut chunk)).await {
                Ok(Ok(0)) => {
                    return Err(Failure::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "the port was closed")));
                }
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return Err(Failure::Io(e)),
                Err(_elapsed) if buf.is_empty() => return Err(Failure::Timeout),
                Err(_elapsed) if expected.is_none() && buf.len() >= 2 => {
                    return Err(Failure::Bad(classify_unknown(&buf, self.unit, fc)));
                }
                Err(_elapsed) => {
                    return Err(Failure::Bad(Fault::ShortFrame {
                        got: buf.len(),
                        expected: expected.unwrap_or(buf.len() + 1),
                    }));
                }
            }
            if buf.len() > MAX_ADU {
                return Err(Failure::Bad(classify_unknown(&buf, self.unit, fc)));
            }
        }
        if crc16(&buf) != 0 {
            return Err(Failure::Bad(Fault::BadCrc { len: buf.len() }));
        }
        if buf[0] != self.unit {
            return Err(Failure::Bad(Fault::WrongUnit { expected: self.unit, got: buf[0] }));
        }
        if buf[1] == fc | 0x80 {
            return Ok(Reply::Exception(ExceptionCode::new(buf[2])));
        }
        Ok(Reply::Data(buf[2..buf.len() - 2].to_vec()))
    }

    /// Reads and drops what is waiting (a reply that came after its timeout,
    /// echoes, noise), without waiting for more.
    async fn drain(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 256];
        let mut dropped = 0usize;
        while dropped < MAX_DRAIN {
            match timeout(Duration::ZERO, self.io.read(&mut scratch)).await {
                Ok(Ok(0)) | Err(_) => break,
                Ok(Ok(n)) => dropped += n,
                Ok(Err(e)) => return Err(e),
            }
        }
        self.counters.stray_bytes += dropped as u64;
        Ok(())
    }
}

/// A reply that passed the framing checks.
enum Reply {
    /// The data after the function code.
    Data(Vec<u8>),
    Exception(ExceptionCode),
}

/// The length of the reply frame in `buf` to a request of function `fc`,
/// once its first bytes tell it; `None` while they do not, or when the
/// function code is not the request's (its length is unknown).
fn expected_len(buf: &[u8], fc: u8) -> Option<usize> {
    let got = *buf.get(1)?;
    if got == fc | 0x80 {
        return Some(5);
    }
    if got != fc {
        return None;
    }
    match fc {
        FC_READ_HOLDING => buf.get(2).map(|&n| 5 + usize::from(n)),
        _ => Some(8),
    }
}

/// A reply of a function the request did not ask for, ended by silence: a
/// bad CRC if its bytes do not check (a garbled function code), else another
/// unit's or another function's frame.
fn classify_unknown(buf: &[u8], unit: u8, fc: u8) -> Fault {
    if crc16(buf) != 0 {
        Fault::BadCrc { len: buf.len() }
    } else if buf[0] != unit {
        Fault::WrongUnit { expected: unit, got: buf[0] }
    } else {
        Fault::WrongFunction { expected: fc, got: buf[1] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{DuplexStream, duplex};

    fn args(timeout_ms: u64, retries: u32) -> LinkArgs {
        LinkArgs { port: "test".into(), baud: 19_200, parity: Parity::Even, stop_bits: 1, unit: 1, timeout_ms, retries }
    }

    fn frame(mut body: Vec<u8>) -> Vec<u8> {
        let crc = crc16(&body);
        body.extend_from_slice(&crc.to_le_bytes());
        body
    }

    async fn read_request(dev: &mut DuplexStream) -> [u8; 8] {
        let mut req = [0u8; 8];
        dev.read_exact(&mut req).await.unwrap();
        req
    }

    #[test]
    fn gap_is_three_and_a_half_characters() {
        assert_eq!(inter_frame_gap(19_200), Duration::from_nanos(2_005_209));
        assert_eq!(inter_frame_gap(9_600), Duration::from_nanos(4_010_417));
        assert_eq!(inter_frame_gap(38_400), Duration::from_micros(1_750));
        assert_eq!(inter_frame_gap(115_200), Duration::from_micros(1_750));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let ms: Vec<u128> = (1..=7).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn mode_and_exception_text() {
        assert_eq!(args(1, 0).mode(), "19200 8E1");
        assert_eq!(
            describe_exception(ExceptionCode::IllegalDataAddress, 0x0100),
            "exception 02 illegal data address at 0x0100"
        );
        assert_eq!(describe_exception(ExceptionCode::Custom(0x42), 7), "exception 42 non-standard at 0x0007");
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_is_retried_and_a_late_reply_is_not_taken_for_the_next() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 1));
        let device = async {
            // First request: answer too late (after the master's timeout).
            let req = read_request(&mut dev).await;
            assert_eq!(&req[..6], [1, 3, 0x01, 0x00, 0x00, 0x01]);
            tokio::time::sleep(Duration::from_millis(120)).await;
            dev.write_all(&frame(vec![1, 3, 2, 0xDE, 0xAD])).await.unwrap();
            // The retry: answer in time.
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 3, 2, 0x33, 0xE4])).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0100, 1), device);
        assert_eq!(res.unwrap().unwrap(), [13284]);
        let c = link.counters();
        assert_eq!((c.requests, c.timeouts, c.replies), (2, 1, 1));
        assert_eq!(c.stray_bytes, 7, "the late reply was dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn exceptions_are_values_and_not_retried() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 2));
        let device = async {
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 0x83, 0x02])).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0500, 1), device);
        assert_eq!(res.unwrap(), Err(ExceptionCode::IllegalDataAddress));
        let c = link.counters();
        assert_eq!((c.requests, c.exceptions, c.timeouts), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn wrong_length_and_silence_end_in_errors_not_panics() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 1));
        let device = async {
            // Two registers where one was asked for, then silence.
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 3, 4, 0, 1, 0, 2])).await.unwrap();
            let _ = read_request(&mut dev).await;
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0100, 1), device);
        assert!(matches!(res, Err(LinkError::NoReply { tries: 2, timeout_ms: 100 })), "{res:?}");
        let c = link.counters();
        assert_eq!((c.requests, c.bad_content, c.timeouts), (2, 1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_single_write_is_sent_as_function_06_and_its_echo_checked() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 1));
        let device = async {
            let req = read_request(&mut dev).await;
            assert_eq!(req[..6], [1, 0x06, 0x02, 0x10, 0x2C, 0xEC], "lvp_mv = 11500");
            assert_eq!(crc16(&req), 0);
            // The echo, as the standard wants it.
            dev.write_all(&req).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.write_single(0x0210, 11_500), device);
        assert_eq!(res.unwrap(), Ok(()));
        assert_eq!((link.counters().requests, link.counters().replies), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_multiple_write_is_sent_as_function_16_and_its_count_checked() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 0));
        let device = async {
            // 1 + 1 + 2 + 2 + 1 + 4 + 2 bytes: two registers.
            let mut req = [0u8; 13];
            dev.read_exact(&mut req).await.unwrap();
            assert_eq!(req[..11], [1, 0x10, 0x04, 0x05, 0x00, 0x02, 4, 0xFF, 0xFE, 0x79, 0x60]);
            assert_eq!(crc16(&req), 0);
            dev.write_all(&frame(vec![1, 0x10, 0x04, 0x05, 0x00, 0x02])).await.unwrap();
        };
        // cal_current_ma = −100 A, an I32 high word first.
        let words = [0xFFFE, 0x7960];
        let (res, ()) = tokio::join!(link.write_multiple(0x0405, &words), device);
        assert_eq!(res.unwrap(), Ok(()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_write_is_an_exception_value_and_not_retried() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 2));
        let device = async {
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 0x86, 0x03])).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.write_single(0x0200, 5), device);
        assert_eq!(res.unwrap(), Err(ExceptionCode::IllegalDataValue));
        let c = link.counters();
        assert_eq!((c.requests, c.exceptions, c.timeouts), (1, 1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_whose_reply_is_lost_or_wrong_is_retried_then_fails() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 2));
        let device = async {
            // 1: no reply (timeout). 2: an echo of another value (bad frame). 3: a good echo.
            let _ = read_request(&mut dev).await;
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 0x06, 0x02, 0x00, 0x00, 0x06])).await.unwrap();
            let req = read_request(&mut dev).await;
            dev.write_all(&req).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.write_single(0x0200, 5), device);
        assert_eq!(res.unwrap(), Ok(()));
        let c = link.counters();
        assert_eq!((c.requests, c.timeouts, c.bad_content, c.replies), (3, 1, 1, 1));

        // Silence on every try: no reply, and the error says so.
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 1));
        let device = async {
            let _ = read_request(&mut dev).await;
            let _ = read_request(&mut dev).await;
        };
        let (res, ()) = tokio::join!(link.write_single(0x0200, 5), device);
        assert!(matches!(res, Err(LinkError::NoReply { tries: 2, timeout_ms: 100 })), "{res:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_multiple_write_of_no_or_too_many_registers_sends_nothing() {
        let (io, _dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 0));
        for n in [0usize, 124] {
            let res = link.write_multiple(0x0200, &vec![0; n]).await;
            let Err(LinkError::BadRequest(why)) = res else { panic!("{res:?}") };
            assert!(why.contains(&format!("{n} registers")), "{why}");
        }
        assert_eq!(link.counters().requests, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_are_separated_by_the_gap() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 0));
        let device = async {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let _ = read_request(&mut dev).await;
                seen.push(Instant::now());
                dev.write_all(&frame(vec![1, 3, 2, 0, 7])).await.unwrap();
            }
            seen
        };
        let master = async {
            let a = link.read_holding(0, 1).await;
            let b = link.read_holding(0, 1).await;
            (a, b)
        };
        let ((a, b), seen) = tokio::join!(master, device);
        assert_eq!(a.unwrap().unwrap(), [7]);
        assert_eq!(b.unwrap().unwrap(), [7]);
        assert!(seen[1] - seen[0] >= inter_frame_gap(19_200));
    }

    #[tokio::test(start_paused = true)]
    async fn issue_17_each_bad_reply_is_classified_and_retried_and_busy_is_retried() {
        let (io, mut dev) = duplex(512);
        let mut link = Link::new(io, &args(100, 6));
        let device = async {
            // 1: bad CRC.
            let _ = read_request(&mut dev).await;
            let mut f = frame(vec![1, 3, 2, 0x33, 0xE4]);
            f[6] ^= 0xFF;
            dev.write_all(&f).await.unwrap();
            // 2: a valid frame from unit 3.
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![3, 3, 2, 0x33, 0xE4])).await.unwrap();
            // 3: another function (a valid 04 reply).
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 4, 2, 0x33, 0xE4])).await.unwrap();
            // 4: cut short.
            let _ = read_request(&mut dev).await;
            dev.write_all(&[1, 3, 2, 0x33]).await.unwrap();
            // 5: exception 06 server device busy.
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 0x83, 0x06])).await.unwrap();
            // 6: silence. 7: the answer.
            let _ = read_request(&mut dev).await;
            let _ = read_request(&mut dev).await;
            dev.write_all(&frame(vec![1, 3, 2, 0x33, 0xE4])).await.unwrap();
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0100, 1), device);
        assert_eq!(res.unwrap().unwrap(), [13284]);
        let c = link.counters();
        assert_eq!(
            (c.requests, c.bad_crc, c.wrong_unit, c.wrong_function, c.short_frames, c.busy, c.timeouts, c.replies),
            (7, 1, 1, 1, 1, 1, 1, 1),
            "{c:?}"
        );
        assert_eq!(c.exceptions, 0, "busy was retried, not the answer");
        assert!(link.last_exchange().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn issue_17_a_wrong_unit_is_named_in_words_not_debug_text() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 1));
        let device = async {
            for _ in 0..2 {
                let _ = read_request(&mut dev).await;
                dev.write_all(&frame(vec![3, 3, 2, 0x33, 0xE4])).await.unwrap();
            }
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0100, 1), device);
        let e = res.unwrap_err().to_string();
        assert_eq!(e, "reply from unit 3 (expected unit 1) (after 2 tries)");
        assert!(!e.contains("Header") && !e.contains("slave_id"), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn issue_17_illegal_address_is_not_retried_and_busy_to_the_end_is_the_answer() {
        let (io, mut dev) = duplex(256);
        let mut link = Link::new(io, &args(100, 2));
        let device = async {
            for _ in 0..3 {
                let _ = read_request(&mut dev).await;
                dev.write_all(&frame(vec![1, 0x83, 0x06])).await.unwrap();
            }
        };
        let (res, ()) = tokio::join!(link.read_holding(0x0100, 1), device);
        assert_eq!(res.unwrap(), Err(ExceptionCode::ServerDeviceBusy));
        let c = link.counters();
        assert_eq!((c.requests, c.busy, c.exceptions), (3, 3, 1));
        assert_eq!(
            describe_exception(ExceptionCode::ServerDeviceBusy, 0x0100),
            "exception 06 server device busy at 0x0100"
        );
    }
}
