//! Fuzzing the board's whole Modbus request path (issue 6): bytes on the serial
//! line → RTU framing → CRC → unit filter → PDU → register map → settings → reply,
//! on the real [`Board`], through its public API only.
//!
//! Properties, after every step:
//! * nothing panics (arithmetic overflow included: tests build with debug assertions);
//! * every reply is a CRC-valid ADU of at most 256 bytes, for this board's unit id,
//!   sent no earlier than t3.5 after the last byte received;
//! * every RW register reads back within its `[min, max]` of [`map::REGISTERS`],
//!   and [`Settings::validate`] holds.
//!
//! Two targets: `arbitrary_line_traffic` mixes garbage, corrupted and valid frames,
//! split anyhow, with arbitrary gaps and polls; `clean_requests_match_the_pdu_path`
//! sends CRC-valid frames (so the fuzzer gets past the CRC into the PDU and register
//! code) one at a time and also checks each reply against a model: none for other
//! units, broadcasts and listen-only mode, the serial-line FC08 answers, and for
//! everything else exactly the response of the transport-independent
//! [`Board::process_pdu`] on a second board fed the same requests.
//!
//! Cases are bounded so this runs in seconds in a debug build; `PROPTEST_CASES=N`
//! runs more.

use firmware_core::map::{self, Access, RegDef};
use firmware_core::modbus::frame::{Frame, emit_frame};
use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::modbus::{MAX_ADU_LEN, MAX_PDU_LEN};
use firmware_core::{Board, Duration, Instant, Settings, Variant};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per target unless `PROPTEST_CASES` says otherwise.
const DEFAULT_CASES: u32 = 256;

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_CASES);
    Config { cases, failure_persistence: None, ..Config::default() }
}

// ---------------------------------------------------------------- the board

struct Rig {
    board: Board,
    variant: Variant,
    unit: u8,
    t3_5: Duration,
    char_time: Duration,
    /// Arrival time of the last byte received.
    last_rx: Option<Instant>,
    tx: [u8; MAX_ADU_LEN],
}

impl Rig {
    fn new(variant: Variant, unit: u8, baud: u32) -> Rig {
        let rtu = RtuConfig { unit_id: unit, baud, ..RtuConfig::default() };
        let board = Board::new(variant, Settings::defaults(variant), 2_090_001, rtu).expect("defaults are valid");
        Rig { board, variant, unit, t3_5: rtu.t3_5(), char_time: rtu.char_time(), last_rx: None, tx: [0; MAX_ADU_LEN] }
    }

    /// `bytes` arrive back to back, the first starting at `start`; returns the
    /// arrival time of the last one.
    fn receive(&mut self, start: Instant, bytes: &[u8]) -> Instant {
        let end = start + Duration(self.char_time.0 * bytes.len() as u64);
        self.board.rtu_receive(end, bytes);
        if !bytes.is_empty() {
            self.last_rx = Some(end);
        }
        end
    }

    /// Poll at `now` until no more replies; check each; return their PDUs.
    fn poll(&mut self, now: Instant) -> Result<Vec<Vec<u8>>, TestCaseError> {
        let mut replies = Vec::new();
        while let Some(n) = self.board.rtu_poll(now, &mut self.tx) {
            prop_assert!(n <= MAX_ADU_LEN, "reply of {} bytes", n);
            let adu = &self.tx[..n];
            let frame = Frame::new_checked(adu);
            prop_assert!(frame.is_ok(), "reply {:02X?}: {:?}", adu, frame.err());
            prop_assert_eq!(adu[0], self.unit, "reply for another unit: {:02X?}", adu);
            if let Some(last) = self.last_rx {
                prop_assert!(now >= last + self.t3_5, "reply before t3.5 of silence");
            }
            replies.push(adu[1..n - 2].to_vec());
            prop_assert!(replies.len() <= 3, "more replies than frames can wait");
        }
        Ok(replies)
    }

    /// Every RW register within its range; the settings pass their own validation.
    fn check_settings(&mut self) -> Result<(), TestCaseError> {
        check_settings(&mut self.board, self.variant)
    }
}

