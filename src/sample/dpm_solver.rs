//! DPM-Solver++ multistep in data prediction (Lu et al. 2022b, "DPM-Solver++: Fast Solver
//! for Guided Sampling of Diffusion Probabilistic Models", Alg. 1–2), and its SDE variant.
//!
//! In log-SNR `λ = log(α/σ)`, with data predictions `D_i = x̂₀(x_{t_i}, t_i)`, step
//! `t → s`, `h = λ_s − λ_t`, `φ = e^{−h} − 1`, previous step sizes `h₀`, `h₁` and
//! `r₀ = h₀/h`, `r₁ = h₁/h`:
//!
//! ```text
//! 1st order (= DDIM):  x_s = (σ_s/σ_t) x_t − α_s φ D₀
//! 2M (Alg. 2):         x_s = (σ_s/σ_t) x_t − α_s φ D₀ − ½ α_s φ (D₀ − D₋₁)/r₀
//! 3M:                  x_s = (σ_s/σ_t) x_t − α_s φ D₀ + α_s (φ/h + 1) 𝐃₁ − 2 α_s ((φ + h)/h² − ½) 𝐃₂
//!     with 𝐃₁ = d₀ + r₀/(r₀+r₁)(d₀ − d₁), 𝐃₂ = (d₀ − d₁)/(r₀+r₁),
//!          d₀ = (D₀ − D₋₁)/r₀, d₁ = (D₋₁ − D₋₂)/r₁
//! ```
//!
//! The third-order multistep update is diffusers' `multistep_dpm_solver_third_order_update`
//! (backward differences `𝐃₁ ≈ h x̂₀'`, `𝐃₂ ≈ ½h² x̂₀''`) with the Taylor-exact coefficient of
//! `𝐃₂`, twice diffusers' (which makes diffusers' 3M second order; [`ThirdOrder`] selects
//! either). The SDE variant (diffusers
//! `algorithm_type="sde-dpmsolver++"`, Lu et al. 2022b, App. / Gonzalez et al. 2023):
//!
//! ```text
//! x_s = (σ_s/σ_t) e^{−h} x_t + α_s (1 − e^{−2h}) (D₀ + ½ (D₀ − D₋₁)/r₀) + σ_s √(1 − e^{−2h}) z
//! ```
//!
//! Lower orders are used for the warm-up steps (step `i` uses order `≤ i + 1`) and on the
//! final steps as [`FinalOrder`] says: by default ([`FinalOrder::Lowered`]) step `i` of `n`
//! uses order `min(k, i + 1, n − i)`; [`FinalOrder::Diffusers`] is diffusers'
//! `lower_order_final=True` (only below 15 steps, counting a final denoise as a step).

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use super::noise_table::{NoiseTable, draw};
use crate::error::{Error, Result};
use crate::grid::{DiffusersTimesteps, FinalSigmas, TimeGrid};
use crate::num::Real;
use crate::num::par::zip_update;
use crate::schedule::DiscreteVp;
use crate::sde::{LinearSde, MarginalSde};
use crate::tweedie::denoise_into;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// Deterministic (ODE) or stochastic (SDE) DPM-Solver++.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DpmVariant {
    /// DPM-Solver++ for the probability-flow ODE (diffusers `dpmsolver++`).
    Ode,
    /// SDE-DPM-Solver++ (diffusers `sde-dpmsolver++`), orders 1 and 2.
    Sde,
}

/// The second-derivative term of the third-order multistep update.
///
/// With `r₀ = r₁ = 1`, `𝐃₂ = (d₀ − d₁)/(r₀ + r₁) ≈ ½ h² x̂₀''`, while the exact
/// exponential-integrator term is `α_s x̂₀'' ∫₀^h e^{u−h} u²/2 du = α_s x̂₀'' (h² − 2h − 2φ)/2`
/// `= −2 α_s ((φ + h)/h² − ½) 𝐃₂`. The official DPM-Solver code and diffusers use half that
/// coefficient, which leaves an `O(h³)` local error: their 3M is globally second order
/// (measured slope 2.07 on a Gaussian, `tests/deterministic_samplers.rs`). [`ThirdOrder::Taylor`]
/// uses the exact coefficient and converges at order 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThirdOrder {
    /// `−2 α_s ((φ + h)/h² − ½) 𝐃₂`: the Taylor-exact coefficient (third order). The default.
    Taylor,
    /// `−α_s ((φ + h)/h² − ½) 𝐃₂`, as diffusers' `multistep_dpm_solver_third_order_update`
    /// and the official `dpm_solver_pytorch.py` (second order in practice).
    Diffusers,
}

