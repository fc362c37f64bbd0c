//! Gaussian mixtures: the project's exact oracle.
//!
//! For `p_0 = Σ_k w_k N(μ_k, S_k)` and a linear SDE with schedule `α(t)`, `σ(t)`, every
//! marginal is again a mixture (the convolution of Gaussians is Gaussian):
//!
//! ```text
//! p_t = Σ_k w_k N(α μ_k, α² S_k + σ² I)
//! ```
//!
//! so its log-density, score, Hessian trace, posterior mean `E[x_0 | x_t]` and
//! conditionals are closed-form. [`GaussianMixture`] computes them stably (log-sum-exp
//! over components, eigen-whitening, no explicit inverse of a covariance);
//! [`AnalyticScore`] is the [`ScoreModel`](crate::ScoreModel) of the diffused mixture
//! under a schedule, with the exact divergence.

mod analytic;
pub(crate) mod kernel;
mod posterior;
mod spec;

pub use analytic::AnalyticScore;
pub use spec::{MixtureSpec, problems};

use crate::check;
use crate::error::{Error, Result};
use crate::linalg;
use crate::num::Real;
use crate::schedule::Schedule;
use kernel::{Outputs, Parts, Workspace};
use ndarray::{
    Array1, Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayViewMut1, ArrayViewMut2, Axis,
};
use rand::RngCore;

/// Tolerance on `|Σ w − 1|` at construction (weights are then renormalised exactly).
pub const WEIGHT_SUM_TOL: f64 = 1e-6;

/// A Gaussian mixture `Σ_k w_k N(μ_k, S_k)` in `D` dimensions, validated on construction.
///
/// Construction checks shapes, finiteness, positive weights summing to one (within
/// [`WEIGHT_SUM_TOL`]), symmetric covariances and positive definiteness by Cholesky,
/// and stores each covariance's eigendecomposition so that any diffused version
/// `α² S + σ² I` is available without refactoring.
///
/// ```
/// use score_sde::gmm::GaussianMixture;
/// use ndarray::{array, Array3};
/// let w = array![0.5_f64, 0.5];
/// let mu = array![[-2.0], [2.0]];
/// let cov = Array3::from_shape_vec((2, 1, 1), vec![0.25, 0.25]).unwrap();
/// let gm = GaussianMixture::new(w, mu, cov).unwrap();
/// // By symmetry the score vanishes at 0, and log p(0) = log N(2; 0, 0.25).
/// let x = array![[0.0]];
/// assert!(gm.score(x.view()).unwrap()[[0, 0]].abs() < 1e-15);
/// let expect = -0.5 * (2.0 * std::f64::consts::PI * 0.25_f64).ln() - 0.5 * 4.0 / 0.25;
/// assert!((gm.log_prob(x.view()).unwrap()[0] - expect).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture<F> {
    weights: Array1<F>,
    log_weights: Array1<F>,
    means: Array2<F>,
    covs: Array3<F>,
    eigvals: Array2<F>,
    eigvecs: Array3<F>,
    axis_aligned: Vec<bool>,
    /// Every component has the same covariance (bit for bit), so the kernel takes the
    /// tied path (see `kernel/tied.rs`).
    tied: bool,
}

