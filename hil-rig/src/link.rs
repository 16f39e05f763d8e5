//! The serial link to one Modbus RTU slave: port settings, opening the port,
//! and read requests with a timeout, retries, back-off and the inter-frame gap
//! that tokio-modbus's RTU client does not provide.
//!
//! tokio-modbus 0.17 nests its results, `Result<Result<T, ExceptionCode>,
//! Error>`: a Modbus exception is the device's answer, not a link failure. We
//! keep that nesting, with [`LinkError`] as the outer error.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use clap::{Args, value_parser};
use smartpro_sim::serial;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_modbus::client::{Client, Context, rtu};
use tokio_modbus::{ExceptionCode, Request, Response, Slave};
use tokio_serial::{SerialPortBuilderExt, SerialStream};

/// Serial line and slave settings, shared by every subcommand that talks to a board.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Serial link")]
pub struct LinkArgs {
    /// Serial device: a USB-RS485 adapter (/dev/ttyUSB0) or the /dev/pts/N
    /// that `smartpro-sim serve` prints
    #[arg(long, value_name = "DEVICE", env = "HIL_RIG_PORT")]
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
    #[arg(long, default_value_t = 1, env = "HIL_RIG_UNIT",
          value_parser = value_parser!(u8).range(1..=247))]
    pub unit: u8,
    /// Reply timeout of one request
    #[arg(long, value_name = "MS", default_value_t = 500,
          value_parser = value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
    /// Retries of a request after a timeout or a bad reply (not after an exception)
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

/// Why a request got no usable reply, after all its tries.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no reply after {tries} tries (timeout {timeout_ms} ms)")]
    NoReply { tries: u32, timeout_ms: u64 },
    #[error("I/O error (after {tries} tries): {source}")]
    Io { tries: u32, source: io::Error },
    #[error("bad reply (after {tries} tries): {message}")]
    BadFrame { tries: u32, message: String },
    /// The request itself cannot be sent (nothing went on the line).
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// The outcome of a read: words, or the device's exception, or a link failure.
pub type ReadResult = Result<Result<Vec<u16>, ExceptionCode>, LinkError>;

/// The outcome of a write: done, or the device's exception (e.g. 03 for a
/// value outside the register's range), or a link failure.
pub type WriteResult = Result<Result<(), ExceptionCode>, LinkError>;

/// Most registers one function-16 request may write (Modbus Application
/// Protocol v1.1b3, 6.12).
pub const MAX_REGS_PER_WRITE: u16 = 123;

/// `exception 02 illegal data address at 0x0100`.
pub fn describe_exception(code: ExceptionCode, addr: u16) -> String {
    let name = match code {
        ExceptionCode::Custom(_) => "non-standard".to_string(),
        c => c.to_string().to_lowercase(),
    };
    format!("exception {:02X} {name} at 0x{addr:04X}", u8::from(code))
}

/// What happened on the link, for the summary at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Requests sent, retries included.
    pub requests: u64,
    /// Requests answered with data.
    pub replies: u64,
    /// Requests answered with a Modbus exception.
    pub exceptions: u64,
    pub timeouts: u64,
    /// Errors of the port itself (e.g. the adapter was unplugged).
    pub io_errors: u64,
    /// Replies that could not be used: CRC or framing errors, a wrong unit,
    /// function code or length.
    pub bad_frames: u64,
    /// Bytes that arrived outside any reply (late replies, noise) and were
    /// dropped before a request.
    pub stray_bytes: u64,
}

/// A Modbus RTU master on one port, talking to one unit.
pub struct Link<T> {
    port: SharedPort<T>,
    ctx: Context,
    unit: u8,
    timeout: Duration,
    retries: u32,
    gap: Duration,
    /// Earliest start of the next request (end of the last exchange + gap).
    next_tx: Instant,
    counters: Counters,
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
    /// Opens the port and attaches a Modbus RTU client to it.
    pub fn open(args: &LinkArgs) -> Result<Self, OpenError> {
        Ok(Self::new(open(args)?, args))
    }
}