/// Which final steps of multistep DPM-Solver++ run at a lower order.
///
/// Write `n` for the grid's steps and `k` for the order; step `i` (from 0) always uses at
/// most order `i + 1` (the warm-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinalOrder {
    /// No lowering: full order up to the last step.
    Full,
    /// Step `i` of `n` uses order `≤ n − i` (the last step first order, the one before at
    /// most second), at every step count. What `lower_order_final(true)` means here, and
    /// the default: on the quadratic grid it is what brings 3M to the noise floor at 30 NFE
    /// (`docs/deterministic.md`).
    Lowered,
    /// diffusers' `lower_order_final=True` (`DPMSolverMultistepScheduler`): only when the
    /// run has fewer than 15 model calls, the last call is first order and the one before
    /// at most second order. A final denoise set by
    /// `final_sigmas(FinalSigmas::Zero)` is the last
    /// call (diffusers' `final_sigmas_type="zero"`), so the last grid step keeps order 2:
    /// with the same timesteps, noise and model this reproduces diffusers' samples.
    Diffusers,
}

/// One step of multistep DPM-Solver++ of order 1, 2 (2M) or 3 (3M), ODE or SDE variant
/// (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct DpmSolverPpStep<F, S> {
    sde: S,
    order: usize,
    variant: DpmVariant,
    final_order: FinalOrder,
    final_zero: bool,
    third: ThirdOrder,
    noise: Option<NoiseTable<F>>,
}

