//! The scenario walker: a scenario's segments and events as a [`Drive`] of
//! the engine — which demand applies now, when a segment ends (its duration
//! or its `until` event), and which events are due.

use models::loads::{Charger, ChargerParams, Load};
use models::variant::Variant;

use crate::engine::{Drive, Engine, EngineError};
use crate::scenario::{Event, Scenario, Segment, SegmentKind, Trigger, Until, secs_to_ns};

/// Walks a scenario's segments tick by tick: which stimulus applies now, and
/// when a segment ends (its duration or its `until` event). After the last
/// segment the battery rests.
#[derive(Debug)]
pub struct Stimulus<'a> {
    scenario: &'a Scenario,
    index: usize,
    segment_start_ns: u64,
    segment_end_ns: u64,
    /// Scenario events sorted by time, and how many have been applied.
    events: Vec<&'a Event>,
    events_done: usize,
    /// Events waiting for the board to open its switch (`trigger = "switch_off"`),
    /// and whether the switch has been seen on since they were armed.
    armed: Vec<(&'a Event, bool)>,
    /// The CC-CV charger of the current segment (it keeps its termination state).
    charger: Option<Charger>,
    /// Row hint for the current segment's CSV profile.
    profile_hint: usize,
    /// The signed demand of the current segment when it is a constant current
    /// (no `until`, pulse, profile, charger or load model): asked every tick,
    /// it needs no look at the segment or the engine.
    constant: Option<f64>,
}

/// Whether the main switch conducts both ways. A `switch_off` trigger or `until` is the board
/// opening a bank of it: the whole switch (over-current, over-temperature) or the bank of one
/// direction (LVP, OVP: issue 16), which interrupts a current of that direction just the same.
fn switch_closed(engine: &Engine) -> bool {
    let gate = engine.gate();
    gate.discharge_allowed() && gate.charge_allowed()
}

/// The signed demand of a constant-current segment (A, > 0 charges).
fn signed_a(kind: SegmentKind, current_a: f64) -> f64 {
    match kind {
        SegmentKind::Charge => current_a,
        SegmentKind::Discharge => -current_a,
        SegmentKind::Rest | SegmentKind::Profile => 0.0,
    }
}

impl Drive for Stimulus<'_> {
    /// The scenario events due at `engine`'s time (bus writes in order, input
    /// changes, transient events), and an armed transient event when the
    /// board has opened its switch.
    #[inline]
    fn apply_due(&mut self, engine: &mut Engine) -> Result<(), EngineError> {
        if self.events_due(engine.t_ns()) { self.apply_due_events(engine) } else { Ok(()) }
    }

    /// The demand for the tick starting at `engine`'s time.
    #[inline]
    fn demand_a(&mut self, engine: &Engine) -> f64 {
        if let Some(demand_a) = self.constant
            && engine.t_ns() < self.segment_end_ns
        {
            return demand_a;
        }
        self.segment_demand_a(engine)
    }

    /// A constant-current segment (or a rest) is steady until it ends or the next event is due.
    #[inline]
    fn steady(&self, engine: &Engine, max_n: u64) -> Option<(f64, u64)> {
        let demand_a = self.constant?;
        if !self.armed.is_empty() {
            return None;
        }
        let t = engine.t_ns();
        let next_event_ns = self.events.get(self.events_done).map_or(u64::MAX, |ev| secs_to_ns(ev.at_s));
        let bound_ns = self.segment_end_ns.min(next_event_ns);
        let n = crate::engine::ticks_before_at_most(t, bound_ns, engine.step_ns(), max_n);
        (n > 0).then_some((demand_a, n))
    }
}

impl<'a> Stimulus<'a> {
    pub fn new(scenario: &'a Scenario) -> Self {
        let first = scenario.segments.first().map_or(u64::MAX, |s| secs_to_ns(s.duration_s));
        let mut events: Vec<_> = scenario.events.iter().collect();
        events.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        let mut stim = Stimulus {
            scenario,
            index: 0,
            segment_start_ns: 0,
            segment_end_ns: first,
            events,
            events_done: 0,
            armed: Vec::new(),
            charger: None,
            profile_hint: 0,
            constant: None,
        };
        stim.enter_segment(scenario.variant);
        stim
    }

    /// Sets up the per-segment state of the segment at `index`.
    fn enter_segment(&mut self, variant: Variant) {
        self.profile_hint = 0;
        self.constant = self
            .scenario
            .segments
            .get(self.index)
            .filter(|s| {
                s.until.is_none()
                    && s.period_s.is_none()
                    && s.profile.is_none()
                    && s.cv_voltage_v.is_none()
                    && s.power_w.is_none()
                    && s.resistance_ohm.is_none()
            })
            .map(|s| signed_a(s.kind, s.current_a));
        self.charger = self.scenario.segments.get(self.index).and_then(|seg| {
            seg.cv_voltage_v.map(|v| {
                Charger::new(ChargerParams { voltage_limit_v: v, ..ChargerParams::lfp(variant, seg.current_a) })
            })
        });
    }

