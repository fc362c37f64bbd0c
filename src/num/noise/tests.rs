//! `RowNoise` against the standard normal (moments, Kolmogorov–Smirnov, tails,
//! independence) and against its own promises (a row's draws depend only on the seed and
//! the row; `fill` and `update` draw the same numbers; the two instruction-set copies
//! agree to a few ulps).
//!
//! Tolerances are Monte Carlo: `Z_TOL` standard errors of the estimate for the sample
//! size (two-sided 4.5σ, a false-alarm probability of 7·10⁻⁶ per check), and the
//! Kolmogorov–Smirnov critical value at α = 10⁻³.

use super::*;
use ndarray::{Array2, ShapeBuilder, Zip, s};

/// Standard errors allowed on a Monte Carlo estimate.
const Z_TOL: f64 = 4.5;

/// Φ(x) by Marsaglia's series (2004, "Evaluating the normal distribution", J. Stat.
/// Softw. 11(4)): `Φ(x) = ½ + φ(x) Σ_k x^(2k+1)/(1·3·…·(2k+1))`, all terms of one sign,
/// absolutely accurate to ~10⁻¹⁵ for |x| < 9 (beyond, Φ is 0 or 1 to 10⁻¹⁹).
fn phi_cdf(x: f64) -> f64 {
    if x.abs() > 9.0 {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    let (mut term, mut sum, mut k) = (x, x, 1.0);
    while term.abs() > 1e-17 * sum.abs() {
        k += 2.0;
        term *= x * x / k;
        sum += term;
    }
    0.5 + sum * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Draws of `rows × d` in `F`, as f64.
fn draws<F: Real>(seed: u64, rows: usize, d: usize) -> Array2<f64> {
    let mut z = Array2::<F>::zeros((rows, d));
    RowNoise::new(seed, rows).fill(z.view_mut());
    z.mapv(|v| v.as_f64())
}

fn check_standard_normal<F: Real>(name: &str) {
    // 1001 rows (a partial last chunk) × 1000 columns (two passes of the column buffer):
    // 1.001·10⁶ draws.
    let (rows, d) = (1001, 1000);
    let z = draws::<F>(11, rows, d);
    let n = z.len() as f64;
    let m1 = z.sum() / n;
    let m2 = z.mapv(|v| v * v).sum() / n;
    let m4 = z.mapv(|v| v.powi(4)).sum() / n;
    // Var z = 1, Var z² = 2, Var z⁴ = E z⁸ − 9 = 105 − 9 = 96.
    assert!(m1.abs() < Z_TOL / n.sqrt(), "{name}: mean {m1}");
    assert!(
        (m2 - 1.0).abs() < Z_TOL * (2.0 / n).sqrt(),
        "{name}: E z² {m2}"
    );
    assert!(
        (m4 - 3.0).abs() < Z_TOL * (96.0 / n).sqrt(),
        "{name}: E z⁴ {m4}"
    );

    // Tails: P(|z| > 3) and P(|z| > 4) from Φ, binomial standard errors.
    for c in [3.0, 4.0] {
        let p = 2.0 * phi_cdf(-c);
        let hat = z.iter().filter(|v| v.abs() > c).count() as f64 / n;
        let se = (p * (1.0 - p) / n).sqrt();
        assert!(
            (hat - p).abs() < Z_TOL * se,
            "{name}: P(|z| > {c}) {hat} vs {p}"
        );
    }

    // Kolmogorov–Smirnov distance to Φ; critical value √(ln(2/α)/2)/√n at α = 10⁻³.
    let mut sorted: Vec<f64> = z.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let mut ks = 0.0f64;
    for (i, &v) in sorted.iter().enumerate() {
        let p = phi_cdf(v);
        ks = ks
            .max((i as f64 / n - p).abs())
            .max(((i + 1) as f64 / n - p).abs());
    }
    let crit = ((2.0f64 / 1e-3).ln() / 2.0).sqrt() / n.sqrt();
    assert!(ks < crit, "{name}: KS {ks} ≥ {crit}");

    // Independence: the two outputs of a Box–Muller pair (columns 2j, 2j+1), linearly
    // and through their squares (both exactly 0 for independent normals), and vertically
    // adjacent rows. For independent variables the sample correlation has standard error
    // 1/√(pairs).
    let corr = |a: &[f64], b: &[f64]| {
        let k = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / k, b.iter().sum::<f64>() / k);
        let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            sab += (x - ma) * (y - mb);
            saa += (x - ma) * (x - ma);
            sbb += (y - mb) * (y - mb);
        }
        sab / (saa * sbb).sqrt()
    };
    let z1: Vec<f64> = z.slice(s![.., ..;2]).iter().copied().collect();
    let z2: Vec<f64> = z.slice(s![.., 1..;2]).iter().copied().collect();
    let se = 1.0 / (z1.len() as f64).sqrt();
    let r = corr(&z1, &z2);
    assert!(r.abs() < Z_TOL * se, "{name}: corr(z₁, z₂) {r}");
    let sq = |v: &[f64]| v.iter().map(|x| x * x).collect::<Vec<_>>();
    let r = corr(&sq(&z1), &sq(&z2));
    assert!(r.abs() < Z_TOL * se, "{name}: corr(z₁², z₂²) {r}");
    let up: Vec<f64> = z.slice(s![..rows - 1, ..]).iter().copied().collect();
    let down: Vec<f64> = z.slice(s![1.., ..]).iter().copied().collect();
    let r = corr(&up, &down);
    assert!(
        r.abs() < Z_TOL / (up.len() as f64).sqrt(),
        "{name}: adjacent rows {r}"
    );
}

