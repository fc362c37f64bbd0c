//! Correctors: MCMC steps at a fixed time of the reverse process, as an open trait
//! ([`Corrector`]) with score_sde's Langevin correctors built in (Song et al. 2021, §4.2,
//! Alg. 2 (VE) / Alg. 3 (VP); `LangevinCorrector` and `AnnealedLangevinDynamics`).
//!
//! At a grid time `t` of step `i` (which goes from `t_i` to `t_{i+1} < t_i`; the corrector
//! runs at `t_i` before the predictor, or at `t_{i+1}` after it — [`PcOrder`](super::PcOrder))
//! a Langevin corrector step is
//!
//! ```text
//! s = s(x, t_i),  z ~ N(0, I),  x ← x + ε s + √(2ε) z
//! ```
//!
//! with a step `ε` from a [`StepRule`]:
//!
//! | rule | step | batch-independent |
//! |---|---|---|
//! | [`StepRule::BatchMean`] (default) | `ε = 2 α_i (snr · mean_n‖z_n‖ / mean_n‖s_n‖)²` — one step for the batch | no |
//! | [`StepRule::Sigma`] | `ε = 2 α_i (snr · σ(t_i))²` (`AnnealedLangevinDynamics`) | yes |
//! | [`StepRule::PerSample`] | `ε_n = 2 α_i snr² · min(‖z_n‖²/‖s_n‖², cap · σ(t_i)²)` | yes |
//!
//! **`α_i`.** score_sde multiplies the step by `α_i = 1 − β_i` (the DDPM discrete α of that
//! step) for VP and sub-VP SDEs and by 1 otherwise. With exact transitions the forward step
//! `x_{t_{i+1}} → x_{t_i}` scales by `a = α(t_i)/α(t_{i+1})` and DDPM writes `a = √(1 − β_i)`,
//! so here
//!
//! ```text
//! α_i = (α(t_i) / α(t_{i+1}))² = exp(2 ∫_{t_{i+1}}^{t_i} f(s) ds)
//! ```
//!
//! (from [`Schedule::transition`](crate::Schedule::transition) over the step's interval,
//! whichever end the corrector runs at) which is `1 − β_i` for VP and sub-VP (both have the
//! VP `α`) and exactly 1 for VE and EDM (`α ≡ 1`) — score_sde's convention for all its
//! SDEs, from one formula. An SDE without a linear schedule gets `α_i = 1`; the σ-based
//! step rules need `σ(t)` and therefore a linear SDE.
//!
//! **Why a cap for per-sample norms.** The literal per-sample rule divides by each
//! sample's own `‖s_n‖²`. In the Gaussian case `p_t = N(μ, v I)`, `‖s_n‖² = ‖x − μ‖²/v²`
//! and `‖x − μ‖²/v ~ χ²_D`, so the per-sample step is `2α snr² v · ‖z_n‖²/χ²_D`: an
//! F-distributed factor whose mean is infinite for `D = 2` (`1/χ²_2` has no mean). A sample
//! near a mode gets an enormous step — the peer harness saw 2 % of ring samples thrown
//! beyond radius 10. The cap bounds each row's step by `cap` times the σ-rule's step
//! `2 α_i snr² σ(t)²`, a scale known without the batch. Why that scale: for any data,
//! `p_t` is (scaled) data convolved with `N(0, σ(t)² I)`, so every local variance
//! `v` of `p_t` (the inverse curvature of a Gaussian component, `α² λ + σ²`) is at least
//! `σ(t)²`. With the cap, `ε_n ≤ 2 α_i cap snr² σ² ≤ 2 α_i cap snr² v` in every direction, so
//! ULA's stationary variance inflation `1/(1 − ε/(2v))` (the Gaussian case) is at most
//! `1/(1 − α_i cap snr²)` and the step is stable (`ε < 2v`) whenever `cap · snr² < 1` —
//! the σ-rule's guarantee at `snr √cap`. The default `cap = 1` never takes a larger step
//! than the σ-rule (so its discretisation bias is never larger); it takes smaller steps
//! where a row's own norms say its local variance is below `σ²`-scale (rows far from the
//! data, where the score is large). Note that any state-dependent step is biased in
//! principle: `dx = ε(x) ∇log p dt + √(2ε(x)) dW` has stationary density `∝ p/ε`, which
//! over-weights the tails where the score is large and the step small (measured in
//! `docs/stochastic.md`: +0.075 on rand16d at snr 0.16 with cap 1, where the σ-rule gives
//! −0.005). Prefer [`StepRule::Sigma`] for batch independence; `PerSample` is for parity
//! experiments with the literal rule, made safe. `cap · snr² ≥ 1` is rejected when the
//! corrector is built.
//!
//! **Bias.** Langevin correction with a finite step is biased (ULA's stationary law is not
//! `p_t`): at snr 0.16 score_sde's samples are over-dispersed — see `docs/stochastic.md`
//! for the measured log-likelihood gaps. The bias falls with snr.

