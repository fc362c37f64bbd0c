//! Feature `rayon`: the batch is split into fixed row blocks whatever the thread count and
//! every row has its own random stream, so results are bit-identical for 1, 2 and 3 threads.
//!
//! `cargo test --features rayon --test parallel`
#![cfg(feature = "rayon")]

use ndarray::{Array1, Array2};
use rand::SeedableRng;
use score_sde::prelude::*;
use score_sde::sample::{Ddim, DpmSolverPp, Pc, PredictorKind, StepRule, Ula};

/// Several full parallel blocks (4096 rows) and a ragged last one.
const N: usize = 2 * 4096 + 1234;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

/// `f` run inside pools of 1, 2 and 3 threads.
fn in_pools<R: Send>(f: impl Fn() -> R + Sync) -> Vec<R> {
    [1, 2, 3]
        .into_iter()
        .map(|t| {
            let p = pool(t);
            assert_eq!(p.current_num_threads(), t);
            p.install(&f)
        })
        .collect()
}

fn assert_all_identical<T: PartialEq + std::fmt::Debug>(what: &str, runs: &[T]) {
    for (i, r) in runs.iter().enumerate().skip(1) {
        // Exact equality: the promise is bit-identical output, not closeness.
        assert!(
            *r == runs[0],
            "{what}: {} threads differ from 1 thread",
            i + 1
        );
    }
}

fn random_batch<F: Real>(n: usize, d: usize, scale: f64, seed: u64) -> Array2<F> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| F::lit(scale * f64::standard_normal(&mut rng)))
}

fn model_outputs_identical<F: Real>(mixture: GaussianMixture<F>) {
    let d = mixture.dim();
    let model = AnalyticScore::new(mixture, VpLinear::<F>::default());
    let x = random_batch::<F>(N, d, 3.0, 11);
    for t in [0.01, 0.3, 0.9] {
        let t = F::lit(t);
        let runs = in_pools(|| {
            let mut s = Array2::<F>::zeros((N, d));
            let mut lp = Array1::<F>::zeros(N);
            let mut div = Array1::<F>::zeros(N);
            model.score(x.view(), t, s.view_mut()).expect("score");
            model
                .log_prob(x.view(), t, lp.view_mut())
                .expect("log_prob");
            model
                .divergence(x.view(), t, div.view_mut())
                .expect("exact divergence")
                .expect("divergence");
            (s, lp, div)
        });
        assert_all_identical("score, log-density, divergence", &runs);
        assert!(runs[0].0.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn exact_score_is_identical_for_any_thread_count() {
    model_outputs_identical(problems::ring2d::<f64>());
    model_outputs_identical(problems::rand16d::<f64>());
    model_outputs_identical(problems::ring2d::<f32>());
    model_outputs_identical(problems::rand16d::<f32>());
}

fn samplers<F: Real>(steps: usize) -> Vec<(&'static str, Box<dyn Sampler<F>>)> {
    let sde = VpSde::<F>::default();
    let s = *sde.schedule();
    let grid = || TimeGrid::uniform(&s, steps).expect("grid");
    vec![
        (
            "Euler–Maruyama",
            Box::new(Pc::new(sde.clone(), grid()).expect("pc")),
        ),
        (
            "PC reverse diffusion + Langevin, batch-mean rule (a reduction over rows)",
            Box::new(
                Pc::new(sde.clone(), grid())
                    .expect("pc")
                    .predictor(PredictorKind::ReverseDiffusion)
                    .unwrap()
                    .snr(0.16)
                    .expect("snr"),
            ),
        ),
        (
            "PC ancestral + Langevin σ-rule, denoised",
            Box::new(
                Pc::new(sde.clone(), grid())
                    .expect("pc")
                    .predictor(PredictorKind::Ancestral)
                    .unwrap()
                    .snr(0.1)
                    .expect("snr")
                    .step_rule(StepRule::Sigma)
                    .expect("rule")
                    .denoise_final(true),
            ),
        ),
        (
            "PC Euler–Maruyama + Langevin per-sample rule",
            Box::new(
                Pc::new(sde.clone(), grid())
                    .expect("pc")
                    .step_rule(StepRule::PER_SAMPLE)
                    .expect("rule"),
            ),
        ),
        (
            "DPM-Solver++ 2M",
            Box::new(
                DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&s, steps).expect("grid"))
                    .expect("dpm"),
            ),
        ),
        (
            "DPM-Solver++ 3M",
            Box::new(
                DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(&s, steps).expect("grid"))
                    .expect("dpm")
                    .order(3)
                    .expect("order"),
            ),
        ),
        (
            "DDIM",
            Box::new(Ddim::new(sde.clone(), grid()).expect("ddim")),
        ),
        (
            "ULA",
            Box::new(
                Ula::new(F::lit(0.01), steps)
                    .expect("ula")
                    .score_time(F::lit(1e-3))
                    .expect("t"),
            ),
        ),
    ]
}

fn samples_identical<F: Real>(mixture: GaussianMixture<F>, steps: usize) {
    let d = mixture.dim();
    let model = AnalyticScore::new(mixture, VpLinear::<F>::default());
    for (name, sampler) in samplers::<F>(steps) {
        let runs = in_pools(|| {
            let mut rng = rand_pcg::Pcg64::seed_from_u64(5);
            let run = sampler.sample(&model, N, d, &mut rng).expect("sampling");
            (run.samples, run.nfe)
        });
        assert_all_identical(name, &runs);
        // Identical NaNs would compare unequal, identical garbage equal: demand finite samples.
        assert!(runs[0].0.iter().all(|v| v.is_finite()), "{name}");
    }
}

#[test]
fn samples_are_identical_for_any_thread_count_f64() {
    samples_identical(problems::ring2d::<f64>(), 20);
    samples_identical(problems::rand16d::<f64>(), 6);
}

#[test]
fn samples_are_identical_for_any_thread_count_f32() {
    samples_identical(problems::ring2d::<f32>(), 20);
    samples_identical(problems::rand16d::<f32>(), 6);
}

/// Row `r`'s noise is the same in a batch of `N` drawn with 3 threads and in a batch of
/// one row: the streams are per row, so neither the split nor the batch size matters.
#[test]
fn row_noise_does_not_depend_on_threads_or_batch_size() {
    use score_sde::sample::RowNoise;
    let runs = in_pools(|| {
        let mut z = Array2::<f64>::zeros((N, 3));
        RowNoise::new(9, N).fill(z.view_mut());
        z
    });
    assert_all_identical("row noise", &runs);
    let mut alone = Array2::<f64>::zeros((1, 3));
    RowNoise::new(9, 1).fill(alone.view_mut());
    assert_eq!(runs[2].row(0), alone.row(0));
}