/// Per-run state of DPM-Solver++: the last three data predictions, the last two log-SNR
/// steps, and a noise buffer for the SDE variant.
#[derive(Debug)]
pub struct DpmState<F> {
    m0: Array2<F>,
    m1: Array2<F>,
    m2: Array2<F>,
    h0: F,
    h1: F,
    z: Array2<F>,
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for DpmSolverPpStep<F, S> {
    type State = DpmState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        self.variant == DpmVariant::Sde
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
    fn init(&self, _: &mut StepContext<'_, F>, x: &Array2<F>, _: &Plan<F>) -> Result<Self::State> {
        let buf = |on: bool| {
            if on {
                Array2::<F>::zeros(x.raw_dim())
            } else {
                Array2::zeros((0, 0))
            }
        };
        Ok(DpmState {
            m0: buf(true),
            m1: buf(self.order >= 2),
            m2: buf(self.order >= 3),
            h0: F::zero(),
            h1: F::zero(),
            z: buf(self.is_stochastic()),
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut DpmState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let sched = self.sde.schedule();
        let (t, s) = (step.t, step.t_next);
        let half = F::lit(0.5);
        // Rotate the history: m2 ← m1 ← m0, then the fresh prediction into m0.
        if self.order >= 3 {
            std::mem::swap(&mut st.m2, &mut st.m1);
        }
        if self.order >= 2 {
            std::mem::swap(&mut st.m1, &mut st.m0);
        }
        denoise_into(ctx.model(), sched, x.view(), t, st.m0.view_mut())?;
        let i = step.index;
        let mut k = self.order.min(i + 1);
        if let Some(n) = step.steps {
            match self.final_order {
                FinalOrder::Full => {}
                FinalOrder::Lowered => k = k.min(n - i),
                FinalOrder::Diffusers => {
                    // diffusers' `lower_order_final` / `lower_order_second` over its model
                    // calls: the grid's steps and the final denoise, if any.
                    let calls = n + usize::from(self.final_zero);
                    if calls < 15 {
                        k = k.min(calls - i);
                    }
                }
            }
        }
        let (a_s, s_s, s_t) = (sched.alpha(s), sched.sigma(s), sched.sigma(t));
        let h = sched.log_snr(s) - sched.log_snr(t);
        let (h0, h1) = (st.h0, st.h1);
        let (m0, m1, m2) = (&st.m0, &st.m1, &st.m2);
        if self.variant == DpmVariant::Sde {
            let em = -(-F::lit(2.0) * h).exp_m1(); // 1 − e^{−2h}
            let r = s_s / s_t * (-h).exp();
            let c0 = a_s * em;
            let cz = s_s * em.max(F::zero()).sqrt();
            draw(self.noise.as_ref(), ctx, i, st.z.view_mut())?;
            if k == 1 {
                Zip::from(&mut *x)
                    .and(m0)
                    .and(&st.z)
                    .for_each(|x, &d0, &z| *x = r * *x + c0 * d0 + cz * z);
            } else {
                let c1 = half * c0 * h / h0;
                Zip::from(&mut *x)
                    .and(m0)
                    .and(m1)
                    .and(&st.z)
                    .for_each(|x, &d0, &d1, &z| *x = r * *x + c0 * d0 + c1 * (d0 - d1) + cz * z);
            }
        } else {
            let r = s_s / s_t;
            let phi = (-h).exp_m1();
            let a = -a_s * phi;
            let len = x.len();
            match k {
                1 => zip_update!(len, Zip::from(&mut *x).and(m0), |x, &d0| *x =
                    r * *x + a * d0),
                2 => {
                    // −½ α_s φ (D₀ − D₋₁)/r₀ with r₀ = h₀/h.
                    let c1 = half * a * h / h0;
                    zip_update!(len, Zip::from(&mut *x).and(m0).and(m1), |x, &d0, &d1| *x =
                        r * *x + a * d0 + c1 * (d0 - d1));
                }
                _ => {
                    let (r0, r1) = (h0 / h, h1 / h);
                    let b = a_s * (phi / h + F::one());
                    let mut c = -a_s * ((phi + h) / (h * h) - half);
                    if self.third == ThirdOrder::Taylor {
                        c = c + c;
                    }
                    let w = r0 / (r0 + r1);
                    let inv = F::one() / (r0 + r1);
                    zip_update!(
                        len,
                        Zip::from(&mut *x).and(m0).and(m1).and(m2),
                        |x, &d0, &d1, &d2| {
                            let e0 = (d0 - d1) / r0;
                            let e1 = (d1 - d2) / r1;
                            let big1 = e0 + w * (e0 - e1);
                            let big2 = inv * (e0 - e1);
                            *x = r * *x + a * d0 + b * big1 + c * big2;
                        }
                    );
                }
            }
        }
        st.h1 = h0;
        st.h0 = h;
        Ok(Advance::Reached)
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let sch = self.sde.schedule();
        Some((sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(1)
    }
}

/// Multistep DPM-Solver++ of order 1, 2 (2M) or 3 (3M), ODE or SDE variant: the
/// [`GridSampler`] of a [`DpmSolverPpStep`].
///
/// One NFE per step (plus one with [`GridSampler::denoise_final`]). Works on any
/// decreasing grid; [`TimeGrid::log_snr`] is the paper's choice.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::{DpmSolverPp, DpmVariant};
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::log_snr(sde.schedule(), 15).unwrap();
/// let solver = DpmSolverPp::new(sde.clone(), grid.clone()).unwrap().order(3).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(2);
/// let run = solver.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 15);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// // Orders beyond 3 and 3rd-order SDE are rejected.
/// assert!(DpmSolverPp::new(sde.clone(), grid.clone()).unwrap().order(4).is_err());
/// assert!(DpmSolverPp::new(sde, grid).unwrap().order(3).unwrap().variant(DpmVariant::Sde).is_err());
/// ```
pub type DpmSolverPp<F, S> = GridSampler<F, DpmSolverPpStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, DpmSolverPpStep<F, S>> {
    /// DPM-Solver++ 2M (ODE variant, lower-order final steps) on a decreasing grid inside
    /// the SDE's range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let step = DpmSolverPpStep {
            sde,
            order: 2,
            variant: DpmVariant::Ode,
            final_order: FinalOrder::Lowered,
            final_zero: false,
            third: ThirdOrder::Taylor,
            noise: None,
        };
        GridSampler::with_grid(step, grid)
    }
    /// The multistep order: 1, 2 or 3 (3 only for the ODE variant).
    pub fn order(mut self, order: usize) -> Result<Self> {
        if !(1..=3).contains(&order) {
            return Err(Error::param("order", order as f64, "must be 1, 2 or 3"));
        }
        if order == 3 && self.method.variant == DpmVariant::Sde {
            return Err(Error::param(
                "order",
                3.0,
                "the SDE variant supports orders 1 and 2",
            ));
        }
        self.method.order = order;
        Ok(self)
    }
    /// ODE or SDE variant.
    pub fn variant(mut self, variant: DpmVariant) -> Result<Self> {
        if variant == DpmVariant::Sde && self.method.order == 3 {
            return Err(Error::param(
                "order",
                3.0,
                "the SDE variant supports orders 1 and 2",
            ));
        }
        self.method.variant = variant;
        Ok(self)
    }
    /// Which second-derivative coefficient the 3M update uses (see [`ThirdOrder`]).
    pub fn third_order(mut self, form: ThirdOrder) -> Self {
        self.method.third = form;
        self
    }
    /// Lower the order on the last steps (step `i` of `n` uses at most order `n − i`,
    /// [`FinalOrder::Lowered`]) or not ([`FinalOrder::Full`]).
    ///
    /// **Not diffusers' `lower_order_final`**, which lowers only below 15 steps and counts
    /// the final denoise: for that use [`final_order`](Self::final_order)`(FinalOrder::Diffusers)`
    /// or `DpmSolverPp::diffusers`.
    pub fn lower_order_final(mut self, on: bool) -> Self {
        self.method.final_order = if on {
            FinalOrder::Lowered
        } else {
            FinalOrder::Full
        };
        self
    }
    /// Which final steps run at a lower order (see [`FinalOrder`]).
    pub fn final_order(mut self, rule: FinalOrder) -> Self {
        self.method.final_order = rule;
        self
    }
    /// Where the run ends, as diffusers' `final_sigmas_type`: [`FinalSigmas::Zero`] turns on
    /// the final Tweedie denoise ([`GridSampler::denoise_final`]) and makes
    /// [`FinalOrder::Diffusers`] count it as the last model call; [`FinalSigmas::SigmaMin`]
    /// turns it off (the grid ends at `t = 1/N`).
    pub fn final_sigmas(mut self, last: FinalSigmas) -> Self {
        let zero = last == FinalSigmas::Zero;
        self.method.final_zero = zero;
        self.denoise_final = zero;
        self
    }
    /// The SDE variant takes step `i`'s noise from entry `i` of `table` instead of the
    /// per-row streams (see [`NoiseTable`]): to reproduce another library's run.
    pub fn noise_table(mut self, table: NoiseTable<F>) -> Self {
        self.method.noise = Some(table);
        self
    }
}

impl<F: Real> GridSampler<F, DpmSolverPpStep<F, LinearSde<F, DiscreteVp<F>>>> {
    /// DPM-Solver++ as diffusers' `DPMSolverMultistepScheduler` runs it on the same β
    /// table: order 2, the ODE variant, diffusers' lower-order final steps
    /// ([`FinalOrder::Diffusers`]), diffusers' third-order coefficient
    /// ([`ThirdOrder::Diffusers`], for `.order(3)`), and the grid and final step of
    /// `timesteps` ([`DiffusersTimesteps::grid`](crate::grid::DiffusersTimesteps::grid)).
    /// `.variant(DpmVariant::Sde)` is `algorithm_type="sde-dpmsolver++"`.
    ///
    /// ```
    /// use score_sde::grid::{DiffusersFamily, DiffusersTimesteps};
    /// use score_sde::prelude::*;
    /// use score_sde::sample::DpmSolverPp;
    /// use score_sde::sde::LinearSde;
    /// let sde = LinearSde::new(DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02)?);
    /// let cfg = DiffusersTimesteps::new(DiffusersFamily::Multistep, 20);
    /// let solver = DpmSolverPp::diffusers(sde, &cfg)?;
    /// assert_eq!(solver.nfe(), Some(20)); // 19 steps and the final denoise
    /// # Ok::<(), score_sde::Error>(())
    /// ```
    pub fn diffusers(
        sde: LinearSde<F, DiscreteVp<F>>,
        timesteps: &DiffusersTimesteps,
    ) -> Result<Self> {
        let grid = timesteps.grid(sde.schedule())?;
        Ok(Self::new(sde, grid)?
            .third_order(ThirdOrder::Diffusers)
            .final_order(FinalOrder::Diffusers)
            .final_sigmas(timesteps.final_sigmas))
    }
}
