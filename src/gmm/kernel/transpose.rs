//! The block transposes between the callers' row-major arrays and the kernel's
//! coordinate-major block (`gather` in, `scatter` out).
//!
//! Element by element, each is a strided scalar load and store per value. With AVX2 the
//! full `8×8` (f32) or `4×4` (f64) tiles go through registers instead: one vector load
//! per row, the classic unpack/shuffle/lane-permute transpose, one vector store per
//! column; the ragged edges stay scalar. Every value is copied exactly (the scatter's
//! negation flips the sign bit, as `-x` does), so the result is bit for bit that of the
//! scalar loops, and a row's values do not depend on the tile it falls in.

use crate::num::Real;
use std::any::TypeId;

/// `s` as a slice of `T` when `F` is `T`.
fn cast<F: 'static, T: 'static>(s: &[F]) -> Option<&[T]> {
    // SAFETY: F and T are the same type, so layout and validity are the same.
    (TypeId::of::<F>() == TypeId::of::<T>())
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<T>(), s.len()) })
}

/// `s` as a mutable slice of `T` when `F` is `T`.
fn cast_mut<F: 'static, T: 'static>(s: &mut [F]) -> Option<&mut [T]> {
    if TypeId::of::<F>() == TypeId::of::<T>() {
        // SAFETY: F and T are the same type; the borrow is moved into the result.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<T>(), s.len()) })
    } else {
        None
    }
}

/// `dst[j·stride + i] = src[i·d + j]` for `i < b`, `j < d` (`src` row-major, `b×d`).
///
/// `AVX2` must be `true` only in code compiled with AVX2 enabled on a CPU that has it.
#[inline(always)]
pub(super) fn gather<F: Real, const AVX2: bool>(
    src: &[F],
    d: usize,
    b: usize,
    dst: &mut [F],
    stride: usize,
) {
    if d <= 2 {
        return gather_narrow(src, d, b, dst, stride);
    }
    let (mut b_done, mut d_done) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY (both calls): the caller guarantees AVX2; bounds are checked inside.
        if let (Some(s), Some(t)) = (cast::<F, f32>(src), cast_mut::<F, f32>(&mut *dst)) {
            (b_done, d_done) = unsafe { avx2::gather_f32(s, d, b, t, stride) };
        } else if let (Some(s), Some(t)) = (cast::<F, f64>(src), cast_mut::<F, f64>(&mut *dst)) {
            (b_done, d_done) = unsafe { avx2::gather_f64(s, d, b, t, stride) };
        }
    }
    // Columns d_done.. of rows ..b_done, then every column of rows b_done...
    for i in 0..b {
        let j_start = if i < b_done { d_done } else { 0 };
        for j in j_start..d {
            dst[j * stride + i] = src[i * d + j];
        }
    }
}

/// `dst[i·d + j] = −src[j·stride + i]` for `i < b`, `j < d` (`dst` row-major, `b×d`).
///
/// `AVX2` must be `true` only in code compiled with AVX2 enabled on a CPU that has it.
#[inline(always)]
pub(super) fn scatter_neg<F: Real, const AVX2: bool>(
    src: &[F],
    stride: usize,
    d: usize,
    b: usize,
    dst: &mut [F],
) {
    if d <= 2 {
        return scatter_neg_narrow(src, stride, d, b, dst);
    }
    let (mut b_done, mut d_done) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY (both calls): the caller guarantees AVX2; bounds are checked inside.
        if let (Some(s), Some(t)) = (cast::<F, f32>(src), cast_mut::<F, f32>(&mut *dst)) {
            (b_done, d_done) = unsafe { avx2::scatter_neg_f32(s, stride, d, b, t) };
        } else if let (Some(s), Some(t)) = (cast::<F, f64>(src), cast_mut::<F, f64>(&mut *dst)) {
            (b_done, d_done) = unsafe { avx2::scatter_neg_f64(s, stride, d, b, t) };
        }
    }
    for i in 0..b {
        let j_start = if i < b_done { d_done } else { 0 };
        for j in j_start..d {
            dst[i * d + j] = -src[j * stride + i];
        }
    }
}