#[test]
fn f32_draws_are_standard_normal() {
    check_standard_normal::<f32>("f32");
}

#[test]
fn f64_draws_are_standard_normal() {
    check_standard_normal::<f64>("f64");
}

/// The truncation documented in the module docs: no draw beyond √(−2 ln u₁,min).
#[test]
fn draws_stay_within_the_documented_truncation() {
    let z32 = draws::<f32>(3, 500, 400);
    let z64 = draws::<f64>(3, 500, 400);
    let max32 = (64.0 * std::f64::consts::LN_2).sqrt();
    let max64 = (106.0 * std::f64::consts::LN_2).sqrt();
    assert!(
        z32.iter()
            .all(|v| v.is_finite() && v.abs() <= max32 * (1.0 + 1e-6))
    );
    assert!(
        z64.iter()
            .all(|v| v.is_finite() && v.abs() <= max64 * (1.0 + 1e-12))
    );
}

/// Every row of a batch — in a full chunk of 16 or in the partial last chunk, over two
/// successive calls, for widths with odd columns and several column passes — draws
/// bit for bit what its stream drawn alone draws, in `fill` and in `update`.
fn check_rows_are_their_own_streams<F: Real>() {
    let seed = 5;
    let rows = 37;
    for d in [1, 2, 3, 5, 16, 33, 70] {
        let mut batch = RowNoise::new(seed, rows);
        let mut bigger = RowNoise::new(seed, rows + 20);
        let (mut a, mut b) = (Array2::<F>::zeros((rows, d)), Array2::<F>::zeros((rows, d)));
        let mut c = Array2::<F>::zeros((rows + 20, d));
        batch.fill(a.view_mut());
        batch.fill(b.view_mut());
        bigger.fill(c.view_mut());
        assert_eq!(
            a,
            c.slice(s![..rows, ..]),
            "d = {d}: batch size changed rows"
        );
        let mut x = Array2::<F>::zeros((rows, d));
        let zero = Array2::<F>::zeros((rows, d));
        let mut upd = RowNoise::new(seed, rows);
        upd.update(x.view_mut(), zero.view(), |_, _, z| z);
        for r in 0..rows {
            let mut alone = RowNoise::single(seed, r);
            let (mut a1, mut b1) = (Array2::<F>::zeros((1, d)), Array2::<F>::zeros((1, d)));
            alone.fill(a1.view_mut());
            alone.fill(b1.view_mut());
            assert_eq!(a.row(r), a1.row(0), "d = {d}, row {r}: first call");
            assert_eq!(b.row(r), b1.row(0), "d = {d}, row {r}: second call");
            assert_eq!(x.row(r), a1.row(0), "d = {d}, row {r}: update");
        }
    }
}

#[test]
fn rows_are_their_own_streams_f32() {
    check_rows_are_their_own_streams::<f32>();
}

#[test]
fn rows_are_their_own_streams_f64() {
    check_rows_are_their_own_streams::<f64>();
}

/// Filling fewer rows than there are streams leaves the other streams where they were
/// (their next draws are their first ones).
#[test]
fn rows_not_filled_keep_their_streams() {
    let (seed, rows, d) = (8, 37, 3);
    let mut noise = RowNoise::new(seed, rows);
    let mut part = Array2::<f32>::zeros((20, d));
    noise.fill(part.view_mut());
    let mut all = Array2::<f32>::zeros((rows, d));
    noise.fill(all.view_mut());
    let mut fresh = Array2::<f32>::zeros((rows, d));
    RowNoise::new(seed, rows).fill(fresh.view_mut());
    assert_eq!(all.slice(s![20.., ..]), fresh.slice(s![20.., ..]));
    assert_ne!(all.slice(s![..20, ..]), fresh.slice(s![..20, ..]));
}

