//! The live twin behind Modbus transports: one or more units, each its own
//! engine (pack, seed, board), paced to the wall clock, on an RTU line (pty,
//! serial port, RTU over TCP) and/or Modbus TCP, with bus fault injection and
//! a frame log.
//!
//! Threads and tasks:
//!
//! * the **twin thread** ([`twin`]) owns every engine and board, steps the
//!   engines in batches towards `speed` × the wall clock, frames the RTU line,
//!   runs the fault injector, and queues replies until they are due;
//! * the **transports** (this module's async side: [`line`], [`tcp`]) only move
//!   bytes: they timestamp what they read, send it to the twin thread, and
//!   write the replies it sends back.
//!
//! They talk by channels only: a client that stops reading blocks nothing but
//! its own writes (the twin drops replies the line cannot take and counts
//! them), and stepping the engines never holds up a read.
//!
//! The sim only moves bytes: framing, CRC, unit filtering and the register
//! map are the firmware's (`firmware_core::modbus`), as on the board.

pub mod faults;
pub mod framelog;
mod line;
mod pty;
mod tcp;
pub use tcp::{MBAP_LEN, MbapEnd, MbapRequest, TcpLimits, encode_reply, parse_header, read_request};
mod twin;

/// Messages queued from the transports to the twin thread, at most (issue 20:
/// no unbounded queue between the serving threads). A message is a read of
/// at most 512 bytes, a TCP request of at most 253, or a note: well under a
/// megabyte in all. The twin takes them faster than a line or a few TCP
/// clients bring them; the queue fills only when the twin falls behind. Then
/// the RTU line stops reading until there is room (its bytes wait in the OS
/// buffer), a Modbus TCP request is answered at once with exception 06
/// (server device busy), and a note for the frame log is dropped.
pub const TO_TWIN_QUEUE: usize = 1024;

use std::future::Future;
use std::path::{Path, PathBuf};

use firmware_core::Instant;
use firmware_core::modbus::rtu::{RtuConfig, RtuCounters};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::engine::{EngineError, NvmImage};
use crate::scenario::Scenario;
use faults::{FaultCounters, FaultOverrides, FaultsConfig};

pub use line::REOPEN_POLL;
pub use pty::Pty;

/// A battery resting at 60 % SOC: what `serve` and `bench-bus` serve when no scenario is given.
pub const IDLE_SCENARIO: &str = r#"
name = "idle"
description = "built-in: a battery at rest"
variant = 12
seed = 1
initial_soc = 0.6
[firmware]
initial_soc_pct = 60.0
[[segment]]
kind = "rest"
duration_s = 1
"#;

/// The server's wall clock: nanoseconds since the server started, as the
/// firmware's [`Instant`].
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    start: std::time::Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock { start: std::time::Instant::now() }
    }
    pub fn now(&self) -> Instant {
        Instant(self.start.elapsed().as_nanos() as u64)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Why serving could not start or stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Bad set-up (faults, NVM file, frame log, scenario): nothing was served.
    #[error("{0}")]
    Setup(String),
    #[error("unit {unit}: {source}")]
    Engine {
        unit: u8,
        #[source]
        source: EngineError,
    },
    #[error("port lost: {0}")]
    PortLost(String),
    #[error("cannot start the twin thread: {0}")]
    Thread(String),
}

impl ServeError {
    /// Whether the cause is the input (exit code 2) rather than the run (3).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ServeError::Setup(_) | ServeError::Engine { source: EngineError::Settings(_), .. })
            || matches!(self, ServeError::Engine { source: EngineError::RegisterWrite { .. }, .. })
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// Unit ids, 1..=247, each an independent twin; the i-th runs the scenario
    /// with seed `scenario.seed + i`.
    pub units: Vec<u8>,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Line settings (the unit id in it is ignored).
    pub line: RtuConfig,
    /// Pace the RTU line at the baud rate (a pty itself is instant).
    pub line_timing: bool,
    pub faults: FaultsConfig,
    pub fault_overrides: FaultOverrides,
    /// Overrides `faults.seed`.
    pub fault_seed: Option<u64>,
    /// Settings EEPROM file: as is for one unit, `FILE.uN` for unit N of several.
    pub nvm: Option<PathBuf>,
    pub log_frames: Option<PathBuf>,
}

