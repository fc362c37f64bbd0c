//! Failing cases the fuzz suite found, kept as tests.
//!
//! The first group is issue 18's sampler-side list, fixed in the sampler driver of the
//! issue "One solver framework" (the final denoise checked like every step, checked count
//! getters and batch allocations, `prior_log_prob` and `transition` domains, EDM's state
//! kept in original coordinates): each names its bug. The others are fixed failures,
//! replayed by `(kind, seed)` through the harness and, where a closed form exists, written
//! out.

use super::{Outcome, run_case};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};
use score_sde::prelude::*;
use score_sde::rand::SeedableRng;
use score_sde::sample::{AnnealedLangevin, Ddim, Dopri5, DpmSolverPp, EdmHeun, EulerAncestral, Pc};

fn rng() -> score_sde::rand_pcg::Pcg64 {
    score_sde::rand_pcg::Pcg64::seed_from_u64(7)
}

/// A score that is finite except at the last grid time (`t ≤ 1.5e-3` under the default VP
/// schedule, whose `t_min` is 1e-3): only a final denoise evaluates it there.
fn nan_at_t_min() -> impl ScoreModel<f64> {
    ScoreFn::new(
        |x: ArrayView2<f64>, t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            if t <= 1.5e-3 {
                out.fill(f64::NAN);
            } else {
                out.assign(&(-&x));
            }
            Ok(())
        },
    )
}

/// Issue 18, sampler side: "`Ddim`, `DpmSolverPp`, `EdmHeun`, `EulerAncestral` with
/// `.denoise_final(true)` return `Ok(Run)` with NaN rows: the non-finite check runs after
/// every step but not after the final denoise".
#[test]
fn final_denoise_is_checked_for_non_finite_values() {
    let sde = VpSde::<f64>::default();
    let grid = TimeGrid::uniform(sde.schedule(), 5).unwrap();
    let model = nan_at_t_min();
    let samplers: Vec<Box<dyn Sampler<f64>>> = vec![
        Box::new(
            Ddim::new(sde.clone(), grid.clone())
                .unwrap()
                .denoise_final(true),
        ),
        Box::new(
            DpmSolverPp::new(sde.clone(), grid.clone())
                .unwrap()
                .denoise_final(true),
        ),
        Box::new(
            EdmHeun::new(sde.clone(), grid.clone())
                .unwrap()
                .denoise_final(true),
        ),
        Box::new(
            EulerAncestral::new(sde.clone(), grid)
                .unwrap()
                .denoise_final(true),
        ),
    ];
    for s in &samplers {
        let r = s.sample(&model, 4, 2, &mut rng());
        assert!(matches!(r, Err(Error::Diverged { .. })), "{s:?}: {r:?}");
    }
}

/// Issue 18, sampler side: "`Pc::nfe`, `AnnealedLangevin::total_steps` ... panic with
/// integer overflow" for counts near `usize::MAX`.
#[test]
fn count_getters_do_not_overflow() {
    let sde = VpSde::<f64>::default();
    let grid = TimeGrid::uniform(sde.schedule(), 2).unwrap();
    let pc = Pc::new(sde, grid)
        .unwrap()
        .corrector_steps(usize::MAX)
        .unwrap();
    // 3 grid times × (1 predictor + usize::MAX corrector steps) does not fit: None.
    assert_eq!(pc.nfe(), None);
    let ald = AnnealedLangevin::<f64>::new(10.0, 0.1, usize::MAX, usize::MAX, 1e-4);
    assert!(
        ald.is_err(),
        "a plan of usize::MAX² levels cannot be allocated"
    );
}

/// Issue 18, sampler side: "a batch of 1e9 × 2 is not checked before allocating" in
/// `sample_prior` / the initial state. With 1e12 rows this aborts the process ("memory
/// allocation failed"), which would take the whole test binary down: run it alone.
#[test]
fn huge_initial_batches_are_refused_before_allocating() {
    let sde = VpSde::<f64>::default();
    let r = sde.sample_prior(1_000_000_000_000, 2, &mut rng());
    assert!(
        matches!(r, Err(Error::TooLarge { .. })),
        "{:?}",
        r.map(|a| a.dim())
    );
}

