//! Which registers to read in which request, and how to show their values.
//!
//! Everything here derives from [`firmware_core::map`]; no address is written
//! down twice.

use firmware_core::map::{Access, RegDef, RegId, faults, status};

/// Most registers one function-03 request may ask for (Modbus Application
/// Protocol v1.1b3, 6.3).
pub const MAX_REGS_PER_REQUEST: u16 = 125;

/// One read-holding-registers request and the selected registers it carries.
#[derive(Clone, Debug)]
pub struct Block {
    /// First PDU address read.
    pub start: u16,
    /// Number of registers read.
    pub count: u16,
    /// The selected registers inside, by address. A block may also cover
    /// readable registers nobody asked for when that saves a request.
    pub regs: Vec<&'static RegDef>,
}

impl Block {
    /// The words of `reg` within this block's reply (`None` if `reg` is not
    /// inside the block or the reply is short).
    pub fn words_of<'w>(&self, reg: &RegDef, reply: &'w [u16]) -> Option<&'w [u16]> {
        let off = usize::from(reg.addr.checked_sub(self.start)?);
        reply.get(off..off + usize::from(reg.ty.words()))
    }
}

/// Registers a poll reads by default: every register that is not write-only.
pub fn readable(map: &'static [RegDef]) -> Vec<&'static RegDef> {
    map.iter().filter(|r| r.access != Access::W).collect()
}

/// A live value: one the board updates as it runs (measurements, SOC,
/// statistics, the fault log), not a setting, a calibration or its identity.
/// Only these can disagree between two requests of one sample.
pub fn is_live(reg: &RegDef) -> bool {
    reg.access == Access::R
        && !reg.persisted
        && !matches!(reg.id, RegId::DeviceType | RegId::VariantV | RegId::FirmwareVersion | RegId::SerialNumber)
}

/// Groups `selected` registers into as few read requests as possible.
///
/// A request reads one run of contiguous addresses of `map` that are all
/// occupied by readable (not write-only) registers, never crossing a gap in the
/// map or a write-only register, never splitting a 32-bit register, and never
/// asking for more than `max` registers. Within a run the greedy left-to-right
/// packing is optimal. Write-only registers in `selected` are skipped;
/// duplicates are read once.
pub fn plan(map: &'static [RegDef], selected: &[&'static RegDef], max: u16) -> Vec<Block> {
    let run = runs(map);
    let run_of = |r: &RegDef| -> Option<usize> {
        let i = map.iter().position(|m| m.addr == r.addr && m.name == r.name)?;
        run[i]
    };
    let mut sel: Vec<&'static RegDef> = selected.iter().copied().filter(|r| r.access != Access::W).collect();
    sel.sort_by_key(|r| r.addr);
    sel.dedup_by_key(|r| r.addr);

    let mut blocks: Vec<(Option<usize>, Block)> = Vec::new();
    for reg in sel {
        let reg_run = run_of(reg);
        let end = u32::from(reg.addr) + u32::from(reg.ty.words());
        if let Some((last_run, block)) = blocks.last_mut() {
            if reg_run.is_some() && *last_run == reg_run && end - u32::from(block.start) <= u32::from(max) {
                // Same run, so every address in between is readable.
                block.count = (end - u32::from(block.start)) as u16;
                block.regs.push(reg);
                continue;
            }
        }
        blocks.push((reg_run, Block { start: reg.addr, count: reg.ty.words(), regs: vec![reg] }));
    }
    blocks.into_iter().map(|(_, b)| b).collect()
}

/// For each row of `map`, the id of the run of contiguous readable addresses
/// it belongs to (`None` for write-only rows).
fn runs(map: &[RegDef]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..map.len()).collect();
    order.sort_by_key(|&i| map[i].addr);
    let mut out = vec![None; map.len()];
    let mut id = 0usize;
    let mut prev_end: Option<u32> = None;
    for i in order {
        let r = &map[i];
        if r.access == Access::W {
            prev_end = None;
            continue;
        }
        if prev_end != Some(u32::from(r.addr)) {
            id += 1;
        }
        out[i] = Some(id);
        prev_end = Some(u32::from(r.addr) + u32::from(r.ty.words()));
    }
    out
}

