//! Score networks exported to ONNX, run on the CPU by tract (pure Rust, feature `onnx`).
//!
//! The file must have two `f32` inputs, the data `x` of shape `[N, D]` and the time `t` of
//! shape `[N]` or `[N, 1]` (names configurable, any order), and one `f32` output `[N, D]`:
//! the network's prediction in one of the four [`Parameterization`]s. The batch size `N` is
//! left symbolic, so any batch runs through one optimised plan. The export recipe from
//! PyTorch is in `docs/networks.md`.
//!
//! ```no_run
//! use score_sde::backend::onnx::{OnnxOptions, OnnxScore};
//! use score_sde::prelude::*;
//! use score_sde::sample::DpmSolverPp;
//! use rand::SeedableRng;
//! let sde = VpSde::<f32>::default();
//! let opts = OnnxOptions::new(*sde.schedule(), Parameterization::Noise);
//! let model = OnnxScore::load("eps_model.onnx", opts)?;
//! let sampler = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(sde.schedule(), 20)?)?;
//! let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
//! let run = sampler.sample(&model, 1000, model.network().dim(), &mut rng)?;
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::schedule::Schedule;
use crate::score::{Network, Parameterization, Parameterized, ScoreModel};
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::{
    DatumType, Framework, InferenceFact, InferenceModelExt, IntoRunnable, TDim, TValue, Tensor,
    TypedRunnableModel, tvec,
};
use tract_onnx::tract_hir::infer::Factoid;

/// How the time input is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeInput {
    /// `t` has shape `[N]`.
    Vector,
    /// `t` has shape `[N, 1]`.
    Column,
}

/// How to read an ONNX score network: the schedule and parameterisation it was trained
/// with, and the names of its inputs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OnnxOptions<S> {
    /// The schedule whose `α(t)`, `σ(t)` convert the prediction to a score.
    pub schedule: S,
    /// What the network predicts.
    pub parameterization: Parameterization,
    /// Name of the data input (default `"x"`).
    pub x_name: String,
    /// Name of the time input (default `"t"`).
    pub t_name: String,
    /// The data dimension `D`, needed only if the file leaves it symbolic; if both are
    /// given they must agree.
    pub dim: Option<usize>,
}

impl<S> OnnxOptions<S> {
    /// Options for a network predicting `parameterization` under `schedule`, with inputs
    /// named `x` and `t`.
    pub fn new(schedule: S, parameterization: Parameterization) -> Self {
        Self {
            schedule,
            parameterization,
            x_name: "x".into(),
            t_name: "t".into(),
            dim: None,
        }
    }
    /// Use other input names.
    pub fn input_names(mut self, x: &str, t: &str) -> Self {
        self.x_name = x.into();
        self.t_name = t.into();
        self
    }
    /// Declare (or require) the data dimension.
    pub fn dim(mut self, dim: usize) -> Self {
        self.dim = Some(dim);
        self
    }
}

/// An ONNX network `(x, t) ↦ prediction` as a [`Network`], evaluated in `f32` by tract.
///
/// Inputs of type `f64` are rounded to `f32` on the way in and widened on the way out.
#[derive(Clone)]
pub struct OnnxNetwork {
    plan: Arc<TypedRunnableModel>,
    dim: usize,
    time: TimeInput,
    x_first: bool,
}

impl fmt::Debug for OnnxNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxNetwork")
            .field("dim", &self.dim)
            .field("time", &self.time)
            .field("x_first", &self.x_first)
            .finish_non_exhaustive()
    }
}

fn tract_err(context: &str, e: impl fmt::Display) -> Error {
    Error::Model(format!("tract: {context}: {e}"))
}

/// [`Error::Model`] for a panic caught inside tract.
fn tract_panic(context: &str, payload: &(dyn std::any::Any + Send)) -> Error {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    tract_err(context, format!("tract panicked: {msg}"))
}

fn interface(what: &str, expected: impl Into<String>, found: impl Into<String>) -> Error {
    Error::ModelInterface {
        what: what.into(),
        expected: expected.into(),
        found: found.into(),
    }
}

/// `[N, 2]`-style description of a partially known input fact.
fn describe(fact: &InferenceFact) -> String {
    let dims: Vec<String> = fact
        .shape
        .dims()
        .map(|d| d.concretize().map_or("?".to_string(), |d| d.to_string()))
        .collect();
    let open = if fact.shape.is_open() { ", .." } else { "" };
    let dt = fact
        .datum_type
        .concretize()
        .map_or("?".to_string(), |d| format!("{d:?}"));
    format!("[{}{open}] of {dt}", dims.join(", "))
}

fn known_dim(fact: &InferenceFact, i: usize) -> Option<usize> {
    fact.shape
        .dim(i)
        .and_then(|d| d.concretize())
        .and_then(|d| d.to_i64().ok())
        .and_then(|d| usize::try_from(d).ok())
}

