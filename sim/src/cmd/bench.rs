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
    if let Err(e) = transient_figures() {
        println!("transient: skipped ({e:#})");
    }
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

/// The designer's base case (48 V, 3 m of 95 mm², bolted short).
const WHATIF_BASE: &str = include_str!("../../../scenarios/whatif/48v-3m-95mm2.toml");

/// A 10 000-case study over that base: cable length × cross-section × battery temperature.
const WHATIF_10K: &str = r#"
name = "bench-10k"
base = "base.toml"
[[axis]]
param = "load_line.length_m"
values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
[[axis]]
param = "battery_line.length_m"
values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
[[axis]]
param = "load_line.cross_section_mm2"
values = [16, 25, 35, 50, 70, 95, 120, 150, 185, 240]
[[axis]]
param = "battery.temperature_c"
values = [-20, -10, 0, 10, 20, 25, 30, 40, 45, 50]
"#;

/// Issue 7's figures: one 10 ms short-circuit event at 1 µs steps (× real
/// time), and a 10 000-case sweep on every core.
fn transient_figures() -> anyhow::Result<()> {
    use crate::sweep::{self, study::Study};
    let dir = std::env::temp_dir().join(format!("smartpro-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<()> {
        // One event followed for 10 ms whatever happens, at the default 1 µs steps.
        let long = format!("{WHATIF_BASE}\n[solver]\nwindow_us = 10000.0\ntail_us = 10000.0\n");
        std::fs::write(dir.join("event.toml"), long)?;
        let event = Study::load(&dir.join("event.toml"))?;
        let case = event.cases.first().ok_or_else(|| anyhow::anyhow!("no case"))?;
        let reps = 20;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            sweep::simulate_case(case, false)?;
        }
        let per_event_s = t0.elapsed().as_secs_f64() / f64::from(reps);
        println!("transient_event: 10 ms at 1 µs steps in {:.3} ms", per_event_s * 1e3);
        println!("transient_speed: {:.0} x realtime", 0.010 / per_event_s);

        std::fs::write(dir.join("base.toml"), WHATIF_BASE)?;
        std::fs::write(dir.join("study.toml"), WHATIF_10K)?;
        let study = Study::load(&dir.join("study.toml"))?;
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        let t0 = std::time::Instant::now();
        let results = sweep::run_cases(&study, 0..study.cases.len(), jobs, &|_| {})?;
        let wall = t0.elapsed().as_secs_f64();
        let failed = results.iter().filter(|r| !r.passed).count();
        println!(
            "sweep_10k: {} cases ({failed} failing a check) in {wall:.2} s on {jobs} thread(s), {:.0} cases/s",
            results.len(),
            results.len() as f64 / wall
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