impl<T> Link<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// A link over any byte stream (a serial port, a pty, an in-memory pipe).
    pub fn new(io: T, args: &LinkArgs) -> Self {
        let port = SharedPort::new(io);
        let ctx = rtu::attach_slave(port.clone(), Slave(args.unit));
        let gap = inter_frame_gap(args.baud);
        Self {
            port,
            ctx,
            unit: args.unit,
            timeout: Duration::from_millis(args.timeout_ms),
            retries: args.retries,
            gap,
            next_tx: Instant::now(),
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        Counters { stray_bytes: self.port.stray_bytes(), ..self.counters }
    }

    /// Reads `count` holding registers (function 03) from `addr`.
    ///
    /// Each try waits for the inter-frame gap and is bounded by the timeout.
    /// Timeouts, I/O errors and unusable replies are retried after a back-off;
    /// an exception is the device's answer and is returned at once.
    pub async fn read_holding(&mut self, addr: u16, count: u16) -> ReadResult {
        self.exchange(Request::ReadHoldingRegisters(addr, count), |reply| match reply {
            Response::ReadHoldingRegisters(words) if words.len() == usize::from(count) => Ok(words),
            // Checked here instead of by `Reader::read_holding_registers`,
            // which only `debug_assert`s the length (a panic in debug builds).
            Response::ReadHoldingRegisters(words) => {
                Err(format!("{} registers in the reply to a read of {count} at 0x{addr:04X}", words.len()))
            }
            other => Err(format!("unexpected reply {other:?}")),
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
        self.exchange(Request::WriteSingleRegister(addr, value), |reply| match reply {
            Response::WriteSingleRegister(a, v) if a == addr && v == value => Ok(()),
            Response::WriteSingleRegister(a, v) => {
                Err(format!("write of {value} at 0x{addr:04X} echoed {v} at 0x{a:04X}"))
            }
            other => Err(format!("unexpected reply {other:?}")),
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
        let request = Request::WriteMultipleRegisters(addr, std::borrow::Cow::Owned(values.to_vec()));
        self.exchange(request, |reply| match reply {
            Response::WriteMultipleRegisters(a, n) if a == addr && n == count => Ok(()),
            Response::WriteMultipleRegisters(a, n) => {
                Err(format!("write of {count} registers at 0x{addr:04X} acknowledged {n} at 0x{a:04X}"))
            }
            other => Err(format!("unexpected reply {other:?}")),
        })
        .await
    }

    /// One request with the gap, timeout, retries and back-off; `accept`
    /// turns a reply into the value or says why it is unusable (a bad frame,
    /// retried). An exception is returned at once.
    async fn exchange<V>(
        &mut self,
        request: Request<'static>,
        accept: impl Fn(Response) -> Result<V, String>,
    ) -> Result<Result<V, ExceptionCode>, LinkError> {
        let mut last = None;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                sleep(backoff(attempt)).await;
            }
            sleep_until(self.next_tx).await;
            self.counters.requests += 1;
            let reply = timeout(self.timeout, self.ctx.call(request.clone())).await;
            self.next_tx = Instant::now() + self.gap;
            let failure = match reply {
                Ok(Ok(Ok(response))) => match accept(response) {
                    Ok(v) => {
                        self.counters.replies += 1;
                        return Ok(Ok(v));
                    }
                    Err(why) => Failure::BadFrame(why),
                },
                Ok(Ok(Err(code))) => {
                    self.counters.exceptions += 1;
                    return Ok(Err(code));
                }
                Ok(Err(tokio_modbus::Error::Protocol(e))) => Failure::BadFrame(e.to_string()),
                // The RTU codec reports CRC and framing trouble as InvalidData.
                Ok(Err(tokio_modbus::Error::Transport(e))) if e.kind() == io::ErrorKind::InvalidData => {
                    Failure::BadFrame(e.to_string())
                }
                Ok(Err(tokio_modbus::Error::Transport(e))) => Failure::Io(e),
                Err(_elapsed) => Failure::Timeout,
            };
            match failure {
                Failure::Timeout => self.counters.timeouts += 1,
                Failure::Io(_) => self.counters.io_errors += 1,
                Failure::BadFrame(_) => self.counters.bad_frames += 1,
            }
            self.reset();
            last = Some(failure);
        }
        let tries = self.retries + 1;
        Err(match last {
            Some(Failure::Io(source)) => LinkError::Io { tries, source },
            Some(Failure::BadFrame(message)) => LinkError::BadFrame { tries, message },
            Some(Failure::Timeout) | None => LinkError::NoReply { tries, timeout_ms: self.timeout.as_millis() as u64 },
        })
    }

    /// After a failed exchange: a fresh client (tokio-util's `Framed` answers
    /// the call after a decode error with a spurious end of stream), and stray
    /// input dropped before the next request so that a late reply is not
    /// taken for the answer to it.
    fn reset(&mut self) {
        self.ctx = rtu::attach_slave(self.port.clone(), Slave(self.unit));
    }
}

#[derive(Debug)]
enum Failure {
    Timeout,
    Io(io::Error),
    BadFrame(String),
}

/// The port, shared so that a fresh tokio-modbus client can be attached to it
/// after a failure (a `Context` owns its transport and cannot give it back).
///
/// Before the first write of each request it drops whatever input is
/// waiting: a reply that came after its timeout, echoes, noise.
struct SharedPort<T>(Arc<Mutex<PortState<T>>>);

struct PortState<T> {
    io: T,
    /// Input has been read since the last write: drop stray input before the next.
    drain: bool,
    stray_bytes: u64,
}

/// Most stray bytes dropped before one request: a device that never stops
/// talking must not stall the master.
const MAX_DRAIN: usize = 4096;

impl<T> SharedPort<T> {
    fn new(io: T) -> Self {
        Self(Arc::new(Mutex::new(PortState { io, drain: true, stray_bytes: 0 })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, PortState<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stray_bytes(&self) -> u64 {
        self.state().stray_bytes
    }
}

impl<T> Clone for SharedPort<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T: AsyncRead + Unpin> PortState<T> {
    /// Reads and drops what is waiting, without waiting for more.
    fn drain_input(&mut self, cx: &mut TaskContext<'_>) -> io::Result<()> {
        let mut scratch = [0u8; 256];
        let mut dropped = 0usize;
        while dropped < MAX_DRAIN {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => dropped += buf.filled().len(),
                Poll::Ready(Ok(())) | Poll::Pending => break,
                Poll::Ready(Err(e)) => return Err(e),
            }
        }
        self.stray_bytes += dropped as u64;
        self.drain = false;
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SharedPort<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut st = self.state();
        st.drain = true;
        Pin::new(&mut st.io).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for SharedPort<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut TaskContext<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.state();
        if st.drain {
            if let Err(e) = st.drain_input(cx) {
                return Poll::Ready(Err(e));
            }
        }
        Pin::new(&mut st.io).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.state().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.state().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::modbus::crc::crc16;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

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
        assert_eq!((c.requests, c.bad_frames, c.timeouts), (2, 1, 1));
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
        assert_eq!((c.requests, c.timeouts, c.bad_frames, c.replies), (3, 1, 1, 1));

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
}
