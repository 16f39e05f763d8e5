//! Shared by the serve_* tests: a server on a pty pair (and optionally TCP),
//! raw RTU frames, and timeouts (tokio-modbus has none).
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use firmware_core::modbus::frame::{Frame, emit_frame};
use smartpro_sim::scenario::Scenario;
use smartpro_sim::serve::{Options, Pty, RtuLine, ServeError, ServeReport, Transports};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::SerialPortBuilderExt;

pub const SCENARIO: &str = r#"
name = "e2e"
variant = 12
seed = 3
initial_soc = 0.6
[firmware]
initial_soc_pct = 60.0
[[segment]]
kind = "discharge"
current_a = 20.0
duration_s = 3600
"#;

/// 19200 8E1: one character, t3.5.
pub const CHAR: Duration = Duration::from_nanos(572_917);
pub const T35: Duration = Duration::from_nanos(2_005_209);

pub fn scenario() -> Scenario {
    Scenario::parse(SCENARIO, Path::new("e2e.toml")).unwrap()
}

type Task = tokio::task::JoinHandle<Result<ServeReport, (ServeError, ServeReport)>>;

/// A running server: on a pty it made (or the given RTU line), and on TCP if asked.
pub struct Server {
    /// The pty's slave path, for clients to open.
    pub path: String,
    pub tcp: Option<SocketAddr>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Task,
    /// The serve tests' share of the machine ([`crate::machine`]), for the server's lifetime.
    _machine: crate::machine::Timing,
}

impl Server {
    /// Stops the server and returns its report.
    pub async fn stop(mut self) -> ServeReport {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().expect("served until stopped")
    }
}

pub async fn start(opts: Options, tcp: bool) -> Server {
    start_with(opts, tcp, None).await
}

pub async fn start_with(opts: Options, tcp: bool, rtu: Option<RtuLine>) -> Server {
    let machine = crate::machine::timing();
    let scenario = scenario();
    let (rtu, path) = match rtu {
        Some(r) => (Some(r), String::new()),
        None => {
            let pty = Pty::open().unwrap();
            let path = pty.path().to_string_lossy().into_owned();
            (Some(RtuLine::Pty(Box::new(pty))), path)
        }
    };
    let (listener, addr) = if tcp {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = l.local_addr().unwrap();
        (Some(l), Some(a))
    } else {
        (None, None)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let transports = Transports { rtu, tcp: listener, ..Transports::default() };
        smartpro_sim::serve::serve(&scenario, &opts, transports, async {
            let _ = stopped.await;
        })
        .await
    });
    Server { path, tcp: addr, stop: Some(stop), task, _machine: machine }
}

/// A client port on the server's pty.
pub fn open(path: &str) -> tokio_serial::SerialStream {
    tokio_serial::new(path, 19_200).open_native_async().unwrap()
}

/// Every request gets a timeout (tokio-modbus has none) and the 3.5-character
/// gap before the next one.
pub async fn call<T>(f: impl Future<Output = T>) -> T {
    let r = tokio::time::timeout(Duration::from_secs(2), f).await.expect("reply within 2 s");
    tokio::time::sleep(Duration::from_millis(5)).await;
    r
}

/// Like [`call`], but `None` if no reply within `wait`.
pub async fn try_call<T>(wait: Duration, f: impl Future<Output = T>) -> Option<T> {
    let r = tokio::time::timeout(wait, f).await.ok();
    tokio::time::sleep(Duration::from_millis(5)).await;
    r
}

/// An RTU ADU for `unit` with `pdu`.
pub fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut b = [0u8; 256];
    let n = emit_frame(unit, pdu, &mut b).unwrap();
    b[..n].to_vec()
}

/// FC03 of `qty` registers from `addr`.
pub fn read_req(unit: u8, addr: u16, qty: u16) -> Vec<u8> {
    adu(unit, &[0x03, (addr >> 8) as u8, addr as u8, (qty >> 8) as u8, qty as u8])
}

/// Bytes that arrive within `wait` (stops early once `want` bytes are in).
pub async fn read_for(port: &mut tokio_serial::SerialStream, wait: Duration, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    while got.len() < want {
        match tokio::time::timeout_at(deadline, port.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    got
}

/// Writes `req` and collects the reply (`want` bytes, or whatever came within `wait`).
pub async fn transact(port: &mut tokio_serial::SerialStream, req: &[u8], want: usize, wait: Duration) -> Vec<u8> {
    port.write_all(req).await.unwrap();
    let r = read_for(port, wait, want).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    r
}

/// Three times the time a frame of `reply_len` bytes takes, plus its t3.5.
pub fn three_frame_times(reply_len: usize) -> Duration {
    (CHAR * reply_len as u32 + T35) * 3
}

pub fn crc_ok(adu: &[u8]) -> bool {
    Frame::new_checked(adu).is_ok()
}
