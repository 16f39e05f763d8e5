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

mod compare_common;

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
    let (plain, args) = compare("plain", &[]);
    let out = hil_rig(args).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let (moved, args) = compare("moved", &["--initial-soc", "68"]);
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
