//! Every invalid input returns the right `Error` variant, and nothing panics.
//!
//! Each case calls the public API with one thing wrong and matches the variant (and, where
//! the variant names it, the parameter, component or index). A panic anywhere fails the test.

use ndarray::{Array1, Array2, Array3, array};
use score_sde::gmm::{AnalyticScore, GaussianMixture, MixtureSpec, problems};
use score_sde::grid::{GridKind, TimeGrid};
use score_sde::metrics::{self, Reference};
use score_sde::schedule::{DiscreteVp, Edm, Schedule, SubVp, Ve, VpCosine, VpLinear};
use score_sde::sde::{ForwardSde, LinearSde, VpSde};
use score_sde::{Error, ScoreFn, ScoreModel};

/// `assert_err!(call, pattern)`: `call` returns `Err(e)` with `e` matching `pattern`.
macro_rules! assert_err {
    ($call:expr, $($pat:tt)+) => {{
        match $call {
            Err(e) => assert!(
                matches!(e, $($pat)+),
                "{}\n  expected {}\n  got      {:?}",
                stringify!($call),
                stringify!($($pat)+),
                e
            ),
            Ok(v) => panic!(
                "{}\n  expected Err({})\n  got      Ok({:?})",
                stringify!($call),
                stringify!($($pat)+),
                v
            ),
        }
    }};
}

const NAN: f64 = f64::NAN;
const INF: f64 = f64::INFINITY;

// ------------------------------------------------------------------ schedules