/// Issue 18, sampler side: "`prior_log_prob` with NaN x" returns NaN in an `Ok`.
#[test]
fn prior_log_prob_rejects_nan() {
    let sde = VpSde::<f64>::default();
    let mut out = Array1::zeros(1);
    let r = sde.prior_log_prob(ndarray::array![[f64::NAN, 0.0]].view(), out.view_mut());
    assert!(r.is_err(), "{out}");
}

/// Issue 18, sampler side: "Dormand–Prince fed NaN on every call reports 'step size
/// underflow' without naming the non-finite score".
#[test]
fn dopri5_names_a_non_finite_right_hand_side() {
    use score_sde::sample::ProbabilityFlow;
    let sde = VpSde::<f64>::default();
    let pf = ProbabilityFlow::adaptive(sde, Dopri5::new(1e-5, 1e-5).unwrap());
    let model = ScoreFn::new(
        |_x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| {
            out.fill(f64::NAN);
            Ok(())
        },
    );
    let r = pf.run(&model, Array2::zeros((2, 2)), &mut rng());
    // The driver's adaptive solver rejects every step of a non-finite right-hand side and
    // says why the step size underflowed.
    match r {
        Err(Error::Diverged { .. }) | Err(Error::NonFinite { .. }) => {}
        Err(Error::NoConvergence { ref reason, .. }) => {
            assert!(reason.contains("non-finite"), "{r:?}")
        }
        _ => panic!("{r:?}"),
    }
}

/// Issue 18, sampler side: "`transition(s, t)` with s > t (a = 2.9, sd = 0)" returned a
/// non-transition silently. The sampler driver documents the domain `s ≤ t` and
/// debug-asserts it; forwards it is the closed form `(a, √(1 − a²))`, `a = α_t/α_s`, of a
/// variance-preserving schedule.
#[test]
fn transition_backwards_in_time_is_asserted() {
    let sde = VpSde::<f64>::default();
    let (a, sd) = sde.transition(0.1, 0.9);
    let want = sde.alpha(0.9) / sde.alpha(0.1);
    assert!((a - want).abs() <= 1e-15 * want, "{a} vs {want}");
    assert!((sd - (1.0 - want * want).sqrt()).abs() < 1e-12, "{sd}");
    if cfg!(debug_assertions) {
        let r = std::panic::catch_unwind(|| VpSde::<f64>::default().transition(0.9, 0.1));
        assert!(r.is_err(), "transition(0.9, 0.1) = {r:?}");
    }
}

/// Found by the fuzz suite (a 1 000 000-case long mode, seed 7; sampler side): EDM's Heun
/// sampler shows the observer `x = α x̃` and carries a constraint back as `x̃ = x · (1/α)`.
/// With an observed value near `−f64::MAX`, `(α y) · (1/α)` can round past `f64::MAX`: the
/// observer (and the non-finite check) saw a finite state, the sampler's own `x̃` was
/// `−inf`, and the run returned `Ok` with `−inf` samples. An error or finite samples are
/// both fine; an `Ok` holding `−inf` is not.
#[test]
fn edm_imputation_of_a_value_near_f64_max_is_not_a_silent_infinity() {
    use score_sde::condition::{FinalStep, Imputation};
    // The generated schedule: (α(t_min) · y) · (1/α(t_min)) rounds up for it.
    let sched = VpLinear::<f64>::new(0.06540546497461738, 158.82183152577963).unwrap();
    let a = sched.alpha(1e-3);
    assert!((-f64::MAX * a * (1.0 / a)).is_infinite());
    let sde = LinearSde::new(sched);
    let grid = TimeGrid::uniform(&sched, 4).unwrap();
    let edm = EdmHeun::new(sde, grid).unwrap();
    let model = ScoreFn::new(
        |x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            out.assign(&(-&x));
            Ok(())
        },
    );
    for seed in 0..8 {
        let mut imp = Imputation::new(sched, &[true], ndarray::array![-f64::MAX].view(), seed)
            .unwrap()
            .final_step(FinalStep::Noisy);
        let x0 = edm.initial_state(16, 1, &mut rng()).unwrap();
        match edm.run_with(&model, x0, &mut rng(), &mut imp) {
            Ok(run) => assert!(
                run.samples.iter().all(|v| v.is_finite()),
                "seed {seed}: Ok holding {}",
                run.samples
            ),
            Err(e) => assert!(
                matches!(
                    e,
                    Error::Diverged { .. }
                        | Error::Unrepresentable { .. }
                        | Error::NonFinite { .. }
                ),
                "seed {seed}: {e}"
            ),
        }
    }
}

