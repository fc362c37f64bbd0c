//! The probability-flow ODE and the batch ODE integrators behind it.
//!
//! Song et al. 2021 ("Score-Based Generative Modeling through SDEs", eq. 13): the ODE
//!
//! ```text
//! dx/dt = f(x, t) − ½ g(t)² ∇ₓ log p_t(x)
//! ```
//!
//! has the same marginals `p_t` as the forward SDE. Integrated from `T` down to `t_min`
//! it maps prior noise to data ([`ProbabilityFlow`] as a [`Sampler`]); integrated
//! upwards it encodes data into latents ([`ProbabilityFlow::encode`]).
//!
//! The integrators work on a whole batch `Array2<F>` (rows are samples) through the
//! [`OdeRhs`] trait: one right-hand-side call per stage for the whole batch, one shared
//! step size. The right-hand side may interpret the columns as it likes — a likelihood
//! computation integrates the augmented state `[x, Δlog p]` with `D + 1` columns.
//!
//! | method | order | stages (NFE) per step | source |
//! |---|---|---|---|
//! | [`FixedMethod::Euler`] | 1 | 1 | Euler |
//! | [`FixedMethod::Heun`] | 2 | 2 | explicit trapezoid (Heun's method) |
//! | [`FixedMethod::Rk4`] | 4 | 4 | classic Runge–Kutta |
//! | [`Dopri5`] | 5(4), adaptive | 6 (FSAL) | Dormand & Prince 1980; Hairer, Nørsett & Wanner I, §II.4–5 |
//!
//! **Error norm of the adaptive solver.** For each row `i` (sample), the RMS over its
//! columns of `err_ij / (atol + rtol · max(|y_ij|, |ŷ_ij|))`; the step is accepted when
//! the maximum of that over the rows is ≤ 1. Every sample meets the tolerance, and an
//! augmented row `[x, Δ]` is judged as a whole.

use crate::error::{Error, Result};
use crate::num::Real;
use crate::grid::TimeGrid;
use crate::observe::{NoObserver, Observer};
use crate::sample::{Run, Sampler, check_initial};
use crate::score::ScoreModel;
use crate::sde::ForwardSde;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::RngCore;
use std::fmt;

/// A batch right-hand side `dx/dt = F(t, x)` for the integrators of this module.
///
/// `x` has one row per trajectory; write `F(t, x)` into `out` (same shape). Closures
/// `FnMut(t, x, out) -> Result<()>` implement it.
///
/// ```
/// use score_sde::sample::ode::{OdeRhs, FixedMethod, integrate_fixed};
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

/// A fixed-step explicit Runge–Kutta method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FixedMethod {
    /// Euler: `x ← x + h F(t, x)`; order 1, 1 evaluation per step.
    Euler,
    /// Heun (explicit trapezoid): order 2, 2 evaluations per step.
    Heun,
    /// The classic fourth-order Runge–Kutta method: 4 evaluations per step.
    Rk4,
}

impl FixedMethod {
    /// Right-hand-side evaluations per step.
    pub fn stages(self) -> usize {
        match self {
            FixedMethod::Euler => 1,
            FixedMethod::Heun => 2,
            FixedMethod::Rk4 => 4,
        }
    }
    /// Order of convergence.
    pub fn order(self) -> usize {
        match self {
            FixedMethod::Euler => 1,
            FixedMethod::Heun => 2,
            FixedMethod::Rk4 => 4,
        }
    }
}

fn ensure_standard<F: Real>(x: &mut Array2<F>) {
    if !x.is_standard_layout() {
        *x = x.as_standard_layout().into_owned();
    }
}

fn check_state<F: Real>(x: &Array2<F>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::Empty { what: "ODE state" });
    }
    for (i, &v) in x.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "ODE state",
                index: i,
                value: v.as_f64(),
            });
        }
    }
    Ok(())
}

