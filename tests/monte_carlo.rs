//! Monte-Carlo tests of the samplers of the oracle and of the forward process:
//! `GaussianMixture::sample`, `LinearSde::perturb`, `perturb_rows`, and the exact
//! transition `LinearSde::transition` / `ForwardSde::discretize`, against the exact
//! moments of the (diffused) mixture.
//!
//! ## Tolerances
//!
//! Every comparison is within 4 standard errors of the estimate, with
//! - the sample mean of coordinate `i`: `SE = √(C_ii / N)` from the exact covariance `C`;
//! - the sample covariance entry `(i, j)`: `SE = √(Var((x_i − x̄_i)(x_j − x̄_j)) / N)`, the
//!   variance of the centred products estimated from the same samples (the `O(1/N)` bias
//!   from centring at the sample mean is far below the `O(1/√N)` standard error).
//!
//! A single entry leaves 4 SE with probability 6·10⁻⁵; the 16-D problem compares 152
//! entries per check, a family-wise false-alarm rate ≈ 1% per seed. Seeds are fixed, so a
//! pass is reproducible; a wrong α, σ or covariance factor moves entries by many SE.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_pcg::Pcg64;
use score_sde::gmm::{GaussianMixture, problems};
use score_sde::schedule::{Schedule, SubVp, Ve, VpLinear};
use score_sde::sde::{ForwardSde, LinearSde, SubVpSde, VeSde, VpSde};
use score_sde::{Real, ScoreModel};

/// Standard errors allowed (see the module docs).
const K_SE: f64 = 4.0;

/// Check the sample mean and covariance of `x` against `mean`, `cov` within `K_SE`
/// standard errors, entry by entry.
fn assert_moments(what: &str, x: ArrayView2<f64>, mean: &Array1<f64>, cov: &Array2<f64>) {
    let (n, d) = x.dim();
    assert_eq!(mean.len(), d);
    let nf = n as f64;
    let m = x.mean_axis(Axis(0)).unwrap();
    for i in 0..d {
        let se = (cov[[i, i]] / nf).sqrt();
        let z = (m[i] - mean[i]) / se;
        assert!(
            z.abs() <= K_SE,
            "{what}: mean[{i}] = {} vs exact {} ({z:.2} SE, SE = {se:.3e})",
            m[i],
            mean[i]
        );
    }
    let c = &x - &m;
    let cols: Vec<Array1<f64>> = (0..d).map(|i| c.column(i).to_owned()).collect();
    for i in 0..d {
        for j in 0..=i {
            let prod = &cols[i] * &cols[j];
            let est = prod.sum() / (nf - 1.0);
            let var_prod = prod.var(1.0);
            let se = (var_prod / nf).sqrt();
            assert!(se > 0.0, "{what}: degenerate products at ({i},{j})");
            let z = (est - cov[[i, j]]) / se;
            assert!(
                z.abs() <= K_SE,
                "{what}: cov[{i},{j}] = {est} vs exact {} ({z:.2} SE, SE = {se:.3e})",
                cov[[i, j]]
            );
        }
    }
}

fn to_f64<F: Real>(x: ArrayView2<F>) -> Array2<f64> {
    x.mapv(|v| v.as_f64())
}

fn ring() -> GaussianMixture<f64> {
    problems::ring2d()
}
fn rand16() -> GaussianMixture<f64> {
    problems::rand16d()
}

/// Sample sizes: the 2-D ring is cheap; the 16-D problem compares 152 entries.
const N_RING: usize = 100_000;
const N_16D: usize = 40_000;

// ------------------------------------------------------------------ sample

/// `sample` reproduces `mean()` and `covariance()` (f64 and f32, both problems).
#[test]
fn sample_matches_mixture_moments() {
    for (name, gm, n) in [("ring2d", ring(), N_RING), ("rand16d", rand16(), N_16D)] {
        let mut rng = Pcg64::seed_from_u64(11);
        let x = gm.sample(n, &mut rng).unwrap();
        assert_moments(
            &format!("{name} f64 sample"),
            x.view(),
            &gm.mean(),
            &gm.covariance(),
        );
    }
    // f32 mixtures sample in f32; the moments are compared with the f64 mixture's.
    let mut rng = Pcg64::seed_from_u64(12);
    let x = problems::ring2d::<f32>().sample(N_RING, &mut rng).unwrap();
    assert_moments(
        "ring2d f32 sample",
        to_f64(x.view()).view(),
        &ring().mean(),
        &ring().covariance(),
    );
    let x = problems::rand16d::<f32>().sample(N_16D, &mut rng).unwrap();
    assert_moments(
        "rand16d f32 sample",
        to_f64(x.view()).view(),
        &rand16().mean(),
        &rand16().covariance(),
    );
}

