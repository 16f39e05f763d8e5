//! `hil-rig test` runs the example acceptance plan (`hil-rig/plans/acceptance.toml`)
//! against a stand-in board (the twin `smartpro-sim serve --pty` runs):
//! a healthy one passes every step; one with an uncalibrated current zero
//! (`[chain.injected] current_offset_pct_fs = 0.05`, five times the
//! datasheet's 0.01 % FS) fails the zero-current check before the plan's
//! calibration and passes it after.

use crate::compare_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use compare_common::*;

fn acceptance_plan() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/acceptance.toml")
}

/// Runs the example plan against a stand-in of `scenario`; returns the
/// output, report.md and junit.xml.
async fn run_plan(name: &str, scenario: &str) -> (Output, String, String) {
    let dir = temp_dir(name);
    let file = scenario_file(&dir, scenario);
    let standin = StandIn::start(&file, |o| o.speed = PLAN_SPEED);
    let out_dir = dir.join("out");
    let args = test_plan_live(&acceptance_plan(), &standin.path, &out_dir);
    let out = hil_rig(args).await;
    standin.kill().await;
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    std::fs::remove_dir_all(&dir).unwrap();
    (out, report, junit)
}

/// The console line of step `name`.
fn line<'a>(stdout: &'a str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.contains(&format!(" {name}: ")))
        .unwrap_or_else(|| panic!("no step {name:?} in\n{stdout}"))
}

/// The report's row of step `name`: its cells.
fn step_row(report: &str, name: &str) -> Vec<String> {
    let row = report
        .lines()
        .find(|l| l.split('|').nth(2).is_some_and(|c| c.trim() == name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{report}"));
    row.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
}

/// The mean current a zero-current read reports, A.
fn zero_current_a(stdout: &str, name: &str) -> f64 {
    let l = line(stdout, name);
    let v = l.split("current_ma = ").nth(1).and_then(|r| r.split(' ').next()).unwrap_or_else(|| panic!("{l}"));
    v.parse().unwrap_or_else(|_| panic!("{l}"))
}

#[tokio::test]
async fn the_example_plan_passes_on_a_healthy_stand_in() {
    let (out, report, junit) = run_plan("plan-healthy", REST_STANDIN).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(stdout.contains("21 of 21 steps passed"), "{}", show(&out));
    // The acceptance report: verdict, the board's identity, the date, every step.
    assert!(report.contains("| verdict | **PASS**: 21 of 21 steps passed |"), "{report}");
    assert!(
        report.contains(
            "| board | SmartPro-209 (device type 209), SmartPro 12-209 (12 V variant), firmware 1.0 (0x0100), serial "
        ),
        "{report}"
    );
    let date = report.lines().find(|l| l.starts_with("| date | ")).unwrap_or_else(|| panic!("{report}"));
    assert!(date.ends_with(" UTC |") && date.len() == "| date | 2025-11-25 15:30:12 UTC |".len(), "{date}");
    assert_eq!(step_row(&report, "zero current before calibration")[5], "PASS");
    // The twin followed the board: voltage and SOC within the datasheet's tolerances.
    let v = step_row(&report, "battery voltage vs the twin");
    assert!(v[3].starts_with("battery_voltage_mv: board 13.") && v[4] == "± 0.0160 V", "{v:?}");
    // Round trips restored what they changed.
    assert!(report.contains("restored lvp_mv = 11.200 V"), "{report}");
    assert!(
        junit
            .contains(r#"<testsuite name="SmartPro 12-209 acceptance" tests="21" failures="0" errors="0" skipped="0""#),
        "{junit}"
    );
    assert_eq!(junit.matches("<testcase ").count(), 21);
}

#[tokio::test]
async fn an_uncalibrated_zero_fails_before_the_calibration_and_passes_after() {
    let scenario = format!("{REST_STANDIN}[chain.injected]\ncurrent_offset_pct_fs = 0.05\n");
    let (out, report, junit) = run_plan("plan-offset", &scenario).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // 0.05 % FS of 250 A = 125 mA at rest, against the datasheet's 25 mA.
    let before = zero_current_a(&stdout, "zero current before calibration");
    assert!((before - 0.125).abs() < 0.01, "{before}");
    assert!(line(&stdout, "zero current before calibration").contains("FAIL"), "{stdout}");
    assert!(
        line(&stdout, "zero-current calibration").contains("PASS") && stdout.contains("last_cal_kind = 1"),
        "{stdout}"
    );
    let after = zero_current_a(&stdout, "zero current after calibration");
    assert!(after.abs() < 0.025 && line(&stdout, "zero current after calibration").contains("PASS"), "{stdout}");
    assert!(stdout.contains("20 of 21 steps passed, 1 failed"), "{}", show(&out));
    assert!(text(&out.stderr).contains("the board did not pass SmartPro 12-209 acceptance"), "{}", show(&out));
    let row = step_row(&report, "zero current before calibration");
    assert_eq!((row[4].as_str(), row[5].as_str()), ("0.000 ± 0.025 A (0.01 % of 250 FS)", "FAIL"), "{row:?}");
    assert!(report.contains("| verdict | **FAIL**: 20 of 21 steps passed, 1 failed |"), "{report}");
    assert!(
        junit.contains(r#"<testcase classname="read" name="zero current before calibration""#)
            && junit.contains(r#"<failure message="current_ma = 0.12"#),
        "{junit}"
    );
}