/// `out = y + h Σ c_k k_k` over flat, equally long slices.
#[inline]
fn lincomb<F: Real>(out: &mut [F], y: &[F], h: F, terms: &[(F, &[F])]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = F::zero();
        for (c, k) in terms {
            acc += *c * k[i];
        }
        *o = y[i] + h * acc;
    }
}

fn slice<F: Real>(a: &Array2<F>) -> &[F] {
    // Every buffer here is created in standard layout, and states are made so.
    a.as_slice().unwrap_or(&[])
}
fn slice_mut<F: Real>(a: &mut Array2<F>) -> &mut [F] {
    a.as_slice_mut().unwrap_or(&mut [])
}

/// Integrate `x` in place over the grid `times` (either direction) with a fixed-step
/// method, calling `observer` after every step. Buffers are allocated once per call.
///
/// Errors: fewer than 2 times, non-finite or non-strictly-monotone times, an empty or
/// non-finite state, or whatever the right-hand side or observer returns.
pub fn integrate_fixed<F: Real>(
    rhs: &mut dyn OdeRhs<F>,
    method: FixedMethod,
    times: &[F],
    x: &mut Array2<F>,
    observer: &mut dyn Observer<F>,
) -> Result<OdeStats<F>> {
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
    check_state(x)?;
    ensure_standard(x);
    let dim = x.raw_dim();
    let mut k1 = Array2::<F>::zeros(dim);
    let mut k2 = Array2::<F>::zeros(dim);
    let (mut k3, mut k4, mut tmp) = match method {
        FixedMethod::Rk4 => (
            Array2::<F>::zeros(dim),
            Array2::<F>::zeros(dim),
            Array2::<F>::zeros(dim),
        ),
        FixedMethod::Heun => (
            Array2::<F>::zeros((0, 0)),
            Array2::<F>::zeros((0, 0)),
            Array2::<F>::zeros(dim),
        ),
        FixedMethod::Euler => (
            Array2::<F>::zeros((0, 0)),
            Array2::<F>::zeros((0, 0)),
            Array2::<F>::zeros((0, 0)),
        ),
    };
    let half = F::lit(0.5);
    let mut nfe = 0;
    for (i, w) in times.windows(2).enumerate() {
        let (t, t1) = (w[0], w[1]);
        let h = t1 - t;
        match method {
            FixedMethod::Euler => {
                rhs.eval(t, x.view(), k1.view_mut())?;
                nfe += 1;
                Zip::from(&mut *x).and(&k1).for_each(|x, &k| *x += h * k);
            }
            FixedMethod::Heun => {
                rhs.eval(t, x.view(), k1.view_mut())?;
                Zip::from(&mut tmp)
                    .and(&*x)
                    .and(&k1)
                    .for_each(|o, &x, &k| *o = x + h * k);
                rhs.eval(t1, tmp.view(), k2.view_mut())?;
                nfe += 2;
                let c = half * h;
                Zip::from(&mut *x)
                    .and(&k1)
                    .and(&k2)
                    .for_each(|x, &a, &b| *x += c * (a + b));
            }
            FixedMethod::Rk4 => {
                let tm = t + half * h;
                rhs.eval(t, x.view(), k1.view_mut())?;
                Zip::from(&mut tmp)
                    .and(&*x)
                    .and(&k1)
                    .for_each(|o, &x, &k| *o = x + half * h * k);
                rhs.eval(tm, tmp.view(), k2.view_mut())?;
                Zip::from(&mut tmp)
                    .and(&*x)
                    .and(&k2)
                    .for_each(|o, &x, &k| *o = x + half * h * k);
                rhs.eval(tm, tmp.view(), k3.view_mut())?;
                Zip::from(&mut tmp)
                    .and(&*x)
                    .and(&k3)
                    .for_each(|o, &x, &k| *o = x + h * k);
                rhs.eval(t1, tmp.view(), k4.view_mut())?;
                nfe += 4;
                let c = h / F::lit(6.0);
                let two = F::lit(2.0);
                Zip::from(&mut *x)
                    .and(&k1)
                    .and(&k2)
                    .and(&k3)
                    .and(&k4)
                    .for_each(|x, &a, &b, &cc, &d| *x += c * (a + two * (b + cc) + d));
            }
        }
        observer.observe(i + 1, t1, x.view())?;
    }
    Ok(OdeStats {
        steps: times.len() - 1,
        rejected: 0,
        nfe,
        t: times[times.len() - 1],
    })
}

