//! JUnit XML (`junit.xml`), the one writer for `smartpro-sim run` (a suite per
//! scenario, a case per expectation), `smartpro-sim sweep` (a case per case
//! and check), `hil-rig compare` (a case per quantity and finding) and
//! `hil-rig test` (a case per step).
//!
//! A caller builds a [`Report`]; [`write()`] derives every count (`tests`,
//! `failures`, `errors`, `skipped`) from its cases, so they always agree with
//! what the file holds, and escapes every name, message and text with
//! [`super::xml`].

use std::io::Write;

use super::xml::{escape, escape_attr};

/// A `<testsuites>` document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub name: String,
    /// Total time (s), if known.
    pub time_s: Option<f64>,
    pub suites: Vec<Suite>,
}

/// A `<testsuite>`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    pub name: String,
    /// The suite's time (s), if known.
    pub time_s: Option<f64>,
    /// When the suite started, ISO 8601 without a zone (`2025-11-25T15:30:12`, UTC).
    pub timestamp: Option<String>,
    /// `<properties>`: (name, value).
    pub properties: Vec<(String, String)>,
    pub cases: Vec<Case>,
}

/// A `<testcase>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub classname: String,
    pub name: String,
    /// The case's time (s), if known.
    pub time_s: Option<f64>,
    pub outcome: Outcome,
    /// `<system-out>`: what the case printed or measured, if anything.
    pub system_out: Option<String>,
}

impl Case {
    /// A case with no time and no output.
    pub fn new(classname: impl Into<String>, name: impl Into<String>, outcome: Outcome) -> Self {
        Case { classname: classname.into(), name: name.into(), time_s: None, outcome, system_out: None }
    }
}

/// How a test case ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Passed,
    /// `<failure>`: the check ran and its value is out of bounds.
    Failure(Problem),
    /// `<error>`: the case could not run to its end.
    Error(Problem),
    /// `<skipped message="…">`: not run, and why.
    Skipped(String),
}

/// What a `<failure>` or `<error>` says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problem {
    /// The `message` attribute: one line.
    pub message: String,
    /// The `type` attribute, if any.
    pub kind: Option<String>,
    /// The element's text (details, several lines), if any.
    pub text: Option<String>,
}

impl Problem {
    /// A problem that is its message only.
    pub fn message(message: impl Into<String>) -> Self {
        Problem { message: message.into(), kind: None, text: None }
    }
}

/// The counts of a set of cases: (tests, failures, errors, skipped).
fn counts<'a>(cases: impl Iterator<Item = &'a Case>) -> [usize; 4] {
    let mut n = [0; 4];
    for c in cases {
        n[0] += 1;
        match c.outcome {
            Outcome::Passed => {}
            Outcome::Failure(_) => n[1] += 1,
            Outcome::Error(_) => n[2] += 1,
            Outcome::Skipped(_) => n[3] += 1,
        }
    }
    n
}

