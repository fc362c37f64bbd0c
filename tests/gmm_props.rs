//! Property tests of the Gaussian-mixture oracle (`score_sde::gmm`).
//!
//! Random mixtures in 1–8 dimensions with 1–4 components, covariances `A Aᵀ + 0.1 I` from
//! random `A`, random normalised weights, evaluated at points drawn near components and
//! between them (where the responsibilities switch and the derivatives are largest).
//!
//! Checked: the score is the gradient of the log-density, the Hessian trace (divergence)
//! is the Laplacian, both at `t = 0` and under a schedule at random `t`; the log-density
//! equals a direct Cholesky evaluation written here; the posterior mean is Tweedie's
//! formula; `diffuse` agrees with [`AnalyticScore`]; marginals and conditionals agree with
//! formulas written out by hand and with `p(x_f | x_o) = p(x) / p(x_o)`.
//!
//! ## Finite-difference tolerances
//!
//! Along a coordinate direction `e`, `φ(h) = log p(x + h e) = log Σ_k exp q_k(h)` with
//! quadratics `q_k`: `q_k' = b_k = s_k·e` (component score), `q_k'' = −c_k = −eᵀ P_k e`
//! (`P_k` the component precision), `q_k''' = 0`. Differentiating the log-sum-exp, with
//! `r` the responsibilities, `m = E_r b`:
//!
//! ```text
//! φ'''  = 3 Cov_r(q'', q') + E_r (b − m)³                 |φ'''|  ≤ 3 C sd_r(b) + E_r|b − m|³
//! φ'''' = 3 Var_r(q'') + 6 κ_r(q'', q', q') + κ₄,r(b)     |φ''''| ≤ 3 C² + 6 C Var_r(b) + 4 E_r(b − m)⁴
//! ```
//!
//! with `C = max_k c_k`. A central difference of step `h` then errs by at most
//! `h²/6 |φ'''|` (score from `log p`) or `h²/6 |φ''''|` (Laplacian from the score), which
//! we double to cover the variation of the bound over `[x − h, x + h]`; plus rounding
//! `δ/h`, where `δ` bounds the rounding error of the differenced quantity: the kernel's
//! log-density carries `≲ d ε (|log p| + Mahalanobis²)` and its score
//! `≲ d ε (1 + Mahalanobis²)(|s| + spread of component scores)`; we allow 64× that.

mod common;
use ndarray::{Array1, Array2, Array3, ArrayView1, Axis, array, s};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use rand_pcg::Pcg64;
use score_sde::ScoreModel;
use score_sde::gmm::{AnalyticScore, GaussianMixture};
use score_sde::schedule::{Schedule, Ve, VpCosine, VpLinear};

const EPS: f64 = f64::EPSILON;
/// Finite-difference step (see the module docs for the error budget it enters).
const H: f64 = 1e-5;

// ------------------------------------------------------------------ independent oracle

/// Lower Cholesky factor (test-local, independent of the crate's linear algebra).
fn cholesky(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for j in 0..n {
        let mut d = a[[j, j]];
        for k in 0..j {
            d -= l[[j, k]] * l[[j, k]];
        }
        assert!(d > 0.0, "test oracle: matrix not positive definite");
        l[[j, j]] = d.sqrt();
        for i in j + 1..n {
            let mut v = a[[i, j]];
            for k in 0..j {
                v -= l[[i, k]] * l[[j, k]];
            }
            l[[i, j]] = v / l[[j, j]];
        }
    }
    l
}

/// `(L Lᵀ)⁻¹` by forward and back substitution on the columns of the identity.
fn inverse_from_cholesky(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    let mut inv = Array2::<f64>::zeros((n, n));
    for c in 0..n {
        let mut y = Array1::<f64>::zeros(n);
        for i in 0..n {
            let mut v = if i == c { 1.0 } else { 0.0 };
            for k in 0..i {
                v -= l[[i, k]] * y[k];
            }
            y[i] = v / l[[i, i]];
        }
        let mut x = Array1::<f64>::zeros(n);
        for i in (0..n).rev() {
            let mut v = y[i];
            for k in i + 1..n {
                v -= l[[k, i]] * x[k];
            }
            x[i] = v / l[[i, i]];
        }
        inv.column_mut(c).assign(&x);
    }
    inv
}

