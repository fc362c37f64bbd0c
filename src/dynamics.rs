//! The reverse-time dynamics of a forward SDE, given a score: the drift
//!
//! ```text
//! f(x, t) − w g(t)² s(x, t),      w = 1: reverse-time SDE (Anderson 1982; Song et al. 2021, eq. 6)
//!                                 w = ½: probability-flow ODE (Song et al. 2021, eq. 13)
//! ```
//!
//! written once for any [`ForwardSde`] — a non-linear drift through [`ForwardSde::drift`],
//! a linear one (`f(t) x`, [`ForwardSde::linear_schedule`]) fused into one pass — and the
//! probability-flow right-hand side [`PfOdeRhs`] that PF-ODE sampling, encoding and the
//! likelihood all integrate.

use crate::error::Result;
use crate::num::Real;
use crate::num::par::zip_update;
use crate::ode::OdeRhs;
use crate::score::ScoreModel;
use crate::sde::ForwardSde;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use std::fmt;

/// `out = f(x, t) − w g(t)² s` for a batch `x` with score `s` (see the [module docs](self)).
///
/// For a linear SDE the drift `f(t) x` and `g²` come from its schedule in one pass over
/// `x` and `s`; otherwise [`ForwardSde::drift`] writes `f(x, t)` and `g(t)²` is
/// [`ForwardSde::diffusion`] squared.
pub fn reverse_drift<F: Real>(
    sde: &dyn ForwardSde<F>,
    weight: F,
    t: F,
    x: ArrayView2<F>,
    s: ArrayView2<F>,
    mut out: ArrayViewMut2<F>,
) -> Result<()> {
    let len = x.len();
    if let Some(sch) = sde.linear_schedule() {
        let f = sch.f(t);
        let c = -weight * sch.g2(t).max(F::zero());
        zip_update!(len, Zip::from(&mut out).and(&x).and(&s), |o, &x, &s| *o =
            f * x + c * s);
    } else {
        sde.drift(x, t, out.view_mut())?;
        let g = sde.diffusion(t);
        let c = -weight * g * g;
        zip_update!(len, Zip::from(&mut out).and(&s), |o, &s| *o += c * s);
    }
    Ok(())
}

/// The probability-flow right-hand side `f(x, t) − ½ g(t)² s(x, t)` of an SDE and a score
/// model, counting score evaluations. The likelihood evaluates it on the first `D`
/// columns of its augmented state.
///
/// The score buffer is (re)allocated only when the batch shape changes.
pub struct PfOdeRhs<'a, F: Real> {
    sde: &'a dyn ForwardSde<F>,
    model: &'a dyn ScoreModel<F>,
    score: Array2<F>,
    nfe: usize,
}

impl<F: Real> fmt::Debug for PfOdeRhs<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PfOdeRhs")
            .field("sde", &self.sde)
            .field("nfe", &self.nfe)
            .finish_non_exhaustive()
    }
}

impl<'a, F: Real> PfOdeRhs<'a, F> {
    /// The PF-ODE of `sde` with score `model`.
    pub fn new(sde: &'a dyn ForwardSde<F>, model: &'a dyn ScoreModel<F>) -> Self {
        Self {
            sde,
            model,
            score: Array2::zeros((0, 0)),
            nfe: 0,
        }
    }
    /// As [`PfOdeRhs::new`], keeping the score in `buffer` (reallocated only if its shape
    /// is not the batch's); [`PfOdeRhs::into_buffer`] gives it back, so a caller that
    /// builds a right-hand side per step allocates nothing.
    pub fn with_buffer(
        sde: &'a dyn ForwardSde<F>,
        model: &'a dyn ScoreModel<F>,
        buffer: Array2<F>,
    ) -> Self {
        Self {
            sde,
            model,
            score: buffer,
            nfe: 0,
        }
    }
    /// The score buffer, for the next [`PfOdeRhs::with_buffer`].
    pub fn into_buffer(self) -> Array2<F> {
        self.score
    }
    /// Score evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }
    /// The score computed by the last evaluation.
    pub fn last_score(&self) -> ArrayView2<'_, F> {
        self.score.view()
    }
    /// The SDE.
    pub fn sde(&self) -> &'a dyn ForwardSde<F> {
        self.sde
    }
    /// The score model.
    pub fn model(&self) -> &'a dyn ScoreModel<F> {
        self.model
    }
}

impl<F: Real> OdeRhs<F> for PfOdeRhs<'_, F> {
    fn eval(&mut self, t: F, x: ArrayView2<F>, out: ArrayViewMut2<F>) -> Result<()> {
        if self.score.dim() != x.dim() {
            self.score = Array2::zeros(x.raw_dim());
        }
        self.model.score(x, t, self.score.view_mut())?;
        self.nfe += 1;
        reverse_drift(self.sde, F::lit(0.5), t, x, self.score.view(), out)
    }
}
