//! General linear inverse problems `y = A x₀ + n` with any score model: the paper's
//! projection sampler (Song et al. 2021, App. I.4), DPS (Chung et al. 2023) and ΠGDM (Song
//! et al. 2023), against the exact mixture posterior (`GaussianMixture::posterior`) on a 2-D
//! and a 16-D problem. docs/conditioning.md has the measured table
//! (`cargo test --release --test inverse_problems measure_ -- --ignored --nocapture`).

mod common;
use approx::assert_abs_diff_eq;
use common::rng;
use ndarray::{Array1, Array2, Axis, array};
use score_sde::condition::{
    ExactLikelihood, Guided, JacobianMode, LinearGaussian, ObservationConstraint, TweedieLikelihood,
};
use score_sde::metrics::{sample_covariance, weight_tv};
use score_sde::observe::Observer;
use score_sde::prelude::*;
use score_sde::sample::{Ddim, Dopri5, DpmSolverPp, Pc, PredictorKind, ProbabilityFlow};

/// An inverse problem: prior, observation, `y`, and the exact posterior.
struct Problem {
    name: &'static str,
    prior: GaussianMixture<f64>,
    obs: LinearGaussian<f64>,
    y: Array1<f64>,
    post: GaussianMixture<f64>,
}

/// ring2d observed through one unit direction with noise sd 0.3: the posterior keeps the
/// components the line `0.6 x + 0.8 y = y_obs` crosses, with unequal weights.
fn ring_problem() -> Problem {
    let prior = problems::ring2d::<f64>();
    let obs = LinearGaussian::new(array![[0.6, 0.8]], array![[0.09]]).unwrap();
    let y = array![2.0];
    let post = obs.posterior(&prior, y.view()).unwrap();
    Problem {
        name: "ring2d",
        prior,
        obs,
        y,
        post,
    }
}

/// rand16d observed through 4 random projections (entries N(0, 1/16)) with noise sd 0.2, at
/// an observation drawn from the model (a component and noise).
fn r16_problem() -> Problem {
    let prior = problems::rand16d::<f64>();
    let mut r = rng(5);
    let a = Array2::from_shape_fn((4, 16), |_| 0.25 * <f64 as Real>::standard_normal(&mut r));
    let obs = LinearGaussian::new(a, Array2::eye(4) * 0.04).unwrap();
    let x = prior.sample(1, &mut r).unwrap();
    let y = obs.observe(x.row(0), &mut r).unwrap();
    let post = obs.posterior(&prior, y.view()).unwrap();
    Problem {
        name: "rand16d",
        prior,
        obs,
        y,
        post,
    }
}

