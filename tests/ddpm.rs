//! DDPM as published (Ho et al. 2020): Algorithm 2 with both reverse variances on the
//! paper's β table, discrete-index training batches, and the variational bound `L_vlb` —
//! each against a closed form.

mod common;
use common::rng;
use common::stats::{
    Recursion, StepKind, check_with_bias, floor_of, reverse_coeffs, tweedie_coeffs,
};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, array};
use score_sde::likelihood::{DataScaling, DdpmBound};
use score_sde::metrics::Reference;
use score_sde::prelude::*;
use score_sde::sample::{Ddpm, DdpmVariance, GridSampler, NoCorrector, Pc, PcStep};
use score_sde::train::{TimeSampling, Weighting, make_batch};

fn ho_table() -> DiscreteVp<f64> {
    DiscreteVp::ddpm_linear(1000, 1e-4, 0.02).unwrap()
}

/// One ancestral step from knot 2 to knot 1 with a constant score `c`: `x' = (x + β_2 c)/a +
/// std z` — the mean and both of Ho et al.'s variances, pinned at the step where they differ
/// most (`β̃_2/β_2 = (1 − ᾱ_1)/(1 − ᾱ_2) ≈ 0.495`).
#[test]
fn one_ddpm_step_has_the_published_mean_and_variance() {
    let table = ho_table();
    let ab = table.alphas_cumprod();
    let (b1, b2) = (1.0 - ab[1], 1.0 - ab[2] / ab[1]);
    let c = 3.0;
    let model = ScoreFn::new(
        move |_x: ArrayView2<f64>, _t: f64, mut o: ArrayViewMut2<f64>| {
            o.fill(c);
            Ok(())
        },
    );
    for (variance, want_var) in [
        (DdpmVariance::Beta, b2),
        (DdpmVariance::BetaTilde, (1.0 - ab[1]) / (1.0 - ab[2]) * b2),
    ] {
        let sde = LinearSde::new(table.clone());
        let grid = TimeGrid::custom(&table, vec![2e-3, 1e-3]).unwrap();
        let s = GridSampler::with_grid(
            PcStep::new(sde, Ddpm::new(variance), NoCorrector).unwrap(),
            grid,
        )
        .unwrap();
        let n = 40_000;
        let x = Array2::from_elem((n, 1), 1.0);
        let out = s.run(&model, x, &mut rng(1)).unwrap().samples;
        let (m, v) = (out.mean().unwrap(), out.var(1.0));
        // Ho et al. eq. 11 with ε = −σ_2 c: mean (x + β_2 c)/√(1 − β_2).
        let want_mean = (1.0 + b2 * c) / (1.0 - b2).sqrt();
        // 4 SE of the mean (√(v/n)) and of the variance (v √(2/n), 0.7 % at n = 40 000).
        assert!(
            (m - want_mean).abs() < 4.0 * (want_var / n as f64).sqrt(),
            "{variance:?}: mean {m}"
        );
        assert!(
            (v - want_var).abs() < 4.0 * want_var * (2.0 / n as f64).sqrt(),
            "{variance:?}: var {v:e} want {want_var:e}"
        );
    }
    // Sanity of the table: β_1 = 1e-4, β_2 = 1e-4 + 0.0199/999.
    assert!((b1 - 1e-4).abs() < 1e-15 && (b2 - (1e-4 + 0.0199 / 999.0)).abs() < 1e-12);
}

