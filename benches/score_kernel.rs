//! Throughput of the exact mixture score kernel: `AnalyticScore::score` and
//! `AnalyticScore::divergence` on the ring2d (2-D, 8 isotropic components, batch 100 000)
//! and rand16d (16-D, 5 full-covariance components, batch 20 000) problems — the peer
//! comparison's sizes — under VP-linear at `t = 0.5`, in f64 and f32. Criterion reports
//! samples per second (`Throughput::Elements`).
//!
//! Run with `cargo bench --bench score_kernel` (or filter, e.g. `-- rand16d/f32`).
//!
//! ring2d's components share one covariance, so it takes the kernel's tied path (linear
//! logits, no per-component precision product); rand16d's are all different and take the
//! general path (one register-tiled `D×D` product per component).
//!
//! ## Before/after the blocked SIMD kernel (issue #8)
//!
//! Measured on this project's 2-core AMD EPYC (AVX2 + FMA, no AVX-512; load average ~9
//! from other builds, so only the ratios mean much), default target, no `RUSTFLAGS`:
//! the previous row-wise kernel (commit 1ae8d15) and the new one, built from this file and
//! run alternately, one benchmark at a time. Median samples/s:
//!
//! | problem (batch)      | dtype | score before → after | ×   | divergence before → after | ×   |
//! |----------------------|-------|----------------------|-----|---------------------------|-----|
//! | ring2d (100 000)     | f64   | 2.72e6 → 1.51e7      | 5.5 | 2.62e6 → 1.35e7           | 5.1 |
//! | ring2d (100 000)     | f32   | 3.37e6 → 3.00e7      | 8.9 | 3.18e6 → 2.37e7           | 7.4 |
//! | rand16d (20 000)     | f64   | 9.36e5 → 3.04e6      | 3.2 | 9.23e5 → 3.30e6           | 3.6 |
//! | rand16d (20 000)     | f32   | 1.18e6 → 4.58e6      | 3.9 | 1.23e6 → 4.34e6           | 3.5 |
//!
//! (These figures predate the tied path and the register-tiled product: see the table
//! below for those.)
//!
//! ## Tied path and register-tiled product (issue #8, second round)
//!
//! Main at 0f66ee0 ("before") against this kernel ("after"): the tied path for ring2d,
//! and for rand16d the register-tiled product (6 output coordinates × 16 rows in f32,
//! 4 × 8 in f64) with `X − α μ_k` formed on the fly, AVX2 register transposes in and
//! out of the block, and the per-call constants computed once per `(α, σ)`. Both
//! binaries built from this file, run alternately twice (`--warm-up-time 1
//! --measurement-time 2`) on the shared 2-core machine (load average ~2.5 from the other
//! sessions, so the two rounds differ by up to ±10 %). Median samples/s, round 1 / round 2:
//!
//! | problem (batch)  | dtype | score before → after              | ×           | divergence before → after         | ×           |
//! |------------------|-------|-----------------------------------|-------------|-----------------------------------|-------------|
//! | ring2d (100 000) | f64   | 3.16e7 / 3.31e7 → 4.44e7 / 4.52e7 | 1.41 / 1.36 | 2.71e7 / 2.83e7 → 4.02e7 / 4.19e7 | 1.49 / 1.48 |
//! | ring2d (100 000) | f32   | 6.38e7 / 7.31e7 → 8.32e7 / 8.59e7 | 1.30 / 1.18 | 5.81e7 / 6.56e7 → 7.14e7 / 7.58e7 | 1.23 / 1.16 |
//! | rand16d (20 000) | f64   | 6.48e6 / 6.97e6 → 8.12e6 / 8.31e6 | 1.25 / 1.19 | 6.03e6 / 6.65e6 → 8.39e6 / 8.18e6 | 1.39 / 1.23 |
//! | rand16d (20 000) | f32   | 1.01e7 / 1.09e7 → 1.59e7 / 1.68e7 | 1.58 / 1.54 | 1.02e7 / 1.11e7 → 1.60e7 / 1.62e7 | 1.56 / 1.45 |
//!
//! ring2d in f32 is now dominated by the 8 polynomial exponentials per row of the
//! softmax, which the tied path does not remove.

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
