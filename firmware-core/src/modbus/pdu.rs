//! The PDU layer: request parsing ([`Request`]), execution against a
//! [`RegisterBank`] ([`execute`]) and the response ([`Response`]) a reply is
//! written from; [`process_request`] does all three for a transport that hands
//! over PDUs (Modbus TCP).
//!
//! As smoltcp's `wire` module does it: a request is parsed once into its Repr
//! ([`Request::parse`]), everything downstream works on that, and every reply,
//! normal or exception, built by the board or by a test tool or fault injector,
//! is a [`Response`] written by [`Response::emit`] (inside an RTU frame by
//! [`super::frame::emit_response`]).
//!
//! *Modbus Application Protocol Specification V1.1b3*: §4.1 (PDU, at most 253 bytes),
//! §6.3 (FC03), §6.4 (FC04), §6.6 (FC06), §6.8 (FC08, sub-function 00 only here: the
//! serial-line sub-functions are [`super::rtu`]'s), §6.12 (FC16), §6.17 (FC23), §6.21
//! (FC43 / MEI 14), §7 (exception responses). All multi-byte fields and register
//! values are big-endian on the wire (§4.2).
//!
//! This layer knows no transport: it serves RTU ([`super::rtu`]) and Modbus TCP
//! alike.

use super::device_id::{DeviceIdResponse, ENCAPSULATED_INTERFACE_TRANSPORT, ReadDeviceId};
use super::diagnostics::{DIAGNOSTICS, Diagnostic, DiagnosticResponse};
use super::{ExceptionCode, MAX_PDU_LEN, RegisterBank, RegisterKind};

/// FC03, Read Holding Registers (§6.3).
pub const READ_HOLDING_REGISTERS: u8 = 0x03;
/// FC04, Read Input Registers (§6.4).
pub const READ_INPUT_REGISTERS: u8 = 0x04;
/// FC06, Write Single Register (§6.6).
pub const WRITE_SINGLE_REGISTER: u8 = 0x06;
/// FC16, Write Multiple Registers (§6.12).
pub const WRITE_MULTIPLE_REGISTERS: u8 = 0x10;
/// FC23, Read/Write Multiple Registers (§6.17).
pub const READ_WRITE_MULTIPLE_REGISTERS: u8 = 0x17;
/// Set in the function code of an exception response (§7).
pub const EXCEPTION_FLAG: u8 = 0x80;

/// Most registers one FC03/FC04 request, or the read part of FC23, may read
/// (§6.3, §6.17: 0x007D).
pub const MAX_READ_QUANTITY: u16 = 125;
/// Most registers one FC16 request may write (§6.12: 0x007B).
pub const MAX_WRITE_QUANTITY: u16 = 123;
/// Most registers the write part of one FC23 request may write (§6.17: 0x0079).
pub const MAX_READ_WRITE_WRITE_QUANTITY: u16 = 121;

