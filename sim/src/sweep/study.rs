//! Study files: one what-if case, or a grid of them.
//!
//! A case file names a variant, an `[event]` and any parameter of
//! [`models::transient::TransientParams`] (`[battery]`, `[load_line]`,
//! `[comparator]`, `[arrester]`, …); everything left out takes its
//! datasheet default. A study file is a case file with `[[axis]]` tables
//! (and optionally `base = "case.toml"`, whose keys it overrides): every
//! combination of the axes' values is one case, the last axis varying
//! fastest. Unknown keys are errors.
//!
//! A Monte Carlo study adds `samples = N`, `seed = S` and `[[random]]`
//! tables (distributions, see [`super::random`]): every grid point (or the
//! base case alone, without axes) is simulated N times with fresh draws;
//! case `k` is draw `k % N` of grid point `k / N`.
//!
//! ```toml
//! name = "48v-cable"
//! base = "48v-3m-95mm2.toml"
//! [[axis]]
//! param = "load_line.length_m"
//! from = 0.5
//! to = 10
//! step = 0.5
//! [[axis]]
//! param = "load_line.cross_section_mm2"
//! values = [35, 50, 70, 95, 120]
//! ```

use std::path::{Path, PathBuf};

use models::transient::{EventParams, TransientParams};

use super::random::{MonteCarlo, RandomParam, RandomSpec};
use models::variant::Variant;
use serde::Deserialize;
use toml::{Table, Value};

/// Keys of a study that are not case parameters.
const STUDY_KEYS: [&str; 8] = ["name", "description", "base", "axis", "plot", "samples", "seed", "random"];
/// Most cases one study may have.
pub const MAX_CASES: usize = 1_000_000;

/// A study file that cannot be used.
pub type StudyError = crate::tomlfile::FileError;

/// One swept parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// Dotted path of the parameter (`load_line.length_m`, `variant`, `arrester`).
    pub param: String,
    /// Its values, in order. A table value is merged into the table at `param`.
    pub values: Vec<Value>,
    /// Names of the values in results and plots.
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AxisSpec {
    param: String,
    values: Option<Vec<Value>>,
    labels: Option<Vec<String>>,
    from: Option<f64>,
    to: Option<f64>,
    step: Option<f64>,
    count: Option<usize>,
    #[serde(default)]
    log: bool,
}

/// What the plots put on the x axis and as one line each.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlotSpec {
    /// Parameter on the x axis: an axis, or a random parameter (a scatter
    /// plot); default: the first numeric axis, else the first random parameter.
    pub x: Option<String>,
    /// Axis drawn as one line (or colour) per value; default: the first other axis.
    pub series: Option<String>,
}

/// One case, ready to simulate.
#[derive(Debug, Clone)]
pub struct Case {
    /// Position in the study (0-based), the same in every shard.
    pub index: usize,
    /// Index into each axis's values.
    pub at: Vec<usize>,
    /// Monte Carlo: which draw of its grid point this case is, and the drawn
    /// values (in `[[random]]` order).
    pub draw: Option<usize>,
    pub drawn: Vec<f64>,
    pub variant: Variant,
    pub event: EventParams,
    pub params: TransientParams,
}

/// A loaded study: the base case, the axes, and every case checked.
#[derive(Debug, Clone)]
pub struct Study {
    pub name: String,
    pub description: String,
    pub path: PathBuf,
    /// The case parameters with `base` merged in (no study keys).
    pub base: Table,
    pub axes: Vec<Axis>,
    /// Distributions drawn for every grid point, if a Monte Carlo study.
    pub monte_carlo: Option<MonteCarlo>,
    pub plot: PlotSpec,
    pub cases: Vec<Case>,
}

impl Study {
    /// Reads and checks a study file (and its `base`).
    pub fn load(path: &Path) -> Result<Study, StudyError> {
        let text = read(path)?;
        Self::parse(&text, path)
    }

