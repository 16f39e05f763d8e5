//! The twin thread: every unit's engine and board, the bus they share, and
//! the fault injector. Transports talk to it by message passing only.
//!
//! # Two time lines
//!
//! The board has one `now` per entry point, and two kinds of entry points:
//! `Board::poll` (measurement, counting, protection) is fed **simulated** time,
//! which runs `speed` times the wall clock; the RTU line (`rtu_accept`,
//! `rtu_poll`) is fed **wall-clock** time (ns since the server started), so that
//! the 3.5-character framing holds at any speed. The two never meet inside
//! firmware-core: the RTU slave keeps its own timestamps, and a register write
//! carries no time at all (it takes effect on the board's own, simulated clock,
//! the time of its last poll). At `--speed 1` the two time lines agree to within
//! one batch (5 ms).
//!
//! # The bus
//!
//! Bytes arrive from the line with their arrival time. A line monitor frames
//! them with firmware-core's one framer (`RtuFramer`): bytes arrive in bursts
//! (`Arrival::Burst`) on a pty, TCP or a USB adapter, and back to back at the baud
//! rate (`Arrival::Paced`) with line timing; the framer's module docs say when a
//! frame is complete. Each complete frame goes to the frame log and the fault
//! injector, and then to every unit on the bus, whose board's RTU slave counts
//! and serves it exactly as if it had framed it itself (`Board::rtu_accept`);
//! each board is polled at the instant the frame became complete, so a request
//! complete by length on a pty is answered at once. CRC, unit filtering and the
//! answer are the board's; the monitor only lets the injector decide before
//! execution (an offline unit hears nothing, an injected exception replaces
//! execution). The boards' own counters therefore stay meaningful. Every reply,
//! the boards' and the injected ones, is written by firmware-core's emitter.
//!
//! With line timing, a chunk's last byte is taken to arrive `len` character
//! times after the line became free (the master's write is instant on a pty),
//! and a reply goes out when its last byte would have left the line.
//!
//! # The injector's counters on the bus
//!
//! A request for a served unit that reads a fault counter (FC08, sub-function
//! 0x0100..=0x0107, see [`faults`](super::faults)) is answered here, on RTU
//! and TCP, and handed to no board: the boards' counters stay what their
//! slaves saw, and no fault applies to it. When a board clears its diagnostic
//! counters (FC08 0x0A or 0x01, however it got there), the unit's injector
//! restarts the counts these sub-functions read.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use firmware_core::Instant;
use firmware_core::modbus::frame::{Frame, emit_frame, emit_response};
use firmware_core::modbus::framer::{Arrival, Completed, Framed, RtuFramer};
use firmware_core::modbus::pdu::Response;
use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::modbus::{ExceptionCode, MAX_ADU_LEN, MAX_PDU_LEN};

use super::faults::{Injector, ReplyFate, UnitFaults, fault_counter_response};
use super::framelog::{self, FrameLog};
use super::{Clock, ServeError, UnitReport};
use crate::engine::Engine;
use crate::scenario::Scenario;
use crate::stimulus::Stimulus;

/// The engines catch up with the wall clock at least this often.
const BATCH: StdDuration = StdDuration::from_millis(5);
/// At most this many engine steps per unit between two looks at the bus.
const CHUNK_STEPS: u32 = 200;

/// A message to the twin thread.
#[derive(Debug)]
pub(crate) enum ToTwin {
    /// Bytes read from the RTU line; `at` is when the read returned.
    Rx {
        at: Instant,
        bytes: Vec<u8>,
    },
    /// A Modbus TCP request; the reply (unit id, PDU) or `None` (no reply) goes back by `reply`.
    Pdu {
        link: String,
        tid: u16,
        unit: u8,
        pdu: Vec<u8>,
        reply: tokio::sync::oneshot::Sender<Option<(u8, Vec<u8>)>>,
    },
    /// Something about a port, for the frame log.
    Note(String),
    Stop,
}

