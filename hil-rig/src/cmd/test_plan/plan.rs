//! The test plan file of `hil-rig test`: TOML, loaded and checked in full
//! before anything is sent to the board.
//!
//! Register names resolve through [`firmware_core::map`] (no second copy of
//! addresses); values are physical (`value = 11.5` for `lvp_mv`, in V) or
//! raw, and are converted to the register's raw integer here. Every problem
//! is reported with the file, line and column it comes from (the TOML
//! spans), all of them at once.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use firmware_core::board::{CAL_MIN_CURRENT_MA, REST_CURRENT_UA};
use firmware_core::map::{Access, REGISTERS, RegDef, RegId, by_id, by_name};
use models::variant::{CURRENT_RANGE_A, Variant};
use serde::Deserialize;
use smartpro_sim::scenario::Scenario;
use smartpro_sim::tomlfile::line_col;
use toml::Spanned;

/// Default time between two polls of the board while a step waits (and
/// between the samples of a `read` with `samples > 1`).
pub const DEFAULT_POLL_INTERVAL_MS: u64 = 1_000;
/// Accepted `poll_interval_ms`.
pub const POLL_INTERVAL_RANGE_MS: (u64, u64) = (10, 60_000);
/// Most samples one `read` step may average.
pub const MAX_SAMPLES: u32 = 1_000;
/// Default rest threshold of `wait_rest` (A): the firmware's own
/// (`firmware_core::board::REST_CURRENT_UA`, ±0.5 A counts as rest).
pub const DEFAULT_REST_CURRENT_A: f64 = REST_CURRENT_UA as f64 / 1e6;
/// Longest wait a plan may ask for (s of board time): a week.
pub const MAX_WAIT_S: f64 = 7.0 * 86_400.0;

/// A plan file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read test plan {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Every problem found, each with its place.
    #[error("{}", join_lines(.0))]
    Invalid(Vec<Located>),
}

fn join_lines(errors: &[Located]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// One problem at one place of the plan file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct Located {
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

/// A loaded, checked plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub path: PathBuf,
    pub name: String,
    /// Stop at the first failing step (the rest are reported as not run).
    pub stop_on_fail: bool,
    /// Time between two polls while a step waits.
    pub poll_interval: Duration,
    /// The twin's scenario (`[twin] scenario`, already loaded), if given.
    pub twin_scenario: Option<(PathBuf, Scenario)>,
    /// The twin's cells (`[twin] ecm`), if given.
    pub twin_ecm: Option<(PathBuf, models::ecm::EcmParams)>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether a step compares with the twin (then the twin runs from the start).
    pub fn needs_twin(&self) -> bool {
        self.steps.iter().any(|s| matches!(s.action, Action::ExpectTwin { .. }))
    }
}

/// One step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    /// Line of its `name` in the plan file.
    pub line: usize,
    pub action: Action,
}

/// A register of the map, compared by address (`RegDef` has no `PartialEq`).
#[derive(Clone, Copy, Debug)]
pub struct Reg(pub &'static RegDef);

impl PartialEq for Reg {
    fn eq(&self, other: &Self) -> bool {
        self.0.addr == other.0.addr && self.0.name == other.0.name
    }
}

impl std::ops::Deref for Reg {
    type Target = RegDef;
    fn deref(&self) -> &RegDef {
        self.0
    }
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Wait this long (board time).
    Wait { duration_s: f64 },
    /// Wait until |current| < `current_below_a` for `for_s`, at most `timeout_s` (board time).
    WaitRest { current_below_a: f64, for_s: f64, timeout_s: f64 },
    /// Read registers (the mean of `samples` reads), and check them if `expect` is given.
    Read { registers: Vec<Reg>, samples: u32, expect: Option<Expect> },
    /// Write `raw`, read it back (or expect the board to refuse it with `expect_exception`
    /// and leave the register unchanged); with `restore`, write the original value back.
    Write { register: Reg, raw: i64, restore: bool, expect_exception: Option<u8> },
    /// The board's register against the twin's value.
    ExpectTwin { register: Reg, tolerance: Option<Tolerance> },
    /// Unlock, run a calibration command, check `last_cal_kind` and `last_cal_time_s`.
    Calibrate(Calibration),
    /// Write a command register (its key, or `raw` for `set_soc_centipct`).
    Command { register: Reg, raw: i64, expect_exception: Option<u8> },
}

impl Action {
    /// The step kind as written in the plan.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Wait { .. } => "wait",
            Action::WaitRest { .. } => "wait_rest",
            Action::Read { .. } => "read",
            Action::Write { .. } => "write",
            Action::ExpectTwin { .. } => "expect_twin",
            Action::Calibrate(_) => "calibrate",
            Action::Command { .. } => "command",
        }
    }
}

/// What a `read` expects of each register it reads (physical units).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expect {
    /// Within `[min, max]` (either may be open).
    Range { min: Option<f64>, max: Option<f64> },
    /// `value ± tolerance`.
    Value { value: f64, tolerance: Tolerance },
    /// Within the register's documented range (`RegDef` min..max, docs/register-map.md).
    Documented,
}

/// A tolerance: absolute in the register's unit, or in % of its full scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    Abs(f64),
    PctFs(f64),
}

impl Tolerance {
    /// In the register's unit, for a board of `variant`.
    pub fn abs(self, reg: &RegDef, variant: Variant) -> f64 {
        match self {
            Tolerance::Abs(a) => a,
            Tolerance::PctFs(p) => p / 100.0 * full_scale(reg, variant).unwrap_or(0.0),
        }
    }
}