/// FC23 request bytes before the write values: FC, read address, read quantity,
/// write address, write quantity, byte count.
const FC23_HEADER_LEN: usize = 10;

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
    /// FC23: write holding registers from `write_addr` (`values` as for
    /// [`WriteMultiple`](Self::WriteMultiple), 2..=242 bytes), then read `read_qty`
    /// holding registers from `read_addr`.
    ReadWriteMultiple { read_addr: u16, read_qty: u16, write_addr: u16, values: &'a [u8] },
    /// FC08: a diagnostics sub-function.
    Diagnostics(Diagnostic<'a>),
    /// FC43 / MEI 14: read device identification.
    ReadDeviceIdentification(ReadDeviceId),
}

impl<'a> Request<'a> {
    /// Parse and validate a request PDU (function code + data), following the
    /// per-function state diagrams of §6:
    ///
    /// * unsupported (or missing) function code, FC43 MEI type other than 14, or
    ///   unsupported FC08 sub-function → [`IllegalFunction`];
    /// * data of the wrong length for the function code, quantity out of range
    ///   (reads 1..=125, FC16 writes 1..=123, FC23 writes 1..=121), byte count ≠
    ///   2 × quantity, FC08 data not allowed for the sub-function, FC43 read device
    ///   id code outside 01..=04 → [`IllegalDataValue`];
    /// * a register range running past address 0xFFFF (`addr + qty > 0x1_0000`)
    ///   → [`IllegalDataAddress`].
    ///
    /// Whether the addresses or objects exist is for the [`RegisterBank`] to decide.
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
                check_byte_count(qty, *count, values)?;
                check_range(addr, qty)?;
                Ok(Request::WriteMultiple { addr, values })
            }
            READ_WRITE_MULTIPLE_REGISTERS => {
                let [ra_hi, ra_lo, rq_hi, rq_lo, wa_hi, wa_lo, wq_hi, wq_lo, count, values @ ..] = data else {
                    return Err(IllegalDataValue);
                };
                let (read_addr, read_qty) = (be(*ra_hi, *ra_lo), be(*rq_hi, *rq_lo));
                let (write_addr, write_qty) = (be(*wa_hi, *wa_lo), be(*wq_hi, *wq_lo));
                check_quantity(read_qty, MAX_READ_QUANTITY)?;
                check_quantity(write_qty, MAX_READ_WRITE_WRITE_QUANTITY)?;
                check_byte_count(write_qty, *count, values)?;
                check_range(read_addr, read_qty)?;
                check_range(write_addr, write_qty)?;
                Ok(Request::ReadWriteMultiple { read_addr, read_qty, write_addr, values })
            }
            DIAGNOSTICS => Diagnostic::parse(data).map(Request::Diagnostics),
            ENCAPSULATED_INTERFACE_TRANSPORT => ReadDeviceId::parse(data).map(Request::ReadDeviceIdentification),
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
            Request::ReadWriteMultiple { .. } => READ_WRITE_MULTIPLE_REGISTERS,
            Request::Diagnostics(_) => DIAGNOSTICS,
            Request::ReadDeviceIdentification(_) => ENCAPSULATED_INTERFACE_TRANSPORT,
        }
    }

    /// Whether the request changes registers (FC06, FC16, FC23): the requests a
    /// slave executes when they are broadcast.
    pub const fn is_write(&self) -> bool {
        matches!(self, Request::WriteSingle { .. } | Request::WriteMultiple { .. } | Request::ReadWriteMultiple { .. })
    }

    /// Length of the PDU that [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Request::WriteMultiple { values, .. } => values.len().saturating_add(6),
            Request::ReadWriteMultiple { values, .. } => values.len().saturating_add(FC23_HEADER_LEN),
            Request::Diagnostics(d) => d.buffer_len(),
            Request::ReadDeviceIdentification(_) => ReadDeviceId::BUFFER_LEN,
            _ => 5,
        }
    }

    /// Client side: write this request as a PDU into the front of `out`, returning
    /// its length. Quantities are written as given, unvalidated (so tests can emit
    /// out-of-range ones). `None` if `out` is too small, or for `WriteMultiple` and
    /// `ReadWriteMultiple` if `values` has an odd length or more than 2 ×
    /// [`MAX_WRITE_QUANTITY`] bytes.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let out = out.get_mut(..len)?;
        let (a, b) = match *self {
            Request::ReadHolding { addr, qty } | Request::ReadInput { addr, qty } => (addr, qty),
            Request::WriteSingle { addr, value } => (addr, value),
            Request::WriteMultiple { addr, values } => {
                let (qty, count) = write_quantity(values)?;
                let (head, tail) = out.split_at_mut_checked(6)?;
                head.copy_from_slice(&header(self.function_code(), addr, qty, Some(count)));
                tail.copy_from_slice(values);
                return Some(len);
            }
            Request::ReadWriteMultiple { read_addr, read_qty, write_addr, values } => {
                let (qty, count) = write_quantity(values)?;
                let (head, tail) = out.split_at_mut_checked(FC23_HEADER_LEN)?;
                let (read_part, write_part) = head.split_at_mut_checked(5)?;
                read_part.copy_from_slice(&header(self.function_code(), read_addr, read_qty, None)[..5]);
                write_part.copy_from_slice(&header(0, write_addr, qty, Some(count))[1..]);
                tail.copy_from_slice(values);
                return Some(len);
            }
            Request::Diagnostics(d) => return d.emit(out),
            Request::ReadDeviceIdentification(r) => return r.emit(out),
        };
        out.copy_from_slice(&header(self.function_code(), a, b, None)[..5]);
        Some(len)
    }
}

