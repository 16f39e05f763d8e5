//! What passes from the models to the firmware: the board variant of a model
//! variant, the measurement chain's block of ADC codes as the firmware's
//! [`CodeSums`], and the production line's calibration computed with the
//! firmware's own integer arithmetic ([`FirmwareReadout`],
//! [`production_calibrated`]).
//!
//! The engine calls it (`engine.rs`), and so does `smartpro-sim accuracy`
//! (`cmd/accuracy.rs`): the line that calibrates a board in a scenario is the
//! line that Monte Carlo judges.

use firmware_core::board::CodeSums;
use firmware_core::measure;
use firmware_core::settings::{Calibration, Settings};
use models::accuracy::{AccuracyConfig, LineMeasurement, Readout, line_measurement};
use models::chain::{BlockSums, ChainParams, MeasurementChain};
use models::rng::SeedStreams;
use models::variant::Variant;

/// The stream the production line's reference deviations are drawn from.
const LINE_STREAM: &str = "line";

/// The firmware's variant for a model variant.
pub fn board_variant(v: Variant) -> firmware_core::Variant {
    match v {
        Variant::V12 => firmware_core::Variant::V12,
        Variant::V24 => firmware_core::Variant::V24,
        Variant::V48 => firmware_core::Variant::V48,
    }
}

/// The chain's block of conversions as the firmware's ADC interrupt hands it over.
#[inline]
pub fn code_sums(block: &BlockSums) -> CodeSums {
    CodeSums {
        conversions: block.conversions,
        current_code_sum: block.current_code_sum,
        voltage_code_sum: block.voltage_code_sum,
    }
}

/// The codes of a block of one conversion (the board's first reading at boot):
/// (current code, voltage code), each clamped to the ADC register's `i32`.
pub fn single_conversion_codes(block: &BlockSums) -> (i32, i32) {
    let code = |sum: i64| sum.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    (code(block.current_code_sum), code(block.voltage_code_sum))
}

/// The board firmware's readout and calibration arithmetic.
#[derive(Debug, Clone, Copy)]
pub struct FirmwareReadout;

impl Readout for FirmwareReadout {
    type Calibration = Calibration;

    /// What the line writes to the calibration registers: the offset as a
    /// whole code, the gains in pA and pV per code.
    fn calibrate(&self, line: &LineMeasurement) -> Calibration {
        let offset = line.zero_current_code.round() as i32;
        let span = line.ref_current_code - f64::from(offset);
        let gain_pa = (line.ref_current_a * 1e12 / span).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        let gain_pv =
            (line.ref_voltage_v * 1e12 / line.ref_voltage_code).round().clamp(0.0, f64::from(u32::MAX)) as u32;
        Calibration {
            current_offset_code: offset,
            current_gain_pa_per_code: gain_pa,
            voltage_gain_pv_per_code: gain_pv,
            ..Calibration::nominal(board_variant(line.variant))
        }
    }

    fn current_a(&self, code: i32, cal: &Calibration, board_temp_c: f64) -> f64 {
        let temp_dc = (board_temp_c * 10.0).round() as i16;
        f64::from(measure::current_ua(code, cal, temp_dc)) * 1e-6
    }

    fn voltage_v(&self, code: i32, cal: &Calibration) -> f64 {
        f64::from(measure::voltage_uv(code, cal)) * 1e-6
    }
}

/// The settings of a board as it leaves the production line: the defaults,
/// with the current offset, the current gain and the voltage gain calibrated
/// at 25 °C on this unit's drawn component tolerances, exactly as
/// `smartpro-sim accuracy` calibrates its boards (`models::accuracy`'s line,
/// the firmware's arithmetic). `streams` are the unit's (the scenario's seed):
/// the same unit as the engine's chain. The line cannot see the deliberate
/// defects of `[chain.injected]`: they are added after calibration, so an
/// injected current offset or voltage gain error survives it.
pub fn production_calibrated(chain: &ChainParams, variant: Variant, seed: u64, streams: &SeedStreams) -> Settings {
    let as_built = ChainParams { injected: Default::default(), ..*chain };
    let unit = MeasurementChain::new(&as_built, variant, streams);
    let line = AccuracyConfig::datasheet(variant, 1, seed);
    let measured = line_measurement(&line, &unit, &mut streams.stream(LINE_STREAM));
    let calibration = FirmwareReadout.calibrate(&measured);
    Settings { calibration, ..Settings::defaults(board_variant(variant)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::accuracy::{self, FloatReadout};

    #[test]
    fn firmware_and_float_readouts_agree() {
        // The board's integer arithmetic and the models' float reference
        // give the same errors to within a few codes (60 µA each).
        for v in Variant::ALL {
            let config = AccuracyConfig::datasheet(v, 20, 3);
            let fw = accuracy::run(&config, &FirmwareReadout);
            let fl = accuracy::run(&config, &FloatReadout);
            for (a, b) in fw.rows.iter().zip(&fl.rows) {
                assert!((a.current_total.worst - b.current_total.worst).abs() < 1e-4, "{a:?} {b:?}");
                assert!((a.voltage_total.worst - b.voltage_total.worst).abs() < 1e-4, "{a:?} {b:?}");
            }
            // At steady temperatures every board is within the datasheet (after a soak, not all: docs/models.md).
            assert!(fw.rows.iter().filter(|r| r.condition == 0).all(|r| r.within == 20), "{}", fw.table());
        }
    }

    #[test]
    fn a_block_of_one_conversion_is_its_codes_clamped() {
        let block = BlockSums { conversions: 1, current_code_sum: -5, voltage_code_sum: i64::MAX };
        assert_eq!(single_conversion_codes(&block), (-5, i32::MAX));
        let sums = code_sums(&block);
        assert_eq!((sums.conversions, sums.current_code_sum, sums.voltage_code_sum), (1, -5, i64::MAX));
    }
}
