//! Modbus RTU slave: the board's RS-485 protocol stack.
//!
//! Layers, bottom up:
//!
//! * [`crc`]: the CRC-16 of *Modbus over Serial Line V1.02*, §6.2.2 (Appendix B).
//! * [`frame`]: a zero-copy view of an RTU ADU (unit id + PDU + CRC), §2.5.1, and
//!   the one ADU emitter ([`frame::emit_frame`], [`frame::emit_response`]).
//! * [`framer`]: [`framer::RtuFramer`], the one place that decides where an RTU
//!   frame ends in a timestamped byte stream (t3.5 of silence, §2.5.1.1, and, where
//!   bytes arrive in bursts, the length the function code gives), with the line
//!   settings it needs ([`framer::RtuConfig`]).
//! * [`pdu`]: request parsing ([`pdu::Request`]), execution against a
//!   [`RegisterBank`] ([`pdu::execute`]) and the response [`pdu::Response`] that
//!   writes the reply (*Modbus Application Protocol V1.1b3*, §6) of function codes
//!   03, 04, 06, 16, 23 (read/write multiple registers), 08 sub-function 00 (echo)
//!   and 43/14 (read device identification), with the wire formats of FC08 in
//!   [`diagnostics`] and of FC43/14 in [`device_id`]. This layer is transport
//!   independent: [`pdu::process_request`] also serves Modbus TCP.
//! * [`rtu`]: [`rtu::RtuSlave`], which takes the frames its framer (or a bus
//!   monitor's) completes, filters by unit id, executes broadcasts without reply,
//!   keeps the serial-line diagnostic counters and listen-only mode, answers the
//!   FC08 counter sub-functions and produces reply ADUs.
//!
//! Exceptions (§7) are values ([`ExceptionCode`]): 01 for an unknown function code,
//! MEI type or FC08 sub-function; 02 for addresses or objects the device lacks; 03
//! for malformed requests and refused values; 04 and 06 when the [`RegisterBank`]
//! says so (a device failure or a busy device: the slave passes any code the bank
//! returns through unchanged).
//!
//! Nothing here allocates, panics or uses `unsafe`; all input lengths are untrusted.

use core::fmt;

pub mod crc;
pub mod device_id;
pub mod diagnostics;
pub mod frame;
pub mod framer;
pub mod pdu;
pub mod rtu;

/// Largest RTU ADU: unit id (1) + PDU (253) + CRC (2); *Modbus over Serial Line V1.02*, §2.5.1.
pub const MAX_ADU_LEN: usize = 256;
/// Largest PDU: the 256-byte RTU ADU minus unit id and CRC (*Modbus Application
/// Protocol V1.1b3*, §4.1). Here, not in [`pdu`], so that every Modbus module can
/// use it without importing another.
pub const MAX_PDU_LEN: usize = MAX_ADU_LEN - 3;

/// Exception codes a slave may answer with; *Modbus Application Protocol V1.1b3*, §7.
///
/// The board itself answers 01..=04 and 06; the rest are here so that a caller (a
/// gateway, a fault injector) can build any exception reply with the same emitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExceptionCode {
    /// 01: the function code is not supported by this device.
    IllegalFunction,
    /// 02: the address range is not (fully) available.
    IllegalDataAddress,
    /// 03: a value in the request (quantity, byte count, length, register value) is not allowed.
    IllegalDataValue,
    /// 04: an unrecoverable error occurred while performing the action.
    ServerDeviceFailure,
    /// 05: accepted, but it will take a long time to complete.
    Acknowledge,
    /// 06: the device is busy with a long-running command.
    ServerDeviceBusy,
    /// 08: a parity error in the extended memory (file record access).
    MemoryParityError,
    /// 0A: a gateway could not allocate a path to the target.
    GatewayPathUnavailable,
    /// 0B: a gateway's target device failed to respond.
    GatewayTargetDeviceFailedToRespond,
    /// Any other code, as it appears on the wire.
    Custom(u8),
}

