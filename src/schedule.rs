//! Noise schedules: the path `α(t)`, `σ(t)` of a linear forward SDE.
//!
//! A linear SDE `dx = f(t) x dt + g(t) dw` has the Gaussian transition
//! `x_t = α(t) x_0 + σ(t) z` and is fixed by the two functions `α`, `σ`
//! (Kingma et al. 2021, "Variational Diffusion Models", eq. 1–3; Song et al. 2021, App. B):
//!
//! ```text
//! f(t) = d log α / dt          g(t)² = dσ²/dt − 2 f(t) σ(t)²          λ(t) = log(α/σ)
//! ```
//!
//! | schedule | α(t) | σ(t) | source |
//! |---|---|---|---|
//! | [`VpLinear`] | `exp(−¼t²(β₁−β₀) − ½tβ₀)` | `√(1−α²)` | Song et al. 2021, eq. 11 and 29 |
//! | [`VpCosine`] | `cos((t+s)/(1+s)·π/2) / cos(s/(1+s)·π/2)` | `√(1−α²)` | Nichol & Dhariwal 2021, eq. 17 |
//! | [`SubVp`] | as `VpLinear` | `1−α²` | Song et al. 2021, eq. 12 |
//! | [`Ve`] | `1` | `σ_min (σ_max/σ_min)^t` | Song et al. 2021, eq. 9 and 30 |
//! | [`Edm`] | `1` | `t` | Karras et al. 2022, Table 1 |
//! | [`DiscreteVp`] | `√ᾱ` interpolated (log-linear in t) | `√(1−α²)` | Ho et al. 2020; Lu et al. 2022, App. D |
//!
//! All schedules here have log-SNR `λ(t)` strictly decreasing in `t`, so
//! [`Schedule::t_of_log_snr`] is well defined; closed forms are used where they
//! exist and [`invert_decreasing`], a bracketing bisection, otherwise.

use crate::error::{Error, Result};
use crate::num::Real;
use std::fmt::Debug;

/// The noise path of a linear forward SDE: `x_t = α(t) x_0 + σ(t) z`.
///
/// Implementations give `α`, `σ`, the drift coefficient `f = d log α/dt`, the
/// squared diffusion `g² = dσ²/dt − 2fσ²`, and the time range `[t_min, T]`
/// inside which samplers work. Object safe: `Box<dyn Schedule<f64>>` works.
///
/// **Domain of the getters.** `alpha`, `sigma`, `f`, `g2`, `log_snr` and `noise_level` take
/// a finite `t ≥ 0` (the cosine schedule: `t < 1`, where `α` reaches 0). They stay plain
/// functions rather than returning `Result`: samplers call them several times per step, the
/// times they pass come from validated grids, and every public entry point that takes a
/// time from a user checks it first ([`Schedule::check_t`], `AnalyticScore`,
/// `GaussianMixture::diffuse`). Outside the domain the value is unspecified (NaN for a
/// VP schedule at `t < 0`, a negative `σ` for EDM), and debug builds stop with an
/// assertion naming the time. Call [`Schedule::check_t`] on a time of your own first.
///
/// The constructors ensure that on `[t_min, T]` the path is representable: `α(T)` is a
/// normal float (samplers divide by `α`), `σ(t_min)²` is a normal float (the score
/// `−ε/σ` and Tweedie's formula divide by `σ²`), and `σ(T)²`, `g(t)²` and `λ(t)` are finite.
///
/// ```
/// use score_sde::schedule::{Schedule, VpLinear};
/// let s = VpLinear::<f64>::default(); // β_min = 0.1, β_max = 20 (Song et al. 2021)
/// let t = 0.5;
/// // VP: α² + σ² = 1 and g² = β(t) = β_min + t (β_max − β_min)
/// assert!((s.alpha(t).powi(2) + s.sigma(t).powi(2) - 1.0).abs() < 1e-12);
/// assert!((s.g2(t) - (0.1 + 0.5 * 19.9)).abs() < 1e-12);
/// let lam = s.log_snr(t);
/// assert!((s.t_of_log_snr(lam).unwrap() - t).abs() < 1e-12);
/// ```
pub trait Schedule<F: Real>: Send + Sync + Debug {
    /// Signal scale `α(t)`.
    fn alpha(&self, t: F) -> F;
    /// Noise scale `σ(t)`.
    fn sigma(&self, t: F) -> F;
    /// Drift coefficient `f(t) = d log α / dt`.
    fn f(&self, t: F) -> F;
    /// Squared diffusion `g(t)² = dσ²/dt − 2 f(t) σ(t)²`.
    fn g2(&self, t: F) -> F;
    /// Time range `[t_min, T]` of sampling (and of validated grids).
    fn t_range(&self) -> (F, F);
    /// Log signal-to-noise ratio `λ(t) = log α(t) − log σ(t)`, strictly decreasing.
    fn log_snr(&self, t: F) -> F {
        self.alpha(t).ln() - self.sigma(t).ln()
    }
    /// The time `t` with `λ(t) = lambda`.
    ///
    /// The default inverts [`Schedule::log_snr`] by bisection over `[0, T]`
    /// ([`invert_decreasing`]); schedules with a closed form override it.
    /// Errors if `lambda` is not finite; the default also errors when `lambda` is not
    /// attained in `[0, T]` (a target a few ulps past `λ(T)` is `T`: see
    /// [`invert_decreasing`]), while the closed forms return the formula's natural
    /// extension (a `t` outside `[t_min, T]`, which grids clamp and validate).
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        let (_, t_max) = self.t_range();
        invert_decreasing(|t| self.log_snr(t), lambda, F::zero(), t_max)
    }
    /// The EDM noise level `σ(t)/α(t) = exp(−λ(t))` (Karras et al. 2022, eq. 4 with s = α).
    fn noise_level(&self, t: F) -> F {
        self.sigma(t) / self.alpha(t)
    }
    /// Check that `t` lies in [`Schedule::t_range`] (with the slack of [`check_time`],
    /// never below 0).
    fn check_t(&self, t: F) -> Result<()> {
        check_time(t, self.t_range())
    }
    /// The exact transition of the linear SDE from time `s` to a later time `t ≥ s`:
    /// `x_t | x_s ~ N(a x_s, v I)` with `a = α_t/α_s` and `v = σ_t² − a² σ_s²`
    /// (Kingma et al. 2021, eq. 33), written `(σ_t − a σ_s)(σ_t + a σ_s)` and clamped at 0
    /// against rounding. Returns `(a, v)`.
    ///
    /// The one source of the transition: [`LinearSde::transition`](crate::sde::LinearSde::transition),
    /// its `discretize`, the reverse-diffusion and ancestral predictors and the Langevin
    /// corrector's `α_i` all call it. Defined for `s ≤ t` (debug-asserted); for `s > t` the
    /// formula is not a transition.
    fn transition(&self, s: F, t: F) -> (F, F) {
        debug_assert!(
            s.partial_cmp(&t) != Some(std::cmp::Ordering::Greater),
            "transition from s = {s} to an earlier t = {t}"
        );
        let a = self.alpha(t) / self.alpha(s);
        let (ss, st) = (self.sigma(s), self.sigma(t));
        let v = (st - a * ss) * (st + a * ss);
        (a, v.max(F::zero()))
    }
}

