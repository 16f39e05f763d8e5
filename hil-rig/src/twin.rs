//! The twin of `hil-rig compare` and `hil-rig test`: `smartpro_sim`'s engine (battery, chain,
//! the board's firmware) built from a scenario, stepped in lock-step with
//! the board: between two board samples by the elapsed board time.

use firmware_core::board::POLL_PERIOD;
use firmware_core::map::REGISTERS;
use smartpro_sim::engine::{Engine, EngineError, HeldCurrent, Truth};
use smartpro_sim::scenario::{Scenario, secs_to_ns};
use smartpro_sim::stimulus::Stimulus;

use crate::decode::{self, Block, MAX_REGS_PER_REQUEST};
use crate::estimate::fit::REST_CURRENT_A;
use crate::source::Registers;
use models::variant::CURRENT_RANGE_A;

/// What drives the twin's battery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Drive {
    /// The board's measured current, held between samples: the twin
    /// follows whatever the bench does, and cannot judge the current.
    Measured,
    /// The scenario's segments and events: the bench applies the same known
    /// stimulus to the real battery, so the twin knows the true current and
    /// the board's current measurement is judged too.
    Scenario,
}

impl Drive {
    pub fn name(self) -> &'static str {
        match self {
            Drive::Measured => "measured",
            Drive::Scenario => "scenario",
        }
    }
}

/// Where a measured-drive twin starts (`compare --twin-start`; see
/// docs/hil-rig.md, "Self-comparison").
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TwinStart {
    /// The scenario that made the recording, run with its own stimulus from
    /// its t = 0 to the board's first sample ([`Twin::measured_from_scenario`]):
    /// a recording of the twin (a stand-in served with the scenario).
    Scenario,
    /// A battery at rest at the board's first SOC reading, settled under a
    /// first load ([`Twin::measured_settled`]): a real board.
    Rest,
}

impl TwinStart {
    pub fn name(self) -> &'static str {
        match self {
            TwinStart::Scenario => "scenario",
            TwinStart::Rest => "rest",
        }
    }
}

/// The twin's scenario: `base` without its injected defects (the twin is the
/// reference); in measured drive without its stimulus and events, its
/// battery and the board's SOC starting at `initial_soc` (0..1).
pub fn twin_scenario(base: &Scenario, drive: Drive, initial_soc: f64) -> Scenario {
    let mut s = base.clone();
    s.chain.injected = Default::default();
    if drive == Drive::Measured {
        s.initial_soc = initial_soc.clamp(0.0, 1.0);
        s.firmware.initial_soc_pct = Some((s.initial_soc * 10_000.0).round() / 100.0);
        s.segments.clear();
        s.events.clear();
    }
    s
}

/// The longest a measured-drive twin is run at the first current before
/// the comparison starts ([`Twin::measured_settled`]): five times the
/// built-in cells' slowest time constant ([`models::cell::DEFAULT_TAU2_S`],
/// 600 s), after which e⁻⁵ < 1 % of that pair's voltage step is left.
pub const MAX_PRE_RUN_S: f64 = 5.0 * models::cell::DEFAULT_TAU2_S;

/// How a measured-drive twin was brought to the board's state before the
/// first sample ([`Twin::measured_settled`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PreRun {
    /// Seconds of twin time at the first current (0: none, started at rest).
    pub seconds: f64,
    /// That current (A, + = charge).
    pub current_a: f64,
    /// The battery's SOC (0..1) at the start of the pre-run.
    pub from_soc: f64,
}

/// A running twin.
#[derive(Debug)]
pub struct Twin<'s> {
    engine: Engine,
    /// Engine time at the comparison's t = 0 (the pre-run's length).
    offset_ns: u64,
    /// The scenario's stimulus (scenario drive).
    stimulus: Option<Stimulus<'s>>,
    /// The board's current of the previous sample, held until the next (measured drive).
    held_a: f64,
    /// The board's own count of the charge at the previous sample
    /// (`remaining_mah`, Ah), read with its uptime (measured drive).
    counted_ah: Option<f64>,
    blocks: Vec<Block>,
}

/// Resolution of the board's `remaining_mah` (Ah): a difference of two
/// readings is off by less than this.
const COUNT_RESOLUTION_AH: f64 = 0.001;

/// The uptime's resolution (s): a sample read at uptime `u` was read within
/// `[u, u + 1)` and the twin takes it at `u + ½`, so each end of the
/// board's count between two samples is within half of this of the twin's.
pub const UPTIME_RESOLUTION_S: f64 = 1.0;

