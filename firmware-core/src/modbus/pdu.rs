//! The PDU layer: request parsing ([`Request`]) and execution against a
//! [`RegisterBank`] ([`process_request`]).
//!
//! *Modbus Application Protocol Specification V1.1b3*: §4.1 (PDU, at most 253 bytes),
//! §6.3 (FC03), §6.4 (FC04), §6.6 (FC06), §6.12 (FC16), §7 (exception responses).
//! All multi-byte fields and register values are big-endian on the wire (§4.2).

use super::{ExceptionCode, RegisterBank, RegisterKind};
use crate::time::Instant;

/// Largest PDU: 256-byte RTU ADU minus unit id and CRC (§4.1).
pub const MAX_PDU_LEN: usize = 253;

/// FC03, Read Holding Registers (§6.3).
pub const READ_HOLDING_REGISTERS: u8 = 0x03;
/// FC04, Read Input Registers (§6.4).
pub const READ_INPUT_REGISTERS: u8 = 0x04;
/// FC06, Write Single Register (§6.6).
pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
/// FC16, Write Multiple Registers (§6.12).
pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;
/// Set in the function code of an exception response (§7).
pub const EXCEPTION_FLAG: u8 = 0x80;

/// Most registers one FC03/FC04 request may read (§6.3: 0x007D).
pub const MAX_READ_QUANTITY: u16 = 125;
/// Most registers one FC16 request may write (§6.12: 0x007B).
pub const MAX_WRITE_QUANTITY: u16 = 123;

use ExceptionCode::{IllegalDataAddress, IllegalDataValue, IllegalFunction, ServerDeviceFailure};

/// A parsed, validated request PDU: the "Repr" of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// FC03: `qty` holding registers from `addr`.
    ReadHolding { addr: u16, qty: u16 },
    /// FC04: `qty` input registers from `addr`.
    ReadInput { addr: u16, qty: u16 },
    /// FC06: one holding register.
    WriteSingle { addr: u16, value: u16 },
    /// FC16: holding registers from `addr`; `values` holds the raw big-endian
    /// register bytes (always an even number, 2..=246 after [`parse`](Self::parse)).
    WriteMultiple { addr: u16, values: &'a [u8] },
}

