//! Criterion bench: PF-ODE log-likelihood of 1 000 points in 2-D (ring2d) and 16-D (rand16d),
//! Dormand–Prince at rtol = atol = 1e-5 (score_sde's default), exact divergence and one
//! Hutchinson probe.
//!
//! ```text
//! cargo bench --bench likelihood
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use score_sde::likelihood::{DivergenceMethod, OdeLikelihood};
use score_sde::prelude::*;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let sde = VpSde::<f64>::default();
    let mut g = c.benchmark_group("likelihood");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1000));
    for (name, p0) in [
        ("ring2d", problems::ring2d::<f64>()),
        ("rand16d", problems::rand16d::<f64>()),
    ] {
        let model = AnalyticScore::new(p0.clone(), *sde.schedule());
        let mut rng = rand_pcg::Pcg64::seed_from_u64(0);
        let x = p0
            .diffuse(sde.schedule(), 1e-3)
            .unwrap()
            .sample(1000, &mut rng)
            .unwrap();
        for (label, method) in [
            ("exact-div", DivergenceMethod::Exact),
            ("hutchinson-1", DivergenceMethod::hutchinson(1)),
        ] {
            let lik = OdeLikelihood::new(sde.clone())
                .unwrap()
                .divergence(method)
                .unwrap();
            g.bench_function(format!("{name}/{label}"), |b| {
                b.iter(|| black_box(lik.log_prob(&model, x.view(), &mut rng).unwrap()));
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
