//! The generator against the reference implementation, and the polynomial `ln`,
//! `sin`/`cos` against `std`'s over dense grids of the inputs the transform feeds them.

use super::*;
use rand::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro128PlusPlus;

/// Known answers: every lane of [`Lanes::next`] and [`Lanes::next_lane`] gives the same
/// outputs as rand_xoshiro's `Xoshiro128PlusPlus` (whose seed bytes are the state words
/// `s[0..4]` in little-endian order), for states from the crate's own seeding.
#[test]
fn xoshiro128pp_matches_the_reference() {
    let mut lanes = Lanes::zeroed();
    for i in 0..LANES {
        lanes.seed_lane(i, splitmix64(1000 + i as u64));
    }
    let mut single = lanes;
    let mut refs: Vec<Xoshiro128PlusPlus> = (0..LANES)
        .map(|i| {
            let mut seed = [0u8; 16];
            for k in 0..4 {
                seed[4 * k..4 * k + 4].copy_from_slice(&lanes.s[k][i].to_le_bytes());
            }
            Xoshiro128PlusPlus::from_seed(seed)
        })
        .collect();
    for _ in 0..200 {
        let out = lanes.next();
        for (i, r) in refs.iter_mut().enumerate() {
            let want = r.next_u32();
            assert_eq!(out[i], want);
            assert_eq!(single.next_lane(i), want);
        }
    }
    assert_eq!(single, lanes);
}

/// Seeding is the documented SplitMix64 pair and never the all-zero state.
#[test]
fn seeding_is_two_splitmix_words() {
    let mut l = Lanes::zeroed();
    l.seed_lane(3, 42);
    let (w0, w1) = (
        splitmix64(42),
        splitmix64(42u64.wrapping_add(0x9E37_79B9_7F4A_7C15)),
    );
    assert_eq!(
        [l.s[0][3], l.s[1][3], l.s[2][3], l.s[3][3]],
        [w0 as u32, (w0 >> 32) as u32, w1 as u32, (w1 >> 32) as u32]
    );
}