// ------------------------------------------------------------------ found and fixed

/// Found by the fuzz suite: `VpCosine::new` with a huge `β_max` put `T` at 1.0 (θ(T) rounds
/// to π/2), where `α = 0`; now an error naming `beta_max`.
#[test]
fn cosine_schedule_with_huge_beta_max_is_refused() {
    let r = VpCosine::<f64>::new(0.008, 1e300);
    assert!(
        matches!(
            r,
            Err(Error::InvalidParameter {
                name: "beta_max",
                ..
            })
        ),
        "{r:?}"
    );
    assert!(VpCosine::<f32>::new(0.008, 1e30).is_err());
}

/// Found by the fuzz suite: the closed-form inverse log-SNRs returned an infinite time for
/// targets far outside the range (`Edm`: `t = e^{−λ}` at `λ = −1e300`).
#[test]
fn inverse_log_snr_never_returns_an_infinite_time() {
    let r = Edm::<f64>::default().t_of_log_snr(-1e300);
    assert!(
        matches!(
            r,
            Err(Error::InvalidParameter {
                name: "log_snr",
                ..
            })
        ),
        "{r:?}"
    );
    // In range the inverse is exact: EDM λ = −ln t.
    assert!((Edm::<f64>::default().t_of_log_snr(-(3.0f64.ln())).unwrap() - 3.0).abs() < 1e-15);
}

/// Found by the fuzz suite: `GaussianMixture::diffuse` accepted any `t ≥ 0`, and the cosine
/// schedule beyond its `T < 1` has `α = 0` (NaN); exact marginals are now for `[0, T]`.
#[test]
fn diffuse_is_for_times_in_zero_to_t() {
    let gm = problems::ring2d::<f64>();
    let cos = VpCosine::<f64>::default();
    let r = gm.diffuse(&cos, 14.27);
    assert!(matches!(r, Err(Error::TimeOutOfRange { .. })), "{r:?}");
    let model = AnalyticScore::new(gm, cos);
    assert!(matches!(
        model.marginal(9e307),
        Err(Error::TimeOutOfRange { .. })
    ));
}

/// Found by the fuzz suite: `posterior_mean` at extreme `(α, σ)` returned ±inf/NaN in an
/// `Ok`; the gain `α λ / (α² λ + σ²)` times a far `x_t` overflows. Now `Unrepresentable`;
/// in range it equals Tweedie's formula (`(x + σ² s)/α` with the exact score).
#[test]
fn posterior_mean_overflow_is_an_error() {
    let gm = GaussianMixture::gaussian(ndarray::array![0.0], ndarray::array![[1.0]]).unwrap();
    let r = gm.posterior_mean(ndarray::array![[1e300]].view(), 1e-300, 1e-300);
    assert!(matches!(r, Err(Error::Unrepresentable { .. })), "{r:?}");
    // N(0, 1) prior, x_t = α x_0 + σ z with α = 0.6, σ = 0.8: E[x_0 | x_t] = α x_t/(α² + σ²).
    let m = gm
        .posterior_mean(ndarray::array![[2.0]].view(), 0.6, 0.8)
        .unwrap();
    assert!((m[[0, 0]] - 1.2_f64).abs() < 1e-15);
}