/// The component frequencies of `sample` are the weights: the most likely component of each
/// ring sample is counted. Neighbouring means are 8 sin(π/8) ≈ 3.06 apart with std 0.3, so
/// the decision boundary is 5.1 std from each mean and a sample is mislabelled with
/// probability ≈ 3·10⁻⁷, negligible next to the SE. Each count is Binomial(N, w),
/// SE = √(w(1−w)/N).
#[test]
fn sample_component_frequencies_are_the_weights() {
    let gm = ring();
    let x = gm.sample(N_RING, &mut Pcg64::seed_from_u64(13)).unwrap();
    let labels = gm.most_likely_component(x.view()).unwrap();
    let mut h = [0usize; 8];
    for k in labels {
        h[k] += 1;
    }
    for (k, &c) in h.iter().enumerate() {
        let w = gm.weights()[k];
        let se = (w * (1.0 - w) / N_RING as f64).sqrt();
        let p = c as f64 / N_RING as f64;
        assert!(
            (p - w).abs() <= K_SE * se,
            "component {k}: frequency {p} vs weight {w}"
        );
    }
}

// ------------------------------------------------------------------ perturb

/// `perturb` of `x0` at several times: returns the `z` it used, and the result has the
/// moments of `diffuse(schedule, t)`.
fn check_perturb<S: Schedule<f64>>(
    what: &str,
    sde: &LinearSde<f64, S>,
    gm: &GaussianMixture<f64>,
    x0: &Array2<f64>,
    rng: &mut Pcg64,
) {
    let schedule = sde.schedule();
    for t in [0.05, 0.3, 1.0] {
        let (xt, z) = sde.perturb(x0.view(), t, rng).unwrap();
        // x_t = α x₀ + σ z exactly (one multiply-add per entry: a few ulps of the larger
        // term).
        let (a, s) = (schedule.alpha(t), schedule.sigma(t));
        for ((&xt, &x0), &z) in xt.iter().zip(x0.iter()).zip(z.iter()) {
            let scale = (a * x0).abs() + (s * z).abs();
            assert!((xt - (a * x0 + s * z)).abs() <= 4.0 * f64::EPSILON * scale);
        }
        let exact = gm.diffuse(schedule, t).unwrap();
        assert_moments(
            &format!("{what} perturb t={t}"),
            xt.view(),
            &exact.mean(),
            &exact.covariance(),
        );
    }
}

/// `perturb` of mixture samples has the moments of `diffuse(schedule, t)`, for the VP,
/// sub-VP and VE SDEs at several times, on both problems; and returns the `z` it used.
#[test]
fn perturb_matches_diffuse() {
    let mut rng = Pcg64::seed_from_u64(21);
    for (name, gm, n) in [("ring2d", ring(), N_RING), ("rand16d", rand16(), N_16D)] {
        let x0 = gm.sample(n, &mut rng).unwrap();
        let vp = VpSde::<f64>::default();
        check_perturb(&format!("{name} VP"), &vp, &gm, &x0, &mut rng);
        let sub = SubVpSde::<f64>::default();
        check_perturb(&format!("{name} sub-VP"), &sub, &gm, &x0, &mut rng);
        let ve = VeSde::<f64>::default();
        check_perturb(&format!("{name} VE"), &ve, &gm, &x0, &mut rng);
    }
}

/// f32: the perturbed f32 samples have the moments of the exact f64 marginal.
#[test]
fn perturb_matches_diffuse_f32() {
    let sde = VpSde::<f32>::default();
    let vp64 = VpLinear::<f64>::default();
    let mut rng = Pcg64::seed_from_u64(31);
    for (name, gm32, gm64, n) in [
        ("ring2d", problems::ring2d::<f32>(), ring(), N_RING),
        ("rand16d", problems::rand16d::<f32>(), rand16(), N_16D),
    ] {
        let x0 = gm32.sample(n, &mut rng).unwrap();
        for t in [0.1_f32, 0.5] {
            let (xt, _) = sde.perturb(x0.view(), t, &mut rng).unwrap();
            let exact = gm64.diffuse(&vp64, t as f64).unwrap();
            assert_moments(
                &format!("{name} f32 perturb t={t}"),
                to_f64(xt.view()).view(),
                &exact.mean(),
                &exact.covariance(),
            );
        }
    }
}

