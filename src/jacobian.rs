//! Directional derivatives of a score model: Jacobian–vector products by central
//! differences, and the probe vectors of trace estimators.
//!
//! A [`ScoreModel`] gives `s(x, t)` only. Its Jacobian `J = ∇ₓ s` (the Hessian of `log p_t`,
//! symmetric for an exact score) enters the divergence of the likelihood (`tr J`), sliced
//! score matching (`vᵀ J v`, Song et al. 2019) and the guidance of DPS / ΠGDM (`J v`, Chung
//! et al. 2023; Song et al. 2023). [`ScoreJvp`] computes `J v` row by row by the central
//! difference
//!
//! ```text
//! J v ≈ (s(x + h v) − s(x − h v)) / (2h),    h = ε^{1/3} max(1, ‖x‖_∞) / ‖v‖_∞
//! ```
//!
//! (two score calls on the batch). Truncation error `O(h²)` and rounding error `O(ε/h)`
//! balance at `h ≈ ε^{1/3}` (Press et al. 2007, §5.7), with `ε` the machine epsilon of the
//! float type, scaled so that the perturbation `h v` has the size `ε^{1/3} max(1, ‖x‖_∞)`
//! whatever the size of `v`: the relative error is near `ε^{2/3}` (≈ 4e-11 in f64). A row
//! with `v = 0` gets `J v = 0` exactly.

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::ScoreModel;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix2, Zip};
use rand::RngCore;

/// The distribution of probe vectors of a trace estimator (both have `E[v vᵀ] = I`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// Entries ±1 with probability ½ (the lower-variance choice, Hutchinson 1990).
    Rademacher,
    /// Standard normal entries (Skilling 1989).
    Gaussian,
}

impl Probe {
    /// Fill `out` with independent probe entries drawn from `rng`.
    ///
    /// ```
    /// use score_sde::jacobian::Probe;
    /// use rand::SeedableRng;
    /// let mut v = ndarray::Array2::<f64>::zeros((3, 4));
    /// Probe::Rademacher.fill(v.view_mut(), &mut rand_pcg::Pcg64::seed_from_u64(0));
    /// assert!(v.iter().all(|&e| e == 1.0 || e == -1.0));
    /// ```
    pub fn fill<F: Real>(self, mut out: ArrayViewMut2<F>, rng: &mut dyn RngCore) {
        for v in out.iter_mut() {
            *v = match self {
                Probe::Rademacher => {
                    if rng.next_u32() & 1 == 0 {
                        F::one()
                    } else {
                        -F::one()
                    }
                }
                Probe::Gaussian => F::standard_normal(rng),
            };
        }
    }
}

/// `J v = ∇ₓ s(x, t) · v` row by row, by central differences (see the [module docs](self)),
/// with its buffers made once for batches of a fixed shape.
///
/// ```
/// use score_sde::jacobian::ScoreJvp;
/// use score_sde::prelude::*;
/// use ndarray::{array, Array2};
/// // N(0, S) has the linear score −S⁻¹ x, so J v = −S⁻¹ v exactly.
/// let gm = GaussianMixture::gaussian(array![0.0, 0.0], array![[2.0, 0.0], [0.0, 0.5]])?;
/// let model = AnalyticScore::new(gm, VpLinear::default());
/// let mut jvp = ScoreJvp::new(1, 2)?;
/// let mut out = Array2::<f64>::zeros((1, 2));
/// jvp.eval(&model, array![[0.3, -1.0]].view(), 0.0, array![[1.0, 1.0]].view(), out.view_mut())?;
/// assert!((out[[0, 0]] + 0.5).abs() < 1e-8 && (out[[0, 1]] + 2.0).abs() < 1e-8);
/// # Ok::<(), score_sde::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ScoreJvp<F> {
    plus: Array2<F>,
    minus: Array2<F>,
    s_plus: Array2<F>,
    s_minus: Array2<F>,
    step: Vec<F>,
}

impl<F: Real> ScoreJvp<F> {
    /// Buffers for `n × d` batches (`n, d ≥ 1`).
    pub fn new(n: usize, d: usize) -> Result<Self> {
        if n == 0 || d == 0 {
            return Err(Error::Empty {
                what: "Jacobian–vector product batch",
            });
        }
        // Sizes from the caller: checked before anything is allocated.
        let buf = || check::zeros::<F, _>("Jacobian–vector product buffer (N × D)", Ix2(n, d));
        let mut step = check::vec_with_capacity("Jacobian–vector product steps", n)?;
        step.resize(n, F::zero());
        Ok(Self {
            plus: buf()?,
            minus: buf()?,
            s_plus: buf()?,
            s_minus: buf()?,
            step,
        })
    }

    /// The batch shape the buffers were made for.
    pub fn shape(&self) -> (usize, usize) {
        self.plus.dim()
    }

    /// Write `J v` of every row into `out` (two score calls on the batch). `x`, `v` and
    /// `out` must have the shape of [`ScoreJvp::shape`].
    pub fn eval(
        &mut self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        v: ArrayView2<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        let shape = self.plus.shape().to_vec();
        check::same_shape("Jacobian–vector product x", &shape, x.shape())?;
        check::same_shape("Jacobian–vector product direction", &shape, v.shape())?;
        check::same_shape("Jacobian–vector product output", &shape, out.shape())?;
        let base = F::EPS.cbrt();
        Zip::from(&mut self.step)
            .and(x.rows())
            .and(v.rows())
            .for_each(|h, xr, vr| {
                let xm = xr.iter().fold(F::one(), |a, e| a.max(e.abs()));
                let vm = vr.iter().fold(F::zero(), |a, e| a.max(e.abs()));
                *h = if vm > F::zero() {
                    base * xm / vm
                } else {
                    F::zero()
                };
            });
        Zip::from(self.plus.rows_mut())
            .and(self.minus.rows_mut())
            .and(x.rows())
            .and(v.rows())
            .and(&self.step)
            .for_each(|mut a, mut b, xr, vr, &h| {
                Zip::from(&mut a)
                    .and(&mut b)
                    .and(&xr)
                    .and(&vr)
                    .for_each(|a, b, &x, &v| {
                        *a = x + h * v;
                        *b = x - h * v;
                    });
            });
        model.score(self.plus.view(), t, self.s_plus.view_mut())?;
        model.score(self.minus.view(), t, self.s_minus.view_mut())?;
        let two = F::lit(2.0);
        Zip::from(out.rows_mut())
            .and(self.s_plus.rows())
            .and(self.s_minus.rows())
            .and(&self.step)
            .for_each(|mut o, sp, sm, &h| {
                if h > F::zero() {
                    Zip::from(&mut o)
                        .and(&sp)
                        .and(&sm)
                        .for_each(|o, &p, &m| *o = (p - m) / (two * h));
                } else {
                    o.fill(F::zero());
                }
            });
        Ok(())
    }
}
