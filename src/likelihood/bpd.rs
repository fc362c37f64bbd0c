//! Bits per dimension and uniform dequantisation of 8-bit data.
//!
//! Discrete data `y ∈ {0, …, B−1}^D` (B = 256 for 8-bit images) is dequantised to
//! `u = (y + U[0,1)^D) / B ∈ [0, 1)^D` (Theis et al. 2016; Ho et al. 2019) and the model sees
//! `x = a u + b` (e.g. `a = 2`, `b = −1` for data in `[−1, 1]`). By the change of variables
//! `log p(y) ≥ E_u[log p_u(u)] − D log B` and `log p_u(u) = log p_x(x) + D log a`, so
//!
//! ```text
//! bpd = −log p_x(x) / (D ln 2) − log₂ a + log₂ B
//! ```
//!
//! score_sde's `offset = 7` for centred data is this with `a = 2`, `B = 256`
//! (`−log₂ 2 + log₂ 256 = 7`); both are explicit parameters here, not hidden constants.

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use rand::RngCore;

/// How discrete data were turned into the model's continuous `x = a u + b`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct DataScaling {
    /// Number of discrete levels `B` per dimension (256 for 8-bit data).
    pub bins: u32,
    /// The scale `a` in `x = a u + b` (the shift `b` does not change densities).
    pub scale: f64,
}

impl DataScaling {
    /// `B` levels mapped to `x = scale · u + shift`; needs `B ≥ 1`, `scale > 0`.
    pub fn new(bins: u32, scale: f64) -> Result<Self> {
        if bins == 0 {
            return Err(Error::param("bins", 0.0, "must be at least 1"));
        }
        if !(scale.is_finite() && scale > 0.0) {
            return Err(Error::param("scale", scale, "must be finite and > 0"));
        }
        Ok(Self { bins, scale })
    }
    /// 8-bit data scaled to `[0, 1)`.
    pub fn eight_bit_unit() -> Self {
        Self {
            bins: 256,
            scale: 1.0,
        }
    }
    /// 8-bit data scaled to `[−1, 1)` (score_sde's centred data; offset 7 bits).
    pub fn eight_bit_centered() -> Self {
        Self {
            bins: 256,
            scale: 2.0,
        }
    }
    /// The additive offset in bits: `log₂ B − log₂ a`.
    pub fn offset_bits(&self) -> f64 {
        (self.bins as f64).log2() - self.scale.log2()
    }
}

/// Bits per dimension from per-sample `log p_x(x)` in nats, for `dim`-dimensional data.
///
/// Errors: `dim = 0` or an invalid `scaling` ([`Error::InvalidParameter`]), a non-finite
/// `log p` ([`Error::NonFinite`]), and a result beyond `f64` ([`Error::Unrepresentable`]:
/// `|log p| / (D ln 2)` overflows for `|log p|` above `D ln 2 · f64::MAX`).
///
/// ```
/// use score_sde::likelihood::{bits_per_dim, DataScaling};
/// use ndarray::array;
/// // A model uniform on [0, 1)^D gives log p = 0 and exactly 8 bits per dimension.
/// let b = bits_per_dim(array![0.0_f64].view(), 3, DataScaling::eight_bit_unit()).unwrap();
/// assert!((b[0] - 8.0).abs() < 1e-12);
/// // log p = −f64::MAX in one dimension is 2.6e308 bits: not representable.
/// let r = bits_per_dim(array![-f64::MAX].view(), 1, DataScaling::eight_bit_unit());
/// assert!(matches!(r, Err(score_sde::Error::Unrepresentable { .. })));
/// ```
pub fn bits_per_dim<F: Real>(
    log_px: ArrayView1<F>,
    dim: usize,
    scaling: DataScaling,
) -> Result<Array1<f64>> {
    if dim == 0 {
        return Err(Error::param("dim", 0.0, "must be at least 1"));
    }
    // The fields are public: revalidate (a NaN scale would give NaN bits silently).
    let scaling = DataScaling::new(scaling.bins, scaling.scale)?;
    crate::check::finite("log p_x", &log_px)?;
    let d = dim as f64;
    let bpd = log_px.mapv(|l| -l.as_f64() / (d * std::f64::consts::LN_2) + scaling.offset_bits());
    if let Some(i) = bpd.iter().position(|v| !v.is_finite()) {
        return Err(Error::Unrepresentable {
            what: "bits per dimension",
            index: i,
            reason: "−log p / (D ln 2) overflows f64 (|log p| near f64::MAX)".into(),
        });
    }
    Ok(bpd)
}

/// Uniform dequantisation `u = (y + U[0,1)) / B` of integer levels `y ∈ {0, …, B−1}`,
/// then `x = scale · u + shift` (Theis et al. 2016).
///
/// ```
/// use score_sde::likelihood::{dequantize_uniform, DataScaling};
/// use ndarray::array;
/// use rand::SeedableRng;
/// let y = array![[0u8, 255]];
/// let x: ndarray::Array2<f64> = dequantize_uniform(y.view(), DataScaling::eight_bit_centered(), -1.0, &mut rand_pcg::Pcg64::seed_from_u64(0)).unwrap();
/// assert!(x[[0, 0]] >= -1.0 && x[[0, 0]] < -1.0 + 2.0 / 256.0);
/// assert!(x[[0, 1]] >= 1.0 - 2.0 / 256.0 && x[[0, 1]] < 1.0);
/// ```
pub fn dequantize_uniform<F: Real>(
    y: ArrayView2<u8>,
    scaling: DataScaling,
    shift: f64,
    rng: &mut dyn RngCore,
) -> Result<Array2<F>> {
    if !shift.is_finite() {
        return Err(Error::param("shift", shift, "must be finite"));
    }
    let scaling = DataScaling::new(scaling.bins, scaling.scale)?;
    let b = scaling.bins as f64;
    let mut out = Array2::<F>::zeros(y.raw_dim());
    for (o, &v) in out.iter_mut().zip(y.iter()) {
        if v as f64 >= b {
            return Err(Error::param(
                "level",
                v as f64,
                "must be below the number of bins",
            ));
        }
        let u = (v as f64 + f64::uniform01(rng)) / b;
        *o = F::lit(scaling.scale * u + shift);
        if !o.is_finite() {
            return Err(Error::Unrepresentable {
                what: "dequantised value scale · u + shift",
                index: 0,
                reason: "it overflows the float type (scale or shift too large)".into(),
            });
        }
    }
    Ok(out)
}