    /// Whether [`Self::apply_due_events`] has anything to do at `t_ns`: the
    /// cheap test every tick (keep it in step with that method).
    #[inline]
    fn events_due(&self, t_ns: u64) -> bool {
        !self.armed.is_empty() || self.events.get(self.events_done).is_some_and(|ev| secs_to_ns(ev.at_s) <= t_ns)
    }

    /// Applies the scenario events due at `engine`'s time (bus writes in
    /// order, input changes, transient events), and starts an armed
    /// transient event when the board has opened its switch.
    fn apply_due_events(&mut self, engine: &mut Engine) -> Result<(), EngineError> {
        if !self.armed.is_empty() {
            self.fire_armed(engine)?;
        }
        while let Some(ev) = self.events.get(self.events_done) {
            if secs_to_ns(ev.at_s) > engine.t_ns() {
                break;
            }
            self.events_done += 1;
            for w in &ev.write {
                engine.write_register_by_name(&w.register, w.value)?;
            }
            engine.set_lipro_inputs(ev.lvp_input, ev.ovp_input);
            match (ev.transient, ev.trigger) {
                (Some(t), Trigger::At) => {
                    engine.transient_event(t.kind(), ev.fault_resistance_mohm, ev.position)?;
                }
                (Some(_), Trigger::SwitchOff) => {
                    self.armed.push((*ev, switch_closed(engine)));
                }
                (None, _) => {}
            }
        }
        Ok(())
    }

    /// Starts the first armed event whose switch has opened (the board's
    /// outputs of the last tick: the switch opens at this tick's start).
    fn fire_armed(&mut self, engine: &mut Engine) -> Result<(), EngineError> {
        let on = switch_closed(engine);
        for armed in &mut self.armed {
            armed.1 |= on;
        }
        if on || engine.transient_running() {
            return Ok(());
        }
        if let Some(k) = self.armed.iter().position(|&(_, seen_on)| seen_on) {
            let (ev, _) = self.armed.remove(k);
            if let Some(t) = ev.transient {
                engine.transient_event(t.kind(), ev.fault_resistance_mohm, ev.position)?;
            }
        }
        Ok(())
    }

    /// [`Drive::demand_a`] for any segment, moving on to the next segment
    /// when this one has ended.
    fn segment_demand_a(&mut self, engine: &Engine) -> f64 {
        let t = engine.t_ns();
        while let Some(seg) = self.scenario.segments.get(self.index) {
            let ended_by_event = match seg.until {
                Some(Until::Lvp) => engine.lvp_tripped(),
                Some(Until::Ovp) => engine.ovp_tripped(),
                Some(Until::SwitchOff) => !switch_closed(engine),
                None => false,
            };
            if t < self.segment_end_ns && !ended_by_event {
                if let Some(period_s) = seg.period_s {
                    // Pulsed: on for duty × period at the start of each period.
                    let period_ns = secs_to_ns(period_s).max(1);
                    let on_ns = secs_to_ns(period_s * seg.duty.unwrap_or(0.5));
                    if t.saturating_sub(self.segment_start_ns) % period_ns >= on_ns {
                        return 0.0;
                    }
                }
                return self.segment_now_a(seg, engine, t);
            }
            self.index += 1;
            // The next segment starts now (an early end shifts the rest).
            if let Some(next) = self.scenario.segments.get(self.index) {
                self.segment_start_ns = t;
                self.segment_end_ns = t.saturating_add(secs_to_ns(next.duration_s));
            }
            self.enter_segment(self.scenario.variant);
        }
        0.0
    }

    /// The signed current a segment's load, charger or profile asks for now.
    fn segment_now_a(&mut self, seg: &Segment, engine: &Engine, t: u64) -> f64 {
        if let Some(p) = &seg.profile {
            return p.current_a(t.saturating_sub(self.segment_start_ns) as f64 * 1e-9, &mut self.profile_hint);
        }
        if let Some(charger) = &mut self.charger {
            return charger.current_a(&engine.source(), engine.gate());
        }
        let load = match (seg.power_w, seg.resistance_ohm) {
            (Some(power_w), _) => Load::ConstantPower { power_w, min_voltage_v: 0.0 },
            (None, Some(resistance_ohm)) => Load::Resistive { resistance_ohm },
            _ => return signed_a(seg.kind, seg.current_a),
        };
        // A load draws (its current is ≤ 0).
        load.current_a(&engine.source(), engine.gate())
    }
}

