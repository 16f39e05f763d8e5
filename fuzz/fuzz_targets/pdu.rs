//! The PDU path (every function code, sub-function and quantity) against a
//! full `Board`, with an oracle (docs/reliability.md, "pdu").
//!
//! Input: a variant byte, then operations: a raw PDU, or FC03/04/06/16/23/08/43
//! built from fuzzed fields with addresses drawn from the register map (so the
//! fuzzer reaches the map's edges at once), or an ADC sample (the board
//! measures and protects between requests, as on the bench).
//!
//! Oracle, from `firmware_core::map` alone:
//! * every request gets a response whose function code is the request's, or
//!   its exception form with a defined exception code;
//! * a read touching an address outside the map is answered with exception
//!   02; a read that succeeds returns what a register-by-register read of the
//!   same addresses returns (no time passes between the two);
//! * a write touching an address outside the map is answered with exception
//!   02, and a write answered with any exception changes nothing (every
//!   register and the settings as before: writes are all or nothing);
//! * after an accepted write, each read-write register it covered reads back
//!   the words written, and each command register reads 0.
#![no_main]

use firmware_core::map::{self, Access, REGISTERS};
use firmware_core::modbus::{MAX_PDU_LEN, pdu};
use firmware_core::{Board, Inputs, Instant, Settings};
use libfuzzer_sys::fuzz_target;
use smartpro_fuzz::{Bytes, board, variant};

const EXCEPTION_ILLEGAL_ADDRESS: u8 = 0x02;

/// Every register's words, as a master reading them one by one sees them.
fn snapshot(board: &mut Board) -> (Vec<u16>, Settings) {
    let mut words = Vec::with_capacity(2 * REGISTERS.len());
    for r in REGISTERS {
        let mut w = [0u16; 2];
        let n = usize::from(r.ty.words());
        if let Err(e) = board.read_registers(r.addr, &mut w[..n]) {
            panic!("reading {} at {:#06X} alone: {e:?}", r.name, r.addr);
        }
        words.extend_from_slice(&w[..n]);
    }
    (words, *board.settings())
}

fn mapped(addr: u32) -> bool {
    u16::try_from(addr).ok().and_then(map::find).is_some()
}

/// An address: one of the map's registers, a word around it, or any.
fn address(input: &mut Bytes<'_>) -> u16 {
    let pick = input.u8();
    if pick >= 0xF0 {
        return input.u16();
    }
    let r = &REGISTERS[usize::from(pick) % REGISTERS.len()];
    let delta = i32::from(input.u8() % 5) - 2;
    (i32::from(r.addr) + delta).clamp(0, 0xFFFF) as u16
}

fn words_be(input: &mut Bytes<'_>, n: usize) -> Vec<u16> {
    (0..n).map(|_| input.u16()).collect()
}

fn push_words(pdu: &mut Vec<u8>, words: &[u16]) {
    for w in words {
        pdu.extend_from_slice(&w.to_be_bytes());
    }
}