/// Check that `t` lies in `[lo, hi]`, with a relative slack of a few ulps
/// (`8 ε max(|hi|, 1)`) so that grid end points computed in floating point pass: the one
/// time-range tolerance of the crate (schedules, grids, SDE spans). Times are never
/// negative: the slack does not reach below 0.
pub fn check_time<F: Real>(t: F, (lo, hi): (F, F)) -> Result<()> {
    let slack = F::lit(8.0) * F::EPS * hi.abs().max(F::one());
    if !t.is_finite() || t < F::zero() || t < lo - slack || t > hi + slack {
        return Err(Error::TimeOutOfRange {
            t: t.as_f64(),
            min: lo.as_f64(),
            max: hi.as_f64(),
        });
    }
    Ok(())
}

/// Variance-preserving schedules (`α² + σ² = 1`) written from `log α` without
/// cancellation near `α = 1` (Kingma et al. 2021, App. D; one copy for every VP
/// schedule: linear, cosine, discrete).
mod vp {
    use super::softplus;
    use crate::num::Real;
    /// `σ = √(1 − α²) = √(−expm1(2 log α))`.
    pub(super) fn sigma<F: Real>(log_alpha: F) -> F {
        (-(F::lit(2.0) * log_alpha).exp_m1()).sqrt()
    }
    /// `λ = log α − ½ log(1 − α²)`.
    pub(super) fn log_snr<F: Real>(log_alpha: F) -> F {
        log_alpha - F::lit(0.5) * (-(F::lit(2.0) * log_alpha).exp_m1()).ln()
    }
    /// The inverse: `α² = sigmoid(2λ)`, so `log α = −½ softplus(−2λ)`.
    pub(super) fn log_alpha_of_log_snr<F: Real>(lambda: F) -> F {
        -F::lit(0.5) * softplus(-F::lit(2.0) * lambda)
    }
}

macro_rules! forward_schedule {
    ($($ty:ty),*) => {$(
        impl<F: Real, S: Schedule<F> + ?Sized> Schedule<F> for $ty {
            fn alpha(&self, t: F) -> F { (**self).alpha(t) }
            fn sigma(&self, t: F) -> F { (**self).sigma(t) }
            fn f(&self, t: F) -> F { (**self).f(t) }
            fn g2(&self, t: F) -> F { (**self).g2(t) }
            fn t_range(&self) -> (F, F) { (**self).t_range() }
            fn log_snr(&self, t: F) -> F { (**self).log_snr(t) }
            fn t_of_log_snr(&self, lambda: F) -> Result<F> { (**self).t_of_log_snr(lambda) }
            fn noise_level(&self, t: F) -> F { (**self).noise_level(t) }
            fn transition(&self, s: F, t: F) -> (F, F) { (**self).transition(s, t) }
        }
    )*};
}
forward_schedule!(&S, Box<S>, std::sync::Arc<S>);

