//! Likelihood pieces against exact answers: divergence estimators, bits per dimension.

mod common;
use common::rng;
use ndarray::{Array1, Array2};
use score_sde::likelihood::{DataScaling, Divergence, DivergenceMethod, Probe, bits_per_dim};
use score_sde::prelude::*;

fn exact_div(model: &AnalyticScore<f64, VpLinear<f64>>, x: &Array2<f64>, t: f64) -> Array1<f64> {
    let mut d = Array1::zeros(x.nrows());
    model
        .divergence(x.view(), t, d.view_mut())
        .unwrap()
        .unwrap();
    d
}

#[test]
fn finite_difference_divergence_matches_exact() {
    let model = AnalyticScore::new(problems::rand16d::<f64>(), VpLinear::default());
    let x = model
        .marginal(0.05)
        .unwrap()
        .sample(64, &mut rng(1))
        .unwrap();
    let exact = exact_div(&model, &x, 0.05);
    let mut div = Divergence::new(DivergenceMethod::FiniteDifference, 64, 16, &mut rng(2)).unwrap();
    let mut fd = Array1::zeros(64);
    let calls = div.eval(&model, x.view(), 0.05, fd.view_mut()).unwrap();
    assert_eq!(calls, 32);
    // Central differences with h = ε^{1/3}·scale: relative error ~ ε^{2/3} ≈ 4e-11 times the
    // third derivative's scale; the divergence here is O(100) (precisions up to 1/0.05), so
    // 1e-5 absolute leaves a wide margin yet catches any wrong axis or factor 2.
    for (a, b) in fd.iter().zip(&exact) {
        assert!(
            (a - b).abs() < 1e-5 * b.abs().max(1.0),
            "fd {a} vs exact {b}"
        );
    }
}

#[test]
fn hutchinson_is_unbiased_and_its_error_falls_as_one_over_sqrt_probes() {
    let model = AnalyticScore::new(problems::rand16d::<f64>(), VpLinear::default());
    let t = 0.3;
    let x = model.marginal(t).unwrap().sample(1, &mut rng(3)).unwrap();
    let exact = exact_div(&model, &x, t)[0];
    for probe in [Probe::Rademacher, Probe::Gaussian] {
        let mut sds = vec![];
        for &m in &[1usize, 16] {
            // 400 independent estimators (each with its own probes) of m probes each.
            let reps = 400;
            let est: Vec<f64> = (0..reps)
                .map(|r| {
                    let mut div = Divergence::new(
                        DivergenceMethod::Hutchinson { probes: m, probe },
                        1,
                        16,
                        &mut rng(100 + r),
                    )
                    .unwrap();
                    let mut o = Array1::zeros(1);
                    div.eval(&model, x.view(), t, o.view_mut()).unwrap();
                    o[0]
                })
                .collect();
            let mean = est.iter().sum::<f64>() / reps as f64;
            let sd =
                (est.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (reps as f64 - 1.0)).sqrt();
            let se = sd / (reps as f64).sqrt();
            // Unbiased: the mean of 400 estimates is within 4 standard errors of the truth.
            assert!(
                (mean - exact).abs() < 4.0 * se,
                "{probe:?} m={m}: mean {mean} exact {exact} se {se}"
            );
            sds.push(sd);
        }
        // sd ∝ 1/√m: going from 1 to 16 probes divides it by 4. The sample sd of 400 draws has
        // a relative error ≈ 1/√800 ≈ 3.5 % each, so the ratio lies in 4 ± 15 % comfortably.
        let ratio = sds[0] / sds[1];
        assert!((ratio - 4.0).abs() < 0.6, "{probe:?}: sd ratio {ratio}");
    }
}

#[test]
fn exact_divergence_requires_a_model_that_has_one() {
    let model = ScoreFn::new(
        |x: ndarray::ArrayView2<f64>, _t: f64, mut out: ndarray::ArrayViewMut2<f64>| {
            out.assign(&(-&x));
            Ok(())
        },
    );
    let mut div = Divergence::new(DivergenceMethod::Exact, 2, 3, &mut rng(0)).unwrap();
    let x = Array2::<f64>::ones((2, 3));
    let mut o = Array1::zeros(2);
    assert!(matches!(
        div.eval(&model, x.view(), 0.5, o.view_mut()),
        Err(Error::Model(_))
    ));
    // Finite differences work for any model: ∇·(−x) = −3.
    let mut fd = Divergence::new(DivergenceMethod::FiniteDifference, 2, 3, &mut rng(0)).unwrap();
    fd.eval(&model, x.view(), 0.5, o.view_mut()).unwrap();
    assert!(o.iter().all(|v| (v + 3.0).abs() < 1e-9));
}

#[test]
fn zero_probes_and_bad_shapes_are_typed_errors() {
    assert!(matches!(
        Divergence::<f64>::new(
            DivergenceMethod::Hutchinson {
                probes: 0,
                probe: Probe::Rademacher
            },
            2,
            2,
            &mut rng(0)
        ),
        Err(Error::InvalidParameter { name: "probes", .. })
    ));
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::default());
    let mut div = Divergence::new(DivergenceMethod::FiniteDifference, 4, 2, &mut rng(0)).unwrap();
    let mut o = Array1::zeros(3);
    let x = Array2::<f64>::zeros((3, 2));
    assert!(matches!(
        div.eval(&model, x.view(), 0.5, o.view_mut()),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn bits_per_dim_of_a_standard_normal_matches_the_closed_form() {
    // log N(0; 0, I_D) = −(D/2) ln 2π; bpd = (½ ln 2π)/ln 2 − log₂ a + log₂ 256.
    let d = 4;
    let lp = Array1::from_elem(1, -(d as f64) / 2.0 * (2.0 * std::f64::consts::PI).ln());
    let b = bits_per_dim(lp.view(), d, DataScaling::eight_bit_centered()).unwrap()[0];
    let expect = 0.5 * (2.0 * std::f64::consts::PI).ln() / std::f64::consts::LN_2 + 7.0;
    assert!((b - expect).abs() < 1e-12);
    assert!(DataScaling::new(0, 1.0).is_err());
    assert!(DataScaling::new(256, -1.0).is_err());
}
