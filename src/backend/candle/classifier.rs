//! A time-dependent classifier `p_t(y | x_t)` in candle, for classifier guidance
//! (Song et al. 2021, §5 and App. I.1; Dhariwal & Nichol 2021, §4): trained by
//! cross-entropy on noised data `x_t = α(t) x_0 + σ(t) z`, `t ~ U[t_min, T]`, and
//! differentiated by candle's autograd for `∇ₓ log p_t(y | x)`.

use super::adam::{Adam, AdamParams};
use super::{TimeModule, candle_err};
use crate::condition::ClassifierGradient;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::Parameterization;
use crate::sde::MarginalSde;
use crate::train::{TimeSampling, Weighting, make_batch};
use candle_core::{DType, Tensor, Var, WithDType};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rand::{Rng, RngCore};

/// A [`TimeModule`] returning `[N, classes]` logits as a classifier of noisy inputs
/// (e.g. a [`TimeMlp::with_output`](super::TimeMlp::with_output)).
#[derive(Debug, Clone)]
pub struct TimeClassifier<M> {
    module: M,
    dim: usize,
    classes: usize,
}

impl<M: TimeModule> TimeClassifier<M> {
    /// Wrap `module`, which maps `[N, dim]` inputs to `[N, classes]` logits.
    pub fn new(module: M, dim: usize, classes: usize) -> Self {
        Self {
            module,
            dim,
            classes,
        }
    }

    /// The module.
    pub fn module(&self) -> &M {
        &self.module
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    fn tensors<F: Real + WithDType>(&self, x: ArrayView2<F>, t: &[F]) -> Result<(Tensor, Tensor)> {
        if x.ncols() != self.dim {
            return Err(Error::shape(
                "x (columns = classifier dimension)",
                self.dim,
                x.ncols(),
            ));
        }
        if t.len() != x.nrows() {
            return Err(Error::shape("times (one per row)", x.nrows(), t.len()));
        }
        crate::check::finite("classifier input", &x)?;
        let (n, dev, dtype) = (x.nrows(), self.module.device(), self.module.dtype());
        let xs = Tensor::from_iter(x.iter().copied(), dev)
            .and_then(|v| v.reshape((n, self.dim))?.to_dtype(dtype));
        let ts = Tensor::from_iter(t.iter().copied(), dev)
            .and_then(|v| v.reshape((n, 1))?.to_dtype(dtype));
        Ok((xs.map_err(candle_err)?, ts.map_err(candle_err)?))
    }

    fn logits_tensor(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let y = self.module.forward_t(x, t).map_err(candle_err)?;
        let want = [x.dims()[0], self.classes];
        if y.dims() != want {
            return Err(Error::shape("classifier logits", &want[..], y.dims()));
        }
        Ok(y)
    }

    /// `log p_t(k | x)` for every row and class, `[N, classes]`.
    pub fn log_probs<F: Real + WithDType>(&self, x: ArrayView2<F>, t: F) -> Result<Array2<F>> {
        let (xs, ts) = self.tensors(x, &vec![t; x.nrows()])?;
        let lp = candle_nn::ops::log_softmax(&self.logits_tensor(&xs, &ts)?, 1)
            .and_then(|l| l.to_dtype(F::DTYPE)?.flatten_all()?.to_vec1::<F>())
            .map_err(candle_err)?;
        Array2::from_shape_vec((x.nrows(), self.classes), lp)
            .map_err(|e| Error::Model(e.to_string()))
    }

    /// The most probable class of every row at time `t`.
    pub fn predict<F: Real + WithDType>(&self, x: ArrayView2<F>, t: F) -> Result<Vec<usize>> {
        let lp = self.log_probs(x, t)?;
        Ok(lp
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .fold(
                        (0, F::neg_infinity()),
                        |a, (k, &v)| if v > a.1 { (k, v) } else { a },
                    )
                    .0
            })
            .collect())
    }
}

