//! Issue 21 item 1, "no input may reach a panic in any binary": `smartpro-sim serve … | head -1`
//! panicked with "failed printing to stdout" once `head` had gone.

use std::process::{Command, Stdio};

use smartpro_sim::cmd::exit;

#[test]
fn issue_21_a_closed_stdout_stops_the_binary_with_its_exit_code_not_a_panic() {
    let dir = std::env::temp_dir().join(format!("smartpro-closed-stdout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let scenario = dir.join("rest.toml");
    std::fs::write(
        &scenario,
        "name = \"rest\"\nvariant = 12\ninitial_soc = 0.5\n[[segment]]\nkind = \"rest\"\nduration_s = 5\n",
    )
    .unwrap();
    // The reader is gone before the child starts (dropping it after the spawn races the
    // child's first line into the pipe's buffer).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = Command::new(env!("CARGO_BIN_EXE_smartpro-sim"))
        .args(["run", "--out-dir"])
        .arg(dir.join("out"))
        .arg(&scenario)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(i32::from(exit::RUNTIME)), "{stderr}");
    assert!(stderr.contains(exit::CLOSED_STDOUT), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