/// The full scale of a measurement register, for tolerances in % FS: the
/// current measuring range ±250 A (datasheet, current measurement accuracy)
/// for the currents, the variant's battery voltage measuring range
/// (15/30/60 V, datasheet, voltage measurement accuracy) for the voltages.
/// Other registers have none.
pub fn full_scale(reg: &RegDef, variant: Variant) -> Option<f64> {
    match reg.id {
        RegId::Current | RegId::MaxChargeCurrent | RegId::MaxDischargeCurrent => Some(CURRENT_RANGE_A),
        RegId::BatteryVoltage | RegId::MinVoltage | RegId::MaxVoltage => Some(variant.voltage_range_v()),
        _ => None,
    }
}

/// A calibration command (docs/firmware.md, "Measurement and calibration").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calibration {
    /// `cal_zero_current = 1`, no current flowing.
    ZeroCurrent,
    /// `cal_current_ma = reference`, a known current flowing (raw mA).
    Current { reference_ma: i64 },
    /// `cal_voltage_mv = reference`, a known battery voltage (raw mV).
    Voltage { reference_mv: i64 },
}

impl Calibration {
    /// The command register.
    pub fn register(self) -> &'static RegDef {
        let id = match self {
            Calibration::ZeroCurrent => RegId::CalZeroCurrent,
            Calibration::Current { .. } => RegId::CalCurrent,
            Calibration::Voltage { .. } => RegId::CalVoltage,
        };
        by_id(id).expect("the map has the calibration commands")
    }

    /// The raw value written to [`Self::register`].
    pub fn raw(self) -> i64 {
        match self {
            Calibration::ZeroCurrent => 1,
            Calibration::Current { reference_ma } => reference_ma,
            Calibration::Voltage { reference_mv } => reference_mv,
        }
    }

    /// `last_cal_kind` afterwards (map: 1 current zero, 2 current gain, 3 voltage).
    pub fn kind_code(self) -> i64 {
        match self {
            Calibration::ZeroCurrent => 1,
            Calibration::Current { .. } => 2,
            Calibration::Voltage { .. } => 3,
        }
    }

    /// The setting the calibration changes.
    pub fn setting(self) -> &'static RegDef {
        let id = match self {
            Calibration::ZeroCurrent => RegId::CurrentOffset,
            Calibration::Current { .. } => RegId::CurrentGain,
            Calibration::Voltage { .. } => RegId::VoltageGain,
        };
        by_id(id).expect("the map has the calibration settings")
    }

    pub fn name(self) -> &'static str {
        match self {
            Calibration::ZeroCurrent => "zero_current",
            Calibration::Current { .. } => "current",
            Calibration::Voltage { .. } => "voltage",
        }
    }
}

/// The step kinds and the keys each takes besides `name` and `kind`.
const KINDS: &[(&str, &[&str])] = &[
    ("wait", &["duration_s"]),
    ("wait_rest", &["current_below_a", "for_s", "timeout_s"]),
    (
        "read",
        &[
            "register",
            "registers",
            "samples",
            "expect",
            "expect_value",
            "tolerance",
            "tolerance_pct_fs",
            "expect_in_range",
        ],
    ),
    ("write", &["register", "value", "raw", "restore", "expect_exception"]),
    ("expect_twin", &["register", "tolerance", "tolerance_pct_fs"]),
    ("calibrate", &["calibration", "reference_a", "reference_v"]),
    ("command", &["command", "value", "expect_exception"]),
];

/// Registers `expect_twin` has a default tolerance for (see the lock-step twin).
pub const TWIN_DEFAULT_TOLERANCE: &[RegId] = &[
    RegId::BatteryVoltage,
    RegId::Temperature,
    RegId::Soc,
    RegId::SocAh,
    RegId::SocWh,
    RegId::SocTemperatureCompensated,
    RegId::RemainingCharge,
    RegId::InternalResistance,
    RegId::ChargedTotal,
    RegId::DischargedTotal,
    RegId::ChargedEnergyTotal,
    RegId::DischargedEnergyTotal,
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    name: Spanned<String>,
    #[serde(default)]
    stop_on_fail: bool,
    poll_interval_ms: Option<Spanned<i64>>,
    #[serde(default)]
    twin: RawTwin,
    #[serde(default)]
    step: Vec<RawStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTwin {
    scenario: Option<Spanned<String>>,
    ecm: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    min: Option<f64>,
    max: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    kind: Spanned<String>,
    register: Option<Spanned<String>>,
    registers: Option<Spanned<Vec<Spanned<String>>>>,
    samples: Option<Spanned<i64>>,
    expect: Option<Spanned<RawRange>>,
    expect_value: Option<Spanned<f64>>,
    tolerance: Option<Spanned<f64>>,
    tolerance_pct_fs: Option<Spanned<f64>>,
    expect_in_range: Option<Spanned<bool>>,
    value: Option<Spanned<f64>>,
    raw: Option<Spanned<i64>>,
    restore: Option<Spanned<bool>>,
    expect_exception: Option<Spanned<i64>>,
    duration_s: Option<Spanned<f64>>,
    current_below_a: Option<Spanned<f64>>,
    for_s: Option<Spanned<f64>>,
    timeout_s: Option<Spanned<f64>>,
    calibration: Option<Spanned<String>>,
    reference_a: Option<Spanned<f64>>,
    reference_v: Option<Spanned<f64>>,
    command: Option<Spanned<String>>,
}

impl RawStep {
    /// The optional keys present, with their spans.
    fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        fn s<T>(v: &Option<Spanned<T>>) -> Option<Range<usize>> {
            v.as_ref().map(Spanned::span)
        }
        let all = [
            ("register", s(&self.register)),
            ("registers", s(&self.registers)),
            ("samples", s(&self.samples)),
            ("expect", s(&self.expect)),
            ("expect_value", s(&self.expect_value)),
            ("tolerance", s(&self.tolerance)),
            ("tolerance_pct_fs", s(&self.tolerance_pct_fs)),
            ("expect_in_range", s(&self.expect_in_range)),
            ("value", s(&self.value)),
            ("raw", s(&self.raw)),
            ("restore", s(&self.restore)),
            ("expect_exception", s(&self.expect_exception)),
            ("duration_s", s(&self.duration_s)),
            ("current_below_a", s(&self.current_below_a)),
            ("for_s", s(&self.for_s)),
            ("timeout_s", s(&self.timeout_s)),
            ("calibration", s(&self.calibration)),
            ("reference_a", s(&self.reference_a)),
            ("reference_v", s(&self.reference_v)),
            ("command", s(&self.command)),
        ];
        all.into_iter().filter_map(|(k, span)| span.map(|sp| (k, sp))).collect()
    }
}

