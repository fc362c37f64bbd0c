//! The predictor–corrector sampler (Song et al. 2021, §4.2, Alg. 1; score_sde's
//! `get_pc_sampler`), for any [`ForwardSde`].
//!
//! Over a decreasing [`TimeGrid`] `T = t_0 > t_1 > … > t_n = t_min`, step `i` runs the
//! [`Predictor`] from `t_i` to `t_{i+1}` and the [`Corrector`] (its configured number of
//! MCMC steps) at a grid time, in either order ([`PcOrder`]):
//!
//! * [`PcOrder::CorrectorFirst`] (the default, as score_sde's code): the corrector at
//!   `t_i`, then the predictor;
//! * [`PcOrder::PredictorFirst`] (the paper's Algorithm 1): the predictor, then the
//!   corrector at `t_{i+1}`.
//!
//! The last predictor step adds no noise (score_sde's `noise_removal`);
//! [`GridSampler::denoise_final`] optionally applies Tweedie's `x̂_0 = (x + σ² s)/α` at
//! `t_min` afterwards (one more score call). Predictor-only and corrector-only sampling are
//! [`NoCorrector`] / [`NoPredictor`](super::NoPredictor) (score_sde's
//! `NoneCorrector` / `NonePredictor`).
//!
//! NFE = `n · (predictor + corrector steps) + [denoise]`. The observer is called after every
//! grid step (step `i + 1`, time `t_{i+1}`) and, with denoising, once more as step `n + 1`
//! at `t_min`. An observer that constrains the state (inpainting,
//! [`Imputation`](crate::condition::Imputation)) is also applied after **every corrector
//! step**, at the corrector's time ([`StepContext::constrain`]) — score_sde's
//! `get_pc_inpainter` / `get_pc_colorizer`, which mask after the corrector as well as after
//! the predictor — and, predictor first, after the predictor before the corrector runs.
//!
//! Differences from score_sde, all deliberate: the grid has `n + 1` points and the
//! predictor's `dt` is the grid spacing (score_sde uses `linspace(T, eps, N)` with
//! `dt = −1/N`, overshooting `eps` by one step); the reverse-diffusion predictor and the
//! corrector's `α_i` use the exact transition of the continuous schedule instead of a table
//! of `N` discrete betas indexed by `int(t (N−1)/T)`; noise comes from per-row streams
//! ([`RowNoise`](crate::num::RowNoise)).

use super::corrector::{
    Corrector, CorrectorAt, CorrectorKind, LangevinCorrector, NoCorrector, StepRule,
};
use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::predictor::{Ddpm, DdpmVariance, PcBuffers, Predictor, PredictorKind};
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::schedule::DiscreteVp;
use crate::sde::{ForwardSde, LinearSde};
use ndarray::Array2;
use std::marker::PhantomData;

/// Which of predictor and corrector runs first in each grid step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PcOrder {
    /// Corrector at `t_i`, then the predictor to `t_{i+1}` (score_sde's `get_pc_sampler`).
    #[default]
    CorrectorFirst,
    /// Predictor to `t_{i+1}`, then the corrector there (Song et al. 2021, Alg. 1).
    PredictorFirst,
}

/// The step of a predictor–corrector sampler: a [`Predictor`] and a [`Corrector`] on an SDE.
#[derive(Debug, Clone)]
pub struct PcStep<F, S, P, C> {
    sde: S,
    predictor: P,
    corrector: C,
    order: PcOrder,
    _f: PhantomData<fn() -> F>,
}

impl<F: Real, S: ForwardSde<F>, P: Predictor<F>, C: Corrector<F>> PcStep<F, S, P, C> {
    /// Predictor and corrector on `sde`, corrector first; both checked against the SDE.
    pub fn new(sde: S, predictor: P, corrector: C) -> Result<Self> {
        predictor.check(&sde)?;
        corrector.check(&sde)?;
        Ok(Self {
            sde,
            predictor,
            corrector,
            order: PcOrder::CorrectorFirst,
            _f: PhantomData,
        })
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }
    /// The predictor.
    pub fn predictor(&self) -> &P {
        &self.predictor
    }
    /// The corrector.
    pub fn corrector(&self) -> &C {
        &self.corrector
    }
    /// The order of predictor and corrector.
    pub fn order(&self) -> PcOrder {
        self.order
    }
    fn correct(
        &self,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
        t: F,
    ) -> Result<()> {
        let n = self.corrector.steps();
        if n == 0 {
            return Ok(());
        }
        // α_i of the step's interval (see `corrector`'s docs): 1 without a linear schedule.
        let alpha_i = self.sde.linear_schedule().map_or(F::one(), |sch| {
            let (a, _) = sch.transition(step.t_next, step.t);
            a * a
        });
        for _ in 0..n {
            let at = CorrectorAt { t, alpha_i };
            self.corrector.correct(&self.sde, ctx, buf, x, at)?;
            // score_sde's conditional PC samplers (`get_pc_inpainter`, `get_pc_colorizer`)
            // re-impose the observation after every corrector step too, not only after the
            // predictor: the observer's constraint at the corrector's time.
            ctx.constrain(t, x.view_mut())?;
        }
        Ok(())
    }
}

