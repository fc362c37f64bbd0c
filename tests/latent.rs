//! Latent editing against closed forms: spherical interpolation's geometry, and temperature
//! rescaling through the probability-flow ODE of a Gaussian (a linear map per eigen-direction).

mod common;
use approx::assert_abs_diff_eq;
use common::rng;
use ndarray::{Array1, Array2, Axis, array};
use score_sde::latent::{interpolate, slerp, temperature};
use score_sde::metrics::sample_covariance;
use score_sde::prelude::*;
use score_sde::sample::{Dopri5, ProbabilityFlow};

#[test]
fn slerp_keeps_the_norm_and_moves_at_constant_angular_speed() {
    let mut r = rng(1);
    let z0 = Array1::from_shape_fn(16, |_| <f64 as Real>::standard_normal(&mut r));
    let z1 = Array1::from_shape_fn(16, |_| <f64 as Real>::standard_normal(&mut r));
    // Equal norms: rescale z1 to ‖z0‖.
    let z1 = &z1 * (z0.dot(&z0).sqrt() / z1.dot(&z1).sqrt());
    let n0 = z0.dot(&z0).sqrt();
    let theta = (z0.dot(&z1) / (n0 * n0)).acos();
    for lambda in [0.0, 0.1, 0.37, 0.5, 0.9, 1.0] {
        let z = slerp(z0.view(), z1.view(), lambda).unwrap();
        let nz = z.dot(&z).sqrt();
        assert_abs_diff_eq!(nz, n0, epsilon = 1e-12);
        // The angle to z₀ is λθ and to z₁ is (1 − λ)θ.
        let a0 = (z.dot(&z0) / (nz * n0)).clamp(-1.0, 1.0).acos();
        let a1 = (z.dot(&z1) / (nz * n0)).clamp(-1.0, 1.0).acos();
        assert_abs_diff_eq!(a0, lambda * theta, epsilon = 1e-7);
        assert_abs_diff_eq!(a1, (1.0 - lambda) * theta, epsilon = 1e-7);
    }
    assert_abs_diff_eq!(
        slerp(z0.view(), z1.view(), 0.0).unwrap(),
        z0,
        epsilon = 1e-12
    );
    assert_abs_diff_eq!(
        slerp(z0.view(), z1.view(), 1.0).unwrap(),
        z1,
        epsilon = 1e-12
    );
    // A linear interpolation would shrink the midpoint's norm by cos(θ/2).
    let lin = (&z0 + &z1) * 0.5;
    assert!((lin.dot(&lin).sqrt() - n0 * (theta / 2.0).cos()).abs() < 1e-12);
    // Parallel latents fall back to linear interpolation (no 0/0).
    let p = slerp(z0.view(), (&z0 * 2.0).view(), 0.5).unwrap();
    assert_abs_diff_eq!(p, &z0 * 1.5, epsilon = 1e-12);
    let path = interpolate(z0.view(), z1.view(), 7).unwrap();
    assert_eq!(path.dim(), (7, 16));
    // Bad input.
    assert!(slerp(z0.view(), Array1::zeros(16).view(), 0.5).is_err());
    assert!(slerp(z0.view(), Array1::ones(3).view(), 0.5).is_err());
    assert!(interpolate(z0.view(), z1.view(), 1).is_err());
    assert!(temperature(path.view(), f64::NAN).is_err());
}

