//! A branch-free polynomial exponential that the compiler can vectorise across a slice.
//!
//! `std`'s `exp` is a library call per element, so a loop over it stays scalar. The
//! mixture kernel needs `exp(ℓ − max ℓ)` for every (row, component) pair (the
//! log-sum-exp of the responsibilities), so this module provides an `exp` written only
//! with arithmetic, comparisons and bit casts, which LLVM turns into SIMD code.
//!
//! Method (Cody & Waite 1980, "Software Manual for the Elementary Functions", ch. 6;
//! Muller 2016, "Elementary Functions", §11.2): write `x = n ln 2 + r` with `n` the
//! nearest integer to `x / ln 2` and `|r| ≤ ln 2 / 2`, subtract `n ln 2` in two parts
//! (`ln2_hi` has trailing zero bits, so `n · ln2_hi` is exact), evaluate the Taylor
//! polynomial of `e^r` by Horner's rule, and scale by `2^n` built directly in the exponent
//! bits. `n` comes from the "shifter" trick: adding `1.5 · 2^52` (f64) rounds `x / ln 2`
//! to an integer that sits in the low mantissa bits, so no float-to-int conversion
//! (which AVX2 lacks for f64) is needed.
//!
//! Degrees: on `|r| ≤ ln 2 / 2` the Taylor remainder `|r|^(m+1)/(m+1)!` is `4·10⁻¹⁸`
//! for m = 13 (f64, ≪ ε = 2.2·10⁻¹⁶) and `5·10⁻⁹` for m = 7 (f32, ≪ ε = 1.2·10⁻⁷), so
//! the error is the rounding of the last few Horner steps: about one ulp.
//!
//! Range: `2^n` is built as `2^(n−1)` and doubled, which covers `n ≤ 1024`, i.e. every
//! `x` up to `ln(f64::MAX)` (larger `x` overflows to `+∞`, as `exp` does). Below
//! `−708` (f64) or `−86.5` (f32) the result is `0` instead of the true value under
//! `2.5·10⁻³⁰⁸` (f64) or `2.7·10⁻³⁸` (f32): this avoids subnormal arithmetic (slow on
//! x86) and is exactly what a max-shifted log-sum-exp needs, where such terms are
//! negligible against the leading term `exp(0) = 1`.

/// The polynomial exponential for the kernel's float types (sealed: `f32` and `f64`).
///
/// `FMA` selects fused multiply-adds; it must be `true` only where the target has a
/// hardware FMA (otherwise `mul_add` is a slow library call).
pub trait PolyExp: Copy {
    /// `exp(self)` to about one ulp; see the [module docs](self) for the range.
    fn exp_poly<const FMA: bool>(self) -> Self;
    /// [`exp_poly`](PolyExp::exp_poly) of every element, in place, bit for bit the same.
    ///
    /// Written step by step over the array (each step a loop over the `N` elements), so
    /// the compiler keeps `N / lanes` independent Horner chains in flight instead of one
    /// latency-bound chain per vector.
    fn exp_array<const FMA: bool, const N: usize>(x: &mut [Self; N]);
}

/// `a · b + c`, fused when `FMA`.
#[inline(always)]
pub(crate) fn madd<F: num_traits::Float, const FMA: bool>(a: F, b: F, c: F) -> F {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `1/k!` for `k = 0..=13`.
const INV_FACT: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];

/// `1.5 · 2^52`: adding it rounds to an integer kept in the low mantissa bits.
const F64_SHIFTER: f64 = 6_755_399_441_055_744.0;
/// `ln 2` split so that `n · LN2_HI` is exact for `|n| < 2^21` (32 significant bits).
const F64_LN2_HI: f64 = 6.931_471_803_691_238e-1;
const F64_LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// Below this, `n − 1 < −1022` would leave the normal range: return 0.
const F64_X_ZERO: f64 = -708.0;
/// Above `ln(f64::MAX) ≈ 709.78` the result overflows to `+∞` anyway.
const F64_X_MAX: f64 = 709.8;
/// `1.5 · 2^23`.
const F32_SHIFTER: f32 = 12_582_912.0;
/// `ln 2 = LN2_HI + LN2_LO`, `LN2_HI = 355/512` (9 significant bits).
const F32_LN2_HI: f32 = 355.0 / 512.0;
const F32_LN2_LO: f32 = -2.121_944_4e-4;
/// Below this, `n − 1 < −126` would leave the normal range: return 0.
const F32_X_ZERO: f32 = -86.5;
/// Above `ln(f32::MAX) ≈ 88.72` the result overflows to `+∞` anyway.
const F32_X_MAX: f32 = 88.75;