impl ExceptionCode {
    /// The code as it appears on the wire.
    pub const fn code(self) -> u8 {
        match self {
            ExceptionCode::IllegalFunction => 0x01,
            ExceptionCode::IllegalDataAddress => 0x02,
            ExceptionCode::IllegalDataValue => 0x03,
            ExceptionCode::ServerDeviceFailure => 0x04,
            ExceptionCode::Acknowledge => 0x05,
            ExceptionCode::ServerDeviceBusy => 0x06,
            ExceptionCode::MemoryParityError => 0x08,
            ExceptionCode::GatewayPathUnavailable => 0x0A,
            ExceptionCode::GatewayTargetDeviceFailedToRespond => 0x0B,
            ExceptionCode::Custom(code) => code,
        }
    }

    /// The exception for a wire value: a named one of §7, else [`Custom`](Self::Custom).
    pub const fn from_code(code: u8) -> ExceptionCode {
        match code {
            0x01 => ExceptionCode::IllegalFunction,
            0x02 => ExceptionCode::IllegalDataAddress,
            0x03 => ExceptionCode::IllegalDataValue,
            0x04 => ExceptionCode::ServerDeviceFailure,
            0x05 => ExceptionCode::Acknowledge,
            0x06 => ExceptionCode::ServerDeviceBusy,
            0x08 => ExceptionCode::MemoryParityError,
            0x0A => ExceptionCode::GatewayPathUnavailable,
            0x0B => ExceptionCode::GatewayTargetDeviceFailedToRespond,
            other => ExceptionCode::Custom(other),
        }
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ExceptionCode::IllegalFunction => "illegal function",
            ExceptionCode::IllegalDataAddress => "illegal data address",
            ExceptionCode::IllegalDataValue => "illegal data value",
            ExceptionCode::ServerDeviceFailure => "server device failure",
            ExceptionCode::Acknowledge => "acknowledge",
            ExceptionCode::ServerDeviceBusy => "server device busy",
            ExceptionCode::MemoryParityError => "memory parity error",
            ExceptionCode::GatewayPathUnavailable => "gateway path unavailable",
            ExceptionCode::GatewayTargetDeviceFailedToRespond => "gateway target device failed to respond",
            ExceptionCode::Custom(_) => "non-standard exception",
        };
        write!(f, "{} ({:02x})", name, self.code())
    }
}

/// Which register table a read addresses: FC03 reads [`Holding`](Self::Holding)
/// registers, FC04 reads [`Input`](Self::Input) registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterKind {
    /// Read/write registers (FC03, FC06, FC16).
    Holding,
    /// Read-only registers (FC04).
    Input,
}

/// The register map behind the protocol, implemented by the board.
///
/// Addresses are the 0-based PDU addresses of *Modbus Application Protocol V1.1b3*, §4.4.
///
/// Any [`ExceptionCode`] a method returns is sent to the master as is: besides 02
/// and 03, [`ServerDeviceFailure`](ExceptionCode::ServerDeviceFailure) (04) when the
/// device cannot do what was asked and [`ServerDeviceBusy`](ExceptionCode::ServerDeviceBusy)
/// (06) when it cannot do it now (counted by the RTU slave's busy counter).
///
/// Reads must not change anything: FC23 reads its read range once before writing,
/// to refuse a bad read range before the write is done.
pub trait RegisterBank {
    /// Fill `out` with `out.len()` consecutive registers starting at `addr`.
    ///
    /// `Err(IllegalDataAddress)` if any address in the range is not readable for `kind`.
    fn read_registers(&mut self, kind: RegisterKind, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode>;

    /// Write `values` to consecutive holding registers from `addr`, atomically: on `Err`
    /// nothing has changed.
    ///
    /// `Err(IllegalDataAddress)` for unknown/read-only addresses, `Err(IllegalDataValue)`
    /// for out-of-range values.
    ///
    /// No time is passed: a write takes effect on the bank's own clock (the board's: the
    /// time of its last poll), whatever clock the transport that carried it runs on.
    fn write_registers(&mut self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode>;

    /// The Read Device Identification objects (FC43 / MEI 14, [`device_id`]): (object
    /// id, value as the bytes sent on the wire, ASCII by convention), **sorted by
    /// object id, each id once**: one table, as the register map is.
    ///
    /// Objects 0x00 VendorName, 0x01 ProductCode and 0x02 MajorMinorRevision are
    /// mandatory: a bank that lacks any of them does not support FC43/14 (exception
    /// 01). 0x03 VendorUrl, 0x04 ProductName, 0x05 ModelName, 0x06
    /// UserApplicationName (regular) and 0x80..=0xFF (extended, private) are
    /// optional. Values longer than [`device_id::MAX_OBJECT_LEN`] bytes are truncated.
    ///
    /// The default has no objects, so FC43/14 answers exception 01.
    fn device_identification(&self) -> &[(u8, &[u8])] {
        &[]
    }
}

/// The register bank the tests run against: 100 holding registers at 0..=99,
/// writable at 0..=49 with values 0..=1000, read-only at 50..=99; input register
/// `n < input_len` reads `0xA000 + n`; device identification from `objects`; with
/// `fail` set, every read and write fails with that exception.
#[cfg(test)]
pub(crate) mod test_bank {
    use super::{ExceptionCode, RegisterBank, RegisterKind};

    #[derive(Debug, Clone)]
    pub struct TestBank {
        pub holding: [u16; 100],
        pub input_len: u16,
        /// Number of successful `write_registers` calls.
        pub writes: usize,
        /// Device identification objects: (object id, value), sorted by id.
        pub objects: &'static [(u8, &'static [u8])],
        /// Make every read and write fail with this exception (04, 06, ...).
        pub fail: Option<ExceptionCode>,
    }