/// Collects the problems of one file.
struct Errors<'a> {
    path: String,
    text: &'a str,
    list: Vec<Located>,
}

impl Errors<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.list.push(Located { path: self.path.clone(), line, column, message: message.into() });
    }

    fn line(&self, span: &Range<usize>) -> usize {
        line_col(self.text, span.start).0
    }
}

impl Plan {
    /// Reads and checks the plan at `path` (and the twin's scenario and ECM
    /// files it names, relative to the plan's folder).
    pub fn load(path: &Path) -> Result<Plan, PlanError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| PlanError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Checks the plan text `text` read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Plan, PlanError> {
        let mut errors = Errors { path: path.display().to_string(), text, list: Vec::new() };
        let raw: RawPlan = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                errors.at(e.span().unwrap_or(0..0), e.message().trim_end().to_string());
                return Err(PlanError::Invalid(errors.list));
            }
        };
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() {
            errors.at(raw.name.span(), "the plan's name is empty");
        }
        let poll_interval_ms = match &raw.poll_interval_ms {
            None => DEFAULT_POLL_INTERVAL_MS,
            Some(v) => {
                let (lo, hi) = POLL_INTERVAL_RANGE_MS;
                match u64::try_from(*v.get_ref()) {
                    Ok(ms) if (lo..=hi).contains(&ms) => ms,
                    _ => {
                        errors.at(v.span(), format!("poll_interval_ms = {} must be within {lo}..={hi}", v.get_ref()));
                        DEFAULT_POLL_INTERVAL_MS
                    }
                }
            }
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let twin_scenario = raw.twin.scenario.as_ref().and_then(|s| {
            let file = dir.join(s.get_ref());
            Scenario::load(&file)
                .map(|sc| (file, sc))
                .map_err(|e| errors.at(s.span(), format!("[twin] scenario: {e:#}")))
                .ok()
        });
        let twin_ecm = raw.twin.ecm.as_ref().and_then(|s| {
            let file = dir.join(s.get_ref());
            load_ecm(&file).map(|p| (file, p)).map_err(|e| errors.at(s.span(), format!("[twin] ecm: {e}"))).ok()
        });

        let mut steps = Vec::with_capacity(raw.step.len());
        let mut names: Vec<(String, usize)> = Vec::new();
        for step in &raw.step {
            let line = errors.line(&step.name.span());
            let step_name = step.name.get_ref().trim().to_string();
            if step_name.is_empty() {
                errors.at(step.name.span(), "a step's name is empty");
            } else if let Some((_, first)) = names.iter().find(|(n, _)| *n == step_name) {
                errors.at(step.name.span(), format!("step name {step_name:?} is already used on line {first}"));
            } else {
                names.push((step_name.clone(), line));
            }
            if let Some(action) = check_step(step, &mut errors) {
                steps.push(Step { name: step_name, line, action });
            }
        }
        if raw.step.is_empty() {
            errors.at(0..0, "the plan has no steps: add [[step]] tables");
        }
        if !errors.list.is_empty() {
            return Err(PlanError::Invalid(errors.list));
        }
        Ok(Plan {
            path: path.to_path_buf(),
            name,
            stop_on_fail: raw.stop_on_fail,
            poll_interval: Duration::from_millis(poll_interval_ms),
            twin_scenario,
            twin_ecm,
            steps,
        })
    }
}

/// An ECM parameter file (TOML, or JSON by extension), as `compare --ecm` reads it.
pub fn load_ecm(path: &Path) -> Result<models::ecm::EcmParams, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let ecm = if path.extension().is_some_and(|e| e == "json") {
        models::ecm::EcmParams::from_json_str(&text)
    } else {
        models::ecm::EcmParams::from_toml_str(&text)
    }
    .map_err(|e| format!("{}: {e}", path.display()))?;
    ecm.validate().map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(ecm)
}

/// Checks one step; `None` when it has errors (recorded in `errors`).
fn check_step(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let kind = step.kind.get_ref().as_str();
    let Some((_, keys)) = KINDS.iter().find(|(k, _)| *k == kind) else {
        let kinds: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
        errors.at(step.kind.span(), format!("unknown step kind {kind:?}; kinds: {}", kinds.join(", ")));
        return None;
    };
    let before = errors.list.len();
    for (key, span) in step.present() {
        if !keys.contains(&key) {
            errors.at(span, format!("`{key}` does not apply to a {kind} step (its keys: {})", keys.join(", ")));
        }
    }
    if errors.list.len() > before {
        return None;
    }
    let action = match kind {
        "wait" => {
            let d = required(errors, &step.duration_s, "duration_s", &step.kind)?;
            Action::Wait { duration_s: wait_seconds(errors, d, "duration_s")? }
        }
        "wait_rest" => {
            let current_below_a = match &step.current_below_a {
                None => DEFAULT_REST_CURRENT_A,
                Some(c) if c.get_ref().is_finite() && *c.get_ref() > 0.0 => *c.get_ref(),
                Some(c) => {
                    errors.at(c.span(), format!("current_below_a = {} must be a positive current (A)", c.get_ref()));
                    return None;
                }
            };
            let f = required(errors, &step.for_s, "for_s", &step.kind)?;
            let for_s = wait_seconds(errors, f, "for_s")?;
            let t = required(errors, &step.timeout_s, "timeout_s", &step.kind)?;
            let timeout_s = wait_seconds(errors, t, "timeout_s")?;
            if timeout_s < for_s {
                errors.at(t.span(), format!("timeout_s = {timeout_s} is shorter than for_s = {for_s}"));
                return None;
            }
            Action::WaitRest { current_below_a, for_s, timeout_s }
        }
        "read" => check_read(step, errors)?,
        "write" => check_write(step, errors)?,
        "expect_twin" => check_expect_twin(step, errors)?,
        "calibrate" => check_calibrate(step, errors)?,
        "command" => check_command(step, errors)?,
        _ => unreachable!("every kind of KINDS is handled"),
    };
    Some(action)
}

