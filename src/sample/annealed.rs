//! Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::ula::{gaussian_init, gaussian_rows, langevin_update, nonzero_steps};
use crate::check::positive;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::Array2;
use rand::RngCore;

/// One annealed-Langevin step at the level `σ_i` the plan gives (see [`AnnealedLangevin`]).
#[derive(Debug, Clone)]
pub struct AnnealedLangevinStep<F> {
    sigma_max: F,
    sigma_min: F,
    levels: usize,
    steps_per_level: usize,
    step: F,
    init_std: F,
}

impl<F: Real> AnnealedLangevinStep<F> {
    /// The noise level of level `i` (0-based): `σ_max (σ_min/σ_max)^{i/(L−1)}`, the last
    /// one exactly `σ_min`.
    pub fn level(&self, i: usize) -> F {
        if i + 1 >= self.levels {
            return self.sigma_min;
        }
        let u = F::from_usize_lossy(i) / F::from_usize_lossy(self.levels - 1);
        self.sigma_max * (self.sigma_min / self.sigma_max).powf(u)
    }
    /// The plan: the starting level, then each level repeated `steps_per_level` times
    /// (the size checked before anything is allocated).
    fn plan(&self) -> Result<Plan<F>> {
        const WHAT: &str = "annealed Langevin plan (levels × steps_per_level + 1)";
        let steps = crate::check::elements(WHAT, &[self.levels, self.steps_per_level])?;
        let len = crate::check::add_count(WHAT, steps, 1)?;
        let mut v = crate::check::vec_with_capacity(WHAT, len)?;
        v.push(self.level(0));
        for i in 0..self.levels {
            let sigma = self.level(i);
            v.extend(std::iter::repeat_n(sigma, self.steps_per_level));
        }
        Plan::levels(v)
    }
}

impl<F: Real> StepMethod<F> for AnnealedLangevinStep<F> {
    type State = Array2<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        match plan {
            Plan::Levels(_) => Ok(()),
            _ => Err(Error::Unsupported {
                what: "annealed Langevin on a grid or span",
                reason: "it runs at noise levels (Plan::Levels)".into(),
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
        let sigma = step.t_next;
        let sl2 = self.sigma_min * self.sigma_min;
        let delta = self.step * sigma * sigma / sl2;
        ctx.model().score(x.view(), sigma, score.view_mut())?;
        langevin_update(ctx, x, delta, score)?;
        Ok(Advance::Reached)
    }
    /// The noise is data `+ N(0, σ² I)` at level `t = σ`: `α = 1`, `σ = t`.
    fn marginal(&self, t: F) -> Option<(F, F)> {
        Some((F::one(), t))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
}

/// Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): the [`GridSampler`] of an
/// [`AnnealedLangevinStep`] over its levels.
///
/// Noise levels form a geometric ladder `σ_i = σ_max (σ_min/σ_max)^{(i−1)/(L−1)}`,
/// `i = 1 … L`. At level `i` it takes `n` ULA steps with `δ_i = δ σ_i²/σ_L²` on the score
/// model evaluated at `t = σ_i` (a model whose time is the noise level; see
/// [`Ula`](super::Ula)'s module docs). NFE = `L · n` (+1 with
/// [`GridSampler::denoise_final`], which returns `x + σ_L² s(x, σ_L)`, Tweedie's formula
/// for `α = 1`). The observer sees steps `1 … L·n` with `t = σ_i`. The initial state is
/// `N(0, σ_max² I)` by default.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::AnnealedLangevin;
/// use rand::SeedableRng;
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), Edm::default());
/// let ald = AnnealedLangevin::new(10.0, 0.05, 10, 30, 2e-4).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
/// let run = ald.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 300);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// ```
pub type AnnealedLangevin<F> = GridSampler<F, AnnealedLangevinStep<F>>;

impl<F: Real> GridSampler<F, AnnealedLangevinStep<F>> {
    /// `levels ≥ 2` noise levels from `sigma_max` down to `sigma_min` (`0 < σ_min < σ_max`),
    /// `steps_per_level ≥ 1` steps each, base step `step > 0` (the step at `σ_min`).
    pub fn new(
        sigma_max: F,
        sigma_min: F,
        levels: usize,
        steps_per_level: usize,
        step: F,
    ) -> Result<Self> {
        positive("sigma_min", sigma_min)?;
        if !(sigma_max.is_finite() && sigma_max > sigma_min) {
            return Err(Error::param(
                "sigma_max",
                sigma_max.as_f64(),
                "must be finite and > sigma_min",
            ));
        }
        if levels < 2 {
            return Err(Error::param("levels", levels as f64, "must be at least 2"));
        }
        let method = AnnealedLangevinStep {
            sigma_max,
            sigma_min,
            levels,
            steps_per_level: nonzero_steps("steps_per_level", steps_per_level)?,
            step: positive("step", step)?,
            init_std: sigma_max,
        };
        let plan = method.plan()?;
        GridSampler::with_plan(method, plan)
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.method.init_std = positive("initial_std", s)?;
        Ok(self)
    }
    /// The noise level of level `i` (0-based).
    pub fn level(&self, i: usize) -> F {
        self.method.level(i)
    }
    /// Total steps `L · n` (`None` if it overflows `usize`).
    pub fn total_steps(&self) -> Option<usize> {
        self.method.levels.checked_mul(self.method.steps_per_level)
    }
}
