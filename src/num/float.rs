//! The float trait bundle: everything the crate needs of `f32` and `f64`.
//!
//! ```
//! use score_sde::Real;
//! // Generic numerical code: constants through `F::lit`, back to f64 with `as_f64`.
//! fn half_g2<F: Real>(g: F) -> F {
//!     F::lit(0.5) * g * g
//! }
//! assert_eq!(half_g2(2.0_f32), 2.0);
//! assert_eq!(half_g2(2.0_f64).as_f64(), 2.0);
//! ```

use ndarray::NdFloat;
use num_traits::{Float, FromPrimitive, ToPrimitive};
use rand::Rng;
use rand::RngCore;
use rand_distr::{Distribution, StandardNormal};
use std::fmt::{Debug, Display};

/// Floating-point scalar usable everywhere in the crate: implemented for `f32` and `f64`.
///
/// Bundles [`ndarray::NdFloat`] and [`num_traits::Float`] with random draws, so
/// generic code needs no `where StandardNormal: Distribution<F>` clauses.
///
/// ```
/// use score_sde::Real;
/// use rand::SeedableRng;
/// let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
/// let z: f32 = Real::standard_normal(&mut rng);
/// assert!(z.is_finite());
/// assert_eq!(<f64 as Real>::lit(0.5), 0.5);
/// ```
///
/// Sealed: the mixture kernel's vectorised exponential (`PolyExp`, crate-internal) and
/// the vectorised Box–Muller transform of [`RowNoise`](crate::num::RowNoise)
/// (`BoxMuller`, crate-internal) are supertraits, implemented for `f32` and `f64` only.
///
/// **Other float types** (`f16`, `bf16`, a double-double) would need, inside the crate:
/// `ndarray::NdFloat` and `num_traits::Float` for the type (the `half` crate provides the
/// latter; `NdFloat` needs `ScalarOperand` and `LinalgScalar`); a `PolyExp` implementation
/// (Cody–Waite reduction constants and a Taylor degree for its precision, `num::exp`); a
/// `BoxMuller` implementation (how many 32-bit words make a uniform, the `ln` and
/// `sin`/`cos` polynomial degrees for its epsilon, `num::normal`); and, for speed, a SIMD
/// width in the kernel's tile shapes (`gmm::kernel`). Everything above `num` is generic
/// over `Real` and needs no change.
pub trait Real:
    NdFloat
    + Float
    + FromPrimitive
    + ToPrimitive
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + crate::num::exp::PolyExp
    + crate::num::normal::BoxMuller
{
    /// Machine epsilon of the type.
    const EPS: Self;
    /// Convert an `f64` constant (lossy for `f32`).
    fn lit(x: f64) -> Self;
    /// Convert to `f64` (exact).
    fn as_f64(self) -> f64;
    /// Convert a count.
    fn from_usize_lossy(n: usize) -> Self {
        Self::lit(n as f64)
    }
    /// One draw from N(0, 1).
    fn standard_normal(rng: &mut dyn RngCore) -> Self;
    /// One draw from U[0, 1).
    fn uniform01(rng: &mut dyn RngCore) -> Self;
    /// Fill a slice with N(0, 1) draws.
    fn fill_standard_normal(rng: &mut dyn RngCore, out: &mut [Self]) {
        for v in out {
            *v = Self::standard_normal(rng);
        }
    }
}

impl Real for f64 {
    const EPS: Self = f64::EPSILON;
    #[inline]
    fn lit(x: f64) -> Self {
        x
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self
    }
    #[inline]
    fn standard_normal(rng: &mut dyn RngCore) -> Self {
        StandardNormal.sample(rng)
    }
    #[inline]
    fn uniform01(rng: &mut dyn RngCore) -> Self {
        rng.random::<f64>()
    }
}

impl Real for f32 {
    const EPS: Self = f32::EPSILON;
    #[inline]
    fn lit(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn standard_normal(rng: &mut dyn RngCore) -> Self {
        StandardNormal.sample(rng)
    }
    #[inline]
    fn uniform01(rng: &mut dyn RngCore) -> Self {
        rng.random::<f32>()
    }
}
