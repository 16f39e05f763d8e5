//! Modbus RTU slave: takes the frames of its line and answers the requests
//! addressed to it.
//!
//! *Modbus over Serial Line V1.02*: §2.2 (unicast and broadcast), §2.3 (addresses),
//! §2.5.1.2 (CRC), §6.1 (Appendix A, diagnostic counters). *Modbus Application
//! Protocol V1.1b3*, §6.8 (FC08 Diagnostics). Where a frame ends is the
//! [framer](super::framer)'s decision: the slave frames bytes fed to
//! [`RtuSlave::receive`] with its own [`RtuFramer`], and takes frames completed by
//! another framer (a bus monitor's) through [`RtuSlave::accept`]: both count and
//! execute a frame the same way.
//!
//! # Requests
//!
//! Each request is parsed once ([`Request::parse`]) and executed by
//! [`pdu::execute`] (FC03, 04, 06, 16, 23, 08/00, 43/14), except the FC08
//! sub-functions that belong to the serial line, which the slave answers itself
//! (see [`diagnostics`](super::diagnostics)):
//!
//! * 0x01 Restart Communications Option: answered (when not in listen-only mode),
//!   then the diagnostic counters are cleared and listen-only mode is left;
//! * 0x04 Force Listen Only Mode: never answered; from then on frames for this unit
//!   are counted but neither executed nor answered (broadcast writes included), until
//!   a Restart Communications Option, which leaves the mode without a response;
//! * 0x0A Clear Counters: answered, the diagnostic counters are cleared;
//! * 0x0B..=0x12: the [diagnostic counters](RtuSlave::diagnostic_counters)
//!   ([`RtuCounters::get`]), low 16 bits.
//!
//! Every reply, normal or exception, is a [`Response`] written by
//! [`emit_response`].
//!
//! Broadcasts (unit 0) are never answered. Of them, FC06, FC16 and FC23 are
//! executed (an exception detected there counts in
//! [`exceptions_sent`](RtuCounters::exceptions_sent), as CPT3 wants), as are FC08
//! sub-functions 0x01, 0x04 and 0x0A (so a master can silence, wake or reset every
//! slave at once); anything else is ignored.
//!
//! # When the reply goes out
//!
//! At the instant its request was complete ([`Completed::complete_at`]): on a line
//! with [`Arrival::Paced`] bytes (a UART) that is t3.5 after the request's last
//! byte, and [`poll`](RtuSlave::poll) never produces a reply while a newer frame is
//! still arriving (RS-485 is half duplex); with [`Arrival::Burst`] bytes (a pty, TCP)
//! a request whose function code gives its length is complete at its last byte and
//! answered at once (see the [framer](super::framer)).
//!
//! # Buffering
//!
//! The slave holds at most one completed frame addressed to it (unicast or
//! broadcast) that has not been [`poll`](RtuSlave::poll)ed yet, besides the frame
//! its framer has in progress. Frames that fail the CRC or are for other units are
//! counted and dropped as soon as they complete, so they never occupy that slot. A
//! caller that calls `poll` at [`poll_at`](RtuSlave::poll_at) never loses a frame;
//! one that feeds two frames separated by ≥ t3.5 without polling in between still
//! gets both served, the first at the first `poll` once the line is idle again. If
//! a third completes before the first was polled, the *oldest* waiting frame is
//! dropped and counted in [`RtuCounters::overruns`]: the master has given up on that
//! request already, and answering it would put a stale reply on the bus while the
//! master awaits the newer one.

use super::diagnostics::{Diagnostic, DiagnosticCounter};
use super::frame::{Frame, emit_response};
use super::framer::{Completed, Framed, RtuFramer};
use super::pdu::{self, Request, Response};
use super::{ExceptionCode, MAX_ADU_LEN, RegisterBank};
use crate::time::Instant;

pub use super::framer::{Arrival, Parity, RtuConfig};

/// The broadcast unit id (§2.2).
pub const BROADCAST_UNIT_ID: u8 = 0;

/// Diagnostic counters of §6.1 (Appendix A), read by FC08 sub-functions 0x0B..=0x12
/// ([`DiagnosticCounter`]). All counters wrap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtuCounters {
    /// Frames with a valid CRC, for any unit (CPT1).
    pub bus_messages: u32,
    /// Frames with a bad CRC or shorter than 4 bytes (CPT2).
    pub crc_errors: u32,
    /// Exception responses sent, plus exceptions detected in broadcast writes, which
    /// are not sent (CPT3).
    pub exceptions_sent: u32,
    /// Frames addressed to this unit, broadcasts included (CPT4).
    pub slave_messages: u32,
    /// Frames addressed to this unit that got no reply: broadcasts, frames received
    /// in listen-only mode, Force Listen Only Mode itself (CPT5).
    pub no_responses: u32,
    /// Exception responses 06, server device busy, sent (CPT7).
    pub busy: u32,
    /// Frames longer than 256 bytes, and waiting frames dropped because a newer one
    /// completed before `poll` (CPT8, loosely).
    pub overruns: u32,
    /// Valid frames for other units.
    pub ignored_other_unit: u32,
}

impl RtuCounters {
    /// The counter an FC08 sub-function reads. [`DiagnosticCounter::ServerNaks`]
    /// is always 0: this slave never answers with exception 07.
    pub const fn get(&self, counter: DiagnosticCounter) -> u32 {
        match counter {
            DiagnosticCounter::BusMessages => self.bus_messages,
            DiagnosticCounter::BusCommunicationErrors => self.crc_errors,
            DiagnosticCounter::BusExceptionErrors => self.exceptions_sent,
            DiagnosticCounter::ServerMessages => self.slave_messages,
            DiagnosticCounter::ServerNoResponses => self.no_responses,
            DiagnosticCounter::ServerNaks => 0,
            DiagnosticCounter::ServerBusy => self.busy,
            DiagnosticCounter::BusCharacterOverruns => self.overruns,
        }
    }

