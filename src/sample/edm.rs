//! EDM samplers (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
//! Generative Models"): the second-order Heun sampler with churn (Alg. 2) and
//! k-diffusion's Euler-ancestral sampler.
//!
//! Both work in the EDM coordinates `x̃ = x/α(t)`, `σ̃ = σ(t)/α(t)` (Karras eq. 4 with the
//! scaling `s(t) = α(t)`), where any linear SDE becomes `x̃ = x₀ + σ̃ z` and the ODE is
//! `dx̃/dσ̃ = (x̃ − D(x̃; σ̃))/σ̃`. The denoiser `D(x̃; σ̃)` is the data prediction
//! `x̂₀(α x̃, t)` at the `t` with `σ(t)/α(t) = σ̃` (through the inverse log-SNR), obtained
//! from the score model through the schedule. Samples are returned (and observed) in the
//! original coordinates `x = α x̃`.

use crate::error::{Error, Result};
use crate::num::Real;
use crate::grid::TimeGrid;
use crate::observe::Observer;
use crate::sample::ddim::{data_prediction, non_negative, step_noise};
use crate::sample::ode::check_grid_range;
use crate::sample::{Run, Sampler, check_initial};
use crate::schedule::Schedule;
use crate::score::ScoreModel;
use crate::sde::MarginalSde;
use ndarray::{Array2, Zip};
use rand::RngCore;

/// `D(x̃; σ̃)` at the grid time `t`: writes `α(t) x̃` into `xs` and `x̂₀` into `out`.
fn denoise_tilde<F: Real>(
    model: &dyn ScoreModel<F>,
    sched: &dyn Schedule<F>,
    xt: &Array2<F>,
    t: F,
    xs: &mut Array2<F>,
    out: &mut Array2<F>,
) -> Result<()> {
    let a = sched.alpha(t);
    Zip::from(&mut *xs).and(xt).for_each(|o, &v| *o = a * v);
    data_prediction(model, sched, xs.view(), t, out.view_mut())
}

/// Show the state to the observer in the original coordinates (`xs = α(t) x̃`); a
/// constraint it applies there ([`Observer::constrain`]) is carried back to `x̃ = xs/α`.
fn observe_scaled<F: Real>(
    observer: &mut dyn Observer<F>,
    step: usize,
    t: F,
    a: F,
    xt: &mut Array2<F>,
    xs: &mut Array2<F>,
) -> Result<()> {
    Zip::from(&mut *xs).and(&*xt).for_each(|o, &v| *o = a * v);
    observer.constrain(step, t, xs.view_mut())?;
    let ia = F::one() / a;
    Zip::from(&mut *xt).and(&*xs).for_each(|o, &v| *o = ia * v);
    observer.observe(step, t, xs.view())
}

/// EDM's stochastic/deterministic second-order sampler (Karras et al. 2022, Alg. 2).
///
/// Per step `i` (noise levels `σ̃_i = σ(t_i)/α(t_i)` of the grid):
/// `γ = min(S_churn/N, √2 − 1)` if `σ̃_i ∈ [S_tmin, S_tmax]` else 0; `σ̂ = σ̃_i (1 + γ)`
/// (capped at `σ̃(T)`); `x̂ = x̃ + √(σ̂² − σ̃_i²) S_noise z`; an Euler step to `σ̃_{i+1}` with
/// `d = (x̂ − D(x̂; σ̂))/σ̂`, corrected by the trapezoid rule (Heun). The grid ends at
/// `t_min > 0`, so every step is a Heun step: NFE = 2 steps (+1 with
/// [`EdmHeun::denoise_final`], which makes the last move a jump to `σ̃ = 0` — Alg. 2's
/// final Euler step). With `S_churn = 0` (the default) the sampler is deterministic.
/// The paper's grid is [`TimeGrid::karras`] with ρ = 7.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::edm::EdmHeun;
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
#[derive(Debug, Clone)]
pub struct EdmHeun<F, S> {
    sde: S,
    grid: TimeGrid<F>,
    s_churn: F,
    s_tmin: F,
    s_tmax: F,
    s_noise: F,
    denoise_final: bool,
}

