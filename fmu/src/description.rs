//! `modelDescription.xml` from the model's metadata (what `#[derive(FmuModel)]`
//! lays out), with the units fmi-export has no key for, and the `.fmu` archive.

use std::io::Write;
use std::path::Path;

use fmi::schema::fmi3 as schema;
use fmi_export::fmi3::Model;

use crate::SmartPro;

/// The `modelIdentifier`: the cdylib's name, and the library's name inside the FMU.
pub const MODEL_IDENTIFIER: &str = "smartpro_fmu";

/// The `binaries/` folder of the platform this is built for (FMI 3.0 §2.5.1.1).
pub const PLATFORM: &str = if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
    "x86_64-linux"
} else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
    "aarch64-linux"
} else if cfg!(all(target_arch = "x86_64", target_os = "macos")) {
    "x86_64-darwin"
} else if cfg!(all(target_arch = "aarch64", target_os = "macos")) {
    "aarch64-darwin"
} else if cfg!(all(target_arch = "x86_64", target_os = "windows")) {
    "x86_64-windows"
} else {
    "unknown"
};

/// The shared library's extension on this platform.
pub const LIBRARY_EXTENSION: &str = std::env::consts::DLL_EXTENSION;

/// A unit: its name, the type that carries it, its quantity, its SI base units
/// (kg, m, s, A, K) and factor/offset to them.
struct Unit {
    name: &'static str,
    type_name: &'static str,
    quantity: &'static str,
    base: [i32; 5],
    factor: f64,
    offset: f64,
}

const UNITS: &[Unit] = &[
    Unit {
        name: "A",
        type_name: "Current",
        quantity: "ElectricCurrent",
        base: [0, 0, 0, 1, 0],
        factor: 1.0,
        offset: 0.0,
    },
    Unit {
        name: "V",
        type_name: "Voltage",
        quantity: "ElectricPotential",
        base: [1, 2, -3, -1, 0],
        factor: 1.0,
        offset: 0.0,
    },
    Unit {
        name: "degC",
        type_name: "Temperature",
        quantity: "ThermodynamicTemperature",
        base: [0, 0, 0, 0, 1],
        factor: 1.0,
        offset: 273.15,
    },
    Unit { name: "%", type_name: "Percent", quantity: "StateOfCharge", base: [0; 5], factor: 0.01, offset: 0.0 },
    Unit { name: "1", type_name: "Fraction", quantity: "StateOfCharge", base: [0; 5], factor: 1.0, offset: 0.0 },
];

/// The unit of every Float64 variable (by name).
pub const VARIABLE_UNITS: &[(&str, &str)] = &[
    ("initial_soc", "1"),
    ("current_demand_a", "A"),
    ("ambient_c", "degC"),
    ("terminal_voltage_v", "V"),
    ("pack_current_a", "A"),
    ("true_soc_pct", "%"),
    ("true_temp_c", "degC"),
    ("board_soc_pct", "%"),
    ("meas_current_a", "A"),
    ("meas_voltage_v", "V"),
    ("meas_temp_c", "degC"),
];

/// Why the description or the archive could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DescriptionError {
    #[error("Float64 variable {0:?} has no unit in VARIABLE_UNITS")]
    NoUnit(String),
    #[error("serialising modelDescription.xml: {0}")]
    Xml(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("writing the archive {path}: {source}")]
    Zip { path: String, source: zip::result::ZipError },
}

