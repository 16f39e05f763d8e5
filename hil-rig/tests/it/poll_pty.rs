//! `hil-rig poll` end to end on a pty pair: the test serves a fake board on the
//! master side (firmware-core's Modbus PDU layer over a table encoded from the
//! register map), runs the real binary on the slave's `/dev/pts/N`, and checks
//! its table, CSV, counters and exit codes.

use crate::common;

use std::process::Output;

use common::{run_on_fake_board, text};
use firmware_core::map::{self, REGISTERS};

/// Runs `hil-rig poll` on a fresh pty pair served by a fake board that
/// ignores its first `ignore_first` requests.
async fn poll_fake_board(ignore_first: usize, args: &[&str]) -> Output {
    run_on_fake_board("poll", move |n| n <= ignore_first, args).await
}

#[tokio::test]
async fn polls_every_readable_register_and_logs_csv() {
    let dir = std::env::temp_dir().join(format!("hil-rig-pty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("poll.csv");
    let out =
        poll_fake_board(0, &["--all", "--count", "2", "--interval-ms", "20", "--csv", csv.to_str().unwrap()]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("poll 2"), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in\n{stdout}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(line("battery_voltage_v"), "13.284 V");
    assert_eq!(line("current_a"), "-1.234 A");
    assert_eq!(line("temperature_c"), "21.5 °C");
    assert_eq!(line("status"), "0x0003 switch_on lvp_output");
    assert_eq!(line("time_since_full_s"), "0 s");
    // Nine requests per poll: one per contiguous section of the map.
    assert!(stdout.contains("polls 2  requests 18  replies 18  timeouts 0"), "{stdout}");

    let log = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = log.lines().collect();
    assert_eq!(rows.len(), 3, "{log}");
    let readable: Vec<String> =
        REGISTERS.iter().filter(|r| r.access != map::Access::W).map(hil_rig::decode::column_name).collect();
    assert_eq!(rows[0], format!("t_s,{}", readable.join(",")));
    assert!(rows[0].contains(",remaining_ah[Ah],") && rows[0].contains(",lvp_delay_s[s],"), "{}", rows[0]);
    let col = readable.iter().position(|n| n == "current_a[A]").unwrap() + 1;
    assert_eq!(rows[2].split(',').nth(col), Some("-1.234"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_lost_request_is_retried() {
    let out =
        poll_fake_board(1, &["--count", "1", "--registers", "current_ma,battery_voltage_mv", "--timeout-ms", "300"])
            .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("requests 2  replies 1  timeouts 1"), "{stdout}");
    assert!(stdout.contains("-1.234 A"), "{stdout}");
}

#[tokio::test]
async fn no_reply_from_another_unit_exits_1() {
    let out =
        poll_fake_board(0, &["--all", "--count", "3", "--unit", "9", "--timeout-ms", "50", "--retries", "1"]).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}\n{stderr}", text(&out.stdout));
    assert!(
        stderr.contains("no reply from unit 9 on /dev/pts/")
            && stderr.contains("at 19200 8E1 after 2 tries (timeout 50 ms)"),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("polls 1  requests 18  replies 0  timeouts 18"), "{stdout}");
}

#[tokio::test]
async fn issue_21_poll_shows_the_bench_group_by_default_with_physical_names() {
    // Before: 99 registers, `battery_voltage_mv 13.284 V`.
    let out = poll_fake_board(0, &["--count", "1"]).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains(": 6 registers in 1 request"), "{stdout}");
    let names: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("poll 1"))
        .skip(1)
        .take(6)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["current_a", "battery_voltage_v", "temperature_c", "soc_pct", "status", "faults"], "{stdout}");
    let raw = poll_fake_board(0, &["--count", "1", "--raw", "--registers", "battery_voltage_mv"]).await;
    assert!(text(&raw.stdout).contains("battery_voltage_mv           13284\n"), "{}", text(&raw.stdout));
    let grp = poll_fake_board(0, &["--count", "1", "--group", "nope"]).await;
    assert_eq!(grp.status.code(), Some(2));
    assert!(text(&grp.stderr).contains("groups: bench, identification, measurements"), "{}", text(&grp.stderr));
}

#[test]
fn a_missing_port_exits_2_and_names_it() {
    let out = common::run_hil_rig(&["poll", "--port", "/dev/hil-rig-no-such-port", "--count", "1"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/hil-rig-no-such-port"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}

#[test]
fn an_unknown_register_exits_2_with_the_valid_names() {
    let out = common::run_hil_rig(&["poll", "--port", "/dev/null", "--registers", "volts"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("\"volts\"") && stderr.contains("battery_voltage_mv"), "{stderr}");
}