    impl TestBank {
        pub const WRITABLE_END: usize = 50;
        /// Basic objects, ProductName and ModelName; no VendorUrl.
        pub const OBJECTS: &'static [(u8, &'static [u8])] =
            &[(0, b"Test Vendor"), (1, b"TB-100"), (2, b"1.2"), (4, b"Test Bank"), (5, b"TB-100 rev")];

        pub fn new() -> Self {
            TestBank { holding: [0; 100], input_len: 100, writes: 0, objects: Self::OBJECTS, fail: None }
        }
    }

    impl RegisterBank for TestBank {
        fn read_registers(&mut self, kind: RegisterKind, addr: u16, out: &mut [u16]) -> Result<(), ExceptionCode> {
            if let Some(e) = self.fail {
                return Err(e);
            }
            let start = usize::from(addr);
            let end = start + out.len();
            match kind {
                RegisterKind::Holding => {
                    out.copy_from_slice(self.holding.get(start..end).ok_or(ExceptionCode::IllegalDataAddress)?)
                }
                RegisterKind::Input => {
                    if end > usize::from(self.input_len) {
                        return Err(ExceptionCode::IllegalDataAddress);
                    }
                    for (reg, a) in out.iter_mut().zip(addr..) {
                        *reg = 0xA000 + a;
                    }
                }
            }
            Ok(())
        }

        fn write_registers(&mut self, addr: u16, values: &[u16]) -> Result<(), ExceptionCode> {
            if let Some(e) = self.fail {
                return Err(e);
            }
            let start = usize::from(addr);
            let end = start + values.len();
            if end > Self::WRITABLE_END {
                return Err(ExceptionCode::IllegalDataAddress);
            }
            if values.iter().any(|&v| v > 1000) {
                return Err(ExceptionCode::IllegalDataValue);
            }
            self.holding[start..end].copy_from_slice(values);
            self.writes += 1;
            Ok(())
        }

        fn device_identification(&self) -> &[(u8, &[u8])] {
            self.objects
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_code_display() {
        assert_eq!(ExceptionCode::IllegalDataAddress.to_string(), "illegal data address (02)");
        assert_eq!(ExceptionCode::ServerDeviceBusy.code(), 6);
        assert_eq!(ExceptionCode::Custom(0x63).to_string(), "non-standard exception (63)");
    }

    #[test]
    fn exception_codes_round_trip_through_the_wire_value() {
        for code in 0..=u8::MAX {
            assert_eq!(ExceptionCode::from_code(code).code(), code);
        }
        assert_eq!(ExceptionCode::from_code(0x0B), ExceptionCode::GatewayTargetDeviceFailedToRespond);
        assert_eq!(ExceptionCode::from_code(0x07), ExceptionCode::Custom(0x07));
    }
}
