//! One run split into row ranges gives the run's samples bit for bit: every sampler, f32
//! and f64, rows split as {0..n}, {0..k, k..n} and three uneven shards (offsets that are
//! not multiples of the 16-row noise chunks nor of the 4096-row parallel blocks). With the
//! `rayon` feature (CI runs this file with `--all-features`) the batch of 8 315 rows is cut
//! into parallel blocks, so the same check covers thread splits too.

mod common;

use ndarray::{Array2, Axis, concatenate};
use score_sde::prelude::*;
use score_sde::sample::{
    AnnealedLangevin, Ddim, Dopri5, DpmAdaptive, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral,
    FixedMethod, GottaGoFast, Mala, Pc, PcOrder, PredictorKind, ProbabilityFlow, RunSpec, StepRule,
    Ula, UniPc,
};

/// Rows: two parallel blocks and a ragged tail.
const N: usize = 2 * 4096 + 123;

fn samplers<F: Real>() -> Vec<(&'static str, Box<dyn Sampler<F>>)> {
    let sde = VpSde::<F>::default();
    let u = TimeGrid::uniform(sde.schedule(), 8).unwrap();
    let l = TimeGrid::log_snr(sde.schedule(), 8).unwrap();
    let k = TimeGrid::karras(sde.schedule(), 8, F::lit(7.0)).unwrap();
    let pc = || Pc::new(sde.clone(), u.clone()).unwrap();
    vec![
        ("PC EM", Box::new(pc())),
        (
            "PC RD + σ-rule Langevin, denoised",
            Box::new(
                pc().predictor(PredictorKind::ReverseDiffusion)
                    .unwrap()
                    .snr(0.16)
                    .unwrap()
                    .step_rule(StepRule::Sigma)
                    .unwrap()
                    .denoise_final(true),
            ),
        ),
        (
            "PC ancestral + per-sample Langevin, predictor first",
            Box::new(
                pc().predictor(PredictorKind::Ancestral)
                    .unwrap()
                    .snr(0.1)
                    .unwrap()
                    .step_rule(StepRule::PER_SAMPLE)
                    .unwrap()
                    .order(PcOrder::PredictorFirst),
            ),
        ),
        ("DDIM", Box::new(Ddim::new(sde.clone(), l.clone()).unwrap())),
        (
            "DDIM η = 0.7",
            Box::new(
                Ddim::new(sde.clone(), l.clone())
                    .unwrap()
                    .eta(F::lit(0.7))
                    .unwrap(),
            ),
        ),
        (
            "DPM-Solver++ 3M",
            Box::new(
                DpmSolverPp::new(sde.clone(), l.clone())
                    .unwrap()
                    .order(3)
                    .unwrap(),
            ),
        ),
        (
            "DPM-Solver++ 2M SDE",
            Box::new(
                DpmSolverPp::new(sde.clone(), l.clone())
                    .unwrap()
                    .variant(DpmVariant::Sde)
                    .unwrap(),
            ),
        ),
        (
            "EDM Heun churn",
            Box::new(
                EdmHeun::new(sde.clone(), k.clone())
                    .unwrap()
                    .churn(F::lit(10.0))
                    .unwrap(),
            ),
        ),
        (
            "Euler ancestral",
            Box::new(
                EulerAncestral::new(sde.clone(), k)
                    .unwrap()
                    .denoise_final(true),
            ),
        ),
        (
            "PF-ODE RK4",
            Box::new(ProbabilityFlow::fixed(sde.clone(), FixedMethod::Rk4, u.clone()).unwrap()),
        ),
        (
            "UniPC-3",
            Box::new(
                UniPc::new(sde.clone(), u.clone())
                    .unwrap()
                    .order(3)
                    .unwrap(),
            ),
        ),
        (
            "DPM-Solver-3 on a grid",
            Box::new(DpmAdaptive::fixed(sde.clone(), 3, u.clone()).unwrap()),
        ),
        (
            "Gotta Go Fast on a grid",
            Box::new(GottaGoFast::fixed(sde.clone(), u).unwrap()),
        ),
        ("ULA", Box::new(Ula::new(F::lit(0.01), 6).unwrap())),
        (
            "MALA",
            Box::new(Mala::new(problems::ring2d::<F>(), F::lit(0.01), 6).unwrap()),
        ),
        (
            "annealed Langevin",
            Box::new(AnnealedLangevin::new(F::one(), F::lit(0.01), 3, 3, F::lit(1e-4)).unwrap()),
        ),
    ]
}