/// A mixture as raw numbers, for the test's own formulas.
#[derive(Debug, Clone)]
struct Raw {
    w: Vec<f64>,
    mu: Array2<f64>,
    cov: Array3<f64>,
}

/// `Σ_k w_k N(α μ_k, α² S_k + σ² I)` evaluated directly: Cholesky, explicit precision.
struct Oracle {
    log_w: Vec<f64>,
    mu: Vec<Array1<f64>>,
    prec: Vec<Array2<f64>>,
    log_norm: Vec<f64>,
}

/// Everything the oracle knows at one point.
struct Eval {
    log_p: f64,
    /// Responsibilities `r_k`.
    r: Vec<f64>,
    /// Mahalanobis² of each component.
    q: Vec<f64>,
    /// Component scores `−P_k (x − m_k)`.
    s_k: Vec<Array1<f64>>,
    /// Mixture score `Σ r_k s_k`.
    score: Array1<f64>,
}

impl Oracle {
    fn new(raw: &Raw, alpha: f64, sigma: f64) -> Self {
        let d = raw.mu.ncols();
        let mut o = Oracle {
            log_w: raw.w.iter().map(|w| w.ln()).collect(),
            mu: vec![],
            prec: vec![],
            log_norm: vec![],
        };
        for k in 0..raw.w.len() {
            let mut c = raw.cov.index_axis(Axis(0), k).to_owned() * (alpha * alpha);
            for j in 0..d {
                c[[j, j]] += sigma * sigma;
            }
            let l = cholesky(&c);
            let log_det = 2.0 * l.diag().iter().map(|v| v.ln()).sum::<f64>();
            o.mu.push(raw.mu.row(k).to_owned() * alpha);
            o.prec.push(inverse_from_cholesky(&l));
            o.log_norm
                .push(-0.5 * log_det - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln());
        }
        o
    }

    fn eval(&self, x: ArrayView1<f64>) -> Eval {
        let kn = self.mu.len();
        let mut logits = vec![0.0; kn];
        let mut q = vec![0.0; kn];
        let mut s_k = vec![];
        for k in 0..kn {
            let r = &x - &self.mu[k];
            let pr = self.prec[k].dot(&r);
            q[k] = r.dot(&pr);
            logits[k] = self.log_w[k] + self.log_norm[k] - 0.5 * q[k];
            s_k.push(-pr);
        }
        let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        let r: Vec<f64> = logits.iter().map(|l| (l - m).exp() / z).collect();
        let mut score = Array1::<f64>::zeros(x.len());
        for k in 0..kn {
            score.scaled_add(r[k], &s_k[k]);
        }
        Eval {
            log_p: m + z.ln(),
            r,
            q,
            s_k,
            score,
        }
    }
}

impl Eval {
    /// `E_r` of the Mahalanobis², the scale of the kernel's rounding errors.
    fn mahalanobis(&self) -> f64 {
        self.r.iter().zip(&self.q).map(|(r, q)| r * q).sum()
    }
    /// Moments of `b_k = s_k·e_j` under `r`: `(sd, E|b−m|³, Var, E(b−m)⁴, spread)`.
    fn moments(&self, j: usize) -> (f64, f64, f64, f64, f64) {
        let b: Vec<f64> = self.s_k.iter().map(|s| s[j]).collect();
        let m: f64 = self.r.iter().zip(&b).map(|(r, b)| r * b).sum();
        let mom = |p: i32| -> f64 {
            self.r
                .iter()
                .zip(&b)
                .map(|(r, b)| r * (b - m).abs().powi(p))
                .sum()
        };
        let var = mom(2);
        let spread = b.iter().map(|b| (b - m).abs()).fold(0.0, f64::max);
        (var.sqrt(), mom(3), var, mom(4), spread)
    }
}

/// Largest diagonal entry of the component precisions in direction `j`.
fn c_max(o: &Oracle, j: usize) -> f64 {
    o.prec.iter().map(|p| p[[j, j]]).fold(0.0, f64::max)
}

// ------------------------------------------------------------------ random mixtures

fn normal(rng: &mut Pcg64) -> f64 {
    rng.sample(StandardNormal)
}

