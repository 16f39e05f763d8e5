//! Where an RTU frame ends: the one framer of the workspace.
//!
//! *Modbus over Serial Line V1.02*, §2.5.1 (RTU mode, 11-bit character frame) and
//! §2.5.1.1: a frame ends after a silence of at least 3.5 character times (t3.5;
//! fixed at 1.75 ms above 19200 baud). [`RtuFramer`] takes a stream of bytes with
//! their arrival times and hands out complete frames ([`Completed`]); the board's
//! [`RtuSlave`](super::rtu::RtuSlave) frames its own line with one, and a bus
//! monitor (`smartpro-sim serve`) frames the line once with one and hands every
//! frame to each board's slave, which then counts and executes it exactly as if it
//! had framed it itself.
//!
//! # The arrival model
//!
//! Bytes come in chunks, each with one timestamp. What the timestamp means is the
//! link's [`Arrival`]:
//!
//! * [`Arrival::Paced`] (a UART, or `serve --line-timing`, which paces the line at
//!   the baud rate): the chunk's bytes crossed the line back to back and its *last*
//!   byte ended at the timestamp. The silence before a chunk is its timestamp minus
//!   its own line time (`len` × character time) minus the end of the previous byte.
//! * [`Arrival::Burst`] (a pty, a TCP stream, a USB–RS485 adapter that delivers what
//!   it collected in bursts): the chunk's bytes arrive together at the timestamp.
//!   The silence before a chunk is its timestamp minus the previous chunk's, i.e.
//!   measured from the end of the last byte received.
//!
//! # When a frame is complete
//!
//! * **By silence** (both models): once the line has been silent for t3.5 after a
//!   frame's last byte, it is complete at that instant (`last byte + t3.5`). That is
//!   the only rule with [`Arrival::Paced`], as on a real line, where bytes that
//!   follow without a silence belong to the same frame (two requests back to back
//!   are one frame with a bad CRC).
//! * **By length** ([`Arrival::Burst`] only): a frame is complete as soon as its
//!   function code gives its length (FC03, 04, 06: 8 bytes; FC16, FC23: from the
//!   byte count; FC08 with a sub-function other than 00: 8 bytes; FC43/14: 7 bytes)
//!   and the CRC at that length is good: it is complete at its last byte's arrival,
//!   and the bytes after it start the next frame. A pty or TCP link has no line
//!   timing to honour, and this is how other slaves frame it (libmodbus, pymodbus).
//!   Requests whose length their function code does not give (FC08/00 echo,
//!   unknown function codes) end by silence.
//! * **A frame split by the link** ([`Arrival::Burst`]): the pieces of one request
//!   may arrive further apart than t3.5 (a USB adapter's latency timer cuts a long
//!   frame into packets some 16 ms apart; a scheduler splits a write). Bytes that
//!   arrive after a silence are joined, tentatively, to a frame that is still short
//!   of the length its function code gives; the join stands if the bytes complete
//!   that frame with a good CRC, and is undone at the first silence inside it as
//!   soon as they cannot (the function code turns out not to give a length, the CRC
//!   at the length is bad, or a complete request starts where the silence ended):
//!   the bytes before that silence are then a bad frame of their own, and framing
//!   starts again from the bytes after it. A frame short of its length is held
//!   meanwhile: no silence ends it, the next bytes decide. At most
//!   [`MAX_JOINS`] silences are joined into one frame.
//! * **Resync** ([`Arrival::Burst`]): when a silence ends bytes that are not one
//!   frame with a good CRC (garbage, a truncated frame, and a request read together
//!   because the reader was held off the CPU), every complete, CRC-good frame of the
//!   length its function code gives found in them is handed out as a frame of its
//!   own, and what lies before and between them as bad frames.
//! * **Overrun**: a frame that grows past [`MAX_ADU_LEN`] bytes without ending is
//!   discarded when it ends, as one [`Framed::Overrun`].
//!
//! Timestamps that are later than the real arrival (read latency) overestimate
//! the silence; keep such latency well below t3.5, or use [`Arrival::Burst`].

use super::MAX_ADU_LEN;
use super::crc::crc16;
use super::device_id::{ENCAPSULATED_INTERFACE_TRANSPORT, MEI_READ_DEVICE_ID};
use super::diagnostics::DIAGNOSTICS;
use super::pdu::{
    READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS, READ_WRITE_MULTIPLE_REGISTERS, WRITE_MULTIPLE_REGISTERS,
    WRITE_SINGLE_REGISTER,
};
use crate::time::{Duration, Instant};

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// Above this baud rate the spec fixes t1.5 and t3.5 (§2.5.1.1).
const FIXED_TIMING_ABOVE_BAUD: u32 = 19_200;
const FIXED_T1_5: Duration = Duration::from_micros(750);
const FIXED_T3_5: Duration = Duration::from_micros(1_750);