/// Algorithm 2 on Ho et al.'s table (T = 1000, β 1e-4 → 0.02) with both variances, against
/// the exact `p_0` of ring2d and rand16d: the statistical rules of the sampler tests
/// (`common::stats`) with the known bias of the 999 ancestral steps and the final Tweedie
/// step, predicted per eigen-direction.
#[test]
fn ddpm_algorithm_2_matches_the_exact_mixture_with_both_variances() {
    let table = ho_table();
    for (name, p0, n, slack) in [
        ("ring2d", problems::ring2d::<f64>(), 10_000, 0.01),
        ("rand16d", problems::rand16d::<f64>(), 4_000, 0.03),
    ] {
        let model = AnalyticScore::new(p0.clone(), table.clone());
        let reference = Reference::new(&p0, &table, 0.0, n, 77).unwrap();
        let floor = floor_of(&reference, n);
        for (k, variance) in [DdpmVariance::Beta, DdpmVariance::BetaTilde]
            .into_iter()
            .enumerate()
        {
            let ddpm = Pc::ddpm(table.clone(), variance).unwrap();
            let run = ddpm
                .sample(&model, n, p0.dim(), &mut rng(10 + k as u64))
                .unwrap();
            assert_eq!(run.nfe, 1000);
            let times = ddpm.times().to_vec();
            let steps = times.len() - 1; // 999 ancestral steps, then Tweedie at t_1
            let kind = match variance {
                DdpmVariance::Beta => StepKind::AncestralBeta,
                _ => StepKind::Ancestral,
            };
            let tb = table.clone();
            let step = move |i: usize, lam: f64, _: f64| {
                if i < steps {
                    reverse_coeffs(kind, &tb, (times[i], times[i + 1]), lam, true)
                } else {
                    tweedie_coeffs(&tb, times[steps], lam)
                }
            };
            let rec = Recursion {
                steps: steps + 1,
                step: &step,
                start: (0.0, 1.0),
                end: (1.0, 0.0),
            };
            check_with_bias(
                &format!("{name} DDPM {variance:?}"),
                &reference,
                &floor,
                &run.samples,
                &p0,
                &rec,
                slack,
            )
            .unwrap();
        }
    }
}

#[test]
fn discrete_index_batches_sit_on_the_knots_and_give_ho_et_als_simple_loss() {
    // t ~ Uniform({1, …, N}) (Ho et al. Alg. 1) on the table's knots, where α(t)² = ᾱ_k
    // exactly; ε-prediction with σ² weighting is L_simple (every weight 1).
    let table = ho_table();
    let sde = LinearSde::new(table.clone());
    let ab = table.alphas_cumprod();
    let x0 = problems::ring2d::<f64>()
        .sample(20_000, &mut rng(3))
        .unwrap();
    let b = make_batch(
        &sde,
        x0.view(),
        TimeSampling::Discrete { steps: 1000 },
        Parameterization::Noise,
        Weighting::Sigma2,
        &mut rng(4),
    )
    .unwrap();
    let idx = b.index.clone().unwrap();
    for (i, (&k, &t)) in idx.iter().zip(&b.t).enumerate() {
        assert!((1..=1000).contains(&k));
        assert_eq!(t, k as f64 / 1000.0);
        let (a, s) = (table.alpha(t), table.sigma(t));
        assert!((a * a - ab[k]).abs() < 1e-12, "row {i}");
        // x_t = √ᾱ_k x_0 + √(1 − ᾱ_k) ε.
        for j in 0..2 {
            let want = ab[k].sqrt() * x0[[i, j]] + (1.0 - ab[k]).sqrt() * b.noise[[i, j]];
            assert!((b.x_t[[i, j]] - want).abs() < 1e-12 && (s * s - (1.0 - ab[k])).abs() < 1e-12);
        }
    }
    assert!(b.weight.iter().all(|w| (w - 1.0).abs() < 1e-12));
    // Uniform over the 1000 indices: the mean index is 500.5 ± 4 SE (sd 288.7/√n).
    let m = idx.mapv(|k| k as f64).mean().unwrap();
    assert!((m - 500.5).abs() < 4.0 * 288.7 / (20_000f64).sqrt(), "{m}");
    // Continuous sampling carries no index; a grid finer than the time range is an error.
    let c = make_batch(
        &sde,
        x0.view(),
        TimeSampling::Uniform,
        Parameterization::Noise,
        Weighting::Sigma2,
        &mut rng(5),
    )
    .unwrap();
    assert!(c.index.is_none());
    let vp = VpSde::<f64>::default(); // t_min = 1e-3: 1/2000 is below it
    assert!(matches!(
        make_batch(
            &vp,
            x0.view(),
            TimeSampling::Discrete { steps: 2000 },
            Parameterization::Noise,
            Weighting::Sigma2,
            &mut rng(5)
        ),
        Err(Error::TimeOutOfRange { .. })
    ));
    assert!(
        make_batch(
            &vp,
            x0.view(),
            TimeSampling::Discrete { steps: 0 },
            Parameterization::Noise,
            Weighting::Sigma2,
            &mut rng(5)
        )
        .is_err()
    );
}

