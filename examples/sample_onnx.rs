//! Sample an ONNX score network and write the samples as `.npy` for Python:
//!
//! ```text
//! cargo run --release --features onnx,npy --example sample_onnx -- \
//!     --model tests/fixtures/ring_noise.onnx --param noise --sampler dpm2m --steps 20 \
//!     --n 10000 --out samples.npy
//! python3 -c "import numpy as np; x = np.load('samples.npy'); print(x.shape, x.mean(0))"
//! ```
//!
//! Flags (all optional): `--model PATH` (default: the committed fixture computing the exact
//! ε of the 2-D ring), `--param noise|data|velocity|score` (what the network predicts),
//! `--sampler dpm2m|pc|ddim|heun`, `--steps N`, `--n N`, `--seed N`, `--out PATH` (default
//! `samples.npy` in the system temp dir). The model must follow `docs/networks.md`: inputs
//! `x` [N, D] and `t` [N] or [N, 1], f32, trained under the VP linear schedule
//! (β from 0.1 to 20, t in [10⁻³, 1]). With the default model the samples are also scored
//! against exact samples of the ring (sliced W1), next to the exact score's at the same
//! sampler and steps.

use rand::SeedableRng;
use score_sde::backend::npy::save_npy;
use score_sde::backend::onnx::{OnnxOptions, OnnxScore};
use score_sde::metrics::Reference;
use score_sde::prelude::*;
use score_sde::sample::{Ddim, DpmSolverPp, EdmHeun, Pc, PredictorKind};
use std::path::PathBuf;
use std::time::Instant;

const DEFAULT_MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/ring_noise.onnx"
);

struct Args {
    model: PathBuf,
    param: Parameterization,
    sampler: String,
    steps: Option<usize>,
    n: usize,
    seed: u64,
    out: PathBuf,
}

fn bad(msg: String) -> Error {
    Error::Io(format!(
        "{msg}\nusage: sample_onnx [--model PATH] [--param noise|data|velocity|score] \
         [--sampler dpm2m|pc|ddim|heun] [--steps N] [--n N] [--seed N] [--out PATH]"
    ))
}

fn parse() -> Result<Args> {
    let mut a = Args {
        model: DEFAULT_MODEL.into(),
        param: Parameterization::Noise,
        sampler: "dpm2m".into(),
        steps: None,
        n: 10_000,
        seed: 0,
        out: std::env::temp_dir().join("samples.npy"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| bad(format!("{flag} needs a value")))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|e| bad(format!("{flag} {v}: {e}")))
        };
        match flag.as_str() {
            "--model" => a.model = v.into(),
            "--param" => {
                a.param = match v.as_str() {
                    "noise" | "eps" => Parameterization::Noise,
                    "data" | "x0" => Parameterization::Data,
                    "velocity" | "v" => Parameterization::Velocity,
                    "score" => Parameterization::Score,
                    _ => return Err(bad(format!("unknown parameterisation {v}"))),
                }
            }
            "--sampler" => a.sampler = v,
            "--steps" => a.steps = Some(num(&v)? as usize),
            "--n" => a.n = num(&v)? as usize,
            "--seed" => a.seed = num(&v)?,
            "--out" => a.out = v.into(),
            _ => return Err(bad(format!("unknown flag {flag}"))),
        }
    }
    Ok(a)
}

fn sampler(name: &str, steps: Option<usize>) -> Result<Box<dyn Sampler<f32>>> {
    let sde = VpSde::<f32>::default();
    let sched = *sde.schedule();
    Ok(match name {
        "dpm2m" => Box::new(DpmSolverPp::new(
            sde,
            TimeGrid::log_snr(&sched, steps.unwrap_or(20))?,
        )?),
        "pc" => Box::new(
            Pc::new(sde, TimeGrid::uniform(&sched, steps.unwrap_or(500))?)?
                .predictor(PredictorKind::ReverseDiffusion)?
                .snr(0.16)?,
        ),
        "ddim" => Box::new(Ddim::new(
            sde,
            TimeGrid::uniform(&sched, steps.unwrap_or(50))?,
        )?),
        "heun" => Box::new(EdmHeun::new(
            sde,
            TimeGrid::karras(&sched, steps.unwrap_or(20), 7.0)?,
        )?),
        _ => return Err(bad(format!("unknown sampler {name}"))),
    })
}

fn main() -> Result<()> {
    let args = parse()?;
    let sched = VpLinear::<f32>::default();
    let model = OnnxScore::load(&args.model, OnnxOptions::new(sched, args.param))?;
    let dim = model.network().dim();
    println!(
        "model {} : D = {dim}, t as {:?}, predicts {:?}",
        args.model.display(),
        model.network().time_input(),
        args.param
    );
    let s = sampler(&args.sampler, args.steps)?;
    let start = Instant::now();
    let run = s.sample(
        &model,
        args.n,
        dim,
        &mut rand_pcg::Pcg64::seed_from_u64(args.seed),
    )?;
    println!(
        "sampler {}: {} steps, {} network evaluations, {:.2} s for {} samples",
        args.sampler,
        run.steps,
        run.nfe,
        start.elapsed().as_secs_f64(),
        args.n
    );
    if let Some(dir) = args.out.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| Error::Io(e.to_string()))?;
        }
    }
    save_npy(&args.out, run.samples.view())?;
    println!("wrote {} ({} × {dim} float32)", args.out.display(), args.n);
    if let Some(mean) = run.samples.mean_axis(ndarray::Axis(0)) {
        println!("sample mean {mean}");
    }

    if args.model == std::path::Path::new(DEFAULT_MODEL) && args.param == Parameterization::Noise {
        // The default model computes the exact ε of the ring: compare with the exact score.
        let ring = problems::ring2d::<f64>();
        let (t_min, _) = sched.t_range();
        let reference = Reference::new(
            &ring,
            &VpLinear::<f64>::default(),
            f64::from(t_min),
            args.n,
            777,
        )?;
        let exact = AnalyticScore::new(problems::ring2d::<f32>(), sched);
        let b = s.sample(
            &exact,
            args.n,
            dim,
            &mut rand_pcg::Pcg64::seed_from_u64(args.seed),
        )?;
        println!(
            "sliced W1 to exact samples: ONNX {:.4}, analytic score {:.4}, exact samples {:.4}",
            reference.evaluate(run.samples.view())?.sw1,
            reference.evaluate(b.samples.view())?.sw1,
            reference.noise_floor(args.n, &[1])?[0].sw1
        );
    }
    Ok(())
}