/// Serial parity (§2.5.1: even parity is the default, no parity needs 2 stop bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// What the timestamp of a chunk of received bytes means; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Arrival {
    /// The chunk's bytes crossed the line back to back, the last one ending at the
    /// timestamp (a UART; `serve --line-timing`). Frames end by silence only, and a
    /// reply waits for t3.5 after the last byte (RS-485 is half duplex).
    #[default]
    Paced,
    /// The chunk's bytes arrived together at the timestamp (a pty, TCP, a USB–RS485
    /// adapter). Frames also end by length, and a complete request is answered at once.
    Burst,
}

/// Serial line settings and the slave's unit id.
#[derive(Clone, Copy, Debug)]
pub struct RtuConfig {
    /// This slave's address, 1..=247 (§2.3). Frames for unit 0 are broadcasts.
    pub unit_id: u8,
    /// Bits per second; 0 is treated as 1.
    pub baud: u32,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    /// 8 for RTU; 7 is accepted for the character-time calculation only.
    pub data_bits: u8,
    /// How received bytes are timestamped ([`Arrival::Paced`] on a UART).
    pub arrival: Arrival,
}

impl Default for RtuConfig {
    /// Unit 1, 19200 baud, 8E1 (the spec's defaults: even parity, §2.5.1; 19200 baud
    /// is the rate every device must support), bytes from a UART.
    fn default() -> Self {
        RtuConfig {
            unit_id: 1,
            baud: 19_200,
            parity: Parity::Even,
            stop_bits: 1,
            data_bits: 8,
            arrival: Arrival::Paced,
        }
    }
}

impl RtuConfig {
    /// Bits per character on the line: start + data + parity + stop (11 for 8E1).
    pub const fn bits_per_char(&self) -> u64 {
        let parity = match self.parity {
            Parity::None => 0,
            Parity::Even | Parity::Odd => 1,
        };
        1 + self.data_bits as u64 + parity + self.stop_bits as u64
    }

    /// The time one character occupies the line: `bits_per_char / baud`,
    /// rounded **up** to whole nanoseconds (19200 8E1: 572 916.7 → 572 917 ns).
    pub fn char_time(&self) -> Duration {
        self.half_chars(2)
    }

    /// The inter-frame silence t3.5 (§2.5.1.1): 3.5 character times, rounded up to
    /// whole nanoseconds (19200 8E1: 2 005 208.3 → 2 005 209 ns); fixed at 1750 µs
    /// above 19200 baud.
    pub fn t3_5(&self) -> Duration {
        if self.baud > FIXED_TIMING_ABOVE_BAUD { FIXED_T3_5 } else { self.half_chars(7) }
    }

    /// The inter-character limit t1.5 (§2.5.1.1): 1.5 character times, rounded up
    /// to whole nanoseconds; fixed at 750 µs above 19200 baud.
    pub fn t1_5(&self) -> Duration {
        if self.baud > FIXED_TIMING_ABOVE_BAUD { FIXED_T1_5 } else { self.half_chars(3) }
    }

    /// The time `n` characters occupy the line (saturating).
    pub fn line_time(&self, n: usize) -> Duration {
        Duration(self.char_time().0.saturating_mul(u64::try_from(n).unwrap_or(u64::MAX)))
    }

    /// `halves / 2` character times, rounded up. Cannot overflow: at most
    /// 512 bits × 7 × 10⁹.
    fn half_chars(&self, halves: u64) -> Duration {
        let baud = u64::from(self.baud.max(1));
        let numerator = self.bits_per_char() * halves * NANOS_PER_SEC;
        Duration(numerator.div_ceil(2 * baud))
    }
}

/// What ended: the bytes of a frame, or a frame too long to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    /// The bytes between two frame boundaries, unchecked: a frame if
    /// [`Frame::new_checked`](super::frame::Frame::new_checked) accepts them, else a
    /// bad frame (bad CRC, shorter than 4 bytes).
    Frame(&'a [u8]),
    /// More than [`MAX_ADU_LEN`] bytes without a frame boundary, `len` in all: discarded.
    Overrun { len: usize },
}

/// A frame the framer completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completed<'a> {
    pub framed: Framed<'a>,
    /// When its last byte arrived.
    pub last_byte_at: Instant,
    /// When it was known to be complete: `last_byte_at` for a frame complete by
    /// length, `last_byte_at + t3.5` for one ended by silence. A slave answers from here.
    pub complete_at: Instant,
}

