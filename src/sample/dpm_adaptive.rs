//! Adaptive DPM-Solver: DPM-Solver-12 and DPM-Solver-23 with step-size control in log-SNR
//! (Lu et al. 2022, "DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model
//! Sampling in Around 10 Steps", §4.2 and App. C, Alg. 4 and 5), written in data
//! prediction as DPM-Solver++ (Lu et al. 2022b, "DPM-Solver++", §4) and the official
//! `dpm_solver_adaptive` with `algorithm_type="dpmsolver++"`.
//!
//! A step from `s` to `t` with `h = λ_t − λ_s`, `φ₁ = e^{−h} − 1`, data predictions
//! `D_s = x̂₀(x, s)` and intermediate points `λ_{s_i} = λ_s + r_i h`:
//!
//! ```text
//! order 1 (DDIM):  x₁ = (σ_t/σ_s) x − α_t φ₁ D_s
//! 2S (r₁):         u  = (σ_{s₁}/σ_s) x − α_{s₁} (e^{−r₁h} − 1) D_s,       D₁ = x̂₀(u, s₁)
//!                  x₂ = (σ_t/σ_s) x − α_t φ₁ D_s − (1/(2r₁)) α_t φ₁ (D₁ − D_s)
//! 3S (r₁, r₂):     u₂ = (σ_{s₂}/σ_s) x − α_{s₂} (e^{−r₂h} − 1) D_s + (r₂/r₁) α_{s₂} φ₂₂ (D₁ − D_s),
//!                  φ₂₂ = (e^{−r₂h} − 1)/(r₂h) + 1,  D₂ = x̂₀(u₂, s₂),  φ₂ = φ₁/h + 1
//!                  x₃ = (σ_t/σ_s) x − α_t φ₁ D_s + (1/r₂) α_t φ₂ (D₂ − D_s)
//! ```
//!
//! (DPM-Solver++ 2S and 3S, Lu et al. 2022b, Alg. 1 and App. A; the official code's
//! `solver_type="dpmsolver"`). **DPM-Solver-12** pairs order 1 with 2S at `r₁ = ½` (2 NFE
//! per attempt); **DPM-Solver-23** pairs 2S at `r₁ = ⅓` with 3S at `(⅓, ⅔)`, sharing `D₁`
//! (3 NFE per attempt). The higher solution is propagated (local extrapolation). The error
//! is `E = max over samples of RMS((x_hi − x_lo)/δ)`, `δ = max(atol, rtol·max(|x_lo|,
//! |x_lo,prev|))`; a step is accepted when `E ≤ 1`, and the next step is
//! `h ← min(θ h E^{−1/k}, λ_end − λ)` with `θ = 0.9`, `k` the higher order (Alg. 4, step
//! 7–9). A rejected attempt keeps `D_s` (the state did not change), so it costs one NFE less.
//!
//! On a fixed [`TimeGrid`] the same step method runs the higher-order singlestep update on
//! every step without error control: singlestep DPM-Solver++ 2S / 3S (2 / 3 NFE per step).

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use crate::check::positive;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::num::par::zip_update;
use crate::ode::controller::{BatchNorm, SpanSteps, pair_error_norm};
use crate::ode::explicit::flat;
use crate::sde::MarginalSde;
use crate::tweedie::denoise_into;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// One step of adaptive DPM-Solver-12 / -23 (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct DpmAdaptiveStep<F, S> {
    sde: S,
    order: usize,
    rtol: F,
    atol: F,
    h_init: F,
    theta: F,
    max_steps: usize,
    norm: BatchNorm,
}

/// Per-run state: the data predictions at `s`, `s₁`, `s₂`, the intermediate point, both
/// solutions, the previous lower solution, the log-SNR step and the attempt count.
#[derive(Debug)]
pub struct DpmAdaptiveState<F> {
    d0: Array2<F>,
    d1: Array2<F>,
    d2: Array2<F>,
    u: Array2<F>,
    lo: Array2<F>,
    hi: Array2<F>,
    prev: Array2<F>,
    d0_fresh: bool,
    ctl: SpanSteps<F>,
}

/// `(α, σ, λ)` at `t`.
fn asl<F: Real>(sde: &dyn MarginalSde<F>, t: F) -> (F, F, F) {
    let s = sde.schedule();
    (s.alpha(t), s.sigma(t), s.log_snr(t))
}

impl<F: Real, S: MarginalSde<F>> DpmAdaptiveStep<F, S> {
    /// The point at `λ_s + r h`: `(time, α, σ)`.
    fn inner(&self, lam_s: F, r: F, h: F) -> Result<(F, F, F)> {
        let sch = self.sde.schedule();
        let t = sch.t_of_log_snr(lam_s + r * h)?;
        Ok((t, sch.alpha(t), sch.sigma(t)))
    }