/// A random mixture: weights `0.2 + U(0,1)` normalised, means `N(0, 2.5² I)`,
/// covariances `A Aᵀ + 0.1 I` with `A_ij ~ N(0, 1)`.
fn random_mixture(seed: u64, d: usize, k: usize) -> (GaussianMixture<f64>, Raw) {
    let mut rng = Pcg64::seed_from_u64(seed);
    let w: Vec<f64> = (0..k).map(|_| 0.2 + rng.random::<f64>()).collect();
    let total: f64 = w.iter().sum();
    let w: Vec<f64> = w.iter().map(|v| v / total).collect();
    let mu = Array2::from_shape_fn((k, d), |_| 2.5 * normal(&mut rng));
    let mut cov = Array3::<f64>::zeros((k, d, d));
    for c in 0..k {
        let a = Array2::from_shape_fn((d, d), |_| normal(&mut rng));
        let mut s = a.dot(&a.t());
        for j in 0..d {
            s[[j, j]] += 0.1;
        }
        // Exactly symmetric, as a user would pass it.
        let s = (&s + &s.t()) * 0.5;
        cov.index_axis_mut(Axis(0), c).assign(&s);
    }
    let raw = Raw { w, mu, cov };
    let gm = GaussianMixture::new(Array1::from(raw.w.clone()), raw.mu.clone(), raw.cov.clone())
        .expect("a valid random mixture");
    (gm, raw)
}

/// Test points for the law `α x₀ + σ z`: one draw near a component, one between two
/// component means, one in a component's tail (≈ 2× its spread).
fn test_points(raw: &Raw, alpha: f64, sigma: f64, seed: u64) -> Array2<f64> {
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let (k, d) = raw.mu.dim();
    let mut pts = Array2::<f64>::zeros((3, d));
    for (i, scale) in [1.0, 0.3, 2.0].into_iter().enumerate() {
        let a = rng.random_range(0..k);
        let b = rng.random_range(0..k);
        let l = cholesky(&raw.cov.index_axis(Axis(0), a).to_owned());
        let z = Array1::from_shape_fn(d, |_| normal(&mut rng));
        let centre = if i == 1 {
            (&raw.mu.row(a) + &raw.mu.row(b)) * 0.5
        } else {
            raw.mu.row(a).to_owned()
        };
        let x0 = &centre + &(l.dot(&z) * scale);
        let e = Array1::from_shape_fn(d, |_| normal(&mut rng));
        pts.row_mut(i).assign(&(&x0 * alpha + &e * sigma));
    }
    pts
}

fn mixture_strategy() -> impl Strategy<Value = (u64, usize, usize)> {
    (any::<u64>(), 1usize..=8, 1usize..=4)
}

// ------------------------------------------------------------------ checks shared by tests

/// `score` against central differences of `log_p`, with the bound of the module docs.
fn check_score_fd(
    what: &str,
    oracle: &Oracle,
    x: ArrayView1<f64>,
    score: ArrayView1<f64>,
    log_p: &dyn Fn(&Array1<f64>) -> f64,
) -> Result<(), TestCaseError> {
    let d = x.len();
    let ev = oracle.eval(x);
    for j in 0..d {
        let mut xp = x.to_owned();
        let mut xm = x.to_owned();
        xp[j] += H;
        xm[j] -= H;
        let (lp, lm) = (log_p(&xp), log_p(&xm));
        let fd = (lp - lm) / (2.0 * H);
        let (sd, m3, _, _, _) = ev.moments(j);
        let trunc = 2.0 * H * H / 6.0 * (3.0 * c_max(oracle, j) * sd + m3);
        let round = 64.0 * d as f64 * EPS * (1.0 + lp.abs().max(lm.abs()) + ev.mahalanobis()) / H;
        let tol = trunc + round;
        prop_assert!(
            (fd - score[j]).abs() <= tol,
            "{what}: ∂_{j} log p = {fd} by FD, score = {} (tol {tol}, x = {x})",
            score[j]
        );
    }
    Ok(())
}