/// Quantity and byte count of raw register bytes; `None` if odd or too many.
fn write_quantity(values: &[u8]) -> Option<(u16, u8)> {
    if values.len() % 2 != 0 || values.len() > 2 * usize::from(MAX_WRITE_QUANTITY) {
        return None;
    }
    Some((u16::try_from(values.len() / 2).ok()?, u8::try_from(values.len()).ok()?))
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

/// The byte count must be 2 × `qty` and match the bytes that follow it.
fn check_byte_count(qty: u16, count: u8, values: &[u8]) -> Result<(), ExceptionCode> {
    let count = usize::from(count);
    if count != usize::from(qty) * 2 || values.len() != count { Err(IllegalDataValue) } else { Ok(()) }
}

/// The last register, `addr + qty - 1`, must not exceed 0xFFFF.
fn check_range(addr: u16, qty: u16) -> Result<(), ExceptionCode> {
    if u32::from(addr) + u32::from(qty) > 0x1_0000 { Err(IllegalDataAddress) } else { Ok(()) }
}

/// A response PDU: the Repr of a reply, written by [`emit`](Self::emit).
#[derive(Clone, Copy, Debug)]
pub enum Response<'a> {
    /// FC03, FC04 and FC23: `function | byte count | registers` (big-endian).
    Registers { function: u8, values: &'a [u16] },
    /// FC06: the request echoed.
    WriteSingle { addr: u16, value: u16 },
    /// FC16: the address and quantity written.
    WriteMultiple { addr: u16, qty: u16 },
    /// FC08 (§6.8).
    Diagnostics(DiagnosticResponse<'a>),
    /// FC43 / MEI 14 (§6.21).
    DeviceIdentification(DeviceIdResponse<'a>),
    /// Any function: `function | 0x80, code` (§7).
    Exception { function: u8, code: ExceptionCode },
}

impl Response<'_> {
    /// The function code as it goes on the wire (with [`EXCEPTION_FLAG`] for an exception).
    pub const fn function_code(&self) -> u8 {
        match self {
            Response::Registers { function, .. } => *function,
            Response::WriteSingle { .. } => WRITE_SINGLE_REGISTER,
            Response::WriteMultiple { .. } => WRITE_MULTIPLE_REGISTERS,
            Response::Diagnostics(_) => DIAGNOSTICS,
            Response::DeviceIdentification(_) => ENCAPSULATED_INTERFACE_TRANSPORT,
            Response::Exception { function, .. } => *function | EXCEPTION_FLAG,
        }
    }

    /// The exception, if this is an exception response.
    pub const fn exception(&self) -> Option<ExceptionCode> {
        match self {
            Response::Exception { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Length of the PDU that [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Response::Registers { values, .. } => values.len().saturating_mul(2).saturating_add(2),
            Response::WriteSingle { .. } | Response::WriteMultiple { .. } => 5,
            Response::Diagnostics(d) => d.buffer_len(),
            Response::DeviceIdentification(d) => d.buffer_len(),
            Response::Exception { .. } => 2,
        }
    }

    /// Write the response PDU into the front of `out` and return its length; `None` if
    /// it does not fit, or (registers) if more than 127 registers make the byte count overflow.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let fc = self.function_code();
        match *self {
            Response::Registers { values, .. } => {
                let (head, body) = out.get_mut(..len)?.split_at_mut_checked(2)?;
                head.copy_from_slice(&[fc, u8::try_from(len - 2).ok()?]);
                for (dst, reg) in body.chunks_exact_mut(2).zip(values) {
                    dst.copy_from_slice(&reg.to_be_bytes());
                }
            }
            Response::WriteSingle { addr: a, value: b } | Response::WriteMultiple { addr: a, qty: b } => {
                let [head @ .., _] = header(fc, a, b, None);
                out.get_mut(..head.len())?.copy_from_slice(&head);
            }
            Response::Diagnostics(d) => return d.emit(out),
            Response::DeviceIdentification(d) => return d.emit(out),
            Response::Exception { code, .. } => {
                let pdu = [fc, code.code()];
                out.get_mut(..pdu.len())?.copy_from_slice(&pdu);
            }
        }
        Some(len)
    }
}

/// Room for the registers one request may read: FC03, FC04, FC23's read part.
pub type Registers = [u16; MAX_READ_QUANTITY as usize];

/// Execute a parsed request against `bank`; the response borrows the read registers
/// from `regs` (and, FC43, the object values from `bank`).
///
/// FC06's response echoes the request; FC16's echoes address and quantity; FC23
/// writes, then reads (a write the bank refuses changes nothing and its exception is
/// the result; the read range is checked by a read before the write, so a refused
/// read range changes nothing either).
///
/// FC08 is a serial-line function: here only sub-function 00 (Return Query Data,
/// an echo) is answered; the others need the serial line's counters and state and
/// get exception 01 (illegal function) from this transport-independent layer.
/// [`super::rtu::RtuSlave`] answers them itself.
///
/// `Err` is the exception to answer with, from the bank or (FC43 objects) the layout.
pub fn execute<'a, B: RegisterBank>(
    bank: &'a mut B,
    request: &Request<'a>,
    regs: &'a mut Registers,
) -> Result<Response<'a>, ExceptionCode> {
    let fc = request.function_code();
    match *request {
        Request::ReadHolding { addr, qty } => read(bank, RegisterKind::Holding, fc, addr, qty, regs),
        Request::ReadInput { addr, qty } => read(bank, RegisterKind::Input, fc, addr, qty, regs),
        Request::WriteSingle { addr, value } => {
            bank.write_registers(addr, &[value])?;
            Ok(Response::WriteSingle { addr, value })
        }
        Request::WriteMultiple { addr, values } => {
            let regs = decode_values(values, regs)?;
            bank.write_registers(addr, regs)?;
            let qty = u16::try_from(regs.len()).map_err(|_| ServerDeviceFailure)?;
            Ok(Response::WriteMultiple { addr, qty })
        }
        Request::ReadWriteMultiple { read_addr, read_qty, write_addr, values } => {
            // The read range first: if the bank refuses it, nothing has been written.
            let check = regs.get_mut(..usize::from(read_qty)).ok_or(ServerDeviceFailure)?;
            bank.read_registers(RegisterKind::Holding, read_addr, check)?;
            let write = decode_values(values, regs)?;
            bank.write_registers(write_addr, write)?;
            read(bank, RegisterKind::Holding, fc, read_addr, read_qty, regs)
        }
        Request::Diagnostics(d @ Diagnostic::ReturnQueryData(_)) => {
            d.response(0).map(Response::Diagnostics).ok_or(ServerDeviceFailure)
        }
        Request::Diagnostics(_) => Err(IllegalFunction),
        Request::ReadDeviceIdentification(r) => {
            let bank: &'a B = bank;
            r.response(bank, MAX_PDU_LEN).map(Response::DeviceIdentification)
        }
    }
}

/// Serve one request PDU (function code + data, no unit id, no CRC): parse it once,
/// [`execute`] it against `bank`, and write the response PDU into `response`,
/// returning its length (at most [`MAX_PDU_LEN`]).
///
/// Every request that has a function code gets a response: the normal one, or an
/// exception response `[fc | 0x80, code]` (§7) with the code from [`Request::parse`]
/// or from [`execute`].
///
/// `None` only if `request` is empty or `response` is shorter than [`MAX_PDU_LEN`].
pub fn process_request<B: RegisterBank>(bank: &mut B, request: &[u8], response: &mut [u8]) -> Option<usize> {
    #[cfg(feature = "prove-panic-pdu")]
    crate::prove_panic_path();
    let response = response.get_mut(..MAX_PDU_LEN)?;
    let &function = request.first()?;
    let mut regs = [0u16; MAX_READ_QUANTITY as usize];
    let parsed = Request::parse(request);
    let reply = match parsed.as_ref().map_err(|e| *e).and_then(|req| execute(bank, req, &mut regs)) {
        Ok(r) => r,
        Err(code) => Response::Exception { function, code },
    };
    reply.emit(response)
}

/// Big-endian register bytes into the front of `regs`.
fn decode_values<'r>(values: &[u8], regs: &'r mut [u16]) -> Result<&'r [u16], ExceptionCode> {
    let regs = regs.get_mut(..values.len() / 2).ok_or(ServerDeviceFailure)?;
    for (reg, bytes) in regs.iter_mut().zip(values.chunks_exact(2)) {
        if let &[hi, lo] = bytes {
            *reg = be(hi, lo);
        }
    }
    Ok(regs)
}

