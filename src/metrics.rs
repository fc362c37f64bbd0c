//! Sample-quality metrics against an exact Gaussian-mixture target.
//!
//! The definitions are those of the peer harness (`shared/peers/README.md`), so our
//! figures and the Python peers' are comparable:
//!
//! | field | meaning |
//! |---|---|
//! | `mean_err` | `‖sample mean − mean of p_eps‖₂` |
//! | `cov_err_fro`, `cov_err_rel` | `‖sample cov − cov of p_eps‖_F` (and divided by `‖cov‖_F`) |
//! | `weight_tv` | total variation between the histogram of most-likely components (under `p_eps`) and `w` |
//! | `sw1` | sliced Wasserstein-1 to `N` exact samples of `p_eps`: mean over fixed unit directions of the mean absolute difference of sorted projections |
//! | `loglik_gap` | mean exact `log p_0` of `N` exact `p_0` samples minus that of the samples: `> 0` too spread, `< 0` too concentrated on the modes |
//! | `nonfinite` | rows with NaN/inf, dropped before the other metrics |
//!
//! The log-likelihood gap is the sharpest: SW1 saturates near its Monte-Carlo floor long
//! before the gap does. [`Reference::noise_floor`] measures the spread of every metric
//! over exact samples of the same size — differences inside it mean nothing.
//!
//! ```
//! use score_sde::metrics::Reference;
//! use score_sde::prelude::*;
//! let ring = problems::ring2d::<f64>();
//! let sde = VpSde::<f64>::default();
//! let reference = Reference::new(&ring, sde.schedule(), 1e-3, 2000, 777)?;
//! // Exact samples of p_eps score at the Monte-Carlo floor; a shrunken copy does not.
//! let exact = ring.diffuse(sde.schedule(), 1e-3)?;
//! let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(1);
//! let x = exact.sample(2000, &mut rng)?;
//! let good = reference.evaluate(x.view())?;
//! let bad = reference.evaluate((&x * 0.8).view())?;
//! // The exact batch's SW1 is Monte-Carlo error only (≈ 0.1 at N = 2000); shrinking the ring
//! // from radius 4 to 3.2 moves every projection by about 0.8 · E|cos| ≈ 0.5.
//! assert!(bad.sw1 > 3.0 * good.sw1);
//! // Off the modes by 0.8 = 2.7 component std: far less likely than exact samples.
//! assert!(bad.loglik_gap > 1.0);
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::check;
use crate::error::{Error, Result};
use crate::gmm::GaussianMixture;
use crate::num::Real;
use crate::schedule::Schedule;
use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;

/// Metrics of one batch of samples (see the module docs for definitions).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct Report {
    /// `‖sample mean − exact mean‖₂`.
    pub mean_err: f64,
    /// Frobenius norm of the covariance error.
    pub cov_err_fro: f64,
    /// `cov_err_fro / ‖exact cov‖_F`.
    pub cov_err_rel: f64,
    /// Total variation of the most-likely-component histogram against the weights.
    pub weight_tv: f64,
    /// Sliced Wasserstein-1 distance to the reference's exact samples.
    pub sw1: f64,
    /// Mean `log p_0` of exact `p_0` samples minus that of the samples.
    pub loglik_gap: f64,
    /// Mean `log p_0` of the samples.
    pub loglik_p0: f64,
    /// Rows dropped for being non-finite.
    pub nonfinite: usize,
}

/// `‖mean(x) − target.mean()‖₂`.
///
/// Every metric here errors with [`Error::NonFinite`] on NaN/inf samples (use
/// [`Reference::evaluate`] to drop and count them) and with [`Error::Unrepresentable`] if
/// the metric itself overflows (samples or means beyond ~1e154).
pub fn mean_error(x: ArrayView2<f64>, target: &GaussianMixture<f64>) -> Result<f64> {
    check_dim(&x, target)?;
    let m = sample_mean(x)?;
    let two_norm = |v: ndarray::Array1<f64>| v.mapv(|v| v * v).sum().sqrt();
    finite_metric("mean error", two_norm(&m - &target.mean()))
}

/// Error unless the samples have the target's dimension (columns) and are finite.
fn check_dim(x: &ArrayView2<f64>, target: &GaussianMixture<f64>) -> Result<()> {
    if x.ncols() != target.dim() {
        return Err(Error::shape(
            "samples (columns = target dimension)",
            target.dim(),
            x.ncols(),
        ));
    }
    check::finite("samples", x)
}

/// `v` if finite, else [`Error::Unrepresentable`] naming the metric.
fn finite_metric(what: &'static str, v: f64) -> Result<f64> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(Error::Unrepresentable {
            what,
            index: 0,
            reason: format!(
                "it evaluates to {v:?}: the samples or the target are too large for its squares"
            ),
        })
    }
}

fn sample_mean(x: ArrayView2<f64>) -> Result<Array1<f64>> {
    x.mean_axis(Axis(0)).ok_or(Error::Empty { what: "samples" })
}