use super::driver::StepContext;
use super::predictor::PcBuffers;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::num::par::{block_sums, zip_update};
use crate::sde::ForwardSde;
use ndarray::{Array2, Zip};
use std::fmt::Debug;

/// Where a corrector step runs: the time and the step's `α_i` (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CorrectorAt<F> {
    /// The grid time.
    pub t: F,
    /// `α_i = (α(t_i)/α(t_{i+1}))²` of the step's interval (1 without a linear schedule).
    pub alpha_i: F,
}

/// A corrector: MCMC steps at one time of the reverse process, run by a
/// [`Pc`](super::Pc) sampler before or after each predictor step.
///
/// Implement it for a corrector of your own; [`LangevinCorrector`], [`NoCorrector`] and
/// [`CorrectorKind`] are the built-ins.
pub trait Corrector<F: Real>: Send + Sync + Debug {
    /// Error unless the corrector can run on `sde` (checked when the sampler is built).
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        let _ = sde;
        Ok(())
    }
    /// Corrector steps at each grid time (each one score call).
    fn steps(&self) -> usize;
    /// Whether a row's step depends on that row alone (the default); a batch-mean step
    /// rule couples the rows and keeps a run from being split into row ranges.
    fn is_batch_independent(&self) -> bool {
        true
    }
    /// One corrector step on the batch `x`.
    fn correct(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        at: CorrectorAt<F>,
    ) -> Result<()>;
}

impl<F: Real, C: Corrector<F> + ?Sized> Corrector<F> for Box<C> {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        (**self).check(sde)
    }
    fn steps(&self) -> usize {
        (**self).steps()
    }
    fn is_batch_independent(&self) -> bool {
        (**self).is_batch_independent()
    }
    fn correct(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        at: CorrectorAt<F>,
    ) -> Result<()> {
        (**self).correct(sde, ctx, buf, x, at)
    }
}

/// How a Langevin corrector chooses its step (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum StepRule {
    /// score_sde's rule: norms averaged over the batch, one step for all rows.
    #[default]
    BatchMean,
    /// `ε = 2 α_i (snr σ(t))²`, score_sde's `AnnealedLangevinDynamics`: batch-independent.
    Sigma,
    /// Each row's own norms, with `ε_n ≤ cap · 2 α_i snr² σ(t)²` (the σ-rule's step times
    /// `cap > 0`; needs `cap · snr² < 1`): batch-independent.
    PerSample {
        /// The cap as a multiple of the σ-rule's step.
        cap: f64,
    },
}

impl StepRule {
    /// Per-sample norms with the default cap 1: never a larger step than the σ-rule.
    pub const PER_SAMPLE: StepRule = StepRule::PerSample { cap: 1.0 };

    /// Whether a row's step depends only on that row.
    pub fn is_batch_independent(&self) -> bool {
        !matches!(self, StepRule::BatchMean)
    }

    fn validate(self) -> Result<Self> {
        if let StepRule::PerSample { cap } = self {
            if !(cap.is_finite() && cap > 0.0) {
                return Err(Error::param(
                    "cap",
                    cap,
                    "must be finite and > 0 (a multiple of the σ-rule's step)",
                ));
            }
        }
        Ok(self)
    }
}

