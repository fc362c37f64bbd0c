//! Denoising by Tweedie's formula (Efron 2011; Song et al. 2021, eq. 47 and App. G).
//!
//! For `x_t = α x_0 + σ z`: `E[x_0 | x_t] = (x_t + σ² ∇ log p_t(x_t)) / α`.
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::tweedie::denoise;
//! let ring = problems::ring2d::<f64>();
//! let vp = VpLinear::<f64>::default();
//! let model = AnalyticScore::new(ring.clone(), vp);
//! let x = ndarray::array![[3.9, 0.1], [0.0, -2.0]];
//! // Tweedie's formula with the exact score is the exact posterior mean.
//! let x0 = denoise(&model, &vp, x.view(), 0.4)?;
//! let exact = ring.posterior_mean(x.view(), vp.alpha(0.4), vp.sigma(0.4))?;
//! assert!((&x0 - &exact).iter().all(|d| d.abs() < 1e-9));
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::error::Result;
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::{Parameterization, ScoreModel, from_score_inplace};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Overwrite `score` with `(x + σ² score)/α`, the posterior mean given the score.
pub fn tweedie_inplace<F: Real>(x: ArrayView2<F>, alpha: F, sigma: F, score: ArrayViewMut2<F>) {
    from_score_inplace(Parameterization::Data, x, alpha, sigma, score);
}

/// `out = x̂₀(x, t) = (x + σ(t)² s(x, t))/α(t)`: one score call into `out`, then Tweedie's
/// formula in place (the data prediction of DDIM, DPM-Solver++ and the EDM samplers).
pub fn denoise_into<F: Real>(
    model: &dyn ScoreModel<F>,
    schedule: &dyn Schedule<F>,
    x: ArrayView2<F>,
    t: F,
    mut out: ArrayViewMut2<F>,
) -> Result<()> {
    model.score(x, t, out.view_mut())?;
    tweedie_inplace(x, schedule.alpha(t), schedule.sigma(t), out);
    Ok(())
}

/// Denoise `x` observed at time `t`: `x̂_0 = (x + σ(t)² s(x, t)) / α(t)` — one score call.
///
/// ```
/// use score_sde::gmm::{AnalyticScore, GaussianMixture};
/// use score_sde::schedule::{Schedule, VpLinear};
/// use score_sde::tweedie::denoise;
/// use ndarray::{array, Array2};
/// // Data N(0, 1): E[x0 | xt] = α xt / (α² + σ²) = α xt for VP.
/// let gm = GaussianMixture::<f64>::gaussian(array![0.0], Array2::eye(1)).unwrap();
/// let vp = VpLinear::default();
/// let model = AnalyticScore::new(gm, vp);
/// let x0 = denoise(&model, &vp, array![[1.5_f64]].view(), 0.3).unwrap();
/// assert!((x0[[0, 0]] - vp.alpha(0.3) * 1.5).abs() < 1e-12);
/// ```
pub fn denoise<F: Real>(
    model: &dyn ScoreModel<F>,
    schedule: &dyn Schedule<F>,
    x: ArrayView2<F>,
    t: F,
) -> Result<Array2<F>> {
    let mut s = Array2::zeros(x.raw_dim());
    model.score(x, t, s.view_mut())?;
    tweedie_inplace(x, schedule.alpha(t), schedule.sigma(t), s.view_mut());
    Ok(s)
}