/// Solve `h(t) = target` for a strictly decreasing `h` on `[lo, hi]` by bisection.
///
/// Robust by construction: it keeps a sign-changing bracket, needs no derivative,
/// and stops when the bracket can no longer be halved in `F` (at most 200 halvings).
/// `h(lo)` may be `+∞` (as `λ(0)` is for VP schedules).
///
/// A target beyond an end value by no more than rounding, `64 ε max(1, |target|)`, gives
/// that end point: callers compute their targets from the same schedule (EDM's churn
/// inverts `−ln(σ/α)` of a noise level capped at `σ(T)/α(T)`), and `−ln(σ/α)` may land a
/// few ulps past `λ(T) = ln α − ln σ` — that is `T`, not a failure. Farther out is
/// [`Error::NoConvergence`].
///
/// ```
/// use score_sde::schedule::invert_decreasing;
/// let t = invert_decreasing(|t: f64| -t.powi(3), -0.125, 0.0, 1.0).unwrap();
/// assert!((t - 0.5).abs() < 1e-15);
/// // Two ulps beyond h(1) = −1 is the end point; 1e-6 beyond is not attained.
/// let below = -1.0 - 2.0 * f64::EPSILON;
/// assert_eq!(invert_decreasing(|t: f64| -t.powi(3), below, 0.0, 1.0).unwrap(), 1.0);
/// assert!(invert_decreasing(|t: f64| -t.powi(3), -1.000001, 0.0, 1.0).is_err());
/// ```
pub fn invert_decreasing<F: Real>(h: impl Fn(F) -> F, target: F, lo: F, hi: F) -> Result<F> {
    if !target.is_finite() {
        return Err(Error::param("log_snr", target.as_f64(), "must be finite"));
    }
    let (mut a, mut b) = (lo, hi);
    let (ha, hb) = (h(a), h(b));
    let slack = F::lit(64.0) * F::EPS * target.abs().max(F::one());
    if hb > target && hb - target <= slack {
        return Ok(hi);
    }
    if ha < target && target - ha <= slack {
        return Ok(lo);
    }
    // h decreasing: need h(a) >= target >= h(b).
    if ha.is_nan() || hb.is_nan() || ha < target || hb > target {
        return Err(Error::NoConvergence {
            what: "log-SNR inversion",
            reason: format!(
                "target {:?} is not bracketed by h({:?}) = {:?} and h({:?}) = {:?}",
                target.as_f64(),
                a.as_f64(),
                ha.as_f64(),
                b.as_f64(),
                hb.as_f64()
            ),
        });
    }
    for _ in 0..200 {
        let m = a + (b - a) * F::lit(0.5);
        if m <= a || m >= b {
            break;
        }
        let hm = h(m);
        if hm == target {
            return Ok(m);
        }
        if hm > target {
            a = m;
        } else {
            b = m;
        }
    }
    Ok(a + (b - a) * F::lit(0.5))
}

/// `Ok(t)` if the closed-form inverse log-SNR gave a finite time, else an error naming the
/// log-SNR (a target far outside the schedule's range, e.g. `λ = −1e300` for EDM's
/// `t = e^{−λ}`).
fn finite_time<F: Real>(lambda: F, t: F) -> Result<F> {
    if t.is_finite() {
        Ok(t)
    } else {
        Err(Error::param(
            "log_snr",
            lambda.as_f64(),
            "its time t(λ) overflows the float type (far outside the schedule's range)",
        ))
    }
}

/// Error unless `t` is finite and in `[0, T]` (with `check_t`'s relative slack at `T`):
/// the times at which exact marginals and network conversions are defined (`t_min` is
/// where sampling stops, not where the process starts). Named after what it bounds.
pub(crate) fn check_t_from_zero<F: Real>(s: &dyn Schedule<F>, t: F) -> Result<()> {
    let (_, hi) = s.t_range();
    if !t.is_finite() || t < F::zero() || t > hi * (F::one() + F::lit(8.0) * F::EPS) {
        return Err(Error::TimeOutOfRange {
            t: t.as_f64(),
            min: 0.0,
            max: hi.as_f64(),
        });
    }
    Ok(())
}

/// The getters' domain (see [`Schedule`]): a finite `t ≥ 0`, asserted in debug builds.
#[inline(always)]
fn debug_t<F: Real>(t: F) {
    debug_assert!(
        t.is_finite() && t >= F::zero(),
        "schedule evaluated at t = {t:?}, outside its domain (finite t ≥ 0); \
         check the time with Schedule::check_t first"
    );
}

/// Error unless the path of `s` is representable on its range: `α(T)` a normal float,
/// `σ(t_min)²` a normal float, `σ(T)²`, `g²` and `λ` finite at both ends (every schedule here
/// has `α` decreasing and `σ`, `g²/σ²`-type terms monotone in `t`, so the ends bound the range).
/// `lo_name`/`hi_name` name the constructor parameters that set the two ends.
fn check_path<F: Real>(
    s: &dyn Schedule<F>,
    lo_name: &'static str,
    hi_name: &'static str,
) -> Result<()> {
    let (lo, hi) = s.t_range();
    let tiny = F::min_positive_value();
    let a_hi = s.alpha(hi);
    if !(a_hi.is_finite() && a_hi >= tiny) {
        return Err(Error::param(
            hi_name,
            hi.as_f64(),
            "α(T) underflows below the smallest normal float on this range (samplers divide by α)",
        ));
    }
    let s_lo = s.sigma(lo);
    if !(s_lo.is_finite() && s_lo * s_lo >= tiny) {
        return Err(Error::param(
            lo_name,
            lo.as_f64(),
            "σ(t_min)² underflows below the smallest normal float (the score −ε/σ and Tweedie's \
             formula divide by σ²)",
        ));
    }
    let s_hi = s.sigma(hi);
    if !(s_hi * s_hi).is_finite() || !s.noise_level(hi).is_finite() {
        return Err(Error::param(
            hi_name,
            hi.as_f64(),
            "σ(T)² or σ(T)/α(T) overflows the float type on this range",
        ));
    }
    for (t, name) in [(lo, lo_name), (hi, hi_name)] {
        let ok = s.alpha(t).is_finite()
            && s.g2(t).is_finite()
            && s.f(t).is_finite()
            && s.log_snr(t).is_finite();
        if !ok {
            return Err(Error::param(
                name,
                t.as_f64(),
                "α, f, g² or the log-SNR is not finite at this end of the time range",
            ));
        }
    }
    Ok(())
}

