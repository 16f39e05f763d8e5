//! FC08 Diagnostics: the sub-functions a serial-line slave answers.
//!
//! *Modbus Application Protocol V1.1b3*, §6.8 (request `08 | sub-function (2) | data`,
//! the normal response echoes sub-function and data) and §6.8.1 (the sub-functions);
//! *Modbus over Serial Line V1.02*, §6.1 (Appendix A: the counters CPT1..CPT8).
//!
//! This module is the wire format ([`Diagnostic`]: parse, emit, response). The
//! counters and the listen-only mode live in [`super::rtu::RtuSlave`]; the
//! transport-independent [`super::pdu::process_request`] answers only
//! [`Diagnostic::ReturnQueryData`] (there are no serial-line counters behind it)
//! and refuses the other sub-functions with exception 01.
//!
//! | sub | name | request data | response data |
//! |---|---|---|---|
//! | 0x00 | Return Query Data | any | the request data |
//! | 0x01 | Restart Communications Option | `00 00` or `FF 00` | the request data |
//! | 0x04 | Force Listen Only Mode | `00 00` | none: no response |
//! | 0x0A | Clear Counters and Diagnostic Register | `00 00` | `00 00` |
//! | 0x0B..=0x12 | Return ... Count ([`DiagnosticCounter`]) | `00 00` | the 16-bit count |
//!
//! Any other sub-function → exception 01 (illegal function); a supported one with
//! other data → exception 03 (illegal data value): the order of the state diagram
//! of §6.8.

use super::ExceptionCode::{self, IllegalDataValue, IllegalFunction};

/// FC08, Diagnostics (serial line only; §6.8).
pub const DIAGNOSTICS: u8 = 0x08;

/// Sub-function 0x00, Return Query Data.
pub const RETURN_QUERY_DATA: u16 = 0x00;
/// Sub-function 0x01, Restart Communications Option.
pub const RESTART_COMMUNICATIONS: u16 = 0x01;
/// Sub-function 0x04, Force Listen Only Mode.
pub const FORCE_LISTEN_ONLY: u16 = 0x04;
/// Sub-function 0x0A, Clear Counters and Diagnostic Register.
pub const CLEAR_COUNTERS: u16 = 0x0A;

/// Restart Communications Option data that also clears the communications event log.
const CLEAR_EVENT_LOG: [u8; 2] = [0xFF, 0x00];
const ZERO_DATA: [u8; 2] = [0x00, 0x00];

/// The counter an FC08 "Return ... Count" sub-function reads; the discriminant is
/// the sub-function code. Counts are 16 bits on the wire (the low half of the
/// slave's 32-bit counters, i.e. they wrap at 65536 as the spec's counters do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum DiagnosticCounter {
    /// 0x0B, CPT1: CRC-valid frames seen on the bus, for any unit.
    BusMessages = 0x0B,
    /// 0x0C, CPT2: frames with a CRC error (or too short to hold one).
    BusCommunicationErrors = 0x0C,
    /// 0x0D, CPT3: exception responses returned, plus exceptions detected in
    /// broadcast requests (which get no response).
    BusExceptionErrors = 0x0D,
    /// 0x0E, CPT4: frames addressed to this unit, broadcasts included.
    ServerMessages = 0x0E,
    /// 0x0F, CPT5: frames addressed to this unit that got no response
    /// (broadcasts, listen-only mode, Force Listen Only itself).
    ServerNoResponses = 0x0F,
    /// 0x10, CPT6: NAK (exception 07) responses; this slave never sends one, so 0.
    ServerNaks = 0x10,
    /// 0x11, CPT7: exception 06 (server device busy) responses returned.
    ServerBusy = 0x11,
    /// 0x12, CPT8: frames lost to a character overrun (over-long frames, frames
    /// evicted before they were served).
    BusCharacterOverruns = 0x12,
}

