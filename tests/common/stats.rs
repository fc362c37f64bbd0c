//! The statistical rules of the sampler tests, shared (tests/stochastic_samplers.rs explains
//! them; docs/stochastic.md, "How the tests judge samples"):
//!
//! * distances (SW1, mean error, covariance error, weight TV) may reach `FLOOR_FACTOR ×` the
//!   largest value over 8 exact batches of the same size (`Reference::noise_floor`);
//! * the log-likelihood gap must lie within `GAP_SDS` floor standard deviations of the floor
//!   mean, after adding the sampler's *known* discretisation bias, which is computed (not
//!   fitted) by a per-eigen-direction Gaussian recursion of the sampler's linear update for
//!   each mixture component ([`predicted_gap`]).

use ndarray::{Array1, Array2, Axis};
use score_sde::gmm::GaussianMixture;
use score_sde::metrics::{Reference, Report};
use score_sde::schedule::Schedule;

/// Distances may reach this multiple of their largest floor value over 8 seeds.
pub const FLOOR_FACTOR: f64 = 2.0;
/// The gap may deviate this many floor standard deviations from the floor mean.
pub const GAP_SDS: f64 = 4.0;

/// The largest value of each distance over the floor seeds, and the gap's mean and sd.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    pub sw1: f64,
    pub mean_err: f64,
    pub cov_err: f64,
    pub weight_tv: f64,
    pub gap_mean: f64,
    pub gap_sd: f64,
}

pub fn floor_of(reference: &Reference, n: usize) -> Floor {
    let seeds: Vec<u64> = (1000..1008).collect();
    let reps = reference.noise_floor(n, &seeds).unwrap();
    let max = |f: fn(&Report) -> f64| reps.iter().map(f).fold(0.0, f64::max);
    let gaps: Vec<f64> = reps.iter().map(|r| r.loglik_gap).collect();
    let m = gaps.iter().sum::<f64>() / gaps.len() as f64;
    let sd = (gaps.iter().map(|g| (g - m).powi(2)).sum::<f64>() / (gaps.len() - 1) as f64).sqrt();
    Floor {
        sw1: max(|r| r.sw1),
        mean_err: max(|r| r.mean_err),
        cov_err: max(|r| r.cov_err_fro),
        weight_tv: max(|r| r.weight_tv),
        gap_mean: m,
        gap_sd: sd,
    }
}

/// Check every metric of `samples` against the floor; `gap_bias` is the allowed systematic
/// gap beyond `GAP_SDS` floor sds (the bias model's own slack).
pub fn check_against(
    what: &str,
    reference: &Reference,
    fl: &Floor,
    samples: &Array2<f64>,
    gap_bias: f64,
) -> Result<Report, String> {
    let r = reference.evaluate(samples.view()).unwrap();
    // The gap is a mean of log p_0 over the samples; its standard error is the floor's for
    // exact samples, but an over-dispersed sampler's log p_0 spreads wider (a heavier left
    // tail), so its own standard error can be larger: use the larger of the two.
    let finite: Vec<usize> = (0..samples.nrows())
        .filter(|&i| samples.row(i).iter().all(|v| v.is_finite()))
        .collect();
    let lp = reference
        .p0()
        .log_prob(samples.select(Axis(0), &finite).view())
        .unwrap();
    let own_se = lp.std(1.0) / (lp.len().max(1) as f64).sqrt();
    let gap_tol = GAP_SDS * fl.gap_sd.max(own_se) + gap_bias;
    println!(
        "{what:<48} sw1 {:.4} ({:.4})  mean {:.4} ({:.4})  cov {:.4} ({:.4})  tv {:.4} ({:.4})  gap {:+.4} (floor {:+.4} ± {:.4}, own SE {own_se:.4}, tol {:.4})",
        r.sw1,
        FLOOR_FACTOR * fl.sw1,
        r.mean_err,
        FLOOR_FACTOR * fl.mean_err,
        r.cov_err_fro,
        FLOOR_FACTOR * fl.cov_err,
        r.weight_tv,
        FLOOR_FACTOR * fl.weight_tv,
        r.loglik_gap,
        fl.gap_mean,
        fl.gap_sd,
        gap_tol
    );
    let mut bad = Vec::new();
    if r.nonfinite > 0 {
        bad.push(format!("{} non-finite rows", r.nonfinite));
    }
    if r.sw1 > FLOOR_FACTOR * fl.sw1 {
        bad.push(format!("sw1 {:.4}", r.sw1));
    }
    if r.mean_err > FLOOR_FACTOR * fl.mean_err {
        bad.push(format!("mean_err {:.4}", r.mean_err));
    }
    if r.cov_err_fro > FLOOR_FACTOR * fl.cov_err {
        bad.push(format!("cov_err {:.4}", r.cov_err_fro));
    }
    if r.weight_tv > FLOOR_FACTOR * fl.weight_tv {
        bad.push(format!("weight_tv {:.4}", r.weight_tv));
    }
    if (r.loglik_gap - fl.gap_mean).abs() > gap_tol {
        bad.push(format!("loglik_gap {:+.4}", r.loglik_gap));
    }
    if bad.is_empty() {
        Ok(r)
    } else {
        Err(format!("{what}: {}", bad.join(", ")))
    }
}

/// Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations (test-only, small D).
pub fn sym_eigen(a: &Array2<f64>) -> (Vec<f64>, Array2<f64>) {
    let n = a.nrows();
    let mut a = a.clone();
    let mut v = Array2::<f64>::eye(n);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[[i, j]].powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                if a[[p, q]].abs() < 1e-300 {
                    continue;
                }
                let theta = (a[[q, q]] - a[[p, p]]) / (2.0 * a[[p, q]]);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let (c, s) = (1.0 / (t * t + 1.0).sqrt(), t / (t * t + 1.0).sqrt());
                for k in 0..n {
                    let (akp, akq) = (a[[k, p]], a[[k, q]]);
                    a[[k, p]] = c * akp - s * akq;
                    a[[k, q]] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[[p, k]], a[[q, k]]);
                    a[[p, k]] = c * apk - s * aqk;
                    a[[q, k]] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[[k, p]], v[[k, q]]);
                    v[[k, p]] = c * vkp - s * vkq;
                    v[[k, q]] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[[i, i]]).collect(), v)
}

/// One linear-Gaussian step in an eigen-direction of a component: `x' = m x + q μ + √nv z`.
pub type StepFn<'a> = dyn Fn(usize, f64, f64) -> (f64, f64, f64) + 'a;

/// The log-likelihood gap a sampler would have if every mixture component were alone:
/// per eigen-direction (eigenvalue λ, mean coordinate μ) of each component, propagate the
/// mean and variance of the sampler's linear update (`step(i, λ, μ) = (m, q, nv)`) from
/// `(mean0 · μ, var0)`, and compare `E[(x − μ)²]/λ` with the exact law's
/// `N(a_end μ, a_end² λ + s_end²)`. This is the sampler's *known discretisation bias*.
/// Mode-weight effects are not modelled.
pub fn predicted_gap(
    p0: &GaussianMixture<f64>,
    steps: usize,
    step: &StepFn,
    (mean0, var0): (f64, f64),
    (a_end, s_end): (f64, f64),
) -> f64 {
    let mut gap = 0.0;
    for k in 0..p0.n_components() {
        let (lam, u) = sym_eigen(&p0.covs().index_axis(Axis(0), k).to_owned());
        let mu = u.t().dot(&p0.means().row(k));
        let mut g = 0.0;
        for j in 0..lam.len() {
            let (mut m, mut v) = (mean0 * mu[j], var0);
            for i in 0..steps {
                let (a, q, nv) = step(i, lam[j], mu[j]);
                m = a * m + q * mu[j];
                v = a * a * v + nv;
            }
            let exact = (a_end * mu[j] - mu[j]).powi(2) + a_end * a_end * lam[j] + s_end * s_end;
            g += 0.5 * ((m - mu[j]).powi(2) + v - exact) / lam[j];
        }
        gap += p0.weights()[k] * g;
    }
    gap
}