/// `log(1 + eˣ)` without overflow or cancellation.
#[inline]
pub(crate) fn softplus<F: Real>(x: F) -> F {
    if x > F::zero() {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn check_range<F: Real>(t_min: F, t_max: F) -> Result<()> {
    if !(t_min.is_finite() && t_min > F::zero()) {
        return Err(Error::param(
            "t_min",
            t_min.as_f64(),
            "must be finite and > 0",
        ));
    }
    if !(t_max.is_finite() && t_max > t_min) {
        return Err(Error::param(
            "t_max",
            t_max.as_f64(),
            "must be finite and > t_min",
        ));
    }
    Ok(())
}

use crate::check::positive;

// ---------------------------------------------------------------- VP linear

/// Variance-preserving schedule with linear `β(t) = β_min + t (β_max − β_min)`
/// (Song et al. 2021, eq. 11; the continuous limit of DDPM, Ho et al. 2020).
///
/// `log α(t) = −¼ t² (β_max − β_min) − ½ t β_min`, `σ = √(1 − α²)`,
/// `f = −½ β(t)`, `g² = β(t)`. Defaults: `β_min = 0.1`, `β_max = 20`, `t ∈ [10⁻³, 1]`
/// (score_sde's `sampling_eps`).
///
/// ```
/// use score_sde::schedule::{Schedule, VpLinear};
/// let s = VpLinear::new(0.1_f32, 20.0).unwrap();
/// assert!((s.alpha(1.0) - (-0.25_f32 * 19.9 - 0.05).exp()).abs() < 1e-6);
/// assert!(VpLinear::new(-1.0_f64, 20.0).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpLinear<F> {
    beta_min: F,
    beta_max: F,
    t_min: F,
    t_max: F,
}

impl<F: Real> VpLinear<F> {
    /// A linear-β VP schedule on `[10⁻³, 1]`; needs `0 ≤ β_min ≤ β_max`, `β_max > 0`.
    pub fn new(beta_min: F, beta_max: F) -> Result<Self> {
        if !(beta_min.is_finite() && beta_min >= F::zero()) {
            return Err(Error::param(
                "beta_min",
                beta_min.as_f64(),
                "must be finite and >= 0",
            ));
        }
        if !(beta_max.is_finite() && beta_max >= beta_min && beta_max > F::zero()) {
            return Err(Error::param(
                "beta_max",
                beta_max.as_f64(),
                "must be finite, > 0 and >= beta_min",
            ));
        }
        let s = Self {
            beta_min,
            beta_max,
            t_min: F::lit(1e-3),
            t_max: F::one(),
        };
        check_path(&s, "beta_min", "beta_max")?;
        Ok(s)
    }
    /// Replace the time range `[t_min, T]` (`0 < t_min < T`, and the path representable on
    /// it: see [`Schedule`]).
    pub fn with_t_range(mut self, t_min: F, t_max: F) -> Result<Self> {
        check_range(t_min, t_max)?;
        self.t_min = t_min;
        self.t_max = t_max;
        check_path(&self, "t_min", "t_max")?;
        Ok(self)
    }
    /// `β(t) = β_min + t (β_max − β_min)`.
    pub fn beta(&self, t: F) -> F {
        debug_t(t);
        self.beta_min + t * (self.beta_max - self.beta_min)
    }
    /// `log α(t) = −¼ t² (β_max − β_min) − ½ t β_min`.
    pub fn log_alpha(&self, t: F) -> F {
        debug_t(t);
        -F::lit(0.25) * t * t * (self.beta_max - self.beta_min) - F::lit(0.5) * t * self.beta_min
    }
    /// Solve `−2 log α(t) = c` for `t ≥ 0` (the stable root of `½Δβ t² + β_min t − c = 0`).
    fn t_of_neg2_log_alpha(&self, c: F) -> F {
        let d = self.beta_max - self.beta_min;
        let b = self.beta_min;
        F::lit(2.0) * c / (b + (b * b + F::lit(2.0) * d * c).sqrt())
    }
}

impl<F: Real> Default for VpLinear<F> {
    fn default() -> Self {
        Self {
            beta_min: F::lit(0.1),
            beta_max: F::lit(20.0),
            t_min: F::lit(1e-3),
            t_max: F::one(),
        }
    }
}

impl<F: Real> Schedule<F> for VpLinear<F> {
    fn alpha(&self, t: F) -> F {
        self.log_alpha(t).exp()
    }
    fn sigma(&self, t: F) -> F {
        vp::sigma(self.log_alpha(t))
    }
    fn f(&self, t: F) -> F {
        -F::lit(0.5) * self.beta(t)
    }
    fn g2(&self, t: F) -> F {
        self.beta(t)
    }
    fn t_range(&self) -> (F, F) {
        (self.t_min, self.t_max)
    }
    fn log_snr(&self, t: F) -> F {
        vp::log_snr(self.log_alpha(t))
    }
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        if !lambda.is_finite() {
            return Err(Error::param("log_snr", lambda.as_f64(), "must be finite"));
        }
        finite_time(
            lambda,
            self.t_of_neg2_log_alpha(-F::lit(2.0) * vp::log_alpha_of_log_snr(lambda)),
        )
    }
}