/// Mean error, relative covariance error (Frobenius) and component-weight TV of samples
/// against the exact posterior.
fn errors(x: &Array2<f64>, post: &GaussianMixture<f64>) -> (f64, f64, f64) {
    let m = x.mean_axis(Axis(0)).unwrap();
    let me = (&m - &post.mean()).mapv(|v| v * v).sum().sqrt();
    let c = sample_covariance(x.view()).unwrap();
    let pc = post.covariance();
    let ce = (&c - &pc).mapv(|v| v * v).sum().sqrt() / pc.mapv(|v| v * v).sum().sqrt();
    (me, ce, weight_tv(x.view(), post).unwrap())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Method {
    Exact,
    Projection,
    Dps,
    Pigdm,
    PigdmIdentity,
}

/// Sample the posterior of `p` with `method` and the reverse-SDE Euler–Maruyama sampler
/// (`Pc`, VP) on `steps` uniform steps; returns the samples and the unconditional-model
/// evaluations per sample path (NFE).
fn sample(p: &Problem, method: Method, steps: usize, n: usize, seed: u64) -> (Array2<f64>, usize) {
    let sde = VpSde::<f64>::default();
    let vp = *sde.schedule();
    let model = AnalyticScore::new(p.prior.clone(), vp);
    let grid = TimeGrid::uniform(&vp, steps).unwrap();
    let pc = Pc::new(sde.clone(), grid)
        .unwrap()
        .predictor(PredictorKind::EulerMaruyama)
        .unwrap();
    let d = p.prior.dim();
    let x0 = pc.initial_state(n, d, &mut rng(seed)).unwrap();
    let guided = |l, calls| -> (Array2<f64>, usize) {
        let g = Guided::new(&model, l, 1.0).unwrap();
        assert_eq!(g.model_calls(), calls);
        let run = pc.run(&g, x0.clone(), &mut rng(seed + 1)).unwrap();
        (run.samples, run.nfe * calls)
    };
    match method {
        Method::Exact => {
            let l = ExactLikelihood::new(&p.prior, &p.obs, p.y.view(), vp).unwrap();
            let g = Guided::new(&model, l, 1.0).unwrap();
            let run = pc.run(&g, x0, &mut rng(seed + 1)).unwrap();
            (run.samples, run.nfe)
        }
        Method::Projection => {
            let mut c = ObservationConstraint::new(vp, &p.obs, p.y.view(), seed + 2).unwrap();
            let run = pc.run_with(&model, x0, &mut rng(seed + 1), &mut c).unwrap();
            (run.samples, run.nfe)
        }
        Method::Dps => guided(
            TweedieLikelihood::dps(p.obs.clone(), p.y.view(), vp).unwrap(),
            3,
        ),
        Method::Pigdm => guided(
            TweedieLikelihood::pigdm(p.obs.clone(), p.y.view(), vp).unwrap(),
            3,
        ),
        Method::PigdmIdentity => guided(
            TweedieLikelihood::pigdm(p.obs.clone(), p.y.view(), vp)
                .unwrap()
                .jacobian(JacobianMode::Identity),
            1,
        ),
    }
}

// ---------------------------------------------------------------- closed-form checks

#[test]
fn pigdm_is_exact_for_isotropic_gaussian_data_and_dps_is_its_r0_case() {
    // Data N(μ, I) under VP: p(x₀ | x_t) = N(x̂₀, σ²/(α² + σ²) I) exactly, so ΠGDM's
    // N(y; A x̂₀, r² A Aᵀ + Σ_n) is the exact p_t(y | x_t): the guided score equals the exact
    // posterior's score at every t (to the finite-difference Jacobian's ~1e-8). DPS is the
    // same formula with r = 0, which we rebuild by hand.
    let vp = VpLinear::<f64>::default();
    let prior = GaussianMixture::gaussian(array![1.0, -1.0, 0.5], Array2::eye(3)).unwrap();
    let obs = LinearGaussian::new(
        array![[1.0, 0.5, 0.0], [0.0, 1.0, -1.0]],
        array![[0.2, 0.05], [0.05, 0.1]],
    )
    .unwrap();
    let y = array![0.7, -0.3];
    let model = AnalyticScore::new(prior.clone(), vp);
    let post = AnalyticScore::new(obs.posterior(&prior, y.view()).unwrap(), vp);
    let x = prior
        .diffuse(&vp, 0.5)
        .unwrap()
        .sample(16, &mut rng(1))
        .unwrap();
    let a = obs.matrix().to_owned();
    let sn_inv = inv2(&obs.noise_cov().to_owned());
    for t in [0.01, 0.2, 0.5, 0.9] {
        let (al, sg) = (vp.alpha(t), vp.sigma(t));
        let pig = Guided::new(
            &model,
            TweedieLikelihood::pigdm(obs.clone(), y.view(), vp).unwrap(),
            1.0,
        )
        .unwrap();
        let mut got = Array2::zeros((16, 3));
        pig.score(x.view(), t, got.view_mut()).unwrap();
        let mut want = Array2::zeros((16, 3));
        post.score(x.view(), t, want.view_mut()).unwrap();
        assert_abs_diff_eq!(got, want, epsilon = 1e-6);
        // DPS: s + J Aᵀ Σ_n⁻¹ (y − A x̂₀), J = α/(α² + σ²) I for this prior.
        let dps = Guided::new(
            &model,
            TweedieLikelihood::dps(obs.clone(), y.view(), vp).unwrap(),
            1.0,
        )
        .unwrap();
        dps.score(x.view(), t, got.view_mut()).unwrap();
        let mut s = Array2::zeros((16, 3));
        model.score(x.view(), t, s.view_mut()).unwrap();
        let x0 = (&x + &(&s * (sg * sg))) / al;
        let resid = &y - &x0.dot(&a.t()); // rows: y − A x̂₀
        let g = resid.dot(&sn_inv).dot(&a) * (al / (al * al + sg * sg));
        assert_abs_diff_eq!(got, &s + &g, epsilon = 1e-6);
        // The Identity Jacobian mode: J ≈ I/α.
        let idj = Guided::new(
            &model,
            TweedieLikelihood::dps(obs.clone(), y.view(), vp)
                .unwrap()
                .jacobian(JacobianMode::Identity),
            1.0,
        )
        .unwrap();
        idj.score(x.view(), t, got.view_mut()).unwrap();
        assert_abs_diff_eq!(
            got,
            &s + &(resid.dot(&sn_inv).dot(&a) / al),
            epsilon = 1e-10
        );
    }
}

fn inv2(m: &Array2<f64>) -> Array2<f64> {
    let det = m[[0, 0]] * m[[1, 1]] - m[[0, 1]] * m[[1, 0]];
    array![[m[[1, 1]], -m[[0, 1]]], [-m[[1, 0]], m[[0, 0]]]] / det
}

#[test]
fn the_projection_draws_a_x_from_the_noised_observation_and_leaves_the_rest() {
    // After the constraint at t: A x ~ N(α y, σ² A Aᵀ + α² Σ_n) (App. I.4's p(y(t) | y) plus
    // the noise of y(t) = A x(t) + α n), and the component of x orthogonal to A's rows is
    // unchanged. Moments of 40 000 rows within 4 SE.
    let vp = VpLinear::<f64>::default();
    let obs = LinearGaussian::new(
        array![[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]],
        array![[0.3, 0.0], [0.0, 0.1]],
    )
    .unwrap();
    let y = array![2.0, -1.0];
    let mut c = ObservationConstraint::new(vp, &obs, y.view(), 3).unwrap();
    let n = 40_000;
    let mut x = Array2::from_shape_fn((n, 3), |(i, j)| (i % 7) as f64 - 3.0 + j as f64);
    let before = x.clone();
    let t = 0.4;
    c.constrain(1, t, x.view_mut()).unwrap();
    let (al, sg) = (vp.alpha(t), vp.sigma(t));
    let a = obs.matrix().to_owned();
    let ax = x.dot(&a.t());
    let want_cov = a.dot(&a.t()) * (sg * sg) + &(obs.noise_cov().to_owned() * (al * al));
    let m = ax.mean_axis(Axis(0)).unwrap();
    let cov = sample_covariance(ax.view()).unwrap();
    for i in 0..2 {
        let se = (want_cov[[i, i]] / n as f64).sqrt();
        assert!((m[i] - al * y[i]).abs() < 4.0 * se, "mean {m}");
        for j in 0..2 {
            let se = ((want_cov[[i, i]] * want_cov[[j, j]] + want_cov[[i, j]].powi(2)) / n as f64)
                .sqrt();
            assert!(
                (cov[[i, j]] - want_cov[[i, j]]).abs() < 4.0 * se,
                "cov {cov} vs {want_cov}"
            );
        }
    }
    // The null space of A: v = (1, −1, 1)/√3.
    let v = array![1.0, -1.0, 1.0] / 3f64.sqrt();
    assert_abs_diff_eq!(x.dot(&v), before.dot(&v), epsilon = 1e-12);
    // A rank-deficient A is a typed error.
    let bad = LinearGaussian::new(array![[1.0, 1.0], [2.0, 2.0]], Array2::eye(2)).unwrap();
    assert!(matches!(
        ObservationConstraint::new(vp, &bad, array![0.0, 0.0].view(), 0),
        Err(Error::NotPositiveDefinite { .. })
    ));
    // A sampler that never constrains (observe only) is stopped, not silently unconditional.
    assert!(matches!(c.observe(2, 0.3, x.view()), Ok(())));
    assert!(matches!(
        c.observe(3, 0.3, x.view()),
        Err(Error::Stopped { .. })
    ));
}

#[test]
fn guided_models_run_with_every_sampler() {
    // Conditional score models are ScoreModels: DDIM, DPM-Solver++ and the PF-ODE run them
    // unchanged. With the exact likelihood term they sample the exact posterior (mean within
    // 0.2 of it at N = 500: the Monte-Carlo error is ≈ 0.06 and these deterministic samplers'
    // bias at 40 log-SNR steps is of the same order); DPS runs through each of them too.
    let p = ring_problem();
    let sde = VpSde::<f64>::default();
    let vp = *sde.schedule();
    let model = AnalyticScore::new(p.prior.clone(), vp);
    let exact = Guided::new(
        &model,
        ExactLikelihood::new(&p.prior, &p.obs, p.y.view(), vp).unwrap(),
        1.0,
    )
    .unwrap();
    let dps = Guided::new(
        &model,
        TweedieLikelihood::dps(p.obs.clone(), p.y.view(), vp).unwrap(),
        1.0,
    )
    .unwrap();
    let lg = TimeGrid::log_snr(&vp, 40).unwrap();
    let samplers: Vec<(&str, Box<dyn Sampler<f64>>)> = vec![
        (
            "ddim",
            Box::new(Ddim::new(sde.clone(), lg.clone()).unwrap()),
        ),
        (
            "dpm++2m",
            Box::new(DpmSolverPp::new(sde.clone(), lg).unwrap()),
        ),
        (
            "pf-ode",
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-5, 1e-5).unwrap(),
            )),
        ),
    ];
    for (name, s) in &samplers {
        let run = s.sample(&exact, 500, 2, &mut rng(2)).unwrap();
        let (me, _, tv) = errors(&run.samples, &p.post);
        println!("{name} exact term: mean err {me:.3}, weight TV {tv:.3}");
        assert!(me < 0.2 && tv < 0.05, "{name}: {me} {tv}");
        let run = s.sample(&dps, 500, 2, &mut rng(2)).unwrap();
        assert!(run.samples.iter().all(|v| v.is_finite()), "{name}");
    }
}

