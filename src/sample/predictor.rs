//! Predictors: one step of the reverse-time SDE (Song et al. 2021, §4.1–4.2 and App. E–F),
//! as an open trait with the paper's predictors built in.
//!
//! The reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6)
//!
//! ```text
//! dx = [f(x, t) − g(t)² ∇ log p_t(x)] dt + g(t) dw̄
//! ```
//!
//! is integrated backwards over a decreasing [`TimeGrid`](crate::grid::TimeGrid). One
//! step goes from `t` down to `t' = t − h` with one score call `s = s(x, t)`:
//!
//! | [`Predictor`] | update `x ← mean + std · z` | SDEs | source |
//! |---|---|---|---|
//! | [`EulerMaruyama`] | mean `x − [f(x,t) − g² s] h`, std `g(t) √h` | any | Song et al. 2021, App. E (`EulerMaruyamaPredictor`) |
//! | [`ReverseDiffusion`] | mean `x − f_i + G_i² s`, std `G_i`, with `(f_i, G_i)` from [`ForwardSde::discretize`] over `[t', t]` (the exact transition for a linear SDE) | any | Song et al. 2021, eq. 46 (`ReverseDiffusionPredictor`) |
//! | [`AncestralSampling`] | mean `(x + v s)/a`, std `σ_{t'} √v / σ_t`, with `a = α_t/α_{t'}`, `v = σ_t² − a² σ_{t'}²` | linear | Ho et al. 2020, eq. 11 (VP); Song et al. 2021, eq. 47 (VE) |
//! | [`NoPredictor`] | `x` unchanged (corrector-only sampling) | any | score_sde's `NonePredictor` |
//!
//! The ancestral step is the DDPM posterior `q(x_{t'} | x_t, x̂_0)` with Tweedie's
//! `x̂_0 = (x + σ_t² s)/α_t` plugged in: its mean `(a σ_{t'}²/σ_t²) x + (α_{t'} v/σ_t²) x̂_0`
//! simplifies to `(x + v s)/a`. For VP, `a = √(1 − β_i)` and `v = β_i`, which is Ho et al.'s
//! `(x − β_i/σ_t · ε)/√(1 − β_i)`; for VE, `a = 1` and `v = σ_t² − σ_{t'}²`, which is SMLD's
//! update of Song et al. eq. 47. The variance is the posterior one, `β̃_i = σ_{t'}² β_i/σ_t²`
//! (score_sde's VE choice; its VP predictor uses `β_i`, the other end of Ho et al.'s
//! bracket — both are first-order consistent).
//!
//! For a linear SDE ([`ForwardSde::linear_schedule`]) every predictor's update is
//! `x ← c_x x + c_s s + std · z`, one fused pass over state and score that draws `z` row by
//! row from the row's stream; for any other drift the predictors call the SDE's
//! [`drift`](ForwardSde::drift) / [`discretize`](ForwardSde::discretize) into a work buffer.
//! As in score_sde, the last step adds no noise. [`PredictorKind`] chooses among the
//! built-ins at run time.

use super::driver::{StepContext, StepInfo};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::num::par::zip_update;
use crate::sde::ForwardSde;
use ndarray::{Array2, Zip};
use std::fmt::Debug;

/// Buffers of one predictor–corrector run, shared by its predictor and corrector: `score`
/// (`n × d`) always; `noise`, `work` and any number of `extra` buffers (`n × d`) made on
/// first use with [`PcBuffers::ensure_noise`], [`PcBuffers::ensure_work`],
/// [`PcBuffers::ensure_extra`] — once per run, never per step.
#[derive(Debug)]
pub struct PcBuffers<F> {
    /// The score of the current step.
    pub score: Array2<F>,
    /// A noise buffer (correctors whose step needs the noise before the update).
    pub noise: Array2<F>,
    /// A work buffer (the drift of a non-linear SDE).
    pub work: Array2<F>,
    /// More buffers for a predictor or corrector of your own (a multi-stage predictor's
    /// stages).
    pub extra: Vec<Array2<F>>,
}

