//! FC43 / MEI type 14 (0x2B / 0x0E): Read Device Identification.
//!
//! *Modbus Application Protocol V1.1b3*, §6.21. Request PDU:
//!
//! ```text
//! 2B | 0E | read device id code (01..=04) | object id
//! ```
//!
//! Response PDU:
//!
//! ```text
//! 2B | 0E | read device id code | conformity level | more follows (00/FF) | next object id
//!    | number of objects | { object id | object length | object value } ...
//! ```
//!
//! The objects come from [`RegisterBank::device_identification`]. Categories: basic
//! 0x00..=0x02 (VendorName, ProductCode, MajorMinorRevision; mandatory), regular
//! 0x03..=0x7F (VendorUrl, ProductName, ModelName, UserApplicationName; optional),
//! extended 0x80..=0xFF (private; optional).
//!
//! * Stream access (codes 01, 02, 03) returns the bank's objects of the category
//!   and the ones below it, from the requested object id on, as many as fit in one
//!   PDU; if more remain, *more follows* is `FF` and *next object id* names the first
//!   one left out (the client asks again from there), else both are `00`. A requested
//!   object id that is not an object of the requested categories restarts the stream
//!   at object 0. A code above the device's conformity level is answered at its
//!   actual level (code 03 on a device without extended objects streams the regular
//!   ones).
//! * Individual access (code 04) returns one object, any category; an object id the
//!   bank does not have → exception 02.
//! * Conformity level: `0x83` (extended, stream and individual access) if the bank
//!   has any extended object, else `0x82` (regular, stream and individual access).
//! * A bank without all three basic objects does not support the function: exception 01,
//!   as for another MEI type. A code outside 01..=04, or a request that is not exactly
//!   4 bytes → exception 03.
//! * An object value longer than fits in a PDU next to the header (244 bytes) is
//!   truncated to fit, so that every object can be read.

use super::ExceptionCode::{self, IllegalDataAddress, IllegalDataValue, IllegalFunction, ServerDeviceFailure};
use super::{MAX_PDU_LEN, RegisterBank};

/// FC43, Encapsulated Interface Transport (§6.19).
pub const ENCAPSULATED_INTERFACE_TRANSPORT: u8 = 0x2B;
/// MEI type 14: Read Device Identification (§6.21).
pub const MEI_READ_DEVICE_ID: u8 = 0x0E;

/// Conformity level: regular identification, stream and individual access.
pub const CONFORMITY_REGULAR: u8 = 0x82;
/// Conformity level: extended identification, stream and individual access.
pub const CONFORMITY_EXTENDED: u8 = 0x83;

/// Response bytes before the first object: FC, MEI type, code, conformity level,
/// more follows, next object id, number of objects.
const HEADER_LEN: usize = 7;
/// Bytes before an object's value: object id, object length.
const OBJECT_HEADER_LEN: usize = 2;
/// Longest object value sent: what fits in a [`MAX_PDU_LEN`] response next to the
/// header. Longer values are truncated.
pub const MAX_OBJECT_LEN: usize = MAX_PDU_LEN - HEADER_LEN - OBJECT_HEADER_LEN;

/// More follows: `FF` if objects remain for another request, else `00`.
const MORE_FOLLOWS: u8 = 0xFF;

/// Object ids (§6.21, table of objects).
pub mod object {
    /// Basic, mandatory: the vendor's name.
    pub const VENDOR_NAME: u8 = 0x00;
    /// Basic, mandatory: the product code.
    pub const PRODUCT_CODE: u8 = 0x01;
    /// Basic, mandatory: the firmware revision, "major.minor".
    pub const MAJOR_MINOR_REVISION: u8 = 0x02;
    /// Regular, optional.
    pub const VENDOR_URL: u8 = 0x03;
    /// Regular, optional.
    pub const PRODUCT_NAME: u8 = 0x04;
    /// Regular, optional.
    pub const MODEL_NAME: u8 = 0x05;
    /// Regular, optional.
    pub const USER_APPLICATION_NAME: u8 = 0x06;
    /// Last object of the basic category.
    pub const LAST_BASIC: u8 = 0x02;
    /// Last object of the regular category (0x07..=0x7F are reserved).
    pub const LAST_REGULAR: u8 = 0x7F;
    /// First object of the extended (private) category.
    pub const FIRST_EXTENDED: u8 = 0x80;
}

