//! Reverse-time SDE predictors (Song et al. 2021, §4.1–4.2 and App. E–F) and the final
//! Tweedie denoising step.
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
//! | [`Predictor`] | update `x ← mean + std · z` | source |
//! |---|---|---|
//! | `EulerMaruyama` | mean `x − [f(x,t) − g² s] h`, std `g(t) √h` | Song et al. 2021, App. E (`EulerMaruyamaPredictor`) |
//! | `ReverseDiffusion` | mean `x − f_i + G_i² s`, std `G_i`, with `(f_i, G_i)` = the exact transition over `[t', t]` (as [`LinearSde::discretize`](crate::sde::LinearSde))  | Song et al. 2021, eq. 46 (`ReverseDiffusionPredictor`) |
//! | `Ancestral` | mean `(x + v s)/a`, std `σ_{t'} √v / σ_t`, with `a = α_t/α_{t'}`, `v = σ_t² − a² σ_{t'}²` | Ho et al. 2020, eq. 11 (VP); Song et al. 2021, eq. 47 (VE) |
//!
//! The ancestral step is the DDPM posterior `q(x_{t'} | x_t, x̂_0)` with Tweedie's
//! `x̂_0 = (x + σ_t² s)/α_t` plugged in: its mean `(a σ_{t'}²/σ_t²) x + (α_{t'} v/σ_t²) x̂_0`
//! simplifies to `(x + v s)/a`. For VP, `a = √(1 − β_i)` and `v = β_i`, which is Ho et al.'s
//! `(x − β_i/σ_t · ε)/√(1 − β_i)`; for VE, `a = 1` and `v = σ_t² − σ_{t'}²`, which is SMLD's
//! update of Song et al. eq. 47. The variance is the posterior one, `β̃_i = σ_{t'}² β_i/σ_t²`
//! (score_sde's VE choice; its VP predictor uses `β_i`, the other end of Ho et al.'s
//! bracket — both are first-order consistent).
//!
//! As in score_sde, the last step adds no noise: the sampler returns the mean of the last
//! step. `Pc::denoise` optionally replaces it by `x̂_0 = (x + σ² s(x, t_min))/α`
//! (one more score call, counted in the NFE).

use crate::num::RowNoise;
use crate::error::Result;
use crate::num::Real;
use crate::num::par::zip_update;
use crate::score::ScoreModel;
use crate::sde::MarginalSde;
use ndarray::{Array1, Array2, Zip};

/// The predictor of a reverse-time SDE step (see the [module docs](self) for the formulas).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{Pc, Predictor};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let grid = TimeGrid::uniform(sde.schedule(), 50).unwrap();
/// let pc = Pc::new(sde.clone(), grid).unwrap().predictor(Predictor::Ancestral);
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
pub enum Predictor {
    /// Euler–Maruyama on the reverse-time SDE.
    #[default]
    EulerMaruyama,
    /// Reverse diffusion: the forward discretisation run backwards (Song et al. 2021, eq. 46).
    ReverseDiffusion,
    /// Ancestral sampling: DDPM (VP) / SMLD (VE) in α/σ form with the exact transition.
    Ancestral,
}

/// Buffers of one run, made once (nothing is allocated per step).
///
/// The predictors need only the score, the correctors also the noise; `work` and `rows`
/// (MALA's proposal and its log-density) are empty unless asked for with
/// [`Buffers::with_proposal`].
#[derive(Debug)]
pub(crate) struct Buffers<F> {
    pub score: Array2<F>,
    pub noise: Array2<F>,
    pub work: Array2<F>,
    pub rows: Array1<F>,
}

impl<F: Real> Buffers<F> {
    /// Score and noise buffers of `n × d`.
    pub fn new(n: usize, d: usize) -> Self {
        Self {
            noise: Array2::zeros((n, d)),
            ..Self::score_only(n, d)
        }
    }
    /// Only the score buffer (the predictors draw their noise inside the update).
    pub fn score_only(n: usize, d: usize) -> Self {
        Self {
            score: Array2::zeros((n, d)),
            noise: Array2::zeros((0, d)),
            work: Array2::zeros((0, d)),
            rows: Array1::zeros(0),
        }
    }
    /// Also a proposal buffer (`n × d`) and a per-row buffer (`n`).
    pub fn with_proposal(n: usize, d: usize) -> Self {
        Self {
            work: Array2::zeros((n, d)),
            rows: Array1::zeros(n),
            ..Self::new(n, d)
        }
    }
}

impl Predictor {
    /// One step from `t` to `t_next < t`; no noise when `last`. One score call.
    ///
    /// Every predictor's update is `x ← c_x x + c_s s + std · z`; it is one fused pass over
    /// state and score that draws `z` row by row from the row's stream (no noise buffer).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step<F: Real, S: MarginalSde<F> + ?Sized>(
        self,
        sde: &S,
        model: &dyn ScoreModel<F>,
        x: &mut Array2<F>,
        t: F,
        t_next: F,
        last: bool,
        noise: &mut RowNoise,
        buf: &mut Buffers<F>,
    ) -> Result<()> {
        let h = t - t_next;
        model.score(x.view(), t, buf.score.view_mut())?;
        let sch = sde.schedule();
        let (cx, cs, std) = match self {
            // A `MarginalSde`'s drift is `f(t) x` (its transition is `α(t)/α(s)` times the
            // state plus Gaussian noise), so the drift is one scalar: no drift buffer.
            Predictor::EulerMaruyama => {
                let g = sde.diffusion(t);
                (F::one() - sch.f(t) * h, g * g * h, g * h.sqrt())
            }
            Predictor::ReverseDiffusion => {
                // The exact transition over [t − h, t] (`LinearSde::discretize`):
                // f_i = (a − 1) x, G_i² = σ_t² − a² σ_{t−h}², a = α(t)/α(t − h).
                let a = sch.alpha(t) / sch.alpha(t_next);
                let (st, sn) = (sch.sigma(t), sch.sigma(t_next));
                let g2 = ((st - a * sn) * (st + a * sn)).max(F::zero());
                (F::lit(2.0) - a, g2, g2.sqrt())
            }
            Predictor::Ancestral => {
                let (s_t, s_n) = (sch.sigma(t), sch.sigma(t_next));
                let a = sch.alpha(t) / sch.alpha(t_next);
                let v = ((s_t - a * s_n) * (s_t + a * s_n)).max(F::zero());
                let ia = F::one() / a;
                (ia, v * ia, s_n * v.sqrt() / s_t)
            }
        };
        if last {
            let len = x.len();
            zip_update!(len, Zip::from(&mut *x).and(&buf.score), |x, &s| *x =
                cx * *x + cs * s);
        } else {
            noise.update(x.view_mut(), buf.score.view(), |x, s, z| {
                cx * x + cs * s + std * z
            });
        }
        Ok(())
    }
}

/// Replace `x` by Tweedie's posterior mean `x̂_0 = (x + σ(t)² s(x, t)) / α(t)` (Efron 2011;
/// Song et al. 2021, App. G), using the score buffer. One score call.
pub(crate) fn tweedie_step<F: Real, S: MarginalSde<F> + ?Sized>(
    sde: &S,
    model: &dyn ScoreModel<F>,
    x: &mut Array2<F>,
    t: F,
    buf: &mut Buffers<F>,
) -> Result<()> {
    model.score(x.view(), t, buf.score.view_mut())?;
    let sch = sde.schedule();
    crate::tweedie::tweedie_inplace(x.view(), sch.alpha(t), sch.sigma(t), buf.score.view_mut());
    x.assign(&buf.score);
    Ok(())
}
