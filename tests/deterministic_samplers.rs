//! Deterministic and fast samplers (issue 4) against exact answers.
//!
//! Every tolerance states its reason. Sizes are modest: the whole file should run in well
//! under 90 s with `[profile.test] opt-level = 2`.

mod common;
use common::{max_abs_diff as max_abs, rng};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, array};
use score_sde::metrics::{Reference, Report};
use score_sde::observe::{NoObserver, ObserverFn};
use score_sde::ode::integrate_fixed;
use score_sde::prelude::*;
use score_sde::sample::{
    Ddim, Dopri5, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral, FixedMethod, ProbabilityFlow,
    ThirdOrder,
};
use std::sync::atomic::{AtomicUsize, Ordering};

// ---------------------------------------------------------------- closed-form Gaussian

/// 2-D zero-mean Gaussian with covariance [[1, .6], [.6, .5]] (eigenvalues 1.4 and 0.1).
fn gauss2() -> (GaussianMixture<f64>, [f64; 2], [[f64; 2]; 2]) {
    let cov = array![[1.0, 0.6], [0.6, 0.5]];
    let gm = GaussianMixture::gaussian(array![0.0, 0.0], cov).unwrap();
    // Eigenvectors of [[a, b], [b, c]]: (b, λ − a), normalised.
    let (a, b, c) = (1.0f64, 0.6f64, 0.5f64);
    let m = 0.5 * (a + c);
    let r = (0.25 * (a - c) * (a - c) + b * b).sqrt();
    let lams = [m + r, m - r];
    let mut u = [[0.0; 2]; 2];
    for (k, &l) in lams.iter().enumerate() {
        let (x, y) = (b, l - a);
        let nrm = (x * x + y * y).sqrt();
        u[k] = [x / nrm, y / nrm];
    }
    (gm, lams, u)
}

/// The exact PF-ODE flow of the Gaussian under VP from `s` to `t`: each eigen-direction
/// scales by `sqrt((α_t² λ + σ_t²)/(α_s² λ + σ_s²))`.
fn exact_flow(sde: &VpSde<f64>, x: &Array2<f64>, s: f64, t: f64) -> Array2<f64> {
    let (_, lams, u) = gauss2();
    let sc = sde.schedule();
    let mut out = Array2::zeros(x.raw_dim());
    for (k, &l) in lams.iter().enumerate() {
        let v = |t: f64| sc.alpha(t).powi(2) * l + sc.sigma(t).powi(2);
        let f = (v(t) / v(s)).sqrt();
        for (mut o, row) in out.rows_mut().into_iter().zip(x.rows()) {
            let p = row[0] * u[k][0] + row[1] * u[k][1];
            o[0] += f * p * u[k][0];
            o[1] += f * p * u[k][1];
        }
    }
    out
}