/// Adaptive embedded Dormand–Prince 5(4) with a PI step-size controller.
///
/// Dormand & Prince 1980 (the tableau, FSAL, local extrapolation: the 5th-order solution
/// is propagated); the PI controller, the starting-step heuristic and the constants
/// (safety 0.9, step ratio in [0.2, 10], β = 0.04) are those of Hairer, Nørsett & Wanner,
/// *Solving ODEs I*, §II.4 and the `DOPRI5` code. After a rejection the step may not grow.
/// The error norm is the per-sample RMS, maximised over the batch (module docs).
///
/// NFE: 1 for the first stage, 1 for the initial-step heuristic (unless
/// [`Dopri5::initial_step`] is given), then 6 per attempted step.
///
/// ```
/// use score_sde::sample::ode::Dopri5;
/// use score_sde::observe::NoObserver;
/// use ndarray::{array, ArrayView2, ArrayViewMut2};
/// let solver = Dopri5::new(1e-8, 1e-8).unwrap();
/// let mut rhs = |t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>| {
///     out.assign(&(&x * t.cos())); // x(t) = x(0) e^{sin t}
///     Ok(())
/// };
/// let mut x = array![[1.0, -1.0]];
/// let st = solver.solve(&mut rhs, 0.0, 3.0, &mut x, &mut NoObserver).unwrap();
/// assert!((x[[0, 0]] - 3.0f64.sin().exp()).abs() < 1e-7);
/// assert_eq!(st.t, 3.0);
/// assert_eq!(st.nfe, 2 + 6 * (st.steps + st.rejected));
/// assert!(Dopri5::<f64>::new(0.0, 1e-6).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dopri5<F> {
    rtol: F,
    atol: F,
    max_steps: usize,
    h0: Option<F>,
    safety: F,
    beta: F,
}

use crate::check::positive;

// Dormand–Prince 5(4) tableau.
const C2: f64 = 1.0 / 5.0;
const C3: f64 = 3.0 / 10.0;
const C4: f64 = 4.0 / 5.0;
const C5: f64 = 8.0 / 9.0;
const A21: f64 = 1.0 / 5.0;
const A31: f64 = 3.0 / 40.0;
const A32: f64 = 9.0 / 40.0;
const A41: f64 = 44.0 / 45.0;
const A42: f64 = -56.0 / 15.0;
const A43: f64 = 32.0 / 9.0;
const A51: f64 = 19372.0 / 6561.0;
const A52: f64 = -25360.0 / 2187.0;
const A53: f64 = 64448.0 / 6561.0;
const A54: f64 = -212.0 / 729.0;
const A61: f64 = 9017.0 / 3168.0;
const A62: f64 = -355.0 / 33.0;
const A63: f64 = 46732.0 / 5247.0;
const A64: f64 = 49.0 / 176.0;
const A65: f64 = -5103.0 / 18656.0;
const A71: f64 = 35.0 / 384.0;
const A73: f64 = 500.0 / 1113.0;
const A74: f64 = 125.0 / 192.0;
const A75: f64 = -2187.0 / 6784.0;
const A76: f64 = 11.0 / 84.0;
const E1: f64 = 71.0 / 57600.0;
const E3: f64 = -71.0 / 16695.0;
const E4: f64 = 71.0 / 1920.0;
const E5: f64 = -17253.0 / 339200.0;
const E6: f64 = 22.0 / 525.0;
const E7: f64 = -1.0 / 40.0;

