//! `smartpro-sim map`: print the register map (derived from `firmware_core::map`).

use std::fmt::Write;

use firmware_core::map::{self, REGISTERS, RegDef};

use super::exit::{self, Exit};

/// `map`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "the map was printed"),
    (Exit::BadInput, "bad arguments"),
    (Exit::Runtime, "stdout could not be written (a closed pipe ends quietly with 0)"),
];

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// Markdown, as in docs/register-map.md.
    Md,
    Csv,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Output format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
}

/// Prints the map; returns the process exit code.
pub fn execute(cmd: &Cmd) -> u8 {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(render(cmd.format).as_bytes()) {
        Ok(()) => exit::OK,
        // `smartpro-sim map | head`: the reader had what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
        Err(e) => {
            eprintln!("error: writing the map to stdout: {e}");
            exit::RUNTIME
        }
    }
}

/// The register map in `format`.
pub fn render(format: Format) -> String {
    match format {
        Format::Md => markdown(),
        Format::Csv => csv(),
        Format::Json => json(),
    }
}

fn range(r: &RegDef) -> String {
    if r.min == r.max { format!("{}", r.min) } else { format!("{}..={}", r.min, r.max) }
}

fn markdown() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# SmartPro-209 register map\n");
    let _ = writeln!(
        s,
        "Generated from `firmware-core/src/map.rs` by `smartpro-sim map --format md`; do not edit by hand \
         (a test fails when this file is stale).\n"
    );
    let _ = writeln!(
        s,
        "Addresses are PDU addresses (0-based; add 1 for 1-based tools such as mbpoll without `-0`). \
         Every register is readable with function 03 and 04. 32-bit registers are two words, **high word first**, \
         and must be written in one request (FC16) covering both words. Writes are all-or-nothing: \
         an unknown or read-only address or a split 32-bit register → exception 02, a value outside its range \
         or an inconsistent set of settings → exception 03, and nothing changes. \
         Physical value = raw × scale.\n"
    );
    let _ = writeln!(s, "| address | name | type | scale | unit | access | persisted | range (raw) | description |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for r in REGISTERS {
        let _ = writeln!(
            s,
            "| 0x{:04X} ({}) | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            r.addr,
            r.addr,
            r.name,
            r.ty.name(),
            r.scale,
            r.unit,
            r.access.name(),
            if r.persisted { "yes" } else { "no" },
            range(r),
            r.description
        );
    }
    for (title, names) in [("status", map::status::NAMES), ("faults", map::faults::NAMES)] {
        let _ = writeln!(s, "\n## Bits of `{title}`\n\n| bit | mask | name |\n|---|---|---|");
        for (mask, name) in names {
            let _ = writeln!(s, "| {} | 0x{mask:04X} | `{name}` |", mask.trailing_zeros());
        }
    }
    s
}

fn csv() -> String {
    let mut s = String::from("address,name,type,words,scale,unit,access,persisted,min,max,description\n");
    for r in REGISTERS {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},\"{}\"",
            r.addr,
            r.name,
            r.ty.name(),
            r.ty.words(),
            r.scale,
            r.unit,
            r.access.name(),
            r.persisted,
            r.min,
            r.max,
            r.description.replace('"', "\"\"")
        );
    }
    s
}

fn json() -> String {
    let rows: Vec<serde_json::Value> = REGISTERS
        .iter()
        .map(|r| {
            serde_json::json!({
                "address": r.addr, "name": r.name, "type": r.ty.name(), "words": r.ty.words(),
                "scale": r.scale, "unit": r.unit, "access": r.access.name(), "persisted": r.persisted,
                "min": r.min, "max": r.max, "description": r.description,
            })
        })
        .collect();
    serde_json::to_string_pretty(&rows).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_register_map_is_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/register-map.md");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == render(Format::Md),
            "docs/register-map.md is stale: run `cargo run --bin smartpro-sim -- map --format md > docs/register-map.md`"
        );
    }

    #[test]
    fn csv_and_json_list_every_register() {
        assert_eq!(csv().lines().count(), REGISTERS.len() + 1);
        let v: serde_json::Value = serde_json::from_str(&json()).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(REGISTERS.len()));
    }
}
