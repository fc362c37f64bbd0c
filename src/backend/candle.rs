//! Score networks in candle (feature `candle`): any module of `(x, t)` as a [`Network`], a
//! small time-embedded MLP, and denoising-score-matching training with AdamW.
//!
//! A [`TimeModule`] maps `x` `[N, D]` and `t` `[N, 1]` to a prediction `[N, D]`;
//! [`CandleNetwork`] makes it a [`Network`], and [`Parameterized`] (alias [`CandleScore`])
//! turns the prediction — noise, data, velocity or score — into a [`ScoreModel`](crate::ScoreModel).
//! [`DsmTrainer`] regresses it on the targets of [`crate::train::make_batch`], whose
//! per-row weights carry the score-space weighting `λ(t)` into the parameterisation's own
//! space (Vincent 2011; Song et al. 2021, eq. 7), so every parameterisation optimises the
//! same objective.
//!
//! ```
//! use score_sde::backend::candle::{
//!     candle_core::{DType, Device}, candle_nn::{VarBuilder, VarMap},
//!     CandleNetwork, DsmTrainer, FitConfig, MlpConfig, TimeMlp,
//! };
//! use score_sde::prelude::*;
//! use rand::SeedableRng;
//! let sde = VpSde::<f32>::default();
//! let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
//! let data = problems::ring2d::<f32>().sample(1024, &mut rng)?;
//! let varmap = VarMap::new();
//! let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
//! let mlp = TimeMlp::new(2, &MlpConfig::default().hidden(32), vb)?;
//! let model = Parameterized::noise(CandleNetwork::new(mlp, 2), *sde.schedule());
//! let cfg = FitConfig::default().steps(5).batch_size(64);
//! let mut trainer = DsmTrainer::new(&model, varmap.all_vars(), &sde, data.view(), cfg)?;
//! let losses = trainer.fit(&mut rng)?;
//! assert_eq!(losses.len(), 5);
//! // `model` is now a ScoreModel for every sampler; `varmap.save(path)` writes safetensors.
//! # Ok::<(), score_sde::Error>(())
//! ```

pub use candle_core;
pub use candle_nn;

mod adam;
mod checkpoint;
mod classifier;
mod divergence;
mod ema;
mod fused;
mod spec;
mod unet;

pub use adam::{Adam, AdamParams};
pub use checkpoint::{ADAM, Checkpoint, EMA, MAX_CHECKPOINT_BYTES, NET, named_vars};
pub use classifier::{ClassifierFit, TimeClassifier, fit_classifier};
pub use divergence::AutogradDivergence;
pub use ema::Ema;
pub use spec::NetworkSpec;
pub use unet::{TimeUnet, UnetConfig};

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::score::{Network, Parameterized};
use crate::sde::MarginalSde;
use crate::train::{TimeSampling, TrainingBatch, Weighting, make_batch};
use candle_core::{DType, Device, Tensor, Var, WithDType};
use candle_nn::{Linear, Module, VarBuilder, VarMap};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use rand::{Rng, RngCore};
use std::fmt;

/// Convert a candle error into the crate's error.
pub fn candle_err(e: candle_core::Error) -> Error {
    Error::Model(format!("candle: {e}"))
}

/// A candle module of `(x, t)`: `x` is `[N, D]`, `t` is `[N, 1]`, the output `[N, D]` for a
/// score network ([`CandleNetwork`] checks it) or `[N, classes]` logits for a classifier
/// ([`TimeClassifier`]). Implemented for `&M` and `Arc<M>` too.
pub trait TimeModule: Send + Sync {
    /// Evaluate the module (tensors on [`TimeModule::device`] in [`TimeModule::dtype`]).
    fn forward_t(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor>;
    /// The element type of the module's parameters.
    fn dtype(&self) -> DType;
    /// The device of the module's parameters.
    fn device(&self) -> &Device;
}

macro_rules! forward_time_module {
    ($($ty:ty),*) => {$(
        impl<M: TimeModule + ?Sized> TimeModule for $ty {
            fn forward_t(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
                (**self).forward_t(x, t)
            }
            fn dtype(&self) -> DType {
                (**self).dtype()
            }
            fn device(&self) -> &Device {
                (**self).device()
            }
        }
    )*};
}
forward_time_module!(&M, std::sync::Arc<M>);

/// Sizes of [`TimeMlp`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct MlpConfig {
    /// Width of the hidden layers (default 128).
    pub hidden: usize,
    /// Number of hidden layers (default 3).
    pub layers: usize,
    /// Number of Fourier frequencies of the time embedding (default 8; the embedding has
    /// `2 × frequencies + 1` features).
    pub frequencies: usize,
    /// The highest frequency, in cycles per unit time (default 16): frequencies are
    /// geometric from 1/4 to this.
    pub max_frequency: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: 128,
            layers: 3,
            frequencies: 8,
            max_frequency: 16.0,
        }
    }
}