impl<'a> Request<'a> {
    /// Parse and validate a request PDU (function code + data), following the
    /// per-function state diagrams of §6.3, §6.4, §6.6 and §6.12:
    ///
    /// * unsupported (or missing) function code → [`IllegalFunction`];
    /// * data of the wrong length for the function code, quantity out of range
    ///   (reads 1..=125, writes 1..=123), or FC16 byte count ≠ 2 × quantity →
    ///   [`IllegalDataValue`];
    /// * a register range running past address 0xFFFF (`addr + qty > 0x1_0000`)
    ///   → [`IllegalDataAddress`].
    ///
    /// Whether the addresses exist is for the [`RegisterBank`] to decide.
    pub fn parse(pdu: &'a [u8]) -> Result<Request<'a>, ExceptionCode> {
        let (&fc, data) = pdu.split_first().ok_or(IllegalFunction)?;
        match fc {
            READ_HOLDING_REGISTERS | READ_INPUT_REGISTERS => {
                let &[a_hi, a_lo, q_hi, q_lo] = data else {
                    return Err(IllegalDataValue);
                };
                let (addr, qty) = (be(a_hi, a_lo), be(q_hi, q_lo));
                check_quantity(qty, MAX_READ_QUANTITY)?;
                check_range(addr, qty)?;
                Ok(if fc == READ_HOLDING_REGISTERS {
                    Request::ReadHolding { addr, qty }
                } else {
                    Request::ReadInput { addr, qty }
                })
            }
            WRITE_SINGLE_REGISTER => {
                let &[a_hi, a_lo, v_hi, v_lo] = data else {
                    return Err(IllegalDataValue);
                };
                Ok(Request::WriteSingle { addr: be(a_hi, a_lo), value: be(v_hi, v_lo) })
            }
            WRITE_MULTIPLE_REGISTERS => {
                let [a_hi, a_lo, q_hi, q_lo, count, values @ ..] = data else {
                    return Err(IllegalDataValue);
                };
                let (addr, qty) = (be(*a_hi, *a_lo), be(*q_hi, *q_lo));
                check_quantity(qty, MAX_WRITE_QUANTITY)?;
                let count = usize::from(*count);
                if count != usize::from(qty) * 2 || values.len() != count {
                    return Err(IllegalDataValue);
                }
                check_range(addr, qty)?;
                Ok(Request::WriteMultiple { addr, values })
            }
            _ => Err(IllegalFunction),
        }
    }

    /// The function code of this request.
    pub const fn function_code(&self) -> u8 {
        match self {
            Request::ReadHolding { .. } => READ_HOLDING_REGISTERS,
            Request::ReadInput { .. } => READ_INPUT_REGISTERS,
            Request::WriteSingle { .. } => WRITE_SINGLE_REGISTER,
            Request::WriteMultiple { .. } => WRITE_MULTIPLE_REGISTERS,
        }
    }

    /// Whether the request changes registers (the only kind executed when broadcast).
    pub const fn is_write(&self) -> bool {
        matches!(self, Request::WriteSingle { .. } | Request::WriteMultiple { .. })
    }

    /// Length of the PDU that [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Request::WriteMultiple { values, .. } => values.len().saturating_add(6),
            _ => 5,
        }
    }

    /// Client side: write this request as a PDU into the front of `out`, returning
    /// its length. Quantities are written as given, unvalidated (so tests can emit
    /// out-of-range ones). `None` if `out` is too small, or for `WriteMultiple` if
    /// `values` has an odd length or more than 2 × [`MAX_WRITE_QUANTITY`] bytes.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let out = out.get_mut(..len)?;
        let (a, b) = match *self {
            Request::ReadHolding { addr, qty } | Request::ReadInput { addr, qty } => (addr, qty),
            Request::WriteSingle { addr, value } => (addr, value),
            Request::WriteMultiple { addr, values } => {
                if values.len() % 2 != 0 || values.len() > 2 * usize::from(MAX_WRITE_QUANTITY) {
                    return None;
                }
                let qty = u16::try_from(values.len() / 2).ok()?;
                let count = u8::try_from(values.len()).ok()?;
                let (head, tail) = out.split_at_mut_checked(6)?;
                head.copy_from_slice(&header(self.function_code(), addr, qty, Some(count)));
                tail.copy_from_slice(values);
                return Some(len);
            }
        };
        out.copy_from_slice(&header(self.function_code(), a, b, None)[..5]);
        Some(len)
    }
}

/// `fc`, `a`, `b` big-endian, then the optional byte count (else 0 padding).
fn header(fc: u8, a: u16, b: u16, count: Option<u8>) -> [u8; 6] {
    let [a_hi, a_lo] = a.to_be_bytes();
    let [b_hi, b_lo] = b.to_be_bytes();
    [fc, a_hi, a_lo, b_hi, b_lo, count.unwrap_or(0)]
}