/// The served units and how.
#[derive(Debug)]
pub(crate) struct TwinConfig {
    pub units: Vec<u8>,
    pub speed: f64,
    pub line: RtuConfig,
    pub line_timing: bool,
    pub faults: Vec<UnitFaults>,
    pub fault_seed: u64,
    pub nvm_files: Vec<Option<PathBuf>>,
    pub frame_log: Option<FrameLog>,
}

struct Unit {
    id: u8,
    engine: Engine,
    inj: Injector,
    nvm_file: Option<PathBuf>,
    replies: u64,
    tcp_requests: u64,
    /// Fault-counter reads answered (FC08 0x0100..).
    fault_counter_reads: u64,
    /// Where the board's diagnostic counters started (its CPT1 since power-up
    /// minus the diagnostic CPT1): it moves exactly when the board clears them.
    diagnostics_base: u32,
}

impl Unit {
    fn diagnostics_base(&self) -> u32 {
        let rtu = self.engine.board().rtu();
        rtu.counters().bus_messages.wrapping_sub(rtu.diagnostic_counters().bus_messages)
    }

    /// Follows a clear of the board's diagnostic counters into the injector's.
    fn follow_diagnostics_clear(&mut self) {
        let base = self.diagnostics_base();
        if base != self.diagnostics_base {
            self.diagnostics_base = base;
            self.inj.clear_diagnostics();
        }
    }
}

/// The line as a bus monitor sees it: firmware-core's framer decides where every
/// frame ends; with line timing, the monitor also paces the line.
struct Monitor {
    framer: RtuFramer,
    /// Line timing: bytes cross the line at the baud rate, one frame at a time.
    timing: bool,
    /// Line timing: when the line is free again.
    line_free: Instant,
}

/// A frame the monitor completed, owned: what `Completed` borrows.
struct LineFrame {
    /// The frame's bytes, or `Err(len)` for an overrun of `len` bytes.
    bytes: Result<Vec<u8>, usize>,
    last_byte_at: Instant,
    complete_at: Instant,
}

impl LineFrame {
    fn new(c: Completed<'_>) -> Self {
        let bytes = match c.framed {
            Framed::Frame(b) => Ok(b.to_vec()),
            Framed::Overrun { len } => Err(len),
        };
        LineFrame { bytes, last_byte_at: c.last_byte_at, complete_at: c.complete_at }
    }

    /// The frame as the boards' slaves take it.
    fn completed(&self) -> Completed<'_> {
        let framed = match &self.bytes {
            Ok(b) => Framed::Frame(b),
            Err(len) => Framed::Overrun { len: *len },
        };
        Completed { framed, last_byte_at: self.last_byte_at, complete_at: self.complete_at }
    }
}

impl Monitor {
    /// A monitor for `line`: bytes arrive in bursts, or paced at the baud with line timing.
    fn new(line: RtuConfig, timing: bool) -> Self {
        let arrival = if timing { Arrival::Paced } else { Arrival::Burst };
        Monitor { framer: RtuFramer::new(RtuConfig { arrival, ..line }), timing, line_free: Instant::ZERO }
    }
    /// The arrival time of a chunk of `n` bytes read at `read_at`: then, or (line
    /// timing) when its last byte has crossed the line.
    fn arrival(&mut self, read_at: Instant, n: usize) -> Instant {
        if !self.timing {
            return read_at;
        }
        let at = Instant(read_at.0.max(self.line_free.0)) + self.framer.config().line_time(n);
        self.line_free = at;
        at
    }
    /// When a reply of `len` bytes produced at `at` has gone out: then, or (line
    /// timing) when its last byte has left the line.
    fn reply_due(&mut self, at: Instant, len: usize) -> Instant {
        if !self.timing {
            return at;
        }
        let due = Instant(at.0.max(self.line_free.0)) + self.framer.config().line_time(len);
        self.line_free = due;
        due
    }
    /// Takes a chunk; returns the frames it completed.
    fn receive(&mut self, at: Instant, bytes: &[u8]) -> Vec<LineFrame> {
        let mut done = Vec::new();
        self.framer.receive(at, bytes, &mut |c| done.push(LineFrame::new(c)));
        done
    }
    /// The frames that have ended by silence at `now`.
    fn poll(&mut self, now: Instant) -> Vec<LineFrame> {
        let mut done = Vec::new();
        self.framer.poll(now, &mut |c| done.push(LineFrame::new(c)));
        done
    }
    /// Whatever is in progress, ended (the server stops).
    fn flush(&mut self) -> Vec<LineFrame> {
        let mut done = Vec::new();
        self.framer.flush(&mut |c| done.push(LineFrame::new(c)));
        done
    }
    /// When the frame in progress ends by silence.
    fn due(&self) -> Option<Instant> {
        self.framer.poll_at()
    }
}

