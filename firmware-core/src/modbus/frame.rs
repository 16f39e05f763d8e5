//! A zero-copy view of a Modbus RTU ADU, in the style of smoltcp's `wire` module.
//!
//! ```text
//! +---------+----------------------------+---------+---------+
//! | unit id | PDU (function code + data) | CRC lo  | CRC hi  |
//! +---------+----------------------------+---------+---------+
//!    1 byte          1..=253 bytes          1 byte    1 byte
//! ```
//!
//! *Modbus over Serial Line V1.02*, §2.5.1 (RTU frame, max 256 bytes) and §2.5.1.2 (CRC).
//!
//! # Panics
//!
//! None of the methods panic, whatever the buffer length: on a buffer too short
//! for a field, [`Frame::new_unchecked`] accessors return `0` or an empty slice and
//! setters do nothing. Use [`Frame::new_checked`] to reject such buffers up front.

use core::fmt;

use super::MAX_ADU_LEN;
use super::crc::crc16;
use super::pdu::Response;

mod field {
    /// Unit id (slave address) byte.
    pub const UNIT_ID: usize = 0;
    /// First byte of the PDU; the PDU ends where the CRC starts.
    pub const PDU_START: usize = 1;
    /// Length of the trailing CRC.
    pub const CRC_LEN: usize = 2;
}

/// Shortest valid ADU: unit id, function code and CRC.
pub const MIN_FRAME_LEN: usize = field::PDU_START + 1 + field::CRC_LEN;

/// Why a buffer is not a valid RTU frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than [`MIN_FRAME_LEN`] (4) bytes.
    Truncated,
    /// Longer than [`MAX_ADU_LEN`] (256) bytes.
    TooLong,
    /// The trailing CRC does not match the contents.
    BadCrc,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated => write!(f, "truncated frame (< {MIN_FRAME_LEN} bytes)"),
            FrameError::TooLong => write!(f, "frame too long (> {MAX_ADU_LEN} bytes)"),
            FrameError::BadCrc => write!(f, "bad CRC"),
        }
    }
}