/// Least-squares slope of log(err) against log(h).
fn slope(hs: &[f64], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = hs.iter().map(|h| h.ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let n = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    sxy / sxx
}

#[test]
fn fixed_step_pf_ode_converges_at_orders_1_2_4() {
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(16, 2, &mut rng(1)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    for (method, steps, want) in [
        (FixedMethod::Euler, [40, 80, 160, 320], 1.0),
        (FixedMethod::Heun, [20, 40, 80, 160], 2.0),
        (FixedMethod::Rk4, [40, 80, 160, 320], 4.0),
    ] {
        let mut hs = vec![];
        let mut errs = vec![];
        for n in steps {
            let grid = TimeGrid::uniform(sde.schedule(), n).unwrap();
            let pf = ProbabilityFlow::fixed(sde.clone(), method, grid).unwrap();
            let run = pf.run(&model, x_t.clone(), &mut rng(0)).unwrap();
            assert_eq!(run.nfe, n * method.stages());
            hs.push(1.0 / n as f64);
            errs.push(max_abs(&run.samples, &exact));
        }
        let p = slope(&hs, &errs);
        // ±0.3: the asymptotic regime is reached but not exactly (pre-asymptotic terms).
        assert!(
            (p - want).abs() <= 0.3,
            "{method:?}: slope {p:.3}, want {want}; errors {errs:?}"
        );
    }
}

#[test]
fn dpm_solver_orders_on_the_gaussian() {
    // Multistep DPM-Solver++ of order k on a log-SNR grid: global error O(h^k).
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(16, 2, &mut rng(2)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    for (order, form, lo, hi) in [
        (1, ThirdOrder::Taylor, 0.7, 1.3),
        (2, ThirdOrder::Taylor, 1.7, 2.3),
        // Third order or better (on this linear problem the measured slope is ≈ 3.9).
        (3, ThirdOrder::Taylor, 2.7, 4.5),
        // diffusers' coefficient of the second difference is half the Taylor one: order 2.
        (3, ThirdOrder::Diffusers, 1.7, 2.3),
    ] {
        let mut hs = vec![];
        let mut errs = vec![];
        for n in [40, 80, 160, 320] {
            let grid = TimeGrid::log_snr(sde.schedule(), n).unwrap();
            // Full order on the last steps too: a first-order final step would cap the
            // global order at 2.
            let s = DpmSolverPp::new(sde.clone(), grid)
                .unwrap()
                .order(order)
                .unwrap()
                .third_order(form)
                .lower_order_final(false);
            let run = s.run(&model, x_t.clone(), &mut rng(0)).unwrap();
            assert_eq!(run.nfe, n);
            hs.push(1.0 / n as f64);
            errs.push(max_abs(&run.samples, &exact));
        }
        let p = slope(&hs, &errs);
        // ±0.3 around the order, as for the Runge–Kutta methods.
        assert!(
            p >= lo && p <= hi,
            "DPM-Solver++ order {order} ({form:?}): slope {p:.3}; errors {errs:?}"
        );
    }
}

#[test]
fn dopri5_meets_its_tolerance_and_reports_nfe() {
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(64, 2, &mut rng(3)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    let mut prev_nfe = 0;
    for tol in [1e-4, 1e-6, 1e-8] {
        let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(tol, tol).unwrap());
        let mut steps_seen = 0;
        let mut obs = ObserverFn(|step: usize, _t: f64, _x: ArrayView2<f64>| {
            steps_seen = step;
            Ok(())
        });
        let run = pf
            .run_with(&model, x_t.clone(), &mut rng(0), &mut obs)
            .unwrap();
        assert_eq!(steps_seen, run.steps, "observer after every accepted step");
        let err = max_abs(&run.samples, &exact);
        // Global error within 10× the local tolerance: states are O(1) (scale ≈ atol + rtol),
        // and the PI controller keeps the accumulated error of ~10–100 steps near tol.
        assert!(err <= 10.0 * tol, "tol {tol}: error {err:e}");
        assert!(run.nfe > prev_nfe, "tighter tolerance costs more NFE");
        prev_nfe = run.nfe;
    }
    // Exact NFE accounting on the raw integrator: 1 (first stage) + 1 (heuristic) + 6 per attempt.
    let mut calls = 0usize;
    let mut rhs = |_t: f64, x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>| {
        calls += 1;
        out.assign(&x.mapv(|v| -v * v));
        Ok(())
    };
    let mut x = array![[1.0], [0.5]];
    let st = Dopri5::new(1e-7, 1e-9)
        .unwrap()
        .solve(&mut rhs, 0.0, 2.0, &mut x, &mut NoObserver)
        .unwrap();
    assert_eq!(st.nfe, 2 + 6 * (st.steps + st.rejected));
    assert_eq!(st.nfe, calls);
    // x' = −x², x(0) = c: x(t) = c/(1 + c t). 1e-6: the tolerances above, with margin.
    assert!((x[[0, 0]] - 1.0 / 3.0).abs() < 1e-6 && (x[[1, 0]] - 0.25).abs() < 1e-6);
}

#[test]
fn step_budget_is_a_typed_error() {
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
    let pf = ProbabilityFlow::adaptive(
        sde.clone(),
        Dopri5::new(1e-9, 1e-9).unwrap().max_steps(5).unwrap(),
    );
    let x = sde.sample_prior(8, 2, &mut rng(4)).unwrap();
    match pf.run(&model, x, &mut rng(0)) {
        Err(Error::StepBudgetExceeded {
            max_steps,
            t_reached,
        }) => {
            assert_eq!(max_steps, 5);
            assert!(t_reached < 1.0 && t_reached > 1e-3, "t reached {t_reached}");
        }
        other => panic!("expected StepBudgetExceeded, got {other:?}"),
    }
}

// ---------------------------------------------------------------- encode / decode

#[test]
fn encode_decode_round_trip_and_gaussian_latents() {
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    for (gm, n, seed) in [
        (problems::ring2d::<f64>(), 3000, 5),
        (problems::rand16d(), 1500, 6),
    ] {
        let model = AnalyticScore::new(gm.clone(), sched);
        let x0 = gm
            .diffuse(&sched, 1e-3)
            .unwrap()
            .sample(n, &mut rng(seed))
            .unwrap();
        let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-5, 1e-5).unwrap());
        let (z, st) = pf.encode(&model, x0.clone()).unwrap();
        assert!(st.t == 1.0 && st.nfe > 10);
        // Latents ~ p_T ≈ N(0, I): mean within 4 standard errors (1/√n), variance within
        // 4 standard errors (√(2/n)) plus the O(α_T²) ≈ 1e-3 prior mismatch.
        let d = gm.dim() as f64;
        let mean = z.mean_axis(Axis(0)).unwrap();
        let var = z.var_axis(Axis(0), 1.0);
        let se = 1.0 / (n as f64).sqrt();
        for j in 0..gm.dim() {
            assert!(
                mean[j].abs() < 4.0 * se + 2e-3,
                "latent mean[{j}] = {}",
                mean[j]
            );
            assert!(
                (var[j] - 1.0).abs() < 4.0 * (2.0f64).sqrt() * se + 2e-3,
                "latent var[{j}] = {}",
                var[j]
            );
        }
        // The squared norm averages D.
        let r2 = z.rows().into_iter().map(|r| r.dot(&r)).sum::<f64>() / n as f64;
        assert!(
            (r2 - d).abs() < 4.0 * (2.0 * d / n as f64).sqrt() + 0.01,
            "E|z|² = {r2}"
        );
        // Round trip of 200 points at rtol = atol = 1e-7: within 100× the tolerance (the
        // flow contracts strongly towards the modes on decoding, and two solves' errors add).
        let pf_tight = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-7, 1e-7).unwrap());
        let (zt, _) = pf_tight
            .encode(&model, x0.slice(ndarray::s![..200, ..]).to_owned())
            .unwrap();
        let (back, _) = pf_tight.decode(&model, zt).unwrap();
        let err = max_abs(&back, &x0.slice(ndarray::s![..200, ..]).to_owned());
        assert!(err < 1e-5, "round trip error {err:e}");
    }
    // Fixed-step encode/decode uses the reversed grid: RK4 with 200 steps round-trips to 1e-5
    // (its error at 200 steps is ~1e-8 on this scale; 1e-5 leaves room for the stiff end).
    let model = AnalyticScore::new(problems::ring2d(), sched);
    let x0 = problems::ring2d::<f64>().sample(100, &mut rng(7)).unwrap();
    let grid = TimeGrid::log_snr(&sched, 200).unwrap();
    let rk4 = ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, grid).unwrap();
    let (z, st) = rk4.encode(&model, x0.clone()).unwrap();
    assert_eq!(st.nfe, 800);
    let (back, _) = rk4.decode(&model, z).unwrap();
    assert!(max_abs(&back, &x0) < 1e-5);
}

// ---------------------------------------------------------------- sample quality

fn report(r: &Reference, x: &Array2<f64>) -> Report {
    r.evaluate(x.view()).unwrap()
}

/// A plain reverse-SDE Euler–Maruyama sampler (Song et al. 2021, eq. 6), for comparison.
fn euler_maruyama(
    model: &dyn ScoreModel<f64>,
    sde: &VpSde<f64>,
    mut x: Array2<f64>,
    steps: usize,
    seed: u64,
) -> Array2<f64> {
    let (t_min, t_max) = sde.schedule().t_range();
    let dt = (t_max - t_min) / steps as f64;
    let mut s = Array2::zeros(x.raw_dim());
    let mut g = rng(seed);
    for i in 0..steps {
        let t = t_max - i as f64 * dt;
        model.score(x.view(), t, s.view_mut()).unwrap();
        let (f, g2) = (sde.schedule().f(t), sde.schedule().g2(t));
        let last = i + 1 == steps;
        ndarray::Zip::from(&mut x).and(&s).for_each(|x, &s| {
            let z: f64 = if last {
                0.0
            } else {
                Real::standard_normal(&mut g)
            };
            *x = *x - (f * *x - g2 * s) * dt + (g2 * dt).sqrt() * z;
        });
    }
    x
}

