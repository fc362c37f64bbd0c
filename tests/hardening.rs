//! Regression tests for issue 18 ("No silent NaN, no panic, no abort"): one test per bullet
//! of the "Why" that concerns the oracle, schedules, counts, loaders, getters and
//! newcomers (the sampler-side bullets are in tests/fuzz/regressions.rs, fixed by the
//! sampler driver). Each input here returned NaN/inf in an `Ok`, panicked,
//! aborted or gave a misleading message before the fix; each expected value is a closed form.

use ndarray::{Array1, Array2, Array3, array};
use score_sde::gmm::{AnalyticScore, GaussianMixture, MixtureSpec};
use score_sde::grid::TimeGrid;
use score_sde::likelihood::{Divergence, DivergenceMethod};
use score_sde::prelude::*;
use score_sde::rand::SeedableRng;
use score_sde::score::{NetworkFn, Parameterized};
use score_sde::{Error, ScoreModel};

fn rng() -> score_sde::rand_pcg::Pcg64 {
    score_sde::rand_pcg::Pcg64::seed_from_u64(18)
}

/// Relative closeness with a tolerance (`tol` is stated at each call).
fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1.0)
}

// ------------------------------------------------------------ huge but finite inputs

#[test]
fn huge_inputs_give_the_closed_form_score_and_laplacian_not_nan() {
    // One Gaussian N(0, S), S = [[2, 1], [1, 2]] (a rotated covariance, so the eigenbasis
    // path): score −S⁻¹ x and Laplacian −tr S⁻¹ = −4/3 wherever x is. At x = (1e200, 0),
    // (x − μ)ᵀ S⁻¹ (x − μ) = 6.7e399 overflowed and made every output NaN.
    let s = array![[2.0, 1.0], [1.0, 2.0]];
    let gm = GaussianMixture::gaussian(array![0.0, 0.0], s).unwrap();
    let x = array![[1e200, 0.0], [0.0, -3e250], [1.0, 2.0]];
    let score = gm.score(x.view()).unwrap();
    let lap = gm.hessian_trace(x.view()).unwrap();
    // S⁻¹ = [[2, −1], [−1, 2]] / 3.
    let want = |x0: f64, x1: f64| [-(2.0 * x0 - x1) / 3.0, -(2.0 * x1 - x0) / 3.0];
    for i in 0..3 {
        let w = want(x[[i, 0]], x[[i, 1]]);
        for j in 0..2 {
            // 1e-12: a few rounding steps of the eigen-solve and products.
            assert!(
                close(score[[i, j]], w[j], 1e-12),
                "row {i}: {} vs {}",
                score[[i, j]],
                w[j]
            );
        }
        // 1e-9: the Laplacian of a single Gaussian is −tr S⁻¹ exactly; the bound leaves room
        // for the eigen-solve's rounding, far below the O(1e184) noise of the old kernel.
        assert!(
            close(lap[i], -4.0 / 3.0, 1e-9),
            "row {i}: Laplacian {}",
            lap[i]
        );
    }
    // log p = −½ · 6.7e399 − … is below −f64::MAX: a typed error naming the quantity.
    match gm.log_prob(x.view()) {
        Err(Error::Unrepresentable { what, index, .. }) => {
            assert_eq!((what, index), ("mixture log-density", 0));
        }
        other => panic!("expected Unrepresentable, got {other:?}"),
    }
    // The ordinary row alone still has its finite log-density.
    let lp = gm.log_prob(x.slice(ndarray::s![2..3, ..])).unwrap()[0];
    // log N(x; 0, S) = −log(2π) − ½ log det S − ½ xᵀ S⁻¹ x, det S = 3, xᵀS⁻¹x = (2+8−4)/3 = 2.
    let want = -(2.0 * std::f64::consts::PI).ln() - 0.5 * 3f64.ln() - 1.0;
    assert!((lp - want).abs() < 1e-13);
}

