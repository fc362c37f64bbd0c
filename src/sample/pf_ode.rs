//! Sampling, encoding and decoding through the probability-flow ODE (Song et al. 2021,
//! eq. 13)
//!
//! ```text
//! dx/dt = f(x, t) − ½ g(t)² ∇ₓ log p_t(x)
//! ```
//!
//! which has the same marginals `p_t` as the forward SDE, for any
//! [`ForwardSde`] (its right-hand side is [`PfOdeRhs`]). Integrated from `T` down to `t_min`
//! it maps prior noise to data; integrated upwards it encodes data into latents. The
//! integrators are those of [`ode`](crate::ode): a fixed-step [`Tableau`](crate::ode::Tableau)
//! on a grid, or an adaptive embedded pair (Dormand–Prince) over a span.

use super::check_initial;
use super::driver::{Advance, GridSampler, Plan, RunRows, StepContext, StepInfo, StepMethod};
use crate::dynamics::PfOdeRhs;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::observe::NoObserver;
use crate::ode::{AdaptiveRk, AdaptiveState, Attempt, FixedMethod, FixedStepper, OdeStats};
use crate::score::ScoreModel;
use crate::sde::ForwardSde;
use ndarray::Array2;
use rand::RngCore;

/// How [`ProbabilityFlow`] integrates.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum OdeSolver<F> {
    /// A fixed-step method on the sampler's grid.
    Fixed(FixedMethod),
    /// An adaptive embedded pair (Dormand–Prince by default) over the sampler's span.
    Adaptive(AdaptiveRk<F>),
}

/// The probability-flow step: one step of an ODE integrator on the PF-ODE of `sde`.
#[derive(Debug, Clone)]
pub struct PfOde<F, S> {
    sde: S,
    solver: OdeSolver<F>,
}

/// Per-run state of the PF-ODE step: the integrator's buffers and the score buffer.
#[derive(Debug)]
pub struct PfOdeState<F> {
    score: Array2<F>,
    fixed: Option<FixedStepper<F>>,
    adaptive: Option<AdaptiveState<F>>,
    /// An accepted adaptive step since the FSAL stage was last computed from the state as
    /// the driver left it (an observer's constraint may have changed it).
    stale: bool,
}

impl<F: Real, S: ForwardSde<F>> PfOde<F, S> {
    /// The PF-ODE of `sde` integrated by `solver`.
    pub fn new(sde: S, solver: OdeSolver<F>) -> Self {
        Self { sde, solver }
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.sde
    }
    /// The solver.
    pub fn solver(&self) -> &OdeSolver<F> {
        &self.solver
    }
}