impl<F: Real + WithDType, M: TimeModule> ClassifierGradient<F> for TimeClassifier<M> {
    fn grad_log_prob(
        &self,
        x: ArrayView2<F>,
        t: F,
        class: usize,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        crate::check::same_shape("classifier gradient output", x.shape(), out.shape())?;
        if class >= self.classes {
            return Err(Error::param(
                "class",
                class as f64,
                "must be < the number of classes",
            ));
        }
        let (xs, ts) = self.tensors(x, &vec![t; x.nrows()])?;
        let xv = Var::from_tensor(&xs).map_err(candle_err)?;
        let logits = self.logits_tensor(xv.as_tensor(), &ts)?;
        // Σ_rows log softmax(logits)[row, class]: rows are independent, so its gradient with
        // respect to row r is ∇ log p_t(class | x_r).
        let grad = candle_nn::ops::log_softmax(&logits, 1)
            .and_then(|lp| lp.narrow(1, class, 1)?.sum_all())
            .and_then(|l| l.backward())
            .map_err(candle_err)?;
        let g = grad
            .get(xv.as_tensor())
            .ok_or_else(|| Error::Model("classifier: no gradient for the input".into()))?;
        let v: Vec<F> = g
            .to_dtype(F::DTYPE)
            .and_then(|g| g.flatten_all()?.to_vec1::<F>())
            .map_err(candle_err)?;
        for (o, v) in out.iter_mut().zip(v) {
            *o = v;
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "classifier gradient",
                index: i,
                value: out.iter().nth(i).map_or(f64::NAN, |v| v.as_f64()),
            });
        }
        Ok(())
    }
    fn n_classes(&self) -> Option<usize> {
        Some(self.classes)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
}

/// Settings of [`fit_classifier`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClassifierFit {
    /// Optimiser steps (default 2000).
    pub steps: usize,
    /// Rows per step, drawn with replacement (default 256).
    pub batch_size: usize,
    /// The optimiser's settings (default AdamW at 10⁻³, no weight decay).
    pub adam: AdamParams,
}

impl Default for ClassifierFit {
    fn default() -> Self {
        Self {
            steps: 2000,
            batch_size: 256,
            adam: AdamParams::default(),
        }
    }
}

impl ClassifierFit {
    /// Set the number of steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Set the batch size.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }
    /// Set the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.adam.lr = lr;
        self
    }
}

/// Train `classifier` (parameters `vars`) by cross-entropy on noised data: each step draws
/// `batch_size` rows of `data` with their `labels`, noises them at `t ~ U[t_min, T]` with
/// [`make_batch`], and takes one AdamW step. Returns every step's loss (nats).
pub fn fit_classifier<F: Real + WithDType, M: TimeModule>(
    classifier: &TimeClassifier<M>,
    vars: Vec<(String, Var)>,
    sde: &dyn MarginalSde<F>,
    data: ArrayView2<F>,
    labels: &[u8],
    config: &ClassifierFit,
    rng: &mut dyn RngCore,
) -> Result<Vec<f64>> {
    crate::check::nonempty_batch("classifier training data", &data)?;
    if labels.len() != data.nrows() {
        return Err(Error::shape(
            "labels (one per data row)",
            data.nrows(),
            labels.len(),
        ));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classifier.classes) {
        return Err(Error::param(
            "label",
            f64::from(l),
            "must be < the number of classes",
        ));
    }
    if config.batch_size == 0 {
        return Err(Error::param("batch_size", 0.0, "must be at least 1"));
    }
    let mut opt = Adam::new(vars, config.adam)?;
    let dev = classifier.module.device().clone();
    let mut losses = Vec::with_capacity(config.steps);
    for _ in 0..config.steps {
        let idx: Vec<usize> = (0..config.batch_size)
            .map(|_| rng.random_range(0..data.nrows()))
            .collect();
        let x0 = data.select(Axis(0), &idx);
        let batch = make_batch(
            sde,
            x0.view(),
            TimeSampling::Uniform,
            Parameterization::Noise,
            Weighting::Sigma2,
            rng,
        )?;
        let t: Vec<F> = batch.t.to_vec();
        let (xs, ts) = classifier.tensors(batch.x_t.view(), &t)?;
        let target = Tensor::from_iter(idx.iter().map(|&i| u32::from(labels[i])), &dev)
            .map_err(candle_err)?;
        let logits = classifier.logits_tensor(&xs, &ts)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &target).map_err(candle_err)?;
        let value = loss
            .to_dtype(DType::F64)
            .and_then(|l| l.to_scalar::<f64>())
            .map_err(candle_err)?;
        if !value.is_finite() {
            return Err(Error::NonFinite {
                what: "classifier training loss",
                index: losses.len(),
                value,
            });
        }
        opt.backward_step(&loss)?;
        losses.push(value);
    }
    Ok(losses)
}
