//! "Gotta Go Fast": the adaptive reverse-SDE solver of Jolicoeur-Martineau, Li,
//! Piché-Taillefer, Kachman & Mitliagkas 2021 ("Gotta Go Fast When Generating Data with
//! Score-Based Models", Alg. 1).
//!
//! With the reverse drift `b(x, t) = f(x, t) − g(t)² s(x, t)` (Song et al. 2021, eq. 6),
//! a step from `t` to `t − h` with one standard-normal draw `z` per attempt:
//!
//! ```text
//! K₁ = −h b(x, t)        + g(t) √h z          x' = x + K₁           (Euler–Maruyama)
//! K₂ = −h b(x', t − h)   + g(t − h) √h z                            (the same z)
//! x'' = x + ½ (K₁ + K₂)                                              (improved Euler)
//! E  = max over samples of RMS((x'' − x')/δ),   δ = max(atol, rtol · max(|x'|, |x'_prev|))
//! ```
//!
//! `x'_prev` is the Euler–Maruyama solution of the last accepted step. If `E ≤ 1` the step
//! is accepted with the improved-Euler solution (extrapolation); either way the next step is
//! `h ← min(t − t_end, θ h E^{−r})` (θ = 0.9, r = 0.9; the paper's defaults with
//! `h_init = 0.01`, `rtol = atol = 0.01`). A rejected attempt draws a new `z` but keeps
//! `b(x, t)`, so it costs one NFE (an accepted one two). The paper adds a final Tweedie
//! denoise ([`GridSampler::denoise_final`]).
//!
//! Difference from the paper's code: there every sample has its own time and step; here
//! the batch shares one step (the driver's one time), accepted when every sample meets the
//! tolerance. On a fixed [`TimeGrid`] the step method takes the improved-Euler step on every
//! grid step without control (a stochastic Heun scheme, 2 NFE per step).

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::noise_table::{NoiseTable, draw};
use crate::check::positive;
use crate::dynamics::reverse_drift;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::ode::controller::{BatchNorm, SpanSteps, pair_error_norm};
use crate::ode::explicit::flat;
use crate::sde::ForwardSde;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// One attempted step of the Gotta Go Fast solver (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct GgfStep<F, S> {
    sde: S,
    rtol: F,
    atol: F,
    h_init: F,
    theta: F,
    expo: F,
    max_steps: usize,
    norm: BatchNorm,
    noise: Option<NoiseTable<F>>,
}

/// Per-run state: the score and reverse drifts at both stages, the Euler–Maruyama and
/// improved-Euler solutions, the previous Euler–Maruyama solution, the noise, the step.
#[derive(Debug)]
pub struct GgfState<F> {
    score: Array2<F>,
    b0: Array2<F>,
    b1: Array2<F>,
    x1: Array2<F>,
    x2: Array2<F>,
    prev: Array2<F>,
    z: Array2<F>,
    b0_fresh: bool,
    ctl: SpanSteps<F>,
}

impl<F: Real, S: ForwardSde<F>> GgfStep<F, S> {
    /// From `(x, t)` by `h` (towards smaller t): `x1 = x'`, `x2 = x''`.
    fn attempt(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut GgfState<F>,
        x: &Array2<F>,
        t: F,
        t_new: F,
        k: usize,
    ) -> Result<()> {
        let h = t - t_new;
        if !st.b0_fresh {
            ctx.model().score(x.view(), t, st.score.view_mut())?;
            reverse_drift(
                &self.sde,
                F::one(),
                t,
                x.view(),
                st.score.view(),
                st.b0.view_mut(),
            )?;
            st.b0_fresh = true;
        }
        draw(self.noise.as_ref(), ctx, k, st.z.view_mut())?;
        let sq = h.max(F::zero()).sqrt();
        let c0 = self.sde.diffusion(t) * sq;
        Zip::from(&mut st.x1)
            .and(x)
            .and(&st.b0)
            .and(&st.z)
            .for_each(|o, &x, &b, &z| *o = x - h * b + c0 * z);
        ctx.model()
            .score(st.x1.view(), t_new, st.score.view_mut())?;
        reverse_drift(
            &self.sde,
            F::one(),
            t_new,
            st.x1.view(),
            st.score.view(),
            st.b1.view_mut(),
        )?;
        let c1 = self.sde.diffusion(t_new) * sq;
        let half = F::lit(0.5);
        // x'' = x + ½(K₁ + K₂) = ½(x + x') + ½(−h b(x', t − h) + g(t − h)√h z).
        Zip::from(&mut st.x2)
            .and(x)
            .and(&st.x1)
            .and(&st.b1)
            .and(&st.z)
            .for_each(|o, &x, &x1, &b, &z| *o = half * (x + x1) + half * (c1 * z - h * b));
        Ok(())
    }
}