// ---------------------------------------------------------------- the variational bound

/// The expected `L_vlb` of Gaussian data `N(μ, S)` under its exact (linear) score, in closed
/// form: every `μ̃ − μ_θ` is `M₁ e + M₂ z` with `e = x_0 − μ ~ N(0, S)`, `z ~ N(0, I)`
/// (the constant part cancels), so `E‖μ̃ − μ_θ‖² = tr(M₁ S M₁ᵀ) + tr(M₂ M₂ᵀ)`.
fn gaussian_vlb(
    table: &DiscreteVp<f64>,
    variance: DdpmVariance,
    mu: &Array1<f64>,
    cov: &Array2<f64>,
) -> f64 {
    let d = mu.len();
    let df = d as f64;
    let eye = Array2::<f64>::eye(d);
    let nk = table.len();
    let knot = |k: usize| k as f64 / nk as f64;
    let prec = |t: f64| {
        let (a, s) = (table.alpha(t), table.sigma(t));
        inv(&(cov * (a * a) + &eye * (s * s)))
    };
    let tr = |m: &Array2<f64>| m.diag().sum();
    // L_N
    let (an, sn) = (table.alpha(1.0), table.sigma(1.0));
    let r = sn * sn;
    let mut total = 0.5 * df * (r - 1.0 - r.ln()) + 0.5 * an * an * (mu.dot(mu) + tr(cov));
    for k in 2..=nk {
        let (t, tp) = (knot(k), knot(k - 1));
        let (a, v) = table.transition(tp, t);
        let (ak, sk, sp) = (table.alpha(t), table.sigma(t), table.sigma(tp));
        let bt = sp * sp * v / (sk * sk);
        let var = if variance == DdpmVariance::Beta {
            v
        } else {
            bt
        };
        let c0 = table.alpha(tp) * v / (sk * sk);
        let c1 = a * sp * sp / (sk * sk) - 1.0 / a;
        let p = prec(t);
        let m1 = &eye * (c0 + c1 * ak) + &p * (v / a * ak);
        let m2 = &eye * (c1 * sk) + &p * (v / a * sk);
        let q = tr(&m1.dot(cov).dot(&m1.t())) + tr(&m2.dot(&m2.t()));
        total += 0.5 * df * (bt / var - 1.0 - (bt / var).ln()) + 0.5 * q / var;
    }
    // L_0: x_0 − μ_θ(x_1) = σ₁² P₁ e + (σ₁² P₁ − I) σ₁ z/α₁.
    let t1 = knot(1);
    let (a1, s1) = (table.alpha(t1), table.sigma(t1));
    let p1 = prec(t1);
    let m1 = &p1 * (s1 * s1);
    let m2 = (&p1 * (s1 * s1) - &eye) * (s1 / a1);
    let q = tr(&m1.dot(cov).dot(&m1.t())) + tr(&m2.dot(&m2.t()));
    total + 0.5 * df * (2.0 * std::f64::consts::PI * s1 * s1).ln() + 0.5 * q / (s1 * s1)
}

fn inv(m: &Array2<f64>) -> Array2<f64> {
    // 2 × 2 only (the test's Gaussian).
    let det = m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
    array![[m[[1, 1]], -m[[0, 1]]], [-m[[1, 0]], m[[0, 0]]]] / det
}