/// The length of a request, as far as its first bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Length {
    /// The bytes so far do not reach the field that gives it.
    NeedMore,
    /// This many bytes, CRC included.
    Known(usize),
    /// The function code does not give it (or gives more than an ADU can hold).
    Unknown,
}

/// The length of the RTU request whose `i`-th byte is `byte(i)`.
fn request_len(byte: impl Fn(usize) -> Option<u8>) -> Length {
    let at = |i: usize| byte(i).ok_or(Length::NeedMore);
    let len = || -> Result<usize, Length> {
        Ok(match at(1)? {
            READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS | WRITE_SINGLE_REGISTER => 8,
            // unit, fc, address, quantity, byte count | values | CRC
            WRITE_MULTIPLE_REGISTERS => 9 + usize::from(at(6)?),
            // unit, fc, read address, read quantity, write address, write quantity, byte count | ...
            READ_WRITE_MULTIPLE_REGISTERS => 13 + usize::from(at(10)?),
            // Every sub-function but 00 (an echo of any length) has two data bytes.
            DIAGNOSTICS if u16::from_be_bytes([at(2)?, at(3)?]) != 0 => 8,
            ENCAPSULATED_INTERFACE_TRANSPORT if at(2)? == MEI_READ_DEVICE_ID => 7,
            _ => return Err(Length::Unknown),
        })
    };
    match len() {
        Ok(n) if n <= MAX_ADU_LEN => Length::Known(n),
        Ok(_) => Length::Unknown,
        Err(e) => e,
    }
}

/// The length of the complete, CRC-good request at the start of `bytes`, if there is one.
fn complete_request(bytes: &[u8]) -> Option<usize> {
    match request_len(|i| bytes.get(i).copied()) {
        Length::Known(n) if bytes.get(..n).is_some_and(|f| crc16(f) == 0) => Some(n),
        _ => None,
    }
}

/// The first complete, CRC-good request inside `bytes` after its first byte: its
/// offset and length.
fn request_inside(bytes: &[u8]) -> Option<(usize, usize)> {
    (1..bytes.len()).find_map(|k| complete_request(bytes.get(k..)?).map(|n| (k, n)))
}

/// Most silences joined into one frame ([`Arrival::Burst`]): enough for a 256-byte
/// frame at 19200 baud (146 ms on the wire) cut into packets every 16 ms by a USB
/// adapter's latency timer.
pub const MAX_JOINS: usize = 16;

/// Frames a timestamped byte stream; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct RtuFramer {
    config: RtuConfig,
    /// The frame in progress: `buf[..len]`.
    buf: [u8; MAX_ADU_LEN],
    len: usize,
    /// Arrival time of the last byte received; `None` while idle.
    last: Option<Instant>,
    /// The frame in progress outgrew the buffer: its length so far (its bytes are dropped).
    overrun: Option<usize>,
    /// Burst: the frame in progress is short of the length its function code gives
    /// and holds no complete request: no silence ends it, the next bytes decide.
    held: bool,
    /// Burst: the silences joined into the frame in progress, oldest first: where in
    /// `buf` the bytes after each begin (`join_at`), and when the byte before it
    /// arrived (`join_before`); `joins` of them.
    join_at: [u8; MAX_JOINS],
    join_before: [Instant; MAX_JOINS],
    joins: usize,
}

impl RtuFramer {
    /// An idle framer for `config`'s line.
    pub const fn new(config: RtuConfig) -> Self {
        RtuFramer {
            config,
            buf: [0; MAX_ADU_LEN],
            len: 0,
            last: None,
            overrun: None,
            held: false,
            join_at: [0; MAX_JOINS],
            join_before: [Instant::ZERO; MAX_JOINS],
            joins: 0,
        }
    }

    pub fn config(&self) -> &RtuConfig {
        &self.config
    }

    /// Replace the configuration; timing decisions from now on use the new one,
    /// buffered bytes are kept.
    pub fn set_config(&mut self, config: RtuConfig) {
        self.config = config;
        self.held = self.holds();
    }