#[test]
fn fast_samplers_match_many_step_euler_maruyama() {
    // At 20 NFE, DPM-Solver++ 2M and 3M (and EDM Heun at 40) are in Euler–Maruyama's class
    // at 200 steps, on both problems, by SW1 and |loglik gap|.
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    for (gm, n) in [
        (problems::ring2d::<f64>(), 4000),
        (problems::rand16d(), 2000),
    ] {
        let model = AnalyticScore::new(gm.clone(), sched);
        let reference = Reference::new(&gm, &sched, 1e-3, n, 777).unwrap();
        let x_t = sde.sample_prior(n, gm.dim(), &mut rng(8)).unwrap();
        let em = report(
            &reference,
            &euler_maruyama(&model, &sde, x_t.clone(), 200, 9),
        );
        let dpm = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, 20).unwrap()).unwrap();
        let dpm3 = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, 20).unwrap())
            .unwrap()
            .order(3)
            .unwrap();
        // EDM Heun needs 20 Heun steps (40 NFE) to get there on these problems: at 10 steps its
        // SW1 on ring2d is ~0.15 (k-diffusion's own heun/karras gives 0.18 at 19 NFE).
        let heun = EdmHeun::new(sde.clone(), TimeGrid::karras(&sched, 20, 7.0).unwrap()).unwrap();
        for (name, s, nfe) in [
            ("dpm++2M", &dpm as &dyn Sampler<f64>, 20),
            ("dpm++3M", &dpm3, 20),
            ("edm-heun", &heun, 40),
        ] {
            let run = s.run(&model, x_t.clone(), &mut rng(0)).unwrap();
            assert_eq!(run.nfe, nfe);
            let r = report(&reference, &run.samples);
            // 2× and +0.02: EM at 200 steps still carries O(dt) bias and its own noise;
            // the fast samplers must be in the same class, not merely "finite". Over 8 prior
            // seeds (8..16) the 20-step log-SNR grid leaves a visible bias on ring2d's narrow
            // components: SW1 0.055–0.083 for the three samplers against EM's 0.037–0.044,
            // i.e. (SW1 − 0.02)/EM ≤ 1.68; on rand16d ≤ 1.3.
            assert!(
                r.sw1 <= 2.0 * em.sw1 + 0.02,
                "{name}: SW1 {} vs EM {}",
                r.sw1,
                em.sw1
            );
            // EDM Heun's gap on rand16d stays large (0.76 at 40 NFE here; k-diffusion's
            // heun/karras: 0.79 at 39 NFE) — its σ̃-Euler predictor is poor at high noise —
            // so only SW1 is claimed for it. DPM-Solver++'s gap at 20 NFE is a bias: over 8
            // prior seeds 0.05–0.14 on ring2d and 0.18–0.50 on rand16d (EM: ≤ 0.023), hence
            // the absolute +0.6, which bounds that bias at its measured level.
            if name != "edm-heun" {
                assert!(
                    r.loglik_gap.abs() <= 1.5 * em.loglik_gap.abs() + 0.6,
                    "{name}: gap {} vs EM {}",
                    r.loglik_gap,
                    em.loglik_gap
                );
            }
        }
    }
}

// ---------------------------------------------------------------- determinism, NFE, errors

/// Counts score calls.
struct Counting<M>(M, AtomicUsize);
impl<M: ScoreModel<f64>> ScoreModel<f64> for Counting<M> {
    fn score(&self, x: ArrayView2<f64>, t: f64, out: ArrayViewMut2<f64>) -> Result<()> {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.score(x, t, out)
    }
    fn dim(&self) -> Option<usize> {
        self.0.dim()
    }
}

fn all_samplers(sde: &VpSde<f64>, n: usize) -> Vec<(&'static str, Box<dyn Sampler<f64>>, usize)> {
    let s = sde.schedule();
    let lg = TimeGrid::log_snr(s, n).unwrap();
    let kg = TimeGrid::karras(s, n, 7.0).unwrap();
    vec![
        (
            "ddim",
            Box::new(Ddim::new(sde.clone(), lg.clone()).unwrap()),
            n,
        ),
        (
            "ddim-eta1",
            Box::new(
                Ddim::new(sde.clone(), lg.clone())
                    .unwrap()
                    .eta(1.0)
                    .unwrap(),
            ),
            n,
        ),
        (
            "dpm1",
            Box::new(
                DpmSolverPp::new(sde.clone(), lg.clone())
                    .unwrap()
                    .order(1)
                    .unwrap(),
            ),
            n,
        ),
        (
            "dpm2",
            Box::new(DpmSolverPp::new(sde.clone(), lg.clone()).unwrap()),
            n,
        ),
        (
            "dpm3+tweedie",
            Box::new(
                DpmSolverPp::new(sde.clone(), lg.clone())
                    .unwrap()
                    .order(3)
                    .unwrap()
                    .denoise_final(true),
            ),
            n + 1,
        ),
        (
            "dpm2-sde",
            Box::new(
                DpmSolverPp::new(sde.clone(), lg.clone())
                    .unwrap()
                    .variant(DpmVariant::Sde)
                    .unwrap(),
            ),
            n,
        ),
        (
            "heun",
            Box::new(EdmHeun::new(sde.clone(), kg.clone()).unwrap()),
            2 * n,
        ),
        (
            "heun-churn",
            Box::new(
                EdmHeun::new(sde.clone(), kg.clone())
                    .unwrap()
                    .churn(5.0)
                    .unwrap()
                    .churn_range(0.05, 50.0)
                    .unwrap(),
            ),
            2 * n,
        ),
        (
            "euler-a+tweedie",
            Box::new(
                EulerAncestral::new(sde.clone(), kg.clone())
                    .unwrap()
                    .denoise_final(true),
            ),
            n + 1,
        ),
        (
            "pf-euler",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Euler, lg.clone()).unwrap()),
            n,
        ),
        (
            "pf-heun",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Heun, lg.clone()).unwrap()),
            2 * n,
        ),
        (
            "pf-rk4",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, lg).unwrap()),
            4 * n,
        ),
    ]
}

