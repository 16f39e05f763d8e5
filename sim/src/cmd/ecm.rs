//! `smartpro-sim ecm PARAMS PROFILE --out voltage.csv`: the pack model alone
//! — an external equivalent-circuit parameter set, its cell–jig thermal
//! model — on a current profile, for comparison with other ECM
//! implementations (PyBaMM's `Thevenin`: `tools/pybamm/`) and for timing the
//! pack model. The run itself is [`models::ecm::run`] (how the pack is
//! stepped between rows, the heat, the output rows); this is its command
//! line: the files, the settings, the CSV out. PROFILE is a CSV file or a
//! built-in one-hour profile, `builtin:cc|hppc|drive|sine`
//! ([`models::profile::builtin`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use models::ecm::EcmParams;
use models::profile::builtin::Builtin;
use models::profile::{CurrentProfile, Interpolation};
use models::variant::Variant;

pub use models::ecm::run::{EcmRun, EcmRunError, Heat, Row, simulate};

use super::exit::{self, Exit};

/// Initial SOC of a run on a profile file without `--initial-soc`.
pub const DEFAULT_INITIAL_SOC: f64 = 0.5;

/// `ecm`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "the profile ran and the output was written"),
    (Exit::BadInput, "bad input: the parameter file, the profile, arguments"),
    (Exit::Runtime, "runtime failure: the output cannot be written, the model left its valid range"),
];

/// How the current varies between profile rows (the CLI's spelling of
/// [`Interpolation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Between {
    /// Linear between rows (PyBaMM's drive cycles).
    Linear,
    /// Each row holds until the next.
    Hold,
}

/// Which heat drives the thermal model (the CLI's spelling of [`Heat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum HeatArg {
    /// The twin's: `Pack::heat_w` = I²R0 + Σ vk²/Rk (the RC resistors' dissipation) + I·T·dOCV/dT.
    #[default]
    Pack,
    /// Bernardi's (PyBaMM's `Thevenin`, Nieto et al. 2012 eq. 1): I·(V − OCV) + I·T·dOCV/dT; the RC
    /// pairs' term is I·vk, which also counts the energy charging their capacitors.
    Bernardi,
}

impl From<HeatArg> for Heat {
    fn from(h: HeatArg) -> Heat {
        match h {
            HeatArg::Pack => Heat::Pack,
            HeatArg::Bernardi => Heat::Bernardi,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Equivalent-circuit parameter set: TOML, or JSON if the name ends in .json (docs/models.md).
    pub params: PathBuf,
    /// Current profile CSV: time_s,current_A (docs/models.md, "Current profiles"), or a built-in
    /// one-hour profile: builtin:cc, builtin:hppc, builtin:drive, builtin:sine (+ = charge).
    pub profile: PathBuf,
    /// Output CSV: time_s,current_A,voltage_V,soc,temp_C,jig_temp_C, one row per profile row ("-": stdout).
    #[arg(short = 'o', long, value_name = "FILE")]
    pub out: PathBuf,
    /// Initial SOC (0..1) of every cell; default: 0.5, or the built-in profile's own.
    #[arg(long, value_name = "0..1")]
    pub initial_soc: Option<f64>,
    /// Ambient temperature (°C).
    #[arg(long, value_name = "C", default_value_t = 25.0)]
    pub ambient_c: f64,
    /// Initial temperature of cell and jig (°C); default: the ambient.
    #[arg(long, value_name = "C")]
    pub initial_temp_c: Option<f64>,
    /// The profile's current is + = discharge (PyBaMM's convention); default + = charge.
    #[arg(long)]
    pub discharge_positive: bool,
    /// How the current varies between rows: linear, as PyBaMM's drive cycles (and tools/pybamm/);
    /// hold, as a scenario's `kind = "profile"` segment in `smartpro-sim run` replays a CSV.
    #[arg(long, value_enum, default_value = "linear")]
    pub between: Between,
    /// Longest internal step (s).
    #[arg(long, value_name = "S", default_value_t = 1.0)]
    pub max_step_s: f64,
    /// Variant whose cell count applies when the set's cells_in_series is 0 (12, 24, 48).
    #[arg(long, value_name = "12|24|48", default_value = "12")]
    pub variant: Variant,
    /// Heat that drives the thermal model: pack (the twin's) or bernardi (PyBaMM's).
    #[arg(long, value_enum, default_value = "pack")]
    pub heat: HeatArg,
}

/// Reads a parameter set: JSON if the name ends in `.json`, else TOML.
pub fn read_params(path: &Path) -> anyhow::Result<EcmParams> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let parsed = if path.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")) {
        EcmParams::from_json_str(&text)
    } else {
        EcmParams::from_toml_str(&text)
    };
    parsed.with_context(|| path.display().to_string())
}

