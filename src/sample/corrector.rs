//! Correctors: Langevin MCMC steps at a fixed time of the reverse process
//! (Song et al. 2021, §4.2, Alg. 2 (VE) / Alg. 3 (VP); score_sde's `LangevinCorrector`
//! and `AnnealedLangevinDynamics`).
//!
//! At time `t_i` (the start of grid step `i`, which goes to `t_{i+1} < t_i`) a corrector
//! step is
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
//! which is `1 − β_i` for VP and sub-VP (both have the VP `α`) and exactly 1 for VE and EDM
//! (`α ≡ 1`) — score_sde's convention for all its SDEs, from one formula.
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

use crate::num::RowNoise;
use super::reverse_sde::Buffers;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::num::par::{block_sums, zip_update};
use crate::score::ScoreModel;
use ndarray::{Array2, Zip};

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
                "must be at least 1 (use Corrector::None for no correction)",
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

    /// One corrector step at time `t` with `α_i = alpha_i`, `σ(t) = sigma`. One score call.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step<F: Real>(
        &self,
        model: &dyn ScoreModel<F>,
        x: &mut Array2<F>,
        t: F,
        alpha_i: F,
        sigma: F,
        noise: &mut RowNoise,
        buf: &mut Buffers<F>,
    ) -> Result<()> {
        model.score(x.view(), t, buf.score.view_mut())?;
        noise.fill(buf.noise.view_mut());
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

/// The corrector of a [`Pc`](crate::sample::Pc) sampler.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub enum Corrector {
    /// No correction: plain predictor sampling.
    #[default]
    None,
    /// Langevin correction (score_sde's `LangevinCorrector`, or `AnnealedLangevinDynamics`
    /// with [`StepRule::Sigma`]).
    Langevin(LangevinCorrector),
}

impl Corrector {
    /// score_sde's `LangevinCorrector` at `snr`, one step, batch-mean norms.
    pub fn langevin(snr: f64) -> Result<Self> {
        Ok(Corrector::Langevin(LangevinCorrector::new(snr)?))
    }
    /// score_sde's `AnnealedLangevinDynamics` at `snr`, one step.
    pub fn annealed_langevin(snr: f64) -> Result<Self> {
        Ok(Corrector::Langevin(LangevinCorrector::annealed(snr)?))
    }
    /// Score calls per grid time.
    pub fn nfe_per_step(&self) -> usize {
        match self {
            Corrector::None => 0,
            Corrector::Langevin(c) => c.steps,
        }
    }
}