impl<F: Real, S: ForwardSde<F>, P: Predictor<F>, C: Corrector<F>> StepMethod<F>
    for PcStep<F, S, P, C>
{
    type State = PcBuffers<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        true
    }
    fn forward_sde(&self) -> Option<&dyn ForwardSde<F>> {
        Some(&self.sde)
    }
    fn init(&self, _: &mut StepContext<'_, F>, x: &Array2<F>, _: &Plan<F>) -> Result<Self::State> {
        Ok(PcBuffers::new(x.nrows(), x.ncols()))
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        match self.order {
            PcOrder::CorrectorFirst => {
                self.correct(ctx, buf, x, step, step.t)?;
                self.predictor.predict(&self.sde, ctx, buf, x, step)?;
            }
            PcOrder::PredictorFirst => {
                self.predictor.predict(&self.sde, ctx, buf, x, step)?;
                // The corrector must see the constrained state, as with corrector first
                // (where the driver constrains after the predictor, between grid steps).
                if self.corrector.steps() > 0 {
                    ctx.constrain(step.t_next, x.view_mut())?;
                }
                self.correct(ctx, buf, x, step, step.t_next)?;
            }
        }
        Ok(Advance::Reached)
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        self.sde
            .linear_schedule()
            .map(|sch| (sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        self.predictor.nfe().checked_add(self.corrector.steps())
    }
    fn is_batch_independent(&self) -> bool {
        self.corrector.is_batch_independent()
    }
}

/// Predictor–corrector sampling of a [`ForwardSde`] over a [`TimeGrid`]: the
/// [`GridSampler`] of a [`PcStep`] (see the [module docs](self)).
///
/// Built with a validated consuming builder; with no corrector it is plain reverse-SDE
/// sampling with the chosen predictor.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{Pc, PcOrder, PredictorKind, StepRule};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let grid = TimeGrid::uniform(sde.schedule(), 100).unwrap();
/// let pc = Pc::new(sde.clone(), grid).unwrap()
///     .predictor(PredictorKind::ReverseDiffusion).unwrap()
///     .snr(0.05).unwrap()                 // adds score_sde's Langevin corrector
///     .step_rule(StepRule::Sigma).unwrap()
///     .order(PcOrder::PredictorFirst)     // the paper's Algorithm 1
///     .denoise_final(true);
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), *sde.schedule());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
/// let run = pc.sample(&model, 200, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 100 * 2 + 1);
/// assert_eq!(pc.nfe(), Some(run.nfe));
/// assert!(Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 10).unwrap()).unwrap()
///     .snr(-1.0).is_err());
/// ```
pub type Pc<F, S, P = PredictorKind, C = CorrectorKind> = GridSampler<F, PcStep<F, S, P, C>>;

impl<F: Real, S: ForwardSde<F>> GridSampler<F, PcStep<F, S, PredictorKind, CorrectorKind>> {
    /// Euler–Maruyama predictor, no corrector, no final denoising. The grid must run
    /// backwards in time (from `T` towards `t_min`) inside the SDE's time range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let step = PcStep::new(sde, PredictorKind::EulerMaruyama, CorrectorKind::None)?;
        GridSampler::with_grid(step, grid)
    }
}

