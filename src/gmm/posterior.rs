//! The exact posterior of a Gaussian mixture under a linear-Gaussian observation.

use super::{GaussianMixture, float_range, kernel};
use crate::check;
use crate::error::{Error, Result};
use crate::linalg;
use crate::num::Real;
use ndarray::{Array1, Array2, Array3, ArrayView1, ArrayView2, Axis};

impl<F: Real> GaussianMixture<F> {
    /// The exact posterior `p(x | y)` of this mixture (the prior) given the linear-Gaussian
    /// observation `y = A x + n`, `n ~ N(0, Σ_n)`: again a mixture, in closed form.
    ///
    /// Per component (Bishop 2006, eq. 2.113–2.117, in the Kalman-gain form):
    ///
    /// ```text
    /// C_k  = A S_k Aᵀ + Σ_n                    (the law of y under component k: N(A μ_k, C_k))
    /// K_k  = S_k Aᵀ C_k⁻¹
    /// μ'_k = μ_k + K_k (y − A μ_k)
    /// S'_k = (I − K_k A) S_k (I − K_k A)ᵀ + K_k Σ_n K_kᵀ   (= (S_k⁻¹ + Aᵀ Σ_n⁻¹ A)⁻¹)
    /// w'_k ∝ w_k N(y; A μ_k, C_k)
    /// ```
    ///
    /// `C_k` is factorised by Cholesky and every `C_k⁻¹` is applied by triangular solves —
    /// no explicit inverse, and no inverse of `S_k` (which may be nearly singular). The
    /// covariance update is Joseph's symmetric form, a sum of two positive semi-definite
    /// terms, so the posterior stays positive definite to round-off even for very precise
    /// observations. The weights are normalised by log-sum-exp in `f64`; a weight that
    /// underflows is raised to the smallest positive normal float, so the posterior's
    /// components keep the prior's indices.
    ///
    /// `a` is `M × D`, `y` has length `M`, `noise_cov` is `M × M`, symmetric positive
    /// definite. Errors: [`Error::ShapeMismatch`] for wrong shapes, [`Error::NonFinite`]
    /// for NaN/inf in `a`, `y` or `noise_cov`, [`Error::NotPositiveDefinite`] (component 0,
    /// the reason naming the noise covariance) for a singular, indefinite or asymmetric
    /// `Σ_n`, and [`Error::Empty`] for `M = 0`.
    ///
    /// ```
    /// use score_sde::gmm::GaussianMixture;
    /// use ndarray::array;
    /// // Prior N(0, 1), observation y = x + n, n ~ N(0, 1), y = 2:
    /// // posterior N(1, 1/2) (precisions add; the mean is the precision-weighted average).
    /// let prior = GaussianMixture::gaussian(array![0.0_f64], array![[1.0]]).unwrap();
    /// let post = prior.posterior(array![[1.0]].view(), array![2.0].view(), array![[1.0]].view()).unwrap();
    /// assert!((post.means()[[0, 0]] - 1.0).abs() < 1e-15);
    /// assert!((post.covs()[[0, 0, 0]] - 0.5).abs() < 1e-15);
    /// // A singular noise covariance is rejected.
    /// assert!(prior.posterior(array![[1.0]].view(), array![2.0].view(), array![[0.0]].view()).is_err());
    /// ```
    pub fn posterior(
        &self,
        a: ArrayView2<F>,
        y: ArrayView1<F>,
        noise_cov: ArrayView2<F>,
    ) -> Result<Self> {
        let (k_n, d) = (self.n_components(), self.dim());
        let m = a.nrows();
        if m == 0 {
            return Err(Error::Empty {
                what: "observation (A has no rows)",
            });
        }
        check::same_shape("observation matrix A (M × D)", &[m, d], a.shape())?;
        check::same_shape("observation y", &[m], y.shape())?;
        check::same_shape("noise covariance (M × M)", &[m, m], noise_cov.shape())?;
        check::finite("observation matrix A", &a)?;
        check::finite("observation y", &y)?;
        check::finite("noise covariance", &noise_cov)?;
        let a = a.mapv(|v| v.as_f64());
        let y = y.mapv(|v| v.as_f64());
        let sn =
            linalg::validate_covariance(noise_cov.mapv(|v| v.as_f64()).view(), float_range::<F>())
                .map_err(|reason| Error::NotPositiveDefinite {
                    component: 0,
                    reason: format!("noise covariance: {reason}"),
                })?
                .sym;
        let ln_2pi = (2.0 * std::f64::consts::PI).ln();
        let mut means = Array2::<F>::zeros((k_n, d));
        let mut covs = Array3::<F>::zeros((k_n, d, d));
        // The residuals y − A μ_k, all formed first: the weights' exponents −½ rᵀ C⁻¹ r are
        // computed on r · 2^−e (one e for all components) and combined by differences
        // (`kernel::safe::softmax_into`), so observations ≳ 1e154 away still give weights.
        let resid: Vec<Array1<f64>> = (0..k_n)
            .map(|k| &y - &a.dot(&self.means.row(k).mapv(|v| v.as_f64())))
            .collect();
        let max_r = resid
            .iter()
            .flat_map(|r| r.iter())
            .fold(0.0_f64, |m, v| m.max(v.abs()));
        if !max_r.is_finite() {
            return Err(Error::Unrepresentable {
                what: "observation residual y − A μ",
                index: 0,
                reason: format!("it overflows (|y|, |A μ| too large: {max_r:e})"),
            });
        }
        let e = kernel::safe::scale_exponent(max_r);
        let mut log_norm = vec![0.0_f64; k_n];
        let mut q_hat = vec![0.0_f64; k_n];
        let mut chols = Vec::with_capacity(k_n);
        let mut r_hats = Vec::with_capacity(k_n);
        let eye = Array2::<f64>::eye(d);
        for k in 0..k_n {
            let s = self.covs.index_axis(Axis(0), k).mapv(|v| v.as_f64());
            let mu = self.means.row(k).mapv(|v| v.as_f64());
            let p = a.dot(&s); // A S  (M × D)
            let c = p.dot(&a.t()) + &sn; // A S Aᵀ + Σ_n
            // Symmetrised by halves (the sum of two entries near f64::MAX overflows).
            let c = Array2::from_shape_fn((m, m), |(i, j)| c[[i, j]] * 0.5 + c[[j, i]] * 0.5);
            if !check::all_finite(&c) || !check::all_finite(&p) {
                return Err(Error::Unrepresentable {
                    what: "observation covariance A S Aᵀ + Σ_n",
                    index: k,
                    reason: format!(
                        "it overflows for component {k} (A or the prior covariance too large)"
                    ),
                });
            }
            let l = linalg::cholesky(c.view()).map_err(|(j, piv)| Error::NotPositiveDefinite {
                component: k,
                reason: format!("A S Aᵀ + Σ_n: Cholesky pivot {j} is {piv:?}"),
            })?;
            let r = &resid[k];
            let r_hat = r.mapv(|v| kernel::safe::ldexp(v, -e));
            let wr = linalg::solve_lower(l.view(), r_hat.view());
            let log_det: f64 = l.diag().iter().map(|v| v.ln()).sum();
            q_hat[k] = wr.dot(&wr);
            log_norm[k] = self.log_weights[k].as_f64() - log_det - 0.5 * m as f64 * ln_2pi;
            // Kᵀ = C⁻¹ A S, column by column (M × D).
            let mut kt = Array2::<f64>::zeros((m, d));
            for j in 0..d {
                kt.column_mut(j)
                    .assign(&linalg::cho_solve(l.view(), p.column(j)));
            }
            let gain = kt.t(); // K = S Aᵀ C⁻¹ (D × M)
            let mean = &mu + &gain.dot(r);
            let ika = &eye - &gain.dot(&a); // I − K A
            let post = ika.dot(&s).dot(&ika.t()) + gain.dot(&sn).dot(&kt);
            for i in 0..d {
                let mi = F::lit(mean[i]);
                if !mi.is_finite() {
                    return Err(Error::Unrepresentable {
                        what: "posterior mean",
                        index: k * d + i,
                        reason: format!(
                            "component {k}, coordinate {i}: μ + K (y − A μ) = {:e} is outside \
                             the float range",
                            mean[i]
                        ),
                    });
                }
                means[[k, i]] = mi;
                for j in 0..=i {
                    let v = F::lit(post[[i, j]] * 0.5 + post[[j, i]] * 0.5);
                    covs[[k, i, j]] = v;
                    covs[[k, j, i]] = v;
                }
            }
            chols.push(l);
            r_hats.push(r_hat);
        }
        if !q_hat.iter().any(|q| q.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "posterior weights",
                index: 0,
                reason: "the scaled Mahalanobis distance of y overflows for every component".into(),
            });
        }
        // q_k − q_j0 from r_k − r_j0 = A (μ_j0 − μ_k), exact where y is far from both.
        let j0 = kernel::safe::nearest(&log_norm, &q_hat);
        let mu_hat = |k: usize| {
            self.means
                .row(k)
                .mapv(|v| kernel::safe::ldexp(v.as_f64(), -e))
        };
        let mut post_w: Vec<f64> = (0..k_n)
            .map(|k| {
                let delta = a.dot(&(&mu_hat(j0) - &mu_hat(k)));
                linalg::quad_difference(
                    chols[k].view(),
                    chols[j0].view(),
                    r_hats[k].view(),
                    r_hats[j0].view(),
                    delta.view(),
                )
            })
            .collect();
        kernel::safe::softmax_diffs(&log_norm, j0, q_hat[j0], e, &mut post_w);
        let tiny = F::min_positive_value();
        let weights = Array1::from_iter(post_w.iter().map(|&w| F::lit(w).max(tiny)));
        Self::new(weights, means, covs)
    }
}

