//! Criterion benches of the stochastic samplers on the two reference problems
//! (exact analytic score, VP SDE), with small step counts: the figure of merit is
//! samples·steps per second, comparable with the peers' `sample_steps_per_s`.
//!
//! `cargo bench --bench stochastic`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use score_sde::gmm::{AnalyticScore, GaussianMixture, problems};
use score_sde::grid::TimeGrid;
use score_sde::sample::{AnnealedLangevin, CorrectorKind, Mala, Pc, PredictorKind, StepRule, Ula};
use score_sde::schedule::Edm;
use score_sde::sde::VpSde;
use score_sde::{Real, Sampler, ScoreModel};
use std::hint::black_box;
use std::time::Duration;

const STEPS: usize = 10;

type Case<'a> = (&'static str, Box<dyn Sampler<f64>>, &'a dyn ScoreModel<f64>);

fn bench_problem(c: &mut Criterion, name: &str, p0: GaussianMixture<f64>, n: usize) {
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(p0.clone(), *sde.schedule());
    let edm_model = AnalyticScore::new(p0.clone(), Edm::<f64>::default());
    let p_eps = p0.diffuse(sde.schedule(), 1e-3).unwrap();
    let dim = p0.dim();
    let grid = TimeGrid::uniform(sde.schedule(), STEPS).unwrap();
    let pc = |p: PredictorKind| {
        Pc::new(sde.clone(), grid.clone())
            .unwrap()
            .predictor(p)
            .unwrap()
    };
    let samplers: Vec<Case> = vec![
        ("em", Box::new(pc(PredictorKind::EulerMaruyama)), &model),
        (
            "reverse_diffusion",
            Box::new(pc(PredictorKind::ReverseDiffusion)),
            &model,
        ),
        ("ancestral", Box::new(pc(PredictorKind::Ancestral)), &model),
        (
            "pc_rd_langevin_batchmean",
            Box::new(
                pc(PredictorKind::ReverseDiffusion)
                    .corrector(CorrectorKind::langevin(0.16).unwrap())
                    .unwrap(),
            ),
            &model,
        ),
        (
            "pc_rd_langevin_persample",
            Box::new(
                pc(PredictorKind::ReverseDiffusion)
                    .step_rule(StepRule::PER_SAMPLE)
                    .unwrap(),
            ),
            &model,
        ),
        (
            "ula",
            Box::new(Ula::new(0.01, STEPS).unwrap().score_time(1e-3).unwrap()),
            &model,
        ),
        (
            "mala",
            Box::new(
                Mala::new(p_eps, 0.01, STEPS)
                    .unwrap()
                    .score_time(1e-3)
                    .unwrap(),
            ),
            &model,
        ),
        (
            "annealed_langevin",
            Box::new(AnnealedLangevin::new(10.0, 0.1, 2, STEPS / 2, 3e-3).unwrap()),
            &edm_model,
        ),
    ];
    let mut group = c.benchmark_group(format!("stochastic/{name}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements((n * STEPS) as u64));
    for (label, sampler, m) in &samplers {
        let x0 = sampler
            .initial_state(n, dim, &mut rand_pcg::Pcg64::seed_from_u64(0))
            .unwrap();
        group.bench_with_input(BenchmarkId::new(*label, n), &x0, |b, x0| {
            b.iter(|| {
                let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
                black_box(sampler.run(*m, x0.clone(), &mut rng).unwrap())
            })
        });
    }
    group.finish();
}

/// The per-step cost at the peer comparison's sizes (ring2d N = 100 000, rand16d
/// N = 20 000), f64 and f32: Euler–Maruyama and PC (reverse diffusion + Langevin) steps,
/// throughput in samples·steps (one NFE per EM step, two per PC step). With
/// `--features rayon` the same benches run on rayon's global pool (all cores).
fn bench_steps<F: Real>(c: &mut Criterion, name: &str, p0: GaussianMixture<F>, n: usize) {
    const K: usize = 5;
    let sde = VpSde::<F>::default();
    let model = AnalyticScore::new(p0.clone(), *sde.schedule());
    let grid = TimeGrid::uniform(sde.schedule(), K).unwrap();
    let em = Pc::new(sde.clone(), grid.clone()).unwrap();
    let pc = em
        .clone()
        .predictor(PredictorKind::ReverseDiffusion)
        .unwrap()
        .snr(0.16)
        .unwrap();
    let ty = std::any::type_name::<F>();
    let mut group = c.benchmark_group(format!("sampler_step/{name}/{ty}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((n * K) as u64));
    let x0 = em
        .initial_state(n, p0.dim(), &mut rand_pcg::Pcg64::seed_from_u64(0))
        .unwrap();
    for (label, sampler) in [("em", &em), ("pc_rd_langevin", &pc)] {
        group.bench_with_input(BenchmarkId::new(label, n), &x0, |b, x0| {
            b.iter(|| {
                let mut rng = rand_pcg::Pcg64::seed_from_u64(1);
                black_box(sampler.run(&model, x0.clone(), &mut rng).unwrap())
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_problem(c, "ring2d", problems::ring2d(), 10_000);
    bench_problem(c, "rand16d", problems::rand16d(), 2_000);
    bench_steps::<f64>(c, "ring2d", problems::ring2d(), 100_000);
    bench_steps::<f32>(c, "ring2d", problems::ring2d(), 100_000);
    bench_steps::<f64>(c, "rand16d", problems::rand16d(), 20_000);
    bench_steps::<f32>(c, "rand16d", problems::rand16d(), 20_000);
}

criterion_group!(stochastic, benches);
criterion_main!(stochastic);
