//! `hil-rig test` with a plan it must refuse (exit 2, every problem with
//! its file:line, before the port is opened), and with a board that goes
//! away mid-plan (exit 3, the reports keep the steps done so far).

use crate::compare_common;

use std::time::Duration;

use compare_common::*;
use smartpro_sim::serve::faults::Window;

/// A plan that reads the identity, then waits far longer than the test.
const LONG_PLAN: &str = r#"name = "long"

[[step]]
name = "identity"
kind = "read"
registers = ["device_type", "serial_number"]

[[step]]
name = "a long wait"
kind = "wait"
duration_s = 36000

[[step]]
name = "never reached"
kind = "read"
register = "status"
"#;

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_malformed_plan_is_refused_with_file_and_line_before_the_port_is_opened() {
    let dir = temp_dir("plan-bad");
    let plan = dir.join("bad.toml");
    std::fs::write(
        &plan,
        r#"name = "bad"

[[step]]
name = "lvp"
kind = "write"
register = "lvp_v"
value = 11.0

[[step]]
name = "too high"
kind = "write"
register = "ovp_mv"
value = 61

[[step]]
name = "a setting is not a command"
kind = "command"
command = "capacity_dah"
"#,
    )
    .unwrap();
    // The port does not exist: were it opened first, that would be the error.
    let out = hil_rig(args(&["test", plan.to_str().unwrap(), "--port", "/dev/hil-rig-no-such-port"])).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let p = plan.display();
    assert!(stderr.contains(&format!("{p}:6:12: unknown register \"lvp_v\" (did you mean lvp_mv?)")), "{stderr}");
    assert!(
        stderr.contains(&format!("{p}:13:9: ovp_mv = 61.000 V is outside its range [4.000, 60.000] V")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{p}:18:11: unknown command \"capacity_dah\"")), "{stderr}");
    assert!(!stderr.contains("no-such-port"), "the port is not touched: {stderr}");

    // A TOML syntax error, too.
    std::fs::write(&plan, "name = \"bad\"\n[[step]]\nname = \"w\"\nkind = \"wait\"\nduration_s = \n").unwrap();
    let out = hil_rig(args(&["test", plan.to_str().unwrap(), "--check"])).await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(text(&out.stderr).contains(&format!("{p}:5:")), "{}", show(&out));

    // --check of the example plan: valid, its steps listed.
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/acceptance.toml");
    let out = hil_rig(args(&["test", example.to_str().unwrap(), "--check"])).await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(
        text(&out.stdout).contains("21 steps, valid")
            && text(&out.stdout).contains("zero-current calibration (calibrate")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs LONG_PLAN against a stand-in changed by `tweak`, killing it after
/// `kill_after` if given; returns the output and report.md.
async fn long_plan(
    name: &str,
    tweak: impl FnOnce(&mut smartpro_sim::serve::Options),
    kill_after: Option<Duration>,
    link: &[&str],
) -> (std::process::Output, String, String) {
    let dir = temp_dir(name);
    let file = scenario_file(&dir, REST_STANDIN);
    let plan = dir.join("long.toml");
    std::fs::write(&plan, LONG_PLAN).unwrap();
    let standin = StandIn::start(&file, |o| {
        o.speed = PLAN_SPEED;
        tweak(o);
    });
    let out_dir = dir.join("out");
    let mut a = args(&["test", plan.to_str().unwrap(), "--port", &standin.path, "--out", out_dir.to_str().unwrap()]);
    a.extend(args(&["--interval-ms", "100"]));
    a.extend(args(link));
    let run = tokio::spawn(hil_rig(a));
    let out = match kill_after {
        Some(after) => {
            tokio::time::sleep(after).await;
            standin.kill().await;
            tokio::time::timeout(Duration::from_secs(20), run).await.expect("the plan ends").unwrap()
        }
        None => {
            let out = tokio::time::timeout(Duration::from_secs(30), run).await.expect("the plan ends").unwrap();
            standin.kill().await;
            out
        }
    };
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap_or_else(|e| panic!("{e}\n{}", show(&out)));
    std::fs::remove_dir_all(&dir).unwrap();
    (out, report, junit)
}

#[tokio::test]
async fn a_port_that_vanishes_mid_plan_exits_3_and_keeps_the_report() {
    // A short timeout: a pty whose other side closed may read as silence rather than an I/O error.
    let link = ["--timeout-ms", "200", "--retries", "1"];
    let (out, report, junit) = long_plan("plan-vanish", |_| {}, Some(Duration::from_millis(1500)), &link).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("lost /dev/pts/") || stderr.contains("fell silent"), "{}", show(&out));
    assert!(report.contains("| 1 | identity | read | device_type = 209, serial_number = "), "{report}");
    assert!(report.contains("| 2 | a long wait | wait | "), "{report}");
    assert!(report.contains(" | ERROR |") && report.contains("| 3 | never reached | read | not run: "), "{report}");
    assert!(report.contains("## Session ended early"), "{report}");
    assert!(junit.contains(r#"failures="0" errors="1" skipped="1""#), "{junit}");
}

#[tokio::test]
async fn a_board_that_falls_silent_mid_plan_exits_3_and_keeps_the_report() {
    // Off the bus from 50 s of board time (1 s of wall time) on.
    let offline =
        |o: &mut smartpro_sim::serve::Options| o.fault_overrides.offline = vec![Window { from_s: 50.0, to_s: 1e6 }];
    let (out, report, _) = long_plan("plan-silent", offline, None, &["--timeout-ms", "50", "--retries", "0"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("fell silent: no measurements in 3 polls in a row (no reply after 1 tries"),
        "{}",
        show(&out)
    );
    assert!(report.contains("| 1 | identity | read |") && report.contains(" | PASS |"), "{report}");
    assert!(report.contains("fell silent"), "{report}");
}

#[tokio::test]
async fn stop_on_fail_stops_at_the_first_failing_step() {
    let dir = temp_dir("plan-stop");
    let file = scenario_file(&dir, REST_STANDIN);
    let plan = dir.join("stop.toml");
    std::fs::write(
        &plan,
        "name = \"stop\"\nstop_on_fail = true\n\
         [[step]]\nname = \"right family\"\nkind = \"read\"\nregister = \"device_type\"\nexpect_value = 209\ntolerance = 0\n\
         [[step]]\nname = \"wrong variant\"\nkind = \"read\"\nregister = \"variant_v\"\nexpect_value = 24\n\
         [[step]]\nname = \"after\"\nkind = \"read\"\nregister = \"status\"\n",
    )
    .unwrap();
    let standin = StandIn::start(&file, |o| o.speed = PLAN_SPEED);
    let out_dir = dir.join("out");
    let out =
        hil_rig(args(&["test", plan.to_str().unwrap(), "--port", &standin.path, "--out", out_dir.to_str().unwrap()]))
            .await;
    standin.kill().await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("| 2 | wrong variant | read | variant_v = 12 V | = 24 V | FAIL |"), "{report}");
    assert!(
        report.contains("| 3 | after | read | not run: step 2 failed and the plan stops on a failure (stop_on_fail) |"),
        "{report}"
    );
    assert!(text(&out.stderr).contains("1 of 3 steps passed, 1 failed, 1 not run"), "{}", show(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}
