//! A generic nonlinear least-squares solver and the uncertainty of its
//! optimum.
//!
//! [`levenberg_marquardt`] minimises `½‖r(θ)‖²` for any residual function
//! `r: ℝⁿ → ℝᵐ` (Marquardt's diagonal scaling, Nielsen's damping update,
//! central-difference Jacobian). [`uncertainty`] gives the standard errors
//! and correlations at the optimum. With white residuals (lag-1
//! autocorrelation `ρ ≤ 0`) the textbook `cov = s²·(JᵀJ)⁻¹`, `s² = Σr²/(m − n)`.
//! A time series of model errors is not white noise, and neither its
//! correlation nor its spread is the same at every sample: then the
//! Newey–West (HAC) sandwich
//!
//! ```text
//! cov = (JᵀJ)⁻¹ · S · (JᵀJ)⁻¹ · m/(m − n),   S = Σ_{|l| ≤ L} (1 − |l|/(L+1)) · Σ_t u_t·u_{t+l}ᵀ,   u_t = r_t·J_t
//! ```
//!
//! (Bartlett weights, all lags up to `L`), with Andrews' (1991) bandwidth
//! for an AR(1) of the residuals' lag-1 autocorrelation `ρ`:
//! `L = ⌈1.1447·(α·m)^⅓⌉`, `α = 4ρ²/((1 − ρ)²(1 + ρ)²)` (ρ = 0.98, m = 2000:
//! L ≈ 200 samples). `S` is computed as `Σ_s B_s·B_sᵀ/(L + 1)` over the
//! moving sums `B_s` of `L + 1` consecutive `u_t` (the Bartlett kernel is
//! two box windows convolved), in `O(m·n²)`. A standard error is never
//! below the textbook one. Directions the data do not determine (a singular
//! value of the column-scaled Jacobian below `1e-9` of the largest) give an
//! infinite standard error.

use nalgebra::{DMatrix, DVector, Dyn, SVD};

/// Settings of [`levenberg_marquardt`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LmOptions {
    /// Give up after this many iterations.
    pub max_iterations: usize,
    /// Converged when a step lowers the cost by less than this fraction.
    pub ftol: f64,
    /// Converged when a step is shorter than this fraction of ‖θ‖ (+ xtol).
    pub xtol: f64,
    /// Converged when every column of J is this close to orthogonal to r
    /// (the cosine of the angle).
    pub gtol: f64,
    /// Central-difference step, relative to `max(1, |θ_j|)`.
    pub diff_step: f64,
}

impl Default for LmOptions {
    fn default() -> Self {
        Self { max_iterations: 200, ftol: 1e-12, xtol: 1e-10, gtol: 1e-10, diff_step: 1e-6 }
    }
}

/// Why [`levenberg_marquardt`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The step became negligible.
    SmallStep,
    /// The cost stopped falling.
    SmallCostChange,
    /// The gradient vanished (or the residuals are zero).
    SmallGradient,
    /// No step, however damped, lowers the cost: a minimum to the
    /// precision of the finite differences.
    NoImprovement,
    /// `max_iterations` reached: not converged.
    MaxIterations,
}

impl Termination {
    /// Did the solver converge?
    pub fn converged(self) -> bool {
        self != Termination::MaxIterations
    }
}

/// The optimum [`levenberg_marquardt`] found.
#[derive(Clone, Debug)]
pub struct LmSolution {
    /// The parameters.
    pub theta: Vec<f64>,
    /// Residuals at `theta`.
    pub residuals: Vec<f64>,
    /// Jacobian of the residuals at `theta` (m × n).
    pub jacobian: DMatrix<f64>,
    /// `½‖r‖²`.
    pub cost: f64,
    /// Iterations done.
    pub iterations: usize,
    /// Why it stopped.
    pub termination: Termination,
}