fn check_settings(board: &mut Board, variant: Variant) -> Result<(), TestCaseError> {
    prop_assert!(board.settings().validate(variant).is_ok(), "invalid settings: {:?}", board.settings());
    for def in map::REGISTERS.iter().filter(|r| r.access == Access::RW) {
        let mut words = [0u16; 2];
        let words = &mut words[..usize::from(def.ty.words())];
        prop_assert!(board.read_registers(def.addr, words).is_ok(), "{} unreadable", def.name);
        let raw = def.ty.decode(words);
        prop_assert!((def.min..=def.max).contains(&raw), "{} = {} outside [{}, {}]", def.name, raw, def.min, def.max);
    }
    Ok(())
}

// ---------------------------------------------------------------- requests

fn rw_registers() -> Vec<&'static RegDef> {
    map::REGISTERS.iter().filter(|r| r.access.writable()).collect()
}

/// Addresses near the map's registers (one below to two past each start), and anywhere.
fn addr() -> impl Strategy<Value = u16> {
    let near: Vec<u16> = map::REGISTERS
        .iter()
        .flat_map(|r| [r.addr.wrapping_sub(1), r.addr, r.addr.wrapping_add(1), r.addr.wrapping_add(2)])
        .collect();
    prop_oneof![4 => prop::sample::select(near), 1 => any::<u16>(), 1 => Just(0xFFFF)]
}

/// Register quantities: small, at the limits, anything.
fn quantity() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => 1u16..=8,
        2 => prop::sample::select(vec![0u16, 120, 121, 122, 123, 124, 125, 126, 0x7FFF, 0x8000, 0xFFFF]),
        1 => any::<u16>(),
    ]
}

/// Values for one register: small, at the edges, anything.
fn value() -> impl Strategy<Value = u16> {
    prop_oneof![2 => 0u16..=16, 1 => prop::sample::select(vec![0x7FFF, 0x8000, 0xFFFF]), 4 => any::<u16>()]
}

/// A write of in-range values to consecutive writable registers: (start address, words).
/// Each value is within its register's range, so only the cross-field checks
/// (LVP below its release, ...) can refuse it; many get through.
fn settings_write() -> impl Strategy<Value = (u16, Vec<u16>)> {
    let regs = rw_registers();
    let n = regs.len();
    (0..n, 1usize..=4, prop::collection::vec(any::<u64>(), 4)).prop_map(move |(i, k, seeds)| {
        let mut words = Vec::new();
        let start = regs[i].addr;
        let mut next = start;
        for (def, seed) in regs[i..].iter().take(k).zip(seeds) {
            if def.addr != next {
                break; // a gap: stop at contiguous registers
            }
            let span = (def.max - def.min + 1) as u64;
            let raw = def.min + (seed % span) as i64;
            words.extend_from_slice(&def.ty.encode(raw)[..usize::from(def.ty.words())]);
            next = def.addr + def.ty.words();
        }
        (start, words)
    })
}

/// A read of whole, consecutive registers that exist: (start address, quantity).
fn mapped_range() -> impl Strategy<Value = (u16, u16)> {
    (0..map::REGISTERS.len(), 1usize..=8).prop_map(|(i, k)| {
        let start = map::REGISTERS[i].addr;
        let mut end = start;
        for def in map::REGISTERS[i..].iter().take(k) {
            if def.addr != end {
                break;
            }
            end = def.addr + def.ty.words();
        }
        (start, end - start)
    })
}

fn be(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}

fn fc16(addr: u16, words: &[u16], bad_count: Option<u8>) -> Vec<u8> {
    let mut p = vec![0x10];
    p.extend(be(addr));
    p.extend(be(words.len() as u16));
    p.push(bad_count.unwrap_or((words.len() * 2) as u8));
    p.extend(words.iter().flat_map(|w| be(*w)));
    p
}

fn fc23(read_addr: u16, read_qty: u16, write_addr: u16, words: &[u16], bad_count: Option<u8>) -> Vec<u8> {
    let mut p = vec![0x17];
    p.extend(be(read_addr));
    p.extend(be(read_qty));
    p.extend(be(write_addr));
    p.extend(be(words.len() as u16));
    p.push(bad_count.unwrap_or((words.len() * 2) as u8));
    p.extend(words.iter().flat_map(|w| be(*w)));
    p
}