#[test]
fn temperature_rescaling_scales_the_decoded_gaussian_by_tau() {
    // Data N(μ, S): the PF-ODE from T to t_min maps x ↦ α_min μ + M (x − α_T μ) with
    // M = U diag(√((α_min² λ + σ_min²)/(α_T² λ + σ_T²))) Uᵀ, so latents z ~ N(0, τ² I) decode
    // to covariance τ² M² (and mean α_min μ − α_T M μ). 4 000 latents: entries within 4 SE.
    let sde = VpSde::<f64>::default();
    let vp = *sde.schedule();
    let cov = array![[1.0, 0.6], [0.6, 0.5]];
    let mu = array![0.5, -0.5];
    let gm = GaussianMixture::gaussian(mu.clone(), cov.clone()).unwrap();
    let model = AnalyticScore::new(gm, vp);
    let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-7, 1e-7).unwrap());
    let (t_min, t_max) = vp.t_range();
    // M² = (α_min² S + σ_min² I)(α_T² S + σ_T² I)⁻¹ (the two commute).
    let v = |t: f64| &cov * vp.alpha(t).powi(2) + &(Array2::<f64>::eye(2) * vp.sigma(t).powi(2));
    let (vm, vt) = (v(t_min), v(t_max));
    let det = vt[[0, 0]] * vt[[1, 1]] - vt[[0, 1]] * vt[[1, 0]];
    let vt_inv = array![[vt[[1, 1]], -vt[[0, 1]]], [-vt[[1, 0]], vt[[0, 0]]]] / det;
    let m2 = vm.dot(&vt_inv);
    let n = 4000;
    let z = sde.sample_prior(n, 2, &mut rng(2)).unwrap();
    for tau in [1.0, 0.5] {
        let (x, _) = pf
            .decode(&model, temperature(z.view(), tau).unwrap())
            .unwrap();
        let c = sample_covariance(x.view()).unwrap();
        let want = &m2 * (tau * tau);
        for i in 0..2 {
            for j in 0..2 {
                let se = ((want[[i, i]] * want[[j, j]] + want[[i, j]].powi(2)) / n as f64).sqrt();
                assert!(
                    (c[[i, j]] - want[[i, j]]).abs() < 4.0 * se,
                    "τ = {tau}: {c} vs {want}"
                );
            }
        }
    }
    // Linearity of the flow (an affine map): decode(τ z) − c = τ (decode(z) − c) with
    // c = decode(0), to the solver's tolerance (1e-7 → 1e-5 after the map's gain).
    let few = z.slice(ndarray::s![..20, ..]).to_owned();
    let (d1, _) = pf.decode(&model, few.clone()).unwrap();
    let (dh, _) = pf
        .decode(&model, temperature(few.view(), 0.5).unwrap())
        .unwrap();
    let (d0, _) = pf.decode(&model, Array2::zeros((1, 2))).unwrap();
    let c0 = d0.row(0).to_owned();
    assert_abs_diff_eq!(&dh - &c0, (&d1 - &c0) * 0.5, epsilon = 1e-5);
    let _ = mu;
}

#[test]
fn interpolating_two_ring_samples_stays_on_the_ring() {
    // Latents of two samples on different components, slerped and decoded: the endpoints
    // come back (round trip at rtol 1e-7), and every interpolant is a plausible ring point:
    // radius within 4 ± 1 (component sd 0.3, so over 3 sd).
    let sde = VpSde::<f64>::default();
    let ring = problems::ring2d::<f64>();
    let model = AnalyticScore::new(ring.clone(), *sde.schedule());
    let pf = ProbabilityFlow::adaptive(sde, Dopri5::new(1e-7, 1e-7).unwrap());
    let (a, b) = (array![3.9, 0.2], array![-2.7, 2.9]);
    let (z, x) = pf.interpolate(&model, a.view(), b.view(), 9).unwrap();
    assert_abs_diff_eq!(x.row(0), a.view(), epsilon = 1e-4);
    assert_abs_diff_eq!(x.row(8), b.view(), epsilon = 1e-4);
    let nz: Vec<f64> = z.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    let radius: Vec<f64> = x.rows().into_iter().map(|r| r.dot(&r).sqrt()).collect();
    println!("latent norms {nz:.3?}\ndecoded radii {radius:.3?}");
    assert!(radius.iter().all(|r| (r - 4.0).abs() < 1.0), "{radius:?}");
    let _ = Axis(0);
}

#[test]
fn extreme_latents_give_the_angle_or_an_error_never_a_non_finite_ok() {
    use score_sde::Error;
    use score_sde::latent::{slerp, temperature};
    // Scaled copies of the quarter circle: the same angle, so the same weights — the
    // half-way point is (z₀ + z₁)/√2 whatever the magnitude (squares of 1e200 overflow and
    // of 1e-200 underflow if formed directly).
    for scale in [1e-200_f64, 1.0, 1e200] {
        let (a, b) = (ndarray::array![scale, 0.0], ndarray::array![0.0, scale]);
        let m = slerp(a.view(), b.view(), 0.5).unwrap();
        let want = scale * 0.5f64.sqrt();
        assert!(((m[0] - want) / want).abs() < 1e-14, "scale {scale}: {m}");
        assert!(((m[1] - want) / want).abs() < 1e-14, "scale {scale}: {m}");
    }
    // Opposite latents near f64::MAX extrapolated beyond the end: the result leaves the range.
    let big = ndarray::array![f64::MAX / 2.0, 1.0];
    let e = slerp(big.view(), big.view(), 3.0).unwrap_err();
    assert!(matches!(e, Error::Unrepresentable { .. }), "{e}");
    let e = temperature(ndarray::array![[f64::MAX / 2.0]].view(), 4.0).unwrap_err();
    assert!(matches!(e, Error::Unrepresentable { .. }), "{e}");
}