impl<F: Real, S: ForwardSde<F>> StepMethod<F> for GgfStep<F, S> {
    type State = GgfState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        true
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
        _: &mut StepContext<'_, F>,
        x: &Array2<F>,
        plan: &Plan<F>,
    ) -> Result<Self::State> {
        let z = || Array2::<F>::zeros(x.raw_dim());
        let adaptive = matches!(plan, Plan::Span { .. });
        Ok(GgfState {
            score: z(),
            b0: z(),
            b1: z(),
            x1: z(),
            x2: z(),
            prev: if adaptive {
                x.clone()
            } else {
                Array2::zeros((0, 0))
            },
            z: z(),
            b0_fresh: false,
            ctl: SpanSteps::new(self.h_init, self.max_steps),
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut GgfState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let (t, end) = (step.t, step.t_next);
        if step.steps.is_some() {
            st.b0_fresh = false;
            self.attempt(ctx, st, x, t, end, step.index)?;
            std::mem::swap(x, &mut st.x2);
            return Ok(Advance::Reached);
        }
        let k = st.ctl.attempts();
        let (h, last) = st
            .ctl
            .propose(t - end, t, "adaptive reverse-SDE step size")?;
        let t_new = if last { end } else { t - h };
        // b(x, t) is kept across rejections: the state is unchanged and the driver observes
        // (and constrains) only after accepted steps.
        self.attempt(ctx, st, x, t, t_new, k)?;
        let tol = (self.atol, self.rtol);
        let err = pair_error_norm(
            flat(&st.x2),
            flat(&st.x1),
            flat(&st.prev),
            x.ncols(),
            tol,
            self.norm,
        );
        if st.ctl.settle(t - t_new, err, self.theta, self.expo) {
            std::mem::swap(x, &mut st.x2);
            std::mem::swap(&mut st.prev, &mut st.x1);
            st.b0_fresh = false;
            Ok(Advance::To(t_new))
        } else {
            Ok(Advance::Rejected)
        }
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        self.sde
            .linear_schedule()
            .map(|sch| (sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(2)
    }
}

/// The adaptive reverse-SDE solver "Gotta Go Fast" (Jolicoeur-Martineau et al. 2021,
/// Alg. 1; see the [module docs](crate::sample::sde_adaptive)) for any
/// [`ForwardSde`]: the [`GridSampler`] of a [`GgfStep`], over the SDE's whole range by
/// default. NFE = 2 per accepted and 1 per rejected attempt (+1 with
/// [`GridSampler::denoise_final`]); `Run::steps` and `Run::rejected` count them.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::GottaGoFast;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let ggf = GottaGoFast::new(sde.clone(), 0.02, 0.02).unwrap().denoise_final(true);
/// let run = ggf.sample(&model, 500, 2, &mut rand_pcg::Pcg64::seed_from_u64(0)).unwrap();
/// assert_eq!(run.nfe, 2 * run.steps + run.rejected + 1);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// ```
pub type GottaGoFast<F, S> = GridSampler<F, GgfStep<F, S>>;

impl<F: Real, S: ForwardSde<F>> GridSampler<F, GgfStep<F, S>> {
    /// The adaptive solver with tolerances `rtol`, `atol` (finite, `> 0`; the paper uses
    /// 0.01–0.05 and 0.0039–0.01 for images in [0, 1]), `h_init = 0.01`, θ = r = 0.9, a
    /// budget of 100 000 attempts, from `T` down to `t_min`.
    pub fn new(sde: S, rtol: F, atol: F) -> Result<Self> {
        let (lo, hi) = sde.t_range();
        let step = GgfStep {
            sde,
            rtol: positive("rtol", rtol)?,
            atol: positive("atol", atol)?,
            h_init: F::lit(0.01),
            theta: F::lit(0.9),
            expo: F::lit(0.9),
            max_steps: 100_000,
            norm: BatchNorm::MaxSample,
            noise: None,
        };
        GridSampler::with_plan(step, Plan::Span { from: hi, to: lo })
    }
    /// The stochastic improved-Euler (Heun) scheme on a fixed grid, without error control:
    /// 2 NFE per step.
    pub fn fixed(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let mut s = Self::new(sde, F::one(), F::one())?;
        s.method.check_plan(&Plan::Grid(grid.clone()))?;
        s.plan = Plan::Grid(grid);
        Ok(s)
    }
    /// The initial step (`> 0`, in time; 0.01 by default).
    pub fn initial_step(mut self, h: F) -> Result<Self> {
        self.method.h_init = positive("initial_step", h)?;
        Ok(self)
    }
    /// The controller's exponent `r` in `h ← θ h E^{−r}` (`> 0`; 0.9 by default, the paper's;
    /// ½ is the classic value for an error estimate of local order 2).
    pub fn exponent(mut self, r: F) -> Result<Self> {
        self.method.expo = positive("exponent", r)?;
        Ok(self)
    }
    /// How the samples' errors combine ([`BatchNorm::MaxSample`], the paper's, by default).
    pub fn batch_norm(mut self, norm: BatchNorm) -> Self {
        self.method.norm = norm;
        self
    }
    /// The budget of attempted steps (at least 1).
    pub fn max_steps(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::param("max_steps", 0.0, "must be at least 1"));
        }
        self.method.max_steps = n;
        Ok(self)
    }
    /// Take draw `k` of the run (attempt `k`, or step `k` on a fixed grid) from `table`
    /// instead of the per-row streams (see [`NoiseTable`]).
    pub fn noise_table(mut self, table: NoiseTable<F>) -> Self {
        self.method.noise = Some(table);
        self
    }
}
