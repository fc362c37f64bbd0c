//! Batch ODE integrators: explicit Runge–Kutta methods as data ([`Tableau`]), fixed-step
//! integration over a grid ([`integrate_fixed`]) and adaptive integration with error
//! control ([`AdaptiveRk`], Dormand–Prince by default).
//!
//! The integrators work on a whole batch `Array2<F>` (rows are trajectories) through the
//! [`OdeRhs`] trait: one right-hand-side call per stage for the whole batch, one shared
//! step size. The right-hand side may interpret the columns as it likes — the likelihood
//! integrates the augmented state `[x, Δlog p]` with `D + 1` columns. This module knows
//! nothing of SDEs or scores: the probability-flow right-hand side is
//! [`PfOdeRhs`](crate::dynamics::PfOdeRhs), and the samplers run these steps through
//! [`sample::ProbabilityFlow`](crate::sample::ProbabilityFlow).
//!
//! | method | order | stages (NFE) per step | source |
//! |---|---|---|---|
//! | [`EULER`] / [`FixedMethod::Euler`] | 1 | 1 | Euler |
//! | [`HEUN`] / [`FixedMethod::Heun`] | 2 | 2 | explicit trapezoid (Heun's method) |
//! | [`RK4`] / [`FixedMethod::Rk4`] | 4 | 4 | classic Runge–Kutta |
//! | [`DOPRI5`] / [`Dopri5`] | 5(4), adaptive | 6 (FSAL) | Dormand & Prince 1980; Hairer, Nørsett & Wanner I, §II.4–5 |
//! | [`TSIT5`] | 5(4), adaptive | 6 (FSAL) | Tsitouras 2011 |
//! | [`BS3`] | 3(2), adaptive | 3 (FSAL) | Bogacki & Shampine 1989 |
//!
//! A new method is a new [`Tableau`] constant; the step-size control (error norm, PI
//! controller, starting step) lives in `controller` as functions of scalars.
//!
//! **Error norm of the adaptive solver.** For each row `i` (sample), the RMS over its
//! columns of `err_ij / (atol + rtol · max(|y_ij|, |ŷ_ij|))`; the step is accepted when
//! the maximum of that over the rows is ≤ 1. Every sample meets the tolerance, and an
//! augmented row `[x, Δ]` is judged as a whole.

mod adaptive;
pub(crate) mod controller;
pub(crate) mod explicit;
mod fixed;
mod tableau;

pub use adaptive::{AdaptiveRk, AdaptiveState, Attempt, Dopri5};
pub use controller::BatchNorm;
pub(crate) use fixed::FixedStepper;
pub use fixed::{FixedMethod, integrate_fixed};
pub use tableau::{BS3, DOPRI5, EULER, HEUN, RK4, TSIT5, Tableau};

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// A batch right-hand side `dx/dt = F(t, x)` for the integrators of this module.
///
/// `x` has one row per trajectory; write `F(t, x)` into `out` (same shape). Closures
/// `FnMut(t, x, out) -> Result<()>` implement it.
pub trait OdeRhs<F: Real> {
    /// Write the right-hand side at `(t, x)` into `out`.
    fn eval(&mut self, t: F, x: ArrayView2<F>, out: ArrayViewMut2<F>) -> Result<()>;
}

impl<F: Real, C> OdeRhs<F> for C
where
    C: FnMut(F, ArrayView2<F>, ArrayViewMut2<F>) -> Result<()>,
{
    fn eval(&mut self, t: F, x: ArrayView2<F>, out: ArrayViewMut2<F>) -> Result<()> {
        self(t, x, out)
    }
}

/// What an integration did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct OdeStats<F> {
    /// Accepted steps.
    pub steps: usize,
    /// Rejected steps (adaptive solver only).
    pub rejected: usize,
    /// Right-hand-side evaluations (each on the whole batch).
    pub nfe: usize,
    /// The time reached.
    pub t: F,
}

pub(crate) fn ensure_standard<F: Real>(x: &mut Array2<F>) {
    if !x.is_standard_layout() {
        *x = x.as_standard_layout().into_owned();
    }
}

pub(crate) fn check_state<F: Real>(x: &Array2<F>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::Empty { what: "ODE state" });
    }
    crate::check::finite("ODE state", x)
}
