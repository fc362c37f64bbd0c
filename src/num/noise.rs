//! Per-row random streams for stochastic samplers.
//!
//! A stochastic sampler draws one `u64` seed from the caller's RNG at the start of a run
//! and gives every row of the batch its own generator, seeded from `(seed, row index)`.
//! Row `r`'s noise therefore depends only on the seed and on `r` — not on how many rows
//! the batch has nor on what the other rows hold. With a batch-independent step rule (see
//! [`StepRule`](crate::sample::StepRule)) a sample is then a function of its own initial
//! state and its stream alone: the same row gives the same sample in a batch of 1 or
//! 10 000, and a parallel split of the batch (feature `rayon`) cannot change a single bit.
//!
//! **Generator.** One xoshiro128++ per row (Blackman & Vigna 2021; 4 × 32-bit words),
//! seeded by SplitMix64 from `(seed, row)`. The states of 16 consecutive rows are stored
//! structure-of-arrays, so that one step of those rows is a few vector instructions.
//!
//! **Normals.** Box–Muller (Box & Muller 1958): each pair of coordinates of a row
//! `(2j, 2j+1)` comes from one pair of uniforms `(u₁, u₂)` of that row's stream,
//! `z₁ = √(−2 ln u₁) cos 2πu₂` to column `2j` and `z₂ = √(−2 ln u₁) sin 2πu₂` to column
//! `2j+1`; for an odd number of columns the last one takes `z₁` and `z₂` is discarded.
//! `ln`, `cos` and `sin` are branch-free polynomials in `F`'s own precision, vectorised
//! across rows (AVX2 + FMA chosen at run time where available). A pair costs two 32-bit
//! outputs of the generator in `f32` and four in `f64`.
//!
//! **Tails.** The uniforms are discrete, so the normal is truncated: at `|z| ≤ 6.66`
//! in `f32` (`u₁ ≥ 2⁻³²`; the cut-off tail has probability 2.7·10⁻¹¹) and `|z| ≤ 8.57` in
//! `f64` (`u₁ ≥ 2⁻⁵³`; probability 10⁻¹⁷).
//!
//! **Reproducibility.** Each row's draws are a function of `(seed, row)`, the float type
//! and the instruction-set copy: the AVX2 + FMA copy rounds multiply-adds once, the
//! portable one twice, so the same stream may differ in the last bits between a machine
//! with FMA and one without (within a few ulps). On one machine the draws are identical
//! for any batch size, block split and thread count.
//!
//! **Memory.** The streams cost 16 bytes per row (rounded up to a multiple of 16 rows) —
//! as much as one 2-D `f64` state array, an eighth of a 16-D one. Per-block streams (one
//! per block of rows) would save that, but a row's noise would then depend on its
//! position in the batch and on the batch size; per-row streams keep every row's sample a
//! function of its own initial state and the seed alone, which the tests of batch
//! independence check. The samplers' fused update (noise drawn inside the update loop)
//! uses a fixed-size stack buffer per 16 rows: no noise buffer the size of the batch and no allocation per call.

use super::float::Real;
use super::normal::{Isa, LANES, Lanes, PORTABLE_FMA, splitmix64};
#[cfg(feature = "rayon")]
use super::par::ROW_BLOCK;
#[cfg(feature = "rayon")]
use ndarray::Axis;
use ndarray::{ArrayView2, ArrayViewMut2, s};
use rand::RngCore;

/// Columns per pass over a chunk of rows: the stack buffer holds `LANES × COLS` draws.
/// Even, so that a Box–Muller pair never straddles two passes.
const COLS: usize = 32;

// Parallel row blocks must start on a chunk boundary so that they own whole chunks.
#[cfg(feature = "rayon")]
const _: () = assert!(ROW_BLOCK % LANES == 0);

/// A consumer of draws. A trait with `#[inline(always)]` methods rather than a closure, so
/// that it is compiled inside the instruction-set entry points.
trait Sink<F> {
    /// `z` holds the draws of rows `r0..r0 + nr`, columns `c0..c0 + w`, as an `nr × w`
    /// row-major slice.
    fn take(&mut self, r0: usize, nr: usize, c0: usize, w: usize, z: &[F]);
    /// Two-column rows, a full chunk: `z1[l]` to column 0 and `z2[l]` to column 1 of row
    /// `r0 + l`. The draws are read straight from the transform's lane arrays: storing
    /// them interleaved and loading them back at once would stall store forwarding.
    fn take_two(&mut self, r0: usize, z1: &[F; LANES], z2: &[F; LANES]);
}