/// Request PDUs: every supported function code, well-formed and not, plus noise.
fn pdu() -> impl Strategy<Value = Vec<u8>> {
    let bad_count = prop::option::weighted(0.1, any::<u8>());
    let range = prop_oneof![(addr(), quantity()), mapped_range()];
    let read = (prop::sample::select(vec![0x03u8, 0x04]), range).prop_map(|(fc, (a, q))| {
        let mut p = vec![fc];
        p.extend(be(a));
        p.extend(be(q));
        p
    });
    let write_single = (addr(), value()).prop_map(|(a, v)| {
        let mut p = vec![0x06];
        p.extend(be(a));
        p.extend(be(v));
        p
    });
    let write_multiple = (addr(), prop::collection::vec(value(), 0..10), bad_count.clone())
        .prop_map(|(a, words, bad)| fc16(a, &words, bad));
    let long_write = (addr(), 118usize..=125).prop_map(|(a, n)| fc16(a, &vec![1; n], None));
    let settings =
        (settings_write(), any::<bool>(), mapped_range()).prop_map(|((a, words), single, (ra, rq))| {
            match (words.len(), single) {
                (1, true) => {
                    let mut p = vec![0x06];
                    p.extend(be(a));
                    p.extend(be(words[0]));
                    p
                }
                (_, true) => fc16(a, &words, None),
                (_, false) => fc23(ra, rq, a, &words, None),
            }
        });
    let read_write = (addr(), quantity(), addr(), prop::collection::vec(value(), 0..8), bad_count)
        .prop_map(|(ra, rq, wa, words, bad)| fc23(ra, rq, wa, &words, bad));
    let diagnostics = (
        prop_oneof![4 => 0u16..=0x14, 1 => any::<u16>()],
        prop_oneof![
            4 => Just(vec![0u8, 0]),
            1 => Just(vec![0xFF, 0]),
            2 => prop::collection::vec(any::<u8>(), 0..6),
        ],
    )
        .prop_map(|(sub, data)| {
            let mut p = vec![0x08];
            p.extend(be(sub));
            p.extend(data);
            p
        });
    let device_id = (prop_oneof![6 => Just(0x0Eu8), 1 => any::<u8>()], 0u8..=5, any::<u8>(), 0usize..2).prop_map(
        |(mei, code, object, extra)| {
            let mut p = vec![0x2B, mei, code, object];
            p.extend(std::iter::repeat_n(0, extra));
            p
        },
    );
    let noise = prop::collection::vec(any::<u8>(), 1..=MAX_PDU_LEN);
    let structured = prop_oneof![
        3 => read,
        2 => write_single,
        2 => write_multiple,
        1 => long_write,
        4 => settings,
        2 => read_write,
        3 => diagnostics,
        2 => device_id,
        1 => noise,
    ];
    // Now and then cut one short or let one run on.
    (structured, prop::option::weighted(0.05, (any::<bool>(), prop::collection::vec(any::<u8>(), 1..4)))).prop_map(
        |(mut p, mangle)| {
            match mangle {
                Some((true, _)) if p.len() > 1 => {
                    p.pop();
                }
                Some((_, extra)) => p.extend(extra),
                None => {}
            }
            p.truncate(MAX_PDU_LEN);
            p
        },
    )
}

/// An ADU for `unit`.
fn adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut buf = [0u8; MAX_ADU_LEN];
    let n = emit_frame(unit, pdu, &mut buf).expect("PDUs are 1..=253 bytes");
    buf[..n].to_vec()
}

fn variant() -> impl Strategy<Value = Variant> {
    prop::sample::select(vec![Variant::V12, Variant::V24, Variant::V48])
}

// ---------------------------------------------------------------- line traffic

#[derive(Debug, Clone)]
enum Event {
    /// Bytes off the line: garbage.
    Garbage { gap_ns: u64, bytes: Vec<u8> },
    /// A valid frame (optionally with one byte flipped), in chunks of `chunk` bytes
    /// with `chunk_gap_ns` between them.
    Frame { gap_ns: u64, unit_sel: u8, pdu: Vec<u8>, chunk: usize, chunk_gap_ns: u64, flip: Option<(usize, u8)> },
    /// Time passes, then a poll.
    Poll { delay_ns: u64 },
    /// A request over the other transport (Modbus TCP).
    Pdu { pdu: Vec<u8> },
}