/// ` tests="…" failures="…" errors="…" skipped="…"`.
fn counts_attrs([tests, failures, errors, skipped]: [usize; 4]) -> String {
    format!(r#" tests="{tests}" failures="{failures}" errors="{errors}" skipped="{skipped}""#)
}

/// ` time="…"` (ms resolution), or nothing.
fn time_attr(time_s: Option<f64>) -> String {
    time_s.map_or_else(String::new, |t| format!(r#" time="{t:.3}""#))
}

/// Writes `report` as JUnit XML.
pub fn write(w: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    writeln!(w, r#"<?xml version="1.0" encoding="UTF-8"?>"#)?;
    let all = counts(report.suites.iter().flat_map(|s| &s.cases));
    writeln!(
        w,
        r#"<testsuites name="{}"{}{}>"#,
        escape_attr(&report.name),
        counts_attrs(all),
        time_attr(report.time_s)
    )?;
    for suite in &report.suites {
        let stamp =
            suite.timestamp.as_ref().map_or_else(String::new, |t| format!(r#" timestamp="{}""#, escape_attr(t)));
        writeln!(
            w,
            r#"  <testsuite name="{}"{}{}{stamp}>"#,
            escape_attr(&suite.name),
            counts_attrs(counts(suite.cases.iter())),
            time_attr(suite.time_s)
        )?;
        if !suite.properties.is_empty() {
            writeln!(w, "    <properties>")?;
            for (name, value) in &suite.properties {
                writeln!(w, r#"      <property name="{}" value="{}"/>"#, escape_attr(name), escape_attr(value))?;
            }
            writeln!(w, "    </properties>")?;
        }
        for case in &suite.cases {
            write_case(w, case)?;
        }
        writeln!(w, "  </testsuite>")?;
    }
    writeln!(w, "</testsuites>")
}

fn write_case(w: &mut dyn Write, c: &Case) -> std::io::Result<()> {
    write!(
        w,
        r#"    <testcase classname="{}" name="{}"{}"#,
        escape_attr(&c.classname),
        escape_attr(&c.name),
        time_attr(c.time_s)
    )?;
    if c.outcome == Outcome::Passed && c.system_out.is_none() {
        return writeln!(w, "/>");
    }
    write!(w, ">")?;
    let problem = |w: &mut dyn Write, tag: &str, p: &Problem| {
        let kind = p.kind.as_ref().map_or_else(String::new, |k| format!(r#" type="{}""#, escape_attr(k)));
        match &p.text {
            Some(text) => write!(w, r#"<{tag} message="{}"{kind}>{}</{tag}>"#, escape_attr(&p.message), escape(text)),
            None => write!(w, r#"<{tag} message="{}"{kind}/>"#, escape_attr(&p.message)),
        }
    };
    match &c.outcome {
        Outcome::Passed => {}
        Outcome::Failure(p) => problem(w, "failure", p)?,
        Outcome::Error(p) => problem(w, "error", p)?,
        Outcome::Skipped(message) => write!(w, r#"<skipped message="{}"/>"#, escape_attr(message))?,
    }
    if let Some(out) = &c.system_out {
        write!(w, "<system-out>{}</system-out>", escape(out))?;
    }
    writeln!(w, "</testcase>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let case = |name: &str, outcome| Case::new("class <c>", name, outcome);
        Report {
            name: "tool".into(),
            time_s: Some(1.5),
            suites: vec![
                Suite {
                    name: "suite & one".into(),
                    time_s: Some(1.25),
                    timestamp: Some("2025-11-25T15:30:12".into()),
                    properties: vec![("serial".into(), "42".into())],
                    cases: vec![
                        case("ok", Outcome::Passed),
                        Case {
                            time_s: Some(0.25),
                            system_out: Some("measured 1 < 2".into()),
                            ..case("ok with output", Outcome::Passed)
                        },
                        case(
                            "bad",
                            Outcome::Failure(Problem {
                                message: "x = 2\nexpected ≤ 1".into(),
                                kind: Some("read".into()),
                                text: Some("x = 2 & more\nline two".into()),
                            }),
                        ),
                    ],
                },
                Suite {
                    name: "two".into(),
                    cases: vec![
                        case("broken", Outcome::Error(Problem::message("port lost"))),
                        case("later", Outcome::Skipped("not run".into())),
                    ],
                    ..Suite::default()
                },
            ],
        }
    }

    #[test]
    fn counts_come_from_the_cases_and_everything_parses_back() {
        let mut buf = Vec::new();
        write(&mut buf, &report()).unwrap();
        let x = String::from_utf8(buf).unwrap();
        assert!(
            x.contains(r#"<testsuites name="tool" tests="5" failures="1" errors="1" skipped="1" time="1.500">"#),
            "{x}"
        );
        assert!(x.contains(r#"<testsuite name="suite &amp; one" tests="3" failures="1" errors="0" skipped="0" time="1.250" timestamp="2025-11-25T15:30:12">"#), "{x}");
        assert!(x.contains(r#"<testcase classname="class &lt;c&gt;" name="ok"/>"#), "{x}");
        assert!(x.contains(r#"<failure message="x = 2&#10;expected ≤ 1" type="read">x = 2 &amp; more"#), "{x}");
        assert!(x.contains(
            r#"<testcase classname="class &lt;c&gt;" name="broken"><error message="port lost"/></testcase>"#
        ));

        let doc = roxmltree::Document::parse(&x).expect("well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "testsuites");
        let suites: Vec<_> = root.children().filter(|n| n.has_tag_name("testsuite")).collect();
        assert_eq!(suites.len(), 2);
        let case = |name: &str| doc.descendants().find(|n| n.attribute("name") == Some(name)).unwrap();
        let failure = case("bad").children().find(|n| n.has_tag_name("failure")).unwrap();
        assert_eq!(failure.attribute("message"), Some("x = 2\nexpected ≤ 1"));
        assert_eq!(failure.text(), Some("x = 2 & more\nline two"));
        let out = case("ok with output").children().find(|n| n.has_tag_name("system-out")).unwrap();
        assert_eq!((out.text(), case("ok with output").attribute("time")), (Some("measured 1 < 2"), Some("0.250")));
        let property = doc.descendants().find(|n| n.has_tag_name("property")).unwrap();
        assert_eq!((property.attribute("name"), property.attribute("value")), (Some("serial"), Some("42")));
        assert!(case("later").children().any(|n| n.has_tag_name("skipped")));
    }
}
