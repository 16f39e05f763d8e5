//! Serial line settings as command-line values: one parser each for the baud
//! rate, parity, data bits, stop bits and Modbus unit id, and for a session's
//! `--duration`, shared by `smartpro-sim serve`, `bench-bus` and every
//! `hil-rig` command that opens a port, so all accept and refuse the same
//! values. The parity is firmware-core's [`Parity`] (the RTU slave's own),
//! re-exported here.
//!
//! Where a value may also come from the environment (`hil-rig`'s `HIL_RIG_*`,
//! `serve`'s `SMARTPRO_SIM_*`), the variable goes through the same parser.

use clap::builder::{PossibleValuesParser, TypedValueParser};

pub use firmware_core::modbus::rtu::Parity;

/// Baud rates accepted, bit/s: the slowest rate a UART is set to (50) to 4 Mbit/s (the fastest
/// USB–RS485 adapters).
const BAUD_RANGE: std::ops::RangeInclusive<i64> = 50..=4_000_000;

/// `--baud`: a whole number within `BAUD_RANGE` (50 to 4 000 000).
pub fn baud_parser() -> impl TypedValueParser<Value = u32> {
    clap::value_parser!(u32).range(BAUD_RANGE)
}

/// `--parity none|even|odd`.
pub fn parity_parser() -> impl TypedValueParser<Value = Parity> {
    PossibleValuesParser::new(["none", "even", "odd"]).map(|s| match s.as_str() {
        "none" => Parity::None,
        "odd" => Parity::Odd,
        _ => Parity::Even,
    })
}

/// `--data-bits 7|8` (Modbus RTU needs 8; 7 only changes the character time).
pub fn data_bits_parser() -> impl TypedValueParser<Value = u8> {
    clap::value_parser!(u8).range(7..=8)
}

/// `--stop-bits 1|2`.
pub fn stop_bits_parser() -> impl TypedValueParser<Value = u8> {
    clap::value_parser!(u8).range(1..=2)
}

/// Modbus unit (slave) ids a device may have: 1 to 247 (0 is broadcast, 248–255 reserved;
/// Modbus over Serial Line v1.02, 2.2).
const UNIT_RANGE: std::ops::RangeInclusive<i64> = 1..=247;

/// `--unit ID` (or each id of `--units ID,...`): 1 to 247.
pub fn unit_parser() -> impl TypedValueParser<Value = u8> {
    clap::value_parser!(u8).range(UNIT_RANGE)
}

/// `--duration <S>`: a positive, finite number of seconds (fractions allowed) that a
/// [`std::time::Duration`] can hold.
pub fn duration_parser() -> impl TypedValueParser<Value = f64> {
    clap::builder::NonEmptyStringValueParser::new().try_map(|s: String| parse_seconds(&s))
}

/// [`duration_parser`]'s check.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && std::time::Duration::try_from_secs_f64(v).is_ok() => Ok(v),
        Ok(_) => Err(format!("{s:?} must be a positive number of seconds")),
        Err(_) => Err(format!("{s:?} is not a number of seconds")),
    }
}

/// The parity as a line mode writes it: `N`, `E` or `O`.
fn parity_letter(p: Parity) -> char {
    match p {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    }
}

/// A line mode as usually written: `19200 8E1`.
pub fn mode(baud: u32, data_bits: u8, parity: Parity, stop_bits: u8) -> String {
    format!("{baud} {data_bits}{}{stop_bits}", parity_letter(parity))
}

/// A serial port builder with these settings (data bits other than 7 are 8, stop bits other than 2 are 1).
pub fn port_builder(
    path: &str,
    baud: u32,
    data_bits: u8,
    parity: Parity,
    stop_bits: u8,
) -> tokio_serial::SerialPortBuilder {
    tokio_serial::new(path, baud)
        .data_bits(if data_bits == 7 { tokio_serial::DataBits::Seven } else { tokio_serial::DataBits::Eight })
        .parity(match parity {
            Parity::None => tokio_serial::Parity::None,
            Parity::Even => tokio_serial::Parity::Even,
            Parity::Odd => tokio_serial::Parity::Odd,
        })
        .stop_bits(if stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Line {
        #[arg(long, default_value_t = 19_200, value_parser = baud_parser())]
        baud: u32,
        #[arg(long, default_value = "even", value_parser = parity_parser())]
        parity: Parity,
        #[arg(long, default_value_t = 8, value_parser = data_bits_parser())]
        data_bits: u8,
        #[arg(long, default_value_t = 1, value_parser = stop_bits_parser())]
        stop_bits: u8,
        #[arg(long, default_value_t = 1, value_parser = unit_parser())]
        unit: u8,
        #[arg(long, value_parser = duration_parser())]
        duration: Option<f64>,
    }

    fn parse(args: &[&str]) -> Result<Line, clap::Error> {
        use clap::Parser;
        Line::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
    }

    /// Issue 14: one parser per serial setting, the same for `serve` and `hil-rig`.
    #[test]
    fn issue_14_serial_settings_parse_and_refuse_alike() {
        let l = parse(&[]).unwrap();
        assert_eq!((l.baud, l.parity, l.data_bits, l.stop_bits), (19_200, Parity::Even, 8, 1));
        assert_eq!(mode(l.baud, l.data_bits, l.parity, l.stop_bits), "19200 8E1");
        let l = parse(&["--baud", "9600", "--parity", "none", "--stop-bits", "2"]).unwrap();
        assert_eq!(mode(l.baud, l.data_bits, l.parity, l.stop_bits), "9600 8N2");
        assert_eq!(parse(&["--parity", "odd"]).unwrap().parity, Parity::Odd);
        for bad in [
            &["--parity", "mark"][..],
            &["--parity", "Even"],
            &["--stop-bits", "3"],
            &["--stop-bits", "0"],
            &["--data-bits", "9"],
            &["--baud", "49"],
            &["--baud", "4000001"],
            &["--unit", "0"],
            &["--unit", "248"],
            &["--duration", "0"],
            &["--duration", "-1"],
            &["--duration", "inf"],
            &["--duration", "1e30"],
            &["--duration", "ten"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let l = parse(&["--unit", "247", "--duration", "2.5"]).unwrap();
        assert_eq!((l.unit, l.duration), (247, Some(2.5)));
        let e = parse(&["--duration", "0"]).unwrap_err().to_string();
        assert!(e.contains("positive number of seconds"), "{e}");
        let help = parse(&["--parity", "x"]).unwrap_err().to_string();
        assert!(help.contains("none") && help.contains("even") && help.contains("odd"), "{help}");
    }
}
