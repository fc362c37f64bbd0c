//! The ONNX backend against closed forms: the fixtures of `scripts/make_onnx_fixture.py`
//! compute exact scores (or ε) of diffused Gaussian mixtures under the default VP linear
//! schedule, so tract's output must equal `AnalyticScore` to f32 precision.
#![cfg(feature = "onnx")]

use ndarray::{Array1, Array2, array};
use rand::SeedableRng;
use score_sde::backend::onnx::{OnnxOptions, OnnxScore, TimeInput};
use score_sde::prelude::*;
use score_sde::sample::Ddim;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The unit roundoff of f32, 2⁻²⁴.
const U: f64 = f32::EPSILON as f64 / 2.0;

/// `gaussian_score.onnx`: the score of N(μ, 0.36 I), μ = (1.5, −0.5), diffused by VP linear.
#[test]
fn gaussian_fixture_equals_the_analytic_score_to_f32_precision() {
    let sched = VpLinear::<f64>::default();
    let model = OnnxScore::load(
        fixture("gaussian_score.onnx"),
        OnnxOptions::new(sched, Parameterization::Score),
    )
    .unwrap();
    assert_eq!(model.network().dim(), 2);
    assert_eq!(model.network().time_input(), TimeInput::Vector);
    let mu = array![1.5, -0.5];
    let p0 = GaussianMixture::gaussian(mu.clone(), Array2::eye(2) * 0.36).unwrap();
    let exact = AnalyticScore::new(p0, sched);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
    let mut worst = 0.0_f64;
    // Batch sizes 1, 7 and 300 go through the same plan: the batch axis is symbolic.
    for (n, t) in [
        (1, 1e-3),
        (7, 0.01),
        (300, 0.1),
        (300, 0.35),
        (7, 0.7),
        (300, 1.0),
    ] {
        let x = Array2::from_shape_fn((n, 2), |_| 3.0 * f64::standard_normal(&mut rng));
        let mut got = Array2::zeros((n, 2));
        let mut want = Array2::zeros((n, 2));
        model.score(x.view(), t, got.view_mut()).unwrap();
        exact.score(x.view(), t, want.view_mut()).unwrap();
        // Error budget of the f32 graph (u = 2⁻²⁴ per rounding): t and x are rounded on input
        // (u each); log α = c₂t² + c₁t takes 4 roundings and doubles t's error (≤ 6u relative),
        // and exp multiplies a relative error by |log α| ≤ 5.05, so α is good to ≈ 32u; the
        // variance v = α² s² + (1 − α²) ≥ 0.36 then carries ≲ 64u·α²/v relative, and
        // s = −(x − αμ)/v inherits u|x| + 32u|αμ| absolutely in the numerator. Hence
        // |Δs| ≤ 64u (|x| + |αμ|)/v + 64u |s| in the worst case. Roundings do not all align:
        // the worst entry measured here uses 1.7u of that scale, so the test asserts 16u —
        // a few ulps, with a 10× margin, and orders of magnitude below what a wrong constant
        // (β, μ, s²) would give.
        let (a, s) = (sched.alpha(t), sched.sigma(t));
        let v = a * a * 0.36 + s * s;
        for i in 0..n {
            for j in 0..2 {
                let tol =
                    16.0 * U * ((x[[i, j]].abs() + (a * mu[j]).abs()) / v + want[[i, j]].abs());
                let err = (got[[i, j]] - want[[i, j]]).abs();
                worst = worst.max(err / tol);
                assert!(
                    err <= tol,
                    "t {t} row {i}: {} vs {} (tol {tol:e})",
                    got[[i, j]],
                    want[[i, j]]
                );
            }
        }
    }
    // The errors are genuinely f32-sized (not exactly zero: tract computes in f32).
    assert!(worst > 0.0 && worst < 1.0, "worst error/tolerance {worst}");
    eprintln!("gaussian fixture: worst |error| / tolerance = {worst:.3}");
}

/// `ring_noise.onnx`: ε = −σ ∇ log p_t of the 2-D ring, with t of shape [N, 1], read
/// through the noise adapter (s = −ε/σ) in f64 and compared with the exact ring score.
#[test]
fn ring_noise_fixture_through_the_noise_adapter() {
    let sched = VpLinear::<f64>::default();
    let model = OnnxScore::load(
        fixture("ring_noise.onnx"),
        OnnxOptions::new(sched, Parameterization::Noise),
    )
    .unwrap();
    assert_eq!(model.network().time_input(), TimeInput::Column);
    assert_eq!(model.parameterization(), Parameterization::Noise);
    let ring = problems::ring2d::<f64>();
    let exact = AnalyticScore::new(ring.clone(), sched);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
    for t in [0.05, 0.2, 0.5, 1.0] {
        let x = ring
            .diffuse(&sched, t)
            .unwrap()
            .sample(500, &mut rng)
            .unwrap();
        let mut got = Array2::zeros(x.raw_dim());
        let mut want = Array2::zeros(x.raw_dim());
        model.score(x.view(), t, got.view_mut()).unwrap();
        exact.score(x.view(), t, want.view_mut()).unwrap();
        let (a, s) = (sched.alpha(t), sched.sigma(t));
        let v = a * a * 0.09 + s * s;
        // The f32 graph's own budget: the logits −‖x − αμ_k‖²/(2v) (≤ 10³ here) are good to
        // ~8u relative, so the responsibilities to ~8u·max|logit|, moving s by that times
        // ‖x − αμ_k‖/v ≤ (‖x‖ + 4α)/v; and σ² = 1 − α² in f32 loses α²/σ² ulps to
        // cancellation (≤ 33 at t = 0.05), rescaling ε → s by that relative error.
        for i in 0..x.nrows() {
            let r = (x[[i, 0]].powi(2) + x[[i, 1]].powi(2)).sqrt() + 4.0 * a;
            let logit = r * r / (2.0 * v);
            let cancel = a * a / (s * s);
            for j in 0..2 {
                let tol = 16.0 * U * (logit * r / v + (1.0 + cancel) * want[[i, j]].abs() + r / v);
                let err = (got[[i, j]] - want[[i, j]]).abs();
                assert!(
                    err <= tol,
                    "t {t} row {i}: {} vs {} (tol {tol:e})",
                    got[[i, j]],
                    want[[i, j]]
                );
            }
        }
    }
}

