//! The exact `∇ₓ log p_t(y | x)` of a Gaussian-mixture prior under a linear-Gaussian
//! observation — the reference the approximations are measured against.

use super::LinearGaussian;
use super::Scratch;
use super::likelihood::LikelihoodGradient;
use crate::error::Result;
use crate::gmm::{AnalyticScore, GaussianMixture};
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::ScoreModel;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

/// The exact likelihood term of a mixture prior `p_0` observed as `y = A x₀ + n`.
///
/// `y` and `x_t` are independent given `x₀`, so `p_t(x | y)` is the forward diffusion of the
/// posterior `p_0(x₀ | y)` — again a mixture ([`GaussianMixture::posterior`]) — and
///
/// ```text
/// ∇ₓ log p_t(y | x) = ∇ₓ log p_t(x | y) − ∇ₓ log p_t(x)   (Bayes; Song et al. 2021, eq. 14)
/// ```
///
/// is the difference of two exact mixture scores. With [`Guided`](super::Guided) at `w = 1`
/// it gives the exact conditional score, so sampling with it isolates a sampler's own error.
///
/// ```
/// use score_sde::condition::{ExactLikelihood, Guided, LinearGaussian};
/// use score_sde::prelude::*;
/// use ndarray::array;
/// let vp = VpLinear::<f64>::default();
/// let ring = problems::ring2d::<f64>();
/// let obs = LinearGaussian::new(array![[0.6, 0.8]], array![[0.05]])?;
/// let exact = ExactLikelihood::new(&ring, &obs, array![3.0].view(), vp)?;
/// let model = AnalyticScore::new(ring.clone(), vp);
/// let guided = Guided::new(&model, exact, 1.0)?;
/// let post = AnalyticScore::new(obs.posterior(&ring, array![3.0].view())?, vp);
/// let x = array![[1.0, 2.0]];
/// let (mut a, mut b) = (ndarray::Array2::zeros((1, 2)), ndarray::Array2::zeros((1, 2)));
/// guided.score(x.view(), 0.3, a.view_mut())?;
/// post.score(x.view(), 0.3, b.view_mut())?;
/// assert!((&a - &b).iter().all(|e| e.abs() < 1e-10));
/// # Ok::<(), score_sde::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ExactLikelihood<F: Real, S> {
    prior: AnalyticScore<F, S>,
    posterior: AnalyticScore<F, S>,
    scratch: Scratch<F>,
}

impl<F: Real, S: Schedule<F> + Clone> ExactLikelihood<F, S> {
    /// The exact term of `prior` given the observation `y` of `obs`, under `schedule`.
    pub fn new(
        prior: &GaussianMixture<F>,
        obs: &LinearGaussian<F>,
        y: ArrayView1<F>,
        schedule: S,
    ) -> Result<Self> {
        let post = obs.posterior(prior, y)?;
        Ok(Self {
            prior: AnalyticScore::new(prior.clone(), schedule.clone()),
            posterior: AnalyticScore::new(post, schedule),
            scratch: Scratch::new(),
        })
    }
    /// The exact posterior `p_0(x₀ | y)`.
    pub fn posterior(&self) -> &GaussianMixture<F> {
        self.posterior.mixture()
    }
}

impl<F: Real, S: Schedule<F>> LikelihoodGradient<F> for ExactLikelihood<F, S> {
    fn grad_log_likelihood(
        &self,
        _model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        _score: ArrayView2<F>,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        self.posterior.score(x, t, out.view_mut())?;
        let mut s = self.scratch.take(x.dim());
        let r = self.prior.score(x, t, s.view_mut());
        if r.is_ok() {
            out -= &s;
        }
        self.scratch.give(s);
        r
    }
    fn dim(&self) -> Option<usize> {
        Some(self.prior.mixture().dim())
    }
}