#[test]
fn nfe_is_exact_and_observer_sees_every_step() {
    let sde = VpSde::<f64>::default();
    let model = Counting(
        AnalyticScore::new(problems::ring2d(), *sde.schedule()),
        AtomicUsize::new(0),
    );
    let x = sde.sample_prior(50, 2, &mut rng(10)).unwrap();
    for (name, s, nfe) in all_samplers(&sde, 7) {
        model.1.store(0, Ordering::Relaxed);
        let mut seen = Vec::new();
        let mut obs = ObserverFn(|step: usize, t: f64, _x: ArrayView2<f64>| {
            seen.push((step, t));
            Ok(())
        });
        let run = s
            .run_with(&model, x.clone(), &mut rng(0), &mut obs)
            .unwrap();
        assert_eq!(run.nfe, nfe, "{name}");
        assert_eq!(
            model.1.load(Ordering::Relaxed),
            nfe,
            "{name}: counted calls"
        );
        assert_eq!(run.steps, 7, "{name}");
        // The final Tweedie denoise is observed too, as step 8 at t_min.
        let observed = 7 + usize::from(name.contains("tweedie"));
        assert_eq!(
            seen.iter().map(|s| s.0).collect::<Vec<_>>(),
            (1..=observed).collect::<Vec<_>>(),
            "{name}"
        );
        assert!(
            (seen[observed - 1].1 - 1e-3).abs() < 1e-12,
            "{name}: last observed t"
        );
        assert!(run.samples.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn deterministic_samplers_are_bit_identical_and_need_no_rng() {
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::rand16d(), *sde.schedule());
    let x = sde.sample_prior(64, 16, &mut rng(11)).unwrap();
    let s = sde.schedule();
    let lg = TimeGrid::log_snr(s, 12).unwrap();
    let det: Vec<Box<dyn Sampler<f64>>> = vec![
        Box::new(Ddim::new(sde.clone(), lg.clone()).unwrap()),
        Box::new(
            DpmSolverPp::new(sde.clone(), lg.clone())
                .unwrap()
                .order(3)
                .unwrap(),
        ),
        Box::new(EdmHeun::new(sde.clone(), TimeGrid::karras(s, 6, 7.0).unwrap()).unwrap()),
        Box::new(
            EulerAncestral::new(sde.clone(), lg.clone())
                .unwrap()
                .eta(0.0)
                .unwrap(),
        ),
        Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, lg.clone()).unwrap()),
        Box::new(ProbabilityFlow::adaptive(
            sde.clone(),
            Dopri5::new(1e-4, 1e-4).unwrap(),
        )),
    ];
    for s in &det {
        let a = s.run(&model, x.clone(), &mut rng(1)).unwrap().samples;
        let b = s.run(&model, x.clone(), &mut rng(999)).unwrap().samples;
        assert_eq!(a, b, "{s:?}: same input, different rng → bit-identical");
    }
    // DDIM η = 0 equals DPM-Solver++ order 1 (Lu et al. 2022b: DDIM is its first-order case).
    let a = Ddim::new(sde.clone(), lg.clone())
        .unwrap()
        .run(&model, x.clone(), &mut rng(0))
        .unwrap()
        .samples;
    let b = DpmSolverPp::new(sde.clone(), lg.clone())
        .unwrap()
        .order(1)
        .unwrap()
        .run(&model, x.clone(), &mut rng(0))
        .unwrap()
        .samples;
    // 1e-12: the same formula, evaluated with different operation order.
    assert!(max_abs(&a, &b) < 1e-12);
    // Stochastic samplers with the same seed are reproducible too.
    let s = Ddim::new(sde.clone(), lg).unwrap().eta(1.0).unwrap();
    let a = s.run(&model, x.clone(), &mut rng(5)).unwrap().samples;
    let b = s.run(&model, x.clone(), &mut rng(5)).unwrap().samples;
    assert_eq!(a, b);
}

#[test]
fn any_parameterization_runs_with_any_sampler() {
    // An ε-predicting network wrapped by `Parameterized` gives the same samples as the
    // analytic score it was built from (ε = −σ s).
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let analytic = AnalyticScore::new(problems::ring2d(), sched);
    let a2 = AnalyticScore::new(problems::ring2d(), sched);
    let net = NetworkFn::new(
        move |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| {
            a2.score(x, t, out.view_mut())?;
            let s = VpLinear::<f64>::default().sigma(t);
            out.mapv_inplace(|v| -s * v);
            Ok(())
        },
    );
    let eps_model = Parameterized::noise(net, sched);
    let x = sde.sample_prior(40, 2, &mut rng(12)).unwrap();
    for (name, s, _) in all_samplers(&sde, 6) {
        let a = s.run(&analytic, x.clone(), &mut rng(3)).unwrap().samples;
        let b = s.run(&eps_model, x.clone(), &mut rng(3)).unwrap().samples;
        // 1e-9: the round trip s → ε → s costs a few ulps per step, amplified by ≤ 1e3 near t_min.
        assert!(max_abs(&a, &b) < 1e-9, "{name}: {}", max_abs(&a, &b));
    }
}

#[test]
fn f32_runs() {
    let sde = VpSde::<f32>::default();
    let model = AnalyticScore::new(problems::ring2d::<f32>(), *sde.schedule());
    let grid = TimeGrid::log_snr(sde.schedule(), 20).unwrap();
    let s = DpmSolverPp::new(sde.clone(), grid.clone())
        .unwrap()
        .order(3)
        .unwrap();
    let x32 = sde.sample_prior(2000, 2, &mut rng(13)).unwrap();
    let run = s.run(&model, x32.clone(), &mut rng(0)).unwrap();
    let sde64 = VpSde::<f64>::default();
    let model64 = AnalyticScore::new(problems::ring2d::<f64>(), *sde64.schedule());
    let s64 = DpmSolverPp::new(
        sde64.clone(),
        TimeGrid::log_snr(sde64.schedule(), 20).unwrap(),
    )
    .unwrap()
    .order(3)
    .unwrap();
    let run64 = s64.run(&model64, x32.mapv(f64::from), &mut rng(0)).unwrap();
    let diff = run.samples.mapv(f64::from) - &run64.samples;
    let mean_dev = diff.iter().map(|v| v.abs()).sum::<f64>() / diff.len() as f64;
    // f32 vs f64 from the same noise: ~1e-6 relative rounding per step, amplified by the
    // contraction onto modes of width 0.3 near t_min; 1e-3 mean deviation is 1000 ulps of slack.
    assert!(mean_dev < 1e-3, "mean |x32 − x64| = {mean_dev:e}");
    let r = Reference::new(&problems::ring2d(), &VpLinear::default(), 1e-3, 2000, 777)
        .unwrap()
        .evaluate(run.samples.view())
        .unwrap();
    let r64 = Reference::new(&problems::ring2d(), &VpLinear::default(), 1e-3, 2000, 777)
        .unwrap()
        .evaluate(run64.samples.view())
        .unwrap();
    // Same metrics as f64 up to the sample deviation above.
    assert!(
        (r.sw1 - r64.sw1).abs() < 2e-3 && (r.loglik_gap - r64.loglik_gap).abs() < 1e-2,
        "{r:?} vs {r64:?}"
    );
    let pf = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-4f32, 1e-4).unwrap());
    let run = pf.sample(&model, 500, 2, &mut rng(14)).unwrap();
    assert!(run.samples.iter().all(|v| v.is_finite()));
    let heun = EdmHeun::new(
        sde,
        TimeGrid::karras(&VpLinear::<f32>::default(), 10, 7.0).unwrap(),
    )
    .unwrap();
    assert!(
        heun.sample(&model, 100, 2, &mut rng(15))
            .unwrap()
            .samples
            .iter()
            .all(|v| v.is_finite())
    );
}

