//! Running a plan's steps against the board: the reads, writes and waits
//! of each step kind, judged against the plan's limits, with the twin kept
//! in lock-step by a poll of the measurements before every step and at
//! every poll of a wait.
//!
//! Durations in a plan are board time, read from the board's `uptime_s`
//! (1 s resolution): on a real board that is wall time; on a stand-in
//! served with `--speed K` it runs K times faster, as its battery does.

use std::time::Duration;

use firmware_core::board::CAL_WINDOW;
use firmware_core::map::{CAL_UNLOCK_KEY, REGISTERS, RegDef, RegId, by_id};
use models::variant::Variant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep};
use tokio_modbus::ExceptionCode;

use super::lockstep::{self, LockStep, StartError};
use super::plan::{Action, Calibration, Expect, Plan, Step, Tolerance, full_scale, unit_suffix};
use super::report::Verdict;
use crate::decode::{self, MAX_REGS_PER_REQUEST};
use crate::link::{Link, LinkArgs, LinkError, describe_exception};
use crate::session::SILENT_SAMPLES;
use crate::source::Registers;

/// A wait gives up when the board's uptime has not covered the wait after
/// this many times its length in wall time, plus [`WALL_GUARD_S`]: a board
/// whose clock is stopped or far too slow (a real board's uptime is wall
/// time; a stand-in's at `--speed K` runs faster).
pub const WALL_GUARD_FACTOR: f64 = 1.5;
/// See [`WALL_GUARD_FACTOR`] (s).
pub const WALL_GUARD_S: f64 = 10.0;
/// Tries of a calibration command the board answers "busy" (exception 06:
/// its first 1-s averaging window is not complete yet), [`CAL_WINDOW`] apart.
pub const CAL_BUSY_TRIES: u32 = 3;

/// `expect_twin`: most board seconds between the uptimes read before (`b`)
/// and after (`a`) the compared register. The twin is stepped to `a`; the
/// register was read in `[b, a + 1)` (the uptime truncates), so within
/// [`crate::session::MAX_BOARD_SKEW_S`] of the twin when `a − b` is at most that.
pub const MAX_SNAPSHOT_SPREAD_S: f64 = crate::session::MAX_BOARD_SKEW_S;

/// Tries of a snapshot at one board instant.
pub const SNAPSHOT_TRIES: u32 = 5;

/// Why the plan cannot go on.
#[derive(Debug, Clone, PartialEq)]
pub enum Abort {
    /// The serial port failed: the adapter vanished.
    PortLost(String),
    /// The board stopped answering.
    Silent(String),
    /// A report could not be written.
    Report(String),
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abort::PortLost(s) | Abort::Silent(s) | Abort::Report(s) => f.write_str(s),
        }
    }
}

/// A step's result before it is numbered.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub value: String,
    pub limit: String,
    pub detail: Vec<String>,
}

impl Outcome {
    fn pass(value: impl Into<String>, limit: impl Into<String>) -> Self {
        Self { verdict: Verdict::Pass, value: value.into(), limit: limit.into(), detail: Vec::new() }
    }

    fn fail(value: impl Into<String>, limit: impl Into<String>) -> Self {
        Self { verdict: Verdict::Fail, value: value.into(), limit: limit.into(), detail: Vec::new() }
    }

    /// The step could not finish.
    pub fn error(why: &str) -> Self {
        Self { verdict: Verdict::Error, value: why.to_string(), limit: String::new(), detail: Vec::new() }
    }

    fn judged(ok: bool, value: impl Into<String>, limit: impl Into<String>) -> Self {
        if ok { Self::pass(value, limit) } else { Self::fail(value, limit) }
    }

    fn with(mut self, detail: impl Into<String>) -> Self {
        self.detail.push(detail.into());
        self
    }
}

/// The measurements of one poll.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurement {
    pub uptime_s: f64,
    pub current_a: f64,
    pub voltage_v: f64,
}

/// What a write got.
#[derive(Debug)]
enum Wrote {
    Done,
    Exception(ExceptionCode),
    /// No usable reply (after the link's retries).
    Failed(String),
}

/// The board on its link, the plan's pace, and the twin.
pub struct Bench<T> {
    link: Link<T>,
    args: LinkArgs,
    interval: Duration,
    /// The board's variant (its `variant_v`), for tolerances in % FS.
    pub variant: Variant,
    /// The twin, or why there is none (`None`: the plan has no expect_twin step).
    pub twin: Option<Result<LockStep, String>>,
    /// Consecutive polls without measurements.
    silent_polls: u32,
    /// A request of the current step went unanswered.
    no_reply: bool,
}

