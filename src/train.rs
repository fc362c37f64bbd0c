//! Denoising score matching, backend-independent (Vincent 2011; Song et al. 2021, eq. 7;
//! Ho et al. 2020; Karras et al. 2022).
//!
//! For `x_t = α(t) x_0 + σ(t) z`, the conditional score `∇ log p(x_t | x_0) = −z/σ` is an
//! unbiased regression target for `∇ log p_t(x_t)`:
//!
//! ```text
//! L(θ) = E_t E_{x_0} E_z [ λ(t) ‖s_θ(x_t, t) + z/σ(t)‖² ]
//!      = E_t [ λ(t) E ‖s_θ − ∇ log p_t‖² ] + C          (Vincent 2011, eq. 11)
//! ```
//!
//! so the exact score attains the minimum `C = E_t λ(t) E[D/σ² − ‖∇ log p_t‖²]`. A network
//! predicting ε, x̂₀ or v regresses on `z`, `x_0` or `v = α z − σ x_0`; the weight `λ(t)` of
//! the score-space loss is carried into the prediction's space exactly
//! ([`TrainingBatch::loss`]), so every parameterisation optimises the same objective.
//! Times are continuous or, as in DDPM, discrete indices ([`TimeSampling::Discrete`]).
//!
//! Two score-matching losses that need no noise model, on samples of the target itself:
//! implicit score matching ([`implicit_score_matching`], Hyvärinen 2005) and sliced score
//! matching with its variance-reduced form ([`SlicedScoreMatching`], Song et al. 2019).
//! Both equal `½ E ‖s_θ − ∇ log p‖² − ½ E ‖∇ log p‖²`, so the exact score attains
//! `−½ E ‖∇ log p‖²`.

mod implicit;
mod sliced;

pub use implicit::implicit_score_matching;
pub use sliced::SlicedScoreMatching;

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::Parameterization;
use crate::sde::MarginalSde;
use ndarray::{Array1, Array2, ArrayView2, Zip};
use ndarray_rand::RandomExt;
use ndarray_rand::rand_distr::{StandardNormal, Uniform};
use rand::RngCore;

/// How the training times are drawn, per row.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TimeSampling {
    /// `t ~ U[t_min, T]` over the SDE's range (Song et al. 2021).
    Uniform,
    /// `ln σ̃ ~ N(p_mean, p_std²)` for the noise level `σ̃ = σ/α` (Karras et al. 2022,
    /// Table 1: `p_mean = −1.2`, `p_std = 1.2`), mapped to `t` by the inverse log-SNR and
    /// clamped to the SDE's time range.
    LogNormal {
        /// Mean of `ln σ̃`.
        p_mean: f64,
        /// Standard deviation of `ln σ̃` (> 0).
        p_std: f64,
    },
    /// A discrete timestep index `k` uniform in `{1, …, steps}` at `t = T k/steps` (Ho et al.
    /// 2020, Alg. 1: `t ~ Uniform({1, …, T})`). With a [`DiscreteVp`](crate::schedule::DiscreteVp)
    /// table of `N = steps` betas, `t` is the knot `k/N` where `α(t)² = ᾱ_k` exactly, and
    /// [`TrainingBatch::index`] holds `k` (diffusers' 0-based timestep is `k − 1`). Every
    /// `T k/steps` must lie in the SDE's time range.
    Discrete {
        /// The number of timesteps `N` (`≥ 1`).
        steps: usize,
    },
}

impl TimeSampling {
    /// EDM's log-normal with `p_mean = −1.2`, `p_std = 1.2`.
    pub const EDM: TimeSampling = TimeSampling::LogNormal {
        p_mean: -1.2,
        p_std: 1.2,
    };
}