impl MlpConfig {
    /// Set the hidden width.
    pub fn hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }
    /// Set the number of hidden layers.
    pub fn layers(mut self, layers: usize) -> Self {
        self.layers = layers;
        self
    }
    /// Set the number of time frequencies.
    pub fn frequencies(mut self, frequencies: usize) -> Self {
        self.frequencies = frequencies;
        self
    }
}

/// A multilayer perceptron on `[x, t, sin(2π f_k t), cos(2π f_k t)]` with SiLU activations:
/// the small network of the `train_ring` example. Time enters as random-Fourier-style
/// features (Tancik et al. 2020; Song et al. 2021, App. H) so the net can resolve the fast
/// change of the target near `t = 0`. Suits times in about `[0, 1]` (VP and sub-VP).
#[derive(Debug, Clone)]
pub struct TimeMlp {
    layers: Vec<Linear>,
    /// `2π f_k`, shape `[1, K]`.
    omega: Tensor,
    dtype: DType,
    device: Device,
}

impl TimeMlp {
    /// A fresh MLP for data of dimension `dim`, its parameters created by `vb` (whose
    /// dtype and device the network uses).
    pub fn new(dim: usize, config: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_output(dim, dim, config, vb)
    }

    /// An MLP from `dim` inputs (plus the time features) to `outputs` values, e.g. the
    /// logits of a time-dependent classifier ([`TimeClassifier`]).
    pub fn with_output(
        dim: usize,
        outputs: usize,
        config: &MlpConfig,
        vb: VarBuilder,
    ) -> Result<Self> {
        if dim == 0 || outputs == 0 {
            return Err(Error::param(
                "dim/outputs",
                dim.min(outputs) as f64,
                "must be at least 1",
            ));
        }
        if config.hidden == 0 || config.layers == 0 {
            return Err(Error::param(
                "hidden/layers",
                config.hidden.min(config.layers) as f64,
                "must be at least 1",
            ));
        }
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let omega = fourier_frequencies(config.frequencies, config.max_frequency, dtype, &device)?;
        let k = config.frequencies;
        let mut layers = Vec::with_capacity(config.layers + 1);
        let mut width = dim + 2 * k + 1;
        for i in 0..config.layers {
            layers.push(
                candle_nn::linear(width, config.hidden, vb.pp(format!("hidden{i}")))
                    .map_err(candle_err)?,
            );
            width = config.hidden;
        }
        layers.push(candle_nn::linear(width, outputs, vb.pp("out")).map_err(candle_err)?);
        Ok(Self {
            layers,
            omega,
            dtype,
            device,
        })
    }
}

impl TimeModule for TimeMlp {
    fn forward_t(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = Tensor::cat(&[x, &time_features(t, &self.omega)?], 1)?;
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h)?;
            if i < last {
                h = h.silu()?;
            }
        }
        Ok(h)
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

/// `2π f_k` for `k` frequencies `f_k` geometric from 1/4 to `max_frequency` cycles per unit
/// time, as a `[1, k]` tensor (the time features of [`TimeMlp`] and [`TimeUnet`]).
pub fn fourier_frequencies(
    k: usize,
    max_frequency: f64,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    if !(max_frequency.is_finite() && max_frequency > 0.25) {
        return Err(Error::param(
            "max_frequency",
            max_frequency,
            "must be finite and > 1/4",
        ));
    }
    let omega: Vec<f64> = (0..k)
        .map(|i| {
            let frac = if k > 1 {
                i as f64 / (k - 1) as f64
            } else {
                0.0
            };
            2.0 * std::f64::consts::PI * 0.25 * (4.0 * max_frequency).powf(frac)
        })
        .collect();
    Tensor::from_vec(omega, (1, k), device)
        .and_then(|t| t.to_dtype(dtype))
        .map_err(candle_err)
}

/// `[t, sin(ω t), cos(ω t)]`, `[N, 2K + 1]`, from `t` `[N, 1]` and `omega` `[1, K]` (random
/// Fourier features of time: Tancik et al. 2020; Song et al. 2021, App. H).
pub fn time_features(t: &Tensor, omega: &Tensor) -> candle_core::Result<Tensor> {
    let phase = t.broadcast_mul(omega)?;
    Tensor::cat(&[t, &phase.sin()?, &phase.cos()?], 1)
}

