//! End to end: `serve` on one side of a pty pair, tokio-modbus's RTU client
//! (or raw frames) on the other.

mod serve_common;

use std::time::Duration;

use serve_common::*;
use smartpro_sim::serve::Options;
use tokio::io::AsyncWriteExt;
use tokio_modbus::prelude::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modbus_client_reads_and_writes_the_live_twin_over_a_pty() {
    let server = start(Options::new(vec![1]), false).await;
    // Let the twin run for a moment so the load current is flowing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(1));

    let regs = call(ctx.read_holding_registers(0x0100, 5)).await.unwrap().unwrap();
    let voltage_v = f64::from(regs[0]) * 1e-3;
    let current_a = f64::from(((u32::from(regs[1]) << 16) | u32::from(regs[2])) as i32) * 1e-3;
    let soc_pct = f64::from(regs[3]) * 0.01;
    let temp_c = f64::from(regs[4] as i16) * 0.1;
    assert!((12.4..13.6).contains(&voltage_v), "4 LFP cells at 60 % under 20 A: {voltage_v} V");
    assert!((current_a + 20.0).abs() < 0.1, "{current_a} A");
    assert!((59.0..=60.0).contains(&soc_pct), "{soc_pct} %");
    assert!((temp_c - 25.0).abs() < 2.0, "{temp_c} °C");

    let input = call(ctx.read_input_registers(0x0000, 3)).await.unwrap().unwrap();
    assert_eq!(input, vec![209, 12, firmware_core::board::FIRMWARE_VERSION]);
    // An address outside the map: exception 02; a refused value: 03, setting unchanged.
    let r = call(ctx.read_holding_registers(0x0050, 1)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataAddress));
    let r = call(ctx.write_single_register(0x0200, 5)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataValue));
    assert_eq!(call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap(), vec![1000]);
    // A valid write lands and reads back.
    call(ctx.write_multiple_registers(0x0200, &[2000])).await.unwrap().unwrap();
    assert_eq!(call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap(), vec![2000]);

    let report = server.stop().await;
    let u = report.unit(1).unwrap();
    assert!(u.replies >= 7, "{report}");
    assert_eq!(u.counters.crc_errors, 0, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_units_on_one_bus_are_independent_twins() {
    let server = start(Options::new(vec![1, 2, 3]), false).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(1));
    let mut serials = Vec::new();
    for unit in [1, 2, 3] {
        ctx.set_slave(Slave(unit));
        let r = call(ctx.read_holding_registers(0x0003, 2)).await.unwrap().unwrap();
        serials.push(r);
    }
    assert!(serials[0] != serials[1] && serials[1] != serials[2], "each unit has its own seed: {serials:?}");
    // A write to unit 2 changes unit 2 only.
    ctx.set_slave(Slave(2));
    call(ctx.write_single_register(0x0200, 1500)).await.unwrap().unwrap();
    for (unit, want) in [(1, 1000), (2, 1500), (3, 1000)] {
        ctx.set_slave(Slave(unit));
        assert_eq!(call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap(), vec![want], "unit {unit}");
    }
    // A broadcast write reaches every unit, and nobody answers it.
    drop(ctx);
    let mut port = open(&server.path);
    let reply = transact(&mut port, &adu(0, &[0x06, 0x02, 0x00, 0x0B, 0xB8]), 1, three_frame_times(8)).await;
    assert!(reply.is_empty(), "no reply to a broadcast: {reply:02x?}");
    let mut ctx = rtu::attach_slave(port, Slave(1));
    for unit in [1, 2, 3] {
        ctx.set_slave(Slave(unit));
        assert_eq!(call(ctx.read_holding_registers(0x0200, 1)).await.unwrap().unwrap(), vec![3000], "unit {unit}");
    }
    let report = server.stop().await;
    for unit in [1, 2, 3] {
        let c = report.unit(unit).unwrap().counters;
        assert_eq!(c.no_responses, 1, "unit {unit}: the broadcast: {report}");
        assert!(c.ignored_other_unit >= 4, "unit {unit} heard the others' frames: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_split_in_two_writes_1_ms_apart_is_answered() {
    let server = start(Options::new(vec![1]), false).await;
    let mut port = open(&server.path);
    let req = read_req(1, 0x0000, 3);
    port.write_all(&req[..3]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1)).await;
    let reply = transact(&mut port, &req[3..], 11, Duration::from_secs(2)).await;
    let [v_hi, v_lo] = firmware_core::board::FIRMWARE_VERSION.to_be_bytes();
    assert_eq!(reply, adu(1, &[0x03, 6, 0, 209, 0, 12, v_hi, v_lo]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_unit_and_corrupted_crc_get_no_reply_within_three_frame_times() {
    let server = start(Options::new(vec![1]), false).await;
    let mut port = open(&server.path);
    let quiet = three_frame_times(5 + 2 * 10);
    let r = transact(&mut port, &read_req(7, 0x0100, 10), 1, quiet).await;
    assert!(r.is_empty(), "unit 7 is not served: {r:02x?}");
    let mut bad = read_req(1, 0x0100, 10);
    bad[7] ^= 0x01;
    let r = transact(&mut port, &bad, 1, quiet).await;
    assert!(r.is_empty(), "bad CRC: {r:02x?}");
    // The slave is not confused: the next good request is answered.
    let r = transact(&mut port, &read_req(1, 0x0100, 10), 25, Duration::from_secs(2)).await;
    assert!(r.len() == 25 && crc_ok(&r), "{r:02x?}");
    let report = server.stop().await;
    let c = report.unit(1).unwrap().counters;
    assert_eq!((c.crc_errors, c.ignored_other_unit), (1, 1), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_survives_garbage_and_answers_the_next_request() {
    let server = start(Options::new(vec![1]), false).await;
    let mut port = open(&server.path);
    port.write_all(&[0x01, 0x03, 0xFF, 0x00, 0x13, 0x37, 0xAA, 0x55, 0x00]).await.unwrap();
    port.write_all(&[0u8; 300]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut ctx = rtu::attach_slave(port, Slave(1));
    assert_eq!(call(ctx.read_holding_registers(0x0000, 1)).await.unwrap().unwrap(), vec![209]);
    let report = server.stop().await;
    let c = report.unit(1).unwrap().counters;
    assert!(c.crc_errors + c.overruns >= 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_closes_and_reopens_the_pty_is_served_again() {
    let server = start(Options::new(vec![1]), false).await;
    for round in 0..3 {
        let mut ctx = rtu::attach_slave(open(&server.path), Slave(1));
        let r = call(ctx.read_holding_registers(0x0000, 1)).await.unwrap().unwrap();
        assert_eq!(r, vec![209], "round {round}");
        drop(ctx);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = server.stop().await;
    assert_eq!(report.unit(1).unwrap().replies, 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_timing_paces_replies_at_the_baud() {
    let mut opts = Options::new(vec![1]);
    opts.line_timing = true;
    let server = start(opts, false).await;
    let mut port = open(&server.path);
    let t0 = std::time::Instant::now();
    let r = transact(&mut port, &read_req(1, 0x0100, 10), 25, Duration::from_secs(2)).await;
    let took = t0.elapsed() - Duration::from_millis(5);
    assert!(r.len() == 25 && crc_ok(&r), "{r:02x?}");
    // 8 request bytes + t3.5 + 25 reply bytes at 19200 8E1 = 20.9 ms.
    let line = CHAR * 33 + T35;
    assert!(took >= line, "{took:?} < {line:?}");
    assert!(took < line + Duration::from_millis(40), "{took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speed_runs_simulated_time_faster_and_the_frame_log_decodes_the_traffic() {
    let dir = std::env::temp_dir().join(format!("serve-pty-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("frames.log");
    let mut opts = Options::new(vec![1, 2]);
    opts.speed = 20.0;
    opts.log_frames = Some(log.clone());
    let server = start(opts, false).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(2));
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Uptime (s) is simulated time: about 20 × 0.6 s.
    let up = call(ctx.read_holding_registers(0x0109, 2)).await.unwrap().unwrap();
    let up_s = (u32::from(up[0]) << 16) | u32::from(up[1]);
    assert!((8..=16).contains(&up_s), "uptime {up_s} s after 0.6 s at 20x");
    let r = call(ctx.read_holding_registers(0x0050, 1)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::IllegalDataAddress));
    let report = server.stop().await;
    let u = report.unit(1).unwrap();
    assert!(u.simulated_s > 10.0 * report.wall_s, "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("->   2  03 read holding 0x0109 (265) x2"), "{text}");
    assert!(text.contains("<-   2  03 2 regs:"), "{text}");
    assert!(text.contains("<-   2  03 EXCEPTION 02 illegal data address"), "{text}");
    assert_eq!(report.frame_log, Some(Ok(text.lines().count() as u64 - 1)));
    let _ = std::fs::remove_dir_all(&dir);
}