impl Options {
    /// One unit, real time, 19200 8E1, no faults.
    pub fn new(units: Vec<u8>) -> Self {
        Options {
            units,
            speed: 1.0,
            line: RtuConfig::default(),
            line_timing: false,
            faults: FaultsConfig::default(),
            fault_overrides: FaultOverrides::default(),
            fault_seed: None,
            nvm: None,
            log_frames: None,
        }
    }
}

/// A byte stream usable as an RTU line.
pub trait Port: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Port for T {}

/// The RTU line to serve.
pub enum RtuLine {
    /// A pty made for this session: served on its master side; the slave side
    /// is held open and kept reopenable by non-root clients (see [`Pty`]).
    Pty(Box<Pty>),
    /// An open stream: the master side of a pty (keep its slave handle open), a test pipe.
    Stream(Box<dyn Port>),
    /// A serial device, already opened once; reopened from `path` with
    /// `builder` when it vanishes and comes back.
    Serial { path: PathBuf, builder: tokio_serial::SerialPortBuilder, port: tokio_serial::SerialStream },
    /// RTU frames over TCP connections (one at a time; a newer one takes over).
    RtuTcp(tokio::net::TcpListener),
}

impl std::fmt::Debug for RtuLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RtuLine::Pty(p) => write!(f, "RtuLine::{p:?}"),
            RtuLine::Stream(_) => f.write_str("RtuLine::Stream"),
            RtuLine::Serial { path, .. } => write!(f, "RtuLine::Serial({})", path.display()),
            RtuLine::RtuTcp(l) => write!(f, "RtuLine::RtuTcp({:?})", l.local_addr().ok()),
        }
    }
}

/// Where to serve.
#[derive(Debug, Default)]
pub struct Transports {
    pub rtu: Option<RtuLine>,
    pub tcp: Option<tokio::net::TcpListener>,
    /// What the Modbus TCP server allows a client.
    pub tcp_limits: TcpLimits,
}

/// What one unit did.
#[derive(Debug, Clone, Copy)]
pub struct UnitReport {
    pub unit: u8,
    pub simulated_s: f64,
    /// The boards' replies sent (RTU and TCP), after fault injection.
    pub replies: u64,
    pub tcp_requests: u64,
    /// Fault-counter reads (FC08 0x0100..) answered by the serve layer, RTU and TCP.
    pub fault_counter_reads: u64,
    /// The board's RTU counters.
    pub counters: RtuCounters,
    /// What the injector did.
    pub faults: FaultCounters,
}

/// What a serve session did.
#[derive(Debug, Clone, Default)]
pub struct ServeReport {
    pub wall_s: f64,
    pub bytes_in: u64,
    /// RTU frames seen on the line (any unit, valid or not).
    pub frames: u64,
    /// Replies the line could not take (no port open, or a client not reading).
    pub replies_not_sent: u64,
    /// Times the serial port was lost (and looked for again).
    pub port_losses: u64,
    pub units: Vec<UnitReport>,
    /// Lines written to the frame log, or why writing stopped.
    pub frame_log: Option<Result<u64, String>>,
}

impl ServeReport {
    pub fn replies(&self) -> u64 {
        self.units.iter().map(|u| u.replies).sum()
    }
    pub fn unit(&self, id: u8) -> Option<&UnitReport> {
        self.units.iter().find(|u| u.unit == id)
    }
}