#[test]
fn the_bound_estimator_matches_its_closed_form_on_a_gaussian_and_bounds_the_nll() {
    let table = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
    let mu = array![1.0, -0.5];
    let cov = array![[0.5, 0.2], [0.2, 0.3]];
    let gm = GaussianMixture::gaussian(mu.clone(), cov.clone()).unwrap();
    let model = AnalyticScore::new(gm.clone(), table.clone());
    let n = 4000;
    let x0 = gm.sample(n, &mut rng(7)).unwrap();
    let entropy = -gm.log_prob(x0.view()).unwrap().mean().unwrap();
    let exact_entropy = 0.5
        * (2.0 * (2.0 * std::f64::consts::PI * std::f64::consts::E).ln()
            + (0.5 * 0.3 - 0.04f64).ln());
    for variance in [DdpmVariance::Beta, DdpmVariance::BetaTilde] {
        let closed = gaussian_vlb(&table, variance, &mu, &cov);
        let vlb = DdpmBound::new(table.clone(), variance)
            .evaluate(&model, x0.view(), &mut rng(8))
            .unwrap();
        assert_eq!(vlb.nfe, 1000);
        let mean = vlb.total.mean().unwrap();
        let se = vlb.total.std(1.0) / (n as f64).sqrt();
        println!(
            "{variance:?}: L_vlb {mean:.4} ± {se:.4} (closed form {closed:.4}); −log p {entropy:.4} (entropy {exact_entropy:.4})"
        );
        // The estimator's mean within 4 standard errors of the closed form.
        assert!(
            (mean - closed).abs() < 4.0 * se,
            "{variance:?}: {mean} vs {closed} ± {se}"
        );
        // A bound: at least the entropy (the exact E[−log p]).
        assert!(closed > exact_entropy, "{closed} vs {exact_entropy}");
        if variance == DdpmVariance::Beta {
            // With σ_k² = β_k and T = 1000 the bound is tight: measured gap 0.002 nats.
            assert!(closed - exact_entropy < 0.02, "{closed} vs {exact_entropy}");
        } else {
            // With β̃ the first reverse step is over-confident: at k = 2 the posterior mean's
            // error E‖μ̃ − μ_θ‖² ≈ D β_2²/σ_2² is divided by 2β̃_2 = 2 σ_1² β_2/σ_2², about
            // D β_2/(2 β_1) ≈ 1 nat for D = 2 — the measured gap 0.92 (β̃ is optimal for a
            // point mass, Ho et al. §3.2; the bound prefers β for continuous data).
            let gap = closed - exact_entropy;
            assert!((0.7..1.1).contains(&gap), "{gap}");
        }
        // Terms add up; the prior term is tiny for ᾱ_N ≈ 4e-5.
        let sum = &vlb.prior + &vlb.diffusion + &vlb.decoder;
        assert!((&sum - &vlb.total).iter().all(|e| e.abs() < 1e-9));
        assert!(vlb.prior.iter().all(|&p| p.abs() < 1e-3));
        // bits/dim of the bound: L/(D ln 2) − log₂ a + log₂ B.
        let bpd = vlb
            .bits_per_dim(2, DataScaling::eight_bit_centered())
            .unwrap();
        assert!((bpd[0] - (vlb.total[0] / (2.0 * std::f64::consts::LN_2) + 7.0)).abs() < 1e-12);
    }
    let _ = entropy;
}