fn gap() -> impl Strategy<Value = u64> {
    // Within a frame, around t3.5 at every baud tried (0.75..4 ms), and long pauses.
    prop_oneof![3 => 0u64..100_000, 3 => 500_000u64..5_000_000, 2 => 5_000_000u64..50_000_000]
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => (gap(), prop::collection::vec(any::<u8>(), 1..40)).prop_map(|(gap_ns, bytes)| Event::Garbage { gap_ns, bytes }),
        8 => (gap(), 0u8..10, pdu(), 1usize..300, prop_oneof![3 => Just(0u64), 1 => gap()], prop::option::weighted(0.15, (any::<usize>(), 1u8..=255)))
            .prop_map(|(gap_ns, unit_sel, pdu, chunk, chunk_gap_ns, flip)| Event::Frame { gap_ns, unit_sel, pdu, chunk, chunk_gap_ns, flip }),
        4 => (0u64..8_000_000).prop_map(|delay_ns| Event::Poll { delay_ns }),
        1 => pdu().prop_map(|pdu| Event::Pdu { pdu }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_line_traffic(
        variant in variant(),
        unit in prop::sample::select(vec![1u8, 17, 247]),
        baud in prop::sample::select(vec![9_600u32, 19_200, 115_200]),
        events in prop::collection::vec(event(), 1..40),
    ) {
        let mut rig = Rig::new(variant, unit, baud);
        let mut now = Instant::from_secs(1);
        for ev in events {
            match ev {
                Event::Garbage { gap_ns, bytes } => {
                    now = rig.receive(now + Duration(gap_ns), &bytes);
                }
                Event::Frame { gap_ns, unit_sel, pdu, chunk, chunk_gap_ns, flip } => {
                    let to = match unit_sel { 0 => 0, 1 => unit.wrapping_add(1), _ => unit };
                    let mut frame = adu(to, &pdu);
                    if let Some((at, mask)) = flip {
                        let at = at % frame.len();
                        frame[at] ^= mask;
                    }
                    now += Duration(gap_ns);
                    for part in frame.chunks(chunk) {
                        now = rig.receive(now, part) + Duration(chunk_gap_ns);
                        // The sim polls whenever it likes: never a reply mid-frame.
                        rig.poll(now)?;
                    }
                }
                Event::Poll { delay_ns } => {
                    now += Duration(delay_ns);
                    rig.poll(now)?;
                }
                Event::Pdu { pdu } => {
                    let mut resp = [0u8; MAX_PDU_LEN];
                    let n = rig.board.process_pdu(&pdu, &mut resp);
                    let n = n.expect("a non-empty PDU always gets a response");
                    prop_assert!((2..=MAX_PDU_LEN).contains(&n));
                    prop_assert!(resp[0] == pdu[0] || resp[0] == pdu[0] | 0x80);
                }
            }
            rig.check_settings()?;
        }
        // Whatever is left is answered once the line is quiet, and checked.
        rig.poll(now + Duration::from_millis(100))?;
        rig.check_settings()?;
    }
}

// ---------------------------------------------------------------- clean requests, with a model

/// What the slave should do with a request, by the spec.
#[derive(Debug, PartialEq)]
enum Expect {
    Nothing,
    /// An FC08 answer from the serial line: the normal echo-style response, or this exception.
    Diagnostic(Result<u16, u8>),
    /// The same response as the PDU path.
    SameAsPdu,
}

/// FC08 0x04 with data 00 00.
fn is_force_listen_only(pdu: &[u8]) -> bool {
    pdu == [0x08, 0x00, 0x04, 0x00, 0x00]
}

/// FC08 0x01 with data 00 00 or FF 00.
fn is_restart(pdu: &[u8]) -> bool {
    pdu == [0x08, 0x00, 0x01, 0x00, 0x00] || pdu == [0x08, 0x00, 0x01, 0xFF, 0x00]
}

/// The serial-line FC08 requests: sub-function ≠ 0.
fn serial_diagnostic(pdu: &[u8]) -> Option<Result<u16, u8>> {
    let [0x08, hi, lo, data @ ..] = pdu else {
        return None;
    };
    let sub = u16::from_be_bytes([*hi, *lo]);
    let ok_data = data == [0, 0] || (sub == 0x01 && data == [0xFF, 0]);
    match sub {
        0x00 => None,
        0x01 | 0x04 | 0x0A..=0x12 if ok_data => Some(Ok(sub)),
        0x01 | 0x04 | 0x0A..=0x12 => Some(Err(0x03)),
        _ => Some(Err(0x01)),
    }
}

fn is_write(pdu: &[u8]) -> bool {
    matches!(pdu.first(), Some(0x06 | 0x10 | 0x17))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn clean_requests_match_the_pdu_path(
        variant in variant(),
        unit in prop::sample::select(vec![1u8, 17, 247]),
        baud in prop::sample::select(vec![9_600u32, 19_200, 115_200]),
        requests in prop::collection::vec((prop_oneof![8 => Just(None), 1 => Just(Some(0u8)), 1 => Just(Some(1u8))], pdu(), 1usize..300), 1..30),
    ) {
        let mut rig = Rig::new(variant, unit, baud);
        // The same board behind the transport-independent entry point.
        let mut tcp = Board::new(variant, Settings::defaults(variant), 2_090_001, RtuConfig::default()).unwrap();
        let mut listen_only = false;
        let mut now = Instant::from_secs(1);
        for (unit_sel, pdu, chunk) in requests {
            let to = match unit_sel { None => unit, Some(0) => 0, Some(_) => unit.wrapping_add(1) };
            let expect = if to != unit && to != 0 {
                Expect::Nothing
            } else if listen_only {
                listen_only = !is_restart(&pdu);
                Expect::Nothing
            } else if to == 0 {
                if is_force_listen_only(&pdu) {
                    listen_only = true;
                } else if is_write(&pdu) {
                    let mut resp = [0u8; MAX_PDU_LEN];
                    tcp.process_pdu(&pdu, &mut resp);
                }
                Expect::Nothing
            } else if is_force_listen_only(&pdu) {
                listen_only = true;
                Expect::Nothing
            } else if let Some(d) = serial_diagnostic(&pdu) {
                Expect::Diagnostic(d)
            } else {
                Expect::SameAsPdu
            };

            now += Duration::from_millis(20);
            for part in adu(to, &pdu).chunks(chunk) {
                now = rig.receive(now, part);
            }
            let replies = rig.poll(now + rig.t3_5)?;
            now += rig.t3_5;
            prop_assert!(replies.len() <= 1);
            let reply = replies.into_iter().next();
            match (expect, reply) {
                (Expect::Nothing, None) => {}
                (Expect::Diagnostic(Ok(sub)), Some(r)) => {
                    prop_assert_eq!(&r[..3], &[0x08, (sub >> 8) as u8, sub as u8][..], "{:02X?}", pdu);
                    prop_assert_eq!(r.len(), 5);
                    if sub == 0x01 || sub == 0x0A {
                        prop_assert_eq!(&r[..], &pdu[..]);
                    }
                }
                (Expect::Diagnostic(Err(code)), Some(r)) => prop_assert_eq!(r, vec![0x88, code]),
                (Expect::SameAsPdu, Some(r)) => {
                    let mut resp = [0u8; MAX_PDU_LEN];
                    let n = tcp.process_pdu(&pdu, &mut resp).unwrap();
                    prop_assert_eq!(&r[..], &resp[..n], "request {:02X?}", pdu);
                    if r[0] & 0x80 != 0 {
                        prop_assert!(matches!(r[1], 1..=4 | 6), "exception {:02X?}", r);
                    }
                }
                (expect, reply) => prop_assert!(false, "request {:02X?} to unit {}: expected {:?}, got {:02X?}", pdu, to, expect, reply),
            }
            rig.check_settings()?;
            check_settings(&mut tcp, variant)?;
        }
    }
}
