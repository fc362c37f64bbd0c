//! The per-row generator and the normal transform behind [`RowNoise`](super::RowNoise),
//! written so that the compiler vectorises them across rows.
//!
//! **Generator.** Every row has its own xoshiro128++ (Blackman & Vigna 2021, "Scrambled
//! linear pseudorandom number generators", ACM TOMS 47(4), §4 and the `++` scrambler of
//! §7): 4 × 32-bit words of state, one step being
//!
//! ```text
//! out = rotl(s0 + s3, 7) + s0
//! t = s1 << 9;  s2 ^= s0;  s3 ^= s1;  s1 ^= s2;  s0 ^= s3;  s2 ^= t;  s3 = rotl(s3, 11)
//! ```
//!
//! (period 2¹²⁸ − 1; only 32-bit adds, xors, shifts and rotations). The states of
//! [`LANES`] consecutive rows are stored structure-of-arrays ([`Lanes`]: word `k` of row
//! `i` at `s[k][i]`), so one step of 16 rows is a handful of vector instructions (two
//! AVX2 registers per word). A row's state is seeded from a 64-bit row seed by two
//! SplitMix64 outputs (Steele, Lea & Flood 2014), as the authors recommend.
//!
//! **Normal transform.** Box & Muller (1958): for `u₁ ∈ (0, 1]` and `u₂ ∈ [0, 1)`,
//! `z₁ = √(−2 ln u₁) cos 2πu₂` and `z₂ = √(−2 ln u₁) sin 2πu₂` are independent N(0, 1).
//! `ln` and `(cos, sin)` are branch-free polynomials in `F`'s own precision (no library
//! calls, so the loops over rows vectorise):
//!
//! * `ln x`: `x = 2^e m` with `m ∈ [√½, √2)` split on the bits, then
//!   `ln m = 2 atanh s = 2 (s + s³/3 + s⁵/5 + …)` with `s = (m − 1)/(m + 1)`,
//!   `|s| ≤ 0.1716` (Abramowitz & Stegun 4.1.27); the series is cut where its remainder
//!   `s^(2n)/(2n+1)` is far below an ulp: through `s⁹` for `f32` (remainder 2·10⁻⁹ relative),
//!   through `s¹⁹` for `f64` (2·10⁻¹⁷).
//! * `(cos, sin) 2πu`: `4u = m + r` with the quadrant `m = round(4u) mod 4` and
//!   `r ∈ [−½, ½)` read off the fixed-point bits of `u`, then `sin(πr/2)` and `cos(πr/2)`
//!   by their Taylor series on `|πr/2| ≤ π/4` (through `φ⁹`/`φ¹⁰` for `f32`, remainder
//!   ≤ 2·10⁻⁹; through `φ¹⁷`/`φ¹⁶` for `f64`, ≤ 10⁻¹⁸), and a rotation by `m` quarter
//!   turns (a swap and two sign flips, done on the bits).
//!
//! **Words per pair and tails.** `f32`: two 32-bit outputs per pair; `u₁ = (k + ½)·2⁻³¹`
//! with `k` the top 31 bits of the first word (rounded to `f32`), so `u₁ ≥ 2⁻³²` and
//! `|z| ≤ √(64 ln 2) ≈ 6.66`: the normal is truncated at 6.66 σ, which removes a
//! probability of 2.7·10⁻¹¹ (less than one draw in 10¹⁰). The angle has 25 bits (quadrant
//! and 23 more). `f64`: four
//! outputs per pair, two 64-bit words (first output in the high half); `u₁ = (2k + 1)·2⁻⁵³`
//! with `k` the top 52 bits (exact), so `|z| ≤ √(106 ln 2) ≈ 8.57` (a truncated
//! probability of 10⁻¹⁷); the angle has 54 bits.
//!
//! **Instruction sets.** As in the mixture kernel, the loops are `#[inline(always)]`
//! generic functions over `[_; LANES]` arrays, instantiated inside an entry point
//! compiled with AVX2 + FMA (chosen at run time by [`Isa::detect`]) and a portable one.
//! With FMA the multiply-adds round once instead of twice, so the two copies may differ
//! in the last bits (a few ulps; tested); each copy on its own is deterministic.

use super::exp::madd;
pub(crate) use super::simd::{Isa, PORTABLE_FMA};

/// Rows per chunk: a multiple of every SIMD width (8 `u32`/`f32` or 4 `f64` per AVX2
/// register), two registers per state word so that two independent chains are in flight.
pub(crate) const LANES: usize = 16;

