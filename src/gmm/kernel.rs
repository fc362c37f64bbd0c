//! The mixture evaluation kernel: log-density, score and Laplacian of
//! `Σ_k w_k N(α μ_k, α² S_k + σ² I)` for a batch.
//!
//! ```text
//! ∇ log p = Σ_k r_k s_k,         r = softmax_k(log w_k + log N_k)
//! Δ log p = Σ_k r_k (|s_k|² − tr P_k) − |∇ log p|²         (trace of the Hessian)
//! ```
//!
//! with `s_k = −P_k (x − α μ_k)` the component scores and `P_k` the component
//! precisions. When all components share one covariance (detected when the mixture is
//! built), the quadratic term is common to all of them and cancels in the softmax, and
//! `tied` evaluates the same quantities from linear logits, for every output alike.
//! [`block`] computes them in structure-of-arrays row blocks with
//! vectorised loops (polynomial `exp` included), with a copy of the loops compiled per
//! instruction set and chosen at run time ([`Isa`]). Every call takes that path, even
//! for one row, so that a row's result does not depend on the batch it comes in (the
//! samplers' tests check this bit for bit). The earlier row-wise kernel in the
//! eigenbasis is kept as a second reference for the tests (`rowwise`).
//!
//! Buffers live in a [`Workspace`] that is reused between calls, so a call allocates
//! nothing.
//!
//! **Extreme inputs.** The fast path forms the exponents and squared norms directly, which
//! overflows for finite but huge `x` or means (`(−∞) − (−∞)` in the log-sum-exp, `∞ − ∞` in
//! the Laplacian) and loses the Laplacian to cancellation far from every component. After
//! each call the outputs are checked for finiteness in one vectorised pass (the Laplacian
//! of a row whose cancellation would cost more than `√ε` of its value is marked NaN by the
//! fast path for this purpose), and only the rows that fail are evaluated again by the
//! scale-aware formulas of `safe`. Ordinary batches pay for the check alone.

mod block;
mod dispatch;
#[cfg(test)]
mod rowwise;
pub(crate) mod safe;
mod tied;
mod transpose;

use crate::num::Real;
use crate::num::simd::Isa;
use ndarray::{Array1, Array2, Array3, ArrayView2, ArrayViewMut1, ArrayViewMut2};

/// The parts of a mixture the kernel reads.
pub(crate) struct Parts<'a, F> {
    pub log_weights: &'a Array1<F>,
    pub means: &'a Array2<F>,
    pub eigvals: &'a Array2<F>,
    pub eigvecs: &'a Array3<F>,
    pub axis_aligned: &'a [bool],
    /// All components share one covariance: take the tied path (`tied`).
    pub tied: bool,
}

/// Reusable buffers for one evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Workspace<F> {
    k: usize,
    d: usize,
    block: block::BlockWorkspace<F>,
}

impl<F: Real> Workspace<F> {
    pub(crate) fn new(k: usize, d: usize) -> Self {
        Self {
            k,
            d,
            block: block::BlockWorkspace::new(k, d),
        }
    }
    pub(crate) fn fits(&self, k: usize, d: usize) -> bool {
        (self.k, self.d) == (k, d)
    }
}

/// What to compute; `None` outputs are skipped.
pub(crate) struct Outputs<'a, F> {
    pub log_prob: Option<ArrayViewMut1<'a, F>>,
    pub score: Option<ArrayViewMut2<'a, F>>,
    pub laplacian: Option<ArrayViewMut1<'a, F>>,
    pub responsibilities: Option<ArrayViewMut2<'a, F>>,
}

impl<F> Outputs<'_, F> {
    pub(crate) fn none() -> Self {
        Self {
            log_prob: None,
            score: None,
            laplacian: None,
            responsibilities: None,
        }
    }
}

/// Evaluate the mixture at `(α, σ)` on the rows of `x`. Shapes are checked by callers.
///
/// Every output row is finite on `Ok`; rows the fast path could not represent are
/// recomputed by `safe`, and a row whose exact result lies outside the float range is
/// returned as the [`safe::Failure`] (its outputs then hold non-finite values).
pub(crate) fn evaluate<F: Real>(
    parts: &Parts<'_, F>,
    alpha: F,
    sigma: F,
    x: ArrayView2<F>,
    ws: &mut Workspace<F>,
    mut out: Outputs<'_, F>,
) -> Result<(), safe::Failure> {
    dispatch::evaluate(
        Isa::detect(),
        parts,
        alpha,
        sigma,
        x,
        &mut ws.block,
        &mut out,
    );
    if out.all_finite() {
        return Ok(());
    }
    safe::repair(parts, alpha, sigma, x, &mut out)
}

impl<F: Real> Outputs<'_, F> {
    /// Whether every requested output is finite (one vectorised pass each).
    fn all_finite(&self) -> bool {
        use crate::check::all_finite;
        self.log_prob.as_ref().is_none_or(all_finite)
            && self.score.as_ref().is_none_or(all_finite)
            && self.laplacian.as_ref().is_none_or(all_finite)
            && self.responsibilities.as_ref().is_none_or(all_finite)
    }
}

#[cfg(test)]
mod tests;
