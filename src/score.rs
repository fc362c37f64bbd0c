//! Score models `s(x, t) ≈ ∇ₓ log p_t(x)`, closures, and parameterisation adapters.
//!
//! Networks rarely output the score itself. With `x = α x̂₀ + σ ε` the four usual
//! targets convert into each other through the schedule (Song et al. 2021, eq. 7;
//! Ho et al. 2020; Karras et al. 2022; Salimans & Ho 2022, §4 for `v = α ε − σ x₀`):
//!
//! ```text
//! s = −ε/σ = (α x̂₀ − x)/σ²          ε = (α v + σ x)/(α² + σ²)
//! ```
//!
//! [`Parameterized`] wraps a [`Network`] predicting ε, x̂₀ or v into a [`ScoreModel`].

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::schedule::Schedule;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Zip, s};
use std::fmt;

/// A model of the score `∇ₓ log p_t(x)` for batches (rows are samples).
///
/// Implement [`ScoreModel::score`]; the rest have defaults. Object safe, and
/// implemented for `&M`, `Box<M>` and `Arc<M>`.
///
/// ```
/// use score_sde::{ScoreModel, ScoreFn, Result};
/// use ndarray::{array, Array2, ArrayView2, ArrayViewMut2};
/// // The score of N(0, I) diffused by a VE process: −x / (1 + t²).
/// let model = ScoreFn::new(|x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
///     out.assign(&(&x * (-1.0 / (1.0 + t * t))));
///     Ok(())
/// });
/// let x = array![[2.0, 0.0]];
/// let mut s = Array2::zeros((1, 2));
/// model.score(x.view(), 1.0, s.view_mut()).unwrap();
/// assert_eq!(s, array![[-1.0, 0.0]]);
/// ```
pub trait ScoreModel<F: Real>: Send + Sync {
    /// Write `∇ₓ log p_t(x)` for every row of `x` at the common time `t` into `out`.
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()>;

    /// As [`ScoreModel::score`] with one time per row (denoising score matching
    /// draws a `t` per sample). The default calls `score` row by row.
    fn score_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check::same_shape("score output", x.shape(), out.shape())?;
        check::same_shape("times", &[x.nrows()], t.shape())?;
        for i in 0..x.nrows() {
            self.score(
                x.slice(s![i..i + 1, ..]),
                t[i],
                out.slice_mut(s![i..i + 1, ..]),
            )?;
        }
        Ok(())
    }

    /// The exact divergence `∇ₓ · s(x, t)` (the trace of the score's Jacobian, i.e. the
    /// Laplacian of `log p_t`) per row, if the model knows it. `None` means "not available":
    /// likelihood computations then fall back to finite differences or Hutchinson's estimator.
    fn divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> {
        let _ = (x, t, out);
        None
    }

    /// The data dimension the model expects, if fixed; samplers check it.
    fn dim(&self) -> Option<usize> {
        None
    }
}

macro_rules! forward_score {
    ($($ty:ty),*) => {$(
        impl<F: Real, M: ScoreModel<F> + ?Sized> ScoreModel<F> for $ty {
            fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> { (**self).score(x, t, out) }
            fn score_rows(&self, x: ArrayView2<F>, t: ArrayView1<F>, out: ArrayViewMut2<F>) -> Result<()> { (**self).score_rows(x, t, out) }
            fn divergence(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut1<F>) -> Option<Result<()>> { (**self).divergence(x, t, out) }
            fn dim(&self) -> Option<usize> { (**self).dim() }
        }
    )*};
}
forward_score!(&M, Box<M>, std::sync::Arc<M>);

/// Check the shapes of a score call: `out` like `x`, and `x`'s width against `dim`.
pub fn check_score_call<F: Real>(
    dim: Option<usize>,
    x: &ArrayView2<F>,
    out: &ArrayViewMut2<F>,
) -> Result<()> {
    if let Some(d) = dim {
        if x.ncols() != d {
            return Err(Error::shape("x (columns = model dimension)", d, x.ncols()));
        }
    }
    check::same_shape("score output", x.shape(), out.shape())
}

/// A [`ScoreModel`] from a closure `Fn(x, t, out) -> Result<()>`.
///
/// ```
/// use score_sde::{ScoreFn, ScoreModel};
/// use ndarray::{ArrayView2, ArrayViewMut2};
/// let m = ScoreFn::new(|x: ArrayView2<f32>, _t: f32, mut out: ArrayViewMut2<f32>| {
///     out.assign(&(-&x));
///     Ok(())
/// })
/// .with_dim(3);
/// assert_eq!(ScoreModel::<f32>::dim(&m), Some(3));
/// ```
#[derive(Clone)]
pub struct ScoreFn<C> {
    f: C,
    dim: Option<usize>,
}