impl<F: Real, S: MarginalSde<F>> EdmHeun<F, S> {
    /// The deterministic Heun sampler (`S_churn = 0`) on a decreasing grid inside the range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        check_grid_range(&grid, sde.t_range())?;
        Ok(Self {
            sde,
            grid,
            s_churn: F::zero(),
            s_tmin: F::zero(),
            s_tmax: F::infinity(),
            s_noise: F::one(),
            denoise_final: false,
        })
    }
    /// `S_churn ≥ 0`: the total amount of noise re-injected (Karras et al. 2022, §4).
    pub fn churn(mut self, s_churn: F) -> Result<Self> {
        self.s_churn = non_negative("s_churn", s_churn)?;
        Ok(self)
    }
    /// The noise-level window `[S_tmin, S_tmax]` (in `σ̃`) where churn applies
    /// (`0 ≤ S_tmin ≤ S_tmax`; `S_tmax` may be `+∞`).
    pub fn churn_range(mut self, s_tmin: F, s_tmax: F) -> Result<Self> {
        let lo = non_negative("s_tmin", s_tmin)?;
        if s_tmax.is_nan() || s_tmax < lo {
            return Err(Error::param("s_tmax", s_tmax.as_f64(), "must be >= s_tmin"));
        }
        self.s_tmin = lo;
        self.s_tmax = s_tmax;
        Ok(self)
    }
    /// `S_noise > 0`: the scale of the re-injected noise (1.007 in the paper's ImageNet runs).
    pub fn s_noise(mut self, s_noise: F) -> Result<Self> {
        self.s_noise = crate::check::positive("s_noise", s_noise)?;
        Ok(self)
    }
    /// After the last step, replace the state by its Tweedie denoise `x̂₀` (one more NFE).
    pub fn denoise_final(mut self, on: bool) -> Self {
        self.denoise_final = on;
        self
    }
    /// The grid.
    pub fn grid(&self) -> &TimeGrid<F> {
        &self.grid
    }
}

impl<F: Real, S: MarginalSde<F>> Sampler<F> for EdmHeun<F, S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let sched = self.sde.schedule();
        let times = self.grid.times();
        let n = self.grid.steps();
        let (_, t_max) = self.sde.t_range();
        let sig_cap = sched.noise_level(t_max);
        let shape = x.raw_dim();
        // x̃ = x / α(t_0).
        let mut xt = super::standard_layout(x);
        let inv = F::one() / sched.alpha(times[0]);
        xt.mapv_inplace(|v| v * inv);
        let mut xs = Array2::<F>::zeros(shape);
        let mut den = Array2::<F>::zeros(shape);
        let mut d = Array2::<F>::zeros(shape);
        let mut xn = Array2::<F>::zeros(shape);
        let churn = self.s_churn > F::zero();
        let (mut z, mut noise) = step_noise(churn, (shape[0], shape[1]), rng);
        let gamma_max = F::lit(std::f64::consts::SQRT_2 - 1.0);
        let mut nfe = 0;
        for i in 0..n {
            let (t_i, t_n) = (times[i], times[i + 1]);
            let (sig_i, sig_n) = (sched.noise_level(t_i), sched.noise_level(t_n));
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
                noise.fill(z.view_mut());
                Zip::from(&mut xt).and(&z).for_each(|x, &z| *x += c * z);
            }
            denoise_tilde(model, sched, &xt, t_hat, &mut xs, &mut den)?;
            nfe += 1;
            let dt = sig_n - sig_hat;
            let inv_hat = F::one() / sig_hat;
            Zip::from(&mut d)
                .and(&mut xn)
                .and(&xt)
                .and(&den)
                .for_each(|d, xn, &x, &dn| {
                    *d = (x - dn) * inv_hat;
                    *xn = x + dt * *d;
                });
            denoise_tilde(model, sched, &xn, t_n, &mut xs, &mut den)?;
            nfe += 1;
            let inv_n = F::one() / sig_n;
            let half_dt = F::lit(0.5) * dt;
            Zip::from(&mut xt)
                .and(&d)
                .and(&xn)
                .and(&den)
                .for_each(|x, &d1, &xn, &dn| *x += half_dt * (d1 + (xn - dn) * inv_n));
            observe_scaled(observer, i + 1, t_n, sched.alpha(t_n), &mut xt, &mut xs)?;
        }
        let t_end = times[n];
        let out = if self.denoise_final {
            denoise_tilde(model, sched, &xt, t_end, &mut xs, &mut den)?;
            nfe += 1;
            den
        } else {
            let a = sched.alpha(t_end);
            xt.mapv_inplace(|v| v * a);
            xt
        };
        Ok(Run::new(out, nfe, n))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
}