/// The multi-rate stepping of transient events (issue 7), driven by a scenario's events.
#[cfg(test)]
mod event_tests {
    use super::*;
    use firmware_core::map::faults;
    use std::path::Path;

    const REST_48V: &str = "name = \"sc-charge\"\nvariant = 48\nseed = 9\ninitial_soc = 0.9\n[[segment]]\nkind = \"rest\"\nduration_s = 0.5\n";

    /// Runs `text` with an ideal measurement chain; returns the engine and the
    /// charge the firmware counted (Σ block-mean current × block time, µA·µs,
    /// exactly what its coulomb counter adds).
    fn run_counting(text: &str) -> (Engine, i128) {
        let mut s = Scenario::parse(text, Path::new("t.toml")).unwrap();
        s.chain = models::chain::ChainParams::ideal();
        let mut e = Engine::new(&s).unwrap();
        let mut stim = Stimulus::new(&s);
        let mut counted: i128 = 0;
        let mut last_poll = e.board().last_poll().unwrap();
        e.advance_to_with(s.duration_ns(), &mut stim, |e, _| {
            let now = firmware_core::Instant(e.t_ns());
            if e.board().last_poll() == Some(now) {
                let dt_us = i128::from(now.saturating_since(last_poll).as_micros());
                counted += i128::from(e.board().measurements().current_ua) * dt_us;
                last_poll = now;
            }
            Ok::<_, EngineError>(())
        })
        .unwrap();
        (e, counted)
    }

    #[test]
    fn a_short_circuit_s_charge_reaches_the_pack_and_the_firmware_count() {
        let (quiet, counted_quiet) = run_counting(REST_48V);
        let with = format!("{REST_48V}[[event]]\nat_s = 0.2\ntransient = \"short_circuit\"\n");
        let (shorted, counted_shorted) = run_counting(&with);
        let outcome = shorted.last_transient().expect("the event finished");
        assert!(outcome.passed() && outcome.end.comparator_latched, "{:?}", outcome.checks);
        // ∫i dt of the circuit: a discharge of tens of mC, over well under one ADC period
        let charge_c = outcome.end.charge_c;
        assert!((-0.2..-0.01).contains(&charge_c), "{charge_c}");
        assert!(outcome.metrics.time_to_zero_us.unwrap() < 1000.0);

        // The firmware counted it, within the ADC's resolution (1 mA) over the block the event fell in.
        let counted_c = (counted_shorted - counted_quiet) as f64 * 1e-12;
        let block_s = firmware_core::board::POLL_PERIOD.as_micros() as f64 * 1e-6;
        let resolution_c = models::variant::CURRENT_RESOLUTION_A * block_s;
        assert!((counted_c - charge_c).abs() <= resolution_c, "counted {counted_c} C vs ∫i dt {charge_c} C");

        // The pack lost exactly that charge: its SOC is the quiet pack's stepped with it.
        let mut expected = quiet.pack().clone();
        expected.step(1e-6, charge_c / 1e-6);
        assert!(
            (shorted.pack().soc() - expected.soc()).abs() < 1e-12,
            "{} vs {}",
            shorted.pack().soc(),
            expected.soc()
        );
        assert!(shorted.pack().soc() < quiet.pack().soc());
        // The latch reached the board and holds the switch open.
        assert!(shorted.board().outputs().faults & faults::SHORT_CIRCUIT != 0);
        assert!(!shorted.transient_running());
    }