impl<C> ScoreFn<C> {
    /// Wrap a closure.
    pub fn new(f: C) -> Self {
        Self { f, dim: None }
    }
    /// Declare the data dimension (so samplers can check it).
    pub fn with_dim(mut self, dim: usize) -> Self {
        self.dim = Some(dim);
        self
    }
}

impl<C> fmt::Debug for ScoreFn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScoreFn")
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl<F: Real, C> ScoreModel<F> for ScoreFn<C>
where
    C: Fn(ArrayView2<F>, F, ArrayViewMut2<F>) -> Result<()> + Send + Sync,
{
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(self.dim, &x, &out)?;
        (self.f)(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        self.dim
    }
}

/// A network `net(x, t)` with some output parameterisation (see [`Parameterization`]).
///
/// This is the trait a user implements for an ε-, x̂₀- or v-predicting network; wrap it in
/// [`Parameterized`] to get a [`ScoreModel`]. Closures work through [`NetworkFn`].
pub trait Network<F: Real>: Send + Sync {
    /// Evaluate the network on a batch at the common time `t`.
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()>;
    /// Evaluate with one time per row; the default calls `forward` row by row.
    fn forward_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check::same_shape("network output", x.shape(), out.shape())?;
        check::same_shape("times", &[x.nrows()], t.shape())?;
        for i in 0..x.nrows() {
            self.forward(
                x.slice(s![i..i + 1, ..]),
                t[i],
                out.slice_mut(s![i..i + 1, ..]),
            )?;
        }
        Ok(())
    }
    /// The data dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
    }
}

impl<F: Real, N: Network<F> + ?Sized> Network<F> for std::sync::Arc<N> {
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        (**self).forward(x, t, out)
    }
    fn forward_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        (**self).forward_rows(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        (**self).dim()
    }
}
impl<F: Real, N: Network<F> + ?Sized> Network<F> for Box<N> {
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        (**self).forward(x, t, out)
    }
    fn forward_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        (**self).forward_rows(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        (**self).dim()
    }
}

/// A [`Network`] from a closure `Fn(x, t, out) -> Result<()>`.
#[derive(Clone)]
pub struct NetworkFn<C> {
    f: C,
}
impl<C> NetworkFn<C> {
    /// Wrap a closure.
    pub fn new(f: C) -> Self {
        Self { f }
    }
}
impl<C> fmt::Debug for NetworkFn<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetworkFn").finish_non_exhaustive()
    }
}
impl<F: Real, C> Network<F> for NetworkFn<C>
where
    C: Fn(ArrayView2<F>, F, ArrayViewMut2<F>) -> Result<()> + Send + Sync,
{
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        check::same_shape("network output", x.shape(), out.shape())?;
        (self.f)(x, t, out)
    }
}

/// What a network predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Parameterization {
    /// The score `∇ₓ log p_t(x)` itself (Song et al. 2021).
    Score,
    /// The noise `ε` in `x = α x₀ + σ ε` (Ho et al. 2020): `s = −ε/σ`.
    Noise,
    /// The clean data `x̂₀ = E[x₀ | x]` (Karras et al. 2022's denoiser): `s = (α x̂₀ − x)/σ²`.
    Data,
    /// The velocity `v = α ε − σ x₀` (Salimans & Ho 2022): `ε = (α v + σ x)/(α² + σ²)`.
    Velocity,
}

/// Convert a network output `pred` at `(x, α, σ)` to a score, in place (`pred` becomes `s`).
///
/// The formulas are those of the module docs; `Score` leaves `pred` unchanged.
///
/// Domain: `σ > 0` with `1/σ²` finite for `Noise`, `Data` and `Velocity` (they divide by
/// `σ`, `σ²`, `σ(α² + σ²)`). A plain function on the hot path of every network call, so it
/// does not return a `Result`; [`Parameterized`] checks `σ(t)` before calling it, and debug
/// builds assert the domain.
pub fn to_score_inplace<F: Real>(
    kind: Parameterization,
    x: ArrayView2<F>,
    alpha: F,
    sigma: F,
    mut pred: ArrayViewMut2<F>,
) {
    debug_assert!(
        kind == Parameterization::Score || score_factor(kind, alpha, sigma).is_some(),
        "to_score_inplace: σ = {sigma:?} (α = {alpha:?}) is outside the domain of {kind:?}"
    );
    match kind {
        Parameterization::Score => {}
        Parameterization::Noise => {
            let c = -F::one() / sigma;
            pred.mapv_inplace(|e| c * e);
        }
        Parameterization::Data => {
            let c = F::one() / (sigma * sigma);
            Zip::from(&mut pred)
                .and(&x)
                .for_each(|p, &x| *p = (alpha * *p - x) * c);
        }
        Parameterization::Velocity => {
            let norm = alpha * alpha + sigma * sigma;
            let c = -F::one() / (sigma * norm);
            Zip::from(&mut pred)
                .and(&x)
                .for_each(|p, &x| *p = (alpha * *p + sigma * x) * c);
        }
    }
}