const fn be(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

fn check_quantity(qty: u16, max: u16) -> Result<(), ExceptionCode> {
    if (1..=max).contains(&qty) { Ok(()) } else { Err(IllegalDataValue) }
}

/// The last register, `addr + qty - 1`, must not exceed 0xFFFF.
fn check_range(addr: u16, qty: u16) -> Result<(), ExceptionCode> {
    if u32::from(addr) + u32::from(qty) > 0x1_0000 { Err(IllegalDataAddress) } else { Ok(()) }
}

/// Serve one request PDU (function code + data, no unit id, no CRC): parse it,
/// execute it against `bank` at time `now`, and write the response PDU into
/// `response`, returning its length (at most [`MAX_PDU_LEN`]).
///
/// Every request that has a function code gets a response: the normal one, or an
/// exception response `[fc | 0x80, code]` (§7) with the code from [`Request::parse`]
/// or from the bank. FC06's response echoes the request; FC16's echoes address and
/// quantity.
///
/// `None` only if `request` is empty or `response` is shorter than [`MAX_PDU_LEN`].
pub fn process_request<B: RegisterBank>(
    bank: &mut B,
    now: Instant,
    request: &[u8],
    response: &mut [u8],
) -> Option<usize> {
    let response = response.get_mut(..MAX_PDU_LEN)?;
    let &fc = request.first()?;
    match Request::parse(request).and_then(|req| execute(bank, now, req, response)) {
        Ok(len) => Some(len),
        Err(code) => {
            let out = response.get_mut(..2)?;
            out.copy_from_slice(&[fc | EXCEPTION_FLAG, code.code()]);
            Some(2)
        }
    }
}

fn execute<B: RegisterBank>(
    bank: &mut B,
    now: Instant,
    req: Request<'_>,
    response: &mut [u8],
) -> Result<usize, ExceptionCode> {
    let fc = req.function_code();
    match req {
        Request::ReadHolding { addr, qty } => read(bank, RegisterKind::Holding, fc, addr, qty, response),
        Request::ReadInput { addr, qty } => read(bank, RegisterKind::Input, fc, addr, qty, response),
        Request::WriteSingle { addr, value } => {
            bank.write_registers(now, addr, &[value])?;
            req.emit(response).ok_or(ServerDeviceFailure)
        }
        Request::WriteMultiple { addr, values } => {
            let mut regs = [0u16; MAX_WRITE_QUANTITY as usize];
            let regs = regs.get_mut(..values.len() / 2).ok_or(ServerDeviceFailure)?;
            for (reg, bytes) in regs.iter_mut().zip(values.chunks_exact(2)) {
                if let &[hi, lo] = bytes {
                    *reg = be(hi, lo);
                }
            }
            bank.write_registers(now, addr, regs)?;
            let qty = u16::try_from(regs.len()).map_err(|_| ServerDeviceFailure)?;
            let out = response.get_mut(..5).ok_or(ServerDeviceFailure)?;
            out.copy_from_slice(&header(fc, addr, qty, None)[..5]);
            Ok(5)
        }
    }
}

fn read<B: RegisterBank>(
    bank: &mut B,
    kind: RegisterKind,
    fc: u8,
    addr: u16,
    qty: u16,
    response: &mut [u8],
) -> Result<usize, ExceptionCode> {
    let mut regs = [0u16; MAX_READ_QUANTITY as usize];
    let regs = regs.get_mut(..usize::from(qty)).ok_or(ServerDeviceFailure)?;
    let byte_count = regs.len() * 2;
    let len = 2 + byte_count;
    let (head, body) = response.get_mut(..len).and_then(|r| r.split_at_mut_checked(2)).ok_or(ServerDeviceFailure)?;
    bank.read_registers(kind, addr, regs)?;
    head.copy_from_slice(&[fc, u8::try_from(byte_count).map_err(|_| ServerDeviceFailure)?]);
    for (dst, reg) in body.chunks_exact_mut(2).zip(regs.iter()) {
        dst.copy_from_slice(&reg.to_be_bytes());
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::test_bank::TestBank;
    use proptest::prelude::*;

    const T: Instant = Instant(1_000);

    fn run(bank: &mut TestBank, req: &[u8]) -> Vec<u8> {
        let mut resp = [0u8; MAX_PDU_LEN];
        let n = process_request(bank, T, req, &mut resp).expect("a response");
        resp[..n].to_vec()
    }

    #[test]
    fn read_holding_and_input() {
        let mut bank = TestBank::new();
        bank.holding[..3].copy_from_slice(&[1, 0x1234, 1000]);
        assert_eq!(run(&mut bank, &[0x03, 0x00, 0x00, 0x00, 0x03]), [0x03, 0x06, 0x00, 0x01, 0x12, 0x34, 0x03, 0xE8]);
        // Input register n reads 0xA000 + n in the test bank.
        assert_eq!(run(&mut bank, &[0x04, 0x00, 0x07, 0x00, 0x02]), [0x04, 0x04, 0xA0, 0x07, 0xA0, 0x08]);
    }

    #[test]
    fn full_size_read() {
        let mut bank = TestBank { input_len: 200, ..TestBank::new() };
        let resp = run(&mut bank, &[0x04, 0x00, 0x00, 0x00, 125]);
        assert_eq!(resp.len(), 2 + 250);
        assert_eq!(&resp[..2], &[0x04, 250]);
        assert_eq!(&resp[250..], &[0xA0, 124]);
    }

    #[test]
    fn read_quantity_out_of_range() {
        let mut bank = TestBank::new();
        assert_eq!(run(&mut bank, &[0x03, 0, 0, 0, 0]), [0x83, 0x03]);
        assert_eq!(run(&mut bank, &[0x03, 0, 0, 0, 126]), [0x83, 0x03]);
        assert_eq!(run(&mut bank, &[0x04, 0, 0, 0x01, 0x00]), [0x84, 0x03]);
    }

    #[test]
    fn read_range_past_end() {
        let mut bank = TestBank::new();
        // Past the bank's 100 registers: the bank says 02.
        assert_eq!(run(&mut bank, &[0x03, 0, 99, 0, 2]), [0x83, 0x02]);
        assert_eq!(run(&mut bank, &[0x04, 0, 100, 0, 1]), [0x84, 0x02]);
        // Past 0xFFFF: the parser says 02 without asking the bank.
        assert_eq!(Request::parse(&[0x03, 0xFF, 0xFF, 0, 2]), Err(IllegalDataAddress));
        assert_eq!(Request::parse(&[0x03, 0xFF, 0xFF, 0, 1]), Ok(Request::ReadHolding { addr: 0xFFFF, qty: 1 }));
        assert_eq!(Request::parse(&[0x10, 0xFF, 0xFF, 0, 2, 4, 0, 0, 0, 0]), Err(IllegalDataAddress));
    }

    #[test]
    fn unknown_function_codes() {
        let mut bank = TestBank::new();
        assert_eq!(run(&mut bank, &[0x07]), [0x87, 0x01]);
        assert_eq!(run(&mut bank, &[0x2B, 0x0E, 0x01, 0x00]), [0xAB, 0x01]);
        assert_eq!(run(&mut bank, &[0x01, 0, 0, 0, 8]), [0x81, 0x01]);
        assert_eq!(run(&mut bank, &[0x83, 0x02]), [0x83, 0x01]);
    }

    #[test]
    fn malformed_lengths() {
        let mut bank = TestBank::new();
        assert_eq!(run(&mut bank, &[0x03, 0, 0, 0]), [0x83, 0x03]);
        assert_eq!(run(&mut bank, &[0x03, 0, 0, 0, 1, 0]), [0x83, 0x03]);
        assert_eq!(run(&mut bank, &[0x04]), [0x84, 0x03]);
        assert_eq!(run(&mut bank, &[0x06, 0, 1, 0]), [0x86, 0x03]);
        assert_eq!(run(&mut bank, &[0x10, 0, 1, 0, 1]), [0x90, 0x03]);
        // Byte count right, data one byte short / long.
        assert_eq!(run(&mut bank, &[0x10, 0, 1, 0, 1, 2, 0]), [0x90, 0x03]);
        assert_eq!(run(&mut bank, &[0x10, 0, 1, 0, 1, 2, 0, 0, 0]), [0x90, 0x03]);
        assert_eq!(bank.writes, 0);
    }

    #[test]
    fn write_single_echoes() {
        let mut bank = TestBank::new();
        let req = [0x06, 0x00, 0x05, 0x00, 0x2A];
        assert_eq!(run(&mut bank, &req), req);
        assert_eq!(bank.holding[5], 42);
        assert_eq!(bank.last_write, Some(T));
        assert_eq!(run(&mut bank, &[0x06, 0, 5, 0x03, 0xE9]), [0x86, 0x03]);
        assert_eq!(run(&mut bank, &[0x06, 0, 60, 0, 1]), [0x86, 0x02]);
        assert_eq!(bank.holding[5], 42);
    }

    #[test]
    fn write_multiple() {
        let mut bank = TestBank::new();
        let req = [0x10, 0x00, 0x01, 0x00, 0x02, 0x04, 0x00, 0x0A, 0x01, 0x02];
        assert_eq!(run(&mut bank, &req), [0x10, 0x00, 0x01, 0x00, 0x02]);
        assert_eq!(&bank.holding[..4], &[0, 10, 0x0102, 0]);
    }

    #[test]
    fn write_multiple_bad_count_or_quantity() {
        let mut bank = TestBank::new();
        // Byte count 3 for 2 registers.
        assert_eq!(run(&mut bank, &[0x10, 0, 1, 0, 2, 3, 0, 1, 2]), [0x90, 0x03]);
        // Quantity 0 and 124.
        assert_eq!(run(&mut bank, &[0x10, 0, 1, 0, 0, 0]), [0x90, 0x03]);
        let mut big = [0u8; 6 + 248];
        big[..6].copy_from_slice(&[0x10, 0, 0, 0, 124, 248]);
        assert_eq!(run(&mut bank, &big), [0x90, 0x03]);
        assert_eq!(bank.writes, 0);
    }

    #[test]
    fn write_multiple_partially_invalid_changes_nothing() {
        let mut bank = TestBank::new();
        bank.holding[1] = 7;
        // Second value 1001 is out of range.
        let req = [0x10, 0, 1, 0, 2, 4, 0x00, 0x0B, 0x03, 0xE9];
        assert_eq!(run(&mut bank, &req), [0x90, 0x03]);
        // Range runs into the read-only block at 50.
        let req = [0x10, 0, 49, 0, 2, 4, 0x00, 0x0B, 0x00, 0x0C];
        assert_eq!(run(&mut bank, &req), [0x90, 0x02]);
        assert_eq!(bank.holding[1], 7);
        assert_eq!(bank.holding[49], 0);
        assert_eq!(bank.writes, 0);
    }

    #[test]
    fn no_response_without_function_code_or_room() {
        let mut bank = TestBank::new();
        let mut resp = [0u8; MAX_PDU_LEN];
        assert_eq!(process_request(&mut bank, T, &[], &mut resp), None);
        let mut small = [0u8; MAX_PDU_LEN - 1];
        assert_eq!(process_request(&mut bank, T, &[0x03, 0, 0, 0, 1], &mut small), None);
    }

    #[test]
    fn emit_parse_round_trip() {
        let values = [0x00, 0x0A, 0x01, 0x02];
        let reqs = [
            Request::ReadHolding { addr: 0x006B, qty: 3 },
            Request::ReadInput { addr: 8, qty: 1 },
            Request::WriteSingle { addr: 1, value: 0x0003 },
            Request::WriteMultiple { addr: 1, values: &values },
        ];
        let mut buf = [0u8; MAX_PDU_LEN];
        for req in reqs {
            let n = req.emit(&mut buf).unwrap();
            assert_eq!(n, req.buffer_len());
            assert_eq!(Request::parse(&buf[..n]), Ok(req));
        }
        assert_eq!(Request::WriteMultiple { addr: 0, values: &[1, 2, 3] }.emit(&mut buf), None);
        assert_eq!(reqs[0].emit(&mut buf[..4]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_pdus_never_panic(
            pdu in prop::collection::vec(any::<u8>(), 0..300),
            fc in prop::sample::select(vec![0x03u8, 0x04, 0x06, 0x10, 0x07, 0x83]),
            force_fc in any::<bool>(),
            resp_len in prop::sample::select(vec![0usize, 2, 252, 253, 256]),
        ) {
            let mut pdu = pdu;
            if force_fc && !pdu.is_empty() {
                pdu[0] = fc;
            }
            let mut bank = TestBank::new();
            let before = bank.holding;
            let mut resp = [0u8; 256];
            match process_request(&mut bank, T, &pdu, &mut resp[..resp_len]) {
                None => prop_assert!(pdu.is_empty() || resp_len < MAX_PDU_LEN),
                Some(n) => {
                    prop_assert!((2..=MAX_PDU_LEN).contains(&n));
                    prop_assert!(resp[0] == pdu[0] || resp[0] == pdu[0] | EXCEPTION_FLAG);
                    if resp[0] & EXCEPTION_FLAG != 0 {
                        prop_assert_eq!(n, 2);
                        prop_assert_eq!(bank.holding, before);
                    }
                }
            }
        }

        #[test]
        fn valid_reads_return_byte_count(addr in 0u16..100, qty in 1u16..=125) {
            let mut bank = TestBank::new();
            let mut resp = [0u8; MAX_PDU_LEN];
            let n = process_request(&mut bank, T, &[3, 0, addr as u8, 0, qty as u8], &mut resp).unwrap();
            if addr + qty <= 100 {
                prop_assert_eq!(n, 2 + 2 * usize::from(qty));
                prop_assert_eq!(usize::from(resp[1]), 2 * usize::from(qty));
            } else {
                prop_assert_eq!(&resp[..n], &[0x83, 0x02]);
            }
        }
    }
}