    #[test]
    fn a_load_dump_waits_for_the_board_to_open_its_switch() {
        // An alternator charges at 40 A; at 0.1 s a gateway lowers the over-current-charge
        // threshold to 30 A; the board trips after its 50 ms delay and opens the switch: the load
        // dump starts then, not at 0.1 s.
        let text = "name = \"ld\"\nvariant = 12\nseed = 5\ninitial_soc = 0.9\n\
            [firmware.registers]\nocc_delay_ms = 50\n\
            [[segment]]\nkind = \"charge\"\ncurrent_a = 40.0\nduration_s = 0.5\n\
            [[event]]\nat_s = 0.1\ntransient = \"load_dump\"\ntrigger = \"switch_off\"\n\
            write = [{ register = \"occ_da\", value = 300 }]\n";
        let (e, _) = run_counting(text);
        let o = e.last_transient().expect("the load dump ran");
        assert!(o.passed(), "{:?}", o.checks);
        assert!((o.metrics.peak_current_a - 40.0).abs() < 1.0, "{}", o.metrics.peak_current_a);
        assert!(o.end.charge_c > 0.0 && o.end.switch_off && !o.end.comparator_latched);
        assert!(o.metrics.arrester_energy_j > 0.1, "{}", o.metrics.arrester_energy_j);
        assert!(!e.outputs().switch_on && e.truth().current_a == 0.0);
        assert!(e.board().outputs().faults & faults::OCC != 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::HeldCurrent;
    use std::path::Path;

    /// The demand of every tick of `text` over `seconds`, and the current that flowed.
    fn demands(text: &str, seconds: f64) -> Vec<(f64, f64)> {
        let s = Scenario::parse(text, Path::new("d.toml")).unwrap();
        let mut e = Engine::new(&s).unwrap();
        let mut stim = Stimulus::new(&s);
        let mut out = Vec::new();
        while e.t_s() < seconds {
            let demand_a = stim.demand_a(&e);
            let flowed_a = e.tick(&mut HeldCurrent::new(demand_a)).unwrap().current_a;
            out.push((demand_a, flowed_a));
        }
        out
    }

    /// Issue 14: the demand is signed end to end (> 0 charges), and the
    /// board's outputs gate it in the engine: a discharge stops when the LVP
    /// output drops, a charge when the OVP output drops, both when the
    /// switch opens.
    #[test]
    fn issue_14_the_demand_is_signed_and_the_engine_gates_it() {
        let text = "name = \"signed\"\nvariant = 12\nseed = 2\ninitial_soc = 0.5\nadc_rate_hz = 100\n\
            [[segment]]\nkind = \"discharge\"\ncurrent_a = 20.0\nduration_s = 1\n\
            [[segment]]\nkind = \"rest\"\nduration_s = 1\n\
            [[segment]]\nkind = \"charge\"\ncurrent_a = 15.0\nduration_s = 1\n";
        let d = demands(text, 3.0);
        assert_eq!(d.len(), 300);
        assert!(d[..100].iter().all(|&(demand, flowed)| demand == -20.0 && flowed == -20.0), "{:?}", &d[..3]);
        assert!(d[100..200].iter().all(|&(demand, flowed)| demand == 0.0 && flowed == 0.0));
        assert!(d[200..].iter().all(|&(demand, flowed)| demand == 15.0 && flowed == 15.0));

        // The LiPro loop drops the LVP input: the board drops its LVP output and the discharge stops,
        // while a charge (OVP output still on) flows.
        let lipro = |kind: &str, input: &str| {
            format!(
                "name = \"gate\"\nvariant = 12\nseed = 2\ninitial_soc = 0.5\nadc_rate_hz = 100\n\
                 [[segment]]\nkind = \"{kind}\"\ncurrent_a = 20.0\nduration_s = 2\n\
                 [[event]]\nat_s = 0.5\n{input} = false\n"
            )
        };
        let s = Scenario::parse(&lipro("discharge", "lvp_input"), Path::new("g.toml")).unwrap();
        let mut e = Engine::new(&s).unwrap();
        let mut stim = Stimulus::new(&s);
        e.advance_to(2_000_000_000, &mut stim).unwrap();
        assert!(!e.outputs().lvp_output && e.outputs().switch_on, "{:?}", e.outputs());
        assert_eq!(stim.demand_a(&e), 0.0, "after the last segment the battery rests");
        let mut held = HeldCurrent::new(-20.0);
        assert_eq!(e.tick(&mut held).unwrap().current_a, 0.0, "no discharge without the LVP output");
        held.current_a = 20.0;
        assert_eq!(e.tick(&mut held).unwrap().current_a, 20.0, "a charge still flows");

        let s = Scenario::parse(&lipro("charge", "ovp_input"), Path::new("g.toml")).unwrap();
        let mut e = Engine::new(&s).unwrap();
        e.advance_to(2_000_000_000, &mut Stimulus::new(&s)).unwrap();
        assert!(!e.outputs().ovp_output, "{:?}", e.outputs());
        assert_eq!(e.tick(&mut HeldCurrent::new(20.0)).unwrap().current_a, 0.0, "no charge without the OVP output");
        assert_eq!(e.tick(&mut HeldCurrent::new(-20.0)).unwrap().current_a, -20.0, "a discharge still flows");
    }

    /// A resistive load's demand is the current it draws from the battery (< 0), a CC-CV charger's
    /// and a profile's as they come (> 0 charges).
    #[test]
    fn loads_chargers_and_profiles_give_signed_demands() {
        let text = "name = \"loads\"\nvariant = 12\nseed = 2\ninitial_soc = 0.5\nadc_rate_hz = 100\n\
            [[segment]]\nkind = \"discharge\"\nresistance_ohm = 1.0\nduration_s = 1\n\
            [[segment]]\nkind = \"charge\"\ncurrent_a = 10.0\ncv_voltage_v = 14.2\nduration_s = 1\n";
        let d = demands(text, 2.0);
        let (load, charge) = (d[50], d[150]);
        assert!(load.0 < -10.0 && load.0 > -15.0 && load.1 == load.0, "{load:?}");
        assert!(charge.0 > 9.0 && charge.0 <= 10.0 && charge.1 == charge.0, "{charge:?}");
    }
}
