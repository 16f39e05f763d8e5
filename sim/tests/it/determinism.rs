//! A seeded scenario reproduces bit for bit.

use std::path::Path;

use smartpro_sim::runner;
use smartpro_sim::scenario::Scenario;

const SCENARIO: &str = r#"
name = "det"
variant = 24
seed = 99
initial_soc = 0.5
trace_interval_s = 0.1
[[segment]]
kind = "discharge"
current_a = 80.0
duration_s = 120
[[segment]]
kind = "charge"
current_a = 30.0
duration_s = 60
"#;

fn trace(text: &str) -> Vec<u8> {
    let s = Scenario::parse(text, Path::new("det.toml")).unwrap();
    let mut out = Vec::new();
    runner::run(&s, Some(&mut out)).unwrap();
    out
}

#[test]
fn same_seed_gives_a_byte_identical_trace() {
    let _machine = crate::machine::exclusive();
    let a = trace(SCENARIO);
    let b = trace(SCENARIO);
    assert!(a.len() > 1_000);
    assert_eq!(a, b);
}

#[test]
fn another_seed_gives_another_trace() {
    let _machine = crate::machine::exclusive();
    let a = trace(SCENARIO);
    let b = trace(&SCENARIO.replace("seed = 99", "seed = 100"));
    assert_ne!(a, b);
}