impl<F: Real> PcBuffers<F> {
    /// Buffers for an `n × d` batch (only `score` allocated).
    pub fn new(n: usize, d: usize) -> Self {
        Self {
            score: Array2::zeros((n, d)),
            noise: Array2::zeros((0, d)),
            work: Array2::zeros((0, d)),
            extra: Vec::new(),
        }
    }
    /// Make `noise` the batch's shape (a no-op after the first call).
    pub fn ensure_noise(&mut self) {
        if self.noise.dim() != self.score.dim() {
            self.noise = Array2::zeros(self.score.raw_dim());
        }
    }
    /// Make `work` the batch's shape (a no-op after the first call).
    pub fn ensure_work(&mut self) {
        if self.work.dim() != self.score.dim() {
            self.work = Array2::zeros(self.score.raw_dim());
        }
    }
    /// Make at least `k` `extra` buffers of the batch's shape (a no-op once they exist).
    pub fn ensure_extra(&mut self, k: usize) {
        while self.extra.len() < k {
            self.extra.push(Array2::zeros(self.score.raw_dim()));
        }
    }
}

/// A predictor: one reverse-time step of a [`Pc`](super::Pc) sampler from `step.t` down to
/// `step.t_next`, adding no noise on the last step (see the [module docs](self)).
///
/// Implement it for a predictor of your own (`tests/custom_sampler.rs` has a Heun-type
/// one); [`PredictorKind`] and the unit structs of this module are the built-ins.
pub trait Predictor<F: Real>: Send + Sync + Debug {
    /// Error unless the predictor can run on `sde` (checked when the sampler is built).
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        let _ = sde;
        Ok(())
    }
    /// Score calls per step.
    fn nfe(&self) -> usize {
        1
    }
    /// One step on the batch `x`.
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()>;
}

impl<F: Real, P: Predictor<F> + ?Sized> Predictor<F> for Box<P> {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        (**self).check(sde)
    }
    fn nfe(&self) -> usize {
        (**self).nfe()
    }
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()> {
        (**self).predict(sde, ctx, buf, x, step)
    }
}

/// `x ← c_x x + c_s s + std · z` (no noise on the last step): the fused update of every
/// predictor of a linear SDE.
fn fused_update<F: Real>(
    ctx: &mut StepContext<'_, F>,
    x: &mut Array2<F>,
    s: &Array2<F>,
    (cx, cs, std): (F, F, F),
    last: bool,
) -> Result<()> {
    if last {
        let len = x.len();
        zip_update!(len, Zip::from(&mut *x).and(s), |x, &s| *x =
            cx * *x + cs * s);
    } else {
        ctx.noise()?
            .update(x.view_mut(), s.view(), |x, s, z| cx * x + cs * s + std * z);
    }
    Ok(())
}

/// `x ← x + w + std · z` with a precomputed increment `w` (no noise on the last step): the
/// update of the predictors of a non-linear SDE.
fn increment_update<F: Real>(
    ctx: &mut StepContext<'_, F>,
    x: &mut Array2<F>,
    w: &Array2<F>,
    std: F,
    last: bool,
) -> Result<()> {
    fused_update(ctx, x, w, (F::one(), F::one(), std), last)
}

/// Euler–Maruyama on the reverse-time SDE: `x ← x − [f(x, t) − g(t)² s] h + g(t) √h z`
/// (Song et al. 2021, App. E). Any [`ForwardSde`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EulerMaruyama;

impl<F: Real> Predictor<F> for EulerMaruyama {
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()> {
        let (t, h) = (step.t, step.h());
        ctx.model().score(x.view(), t, buf.score.view_mut())?;
        let g = sde.diffusion(t);
        let std = g * h.sqrt();
        if let Some(sch) = sde.linear_schedule() {
            // The drift is `f(t) x`: one scalar, no drift buffer.
            let c = (F::one() - sch.f(t) * h, g * g * h, std);
            return fused_update(ctx, x, &buf.score, c, step.is_last());
        }
        buf.ensure_work();
        sde.drift(x.view(), t, buf.work.view_mut())?;
        let g2h = g * g * h;
        Zip::from(&mut buf.work)
            .and(&buf.score)
            .for_each(|w, &s| *w = g2h * s - h * *w);
        increment_update(ctx, x, &buf.work, std, step.is_last())
    }
}

