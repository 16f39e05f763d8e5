//! The metrics a scenario can set expectations on (`[[expect]] metric = …`):
//! the table the scenario parser checks names against and the runner fills.

use firmware_core::map::faults;

/// The metrics a scenario can set expectations on, with what they mean.
/// Besides these, `<fault>_trip_time_s` for every fault bit name
/// (`lvp_trip_time_s`, `ocd_trip_time_s`, `utc_trip_time_s`, …): the time the
/// fault was first set.
pub const METRICS: &[(&str, &str)] = &[
    ("switch_off_time_s", "time the main switch first opened, s"),
    ("load_off_time_s", "time the LVP output (load) first dropped, s"),
    ("charger_off_time_s", "time the OVP output (charger) first dropped, s"),
    ("final_true_soc_pct", "true pack SOC at the end, %"),
    ("final_board_soc_pct", "board's SOC (selected method) at the end, %"),
    ("final_soc_error_pct", "|board SOC (selected method) − true SOC| at the end, points"),
    ("max_soc_error_pct", "largest |board SOC − true SOC| at any trace row, points"),
    ("final_soc_ah_error_pct", "|Ah-method SOC − true SOC| at the end, points"),
    ("final_soc_wh_error_pct", "|Wh-method SOC − true SOC| at the end, points"),
    ("final_soc_temp_error_pct", "|temperature-compensated SOC − true usable SOC| at the end, points"),
    (
        "final_true_usable_soc_pct",
        "true pack usable SOC at the end (the share of the capacity usable at its temperature left), %",
    ),
    ("max_full_sync_error_pct", "largest |board SOC − true SOC| at a full-charge sync the board applied, points"),
    (
        "max_empty_sync_error_pct",
        "largest |board SOC − true SOC| at an empty sync (an LVP trip) the board applied, points",
    ),
    ("soc_syncs_applied", "SOC sync points (full or empty) the board applied"),
    ("soc_syncs_refused", "SOC sync points the board refused: their error bound was above 0.5 points"),
    ("max_current_error_a", "largest |measured − true| current over all samples, A"),
    ("max_voltage_error_v", "largest |measured − true| battery voltage over all samples, V"),
    ("max_temperature_error_c", "largest |measured − true| temperature over all samples, °C"),
    ("min_voltage_v", "lowest true terminal voltage, V"),
    ("max_voltage_v", "highest true terminal voltage, V"),
    ("min_temp_c", "lowest true pack temperature, °C"),
    ("max_temp_c", "highest true pack temperature, °C"),
    ("final_temp_c", "true pack temperature at the end, °C"),
    ("board_discharged_ah", "charge out of the battery counted by the board, Ah"),
    ("true_discharged_ah", "true charge out of the battery through the shunt, Ah"),
    ("true_charged_ah", "true charge into the battery through the shunt, Ah"),
    ("board_internal_resistance_mohm", "board's internal-resistance estimate at the end (absent until valid), mΩ"),
    ("true_r0_mohm", "the pack model's series resistance R0 at the end, mΩ"),
    ("internal_resistance_error_pct", "|board estimate − model R0| / model R0 at the end, %"),
    ("board_soh_pct", "board's SOH at the end, %"),
    ("board_capacity_estimate_ah", "board's capacity estimate at the end (absent before a passage), Ah"),
    ("board_efficiency_pct", "board's battery efficiency at the end (absent before a cycle), %"),
    ("aux_on_time_s", "time the aux output first switched on, s"),
    ("aux_off_time_s", "time the aux output first switched off after being on, s"),
    ("aux_on_fraction_pct", "share of the run with the aux output on, %"),
    ("transient_peak_current_a", "last transient event: largest |current|, A"),
    ("transient_time_to_zero_us", "last transient event: from the event to zero current with the switch off, µs"),
    ("transient_arrester_energy_j", "last transient event: energy into the surge arrester, J"),
    ("transient_arrester_margin_pct", "last transient event: arrester peak power below its derated rating, %"),
    ("transient_arrester_peak_power_w", "last transient event: peak power into the surge arrester, W"),
    ("transient_switch_i2t_a2s", "last transient event: ∫i² dt through the switch's channel, A²s"),
    ("transient_charge_c", "last transient event: net charge into the battery during the event (> 0 charges), C"),
    ("transient_peak_switch_voltage_v", "last transient event: largest voltage across the switch, V"),
    ("transient_checks_passed", "last transient event: 1 if every datasheet check passed, else 0"),
    (
        "transient_peak_bus_voltage_v",
        "last transient event: highest voltage of the load-side bus (the board's output), V",
    ),
    ("lipro_uv_trip_time_s", "[lipro]: time a cell under-voltage first dropped the LVP loop, s"),
    ("lipro_ov_trip_time_s", "[lipro]: time a cell over-voltage first dropped the OVP loop, s"),
    ("cell_voltage_spread_mv", "[lipro]: highest minus lowest true cell voltage at the end, mV"),
    ("cell_soc_spread_start_pct", "[lipro]: highest minus lowest cell SOC at the start, points"),
    ("cell_soc_spread_pct", "[lipro]: highest minus lowest cell SOC at the end, points"),
    ("fuse_cleared_time_s", "[powerpro]: time the fuse cleared (open for good), s"),
    ("fuse_i2t_a2s", "[powerpro]: ∫i² dt through the fuse over the run (to clearing), A²s"),
    ("powerpro_trip_time_s", "[powerpro]: time the secondary protection first tripped, s"),
    (
        "transient_complete",
        "last transient event: 1 if it ended within its window, else 0 (its figures are then bounds)",
    ),
];