impl DiagnosticCounter {
    /// The counter read by sub-function `sub`, if it is one of 0x0B..=0x12.
    pub const fn from_sub_function(sub: u16) -> Option<DiagnosticCounter> {
        Some(match sub {
            0x0B => DiagnosticCounter::BusMessages,
            0x0C => DiagnosticCounter::BusCommunicationErrors,
            0x0D => DiagnosticCounter::BusExceptionErrors,
            0x0E => DiagnosticCounter::ServerMessages,
            0x0F => DiagnosticCounter::ServerNoResponses,
            0x10 => DiagnosticCounter::ServerNaks,
            0x11 => DiagnosticCounter::ServerBusy,
            0x12 => DiagnosticCounter::BusCharacterOverruns,
            _ => return None,
        })
    }

    /// The sub-function code that reads this counter.
    pub const fn sub_function(self) -> u16 {
        self as u16
    }
}

/// A parsed FC08 request: sub-function and validated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagnostic<'a> {
    /// 0x00: echo `data` (any length that fits the PDU, possibly empty).
    ReturnQueryData(&'a [u8]),
    /// 0x01: restart the serial port, clear the counters, leave listen-only mode.
    /// `clear_event_log` is the `FF 00` form (there is no event log here: same effect).
    RestartCommunications { clear_event_log: bool },
    /// 0x04: stop answering until the next Restart Communications Option.
    ForceListenOnly,
    /// 0x0A: clear the counters (and the diagnostic register, which this slave lacks).
    ClearCounters,
    /// 0x0B..=0x12: return one counter.
    ReturnCounter(DiagnosticCounter),
}

impl<'a> Diagnostic<'a> {
    /// Parse the request data after the function code: sub-function (2 bytes,
    /// big-endian) then data.
    ///
    /// Fewer than 2 bytes → [`IllegalDataValue`]; an unsupported sub-function →
    /// [`IllegalFunction`]; a supported one with data other than the table in the
    /// [module docs](self) → [`IllegalDataValue`].
    pub fn parse(data: &'a [u8]) -> Result<Diagnostic<'a>, ExceptionCode> {
        let [s_hi, s_lo, rest @ ..] = data else {
            return Err(IllegalDataValue);
        };
        let sub = u16::from_be_bytes([*s_hi, *s_lo]);
        let diag = match sub {
            RETURN_QUERY_DATA => return Ok(Diagnostic::ReturnQueryData(rest)),
            RESTART_COMMUNICATIONS => {
                return match rest {
                    [0x00, 0x00] => Ok(Diagnostic::RestartCommunications { clear_event_log: false }),
                    [0xFF, 0x00] => Ok(Diagnostic::RestartCommunications { clear_event_log: true }),
                    _ => Err(IllegalDataValue),
                };
            }
            FORCE_LISTEN_ONLY => Diagnostic::ForceListenOnly,
            CLEAR_COUNTERS => Diagnostic::ClearCounters,
            _ => Diagnostic::ReturnCounter(DiagnosticCounter::from_sub_function(sub).ok_or(IllegalFunction)?),
        };
        if rest == ZERO_DATA { Ok(diag) } else { Err(IllegalDataValue) }
    }

    /// The sub-function code.
    pub const fn sub_function(&self) -> u16 {
        match self {
            Diagnostic::ReturnQueryData(_) => RETURN_QUERY_DATA,
            Diagnostic::RestartCommunications { .. } => RESTART_COMMUNICATIONS,
            Diagnostic::ForceListenOnly => FORCE_LISTEN_ONLY,
            Diagnostic::ClearCounters => CLEAR_COUNTERS,
            Diagnostic::ReturnCounter(c) => c.sub_function(),
        }
    }

    /// The request data field as it appears on the wire.
    pub const fn request_data(&self) -> &'a [u8] {
        match *self {
            Diagnostic::ReturnQueryData(data) => data,
            Diagnostic::RestartCommunications { clear_event_log: true } => &CLEAR_EVENT_LOG,
            _ => &ZERO_DATA,
        }
    }

