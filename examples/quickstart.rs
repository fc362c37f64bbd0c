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

use rand::SeedableRng;
use score_sde::metrics::Reference;
use score_sde::prelude::*;
use score_sde::sample::{Dopri5, DpmSolverPp, EdmHeun, Pc, Predictor, ProbabilityFlow, StepRule};
use std::time::Instant;

fn main() -> Result<()> {
    let n = 20_000;
    let ring = problems::ring2d::<f64>();
    let sde = VpSde::<f64>::default();
    let sched = *sde.schedule();
    let model = AnalyticScore::new(ring.clone(), sched);
    let (t_min, _) = sched.t_range();
    let reference = Reference::new(&ring, &sched, t_min, n, 777)?;

    let samplers: Vec<(&str, Box<dyn Sampler<f64>>)> = vec![
        (
            "Euler–Maruyama (reverse SDE)",
            Box::new(Pc::new(sde.clone(), TimeGrid::uniform(&sched, 1000)?)?),
        ),
        (
            "PC: reverse diffusion + Langevin, snr 0.16",
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(&sched, 1000)?)?
                    .predictor(Predictor::ReverseDiffusion)
                    .snr(0.16)?,
            ),
        ),
        (
            "PC: reverse diffusion + Langevin σ-rule",
            Box::new(
                Pc::new(sde.clone(), TimeGrid::uniform(&sched, 500)?)?
                    .predictor(Predictor::ReverseDiffusion)
                    .snr(0.16)?
                    .step_rule(StepRule::Sigma)?,
            ),
        ),
        (
            "PF-ODE, Dormand–Prince rtol 1e-5",
            Box::new(ProbabilityFlow::adaptive(
                sde.clone(),
                Dopri5::new(1e-5, 1e-5)?,
            )),
        ),
        (
            "DPM-Solver++ 2M, log-SNR grid",
            Box::new(DpmSolverPp::new(
                sde.clone(),
                TimeGrid::log_snr(&sched, 20)?,
            )?),
        ),
        (
            "DPM-Solver++ 3M, quadratic grid",
            Box::new(DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(&sched, 30)?)?.order(3)?),
        ),
        (
            "EDM Heun, Karras ρ = 7",
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
    for (name, sampler) in &samplers {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(2024);
        let start = Instant::now();
        let run = sampler.sample(&model, n, 2, &mut rng)?;
        let secs = start.elapsed().as_secs_f64();
        let rep = reference.evaluate(run.samples.view())?;
        println!(
            "{name:<44} {:>6} {:>6} {secs:>8.2} {:>8.4} {:>+9.4}",
            run.steps, run.nfe, rep.sw1, rep.loglik_gap
        );
    }
    Ok(())
}