/// The weight `λ(t)` of the score-space loss `λ(t) ‖s − s*‖²`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Weighting {
    /// `λ = 1`.
    Unit,
    /// `λ = σ(t)²` (Song et al. 2021, eq. 7 and §3.3): the ε-prediction loss of Ho et al. 2020.
    Sigma2,
    /// `λ = g(t)²`, the likelihood weighting (Song, Durkan et al. 2021, Thm. 1).
    Likelihood,
    /// EDM's `λ_D(σ̃) = (σ̃² + σ_d²)/(σ̃ σ_d)²` on the denoiser loss `‖D − x_0‖²` in the
    /// scaled variable `x/α` (Karras et al. 2022, eq. 8 and Table 1), i.e.
    /// `λ = λ_D σ⁴/α²` in score space.
    Edm {
        /// The data standard deviation `σ_d` (0.5 in the paper).
        sigma_data: f64,
    },
}

/// A denoising-score-matching batch: times, noised inputs, noise, and the regression
/// target for one parameterisation, with per-row loss weights in that parameterisation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TrainingBatch<F> {
    /// Time per row.
    pub t: Array1<F>,
    /// The network input `x_t = α x_0 + σ z`.
    pub x_t: Array2<F>,
    /// The noise `z`.
    pub noise: Array2<F>,
    /// The regression target: `−z/σ` (score), `z` (noise), `x_0` (data), `α z − σ x_0` (velocity).
    pub target: Array2<F>,
    /// Per-row weight `c_i` with `c_i ‖pred_i − target_i‖² = λ(t_i) ‖s_i − s*_i‖²`.
    pub weight: Array1<F>,
    /// What the target is.
    pub parameterization: Parameterization,
    /// The discrete timestep `k ∈ {1, …, N}` of each row with [`TimeSampling::Discrete`]
    /// (`t = T k/N`), `None` for continuous times.
    pub index: Option<Array1<usize>>,
}

/// The factor carrying a score-space weight into prediction space: with
/// `x = α x_0 + σ ε`, `‖s − s*‖² = ‖ε − ε*‖²/σ² = α² ‖x̂_0 − x_0‖²/σ⁴ = α² ‖v − v*‖²/(σ² (α² + σ²)²)`.
pub fn prediction_space_factor<F: Real>(kind: Parameterization, alpha: F, sigma: F) -> F {
    let s2 = sigma * sigma;
    match kind {
        Parameterization::Score => F::one(),
        Parameterization::Noise => F::one() / s2,
        Parameterization::Data => alpha * alpha / (s2 * s2),
        Parameterization::Velocity => {
            let n = alpha * alpha + s2;
            alpha * alpha / (s2 * n * n)
        }
    }
}

/// The score-space weight `λ(t)` of `weighting` for `sde`.
pub fn score_space_weight<F: Real>(weighting: Weighting, sde: &dyn MarginalSde<F>, t: F) -> F {
    let sch = sde.schedule();
    let (a, s) = (sch.alpha(t), sch.sigma(t));
    match weighting {
        Weighting::Unit => F::one(),
        Weighting::Sigma2 => s * s,
        Weighting::Likelihood => sch.g2(t),
        Weighting::Edm { sigma_data } => {
            let sd = F::lit(sigma_data);
            let st = s / a;
            let lam_d = (st * st + sd * sd) / (st * st * sd * sd);
            lam_d * s * s * s * s / (a * a)
        }
    }
}

/// Draw one time per row (ndarray-rand's uniform and normal arrays).
pub fn sample_times<F: Real>(
    sde: &dyn MarginalSde<F>,
    sampling: TimeSampling,
    n: usize,
    rng: &mut dyn RngCore,
) -> Result<Array1<F>> {
    Ok(draw_times(sde, sampling, n, rng)?.0)
}

