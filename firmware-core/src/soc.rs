//! State of charge by coulomb counting (Ah method), in integer µAh.

use crate::counter::Accumulator;

/// Resting open-circuit voltage of a LiFePO4 cell, mV, at SOC 0, 5, …, 100 %
/// (typical LFP curve: steep below 10 %, flat 3.26–3.34 V plateau, knee above 95 %).
/// Used only to guess the SOC at power-up; the plateau makes that guess coarse.
const LFP_OCV_MV: [u16; 21] = [
    2500, 3000, 3200, 3220, 3250, 3260, 3270, 3280, 3290, 3295, 3300, 3305, 3310, 3315, 3320, 3325, 3330, 3335, 3340,
    3400, 3600,
];

/// SOC in 0.01 % from a resting cell voltage (interpolated in [`LFP_OCV_MV`]).
pub fn soc_from_cell_ocv(cell_mv: i32) -> u16 {
    let first = i32::from(LFP_OCV_MV[0]);
    if cell_mv <= first {
        return 0;
    }
    let mut lo = first;
    for (i, &hi) in LFP_OCV_MV.iter().enumerate().skip(1) {
        let hi = i32::from(hi);
        if cell_mv <= hi {
            // Segment i−1..i spans 5 % = 500 centi-percent.
            let base = (i as i32 - 1) * 500;
            let frac = (cell_mv - lo) * 500 / (hi - lo).max(1);
            return (base + frac).clamp(0, 10_000) as u16;
        }
        lo = hi;
    }
    10_000
}

/// Ah-counting SOC: remaining charge between 0 and the rated capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AhSoc {
    remaining: Accumulator,
    capacity_uah: i64,
}

impl AhSoc {
    /// Starts at `soc_centipct` (0.01 %) of `capacity_dah` (0.1 Ah).
    pub fn new(capacity_dah: u16, soc_centipct: u16) -> Self {
        let capacity_uah = i64::from(capacity_dah) * 100_000;
        let mut s = AhSoc { remaining: Accumulator::new(), capacity_uah };
        s.set_soc(soc_centipct);
        s
    }

    /// Counts `current_ua` (+ = charge) over `dt_us`.
    pub fn count(&mut self, current_ua: i32, dt_us: u32) {
        self.remaining.add(current_ua, dt_us);
        self.remaining.clamp(0, self.capacity_uah);
    }

    pub fn set_soc(&mut self, soc_centipct: u16) {
        let soc = i64::from(soc_centipct.min(10_000));
        self.remaining = Accumulator::from_micro_hours(self.capacity_uah * soc / 10_000);
    }

    /// Changes the rated capacity, keeping the SOC.
    pub fn set_capacity(&mut self, capacity_dah: u16) {
        let soc = self.soc_centipct();
        self.capacity_uah = i64::from(capacity_dah) * 100_000;
        self.set_soc(soc);
    }

    pub fn remaining_uah(&self) -> i64 {
        self.remaining.micro_hours()
    }

    /// SOC in 0.01 %, rounded to nearest.
    pub fn soc_centipct(&self) -> u16 {
        if self.capacity_uah <= 0 {
            return 0;
        }
        let n = self.remaining.micro_hours() * 10_000;
        ((n + self.capacity_uah / 2) / self.capacity_uah).clamp(0, 10_000) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ocv_guess_follows_the_table() {
        assert_eq!(soc_from_cell_ocv(2400), 0);
        assert_eq!(soc_from_cell_ocv(3600), 10_000);
        assert_eq!(soc_from_cell_ocv(3000), 500);
        assert_eq!(soc_from_cell_ocv(3500), 9_750);
        assert_eq!(soc_from_cell_ocv(4000), 10_000);
    }

    #[test]
    fn half_capacity_discharge_halves_soc() {
        let mut s = AhSoc::new(1_000, 10_000); // 100 Ah, full
        for _ in 0..3_600 {
            s.count(-50_000_000, 1_000_000); // −50 A for 1 s
        }
        assert_eq!(s.remaining_uah(), 50_000_000);
        assert_eq!(s.soc_centipct(), 5_000);
    }

    #[test]
    fn soc_is_bounded_and_capacity_change_keeps_it() {
        let mut s = AhSoc::new(1_000, 9_990);
        s.count(100_000_000, 3_600_000_000);
        assert_eq!(s.soc_centipct(), 10_000);
        s.set_soc(2_500);
        s.set_capacity(2_000);
        assert_eq!(s.soc_centipct(), 2_500);
        assert_eq!(s.remaining_uah(), 50_000_000);
        s.count(i32::MIN, u32::MAX);
        assert_eq!(s.soc_centipct(), 0);
    }
}