// ---------------------------------------------------------------- VP cosine

/// Variance-preserving cosine schedule (Nichol & Dhariwal 2021, eq. 17), in continuous time.
///
/// `α(t) = cos(θ(t)) / cos(θ(0))` with `θ(t) = (t + s)/(1 + s) · π/2`, `s = 0.008`;
/// `σ = √(1 − α²)`, `β(t) = −2f = π/(1+s) · tan θ(t)`, `g² = β`.
/// `β` blows up at `t = 1`; as Nichol & Dhariwal clip `β ≤ 0.999` per step of 1000 (so the
/// continuous rate `β(t) ≤ 999`), the default end time is the `T` with `β(T) = 999`
/// (≈ 0.997998; DPM-Solver's `cosine_t_max` with `cosine_beta_max = 999`).
///
/// ```
/// use score_sde::schedule::{Schedule, VpCosine};
/// let s = VpCosine::<f64>::default();
/// let (_, t_max) = s.t_range();
/// assert!((s.g2(t_max) - 999.0).abs() < 1e-6);
/// assert!((s.alpha(0.0) - 1.0).abs() < 1e-15);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VpCosine<F> {
    s: F,
    t_min: F,
    t_max: F,
}

impl<F: Real> VpCosine<F> {
    /// A cosine schedule with offset `s > 0`, clipped at `β(T) = beta_max`; `t_min = 10⁻³`.
    pub fn new(s: F, beta_max: F) -> Result<Self> {
        positive("s", s)?;
        positive("beta_max", beta_max)?;
        let half_pi = F::lit(std::f64::consts::FRAC_PI_2);
        let one_s = F::one() + s;
        // β(T) = π/(1+s) tan θ(T) = beta_max  ⇒  θ(T) = atan(beta_max (1+s)/π).
        let theta = (beta_max * one_s / F::lit(std::f64::consts::PI)).atan();
        let t_max = theta / half_pi * one_s - s;
        let t_min = F::lit(1e-3);
        check_range(t_min, t_max)?;
        if t_max >= F::one() {
            // β_max so large that θ(T) rounds to π/2: α(T) = 0.
            return Err(Error::param(
                "beta_max",
                beta_max.as_f64(),
                "too large: T rounds to 1, where the cosine schedule's α is 0",
            ));
        }
        let sch = Self { s, t_min, t_max };
        check_path(&sch, "s", "beta_max")?;
        Ok(sch)
    }
    /// Replace the time range; `T` must stay below 1, where `α` reaches 0 (and the path
    /// representable on the range: see [`Schedule`]).
    pub fn with_t_range(mut self, t_min: F, t_max: F) -> Result<Self> {
        check_range(t_min, t_max)?;
        if t_max >= F::one() {
            return Err(Error::param(
                "t_max",
                t_max.as_f64(),
                "must be < 1 for the cosine schedule",
            ));
        }
        self.t_min = t_min;
        self.t_max = t_max;
        check_path(&self, "t_min", "t_max")?;
        Ok(self)
    }
    fn theta(&self, t: F) -> F {
        debug_t(t);
        debug_assert!(
            t < F::one(),
            "cosine schedule evaluated at t = {t:?} ≥ 1, where α = 0"
        );
        (t + self.s) / (F::one() + self.s) * F::lit(std::f64::consts::FRAC_PI_2)
    }
    fn log_alpha(&self, t: F) -> F {
        self.theta(t).cos().ln() - self.theta(F::zero()).cos().ln()
    }
}

impl<F: Real> Default for VpCosine<F> {
    fn default() -> Self {
        // Constants are valid, so this cannot fail; fall back to a fixed T if it ever did.
        Self::new(F::lit(0.008), F::lit(999.0)).unwrap_or(Self {
            s: F::lit(0.008),
            t_min: F::lit(1e-3),
            t_max: F::lit(0.997_998),
        })
    }
}

