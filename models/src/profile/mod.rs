//! Current profiles from CSV text (drive cycles, test sequences).
//!
//! ```text
//! time_s,current_A        # header optional; columns found by name, any order, others ignored
//! 0,0
//! 10,-20                  # + = charge, − = discharge (the project's convention)
//! 20,0
//! ```
//!
//! Lines that are empty or start with `#` are skipped. Times must not
//! decrease; two rows may share a time (a jump). Before the first row the
//! current is the first row's, after the last the last row's. Between rows
//! the current is either held ([`Interpolation::Hold`]: each row holds
//! until the next) or interpolated linearly ([`Interpolation::Linear`],
//! what PyBaMM does with a drive-cycle `Interpolant`). Tools that count
//! discharge as positive (PyBaMM) need the column negated, or
//! [`CurrentProfile::negated`].
//!
//! [`builtin`]: the one-hour profiles the pack model is timed on.

pub mod builtin;

/// How the current varies between rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Each row's current holds until the next row's time.
    #[default]
    Hold,
    /// Linear between rows.
    Linear,
}

/// A CSV profile that cannot be used: the line (1-based) and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ProfileError {
    /// 1-based line number (0: the profile as a whole).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// A current profile: rows of (time_s, current_a).
#[derive(Clone, Debug, PartialEq)]
pub struct CurrentProfile {
    time_s: Vec<f64>,
    current_a: Vec<f64>,
    interpolation: Interpolation,
}

impl CurrentProfile {
    /// Parses CSV text (see the module doc).
    pub fn from_csv(text: &str, interpolation: Interpolation) -> Result<Self, ProfileError> {
        let err = |line: usize, message: String| ProfileError { line, message };
        let mut cols: Option<(usize, usize)> = None;
        let mut time_s = Vec::new();
        let mut current_a: Vec<f64> = Vec::new();
        for (k, raw) in text.lines().enumerate() {
            let line_no = k + 1;
            let line = raw.trim().trim_start_matches('\u{feff}');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split([',', ';', '\t']).map(str::trim).collect();
            if cols.is_none() && fields.iter().any(|f| f.parse::<f64>().is_err()) {
                let find = |names: &[&str]| {
                    fields.iter().position(|f| {
                        let f = f.trim_matches('"').to_ascii_lowercase();
                        names.iter().any(|n| f == *n)
                    })
                };
                let t = find(&["time_s", "time [s]", "time", "t_s", "t"]);
                let i = find(&["current_a", "current [a]", "current", "i_a", "i"]);
                match (t, i) {
                    (Some(t), Some(i)) => cols = Some((t, i)),
                    _ => {
                        return Err(err(line_no, format!("header {line:?} must name columns time_s and current_A")));
                    }
                }
                continue;
            }
            let (ct, ci) = *cols.get_or_insert((0, 1));
            let get = |c: usize, what: &str| -> Result<f64, ProfileError> {
                let f = fields.get(c).ok_or_else(|| err(line_no, format!("no {what} column")))?;
                let v: f64 = f.parse().map_err(|_| err(line_no, format!("{what} {f:?} is not a number")))?;
                if v.is_finite() { Ok(v) } else { Err(err(line_no, format!("{what} {f:?} is not finite"))) }
            };
            let t = get(ct, "time")?;
            let i = get(ci, "current")?;
            if let Some(&prev) = time_s.last() {
                if t < prev {
                    return Err(err(line_no, format!("time {t} s is before the previous row's {prev} s")));
                }
                let n = time_s.len();
                if n >= 2 && t == prev && time_s[n - 2] == prev {
                    return Err(err(line_no, format!("more than two rows at time {t} s")));
                }
            } else if t < 0.0 {
                return Err(err(line_no, format!("time {t} s is negative")));
            }
            time_s.push(t);
            current_a.push(i);
        }
        if time_s.is_empty() {
            return Err(err(0, "no data rows".into()));
        }
        Ok(Self { time_s, current_a, interpolation })
    }

