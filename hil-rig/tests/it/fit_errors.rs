//! `hil-rig fit` on bad input: every error names the file (and the line or
//! column), exits 2 for bad input and 1 for a fit that does not converge,
//! and writes nothing. Plus the `--chemistry nmc` path on a small
//! recording of the model's own equations.

use crate::common;

use std::path::PathBuf;

use common::{run_fit, temp_dir, text};
use hil_rig::estimate::fit::{CellEstimate, FitSample, SeriesModel};
use models::ocv::Chemistry;

/// Three NMC cells of 50 Ah pulsed from 90 % to ≈ 20 % every 10 s, as the
/// model's equations give them (no board): `time_s,current_A,voltage_V`.
fn nmc_recording() -> String {
    let model = SeriesModel {
        chemistry: Chemistry::Nmc,
        cells_in_series: 3,
        r_activation_j_per_mol: 0.0,
        own_consumption_w: 0.0,
    };
    let est = CellEstimate { capacity_ah: 50.0, ..CellEstimate::builtin(Chemistry::Nmc, 0.9) };
    let samples: Vec<FitSample> = (0..1300)
        .map(|k| {
            let i = match (k / 6) % 4 {
                0 => 0.0,
                1 => -40.0,
                2 => -15.0,
                _ => 10.0,
            };
            FitSample { t_s: 10.0 * f64::from(k), current_a: i, voltage_v: 0.0, temp_c: 25.0 }
        })
        .collect();
    let v = model.simulate(&est, &samples);
    let mut csv = "time_s,current_A,voltage_V\n".to_string();
    for (s, v) in samples.iter().zip(v) {
        csv.push_str(&format!("{:.3},{:.3},{:.3}\n", s.t_s, s.current_a, v));
    }
    csv
}

#[test]
fn nmc_through_the_command_line() {
    let dir = temp_dir("hil-rig-fit-errors-nmc");
    let rec = dir.join("nmc.csv");
    let out = dir.join("nmc.toml");
    std::fs::write(&rec, nmc_recording()).unwrap();
    let args = [rec.to_str().unwrap(), "--out", out.to_str().unwrap(), "--variant", "12", "--chemistry", "nmc"];
    let run = run_fit(&[&args[..], &["--r-activation", "0"]].concat());
    let stdout = text(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{}", text(&run.stderr));
    assert!(stdout.contains("3 NMC cells in series"), "{stdout}");
    assert!(stdout.contains("no temperature in the recording: 25 °C assumed"), "{stdout}");
    assert!(stdout.contains("time axis: the recording clock (time_s): no uptime_s readings"), "{stdout}");
    let ecm = models::ecm::EcmParams::from_toml_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(ecm.cells_in_series, 3);
    assert!((ecm.capacity_ah / 50.0 - 1.0).abs() < 0.01, "{}", ecm.capacity_ah);
    // The written file says where it comes from.
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(written.starts_with("# Equivalent-circuit parameters fitted by `hil-rig fit`"), "{written}");

    // A fit stopped after one iteration has not converged: exit 1, nothing written.
    std::fs::remove_file(&out).unwrap();
    let run = run_fit(&[&args[..], &["--max-iterations", "1"]].concat());
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{}\n{stderr}", text(&run.stdout));
    assert!(stderr.contains("nmc.csv: the fit did not converge in"), "{stderr}");
    assert!(stderr.contains("nothing written"), "{stderr}");
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_recordings_name_the_file_and_the_place() {
    let dir = temp_dir("hil-rig-fit-errors-bad");
    let out = dir.join("p.toml");
    let out_s = out.to_str().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let missing = dir.join("missing.csv");
    let garbled = write("garbled.csv", "time_s,current_A,voltage_V\n0,1,13.2\n1,x,13.2\n");
    let no_voltage = write("novolt.csv", "time_s,current_A,temp_C\n0,1,25\n1,2,25\n");
    let few: String = (0..5).map(|k| format!("{k},-10,13.2\n")).collect();
    let few = write("few.csv", &format!("time_s,current_A,voltage_V\n{few}"));
    let many: String = (0..50).map(|k| format!("{k},-10,13.2\n")).collect();
    let no_variant = write("novariant.csv", &format!("time_s,current_A,voltage_V\n{many}"));
    let cases: [(&PathBuf, &[&str], &str); 6] = [
        (&missing, &[], "cannot read recording"),
        (&garbled, &[], "garbled.csv:3: current_A: \"x\" is not a finite number"),
        (&no_voltage, &[], "novolt.csv:1: no column \"voltage_V\""),
        (&few, &["--variant", "12"], "few.csv: 5 usable samples"),
        (&no_variant, &[], "novariant.csv has no variant_v[V] column: give --variant"),
        (&no_variant, &["--variant", "12", "--fix", "r3_ohm=1"], "unknown parameter \"r3_ohm\""),
    ];
    for (path, extra, want) in cases {
        let p = path.to_str().unwrap();
        let run = run_fit(&[&[p, "--out", out_s][..], extra].concat());
        let stderr = text(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{p} {extra:?}: {stderr}");
        assert!(stderr.contains(want), "{p} {extra:?}: {stderr}");
        assert!(!out.exists(), "{p}: nothing written");
    }
    // A --fix out of range names the parameter.
    let run = run_fit(&[no_variant.to_str().unwrap(), "--out", out_s, "--variant", "12", "--fix", "initial_soc=2"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("initial_soc = 2 cannot be used: within 0..=1"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}
