//! `smartpro-sim sweep` and `merge` (issue 7): determinism, shards + merge
//! (grid and Monte Carlo), summary.md, SVG and PNG plots, exit codes, the
//! shipped what-if files, and the designer's example question.

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
    let mut all = vec!["sweep"];
    all.extend(args);
    smartpro(&all)
}

fn smartpro(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).args(args).output().unwrap();
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
    let _machine = crate::machine::exclusive();
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
    assert_eq!(read(one.join("summary.md")), read(again.join("summary.md")));
    for f in ["peak_current", "shutdown", "arrester_margin", "arrester_energy_vs_inductance", "waveform_worst"] {
        assert!(read(one.join(format!("{f}.svg"))).starts_with("<svg"), "{f}");
        let png = std::fs::read(one.join(format!("{f}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{f}.png");
    }
    assert!(!again.join("peak_current.png").exists(), "--no-plots");

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
    assert_eq!(read(merged.join("summary.md")), read(one.join("summary.md")));
    assert!(merged.join("waveform_worst.svg").exists() && merged.join("waveform_worst.png").exists());
    // the top-level `smartpro-sim merge` is the same command
    let merged2 = d.join("merged2");
    let (code, out, err) = smartpro(&["merge", &dirs[1], &dirs[2], &dirs[0], "--out", merged2.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(read(merged2.join("results.csv")), csv);
    assert_eq!(read(merged2.join("summary.md")), read(one.join("summary.md")));

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
    let _machine = crate::machine::exclusive();
    let d = tmp("junit");
    let study = Study::load(&small_study(&d)).unwrap();
    let results = sweep::run_cases(&study, 0..study.len(), 2, &|_| {}).unwrap();
    let mut xml = Vec::new();
    sweep::report::write_junit(&mut xml, &study, &results).unwrap();
    let xml = String::from_utf8(xml).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 12 * models::transient::CHECK_NAMES.len());
    let failures = results.iter().flat_map(|r| &r.checks).filter(|c| !c.passed).count();
    assert!(failures > 0);
    assert_eq!(xml.matches("<failure ").count(), failures);
    assert!(xml.contains("load_line.length_m=12.0"), "{xml}");
}

#[test]
fn bad_input_exits_2_and_names_the_problem() {
    let _machine = crate::machine::exclusive();
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
    let _machine = crate::machine::exclusive();
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
    let run_files = smartpro_sim::tomlfile::toml_files(&[repo().join("scenarios")]).unwrap();
    assert!(run_files.iter().all(|f| !f.starts_with(&dir)), "{run_files:?}");
}

/// A small grid × Monte Carlo study: 2 cross-sections × 12 draws of cable
/// length (reaching lengths that fail), temperature and cell R0.
fn mc_study(dir: &Path, seed: u64) -> PathBuf {
    let text = format!(
        r#"name = "mc"
base = "{}"
samples = 12
seed = {seed}
[[axis]]
param = "load_line.cross_section_mm2"
values = [35, 95]
[[random]]
param = "load_line.length_m"
dist = "normal"
mean = 9.0
sd = 3.0
min = 1.0
max = 14.0
[[random]]
param = "battery.temperature_c"
dist = "uniform"
min = -20
max = 45
[[random]]
param = "battery.cell_r0_ohm"
dist = "lognormal"
mean = 0.5e-3
sd = 0.05e-3
"#,
        whatif("48v-3m-95mm2.toml").display()
    );
    let p = dir.join(format!("mc-{seed}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn monte_carlo_is_seeded_and_shards_draw_what_one_run_draws() {
    let _machine = crate::machine::exclusive();
    let d = tmp("mc");
    let study = mc_study(&d, 7);
    let s = study.to_str().unwrap();
    let one = d.join("one");
    let (code, out, err) = sweep(&[s, "--out", one.to_str().unwrap(), "--jobs", "2", "--no-plots"]);
    assert_eq!(code, 1, "cable up to 14 m of 35 mm² fails somewhere: {out}\n{err}");
    let csv = read(one.join("results.csv"));
    assert_eq!(csv.lines().count(), 25, "{csv}");
    assert!(csv.starts_with(
        "case,load_line.cross_section_mm2,draw,load_line.length_m,battery.temperature_c,battery.cell_r0_ohm,variant,"
    ));
    // draw s is the same at both cross-sections (common random numbers)
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    for k in 0..12 {
        assert_eq!(rows[k][2], k.to_string());
        assert_eq!(rows[k][3..6], rows[k + 12][3..6], "draw {k}");
    }
    assert!(rows.iter().all(|r| (1.0..=14.0).contains(&r[3].parse::<f64>().unwrap())), "truncation");

    // same seed: the same bytes; another seed: other draws
    let again = d.join("again");
    sweep(&[s, "--out", again.to_str().unwrap(), "--jobs", "1", "--no-plots"]);
    assert_eq!(read(again.join("results.csv")), csv);
    let other = d.join("other");
    sweep(&[mc_study(&d, 8).to_str().unwrap(), "--out", other.to_str().unwrap(), "--no-plots"]);
    assert_ne!(read(other.join("results.csv")), csv);

    // 2 shards merged == 1 run, byte for byte (results, summary, junit)
    let shards: Vec<String> = (0..2)
        .map(|k| {
            let dk = d.join(format!("shard{k}"));
            let (code, out, err) = sweep(&[s, "--shard", &format!("{k}/2"), "--out", dk.to_str().unwrap()]);
            assert!(code == 0 || code == 1, "{out}\n{err}");
            dk.to_str().unwrap().to_owned()
        })
        .collect();
    let merged = d.join("merged");
    let (code2, out, err) = smartpro(&["merge", &shards[1], &shards[0], "--out", merged.to_str().unwrap()]);
    assert_eq!(code2, code, "{out}\n{err}");
    for f in ["results.csv", "summary.md", "junit.xml"] {
        assert_eq!(read(merged.join(f)), read(one.join(f)), "{f}");
    }
    assert!(merged.join("shutdown.png").exists(), "the merge plots");
}

#[test]
fn summary_md_names_the_worst_cases_and_the_safe_region() {
    let _machine = crate::machine::exclusive();
    let d = tmp("summary");
    let study = small_study(&d);
    let out = d.join("out");
    let (code, _, err) = sweep(&[study.to_str().unwrap(), "--out", out.to_str().unwrap(), "--no-plots"]);
    assert_eq!(code, 1, "{err}");
    let md = read(out.join("summary.md"));
    let results = read(out.join("results.csv"));
    let failed = results.lines().skip(1).filter(|l| !l.ends_with(",PASS")).count();
    assert!(failed > 0);
    assert!(md.contains(&format!("{} of 12 cases pass every check", 12 - failed)), "{md}");
    // the failing shutdown of 12 m of 35 mm² is listed with its parameters and reason
    assert!(md.contains("### `shutdown`"), "{md}");
    let shutdown = &md[md.find("### `shutdown`").unwrap()..];
    let first_row = shutdown.lines().find(|l| l.starts_with("| ") && !l.starts_with("| case")).unwrap();
    assert!(first_row.contains("load_line.length_m=12.0, load_line.cross_section_mm2=35"), "{first_row}");
    assert!(first_row.contains("**FAIL**") && first_row.contains("above 250 A for"), "{first_row}");
    // the boundary: per cross-section, up to which length every case passes
    assert!(md.contains("## The boundary of the safe region"), "{md}");
    assert!(md.contains("| 35 | ≤ 3 | 12 | 12 |"), "{md}");
}

/// The designer's question of issue 7, answered by the shipped case file.
#[test]
fn issue_7_48v_3m_95mm2_answer() {
    let _machine = crate::machine::exclusive();
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