/// `‖E x − E_{p_eps} x‖₂` a sampler would have if every mixture component were alone: the
/// same per-eigen-direction mean recursion as [`predicted_gap`], the components' mean shifts
/// rotated back and weighted (zero for an unbiased sampler).
pub fn predicted_mean_shift(
    p0: &GaussianMixture<f64>,
    steps: usize,
    step: &StepFn,
    mean0: f64,
    a_end: f64,
) -> f64 {
    let mut shift = Array1::<f64>::zeros(p0.dim());
    for k in 0..p0.n_components() {
        let (lam, u) = sym_eigen(&p0.covs().index_axis(Axis(0), k).to_owned());
        let mu = u.t().dot(&p0.means().row(k));
        let mut dm = Array1::<f64>::zeros(lam.len());
        for j in 0..lam.len() {
            let mut m = mean0 * mu[j];
            for i in 0..steps {
                let (a, q, _) = step(i, lam[j], mu[j]);
                m = a * m + q * mu[j];
            }
            dm[j] = m - a_end * mu[j];
        }
        shift.scaled_add(p0.weights()[k], &u.dot(&dm));
    }
    shift.dot(&shift).sqrt()
}

/// Which reverse step a linear recursion models (the predictors of `score_sde::sample`, plus
/// DDPM's two variances).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepKind {
    /// `x − [f x − g² s] h + g √h z`.
    EulerMaruyama,
    /// `(2 − a) x + v s + √v z` (exact transition `a`, `v` over the step).
    ReverseDiffusion,
    /// `(x + v s)/a + σ_{t'} √v/σ_t z` (variance β̃).
    Ancestral,
    /// `(x + v s)/a + √v z` (DDPM with σ² = β).
    AncestralBeta,
}

/// The coefficients `(m, q, nv)` of one reverse step from `t` to `tn` on a Gaussian
/// component of eigenvalue `lam` under `sch`: with `v_t = α_t² λ + σ_t²` the component's
/// score is `−(x − α_t μ)/v_t`, so every step is `x' = m x + q μ + √nv z`. `noise` false
/// drops the noise (the last step of a `Pc` sampler).
pub fn reverse_coeffs(
    kind: StepKind,
    sch: &dyn Schedule<f64>,
    (t, tn): (f64, f64),
    lam: f64,
    noise: bool,
) -> (f64, f64, f64) {
    let h = t - tn;
    let at = sch.alpha(t);
    let vt = at * at * lam + sch.sigma(t).powi(2);
    let (a, v) = sch.transition(tn, t);
    let (m, q, nv) = match kind {
        StepKind::EulerMaruyama => {
            let (f, g2) = (sch.f(t), sch.g2(t));
            (1.0 - f * h - g2 * h / vt, g2 * h * at / vt, g2 * h)
        }
        StepKind::ReverseDiffusion => (2.0 - a - v / vt, v * at / vt, v),
        StepKind::Ancestral => (
            (1.0 - v / vt) / a,
            v * at / (a * vt),
            sch.sigma(tn).powi(2) * v / sch.sigma(t).powi(2),
        ),
        StepKind::AncestralBeta => ((1.0 - v / vt) / a, v * at / (a * vt), v),
    };
    (m, q, if noise { nv } else { 0.0 })
}

/// The coefficients of one Langevin step `x + ε s + √(2ε) z` at `t` (see [`reverse_coeffs`]).
pub fn langevin_coeffs(sch: &dyn Schedule<f64>, t: f64, lam: f64, eps: f64) -> (f64, f64, f64) {
    let at = sch.alpha(t);
    let vt = at * at * lam + sch.sigma(t).powi(2);
    (1.0 - eps / vt, eps * at / vt, 2.0 * eps)
}

/// The coefficients of Tweedie's denoise `(x + σ² s)/α` at `t`.
pub fn tweedie_coeffs(sch: &dyn Schedule<f64>, t: f64, lam: f64) -> (f64, f64, f64) {
    let (at, st) = (sch.alpha(t), sch.sigma(t));
    let vt = at * at * lam + st * st;
    ((1.0 - st * st / vt) / at, st * st / vt, 0.0)
}

