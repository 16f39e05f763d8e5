//! `hil-rig fit` on recordings made from the twin with known parameters
//! (issue 8, item 5): the fit recovers the capacity within 1 % and R0 within
//! 5 %.
//!
//! The recordings are made offline and fast: `smartpro_sim`'s engine runs a
//! pack of a known equivalent circuit on a dynamic profile, and its board's
//! registers are read through the Modbus register bank and written with the
//! same planning, decoding and row formatting as `hil-rig record`
//! (`decode::plan`, `recording::record_columns`, `recording::format_row`) —
//! so the fit sees the board's measurement resolution, noise and errors, not
//! the model's truth. Time is written as a twin served with `--speed 10`
//! would give it (`time_s` is wall-clock time, `uptime_s` simulated time).

mod common;

use std::path::{Path, PathBuf};

use common::{run_fit, temp_dir, text};

use firmware_core::map::REGISTERS;
use hil_rig::decode::{self, MAX_REGS_PER_REQUEST};
use hil_rig::recording;
use models::ecm::{self, EcmParams};
use models::ocv::LFP;
use models::table::TableValues;
use smartpro_sim::engine::{Engine, HeldCurrent};
use smartpro_sim::scenario::Scenario;

/// Per cell, at 25 °C.
const CAPACITY_AH: f64 = 90.0;
const R0_OHM: f64 = 0.6e-3;
const R1_OHM: f64 = 0.4e-3;
const TAU1_S: f64 = 40.0;
const R2_OHM: f64 = 0.25e-3;
const TAU2_S: f64 = 500.0;
const OCV_OFFSET_V: f64 = 0.004;
/// Resistances follow Arrhenius with the built-in cells' activation energy.
const ACTIVATION_J_PER_MOL: f64 = 20_000.0;
/// The recording's wall clock runs this many times slower than the twin.
const SPEED: f64 = 10.0;
/// Record every this many seconds of twin time; the profile's current
/// changes on this grid.
const RECORD_INTERVAL_S: f64 = 5.0;

/// The known cell, written by hand as a parameter file: the LFP OCV table
/// shifted by the offset, resistances over the built-in temperatures.
fn known_cell() -> EcmParams {
    let soc: Vec<String> = LFP.points().iter().map(|p| p.0.to_string()).collect();
    let ocv: Vec<String> = LFP.points().iter().map(|p| (p.1 + OCV_OFFSET_V).to_string()).collect();
    let temps: Vec<String> = ecm::BUILTIN_TEMPS_C.iter().map(f64::to_string).collect();
    let table = |r: f64| {
        let rows: Vec<String> = ecm::BUILTIN_TEMPS_C
            .iter()
            .map(|&t| {
                let v = r * ecm::arrhenius(ACTIVATION_J_PER_MOL, t);
                format!("[{}]", vec![v.to_string(); soc.len()].join(", "))
            })
            .collect();
        format!("[{}]", rows.join(", "))
    };
    let text = format!(
        "name = \"known\"\ncapacity_ah = {CAPACITY_AH}\ncells_in_series = 4\nsoc = [{}]\ntemp_c = [{}]\n\
         ocv_v = [{}]\nr0_ohm = {}\nr1_ohm = {}\ntau1_s = {TAU1_S}\nr2_ohm = {}\ntau2_s = {TAU2_S}\n",
        soc.join(", "),
        temps.join(", "),
        ocv.join(", "),
        table(R0_OHM),
        table(R1_OHM),
        table(R2_OHM),
    );
    EcmParams::from_toml_str(&text).unwrap()
}

/// A 12 V twin of the known pack at `initial_soc`: no cell spread, no
/// ageing, the board told the SOC.
fn twin(initial_soc: f64) -> Engine {
    let text = format!(
        "name = \"fit-truth\"\nvariant = 12\nseed = 8\ninitial_soc = {initial_soc}\nadc_rate_hz = 10\n\
         [pack]\ncapacity_spread_rel = 0.0\nr0_spread_rel = 0.0\nsoc_spread = 0.0\n\
         [pack.ageing]\ncapacity_fade_per_efc = 0.0\ncapacity_fade_per_sqrt_day = 0.0\n\
         resistance_growth_per_efc = 0.0\nresistance_growth_per_sqrt_day = 0.0\n\
         [firmware]\ninitial_soc_pct = {}\n[[segment]]\nkind = \"rest\"\nduration_s = 1\n",
        100.0 * initial_soc
    );
    let mut scenario = Scenario::parse(&text, Path::new("fit-truth.toml")).unwrap();
    scenario.ecm = Some(known_cell());
    Engine::new(&scenario).unwrap()
}