/// `fill` into contiguous rows of width `d`.
struct FillFlat<'a, F> {
    out: &'a mut [F],
    d: usize,
}

impl<F: Real> Sink<F> for FillFlat<'_, F> {
    #[inline(always)]
    fn take(&mut self, r0: usize, nr: usize, c0: usize, w: usize, z: &[F]) {
        let d = self.d;
        if w == d {
            self.out[r0 * d..(r0 + nr) * d].copy_from_slice(z);
        } else {
            for (l, zr) in z.chunks_exact(w).enumerate() {
                let o = (r0 + l) * d + c0;
                self.out[o..o + w].copy_from_slice(zr);
            }
        }
    }
    #[inline(always)]
    fn take_two(&mut self, r0: usize, z1: &[F; LANES], z2: &[F; LANES]) {
        let out = &mut self.out[2 * r0..2 * (r0 + LANES)];
        for l in 0..LANES {
            out[2 * l] = z1[l];
            out[2 * l + 1] = z2[l];
        }
    }
}

/// `fill` into any view.
struct FillView<'a, 'b, F> {
    out: &'a mut ArrayViewMut2<'b, F>,
}

impl<F: Real> Sink<F> for FillView<'_, '_, F> {
    #[inline(always)]
    fn take(&mut self, r0: usize, _nr: usize, c0: usize, w: usize, z: &[F]) {
        for (l, zr) in z.chunks_exact(w).enumerate() {
            for (c, &zv) in zr.iter().enumerate() {
                self.out[[r0 + l, c0 + c]] = zv;
            }
        }
    }
    #[inline(always)]
    fn take_two(&mut self, r0: usize, z1: &[F; LANES], z2: &[F; LANES]) {
        for l in 0..LANES {
            self.out[[r0 + l, 0]] = z1[l];
            self.out[[r0 + l, 1]] = z2[l];
        }
    }
}

/// `update` of contiguous rows of width `d`.
struct UpdateFlat<'a, F, G> {
    x: &'a mut [F],
    s: &'a [F],
    d: usize,
    f: &'a G,
}

impl<F: Real, G: Fn(F, F, F) -> F> Sink<F> for UpdateFlat<'_, F, G> {
    #[inline(always)]
    fn take(&mut self, r0: usize, nr: usize, c0: usize, w: usize, z: &[F]) {
        let (d, f) = (self.d, self.f);
        if w == d {
            // Whole rows: one flat loop over the chunk.
            let (lo, hi) = (r0 * d, (r0 + nr) * d);
            for ((xv, &sv), &zv) in self.x[lo..hi].iter_mut().zip(&self.s[lo..hi]).zip(z) {
                *xv = f(*xv, sv, zv);
            }
        } else {
            for (l, zr) in z.chunks_exact(w).enumerate() {
                let o = (r0 + l) * d + c0;
                for ((xv, &sv), &zv) in self.x[o..o + w].iter_mut().zip(&self.s[o..o + w]).zip(zr) {
                    *xv = f(*xv, sv, zv);
                }
            }
        }
    }
    #[inline(always)]
    fn take_two(&mut self, r0: usize, z1: &[F; LANES], z2: &[F; LANES]) {
        let f = self.f;
        let x = &mut self.x[2 * r0..2 * (r0 + LANES)];
        let s = &self.s[2 * r0..2 * (r0 + LANES)];
        for l in 0..LANES {
            x[2 * l] = f(x[2 * l], s[2 * l], z1[l]);
            x[2 * l + 1] = f(x[2 * l + 1], s[2 * l + 1], z2[l]);
        }
    }
}

/// `update` of any views.
struct UpdateView<'a, 'b, 'c, F, G> {
    x: &'a mut ArrayViewMut2<'b, F>,
    s: &'a ArrayView2<'c, F>,
    f: &'a G,
}