/// What the board's own count says flowed between two samples.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GapCurrent {
    /// The held current agrees with the count within its resolution and
    /// the uptime's (or there is no usable count): the twin held it.
    Held,
    /// The count disagrees: the twin ran the interval at this mean current
    /// (A, + = charge), the charge the board counted over the time.
    Counted(f64),
}

impl<'s> Twin<'s> {
    /// A twin in scenario drive: `scenario` from its t = 0.
    pub fn scenario(scenario: &'s Scenario, regs: &Registers) -> Result<Self, EngineError> {
        Ok(Self {
            engine: Engine::new(scenario)?,
            offset_ns: 0,
            stimulus: Some(Stimulus::new(scenario)),
            held_a: 0.0,
            counted_ah: None,
            blocks: decode::plan(REGISTERS, &regs.list, MAX_REGS_PER_REQUEST),
        })
    }

    /// A twin in measured drive (see [`twin_scenario`]), starting with the
    /// board's current `current_a`.
    pub fn measured(scenario: &Scenario, regs: &Registers, current_a: f64) -> Result<Self, EngineError> {
        Ok(Self {
            engine: Engine::new(scenario)?,
            offset_ns: 0,
            stimulus: None,
            held_a: current_a,
            counted_ah: None,
            blocks: decode::plan(REGISTERS, &regs.list, MAX_REGS_PER_REQUEST),
        })
    }

    /// A twin in measured drive that is the scenario the recording came
    /// from: `scenario` (the twin's, [`twin_scenario`] in scenario drive)
    /// run with its own stimulus and events from its t = 0 to `board_t_s`
    /// (the board time of the first sample), so that every state — the
    /// battery's SOC, RC voltages and hysteresis, the cells, a LiPro, the
    /// firmware's SOC methods, totals, internal-resistance history and
    /// protection — is the scenario's own there; from then on it follows
    /// the board's measured current (first `current_a`), and its t = 0 is
    /// `board_t_s`. See docs/hil-rig.md, "Self-comparison".
    pub fn measured_from_scenario(
        scenario: &Scenario,
        regs: &Registers,
        board_t_s: f64,
        current_a: f64,
    ) -> Result<Self, EngineError> {
        let mut engine = Engine::new(scenario)?;
        let offset_ns = secs_to_ns(board_t_s.max(0.0));
        engine.advance_to(offset_ns, &mut Stimulus::new(scenario))?;
        Ok(Self {
            engine,
            offset_ns,
            stimulus: None,
            held_a: current_a,
            counted_ah: None,
            blocks: decode::plan(REGISTERS, &regs.list, MAX_REGS_PER_REQUEST),
        })
    }

    /// A twin in measured drive whose battery is where the board's is at its
    /// first sample: a board under load (|`current_a`| ≥
    /// [`REST_CURRENT_A`]) has RC pairs that carry that load, which a twin
    /// started at rest lacks (its voltage then differs by the pairs' voltage
    /// for minutes). So the twin first runs at `current_a` for
    /// `loaded_for_s` (the board's uptime at its first sample: the longest
    /// the load can have been on), at most [`MAX_PRE_RUN_S`], starting at the
    /// SOC from which that charge brings it (and its firmware's SOC) to
    /// `scenario.initial_soc`; the comparison's t = 0 is the end of that
    /// run. At rest, or with `loaded_for_s` = 0: [`Twin::measured`].
    pub fn measured_settled(
        scenario: &Scenario,
        regs: &Registers,
        current_a: f64,
        loaded_for_s: f64,
    ) -> Result<(Self, PreRun), EngineError> {
        let seconds = if current_a.abs() >= REST_CURRENT_A && loaded_for_s.is_finite() {
            loaded_for_s.clamp(0.0, MAX_PRE_RUN_S)
        } else {
            0.0
        };
        let none = PreRun { seconds: 0.0, current_a, from_soc: scenario.initial_soc };
        if seconds == 0.0 {
            return Ok((Self::measured(scenario, regs, current_a)?, none));
        }
        // What that run takes from the battery (its SOC is the cells' mean,
        // with the board's own consumption and the cells' spread): found by
        // running it once from the target, then started that much higher.
        let offset_ns = secs_to_ns(seconds);
        // The battery and the firmware may start at different SOCs: both
        // are moved back by what the run takes.
        let firmware_pct = scenario.firmware.initial_soc_pct.unwrap_or(100.0 * scenario.initial_soc);
        let run = |initial_soc: f64, moved: f64| -> Result<Self, EngineError> {
            let mut s = scenario.clone();
            s.initial_soc = initial_soc.clamp(0.0, 1.0);
            let pct = (firmware_pct - 100.0 * moved).clamp(0.0, 100.0);
            s.firmware.initial_soc_pct = Some((pct * 100.0).round() / 100.0);
            let mut twin = Self::measured(&s, regs, current_a)?;
            twin.offset_ns = offset_ns;
            twin.engine.advance_to(offset_ns, &mut HeldCurrent::new(current_a))?;
            Ok(twin)
        };
        let target = scenario.initial_soc;
        let moved = run(target, 0.0)?.truth().soc - target;
        let from_soc = (target - moved).clamp(0.0, 1.0);
        Ok((run(from_soc, moved)?, PreRun { seconds, current_a, from_soc }))
    }

