//! Throughput of the exact mixture score kernel: `AnalyticScore::score` and
//! `AnalyticScore::divergence` on the ring2d (2-D, 8 isotropic components, batch 100 000)
//! and rand16d (16-D, 5 full-covariance components, batch 20 000) problems — the peer
//! comparison's sizes — under VP-linear at `t = 0.5`, in f64 and f32. Criterion reports
//! samples per second (`Throughput::Elements`).
//!
//! Run with `cargo bench --bench score_kernel`.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array1, Array2};
use rand::SeedableRng;
use score_sde::gmm::{AnalyticScore, GaussianMixture, problems};
use score_sde::schedule::VpLinear;
use score_sde::sde::VpSde;
use score_sde::{Real, ScoreModel};
use std::hint::black_box;
use std::time::Duration;

const T: f64 = 0.5;
/// Batch sizes of the peer comparison (ring2d N = 100 000, rand16d N = 20 000).
const RING_N: usize = 100_000;
const RAND16_N: usize = 20_000;

/// Benchmark score and divergence of `gm` diffused under VP-linear, on a batch of
/// samples of `p_t` itself (so the responsibilities are those a sampler sees).
fn bench_problem<F: Real>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    gm: GaussianMixture<F>,
    batch: usize,
) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
    let sde = VpSde::<F>::default();
    let x0 = gm.sample(batch, &mut rng).expect("sample");
    let t = F::lit(T);
    let (x, _) = sde.perturb(x0.view(), t, &mut rng).expect("perturb");
    let model = AnalyticScore::new(gm, VpLinear::<F>::default());
    let mut out = Array2::<F>::zeros(x.raw_dim());
    let mut div = Array1::<F>::zeros(batch);
    let ty = std::any::type_name::<F>();
    g.throughput(Throughput::Elements(batch as u64));

    g.bench_function(format!("{name}/{ty}/score"), |b| {
        b.iter(|| {
            model
                .score(black_box(x.view()), black_box(t), out.view_mut())
                .expect("score");
            black_box(&out);
        })
    });
    g.bench_function(format!("{name}/{ty}/divergence"), |b| {
        b.iter(|| {
            model
                .divergence(black_box(x.view()), black_box(t), div.view_mut())
                .expect("divergence is available")
                .expect("divergence");
            black_box(&div);
        })
    });
}

fn score_kernel(c: &mut Criterion) {
    let mut g = c.benchmark_group("score_kernel");
    g.measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    bench_problem(&mut g, "ring2d", problems::ring2d::<f64>(), RING_N);
    bench_problem(&mut g, "ring2d", problems::ring2d::<f32>(), RING_N);
    bench_problem(&mut g, "rand16d", problems::rand16d::<f64>(), RAND16_N);
    bench_problem(&mut g, "rand16d", problems::rand16d::<f32>(), RAND16_N);
    g.finish();
}

criterion_group!(benches, score_kernel);
criterion_main!(benches);