/// Digits after the decimal point needed to show `raw × scale` exactly
/// (0.001 → 3, 0.1 → 1, 0.5 → 1, 1 → 0, 1e-12 → 12; at most 15).
pub fn decimals(scale: f64) -> usize {
    (0..=15)
        .find(|&d| {
            let x = scale * 10f64.powi(d as i32);
            let m = x.round();
            m != 0.0 && (x - m).abs() <= 1e-9 * x.abs()
        })
        .unwrap_or(15)
}

/// The physical value `raw × reg.scale`, to the scale's decimals, exactly
/// when the scale is a decimal fraction (no binary floating-point rounding).
pub fn format_value(reg: &RegDef, raw: i64) -> String {
    let d = decimals(reg.scale);
    let x = reg.scale * 10f64.powi(d as i32);
    let m = x.round();
    if m != 0.0 && (x - m).abs() <= 1e-9 * x.abs() && m.abs() < 1e15 {
        fixed(i128::from(raw) * m as i128, d)
    } else {
        format!("{:.*}", d, reg.to_physical(raw))
    }
}

/// `v / 10^d` written with `d` decimals.
fn fixed(v: i128, d: usize) -> String {
    if d == 0 {
        return v.to_string();
    }
    let p = 10u128.pow(d as u32);
    let a = v.unsigned_abs();
    let sign = if v < 0 { "-" } else { "" };
    format!("{sign}{}.{:0d$}", a / p, a % p)
}

/// The raw-unit suffixes of the map's names and the physical unit's suffix
/// that replaces each: the map names a register by its raw unit
/// (`battery_voltage_mv`), its `scale` and `unit` give the physical value
/// (13.205 V), and a name shown with a physical value must say the
/// physical unit (issue 21: `battery_voltage_mv 13.205 V`).
const RAW_SUFFIXES: [(&str, &str); 13] = [
    ("_pa_per_code", "_a_per_code"),
    ("_pv_per_code", "_v_per_code"),
    ("_centipct", "_pct"),
    ("_centi", ""),
    ("_uohm", "_ohm"),
    ("_mah", "_ah"),
    ("_dah", "_ah"),
    ("_mv", "_v"),
    ("_ma", "_a"),
    ("_da", "_a"),
    ("_dc", "_c"),
    ("_dw", "_w"),
    ("_ms", "_s"),
];

/// The register's name for its physical value: the map's name with its
/// raw-unit suffix replaced by the physical unit's (`battery_voltage_mv` →
/// `battery_voltage_v`, `lvp_delay_ms` → `lvp_delay_s`, `remaining_mah` →
/// `remaining_ah`); a register of scale 1 keeps its name.
pub fn physical_name(reg: &RegDef) -> String {
    if reg.scale == 1.0 {
        return reg.name.to_string();
    }
    for (raw, physical) in RAW_SUFFIXES {
        if let Some(stem) = reg.name.strip_suffix(raw) {
            return format!("{stem}{physical}");
        }
    }
    reg.name.to_string()
}

/// A register's CSV column: `physical_name[unit]`, or the name alone when it
/// has no unit (values are physical, so the unit is part of the name).
pub fn column_name(reg: &RegDef) -> String {
    let name = physical_name(reg);
    if reg.unit.is_empty() { name } else { format!("{name}[{}]", reg.unit) }
}

/// The column `hil-rig record` wrote for `reg` before issue 21 (the map's
/// raw name with the physical unit: `remaining_mah[Ah]`): read back from
/// older recordings.
pub fn legacy_column_name(reg: &RegDef) -> String {
    if reg.unit.is_empty() { reg.name.to_string() } else { format!("{}[{}]", reg.name, reg.unit) }
}

