//! Song et al. 2021, Appendix I.4: conditional sampling for a general linear observation
//! `y = A x₀ + n`, `n ~ N(0, Σ_n)`, by projecting onto a noised copy of the observation after
//! every step — score_sde's conditional PC samplers (`get_pc_inpainter`,
//! `get_pc_colorizer`) generalised from masks and orthogonal bases to any `A`.

use super::LinearGaussian;
use crate::check;
use crate::error::{Error, Result};
use crate::linalg;
use crate::num::Real;
use crate::observe::Observer;
use crate::schedule::Schedule;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rand::SeedableRng;
use std::fmt;

/// The conditional sampler of Song et al. 2021, App. I.4, as an [`Observer`] constraint.
///
/// Along the forward process define `y(t) = A x(t) + α(t) n`; then `y(t) = α y + σ A z`
/// given `y` exactly, so `p(y(t) | y) = N(α y, σ² A Aᵀ)` is tractable, and the paper
/// approximates `∇ log p_t(x(t) | y) ≈ ∇ log p_t(x(t) | ŷ(t))` at a draw `ŷ(t)` (its
/// eq. 50). Given `ŷ(t)`, `A x(t) ~ N(ŷ(t), α² Σ_n)`; far narrower than `p_t` along `A` at
/// high noise, so instead of adding the (stiff) gradient of that Gaussian the constraint
/// solves it exactly under a flat local prior, after every sampler step (and, under
/// [`Pc`](crate::sample::Pc), after every corrector step):
///
/// ```text
/// target = α y + σ L_A w₁ + α L_n w₂,   w₁, w₂ ~ N(0, I_M),   L_A L_Aᵀ = A Aᵀ,  L_n L_nᵀ = Σ_n
/// x ← x + A⁺ (target − A x),            A⁺ = Aᵀ (A Aᵀ)⁻¹
/// ```
///
/// For a mask `A` and `Σ_n → 0` this is imputation by replacement
/// ([`Imputation`](super::Imputation), App. I.2); for the rows of an orthogonal matrix it
/// is colourisation-type replacement (App. I.3). `A` must have full row rank. Like
/// replacement it is approximate — the free directions see `ŷ(t)`, not `y` (measured in
/// `docs/conditioning.md`). The noise comes from the observer's own generator
/// (`rand_pcg::Pcg64` seeded at construction).
///
/// ```
/// use score_sde::condition::{LinearGaussian, ObservationConstraint};
/// use score_sde::observe::Observer;
/// use score_sde::schedule::VpLinear;
/// use ndarray::array;
/// let obs = LinearGaussian::new(array![[0.6, 0.8]], array![[1e-4]]).unwrap();
/// let mut c = ObservationConstraint::new(VpLinear::<f64>::default(), &obs, array![3.0].view(), 1).unwrap();
/// let mut x = array![[0.0, 0.0], [5.0, -5.0]];
/// c.constrain(1, 1e-3, x.view_mut()).unwrap();
/// // A x is the (nearly noise-free, t ≈ 0) observation; the orthogonal direction is untouched.
/// for r in x.rows() {
///     assert!((0.6 * r[0] + 0.8 * r[1] - 3.0).abs() < 0.1);
/// }
/// assert!((0.8 * x[[1, 0]] - 0.6 * x[[1, 1]] - 7.0).abs() < 1e-12);
/// ```
pub struct ObservationConstraint<F: Real, S> {
    schedule: S,
    a: Array2<F>,
    pinv: Array2<F>,
    chol_a: Array2<F>,
    chol_n: Array2<F>,
    y: Array1<F>,
    rng: rand_pcg::Pcg64,
    w: Array2<F>,
    target: Array1<F>,
    constrained: bool,
}

impl<F: Real, S> fmt::Debug for ObservationConstraint<F, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservationConstraint")
            .field("observations", &self.y.len())
            .field("dim", &self.a.ncols())
            .finish_non_exhaustive()
    }
}