impl<F: Real, G: Fn(F, F, F) -> F> Sink<F> for UpdateView<'_, '_, '_, F, G> {
    #[inline(always)]
    fn take(&mut self, r0: usize, _nr: usize, c0: usize, w: usize, z: &[F]) {
        for (l, zr) in z.chunks_exact(w).enumerate() {
            for (c, &zv) in zr.iter().enumerate() {
                let (i, j) = (r0 + l, c0 + c);
                self.x[[i, j]] = (self.f)(self.x[[i, j]], self.s[[i, j]], zv);
            }
        }
    }
    #[inline(always)]
    fn take_two(&mut self, r0: usize, z1: &[F; LANES], z2: &[F; LANES]) {
        for l in 0..LANES {
            let i = r0 + l;
            self.x[[i, 0]] = (self.f)(self.x[[i, 0]], self.s[[i, 0]], z1[l]);
            self.x[[i, 1]] = (self.f)(self.x[[i, 1]], self.s[[i, 1]], z2[l]);
        }
    }
}

/// Scratch for one chunk: the draws column by column (`zt[c][lane]`, what the vectorised
/// transform writes) and row by row (`z`, what the sinks read).
struct Scratch<F> {
    zt: [[F; LANES]; COLS],
    z: [F; LANES * COLS],
}

/// All draws of rows `0..rows` (`d` per row), chunk by chunk, handed to `sink`.
///
/// A partial last chunk runs on a copy of its states (every lane stepped, exactly as in a
/// full chunk) and only its first `nr` lanes are written back, so rows beyond `rows` keep
/// their streams and a row's draws never depend on which rows share its chunk.
#[inline(always)]
fn draws<F: Real, const FMA: bool>(
    gens: &mut [Lanes],
    rows: usize,
    d: usize,
    sink: &mut impl Sink<F>,
) {
    if d == 0 {
        return;
    }
    let mut buf = Scratch {
        zt: [[F::zero(); LANES]; COLS],
        z: [F::zero(); LANES * COLS],
    };
    for (ci, g) in gens.iter_mut().enumerate() {
        let r0 = ci * LANES;
        if r0 >= rows {
            break;
        }
        let nr = (rows - r0).min(LANES);
        if nr == LANES {
            chunk::<F, FMA>(g, r0, nr, d, &mut buf, sink);
        } else {
            let mut part = *g;
            chunk::<F, FMA>(&mut part, r0, nr, d, &mut buf, sink);
            g.copy_lanes_from(&part, nr);
        }
    }
}

/// The draws of one chunk of rows, `COLS` columns at a time.
#[inline(always)]
fn chunk<F: Real, const FMA: bool>(
    g: &mut Lanes,
    r0: usize,
    nr: usize,
    d: usize,
    buf: &mut Scratch<F>,
    sink: &mut impl Sink<F>,
) {
    let mut c0 = 0;
    while c0 < d {
        let w = (d - c0).min(COLS);
        // Column pairs (c, c + 1), written to contiguous lane arrays so that the transform
        // vectorises across lanes; an odd last column's z₂ lands in an unused slot.
        for p in 0..w.div_ceil(2) {
            if let [z1, z2] = &mut buf.zt[2 * p..2 * p + 2] {
                F::pair::<FMA>(g, z1, z2);
            }
        }
        if d == 2 && nr == LANES {
            // The 2-D problems: straight from the lane arrays.
            sink.take_two(r0, &buf.zt[0], &buf.zt[1]);
        } else {
            let z = &mut buf.z;
            for l in 0..nr {
                for c in 0..w {
                    z[l * w + c] = buf.zt[c][l];
                }
            }
            sink.take(r0, nr, c0, w, &z[..nr * w]);
        }
        c0 += w;
    }
}

/// `out[r, ..]` ← the draws of `gens`' row `r`.
#[inline(always)]
fn fill_rows<F: Real, const FMA: bool>(gens: &mut [Lanes], mut out: ArrayViewMut2<F>) {
    let (rows, d) = out.dim();
    if let Some(flat) = out.as_slice_mut() {
        // Contiguous rows (the samplers' own buffers).
        draws::<F, FMA>(gens, rows, d, &mut FillFlat { out: flat, d });
        return;
    }
    draws::<F, FMA>(gens, rows, d, &mut FillView { out: &mut out });
}