/// SplitMix64 finaliser (Steele, Lea & Flood 2014): a bijective mixer of 64-bit words
/// (one output of a SplitMix64 generator whose state was `z`).
#[inline]
pub(crate) fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro128++ states of [`LANES`] consecutive rows, structure-of-arrays: `s[k][i]` is
/// word `k` of lane `i` (16 bytes per row).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Lanes {
    pub(crate) s: [[u32; LANES]; 4],
}

impl Lanes {
    /// All-zero states (not a valid generator state; filled by [`Lanes::seed_lane`]).
    pub(crate) const fn zeroed() -> Self {
        Lanes { s: [[0; LANES]; 4] }
    }

    /// Seed lane `i` from a 64-bit row seed: the state is two consecutive SplitMix64
    /// outputs (low half first). SplitMix64 is a bijection of distinct inputs, so the two
    /// words cannot both be zero; the guard only documents that the all-zero state (a
    /// fixed point of xoshiro) is excluded.
    pub(crate) fn seed_lane(&mut self, i: usize, row_seed: u64) {
        let w0 = splitmix64(row_seed);
        let w1 = splitmix64(row_seed.wrapping_add(0x9E37_79B9_7F4A_7C15));
        let mut words = [w0 as u32, (w0 >> 32) as u32, w1 as u32, (w1 >> 32) as u32];
        if words == [0; 4] {
            words[0] = 1;
        }
        for (k, w) in words.into_iter().enumerate() {
            self.s[k][i] = w;
        }
    }

    /// One xoshiro128++ step of every lane: the 32-bit outputs.
    #[inline(always)]
    pub(crate) fn next(&mut self) -> [u32; LANES] {
        let mut out = [0u32; LANES];
        let [s0, s1, s2, s3] = &mut self.s;
        for i in 0..LANES {
            out[i] = s0[i].wrapping_add(s3[i]).rotate_left(7).wrapping_add(s0[i]);
            let t = s1[i] << 9;
            s2[i] ^= s0[i];
            s3[i] ^= s1[i];
            s1[i] ^= s2[i];
            s0[i] ^= s3[i];
            s2[i] ^= t;
            s3[i] = s3[i].rotate_left(11);
        }
        out
    }

    /// One step of lane `i` alone: the same output and new state as [`Lanes::next`] gives
    /// that lane.
    #[inline]
    pub(crate) fn next_lane(&mut self, i: usize) -> u32 {
        let [s0, s1, s2, s3] = [self.s[0][i], self.s[1][i], self.s[2][i], self.s[3][i]];
        let out = s0.wrapping_add(s3).rotate_left(7).wrapping_add(s0);
        let t = s1 << 9;
        let s2 = s2 ^ s0;
        let s3 = s3 ^ s1;
        let s1 = s1 ^ s2;
        let s0 = s0 ^ s3;
        let s2 = s2 ^ t;
        let s3 = s3.rotate_left(11);
        [self.s[0][i], self.s[1][i], self.s[2][i], self.s[3][i]] = [s0, s1, s2, s3];
        out
    }

    /// Copy lanes `0..n` of `other` into `self`.
    #[inline]
    pub(crate) fn copy_lanes_from(&mut self, other: &Lanes, n: usize) {
        for k in 0..4 {
            self.s[k][..n].copy_from_slice(&other.s[k][..n]);
        }
    }
}

/// The Box–Muller pair for the crate's float types (sealed: `f32` and `f64`).
pub trait BoxMuller: Copy {
    /// One `(z₁, z₂)` pair per lane from `g` (advancing every lane by the same number of
    /// steps: 2 for `f32`, 4 for `f64`). `FMA` must be `true` only where the target has a
    /// hardware FMA.
    #[doc(hidden)]
    fn pair<const FMA: bool>(g: &mut Lanes, z1: &mut [Self; LANES], z2: &mut [Self; LANES]);
}

/// `(π/2)^(2k+1) / (2k+1)!` with alternating signs: `sin(πr/2) = r Σ_k SIN[k] r^(2k)`.
const fn sin_quarter_coeffs<const K: usize>() -> [f64; K] {
    let h = std::f64::consts::FRAC_PI_2;
    let mut c = [0.0; K];
    let mut term = h;
    let mut k = 0;
    while k < K {
        c[k] = term;
        let n = (2 * k + 2) as f64 * (2 * k + 3) as f64;
        term = -term * h * h / n;
        k += 1;
    }
    c
}

