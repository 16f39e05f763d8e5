//! `hil-rig record` end to end on a pty pair served by the fake board of
//! `common`: the header, the rows, the decoded current, and that the file is
//! a profile `smartpro-sim run` can replay.

use crate::common;

use std::path::PathBuf;

use common::{run_on_fake_board, text};
use firmware_core::map::{self, REGISTERS};
use models::profile::{CurrentProfile, Interpolation};

fn temp_csv(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("hil-rig-record-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("recording.csv");
    (dir, csv)
}

/// The header `record` promises: the profile's columns, then every other
/// readable register as `name[unit]`, in map order.
fn expected_header() -> String {
    let leading = ["current_ma", "battery_voltage_mv", "temperature_dc", "soc_centipct"];
    let rest: Vec<String> = REGISTERS
        .iter()
        .filter(|r| r.access != map::Access::W && !leading.contains(&r.name))
        .map(hil_rig::decode::column_name)
        .collect();
    format!("time_s,current_A,voltage_V,temp_C,soc_pct,{}", rest.join(","))
}

#[tokio::test]
async fn records_one_second_at_50_ms_into_a_replayable_profile() {
    let (dir, csv) = temp_csv("ok");
    let out = run_on_fake_board(
        "record",
        |_| false,
        &["--out", csv.to_str().unwrap(), "--duration", "1", "--interval-ms", "50"],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));

    let log = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], expected_header());
    let rows = &lines[1..];
    // Samples at 0, 50, ..., 950 ms: 20, fewer only if a loaded machine
    // delayed ticks (a late tick shifts the later ones), never more.
    assert!((8..=20).contains(&rows.len()), "{} rows:\n{log}", rows.len());
    assert!(rows.iter().all(|r| !r.starts_with('#')), "no failed sample:\n{log}");
    for row in rows {
        let cells: Vec<&str> = row.split(',').collect();
        assert_eq!(cells.len(), lines[0].split(',').count(), "{row}");
        assert_eq!(cells[1..5], ["-1.234", "13.284", "21.5", "0.00"], "{row}");
    }
    let times: Vec<f64> = rows.iter().map(|r| r.split(',').next().unwrap().parse().unwrap()).collect();
    assert!(times[0] < 0.2, "{times:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    let mean_step = (times[times.len() - 1] - times[0]) / (times.len() - 1) as f64;
    assert!((0.045..0.125).contains(&mean_step), "{times:?}");
    assert!(*times.last().unwrap() < 1.0, "{times:?}");

    // Nine requests per sample, every one answered; the summary counts rows.
    // (A sample still in flight when the duration ends is dropped unwritten.)
    let count = |what: &str| -> u64 {
        let words: Vec<&str> = stdout.split_whitespace().collect();
        let i = words.iter().position(|w| *w == what).unwrap_or_else(|| panic!("no {what} in {stdout}"));
        words[i + 1].parse().unwrap()
    };
    let rows_n = rows.len() as u64;
    assert_eq!(count("rows"), rows_n, "{stdout}");
    assert!((9 * rows_n..9 * rows_n + 9).contains(&count("requests")), "{stdout}");
    assert!(count("replies") >= 9 * rows_n, "{stdout}");
    assert_eq!(count("timeouts"), 0, "{stdout}");
    assert!(stdout.contains("incomplete rows 0  rows without current 0"), "{stdout}");

    let profile = CurrentProfile::from_csv(&log, Interpolation::Hold).expect("a replayable profile");
    assert_eq!(profile.len(), rows.len());
    assert!((profile.end_s() - times.last().unwrap()).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_timeout_leaves_a_commented_row_with_empty_cells_and_the_file_still_replays() {
    let (dir, csv) = temp_csv("timeout");
    // Request 2 is the first read of the measurements (0x0100..): unanswered,
    // and not retried.
    let out = run_on_fake_board(
        "record",
        |n| n == 2,
        &[
            "--out",
            csv.to_str().unwrap(),
            "--duration",
            "0.5",
            "--interval-ms",
            "100",
            "--retries",
            "0",
            "--timeout-ms",
            "100",
        ],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("timeouts 1"), "{stdout}");
    assert!(stdout.contains("incomplete rows 1  rows without current 1"), "{stdout}");

    let log = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], expected_header());
    // The first sample: kept, as a comment, with the measurements empty and
    // the identity block (read first) filled in.
    assert!(lines[1].starts_with("# 0.0"), "{log}");
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(cells[1..5], ["", "", "", ""], "{log}");
    assert!(cells.contains(&"209"), "device_type still read: {log}");
    assert!(lines.len() >= 3, "later samples recorded: {log}");
    assert!(lines[2..].iter().all(|r| r.split(',').nth(1) == Some("-1.234")), "{log}");

    let profile = CurrentProfile::from_csv(&log, Interpolation::Hold).expect("a replayable profile");
    assert_eq!(profile.len(), lines.len() - 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_silent_board_exits_1_and_keeps_the_file() {
    let (dir, csv) = temp_csv("silent");
    let out = run_on_fake_board(
        "record",
        |_| true,
        &["--out", csv.to_str().unwrap(), "--duration", "5", "--timeout-ms", "20", "--retries", "0"],
    )
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}\n{stderr}", text(&out.stdout));
    assert!(stderr.contains("no reply from unit 1 on /dev/pts/"), "{stderr}");
    let log = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(log.lines().count(), 2, "header and the failed sample:\n{log}");
    assert!(text(&out.stdout).contains("rows 1  requests 9  replies 0  timeouts 9"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_port_exits_2() {
    let out = common::run_hil_rig(&["record", "--port", "/dev/hil-rig-no-such-port", "--out", "/nonexistent/r.csv"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/dev/hil-rig-no-such-port"), "{stderr}");
}
