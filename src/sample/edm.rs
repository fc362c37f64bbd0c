//! EDM's second-order Heun sampler with churn (Karras et al. 2022, "Elucidating the Design
//! Space of Diffusion-Based Generative Models", Alg. 2), and the EDM coordinates it shares
//! with [`EulerAncestral`](super::EulerAncestral).
//!
//! Both work in the EDM coordinates `x̃ = x/α(t)`, `σ̃ = σ(t)/α(t)` (Karras eq. 4 with the
//! scaling `s(t) = α(t)`), where any linear SDE becomes `x̃ = x₀ + σ̃ z` and the ODE is
//! `dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃`. The denoiser `D(x̃; σ̃)` is the data prediction
//! `x̂₀(α x̃, t)` at the `t` with `σ(t)/α(t) = σ̃` (through the inverse log-SNR), obtained
//! from the score model through the schedule. A step takes the state from the original
//! coordinates into `x̃ = x/α(t_i)` and back, `x = α(t_{i+1}) x̃`, so the driver, its
//! observers and the returned samples see `x`.

use super::driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
use crate::check::non_negative;
use crate::error::{Error, Result};
use crate::grid::TimeGrid;
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::ScoreModel;
use crate::sde::MarginalSde;
use crate::tweedie::denoise_into;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// `x ← c x` in place (into or out of the EDM coordinates).
pub(super) fn scale<F: Real>(x: &mut Array2<F>, c: F) {
    x.mapv_inplace(|v| v * c);
}

/// `D(x̃; σ̃)` at the time `t`: writes `α(t) x̃` into `xs` and `x̂₀(α(t) x̃, t)` into `out`.
pub(super) fn denoise_tilde<F: Real>(
    model: &dyn ScoreModel<F>,
    sched: &dyn Schedule<F>,
    xt: &Array2<F>,
    t: F,
    xs: &mut Array2<F>,
    out: &mut Array2<F>,
) -> Result<()> {
    let a = sched.alpha(t);
    Zip::from(&mut *xs).and(xt).for_each(|o, &v| *o = a * v);
    denoise_into(model, sched, xs.view(), t, out.view_mut())
}

/// One step of EDM's Heun sampler with churn (Karras et al. 2022, Alg. 2; see
/// [`EdmHeun`]).
#[derive(Debug, Clone)]
pub struct EdmHeunStep<F, S> {
    sde: S,
    s_churn: F,
    s_tmin: F,
    s_tmax: F,
    s_noise: F,
}

/// Per-run buffers of the Heun sampler.
#[derive(Debug)]
pub struct EdmHeunState<F> {
    xs: Array2<F>,
    den: Array2<F>,
    d: Array2<F>,
    xn: Array2<F>,
    z: Array2<F>,
}

impl<F: Real, S: MarginalSde<F>> StepMethod<F> for EdmHeunStep<F, S> {
    type State = EdmHeunState<F>;

    fn check_plan(&self, plan: &Plan<F>) -> Result<()> {
        plan.check_sampling_grid(self.sde.t_range())
    }
    fn is_stochastic(&self) -> bool {
        self.s_churn > F::zero()
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
        let z = || Array2::<F>::zeros(x.raw_dim());
        Ok(EdmHeunState {
            xs: z(),
            den: z(),
            d: z(),
            xn: z(),
            z: if self.is_stochastic() {
                z()
            } else {
                Array2::zeros((0, 0))
            },
        })
    }
    fn step(
        &self,
        ctx: &mut StepContext<'_, F>,
        st: &mut EdmHeunState<F>,
        x: &mut Array2<F>,
        step: &StepInfo<F>,
    ) -> Result<Advance<F>> {
        let sched = self.sde.schedule();
        let (t_i, t_n) = (step.t, step.t_next);
        let n = step.steps.unwrap_or(1);
        let (_, t_max) = self.sde.t_range();
        let sig_cap = sched.noise_level(t_max);
        let gamma_max = F::lit(std::f64::consts::SQRT_2 - 1.0);
        // x̃ = x / α(t_i).
        scale(x, F::one() / sched.alpha(t_i));
        let (sig_i, sig_n) = (sched.noise_level(t_i), sched.noise_level(t_n));
        let churn = self.is_stochastic();
        let gamma = if churn && sig_i >= self.s_tmin && sig_i <= self.s_tmax {
            (self.s_churn / F::from_usize_lossy(n)).min(gamma_max)
        } else {
            F::zero()
        };
        let mut sig_hat = (sig_i * (F::one() + gamma)).min(sig_cap);
        let t_hat = if sig_hat > sig_i {
            sched.t_of_log_snr(-sig_hat.ln())?
        } else {
            sig_hat = sig_i;
            t_i
        };
        if sig_hat > sig_i {
            let c = (sig_hat * sig_hat - sig_i * sig_i).sqrt() * self.s_noise;
            ctx.noise()?.fill(st.z.view_mut());
            Zip::from(&mut *x).and(&st.z).for_each(|x, &z| *x += c * z);
        }
        denoise_tilde(ctx.model(), sched, x, t_hat, &mut st.xs, &mut st.den)?;
        let dt = sig_n - sig_hat;
        let inv_hat = F::one() / sig_hat;
        Zip::from(&mut st.d)
            .and(&mut st.xn)
            .and(&*x)
            .and(&st.den)
            .for_each(|d, xn, &x, &dn| {
                *d = (x - dn) * inv_hat;
                *xn = x + dt * *d;
            });
        denoise_tilde(ctx.model(), sched, &st.xn, t_n, &mut st.xs, &mut st.den)?;
        let inv_n = F::one() / sig_n;
        let half_dt = F::lit(0.5) * dt;
        Zip::from(&mut *x)
            .and(&st.d)
            .and(&st.xn)
            .and(&st.den)
            .for_each(|x, &d1, &xn, &dn| *x += half_dt * (d1 + (xn - dn) * inv_n));
        // Back to x = α(t_{i+1}) x̃.
        scale(x, sched.alpha(t_n));
        Ok(Advance::Reached)
    }
    fn marginal(&self, t: F) -> Option<(F, F)> {
        let sch = self.sde.schedule();
        Some((sch.alpha(t), sch.sigma(t)))
    }
    fn nfe_per_step(&self) -> Option<usize> {
        Some(2)
    }
}