    /// The counts since `base` was taken (field by field, wrapping).
    const fn since(&self, base: &RtuCounters) -> RtuCounters {
        RtuCounters {
            bus_messages: self.bus_messages.wrapping_sub(base.bus_messages),
            crc_errors: self.crc_errors.wrapping_sub(base.crc_errors),
            exceptions_sent: self.exceptions_sent.wrapping_sub(base.exceptions_sent),
            slave_messages: self.slave_messages.wrapping_sub(base.slave_messages),
            no_responses: self.no_responses.wrapping_sub(base.no_responses),
            busy: self.busy.wrapping_sub(base.busy),
            overruns: self.overruns.wrapping_sub(base.overruns),
            ignored_other_unit: self.ignored_other_unit.wrapping_sub(base.ignored_other_unit),
        }
    }
}

/// The slave's link-level state: counters and the FC08 modes.
#[derive(Clone, Copy, Debug, Default)]
struct Link {
    /// Since power-up ([`RtuSlave::counters`]).
    counters: RtuCounters,
    /// `counters` when FC08 last cleared them: the diagnostic counters are the
    /// difference, so clearing them leaves the since-power-up counts intact.
    cleared_at: RtuCounters,
    /// FC08 0x04 Force Listen Only Mode is in effect.
    listen_only: bool,
}

impl Link {
    fn diagnostic_counters(&self) -> RtuCounters {
        self.counters.since(&self.cleared_at)
    }

    /// FC08 0x0A, and part of 0x01.
    fn clear_counters(&mut self) {
        self.cleared_at = self.counters;
    }

    /// Carry out a state-changing FC08 sub-function (after its response, if any).
    fn act(&mut self, diagnostic: Diagnostic<'_>) {
        match diagnostic {
            Diagnostic::RestartCommunications { .. } => {
                self.clear_counters();
                self.listen_only = false;
            }
            Diagnostic::ForceListenOnly => self.listen_only = true,
            Diagnostic::ClearCounters => self.clear_counters(),
            Diagnostic::ReturnQueryData(_) | Diagnostic::ReturnCounter(_) => {}
        }
    }
}

/// The completed frame for this unit (or broadcast) that waits for `poll`.
#[derive(Debug, Clone)]
struct Waiting {
    adu: [u8; MAX_ADU_LEN],
    len: usize,
    /// When it became complete; `Some` iff a frame is waiting.
    ready: Option<Instant>,
}

impl Waiting {
    /// Count a completed frame and, if it is for `unit_id` (or broadcast), keep it,
    /// dropping an older waiting one.
    fn accept(&mut self, link: &mut Link, unit_id: u8, completed: Completed<'_>) {
        let c = &mut link.counters;
        let bytes = match completed.framed {
            Framed::Overrun { .. } => return bump(&mut c.overruns),
            Framed::Frame(bytes) => bytes,
        };
        let Ok(frame) = Frame::new_checked(bytes) else {
            return bump(&mut c.crc_errors);
        };
        bump(&mut c.bus_messages);
        let unit = frame.unit_id();
        if unit != BROADCAST_UNIT_ID && unit != unit_id {
            return bump(&mut c.ignored_other_unit);
        }
        bump(&mut c.slave_messages);
        if self.ready.is_some() {
            bump(&mut c.overruns);
        }
        if let Some(dst) = self.adu.get_mut(..bytes.len()) {
            dst.copy_from_slice(bytes);
            self.len = bytes.len();
            self.ready = Some(completed.complete_at);
        }
    }
}

/// A poll-driven Modbus RTU slave; see the [module docs](self) for the reply timing
/// and the buffering model.
#[derive(Debug, Clone)]
pub struct RtuSlave {
    framer: RtuFramer,
    link: Link,
    waiting: Waiting,
}

impl RtuSlave {
    /// An idle slave with zeroed counters.
    pub fn new(config: RtuConfig) -> Self {
        RtuSlave {
            framer: RtuFramer::new(config),
            link: Link::default(),
            waiting: Waiting { adu: [0; MAX_ADU_LEN], len: 0, ready: None },
        }
    }

    /// The current configuration.
    pub fn config(&self) -> &RtuConfig {
        self.framer.config()
    }

    /// Replace the configuration. Timing decisions from now on use the new one;
    /// buffered bytes are kept. A unit-id change does not affect a frame already
    /// waiting for `poll`.
    pub fn set_config(&mut self, config: RtuConfig) {
        self.framer.set_config(config);
    }

    /// A snapshot of the counters since power-up (FC08 clearing does not reset these).
    pub fn counters(&self) -> RtuCounters {
        self.link.counters
    }

    /// A snapshot of the counters since FC08 last cleared them (0x01 Restart
    /// Communications Option or 0x0A Clear Counters), or since power-up: what FC08
    /// 0x0B..=0x12 report.
    pub fn diagnostic_counters(&self) -> RtuCounters {
        self.link.diagnostic_counters()
    }

    /// Whether FC08 0x04 Force Listen Only Mode is in effect: frames are counted but
    /// neither executed nor answered, until FC08 0x01 Restart Communications Option.
    pub fn is_listen_only(&self) -> bool {
        self.link.listen_only
    }

    /// Bytes that arrived at `now`, as the line's [`Arrival`] model says (with
    /// [`Arrival::Paced`]: `now` is when the **last** byte of `bytes` ended, and the
    /// bytes are taken as back to back on the line). The slave's framer decides where
    /// frames end; each one it completes is [accepted](Self::accept). Bytes beyond
    /// [`MAX_ADU_LEN`] in one frame are dropped, and the frame is counted as an
    /// overrun when it ends. Empty `bytes` are ignored.
    pub fn receive(&mut self, now: Instant, bytes: &[u8]) {
        let RtuSlave { framer, link, waiting } = self;
        let unit_id = framer.config().unit_id;
        framer.receive(now, bytes, &mut |c| waiting.accept(link, unit_id, c));
    }