#[test]
fn means_near_1e300_give_the_limiting_responsibilities() {
    // Two unit Gaussians at ±1e300 on the first axis. At x = (5e299, 1) the nearer component
    // has responsibility 1 (the other's exponent is 1e600 lower); score −(x − μ₁) = (5e299, −1),
    // Laplacian −tr I = −2. At x = (0, 1) both are equally near: r = (½, ½), score (0, −1),
    // and the Laplacian Σ r |G − Ḡ|² − 2 = 1e600 − 2 is not representable.
    let gm = GaussianMixture::new(
        array![0.5, 0.5],
        array![[1e300, 0.0], [-1e300, 0.0]],
        Array3::from_shape_fn((2, 2, 2), |(_, i, j)| if i == j { 1.0 } else { 0.0 }),
    )
    .unwrap();
    let x = array![[5e299, 1.0]];
    let s = gm.score(x.view()).unwrap();
    assert!(
        close(s[[0, 0]], 5e299, 1e-15) && close(s[[0, 1]], -1.0, 1e-15),
        "{s}"
    );
    assert!(close(gm.hessian_trace(x.view()).unwrap()[0], -2.0, 1e-12));
    let r = gm.responsibilities(x.view()).unwrap();
    assert_eq!((r[[0, 0]], r[[0, 1]]), (1.0, 0.0));
    let mid = array![[0.0, 1.0]];
    let s = gm.score(mid.view()).unwrap();
    assert!(
        s[[0, 0]].abs() < 1e285 && close(s[[0, 1]], -1.0, 1e-15),
        "{s}"
    );
    assert!(matches!(
        gm.hessian_trace(mid.view()),
        Err(Error::Unrepresentable { .. })
    ));
    assert!(matches!(
        gm.log_prob(mid.view()),
        Err(Error::Unrepresentable { .. })
    ));
}

#[test]
fn analytic_score_and_f32_handle_huge_inputs() {
    // AnalyticScore of N(μ, I) under VP at t = 0.5: p_t = N(α μ, (α² + σ²) I) = N(α μ, I), so
    // the score is −(x − α μ) and the divergence −D, for x = 1e200 as for x = 1.
    let vp = VpLinear::<f64>::default();
    let gm = GaussianMixture::gaussian(array![1.0, -1.0], Array2::eye(2)).unwrap();
    let model = AnalyticScore::new(gm, vp);
    let x = array![[1e200, 2.0], [3.0, -1e250]];
    let mut s = Array2::zeros((2, 2));
    model.score(x.view(), 0.5, s.view_mut()).unwrap();
    let a = vp.alpha(0.5);
    for i in 0..2 {
        // 1e-12: α²λ + σ² = 1 up to rounding of the schedule.
        assert!(close(s[[i, 0]], -(x[[i, 0]] - a), 1e-12));
        assert!(close(s[[i, 1]], -(x[[i, 1]] + a), 1e-12));
    }
    let mut div = Array1::zeros(2);
    model
        .divergence(x.view(), 0.5, div.view_mut())
        .unwrap()
        .unwrap();
    assert!(div.iter().all(|&v| close(v, -2.0, 1e-12)), "{div}");
    let mut lp = Array1::zeros(2);
    assert!(matches!(
        model.log_prob(x.view(), 0.5, lp.view_mut()),
        Err(Error::Unrepresentable { index: 0, .. })
    ));
    // f32: |x|² overflows f32 at x = 1e20; the score −x and Laplacian −2 are fine.
    let g32 = GaussianMixture::<f32>::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
    let x32 = array![[1e20_f32, -3e25]];
    let s32 = g32.score(x32.view()).unwrap();
    assert_eq!(s32, array![[-1e20_f32, 3e25]]);
    assert_eq!(g32.hessian_trace(x32.view()).unwrap()[0], -2.0);
}

#[test]
fn laplacian_far_from_the_components_is_not_rounding_noise() {
    // Σ r |G|² − |s|² cancels far out: at x = 1e12 both terms are ~1e24 and their f64
    // difference is noise of size ~1e8, while the Laplacian of N(0, I₂) is exactly −2.
    let gm = GaussianMixture::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
    let x = array![[1e12, 3e11], [-7e13, 1.0]];
    let lap = gm.hessian_trace(x.view()).unwrap();
    // 1e-12: relative rounding of a handful of operations on O(1) numbers.
    assert!(lap.iter().all(|&v| close(v, -2.0, 1e-12)), "{lap}");
}

