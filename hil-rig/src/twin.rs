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
    blocks: Vec<Block>,
}

impl<'s> Twin<'s> {
    /// A twin in scenario drive: `scenario` from its t = 0.
    pub fn scenario(scenario: &'s Scenario, regs: &Registers) -> Result<Self, EngineError> {
        Ok(Self {
            engine: Engine::new(scenario)?,
            offset_ns: 0,
            stimulus: Some(Stimulus::new(scenario)),
            held_a: 0.0,
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
        let run = |initial_soc: f64| -> Result<Self, EngineError> {
            let mut s = scenario.clone();
            s.initial_soc = initial_soc.clamp(0.0, 1.0);
            s.firmware.initial_soc_pct = Some((s.initial_soc * 10_000.0).round() / 100.0);
            let mut twin = Self::measured(&s, regs, current_a)?;
            twin.offset_ns = offset_ns;
            twin.engine.advance_to(offset_ns, &mut HeldCurrent::new(current_a))?;
            Ok(twin)
        };
        let target = scenario.initial_soc;
        let moved = run(target)?.truth().soc - target;
        let from_soc = (target - moved).clamp(0.0, 1.0);
        Ok((run(from_soc)?, PreRun { seconds, current_a, from_soc }))
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
        let target = self.offset_ns + secs_to_ns(t_s.max(0.0));
        match &mut self.stimulus {
            Some(stimulus) => self.engine.advance_to(target, stimulus)?,
            None => {
                let block_start = target.saturating_sub(2 * POLL_PERIOD.0);
                self.engine.advance_to(block_start, &mut HeldCurrent::new(self.held_a))?;
                self.engine.advance_to(target, &mut HeldCurrent::new(current_a))?;
                self.held_a = current_a;
            }
        }
        Ok(())
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