/// Tweedie's formula at one coordinate, `x̂₀ = (x + σ² s)/α` with `s2 = σ²`, `ia = 1/α`
/// (Efron 2011; Song et al. 2021, App. G): the crate's one copy of it.
#[inline(always)]
pub(crate) fn tweedie<F: Real>(x: F, s: F, s2: F, ia: F) -> F {
    (x + s2 * s) * ia
}

/// Convert a score `s` at `(x, α, σ)` to the prediction `kind`, in place (the inverse of
/// [`to_score_inplace`]): `ε = −σ s`, `x̂₀ = (x + σ² s)/α` (Tweedie), `v = α ε − σ x̂₀`.
///
/// Domain: finite `σ ≥ 0`, and `α > 0` with `1/α` finite for `Data` and `Velocity`; asserted
/// in debug builds (the samplers pass `α(t)`, `σ(t)` of validated grids).
pub fn from_score_inplace<F: Real>(
    kind: Parameterization,
    x: ArrayView2<F>,
    alpha: F,
    sigma: F,
    mut s: ArrayViewMut2<F>,
) {
    debug_assert!(
        sigma.is_finite()
            && sigma >= F::zero()
            && (matches!(kind, Parameterization::Score | Parameterization::Noise)
                || (alpha > F::zero() && alpha.recip().is_finite())),
        "from_score_inplace: (α, σ) = ({alpha:?}, {sigma:?}) is outside the domain of {kind:?}"
    );
    match kind {
        Parameterization::Score => {}
        Parameterization::Noise => s.mapv_inplace(|v| -sigma * v),
        Parameterization::Data => {
            let (s2, ia) = (sigma * sigma, F::one() / alpha);
            Zip::from(&mut s)
                .and(&x)
                .for_each(|v, &x| *v = tweedie(x, *v, s2, ia));
        }
        Parameterization::Velocity => {
            let (s2, ia) = (sigma * sigma, F::one() / alpha);
            Zip::from(&mut s).and(&x).for_each(|v, &x| {
                let eps = -sigma * *v;
                let x0 = tweedie(x, *v, s2, ia);
                *v = alpha * eps - sigma * x0;
            });
        }
    }
}

/// A [`ScoreModel`] from a [`Network`] predicting noise, data or velocity under a schedule.
///
/// ```
/// use score_sde::score::{NetworkFn, Parameterization, Parameterized};
/// use score_sde::schedule::{Schedule, VpLinear};
/// use score_sde::ScoreModel;
/// use ndarray::{array, Array2, ArrayView2, ArrayViewMut2};
/// // For data N(0, I) under VP, p_t = N(0, I), so the optimal ε-predictor is σ x.
/// let sched = VpLinear::<f64>::default();
/// let net = NetworkFn::new(move |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| {
///     out.assign(&(&x * VpLinear::<f64>::default().sigma(t)));
///     Ok(())
/// });
/// let model = Parameterized::new(net, sched, Parameterization::Noise);
/// let x = array![[0.3, -1.2]];
/// let mut s = Array2::zeros((1, 2));
/// model.score(x.view(), 0.4, s.view_mut()).unwrap();
/// assert!((&s + &x).iter().all(|e| e.abs() < 1e-12)); // score of N(0, I) is −x
/// ```
#[derive(Debug, Clone)]
pub struct Parameterized<N, S> {
    net: N,
    schedule: S,
    kind: Parameterization,
}