/// `(π/2)^(2k) / (2k)!` with alternating signs: `cos(πr/2) = Σ_k COS[k] r^(2k)`.
const fn cos_quarter_coeffs<const K: usize>() -> [f64; K] {
    let h = std::f64::consts::FRAC_PI_2;
    let mut c = [0.0; K];
    let mut term = 1.0;
    let mut k = 0;
    while k < K {
        c[k] = term;
        let n = (2 * k + 1) as f64 * (2 * k + 2) as f64;
        term = -term * h * h / n;
        k += 1;
    }
    c
}

/// `−4/(2k+1)`: `−2 · 2 atanh s = s Σ_k c[k] s^(2k)` (the Box–Muller radicand's factor −2
/// folded into the coefficients: a power-of-two scaling, so the result is bit for bit −2
/// times the plain series' and two operations shorter).
const fn atanh_coeffs<const K: usize>() -> [f64; K] {
    let mut c = [0.0; K];
    let mut k = 0;
    while k < K {
        c[k] = -4.0 / (2 * k + 1) as f64;
        k += 1;
    }
    c
}

const SIN32: [f64; 5] = sin_quarter_coeffs::<5>();
const COS32: [f64; 6] = cos_quarter_coeffs::<6>();
const ATANH32: [f64; 5] = atanh_coeffs::<5>();
const SIN64: [f64; 9] = sin_quarter_coeffs::<9>();
const COS64: [f64; 9] = cos_quarter_coeffs::<9>();
const ATANH64: [f64; 10] = atanh_coeffs::<10>();

/// `Σ_k c[k] y^k` by Horner's rule.
#[inline(always)]
fn horner<F: num_traits::Float, const FMA: bool>(y: F, c: &[F]) -> F {
    let mut p = c[c.len() - 1];
    for &ck in c[..c.len() - 1].iter().rev() {
        p = madd::<F, FMA>(p, y, ck);
    }
    p
}

/// `c` rounded to `f32`.
const fn to_f32<const K: usize>(c: [f64; K]) -> [f32; K] {
    let mut o = [0.0f32; K];
    let mut k = 0;
    while k < K {
        o[k] = c[k] as f32;
        k += 1;
    }
    o
}

const SIN32F: [f32; 5] = to_f32(SIN32);
const COS32F: [f32; 6] = to_f32(COS32);
const ATANH32F: [f32; 5] = to_f32(ATANH32);

// ------------------------------------------------------------------------- f32

/// Bits of `√½` in `f32`.
const F32_SQRT_HALF_BITS: u32 = 0x3F35_04F3;

/// `−2 ln x` (the Box–Muller radicand) for positive normal `x`, elementwise (see the
/// module docs).
#[inline(always)]
pub(crate) fn neg_two_ln_f32<const FMA: bool, const N: usize>(x: &mut [f32; N]) {
    let (mut e, mut s) = ([0.0f32; N], [0.0f32; N]);
    for i in 0..N {
        // ix's top bits are e + 127 with x = 2^e m, m ∈ [√½, √2) (logical shifts only).
        let ix = x[i]
            .to_bits()
            .wrapping_sub(F32_SQRT_HALF_BITS)
            .wrapping_add(127 << 23);
        e[i] = ((ix >> 23) as i32 - 127) as f32;
        let m = f32::from_bits((ix & 0x007F_FFFF) + F32_SQRT_HALF_BITS);
        // m − 1 is exact (Sterbenz), so s has a relative error of about one ulp.
        s[i] = (m - 1.0) / (m + 1.0);
    }
    for i in 0..N {
        let s2 = s[i] * s[i];
        let p = horner::<f32, FMA>(s2, &ATANH32F);
        x[i] = madd::<f32, FMA>(e[i], -2.0 * std::f32::consts::LN_2, s[i] * p);
    }
}

/// `(sin, cos)(πr/2)` for `|r| ≤ ½`, elementwise.
#[inline(always)]
pub(crate) fn sincos_quarter_f32<const FMA: bool, const N: usize>(
    r: &[f32; N],
    sin: &mut [f32; N],
    cos: &mut [f32; N],
) {
    for i in 0..N {
        let r2 = r[i] * r[i];
        sin[i] = r[i] * horner::<f32, FMA>(r2, &SIN32F);
        cos[i] = horner::<f32, FMA>(r2, &COS32F);
    }
}

