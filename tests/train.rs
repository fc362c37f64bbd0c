//! Denoising score matching against its closed-form minimum (Vincent 2011).
//!
//! For the exact score, `E[λ ‖s(x_t) + z/σ‖²] = E[λ (D/σ² − ‖∇ log p_t‖²)]
//! = E[λ (D/σ² + Δ log p_t(x_t))]` (integration by parts), and `Δ log p_t` is closed-form
//! for a mixture. Per row, `ℓ_i − m_i` has mean zero; the test checks that within four
//! standard errors, for every parameterisation, and that a score scaled by 1.1 does worse.

use ndarray::{Array1, Array2, s};
use rand::SeedableRng;
use score_sde::prelude::*;
use score_sde::score::from_score_inplace;
use score_sde::train::{TimeSampling, Weighting, make_batch, score_space_weight};

fn check(kind: Parameterization, weighting: Weighting, sampling: TimeSampling) {
    let sde = VpSde::<f64>::default();
    let p0 = problems::ring2d::<f64>();
    let model = AnalyticScore::new(p0.clone(), *sde.schedule());
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let n = 20_000;
    let x0 = p0.sample(n, &mut rng).unwrap();
    let batch = make_batch(&sde, x0.view(), sampling, kind, weighting, &mut rng).unwrap();
    let d = 2.0;
    let mut pred = Array2::zeros(x0.raw_dim());
    let mut pred_bad = Array2::zeros(x0.raw_dim());
    let mut m = Array1::zeros(n);
    let mut lap = Array1::zeros(1);
    for i in 0..n {
        let t = batch.t[i];
        let (a, sg) = (sde.alpha(t), sde.sigma(t));
        let xi = batch.x_t.slice(s![i..i + 1, ..]);
        let mut si = pred.slice_mut(s![i..i + 1, ..]);
        model.score(xi, t, si.view_mut()).unwrap();
        let mut bad = pred_bad.slice_mut(s![i..i + 1, ..]);
        bad.assign(&(&si * 1.1));
        from_score_inplace(kind, xi, a, sg, si);
        from_score_inplace(kind, xi, a, sg, bad);
        model.divergence(xi, t, lap.view_mut()).unwrap().unwrap();
        m[i] = score_space_weight(weighting, &sde, t) * (d / (sg * sg) + lap[0]);
    }
    let l = batch.row_losses(pred.view()).unwrap();
    let diff = &l - &m;
    let mean = diff.mean().unwrap();
    let se = diff.std(1.0) / (n as f64).sqrt();
    assert!(
        mean.abs() < 4.0 * se,
        "{kind:?} {weighting:?}: E[loss − minimum] = {mean} (se {se})"
    );
    // The loss of the exact model is the mean of the per-row losses.
    assert!(
        (batch.loss(pred.view()).unwrap() - l.mean().unwrap()).abs()
            < 1e-9 * l.mean().unwrap().abs().max(1.0)
    );
    // A score 10 % too large is measurably worse: the excess λ‖0.1 s‖² exceeds 4 SEs (one-sided).
    let lb = batch.row_losses(pred_bad.view()).unwrap();
    let excess = &lb - &l;
    let ex_mean = excess.mean().unwrap();
    let ex_se = excess.std(1.0) / (n as f64).sqrt();
    assert!(
        ex_mean > 4.0 * ex_se,
        "{kind:?} {weighting:?}: perturbed excess {ex_mean} (se {ex_se})"
    );
}

#[test]
fn exact_score_attains_the_dsm_minimum_for_every_parameterisation() {
    for kind in [
        Parameterization::Score,
        Parameterization::Noise,
        Parameterization::Data,
        Parameterization::Velocity,
    ] {
        check(kind, Weighting::Sigma2, TimeSampling::Uniform);
    }
}

#[test]
fn edm_and_likelihood_weightings_and_lognormal_times() {
    check(
        Parameterization::Data,
        Weighting::Edm { sigma_data: 0.5 },
        TimeSampling::EDM,
    );
    check(
        Parameterization::Noise,
        Weighting::Likelihood,
        TimeSampling::Uniform,
    );
}

#[test]
fn bad_training_input_is_a_typed_error() {
    let sde = VpSde::<f64>::default();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let empty = Array2::<f64>::zeros((0, 2));
    assert!(matches!(
        make_batch(
            &sde,
            empty.view(),
            TimeSampling::Uniform,
            Parameterization::Noise,
            Weighting::Sigma2,
            &mut rng
        ),
        Err(Error::Empty { .. })
    ));
    let mut x = Array2::<f64>::zeros((3, 2));
    x[[1, 1]] = f64::NAN;
    assert!(matches!(
        make_batch(
            &sde,
            x.view(),
            TimeSampling::Uniform,
            Parameterization::Noise,
            Weighting::Sigma2,
            &mut rng
        ),
        Err(Error::NonFinite { .. })
    ));
    let ok = Array2::<f64>::zeros((3, 2));
    assert!(
        make_batch(
            &sde,
            ok.view(),
            TimeSampling::LogNormal {
                p_mean: 0.0,
                p_std: 0.0
            },
            Parameterization::Noise,
            Weighting::Sigma2,
            &mut rng
        )
        .is_err()
    );
    assert!(
        make_batch(
            &sde,
            ok.view(),
            TimeSampling::Uniform,
            Parameterization::Noise,
            Weighting::Edm { sigma_data: -1.0 },
            &mut rng
        )
        .is_err()
    );
    let b = make_batch(
        &sde,
        ok.view(),
        TimeSampling::Uniform,
        Parameterization::Noise,
        Weighting::Sigma2,
        &mut rng,
    )
    .unwrap();
    assert!(matches!(
        b.loss(Array2::<f64>::zeros((2, 2)).view()),
        Err(Error::ShapeMismatch { .. })
    ));
}