/// The steps `ε_i` that score_sde's batch-mean Langevin rule
/// `ε = 2 α_i (snr · mean‖z‖/mean‖s‖)²` takes at the grid times of a PC run (corrector first,
/// then `predictor`), on the law of the per-component Gaussian recursion of
/// [`predicted_gap`]: `mean‖z‖/mean‖s‖` is replaced by `√(D / E‖s‖²)` — exact in ratio when
/// both `z` and `s` are isotropic Gaussian vectors (both norms' means are `c_D` times their
/// RMS) — with `E‖s‖² = Σ_k w_k Σ_j ((m_kj − α μ_kj)² + V_kj)/v_kj²` from the recursion's
/// means `m` and variances `V`. An approximation of the coupled batch statistic by moments.
pub fn batch_mean_steps(
    p0: &GaussianMixture<f64>,
    sch: &dyn Schedule<f64>,
    times: &[f64],
    snr: f64,
    predictor: StepKind,
    (mean0, var0): (f64, f64),
) -> Vec<f64> {
    let comps: Vec<(Vec<f64>, Array1<f64>)> = (0..p0.n_components())
        .map(|k| {
            let (lam, u) = sym_eigen(&p0.covs().index_axis(Axis(0), k).to_owned());
            (lam, u.t().dot(&p0.means().row(k)))
        })
        .collect();
    let d = p0.dim() as f64;
    let mut m: Vec<Vec<f64>> = comps
        .iter()
        .map(|(_, mu)| mu.iter().map(|&x| mean0 * x).collect())
        .collect();
    let mut v: Vec<Vec<f64>> = comps.iter().map(|(lam, _)| vec![var0; lam.len()]).collect();
    let n = times.len() - 1;
    let mut eps = Vec::with_capacity(n);
    for i in 0..n {
        let (t, tn) = (times[i], times[i + 1]);
        let at = sch.alpha(t);
        let s2 = sch.sigma(t).powi(2);
        let mut es2 = 0.0;
        for (k, (lam, mu)) in comps.iter().enumerate() {
            for j in 0..lam.len() {
                let vt = at * at * lam[j] + s2;
                es2 += p0.weights()[k] * ((m[k][j] - at * mu[j]).powi(2) + v[k][j]) / (vt * vt);
            }
        }
        let (a, _) = sch.transition(tn, t);
        let e = 2.0 * a * a * snr * snr * d / es2;
        eps.push(e);
        for (k, (lam, mu)) in comps.iter().enumerate() {
            for j in 0..lam.len() {
                for (c, q, nv) in [
                    langevin_coeffs(sch, t, lam[j], e),
                    reverse_coeffs(predictor, sch, (t, tn), lam[j], i + 1 < n),
                ] {
                    m[k][j] = c * m[k][j] + q * mu[j];
                    v[k][j] = c * c * v[k][j] + nv;
                }
            }
        }
    }
    eps
}

/// A sampler's linear recursion: `steps` applications of `step` from the law
/// `(mean0 · μ, var0)` = `start`, to be compared with `N(a_end μ, a_end² λ + s_end²)`, `end`.
pub struct Recursion<'a> {
    pub steps: usize,
    pub step: &'a StepFn<'a>,
    pub start: (f64, f64),
    pub end: (f64, f64),
}

/// Check `samples` against the floor shifted by the recursion's known bias: the gap's floor
/// mean moves by [`predicted_gap`], the mean-error tolerance grows by
/// [`predicted_mean_shift`]; `slack` is the bias model's own allowance.
pub fn check_with_bias(
    what: &str,
    reference: &Reference,
    floor: &Floor,
    samples: &Array2<f64>,
    p0: &GaussianMixture<f64>,
    rec: &Recursion,
    slack: f64,
) -> Result<Report, String> {
    let bias = predicted_gap(p0, rec.steps, rec.step, rec.start, rec.end);
    let shift = predicted_mean_shift(p0, rec.steps, rec.step, rec.start.0, rec.end.0);
    println!("{what}: predicted bias {bias:+.4}, mean shift {shift:.4}");
    let mut fl = *floor;
    fl.gap_mean += bias;
    fl.mean_err += shift / FLOOR_FACTOR;
    check_against(what, reference, &fl, samples, slack)
}