fn glue<F: Real>(parts: &[Array2<F>]) -> Array2<F> {
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    concatenate(Axis(0), &views).unwrap()
}

fn splits_are_bit_identical<F: Real>() {
    let model = AnalyticScore::new(problems::ring2d::<F>(), VpLinear::<F>::default());
    let run = RunSpec::new(2026, N).unwrap();
    for (name, s) in samplers::<F>() {
        let whole = s.sample_rows(&model, 2, &run).unwrap().samples;
        assert!(whole.iter().all(|v| v.is_finite()), "{name}");
        // {0..k, k..n} with k inside the first parallel block, not on a noise chunk.
        let k = 1000 + 7;
        let two = [run.shard(0..k).unwrap(), run.shard(k..N).unwrap()];
        // Three uneven shards across the block boundary at 4096.
        let three = [
            run.shard(0..4090).unwrap(),
            run.shard(4090..4101).unwrap(),
            run.shard(4101..N).unwrap(),
        ];
        for shards in [&two[..], &three[..]] {
            let parts: Vec<_> = shards
                .iter()
                .map(|sh| s.sample_rows(&model, 2, sh).unwrap().samples)
                .collect();
            let glued = glue(&parts);
            // Bit for bit: compare the bit patterns, not within a tolerance.
            let same = glued
                .iter()
                .zip(whole.iter())
                .all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits());
            assert!(
                same,
                "{name}: {} shards differ from the whole run",
                shards.len()
            );
        }
        // `split` and `part` give the same shards as an array job would ask for.
        let parts: Vec<_> = (0..3)
            .map(|i| {
                s.sample_rows(&model, 2, &run.part(i, 3).unwrap())
                    .unwrap()
                    .samples
            })
            .collect();
        assert_eq!(glue(&parts), whole, "{name}: split(3)");
    }
}

#[test]
fn every_sampler_splits_bit_identically_f64() {
    splits_are_bit_identical::<f64>();
}

#[test]
fn every_sampler_splits_bit_identically_f32() {
    splits_are_bit_identical::<f32>();
}

#[test]
fn samplers_whose_rows_interact_refuse_shards_but_run_whole() {
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::<f64>::default());
    let run = RunSpec::new(5, 300).unwrap();
    let coupled: Vec<(&str, Box<dyn Sampler<f64>>)> = vec![
        (
            "batch-mean Langevin",
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 5).unwrap())
                    .unwrap()
                    .snr(0.16)
                    .unwrap(),
            ),
        ),
        (
            "adaptive PF-ODE",
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-3, 1e-3).unwrap(),
            )),
        ),
        (
            "adaptive DPM-Solver-23",
            Box::new(DpmAdaptive::new(sde.clone(), 3, 1e-2, 1e-2).unwrap()),
        ),
        (
            "adaptive Gotta Go Fast",
            Box::new(GottaGoFast::new(sde.clone(), 5e-2, 5e-2).unwrap()),
        ),
    ];
    for (name, s) in coupled {
        assert!(s.sample_rows(&model, 2, &run).is_ok(), "{name}: whole run");
        let e = s
            .sample_rows(&model, 2, &run.shard(0..100).unwrap())
            .unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{name}: {e}");
    }
}

#[test]
fn run_specs_are_validated() {
    assert!(RunSpec::new(1, 0).is_err());
    let r = RunSpec::new(1, 10).unwrap();
    assert!(r.shard(3..3).is_err());
    assert!(r.shard(5..11).is_err());
    assert!(r.split(0).is_err() && r.split(11).is_err());
    let parts = r.split(3).unwrap();
    assert_eq!(
        parts.iter().map(|p| p.rows.clone()).collect::<Vec<_>>(),
        vec![0..4, 4..7, 7..10]
    );
    assert!(r.part(3, 3).is_err());
    // A spec whose rows do not match the batch is a shape error, not a wrong answer.
    let sde = VpSde::<f64>::default();
    let pc = Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 3).unwrap()).unwrap();
    let model = AnalyticScore::new(problems::ring2d::<f64>(), VpLinear::<f64>::default());
    let x = pc.initial_rows(&r, 2).unwrap();
    let e = pc
        .run_rows(
            &model,
            x,
            &r.shard(0..4).unwrap(),
            &mut score_sde::observe::NoObserver,
        )
        .unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { .. }), "{e}");
    // The same spec from a plain RNG is reproducible through its seed.
    let a = RunSpec::from_rng(&mut common::rng(3), 10).unwrap();
    let b = RunSpec::from_rng(&mut common::rng(3), 10).unwrap();
    assert_eq!(a, b);
}