/// A [`TimeModule`] as a [`Network`] on `ndarray` batches of `f32` or `f64` (converted to
/// the module's dtype and back).
#[derive(Debug, Clone)]
pub struct CandleNetwork<M> {
    module: M,
    dim: usize,
}

/// A candle network behind the parameterisation adapter: a [`ScoreModel`](crate::ScoreModel).
pub type CandleScore<M, S> = Parameterized<CandleNetwork<M>, S>;

impl<M: TimeModule> CandleNetwork<M> {
    /// Wrap `module`, whose data dimension is `dim`.
    pub fn new(module: M, dim: usize) -> Self {
        Self { module, dim }
    }
    /// The module.
    pub fn module(&self) -> &M {
        &self.module
    }
    /// The data dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// `[N, D]` and `[N, 1]` tensors in the module's dtype from an ndarray batch and times.
    fn inputs<F: Real + WithDType>(
        &self,
        x: ArrayView2<F>,
        t: impl Iterator<Item = F>,
    ) -> Result<(Tensor, Tensor)> {
        if x.ncols() != self.dim {
            return Err(Error::shape(
                "x (columns = model dimension)",
                self.dim,
                x.ncols(),
            ));
        }
        let n = x.nrows();
        let dev = self.module.device();
        let xs = Tensor::from_iter(x.iter().copied(), dev)
            .and_then(|v| v.reshape((n, self.dim)))
            .and_then(|v| v.to_dtype(self.module.dtype()))
            .map_err(candle_err)?;
        let ts = Tensor::from_iter(t, dev)
            .and_then(|v| v.reshape((n, 1)))
            .and_then(|v| v.to_dtype(self.module.dtype()))
            .map_err(candle_err)?;
        Ok((xs, ts))
    }
    /// Forward pass on tensors, checking the output shape.
    fn forward_tensor(&self, x: &Tensor, t: &Tensor) -> Result<Tensor> {
        let y = self.module.forward_t(x, t).map_err(candle_err)?;
        if y.dims() != x.dims() {
            return Err(Error::shape("candle module output", x.dims(), y.dims()));
        }
        Ok(y)
    }
    fn write<F: Real + WithDType>(y: &Tensor, mut out: ArrayViewMut2<F>) -> Result<()> {
        let v: Vec<F> = y
            .to_dtype(F::DTYPE)
            .and_then(|y| y.flatten_all())
            .and_then(|y| y.to_vec1::<F>())
            .map_err(candle_err)?;
        for (o, v) in out.iter_mut().zip(v) {
            *o = v;
        }
        Ok(())
    }
}

impl<F: Real + WithDType, M: TimeModule> Network<F> for CandleNetwork<M> {
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        check::same_shape("network output", x.shape(), out.shape())?;
        let (xs, ts) = self.inputs(x.view(), std::iter::repeat_n(t, x.nrows()))?;
        Self::write(&self.forward_tensor(&xs, &ts)?, out)
    }
    fn forward_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check::same_shape("network output", x.shape(), out.shape())?;
        check::same_shape("times", &[x.nrows()], t.shape())?;
        let (xs, ts) = self.inputs(x.view(), t.iter().copied())?;
        Self::write(&self.forward_tensor(&xs, &ts)?, out)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
}

/// Settings of [`DsmTrainer`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FitConfig {
    /// Number of optimiser steps of [`DsmTrainer::fit`] (default 2000).
    pub steps: usize,
    /// Rows per step, drawn with replacement from the data (default 512).
    pub batch_size: usize,
    /// AdamW learning rate (default 2e-3).
    pub lr: f64,
    /// AdamW decoupled weight decay (default 0).
    pub weight_decay: f64,
    /// How training times are drawn (default uniform on the SDE's range).
    pub time_sampling: TimeSampling,
    /// The score-space weight `λ(t)` (default `σ²`, i.e. Ho et al.'s ε-loss).
    pub weighting: Weighting,
}

impl Default for FitConfig {
    fn default() -> Self {
        Self {
            steps: 2000,
            batch_size: 512,
            lr: 2e-3,
            weight_decay: 0.0,
            time_sampling: TimeSampling::Uniform,
            weighting: Weighting::Sigma2,
        }
    }
}

impl FitConfig {
    /// Set the number of steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Set the batch size.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }
    /// Set the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }
    /// Set the weight decay.
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// Set the time sampling.
    pub fn time_sampling(mut self, time_sampling: TimeSampling) -> Self {
        self.time_sampling = time_sampling;
        self
    }
    /// Set the weighting.
    pub fn weighting(mut self, weighting: Weighting) -> Self {
        self.weighting = weighting;
        self
    }
}