impl<F: Real> Dopri5<F> {
    /// A solver with relative and absolute tolerances (both finite and `> 0`), a budget
    /// of 100 000 attempted steps, and the automatic initial step.
    pub fn new(rtol: F, atol: F) -> Result<Self> {
        Ok(Self {
            rtol: positive("rtol", rtol)?,
            atol: positive("atol", atol)?,
            max_steps: 100_000,
            h0: None,
            safety: F::lit(0.9),
            beta: F::lit(0.04),
        })
    }
    /// The budget of attempted (accepted + rejected) steps, at least 1; exceeding it
    /// returns [`Error::StepBudgetExceeded`] with the time reached.
    pub fn max_steps(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::param("max_steps", 0.0, "must be at least 1"));
        }
        self.max_steps = n;
        Ok(self)
    }
    /// A fixed initial step size magnitude (`> 0`) instead of the heuristic.
    pub fn initial_step(mut self, h: F) -> Result<Self> {
        self.h0 = Some(positive("initial_step", h)?);
        Ok(self)
    }
    /// The PI controller's β (Hairer's `beta`, in `[0, 0.2)`; 0 gives the classic I controller).
    pub fn pi_beta(mut self, beta: F) -> Result<Self> {
        if !(beta.is_finite() && beta >= F::zero() && beta < F::lit(0.2)) {
            return Err(Error::param(
                "pi_beta",
                beta.as_f64(),
                "must be in [0, 0.2)",
            ));
        }
        self.beta = beta;
        Ok(self)
    }
    /// The relative tolerance.
    pub fn rtol(&self) -> F {
        self.rtol
    }
    /// The absolute tolerance.
    pub fn atol(&self) -> F {
        self.atol
    }

    /// Per-row RMS of `e / (atol + rtol max(|y|, |yn|))`, maximised over rows.
    fn norm(&self, e: &[F], y: &[F], yn: &[F], d: usize) -> F {
        let mut worst = F::zero();
        let dd = F::from_usize_lossy(d);
        for ((er, yr), ynr) in e.chunks(d).zip(y.chunks(d)).zip(yn.chunks(d)) {
            let mut s = F::zero();
            for j in 0..d {
                let sc = self.atol + self.rtol * yr[j].abs().max(ynr[j].abs());
                let q = er[j] / sc;
                s += q * q;
            }
            let r = (s / dd).sqrt();
            if r.is_nan() || r > worst {
                worst = r; // NaN propagates
            }
        }
        worst
    }

    /// Integrate `x` in place from `t0` to `t1` (either direction), calling `observer`
    /// after every accepted step. Returns the accepted and rejected step counts and NFE.
    ///
    /// Errors: non-finite times, an empty or non-finite state,
    /// [`Error::StepBudgetExceeded`] when the attempts exceed [`Dopri5::max_steps`],
    /// [`Error::NoConvergence`] when the step size underflows (a non-finite right-hand
    /// side keeps being rejected), and whatever `rhs` or `observer` return.
    pub fn solve(
        &self,
        rhs: &mut dyn OdeRhs<F>,
        t0: F,
        t1: F,
        x: &mut Array2<F>,
        observer: &mut dyn Observer<F>,
    ) -> Result<OdeStats<F>> {
        crate::check::finite_scalar("t0", t0)?;
        crate::check::finite_scalar("t1", t1)?;
        check_state(x)?;
        ensure_standard(x);
        let mut stats = OdeStats {
            steps: 0,
            rejected: 0,
            nfe: 0,
            t: t0,
        };
        if t0 == t1 {
            return Ok(stats);
        }
        let dir = if t1 > t0 { F::one() } else { -F::one() };
        let span = (t1 - t0).abs();
        let d = x.ncols();
        let dim = x.raw_dim();
        let z = || Array2::<F>::zeros(dim);
        let (mut k1, mut k2, mut k3, mut k4, mut k5, mut k6, mut k7) =
            (z(), z(), z(), z(), z(), z(), z());
        let (mut yt, mut yn) = (z(), z());
        let l = F::lit;

        let mut t = t0;
        rhs.eval(t, x.view(), k1.view_mut())?;
        stats.nfe += 1;

        // Starting step (Hairer, Nørsett & Wanner I, §II.4, "Starting step size").
        let mut h = match self.h0 {
            Some(h) => h.min(span),
            None => {
                let d0 = self.norm(slice(x), slice(x), slice(x), d);
                let d1 = self.norm(slice(&k1), slice(x), slice(x), d);
                let mut h0 = if d0 < l(1e-5) || d1 < l(1e-5) {
                    l(1e-6)
                } else {
                    l(0.01) * d0 / d1
                };
                h0 = h0.min(span);
                lincomb(
                    slice_mut(&mut yt),
                    slice(x),
                    dir * h0,
                    &[(F::one(), slice(&k1))],
                );
                rhs.eval(t + dir * h0, yt.view(), k2.view_mut())?;
                stats.nfe += 1;
                Zip::from(&mut k3)
                    .and(&k2)
                    .and(&k1)
                    .for_each(|o, &a, &b| *o = a - b);
                let d2 = self.norm(slice(&k3), slice(x), slice(x), d) / h0;
                let m = d1.max(d2);
                let h1 = if m <= l(1e-15) {
                    l(1e-6).max(h0 * l(1e-3))
                } else {
                    (l(0.01) / m).powf(l(0.2))
                };
                let h = (l(100.0) * h0).min(h1).min(span);
                if h.is_finite() && h > F::zero() {
                    h
                } else {
                    l(1e-6).min(span)
                }
            }
        } * dir;

        let expo1 = l(0.2) - self.beta * l(0.75);
        let (fac_lo, fac_hi) = (l(0.1), l(5.0)); // 1/10 ≤ h/h_new ≤ 1/0.2
        let mut err_old = l(1e-4);
        let mut rejected_last = false;
        let mut attempts = 0usize;
        loop {
            if attempts >= self.max_steps {
                return Err(Error::StepBudgetExceeded {
                    max_steps: self.max_steps,
                    t_reached: t.as_f64(),
                });
            }
            if h.abs() <= l(16.0) * F::EPS * t.abs().max(span) {
                return Err(Error::NoConvergence {
                    what: "Dormand–Prince step size",
                    reason: format!("step size underflow at t = {}", t.as_f64()),
                });
            }
            attempts += 1;
            let last = (t + h - t1) * dir >= F::zero();
            if last {
                h = t1 - t;
            }
            let y = slice(x);
            lincomb(slice_mut(&mut yt), y, h, &[(l(A21), slice(&k1))]);
            rhs.eval(t + l(C2) * h, yt.view(), k2.view_mut())?;
            lincomb(
                slice_mut(&mut yt),
                y,
                h,
                &[(l(A31), slice(&k1)), (l(A32), slice(&k2))],
            );
            rhs.eval(t + l(C3) * h, yt.view(), k3.view_mut())?;
            lincomb(
                slice_mut(&mut yt),
                y,
                h,
                &[
                    (l(A41), slice(&k1)),
                    (l(A42), slice(&k2)),
                    (l(A43), slice(&k3)),
                ],
            );
            rhs.eval(t + l(C4) * h, yt.view(), k4.view_mut())?;
            lincomb(
                slice_mut(&mut yt),
                y,
                h,
                &[
                    (l(A51), slice(&k1)),
                    (l(A52), slice(&k2)),
                    (l(A53), slice(&k3)),
                    (l(A54), slice(&k4)),
                ],
            );
            rhs.eval(t + l(C5) * h, yt.view(), k5.view_mut())?;
            lincomb(
                slice_mut(&mut yt),
                y,
                h,
                &[
                    (l(A61), slice(&k1)),
                    (l(A62), slice(&k2)),
                    (l(A63), slice(&k3)),
                    (l(A64), slice(&k4)),
                    (l(A65), slice(&k5)),
                ],
            );
            let t_new = if last { t1 } else { t + h };
            rhs.eval(t_new, yt.view(), k6.view_mut())?;
            lincomb(
                slice_mut(&mut yn),
                y,
                h,
                &[
                    (l(A71), slice(&k1)),
                    (l(A73), slice(&k3)),
                    (l(A74), slice(&k4)),
                    (l(A75), slice(&k5)),
                    (l(A76), slice(&k6)),
                ],
            );
            rhs.eval(t_new, yn.view(), k7.view_mut())?;
            stats.nfe += 6;
            // Error estimate into yt (no longer needed): h Σ e_i k_i.
            error_estimate(
                slice_mut(&mut yt),
                h,
                [
                    slice(&k1),
                    slice(&k3),
                    slice(&k4),
                    slice(&k5),
                    slice(&k6),
                    slice(&k7),
                ],
            );
            let mut err = self.norm(slice(&yt), slice(x), slice(&yn), d);
            if !err.is_finite() {
                err = F::infinity();
            }
            let fac11 = err.powf(expo1);
            if err <= F::one() {
                let fac = (fac11 / err_old.powf(self.beta) / self.safety)
                    .max(fac_lo)
                    .min(fac_hi);
                let mut h_new = h / fac;
                err_old = err.max(l(1e-4));
                std::mem::swap(x, &mut yn);
                std::mem::swap(&mut k1, &mut k7);
                t = t_new;
                stats.steps += 1;
                stats.t = t;
                observer.observe(stats.steps, t, x.view())?;
                if last {
                    return Ok(stats);
                }
                if rejected_last {
                    h_new = dir * h_new.abs().min(h.abs());
                }
                rejected_last = false;
                h = h_new;
            } else {
                stats.rejected += 1;
                rejected_last = true;
                h /= fac_hi.min(fac11 / self.safety);
            }
        }
    }
}

