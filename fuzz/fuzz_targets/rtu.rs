//! The RTU byte stream into firmware-core's framer and slave, with arrival
//! times, against a full `Board` (docs/reliability.md, "rtu").
//!
//! Input: a line set-up byte (variant, unit, Paced/Burst arrival, baud), then
//! chunks `gap_us: u16, len: u8, bytes[len % 64]`: the bytes arrive `gap_us`
//! after the previous chunk (so framing by silence is fuzzed as well as by
//! length), and the board is polled whenever it asks to be.
//!
//! Oracle: every reply is a CRC-valid frame from the board's own unit, its
//! function code (or its exception form) is that of a CRC-valid frame for this
//! unit in the bytes sent so far, and its length is the one its function
//! gives; no more replies than such frames; never a reply to a broadcast or
//! another unit's request.
#![no_main]

use firmware_core::modbus::crc::crc16;
use firmware_core::modbus::rtu::{Arrival, RtuConfig};
use firmware_core::modbus::{MAX_ADU_LEN, pdu};
use firmware_core::{Duration, Inputs, Instant};
use libfuzzer_sys::fuzz_target;
use smartpro_fuzz::{Bytes, board, variant};

/// Bauds a board is set to (datasheet: 9600 to 115200).
const BAUDS: [u32; 4] = [9_600, 19_200, 38_400, 115_200];

/// Whether a CRC-valid frame (4..=256 bytes) starts at `sent[i]`: the CRC run
/// byte by byte, checked at each possible end (a frame with its CRC leaves 0).
fn frame_at(sent: &[u8], i: usize) -> bool {
    let mut crc: u16 = 0xFFFF;
    for (k, &b) in sent[i..sent.len().min(i + MAX_ADU_LEN)].iter().enumerate() {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
        if k >= 3 && crc == 0 {
            return true;
        }
    }
    false
}

/// Whether `sent` holds a CRC-valid frame for `unit` with function `fc`.
fn request_for(sent: &[u8], unit: u8, fc: u8) -> bool {
    (0..sent.len()).any(|i| sent[i] == unit && sent.get(i + 1) == Some(&fc) && frame_at(sent, i))
}

/// Checks one reply; panics (a finding) with what is wrong.
fn check_reply(reply: &[u8], unit: u8, sent: &[u8]) {
    assert!(reply.len() >= 5, "a reply of {} bytes: {reply:02X?}", reply.len());
    assert_eq!(crc16(reply), 0, "a reply with a bad CRC: {reply:02X?}");
    assert_eq!(reply[0], unit, "a reply from unit {} on a board of unit {unit}: {reply:02X?}", reply[0]);
    let fc = reply[1] & !pdu::EXCEPTION_FLAG;
    // The request's function code, or its exception form (a request whose code has the
    // exception bit set already, e.g. 0xEC, is answered 0xEC 01: illegal function).
    assert!(
        request_for(sent, unit, fc) || request_for(sent, unit, reply[1]),
        "a reply of function {:#04X} that no request for unit {unit} asked for",
        reply[1]
    );
    let len = reply.len();
    if reply[1] & pdu::EXCEPTION_FLAG != 0 {
        assert_eq!(len, 5, "an exception reply of {len} bytes");
        assert!((1..=0x0B).contains(&reply[2]), "exception code {:#04X}", reply[2]);
        return;
    }
    match fc {
        pdu::READ_HOLDING_REGISTERS | pdu::READ_INPUT_REGISTERS | pdu::READ_WRITE_MULTIPLE_REGISTERS => {
            let n = usize::from(reply[2]);
            assert!(n % 2 == 0 && (2..=250).contains(&n), "byte count {n}");
            assert_eq!(len, 5 + n, "a register reply of {len} bytes with byte count {n}");
        }
        pdu::WRITE_SINGLE_REGISTER | pdu::WRITE_MULTIPLE_REGISTERS => {
            assert_eq!(len, 8, "a write reply of {len} bytes")
        }
        0x08 => assert!(len >= 6, "a diagnostics reply of {len} bytes"),
        0x2B => assert!(len >= 10, "a device-identification reply of {len} bytes"),
        _ => panic!("a normal reply to function {fc:#04X}, which the board does not implement"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let setup = input.u8();
    let unit = 1 + input.u8() % 247;
    let config = RtuConfig {
        unit_id: unit,
        baud: BAUDS[usize::from(setup >> 2) % BAUDS.len()],
        arrival: if setup & 1 == 0 { Arrival::Paced } else { Arrival::Burst },
        ..RtuConfig::default()
    };
    let mut board = board(variant(setup >> 4), config);
    let mut now = Instant::ZERO;
    let mut sent: Vec<u8> = Vec::new();
    let mut replies = 0usize;
    // A battery at rest, 13 V: the board measures between requests as it does on the bench.
    let inputs = Inputs::codes(0, 5_800_000, 4_194_304);
    board.poll(now, &inputs);
    let serve = |board: &mut firmware_core::Board, now: Instant, sent: &[u8], replies: &mut usize| {
        let mut tx_local = [0u8; MAX_ADU_LEN];
        // poll returns at the first reply: call it while it is due (at most a few rounds).
        for _ in 0..8 {
            match board.rtu().poll_at() {
                Some(t) if t <= now => {}
                _ => break,
            }
            let Some(n) = board.rtu_poll(now, &mut tx_local) else { continue };
            assert!(n <= MAX_ADU_LEN);
            check_reply(&tx_local[..n], unit, sent);
            *replies += 1;
        }
    };
    while !input.is_empty() {
        let gap = Duration::from_micros(u64::from(input.u16()));
        let len = usize::from(input.u8() % 64);
        let bytes = input.take(len);
        // Time passes: whatever became due during the silence is served first.
        let before = now;
        now += gap;
        if let Some(t) = board.rtu().poll_at() {
            if t > before && t <= now {
                serve(&mut board, t, &sent, &mut replies);
            }
        }
        sent.extend_from_slice(bytes);
        board.rtu_receive(now, bytes);
        serve(&mut board, now, &sent, &mut replies);
        board.poll(now, &inputs);
    }
    // The line goes quiet: the last frame ends by silence.
    now += Duration::from_millis(100);
    serve(&mut board, now, &sent, &mut replies);
    let frames = (0..sent.len()).filter(|&i| sent[i] == unit && frame_at(&sent, i)).count();
    assert!(replies <= frames, "{replies} replies to at most {frames} frames for unit {unit}");
});
