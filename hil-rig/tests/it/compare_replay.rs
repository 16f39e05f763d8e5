//! Recording then replay: a recording of one twin (a stand-in board served
//! at 20× by `smartpro_sim::serve`, recorded by `hil-rig record`) drives
//! another twin through `hil-rig compare --recording` (measured drive: the
//! recorded current, held between rows, on the recorded uptime), which
//! reproduces the recorded battery voltage within the datasheet's voltage
//! tolerance (0.1 % FS of 15 V + the 1 mV register resolution).
//!
//! The recordings are made live, so a loaded machine stretches the time
//! between rows: a row of a stand-in at 20× late by 0.5 s is 10 board
//! seconds, and a current step inside such a gap was once held over it (the
//! twin's SOC then differed from the board's by |ΔI| × gap: the flake of
//! `a_twin_driven_by_…` under load). The twin now runs such an interval at
//! the current the board counted (`hil_rig::twin::Twin::advance_counted`),
//! and the checks count what was compared, not the wall-clock rate.

use crate::compare_common;

use compare_common::*;
use models::variant::{VOLTAGE_TOTAL_ERROR_PCT_FS, Variant};
use smartpro_sim::serve::faults::Window;

#[tokio::test]
async fn a_twin_driven_by_a_recording_of_another_twin_reproduces_its_voltage() {
    let dir = temp_dir("replay");
    let file = scenario_file(&dir, SCENARIO);
    let rec = dir.join("recording.csv");
    let standin = StandIn::start(&file, |_| {});
    let args: Vec<String> = ["record", "--port", &standin.path, "--out", rec.to_str().unwrap()]
        .iter()
        .chain(&["--duration", "10", "--interval-ms", "100"])
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    standin.kill().await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    let out_dir = dir.join("out");
    let args: Vec<String> = ["compare", "--recording", rec.to_str().unwrap(), "--scenario", file.to_str().unwrap()]
        .iter()
        .chain(&["--out", out_dir.to_str().unwrap()])
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", show(&out));
    assert!(report.contains("drive: measured"), "{report}");
    assert!(report.contains("board time from uptime_s"), "{report}");

    // Every row of compare.csv after the first 2 s of board time: the twin's
    // voltage within the datasheet's tolerance of the recorded one.
    let tol_v = VOLTAGE_TOTAL_ERROR_PCT_FS / 100.0 * Variant::V12.voltage_range_v() + 0.001;
    let csv = std::fs::read_to_string(out_dir.join("compare.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}: {header:?}"));
    let (t, vb, vt, ib) = (col("time_s"), col("voltage_board_V"), col("voltage_twin_V"), col("current_board_A"));
    let mut worst = 0.0f64;
    let (mut rows, mut loads) = (0, 0);
    let mut prev_i = None;
    for line in lines {
        let c: Vec<&str> = line.split(',').collect();
        let num = |k: usize| c[k].parse::<f64>().unwrap();
        let i = num(ib);
        // Not judged: the start, and a row right after a current step (the
        // recording's rows are 2 s of board time apart; the step falls between).
        let stepped = prev_i.is_some_and(|p: f64| (p - i).abs() > 0.5);
        prev_i = Some(i);
        if num(t) < 2.0 || stepped {
            continue;
        }
        rows += 1;
        loads += usize::from(i.abs() > 5.0);
        worst = worst.max((num(vb) - num(vt)).abs());
    }
    eprintln!("worst |V_board − V_twin| = {worst} V over {rows} rows ({loads} under load)");
    assert!(rows >= 20 && loads >= 10, "{rows} rows, {loads} under load:\n{csv}");
    assert!(worst < tol_v, "worst |V_board − V_twin| = {worst} V ≥ {tol_v} V");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The columns of `compare.csv` in `dir` named `name`, as text.
fn column(dir: &std::path::Path, name: &str) -> Vec<String> {
    let csv = std::fs::read_to_string(dir.join("compare.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let k = header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}: {header:?}"));
    lines.map(|l| l.split(',').nth(k).unwrap().to_string()).collect()
}

#[tokio::test]
async fn issue_17_initial_soc_sets_the_tracker_not_the_twin() {
    // `--initial-soc 68` moved the measured-drive twin too: its voltage then
    // differed from the board's by the OCV at another SOC, reported as a
    // "voltage gain error +2.89 %". It is the tracking filter's start only.
    let dir = temp_dir("issue-17-initial-soc");
    let file = scenario_file(&dir, SCENARIO);
    let rec = dir.join("recording.csv");
    let standin = StandIn::start(&file, |_| {});
    let args: Vec<String> = ["record", "--port", &standin.path, "--out", rec.to_str().unwrap()]
        .iter()
        .chain(&["--duration", "3", "--interval-ms", "100"])
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    standin.kill().await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let compare = |name: &str, extra: &[&str]| {
        let out_dir = dir.join(name);
        let args: Vec<String> = ["compare", "--recording", rec.to_str().unwrap(), "--scenario", file.to_str().unwrap()]
            .iter()
            .chain(&["--out", out_dir.to_str().unwrap()])
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        (out_dir, args)
    };
    // The tracking filter runs with a twin started at rest (a scenario start knows its SOC).
    let (plain, args) = compare("plain", &["--twin-start", "rest"]);
    let out = hil_rig(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (moved, args) = compare("moved", &["--initial-soc-pct", "68", "--twin-start", "rest"]);
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(moved.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert!(!report.contains("gain error"), "{report}");
    for name in ["voltage_twin_V", "soc_twin_pct", "soc_ah_twin_pct"] {
        assert_eq!(column(&plain, name), column(&moved, name), "{name}: the twin moved with --initial-soc");
    }
    // The filter did start elsewhere: 68 % against the board's 60 %.
    let tracked = |d: &std::path::Path| column(d, "soc_tracked_twin_pct")[0].parse::<f64>().unwrap();
    assert!(tracked(&moved) > tracked(&plain) + 1.0, "{} vs {}", tracked(&moved), tracked(&plain));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn issue_17_a_recording_with_an_offline_window_over_a_current_step_replays_within_tolerance() {
    // The stand-in is offline from 22 to 40 board seconds: the 40 A
    // discharge starts at 30 s inside the window. Before, the twin held the
    // rest current over the window and its SOC ended ≈ 0.1 points above the
    // board's (40 A × ~10 s of 100 Ah): soc, soc_ah, soc_wh FAIL, exit 1.
    let dir = temp_dir("issue-17-offline");
    let file = scenario_file(&dir, SCENARIO);
    let rec = dir.join("recording.csv");
    let standin = StandIn::start(&file, |o| o.fault_overrides.offline = vec![Window { from_s: 22.0, to_s: 40.0 }]);
    let args: Vec<String> = ["record", "--port", &standin.path, "--out", rec.to_str().unwrap()]
        .iter()
        .chain(&["--duration", "5", "--interval-ms", "100", "--timeout-ms", "100", "--retries", "0"])
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    standin.kill().await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let recording = std::fs::read_to_string(&rec).unwrap();
    let uptimes: Vec<f64> = {
        let mut lines = recording.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let k = header.iter().position(|h| *h == "uptime_s[s]").unwrap();
        lines.filter(|l| !l.starts_with('#')).filter_map(|l| l.split(',').nth(k)?.parse().ok()).collect()
    };
    let gap = uptimes.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(gap >= 15.0, "the offline window is a gap of {gap} board seconds:\n{recording}");

    let out_dir = dir.join("out");
    let args: Vec<String> = ["compare", "--recording", rec.to_str().unwrap(), "--scenario", file.to_str().unwrap()]
        .iter()
        .chain(&["--out", out_dir.to_str().unwrap()])
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert_eq!(out.status.code(), Some(0), "{report}\n{}", show(&out));
    for key in ["soc", "soc_ah", "soc_wh", "voltage", "discharged_ah"] {
        assert_eq!(row(&report, key)[7], "pass", "{key}\n{report}");
    }
    assert!(report.contains("the twin ran them at the mean current the board counted"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The scenario library: `scenarios/*.toml` of the workspace.
fn library() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Board seconds the self-comparison records of each scenario.
const SELF_WINDOW_S: f64 = 120.0;
/// Board seconds between its rows (the uptime's resolution: one per second).
const SELF_INTERVAL_S: f64 = 1.0;
/// When in a board second its rows are read (any phase: the comparison takes u + ½).
const SELF_READ_PHASE_S: f64 = 0.3;

/// `scenario` served as a stand-in would (its segments and events), recorded
/// as `hil-rig record` writes it — every readable register through the same
/// planning, decoding and row formatting — every [`SELF_INTERVAL_S`] from
/// `from_s` for [`SELF_WINDOW_S`] (or to the scenario's end).
fn record_window(scenario: &smartpro_sim::scenario::Scenario, from_s: f64) -> String {
    use firmware_core::map::REGISTERS;
    use hil_rig::decode::{self, MAX_REGS_PER_REQUEST};
    use smartpro_sim::scenario::secs_to_ns;
    let (header, regs) = hil_rig::recording::record_columns().unwrap();
    let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
    let mut engine = smartpro_sim::engine::Engine::new(scenario).unwrap();
    let mut stimulus = smartpro_sim::stimulus::Stimulus::new(scenario);
    let mut csv = header.join(",");
    csv.push('\n');
    let end_s = (scenario.duration_ns() as f64 * 1e-9).min(from_s + SELF_WINDOW_S);
    let mut t_s = from_s.floor() + SELF_READ_PHASE_S;
    while t_s < end_s {
        engine.advance_to(secs_to_ns(t_s), &mut stimulus).unwrap();
        let mut raws = vec![None; regs.len()];
        for b in &blocks {
            let mut words = vec![0u16; usize::from(b.count)];
            if engine.board_mut().read_registers(b.start, &mut words).is_err() {
                continue;
            }
            for r in &b.regs {
                let k = regs.iter().position(|x| x.addr == r.addr).unwrap();
                raws[k] = b.words_of(r, &words).map(|w| r.ty.decode(w));
            }
        }
        csv.push_str(&hil_rig::recording::format_row(engine.t_s(), &regs, &raws));
        csv.push('\n');
        t_s += SELF_INTERVAL_S;
    }
    csv
}

/// One scenario of the library compared with its own recording.
struct SelfComparison {
    name: String,
    /// The recording's first row had a fault active (a trip before it).
    starts_tripped: bool,
    exit: Option<i32>,
    report: String,
    stderr: String,
}

/// Records a window of `path`'s scenario from the middle of its run (at
/// most 1800 s in: the recording begins where the scenario is under way)
/// and compares it with the twin of the same scenario, in `dir`, with the
/// flags `extra` — with `only_tripped`, only if the recording begins with a
/// fault active.
async fn self_comparison(
    dir: &std::path::Path,
    path: &std::path::Path,
    only_tripped: bool,
    extra: &[&str],
) -> Option<SelfComparison> {
    let scenario = smartpro_sim::scenario::Scenario::load(path).unwrap();
    let name = path.file_stem().unwrap().to_string_lossy().into_owned();
    let from_s = (scenario.duration_ns() as f64 * 1e-9 / 2.0).min(1800.0);
    let recording = record_window(&scenario, from_s);
    let mut lines = recording.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let k = header.iter().position(|h| *h == "faults[bits]").unwrap();
    let first_faults: u64 = lines.next().and_then(|l| l.split(',').nth(k)?.parse().ok()).unwrap_or(0);
    if only_tripped && first_faults == 0 {
        return None;
    }
    let rec = dir.join(format!("{name}.csv"));
    std::fs::write(&rec, &recording).unwrap();
    let out_dir = dir.join(&name);
    let args: Vec<String> = ["compare", "--recording", rec.to_str().unwrap(), "--scenario", path.to_str().unwrap()]
        .iter()
        .chain(&["--out", out_dir.to_str().unwrap()])
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_default();
    eprintln!("{name} (from {from_s} s, faults at the start {first_faults}): exit {:?}", out.status.code());
    Some(SelfComparison {
        name,
        starts_tripped: first_faults != 0,
        exit: out.status.code(),
        report,
        stderr: text(&out.stderr),
    })
}

#[tokio::test]
async fn issue_21_a_recording_that_begins_after_a_trip_is_compared_from_the_first_sample_without_one_or_says_why() {
    let _machine = smartpro_sim::testing::machine::exclusive();
    // Every scenario of the library whose mid-run window begins with its
    // protection active (LVP, OVP, over-current, short circuit, a load dump's
    // OVP, …): before, "protection … tripped spuriously at t = 0.0 s (the
    // twin did not)" and a voltage FAIL, exit 1. The twin cannot have a
    // trip that happened before its first sample: the comparison starts at
    // the first sample without an active fault and says so, or, with none,
    // compares nothing and says why (exit 2 for a recording). A twin started
    // at rest (a real board's recording) is the case: a twin started from the
    // scenario has the trip too (the next test).
    let dir = temp_dir("issue-21-tripped");
    let mut seen = 0;
    for path in library() {
        let Some(c) = self_comparison(&dir, &path, true, &["--twin-start", "rest"]).await else { continue };
        assert!(
            c.report.contains("- twin start: rest, at the board's first SOC reading (--twin-start rest)"),
            "{}",
            c.report
        );
        assert!(c.starts_tripped);
        seen += 1;
        let excluded = c.report.contains("were not compared: the board's protection was active");
        let nothing = c.exit == Some(2) && c.stderr.contains("the board's protection was active");
        assert!(excluded || nothing, "{}: exit {:?}\n{}\n{}", c.name, c.exit, c.report, c.stderr);
        assert!(!c.report.contains("tripped spuriously at t = 0.0 s"), "{}:\n{}", c.name, c.report);
    }
    assert!(seen >= 3, "only {seen} scenarios of the library begin their window tripped");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn issue_21_the_twin_compared_with_its_own_recording_passes_on_every_scenario_of_the_library() {
    let _machine = smartpro_sim::testing::machine::exclusive();
    // Before, the twin started at rest at the board's SOC register while the
    // recording began mid-run: 8 of 25 passed, 8 were tripped throughout
    // (exit 2), 9 failed (exit 1). By default the twin now runs its scenario
    // from t = 0 to the recording's first uptime, and the header says so.
    let dir = temp_dir("issue-21-self");
    // (A saturated current once read 500.030 A, outside its register's documented range: the
    // firmware now reads the full scale there, firmware-core measure.rs.)
    let mut failed = Vec::new();
    let mut passed = 0;
    for path in library() {
        let c = self_comparison(&dir, &path, false, &[]).await.unwrap();
        let from_scenario = c.report.contains("- twin start: scenario, ");
        if !from_scenario || c.exit != Some(0) {
            eprintln!("{}\n{}", c.report, c.stderr);
            failed.push(c.name);
        } else {
            passed += 1;
        }
    }
    eprintln!("{passed} of {} scenarios pass against their own recording", passed + failed.len());
    assert!(failed.is_empty(), "{failed:?}");
    assert!(passed >= 25, "{passed}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn issue_21_a_recording_that_is_not_the_scenarios_starts_the_twin_at_rest_and_says_why() {
    // The recording of one scenario compared with another (its battery at
    // another SOC): by default the twin starts at rest, and the header says
    // why; `--twin-start scenario` where the scenario cannot be (an uptime
    // beyond its duration) is refused, naming why.
    let dir = temp_dir("issue-21-origin");
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/12v-overcurrent-discharge.toml");
    let scenario = smartpro_sim::scenario::Scenario::load(&lib).unwrap();
    let rec = dir.join("rec.csv");
    std::fs::write(&rec, record_window(&scenario, 20.0)).unwrap();
    let other = dir.join("other.toml");
    let text = std::fs::read_to_string(&lib).unwrap();
    std::fs::write(
        &other,
        text.replace("initial_soc = 0.8", "initial_soc = 0.6")
            .replace("initial_soc_pct = 80.0", "initial_soc_pct = 60.0"),
    )
    .unwrap();
    let run = |name: &str, scenario: &std::path::Path, extra: &[&str]| {
        let out_dir = dir.join(name);
        let args: Vec<String> =
            ["compare", "--recording", rec.to_str().unwrap(), "--scenario", scenario.to_str().unwrap()]
                .iter()
                .chain(&["--out", out_dir.to_str().unwrap()])
                .chain(extra)
                .map(|s| s.to_string())
                .collect();
        (out_dir, args)
    };
    let (own, args) = run("own", &lib, &[]);
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(own.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert!(report.contains("- twin start: scenario, 12v-overcurrent-discharge run with its stimulus from its t = 0 to the board's first sample (uptime 20 s, board time 20.5 s of its 40 s)"), "{report}");
    let (moved, args) = run("moved", &other, &[]);
    let out = hil_rig(args).await;
    let report = std::fs::read_to_string(moved.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    assert!(
        report.contains("- twin start: rest, at the board's first SOC reading (the first sample is not the scenario's at board time 20.5 s: SOC 79.92 % vs the scenario's 59."),
        "{report}"
    );
    // A scenario of 10 s cannot be at uptime 20 s.
    let short = dir.join("short.toml");
    std::fs::write(&short, text.replace("duration_s = 40", "duration_s = 10")).unwrap();
    let (_, args) = run("short", &short, &["--twin-start", "scenario"]);
    let out = hil_rig(args).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text_of(&out)
            .contains("--twin-start scenario: the board's first uptime 20 s is beyond the scenario's duration 10 s"),
        "{}",
        show(&out)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
