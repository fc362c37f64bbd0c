//! Classifier guidance and classifier-free guidance as [`ScoreModel`] adapters.

use super::Scratch;
use super::likelihood::{Guided, LikelihoodGradient};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::{ScoreModel, check_score_call};
use ndarray::{ArrayView2, ArrayViewMut2, Zip};
use std::fmt;

/// The gradient `∇ₓ log p_t(y = class | x)` of a time-dependent classifier on noisy inputs.
///
/// This is the trait a user implements for a classifier trained on `x_t` (Song et al. 2021,
/// §5 and App. I.1; Dhariwal & Nichol 2021, §4). Rows of `x` are samples at the common time
/// `t`; the gradient of each row goes into the same row of `out`. Object safe; implemented
/// for `&C`, `Box<C>` and `Arc<C>`. [`MixtureClassifier`](super::MixtureClassifier) is the
/// exact classifier of a Gaussian mixture's components.
///
/// ```
/// use score_sde::condition::ClassifierGradient;
/// use score_sde::Result;
/// use ndarray::{ArrayView2, ArrayViewMut2};
/// /// Two classes split by the sign of x₀, with a logistic classifier p(1 | x) = σ(x₀/τ).
/// struct Logistic { tau: f64 }
/// impl ClassifierGradient<f64> for Logistic {
///     fn grad_log_prob(&self, x: ArrayView2<f64>, _t: f64, class: usize,
///                      mut out: ArrayViewMut2<f64>) -> Result<()> {
///         out.fill(0.0);
///         for (i, row) in x.rows().into_iter().enumerate() {
///             let p1 = 1.0 / (1.0 + (-row[0] / self.tau).exp());
///             // d/dx₀ log σ(x₀/τ) = (1 − p₁)/τ;  d/dx₀ log(1 − σ(x₀/τ)) = −p₁/τ
///             out[[i, 0]] = if class == 1 { (1.0 - p1) / self.tau } else { -p1 / self.tau };
///         }
///         Ok(())
///     }
///     fn n_classes(&self) -> Option<usize> { Some(2) }
/// }
/// ```
pub trait ClassifierGradient<F: Real>: Send + Sync {
    /// Write `∇ₓ log p_t(y = class | x)` for every row of `x` into `out` (same shape).
    fn grad_log_prob(
        &self,
        x: ArrayView2<F>,
        t: F,
        class: usize,
        out: ArrayViewMut2<F>,
    ) -> Result<()>;
    /// The number of classes, if known (guidance adapters then check the class index).
    fn n_classes(&self) -> Option<usize> {
        None
    }
    /// The data dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
    }
}

macro_rules! forward_classifier {
    ($($ty:ty),*) => {$(
        impl<F: Real, C: ClassifierGradient<F> + ?Sized> ClassifierGradient<F> for $ty {
            fn grad_log_prob(&self, x: ArrayView2<F>, t: F, class: usize, out: ArrayViewMut2<F>) -> Result<()> {
                (**self).grad_log_prob(x, t, class, out)
            }
            fn n_classes(&self) -> Option<usize> { (**self).n_classes() }
            fn dim(&self) -> Option<usize> { (**self).dim() }
        }
    )*};
}
forward_classifier!(&C, Box<C>, std::sync::Arc<C>);

/// A score model with a conditioning input: `class = Some(k)` gives `∇ₓ log p_t(x | k)`,
/// `None` the unconditional score (the "null label" a classifier-free-guidance network is
/// trained with, Ho & Salimans 2022, §3.2).
///
/// Implemented for `&M`, `Box<M>`, `Arc<M>`, and by
/// [`MixtureClassifier`](super::MixtureClassifier) (component `k` / the whole mixture).
/// [`WithClass`] fixes the label and gives a [`ScoreModel`];
/// [`ClassifierFree::switch`] evaluates one such model twice.
pub trait ConditionalScore<F: Real>: Send + Sync {
    /// Write `∇ₓ log p_t(x | class)` (or `∇ₓ log p_t(x)` for `None`) into `out`.
    fn score_given(
        &self,
        x: ArrayView2<F>,
        t: F,
        class: Option<usize>,
        out: ArrayViewMut2<F>,
    ) -> Result<()>;
    /// The number of classes, if known.
    fn n_classes(&self) -> Option<usize> {
        None
    }
    /// The data dimension, if fixed.
    fn dim(&self) -> Option<usize> {
        None
    }
}