/// A Langevin corrector: `steps` steps of `x ← x + ε s + √(2ε) z` at each grid time.
///
/// ```
/// use score_sde::sample::{LangevinCorrector, StepRule};
/// let c = LangevinCorrector::new(0.16).unwrap().steps(2).unwrap().rule(StepRule::Sigma).unwrap();
/// assert_eq!(c.snr(), 0.16);
/// assert!(LangevinCorrector::new(0.0).is_err());
/// assert!(LangevinCorrector::new(0.1).unwrap().rule(StepRule::PerSample { cap: 0.0 }).is_err());
/// // cap · snr² ≥ 1 could exceed the stability bound:
/// assert!(LangevinCorrector::new(0.6).unwrap().rule(StepRule::PerSample { cap: 4.0 }).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LangevinCorrector {
    snr: f64,
    steps: usize,
    rule: StepRule,
}

impl LangevinCorrector {
    /// One step per grid time at signal-to-noise ratio `snr > 0`, [`StepRule::BatchMean`].
    pub fn new(snr: f64) -> Result<Self> {
        Ok(Self {
            snr: check_snr(snr)?,
            steps: 1,
            rule: StepRule::BatchMean,
        })
    }
    /// score_sde's `AnnealedLangevinDynamics`: the [`StepRule::Sigma`] rule.
    pub fn annealed(snr: f64) -> Result<Self> {
        Ok(Self {
            rule: StepRule::Sigma,
            ..Self::new(snr)?
        })
    }
    /// Set the snr (`> 0`).
    pub fn with_snr(mut self, snr: f64) -> Result<Self> {
        self.snr = check_snr(snr)?;
        self.check_cap()?;
        Ok(self)
    }
    fn check_cap(&self) -> Result<()> {
        if let StepRule::PerSample { cap } = self.rule {
            if cap * self.snr * self.snr >= 1.0 {
                return Err(Error::param(
                    "cap",
                    cap,
                    "cap · snr² must be < 1 (else a capped step can exceed the stability bound 2σ²)",
                ));
            }
        }
        Ok(())
    }
    /// Corrector steps per grid time (`≥ 1`).
    pub fn steps(mut self, steps: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::param(
                "corrector steps",
                0.0,
                "must be at least 1 (use CorrectorKind::None or NoCorrector for no correction)",
            ));
        }
        self.steps = steps;
        Ok(self)
    }
    /// The step rule.
    pub fn rule(mut self, rule: StepRule) -> Result<Self> {
        self.rule = rule.validate()?;
        self.check_cap()?;
        Ok(self)
    }
    /// The snr.
    pub fn snr(&self) -> f64 {
        self.snr
    }
    /// Steps per grid time.
    pub fn n_steps(&self) -> usize {
        self.steps
    }
    /// The step rule.
    pub fn step_rule(&self) -> StepRule {
        self.rule
    }
}

impl<F: Real> Corrector<F> for LangevinCorrector {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        if self.rule != StepRule::BatchMean && sde.linear_schedule().is_none() {
            return Err(Error::Unsupported {
                what: "a σ-based Langevin step rule",
                reason: "StepRule::Sigma and PerSample need σ(t) from the SDE's linear schedule; \
                         use StepRule::BatchMean for a non-linear drift"
                    .into(),
            });
        }
        Ok(())
    }
    fn steps(&self) -> usize {
        self.steps
    }
    fn is_batch_independent(&self) -> bool {
        self.rule.is_batch_independent()
    }
    /// One Langevin step at `at.t` with `α_i = at.alpha_i`. One score call.
    fn correct(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        at: CorrectorAt<F>,
    ) -> Result<()> {
        let (t, alpha_i) = (at.t, at.alpha_i);
        let sigma = sde.linear_schedule().map_or(F::zero(), |s| s.sigma(t));
        ctx.model().score(x.view(), t, buf.score.view_mut())?;
        buf.ensure_noise();
        ctx.noise()?.fill(buf.noise.view_mut());
        let len = x.len();
        let snr = F::lit(self.snr);
        let two = F::lit(2.0);
        let step_of_ratio = |ratio: F| two * alpha_i * (snr * ratio) * (snr * ratio);
        match self.rule {
            StepRule::BatchMean => {
                // Sums of per-row norms in fixed row blocks, added in block order: the
                // same step for any thread count.
                let [gn, zn] = block_sums(buf.score.view(), buf.noise.view(), |s, z| {
                    [s.dot(&s).sqrt(), z.dot(&z).sqrt()]
                });
                let eps = step_of_ratio(zn / gn);
                let c = (two * eps).sqrt();
                zip_update!(
                    len,
                    Zip::from(&mut *x).and(&buf.score).and(&buf.noise),
                    |x, &s, &z| *x = *x + eps * s + c * z
                );
            }
            StepRule::Sigma => {
                let eps = step_of_ratio(sigma);
                let c = (two * eps).sqrt();
                zip_update!(
                    len,
                    Zip::from(&mut *x).and(&buf.score).and(&buf.noise),
                    |x, &s, &z| *x = *x + eps * s + c * z
                );
            }
            StepRule::PerSample { cap } => {
                let max = step_of_ratio(F::lit(cap.sqrt()) * sigma);
                zip_update!(
                    len,
                    Zip::from(x.rows_mut())
                        .and(buf.score.rows())
                        .and(buf.noise.rows()),
                    |mut x, s, z| {
                        let ratio = (z.dot(&z) / s.dot(&s)).sqrt();
                        let e = step_of_ratio(ratio);
                        // NaN-propagating min: a NaN score stays NaN (caught by the observer).
                        let eps = if e > max { max } else { e };
                        let c = (two * eps).sqrt();
                        Zip::from(&mut x)
                            .and(&s)
                            .and(&z)
                            .for_each(|x, &s, &z| *x = *x + eps * s + c * z);
                    }
                );
            }
        }
        Ok(())
    }
}