/// Found by the fuzz suite: classifier guidance `s + w ∇ log p(y|x)` of two finite but huge
/// terms returned ±inf in an `Ok`.
#[test]
fn guidance_overflow_is_an_error() {
    use score_sde::condition::{ClassifierGradient, ClassifierGuidance};
    #[derive(Debug)]
    struct Huge;
    impl ClassifierGradient<f64> for Huge {
        fn grad_log_prob(
            &self,
            _x: ArrayView2<f64>,
            _t: f64,
            _class: usize,
            mut out: ArrayViewMut2<f64>,
        ) -> Result<()> {
            out.fill(1e308);
            Ok(())
        }
    }
    let model = ScoreFn::new(
        |_x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| {
            out.fill(1e308);
            Ok(())
        },
    );
    let g = ClassifierGuidance::new(&model, Huge, 0, 2.0).unwrap();
    let mut out = Array2::zeros((1, 2));
    let r = g.score(ndarray::array![[0.0, 0.0]].view(), 0.5, out.view_mut());
    assert!(matches!(r, Err(Error::Unrepresentable { .. })), "{r:?}");
    // With w = 0.5 the sum 1.5e308 is finite and exact.
    let g = ClassifierGuidance::new(&model, Huge, 0, 0.5).unwrap();
    g.score(ndarray::array![[0.0, 0.0]].view(), 0.5, out.view_mut())
        .unwrap();
    assert_eq!(out[[0, 0]], 1.5e308);
}

/// Found by the fuzz suite (long mode, as a `NoConvergence` error inside valid sampler
/// runs): `EdmHeun`'s churn on a schedule without a closed-form inverse (`DiscreteVp`)
/// computes `−ln(σ/α)` a few ulps beyond `λ(T)`, and the bisection refused it as "not
/// bracketed". Within rounding (`64 ε max(1, |λ|)`) the inverse is now the end point;
/// farther out it is still an error.
#[test]
fn inverse_log_snr_within_rounding_of_t_is_t() {
    let s = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
    let hi = s.t_range().1;
    let lam_t = s.log_snr(hi);
    let ulp = f64::EPSILON * lam_t.abs().max(1.0);
    for k in [1.0, 4.0, 32.0] {
        assert_eq!(s.t_of_log_snr(lam_t - k * ulp).unwrap(), hi, "{k} ulps");
    }
    assert!(matches!(
        s.t_of_log_snr(lam_t - 1e-6),
        Err(Error::NoConvergence { .. })
    ));
    // Inside the range the bisection is exact to rounding: λ(t(λ(0.5))) = λ(0.5).
    let t = s.t_of_log_snr(s.log_snr(0.5)).unwrap();
    assert!((t - 0.5).abs() < 1e-12, "{t}");
    // EDM churn near T raises the noise level to σ(T)/α(T) (its cap), and `−ln(σ/α)`
    // rounds a few ulps past `λ(T) = ln α − ln σ` for some schedules: find such a schedule,
    // then the sampler must run (it failed with "log-SNR inversion did not converge:
    // target … is not bracketed").
    let beyond = (1..200)
        .filter_map(|k| DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.01 + 1e-4 * k as f64).ok())
        .find(|s| -s.noise_level(1.0).ln() < s.log_snr(1.0))
        .expect("a schedule whose −ln(σ/α) at T rounds beyond λ(T)");
    let sde = LinearSde::new(beyond);
    let grid = TimeGrid::uniform(sde.schedule(), 50).unwrap();
    let edm = EdmHeun::new(sde, grid).unwrap().churn(10.0).unwrap();
    let model = ScoreFn::new(
        |x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            out.assign(&(-&x));
            Ok(())
        },
    );
    let run = edm.sample(&model, 3, 2, &mut rng()).unwrap();
    assert!(run.samples.iter().all(|v| v.is_finite()));
    // f32: the same one-ulp miss (the fuzz suite's f32 cases were 1–2 ulps of f32 out).
    let s32 = DiscreteVp::<f32>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
    let l32 = s32.log_snr(1.0);
    assert_eq!(
        s32.t_of_log_snr(l32 - 2.0 * f32::EPSILON * l32.abs().max(1.0))
            .unwrap(),
        1.0
    );
}