/// The "read device id code" of a request: which access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReadDeviceIdCode {
    /// 01: basic identification, stream access.
    Basic = 0x01,
    /// 02: regular identification, stream access.
    Regular = 0x02,
    /// 03: extended identification, stream access.
    Extended = 0x03,
    /// 04: one specific object, individual access.
    Individual = 0x04,
}

impl ReadDeviceIdCode {
    /// The code for its wire value, if valid.
    pub const fn from_u8(code: u8) -> Option<ReadDeviceIdCode> {
        Some(match code {
            0x01 => ReadDeviceIdCode::Basic,
            0x02 => ReadDeviceIdCode::Regular,
            0x03 => ReadDeviceIdCode::Extended,
            0x04 => ReadDeviceIdCode::Individual,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The last object id a stream access with this code covers; `None` for
    /// individual access.
    pub const fn last_object(self) -> Option<u8> {
        match self {
            ReadDeviceIdCode::Basic => Some(object::LAST_BASIC),
            ReadDeviceIdCode::Regular => Some(object::LAST_REGULAR),
            ReadDeviceIdCode::Extended => Some(u8::MAX),
            ReadDeviceIdCode::Individual => None,
        }
    }
}

/// A parsed Read Device Identification request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadDeviceId {
    pub code: ReadDeviceIdCode,
    /// Stream access: the first object wanted (0 to start); individual access: the object.
    pub object_id: u8,
}

impl ReadDeviceId {
    /// Length of the request PDU (function code included).
    pub const BUFFER_LEN: usize = 4;

    /// Parse the request data after the function code: MEI type, code, object id.
    ///
    /// No data → [`IllegalDataValue`]; a MEI type other than 14 → [`IllegalFunction`];
    /// then anything but exactly code + object id, or a code outside 01..=04 →
    /// [`IllegalDataValue`].
    pub fn parse(data: &[u8]) -> Result<ReadDeviceId, ExceptionCode> {
        let [mei, rest @ ..] = data else {
            return Err(IllegalDataValue);
        };
        if *mei != MEI_READ_DEVICE_ID {
            return Err(IllegalFunction);
        }
        let &[code, object_id] = rest else {
            return Err(IllegalDataValue);
        };
        let code = ReadDeviceIdCode::from_u8(code).ok_or(IllegalDataValue)?;
        Ok(ReadDeviceId { code, object_id })
    }

    /// Client side: write the request PDU into the front of `out`; `None` if it does not fit.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let out = out.get_mut(..Self::BUFFER_LEN)?;
        out.copy_from_slice(&[ENCAPSULATED_INTERFACE_TRANSPORT, MEI_READ_DEVICE_ID, self.code.code(), self.object_id]);
        Some(Self::BUFFER_LEN)
    }

    /// Server side: the response to this request from `bank`'s objects, laid out for a
    /// response PDU of at most `capacity` bytes ([`MAX_PDU_LEN`] gives every object a
    /// place; less only truncates harder); see the [module docs](self).
    ///
    /// `Err(IllegalFunction)` if the bank lacks a basic object, `Err(IllegalDataAddress)`
    /// for an individual access to an object the bank does not have,
    /// `Err(ServerDeviceFailure)` if `capacity` cannot hold a header and one object header.
    pub fn response<'b, B: RegisterBank + ?Sized>(
        &self,
        bank: &'b B,
        capacity: usize,
    ) -> Result<DeviceIdResponse<'b>, ExceptionCode> {
        let table = bank.device_identification();
        let has = |id: u8| table.iter().any(|(i, _)| *i == id);
        if !(object::VENDOR_NAME..=object::LAST_BASIC).all(has) {
            return Err(IllegalFunction);
        }
        let extended = table.iter().any(|(id, _)| *id >= object::FIRST_EXTENDED);
        let conformity = if extended { CONFORMITY_EXTENDED } else { CONFORMITY_REGULAR };
        let room = capacity.checked_sub(HEADER_LEN).filter(|r| *r >= OBJECT_HEADER_LEN).ok_or(ServerDeviceFailure)?;
        let (first, last) = match self.code.last_object() {
            None if has(self.object_id) => (self.object_id, self.object_id),
            None => return Err(IllegalDataAddress),
            Some(last) => {
                (if self.object_id <= last && has(self.object_id) { self.object_id } else { object::VENDOR_NAME }, last)
            }
        };
        let start = table.iter().position(|(id, _)| *id >= first).unwrap_or(table.len());
        let candidates = table.get(start..).unwrap_or(&[]);
        let mut r = DeviceIdResponse { code: self.code, conformity, objects: &[], first_len: 0, next: None };
        let (mut used, mut count) = (0, 0);
        for &(id, value) in candidates.iter().take_while(|(id, _)| *id <= last) {
            let free = room - used;
            let fits = free.checked_sub(OBJECT_HEADER_LEN).map(|f| f.min(usize::from(u8::MAX)));
            // The first object always goes in (truncated if need be), so a client
            // following `next object id` always makes progress.
            let len = match fits {
                Some(fits) if count == 0 => value.len().min(fits),
                Some(fits) if value.len() <= fits => value.len(),
                _ => {
                    r.next = Some(id);
                    break;
                }
            };
            if count == 0 {
                r.first_len = len;
            }
            used += OBJECT_HEADER_LEN + len;
            count += 1;
        }
        r.objects = candidates.get(..count).unwrap_or(&[]);
        Ok(r)
    }
}

