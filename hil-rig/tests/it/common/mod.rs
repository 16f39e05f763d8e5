//! Shared by the pty tests: a fake SmartPro board served on the master side
//! of a pty pair (firmware-core's Modbus PDU layer over a table encoded from
//! the register map), and a runner for the real `hil-rig` binary on the
//! slave side.

#![allow(dead_code)] // each test file uses a part

use std::collections::HashMap;
use std::process::{Command, Output};

use firmware_core::map::{self, by_name, status};
use firmware_core::modbus::crc::crc16;
use firmware_core::modbus::pdu::process_request;
use firmware_core::modbus::{ExceptionCode, RegisterBank, RegisterKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPort, SerialStream};

pub const UNIT: u8 = 1;

/// Registers with the values of a board at rest, encoded through the map.
pub struct FakeBoard {
    words: HashMap<u16, u16>,
}

impl FakeBoard {
    pub fn new() -> Self {
        let mut words = HashMap::new();
        let mut set = |name: &str, raw: i64| {
            let r = by_name(name).unwrap();
            let w = r.ty.encode(raw);
            for i in 0..r.ty.words() {
                words.insert(r.addr + i, w[usize::from(i)]);
            }
        };
        set("device_type", 209);
        set("variant_v", 12);
        set("battery_voltage_mv", 13_284);
        set("current_ma", -1_234);
        set("temperature_dc", 215);
        set("status", i64::from(status::SWITCH_ON | status::LVP_OUTPUT));
        Self { words }
    }
}

impl RegisterBank for FakeBoard {
    fn read_registers(&mut self, _kind: RegisterKind, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
        for (i, w) in out.iter_mut().enumerate() {
            let a = addr.wrapping_add(i as u16);
            map::find(a).ok_or(ExceptionCode::IllegalDataAddress)?;
            *w = self.words.get(&a).copied().unwrap_or(0);
        }
        Ok(())
    }

    fn write_registers(&mut self, _: u16, _: &[u16]) -> Result<(), ExceptionCode> {
        Err(ExceptionCode::IllegalFunction)
    }
}

/// Answers 8-byte read requests for `UNIT` on the pty master, except those
/// whose 1-based number `ignore` picks (they go unanswered: a timeout).
pub async fn serve(mut master: SerialStream, ignore: impl Fn(usize) -> bool) {
    let mut board = FakeBoard::new();
    let mut buf = Vec::new();
    let mut seen = 0;
    let mut chunk = [0u8; 256];
    loop {
        let n = match master.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 8 {
            let req: Vec<u8> = buf.drain(..8).collect();
            assert_eq!(crc16(&req), 0, "request with a bad CRC: {req:02X?}");
            seen += 1;
            if req[0] != UNIT || ignore(seen) {
                continue;
            }
            let mut pdu = [0u8; 253];
            let len = process_request(&mut board, &req[1..6], &mut pdu).unwrap();
            let mut adu = vec![UNIT];
            adu.extend_from_slice(&pdu[..len]);
            let crc = crc16(&adu);
            adu.extend_from_slice(&crc.to_le_bytes());
            master.write_all(&adu).await.unwrap();
        }
    }
}

/// Runs `hil-rig SUBCOMMAND --port <pty> ARGS...` on a fresh pty pair served
/// by a fake board that leaves the requests `ignore` picks unanswered.
pub async fn run_on_fake_board(
    subcommand: &str,
    ignore: impl Fn(usize) -> bool + Send + 'static,
    args: &[&str],
) -> Output {
    let _machine = smartpro_sim::testing::machine::timing();
    let (master, slave) = SerialStream::pair().expect("pty pair");
    let path = slave.name().expect("pty name");
    let server = tokio::spawn(serve(master, ignore));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hil-rig"));
    cmd.args([subcommand, "--port", &path]).args(args).env_clear();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run hil-rig")).await.unwrap();
    server.abort();
    // The slave handle must live until the client is done with the pty.
    drop(slave);
    out
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the hil-rig binary with `args` and a clean environment (no HIL_RIG_* fallbacks).
pub fn run_hil_rig(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hil-rig")).args(args).env_clear().output().unwrap()
}

/// `hil-rig fit ARGS`.
pub fn run_fit(args: &[&str]) -> std::process::Output {
    run_hil_rig(&[&["fit"], args].concat())
}

/// A fresh folder `<temp>/<name>-<pid>` for one test's files.
pub fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
