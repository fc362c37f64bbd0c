//! Guidance by any likelihood term: `s(x, t) + w ∇ₓ log p_t(y | x)` for an observation `y`
//! of any kind — a class label, a linear measurement, anything with a gradient.
//!
//! Song et al. 2021, §5 and eq. 14: the conditional score is
//! `∇ₓ log p_t(x | y) = ∇ₓ log p_t(x) + ∇ₓ log p_t(y | x)`. [`LikelihoodGradient`] is the
//! second term for an observation the implementor holds; [`Guided`] adds it to a score model
//! and is itself a [`ScoreModel`], so every sampler runs it. Implementations: a classifier
//! with its class fixed ([`ClassLikelihood`](super::ClassLikelihood)), DPS and ΠGDM for linear inverse problems
//! ([`TweedieLikelihood`](super::TweedieLikelihood)), the exact term of a mixture prior
//! ([`ExactLikelihood`](super::ExactLikelihood)).

use super::Scratch;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::{ScoreModel, check_score_call};
use ndarray::{ArrayView2, ArrayViewMut2};
use std::fmt;

/// `∇ₓ log p_t(y | x)` of an observation `y` the implementor holds.
///
/// `model` is the unconditional score model and `score` its output `s(x, t)` on this batch
/// (already computed by [`Guided`]), for approximations that go through Tweedie's
/// `x̂₀ = (x + σ² s)/α` (DPS, ΠGDM); a term that needs neither ignores them. Rows of `x`
/// are samples at the common time `t`; write each row's gradient into the same row of
/// `out`. Object safe.
///
/// ```
/// use score_sde::condition::{Guided, LikelihoodGradient};
/// use score_sde::prelude::*;
/// use ndarray::{array, ArrayView2, ArrayViewMut2, Array2};
/// /// y = x₀ + n, n ~ N(0, τ²), ignoring the diffusion (a crude but valid term at small t).
/// struct Direct { y: f64, tau2: f64 }
/// impl LikelihoodGradient<f64> for Direct {
///     fn grad_log_likelihood(&self, _m: &dyn ScoreModel<f64>, x: ArrayView2<f64>, _t: f64,
///                            _s: ArrayView2<f64>, mut out: ArrayViewMut2<f64>) -> Result<()> {
///         out.fill(0.0);
///         for (mut o, r) in out.rows_mut().into_iter().zip(x.rows()) {
///             o[0] = (self.y - r[0]) / self.tau2;
///         }
///         Ok(())
///     }
/// }
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::default());
/// let guided = Guided::new(&model, Direct { y: 4.0, tau2: 0.1 }, 1.0).unwrap();
/// let mut s = Array2::zeros((1, 2));
/// guided.score(array![[0.0, 0.0]].view(), 1e-3, s.view_mut()).unwrap();
/// assert!(s[[0, 0]] > 30.0); // pulled towards x₀ = 4
/// ```
pub trait LikelihoodGradient<F: Real>: Send + Sync {
    /// Write `∇ₓ log p_t(y | x)` for every row of `x` into `out` (same shape).
    fn grad_log_likelihood(
        &self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        score: ArrayView2<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()>;
    /// Calls of `model` one evaluation makes (a finite-difference Jacobian: 2).
    fn model_calls(&self) -> usize {
        0
    }
    /// The data dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
    }
}

macro_rules! forward_likelihood {
    ($($ty:ty),*) => {$(
        impl<F: Real, L: LikelihoodGradient<F> + ?Sized> LikelihoodGradient<F> for $ty {
            fn grad_log_likelihood(&self, model: &dyn ScoreModel<F>, x: ArrayView2<F>, t: F, score: ArrayView2<F>, out: ArrayViewMut2<F>) -> Result<()> {
                (**self).grad_log_likelihood(model, x, t, score, out)
            }
            fn model_calls(&self) -> usize { (**self).model_calls() }
            fn dim(&self) -> Option<usize> { (**self).dim() }
        }
    )*};
}
forward_likelihood!(&L, Box<L>, std::sync::Arc<L>);

/// Guidance by a likelihood term: `s(x, t) + w ∇ₓ log p_t(y | x)` (Song et al. 2021, eq. 14;
/// `w = 1` is the conditional score when the term is exact, `w > 1` sharpens, Dhariwal &
/// Nichol 2021). A [`ScoreModel`]: samplers count one NFE per call; the model is called
/// `1 + L::model_calls()` times. Scratch buffers are pooled, so steady-state calls allocate
/// nothing.
pub struct Guided<M, L, F: Real> {
    model: M,
    likelihood: L,
    scale: F,
    scratch: Scratch<F>,
}

impl<M, L, F: Real> fmt::Debug for Guided<M, L, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guided")
            .field("scale", &self.scale)
            .finish_non_exhaustive()
    }
}

impl<M, L, F: Real> Guided<M, L, F> {
    /// The guidance scale `w`.
    pub fn scale(&self) -> F {
        self.scale
    }
    /// The likelihood term.
    pub fn likelihood(&self) -> &L {
        &self.likelihood
    }
}

impl<M: ScoreModel<F>, L: LikelihoodGradient<F>, F: Real> Guided<M, L, F> {
    /// Guide `model` by `likelihood` with scale `w = scale` (finite, `≥ 0`). Errors on a bad
    /// scale or model and likelihood dimensions that disagree.
    pub fn new(model: M, likelihood: L, scale: F) -> Result<Self> {
        if !(scale.is_finite() && scale >= F::zero()) {
            return Err(Error::param(
                "guidance scale",
                scale.as_f64(),
                "must be finite and >= 0",
            ));
        }
        if let (Some(a), Some(b)) = (model.dim(), likelihood.dim()) {
            if a != b {
                return Err(Error::shape("likelihood dimension (= model's)", a, b));
            }
        }
        Ok(Self {
            model,
            likelihood,
            scale,
            scratch: Scratch::new(),
        })
    }
    /// Calls of the unconditional model per call of this one.
    pub fn model_calls(&self) -> usize {
        1 + self.likelihood.model_calls()
    }
}

impl<M: ScoreModel<F>, L: LikelihoodGradient<F>, F: Real> ScoreModel<F> for Guided<M, L, F> {
    fn score(&self, x: ArrayView2<F>, t: F, mut out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(ScoreModel::dim(self), &x, &out)?;
        self.model.score(x, t, out.view_mut())?;
        if self.scale == F::zero() {
            return Ok(());
        }
        let mut g = self.scratch.take(x.dim());
        let r = self
            .likelihood
            .grad_log_likelihood(&self.model, x, t, out.view(), g.view_mut());
        if r.is_ok() {
            out.scaled_add(self.scale, &g);
        }
        self.scratch.give(g);
        r?;
        super::finite_combination("guided score", &out)
    }
    fn dim(&self) -> Option<usize> {
        self.model.dim().or(self.likelihood.dim())
    }
}
