//! `hil-rig compare` when the board goes away: a stand-in that vanishes
//! mid-run (the pty closes) or falls silent (offline on the bus) gives a
//! clear error and exit 3, and what was compared so far is kept: compare.csv
//! rows, report.md, junit.xml with the session's error. Bad input is exit 2.

use crate::compare_common;

use std::time::Duration;

use compare_common::*;
use smartpro_sim::serve::faults::Window;

/// Rows of compare.csv after its header.
fn rows(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("compare.csv")).unwrap().lines().count() - 1
}

#[tokio::test]
async fn a_board_that_vanishes_mid_run_exits_3_and_keeps_the_reports() {
    let dir = temp_dir("vanish");
    let file = scenario_file(&dir, SCENARIO);
    let standin = StandIn::start(&file, |_| {});
    let out_dir = dir.join("out");
    let args =
        compare_live(&standin.path, &out_dir, &["--duration", "30", "--interval-ms", "100", "--timeout-ms", "100"]);
    let run = tokio::spawn(hil_rig(args));
    tokio::time::sleep(Duration::from_secs(3)).await;
    standin.kill().await;
    let out = tokio::time::timeout(Duration::from_secs(20), run).await.expect("compare ends").unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(stderr.contains("lost /dev/pts/") || stderr.contains("fell silent"), "{}", show(&out));
    assert!(rows(&out_dir) >= 5, "{}", std::fs::read_to_string(out_dir.join("compare.csv")).unwrap());
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Session ended early"), "{report}");
    assert_eq!(row(&report, "voltage")[7], "pass", "what was compared is reported:\n{report}");
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains(r#"<testcase classname="session" name="session"><error message="#), "{junit}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_board_that_falls_silent_exits_3_and_keeps_the_reports() {
    let dir = temp_dir("silent");
    let file = scenario_file(&dir, SCENARIO);
    // Off the bus from 40 s of simulated time (2 s of wall time) on.
    let standin = StandIn::start(&file, |o| o.fault_overrides.offline = vec![Window { from_s: 40.0, to_s: 1e6 }]);
    let out_dir = dir.join("out");
    let args = compare_live(
        &standin.path,
        &out_dir,
        &["--duration", "30", "--interval-ms", "100", "--timeout-ms", "50", "--retries", "0"],
    );
    let out = hil_rig(args).await;
    standin.kill().await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        stderr.contains("fell silent: no measurements in the last 3 samples (no reply after 1 tries"),
        "{}",
        show(&out)
    );
    assert!(rows(&out_dir) >= 5, "the samples before the silence are kept");
    assert!(std::fs::read_to_string(out_dir.join("report.md")).unwrap().contains("fell silent"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn bad_input_exits_2_naming_the_cause() {
    let dir = temp_dir("bad");
    let rec = dir.join("r.csv");
    std::fs::write(&rec, "time_s,current_A,voltage_V\n0,-1,13.2\n1,x,13.2\n").unwrap();
    let empty = dir.join("empty.csv");
    std::fs::write(&empty, "time_s,current_A,voltage_V\n# 0,,13.2\n# 1,,13.2\n").unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "time_s,current_A,voltage_V\n0,-1,13.2\n1,-1,13.2\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--recording".into(), rec.display().to_string()], "r.csv:3: current_A: \"x\" is not a finite number"),
        (vec!["--recording".into(), "/nonexistent/r.csv".into()], "cannot read recording /nonexistent/r.csv"),
        (
            vec!["--recording".into(), empty.display().to_string()],
            "nothing was compared: no sample held the board's current and voltage (2 skipped)",
        ),
        (vec!["--port".into(), "/dev/hil-rig-no-such-port".into()], "/dev/hil-rig-no-such-port"),
        (
            vec!["--recording".into(), rec.display().to_string(), "--drive".into(), "scenario".into()],
            "--drive scenario needs --scenario FILE",
        ),
        (
            vec!["--recording".into(), good.display().to_string(), "--tolerances".into(), "/nonexistent/t.toml".into()],
            "cannot read tolerance file /nonexistent/t.toml",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["compare".to_string(), "--out".into(), dir.join("out").display().to_string()];
        args.extend(extra);
        let out = hil_rig(args.clone()).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}\n{}", show(&out));
        assert!(text(&out.stderr).contains(want), "{args:?}: want {want:?}\n{}", show(&out));
    }
    // A 24 V board against a 12 V twin.
    std::fs::write(&rec, "time_s,current_A,voltage_V,variant_v[V]\n0,-1,26.4,24\n1,-1,26.4,24\n").unwrap();
    let out = hil_rig(vec![
        "compare".into(),
        "--recording".into(),
        rec.display().to_string(),
        "--variant".into(),
        "12".into(),
        "--out".into(),
        dir.join("out").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("the board is a 24 V variant (variant_v at line 2), the twin 12 V"),
        "{}",
        show(&out)
    );
    // Without --variant or --scenario the twin is of the board's variant.
    let out = hil_rig(vec![
        "compare".into(),
        "--recording".into(),
        rec.display().to_string(),
        "--out".into(),
        dir.join("out24").display().to_string(),
    ])
    .await;
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", show(&out));
    let report = std::fs::read_to_string(dir.join("out24/report.md")).unwrap();
    assert!(report.contains("- twin: a battery at rest, 24 V"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}
