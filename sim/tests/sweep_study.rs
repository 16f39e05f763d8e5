//! `smartpro-sim sweep` (issue 7): determinism, shards + merge, exit codes,
//! the shipped what-if files, and the designer's example question.

use std::path::{Path, PathBuf};
use std::process::Command;

use smartpro_sim::sweep::{self, Study};

const BIN: &str = env!("CARGO_BIN_EXE_smartpro-sim");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn whatif(name: &str) -> PathBuf {
    repo().join("scenarios/whatif").join(name)
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("smartpro-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A small study (12 cases, some failing) based on the shipped example case.
fn small_study(dir: &Path) -> PathBuf {
    let text = format!(
        r#"name = "small"
base = "{}"
[[axis]]
param = "load_line.length_m"
values = [1.0, 3.0, 12.0]
[[axis]]
param = "load_line.cross_section_mm2"
values = [35, 95]
[[axis]]
param = "variant"
values = [24, 48]
"#,
        whatif("48v-3m-95mm2.toml").display()
    );
    let p = dir.join("small.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).arg("sweep").args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn same_study_gives_identical_results_and_shards_merge_to_one_run() {
    let d = tmp("shards");
    let study = small_study(&d);
    let s = study.to_str().unwrap();
    let one = d.join("one");
    let again = d.join("again");
    let (code, out, err) = sweep(&[s, "--out", one.to_str().unwrap(), "--jobs", "2"]);
    assert_eq!(code, 1, "{out}\n{err}"); // 12 m of 35 mm² fails
    assert!(out.contains("cases/s"), "{out}");
    let (code2, _, _) = sweep(&[s, "--out", again.to_str().unwrap(), "--jobs", "1", "--no-plots"]);
    assert_eq!(code2, 1);
    let csv = read(one.join("results.csv"));
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert_eq!(csv, read(again.join("results.csv")));
    assert_eq!(read(one.join("junit.xml")), read(again.join("junit.xml")));
    for f in ["peak_current.svg", "shutdown.svg", "arrester_margin.svg", "waveform_worst.svg"] {
        assert!(read(one.join(f)).starts_with("<svg"), "{f}");
    }

    // three uneven shards, merged in a shuffled order
    let mut dirs = Vec::new();
    for k in 0..3 {
        let dk = d.join(format!("shard{k}"));
        let (code, out, err) = sweep(&[s, "--shard", &format!("{k}/3"), "--out", dk.to_str().unwrap()]);
        assert!(code == 0 || code == 1, "{out}\n{err}");
        assert!(!dk.join("peak_current.svg").exists(), "shards leave plotting to the merge");
        dirs.push(dk.to_str().unwrap().to_owned());
    }
    let merged = d.join("merged");
    let mut args = vec!["merge", &dirs[2], &dirs[0], &dirs[1], "--out", merged.to_str().unwrap()];
    let (code, out, err) = sweep(&args);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(read(merged.join("results.csv")), csv);
    assert_eq!(read(merged.join("junit.xml")), read(one.join("junit.xml")));
    assert!(merged.join("waveform_worst.svg").exists());

    // a missing shard or a shard of another study is refused
    args.remove(1);
    let (code, _, err) = sweep(&args);
    assert_eq!(code, 2);
    assert!(err.contains("in no shard") || err.contains("missing"), "{err}");
    let (code, _, err) = sweep(&["merge", &dirs[0], &dirs[0], &dirs[1], &dirs[2], "--out", merged.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("more than one shard"), "{err}");
    let other = d.join("other");
    let text = read(study.clone()).replace("values = [24, 48]", "values = [12, 48]");
    std::fs::write(d.join("other.toml"), text).unwrap();
    let (c, _, _) =
        sweep(&[d.join("other.toml").to_str().unwrap(), "--shard", "0/3", "--out", other.to_str().unwrap()]);
    assert!(c == 0 || c == 1);
    let (code, _, err) =
        sweep(&["merge", other.to_str().unwrap(), &dirs[1], &dirs[2], "--out", merged.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("different studies"), "{err}");
}

#[test]
fn junit_has_a_testcase_per_case_and_check_with_reasons() {
    let d = tmp("junit");
    let study = Study::load(&small_study(&d)).unwrap();
    let results = sweep::run_cases(&study, 0..study.len(), 2, &|_| {}).unwrap();
    let mut xml = Vec::new();
    sweep::report::write_junit(&mut xml, &study, &results).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 12 * 4);
    let failures = results.iter().flat_map(|r| &r.checks).filter(|c| !c.passed).count();
    assert!(failures > 0);
    assert_eq!(xml.matches("<failure ").count(), failures);
    assert!(xml.contains("load_line.length_m=12.0"), "{xml}");
}

#[test]
fn bad_input_exits_2_and_names_the_problem() {
    let d = tmp("bad");
    let p = d.join("bad.toml");
    std::fs::write(&p, "variant = 48\n[load_line]\nlenght_m = 3\n").unwrap();
    let (code, _, err) = sweep(&[p.to_str().unwrap(), "--out", d.join("o").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("lenght_m"), "{err}");
    std::fs::write(&p, "variant = 48\n[[axis]]\nparam = \"load_line.length_m\"\nvalues = [1, -2]\n").unwrap();
    let (code, _, err) = sweep(&[p.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("case 1 (load_line.length_m = -2)"), "{err}");
    let (code, _, err) = sweep(&[p.to_str().unwrap(), "--shard", "2/2"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, _) = sweep(&[d.join("missing.toml").to_str().unwrap()]);
    assert_eq!(code, 2);
}

#[test]
fn whatif_files_are_studies_that_run_does_not_pick_up() {
    let dir = repo().join("scenarios/whatif");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            let s = Study::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.is_empty());
            n += 1;
        }
    }
    assert!(n >= 2);
    let run_files = smartpro_sim::cmd::run::scenario_files(&repo().join("scenarios")).unwrap();
    assert!(run_files.iter().all(|f| !f.starts_with(&dir)), "{run_files:?}");
}

/// The designer's question of issue 7, answered by the shipped case file.
#[test]
fn issue_7_48v_3m_95mm2_answer() {
    let study = Study::load(&whatif("48v-3m-95mm2.toml")).unwrap();
    assert_eq!(study.len(), 1);
    let o = sweep::simulate_case(&study.cases[0], true).unwrap();
    let m = &o.metrics;
    assert!(o.passed(), "{:#?}", o.checks);
    assert!((1000.0..1300.0).contains(&m.peak_current_a), "{}", m.peak_current_a);
    assert!(m.overcurrent_us.unwrap() < 100.0);
    assert!(m.arrester_margin_pct > 50.0, "{}", m.arrester_margin_pct);
    assert!(m.peak_switch_voltage_v < 150.0);
    assert!(o.samples.len() > 100);
}
