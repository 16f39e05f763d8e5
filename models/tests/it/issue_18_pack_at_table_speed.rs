//! Issue 18, the pack model at table speed: the tables are evaluated
//! directly (resampled once onto the pack's SOC axis, brackets cached per
//! axis) instead of re-sliced whenever the temperature moves. The voltage
//! must not move: PyBaMM's `ECM_Example` on the four built-in one-hour
//! profiles, coupled to its cell–jig thermal model, against the output of
//! the code before the change (`data/issue_18_ecm_voltages.csv`, written
//! with 1 nV resolution).

use std::path::PathBuf;

use models::ecm::EcmParams;
use models::ecm::run::{EcmRun, Heat, simulate};
use models::profile::Interpolation;
use models::profile::builtin::Builtin;

/// The issue's bound on the RMSE against the earlier output (V).
const MAX_RMSE_V: f64 = 1e-6;
/// Half the fixture's resolution, and the rounding of its decimals (V):
/// every row is the earlier value to the digit.
const MAX_ERROR_V: f64 = 0.51e-9;

/// A fixture run (profile, between, heat) and its rows (row, time_s, current_a, voltage_v).
type Run = ((String, String, String), Vec<(usize, f64, f64, f64)>);

fn read(rel: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn issue_18_table_speed_keeps_the_voltage_of_the_sliced_tables() {
    let ecm = EcmParams::from_toml_str(&read("../scenarios/data/pybamm/ecm_example.toml")).unwrap();
    let fixture = read("tests/data/issue_18_ecm_voltages.csv");
    let mut lines = fixture.lines().filter(|l| !l.starts_with('#'));
    assert_eq!(lines.next(), Some("profile,between,heat,row,time_s,current_A,voltage_V"));
    let mut runs: Vec<Run> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let key = (f[0].to_owned(), f[1].to_owned(), f[2].to_owned());
        let row = (f[3].parse().unwrap(), f[4].parse().unwrap(), f[5].parse().unwrap(), f[6].parse().unwrap());
        match runs.last_mut() {
            Some((k, rows)) if *k == key => rows.push(row),
            _ => runs.push((key, vec![row])),
        }
    }
    assert_eq!(runs.len(), 8);
    for ((name, between, heat), expected) in &runs {
        let b = Builtin::from_name(name).unwrap();
        let interpolation = if between == "hold" { Interpolation::Hold } else { Interpolation::Linear };
        let heat = if heat == "bernardi" { Heat::Bernardi } else { Heat::Pack };
        let run = EcmRun { initial_soc: b.initial_soc(), heat, ..EcmRun::default() };
        let rows = simulate(&ecm, &b.profile(interpolation), &run).unwrap();
        let (mut sum_sq, mut max) = (0.0_f64, 0.0_f64);
        for &(k, t, i, v) in expected {
            let r = rows[k];
            assert_eq!((r.time_s, r.current_a), (t, i), "{name} {between}: row {k}");
            let e = r.voltage_v - v;
            sum_sq += e * e;
            max = max.max(e.abs());
        }
        let rmse = (sum_sq / expected.len() as f64).sqrt();
        assert!(rmse < MAX_RMSE_V, "{name} {between} {heat:?}: RMSE {rmse} V");
        assert!(max <= MAX_ERROR_V, "{name} {between} {heat:?}: max {max} V");
        assert_eq!(rows.len(), expected.last().unwrap().0 + 1);
    }
}
