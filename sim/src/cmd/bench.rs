//! `smartpro-sim bench`: a fixed 1 h scenario as fast as possible.

use crate::runner;
use crate::scenario::Scenario;

/// One hour of a pack (`VARIANT`: 12, 24 or 48 V) under a dynamic discharge
/// profile (a repeating drive-like cycle of rests, pulses and partial
/// recharges), ADC at 1 kSPS.
pub const BENCH_SCENARIO: &str = r#"
name = "bench-VARIANTv-dynamic-1h"
variant = VARIANT
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

/// Seconds in the year that `bench` projects its per-tick figure to.
const YEAR_S: f64 = 365.0 * 86_400.0;

/// `bench`'s exit codes, for `--help`. The speed is printed, never judged.
pub const EXIT_CODES: &super::exit::Table = &[
    (super::exit::Exit::Ok, "the benchmark ran and its figures were printed"),
    (super::exit::Exit::BadInput, "bad arguments"),
    (super::exit::Exit::Runtime, "runtime failure: the --trace file cannot be written, the run failed"),
];

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Also write the bench's trace.csv here (default: no trace, pure simulation).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    /// The board variant benched: 12, 24 or 48 (V).
    #[arg(long, value_name = "12|24|48", default_value = "12", value_parser = ["12", "24", "48"])]
    pub variant: String,
}

/// The bench scenario for `variant` ("12", "24" or "48") with its cycle expanded.
pub fn scenario(variant: &str) -> Scenario {
    let mut text = BENCH_SCENARIO.replace("VARIANT", variant);
    for _ in 0..60 {
        for (kind, amps, secs) in CYCLE {
            let current = if *kind == "rest" { String::new() } else { format!("current_a = {amps}\n") };
            text.push_str(&format!("[[segment]]\nkind = \"{kind}\"\n{current}duration_s = {secs}\n"));
        }
    }
    Scenario::parse(&text, std::path::Path::new("<bench>")).expect("the built-in bench scenario is valid")
}

pub fn execute(cmd: &Cmd) -> anyhow::Result<()> {
    let scenario = scenario(&cmd.variant);
    println!(
        "scenario: {} ({} s simulated, variant {})",
        scenario.name,
        scenario.duration_ns() / 1_000_000_000,
        scenario.variant
    );
    use crate::engine::{PACK_DECIMATION, TEMPERATURE_DECIMATION, THERMAL_DECIMATION};
    let adc = u64::from(scenario.adc_rate_hz);
    println!(
        "adc_rate: {adc} SPS current and voltage (noise drawn per firmware block), {} SPS NTCs",
        adc / u64::from(TEMPERATURE_DECIMATION)
    );
    println!(
        "model_rates: pack state {} Hz (mean current, exact charge), thermal network {} Hz, firmware poll every {} ms on block sums",
        adc / PACK_DECIMATION,
        adc / THERMAL_DECIMATION,
        firmware_core::board::POLL_PERIOD.as_millis()
    );
    if let Err(e) = transient_figures() {
        println!("transient: skipped ({e:#})");
    }
    let rss_before_kib = peak_rss_kib();
    let cpu_before_ns = thread_cpu_ns();
    let summary = match &cmd.trace {
        Some(path) => {
            let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
            runner::run(&scenario, Some(&mut w))?
        }
        None => runner::run(&scenario, None)?,
    };
    let cpu_ns = thread_cpu_ns().zip(cpu_before_ns).map(|(after, before)| after.saturating_sub(before));
    let rss_after_kib = peak_rss_kib();
    let speed = summary.simulated_s / summary.wall_s;
    // After the run (its memory and caches undisturbed), printed before its figures.
    match ecm_figures() {
        Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
        Err(e) => println!("ecm: skipped ({e:#})"),
    }
    println!("ticks: {}", summary.ticks);
    println!("wall: {:.3} s", summary.wall_s);
    // On a shared machine the wall clock also counts the time other processes had the core.
    if let Some(ns) = cpu_ns.filter(|&ns| ns > 0) {
        println!(
            "cpu: {:.3} s on the run's thread, {:.1} ns per tick, {:.0} x realtime per core",
            ns as f64 * 1e-9,
            ns as f64 / summary.ticks as f64,
            summary.simulated_s / (ns as f64 * 1e-9)
        );
    }
    println!("ns_per_tick: {:.1}", summary.wall_s * 1e9 / summary.ticks as f64);
    // A year of this variant at the same rate: the per-tick CPU figure (the wall clock's without it) × its ticks.
    let per_tick_s = cpu_ns.filter(|&ns| ns > 0).map_or(summary.wall_s, |ns| ns as f64 * 1e-9) / summary.ticks as f64;
    println!(
        "year_{}v_projected: {:.0} s (365 days at {adc} SPS, {:.0} ticks, one core)",
        cmd.variant,
        per_tick_s * YEAR_S * adc as f64,
        YEAR_S * adc as f64
    );
    // The run keeps O(1) state whatever its length: the peak must not move during it.
    let mib = |kib: u64| kib as f64 / 1024.0;
    match (rss_before_kib, rss_after_kib) {
        (Some(before), Some(after)) => {
            println!("peak_rss: {:.1} MiB (VmHWM; {:.1} MiB before the run)", mib(after), mib(before))
        }
        _ => println!("peak_rss: unavailable (no VmHWM in /proc/self/status)"),
    }
    println!("sim_speed: {speed:.0} x realtime");
    Ok(())
}

