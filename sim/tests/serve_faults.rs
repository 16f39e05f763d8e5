//! Bus fault injection over a pty: each mode does what it says, on the unit it
//! is configured for only, and a seed reproduces the same faults.

mod serve_common;

use std::time::{Duration, Instant};

use serve_common::*;
use smartpro_sim::serve::Options;
use smartpro_sim::serve::faults::{FaultsConfig, UnitFaults, Window};
use tokio_modbus::prelude::*;

/// Units 1 and 2; the faults on unit 2 only.
fn opts(f: UnitFaults) -> Options {
    let mut o = Options::new(vec![1, 2]);
    o.faults = FaultsConfig { seed: Some(11), units: vec![UnitFaults { id: Some(2), ..f }] };
    o
}

const READ_REPLY: usize = 5 + 2 * 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_delay_is_fixed_plus_jitter() {
    let server =
        start(opts(UnitFaults { delay_ms: 40.0, delay_jitter_ms: 20.0, ..UnitFaults::default() }), false).await;
    let mut port = open(&server.path);
    for _ in 0..3 {
        let t0 = Instant::now();
        let r = transact(&mut port, &read_req(2, 0x0100, 10), READ_REPLY, Duration::from_secs(2)).await;
        let took = t0.elapsed();
        assert!(r.len() == READ_REPLY && crc_ok(&r), "{r:02x?}");
        assert!(took >= Duration::from_millis(42), "{took:?}");
        assert!(took < Duration::from_millis(120), "{took:?}");
    }
    let t0 = Instant::now();
    let r = transact(&mut port, &read_req(1, 0x0100, 10), READ_REPLY, Duration::from_secs(2)).await;
    assert!(r.len() == READ_REPLY && t0.elapsed() < Duration::from_millis(40), "unit 1 has no delay");
    let report = server.stop().await;
    assert_eq!(report.unit(2).unwrap().faults.delayed, 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_responses_were_executed_but_never_answered() {
    let server = start(opts(UnitFaults { drop_probability: 1.0, ..UnitFaults::default() }), false).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(2));
    let quiet = three_frame_times(8);
    assert!(try_call(quiet, ctx.write_single_register(0x0200, 1234)).await.is_none(), "no reply");
    drop(ctx);
    let report = server.stop().await;
    let u = report.unit(2).unwrap();
    assert_eq!((u.faults.dropped, u.replies, u.counters.slave_messages), (1, 0, 1), "executed: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_crc_replies_arrive_with_a_bad_crc() {
    let server = start(opts(UnitFaults { crc_error_probability: 1.0, ..UnitFaults::default() }), false).await;
    let mut port = open(&server.path);
    let r = transact(&mut port, &read_req(2, 0x0000, 3), 11, Duration::from_secs(2)).await;
    assert_eq!(r.len(), 11, "{r:02x?}");
    assert!(!crc_ok(&r), "the CRC must be wrong: {r:02x?}");
    assert_eq!(&r[..3], &[2, 3, 6], "only the CRC is touched");
    let r = transact(&mut port, &read_req(1, 0x0000, 3), 11, Duration::from_secs(2)).await;
    assert!(crc_ok(&r), "unit 1 is clean");
    // tokio-modbus sees no valid reply at all.
    let mut ctx = rtu::attach_slave(port, Slave(2));
    assert!(try_call(three_frame_times(11), ctx.read_holding_registers(0, 3)).await.is_none());
    let report = server.stop().await;
    assert_eq!(report.unit(2).unwrap().faults.crc_corrupted, 2, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_from_a_wrong_unit_id_have_a_valid_crc() {
    let f = UnitFaults { wrong_unit_probability: 1.0, wrong_unit_id: Some(9), ..UnitFaults::default() };
    let server = start(opts(f), false).await;
    let mut port = open(&server.path);
    let r = transact(&mut port, &read_req(2, 0x0000, 3), 11, Duration::from_secs(2)).await;
    assert!(crc_ok(&r), "{r:02x?}");
    assert_eq!(r[0], 9, "{r:02x?}");
    let report = server.stop().await;
    assert_eq!(report.unit(2).unwrap().faults.wrong_unit, 1, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_exceptions_replace_execution() {
    let f = UnitFaults { exception_probability: 1.0, exception_code: 6, ..UnitFaults::default() };
    let server = start(opts(f), false).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(2));
    let r = call(ctx.write_single_register(0x0200, 1234)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::ServerDeviceBusy));
    let r = call(ctx.read_holding_registers(0x0000, 1)).await.unwrap();
    assert_eq!(r, Err(ExceptionCode::ServerDeviceBusy));
    ctx.set_slave(Slave(1));
    assert_eq!(call(ctx.read_holding_registers(0x0000, 1)).await.unwrap().unwrap(), vec![209]);
    let report = server.stop().await;
    let u = report.unit(2).unwrap();
    assert_eq!(u.faults.exceptions, 2, "{report}");
    assert_eq!(u.counters.slave_messages, 0, "the board never saw them: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_unit_hears_nothing_until_its_window_ends() {
    let f = UnitFaults { offline: vec![Window { from_s: 0.0, to_s: 0.8 }], ..UnitFaults::default() };
    let server = start(opts(f), false).await;
    let mut port = open(&server.path);
    let r = transact(&mut port, &read_req(2, 0x0000, 1), 7, three_frame_times(7)).await;
    assert!(r.is_empty(), "offline: {r:02x?}");
    let r = transact(&mut port, &read_req(1, 0x0000, 1), 7, Duration::from_secs(2)).await;
    assert!(crc_ok(&r), "unit 1 is online");
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = transact(&mut port, &read_req(2, 0x0000, 1), 7, Duration::from_secs(2)).await;
    assert!(r.len() == 7 && crc_ok(&r), "back after the window: {r:02x?}");
    let report = server.stop().await;
    let u = report.unit(2).unwrap();
    assert_eq!((u.faults.offline, u.replies), (1, 1), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbled_bytes_replace_reply_bytes_at_the_given_rate() {
    let server = start(opts(UnitFaults { garble_byte_rate: 1.0, ..UnitFaults::default() }), false).await;
    let mut port = open(&server.path);
    let r = transact(&mut port, &read_req(2, 0x0000, 1), 7, Duration::from_secs(2)).await;
    assert_eq!(r.len(), 7, "{r:02x?}");
    assert!(r[0] != 2 && r[1] != 3 && r[2] != 2, "every byte changed: {r:02x?}");
    let report = server.stop().await;
    let f = report.unit(2).unwrap().faults;
    assert_eq!((f.garbled_replies, f.garbled_bytes), (1, 7), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_seed_reproduces_the_same_faults() {
    async fn pattern(seed: u64) -> Vec<bool> {
        let mut o = opts(UnitFaults { drop_probability: 0.5, ..UnitFaults::default() });
        o.fault_seed = Some(seed);
        let server = start(o, false).await;
        let mut port = open(&server.path);
        let mut answered = Vec::new();
        for _ in 0..16 {
            let r = transact(&mut port, &read_req(2, 0x0000, 1), 7, three_frame_times(7)).await;
            answered.push(!r.is_empty());
        }
        server.stop().await;
        answered
    }
    let (a, b, c) = (pattern(5).await, pattern(5).await, pattern(6).await);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x), "{a:?}");
}