    /// Parses and checks study text; `path` names it in messages and anchors `base`.
    pub fn parse(text: &str, path: &Path) -> Result<Study, StudyError> {
        let invalid = |message: String| StudyError::Invalid { path: path.to_owned(), message };
        let mut table = parse_table(text, path)?;
        let name = match table.remove("name") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(invalid("name must be a string".into())),
            None => path.file_stem().map_or_else(|| "study".into(), |s| s.to_string_lossy().into_owned()),
        };
        if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(invalid(format!("name {name:?} must be non-empty and usable as a folder name")));
        }
        let description = match table.remove("description") {
            Some(Value::String(s)) => s,
            Some(_) => return Err(invalid("description must be a string".into())),
            None => String::new(),
        };
        let axes_spec: Vec<AxisSpec> = match table.remove("axis") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| invalid(format!("[[axis]]: {}", e.message())))?,
            None => Vec::new(),
        };
        let samples = match table.remove("samples") {
            Some(Value::Integer(n)) if n >= 1 => Some(n as usize),
            Some(v) => return Err(invalid(format!("samples = {v}: must be an integer ≥ 1"))),
            None => None,
        };
        let seed = match table.remove("seed") {
            Some(Value::Integer(n)) if n >= 0 => Some(n as u64),
            Some(v) => return Err(invalid(format!("seed = {v}: must be an integer ≥ 0"))),
            None => None,
        };
        let random_spec: Vec<RandomSpec> = match table.remove("random") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| invalid(format!("[[random]]: {}", e.message())))?,
            None => Vec::new(),
        };
        let monte_carlo = match (samples, seed, random_spec.is_empty()) {
            (None, None, true) => None,
            (Some(samples), Some(seed), false) => {
                let params = random_spec
                    .into_iter()
                    .map(|r| RandomParam::from_spec(r).map_err(&invalid))
                    .collect::<Result<Vec<_>, _>>()?;
                Some(MonteCarlo { samples, seed, params })
            }
            (_, _, true) => {
                return Err(invalid(
                    "`samples` and `seed` belong to a Monte Carlo study: add [[random]] tables".into(),
                ));
            }
            (None, _, false) => return Err(invalid("[[random]] needs `samples = N` (draws per grid point)".into())),
            (_, None, false) => {
                return Err(invalid("[[random]] needs `seed = S` (the same seed draws the same values)".into()));
            }
        };
        let plot: PlotSpec = match table.remove("plot") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| invalid(format!("[plot]: {}", e.message())))?,
            None => PlotSpec::default(),
        };
        let mut base = match table.remove("base") {
            Some(Value::String(b)) => {
                let base_path = path.parent().unwrap_or(Path::new(".")).join(&b);
                // A base that cannot be read or parsed: the study and its key first, then the
                // base's own error with its place (found by the `files` fuzz target, issue 20).
                let in_base = |e: StudyError| invalid(format!("base = {b:?}: {e}"));
                let mut t = parse_table(&read(&base_path).map_err(in_base)?, &base_path).map_err(in_base)?;
                for k in STUDY_KEYS {
                    if k != "name" && k != "description" && t.contains_key(k) {
                        return Err(invalid(format!(
                            "base {}: a base is a single case; it cannot have `{k}`",
                            base_path.display()
                        )));
                    }
                    t.remove(k);
                }
                t
            }
            Some(_) => return Err(invalid("base must be a path string".into())),
            None => Table::new(),
        };
        merge(&mut base, table);

        let axes = axes_spec.into_iter().map(|a| axis(a).map_err(&invalid)).collect::<Result<Vec<_>, _>>()?;
        let random_params: Vec<&str> =
            monte_carlo.iter().flat_map(|m| m.params.iter().map(|p| p.param.as_str())).collect();
        let params: Vec<&str> = axes.iter().map(|a| a.param.as_str()).chain(random_params.iter().copied()).collect();
        for (i, p) in params.iter().enumerate() {
            if params[..i].contains(p) {
                return Err(invalid(format!("{p:?} is varied twice (as an axis or a random parameter)")));
            }
        }
        let samples = monte_carlo.as_ref().map_or(1, |m| m.samples);
        let count = axes.iter().try_fold(samples, |n, a| n.checked_mul(a.values.len())).unwrap_or(usize::MAX);
        if count > MAX_CASES {
            return Err(invalid(format!("{count} cases: more than {MAX_CASES}; split the study")));
        }
        if let Some(x) = &plot.x {
            if !params.contains(&x.as_str()) {
                return Err(invalid(format!("[plot] x = {x:?} is neither an axis nor a random parameter")));
            }
        }
        if let Some(series) = &plot.series {
            if !axes.iter().any(|a| &a.param == series) {
                return Err(invalid(format!("[plot] series = {series:?} is not an axis")));
            }
        }
        let mut study =
            Study { name, description, path: path.to_owned(), base, axes, monte_carlo, plot, cases: Vec::new() };
        study.cases = (0..count).map(|k| study.build_case(k)).collect::<Result<_, _>>().map_err(invalid)?;
        Ok(study)
    }

    /// Number of cases.
    pub fn len(&self) -> usize {
        self.cases.len()
    }

    /// A study always has at least one case.
    pub fn is_empty(&self) -> bool {
        self.cases.is_empty()
    }

    /// Draws per grid point (1 without Monte Carlo).
    pub fn samples(&self) -> usize {
        self.monte_carlo.as_ref().map_or(1, |m| m.samples)
    }

    /// Names of the columns that say what a case is: the axes, then (Monte
    /// Carlo) `draw` and the random parameters. [`Study::case_values`] fills them.
    pub fn value_columns(&self) -> Vec<String> {
        let mut c: Vec<String> = self.axes.iter().map(|a| a.param.clone()).collect();
        if let Some(m) = &self.monte_carlo {
            c.push("draw".into());
            c.extend(m.params.iter().map(|p| p.param.clone()));
        }
        c
    }

    /// A case's entries for [`Study::value_columns`].
    pub fn case_values(&self, case: &Case) -> Vec<String> {
        let mut v: Vec<String> = self.axes.iter().zip(&case.at).map(|(a, &j)| a.labels[j].clone()).collect();
        if let Some(d) = case.draw {
            v.push(d.to_string());
            v.extend(case.drawn.iter().map(|x| x.to_string()));
        }
        v
    }

    /// The axis indices of case `k` (last axis fastest; the draws of a grid
    /// point are consecutive cases).
    pub fn coordinates(&self, k: usize) -> Vec<usize> {
        let mut k = k / self.samples();
        let mut at = vec![0; self.axes.len()];
        for (slot, a) in at.iter_mut().zip(&self.axes).rev() {
            *slot = k % a.values.len();
            k /= a.values.len();
        }
        at
    }

    fn table_for(&self, at: &[usize], drawn: &[f64]) -> Table {
        let mut t = self.base.clone();
        for (a, &j) in self.axes.iter().zip(at) {
            set_path(&mut t, &a.param, a.values[j].clone());
        }
        for (p, &x) in self.monte_carlo.iter().flat_map(|m| &m.params).zip(drawn) {
            set_path(&mut t, &p.param, Value::Float(x));
        }
        t
    }

    fn build_case(&self, k: usize) -> Result<Case, String> {
        let at = self.coordinates(k);
        let draw = self.monte_carlo.as_ref().map(|m| k % m.samples);
        let drawn = match (&self.monte_carlo, draw) {
            (Some(m), Some(s)) => m.draw(s).map_err(|e| format!("case {k}: {e}"))?,
            _ => Vec::new(),
        };
        let where_ = || {
            let mut vals: Vec<String> =
                self.axes.iter().zip(&at).map(|(a, &j)| format!("{} = {}", a.param, a.labels[j])).collect();
            if let (Some(m), Some(s)) = (&self.monte_carlo, draw) {
                vals.push(format!("draw {s}"));
                vals.extend(m.params.iter().zip(&drawn).map(|(p, x)| format!("{} = {x}", p.param)));
            }
            if vals.is_empty() { String::new() } else { format!("case {k} ({}): ", vals.join(", ")) }
        };
        let mut t = self.table_for(&at, &drawn);
        let variant: Variant = match t.remove("variant") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| format!("{}variant: {}", where_(), e.message()))?,
            None => return Err("variant = 12, 24 or 48 is required".into()),
        };
        let event: EventParams = match t.remove("event") {
            Some(v) => v.try_into().map_err(|e: toml::de::Error| format!("{}[event]: {}", where_(), e.message()))?,
            None => EventParams::default(),
        };
        let params: TransientParams =
            Value::Table(t).try_into().map_err(|e: toml::de::Error| format!("{}{}", where_(), e.message()))?;
        params.validate().map_err(|e| format!("{}{e}", where_()))?;
        event.validate().map_err(|e| format!("{}{e}", where_()))?;
        Ok(Case { index: k, at, draw, drawn, variant, event, params })
    }

    /// The study with `base` resolved, as TOML text: what a shard records so
    /// that a merge can check that all shards ran the same study.
    pub fn resolved_toml(&self) -> String {
        let mut t = self.base.clone();
        t.insert("name".into(), Value::String(self.name.clone()));
        if !self.description.is_empty() {
            t.insert("description".into(), Value::String(self.description.clone()));
        }
        let axes: Vec<Value> = self
            .axes
            .iter()
            .map(|a| {
                let mut at = Table::new();
                at.insert("param".into(), Value::String(a.param.clone()));
                at.insert("values".into(), Value::Array(a.values.clone()));
                at.insert("labels".into(), Value::Array(a.labels.iter().cloned().map(Value::String).collect()));
                Value::Table(at)
            })
            .collect();
        if !axes.is_empty() {
            t.insert("axis".into(), Value::Array(axes));
        }
        if let Some(m) = &self.monte_carlo {
            t.insert("samples".into(), Value::Integer(m.samples as i64));
            t.insert("seed".into(), Value::Integer(m.seed as i64));
            t.insert("random".into(), Value::Array(m.params.iter().map(|p| Value::Table(p.to_table())).collect()));
        }
        if self.plot != PlotSpec::default() {
            t.insert("plot".into(), Value::try_from(&self.plot).expect("plot spec serializes"));
        }
        toml::to_string(&t).expect("a TOML table serializes")
    }
}

