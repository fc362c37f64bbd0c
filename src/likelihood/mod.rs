//! Log-likelihoods through the probability-flow ODE (Song et al. 2021, App. D;
//! Grathwohl et al. 2019, FFJORD; Chen et al. 2018) with any prior ([`Prior`]): divergence
//! estimators, bits per dimension and dequantisation; and the DDPM variational bound
//! ([`DdpmBound`], Ho et al. 2020, eq. 5) for discrete β tables.
//!
//! ```
//! use score_sde::likelihood::OdeLikelihood;
//! use score_sde::prelude::*;
//! use rand::SeedableRng;
//! let sde = VpSde::<f64>::default();
//! let ring = problems::ring2d::<f64>();
//! let model = AnalyticScore::new(ring.clone(), *sde.schedule());
//! // With the exact p_T in place of the N(0, I) prior the ODE gives the exact log p_t0.
//! let lik = OdeLikelihood::new(sde.clone())?.tolerances(1e-6, 1e-6)?.exact_mixture_prior(&ring)?;
//! let x = ndarray::array![[4.0, 0.0], [0.0, 0.0]];
//! let r = lik.log_prob(&model, x.view(), &mut rand_pcg::Pcg64::seed_from_u64(0))?;
//! let exact = ring.diffuse(sde.schedule(), 1e-3)?.log_prob(x.view())?;
//! assert!((r.log_p[0] - exact[0]).abs() < 1e-3);
//! # Ok::<(), score_sde::Error>(())
//! ```

mod bpd;
mod divergence;
mod ode;
mod vlb;

pub use bpd::{DataScaling, bits_per_dim, dequantize_uniform};
pub use divergence::{Divergence, DivergenceMethod, Probe};
pub use ode::{Likelihood, OdeLikelihood, Prior};
pub use vlb::{DdpmBound, VlbTerms};