impl<F: Real> Schedule<F> for VpCosine<F> {
    fn alpha(&self, t: F) -> F {
        self.log_alpha(t).exp()
    }
    fn sigma(&self, t: F) -> F {
        vp::sigma(self.log_alpha(t))
    }
    fn f(&self, t: F) -> F {
        -self.theta(t).tan() * F::lit(std::f64::consts::FRAC_PI_2) / (F::one() + self.s)
    }
    fn g2(&self, t: F) -> F {
        -F::lit(2.0) * self.f(t)
    }
    fn t_range(&self) -> (F, F) {
        (self.t_min, self.t_max)
    }
    fn log_snr(&self, t: F) -> F {
        vp::log_snr(self.log_alpha(t))
    }
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        if !lambda.is_finite() {
            return Err(Error::param("log_snr", lambda.as_f64(), "must be finite"));
        }
        let log_alpha = vp::log_alpha_of_log_snr(lambda);
        let c = (log_alpha + self.theta(F::zero()).cos().ln()).exp();
        let theta = c.min(F::one()).acos();
        finite_time(
            lambda,
            theta / F::lit(std::f64::consts::FRAC_PI_2) * (F::one() + self.s) - self.s,
        )
    }
}

// ---------------------------------------------------------------- sub-VP

/// Sub-VP schedule (Song et al. 2021, eq. 12): `α` of [`VpLinear`], `σ(t) = 1 − α(t)²`.
///
/// `f = −½ β(t)`, `g² = β(t) (1 − α⁴) = β(t)(1 − e^{−2∫β})` — score_sde's
/// `subVPSDE.sde` diffusion. Its variance is below the VP one at every `t`.
///
/// ```
/// use score_sde::schedule::{Schedule, SubVp, VpLinear};
/// let (s, v) = (SubVp::<f64>::default(), VpLinear::<f64>::default());
/// assert!(s.sigma(0.3) < v.sigma(0.3));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SubVp<F: Real> {
    vp: VpLinear<F>,
}

impl<F: Real> SubVp<F> {
    /// A sub-VP schedule with linear `β` (see [`VpLinear::new`]).
    pub fn new(beta_min: F, beta_max: F) -> Result<Self> {
        let s = Self {
            vp: VpLinear::new(beta_min, beta_max)?,
        };
        // σ = 1 − α² is smaller than VP's √(1 − α²): its own check at t_min.
        check_path(&s, "beta_min", "beta_max")?;
        Ok(s)
    }
    /// Replace the time range `[t_min, T]` (the path representable on it: see [`Schedule`]).
    pub fn with_t_range(self, t_min: F, t_max: F) -> Result<Self> {
        let s = Self {
            vp: self.vp.with_t_range(t_min, t_max)?,
        };
        check_path(&s, "t_min", "t_max")?;
        Ok(s)
    }
}

impl<F: Real> Schedule<F> for SubVp<F> {
    fn alpha(&self, t: F) -> F {
        self.vp.alpha(t)
    }
    fn sigma(&self, t: F) -> F {
        -(F::lit(2.0) * self.vp.log_alpha(t)).exp_m1()
    }
    fn f(&self, t: F) -> F {
        self.vp.f(t)
    }
    fn g2(&self, t: F) -> F {
        self.vp.beta(t) * -(F::lit(4.0) * self.vp.log_alpha(t)).exp_m1()
    }
    fn t_range(&self) -> (F, F) {
        self.vp.t_range()
    }
    fn log_snr(&self, t: F) -> F {
        let la = self.vp.log_alpha(t);
        la - (-(F::lit(2.0) * la).exp_m1()).ln()
    }
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        if !lambda.is_finite() {
            return Err(Error::param("log_snr", lambda.as_f64(), "must be finite"));
        }
        // With σ = 1 − α² and α = e^λ σ: e^{2λ} σ² + σ − 1 = 0, σ = 2/(1 + √(1 + 4e^{2λ})),
        // written without overflow for either sign of λ. Then −2 log α = −log1p(−σ) while
        // σ < ½; for σ → 1 that cancels (1 − σ = α² is tiny), so use α = e^λ σ instead:
        // −2 log α = −2λ − 2 log σ, with no cancellation there.
        let two = F::lit(2.0);
        let sig = if lambda <= F::zero() {
            two / (F::one() + (F::one() + F::lit(4.0) * (two * lambda).exp()).sqrt())
        } else {
            let e = (-lambda).exp();
            two * e / (e + (e * e + F::lit(4.0)).sqrt())
        };
        let neg2_log_alpha = if sig < F::lit(0.5) {
            -(-sig).ln_1p()
        } else {
            -two * (lambda + sig.ln())
        };
        finite_time(lambda, self.vp.t_of_neg2_log_alpha(neg2_log_alpha))
    }
}

// ---------------------------------------------------------------- VE

/// Variance-exploding schedule of SMLD / NCSN (Song et al. 2021, eq. 9 and 30).
///
/// `α = 1`, `σ(t) = σ_min (σ_max/σ_min)^t`, `f = 0`, `g² = dσ²/dt = 2σ² log(σ_max/σ_min)`.
/// Defaults `σ_min = 0.01`, `σ_max = 50`, `t ∈ [10⁻⁵, 1]` (score_sde's VE `sampling_eps`).
///
/// ```
/// use score_sde::schedule::{Schedule, Ve};
/// let s = Ve::<f64>::default();
/// assert!((s.sigma(1.0) - 50.0).abs() < 1e-12);
/// assert_eq!(s.alpha(0.7), 1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ve<F> {
    sigma_min: F,
    sigma_max: F,
    t_min: F,
    t_max: F,
}