impl<F: Real, S: ForwardSde<F>> StepMethod<F> for PfOde<F, S> {
    type State = PfOdeState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        match (&self.solver, plan) {
            (OdeSolver::Fixed(m), Plan::Grid(_)) => {
                m.tableau().validate()?;
                plan.check_sampling_grid(self.sde.t_range())
            }
            (OdeSolver::Adaptive(_), Plan::Span { .. }) => plan.check_sampling(self.sde.t_range()),
            (OdeSolver::Fixed(_), _) => plan.check_sampling_grid(self.sde.t_range()),
            (OdeSolver::Adaptive(_), _) => Err(Error::Unsupported {
                what: "an adaptive PF-ODE solver on a fixed plan",
                reason: "adaptive solvers run over a span (Plan::Span)".into(),
            }),
        }
    }
    fn is_stochastic(&self) -> bool {
        false
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
    fn initial_rows(
        &self,
        seed: u64,
        rows: std::ops::Range<usize>,
        dim: usize,
    ) -> Result<Array2<F>> {
        self.sde.sample_prior_rows(seed, rows, dim)
    }
    fn init(
        &self,
        ctx: &mut StepContext<'_, F>,
        x: &Array2<F>,
        plan: &Plan<F>,
    ) -> Result<Self::State> {
        let mut st = PfOdeState {
            score: Array2::zeros(x.raw_dim()),
            fixed: None,
            adaptive: None,
            stale: false,
        };
        match &self.solver {
            OdeSolver::Fixed(m) => st.fixed = Some(FixedStepper::new(*m, x.dim())?),
            OdeSolver::Adaptive(solver) => {
                let (from, to) = (plan.start(), plan.end());
                let buf = std::mem::take(&mut st.score);
                let mut rhs = PfOdeRhs::with_buffer(&self.sde, ctx.model(), buf);
                let started = solver.start(&mut rhs, from, to, x);
                st.score = rhs.into_buffer();
                st.adaptive = Some(started?);
            }
        }
        Ok(st)
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut PfOdeState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let buf = std::mem::take(&mut st.score);
        let mut rhs = PfOdeRhs::with_buffer(&self.sde, ctx.model(), buf);
        let out = match (&self.solver, st.fixed.as_mut(), st.adaptive.as_mut()) {
            (OdeSolver::Fixed(_), Some(stepper), _) => stepper
                .step(&mut rhs, step.t, step.t_next, x)
                .map(|_| Advance::Reached),
            (OdeSolver::Adaptive(solver), _, Some(ad)) => {
                let refreshed = if st.stale && ctx.constrained() {
                    solver.refresh(&mut rhs, ad, x)
                } else {
                    Ok(())
                };
                st.stale = false;
                refreshed.and_then(|()| match solver.attempt(&mut rhs, ad, x)? {
                    Attempt::Accepted { t, .. } => {
                        st.stale = true;
                        Ok(Advance::To(t))
                    }
                    Attempt::Rejected => Ok(Advance::Rejected),
                })
            }
            _ => Err(Error::Unsupported {
                what: "a PF-ODE step",
                reason: "the state was not made for this solver".into(),
            }),
        };
        st.score = rhs.into_buffer();
        out
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        self.sde
            .linear_schedule()
            .map(|sch| (sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        match self.solver {
            OdeSolver::Fixed(m) => Some(m.stages()),
            OdeSolver::Adaptive(_) => None,
        }
    }
}

/// Sampling, encoding and decoding through the probability-flow ODE
/// `dx = [f(x, t) − ½ g(t)² ∇ log p_t(x)] dt` (Song et al. 2021, eq. 13), for any
/// [`ForwardSde`]: the [`GridSampler`] of a [`PfOde`] step.
///
/// As a [`Sampler`](super::Sampler) it integrates prior noise from `T` down to `t_min` and
/// needs no randomness. [`encode`](GridSampler::encode) maps data at `t_min` to latents at
/// `T` (score_sde's `get_ode_sampler` backwards), [`decode`](GridSampler::decode) maps
/// back; the same solver serves both directions (a fixed grid is reversed for encoding).
/// score_sde samples with RK45 at `rtol = atol = 1e-5`. Observers see every accepted step
/// (an observer that constrains the state makes the adaptive solver recompute its FSAL
/// stage after each step, one more NFE per step).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{Dopri5, FixedMethod, ProbabilityFlow};
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
pub type ProbabilityFlow<F, S> = GridSampler<F, PfOde<F, S>>;

impl<F: Real, S: ForwardSde<F>> GridSampler<F, PfOde<F, S>> {
    /// A fixed-step PF-ODE sampler on a decreasing grid inside the SDE's time range.
    pub fn fixed(sde: S, method: FixedMethod, grid: TimeGrid<F>) -> Result<Self> {
        GridSampler::with_grid(PfOde::new(sde, OdeSolver::Fixed(method)), grid)
    }
    /// An adaptive PF-ODE sampler over the SDE's whole range, from `T` to `t_min`.
    pub fn adaptive(sde: S, solver: AdaptiveRk<F>) -> Self {
        let (t_end, t_start) = sde.t_range();
        GridSampler {
            method: PfOde::new(sde, OdeSolver::Adaptive(solver)),
            plan: Plan::Span {
                from: t_start,
                to: t_end,
            },
            denoise_final: false,
        }
    }
    /// Restrict the adaptive solve to `[t_end, t_start]` (`t_end < t_start`, inside the
    /// range). An error for a fixed-step sampler (its grid sets the times).
    pub fn span(mut self, t_start: F, t_end: F) -> Result<Self> {
        if let OdeSolver::Fixed(_) = self.method.solver {
            return Err(Error::Unsupported {
                what: "span on a fixed-step PF-ODE sampler",
                reason: "its grid sets the times; build a grid over the span instead".into(),
            });
        }
        let plan = Plan::Span {
            from: t_start,
            to: t_end,
        };
        self.method.check_plan(&plan)?;
        self.plan = plan;
        Ok(self)
    }
    /// The SDE.
    pub fn sde(&self) -> &S {
        &self.method.sde
    }
    /// The solver.
    pub fn solver(&self) -> &OdeSolver<F> {
        &self.method.solver
    }

    fn integrate(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        forward: bool,
    ) -> Result<(Array2<F>, OdeStats<F>)> {
        check_initial(model, &x.view())?;
        let plan = if forward {
            self.plan.reversed()
        } else {
            self.plan.clone()
        };
        let rows = RunRows {
            seed: None,
            first: 0,
            denoise: false,
        };
        let x = super::standard_layout(x);
        let run = self.drive(&plan, model, x, rows, &mut NoObserver)?;
        let stats = OdeStats {
            steps: run.steps,
            rejected: run.rejected,
            nfe: run.nfe,
            t: plan.end(),
        };
        Ok((run.samples, stats))
    }

    /// Encode data at `t_min` (the grid's or span's end) into latents at `T` by
    /// integrating the PF-ODE forward in time.
    pub fn encode(
        &self,
        model: &dyn ScoreModel<F>,
        x0: Array2<F>,
    ) -> Result<(Array2<F>, OdeStats<F>)> {
        self.integrate(model, x0, true)
    }
    /// Decode latents at `T` into data at `t_min` (the sampling direction).
    pub fn decode(
        &self,
        model: &dyn ScoreModel<F>,
        z: Array2<F>,
    ) -> Result<(Array2<F>, OdeStats<F>)> {
        self.integrate(model, z, false)
    }
}
