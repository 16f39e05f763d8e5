//! `smartpro-sim accuracy`: Monte Carlo of the measurement chain against the
//! datasheet's accuracy table.
//!
//! The boards are drawn by `models::accuracy`; their codes are turned into
//! readings — and the production line's calibration into the registers the
//! board stores — with the firmware's own integer arithmetic
//! ([`FirmwareReadout`], shared with the engine's production line), so the
//! numbers are the board's.

use std::path::PathBuf;

use models::accuracy::{self, AccuracyConfig};
use models::chain::ChainParams;
use models::variant::Variant;

use super::exit::{self, Exit};
use crate::handover::FirmwareReadout;

/// `accuracy`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "every figure of every variant run is within the datasheet's accuracy table"),
    (Exit::Failed, "a figure is outside the datasheet's accuracy table"),
    (
        Exit::BadInput,
        "bad input: arguments (--boards 0, --cal-current), a --chain file that cannot be read or is malformed",
    ),
];

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Boards to simulate (at least 200 for a datasheet verdict).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub boards: usize,
    /// Variant: 12, 24 or 48 (default: all three).
    #[arg(long, value_name = "12|24|48")]
    pub variant: Option<Variant>,
    /// Seed of the Monte Carlo.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
    /// Reference current of the production-line calibration (A).
    #[arg(long, value_name = "A", default_value_t = accuracy::DEFAULT_CAL_CURRENT_A)]
    pub cal_current: f64,
    /// A TOML file with component overrides, same keys as a scenario's
    /// `[chain]` table (e.g. `[amplifier]` `offset_drift_v_per_k = 0.1e-6`).
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
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
