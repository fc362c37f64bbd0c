//! Time discretisations shared by all samplers.
//!
//! A [`TimeGrid`] of `n` steps holds `n + 1` strictly monotone times; step `i` goes from
//! `times[i]` to `times[i + 1]`. Sampling grids run from `T` down to `t_min`;
//! [`TimeGrid::reversed`] gives the encoding direction.
//!
//! | kind | spacing | source |
//! |---|---|---|
//! | [`GridKind::Uniform`] | uniform in `t` | score_sde: `linspace(T, eps, N)` |
//! | [`GridKind::Quadratic`] | `t_min + (T − t_min)(1 − i/n)²`, dense near `t_min` | Song, Meng & Ermon 2021 (DDIM, App. D.2) |
//! | [`GridKind::Karras`] | `σ̃_i = (σ̃_max^{1/ρ} + i/n (σ̃_min^{1/ρ} − σ̃_max^{1/ρ}))^ρ` in `σ̃ = σ/α` | Karras et al. 2022, eq. 5 |
//! | [`GridKind::LogSnr`] | uniform in `λ = log(α/σ)` | Lu et al. 2022 (DPM-Solver), §3.3 |
//!
//! ```
//! use score_sde::prelude::*;
//! let vp = VpLinear::<f64>::default();
//! let grid = TimeGrid::quadratic(&vp, 30)?;
//! assert_eq!(grid.steps(), 30);
//! assert_eq!(grid.times().len(), 31);
//! assert!(grid.is_decreasing()); // from T = 1 down to t_min = 1e-3
//! assert_eq!(grid.times()[0], 1.0);
//! assert!((grid.times()[30] - 1e-3).abs() < 1e-15);
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::num::Real;
use crate::schedule::{Schedule, check_time};

/// How to space a grid's times.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum GridKind {
    /// Uniform in `t`.
    Uniform,
    /// Quadratic in `t`, dense near `t_min`.
    Quadratic,
    /// Karras ρ-spacing in the noise level `σ/α` (ρ = 7 in the paper).
    Karras {
        /// The exponent ρ (> 0).
        rho: f64,
    },
    /// Uniform in log-SNR.
    LogSnr,
}

impl GridKind {
    /// Karras spacing with the paper's `ρ = 7`.
    pub const KARRAS: GridKind = GridKind::Karras { rho: 7.0 };

    /// Build an `n`-step sampling grid from `T` to `t_min` of `schedule`.
    pub fn build<F: Real>(self, schedule: &dyn Schedule<F>, n: usize) -> Result<TimeGrid<F>> {
        match self {
            GridKind::Uniform => TimeGrid::uniform(schedule, n),
            GridKind::Quadratic => TimeGrid::quadratic(schedule, n),
            GridKind::Karras { rho } => TimeGrid::karras(schedule, n, F::lit(rho)),
            GridKind::LogSnr => TimeGrid::log_snr(schedule, n),
        }
    }
}

/// A validated, strictly monotone list of `n + 1 ≥ 2` times inside a schedule's range.
///
/// ```
/// use score_sde::grid::TimeGrid;
/// use score_sde::schedule::{Schedule, VpLinear};
/// let vp = VpLinear::<f64>::default();
/// let g = TimeGrid::log_snr(&vp, 10).unwrap();
/// assert_eq!(g.steps(), 10);
/// assert_eq!(g.times()[0], 1.0);
/// assert_eq!(g.times()[10], 1e-3);
/// // Equal log-SNR increments:
/// let d0 = vp.log_snr(g.times()[1]) - vp.log_snr(g.times()[0]);
/// let d9 = vp.log_snr(g.times()[10]) - vp.log_snr(g.times()[9]);
/// assert!((d0 - d9).abs() < 1e-9);
/// assert!(TimeGrid::uniform(&vp, 0).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TimeGrid<F> {
    times: Vec<F>,
}

fn check_steps(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::param("steps", 0.0, "must be at least 1"));
    }
    Ok(())
}

