//! Log-likelihoods through the probability-flow ODE (Song et al. 2021, App. D;
//! Grathwohl et al. 2019, FFJORD; Chen et al. 2018): divergence estimators, bits per
//! dimension and dequantisation.

mod bpd;
mod divergence;
mod ode;

pub use bpd::{DataScaling, bits_per_dim, dequantize_uniform};
pub use divergence::{Divergence, DivergenceMethod, Probe};
pub use ode::{Likelihood, OdeLikelihood};