// ------------------------------------------------------------ covariances

fn one_cov(c: Array2<f64>) -> Array3<f64> {
    let d = c.nrows();
    c.into_shape_with_order((1, d, d)).unwrap()
}

#[test]
fn symmetrisation_does_not_overflow() {
    // (S + Sᵀ)/2 overflowed to inf for entries ≥ ~9e307 and the Cholesky check accepted it.
    let big = 1.7e308;
    let s = array![[big, 0.0], [0.0, 1.0]];
    let gm = GaussianMixture::new(array![1.0], array![[0.0, 0.0]], one_cov(s)).unwrap();
    assert_eq!(gm.covs()[[0, 0, 0]], big);
    assert!(gm.covs().iter().all(|v| v.is_finite()));
    // The posterior and the inverse problem validate their noise covariance the same way.
    let prior = GaussianMixture::gaussian(array![0.0], array![[1.0]]).unwrap();
    let post = prior
        .posterior(
            array![[1.0]].view(),
            array![0.0].view(),
            array![[big]].view(),
        )
        .unwrap();
    // Noise variance 1.7e308 ≫ prior variance 1: the posterior is the prior to ~1e-308.
    assert!((post.covs()[[0, 0, 0]] - 1.0).abs() < 1e-12);
    let lg = score_sde::condition::LinearGaussian::new(array![[1.0]], array![[big]]).unwrap();
    assert!(lg.noise_cov()[[0, 0]] == big);
}

