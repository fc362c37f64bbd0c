//! Criterion benches of the per-row normal generator ([`RowNoise`]) on the peer
//! problems' shapes (N × D = 100 000 × 2 and 20 000 × 16), throughput in normals:
//!
//! * `row_noise_fill`: [`RowNoise::fill`] (xoshiro128++ per row, vectorised Box–Muller);
//! * `pcg_ziggurat_fill`: the generator it replaced, one `rand_pcg::Pcg64Mcg` per row with
//!   rand_distr's `f64` ziggurat rounded to `F`, for the ratio in the same run;
//! * `ula_fused_update`: steps of the ULA sampler with a nearly free score (`s = −x`),
//!   whose step is the fused update `x ← x + δ s + √(2δ) z` (noise drawn inside the
//!   update loop, crate-private) plus the score copy and the non-finite scan.
//!
//! `cargo bench --bench noise`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_pcg::Pcg64Mcg;
use score_sde::sample::{RowNoise, Ula};
use score_sde::score::ScoreFn;
use score_sde::{Real, Sampler};
use std::hint::black_box;
use std::time::Duration;

/// ULA steps per timed run.
const ULA_STEPS: usize = 50;

/// The previous implementation: one PCG stream per row, ziggurat in f64, rounded to `F`.
fn pcg_fill<F: Real>(streams: &mut [Pcg64Mcg], out: &mut Array2<F>) {
    let d = out.ncols();
    if let Some(flat) = out.as_slice_mut() {
        for (row, g) in flat.chunks_exact_mut(d).zip(streams.iter_mut()) {
            for v in row {
                let z: f64 = StandardNormal.sample(g);
                *v = F::lit(z);
            }
        }
    }
}

fn bench_type<F: Real>(c: &mut Criterion, ty: &str) {
    for (n, d) in [(100_000usize, 2usize), (20_000, 16)] {
        let mut g = c.benchmark_group(format!("noise_{ty}"));
        g.throughput(Throughput::Elements((n * d) as u64));
        let id = format!("{n}x{d}");
        let mut out = Array2::<F>::zeros((n, d));
        let mut noise = RowNoise::new(1, n);
        g.bench_function(BenchmarkId::new("row_noise_fill", &id), |b| {
            b.iter(|| {
                noise.fill(out.view_mut());
                black_box(&out);
            })
        });
        let mut pcg: Vec<Pcg64Mcg> = (0..n as u64).map(Pcg64Mcg::seed_from_u64).collect();
        g.bench_function(BenchmarkId::new("pcg_ziggurat_fill", &id), |b| {
            b.iter(|| {
                pcg_fill(&mut pcg, &mut out);
                black_box(&out);
            })
        });
        g.finish();
        // ULA with s(x) = −x (stationary law N(0, 1/(1 − δ/2))): per step one score copy,
        // the fused update and the finite scan.
        let mut g = c.benchmark_group(format!("noise_{ty}"));
        g.throughput(Throughput::Elements((n * d * ULA_STEPS) as u64));
        let model = ScoreFn::new(|x: ArrayView2<F>, _t: F, mut out: ArrayViewMut2<F>| {
            Zip::from(&mut out).and(&x).for_each(|o, &v| *o = -v);
            Ok(())
        });
        let ula = Ula::<F>::new(F::lit(0.01), ULA_STEPS).unwrap();
        let x0 = Array2::<F>::zeros((n, d));
        let mut rng = Pcg64Mcg::seed_from_u64(0);
        g.bench_function(BenchmarkId::new("ula_fused_update", &id), |b| {
            b.iter(|| black_box(ula.run(&model, x0.clone(), &mut rng).unwrap()))
        });
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_type::<f32>(c, "f32");
    bench_type::<f64>(c, "f64");
}

criterion_group! {
    name = noise;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(noise);
