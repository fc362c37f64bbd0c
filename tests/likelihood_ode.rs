//! The probability-flow ODE log-likelihood against the closed-form diffused mixture.

mod common;
use common::rng;
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, concatenate};
use score_sde::likelihood::{DivergenceMethod, OdeLikelihood, Probe};
use score_sde::prelude::*;

/// Bulk points (exact draws of p_{t₀}) and tail points (bulk points pushed 2.5× further from
/// the mixture mean, where the density is orders of magnitude lower).
fn bulk_and_tail(p: &GaussianMixture<f64>, n: usize, seed: u64) -> Array2<f64> {
    let bulk = p.sample(n, &mut rng(seed)).unwrap();
    let m = p.mean();
    let tail = (&bulk - &m) * 2.5 + &m;
    concatenate(Axis(0), &[bulk.view(), tail.view()]).unwrap()
}

/// ODE log-density with the exact `log p_T` in place of the N(0, I) prior (see the module docs).
fn ode_log_p(
    lik: &OdeLikelihood<f64, VpSde<f64>>,
    model: &dyn ScoreModel<f64>,
    p0: &GaussianMixture<f64>,
    x: ArrayView2<f64>,
    seed: u64,
) -> (Array1<f64>, usize) {
    let r = lik.log_prob(model, x, &mut rng(seed)).unwrap();
    let p_t = p0.diffuse(lik.sde().schedule(), 1.0).unwrap();
    (
        &r.delta_log_p + &p_t.log_prob(r.latent.view()).unwrap(),
        r.nfe,
    )
}

#[test]
fn exact_divergence_ode_matches_the_closed_form_within_1e4_nats() {
    let sde = VpSde::<f64>::default();
    for (name, p0) in [
        ("ring2d", problems::ring2d::<f64>()),
        ("rand16d", problems::rand16d::<f64>()),
    ] {
        let model = AnalyticScore::new(p0.clone(), *sde.schedule());
        let p_eps = p0.diffuse(sde.schedule(), 1e-3).unwrap();
        let x = bulk_and_tail(&p_eps, 16, 5);
        let lik = OdeLikelihood::new(sde.clone())
            .unwrap()
            .tolerances(1e-8, 1e-8)
            .unwrap();
        let (ode, nfe) = ode_log_p(&lik, &model, &p0, x.view(), 0);
        let exact = p_eps.log_prob(x.view()).unwrap();
        let err = (&ode - &exact).iter().fold(0.0_f64, |a, v| a.max(v.abs()));
        // The bar: 1e-4 nats per sample at rtol = atol = 1e-8 (f64), bulk and tails.
        assert!(
            err < 1e-4,
            "{name}: max |ODE − exact| = {err} nats (NFE {nfe})"
        );
    }
}

#[test]
fn hutchinson_is_unbiased_around_the_exact_value_and_its_error_falls_as_one_over_sqrt_probes() {
    let sde = VpSde::<f64>::default();
    let p0 = problems::rand16d::<f64>();
    let model = AnalyticScore::new(p0.clone(), *sde.schedule());
    let p_eps = p0.diffuse(sde.schedule(), 1e-3).unwrap();
    let point = p_eps.sample(1, &mut rng(9)).unwrap();
    // 200 copies of one point: each row draws its own probes, so the rows are 200
    // independent Hutchinson estimates of the same log-density.
    let reps = 200;
    let x = Array2::from_shape_fn((reps, 16), |(_, j)| point[[0, j]]);
    let exact = p_eps.log_prob(point.view()).unwrap()[0];
    let mut sds = vec![];
    for probes in [1usize, 4] {
        let lik = OdeLikelihood::new(sde.clone())
            .unwrap()
            .tolerances(1e-6, 1e-6)
            .unwrap()
            .divergence(DivergenceMethod::Hutchinson {
                probes,
                probe: Probe::Rademacher,
            })
            .unwrap();
        let (est, _) = ode_log_p(&lik, &model, &p0, x.view(), 100 + probes as u64);
        let mean = est.mean().unwrap();
        let sd = est.std(1.0);
        let se = sd / (reps as f64).sqrt();
        // Unbiased: within 4 standard errors (the solver error at 1e-6 is far below the SE).
        assert!(
            (mean - exact).abs() < 4.0 * se,
            "probes {probes}: mean {mean} exact {exact} se {se}"
        );
        sds.push(sd);
    }
    // 1 → 4 probes halves the standard deviation; each sd of 200 draws has relative error
    // ≈ 1/√400 = 5 %, so the ratio lies in 2 ± 0.3 with a wide margin.
    let ratio = sds[0] / sds[1];
    assert!((ratio - 2.0).abs() < 0.3, "sd ratio {ratio}");
}