/// [`gather`] for `D ≤ 2`, written as zips over whole columns so that the compiler
/// vectorises the (de)interleaving, with no bounds checks in the loop.
#[inline(always)]
fn gather_narrow<F: Real>(src: &[F], d: usize, b: usize, dst: &mut [F], stride: usize) {
    if d == 1 {
        dst[..b].copy_from_slice(&src[..b]);
    } else {
        let (c0, c1) = dst.split_at_mut(stride);
        for ((u, v), row) in c0[..b]
            .iter_mut()
            .zip(c1[..b].iter_mut())
            .zip(src.chunks_exact(2))
        {
            *u = row[0];
            *v = row[1];
        }
    }
}

/// [`scatter_neg`] for `D ≤ 2`, as zips (see [`gather_narrow`]).
#[inline(always)]
fn scatter_neg_narrow<F: Real>(src: &[F], stride: usize, d: usize, b: usize, dst: &mut [F]) {
    if d == 1 {
        for (o, v) in dst[..b].iter_mut().zip(&src[..b]) {
            *o = -*v;
        }
    } else {
        let (s0, s1) = (&src[..b], &src[stride..stride + b]);
        for ((row, u), v) in dst.chunks_exact_mut(2).zip(s0).zip(s1) {
            row[0] = -*u;
            row[1] = -*v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Transpose of the `8×8` f32 matrix whose rows are `r`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        // Per 128-bit lane: columns (0, 4), (1, 5), (2, 6), (3, 7) of rows 0–3 and 4–7.
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }

    /// Transpose of the `4×4` f64 matrix whose rows are `r`.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn transpose4(r: [__m256d; 4]) -> [__m256d; 4] {
        let t0 = _mm256_unpacklo_pd(r[0], r[1]);
        let t1 = _mm256_unpackhi_pd(r[0], r[1]);
        let t2 = _mm256_unpacklo_pd(r[2], r[3]);
        let t3 = _mm256_unpackhi_pd(r[2], r[3]);
        [
            _mm256_permute2f128_pd::<0x20>(t0, t2),
            _mm256_permute2f128_pd::<0x20>(t1, t3),
            _mm256_permute2f128_pd::<0x31>(t0, t2),
            _mm256_permute2f128_pd::<0x31>(t1, t3),
        ]
    }

    /// The full tiles of [`gather`](super::gather); returns the rows and columns done.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_f32(
        src: &[f32],
        d: usize,
        b: usize,
        dst: &mut [f32],
        stride: usize,
    ) -> (usize, usize) {
        let (b8, d8) = (b / 8 * 8, d / 8 * 8);
        if b8 == 0 || d8 == 0 || src.len() < b * d || dst.len() < (d - 1) * stride + b {
            return (0, 0);
        }
        for i0 in (0..b8).step_by(8) {
            for j0 in (0..d8).step_by(8) {
                // SAFETY: rows i0..i0+8 ≤ b and columns j0..j0+8 ≤ d of `src` (b×d), and
                // rows j0..j0+8 ≤ d, columns i0..i0+8 ≤ b of `dst`, checked above.
                unsafe {
                    let p = src.as_ptr().add(i0 * d + j0);
                    let r = std::array::from_fn(|t| _mm256_loadu_ps(p.add(t * d)));
                    let c = transpose8(r);
                    let q = dst.as_mut_ptr().add(j0 * stride + i0);
                    for (t, ct) in c.into_iter().enumerate() {
                        _mm256_storeu_ps(q.add(t * stride), ct);
                    }
                }
            }
        }
        (b8, d8)
    }

    /// The full tiles of [`gather`](super::gather); returns the rows and columns done.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gather_f64(
        src: &[f64],
        d: usize,
        b: usize,
        dst: &mut [f64],
        stride: usize,
    ) -> (usize, usize) {
        let (b4, d4) = (b / 4 * 4, d / 4 * 4);
        if b4 == 0 || d4 == 0 || src.len() < b * d || dst.len() < (d - 1) * stride + b {
            return (0, 0);
        }
        for i0 in (0..b4).step_by(4) {
            for j0 in (0..d4).step_by(4) {
                // SAFETY: as in `gather_f32`, with 4×4 tiles.
                unsafe {
                    let p = src.as_ptr().add(i0 * d + j0);
                    let r = std::array::from_fn(|t| _mm256_loadu_pd(p.add(t * d)));
                    let c = transpose4(r);
                    let q = dst.as_mut_ptr().add(j0 * stride + i0);
                    for (t, ct) in c.into_iter().enumerate() {
                        _mm256_storeu_pd(q.add(t * stride), ct);
                    }
                }
            }
        }
        (b4, d4)
    }

    /// The full tiles of [`scatter_neg`](super::scatter_neg); returns the rows and
    /// columns done.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scatter_neg_f32(
        src: &[f32],
        stride: usize,
        d: usize,
        b: usize,
        dst: &mut [f32],
    ) -> (usize, usize) {
        let (b8, d8) = (b / 8 * 8, d / 8 * 8);
        if b8 == 0 || d8 == 0 || dst.len() < b * d || src.len() < (d - 1) * stride + b {
            return (0, 0);
        }
        let sign = _mm256_set1_ps(-0.0);
        for i0 in (0..b8).step_by(8) {
            for j0 in (0..d8).step_by(8) {
                // SAFETY: rows j0..j0+8 ≤ d, columns i0..i0+8 ≤ b of `src`, and rows
                // i0..i0+8 ≤ b, columns j0..j0+8 ≤ d of `dst` (b×d), checked above.
                unsafe {
                    let p = src.as_ptr().add(j0 * stride + i0);
                    let c = std::array::from_fn(|t| _mm256_loadu_ps(p.add(t * stride)));
                    let r = transpose8(c);
                    let q = dst.as_mut_ptr().add(i0 * d + j0);
                    for (t, rt) in r.into_iter().enumerate() {
                        _mm256_storeu_ps(q.add(t * d), _mm256_xor_ps(rt, sign));
                    }
                }
            }
        }
        (b8, d8)
    }

    /// The full tiles of [`scatter_neg`](super::scatter_neg); returns the rows and
    /// columns done.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scatter_neg_f64(
        src: &[f64],
        stride: usize,
        d: usize,
        b: usize,
        dst: &mut [f64],
    ) -> (usize, usize) {
        let (b4, d4) = (b / 4 * 4, d / 4 * 4);
        if b4 == 0 || d4 == 0 || dst.len() < b * d || src.len() < (d - 1) * stride + b {
            return (0, 0);
        }
        let sign = _mm256_set1_pd(-0.0);
        for i0 in (0..b4).step_by(4) {
            for j0 in (0..d4).step_by(4) {
                // SAFETY: as in `scatter_neg_f32`, with 4×4 tiles.
                unsafe {
                    let p = src.as_ptr().add(j0 * stride + i0);
                    let c = std::array::from_fn(|t| _mm256_loadu_pd(p.add(t * stride)));
                    let r = transpose4(c);
                    let q = dst.as_mut_ptr().add(i0 * d + j0);
                    for (t, rt) in r.into_iter().enumerate() {
                        _mm256_storeu_pd(q.add(t * d), _mm256_xor_pd(rt, sign));
                    }
                }
            }
        }
        (b4, d4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::simd::Isa;

    /// Both transposes, every shape up to 17×19 (full tiles, ragged edges, none), against
    /// the definition, bit for bit (they only copy and negate).
    fn check<F: Real>() {
        let avx2 = Isa::available().len() > 1;
        for d in 1..=17 {
            for b in 1..=19 {
                let stride = b + 3;
                let src: Vec<F> = (0..b * d).map(|v| F::lit(v as f64 + 0.25)).collect();
                let mut cols = vec![F::zero(); d * stride];
                let mut back = vec![F::zero(); b * d];
                if avx2 {
                    gather::<F, true>(&src, d, b, &mut cols, stride);
                    scatter_neg::<F, true>(&cols, stride, d, b, &mut back);
                } else {
                    gather::<F, false>(&src, d, b, &mut cols, stride);
                    scatter_neg::<F, false>(&cols, stride, d, b, &mut back);
                }
                for i in 0..b {
                    for j in 0..d {
                        assert_eq!(cols[j * stride + i], src[i * d + j], "d {d} b {b}");
                        assert_eq!(back[i * d + j], -src[i * d + j], "d {d} b {b}");
                    }
                }
                // The padding columns of the strided array are untouched.
                for j in 0..d {
                    assert!(
                        cols[j * stride + b..(j + 1) * stride]
                            .iter()
                            .all(|v| *v == F::zero())
                    );
                }
            }
        }
    }

    #[test]
    fn transposes_are_exact_copies() {
        check::<f32>();
        check::<f64>();
    }
}