#[test]
fn bad_input_gives_typed_errors() {
    let sde = VpSde::<f64>::default();
    let s = *sde.schedule();
    let model = AnalyticScore::new(problems::ring2d(), s);
    let lg = TimeGrid::log_snr(&s, 5).unwrap();
    let dpm = DpmSolverPp::new(sde.clone(), lg.clone()).unwrap();
    // Empty batch and dimension mismatch, for every sampler.
    for (name, smp, _) in all_samplers(&sde, 4) {
        let e = smp
            .run(&model, Array2::zeros((0, 2)), &mut rng(0))
            .unwrap_err();
        assert!(matches!(e, Error::Empty { .. }), "{name}: {e:?}");
        let e = smp
            .run(&model, Array2::zeros((3, 5)), &mut rng(0))
            .unwrap_err();
        assert!(matches!(e, Error::ShapeMismatch { .. }), "{name}: {e:?}");
        let mut bad = Array2::zeros((3, 2));
        bad[[1, 1]] = f64::NAN;
        let e = smp.run(&model, bad, &mut rng(0)).unwrap_err();
        assert!(matches!(e, Error::NonFinite { .. }), "{name}: {e:?}");
    }
    // Zero steps.
    assert!(matches!(
        TimeGrid::log_snr(&s, 0),
        Err(Error::InvalidParameter { .. })
    ));
    let mut x = array![[1.0]];
    let mut rhs = |_t: f64, x: ArrayView2<f64>, mut o: ArrayViewMut2<f64>| {
        o.assign(&x);
        Ok(())
    };
    assert!(matches!(
        integrate_fixed(
            &mut rhs,
            FixedMethod::Euler,
            &[0.5],
            &mut x,
            &mut NoObserver
        ),
        Err(Error::InvalidParameter { .. })
    ));
    // Tolerances, budgets, orders, churn, eta.
    assert!(matches!(
        Dopri5::new(0.0, 1e-6),
        Err(Error::InvalidParameter { name: "rtol", .. })
    ));
    assert!(matches!(
        Dopri5::new(1e-6, -1.0),
        Err(Error::InvalidParameter { name: "atol", .. })
    ));
    assert!(matches!(
        Dopri5::new(f64::NAN, 1e-6),
        Err(Error::InvalidParameter { .. })
    ));
    assert!(Dopri5::new(1e-6, 1e-6).unwrap().max_steps(0).is_err());
    assert!(matches!(
        dpm.clone().order(0),
        Err(Error::InvalidParameter { name: "order", .. })
    ));
    assert!(matches!(
        dpm.clone().order(4),
        Err(Error::InvalidParameter { name: "order", .. })
    ));
    assert!(
        dpm.clone()
            .variant(DpmVariant::Sde)
            .unwrap()
            .order(3)
            .is_err()
    );
    let heun = EdmHeun::new(sde.clone(), lg.clone()).unwrap();
    assert!(matches!(
        heun.clone().churn(-0.1),
        Err(Error::InvalidParameter {
            name: "s_churn",
            ..
        })
    ));
    assert!(heun.clone().churn(f64::INFINITY).is_err());
    assert!(heun.clone().s_noise(0.0).is_err());
    assert!(heun.clone().churn_range(1.0, 0.5).is_err());
    assert!(
        Ddim::new(sde.clone(), lg.clone())
            .unwrap()
            .eta(-0.5)
            .is_err()
    );
    assert!(
        EulerAncestral::new(sde.clone(), lg.clone())
            .unwrap()
            .eta(2.0)
            .is_err()
    );
    // Grids running the wrong way, or outside the SDE's range.
    assert!(DpmSolverPp::new(sde.clone(), lg.reversed()).is_err());
    let wide = VpLinear::<f64>::default().with_t_range(1e-4, 1.0).unwrap();
    let g_wide = TimeGrid::log_snr(&wide, 5).unwrap();
    assert!(matches!(
        Ddim::new(sde.clone(), g_wide),
        Err(Error::TimeOutOfRange { .. })
    ));
    assert!(
        ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-3, 1e-3).unwrap())
            .span(0.5, 0.7)
            .is_err()
    );
    // A diverging model is reported, never a silent NaN.
    let nan_model = ScoreFn::new(|x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| {
        out.assign(&x.mapv(|v| if t < 0.5 { f64::NAN } else { -v }));
        Ok(())
    });
    let x = sde.sample_prior(4, 2, &mut rng(0)).unwrap();
    for (name, smp, _) in all_samplers(&sde, 6) {
        let e = smp.run(&nan_model, x.clone(), &mut rng(0)).unwrap_err();
        assert!(matches!(e, Error::Diverged { .. }), "{name}: {e:?}");
    }
    let e = ProbabilityFlow::adaptive(
        sde.clone(),
        Dopri5::new(1e-3, 1e-3).unwrap().max_steps(500).unwrap(),
    )
    .run(&nan_model, x, &mut rng(0))
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NoConvergence { .. } | Error::StepBudgetExceeded { .. }
        ),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- ≤ 30 NFE at the floor

/// The winning configuration of `examples/nfe_sweep.rs`: DPM-Solver++ 3M (Taylor-exact
/// third-order coefficient), lower-order final steps, 30 steps on the quadratic time grid.
fn winner(sde: &VpSde<f64>) -> DpmSolverPp<f64, VpSde<f64>> {
    DpmSolverPp::new(
        sde.clone(),
        TimeGrid::quadratic(sde.schedule(), 30).unwrap(),
    )
    .unwrap()
    .order(3)
    .unwrap()
}

