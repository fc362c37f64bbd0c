//! What the one driver promises for every sampler of the crate, checked on each:
//!
//! * with [`Imputation`] and a clean final step, the observed coordinates of the returned
//!   samples equal the observation exactly — with and without the final denoise (the
//!   driver calls the observer after the denoise too);
//! * a [`Trajectory`] recording every step ends with a frame equal to the returned samples,
//!   and has one frame per step (plus one for the final denoise);
//! * a model that turns non-finite only at the final denoise is caught by the non-finite
//!   check (`Sampler::run`), not returned as `Ok`.

mod common;
use common::rng;

use ndarray::{ArrayView2, ArrayViewMut2, array};
use score_sde::condition::Imputation;
use score_sde::prelude::*;
use score_sde::sample::{
    AnnealedLangevin, CorrectorKind, Ddim, Dopri5, DpmAdaptive, DpmSolverPp, DpmVariant, EdmHeun,
    EulerAncestral, FixedMethod, GottaGoFast, Mala, Pc, PcOrder, PredictorKind, ProbabilityFlow,
    StepRule, Ula, UniPc,
};

type Boxed = Box<dyn Sampler<f64>>;

/// Every sampler of the crate, once without and once with the final denoise where the
/// sampler has one: (name, sampler, whether it denoises).
fn every_sampler(denoise: bool) -> Vec<(String, Boxed, bool)> {
    let sde = VpSde::<f64>::default();
    let u = TimeGrid::uniform(sde.schedule(), 30).unwrap();
    let q = TimeGrid::quadratic(sde.schedule(), 12).unwrap();
    let l = TimeGrid::log_snr(sde.schedule(), 12).unwrap();
    let k = TimeGrid::karras(sde.schedule(), 12, 7.0).unwrap();
    let pc = || Pc::new(sde.clone(), u.clone()).unwrap();
    let mut v: Vec<(&str, Boxed)> = vec![
        ("PC EM", Box::new(pc().denoise_final(denoise))),
        (
            "PC RD + Langevin",
            Box::new(
                pc().predictor(PredictorKind::ReverseDiffusion)
                    .unwrap()
                    .snr(0.16)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "PC ancestral + σ-rule, predictor first",
            Box::new(
                pc().predictor(PredictorKind::Ancestral)
                    .unwrap()
                    .snr(0.1)
                    .unwrap()
                    .step_rule(StepRule::Sigma)
                    .unwrap()
                    .order(PcOrder::PredictorFirst)
                    .denoise_final(denoise),
            ),
        ),
        (
            "corrector only",
            Box::new(
                pc().predictor(PredictorKind::None)
                    .unwrap()
                    .corrector(CorrectorKind::langevin(0.1).unwrap())
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "DDIM",
            Box::new(
                Ddim::new(sde.clone(), q.clone())
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "DDIM η = 1",
            Box::new(
                Ddim::new(sde.clone(), q.clone())
                    .unwrap()
                    .eta(1.0)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "DPM-Solver++ 3M",
            Box::new(
                DpmSolverPp::new(sde.clone(), l.clone())
                    .unwrap()
                    .order(3)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "DPM-Solver++ 2M SDE",
            Box::new(
                DpmSolverPp::new(sde.clone(), l.clone())
                    .unwrap()
                    .variant(DpmVariant::Sde)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "EDM Heun",
            Box::new(
                EdmHeun::new(sde.clone(), k.clone())
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "EDM Heun churn",
            Box::new(
                EdmHeun::new(sde.clone(), k.clone())
                    .unwrap()
                    .churn(20.0)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "Euler ancestral",
            Box::new(
                EulerAncestral::new(sde.clone(), k.clone())
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "PF-ODE RK4",
            Box::new(
                ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, q.clone())
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "PF-ODE Dormand–Prince",
            Box::new(
                ProbabilityFlow::adaptive(sde.clone(), Dopri5::new(1e-4, 1e-4).unwrap())
                    .denoise_final(denoise),
            ),
        ),
        (
            "UniPC-3",
            Box::new(
                UniPc::new(sde.clone(), l.clone())
                    .unwrap()
                    .order(3)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "adaptive DPM-Solver-23",
            Box::new(
                DpmAdaptive::new(sde.clone(), 3, 1e-2, 1e-2)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "Gotta Go Fast",
            Box::new(
                GottaGoFast::new(sde.clone(), 5e-2, 5e-2)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
        (
            "annealed Langevin",
            // Levels inside the VP range of the tests' model (the model sees t = σ).
            Box::new(
                AnnealedLangevin::new(1.0, 1e-3, 5, 4, 2e-4)
                    .unwrap()
                    .denoise_final(denoise),
            ),
        ),
    ];
    if !denoise {
        // The fixed-target MCMC samplers have no marginal to denoise with.
        v.push(("ULA", Box::new(Ula::new(0.01, 20).unwrap())));
        v.push((
            "MALA",
            Box::new(Mala::new(problems::ring2d::<f64>(), 0.01, 20).unwrap()),
        ));
    }
    v.into_iter()
        .map(|(n, s)| (n.to_string(), s, denoise))
        .collect()
}

#[test]
fn every_sampler_imputes_exactly_and_its_trajectory_ends_at_the_samples() {
    let vp = VpLinear::<f64>::default();
    let ring = problems::ring2d::<f64>();
    let model = AnalyticScore::new(ring, vp);
    let y = 2.5;
    let mut seen = 0;
    for denoise in [false, true] {
        for (name, s, _) in every_sampler(denoise) {
            seen += 1;
            // Imputation with a clean final step: the observed coordinate is y, bit for bit.
            let mut imp =
                Imputation::new(vp, &[false, true], array![f64::NAN, y].view(), 1).unwrap();
            let x0 = s.initial_state(64, 2, &mut rng(0)).unwrap();
            let run = s
                .run_with(&model, x0.clone(), &mut rng(1), &mut imp)
                .unwrap();
            assert!(
                run.samples.column(1).iter().all(|&v| v == y),
                "{name} (denoise {denoise}): observed coordinate {:?}",
                run.samples.column(1).iter().find(|&&v| v != y)
            );
            // The trajectory's last frame is the returned samples; one frame per step and
            // one for the final denoise.
            let mut tr = Trajectory::new(1, None);
            let run = s.run_with(&model, x0, &mut rng(1), &mut tr).unwrap();
            let frames = tr.frames();
            assert_eq!(
                frames.len(),
                run.steps + usize::from(denoise),
                "{name} (denoise {denoise})"
            );
            let (step, _, last) = &frames[frames.len() - 1];
            assert_eq!(*step, frames.len(), "{name}");
            assert_eq!(last, &run.samples, "{name} (denoise {denoise}): last frame");
        }
    }
    assert_eq!(seen, 19 + 17);
}

/// A model that is finite except at `t ≤ t_bad`, where it returns NaN for row 3.
fn poisoned(t_bad: f64) -> impl ScoreModel<f64> {
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::<f64>::default());
    ScoreFn::new(
        move |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            model.score(x, t, out.view_mut())?;
            if t <= t_bad && out.nrows() > 3 {
                out[[3, 0]] = f64::NAN;
            }
            Ok(())
        },
    )
}

#[test]
fn a_non_finite_final_denoise_is_an_error_not_an_ok() {
    // A model poisoned only at t ≤ t_min = 1e-3. Samplers that evaluate the model at the
    // start of each step (predictors, DDIM, DPM-Solver++, Euler ancestral, a corrector
    // before the predictor) stay finite through every step and meet the poison only in the
    // final denoise — the case that used to return `Ok` with NaN rows. The others (a stage
    // or corrector at t_{i+1}, a level at σ_min) meet it inside the last step. Either way
    // `run` must fail with `Diverged`, never return `Ok`.
    let model = poisoned(1e-3);
    let at_denoise = [
        "PC EM",
        "PC RD + Langevin",
        "corrector only",
        "DDIM",
        "DDIM η = 1",
        "DPM-Solver++ 3M",
        "DPM-Solver++ 2M SDE",
        "Euler ancestral",
    ];
    let adaptive = ["adaptive DPM-Solver-23", "Gotta Go Fast"];
    for (name, s, _) in every_sampler(true) {
        let x0 = s.initial_state(16, 2, &mut rng(0)).unwrap();
        let steps = s
            .run(&poisoned(-1.0), x0.clone(), &mut rng(1))
            .unwrap()
            .steps;
        match s.run(&model, x0, &mut rng(1)) {
            Err(Error::Diverged { step, row: 3, .. }) if at_denoise.contains(&name.as_str()) => {
                assert_eq!(step, steps + 1, "{name}: caught after the final denoise");
            }
            // Inside a step: the check after the step, or the model refusing a non-finite
            // stage input (an adaptive stage evaluates the model on the poisoned state).
            Err(Error::Diverged { .. } | Error::NonFinite { .. })
                if !at_denoise.contains(&name.as_str()) => {}
            // An adaptive controller rejects a step whose error estimate is non-finite and
            // shrinks it until the step size underflows: an error naming the cause.
            Err(Error::NoConvergence { reason, .. })
                if adaptive.contains(&name.as_str()) && reason.contains("non-finite") => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}

#[test]
fn nfe_counts_every_call_through_the_driver() {
    // The driver counts the calls a method makes through its context: a model that counts
    // its own calls agrees for every sampler, denoise included.
    use std::sync::atomic::{AtomicUsize, Ordering};
    struct Counting(AnalyticScore<f64, VpLinear<f64>>, AtomicUsize);
    impl ScoreModel<f64> for Counting {
        fn score(&self, x: ArrayView2<f64>, t: f64, out: ArrayViewMut2<f64>) -> Result<()> {
            self.1.fetch_add(1, Ordering::Relaxed);
            self.0.score(x, t, out)
        }
    }
    let model = Counting(
        AnalyticScore::new(problems::ring2d(), VpLinear::default()),
        AtomicUsize::new(0),
    );
    for denoise in [false, true] {
        for (name, s, _) in every_sampler(denoise) {
            model.1.store(0, Ordering::Relaxed);
            let x0 = s.initial_state(8, 2, &mut rng(0)).unwrap();
            let run = s.run(&model, x0, &mut rng(1)).unwrap();
            assert_eq!(run.nfe, model.1.load(Ordering::Relaxed), "{name}");
        }
    }
}

#[test]
fn counts_and_sizes_a_user_passes_are_checked_before_allocating() {
    let sde = VpSde::<f64>::default();
    // A batch whose n × d overflows usize, or cannot be reserved: typed errors, no abort.
    for (n, d) in [(usize::MAX, 2), (1 << 40, 1 << 20), (0, 2)] {
        assert!(sde.sample_prior(n, d, &mut rng(0)).is_err(), "{n} × {d}");
        assert!(
            Ula::<f64>::new(0.1, 3)
                .unwrap()
                .initial_state(n, d, &mut rng(0))
                .is_err()
        );
    }
    // Plans sized by counts: annealed Langevin's L · n levels, ULA's steps.
    assert!(AnnealedLangevin::<f64>::new(1.0, 0.1, usize::MAX / 2, 4, 1e-3).is_err());
    assert!(Ula::<f64>::new(0.1, usize::MAX).is_err());
    // NFE that overflows is `None`, not a panic.
    let ald = AnnealedLangevin::<f64>::new(1.0, 0.1, 3, 2, 1e-3).unwrap();
    assert_eq!(ald.total_steps(), Some(6));
    assert_eq!(ald.nfe(), Some(6));
    // The prior's log-density of a non-finite point is an error, not NaN in `Ok`.
    let x = array![[0.0, f64::NAN]];
    assert!(matches!(
        score_sde::sde::prior_log_prob(&sde, x.view()),
        Err(Error::NonFinite { .. })
    ));
}

#[test]
fn an_adaptive_solve_on_a_nan_right_hand_side_names_it() {
    let ode = score_sde::ode::Dopri5::<f64>::new(1e-6, 1e-6).unwrap();
    let mut rhs = |_t: f64, _x: ArrayView2<f64>, mut out: ArrayViewMut2<f64>| {
        out.fill(f64::NAN);
        Ok(())
    };
    let mut x = array![[1.0, 2.0]];
    let err = ode
        .solve(
            &mut rhs,
            0.0,
            1.0,
            &mut x,
            &mut score_sde::observe::NoObserver,
        )
        .unwrap_err();
    match err {
        Error::NoConvergence { reason, .. } => assert!(reason.contains("non-finite"), "{reason}"),
        e => panic!("{e}"),
    }
}
