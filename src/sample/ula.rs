//! The unadjusted Langevin algorithm (Roberts & Tweedie 1996, eq. 1.2): MCMC for a fixed
//! target with the score model at one time, and the helpers the Langevin samplers share.
//!
//! **What `t` the score model sees.** The Langevin samplers call the same
//! [`ScoreModel`](crate::ScoreModel) as the diffusion samplers. ULA and MALA evaluate it at
//! one fixed time, [`score_time`](GridSampler::score_time) (default `0`):
//! [`AnalyticScore`](crate::gmm::AnalyticScore) at `t = 0` has `α = 1`, `σ = 0` and is the
//! exact score of its mixture, whatever the schedule; at `t = t_eps` it is the exact score
//! of `p_eps`. Annealed Langevin ([`AnnealedLangevin`](super::AnnealedLangevin)) evaluates
//! it at `t = σ_i`, the noise level itself: use a model whose time *is* the noise level,
//! such as `AnalyticScore` with the [`Edm`](crate::schedule::Edm) schedule (`α = 1`,
//! `σ(t) = t`), which is exactly the score of data `+ N(0, σ_i² I)` that SMLD/NCSN learns.
//!
//! ULA is biased at any fixed `δ` (its stationary law is not `π`; for `N(μ, v)` its
//! variance is `v / (1 − δ/(2v))`) and the bias shrinks with `δ`; MALA's accept/reject step
//! removes it at any `δ`, at the price of rejections.

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use crate::check::positive;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::Array2;
use rand::RngCore;

pub(super) fn nonzero_steps(name: &'static str, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::param(name, 0.0, "must be at least 1"));
    }
    Ok(n)
}

pub(super) fn score_time<F: Real>(t: F) -> Result<F> {
    if t.is_finite() && t >= F::zero() {
        Ok(t)
    } else {
        Err(Error::param(
            "score_time",
            t.as_f64(),
            "must be finite and >= 0",
        ))
    }
}

/// `steps` steps at the one level `t`: the plan of ULA and MALA (`steps + 1` entries,
/// checked against overflow before anything is allocated).
pub(super) fn fixed_level<F: Real>(t: F, steps: usize) -> Result<Plan<F>> {
    let len = crate::check::add_count("sampler plan (steps + 1)", steps, 1)?;
    let mut v = crate::check::vec_with_capacity("sampler plan (steps + 1)", len)?;
    v.resize(len, t);
    Plan::levels(v)
}

/// An `N(0, std² I)` initial batch of `n × dim`, drawn element by element from `rng`.
pub(super) fn gaussian_init<F: Real>(
    n: usize,
    dim: usize,
    std: F,
    rng: &mut dyn RngCore,
) -> Result<Array2<F>> {
    let mut x = crate::check::zeros_batch::<F>("initial batch (n × dim)", n, dim)?;
    for v in x.iter_mut() {
        *v = F::standard_normal(rng) * std;
    }
    Ok(x)
}

/// Rows `rows` of an `N(0, std² I)` batch drawn from `seed`, each row from its own stream
/// (so any row range equals those rows of the whole batch).
pub(super) fn gaussian_rows<F: Real>(
    seed: u64,
    rows: std::ops::Range<usize>,
    dim: usize,
    std: F,
) -> Result<Array2<F>> {
    let n = rows.end.saturating_sub(rows.start);
    let mut x = crate::check::zeros_batch::<F>("initial batch (n × dim)", n, dim)?;
    crate::num::RowNoise::for_rows(seed, rows.start, n).fill(x.view_mut());
    x.mapv_inplace(|v| v * std);
    Ok(x)
}

/// `x += δ s + √(2δ) z` over the whole batch, `z` drawn inside the update (one pass, no
/// noise buffer).
pub(super) fn langevin_update<F: Real>(
    ctx: &mut StepContext<'_, F>,
    x: &mut Array2<F>,
    delta: F,
    score: &Array2<F>,
) -> Result<()> {
    let c = (F::lit(2.0) * delta).sqrt();
    ctx.noise()?
        .update(x.view_mut(), score.view(), |x, s, z| x + delta * s + c * z);
    Ok(())
}

/// One ULA step `x ← x + δ s(x, t_s) + √(2δ) z` (see [`Ula`]).
#[derive(Debug, Clone)]
pub struct UlaStep<F> {
    step: F,
    init_std: F,
}

impl<F: Real> StepMethod<F> for UlaStep<F> {
    type State = Array2<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        match plan {
            Plan::Levels(_) => Ok(()),
            _ => Err(Error::Unsupported {
                what: "ULA on a grid or span",
                reason: "ULA runs at fixed levels (Plan::Levels)".into(),
            }),
        }
    }
    fn is_stochastic(&self) -> bool {
        true
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        gaussian_init(n, dim, self.init_std, rng)
    }
    fn initial_rows(
        &self,
        seed: u64,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<F>> {
        gaussian_rows(seed, rows, dim, self.init_std)
    }
    fn init(&self, _: &mut StepContext<'_, F>, x: &Array2<F>, _: &Plan<F>) -> Result<Array2<F>> {
        Ok(Array2::zeros(x.raw_dim()))
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        score: &mut Array2<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        ctx.model().score(x.view(), step.t_next, score.view_mut())?;
        langevin_update(ctx, x, self.step, score)?;
        Ok(Advance::Reached)
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
}

/// The unadjusted Langevin algorithm: `x ← x + δ s(x, t_s) + √(2δ) z` for `steps` steps
/// (Roberts & Tweedie 1996, eq. 1.2). NFE = `steps`. The [`GridSampler`] of a [`UlaStep`]
/// at one level.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::Ula;
/// use ndarray::{array, Array2};
/// use rand::SeedableRng;
/// // Target N(1, 0.25): ULA's stationary variance is v/(1 − δ/(2v)) = 0.25/0.98.
/// let target = GaussianMixture::gaussian(array![1.0_f64], array![[0.25]]).unwrap();
/// let model = AnalyticScore::new(target, Edm::default()); // t = 0: the exact score
/// let ula = Ula::new(0.01, 400).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
/// let run = ula.sample(&model, 4000, 1, &mut rng).unwrap();
/// let m = run.samples.mean().unwrap();
/// let v = run.samples.var(0.0);
/// assert!((m - 1.0).abs() < 0.03 && (v - 0.25 / 0.98).abs() < 0.02);
/// ```
pub type Ula<F> = GridSampler<F, UlaStep<F>>;

impl<F: Real> GridSampler<F, UlaStep<F>> {
    /// `steps ≥ 1` steps of size `step > 0`; score time 0; initial state `N(0, I)`.
    pub fn new(step: F, steps: usize) -> Result<Self> {
        let method = UlaStep {
            step: positive("step", step)?,
            init_std: F::one(),
        };
        GridSampler::with_plan(
            method,
            fixed_level(F::zero(), nonzero_steps("steps", steps)?)?,
        )
    }
    /// The time `t ≥ 0` at which the score model is evaluated.
    pub fn score_time(mut self, t: F) -> Result<Self> {
        let t = score_time(t)?;
        self.plan = fixed_level(t, self.plan.times().len() - 1)?;
        Ok(self)
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.method.init_std = positive("initial_std", s)?;
        Ok(self)
    }
}
