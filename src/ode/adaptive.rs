//! Adaptive integration with an embedded Runge–Kutta pair: any [`Tableau`] with error
//! weights, the PI controller and the starting-step rule of [`controller`](super::controller).

use super::controller::{PiController, batch_error_norm, first_step_guess, starting_step};
use super::explicit::{Interval, RkWork, flat, flat_mut, lincomb};
use super::{DOPRI5, OdeRhs, OdeStats, Tableau, check_state, ensure_standard};
use crate::check::{finite_scalar, positive};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::Observer;
use ndarray::{Array2, Zip};

/// Adaptive explicit Runge–Kutta integration with error control: Dormand–Prince 5(4) by
/// default ([`DOPRI5`]), any embedded pair through [`AdaptiveRk::with_tableau`].
///
/// The PI controller, the starting-step heuristic and the constants (safety 0.9, step
/// ratio in [0.2, 10], β = 0.04) are those of Hairer, Nørsett & Wanner, *Solving ODEs I*,
/// §II.4 and the `DOPRI5` code. After a rejection the step may not grow. The error norm
/// is the per-sample RMS, maximised over the batch ([module docs](super)).
///
/// NFE (Dormand–Prince): 1 for the first stage, 1 for the initial-step heuristic (unless
/// [`AdaptiveRk::initial_step`] is given), then 6 per attempted step (FSAL).
///
/// ```
/// use score_sde::ode::Dopri5;
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
pub struct AdaptiveRk<F> {
    tableau: Tableau,
    rtol: F,
    atol: F,
    max_steps: usize,
    h0: Option<F>,
    safety: F,
    beta: F,
}

/// Dormand–Prince 5(4): [`AdaptiveRk`] with its default tableau.
pub type Dopri5<F> = AdaptiveRk<F>;

/// The outcome of one attempted step.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Attempt<F> {
    /// Accepted: the state is at `t`; `last` when that is the end point.
    Accepted {
        /// The time reached.
        t: F,
        /// Whether the integration is complete.
        last: bool,
    },
    /// Rejected: the state is unchanged and the step was shortened.
    Rejected,
}

/// The state of one adaptive integration: stage buffers (made once), the time, the step
/// and the controller's memory. From [`AdaptiveRk::start`].
#[derive(Debug)]
pub struct AdaptiveState<F> {
    work: RkWork<F>,
    yn: Array2<F>,
    t: F,
    t_end: F,
    dir: F,
    span: F,
    h: F,
    err_old: F,
    rejected_last: bool,
    /// Whether the last rejection came from a non-finite error estimate.
    nonfinite_last: bool,
    attempts: usize,
    stats: OdeStats<F>,
}

impl<F: Real> AdaptiveState<F> {
    /// What the integration did so far.
    pub fn stats(&self) -> OdeStats<F> {
        self.stats
    }
    /// The time reached.
    pub fn t(&self) -> F {
        self.t
    }
}