/// The times, and the discrete indices for [`TimeSampling::Discrete`].
fn draw_times<F: Real>(
    sde: &dyn MarginalSde<F>,
    sampling: TimeSampling,
    n: usize,
    rng: &mut dyn RngCore,
) -> Result<(Array1<F>, Option<Array1<usize>>)> {
    let (lo, hi) = sde.t_range();
    // n is the caller's: checked before the allocations below (at most 8 bytes an entry).
    check::allocation::<f64>("training times", n)?;
    match sampling {
        TimeSampling::Uniform => {
            let (a, b) = (lo.as_f64(), hi.as_f64());
            let u = Uniform::new(a, b)
                .map_err(|_| Error::param("t range", a, "must be finite with t_min < T"))?;
            let t = Array1::<f64>::random_using(n, u, rng);
            Ok((t.mapv(|v| F::lit(v).max(lo).min(hi)), None))
        }
        TimeSampling::LogNormal { p_mean, p_std } => {
            if !(p_mean.is_finite()) {
                return Err(Error::param("p_mean", p_mean, "must be finite"));
            }
            if !(p_std.is_finite() && p_std > 0.0) {
                return Err(Error::param("p_std", p_std, "must be finite and > 0"));
            }
            let ln_sigma = Array1::<f64>::random_using(n, StandardNormal, rng);
            let mut t = Array1::zeros(n);
            for (v, &z) in t.iter_mut().zip(&ln_sigma) {
                let ti = sde.schedule().t_of_log_snr(F::lit(-(p_mean + p_std * z)))?;
                *v = ti.max(lo).min(hi);
            }
            Ok((t, None))
        }
        TimeSampling::Discrete { steps } => {
            if steps == 0 {
                return Err(Error::param("steps", 0.0, "must be at least 1"));
            }
            let first = hi / F::from_usize_lossy(steps);
            crate::schedule::check_time(first, (lo, hi))?;
            let index = Uniform::new_inclusive(1, steps)
                .map_err(|_| Error::param("steps", steps as f64, "must be at least 1"))?;
            let k = Array1::<usize>::random_using(n, index, rng);
            let t = k.mapv(|k| hi * F::from_usize_lossy(k) / F::from_usize_lossy(steps));
            Ok((t, Some(k)))
        }
    }
}

/// Build a training batch from data `x0` (rows are samples).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::train::{make_batch, TimeSampling, Weighting};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let x0 = problems::ring2d::<f64>().sample(256, &mut rng).unwrap();
/// let b = make_batch(&sde, x0.view(), TimeSampling::Uniform, Parameterization::Noise, Weighting::Sigma2, &mut rng).unwrap();
/// // ε-prediction with σ² weighting is Ho et al.'s unweighted loss: every weight is 1.
/// assert!(b.weight.iter().all(|w| (w - 1.0).abs() < 1e-12));
/// assert_eq!(b.target, b.noise);
/// ```
pub fn make_batch<F: Real>(
    sde: &dyn MarginalSde<F>,
    x0: ArrayView2<F>,
    sampling: TimeSampling,
    kind: Parameterization,
    weighting: Weighting,
    rng: &mut dyn RngCore,
) -> Result<TrainingBatch<F>> {
    check::nonempty_batch("training data", &x0)?;
    check::finite("training data", &x0)?;
    if let Weighting::Edm { sigma_data } = weighting {
        if !(sigma_data.is_finite() && sigma_data > 0.0) {
            return Err(Error::param(
                "sigma_data",
                sigma_data,
                "must be finite and > 0",
            ));
        }
    }
    let n = x0.nrows();
    let (t, index) = draw_times(sde, sampling, n, rng)?;
    let noise = Array2::<f64>::random_using(x0.raw_dim(), StandardNormal, rng).mapv(F::lit);
    let sch = sde.schedule();
    let mut x_t = Array2::<F>::zeros(x0.raw_dim());
    let mut target = Array2::<F>::zeros(x0.raw_dim());
    let mut weight = Array1::<F>::zeros(n);
    Zip::from(x_t.rows_mut())
        .and(target.rows_mut())
        .and(&mut weight)
        .and(x0.rows())
        .and(noise.rows())
        .and(&t)
        .for_each(|mut xt, mut tg, w, x, z, &ti| {
            let (a, s) = (sch.alpha(ti), sch.sigma(ti));
            Zip::from(&mut xt)
                .and(&mut tg)
                .and(&x)
                .and(&z)
                .for_each(|xt, tg, &x, &z| {
                    *xt = a * x + s * z;
                    *tg = match kind {
                        Parameterization::Score => -z / s,
                        Parameterization::Noise => z,
                        Parameterization::Data => x,
                        Parameterization::Velocity => a * z - s * x,
                    };
                });
            *w = score_space_weight(weighting, sde, ti) * prediction_space_factor(kind, a, s);
        });
    // Huge data or a weighting that divides by σ⁴ near t_min can overflow: an error, not a
    // batch holding inf.
    for (what, ok) in [
        ("training batch x_t", check::all_finite(&x_t)),
        ("training batch target", check::all_finite(&target)),
        ("training batch weight", check::all_finite(&weight)),
    ] {
        if !ok {
            return Err(Error::Unrepresentable {
                what,
                index: 0,
                reason: "it overflows the float type (data too large, or a weighting that \
                         divides by a power of σ(t) near t = 0)"
                    .into(),
            });
        }
    }
    Ok(TrainingBatch {
        t,
        x_t,
        noise,
        target,
        weight,
        parameterization: kind,
        index,
    })
}