macro_rules! forward_conditional {
    ($($ty:ty),*) => {$(
        impl<F: Real, M: ConditionalScore<F> + ?Sized> ConditionalScore<F> for $ty {
            fn score_given(&self, x: ArrayView2<F>, t: F, class: Option<usize>, out: ArrayViewMut2<F>) -> Result<()> {
                (**self).score_given(x, t, class, out)
            }
            fn n_classes(&self) -> Option<usize> { (**self).n_classes() }
            fn dim(&self) -> Option<usize> { (**self).dim() }
        }
    )*};
}
forward_conditional!(&M, Box<M>, std::sync::Arc<M>);

fn check_class(class: usize, n: Option<usize>) -> Result<()> {
    if let Some(n) = n {
        if class >= n {
            return Err(Error::param(
                "class",
                class as f64,
                "must be < the number of classes",
            ));
        }
    }
    Ok(())
}

fn check_scale<F: Real>(scale: F) -> Result<()> {
    if !(scale.is_finite() && scale >= F::zero()) {
        return Err(Error::param(
            "guidance scale",
            scale.as_f64(),
            "must be finite and >= 0",
        ));
    }
    Ok(())
}

/// A [`ConditionalScore`] with its label fixed: a plain [`ScoreModel`].
///
/// ```
/// use score_sde::condition::{MixtureClassifier, WithClass};
/// use score_sde::prelude::*;
/// let ring = problems::ring2d::<f64>();
/// let comp2 = WithClass::new(MixtureClassifier::new(ring, VpLinear::default()), Some(2)).unwrap();
/// assert_eq!(ScoreModel::<f64>::dim(&comp2), Some(2));
/// ```
#[derive(Debug, Clone)]
pub struct WithClass<M> {
    model: M,
    class: Option<usize>,
}

impl<M> WithClass<M> {
    /// Fix `model`'s label to `class` (`None`: unconditional). Errors if the model knows its
    /// number of classes and `class` is not below it.
    pub fn new<F: Real>(model: M, class: Option<usize>) -> Result<Self>
    where
        M: ConditionalScore<F>,
    {
        if let Some(c) = class {
            check_class(c, model.n_classes())?;
        }
        Ok(Self { model, class })
    }
    /// The label.
    pub fn class(&self) -> Option<usize> {
        self.class
    }
    /// The wrapped model.
    pub fn inner(&self) -> &M {
        &self.model
    }
}

impl<F: Real, M: ConditionalScore<F>> ScoreModel<F> for WithClass<M> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(self.model.dim(), &x, &out)?;
        self.model.score_given(x, t, self.class, out)
    }
    fn dim(&self) -> Option<usize> {
        self.model.dim()
    }
}

/// A time-dependent classifier with its class fixed, as a likelihood term:
/// `∇ₓ log p_t(y = class | x)` ([`ClassifierGradient`]).
#[derive(Debug, Clone)]
pub struct ClassLikelihood<C> {
    classifier: C,
    class: usize,
}

impl<C> ClassLikelihood<C> {
    /// `classifier` with its label fixed to `class` (checked if it knows its classes).
    pub fn new<F: Real>(classifier: C, class: usize) -> Result<Self>
    where
        C: ClassifierGradient<F>,
    {
        if let Some(n) = classifier.n_classes() {
            if class >= n {
                return Err(Error::param(
                    "class",
                    class as f64,
                    "must be < the number of classes",
                ));
            }
        }
        Ok(Self { classifier, class })
    }
    /// The class.
    pub fn class(&self) -> usize {
        self.class
    }
}

impl<F: Real, C: ClassifierGradient<F>> LikelihoodGradient<F> for ClassLikelihood<C> {
    fn grad_log_likelihood(
        &self,
        _model: &dyn ScoreModel<F>,
        x: ArrayView2<F>,
        t: F,
        _score: ArrayView2<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        self.classifier.grad_log_prob(x, t, self.class, out)
    }
    fn dim(&self) -> Option<usize> {
        self.classifier.dim()
    }
}