// ---------------------------------------------------------------- against the exact posterior

/// The exact posterior's own Monte-Carlo floor at `n`: the errors of exact draws (max over
/// 4 seeds).
fn floor(post: &GaussianMixture<f64>, n: usize) -> (f64, f64, f64) {
    (0..4).fold((0.0, 0.0, 0.0), |(a, b, c), k| {
        let x = post.sample(n, &mut rng(900 + k)).unwrap();
        let (me, ce, tv) = errors(&x, post);
        (a.max(me), b.max(ce), c.max(tv))
    })
}

#[test]
fn posterior_sampling_methods_against_the_exact_posterior() {
    // 200 Euler–Maruyama steps, N = 2000. The exact likelihood term is at the Monte-Carlo
    // floor (2× its largest value over 4 exact batches, plus the sampler's own bias, small at
    // 200 steps); the approximations' biases are pinned at their measured values (the full
    // table, per NFE, in docs/conditioning.md): a change in any method — better or worse —
    // fails on purpose.
    let n = 2000;
    for p in [ring_problem(), r16_problem()] {
        let (fm, fc, ft) = floor(&p.post, n);
        println!(
            "{}: posterior weights {:.3}; floor mean {fm:.3} cov {fc:.3} tv {ft:.3}",
            p.name,
            p.post.weights()
        );
        let mut mean_err = Vec::new();
        for method in [
            Method::Exact,
            Method::Projection,
            Method::Dps,
            Method::Pigdm,
        ] {
            let (x, nfe) = sample(&p, method, 200, n, 10);
            let (me, ce, tv) = errors(&x, &p.post);
            println!(
                "{} {method:?}: NFE {nfe}, mean err {me:.3}, cov rel err {ce:.3}, weight TV {tv:.3}",
                p.name
            );
            mean_err.push(me);
            let ring = p.name == "ring2d";
            match method {
                // At the floor: 2× the largest exact-batch error, plus 0.05 / 0.02 for the
                // Euler–Maruyama bias at 200 steps (measured 0.02 / 0.001 at 1000 steps).
                Method::Exact => assert!(
                    me < 2.0 * fm + 0.05 && ce < 2.0 * fc + 0.05 && tv < 2.0 * ft + 0.02,
                    "{}: exact",
                    p.name
                ),
                // ring2d: every approximation splits the samples between the two places where
                // the observation line meets the ring, whatever the prior mass there (exact:
                // 0.967 / 0.028 / 0.005): TV measured 0.47–0.51 over 50–1000 steps at
                // N = 4000; SE of a fraction at N = 2000 is 0.011, band ±8 SE.
                _ if ring => assert!((0.40..0.58).contains(&tv), "{method:?}: TV {tv}"),
                // rand16d, one component: the projection still misplaces a third of the
                // samples (TV 0.34–0.38); DPS and ΠGDM find the component (TV 0) but shift
                // the mean by 0.46–0.60 (DPS) and 0.23–0.25 (ΠGDM) against a floor of 0.04.
                Method::Projection => assert!((0.28..0.42).contains(&tv), "TV {tv}"),
                Method::Dps => assert!(tv < 0.01 && (0.35..0.65).contains(&me), "{me} {tv}"),
                _ => assert!(tv < 0.01 && (0.15..0.33).contains(&me), "{me} {tv}"),
            }
        }
        if p.name == "rand16d" {
            // ΠGDM's variance term halves DPS's mean bias here.
            assert!(mean_err[3] < 0.7 * mean_err[2], "{mean_err:?}");
        }
    }
}

#[test]
#[ignore]
fn measure_inverse_problem_table() {
    let n = 4000;
    for p in [ring_problem(), r16_problem()] {
        let (fm, fc, ft) = floor(&p.post, n);
        println!(
            "\n{} (N = {n}): posterior weights {:.3}",
            p.name,
            p.post.weights()
        );
        println!("| method | steps | NFE | mean err | cov rel err | weight TV |");
        println!("| exact samples | | | {fm:.3} | {fc:.3} | {ft:.3} |");
        for method in [
            Method::Exact,
            Method::Projection,
            Method::Dps,
            Method::Pigdm,
            Method::PigdmIdentity,
        ] {
            for steps in [50, 200, 1000] {
                let (x, nfe) = sample(&p, method, steps, n, 10);
                let (me, ce, tv) = errors(&x, &p.post);
                println!("| {method:?} | {steps} | {nfe} | {me:.3} | {ce:.3} | {tv:.3} |");
            }
        }
    }
}