    /// A frame completed by another framer (a bus monitor's, on the same line): counted
    /// and, if it is for this unit, kept for [`poll`](Self::poll), exactly as one this
    /// slave's own framer completed. Its reply goes out from `completed.complete_at` on.
    ///
    /// * overruns: `overruns`; shorter than 4 bytes or bad CRC: `crc_errors`;
    /// * CRC-valid: `bus_messages`; for another unit: `ignored_other_unit`, dropped;
    /// * for this unit or broadcast: `slave_messages`, kept (an older waiting frame is
    ///   dropped: `overruns`).
    pub fn accept(&mut self, completed: Completed<'_>) {
        self.waiting.accept(&mut self.link, self.framer.config().unit_id, completed);
    }

    /// When to call [`poll`](Self::poll) next: when the frame in progress ends by
    /// silence, else when the waiting frame (if any) became complete; `None` when
    /// there is nothing to do. The instant may already have passed: then poll right away.
    pub fn poll_at(&self) -> Option<Instant> {
        self.framer.poll_at().or(self.waiting.ready)
    }

    /// Handle complete frames and return the length of a reply ADU written to `tx`,
    /// if one is due. Feed all bytes received up to `now` before polling.
    ///
    /// A waiting frame is handled once `now` reaches the instant it was complete
    /// (t3.5 after its last byte with [`Arrival::Paced`]; at its last byte for a frame
    /// complete by length with [`Arrival::Burst`]); with [`Arrival::Paced`] nothing is
    /// handled while a newer frame is still arriving. Frames, oldest first:
    /// * in listen-only mode: counted (`no_responses`), not executed; only FC08 0x01
    ///   is acted on (it leaves the mode), and never a reply;
    /// * broadcast (unit 0): FC06/FC16/FC23 and FC08 0x01/0x04/0x0A are executed,
    ///   anything else is ignored; never a reply (`no_responses`);
    /// * for this unit: the serial-line FC08 sub-functions are answered here (see the
    ///   [module docs](self)), everything else by [`pdu::execute`]; the reply ADU
    ///   (unit id + PDU + CRC) is written to `tx`, except for FC08 0x04.
    ///
    /// Frames that need no reply are consumed silently; `poll` returns at the first
    /// reply, so call it again while [`poll_at`](Self::poll_at) is not in the future.
    /// `tx` contents are unspecified when `None` is returned.
    pub fn poll<B: RegisterBank>(&mut self, now: Instant, bank: &mut B, tx: &mut [u8; MAX_ADU_LEN]) -> Option<usize> {
        // At most three rounds: the waiting frame, then the in-progress one, then idle.
        loop {
            if self.framer.line_busy(now) {
                return None; // a frame is still arriving: the line is not idle
            }
            if self.waiting.ready.is_none() {
                let RtuSlave { framer, link, waiting } = &mut *self;
                let unit_id = framer.config().unit_id;
                framer.poll(now, &mut |c| waiting.accept(link, unit_id, c));
            }
            let ready = self.waiting.ready?;
            if now < ready {
                return None;
            }
            self.waiting.ready = None;
            let len = core::mem::take(&mut self.waiting.len);
            let adu = self.waiting.adu.get(..len).unwrap_or(&[]);
            if let Some(n) = serve(&mut self.link, adu, bank, tx) {
                return Some(n);
            }
        }
    }
}

/// Execute one CRC-valid ADU addressed to this unit or broadcast; write the reply.
fn serve<B: RegisterBank>(link: &mut Link, adu: &[u8], bank: &mut B, tx: &mut [u8; MAX_ADU_LEN]) -> Option<usize> {
    let frame = Frame::new_unchecked(adu);
    let unit = frame.unit_id();
    let pdu = frame.pdu();
    let &function = pdu.first()?;
    let parsed = Request::parse(pdu);
    let diagnostic = match parsed {
        Ok(Request::Diagnostics(d)) => Some(d),
        _ => None,
    };
    if link.listen_only {
        // §6.8.1, 0x04: monitored, not acted on, not answered; 0x01 alone is processed.
        bump(&mut link.counters.no_responses);
        if let Some(d @ Diagnostic::RestartCommunications { .. }) = diagnostic {
            link.act(d);
        }
        return None;
    }
    let mut regs = [0u16; pdu::MAX_READ_QUANTITY as usize];
    if unit == BROADCAST_UNIT_ID {
        bump(&mut link.counters.no_responses);
        match parsed {
            Ok(req) if req.is_write() && pdu::execute(bank, &req, &mut regs).is_err() => {
                bump(&mut link.counters.exceptions_sent);
            }
            Ok(Request::Diagnostics(d)) if d.acts_on_broadcast() => link.act(d),
            _ => {}
        }
        return None;
    }
    let response = match parsed {
        Err(code) => Some(Response::Exception { function, code }),
        Ok(Request::Diagnostics(d)) if !matches!(d, Diagnostic::ReturnQueryData(_)) => {
            let count = match d {
                Diagnostic::ReturnCounter(counter) => link.diagnostic_counters().get(counter),
                _ => 0,
            };
            d.response(count).map(Response::Diagnostics)
        }
        Ok(req) => {
            Some(pdu::execute(bank, &req, &mut regs).unwrap_or_else(|code| Response::Exception { function, code }))
        }
    };
    if let Some(d) = diagnostic {
        link.act(d); // after the response is made: 0x01 answers, then restarts
    }
    let Some(response) = response else {
        bump(&mut link.counters.no_responses); // FC08 0x04
        return None;
    };
    if let Some(code) = response.exception() {
        bump(&mut link.counters.exceptions_sent);
        if code == ExceptionCode::ServerDeviceBusy {
            bump(&mut link.counters.busy);
        }
    }
    emit_response(unit, &response, tx)
}

