//! DPS and ΠGDM likelihood terms (the maths is on [`TweedieLikelihood`]).

use super::LinearGaussian;
use super::likelihood::LikelihoodGradient;
use crate::check;
use crate::error::{Error, Result};
use crate::jacobian::ScoreJvp;
use crate::linalg;
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::ScoreModel;
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Zip};
use std::sync::Mutex;

/// Which Gaussian approximation of `p(x₀ | x_t)` (see [`TweedieLikelihood`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum TweedieApprox {
    /// DPS (Chung et al. 2023): a point mass at `x̂₀`.
    Dps,
    /// ΠGDM (Song et al. 2023): `N(x̂₀, r_t² I)`, `r_t² = c σ²/(α² c + σ²)` for data variance
    /// `c = data_var`.
    Pigdm {
        /// The data variance `c` the approximation assumes (1 in the paper).
        data_var: f64,
    },
}

/// How the Jacobian `∂x̂₀/∂x_t` enters the gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum JacobianMode {
    /// `(I + σ² ∇ₓ s)/α`, the score's Jacobian by central differences (2 model calls).
    #[default]
    FiniteDifference,
    /// `I/α`: the Jacobian of the score dropped (no extra calls; coarser).
    Identity,
}

/// The observation in whitened eigen-coordinates: `B = Uᵀ L⁻¹ A` (`M × D`), `Λ`, `ỹ`.
#[derive(Debug, Clone)]
struct Whitened<F> {
    b: Array2<F>,
    lambda: Array1<F>,
    y: Array1<F>,
}

impl<F: Real> Whitened<F> {
    fn new(obs: &LinearGaussian<F>, y: ArrayView1<F>) -> Result<Self> {
        let (m, d) = obs.matrix().dim();
        check::same_shape("observation y (length M)", &[m], y.shape())?;
        check::finite("observation y", &y)?;
        let a = obs.matrix().mapv(|v| v.as_f64());
        let l = obs.noise_cholesky();
        // L⁻¹ A, column by column.
        let mut la = Array2::<f64>::zeros((m, d));
        for j in 0..d {
            la.column_mut(j)
                .assign(&linalg::solve_lower(l, a.column(j)));
        }
        let g = la.dot(&la.t());
        let g = (&g + &g.t()) * 0.5;
        let (lambda, u) = linalg::symmetric_eigen(g.view());
        let b = u.t().dot(&la);
        let yw = u
            .t()
            .dot(&linalg::solve_lower(l, y.mapv(|v| v.as_f64()).view()));
        Ok(Self {
            b: b.mapv(F::lit),
            lambda: lambda.mapv(|v| F::lit(v.max(0.0))),
            y: yw.mapv(F::lit),
        })
    }
}

/// Per-call buffers (pooled: `&self` score calls allocate nothing after the first).
#[derive(Debug)]
struct Buffers<F> {
    x0: Array2<F>,
    u: Array2<F>,
    ju: Array2<F>,
    jvp: ScoreJvp<F>,
}