/// `laplacian` against central differences of `score_fn`, with the bound of the module docs.
fn check_laplacian_fd(
    what: &str,
    oracle: &Oracle,
    x: ArrayView1<f64>,
    laplacian: f64,
    score_fn: &dyn Fn(&Array1<f64>) -> Array1<f64>,
) -> Result<(), TestCaseError> {
    let d = x.len();
    let ev = oracle.eval(x);
    let mut fd = 0.0;
    let mut tol = 0.0;
    for j in 0..d {
        let mut xp = x.to_owned();
        let mut xm = x.to_owned();
        xp[j] += H;
        xm[j] -= H;
        fd += (score_fn(&xp)[j] - score_fn(&xm)[j]) / (2.0 * H);
        let (_, _, var, m4, spread) = ev.moments(j);
        let c = c_max(oracle, j);
        tol += 2.0 * H * H / 6.0 * (3.0 * c * c + 6.0 * c * var + 4.0 * m4);
        let s_scale = 1.0 + ev.score[j].abs() + spread;
        tol += 64.0 * d as f64 * EPS * (1.0 + ev.mahalanobis()) * s_scale / H;
    }
    prop_assert!(
        (fd - laplacian).abs() <= tol,
        "{what}: Laplacian = {fd} by FD of the score, but {laplacian} (tol {tol}, x = {x})"
    );
    Ok(())
}

/// `value` against the oracle's `log p`: the crate evaluates through an eigendecomposition
/// (Jacobi), the oracle through Cholesky; both are backward stable, so they differ by
/// `≲ d κ ε (1 + |log p| + Mahalanobis²)`, `κ ≤ 10³` for our covariances
/// (`λ_min ≥ 0.1`, `λ_max ≲ 4d + 0.1 ≤ 33` typically). Allow `10⁻¹⁰` of that scale.
fn check_log_p(what: &str, ev: &Eval, value: f64) -> Result<(), TestCaseError> {
    let tol = 1e-10 * (1.0 + ev.log_p.abs() + ev.mahalanobis());
    prop_assert!(
        (value - ev.log_p).abs() <= tol,
        "{what}: log p = {value}, direct Cholesky evaluation {} (tol {tol})",
        ev.log_p
    );
    Ok(())
}

// ------------------------------------------------------------------ properties

/// 64 cases from a fixed seed, so every run checks the same cases (raise `PROPTEST_CASES`
/// or change the seed to explore further; failures found that way are kept in the
/// `.proptest-regressions` file next to this one).
fn config() -> ProptestConfig {
    common::proptest_config(64, 0x6a55_1a4e)
}

