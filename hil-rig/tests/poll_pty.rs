//! `hil-rig poll` end to end on a pty pair: the test serves a fake board on the
//! master side (firmware-core's Modbus PDU layer over a table encoded from the
//! register map), runs the real binary on the slave's `/dev/pts/N`, and checks
//! its table, CSV, counters and exit codes.

use std::collections::HashMap;
use std::process::{Command, Output};

use firmware_core::map::{self, REGISTERS, by_name, status};
use firmware_core::modbus::crc::crc16;
use firmware_core::modbus::pdu::process_request;
use firmware_core::modbus::{ExceptionCode, RegisterBank, RegisterKind};
use firmware_core::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_serial::{SerialPort, SerialStream};

const UNIT: u8 = 1;

/// Registers with the values of a board at rest, encoded through the map.
struct FakeBoard {
    words: HashMap<u16, u16>,
}

impl FakeBoard {
    fn new() -> Self {
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

    fn write_registers(&mut self, _: Instant, _: u16, _: &[u16]) -> Result<(), ExceptionCode> {
        Err(ExceptionCode::IllegalFunction)
    }
}

/// Answers 8-byte read requests for `UNIT` on the pty master, after ignoring
/// the first `ignore_first` of them.
async fn serve(mut master: SerialStream, ignore_first: usize) {
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
            if req[0] != UNIT || seen <= ignore_first {
                continue;
            }
            let mut pdu = [0u8; 253];
            let len = process_request(&mut board, Instant(0), &req[1..6], &mut pdu).unwrap();
            let mut adu = vec![UNIT];
            adu.extend_from_slice(&pdu[..len]);
            let crc = crc16(&adu);
            adu.extend_from_slice(&crc.to_le_bytes());
            master.write_all(&adu).await.unwrap();
        }
    }
}

/// Runs `hil-rig poll` on a fresh pty pair served by a fake board.
async fn poll_fake_board(ignore_first: usize, args: &[&str]) -> Output {
    let (master, slave) = SerialStream::pair().expect("pty pair");
    let path = slave.name().expect("pty name");
    let server = tokio::spawn(serve(master, ignore_first));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hil-rig"));
    cmd.args(["poll", "--port", &path]).args(args).env_clear();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run hil-rig")).await.unwrap();
    server.abort();
    // The slave handle must live until the client is done with the pty.
    drop(slave);
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn polls_every_readable_register_and_logs_csv() {
    let dir = std::env::temp_dir().join(format!("hil-rig-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("poll.csv");
    let out = poll_fake_board(0, &["--count", "2", "--interval-ms", "20", "--csv", csv.to_str().unwrap()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("poll 2"), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in\n{stdout}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("battery_voltage_mv"), "13.284 V");
    assert_eq!(line("current_ma"), "-1.234 A");
    assert_eq!(line("temperature_dc"), "21.5 °C");
    assert_eq!(line("status"), "0x0003 bits switch_on lvp_output");
    // Nine requests per poll: one per contiguous section of the map.
    assert!(stdout.contains("polls 2  requests 18  replies 18  timeouts 0"), "{stdout}");

    let log = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = log.lines().collect();
    assert_eq!(rows.len(), 3, "{log}");
    let readable: Vec<String> = REGISTERS
        .iter()
        .filter(|r| r.access != map::Access::W)
        .map(|r| if r.unit.is_empty() { r.name.to_owned() } else { format!("{}[{}]", r.name, r.unit) })
        .collect();
    assert_eq!(rows[0], format!("t_s,{}", readable.join(",")));
    let col = readable.iter().position(|n| n == "current_ma[A]").unwrap() + 1;
    assert_eq!(rows[2].split(',').nth(col), Some("-1.234"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_lost_request_is_retried() {
    let out =
        poll_fake_board(1, &["--count", "1", "--registers", "current_ma,battery_voltage_mv", "--timeout-ms", "300"])
            .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("requests 2  replies 1  timeouts 1"), "{stdout}");
    assert!(stdout.contains("-1.234 A"), "{stdout}");
}

#[tokio::test]
async fn no_reply_from_another_unit_exits_1() {
    let out = poll_fake_board(0, &["--count", "3", "--unit", "9", "--timeout-ms", "50", "--retries", "1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("no reply from unit 9 on /dev/pts/")
            && stderr.contains("at 19200 8E1 after 2 tries (timeout 50 ms)"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("polls 1  requests 18  replies 0  timeouts 18"), "{stdout}");
}

#[test]
fn a_missing_port_exits_2_and_names_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_hil-rig"))
        .args(["poll", "--port", "/dev/hil-rig-no-such-port", "--count", "1"])
        .env_clear()
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/hil-rig-no-such-port"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn an_unknown_register_exits_2_with_the_valid_names() {
    let out = Command::new(env!("CARGO_BIN_EXE_hil-rig"))
        .args(["poll", "--port", "/dev/null", "--registers", "volts"])
        .env_clear()
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"volts\"") && stderr.contains("battery_voltage_mv"), "{stderr}");
}
