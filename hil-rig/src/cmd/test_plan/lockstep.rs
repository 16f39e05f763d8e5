//! The twin of `hil-rig test`: compare's twin ([`Twin`], measured drive)
//! started with the plan from the board's first measurements and settings,
//! stepped to the board's uptime at every poll with the board's measured
//! current, and compared register by register with the board, within
//! compare's datasheet tolerances ([`Tolerances::datasheet`]).

use firmware_core::map::{Access, RegDef, RegId, by_id};
use models::variant::Variant;
use smartpro_sim::scenario::Scenario;

use super::plan::{Plan, Tolerance};
use crate::decode;
use crate::source::Registers;
use crate::tolerance::{TOTAL_AH_RESOLUTION, Tolerances, soc_temp_term};
use crate::twin::{self, Drive, Twin};

/// Resolution of `remaining_mah` (Ah).
const REMAINING_RESOLUTION_AH: f64 = 0.001;

/// The SOC-like registers judged as compare judges SOC: the twin's
/// register less the difference at the start (or at the last re-anchor).
const SOC_REGISTERS: [RegId; 5] =
    [RegId::Soc, RegId::SocAh, RegId::SocWh, RegId::SocTemperatureCompensated, RegId::RemainingCharge];
/// Counters judged by their growth since the start (or the last re-anchor).
const TOTALS: [RegId; 4] =
    [RegId::ChargedTotal, RegId::DischargedTotal, RegId::ChargedEnergyTotal, RegId::DischargedEnergyTotal];

/// Why the twin cannot be built for this board: the plan's fault (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// One comparison of a register, board against twin, in its unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub board: f64,
    pub twin: f64,
    /// board − twin, less the difference at the start where that applies.
    pub error: f64,
    pub tolerance: f64,
    /// What the twin's value is, and where the tolerance comes from.
    pub basis: String,
}

impl Comparison {
    pub fn passed(&self) -> bool {
        self.error.abs() <= self.tolerance
    }
}

/// Values at the start, or at the last re-anchor (a mirrored command).
#[derive(Clone, Debug)]
struct Baseline {
    /// Twin time (s).
    t_s: f64,
    /// board − twin of each SOC register.
    offsets: Vec<(RegId, f64)>,
    /// The board's and the twin's totals then.
    board_totals: Vec<(RegId, f64)>,
    twin_totals: Vec<(RegId, f64)>,
}

/// The twin, running in lock-step with the board.
#[derive(Debug)]
pub struct LockStep {
    twin: Twin<'static>,
    regs: Registers,
    variant: Variant,
    tol: Tolerances,
    capacity_ah: f64,
    /// Board uptime at the start (s).
    t0_s: f64,
    /// The last board uptime (s) and current (A).
    last_s: f64,
    last_current_a: f64,
    baseline: Baseline,
    /// The energy totals' tolerance accumulated since the baseline (Wh).
    wh_tol: f64,
    /// Why the twin stopped (the board restarted, the engine failed).
    stopped: Option<String>,
    /// The twin's description and what was done to set it up.
    pub description: String,
    pub notes: Vec<String>,
}

/// The registers the twin takes from the board at the start: every
/// persisted setting but the calibration (the twin's measurement chain has
/// its own).
pub fn copied_settings() -> impl Iterator<Item = &'static RegDef> {
    firmware_core::map::settings().filter(|r| {
        r.access == Access::RW
            && !(0x0300..0x0400).contains(&r.addr)
            && !matches!(r.id, RegId::LastCalTime | RegId::LastCalKind)
    })
}

