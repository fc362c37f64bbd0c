//! Migration parity with diffusers: the same discrete schedule, timesteps, model, initial
//! state and step noise → the same samples as diffusers' schedulers, within 1e-5 (float64).
//!
//! The fixtures (`tests/fixtures/diffusers_parity.json`) come from
//! `scripts/make_diffusers_fixtures.py`: diffusers 0.42.1 driving an exact 3-D mixture
//! ε-model in float64 (see the script for what is fixed). No Python at test time.
//!
//! Tolerance 1e-5 on samples of size ~2: both sides are float64 and compute the same
//! formulas in a different order (rounding ~1e-15 per operation), except the noise level of
//! fractional Euler timesteps, which we reach through a bisection on log-SNR (~1e-15 in t);
//! the measured differences are ~1e-13 (printed). A wrong order on a single step, a missing
//! factor or a wrong timestep moves the samples by 1e-3 or more
//! (`the_legacy_final_order_is_not_diffusers` shows one such case).

mod common;
use common::max_abs_diff;
use ndarray::Array2;
use score_sde::grid::{DiffusersFamily, DiffusersTimesteps, FinalSigmas, TimestepSpacing};
use score_sde::prelude::*;
use score_sde::sample::{
    Ddim, DpmSolverPp, DpmVariant, EdmHeun, EulerAncestral, FinalOrder, NoiseTable, UniPc,
    UniPcVariant,
};
use serde_json::Value;

type Sde = LinearSde<f64, DiscreteVp<f64>>;

const TOL: f64 = 1e-5;

fn fixture() -> Value {
    let text = include_str!("fixtures/diffusers_parity.json");
    serde_json::from_str(text).expect("fixture JSON")
}

fn matrix(v: &Value) -> Array2<f64> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(v.clone()).expect("a matrix");
    let (n, d) = (rows.len(), rows[0].len());
    Array2::from_shape_vec((n, d), rows.into_iter().flatten().collect()).expect("shape")
}

fn mixture(f: &Value) -> GaussianMixture<f64> {
    let spec: MixtureSpec = serde_json::from_value(f["mixture"].clone()).expect("mixture");
    spec.build().expect("valid mixture")
}

fn schedule() -> DiscreteVp<f64> {
    DiscreteVp::ddpm_linear(1000, 1e-4, 0.02).unwrap()
}

/// The timesteps config of a fixture run, from its name and diffusers' recorded config.
fn timesteps(name: &str, steps: usize) -> DiffusersTimesteps {
    let family = if name.starts_with("dpm") || name.starts_with("unipc") {
        DiffusersFamily::Multistep
    } else if name.starts_with("ddim") {
        DiffusersFamily::Ddim
    } else {
        DiffusersFamily::Euler
    };
    let mut cfg = DiffusersTimesteps::new(family, steps);
    if name.contains("trailing") {
        cfg = cfg.spacing(TimestepSpacing::Trailing);
    }
    if name.contains("sigmamin") || name.contains("noalpha1") {
        cfg = cfg.final_sigmas(FinalSigmas::SigmaMin);
    }
    if name.contains("offset1") {
        cfg = cfg.steps_offset(1);
    }
    cfg
}