impl<F: Real> TimeGrid<F> {
    /// A grid from explicit times: at least two, strictly monotone (either direction),
    /// each inside `schedule`'s time range.
    pub fn custom(schedule: &dyn Schedule<F>, times: Vec<F>) -> Result<Self> {
        if times.len() < 2 {
            return Err(Error::param(
                "grid length",
                times.len() as f64,
                "needs at least 2 times (1 step)",
            ));
        }
        for &t in &times {
            schedule.check_t(t)?;
        }
        let decreasing = times[1] < times[0];
        for (i, w) in times.windows(2).enumerate() {
            let ok = if decreasing { w[1] < w[0] } else { w[1] > w[0] };
            if !ok {
                return Err(Error::param(
                    "grid time",
                    w[1].as_f64(),
                    if i == 0 {
                        "times must differ"
                    } else {
                        "times must be strictly monotone"
                    },
                ));
            }
        }
        Ok(Self { times })
    }

    fn from_fn(schedule: &dyn Schedule<F>, n: usize, f: impl Fn(F) -> Result<F>) -> Result<Self> {
        check_steps(n)?;
        let (t_min, t_max) = schedule.t_range();
        // n + 1 times: the count and the allocation are checked (n near usize::MAX would
        // overflow, n ≈ 10¹² would abort in the allocator).
        let len = crate::check::add_count("time grid (steps + 1)", n, 1)?;
        let mut times = crate::check::vec_with_capacity("time grid", len)?;
        times.push(t_max);
        for i in 1..n {
            let u = F::from_usize_lossy(i) / F::from_usize_lossy(n);
            times.push(f(u)?.max(t_min).min(t_max));
        }
        times.push(t_min);
        Self::custom(schedule, times)
    }

    /// `n` steps uniform in `t` from `T` to `t_min`.
    pub fn uniform(schedule: &dyn Schedule<F>, n: usize) -> Result<Self> {
        let (lo, hi) = schedule.t_range();
        Self::from_fn(schedule, n, |u| Ok(hi + u * (lo - hi)))
    }

    /// `n` steps with `t_i = t_min + (T − t_min)(1 − i/n)²`.
    pub fn quadratic(schedule: &dyn Schedule<F>, n: usize) -> Result<Self> {
        let (lo, hi) = schedule.t_range();
        Self::from_fn(schedule, n, |u| {
            Ok(lo + (hi - lo) * (F::one() - u) * (F::one() - u))
        })
    }

    /// `n` steps of Karras et al. 2022's ρ-spacing (eq. 5) in the noise level `σ/α`,
    /// mapped back to `t` through the inverse log-SNR.
    pub fn karras(schedule: &dyn Schedule<F>, n: usize, rho: F) -> Result<Self> {
        if !(rho.is_finite() && rho > F::zero()) {
            return Err(Error::param("rho", rho.as_f64(), "must be finite and > 0"));
        }
        let (lo, hi) = schedule.t_range();
        let inv = F::one() / rho;
        let (smax, smin) = (
            schedule.noise_level(hi).powf(inv),
            schedule.noise_level(lo).powf(inv),
        );
        Self::from_fn(schedule, n, |u| {
            let sigma = (smax + u * (smin - smax)).powf(rho);
            schedule.t_of_log_snr(-sigma.ln())
        })
    }

    /// `n` steps uniform in log-SNR `λ(t)`.
    pub fn log_snr(schedule: &dyn Schedule<F>, n: usize) -> Result<Self> {
        let (lo, hi) = schedule.t_range();
        let (l_hi, l_lo) = (schedule.log_snr(hi), schedule.log_snr(lo));
        Self::from_fn(schedule, n, |u| {
            schedule.t_of_log_snr(l_hi + u * (l_lo - l_hi))
        })
    }

    /// The times, `n + 1` of them.
    pub fn times(&self) -> &[F] {
        &self.times
    }
    /// Number of steps `n`.
    pub fn steps(&self) -> usize {
        self.times.len() - 1
    }
    /// Whether the grid runs backwards in time (from `T` towards `t_min`).
    pub fn is_decreasing(&self) -> bool {
        self.times[1] < self.times[0]
    }
    /// The same times in the opposite order.
    pub fn reversed(&self) -> Self {
        let mut times = self.times.clone();
        times.reverse();
        Self { times }
    }
    /// Check that this is a sampling grid for the time range `(lo, hi)`: decreasing (from
    /// `T` towards `t_min`), with its end points (hence, being monotone, every time) inside
    /// the range up to [`check_time`]'s slack. The one grid check of every sampler.
    pub fn check_sampling(&self, range: (F, F)) -> Result<()> {
        if !self.is_decreasing() {
            return Err(Error::param(
                "grid",
                self.times[0].as_f64(),
                "a sampling grid must run from T down to t_min (decreasing)",
            ));
        }
        check_time(self.times[0], range)?;
        check_time(self.times[self.times.len() - 1], range)
    }
    /// The steps as `(t_from, t_to)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (F, F)> + '_ {
        self.times.windows(2).map(|w| (w[0], w[1]))
    }
}

