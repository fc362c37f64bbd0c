//! Langevin MCMC for a fixed target: ULA, MALA, and annealed Langevin dynamics.
//!
//! | sampler | update | source |
//! |---|---|---|
//! | [`Ula`] | `x ← x + δ s(x) + √(2δ) z` | Roberts & Tweedie 1996, eq. 1.2 (discretised Langevin diffusion) |
//! | [`Mala`] | ULA proposal `y`, accepted with prob. `min(1, π(y) q(x|y) / (π(x) q(y|x)))` | Roberts & Tweedie 1996, §1.3 |
//! | [`AnnealedLangevin`] | ULA at noise levels `σ_1 > … > σ_L`, step `δ_i = δ σ_i²/σ_L²`, `n` steps each | Song & Ermon 2019, Alg. 1 |
//!
//! **What `t` the score model sees.** These samplers call the same [`ScoreModel`] as the
//! diffusion samplers. ULA and MALA evaluate it at one fixed time, [`Ula::score_time`]
//! (default `0`): [`AnalyticScore`](crate::gmm::AnalyticScore) at `t = 0` has `α = 1`,
//! `σ = 0` and is the exact score of its mixture, whatever the schedule; at `t = t_eps`
//! it is the exact score of `p_eps`. Annealed Langevin evaluates the model at
//! `t = σ_i`, the noise level itself: use a model whose time *is* the noise level, such as
//! `AnalyticScore` with the [`Edm`](crate::schedule::Edm) schedule (`α = 1`, `σ(t) = t`),
//! which is exactly the score of data `+ N(0, σ_i² I)` that SMLD/NCSN learns.
//!
//! MALA also needs the target's log-density (up to a constant) for its Metropolis test:
//! the [`LogDensity`] trait, implemented for [`GaussianMixture`]. Its gradient must be the
//! model's score at the score time, or MALA samples neither.
//!
//! ULA is biased at any fixed `δ` (its stationary law is not `π`; for `N(μ, v)` its
//! variance is `v / (1 − δ/(2v))`) and the bias shrinks with `δ`; MALA's accept/reject step
//! removes it at any `δ`, at the price of rejections.

use crate::num::RowNoise;
use super::reverse_sde::Buffers;
use super::{Run, Sampler, check_initial};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::gmm::GaussianMixture;
use crate::observe::Observer;
use crate::score::ScoreModel;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, Zip};
use rand::RngCore;
use std::fmt::Debug;

/// A log-density `log π(x)` (up to an additive constant) for batches, rows are samples.
///
/// ```
/// use score_sde::sample::LogDensity;
/// use score_sde::gmm::GaussianMixture;
/// use ndarray::{array, Array1, Array2};
/// let g = GaussianMixture::<f64>::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
/// let mut out = Array1::zeros(1);
/// g.log_density(array![[0.0, 0.0]].view(), out.view_mut()).unwrap();
/// assert!((out[0] + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// ```
pub trait LogDensity<F: Real>: Send + Sync + Debug {
    /// Write `log π(x)` of each row of `x` into `out`.
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()>;
    /// The dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
    }
}

impl<F: Real> LogDensity<F> for GaussianMixture<F> {
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()> {
        self.evaluate_at(F::one(), F::zero(), x, Some(out), None, None)
    }
    fn dim(&self) -> Option<usize> {
        Some(GaussianMixture::dim(self))
    }
}

impl<F: Real, L: LogDensity<F> + ?Sized> LogDensity<F> for &L {
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()> {
        (**self).log_density(x, out)
    }
    fn dim(&self) -> Option<usize> {
        (**self).dim()
    }
}
impl<F: Real, L: LogDensity<F> + ?Sized> LogDensity<F> for std::sync::Arc<L> {
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()> {
        (**self).log_density(x, out)
    }
    fn dim(&self) -> Option<usize> {
        (**self).dim()
    }
}

use crate::check::positive;
fn nonzero_steps(name: &'static str, n: usize) -> Result<usize> {
    if n == 0 {
        return Err(Error::param(name, 0.0, "must be at least 1"));
    }
    Ok(n)
}
fn score_time<F: Real>(t: F) -> Result<F> {
    if t.is_finite() && t >= F::zero() {
        Ok(t)
    } else {
        Err(Error::param(
            "score_time",
            t.as_f64(),
            "must be finite and >= 0",
        ))
    }
}
fn gaussian_init<F: Real>(
    n: usize,
    dim: usize,
    std: F,
    rng: &mut dyn RngCore,
) -> Result<Array2<F>> {
    if n == 0 || dim == 0 {
        return Err(Error::Empty {
            what: "initial batch (n or dim is 0)",
        });
    }
    let mut x = Array2::<F>::zeros((n, dim));
    for v in x.iter_mut() {
        *v = F::standard_normal(rng) * std;
    }
    Ok(x)
}