impl std::fmt::Display for ServeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "served {:.1} s: {} bytes in, {} RTU frames, {} replies",
            self.wall_s,
            self.bytes_in,
            self.frames,
            self.replies()
        )?;
        if self.replies_not_sent > 0 {
            write!(f, ", {} replies not sent (no port or client not reading)", self.replies_not_sent)?;
        }
        if self.port_losses > 0 {
            write!(f, ", port lost {} times", self.port_losses)?;
        }
        for u in &self.units {
            let c = &u.counters;
            write!(
                f,
                "\n  unit {}: {:.1} s simulated, {} replies ({} TCP requests); bus messages {}, CRC errors {}, \
                 exceptions {}, broadcasts {}, other units {}, overruns {}",
                u.unit,
                u.simulated_s,
                u.replies,
                u.tcp_requests,
                c.bus_messages,
                c.crc_errors,
                c.exceptions_sent,
                c.no_responses,
                c.ignored_other_unit,
                c.overruns
            )?;
            if u.faults.total() > 0 {
                write!(f, "\n    injected: {}", u.faults)?;
            }
            if u.fault_counter_reads > 0 {
                write!(f, "\n    fault counters read over the bus {} times", u.fault_counter_reads)?;
            }
        }
        match &self.frame_log {
            Some(Ok(n)) => write!(f, "\n  frame log: {n} lines"),
            Some(Err(e)) => write!(f, "\n  frame log FAILED: {e}"),
            None => Ok(()),
        }
    }
}

/// The scenario of each unit: the i-th gets seed `seed + i` and its unit id.
pub fn unit_scenarios(scenario: &Scenario, units: &[u8]) -> Vec<Scenario> {
    units
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let mut s = scenario.clone();
            s.seed = scenario.seed.wrapping_add(i as u64);
            s.firmware.unit = id;
            s
        })
        .collect()
}

/// The EEPROM file of each unit: `file` itself for a single unit, `file.uN` for unit N of several.
pub fn nvm_paths(file: Option<&Path>, units: &[u8]) -> Vec<Option<PathBuf>> {
    units
        .iter()
        .map(|id| {
            file.map(|f| {
                if units.len() == 1 {
                    f.to_owned()
                } else {
                    let mut s = f.as_os_str().to_owned();
                    s.push(format!(".u{id}"));
                    PathBuf::from(s)
                }
            })
        })
        .collect()
}

