//! The TOML/JSON input files: scenario, what-if study, bus-fault set, ECM
//! parameter set (TOML and JSON), hil-rig test plan and tolerance file
//! (docs/reliability.md, "files").
//!
//! Input: a kind byte, then the file's text (UTF-8; the readers refuse
//! anything else at `read_to_string`, naming the file).
//!
//! Oracle: no input panics; every refusal of a reader that is given the
//! file's name names it (`fuzz.toml...`), with the line and column of a TOML
//! syntax error, and a test plan's refusals each carry a line within the
//! text; what is accepted is bounded: a scenario runs at most
//! `MAX_DURATION_S`, a study has at most `MAX_CASES` cases.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use smartpro_sim::scenario::{MAX_DURATION_S, Scenario};
use smartpro_sim::serve::faults::{FaultOverrides, FaultsConfig};
use smartpro_sim::sweep::study::{MAX_CASES, Study};

// The test plan's reader is the `hil-rig` binary's (`cmd/test_plan/plan.rs`);
// the fuzzer compiles that very file, its one library import resolved here.
use hil_rig::decode;
#[allow(dead_code, unused_imports)]
#[path = "../../hil-rig/src/cmd/test_plan/plan.rs"]
mod plan;

const NAME: &str = "fuzz.toml";

/// A refusal names the file first; a TOML syntax error then its line and column.
fn names_the_file(msg: &str, what: &str) {
    assert!(msg.starts_with(NAME), "{what}: a refusal that does not name the file: {msg:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let path = Path::new(NAME);
    match kind % 8 {
        0 => match Scenario::parse(text, path) {
            Ok(s) => {
                let max_ns = (MAX_DURATION_S * 1e9) as u64 + 1_000_000_000;
                assert!(s.duration_ns() <= max_ns, "a scenario of {} ns accepted", s.duration_ns());
            }
            Err(e) => names_the_file(&e.to_string(), "scenario"),
        },
        1 => match Study::parse(text, path) {
            Ok(s) => assert!(s.len() <= MAX_CASES, "a study of {} cases accepted", s.len()),
            Err(e) => names_the_file(&e.to_string(), "study"),
        },
        2 => match FaultsConfig::parse(text, path) {
            Ok(f) => {
                // The per-unit check happens when serving: it must refuse, not panic.
                let _ = f.resolve(&[1, 2, 247], &FaultOverrides::default());
            }
            Err(e) => names_the_file(&e, "fault set"),
        },
        3 => {
            if let Err(e) = models::ecm::EcmParams::from_toml_str(text) {
                assert!(!e.to_string().is_empty());
            }
        }
        4 => {
            if let Err(e) = models::ecm::EcmParams::from_json_str(text) {
                assert!(!e.to_string().is_empty());
            }
        }
        5 | 6 => {
            let lines = text.lines().count().max(1) + 1;
            match plan::Plan::parse(text, path) {
                Ok(_) => {}
                Err(plan::PlanError::Invalid(list)) => {
                    assert!(!list.is_empty(), "a refusal with no reason");
                    for l in list {
                        assert_eq!(l.path, NAME);
                        assert!(l.line <= lines, "a test-plan error at line {} of {lines}: {}", l.line, l.message);
                    }
                }
                Err(e) => names_the_file(&e.to_string(), "test plan"),
            }
        }
        _ => {
            use models::variant::Variant;
            let variant = [Variant::V12, Variant::V24, Variant::V48][usize::from(kind >> 3) % 3];
            if let Err(e) = hil_rig::tolerance::Tolerances::parse(text, variant) {
                assert!(!e.is_empty());
            }
        }
    }
});