/// The names of an enumeration register's values, from the map's
/// description (`"Aux output: 0 off, 1 on, 2 heating, …"`): `soc_method`,
/// `aux_mode`, `last_cal_kind`, `sc_auto_retry`. Empty for other registers.
pub fn enum_names(reg: &RegDef) -> Vec<(i64, &'static str)> {
    if !reg.unit.is_empty() || reg.scale != 1.0 {
        return Vec::new();
    }
    let Some((_, list)) = reg.description.split_once(": ") else { return Vec::new() };
    let mut out = Vec::new();
    for item in list.split(", ") {
        let Some((n, name)) = item.split_once(' ') else { return Vec::new() };
        match n.parse::<i64>() {
            Ok(v) if v == out.len() as i64 => out.push((v, name)),
            _ => return Vec::new(),
        }
    }
    // An enumeration names every value the register can take.
    if out.len() < 2 || out.len() as i64 != reg.max + 1 { Vec::new() } else { out }
}

/// A special value of the register and its meaning, from the map's
/// description (`"… (4294967295: never)"`): `time_since_full_s`.
pub fn special_value(reg: &RegDef) -> Option<(i64, &'static str)> {
    let (_, rest) = reg.description.rsplit_once('(')?;
    let (n, meaning) = rest.strip_suffix(')')?.split_once(": ")?;
    Some((n.parse().ok()?, meaning))
}

/// What a raw value means beyond its number: the enumeration's name, the
/// special value's meaning, or the set bits' names (`None`: just a number).
pub fn meaning(reg: &RegDef, raw: i64) -> Option<String> {
    if let Some(names) = bit_table(reg) {
        return Some(bit_names(raw as u16, names).join(" "));
    }
    if let Some((_, name)) = enum_names(reg).into_iter().find(|(v, _)| *v == raw) {
        return Some(name.to_string());
    }
    special_value(reg).filter(|(v, _)| *v == raw).map(|(_, m)| m.to_string())
}

/// The sections of the register map by first address (`poll --group`).
// The map marks them in comments only; see the report to the lead.
pub const SECTIONS: [(&str, u16); 8] = [
    ("identification", 0x0000),
    ("measurements", 0x0100),
    ("soc", 0x0110),
    ("diagnostics", 0x0120),
    ("fault-log", 0x0180),
    ("settings", 0x0200),
    ("calibration", 0x0300),
    ("commands", 0x0400),
];

/// A bench engineer's view (`poll`'s default group): current, voltage,
/// temperature, SOC, the switch and outputs (status bits), faults.
pub const BENCH: [RegId; 6] =
    [RegId::Current, RegId::BatteryVoltage, RegId::Temperature, RegId::Soc, RegId::Status, RegId::Faults];

/// The readable registers of group `name` (`bench` or a [`SECTIONS`] name),
/// in map order for a section; `None` for an unknown name.
pub fn group(map: &'static [RegDef], name: &str) -> Option<Vec<&'static RegDef>> {
    if name == "bench" {
        return Some(BENCH.iter().filter_map(|id| map.iter().find(|r| r.id == *id)).collect());
    }
    let k = SECTIONS.iter().position(|(n, _)| *n == name)?;
    let start = SECTIONS[k].1;
    let end = SECTIONS.get(k + 1).map_or(u32::MAX, |(_, a)| u32::from(*a));
    Some(readable(map).into_iter().filter(|r| r.addr >= start && u32::from(r.addr) < end).collect())
}

/// `bench, identification, measurements, …`.
pub fn group_names() -> String {
    std::iter::once("bench").chain(SECTIONS.iter().map(|(n, _)| *n)).collect::<Vec<_>>().join(", ")
}

/// The bit names of a bit-field register (`status`, `faults`), if it is one.
pub fn bit_table(reg: &RegDef) -> Option<&'static [(u16, &'static str)]> {
    match reg.id {
        RegId::Status => Some(status::NAMES),
        RegId::Faults => Some(faults::NAMES),
        _ => None,
    }
}