impl<T> std::fmt::Debug for Bench<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bench")
            .field("board", &self.args.describe())
            .field("variant", &self.variant)
            .finish_non_exhaustive()
    }
}

fn reg(id: RegId) -> &'static RegDef {
    by_id(id).expect("the map has the registers hil-rig test uses")
}

/// `12.345 V`, `0x0023 switch_on lvp_output`: a raw value as the board means it.
pub fn show(reg: &RegDef, raw: i64) -> String {
    if reg.id == RegId::FirmwareVersion {
        // major × 256 + minor (docs/register-map.md)
        return format!("{}.{} (0x{:04X})", raw >> 8, raw & 0xFF, raw as u16);
    }
    match decode::bit_table(reg) {
        Some(names) => {
            let bits = decode::bit_names(raw as u16, names).join(" ");
            if bits.is_empty() { format!("0x{:04X}", raw as u16) } else { format!("0x{:04X} {bits}", raw as u16) }
        }
        None => format!("{}{}", decode::format_value(reg, raw), unit_suffix(reg)),
    }
}

/// A physical value to one more decimal than the register's resolution.
fn show_mean(reg: &RegDef, v: f64) -> String {
    format!("{:.*}{}", decode::decimals(reg.scale) + 1, v, unit_suffix(reg))
}

/// A physical value (limit) to the register's resolution.
fn show_phys(reg: &RegDef, v: f64) -> String {
    format!("{:.*}", decode::decimals(reg.scale), v)
}

/// Floating-point slack of a comparison of physical values.
fn slack(v: f64) -> f64 {
    1e-9 * v.abs().max(1.0)
}