impl LockStep {
    /// Builds the twin for a board of `variant` whose registers (`regs`
    /// order) read `board` at uptime `t0_s`: the plan's (or `scenario`'s)
    /// battery, at the board's SOC, with the board's settings.
    pub fn start(
        plan: &Plan,
        scenario: Option<&(std::path::PathBuf, Scenario)>,
        regs: Registers,
        board: &[Option<i64>],
        variant: Variant,
        t0_s: f64,
    ) -> Result<Self, StartError> {
        let value = |id| regs.value(board, id);
        let scenario = scenario.or(plan.twin_scenario.as_ref());
        let mut base = match scenario {
            Some((path, s)) => {
                if s.variant != variant {
                    return Err(StartError(format!(
                        "the twin's scenario {} is for the {} V variant, the board is a {} V one",
                        path.display(),
                        s.variant.system_v(),
                        variant.system_v()
                    )));
                }
                s.clone()
            }
            None => {
                let text = format!(
                    "name = \"test-twin\"\nvariant = {}\ninitial_soc = 0.5\nduration_s = 1\n",
                    variant.system_v()
                );
                Scenario::parse(&text, std::path::Path::new("(built-in twin)"))
                    .map_err(|e| StartError(e.to_string()))?
            }
        };
        if let Some((_, ecm)) = &plan.twin_ecm {
            base.ecm = Some(ecm.clone());
        }
        let soc_pct = value(RegId::Soc).unwrap_or(base.initial_soc * 100.0);
        let mut description = format!(
            "{}, {} V, seed {}{}; measured drive from the board's SOC {soc_pct:.2} %",
            scenario.map_or("a battery at rest".to_string(), |(p, s)| format!("scenario {} ({})", s.name, p.display())),
            variant.system_v(),
            base.seed,
            plan.twin_ecm.as_ref().map_or(String::new(), |(p, _)| format!(", cells from {}", p.display())),
        );
        let twin_scenario = twin::twin_scenario(&base, Drive::Measured, soc_pct / 100.0);
        let current_a = value(RegId::Current).unwrap_or(0.0);
        let mut twin =
            Twin::measured(&twin_scenario, &regs, current_a).map_err(|e| StartError(format!("the twin: {e}")))?;

        // The board's settings, so that both count and protect alike. A
        // setting may be refused while another still contradicts it (lvp_mv
        // above the twin's lvp_release_mv): retried until nothing changes.
        let mut notes = Vec::new();
        let twin_now = twin.registers(&regs);
        let mut pending: Vec<(&RegDef, i64)> = copied_settings()
            .filter_map(|r| Some((r, regs.raw(board, r.id)?)))
            .filter(|(r, v)| regs.raw(&twin_now, r.id) != Some(*v))
            .collect();
        let mut copied = Vec::new();
        loop {
            let before = pending.len();
            let mut refused = Vec::new();
            for (r, v) in pending {
                match twin.write_register(r.name, v) {
                    Ok(()) => copied.push(format!("{} {}{}", r.name, decode::format_value(r, v), unit(r))),
                    Err(e) => refused.push((r, v, e.to_string())),
                }
            }
            pending = refused.iter().map(|(r, v, _)| (*r, *v)).collect();
            if pending.is_empty() || pending.len() == before {
                for (r, v, e) in refused {
                    notes.push(format!(
                        "the twin refused the board's {} = {}{}: {e}",
                        r.name,
                        decode::format_value(r, v),
                        unit(r)
                    ));
                }
                break;
            }
        }
        if !copied.is_empty() {
            description.push_str(&format!("; settings copied from the board: {}", copied.join(", ")));
        }
        if let Some(raw) = regs.raw(board, RegId::Soc) {
            // A new capacity may have moved the twin's SOC: the board's again.
            twin.write_register("set_soc_centipct", raw).map_err(|e| StartError(format!("the twin: {e}")))?;
        }
        let capacity_ah = value(RegId::Capacity)
            .or_else(|| regs.value(&twin.registers(&regs), RegId::Capacity))
            .unwrap_or(100.0)
            .max(0.1);
        let mut step = Self {
            baseline: Baseline { t_s: 0.0, offsets: Vec::new(), board_totals: Vec::new(), twin_totals: Vec::new() },
            twin,
            regs,
            variant,
            tol: Tolerances::datasheet(variant),
            capacity_ah,
            t0_s,
            last_s: t0_s,
            last_current_a: current_a,
            wh_tol: 0.0,
            stopped: None,
            description,
            notes,
        };
        step.rebase(board);
        Ok(step)
    }

    /// The registers of a snapshot, in order.
    pub fn registers(&self) -> &Registers {
        &self.regs
    }

    /// Takes the differences at the start anew from the board's registers
    /// `board` (after a command that moved the SOC or the totals on both).
    pub fn rebase(&mut self, board: &[Option<i64>]) {
        let twin = self.twin.registers(&self.regs);
        let (b, w) = (|id| self.regs.value(board, id), |id| self.regs.value(&twin, id));
        self.baseline = Baseline {
            t_s: self.twin.t_s(),
            offsets: SOC_REGISTERS.iter().filter_map(|&id| Some((id, b(id)? - w(id)?))).collect(),
            board_totals: TOTALS.iter().filter_map(|&id| Some((id, b(id)?))).collect(),
            twin_totals: TOTALS.iter().filter_map(|&id| Some((id, w(id)?))).collect(),
        };
        self.wh_tol = 0.0;
    }