/// The response to a [`ReadDeviceId`] request: the Repr a reply is written from.
/// Its objects are a run of the bank's table, the first one cut to `first_len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceIdResponse<'b> {
    code: ReadDeviceIdCode,
    conformity: u8,
    objects: &'b [(u8, &'b [u8])],
    /// Length of the first object's value as sent (it may be truncated).
    first_len: usize,
    /// The first object left out, if any (more follows).
    next: Option<u8>,
}

impl DeviceIdResponse<'_> {
    /// The objects as sent: (object id, value).
    fn sent(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.objects.iter().enumerate().map(|(i, &(id, value))| {
            let value = if i == 0 { value.get(..self.first_len).unwrap_or(value) } else { value };
            (id, value)
        })
    }

    /// Length of the response PDU, function code included.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.sent().map(|(_, v)| OBJECT_HEADER_LEN + v.len()).sum::<usize>()
    }

    /// Write the response PDU into the front of `out`; `None` if it does not fit.
    pub fn emit(&self, out: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let (head, mut body) = out.get_mut(..len)?.split_at_mut_checked(HEADER_LEN)?;
        let (more, next_id) = match self.next {
            Some(id) => (MORE_FOLLOWS, id),
            None => (0, 0),
        };
        let count = u8::try_from(self.objects.len()).ok()?;
        head.copy_from_slice(&[
            ENCAPSULATED_INTERFACE_TRANSPORT,
            MEI_READ_DEVICE_ID,
            self.code.code(),
            self.conformity,
            more,
            next_id,
            count,
        ]);
        for (id, value) in self.sent() {
            let (obj_head, rest) = body.split_at_mut_checked(OBJECT_HEADER_LEN)?;
            let (obj_value, rest) = rest.split_at_mut_checked(value.len())?;
            obj_head.copy_from_slice(&[id, u8::try_from(value.len()).ok()?]);
            obj_value.copy_from_slice(value);
            body = rest;
        }
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modbus::test_bank::TestBank;

    fn respond(bank: &TestBank, code: u8, object_id: u8) -> Result<Vec<u8>, ExceptionCode> {
        let req = ReadDeviceId::parse(&[MEI_READ_DEVICE_ID, code, object_id])?;
        let mut out = [0u8; 253];
        let n = emit(&req, bank, &mut out)?;
        Ok(out[..n].to_vec())
    }

    /// The response laid out for `out` and written into it.
    fn emit(req: &ReadDeviceId, bank: &TestBank, out: &mut [u8]) -> Result<usize, ExceptionCode> {
        let r = req.response(bank, out.len())?;
        let n = r.emit(out).expect("the response fits the room it was laid out for");
        assert_eq!(n, r.buffer_len());
        Ok(n)
    }

    /// Splits a response into its header fields and its objects.
    fn objects(resp: &[u8]) -> (u8, u8, u8, Vec<(u8, Vec<u8>)>) {
        let (conformity, more, next, count) = (resp[3], resp[4], resp[5], resp[6]);
        let mut objs = Vec::new();
        let mut rest = &resp[7..];
        while let [id, len, tail @ ..] = rest {
            let len = usize::from(*len);
            objs.push((*id, tail[..len].to_vec()));
            rest = &tail[len..];
        }
        assert_eq!(usize::from(count), objs.len());
        (conformity, more, next, objs)
    }

    #[test]
    fn basic_stream_spec_layout() {
        let bank = TestBank::new();
        let resp = respond(&bank, 0x01, 0x00).unwrap();
        assert_eq!(&resp[..7], &[0x2B, 0x0E, 0x01, 0x82, 0x00, 0x00, 0x03]);
        let (_, _, _, objs) = objects(&resp);
        let ids: Vec<u8> = objs.iter().map(|o| o.0).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(objs[0].1, b"Test Vendor");
        assert_eq!(objs[2].1, b"1.2");
    }

    #[test]
    fn regular_stream_and_restart_on_unknown_object() {
        let bank = TestBank::new();
        let all = respond(&bank, 0x02, 0x00).unwrap();
        let (conformity, more, next, objs) = objects(&all);
        assert_eq!((conformity, more, next), (0x82, 0, 0));
        assert_eq!(objs.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 1, 2, 4, 5]);
        // From object 4 on.
        let (_, _, _, objs) = objects(&respond(&bank, 0x02, 0x04).unwrap());
        assert_eq!(objs.iter().map(|o| o.0).collect::<Vec<_>>(), [4, 5]);
        // Unknown object 3 (no VendorUrl), 0x77 and 0xFF: restart at 0.
        for id in [0x03, 0x77, 0xFF] {
            assert_eq!(respond(&bank, 0x02, id).unwrap(), all, "{id:#x}");
        }
        // Object 4 is not a basic object: basic stream restarts at 0.
        assert_eq!(respond(&bank, 0x01, 0x04).unwrap(), respond(&bank, 0x01, 0).unwrap());
        // Extended asked of a regular device: answered at the regular level.
        let ext = respond(&bank, 0x03, 0x00).unwrap();
        assert_eq!(ext[2], 0x03);
        assert_eq!(&ext[3..], &all[3..]);
    }

    #[test]
    fn individual_access() {
        let bank = TestBank::new();
        let resp = respond(&bank, 0x04, 0x05).unwrap();
        let mut expected = vec![0x2B, 0x0E, 0x04, 0x82, 0x00, 0x00, 0x01, 0x05, 10];
        expected.extend_from_slice(b"TB-100 rev");
        assert_eq!(resp, expected);
        assert_eq!(respond(&bank, 0x04, 0x01).unwrap()[7], 0x01);
        assert_eq!(respond(&bank, 0x04, 0x03), Err(IllegalDataAddress));
        assert_eq!(respond(&bank, 0x04, 0x80), Err(IllegalDataAddress));
    }

    #[test]
    fn bad_requests() {
        let bank = TestBank::new();
        assert_eq!(respond(&bank, 0x00, 0), Err(IllegalDataValue));
        assert_eq!(respond(&bank, 0x05, 0), Err(IllegalDataValue));
        assert_eq!(ReadDeviceId::parse(&[]), Err(IllegalDataValue));
        assert_eq!(ReadDeviceId::parse(&[0x0D, 1, 0]), Err(IllegalFunction));
        assert_eq!(ReadDeviceId::parse(&[0x0E, 1]), Err(IllegalDataValue));
        assert_eq!(ReadDeviceId::parse(&[0x0E, 1, 0, 0]), Err(IllegalDataValue));
        // A bank without identification does not support the function.
        let mut bank = TestBank::new();
        bank.objects = &[(0, b"V"), (1, b"P")];
        assert_eq!(respond(&bank, 0x01, 0), Err(IllegalFunction));
        assert_eq!(respond(&bank, 0x04, 0), Err(IllegalFunction));
    }

    #[test]
    fn more_follows_when_objects_do_not_fit() {
        static LONG: [u8; 200] = [b'x'; 200];
        static HUGE: [u8; 300] = [b'y'; 300];
        static OBJECTS: &[(u8, &[u8])] =
            &[(0, b"V"), (1, b"P"), (2, b"1.0"), (0x04, &LONG), (0x05, &LONG), (0x81, &HUGE), (0x90, b"z")];
        let mut bank = TestBank::new();
        bank.objects = OBJECTS;
        // Regular stream: 0, 1, 2, 4 fit; 5 does not.
        let (conformity, more, next, objs) = objects(&respond(&bank, 0x02, 0).unwrap());
        assert_eq!((conformity, more, next), (0x83, 0xFF, 0x05));
        assert_eq!(objs.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 1, 2, 4]);
        // Follow up from 5: the rest of the regular category.
        let (_, more, next, objs) = objects(&respond(&bank, 0x02, 0x05).unwrap());
        assert_eq!((more, next), (0, 0));
        assert_eq!(objs.iter().map(|o| o.0).collect::<Vec<_>>(), [5]);
        // Extended stream: 5 alone, then 0x81 (truncated to 244 bytes) alone, then 0x90.
        let (_, more, next, _) = objects(&respond(&bank, 0x03, 0x05).unwrap());
        assert_eq!((more, next), (0xFF, 0x81));
        let resp = respond(&bank, 0x03, 0x81).unwrap();
        assert_eq!(resp.len(), 253);
        let (_, more, next, objs) = objects(&resp);
        assert_eq!((more, next), (0xFF, 0x90));
        assert_eq!(objs, [(0x81, vec![b'y'; MAX_OBJECT_LEN])]);
        let (_, more, next, objs) = objects(&respond(&bank, 0x03, 0x90).unwrap());
        assert_eq!((more, next, objs), (0, 0, vec![(0x90, b"z".to_vec())]));
        // Individual access truncates too.
        let (_, more, _, objs) = objects(&respond(&bank, 0x04, 0x81).unwrap());
        assert_eq!((more, objs[0].1.len()), (0, MAX_OBJECT_LEN));
    }

    #[test]
    fn small_buffers_do_not_panic() {
        let bank = TestBank::new();
        let req = ReadDeviceId { code: ReadDeviceIdCode::Regular, object_id: 0 };
        for len in 0..40 {
            let mut out = vec![0u8; len];
            match emit(&req, &bank, &mut out) {
                Ok(n) => {
                    assert!(n <= len);
                    let (_, more, next, objs) = objects(&out[..n]);
                    assert!(!objs.is_empty());
                    assert!(more == 0 || next > objs.last().unwrap().0);
                }
                Err(e) => assert_eq!((e, len < 9), (ServerDeviceFailure, true)),
            }
        }
    }

    #[test]
    fn emit_parse_round_trip() {
        let mut out = [0u8; 4];
        let req = ReadDeviceId { code: ReadDeviceIdCode::Extended, object_id: 0x80 };
        assert_eq!(req.emit(&mut out), Some(4));
        assert_eq!(out, [0x2B, 0x0E, 0x03, 0x80]);
        assert_eq!(ReadDeviceId::parse(&out[1..]), Ok(req));
        assert_eq!(req.emit(&mut out[..3]), None);
    }
}
