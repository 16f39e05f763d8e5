//! `hil-rig compare` against a stand-in board (the twin `smartpro-sim serve`
//! runs) with deliberate defects injected: a current offset outside the
//! datasheet's 0.01 % FS, a voltage gain error; and without any, the exit 0.

use crate::compare_common;

use compare_common::*;

/// Compares a stand-in of `scenario` (scenario drive, the same file) for
/// `secs` of wall time; returns the output and report.md.
async fn compare_scenario(name: &str, scenario: &str, drive: &str, secs: &str) -> (std::process::Output, String) {
    let dir = temp_dir(name);
    let file = scenario_file(&dir, scenario);
    let standin = StandIn::start(&file, |_| {});
    let out_dir = dir.join("out");
    let args = compare_live(
        &standin.path,
        &out_dir,
        &["--scenario", file.to_str().unwrap(), "--drive", drive, "--duration", secs, "--interval-ms", "100"],
    );
    let out = hil_rig(args).await;
    standin.kill().await;
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    for f in ["compare.csv", "junit.xml", "plots/voltage.svg", "plots/voltage.png"] {
        assert!(out_dir.join(f).is_file(), "{f} missing\n{}", show(&out));
    }
    (out, report)
}

#[tokio::test]
async fn an_injected_current_offset_of_0_05_pct_fs_is_found_and_named() {
    let scenario = format!("{SCENARIO}[chain.injected]\ncurrent_offset_pct_fs = 0.05\n");
    let (out, report) = compare_scenario("offset", &scenario, "scenario", "5").await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    // 0.05 % FS injected, on top of the calibrated unit's residual zero (well inside 0.01 % FS).
    let line = report.lines().find(|l| l.starts_with("- current offset ")).unwrap_or_else(|| panic!("{report}"));
    let pct: f64 = line["- current offset ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((pct - 0.05).abs() < 0.005, "{line}");
    assert!(line.contains("% FS at rest (+0.12") && line.ends_with("A; spec 0.01 % FS)"), "{line}");
    let current = row(&report, "current");
    assert!(current[7].starts_with("FAIL"), "{current:?}");
    // What the offset does not touch stays within tolerance.
    assert_eq!(row(&report, "voltage")[7], "pass", "{report}");
    let junit = std::fs::read_to_string(
        std::env::temp_dir().join(format!("hil-rig-compare-offset-{}/out/junit.xml", std::process::id())),
    )
    .unwrap();
    assert!(
        junit.contains(r#"<testcase classname="finding" name="current_offset"><failure message="current offset 0.0"#),
        "{junit}"
    );
    assert!(text(&out.stderr).contains("the board differs from the twin"), "{}", show(&out));
}

#[tokio::test]
async fn an_injected_voltage_gain_error_is_found_and_named() {
    let scenario = format!("{SCENARIO}[chain.injected]\nvoltage_gain_error_pct = 0.5\n");
    let (out, report) = compare_scenario("gain", &scenario, "measured", "4").await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(row(&report, "voltage")[7].starts_with("FAIL"), "{report}");
    // 0.5 % of ≈13 V is ≈65 mV, four times the 16 mV tolerance: the gain is recovered.
    let line = report.lines().find(|l| l.starts_with("- voltage gain error")).unwrap_or_else(|| panic!("{report}"));
    let pct: f64 = line["- voltage gain error ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert!((pct - 0.5).abs() < 0.02, "{line}");
}

#[tokio::test]
async fn a_board_without_defects_is_within_tolerance_in_both_drives() {
    for drive in ["scenario", "measured"] {
        let (out, report) = compare_scenario(&format!("clean-{drive}"), SCENARIO, drive, "5").await;
        assert_eq!(out.status.code(), Some(0), "{drive}:\n{report}\n{}", show(&out));
        assert!(report.contains("verdict: PASS"), "{report}");
        for key in ["voltage", "soc", "soc_ah", "temperature", "discharged_ah"] {
            assert_eq!(row(&report, key)[7], "pass", "{drive}: {key}\n{report}");
        }
        let current = &row(&report, "current")[7];
        if drive == "scenario" {
            assert_eq!(current, "pass", "{report}");
        } else {
            assert!(current.starts_with("not compared (measured drive"), "{report}");
        }
    }
}