// ---------------------------------------------------------------- diffusers' timesteps

/// diffusers' `timestep_spacing` (Lin et al. 2024, "Common Diffusion Noise Schedules and
/// Sample Steps are Flawed", Table 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimestepSpacing {
    /// Evenly spaced over `[0, N − 1]`, both ends included.
    Linspace,
    /// Multiples of an integer ratio from 0 up, plus `steps_offset`.
    Leading,
    /// Multiples of `N/n` down from `N`, minus one.
    Trailing,
}

/// Where a diffusers run ends (`final_sigmas_type`; DDIM's `set_alpha_to_one`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinalSigmas {
    /// At noise level 0 (`final_sigmas_type="zero"`, `set_alpha_to_one=True`): the last
    /// step is the Tweedie denoise `x̂₀` — in this crate a grid over the model's timesteps
    /// with [`denoise_final`](crate::sample::GridSampler::denoise_final) on.
    Zero,
    /// At training timestep 0 (`final_sigmas_type="sigma_min"`, `set_alpha_to_one=False`):
    /// one more grid time, `t = 1/N`.
    SigmaMin,
}

/// Which of diffusers' `set_timesteps` formulas a scheduler uses (they differ by family).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiffusersFamily {
    /// `DPMSolverMultistepScheduler`, `UniPCMultistepScheduler` (and DEIS): `n + 1`
    /// linspace points rounded with the last dropped; leading ratio `N // (n + 1)`.
    /// Default spacing linspace.
    Multistep,
    /// `DDIMScheduler`: `n` linspace points rounded; leading ratio `N // n`. Each step goes
    /// from `t` to `t − N // n`, which must be the next timestep here. Default spacing
    /// leading.
    Ddim,
    /// `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`, `HeunDiscreteScheduler`:
    /// `n` linspace points *not* rounded (fractional timesteps, noise levels interpolated
    /// linearly in `σ/α` between training timesteps); leading ratio `N // n`. Default
    /// spacing linspace.
    Euler,
}

/// The settings of a diffusers scheduler that fix its timesteps, turned into a
/// [`TimeGrid`] on the matching [`DiscreteVp`](crate::schedule::DiscreteVp) (see
/// [`DiffusersTimesteps::grid`]). Diffusers' training timestep `k ∈ [0, N − 1]` is this
/// crate's `t = (k + 1)/N`, where `α(t)² = ᾱ_k` exactly; a fractional `k` (Euler family)
/// has the noise level `σ/α` interpolated linearly between the neighbouring timesteps, as
/// diffusers does.
///
/// ```
/// use score_sde::grid::{DiffusersFamily, DiffusersTimesteps, FinalSigmas, TimestepSpacing};
/// use score_sde::schedule::DiscreteVp;
/// // DPMSolverMultistepScheduler's defaults at 10 steps: linspace, final sigma zero.
/// let cfg = DiffusersTimesteps::new(DiffusersFamily::Multistep, 10);
/// assert_eq!(cfg.timesteps().unwrap()[..3], [999.0, 899.0, 799.0]);
/// let vp = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
/// let grid = cfg.grid(&vp).unwrap();
/// assert_eq!(grid.steps(), 9); // 10 model calls: 9 steps and the final denoise
/// assert!(cfg.denoise_final());
/// assert_eq!(grid.times()[0], 1.0); // timestep 999 ↔ t = 1000/1000
/// // DDIM's default (leading) with the Stable Diffusion offset and set_alpha_to_one=False.
/// let ddim = DiffusersTimesteps::new(DiffusersFamily::Ddim, 10)
///     .steps_offset(1)
///     .final_sigmas(FinalSigmas::SigmaMin);
/// assert_eq!(ddim.timesteps().unwrap()[..2], [901.0, 801.0]);
/// assert_eq!(ddim.grid(&vp).unwrap().steps(), 10); // 901 → … → 1 → 0
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DiffusersTimesteps {
    /// The scheduler family (which formulas).
    pub family: DiffusersFamily,
    /// `num_inference_steps`.
    pub steps: usize,
    /// `num_train_timesteps` (`N`, 1000 by default).
    pub num_train_timesteps: usize,
    /// `timestep_spacing`.
    pub spacing: TimestepSpacing,
    /// `steps_offset` (added for leading spacing only, as diffusers).
    pub steps_offset: usize,
    /// `final_sigmas_type` / `set_alpha_to_one`.
    pub final_sigmas: FinalSigmas,
}

