//! End to end: `serve` on one side of a pty pair, tokio-modbus's RTU client on the other.

use std::path::Path;
use std::time::Duration;

use smartpro_sim::engine::Engine;
use smartpro_sim::scenario::Scenario;
use smartpro_sim::serve::{ServeError, ServeReport};
use tokio_modbus::prelude::*;
use tokio_serial::{SerialPort, SerialPortBuilderExt};

const SCENARIO: &str = r#"
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

/// Every request gets a timeout (tokio-modbus has none) and the 3.5-character
/// gap before the next one.
async fn call<T>(f: impl std::future::Future<Output = T>) -> T {
    let r = tokio::time::timeout(Duration::from_secs(2), f).await.expect("reply within 2 s");
    tokio::time::sleep(Duration::from_millis(5)).await;
    r
}

type Server = tokio::task::JoinHandle<Result<ServeReport, (ServeError, ServeReport)>>;

/// `serve` on the master side of a new pty pair. Returns the task, its stop
/// switch, the slave handle (keep it open: dropping it closes the pty) and
/// the slave's path for a client to open.
fn start_server() -> (Server, tokio::sync::oneshot::Sender<()>, tokio_serial::SerialStream, String) {
    let scenario = Scenario::parse(SCENARIO, Path::new("e2e.toml")).unwrap();
    let engine = Engine::new(&scenario).unwrap();
    let (master, slave) = tokio_serial::SerialStream::pair().unwrap();
    let path = slave.name().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        smartpro_sim::serve::serve(master, &scenario, engine, None, async {
            let _ = stopped.await;
        })
        .await
    });
    (server, stop, slave, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_client_reads_the_live_twin_over_a_pty() {
    let (server, stop, slave, path) = start_server();
    // Let the twin run for a moment so the load current is flowing.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let port = tokio_serial::new(&path, 19_200).open_native_async().unwrap();
    let mut ctx = rtu::attach_slave(port, Slave(1));

    let regs = call(ctx.read_holding_registers(0x0100, 5)).await.unwrap().unwrap();
    let voltage_v = f64::from(regs[0]) * 1e-3;
    let current_a = f64::from(((u32::from(regs[1]) << 16) | u32::from(regs[2])) as i32) * 1e-3;
    let soc_pct = f64::from(regs[3]) * 0.01;
    let temp_c = f64::from(regs[4] as i16) * 0.1;
    assert!((12.4..13.6).contains(&voltage_v), "4 LFP cells at 60 % under 20 A: {voltage_v} V");
    assert!((current_a + 20.0).abs() < 0.1, "{current_a} A");
    assert!((59.0..=60.0).contains(&soc_pct), "{soc_pct} %");
    assert!((temp_c - 25.0).abs() < 2.0, "{temp_c} °C");

    // The same values through FC04.
    let input = call(ctx.read_input_registers(0x0000, 3)).await.unwrap().unwrap();
    assert_eq!(input, vec![209, 12, firmware_core::board::FIRMWARE_VERSION]);

    // An address outside the map: exception 02.
    let r = call(ctx.read_holding_registers(0x0050, 1)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataAddress));

    // A capacity of 0.5 Ah is outside 1.0..=6000.0 Ah: exception 03, setting unchanged.
    let r = call(ctx.write_single_register(0x0200, 5)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataValue));
    let cap = call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap();
    assert_eq!(cap, vec![1000]);

    // A valid write lands and reads back.
    call(ctx.write_multiple_registers(0x0200, &[2000])).await.unwrap().unwrap();
    let cap = call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap();
    assert_eq!(cap, vec![2000]);

    let _ = stop.send(());
    let report = server.await.unwrap().expect("served until stopped");
    assert!(report.replies >= 6, "{report:?}");
    assert_eq!(report.counters.crc_errors, 0, "{report:?}");
    drop(slave);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_garbage_and_answers_the_next_request() {
    let (server, stop, slave, path) = start_server();
    let mut port = tokio_serial::new(&path, 19_200).open_native_async().unwrap();
    use tokio::io::AsyncWriteExt;
    port.write_all(&[0x01, 0x03, 0xFF, 0x00, 0x13, 0x37, 0xAA, 0x55, 0x00]).await.unwrap();
    port.write_all(&[0u8; 300]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ctx = rtu::attach_slave(port, Slave(1));
    let id = call(ctx.read_holding_registers(0x0000, 1)).await.unwrap().unwrap();
    assert_eq!(id, vec![209]);
    let _ = stop.send(());
    let report = server.await.unwrap().expect("served until stopped");
    assert!(report.counters.crc_errors + report.counters.overruns >= 1, "{report:?}");
    drop(slave);
}