/// Prefix of a built-in profile's name in place of a file.
pub const BUILTIN_PREFIX: &str = "builtin:";

/// The built-in profile `path` names (`builtin:NAME`), if it names one; an
/// error if it has the prefix but no such profile.
pub fn builtin_profile(path: &Path) -> anyhow::Result<Option<Builtin>> {
    let Some(name) = path.to_str().and_then(|p| p.strip_prefix(BUILTIN_PREFIX)) else { return Ok(None) };
    match Builtin::from_name(name) {
        Some(b) => Ok(Some(b)),
        None => {
            let known: Vec<String> = Builtin::ALL.iter().map(|b| format!("{BUILTIN_PREFIX}{}", b.name())).collect();
            anyhow::bail!("{}: no built-in profile {name:?}; known: {}", path.display(), known.join(", "))
        }
    }
}

/// Reads a profile CSV, or builds the built-in profile it names.
pub fn read_profile(path: &Path, between: Between, discharge_positive: bool) -> anyhow::Result<CurrentProfile> {
    let mode = match between {
        Between::Linear => Interpolation::Linear,
        Between::Hold => Interpolation::Hold,
    };
    if let Some(b) = builtin_profile(path)? {
        anyhow::ensure!(
            !discharge_positive,
            "{}: --discharge-positive is for files with + = discharge; the built-in profiles are + = charge",
            path.display()
        );
        return Ok(b.profile(mode));
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let profile = CurrentProfile::from_csv(&text, mode).with_context(|| path.display().to_string())?;
    Ok(if discharge_positive { profile.negated() } else { profile })
}

/// The rows as CSV text. No cell reads `-0`: a zero is written unsigned,
/// whether the value is −0.0 (a rest row of a profile with + = discharge,
/// negated) or a tiny negative that rounds to zero at the cell's digits.
pub fn to_csv(rows: &[Row]) -> String {
    let mut s = String::with_capacity(64 * (rows.len() + 1));
    s.push_str("time_s,current_A,voltage_V,soc,temp_C,jig_temp_C\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{}\n",
            shortest(r.time_s),
            shortest(r.current_a),
            fixed(r.voltage_v, 9),
            fixed(r.soc, 12),
            fixed(r.temp_c, 9),
            fixed(r.jig_temp_c, 9)
        ));
    }
    s
}

/// `x` in the shortest form that reads back to it, `0` for ±0.
fn shortest(x: f64) -> String {
    // −0.0 + 0.0 is +0.0; every other value is unchanged.
    format!("{}", x + 0.0)
}

/// `x` with `digits` decimals, without the sign of a value that rounds to zero.
fn fixed(x: f64, digits: usize) -> String {
    let s = format!("{x:.digits$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.bytes().all(|b| b == b'0' || b == b'.') => rest.to_owned(),
        _ => s,
    }
}