#[test]
fn schedule_constructors_reject_bad_parameters() {
    use Error::InvalidParameter as P;
    // VP linear: 0 ≤ β_min ≤ β_max, β_max > 0, all finite.
    assert_err!(
        VpLinear::new(-0.1, 20.0),
        P {
            name: "beta_min",
            ..
        }
    );
    assert_err!(
        VpLinear::new(NAN, 20.0),
        P {
            name: "beta_min",
            ..
        }
    );
    assert_err!(
        VpLinear::new(INF, 20.0),
        P {
            name: "beta_min",
            ..
        }
    );
    assert_err!(
        VpLinear::new(0.1, NAN),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        VpLinear::new(0.1, -20.0),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        VpLinear::new(5.0, 1.0),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        VpLinear::new(0.0, 0.0),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        VpLinear::new(0.1, INF),
        P {
            name: "beta_max",
            ..
        }
    );
    let vp = VpLinear::<f64>::default();
    assert_err!(vp.with_t_range(0.0, 1.0), P { name: "t_min", .. });
    assert_err!(vp.with_t_range(-1e-3, 1.0), P { name: "t_min", .. });
    assert_err!(vp.with_t_range(NAN, 1.0), P { name: "t_min", .. });
    assert_err!(vp.with_t_range(0.5, 0.4), P { name: "t_max", .. });
    assert_err!(vp.with_t_range(1e-3, NAN), P { name: "t_max", .. });
    // Sub-VP shares the VP checks.
    assert_err!(
        SubVp::new(-1.0, 20.0),
        P {
            name: "beta_min",
            ..
        }
    );
    assert_err!(
        SubVp::new(0.1, NAN),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        SubVp::<f64>::default().with_t_range(0.2, 0.1),
        P { name: "t_max", .. }
    );
    // Cosine: s > 0, β_max > 0, and T < 1.
    assert_err!(VpCosine::new(0.0, 999.0), P { name: "s", .. });
    assert_err!(VpCosine::new(-0.008, 999.0), P { name: "s", .. });
    assert_err!(VpCosine::new(NAN, 999.0), P { name: "s", .. });
    assert_err!(
        VpCosine::new(0.008, -1.0),
        P {
            name: "beta_max",
            ..
        }
    );
    assert_err!(
        VpCosine::new(0.008, NAN),
        P {
            name: "beta_max",
            ..
        }
    );
    let cos = VpCosine::<f64>::default();
    assert_err!(cos.with_t_range(1e-3, 1.0), P { name: "t_max", .. });
    assert_err!(cos.with_t_range(0.0, 0.5), P { name: "t_min", .. });
    // VE: 0 < σ_min < σ_max.
    assert_err!(
        Ve::new(0.0, 50.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Ve::new(-0.01, 50.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Ve::new(NAN, 50.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Ve::new(0.01, 0.001),
        P {
            name: "sigma_max",
            ..
        }
    );
    assert_err!(
        Ve::new(0.01, NAN),
        P {
            name: "sigma_max",
            ..
        }
    );
    assert_err!(
        Ve::new(0.01, INF),
        P {
            name: "sigma_max",
            ..
        }
    );
    assert_err!(
        Ve::<f64>::default().with_t_range(0.0, 1.0),
        P { name: "t_min", .. }
    );
    // EDM: 0 < σ_min < σ_max (its time range).
    assert_err!(
        Edm::new(0.0, 80.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Edm::new(-0.002, 80.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Edm::new(NAN, 80.0),
        P {
            name: "sigma_min",
            ..
        }
    );
    assert_err!(
        Edm::new(0.002, 0.001),
        P {
            name: "sigma_max",
            ..
        }
    );
    assert_err!(
        Edm::new(0.002, NAN),
        P {
            name: "sigma_max",
            ..
        }
    );
    // f32 goes through the same checks.
    assert_err!(
        VpLinear::new(-1.0_f32, 20.0),
        P {
            name: "beta_min",
            ..
        }
    );
    assert_err!(
        Ve::new(0.01_f32, f32::NAN),
        P {
            name: "sigma_max",
            ..
        }
    );
}

#[test]
fn discrete_tables_reject_bad_betas() {
    use Error::InvalidParameter as P;
    assert_err!(DiscreteVp::<f64>::from_betas(&[]), Error::Empty { .. });
    for bad in [0.0, 1.0, 1.5, -0.1, NAN, INF] {
        assert_err!(
            DiscreteVp::from_betas(&[0.01, bad, 0.02]),
            P { name: "beta", .. }
        );
    }
    assert_err!(
        DiscreteVp::<f64>::ddpm_linear(0, 1e-4, 0.02),
        P { name: "n", .. }
    );
    // β_end ≥ 1: the last entries leave (0, 1).
    assert_err!(
        DiscreteVp::<f64>::ddpm_linear(10, 0.5, 1.5),
        P { name: "beta", .. }
    );
    assert_err!(
        DiscreteVp::<f64>::ddpm_linear(10, -1e-4, 0.02),
        P { name: "beta", .. }
    );
    assert_err!(
        DiscreteVp::<f64>::ddpm_linear(10, NAN, 0.02),
        P { name: "beta", .. }
    );
}

#[test]
fn log_snr_inverse_rejects_non_finite_and_unattained_targets() {
    let schedules: Vec<Box<dyn Schedule<f64>>> = vec![
        Box::new(VpLinear::default()),
        Box::new(VpCosine::default()),
        Box::new(SubVp::default()),
        Box::new(Ve::default()),
        Box::new(Edm::default()),
        Box::new(DiscreteVp::ddpm_linear(1000, 1e-4, 0.02).unwrap()),
    ];
    for s in &schedules {
        for bad in [NAN, INF, -INF] {
            assert_err!(
                s.t_of_log_snr(bad),
                Error::InvalidParameter {
                    name: "log_snr",
                    ..
                }
            );
        }
    }
    // The table's λ is bounded on [0, 1]: a target above λ(0) = ∞ is impossible, but one
    // below λ(1) is not attained, and the bisection says so.
    let table = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
    let below = table.log_snr(1.0) - 1.0;
    assert_err!(table.t_of_log_snr(below), Error::NoConvergence { .. });
    // A time outside the range is reported by `check_t`.
    let vp = VpLinear::<f64>::default();
    assert_err!(vp.check_t(1.5), Error::TimeOutOfRange { .. });
    assert_err!(vp.check_t(0.0), Error::TimeOutOfRange { .. });
    assert_err!(vp.check_t(NAN), Error::TimeOutOfRange { .. });
}

// ------------------------------------------------------------------ mixtures

fn covs(list: &[Array2<f64>]) -> Array3<f64> {
    let (k, d) = (list.len(), list[0].nrows());
    let mut c = Array3::zeros((k, d, d));
    for (i, m) in list.iter().enumerate() {
        c.index_axis_mut(ndarray::Axis(0), i).assign(m);
    }
    c
}

#[test]
fn mixture_constructor_rejects_bad_inputs() {
    let eye = Array2::<f64>::eye(2);
    let ok_means = array![[0.0, 0.0], [1.0, 1.0]];
    let ok_covs = covs(&[eye.clone(), eye.clone()]);
    let mk = |w: Array1<f64>, m: Array2<f64>, c: Array3<f64>| GaussianMixture::new(w, m, c);
    assert!(mk(array![0.5, 0.5], ok_means.clone(), ok_covs.clone()).is_ok());

    // Weights: sum ≠ 1, negative, zero, NaN.
    assert_err!(
        mk(array![0.5, 0.4], ok_means.clone(), ok_covs.clone()),
        Error::InvalidWeights { .. }
    );
    assert_err!(
        mk(array![1.5, -0.5], ok_means.clone(), ok_covs.clone()),
        Error::InvalidWeights { .. }
    );
    assert_err!(
        mk(array![1.0, 0.0], ok_means.clone(), ok_covs.clone()),
        Error::InvalidWeights { .. }
    );
    assert_err!(
        mk(array![NAN, 0.5], ok_means.clone(), ok_covs.clone()),
        Error::InvalidWeights { .. }
    );
    // Non-symmetric and non-positive-definite covariances name their component (1).
    let asym = array![[1.0, 0.5], [0.2, 1.0]];
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(&[eye.clone(), asym])
        ),
        Error::NotPositiveDefinite { component: 1, .. }
    );
    let indefinite = array![[1.0, 2.0], [2.0, 1.0]];
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(&[eye.clone(), indefinite])
        ),
        Error::NotPositiveDefinite { component: 1, .. }
    );
    let singular = array![[1.0, 1.0], [1.0, 1.0]];
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(&[singular, eye.clone()])
        ),
        Error::NotPositiveDefinite { component: 0, .. }
    );
    let negative = array![[-1.0, 0.0], [0.0, 1.0]];
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(&[eye.clone(), negative])
        ),
        Error::NotPositiveDefinite { component: 1, .. }
    );
    // Shapes: means rows ≠ K, means columns ≠ covariance size, covariance count ≠ K.
    assert_err!(
        mk(array![0.5, 0.5], array![[0.0, 0.0]], ok_covs.clone()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        mk(
            array![0.5, 0.5],
            array![[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
            ok_covs.clone()
        ),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(std::slice::from_ref(&eye))
        ),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        mk(array![1.0], array![[0.0, 0.0]], Array3::zeros((1, 2, 3))),
        Error::ShapeMismatch { .. }
    );
    // Non-finite means / covariances, with the flat index of the first bad entry.
    assert_err!(
        mk(
            array![0.5, 0.5],
            array![[0.0, 0.0], [1.0, NAN]],
            ok_covs.clone()
        ),
        Error::NonFinite {
            what: "means",
            index: 3,
            ..
        }
    );
    assert_err!(
        mk(
            array![0.5, 0.5],
            ok_means.clone(),
            covs(&[eye.clone(), array![[INF, 0.0], [0.0, 1.0]]])
        ),
        Error::NonFinite { .. }
    );
    // Empty: no components, or zero dimensions.
    assert_err!(
        mk(
            Array1::zeros(0),
            Array2::zeros((0, 2)),
            Array3::zeros((0, 2, 2))
        ),
        Error::Empty { .. }
    );
    assert_err!(
        mk(array![1.0], Array2::zeros((1, 0)), Array3::zeros((1, 0, 0))),
        Error::Empty { .. }
    );
    // One Gaussian: the covariance must be D × D. (Regression: a 4 × 1 array holding the
    // entries of I₂ used to be reshaped silently into a 2 × 2 identity.)
    assert_err!(
        GaussianMixture::gaussian(array![0.0, 0.0], Array2::eye(3)),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        GaussianMixture::gaussian(
            array![0.0, 0.0],
            Array2::from_shape_vec((4, 1), vec![1.0, 0.0, 0.0, 1.0]).unwrap()
        ),
        Error::ShapeMismatch { .. }
    );
    // f32 mixtures validate the same way.
    assert_err!(
        GaussianMixture::<f32>::new(
            array![0.5_f32, 0.5],
            array![[0.0_f32], [1.0]],
            Array3::from_shape_vec((2, 1, 1), vec![1.0_f32, -1.0]).unwrap()
        ),
        Error::NotPositiveDefinite { component: 1, .. }
    );
}

#[test]
fn mixture_methods_reject_bad_inputs() {
    let gm = problems::ring2d::<f64>();
    let vp = VpLinear::<f64>::default();
    let x3 = Array2::<f64>::zeros((4, 3));
    let xnan = array![[0.0, 0.0], [NAN, 1.0]];
    assert_err!(gm.log_prob(x3.view()), Error::ShapeMismatch { .. });
    assert_err!(gm.score(x3.view()), Error::ShapeMismatch { .. });
    assert_err!(gm.hessian_trace(x3.view()), Error::ShapeMismatch { .. });
    assert_err!(gm.responsibilities(x3.view()), Error::ShapeMismatch { .. });
    assert_err!(gm.log_prob(xnan.view()), Error::NonFinite { index: 2, .. });
    assert_err!(gm.score(xnan.view()), Error::NonFinite { .. });
    // Output buffers of the wrong shape.
    let x = Array2::<f64>::zeros((4, 2));
    let mut lp = Array1::<f64>::zeros(3);
    let mut sc = Array2::<f64>::zeros((4, 3));
    assert_err!(
        gm.evaluate_at(1.0, 0.0, x.view(), Some(lp.view_mut()), None, None),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        gm.evaluate_at(1.0, 0.0, x.view(), None, Some(sc.view_mut()), None),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        gm.evaluate_at(1.0, 0.0, x.view(), None, None, Some(lp.view_mut())),
        Error::ShapeMismatch { .. }
    );
    // α must be > 0 and σ ≥ 0, both finite.
    assert_err!(
        gm.diffuse_with(0.0, 1.0),
        Error::InvalidParameter { name: "alpha", .. }
    );
    assert_err!(
        gm.diffuse_with(NAN, 1.0),
        Error::InvalidParameter { name: "alpha", .. }
    );
    assert_err!(
        gm.diffuse_with(1.0, -0.1),
        Error::InvalidParameter { name: "sigma", .. }
    );
    assert_err!(
        gm.diffuse_with(1.0, INF),
        Error::InvalidParameter { name: "sigma", .. }
    );
    assert_err!(
        gm.posterior_mean(x.view(), -1.0, 1.0),
        Error::InvalidParameter { name: "alpha", .. }
    );
    assert_err!(
        gm.posterior_mean(x3.view(), 1.0, 1.0),
        Error::ShapeMismatch { .. }
    );
    // Times: negative or non-finite.
    assert_err!(gm.diffuse(&vp, -0.1), Error::TimeOutOfRange { .. });
    assert!(gm.diffuse(&vp, NAN).is_err());
    // Sampling nothing.
    let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(0);
    assert_err!(gm.sample(0, &mut rng), Error::Empty { .. });
    // Marginals and conditionals: bad, repeated or no indices, wrong value count, NaN values,
    // every coordinate observed.
    assert_err!(gm.marginal(&[]), Error::Empty { .. });
    assert_err!(gm.marginal(&[2]), Error::InvalidParameter { .. });
    assert_err!(gm.marginal(&[0, 0]), Error::InvalidParameter { .. });
    assert_err!(
        gm.condition(&[5], array![1.0].view()),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        gm.condition(&[0], array![1.0, 2.0].view()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        gm.condition(&[0], array![NAN].view()),
        Error::NonFinite { .. }
    );
    assert_err!(
        gm.condition(&[0, 1], array![1.0, 2.0].view()),
        Error::Empty { .. }
    );
    assert_err!(
        gm.condition(&[], Array1::zeros(0).view()),
        Error::Empty { .. }
    );
}

#[test]
fn analytic_score_rejects_bad_inputs() {
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::default());
    let x = Array2::<f64>::zeros((5, 2));
    let mut out = Array2::<f64>::zeros((5, 2));
    // t outside [0, T], or not finite.
    for t in [-0.1, 1.5, NAN, INF] {
        assert_err!(
            model.score(x.view(), t, out.view_mut()),
            Error::TimeOutOfRange { .. }
        );
        let mut lp = Array1::zeros(5);
        assert_err!(
            model.log_prob(x.view(), t, lp.view_mut()),
            Error::TimeOutOfRange { .. }
        );
        let mut div = Array1::zeros(5);
        assert_err!(
            model.divergence(x.view(), t, div.view_mut()).unwrap(),
            Error::TimeOutOfRange { .. }
        );
    }
    // x with the wrong number of columns, and NaN x.
    let x3 = Array2::<f64>::zeros((5, 3));
    let mut out3 = Array2::<f64>::zeros((5, 3));
    assert_err!(
        model.score(x3.view(), 0.5, out3.view_mut()),
        Error::ShapeMismatch { .. }
    );
    let mut lp = Array1::zeros(5);
    assert_err!(
        model.log_prob(x3.view(), 0.5, lp.view_mut()),
        Error::ShapeMismatch { .. }
    );
    let mut div = Array1::zeros(5);
    assert_err!(
        model.divergence(x3.view(), 0.5, div.view_mut()).unwrap(),
        Error::ShapeMismatch { .. }
    );
    let mut xnan = x.clone();
    xnan[[3, 1]] = NAN;
    assert_err!(
        model.score(xnan.view(), 0.5, out.view_mut()),
        Error::NonFinite { index: 7, .. }
    );
    assert_err!(
        model.divergence(xnan.view(), 0.5, div.view_mut()).unwrap(),
        Error::NonFinite { .. }
    );
    // Output buffers of the wrong shape.
    let mut bad = Array2::<f64>::zeros((4, 2));
    assert_err!(
        model.score(x.view(), 0.5, bad.view_mut()),
        Error::ShapeMismatch { .. }
    );
    let mut bad = Array2::<f64>::zeros((5, 1));
    assert_err!(
        model.score(x.view(), 0.5, bad.view_mut()),
        Error::ShapeMismatch { .. }
    );
    let mut bad1 = Array1::<f64>::zeros(4);
    assert_err!(
        model.log_prob(x.view(), 0.5, bad1.view_mut()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        model.divergence(x.view(), 0.5, bad1.view_mut()).unwrap(),
        Error::ShapeMismatch { .. }
    );
    // Per-row times: wrong count, or one out of range.
    let t4 = Array1::from_elem(4, 0.5);
    assert_err!(
        model.score_rows(x.view(), t4.view(), out.view_mut()),
        Error::ShapeMismatch { .. }
    );
    let t5 = array![0.1, 0.2, 2.0, 0.4, 0.5];
    assert_err!(
        model.score_rows(x.view(), t5.view(), out.view_mut()),
        Error::TimeOutOfRange { .. }
    );
    // Through a trait object, too.
    let dynm: &dyn ScoreModel<f64> = &model;
    assert_err!(
        dynm.score(x3.view(), 0.5, out3.view_mut()),
        Error::ShapeMismatch { .. }
    );
    // A closure model with a declared dimension checks it, and its output buffer.
    let f = ScoreFn::new(
        |_x: ndarray::ArrayView2<f64>, _t: f64, _o: ndarray::ArrayViewMut2<f64>| Ok(()),
    )
    .with_dim(2);
    assert_err!(
        f.score(x3.view(), 0.5, out3.view_mut()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        f.score(x.view(), 0.5, bad.view_mut()),
        Error::ShapeMismatch { .. }
    );
}

// ------------------------------------------------------------------ SDEs

#[test]
fn sde_methods_reject_bad_inputs() {
    let sde = VpSde::<f64>::default();
    let mut rng = <rand_pcg::Pcg64 as rand::SeedableRng>::seed_from_u64(0);
    let x = Array2::<f64>::zeros((3, 2));
    assert_err!(
        sde.perturb(x.view(), -0.5, &mut rng),
        Error::TimeOutOfRange { .. }
    );
    assert_err!(
        sde.perturb(x.view(), NAN, &mut rng),
        Error::InvalidParameter { .. }
    );
    let xnan = array![[0.0, NAN], [0.0, 0.0]];
    assert_err!(
        sde.perturb(xnan.view(), 0.5, &mut rng),
        Error::NonFinite { index: 1, .. }
    );
    assert_err!(
        sde.perturb_rows(x.view(), array![0.1, 0.2].view(), &mut rng),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        sde.perturb_rows(x.view(), array![0.1, NAN, 0.3].view(), &mut rng),
        Error::NonFinite { index: 1, .. }
    );
    assert_err!(
        sde.perturb_rows(x.view(), array![0.1, -0.2, 0.3].view(), &mut rng),
        Error::NonFinite { index: 1, .. }
    );
    assert_err!(
        LinearSde::new(VpLinear::<f64>::default()).with_prior_std(0.0),
        Error::InvalidParameter {
            name: "prior_std",
            ..
        }
    );
    assert_err!(
        LinearSde::new(VpLinear::<f64>::default()).with_prior_std(NAN),
        Error::InvalidParameter {
            name: "prior_std",
            ..
        }
    );
    let mut bad = Array2::<f64>::zeros((3, 3));
    assert_err!(
        sde.drift(x.view(), 0.5, bad.view_mut()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        sde.discretize(x.view(), 0.5, 0.1, bad.view_mut()),
        Error::ShapeMismatch { .. }
    );
    assert_err!(sde.sample_prior(0, 2, &mut rng), Error::Empty { .. });
    assert_err!(sde.sample_prior(5, 0, &mut rng), Error::Empty { .. });
    let mut lp = Array1::<f64>::zeros(2);
    assert_err!(
        sde.prior_log_prob(x.view(), lp.view_mut()),
        Error::ShapeMismatch { .. }
    );
}

// ------------------------------------------------------------------ grids

#[test]
fn time_grids_reject_bad_inputs() {
    let vp = VpLinear::<f64>::default();
    for kind in [
        GridKind::Uniform,
        GridKind::Quadratic,
        GridKind::KARRAS,
        GridKind::LogSnr,
    ] {
        assert_err!(
            kind.build(&vp, 0),
            Error::InvalidParameter { name: "steps", .. }
        );
    }
    assert_err!(
        TimeGrid::uniform(&vp, 0),
        Error::InvalidParameter { name: "steps", .. }
    );
    assert_err!(
        TimeGrid::karras(&vp, 10, 0.0),
        Error::InvalidParameter { name: "rho", .. }
    );
    assert_err!(
        TimeGrid::karras(&vp, 10, NAN),
        Error::InvalidParameter { name: "rho", .. }
    );
    // Custom grids: too short, not monotone, repeated, out of range, NaN.
    assert_err!(
        TimeGrid::custom(&vp, vec![0.5]),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![]),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![1.0, 0.5, 0.7, 0.1]),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![0.1, 0.5, 0.5]),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![0.5, 0.5]),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![1.5, 0.5, 0.1]),
        Error::TimeOutOfRange { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![1.0, 0.5, 0.0]),
        Error::TimeOutOfRange { .. }
    );
    assert_err!(
        TimeGrid::custom(&vp, vec![1.0, NAN, 0.1]),
        Error::TimeOutOfRange { .. }
    );
    let edm = Edm::<f64>::default();
    assert_err!(
        TimeGrid::custom(&edm, vec![100.0, 1.0]),
        Error::TimeOutOfRange { .. }
    );
}