/// The model's `modelDescription.xml`.
pub fn model_description() -> Result<String, DescriptionError> {
    let mut meta = SmartPro::build_toplevel_metadata();
    for v in &mut meta.model_variables.variables {
        if let schema::Variable::Float64(f) = v {
            if f.name == "time" {
                continue;
            }
            let unit = VARIABLE_UNITS
                .iter()
                .find(|(n, _)| *n == f.name)
                .map(|(_, u)| *u)
                .ok_or_else(|| DescriptionError::NoUnit(f.name.clone()))?;
            let ty = UNITS.iter().find(|u| u.name == unit).ok_or_else(|| DescriptionError::NoUnit(f.name.clone()))?;
            f.declared_type = Some(ty.type_name.to_owned());
        }
    }
    // Every output is calculated at initialisation (fmi-export lists them as Outputs only).
    let outputs: Vec<u32> = meta
        .model_structure
        .unknowns
        .iter()
        .filter_map(|u| match u {
            schema::VariableDependency::Output(o) => Some(o.value_reference),
            _ => None,
        })
        .collect();
    meta.model_structure.unknowns.extend(outputs.into_iter().map(|value_reference| {
        schema::VariableDependency::InitialUnknown(schema::Fmi3Unknown { value_reference, ..Default::default() })
    }));
    let unit_definitions = schema::UnitDefinitions {
        units: UNITS
            .iter()
            .map(|u| schema::Fmi3Unit {
                name: u.name.to_owned(),
                base_unit: Some(schema::BaseUnit {
                    kg: nonzero(u.base[0]),
                    m: nonzero(u.base[1]),
                    s: nonzero(u.base[2]),
                    a: nonzero(u.base[3]),
                    k: nonzero(u.base[4]),
                    factor: (u.factor != 1.0).then_some(u.factor),
                    offset: (u.offset != 0.0).then_some(u.offset),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
    };
    let type_definitions = schema::TypeDefinitions {
        type_definitions: UNITS
            .iter()
            .map(|u| {
                schema::TypeDefinition::Float64(schema::Float64Type {
                    name: u.type_name.to_owned(),
                    quantity: Some(u.quantity.to_owned()),
                    unit: Some(u.name.to_owned()),
                    ..Default::default()
                })
            })
            .collect(),
    };
    let md = schema::Fmi3ModelDescription {
        fmi_version: "3.0".to_owned(),
        model_name: SmartPro::MODEL_NAME.to_owned(),
        instantiation_token: SmartPro::INSTANTIATION_TOKEN.to_owned(),
        description: Some(
            "SmartPro-209 battery monitor and switch with its LiFePO4 pack (the project's digital twin)".into(),
        ),
        version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        license: Some(env!("CARGO_PKG_LICENSE").to_owned()),
        generation_tool: Some(format!("smartpro-fmu {} (fmi-export 0.3)", env!("CARGO_PKG_VERSION"))),
        variable_naming_convention: Some("flat".to_owned()),
        co_simulation: Some(schema::Fmi3CoSimulation {
            model_identifier: MODEL_IDENTIFIER.to_owned(),
            can_handle_variable_communication_step_size: Some(true),
            can_get_and_set_fmu_state: Some(false),
            can_serialize_fmu_state: Some(false),
            can_be_instantiated_only_once_per_process: Some(false),
            has_event_mode: Some(false),
            provides_intermediate_update: Some(false),
            might_return_early_from_do_step: Some(false),
            ..Default::default()
        }),
        unit_definitions: Some(unit_definitions),
        type_definitions: Some(type_definitions),
        log_categories: Some(schema::LogCategories {
            categories: vec![
                schema::Category {
                    name: "logAll".into(),
                    description: Some("errors, and the FMI calls initialisation makes".into()),
                    ..Default::default()
                },
                schema::Category {
                    name: "trace".into(),
                    description: Some("every FMI call".into()),
                    ..Default::default()
                },
            ],
        }),
        default_experiment: Some(schema::DefaultExperiment {
            start_time: Some(0.0),
            stop_time: Some(10.0),
            step_size: Some(0.01),
            ..Default::default()
        }),
        model_variables: meta.model_variables,
        model_structure: meta.model_structure,
        ..Default::default()
    };
    let xml = fmi::schema::serialize(&md, false).map_err(|e| DescriptionError::Xml(e.to_string()))?;
    Ok(fix_base_unit_attributes(&xml))
}

/// fmi-schema 0.8 writes `BaseUnit`'s ampere and kelvin exponents as `a` and
/// `k`; the FMI 3.0 schema names them `A` and `K` (FMPy's validation refuses
/// the lower-case ones).
fn fix_base_unit_attributes(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(start) = rest.find("<BaseUnit") {
        let (before, tag_on) = rest.split_at(start);
        out.push_str(before);
        let end = tag_on.find('>').map_or(tag_on.len(), |e| e + 1);
        out.push_str(&tag_on[..end].replace(" a=\"", " A=\"").replace(" k=\"", " K=\""));
        rest = &tag_on[end..];
    }
    out.push_str(rest);
    out
}

fn nonzero(v: i32) -> Option<i32> {
    (v != 0).then_some(v)
}

/// Writes the `.fmu` at `out`: `modelDescription.xml` and `library` as
/// `binaries/<platform>/<modelIdentifier>.<ext>`.
pub fn write_fmu(out: &Path, library: &Path) -> Result<(), DescriptionError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| DescriptionError::Io { path, source }
    };
    let xml = model_description()?;
    let lib = std::fs::read(library).map_err(io(library))?;
    let file = std::fs::File::create(out).map_err(io(out))?;
    let zip_err = |source| DescriptionError::Zip { path: out.display().to_string(), source };
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("modelDescription.xml", options).map_err(zip_err)?;
    zip.write_all(xml.as_bytes()).map_err(io(out))?;
    let binary = format!("binaries/{PLATFORM}/{MODEL_IDENTIFIER}.{LIBRARY_EXTENSION}");
    zip.start_file(binary, options.unix_permissions(0o755)).map_err(zip_err)?;
    zip.write_all(&lib).map_err(io(out))?;
    zip.finish().map_err(zip_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_float_variable_has_a_unit_and_every_variable_is_documented() {
        let xml = model_description().unwrap();
        let doc = include_str!("../../docs/fmu.md");
        let meta = SmartPro::build_toplevel_metadata();
        let mut names = 0;
        for v in &meta.model_variables.variables {
            let name = match v {
                schema::Variable::Float64(f) => &f.name,
                schema::Variable::Int32(i) => &i.name,
                schema::Variable::UInt16(i) => &i.name,
                schema::Variable::UInt32(i) => &i.name,
                schema::Variable::Boolean(b) => &b.name,
                schema::Variable::String(s) => &s.name,
                other => panic!("unexpected variable type {other:?}"),
            };
            if name == "time" {
                continue;
            }
            names += 1;
            assert!(doc.contains(&format!("`{name}`")), "docs/fmu.md does not describe `{name}`");
            assert!(xml.contains(&format!("name=\"{name}\"")), "{name} missing from the XML");
        }
        assert_eq!(names, 23);
        for (name, unit) in VARIABLE_UNITS {
            let ty = UNITS.iter().find(|u| u.name == *unit).unwrap().type_name;
            assert!(xml.contains(&format!("name=\"{name}\"")) && xml.contains(&format!("declaredType=\"{ty}\"")));
        }
        assert!(xml.contains("<CoSimulation modelIdentifier=\"smartpro_fmu\""), "{xml}");
        // The token the library checks at instantiation.
        assert!(xml.contains(SmartPro::INSTANTIATION_TOKEN));
    }

    #[test]
    fn base_units_name_ampere_and_kelvin_as_the_fmi_schema_does() {
        let xml = model_description().unwrap();
        assert!(xml.contains("<Unit name=\"A\"><BaseUnit A=\"1\"/>"), "{xml}");
        assert!(xml.contains("<BaseUnit K=\"1\" offset=\"273.15\"/>"), "{xml}");
        assert!(xml.contains("<BaseUnit kg=\"1\" m=\"2\" s=\"-3\" A=\"-1\"/>"), "{xml}");
        // Other elements' attributes are left alone.
        assert_eq!(fix_base_unit_attributes("<X a=\"1\"/><BaseUnit a=\"2\"/>"), "<X a=\"1\"/><BaseUnit A=\"2\"/>");
    }

    #[test]
    fn the_archive_holds_the_description_and_the_library() {
        let dir = std::env::temp_dir().join(format!("smartpro-fmu-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lib = dir.join("lib.so");
        std::fs::write(&lib, b"\x7fELF not really").unwrap();
        let out = dir.join("t.fmu");
        write_fmu(&out, &lib).unwrap();
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&out).unwrap()).unwrap();
        let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        assert!(names.contains(&"modelDescription.xml".to_owned()), "{names:?}");
        let binary = format!("binaries/{PLATFORM}/smartpro_fmu.{LIBRARY_EXTENSION}");
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut zip.by_name(&binary).unwrap(), &mut content).unwrap();
        assert_eq!(content, b"\x7fELF not really");
        std::fs::remove_dir_all(&dir).unwrap();
    }
    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let e = write_fmu(Path::new("/tmp/never-written.fmu"), Path::new("/nonexistent/lib.so")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/lib.so"), "{e}");
    }
}