/// The metrics that are yes/no (1 or 0 for expectations): summary.json
/// writes them as `true`/`false`.
pub const BOOLEAN_METRICS: &[&str] = &["transient_checks_passed", "transient_complete"];

/// Every metric name a scenario may use.
pub fn metric_names() -> Vec<String> {
    let mut names: Vec<String> = METRICS.iter().map(|(n, _)| (*n).to_owned()).collect();
    names.extend(faults::NAMES.iter().map(|(_, f)| format!("{f}_trip_time_s")));
    names
}

/// Is `name` a metric?
pub fn metric_known(name: &str) -> bool {
    METRICS.iter().any(|(n, _)| *n == name)
        || name.strip_suffix("_trip_time_s").is_some_and(|f| faults::NAMES.iter().any(|(_, n)| *n == f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_documented() {
        let doc = include_str!("../../docs/scenarios.md");
        for (name, _) in METRICS {
            assert!(doc.contains(&format!("`{name}`")), "docs/scenarios.md does not describe `{name}`");
        }
        for (_, fault) in faults::NAMES {
            assert!(doc.contains(&format!("`{fault}`")), "docs/scenarios.md does not list the fault `{fault}`");
        }
        assert!(metric_known("ocd_trip_time_s") && !metric_known("nope_trip_time_s") && !metric_known("x"));
    }
}

/// Issue 16 item 6: the firmware's SOC sync points against the models' truth.
#[cfg(test)]
mod soc_sync_tests {
    use std::path::Path;

    use firmware_core::soc;
    use models::ecm::{self, BUILTIN_TEMPS_C};
    use models::ocv::{Chemistry, LFP};

    use crate::runner;
    use crate::scenario::Scenario;

    /// The firmware's default tables are the models' default cell, point for point.
    #[test]
    fn issue_16_soc_sync_firmware_tables_are_the_default_cells() {
        let cell = models::cell::CellParams::default();
        assert_eq!(cell.chemistry, Chemistry::Lfp);
        assert_eq!(LFP.points().len(), soc::OCV_TABLE.len());
        for (&(s, v), &(s_cp, mv)) in LFP.points().iter().zip(&soc::OCV_TABLE) {
            assert_eq!((s * 10_000.0).round() as i32, s_cp);
            assert_eq!((v * 1_000.0).round() as i32, mv);
        }
        // OCV with the entropic term, and its inverse, over SOC and temperature.
        let tables = ecm::EcmParams::from_cell(&cell).compile().unwrap();
        for t_c in [-30.0, -10.0, 0.0, 17.5, 25.0, 40.0, 60.0] {
            for k in 0..=200 {
                let x = f64::from(k) / 200.0;
                let model_uv = tables.ocv.eval(t_c, 0.0, x) * 1e6;
                let fw_uv = f64::from(soc::cell_ocv_uv((x * 1e6).round() as i32, (t_c * 10.0) as i16));
                assert!((model_uv - fw_uv).abs() <= 2.0, "OCV at {x}, {t_c} °C: {model_uv} vs {fw_uv}");
                let back = f64::from(soc::cell_x_from_ocv_ppm(model_uv.round() as i32, (t_c * 10.0) as i16)) * 1e-6;
                let slope = LFP.slope_v_per_soc(x.min(0.999));
                assert!((back - x).abs() <= 3e-6 / slope + 2e-6, "OCV⁻¹ at {x}, {t_c} °C: {back}");
            }
        }
        // Resistances over SOC and temperature (the model's tables at the breakpoints, linear between).
        for t_c in BUILTIN_TEMPS_C.into_iter().chain([-15.0, 5.0, 33.0]) {
            for k in 0..=100 {
                let x = f64::from(k) / 100.0;
                let rc = &tables.rc;
                for (model_ohm, base_uohm) in [
                    (tables.r0.eval(t_c, 0.0, x), soc::R0_UOHM),
                    (rc[0].r.eval(t_c, 0.0, x), soc::R1_UOHM),
                    (rc[1].r.eval(t_c, 0.0, x), soc::R2_UOHM),
                ] {
                    let fw_ohm = soc::cell_resistance_nohm(base_uohm, (x * 1e6).round() as i32, (t_c * 10.0) as i16)
                        as f64
                        * 1e-9;
                    assert!((model_ohm - fw_ohm).abs() <= 1e-6 * model_ohm + 2e-9, "R at {x}, {t_c} °C");
                }
            }
        }
        assert_eq!(tables.rc[0].x.eval(25.0, 0.0, 0.5), soc::TAU1_S as f64);
        assert_eq!(tables.rc[1].x.eval(25.0, 0.0, 0.5), soc::TAU2_S as f64);
        assert_eq!(cell.hysteresis_v, soc::HYSTERESIS_UV as f64 * 1e-6);
        assert_eq!(cell.hysteresis_rate, soc::HYSTERESIS_RATE as f64);
        // The capacity usable in the cold.
        for t_c in [-30.0, -25.0, -10.0, -5.0, 0.0, 10.0, 25.0, 40.0] {
            let model = ecm::capacity_temperature_factor(Chemistry::Lfp, t_c);
            assert_eq!(soc::usable_permille((t_c * 10.0) as i16), (model * 1_000.0).round() as i32, "{t_c} °C");
        }
    }

    /// How a charge ends.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Ending {
        /// CC-CV to 3.5 V/cell: the criterion fires in the CV tail.
        CvTail,
        /// CC until the board's OVP (3.65 V/cell) opens the charge path; the criterion fires at rest.
        Ovp,
        /// A CC charger that stops on its timer at 99 % (before CV); the criterion fires at rest.
        StopsEarly,
        /// A low float charger (CV 3.46 V/cell, just above `full_mv`): the criterion fires in its tail.
        LowFloat,
    }

    /// A 12 V run: `segments` after the board was told a SOC 20 points off; (applied, refused, error).
    fn run(name: &str, temp_c: f64, initial_soc: f64, board_soc_pct: f64, segments: &str) -> (f64, f64, f64) {
        let text = format!(
            "name = \"{name}\"\nvariant = 12\nseed = {seed}\ninitial_soc = {initial_soc}\nambient_c = {temp_c}\n\
             adc_rate_hz = 100\ntrace_interval_s = 600.0\n[firmware]\ninitial_soc_pct = {board_soc_pct}\n\
             # charging below 0 °C is allowed here: the cold's resistances are what is tried\n\
             registers = {{ utc_dc = -200 }}\n{segments}",
            seed = 1_600 + (temp_c as i64 + 20) * 7 + (initial_soc * 100.0) as i64,
        );
        let s = Scenario::parse(&text, Path::new("issue-16-matrix.toml")).unwrap();
        let out = runner::run(&s, None).unwrap().outcomes;
        let get = |m: &str| out.get(m).copied().unwrap_or(0.0);
        let err = get("max_full_sync_error_pct").max(get("max_empty_sync_error_pct"));
        (get("soc_syncs_applied"), get("soc_syncs_refused"), err)
    }

    /// Issue 16: every full sync lands within 0.5 points of the true SOC, across
    /// temperature, charge current (C/20..C/2) and how the charge ends; a sync
    /// whose bound is wider is refused (and the SOC left alone), never applied wrong.
    #[test]
    fn issue_16_soc_sync_full_lands_within_half_a_point_across_temperature_current_and_ending() {
        let mut failures = Vec::new();
        let mut applied_at = Vec::new();
        for temp_c in [-10.0, 0.0, 25.0, 40.0] {
            for current_a in [5.0, 20.0, 50.0] {
                for ending in [Ending::CvTail, Ending::Ovp, Ending::StopsEarly, Ending::LowFloat] {
                    let s0 = 0.90;
                    let charge = match ending {
                        Ending::CvTail => {
                            format!("cv_voltage_v = 14.0\nduration_s = {}", 40_000.0 / current_a + 7_200.0)
                        }
                        Ending::Ovp => format!("until = \"ovp\"\nduration_s = {}", 40_000.0 / current_a + 3_600.0),
                        // 9 points of 100 Ah (the cells store 99.9 % of it).
                        Ending::StopsEarly => format!("duration_s = {}", 0.09 * 360_000.0 / current_a),
                        Ending::LowFloat => {
                            format!("cv_voltage_v = 13.84\nduration_s = {}", 40_000.0 / current_a + 7_200.0)
                        }
                    };
                    let segs = format!(
                        "[[segment]]\nkind = \"charge\"\ncurrent_a = {current_a}\n{charge}\n\
                         [[segment]]\nkind = \"rest\"\nduration_s = 600\n"
                    );
                    let name = format!("full-{temp_c}C-{current_a}A-{ending:?}");
                    let (applied, refused, err) = run(&name, temp_c, s0, 70.0, &segs);
                    eprintln!("{name}: applied {applied}, refused {refused}, max error {err:.3} points");
                    if err > 0.5 {
                        failures.push(format!("{name}: {err:.3} points"));
                    }
                    if applied > 0.0 {
                        applied_at.push((temp_c, current_a, ending));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "syncs off by more than 0.5 points: {failures:?}");
        // The criterion is met and applied in every CV tail and at every OVP cut-off from 0 °C.
        for temp_c in [0.0, 25.0, 40.0] {
            for current_a in [5.0, 20.0, 50.0] {
                for ending in [Ending::CvTail, Ending::Ovp] {
                    assert!(
                        applied_at.contains(&(temp_c, current_a, ending)),
                        "no sync: {temp_c} °C {current_a} A {ending:?}"
                    );
                }
            }
        }
    }

    /// Issue 16: every empty sync (an LVP trip under load) lands within 0.5
    /// points of the true SOC across discharge current and temperature, or is refused.
    #[test]
    fn issue_16_soc_sync_empty_lands_within_half_a_point_across_temperature_and_current() {
        let mut failures = Vec::new();
        for temp_c in [-10.0, 0.0, 25.0, 40.0] {
            for current_a in [5.0, 20.0, 50.0] {
                // Start at a table SOC of 12 % (the charge out of reach in the cold below it).
                let s0 = 1.0 - 0.88 * ecm::capacity_temperature_factor(Chemistry::Lfp, temp_c);
                let segs = format!(
                    "[[segment]]\nkind = \"discharge\"\ncurrent_a = {current_a}\nuntil = \"lvp\"\nduration_s = {}\n\
                     [[segment]]\nkind = \"rest\"\nduration_s = 60\n",
                    s0 * 360_000.0 / current_a + 3_600.0
                );
                let name = format!("empty-{temp_c}C-{current_a}A");
                let (applied, refused, err) = run(&name, temp_c, s0, s0 * 100.0 + 20.0, &segs);
                eprintln!("{name}: applied {applied}, refused {refused}, max error {err:.3} points");
                if err > 0.5 {
                    failures.push(format!("{name}: {err:.3} points"));
                }
                if temp_c >= 0.0 {
                    assert_eq!(applied + refused, 1.0, "{name}: one LVP trip, one sync point");
                }
                if temp_c >= 25.0 {
                    assert_eq!(applied, 1.0, "{name}: applied");
                }
            }
        }
        assert!(failures.is_empty(), "syncs off by more than 0.5 points: {failures:?}");
    }
}