impl PolyExp for f64 {
    #[inline(always)]
    fn exp_poly<const FMA: bool>(self) -> f64 {
        let mut a = [self];
        Self::exp_array::<FMA, 1>(&mut a);
        a[0]
    }

    #[inline(always)]
    fn exp_array<const FMA: bool, const N: usize>(x: &mut [f64; N]) {
        let (mut xc, mut t, mut r) = ([0.0; N], [0.0; N], [0.0; N]);
        for i in 0..N {
            let v = if x[i] < F64_X_ZERO { F64_X_ZERO } else { x[i] };
            xc[i] = if v > F64_X_MAX { F64_X_MAX } else { v };
            t[i] = madd::<f64, FMA>(xc[i], std::f64::consts::LOG2_E, F64_SHIFTER);
            let n = t[i] - F64_SHIFTER;
            let ri = madd::<f64, FMA>(-n, F64_LN2_HI, xc[i]);
            r[i] = madd::<f64, FMA>(-n, F64_LN2_LO, ri);
        }
        // e^r = 1 + r (1 + r (½ + r Q(r))), Q = Σ_{k=3}^{13} r^(k−3)/k! by Estrin's scheme
        // (Knuth, TAOCP vol. 2, §4.6.4): a dependency chain of 4 multiply-adds instead of
        // Horner's 10, while the last three steps stay Horner's, so Q's rounding error is
        // damped by |r|³ ≤ 0.042 and the result is as accurate as plain Horner.
        let c = &INV_FACT;
        let mut p = [0.0; N];
        for i in 0..N {
            let ri = r[i];
            let r2 = ri * ri;
            let r4 = r2 * r2;
            let r8 = r4 * r4;
            let a0 = madd::<f64, FMA>(c[4], ri, c[3]);
            let a1 = madd::<f64, FMA>(c[6], ri, c[5]);
            let a2 = madd::<f64, FMA>(c[8], ri, c[7]);
            let a3 = madd::<f64, FMA>(c[10], ri, c[9]);
            let a4 = madd::<f64, FMA>(c[12], ri, c[11]);
            let b0 = madd::<f64, FMA>(a1, r2, a0);
            let b1 = madd::<f64, FMA>(a3, r2, a2);
            let b2 = madd::<f64, FMA>(c[13], r2, a4);
            let d0 = madd::<f64, FMA>(b1, r4, b0);
            let q = madd::<f64, FMA>(b2, r8, d0);
            let q = madd::<f64, FMA>(q, ri, c[2]);
            let q = madd::<f64, FMA>(q, ri, c[1]);
            p[i] = madd::<f64, FMA>(q, ri, c[0]);
        }
        // The low 12 bits of t's bit pattern hold n + (a multiple of 2^12), so this
        // exponent field is n − 1 + 1023 ∈ [1, 2046]: the value 2^(n−1).
        for i in 0..N {
            let half_scale = f64::from_bits(t[i].to_bits().wrapping_add(1022) << 52);
            let y = p[i] * half_scale * 2.0;
            x[i] = if x[i] < F64_X_ZERO { 0.0 } else { y };
        }
    }
}

impl PolyExp for f32 {
    #[inline(always)]
    fn exp_poly<const FMA: bool>(self) -> f32 {
        let mut a = [self];
        Self::exp_array::<FMA, 1>(&mut a);
        a[0]
    }

