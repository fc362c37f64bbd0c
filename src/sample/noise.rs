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
//!
//! Memory: the streams cost 16 bytes per row — as much as one 2-D `f64` state array, an
//! eighth of a 16-D one. Per-block streams (one per block of rows) would
//! save that and also make a parallel split bit-identical, but a row's noise would then
//! depend on its position in the batch and on the batch size; per-row streams keep every
//! row's sample a function of its own initial state and the seed alone, which the tests
//! of batch independence check.

use crate::float::Real;
#[cfg(feature = "rayon")]
use crate::par::ROW_BLOCK;
#[cfg(feature = "rayon")]
use ndarray::Axis;
use ndarray::{ArrayView2, ArrayViewMut2, s};
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

/// Row `r` of `out` from `streams[r]` (as many rows as streams).
fn fill_rows<F: Real>(streams: &mut [Pcg64Mcg], mut out: ArrayViewMut2<F>) {
    let d = out.ncols();
    if d == 0 {
        return;
    }
    if let Some(flat) = out.as_slice_mut() {
        // Contiguous rows (the samplers' own buffers): no per-row iterator set-up.
        for (row, g) in flat.chunks_exact_mut(d).zip(streams.iter_mut()) {
            for v in row {
                let z: f64 = StandardNormal.sample(g);
                *v = F::lit(z);
            }
        }
    } else {
        for (mut row, g) in out.rows_mut().into_iter().zip(streams.iter_mut()) {
            for v in row.iter_mut() {
                let z: f64 = StandardNormal.sample(g);
                *v = F::lit(z);
            }
        }
    }
}

/// `x[r, j] ← f(x[r, j], s[r, j], z)` for the rows of a block, `z` from `streams[r]`.
fn update_rows<F: Real>(
    streams: &mut [Pcg64Mcg],
    mut x: ArrayViewMut2<F>,
    s: ArrayView2<F>,
    f: &(impl Fn(F, F, F) -> F + Sync + Send),
) {
    let d = x.ncols();
    if d == 0 {
        return;
    }
    if let (Some(xf), Some(sf)) = (x.as_slice_mut(), s.as_slice()) {
        for ((xr, sr), g) in xf
            .chunks_exact_mut(d)
            .zip(sf.chunks_exact(d))
            .zip(streams.iter_mut())
        {
            for (xv, &sv) in xr.iter_mut().zip(sr) {
                let z: f64 = StandardNormal.sample(g);
                *xv = f(*xv, sv, F::lit(z));
            }
        }
        return;
    }
    for ((mut xr, sr), g) in x
        .rows_mut()
        .into_iter()
        .zip(s.rows())
        .zip(streams.iter_mut())
    {
        for (xv, &sv) in xr.iter_mut().zip(sr.iter()) {
            let z: f64 = StandardNormal.sample(g);
            *xv = f(*xv, sv, F::lit(z));
        }
    }
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
    ///
    /// With the `rayon` feature large batches are filled in parallel row blocks; since every
    /// row has its own stream the draws are the same for any thread count.
    pub fn fill<F: Real>(&mut self, out: ArrayViewMut2<F>) {
        let rows = out.nrows().min(self.streams.len());
        let out = out.slice_move(s![..rows, ..]);
        let streams = &mut self.streams[..rows];
        #[cfg(feature = "rayon")]
        if rows > ROW_BLOCK {
            use rayon::prelude::*;
            let mut out = out;
            streams
                .par_chunks_mut(ROW_BLOCK)
                .zip(out.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).into_par_iter())
                .for_each(|(g, block)| fill_rows(g, block));
            return;
        }
        fill_rows(streams, out);
    }
    /// `x[r, j] ← f(x[r, j], s[r, j], z)` with `z ~ N(0, 1)` drawn from row `r`'s stream
    /// in the same order as [`RowNoise::fill`]: an update and its noise in one pass, with
    /// no noise buffer. Rows beyond the streams are left untouched. Parallel in row blocks
    /// with the `rayon` feature (the same draws for any thread count).
    pub(crate) fn update<F: Real>(
        &mut self,
        x: ArrayViewMut2<F>,
        s: ArrayView2<F>,
        f: impl Fn(F, F, F) -> F + Sync + Send,
    ) {
        let rows = x.nrows().min(self.streams.len()).min(s.nrows());
        let x = x.slice_move(s![..rows, ..]);
        let sv = s.slice_move(s![..rows, ..]);
        let streams = &mut self.streams[..rows];
        #[cfg(feature = "rayon")]
        if rows > ROW_BLOCK {
            use rayon::prelude::*;
            let mut x = x;
            streams
                .par_chunks_mut(ROW_BLOCK)
                .zip(x.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).into_par_iter())
                .zip(sv.axis_chunks_iter(Axis(0), ROW_BLOCK).into_par_iter())
                .for_each(|((g, xb), sb)| update_rows(g, xb, sb, &f));
            return;
        }
        update_rows(streams, x, sv, &f);
    }
    /// One U[0, 1) draw from row `row`'s stream (Metropolis tests).
    pub fn uniform(&mut self, row: usize) -> f64 {
        self.streams[row].random::<f64>()
    }
}
