//! Latent editing: spherical interpolation between latents and temperature rescaling.
//!
//! The probability-flow ODE maps data at `t_min` to latents at `T` and back, one to one
//! (Song et al. 2021, §4.3: "manipulating latent representations"; encode/decode with
//! [`ProbabilityFlow`](crate::sample::ProbabilityFlow)). Latents of a VP or VE model are
//! distributed as the prior `N(0, s² I)`, so in high dimension they concentrate on the sphere
//! of radius `s √D`: a straight line between two latents cuts through the low-norm interior,
//! which the prior rarely visits; the great circle stays on the shell. Hence
//!
//! * **spherical interpolation** (slerp; Shoemake 1985, as used for generative latents by
//!   White 2016 and in Song et al. 2021, Fig. 3 (left)):
//!   `slerp(z₀, z₁; λ) = sin((1 − λ)θ)/sin θ · z₀ + sin(λθ)/sin θ · z₁`,
//!   `cos θ = ⟨z₀, z₁⟩ / (‖z₀‖ ‖z₁‖)`: the endpoints at `λ = 0, 1`, the norm kept when
//!   `‖z₀‖ = ‖z₁‖`, the angle to `z₀` growing as `λθ`;
//! * **temperature rescaling** (Song et al. 2021, Fig. 3 (right); Kingma & Dhariwal 2018,
//!   §5.2 for flows): `z ↦ τ z`, which turns prior draws into draws of `N(0, τ² s² I)`;
//!   decoded, `τ < 1` gives samples concentrated nearer the modes.

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Zip};

/// Spherical interpolation `slerp(z₀, z₁; λ)` of two latents (see the [module docs](self)).
/// Nearly parallel latents (`sin θ` below `√ε`) fall back to linear interpolation, to which
/// slerp tends. Errors: different lengths, non-finite entries or `λ`, a zero latent.
///
/// ```
/// use score_sde::latent::slerp;
/// use ndarray::array;
/// let (a, b) = (array![1.0_f64, 0.0], array![0.0, 1.0]);
/// let m = slerp(a.view(), b.view(), 0.5).unwrap();
/// // Half-way along the quarter circle: norm 1, 45 degrees.
/// assert!((m[0] - 0.5f64.sqrt()).abs() < 1e-15 && (m[1] - 0.5f64.sqrt()).abs() < 1e-15);
/// ```
pub fn slerp<F: Real>(z0: ArrayView1<F>, z1: ArrayView1<F>, lambda: F) -> Result<Array1<F>> {
    check::same_shape(
        "second latent (length of the first)",
        z0.shape(),
        z1.shape(),
    )?;
    check::finite("first latent", &z0)?;
    check::finite("second latent", &z1)?;
    check::finite_scalar("lambda", lambda)?;
    // The angle from latents scaled by their largest entries: no square overflows or
    // underflows whatever the latents' magnitude (1e-200 or 1e200 give the same angle).
    let max_abs = |z: &ArrayView1<F>| z.iter().fold(F::zero(), |m, &v| m.max(v.abs()));
    let (m0, m1) = (max_abs(&z0), max_abs(&z1));
    if m0 == F::zero() || m1 == F::zero() {
        return Err(Error::param(
            "latent norm",
            0.0,
            "spherical interpolation needs non-zero latents",
        ));
    }
    let (mut d00, mut d11, mut d01) = (F::zero(), F::zero(), F::zero());
    Zip::from(&z0).and(&z1).for_each(|&a, &b| {
        let (u, v) = (a / m0, b / m1);
        d00 += u * u;
        d11 += v * v;
        d01 += u * v;
    });
    let c = (d01 / (d00.sqrt() * d11.sqrt()))
        .max(-F::one())
        .min(F::one());
    let theta = c.acos();
    let s = theta.sin();
    let (w0, w1) = if s < F::EPS.sqrt() {
        (F::one() - lambda, lambda)
    } else {
        (
            ((F::one() - lambda) * theta).sin() / s,
            (lambda * theta).sin() / s,
        )
    };
    let out = Zip::from(&z0)
        .and(&z1)
        .map_collect(|&a, &b| w0 * a + w1 * b);
    // Latents near the float range's end and λ outside [0, 1] can leave it.
    match out.iter().position(|v| !v.is_finite()) {
        None => Ok(out),
        Some(index) => Err(Error::Unrepresentable {
            what: "spherical interpolation",
            index,
            reason: format!(
                "w0·z0 + w1·z1 with weights ({:?}, {:?}) overflows the float type",
                w0.as_f64(),
                w1.as_f64()
            ),
        }),
    }
}

/// `k ≥ 2` latents on the great circle from `z₀` to `z₁` (`λ = i/(k − 1)`, endpoints
/// included), one per row.
///
/// ```
/// use score_sde::latent::interpolate;
/// use ndarray::array;
/// let path = interpolate(array![3.0_f64, 0.0].view(), array![0.0, -3.0].view(), 4).unwrap();
/// assert_eq!(path.nrows(), 4);
/// assert!(path.rows().into_iter().all(|r| (r.dot(&r).sqrt() - 3.0).abs() < 1e-12));
/// ```
pub fn interpolate<F: Real>(z0: ArrayView1<F>, z1: ArrayView1<F>, k: usize) -> Result<Array2<F>> {
    if k < 2 {
        return Err(Error::param(
            "interpolation points",
            k as f64,
            "needs at least 2 (the endpoints)",
        ));
    }
    let mut out = check::zeros_batch::<F>("interpolation (k × D)", k, z0.len())?;
    let last = F::from_usize_lossy(k - 1);
    for (i, mut row) in out.rows_mut().into_iter().enumerate() {
        row.assign(&slerp(z0, z1, F::from_usize_lossy(i) / last)?);
    }
    Ok(out)
}

/// Temperature rescaling of latents: `τ z` for every row (`τ ≥ 0`, finite).
///
/// ```
/// use score_sde::latent::temperature;
/// use ndarray::array;
/// let z = temperature(array![[2.0_f64, -4.0]].view(), 0.5).unwrap();
/// assert_eq!(z, array![[1.0, -2.0]]);
/// assert!(temperature(array![[1.0]].view(), -1.0).is_err());
/// ```
pub fn temperature<F: Real>(z: ArrayView2<F>, tau: F) -> Result<Array2<F>> {
    check::non_negative("temperature", tau)?;
    check::finite("latents", &z)?;
    let out = z.mapv(|v| tau * v);
    match out.iter().position(|v| !v.is_finite()) {
        None => Ok(out),
        Some(index) => Err(Error::Unrepresentable {
            what: "temperature-scaled latents",
            index,
            reason: format!("τ z with τ = {:?} overflows the float type", tau.as_f64()),
        }),
    }
}