impl<F: Real> GaussianMixture<F> {
    /// Build and validate a mixture from weights `(K)`, means `(K, D)` and covariances `(K, D, D)`.
    pub fn new(weights: Array1<F>, means: Array2<F>, covs: Array3<F>) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::Empty {
                what: "mixture weights",
            });
        }
        let d = means.ncols();
        if d == 0 {
            return Err(Error::Empty {
                what: "mixture dimension",
            });
        }
        check::same_shape("means", &[k, d], means.shape())?;
        check::same_shape("covariances", &[k, d, d], covs.shape())?;
        check::finite("means", &means)?;
        check::finite("covariances", &covs)?;
        let mut sum = 0.0;
        for (i, &w) in weights.iter().enumerate() {
            if !(w.is_finite() && w > F::zero()) {
                return Err(Error::InvalidWeights {
                    reason: format!("weight {i} is {:?}, must be finite and > 0", w.as_f64()),
                });
            }
            sum += w.as_f64();
        }
        if (sum - 1.0).abs() > WEIGHT_SUM_TOL {
            return Err(Error::InvalidWeights {
                reason: format!("weights sum to {sum:?}, not 1 (tolerance {WEIGHT_SUM_TOL:e})"),
            });
        }
        let weights = weights.mapv(|w| F::lit(w.as_f64() / sum));
        let log_weights = weights.mapv(|w| w.ln());
        let mut eigvals = Array2::<F>::zeros((k, d));
        let mut eigvecs = Array3::<F>::zeros((k, d, d));
        let mut axis_aligned = vec![false; k];
        let mut covs_sym = covs.clone();
        let range = float_range::<F>();
        for c in 0..k {
            let s = covs.index_axis(Axis(0), c).mapv(|v| v.as_f64());
            let cov = linalg::validate_covariance(s.view(), range).map_err(|reason| {
                Error::NotPositiveDefinite {
                    component: c,
                    reason,
                }
            })?;
            axis_aligned[c] = cov.diagonal;
            eigvals.row_mut(c).assign(&cov.eigvals.mapv(F::lit));
            eigvecs
                .index_axis_mut(Axis(0), c)
                .assign(&cov.eigvecs.mapv(F::lit));
            covs_sym
                .index_axis_mut(Axis(0), c)
                .assign(&cov.sym.mapv(F::lit));
        }
        // Detected once, from the (symmetrised) covariances themselves: equal matrices
        // give equal eigendecompositions, and the kernel then uses component 0's.
        let first = covs_sym.index_axis(Axis(0), 0);
        let tied = covs_sym.outer_iter().all(|c| c == first);
        Ok(Self {
            weights,
            log_weights,
            means,
            covs: covs_sym,
            eigvals,
            eigvecs,
            axis_aligned,
            tied,
        })
    }

    /// One Gaussian `N(μ, S)` as a one-component mixture.
    pub fn gaussian(mean: Array1<F>, cov: Array2<F>) -> Result<Self> {
        let d = mean.len();
        check::same_shape("covariance", &[d, d], cov.shape())?;
        let means = mean.insert_axis(Axis(0));
        let covs = cov
            .into_shape_with_order((1, d, d))
            .map_err(|e| Error::shape("covariance", (d, d), e.to_string()))?;
        Self::new(Array1::ones(1), means, covs)
    }

    /// Number of components `K`.
    pub fn n_components(&self) -> usize {
        self.weights.len()
    }
    /// Dimension `D`.
    pub fn dim(&self) -> usize {
        self.means.ncols()
    }
    /// Weights `w_k` (normalised).
    pub fn weights(&self) -> ArrayView1<'_, F> {
        self.weights.view()
    }
    /// Means, one row per component.
    pub fn means(&self) -> ArrayView2<'_, F> {
        self.means.view()
    }
    /// Covariances `(K, D, D)`.
    pub fn covs(&self) -> ArrayView3<'_, F> {
        self.covs.view()
    }

    /// Mean of the mixture, `Σ w_k μ_k`.
    pub fn mean(&self) -> Array1<F> {
        self.weights.dot(&self.means)
    }
    /// Covariance of the mixture, `Σ w_k (S_k + μ_k μ_kᵀ) − m mᵀ` (as `Σ w_k (S_k + (μ_k − m)
    /// (μ_k − m)ᵀ)`).
    ///
    /// Domain: the result is exact to rounding while it is representable; for means more
    /// than about `√F::MAX` apart (`1.3e154` in f64, `1.8e19` in f32) its entries overflow
    /// to `±∞`. A getter of a validated mixture, so it does not return a `Result`; callers
    /// that accept such mixtures check the result ([`crate::metrics`] does).
    pub fn covariance(&self) -> Array2<F> {
        let d = self.dim();
        let m = self.mean();
        let mut c = Array2::<F>::zeros((d, d));
        for k in 0..self.n_components() {
            let w = self.weights[k];
            let mu = self.means.row(k);
            let dm = &mu - &m;
            c.scaled_add(w, &self.covs.index_axis(Axis(0), k));
            for i in 0..d {
                for j in 0..d {
                    c[[i, j]] += w * dm[i] * dm[j];
                }
            }
        }
        c
    }

    pub(crate) fn parts(&self) -> Parts<'_, F> {
        Parts {
            log_weights: &self.log_weights,
            means: &self.means,
            eigvals: &self.eigvals,
            eigvecs: &self.eigvecs,
            axis_aligned: &self.axis_aligned,
            tied: self.tied,
        }
    }

    pub(crate) fn workspace(&self) -> Workspace<F> {
        Workspace::new(self.n_components(), self.dim())
    }

    fn check_x(&self, x: &ArrayView2<F>) -> Result<()> {
        if x.ncols() != self.dim() {
            return Err(Error::shape(
                "x (columns = mixture dimension)",
                self.dim(),
                x.ncols(),
            ));
        }
        check::finite("x", x)
    }

    /// Log-density, score and Laplacian of the diffused mixture `p_{α,σ}` written into the
    /// given outputs (each optional). `x` is checked against the dimension and for finiteness.
    pub fn evaluate_at(
        &self,
        alpha: F,
        sigma: F,
        x: ArrayView2<F>,
        log_prob: Option<ArrayViewMut1<F>>,
        score: Option<ArrayViewMut2<F>>,
        laplacian: Option<ArrayViewMut1<F>>,
    ) -> Result<()> {
        self.check_x(&x)?;
        check_alpha_sigma(alpha, sigma)?;
        let n = x.nrows();
        if let Some(l) = &log_prob {
            check::same_shape("log_prob output", &[n], l.shape())?;
        }
        if let Some(s) = &score {
            check::same_shape("score output", x.shape(), s.shape())?;
        }
        if let Some(l) = &laplacian {
            check::same_shape("laplacian output", &[n], l.shape())?;
        }
        let mut ws = self.workspace();
        kernel::evaluate(
            &self.parts(),
            alpha,
            sigma,
            x,
            &mut ws,
            Outputs {
                log_prob,
                score,
                laplacian,
                responsibilities: None,
            },
        )
        .map_err(|f| unrepresentable(f, None))
    }

    /// `log p(x)` for every row.
    pub fn log_prob(&self, x: ArrayView2<F>) -> Result<Array1<F>> {
        let mut out = Array1::zeros(x.nrows());
        self.evaluate_at(F::one(), F::zero(), x, Some(out.view_mut()), None, None)?;
        Ok(out)
    }
    /// The score `∇ₓ log p(x)` for every row.
    pub fn score(&self, x: ArrayView2<F>) -> Result<Array2<F>> {
        let mut out = Array2::zeros(x.raw_dim());
        self.evaluate_at(F::one(), F::zero(), x, None, Some(out.view_mut()), None)?;
        Ok(out)
    }
    /// The trace of the Hessian of `log p` (the divergence of the score) for every row.
    pub fn hessian_trace(&self, x: ArrayView2<F>) -> Result<Array1<F>> {
        let mut out = Array1::zeros(x.nrows());
        self.evaluate_at(F::one(), F::zero(), x, None, None, Some(out.view_mut()))?;
        Ok(out)
    }
    /// Posterior component probabilities `p(k | x)` at `(α, σ)`, one row per sample (`N×K`).
    pub fn responsibilities_at(&self, alpha: F, sigma: F, x: ArrayView2<F>) -> Result<Array2<F>> {
        self.check_x(&x)?;
        check_alpha_sigma(alpha, sigma)?;
        let mut out = Array2::zeros((x.nrows(), self.n_components()));
        let mut ws = self.workspace();
        kernel::evaluate(
            &self.parts(),
            alpha,
            sigma,
            x,
            &mut ws,
            Outputs {
                responsibilities: Some(out.view_mut()),
                ..Outputs::none()
            },
        )
        .map_err(|f| unrepresentable(f, None))?;
        Ok(out)
    }
    /// Posterior component probabilities `p(k | x)` under this mixture.
    pub fn responsibilities(&self, x: ArrayView2<F>) -> Result<Array2<F>> {
        self.responsibilities_at(F::one(), F::zero(), x)
    }
    /// The most likely component of each row (argmax of the responsibilities).
    pub fn most_likely_component(&self, x: ArrayView2<F>) -> Result<Vec<usize>> {
        let r = self.responsibilities(x)?;
        Ok(r.rows()
            .into_iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .fold(
                        (0, F::neg_infinity()),
                        |b, (k, &v)| if v > b.1 { (k, v) } else { b },
                    )
                    .0
            })
            .collect())
    }

    /// Draw `n` samples: a component by its weight (one uniform), then
    /// `μ_k + U_k diag(√λ_k) z` (D standard normals), row by row.
    ///
    /// Errors: [`Error::Empty`] for `n = 0`; [`Error::TooLarge`] if `n × D` values cannot be
    /// allocated (checked before allocating); [`Error::Unrepresentable`] if a draw overflows
    /// (means within a few standard deviations of the float type's largest value).
    pub fn sample(&self, n: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        if n == 0 {
            return Err(Error::Empty {
                what: "sample count",
            });
        }
        let (k_n, d) = (self.n_components(), self.dim());
        let mut out: Array2<F> = check::zeros("sample batch", ndarray::Ix2(n, d))?;
        let mut cum = Vec::with_capacity(k_n);
        let mut acc = F::zero();
        for &w in &self.weights {
            acc += w;
            cum.push(acc);
        }
        let sqrt_l = self.eigvals.mapv(|l| l.sqrt());
        let mut z = Array1::<F>::zeros(d);
        for mut row in out.rows_mut() {
            let u = F::uniform01(rng) * acc;
            let k = cum.iter().position(|&c| u < c).unwrap_or(k_n - 1);
            for j in 0..d {
                z[j] = F::standard_normal(rng) * sqrt_l[[k, j]];
            }
            row.assign(&self.means.row(k));
            if self.axis_aligned[k] {
                row += &z;
            } else {
                row += &self.eigvecs.index_axis(Axis(0), k).dot(&z);
            }
        }
        if !check::all_finite(&out) {
            let i = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
            return Err(Error::Unrepresentable {
                what: "mixture sample",
                index: i,
                reason: "μ + U √λ z overflows the float type (a mean near its largest value)"
                    .into(),
            });
        }
        Ok(out)
    }

    /// The mixture with means `α μ_k` and covariances `α² S_k + σ² I` (law of `α x_0 + σ z`).
    pub fn diffuse_with(&self, alpha: F, sigma: F) -> Result<Self> {
        check_alpha_sigma(alpha, sigma)?;
        let (k, d) = (self.n_components(), self.dim());
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let eigvals = self.eigvals.mapv(|l| a2 * l + s2);
        let mut covs = self.covs.mapv(|c| a2 * c);
        for c in 0..k {
            for j in 0..d {
                covs[[c, j, j]] += s2;
            }
        }
        let means = self.means.mapv(|m| alpha * m);
        // The same range as `new` demands of a covariance (normal eigenvalues, finite
        // traces of Σ and Σ⁻¹), so that the diffused mixture evaluates like any other.
        let why = |index: usize, what: &'static str, reason: String| Error::Unrepresentable {
            what,
            index,
            reason: format!(
                "{reason} (α = {:?}, σ = {:?})",
                alpha.as_f64(),
                sigma.as_f64()
            ),
        };
        for (c, row) in eigvals.rows().into_iter().enumerate() {
            let (mut tr, mut tr_inv) = (F::zero(), F::zero());
            for (j, &l) in row.iter().enumerate() {
                if !(l.is_finite() && l >= F::min_positive_value()) {
                    return Err(why(
                        c * d + j,
                        "diffused covariance α² S + σ² I",
                        format!(
                            "eigenvalue α²λ + σ² = {:?} of component {c} is outside the normal \
                             range of the float type",
                            l.as_f64()
                        ),
                    ));
                }
                tr += l;
                tr_inv += l.recip();
            }
            if !(tr.is_finite() && tr_inv.is_finite()) {
                return Err(why(
                    c,
                    "diffused covariance α² S + σ² I",
                    format!("the trace of component {c}'s covariance or of its inverse overflows"),
                ));
            }
        }
        if let Some(i) = covs.iter().position(|v| !v.is_finite()) {
            return Err(why(
                i,
                "diffused covariance α² S + σ² I",
                "an entry overflows".into(),
            ));
        }
        if let Some(i) = means.iter().position(|v| !v.is_finite()) {
            return Err(why(i, "diffused mean α μ", "an entry overflows".into()));
        }
        Ok(Self {
            weights: self.weights.clone(),
            log_weights: self.log_weights.clone(),
            means,
            covs,
            eigvals,
            eigvecs: self.eigvecs.clone(),
            axis_aligned: self.axis_aligned.clone(),
            // `α² S + σ² I` of equal `S` are equal: the same operations on the same values.
            tied: self.tied,
        })
    }

    /// The exact marginal `p_t = Σ w_k N(α(t) μ_k, α(t)² S_k + σ(t)² I)` of the forward process.
    ///
    /// ```
    /// use score_sde::gmm::problems;
    /// use score_sde::schedule::{Schedule, VpLinear};
    /// let ring = problems::ring2d::<f64>();
    /// let vp = VpLinear::default();
    /// let p1 = ring.diffuse(&vp, 1.0).unwrap();
    /// let a = vp.alpha(1.0);
    /// assert!((p1.means()[[0, 0]] - 4.0 * a).abs() < 1e-12);
    /// ```
    ///
    /// `t` must lie in `[0, T]` of the schedule ([`Error::TimeOutOfRange`] otherwise).
    pub fn diffuse(&self, schedule: &dyn Schedule<F>, t: F) -> Result<Self> {
        crate::schedule::check_t_from_zero(schedule, t)?;
        self.diffuse_with(schedule.alpha(t), schedule.sigma(t))
    }

    /// The posterior mean `E[x_0 | x_t]` for `x_t = α x_0 + σ z`, computed from the mixture:
    /// `Σ_k r_k(x_t) (μ_k + α S_k (α² S_k + σ² I)⁻¹ (x_t − α μ_k))` with `r_k` the
    /// responsibilities under the diffused mixture (Bishop 2006, eq. 2.116 per component).
    /// Equals Tweedie's `(x_t + σ² ∇ log p_t)/α` — a property the tests check.
    pub fn posterior_mean(&self, x_t: ArrayView2<F>, alpha: F, sigma: F) -> Result<Array2<F>> {
        let resp = self.responsibilities_at(alpha, sigma, x_t)?;
        let (k_n, d) = (self.n_components(), self.dim());
        let (a2, s2) = (alpha * alpha, sigma * sigma);
        let mut out = Array2::<F>::zeros(x_t.raw_dim());
        let mut y = Array1::<F>::zeros(d);
        for (i, xrow) in x_t.rows().into_iter().enumerate() {
            let mut acc = Array1::<F>::zeros(d);
            for k in 0..k_n {
                let u = self.eigvecs.index_axis(Axis(0), k);
                let r = &xrow - &(&self.means.row(k) * alpha);
                // In the eigenbasis: gain = α λ / (α² λ + σ²).
                let ry = if self.axis_aligned[k] {
                    r
                } else {
                    u.t().dot(&r)
                };
                for j in 0..d {
                    let l = self.eigvals[[k, j]];
                    y[j] = ry[j] * alpha * l / (a2 * l + s2);
                }
                let corr = if self.axis_aligned[k] {
                    y.clone()
                } else {
                    u.dot(&y)
                };
                acc.scaled_add(resp[[i, k]], &(&self.means.row(k) + &corr));
            }
            out.row_mut(i).assign(&acc);
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "posterior mean E[x_0 | x_t]",
                index: i,
                reason: format!(
                    "it overflows the float type (α = {:?}, σ = {:?}: x_t or the gain \
                     α λ / (α² λ + σ²) too large)",
                    alpha.as_f64(),
                    sigma.as_f64()
                ),
            });
        }
        Ok(out)
    }

    /// The marginal mixture of the coordinates `idx` (in that order).
    pub fn marginal(&self, idx: &[usize]) -> Result<Self> {
        self.check_indices(idx)?;
        let (k_n, m) = (self.n_components(), idx.len());
        let means = Array2::from_shape_fn((k_n, m), |(k, i)| self.means[[k, idx[i]]]);
        let covs = Array3::from_shape_fn((k_n, m, m), |(k, i, j)| self.covs[[k, idx[i], idx[j]]]);
        Self::new(self.weights.clone(), means, covs)
    }

    fn check_indices(&self, idx: &[usize]) -> Result<()> {
        if idx.is_empty() {
            return Err(Error::Empty {
                what: "coordinate index list",
            });
        }
        let d = self.dim();
        let mut seen = vec![false; d];
        for &i in idx {
            if i >= d || seen[i] {
                return Err(Error::param(
                    "coordinate index",
                    i as f64,
                    "must be < D and not repeated",
                ));
            }
            seen[i] = true;
        }
        Ok(())
    }

    /// The conditional mixture of the remaining coordinates (ascending order) given
    /// `x[observed[j]] = values[j]`: per component the Gaussian conditional
    /// `μ_f + S_fo S_oo⁻¹ (v − μ_o)`, `S_ff − S_fo S_oo⁻¹ S_of` (Bishop 2006, eq. 2.81–2.82),
    /// and weights `∝ w_k N(v; μ_o, S_oo)` (via Cholesky solves, log-sum-exp normalised).
    /// Returns the mixture and the free indices.
    pub fn condition(
        &self,
        observed: &[usize],
        values: ArrayView1<F>,
    ) -> Result<(Self, Vec<usize>)> {
        self.check_indices(observed)?;
        check::same_shape("observed values", &[observed.len()], values.shape())?;
        check::finite("observed values", &values)?;
        let d = self.dim();
        let free: Vec<usize> = (0..d).filter(|i| !observed.contains(i)).collect();
        if free.is_empty() {
            return Err(Error::Empty {
                what: "free coordinates (every coordinate is observed)",
            });
        }
        let (k_n, o, f) = (self.n_components(), observed.len(), free.len());
        let v = values.mapv(|x| x.as_f64());
        let mut means = Array2::<F>::zeros((k_n, f));
        let mut covs = Array3::<F>::zeros((k_n, f, f));
        // The weights' exponents −½ rᵀ S_oo⁻¹ r overflow for observations ≳ 1e154 away from
        // the means: the residuals are scaled by 2^−e (one e for all components) and the
        // softmax taken by differences (`kernel::safe::softmax_into`).
        // e from the inputs' magnitudes (not from v − μ, which can itself overflow).
        let max_in = observed
            .iter()
            .flat_map(|&oi| self.means.column(oi).to_vec())
            .map(|m| m.as_f64().abs())
            .chain(v.iter().map(|x| x.abs()))
            .fold(0.0_f64, f64::max);
        let e = kernel::safe::scale_exponent(max_in);
        let mut log_norm = vec![0.0_f64; k_n];
        let mut q_hat = vec![0.0_f64; k_n];
        let mut chols = Vec::with_capacity(k_n);
        let mut r_hats = Vec::with_capacity(k_n);
        for k in 0..k_n {
            let cov = self.covs.index_axis(Axis(0), k).mapv(|c| c.as_f64());
            let mu = self.means.row(k).mapv(|c| c.as_f64());
            let s_oo = Array2::from_shape_fn((o, o), |(i, j)| cov[[observed[i], observed[j]]]);
            let l = linalg::cholesky(s_oo.view()).map_err(|(j, p)| Error::NotPositiveDefinite {
                component: k,
                reason: format!("observed block: Cholesky pivot {j} is {p:?}"),
            })?;
            let r_hat = Array1::from_shape_fn(o, |i| {
                kernel::safe::ldexp(v[i], -e) - kernel::safe::ldexp(mu[observed[i]], -e)
            });
            let wht = linalg::solve_lower(l.view(), r_hat.view());
            let log_det: f64 = l.diag().iter().map(|x| x.ln()).sum();
            q_hat[k] = wht.dot(&wht);
            log_norm[k] = self.log_weights[k].as_f64()
                - log_det
                - 0.5 * o as f64 * (2.0 * std::f64::consts::PI).ln();
            // X = S_oo⁻¹ S_of, column by column.
            let mut x = Array2::<f64>::zeros((o, f));
            for (b, &fb) in free.iter().enumerate() {
                let col = Array1::from_shape_fn(o, |i| cov[[observed[i], fb]]);
                x.column_mut(b)
                    .assign(&linalg::cho_solve(l.view(), col.view()));
            }
            // Mean μ_f + S_fo S_oo⁻¹ r = μ_f + Xᵀ r, with r scaled by 2^−e and scaled back
            // (Xᵀ r rather than S_fo (S_oo⁻¹ r): a zero covariance entry then contributes 0,
            // not 0 · ∞ when S_oo⁻¹ r overflows).
            for (a, &fa) in free.iter().enumerate() {
                let m = mu[fa] + kernel::safe::ldexp(x.column(a).dot(&r_hat), e);
                let mf = F::lit(m);
                if !mf.is_finite() {
                    return Err(Error::Unrepresentable {
                        what: "conditional mean",
                        index: k * f + a,
                        reason: format!(
                            "component {k}, free coordinate {fa}: μ_f + S_fo S_oo⁻¹ (v − μ_o) = \
                             {m:e} is outside the float range (the observed values are too \
                             far from the component's mean)"
                        ),
                    });
                }
                means[[k, a]] = mf;
            }
            for a in 0..f {
                for b in 0..=a {
                    let mut c = cov[[free[a], free[b]]];
                    for (i, &oi) in observed.iter().enumerate() {
                        c -= cov[[free[a], oi]] * x[[i, b]];
                    }
                    covs[[k, a, b]] = F::lit(c);
                    covs[[k, b, a]] = F::lit(c);
                }
            }
            chols.push(l);
            r_hats.push(r_hat);
        }
        if !q_hat.iter().any(|q| q.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "conditional weights",
                index: 0,
                reason: "the scaled Mahalanobis distance of the observed values overflows for \
                         every component"
                    .into(),
            });
        }
        // q_k − q_j0 from μ_j0 − μ_k (exact) rather than as a difference of two large q.
        let j0 = kernel::safe::nearest(&log_norm, &q_hat);
        let mut post: Vec<f64> = (0..k_n)
            .map(|k| {
                let delta = Array1::from_shape_fn(o, |i| {
                    let oi = observed[i];
                    kernel::safe::ldexp(self.means[[j0, oi]].as_f64(), -e)
                        - kernel::safe::ldexp(self.means[[k, oi]].as_f64(), -e)
                });
                linalg::quad_difference(
                    chols[k].view(),
                    chols[j0].view(),
                    r_hats[k].view(),
                    r_hats[j0].view(),
                    delta.view(),
                )
            })
            .collect();
        kernel::safe::softmax_diffs(&log_norm, j0, q_hat[j0], e, &mut post);
        // A component whose posterior weight underflows (an observation far out in its tail)
        // keeps the smallest positive weight, so the conditional is still a valid mixture
        // with the same components rather than an `InvalidWeights` error.
        let weights =
            Array1::from_iter(post.iter().map(|&p| F::lit(p).max(F::min_positive_value())));
        Ok((Self::new(weights, means, covs)?, free))
    }

    /// The serialisable description (weights, means, covariances as `f64`).
    pub fn to_spec(&self) -> MixtureSpec {
        MixtureSpec {
            weights: self.weights.iter().map(|w| w.as_f64()).collect(),
            means: self
                .means
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|v| v.as_f64()).collect())
                .collect(),
            covs: self
                .covs
                .outer_iter()
                .map(|c| {
                    c.rows()
                        .into_iter()
                        .map(|r| r.iter().map(|v| v.as_f64()).collect())
                        .collect()
                })
                .collect(),
        }
    }
}