/// A read/write wrapper around a Modbus RTU ADU buffer. The whole buffer is the frame.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without any checks.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer, checking its length ([`check_len`](Self::check_len)) and its CRC.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, FrameError> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        if !frame.check_crc() {
            return Err(FrameError::BadCrc);
        }
        Ok(frame)
    }

    /// `Err(Truncated)` below [`MIN_FRAME_LEN`] bytes, `Err(TooLong)` above [`MAX_ADU_LEN`].
    pub fn check_len(&self) -> Result<(), FrameError> {
        let len = self.buffer.as_ref().len();
        if len < MIN_FRAME_LEN {
            Err(FrameError::Truncated)
        } else if len > MAX_ADU_LEN {
            Err(FrameError::TooLong)
        } else {
            Ok(())
        }
    }

    /// Whether the trailing CRC matches the rest of the frame. `false` on a buffer
    /// too short to hold a unit id and a CRC.
    pub fn check_crc(&self) -> bool {
        let data = self.buffer.as_ref();
        data.len() > field::CRC_LEN && crc16(data) == 0
    }

    /// Consume the wrapper, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The unit id (slave address); 0 is broadcast. `0` on an empty buffer.
    pub fn unit_id(&self) -> u8 {
        self.buffer.as_ref().get(field::UNIT_ID).copied().unwrap_or(0)
    }

    /// The PDU: everything between the unit id and the CRC. Empty on a buffer
    /// shorter than [`MIN_FRAME_LEN`].
    pub fn pdu(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = data.len().saturating_sub(field::CRC_LEN);
        data.get(field::PDU_START..end).unwrap_or(&[])
    }

    /// The CRC as transmitted (little-endian in the last two bytes). `0` on a
    /// buffer too short to hold a unit id and a CRC.
    pub fn crc(&self) -> u16 {
        match self.crc_range().and_then(|r| self.buffer.as_ref().get(r)) {
            Some(&[lo, hi]) => u16::from_le_bytes([lo, hi]),
            _ => 0,
        }
    }

    /// Byte range of the CRC, if the buffer holds at least a unit id and a CRC.
    fn crc_range(&self) -> Option<core::ops::Range<usize>> {
        let len = self.buffer.as_ref().len();
        if len > field::CRC_LEN { Some(len - field::CRC_LEN..len) } else { None }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Set the unit id. No effect on an empty buffer.
    pub fn set_unit_id(&mut self, value: u8) {
        if let Some(b) = self.buffer.as_mut().get_mut(field::UNIT_ID) {
            *b = value;
        }
    }

    /// The PDU, mutable. Empty on a buffer shorter than [`MIN_FRAME_LEN`].
    pub fn pdu_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let end = data.len().saturating_sub(field::CRC_LEN);
        data.get_mut(field::PDU_START..end).unwrap_or(&mut [])
    }

    /// Compute the CRC over unit id and PDU and store it in the last two bytes.
    /// No effect on a buffer too short to hold a unit id and a CRC.
    pub fn fill_crc(&mut self) {
        if let Some(range) = self.crc_range() {
            let data = self.buffer.as_mut();
            let crc = crc16(data.get(..range.start).unwrap_or(&[]));
            if let Some(dst) = data.get_mut(range) {
                dst.copy_from_slice(&crc.to_le_bytes());
            }
        }
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Frame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// Write the ADU `unit` + `pdu` + CRC into the front of `out` and return its length.
///
/// `None` (and `out` untouched) if `pdu` is empty, if the ADU would exceed
/// [`MAX_ADU_LEN`], or if it does not fit in `out`.
pub fn emit_frame(unit: u8, pdu: &[u8], out: &mut [u8]) -> Option<usize> {
    emit_with(unit, pdu.len(), out, |dst| {
        let dst = dst.get_mut(..pdu.len())?;
        dst.copy_from_slice(pdu);
        Some(())
    })
}

/// Write the reply ADU `unit` + `response` + CRC into the front of `out` and return its
/// length: every RTU reply, the board's and any a test tool or fault injector makes,
/// goes through here.
///
/// `None` if the ADU would exceed [`MAX_ADU_LEN`], does not fit in `out`, or the
/// response cannot be written ([`Response::emit`]); `out` is unspecified then.
pub fn emit_response(unit: u8, response: &Response<'_>, out: &mut [u8]) -> Option<usize> {
    emit_with(unit, response.buffer_len(), out, |dst| (response.emit(dst)? == dst.len()).then_some(()))
}

/// The one ADU writer: unit id, a PDU of `pdu_len` bytes written by `pdu`, CRC.
fn emit_with(unit: u8, pdu_len: usize, out: &mut [u8], pdu: impl FnOnce(&mut [u8]) -> Option<()>) -> Option<usize> {
    if pdu_len == 0 {
        return None;
    }
    let len = pdu_len.checked_add(field::PDU_START + field::CRC_LEN)?;
    if len > MAX_ADU_LEN {
        return None;
    }
    let mut frame = Frame::new_unchecked(out.get_mut(..len)?);
    pdu(frame.pdu_mut())?;
    frame.set_unit_id(unit);
    frame.fill_crc();
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_REQ: [u8; 8] = [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0x76, 0x87];

    #[test]
    fn parse_valid_frame() {
        let frame = Frame::new_checked(&READ_REQ[..]).unwrap();
        assert_eq!(frame.unit_id(), 0x11);
        assert_eq!(frame.pdu(), &[0x03, 0x00, 0x6B, 0x00, 0x03]);
        assert_eq!(frame.crc(), 0x8776);
        assert_eq!(frame.into_inner(), &READ_REQ[..]);
    }

    #[test]
    fn rejects_bad_frames() {
        assert_eq!(Frame::new_checked(&READ_REQ[..3]), Err(FrameError::Truncated));
        assert_eq!(Frame::new_checked(&[0u8; 257][..]), Err(FrameError::TooLong));
        let mut bad = READ_REQ;
        bad[3] ^= 0x01;
        assert_eq!(Frame::new_checked(&bad[..]), Err(FrameError::BadCrc));
    }

    #[test]
    fn short_buffers_do_not_panic() {
        for len in 0..MIN_FRAME_LEN {
            let mut buf = [0xAAu8; MIN_FRAME_LEN];
            let mut frame = Frame::new_unchecked(&mut buf[..len]);
            assert!(frame.pdu().is_empty());
            assert!(frame.pdu_mut().is_empty());
            frame.set_unit_id(7);
            frame.fill_crc();
            let _ = (frame.unit_id(), frame.crc(), frame.check_crc());
        }
    }

    #[test]
    fn emit_round_trips() {
        let mut out = [0u8; 16];
        let n = emit_frame(0x11, &READ_REQ[1..6], &mut out).unwrap();
        assert_eq!(&out[..n], &READ_REQ);
        assert_eq!(emit_frame(1, &[3; 10], &mut out[..12]), None);
        assert_eq!(emit_frame(1, &[], &mut out), None);
        let mut big = [0u8; 300];
        assert_eq!(emit_frame(1, &[3; 253], &mut big), Some(256));
        assert_eq!(emit_frame(1, &[3; 254], &mut big), None);
    }

    #[test]
    fn responses_are_framed_by_the_same_emitter() {
        use crate::modbus::ExceptionCode;
        let mut out = [0u8; 16];
        let exception = Response::Exception { function: 0x03, code: ExceptionCode::ServerDeviceBusy };
        let n = emit_response(0x11, &exception, &mut out).unwrap();
        let mut by_hand = [0u8; 16];
        let m = emit_frame(0x11, &[0x83, 0x06], &mut by_hand).unwrap();
        assert_eq!(&out[..n], &by_hand[..m]);
        let regs = Response::Registers { function: 0x03, values: &[0x1234] };
        let n = emit_response(1, &regs, &mut out).unwrap();
        assert!(Frame::new_checked(&out[..n]).is_ok());
        assert_eq!(&out[..n - 2], &[1, 0x03, 2, 0x12, 0x34]);
        assert_eq!(emit_response(1, &regs, &mut out[..6]), None);
    }

    #[test]
    fn error_display() {
        assert_eq!(FrameError::BadCrc.to_string(), "bad CRC");
        assert_eq!(FrameError::Truncated.to_string(), "truncated frame (< 4 bytes)");
    }
}
