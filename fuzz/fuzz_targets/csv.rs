//! The CSV readers: hil-rig's recording format and the ECM current profile
//! (docs/reliability.md, "csv").
//!
//! Input: a kind byte, then the file's text.
//!
//! Oracle: no input panics; a recording's refusal names the file and a line
//! within the text; a profile's refusal names a line within the text (0 for
//! the profile as a whole; `smartpro-sim ecm` prefixes the file); an accepted
//! profile has finite times from 0 on, never decreasing, and finite currents
//! and charges wherever it is evaluated.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use models::profile::{CurrentProfile, Interpolation};

const NAME: &str = "fuzz.csv";

fuzz_target!(|data: &[u8]| {
    let Some((&kind, text)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(text) else { return };
    let lines = text.lines().count() + 1;
    match kind % 3 {
        0 => match hil_rig::recording::Recording::parse(text, Path::new(NAME)) {
            Ok(_) => {}
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.starts_with(&format!("{NAME}:")), "a refusal that does not name the file: {msg:?}");
                if let hil_rig::recording::RecordingError::Format { line, .. } = e {
                    assert!(line <= lines, "an error at line {line} of {lines}");
                }
            }
        },
        mode => {
            let mode = if mode == 1 { Interpolation::Hold } else { Interpolation::Linear };
            match CurrentProfile::from_csv(text, mode) {
                Ok(p) => {
                    let rows: Vec<(f64, f64)> = p.rows().collect();
                    assert!(!rows.is_empty());
                    assert!(rows[0].0 >= 0.0);
                    for w in rows.windows(2) {
                        assert!(w[1].0 >= w[0].0, "times fall: {w:?}");
                    }
                    let end = p.end_s();
                    let mut hint = 0;
                    for k in 0..=8 {
                        let t = end * f64::from(k) / 8.0;
                        let i = p.current_a(t, &mut hint);
                        assert!(i.is_finite(), "current {i} A at {t} s");
                    }
                    let mut hint = 0;
                    let q = p.charge_c(0.0, end, &mut hint);
                    assert!(q.is_finite(), "charge {q} C over the profile");
                }
                Err(e) => assert!(e.line <= lines, "an error at line {} of {lines}: {}", e.line, e.message),
            }
        }
    }
});