fn bump(counter: &mut u32) {
    *counter = counter.wrapping_add(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::frame::emit_frame;
    use crate::modbus::test_bank::TestBank;
    use crate::time::Duration;
    use proptest::prelude::*;

    const UNIT: u8 = 1;

    fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_ADU_LEN];
        let n = emit_frame(unit, pdu, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    struct Rig {
        slave: RtuSlave,
        bank: TestBank,
        tx: [u8; MAX_ADU_LEN],
    }

    impl Rig {
        fn new() -> Self {
            Rig { slave: RtuSlave::new(RtuConfig::default()), bank: TestBank::new(), tx: [0; MAX_ADU_LEN] }
        }
        fn t35(&self) -> Duration {
            self.slave.config().t3_5()
        }
        fn ct(&self) -> Duration {
            self.slave.config().char_time()
        }
        /// Send `bytes` back to back starting at `start`; returns the last byte's time.
        fn send(&mut self, start: Instant, bytes: &[u8]) -> Instant {
            let end = start + Duration(self.ct().0 * bytes.len() as u64);
            self.slave.receive(end, bytes);
            end
        }
        fn poll(&mut self, now: Instant) -> Option<Vec<u8>> {
            let n = self.slave.poll(now, &mut self.bank, &mut self.tx)?;
            Some(self.tx[..n].to_vec())
        }
    }

    #[test]
    fn read_answered_only_after_t3_5() {
        let mut rig = Rig::new();
        rig.bank.holding[..2].copy_from_slice(&[0x1234, 0x5678]);
        let last = rig.send(Instant::from_millis(10), &adu(UNIT, &[0x03, 0, 0, 0, 2]));
        let due = last + rig.t35();
        assert_eq!(rig.slave.poll_at(), Some(due));
        assert_eq!(rig.poll(last), None);
        assert_eq!(rig.poll(Instant(due.0 - 1)), None);
        let reply = rig.poll(due).expect("reply");
        assert_eq!(reply, adu(UNIT, &[0x03, 0x04, 0x12, 0x34, 0x56, 0x78]));
        assert_eq!(rig.slave.poll_at(), None);
        assert_eq!(rig.poll(due + rig.t35()), None);
        let c = rig.slave.counters();
        assert_eq!((c.bus_messages, c.slave_messages, c.exceptions_sent), (1, 1, 0));
    }

    #[test]
    fn reply_bytes_match_spec_vector() {
        // 01 03 00 00 00 0A C5 CD: ten registers from 0.
        let mut rig = Rig::new();
        let req = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
        let last = rig.send(Instant::ZERO, &req);
        let reply = rig.poll(last + rig.t35()).unwrap();
        assert_eq!(reply.len(), 1 + 2 + 20 + 2);
        assert_eq!(&reply[..3], &[0x01, 0x03, 20]);
        assert!(Frame::new_checked(&reply[..]).is_ok());
    }

    #[test]
    fn exception_reply_counted() {
        let mut rig = Rig { slave: RtuSlave::new(RtuConfig { unit_id: 0x11, ..RtuConfig::default() }), ..Rig::new() };
        // 11 03 00 6B 00 03 76 87: address 107 is beyond the test bank.
        let last = rig.send(Instant::ZERO, &[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87]);
        assert_eq!(rig.poll(last + rig.t35()), Some(adu(0x11, &[0x83, 0x02])));
        assert_eq!(rig.slave.counters().exceptions_sent, 1);
    }

    #[test]
    fn split_frame_with_small_gaps_is_one_frame() {
        let mut rig = Rig::new();
        let req = adu(UNIT, &[0x06, 0, 3, 0, 9]);
        let gap = Duration(rig.slave.config().t1_5().0 - 1);
        // Byte by byte, each followed by a gap just under t1.5.
        let mut t = Instant::from_secs(1);
        for b in &req {
            t = rig.send(t, core::slice::from_ref(b)) + gap;
        }
        assert_eq!(rig.poll(t + rig.t35()), Some(req.clone()));
        // Three chunks, back to back: chunk timestamps are 3-4 char times apart,
        // more than t3.5, yet the line was never silent.
        let req = adu(UNIT, &[0x03, 0, 3, 0, 1]);
        let mut t = Instant::from_secs(2);
        for chunk in req.chunks(3) {
            t = rig.send(t, chunk);
        }
        assert_eq!(rig.poll(t + rig.t35()), Some(adu(UNIT, &[0x03, 2, 0, 9])));
        let c = rig.slave.counters();
        assert_eq!((c.bus_messages, c.crc_errors), (2, 0));
    }

    #[test]
    fn broadcast_write_executes_without_reply() {
        let mut rig = Rig::new();
        let last = rig.send(Instant::ZERO, &adu(0, &[0x10, 0, 0, 0, 2, 4, 0, 1, 0, 2]));
        assert_eq!(rig.poll(last + rig.t35()), None);
        assert_eq!(&rig.bank.holding[..2], &[1, 2]);
        // A broadcast read is ignored: the bank is not even asked.
        let last = rig.send(last + us(10_000), &adu(0, &[0x03, 0, 0, 0, 1]));
        assert_eq!(rig.poll(last + rig.t35()), None);
        // A broadcast exception is not sent either, but counted (CPT3).
        let last = rig.send(last + us(10_000), &adu(0, &[0x06, 0, 0, 0x07, 0xD0]));
        assert_eq!(rig.poll(last + rig.t35()), None);
        assert_eq!(rig.bank.holding[0], 1);
        // FC23 broadcast: the write is done, the read goes nowhere.
        let last = rig.send(last + us(10_000), &adu(0, &[0x17, 0, 0, 0, 1, 0, 5, 0, 1, 2, 0, 9]));
        assert_eq!(rig.poll(last + rig.t35()), None);
        assert_eq!(rig.bank.holding[5], 9);
        let c = rig.slave.counters();
        assert_eq!((c.slave_messages, c.no_responses, c.exceptions_sent), (4, 4, 1));
        assert_eq!(rig.bank.writes, 2);
    }

    impl Rig {
        /// Send `pdu` to `unit` well after `t` and poll once the line is idle; returns
        /// the time of the poll and the reply PDU (unit id and CRC checked and removed).
        fn request(&mut self, t: Instant, unit: u8, pdu: &[u8]) -> (Instant, Option<Vec<u8>>) {
            let last = self.send(t + us(10_000), &adu(unit, pdu));
            let now = last + self.t35();
            let reply = self.poll(now).map(|r| {
                assert!(Frame::new_checked(&r[..]).is_ok());
                assert_eq!(r[0], unit);
                r[1..r.len() - 2].to_vec()
            });
            (now, reply)
        }
    }

    /// FC08 "return counter" request PDU.
    fn counter_req(sub: u8) -> [u8; 5] {
        [0x08, 0, sub, 0, 0]
    }

    #[test]
    fn diagnostics_echo_and_counters() {
        let mut rig = Rig::new();
        let (t, r) = rig.request(Instant::ZERO, UNIT, &[0x08, 0, 0, 0xA5, 0x37]);
        assert_eq!(r.unwrap(), [0x08, 0, 0, 0xA5, 0x37]);
        // Traffic: a bad CRC, a frame for unit 2, an exception, a broadcast, a busy bank.
        let t = rig.send(t + us(10_000), &[0x01, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
        let (t, _) = rig.request(t, 2, &[0x03, 0, 0, 0, 1]);
        let (t, r) = rig.request(t, UNIT, &[0x03, 0, 99, 0, 2]);
        assert_eq!(r.unwrap(), [0x83, 0x02]);
        let (t, _) = rig.request(t, 0, &[0x06, 0, 0, 0, 1]);
        rig.bank.fail = Some(ExceptionCode::ServerDeviceBusy);
        let (t, r) = rig.request(t, UNIT, &[0x03, 0, 0, 0, 1]);
        assert_eq!(r.unwrap(), [0x83, 0x06]);
        let (t, r) = rig.request(t, UNIT, &[0x03, 0, 0, 0, 1]);
        assert_eq!(r.unwrap(), [0x83, 0x06]);
        rig.bank.fail = Some(ExceptionCode::ServerDeviceFailure);
        let (mut t, r) = rig.request(t, UNIT, &[0x06, 0, 0, 0, 1]);
        assert_eq!(r.unwrap(), [0x86, 0x04]);
        rig.bank.fail = None;
        // Counted so far, before each counter request: bus messages 7 valid frames,
        // 1 CRC error, 4 exceptions, 6 for this unit (incl. broadcast), 1 without reply,
        // 2 busy. Each counter request is itself counted before it is answered.
        let expected = [
            (0x0B, 8), // 7 + this request
            (0x0C, 1),
            (0x0D, 4),
            (0x0E, 10), // 6 + the 3 counter requests before + this one
            (0x0F, 1),
            (0x10, 0),
            (0x11, 2),
            (0x12, 0),
        ];
        for (sub, count) in expected {
            let (t2, r) = rig.request(t, UNIT, &counter_req(sub));
            t = t2;
            assert_eq!(r.unwrap(), [0x08, 0, sub, 0, count], "sub-function {sub:#04x}");
        }
        // Clear: the diagnostic counters restart from 0, the power-up ones do not.
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x0A, 0, 0]);
        assert_eq!(r.unwrap(), [0x08, 0, 0x0A, 0, 0]);
        assert_eq!(rig.slave.diagnostic_counters().bus_messages, 0);
        assert_eq!(rig.slave.counters().bus_messages, 16);
        let (_, r) = rig.request(t, UNIT, &counter_req(0x0E));
        assert_eq!(r.unwrap(), [0x08, 0, 0x0E, 0, 1]);
    }

    #[test]
    fn diagnostics_bad_requests() {
        let mut rig = Rig::new();
        let (t, r) = rig.request(Instant::ZERO, UNIT, &[0x08, 0, 0x02, 0, 0]);
        assert_eq!(r.unwrap(), [0x88, 0x01]);
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x14, 0, 0]);
        assert_eq!(r.unwrap(), [0x88, 0x01]);
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x0B, 0, 1]);
        assert_eq!(r.unwrap(), [0x88, 0x03]);
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x04, 0xFF, 0]);
        assert_eq!(r.unwrap(), [0x88, 0x03]);
        let (_, r) = rig.request(t, UNIT, &[0x08, 0, 0x01, 0x12, 0x34]);
        assert_eq!(r.unwrap(), [0x88, 0x03]);
        assert!(!rig.slave.is_listen_only());
        assert_eq!(rig.slave.counters().exceptions_sent, 5);
    }

    #[test]
    fn listen_only_until_restart() {
        let mut rig = Rig::new();
        // 0x04 is not answered; afterwards nothing is, and writes are not done.
        let (t, r) = rig.request(Instant::ZERO, UNIT, &[0x08, 0, 0x04, 0, 0]);
        assert_eq!(r, None);
        assert!(rig.slave.is_listen_only());
        let (t, r) = rig.request(t, UNIT, &[0x06, 0, 1, 0, 7]);
        assert_eq!(r, None);
        let (t, r) = rig.request(t, 0, &[0x06, 0, 2, 0, 7]);
        assert_eq!(r, None);
        let (t, r) = rig.request(t, UNIT, &counter_req(0x0B));
        assert_eq!(r, None);
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0, 1, 2]);
        assert_eq!(r, None);
        // A malformed restart does not wake it.
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x01, 0x12, 0x34]);
        assert_eq!(r, None);
        assert!(rig.slave.is_listen_only());
        assert_eq!(rig.bank.writes, 0);
        assert_eq!(rig.slave.counters().no_responses, 6);
        // 0x01 leaves the mode, unanswered, and clears the counters.
        let (t, r) = rig.request(t, UNIT, &[0x08, 0, 0x01, 0xFF, 0x00]);
        assert_eq!(r, None);
        assert!(!rig.slave.is_listen_only());
        assert_eq!(rig.slave.diagnostic_counters(), RtuCounters::default());
        let (t, r) = rig.request(t, UNIT, &[0x06, 0, 1, 0, 7]);
        assert_eq!(r.unwrap(), [0x06, 0, 1, 0, 7]);
        // 0x01 outside listen-only mode is answered (echo), then clears the counters.
        let (_, r) = rig.request(t, UNIT, &[0x08, 0, 0x01, 0, 0]);
        assert_eq!(r.unwrap(), [0x08, 0, 0x01, 0, 0]);
        assert_eq!(rig.slave.diagnostic_counters().slave_messages, 0);
        assert_eq!(rig.slave.counters().slave_messages, 9);
    }

    #[test]
    fn diagnostics_by_broadcast() {
        let mut rig = Rig::new();
        // Counter reads and echo broadcast: ignored.
        let (t, r) = rig.request(Instant::ZERO, 0, &counter_req(0x0B));
        assert_eq!(r, None);
        let (t, r) = rig.request(t, 0, &[0x08, 0, 0, 1, 2]);
        assert_eq!(r, None);
        // Clear counters by broadcast.
        let (t, r) = rig.request(t, 0, &[0x08, 0, 0x0A, 0, 0]);
        assert_eq!(r, None);
        assert_eq!(rig.slave.diagnostic_counters(), RtuCounters::default());
        // Listen-only by broadcast, and back by a broadcast restart.
        let (t, _) = rig.request(t, 0, &[0x08, 0, 0x04, 0, 0]);
        assert!(rig.slave.is_listen_only());
        let (t, r) = rig.request(t, UNIT, &[0x03, 0, 0, 0, 1]);
        assert_eq!(r, None);
        let (t, r) = rig.request(t, 0, &[0x08, 0, 0x01, 0, 0]);
        assert_eq!(r, None);
        assert!(!rig.slave.is_listen_only());
        let (_, r) = rig.request(t, UNIT, &[0x03, 0, 0, 0, 1]);
        assert_eq!(r.unwrap(), [0x03, 2, 0, 0]);
    }

    #[test]
    fn device_identification_over_rtu() {
        let mut rig = Rig::new();
        let (t, r) = rig.request(Instant::ZERO, UNIT, &[0x2B, 0x0E, 0x04, 0x00]);
        let mut expected = vec![0x2B, 0x0E, 0x04, 0x82, 0, 0, 1, 0x00, 11];
        expected.extend_from_slice(b"Test Vendor");
        assert_eq!(r.unwrap(), expected);
        // Never for broadcast.
        let (_, r) = rig.request(t, 0, &[0x2B, 0x0E, 0x01, 0x00]);
        assert_eq!(r, None);
    }

    #[test]
    fn other_unit_ignored() {
        let mut rig = Rig::new();
        let last = rig.send(Instant::ZERO, &adu(2, &[0x06, 0, 0, 0, 5]));
        assert_eq!(rig.slave.poll_at(), Some(last + rig.t35()));
        assert_eq!(rig.poll(last + rig.t35()), None);
        assert_eq!(rig.bank.writes, 0);
        let c = rig.slave.counters();
        assert_eq!((c.bus_messages, c.ignored_other_unit, c.slave_messages), (1, 1, 0));
    }

    #[test]
    fn bad_crc_and_runts_dropped_and_counted() {
        let mut rig = Rig::new();
        let mut req = adu(UNIT, &[0x06, 0, 0, 0, 5]);
        req[7] ^= 0x40;
        let last = rig.send(Instant::ZERO, &req);
        assert_eq!(rig.poll(last + rig.t35()), None);
        let last = rig.send(last + us(5_000), &[0x01, 0x03, 0xFF]);
        assert_eq!(rig.poll(last + rig.t35()), None);
        let c = rig.slave.counters();
        assert_eq!((c.crc_errors, c.bus_messages), (2, 0));
        assert_eq!(rig.bank.writes, 0);
    }

    #[test]
    fn garbage_then_silence_then_valid_frame_is_answered() {
        let mut rig = Rig::new();
        let req = adu(UNIT, &[0x06, 0, 4, 0, 4]);
        // Garbage running straight into the request: one bad frame.
        let t = rig.send(Instant::ZERO, &[0xFF, 0x00, 0x13]);
        let t = rig.send(t, &req);
        assert_eq!(rig.poll(t + rig.t35()), None);
        // Garbage, then a t3.5 silence, then the request: answered. No poll in between.
        let t = rig.send(t + us(50_000), &[0xFF, 0x00, 0x13, 0x01]);
        let t = rig.send(t + rig.t35(), &req);
        assert_eq!(rig.slave.poll_at(), Some(t + rig.t35()));
        assert_eq!(rig.poll(t + rig.t35()), Some(req));
        assert_eq!(rig.slave.counters().crc_errors, 2);
    }

    #[test]
    fn silence_just_under_t3_5_does_not_split() {
        let mut rig = Rig::new();
        let req = adu(UNIT, &[0x06, 0, 4, 0, 4]);
        let t = rig.send(Instant::ZERO, &req[..4]);
        let t = rig.send(t + Duration(rig.t35().0 - 1), &req[4..]);
        assert_eq!(rig.poll(t + rig.t35()), Some(req));
    }

    #[test]
    fn unpolled_frames_are_kept_then_oldest_dropped() {
        let mut rig = Rig::new();
        let gap = us(3_000);
        let a = adu(UNIT, &[0x06, 0, 1, 0, 1]);
        let b = adu(UNIT, &[0x06, 0, 2, 0, 2]);
        let c = adu(UNIT, &[0x06, 0, 3, 0, 3]);
        // Two frames without a poll in between: both served, in order.
        let t = rig.send(Instant::ZERO, &a);
        let t = rig.send(t + gap, &b);
        assert_eq!(rig.slave.poll_at(), Some(t + rig.t35()));
        // `a` is complete, but `b` is still on the line: no reply yet.
        assert_eq!(rig.poll(t), None);
        assert_eq!(rig.poll(t + rig.t35()), Some(a.clone()));
        assert_eq!(rig.poll(t + rig.t35()), Some(b.clone()));
        assert_eq!(rig.poll(t + rig.t35()), None);
        // Three: the oldest is dropped.
        let t = rig.send(t + us(100_000), &a);
        let t = rig.send(t + gap, &b);
        let t = rig.send(t + gap, &c);
        let later = t + rig.t35();
        assert_eq!(rig.poll(later), Some(b));
        assert_eq!(rig.poll(later), Some(c));
        assert_eq!(rig.poll(later), None);
        assert_eq!(rig.slave.poll_at(), None);
        assert_eq!(rig.slave.counters().overruns, 1);
        assert_eq!(&rig.bank.holding[1..4], &[1, 2, 3]);
    }

    #[test]
    fn unpolled_foreign_frames_do_not_evict() {
        let mut rig = Rig::new();
        let a = adu(UNIT, &[0x06, 0, 1, 0, 1]);
        let t = rig.send(Instant::ZERO, &a);
        let t = rig.send(t + us(3_000), &adu(7, &[0x06, 0, 1, 0, 1]));
        let t = rig.send(t + us(3_000), &[0xAA; 9]);
        let t = rig.send(t + us(3_000), &[0x55]);
        assert_eq!(rig.poll(t + rig.t35()), Some(a));
        assert_eq!(rig.poll(t + rig.t35()), None);
        let c = rig.slave.counters();
        assert_eq!((c.overruns, c.ignored_other_unit, c.crc_errors), (0, 1, 2));
    }

    #[test]
    fn overlong_frame_is_an_overrun() {
        let mut rig = Rig::new();
        let mut t = Instant::ZERO;
        for _ in 0..3 {
            t = rig.send(t, &[0x01; 100]);
        }
        assert_eq!(rig.poll(t + rig.t35()), None);
        let c = rig.slave.counters();
        assert_eq!((c.overruns, c.crc_errors, c.bus_messages), (1, 0, 0));
        let req = adu(UNIT, &[0x06, 0, 0, 0, 1]);
        let t = rig.send(t + us(10_000), &req);
        assert_eq!(rig.poll(t + rig.t35()), Some(req));
    }

    #[test]
    fn max_size_frame_is_accepted() {
        let mut rig = Rig::new();
        rig.bank.input_len = 200;
        let t = rig.send(Instant::ZERO, &adu(UNIT, &[0x04, 0, 0, 0, 125]));
        let reply = rig.poll(t + rig.t35()).unwrap();
        assert_eq!(reply.len(), MAX_ADU_LEN - 1);
        // FC16 with 123 registers: a 255-byte ADU.
        let mut pdu = vec![0x10, 0, 0, 0, 123, 246];
        pdu.resize(6 + 246, 0);
        let t = rig.send(t + us(10_000), &adu(UNIT, &pdu));
        assert_eq!(rig.poll(t + rig.t35()), Some(adu(UNIT, &[0x90, 0x02])));
        // A 256-byte ADU is still a frame (answered), 257 bytes is an overrun.
        let mut pdu = vec![0x07; 253];
        let t = rig.send(t + us(10_000), &adu(UNIT, &pdu));
        assert_eq!(rig.poll(t + rig.t35()), Some(adu(UNIT, &[0x87, 0x01])));
        assert_eq!(rig.slave.counters().overruns, 0);
        pdu.push(0);
        let mut long = adu(UNIT, &pdu[..253]);
        long.push(0);
        let t = rig.send(t + us(10_000), &long);
        assert_eq!(rig.poll(t + rig.t35()), None);
        assert_eq!(rig.slave.counters().overruns, 1);
    }

    fn burst_rig() -> Rig {
        let config = RtuConfig { arrival: Arrival::Burst, ..RtuConfig::default() };
        Rig { slave: RtuSlave::new(config), ..Rig::new() }
    }

    /// Issue 17 item 8: where bytes arrive in bursts (a pty), a request whose function
    /// code gives its length is answered at its last byte, not t3.5 later.
    #[test]
    fn issue_17_burst_request_is_answered_at_its_last_byte() {
        let mut rig = burst_rig();
        rig.bank.holding[0] = 0x1234;
        let t = Instant::from_millis(10);
        rig.slave.receive(t, &adu(UNIT, &[0x03, 0, 0, 0, 1]));
        assert_eq!(rig.slave.poll_at(), Some(t));
        assert_eq!(rig.poll(t), Some(adu(UNIT, &[0x03, 2, 0x12, 0x34])));
        // The FC08 echo has no length of its own: answered after t3.5.
        let t = t + us(10_000);
        let echo = adu(UNIT, &[0x08, 0, 0, 0xA5, 0x37]);
        rig.slave.receive(t, &echo);
        assert_eq!(rig.poll(t), None);
        assert_eq!(rig.poll(t + rig.t35()), Some(echo));
    }

    /// Issue 14, the burst defect: garbage or a truncated frame, then more than t3.5 of
    /// silence after its last byte, then a request: answered.
    #[test]
    fn issue_14_burst_request_after_garbage_and_a_silence_is_answered() {
        let req = adu(UNIT, &[0x06, 0, 4, 0, 4]);
        let mut rig = burst_rig();
        let mut t = Instant::from_millis(10);
        for lead in [&[0xFF, 0x00, 0x13][..], &req[..5]] {
            rig.slave.receive(t, lead);
            t += us(2_500);
            rig.slave.receive(t, &req);
            assert_eq!(rig.poll(t), Some(req.clone()), "after {lead:02x?}");
            t += us(10_000);
        }
        assert_eq!(rig.slave.counters().crc_errors, 2);
    }

    /// A slave handed the frames of another framer (a bus monitor's) counts and
    /// answers exactly as one that frames the same bytes itself.
    #[test]
    fn frames_accepted_from_a_monitor_count_and_answer_as_if_framed_here() {
        for arrival in [Arrival::Paced, Arrival::Burst] {
            let config = RtuConfig { arrival, ..RtuConfig::default() };
            let (mut own, mut fed) = (RtuSlave::new(config), RtuSlave::new(config));
            let mut monitor = crate::modbus::framer::RtuFramer::new(config);
            let (mut bank_a, mut bank_b) = (TestBank::new(), TestBank::new());
            let (mut tx_a, mut tx_b) = ([0u8; MAX_ADU_LEN], [0u8; MAX_ADU_LEN]);
            let mut bad = adu(UNIT, &[0x06, 0, 1, 0, 1]);
            bad[3] ^= 1;
            let traffic: [&[u8]; 7] = [
                &adu(UNIT, &[0x06, 0, 1, 0, 7]),
                &bad,
                &adu(2, &[0x03, 0, 0, 0, 1]),
                &[0xFF, 0x13],
                &adu(0, &[0x06, 0, 2, 0, 9]),
                &[0x00; 300],
                &adu(UNIT, &[0x08, 0, 0x0B, 0, 0]),
            ];
            let mut t = Instant::from_secs(1);
            for bytes in traffic {
                t += Duration::from_millis(10) + config.line_time(bytes.len());
                own.receive(t, bytes);
                monitor.receive(t, bytes, &mut |c| fed.accept(c));
                let done = t + config.t3_5();
                monitor.poll(done, &mut |c| fed.accept(c));
                let a = own.poll(done, &mut bank_a, &mut tx_a).map(|n| tx_a[..n].to_vec());
                let b = fed.poll(done, &mut bank_b, &mut tx_b).map(|n| tx_b[..n].to_vec());
                assert_eq!(a, b, "{arrival:?} {bytes:02x?}");
            }
            assert_eq!(own.counters(), fed.counters(), "{arrival:?}");
            let c = own.counters();
            assert_eq!((c.bus_messages, c.crc_errors, c.overruns), (4, 2, 1), "{arrival:?}");
            assert_eq!(bank_a.holding[..3], bank_b.holding[..3]);
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
            .prop_map(|(fc, rest)| {
                let mut p = vec![fc];
                p.extend(rest);
                p
            });
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            (prop::sample::select(vec![0u8, 1, 2]), pdu).prop_map(|(u, p)| adu(u, &p)),
            (0u16..110, 1u16..130).prop_map(|(a, q)| adu(UNIT, &[0x03, 0, a as u8, 0, q as u8])),
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
        #[test]
        fn arbitrary_traffic_never_panics_and_replies_are_valid(
            events in prop::collection::vec(event_strategy(), 0..40),
            baud in prop::sample::select(vec![0u32, 1200, 9600, 19_200, 115_200, u32::MAX]),
            unit_id in prop::sample::select(vec![0u8, 1, 247, 255]),
        ) {
            let config = RtuConfig { baud, unit_id, ..RtuConfig::default() };
            let mut slave = RtuSlave::new(config);
            let mut bank = TestBank::new();
            let mut tx = [0u8; MAX_ADU_LEN];
            let mut now = Instant::from_secs(1);
            let mut last_rx = now;
            for ev in events {
                match ev {
                    Event::Bytes { gap_ns, bytes } => {
                        now += Duration(gap_ns);
                        slave.receive(now, &bytes);
                        if !bytes.is_empty() {
                            last_rx = now;
                        }
                    }
                    Event::Poll { delay_ns } => {
                        now += Duration(delay_ns);
                        if let Some(n) = slave.poll(now, &mut bank, &mut tx) {
                            prop_assert!(n <= MAX_ADU_LEN);
                            let frame = Frame::new_checked(&tx[..n]);
                            prop_assert!(frame.is_ok());
                            prop_assert_eq!(tx[0], unit_id);
                            prop_assert!(unit_id != BROADCAST_UNIT_ID);
                            // Never before t3.5 of silence after the last byte.
                            prop_assert!(now >= last_rx + config.t3_5());
                        }
                    }
                    Event::BackInTime { ns } => {
                        now = Instant(now.0.saturating_sub(ns));
                    }
                }
                let _ = slave.poll_at();
            }
        }

        #[test]
        fn well_spaced_requests_are_all_answered(
            regs in prop::collection::vec((0u8..100, 1u8..=20), 1..10),
            split in 1usize..8,
        ) {
            let mut rig = Rig::new();
            let mut t = Instant::from_secs(1);
            for (addr, qty) in regs {
                let req = adu(UNIT, &[0x03, 0, addr, 0, qty]);
                for chunk in req.chunks(split) {
                    t = rig.send(t, chunk);
                }
                t += rig.t35();
                let reply = rig.poll(t).expect("a reply");
                prop_assert!(Frame::new_checked(&reply[..]).is_ok());
                let ok = usize::from(addr) + usize::from(qty) <= 100;
                prop_assert_eq!(reply[1], if ok { 0x03 } else { 0x83 });
            }
        }
    }
}