/// Euler-ancestral sampling (k-diffusion's `sample_euler_ancestral`; the ancestral split of
/// Ho et al. 2020's posterior step into a deterministic and a noise part, in `σ̃`).
///
/// Per step `σ̃_i → σ̃_{i+1}`: `σ_up = min(σ̃_{i+1}, η √(σ̃_{i+1}² (σ̃_i² − σ̃_{i+1}²)/σ̃_i²))`,
/// `σ_down = √(σ̃_{i+1}² − σ_up²)`, `x̃ ← x̃ + (σ_down − σ̃_i)(x̃ − D(x̃; σ̃_i))/σ̃_i + S_noise σ_up z`.
/// One NFE per step (+1 with [`EulerAncestral::denoise_final`]). `η = 0` is the
/// deterministic Euler (DDIM) step in `σ̃`.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::edm::EulerAncestral;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default();
/// let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
/// let grid = TimeGrid::karras(sde.schedule(), 30, 7.0).unwrap();
/// let ea = EulerAncestral::new(sde, grid).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
/// let run = ea.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 30);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.3);
/// ```
#[derive(Debug, Clone)]
pub struct EulerAncestral<F, S> {
    sde: S,
    grid: TimeGrid<F>,
    eta: F,
    s_noise: F,
    denoise_final: bool,
}

impl<F: Real, S: MarginalSde<F>> EulerAncestral<F, S> {
    /// Euler-ancestral with `η = 1`, `S_noise = 1` on a decreasing grid inside the range.
    pub fn new(sde: S, grid: TimeGrid<F>) -> Result<Self> {
        check_grid_range(&grid, sde.t_range())?;
        Ok(Self {
            sde,
            grid,
            eta: F::one(),
            s_noise: F::one(),
            denoise_final: false,
        })
    }
    /// `η ∈ [0, 1]`: the fraction of the ancestral noise.
    pub fn eta(mut self, eta: F) -> Result<Self> {
        self.eta = crate::check::unit_interval("eta", eta)?;
        Ok(self)
    }
    /// `S_noise > 0`: scale of the added noise.
    pub fn s_noise(mut self, s_noise: F) -> Result<Self> {
        self.s_noise = crate::check::positive("s_noise", s_noise)?;
        Ok(self)
    }
    /// After the last step, replace the state by its Tweedie denoise `x̂₀` (one more NFE).
    pub fn denoise_final(mut self, on: bool) -> Self {
        self.denoise_final = on;
        self
    }
}

impl<F: Real, S: MarginalSde<F>> Sampler<F> for EulerAncestral<F, S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let sched = self.sde.schedule();
        let times = self.grid.times();
        let n = self.grid.steps();
        let shape = x.raw_dim();
        let mut xt = super::standard_layout(x);
        let inv = F::one() / sched.alpha(times[0]);
        xt.mapv_inplace(|v| v * inv);
        let mut xs = Array2::<F>::zeros(shape);
        let mut den = Array2::<F>::zeros(shape);
        let noisy = self.eta > F::zero();
        let (mut z, mut noise) = step_noise(noisy, (shape[0], shape[1]), rng);
        let mut nfe = 0;
        for i in 0..n {
            let (t_i, t_n) = (times[i], times[i + 1]);
            let (sig_i, sig_n) = (sched.noise_level(t_i), sched.noise_level(t_n));
            denoise_tilde(model, sched, &xt, t_i, &mut xs, &mut den)?;
            nfe += 1;
            let up = (self.eta
                * (sig_n * sig_n * (sig_i * sig_i - sig_n * sig_n) / (sig_i * sig_i))
                    .max(F::zero())
                    .sqrt())
            .min(sig_n);
            let down = (sig_n * sig_n - up * up).max(F::zero()).sqrt();
            // x̃ + (σ_down − σ_i)(x̃ − D)/σ_i = D + (σ_down/σ_i)(x̃ − D).
            let ratio = down / sig_i;
            if noisy {
                noise.fill(z.view_mut());
                let c = up * self.s_noise;
                Zip::from(&mut xt)
                    .and(&den)
                    .and(&z)
                    .for_each(|x, &dn, &z| *x = dn + ratio * (*x - dn) + c * z);
            } else {
                Zip::from(&mut xt)
                    .and(&den)
                    .for_each(|x, &dn| *x = dn + ratio * (*x - dn));
            }
            observe_scaled(observer, i + 1, t_n, sched.alpha(t_n), &mut xt, &mut xs)?;
        }
        let t_end = times[n];
        let out = if self.denoise_final {
            denoise_tilde(model, sched, &xt, t_end, &mut xs, &mut den)?;
            nfe += 1;
            den
        } else {
            let a = sched.alpha(t_end);
            xt.mapv_inplace(|v| v * a);
            xt
        };
        Ok(Run::new(out, nfe, n))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sde.sample_prior(n, dim, rng)
    }
}
