//! `build-fmu`: packs the SmartPro FMU (`modelDescription.xml` and this
//! build's shared library) into a `.fmu` archive.
//!
//! `cargo run --release --manifest-path fmu/Cargo.toml -- --out smartpro.fmu`
//! (cargo builds the crate's cdylib beside this binary first).

use std::path::PathBuf;
use std::process::ExitCode;

use smartpro_fmu::description::{self, LIBRARY_EXTENSION, MODEL_IDENTIFIER, PLATFORM};

#[derive(Debug, clap::Parser)]
#[command(about = "Pack the SmartPro twin's FMI 3.0 co-simulation FMU")]
struct Args {
    /// The `.fmu` to write.
    #[arg(long, default_value = "smartpro.fmu")]
    out: PathBuf,
    /// The shared library to pack; default: this build's `libsmartpro_fmu` beside this binary.
    #[arg(long)]
    lib: Option<PathBuf>,
    /// Also write `modelDescription.xml` to this path.
    #[arg(long)]
    description: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args: Args = clap::Parser::parse();
    let lib = match args.lib {
        Some(lib) => lib,
        None => {
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("error: locating this binary (to find the library beside it): {e}");
                    return ExitCode::FAILURE;
                }
            };
            let prefix = if cfg!(windows) { "" } else { "lib" };
            exe.with_file_name(format!("{prefix}{MODEL_IDENTIFIER}.{LIBRARY_EXTENSION}"))
        }
    };
    if let Some(path) = &args.description {
        let written = description::model_description()
            .map_err(|e| e.to_string())
            .and_then(|xml| std::fs::write(path, xml).map_err(|e| format!("{}: {e}", path.display())));
        if let Err(e) = written {
            eprintln!("error: writing the model description: {e}");
            return ExitCode::FAILURE;
        }
    }
    match description::write_fmu(&args.out, &lib) {
        Ok(()) => {
            println!("{}: FMI 3.0 co-simulation, binaries/{PLATFORM} from {}", args.out.display(), lib.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