/// Unbiased sample covariance of the rows of `x` (needs at least 2 rows).
pub fn sample_covariance(x: ArrayView2<f64>) -> Result<Array2<f64>> {
    if x.nrows() < 2 {
        return Err(Error::param(
            "samples",
            x.nrows() as f64,
            "need at least 2 rows for a covariance",
        ));
    }
    check::finite("samples", &x)?;
    let m = sample_mean(x)?;
    let c = &x - &m;
    let cov = c.t().dot(&c) / (x.nrows() as f64 - 1.0);
    if let Some(i) = cov.iter().position(|v| !v.is_finite()) {
        return Err(Error::Unrepresentable {
            what: "sample covariance",
            index: i,
            reason: "it overflows: the samples spread beyond ~1e154".into(),
        });
    }
    Ok(cov)
}

/// `(‖cov(x) − target.covariance()‖_F, that / ‖target.covariance()‖_F)`.
pub fn cov_error(x: ArrayView2<f64>, target: &GaussianMixture<f64>) -> Result<(f64, f64)> {
    check_dim(&x, target)?;
    let c = sample_covariance(x)?;
    let e = target.covariance();
    let fro = finite_metric("covariance error", (&c - &e).mapv(|v| v * v).sum().sqrt())?;
    let norm = finite_metric("target covariance norm", e.mapv(|v| v * v).sum().sqrt())?;
    Ok((fro, finite_metric("relative covariance error", fro / norm)?))
}

/// Total variation `½ Σ_k |h_k − w_k|` between the fraction `h_k` of rows whose most likely
/// component under `target` is `k`, and the weights `w_k`.
pub fn weight_tv(x: ArrayView2<f64>, target: &GaussianMixture<f64>) -> Result<f64> {
    let h = component_histogram(x, target)?;
    Ok(0.5
        * h.iter()
            .zip(target.weights())
            .map(|(a, b)| (a - b).abs())
            .sum::<f64>())
}

/// The fraction of rows whose most likely component under `target` is `k`, for each `k`.
pub fn component_histogram(
    x: ArrayView2<f64>,
    target: &GaussianMixture<f64>,
) -> Result<Array1<f64>> {
    check_dim(&x, target)?;
    let labels = target.most_likely_component(x)?;
    let mut h = Array1::<f64>::zeros(target.n_components());
    for k in &labels {
        h[*k] += 1.0;
    }
    Ok(h / labels.len().max(1) as f64)
}

/// Sliced Wasserstein-1 between the rows of `a` and `b` along the rows of `directions`
/// (unit vectors): the mean over directions of `mean_i |sort(a·d)_i − sort(b·d)_i|`.
/// `a` and `b` must have the same number of rows.
pub fn sliced_w1(
    a: ArrayView2<f64>,
    b: ArrayView2<f64>,
    directions: ArrayView2<f64>,
) -> Result<f64> {
    if a.nrows() != b.nrows() {
        return Err(Error::shape(
            "sliced W1 (equal sample counts)",
            a.nrows(),
            b.nrows(),
        ));
    }
    if a.ncols() != b.ncols() || a.ncols() != directions.ncols() {
        return Err(Error::shape(
            "sliced W1 (dimensions)",
            a.ncols(),
            (b.ncols(), directions.ncols()),
        ));
    }
    if a.nrows() == 0 || directions.nrows() == 0 {
        return Err(Error::Empty {
            what: "sliced W1 input",
        });
    }
    // NaN would sort to one end (total order) and give a NaN or meaningless distance.
    check::finite("sliced W1 samples a", &a)?;
    check::finite("sliced W1 samples b", &b)?;
    check::finite("sliced W1 directions", &directions)?;
    let mut total = 0.0;
    for d in directions.rows() {
        let mut pa = a.dot(&d).to_vec();
        let mut pb = b.dot(&d).to_vec();
        pa.sort_unstable_by(f64::total_cmp);
        pb.sort_unstable_by(f64::total_cmp);
        total += pa.iter().zip(&pb).map(|(x, y)| (x - y).abs()).sum::<f64>() / pa.len() as f64;
    }
    finite_metric("sliced W1", total / directions.nrows() as f64)
}

