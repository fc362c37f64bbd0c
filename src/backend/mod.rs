//! Real networks behind optional features: train with candle, run ONNX exports with tract,
//! exchange arrays with Python as `.npy`.
//!
//! | feature | module | what |
//! |---|---|---|
//! | `candle` | `candle` | a [`Network`](crate::score::Network) over any candle module taking `(x, t)`, a small time-embedded MLP, denoising-score-matching training with AdamW |
//! | `onnx` | `onnx` | `OnnxScore`: a network exported from PyTorch to ONNX, run by tract (pure Rust) |
//! | `npy` | `npy` | save samples and load data as NumPy `.npy` files |
//! | (none) | [`digits`] | the UCI handwritten digits (8×8, 17 levels): loader, seeded split, dequantisation |
//! | `npy` | `shards` | the shards of a run split over processes (`RunSpec`) as `.npy` files, gathered back with a coverage check |
//!
//! (The modules exist only with their features; docs.rs builds with all of them.)
//!
//! Networks implement [`Network`](crate::score::Network), so the
//! [`Parameterized`](crate::score::Parameterized) adapters turn an ε-, x̂₀-, v- or
//! score-predicting network into a [`ScoreModel`](crate::ScoreModel) with the schedule's
//! `α(t)`, `σ(t)`; the backends do no parameterisation maths of their own. The default
//! build compiles none of this module's dependencies. See `docs/networks.md` for the
//! PyTorch export recipe and how to pick a parameterisation.

#[cfg(feature = "candle")]
pub mod candle;
pub mod digits;
#[cfg(feature = "npy")]
pub mod npy;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "npy")]
pub mod shards;