impl<F: Real> Ve<F> {
    /// A VE schedule with `0 < σ_min < σ_max` on `[10⁻⁵, 1]`.
    pub fn new(sigma_min: F, sigma_max: F) -> Result<Self> {
        positive("sigma_min", sigma_min)?;
        if !(sigma_max.is_finite() && sigma_max > sigma_min) {
            return Err(Error::param(
                "sigma_max",
                sigma_max.as_f64(),
                "must be finite and > sigma_min",
            ));
        }
        let s = Self {
            sigma_min,
            sigma_max,
            t_min: F::lit(1e-5),
            t_max: F::one(),
        };
        // σ(t_min)² and σ(T)² = σ_max² must be representable (Ve::new(1e-300, 1e300) is not).
        check_path(&s, "sigma_min", "sigma_max")?;
        Ok(s)
    }
    /// Replace the time range `[t_min, T]` (the path representable on it: see [`Schedule`]).
    pub fn with_t_range(mut self, t_min: F, t_max: F) -> Result<Self> {
        check_range(t_min, t_max)?;
        self.t_min = t_min;
        self.t_max = t_max;
        check_path(&self, "t_min", "t_max")?;
        Ok(self)
    }
    /// `σ_max`, the scale of score_sde's VE prior `N(0, σ_max² I)`.
    pub fn sigma_max(&self) -> F {
        self.sigma_max
    }
    fn log_ratio(&self) -> F {
        (self.sigma_max / self.sigma_min).ln()
    }
}

impl<F: Real> Default for Ve<F> {
    fn default() -> Self {
        Self {
            sigma_min: F::lit(0.01),
            sigma_max: F::lit(50.0),
            t_min: F::lit(1e-5),
            t_max: F::one(),
        }
    }
}

impl<F: Real> Schedule<F> for Ve<F> {
    fn alpha(&self, _t: F) -> F {
        F::one()
    }
    fn sigma(&self, t: F) -> F {
        debug_t(t);
        (self.sigma_min.ln() + t * self.log_ratio()).exp()
    }
    fn f(&self, _t: F) -> F {
        F::zero()
    }
    fn g2(&self, t: F) -> F {
        let s = self.sigma(t);
        F::lit(2.0) * s * s * self.log_ratio()
    }
    fn t_range(&self) -> (F, F) {
        (self.t_min, self.t_max)
    }
    fn log_snr(&self, t: F) -> F {
        debug_t(t);
        -(self.sigma_min.ln() + t * self.log_ratio())
    }
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        if !lambda.is_finite() {
            return Err(Error::param("log_snr", lambda.as_f64(), "must be finite"));
        }
        finite_time(lambda, (-lambda - self.sigma_min.ln()) / self.log_ratio())
    }
}

// ---------------------------------------------------------------- EDM

/// The EDM schedule of Karras et al. 2022 (Table 1): `α = 1`, `σ(t) = t`.
///
/// `f = 0`, `g² = 2t`, `λ = −log t`. Defaults `t ∈ [0.002, 80]` (the paper's σ_min, σ_max).
///
/// ```
/// use score_sde::schedule::{Edm, Schedule};
/// let s = Edm::<f64>::default();
/// assert_eq!(s.sigma(3.0), 3.0);
/// assert!((s.t_of_log_snr(s.log_snr(3.0)).unwrap() - 3.0).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Edm<F> {
    sigma_min: F,
    sigma_max: F,
}

impl<F: Real> Edm<F> {
    /// An EDM schedule with `0 < σ_min < σ_max` as its time range.
    pub fn new(sigma_min: F, sigma_max: F) -> Result<Self> {
        positive("sigma_min", sigma_min)?;
        if !(sigma_max.is_finite() && sigma_max > sigma_min) {
            return Err(Error::param(
                "sigma_max",
                sigma_max.as_f64(),
                "must be finite and > sigma_min",
            ));
        }
        let s = Self {
            sigma_min,
            sigma_max,
        };
        check_path(&s, "sigma_min", "sigma_max")?;
        Ok(s)
    }
}

impl<F: Real> Default for Edm<F> {
    fn default() -> Self {
        Self {
            sigma_min: F::lit(0.002),
            sigma_max: F::lit(80.0),
        }
    }
}

impl<F: Real> Schedule<F> for Edm<F> {
    fn alpha(&self, _t: F) -> F {
        F::one()
    }
    fn sigma(&self, t: F) -> F {
        debug_t(t);
        t
    }
    fn f(&self, _t: F) -> F {
        F::zero()
    }
    fn g2(&self, t: F) -> F {
        debug_t(t);
        F::lit(2.0) * t
    }
    fn t_range(&self) -> (F, F) {
        (self.sigma_min, self.sigma_max)
    }
    fn log_snr(&self, t: F) -> F {
        debug_t(t);
        -t.ln()
    }
    fn t_of_log_snr(&self, lambda: F) -> Result<F> {
        if !lambda.is_finite() {
            return Err(Error::param("log_snr", lambda.as_f64(), "must be finite"));
        }
        finite_time(lambda, (-lambda).exp())
    }
}

// ---------------------------------------------------------------- discrete DDPM table