impl DiffusersTimesteps {
    /// The family's defaults (N = 1000, offset 0, final sigma zero; spacing linspace, or
    /// leading for DDIM) at `steps` inference steps.
    pub fn new(family: DiffusersFamily, steps: usize) -> Self {
        Self {
            family,
            steps,
            num_train_timesteps: 1000,
            spacing: match family {
                DiffusersFamily::Ddim => TimestepSpacing::Leading,
                _ => TimestepSpacing::Linspace,
            },
            steps_offset: 0,
            final_sigmas: FinalSigmas::Zero,
        }
    }
    /// Set `num_train_timesteps`.
    pub fn num_train_timesteps(mut self, n: usize) -> Self {
        self.num_train_timesteps = n;
        self
    }
    /// Set `timestep_spacing`.
    pub fn spacing(mut self, spacing: TimestepSpacing) -> Self {
        self.spacing = spacing;
        self
    }
    /// Set `steps_offset`.
    pub fn steps_offset(mut self, offset: usize) -> Self {
        self.steps_offset = offset;
        self
    }
    /// Set `final_sigmas_type` (DDIM: `Zero` is `set_alpha_to_one=True`).
    pub fn final_sigmas(mut self, last: FinalSigmas) -> Self {
        self.final_sigmas = last;
        self
    }
    /// Whether the run ends with the Tweedie denoise (final sigma zero): turn on
    /// [`denoise_final`](crate::sample::GridSampler::denoise_final).
    pub fn denoise_final(&self) -> bool {
        self.final_sigmas == FinalSigmas::Zero
    }

    /// diffusers' `scheduler.timesteps` after `set_timesteps(steps)`: strictly decreasing,
    /// inside `[0, N − 1]`.
    ///
    /// Errors: zero steps or training timesteps, more steps than training timesteps, an
    /// offset that pushes a timestep past `N − 1`.
    pub fn timesteps(&self) -> Result<Vec<f64>> {
        let (n, big_n) = (self.steps, self.num_train_timesteps);
        check_steps(n)?;
        if big_n == 0 {
            return Err(Error::param(
                "num_train_timesteps",
                0.0,
                "must be at least 1",
            ));
        }
        if n > big_n {
            return Err(Error::param(
                "steps",
                n as f64,
                "must not exceed num_train_timesteps",
            ));
        }
        // n + 1 linspace points (Multistep), n values: counted and sized before anything
        // is allocated (a count near usize::MAX would overflow or abort).
        let n1 = crate::check::add_count("diffusers timesteps (steps + 1)", n, 1)?;
        crate::check::allocation::<f64>("diffusers timesteps", n1)?;
        let nf = n as f64;
        let top = (big_n - 1) as f64;
        let rounded = |v: f64| v.round_ties_even();
        let mut ts: Vec<f64> = match (self.spacing, self.family) {
            (TimestepSpacing::Linspace, DiffusersFamily::Multistep) => (0..n)
                .map(|i| rounded(linspace_point(top, n1, n - i)))
                .collect(),
            (TimestepSpacing::Linspace, DiffusersFamily::Ddim) => (0..n)
                .map(|i| rounded(linspace_point(top, n, n - 1 - i)))
                .collect(),
            // float32 linspace, unrounded (EulerDiscreteScheduler and relatives).
            (TimestepSpacing::Linspace, _) => (0..n)
                .map(|i| linspace_point(top, n, n - 1 - i) as f32 as f64)
                .collect(),
            (TimestepSpacing::Leading, family) => {
                let ratio = if family == DiffusersFamily::Multistep {
                    big_n / (n + 1)
                } else {
                    big_n / n
                };
                (0..n)
                    // (n − 1 − i)·ratio ≤ N; an offset that overflows is past N − 1 anyway
                    // (saturated, refused below).
                    .map(|i| ((n - 1 - i) * ratio).saturating_add(self.steps_offset) as f64)
                    .collect()
            }
            (TimestepSpacing::Trailing, _) => {
                let ratio = big_n as f64 / nf;
                (0..n)
                    .map(|i| rounded(big_n as f64 - i as f64 * ratio) - 1.0)
                    .collect()
            }
        };
        if let Some(&first) = ts.first() {
            if first > top {
                return Err(Error::param(
                    "steps_offset",
                    self.steps_offset as f64,
                    "pushes the first timestep past num_train_timesteps - 1",
                ));
            }
        }
        ts.dedup();
        if ts.len() != n || ts.windows(2).any(|w| w[1] >= w[0]) || ts.iter().any(|&t| t < 0.0) {
            return Err(Error::param(
                "steps",
                nf,
                "diffusers' spacing gives repeated or negative timesteps at this step count",
            ));
        }
        Ok(ts)
    }