/// Names of the bits set in `value`; bits without a name show as `bitN`.
pub fn bit_names(value: u16, names: &[(u16, &'static str)]) -> Vec<String> {
    (0..16)
        .map(|b| 1u16 << b)
        .filter(|bit| value & bit != 0)
        .map(|bit| match names.iter().find(|(m, _)| *m == bit) {
            Some((_, n)) => (*n).to_string(),
            None => format!("bit{}", bit.trailing_zeros()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_core::map::{REGISTERS, RegType, by_name};

    fn reg(name: &str) -> &'static RegDef {
        by_name(name).unwrap_or_else(|| panic!("{name} is not in the map"))
    }

    fn check_blocks(map: &'static [RegDef], blocks: &[Block], max: u16) {
        for b in blocks {
            assert!(b.count >= 1 && b.count <= max, "{b:?}");
            let end = u32::from(b.start) + u32::from(b.count);
            // Every address of the block belongs to a readable register.
            for a in u32::from(b.start)..end {
                let r = map
                    .iter()
                    .find(|r| r.covers(a as u16))
                    .unwrap_or_else(|| panic!("block {b:?} reads the gap at {a:#06x}"));
                assert_ne!(r.access, Access::W, "block reads write-only {}", r.name);
                // ... and no register is cut by the block's ends.
                assert!(r.addr >= b.start, "{} cut at the start", r.name);
                assert!(u32::from(r.addr) + u32::from(r.ty.words()) <= end, "{} cut", r.name);
            }
        }
    }

    #[test]
    fn all_readable_registers_group_into_one_block_per_section() {
        let all = readable(REGISTERS);
        let blocks = plan(REGISTERS, &all, MAX_REGS_PER_REQUEST);
        check_blocks(REGISTERS, &blocks, MAX_REGS_PER_REQUEST);
        let starts: Vec<u16> = blocks.iter().map(|b| b.start).collect();
        // One request per contiguous section of the map.
        assert_eq!(starts, [0x0000, 0x0100, 0x0110, 0x0120, 0x0180, 0x0200, 0x0210, 0x0230, 0x0300]);
        // Every readable register is read exactly once.
        let n: usize = blocks.iter().map(|b| b.regs.len()).sum();
        assert_eq!(n, all.len());
        assert!(blocks.iter().flat_map(|b| &b.regs).all(|r| r.access != Access::W));
        assert_eq!(blocks[1].count, 0x0F, "measurements 0x0100..=0x010E");
    }

    #[test]
    fn write_only_registers_are_skipped_even_when_asked_for() {
        let sel = [reg("set_soc_centipct"), reg("clear_faults"), reg("capacity_dah")];
        let blocks = plan(REGISTERS, &sel, MAX_REGS_PER_REQUEST);
        assert_eq!(blocks.len(), 1);
        assert_eq!((blocks[0].start, blocks[0].count), (0x0200, 1));
    }

    #[test]
    fn a_subset_bridges_unselected_readable_registers_but_not_gaps() {
        // 0x0100 and 0x0103 share a run: one request of 4 registers.
        // 0x0003 (serial, u32) is in another run: its own request.
        let sel = [reg("soc_centipct"), reg("battery_voltage_mv"), reg("serial_number")];
        let blocks = plan(REGISTERS, &sel, MAX_REGS_PER_REQUEST);
        check_blocks(REGISTERS, &blocks, MAX_REGS_PER_REQUEST);
        assert_eq!(blocks.len(), 2);
        assert_eq!((blocks[0].start, blocks[0].count), (0x0003, 2));
        assert_eq!((blocks[1].start, blocks[1].count), (0x0100, 4));
        let reply = [13284, 0xFFFF, 0xFB2E, 5000];
        let w = blocks[1].words_of(reg("soc_centipct"), &reply).unwrap();
        assert_eq!(w, [5000]);
        let cur = blocks[1].words_of(reg("current_ma"), &reply).unwrap();
        assert_eq!(RegType::I32.decode(cur), -1234);
    }

    #[test]
    fn duplicates_are_read_once() {
        let v = reg("battery_voltage_mv");
        let blocks = plan(REGISTERS, &[v, v], MAX_REGS_PER_REQUEST);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].regs.len(), 1);
    }

    /// A long run of 199 u16 registers with a u32 straddling the 125 boundary.
    fn long_map() -> &'static [RegDef] {
        let proto = *reg("battery_voltage_mv");
        let mut v: Vec<RegDef> = Vec::new();
        let mut addr = 0x1000u16;
        for i in 0..200 {
            let ty = if i == 124 { RegType::U32 } else { RegType::U16 };
            let name: &'static str = Box::leak(format!("r{i}").into_boxed_str());
            v.push(RegDef { addr, name, ty, ..proto });
            addr += ty.words();
        }
        // A gap, then one more.
        v.push(RegDef { addr: addr + 1, name: "after_gap", ..proto });
        Box::leak(v.into_boxed_slice())
    }

    #[test]
    fn long_runs_split_at_125_without_cutting_32_bit_registers() {
        let map = long_map();
        let all = readable(map);
        let blocks = plan(map, &all, MAX_REGS_PER_REQUEST);
        check_blocks(map, &blocks, MAX_REGS_PER_REQUEST);
        // r0..r123 are 124 words; r124 (u32) would make 126, so it starts block 2.
        assert_eq!((blocks[0].start, blocks[0].count), (0x1000, 124));
        assert_eq!(blocks[1].start, 0x1000 + 124);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[2].regs[0].name, "after_gap");
        let n: usize = blocks.iter().map(|b| b.regs.len()).sum();
        assert_eq!(n, all.len());
    }

    #[test]
    fn a_small_max_is_honoured() {
        let all = readable(REGISTERS);
        for max in [2, 3, 5, 8] {
            let blocks = plan(REGISTERS, &all, max);
            check_blocks(REGISTERS, &blocks, max);
            let n: usize = blocks.iter().map(|b| b.regs.len()).sum();
            assert_eq!(n, all.len());
        }
    }

    #[test]
    fn decimals_follow_the_scale() {
        assert_eq!(decimals(1.0), 0);
        assert_eq!(decimals(0.1), 1);
        assert_eq!(decimals(0.01), 2);
        assert_eq!(decimals(0.001), 3);
        assert_eq!(decimals(0.5), 1);
        assert_eq!(decimals(1e-12), 12);
        assert_eq!(decimals(10.0), 0);
    }

    #[test]
    fn u16_millivolts_show_as_volts() {
        let r = reg("battery_voltage_mv");
        assert_eq!(r.ty, RegType::U16);
        assert_eq!(format_value(r, 13284), "13.284");
        assert_eq!(format_value(r, 5), "0.005");
        assert_eq!(format_value(r, 65535), "65.535");
        assert_eq!(format_value(r, 0), "0.000");
    }

    #[test]
    fn negative_i32_current_keeps_its_sign() {
        let r = reg("current_ma");
        assert_eq!(r.ty, RegType::I32);
        let raw = r.ty.decode(&[0xFFFF, 0xFB2E]);
        assert_eq!(format_value(r, raw), "-1.234");
        assert_eq!(format_value(r, -5), "-0.005");
        assert_eq!(format_value(r, -250_000), "-250.000");
        assert_eq!(format_value(r, i64::from(i32::MIN)), "-2147483.648");
    }

    #[test]
    fn other_scales() {
        assert_eq!(format_value(reg("temperature_dc"), -105), "-10.5");
        assert_eq!(format_value(reg("soc_centipct"), 10000), "100.00");
        assert_eq!(format_value(reg("uptime_s"), 4_000_000_000), "4000000000");
        assert_eq!(format_value(reg("current_gain_pa_per_code"), 59_604_645), "0.000059604645");
    }

    #[test]
    fn bit_names_of_status_and_faults() {
        let st = bit_table(reg("status")).unwrap();
        let v = status::SWITCH_ON | status::OVP_OUTPUT | status::SOC_SYNCED;
        assert_eq!(bit_names(v, st), ["switch_on", "ovp_output", "soc_synced"]);
        let f = bit_table(reg("faults")).unwrap();
        assert_eq!(bit_names(faults::LVP_INPUT | 0x8000, f), ["lvp_input", "bit15"]);
        assert!(bit_names(0, f).is_empty());
        assert!(bit_table(reg("battery_voltage_mv")).is_none());
    }

    #[test]
    fn issue_21_physical_names_say_the_physical_unit() {
        for (raw, physical) in [
            ("battery_voltage_mv", "battery_voltage_v"),
            ("lvp_delay_ms", "lvp_delay_s"),
            ("internal_resistance_uohm", "internal_resistance_ohm"),
            ("remaining_mah", "remaining_ah"),
            ("temperature_dc", "temperature_c"),
            ("soc_centipct", "soc_pct"),
            ("cycles_centi", "cycles"),
            ("current_gain_pa_per_code", "current_gain_a_per_code"),
            ("uptime_s", "uptime_s"),
        ] {
            assert_eq!(physical_name(reg(raw)), physical);
        }
        assert_eq!(column_name(reg("remaining_mah")), "remaining_ah[Ah]");
        // Every scaled register is renamed, to a suffix of its unit; names stay unique.
        let unit_suffix = |u: &str| match u {
            "V" => "_v",
            "A" => "_a",
            "Ah" => "_ah",
            "°C" => "_c",
            "%" => "_pct",
            "W" => "_w",
            "s" => "_s",
            "Ω" => "_ohm",
            "A/code" => "_a_per_code",
            "V/code" => "_v_per_code",
            _ => "",
        };
        let mut seen = std::collections::HashSet::new();
        for r in REGISTERS {
            let p = physical_name(r);
            if r.scale != 1.0 {
                assert_ne!(p, r.name, "{} keeps its raw name", r.name);
                assert!(p.ends_with(unit_suffix(r.unit)), "{} → {p} for {}", r.name, r.unit);
            }
            assert!(seen.insert(p.clone()), "{p} twice");
        }
    }

    #[test]
    fn issue_21_enumerations_and_special_values_are_named() {
        let names = |n: &str| enum_names(reg(n)).into_iter().map(|(_, s)| s).collect::<Vec<_>>();
        assert_eq!(names("soc_method"), ["Ah", "Wh", "temperature-compensated"]);
        assert_eq!(names("last_cal_kind"), ["none", "current zero", "current gain", "voltage"]);
        assert_eq!(names("aux_mode").len(), 6);
        assert_eq!(names("aux_mode")[3], "on while SOC ≥ aux_soc");
        let enums: Vec<&str> = REGISTERS.iter().filter(|r| !enum_names(r).is_empty()).map(|r| r.name).collect();
        assert_eq!(enums, ["last_cal_kind", "soc_method", "sc_auto_retry", "aux_mode"]);
        assert_eq!(meaning(reg("time_since_full_s"), 4_294_967_295).as_deref(), Some("never"));
        assert_eq!(meaning(reg("time_since_full_s"), 12), None);
        assert_eq!(meaning(reg("aux_mode"), 2).as_deref(), Some("heating"));
        assert_eq!(meaning(reg("status"), 1).as_deref(), Some("switch_on"));
        assert_eq!(meaning(reg("battery_voltage_mv"), 13_205), None);
    }

    #[test]
    fn issue_21_groups() {
        let bench: Vec<&str> = group(REGISTERS, "bench").unwrap().iter().map(|r| r.name).collect();
        assert_eq!(bench, ["current_ma", "battery_voltage_mv", "temperature_dc", "soc_centipct", "status", "faults"]);
        let soc = group(REGISTERS, "soc").unwrap();
        assert!(soc.iter().all(|r| (0x0110..0x0120).contains(&r.addr)) && !soc.is_empty());
        assert!(group(REGISTERS, "commands").unwrap().is_empty(), "write-only");
        assert!(group(REGISTERS, "nope").is_none());
        let n: usize = SECTIONS.iter().map(|(s, _)| group(REGISTERS, s).unwrap().len()).sum();
        assert_eq!(n, readable(REGISTERS).len(), "the sections cover the map");
    }
}