/// `perturb_rows` uses each row's own time: the identity `x_t,i = α(t_i) x₀,i + σ(t_i) z_i`
/// with the returned `z`, the rows of each time have the moments of `diffuse(t)`, and `z`
/// is standard normal.
#[test]
fn perturb_rows_uses_per_row_schedules() {
    let sde = VpSde::<f64>::default();
    let sch = *sde.schedule();
    let times = [0.1, 0.4, 0.8];
    let gm = ring();
    let n = 3 * 60_000;
    let mut rng = Pcg64::seed_from_u64(41);
    let x0 = gm.sample(n, &mut rng).unwrap();
    let t = Array1::from_shape_fn(n, |i| times[i % 3]);
    let (xt, z) = sde.perturb_rows(x0.view(), t.view(), &mut rng).unwrap();
    for i in 0..n {
        let (a, s) = (sch.alpha(t[i]), sch.sigma(t[i]));
        for j in 0..2 {
            let expect = a * x0[[i, j]] + s * z[[i, j]];
            let scale = (a * x0[[i, j]]).abs() + (s * z[[i, j]]).abs();
            assert!((xt[[i, j]] - expect).abs() <= 4.0 * f64::EPSILON * scale);
        }
    }
    for (g, &tg) in times.iter().enumerate() {
        let rows: Vec<usize> = (g..n).step_by(3).collect();
        let sub = xt.select(Axis(0), &rows);
        let exact = gm.diffuse(&sch, tg).unwrap();
        assert_moments(
            &format!("perturb_rows t={tg}"),
            sub.view(),
            &exact.mean(),
            &exact.covariance(),
        );
    }
    assert_moments(
        "perturb_rows z",
        z.view(),
        &Array1::zeros(2),
        &Array2::eye(2),
    );
}

// ------------------------------------------------------------------ exact transition

/// `transition(s, t)` and `discretize` move exact samples of `p_s` to the law `p_t`.
fn check_transition<S: Schedule<f64>>(
    what: &str,
    sde: &LinearSde<f64, S>,
    (s, t): (f64, f64),
    gm: &GaussianMixture<f64>,
    rng: &mut Pcg64,
) {
    let sch = sde.schedule();
    let ps = gm.diffuse(sch, s).unwrap();
    let pt = gm.diffuse(sch, t).unwrap();
    let xs = ps.sample(N_RING, rng).unwrap();

    // transition(): x_t = a x_s + g z.
    let (a, g) = sde.transition(s, t);
    let z = Array2::from_shape_fn(xs.raw_dim(), |_| f64::standard_normal(rng));
    let xt = &xs * a + &z * g;
    assert_moments(
        &format!("{what} transition {s}→{t}"),
        xt.view(),
        &pt.mean(),
        &pt.covariance(),
    );

    // discretize(x, t, dt): x_t = x_s + f_i + G_i z over [t − dt, t].
    let mut f = Array2::zeros(xs.raw_dim());
    let big_g = sde.discretize(xs.view(), t, t - s, f.view_mut()).unwrap();
    let z = Array2::from_shape_fn(xs.raw_dim(), |_| f64::standard_normal(rng));
    let xt = &xs + &f + &z * big_g;
    assert_moments(
        &format!("{what} discretize {s}→{t}"),
        xt.view(),
        &pt.mean(),
        &pt.covariance(),
    );
}

/// `transition(s, t)` and `discretize` move exact samples of `p_s` to the law `p_t`:
/// `x_t = a x_s + √v z` with `a = α_t/α_s`, `v = σ_t² − a²σ_s²`.
#[test]
fn exact_transition_moves_marginals() {
    let gm = ring();
    let mut rng = Pcg64::seed_from_u64(51);
    check_transition("VP", &VpSde::default(), (0.2, 0.35), &gm, &mut rng);
    check_transition("sub-VP", &SubVpSde::default(), (0.5, 0.9), &gm, &mut rng);
    check_transition("VE", &VeSde::default(), (0.3, 0.6), &gm, &mut rng);
}

