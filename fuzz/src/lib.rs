//! What the fuzz targets share: reading structured choices out of the fuzzer's
//! bytes, and the boards they run against. See docs/reliability.md.

use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::{Board, Settings, Variant};

/// The fuzzer's bytes, taken from the front; past the end every read is 0, so
/// every input, however short, is a complete run.
#[derive(Debug)]
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    /// Up to `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.data.split_at(n.min(self.data.len()));
        self.data = b;
        a
    }
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// One of the three variants, by a byte.
pub fn variant(b: u8) -> Variant {
    match b % 3 {
        0 => Variant::V12,
        1 => Variant::V24,
        _ => Variant::V48,
    }
}

/// A full board of `variant` with its factory settings, as the twin builds it.
pub fn board(variant: Variant, rtu: RtuConfig) -> Board {
    match Board::new(variant, Settings::defaults(variant), 0x0209_0001, rtu) {
        Ok(b) => b,
        Err(e) => panic!("the factory settings of {variant:?} are refused: {e:?}"),
    }
}