fn error_estimate<F: Real>(out: &mut [F], h: F, k: [&[F]; 6]) {
    let e = [E1, E3, E4, E5, E6, E7].map(F::lit);
    for (i, o) in out.iter_mut().enumerate() {
        *o = h
            * (e[0] * k[0][i]
                + e[1] * k[1][i]
                + e[2] * k[2][i]
                + e[3] * k[3][i]
                + e[4] * k[4][i]
                + e[5] * k[5][i]);
    }
}

/// The probability-flow right-hand side `f(x, t) − ½ g(t)² s(x, t)` of an SDE and a score
/// model, counting score evaluations. A likelihood computation can hold one and evaluate
/// it on the first `D` columns of an augmented state.
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
    /// Score evaluations so far.
    pub fn nfe(&self) -> usize {
        self.nfe
    }
    /// The score computed by the last evaluation.
    pub fn last_score(&self) -> ArrayView2<'_, F> {
        self.score.view()
    }
}

impl<F: Real> OdeRhs<F> for PfOdeRhs<'_, F> {
    fn eval(&mut self, t: F, x: ArrayView2<F>, mut out: ArrayViewMut2<F>) -> Result<()> {
        if self.score.dim() != x.dim() {
            self.score = Array2::zeros(x.raw_dim());
        }
        self.sde.drift(x.view(), t, out.view_mut())?;
        self.model.score(x, t, self.score.view_mut())?;
        self.nfe += 1;
        let c = -F::lit(0.5) * self.sde.diffusion(t).powi(2);
        Zip::from(&mut out)
            .and(&self.score)
            .for_each(|o, &s| *o += c * s);
        Ok(())
    }
}

