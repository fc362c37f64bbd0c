//! Controllable generation: sampling `p_0(x | y)` with an unconditional score model.
//!
//! Song et al. 2021, §5: the conditional reverse-time SDE
//! `dx = [f(x, t) − g(t)² ∇ₓ log p_t(x | y)] dt + g(t) dw̄` needs the conditional score, and
//! Bayes' rule splits it into the unconditional score and a likelihood term:
//!
//! ```text
//! ∇ₓ log p_t(x | y) = ∇ₓ log p_t(x) + ∇ₓ log p_t(y | x)
//! ```
//!
//! | what | how | item |
//! |---|---|---|
//! | classifier guidance | add `w ∇ₓ log p_t(y \| x)` of a time-dependent classifier (Song et al. 2021, §5; Dhariwal & Nichol 2021, Alg. 1) | [`ClassifierGuidance`], trait [`ClassifierGradient`] |
//! | classifier-free guidance | `s_u + w (s_c − s_u)` (Ho & Salimans 2022, eq. 6), optional rescale (Lin et al. 2023, eq. 15–16) | [`ClassifierFree`], trait [`ConditionalScore`] |
//! | the exact classifier of a mixture | `p_t(k \| x)` = responsibility, `∇ log p_t(k \| x) = s_k − s` | [`MixtureClassifier`] |
//! | imputation / inpainting | replace the known coordinates by `α(t) y + σ(t) z` after every step (Song et al. 2021, App. I.2) | [`Imputation`] (an [`Observer`](crate::observe::Observer)) |
//! | colourisation-type inverse problems | imputation in an orthogonal basis `u = Qᵀ x` (Song et al. 2021, App. I.3) | [`Imputation::with_basis`]; per pixel / block without a dense `D × D` basis: [`Imputation::with_grouped_basis`] |
//! | linear-Gaussian inverse problems | `y = A x + n`: the exact posterior of a mixture prior | [`GaussianMixture::posterior`](crate::gmm::GaussianMixture::posterior), [`LinearGaussian`] |
//! | guidance by any likelihood term | `s + w ∇ₓ log p_t(y \| x)` for an observation of any kind | [`Guided`], trait [`LikelihoodGradient`], [`ClassLikelihood`] |
//! | general inverse problems, any score model | DPS (Chung et al. 2023) and ΠGDM (Song et al. 2023) through Tweedie's `x̂₀` | [`TweedieLikelihood`] |
//! | general inverse problems, projection | the paper's conditional sampler for `y = A x + n` (Song et al. 2021, App. I.4) | [`ObservationConstraint`] (an observer) |
//! | the exact likelihood term of a mixture | `∇ log p_t(x \| y) − ∇ log p_t(x)` | [`ExactLikelihood`] |
//!
//! Guidance adapters are [`ScoreModel`](crate::ScoreModel)s and imputation is an observer, so
//! every sampler works with them unchanged. See `docs/conditioning.md` for the measured
//! accuracy of each (including the bias of the replacement method for imputation).
//!
//! ## Example: exact classifier guidance on the ring picks one component
//!
//! ```
//! use score_sde::condition::{ClassifierGuidance, MixtureClassifier};
//! use score_sde::prelude::*;
//! use ndarray::{array, Array2};
//! let ring = problems::ring2d::<f64>();
//! let vp = VpLinear::<f64>::default();
//! let model = AnalyticScore::new(ring.clone(), vp);
//! let classifier = MixtureClassifier::new(ring.clone(), vp);
//! // w = 1: the guided score is the score of component 3 alone, diffused.
//! let guided = ClassifierGuidance::new(&model, &classifier, 3, 1.0).unwrap();
//! let x = array![[0.5, -1.0]];
//! let mut s = Array2::zeros((1, 2));
//! guided.score(x.view(), 0.4, s.view_mut()).unwrap();
//! let c3 = GaussianMixture::gaussian(ring.means().row(3).to_owned(),
//!                                    ring.covs().index_axis(ndarray::Axis(0), 3).to_owned()).unwrap();
//! let exact = c3.diffuse(&vp, 0.4).unwrap().score(x.view()).unwrap();
//! assert!((&s - &exact).iter().all(|e| e.abs() < 1e-12));
//! ```

mod classifier;
mod exact_likelihood;
mod guidance;
mod inpaint;
mod inverse;
mod likelihood;
mod projection;
mod tweedie_likelihood;

pub use classifier::MixtureClassifier;
pub use exact_likelihood::ExactLikelihood;
pub use guidance::{
    ClassLikelihood, ClassifierFree, ClassifierGradient, ClassifierGuidance, ConditionalScore,
    WithClass,
};
pub use inpaint::{FinalStep, GroupLayout, Imputation};
pub use inverse::LinearGaussian;
pub use likelihood::{Guided, LikelihoodGradient};
pub use projection::ObservationConstraint;
pub use tweedie_likelihood::{JacobianMode, TweedieApprox, TweedieLikelihood};

use crate::num::Real;
use ndarray::Array2;
use std::sync::Mutex;

/// Error unless a guidance combination is finite: `s + w ∇ log p(y|x)` or `s_u + w (s_c −
/// s_u)` can overflow although each term is finite (one vectorised pass).
pub(crate) fn finite_combination<F: Real>(
    what: &'static str,
    out: &ndarray::ArrayViewMut2<F>,
) -> crate::Result<()> {
    if crate::check::all_finite(out) {
        return Ok(());
    }
    let i = out.iter().position(|v| !v.is_finite()).unwrap_or(0);
    Err(crate::Error::Unrepresentable {
        what,
        index: i,
        reason: "the weighted combination of finite scores overflows the float type".into(),
    })
}

/// A pool of scratch buffers for `&self` score adapters: after the first call per thread
/// nothing is allocated.
#[derive(Debug, Default)]
pub(crate) struct Scratch<F> {
    pool: Mutex<Vec<Array2<F>>>,
}

impl<F: Real> Scratch<F> {
    pub(crate) fn new() -> Self {
        Self {
            pool: Mutex::new(Vec::new()),
        }
    }
    /// A buffer of the given shape (contents unspecified).
    pub(crate) fn take(&self, shape: (usize, usize)) -> Array2<F> {
        let got = self.pool.lock().ok().and_then(|mut p| p.pop());
        match got {
            Some(b) if b.dim() == shape => b,
            _ => Array2::zeros(shape),
        }
    }
    pub(crate) fn give(&self, b: Array2<F>) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 8 {
                p.push(b);
            }
        }
    }
}

impl<F: Real> Clone for Scratch<F> {
    fn clone(&self) -> Self {
        Self::new()
    }
}