    /// The grid of this crate that runs diffusers' steps on `schedule` (the
    /// [`DiscreteVp`](crate::schedule::DiscreteVp) of the same β table, `N` knots): the
    /// timesteps mapped to `t`, plus `t = 1/N` when the run ends at
    /// [`FinalSigmas::SigmaMin`] and the last timestep is above 0. With
    /// [`FinalSigmas::Zero`] the last model call is the final denoise:
    /// set [`denoise_final`](crate::sample::GridSampler::denoise_final) (see
    /// [`DiffusersTimesteps::denoise_final`]). At least two times are needed (one step).
    ///
    /// Errors: those of [`DiffusersTimesteps::timesteps`]; a schedule with another `N`;
    /// DDIM steps that do not land on the next timestep (diffusers' DDIM with linspace
    /// spacing steps by `N // n` whatever the spacing; not a grid).
    pub fn grid<F: Real>(&self, schedule: &crate::schedule::DiscreteVp<F>) -> Result<TimeGrid<F>> {
        let big_n = self.num_train_timesteps;
        if schedule.len() != big_n {
            return Err(Error::shape(
                "DiscreteVp knots (= num_train_timesteps)",
                big_n,
                schedule.len(),
            ));
        }
        let mut ts = self.timesteps()?;
        if self.family == DiffusersFamily::Ddim {
            let ratio = (big_n / self.steps) as f64;
            if ts.windows(2).any(|w| w[0] - ratio != w[1]) {
                return Err(Error::Unsupported {
                    what: "diffusers DDIM timesteps",
                    reason: format!(
                        "DDIM steps from t to t - {ratio}, which is not the next timestep \
                         with this spacing and step count"
                    ),
                });
            }
        }
        if self.final_sigmas == FinalSigmas::SigmaMin && ts.last().is_some_and(|&t| t > 0.0) {
            ts.push(0.0);
        }
        // σ/α of training timestep k is √((1 − ᾱ_k)/ᾱ_k); knot k + 1 of the schedule.
        let acp = schedule.alphas_cumprod();
        let sig = |k: usize| -> F {
            let a = acp[k + 1];
            ((F::one() - a) / a).sqrt()
        };
        let nf = F::from_usize_lossy(big_n);
        let mut times = Vec::with_capacity(ts.len());
        for &k in &ts {
            let k0 = k.floor();
            let t = if k == k0 {
                F::lit(k + 1.0) / nf
            } else {
                let i = k0 as usize;
                let w = F::lit(k - k0);
                let s = sig(i) * (F::one() - w) + sig(i + 1) * w;
                schedule.t_of_log_snr(-s.ln())?
            };
            times.push(t);
        }
        TimeGrid::custom(schedule, times)
    }
}

/// numpy's `linspace(0, top, n)[j]`.
fn linspace_point(top: f64, n: usize, j: usize) -> f64 {
    if n == 1 {
        return 0.0;
    }
    if j == n - 1 {
        return top;
    }
    j as f64 * (top / (n - 1) as f64)
}