/// Denoising score matching with AdamW ([`Adam`]) for a [`CandleScore`]: each step draws a batch of
/// data rows, noises it with [`make_batch`] for the model's parameterisation, and takes one
/// optimiser step on the weighted loss `mean_i c_i ‖pred_i − target_i‖²`
/// ([`TrainingBatch::loss`]).
pub struct DsmTrainer<'a, F, M, S> {
    model: &'a CandleScore<M, S>,
    sde: &'a dyn MarginalSde<F>,
    data: ArrayView2<'a, F>,
    opt: Adam,
    config: FitConfig,
}

impl<F, M, S> fmt::Debug for DsmTrainer<'_, F, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DsmTrainer")
            .field("config", &self.config)
            .field("data_rows", &self.data.nrows())
            .finish_non_exhaustive()
    }
}

impl<'a, F: Real + WithDType, M: TimeModule, S> DsmTrainer<'a, F, M, S> {
    /// A trainer of `vars` (the model's parameters, e.g. `varmap.all_vars()`) on `data`
    /// (rows are samples) noised by `sde`. The optimiser's state is named by position
    /// (`p0`, `p1`, …); [`DsmTrainer::from_varmap`] names it by parameter, as checkpoints need.
    pub fn new(
        model: &'a CandleScore<M, S>,
        vars: Vec<Var>,
        sde: &'a dyn MarginalSde<F>,
        data: ArrayView2<'a, F>,
        config: FitConfig,
    ) -> Result<Self> {
        let named = vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("p{i}"), v))
            .collect();
        Self::with_named_vars(model, named, sde, data, config)
    }

    /// A trainer of every variable of `varmap`, the optimiser's state named by parameter
    /// ([`Adam::state`]).
    pub fn from_varmap(
        model: &'a CandleScore<M, S>,
        varmap: &VarMap,
        sde: &'a dyn MarginalSde<F>,
        data: ArrayView2<'a, F>,
        config: FitConfig,
    ) -> Result<Self> {
        Self::with_named_vars(model, named_vars(varmap)?, sde, data, config)
    }

    fn with_named_vars(
        model: &'a CandleScore<M, S>,
        vars: Vec<(String, Var)>,
        sde: &'a dyn MarginalSde<F>,
        data: ArrayView2<'a, F>,
        config: FitConfig,
    ) -> Result<Self> {
        check::nonempty_batch("training data", &data)?;
        check::finite("training data", &data)?;
        let dim = model.network().dim();
        if data.ncols() != dim {
            return Err(Error::shape(
                "training data (columns = model dimension)",
                dim,
                data.ncols(),
            ));
        }
        if config.batch_size == 0 {
            return Err(Error::param("batch_size", 0.0, "must be at least 1"));
        }
        if !(config.lr.is_finite() && config.lr > 0.0) {
            return Err(Error::param("lr", config.lr, "must be finite and > 0"));
        }
        if !(config.weight_decay.is_finite() && config.weight_decay >= 0.0) {
            return Err(Error::param(
                "weight_decay",
                config.weight_decay,
                "must be finite and >= 0",
            ));
        }
        let params = AdamParams::default()
            .lr(config.lr)
            .weight_decay(config.weight_decay);
        let opt = Adam::new(vars, params)?;
        Ok(Self {
            model,
            sde,
            data,
            opt,
            config,
        })
    }

    /// Change the learning rate (for a schedule such as cosine decay in the caller's loop).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        self.opt.set_lr(lr)
    }

    /// The optimiser (its state for a checkpoint: [`Adam::state`]).
    pub fn optimizer(&self) -> &Adam {
        &self.opt
    }

    /// The optimiser, to restore its state ([`Adam::load_state`]) when resuming.
    pub fn optimizer_mut(&mut self) -> &mut Adam {
        &mut self.opt
    }

    /// The settings.
    pub fn config(&self) -> &FitConfig {
        &self.config
    }

    /// Draw a training batch of `n` data rows (with replacement) for the model.
    pub fn draw_batch(&self, n: usize, rng: &mut dyn RngCore) -> Result<TrainingBatch<F>> {
        let rows = self.data.nrows();
        let idx: Vec<usize> = (0..n).map(|_| rng.random_range(0..rows)).collect();
        let x0 = self.data.select(Axis(0), &idx);
        make_batch(
            self.sde,
            x0.view(),
            self.config.time_sampling,
            self.model.parameterization(),
            self.config.weighting,
            rng,
        )
    }

    /// The loss of `batch` as a tensor (a scalar in the module's dtype, with its gradient
    /// graph): [`DsmTrainer::step`] is `draw_batch`, this, and an optimiser step; a custom
    /// loop (or a profile of one) can take the parts apart.
    pub fn loss_tensor(&self, batch: &TrainingBatch<F>) -> Result<Tensor> {
        let net = self.model.network();
        let (x, t) = net.inputs(batch.x_t.view(), batch.t.iter().copied())?;
        let pred = net.forward_tensor(&x, &t)?;
        let (n, dtype, dev) = (batch.t.len(), net.module().dtype(), net.module().device());
        let target = Tensor::from_iter(batch.target.iter().copied(), dev)
            .and_then(|v| v.reshape((n, net.dim())))
            .and_then(|v| v.to_dtype(dtype));
        let weight = Tensor::from_iter(batch.weight.iter().copied(), dev)
            .and_then(|v| v.reshape((n, 1)))
            .and_then(|v| v.to_dtype(dtype));
        // mean_i c_i Σ_j (pred − target)²: TrainingBatch::loss, differentiable.
        target
            .and_then(|tg| (pred - tg)?.sqr()?.sum_keepdim(1))
            .and_then(|r| r.broadcast_mul(&weight?)?.mean_all())
            .map_err(candle_err)
    }

    /// The loss of the current parameters on `batch`, without a step (e.g. a held-out batch).
    pub fn batch_loss(&self, batch: &TrainingBatch<F>) -> Result<f64> {
        scalar(&self.loss_tensor(batch)?)
    }

    /// One AdamW step on a fresh batch; returns that batch's loss before the step.
    pub fn step(&mut self, rng: &mut dyn RngCore) -> Result<f64> {
        let batch = self.draw_batch(self.config.batch_size, rng)?;
        let loss = self.loss_tensor(&batch)?;
        let value = scalar(&loss)?;
        if !value.is_finite() {
            return Err(Error::NonFinite {
                what: "training loss",
                index: 0,
                value,
            });
        }
        self.opt.backward_step(&loss)?;
        Ok(value)
    }

    /// [`FitConfig::steps`] steps; returns the loss of every step.
    pub fn fit(&mut self, rng: &mut dyn RngCore) -> Result<Vec<f64>> {
        (0..self.config.steps).map(|_| self.step(rng)).collect()
    }
}