/// Serves `scenario` as `opts.units` on `transports` until `shutdown`
/// completes, the RTU line is lost beyond recovery (a pty), or an engine fails.
pub async fn serve<F>(
    scenario: &Scenario,
    opts: &Options,
    transports: Transports,
    shutdown: F,
) -> Result<ServeReport, (ServeError, ServeReport)>
where
    F: Future<Output = ()>,
{
    let setup = |e: String| (ServeError::Setup(e), ServeReport::default());
    if opts.units.is_empty() {
        return Err(setup("no unit to serve".into()));
    }
    if !(opts.speed.is_finite() && opts.speed > 0.0) {
        return Err(setup(format!("speed {} must be positive", opts.speed)));
    }
    let faults = opts.faults.resolve(&opts.units, &opts.fault_overrides).map_err(setup)?;
    let scenarios = unit_scenarios(scenario, &opts.units);
    let nvm_files = nvm_paths(opts.nvm.as_deref(), &opts.units);
    let mut images = Vec::new();
    for f in &nvm_files {
        let image = match f {
            Some(p) => read_nvm_file(p).map_err(|e| setup(format!("--nvm {}: {e}", p.display())))?,
            None => None,
        };
        if let (Some(p), Some(img)) = (f, &image) {
            if let Some(why) = unusable_nvm(scenario.variant, img) {
                eprintln!(
                    "warning: --nvm {}: neither settings slot holds a valid record ({why}); the board boots as it \
                     leaves the factory (default settings, calibrated), and the file is left as it is until a \
                     setting is written",
                    p.display()
                );
            }
        }
        images.push(image);
    }
    let frame_log = match &opts.log_frames {
        Some(p) => Some(
            framelog::FrameLog::create(p)
                .map_err(|e| setup(format!("--log-frames {}: cannot create: {e}", p.display())))?,
        ),
        None => None,
    };
    let clock = Clock::new();
    let (line_out, replies) = tokio::sync::mpsc::channel(64);
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let cfg = twin::TwinConfig {
        units: opts.units.clone(),
        speed: opts.speed,
        line: opts.line,
        line_timing: opts.line_timing,
        faults,
        fault_seed: opts.fault_seed.or(opts.faults.seed).unwrap_or(0),
        nvm_files,
        frame_log,
    };
    let (to_twin, join) =
        twin::start(scenarios, images, cfg, clock, line_out, done_tx).map_err(|e| (e, ServeReport::default()))?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);

    let Transports { rtu, tcp, tcp_limits } = transports;
    let mut ctx = line::LineCtx { to_twin: to_twin.clone(), clock, replies, stop: stop_rx.clone() };
    let rtu_fut = async {
        match rtu {
            None => std::future::pending().await,
            Some(RtuLine::Pty(p)) => {
                let pty::Pty { mut master, slave, path, fresh } = *p;
                let guard = pty::keep_reopenable(&slave, fresh.as_ref(), &path, ctx.to_twin.clone(), ctx.stop.clone());
                tokio::select! {
                    end = line::serve_port(&mut master, &mut ctx, None) => match end {
                        line::PortEnd::Lost(why) => Err(ServeError::PortLost(why)),
                        _ => Ok(0),
                    },
                    // It returns only once the server stops.
                    () = guard => Ok(0),
                }
            }
            Some(RtuLine::Stream(mut port)) => match line::serve_port(&mut port, &mut ctx, None).await {
                line::PortEnd::Lost(why) => Err(ServeError::PortLost(why)),
                _ => Ok(0),
            },
            Some(RtuLine::Serial { path, builder, port }) => {
                Ok(line::serve_serial(&path, &builder, port, &mut ctx).await)
            }
            Some(RtuLine::RtuTcp(listener)) => {
                line::serve_rtu_tcp(listener, &mut ctx).await;
                Ok(0)
            }
        }
    };
    let tcp_fut = async {
        match tcp {
            None => std::future::pending().await,
            Some(listener) => tcp::serve_tcp(listener, tcp_limits, to_twin.clone(), stop_rx.clone()).await,
        }
    };
    tokio::pin!(rtu_fut, tcp_fut, shutdown);
    let mut port_losses = 0;
    let mut error = None;
    let (mut rtu_done, mut tcp_done) = (false, false);
    tokio::select! {
        _ = &mut shutdown => {}
        _ = &mut done_rx => {}
        r = &mut rtu_fut => {
            rtu_done = true;
            match r {
                Ok(n) => port_losses = n,
                Err(e) => error = Some(e),
            }
        }
        _ = &mut tcp_fut => tcp_done = true,
    }
    // Let the transports see the stop and finish what they are doing.
    let _ = stop_tx.send(true);
    let wind_down = async {
        tokio::join!(
            async {
                if !rtu_done {
                    if let Ok(n) = (&mut rtu_fut).await {
                        port_losses = port_losses.max(n);
                    }
                }
            },
            async {
                if !tcp_done {
                    (&mut tcp_fut).await;
                }
            }
        )
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), wind_down).await;
    let _ = to_twin.send(twin::ToTwin::Stop);
    let outcome = match join.join() {
        Ok(r) => r,
        Err(_) => return Err((ServeError::Thread("the twin thread panicked".into()), ServeReport::default())),
    };
    let (twin_error, o) = match outcome {
        Ok(o) => (None, o),
        Err(b) => {
            let (e, o) = *b;
            (Some(e), o)
        }
    };
    let report = ServeReport {
        wall_s: o.wall_s,
        bytes_in: o.bytes_in,
        frames: o.frames,
        replies_not_sent: o.replies_not_sent,
        port_losses,
        units: o.units,
        frame_log: o.frame_log,
    };
    match twin_error.or(error) {
        Some(e) => Err((e, report)),
        None => Ok(report),
    }
}