    /// Whether a slave executes this request when it arrives as a broadcast (never
    /// with a response): the sub-functions that change the slave's state, so that a
    /// master can silence (0x04), wake (0x01) or reset the counters (0x0A) of every
    /// slave on the line at once. The sub-functions that only return data are ignored.
    pub const fn acts_on_broadcast(&self) -> bool {
        matches!(
            self,
            Diagnostic::RestartCommunications { .. } | Diagnostic::ForceListenOnly | Diagnostic::ClearCounters
        )
    }

    /// Length of the request PDU (function code included) that [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        self.request_data().len().saturating_add(3)
    }

    /// Client side: write the request PDU (function code included) into the front of
    /// `out`; `None` if it does not fit.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let data = self.request_data();
        emit_pdu(self.sub_function(), data, out)
    }

    /// Server side: the normal response for the data-returning sub-functions: the
    /// sub-function with the echoed request data, or the counter `count` for
    /// [`ReturnCounter`](Self::ReturnCounter) (low 16 bits), or `00 00` for
    /// [`ClearCounters`](Self::ClearCounters). `None` for
    /// [`ForceListenOnly`](Self::ForceListenOnly): it is never answered.
    pub const fn response(&self, count: u32) -> Option<DiagnosticResponse<'a>> {
        let data = match self {
            Diagnostic::ForceListenOnly => return None,
            Diagnostic::ReturnCounter(_) => DiagnosticData::Word(count as u16),
            _ => DiagnosticData::Bytes(self.request_data()),
        };
        Some(DiagnosticResponse { sub_function: self.sub_function(), data })
    }
}

/// The data field of an FC08 response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosticData<'a> {
    /// Bytes as they go on the wire (an echo).
    Bytes(&'a [u8]),
    /// One 16-bit value, big-endian (a count).
    Word(u16),
}

/// An FC08 normal response, `08 | sub-function | data`: the Repr a reply is written from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnosticResponse<'a> {
    pub sub_function: u16,
    pub data: DiagnosticData<'a>,
}

impl DiagnosticResponse<'_> {
    /// A response carrying one count: what the counter sub-functions answer
    /// (and serve's fault counters, sub-functions of its own).
    pub const fn word(sub_function: u16, value: u16) -> DiagnosticResponse<'static> {
        DiagnosticResponse { sub_function, data: DiagnosticData::Word(value) }
    }

    /// Length of the response PDU, function code included.
    pub const fn buffer_len(&self) -> usize {
        let data = match self.data {
            DiagnosticData::Bytes(b) => b.len(),
            DiagnosticData::Word(_) => 2,
        };
        data.saturating_add(3)
    }

    /// Write the response PDU into the front of `out`; `None` if it does not fit.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let word;
        let data = match self.data {
            DiagnosticData::Bytes(b) => b,
            DiagnosticData::Word(w) => {
                word = w.to_be_bytes();
                &word[..]
            }
        };
        emit_pdu(self.sub_function, data, out)
    }
}

