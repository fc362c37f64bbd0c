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
use crate::float::Real;
use crate::schedule::Schedule;

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
    /// The steps as `(t_from, t_to)` pairs.
    pub fn pairs(&self) -> impl Iterator<Item = (F, F)> + '_ {
        self.times.windows(2).map(|w| (w[0], w[1]))
    }
}