/// `(cos, sin)(2π b/2³²)` for 32-bit words `b`, elementwise.
#[inline(always)]
pub(crate) fn cis_f32<const FMA: bool, const N: usize>(
    b: &[u32; N],
    cos: &mut [f32; N],
    sin: &mut [f32; N],
) {
    let (mut r, mut m) = ([0.0f32; N], [0u32; N]);
    for i in 0..N {
        // 4u = m + r: v = b + 2^29 has the quadrant m in its top 2 bits and r + ½ in the
        // other 30; the top 23 of those become a mantissa, r = 1.f − 1.5 exactly.
        let v = b[i].wrapping_add(1 << 29);
        m[i] = v >> 30;
        r[i] = f32::from_bits(0x3F80_0000 | ((v & 0x3FFF_FFFF) >> 7)) - 1.5;
    }
    let (mut sq, mut cq) = ([0.0f32; N], [0.0f32; N]);
    sincos_quarter_f32::<FMA, N>(&r, &mut sq, &mut cq);
    for i in 0..N {
        // Rotation by m quarter turns: swap for odd m; cos negative for m ∈ {1, 2}, sin
        // for m ∈ {2, 3}.
        let odd = m[i] & 1 == 1;
        let (c, s) = if odd { (sq[i], cq[i]) } else { (cq[i], sq[i]) };
        let neg_c = ((m[i] + 1) >> 1) & 1;
        let neg_s = m[i] >> 1;
        cos[i] = f32::from_bits(c.to_bits() ^ (neg_c << 31));
        sin[i] = f32::from_bits(s.to_bits() ^ (neg_s << 31));
    }
}

/// `u₁ = (k + ½)·2⁻³¹ ∈ (0, 1]` with `k` the top 31 bits of `a` (rounded to `f32`).
#[inline(always)]
pub(crate) fn open_unit_f32<const FMA: bool>(a: u32) -> f32 {
    madd::<f32, FMA>(
        (a >> 1) as i32 as f32,
        1.0 / 2_147_483_648.0,
        1.0 / 4_294_967_296.0,
    )
}

impl BoxMuller for f32 {
    #[inline(always)]
    fn pair<const FMA: bool>(g: &mut Lanes, z1: &mut [f32; LANES], z2: &mut [f32; LANES]) {
        let a = g.next();
        let b = g.next();
        let mut l = [0.0f32; LANES];
        for i in 0..LANES {
            l[i] = open_unit_f32::<FMA>(a[i]);
        }
        neg_two_ln_f32::<FMA, LANES>(&mut l);
        let (mut c, mut s) = ([0.0f32; LANES], [0.0f32; LANES]);
        cis_f32::<FMA, LANES>(&b, &mut c, &mut s);
        for i in 0..LANES {
            // ln u₁ ≤ 0 (u₁ ≤ 1), so the radicand is ≥ 0.
            let rad = l[i].sqrt();
            z1[i] = rad * c[i];
            z2[i] = rad * s[i];
        }
    }
}

// ------------------------------------------------------------------------- f64

/// Bits of `√½` in `f64`.
const F64_SQRT_HALF_BITS: u64 = 0x3FE6_A09E_667F_3BCD;
/// Bits of `1.0` in `f64`.
const F64_ONE_BITS: u64 = 0x3FF0_0000_0000_0000;
/// `2⁵²`: `from_bits(bits(2⁵²) | n) − 2⁵² = n` for `n < 2⁵²`, an exact integer-to-float
/// conversion with integer ops only (AVX2 has no 64-bit integer conversion).
const F64_TWO52_BITS: u64 = 0x4330_0000_0000_0000;

/// `−2 ln x` (the Box–Muller radicand) for positive normal `x`, elementwise (see the
/// module docs).
#[inline(always)]
pub(crate) fn neg_two_ln_f64<const FMA: bool, const N: usize>(x: &mut [f64; N]) {
    let (mut e, mut s) = ([0.0f64; N], [0.0f64; N]);
    for i in 0..N {
        let ix = x[i]
            .to_bits()
            .wrapping_sub(F64_SQRT_HALF_BITS)
            .wrapping_add(1023 << 52);
        // (ix >> 52) = e + 1023 ≥ 0: converted exactly through the 2⁵² trick.
        let biased = f64::from_bits(F64_TWO52_BITS | (ix >> 52)) - 4_503_599_627_370_496.0;
        e[i] = biased - 1023.0;
        let m = f64::from_bits((ix & 0x000F_FFFF_FFFF_FFFF) + F64_SQRT_HALF_BITS);
        s[i] = (m - 1.0) / (m + 1.0);
    }
    for i in 0..N {
        let s2 = s[i] * s[i];
        let p = horner::<f64, FMA>(s2, &ATANH64);
        x[i] = madd::<f64, FMA>(e[i], -2.0 * std::f64::consts::LN_2, s[i] * p);
    }
}