    #[inline(always)]
    fn exp_array<const FMA: bool, const N: usize>(x: &mut [f32; N]) {
        let (mut xc, mut t, mut r) = ([0.0; N], [0.0; N], [0.0; N]);
        for i in 0..N {
            let v = if x[i] < F32_X_ZERO { F32_X_ZERO } else { x[i] };
            xc[i] = if v > F32_X_MAX { F32_X_MAX } else { v };
            t[i] = madd::<f32, FMA>(xc[i], std::f32::consts::LOG2_E, F32_SHIFTER);
            let n = t[i] - F32_SHIFTER;
            let ri = madd::<f32, FMA>(-n, F32_LN2_HI, xc[i]);
            r[i] = madd::<f32, FMA>(-n, F32_LN2_LO, ri);
        }
        let mut p = [INV_FACT[7] as f32; N];
        let mut k = 7;
        while k > 0 {
            k -= 1;
            for i in 0..N {
                p[i] = madd::<f32, FMA>(p[i], r[i], INV_FACT[k] as f32);
            }
        }
        // Exponent field n − 1 + 127 ∈ [1, 254]: the value 2^(n−1).
        for i in 0..N {
            let half_scale = f32::from_bits(t[i].to_bits().wrapping_add(126) << 23);
            let y = p[i] * half_scale * 2.0;
            x[i] = if x[i] < F32_X_ZERO { 0.0 } else { y };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Distance in units in the last place between two finite positive f64.
    fn ulps64(a: f64, b: f64) -> u64 {
        a.to_bits().abs_diff(b.to_bits())
    }
    fn ulps32(a: f32, b: f32) -> u32 {
        a.to_bits().abs_diff(b.to_bits())
    }

    // Tolerance: the module docs bound the error by the last Horner roundings (≈ 1 ulp)
    // plus the truncation (≪ 1 ulp); std's exp is itself within 1 ulp of the true value,
    // so the two may differ by 2 ulp. Checked with and without fused multiply-adds.
    const ULP_TOL: u64 = 2;

    fn check64(x: f64) {
        let e = x.exp();
        for got in [x.exp_poly::<false>(), x.exp_poly::<true>()] {
            if x < -708.0 {
                assert_eq!(got, 0.0, "x = {x}");
            } else if e.is_infinite() {
                assert_eq!(got, f64::INFINITY, "x = {x}");
            } else {
                assert!(ulps64(got, e) <= ULP_TOL, "x = {x}: {got} vs {e}");
            }
        }
    }
    fn check32(x: f32) {
        // The reference is the correctly rounded f32 of the f64 exponential.
        let e = (x as f64).exp() as f32;
        for got in [x.exp_poly::<false>(), x.exp_poly::<true>()] {
            if x < -86.5 {
                assert_eq!(got, 0.0, "x = {x}");
            } else if e.is_infinite() {
                assert_eq!(got, f32::INFINITY, "x = {x}");
            } else {
                assert!(ulps32(got, e) <= ULP_TOL as u32, "x = {x}: {got} vs {e}");
            }
        }
    }

    #[test]
    fn f64_dense_grid_and_edges() {
        // 2·10⁶ points over the whole finite range, plus the reduction boundaries
        // x = (n ± ½) ln 2 where r = ±ln2/2 is largest.
        let n = 2_000_000;
        for i in 0..=n {
            check64(-750.0 + 1462.0 * i as f64 / n as f64);
        }
        for k in -1021..=1023 {
            let b = (k as f64 + 0.5) * std::f64::consts::LN_2;
            for x in [b, b.next_up(), b.next_down()] {
                check64(x);
            }
        }
        for x in [
            0.0, -0.0, 1e-300, -1e-300, 1.0, -1.0, 709.78, 709.79, 710.0, 1e300,
        ] {
            check64(x);
        }
        assert_eq!(f64::NEG_INFINITY.exp_poly::<true>(), 0.0);
        assert_eq!(f64::INFINITY.exp_poly::<true>(), f64::INFINITY);
        assert_eq!((-1e300_f64).exp_poly::<false>(), 0.0);
    }

    #[test]
    fn f32_dense_grid_and_edges() {
        // Every 64th f32 in [−90, 90] (about 2.5·10⁷ values) — near-exhaustive.
        let mut x = -90.0_f32;
        while x < 90.0 {
            check32(x);
            x = f32::from_bits(if x >= 0.0 {
                x.to_bits() + 64
            } else if x.to_bits() > 64 + (1 << 31) {
                x.to_bits() - 64
            } else {
                0
            });
        }
        for k in -125..=127 {
            let b = (k as f32 + 0.5) * std::f32::consts::LN_2;
            for x in [b, b.next_up(), b.next_down()] {
                check32(x);
            }
        }
        assert_eq!(f32::NEG_INFINITY.exp_poly::<true>(), 0.0);
        assert_eq!(f32::INFINITY.exp_poly::<false>(), f32::INFINITY);
    }

    #[test]
    fn arrays_equal_scalars_bitwise() {
        let mut a: [f64; 16] = std::array::from_fn(|i| -700.0 + 93.7 * i as f64);
        let want = a.map(|v| v.exp_poly::<true>());
        f64::exp_array::<true, 16>(&mut a);
        assert_eq!(a, want);
        let mut b: [f32; 16] = std::array::from_fn(|i| -90.0 + 11.3 * i as f32);
        let want = b.map(|v| v.exp_poly::<false>());
        f32::exp_array::<false, 16>(&mut b);
        assert_eq!(b, want);
    }

    proptest! {
        #[test]
        fn f64_matches_std(x in -708.0f64..709.7) {
            check64(x);
        }
        #[test]
        fn f64_small_arguments(x in -1.0f64..1.0) {
            check64(x);
        }
        #[test]
        fn f32_matches_std(x in -86.5f32..88.7) {
            check32(x);
        }
    }
}