impl<N, S> Parameterized<N, S> {
    /// Wrap `net`, which predicts `kind`, under `schedule`.
    pub fn new(net: N, schedule: S, kind: Parameterization) -> Self {
        Self {
            net,
            schedule,
            kind,
        }
    }
    /// A noise (ε) predictor.
    pub fn noise(net: N, schedule: S) -> Self {
        Self::new(net, schedule, Parameterization::Noise)
    }
    /// A data (x̂₀) predictor.
    pub fn data(net: N, schedule: S) -> Self {
        Self::new(net, schedule, Parameterization::Data)
    }
    /// A velocity (v) predictor.
    pub fn velocity(net: N, schedule: S) -> Self {
        Self::new(net, schedule, Parameterization::Velocity)
    }
    /// What the wrapped network predicts.
    pub fn parameterization(&self) -> Parameterization {
        self.kind
    }
    /// The wrapped network.
    pub fn network(&self) -> &N {
        &self.net
    }
}

/// The factor `to_score_inplace` multiplies by (`−1/σ`, `1/σ²`, `−1/(σ(α² + σ²))`), if it
/// is finite and non-zero (`None` for `Score`, which needs none).
fn score_factor<F: Real>(kind: Parameterization, alpha: F, sigma: F) -> Option<F> {
    let c = match kind {
        Parameterization::Score => return None,
        Parameterization::Noise => -sigma.recip(),
        Parameterization::Data => (sigma * sigma).recip(),
        Parameterization::Velocity => -(sigma * (alpha * alpha + sigma * sigma)).recip(),
    };
    (sigma > F::zero() && c.is_finite() && c != F::zero() && alpha.is_finite()).then_some(c)
}

impl<N, S> Parameterized<N, S> {
    /// `(α(t), σ(t))` after checking `t ∈ [0, T]` and that this parameterisation can be
    /// converted at `t`: noise, data and velocity predictions divide by `σ(t)` (`σ(t)²`),
    /// which is 0 at `t = 0` for every schedule (no noise, so the network's ε is undefined).
    fn scales<F: Real>(&self, t: F) -> Result<(F, F)>
    where
        S: Schedule<F>,
    {
        crate::schedule::check_t_from_zero(&self.schedule, t)?;
        let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
        if self.kind != Parameterization::Score && score_factor(self.kind, a, s).is_none() {
            return Err(Error::param(
                "sigma(t)",
                s.as_f64(),
                "noise, data and velocity predictions are turned into scores by dividing by \
                 σ(t) (σ(t)² for data); it is 0 or too small at this t (t = 0 has no noise): \
                 evaluate at t ≥ the schedule's t_min",
            ));
        }
        Ok((a, s))
    }
}

impl<F: Real, N: Network<F>, S: Schedule<F>> ScoreModel<F> for Parameterized<N, S> {
    /// Errors: the network's errors, [`Error::TimeOutOfRange`] for `t` outside `[0, T]`, and
    /// [`Error::InvalidParameter`] naming `sigma(t)` where a noise, data or velocity
    /// prediction cannot be converted (`σ(t) = 0`).
    fn score(&self, x: ArrayView2<F>, t: F, mut out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(self.net.dim(), &x, &out)?;
        let (a, s) = self.scales(t)?;
        self.net.forward(x.view(), t, out.view_mut())?;
        to_score_inplace(self.kind, x, a, s, out);
        Ok(())
    }
    fn score_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check_score_call(self.net.dim(), &x, &out)?;
        check::same_shape("times", &[x.nrows()], t.shape())?;
        for &ti in t.iter() {
            self.scales(ti)?;
        }
        self.net.forward_rows(x.view(), t, out.view_mut())?;
        for i in 0..x.nrows() {
            let (a, sg) = self.scales(t[i])?;
            to_score_inplace(
                self.kind,
                x.slice(s![i..i + 1, ..]),
                a,
                sg,
                out.slice_mut(s![i..i + 1, ..]),
            );
        }
        Ok(())
    }
    fn dim(&self) -> Option<usize> {
        self.net.dim()
    }
}

/// A log-density `log π(x)` (up to an additive constant) for batches, rows are samples:
/// the target of a Metropolis test ([`Mala`](crate::sample::Mala)).
///
/// ```
/// use score_sde::score::LogDensity;
/// use score_sde::gmm::GaussianMixture;
/// use ndarray::{array, Array1, Array2};
/// let g = GaussianMixture::<f64>::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
/// let mut out = Array1::zeros(1);
/// g.log_density(array![[0.0, 0.0]].view(), out.view_mut()).unwrap();
/// assert!((out[0] + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12);
/// ```
pub trait LogDensity<F: Real>: Send + Sync + fmt::Debug {
    /// Write `log π(x)` of each row of `x` into `out`.
    fn log_density(&self, x: ArrayView2<F>, out: ArrayViewMut1<F>) -> Result<()>;
    /// The dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
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