/// Re-draw every parameter of `varmap` from a seeded PCG stream, in name order, so a run is
/// reproducible (candle's CPU generator cannot be seeded). PyTorch's default scheme for
/// linear and convolution layers (`kaiming_uniform_(a = √5)`, Paszke et al. 2019): a weight
/// of rank ≥ 2 (`[out, in]` or `[out, in, kh, kw]`) and the bias beside it
/// (`<layer>.weight`, `<layer>.bias`) are drawn from `U(±1/√fan_in)` with
/// `fan_in = in · kh · kw`; a rank-1 `<layer>.weight` is a normalisation's scale and is set
/// to 1, its `<layer>.bias` to 0 (no draws); any other tensor is drawn from `U(±1/√len)`.
pub fn init_seeded(varmap: &candle_nn::VarMap, seed: u64) -> Result<()> {
    use rand::SeedableRng;
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Model("candle: the VarMap lock is poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let fan_in = |w: &Var| -> usize { w.dims()[1..].iter().product() };
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let n = var.elem_count();
        let layer_weight = name
            .strip_suffix(".bias")
            .and_then(|layer| data.get(&format!("{layer}.weight")));
        let values: Vec<f64> = match (var.rank(), layer_weight) {
            (1, Some(w)) if w.rank() == 1 => vec![0.0; n],
            (1, _) if name.ends_with(".weight") => vec![1.0; n],
            (rank, w) => {
                let fan = match (rank, w) {
                    (r, _) if r >= 2 => fan_in(var),
                    (_, Some(w)) if w.rank() >= 2 => fan_in(w),
                    _ => n,
                };
                let bound = 1.0 / (fan.max(1) as f64).sqrt();
                (0..n)
                    .map(|_| bound * (2.0 * rng.random::<f64>() - 1.0))
                    .collect()
            }
        };
        let t = Tensor::from_vec(values, var.shape(), var.device())
            .and_then(|t| t.to_dtype(var.dtype()))
            .map_err(candle_err)?;
        var.set(&t).map_err(candle_err)?;
    }
    Ok(())
}

fn scalar(t: &Tensor) -> Result<f64> {
    t.to_dtype(DType::F64)
        .and_then(|v| v.to_scalar::<f64>())
        .map_err(candle_err)
}
