//! Density baselines fitted to data, as [`GaussianMixture`]s so that the crate computes their
//! exact log-densities: a single Gaussian by maximum likelihood and a Gaussian mixture by
//! expectation–maximisation (Dempster, Laird & Rubin 1977; Bishop 2006, §9.2.2).

use crate::error::{Error, Result};
use crate::gmm::GaussianMixture;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rand::{Rng, SeedableRng};

/// Settings of [`fit_mixture`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmConfig {
    /// Number of components `K` (default 10).
    pub components: usize,
    /// `λ` added to every covariance's diagonal after each M-step (default 10⁻²): keeps the
    /// covariances positive definite and acts as a prior against over-fitting
    /// (scikit-learn's `reg_covar`).
    pub ridge: f64,
    /// Iteration limit (default 300).
    pub max_iter: usize,
    /// Stop when the mean log-likelihood rises by less than this many nats (default 10⁻⁶).
    pub tol: f64,
    /// Seed of the k-means++ initialisation (default 0).
    pub seed: u64,
}

impl Default for EmConfig {
    fn default() -> Self {
        Self {
            components: 10,
            ridge: 1e-2,
            max_iter: 300,
            tol: 1e-6,
            seed: 0,
        }
    }
}

impl EmConfig {
    /// Set the number of components.
    pub fn components(mut self, k: usize) -> Self {
        self.components = k;
        self
    }
    /// Set the covariance ridge `λ`.
    pub fn ridge(mut self, ridge: f64) -> Self {
        self.ridge = ridge;
        self
    }
    /// Set the iteration limit.
    pub fn max_iter(mut self, n: usize) -> Self {
        self.max_iter = n;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// What [`fit_mixture`] did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EmReport {
    /// EM iterations run.
    pub iterations: usize,
    /// Mean log-likelihood of the data under the returned mixture (nats).
    pub mean_log_lik: f64,
    /// Whether the `tol` criterion was met (otherwise `max_iter` was reached).
    pub converged: bool,
}

/// The maximum-likelihood Gaussian of the rows of `x`: the sample mean and the covariance
/// `(1/N) Σ (x − μ)(x − μ)ᵀ + ridge · I`.
pub fn fit_gaussian(x: ArrayView2<f64>, ridge: f64) -> Result<GaussianMixture<f64>> {
    check_data(x, ridge)?;
    let w = Array1::ones(x.nrows());
    let (mean, cov) = weighted_moments(x, w.view(), ridge);
    GaussianMixture::gaussian(mean, cov)
}

/// A `K`-component full-covariance Gaussian mixture fitted to the rows of `x` by EM, started
/// from k-means++ seeds (Arthur & Vassilvitskii 2007) with hard assignments. The E-step is
/// [`GaussianMixture::responsibilities`]; the M-step sets `w_k = N_k/N`,
/// `μ_k = Σ r_ik x_i / N_k`, `S_k = Σ r_ik (x_i − μ_k)(x_i − μ_k)ᵀ / N_k + λ I`. A component
/// whose responsibilities sum to less than one point is re-seeded at the worst-explained point
/// with the data's covariance.
pub fn fit_mixture(
    x: ArrayView2<f64>,
    config: &EmConfig,
) -> Result<(GaussianMixture<f64>, EmReport)> {
    check_data(x, config.ridge)?;
    let n = x.nrows();
    let k = config.components;
    if k == 0 || k > n {
        return Err(Error::param(
            "components",
            k as f64,
            "must be at least 1 and at most the number of rows",
        ));
    }
    if !(config.tol.is_finite() && config.tol >= 0.0) {
        return Err(Error::param("tol", config.tol, "must be finite and >= 0"));
    }
    let (_, global_cov) = weighted_moments(x, Array1::ones(n).view(), config.ridge);
    // Hard assignment to the nearest k-means++ seed as the first responsibilities.
    let seeds = kmeans_pp(x, k, config.seed);
    let mut resp = Array2::<f64>::zeros((n, k));
    for (i, row) in x.rows().into_iter().enumerate() {
        let best = (0..k)
            .map(|c| (c, sq_dist(row.iter(), seeds.row(c).iter())))
            .fold((0, f64::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
        resp[[i, best.0]] = 1.0;
    }
    let mut gm = m_step(x, &resp, config.ridge, &global_cov, None)?;
    let mut previous: Option<f64> = None;
    let mut iterations = 0;
    loop {
        let log_p = gm.log_prob(x)?;
        let ll = log_p.mean().unwrap_or(f64::NAN);
        if !ll.is_finite() {
            return Err(Error::NonFinite {
                what: "EM mean log-likelihood",
                index: iterations,
                value: ll,
            });
        }
        // EM never lowers the likelihood (up to the ridge's prior), so a small change in
        // either direction means it has settled.
        let converged = previous.is_some_and(|p| (ll - p).abs() < config.tol);
        if converged || iterations == config.max_iter {
            let report = EmReport {
                iterations,
                mean_log_lik: ll,
                converged,
            };
            return Ok((gm, report));
        }
        previous = Some(ll);
        resp = gm.responsibilities(x)?;
        gm = m_step(x, &resp, config.ridge, &global_cov, Some(log_p.view()))?;
        iterations += 1;
    }
}

fn check_data(x: ArrayView2<f64>, ridge: f64) -> Result<()> {
    if x.nrows() < 2 || x.ncols() == 0 {
        return Err(Error::Empty {
            what: "baseline data (needs at least 2 rows and 1 column)",
        });
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: "baseline data",
            index: i,
            value: x.iter().nth(i).copied().unwrap_or(f64::NAN),
        });
    }
    if !(ridge.is_finite() && ridge >= 0.0) {
        return Err(Error::param("ridge", ridge, "must be finite and >= 0"));
    }
    Ok(())
}

/// Weighted mean and covariance `Σ w (x − μ)(x − μ)ᵀ / Σ w + ridge · I`.
fn weighted_moments(
    x: ArrayView2<f64>,
    w: ndarray::ArrayView1<f64>,
    ridge: f64,
) -> (Array1<f64>, Array2<f64>) {
    let total = w.sum();
    let mean = w.dot(&x) / total;
    let mut centred = &x - &mean.view().insert_axis(Axis(0));
    for (mut row, &wi) in centred.rows_mut().into_iter().zip(w) {
        row *= wi.sqrt();
    }
    let mut cov = centred.t().dot(&centred) / total;
    // Symmetrise exactly (the product is symmetric up to rounding) and add the ridge.
    let d = cov.nrows();
    for i in 0..d {
        for j in 0..i {
            let s = 0.5 * (cov[[i, j]] + cov[[j, i]]);
            cov[[i, j]] = s;
            cov[[j, i]] = s;
        }
        cov[[i, i]] += ridge;
    }
    (mean, cov)
}

fn m_step(
    x: ArrayView2<f64>,
    resp: &Array2<f64>,
    ridge: f64,
    global_cov: &Array2<f64>,
    log_p: Option<ndarray::ArrayView1<f64>>,
) -> Result<GaussianMixture<f64>> {
    let (n, d) = x.dim();
    let k = resp.ncols();
    let mut weights = Array1::<f64>::zeros(k);
    let mut means = Array2::<f64>::zeros((k, d));
    let mut covs = Array3::<f64>::zeros((k, d, d));
    // Points for re-seeding empty components: the worst explained first.
    let mut worst: Vec<usize> = (0..n).collect();
    if let Some(lp) = log_p {
        worst.sort_by(|&a, &b| lp[a].total_cmp(&lp[b]));
    }
    let mut next_worst = worst.into_iter();
    for c in 0..k {
        let r = resp.column(c);
        let nk = r.sum();
        if nk >= 1.0 {
            let (mu, cov) = weighted_moments(x, r, ridge);
            weights[c] = nk / n as f64;
            means.row_mut(c).assign(&mu);
            covs.index_axis_mut(Axis(0), c).assign(&cov);
        } else {
            let i = next_worst.next().unwrap_or(c % n);
            weights[c] = 1.0 / n as f64;
            means.row_mut(c).assign(&x.row(i));
            covs.index_axis_mut(Axis(0), c).assign(global_cov);
        }
    }
    weights /= weights.sum();
    GaussianMixture::new(weights, means, covs)
}

/// k-means++ seeds: the first a uniform row, each next one a row drawn with probability
/// proportional to its squared distance to the nearest seed so far.
fn kmeans_pp(x: ArrayView2<f64>, k: usize, seed: u64) -> Array2<f64> {
    let n = x.nrows();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut seeds = Array2::<f64>::zeros((k, x.ncols()));
    seeds.row_mut(0).assign(&x.row(rng.random_range(0..n)));
    let mut d2: Vec<f64> = x
        .rows()
        .into_iter()
        .map(|r| sq_dist(r.iter(), seeds.row(0).iter()))
        .collect();
    for c in 1..k {
        let total: f64 = d2.iter().sum();
        let pick = if total > 0.0 {
            let mut u = rng.random::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &v) in d2.iter().enumerate() {
                if u < v {
                    chosen = i;
                    break;
                }
                u -= v;
            }
            chosen
        } else {
            rng.random_range(0..n)
        };
        seeds.row_mut(c).assign(&x.row(pick));
        for (i, r) in x.rows().into_iter().enumerate() {
            d2[i] = d2[i].min(sq_dist(r.iter(), seeds.row(c).iter()));
        }
    }
    seeds
}

fn sq_dist<'a>(a: impl Iterator<Item = &'a f64>, b: impl Iterator<Item = &'a f64>) -> f64 {
    a.zip(b).map(|(p, q)| (p - q) * (p - q)).sum()
}
