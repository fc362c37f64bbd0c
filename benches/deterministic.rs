//! Criterion benches of the deterministic and fast samplers at 10–20 NFE on both problems
//! (exact mixture score, VP SDE). Short measurement times: these are for relative cost.
//!
//! ```text
//! cargo bench --bench deterministic
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use score_sde::prelude::*;
use score_sde::sample::{
    Ddim, Dopri5, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral, FixedMethod, ProbabilityFlow,
};
use std::hint::black_box;
use std::time::Duration;

fn samplers(sde: &VpSde<f64>) -> Vec<(&'static str, Box<dyn Sampler<f64>>)> {
    let s = sde.schedule();
    let lg = |n| TimeGrid::log_snr(s, n).unwrap();
    let kg = |n| TimeGrid::karras(s, n, 7.0).unwrap();
    vec![
        ("ddim-20", Box::new(Ddim::new(sde.clone(), lg(20)).unwrap())),
        (
            "ddim-eta1-20",
            Box::new(Ddim::new(sde.clone(), lg(20)).unwrap().eta(1.0).unwrap()),
        ),
        (
            "dpm++2M-10",
            Box::new(DpmSolverPp::new(sde.clone(), lg(10)).unwrap()),
        ),
        (
            "dpm++2M-20",
            Box::new(DpmSolverPp::new(sde.clone(), lg(20)).unwrap()),
        ),
        (
            "dpm++3M-20",
            Box::new(
                DpmSolverPp::new(sde.clone(), lg(20))
                    .unwrap()
                    .order(3)
                    .unwrap(),
            ),
        ),
        (
            "dpm++2M-sde-20",
            Box::new(
                DpmSolverPp::new(sde.clone(), lg(20))
                    .unwrap()
                    .variant(DpmVariant::Sde)
                    .unwrap(),
            ),
        ),
        (
            "edm-heun-10x2",
            Box::new(EdmHeun::new(sde.clone(), kg(10)).unwrap()),
        ),
        (
            "euler-ancestral-20",
            Box::new(EulerAncestral::new(sde.clone(), kg(20)).unwrap()),
        ),
        (
            "pf-euler-20",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Euler, lg(20)).unwrap()),
        ),
        (
            "pf-heun-10x2",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Heun, lg(10)).unwrap()),
        ),
        (
            "pf-rk4-5x4",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, lg(5)).unwrap()),
        ),
        (
            "pf-dopri5-1e-2",
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-2, 1e-2).unwrap(),
            )),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let sde = VpSde::<f64>::default();
    for (name, gm, n) in [
        ("ring2d", problems::ring2d::<f64>(), 10_000),
        ("rand16d", problems::rand16d::<f64>(), 2_000),
    ] {
        let model = AnalyticScore::new(gm.clone(), *sde.schedule());
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
        let x = sde.sample_prior(n, gm.dim(), &mut rng).unwrap();
        let mut group = c.benchmark_group(format!("deterministic/{name}/N={n}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        for (label, s) in samplers(&sde) {
            group.bench_function(label, |b| {
                b.iter(|| {
                    let run = s
                        .run(black_box(&model), black_box(x.clone()), &mut rng)
                        .unwrap();
                    black_box(run.samples)
                })
            });
        }
        group.finish();
    }
}

/// DPM-Solver++ 2M steps at the peer comparison's sizes (ring2d N = 100 000, rand16d
/// N = 20 000) in f32 (diffusers' precision) and f64; throughput in samples·steps.
fn bench_dpm_steps<F: Real>(c: &mut Criterion, name: &str, gm: GaussianMixture<F>, n: usize) {
    const K: usize = 10;
    let sde = VpSde::<F>::default();
    let model = AnalyticScore::new(gm.clone(), *sde.schedule());
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let x = sde.sample_prior(n, gm.dim(), &mut rng).unwrap();
    let s = DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(sde.schedule(), K).unwrap()).unwrap();
    let ty = std::any::type_name::<F>();
    let mut group = c.benchmark_group(format!("sampler_step/{name}/{ty}"));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(criterion::Throughput::Elements((n * K) as u64));
    group.bench_function(format!("dpm++2M/{n}"), |b| {
        b.iter(|| {
            let run = s
                .run(black_box(&model), black_box(x.clone()), &mut rng)
                .unwrap();
            black_box(run.samples)
        })
    });
    group.finish();
}

fn bench_steps(c: &mut Criterion) {
    bench_dpm_steps::<f32>(c, "ring2d", problems::ring2d(), 100_000);
    bench_dpm_steps::<f64>(c, "ring2d", problems::ring2d(), 100_000);
    bench_dpm_steps::<f32>(c, "rand16d", problems::rand16d(), 20_000);
    bench_dpm_steps::<f64>(c, "rand16d", problems::rand16d(), 20_000);
}

criterion_group!(benches, bench, bench_steps);
criterion_main!(benches);