// ---------------------------------------------------------------------------
// The polynomial kernels, run in both copies: portable (no FMA) and, where the CPU has
// them, AVX2 + FMA (the copy the samplers use there).

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ln32_fma(x: &mut [f32; LANES]) {
    neg_two_ln_f32::<true, LANES>(x)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn ln64_fma(x: &mut [f64; LANES]) {
    neg_two_ln_f64::<true, LANES>(x)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cis32_fma(b: &[u32; LANES], c: &mut [f32; LANES], s: &mut [f32; LANES]) {
    cis_f32::<true, LANES>(b, c, s)
}
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cis64_fma(b: &[u64; LANES], c: &mut [f64; LANES], s: &mut [f64; LANES]) {
    cis_f64::<true, LANES>(b, c, s)
}

fn ln32(isa: Isa, x: &mut [f32; LANES]) {
    match isa {
        Isa::Portable => neg_two_ln_f32::<false, LANES>(x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `isa` comes from `Isa::available`, which checked the CPU.
        Isa::Avx2Fma(_) => unsafe { ln32_fma(x) },
    }
}
fn ln64(isa: Isa, x: &mut [f64; LANES]) {
    match isa {
        Isa::Portable => neg_two_ln_f64::<false, LANES>(x),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma(_) => unsafe { ln64_fma(x) },
    }
}
fn cis32(isa: Isa, b: &[u32; LANES], c: &mut [f32; LANES], s: &mut [f32; LANES]) {
    match isa {
        Isa::Portable => cis_f32::<false, LANES>(b, c, s),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma(_) => unsafe { cis32_fma(b, c, s) },
    }
}
fn cis64(isa: Isa, b: &[u64; LANES], c: &mut [f64; LANES], s: &mut [f64; LANES]) {
    match isa {
        Isa::Portable => cis_f64::<false, LANES>(b, c, s),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx2Fma(_) => unsafe { cis64_fma(b, c, s) },
    }
}

/// Largest relative error of the polynomial `−2 ln` over `xs`, against `−2 f64::ln` (exact
/// to 1 ulp of f64, i.e. exact for the f32 check).
fn ln32_max_rel(isa: Isa, xs: impl Iterator<Item = f32>) -> f64 {
    let xs: Vec<f32> = xs.collect();
    let mut worst = 0.0f64;
    for chunk in xs.chunks(LANES) {
        let mut a = [1.0f32; LANES];
        a[..chunk.len()].copy_from_slice(chunk);
        let x = a;
        ln32(isa, &mut a);
        for i in 0..chunk.len() {
            let exact = -2.0 * (x[i] as f64).ln();
            if exact == 0.0 {
                assert_eq!(a[i], 0.0);
                continue;
            }
            worst = worst.max(((a[i] as f64 - exact) / exact).abs());
        }
    }
    worst
}

// Bound for ln: `s = (m − 1)/(m + 1)` carries ≤ 1 ulp (exact numerator, two roundings),
// the series ≤ 1 ulp (Horner on s² ≤ 0.03, so earlier roundings are damped), the product
// 2s·P and the final e·ln 2 + … ≤ 1 ulp, and the sum can cancel at most a factor ≈ 2
// (e ≤ −1 with |ln m| ≤ ln √2 < ½ |e| ln 2): about 4 ulp of relative error, ε = 2⁻²³
// (f32) or 2⁻⁵² (f64) being 2 ulp at the bottom of a binade. A wrong coefficient or a
// dropped series term would cost ≥ 10⁻⁷ relative, far above it for f64 and ≥ 1 ε in f32.
const LN_TOL_EPS: f64 = 4.0;

/// `ln u₁` over every 61st `f32` in `[2⁻³², 1]` (4.4 million inputs, all binades the
/// transform can produce), plus the exact grid points near both ends.
#[test]
fn ln_f32_is_accurate_on_the_inputs_used() {
    let lo = (2.0f32).powi(-32).to_bits();
    let hi = 1.0f32.to_bits();
    let near_ends = (0..4096u32).flat_map(|k| {
        [
            open_unit_f32::<false>(k << 1),
            open_unit_f32::<false>(u32::MAX - (k << 1)),
        ]
    });
    for isa in Isa::available() {
        let grid = (lo..=hi).step_by(61).map(f32::from_bits).chain([1.0]);
        let worst = ln32_max_rel(isa, grid.chain(near_ends.clone()));
        assert!(
            worst <= LN_TOL_EPS * f32::EPSILON as f64,
            "{isa:?}: ln f32 rel err {worst:e}"
        );
    }
}

/// `ln x` for f64 over 2 million points log-spaced in `[2⁻⁵³, 1]` plus the exact grid
/// points `(2k + 1)·2⁻⁵³` near both ends, against `f64::ln` (itself within 1 ulp, which
/// the tolerance absorbs: 4 ε ≈ 8 ulp).
#[test]
fn ln_f64_is_accurate_on_the_inputs_used() {
    let n = 2_000_000;
    let mut xs: Vec<f64> = (0..=n)
        .map(|i| (-(53.0 * std::f64::consts::LN_2) * i as f64 / n as f64).exp())
        .collect();
    for k in 0..4096u64 {
        xs.push(open_unit_f64(k << 12));
        xs.push(open_unit_f64(u64::MAX - (k << 12)));
    }
    for isa in Isa::available() {
        let mut worst = 0.0f64;
        for chunk in xs.chunks(LANES) {
            let mut a = [1.0f64; LANES];
            a[..chunk.len()].copy_from_slice(chunk);
            ln64(isa, &mut a);
            for i in 0..chunk.len() {
                let exact = -2.0 * chunk[i].ln();
                if exact == 0.0 {
                    assert_eq!(a[i], 0.0);
                    continue;
                }
                worst = worst.max(((a[i] - exact) / exact).abs());
            }
        }
        assert!(
            worst <= LN_TOL_EPS * f64::EPSILON,
            "{isa:?}: ln f64 rel err {worst:e}"
        );
    }
}

/// The uniforms: `u₁` in `(0, 1]` with the documented smallest values, the angle exact.
#[test]
fn uniforms_have_the_documented_range() {
    assert_eq!(open_unit_f32::<false>(0), (2.0f32).powi(-32));
    assert_eq!(open_unit_f32::<true>(0), (2.0f32).powi(-32));
    assert_eq!(open_unit_f32::<false>(u32::MAX), 1.0);
    assert_eq!(open_unit_f32::<true>(u32::MAX), 1.0);
    assert_eq!(open_unit_f64(0), (2.0f64).powi(-53));
    assert_eq!(open_unit_f64(u64::MAX), 1.0 - (2.0f64).powi(-53));
    // (2k + 1)·2⁻⁵³ exactly.
    let k = 0x000F_0F0F_1234_5678u64;
    assert_eq!(
        open_unit_f64(k << 12),
        (2 * k + 1) as f64 * (2.0f64).powi(-53)
    );
}

/// `(cos, sin)(2π b/2³²)` against f64 `cos`/`sin` of the same angle (the low 7 bits of `b`
/// are dropped by design), over every 251st word: 17 million angles covering all four
/// quadrants and their boundaries. Tolerance 2 ε absolute: the Taylor remainders are
/// ≤ 2·10⁻⁹ (module docs), Horner on r² ≤ ¼ adds about one ulp, and the angle itself is
/// exact (a 23-bit mantissa read off the bits).
#[test]
fn cis_f32_is_accurate() {
    let tol = 2.0 * f32::EPSILON as f64;
    for isa in Isa::available() {
        let mut worst = 0.0f64;
        let words: Vec<u32> = (0..=u32::MAX)
            .step_by(251)
            .chain([0x2000_0000, 0x1FFF_FF80, 0x6000_0000, u32::MAX])
            .collect();
        for chunk in words.chunks(LANES) {
            let mut b = [0u32; LANES];
            b[..chunk.len()].copy_from_slice(chunk);
            let (mut c, mut s) = ([0.0f32; LANES], [0.0f32; LANES]);
            cis32(isa, &b, &mut c, &mut s);
            for i in 0..chunk.len() {
                let theta = std::f64::consts::TAU * (b[i] & !0x7F) as f64 / 4_294_967_296.0;
                worst = worst
                    .max((c[i] as f64 - theta.cos()).abs())
                    .max((s[i] as f64 - theta.sin()).abs());
            }
        }
        assert!(worst <= tol, "{isa:?}: cis f32 abs err {worst:e}");
    }
}

/// `(cos, sin)(2π B/2⁶⁴)` in f64 over 2 million words (a multiplicative sweep of the
/// 64-bit range plus the quadrant boundaries). The reference takes the quadrant `q` from
/// the top two bits by truncation (not the implementation's rounding) and `std`'s cos/sin
/// of the rest, `φ = 2π (B mod 2⁶²)/2⁶⁴ ∈ [0, π/2)`, rotated by `q` quarter turns: φ is
/// rounded twice (≤ 1 ulp of π/2, i.e. ½ ε), `std` adds ≤ 1 ulp and ours about 1.5 ulp,
/// so 4 ε bounds the difference.
#[test]
fn cis_f64_is_accurate() {
    let tol = 4.0 * f64::EPSILON;
    let mut words: Vec<u64> = Vec::new();
    let mut w = 0x0123_4567_89AB_CDEFu64;
    for _ in 0..2_000_000 {
        w = w.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        words.push(w);
    }
    for q in 0..4u64 {
        let edge = (q << 62) | (1 << 61);
        words.extend([edge, edge - 1024, edge + 1024, q << 62]);
    }
    for isa in Isa::available() {
        let mut worst = 0.0f64;
        for chunk in words.chunks(LANES) {
            let mut b = [0u64; LANES];
            b[..chunk.len()].copy_from_slice(chunk);
            let (mut c, mut s) = ([0.0f64; LANES], [0.0f64; LANES]);
            cis64(isa, &b, &mut c, &mut s);
            for i in 0..chunk.len() {
                let bw = b[i] & !0x3FF;
                let q = bw >> 62;
                let phi = std::f64::consts::TAU
                    * ((bw & 0x3FFF_FFFF_FFFF_FFFF) as f64 / 18_446_744_073_709_551_616.0);
                let (pc, ps) = (phi.cos(), phi.sin());
                let (want_c, want_s) = match q {
                    0 => (pc, ps),
                    1 => (-ps, pc),
                    2 => (-pc, -ps),
                    _ => (ps, -pc),
                };
                worst = worst.max((c[i] - want_c).abs()).max((s[i] - want_s).abs());
            }
        }
        assert!(worst <= tol, "{isa:?}: cis f64 abs err {worst:e}");
    }
}

/// The quarter-turn kernels alone against `sin`/`cos(πr/2)` on a dense grid of `r ∈ [−½, ½]`
/// (the f32 grid is every representable input the angle bits can give, 2²³ + 1 values).
#[test]
fn sincos_quarter_is_accurate() {
    let n = 1usize << 23;
    let mut worst32 = 0.0f64;
    let mut worst64 = 0.0f64;
    let rs: Vec<f64> = (0..=n).map(|k| k as f64 / n as f64 - 0.5).collect();
    for chunk in rs.chunks(LANES) {
        let mut r32 = [0.0f32; LANES];
        let mut r64 = [0.0f64; LANES];
        for (i, &r) in chunk.iter().enumerate() {
            r32[i] = r as f32;
            r64[i] = r;
        }
        let (mut s32, mut c32) = ([0.0f32; LANES], [0.0f32; LANES]);
        sincos_quarter_f32::<false, LANES>(&r32, &mut s32, &mut c32);
        let (mut s64, mut c64) = ([0.0f64; LANES], [0.0f64; LANES]);
        sincos_quarter_f64::<false, LANES>(&r64, &mut s64, &mut c64);
        for (i, &r) in chunk.iter().enumerate() {
            let phi = std::f64::consts::FRAC_PI_2 * r;
            worst32 = worst32
                .max((s32[i] as f64 - phi.sin()).abs())
                .max((c32[i] as f64 - phi.cos()).abs());
            worst64 = worst64
                .max((s64[i] - phi.sin()).abs())
                .max((c64[i] - phi.cos()).abs());
        }
    }
    // f32: remainder ≤ 2·10⁻⁹ plus about one ulp of Horner rounding; f64: the product
    // π/2 · r of the reference and std's sin/cos each add up to 1 ulp, ours about 1 ulp.
    assert!(worst32 <= 2.0 * f32::EPSILON as f64, "f32 {worst32:e}");
    assert!(worst64 <= 3.0 * f64::EPSILON, "f64 {worst64:e}");
}
