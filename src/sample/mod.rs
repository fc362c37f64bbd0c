//! Samplers: turn a score model and an initial batch into samples.
//!
//! [`Sampler`] is the one interface. Every sampler here is a [`StepMethod`] — one step on
//! the batch — run by the one driver [`GridSampler`], which owns the checks, the noise
//! streams, the NFE count, the observer calls (after every step and after the final
//! denoise) and the initial state ([`driver`] explains the split). Each method is one file:
//!
//! | file | sampler (alias of `GridSampler`) | step method |
//! |---|---|---|
//! | `pc.rs`, `predictor.rs`, `corrector.rs` | [`Pc`]: reverse-time SDE predictors and Langevin correctors, either order | [`PcStep`] with open [`Predictor`] / [`Corrector`] traits |
//! | `ddim.rs` | [`Ddim`] (η) | [`DdimStep`] |
//! | `dpm_solver.rs` | [`DpmSolverPp`] (1, 2M, 3M, SDE) | [`DpmSolverPpStep`] |
//! | `edm.rs` | [`EdmHeun`] (churn) | [`EdmHeunStep`] |
//! | `euler_ancestral.rs` | [`EulerAncestral`] | [`EulerAncestralStep`] |
//! | `dpm_adaptive.rs` | [`DpmAdaptive`] (DPM-Solver-12/-23 with error control; singlestep 2S/3S on a grid) | [`DpmAdaptiveStep`] |
//! | `unipc.rs` | [`UniPc`] (bh1/bh2, orders 1–3) | [`UniPcStep`] |
//! | `sde_adaptive.rs` | [`GottaGoFast`] (adaptive reverse SDE, EM + improved Euler) | [`GgfStep`] |
//! | `pf_ode.rs` | [`ProbabilityFlow`] (fixed tableaux, adaptive; encode/decode) | [`PfOde`] |
//! | `ula.rs`, `mala.rs`, `annealed.rs` | [`Ula`], [`Mala`], [`AnnealedLangevin`] | [`UlaStep`], [`MalaStep`], [`AnnealedLangevinStep`] |
//!
//! The reverse-time samplers and the probability-flow ODE work for any
//! [`ForwardSde`](crate::ForwardSde), a non-linear drift included; DDIM, DPM-Solver++ and
//! the EDM samplers work in `α`, `σ` and take a [`MarginalSde`](crate::sde::MarginalSde).
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::sample::{DpmSolverPp, Pc};
//! use rand::SeedableRng;
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! // Samplers are interchangeable behind the object-safe trait.
//! let samplers: Vec<Box<dyn Sampler<f64>>> = vec![
//!     Box::new(Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 100)?)?),
//!     Box::new(DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(sde.schedule(), 20)?)?),
//! ];
//! for s in &samplers {
//!     let run = s.sample(&model, 200, 2, &mut rand_pcg::Pcg64::seed_from_u64(0))?;
//!     assert_eq!(run.samples.dim(), (200, 2));
//! }
//! # Ok::<(), score_sde::Error>(())
//! ```

pub mod annealed;
pub mod corrector;
pub mod ddim;
pub mod dpm_adaptive;
pub mod dpm_solver;
pub mod driver;
pub mod edm;
pub mod euler_ancestral;
pub mod mala;
pub mod noise_table;
pub mod pc;
pub mod pf_ode;
pub mod predictor;
pub mod run_spec;
pub mod sde_adaptive;
pub mod ula;
pub mod unipc;

pub use crate::num::RowNoise;
pub use crate::ode::{AdaptiveRk, Dopri5, FixedMethod};
pub use annealed::{AnnealedLangevin, AnnealedLangevinStep};
pub use corrector::{Corrector, CorrectorKind, LangevinCorrector, NoCorrector, StepRule};
pub use ddim::{Ddim, DdimStep};
pub use dpm_adaptive::{DpmAdaptive, DpmAdaptiveStep};
pub use dpm_solver::{DpmSolverPp, DpmSolverPpStep, DpmVariant, FinalOrder, ThirdOrder};
pub use driver::{Advance, GridSampler, Plan, StepContext, StepInfo, StepMethod};
pub use edm::{EdmHeun, EdmHeunStep};
pub use euler_ancestral::{EulerAncestral, EulerAncestralStep};
pub use mala::{Mala, MalaStep};
pub use noise_table::NoiseTable;
pub use pc::{Pc, PcOrder, PcStep};
pub use pf_ode::{OdeSolver, PfOde, ProbabilityFlow};
pub use predictor::{
    AncestralSampling, Ddpm, DdpmVariance, EulerMaruyama, NoPredictor, PcBuffers, Predictor,
    PredictorKind, ReverseDiffusion,
};
pub use run_spec::RunSpec;
pub use sde_adaptive::{GgfStep, GottaGoFast};
pub use ula::{Ula, UlaStep};
pub use unipc::{UniPc, UniPcStep, UniPcVariant};

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::{Chain, FiniteCheck, Observer};
use crate::score::ScoreModel;
use ndarray::{Array2, ArrayView2};
use rand::RngCore;
use std::fmt::Debug;

/// The bare name of a type for error messages (`PfOde`, not its generic arguments or
/// its `Debug`, which may print a whole β table: messages stay one readable line).
pub(crate) fn type_label<T: ?Sized>() -> &'static str {
    let full = std::any::type_name::<T>();
    let path = full.split('<').next().unwrap_or(full);
    path.rsplit("::").next().unwrap_or(path)
}

/// The outcome of a sampler run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Run<F> {
    /// The final samples, one per row.
    pub samples: Array2<F>,
    /// Number of score-model evaluations on the batch (NFE).
    pub nfe: usize,
    /// Number of steps taken.
    pub steps: usize,
    /// Metropolis acceptance rate, for samplers that have one.
    pub acceptance_rate: Option<f64>,
    /// Rejected steps of an adaptive sampler (0 for fixed steps).
    pub rejected: usize,
}