fn check_f32(fact: &InferenceFact, name: &str) -> Result<()> {
    match fact.datum_type.concretize() {
        Some(dt) if dt != DatumType::F32 => Err(interface(
            &format!("ONNX input {name:?} element type"),
            "f32",
            format!("{dt:?}"),
        )),
        _ => Ok(()),
    }
}

impl OnnxNetwork {
    /// Load and optimise an ONNX network with inputs `x_name` (`[N, D]`) and `t_name`
    /// (`[N]` or `[N, 1]`); `dim` supplies `D` if the file leaves it symbolic.
    ///
    /// Errors: [`Error::Io`] if the file cannot be read or parsed; [`Error::ModelInterface`]
    /// naming what is expected if the inputs' names, ranks, widths or element types, or the
    /// output's shape, do not fit; [`Error::Model`] if tract cannot optimise the graph.
    ///
    /// tract is run under `catch_unwind`: a file from outside must not take the process
    /// down, and tract's parser and optimiser panic on some malformed graphs (the fuzz suite
    /// found "no entry found for key" on a mutated fixture). Such a panic is [`Error::Model`].
    pub fn load(
        path: impl AsRef<Path>,
        x_name: &str,
        t_name: &str,
        dim: Option<usize>,
    ) -> Result<Self> {
        let path = path.as_ref();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::load_unguarded(path, x_name, t_name, dim)
        }))
        .unwrap_or_else(|p| Err(tract_panic(&format!("loading {}", path.display()), &*p)))
    }

    fn load_unguarded(path: &Path, x_name: &str, t_name: &str, dim: Option<usize>) -> Result<Self> {
        let model = tract_onnx::onnx()
            .model_for_path(path)
            .map_err(|e| Error::Io(format!("reading ONNX file {}: {e}", path.display())))?;
        let inputs = model
            .input_outlets()
            .map_err(|e| tract_err("inputs", e))?
            .to_vec();
        let names: Vec<String> = inputs
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let x_ix = names.iter().position(|n| n == x_name);
        let t_ix = names.iter().position(|n| n == t_name);
        let (x_ix, t_ix) = match (x_ix, t_ix) {
            (Some(x), Some(t)) if names.len() == 2 => (x, t),
            _ => {
                return Err(interface(
                    "ONNX input names",
                    format!("two inputs {x_name:?} [N, D] and {t_name:?} [N] or [N, 1]"),
                    format!("{names:?}"),
                ));
            }
        };
        let x_fact = model
            .input_fact(x_ix)
            .map_err(|e| tract_err("input x", e))?
            .clone();
        let t_fact = model
            .input_fact(t_ix)
            .map_err(|e| tract_err("input t", e))?
            .clone();
        check_f32(&x_fact, x_name)?;
        check_f32(&t_fact, t_name)?;

        // x: rank 2, width D from the file and/or the options.
        let x_rank = x_fact.shape.rank().concretize();
        if x_rank.is_some_and(|r| r != 2) {
            return Err(interface(
                &format!("ONNX input {x_name:?} shape"),
                "[N, D]",
                describe(&x_fact),
            ));
        }
        let dim = match (known_dim(&x_fact, 1), dim) {
            (Some(a), Some(b)) if a != b => {
                return Err(interface(
                    &format!("ONNX input {x_name:?} shape"),
                    format!("[N, {b}]"),
                    describe(&x_fact),
                ));
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => {
                return Err(interface(
                    &format!("ONNX input {x_name:?} shape"),
                    "[N, D] with D fixed in the file or given by OnnxOptions::dim",
                    describe(&x_fact),
                ));
            }
        };
        if dim == 0 {
            return Err(Error::param("dim", 0.0, "must be at least 1"));
        }
        // t: [N] or [N, 1].
        let time = match t_fact.shape.rank().concretize() {
            Some(1) | None => TimeInput::Vector,
            Some(2) if known_dim(&t_fact, 1).is_none_or(|d| d == 1) => TimeInput::Column,
            _ => {
                return Err(interface(
                    &format!("ONNX input {t_name:?} shape"),
                    "[N] or [N, 1]",
                    describe(&t_fact),
                ));
            }
        };

        // Fix the facts with one symbolic batch size shared by both inputs.
        let n: TDim = model.sym("N").into();
        let x_shape = tvec![n.clone(), TDim::from(dim as i64)];
        let t_shape = match time {
            TimeInput::Vector => tvec![n],
            TimeInput::Column => tvec![n, TDim::from(1)],
        };
        let model = model
            .with_input_fact(x_ix, InferenceFact::dt_shape(DatumType::F32, x_shape))
            .and_then(|m| m.with_input_fact(t_ix, InferenceFact::dt_shape(DatumType::F32, t_shape)))
            .map_err(|e| tract_err("setting input facts", e))?;
        let typed = model
            .into_optimized()
            .map_err(|e| tract_err("optimising the graph", e))?;
        let outputs = typed
            .output_outlets()
            .map_err(|e| tract_err("outputs", e))?;
        if outputs.len() != 1 {
            return Err(interface(
                "ONNX outputs",
                "one output [N, D]",
                format!("{} outputs", outputs.len()),
            ));
        }
        let out_fact = typed.output_fact(0).map_err(|e| tract_err("output", e))?;
        let out_dims: Vec<String> = out_fact.shape.iter().map(|d| d.to_string()).collect();
        let width_ok = out_fact.shape.rank() == 2
            && out_fact.shape[1].to_i64().ok() == Some(dim as i64)
            && out_fact.datum_type == DatumType::F32;
        if !width_ok {
            return Err(interface(
                "ONNX output shape",
                format!("[N, {dim}] of F32"),
                format!("[{}] of {:?}", out_dims.join(", "), out_fact.datum_type),
            ));
        }
        let plan = typed
            .into_runnable()
            .map_err(|e| tract_err("building the plan", e))?;
        Ok(Self {
            plan,
            dim,
            time,
            x_first: x_ix < t_ix,
        })
    }

    /// The data dimension `D`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// How the time input is shaped.
    pub fn time_input(&self) -> TimeInput {
        self.time
    }

    /// Run the plan on `x` with per-row times given by `time(i)`.
    fn run<F: Real>(
        &self,
        x: ArrayView2<F>,
        time: impl Fn(usize) -> F,
        mut out: ArrayViewMut2<F>,
    ) -> Result<()> {
        let n = x.nrows();
        if x.ncols() != self.dim {
            return Err(Error::shape(
                "x (columns = model dimension)",
                self.dim,
                x.ncols(),
            ));
        }
        check::same_shape("network output", x.shape(), out.shape())?;
        let xs: Vec<f32> = x.iter().map(|v| v.as_f64() as f32).collect();
        let ts: Vec<f32> = (0..n).map(|i| time(i).as_f64() as f32).collect();
        let x_t = Tensor::from_shape(&[n, self.dim], &xs).map_err(|e| tract_err("x", e))?;
        let t_t = match self.time {
            TimeInput::Vector => Tensor::from_shape(&[n], &ts),
            TimeInput::Column => Tensor::from_shape(&[n, 1], &ts),
        }
        .map_err(|e| tract_err("t", e))?;
        let (a, b): (TValue, TValue) = (x_t.into(), t_t.into());
        let inputs = if self.x_first {
            tvec![a, b]
        } else {
            tvec![b, a]
        };
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.plan.run(inputs)))
                .map_err(|p| tract_panic("running", &*p))?
                .map_err(|e| tract_err("running", e))?;
        let y = result
            .first()
            .ok_or_else(|| tract_err("running", "no output"))?
            .to_plain_array_view::<f32>()
            .map_err(|e| tract_err("output", e))?;
        if y.shape() != &[n, self.dim][..] {
            return Err(Error::shape("ONNX output", [n, self.dim], y.shape()));
        }
        for (o, &v) in out.iter_mut().zip(y.iter()) {
            *o = F::lit(f64::from(v));
        }
        Ok(())
    }
}