/// A problem [`levenberg_marquardt`] cannot start on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LmError {
    /// Fewer residuals than parameters, or no parameter.
    #[error("{residuals} residuals cannot determine {parameters} parameters")]
    TooFewResiduals {
        /// Residuals given (`m`).
        residuals: usize,
        /// Parameters to determine (`n`).
        parameters: usize,
    },
    /// A residual, their cost or a derivative is not finite at the starting point.
    #[error("the model gives a non-finite residual at sample {index} at the starting point")]
    NonFiniteStart {
        /// 0-based index of the residual.
        index: usize,
    },
}

/// Minimises `½‖r(θ)‖²` from `theta0`. `residuals(θ, out)` writes the `m`
/// residuals into `out` (non-finite values make a trial step fail).
///
/// Returns the solution also when `max_iterations` is reached
/// ([`Termination::MaxIterations`]): the caller decides what that means.
pub fn levenberg_marquardt<F>(
    mut residuals: F,
    theta0: &[f64],
    m: usize,
    opts: &LmOptions,
) -> Result<LmSolution, LmError>
where
    F: FnMut(&[f64], &mut [f64]),
{
    let n = theta0.len();
    if m < n || n == 0 {
        return Err(LmError::TooFewResiduals { residuals: m, parameters: n });
    }
    let mut theta = theta0.to_vec();
    let mut r = vec![0.0; m];
    residuals(&theta, &mut r);
    if let Some(index) = r.iter().position(|v| !v.is_finite()) {
        return Err(LmError::NonFiniteStart { index });
    }
    let mut cost = half_norm2(&r);
    if !cost.is_finite() {
        // Finite residuals whose squares overflow.
        let index = r.iter().enumerate().max_by(|a, b| a.1.abs().total_cmp(&b.1.abs())).map_or(0, |(k, _)| k);
        return Err(LmError::NonFiniteStart { index });
    }
    let mut scratch = (vec![0.0; m], vec![0.0; m]);
    let mut jac = DMatrix::zeros(m, n);
    if !jacobian(&mut residuals, &theta, opts.diff_step, &mut jac, &mut scratch) {
        return Err(LmError::NonFiniteStart { index: 0 });
    }
    let mut trial = vec![0.0; m];
    let mut mu = 1e-3;
    let mut nu = 2.0;
    let mut iterations = 0;
    let finish = |theta: Vec<f64>, r: Vec<f64>, jac: DMatrix<f64>, cost: f64, iterations, termination| {
        Ok(LmSolution { theta, residuals: r, jacobian: jac, cost, iterations, termination })
    };
    loop {
        let jt_j = jac.tr_mul(&jac);
        let g = jac.tr_mul(&DVector::from_column_slice(&r));
        if cost == 0.0 || gradient_small(&jt_j, &g, cost, opts.gtol) {
            return finish(theta, r, jac, cost, iterations, Termination::SmallGradient);
        }
        let diag_max = (0..n).map(|j| jt_j[(j, j)]).fold(0.0, f64::max);
        let d: Vec<f64> = (0..n).map(|j| jt_j[(j, j)].max(1e-12 * diag_max).max(f64::MIN_POSITIVE)).collect();
        // Inner loop: damp until a step lowers the cost.
        loop {
            if iterations >= opts.max_iterations {
                return finish(theta, r, jac, cost, iterations, Termination::MaxIterations);
            }
            if mu > 1e30 {
                return finish(theta, r, jac, cost, iterations, Termination::NoImprovement);
            }
            iterations += 1;
            let mut a = jt_j.clone();
            for j in 0..n {
                a[(j, j)] += mu * d[j];
            }
            let Some(chol) = a.cholesky() else {
                mu *= nu;
                nu *= 2.0;
                continue;
            };
            let delta = chol.solve(&(-&g));
            let theta_norm = theta.iter().map(|v| v * v).sum::<f64>().sqrt();
            if delta.norm() <= opts.xtol * (theta_norm + opts.xtol) {
                return finish(theta, r, jac, cost, iterations, Termination::SmallStep);
            }
            let cand: Vec<f64> = theta.iter().zip(delta.iter()).map(|(t, s)| t + s).collect();
            residuals(&cand, &mut trial);
            let cand_cost = if trial.iter().all(|v| v.is_finite()) { half_norm2(&trial) } else { f64::INFINITY };
            let predicted = 0.5 * (delta.iter().zip(&d).map(|(s, dj)| mu * dj * s * s).sum::<f64>() - g.dot(&delta));
            let actual = cost - cand_cost;
            if actual > 0.0 && predicted > 0.0 {
                let rho = actual / predicted;
                theta = cand;
                std::mem::swap(&mut r, &mut trial);
                let small = actual <= opts.ftol * cost && predicted <= opts.ftol * cost;
                cost = cand_cost;
                if !jacobian(&mut residuals, &theta, opts.diff_step, &mut jac, &mut scratch) {
                    // A finite point with a non-finite neighbourhood: stop here.
                    return finish(theta, r, jac, cost, iterations, Termination::NoImprovement);
                }
                if small {
                    return finish(theta, r, jac, cost, iterations, Termination::SmallCostChange);
                }
                mu *= (1.0 - (2.0 * rho - 1.0).powi(3)).max(1.0 / 3.0);
                nu = 2.0;
                break;
            }
            mu *= nu;
            nu *= 2.0;
        }
    }
}