fn required<'s, T>(
    errors: &mut Errors<'_>,
    v: &'s Option<Spanned<T>>,
    key: &str,
    kind: &Spanned<String>,
) -> Option<&'s Spanned<T>> {
    if v.is_none() {
        errors.at(kind.span(), format!("a {} step needs `{key}`", kind.get_ref()));
    }
    v.as_ref()
}

/// A positive, finite duration of at most [`MAX_WAIT_S`].
fn wait_seconds(errors: &mut Errors<'_>, v: &Spanned<f64>, key: &str) -> Option<f64> {
    let s = *v.get_ref();
    if s.is_finite() && s > 0.0 && s <= MAX_WAIT_S {
        Some(s)
    } else {
        errors.at(v.span(), format!("{key} = {s} must be a number of seconds within (0, {MAX_WAIT_S}]"));
        None
    }
}

/// The register named `name`, or an error naming the closest name.
fn register(errors: &mut Errors<'_>, name: &Spanned<String>) -> Option<&'static RegDef> {
    let n = name.get_ref().trim();
    match by_name(n) {
        Some(r) => Some(r),
        None => {
            let hint = closest(n).map_or(String::new(), |c| format!(" (did you mean {c}?)"));
            errors.at(name.span(), format!("unknown register {n:?}{hint}; see docs/register-map.md"));
            None
        }
    }
}

/// The register name closest to `name` (edit distance ≤ 3).
fn closest(name: &str) -> Option<&'static str> {
    REGISTERS
        .iter()
        .map(|r| (edit_distance(name, r.name), r.name))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// `11.5` in V for `lvp_mv` → 11500: the raw integer of a physical value,
/// which must be a whole multiple of the register's resolution and fit its type.
pub fn to_raw(reg: &RegDef, value: f64) -> Result<i64, String> {
    let unit = unit_suffix(reg);
    let x = value / reg.scale;
    if !x.is_finite() {
        return Err(format!("{value} is not a finite number"));
    }
    let r = x.round();
    if (x - r).abs() > 1e-6 * r.abs().max(1.0) {
        return Err(format!(
            "{value}{unit} is not a whole multiple of {}'s resolution {}{unit}",
            reg.name,
            crate::decode::format_value(reg, 1)
        ));
    }
    fits(reg, r)
}

/// `r` as an integer if it fits the register's wire type.
fn fits(reg: &RegDef, r: f64) -> Result<i64, String> {
    let raw = r as i64;
    let n = usize::from(reg.ty.words());
    if (raw as f64) != r || reg.ty.decode(&reg.ty.encode(raw)[..n]) != raw {
        return Err(format!("raw {r} does not fit {}'s type {}", reg.name, reg.ty.name()));
    }
    Ok(raw)
}

/// ` V`, or nothing for a register without a unit.
pub fn unit_suffix(reg: &RegDef) -> String {
    if reg.unit.is_empty() || reg.unit == "bits" { String::new() } else { format!(" {}", reg.unit) }
}

/// `[4.000, 60.000] V`: the register's documented range, physical.
pub fn documented_range(reg: &RegDef) -> String {
    format!(
        "[{}, {}]{}",
        crate::decode::format_value(reg, reg.min),
        crate::decode::format_value(reg, reg.max),
        unit_suffix(reg)
    )
}

fn check_read(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let names: Vec<&Spanned<String>> = match (&step.register, &step.registers) {
        (Some(_), Some(list)) => {
            errors.at(list.span(), "give `register` or `registers`, not both");
            return None;
        }
        (Some(one), None) => vec![one],
        (None, Some(list)) if list.get_ref().is_empty() => {
            errors.at(list.span(), "`registers` is empty");
            return None;
        }
        (None, Some(list)) => list.get_ref().iter().collect(),
        (None, None) => {
            errors.at(step.kind.span(), "a read step needs `register` or `registers`");
            return None;
        }
    };
    let mut registers = Vec::new();
    let mut ok = true;
    for n in names {
        match register(errors, n) {
            Some(r) if r.access == Access::W => {
                errors.at(
                    n.span(),
                    format!("{} is a write-only command register (it reads as 0): use a command step", r.name),
                );
                ok = false;
            }
            Some(r) => registers.push(Reg(r)),
            None => ok = false,
        }
    }
    let samples = match &step.samples {
        None => 1,
        Some(s) => match u32::try_from(*s.get_ref()) {
            Ok(n) if (1..=MAX_SAMPLES).contains(&n) => n,
            _ => {
                errors.at(s.span(), format!("samples = {} must be within 1..={MAX_SAMPLES}", s.get_ref()));
                return None;
            }
        },
    };
    let kinds = [step.expect.is_some(), step.expect_value.is_some(), step.expect_in_range.is_some()];
    if kinds.iter().filter(|&&k| k).count() > 1 {
        errors.at(step.kind.span(), "give one of `expect`, `expect_value` and `expect_in_range`");
        return None;
    }
    if step.expect_value.is_none() && (step.tolerance.is_some() || step.tolerance_pct_fs.is_some()) {
        let span = step
            .tolerance
            .as_ref()
            .map_or_else(|| step.tolerance_pct_fs.as_ref().map(Spanned::span), |t| Some(t.span()));
        errors.at(span.unwrap_or(0..0), "a tolerance goes with `expect_value`");
        return None;
    }
    if !ok {
        return None;
    }
    let expect = if let Some(e) = &step.expect {
        let RawRange { min, max } = *e.get_ref();
        match (min, max) {
            (None, None) => {
                errors.at(e.span(), "`expect` needs `min`, `max` or both");
                return None;
            }
            (Some(lo), Some(hi)) if lo > hi => {
                errors.at(e.span(), format!("expect: min = {lo} is above max = {hi}"));
                return None;
            }
            (lo, hi) if lo.is_some_and(|v| !v.is_finite()) || hi.is_some_and(|v| !v.is_finite()) => {
                errors.at(e.span(), "expect: min and max must be finite numbers");
                return None;
            }
            _ => Some(Expect::Range { min, max }),
        }
    } else if let Some(v) = &step.expect_value {
        let value = *v.get_ref();
        for r in &registers {
            let phys = |raw| r.to_physical(raw);
            let (lo, hi) = (phys(r.min).min(phys(r.max)), phys(r.min).max(phys(r.max)));
            if !value.is_finite() || value < lo - r.scale.abs() / 2.0 || value > hi + r.scale.abs() / 2.0 {
                errors.at(
                    v.span(),
                    format!("expect_value = {value} is outside {}'s documented range {}", r.name, documented_range(r)),
                );
                return None;
            }
        }
        let tolerance = tolerance(errors, step, &registers)?.unwrap_or(Tolerance::Abs(0.0));
        Some(Expect::Value { value, tolerance })
    } else {
        match &step.expect_in_range {
            Some(b) if *b.get_ref() => Some(Expect::Documented),
            _ => None,
        }
    };
    Some(Action::Read { registers, samples, expect })
}

/// `tolerance` or `tolerance_pct_fs` (not both; ≥ 0; % FS only for registers with a full scale).
fn tolerance(errors: &mut Errors<'_>, step: &RawStep, registers: &[Reg]) -> Option<Option<Tolerance>> {
    match (&step.tolerance, &step.tolerance_pct_fs) {
        (Some(_), Some(p)) => {
            errors.at(p.span(), "give `tolerance` or `tolerance_pct_fs`, not both");
            None
        }
        (Some(t), None) => {
            let v = *t.get_ref();
            if v.is_finite() && v >= 0.0 {
                Some(Some(Tolerance::Abs(v)))
            } else {
                errors.at(t.span(), format!("tolerance = {v} must be ≥ 0, in the register's unit"));
                None
            }
        }
        (None, Some(p)) => {
            let v = *p.get_ref();
            if !(v.is_finite() && v >= 0.0) {
                errors.at(p.span(), format!("tolerance_pct_fs = {v} must be ≥ 0 (% of full scale)"));
                return None;
            }
            if let Some(r) = registers.iter().find(|r| full_scale(r, Variant::V12).is_none()) {
                errors.at(
                    p.span(),
                    format!(
                        "{} has no full scale (only the current and battery voltage measurements do): give `tolerance` in{}",
                        r.name,
                        unit_suffix(r)
                    ),
                );
                return None;
            }
            Some(Some(Tolerance::PctFs(v)))
        }
        (None, None) => Some(None),
    }
}

/// `expect_exception = N`: a Modbus exception code, 1..=255.
fn exception_code(errors: &mut Errors<'_>, v: &Option<Spanned<i64>>) -> Option<Option<u8>> {
    match v {
        None => Some(None),
        Some(c) => match u8::try_from(*c.get_ref()) {
            Ok(code) if code >= 1 => Some(Some(code)),
            _ => {
                errors.at(
                    c.span(),
                    format!("expect_exception = {} is not a Modbus exception code (1..=255)", c.get_ref()),
                );
                None
            }
        },
    }
}

/// The raw value of `value` (physical) or `raw` for `reg`, in its range unless an exception is expected.
fn write_value(errors: &mut Errors<'_>, step: &RawStep, reg: &RegDef, expect_exception: Option<u8>) -> Option<i64> {
    let (raw, span) = match (&step.value, &step.raw) {
        (Some(_), Some(r)) => {
            errors.at(r.span(), "give `value` (physical) or `raw`, not both");
            return None;
        }
        (Some(v), None) => match to_raw(reg, *v.get_ref()) {
            Ok(raw) => (raw, v.span()),
            Err(e) => {
                errors.at(v.span(), e);
                return None;
            }
        },
        (None, Some(r)) => match fits(reg, *r.get_ref() as f64) {
            Ok(raw) if raw == *r.get_ref() => (raw, r.span()),
            _ => {
                errors
                    .at(r.span(), format!("raw = {} does not fit {}'s type {}", r.get_ref(), reg.name, reg.ty.name()));
                return None;
            }
        },
        (None, None) => {
            errors
                .at(step.kind.span(), format!("writing {} needs `value` (in{}) or `raw`", reg.name, unit_suffix(reg)));
            return None;
        }
    };
    if expect_exception.is_none() && !(reg.min..=reg.max).contains(&raw) {
        errors.at(
            span,
            format!(
                "{} = {}{} is outside its range {} (set expect_exception = 3 to check that the board refuses it)",
                reg.name,
                crate::decode::format_value(reg, raw),
                unit_suffix(reg),
                documented_range(reg)
            ),
        );
        return None;
    }
    Some(raw)
}

fn check_write(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let name = required(errors, &step.register, "register", &step.kind)?;
    let reg = register(errors, name)?;
    match reg.access {
        Access::R => {
            errors.at(name.span(), format!("{} is read-only", reg.name));
            return None;
        }
        Access::W => {
            errors.at(name.span(), format!("{} is a command register: use a command or calibrate step", reg.name));
            return None;
        }
        Access::RW => {}
    }
    let expect_exception = exception_code(errors, &step.expect_exception)?;
    let raw = write_value(errors, step, reg, expect_exception)?;
    let restore = step.restore.as_ref().is_some_and(|r| *r.get_ref());
    Some(Action::Write { register: Reg(reg), raw, restore, expect_exception })
}

fn check_expect_twin(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let name = required(errors, &step.register, "register", &step.kind)?;
    let reg = register(errors, name)?;
    if reg.access == Access::W {
        errors.at(name.span(), format!("{} is a write-only command register: it has no value to compare", reg.name));
        return None;
    }
    if reg.id == RegId::Current {
        errors.at(
            name.span(),
            "current_ma cannot be compared with the twin: the twin is fed the board's measured current \
             (check it against a reference with a read step, or with `hil-rig compare --drive scenario`)",
        );
        return None;
    }
    let tol = tolerance(errors, step, &[Reg(reg)])?;
    if tol.is_none() && !TWIN_DEFAULT_TOLERANCE.contains(&reg.id) {
        let with: Vec<&str> = TWIN_DEFAULT_TOLERANCE.iter().filter_map(|id| by_id(*id)).map(|r| r.name).collect();
        errors.at(
            name.span(),
            format!(
                "{} has no default tolerance against the twin: give `tolerance` in{} (defaults exist for {})",
                reg.name,
                unit_suffix(reg),
                with.join(", ")
            ),
        );
        return None;
    }
    Some(Action::ExpectTwin { register: Reg(reg), tolerance: tol })
}

fn check_calibrate(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let what = required(errors, &step.calibration, "calibration", &step.kind)?;
    let reference = |errors: &mut Errors<'_>, v: &Option<Spanned<f64>>, key: &str, id: RegId| -> Option<i64> {
        let Some(v) = v else {
            errors
                .at(what.span(), format!("a {} calibration needs `{key}`, the reference now applied", what.get_ref()));
            return None;
        };
        let reg = by_id(id).expect("the map has the calibration commands");
        let raw = to_raw(reg, *v.get_ref()).map_err(|e| errors.at(v.span(), e)).ok()?;
        if !(reg.min..=reg.max).contains(&raw) {
            errors.at(
                v.span(),
                format!("{key} = {} is outside {}'s range {}", v.get_ref(), reg.name, documented_range(reg)),
            );
            return None;
        }
        Some(raw)
    };
    let misplaced = |errors: &mut Errors<'_>, v: &Option<Spanned<f64>>, key: &str| {
        if let Some(v) = v {
            errors.at(v.span(), format!("`{key}` does not apply to a {} calibration", what.get_ref()));
            return true;
        }
        false
    };
    let cal = match what.get_ref().as_str() {
        "zero_current" => {
            if misplaced(errors, &step.reference_a, "reference_a") | misplaced(errors, &step.reference_v, "reference_v")
            {
                return None;
            }
            Calibration::ZeroCurrent
        }
        "current" => {
            if misplaced(errors, &step.reference_v, "reference_v") {
                return None;
            }
            let reference_ma = reference(errors, &step.reference_a, "reference_a", RegId::CalCurrent)?;
            if reference_ma.abs() < i64::from(CAL_MIN_CURRENT_MA) {
                let span = step.reference_a.as_ref().map_or(0..0, Spanned::span);
                errors.at(
                    span,
                    format!(
                        "reference_a = {} A: a gain calibration needs |I| ≥ {} A (docs/firmware.md)",
                        reference_ma as f64 / 1000.0,
                        CAL_MIN_CURRENT_MA / 1000
                    ),
                );
                return None;
            }
            Calibration::Current { reference_ma }
        }
        "voltage" => {
            if misplaced(errors, &step.reference_a, "reference_a") {
                return None;
            }
            Calibration::Voltage {
                reference_mv: reference(errors, &step.reference_v, "reference_v", RegId::CalVoltage)?,
            }
        }
        other => {
            errors.at(
                what.span(),
                format!("unknown calibration {other:?}; calibrations: zero_current, current, voltage"),
            );
            return None;
        }
    };
    Some(Action::Calibrate(cal))
}