#[test]
fn winning_config_reaches_the_noise_floor_in_30_nfe() {
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let n = 4000;
    for (gm, seed) in [(problems::ring2d::<f64>(), 21), (problems::rand16d(), 22)] {
        let model = AnalyticScore::new(gm.clone(), sched);
        let reference = Reference::new(&gm, &sched, 1e-3, n, 777).unwrap();
        let floor = reference.noise_floor(n, &[11, 12, 13, 14, 15]).unwrap();
        let k = floor.len() as f64;
        let mean_sw1 = floor.iter().map(|r| r.sw1).sum::<f64>() / k;
        let mean_cov = floor.iter().map(|r| r.cov_err_fro).sum::<f64>() / k;
        let max_sw1 = floor.iter().map(|r| r.sw1).fold(0.0, f64::max);
        let max_cov = floor.iter().map(|r| r.cov_err_fro).fold(0.0, f64::max);
        let g = floor.iter().map(|r| r.loglik_gap).sum::<f64>() / k;
        let sd_gap = (floor
            .iter()
            .map(|r| (r.loglik_gap - g).powi(2))
            .sum::<f64>()
            / (k - 1.0))
            .sqrt();

        let x_t = sde.sample_prior(n, gm.dim(), &mut rng(seed)).unwrap();
        let run = winner(&sde).run(&model, x_t.clone(), &mut rng(0)).unwrap();
        assert_eq!(run.nfe, 30);
        let r = report(&reference, &run.samples);
        // The converged flow from the same noise (Dormand–Prince at 1e-8): what an exact
        // deterministic sampler gives for this x_T.
        let exact = ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-8, 1e-8).unwrap())
            .run(&model, x_t, &mut rng(0))
            .unwrap()
            .samples;
        let r_star = report(&reference, &exact);
        let dirs = score_sde::metrics::random_directions(64, gm.dim(), 4242).unwrap();
        let sw_pair =
            score_sde::metrics::sliced_w1(run.samples.view(), exact.view(), dirs.view()).unwrap();
        let cov_pair = (score_sde::metrics::sample_covariance(run.samples.view()).unwrap()
            - score_sde::metrics::sample_covariance(exact.view()).unwrap())
        .mapv(|v| v * v)
        .sum()
        .sqrt();
        let gap_pair = (r.loglik_gap - r_star.loglik_gap).abs();
        // At the floor: the sampler's deviation from the exact flow is inside the Monte-Carlo
        // spread of exact batches of this size (mean SW1 and cov error of 5 exact batches, and
        // the standard deviation of their gaps). The discretisation error does not shrink
        // with N while the spread does (∝ 1/√N): at N = 20000 the worst ratio is 1.62 (the
        // ring2d gap; 1.19 at N = 10000; docs/deterministic.md), here it must be ≤ 1.
        assert!(sw_pair <= mean_sw1, "SW1(x, x*) {sw_pair} vs {mean_sw1}");
        assert!(
            cov_pair <= mean_cov,
            "cov(x) − cov(x*) {cov_pair} vs {mean_cov}"
        );
        assert!(gap_pair <= sd_gap, "gap − gap* {gap_pair} vs sd {sd_gap}");
        // And by the raw metrics against the exact target: within the largest value seen in
        // 5 exact batches (SW1, covariance).
        assert!(
            r.sw1 <= max_sw1 && r.cov_err_fro <= max_cov,
            "{r:?} vs floor max SW1 {max_sw1}, cov {max_cov}"
        );
    }
}

/// The noisy variants (DDIM with η = 1, DPM-Solver++ SDE) draw their step noise from
/// per-row streams: row 0's sample is the same, bit for bit, alone and first in a batch of
/// 9 rows, and the rows differ from each other.
#[test]
fn noisy_variants_do_not_couple_rows() {
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let model = AnalyticScore::new(problems::ring2d::<f64>(), sched);
    let x = sde.sample_prior(9, 2, &mut rng(40)).unwrap();
    let grid = TimeGrid::log_snr(&sched, 10).unwrap();
    let ddim = Ddim::new(sde.clone(), grid.clone())
        .unwrap()
        .eta(1.0)
        .unwrap();
    let dpm = DpmSolverPp::new(sde.clone(), grid)
        .unwrap()
        .variant(DpmVariant::Sde)
        .unwrap();
    for (name, s) in [("ddim", &ddim as &dyn Sampler<f64>), ("dpm-sde", &dpm)] {
        let all = s.run(&model, x.clone(), &mut rng(41)).unwrap().samples;
        let one = s
            .run(
                &model,
                x.slice(ndarray::s![..1, ..]).to_owned(),
                &mut rng(41),
            )
            .unwrap()
            .samples;
        assert_eq!(one.row(0), all.row(0), "{name}");
        assert_ne!(all.row(0), all.row(1), "{name}");
    }
}

// ---------------------------------------------------------------- issue 16: new solvers

use score_sde::ode::{BS3, TSIT5};
use score_sde::sample::{DpmAdaptive, GottaGoFast, NoiseTable, UniPc, UniPcVariant};