/// `08 | sub (big-endian) | data` into the front of `out`.
fn emit_pdu(sub: u16, data: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = data.len().checked_add(3)?;
    let (head, tail) = out.get_mut(..len)?.split_at_mut_checked(3)?;
    let [s_hi, s_lo] = sub.to_be_bytes();
    head.copy_from_slice(&[DIAGNOSTICS, s_hi, s_lo]);
    tail.copy_from_slice(data);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_supported_sub_functions() {
        assert_eq!(Diagnostic::parse(&[0, 0, 0xA5, 0x37]), Ok(Diagnostic::ReturnQueryData(&[0xA5, 0x37])));
        assert_eq!(Diagnostic::parse(&[0, 0]), Ok(Diagnostic::ReturnQueryData(&[])));
        assert_eq!(Diagnostic::parse(&[0, 1, 0, 0]), Ok(Diagnostic::RestartCommunications { clear_event_log: false }));
        assert_eq!(
            Diagnostic::parse(&[0, 1, 0xFF, 0]),
            Ok(Diagnostic::RestartCommunications { clear_event_log: true })
        );
        assert_eq!(Diagnostic::parse(&[0, 4, 0, 0]), Ok(Diagnostic::ForceListenOnly));
        assert_eq!(Diagnostic::parse(&[0, 0x0A, 0, 0]), Ok(Diagnostic::ClearCounters));
        for sub in 0x0Bu8..=0x12 {
            let data = [0, sub, 0, 0];
            let d = Diagnostic::parse(&data).unwrap();
            assert_eq!(d.sub_function(), u16::from(sub));
            assert!(matches!(d, Diagnostic::ReturnCounter(_)));
        }
    }

    #[test]
    fn unsupported_sub_function_is_01_bad_data_is_03() {
        for sub in [0x02u16, 0x03, 0x05, 0x09, 0x13, 0x14, 0x15, 0x0100, 0xFFFF] {
            let [hi, lo] = sub.to_be_bytes();
            assert_eq!(Diagnostic::parse(&[hi, lo, 0, 0]), Err(IllegalFunction), "{sub:#x}");
        }
        assert_eq!(Diagnostic::parse(&[]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0, 1, 0x12, 0x34]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0, 1, 0x00, 0xFF]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0, 4]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0, 0x0B, 0, 0, 0]), Err(IllegalDataValue));
        assert_eq!(Diagnostic::parse(&[0, 0x0A, 0, 1]), Err(IllegalDataValue));
    }

    /// The response PDU of `d` for `count`, written into `out`.
    fn emit_response(d: Diagnostic<'_>, count: u32, out: &mut [u8]) -> Option<usize> {
        let r = d.response(count)?;
        let n = r.emit(out)?;
        assert_eq!(n, r.buffer_len());
        Some(n)
    }

    #[test]
    fn responses() {
        let mut out = [0u8; 8];
        let n = emit_response(Diagnostic::ReturnQueryData(&[0xA5, 0x37]), 9, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x08, 0, 0, 0xA5, 0x37]);
        let n = emit_response(Diagnostic::ReturnCounter(DiagnosticCounter::BusMessages), 0x1_0203, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x08, 0, 0x0B, 0x02, 0x03]);
        let n = emit_response(Diagnostic::RestartCommunications { clear_event_log: true }, 0, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x08, 0, 1, 0xFF, 0]);
        let n = emit_response(Diagnostic::ClearCounters, 7, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x08, 0, 0x0A, 0, 0]);
        assert_eq!(emit_response(Diagnostic::ForceListenOnly, 0, &mut out), None);
        assert_eq!(emit_response(Diagnostic::ClearCounters, 0, &mut out[..4]), None);
        let n = DiagnosticResponse::word(0x0100, 0x4F).emit(&mut out).unwrap();
        assert_eq!(&out[..n], &[0x08, 0x01, 0x00, 0x00, 0x4F]);
    }

    #[test]
    fn emit_parse_round_trip() {
        let mut out = [0u8; 16];
        for d in [
            Diagnostic::ReturnQueryData(&[1, 2, 3]),
            Diagnostic::RestartCommunications { clear_event_log: false },
            Diagnostic::RestartCommunications { clear_event_log: true },
            Diagnostic::ForceListenOnly,
            Diagnostic::ClearCounters,
            Diagnostic::ReturnCounter(DiagnosticCounter::BusCharacterOverruns),
        ] {
            let n = d.emit(&mut out).unwrap();
            assert_eq!(n, d.buffer_len());
            assert_eq!(out[0], DIAGNOSTICS);
            assert_eq!(Diagnostic::parse(&out[1..n]), Ok(d));
        }
    }
}