    /// Twin time (s) from the comparison's t = 0.
    pub fn t_s(&self) -> f64 {
        self.engine.t_ns().saturating_sub(self.offset_ns) as f64 * 1e-9
    }

    /// Advances to `t_s` of twin time (never backwards).
    ///
    /// Scenario drive: the scenario's stimulus and events. Measured drive:
    /// the previous sample's current until two firmware averaging blocks
    /// (2 × 10 ms) before `t_s`, then `current_a`, the current the board
    /// reported now, which is the mean of its last complete block: the
    /// twin's last complete block before `t_s` (whatever the phase of its
    /// polls) then sees the same current, and its voltage and current
    /// registers average it as the board's did.
    pub fn advance(&mut self, t_s: f64, current_a: f64) -> Result<(), EngineError> {
        self.advance_counted(t_s, current_a, None).map(|_| ())
    }

    /// [`Self::advance`], with the board's own count of the charge at this
    /// sample, `remaining_ah` (its `remaining_mah` register, read in the same
    /// request as its uptime), for the measured drive's intervals.
    ///
    /// Between two samples the current is not seen: a sample that retries
    /// delayed, or an offline window, can hide a current step, and the held
    /// current then puts `|ΔI| × gap` into the twin's SOC. The board counted
    /// what flowed: `Δremaining` over the interval is its mean current
    /// (undoing its charge efficiency and adding the own consumption it
    /// counts, with the twin's settings, so that the twin's firmware counts
    /// the same). When that disagrees with the held current by more than the
    /// count's resolution and the uptime's explain
    /// (`(1 mAh + ½ s × (|I_before| + |I_now|)) / Δt`), the twin runs the
    /// interval (until its last two blocks, as always) at the current that
    /// gives the counted charge. No count at
    /// either end, a reading at 0 or at the rated capacity (the count
    /// clamps there), or a mean beyond the current range (the board
    /// re-anchored its SOC: a full charge, an LVP trip, a `set_soc`) keeps
    /// the held current.
    pub fn advance_counted(
        &mut self,
        t_s: f64,
        current_a: f64,
        remaining_ah: Option<f64>,
    ) -> Result<GapCurrent, EngineError> {
        let target = self.offset_ns + secs_to_ns(t_s.max(0.0));
        let Some(stimulus) = &mut self.stimulus else {
            let block_start = target.saturating_sub(2 * POLL_PERIOD.0);
            let gap = self.gap_current(target, current_a, remaining_ah);
            let hold_a = match gap {
                GapCurrent::Held => self.held_a,
                GapCurrent::Counted(mean_a) => {
                    // The last two blocks run at the current reported now.
                    let dt_s = target.saturating_sub(self.engine.t_ns()) as f64 * 1e-9;
                    let tail_s = (target - block_start) as f64 * 1e-9;
                    (mean_a * dt_s - current_a * tail_s) / (dt_s - tail_s)
                }
            };
            self.engine.advance_to(block_start, &mut HeldCurrent::new(hold_a))?;
            self.engine.advance_to(target, &mut HeldCurrent::new(current_a))?;
            self.held_a = current_a;
            self.counted_ah = remaining_ah;
            return Ok(gap);
        };
        self.engine.advance_to(target, stimulus)?;
        Ok(GapCurrent::Held)
    }