// ------------------------------------------------------------------ metrics

#[test]
fn metrics_reject_mismatched_shapes() {
    let a = Array2::<f64>::zeros((10, 2));
    let b = Array2::<f64>::zeros((9, 2));
    let dirs = metrics::random_directions(4, 2, 0).unwrap();
    assert_err!(
        metrics::sliced_w1(a.view(), b.view(), dirs.view()),
        Error::ShapeMismatch { .. }
    );
    let b3 = Array2::<f64>::zeros((10, 3));
    assert_err!(
        metrics::sliced_w1(a.view(), b3.view(), dirs.view()),
        Error::ShapeMismatch { .. }
    );
    let dirs3 = metrics::random_directions(4, 3, 0).unwrap();
    assert_err!(
        metrics::sliced_w1(a.view(), a.view(), dirs3.view()),
        Error::ShapeMismatch { .. }
    );
    let e = Array2::<f64>::zeros((0, 2));
    assert_err!(
        metrics::sliced_w1(e.view(), e.view(), dirs.view()),
        Error::Empty { .. }
    );

    let ring = problems::ring2d::<f64>();
    let vp = VpLinear::<f64>::default();
    assert_err!(
        Reference::new(&ring, &vp, 1e-3, 1, 0),
        Error::InvalidParameter { .. }
    );
    assert_err!(
        Reference::new(&ring, &vp, -1.0, 100, 0),
        Error::TimeOutOfRange { .. }
    );
    let r = Reference::new(&ring, &vp, 1e-3, 100, 0).unwrap();
    assert_err!(r.evaluate(b3.view()), Error::ShapeMismatch { .. });
    let all_nan = Array2::from_elem((10, 2), NAN);
    assert_err!(r.evaluate(all_nan.view()), Error::Empty { .. });
    // Samples of the wrong dimension for the target mixture. (Regression: mean_error and
    // cov_error used to panic in ndarray broadcasting.)
    let x3 = Array2::<f64>::ones((10, 3));
    assert_err!(
        metrics::mean_error(x3.view(), &ring),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        metrics::cov_error(x3.view(), &ring),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        metrics::weight_tv(x3.view(), &ring),
        Error::ShapeMismatch { .. }
    );
    assert_err!(metrics::mean_error(e.view(), &ring), Error::Empty { .. });
    assert_err!(
        metrics::sample_covariance(Array2::<f64>::zeros((1, 2)).view()),
        Error::InvalidParameter { .. }
    );
}