/// Read `qty` registers into `regs`: the response `fc | byte count | values`.
fn read<'a, B: RegisterBank>(
    bank: &mut B,
    kind: RegisterKind,
    function: u8,
    addr: u16,
    qty: u16,
    regs: &'a mut Registers,
) -> Result<Response<'a>, ExceptionCode> {
    let values = regs.get_mut(..usize::from(qty)).ok_or(ServerDeviceFailure)?;
    bank.read_registers(kind, addr, values)?;
    Ok(Response::Registers { function, values })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::device_id::ReadDeviceIdCode;
    use crate::modbus::test_bank::TestBank;
    use proptest::prelude::*;

    fn run(bank: &mut TestBank, req: &[u8]) -> Vec<u8> {
        let mut resp = [0u8; MAX_PDU_LEN];
        let n = process_request(bank, req, &mut resp).expect("a response");
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
        // FC43 with another MEI type (0x0D: CANopen), and MEI 14 of a bank without identification.
        assert_eq!(run(&mut bank, &[0x2B, 0x0D, 0x01, 0x00]), [0xAB, 0x01]);
        bank.objects = &[];
        assert_eq!(run(&mut bank, &[0x2B, 0x0E, 0x01, 0x00]), [0xAB, 0x01]);
        // FC08 sub-functions other than 00 need the serial line: 01 here.
        assert_eq!(run(&mut bank, &[0x08, 0x00, 0x0B, 0x00, 0x00]), [0x88, 0x01]);
        assert_eq!(run(&mut bank, &[0x08, 0x00, 0x02, 0x00, 0x00]), [0x88, 0x01]);
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
        assert_eq!((bank.holding[5], bank.writes), (42, 1));
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

    /// FC23 request PDU: write `values` at `waddr`, read `rqty` from `raddr`.
    fn fc23(raddr: u16, rqty: u16, waddr: u16, values: &[u16]) -> Vec<u8> {
        let mut pdu = vec![0x17];
        for v in [raddr, rqty, waddr, values.len() as u16] {
            pdu.extend_from_slice(&v.to_be_bytes());
        }
        pdu.push((values.len() * 2) as u8);
        for v in values {
            pdu.extend_from_slice(&v.to_be_bytes());
        }
        pdu
    }

    #[test]
    fn read_write_multiple_writes_then_reads() {
        let mut bank = TestBank::new();
        bank.holding[..4].copy_from_slice(&[1, 2, 3, 4]);
        // Write 2 registers at 2, read 4 from 1: the read sees the new values.
        let resp = run(&mut bank, &fc23(1, 4, 2, &[0x0102, 0x0304]));
        assert_eq!(resp, [0x17, 8, 0, 2, 0x01, 0x02, 0x03, 0x04, 0, 0]);
        assert_eq!(bank.writes, 1);
        // The spec's example layout: read 6 from 3, write 3 at 14.
        let pdu = [0x17, 0x00, 0x03, 0x00, 0x06, 0x00, 0x0E, 0x00, 0x03, 0x06, 0, 0xFF, 0, 0xFF, 0, 0xFF];
        let resp = run(&mut bank, &pdu);
        assert_eq!(&resp[..2], &[0x17, 12]);
        assert_eq!(&bank.holding[14..17], &[0xFF; 3]);
        // Largest request: read 125, write 121 (a 252-byte PDU; the read of 125 from
        // 0 is past the test bank's 100 registers, so read 50).
        let resp = run(&mut bank, &fc23(50, 50, 0, &[7; 50]));
        assert_eq!(resp.len(), 2 + 100);
        let pdu = fc23(0, 125, 0, &[7; 121]);
        assert_eq!(pdu.len(), 252);
        assert_eq!(Request::parse(&pdu).map(|r| r.function_code()), Ok(0x17));
    }

    #[test]
    fn read_write_multiple_quantities_and_byte_count() {
        let mut bank = TestBank::new();
        assert_eq!(run(&mut bank, &fc23(0, 0, 0, &[1])), [0x97, 0x03]);
        assert_eq!(run(&mut bank, &fc23(0, 126, 0, &[1])), [0x97, 0x03]);
        assert_eq!(run(&mut bank, &fc23(0, 1, 0, &[])), [0x97, 0x03]);
        assert_eq!(run(&mut bank, &fc23(0, 1, 0, &[1; 122])), [0x97, 0x03]);
        // Byte count 3 for 2 registers; byte count right but a value byte missing.
        let mut pdu = fc23(0, 1, 0, &[1, 2]);
        pdu[9] = 3;
        assert_eq!(run(&mut bank, &pdu), [0x97, 0x03]);
        let pdu = fc23(0, 1, 0, &[1, 2]);
        assert_eq!(run(&mut bank, &pdu[..pdu.len() - 1]), [0x97, 0x03]);
        assert_eq!(run(&mut bank, &pdu[..9]), [0x97, 0x03]);
        // Ranges past 0xFFFF.
        assert_eq!(run(&mut bank, &fc23(0xFFFF, 2, 0, &[1])), [0x97, 0x02]);
        assert_eq!(run(&mut bank, &fc23(0, 1, 0xFFFF, &[1, 2])), [0x97, 0x02]);
        assert_eq!(bank.writes, 0);
    }

    #[test]
    fn read_write_multiple_is_atomic() {
        let mut bank = TestBank::new();
        bank.holding[0] = 5;
        // A value the bank refuses: 03, nothing written.
        assert_eq!(run(&mut bank, &fc23(0, 1, 0, &[9, 1001])), [0x97, 0x03]);
        // A write into the read-only block: 02.
        assert_eq!(run(&mut bank, &fc23(0, 1, 49, &[9, 9])), [0x97, 0x02]);
        // A valid write with a read range the bank refuses: 02, and the write is not done.
        assert_eq!(run(&mut bank, &fc23(99, 2, 0, &[9])), [0x97, 0x02]);
        assert_eq!(bank.holding[0], 5);
        assert_eq!(bank.writes, 0);
    }

    #[test]
    fn bank_failure_and_busy_pass_through() {
        for code in [ExceptionCode::ServerDeviceFailure, ExceptionCode::ServerDeviceBusy] {
            let mut bank = TestBank { fail: Some(code), ..TestBank::new() };
            let c = code.code();
            assert_eq!(run(&mut bank, &[0x03, 0, 0, 0, 1]), [0x83, c]);
            assert_eq!(run(&mut bank, &[0x04, 0, 0, 0, 1]), [0x84, c]);
            assert_eq!(run(&mut bank, &[0x06, 0, 0, 0, 1]), [0x86, c]);
            assert_eq!(run(&mut bank, &[0x10, 0, 0, 0, 1, 2, 0, 1]), [0x90, c]);
            assert_eq!(run(&mut bank, &fc23(0, 1, 0, &[1])), [0x97, c]);
            assert_eq!(bank.writes, 0);
        }
    }

    #[test]
    fn diagnostics_echo_only() {
        let mut bank = TestBank::new();
        assert_eq!(run(&mut bank, &[0x08, 0, 0, 0xA5, 0x37]), [0x08, 0, 0, 0xA5, 0x37]);
        assert_eq!(run(&mut bank, &[0x08, 0, 0]), [0x08, 0, 0]);
        let mut long = vec![0x08, 0, 0];
        long.extend((0..250).map(|i| i as u8));
        assert_eq!(run(&mut bank, &long), long);
        assert_eq!(run(&mut bank, &[0x08, 0]), [0x88, 0x03]);
        assert_eq!(run(&mut bank, &[0x08, 0, 1, 0, 0]), [0x88, 0x01]);
        assert_eq!(run(&mut bank, &[0x08, 0, 4, 0, 0]), [0x88, 0x01]);
    }

    #[test]
    fn read_device_identification() {
        let mut bank = TestBank::new();
        let resp = run(&mut bank, &[0x2B, 0x0E, 0x01, 0x00]);
        assert_eq!(&resp[..7], &[0x2B, 0x0E, 0x01, 0x82, 0, 0, 3]);
        assert_eq!(run(&mut bank, &[0x2B, 0x0E, 0x04, 0x03]), [0xAB, 0x02]);
        assert_eq!(run(&mut bank, &[0x2B, 0x0E, 0x05, 0x00]), [0xAB, 0x03]);
        assert_eq!(run(&mut bank, &[0x2B, 0x0E, 0x01]), [0xAB, 0x03]);
        assert_eq!(run(&mut bank, &[0x2B]), [0xAB, 0x03]);
    }

    #[test]
    fn no_response_without_function_code_or_room() {
        let mut bank = TestBank::new();
        let mut resp = [0u8; MAX_PDU_LEN];
        assert_eq!(process_request(&mut bank, &[], &mut resp), None);
        let mut small = [0u8; MAX_PDU_LEN - 1];
        assert_eq!(process_request(&mut bank, &[0x03, 0, 0, 0, 1], &mut small), None);
    }

    #[test]
    fn emit_parse_round_trip() {
        let values = [0x00, 0x0A, 0x01, 0x02];
        let reqs = [
            Request::ReadHolding { addr: 0x006B, qty: 3 },
            Request::ReadInput { addr: 8, qty: 1 },
            Request::WriteSingle { addr: 1, value: 0x0003 },
            Request::WriteMultiple { addr: 1, values: &values },
            Request::ReadWriteMultiple { read_addr: 3, read_qty: 6, write_addr: 14, values: &values },
            Request::Diagnostics(Diagnostic::ReturnQueryData(&values)),
            Request::ReadDeviceIdentification(ReadDeviceId { code: ReadDeviceIdCode::Regular, object_id: 3 }),
        ];
        let mut buf = [0u8; MAX_PDU_LEN];
        for req in reqs {
            let n = req.emit(&mut buf).unwrap();
            assert_eq!(n, req.buffer_len());
            assert_eq!(Request::parse(&buf[..n]), Ok(req));
        }
        assert_eq!(Request::WriteMultiple { addr: 0, values: &[1, 2, 3] }.emit(&mut buf), None);
        assert_eq!(
            Request::ReadWriteMultiple { read_addr: 0, read_qty: 1, write_addr: 0, values: &[1] }.emit(&mut buf),
            None
        );
        assert_eq!(reqs[0].emit(&mut buf[..4]), None);
    }

    proptest! {
        #[test]
        fn arbitrary_pdus_never_panic(
            pdu in prop::collection::vec(any::<u8>(), 0..300),
            fc in prop::sample::select(vec![0x03u8, 0x04, 0x06, 0x10, 0x17, 0x08, 0x2B, 0x07, 0x83]),
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
            match process_request(&mut bank, &pdu, &mut resp[..resp_len]) {
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
            let n = process_request(&mut bank, &[3, 0, addr as u8, 0, qty as u8], &mut resp).unwrap();
            if addr + qty <= 100 {
                prop_assert_eq!(n, 2 + 2 * usize::from(qty));
                prop_assert_eq!(usize::from(resp[1]), 2 * usize::from(qty));
            } else {
                prop_assert_eq!(&resp[..n], &[0x83, 0x02]);
            }
        }
    }
}