#[test]
fn symmetry_tolerance_is_absolute_plus_relative_not_relative_to_the_largest_entry() {
    // An off-diagonal pair −0 vs −56.7 beside a diagonal of f64::MAX passed a tolerance
    // relative to the largest entry; the traces of such a matrix overflow, so it is refused.
    let m = f64::MAX;
    let s = array![[m, -0.0], [-56.7, m]];
    let e = GaussianMixture::new(array![1.0], array![[0.0, 0.0]], one_cov(s)).unwrap_err();
    assert!(
        matches!(e, Error::NotPositiveDefinite { component: 0, .. }),
        "{e}"
    );
    // At unit scale the same pair is asymmetric by 56.7 correlation units: refused as such.
    let s = array![[100.0, -0.0], [-56.7, 100.0]];
    match GaussianMixture::new(array![1.0], array![[0.0, 0.0]], one_cov(s)) {
        Err(Error::NotPositiveDefinite { reason, .. }) => {
            assert!(reason.contains("not symmetric"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    // A pair tiny against its own diagonals is symmetric whatever other coordinates hold:
    // diag(1e300, 1) with off-diagonals (1e-20, 0) is symmetric to 1e-170 correlation units.
    let s = array![[1e300, 1e-20], [0.0, 1.0]];
    assert!(GaussianMixture::new(array![1.0], array![[0.0, 0.0]], one_cov(s)).is_ok());
    // The noise covariances of the posterior and of LinearGaussian use the same test.
    let bad = array![[1.0, 0.0], [1e-6, 1.0]];
    assert!(score_sde::condition::LinearGaussian::new(Array2::<f64>::eye(2), bad.clone()).is_err());
    let prior = GaussianMixture::gaussian(array![0.0, 0.0], Array2::eye(2)).unwrap();
    assert!(
        prior
            .posterior(Array2::eye(2).view(), array![0.0, 0.0].view(), bad.view())
            .is_err()
    );
}

#[test]
fn subnormal_and_overflowing_eigenvalues_are_refused() {
    // λ = 1e-310 is subnormal: 1/λ overflows when the density is evaluated.
    for lam in [1e-310, 5e-324] {
        let e = GaussianMixture::gaussian(array![0.0], array![[lam]]).unwrap_err();
        assert!(matches!(e, Error::NotPositiveDefinite { .. }), "{lam}: {e}");
    }
    // Five eigenvalues of 2.3e-308: each normal, but tr S⁻¹ = 2.2e308 overflows (the Laplacian).
    let e =
        GaussianMixture::<f64>::gaussian(Array1::zeros(5), Array2::eye(5) * 2.3e-308).unwrap_err();
    assert!(e.to_string().contains("trace of the inverse"), "{e}");
    // f32: 1e-40 is subnormal in f32 (normal in f64).
    assert!(GaussianMixture::<f32>::gaussian(array![0.0], array![[1e-40]]).is_err());
    // A rotated matrix with entries near 1e-200 (Jacobi on the unscaled entries stopped at
    // once: its convergence test squared them to 0) has eigenvalues 3e-200 and 1e-200.
    let s = array![[2e-200, 1e-200], [1e-200, 2e-200]];
    let gm = GaussianMixture::gaussian(array![0.0, 0.0], s).unwrap();
    let lap = gm.hessian_trace(array![[0.0, 0.0]].view()).unwrap()[0];
    // −tr S⁻¹ = −(1/3e-200 + 1/1e-200); 1e-12 for the eigen-solve's rounding.
    assert!(close(lap, -(1.0 / 3e-200 + 1.0 / 1e-200), 1e-12), "{lap}");
}

// ------------------------------------------------------------ conditioning far out

#[test]
fn conditioning_on_a_huge_value_gives_the_limiting_mixture() {
    // Observing coordinate 0 = 1e200 of ½ N((0,0), I) + ½ N((10,0), I): the second mean is
    // nearer, so it takes all the weight (ratio e^{−10·1e200}); coordinate 1 is N(0, 1) in
    // both. The log-weights −½ (1e200)² overflowed and the error read "weights sum to 0.000…"
    // with 415 characters.
    let gm = GaussianMixture::new(
        array![0.5, 0.5],
        array![[0.0, 0.0], [10.0, 0.0]],
        Array3::from_shape_fn((2, 2, 2), |(_, i, j)| if i == j { 1.0 } else { 0.0 }),
    )
    .unwrap();
    let (cond, free) = gm.condition(&[0], array![1e200].view()).unwrap();
    assert_eq!(free, vec![1]);
    // (The underflowing weight is kept at the smallest normal float, see `condition`.)
    assert!(
        cond.weights()[1] == 1.0 && cond.weights()[0] < 1e-300,
        "{}",
        cond.weights()
    );
    // Correlated coordinates: S = [[1, ρ], [ρ, 1]], conditional mean ρ v, variance 1 − ρ².
    let rho = 0.5;
    let gm = GaussianMixture::gaussian(array![0.0, 0.0], array![[1.0, rho], [rho, 1.0]]).unwrap();
    let (cond, _) = gm.condition(&[0], array![1e200].view()).unwrap();
    assert!(close(cond.means()[[0, 0]], rho * 1e200, 1e-15));
    assert!(close(cond.covs()[[0, 0, 0]], 1.0 - rho * rho, 1e-15));
    // Beyond the float range the error says so, briefly.
    let gm =
        GaussianMixture::gaussian(array![0.0, 0.0], array![[1e-300, 0.0], [0.0, 1.0]]).unwrap();
    let gm2 = GaussianMixture::gaussian(
        array![0.0, 0.0],
        array![[1e-300, 0.9e-150], [0.9e-150, 1.0]],
    )
    .unwrap();
    assert!(gm.condition(&[0], array![1e300].view()).is_ok());
    let e = gm2.condition(&[0], array![1e300].view()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unrepresentable {
                what: "conditional mean",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().len() < 300,
        "{} characters: {e}",
        e.to_string().len()
    );
}

#[test]
fn posterior_of_a_huge_observation_gives_the_limiting_weights() {
    // y = x + n, n ~ N(0, 1), prior ½ N(0, 1) + ½ N(10, 1), y = 1e200: the second component
    // explains y better; its posterior is N((10 + y)/2, ½) (precisions add).
    let prior = GaussianMixture::new(
        array![0.5, 0.5],
        array![[0.0], [10.0]],
        Array3::ones((2, 1, 1)),
    )
    .unwrap();
    let post = prior
        .posterior(
            array![[1.0]].view(),
            array![1e200].view(),
            array![[1.0]].view(),
        )
        .unwrap();
    assert!(
        post.weights()[1] == 1.0 && post.weights()[0] < 1e-300,
        "{}",
        post.weights()
    );
    assert!(close(post.means()[[1, 0]], 0.5e200, 1e-15));
    assert!(close(post.covs()[[1, 0, 0]], 0.5, 1e-15));
}

// ------------------------------------------------------------ schedules

#[test]
fn schedule_ranges_that_over_or_underflow_are_refused() {
    use Error::InvalidParameter as P;
    // σ(T)² = 1e600 overflows (and σ(t_min)² ≈ 1e-600 underflows): σ(t) was inf.
    assert!(matches!(Ve::new(1e-300, 1e300), Err(P { .. })));
    assert!(matches!(
        Ve::new(0.01, 1e300),
        Err(P {
            name: "sigma_max",
            ..
        })
    ));
    assert!(matches!(
        Ve::new(1e-200, 50.0),
        Err(P {
            name: "sigma_min",
            ..
        })
    ));
    assert!(matches!(
        Edm::new(1e-170, 80.0),
        Err(P {
            name: "sigma_min",
            ..
        })
    ));
    // `with_t_range` far beyond T: log α(100) = −¼·10⁴·19.9 − 5 ≈ −49 755, α = 0, and a run
    // stopped with a Diverged error at step 1 that did not name the cause.
    let e = VpLinear::<f64>::default()
        .with_t_range(1e-3, 100.0)
        .unwrap_err();
    assert!(matches!(e, P { name: "t_max", .. }), "{e}");
    assert!(e.to_string().contains("α(T)"), "{e}");
    assert!(SubVp::<f64>::default().with_t_range(1e-3, 100.0).is_err());
    assert!(Ve::<f64>::default().with_t_range(1e-5, 1e6).is_err());
    // A β table whose ᾱ underflows: 2000 steps of β = 0.999 give log ᾱ = 2000 ln 0.001.
    assert!(DiscreteVp::<f64>::from_betas(&[0.999; 2000]).is_err());
    // The edges that stay representable are accepted: α(20) of VP = e^{−1990.5·…} is not,
    // α(10) = e^{−498} is.
    assert!(VpLinear::<f64>::default().with_t_range(1e-3, 10.0).is_ok());
    // f32 has a narrower range: σ_max = 1e20 squares to 1e40 > f32::MAX.
    assert!(Ve::<f32>::new(0.01, 1e20).is_err());
}

#[test]
fn user_counts_are_checked_not_overflowed() {
    let vp = VpLinear::<f64>::default();
    for n in [usize::MAX, usize::MAX / 2, 1 << 50] {
        // TimeGrid: n + 1 overflowed (capacity overflow panic), or the allocation aborted.
        for r in [
            TimeGrid::uniform(&vp, n),
            TimeGrid::quadratic(&vp, n),
            TimeGrid::log_snr(&vp, n),
        ] {
            assert!(matches!(r, Err(Error::TooLarge { .. })), "{n}: {r:?}");
        }
        let r = DiscreteVp::<f64>::ddpm_linear(n, 1e-4, 0.02);
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{n}");
        let r = Divergence::<f64>::new(DivergenceMethod::hutchinson(n), 4, 2, &mut rng());
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{n}");
        let r = Divergence::<f64>::new(DivergenceMethod::FiniteDifference, n, 3, &mut rng());
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{n}");
        let ring = problems::ring2d::<f64>();
        assert!(matches!(
            ring.sample(n, &mut rng()),
            Err(Error::TooLarge { .. })
        ));
        assert!(matches!(
            score_sde::metrics::random_directions(n, 3, 0),
            Err(Error::TooLarge { .. })
        ));
    }
    // A batch of 1e12 × 2 (16 TB) is refused before allocating, as is one that needs more
    // than half the memory available (1e9 × 2 f64 = 16 GB on a 24 GB machine; on a larger
    // machine it would be drawn — the test then only checks that it is not refused with a
    // wrong error, so it uses the 16 TB case).
    let ring = problems::ring2d::<f64>();
    assert!(matches!(
        ring.sample(1_000_000_000_000, &mut rng()),
        Err(Error::TooLarge {
            what: "sample batch",
            ..
        })
    ));
}

/// Counts of the solver framework's new entry points (merged from main): diffusers'
/// timesteps (`n + 1` linspace points, `(n − 1 − i)·ratio + steps_offset`) and a run's
/// split into shards (one `RunSpec` per part) — checked or computed without overflow, and
/// `part` computes its shard without building the other `parts − 1`.
#[test]
fn timestep_and_shard_counts_are_checked_not_overflowed() {
    use score_sde::grid::{DiffusersFamily, DiffusersTimesteps, TimestepSpacing};
    use score_sde::sample::RunSpec;
    // steps = N = usize::MAX: n + 1 overflowed (a panic in debug builds).
    let r = DiffusersTimesteps::new(DiffusersFamily::Multistep, usize::MAX)
        .num_train_timesteps(usize::MAX)
        .timesteps();
    assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
    // An offset near usize::MAX overflowed the leading spacing's sum.
    let r = DiffusersTimesteps::new(DiffusersFamily::Ddim, 10)
        .spacing(TimestepSpacing::Leading)
        .steps_offset(usize::MAX)
        .timesteps();
    assert!(
        matches!(
            r,
            Err(Error::InvalidParameter {
                name: "steps_offset",
                ..
            })
        ),
        "{r:?}"
    );
    // Within range: leading, N = 1000, 10 steps, offset 1: 901, 801, …, 1.
    let ts = DiffusersTimesteps::new(DiffusersFamily::Ddim, 10)
        .spacing(TimestepSpacing::Leading)
        .steps_offset(1)
        .timesteps()
        .unwrap();
    assert_eq!(
        ts,
        (0..10)
            .rev()
            .map(|i| (100 * i + 1) as f64)
            .collect::<Vec<_>>()
    );
    // 10¹² parts of a run of 10¹²: split is refused before allocating (40 TB of specs);
    // part(i, parts) is the closed form rows i·q + min(i, r) .. + q + [i < r].
    let spec = RunSpec::new(7, 1_000_000_000_000).unwrap();
    let r = spec.split(1_000_000_000_000);
    assert!(
        matches!(r, Err(Error::TooLarge { .. })),
        "{:?}",
        r.map(|v| v.len())
    );
    let p = spec.part(999_999_999_999, 1_000_000_000_000).unwrap();
    assert_eq!(p.rows, 999_999_999_999..1_000_000_000_000);
    let p = RunSpec::new(7, 10).unwrap().part(2, 4).unwrap();
    assert_eq!(p.rows, 6..8); // sizes 3, 3, 2, 2
    assert!(RunSpec::new(7, 10).unwrap().part(4, 4).is_err());
}

#[test]
fn mixture_specs_are_shape_checked_before_allocating() {
    // A long first mean with short covariance lists: K × D × D would be allocated first.
    let d = 1 << 22; // (D² = 2^44 elements, 128 TiB)
    let spec = MixtureSpec {
        weights: vec![1.0],
        means: vec![vec![0.0; d]],
        covs: vec![vec![vec![1.0]]],
    };
    assert!(matches!(
        spec.build::<f64>(),
        Err(Error::ShapeMismatch { .. })
    ));
}

// ------------------------------------------------------------ getters

#[test]
fn parameterized_noise_model_at_t_zero_is_an_error_not_infinity() {
    // σ(0) = 0 for VP: the ε → score conversion −ε/σ gave ±inf silently.
    let vp = VpLinear::<f64>::default();
    let net = NetworkFn::new(
        |x: ndarray::ArrayView2<f64>, _t: f64, mut out: ndarray::ArrayViewMut2<f64>| {
            out.assign(&x);
            Ok(())
        },
    );
    for kind in [
        Parameterization::Noise,
        Parameterization::Data,
        Parameterization::Velocity,
    ] {
        let model = Parameterized::new(net.clone(), vp, kind);
        let mut out = Array2::zeros((1, 2));
        let r = model.score(array![[1.0, 2.0]].view(), 0.0, out.view_mut());
        assert!(
            matches!(
                r,
                Err(Error::InvalidParameter {
                    name: "sigma(t)",
                    ..
                })
            ),
            "{kind:?}: {r:?}"
        );
        // Negative and NaN times are out of range (before any schedule getter is called).
        for t in [-1.0, f64::NAN, 2.0] {
            let r = model.score(array![[1.0, 2.0]].view(), t, out.view_mut());
            assert!(matches!(r, Err(Error::TimeOutOfRange { .. })), "{t}: {r:?}");
        }
        // At t_min the conversion is fine and finite.
        model
            .score(array![[1.0, 2.0]].view(), 1e-3, out.view_mut())
            .unwrap();
        assert!(out.iter().all(|v| v.is_finite()));
    }
    // The score parameterisation needs no σ: t = 0 is fine.
    let model = Parameterized::new(net, vp, Parameterization::Score);
    let mut out = Array2::zeros((1, 2));
    model
        .score(array![[1.0, 2.0]].view(), 0.0, out.view_mut())
        .unwrap();
    assert_eq!(out, array![[1.0, 2.0]]);
}

#[test]
fn sliced_w1_rejects_nan_samples() {
    let dirs = score_sde::metrics::random_directions(4, 2, 0).unwrap();
    let a = array![[0.0, 1.0], [f64::NAN, 2.0]];
    let b = array![[0.0, 1.0], [1.0, 2.0]];
    let r = score_sde::metrics::sliced_w1(a.view(), b.view(), dirs.view());
    assert!(matches!(r, Err(Error::NonFinite { index: 2, .. })), "{r:?}");
}

#[test]
fn schedule_times_are_checked_by_check_t_and_asserted_in_debug_builds() {
    let vp = VpLinear::<f64>::default();
    for t in [-1.0, f64::NAN, f64::INFINITY, -1e-300] {
        assert!(
            matches!(vp.check_t(t), Err(Error::TimeOutOfRange { .. })),
            "{t}"
        );
    }
    // The getters themselves are plain functions (see the Schedule docs); debug builds stop
    // at an out-of-domain time instead of returning NaN.
    if cfg!(debug_assertions) {
        for t in [-1.0, f64::NAN] {
            let r = std::panic::catch_unwind(|| VpLinear::<f64>::default().alpha(t));
            assert!(r.is_err(), "alpha({t}) did not assert");
        }
    }
}

// ------------------------------------------------------------ loaders

#[cfg(feature = "npy")]
mod npy {
    use score_sde::Error;
    use score_sde::backend::npy::{from_npy_bytes, load_npy};

    fn npy(descr: &str, shape: &str, payload: &[u8]) -> Vec<u8> {
        let header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n");
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn a_header_claiming_more_than_the_payload_is_an_error_not_an_abort() {
        // (1e12, 2) f64 over 16 bytes: "memory allocation of 16000000000000 bytes failed".
        let bytes = npy("<f8", "(1000000000000, 2)", &[0u8; 16]);
        let path = std::env::temp_dir().join(format!("score_sde_h18_{}.npy", std::process::id()));
        std::fs::write(&path, &bytes).unwrap();
        let e = load_npy::<f64>(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert!(matches!(e, Error::Io(ref m) if m.contains("needs")), "{e}");
        // A shape whose byte count overflows usize, and a short payload.
        assert!(from_npy_bytes::<f64>(&npy("<f8", "(18446744073709551615, 3)", &[])).is_err());
        assert!(from_npy_bytes::<f64>(&npy("<f8", "(2, 2)", &[0u8; 31])).is_err());
    }

    #[test]
    fn float64_beyond_f32_read_as_f32_is_an_error_not_infinity() {
        let bytes = npy(
            "<f8",
            "(2,)",
            &[1.0f64.to_le_bytes(), 1e300f64.to_le_bytes()].concat(),
        );
        match from_npy_bytes::<f32>(&bytes) {
            Err(Error::Unrepresentable { index: 1, .. }) => {}
            other => panic!("{other:?}"),
        }
        // In f64 the same file is fine, and f32 values in range are read exactly.
        assert_eq!(from_npy_bytes::<f64>(&bytes).unwrap()[[1, 0]], 1e300);
        let nan = npy("<f4", "(1, 1)", &f32::NAN.to_le_bytes());
        assert!(matches!(
            from_npy_bytes::<f64>(&nan),
            Err(Error::NonFinite { .. })
        ));
    }
}