#[test]
fn the_bound_on_the_ring_holds_and_a_wrong_score_raises_it() {
    let table = ho_table();
    let p0 = problems::ring2d::<f64>();
    let model = AnalyticScore::new(p0.clone(), table.clone());
    let n = 3000;
    let x0 = p0.sample(n, &mut rng(11)).unwrap();
    let nll = p0.log_prob(x0.view()).unwrap().mapv(|v| -v);
    let bound = DdpmBound::new(table.clone(), DdpmVariance::Beta);
    let right = bound.evaluate(&model, x0.view(), &mut rng(12)).unwrap();
    let gap = &right.total - &nll;
    let (g, se) = (gap.mean().unwrap(), gap.std(1.0) / (n as f64).sqrt());
    println!("ring2d: L_vlb − (−log p_0) = {g:.4} ± {se:.4}");
    // E[L_vlb − (−log p)] = E KL(q(x_{1:N} | x_0) ‖ p(x_{1:N} | x_0)) ≥ 0: no lower than
    // −4 SE; with the exact score, σ² = β and T = 1000 it is small (on the Gaussian above
    // 0.002 nats; here the ring's narrow modes make the last steps' Gaussian reverse kernels
    // less exact).
    assert!(g > -4.0 * se && g < 0.1, "{g} ± {se}");
    let inner = model.clone();
    let wrong = ScoreFn::new(
        move |x: ArrayView2<f64>, t: f64, mut o: ArrayViewMut2<f64>| {
            inner.score(x, t, o.view_mut())?;
            o.mapv_inplace(|v| 1.1 * v);
            Ok(())
        },
    );
    let bad = bound.evaluate(&wrong, x0.view(), &mut rng(12)).unwrap();
    let excess = &bad.total - &right.total;
    let (e, ese) = (excess.mean().unwrap(), excess.std(1.0) / (n as f64).sqrt());
    println!("score × 1.1 raises the bound by {e:.4} ± {ese:.4}");
    assert!(e > 4.0 * ese, "{e} ± {ese}");
    // Bad input: the wrong dimension and NaN data are typed errors.
    assert!(matches!(
        bound.evaluate(&model, Array2::zeros((2, 3)).view(), &mut rng(0)),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut nan = Array2::zeros((2, 2));
    nan[[0, 1]] = f64::NAN;
    assert!(matches!(
        bound.evaluate(&model, nan.view(), &mut rng(0)),
        Err(Error::NonFinite { .. })
    ));
}

/// The figures of docs/likelihood.md: the DDPM bound beside the PF-ODE log-likelihood, in
/// nats and bits per dimension (continuous densities: no dequantisation offset).
/// `cargo test --release --test ddpm measure_ -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_bound_beside_pf_ode() {
    use score_sde::likelihood::OdeLikelihood;
    let table = ho_table();
    let sde = LinearSde::new(table.clone());
    let scaling = DataScaling::new(1, 1.0).unwrap(); // bits/dim of the density itself
    for (name, p0, n) in [
        ("ring2d", problems::ring2d::<f64>(), 4000),
        ("rand16d", problems::rand16d::<f64>(), 2000),
    ] {
        let d = p0.dim();
        let model = AnalyticScore::new(p0.clone(), table.clone());
        let x0 = p0.sample(n, &mut rng(21)).unwrap();
        let nll = -p0.log_prob(x0.view()).unwrap().mean().unwrap();
        // PF-ODE on the same table from t_min = 1/N (x_1 ≈ x_0) with the exact prior.
        let lik = OdeLikelihood::new(sde.clone())
            .unwrap()
            .tolerances(1e-6, 1e-6)
            .unwrap()
            .exact_mixture_prior(&p0)
            .unwrap();
        let pf = lik.log_prob(&model, x0.view(), &mut rng(22)).unwrap();
        let pf_nll = -pf.log_p.mean().unwrap();
        let bpd = |nats: f64| nats / (d as f64 * std::f64::consts::LN_2);
        println!(
            "{name} (N = {n}): exact −log p_0 {nll:.4} nats ({:.4} bits/dim)",
            bpd(nll)
        );
        println!(
            "  PF-ODE −log p_(1/N) {pf_nll:.4} nats ({:.4} bits/dim), NFE {}",
            bpd(pf_nll),
            pf.nfe
        );
        for variance in [DdpmVariance::Beta, DdpmVariance::BetaTilde] {
            let v = DdpmBound::new(table.clone(), variance)
                .evaluate(&model, x0.view(), &mut rng(23))
                .unwrap();
            let m = v.total.mean().unwrap();
            let se = v.total.std(1.0) / (n as f64).sqrt();
            let b = v.bits_per_dim(d, scaling).unwrap().mean().unwrap();
            println!(
                "  L_vlb {variance:?}: {m:.4} ± {se:.4} nats ({b:.4} bits/dim); prior {:.2e}, decoder {:.4}, NFE {}",
                v.prior.mean().unwrap(),
                v.decoder.mean().unwrap(),
                v.nfe
            );
        }
    }
}