    /// A profile from rows (time_s, current_a), times non-decreasing.
    pub fn from_rows(rows: &[(f64, f64)], interpolation: Interpolation) -> Result<Self, ProfileError> {
        let text: String = rows.iter().map(|(t, i)| format!("{t},{i}\n")).collect();
        Self::from_csv(&text, interpolation)
    }

    /// The same profile with the sign of the current flipped (for data
    /// where + = discharge).
    pub fn negated(mut self) -> Self {
        for i in &mut self.current_a {
            *i = -*i;
        }
        self
    }

    /// Time of the last row (s).
    pub fn end_s(&self) -> f64 {
        self.time_s[self.time_s.len() - 1]
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.time_s.len()
    }

    /// `false`: a parsed profile has at least one row.
    pub fn is_empty(&self) -> bool {
        self.time_s.is_empty()
    }

    /// The rows (time_s, current_a).
    pub fn rows(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.time_s.iter().copied().zip(self.current_a.iter().copied())
    }

    /// Index of the last row with time ≤ `t` (0 before the first), walking
    /// from `hint`.
    fn row_at(&self, t: f64, hint: usize) -> usize {
        let n = self.time_s.len();
        let mut k = hint.min(n - 1);
        while k > 0 && self.time_s[k] > t {
            k -= 1;
        }
        while k + 1 < n && self.time_s[k + 1] <= t {
            k += 1;
        }
        k
    }

    /// Current at time `t_s` (A). `hint` keeps the row found last: pass the
    /// same variable on every call of a sequential run for O(1) lookups.
    pub fn current_a(&self, t_s: f64, hint: &mut usize) -> f64 {
        let k = self.row_at(t_s, *hint);
        *hint = k;
        match self.interpolation {
            Interpolation::Hold => self.current_a[k],
            Interpolation::Linear => {
                if t_s <= self.time_s[0] || k + 1 >= self.time_s.len() {
                    return self.current_a[k];
                }
                let (t0, t1) = (self.time_s[k], self.time_s[k + 1]);
                let f = (t_s - t0) / (t1 - t0);
                self.current_a[k] + f * (self.current_a[k + 1] - self.current_a[k])
            }
        }
    }

    /// Current on the piece that starts at row `k`, at `t` (no row change).
    fn on_piece(&self, k: usize, t: f64) -> f64 {
        let n = self.time_s.len();
        match self.interpolation {
            Interpolation::Linear if k + 1 < n && t > self.time_s[k] => {
                let (t0, t1) = (self.time_s[k], self.time_s[k + 1]);
                let f = ((t - t0) / (t1 - t0)).min(1.0);
                self.current_a[k] + f * (self.current_a[k + 1] - self.current_a[k])
            }
            _ => self.current_a[k],
        }
    }

    /// Charge from `t0_s` to `t1_s` (C = A·s), exact for the interpolation.
    pub fn charge_c(&self, t0_s: f64, t1_s: f64, hint: &mut usize) -> f64 {
        if t1_s <= t0_s {
            return 0.0;
        }
        let n = self.time_s.len();
        let mut k = self.row_at(t0_s, *hint);
        let mut a = t0_s;
        let mut q = 0.0;
        loop {
            // The piece from `a` runs to the next row's time (or forever).
            let next = if a < self.time_s[0] {
                self.time_s[0]
            } else if k + 1 < n {
                self.time_s[k + 1]
            } else {
                f64::INFINITY
            };
            let b = next.min(t1_s);
            if a < self.time_s[0] {
                q += self.current_a[0] * (b - a);
            } else {
                q += 0.5 * (self.on_piece(k, a) + self.on_piece(k, b)) * (b - a);
            }
            if b >= t1_s {
                break;
            }
            a = b;
            k = self.row_at(a, k);
        }
        *hint = k;
        q
    }