    /// Bytes received; `now` is their arrival time as the [`Arrival`] model says.
    /// Every frame this completes goes to `sink`, oldest first: the frame before a
    /// silence, and (burst) frames complete by length. Empty `bytes` are ignored.
    pub fn receive(&mut self, now: Instant, bytes: &[u8], sink: &mut impl FnMut(Completed<'_>)) {
        if bytes.is_empty() {
            return;
        }
        if let Some(last) = self.last {
            let line = match self.config.arrival {
                Arrival::Paced => self.config.line_time(bytes.len()),
                Arrival::Burst => Duration::ZERO,
            };
            let silence = Duration(now.saturating_since(last).0.saturating_sub(line.0));
            if silence >= self.config.t3_5() && !self.join(last) {
                self.end(last, sink);
            }
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            if let Some(total) = self.overrun.as_mut() {
                *total = total.saturating_add(rest.len());
                break;
            }
            let free = MAX_ADU_LEN.saturating_sub(self.len);
            if free == 0 {
                self.overrun = Some(self.len.saturating_add(rest.len()));
                self.len = 0;
                self.joins = 0;
                break;
            }
            let (piece, tail) = rest.split_at(free.min(rest.len()));
            if let Some(dst) = self.buf.get_mut(self.len..self.len + piece.len()) {
                dst.copy_from_slice(piece);
                self.len += piece.len();
            }
            rest = tail;
            if self.config.arrival == Arrival::Burst {
                self.settle(now, sink);
            }
        }
        self.last = Some(now);
        if self.len == 0 && self.overrun.is_none() {
            self.last = None;
        }
        self.held = self.holds();
    }

    /// Ends the frame in progress if the line has been silent for t3.5 since its
    /// last byte (and, burst, it is not held: see the [module docs](self)).
    pub fn poll(&mut self, now: Instant, sink: &mut impl FnMut(Completed<'_>)) {
        if let Some(due) = self.poll_at() {
            if now >= due {
                if let Some(last) = self.last {
                    self.end(last, sink);
                }
            }
        }
    }

    /// When the frame in progress ends by silence, if nothing more arrives; `None`
    /// while idle or while the frame is held.
    pub fn poll_at(&self) -> Option<Instant> {
        if self.held { None } else { self.last.map(|l| l + self.config.t3_5()) }
    }

    /// Whether a frame is still arriving at `now` on a half-duplex line
    /// ([`Arrival::Paced`]): bytes in progress and less than t3.5 of silence since. A
    /// slave must not answer then. Always `false` with [`Arrival::Burst`].
    pub fn line_busy(&self, now: Instant) -> bool {
        self.config.arrival == Arrival::Paced && self.last.is_some_and(|l| now < l + self.config.t3_5())
    }

    /// Ends whatever is in progress, held or not (when the line closes).
    pub fn flush(&mut self, sink: &mut impl FnMut(Completed<'_>)) {
        if let Some(last) = self.last {
            self.end(last, sink);
        }
    }

    /// Burst: joins the bytes about to arrive after a silence to the frame in
    /// progress, tentatively, if it is held; `false` if it is not (the silence ends it).
    fn join(&mut self, last: Instant) -> bool {
        let Ok(at) = u8::try_from(self.len) else { return false };
        if !self.held || self.joins >= MAX_JOINS {
            return false;
        }
        if let (Some(a), Some(b)) = (self.join_at.get_mut(self.joins), self.join_before.get_mut(self.joins)) {
            (*a, *b) = (at, last);
            self.joins += 1;
        }
        true
    }

    /// Burst: hands out the complete requests at the start of the buffer, undoing
    /// joins that cannot stand (see the [module docs](self)).
    fn settle(&mut self, now: Instant, sink: &mut impl FnMut(Completed<'_>)) {
        loop {
            let bytes = self.buf.get(..self.len).unwrap_or(&[]);
            if let Some(n) = complete_request(bytes) {
                sink(Completed {
                    framed: Framed::Frame(bytes.get(..n).unwrap_or(&[])),
                    last_byte_at: now,
                    complete_at: now,
                });
                self.consume(n);
                continue;
            }
            let joined = self.join_at.get(..self.joins).unwrap_or(&[]);
            let (Some(&first), Some(&before)) = (joined.first(), self.join_before.first()) else { break };
            let dead = match request_len(|i| bytes.get(i).copied()) {
                Length::NeedMore => false,
                Length::Known(n) => n <= bytes.len(),
                Length::Unknown => true,
            };
            let request_after_silence =
                joined.iter().any(|&at| bytes.get(usize::from(at)..).and_then(complete_request).is_some());
            if !dead && !request_after_silence {
                break;
            }
            let head = bytes.get(..usize::from(first)).unwrap_or(&[]);
            let complete_at = before + self.config.t3_5();
            sink(Completed { framed: Framed::Frame(head), last_byte_at: before, complete_at });
            self.consume(usize::from(first));
        }
    }

    /// Drops the first `n` bytes of the buffer, and the joins among them.
    fn consume(&mut self, n: usize) {
        let Some(bytes) = self.buf.get_mut(..self.len) else { return };
        let n = n.min(bytes.len());
        bytes.copy_within(n.., 0);
        self.len -= n;
        let mut kept = 0;
        for i in 0..self.joins {
            let (Some(&at), Some(&before)) = (self.join_at.get(i), self.join_before.get(i)) else { break };
            let Some(at) = usize::from(at).checked_sub(n).filter(|a| *a > 0).and_then(|a| u8::try_from(a).ok()) else {
                continue;
            };
            if let (Some(a), Some(b)) = (self.join_at.get_mut(kept), self.join_before.get_mut(kept)) {
                (*a, *b) = (at, before);
                kept += 1;
            }
        }
        self.joins = kept;
    }

    /// Burst: whether the frame in progress is to be held (see `held`).
    fn holds(&self) -> bool {
        let bytes = self.buf.get(..self.len).unwrap_or(&[]);
        self.config.arrival == Arrival::Burst
            && self.overrun.is_none()
            && !bytes.is_empty()
            && match request_len(|i| bytes.get(i).copied()) {
                Length::NeedMore => true,
                Length::Known(n) => n > bytes.len(),
                Length::Unknown => false,
            }
            && request_inside(bytes).is_none()
    }

    /// Ends the frame in progress, whose last byte arrived at `last`.
    fn end(&mut self, last: Instant, sink: &mut impl FnMut(Completed<'_>)) {
        let complete_at = last + self.config.t3_5();
        let done = |framed| Completed { framed, last_byte_at: last, complete_at };
        if let Some(len) = self.overrun.take() {
            sink(done(Framed::Overrun { len }));
        } else {
            let mut rest = self.buf.get(..self.len).unwrap_or(&[]);
            // Burst: resync on the complete requests inside bytes that are not one frame.
            while self.config.arrival == Arrival::Burst && rest.len() > 2 && crc16(rest) != 0 {
                let Some((at, n)) = request_inside(rest) else { break };
                let Some((before, frame)) = rest.split_at_checked(at) else { break };
                let Some((frame, after)) = frame.split_at_checked(n) else { break };
                sink(done(Framed::Frame(before)));
                sink(done(Framed::Frame(frame)));
                rest = after;
            }
            if !rest.is_empty() {
                sink(done(Framed::Frame(rest)));
            }
        }
        self.len = 0;
        self.last = None;
        self.held = false;
        self.joins = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::frame::{Frame, emit_frame};
    use proptest::prelude::*;

    fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_ADU_LEN];
        let n = emit_frame(unit, pdu, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// What came out: (bytes or `None` for an overrun, last byte, complete at).
    type Out = Vec<(Option<Vec<u8>>, Instant, Instant)>;

    struct Rig {
        framer: RtuFramer,
        out: Out,
    }

    impl Rig {
        fn new(arrival: Arrival) -> Rig {
            Rig { framer: RtuFramer::new(RtuConfig { arrival, ..RtuConfig::default() }), out: Vec::new() }
        }
        fn t35(&self) -> Duration {
            self.framer.config().t3_5()
        }
        fn receive(&mut self, at: Instant, bytes: &[u8]) {
            let out = &mut self.out;
            self.framer.receive(at, bytes, &mut |c| out.push(own(c)));
        }
        fn poll(&mut self, at: Instant) {
            let out = &mut self.out;
            self.framer.poll(at, &mut |c| out.push(own(c)));
        }
        fn take(&mut self) -> Out {
            std::mem::take(&mut self.out)
        }
    }

    fn own(c: Completed<'_>) -> (Option<Vec<u8>>, Instant, Instant) {
        let bytes = match c.framed {
            Framed::Frame(b) => Some(b.to_vec()),
            Framed::Overrun { .. } => None,
        };
        (bytes, c.last_byte_at, c.complete_at)
    }

    #[test]
    fn character_timing() {
        let c = RtuConfig::default();
        assert_eq!(c.bits_per_char(), 11);
        assert_eq!(c.char_time(), Duration(572_917)); // 572 916.67 ns rounded up
        assert_eq!(c.t3_5(), Duration(2_005_209)); // 2005.208 µs rounded up
        assert_eq!(c.t1_5(), Duration(859_375)); // exact
        assert_eq!(c.line_time(8), Duration(8 * 572_917));
        let fast = RtuConfig { baud: 115_200, ..c };
        assert_eq!(fast.t3_5(), us(1_750));
        assert_eq!(fast.t1_5(), us(750));
        assert_eq!(fast.char_time(), Duration(95_487)); // 95 486.1 ns
        let n81 = RtuConfig { baud: 9_600, parity: Parity::None, ..c };
        assert_eq!(n81.bits_per_char(), 10);
        assert_eq!(n81.t3_5(), Duration(3_645_834)); // 3 645 833.3 ns
        let n82 = RtuConfig { parity: Parity::None, stop_bits: 2, ..c };
        assert_eq!(n82.t3_5(), c.t3_5());
        let zero = RtuConfig { baud: 0, ..c };
        assert_eq!(zero.char_time(), Duration::from_secs(11));
    }

    #[test]
    fn request_lengths_from_the_function_code() {
        let len = |b: &[u8]| request_len(|i| b.get(i).copied());
        assert_eq!(len(&[1]), Length::NeedMore);
        assert_eq!(len(&[1, 3]), Length::Known(8));
        assert_eq!(len(&[1, 4]), Length::Known(8));
        assert_eq!(len(&[1, 6]), Length::Known(8));
        assert_eq!(len(&[1, 0x10, 0, 0, 0, 2]), Length::NeedMore);
        assert_eq!(len(&[1, 0x10, 0, 0, 0, 2, 4]), Length::Known(13));
        assert_eq!(len(&[1, 0x10, 0, 0, 0, 0x7F, 0xFE]), Length::Unknown, "more than an ADU");
        assert_eq!(len(&[1, 0x17, 0, 0, 0, 1, 0, 0, 0, 1, 2]), Length::Known(15));
        assert_eq!(len(&[1, 8, 0]), Length::NeedMore);
        assert_eq!(len(&[1, 8, 0, 0x0B]), Length::Known(8));
        assert_eq!(len(&[1, 8, 0, 0]), Length::Unknown, "the echo has any length");
        assert_eq!(len(&[1, 0x2B, 0x0E]), Length::Known(7));
        assert_eq!(len(&[1, 0x2B, 0x0D]), Length::Unknown);
        assert_eq!(len(&[1, 0x07]), Length::Unknown);
        for pdu in [&[3u8, 0, 0, 0, 1][..], &[0x10, 0, 0, 0, 1, 2, 0, 7], &[0x2B, 0x0E, 1, 0], &[8, 0, 0x0B, 0, 0]] {
            assert_eq!(complete_request(&adu(1, pdu)), Some(pdu.len() + 3), "{pdu:02x?}");
        }
    }

    #[test]
    fn paced_frames_end_by_silence_only() {
        let mut rig = Rig::new(Arrival::Paced);
        let req = adu(1, &[0x03, 0, 0, 0, 1]);
        let t = Instant::from_millis(10);
        rig.receive(t, &req);
        assert!(rig.take().is_empty(), "complete by length, but the line is not silent yet");
        assert_eq!(rig.framer.poll_at(), Some(t + rig.t35()));
        assert!(rig.framer.line_busy(t) && !rig.framer.line_busy(t + rig.t35()));
        rig.poll(t + Duration(rig.t35().0 - 1));
        assert!(rig.take().is_empty());
        rig.poll(t + rig.t35());
        assert_eq!(rig.take(), [(Some(req.clone()), t, t + rig.t35())]);
        // Two requests back to back: one frame (with a bad CRC), as on a real line.
        let t = Instant::from_millis(100);
        rig.receive(t, &req);
        rig.receive(t + rig.framer.config().line_time(8), &req);
        rig.poll(t + Duration::from_millis(20));
        let out = rig.take();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0.as_ref().map(Vec::len), Some(16));
    }

    #[test]
    fn paced_chunks_back_to_back_are_one_frame() {
        // Three chunks, back to back: chunk timestamps are 3-4 char times apart,
        // more than t3.5, yet the line was never silent.
        let mut rig = Rig::new(Arrival::Paced);
        let req = adu(1, &[0x03, 0, 3, 0, 1]);
        let ct = rig.framer.config().char_time();
        let mut t = Instant::from_secs(1);
        for chunk in req.chunks(3) {
            t += Duration(ct.0 * chunk.len() as u64);
            rig.receive(t, chunk);
        }
        rig.poll(t + rig.t35());
        assert_eq!(rig.take(), [(Some(req), t, t + rig.t35())]);
    }

    #[test]
    fn burst_requests_are_complete_at_their_last_byte() {
        let mut rig = Rig::new(Arrival::Burst);
        let req = adu(1, &[0x03, 0, 0, 0, 1]);
        let t = Instant::from_millis(10);
        rig.receive(t, &req);
        assert_eq!(rig.take(), [(Some(req.clone()), t, t)]);
        assert_eq!(rig.framer.poll_at(), None, "nothing in progress");
        assert!(!rig.framer.line_busy(t));
        // A valid request followed at once by another, in one read: two frames.
        let write = adu(1, &[0x10, 0, 0, 0, 2, 4, 0, 1, 0, 2]);
        let both = [req.clone(), write.clone()].concat();
        rig.receive(t + us(10_000), &both);
        let t2 = t + us(10_000);
        assert_eq!(rig.take(), [(Some(req.clone()), t2, t2), (Some(write), t2, t2)]);
        // Split in two reads with less than t3.5 between them: one frame, at the second.
        let t3 = t2 + us(10_000);
        rig.receive(t3, &req[..5]);
        assert!(rig.take().is_empty());
        rig.receive(t3 + us(1_000), &req[5..]);
        assert_eq!(rig.take(), [(Some(req), t3 + us(1_000), t3 + us(1_000))]);
    }

    #[test]
    fn burst_echo_of_unknown_length_ends_by_silence() {
        let mut rig = Rig::new(Arrival::Burst);
        let echo = adu(1, &[0x08, 0, 0, 0xA5, 0x37, 0x42]);
        let t = Instant::from_millis(10);
        rig.receive(t, &echo);
        assert!(rig.take().is_empty());
        assert_eq!(rig.framer.poll_at(), Some(t + rig.t35()));
        rig.poll(t + rig.t35());
        assert_eq!(rig.take(), [(Some(echo), t, t + rig.t35())]);
    }

    /// Issue 14, the burst defect: garbage or a truncated frame, then more than t3.5 of
    /// silence, then a request: the request is a frame of its own (answered).
    #[test]
    fn issue_14_burst_silence_is_measured_from_the_last_byte_received() {
        let req = adu(1, &[0x03, 0, 0, 0, 1]);
        let leads: [&[u8]; 4] = [&[0xFF, 0x00, 0x13], &req[..3], &req[..7], &[0x42]];
        for lead in leads {
            let mut rig = Rig::new(Arrival::Burst);
            let t = Instant::from_millis(10);
            rig.receive(t, lead);
            // 2.5 ms later: more than t3.5 (2.005 ms) after the last byte received, though
            // less than t3.5 plus the request's own 4.6 ms of line time.
            let t2 = t + us(2_500);
            rig.receive(t2, &req);
            let out = rig.take();
            assert_eq!(out, [(Some(lead.to_vec()), t, t + rig.t35()), (Some(req.clone()), t2, t2)], "{lead:02x?}");
        }
    }

    #[test]
    fn burst_write_split_further_apart_than_t3_5_is_joined_when_that_completes_it() {
        let mut rig = Rig::new(Arrival::Burst);
        let req = adu(1, &[0x06, 0, 4, 0, 4]);
        let t = Instant::from_millis(10);
        rig.receive(t, &req[..3]);
        assert_eq!(rig.framer.poll_at(), None, "short of its length: held");
        rig.poll(t + Duration::from_millis(50));
        assert!(rig.take().is_empty());
        let t2 = t + Duration::from_millis(16);
        rig.receive(t2, &req[3..]);
        assert_eq!(rig.take(), [(Some(req.clone()), t2, t2)]);
        // The rest of another frame does not complete it: the silence ended it.
        rig.receive(t2 + us(10_000), &req[..3]);
        let t3 = t2 + us(20_000);
        let other = adu(1, &[0x06, 1, 5, 0, 5]);
        rig.receive(t3, &other[3..]);
        rig.poll(t3 + rig.t35());
        let out = rig.take();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0.as_deref(), Some(&req[..3]));
        assert_eq!(out[1].0.as_deref(), Some(&other[3..]));
    }

    /// Found by the proptest below: a request arriving byte by byte, each byte t3.5
    /// after the one before (a slow USB adapter), is one frame.
    #[test]
    fn burst_request_byte_by_byte_at_t3_5_is_one_frame() {
        let mut rig = Rig::new(Arrival::Burst);
        let req = adu(1, &[0x03, 0, 0, 0, 1]);
        let mut t = Instant::from_secs(1);
        for b in &req {
            t += rig.t35();
            rig.receive(t, core::slice::from_ref(b));
            rig.poll(t + Duration(rig.t35().0 - 1));
        }
        assert_eq!(rig.take(), [(Some(req), t, t)]);
    }

    #[test]
    fn burst_resyncs_on_a_request_read_together_with_garbage() {
        let req = adu(1, &[0x03, 0, 0, 0, 1]);
        for lead in [&[0xFF, 0x00, 0x13][..], &req[..5], &[0x01, 0x10, 0, 0, 0, 0x20, 0x40]] {
            let mut rig = Rig::new(Arrival::Burst);
            let t = Instant::from_millis(10);
            rig.receive(t, &[lead, &req].concat());
            assert_eq!(rig.framer.poll_at(), Some(t + rig.t35()), "not held: a request is inside");
            rig.poll(t + rig.t35());
            let done = t + rig.t35();
            assert_eq!(rig.take(), [(Some(lead.to_vec()), t, done), (Some(req.clone()), t, done)], "{lead:02x?}");
        }
    }

    #[test]
    fn overlong_frames_are_one_overrun() {
        for arrival in [Arrival::Paced, Arrival::Burst] {
            let mut rig = Rig::new(arrival);
            let mut t = Instant::ZERO;
            for _ in 0..3 {
                t += us(100);
                rig.receive(t, &[0x00; 100]);
            }
            rig.poll(t + rig.t35());
            assert_eq!(rig.take(), [(None, t, t + rig.t35())]);
            // A 256-byte frame is still a frame.
            let full = adu(1, &[0x07; 253]);
            rig.receive(t + us(10_000), &full);
            rig.poll(t + us(20_000));
            assert_eq!(rig.take()[0].0.as_deref(), Some(&full[..]));
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        Bytes { gap_ns: u64, bytes: Vec<u8> },
        Poll { delay_ns: u64 },
        BackInTime { ns: u64 },
    }

    fn bytes_strategy() -> impl Strategy<Value = Vec<u8>> {
        let pdu = (
            prop::sample::select(vec![0x03u8, 0x04, 0x06, 0x10, 0x17, 0x08, 0x2B, 0x07]),
            prop::collection::vec(any::<u8>(), 0..12),
        )
            .prop_map(|(fc, rest)| [vec![fc], rest].concat());
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            (prop::sample::select(vec![0u8, 1, 2]), pdu).prop_map(|(u, p)| adu(u, &p)),
            (0u8..110, 1u8..130).prop_map(|(a, q)| adu(1, &[0x03, 0, a, 0, q])),
        ]
    }

    fn event_strategy() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (prop_oneof![0u64..1_000_000, 1_000_000u64..10_000_000], bytes_strategy())
                .prop_map(|(gap_ns, bytes)| Event::Bytes { gap_ns, bytes }),
            2 => (0u64..5_000_000).prop_map(|delay_ns| Event::Poll { delay_ns }),
            1 => (0u64..5_000_000).prop_map(|ns| Event::BackInTime { ns }),
        ]
    }

    proptest! {
        /// Whatever arrives: nothing panics, no byte is lost or made up (the frames
        /// handed out, overruns counted by length, add up to the bytes received), no
        /// frame is longer than an ADU, and every frame completes no earlier than its
        /// last byte.
        #[test]
        fn every_byte_ends_up_in_exactly_one_frame(
            events in prop::collection::vec(event_strategy(), 0..40),
            arrival in prop::sample::select(vec![Arrival::Paced, Arrival::Burst]),
            baud in prop::sample::select(vec![0u32, 1200, 19_200, 115_200, u32::MAX]),
        ) {
            let mut framer = RtuFramer::new(RtuConfig { baud, arrival, ..RtuConfig::default() });
            let mut now = Instant::from_secs(1);
            let (mut received, mut framed, mut bad) = (0usize, 0usize, None);
            let mut check = |c: Completed<'_>| {
                let n = match c.framed {
                    Framed::Frame(b) => {
                        if b.is_empty() || b.len() > MAX_ADU_LEN || c.complete_at < c.last_byte_at {
                            bad = Some(format!("{c:?}"));
                        }
                        b.len()
                    }
                    Framed::Overrun { len } => len,
                };
                framed += n;
            };
            for ev in events {
                match ev {
                    Event::Bytes { gap_ns, bytes } => {
                        now += Duration(gap_ns);
                        received += bytes.len();
                        framer.receive(now, &bytes, &mut check);
                    }
                    Event::Poll { delay_ns } => {
                        now += Duration(delay_ns);
                        framer.poll(now, &mut check);
                    }
                    Event::BackInTime { ns } => now = Instant(now.0.saturating_sub(ns)),
                }
                let _ = (framer.poll_at(), framer.line_busy(now));
            }
            framer.flush(&mut check);
            prop_assert_eq!(bad, None);
            prop_assert_eq!(framed, received);
        }

        /// Burst: requests read in any split, each piece up to 50 ms after the one
        /// before, are each one frame, with nothing else around them.
        #[test]
        fn burst_requests_in_any_split_are_framed_whole(
            regs in prop::collection::vec((0u8..100, 1u8..=20, 1usize..8, 0u64..50_000_000), 1..10),
        ) {
            let mut framer = RtuFramer::new(RtuConfig { arrival: Arrival::Burst, ..RtuConfig::default() });
            let mut t = Instant::from_secs(1);
            for (addr, qty, split, gap_ns) in regs {
                let req = adu(1, &[0x03, 0, addr, 0, qty]);
                let mut out = Vec::new();
                for chunk in req.chunks(split) {
                    t += Duration(gap_ns);
                    framer.receive(t, chunk, &mut |c| out.push(own(c)));
                }
                prop_assert_eq!(out.len(), 1);
                prop_assert!(Frame::new_checked(out[0].0.as_deref().unwrap_or(&[])).is_ok());
                t += Duration::from_millis(5);
            }
        }
    }
}