/// `x += δ s + √(2δ) z` over the whole batch, `z` drawn inside the update (one pass, no
/// noise buffer).
fn langevin_update<F: Real>(x: &mut Array2<F>, delta: F, buf: &Buffers<F>, noise: &mut RowNoise) {
    let c = (F::lit(2.0) * delta).sqrt();
    noise.update(x.view_mut(), buf.score.view(), |x, s, z| {
        x + delta * s + c * z
    });
}

// ---------------------------------------------------------------- ULA

/// The unadjusted Langevin algorithm: `x ← x + δ s(x, t_s) + √(2δ) z` for `steps` steps
/// (Roberts & Tweedie 1996, eq. 1.2). NFE = `steps`.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::Ula;
/// use ndarray::{array, Array2};
/// use rand::SeedableRng;
/// // Target N(1, 0.25): ULA's stationary variance is v/(1 − δ/(2v)) = 0.25/0.98.
/// let target = GaussianMixture::gaussian(array![1.0_f64], array![[0.25]]).unwrap();
/// let model = AnalyticScore::new(target, Edm::default()); // t = 0: the exact score
/// let ula = Ula::new(0.01, 400).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
/// let run = ula.sample(&model, 4000, 1, &mut rng).unwrap();
/// let m = run.samples.mean().unwrap();
/// let v = run.samples.var(0.0);
/// assert!((m - 1.0).abs() < 0.03 && (v - 0.25 / 0.98).abs() < 0.02);
/// ```
#[derive(Debug, Clone)]
pub struct Ula<F> {
    step: F,
    steps: usize,
    t: F,
    init_std: F,
}

impl<F: Real> Ula<F> {
    /// `steps ≥ 1` steps of size `step > 0`; score time 0; initial state `N(0, I)`.
    pub fn new(step: F, steps: usize) -> Result<Self> {
        Ok(Self {
            step: positive("step", step)?,
            steps: nonzero_steps("steps", steps)?,
            t: F::zero(),
            init_std: F::one(),
        })
    }
    /// The time `t ≥ 0` at which the score model is evaluated.
    pub fn score_time(mut self, t: F) -> Result<Self> {
        self.t = score_time(t)?;
        Ok(self)
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.init_std = positive("initial_std", s)?;
        Ok(self)
    }
}

impl<F: Real> Sampler<F> for Ula<F> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        mut x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let (n, d) = x.dim();
        let mut noise = RowNoise::from_rng(rng, n);
        let mut buf = Buffers::score_only(n, d);
        for k in 0..self.steps {
            model.score(x.view(), self.t, buf.score.view_mut())?;
            langevin_update(&mut x, self.step, &buf, &mut noise);
            crate::observe::after_step(observer, k + 1, self.t, &mut x)?;
        }
        Ok(Run::new(x, self.steps, self.steps))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        gaussian_init(n, dim, self.init_std, rng)
    }
}

// ---------------------------------------------------------------- MALA

/// The Metropolis-adjusted Langevin algorithm (Roberts & Tweedie 1996, §1.3; Besag 1994).
///
/// Proposal `y = x + δ s(x) + √(2δ) z`, `q(y | x) = N(y; x + δ s(x), 2δ I)`; accept with
/// probability `min(1, π(y) q(x | y) / (π(x) q(y | x)))`, i.e. when
///
/// ```text
/// log u < log π(y) − log π(x) − ‖x − y − δ s(y)‖²/(4δ) + ‖z‖²/2
/// ```
///
/// `π` is the [`LogDensity`]; `s` is the score model at [`Mala::score_time`] and must be
/// `∇ log π`. One score call per step plus one at the start (NFE = `steps + 1`); log-density
/// calls are not counted (the sampler's own buffers are made once per run; the
/// `GaussianMixture` log-density makes a small workspace per call). [`Run::acceptance_rate`] reports the fraction of accepted
/// proposals over all rows and steps. Each row's Metropolis uniform comes from its own
/// stream, so rows are independent chains. A proposal whose score is non-finite stops the
/// run with [`Error::Diverged`] (step 0 for the initial state).
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::Mala;
/// use ndarray::array;
/// use rand::SeedableRng;
/// // A large step that would bias ULA (δ/v = 0.8); MALA still samples N(1, 0.25).
/// let target = GaussianMixture::gaussian(array![1.0_f64], array![[0.25]]).unwrap();
/// let model = AnalyticScore::new(target.clone(), Edm::default());
/// let mala = Mala::new(target, 0.2, 300).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(4);
/// let run = mala.sample(&model, 4000, 1, &mut rng).unwrap();
/// assert!((run.samples.var(0.0) - 0.25).abs() < 0.02);
/// assert!(run.acceptance_rate.unwrap() > 0.5);
/// ```
#[derive(Debug, Clone)]
pub struct Mala<F, L> {
    target: L,
    step: F,
    steps: usize,
    t: F,
    init_std: F,
}