/// `½‖r‖²`: the cost of residuals `r`, as [`LmSolution::cost`].
pub fn half_norm2(r: &[f64]) -> f64 {
    0.5 * r.iter().map(|v| v * v).sum::<f64>()
}

/// MINPACK's gtol test: the largest cosine between r and a column of J.
fn gradient_small(jt_j: &DMatrix<f64>, g: &DVector<f64>, cost: f64, gtol: f64) -> bool {
    let r_norm = (2.0 * cost).sqrt();
    (0..g.len()).all(|j| {
        let col = jt_j[(j, j)].sqrt();
        col == 0.0 || (g[j] / (col * r_norm)).abs() <= gtol
    })
}

/// Central-difference Jacobian into `jac`; false if a residual is not finite.
fn jacobian<F: FnMut(&[f64], &mut [f64])>(
    f: &mut F,
    theta: &[f64],
    step: f64,
    jac: &mut DMatrix<f64>,
    (plus, minus): &mut (Vec<f64>, Vec<f64>),
) -> bool {
    let mut t = theta.to_vec();
    for j in 0..theta.len() {
        let h = step * theta[j].abs().max(1.0);
        t[j] = theta[j] + h;
        f(&t, plus);
        t[j] = theta[j] - h;
        f(&t, minus);
        t[j] = theta[j];
        for i in 0..plus.len() {
            let d = (plus[i] - minus[i]) / (2.0 * h);
            if !d.is_finite() {
                return false;
            }
            jac[(i, j)] = d;
        }
    }
    true
}

/// Standard errors and correlations of a least-squares optimum.
#[derive(Clone, Debug)]
pub struct Uncertainty {
    /// 1σ of each parameter (∞: not determined by the data).
    pub std_err: Vec<f64>,
    /// Correlation matrix (NaN where a standard error is infinite).
    pub correlation: DMatrix<f64>,
    /// `√(Σr²/(m − n))`.
    pub residual_sigma: f64,
    /// Lag-1 autocorrelation of the residuals (clamped to 0..0.99).
    pub lag1_autocorrelation: f64,
    /// Bandwidth `L` of the HAC sum (samples; 0: textbook errors).
    pub hac_lags: usize,
}

