//! Quickstart: sample the 2-D eight-component ring with several samplers and score each
//! against exact samples. Built in, nothing downloaded:
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! Every sampler uses the exact score of the diffused mixture (`AnalyticScore`), so the
//! only error left is the sampler's own. Columns: steps, score evaluations (NFE), seconds,
//! sliced Wasserstein-1 to exact samples of `p_{t_min}`, and the log-likelihood gap (mean
//! exact `log p_0` of exact samples minus that of the samples: `> 0` too spread, `< 0` too
//! concentrated). The first row is exact samples: the Monte-Carlo noise floor.
//!
//! It then draws each sampler's samples beside exact ones into
//! `target/examples-out/quickstart/samples.png`. With `--features progress` each run shows a
//! progress bar (step, t, score evaluations per second) on a terminal.

#[allow(dead_code)]
mod common;

pub use common::Scale;
use common::{BoxResult, EXACT, Panel, SAMPLED};
use rand::SeedableRng;
use score_sde::metrics::Reference;
use score_sde::prelude::*;
use score_sde::sample::{
    Dopri5, DpmSolverPp, EdmHeun, Pc, PredictorKind, ProbabilityFlow, StepRule,
};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn main() -> BoxResult<()> {
    let dir = common::default_out_dir("quickstart")?;
    let pictures = run(&dir, Scale::Full)?;
    common::report(&pictures);
    Ok(())
}

/// Sample the ring with every sampler, print the table, draw the samples; the pictures' paths.
pub fn run(out_dir: &Path, scale: Scale) -> BoxResult<Vec<PathBuf>> {
    let n = scale.pick(400, 20_000);
    // Fewer steps at smoke-test size: the table is then not meaningful, only the plumbing.
    let steps = |k: usize| scale.pick(k / 10, k);
    let ring = problems::ring2d::<f64>();
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let model = AnalyticScore::new(ring.clone(), sched);
    let (t_min, _) = sched.t_range();
    let reference = Reference::new(&ring, &sched, t_min, n, 777)?;

    let samplers: Vec<(&str, &str, Box<dyn Sampler<f64>>)> = vec![
        (
            "Euler–Maruyama (reverse SDE)",
            "Euler–Maruyama",
            Box::new(Pc::new(
                sde.clone(),
                TimeGrid::uniform(&sched, steps(1000))?,
            )?),
        ),
        (
            "PC: reverse diffusion + Langevin, snr 0.16",
            "PC, snr 0.16",
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(&sched, steps(1000))?)?
                    .predictor(PredictorKind::ReverseDiffusion)?
                    .snr(0.16)?,
            ),
        ),
        (
            "PC: reverse diffusion + Langevin σ-rule",
            "PC, σ-rule",
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(&sched, steps(500))?)?
                    .predictor(PredictorKind::ReverseDiffusion)?
                    .snr(0.16)?
                    .step_rule(StepRule::Sigma)?,
            ),
        ),
        (
            "PF-ODE, Dormand–Prince rtol 1e-5",
            "PF-ODE Dopri5",
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-5, 1e-5)?,
            )),
        ),
        (
            "DPM-Solver++ 2M, log-SNR grid",
            "DPM-Solver++ 2M",
            Box::new(DpmSolverPp::new(
                sde.clone(),
                TimeGrid::log_snr(&sched, 20)?,
            )?),
        ),
        (
            "DPM-Solver++ 3M, quadratic grid",
            "DPM-Solver++ 3M",
            Box::new(DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(&sched, 30)?)?.order(3)?),
        ),
        (
            "EDM Heun, Karras ρ = 7",
            "EDM Heun",
            Box::new(EdmHeun::new(
                sde.clone(),
                TimeGrid::karras(&sched, 20, 7.0)?,
            )?),
        ),
    ];

    println!("2-D ring (8 Gaussians, radius 4, std 0.3), VP-SDE, N = {n}, exact score");
    println!(
        "{:<44} {:>6} {:>6} {:>8} {:>8} {:>9}",
        "sampler", "steps", "NFE", "seconds", "SW1", "gap"
    );
    let floor = reference.noise_floor(n, &[1])?[0];
    println!(
        "{:<44} {:>6} {:>6} {:>8} {:>8.4} {:>+9.4}",
        "exact samples (noise floor)", "-", "-", "-", floor.sw1, floor.loglik_gap
    );
    let mut outputs = Vec::new();
    for (name, label, sampler) in &samplers {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(2024);
        let start = Instant::now();
        let x = sampler.initial_state(n, 2, &mut rng)?;
        #[cfg(feature = "progress")]
        let run = {
            let mut bar = score_sde::progress::ProgressBar::new(None).message(*name);
            let counted = bar.counting(&model);
            let run = sampler.run_with(&counted, x, &mut rng, &mut bar)?;
            bar.finish();
            run
        };
        #[cfg(not(feature = "progress"))]
        let run = sampler.run(&model, x, &mut rng)?;
        let secs = start.elapsed().as_secs_f64();
        let rep = reference.evaluate(run.samples.view())?;
        println!(
            "{name:<44} {:>6} {:>6} {secs:>8.2} {:>8.4} {:>+9.4}",
            run.steps, run.nfe, rep.sw1, rep.loglik_gap
        );
        outputs.push((*label, run, rep.sw1));
    }

    // Pictures: exact samples of p_{t_min}, then each sampler's, at most 2000 points each.
    let shown = n.min(2000);
    let mut rng = rand_pcg::Pcg64::seed_from_u64(99);
    let exact = ring.diffuse(&sched, t_min)?.sample(shown, &mut rng)?;
    let mut items = vec![Panel::new("exact samples").points(exact.view(), EXACT)];
    for (name, run, sw1) in &outputs {
        let head = run.samples.slice(ndarray::s![..shown, ..]);
        let title = format!("{name}: NFE {}, SW1 {sw1:.3}", run.nfe);
        items.push(Panel::new(title).points(head, SAMPLED));
    }
    let png = common::panels(
        &out_dir.join("samples.png"),
        "2-D ring, VP-SDE, exact score: samples of each sampler",
        4,
        6.0,
        300,
        &items,
    )?;
    Ok(vec![png])
}