/// The same sampler and seed with the ONNX network and with the exact score end in the same
/// place up to the f32 rounding of the network, carried through 20 DDIM steps.
#[test]
fn sampling_through_onnx_matches_sampling_with_the_exact_score() {
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let model = OnnxScore::load(
        fixture("ring_noise.onnx"),
        OnnxOptions::new(sched, Parameterization::Noise),
    )
    .unwrap();
    let exact = AnalyticScore::new(problems::ring2d::<f64>(), sched);
    let sampler = Ddim::new(sde.clone(), TimeGrid::uniform(&sched, 20).unwrap()).unwrap();
    let a = sampler
        .sample(&model, 400, 2, &mut rand_pcg::Pcg64::seed_from_u64(9))
        .unwrap();
    let b = sampler
        .sample(&exact, 400, 2, &mut rand_pcg::Pcg64::seed_from_u64(9))
        .unwrap();
    let max = (&a.samples - &b.samples)
        .iter()
        .fold(0.0_f64, |m, v| m.max(v.abs()));
    // Per step the network's ε is good to ~1e-5 relative (see the test above); DDIM's map is
    // contracting towards the modes, so 20 steps keep the gap near that size. 1e-3 is
    // generous yet two orders below the mode spacing a wrong score would show (~0.3–3).
    assert!(max < 1e-3, "max |Δx| = {max}");
    assert_eq!(a.nfe, b.nfe);
}

#[test]
fn wrong_input_name_is_a_typed_error_naming_the_expected_inputs() {
    let err = OnnxScore::load(
        fixture("wrong_input_name.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Score),
    )
    .unwrap_err();
    match &err {
        Error::ModelInterface {
            what,
            expected,
            found,
        } => {
            assert!(what.contains("input names"), "{err}");
            assert!(
                expected.contains("\"x\"") && expected.contains("\"t\""),
                "{err}"
            );
            assert!(found.contains("\"input\""), "{err}");
        }
        other => panic!("expected ModelInterface, got {other:?}"),
    }
    // Naming the inputs as the file does loads it.
    let ok = OnnxScore::load(
        fixture("wrong_input_name.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Score)
            .input_names("input", "t"),
    );
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn wrong_time_shape_is_a_typed_error() {
    let err = OnnxScore::load(
        fixture("wrong_time_shape.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Score),
    )
    .unwrap_err();
    match &err {
        Error::ModelInterface {
            what,
            expected,
            found,
        } => {
            assert!(what.contains("\"t\" shape"), "{err}");
            assert_eq!(expected, "[N] or [N, 1]");
            assert!(found.contains("N, 2"), "{err}");
        }
        other => panic!("expected ModelInterface, got {other:?}"),
    }
}

#[test]
fn declared_dimension_must_match_the_file() {
    let err = OnnxScore::load(
        fixture("gaussian_score.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Score).dim(3),
    )
    .unwrap_err();
    match &err {
        Error::ModelInterface {
            expected, found, ..
        } => {
            assert_eq!(expected, "[N, 3]");
            assert!(found.contains("N, 2"), "{err}");
        }
        other => panic!("expected ModelInterface, got {other:?}"),
    }
}

#[test]
fn bad_calls_and_files_are_errors_not_panics() {
    let missing = OnnxScore::load(
        fixture("no_such_file.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Score),
    );
    assert!(matches!(missing, Err(Error::Io(_))), "{missing:?}");
    let model = OnnxScore::load(
        fixture("gaussian_score.onnx"),
        OnnxOptions::new(VpLinear::<f32>::default(), Parameterization::Score),
    )
    .unwrap();
    // Three columns for a two-dimensional model.
    let x = Array2::<f32>::zeros((4, 3));
    let mut out = Array2::<f32>::zeros((4, 3));
    let r = model.score(x.view(), 0.5, out.view_mut());
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })), "{r:?}");
    // Per-row times of the wrong length.
    let x = Array2::<f32>::zeros((4, 2));
    let mut out = Array2::<f32>::zeros((4, 2));
    let r = model.score_rows(x.view(), Array1::zeros(3).view(), out.view_mut());
    assert!(matches!(r, Err(Error::ShapeMismatch { .. })), "{r:?}");
    // Per-row times agree with common-time calls, in f32.
    let x = Array2::from_shape_fn((5, 2), |(i, j)| i as f32 - j as f32);
    let t = Array1::from_vec(vec![0.1_f32, 0.3, 0.5, 0.7, 0.9]);
    let mut rows = Array2::zeros((5, 2));
    model
        .score_rows(x.view(), t.view(), rows.view_mut())
        .unwrap();
    for i in 0..5 {
        let mut one = Array2::zeros((1, 2));
        model
            .score(x.slice(ndarray::s![i..i + 1, ..]), t[i], one.view_mut())
            .unwrap();
        assert_eq!(one.row(0), rows.row(i));
    }
}