/// Writes the EEPROM image next to `path`, then renames it into place, so a
/// crash never leaves a half-written file.
pub fn write_nvm_file(path: &Path, image: &NvmImage) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, image)?;
    std::fs::rename(&tmp, path)
}

/// Why the board cannot boot from `image` (no slot holds a valid settings
/// record), or `None` when it can.
pub fn unusable_nvm(variant: models::variant::Variant, image: &NvmImage) -> Option<firmware_core::nvm::Reason> {
    use firmware_core::nvm::{RamNvm, SettingsStore, Source};
    let store = SettingsStore::new(crate::handover::board_variant(variant));
    match store.load(&mut RamNvm::from_bytes(*image)) {
        Ok(loaded) => match loaded.source {
            Source::Defaults(reason) => Some(reason),
            Source::Slot { .. } => None,
        },
        // A RAM image cannot fail to read.
        Err(_) => None,
    }
}

/// Reads an EEPROM image written by [`write_nvm_file`]; `None` if the file does not exist.
pub fn read_nvm_file(path: &Path) -> std::io::Result<Option<NvmImage>> {
    match std::fs::read(path) {
        Ok(bytes) => NvmImage::try_from(bytes.as_slice()).map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes, expected an EEPROM image of {}", bytes.len(), std::mem::size_of::<NvmImage>()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::variant::Variant;

    #[test]
    fn issue_17_an_nvm_file_of_random_bytes_is_reported_not_silently_taken_for_defaults() {
        // 256 bytes from a fixed xorshift: no record survives its CRC.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut image: NvmImage = [0; firmware_core::nvm::STORE_LEN];
        for b in &mut image {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        assert_eq!(unusable_nvm(Variant::V12, &image), Some(firmware_core::nvm::Reason::Corrupt));
        // A blank EEPROM says so too; one the board wrote is usable.
        let blank = [firmware_core::nvm::ERASED; firmware_core::nvm::STORE_LEN];
        assert_eq!(unusable_nvm(Variant::V12, &blank), Some(firmware_core::nvm::Reason::Blank));
        let text = "name = \"n\"\nvariant = 12\ninitial_soc = 0.5\n[firmware.registers]\nlvp_mv = 11500\n\
                    [[segment]]\nkind = \"rest\"\nduration_s = 1\n";
        let s = Scenario::parse(text, Path::new("n.toml")).unwrap();
        let written = *crate::engine::Engine::new(&s).unwrap().nvm_image();
        assert_eq!(unusable_nvm(Variant::V12, &written), None);
    }

    #[tokio::test]
    async fn issue_17_an_unusable_nvm_file_is_left_untouched_until_a_write() {
        let dir = std::env::temp_dir().join(format!("smartpro-nvm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("eeprom.bin");
        let garbage: Vec<u8> = (0..firmware_core::nvm::STORE_LEN).map(|i| (i * 37 + 11) as u8).collect();
        std::fs::write(&path, &garbage).unwrap();
        let text = "name = \"n\"\nvariant = 12\ninitial_soc = 0.5\n[[segment]]\nkind = \"rest\"\nduration_s = 1\n";
        let scenario = Scenario::parse(text, Path::new("n.toml")).unwrap();
        let mut opts = Options::new(vec![1]);
        opts.nvm = Some(path.clone());
        let report =
            serve(&scenario, &opts, Transports::default(), tokio::time::sleep(std::time::Duration::from_millis(200)))
                .await
                .map_err(|(e, _)| e.to_string())
                .unwrap();
        assert_eq!(report.units.len(), 1);
        assert_eq!(std::fs::read(&path).unwrap(), garbage, "no setting was written: the file is as it was");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