proptest! {
    #![proptest_config(config())]

    /// `GaussianMixture::score = ∇ log_prob` and `hessian_trace = Δ log_prob`, and
    /// `log_prob` equals the direct evaluation.
    #[test]
    fn score_and_hessian_trace_are_derivatives_of_log_prob((seed, d, k) in mixture_strategy()) {
        let (gm, raw) = random_mixture(seed, d, k);
        let oracle = Oracle::new(&raw, 1.0, 0.0);
        let x = test_points(&raw, 1.0, 0.0, seed);
        let lp = gm.log_prob(x.view()).unwrap();
        let sc = gm.score(x.view()).unwrap();
        let ht = gm.hessian_trace(x.view()).unwrap();
        let log_p = |y: &Array1<f64>| gm.log_prob(y.view().insert_axis(Axis(0))).unwrap()[0];
        let score = |y: &Array1<f64>| gm.score(y.view().insert_axis(Axis(0))).unwrap().row(0).to_owned();
        for i in 0..x.nrows() {
            let ev = oracle.eval(x.row(i));
            check_log_p("GaussianMixture::log_prob", &ev, lp[i])?;
            check_score_fd("GaussianMixture::score", &oracle, x.row(i), sc.row(i), &log_p)?;
            check_laplacian_fd("GaussianMixture::hessian_trace", &oracle, x.row(i), ht[i], &score)?;
        }
    }

    /// `AnalyticScore` under VP-linear at a random `t ∈ [0, 1]`: score = ∇ log p_t,
    /// divergence = Δ log p_t, `log_prob` equals the direct evaluation of
    /// `Σ w N(α μ, α² S + σ² I)` and `diffuse(t)` followed by `log_prob`.
    #[test]
    fn analytic_score_is_the_gradient_at_time_t((seed, d, k) in mixture_strategy(), t in 0.0f64..=1.0) {
        let (gm, raw) = random_mixture(seed, d, k);
        let vp = VpLinear::<f64>::default();
        let (a, s) = (vp.alpha(t), vp.sigma(t));
        let oracle = Oracle::new(&raw, a, s);
        let model = AnalyticScore::new(gm.clone(), vp);
        let x = test_points(&raw, a, s, seed);
        let n = x.nrows();
        let mut lp = Array1::zeros(n);
        model.log_prob(x.view(), t, lp.view_mut()).unwrap();
        let mut sc = Array2::zeros((n, d));
        model.score(x.view(), t, sc.view_mut()).unwrap();
        let mut div = Array1::zeros(n);
        model.divergence(x.view(), t, div.view_mut()).unwrap().unwrap();
        let lp_diffused = gm.diffuse(&vp, t).unwrap().log_prob(x.view()).unwrap();
        let log_p = |y: &Array1<f64>| {
            let mut o = Array1::zeros(1);
            model.log_prob(y.view().insert_axis(Axis(0)), t, o.view_mut()).unwrap();
            o[0]
        };
        let score = |y: &Array1<f64>| {
            let mut o = Array2::zeros((1, d));
            model.score(y.view().insert_axis(Axis(0)), t, o.view_mut()).unwrap();
            o.row(0).to_owned()
        };
        for i in 0..n {
            let ev = oracle.eval(x.row(i));
            check_log_p("AnalyticScore::log_prob", &ev, lp[i])?;
            check_log_p("diffuse(t).log_prob", &ev, lp_diffused[i])?;
            check_score_fd("AnalyticScore::score", &oracle, x.row(i), sc.row(i), &log_p)?;
            check_laplacian_fd("AnalyticScore::divergence", &oracle, x.row(i), div[i], &score)?;
        }
    }

    /// `diffuse(schedule, t).log_prob = AnalyticScore::log_prob(t)` for the cosine and VE
    /// schedules too (α ≠ 1 with large σ, and α = 1). Both go through the same eigenvalues
    /// `α²λ + σ²`, in a different order of operations: 10⁻¹² of the log-density's scale.
    #[test]
    fn diffuse_agrees_with_analytic_score((seed, d, k) in mixture_strategy(), u in 0.0f64..=1.0) {
        let (gm, raw) = random_mixture(seed, d, k);
        let cos = VpCosine::<f64>::default();
        let ve = Ve::<f64>::default();
        let schedules: [&dyn Schedule<f64>; 2] = [&cos, &ve];
        for sch in schedules {
            let t = u * sch.t_range().1;
            let (a, s) = (sch.alpha(t), sch.sigma(t));
            let x = test_points(&raw, a, s, seed);
            let model = AnalyticScore::new(gm.clone(), sch);
            let mut lp = Array1::zeros(x.nrows());
            model.log_prob(x.view(), t, lp.view_mut()).unwrap();
            let via_diffuse = gm.diffuse(sch, t).unwrap().log_prob(x.view()).unwrap();
            let oracle = Oracle::new(&raw, a, s);
            for i in 0..x.nrows() {
                let ev = oracle.eval(x.row(i));
                let tol = 1e-12 * (1.0 + ev.log_p.abs() + ev.mahalanobis());
                prop_assert!((lp[i] - via_diffuse[i]).abs() <= tol,
                    "t = {t}: AnalyticScore {} vs diffuse {}", lp[i], via_diffuse[i]);
                check_log_p("AnalyticScore::log_prob (cos/VE)", &ev, lp[i])?;
            }
        }
    }

    /// `posterior_mean(x_t, α, σ) = (x_t + σ² ∇ log p_{α,σ}(x_t)) / α` (Tweedie).
    #[test]
    fn posterior_mean_is_tweedie(
        (seed, d, k) in mixture_strategy(),
        alpha in 0.05f64..=1.0,
        sigma in 0.05f64..=3.0,
    ) {
        let (gm, raw) = random_mixture(seed, d, k);
        let x = test_points(&raw, alpha, sigma, seed);
        let pm = gm.posterior_mean(x.view(), alpha, sigma).unwrap();
        let s = gm.diffuse_with(alpha, sigma).unwrap().score(x.view()).unwrap();
        let oracle = Oracle::new(&raw, alpha, sigma);
        let mu_max = raw.mu.iter().fold(0.0_f64, |a, v| a.max(v.abs()));
        for i in 0..x.nrows() {
            let ev = oracle.eval(x.row(i));
            let spread = ev.s_k.iter().flat_map(|v| v.iter()).fold(0.0_f64, |a, v| a.max(v.abs()));
            for j in 0..d {
                let tweedie = (x[[i, j]] + sigma * sigma * s[[i, j]]) / alpha;
                // Both sides are sums of terms of size ≤ scale, each computed to
                // ≲ d ε (1 + Mahalanobis²) relative (the responsibilities' exponent);
                // Tweedie's form cancels x against σ² s, so the error is relative to
                // the terms, not to the result. Allow 256× that.
                let scale = (x[[i, j]].abs() + sigma * sigma * (s[[i, j]].abs() + spread)) / alpha
                    + mu_max;
                let tol = 256.0 * d as f64 * EPS * (1.0 + ev.mahalanobis()) * scale;
                prop_assert!((pm[[i, j]] - tweedie).abs() <= tol,
                    "posterior mean {} vs Tweedie {tweedie} (tol {tol}) at α = {alpha}, σ = {sigma}",
                    pm[[i, j]]);
            }
        }
    }

    /// `log p(x_f | x_o) = log p(x) − log p_o(x_o)` for random observed subsets: ties
    /// `condition`, `marginal` and `log_prob` together on random mixtures.
    #[test]
    fn conditional_times_marginal_is_joint(
        (seed, d, k) in (any::<u64>(), 2usize..=6, 1usize..=3),
        mask in any::<u8>(),
    ) {
        let (gm, raw) = random_mixture(seed, d, k);
        // A non-empty proper subset of the coordinates, in a scrambled order.
        let mut observed: Vec<usize> = (0..d).filter(|i| mask >> i & 1 == 1).collect();
        if observed.is_empty() { observed.push(d - 1); }
        if observed.len() == d { observed.remove(0); }
        observed.reverse();
        let x = test_points(&raw, 1.0, 0.0, seed);
        let lp = gm.log_prob(x.view()).unwrap();
        let marg = gm.marginal(&observed).unwrap();
        let oracle = Oracle::new(&raw, 1.0, 0.0);
        for i in 0..x.nrows() {
            let v = Array1::from_iter(observed.iter().map(|&j| x[[i, j]]));
            let (cond, free) = gm.condition(&observed, v.view()).unwrap();
            prop_assert_eq!(free.len() + observed.len(), d);
            prop_assert!(free.windows(2).all(|w| w[0] < w[1]));
            let xf = Array1::from_iter(free.iter().map(|&j| x[[i, j]]));
            let lc = cond.log_prob(xf.view().insert_axis(Axis(0))).unwrap()[0];
            let lm = marg.log_prob(v.view().insert_axis(Axis(0))).unwrap()[0];
            // Three evaluations, each to ≲ d κ ε (1 + |log p| + Mahalanobis²) (see
            // check_log_p); the conditional's covariance is a Schur complement formed in
            // f64, with relative error ≲ κ ε. Allow 10⁻⁹ of the joint's scale.
            let ev = oracle.eval(x.row(i));
            let tol = 1e-9 * (1.0 + ev.log_p.abs() + lm.abs() + ev.mahalanobis());
            prop_assert!((lc + lm - lp[i]).abs() <= tol,
                "log p(x_f|x_o) + log p(x_o) = {} but log p(x) = {} (tol {tol})", lc + lm, lp[i]);
        }
    }
}