fn check_snr(snr: f64) -> Result<f64> {
    if !(snr.is_finite() && snr > 0.0) {
        return Err(Error::param("snr", snr, "must be finite and > 0"));
    }
    Ok(snr)
}

/// No corrector: plain predictor sampling (score_sde's `NoneCorrector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NoCorrector;

impl<F: Real> Corrector<F> for NoCorrector {
    fn steps(&self) -> usize {
        0
    }
    fn correct(
        &self,
        _: &dyn ForwardSde<F>,
        _: &mut StepContext<'_, F>,
        _: &mut PcBuffers<F>,
        _: &mut Array2<F>,
        _: CorrectorAt<F>,
    ) -> Result<()> {
        Ok(())
    }
}

/// The built-in correctors, chosen at run time (the default of [`Pc`](crate::sample::Pc)).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum CorrectorKind {
    /// No correction: plain predictor sampling.
    #[default]
    None,
    /// Langevin correction (score_sde's `LangevinCorrector`, or `AnnealedLangevinDynamics`
    /// with [`StepRule::Sigma`]).
    Langevin(LangevinCorrector),
}

impl CorrectorKind {
    /// score_sde's `LangevinCorrector` at `snr`, one step, batch-mean norms.
    pub fn langevin(snr: f64) -> Result<Self> {
        Ok(CorrectorKind::Langevin(LangevinCorrector::new(snr)?))
    }
    /// score_sde's `AnnealedLangevinDynamics` at `snr`, one step.
    pub fn annealed_langevin(snr: f64) -> Result<Self> {
        Ok(CorrectorKind::Langevin(LangevinCorrector::annealed(snr)?))
    }
    /// Score calls per grid time.
    pub fn nfe_per_step(&self) -> usize {
        match self {
            CorrectorKind::None => 0,
            CorrectorKind::Langevin(c) => c.steps,
        }
    }
}

impl From<LangevinCorrector> for CorrectorKind {
    fn from(c: LangevinCorrector) -> Self {
        CorrectorKind::Langevin(c)
    }
}

impl<F: Real> Corrector<F> for CorrectorKind {
    fn check(&self, sde: &dyn ForwardSde<F>) -> Result<()> {
        match self {
            CorrectorKind::None => Ok(()),
            CorrectorKind::Langevin(c) => <LangevinCorrector as Corrector<F>>::check(c, sde),
        }
    }
    fn steps(&self) -> usize {
        self.nfe_per_step()
    }
    fn is_batch_independent(&self) -> bool {
        match self {
            CorrectorKind::None => true,
            CorrectorKind::Langevin(c) => c.rule.is_batch_independent(),
        }
    }
    fn correct(
        &self,
        sde: &dyn ForwardSde<F>,
        ctx: &mut StepContext<'_, F>,
        buf: &mut PcBuffers<F>,
        x: &mut Array2<F>,
        at: CorrectorAt<F>,
    ) -> Result<()> {
        match self {
            CorrectorKind::None => Ok(()),
            CorrectorKind::Langevin(c) => c.correct(sde, ctx, buf, x, at),
        }
    }
}
