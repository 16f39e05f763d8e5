//! `smartpro-sim accuracy`: Monte Carlo of the measurement chain against the
//! datasheet's accuracy table.
//!
//! The boards are drawn by `models::accuracy`; their codes are turned into
//! readings — and the production line's calibration into the registers the
//! board stores — with the firmware's own integer arithmetic
//! (`firmware_core::measure`, `firmware_core::settings::Calibration`), so
//! the numbers are the board's.

use std::path::PathBuf;

use firmware_core::measure;
use firmware_core::settings::Calibration;
use models::accuracy::{self, AccuracyConfig, LineMeasurement, Readout};
use models::chain::ChainParams;
use models::variant::Variant;

use super::exit;
use crate::engine::board_variant;

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Boards to simulate (at least 200 for a datasheet verdict).
    #[arg(long, default_value_t = 1000)]
    pub boards: usize,
    /// Variant: 12, 24 or 48 (default: all three).
    #[arg(long)]
    pub variant: Option<Variant>,
    /// Seed of the Monte Carlo.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reference current of the production-line calibration (A).
    #[arg(long, default_value_t = accuracy::DEFAULT_CAL_CURRENT_A)]
    pub cal_current: f64,
    /// A TOML file with component overrides, same keys as a scenario's
    /// `[chain]` table (e.g. `[amplifier]` `offset_drift_v_per_k = 0.1e-6`).
    #[arg(long)]
    pub chain: Option<PathBuf>,
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

/// The chain parameters: defaults, or the file's overrides.
fn chain_params(path: Option<&PathBuf>) -> Result<ChainParams, String> {
    let Some(path) = path else { return Ok(ChainParams::default()) };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let params: ChainParams = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    params.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(params)
}

pub fn execute(cmd: &Cmd) -> u8 {
    if cmd.boards == 0 {
        eprintln!("error: --boards must be at least 1");
        return exit::BAD_INPUT;
    }
    if !(cmd.cal_current.is_finite() && cmd.cal_current != 0.0 && cmd.cal_current.abs() <= 250.0) {
        eprintln!("error: --cal-current must be non-zero and within ±250 A");
        return exit::BAD_INPUT;
    }
    let chain = match chain_params(cmd.chain.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let variants = cmd.variant.map_or(Variant::ALL.to_vec(), |v| vec![v]);
    let mut all_pass = true;
    for v in variants {
        let mut config = AccuracyConfig::datasheet(v, cmd.boards, cmd.seed);
        config.chain = chain;
        config.cal_current_a = cmd.cal_current;
        let report = accuracy::run(&config, &FirmwareReadout);
        println!("{}", report.table());
        all_pass &= report.all_pass();
    }
    if cmd.boards < 200 {
        println!("note: fewer than 200 boards; the datasheet verdict needs at least 200");
    }
    if all_pass { exit::OK } else { exit::EXPECTATION_FAILED }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::accuracy::FloatReadout;

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
            assert!(fw.all_pass(), "{}", fw.table());
        }
    }
}
