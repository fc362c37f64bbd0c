//! Forward SDEs `dx = f(x, t) dt + g(t) dw` and their priors.
//!
//! [`ForwardSde`] is the general interface (a user may implement a non-linear drift
//! and still use reverse-SDE samplers). [`LinearSde`] builds the linear SDE
//! `dx = f(t) x dt + g(t) dw` of any [`Schedule`] and adds what only linear SDEs
//! have: the Gaussian marginal `x_t = α(t) x_0 + σ(t) z` ([`LinearSde::perturb`]),
//! and the exact transition between two times ([`LinearSde::transition`]).
//! [`MarginalSde`] exposes the schedule behind an SDE for samplers that need `α`, `σ`, `λ`.
//!
//! ```
//! use score_sde::prelude::*;
//! let sde = VpSde::<f64>::default(); // VP, β from 0.1 to 20 (Song et al. 2021, eq. 11)
//! let (a, sd) = sde.transition(0.2, 0.5); // x_0.5 | x_0.2 ~ N(a x_0.2, sd² I)
//! // Composing with the marginal from 0 gives the marginal at 0.5: α(0.5) = a α(0.2).
//! assert!((sde.alpha(0.5) - a * sde.alpha(0.2)).abs() < 1e-12);
//! assert!((sde.sigma(0.5).powi(2) - (a * sde.sigma(0.2)).powi(2) - sd * sd).abs() < 1e-12);
//! ```

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::num::RowNoise;
use crate::num::par::zip_update;
use crate::schedule::{Edm, Schedule, SubVp, Ve, VpLinear};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip};
use rand::RngCore;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::Range;