/// Found by the fuzz suite: `bits_per_dim` of `log p` near `−f64::MAX` returned `+inf` in
/// an `Ok` (`−log p / (D ln 2)` overflows for `D = 1`). Now `Unrepresentable`; in range it is
/// the closed form `−log p / (D ln 2) + log₂ B − log₂ a`.
#[test]
fn bits_per_dim_overflow_is_an_error() {
    use score_sde::likelihood::{DataScaling, bits_per_dim};
    let sc = DataScaling::eight_bit_centered();
    let r = bits_per_dim(ndarray::array![-1.0, -f64::MAX].view(), 1, sc);
    assert!(
        matches!(r, Err(Error::Unrepresentable { index: 1, .. })),
        "{r:?}"
    );
    // Two dimensions halve it: finite, 7 bits of offset on top.
    let b = bits_per_dim(ndarray::array![-f64::MAX].view(), 2, sc).unwrap();
    let want = f64::MAX / (2.0 * std::f64::consts::LN_2) + 7.0;
    assert!((b[0] - want).abs() <= 1e-15 * want, "{}", b[0]);
    // log p = −D ln 2 · 3 is 3 + 7 = 10 bits.
    let b = bits_per_dim(ndarray::array![-6.0 * std::f64::consts::LN_2].view(), 2, sc).unwrap();
    assert!((b[0] - 10.0).abs() < 1e-14, "{}", b[0]);
}

