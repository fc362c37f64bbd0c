//! The exact time-dependent classifier of a Gaussian mixture's components.

use super::Scratch;
use super::guidance::{ClassifierGradient, ConditionalScore};
use crate::error::{Error, Result};
use crate::gmm::{AnalyticScore, GaussianMixture};
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::{ScoreModel, check_score_call};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// The exact classifier of a mixture whose classes are its components.
///
/// Under the diffused mixture `p_t = Σ_k w_k N(α μ_k, α² S_k + σ² I)` the class posterior
/// is the responsibility and its gradient is a difference of scores:
///
/// ```text
/// p_t(k | x) = w_k p_{t,k}(x) / p_t(x)
/// ∇ₓ log p_t(k | x) = ∇ₓ log p_{t,k}(x) − ∇ₓ log p_t(x) = s_k(x) − s(x)
/// ```
///
/// with `p_{t,k} = N(α μ_k, α² S_k + σ² I)` and `s_k` its score. It implements
/// [`ClassifierGradient`] (for [`ClassifierGuidance`](super::ClassifierGuidance)) and
/// [`ConditionalScore`] (`Some(k)`: `s_k`, `None`: `s`, for
/// [`ClassifierFree`](super::ClassifierFree)), so both guidance schemes can be tested against
/// the exact conditional `p_0(x | k) = N(μ_k, S_k)`.
///
/// ```
/// use score_sde::condition::MixtureClassifier;
/// use score_sde::prelude::*;
/// use ndarray::array;
/// let ring = problems::ring2d::<f64>();
/// let clf = MixtureClassifier::new(ring, VpLinear::default());
/// // At t = 1 (almost pure noise) the classifier is nearly uninformed: p ≈ 1/8 each.
/// let p = clf.probs(array![[0.3, -0.2]].view(), 1.0).unwrap();
/// assert!(p.iter().all(|&v| (v - 0.125).abs() < 0.01));
/// ```
#[derive(Debug, Clone)]
pub struct MixtureClassifier<F: Real, S> {
    full: AnalyticScore<F, S>,
    comps: Vec<AnalyticScore<F, S>>,
    scratch: Scratch<F>,
}

impl<F: Real, S: Schedule<F> + Clone> MixtureClassifier<F, S> {
    /// The classifier of `mixture`'s components under `schedule`.
    pub fn new(mixture: GaussianMixture<F>, schedule: S) -> Self {
        let comps = (0..mixture.n_components())
            .filter_map(|k| mixture.component(k))
            .map(|c| AnalyticScore::new(c, schedule.clone()))
            .collect();
        Self {
            full: AnalyticScore::new(mixture, schedule),
            comps,
            scratch: Scratch::new(),
        }
    }
}

impl<F: Real, S: Schedule<F>> MixtureClassifier<F, S> {
    /// The mixture.
    pub fn mixture(&self) -> &GaussianMixture<F> {
        self.full.mixture()
    }
    /// The class probabilities `p_t(k | x)`, one row per sample (`N × K`).
    pub fn probs(&self, x: ArrayView2<F>, t: F) -> Result<Array2<F>> {
        let sch = self.full.schedule();
        crate::schedule::check_t_from_zero(sch, t)?;
        self.mixture()
            .responsibilities_at(sch.alpha(t), sch.sigma(t), x)
    }
    fn check_class(&self, class: usize) -> Result<()> {
        if class >= self.comps.len() {
            return Err(Error::param(
                "class",
                class as f64,
                "must be < the number of mixture components",
            ));
        }
        Ok(())
    }
}

impl<F: Real, S: Schedule<F>> ClassifierGradient<F> for MixtureClassifier<F, S> {
    fn grad_log_prob(
        &self,
        x: ArrayView2<F>,
        t: F,
        class: usize,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        self.check_class(class)?;
        check_score_call(Some(self.mixture().dim()), &x, &out)?;
        self.comps[class].score(x, t, out.view_mut())?;
        let mut s = self.scratch.take(x.dim());
        let r = self.full.score(x, t, s.view_mut());
        if r.is_ok() {
            out -= &s;
        }
        self.scratch.give(s);
        r?;
        super::finite_combination("classifier gradient s_k − s", &out)
    }
    fn n_classes(&self) -> Option<usize> {
        Some(self.comps.len())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.mixture().dim())
    }
}

impl<F: Real, S: Schedule<F>> ConditionalScore<F> for MixtureClassifier<F, S> {
    fn score_given(
        &self,
        x: ArrayView2<F>,
        t: F,
        class: Option<usize>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        match class {
            None => self.full.score(x, t, out),
            Some(k) => {
                self.check_class(k)?;
                self.comps[k].score(x, t, out)
            }
        }
    }
    fn n_classes(&self) -> Option<usize> {
        Some(self.comps.len())
    }
    fn dim(&self) -> Option<usize> {
        Some(self.mixture().dim())
    }
}
