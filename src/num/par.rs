//! Row-block parallelism (feature `rayon`) with results independent of the thread count.
//!
//! Batch work is cut into blocks of [`ROW_BLOCK`] rows at fixed boundaries (`0`,
//! `ROW_BLOCK`, `2·ROW_BLOCK`, …) whatever the number of threads, and without the feature
//! the same blocks are visited in order. Every row's arithmetic therefore happens in the
//! same block, in the same order, with the same operands, for one thread or many: the
//! samples are bit-identical (`tests/parallel.rs`). Reductions over rows
//! ([`block_sums`]) add per-block partial sums in block order, never in completion order.
//!
//! Randomness is per row ([`RowNoise`](crate::num::RowNoise)): a row's noise does not
//! depend on which thread draws it.

use super::float::Real;
use ndarray::{ArrayView2, ArrayViewMut, Axis, Dimension, Zip};

/// Rows per parallel block: a multiple of the mixture kernel's own block (so a row meets the
/// kernel at the same offset in a parallel block as in one call on the whole batch), large
/// enough that a block's work (≥ 10 µs for a 2-D mixture score) dwarfs rayon's per-task
/// cost, small enough that 100 000 rows give 24 blocks to balance over the threads.
pub(crate) const ROW_BLOCK: usize = 4096;

/// Call `f(x_block, out_block)` on matching row blocks of `x` and `out` (same number of
/// rows), in parallel with the `rayon` feature.
pub(crate) fn row_blocks<A, B, D>(
    x: ArrayView2<'_, A>,
    mut out: ArrayViewMut<'_, B, D>,
    f: impl Fn(ArrayView2<'_, A>, ArrayViewMut<'_, B, D>) + Sync + Send,
) where
    A: Sync,
    B: Send + Sync,
    D: Dimension,
{
    #[cfg(feature = "rayon")]
    if x.nrows() > ROW_BLOCK {
        use rayon::prelude::*;
        x.axis_chunks_iter(Axis(0), ROW_BLOCK)
            .into_par_iter()
            .zip(out.axis_chunks_iter_mut(Axis(0), ROW_BLOCK).into_par_iter())
            .for_each(|(xb, ob)| f(xb, ob));
        return;
    }
    for (xb, ob) in x
        .axis_chunks_iter(Axis(0), ROW_BLOCK)
        .zip(out.axis_chunks_iter_mut(Axis(0), ROW_BLOCK))
    {
        f(xb, ob);
    }
}

/// `Σ_rows g(row of a, row of b)` as per-block partial sums added in block order, so the
/// result is the same for any thread count.
pub(crate) fn block_sums<F: Real, const M: usize>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    g: impl Fn(ndarray::ArrayView1<'_, F>, ndarray::ArrayView1<'_, F>) -> [F; M] + Sync + Send,
) -> [F; M] {
    let block = |ab: ArrayView2<'_, F>, bb: ArrayView2<'_, F>| {
        let mut acc = [F::zero(); M];
        Zip::from(ab.rows()).and(bb.rows()).for_each(|ra, rb| {
            let v = g(ra, rb);
            for (s, v) in acc.iter_mut().zip(v) {
                *s += v;
            }
        });
        acc
    };
    let add = |total: &mut [F; M], p: [F; M]| {
        for (s, v) in total.iter_mut().zip(p) {
            *s += v;
        }
    };
    let mut total = [F::zero(); M];
    #[cfg(feature = "rayon")]
    if a.nrows() > ROW_BLOCK {
        use rayon::prelude::*;
        // One small vector of partial sums per call (a few dozen entries), collected in
        // block order.
        let partial: Vec<[F; M]> = a
            .axis_chunks_iter(Axis(0), ROW_BLOCK)
            .into_par_iter()
            .zip(b.axis_chunks_iter(Axis(0), ROW_BLOCK).into_par_iter())
            .map(|(ab, bb)| block(ab, bb))
            .collect();
        for p in partial {
            add(&mut total, p);
        }
        return total;
    }
    for (ab, bb) in a
        .axis_chunks_iter(Axis(0), ROW_BLOCK)
        .zip(b.axis_chunks_iter(Axis(0), ROW_BLOCK))
    {
        add(&mut total, block(ab, bb));
    }
    total
}

/// `Zip::for_each`, or `Zip::par_for_each` with the `rayon` feature for large batches:
/// for element-wise updates, whose result does not depend on the split.
macro_rules! zip_update {
    ($n:expr, $zip:expr, $f:expr) => {{
        #[cfg(feature = "rayon")]
        {
            if $n > $crate::num::par::ROW_BLOCK {
                $zip.par_for_each($f)
            } else {
                $zip.for_each($f)
            }
        }
        #[cfg(not(feature = "rayon"))]
        {
            let _ = $n;
            $zip.for_each($f)
        }
    }};
}
pub(crate) use zip_update;