/// `n` unit directions in `dim` dimensions, drawn from a seeded PCG generator.
///
/// Errors: [`Error::Empty`] for `dim = 0` (no unit vector), [`Error::TooLarge`] if `n × dim`
/// values cannot be allocated (checked before allocating).
pub fn random_directions(n: usize, dim: usize, seed: u64) -> Result<Array2<f64>> {
    if dim == 0 {
        return Err(Error::Empty {
            what: "direction dimension",
        });
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut d: Array2<f64> = check::zeros("random directions", ndarray::Ix2(n, dim))?;
    for mut row in d.rows_mut() {
        for v in row.iter_mut() {
            *v = f64::standard_normal(&mut rng);
        }
        let norm = row.dot(&row).sqrt();
        row /= norm;
    }
    Ok(d)
}

/// Everything needed to score samples of a diffused mixture at the sampler's end time
/// `t_eps`: the exact `p_eps`, `N` exact draws of it, the fixed SW directions, and the mean
/// `log p_0` of `N` exact draws of `p_0`.
#[derive(Debug, Clone)]
pub struct Reference {
    p0: GaussianMixture<f64>,
    p_eps: GaussianMixture<f64>,
    exact: Array2<f64>,
    directions: Array2<f64>,
    loglik_p0_ref: f64,
}

impl Reference {
    /// Number of SW1 directions (as the peers use).
    pub const SW_DIRECTIONS: usize = 64;

    /// The reference for `p0` diffused by `schedule` to `t_eps`, with `n` exact samples.
    /// `seed` fixes the exact draws (`seed`, `seed + 1`) and the directions (`seed + 2`).
    pub fn new(
        p0: &GaussianMixture<f64>,
        schedule: &dyn Schedule<f64>,
        t_eps: f64,
        n: usize,
        seed: u64,
    ) -> Result<Self> {
        if n < 2 {
            return Err(Error::param(
                "n",
                n as f64,
                "need at least 2 reference samples",
            ));
        }
        let p_eps = p0.diffuse(schedule, t_eps)?;
        let exact = p_eps.sample(n, &mut rand_pcg::Pcg64::seed_from_u64(seed))?;
        let x0 = p0.sample(n, &mut rand_pcg::Pcg64::seed_from_u64(seed.wrapping_add(1)))?;
        let loglik_p0_ref = finite_metric(
            "reference mean log-likelihood",
            p0.log_prob(x0.view())?.mean().unwrap_or(f64::NAN),
        )?;
        let directions = random_directions(Self::SW_DIRECTIONS, p0.dim(), seed.wrapping_add(2))?;
        Ok(Self {
            p0: p0.clone(),
            p_eps,
            exact,
            directions,
            loglik_p0_ref,
        })
    }
    /// The data distribution `p_0`.
    pub fn p0(&self) -> &GaussianMixture<f64> {
        &self.p0
    }
    /// The exact target `p_eps`.
    pub fn p_eps(&self) -> &GaussianMixture<f64> {
        &self.p_eps
    }
    /// The exact samples of `p_eps` SW1 compares against.
    pub fn exact_samples(&self) -> ArrayView2<'_, f64> {
        self.exact.view()
    }
    /// Mean `log p_0` of the exact `p_0` samples (minus an entropy estimate).
    pub fn loglik_p0_ref(&self) -> f64 {
        self.loglik_p0_ref
    }

    /// Score a batch of samples (any float type; non-finite rows are dropped and counted).
    /// SW1 needs as many finite samples as the reference has; with fewer, the reference
    /// is truncated to the same count.
    pub fn evaluate<F: Real>(&self, samples: ArrayView2<F>) -> Result<Report> {
        if samples.ncols() != self.p0.dim() {
            return Err(Error::shape(
                "samples (columns = problem dimension)",
                self.p0.dim(),
                samples.ncols(),
            ));
        }
        let keep: Vec<usize> = samples
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(_, r)| r.iter().all(|v| v.is_finite()))
            .map(|(i, _)| i)
            .collect();
        let nonfinite = samples.nrows() - keep.len();
        let x = Array2::from_shape_fn((keep.len(), samples.ncols()), |(i, j)| {
            samples[[keep[i], j]].as_f64()
        });
        if x.nrows() < 2 {
            return Err(Error::Empty {
                what: "finite samples (fewer than 2)",
            });
        }
        let n = x.nrows().min(self.exact.nrows());
        let sw1 = sliced_w1(
            x.slice(ndarray::s![..n, ..]),
            self.exact.slice(ndarray::s![..n, ..]),
            self.directions.view(),
        )?;
        let (cov_err_fro, cov_err_rel) = cov_error(x.view(), &self.p_eps)?;
        let loglik_p0 = finite_metric(
            "mean log-likelihood",
            self.p0.log_prob(x.view())?.mean().unwrap_or(f64::NAN),
        )?;
        Ok(Report {
            mean_err: mean_error(x.view(), &self.p_eps)?,
            cov_err_fro,
            cov_err_rel,
            weight_tv: weight_tv(x.view(), &self.p_eps)?,
            sw1,
            loglik_gap: finite_metric("log-likelihood gap", self.loglik_p0_ref - loglik_p0)?,
            loglik_p0,
            nonfinite,
        })
    }

    /// Reports of fresh exact `p_eps` samples of size `n`, one per seed: the Monte-Carlo
    /// spread of every metric at that sample size (the "noise floor").
    pub fn noise_floor(&self, n: usize, seeds: &[u64]) -> Result<Vec<Report>> {
        seeds
            .iter()
            .map(|&s| {
                self.evaluate(
                    self.p_eps
                        .sample(n, &mut rand_pcg::Pcg64::seed_from_u64(s))?
                        .view(),
                )
            })
            .collect()
    }
}