fn read(path: &Path) -> Result<String, StudyError> {
    crate::tomlfile::read(path)
}

fn parse_table(text: &str, path: &Path) -> Result<Table, StudyError> {
    text.parse::<Table>().map_err(|e| crate::tomlfile::toml_error(text, path, &e))
}

/// A value as a number, if it is one.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

/// A value's label: numbers and strings plainly, tables as `k=v;k=v`.
pub fn label(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Table(t) => t.iter().map(|(k, v)| format!("{k}={}", label(v))).collect::<Vec<_>>().join(";"),
        Value::Array(a) => a.iter().map(label).collect::<Vec<_>>().join("|"),
        other => other.to_string(),
    }
}

fn axis(a: AxisSpec) -> Result<Axis, String> {
    let p = &a.param;
    if p.is_empty() || p.split('.').any(str::is_empty) {
        return Err(format!("axis param {p:?} is not a dotted key path"));
    }
    let values = match (a.values, a.from, a.to) {
        (Some(v), None, None) if a.step.is_none() && a.count.is_none() && !a.log => v,
        (None, Some(from), Some(to)) => {
            range(from, to, a.step, a.count, a.log).map_err(|m| format!("axis {p:?}: {m}"))?
        }
        _ => return Err(format!("axis {p:?}: give either `values` or `from` and `to` with `step` or `count`")),
    };
    if values.is_empty() {
        return Err(format!("axis {p:?} has no values"));
    }
    let labels = match a.labels {
        Some(l) if l.len() == values.len() => l,
        Some(l) => return Err(format!("axis {p:?}: {} labels for {} values", l.len(), values.len())),
        None => values.iter().map(label).collect(),
    };
    Ok(Axis { param: a.param, values, labels })
}