/// EDM's stochastic/deterministic second-order sampler (Karras et al. 2022, Alg. 2): the
/// [`GridSampler`] of an [`EdmHeunStep`].
///
/// Per step `i` (noise levels `σ̃_i = σ(t_i)/α(t_i)` of the grid):
/// `γ = min(S_churn/N, √2 − 1)` if `σ̃_i ∈ [S_tmin, S_tmax]` else 0; `σ̂ = σ̃_i (1 + γ)`
/// (capped at `σ̃(T)`); `x̂ = x̃ + √(σ̂² − σ̃_i²) S_noise z`; an Euler step to `σ̃_{i+1}` with
/// `d = (x̂ − D(x̂; σ̂))/σ̂`, corrected by the trapezoid rule (Heun). The grid ends at
/// `t_min > 0`, so every step is a Heun step: NFE = 2 steps (+1 with
/// [`GridSampler::denoise_final`], which makes the last move a jump to `σ̃ = 0` — Alg. 2's
/// final Euler step). With `S_churn = 0` (the default) the sampler is deterministic.
/// The paper's grid is [`TimeGrid::karras`] with ρ = 7.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::EdmHeun;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::karras(sde.schedule(), 25, 7.0).unwrap();
/// let heun = EdmHeun::new(sde.clone(), grid.clone()).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
/// let run = heun.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 50);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// assert!(EdmHeun::new(sde, grid).unwrap().churn(-1.0).is_err());
/// ```
pub type EdmHeun<F, S> = GridSampler<F, EdmHeunStep<F, S>>;

impl<F: Real, S: MarginalSde<F>> GridSampler<F, EdmHeunStep<F, S>> {
    /// The deterministic Heun sampler (`S_churn = 0`) on a decreasing grid inside the range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        let step = EdmHeunStep {
            sde,
            s_churn: F::zero(),
            s_tmin: F::zero(),
            s_tmax: F::infinity(),
            s_noise: F::one(),
        };
        GridSampler::with_grid(step, grid)
    }
    /// `S_churn ≥ 0`: the total amount of noise re-injected (Karras et al. 2022, §4).
    pub fn churn(mut self, s_churn: F) -> Result<Self> {
        self.method.s_churn = non_negative("s_churn", s_churn)?;
        Ok(self)
    }
    /// The noise-level window `[S_tmin, S_tmax]` (in `σ̃`) where churn applies
    /// (`0 ≤ S_tmin ≤ S_tmax`; `S_tmax` may be `+∞`).
    pub fn churn_range(mut self, s_tmin: F, s_tmax: F) -> Result<Self> {
        let lo = non_negative("s_tmin", s_tmin)?;
        if s_tmax.is_nan() || s_tmax < lo {
            return Err(Error::param("s_tmax", s_tmax.as_f64(), "must be >= s_tmin"));
        }
        self.method.s_tmin = lo;
        self.method.s_tmax = s_tmax;
        Ok(self)
    }
    /// `S_noise > 0`: the scale of the re-injected noise (1.007 in the paper's ImageNet runs).
    pub fn s_noise(mut self, s_noise: F) -> Result<Self> {
        self.method.s_noise = crate::check::positive("s_noise", s_noise)?;
        Ok(self)
    }
}