/// The next request PDU, or `None` for an ADC sample (taken here).
fn request(input: &mut Bytes<'_>, board: &mut Board, now: &mut Instant) -> Option<Vec<u8>> {
    let op = input.u8();
    let mut p = Vec::new();
    match op % 8 {
        0 => {
            let n = usize::from(input.u8());
            p.extend_from_slice(input.take(n));
        }
        1 | 2 => {
            p.push(if op % 8 == 1 { pdu::READ_HOLDING_REGISTERS } else { pdu::READ_INPUT_REGISTERS });
            p.extend_from_slice(&address(input).to_be_bytes());
            p.extend_from_slice(&u16::from(input.u8()).to_be_bytes());
        }
        3 => {
            p.push(pdu::WRITE_SINGLE_REGISTER);
            p.extend_from_slice(&address(input).to_be_bytes());
            p.extend_from_slice(&input.u16().to_be_bytes());
        }
        4 => {
            let n = usize::from(input.u8() % 130);
            p.push(pdu::WRITE_MULTIPLE_REGISTERS);
            p.extend_from_slice(&address(input).to_be_bytes());
            p.extend_from_slice(&(n as u16).to_be_bytes());
            p.push((2 * n) as u8);
            let w = words_be(input, n);
            push_words(&mut p, &w);
        }
        5 => {
            let n = usize::from(input.u8() % 125);
            p.push(pdu::READ_WRITE_MULTIPLE_REGISTERS);
            p.extend_from_slice(&address(input).to_be_bytes());
            p.extend_from_slice(&u16::from(input.u8()).to_be_bytes());
            p.extend_from_slice(&address(input).to_be_bytes());
            p.extend_from_slice(&(n as u16).to_be_bytes());
            p.push((2 * n) as u8);
            let w = words_be(input, n);
            push_words(&mut p, &w);
        }
        6 => {
            p.push(if input.u8() & 1 == 0 { 0x08 } else { 0x2B });
            let n = usize::from(input.u8() % 8);
            p.extend_from_slice(input.take(n));
        }
        _ => {
            // An ADC conversion 10 ms to 2.5 s after the last: any codes.
            *now = Instant(now.0 + 10_000_000 * (1 + u64::from(input.u8())));
            let codes = (input.u16() as i16, input.u16(), input.u16());
            let inputs = Inputs {
                sc_latched: codes.1 & 1 == 1,
                lvp_input_ok: codes.2 & 1 == 0,
                ..Inputs::codes(i32::from(codes.0) * 64, i32::from(codes.1) << 7, i32::from(codes.2) << 7)
            };
            board.poll(*now, &inputs);
            return None;
        }
    }
    Some(p)
}

/// The words a read of `count` from `addr` returns, register by register.
fn read_alone(board: &mut Board, addr: u16, count: usize) -> Vec<u16> {
    let mut out = vec![0u16; count];
    for (i, w) in out.iter_mut().enumerate() {
        let a = addr + i as u16;
        let r = map::find(a).unwrap();
        let mut words = [0u16; 2];
        let n = usize::from(r.ty.words());
        board.read_registers(r.addr, &mut words[..n]).unwrap();
        *w = words[usize::from(a - r.addr)];
    }
    out
}