/// Our sampler for a fixture run.
fn sampler(
    name: &str,
    cfg: &DiffusersTimesteps,
    noise: Option<NoiseTable<f64>>,
) -> Box<dyn Sampler<f64>> {
    let vp = schedule();
    let sde = Sde::new(vp.clone());
    let grid = cfg.grid(&vp).unwrap();
    let denoise = cfg.denoise_final();
    match name {
        "dpm2m" | "dpm2m-trailing-sigmamin" => Box::new(DpmSolverPp::diffusers(sde, cfg).unwrap()),
        "dpm3m" => Box::new(DpmSolverPp::diffusers(sde, cfg).unwrap().order(3).unwrap()),
        "dpm2m-sde" => Box::new(
            DpmSolverPp::diffusers(sde, cfg)
                .unwrap()
                .variant(DpmVariant::Sde)
                .unwrap()
                .noise_table(noise.expect("noise")),
        ),
        "ddim" | "ddim-offset1-noalpha1" => {
            Box::new(Ddim::new(sde, grid).unwrap().denoise_final(denoise))
        }
        "euler" => Box::new(
            EulerAncestral::new(sde, grid)
                .unwrap()
                .eta(0.0)
                .unwrap()
                .denoise_final(denoise),
        ),
        "euler-ancestral" => Box::new(
            EulerAncestral::new(sde, grid)
                .unwrap()
                .noise_table(noise.expect("noise"))
                .denoise_final(denoise),
        ),
        "heun" => Box::new(EdmHeun::new(sde, grid).unwrap().denoise_final(denoise)),
        "unipc" => Box::new(
            UniPc::new(sde, grid)
                .unwrap()
                .final_sigmas(cfg.final_sigmas),
        ),
        "unipc3" => Box::new(
            UniPc::new(sde, grid)
                .unwrap()
                .order(3)
                .unwrap()
                .final_sigmas(cfg.final_sigmas),
        ),
        "unipc-bh1-sigmamin" => Box::new(
            UniPc::new(sde, grid)
                .unwrap()
                .variant(UniPcVariant::Bh1)
                .final_sigmas(cfg.final_sigmas),
        ),
        other => panic!("no sampler for fixture run {other}"),
    }
}

#[test]
fn samples_match_diffusers_within_1e_5() {
    let f = fixture();
    let model = AnalyticScore::new(mixture(&f), schedule());
    let runs = f["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 24, "12 schedulers × 10 and 25 steps");
    let mut worst = 0.0f64;
    for run in runs {
        let name = run["name"].as_str().unwrap();
        let steps = run["steps"].as_u64().unwrap() as usize;
        let cfg = timesteps(name, steps);
        // Our timestep formulas are diffusers' (Heun repeats each inner timestep).
        let mut theirs: Vec<f64> = serde_json::from_value(run["timesteps"].clone()).unwrap();
        theirs.dedup();
        assert_eq!(
            cfg.timesteps().unwrap(),
            theirs,
            "{name} {steps}: timesteps"
        );
        let noise = run["noise"]
            .as_array()
            .filter(|v| !v.is_empty())
            .map(|v| NoiseTable::new(v.iter().map(matrix).collect()).expect("noise table"));
        let x0 = matrix(&run["x_init"]);
        let want = matrix(&run["samples"]);
        let s = sampler(name, &cfg, noise);
        let out = s.run(&model, x0, &mut common::rng(0)).unwrap();
        assert_eq!(
            out.nfe as u64,
            run["nfe"].as_u64().unwrap(),
            "{name} {steps}: NFE"
        );
        let diff = max_abs_diff(&out.samples, &want);
        println!("{name:>24} {steps:>2} steps: max |ours − diffusers| = {diff:.2e}");
        assert!(diff <= TOL, "{name} at {steps} steps: {diff:e}");
        worst = worst.max(diff);
    }
    println!("worst {worst:.2e}");
}

/// The rule this crate used to call `lower_order_final(true)` (and keeps as the default,
/// [`FinalOrder::Lowered`]) also lowers the last real step, which diffusers does not: the
/// samples move far outside the parity tolerance. So the parity test above can fail.
#[test]
fn the_legacy_final_order_is_not_diffusers() {
    let f = fixture();
    let model = AnalyticScore::new(mixture(&f), schedule());
    let run = f["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "dpm2m" && r["steps"] == 10)
        .unwrap();
    let cfg = timesteps("dpm2m", 10);
    let s = DpmSolverPp::diffusers(Sde::new(schedule()), &cfg)
        .unwrap()
        .final_order(FinalOrder::Lowered);
    let out = s
        .run(&model, matrix(&run["x_init"]), &mut common::rng(0))
        .unwrap();
    let diff = max_abs_diff(&out.samples, &matrix(&run["samples"]));
    assert!(
        diff > 1e-3,
        "the legacy rule differs from diffusers by {diff:e}"
    );
}