/// The exact transitions compose: `[s, u]` then `[u, t]` is `[s, t]`
/// (`a_st = a_su a_ut`, `v_st = a_ut² v_su + v_ut`), and `discretize` is `transition`.
/// Each side is a few operations on `α`, `σ`: 10⁻¹² relative.
#[test]
fn transitions_compose() {
    fn check<S: Schedule<f64>>(name: &str, sde: &LinearSde<f64, S>) {
        let (lo, hi) = sde.schedule().t_range();
        for (fs, fu, ft) in [(0.0, 0.5, 1.0), (0.1, 0.2, 0.9), (0.3, 0.31, 0.32)] {
            let (s, u, t) = (
                lo + fs * (hi - lo),
                lo + fu * (hi - lo),
                lo + ft * (hi - lo),
            );
            let (a1, g1) = sde.transition(s, u);
            let (a2, g2) = sde.transition(u, t);
            let (a, g) = sde.transition(s, t);
            assert!((a1 * a2 / a - 1.0).abs() < 1e-12, "{name}: a composes");
            let v = a2 * a2 * g1 * g1 + g2 * g2;
            assert!((v / (g * g) - 1.0).abs() < 1e-12, "{name}: v composes");
            let x = ndarray::array![[1.0, -2.0]];
            let mut f = Array2::zeros((1, 2));
            let gd = sde.discretize(x.view(), t, t - s, f.view_mut()).unwrap();
            assert!((gd / g - 1.0).abs() < 1e-12);
            assert!((f[[0, 1]] - (a - 1.0) * -2.0).abs() < 1e-12);
        }
    }
    check("VP", &VpSde::<f64>::default());
    check("sub-VP", &SubVpSde::<f64>::default());
    check("VE", &VeSde::<f64>::default());
    check(
        "VP (other β)",
        &LinearSde::new(VpLinear::new(0.5, 10.0).unwrap()),
    );
    check(
        "sub-VP (other β)",
        &LinearSde::new(SubVp::new(0.2, 5.0).unwrap()),
    );
    check(
        "VE (other σ)",
        &LinearSde::new(Ve::new(0.05, 20.0).unwrap()),
    );
}

/// The exact score of the diffused ring has mean zero under `p_t` (∫ ∇p = 0) and
/// `E[|s|²] = −E[Δ log p]` (integration by parts): a Monte-Carlo check of the score and
/// divergence on perturbed samples, each within 4 SE of its sample average.
#[test]
fn score_identities_under_perturbed_samples() {
    use score_sde::gmm::AnalyticScore;
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(ring(), *sde.schedule());
    let mut rng = Pcg64::seed_from_u64(61);
    let x0 = ring().sample(N_RING, &mut rng).unwrap();
    for t in [0.05, 0.5] {
        let (xt, _) = sde.perturb(x0.view(), t, &mut rng).unwrap();
        let mut s = Array2::zeros(xt.raw_dim());
        model.score(xt.view(), t, s.view_mut()).unwrap();
        let mut div = Array1::zeros(N_RING);
        model
            .divergence(xt.view(), t, div.view_mut())
            .unwrap()
            .unwrap();
        let nf = N_RING as f64;
        for j in 0..2 {
            let col = s.column(j);
            let se = (col.var(1.0) / nf).sqrt();
            assert!(
                col.mean().unwrap().abs() <= K_SE * se,
                "t={t}: E[s_{j}] ≠ 0"
            );
        }
        // E[|s|² + Δ log p] = 0.
        let g: Array1<f64> = s.map_axis(Axis(1), |r| r.dot(&r)) + &div;
        let se = (g.var(1.0) / nf).sqrt();
        assert!(
            g.mean().unwrap().abs() <= K_SE * se,
            "t={t}: E[|s|² + Δ log p] = {} (SE {se})",
            g.mean().unwrap()
        );
    }
}

/// Prior draws and perturbations take one `u64` from the caller's generator and give
/// every row its own stream: row `r` is the same in a batch of 1 and in a batch of 9,
/// bit for bit, and the rows differ from each other.
#[test]
fn prior_and_perturb_rows_do_not_depend_on_the_batch() {
    let sde = VpSde::<f64>::default();
    let one = sde
        .sample_prior(1, 3, &mut Pcg64::seed_from_u64(5))
        .unwrap();
    let many = sde
        .sample_prior(9, 3, &mut Pcg64::seed_from_u64(5))
        .unwrap();
    assert_eq!(one.row(0), many.row(0));
    assert_ne!(many.row(0), many.row(1));
    let x0 = Array2::<f64>::ones((9, 3));
    let (_, z1) = sde
        .perturb(
            x0.slice(ndarray::s![..1, ..]),
            0.4,
            &mut Pcg64::seed_from_u64(6),
        )
        .unwrap();
    let (_, z9) = sde
        .perturb(x0.view(), 0.4, &mut Pcg64::seed_from_u64(6))
        .unwrap();
    assert_eq!(z1.row(0), z9.row(0));
}