/// Found by the fuzz suite: a mutated `.npy` header quoted whole in the error message
/// (a version-2 header may be 4 GiB; a shape entry a 5000-digit "count"). Messages now quote
/// at most a short head.
#[cfg(feature = "npy")]
#[test]
fn npy_errors_quote_the_header_briefly() {
    use score_sde::backend::npy::from_npy_bytes;
    let file = |header: &str| {
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend_from_slice(&(header.len() as u32).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b
    };
    let long = format!("{{'dscr': '<f8', 'junk': '{}' }}", "x".repeat(100_000));
    let digits = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': ({}, 2), }}",
        "9".repeat(5000)
    );
    let descr = format!("{{'descr': '{}', }}", "f".repeat(5000));
    for (h, says) in [
        (long, "has no 'descr'"),
        (digits, "is not a count"),
        (descr, "is not float32"),
    ] {
        match from_npy_bytes::<f64>(&file(&h)) {
            Err(Error::Io(m)) => {
                assert!(
                    m.contains(says) && m.len() < 300,
                    "{} bytes: {says}",
                    m.len()
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

/// Found by the fuzz suite: `wrong_time_shape.onnx` with one byte changed — the node's
/// output renamed from `score` to `scoQe`, so the graph's output has no producer — made
/// tract panic ("no entry found for key") inside `OnnxNetwork::load`. tract now runs under
/// `catch_unwind` and the panic is `Error::Model`.
#[cfg(feature = "onnx")]
#[test]
fn tract_panic_on_a_graph_output_without_producer_is_an_error() {
    use score_sde::backend::onnx::OnnxNetwork;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let mut bytes = std::fs::read(format!("{dir}wrong_time_shape.onnx")).unwrap();
    assert_eq!(&bytes[51..56], b"score");
    bytes[54] = b'Q';
    let p = std::env::temp_dir().join(format!(
        "score_sde_h18_dangling_{}.onnx",
        std::process::id()
    ));
    std::fs::write(&p, &bytes).unwrap();
    let r = OnnxNetwork::load(&p, "x", "t", None);
    std::fs::remove_file(&p).ok();
    match r {
        Err(Error::Model(m)) => assert!(m.contains("panicked"), "{m}"),
        other => panic!("{other:?}"),
    }
}

/// Issue 18: "an ONNX noise model at t = 0" divided by `σ(0) = 0` and returned ±inf; now a
/// typed error naming `sigma(t)` (the check is `Parameterized`'s, which `OnnxScore` wraps).
/// At `t_min` the same call is finite.
#[cfg(feature = "onnx")]
#[test]
fn onnx_noise_model_at_t_zero_is_an_error() {
    use score_sde::backend::onnx::{OnnxOptions, OnnxScore};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let model = OnnxScore::load(
        format!("{dir}ring_noise.onnx"),
        OnnxOptions::new(VpLinear::<f64>::default(), Parameterization::Noise),
    )
    .unwrap();
    let x = ndarray::array![[0.5, -1.0], [2.0, 0.0]];
    let mut out = Array2::zeros((2, 2));
    let r = model.score(x.view(), 0.0, out.view_mut());
    assert!(
        matches!(
            r,
            Err(Error::InvalidParameter {
                name: "sigma(t)",
                ..
            })
        ),
        "{r:?}"
    );
    model.score(x.view(), 1e-3, out.view_mut()).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{out}");
}

/// Found by the fuzz suite (50 000-case long mode after the merge of the solver framework):
/// a shard of a sampler whose rows are coupled (adaptive PF-ODE, Gotta Go Fast, a
/// batch-mean Langevin corrector) was refused with the sampler's `Debug` in the message —
/// a whole 1000-entry `DiscreteVp` table, 10 kB of text. The message names the type.
#[test]
fn shard_refusal_names_the_sampler_briefly() {
    use score_sde::sample::{ProbabilityFlow, RunSpec};
    let sched = DiscreteVp::<f64>::ddpm_linear(1000, 1e-4, 0.02).unwrap();
    let sde = LinearSde::new(sched);
    let pf = ProbabilityFlow::adaptive(sde, Dopri5::new(1e-4, 1e-4).unwrap());
    let model = ScoreFn::new(
        |x: ArrayView2<f64>, _t: f64, mut out: ArrayViewMut2<f64>| -> Result<()> {
            out.assign(&(-&x));
            Ok(())
        },
    );
    let spec = RunSpec::new(3, 4).unwrap().shard(1..3).unwrap();
    let r = pf.sample_rows(&model, 2, &spec);
    let Err(e @ Error::Unsupported { .. }) = r else {
        panic!("{:?}", r.map(|run| run.samples))
    };
    let m = e.to_string();
    assert!(
        m.len() < 300 && m.contains("PfOde") && m.contains("1..3"),
        "{m}"
    );
}

/// Replay of cases the generator found (all fixed in this crate; listed by `(kind, seed)`,
/// re-run through the same harness so that a change of the generator shows up here too).
#[test]
fn replayed_cases_pass() {
    for &(kind, seed) in REPLAY {
        let out = run_case(kind, seed);
        assert!(
            matches!(out, Outcome::Pass),
            "case ({kind}, {seed}): {out:?}"
        );
    }
}

/// `(kind, seed)` of generated cases that failed before their fix, with the generator of
/// the commit that added them (a change of the generator makes them other cases; the
/// written-out tests above are the lasting record).
const REPLAY: &[(usize, u64)] = &[
    // guidance: s + w ∇ log p(y|x) overflowed to inf in an Ok.
    (7, 14660725950207667120),
    // onnx: a mutated fixture made tract panic inside OnnxNetwork::load.
    (11, 8543660971959928931),
    // divergence-bpd-train: bits_per_dim of log p near −f64::MAX was +inf in an Ok.
    (13, 1542804367427541354),
    (13, 11373010939165141311),
    // sampler: a shard refusal printed the sampler's Debug (10 kB with a DiscreteVp table).
    (5, 860573852065795182),
    (5, 16147719225424658311),
    // imputation: Gotta Go Fast's step that did not advance was reported with its Debug.
    (8, 18245014825903443577),
];