/// A discrete DDPM schedule (Ho et al. 2020) from a table `β_1 … β_N`, in continuous time.
///
/// `ᾱ_k = ∏_{j ≤ k} (1 − β_j)` sits at `t_k = k/N` (with `ᾱ_0 = 1` at `t = 0`);
/// `log α = ½ log ᾱ` is interpolated linearly in `t` between knots, as DPM-Solver's
/// discrete `NoiseScheduleVP` does (Lu et al. 2022, App. D). So `f` is piecewise constant,
/// `σ = √(1 − α²)` and `g² = −2f`. diffusers' timestep index `i` (0-based) is `t = (i+1)/N`.
/// The time range is `[1/N, 1]`; `λ⁻¹` uses the bracketing root-finder.
///
/// ```
/// use score_sde::schedule::{DiscreteVp, Schedule};
/// let s = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
/// // ᾱ at the first knot is 1 − β_1.
/// assert!((s.alpha(1e-3).powi(2) - (1.0 - 1e-4)).abs() < 1e-12);
/// let t = s.t_of_log_snr(s.log_snr(0.42)).unwrap();
/// assert!((t - 0.42).abs() < 1e-9);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DiscreteVp<F> {
    /// `log α_k` at `t_k = k/N`, `k = 0..=N` (`log α_0 = 0`).
    log_alpha: Vec<F>,
}

impl<F: Real> DiscreteVp<F> {
    /// From a β table; every `β_j` must lie in `(0, 1)`.
    pub fn from_betas(betas: &[F]) -> Result<Self> {
        if betas.is_empty() {
            return Err(Error::Empty { what: "beta table" });
        }
        let len = crate::check::add_count("DDPM table (N + 1 knots)", betas.len(), 1)?;
        let mut log_alpha = crate::check::vec_with_capacity("DDPM log-α table", len)?;
        log_alpha.push(F::zero());
        let mut acc = F::zero();
        for &b in betas {
            if !(b.is_finite() && b > F::zero() && b < F::one()) {
                return Err(Error::param(
                    "beta",
                    b.as_f64(),
                    "every beta must lie in (0, 1)",
                ));
            }
            acc += F::lit(0.5) * (-b).ln_1p();
            log_alpha.push(acc);
        }
        let s = Self { log_alpha };
        // ᾱ_N = Π (1 − β_j) must not underflow, nor σ(1/N)² = β_1.
        check_path(&s, "beta", "beta")?;
        Ok(s)
    }
    /// Ho et al. 2020's table: `β_j` linear from `beta_start` to `beta_end` over `n` steps
    /// (`n = 1000`, `10⁻⁴`, `0.02` in the paper and in diffusers' `beta_schedule="linear"`).
    pub fn ddpm_linear(n: usize, beta_start: F, beta_end: F) -> Result<Self> {
        if n == 0 {
            return Err(Error::param("n", 0.0, "must be at least 1"));
        }
        // The table and its cumulative log-α (n + 1 entries) are allocated only after the
        // counts are checked.
        crate::check::add_count("DDPM table (n + 1 knots)", n, 1)?;
        let mut betas = crate::check::vec_with_capacity("DDPM beta table", n)?;
        betas.extend((0..n).map(|j| {
            let w = if n == 1 {
                F::zero()
            } else {
                F::from_usize_lossy(j) / F::from_usize_lossy(n - 1)
            };
            beta_start + w * (beta_end - beta_start)
        }));
        Self::from_betas(&betas)
    }
    /// Number of discrete steps `N`.
    pub fn len(&self) -> usize {
        self.log_alpha.len() - 1
    }
    /// Always false: a table has at least one step.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// `ᾱ_k = α(k/N)²` for `k = 0..=N`.
    pub fn alphas_cumprod(&self) -> Vec<F> {
        self.log_alpha
            .iter()
            .map(|&l| (F::lit(2.0) * l).exp())
            .collect()
    }
    /// Segment index `k ∈ 1..=N` with `t ∈ [t_{k−1}, t_k]`, and the knot spacing `N`.
    fn segment(&self, t: F) -> (usize, F) {
        debug_t(t);
        let n = self.len();
        let nf = F::from_usize_lossy(n);
        let pos = (t * nf).ceil();
        let k = pos.to_usize().unwrap_or(0).clamp(1, n);
        (k, nf)
    }
    fn log_alpha_at(&self, t: F) -> F {
        let (k, nf) = self.segment(t);
        let (a, b) = (self.log_alpha[k - 1], self.log_alpha[k]);
        let w = t * nf - F::from_usize_lossy(k - 1);
        a + w * (b - a)
    }
}

impl<F: Real> Schedule<F> for DiscreteVp<F> {
    fn alpha(&self, t: F) -> F {
        self.log_alpha_at(t).exp()
    }
    fn sigma(&self, t: F) -> F {
        vp::sigma(self.log_alpha_at(t))
    }
    fn f(&self, t: F) -> F {
        let (k, nf) = self.segment(t);
        (self.log_alpha[k] - self.log_alpha[k - 1]) * nf
    }
    fn g2(&self, t: F) -> F {
        -F::lit(2.0) * self.f(t)
    }
    fn t_range(&self) -> (F, F) {
        (F::one() / F::from_usize_lossy(self.len()), F::one())
    }
    fn log_snr(&self, t: F) -> F {
        vp::log_snr(self.log_alpha_at(t))
    }
}