    /// Mean current over `[t0_s, t1_s]` (A): what a model stepped once over
    /// that interval should be given so its charge is exact.
    pub fn mean_current_a(&self, t0_s: f64, t1_s: f64, hint: &mut usize) -> f64 {
        if t1_s <= t0_s {
            return self.current_a(t0_s, hint);
        }
        self.charge_c(t0_s, t1_s, hint) / (t1_s - t0_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PULSES: &str = "# a pulse train\ntime_s,current_A\n0,-20\n10,0\n20,-20\n30,0\n";

    #[test]
    fn parses_header_comments_and_holds() {
        let p = CurrentProfile::from_csv(PULSES, Interpolation::Hold).unwrap();
        assert_eq!(p.len(), 4);
        let mut h = 0;
        assert_eq!(p.current_a(5.0, &mut h), -20.0);
        assert_eq!(p.current_a(10.0, &mut h), 0.0);
        assert_eq!(p.current_a(25.0, &mut h), -20.0);
        assert_eq!(p.current_a(99.0, &mut h), 0.0);
        assert_eq!(p.current_a(2.0, &mut h), -20.0);
        assert_eq!(p.charge_c(0.0, 40.0, &mut 0), -400.0);
        assert_eq!(p.mean_current_a(5.0, 15.0, &mut 0), -10.0);
    }

    #[test]
    fn columns_by_name_and_linear() {
        let text = "current_a;time_s;note\n0;0;a\n10;10;b\n";
        let p = CurrentProfile::from_csv(text, Interpolation::Linear).unwrap();
        let mut h = 0;
        assert_eq!(p.current_a(2.5, &mut h), 2.5);
        assert!((p.charge_c(0.0, 10.0, &mut 0) - 50.0).abs() < 1e-12);
        assert!((p.charge_c(2.0, 4.0, &mut 0) - 6.0).abs() < 1e-12);
        assert!((p.charge_c(5.0, 20.0, &mut 0) - (37.5 + 100.0)).abs() < 1e-12);
        // a jump: two rows at the same time
        let j = CurrentProfile::from_rows(&[(0.0, 0.0), (1.0, 0.0), (1.0, 5.0), (2.0, 5.0)], Interpolation::Linear)
            .unwrap();
        assert!((j.charge_c(0.0, 2.0, &mut 0) - 5.0).abs() < 1e-12);
        assert_eq!(j.current_a(1.5, &mut 0), 5.0);
    }

    #[test]
    fn headerless_and_errors_name_the_line() {
        assert!(CurrentProfile::from_csv("0,1\n1,2\n", Interpolation::Hold).is_ok());
        let e = CurrentProfile::from_csv("time_s,current_A\n0,1\n2,x\n", Interpolation::Hold).unwrap_err();
        assert_eq!(e.line, 3);
        let e = CurrentProfile::from_csv("0,1\n2,1\n1,1\n", Interpolation::Hold).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.to_string().contains("before"), "{e}");
        let e = CurrentProfile::from_csv("t,volts\n", Interpolation::Hold).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(CurrentProfile::from_csv("# nothing\n", Interpolation::Hold).is_err());
        let p = CurrentProfile::from_csv("0,1\n", Interpolation::Hold).unwrap().negated();
        assert_eq!(p.current_a(0.0, &mut 0), -1.0);
    }

    #[test]
    fn mean_current_makes_coarse_steps_charge_exact() {
        let p = CurrentProfile::from_rows(&[(0.0, 0.0), (0.3, -7.0), (1.7, 3.0), (2.2, 0.0)], Interpolation::Linear)
            .unwrap();
        let fine: f64 = (0..3000).map(|k| p.current_a((f64::from(k) + 0.5) * 1e-3, &mut 0) * 1e-3).sum();
        let mut h = 0;
        let coarse: f64 = (0..3).map(|k| p.mean_current_a(f64::from(k), f64::from(k + 1), &mut h)).sum();
        assert!((fine - coarse).abs() < 1e-6, "{fine} vs {coarse}");
    }
}