    /// Steps the twin to the board's uptime `uptime_s`, fed with the board's
    /// measured current `current_a` (held since the previous poll); `voltage_v`
    /// is the board's voltage, for the energy totals' tolerance.
    /// `remaining_ah` is the board's own count of the charge (`remaining_mah`)
    /// read with the uptime: over a long interval it tells the twin what
    /// flowed ([`crate::twin::Twin::advance_counted`]).
    pub fn advance(&mut self, uptime_s: f64, current_a: f64, voltage_v: f64, remaining_ah: Option<f64>) {
        if self.stopped.is_some() {
            return;
        }
        if uptime_s < self.last_s {
            self.stopped = Some(format!(
                "the board restarted (its uptime went from {} s to {uptime_s} s): the twin stopped there",
                self.last_s
            ));
            return;
        }
        let dt_h = (uptime_s - self.last_s) / 3600.0;
        let held_a = self.last_current_a;
        (self.last_s, self.last_current_a) = (uptime_s, current_a);
        match self.twin.advance_counted(uptime_s - self.t0_s, current_a, remaining_ah) {
            Ok(_) => self.wh_tol += (self.tol.soc_current_a * voltage_v + held_a.abs() * self.tol.voltage_v) * dt_h,
            Err(e) => self.stopped = Some(format!("the twin failed: {e}")),
        }
    }

    /// Writes a setting or command the plan wrote to the board to the twin
    /// too (calibration is the board's own and is not mirrored).
    pub fn mirror(&mut self, reg: &RegDef, raw: i64) -> Result<(), String> {
        if reg.id.protected() || reg.id == RegId::CalUnlock {
            return Ok(());
        }
        self.twin.write_register(reg.name, raw).map_err(|e| e.to_string())
    }

    /// The board's `reg` (from `board`, a snapshot in [`Self::registers`]
    /// order) against the twin's value now; `tolerance` overrides the default.
    pub fn compare(
        &mut self,
        reg: &RegDef,
        board: &[Option<i64>],
        tolerance: Option<Tolerance>,
    ) -> Result<Comparison, String> {
        if let Some(why) = &self.stopped {
            return Err(why.clone());
        }
        let regs = &self.regs;
        let b = |id| regs.value(board, id);
        let board_v = b(reg.id).ok_or_else(|| format!("{} was not read", reg.name))?;
        let twin_regs = self.twin.registers(regs);
        let twin_reg = |id| regs.value(&twin_regs, id);
        let t_h = (self.twin.t_s() - self.baseline.t_s).max(0.0) / 3600.0;
        let tol = self.tol;
        let given = tolerance.map(|t| t.abs(reg, self.variant));
        let truth = self.twin.truth();
        let soc_drift_pct = tol.soc_current_a * t_h / self.capacity_ah * 100.0;
        let (twin_v, default_tol, basis) = match reg.id {
            RegId::BatteryVoltage => (
                truth.voltage_v,
                tol.voltage_v,
                "the twin's true pack voltage; 0.1 % FS + 1 mV (datasheet)".to_string(),
            ),
            RegId::Temperature => (
                truth.temp_c,
                tol.temperature_k,
                "the twin's true cell temperature; the NTC channel's design limit".to_string(),
            ),
            id if SOC_REGISTERS.contains(&id) => {
                let offset = self.offset(id);
                let w = twin_reg(id).ok_or_else(|| format!("the twin's {} is not readable", reg.name))?;
                let (t, why) = if id == RegId::RemainingCharge {
                    (2.0 * REMAINING_RESOLUTION_AH + tol.soc_current_a * t_h, format!("0.1 A × {:.3} h + 2 mAh", t_h))
                } else {
                    let temp = if id == RegId::SocTemperatureCompensated {
                        soc_temp_term(b(RegId::SocAh), b(RegId::Temperature), tol.temperature_k)
                    } else {
                        0.0
                    };
                    (
                        tol.soc_pct + soc_drift_pct + temp,
                        format!("0.02 points + 0.1 A × {:.3} h / {:.1} Ah", t_h, self.capacity_ah),
                    )
                };
                (w + offset, t, format!("the twin's {} (+ the difference at the start, {offset:+.3}); {why}", reg.name))
            }
            RegId::InternalResistance => {
                if b(RegId::InternalResistanceValid) != Some(1.0) {
                    return Err(
                        "internal_resistance_valid is not 1: the board has no estimate yet (it needs 3 current \
                                steps of at least 10 A)"
                            .into(),
                    );
                }
                let r0 = self.twin.r0_ohm();
                (r0, tol.resistance_at(r0), "the twin's pack R0; 10 % of it".to_string())
            }
            id if TOTALS.contains(&id) => {
                let at = |list: &[(RegId, f64)]| list.iter().find(|(k, _)| *k == id).map(|(_, v)| *v);
                let (b0, w0) = (at(&self.baseline.board_totals), at(&self.baseline.twin_totals));
                let (b0, w0) = b0.zip(w0).ok_or_else(|| format!("{} was not read at the start", reg.name))?;
                let w = twin_reg(id).ok_or_else(|| format!("the twin's {} is not readable", reg.name))?;
                let ah = matches!(id, RegId::ChargedTotal | RegId::DischargedTotal);
                let t =
                    if ah { 2.0 * TOTAL_AH_RESOLUTION + tol.soc_current_a * t_h } else { tol.total_wh + self.wh_tol };
                // Judged on the growth since the start: the twin's growth plus the board's start value.
                (w - w0 + b0, t, format!("the board's value at the start + the twin's growth since ({:+})", w - w0))
            }
            _ => {
                let w = twin_reg(reg.id).ok_or_else(|| format!("the twin's {} is not readable", reg.name))?;
                (w, 0.0, format!("the twin's {}", reg.name))
            }
        };
        let tolerance = given.unwrap_or(default_tol);
        let basis = if given.is_some() { format!("{basis} (tolerance from the plan)") } else { basis };
        Ok(Comparison { board: board_v, twin: twin_v, error: board_v - twin_v, tolerance, basis })
    }

