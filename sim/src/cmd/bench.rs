//! `smartpro-sim bench`: a fixed 1 h scenario as fast as possible.

use crate::runner;
use crate::scenario::Scenario;

/// One hour of a 12 V pack under a dynamic discharge profile (a repeating
/// drive-like cycle of rests, pulses and partial recharges), ADC at 1 kSPS.
pub const BENCH_SCENARIO: &str = r#"
name = "bench-12v-dynamic-1h"
variant = 12
seed = 7
initial_soc = 0.9
duration_s = 3600
adc_rate_hz = 1000
trace_interval_s = 1.0
[firmware]
initial_soc_pct = 90.0
"#;

/// Segments of the 60 s dynamic cycle, repeated for the hour.
const CYCLE: &[(&str, f64, f64)] = &[
    ("discharge", 20.0, 10.0),
    ("discharge", 120.0, 5.0),
    ("rest", 0.0, 5.0),
    ("discharge", 60.0, 15.0),
    ("charge", 40.0, 10.0),
    ("discharge", 200.0, 2.0),
    ("rest", 0.0, 13.0),
];

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Also write the bench's trace.csv here (default: no trace, pure simulation).
    #[arg(long)]
    pub trace: Option<std::path::PathBuf>,
}

/// The bench scenario with its cycle expanded.
pub fn scenario() -> Scenario {
    let mut text = BENCH_SCENARIO.to_owned();
    for _ in 0..60 {
        for (kind, amps, secs) in CYCLE {
            let current = if *kind == "rest" { String::new() } else { format!("current_a = {amps}\n") };
            text.push_str(&format!("[[segment]]\nkind = \"{kind}\"\n{current}duration_s = {secs}\n"));
        }
    }
    Scenario::parse(&text, std::path::Path::new("<bench>")).expect("the built-in bench scenario is valid")
}

pub fn execute(cmd: &Cmd) -> anyhow::Result<()> {
    let scenario = scenario();
    println!(
        "scenario: {} ({} s simulated, variant {})",
        scenario.name,
        scenario.duration_ns() / 1_000_000_000,
        scenario.variant
    );
    use crate::engine::{PACK_DECIMATION, TEMPERATURE_DECIMATION};
    let adc = u64::from(scenario.adc_rate_hz);
    let slow = adc / u64::from(TEMPERATURE_DECIMATION);
    println!("adc_rate: {adc} SPS current and voltage, {slow} SPS NTCs");
    println!(
        "model_rates: pack state {} Hz (mean current, exact charge), thermal network {slow} Hz, firmware poll every {} ms on block sums",
        adc / PACK_DECIMATION,
        firmware_core::board::POLL_PERIOD.as_millis()
    );
    let summary = match &cmd.trace {
        Some(path) => {
            let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
            runner::run(&scenario, Some(&mut w))?
        }
        None => runner::run(&scenario, None)?,
    };
    let speed = summary.simulated_s / summary.wall_s;
    println!("ticks: {}", summary.ticks);
    println!("wall: {:.3} s", summary.wall_s);
    println!("ns_per_tick: {:.1}", summary.wall_s * 1e9 / summary.ticks as f64);
    println!("sim_speed: {speed:.0} x realtime");
    Ok(())
}