impl<F> Run<F> {
    /// A run's outcome without an acceptance rate.
    pub fn new(samples: Array2<F>, nfe: usize, steps: usize) -> Self {
        Self {
            samples,
            nfe,
            steps,
            acceptance_rate: None,
            rejected: 0,
        }
    }
    /// Attach an acceptance rate.
    pub fn with_acceptance_rate(mut self, rate: f64) -> Self {
        self.acceptance_rate = Some(rate);
        self
    }
}

/// A sampler: a score model, an initial batch and a random source in; samples and the
/// number of score evaluations out. Object safe, so a sampler can be chosen at run time.
///
/// [`GridSampler`] implements it once for every [`StepMethod`]; a sampler of your own is
/// best written as a step method. Users call [`Sampler::sample`], [`Sampler::run`] or
/// [`Sampler::run_with`], which check the state for NaN/inf after every step (and after
/// the final denoise).
pub trait Sampler<F: Real>: Send + Sync + Debug {
    /// Run from the initial batch `x` (rows are samples), calling `observer` after every step.
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>>;

    /// Draw an initial batch of `n` rows in `dim` dimensions (the SDE's prior for
    /// diffusion samplers).
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>>;

    /// Run from `x`, stopping with [`Error::Diverged`] if the state turns non-finite.
    fn run(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
    ) -> Result<Run<F>> {
        self.run_observed(model, x, rng, &mut FiniteCheck)
    }

    /// Run from `x` with an observer of the caller's, and the non-finite check before it.
    fn run_with(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        let mut chain = Chain(FiniteCheck, observer);
        self.run_observed(model, x, rng, &mut chain)
    }

    /// Draw `n` samples: an initial batch from [`Sampler::initial_state`], then [`Sampler::run`].
    fn sample(
        &self,
        model: &dyn ScoreModel<F>,
        n: usize,
        dim: usize,
        rng: &mut dyn RngCore,
    ) -> Result<Run<F>> {
        let x = self.initial_state(n, dim, rng)?;
        self.run(model, x, rng)
    }

    /// The initial states of rows `spec.rows` of the run `spec`: row `i` is row
    /// `spec.rows.start + i` of the whole run's initial batch (see [`RunSpec`]).
    ///
    /// The default is [`Error::Unsupported`]; [`GridSampler`] implements it.
    fn initial_rows(&self, spec: &RunSpec, dim: usize) -> Result<Array2<F>> {
        let _ = (spec, dim);
        Err(Error::Unsupported {
            what: "initial_rows",
            reason: format!(
                "{} does not implement row-addressable runs",
                type_label::<Self>()
            ),
        })
    }

    /// Run rows `spec.rows` of the run `spec` from their initial states `x`: every step's
    /// noise for row `i` comes from the stream of row `spec.rows.start + i`, so the result
    /// is rows `spec.rows` of the whole run, bit for bit. Calls `observer` after every step.
    ///
    /// Errors with [`Error::Unsupported`] for a shard (not the whole run) of a sampler whose
    /// rows interact. The default is [`Error::Unsupported`]; [`GridSampler`] implements it.
    fn run_rows(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        spec: &RunSpec,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        let _ = (model, x, spec, observer);
        Err(Error::Unsupported {
            what: "run_rows",
            reason: format!(
                "{} does not implement row-addressable runs",
                type_label::<Self>()
            ),
        })
    }

    /// Rows `spec.rows` of the run `spec`: [`Sampler::initial_rows`], then
    /// [`Sampler::run_rows`] with the non-finite check. Shards of one run, made in any
    /// order, processes or machines, concatenate to the whole run exactly ([`RunSpec`]).
    fn sample_rows(&self, model: &dyn ScoreModel<F>, dim: usize, spec: &RunSpec) -> Result<Run<F>> {
        let x = self.initial_rows(spec, dim)?;
        self.run_rows(model, x, spec, &mut FiniteCheck)
    }
}

impl<F: Real, S: Sampler<F> + ?Sized> Sampler<F> for Box<S> {
    fn run_observed(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        rng: &mut dyn RngCore,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        (**self).run_observed(model, x, rng, observer)
    }
    fn initial_state(&self, n: usize, dim: usize, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        (**self).initial_state(n, dim, rng)
    }
    fn initial_rows(&self, spec: &RunSpec, dim: usize) -> Result<Array2<F>> {
        (**self).initial_rows(spec, dim)
    }
    fn run_rows(
        &self,
        model: &dyn ScoreModel<F>,
        x: Array2<F>,
        spec: &RunSpec,
        observer: &mut dyn Observer<F>,
    ) -> Result<Run<F>> {
        (**self).run_rows(model, x, spec, observer)
    }
}

/// Validate a sampler's inputs: a non-empty, finite batch whose width matches the model.
pub fn check_initial<F: Real>(model: &dyn ScoreModel<F>, x: &ArrayView2<F>) -> Result<()> {
    check::nonempty_batch("initial batch", x)?;
    if let Some(d) = model.dim() {
        if d != x.ncols() {
            return Err(Error::shape(
                "initial batch (columns = model dimension)",
                d,
                x.ncols(),
            ));
        }
    }
    check::finite("initial batch", x)
}

/// `x` itself when it is in standard (row-major) layout, else a standard-layout copy: a
/// sampler's state without the copy `as_standard_layout().into_owned()` always makes.
pub(crate) fn standard_layout<F: Real>(x: Array2<F>) -> Array2<F> {
    if x.is_standard_layout() {
        x
    } else {
        x.as_standard_layout().into_owned()
    }
}