/// `update` applies `f(x, s, z)` with `fill`'s draws, on contiguous and strided views,
/// in both instruction-set copies.
fn check_update_is_fill<F: Real>() {
    let (rows, seed) = (53, 21);
    for d in [1, 2, 7, 40] {
        let xs = Array2::from_shape_fn((rows, d), |(i, j)| F::lit(i as f64 - 0.5 * j as f64));
        let sc = Array2::from_shape_fn((rows, d), |(i, j)| F::lit(0.25 * j as f64 - i as f64));
        let f = |x: F, s: F, z: F| x + F::lit(2.0) * s + F::lit(3.0) * z;
        for isa in Isa::available() {
            let mut z = Array2::<F>::zeros((rows, d));
            RowNoise::new(seed, rows).fill_isa(isa, z.view_mut());
            let mut want = xs.clone();
            Zip::from(&mut want)
                .and(&sc)
                .and(&z)
                .for_each(|x, &s, &zv| *x = f(*x, s, zv));
            // Contiguous.
            let mut x = xs.clone();
            RowNoise::new(seed, rows).update_isa(isa, x.view_mut(), sc.view(), f);
            assert_eq!(x, want, "{isa:?} d = {d} contiguous");
            // Column-major x and s: the strided path.
            let mut xf = Array2::<F>::zeros((rows, d).f());
            xf.assign(&xs);
            let mut sf = Array2::<F>::zeros((rows, d).f());
            sf.assign(&sc);
            RowNoise::new(seed, rows).update_isa(isa, xf.view_mut(), sf.view(), f);
            assert_eq!(xf, want, "{isa:?} d = {d} strided");
            // A strided `out` for fill.
            let mut zf = Array2::<F>::zeros((rows, d).f());
            RowNoise::new(seed, rows).fill_isa(isa, zf.view_mut());
            assert_eq!(zf, z, "{isa:?} d = {d} strided fill");
        }
    }
}

#[test]
fn update_draws_what_fill_draws_f32() {
    check_update_is_fill::<f32>();
}

#[test]
fn update_draws_what_fill_draws_f64() {
    check_update_is_fill::<f64>();
}

/// The portable and AVX2 + FMA copies agree to a few ulps of the radius: the uniforms and
/// quadrants are the same bits in both (u₁'s multiply by a power of two is exact, fused
/// or not), only the polynomials' multiply-adds round once instead of twice — a few ulps
/// relative in ln u₁ and ≈ 1 ulp in cos/sin — so |Δz| ≤ 4 ε·√(−2 ln u₁) ≤ 4 ε · 8.6.
fn check_isas_agree<F: Real>() {
    let isas = Isa::available();
    if isas.len() < 2 {
        return;
    }
    let (rows, d) = (2000, 50);
    let mut zs = Vec::new();
    for &isa in &isas {
        let mut z = Array2::<F>::zeros((rows, d));
        RowNoise::new(4, rows).fill_isa(isa, z.view_mut());
        zs.push(z);
    }
    let tol = 4.0 * F::EPS.as_f64() * 8.6;
    let mut worst = 0.0f64;
    let mut differ = 0usize;
    Zip::from(&zs[0]).and(&zs[1]).for_each(|&a, &b| {
        worst = worst.max((a.as_f64() - b.as_f64()).abs());
        differ += usize::from(a != b);
    });
    assert!(
        worst <= tol,
        "max |Δz| {worst:e} > {tol:e} ({differ} draws differ)"
    );
}

#[test]
fn instruction_set_copies_agree_f32() {
    check_isas_agree::<f32>();
}

#[test]
fn instruction_set_copies_agree_f64() {
    check_isas_agree::<f64>();
}

/// `uniform(row)`: row `r`'s stream (the same as alone), U[0, 1) with mean ½ and variance
/// 1/12 within Monte Carlo error over 200 000 draws.
#[test]
fn uniform_draws_come_from_the_row_stream() {
    let (seed, rows) = (13, 40);
    let mut noise = RowNoise::new(seed, rows);
    for r in [0, 15, 16, 39] {
        let mut alone = RowNoise::single(seed, r);
        for _ in 0..5 {
            assert_eq!(noise.uniform(r), alone.uniform(0));
        }
    }
    let n = 200_000usize;
    let mut noise = RowNoise::new(seed, rows);
    let (mut sum, mut sum2) = (0.0, 0.0);
    for k in 0..n {
        let u = noise.uniform(k % rows);
        assert!((0.0..1.0).contains(&u));
        sum += u;
        sum2 += u * u;
    }
    let (m, m2) = (sum / n as f64, sum2 / n as f64);
    // Var u = 1/12, Var u² = 1/5 − 1/9 = 4/45.
    assert!(
        (m - 0.5).abs() < Z_TOL * (1.0 / 12.0 / n as f64).sqrt(),
        "mean {m}"
    );
    assert!(
        (m2 - 1.0 / 3.0).abs() < Z_TOL * (4.0 / 45.0 / n as f64).sqrt(),
        "E u² {m2}"
    );
}

#[test]
fn debug_names_the_generator() {
    let s = format!("{:?}", RowNoise::new(0, 3));
    assert!(s.contains("rows: 3") && s.contains("xoshiro128++"), "{s}");
}