impl<F: Real> Network<F> for OnnxNetwork {
    fn forward(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.run(x, |_| t, out)
    }
    fn forward_rows(
        &self,
        x: ArrayView2<F>,
        t: ArrayView1<F>,
        out: ArrayViewMut2<F>,
    ) -> Result<()> {
        check::same_shape("times", &[x.nrows()], t.shape())?;
        self.run(x, |i| t[i], out)
    }
    fn dim(&self) -> Option<usize> {
        Some(self.dim)
    }
}

/// A [`ScoreModel`] from an ONNX network: an [`OnnxNetwork`] behind the
/// [`Parameterized`] adapter of the chosen parameterisation and schedule.
#[derive(Debug, Clone)]
pub struct OnnxScore<S> {
    inner: Parameterized<OnnxNetwork, S>,
}

impl<S> OnnxScore<S> {
    /// Load the network at `path` (see [`OnnxNetwork::load`] for the errors).
    pub fn load(path: impl AsRef<Path>, options: OnnxOptions<S>) -> Result<Self> {
        let net = OnnxNetwork::load(path, &options.x_name, &options.t_name, options.dim)?;
        Ok(Self {
            inner: Parameterized::new(net, options.schedule, options.parameterization),
        })
    }
    /// The network.
    pub fn network(&self) -> &OnnxNetwork {
        self.inner.network()
    }
    /// What the network predicts.
    pub fn parameterization(&self) -> Parameterization {
        self.inner.parameterization()
    }
}

impl<F: Real, S: Schedule<F>> ScoreModel<F> for OnnxScore<S> {
    fn score(&self, x: ArrayView2<F>, t: F, out: ArrayViewMut2<F>) -> Result<()> {
        self.inner.score(x, t, out)
    }
    fn score_rows(&self, x: ArrayView2<F>, t: ArrayView1<F>, out: ArrayViewMut2<F>) -> Result<()> {
        self.inner.score_rows(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        ScoreModel::<F>::dim(&self.inner)
    }
}
