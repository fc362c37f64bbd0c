//! Helpers the integration tests share (each test file is its own crate and includes this
//! module with `mod common;`; not every file uses every helper).
#![allow(dead_code)]

use ndarray::{ArrayBase, Data, Dimension};
use rand::SeedableRng;

/// The tests' generator: PCG64, portable across rand versions (ECOSYSTEM.md), so fixed
/// seeds give the same draws on every machine.
pub fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

/// `max |a|` over all entries.
pub fn max_abs<S: Data<Elem = f64>, D: Dimension>(a: &ArrayBase<S, D>) -> f64 {
    a.iter().fold(0.0_f64, |m, v| m.max(v.abs()))
}

/// `max |a − b|` over all entries (same shape).
pub fn max_abs_diff<S: Data<Elem = f64>, T: Data<Elem = f64>, D: Dimension>(
    a: &ArrayBase<S, D>,
    b: &ArrayBase<T, D>,
) -> f64 {
    assert_eq!(a.shape(), b.shape(), "max_abs_diff: shapes differ");
    a.iter()
        .zip(b.iter())
        .fold(0.0_f64, |m, (x, y)| m.max((x - y).abs()))
}

/// A proptest configuration with `cases` cases and a fixed seed, so a failure reproduces.
pub fn proptest_config(cases: u32, seed: u64) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..proptest::test_runner::Config::default()
    }
}