pub fn execute(cmd: &Cmd) -> u8 {
    let input = (|| -> anyhow::Result<_> {
        let ecm = read_params(&cmd.params)?;
        let profile = read_profile(&cmd.profile, cmd.between, cmd.discharge_positive)?;
        let initial_soc = builtin_profile(&cmd.profile)?.map_or(DEFAULT_INITIAL_SOC, Builtin::initial_soc);
        Ok((ecm, profile, cmd.initial_soc.unwrap_or(initial_soc)))
    })();
    let (ecm, profile, initial_soc) = match input {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    let run = EcmRun {
        initial_soc,
        ambient_c: cmd.ambient_c,
        initial_temp_c: cmd.initial_temp_c.unwrap_or(cmd.ambient_c),
        max_step_s: cmd.max_step_s,
        variant: cmd.variant,
        heat: cmd.heat.into(),
    };
    let started = Instant::now();
    let simulated = simulate(&ecm, &profile, &run);
    let model_s = started.elapsed().as_secs_f64();
    let rows = match simulated {
        Ok(rows) => rows,
        Err(e @ EcmRunError::Setting { .. }) => {
            eprintln!("error: option {e}");
            return exit::BAD_INPUT;
        }
        Err(e @ EcmRunError::Params(_)) => {
            eprintln!("error: {}: {e}", cmd.params.display());
            return exit::BAD_INPUT;
        }
        Err(e) => {
            eprintln!("error: {}: {e}", cmd.profile.display());
            return exit::RUNTIME;
        }
    };
    let text = to_csv(&rows);
    let written = if cmd.out.as_os_str() == "-" {
        std::io::stdout().lock().write_all(text.as_bytes()).context("stdout")
    } else {
        std::fs::write(&cmd.out, text).with_context(|| format!("{}: cannot write", cmd.out.display()))
    };
    match written {
        Ok(()) => {
            if cmd.out.as_os_str() != "-" {
                let last = rows.last().map_or(0.0, |r| r.time_s);
                let per_row_ns = model_s * 1e9 / rows.len() as f64;
                println!(
                    "wrote {}: {} rows, {last} s; model {:.3} ms ({per_row_ns:.0} ns per row, {:.0} x realtime)",
                    cmd.out.display(),
                    rows.len(),
                    model_s * 1e3,
                    last / model_s
                );
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::RUNTIME
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21 (8): `ecm` wrote `-0` for the zero current of a rest row read
    /// with `--discharge-positive` (the profile negated) and for values that
    /// round to zero.
    #[test]
    fn issue_21_ecm_writes_no_negative_zero() {
        let row = |current_a: f64, voltage_v: f64| Row {
            time_s: 10.0,
            current_a,
            voltage_v,
            soc: -1e-15,
            temp_c: -0.0,
            jig_temp_c: -4e-10,
        };
        let csv = to_csv(&[row(-0.0, 13.2), row(-2.5, -1e-12)]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "10,0,13.200000000,0.000000000000,0.000000000,0.000000000");
        assert_eq!(lines[2], "10,-2.5,0.000000000,0.000000000000,0.000000000,0.000000000");
        assert_eq!(fixed(-0.5, 3), "-0.500");
        assert_eq!((shortest(-0.0), shortest(-0.25)), ("0".to_owned(), "-0.25".to_owned()));
        // End to end: a rest row of a + = discharge file.
        let dir = std::env::temp_dir().join(format!("smartpro-ecm-negzero-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let profile = dir.join("p.csv");
        std::fs::write(&profile, "time_s,current_A\n0,0\n10,40\n20,0\n").unwrap();
        let p = read_profile(&profile, Between::Hold, true).unwrap();
        let ecm = read_params(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scenarios/data/lfp-100ah-ecm.toml")))
            .unwrap();
        let run = EcmRun {
            initial_soc: 0.5,
            ambient_c: 25.0,
            initial_temp_c: 25.0,
            max_step_s: 1.0,
            variant: Variant::V12,
            heat: Heat::Pack,
        };
        let text = to_csv(&simulate(&ecm, &p, &run).unwrap());
        assert!(!text.contains(",-0,") && !text.contains(",-0.0000"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn builtin_profiles_by_name() {
        let drive = read_profile(Path::new("builtin:drive"), Between::Hold, false).unwrap();
        assert_eq!(drive, Builtin::Drive.profile(Interpolation::Hold));
        let e = read_profile(Path::new("builtin:nope"), Between::Hold, false).unwrap_err();
        assert!(e.to_string().contains("builtin:cc"), "{e}");
        let e = read_profile(Path::new("builtin:cc"), Between::Hold, true).unwrap_err();
        assert!(e.to_string().contains("--discharge-positive"), "{e}");
        assert_eq!(builtin_profile(Path::new("scenarios/data/x.csv")).unwrap(), None);
    }
}