impl<F: Real> AdaptiveRk<F> {
    /// Dormand–Prince 5(4) with relative and absolute tolerances (both finite and `> 0`), a
    /// budget of 100 000 attempted steps, and the automatic initial step.
    pub fn new(rtol: F, atol: F) -> Result<Self> {
        Ok(Self {
            tableau: DOPRI5,
            rtol: positive("rtol", rtol)?,
            atol: positive("atol", atol)?,
            max_steps: 100_000,
            h0: None,
            safety: F::lit(0.9),
            beta: F::lit(0.04),
        })
    }
    /// Use another embedded pair (it needs error weights `e`).
    pub fn with_tableau(mut self, tableau: Tableau) -> Result<Self> {
        tableau.validate()?;
        if tableau.e.is_none() {
            return Err(Error::param(
                "tableau",
                tableau.stages() as f64,
                "an adaptive method needs an embedded error estimate (e)",
            ));
        }
        self.tableau = tableau;
        Ok(self)
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
    /// The tableau.
    pub fn tableau(&self) -> &Tableau {
        &self.tableau
    }

    fn norm(&self, e: &[F], y: &[F], yn: &[F], d: usize) -> F {
        batch_error_norm(e, y, yn, d, (self.atol, self.rtol))
    }

    /// Begin integrating `x` from `t0` to `t1` (either direction): checks, the first stage
    /// `F(t0, x)` and the starting step.
    ///
    /// Errors: non-finite times, an empty, non-finite or not standard-layout state (see
    /// [`AdaptiveRk::solve`], which makes it so), or what `rhs` returns.
    pub fn start(
        &self,
        rhs: &mut dyn OdeRhs<F>,
        t0: F,
        t1: F,
        x: &Array2<F>,
    ) -> Result<AdaptiveState<F>> {
        finite_scalar("t0", t0)?;
        finite_scalar("t1", t1)?;
        check_state(x)?;
        if !x.is_standard_layout() {
            return Err(Error::Unsupported {
                what: "a state not in standard (row-major) layout",
                reason: "AdaptiveRk::start works on flat rows; AdaptiveRk::solve converts".into(),
            });
        }
        let mut work = RkWork::new(&self.tableau, x.dim());
        let mut st = AdaptiveState {
            yn: Array2::zeros(x.raw_dim()),
            t: t0,
            t_end: t1,
            dir: if t1 > t0 { F::one() } else { -F::one() },
            span: (t1 - t0).abs(),
            h: F::zero(),
            err_old: F::lit(1e-4),
            rejected_last: false,
            nonfinite_last: false,
            attempts: 0,
            stats: OdeStats {
                steps: 0,
                rejected: 0,
                nfe: 0,
                t: t0,
            },
            work: RkWork {
                k: Vec::new(),
                tmp: Array2::zeros((0, 0)),
            },
        };
        if t0 == t1 {
            st.work = work;
            return Ok(st);
        }
        let d = x.ncols();
        rhs.eval(t0, x.view(), work.k[0].view_mut())?;
        st.stats.nfe += 1;
        // Starting step (Hairer, Nørsett & Wanner I, §II.4, "Starting step size").
        let h = match self.h0 {
            Some(h) => h.min(st.span),
            None => {
                let y = flat(x);
                let d0 = self.norm(y, y, y, d);
                let d1 = self.norm(flat(&work.k[0]), y, y, d);
                let h0 = first_step_guess(d0, d1, st.span);
                // Euler to t0 + h0 and one more evaluation: the second-derivative estimate.
                let (k1, rest) = work.k.split_at_mut(1);
                lincomb(
                    flat_mut(&mut work.tmp),
                    y,
                    st.dir * h0,
                    &[(F::one(), flat(&k1[0]))],
                );
                rhs.eval(t0 + st.dir * h0, work.tmp.view(), rest[0].view_mut())?;
                st.stats.nfe += 1;
                Zip::from(&mut st.yn)
                    .and(&rest[0])
                    .and(&k1[0])
                    .for_each(|o, &a, &b| *o = a - b);
                let d2 = self.norm(flat(&st.yn), y, y, d) / h0;
                starting_step(h0, d1, d2, self.tableau.order, st.span)
            }
        };
        st.h = h * st.dir;
        st.work = work;
        Ok(st)
    }

    /// The first stage again, after the state was changed from outside between steps (an
    /// FSAL pair would otherwise reuse the right-hand side of the old state). One call.
    pub fn refresh(
        &self,
        rhs: &mut dyn OdeRhs<F>,
        st: &mut AdaptiveState<F>,
        x: &Array2<F>,
    ) -> Result<()> {
        rhs.eval(st.t, x.view(), st.work.k[0].view_mut())?;
        st.stats.nfe += 1;
        Ok(())
    }

    /// Attempt one step. On acceptance `x` holds the new state and the controller has chosen
    /// the next step; on rejection `x` is unchanged and the step shortened.
    ///
    /// Errors: [`Error::StepBudgetExceeded`] when the attempts exceed
    /// [`AdaptiveRk::max_steps`], [`Error::NoConvergence`] when the step size underflows
    /// (naming a non-finite right-hand side when that is why the steps were rejected),
    /// and what `rhs` returns.
    pub fn attempt(
        &self,
        rhs: &mut dyn OdeRhs<F>,
        st: &mut AdaptiveState<F>,
        x: &mut Array2<F>,
    ) -> Result<Attempt<F>> {
        let l = F::lit;
        if st.t == st.t_end {
            return Ok(Attempt::Accepted {
                t: st.t,
                last: true,
            });
        }
        if st.attempts >= self.max_steps {
            return Err(Error::StepBudgetExceeded {
                max_steps: self.max_steps,
                t_reached: st.t.as_f64(),
            });
        }
        if st.h.abs() <= l(16.0) * F::EPS * st.t.abs().max(st.span) {
            let reason = if st.nonfinite_last {
                format!(
                    "the right-hand side (the score) is non-finite near t = {}: every step \
                     was rejected until the step size underflowed",
                    st.t.as_f64()
                )
            } else {
                format!("step size underflow at t = {}", st.t.as_f64())
            };
            return Err(Error::NoConvergence {
                what: "adaptive Runge–Kutta step size",
                reason,
            });
        }
        st.attempts += 1;
        let tab = &self.tableau;
        let last = (st.t + st.h - st.t_end) * st.dir >= F::zero();
        if last {
            st.h = st.t_end - st.t;
        }
        let t_new = if last { st.t_end } else { st.t + st.h };
        let iv = Interval {
            t: st.t,
            h: st.h,
            t_new,
        };
        let mut calls = st.work.stages(tab, rhs, iv, x)?;
        st.work.solution_into(tab, st.h, x, &mut st.yn);
        if tab.fsal {
            let s = tab.stages();
            rhs.eval(t_new, st.yn.view(), st.work.k[s].view_mut())?;
            calls += 1;
        }
        st.stats.nfe += calls;
        // The error estimate goes into the stage-input buffer (no longer needed).
        let e = tab.e.unwrap_or(&[]);
        let mut tmp = std::mem::take(&mut st.work.tmp);
        st.work.error_into(e, st.h, &mut tmp);
        let mut err = self.norm(flat(&tmp), flat(x), flat(&st.yn), x.ncols());
        st.work.tmp = tmp;
        st.nonfinite_last = !err.is_finite();
        if !err.is_finite() {
            err = F::infinity();
        }
        let ctl = PiController::new(tab.order_err, self.safety, self.beta);
        if err <= F::one() {
            let mut h_new = ctl.accept(st.h, err, st.err_old);
            st.err_old = err.max(l(1e-4));
            std::mem::swap(x, &mut st.yn);
            if tab.fsal {
                let s = tab.stages();
                st.work.k.swap(0, s);
            } else if !last {
                rhs.eval(t_new, x.view(), st.work.k[0].view_mut())?;
                st.stats.nfe += 1;
            }
            st.t = t_new;
            st.stats.steps += 1;
            st.stats.t = t_new;
            if st.rejected_last {
                h_new = st.dir * h_new.abs().min(st.h.abs());
            }
            st.rejected_last = false;
            st.h = h_new;
            Ok(Attempt::Accepted { t: t_new, last })
        } else {
            st.stats.rejected += 1;
            st.rejected_last = true;
            st.h = ctl.reject(st.h, err);
            Ok(Attempt::Rejected)
        }
    }

    /// Integrate `x` in place from `t0` to `t1` (either direction), calling `observer`
    /// after every accepted step. Returns the accepted and rejected step counts and NFE.
    ///
    /// Errors: as [`AdaptiveRk::start`] and [`AdaptiveRk::attempt`], and whatever
    /// `observer` returns.
    pub fn solve(
        &self,
        rhs: &mut dyn OdeRhs<F>,
        t0: F,
        t1: F,
        x: &mut Array2<F>,
        observer: &mut dyn Observer<F>,
    ) -> Result<OdeStats<F>> {
        ensure_standard(x);
        let mut st = self.start(rhs, t0, t1, x)?;
        if t0 == t1 {
            return Ok(st.stats);
        }
        loop {
            if let Attempt::Accepted { t, last } = self.attempt(rhs, &mut st, x)? {
                observer.observe(st.stats.steps, t, x.view())?;
                if last {
                    return Ok(st.stats);
                }
            }
        }
    }
}