/// How [`ProbabilityFlow`] integrates.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OdeSolver<F> {
    /// A fixed-step method on a grid (from `T` down to `t_min`).
    Fixed {
        /// The method.
        method: FixedMethod,
        /// The sampling grid (decreasing).
        grid: TimeGrid<F>,
    },
    /// Adaptive Dormand–Prince 5(4) from `t_start` down to `t_end`.
    Adaptive {
        /// The solver and its tolerances.
        solver: Dopri5<F>,
        /// Start of sampling (usually `T`).
        t_start: F,
        /// End of sampling (usually `t_min`).
        t_end: F,
    },
}

/// Sampling, encoding and decoding through the probability-flow ODE
/// `dx = [f(x, t) − ½ g(t)² ∇ log p_t(x)] dt` (Song et al. 2021, eq. 13).
///
/// As a [`Sampler`] it integrates prior noise from `T` down to `t_min` and needs no
/// randomness. [`ProbabilityFlow::encode`] maps data at `t_min` to latents at `T`
/// (score_sde's `get_ode_sampler` backwards), [`ProbabilityFlow::decode`] maps back;
/// the same solver serves both directions (a fixed grid is reversed for encoding).
/// score_sde samples with RK45 at `rtol = atol = 1e-5`.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::ode::{Dopri5, FixedMethod, ProbabilityFlow};
/// use ndarray::{array, Array2};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let gm = GaussianMixture::gaussian(array![1.0, -1.0], Array2::eye(2) * 0.5).unwrap();
/// let model = AnalyticScore::new(gm, *sde.schedule());
/// let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-6, 1e-6).unwrap());
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let run = pf.sample(&model, 2000, 2, &mut rng).unwrap();
/// let m = run.samples.mean_axis(ndarray::Axis(0)).unwrap();
/// assert!((m[0] - 1.0).abs() < 0.1 && (m[1] + 1.0).abs() < 0.1);
/// // Encode then decode: back to the input within the tolerance.
/// let x0 = run.samples.slice(ndarray::s![..5, ..]).to_owned();
/// let (z, _) = pf.encode(&model, x0.clone()).unwrap();
/// let (back, _) = pf.decode(&model, z).unwrap();
/// assert!((&back - &x0).iter().all(|e| e.abs() < 1e-4));
/// // A fixed-step RK4 sampler on 25 uniform steps: 100 score evaluations.
/// let grid = TimeGrid::uniform(sde.schedule(), 25).unwrap();
/// let rk4 = ProbabilityFlow::fixed(sde, FixedMethod::Rk4, grid).unwrap();
/// assert_eq!(rk4.sample(&model, 10, 2, &mut rng).unwrap().nfe, 100);
/// ```
#[derive(Debug, Clone)]
pub struct ProbabilityFlow<F, S> {
    sde: S,
    solver: OdeSolver<F>,
}