/// `(sin, cos)(πr/2)` for `|r| ≤ ½`, elementwise.
#[inline(always)]
pub(crate) fn sincos_quarter_f64<const FMA: bool, const N: usize>(
    r: &[f64; N],
    sin: &mut [f64; N],
    cos: &mut [f64; N],
) {
    for i in 0..N {
        let r2 = r[i] * r[i];
        sin[i] = r[i] * horner::<f64, FMA>(r2, &SIN64);
        cos[i] = horner::<f64, FMA>(r2, &COS64);
    }
}

/// `(cos, sin)(2π b/2⁶⁴)` for 64-bit words `b`, elementwise.
#[inline(always)]
pub(crate) fn cis_f64<const FMA: bool, const N: usize>(
    b: &[u64; N],
    cos: &mut [f64; N],
    sin: &mut [f64; N],
) {
    let (mut r, mut m) = ([0.0f64; N], [0u64; N]);
    for i in 0..N {
        let v = b[i].wrapping_add(1 << 61);
        m[i] = v >> 62;
        r[i] = f64::from_bits(F64_ONE_BITS | ((v & 0x3FFF_FFFF_FFFF_FFFF) >> 10)) - 1.5;
    }
    let (mut sq, mut cq) = ([0.0f64; N], [0.0f64; N]);
    sincos_quarter_f64::<FMA, N>(&r, &mut sq, &mut cq);
    for i in 0..N {
        let odd = m[i] & 1 == 1;
        let (c, s) = if odd { (sq[i], cq[i]) } else { (cq[i], sq[i]) };
        let neg_c = ((m[i] + 1) >> 1) & 1;
        let neg_s = m[i] >> 1;
        cos[i] = f64::from_bits(c.to_bits() ^ (neg_c << 63));
        sin[i] = f64::from_bits(s.to_bits() ^ (neg_s << 63));
    }
}

/// `u₁ = (2k + 1)·2⁻⁵³ ∈ (0, 1)` with `k` the top 52 bits of `a` (exact: `1.f − (1 − 2⁻⁵³)`
/// is a Sterbenz subtraction).
#[inline(always)]
pub(crate) fn open_unit_f64(a: u64) -> f64 {
    f64::from_bits(F64_ONE_BITS | (a >> 12)) - (1.0 - 1.0 / 9_007_199_254_740_992.0)
}

/// Lanes per step of the f64 transform: two AVX2 registers per array, so that the
/// transform's temporaries fit the 16 vector registers (16 lanes of f64 would spill).
const F64_SUB: usize = 8;

impl BoxMuller for f64 {
    #[inline(always)]
    fn pair<const FMA: bool>(g: &mut Lanes, z1: &mut [f64; LANES], z2: &mut [f64; LANES]) {
        let (a_hi, a_lo) = (g.next(), g.next());
        let (b_hi, b_lo) = (g.next(), g.next());
        for h in 0..LANES / F64_SUB {
            let (mut l, mut b) = ([0.0f64; F64_SUB], [0u64; F64_SUB]);
            for i in 0..F64_SUB {
                let k = h * F64_SUB + i;
                l[i] = open_unit_f64(((a_hi[k] as u64) << 32) | a_lo[k] as u64);
                b[i] = ((b_hi[k] as u64) << 32) | b_lo[k] as u64;
            }
            neg_two_ln_f64::<FMA, F64_SUB>(&mut l);
            let (mut c, mut s) = ([0.0f64; F64_SUB], [0.0f64; F64_SUB]);
            cis_f64::<FMA, F64_SUB>(&b, &mut c, &mut s);
            for i in 0..F64_SUB {
                let rad = l[i].sqrt();
                z1[h * F64_SUB + i] = rad * c[i];
                z2[h * F64_SUB + i] = rad * s[i];
            }
        }
    }
}

#[cfg(test)]
mod tests;