// ------------------------------------------------------------------ by-hand formulas

/// One 3-D Gaussian: marginal and conditionals against formulas written out here
/// (Bishop 2006, eq. 2.81–2.82). Every value is a few operations on the inputs: 10⁻¹³.
#[test]
fn gaussian_marginal_and_condition_by_hand() {
    let mu = array![1.0, -2.0, 0.5];
    let c = array![[2.0, 0.6, -0.4], [0.6, 1.5, 0.3], [-0.4, 0.3, 1.0]];
    let g = GaussianMixture::gaussian(mu.clone(), c.clone()).unwrap();
    let tol = 1e-13;
    let close = |a: f64, b: f64| (a - b).abs() < tol;

    // Marginal of (x₂, x₀), in that order.
    let m = g.marginal(&[2, 0]).unwrap();
    assert_eq!(m.dim(), 2);
    assert!(close(m.means()[[0, 0]], mu[2]) && close(m.means()[[0, 1]], mu[0]));
    assert!(close(m.covs()[[0, 0, 0]], c[[2, 2]]));
    assert!(close(m.covs()[[0, 0, 1]], c[[2, 0]]));
    assert!(close(m.covs()[[0, 1, 1]], c[[0, 0]]));

    // Condition on x₁ = v: free (x₀, x₂), mean μ_f + S_f1 (v − μ₁)/S₁₁,
    // covariance S_ff − S_f1 S_1f / S₁₁.
    let v = -1.0;
    let (cond, free) = g.condition(&[1], array![v].view()).unwrap();
    assert_eq!(free, vec![0, 2]);
    let gain = |i: usize| c[[i, 1]] / c[[1, 1]];
    assert!(close(cond.means()[[0, 0]], mu[0] + gain(0) * (v - mu[1])));
    assert!(close(cond.means()[[0, 1]], mu[2] + gain(2) * (v - mu[1])));
    for (a, &i) in [0usize, 2].iter().enumerate() {
        for (b, &j) in [0usize, 2].iter().enumerate() {
            let expect = c[[i, j]] - c[[i, 1]] * c[[1, j]] / c[[1, 1]];
            assert!(close(cond.covs()[[0, a, b]], expect), "cov[{a},{b}]");
        }
    }
    assert!(close(cond.weights()[0], 1.0));

    // Condition on (x₂, x₀) = (v₂, v₀): free x₁. With the 2×2 inverse written out,
    // S_oo = [[S₂₂, S₂₀], [S₀₂, S₀₀]], det = S₂₂S₀₀ − S₂₀².
    let (v2, v0) = (0.9, 2.2);
    let (cond, free) = g.condition(&[2, 0], array![v2, v0].view()).unwrap();
    assert_eq!(free, vec![1]);
    let det = c[[2, 2]] * c[[0, 0]] - c[[2, 0]] * c[[2, 0]];
    let inv = [
        [c[[0, 0]] / det, -c[[2, 0]] / det],
        [-c[[2, 0]] / det, c[[2, 2]] / det],
    ];
    let s_fo = [c[[1, 2]], c[[1, 0]]];
    let r = [v2 - mu[2], v0 - mu[0]];
    let k0 = s_fo[0] * inv[0][0] + s_fo[1] * inv[1][0];
    let k1 = s_fo[0] * inv[0][1] + s_fo[1] * inv[1][1];
    assert!(close(cond.means()[[0, 0]], mu[1] + k0 * r[0] + k1 * r[1]));
    assert!(close(
        cond.covs()[[0, 0, 0]],
        c[[1, 1]] - (k0 * s_fo[0] + k1 * s_fo[1])
    ));
}