/// Runs the twin over `profile` (one current per record interval, + =
/// charge) and returns the recording as `hil-rig record` writes it, and the
/// lowest and highest true SOC.
fn record(engine: &mut Engine, profile: &[f64]) -> (String, (f64, f64)) {
    let (header, regs) = recording::record_columns().unwrap();
    let blocks = decode::plan(REGISTERS, &regs, MAX_REGS_PER_REQUEST);
    let mut csv = header.join(",");
    csv.push('\n');
    let ticks = (RECORD_INTERVAL_S * 10.0) as usize;
    let mut soc = (engine.truth().soc, engine.truth().soc);
    for &current_a in profile {
        let mut drive = HeldCurrent::new(current_a);
        for tick in 0..ticks {
            engine.tick(&mut drive).unwrap();
            if tick == 0 {
                // Read after the first conversion at the new current, as a
                // master polling a board would see it.
                let mut raws = vec![None; regs.len()];
                for b in &blocks {
                    let mut words = vec![0u16; usize::from(b.count)];
                    engine.board_mut().read_registers(b.start, &mut words).unwrap();
                    for r in &b.regs {
                        let k = regs.iter().position(|x| x.addr == r.addr).unwrap();
                        raws[k] = b.words_of(r, &words).map(|w| r.ty.decode(w));
                    }
                }
                csv.push_str(&recording::format_row(engine.t_s() / SPEED, &regs, &raws));
                csv.push('\n');
            }
        }
        let s = engine.truth().soc;
        soc = (soc.0.min(s), soc.1.max(s));
    }
    (csv, soc)
}

/// `seconds` of `current_a`, on the record grid.
fn hold(profile: &mut Vec<f64>, current_a: f64, seconds: f64) {
    let n = (seconds / RECORD_INTERVAL_S).round() as usize;
    profile.extend(std::iter::repeat_n(current_a, n));
}

/// A dynamic discharge of about 0.46 C on average: pulses up to 1 C,
/// regeneration, short rests, and two 15-minute rests.
fn drive_cycles(cycles: usize) -> Vec<f64> {
    let mut p = Vec::new();
    hold(&mut p, 0.0, 60.0);
    for c in 0..cycles {
        for (i, s) in [
            (-90.0, 60.0),
            (0.0, 60.0),
            (-45.0, 120.0),
            (45.0, 30.0),
            (-70.0, 120.0),
            (0.0, 30.0),
            (-30.0, 120.0),
            (-60.0, 60.0),
        ] {
            hold(&mut p, i, s);
        }
        if c % 4 == 3 {
            hold(&mut p, 0.0, 900.0);
        }
    }
    p
}

/// A table's value at 25 °C (any SOC: the fitted tables are flat over SOC).
fn at_25c(ecm: &EcmParams, t: &TableValues) -> f64 {
    match t {
        TableValues::Scalar(v) => *v,
        TableValues::Soc(v) => v[0],
        TableValues::TempSoc(rows) => rows[ecm.temp_c.iter().position(|&t| t == ecm::T_REF_C).unwrap()][0],
        TableValues::TempCurrentSoc(b) => b[ecm.temp_c.iter().position(|&t| t == ecm::T_REF_C).unwrap()][0][0],
    }
}