/// The limits of `F` for [`linalg::validate_covariance`].
pub(crate) fn float_range<F: Real>() -> linalg::FloatRange {
    linalg::FloatRange {
        eps: F::EPS.as_f64(),
        min_positive: F::min_positive_value().as_f64(),
        max: F::max_value().as_f64(),
    }
}

/// [`Error::Unrepresentable`] from a kernel failure; `row` overrides the failure's row
/// (which counts from the start of the kernel call) when the caller knows the batch's.
pub(crate) fn unrepresentable(f: kernel::safe::Failure, row: Option<usize>) -> Error {
    Error::Unrepresentable {
        what: f.what,
        index: row.unwrap_or(f.row),
        reason: f.reason,
    }
}

fn check_alpha_sigma<F: Real>(alpha: F, sigma: F) -> Result<()> {
    if !(alpha.is_finite() && alpha > F::zero()) {
        return Err(Error::param(
            "alpha",
            alpha.as_f64(),
            "must be finite and > 0",
        ));
    }
    if !(sigma.is_finite() && sigma >= F::zero()) {
        return Err(Error::param(
            "sigma",
            sigma.as_f64(),
            "must be finite and >= 0",
        ));
    }
    Ok(())
}

impl<F: Real> crate::score::LogDensity<F> for GaussianMixture<F> {
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()> {
        self.evaluate_at(F::one(), F::zero(), x, Some(out), None, None)
    }
    fn dim(&self) -> Option<usize> {
        Some(GaussianMixture::dim(self))
    }
}