    /// What the board's count says of the interval up to `target` (ns).
    fn gap_current(&self, target: u64, current_a: f64, remaining_ah: Option<f64>) -> GapCurrent {
        let (Some(before), Some(now)) = (self.counted_ah, remaining_ah) else { return GapCurrent::Held };
        let settings = self.engine.board().settings();
        let rated_ah = f64::from(settings.capacity_dah) * 0.1;
        let inside = |q: f64| q > 0.0 && q < rated_ah;
        let dt_s = target.saturating_sub(self.engine.t_ns()) as f64 * 1e-9;
        let tail_s = 2.0 * POLL_PERIOD.0 as f64 * 1e-9;
        if !(inside(before) && inside(now)) || dt_s <= 2.0 * tail_s {
            return GapCurrent::Held;
        }
        // What the firmware counts: (I − own)·efficiency on charge, I − own on discharge.
        let counted_a = (now - before) * models::cell::SECONDS_PER_HOUR / dt_s;
        let efficiency = f64::from(settings.charge_efficiency_centipct) / 10_000.0;
        let uncounted_a = if counted_a > 0.0 && efficiency > 0.0 { counted_a / efficiency } else { counted_a };
        let voltage_v = self.engine.truth().voltage_v;
        let own_a = if settings.self_consumption_counted != 0 && voltage_v > 1.0 {
            f64::from(firmware_core::settings::design::SELF_CONSUMPTION_MW) * 1e-3 / voltage_v
        } else {
            0.0
        };
        let mean_a = uncounted_a + own_a;
        if !(mean_a.is_finite() && mean_a.abs() <= CURRENT_RANGE_A) {
            return GapCurrent::Held;
        }
        // Each end of the board's interval is within half the uptime's
        // resolution of the twin's (read within [u, u + 1), the twin at u + ½).
        let explained_a = (COUNT_RESOLUTION_AH * models::cell::SECONDS_PER_HOUR
            + 0.5 * UPTIME_RESOLUTION_S * (self.held_a.abs() + current_a.abs()))
            / dt_s;
        if (mean_a - self.held_a).abs() <= explained_a { GapCurrent::Held } else { GapCurrent::Counted(mean_a) }
    }

    /// The true state of the twin's battery.
    pub fn truth(&self) -> Truth {
        *self.engine.truth()
    }

    /// The series resistance of the twin's pack now (Ω).
    pub fn r0_ohm(&self) -> f64 {
        self.engine.pack().r0_total_ohm()
    }

    /// The twin's board's registers, as a master reads them: one value per
    /// register of `regs` (`None` for what its firmware refuses to read).
    pub fn registers(&mut self, regs: &Registers) -> Vec<Option<i64>> {
        let mut words = [0u16; MAX_REGS_PER_REQUEST as usize];
        let mut out = vec![None; regs.list.len()];
        for b in &self.blocks {
            let reply = &mut words[..usize::from(b.count)];
            if self.engine.board_mut().read_registers(b.start, reply).is_err() {
                continue;
            }
            for reg in &b.regs {
                if let (Some(k), Some(w)) = (regs.index(reg.id), b.words_of(reg, reply)) {
                    out[k] = Some(reg.ty.decode(w));
                }
            }
        }
        out
    }

    /// Writes raw `value` to the twin's board register `name`, as a master
    /// on the bus would (`hil-rig test` mirrors the settings and commands it
    /// writes to the board).
    pub fn write_register(&mut self, name: &str, value: i64) -> Result<(), EngineError> {
        // A write may move the board's count (set_soc, reset_counters, the
        // capacity): the next interval's change of it is no current.
        self.counted_ah = None;
        self.engine.write_register_by_name(name, value)
    }
}