impl<F: Real> GridSampler<F, PcStep<F, LinearSde<F, DiscreteVp<F>>, Ddpm, NoCorrector>> {
    /// DDPM sampling as published (Ho et al. 2020, Algorithm 2) on a β table: `x_T ~ N(0, I)`,
    /// then for `t = T, …, 2` the step `x_{t−1} = (x_t − β_t/√(1 − ᾱ_t) ε)/√α_t + σ_t z`
    /// with `σ_t² = β_t` or `β̃_t` ([`Ddpm`]), over the table's knots `t_k = k/N` from
    /// `1` down to `1/N`, and finally the noise-free `x_0 = (x_1 − β_1/√(1 − ᾱ_1) ε)/√α_1`,
    /// which is Tweedie's denoise at `t_1` ([`GridSampler::denoise_final`], on). NFE = `N`;
    /// the model is called at the knot times `k/N` (diffusers' timestep index `k − 1`).
    pub fn ddpm(table: DiscreteVp<F>, variance: DdpmVariance) -> Result<Self> {
        let n = table.len();
        if n < 2 {
            return Err(Error::param(
                "DDPM table length",
                n as f64,
                "needs at least 2 steps (one ancestral step and the final one)",
            ));
        }
        let nf = F::from_usize_lossy(n);
        let times: Vec<F> = (1..=n).rev().map(|k| F::from_usize_lossy(k) / nf).collect();
        let grid = TimeGrid::custom(&table, times)?;
        let sde = LinearSde::new(table).with_prior_std(F::one())?;
        let step = PcStep::new(sde, Ddpm::new(variance), NoCorrector)?;
        Ok(GridSampler::with_grid(step, grid)?.denoise_final(true))
    }
}

impl<F: Real, S: ForwardSde<F>, P: Predictor<F>, C: Corrector<F>>
    GridSampler<F, PcStep<F, S, P, C>>
{
    /// Choose the predictor (checked against the SDE: ancestral sampling needs a linear one).
    pub fn predictor<Q: Predictor<F>>(self, p: Q) -> Result<Pc<F, S, Q, C>> {
        p.check(&self.method.sde)?;
        let m = self.method;
        Ok(GridSampler {
            method: PcStep {
                sde: m.sde,
                predictor: p,
                corrector: m.corrector,
                order: m.order,
                _f: PhantomData,
            },
            plan: self.plan,
            denoise_final: self.denoise_final,
        })
    }
    /// Choose the corrector ([`CorrectorKind::None`] or
    /// [`NoCorrector`] for plain predictor sampling).
    pub fn corrector<D: Corrector<F>>(self, c: D) -> Result<Pc<F, S, P, D>> {
        c.check(&self.method.sde)?;
        let m = self.method;
        Ok(GridSampler {
            method: PcStep {
                sde: m.sde,
                predictor: m.predictor,
                corrector: c,
                order: m.order,
                _f: PhantomData,
            },
            plan: self.plan,
            denoise_final: self.denoise_final,
        })
    }
    /// Corrector first (score_sde's code, the default) or predictor first (the paper's Alg. 1).
    pub fn order(mut self, order: PcOrder) -> Self {
        self.method.order = order;
        self
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.method.sde
    }
}

impl<F: Real, S: ForwardSde<F>, P: Predictor<F>> GridSampler<F, PcStep<F, S, P, CorrectorKind>> {
    fn langevin(&self) -> Result<LangevinCorrector> {
        match self.method.corrector {
            CorrectorKind::Langevin(c) => Ok(c),
            _ => LangevinCorrector::new(0.16),
        }
    }
    fn with_langevin(mut self, c: LangevinCorrector) -> Result<Self> {
        let kind = CorrectorKind::Langevin(c);
        <CorrectorKind as Corrector<F>>::check(&kind, &self.method.sde)?;
        self.method.corrector = kind;
        Ok(self)
    }
    /// Set the Langevin corrector's snr (`> 0`), adding score_sde's Langevin corrector
    /// (one step, batch-mean rule) if there is none.
    pub fn snr(self, snr: f64) -> Result<Self> {
        let c = self.langevin()?.with_snr(snr)?;
        self.with_langevin(c)
    }
    /// Set the Langevin corrector's steps per grid time (`≥ 1`), adding the default
    /// corrector (snr 0.16) if there is none.
    pub fn corrector_steps(self, n: usize) -> Result<Self> {
        let c = self.langevin()?.steps(n)?;
        self.with_langevin(c)
    }
    /// Set the Langevin corrector's step rule, adding the default corrector if there is none.
    pub fn step_rule(self, rule: StepRule) -> Result<Self> {
        let c = self.langevin()?.rule(rule)?;
        self.with_langevin(c)
    }
}