/// Writes `csv` as `recording.csv` in a fresh folder `name`, fits it into
/// `params.toml` there and expects success: (folder, params file, stdout).
fn fit_recording(name: &str, csv: &str) -> (PathBuf, PathBuf, String) {
    let dir = temp_dir(&format!("hil-rig-fit-{name}"));
    let rec = dir.join("recording.csv");
    let out = dir.join("params.toml");
    std::fs::write(&rec, csv).unwrap();
    let run = run_fit(&[rec.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stdout = text(&run.stdout);
    eprintln!("{stdout}");
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{}", text(&run.stderr));
    (dir, out, stdout)
}

#[test]
fn recovers_capacity_and_r0_of_a_known_lfp_pack_over_both_knees() {
    let mut engine = twin(0.97);
    let (csv, (soc_lo, soc_hi)) = record(&mut engine, &drive_cycles(12));
    // A meaningful LFP recording reaches both knees of the OCV curve.
    assert!(soc_hi > 0.96 && soc_lo < 0.10, "true SOC {soc_lo:.3}..{soc_hi:.3}");
    let (dir, out, stdout) = fit_recording("lfp", &csv);
    assert!(stdout.contains("time axis: board uptime"), "{stdout}");
    assert!(stdout.contains("10.0000× time_s"), "the twin's speed is found: {stdout}");
    assert!(!stdout.contains("NOT IDENTIFIABLE"), "{stdout}");

    let written = std::fs::read_to_string(&out).unwrap();
    let ecm = EcmParams::from_toml_str(&written).expect("the written file loads as a parameter set");
    ecm.validate().unwrap();
    assert_eq!(ecm.cells_in_series, 4);
    let rel = |got: f64, want: f64| (got / want - 1.0).abs();
    assert!(rel(ecm.capacity_ah, CAPACITY_AH) < 0.01, "capacity {} Ah vs {CAPACITY_AH}", ecm.capacity_ah);
    let r0 = at_25c(&ecm, &ecm.r0_ohm);
    assert!(rel(r0, R0_OHM) < 0.05, "R0 {r0} Ω vs {R0_OHM}");
    // The RC pairs (reported in docs/hil-rig.md): found to within 5 % as well.
    let r1 = at_25c(&ecm, ecm.r1_ohm.as_ref().unwrap());
    let r2 = at_25c(&ecm, ecm.r2_ohm.as_ref().unwrap());
    let tau1 = at_25c(&ecm, ecm.tau1_s.as_ref().unwrap());
    let tau2 = at_25c(&ecm, ecm.tau2_s.as_ref().unwrap());
    eprintln!(
        "capacity {:.3} Ah ({:+.2} %), R0 {:.4} mΩ ({:+.2} %), R1 {:.4} mΩ ({:+.1} %), τ1 {tau1:.1} s ({:+.1} %), \
         R2 {:.4} mΩ ({:+.1} %), τ2 {tau2:.0} s ({:+.1} %)",
        ecm.capacity_ah,
        100.0 * (ecm.capacity_ah / CAPACITY_AH - 1.0),
        1e3 * r0,
        100.0 * (r0 / R0_OHM - 1.0),
        1e3 * r1,
        100.0 * (r1 / R1_OHM - 1.0),
        100.0 * (tau1 / TAU1_S - 1.0),
        1e3 * r2,
        100.0 * (r2 / R2_OHM - 1.0),
        100.0 * (tau2 / TAU2_S - 1.0),
    );
    for (name, got, want) in [("R1", r1, R1_OHM), ("τ1", tau1, TAU1_S), ("R2", r2, R2_OHM), ("τ2", tau2, TAU2_S)] {
        assert!(rel(got, want) < 0.05, "{name} {got} vs {want}");
    }

    // The file is what a scenario's ecm_file loads.
    let scenario = "name = \"fitted\"\nvariant = 12\ninitial_soc = 0.5\necm_file = \"params.toml\"\n\
         [[segment]]\nkind = \"rest\"\nduration_s = 1\n";
    let s = Scenario::parse(scenario, &dir.join("fitted.toml")).expect("a scenario loads the written file");
    assert_eq!(s.ecm.as_ref(), Some(&ecm));
    Engine::new(&s).expect("and the twin runs on it");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_short_recording_on_the_lfp_plateau_does_not_claim_a_capacity() {
    // 25 minutes from 60 %: pulses show R0, the plateau hides capacity and SOC.
    let mut engine = twin(0.60);
    let (csv, _) = record(&mut engine, &drive_cycles(3)[..300]);
    let (dir, out, stdout) = fit_recording("plateau", &csv);
    assert!(stdout.contains("capacity_ah is not identifiable from this recording"), "{stdout}");
    assert!(stdout.contains("record into an end of the OCV curve"), "{stdout}");
    // Held at the board's rated capacity (capacity_dah, 100 Ah by default).
    let ecm = EcmParams::from_toml_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(ecm.capacity_ah, 100.0);
    let r0 = at_25c(&ecm, &ecm.r0_ohm);
    assert!((r0 / R0_OHM - 1.0).abs() < 0.05, "R0 is still found: {r0}");
    std::fs::remove_dir_all(&dir).unwrap();
}
