//! The numerical substrate, at the bottom of the crate: it imports nothing above it.
//!
//! | module | what |
//! |---|---|
//! | [`float`] | [`Real`]: the float trait bundle (`f32`, `f64`) |
//! | `simd` | run-time choice of the instruction set (AVX2 + FMA or portable), behind a token only detection makes |
//! | `exp` | a branch-free polynomial `exp` that vectorises (the mixture kernel's log-sum-exp) |
//! | `normal` | the per-row xoshiro128++ generator and a vectorised Box–Muller transform |
//! | [`noise`] | [`RowNoise`]: one random stream per batch row, seeded from `(seed, row)` |
//! | `par` | fixed row blocks for rayon, so results do not depend on the thread count |
//!
//! Everything above — schedules, SDEs, the oracle, the samplers — builds on these.

pub mod float;
pub mod noise;
pub(crate) mod par;

pub(crate) mod exp;
pub(crate) mod normal;
pub(crate) mod simd;

pub use float::Real;
pub use noise::RowNoise;
