//! Linear-Gaussian inverse problems `y = A x + n`, `n ~ N(0, Σ_n)`.

use crate::check;
use crate::error::{Error, Result};
use crate::gmm::{GaussianMixture, float_range};
use crate::linalg::{self, validate_covariance};
use crate::num::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::StandardNormal;
use rand::RngCore;

/// A linear observation with Gaussian noise: `y = A x + n`, `n ~ N(0, Σ_n)`, `A` is `M × D`.
///
/// Validated once (shapes, finiteness, `Σ_n` symmetric positive definite — a singular or
/// indefinite noise covariance is [`Error::NotPositiveDefinite`]), then used to draw
/// observations, evaluate the likelihood `log N(y; A x, Σ_n)` of many `x` (importance
/// weights, tests), and get the exact posterior of a mixture prior
/// ([`GaussianMixture::posterior`], Bishop 2006, eq. 2.116–2.117 per component).
///
/// ```
/// use score_sde::condition::LinearGaussian;
/// use score_sde::gmm::problems;
/// use ndarray::array;
/// // Observe the sum of the two ring coordinates with noise variance 0.1.
/// let obs = LinearGaussian::new(array![[1.0, 1.0]], array![[0.1]]).unwrap();
/// let post = obs.posterior(&problems::ring2d::<f64>(), array![4.0].view()).unwrap();
/// assert_eq!(post.n_components(), 8);
/// // The posterior mean nearly satisfies the observation.
/// assert!((post.mean().sum() - 4.0).abs() < 0.2);
/// assert!(LinearGaussian::new(array![[1.0, 1.0]], array![[0.0]]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearGaussian<F> {
    a: Array2<F>,
    noise_cov: Array2<F>,
    /// Cholesky factor of `Σ_n` (f64).
    chol: Array2<f64>,
    log_norm: f64,
}

impl<F: Real> LinearGaussian<F> {
    /// Validate `A` (`M × D`, `M, D ≥ 1`) and `Σ_n` (`M × M`, symmetric positive definite).
    pub fn new(a: Array2<F>, noise_cov: Array2<F>) -> Result<Self> {
        let (m, d) = a.dim();
        if m == 0 || d == 0 {
            return Err(Error::Empty {
                what: "observation matrix A",
            });
        }
        check::same_shape("noise covariance (M × M)", &[m, m], noise_cov.shape())?;
        check::finite("observation matrix A", &a)?;
        check::finite("noise covariance", &noise_cov)?;
        // Symmetry (absolute plus relative), symmetrisation without overflow, Cholesky and
        // an eigenvalue range fit for the float type: as for mixture components.
        let s = validate_covariance(noise_cov.mapv(|v| v.as_f64()).view(), float_range::<F>())
            .map_err(|reason| Error::NotPositiveDefinite {
                component: 0,
                reason: format!("noise covariance: {reason}"),
            })?
            .sym;
        let chol = linalg::cholesky(s.view()).map_err(|(j, p)| Error::NotPositiveDefinite {
            component: 0,
            reason: format!(
                "noise covariance (singular or indefinite): Cholesky pivot {j} is {p:?}"
            ),
        })?;
        let log_det: f64 = 2.0 * chol.diag().iter().map(|v| v.ln()).sum::<f64>();
        let log_norm = -0.5 * (m as f64 * (2.0 * std::f64::consts::PI).ln() + log_det);
        Ok(Self {
            a,
            noise_cov,
            chol,
            log_norm,
        })
    }
    /// `A`.
    pub fn matrix(&self) -> ArrayView2<'_, F> {
        self.a.view()
    }
    /// `Σ_n`.
    pub fn noise_cov(&self) -> ArrayView2<'_, F> {
        self.noise_cov.view()
    }
    /// The lower Cholesky factor `L` of `Σ_n = L Lᵀ` (f64).
    pub(crate) fn noise_cholesky(&self) -> ArrayView2<'_, f64> {
        self.chol.view()
    }
    /// Draw an observation `y = A x + L z` of one state `x` (`L Lᵀ = Σ_n`).
    pub fn observe(&self, x: ArrayView1<F>, rng: &mut dyn RngCore) -> Result<Array1<F>> {
        check::same_shape("x (length D)", &[self.a.ncols()], x.shape())?;
        check::finite("x", &x)?;
        let m = self.a.nrows();
        let z = Array1::<f64>::random_using(m, StandardNormal, rng);
        let n = self.chol.dot(&z);
        let ax = self.a.dot(&x);
        let y = Array1::from_iter(ax.iter().zip(&n).map(|(&v, &e)| v + F::lit(e)));
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "observation A x + n",
                index: i,
                reason: "it overflows the float type (A or x too large)".into(),
            });
        }
        Ok(y)
    }
    /// `log N(y; A x, Σ_n)` for every row `x` of `xs`.
    pub fn log_likelihood(&self, xs: ArrayView2<F>, y: ArrayView1<F>) -> Result<Array1<F>> {
        let (m, d) = self.a.dim();
        check::same_shape("x (columns = D)", &[d], &[xs.ncols()])?;
        check::same_shape("observation y", &[m], y.shape())?;
        check::finite("x", &xs)?;
        check::finite("observation y", &y)?;
        let a = self.a.mapv(|v| v.as_f64());
        let y = y.mapv(|v| v.as_f64());
        let mut out = Array1::<F>::zeros(xs.nrows());
        for (o, x) in out.iter_mut().zip(xs.rows()) {
            let r = &y - &a.dot(&x.mapv(|v| v.as_f64()));
            let w = linalg::solve_lower(self.chol.view(), r.view());
            *o = F::lit(self.log_norm - 0.5 * w.dot(&w));
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "log-likelihood log N(y; A x, Σ_n)",
                index: i,
                reason: "it is below the float range: y is too far from A x in units of the \
                         noise"
                    .into(),
            });
        }
        Ok(out)
    }
    /// The exact posterior of the mixture prior `prior` given `y`
    /// ([`GaussianMixture::posterior`]).
    pub fn posterior(
        &self,
        prior: &GaussianMixture<F>,
        y: ArrayView1<F>,
    ) -> Result<GaussianMixture<F>> {
        prior.posterior(self.a.view(), y, self.noise_cov.view())
    }
}