/// `x[r, j] ← f(x[r, j], s[r, j], z)` with `z` the draws of `gens`' row `r`.
#[inline(always)]
fn update_rows<F: Real, const FMA: bool, G: Fn(F, F, F) -> F>(
    gens: &mut [Lanes],
    mut x: ArrayViewMut2<F>,
    s: ArrayView2<F>,
    f: &G,
) {
    let (rows, d) = x.dim();
    debug_assert_eq!(s.dim(), (rows, d));
    if let (Some(xf), Some(sf)) = (x.as_slice_mut(), s.as_slice()) {
        draws::<F, FMA>(gens, rows, d, &mut UpdateFlat { x: xf, s: sf, d, f });
        return;
    }
    // Strided views: element by element.
    draws::<F, FMA>(
        gens,
        rows,
        d,
        &mut UpdateView {
            x: &mut x,
            s: &s,
            f,
        },
    );
}

/// [`fill_rows`] in the copy for `isa`.
fn fill_block<F: Real>(isa: Isa, gens: &mut [Lanes], out: ArrayViewMut2<F>) {
    match isa {
        Isa::Portable => fill_rows::<F, PORTABLE_FMA>(gens, out),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2Fma` carries a token only `Isa::detect` (hence `available`) makes,
        // after checking that this CPU has AVX2 and FMA.
        Isa::Avx2Fma(_) => unsafe { fill_rows_avx2_fma(gens, out) },
    }
}

/// [`fill_rows`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fill_rows_avx2_fma<F: Real>(gens: &mut [Lanes], out: ArrayViewMut2<F>) {
    fill_rows::<F, true>(gens, out)
}

/// [`update_rows`] in the copy for `isa`.
fn update_block<F: Real, G: Fn(F, F, F) -> F>(
    isa: Isa,
    gens: &mut [Lanes],
    x: ArrayViewMut2<F>,
    s: ArrayView2<F>,
    f: &G,
) {
    match isa {
        Isa::Portable => update_rows::<F, PORTABLE_FMA, G>(gens, x, s, f),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `fill_block`.
        Isa::Avx2Fma(_) => unsafe { update_rows_avx2_fma(gens, x, s, f) },
    }
}

/// [`update_rows`] compiled with AVX2 and FMA (the sampler's closure `f` is inlined into it).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn update_rows_avx2_fma<F: Real, G: Fn(F, F, F) -> F>(
    gens: &mut [Lanes],
    x: ArrayViewMut2<F>,
    s: ArrayView2<F>,
    f: &G,
) {
    update_rows::<F, true, G>(gens, x, s, f)
}

/// The 64-bit seed of row `r`'s stream from the run's mixed seed `base`.
#[inline]
fn row_seed(base: u64, r: usize) -> u64 {
    splitmix64(base ^ splitmix64(r as u64 ^ 0xA5A5))
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
#[derive(Clone)]
pub struct RowNoise {
    rows: usize,
    /// The states of rows `16c..16c + 16` in `gens[c]` (the last chunk padded with the
    /// streams of the following row indices, never handed out).
    gens: Vec<Lanes>,
}

impl std::fmt::Debug for RowNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowNoise")
            .field("rows", &self.rows)
            .field("generator", &"xoshiro128++ per row")
            .finish()
    }
}

impl RowNoise {
    /// `rows` streams derived from `seed`.
    pub fn new(seed: u64, rows: usize) -> Self {
        Self::for_rows(seed, 0, rows)
    }
    /// Row `row`'s stream of the batch seeded with `seed`, alone (as row 0 of a one-row
    /// `RowNoise`; the other lanes of its chunk are seeded as its successors).
    #[cfg(test)]
    pub(crate) fn single(seed: u64, row: usize) -> Self {
        Self::for_rows(seed, row, 1)
    }
    /// The streams of rows `first..first + rows` of the batch seeded with `seed`: row `i`
    /// here draws exactly what row `first + i` of `RowNoise::new(seed, first + rows)`
    /// draws, so a run can be split into row ranges (processes, machines) and give the
    /// same numbers as one run.
    pub fn for_rows(seed: u64, first: usize, rows: usize) -> Self {
        let base = splitmix64(seed);
        let mut gens = vec![Lanes::zeroed(); rows.div_ceil(LANES)];
        for (c, g) in gens.iter_mut().enumerate() {
            for i in 0..LANES {
                g.seed_lane(i, row_seed(base, first + c * LANES + i));
            }
        }
        Self { rows, gens }
    }
    /// `rows` streams from one `u64` drawn from `rng` (what every sampler run does).
    pub fn from_rng(rng: &mut dyn RngCore, rows: usize) -> Self {
        Self::new(rng.next_u64(), rows)
    }
    /// Number of rows (streams).
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Fill `out` with N(0, 1) draws, row `r` from stream `r` (extra rows of `out`, if
    /// any, are left untouched; callers size `out` to the batch). Columns `(2j, 2j+1)`
    /// are one Box–Muller pair; see the [module docs](self).
    ///
    /// With the `rayon` feature large batches are filled in parallel row blocks; since every
    /// row has its own stream the draws are the same for any thread count.
    pub fn fill<F: Real>(&mut self, out: ArrayViewMut2<F>) {
        self.fill_isa(Isa::detect(), out);
    }

    /// [`RowNoise::fill`] with the instruction-set copy `isa` (tests compare the copies).
    pub(crate) fn fill_isa<F: Real>(&mut self, isa: Isa, out: ArrayViewMut2<F>) {
        let rows = out.nrows().min(self.rows);
        let out = out.slice_move(s![..rows, ..]);
        let gens = &mut self.gens[..rows.div_ceil(LANES)];
        #[cfg(feature = "rayon")]
        if rows > ROW_BLOCK {
            use rayon::prelude::*;
            let mut out = out;
            gens.par_chunks_mut(ROW_BLOCK / LANES)
                .zip(out.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).into_par_iter())
                .for_each(|(g, block)| fill_block(isa, g, block));
            return;
        }
        fill_block(isa, gens, out);
    }

    /// `x[r, j] ← f(x[r, j], s[r, j], z)` with `z ~ N(0, 1)` drawn from row `r`'s stream
    /// in the same order as [`RowNoise::fill`]: an update and its noise in one pass, with
    /// no noise buffer. Rows beyond the streams are left untouched. Parallel in row blocks
    /// with the `rayon` feature (the same draws for any thread count).
    ///
    /// ```
    /// use score_sde::num::RowNoise;
    /// use ndarray::Array2;
    /// // x ← x + 0.1 s + z, the noise drawn in the same pass.
    /// let (mut x, s) = (Array2::<f64>::zeros((3, 2)), Array2::<f64>::ones((3, 2)));
    /// RowNoise::new(7, 3).update(x.view_mut(), s.view(), |x, s, z| x + 0.1 * s + z);
    /// let mut z = Array2::<f64>::zeros((3, 2));
    /// RowNoise::new(7, 3).fill(z.view_mut()); // the same draws as `update` used
    /// assert!((&x - &(&z + 0.1)).iter().all(|e| e.abs() < 1e-15));
    /// ```
    pub fn update<F: Real>(
        &mut self,
        x: ArrayViewMut2<F>,
        s: ArrayView2<F>,
        f: impl Fn(F, F, F) -> F + Sync + Send,
    ) {
        self.update_isa(Isa::detect(), x, s, f);
    }

    /// [`RowNoise::update`] with the instruction-set copy `isa`.
    pub(crate) fn update_isa<F: Real>(
        &mut self,
        isa: Isa,
        x: ArrayViewMut2<F>,
        s: ArrayView2<F>,
        f: impl Fn(F, F, F) -> F + Sync + Send,
    ) {
        let rows = x.nrows().min(self.rows).min(s.nrows());
        let x = x.slice_move(s![..rows, ..]);
        let sv = s.slice_move(s![..rows, ..]);
        let gens = &mut self.gens[..rows.div_ceil(LANES)];
        #[cfg(feature = "rayon")]
        if rows > ROW_BLOCK {
            use rayon::prelude::*;
            let mut x = x;
            gens.par_chunks_mut(ROW_BLOCK / LANES)
                .zip(x.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).into_par_iter())
                .zip(sv.axis_chunks_iter(Axis(0), ROW_BLOCK).into_par_iter())
                .for_each(|((g, xb), sb)| update_block(isa, g, xb, sb, &f));
            return;
        }
        update_block(isa, gens, x, sv, &f);
    }

    /// One U[0, 1) draw from row `row`'s stream (Metropolis tests): 53 bits from two
    /// 32-bit outputs.
    ///
    /// # Panics
    /// If `row ≥ self.rows()`.
    pub fn uniform(&mut self, row: usize) -> f64 {
        assert!(row < self.rows, "RowNoise::uniform: row {row} out of range");
        let g = &mut self.gens[row / LANES];
        let hi = g.next_lane(row % LANES) as u64;
        let lo = g.next_lane(row % LANES) as u64;
        (((hi << 32) | lo) >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
}

#[cfg(test)]
mod tests;