fn check_command(step: &RawStep, errors: &mut Errors<'_>) -> Option<Action> {
    let name = required(errors, &step.command, "command", &step.kind)?;
    let commands = || {
        REGISTERS
            .iter()
            .filter(|r| r.access == Access::W && !r.id.protected())
            .map(|r| r.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let n = name.get_ref().trim();
    let Some(reg) = by_name(n).filter(|r| r.access == Access::W) else {
        errors.at(name.span(), format!("unknown command {n:?}; commands: {}", commands()));
        return None;
    };
    if reg.id.protected() {
        errors.at(name.span(), format!("{} is a calibration command: use a calibrate step", reg.name));
        return None;
    }
    let expect_exception = exception_code(errors, &step.expect_exception)?;
    let raw = if reg.min == reg.max {
        // A keyed command (reset_counters = 0x5A5A, cal_unlock = 0xCA1B, clear_faults = 1).
        if let Some(v) = &step.value {
            errors.at(v.span(), format!("{} takes no value: hil-rig writes its key {}", reg.name, reg.min));
            return None;
        }
        reg.min
    } else {
        write_value(errors, step, reg, expect_exception)?
    };
    Some(Action::Command { register: Reg(reg), raw, expect_exception })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "name = \"t\"\n";

    fn parse(text: &str) -> Result<Plan, Vec<Located>> {
        Plan::parse(text, Path::new("plans/p.toml")).map_err(|e| match e {
            PlanError::Invalid(v) => v,
            PlanError::Io { .. } => panic!("no I/O here"),
        })
    }

    fn one_step(body: &str) -> Result<Action, Vec<Located>> {
        parse(&format!("{HEAD}[[step]]\nname = \"s\"\n{body}\n")).map(|p| p.steps[0].action.clone())
    }

    /// The first error's `line: message`.
    fn error(body: &str) -> String {
        let e = one_step(body).unwrap_err();
        format!("{}: {}", e[0].line, e[0].message)
    }

    fn reg(name: &str) -> Reg {
        Reg(by_name(name).unwrap())
    }

    #[test]
    fn a_plan_of_every_kind_loads_with_physical_values_in_raw() {
        let text = r#"
name = "acceptance"
stop_on_fail = true
poll_interval_ms = 250

[[step]]
name = "rest"
kind = "wait_rest"
for_s = 30
timeout_s = 600

[[step]]
name = "settle"
kind = "wait"
duration_s = 1.5

[[step]]
name = "identity"
kind = "read"
registers = ["device_type", "serial_number"]

[[step]]
name = "zero"
kind = "read"
register = "current_ma"
samples = 5
expect_value = 0
tolerance_pct_fs = 0.01

[[step]]
name = "lvp"
kind = "write"
register = "lvp_mv"
value = 11.6
restore = true

[[step]]
name = "soc"
kind = "expect_twin"
register = "soc_centipct"

[[step]]
name = "cal"
kind = "calibrate"
calibration = "current"
reference_a = -100

[[step]]
name = "reset"
kind = "command"
command = "reset_counters"

[[step]]
name = "set soc"
kind = "command"
command = "set_soc_centipct"
value = 80.5
"#;
        let p = parse(text).unwrap();
        assert_eq!(
            (p.name.as_str(), p.stop_on_fail, p.poll_interval),
            ("acceptance", true, Duration::from_millis(250))
        );
        let actions: Vec<&Action> = p.steps.iter().map(|s| &s.action).collect();
        assert_eq!(*actions[0], Action::WaitRest { current_below_a: 0.5, for_s: 30.0, timeout_s: 600.0 });
        assert_eq!(*actions[1], Action::Wait { duration_s: 1.5 });
        assert_eq!(
            *actions[2],
            Action::Read { registers: vec![reg("device_type"), reg("serial_number")], samples: 1, expect: None }
        );
        assert_eq!(
            *actions[3],
            Action::Read {
                registers: vec![reg("current_ma")],
                samples: 5,
                expect: Some(Expect::Value { value: 0.0, tolerance: Tolerance::PctFs(0.01) })
            }
        );
        assert_eq!(
            *actions[4],
            Action::Write { register: reg("lvp_mv"), raw: 11_600, restore: true, expect_exception: None }
        );
        assert_eq!(*actions[5], Action::ExpectTwin { register: reg("soc_centipct"), tolerance: None });
        assert_eq!(*actions[6], Action::Calibrate(Calibration::Current { reference_ma: -100_000 }));
        assert_eq!(
            *actions[7],
            Action::Command { register: reg("reset_counters"), raw: 0x5A5A, expect_exception: None }
        );
        assert_eq!(
            *actions[8],
            Action::Command { register: reg("set_soc_centipct"), raw: 8_050, expect_exception: None }
        );
        assert_eq!(p.steps[3].line, 23, "the line of the step's name");
        assert!(p.needs_twin());
    }

    #[test]
    fn syntax_errors_and_unknown_keys_name_the_line() {
        let e = parse("name = \"t\"\n[[step]]\nname = \"s\"\nkind = \"wait\"\nduration_s = = 3\n").unwrap_err();
        assert_eq!((e[0].path.as_str(), e[0].line), ("plans/p.toml", 5), "{e:?}");
        assert!(e[0].to_string().starts_with("plans/p.toml:5:"), "{}", e[0]);
        let e = error("kind = \"wait\"\nduration = 3");
        assert!(e.starts_with("5: unknown field `duration`"), "{e}");
        let e = parse("[[step]]\nname = \"s\"\nkind = \"wait\"\nduration_s = 1\n").unwrap_err();
        assert!(e[0].message.contains("missing field `name`"), "{e:?}");
        let e = error("kind = \"wait\"\nduration_s = \"ten\"");
        assert!(e.starts_with("5: invalid type: string \"ten\", expected f64"), "{e}");
    }

    #[test]
    fn unknown_names_and_kinds_are_named_with_a_hint() {
        assert_eq!(
            error("kind = \"read\"\nregister = \"lvp_v\""),
            "5: unknown register \"lvp_v\" (did you mean lvp_mv?); see docs/register-map.md"
        );
        let e = error("kind = \"reed\"\nregister = \"lvp_mv\"");
        assert!(e.starts_with("4: unknown step kind \"reed\"; kinds: wait, wait_rest, read"), "{e}");
        let e = error("kind = \"command\"\ncommand = \"reboot\"");
        assert!(e.starts_with("5: unknown command \"reboot\"; commands: set_soc_centipct, clear_faults"), "{e}");
        assert!(!e.contains("cal_zero_current"), "{e}");
        let e = error("kind = \"calibrate\"\ncalibration = \"gain\"");
        assert_eq!(e, "5: unknown calibration \"gain\"; calibrations: zero_current, current, voltage");
    }

    #[test]
    fn keys_of_another_kind_are_refused() {
        let e = error("kind = \"read\"\nregister = \"lvp_mv\"\nvalue = 3");
        assert!(e.starts_with("6: `value` does not apply to a read step (its keys: register, registers"), "{e}");
        assert_eq!(error("kind = \"wait\""), "4: a wait step needs `duration_s`");
    }

    #[test]
    fn wrong_types_of_register_are_refused() {
        assert_eq!(
            error("kind = \"write\"\nregister = \"battery_voltage_mv\"\nvalue = 12"),
            "5: battery_voltage_mv is read-only"
        );
        assert_eq!(
            error("kind = \"write\"\nregister = \"clear_faults\"\nraw = 1"),
            "5: clear_faults is a command register: use a command or calibrate step"
        );
        assert_eq!(
            error("kind = \"read\"\nregisters = [\"status\", \"clear_faults\"]"),
            "5: clear_faults is a write-only command register (it reads as 0): use a command step"
        );
        assert_eq!(
            error("kind = \"command\"\ncommand = \"cal_zero_current\""),
            "5: cal_zero_current is a calibration command: use a calibrate step"
        );
        let e = error("kind = \"expect_twin\"\nregister = \"current_ma\"");
        assert!(e.starts_with("5: current_ma cannot be compared with the twin"), "{e}");
        let e = error("kind = \"expect_twin\"\nregister = \"uptime_s\"");
        assert!(e.starts_with("5: uptime_s has no default tolerance against the twin: give `tolerance` in s"), "{e}");
        assert!(one_step("kind = \"expect_twin\"\nregister = \"uptime_s\"\ntolerance = 2").is_ok());
    }

    #[test]
    fn out_of_range_values_are_refused_unless_the_refusal_is_the_test() {
        let e = error("kind = \"write\"\nregister = \"lvp_mv\"\nvalue = 61");
        assert_eq!(
            e,
            "6: lvp_mv = 61.000 V is outside its range [4.000, 60.000] V (set expect_exception = 3 to check that the \
             board refuses it)"
        );
        assert_eq!(
            one_step("kind = \"write\"\nregister = \"lvp_mv\"\nvalue = 3.0\nexpect_exception = 3").unwrap(),
            Action::Write { register: reg("lvp_mv"), raw: 3_000, restore: false, expect_exception: Some(3) }
        );
        // Even then, the value must fit the wire type.
        let e = error("kind = \"write\"\nregister = \"lvp_mv\"\nvalue = 70000\nexpect_exception = 3");
        assert_eq!(e, "6: raw 70000000 does not fit lvp_mv's type u16");
        let e = error("kind = \"write\"\nregister = \"lvp_mv\"\nvalue = 11.5004");
        assert_eq!(e, "6: 11.5004 V is not a whole multiple of lvp_mv's resolution 0.001 V");
        let e = error("kind = \"read\"\nregister = \"soc_centipct\"\nexpect_value = 120");
        assert_eq!(e, "6: expect_value = 120 is outside soc_centipct's documented range [0.00, 100.00] %");
        let e = error("kind = \"calibrate\"\ncalibration = \"current\"\nreference_a = 5");
        assert_eq!(e, "6: reference_a = 5 A: a gain calibration needs |I| ≥ 10 A (docs/firmware.md)");
        let e = error("kind = \"calibrate\"\ncalibration = \"voltage\"\nreference_v = 65.5");
        assert_eq!(e, "6: reference_v = 65.5 is outside cal_voltage_mv's range [1.000, 65.000] V");
        let e = error("kind = \"command\"\ncommand = \"reset_counters\"\nvalue = 1");
        assert_eq!(e, "6: reset_counters takes no value: hil-rig writes its key 23130");
        let e = error("kind = \"wait_rest\"\nfor_s = 60\ntimeout_s = 30");
        assert_eq!(e, "6: timeout_s = 30 is shorter than for_s = 60");
    }

    #[test]
    fn tolerances_in_pct_fs_need_a_full_scale() {
        let e = error("kind = \"read\"\nregister = \"temperature_dc\"\nexpect_value = 25\ntolerance_pct_fs = 1");
        assert!(e.starts_with("7: temperature_dc has no full scale"), "{e}");
        let v = reg("battery_voltage_mv");
        assert!((Tolerance::PctFs(0.1).abs(&v, Variant::V48) - 0.06).abs() < 1e-12);
        assert!((Tolerance::PctFs(0.01).abs(&reg("current_ma"), Variant::V12) - 0.025).abs() < 1e-12);
        let e = error("kind = \"read\"\nregister = \"current_ma\"\ntolerance = 1");
        assert_eq!(e, "6: a tolerance goes with `expect_value`");
    }

    #[test]
    fn every_problem_is_reported_at_once_and_names_are_unique() {
        let text = format!(
            "{HEAD}[[step]]\nname = \"a\"\nkind = \"read\"\nregister = \"nope\"\n\
             [[step]]\nname = \"a\"\nkind = \"wait\"\nduration_s = -1\n"
        );
        let e = parse(&text).unwrap_err();
        let got: Vec<(usize, &str)> = e.iter().map(|l| (l.line, l.message.as_str())).collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, 5);
        assert_eq!(got[1], (7, "step name \"a\" is already used on line 3"));
        assert_eq!(got[2], (9, "duration_s = -1 must be a number of seconds within (0, 604800]"));
        let e = parse(HEAD).unwrap_err();
        assert_eq!(e[0].message, "the plan has no steps: add [[step]] tables");
    }

    #[test]
    fn the_twin_files_are_loaded_relative_to_the_plan() {
        let e = parse(&format!(
            "{HEAD}[twin]\nscenario = \"no-such.toml\"\n[[step]]\nname = \"w\"\nkind = \"wait\"\nduration_s = 1\n"
        ))
        .unwrap_err();
        assert_eq!(e[0].line, 3);
        assert!(e[0].message.starts_with("[twin] scenario: ") && e[0].message.contains("plans/no-such.toml"), "{e:?}");
    }

    #[test]
    fn the_example_acceptance_plan_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("plans/acceptance.toml");
        let plan = Plan::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(plan.steps.len() >= 10);
        assert!(plan.needs_twin());
        let kinds: Vec<&str> = plan.steps.iter().map(|s| s.action.kind()).collect();
        for k in ["wait_rest", "read", "write", "expect_twin", "calibrate", "command"] {
            assert!(kinds.contains(&k), "the example shows {k}");
        }
    }
}