/// Andrews' (1991) plug-in bandwidth of the Bartlett kernel for an AR(1)
/// of coefficient `rho` over `m` samples (see the module doc); at most `m − 1`.
pub fn hac_bandwidth(rho: f64, m: usize) -> usize {
    if rho.is_nan() || rho <= 0.0 || m < 2 {
        return 0;
    }
    let alpha = 4.0 * rho * rho / ((1.0 - rho).powi(2) * (1.0 + rho).powi(2));
    let l = (1.1447 * (alpha * m as f64).cbrt()).ceil();
    (l as usize).min(m - 1)
}

/// `Σ_{|l| ≤ lags} (1 − |l|/(lags+1))·Σ_t u_t·u_{t+l}ᵀ` of the rows `u` of
/// `rows` (m × n), as the moving sums of `lags + 1` rows (module doc).
fn bartlett_long_run(rows: &DMatrix<f64>, lags: usize) -> DMatrix<f64> {
    let (m, n) = rows.shape();
    let mut s = DMatrix::<f64>::zeros(n, n);
    let mut block = DVector::<f64>::zeros(n);
    // Window [start, start + lags] for start = −lags ..= m − 1: add the row
    // entering, drop the one leaving.
    for end in 0..m + lags {
        if end < m {
            block += rows.row(end).transpose();
        }
        if end > lags {
            block -= rows.row(end - lags - 1).transpose();
        }
        s.ger(1.0, &block, &block, 1.0);
    }
    s / (lags + 1) as f64
}

/// Singular values below this fraction of the largest (column-scaled J)
/// are directions the data do not determine.
const RANK_TOLERANCE: f64 = 1e-9;

/// At most this many iterations of nalgebra's SVD (QR sweeps of the
/// bidiagonal form; a few per singular value converge a well-scaled matrix).
/// nalgebra's own `svd`/`pseudo_inverse` iterate without a bound.
const SVD_MAX_ITERATIONS: usize = 10_000;

/// The SVD of `m` (singular values in descending order when `sorted`), or
/// `None` where nalgebra's would panic or not return: an empty matrix, a
/// non-finite entry, or no convergence within [`SVD_MAX_ITERATIONS`]. With
/// `sorted`, the same decomposition as `m.svd(…)`, else as the one
/// `m.pseudo_inverse(…)` uses.
pub fn checked_svd(m: DMatrix<f64>, compute_u: bool, compute_v: bool, sorted: bool) -> Option<SVD<f64, Dyn, Dyn>> {
    if m.is_empty() || !m.iter().all(|v| v.is_finite()) {
        return None;
    }
    if sorted {
        SVD::try_new(m, compute_u, compute_v, f64::EPSILON, SVD_MAX_ITERATIONS)
    } else {
        SVD::try_new_unordered(m, compute_u, compute_v, f64::EPSILON, SVD_MAX_ITERATIONS)
    }
}

/// The pseudo-inverse of `m` (singular values up to `eps` taken as 0), or
/// `None` for a matrix [`checked_svd`] refuses or a negative `eps`.
pub fn pseudo_inverse(m: DMatrix<f64>, eps: f64) -> Option<DMatrix<f64>> {
    checked_svd(m, true, true, false)?.pseudo_inverse(eps).ok()
}

