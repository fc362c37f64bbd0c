//! Fixed-step integration over a grid with any [`Tableau`].

use super::explicit::{Interval, RkWork};
use super::{EULER, HEUN, OdeRhs, OdeStats, RK4, Tableau, check_state, ensure_standard};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::Observer;
use ndarray::Array2;

/// A fixed-step explicit Runge–Kutta method.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum FixedMethod {
    /// Euler: `x ← x + h F(t, x)`; order 1, 1 evaluation per step.
    Euler,
    /// Heun (explicit trapezoid): order 2, 2 evaluations per step.
    Heun,
    /// The classic fourth-order Runge–Kutta method: 4 evaluations per step.
    Rk4,
    /// Any explicit method given by its tableau (its embedded estimate, if any, is unused).
    Tableau(Tableau),
}

impl FixedMethod {
    /// The method's Butcher tableau.
    pub fn tableau(&self) -> Tableau {
        match self {
            FixedMethod::Euler => EULER,
            FixedMethod::Heun => HEUN,
            FixedMethod::Rk4 => RK4,
            FixedMethod::Tableau(t) => *t,
        }
    }
    /// Right-hand-side evaluations per step.
    pub fn stages(&self) -> usize {
        self.tableau().stages()
    }
    /// Order of convergence.
    pub fn order(&self) -> usize {
        self.tableau().order
    }
}

/// One fixed step of `tab` from `t` to `t1` on a batch: its stage buffers, made once.
#[derive(Debug)]
pub(crate) struct FixedStepper<F> {
    tab: Tableau,
    work: RkWork<F>,
}

impl<F: Real> FixedStepper<F> {
    pub fn new(method: FixedMethod, shape: (usize, usize)) -> Result<Self> {
        let tab = method.tableau();
        tab.validate()?;
        Ok(Self {
            tab,
            work: RkWork::new(&tab, shape),
        })
    }
    /// `x ← x + h Σ b_i k_i` from `t` to `t1` (standard-layout `x`); returns the calls made.
    pub fn step(
        &mut self,
        rhs: &mut dyn OdeRhs<F>,
        t: F,
        t1: F,
        x: &mut Array2<F>,
    ) -> Result<usize> {
        let iv = Interval {
            t,
            h: t1 - t,
            t_new: t1,
        };
        rhs.eval(t, x.view(), self.work.k[0].view_mut())?;
        let calls = 1 + self.work.stages(&self.tab, rhs, iv, x)?;
        self.work.solution_inplace(&self.tab, iv.h, x);
        Ok(calls)
    }
}

/// Check that `times` has at least two finite, strictly monotone entries.
pub(crate) fn check_times<F: Real>(times: &[F]) -> Result<()> {
    if times.len() < 2 {
        return Err(Error::param(
            "steps",
            times.len().saturating_sub(1) as f64,
            "must be at least 1",
        ));
    }
    let dir = times[1] - times[0];
    for w in times.windows(2) {
        let d = w[1] - w[0];
        if !(w[0].is_finite() && w[1].is_finite())
            || d == F::zero()
            || (d > F::zero()) != (dir > F::zero())
        {
            return Err(Error::param(
                "times",
                w[1].as_f64(),
                "must be finite and strictly monotone",
            ));
        }
    }
    Ok(())
}

/// Integrate `x` in place over the grid `times` (either direction) with a fixed-step
/// method, calling `observer` after every step. Buffers are allocated once per call.
///
/// Errors: fewer than 2 times, non-finite or non-strictly-monotone times, an empty or
/// non-finite state, an invalid tableau, or whatever the right-hand side or observer
/// returns.
///
/// ```
/// use score_sde::ode::{FixedMethod, integrate_fixed};
/// use score_sde::observe::NoObserver;
/// use ndarray::{array, ArrayView2, ArrayViewMut2};
/// // dx/dt = −x from t = 0 to 1: x(1) = e^{−1} x(0).
/// let mut rhs = |_t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>| {
///     out.assign(&(-&x));
///     Ok(())
/// };
/// let times: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
/// let mut x = array![[1.0], [2.0]];
/// let stats = integrate_fixed(&mut rhs, FixedMethod::Rk4, &times, &mut x, &mut NoObserver).unwrap();
/// assert_eq!(stats.nfe, 80);
/// assert!((x[[1, 0]] - 2.0 * (-1.0f64).exp()).abs() < 1e-7);
/// ```
pub fn integrate_fixed<F: Real>(
    rhs: &mut dyn OdeRhs<F>,
    method: FixedMethod,
    times: &[F],
    x: &mut Array2<F>,
    observer: &mut dyn Observer<F>,
) -> Result<OdeStats<F>> {
    check_times(times)?;
    check_state(x)?;
    ensure_standard(x);
    let mut stepper = FixedStepper::new(method, x.dim())?;
    let mut nfe = 0;
    for (i, w) in times.windows(2).enumerate() {
        nfe += stepper.step(rhs, w[0], w[1], x)?;
        observer.observe(i + 1, w[1], x.view())?;
    }
    Ok(OdeStats {
        steps: times.len() - 1,
        rejected: 0,
        nfe,
        t: times[times.len() - 1],
    })
}