/// Whether an engine error is the input's fault (a scenario write the board
/// refuses, settings it rejects) rather than the run's.
pub fn is_bad_input(e: &EngineError) -> bool {
    matches!(e, EngineError::Settings(_) | EngineError::RegisterWrite { .. } | EngineError::Ecm(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::RegId;
    use std::path::Path;

    const SCENARIO: &str = "name = \"t\"\nvariant = 12\nseed = 5\ninitial_soc = 0.6\n\
        [firmware]\ninitial_soc_pct = 60.0\n[[segment]]\nkind = \"rest\"\nduration_s = 1\n\
        [[segment]]\nkind = \"discharge\"\ncurrent_a = 20.0\nduration_s = 10\n\
        [chain.injected]\ncurrent_offset_pct_fs = 0.05\n";

    fn regs() -> Registers {
        Registers::new(crate::recording::record_columns().unwrap().1)
    }

    #[test]
    fn scenario_drive_follows_the_segments_and_reads_like_a_master() {
        let s = Scenario::parse(SCENARIO, Path::new("t.toml")).unwrap();
        let twin_s = twin_scenario(&s, Drive::Scenario, 0.0);
        assert_eq!(twin_s.chain.injected, Default::default(), "the twin is the reference");
        assert_eq!(twin_s.segments.len(), 2);
        let regs = regs();
        let mut t = Twin::scenario(&twin_s, &regs).unwrap();
        t.advance(0.5, 123.0).unwrap();
        assert_eq!(t.truth().current_a, 0.0, "at rest; the given current is ignored");
        t.advance(2.5, 0.0).unwrap();
        assert!((t.truth().current_a + 20.0).abs() < 1e-9);
        assert_eq!(t.t_s(), 2.5);
        let raw = t.registers(&regs);
        let i = regs.value(&raw, RegId::Current).unwrap();
        assert!((i + 20.0).abs() < 0.1, "{i}");
        assert_eq!(regs.raw(&raw, RegId::VariantV), Some(12));
        // Its last poll was at 2.491 s (they run every 10 ms from the first conversion, at 1 ms).
        assert_eq!(regs.raw(&raw, RegId::Uptime), Some(2));
        // Not backwards.
        t.advance(1.0, 0.0).unwrap();
        assert_eq!(t.t_s(), 2.5);
    }

    #[test]
    fn measured_drive_holds_the_previous_current_until_the_last_block() {
        let s = Scenario::parse(SCENARIO, Path::new("t.toml")).unwrap();
        let twin_s = twin_scenario(&s, Drive::Measured, 0.42);
        assert!(twin_s.segments.is_empty() && twin_s.events.is_empty());
        assert_eq!((twin_s.initial_soc, twin_s.firmware.initial_soc_pct), (0.42, Some(42.0)));
        let regs = regs();
        let mut t = Twin::measured(&twin_s, &regs, -10.0).unwrap();
        let soc0 = t.truth().soc;
        t.advance(1.0, -30.0).unwrap();
        // 0.98 s at 10 A and 20 ms at 30 A (plus the board's own 0.1 W) out of the ≈100 Ah pack.
        let drawn_ah = (soc0 - t.truth().soc) * t.engine.pack().capacity_ah();
        let want_ah = (0.98 * 10.0 + 0.02 * 30.0) / 3600.0;
        assert!((drawn_ah - want_ah).abs() < 0.01 * want_ah, "{drawn_ah} vs {want_ah}");
        assert!((t.truth().current_a + 30.0).abs() < 1e-9, "the last block at the current reported now");
        let raw = t.registers(&regs);
        assert!((regs.value(&raw, RegId::Current).unwrap() + 30.0).abs() < 0.05);
        // The board counted the same: 42 % of 100 Ah less what the second took (± 1 mAh).
        let remaining_ah = regs.value(&raw, RegId::RemainingCharge).unwrap();
        assert!((remaining_ah - (42.0 - want_ah)).abs() <= 0.001, "{remaining_ah} Ah");
    }

    /// The board's `remaining_mah` (Ah) as a master reads it.
    fn remaining_ah(t: &mut Twin, regs: &Registers) -> Option<f64> {
        let raw = t.registers(regs);
        regs.value(&raw, RegId::RemainingCharge)
    }

    #[test]
    fn issue_17_a_gap_that_hides_a_current_step_runs_at_the_current_the_board_counted() {
        // The board: at rest, samples every board second; then an offline
        // window of 15 s in which a 40 A discharge starts (at 7.98 s); the
        // next sample reads it. Before, the twin held 0 A over the window
        // and its SOC was 40 A × 12.5 s = 0.139 Ah above the board's.
        let s = Scenario::parse(SCENARIO, Path::new("t.toml")).unwrap();
        let twin_s = twin_scenario(&s, Drive::Measured, 0.60);
        let regs = regs();
        let mut board = Twin::measured(&twin_s, &regs, 0.0).unwrap();
        let mut twin = Twin::measured(&twin_s, &regs, 0.0).unwrap();
        let mut held = Twin::measured(&twin_s, &regs, 0.0).unwrap();
        let step = |t_s: f64, board_a: f64, board: &mut Twin, twin: &mut Twin, held: &mut Twin| {
            board.advance(t_s, board_a).unwrap();
            let raw = board.registers(&regs);
            let (i, q) = (regs.value(&raw, RegId::Current).unwrap(), regs.value(&raw, RegId::RemainingCharge));
            held.advance(t_s, i).unwrap();
            (twin.advance_counted(t_s, i, q).unwrap(), q.unwrap())
        };
        for k in 0..5 {
            let (gap, _) = step(0.5 + f64::from(k), 0.0, &mut board, &mut twin, &mut held);
            assert_eq!(gap, GapCurrent::Held, "at rest the count agrees with the held current");
        }
        board.advance(8.0, -40.0).unwrap();
        let (gap, board_ah) = step(20.5, -40.0, &mut board, &mut twin, &mut held);
        let GapCurrent::Counted(mean_a) = gap else { panic!("{gap:?}") };
        // 12.5 s of 16 at 40 A, within the count's and the uptime's resolution.
        assert!((mean_a + 40.0 * 12.5 / 16.0).abs() < 0.6, "{mean_a} A");
        let twin_ah = remaining_ah(&mut twin, &regs).unwrap();
        let held_ah = remaining_ah(&mut held, &regs).unwrap();
        assert!((twin_ah - board_ah).abs() <= 0.002, "twin {twin_ah} Ah vs board {board_ah} Ah");
        assert!(held_ah - board_ah > 0.13, "the held current: {held_ah} Ah vs {board_ah} Ah");
        // Then steady: held again.
        for k in 0..3 {
            let (gap, _) = step(21.5 + f64::from(k), -40.0, &mut board, &mut twin, &mut held);
            assert_eq!(gap, GapCurrent::Held);
        }
        // A count that jumps (the board re-anchored its SOC) is no current: held.
        twin.counted_ah = Some(50.0);
        assert_eq!(twin.advance_counted(40.0, -40.0, Some(10.0)).unwrap(), GapCurrent::Held);
    }

    #[test]
    fn issue_21_a_twin_started_under_load_carries_the_load_on_its_rc_pairs() {
        let s = Scenario::parse(SCENARIO, Path::new("t.toml")).unwrap();
        let twin_s = twin_scenario(&s, Drive::Measured, 0.60);
        let regs = regs();
        // The board: at −40 A for 20 min before its first sample.
        let mut board = Twin::measured(&twin_s, &regs, -40.0).unwrap();
        board.advance(1200.0, -40.0).unwrap();
        let board_soc = board.truth().soc;
        let at = twin_scenario(&s, Drive::Measured, board_soc);
        // Settled: the pre-run is capped at MAX_PRE_RUN_S and ends at the board's SOC, at t = 0.
        let (mut settled, pre) = Twin::measured_settled(&at, &regs, -40.0, 1200.0).unwrap();
        assert_eq!((pre.seconds, pre.current_a), (1200.0, -40.0));
        assert_eq!(settled.t_s(), 0.0);
        assert!((settled.truth().soc - board_soc).abs() < 1e-4, "{} vs {board_soc}", settled.truth().soc);
        let dv_settled = (settled.truth().voltage_v - board.truth().voltage_v).abs();
        // Started at rest instead: the RC pairs' voltage is missing.
        let mut rest = Twin::measured(&at, &regs, -40.0).unwrap();
        rest.advance(0.5, -40.0).unwrap();
        settled.advance(0.5, -40.0).unwrap();
        board.advance(1200.5, -40.0).unwrap();
        let dv_rest = (rest.truth().voltage_v - board.truth().voltage_v).abs();
        let dv_settled_later = (settled.truth().voltage_v - board.truth().voltage_v).abs();
        assert!(dv_settled < 2e-3 && dv_settled_later < 2e-3, "{dv_settled} {dv_settled_later} V");
        assert!(dv_rest > 0.02, "a twin started at rest is {dv_rest} V off");
        assert_eq!(settled.t_s(), 0.5);
        // At rest, or loaded for no time: no pre-run.
        assert_eq!(Twin::measured_settled(&at, &regs, 0.1, 1200.0).unwrap().1.seconds, 0.0);
        assert_eq!(Twin::measured_settled(&at, &regs, -40.0, 0.0).unwrap().1.seconds, 0.0);
        assert_eq!(Twin::measured_settled(&at, &regs, -40.0, 1e9).unwrap().1.seconds, MAX_PRE_RUN_S);
    }
}
