//! What `hil-rig test` reports: a console line per step, `junit.xml` (a
//! test case per step) and `report.md` (the acceptance report: the board's
//! identity, the date, each step with its value, limit and verdict).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use smartpro_sim::report::junit::{self, Case, Outcome, Problem, Report, Suite};

/// A step's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The step could not finish: the port vanished, the board fell silent, Ctrl-C.
    Error,
    /// Not run: an earlier step failed with `stop_on_fail`, or the session ended.
    NotRun,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::Error => "ERROR",
            Verdict::NotRun => "NOT RUN",
        }
    }
}

/// One step's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct StepReport {
    /// 1-based.
    pub index: usize,
    pub name: String,
    pub kind: &'static str,
    /// Line of the step in the plan.
    pub line: usize,
    pub verdict: Verdict,
    /// What was measured (`current_ma = 0.004 A`).
    pub value: String,
    /// What it was held to (`0.000 ± 0.025 A`); empty when nothing.
    pub limit: String,
    /// Further lines: the twin's basis, what was restored, notes.
    pub detail: Vec<String>,
    /// Wall-clock time the step took (s).
    pub wall_s: f64,
    /// The board's uptime when the step started (s), if read.
    pub board_s: Option<f64>,
}

/// The board as it identifies itself (raw register values).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Identity {
    pub device_type: Option<i64>,
    pub variant_v: Option<i64>,
    pub firmware_version: Option<i64>,
    pub serial_number: Option<i64>,
}

impl Identity {
    /// `SmartPro-209 (device type 209), SmartPro 12-209, firmware 1.0 (0x0100), serial 1512083463`.
    pub fn describe(&self) -> String {
        let unread = || "not read".to_string();
        let device = self.device_type.map_or_else(unread, |d| {
            if d == i64::from(firmware_core::map::DEVICE_TYPE) {
                format!("SmartPro-209 (device type {d})")
            } else {
                format!("device type {d} (not a SmartPro-209: 209)")
            }
        });
        let variant = self.variant_v.map_or_else(unread, |v| format!("SmartPro {v}-209 ({v} V variant)"));
        let fw = self.firmware_version.map_or_else(unread, |f| format!("{}.{} (0x{f:04X})", f >> 8, f & 0xFF));
        let serial = self.serial_number.map_or_else(unread, |s| s.to_string());
        format!("{device}, {variant}, firmware {fw}, serial {serial}")
    }
}

/// What the reports say about the session.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub plan_name: String,
    pub plan_path: String,
    /// `unit 1 on /dev/ttyUSB0 at 19200 8E1`.
    pub link: String,
    /// When the plan started (UTC).
    pub started: Option<SystemTime>,
    pub identity: Identity,
    /// The twin, if the plan uses one.
    pub twin: Option<String>,
    pub notes: Vec<String>,
    /// Why the session ended before the last step.
    pub ended_early: Option<String>,
}

/// The console line of a step: `[ 4/14] FAIL  zero current: current_ma = 0.1253 A  (limit 0.000 ± 0.025 A)`.
pub fn console_line(step: &StepReport, total: usize) -> String {
    let w = total.to_string().len();
    let limit = if step.limit.is_empty() { String::new() } else { format!("  (limit {})", step.limit) };
    format!("[{:>w$}/{total}] {:<5} {}: {}{limit}", step.index, step.verdict.label(), step.name, step.value)
}

/// `12 of 14 steps passed, 1 failed, 1 not run`.
pub fn summary(steps: &[StepReport]) -> String {
    let count = |v| steps.iter().filter(|s| s.verdict == v).count();
    let mut parts = vec![format!("{} of {} steps passed", count(Verdict::Pass), steps.len())];
    for (v, what) in [(Verdict::Fail, "failed"), (Verdict::Error, "ended in an error"), (Verdict::NotRun, "not run")] {
        if count(v) > 0 {
            parts.push(format!("{} {what}", count(v)));
        }
    }
    parts.join(", ")
}

/// Every step passed.
pub fn passed(steps: &[StepReport]) -> bool {
    !steps.is_empty() && steps.iter().all(|s| s.verdict == Verdict::Pass)
}