    fn offset(&self, id: RegId) -> f64 {
        self.baseline.offsets.iter().find(|(k, _)| *k == id).map_or(0.0, |(_, v)| *v)
    }
}

fn unit(r: &RegDef) -> String {
    super::plan::unit_suffix(r)
}

/// The registers an `expect_twin` of `reg` reads from the board besides it.
pub fn companions(reg: &RegDef) -> Vec<&'static RegDef> {
    let ids: &[RegId] = match reg.id {
        RegId::SocTemperatureCompensated => &[RegId::SocAh, RegId::Temperature],
        RegId::InternalResistance => &[RegId::InternalResistanceValid],
        _ => &[],
    };
    ids.iter().filter_map(|id| by_id(*id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::record_columns;
    use std::path::Path;

    fn regs() -> Registers {
        Registers::new(record_columns().unwrap().1)
    }

    fn plan(text: &str) -> Plan {
        Plan::parse(text, Path::new("p.toml")).unwrap()
    }

    const PLAN: &str =
        "name = \"t\"\n[[step]]\nname = \"v\"\nkind = \"expect_twin\"\nregister = \"battery_voltage_mv\"\n";

    /// The twin's scenario: 12 V, the ADC at 100 Hz to keep debug builds fast.
    fn scenario() -> (std::path::PathBuf, Scenario) {
        let text = "name = \"twin\"\nvariant = 12\ninitial_soc = 0.5\nadc_rate_hz = 100\nduration_s = 1\n";
        ("twin.toml".into(), Scenario::parse(text, Path::new("twin.toml")).unwrap())
    }

    /// A board's snapshot: every register from a twin of the same battery, then `set` overrides.
    fn board_like_twin(regs: &Registers, soc_pct: f64, set: &[(&str, i64)]) -> Vec<Option<i64>> {
        let text = format!("name = \"b\"\nvariant = 12\ninitial_soc = {}\nduration_s = 1\n", soc_pct / 100.0);
        let s = Scenario::parse(&text, Path::new("b.toml")).unwrap();
        let s = twin::twin_scenario(&s, Drive::Measured, soc_pct / 100.0);
        let mut t = Twin::measured(&s, regs, 0.0).unwrap();
        let mut raw = t.registers(regs);
        for (name, v) in set {
            let k = regs.list.iter().position(|r| r.name == *name).unwrap();
            raw[k] = Some(*v);
        }
        raw
    }

    #[test]
    fn the_twin_takes_the_board_s_soc_and_settings_and_follows_its_current() {
        let regs = regs();
        let board = board_like_twin(&regs, 60.0, &[("capacity_dah", 2000), ("lvp_mv", 11_000), ("uptime_s", 100)]);
        let mut ls =
            LockStep::start(&plan(PLAN), Some(&scenario()), regs.clone(), &board, Variant::V12, 100.0).unwrap();
        assert!(
            ls.description.contains("capacity_dah 200.0 Ah") && ls.description.contains("lvp_mv 11.000 V"),
            "{}",
            ls.description
        );
        assert!(ls.notes.is_empty(), "{:?}", ls.notes);
        let twin_raw = ls.twin.registers(&ls.regs);
        assert_eq!(ls.regs.raw(&twin_raw, RegId::Capacity), Some(2000));
        assert_eq!(ls.regs.raw(&twin_raw, RegId::Soc), Some(6000));

        // 10 min at −60 A (the board's current is held from one poll to the next): 10 Ah of the
        // board's 200 Ah, 5 points.
        ls.advance(100.0, -60.0, 13.0, None);
        ls.advance(100.0 + 600.0, -60.0, 13.0, None);
        let twin_raw = ls.twin.registers(&ls.regs);
        let soc = ls.regs.value(&twin_raw, RegId::Soc).unwrap();
        assert!((soc - 55.0).abs() < 0.05, "{soc}");

        // The board at the same SOC: within the SOC tolerance, which has grown by 0.1 A × 1/6 h / 200 Ah.
        let mut now = board.clone();
        let k = ls.regs.index(RegId::Soc).unwrap();
        now[k] = Some((soc * 100.0).round() as i64 + 1);
        let soc_reg = by_id(RegId::Soc).unwrap();
        let c = ls.compare(soc_reg, &now, None).unwrap();
        assert!((c.tolerance - (0.02 + 0.1 / 6.0 / 200.0 * 100.0)).abs() < 1e-3, "{c:?}");
        assert!(c.passed(), "{c:?}");
        now[k] = Some((soc * 100.0).round() as i64 + 20);
        assert!(!ls.compare(soc_reg, &now, None).unwrap().passed());
        // A tolerance from the plan wins.
        let c = ls.compare(soc_reg, &now, Some(Tolerance::Abs(0.5))).unwrap();
        assert!(c.passed() && c.tolerance == 0.5, "{c:?}");
    }

    #[test]
    fn a_board_that_restarts_stops_the_twin() {
        let regs = regs();
        let board = board_like_twin(&regs, 50.0, &[]);
        let mut ls = LockStep::start(&plan(PLAN), Some(&scenario()), regs, &board, Variant::V12, 10.0).unwrap();
        ls.advance(20.0, 0.0, 13.2, None);
        ls.advance(3.0, 0.0, 13.2, None);
        let v = by_id(RegId::BatteryVoltage).unwrap();
        let e = ls.compare(v, &board, None).unwrap_err();
        assert_eq!(e, "the board restarted (its uptime went from 20 s to 3 s): the twin stopped there");
    }

    #[test]
    fn a_scenario_of_another_variant_is_refused() {
        let regs = regs();
        let board = board_like_twin(&regs, 50.0, &[]);
        let s = Scenario::parse("name = \"x\"\nvariant = 24\ninitial_soc = 0.5\nduration_s = 1\n", Path::new("x.toml"))
            .unwrap();
        let e = LockStep::start(&plan(PLAN), Some(&("x.toml".into(), s)), regs, &board, Variant::V12, 0.0).unwrap_err();
        assert_eq!(e.to_string(), "the twin's scenario x.toml is for the 24 V variant, the board is a 12 V one");
    }

    #[test]
    fn totals_are_judged_on_their_growth_since_the_start() {
        let regs = regs();
        let board = board_like_twin(&regs, 80.0, &[("discharged_total_dah", 12_345)]);
        let mut ls = LockStep::start(&plan(PLAN), Some(&scenario()), regs, &board, Variant::V12, 0.0).unwrap();
        ls.advance(0.0, -30.0, 13.1, None);
        ls.advance(600.0, -30.0, 13.1, None);
        let reg = by_id(RegId::DischargedTotal).unwrap();
        let k = ls.regs.index(RegId::DischargedTotal).unwrap();
        let mut now = board.clone();
        now[k] = Some(12_345 + 50); // + 5.0 Ah in 10 min at 30 A
        let c = ls.compare(reg, &now, None).unwrap();
        assert!(c.passed(), "{c:?}");
        assert!((c.twin - 1239.5).abs() < 0.11, "{c:?}");
        assert!((c.tolerance - (0.2 + 0.1 / 6.0)).abs() < 1e-9, "{c:?}");
    }
}