impl<T> Bench<T>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(link: Link<T>, args: LinkArgs, interval: Duration) -> Self {
        Self { link, args, interval, variant: Variant::V12, twin: None, silent_polls: 0, no_reply: false }
    }

    /// Reads `list`: each register's raw value, or why not. A failure of
    /// the port itself aborts the plan.
    async fn read(&mut self, list: &[&'static RegDef]) -> Result<Vec<Result<i64, String>>, Abort> {
        let mut out: Vec<Result<i64, String>> = vec![Err("not readable".into()); list.len()];
        for b in decode::plan(REGISTERS, list, MAX_REGS_PER_REQUEST) {
            let reply = match self.link.read_holding(b.start, b.count).await {
                Ok(Ok(words)) => Ok(words),
                Ok(Err(code)) => Err(describe_exception(code, b.start)),
                Err(e) => Err(self.link_error(e)?),
            };
            for (k, r) in list.iter().enumerate() {
                if b.regs.iter().any(|x| x.addr == r.addr) {
                    out[k] = match &reply {
                        Ok(words) => b.words_of(r, words).map(|w| r.ty.decode(w)).ok_or_else(|| "short reply".into()),
                        Err(e) => Err(e.clone()),
                    };
                }
            }
        }
        Ok(out)
    }

    /// A link error as a step's failure, or the abort of a lost port.
    fn link_error(&mut self, e: LinkError) -> Result<String, Abort> {
        match e {
            LinkError::Io { source, .. } => Err(Abort::PortLost(format!("lost {}: {source}", self.args.port))),
            e => {
                self.no_reply |= matches!(e, LinkError::NoReply { .. } | LinkError::BadFrame { .. });
                Ok(e.to_string())
            }
        }
    }

    /// Reads `list` between two polls of the measurements (which step the
    /// twin to the board's uptime), so that the snapshot is of the board
    /// time the twin is at: the registers of `list` are read in other
    /// requests than the uptime, and retries between them (a bad CRC, a busy
    /// board) can put board seconds in between (issue 17). Tried again when
    /// the uptime moved more than [`MAX_SNAPSHOT_SPREAD_S`]; `Some(spread)`
    /// after [`SNAPSHOT_TRIES`] such tries.
    async fn snapshot_at_one_instant(
        &mut self,
        regs: &Registers,
        list: &[&'static RegDef],
    ) -> Result<(Vec<Option<i64>>, Option<f64>), Abort> {
        let mut spread = None;
        let mut board = Vec::new();
        for _ in 0..SNAPSHOT_TRIES {
            let before = self.observe().await?;
            board = self.snapshot(regs, list).await?;
            let after = self.observe().await?;
            match (before, after) {
                (Some(b), Some(a)) if a.uptime_s - b.uptime_s <= MAX_SNAPSHOT_SPREAD_S => return Ok((board, None)),
                (Some(b), Some(a)) => spread = Some(a.uptime_s - b.uptime_s),
                // The measurements were not read: the twin stays where it was.
                _ => return Ok((board, None)),
            }
        }
        Ok((board, spread))
    }

    /// Reads `list` into a snapshot in `regs` order (`None`: not read).
    async fn snapshot(&mut self, regs: &Registers, list: &[&'static RegDef]) -> Result<Vec<Option<i64>>, Abort> {
        let vals = self.read(list).await?;
        let mut out = vec![None; regs.list.len()];
        for (r, v) in list.iter().zip(vals) {
            if let (Some(k), Ok(v)) = (regs.index(r.id), v) {
                out[k] = Some(v);
            }
        }
        Ok(out)
    }

    /// Writes `raw` to `reg`: function 06 for one register, 16 for both words of a 32-bit one.
    async fn write(&mut self, reg: &RegDef, raw: i64) -> Result<Wrote, Abort> {
        let words = reg.ty.encode(raw);
        let result = if reg.ty.words() == 1 {
            self.link.write_single(reg.addr, words[0]).await
        } else {
            self.link.write_multiple(reg.addr, &words[..2]).await
        };
        Ok(match result {
            Ok(Ok(())) => Wrote::Done,
            Ok(Err(code)) => Wrote::Exception(code),
            Err(e) => Wrote::Failed(self.link_error(e)?),
        })
    }

    /// The board's identity registers (device type, variant, firmware, serial).
    pub async fn identity(&mut self) -> Result<super::report::Identity, Abort> {
        let ids = [RegId::DeviceType, RegId::VariantV, RegId::FirmwareVersion, RegId::SerialNumber];
        let list: Vec<&'static RegDef> = ids.iter().map(|&id| reg(id)).collect();
        self.no_reply = false;
        let v = self.read(&list).await?;
        if v.iter().all(Result::is_err) && self.no_reply {
            let why = v.iter().find_map(|r| r.as_ref().err().cloned()).unwrap_or_default();
            return Err(Abort::Silent(format!(
                "no reply from {} ({why}): is the board powered and wired, and the unit id and line settings right?",
                self.args.describe()
            )));
        }
        let get = |k: usize| v[k].as_ref().ok().copied();
        if let Some(variant) = get(1).and_then(|v| u64::try_from(v).ok()).and_then(Variant::from_system_v) {
            self.variant = variant;
        }
        Ok(super::report::Identity {
            device_type: get(0),
            variant_v: get(1),
            firmware_version: get(2),
            serial_number: get(3),
        })
    }

    /// Starts the twin from the board's registers now.
    pub async fn start_twin(
        &mut self,
        plan: &Plan,
        scenario: Option<&(std::path::PathBuf, smartpro_sim::scenario::Scenario)>,
    ) -> Result<Result<(), StartError>, Abort> {
        let (_, list) = crate::recording::record_columns().map_err(Abort::Report)?;
        let regs = Registers::new(list.clone());
        // The twin starts from the board's SOC and totals at its uptime: read at one instant.
        let (board, _) = self.snapshot_at_one_instant(&regs, &list).await?;
        let Some(t0) = regs.value(&board, RegId::Uptime) else {
            let why = "the board's uptime_s cannot be read: the twin needs the board's time".to_string();
            self.twin = Some(Err(why.clone()));
            return Ok(Err(StartError(why)));
        };
        match LockStep::start(plan, scenario, regs, &board, self.variant, t0) {
            Ok(ls) => {
                self.twin = Some(Ok(ls));
                Ok(Ok(()))
            }
            Err(e) => {
                self.twin = Some(Err(e.to_string()));
                Ok(Err(e))
            }
        }
    }

    /// One poll of the measurements; steps the twin to the board's time.
    /// `None` when they could not be read; after [`SILENT_SAMPLES`] such
    /// polls without a reply in a row the board has fallen silent.
    pub async fn observe(&mut self) -> Result<Option<Measurement>, Abort> {
        // The remaining charge sits between them: the same request.
        let list = [reg(RegId::BatteryVoltage), reg(RegId::Current), reg(RegId::Uptime), reg(RegId::RemainingCharge)];
        let before = self.no_reply;
        self.no_reply = false;
        let v = self.read(&list).await?;
        let silent = self.no_reply;
        self.no_reply |= before;
        let value = |k: usize| v[k].as_ref().ok().map(|&raw| list[k].to_physical(raw));
        let (Some(voltage_v), Some(current_a), Some(uptime_s)) = (value(0), value(1), value(2)) else {
            self.silent_polls = if silent { self.silent_polls + 1 } else { 0 };
            if self.silent_polls >= SILENT_SAMPLES {
                let why = v.iter().find_map(|r| r.as_ref().err().cloned()).unwrap_or_default();
                return Err(Abort::Silent(format!(
                    "{} fell silent: no measurements in {SILENT_SAMPLES} polls in a row ({why})",
                    self.args.describe()
                )));
            }
            return Ok(None);
        };
        self.silent_polls = 0;
        if let Some(Ok(ls)) = &mut self.twin {
            ls.advance(uptime_s, current_a, voltage_v, value(3));
        }
        Ok(Some(Measurement { uptime_s, current_a, voltage_v }))
    }

    /// Runs one step. A step that got no reply is followed by a probe of
    /// the board: no reply to that either, and the board has fallen silent.
    pub async fn run(&mut self, step: &Step) -> Result<Outcome, Abort> {
        self.no_reply = false;
        let outcome = match &step.action {
            Action::Wait { duration_s } => self.wait(*duration_s).await?,
            Action::WaitRest { current_below_a, for_s, timeout_s } => {
                self.wait_rest(*current_below_a, *for_s, *timeout_s).await?
            }
            Action::Read { registers, samples, expect } => {
                let list: Vec<&'static RegDef> = registers.iter().map(|r| r.0).collect();
                self.read_step(&list, *samples, expect.as_ref()).await?
            }
            Action::Write { register, raw, restore, expect_exception } => {
                self.write_step(register.0, *raw, *restore, *expect_exception).await?
            }
            Action::ExpectTwin { register, tolerance } => self.expect_twin(register.0, *tolerance).await?,
            Action::Calibrate(cal) => self.calibrate(*cal).await?,
            Action::Command { register, raw, expect_exception } => {
                self.command(register.0, *raw, *expect_exception).await?
            }
        };
        if self.no_reply {
            self.no_reply = false;
            let probe = self.read(&[reg(RegId::DeviceType)]).await?;
            if self.no_reply {
                let why = probe[0].as_ref().err().cloned().unwrap_or_default();
                return Err(Abort::Silent(format!("{} fell silent ({why})", self.args.describe())));
            }
        }
        Ok(outcome)
    }

    /// Wall time a wait of `board_s` may take at most.
    fn wall_guard(board_s: f64) -> Duration {
        Duration::from_secs_f64(board_s * WALL_GUARD_FACTOR + WALL_GUARD_S)
    }

    async fn wait(&mut self, duration_s: f64) -> Result<Outcome, Abort> {
        let limit = format!("{duration_s} s of board time");
        let wall0 = Instant::now();
        let Some(t0) = self.observe().await?.map(|m| m.uptime_s) else {
            return Ok(Outcome::fail("the board's uptime_s could not be read", limit));
        };
        let mut last = t0;
        loop {
            if last - t0 >= duration_s {
                return Ok(Outcome::pass(format!("waited {:.0} s of board time", last - t0), limit));
            }
            if wall0.elapsed() > Self::wall_guard(duration_s) {
                return Ok(Outcome::fail(slow_clock(last - t0, wall0), limit));
            }
            sleep(self.interval).await;
            if let Some(m) = self.observe().await? {
                if m.uptime_s < last {
                    return Ok(Outcome::fail(restarted(last, m.uptime_s), limit));
                }
                last = m.uptime_s;
            }
        }
    }

    async fn wait_rest(&mut self, below_a: f64, for_s: f64, timeout_s: f64) -> Result<Outcome, Abort> {
        let limit = format!("|I| < {below_a} A for {for_s} s, within {timeout_s} s");
        let wall0 = Instant::now();
        let (mut t0, mut last, mut since, mut longest) = (None::<f64>, None::<f64>, None::<f64>, 0.0f64);
        let mut last_i = None;
        loop {
            if let Some(m) = self.observe().await? {
                if let Some(l) = last.filter(|&l| m.uptime_s < l) {
                    return Ok(Outcome::fail(restarted(l, m.uptime_s), limit));
                }
                let start = *t0.get_or_insert(m.uptime_s);
                last = Some(m.uptime_s);
                last_i = Some(m.current_a);
                if m.current_a.abs() < below_a {
                    let s = *since.get_or_insert(m.uptime_s);
                    longest = longest.max(m.uptime_s - s);
                    if m.uptime_s - s >= for_s {
                        return Ok(Outcome::pass(
                            format!(
                                "at rest for {:.0} s (current {:.3} A), after {:.0} s",
                                m.uptime_s - s,
                                m.current_a,
                                m.uptime_s - start
                            ),
                            limit,
                        ));
                    }
                } else {
                    since = None;
                }
                if m.uptime_s - start >= timeout_s {
                    return Ok(Outcome::fail(
                        format!(
                            "no rest within {timeout_s} s: longest {longest:.0} s, last current {:.3} A",
                            m.current_a
                        ),
                        limit,
                    ));
                }
            }
            if wall0.elapsed() > Self::wall_guard(timeout_s) {
                let waited = last.zip(t0).map_or(0.0, |(l, s)| l - s);
                let i = last_i.map_or("not read".into(), |i: f64| format!("{i:.3} A"));
                return Ok(Outcome::fail(format!("{}; last current {i}", slow_clock(waited, wall0)), limit));
            }
            sleep(self.interval).await;
        }
    }

    async fn read_step(
        &mut self,
        registers: &[&'static RegDef],
        samples: u32,
        expect: Option<&Expect>,
    ) -> Result<Outcome, Abort> {
        let n = registers.len();
        let (mut sums, mut errors) = (vec![0i128; n], vec![None::<String>; n]);
        let mut last_raw = vec![0i64; n];
        for k in 0..samples {
            if k > 0 {
                sleep(self.interval).await;
                self.observe().await?;
            }
            for (i, v) in self.read(registers).await?.into_iter().enumerate() {
                match v {
                    Ok(raw) => {
                        sums[i] += i128::from(raw);
                        last_raw[i] = raw;
                    }
                    Err(e) => {
                        errors[i].get_or_insert(e);
                    }
                }
            }
        }
        let mut values = Vec::with_capacity(n);
        let mut ok = true;
        for (i, r) in registers.iter().enumerate() {
            if let Some(e) = &errors[i] {
                ok = false;
                values.push(format!("{}: {e}", r.name));
                continue;
            }
            let mean_raw = sums[i] as f64 / f64::from(samples);
            let v = r.to_physical(1) * mean_raw;
            let shown = if samples == 1 { show(r, last_raw[i]) } else { show_mean(r, v) };
            let good = match expect {
                None => true,
                Some(Expect::Range { min, max }) => {
                    min.is_none_or(|lo| v >= lo - slack(lo)) && max.is_none_or(|hi| v <= hi + slack(hi))
                }
                Some(Expect::Value { value, tolerance }) => {
                    (v - value).abs() <= tolerance.abs(r, self.variant) + slack(*value)
                }
                Some(Expect::Documented) => (r.min as f64..=r.max as f64).contains(&mean_raw),
            };
            ok &= good;
            let mark = if good || n == 1 { "" } else { " (out)" };
            values.push(format!("{} = {shown}{mark}", r.name));
        }
        let mut value = values.join(", ");
        if samples > 1 {
            value.push_str(&format!(" (mean of {samples})"));
        }
        let limit = match expect {
            None => String::new(),
            Some(e) => limit_text(e, registers, self.variant),
        };
        let mut o = Outcome::judged(ok, value, limit);
        if let (Some(Expect::Documented), true) = (expect, n > 1) {
            o.detail.extend(registers.iter().map(|r| format!("{} in {}", r.name, super::plan::documented_range(r))));
        }
        Ok(o)
    }

    async fn read_one(&mut self, r: &'static RegDef) -> Result<Result<i64, String>, Abort> {
        Ok(self.read(&[r]).await?.remove(0))
    }

    async fn write_step(
        &mut self,
        r: &'static RegDef,
        raw: i64,
        restore: bool,
        expect_exception: Option<u8>,
    ) -> Result<Outcome, Abort> {
        let shown = show(r, raw);
        let limit = match expect_exception {
            Some(c) => format!("refused with exception {c:02}, {} unchanged", r.name),
            None => format!("reads back {shown}"),
        };
        let before = if restore || expect_exception.is_some() {
            match self.read_one(r).await? {
                Ok(v) => Some(v),
                Err(e) => {
                    return Ok(Outcome::fail(format!("{} could not be read before the write: {e}", r.name), limit));
                }
            }
        } else {
            None
        };
        let outcome = match (self.write(r, raw).await?, expect_exception) {
            (Wrote::Failed(e), _) => Outcome::fail(format!("write of {shown}: {e}"), limit),
            (Wrote::Exception(code), Some(want)) if u8::from(code) == want => {
                let now = self.read_one(r).await?;
                let was = before.map_or("?".into(), |b| show(r, b));
                match now {
                    Ok(v) if Some(v) == before => Outcome::pass(
                        format!("{} ← {shown}: {}; still {was}", r.name, describe_exception(code, r.addr)),
                        limit,
                    ),
                    Ok(v) => Outcome::fail(
                        format!("{} ← {shown}: refused, yet it changed from {was} to {}", r.name, show(r, v)),
                        limit,
                    ),
                    Err(e) => Outcome::fail(format!("refused as expected; read back: {e}"), limit),
                }
            }
            (Wrote::Exception(code), _) => {
                Outcome::fail(format!("{} ← {shown}: {}", r.name, describe_exception(code, r.addr)), limit)
            }
            (Wrote::Done, Some(want)) => {
                let mut o =
                    Outcome::fail(format!("{} ← {shown} was accepted; exception {want:02} expected", r.name), limit);
                self.mirror(r, raw, &mut o);
                if let Some(b) = before {
                    o.detail.push(self.put_back(r, b).await?);
                }
                o
            }
            (Wrote::Done, None) => {
                let mut o = match self.read_one(r).await? {
                    Ok(v) => {
                        Outcome::judged(v == raw, format!("{} ← {shown}, read back {}", r.name, show(r, v)), limit)
                    }
                    Err(e) => Outcome::fail(format!("{} ← {shown}, read back: {e}", r.name), limit),
                };
                self.mirror(r, raw, &mut o);
                if let (true, Some(b)) = (restore, before) {
                    let note = self.put_back(r, b).await?;
                    if !note.starts_with("restored") {
                        o.verdict = Verdict::Fail;
                    }
                    o.detail.push(note);
                }
                o
            }
        };
        Ok(outcome)
    }

    /// Writes the original value `was` back; says how that went.
    async fn put_back(&mut self, r: &'static RegDef, was: i64) -> Result<String, Abort> {
        let shown = show(r, was);
        let note = match self.write(r, was).await? {
            Wrote::Done => match self.read_one(r).await? {
                Ok(v) if v == was => format!("restored {} = {shown}", r.name),
                Ok(v) => format!("could not restore {} = {shown}: it reads {}", r.name, show(r, v)),
                Err(e) => format!("could not restore {} = {shown}: read back: {e}", r.name),
            },
            Wrote::Exception(code) => {
                format!("could not restore {} = {shown}: {}", r.name, describe_exception(code, r.addr))
            }
            Wrote::Failed(e) => format!("could not restore {} = {shown}: {e}", r.name),
        };
        if note.starts_with("restored") {
            let mut sink = Outcome::pass("", "");
            self.mirror(r, was, &mut sink);
        }
        Ok(note)
    }

    /// Writes to the twin what the board accepted; a refusal is noted.
    fn mirror(&mut self, r: &RegDef, raw: i64, o: &mut Outcome) {
        if let Some(Ok(ls)) = &mut self.twin {
            if let Err(e) = ls.mirror(r, raw) {
                o.detail.push(format!("the twin refused {} = {}: {e}", r.name, show(r, raw)));
            }
        }
    }

    async fn expect_twin(&mut self, r: &'static RegDef, tolerance: Option<Tolerance>) -> Result<Outcome, Abort> {
        let limit_unknown = "the twin's value ± tolerance".to_string();
        let regs = match &self.twin {
            Some(Ok(ls)) => ls.registers().clone(),
            Some(Err(why)) => return Ok(Outcome::fail(format!("no twin: {why}"), limit_unknown)),
            None => return Ok(Outcome::fail("no twin", limit_unknown)),
        };
        let mut list = vec![r];
        list.extend(lockstep::companions(r));
        let (board, spread) = self.snapshot_at_one_instant(&regs, &list).await?;
        if let Some(spread_s) = spread {
            return Ok(Outcome::fail(
                format!(
                    "{} could not be read at one board instant: the uptime advanced {spread_s:.0} s while it was \
                     read ({SNAPSHOT_TRIES} tries; retries on the bus)",
                    r.name
                ),
                limit_unknown,
            ));
        }
        if regs.raw(&board, r.id).is_none() {
            let why = self.read_one(r).await?.err().unwrap_or_else(|| "not read".into());
            return Ok(Outcome::fail(format!("{}: {why}", r.name), limit_unknown));
        }
        let Some(Ok(ls)) = &mut self.twin else { unreachable!("checked above") };
        Ok(match ls.compare(r, &board, tolerance) {
            Ok(c) => {
                let d = decode::decimals(r.scale);
                let u = unit_suffix(r);
                Outcome::judged(
                    c.passed(),
                    format!(
                        "{}: board {:.d$}{u}, twin {:.d$}{u}, error {:+.d1$}{u}",
                        r.name,
                        c.board,
                        c.twin,
                        c.error,
                        d1 = d + 1
                    ),
                    format!("± {:.d1$}{u}", c.tolerance, d1 = d + 1),
                )
                .with(format!("twin: {}", c.basis))
            }
            Err(why) => Outcome::fail(format!("{}: {why}", r.name), limit_unknown),
        })
    }

    async fn calibrate(&mut self, cal: Calibration) -> Result<Outcome, Abort> {
        let (clock, kind, time, setting) =
            (reg(RegId::Clock), reg(RegId::LastCalKind), reg(RegId::LastCalTime), cal.setting());
        let command = cal.register();
        let what = match cal {
            Calibration::ZeroCurrent => "current zero".to_string(),
            Calibration::Current { .. } => format!("current gain at {}", show(command, cal.raw())),
            Calibration::Voltage { .. } => format!("voltage gain at {}", show(command, cal.raw())),
        };
        let before = self.read(&[clock, setting, kind, time]).await?;
        let (clock_before, setting_before, stamp_before) = match (&before[0], &before[1], &before[2], &before[3]) {
            (Ok(c), Ok(s), Ok(k), Ok(t)) => (*c, *s, (*k, *t)),
            (Err(e), ..) | (_, Err(e), ..) | (.., Err(e), _) | (.., Err(e)) => {
                return Ok(Outcome::fail(
                    format!("clock_s, {}, last_cal_kind and last_cal_time_s could not be read: {e}", setting.name),
                    what,
                ));
            }
        };
        let limit = format!("last_cal_kind = {} ({}), a new last_cal_time_s", cal.kind_code(), cal.name());
        let unlock = reg(RegId::CalUnlock);
        match self.write(unlock, i64::from(CAL_UNLOCK_KEY)).await? {
            Wrote::Done => {}
            Wrote::Exception(code) => {
                return Ok(Outcome::fail(
                    format!("cal_unlock refused: {}", describe_exception(code, unlock.addr)),
                    limit,
                ));
            }
            Wrote::Failed(e) => return Ok(Outcome::fail(format!("cal_unlock: {e}"), limit)),
        }
        let mut tries = 0;
        loop {
            tries += 1;
            match self.write(command, cal.raw()).await? {
                Wrote::Done => break,
                Wrote::Exception(ExceptionCode::ServerDeviceBusy) if tries < CAL_BUSY_TRIES => {
                    sleep(Duration::from_nanos(CAL_WINDOW.0)).await;
                    self.observe().await?;
                }
                Wrote::Exception(code) => {
                    let value = format!(
                        "{} ← {}: {}",
                        command.name,
                        show(command, cal.raw()),
                        describe_exception(code, command.addr)
                    );
                    return Ok(Outcome::fail(value, limit));
                }
                Wrote::Failed(e) => return Ok(Outcome::fail(format!("{}: {e}", command.name), limit)),
            }
        }
        let after = self.read(&[kind, time, setting]).await?;
        let (k, t, s) = match (&after[0], &after[1], &after[2]) {
            (Ok(k), Ok(t), Ok(s)) => (*k, *t, *s),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                return Ok(Outcome::fail(format!("calibrated; last_cal_kind, last_cal_time_s: {e}"), limit));
            }
        };
        // A new stamp: the kind or the time changed (the same kind again within the same second of the
        // board's clock would not show, a plan does not calibrate that fast).
        let ok = k == cal.kind_code() && (k, t) != stamp_before;
        let mut o = Outcome::judged(
            ok,
            format!(
                "{what}: last_cal_kind = {k}, last_cal_time_s = {t} s (before: {}, {} s); {} {} → {}",
                stamp_before.0,
                stamp_before.1,
                setting.name,
                show(setting, setting_before),
                show(setting, s)
            ),
            limit,
        );
        if t < clock_before {
            o.detail.push(format!(
                "last_cal_time_s = {t} s is earlier than clock_s = {clock_before} s read before the command: the \
                 board stamps calibrations with another clock than clock_s"
            ));
        }
        Ok(o)
    }

    async fn command(&mut self, r: &'static RegDef, raw: i64, expect_exception: Option<u8>) -> Result<Outcome, Abort> {
        let shown = if r.min == r.max { format!("0x{raw:04X}") } else { show(r, raw) };
        let limit = match expect_exception {
            Some(c) => format!("refused with exception {c:02}"),
            None => "accepted".to_string(),
        };
        let value = |what: &str| format!("{} ← {shown}: {what}", r.name);
        let mut o = match (self.write(r, raw).await?, expect_exception) {
            (Wrote::Done, None) => Outcome::pass(value("accepted"), limit),
            (Wrote::Done, Some(_)) => Outcome::fail(value("accepted"), limit),
            (Wrote::Exception(code), want) => {
                Outcome::judged(want == Some(u8::from(code)), value(&describe_exception(code, r.addr)), limit)
            }
            (Wrote::Failed(e), _) => Outcome::fail(value(&e), limit),
        };
        if o.value.ends_with("accepted") {
            self.mirror(r, raw, &mut o);
            // The SOC or the totals moved on both: the twin's comparison starts again from here.
            if matches!(r.id, RegId::SetSoc | RegId::ResetCounters) {
                if let Some(Ok(ls)) = &self.twin {
                    let regs = ls.registers().clone();
                    let list = regs.list.clone();
                    let (board, _) = self.snapshot_at_one_instant(&regs, &list).await?;
                    if let Some(Ok(ls)) = &mut self.twin {
                        ls.rebase(&board);
                        o.detail.push("the twin's SOC and totals are compared from here on".into());
                    }
                }
            }
        }
        Ok(o)
    }
}

/// `the board's uptime advanced 3 s in 25.0 s of wall time: …`.
fn slow_clock(board_s: f64, wall0: Instant) -> String {
    format!(
        "the board's uptime advanced {board_s:.0} s in {:.1} s of wall time: its clock is stopped or slow",
        wall0.elapsed().as_secs_f64()
    )
}

fn restarted(from_s: f64, to_s: f64) -> String {
    format!("the board restarted: its uptime went from {from_s} s to {to_s} s")
}

/// The limit of an expectation, in the registers' unit.
fn limit_text(e: &Expect, registers: &[&'static RegDef], variant: Variant) -> String {
    let r = registers[0];
    let u = unit_suffix(r);
    match *e {
        Expect::Range { min: Some(lo), max: Some(hi) } => format!("[{}, {}]{u}", show_phys(r, lo), show_phys(r, hi)),
        Expect::Range { min: Some(lo), max: None } => format!("≥ {}{u}", show_phys(r, lo)),
        Expect::Range { min: None, max: Some(hi) } => format!("≤ {}{u}", show_phys(r, hi)),
        Expect::Range { min: None, max: None } => String::new(),
        Expect::Value { value, tolerance } => {
            let tol = tolerance.abs(r, variant);
            let d = decode::decimals(r.scale);
            let fs = match (tolerance, full_scale(r, variant)) {
                (Tolerance::PctFs(p), Some(fs)) => format!(" ({p} % of {fs} FS)"),
                _ => String::new(),
            };
            if tol == 0.0 {
                format!("= {}{u}", show_phys(r, value))
            } else {
                format!("{} ± {tol:.d$}{u}{fs}", show_phys(r, value))
            }
        }
        Expect::Documented if registers.len() == 1 => format!("in {}", super::plan::documented_range(r)),
        Expect::Documented => "each in its documented range (docs/register-map.md)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::by_name;

    fn r(name: &str) -> &'static RegDef {
        by_name(name).unwrap()
    }

    #[test]
    fn values_show_in_their_unit_and_bits_by_name() {
        assert_eq!(show(r("lvp_mv"), 11_500), "11.500 V");
        assert_eq!(show(r("status"), 0x23), "0x0023 switch_on lvp_output soc_synced");
        assert_eq!(show(r("faults"), 0), "0x0000");
        assert_eq!(show(r("device_type"), 209), "209");
        assert_eq!(show(r("firmware_version"), 0x0102), "1.2 (0x0102)");
        assert_eq!(show_mean(r("current_ma"), 0.12534), "0.1253 A");
    }

    #[test]
    fn limits_read_as_the_plan_wrote_them() {
        let cur = [r("current_ma")];
        let e = Expect::Value { value: 0.0, tolerance: Tolerance::PctFs(0.01) };
        assert_eq!(limit_text(&e, &cur, Variant::V12), "0.000 ± 0.025 A (0.01 % of 250 FS)");
        let v = [r("battery_voltage_mv")];
        let e = Expect::Range { min: Some(10.0), max: None };
        assert_eq!(limit_text(&e, &v, Variant::V12), "≥ 10.000 V");
        let e = Expect::Range { min: Some(10.0), max: Some(14.6) };
        assert_eq!(limit_text(&e, &v, Variant::V12), "[10.000, 14.600] V");
        let e = Expect::Value { value: 209.0, tolerance: Tolerance::Abs(0.0) };
        assert_eq!(limit_text(&e, &[r("device_type")], Variant::V12), "= 209");
        assert_eq!(limit_text(&Expect::Documented, &[r("lvp_mv")], Variant::V12), "in [4.000, 60.000] V");
        let two = [r("lvp_mv"), r("sc_max_retries")];
        assert_eq!(
            limit_text(&Expect::Documented, &two, Variant::V12),
            "each in its documented range (docs/register-map.md)"
        );
    }

    #[test]
    fn the_wall_guard_allows_for_a_real_board_and_stops_a_stalled_one() {
        type B = Bench<tokio::io::DuplexStream>;
        assert_eq!(B::wall_guard(30.0), Duration::from_secs(55));
        assert_eq!(B::wall_guard(0.5), Duration::from_secs_f64(10.75));
    }
}
