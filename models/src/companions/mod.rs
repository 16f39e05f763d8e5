//! The BMS around the SmartPro (datasheet SmartPro-209, first paragraph):
//! LiPro cell modules ([`lipro`], their balancing [`balancing`]) and the
//! PowerPro ([`powerpro`]: main switch, secondary protection, and its fuse
//! [`fuse`]). Equations and parameters: `docs/companions.md`.

pub mod balancing;
pub mod fuse;
pub mod lipro;
pub mod powerpro;

pub use balancing::{Balancer, BalancingParams};
pub use fuse::{Fuse, FuseParams, FuseState};
pub use lipro::{Lipro, LiproParams};
pub use powerpro::{PowerPro, PowerProParams, Trip};

use crate::pack::Pack;
use crate::rng::SeedStreams;

/// What one companions step hands to the engine.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Step {
    /// Heat of the bleed resistors into the cells' thermal node (W).
    pub heat_w: f64,
    /// The PowerPro coil's current drawn from the pack (A, ≥ 0).
    pub coil_a: f64,
    /// The SmartPro's LVP / OVP control inputs (None without LiPros: left as they are).
    pub lvp_input_ok: Option<bool>,
    pub ovp_input_ok: Option<bool>,
}

/// The companions a scenario configures, stepped with the pack, and the times of their first
/// trips (s, counted in their own steps from t = 0).
#[derive(Clone, Debug)]
pub struct Companions {
    lipro: Option<Lipro>,
    powerpro: Option<PowerPro>,
    steps: u64,
    pub lipro_uv_at_s: Option<f64>,
    pub lipro_ov_at_s: Option<f64>,
    pub fuse_cleared_at_s: Option<f64>,
    pub powerpro_trip_at_s: Option<f64>,
}

impl Companions {
    /// The companions for a pack of `cells` cells; `None` when neither is configured. The LiPros'
    /// measurement errors and noise draw from the "lipro" stream of `streams`.
    pub fn new(
        lipro: Option<&LiproParams>,
        powerpro: Option<&PowerProParams>,
        cells: usize,
        cells_node_c: f64,
        streams: &SeedStreams,
    ) -> Option<Box<Companions>> {
        if lipro.is_none() && powerpro.is_none() {
            return None;
        }
        Some(Box::new(Companions {
            lipro: lipro.map(|p| Lipro::new(p, cells, cells_node_c, streams.stream("lipro"))),
            powerpro: powerpro.map(|p| PowerPro::new(p, cells)),
            steps: 0,
            lipro_uv_at_s: None,
            lipro_ov_at_s: None,
            fuse_cleared_at_s: None,
            powerpro_trip_at_s: None,
        }))
    }

    /// One step of `dt_s` after the pack's step at `current_a` (> 0 charges), the cells' thermal
    /// node at `cells_node_c`.
    pub fn step(&mut self, dt_s: f64, pack: &mut Pack, current_a: f64, cells_node_c: f64) -> Step {
        self.steps += 1;
        let t_s = self.steps as f64 * dt_s;
        let mut out = Step::default();
        let v = pack.terminal_voltage_v(current_a);
        if let Some(pp) = &mut self.powerpro {
            pp.step(dt_s, v, current_a);
            out.coil_a = pp.coil_current_a(v);
            if pp.trip().is_some() {
                self.powerpro_trip_at_s.get_or_insert(t_s);
            }
            if pp.fuse().state() == FuseState::Cleared {
                self.fuse_cleared_at_s.get_or_insert(t_s);
            }
        }
        if let Some(l) = &mut self.lipro {
            out.heat_w = l.step(dt_s, pack, current_a, cells_node_c);
            out.lvp_input_ok = Some(l.lvp_input_ok());
            out.ovp_input_ok = Some(l.ovp_input_ok());
            if l.any_uv() {
                self.lipro_uv_at_s.get_or_insert(t_s);
            }
            if l.any_ov() {
                self.lipro_ov_at_s.get_or_insert(t_s);
            }
        }
        out
    }

    /// The current the PowerPro lets through (A): all of it without one.
    #[inline]
    pub fn gate_a(&self, current_a: f64) -> f64 {
        self.powerpro.as_ref().map_or(current_a, |p| p.gate_a(current_a))
    }

    pub fn lipro(&self) -> Option<&Lipro> {
        self.lipro.as_ref()
    }

    pub fn powerpro(&self) -> Option<&PowerPro> {
        self.powerpro.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::{OddCell, PackParams};

    #[test]
    fn a_weak_cell_drops_the_lvp_loop_during_a_discharge() {
        // 4 cells, the third 8 % low on capacity: at 100 A from 30 % it runs empty first.
        let p = PackParams {
            odd_cell: Some(OddCell { index: 3, capacity_rel: 0.92, soc_offset: 0.0 }),
            ..PackParams::uniform(crate::CellParams::default())
        };
        let streams = SeedStreams::new(1);
        let mut pack = Pack::new(&p, crate::Variant::V12, 0.3, &mut streams.stream("pack"));
        let mut c = Companions::new(Some(&LiproParams::default()), None, 4, 25.0, &streams).unwrap();
        let mut lvp = Some(true);
        let mut t = 0.0;
        while lvp == Some(true) && t < 20_000.0 {
            pack.step(1.0, -100.0);
            lvp = c.step(1.0, &mut pack, -100.0, 25.0).lvp_input_ok;
            t += 1.0;
        }
        assert_eq!(lvp, Some(false), "after {t} s");
        let v: Vec<f64> = (0..4).map(|i| pack.cell_voltage_v(i, -100.0)).collect();
        let lowest = v.iter().copied().enumerate().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0;
        assert_eq!(lowest, 2, "{v:?}");
        assert_eq!(c.lipro_uv_at_s, Some(t));
        assert_eq!(c.gate_a(-100.0), -100.0, "no PowerPro: nothing gated");
    }
}