/// A response PDU's bytes.
fn pdu_bytes(r: &Response<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_PDU_LEN];
    let n = r.emit(&mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

/// A reply ADU's bytes: `unit` + `r` + CRC.
fn adu_bytes(unit: u8, r: &Response<'_>) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU_LEN];
    let n = emit_response(unit, r, &mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

enum Dest {
    Line(Vec<u8>),
    Tcp { link: String, tid: u16, reply: tokio::sync::oneshot::Sender<Option<(u8, Vec<u8>)>>, unit: u8, pdu: Vec<u8> },
}

struct Pending {
    due: Instant,
    unit: u8,
    note: String,
    dest: Dest,
    /// A board's reply (counted in the unit's replies), not a fault-counter read.
    from_board: bool,
}

/// What the twin thread did.
#[derive(Debug, Default)]
pub(crate) struct TwinOutcome {
    pub units: Vec<UnitReport>,
    pub frames: u64,
    pub bytes_in: u64,
    /// Replies the line could not take (no port open, or a client not reading).
    pub replies_not_sent: u64,
    pub frame_log: Option<Result<u64, String>>,
    pub wall_s: f64,
}

struct Twin<'s> {
    clock: Clock,
    speed: f64,
    units: Vec<Unit>,
    stimuli: Vec<Stimulus<'s>>,
    monitor: Monitor,
    pending: VecDeque<Pending>,
    line_out: tokio::sync::mpsc::Sender<Vec<u8>>,
    log: Option<FrameLog>,
    frames: u64,
    bytes_in: u64,
    replies_not_sent: u64,
    stop: bool,
}

/// How the twin thread ended: its outcome, and the error that stopped it, if any.
pub(crate) type TwinResult = Result<TwinOutcome, Box<(ServeError, TwinOutcome)>>;

/// Builds every unit's engine (on the caller's thread, so that set-up errors
/// come back at once), then runs the twin on a thread of its own.
pub(crate) fn start(
    scenarios: Vec<Scenario>,
    images: Vec<Option<crate::engine::NvmImage>>,
    cfg: TwinConfig,
    clock: Clock,
    line_out: tokio::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::sync::oneshot::Sender<()>,
) -> Result<(mpsc::SyncSender<ToTwin>, std::thread::JoinHandle<TwinResult>), ServeError> {
    let mut units = Vec::new();
    for (i, (scenario, image)) in scenarios.iter().zip(images).enumerate() {
        let id = cfg.units[i];
        let mut engine = Engine::with_nvm(scenario, image).map_err(|source| ServeError::Engine { unit: id, source })?;
        let arrival = if cfg.line_timing { Arrival::Paced } else { Arrival::Burst };
        engine.board_mut().rtu_set_config(RtuConfig { unit_id: id, arrival, ..cfg.line });
        let mut unit = Unit {
            id,
            engine,
            inj: Injector::new(id, cfg.faults[i].clone(), cfg.fault_seed),
            nvm_file: cfg.nvm_files[i].clone(),
            replies: 0,
            tcp_requests: 0,
            fault_counter_reads: 0,
            diagnostics_base: 0,
        };
        unit.diagnostics_base = unit.diagnostics_base();
        units.push(unit);
    }
    let (tx, rx) = mpsc::sync_channel(super::TO_TWIN_QUEUE);
    let TwinConfig { speed, line, line_timing, frame_log, .. } = cfg;
    let join = std::thread::Builder::new()
        .name("twin".into())
        .spawn(move || {
            let stimuli = scenarios.iter().map(Stimulus::new).collect();
            let mut twin = Twin {
                clock,
                speed,
                units,
                stimuli,
                monitor: Monitor::new(line, line_timing),
                pending: VecDeque::new(),
                line_out,
                log: frame_log,
                frames: 0,
                bytes_in: 0,
                replies_not_sent: 0,
                stop: false,
            };
            let r = twin.run(&rx);
            let outcome = twin.finish();
            let _ = done.send(());
            match r {
                Ok(()) => Ok(outcome),
                Err(e) => Err(Box::new((e, outcome))),
            }
        })
        .map_err(|e| ServeError::Thread(e.to_string()))?;
    Ok((tx, join))
}

impl Twin<'_> {
    fn run(&mut self, rx: &mpsc::Receiver<ToTwin>) -> Result<(), ServeError> {
        let mut wake = self.clock.now();
        loop {
            let now = self.clock.now();
            let timeout = StdDuration::from_nanos(wake.0.saturating_sub(now.0));
            match rx.recv_timeout(timeout) {
                Ok(msg) => self.handle(msg)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg)?;
            }
            if self.stop {
                return Ok(());
            }
            let behind = self.step_engines()?;
            let now = self.clock.now();
            if self.monitor.due().is_some_and(|d| d <= now) {
                for frame in self.monitor.poll(now) {
                    self.serve_frame(frame)?;
                }
            }
            self.release(self.clock.now());
            let now = self.clock.now();
            wake = if behind { now } else { now + firmware_core::Duration(BATCH.as_nanos() as u64) };
            for t in [self.monitor.due(), self.pending.front().map(|p| p.due)].into_iter().flatten() {
                wake = wake.min(t);
            }
        }
    }

    fn handle(&mut self, msg: ToTwin) -> Result<(), ServeError> {
        match msg {
            ToTwin::Rx { at, bytes } => {
                self.bytes_in += bytes.len() as u64;
                let at = self.monitor.arrival(at, bytes.len());
                for frame in self.monitor.receive(at, &bytes) {
                    self.serve_frame(frame)?;
                }
            }
            ToTwin::Pdu { link, tid, unit, pdu, reply } => self.serve_pdu(link, tid, unit, pdu, reply)?,
            ToTwin::Note(text) => self.log_line(self.clock.now(), "port", "!!", text),
            ToTwin::Stop => self.stop = true,
        }
        Ok(())
    }

    /// Steps every engine towards `speed` × the wall clock, at most
    /// [`CHUNK_STEPS`] each; true if some engine is still behind.
    fn step_engines(&mut self) -> Result<bool, ServeError> {
        let target = (self.clock.now().0 as f64 * self.speed) as u64;
        let mut behind = false;
        for (u, stim) in self.units.iter_mut().zip(self.stimuli.iter_mut()) {
            // The last ADC period boundary at or before the target, and at most CHUNK_STEPS ticks towards it.
            let step = u.engine.step_ns();
            let due = target - target % step;
            let chunk = u.engine.t_ns().saturating_add(u64::from(CHUNK_STEPS) * step).min(due);
            // Scenario events (bus-side writes, LiPro inputs) take effect in the live twin too.
            u.engine.advance_to(chunk, stim).map_err(|source| ServeError::Engine { unit: u.id, source })?;
            behind |= u.engine.t_ns() < due;
        }
        Ok(behind)
    }

    fn sim_ns(&self) -> u64 {
        self.units.first().map_or(0, |u| u.engine.t_ns())
    }

    fn log_line(&self, at: Instant, link: &str, dir: &str, text: String) {
        if let Some(log) = &self.log {
            log.line(format!("{} {text}", framelog::prefix(at.0, self.sim_ns(), link, dir)));
        }
    }

    /// A frame the monitor completed: logged, offered to the injector, handed to
    /// every unit on the bus, and each board polled at the instant it was complete.
    fn serve_frame(&mut self, frame: LineFrame) -> Result<(), ServeError> {
        self.frames += 1;
        let complete_at = frame.complete_at;
        let bytes = match &frame.bytes {
            Ok(bytes) => bytes,
            Err(len) => {
                self.log_line(complete_at, "rtu", "->", format!("  -  overrun: {len} bytes without a silence"));
                for u in self.units.iter_mut().filter(|u| !u.inj.offline_at(u.engine.t_s())) {
                    u.engine.board_mut().rtu_accept(frame.completed());
                }
                return self.poll_boards(complete_at);
            }
        };
        self.log_line(frame.last_byte_at, "rtu", "->", framelog::describe_rtu(bytes, true));
        let target = Frame::new_checked(&bytes[..]).ok().map(|f| (f.unit_id(), f.pdu().first().copied().unwrap_or(0)));
        if self.answer_fault_counter_read(bytes, complete_at) {
            return Ok(());
        }
        self.step_engines()?;
        for i in 0..self.units.len() {
            let u = &mut self.units[i];
            let addressed = target.is_some_and(|(id, _)| id == u.id);
            if u.inj.offline_at(u.engine.t_s()) {
                if addressed {
                    u.inj.counters.offline += 1;
                    let id = u.id;
                    self.log_line(complete_at, "rtu", "!!", format!("{id:>3}  offline (fault): request not heard"));
                }
                continue;
            }
            if let (true, Some((_, function))) = (addressed, target) {
                if let Some(code) = u.inj.inject_exception() {
                    let reply = Response::Exception { function, code: ExceptionCode::from_code(code) };
                    let adu = adu_bytes(u.id, &reply);
                    self.post_process(i, adu, complete_at, format!("injected exception {code:02x} (not executed)"));
                    continue;
                }
            }
            u.engine.board_mut().rtu_accept(frame.completed());
        }
        self.poll_boards(complete_at)
    }

    /// If the RTU frame `adu` reads a fault counter of a served unit, answers
    /// it (no board sees it, no fault applies) and returns true.
    fn answer_fault_counter_read(&mut self, adu: &[u8], complete_at: Instant) -> bool {
        let Ok(frame) = Frame::new_checked(adu) else { return false };
        let Some(u) = self.units.iter_mut().find(|u| u.id == frame.unit_id()) else { return false };
        let Some(response) = fault_counter_response(frame.pdu(), &u.inj.diagnostic_counters()) else { return false };
        u.fault_counter_reads += 1;
        let id = u.id;
        let reply = adu_bytes(id, &response);
        let due = self.monitor.reply_due(complete_at, reply.len());
        let note = "  (fault counters: answered by serve, not the board)".to_owned();
        self.enqueue(Pending { due, unit: id, note, dest: Dest::Line(reply), from_board: false });
        true
    }

    /// Polls every board at `now` and sends their replies through the injector.
    fn poll_boards(&mut self, now: Instant) -> Result<(), ServeError> {
        let mut tx = [0u8; MAX_ADU_LEN];
        for i in 0..self.units.len() {
            loop {
                let reply = self.units[i].engine.board_mut().rtu_poll(now, &mut tx);
                // A clear (FC08 0x0A, 0x01, broadcast or not) is done by now; the fate of its own reply counts after it.
                self.units[i].follow_diagnostics_clear();
                let Some(n) = reply else { break };
                self.post_process(i, tx[..n.min(MAX_ADU_LEN)].to_vec(), now, String::new());
            }
            self.persist(i);
        }
        Ok(())
    }

    /// Applies the after-execution faults to an RTU reply and queues it.
    fn post_process(&mut self, i: usize, mut adu: Vec<u8>, produced_at: Instant, mut note: String) {
        let u = &mut self.units[i];
        let fate: ReplyFate = u.inj.reply_fate(true);
        let id = u.id;
        if fate.dropped {
            let text = format!("{id:>3}  reply dropped (fault)  [{}]", framelog::hex(&adu));
            self.log_line(produced_at, "rtu", "!!", text);
            return;
        }
        let mut notes = Vec::new();
        if !note.is_empty() {
            notes.push(std::mem::take(&mut note));
        }
        if let Some(w) = fate.wrong_unit {
            // The same reply, framed for unit `w` by the same emitter.
            let mut buf = [0u8; MAX_ADU_LEN];
            if let Some(n) = Frame::new_checked(&adu[..]).ok().and_then(|f| emit_frame(w, f.pdu(), &mut buf)) {
                adu = buf[..n].to_vec();
            }
            notes.push(format!("sent as unit {w}"));
        }
        if fate.corrupt_crc {
            let n = adu.len();
            if n >= 2 {
                adu[n - 1] ^= 0xA5;
                adu[n - 2] ^= 0x5A;
            }
            notes.push("CRC corrupted".into());
        }
        let before = u.inj.counters.garbled_bytes;
        u.inj.garble(&mut adu);
        if u.inj.counters.garbled_bytes > before {
            notes.push(format!("{} bytes garbled", u.inj.counters.garbled_bytes - before));
        }
        if fate.delay_ns > 0 {
            notes.push(format!("delayed {:.1} ms", fate.delay_ns as f64 * 1e-6));
        }
        let due = self.monitor.reply_due(Instant(produced_at.0.saturating_add(fate.delay_ns)), adu.len());
        let note = if notes.is_empty() { String::new() } else { format!("  (fault: {})", notes.join(", ")) };
        self.enqueue(Pending { due, unit: id, note, dest: Dest::Line(adu), from_board: true });
    }

    fn enqueue(&mut self, p: Pending) {
        let at = self.pending.iter().position(|q| q.due > p.due).unwrap_or(self.pending.len());
        self.pending.insert(at, p);
    }

    fn serve_pdu(
        &mut self,
        link: String,
        tid: u16,
        unit: u8,
        pdu: Vec<u8>,
        reply: tokio::sync::oneshot::Sender<Option<(u8, Vec<u8>)>>,
    ) -> Result<(), ServeError> {
        let now = self.clock.now();
        self.log_line(now, &link, "->", framelog::describe_tcp(tid, unit, &pdu, true));
        let fc = pdu.first().copied().unwrap_or(0);
        // 0 and 255 address the first served unit (the "this device" ids of Modbus TCP).
        let index = match unit {
            0 | 255 => Some(0),
            u => self.units.iter().position(|x| x.id == u),
        };
        let Some(i) = index else {
            // Not behind this gateway: 0B, gateway target device failed to respond.
            let code = ExceptionCode::GatewayTargetDeviceFailedToRespond;
            let r = pdu_bytes(&Response::Exception { function: fc, code });
            self.log_line(now, &link, "<-", framelog::describe_tcp(tid, unit, &r, false));
            let _ = reply.send(Some((unit, r)));
            return Ok(());
        };
        let u = &mut self.units[i];
        if let Some(r) = fault_counter_response(&pdu, &u.inj.diagnostic_counters()) {
            u.tcp_requests += 1;
            u.fault_counter_reads += 1;
            let (id, note) = (u.id, "  (fault counters: answered by serve, not the board)".to_owned());
            let dest = Dest::Tcp { link, tid, reply, unit, pdu: pdu_bytes(&r) };
            self.enqueue(Pending { due: now, unit: id, note, dest, from_board: false });
            return Ok(());
        }
        self.step_engines()?;
        let u = &mut self.units[i];
        u.tcp_requests += 1;
        if u.inj.offline_at(u.engine.t_s()) {
            u.inj.counters.offline += 1;
            self.log_line(now, &link, "!!", format!("{unit:>3}  offline (fault): no reply"));
            let _ = reply.send(None);
            return Ok(());
        }
        let mut notes = Vec::new();
        let resp = if let Some(code) = u.inj.inject_exception() {
            notes.push(format!("injected exception {code:02x} (not executed)"));
            pdu_bytes(&Response::Exception { function: fc, code: ExceptionCode::from_code(code) })
        } else {
            let mut buf = [0u8; MAX_PDU_LEN];
            match u.engine.board_mut().process_pdu(&pdu, &mut buf) {
                Some(n) => buf[..n.min(MAX_PDU_LEN)].to_vec(),
                None => {
                    let _ = reply.send(None);
                    return Ok(());
                }
            }
        };
        self.persist(i);
        let u = &mut self.units[i];
        let fate = u.inj.reply_fate(false);
        if fate.dropped {
            self.log_line(now, &link, "!!", format!("{unit:>3}  reply dropped (fault)"));
            let _ = reply.send(None);
            return Ok(());
        }
        let mut reply_unit = unit;
        if let Some(w) = fate.wrong_unit {
            reply_unit = w;
            notes.push(format!("sent as unit {w}"));
        }
        if fate.delay_ns > 0 {
            notes.push(format!("delayed {:.1} ms", fate.delay_ns as f64 * 1e-6));
        }
        let note = if notes.is_empty() { String::new() } else { format!("  (fault: {})", notes.join(", ")) };
        let due = Instant(now.0.saturating_add(fate.delay_ns));
        let id = u.id;
        self.enqueue(Pending {
            due,
            unit: id,
            note,
            dest: Dest::Tcp { link, tid, reply, unit: reply_unit, pdu: resp },
            from_board: true,
        });
        Ok(())
    }

    /// Sends every queued reply that is due.
    fn release(&mut self, now: Instant) {
        while self.pending.front().is_some_and(|p| p.due <= now) {
            let Some(p) = self.pending.pop_front() else { break };
            match p.dest {
                Dest::Line(adu) => {
                    self.log_line(p.due, "rtu", "<-", format!("{}{}", framelog::describe_rtu(&adu, false), p.note));
                    if let Some(u) = self.units.iter_mut().find(|u| u.id == p.unit && p.from_board) {
                        u.replies += 1;
                    }
                    if self.line_out.try_send(adu).is_err() {
                        self.replies_not_sent += 1;
                    }
                }
                Dest::Tcp { link, tid, reply, unit, pdu } => {
                    let text = format!("{}{}", framelog::describe_tcp(tid, unit, &pdu, false), p.note);
                    self.log_line(p.due, &link, "<-", text);
                    if let Some(u) = self.units.iter_mut().find(|u| u.id == p.unit && p.from_board) {
                        u.replies += 1;
                    }
                    let _ = reply.send(Some((unit, pdu)));
                }
            }
        }
    }

    /// Saves a unit's settings to its EEPROM (and file) if a write changed them.
    fn persist(&mut self, i: usize) {
        let u = &mut self.units[i];
        match u.engine.persist_settings() {
            Ok(true) => {
                if let Some(path) = &u.nvm_file {
                    if let Err(e) = super::write_nvm_file(path, u.engine.nvm_image()) {
                        // Serving goes on: the settings are in the board; only the file copy is stale.
                        eprintln!("warning: unit {}: saving the settings EEPROM to {}: {e}", u.id, path.display());
                    }
                }
            }
            Ok(false) => {}
            Err(e) => eprintln!("warning: unit {}: saving settings to the board's EEPROM: {e}", u.id),
        }
    }

    fn finish(&mut self) -> TwinOutcome {
        // A frame still in progress (held, short of its length) is counted as what it is.
        for frame in self.monitor.flush() {
            let _ = self.serve_frame(frame);
        }
        // Replies still waiting (delays) are abandoned: the server is stopping.
        self.pending.clear();
        let units = self
            .units
            .iter()
            .map(|u| UnitReport {
                unit: u.id,
                simulated_s: u.engine.t_s(),
                replies: u.replies,
                tcp_requests: u.tcp_requests,
                fault_counter_reads: u.fault_counter_reads,
                counters: u.engine.board().rtu().counters(),
                faults: u.inj.counters,
            })
            .collect();
        TwinOutcome {
            units,
            frames: self.frames,
            bytes_in: self.bytes_in,
            replies_not_sent: self.replies_not_sent,
            frame_log: self.log.take().map(|l| l.finish().map_err(|e| e.to_string())),
            wall_s: self.clock.now().0 as f64 * 1e-9,
        }
    }
}