/// Two weighted 2-D components, observing x₀ = v: the posterior weights are
/// `∝ w_k N(v; μ_k0, S_k00)`, each component conditioned as a Gaussian.
#[test]
fn two_component_condition_by_hand() {
    let w = array![0.3, 0.7];
    let mu = array![[-1.0, 2.0], [1.5, -0.5]];
    let mut cov = Array3::<f64>::zeros((2, 2, 2));
    cov.slice_mut(s![0, .., ..])
        .assign(&array![[0.5, 0.2], [0.2, 0.8]]);
    cov.slice_mut(s![1, .., ..])
        .assign(&array![[1.2, -0.6], [-0.6, 0.9]]);
    let gm = GaussianMixture::new(w.clone(), mu.clone(), cov.clone()).unwrap();
    let normal_pdf = |x: f64, m: f64, v: f64| {
        (-(x - m) * (x - m) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
    };
    // A few operations each, and a normalisation: 10⁻¹³.
    let tol = 1e-13;
    for v in [-2.0, 0.0, 0.3, 2.5] {
        let (cond, free) = gm.condition(&[0], array![v].view()).unwrap();
        assert_eq!(free, vec![1]);
        let u: Vec<f64> = (0..2)
            .map(|k| w[k] * normal_pdf(v, mu[[k, 0]], cov[[k, 0, 0]]))
            .collect();
        let z = u[0] + u[1];
        for k in 0..2 {
            assert!(
                (cond.weights()[k] - u[k] / z).abs() < tol,
                "v = {v}: weight {k} = {} but by hand {}",
                cond.weights()[k],
                u[k] / z
            );
            let m = mu[[k, 1]] + cov[[k, 1, 0]] / cov[[k, 0, 0]] * (v - mu[[k, 0]]);
            let var = cov[[k, 1, 1]] - cov[[k, 1, 0]] * cov[[k, 0, 1]] / cov[[k, 0, 0]];
            assert!((cond.means()[[k, 0]] - m).abs() < tol);
            assert!((cond.covs()[[k, 0, 0]] - var).abs() < tol);
        }
    }
    // The marginal of x₁ keeps the weights and takes the (1, 1) entries.
    let m = gm.marginal(&[1]).unwrap();
    for k in 0..2 {
        assert!((m.weights()[k] - w[k]).abs() < tol);
        assert_eq!(m.means()[[k, 0]], mu[[k, 1]]);
        assert_eq!(m.covs()[[k, 0, 0]], cov[[k, 1, 1]]);
    }
}

/// `mean()` and `covariance()` against the law of total variance written out for a
/// two-component 2-D mixture: `Σ w (S + μμᵀ) − m mᵀ`. A few operations: 10⁻¹³.
#[test]
fn mixture_mean_and_covariance_by_hand() {
    let w = [0.25, 0.75];
    let mu = array![[2.0, 0.0], [-1.0, 1.0]];
    let mut cov = Array3::<f64>::zeros((2, 2, 2));
    cov.slice_mut(s![0, .., ..])
        .assign(&array![[1.0, 0.3], [0.3, 0.5]]);
    cov.slice_mut(s![1, .., ..])
        .assign(&array![[0.4, 0.0], [0.0, 2.0]]);
    let gm = GaussianMixture::new(Array1::from(w.to_vec()), mu.clone(), cov.clone()).unwrap();
    let m = [
        w[0] * mu[[0, 0]] + w[1] * mu[[1, 0]],
        w[0] * mu[[0, 1]] + w[1] * mu[[1, 1]],
    ];
    let mean = gm.mean();
    let c = gm.covariance();
    for i in 0..2 {
        assert!((mean[i] - m[i]).abs() < 1e-13);
        for j in 0..2 {
            let second: f64 = (0..2)
                .map(|k| w[k] * (cov[[k, i, j]] + mu[[k, i]] * mu[[k, j]]))
                .sum();
            assert!((c[[i, j]] - (second - m[i] * m[j])).abs() < 1e-13);
        }
    }
}

/// Regression: observing a value deep in one component's tail made that component's
/// posterior weight underflow to 0, and `condition` returned `InvalidWeights` instead of
/// the conditional (found by `conditional_times_marginal_is_joint`, seed
/// 10489179282864098013, d = 3, k = 3). The far component keeps a negligible weight.
#[test]
fn condition_far_in_one_components_tail() {
    let mut cov = Array3::<f64>::zeros((2, 2, 2));
    for k in 0..2 {
        cov.slice_mut(s![k, .., ..]).assign(&Array2::eye(2));
    }
    let gm = GaussianMixture::new(array![0.5, 0.5], array![[0.0, 0.0], [100.0, 1.0]], cov).unwrap();
    // log N(0; 100, 1) − log N(0; 0, 1) = −5000: the weight exp(−5000) underflows.
    let (cond, free) = gm.condition(&[0], array![0.0].view()).unwrap();
    assert_eq!(free, vec![1]);
    assert!(cond.weights()[1] >= 0.0 && cond.weights()[1] < 1e-300);
    // The conditional is then N(0, 1) up to that weight: exact to rounding.
    let x = array![[0.7]];
    let expect = -0.5 * (2.0 * std::f64::consts::PI).ln() - 0.5 * 0.49;
    assert!((cond.log_prob(x.view()).unwrap()[0] - expect).abs() < 1e-14);
}