impl<F: Real, S: ForwardSde<F>> ProbabilityFlow<F, S> {
    /// A fixed-step PF-ODE sampler on a decreasing grid inside the SDE's time range.
    pub fn fixed(sde: S, method: FixedMethod, grid: TimeGrid<F>) -> Result<Self> {
        check_grid_range(&grid, sde.t_range())?;
        Ok(Self {
            sde,
            solver: OdeSolver::Fixed { method, grid },
        })
    }
    /// An adaptive Dormand–Prince PF-ODE sampler over the SDE's whole range `[t_min, T]`.
    pub fn adaptive(sde: S, solver: Dopri5<F>) -> Self {
        let (t_end, t_start) = sde.t_range();
        Self {
            sde,
            solver: OdeSolver::Adaptive {
                solver,
                t_start,
                t_end,
            },
        }
    }
    /// Restrict the adaptive solve to `[t_end, t_start]` (`t_end < t_start`, inside the range).
    pub fn span(mut self, t_start: F, t_end: F) -> Result<Self> {
        let (lo, hi) = self.sde.t_range();
        let slack = F::lit(8.0) * F::EPS * hi.abs().max(F::one());
        for t in [t_start, t_end] {
            if !t.is_finite() || t < lo - slack || t > hi + slack {
                return Err(Error::TimeOutOfRange {
                    t: t.as_f64(),
                    min: lo.as_f64(),
                    max: hi.as_f64(),
                });
            }
        }
        if t_end >= t_start {
            return Err(Error::param("t_end", t_end.as_f64(), "must be < t_start"));
        }
        if let OdeSolver::Adaptive { solver, .. } = self.solver {
            self.solver = OdeSolver::Adaptive {
                solver,
                t_start,
                t_end,
            };
        }
        Ok(self)
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }
    /// The solver.
    pub fn solver(&self) -> &OdeSolver<F> {
        &self.solver
    }