/// Reverse diffusion: the forward discretisation `x_t = x_{t'} + f_i + G_i z`
/// ([`ForwardSde::discretize`]) run backwards, `x ← x − f_i + G_i² s + G_i z` (Song et al.
/// 2021, eq. 46). For a linear SDE `(f_i, G_i)` is the exact transition over `[t', t]`
/// ([`Schedule::transition`](crate::Schedule::transition)), fused into the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReverseDiffusion;

impl<F: Real> Predictor<F> for ReverseDiffusion {
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()> {
        let t = step.t;
        ctx.model().score(x.view(), t, buf.score.view_mut())?;
        if let Some(sch) = sde.linear_schedule() {
            // f_i = (a − 1) x, G_i² = v: x − f_i + G_i² s = (2 − a) x + v s.
            let (a, v) = sch.transition(step.t_next, t);
            let c = (F::lit(2.0) - a, v, v.sqrt());
            return fused_update(ctx, x, &buf.score, c, step.is_last());
        }
        buf.ensure_work();
        let g = sde.discretize(x.view(), t, step.h(), buf.work.view_mut())?;
        let g2 = g * g;
        Zip::from(&mut buf.work)
            .and(&buf.score)
            .for_each(|w, &s| *w = g2 * s - *w);
        increment_update(ctx, x, &buf.work, g, step.is_last())
    }
}

/// Ancestral sampling: DDPM (VP) / SMLD (VE) in `α`/`σ` form with the exact transition
/// (Ho et al. 2020, eq. 11; Song et al. 2021, eq. 47). Needs a linear SDE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AncestralSampling;

impl<F: Real> Predictor<F> for AncestralSampling {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        match sde.linear_schedule() {
            Some(_) => Ok(()),
            None => Err(Error::Unsupported {
                what: "ancestral sampling",
                reason: "it needs the SDE's schedule α, σ (ForwardSde::linear_schedule): \
                         use EulerMaruyama or ReverseDiffusion for a non-linear drift"
                    .into(),
            }),
        }
    }
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()> {
        let Some(sch) = sde.linear_schedule() else {
            return <Self as Predictor<F>>::check(self, sde);
        };
        let t = step.t;
        ctx.model().score(x.view(), t, buf.score.view_mut())?;
        let (s_t, s_n) = (sch.sigma(t), sch.sigma(step.t_next));
        let (a, v) = sch.transition(step.t_next, t);
        let ia = F::one() / a;
        let c = (ia, v * ia, s_n * v.sqrt() / s_t);
        fused_update(ctx, x, &buf.score, c, step.is_last())
    }
}

/// No predictor: the state is left where the corrector put it (corrector-only sampling,
/// score_sde's `NonePredictor`). No score calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NoPredictor;

impl<F: Real> Predictor<F> for NoPredictor {
    fn nfe(&self) -> usize {
        0
    }
    fn predict(
        &self,
        _: &dyn ForwardSde<F>,
        _: &mut StepContext<'_, F>,
        _: &mut PcBuffers<F>,
        _: &mut Array2<F>,
        _: &StepInfo<F>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The built-in predictors, chosen at run time (the default of [`Pc`](super::Pc)).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{Pc, PredictorKind};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let grid = TimeGrid::uniform(sde.schedule(), 50).unwrap();
/// let pc = Pc::new(sde.clone(), grid).unwrap().predictor(PredictorKind::Ancestral).unwrap();
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), *sde.schedule());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let run = pc.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 50);
/// // Samples land near the ring of radius 4.
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PredictorKind {
    /// [`EulerMaruyama`].
    #[default]
    EulerMaruyama,
    /// [`ReverseDiffusion`].
    ReverseDiffusion,
    /// [`AncestralSampling`].
    Ancestral,
    /// [`NoPredictor`].
    None,
}

impl PredictorKind {
    fn get<F: Real>(self) -> &'static dyn Predictor<F> {
        match self {
            PredictorKind::EulerMaruyama => &EulerMaruyama,
            PredictorKind::ReverseDiffusion => &ReverseDiffusion,
            PredictorKind::Ancestral => &AncestralSampling,
            PredictorKind::None => &NoPredictor,
        }
    }
}

impl<F: Real> Predictor<F> for PredictorKind {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        self.get::<F>().check(sde)
    }
    fn nfe(&self) -> usize {
        self.get::<F>().nfe()
    }
    fn predict(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<()> {
        self.get::<F>().predict(sde, ctx, buf, x, step)
    }
}