/// `report.md`.
pub fn markdown(meta: &Meta, steps: &[StepReport]) -> String {
    let verdict = if passed(steps) && meta.ended_early.is_none() { "**PASS**" } else { "**FAIL**" };
    let mut md = format!("# Acceptance report: {}\n\n| | |\n|---|---|\n", cell(&meta.plan_name));
    let mut row = |k: &str, v: &str| md.push_str(&format!("| {k} | {} |\n", cell(v)));
    row("verdict", &format!("{verdict}: {}", summary(steps)));
    row("board", &meta.identity.describe());
    row("date", &meta.started.map_or("not started".into(), |t| utc(t).0));
    row("link", &meta.link);
    row("plan", &format!("{} ({} steps)", meta.plan_path, steps.len()));
    if let Some(t) = &meta.twin {
        row("twin", t);
    }
    md.push_str(
        "\n## Steps\n\nboard t: the board's uptime when the step started.\n\n\
         | # | step | kind | value | limit | verdict | board t |\n|---:|---|---|---|---|---|---:|\n",
    );
    for s in steps {
        let limit = if s.limit.is_empty() { "—" } else { &s.limit };
        let t = s.board_s.map_or("—".to_string(), |t| format!("{t:.0} s"));
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {t} |\n",
            s.index,
            cell(&s.name),
            s.kind,
            cell(&s.value),
            cell(limit),
            s.verdict.label()
        ));
    }
    let detailed: Vec<&StepReport> = steps.iter().filter(|s| !s.detail.is_empty()).collect();
    if !detailed.is_empty() {
        md.push_str("\n## Details\n");
        for s in detailed {
            md.push_str(&format!(
                "\n{}. {} ({}, plan line {}): {}\n",
                s.index,
                s.name,
                s.kind,
                s.line,
                s.verdict.label()
            ));
            for d in &s.detail {
                md.push_str(&format!("   - {d}\n"));
            }
        }
    }
    if !meta.notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        for n in &meta.notes {
            md.push_str(&format!("- {n}\n"));
        }
    }
    if let Some(why) = &meta.ended_early {
        md.push_str(&format!("\n## Session ended early\n\n{why}\n"));
    }
    md
}

/// A table cell: `|` escaped, line breaks as `<br>`.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', "<br>")
}

