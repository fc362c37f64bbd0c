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
//! | [`sample`] | the [`Sampler`] trait, the one driver [`GridSampler`](sample::GridSampler) and the step methods |
//! | [`ode`] | batch ODE integrators: Runge–Kutta tableaux, fixed steps, adaptive steps with error control |
//! | [`dynamics`] | the reverse-time drift `f − w g² s` and the probability-flow right-hand side, written once |
//! | [`num`] | the numerical substrate: `Real`, row noise streams, SIMD detection, row blocks |
//! | [`latent`] | latent editing: spherical interpolation of PF-ODE latents, temperature rescaling |
//! | [`jacobian`] | Jacobian–vector products of a score model by central differences; probe vectors |
//! | [`likelihood`] | PF-ODE log-likelihood with any prior, divergence estimators, bits/dim, the DDPM variational bound |
//! | [`metrics`] | mean/covariance error, component weights, sliced W1, log-likelihood gap |
//! | [`observe`] | per-step hooks: non-finite checks, trajectories |
//! | [`train`] | denoising score matching: batches, targets, weightings, loss |
//! | [`tweedie`] | denoising by Tweedie's formula |
//! | [`backend`] | real networks behind features: `candle` (train an MLP), `onnx` (run PyTorch exports with tract), `npy` (NumPy arrays) |
//! | [`condition`] | classifier and classifier-free guidance, imputation/inpainting, linear inverse problems |
//! | `progress` | (feature `progress`) a progress-bar observer: step, `t`, score evaluations per second |
//!
//! The guide (`docs/guide.md` in the repository) explains the theory with citations, which
//! sampler to choose (a measured table of sampler × NFE → error), how to plug in a network,
//! and the performance figures.
//!
//! ## Your network as a [`ScoreModel`]
//!
//! Implement [`ScoreModel`] if the network outputs the score; if it predicts the noise ε, the
//! data x̂₀ or the velocity v, implement [`Network`](score::Network) and wrap it in
//! [`Parameterized`](score::Parameterized):
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::sample::DpmSolverPp;
//! use ndarray::{ArrayView2, ArrayViewMut2};
//! use rand::SeedableRng;
//!
//! /// Stand-in for a trained ε-network: for data N(0, I) under VP, p_t = N(0, I) and the
//! /// optimal noise prediction is ε̂(x, t) = σ(t) x.
//! struct MyEpsNet(VpLinear<f64>);
//! impl Network<f64> for MyEpsNet {
//!     fn forward(&self, x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>) -> Result<()> {
//!         out.assign(&(&x * self.0.sigma(t))); // your forward pass
//!         Ok(())
//!     }
//! }
//! let sde = VpSde::<f64>::default();
//! let model = Parameterized::new(MyEpsNet(*sde.schedule()), *sde.schedule(), Parameterization::Noise);
//! let sampler = DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(sde.schedule(), 30)?)?.order(3)?;
//! let run = sampler.sample(&model, 4000, 2, &mut rand_pcg::Pcg64::seed_from_u64(0))?;
//! // N(0, I) samples: variance 1 within Monte-Carlo error (sd √(2/4000) ≈ 0.022).
//! assert!((run.samples.column(0).var(1.0) - 1.0).abs() < 0.1);
//! # Ok::<(), score_sde::Error>(())
//! ```
//!
//! ## Names in other libraries
//!
//! | score_sde / diffusers / k-diffusion | here |
//! |---|---|
//! | score_sde `get_pc_sampler`; `EulerMaruyamaPredictor`, `ReverseDiffusionPredictor`, `AncestralSamplingPredictor` | [`sample::Pc`]; [`sample::Predictor`] |
//! | score_sde `LangevinCorrector`, `AnnealedLangevinDynamics` | [`sample::Corrector`], [`sample::StepRule::Sigma`] |
//! | score_sde `get_ode_sampler` | [`sample::ProbabilityFlow`] with [`sample::Dopri5`] |
//! | score_sde `get_likelihood_fn`; k-diffusion `log_likelihood` | [`likelihood::OdeLikelihood`] |
//! | score_sde `get_pc_inpainter`, `get_pc_colorizer` | [`condition::Imputation`] (`with_basis`, `with_grouped_basis`) |
//! | NCSN `anneal_Langevin_dynamics(step_lr)`; Song & Ermon 2019 Alg. 1 (`ε`) | [`sample::AnnealedLangevin::new`], [`sample::AnnealedLangevin::song_ermon`] |
//! | DDPM Algorithm 2; diffusers `DDPMScheduler` (`variance_type` `fixed_large` / `fixed_small`) | [`Pc::ddpm`](sample::GridSampler::ddpm) with [`sample::DdpmVariance`] `Beta` / `BetaTilde` |
//! | diffusers `DDIMScheduler` | [`sample::Ddim`] |
//! | diffusers `DPMSolverMultistepScheduler` (dpmsolver++, sde-dpmsolver++); k-diffusion `sample_dpmpp_2m`, `sample_dpmpp_2m_sde` | [`sample::DpmSolverPp`] (`.order`, `.variant`) |
//! | diffusers `EulerDiscreteScheduler`, `EulerAncestralDiscreteScheduler`; k-diffusion `sample_euler`, `sample_euler_ancestral` | [`sample::EulerAncestral`] (`.eta(0.0)` for plain Euler) |
//! | diffusers `HeunDiscreteScheduler`; k-diffusion `sample_heun` | [`sample::EdmHeun`] |
//! | diffusers `use_karras_sigmas`; k-diffusion `get_sigmas_karras` | [`TimeGrid::karras`](grid::TimeGrid::karras) |
//! | diffusers `prediction_type` epsilon / sample / v_prediction | [`score::Parameterization`] `Noise` / `Data` / `Velocity` |
//! | diffusers `guidance_scale` | [`condition::ClassifierFree`] |
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
pub mod dynamics;
pub mod error;
pub mod gmm;
pub mod grid;
pub mod jacobian;
pub mod latent;
pub mod likelihood;
mod linalg;
pub mod metrics;
pub mod num;
pub mod observe;
pub mod ode;
#[cfg(feature = "progress")]
pub mod progress;
pub mod sample;
pub mod schedule;
pub mod score;
pub mod sde;
pub mod train;
pub mod tweedie;

/// The rand 0.9 this crate's API takes generators from (`&mut dyn RngCore`): use it
/// (`score_sde::rand::SeedableRng`) or add `rand = "0.9"`; rand 0.10 renamed the traits and
/// its generators do not implement 0.9's `RngCore` (error E0277).
pub use rand;
/// The rand_pcg 0.9 whose `Pcg64` the examples seed (`score_sde::rand_pcg::Pcg64`).
pub use rand_pcg;

pub use error::{Error, Result};
pub use num::Real;
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
    pub use crate::gmm::{AnalyticScore, GaussianMixture, MixtureSpec, problems};
    pub use crate::grid::{GridKind, TimeGrid};
    pub use crate::num::Real;
    pub use crate::observe::{FiniteCheck, Observer, Trajectory};
    pub use crate::sample::{Run, Sampler};
    pub use crate::schedule::{DiscreteVp, Edm, Schedule, SubVp, Ve, VpCosine, VpLinear};
    pub use crate::score::{
        Network, NetworkFn, Parameterization, Parameterized, ScoreFn, ScoreModel,
    };
    pub use crate::sde::{EdmSde, ForwardSde, LinearSde, MarginalSde, SubVpSde, VeSde, VpSde};
}

/// The guide's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;

/// docs/scaling.md's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/scaling.md")]
pub struct ScalingDoctests;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