impl<F: Real> GaussianMixture<F> {
    /// Component `k` alone, `N(μ_k, S_k)`, as a one-component mixture (weight 1), or `None`
    /// if `k ≥ K`. Reuses the stored factorisation: no revalidation.
    ///
    /// ```
    /// use score_sde::gmm::problems;
    /// let ring = problems::ring2d::<f64>();
    /// let c = ring.component(2).unwrap();
    /// assert_eq!(c.n_components(), 1);
    /// assert_eq!(c.means().row(0), ring.means().row(2));
    /// assert!(ring.component(8).is_none());
    /// ```
    pub fn component(&self, k: usize) -> Option<Self> {
        if k >= self.n_components() {
            return None;
        }
        let r = k..k + 1;
        Some(Self {
            weights: Array1::ones(1),
            log_weights: Array1::zeros(1),
            means: self.means.slice(ndarray::s![r.clone(), ..]).to_owned(),
            covs: self.covs.slice(ndarray::s![r.clone(), .., ..]).to_owned(),
            eigvals: self.eigvals.slice(ndarray::s![r.clone(), ..]).to_owned(),
            eigvecs: self.eigvecs.slice(ndarray::s![r, .., ..]).to_owned(),
            axis_aligned: vec![self.axis_aligned[k]],
            // One component: trivially tied, as `new` finds.
            tied: true,
        })
    }
}
