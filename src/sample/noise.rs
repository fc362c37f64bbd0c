//! Per-row random streams for stochastic samplers.
//!
//! A stochastic sampler draws one `u64` seed from the caller's RNG at the start of a run
//! and gives every row of the batch its own generator, seeded from `(seed, row index)`.
//! Row `r`'s noise therefore depends only on the seed and on `r` — not on how many rows
//! the batch has nor on what the other rows hold. With a batch-independent step rule (see
//! [`StepRule`](crate::sample::StepRule)) a sample is then a function of its own initial
//! state and its stream alone: the same row gives the same sample in a batch of 1 or
//! 10 000, and a future parallel split of the batch (DESIGN.md, "Rules of the house")
//! cannot change a single bit.
//!
//! The generators are concrete `rand_pcg::Pcg64Mcg`s (16 bytes of state per
//! row, no virtual call per number); normal draws use rand_distr's ziggurat in `f64` and
//! are rounded to `F` (which is what `rand_distr` does for `f32` too).

use crate::float::Real;
use ndarray::ArrayViewMut2;
use rand::{Rng, RngCore, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;

/// SplitMix64 finaliser (Steele et al. 2014): a bijective mixer of 64-bit words.
#[inline]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One random stream per batch row, seeded from `(seed, row)`.
///
/// ```
/// use score_sde::sample::RowNoise;
/// use ndarray::Array2;
/// let mut a = RowNoise::new(7, 3);
/// let mut b = RowNoise::new(7, 1);
/// let (mut za, mut zb) = (Array2::<f64>::zeros((3, 2)), Array2::<f64>::zeros((1, 2)));
/// a.fill(za.view_mut());
/// b.fill(zb.view_mut());
/// // Row 0's noise does not depend on the batch size.
/// assert_eq!(za.row(0), zb.row(0));
/// ```
#[derive(Debug, Clone)]
pub struct RowNoise {
    streams: Vec<Pcg64Mcg>,
}

impl RowNoise {
    /// `rows` streams derived from `seed`.
    pub fn new(seed: u64, rows: usize) -> Self {
        let base = splitmix64(seed);
        let streams = (0..rows)
            .map(|r| Pcg64Mcg::seed_from_u64(splitmix64(base ^ splitmix64(r as u64 ^ 0xA5A5))))
            .collect();
        Self { streams }
    }
    /// `rows` streams from one `u64` drawn from `rng` (what every sampler run does).
    pub fn from_rng(rng: &mut dyn RngCore, rows: usize) -> Self {
        Self::new(rng.next_u64(), rows)
    }
    /// Number of rows (streams).
    pub fn rows(&self) -> usize {
        self.streams.len()
    }
    /// Fill `out` with N(0, 1) draws, row `r` from stream `r` (extra rows of `out`, if
    /// any, are left untouched; callers size `out` to the batch).
    pub fn fill<F: Real>(&mut self, mut out: ArrayViewMut2<F>) {
        for (mut row, g) in out.rows_mut().into_iter().zip(self.streams.iter_mut()) {
            for v in row.iter_mut() {
                let z: f64 = StandardNormal.sample(g);
                *v = F::lit(z);
            }
        }
    }
    /// One U[0, 1) draw from row `row`'s stream (Metropolis tests).
    pub fn uniform(&mut self, row: usize) -> f64 {
        self.streams[row].random::<f64>()
    }
}