/// DPS / ΠGDM likelihood term for `y = A x₀ + n`; use it in [`Guided`](super::Guided).
///
/// DPS and ΠGDM: `∇ₓ log p_t(y | x)` for a linear-Gaussian observation `y = A x₀ + n`,
/// `n ~ N(0, Σ_n)`, through Tweedie's denoiser, for any score model.
///
/// `p_t(y | x_t) = ∫ N(y; A x₀, Σ_n) p(x₀ | x_t) dx₀` is intractable; both methods replace
/// `p(x₀ | x_t)` by a Gaussian centred at Tweedie's `x̂₀ = (x_t + σ² s(x_t, t))/α`:
///
/// ```text
/// p_t(y | x_t) ≈ N(y; A x̂₀, r_t² A Aᵀ + Σ_n)
/// ∇ₓ log p_t(y | x_t) ≈ (∂x̂₀/∂x_t)ᵀ Aᵀ (r_t² A Aᵀ + Σ_n)⁻¹ (y − A x̂₀)
/// ```
///
/// * **DPS** (Chung et al. 2023, "Diffusion Posterior Sampling", eq. 16 / Thm. 1): a point
///   mass at `x̂₀`, `r_t = 0`. (Their Algorithm 1 rescales the gradient by `ζ/‖y − A x̂₀‖`
///   for noisy images; the guidance scale `w` of [`Guided`](super::Guided) plays that role.)
/// * **ΠGDM** (Song, Vahdat, Mardani & Kautz 2023, "Pseudoinverse-Guided Diffusion Models",
///   eq. 7–8): `p(x₀ | x_t) ≈ N(x̂₀, r_t² I)` with `r_t² = c σ²/(α² c + σ²)` — the posterior
///   variance of `x₀` when the data are `N(·, c I)` (`σ²/(1 + σ²)` for VE and unit-variance
///   data, as the paper; `c = 1` by default). For data that *are* Gaussian with covariance
///   `c I` this is the exact `∇ log p_t(y | x)`.
///
/// The Jacobian `∂x̂₀/∂x_t = (I + σ² ∇ₓ s)/α` is symmetric when `s` is a gradient, so the
/// vector–Jacobian product is the Jacobian–vector product `(u + σ² J_s u)/α`, computed by
/// central differences of the score ([`ScoreJvp`], 2 more model calls per evaluation —
/// what a backward pass through a network costs, roughly).
/// [`JacobianMode::Identity`] drops the `σ² J_s` term (`∂x̂₀/∂x_t ≈ I/α`, no extra calls).
///
/// The `M × M` solve is done once: with `Σ_n = L Lᵀ` and `L⁻¹ A Aᵀ L⁻ᵀ = U Λ Uᵀ`,
/// `Aᵀ (r² A Aᵀ + Σ_n)⁻¹ (y − A x̂₀) = Bᵀ (r² Λ + I)⁻¹ (ỹ − B x̂₀)` with `B = Uᵀ L⁻¹ A` and
/// `ỹ = Uᵀ L⁻¹ y` precomputed, so each call costs `O(M D)` per row and allocates nothing
/// after the first.
///
/// ```
/// use score_sde::condition::{Guided, LinearGaussian, TweedieLikelihood};
/// use score_sde::prelude::*;
/// use ndarray::array;
/// // Prior N(0, I) in 2-D, observe x₀ + x₁ with noise variance 0.1, y = 1.
/// let vp = VpLinear::<f64>::default();
/// let prior = GaussianMixture::gaussian(array![0.0, 0.0], ndarray::Array2::eye(2))?;
/// let obs = LinearGaussian::new(array![[1.0, 1.0]], array![[0.1]])?;
/// let model = AnalyticScore::new(prior.clone(), vp);
/// // For data N(0, I), ΠGDM's term is exact: the guided score is the posterior's score.
/// let pigdm = TweedieLikelihood::pigdm(obs.clone(), array![1.0].view(), vp)?;
/// let guided = Guided::new(&model, pigdm, 1.0)?;
/// let exact = AnalyticScore::new(obs.posterior(&prior, array![1.0].view())?, vp);
/// let x = array![[0.3, -0.2], [1.0, 2.0]];
/// let (mut a, mut b) = (ndarray::Array2::zeros((2, 2)), ndarray::Array2::zeros((2, 2)));
/// guided.score(x.view(), 0.4, a.view_mut())?;
/// exact.score(x.view(), 0.4, b.view_mut())?;
/// assert!((&a - &b).iter().all(|e| e.abs() < 1e-6));
/// # Ok::<(), score_sde::Error>(())
/// ```
pub struct TweedieLikelihood<F: Real, S> {
    approx: TweedieApprox,
    jacobian: JacobianMode,
    schedule: S,
    whitened: Whitened<F>,
    dim: usize,
    pool: Mutex<Vec<Buffers<F>>>,
}

impl<F: Real, S> std::fmt::Debug for TweedieLikelihood<F, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TweedieLikelihood")
            .field("approx", &self.approx)
            .field("jacobian", &self.jacobian)
            .field("dim", &self.dim)
            .field("observations", &self.whitened.y.len())
            .finish_non_exhaustive()
    }
}