impl<F: Real> TrainingBatch<F> {
    /// Per-row weighted losses `c_i ‖pred_i − target_i‖²`.
    pub fn row_losses(&self, prediction: ArrayView2<F>) -> Result<Array1<F>> {
        check::same_shape("prediction", self.target.shape(), prediction.shape())?;
        check::finite("prediction", &prediction)?;
        let mut out = Array1::zeros(self.t.len());
        Zip::from(&mut out)
            .and(prediction.rows())
            .and(self.target.rows())
            .and(&self.weight)
            .for_each(|o, p, tg, &w| {
                let mut acc = F::zero();
                for (a, b) in p.iter().zip(tg) {
                    acc += (*a - *b) * (*a - *b);
                }
                *o = w * acc;
            });
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::Unrepresentable {
                what: "training loss",
                index: i,
                reason: "the weighted squared error overflows the float type".into(),
            });
        }
        Ok(out)
    }
    /// The batch loss: the mean of [`TrainingBatch::row_losses`].
    pub fn loss(&self, prediction: ArrayView2<F>) -> Result<F> {
        let r = self.row_losses(prediction)?;
        // The mean as Σ (r_i / n): each term is finite, and so is their sum.
        let n = F::from_usize_lossy(r.len());
        Ok(r.iter().fold(F::zero(), |acc, &v| acc + v / n))
    }
}

/// How [`implicit_score_matching`] gets the trace of the score's Jacobian.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TraceMethod {
    /// The model's exact divergence ([`ScoreModel::divergence`](crate::ScoreModel::divergence)).
    #[default]
    Exact,
    /// Central differences along the `D` coordinate axes (`2D` score calls).
    FiniteDifference,
}

/// A score-matching objective evaluated on a batch: one value per row and their mean.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ScoreMatchingLoss<F> {
    /// The per-row objective.
    pub rows: Array1<F>,
    /// The batch mean (the loss to minimise).
    pub mean: F,
    /// Score calls on the batch.
    pub nfe: usize,
}

impl<F: Real> ScoreMatchingLoss<F> {
    /// Wrap per-row values; a non-finite value is an error, not an `Ok` holding NaN.
    pub(crate) fn new(rows: Array1<F>, nfe: usize) -> Result<Self> {
        if let Some(i) = rows.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "score-matching loss",
                index: i,
                value: rows[i].as_f64(),
            });
        }
        let mean = rows.sum() / F::from_usize_lossy(rows.len());
        Ok(Self { rows, mean, nfe })
    }
}

/// Error unless `x` is a non-empty, finite batch of the model's dimension: the input check of
/// the score-matching losses.
fn check_batch<F: Real>(model: &dyn crate::score::ScoreModel<F>, x: &ArrayView2<F>) -> Result<()> {
    check::nonempty_batch("score-matching batch", x)?;
    check::finite("score-matching batch", x)?;
    if let Some(d) = model.dim() {
        if d != x.ncols() {
            return Err(Error::shape("x (columns = model dimension)", d, x.ncols()));
        }
    }
    Ok(())
}
