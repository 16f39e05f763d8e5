//! Bus fault injection over a pty: each mode does what it says, on the unit it
//! is configured for only, and a seed reproduces the same faults.

use crate::serve_common;

use std::time::{Duration, Instant};

use serve_common::*;
use smartpro_sim::serve::Options;
use smartpro_sim::serve::faults::{FAULT_COUNTER_SUB_FUNCTIONS, FaultsConfig, UnitFaults, Window};
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
            // A wait far beyond the reply time, so a loaded machine's late reply is not read as a
            // dropped one (and then mistaken for the next request's).
            let r = transact(&mut port, &read_req(2, 0x0000, 1), 7, Duration::from_millis(250)).await;
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

/// Reads one fault counter (FC08 sub-function `sub`) with tokio-modbus, as a test tool would.
async fn fault_counter(ctx: &mut tokio_modbus::client::Context, sub: u16) -> u16 {
    let [s_hi, s_lo] = sub.to_be_bytes();
    let request = Request::Custom(0x08, std::borrow::Cow::Owned(vec![s_hi, s_lo, 0, 0]));
    match call(ctx.call(request)).await {
        Ok(Ok(Response::Custom(0x08, data))) => {
            assert_eq!(&data[..2], &[s_hi, s_lo], "the sub-function is echoed");
            u16::from_be_bytes([data[2], data[3]])
        }
        other => panic!("sub-function {sub:#06x}: {other:?}"),
    }
}

/// Issue 6: "counters of what was injected are reported at exit and readable via
/// the diagnostics function". Every fault mode at once on unit 2, seeded; the
/// counters read over the bus (through those same faults) equal the exit report,
/// and the reads never reached a board.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_6_fault_counters_read_over_the_bus_equal_the_exit_report() {
    const REQUESTS: u16 = 60;
    let f = UnitFaults {
        delay_ms: 1.0,
        delay_jitter_ms: 2.0,
        drop_probability: 0.15,
        crc_error_probability: 0.15,
        wrong_unit_probability: 0.15,
        exception_probability: 0.15,
        garble_byte_rate: 0.02,
        offline: vec![Window { from_s: 0.0, to_s: 0.3 }],
        ..UnitFaults::default()
    };
    let server = start(opts(f), false).await;
    let mut port = open(&server.path);
    // The first requests fall in the offline window; most of the rest meet some fault.
    for _ in 0..REQUESTS {
        transact(&mut port, &read_req(2, 0x0100, 10), READ_REPLY, Duration::from_millis(40)).await;
    }
    let mut ctx = rtu::attach_slave(port, Slave(2));
    let mut read = Vec::new();
    for (sub, _) in FAULT_COUNTER_SUB_FUNCTIONS {
        read.push((sub, fault_counter(&mut ctx, sub).await));
    }
    drop(ctx);
    let report = server.stop().await;
    let u = report.unit(2).unwrap();
    for (sub, value) in read {
        let at_exit = u.faults.by_sub_function(sub).unwrap();
        assert_eq!(u64::from(value), at_exit, "sub-function {sub:#06x}: {report}");
        assert!(value > 0, "sub-function {sub:#06x}: every mode was injected: {report}");
    }
    assert_eq!(u.fault_counter_reads, FAULT_COUNTER_SUB_FUNCTIONS.len() as u64, "{report}");
    // No board saw the reads: every frame on the line reached unit 1's board (never offline, no
    // faults), which counted it as good, bad or overrun, except the fault-counter reads. (Not
    // "60 good frames": a client starved of CPU may have two requests read as one.)
    let c1 = report.unit(1).unwrap().counters;
    let boards_saw = u64::from(c1.bus_messages + c1.crc_errors + c1.overruns);
    assert_eq!(report.frames, boards_saw + u.fault_counter_reads, "{report}");
}

/// The counters are answered even while the unit is offline, and restart when
/// the board clears its own (FC08 0x0A, unicast or broadcast); the exit report
/// keeps the counts since start, as it does for the board's counters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_counters_restart_with_the_boards_counters_and_ignore_offline_windows() {
    let f = UnitFaults { delay_ms: 1.0, offline: vec![Window { from_s: 0.0, to_s: 0.4 }], ..UnitFaults::default() };
    let server = start(opts(f), false).await;
    let mut ctx = rtu::attach_slave(open(&server.path), Slave(2));
    assert!(try_call(three_frame_times(7), ctx.read_holding_registers(0, 1)).await.is_none(), "offline");
    assert_eq!(fault_counter(&mut ctx, 0x0105).await, 1, "answered while offline");
    tokio::time::sleep(Duration::from_millis(450)).await;
    for _ in 0..3 {
        assert_eq!(call(ctx.read_holding_registers(0, 1)).await.unwrap().unwrap(), vec![209]);
    }
    assert_eq!(fault_counter(&mut ctx, 0x0101).await, 3, "3 replies delayed");
    // Clear Counters: the board's echo is itself delayed, after the clear.
    let clear = || Request::Custom(0x08, std::borrow::Cow::Borrowed(&[0x00, 0x0A, 0x00, 0x00]));
    assert!(matches!(call(ctx.call(clear())).await.unwrap(), Ok(Response::Custom(0x08, _))));
    assert_eq!((fault_counter(&mut ctx, 0x0101).await, fault_counter(&mut ctx, 0x0105).await), (1, 0));
    // The board's own Bus Message Count (0x0B) since its clear: the 0x0B request alone.
    let bus_messages = Request::Custom(0x08, std::borrow::Cow::Borrowed(&[0x00, 0x0B, 0x00, 0x00]));
    match call(ctx.call(bus_messages)).await.unwrap() {
        Ok(Response::Custom(0x08, d)) => {
            assert_eq!(&d[..], &[0x00, 0x0B, 0x00, 0x01], "the fault-counter reads are not on it")
        }
        other => panic!("{other:?}"),
    }
    // A broadcast clear: no reply, every board clears, and so does every injector.
    ctx.set_slave(Slave(0));
    assert!(try_call(three_frame_times(8), ctx.call(clear())).await.is_none(), "a broadcast gets no reply");
    ctx.set_slave(Slave(2));
    assert_eq!(fault_counter(&mut ctx, 0x0101).await, 0);
    drop(ctx);
    let report = server.stop().await;
    let u = report.unit(2).unwrap();
    assert_eq!((u.faults.delayed, u.faults.offline), (5, 1), "since start: {report}");
    assert_eq!(u.fault_counter_reads, 5, "{report}");
}