impl<F: Real, S: Schedule<F>> ObservationConstraint<F, S> {
    /// The constraint for the observation `y` of `obs` under `schedule`; `seed` seeds its
    /// noise. Errors: `y` of the wrong length or non-finite; `A` without full row rank
    /// ([`Error::NotPositiveDefinite`] naming `A Aᵀ`).
    pub fn new(schedule: S, obs: &LinearGaussian<F>, y: ArrayView1<F>, seed: u64) -> Result<Self> {
        let (m, d) = obs.matrix().dim();
        check::same_shape("observation y (length M)", &[m], y.shape())?;
        check::finite("observation y", &y)?;
        let a = obs.matrix().mapv(|v| v.as_f64());
        let aat = a.dot(&a.t());
        let aat = (&aat + &aat.t()) * 0.5;
        let chol_a = linalg::cholesky(aat.view()).map_err(|(j, p)| Error::NotPositiveDefinite {
            component: 0,
            reason: format!("A Aᵀ (A needs full row rank): Cholesky pivot {j} is {p}"),
        })?;
        // Numerically dependent rows pass Cholesky with a pivot at round-off level: reject a
        // squared pivot below 1e3 ε of the largest diagonal entry of A Aᵀ.
        let scale = aat.diag().iter().fold(0.0_f64, |a, &v| a.max(v));
        if let Some((j, &p)) = chol_a
            .diag()
            .iter()
            .enumerate()
            .find(|(_, p)| **p * **p <= 1e3 * f64::EPSILON * scale)
        {
            return Err(Error::NotPositiveDefinite {
                component: 0,
                reason: format!(
                    "A Aᵀ (A needs full row rank): pivot {j} is {p:e}, numerically singular"
                ),
            });
        }
        // A⁺ = Aᵀ (A Aᵀ)⁻¹, column by column of (A Aᵀ)⁻¹ A = (A⁺)ᵀ.
        let mut pinv_t = Array2::<f64>::zeros((m, d));
        for j in 0..d {
            pinv_t
                .column_mut(j)
                .assign(&linalg::cho_solve(chol_a.view(), a.column(j)));
        }
        Ok(Self {
            schedule,
            a: obs.matrix().to_owned(),
            pinv: pinv_t.t().mapv(F::lit),
            chol_a: chol_a.mapv(F::lit),
            chol_n: obs.noise_cholesky().mapv(F::lit),
            y: y.to_owned(),
            rng: rand_pcg::Pcg64::seed_from_u64(seed),
            w: Array2::zeros((2, m)),
            target: Array1::zeros(m),
            constrained: false,
        })
    }

    fn project(&mut self, t: F, mut x: ArrayViewMut2<F>) -> Result<()> {
        check::same_shape("state (columns = D of A)", &[self.a.ncols()], &[x.ncols()])?;
        check::finite_scalar("t", t)?;
        let (al, sg) = (self.schedule.alpha(t), self.schedule.sigma(t));
        let m = self.y.len();
        for mut row in x.rows_mut() {
            for v in self.w.iter_mut() {
                *v = F::standard_normal(&mut self.rng);
            }
            for i in 0..m {
                let mut v = al * self.y[i];
                for k in 0..=i {
                    v += sg * self.chol_a[[i, k]] * self.w[[0, k]]
                        + al * self.chol_n[[i, k]] * self.w[[1, k]];
                }
                self.target[i] = v - self.a.row(i).dot(&row);
            }
            for i in 0..m {
                row.scaled_add(self.target[i], &self.pinv.column(i));
            }
        }
        Ok(())
    }
}

impl<F: Real, S: Schedule<F>> Observer<F> for ObservationConstraint<F, S> {
    /// Checks that [`Observer::constrain`] ran first (a sampler that never applies
    /// constraints gets [`Error::Stopped`] instead of silently unconditional samples).
    fn observe(&mut self, step: usize, _t: F, _x: ArrayView2<F>) -> Result<()> {
        if !std::mem::replace(&mut self.constrained, false) {
            return Err(Error::Stopped {
                step,
                reason: "observation constraint: this sampler does not call \
                         Observer::constrain (observe::after_step)"
                    .into(),
            });
        }
        Ok(())
    }
    fn constrain(&mut self, _step: usize, t: F, x: ArrayViewMut2<F>) -> Result<()> {
        self.project(t, x)?;
        self.constrained = true;
        Ok(())
    }
    fn constrains(&self) -> bool {
        true
    }
}