fn range(from: f64, to: f64, step: Option<f64>, count: Option<usize>, log: bool) -> Result<Vec<Value>, String> {
    if !(from.is_finite() && to.is_finite()) {
        return Err("from and to must be finite".into());
    }
    // Rounded to 12 significant digits, so 0.1 + 2·0.1 reads 0.3.
    let tidy = |x: f64| {
        if x == 0.0 {
            return 0.0;
        }
        let scale = 10f64.powi(11 - x.abs().log10().floor() as i32);
        (x * scale).round() / scale
    };
    let xs: Vec<f64> = match (step, count) {
        (Some(s), None) if !log => {
            if !(s.is_finite() && s != 0.0 && (to - from) / s >= 0.0) {
                return Err(format!("step {s} does not lead from {from} to {to}"));
            }
            let n = ((to - from) / s + 1e-9).floor() as usize + 1;
            if n > MAX_CASES {
                return Err(format!("{n} values"));
            }
            (0..n).map(|k| tidy(from + k as f64 * s)).collect()
        }
        (None, Some(n)) if n >= 1 => {
            if log && !(from > 0.0 && to > 0.0) {
                return Err("a log range needs from, to > 0".into());
            }
            (0..n)
                .map(|k| {
                    let f = if n == 1 { 0.0 } else { k as f64 / (n - 1) as f64 };
                    tidy(if log { from * (to / from).powf(f) } else { from + (to - from) * f })
                })
                .collect()
        }
        _ => return Err("give `step` (linear) or `count` (linear, or logarithmic with log = true)".into()),
    };
    Ok(xs.into_iter().map(Value::Float).collect())
}