// ------------------------------------------------------------------ mixture specs

#[test]
fn mixture_specs_reject_bad_json_and_ragged_arrays() {
    assert_err!(MixtureSpec::from_json("not json"), Error::Io(_));
    assert_err!(
        MixtureSpec::from_json(r#"{"weights": [1.0]}"#),
        Error::Io(_)
    );
    assert_err!(
        MixtureSpec::from_json(r#"{"weights": [1.0], "means": [[0.0]], "covs": "x"}"#),
        Error::Io(_)
    );
    assert_err!(
        MixtureSpec::load("/nonexistent/dir/mixture.json"),
        Error::Io(_)
    );
    let build = |json: &str| MixtureSpec::from_json(json).unwrap().build::<f64>();
    // Ragged means: the second mean has 1 coordinate instead of 2.
    assert_err!(
        build(
            r#"{"weights": [0.5, 0.5], "means": [[0.0, 0.0], [1.0]],
                "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}"#
        ),
        Error::ShapeMismatch { .. }
    );
    // Ragged covariance rows.
    assert_err!(
        build(r#"{"weights": [1.0], "means": [[0.0, 0.0]], "covs": [[[1, 0], [0]]]}"#),
        Error::ShapeMismatch { .. }
    );
    // Counts that disagree with the weights.
    assert_err!(
        build(
            r#"{"weights": [0.5, 0.5], "means": [[0.0, 0.0]],
                "covs": [[[1, 0], [0, 1]], [[1, 0], [0, 1]]]}"#
        ),
        Error::ShapeMismatch { .. }
    );
    assert_err!(
        build(r#"{"weights": [0.5, 0.5], "means": [[0.0], [1.0]], "covs": [[[1]]]}"#),
        Error::ShapeMismatch { .. }
    );
    // Empty, and invalid contents surface the mixture's own errors.
    assert_err!(
        build(r#"{"weights": [], "means": [], "covs": []}"#),
        Error::Empty { .. }
    );
    assert_err!(
        build(r#"{"weights": [0.7], "means": [[0.0]], "covs": [[[1]]]}"#),
        Error::InvalidWeights { .. }
    );
    assert_err!(
        build(r#"{"weights": [1.0], "means": [[0.0]], "covs": [[[-1]]]}"#),
        Error::NotPositiveDefinite { component: 0, .. }
    );
}