/// Classifier guidance: `s(x, t) + w ∇ₓ log p_t(y | x)`.
///
/// With `w = 1` this is the conditional score `∇ₓ log p_t(x | y)` exactly (Bayes' rule,
/// Song et al. 2021, eq. 14 / §5); `w > 1` samples from `∝ p_t(x) p_t(y | x)^w`, sharper
/// than the conditional (Dhariwal & Nichol 2021, §4.2 and Alg. 1, where `w` is `s`);
/// `w = 0` is the unconditional model. Negative scales are rejected: they would sample
/// `∝ p_t(x) / p_t(y | x)^|w|`, which is not a conditional of anything.
///
/// Each call costs one model and one classifier-gradient evaluation; samplers count it as
/// one NFE. Scratch buffers are pooled, so steady-state calls allocate nothing.
///
/// ```
/// use score_sde::condition::{ClassifierGuidance, MixtureClassifier};
/// use score_sde::prelude::*;
/// use ndarray::{array, Array2};
/// let ring = problems::ring2d::<f64>();
/// let vp = VpLinear::<f64>::default();
/// let model = AnalyticScore::new(ring.clone(), vp);
/// let clf = MixtureClassifier::new(ring, vp);
/// let sharp = ClassifierGuidance::new(&model, &clf, 0, 4.0).unwrap();
/// let mut s = Array2::zeros((1, 2));
/// sharp.score(array![[1.0, 1.0]].view(), 0.5, s.view_mut()).unwrap();
/// assert!(ClassifierGuidance::new(&model, &clf, 0, -1.0).is_err());
/// assert!(ClassifierGuidance::new(&model, &clf, 8, 1.0).is_err()); // the ring has 8 components
/// ```
pub struct ClassifierGuidance<M, C, F: Real> {
    guided: Guided<M, ClassLikelihood<C>, F>,
}

impl<M, C, F: Real> fmt::Debug for ClassifierGuidance<M, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifierGuidance")
            .field("class", &self.guided.likelihood().class())
            .field("scale", &self.guided.scale())
            .finish_non_exhaustive()
    }
}

impl<M: ScoreModel<F>, C: ClassifierGradient<F>, F: Real> ClassifierGuidance<M, C, F> {
    /// Guide `model` towards `class` with scale `w = scale` (finite, `≥ 0`). Errors on a
    /// bad scale, a class index the classifier does not have, or model and classifier
    /// dimensions that disagree.
    pub fn new(model: M, classifier: C, class: usize, scale: F) -> Result<Self> {
        check_scale(scale)?;
        let likelihood = ClassLikelihood::new(classifier, class)?;
        Ok(Self {
            guided: Guided::new(model, likelihood, scale)?,
        })
    }
    /// The guidance scale `w`.
    pub fn scale(&self) -> F {
        self.guided.scale()
    }
    /// The class guided towards.
    pub fn class(&self) -> usize {
        self.guided.likelihood().class()
    }
}

impl<M: ScoreModel<F>, C: ClassifierGradient<F>, F: Real> ScoreModel<F>
    for ClassifierGuidance<M, C, F>
{
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.guided.score(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        self.guided.dim()
    }
}

/// Classifier-free guidance: `s̃ = s_u + w (s_c − s_u)` (Ho & Salimans 2022, eq. 6, written
/// for scores: their `ε̃ = (1 + w') ε_c − w' ε_u` with `w = 1 + w'`), optionally rescaled.
///
/// `w = 1` is the conditional model and `w = 0` the unconditional one. These two cases are
/// returned *exactly*: the adapter calls only the one model concerned (one evaluation
/// instead of two), so samples are bit-identical to sampling that model directly. Other
/// scales evaluate both models (samplers still count one NFE per call).
///
/// **Guidance rescale** (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps
/// are Flawed", §3.4, eq. 15–16), set with [`ClassifierFree::rescale`]: per sample,
///
/// ```text
/// s_rescaled = s̃ · std(s_c) / std(s̃)           s_final = φ s_rescaled + (1 − φ) s̃
/// ```
///
/// with `std` the standard deviation over the `D` coordinates of one row. Lin et al. define
/// it on the network's prediction (ε or v). Here it is applied to the score vectors, which
/// is *identical* to applying it to ε-predictions: `ε = −σ(t) s` at one time is the same
/// linear map for every model and row, the guidance combination commutes with it, and
/// `std(−σ a) = σ std(a)`, so the ratio `std(ε_c)/std(ε̃) = std(s_c)/std(s̃)` and the final
/// `ε = −σ s_final`. (It is *not* the same as rescaling v- or x̂₀-predictions, which are
/// affine in `s` with an `x`-dependent offset.) The ratio does not depend on the Bessel
/// correction; the population std is used, and a row whose guided score has zero spread
/// (e.g. `D = 1`) is left unscaled.
///
/// ```
/// use score_sde::condition::{ClassifierFree, MixtureClassifier};
/// use score_sde::prelude::*;
/// use ndarray::{array, Array2};
/// let ring = problems::ring2d::<f64>();
/// let exact = MixtureClassifier::new(ring, VpLinear::default());
/// // One model, two labels: component 5 against the whole mixture, w = 3, φ = 0.7.
/// let cfg = ClassifierFree::switch(&exact, 5, 3.0).unwrap().rescale(0.7).unwrap();
/// let mut s = Array2::zeros((2, 2));
/// cfg.score(array![[0.0, 1.0], [2.0, -3.0]].view(), 0.3, s.view_mut()).unwrap();
/// assert!(s.iter().all(|v| v.is_finite()));
/// ```
pub struct ClassifierFree<U, C, F: Real> {
    uncond: U,
    cond: C,
    scale: F,
    phi: F,
    scratch: Scratch<F>,
}