/// A forward (noising) SDE `dx = f(x, t) dt + g(t) dw` on `R^D`, `t ∈ [t_min, T]`.
///
/// Rows of every batch are samples. Object safe.
pub trait ForwardSde<F: Real>: Send + Sync + Debug {
    /// Write the drift `f(x, t)` of each row of `x` into `out` (same shape).
    fn drift(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()>;
    /// The diffusion coefficient `g(t)`.
    fn diffusion(&self, t: F) -> F;
    /// The time range `[t_min, T]`.
    fn t_range(&self) -> (F, F);
    /// Draw `n` samples of the prior `p_T` in `dim` dimensions.
    fn sample_prior(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>>;
    /// Rows `rows` of a prior batch drawn from `seed`: row `i` equals row `rows.start + i` of
    /// the batch of `rows.end` rows, whatever the range — what a run split over processes
    /// needs ([`RunSpec`](crate::sample::RunSpec)). [`LinearSde`] draws each row from its
    /// own stream ([`RowNoise::for_rows`]), at the cost of the rows asked for. The default
    /// draws rows `0..rows.end` with [`ForwardSde::sample_prior`] from a generator seeded
    /// with `seed` and keeps the range: correct for any prior, but its cost grows with
    /// `rows.end` — override it for large runs.
    fn sample_prior_rows(&self, seed: u64, rows: Range<usize>, dim: usize) -> Result<Array2<F>> {
        use rand::SeedableRng;
        if rows.start >= rows.end {
            return Err(Error::Empty {
                what: "prior rows (empty range)",
            });
        }
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let all = self.sample_prior(rows.end, dim, &mut rng)?;
        Ok(all.slice_move(ndarray::s![rows, ..]))
    }
    /// Write the prior log-density `log p_T(x)` of each row into `out`.
    fn prior_log_prob(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()>;
    /// The forward step from `t − dt` to `t` as score_sde's `SDE.discretize`:
    /// writes `f_i(x)` (the drift increment) into `f_out` and returns `G_i`, so that
    /// `x_t ≈ x_{t−dt} + f_i + G_i z`. The reverse-diffusion predictor
    /// ([`ReverseDiffusion`](crate::sample::ReverseDiffusion)) runs it backwards:
    /// `x ← x − f_i + G_i² s + G_i z` (Song et al. 2021, eq. 46). It calls this method for
    /// every SDE without a [`linear_schedule`](ForwardSde::linear_schedule); for a linear SDE
    /// it uses the exact transition of the schedule, which is what [`LinearSde`]'s
    /// `discretize` returns, fused into its update.
    ///
    /// The default is Euler–Maruyama: `f_i = f(x, t) dt`, `G_i = g(t) √dt`.
    fn discretize(&self, x: ArrayView2<F>, t: F, dt: F, mut f_out: ArrayViewMut2<F>) -> Result<F> {
        self.drift(x, t, f_out.view_mut())?;
        f_out.mapv_inplace(|v| v * dt);
        Ok(self.diffusion(t) * dt.sqrt())
    }
    /// The schedule `α(t)`, `σ(t)` of the marginals when the drift is linear,
    /// `f(x, t) = f(t) x` with `f = d log α/dt` and `g² = dσ²/dt − 2 f σ²` (the SDE is then a
    /// [`MarginalSde`]); `None` (the default) for any other drift. Samplers use it for exact
    /// transitions, fused updates and Tweedie denoising; without it they call
    /// [`drift`](ForwardSde::drift), [`diffusion`](ForwardSde::diffusion) and
    /// [`discretize`](ForwardSde::discretize). An implementation of [`MarginalSde`] should
    /// return `Some(self.schedule())` here.
    fn linear_schedule(&self) -> Option<&dyn Schedule<F>> {
        None
    }
    /// The divergence `∇ₓ · f(x, t)` of the drift per row, if the SDE knows it (the
    /// likelihood needs it: `d log p_t/dt = −∇ · (f − ½ g² s)`). `None` (the default) makes
    /// the likelihood estimate it with its divergence method. Linear SDEs return `D f(t)`.
    fn drift_divergence(
        &self,
        x: ArrayView2<F>,
        t: F,
        out: ArrayViewMut1<F>,
    ) -> Option<Result<()>> {
        let _ = (x, t, out);
        None
    }
}

/// An SDE whose transition is Gaussian with a known schedule `α(t)`, `σ(t)`.
///
/// Samplers that work in `α`, `σ` or log-SNR (ancestral, DDIM, DPM-Solver, EDM,
/// Tweedie denoising) take a `MarginalSde`.
///
/// Implementing it promises that the SDE is the linear one of [`schedule`](Self::schedule):
/// drift `f(t) x` with `f = d log α/dt` and `g(t)² = dσ²/dt − 2 f σ²` (Song et al. 2021,
/// App. B; Kingma et al. 2021); return the same schedule from
/// [`ForwardSde::linear_schedule`], through which the samplers that take any `ForwardSde`
/// (predictor–corrector, probability flow, likelihood) find their exact-transition fast
/// paths. A non-linear drift belongs in a plain [`ForwardSde`]: the reverse-time SDE, the
/// probability-flow ODE and the likelihood call its [`drift`](ForwardSde::drift),
/// [`diffusion`](ForwardSde::diffusion) and [`discretize`](ForwardSde::discretize).
pub trait MarginalSde<F: Real>: ForwardSde<F> {
    /// The schedule `α(t)`, `σ(t)` of the marginals.
    fn schedule(&self) -> &dyn Schedule<F>;
    /// Standard deviation of the prior `N(0, s² I)`.
    fn prior_std(&self) -> F;
}

macro_rules! forward_sde_ptr {
    ($($ty:ty),*) => {$(
        impl<F: Real, S: ForwardSde<F> + ?Sized> ForwardSde<F> for $ty {
            fn drift(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> { (**self).drift(x, t, out) }
            fn diffusion(&self, t: F) -> F { (**self).diffusion(t) }
            fn t_range(&self) -> (F, F) { (**self).t_range() }
            fn sample_prior(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> { (**self).sample_prior(n, dim, rng) }
            fn sample_prior_rows(&self, seed: u64, rows: Range<usize>, dim: usize) -> Result<Array2<F>> { (**self).sample_prior_rows(seed, rows, dim) }
            fn prior_log_prob(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()> { (**self).prior_log_prob(x, out) }
            fn discretize(&self, x: ArrayView2<F>, t: F, dt: F, f_out: ArrayViewMut2<F>) -> Result<F> { (**self).discretize(x, t, dt, f_out) }
            fn linear_schedule(&self) -> Option<&dyn Schedule<F>> { (**self).linear_schedule() }
            fn drift_divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> { (**self).drift_divergence(x, t, out) }
        }
        impl<F: Real, S: MarginalSde<F> + ?Sized> MarginalSde<F> for $ty {
            fn schedule(&self) -> &dyn Schedule<F> { (**self).schedule() }
            fn prior_std(&self) -> F { (**self).prior_std() }
        }
    )*};
}
forward_sde_ptr!(&S, Box<S>, std::sync::Arc<S>);

/// The linear SDE `dx = f(t) x dt + g(t) dw` of a [`Schedule`], with prior `N(0, s² I)`.
///
/// ```
/// use score_sde::sde::{ForwardSde, LinearSde, VpSde};
/// use ndarray::array;
/// use rand::SeedableRng;
/// let sde = VpSde::<f64>::default(); // β_min 0.1, β_max 20, prior N(0, I)
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
/// let x0 = array![[1.0, -2.0], [0.5, 0.0]];
/// let (xt, z) = sde.perturb(x0.view(), 0.5, &mut rng).unwrap();
/// let (a, s) = (sde.alpha(0.5), sde.sigma(0.5));
/// assert!((&xt - &(&x0 * a + &z * s)).iter().all(|e| e.abs() < 1e-12));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinearSde<F, S> {
    schedule: S,
    prior_std: F,
    _f: PhantomData<fn() -> F>,
}

/// VP SDE (Song et al. 2021, eq. 11): linear β, prior `N(0, I)`.
pub type VpSde<F> = LinearSde<F, VpLinear<F>>;
/// Sub-VP SDE (Song et al. 2021, eq. 12), prior `N(0, I)`.
pub type SubVpSde<F> = LinearSde<F, SubVp<F>>;
/// VE SDE (Song et al. 2021, eq. 9), prior `N(0, σ_max² I)`.
pub type VeSde<F> = LinearSde<F, Ve<F>>;
/// The EDM process `x_σ = x_0 + σ z` (Karras et al. 2022), prior `N(0, σ_max² I)`.
pub type EdmSde<F> = LinearSde<F, Edm<F>>;

impl<F: Real, S: Schedule<F>> LinearSde<F, S> {
    /// The linear SDE of `schedule`, with prior `N(0, (α(T)² + σ(T)²) I)` — the marginal
    /// variance at `T` of data with unit variance. Override with [`LinearSde::with_prior_std`].
    pub fn new(schedule: S) -> Self {
        let (_, t_max) = schedule.t_range();
        let (a, s) = (schedule.alpha(t_max), schedule.sigma(t_max));
        let prior_std = (a * a + s * s).sqrt();
        Self {
            schedule,
            prior_std,
            _f: PhantomData,
        }
    }
    /// Set the prior's standard deviation (`> 0`).
    pub fn with_prior_std(mut self, std: F) -> Result<Self> {
        if !(std.is_finite() && std > F::zero()) {
            return Err(Error::param(
                "prior_std",
                std.as_f64(),
                "must be finite and > 0",
            ));
        }
        self.prior_std = std;
        Ok(self)
    }
    /// The schedule.
    pub fn schedule(&self) -> &S {
        &self.schedule
    }
    /// `α(t)`.
    pub fn alpha(&self, t: F) -> F {
        self.schedule.alpha(t)
    }
    /// `σ(t)`.
    pub fn sigma(&self, t: F) -> F {
        self.schedule.sigma(t)
    }
    /// The exact transition from time `s` to a later time `t ≥ s`:
    /// `x_t | x_s ~ N(a x_s, v I)` with `a = α_t/α_s`, `v = σ_t² − a² σ_s²`
    /// ([`Schedule::transition`], Kingma et al. 2021, eq. 33). Returns `(a, √v)`.
    /// Defined for `s ≤ t` (debug-asserted).
    pub fn transition(&self, s: F, t: F) -> (F, F) {
        let (a, v) = self.schedule.transition(s, t);
        (a, v.sqrt())
    }
    /// Draw `x_t = α(t) x_0 + σ(t) z` for every row of `x0`; returns `(x_t, z)`.
    pub fn perturb(
        &self,
        x0: ArrayView2<F>,
        t: F,
        rng: &mut dyn RngCore,
    ) -> Result<(Array2<F>, Array2<F>)> {
        check::finite_scalar("t", t)?;
        if t < F::zero() {
            return Err(Error::TimeOutOfRange {
                t: t.as_f64(),
                min: 0.0,
                max: self.schedule.t_range().1.as_f64(),
            });
        }
        check::finite("x0", &x0)?;
        let mut z = Array2::<F>::zeros(x0.raw_dim());
        fill_normal(z.view_mut(), rng);
        let (a, s) = (self.alpha(t), self.sigma(t));
        let mut xt = Array2::<F>::zeros(x0.raw_dim());
        Zip::from(&mut xt)
            .and(&x0)
            .and(&z)
            .for_each(|o, &x, &e| *o = a * x + s * e);
        Ok((xt, z))
    }
    /// As [`LinearSde::perturb`] with one time per row (training batches).
    pub fn perturb_rows(
        &self,
        x0: ArrayView2<F>,
        t: ArrayView1<F>,
        rng: &mut dyn RngCore,
    ) -> Result<(Array2<F>, Array2<F>)> {
        check::same_shape("t", &[x0.nrows()], t.shape())?;
        check::finite("x0", &x0)?;
        for (i, &ti) in t.iter().enumerate() {
            if !ti.is_finite() || ti < F::zero() {
                return Err(Error::NonFinite {
                    what: "t (must be finite and >= 0)",
                    index: i,
                    value: ti.as_f64(),
                });
            }
        }
        let mut z = Array2::<F>::zeros(x0.raw_dim());
        fill_normal(z.view_mut(), rng);
        let mut xt = Array2::<F>::zeros(x0.raw_dim());
        Zip::from(xt.rows_mut())
            .and(x0.rows())
            .and(z.rows())
            .and(&t)
            .for_each(|mut o, x, e, &ti| {
                let (a, s) = (self.alpha(ti), self.sigma(ti));
                Zip::from(&mut o)
                    .and(&x)
                    .and(&e)
                    .for_each(|o, &x, &e| *o = a * x + s * e);
            });
        Ok((xt, z))
    }
}

impl<F: Real> Default for VpSde<F> {
    fn default() -> Self {
        LinearSde::new(VpLinear::default()).with_unit_prior()
    }
}
impl<F: Real> Default for SubVpSde<F> {
    fn default() -> Self {
        LinearSde::new(SubVp::default()).with_unit_prior()
    }
}
impl<F: Real> Default for VeSde<F> {
    fn default() -> Self {
        Self::ve(Ve::default())
    }
}
impl<F: Real> Default for EdmSde<F> {
    fn default() -> Self {
        Self::edm(Edm::default())
    }
}

impl<F: Real, S: Schedule<F>> LinearSde<F, S> {
    fn with_unit_prior(mut self) -> Self {
        self.prior_std = F::one();
        self
    }
}
impl<F: Real> VpSde<F> {
    /// VP SDE with linear β from `beta_min` to `beta_max` and score_sde's prior `N(0, I)`.
    pub fn vp(beta_min: F, beta_max: F) -> Result<Self> {
        Ok(LinearSde::new(VpLinear::new(beta_min, beta_max)?).with_unit_prior())
    }
}
impl<F: Real> SubVpSde<F> {
    /// Sub-VP SDE with linear β and score_sde's prior `N(0, I)`.
    pub fn sub_vp(beta_min: F, beta_max: F) -> Result<Self> {
        Ok(LinearSde::new(SubVp::new(beta_min, beta_max)?).with_unit_prior())
    }
}
impl<F: Real> VeSde<F> {
    /// VE SDE of a schedule, with score_sde's prior `N(0, σ(T)² I)`.
    pub fn ve(schedule: Ve<F>) -> Self {
        let (_, t_max) = schedule.t_range();
        let s = schedule.sigma(t_max);
        Self {
            schedule,
            prior_std: s,
            _f: PhantomData,
        }
    }
}
impl<F: Real> EdmSde<F> {
    /// EDM process of a schedule, with prior `N(0, σ_max² I)` (Karras et al. 2022, Alg. 1).
    pub fn edm(schedule: Edm<F>) -> Self {
        let (_, t_max) = schedule.t_range();
        Self {
            schedule,
            prior_std: t_max,
            _f: PhantomData,
        }
    }
}

/// Fill a view with N(0, 1) draws: one `u64` from `rng` seeds per-row streams
/// ([`RowNoise`](crate::num::RowNoise)), so row `r` of a prior sample or of a
/// perturbation depends only on that draw and on `r` — not on the batch size — and the
/// draws take the vectorised row-stream path rather than one virtual call per number.
pub(crate) fn fill_normal<F: Real>(z: ArrayViewMut2<F>, rng: &mut dyn RngCore) {
    RowNoise::from_rng(rng, z.nrows()).fill(z);
}

impl<F: Real, S: Schedule<F>> ForwardSde<F> for LinearSde<F, S> {
    fn drift(&self, x: ArrayView2<F>, t: F, mut out: ArrayViewMut2<F>) -> Result<()> {
        check::same_shape("drift output", x.shape(), out.shape())?;
        let f = self.schedule.f(t);
        let n = x.len();
        zip_update!(n, Zip::from(&mut out).and(&x), |o, &x| *o = f * x);
        Ok(())
    }
    fn diffusion(&self, t: F) -> F {
        self.schedule.g2(t).max(F::zero()).sqrt()
    }
    fn t_range(&self) -> (F, F) {
        self.schedule.t_range()
    }
    fn sample_prior(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        self.sample_prior_rows(rng.next_u64(), 0..n, dim)
    }
    /// `s z` with `z` from the row streams of rows `rows` of `seed`.
    fn sample_prior_rows(&self, seed: u64, rows: Range<usize>, dim: usize) -> Result<Array2<F>> {
        let n = rows.end.saturating_sub(rows.start);
        let mut z = check::zeros_batch::<F>("prior batch (n × dim)", n, dim)?;
        RowNoise::for_rows(seed, rows.start, n).fill(z.view_mut());
        z.mapv_inplace(|v| v * self.prior_std);
        Ok(z)
    }
    /// `log N(x; 0, s² I)` per row; a non-finite `x` is an error (not a NaN in `out`).
    fn prior_log_prob(&self, x: ArrayView2<F>, mut out: ArrayViewMut1<F>) -> Result<()> {
        check::same_shape("prior log-density output", &[x.nrows()], out.shape())?;
        check::finite("prior log-density input", &x)?;
        let d = F::from_usize_lossy(x.ncols());
        let s2 = self.prior_std * self.prior_std;
        let c = -F::lit(0.5) * d * (F::lit(2.0 * std::f64::consts::PI) * s2).ln();
        Zip::from(&mut out).and(x.rows()).for_each(|o, r| {
            *o = c - F::lit(0.5) * r.dot(&r) / s2;
        });
        Ok(())
    }
    /// The exact Gaussian transition over `[t − dt, t]`: `f_i = (a − 1) x`,
    /// `G_i = √(σ_t² − a² σ_{t−dt}²)`, `a = α_t/α_{t−dt}`. For VP this is DDPM's
    /// `x_i = √(1−β_i) x_{i−1} + √β_i z` with `β_i = 1 − α_t²/α_{t−dt}²`, and for VE it is
    /// SMLD's `G_i = √(σ_i² − σ_{i−1}²)` — score_sde's `VPSDE`/`VESDE.discretize` with the
    /// continuous schedule in place of its table of `N` betas.
    fn discretize(&self, x: ArrayView2<F>, t: F, dt: F, mut f_out: ArrayViewMut2<F>) -> Result<F> {
        check::same_shape("discretize output", x.shape(), f_out.shape())?;
        let (a, g) = self.transition(t - dt, t);
        let am1 = a - F::one();
        let n = x.len();
        zip_update!(n, Zip::from(&mut f_out).and(&x), |o, &x| *o = am1 * x);
        Ok(g)
    }
    fn linear_schedule(&self) -> Option<&dyn Schedule<F>> {
        Some(&self.schedule)
    }
    fn drift_divergence(
        &self,
        x: ArrayView2<F>,
        t: F,
        mut out: ArrayViewMut1<F>,
    ) -> Option<Result<()>> {
        if let Err(e) = check::same_shape("drift divergence output", &[x.nrows()], out.shape()) {
            return Some(Err(e));
        }
        out.fill(F::from_usize_lossy(x.ncols()) * self.schedule.f(t));
        Some(Ok(()))
    }
}

impl<F: Real, S: Schedule<F>> MarginalSde<F> for LinearSde<F, S> {
    fn schedule(&self) -> &dyn Schedule<F> {
        &self.schedule
    }
    fn prior_std(&self) -> F {
        self.prior_std
    }
}

/// Per-row prior log-density as a new array (convenience over [`ForwardSde::prior_log_prob`]).
pub fn prior_log_prob<F: Real>(sde: &dyn ForwardSde<F>, x: ArrayView2<F>) -> Result<Array1<F>> {
    let mut out = Array1::zeros(x.nrows());
    sde.prior_log_prob(x, out.view_mut())?;
    Ok(out)
}