fn be_words(bytes: &[u8]) -> Vec<u16> {
    bytes.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let mut board = board(variant(input.u8()), Default::default());
    let mut now = Instant::ZERO;
    board.poll(now, &Inputs::codes(0, 5_800_000, 4_194_304));
    let mut response = [0u8; MAX_PDU_LEN];
    // The state before the next request, when known (snapshots cost most of a run: they are
    // taken before requests that may write, and after those answered with an exception).
    let mut state: Option<(Vec<u16>, Settings)> = None;
    while !input.is_empty() {
        let Some(req) = request(&mut input, &mut board, &mut now) else {
            state = None;
            continue;
        };
        let may_write = !matches!(req.first(), Some(&(pdu::READ_HOLDING_REGISTERS | pdu::READ_INPUT_REGISTERS)));
        let before = if may_write { Some(state.take().unwrap_or_else(|| snapshot(&mut board))) } else { state.take() };
        let response_len = board.process_pdu(&req, &mut response);
        let Some(n) = response_len else {
            assert!(req.is_empty(), "no response to {req:02X?}");
            let after = snapshot(&mut board);
            assert!(before.is_none_or(|b| b == after), "a request with no response changed state: {req:02X?}");
            state = Some(after);
            continue;
        };
        let resp = &response[..n];
        let fc = req[0];
        assert!(
            !resp.is_empty() && resp[0] & !pdu::EXCEPTION_FLAG == fc & !pdu::EXCEPTION_FLAG,
            "{req:02X?} -> {resp:02X?}"
        );
        let exception = (resp[0] & pdu::EXCEPTION_FLAG != 0).then(|| {
            assert_eq!(resp.len(), 2, "an exception response of {} bytes", resp.len());
            assert!((1..=0x0B).contains(&resp[1]), "exception code {:#04X}", resp[1]);
            resp[1]
        });
        let field = |i: usize| u32::from(u16::from_be_bytes([req[i], req[i + 1]]));
        // The address ranges a well-formed request touches: (read, write).
        let (read, write): (Option<(u32, u32)>, Option<(u32, u32, Vec<u16>)>) = match (fc, req.len()) {
            (pdu::READ_HOLDING_REGISTERS | pdu::READ_INPUT_REGISTERS, 5) => (Some((field(1), field(3))), None),
            (pdu::WRITE_SINGLE_REGISTER, 5) => (None, Some((field(1), 1, be_words(&req[3..5])))),
            (pdu::WRITE_MULTIPLE_REGISTERS, l)
                if l >= 6 && l == 6 + usize::from(req[5]) && req[5] as u32 == 2 * field(3) =>
            {
                (None, Some((field(1), field(3), be_words(&req[6..]))))
            }
            (pdu::READ_WRITE_MULTIPLE_REGISTERS, l)
                if l >= 10 && l == 10 + usize::from(req[9]) && req[9] as u32 == 2 * field(7) =>
            {
                (Some((field(1), field(3))), Some((field(5), field(7), be_words(&req[10..]))))
            }
            _ => (None, None),
        };
        let quantity_ok = |q: u32, max: u16| (1..=u32::from(max)).contains(&q);
        // Quantities are checked before addresses (exception 03 first, *Modbus Application Protocol* §6).
        let read_quantity_ok = read.is_none_or(|(_, q)| quantity_ok(q, pdu::MAX_READ_QUANTITY));
        if let Some((addr, qty, _)) = &write {
            let max = if fc == pdu::READ_WRITE_MULTIPLE_REGISTERS {
                pdu::MAX_READ_WRITE_WRITE_QUANTITY
            } else {
                pdu::MAX_WRITE_QUANTITY
            };
            if read_quantity_ok && quantity_ok(*qty, max) && (*addr..addr + qty).any(|a| !mapped(a)) {
                assert_eq!(
                    exception,
                    Some(EXCEPTION_ILLEGAL_ADDRESS),
                    "a write outside the map: {req:02X?} -> {resp:02X?}"
                );
            }
        }
        if let Some((addr, qty)) = read {
            if quantity_ok(qty, pdu::MAX_READ_QUANTITY) && (addr..addr + qty).any(|a| !mapped(a)) && write.is_none() {
                assert_eq!(
                    exception,
                    Some(EXCEPTION_ILLEGAL_ADDRESS),
                    "a read outside the map: {req:02X?} -> {resp:02X?}"
                );
            }
        }
        if exception.is_some() {
            if let Some(before) = before {
                let after = snapshot(&mut board);
                assert!(
                    before == after,
                    "a request answered with an exception changed state: {req:02X?} -> {resp:02X?}"
                );
                state = Some(after);
            }
            continue;
        }
        if !may_write {
            state = before; // a read changes nothing the snapshot holds (no time passes)
        }
        if let Some((addr, _, words)) = &write {
            // Read back what the write covered, register by register.
            let mut i = 0usize;
            while i < words.len() {
                let a = *addr as u16 + i as u16;
                let r = map::find(a).unwrap_or_else(|| panic!("an accepted write at unmapped {a:#06X}: {req:02X?}"));
                assert_eq!(r.addr, a, "an accepted write into the middle of {}: {req:02X?}", r.name);
                let n = usize::from(r.ty.words());
                let got = read_alone(&mut board, a, n);
                match r.access {
                    Access::RW => assert_eq!(got, words[i..i + n], "{} after a write: {req:02X?}", r.name),
                    Access::W => assert!(got.iter().all(|&w| w == 0), "command {} reads {got:?}", r.name),
                    Access::R => panic!("an accepted write to read-only {}: {req:02X?}", r.name),
                }
                i += n;
            }
        }
        if let Some((addr, qty)) = read {
            let n = qty as usize;
            assert_eq!(resp.len(), 2 + 2 * n, "a read of {n} answered with {} bytes", resp.len());
            assert_eq!(usize::from(resp[1]), 2 * n);
            assert_eq!(be_words(&resp[2..]), read_alone(&mut board, addr as u16, n), "{req:02X?}");
        }
    }
});