/// [`Uncertainty`] at `sol` (see the module doc). Never panics: without
/// parameters it is empty; a Jacobian with a non-finite entry (or one the
/// SVD cannot decompose) leaves every parameter undetermined.
pub fn uncertainty(sol: &LmSolution) -> Uncertainty {
    let (m, n) = sol.jacobian.shape();
    let r = &sol.residuals;
    let ss: f64 = r.iter().map(|v| v * v).sum();
    let dof = m.saturating_sub(n).max(1) as f64;
    let s2 = ss / dof;
    let lag: f64 = r.windows(2).map(|w| w[0] * w[1]).sum();
    let rho = if ss > 0.0 { (lag / ss).clamp(0.0, 0.99) } else { 0.0 };
    let lags = hac_bandwidth(rho, m);
    let scale: Vec<f64> = (0..n).map(|j| sol.jacobian.column(j).norm()).collect();
    let mut js = sol.jacobian.clone();
    for (j, &c) in scale.iter().enumerate() {
        if c > 0.0 {
            js.column_mut(j).scale_mut(1.0 / c);
        }
    }
    let mut undetermined: Vec<bool> = scale.iter().map(|&c| !(c > 0.0 && c.is_finite())).collect();
    let mut cs = DMatrix::<f64>::zeros(n, n);
    let svd = checked_svd(js, false, true, true);
    let sigma_max = svd.as_ref().map_or(0.0, |s| s.singular_values.iter().copied().fold(0.0, f64::max));
    if let Some((svd, v_t)) = svd.as_ref().and_then(|s| Some((s, s.v_t.as_ref()?))) {
        for (i, &sv) in svd.singular_values.iter().enumerate() {
            let v = v_t.row(i).transpose();
            if sv > RANK_TOLERANCE * sigma_max && sv > 0.0 {
                cs += &v * v.transpose() / (sv * sv);
            } else {
                for j in 0..n {
                    if v[j].abs() > 1e-3 {
                        undetermined[j] = true;
                    }
                }
            }
        }
    } else {
        undetermined.iter_mut().for_each(|u| *u = true);
    }
    // The sandwich in the column-scaled parameters: cs·S·cs, S from u_t = r_t·Js_t.
    let sandwich = (lags > 0 && m > 0 && n > 0 && r.iter().all(|v| v.is_finite())).then(|| {
        let mut js = sol.jacobian.clone();
        for (j, &c) in scale.iter().enumerate() {
            js.column_mut(j).scale_mut(if c > 0.0 && c.is_finite() { 1.0 / c } else { 0.0 });
        }
        for (i, &ri) in r.iter().enumerate() {
            js.row_mut(i).scale_mut(ri);
        }
        let long_run = bartlett_long_run(&js, lags);
        &cs * long_run * &cs * (m as f64 / dof)
    });
    let mut std_err = vec![f64::INFINITY; n];
    let mut cov = DMatrix::<f64>::zeros(n, n);
    for a in 0..n {
        for b in 0..n {
            if !undetermined[a] && !undetermined[b] {
                let c = sandwich.as_ref().map_or(s2 * cs[(a, b)], |w| w[(a, b)]);
                cov[(a, b)] = c / (scale[a] * scale[b]);
            }
        }
        if !undetermined[a] {
            // Never below the textbook error.
            let textbook = s2 * cs[(a, a)] / (scale[a] * scale[a]);
            cov[(a, a)] = cov[(a, a)].max(textbook);
            std_err[a] = cov[(a, a)].max(0.0).sqrt();
        }
    }
    let correlation = DMatrix::from_fn(n, n, |a, b| {
        if undetermined[a] || undetermined[b] {
            f64::NAN
        } else if a == b {
            1.0
        } else {
            cov[(a, b)] / (std_err[a] * std_err[b])
        }
    });
    Uncertainty { std_err, correlation, residual_sigma: s2.sqrt(), lag1_autocorrelation: rho, hac_lags: lags }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_problem_matches_the_normal_equations_and_textbook_errors() {
        // y = a + b·x with a deterministic ±e "noise" alternating in sign
        // (negative lag-1 autocorrelation: no inflation).
        let xs: Vec<f64> = (0..20).map(f64::from).collect();
        let e = 0.1;
        let ys: Vec<f64> =
            xs.iter().enumerate().map(|(i, x)| 2.0 + 0.5 * x + if i % 2 == 0 { e } else { -e }).collect();
        let sol = levenberg_marquardt(
            |t, out| {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = t[0] + t[1] * xs[i] - ys[i];
                }
            },
            &[0.0, 0.0],
            xs.len(),
            &LmOptions::default(),
        )
        .unwrap();
        assert!(sol.termination.converged());
        // Closed form: b = Sxy/Sxx, a = ȳ − b·x̄.
        let n = xs.len() as f64;
        let xm = xs.iter().sum::<f64>() / n;
        let ym = ys.iter().sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - xm).powi(2)).sum();
        let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - xm) * (y - ym)).sum();
        let b = sxy / sxx;
        let a = ym - b * xm;
        assert!((sol.theta[0] - a).abs() < 1e-9 && (sol.theta[1] - b).abs() < 1e-9, "{:?}", sol.theta);
        // se(b) = s/√Sxx, se(a) = s·√(1/n + x̄²/Sxx), s² = SSR/(n − 2).
        let ssr: f64 = xs.iter().zip(&ys).map(|(x, y)| (a + b * x - y).powi(2)).sum();
        let s = (ssr / (n - 2.0)).sqrt();
        let unc = uncertainty(&sol);
        assert_eq!(unc.lag1_autocorrelation, 0.0);
        assert!((unc.std_err[1] / (s / sxx.sqrt()) - 1.0).abs() < 1e-6, "{:?}", unc.std_err);
        assert!((unc.std_err[0] / (s * (1.0 / n + xm * xm / sxx).sqrt()) - 1.0).abs() < 1e-6);
        // corr(a, b) = −x̄ / √(Sxx/n + x̄²)
        let corr = -xm / (sxx / n + xm * xm).sqrt();
        assert!((unc.correlation[(0, 1)] - corr).abs() < 1e-6, "{}", unc.correlation[(0, 1)]);
    }

    #[test]
    fn correlated_residuals_inflate_the_errors() {
        // The same line with a slow sine as the "noise": ρ ≈ 1 − small.
        let xs: Vec<f64> = (0..200).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 1.0 + 0.1 * x + 0.05 * (x / 15.0).sin()).collect();
        let sol = levenberg_marquardt(
            |t, out| out.iter_mut().enumerate().for_each(|(i, o)| *o = t[0] + t[1] * xs[i] - ys[i]),
            &[0.0, 0.0],
            xs.len(),
            &LmOptions::default(),
        )
        .unwrap();
        let unc = uncertainty(&sol);
        let rho = unc.lag1_autocorrelation;
        assert!(rho > 0.9, "{rho}");
        let n = xs.len() as f64;
        let xm = xs.iter().sum::<f64>() / n;
        let sxx: f64 = xs.iter().map(|x| (x - xm).powi(2)).sum();
        let white = unc.residual_sigma / sxx.sqrt();
        assert!(unc.std_err[1] > white, "{} vs white {white}", unc.std_err[1]);
        // The Newey–West sandwich written out lag by lag.
        let lags = hac_bandwidth(rho, xs.len());
        assert_eq!(unc.hac_lags, lags);
        assert!(lags > 20 && lags < xs.len(), "{lags}");
        let r = &sol.residuals;
        let jac = &sol.jacobian;
        let mut s = DMatrix::<f64>::zeros(2, 2);
        for l in 0..=lags {
            let w = 1.0 - l as f64 / (lags + 1) as f64;
            for t in 0..xs.len() - l {
                let (u, v) = (jac.row(t).transpose() * r[t], jac.row(t + l).transpose() * r[t + l]);
                s += w * (&u * v.transpose());
                if l > 0 {
                    s += w * (&v * u.transpose());
                }
            }
        }
        let a_inv = (jac.transpose() * jac).try_inverse().unwrap();
        let cov = &a_inv * s * &a_inv * (n / (n - 2.0));
        for k in 0..2 {
            assert!((unc.std_err[k] / cov[(k, k)].sqrt() - 1.0).abs() < 1e-6, "{k}: {:?} vs {cov}", unc.std_err);
        }
        let corr = cov[(0, 1)] / (cov[(0, 0)] * cov[(1, 1)]).sqrt();
        assert!((unc.correlation[(0, 1)] - corr).abs() < 1e-6);
    }

    #[test]
    fn hac_bandwidth_follows_the_autocorrelation() {
        assert_eq!(hac_bandwidth(0.0, 1000), 0);
        assert_eq!(hac_bandwidth(f64::NAN, 1000), 0);
        assert_eq!(hac_bandwidth(0.5, 1), 0);
        // ρ = 0.98 over 2000 samples: α = 2450, L = ⌈1.1447·(4.9e6)^⅓⌉ = 195.
        assert_eq!(hac_bandwidth(0.98, 2000), 195);
        assert_eq!(hac_bandwidth(0.99, 50), 49, "at most m − 1");
        assert!(hac_bandwidth(0.5, 1000) < hac_bandwidth(0.9, 1000));
    }

    #[test]
    fn exponential_decay_from_a_far_start() {
        // y = A·exp(−t/τ), A = 3, τ = 7, fitted as (A, ln τ) from (1, ln 1).
        let ts: Vec<f64> = (0..40).map(|k| 0.5 * f64::from(k)).collect();
        let ys: Vec<f64> = ts.iter().map(|t| 3.0 * (-t / 7.0).exp()).collect();
        let sol = levenberg_marquardt(
            |p, out| out.iter_mut().enumerate().for_each(|(i, o)| *o = p[0] * (-ts[i] / p[1].exp()).exp() - ys[i]),
            &[1.0, 0.0],
            ts.len(),
            &LmOptions::default(),
        )
        .unwrap();
        assert!(sol.termination.converged(), "{:?}", sol.termination);
        assert!((sol.theta[0] - 3.0).abs() < 1e-8 && (sol.theta[1].exp() - 7.0).abs() < 1e-7, "{:?}", sol.theta);
    }

    #[test]
    fn rosenbrock_valley() {
        let sol = levenberg_marquardt(
            |p, out| {
                out[0] = 10.0 * (p[1] - p[0] * p[0]);
                out[1] = 1.0 - p[0];
            },
            &[-1.2, 1.0],
            2,
            &LmOptions::default(),
        )
        .unwrap();
        assert!((sol.theta[0] - 1.0).abs() < 1e-8 && (sol.theta[1] - 1.0).abs() < 1e-8, "{:?}", sol.theta);
    }

    #[test]
    fn undetermined_directions_have_infinite_errors() {
        // y = (a + b)·x: only a + b is determined; c is.
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        let sol = levenberg_marquardt(
            |p, out| out.iter_mut().enumerate().for_each(|(i, o)| *o = (p[0] + p[1]) * xs[i] + p[2] - 2.0 * xs[i]),
            &[0.5, 0.5, 1.0],
            xs.len(),
            &LmOptions::default(),
        )
        .unwrap();
        let unc = uncertainty(&sol);
        assert!(unc.std_err[0].is_infinite() && unc.std_err[1].is_infinite(), "{:?}", unc.std_err);
        assert!(unc.std_err[2].is_finite());
        assert!(unc.correlation[(0, 2)].is_nan());
    }

    #[test]
    fn bad_calls_are_errors_not_panics() {
        let e = levenberg_marquardt(|_, _| {}, &[1.0, 2.0], 1, &LmOptions::default()).unwrap_err();
        assert!(matches!(e, LmError::TooFewResiduals { residuals: 1, parameters: 2 }), "{e}");
        let e = levenberg_marquardt(|_, o| o[1] = f64::NAN, &[1.0], 3, &LmOptions::default()).unwrap_err();
        assert_eq!(e, LmError::NonFiniteStart { index: 1 });
        // Finite residuals whose cost overflows.
        let e = levenberg_marquardt(|_, o| o.copy_from_slice(&[1.0, -1e200, 0.0]), &[1.0], 3, &LmOptions::default())
            .unwrap_err();
        assert_eq!(e, LmError::NonFiniteStart { index: 1 });
        let opts = LmOptions { max_iterations: 1, ..LmOptions::default() };
        let sol = levenberg_marquardt(
            |p, out| {
                out[0] = 10.0 * (p[1] - p[0] * p[0]);
                out[1] = 1.0 - p[0];
            },
            &[-1.2, 1.0],
            2,
            &opts,
        )
        .unwrap();
        assert_eq!(sol.termination, Termination::MaxIterations);
    }

    /// A solution of `n` parameters with Jacobian `jac` and residuals `r`.
    fn solution(jac: DMatrix<f64>, r: Vec<f64>) -> LmSolution {
        LmSolution {
            theta: vec![0.0; jac.ncols()],
            cost: half_norm2(&r),
            residuals: r,
            jacobian: jac,
            iterations: 0,
            termination: Termination::SmallGradient,
        }
    }

    #[test]
    fn issue_21_degenerate_matrices_are_refused_not_panicked_on() {
        // nalgebra's SVD asserts on an empty matrix ("Cannot compute the SVD of
        // an empty matrix") and iterates without bound on NaN.
        assert!(checked_svd(DMatrix::zeros(0, 0), true, true, true).is_none());
        assert!(checked_svd(DMatrix::zeros(5, 0), false, true, true).is_none());
        assert!(checked_svd(DMatrix::from_element(2, 2, f64::NAN), true, true, false).is_none());
        assert!(checked_svd(DMatrix::from_row_slice(1, 2, &[1.0, f64::INFINITY]), true, true, false).is_none());
        assert!(pseudo_inverse(DMatrix::zeros(0, 0), 0.0).is_none());
        assert!(pseudo_inverse(DMatrix::identity(2, 2), -1.0).is_none(), "a negative eps");
        // Singular but finite: the pseudo-inverse of [[1, 1], [1, 1]] is [[¼, ¼], [¼, ¼]].
        let inv = pseudo_inverse(DMatrix::from_element(2, 2, 1.0), 1e-12).unwrap();
        assert!(inv.iter().all(|v| (v - 0.25).abs() < 1e-12), "{inv}");
        // The same decomposition as nalgebra's where nalgebra's works.
        let m = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0]);
        let ours = checked_svd(m.clone(), false, true, true).unwrap();
        assert_eq!(ours.singular_values, m.clone().svd(false, true).singular_values);
        assert_eq!(pseudo_inverse(m.clone(), 1e-12).unwrap(), m.pseudo_inverse(1e-12).unwrap());
    }

    #[test]
    fn issue_21_uncertainty_of_degenerate_solutions() {
        // No parameter: nothing to report, no SVD of a 10 × 0 matrix.
        let u = uncertainty(&solution(DMatrix::zeros(10, 0), vec![0.1; 10]));
        assert!(u.std_err.is_empty() && u.correlation.is_empty());
        assert!(u.residual_sigma.is_finite());
        // No residual: every parameter undetermined.
        let u = uncertainty(&solution(DMatrix::zeros(0, 2), Vec::new()));
        assert_eq!(u.std_err, [f64::INFINITY; 2]);
        // A non-finite Jacobian: undetermined, not a hang.
        let mut jac = DMatrix::from_element(6, 2, 1.0);
        jac[(3, 1)] = f64::NAN;
        let u = uncertainty(&solution(jac, vec![0.01; 6]));
        assert!(u.std_err.iter().all(|s| s.is_infinite()), "{:?}", u.std_err);
        assert!(u.correlation.iter().all(|c| c.is_nan()));
        // A zero column (a parameter with no effect) and a singular pair.
        let jac = DMatrix::from_fn(8, 3, |i, j| match j {
            0 => 0.0,
            _ => 1.0 + i as f64,
        });
        let u = uncertainty(&solution(jac, (0..8).map(|i| 1e-3 * f64::from(i % 2)).collect()));
        assert!(u.std_err.iter().all(|s| s.is_infinite()), "{:?}", u.std_err);
    }
}