impl<U, C, F: Real> fmt::Debug for ClassifierFree<U, C, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClassifierFree")
            .field("scale", &self.scale)
            .field("rescale_phi", &self.phi)
            .finish_non_exhaustive()
    }
}

impl<U: ScoreModel<F>, C: ScoreModel<F>, F: Real> ClassifierFree<U, C, F> {
    /// Guide with an unconditional model `uncond` and a conditional one `cond` at scale
    /// `w = scale` (finite, `≥ 0`); no rescale. Errors on a bad scale or mismatched
    /// dimensions.
    pub fn new(uncond: U, cond: C, scale: F) -> Result<Self> {
        check_scale(scale)?;
        if let (Some(a), Some(b)) = (uncond.dim(), cond.dim()) {
            if a != b {
                return Err(Error::shape("conditional model dimension", a, b));
            }
        }
        Ok(Self {
            uncond,
            cond,
            scale,
            phi: F::zero(),
            scratch: Scratch::new(),
        })
    }
    /// Turn on guidance rescale with mixing factor `φ ∈ [0, 1]` (Lin et al. 2023 use 0.7;
    /// `φ = 0` is plain classifier-free guidance).
    pub fn rescale(mut self, phi: F) -> Result<Self> {
        if !(phi.is_finite() && phi >= F::zero() && phi <= F::one()) {
            return Err(Error::param(
                "rescale phi",
                phi.as_f64(),
                "must lie in [0, 1]",
            ));
        }
        self.phi = phi;
        Ok(self)
    }
    /// The guidance scale `w`.
    pub fn scale(&self) -> F {
        self.scale
    }
    /// The rescale factor `φ` (0: off).
    pub fn rescale_phi(&self) -> F {
        self.phi
    }
}

impl<M: ConditionalScore<F> + Clone, F: Real> ClassifierFree<WithClass<M>, WithClass<M>, F> {
    /// One conditional model evaluated twice: with the null label (unconditional) and with
    /// `class`. Pass `&model` to avoid a copy.
    pub fn switch(model: M, class: usize, scale: F) -> Result<Self> {
        let cond = WithClass::new(model.clone(), Some(class))?;
        let uncond = WithClass::new(model, None)?;
        Self::new(uncond, cond, scale)
    }
}

impl<U: ScoreModel<F>, C: ScoreModel<F>, F: Real> ScoreModel<F> for ClassifierFree<U, C, F> {
    fn score(&self, x: ArrayView2<F>, t: F, mut out: ArrayViewMut2<F>) -> Result<()> {
        check_score_call(ScoreModel::dim(self), &x, &out)?;
        let w = self.scale;
        if w == F::one() {
            return self.cond.score(x, t, out);
        }
        if w == F::zero() {
            return self.uncond.score(x, t, out);
        }
        self.cond.score(x, t, out.view_mut())?;
        let mut u = self.scratch.take(x.dim());
        if let Err(e) = self.uncond.score(x, t, u.view_mut()) {
            self.scratch.give(u);
            return Err(e);
        }
        // u ← s̃ = s_u + w (s_c − s_u); out still holds s_c.
        Zip::from(&mut u)
            .and(&out)
            .for_each(|u, &c| *u = *u + w * (c - *u));
        if self.phi == F::zero() {
            out.assign(&u);
        } else {
            let phi = self.phi;
            Zip::from(out.rows_mut())
                .and(u.rows())
                .for_each(|mut o, g| {
                    let (sc, sg) = (row_std(o.view()), row_std(g));
                    let ratio = if sg > F::zero() && (sc / sg).is_finite() {
                        sc / sg
                    } else {
                        F::one()
                    };
                    let factor = phi * ratio + (F::one() - phi);
                    Zip::from(&mut o).and(&g).for_each(|o, &g| *o = g * factor);
                });
        }
        self.scratch.give(u);
        super::finite_combination("classifier-free guided score", &out)
    }
    fn dim(&self) -> Option<usize> {
        self.cond.dim().or(self.uncond.dim())
    }
}

/// Population standard deviation of one row.
fn row_std<F: Real>(r: ndarray::ArrayView1<F>) -> F {
    let n = F::from_usize_lossy(r.len());
    let m = r.sum() / n;
    (r.fold(F::zero(), |a, &v| a + (v - m) * (v - m)) / n).sqrt()
}
