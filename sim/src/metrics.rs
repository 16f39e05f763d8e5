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
    ("max_full_sync_error_pct", "largest |board SOC − true SOC| at a full-charge sync, points"),
    ("max_empty_sync_error_pct", "largest |board SOC − true SOC| at an empty sync (an LVP trip), points"),
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