impl<F: Real, S: Schedule<F>> TweedieLikelihood<F, S> {
    /// DPS (Chung et al. 2023) for the observation `y` of `obs`, under `schedule` (the
    /// schedule of the score model: Tweedie's `α`, `σ`).
    pub fn dps(obs: LinearGaussian<F>, y: ArrayView1<F>, schedule: S) -> Result<Self> {
        Self::new(TweedieApprox::Dps, obs, y, schedule)
    }
    /// ΠGDM (Song et al. 2023) with data variance 1 for the observation `y` of `obs`.
    pub fn pigdm(obs: LinearGaussian<F>, y: ArrayView1<F>, schedule: S) -> Result<Self> {
        Self::new(TweedieApprox::Pigdm { data_var: 1.0 }, obs, y, schedule)
    }
    /// Either approximation (a ΠGDM data variance must be finite and `> 0`).
    pub fn new(
        approx: TweedieApprox,
        obs: LinearGaussian<F>,
        y: ArrayView1<F>,
        schedule: S,
    ) -> Result<Self> {
        if let TweedieApprox::Pigdm { data_var } = approx {
            if !(data_var.is_finite() && data_var > 0.0) {
                return Err(Error::param("data_var", data_var, "must be finite and > 0"));
            }
        }
        let whitened = Whitened::new(&obs, y)?;
        Ok(Self {
            approx,
            jacobian: JacobianMode::default(),
            schedule,
            dim: obs.matrix().ncols(),
            whitened,
            pool: Mutex::new(Vec::new()),
        })
    }
    /// How the Jacobian of Tweedie's denoiser enters (default: finite differences).
    pub fn jacobian(mut self, mode: JacobianMode) -> Self {
        self.jacobian = mode;
        self
    }
    /// The approximation.
    pub fn approx(&self) -> TweedieApprox {
        self.approx
    }
    /// `r_t²`: 0 for DPS, `c σ²/(α² c + σ²)` for ΠGDM.
    pub fn r2(&self, t: F) -> F {
        match self.approx {
            TweedieApprox::Dps => F::zero(),
            TweedieApprox::Pigdm { data_var } => {
                let c = F::lit(data_var);
                let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
                c * s * s / (a * a * c + s * s)
            }
        }
    }
    fn buffers(&self, shape: (usize, usize)) -> Result<Buffers<F>> {
        let got = self.pool.lock().ok().and_then(|mut p| p.pop());
        match got {
            Some(b) if b.x0.dim() == shape => Ok(b),
            _ => Ok(Buffers {
                x0: Array2::zeros(shape),
                u: Array2::zeros(shape),
                ju: Array2::zeros(shape),
                jvp: ScoreJvp::new(shape.0, shape.1)?,
            }),
        }
    }
    fn give(&self, b: Buffers<F>) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < 8 {
                p.push(b);
            }
        }
    }
    /// `∇ₓ log p_t(y | x)` into `out`, with the buffers `buf`.
    fn eval(
        &self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        score: ArrayView2<F>,
        mut out: ArrayViewMut2<F>,
        buf: &mut Buffers<F>,
    ) -> Result<()> {
        let (a, s) = (self.schedule.alpha(t), self.schedule.sigma(t));
        let s2 = s * s;
        let r2 = self.r2(t);
        let w = &self.whitened;
        // x̂₀ = (x + σ² s)/α (Tweedie).
        Zip::from(&mut buf.x0)
            .and(&x)
            .and(&score)
            .for_each(|o, &x, &s| *o = (x + s2 * s) / a);
        // u = Bᵀ (r² Λ + I)⁻¹ (ỹ − B x̂₀), row by row.
        Zip::from(buf.u.rows_mut())
            .and(buf.x0.rows())
            .for_each(|mut u, x0| {
                u.fill(F::zero());
                for m in 0..w.y.len() {
                    let bm = w.b.row(m);
                    let c = (w.y[m] - bm.dot(&x0)) / (r2 * w.lambda[m] + F::one());
                    u.scaled_add(c, &bm);
                }
            });
        // out = (∂x̂₀/∂x)ᵀ u = (u + σ² J_s u)/α.
        match self.jacobian {
            JacobianMode::Identity => {
                Zip::from(&mut out).and(&buf.u).for_each(|o, &u| *o = u / a);
            }
            JacobianMode::FiniteDifference => {
                buf.jvp.eval(model, x, t, buf.u.view(), buf.ju.view_mut())?;
                Zip::from(&mut out)
                    .and(&buf.u)
                    .and(&buf.ju)
                    .for_each(|o, &u, &ju| *o = (u + s2 * ju) / a);
            }
        }
        Ok(())
    }
}

impl<F: Real, S: Schedule<F>> LikelihoodGradient<F> for TweedieLikelihood<F, S> {
    fn grad_log_likelihood(
        &self,
        model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        score: ArrayView2<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check::same_shape("score of the batch", x.shape(), score.shape())?;
        check::same_shape("likelihood gradient output", x.shape(), out.shape())?;
        if x.ncols() != self.dim {
            return Err(Error::shape("x (columns = D of A)", self.dim, x.ncols()));
        }
        let mut buf = self.buffers(x.dim())?;
        let r = self.eval(model, x, t, score, out, &mut buf);
        self.give(buf);
        r
    }
    fn model_calls(&self) -> usize {
        match self.jacobian {
            JacobianMode::FiniteDifference => 2,
            JacobianMode::Identity => 0,
        }
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
}