#[test]
fn a_wrong_score_gives_a_measurably_wrong_log_density() {
    let sde = VpSde::<f64>::default();
    let p0 = problems::ring2d::<f64>();
    let exact_model = AnalyticScore::new(p0.clone(), *sde.schedule());
    let inner = exact_model.clone();
    let wrong = ScoreFn::new(
        move |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| {
            inner.score(x, t, out.view_mut())?;
            out.mapv_inplace(|v| 1.1 * v);
            Ok(())
        },
    );
    let p_eps = p0.diffuse(sde.schedule(), 1e-3).unwrap();
    let x = p_eps.sample(16, &mut rng(3)).unwrap();
    let lik = OdeLikelihood::new(sde.clone())
        .unwrap()
        .tolerances(1e-7, 1e-7)
        .unwrap()
        .divergence(DivergenceMethod::FiniteDifference)
        .unwrap();
    let exact = p_eps.log_prob(x.view()).unwrap();
    let (right, _) = ode_log_p(&lik, &exact_model, &p0, x.view(), 0);
    let (bad, _) = ode_log_p(&lik, &wrong, &p0, x.view(), 0);
    let err_right = (&right - &exact)
        .iter()
        .fold(0.0_f64, |a, v| a.max(v.abs()));
    let err_bad = (&bad - &exact).mapv(f64::abs).mean().unwrap();
    // Finite-difference divergence at rtol 1e-7: errors ~1e-6; a 10 % score error moves the
    // log-density by O(0.1) nats — two orders of magnitude apart.
    assert!(err_right < 1e-4, "right model error {err_right}");
    assert!(
        err_bad > 100.0 * err_right.max(1e-6),
        "wrong model error {err_bad}"
    );
}

#[test]
fn f32_agrees_with_f64_within_the_derived_tolerance() {
    let p0_64 = problems::ring2d::<f64>();
    let p0_32 = problems::ring2d::<f32>();
    let x64 = p0_64
        .diffuse(&VpLinear::default(), 1e-3)
        .unwrap()
        .sample(32, &mut rng(4))
        .unwrap();
    let x32 = x64.mapv(|v| v as f32);
    let l64 = OdeLikelihood::new(VpSde::<f64>::default())
        .unwrap()
        .tolerances(1e-5, 1e-5)
        .unwrap();
    let l32 = OdeLikelihood::new(VpSde::<f32>::default())
        .unwrap()
        .tolerances(1e-5, 1e-5)
        .unwrap();
    let r64 = l64
        .log_prob(
            &AnalyticScore::new(p0_64, VpLinear::default()),
            x64.view(),
            &mut rng(0),
        )
        .unwrap();
    let r32 = l32
        .log_prob(
            &AnalyticScore::new(p0_32, VpLinear::default()),
            x32.view(),
            &mut rng(0),
        )
        .unwrap();
    // Both solve to rtol = atol = 1e-5, so each is within ~1e-5·|Δ| (|Δ| ≲ 20 nats here) of the
    // true value: 2e-4 each. f32 adds rounding: ~1.2e-7 relative per RHS evaluation on terms of
    // size ~20, accumulated over ~10² steps × 6 stages as a random walk, ≈ 1e-4. Sum ≈ 5e-4;
    // 2e-3 nats leaves a margin yet is 50× below the wrong-score signal above.
    for (a, b) in r32.log_p.iter().zip(&r64.log_p) {
        assert!((*a as f64 - b).abs() < 2e-3, "f32 {a} vs f64 {b}");
    }
}

#[test]
fn bad_input_is_a_typed_error() {
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d::<f64>(), *sde.schedule());
    let lik = OdeLikelihood::new(sde.clone()).unwrap();
    let wrong_dim = Array2::<f64>::zeros((3, 5));
    assert!(matches!(
        lik.log_prob(&model, wrong_dim.view(), &mut rng(0)),
        Err(Error::ShapeMismatch { .. })
    ));
    let mut nan = Array2::<f64>::zeros((3, 2));
    nan[[2, 0]] = f64::NAN;
    assert!(matches!(
        lik.log_prob(&model, nan.view(), &mut rng(0)),
        Err(Error::NonFinite { .. })
    ));
    let empty = Array2::<f64>::zeros((0, 2));
    assert!(matches!(
        lik.log_prob(&model, empty.view(), &mut rng(0)),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        lik.clone().divergence(DivergenceMethod::Hutchinson {
            probes: 0,
            probe: Probe::Gaussian
        }),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(lik.clone().tolerances(0.0, 1e-5).is_err());
    assert!(lik.clone().tolerances(1e-5, -1.0).is_err());
    // A tiny step budget runs out and says where.
    let tight = lik
        .clone()
        .tolerances(1e-10, 1e-10)
        .unwrap()
        .max_steps(3)
        .unwrap();
    let x = Array2::<f64>::ones((2, 2));
    assert!(matches!(
        tight.log_prob(&model, x.view(), &mut rng(0)),
        Err(Error::StepBudgetExceeded { .. })
    ));
    // A model without an exact divergence needs another method.
    let plain = ScoreFn::new(|x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| {
        out.assign(&(-&x));
        Ok(())
    });
    assert!(matches!(
        lik.log_prob(&plain, x.view(), &mut rng(0)),
        Err(Error::Model(_))
    ));
    let _ = Array1::<f64>::zeros(1);
}