/// `junit.xml`: a test suite for the plan, a test case per step (failure,
/// error or skipped), the board's identity as properties.
pub fn write_junit(w: &mut dyn Write, meta: &Meta, steps: &[StepReport]) -> std::io::Result<()> {
    let time: f64 = steps.iter().map(|s| s.wall_s).sum();
    let id = &meta.identity;
    let properties = [
        ("plan", Some(meta.plan_path.clone())),
        ("link", Some(meta.link.clone())),
        ("board", Some(id.describe())),
        ("device_type", id.device_type.map(|v| v.to_string())),
        ("variant_v", id.variant_v.map(|v| v.to_string())),
        ("firmware_version", id.firmware_version.map(|v| v.to_string())),
        ("serial_number", id.serial_number.map(|v| v.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
    .collect();
    let cases = steps
        .iter()
        .map(|s| {
            let message = if s.limit.is_empty() { s.value.clone() } else { format!("{} (limit {})", s.value, s.limit) };
            let out = std::iter::once(message.clone()).chain(s.detail.iter().cloned()).collect::<Vec<_>>().join("\n");
            let (outcome, system_out) = match s.verdict {
                Verdict::Pass => (Outcome::Passed, Some(out)),
                Verdict::Fail => {
                    (Outcome::Failure(Problem { message, kind: Some(s.kind.to_owned()), text: Some(out) }), None)
                }
                Verdict::Error => (Outcome::Error(Problem { message, kind: None, text: Some(out) }), None),
                Verdict::NotRun => (Outcome::Skipped(message), None),
            };
            Case { time_s: Some(s.wall_s), system_out, ..Case::new(s.kind, s.name.clone(), outcome) }
        })
        .collect();
    let suite = Suite {
        name: meta.plan_name.clone(),
        time_s: Some(time),
        timestamp: meta.started.map(|t| utc(t).1),
        properties,
        cases,
    };
    junit::write(w, &Report { name: "hil-rig test".into(), time_s: Some(time), suites: vec![suite] })
}

/// `t` in UTC: (`2025-11-25 15:30:12 UTC`, `2025-11-25T15:30:12`).
pub fn utc(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let hms = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    (format!("{y:04}-{m:02}-{d:02} {hms} UTC"), format!("{y:04}-{m:02}-{d:02}T{hms}"))
}

/// The proleptic Gregorian date of `z` days after 1970-01-01 (H. Hinnant's
/// `civil_from_days`, exact for every day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(index: usize, verdict: Verdict, value: &str, limit: &str) -> StepReport {
        StepReport {
            index,
            name: format!("step <{index}>"),
            kind: "read",
            line: 10 * index,
            verdict,
            value: value.into(),
            limit: limit.into(),
            detail: Vec::new(),
            wall_s: 0.25,
            board_s: Some(12.0),
        }
    }

    fn meta() -> Meta {
        Meta {
            plan_name: "acceptance".into(),
            plan_path: "plans/acceptance.toml".into(),
            link: "unit 1 on /dev/pts/3 at 19200 8E1".into(),
            started: Some(UNIX_EPOCH + Duration::from_secs(1_764_084_612)),
            identity: Identity {
                device_type: Some(209),
                variant_v: Some(12),
                firmware_version: Some(0x0102),
                serial_number: Some(1_512_083_463),
            },
            twin: Some("a battery at rest".into()),
            notes: vec!["a note".into()],
            ended_early: None,
        }
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        let at = |s: u64| utc(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0).0, "1970-01-01 00:00:00 UTC");
        assert_eq!(at(951_782_400).1, "2000-02-29T00:00:00");
        assert_eq!(at(1_735_689_599).0, "2024-12-31 23:59:59 UTC");
        assert_eq!(at(1_764_084_612).0, "2025-11-25 15:30:12 UTC");
        assert_eq!(at(4_107_542_400).1, "2100-03-01T00:00:00", "2100 is not a leap year");
    }

    #[test]
    fn the_identity_reads_as_the_datasheet_names_the_board() {
        assert_eq!(
            meta().identity.describe(),
            "SmartPro-209 (device type 209), SmartPro 12-209 (12 V variant), firmware 1.2 (0x0102), serial 1512083463"
        );
        let other = Identity { device_type: Some(7), ..Identity::default() };
        assert_eq!(
            other.describe(),
            "device type 7 (not a SmartPro-209: 209), not read, firmware not read, serial not read"
        );
    }

    #[test]
    fn console_lines_show_value_and_limit() {
        let s = step(4, Verdict::Fail, "current_ma = 0.1253 A", "0.000 ± 0.025 A");
        assert_eq!(console_line(&s, 14), "[ 4/14] FAIL  step <4>: current_ma = 0.1253 A  (limit 0.000 ± 0.025 A)");
        let s = step(1, Verdict::Pass, "waited 30 s", "");
        assert_eq!(console_line(&s, 3), "[1/3] PASS  step <1>: waited 30 s");
    }

    #[test]
    fn junit_has_a_test_case_per_step_and_escapes() {
        let steps = [
            step(1, Verdict::Pass, "a", ""),
            step(2, Verdict::Fail, "x = 1 & 2", "< 0"),
            step(3, Verdict::Error, "port lost", ""),
            step(4, Verdict::NotRun, "not run", ""),
        ];
        let mut buf = Vec::new();
        write_junit(&mut buf, &meta(), &steps).unwrap();
        let x = String::from_utf8(buf).unwrap();
        assert!(x.contains(r#"<testsuite name="acceptance" tests="4" failures="1" errors="1" skipped="1" time="1.000" timestamp="2025-11-25T15:30:12">"#), "{x}");
        assert_eq!(x.matches("<testcase ").count(), 4);
        assert!(x.contains(r#"name="step &lt;2&gt;""#), "{x}");
        assert!(x.contains(r#"<failure message="x = 1 &amp; 2 (limit &lt; 0)" type="read">"#), "{x}");
        assert!(x.contains(r#"<error message="port lost">"#), "{x}");
        assert!(x.contains(r#"<skipped message="not run"/>"#), "{x}");
        assert!(x.contains(r#"<property name="serial_number" value="1512083463"/>"#), "{x}");
    }

    #[test]
    fn the_markdown_report_holds_identity_date_and_every_step() {
        let mut steps = vec![step(1, Verdict::Pass, "a | b", ""), step(2, Verdict::Fail, "x", "y")];
        steps[1].detail.push("why".into());
        let mut m = meta();
        m.ended_early = Some("lost /dev/pts/3".into());
        let md = markdown(&m, &steps);
        assert!(md.starts_with("# Acceptance report: acceptance\n"), "{md}");
        assert!(md.contains("| verdict | **FAIL**: 1 of 2 steps passed, 1 failed |"), "{md}");
        assert!(md.contains("| date | 2025-11-25 15:30:12 UTC |"), "{md}");
        assert!(md.contains("| board | SmartPro-209 (device type 209), SmartPro 12-209"), "{md}");
        assert!(md.contains("| 1 | step <1> | read | a \\| b | — | PASS | 12 s |"), "{md}");
        assert!(md.contains("| 2 | step <2> | read | x | y | FAIL | 12 s |"), "{md}");
        assert!(md.contains("2. step <2> (read, plan line 20): FAIL\n   - why"), "{md}");
        assert!(md.contains("## Session ended early\n\nlost /dev/pts/3"), "{md}");
        assert!(passed(&steps[..1]) && !passed(&steps) && !passed(&[]));
    }
}