/// The process's peak resident set (KiB): `VmHWM` of `/proc/self/status`
/// (Linux); `None` elsewhere.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_hwm_kib(&status)
}

/// CPU time of this thread so far (ns): the first field of
/// `/proc/thread-self/schedstat` (Linux); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `VmHWM:   12345 kB` → 12345.
fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
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

/// Issue 7's figures: a 10 ms short-circuit event at 1 µs resolution (× real
/// time, one core), and a 10 000-case sweep on every core.
fn transient_figures() -> anyhow::Result<()> {
    use crate::sweep::{self, study::Study};
    let dir = std::env::temp_dir().join(format!("smartpro-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> anyhow::Result<()> {
        // The base case followed for 10 ms whatever happens, as designed (trip, clamp, current
        // zero, then blocked) and without the comparator (the fault current flows for all 10 ms).
        // The circuit steps exactly from breakpoint to breakpoint (finer than 1 µs where it
        // switches); "1 µs record" adds the waveform on every µs of the 10 ms
        // (record_tolerance_a = 0: no flat stretch skipped).
        let long = format!("{WHATIF_BASE}\n[solver]\nwindow_us = 10000.0\ntail_us = 10000.0\n");
        std::fs::write(dir.join("event.toml"), long)?;
        let event = Study::load(&dir.join("event.toml"))?;
        let case = event.cases.first().ok_or_else(|| anyhow::anyhow!("no case"))?;
        let mut uncleared = case.params;
        uncleared.comparator.enabled = false;
        let state = case.params.battery.state(case.variant);
        // Per event: (CPU time of this thread, wall time) (s), and the samples recorded. Repeated
        // for ≥ 0.25 s: the thread's CPU clock (schedstat) is coarse.
        let time = |params: &models::transient::TransientParams,
                    tolerance_a: f64,
                    record: bool|
         -> anyhow::Result<(f64, f64, usize)> {
            let params = models::transient::TransientParams {
                solver: models::transient::SolverParams { record_tolerance_a: tolerance_a, ..params.solver },
                ..*params
            };
            let (mut reps, mut samples) = (0u32, 0);
            let cpu0 = thread_cpu_ns();
            let t0 = std::time::Instant::now();
            while reps < 20 || t0.elapsed().as_secs_f64() < 0.25 {
                let o = models::transient::simulate(&params, case.variant, &state, &case.event, record)?;
                samples = o.samples.len();
                reps += 1;
            }
            let wall_s = t0.elapsed().as_secs_f64() / f64::from(reps);
            let cpu_s = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a) as f64 * 1e-9 / f64::from(reps));
            Ok((cpu_s.filter(|&s| s > 0.0).unwrap_or(wall_s), wall_s, samples))
        };
        let dense = [time(&case.params, 0.0, true)?, time(&uncleared, 0.0, true)?];
        let tol = case.params.solver.record_tolerance_a;
        let adaptive = [time(&case.params, tol, true)?, time(&uncleared, tol, true)?];
        let exact = [time(&case.params, 0.0, false)?, time(&uncleared, 0.0, false)?];
        let us = |x: &[(f64, f64, usize); 2]| {
            format!("{:.1} µs ({} samples) / {:.1} µs ({} samples)", x[0].0 * 1e6, x[0].2, x[1].0 * 1e6, x[1].2)
        };
        println!(
            "transient_event: 10 ms, CPU per event on one core, as designed / uncleared: 1 µs record {}; \
             default adaptive record {}; no record {}",
            us(&dense),
            us(&adaptive),
            us(&exact)
        );
        let speed = |x: &[(f64, f64, usize); 2], k: usize| {
            0.010 / x.iter().map(|r| if k == 0 { r.0 } else { r.1 }).fold(0.0, f64::max)
        };
        println!(
            "transient_speed: {:.0} x realtime (10 ms event at 1 µs resolution, one core, CPU time; wall clock {:.0} x)",
            speed(&dense, 0),
            speed(&dense, 1)
        );
        println!(
            "transient_speed_adaptive: {:.0} x realtime (default record: every µs while the current moves; no record: {:.0} x)",
            speed(&adaptive, 0),
            speed(&exact, 0)
        );

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

/// PyBaMM's `ECM_Example` (`tools/pybamm/export_ecm.py`).
const ECM_EXAMPLE: &str = include_str!("../../../scenarios/data/pybamm/ecm_example.toml");

/// Issue 18's pack-model figures: the pack alone (`smartpro-sim ecm`) on
/// the built-in 1 h profiles at 1 s rows, held between rows, one cell of
/// `ECM_Example` coupled to its cell–jig thermal model with PyBaMM's heat.
/// Each profile repeated for ≥ 0.25 s (and ≥ 20 runs): CPU time of this
/// thread per run, pack construction included. The lines to print.
fn ecm_figures() -> anyhow::Result<Vec<String>> {
    use models::ecm::run::{EcmRun, Heat, simulate};
    use models::profile::{Interpolation, builtin::Builtin};
    let ecm = models::ecm::EcmParams::from_toml_str(ECM_EXAMPLE)?;
    // (CPU s per run, rows, runs)
    let time = |b: Builtin| -> anyhow::Result<(f64, usize, u32)> {
        let profile = b.profile(Interpolation::Hold);
        let run = EcmRun { initial_soc: b.initial_soc(), heat: Heat::Bernardi, ..EcmRun::default() };
        let (mut reps, mut rows) = (0u32, 0);
        let cpu0 = thread_cpu_ns();
        let t0 = std::time::Instant::now();
        while reps < 20 || t0.elapsed().as_secs_f64() < 0.25 {
            rows = simulate(&ecm, &profile, &run)?.len();
            reps += 1;
        }
        let wall_s = t0.elapsed().as_secs_f64() / f64::from(reps);
        let cpu_s = thread_cpu_ns().zip(cpu0).map(|(b, a)| b.saturating_sub(a) as f64 * 1e-9 / f64::from(reps));
        Ok((cpu_s.filter(|&s| s > 0.0).unwrap_or(wall_s), rows, reps))
    };
    let hour_s = f64::from(models::profile::builtin::DURATION_S);
    let mut kinds = Vec::new();
    let mut drive = (0.0, 0, 0);
    for b in Builtin::ALL {
        let t = time(b)?;
        kinds.push(format!("{} {:.3}", b.name(), t.0 * 1e3 * 3600.0 / hour_s));
        if b == Builtin::Drive {
            drive = t;
        }
    }
    let mut lines = vec![format!(
        "ecm_profiles: ms per simulated hour (PyBaMM ECM_Example, 1 s rows held, coupled cell–jig thermal model, \
         Bernardi heat; one core, CPU time): {}",
        kinds.join(", ")
    )];
    let (per_run_s, rows, reps) = drive;
    lines.push(format!("ecm_ns_per_row: {:.1}", per_run_s * 1e9 / rows as f64));
    lines.push(format!(
        "ecm_speed: {:.0} x realtime ({:.3} ms per simulated hour: the built-in drive profile, {rows} rows; \
         CPU time of {reps} runs)",
        hour_s / per_run_s,
        per_run_s * 1e3 * 3600.0 / hour_s
    ));
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_hwm_is_read_from_proc_status() {
        let status = "Name:\tsmartpro-sim\nVmPeak:\t  20000 kB\nVmHWM:\t    8123 kB\nVmRSS:\t 8000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(8123));
        assert_eq!(parse_vm_hwm_kib("VmRSS: 1 kB\n"), None);
        assert_eq!(parse_vm_hwm_kib("VmHWM: lots\n"), None);
    }
}