    /// The lower and higher solutions from `(x, s)` to `t` (log-SNR step `h`) into
    /// `st.lo`, `st.hi`; `lower` false skips the lower one (fixed steps).
    fn pair(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut DpmAdaptiveState<F>,
        x: &Array2<F>,
        s: F,
        t: F,
        lower: bool,
    ) -> Result<()> {
        let sch = self.sde.schedule();
        let (_, sig_s, lam_s) = asl(&self.sde, s);
        let (a_t, sig_t, lam_t) = asl(&self.sde, t);
        let h = lam_t - lam_s;
        let one = F::one();
        let half = F::lit(0.5);
        if !st.d0_fresh {
            denoise_into(ctx.model(), sch, x.view(), s, st.d0.view_mut())?;
            st.d0_fresh = true;
        }
        let len = x.len();
        let phi1 = (-h).exp_m1();
        let r = sig_t / sig_s;
        let a1 = -a_t * phi1;
        let r1 = if self.order == 2 {
            half
        } else {
            F::lit(1.0 / 3.0)
        };
        // u = (σ_{s₁}/σ_s) x − α_{s₁}(e^{−r₁h} − 1) D_s, then D₁ = x̂₀(u, s₁).
        let (s1, a_s1, sig_s1) = self.inner(lam_s, r1, h)?;
        let (c_x, c_d) = (sig_s1 / sig_s, -a_s1 * (-r1 * h).exp_m1());
        Zip::from(&mut st.u)
            .and(x)
            .and(&st.d0)
            .for_each(|u, &x, &d| *u = c_x * x + c_d * d);
        denoise_into(ctx.model(), sch, st.u.view(), s1, st.d1.view_mut())?;
        // 2S at r₁: x − (1/(2r₁)) α_t φ₁ (D₁ − D_s) on top of the first-order step.
        let c2 = half / r1 * a1;
        let (d0, d1) = (&st.d0, &st.d1);
        if self.order == 2 {
            if lower {
                zip_update!(len, Zip::from(&mut st.lo).and(x).and(d0), |o, &x, &d| *o =
                    r * x + a1 * d);
            }
            zip_update!(
                len,
                Zip::from(&mut st.hi).and(x).and(d0).and(d1),
                |o, &x, &d, &e| { *o = r * x + a1 * d + c2 * (e - d) }
            );
            return Ok(());
        }
        if lower {
            zip_update!(
                len,
                Zip::from(&mut st.lo).and(x).and(d0).and(d1),
                |o, &x, &d, &e| { *o = r * x + a1 * d + c2 * (e - d) }
            );
        }
        // 3S: u₂ at r₂ = ⅔ with φ₂₂, then D₂ and the third-order combination.
        let r2 = F::lit(2.0 / 3.0);
        let (s2, a_s2, sig_s2) = self.inner(lam_s, r2, h)?;
        let phi12 = (-r2 * h).exp_m1();
        let phi22 = phi12 / (r2 * h) + one;
        let (u_x, u_d, u_e) = (sig_s2 / sig_s, -a_s2 * phi12, r2 / r1 * a_s2 * phi22);
        Zip::from(&mut st.u)
            .and(x)
            .and(d0)
            .and(d1)
            .for_each(|u, &x, &d, &e| *u = u_x * x + u_d * d + u_e * (e - d));
        denoise_into(ctx.model(), sch, st.u.view(), s2, st.d2.view_mut())?;
        let phi2 = phi1 / h + one;
        let c3 = a_t * phi2 / r2;
        let (d0, d2) = (&st.d0, &st.d2);
        zip_update!(
            len,
            Zip::from(&mut st.hi).and(x).and(d0).and(d2),
            |o, &x, &d, &e| { *o = r * x + a1 * d + c3 * (e - d) }
        );
        Ok(())
    }
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for DpmAdaptiveStep<F, S> {
    type State = DpmAdaptiveState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling(self.sde.t_range())
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
        _: &mut StepContext<'_, F>,
        x: &Array2<F>,
        plan: &Plan<F>,
    ) -> Result<Self::State> {
        let z = || Array2::<F>::zeros(x.raw_dim());
        let adaptive = matches!(plan, Plan::Span { .. });
        let opt = |on: bool| if on { z() } else { Array2::zeros((0, 0)) };
        Ok(DpmAdaptiveState {
            d0: z(),
            d1: z(),
            d2: opt(self.order == 3),
            u: z(),
            lo: opt(adaptive),
            hi: z(),
            prev: if adaptive {
                x.clone()
            } else {
                Array2::zeros((0, 0))
            },
            d0_fresh: false,
            ctl: SpanSteps::new(self.h_init, self.max_steps),
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut DpmAdaptiveState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let (s, end) = (step.t, step.t_next);
        if step.steps.is_some() {
            // A fixed grid: the higher-order singlestep update, no control.
            st.d0_fresh = false;
            self.pair(ctx, st, x, s, end, false)?;
            std::mem::swap(x, &mut st.hi);
            return Ok(Advance::Reached);
        }
        let sch = self.sde.schedule();
        let (lam_s, lam_end) = (sch.log_snr(s), sch.log_snr(end));
        // The last step lands on the end exactly (Alg. 4: h ← min(…, λ_end − λ_s)).
        let (h, last) = st
            .ctl
            .propose(lam_end - lam_s, s, "adaptive DPM-Solver step size")?;
        let t = if last {
            end
        } else {
            sch.t_of_log_snr(lam_s + h)?.max(end.min(s)).min(end.max(s))
        };
        // `D_s` is kept across rejections: the state is unchanged and the driver observes
        // (and constrains) only after accepted steps.
        self.pair(ctx, st, x, s, t, true)?;
        let tol = (self.atol, self.rtol);
        let err = pair_error_norm(
            flat(&st.hi),
            flat(&st.lo),
            flat(&st.prev),
            x.ncols(),
            tol,
            self.norm,
        );
        let expo = F::one() / F::from_usize_lossy(self.order);
        let h_used = sch.log_snr(t) - lam_s;
        if st.ctl.settle(h_used, err, self.theta, expo) {
            std::mem::swap(x, &mut st.hi);
            std::mem::swap(&mut st.prev, &mut st.lo);
            st.d0_fresh = false;
            Ok(Advance::To(t))
        } else {
            Ok(Advance::Rejected)
        }
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let sch = self.sde.schedule();
        Some((sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(self.order)
    }
}

/// Adaptive DPM-Solver-12 / -23 in data prediction (Lu et al. 2022, Alg. 4–5; see the
/// [module docs](crate::sample::dpm_adaptive)): the [`GridSampler`] of a [`DpmAdaptiveStep`], over the
/// SDE's whole range (a span) by default. Tolerances in, steps out: `Run::steps` and
/// `Run::rejected` count accepted and rejected attempts; NFE = `k` per
/// accepted and `k − 1` per rejected attempt (`k` = 2 or 3).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::DpmAdaptive;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let solver = DpmAdaptive::new(sde.clone(), 3, 0.05, 0.0078).unwrap(); // DPM-Solver-23
/// let run = solver.sample(&model, 500, 2, &mut rand_pcg::Pcg64::seed_from_u64(0)).unwrap();
/// assert_eq!(run.nfe, 3 * run.steps + 2 * run.rejected);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// assert!(DpmAdaptive::new(sde, 4, 0.05, 0.0078).is_err());
/// ```
pub type DpmAdaptive<F, S> = GridSampler<F, DpmAdaptiveStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, DpmAdaptiveStep<F, S>> {
    /// DPM-Solver-12 (`order = 2`) or -23 (`order = 3`) with tolerances `rtol`, `atol`
    /// (finite, `> 0`; the paper's image defaults are 0.05 and 0.0078), initial log-SNR
    /// step 0.05, safety θ = 0.9, a budget of 10 000 attempts, from `T` down to `t_min`.
    pub fn new(sde: S, order: usize, rtol: F, atol: F) -> Result<Self> {
        if !(2..=3).contains(&order) {
            return Err(Error::param("order", order as f64, "must be 2 or 3"));
        }
        let (lo, hi) = sde.t_range();
        let step = DpmAdaptiveStep {
            sde,
            order,
            rtol: positive("rtol", rtol)?,
            atol: positive("atol", atol)?,
            h_init: F::lit(0.05),
            theta: F::lit(0.9),
            max_steps: 10_000,
            norm: BatchNorm::MaxSample,
        };
        GridSampler::with_plan(step, Plan::Span { from: hi, to: lo })
    }
    /// Singlestep DPM-Solver++ 2S / 3S (`order` 2 or 3) on a fixed grid, without error
    /// control: `order` NFE per step.
    pub fn fixed(sde: S, order: usize, grid: TimeGrid<F>) -> Result<Self> {
        let mut s = Self::new(sde, order, F::one(), F::one())?;
        s.method.check_plan(&Plan::Grid(grid.clone()))?;
        s.plan = Plan::Grid(grid);
        Ok(s)
    }
    /// Integrate over `[t_end, t_start]` only (inside the range, `t_end < t_start`).
    pub fn span(mut self, t_start: F, t_end: F) -> Result<Self> {
        let plan = Plan::span(t_start, t_end)?;
        self.method.check_plan(&plan)?;
        self.plan = plan;
        Ok(self)
    }
    /// The initial log-SNR step (`> 0`; 0.05 by default).
    pub fn initial_step(mut self, h: F) -> Result<Self> {
        self.method.h_init = positive("initial_step", h)?;
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
}