impl<F: Real, L: LogDensity<F>> Mala<F, L> {
    /// MALA on `target` with `steps ≥ 1` steps of size `step > 0`; score time 0; initial
    /// state `N(0, I)`.
    pub fn new(target: L, step: F, steps: usize) -> Result<Self> {
        Ok(Self {
            target,
            step: positive("step", step)?,
            steps: nonzero_steps("steps", steps)?,
            t: F::zero(),
            init_std: F::one(),
        })
    }
    /// The time `t ≥ 0` at which the score model is evaluated.
    pub fn score_time(mut self, t: F) -> Result<Self> {
        self.t = score_time(t)?;
        Ok(self)
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.init_std = positive("initial_std", s)?;
        Ok(self)
    }
    /// The target.
    pub fn target(&self) -> &L {
        &self.target
    }
}

fn first_nonfinite_row<F: Real>(a: &Array2<F>) -> Option<usize> {
    a.rows()
        .into_iter()
        .position(|r| r.iter().any(|v| !v.is_finite()))
}

impl<F: Real, L: LogDensity<F>> Sampler<F> for Mala<F, L> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        mut x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let (n, d) = x.dim();
        if let Some(td) = self.target.dim() {
            if td != d {
                return Err(Error::shape(
                    "initial batch (columns = target dimension)",
                    td,
                    d,
                ));
            }
        }
        let mut noise = RowNoise::from_rng(rng, n);
        // buf.score = s(y), buf.work = y, buf.rows = log π(y).
        let mut buf = Buffers::with_proposal(n, d);
        let mut sx = Array2::<F>::zeros((n, d));
        let mut lx = Array1::<F>::zeros(n);
        let (delta, t) = (self.step, self.t);
        let (two, quarter_over_delta) = (F::lit(2.0), F::lit(0.25) / delta);
        let c = (two * delta).sqrt();
        model.score(x.view(), t, sx.view_mut())?;
        if let Some(row) = first_nonfinite_row(&sx) {
            return Err(Error::Diverged {
                step: 0,
                t: t.as_f64(),
                row,
            });
        }
        self.target.log_density(x.view(), lx.view_mut())?;
        let mut accepted: u64 = 0;
        for k in 0..self.steps {
            noise.fill(buf.noise.view_mut());
            Zip::from(&mut buf.work)
                .and(&x)
                .and(&sx)
                .and(&buf.noise)
                .for_each(|y, &x, &s, &z| *y = x + delta * s + c * z);
            model.score(buf.work.view(), t, buf.score.view_mut())?;
            if let Some(row) = first_nonfinite_row(&buf.score) {
                return Err(Error::Diverged {
                    step: k + 1,
                    t: t.as_f64(),
                    row,
                });
            }
            self.target
                .log_density(buf.work.view(), buf.rows.view_mut())?;
            for r in 0..n {
                let (xr, yr, syr, zr) = (
                    x.row(r),
                    buf.work.row(r),
                    buf.score.row(r),
                    buf.noise.row(r),
                );
                let mut back = F::zero();
                Zip::from(&xr).and(&yr).and(&syr).for_each(|&x, &y, &s| {
                    let e = x - y - delta * s;
                    back += e * e;
                });
                let log_a =
                    buf.rows[r] - lx[r] - back * quarter_over_delta + F::lit(0.5) * zr.dot(&zr);
                let u = noise.uniform(r);
                if u.ln() < log_a.as_f64() {
                    accepted += 1;
                    x.row_mut(r).assign(&yr);
                    sx.row_mut(r).assign(&syr);
                    lx[r] = buf.rows[r];
                }
            }
            crate::observe::after_step(observer, k + 1, t, &mut x)?;
        }
        let rate = accepted as f64 / (n as f64 * self.steps as f64);
        Ok(Run::new(x, self.steps + 1, self.steps).with_acceptance_rate(rate))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        gaussian_init(n, dim, self.init_std, rng)
    }
}

// ---------------------------------------------------------------- annealed Langevin

/// Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1).
///
/// Noise levels form a geometric ladder `σ_i = σ_max (σ_min/σ_max)^{(i−1)/(L−1)}`,
/// `i = 1 … L`. At level `i` it takes `n` ULA steps with `δ_i = δ σ_i²/σ_L²` on the score
/// model evaluated at `t = σ_i` (a model whose time is the noise level; see the
/// [module docs](self)). NFE = `L · n` (+1 with [`AnnealedLangevin::denoise`], which
/// returns `x + σ_L² s(x, σ_L)`, Tweedie's formula for `α = 1`). The observer sees steps
/// `1 … L·n` with `t = σ_i`. The initial state is `N(0, σ_max² I)` by default.
///
/// ```
/// use score_sde::prelude::*;
/// use score_sde::sample::AnnealedLangevin;
/// use rand::SeedableRng;
/// let model = AnalyticScore::new(problems::ring2d::<f64>(), Edm::default());
/// let ald = AnnealedLangevin::new(10.0, 0.05, 10, 30, 2e-4).unwrap();
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
/// let run = ald.sample(&model, 500, 2, &mut rng).unwrap();
/// assert_eq!(run.nfe, 300);
/// let r = run.samples.rows().into_iter().map(|r| r.dot(&r).sqrt()).sum::<f64>() / 500.0;
/// assert!((r - 4.0).abs() < 0.2);
/// ```
#[derive(Debug, Clone)]
pub struct AnnealedLangevin<F> {
    sigma_max: F,
    sigma_min: F,
    levels: usize,
    steps_per_level: usize,
    step: F,
    denoise: bool,
    init_std: F,
}

impl<F: Real> AnnealedLangevin<F> {
    /// `levels ≥ 2` noise levels from `sigma_max` down to `sigma_min` (`0 < σ_min < σ_max`),
    /// `steps_per_level ≥ 1` steps each, base step `step > 0` (the step at `σ_min`).
    pub fn new(
        sigma_max: F,
        sigma_min: F,
        levels: usize,
        steps_per_level: usize,
        step: F,
    ) -> Result<Self> {
        positive("sigma_min", sigma_min)?;
        if !(sigma_max.is_finite() && sigma_max > sigma_min) {
            return Err(Error::param(
                "sigma_max",
                sigma_max.as_f64(),
                "must be finite and > sigma_min",
            ));
        }
        if levels < 2 {
            return Err(Error::param("levels", levels as f64, "must be at least 2"));
        }
        Ok(Self {
            sigma_max,
            sigma_min,
            levels,
            steps_per_level: nonzero_steps("steps_per_level", steps_per_level)?,
            step: positive("step", step)?,
            denoise: false,
            init_std: sigma_max,
        })
    }
    /// Return Tweedie's `x + σ_L² s(x, σ_L)` after the last step (one more score call).
    pub fn denoise(mut self, on: bool) -> Self {
        self.denoise = on;
        self
    }
    /// Standard deviation of the `N(0, s² I)` initial state (`> 0`).
    pub fn initial_std(mut self, s: F) -> Result<Self> {
        self.init_std = positive("initial_std", s)?;
        Ok(self)
    }
    /// The noise level of level `i` (0-based).
    pub fn level(&self, i: usize) -> F {
        let u = F::from_usize_lossy(i) / F::from_usize_lossy(self.levels - 1);
        self.sigma_max * (self.sigma_min / self.sigma_max).powf(u)
    }
    /// Total steps `L · n`.
    pub fn total_steps(&self) -> usize {
        self.levels * self.steps_per_level
    }
}

impl<F: Real> Sampler<F> for AnnealedLangevin<F> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        mut x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        check_initial(model, &x.view())?;
        let (n, d) = x.dim();
        let mut noise = RowNoise::from_rng(rng, n);
        let mut buf = Buffers::score_only(n, d);
        let sl2 = self.sigma_min * self.sigma_min;
        let mut k = 0;
        for i in 0..self.levels {
            let sigma = if i + 1 == self.levels {
                self.sigma_min
            } else {
                self.level(i)
            };
            let delta = self.step * sigma * sigma / sl2;
            for _ in 0..self.steps_per_level {
                model.score(x.view(), sigma, buf.score.view_mut())?;
                langevin_update(&mut x, delta, &buf, &mut noise);
                k += 1;
                crate::observe::after_step(observer, k, sigma, &mut x)?;
            }
        }
        let mut nfe = k;
        if self.denoise {
            model.score(x.view(), self.sigma_min, buf.score.view_mut())?;
            Zip::from(&mut x)
                .and(&buf.score)
                .for_each(|x, &s| *x += sl2 * s);
            nfe += 1;
            crate::observe::after_step(observer, k + 1, self.sigma_min, &mut x)?;
        }
        Ok(Run::new(x, nfe, k))
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        gaussian_init(n, dim, self.init_std, rng)
    }
}