/// Deep merge: tables merge key by key, anything else is replaced.
fn merge(into: &mut Table, from: Table) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// Sets `path` (dotted) to `value`, creating tables on the way; a table
/// value merges into an existing table.
fn set_path(t: &mut Table, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut cur = t;
    while let Some(p) = parts.next() {
        if parts.peek().is_none() {
            match (cur.get_mut(p), value) {
                (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
                (_, v) => {
                    cur.insert(p.to_owned(), v);
                }
            }
            return;
        }
        let entry = cur.entry(p.to_owned()).or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        cur = entry.as_table_mut().expect("made a table above");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STUDY: &str = r#"
name = "t"
variant = 48
[battery]
temperature_c = 20
[[axis]]
param = "load_line.length_m"
from = 0.5
to = 1.5
step = 0.5
[[axis]]
param = "arrester"
values = [{ pppm_w = 80000 }, { pppm_w = 40000 }]
labels = ["80kW", "40kW"]
"#;

    #[test]
    fn issue_20_a_study_whose_base_is_missing_or_broken_names_the_study_and_the_base() {
        let e = Study::parse("base = \"no-such-case.toml\"\n", Path::new("dir/s.toml")).unwrap_err().to_string();
        assert!(e.starts_with("dir/s.toml: base = \"no-such-case.toml\": dir/no-such-case.toml: cannot read"), "{e}");
        let dir = std::env::temp_dir().join(format!("smartpro-study-base-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("broken.toml"), "[battery\n").unwrap();
        let e = Study::parse("base = \"broken.toml\"\n", &dir.join("s.toml")).unwrap_err().to_string();
        let want = format!(
            "{}: base = \"broken.toml\": {}:1:",
            dir.join("s.toml").display(),
            dir.join("broken.toml").display()
        );
        assert!(e.starts_with(&want), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn grid_last_axis_fastest() {
        let s = Study::parse(STUDY, Path::new("t.toml")).unwrap();
        assert_eq!(s.len(), 6);
        assert_eq!(s.coordinates(0), vec![0, 0]);
        assert_eq!(s.coordinates(1), vec![0, 1]);
        assert_eq!(s.coordinates(5), vec![2, 1]);
        let c = &s.cases[3];
        assert_eq!(c.params.load_line.length_m, 1.0);
        assert_eq!(c.params.arrester.pppm_w, Some(40e3));
        assert_eq!(c.params.battery.temperature_c, 20.0);
        assert_eq!(s.axes[0].labels, ["0.5", "1.0", "1.5"]);
        // resolved text parses back to the same study
        let again = Study::parse(&s.resolved_toml(), Path::new("r.toml")).unwrap();
        assert_eq!(again.axes, s.axes);
        assert_eq!(again.len(), 6);
    }

    #[test]
    fn ranges_are_tidy() {
        let v = range(0.1, 0.5, Some(0.1), None, false).unwrap();
        assert_eq!(v.iter().filter_map(number).collect::<Vec<_>>(), [0.1, 0.2, 0.3, 0.4, 0.5]);
        let v = range(1.0, 100.0, None, Some(3), true).unwrap();
        assert_eq!(v.iter().filter_map(number).collect::<Vec<_>>(), [1.0, 10.0, 100.0]);
        assert!(range(1.0, 0.0, Some(0.5), None, false).is_err());
    }

    #[test]
    fn errors_name_the_case_and_key() {
        let e = Study::parse(&STUDY.replace("temperature_c", "temprature_c"), Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("temprature_c"), "{e}");
        let e = Study::parse(&STUDY.replace("from = 0.5", "from = -0.5"), Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("case 0 (load_line.length_m = -0.5"), "{e}");
        let e = Study::parse("variant = 48\nbogus = [", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().starts_with("x.toml:2:"), "{e}");
        let e = Study::parse("name = \"a\"\n", Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("variant"), "{e}");
        let e = Study::parse(&format!("{STUDY}[plot]\nx = \"nope\"\n"), Path::new("x.toml")).unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
    }

    const MC: &str = r#"
name = "mc"
variant = 48
samples = 3
seed = 11
[[axis]]
param = "load_line.cross_section_mm2"
values = [35, 95]
[[random]]
param = "load_line.length_m"
dist = "uniform"
min = 1.0
max = 5.0
"#;

    #[test]
    fn monte_carlo_cases_are_draws_of_each_grid_point() {
        let s = Study::parse(MC, Path::new("mc.toml")).unwrap();
        assert_eq!((s.len(), s.samples()), (6, 3));
        assert_eq!(s.value_columns(), ["load_line.cross_section_mm2", "draw", "load_line.length_m"]);
        assert_eq!(s.coordinates(2), [0]);
        assert_eq!(s.coordinates(4), [1]);
        let (a, b) = (&s.cases[1], &s.cases[4]);
        assert_eq!((a.draw, b.draw), (Some(1), Some(1)));
        assert_eq!(a.drawn, b.drawn, "draw 1 is the same at both grid points");
        assert_ne!(s.cases[0].drawn, a.drawn);
        assert_eq!(b.params.load_line.length_m, b.drawn[0]);
        assert_eq!(b.params.load_line.cross_section_mm2, 95.0);
        assert!((1.0..5.0).contains(&b.drawn[0]));
        assert_eq!(s.case_values(b), ["95", "1", &b.drawn[0].to_string()]);
        // study.toml (what shards record) rebuilds the same draws
        let again = Study::parse(&s.resolved_toml(), Path::new("r.toml")).unwrap();
        assert_eq!(again.monte_carlo, s.monte_carlo);
        assert!(again.cases.iter().zip(&s.cases).all(|(x, y)| x.drawn == y.drawn && x.params == y.params));
    }

    #[test]
    fn monte_carlo_errors_name_the_problem() {
        let err = |text: &str| Study::parse(text, Path::new("x.toml")).unwrap_err().to_string();
        let e = err(&MC.replace("samples = 3\n", ""));
        assert!(e.contains("needs `samples = N`"), "{e}");
        let e = err(&MC.replace("seed = 11\n", ""));
        assert!(e.contains("needs `seed = S`"), "{e}");
        let e = err("variant = 48\nsamples = 4\nseed = 1\n");
        assert!(e.contains("add [[random]] tables"), "{e}");
        let e = err(&MC.replace("samples = 3", "samples = 0"));
        assert!(e.contains("samples = 0: must be an integer ≥ 1"), "{e}");
        let e = err(&MC.replace("\"load_line.length_m\"", "\"load_line.cross_section_mm2\""));
        assert!(e.contains("is varied twice"), "{e}");
        let e = err(&format!("{MC}[plot]\nseries = \"load_line.length_m\"\n"));
        assert!(e.contains("series = \"load_line.length_m\" is not an axis"), "{e}");
        // a draw the model refuses names the case, the draw and the value
        let e = err(&MC.replace("min = 1.0", "min = -5.0"));
        assert!(e.contains("draw ") && e.contains("load_line.length_m = -"), "{e}");
    }
}
