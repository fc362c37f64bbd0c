//! Samplers: turn a score model and an initial batch into samples.
//!
//! [`Sampler`] is the one interface; the samplers implementing it (reverse-time SDE,
//! ancestral, predictor–corrector, Langevin MCMC, probability-flow ODE solvers, DDIM,
//! DPM-Solver++, EDM) live in submodules of this folder.
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

pub mod corrector;
pub mod ddim;
pub mod dpm_solver;
pub mod edm;
pub mod langevin;


pub mod ode;
pub mod pc;
pub mod reverse_sde;

pub use corrector::{Corrector, LangevinCorrector, StepRule};
pub use ddim::Ddim;
pub use dpm_solver::{DpmSolverPp, DpmVariant, ThirdOrder};
pub use edm::{EdmHeun, EulerAncestral};
pub use langevin::{AnnealedLangevin, LogDensity, Mala, Ula};
pub use crate::num::RowNoise;
pub use ode::{Dopri5, FixedMethod, OdeRhs, OdeSolver, OdeStats, PfOdeRhs, ProbabilityFlow};
pub use pc::Pc;
pub use reverse_sde::Predictor;

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use crate::observe::{Chain, FiniteCheck, Observer};
use crate::score::ScoreModel;
use ndarray::{Array2, ArrayView2};
use rand::RngCore;
use std::fmt::Debug;

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
}

impl<F> Run<F> {
    /// A run's outcome without an acceptance rate.
    pub fn new(samples: Array2<F>, nfe: usize, steps: usize) -> Self {
        Self {
            samples,
            nfe,
            steps,
            acceptance_rate: None,
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
/// Implementors write [`Sampler::run_observed`] (calling the observer after every step)
/// and [`Sampler::initial_state`]; users call [`Sampler::sample`], [`Sampler::run`] or
/// [`Sampler::run_with`], which check the state for NaN/inf after every step.
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
