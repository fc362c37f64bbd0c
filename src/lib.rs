//! # score-sde
//!
//! Score-based generative modelling with stochastic differential equations
//! (Song et al. 2021, "Score-Based Generative Modeling through Stochastic Differential
//! Equations"), checked against exact answers.
//!
//! A forward SDE `dx = f(x, t) dt + g(t) dw` turns data into noise. With the score
//! `∇ₓ log p_t(x)` it runs backwards as the reverse-time SDE (Anderson 1982)
//! `dx = [f − g² ∇ log p_t] dt + g dw̄`, or as the probability-flow ODE
//! `dx = [f − ½ g² ∇ log p_t] dt` with the same marginals.
//!
//! | module | what |
//! |---|---|
//! | [`schedule`] | `α(t)`, `σ(t)`, log-SNR: VP linear/cosine, sub-VP, VE, EDM, discrete DDPM tables |
//! | [`sde`] | [`ForwardSde`], [`LinearSde`](sde::LinearSde) and the `VpSde`, `SubVpSde`, `VeSde`, `EdmSde` aliases |
//! | [`score`] | [`ScoreModel`], closures, noise/data/velocity adapters |
//! | [`gmm`] | [`GaussianMixture`](gmm::GaussianMixture) — the exact oracle — and [`AnalyticScore`](gmm::AnalyticScore) |
//! | [`grid`] | time grids: uniform, quadratic, Karras ρ, log-SNR uniform, custom |
//! | [`sample`] | the [`Sampler`] trait and the samplers |
//! | [`likelihood`] | divergence estimators (exact, finite differences, Hutchinson), bits/dim |
//! | [`metrics`] | mean/covariance error, component weights, sliced W1, log-likelihood gap |
//! | [`observe`] | per-step hooks: non-finite checks, trajectories |
//! | [`train`] | denoising score matching: batches, targets, weightings, loss |
//! | [`tweedie`] | denoising by Tweedie's formula |
//! | [`backend`] | real networks behind features: `candle` (train an MLP), `onnx` (run PyTorch exports with tract), `npy` (NumPy arrays) |
//! | [`condition`] | classifier and classifier-free guidance, imputation/inpainting, linear inverse problems |
//!
//! ## Example: the forward process of the 2-D ring, exactly and by Monte Carlo
//!
//! ```
//! use score_sde::prelude::*;
//! use rand::SeedableRng;
//! let ring = problems::ring2d::<f64>();
//! let sde = VpSde::<f64>::default();
//! let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
//! let x0 = ring.sample(20_000, &mut rng).unwrap();
//! let (xt, _) = sde.perturb(x0.view(), 0.3, &mut rng).unwrap();
//! let exact = ring.diffuse(sde.schedule(), 0.3).unwrap();
//! // The Monte-Carlo variance of coordinate 0 matches the closed form within sampling error.
//! let v = xt.column(0).var(0.0);
//! assert!((v - exact.covariance()[[0, 0]]).abs() < 0.2);
//! ```
#![warn(missing_docs)]
// Numerical kernels index several arrays with one loop variable; iterator zips would obscure the formulas.
#![allow(clippy::needless_range_loop)]

pub mod backend;
mod check;
pub mod condition;
pub mod error;
pub mod float;
pub mod gmm;
pub mod grid;
pub mod likelihood;
mod linalg;
pub mod metrics;
pub mod observe;
pub mod sample;
pub mod schedule;
pub mod score;
pub mod sde;
pub mod train;
pub mod tweedie;

pub use error::{Error, Result};
pub use float::Real;
pub use sample::{Run, Sampler};
pub use schedule::Schedule;
pub use score::{ScoreFn, ScoreModel};
pub use sde::ForwardSde;

/// The names most programs need, in one import.
pub mod prelude {
    pub use crate::condition::{
        ClassifierFree, ClassifierGradient, ClassifierGuidance, ConditionalScore, Imputation,
        MixtureClassifier,
    };
    pub use crate::error::{Error, Result};
    pub use crate::float::Real;
    pub use crate::gmm::{AnalyticScore, GaussianMixture, MixtureSpec, problems};
    pub use crate::grid::{GridKind, TimeGrid};
    pub use crate::observe::{FiniteCheck, Observer, Trajectory};
    pub use crate::sample::{Run, Sampler};
    pub use crate::schedule::{DiscreteVp, Edm, Schedule, SubVp, Ve, VpCosine, VpLinear};
    pub use crate::score::{
        Network, NetworkFn, Parameterization, Parameterized, ScoreFn, ScoreModel,
    };
    pub use crate::sde::{EdmSde, ForwardSde, LinearSde, MarginalSde, SubVpSde, VeSde, VpSde};
}

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
