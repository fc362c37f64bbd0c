//! Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).
//!
//! **Step conventions.** Every Langevin update in this crate is written
//! `x ← x + δ s + √(2δ) z` (Roberts & Tweedie 1996, eq. 1.2). Song & Ermon's Algorithm 1
//! writes the same update with `α_i = ε σ_i²/σ_L²` as `x ← x + (α_i/2) s + √α_i z`, so
//! `δ_i = α_i/2 = (ε/2) σ_i²/σ_L²`; their released code (NCSN `anneal_Langevin_dynamics`)
//! writes `x + step_size · s + √(2 step_size) z` with `step_size = step_lr σ_i²/σ_L²`, so
//! `δ_i = step_lr σ_i²/σ_L²`. Hence `step_lr = δ = ε/2`: [`AnnealedLangevin::new`] takes
//! the code's `step_lr` (our base `δ`), [`AnnealedLangevin::song_ermon`] the paper's `ε`.

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
/// `i = 1 … L`. At level `i` it takes `n` ULA steps `x ← x + δ_i s + √(2δ_i) z` with
/// `δ_i = δ σ_i²/σ_L²` — the paper's `α_i/2`, see the [module docs](self) for the two
/// conventions — on the score model evaluated at `t = σ_i` (a model whose time is the noise level; see
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
    /// `steps_per_level ≥ 1` steps each, base step `step > 0`: the Langevin step `δ_L` at
    /// `σ_min` in `x ← x + δ s + √(2δ) z` — the `step_lr` of Song & Ermon's code, half the
    /// `ε` of their paper (use [`AnnealedLangevin::song_ermon`] to pass `ε`).
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
    /// Song & Ermon's parameterisation by name (2019, Alg. 1): `α_i = ε σ_i²/σ_L²` and the
    /// update `x ← x + (α_i/2) s + √α_i z`, i.e. [`AnnealedLangevin::new`] with base step
    /// `δ = ε/2` (`eps > 0`).
    ///
    /// ```
    /// use score_sde::sample::AnnealedLangevin;
    /// let paper = AnnealedLangevin::<f64>::song_ermon(1.0, 0.01, 10, 100, 2e-5).unwrap();
    /// // α_L = ε at the last level, and the step taken is δ_L = α_L/2.
    /// assert_eq!(paper.song_ermon_alpha(9), 2e-5);
    /// assert_eq!(paper.delta(9), 1e-5);
    /// // The same sampler as `new` with the code's `step_lr = ε/2`.
    /// let code = AnnealedLangevin::<f64>::new(1.0, 0.01, 10, 100, 1e-5).unwrap();
    /// assert_eq!(code.delta(0), paper.delta(0));
    /// ```
    pub fn song_ermon(
        sigma_max: F,
        sigma_min: F,
        levels: usize,
        steps_per_level: usize,
        eps: F,
    ) -> Result<Self> {
        let eps = positive("eps", eps)?;
        Self::new(
            sigma_max,
            sigma_min,
            levels,
            steps_per_level,
            F::lit(0.5) * eps,
        )
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
    /// The Langevin step `δ_i = δ σ_i²/σ_L²` of level `i` (0-based) in
    /// `x ← x + δ_i s + √(2δ_i) z`.
    pub fn delta(&self, i: usize) -> F {
        let (sigma, sl) = (self.method.level(i), self.method.sigma_min);
        self.method.step * sigma * sigma / (sl * sl)
    }
    /// Song & Ermon's `α_i = ε σ_i²/σ_L² = 2 δ_i` of level `i` (0-based), the step of their
    /// Algorithm 1 `x ← x + (α_i/2) s + √α_i z`.
    pub fn song_ermon_alpha(&self, i: usize) -> F {
        F::lit(2.0) * self.delta(i)
    }
    /// Total steps `L · n` (`None` if it overflows `usize`).
    pub fn total_steps(&self) -> Option<usize> {
        self.method.levels.checked_mul(self.method.steps_per_level)
    }
}
