//! Modbus CRC-16; *Modbus over Serial Line V1.02*, §2.5.1.2 and §6.2.2 (Appendix B).
//!
//! Polynomial 0x8005 processed LSB-first (reflected: 0xA001), initial value 0xFFFF,
//! no final XOR (the "CRC-16/MODBUS" of the CRC catalogues). On the wire the CRC
//! follows the PDU **low byte first**, i.e. `crc16(..).to_le_bytes()`.

/// Byte-wise lookup table for the reflected polynomial 0xA001, built at compile time.
const TABLE: [u16; 256] = build_table();

const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The Modbus CRC-16 of `data`. Append it as `crc16(data).to_le_bytes()`.
///
/// A whole ADU including its trailing CRC checks to zero: `crc16(adu) == 0`.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0xFFFF, |crc, &byte| {
        // `u8 as usize` is always < 256, so the lookup cannot go out of bounds.
        (crc >> 8) ^ TABLE[usize::from((crc as u8) ^ byte)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bit-serial reference implementation, straight from the spec's flow chart.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = 0xFFFFu16;
        for &b in data {
            crc ^= u16::from(b);
            for _ in 0..8 {
                let lsb = crc & 1;
                crc >>= 1;
                if lsb != 0 {
                    crc ^= 0xA001;
                }
            }
        }
        crc
    }

    #[test]
    fn known_vectors() {
        let cases: [(&[u8], [u8; 2]); 3] = [
            (&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A], [0xC5, 0xCD]),
            (&[0x01, 0x04, 0x00, 0x00, 0x00, 0x01], [0x31, 0xCA]),
            (&[0x11, 0x03, 0x00, 0x6B, 0x00, 0x03], [0x76, 0x87]),
        ];
        for (data, wire) in cases {
            assert_eq!(crc16(data).to_le_bytes(), wire, "{data:02x?}");
        }
        // CRC catalogue check value for CRC-16/MODBUS.
        assert_eq!(crc16(b"123456789"), 0x4B37);
        assert_eq!(crc16(&[]), 0xFFFF);
    }

    #[test]
    fn adu_with_crc_checks_to_zero() {
        let mut adu = [0x11, 0x03, 0x00, 0x6B, 0x00, 0x03, 0, 0];
        let [lo, hi] = crc16(&adu[..6]).to_le_bytes();
        adu[6] = lo;
        adu[7] = hi;
        assert_eq!(crc16(&adu), 0);
    }

    proptest::proptest! {
        #[test]
        fn table_matches_bitwise(data in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            proptest::prop_assert_eq!(crc16(&data), crc16_bitwise(&data));
        }
    }
}