    fn integrate(
        &self,
        model: &dyn ScoreModel<F>,
        x: &mut Array2<F>,
        forward: bool,
        observer: &mut dyn Observer<F>,
    ) -> Result<OdeStats<F>> {
        check_initial(model, &x.view())?;
        let mut rhs = PfOdeRhs::new(&self.sde, model);
        let stats = match &self.solver {
            OdeSolver::Fixed { method, grid } => {
                if forward {
                    let g = grid.reversed();
                    integrate_fixed(&mut rhs, *method, g.times(), x, observer)?
                } else {
                    integrate_fixed(&mut rhs, *method, grid.times(), x, observer)?
                }
            }
            OdeSolver::Adaptive {
                solver,
                t_start,
                t_end,
            } => {
                let (a, b) = if forward {
                    (*t_end, *t_start)
                } else {
                    (*t_start, *t_end)
                };
                solver.solve(&mut rhs, a, b, x, observer)?
            }
        };
        debug_assert_eq!(stats.nfe, rhs.nfe());
        Ok(stats)
    }

    /// Encode data at `t_min` (the grid's or span's end) into latents at `T` by
    /// integrating the PF-ODE forward in time.
    pub fn encode(
        &self,
        model: &dyn ScoreModel<F>,
        x0: Array2<F>,
    ) -> Result<(Array2<F>, OdeStats<F>)> {
        let mut x = x0;
        let st = self.integrate(model, &mut x, true, &mut NoObserver)?;
        Ok((x, st))
    }
    /// Decode latents at `T` into data at `t_min` (the sampling direction).
    pub fn decode(
        &self,
        model: &dyn ScoreModel<F>,
        z: Array2<F>,
    ) -> Result<(Array2<F>, OdeStats<F>)> {
        let mut x = z;
        let st = self.integrate(model, &mut x, false, &mut NoObserver)?;
        Ok((x, st))
    }
}

/// Check that a sampling grid is decreasing and inside `[lo, hi]` (with a few ulps of slack).
pub(crate) fn check_grid_range<F: Real>(grid: &TimeGrid<F>, (lo, hi): (F, F)) -> Result<()> {
    if !grid.is_decreasing() {
        return Err(Error::param(
            "grid",
            grid.times()[0].as_f64(),
            "a sampling grid must run from T down to t_min (decreasing)",
        ));
    }
    let slack = F::lit(8.0) * F::EPS * hi.abs().max(F::one());
    let times = grid.times();
    for &t in [times[0], times[times.len() - 1]].iter() {
        if !t.is_finite() || t < lo - slack || t > hi + slack {
            return Err(Error::TimeOutOfRange {
                t: t.as_f64(),
                min: lo.as_f64(),
                max: hi.as_f64(),
            });
        }
    }
    Ok(())
}

impl<F: Real, S: ForwardSde<F>> Sampler<F> for ProbabilityFlow<F, S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        _rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        let mut x = x;
        let st = self.integrate(model, &mut x, false, observer)?;
        Ok(Run::new(x, st.nfe, st.steps))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
}