/// Errors of `make(n)` against the exact flow on log-SNR grids of `ns` steps, and the slope.
fn order_on_log_snr_grids(
    ns: &[usize],
    make: &dyn Fn(TimeGrid<f64>) -> Box<dyn Sampler<f64>>,
    nfe_per_step: usize,
) -> (f64, Vec<f64>) {
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(16, 2, &mut rng(2)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    let mut hs = vec![];
    let mut errs = vec![];
    for &n in ns {
        let grid = TimeGrid::log_snr(sde.schedule(), n).unwrap();
        let run = make(grid).run(&model, x_t.clone(), &mut rng(0)).unwrap();
        assert_eq!(run.nfe, nfe_per_step * n);
        hs.push(1.0 / n as f64);
        errs.push(max_abs(&run.samples, &exact));
    }
    (slope(&hs, &errs), errs)
}

#[test]
fn unipc_converges_at_order_p_plus_1_and_unip_at_p() {
    let sde = VpSde::<f64>::default();
    // UniPC-p (predictor and corrector) is of order p + 1, UniP-p alone of order p
    // (Zhao et al. 2023, Thm. 3.2 and 3.3), for both B(h). Full order to the last step
    // (lower_order_final off), as in the DPM-Solver++ test: a lowered last step would cap
    // the global order. At least the order − 0.3, as for the Runge–Kutta methods, and at
    // most the order + 1.3: third-order multistep updates measure ≈ 4 on this linear problem
    // (UniP-3: 4.15, as DPM-Solver++ 3M's 3.9 above).
    for variant in [UniPcVariant::Bh1, UniPcVariant::Bh2] {
        for (p, corrector, want, ns) in [
            (1, false, 1.0, [40, 80, 160, 320]),
            (1, true, 2.0, [40, 80, 160, 320]),
            (2, false, 2.0, [40, 80, 160, 320]),
            (2, true, 3.0, [20, 40, 80, 160]),
            (3, false, 3.0, [40, 80, 160, 320]),
            // Pre-asymptotic below 80 steps (successive ratios 10, 13.6, 15 → 16).
            (3, true, 4.0, [80, 160, 320, 640]),
        ] {
            let s = sde.clone();
            let make = move |g: TimeGrid<f64>| -> Box<dyn Sampler<f64>> {
                Box::new(
                    UniPc::new(s.clone(), g)
                        .unwrap()
                        .order(p)
                        .unwrap()
                        .variant(variant)
                        .corrector(corrector)
                        .lower_order_final(false),
                )
            };
            let (k, errs) = order_on_log_snr_grids(&ns, &make, 1);
            println!("UniPC {variant:?} p = {p} corrector {corrector}: slope {k:.3}");
            assert!(
                k >= want - 0.3 && k <= want + 1.3,
                "UniPC {variant:?} p = {p} corrector {corrector}: slope {k:.3}, want {want}; {errs:?}"
            );
        }
    }
}

#[test]
fn singlestep_dpm_solver_2s_3s_converge_at_orders_2_and_3() {
    // The updates inside adaptive DPM-Solver-12/-23, run on a fixed grid: DPM-Solver++ 2S
    // and 3S (Lu et al. 2022b, Alg. 1 and App.), orders 2 and 3 (±0.3; 3S may reach 3.6 on
    // this linear problem).
    let sde = VpSde::<f64>::default();
    for (order, lo, hi) in [(2, 1.7, 2.3), (3, 2.7, 3.6)] {
        let s = sde.clone();
        let make = move |g: TimeGrid<f64>| -> Box<dyn Sampler<f64>> {
            Box::new(DpmAdaptive::fixed(s.clone(), order, g).unwrap())
        };
        let (k, errs) = order_on_log_snr_grids(&[20, 40, 80, 160], &make, order);
        println!("DPM-Solver++ {order}S: slope {k:.3}");
        assert!(
            k >= lo && k <= hi,
            "2S/3S order {order}: slope {k:.3}; {errs:?}"
        );
    }
}

#[test]
fn bs3_and_tsit5_converge_at_their_orders_and_meet_their_tolerance() {
    let sde = VpSde::<f64>::default();
    // Fixed steps: orders 3 and 5 (at least the order − 0.3; uniform-in-t grids as for
    // RK4). Tsitouras' pair measures 6.0 here: on this linear problem it is one order
    // better than in general, so the upper bound is order + 1.3.
    for (tab, want, ns) in [
        (BS3, 3.0, [40, 80, 160, 320]),
        (TSIT5, 5.0, [10, 20, 40, 80]),
    ] {
        let s = sde.clone();
        let (gm, _, _) = gauss2();
        let model = AnalyticScore::new(gm, *s.schedule());
        let (t_min, t_max) = s.schedule().t_range();
        let x_t = s.sample_prior(16, 2, &mut rng(1)).unwrap();
        let exact = exact_flow(&s, &x_t, t_max, t_min);
        let mut hs = vec![];
        let mut errs = vec![];
        for n in ns {
            let grid = TimeGrid::uniform(s.schedule(), n).unwrap();
            let pf = ProbabilityFlow::fixed(s.clone(), FixedMethod::Tableau(tab), grid).unwrap();
            let run = pf.run(&model, x_t.clone(), &mut rng(0)).unwrap();
            assert_eq!(run.nfe, n * tab.stages());
            hs.push(1.0 / n as f64);
            errs.push(max_abs(&run.samples, &exact));
        }
        let p = slope(&hs, &errs);
        println!("{}: slope {p:.3}", tab.name);
        assert!(
            p >= want - 0.3 && p <= want + 1.3,
            "{}: slope {p:.3}; {errs:?}",
            tab.name
        );
    }
    // Adaptive: within 10× the tolerance (as Dormand–Prince above), NFE = 2 + stages ×
    // attempts (FSAL), and Tsit5 needs fewer NFE than BS3 at a tight tolerance.
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(64, 2, &mut rng(3)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    for tol in [1e-4, 1e-6] {
        let mut nfes = vec![];
        for tab in [BS3, TSIT5] {
            let solver = Dopri5::new(tol, tol).unwrap().with_tableau(tab).unwrap();
            let run = ProbabilityFlow::adaptive(sde.clone(), solver)
                .run(&model, x_t.clone(), &mut rng(0))
                .unwrap();
            let err = max_abs(&run.samples, &exact);
            assert!(err <= 10.0 * tol, "{} tol {tol}: error {err:e}", tab.name);
            assert_eq!(run.nfe, 2 + tab.stages() * (run.steps + run.rejected));
            nfes.push(run.nfe);
        }
        if tol < 1e-5 {
            assert!(
                nfes[1] < nfes[0],
                "Tsit5 {} vs BS3 {} NFE",
                nfes[1],
                nfes[0]
            );
        }
    }
}

#[test]
fn adaptive_dpm_solver_meets_its_tolerance_and_counts_its_steps() {
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, t_max) = sde.schedule().t_range();
    let x_t = sde.sample_prior(64, 2, &mut rng(5)).unwrap();
    let exact = exact_flow(&sde, &x_t, t_max, t_min);
    for order in [2, 3] {
        let mut prev = (f64::INFINITY, 0usize);
        for tol in [1e-3, 1e-4, 1e-5] {
            let s = DpmAdaptive::new(sde.clone(), order, tol, tol).unwrap();
            let mut seen = 0;
            let mut obs = ObserverFn(|step: usize, _t: f64, _x: ArrayView2<f64>| {
                seen = step;
                Ok(())
            });
            let run = s
                .run_with(&model, x_t.clone(), &mut rng(0), &mut obs)
                .unwrap();
            assert_eq!(seen, run.steps, "observer after every accepted step");
            // NFE: k per accepted attempt, k − 1 per rejected one (D_s is kept).
            assert_eq!(run.nfe, order * run.steps + (order - 1) * run.rejected);
            let err = max_abs(&run.samples, &exact);
            println!(
                "DPM-Solver-{order} tol {tol:e}: error {err:.2e}, NFE {}",
                run.nfe
            );
            // The control is local (per step, on x_hi − x_lo): the global error stays
            // within 10× the tolerance on this O(1) state, and shrinks with it.
            assert!(
                err <= 10.0 * tol,
                "DPM-Solver-{order}: tol {tol}: error {err:e}"
            );
            assert!(
                err < prev.0 && run.nfe > prev.1,
                "tighter tolerance: {err:e}, {}",
                run.nfe
            );
            prev = (err, run.nfe);
        }
    }
    // A step budget is a typed error.
    let s = DpmAdaptive::new(sde.clone(), 3, 1e-9, 1e-9)
        .unwrap()
        .max_steps(3)
        .unwrap();
    assert!(matches!(
        s.run(&model, x_t, &mut rng(0)),
        Err(Error::StepBudgetExceeded { max_steps: 3, .. })
    ));
}

/// The law of a linear stochastic scheme on a zero-mean Gaussian, exactly: each step maps
/// `x ↦ A x + B z`; `A` is read off by stepping the basis vectors with zero noise, `B` by
/// stepping 0 with the basis vectors as noise (a `NoiseTable`), and the covariance follows
/// `C ← A C Aᵀ + B Bᵀ` from the prior's `I`. No Monte-Carlo error.
fn scheme_covariance(
    grid: &TimeGrid<f64>,
    step: &dyn Fn(TimeGrid<f64>, NoiseTable<f64>) -> Box<dyn Sampler<f64>>,
    model: &dyn ScoreModel<f64>,
) -> Array2<f64> {
    let sde = VpSde::<f64>::default();
    let eye = Array2::<f64>::eye(2);
    let mut c = eye.clone();
    for (t0, t1) in grid.pairs() {
        let one = TimeGrid::custom(sde.schedule(), vec![t0, t1]).unwrap();
        let zero = NoiseTable::new(vec![Array2::zeros((2, 2))]).unwrap();
        let basis = NoiseTable::new(vec![eye.clone()]).unwrap();
        // Rows in, rows out: output row j = (A e_j)ᵀ, so the output is Aᵀ.
        let a_t = step(one.clone(), zero)
            .run(model, eye.clone(), &mut rng(0))
            .unwrap()
            .samples;
        let b_t = step(one, basis)
            .run(model, Array2::zeros((2, 2)), &mut rng(0))
            .unwrap()
            .samples;
        let a = a_t.t();
        c = a.dot(&c).dot(&a_t) + b_t.t().dot(&b_t);
    }
    c
}

#[test]
fn gotta_go_fast_step_has_weak_order_2_on_the_gaussian() {
    // The improved-Euler step of Gotta Go Fast (EM + Heun with the same z) on fixed uniform
    // grids: the exact covariance of its samples against the exact p_{t_min}. For additive
    // noise this is Platen's weak second-order scheme (Kloeden & Platen 1992, §15.1), up to
    // the trapezoid in g(t): slope 2 ± 0.3 (measured 2.00). Euler–Maruyama, the solver's
    // lower member, is weak order 1, so a step that dropped the Heun average would fail.
    let sde = VpSde::<f64>::default();
    let (gm, lams, u) = gauss2();
    let model = AnalyticScore::new(gm, *sde.schedule());
    let (t_min, _) = sde.schedule().t_range();
    let (a, s) = (sde.schedule().alpha(t_min), sde.schedule().sigma(t_min));
    let mut exact = Array2::<f64>::eye(2) * (s * s);
    for (k, &l) in lams.iter().enumerate() {
        let v = ndarray::arr1(&u[k]);
        let outer = v.clone().insert_axis(Axis(1)).dot(&v.insert_axis(Axis(0)));
        exact = exact + outer * (a * a * l);
    }
    let make = |g: TimeGrid<f64>, z: NoiseTable<f64>| -> Box<dyn Sampler<f64>> {
        Box::new(
            GottaGoFast::fixed(VpSde::default(), g)
                .unwrap()
                .noise_table(z),
        )
    };
    let mut hs = vec![];
    let mut errs = vec![];
    for n in [25, 50, 100, 200] {
        let grid = TimeGrid::uniform(sde.schedule(), n).unwrap();
        let c = scheme_covariance(&grid, &make, &model);
        hs.push(1.0 / n as f64);
        errs.push(max_abs(&c, &exact));
    }
    let p = slope(&hs, &errs);
    println!("Gotta Go Fast weak slope {p:.3}; errors {errs:?}");
    assert!((p - 2.0).abs() <= 0.3, "weak slope {p:.3}; errors {errs:?}");
}

#[test]
fn gotta_go_fast_adaptive_counts_its_steps_and_samples_the_gaussian() {
    let sde = VpSde::<f64>::default();
    let (gm, _, _) = gauss2();
    let model = AnalyticScore::new(gm.clone(), *sde.schedule());
    let n = 4000;
    let ggf = GottaGoFast::new(sde.clone(), 0.02, 0.02)
        .unwrap()
        .denoise_final(true);
    let run = ggf.sample(&model, n, 2, &mut rng(8)).unwrap();
    // 2 NFE per accepted attempt, 1 per rejected one (b(x, t) is kept), 1 for the denoise.
    assert_eq!(run.nfe, 2 * run.steps + run.rejected + 1);
    assert!(
        run.rejected > 0 && run.steps > 10,
        "{} steps, {} rejected",
        run.steps,
        run.rejected
    );
    // Covariance of N = 4000 samples against the exact [[1, .6], [.6, .5]] (denoised to
    // t = 0): Monte-Carlo sd of an entry ≤ √(2/4000)·1 ≈ 0.022; 0.1 is 4.5 sd, and a
    // missing ½ in the Heun average or a wrong noise scale moves it by ≥ 0.3.
    let c = score_sde::metrics::sample_covariance(run.samples.view()).unwrap();
    let want = array![[1.0, 0.6], [0.6, 0.5]];
    assert!(max_abs(&c, &want) < 0.1, "covariance {c:?}");
    // With a noise table the samples depend only on the table (attempt k draws entry k).
    let draws: Vec<Array2<f64>> = (0..2000)
        .map(|k| sde.sample_prior(8, 2, &mut rng(100 + k)).unwrap())
        .collect();
    let table = NoiseTable::new(draws).unwrap();
    let x = sde.sample_prior(8, 2, &mut rng(9)).unwrap();
    let g = GottaGoFast::new(sde.clone(), 0.02, 0.02)
        .unwrap()
        .noise_table(table);
    let r1 = g.run(&model, x.clone(), &mut rng(1)).unwrap();
    let r2 = g.run(&model, x, &mut rng(2)).unwrap();
    assert_eq!(r1.samples, r2.samples);
}
