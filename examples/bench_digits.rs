//! Our side of the race against PyTorch on the digits networks (`scripts/bench_digits_vs_torch.py`
//! runs both, alternating): training steps per second and sampling images per second at
//! equal NFE, one JSON line per run, the fields of `scripts/torch_digits.py`.
//!
//! ```text
//! cargo run --release --features candle --example bench_digits -- --mode train --net unet --steps 60
//! cargo run --release --features candle --example bench_digits -- --mode sample --net unet --n 256 --steps 20
//! cargo run --release --features candle --example bench_digits -- --mode profile --net unet --steps 30
//! cargo run --release --features candle --example bench_digits -- --mode gemm --steps 20
//! cargo run --release --features candle --example bench_digits -- --export-init init.safetensors
//! ```
//!
//! * `train`: `--warmup` untimed steps, then `--steps` timed steps of `DsmTrainer` (batch
//!   `--batch` from 16 dequantisations of the training digits, ε-prediction, AdamW with a
//!   cosine learning rate) plus the EMA update — what `train_digits` does per step.
//! * `sample`: DPM-Solver++ 2M on the log-SNR grid, `--steps` steps = NFE, `--n` images,
//!   best of `--repeats` after a warm-up run.
//! * `profile`: a training step taken apart (batch drawing, forward pass and loss, backward
//!   pass, AdamW, EMA), mean milliseconds per step of each part.
//! * `gemm`: the matrix products of one U-Net training step alone (batch `--batch`), as
//!   candle runs them: per convolution the patch matrix times `[W | b]ᵀ` forward and the two
//!   products of its backward pass (input and weight gradients); per linear layer the same
//!   three. Mean milliseconds per step over `--steps` repetitions; `torch_digits.py gemm`
//!   times the same shapes with `torch.mm`.
//! * `--export-init FILE`: both networks' seeded initial weights (as `float64`), a batch of
//!   inputs and our outputs, for `torch_digits.py check FILE` (same network, same numbers?).
//!
//! Threads: candle reads `RAYON_NUM_THREADS`. Timing fields: `wall_s`, `cpu_s` (this process,
//! all threads), `other_cores_busy` (cores other processes kept busy meanwhile, from
//! `/proc/stat`).

#[allow(dead_code)]
mod common;
#[path = "common/digits.rs"]
mod digits_common;

use common::BoxResult;
use digits_common::{Flags, Timed, Timer};
use ndarray::Array2;
use rand::SeedableRng;
use score_sde::backend::candle::candle_core::{DType, Device, Tensor};
use score_sde::backend::candle::candle_nn::{VarBuilder, VarMap};
use score_sde::backend::candle::{
    CandleNetwork, Checkpoint, DsmTrainer, Ema, FitConfig, MlpConfig, NetworkSpec, TimeModule,
    UnetConfig, candle_err, init_seeded, named_vars,
};
use score_sde::backend::digits::{DIM, Digits, SIDE};
use score_sde::prelude::*;
use score_sde::sample::DpmSolverPp;
use serde_json::json;
use std::time::Instant;

const USAGE: &str = "bench_digits [--mode train|sample|profile] [--net unet|mlp] [--batch N] \
[--steps N] [--warmup N] [--n N] [--repeats N] [--seed S] [--export-init FILE]
(--mode gemm: the U-Net's matrix products alone)";

fn spec(kind: &str) -> BoxResult<NetworkSpec> {
    Ok(match kind {
        "mlp" => NetworkSpec::mlp(DIM, MlpConfig::default().hidden(256)),
        "unet" => NetworkSpec::unet(SIDE, UnetConfig::default()),
        other => return Err(format!("--net {other}: expected unet or mlp").into()),
    })
}

fn main() -> BoxResult<()> {
    let f = Flags::parse(
        &[
            "mode",
            "net",
            "batch",
            "steps",
            "warmup",
            "n",
            "repeats",
            "seed",
            "export-init",
        ],
        &[],
        USAGE,
    )?;
    let seed: u64 = f.get("seed", 0)?;
    if f.has("export-init") {
        return export_init(&f.string("export-init", ""), seed);
    }
    let net = f.string("net", "unet");
    let spec = spec(&net)?;
    let mode = f.string("mode", "train");
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let record = match mode.as_str() {
        "train" | "profile" => train(
            &spec,
            f.get("batch", 128)?,
            f.get("steps", 50)?,
            f.get("warmup", 5)?,
            seed,
            mode == "profile",
        )?,
        "sample" => sample(
            &spec,
            f.get("n", 256)?,
            f.get("steps", 20)?,
            f.get("repeats", 3)?,
            seed,
        )?,
        "gemm" => gemm(f.get("batch", 128)?, f.get("steps", 20)?, seed)?,
        other => {
            return Err(format!("--mode {other}: expected train, sample, profile or gemm").into());
        }
    };
    let mut record = record;
    if let Some(obj) = record.as_object_mut() {
        obj.insert("impl".into(), json!("ours"));
        obj.insert("net".into(), json!(net));
        obj.insert("threads".into(), json!(threads));
    }
    println!("{record}");
    Ok(())
}

fn train(
    spec: &NetworkSpec,
    batch: usize,
    steps: usize,
    warmup: usize,
    seed: u64,
    profile: bool,
) -> BoxResult<serde_json::Value> {
    let digits = Digits::load(Digits::default_path())?;
    let (train, _) = digits.split(360, 0)?;
    let rows: Vec<usize> = (0..16).flat_map(|_| 0..train.len()).collect();
    let data: Array2<f32> = train
        .select(&rows)?
        .dequantize(&mut rand_pcg::Pcg64::seed_from_u64(seed))?;
    let varmap = VarMap::new();
    let net = spec.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    init_seeded(&varmap, seed)?;
    let sde = VpSde::<f32>::default();
    let model = Parameterized::noise(CandleNetwork::new(net, DIM), *sde.schedule());
    let total = warmup + steps;
    let cfg = FitConfig::default().batch_size(batch).lr(2e-3).steps(total);
    let mut trainer = DsmTrainer::from_varmap(&model, &varmap, &sde, data.view(), cfg)?;
    let mut ema = Ema::new(named_vars(&varmap)?, 0.999)?;
    let mut losses = Vec::with_capacity(total);
    // [batch, forward + loss, backward, AdamW, EMA] seconds, summed over timed steps.
    let mut parts = [0.0f64; 5];
    let mut timer = None;
    for step in 0..total {
        if step == warmup {
            timer = Some(Timer::start());
        }
        let lr = 2e-3 * 0.5 * (1.0 + (std::f64::consts::PI * step as f64 / total as f64).cos());
        trainer.set_lr(lr)?;
        let mut rng = rand_pcg::Pcg64::new(u128::from(seed), step as u128);
        if profile {
            let mut lap = Instant::now();
            let mut split = |k: usize, on: bool| {
                if on {
                    parts[k] += lap.elapsed().as_secs_f64();
                }
                lap = Instant::now();
            };
            let timed = step >= warmup;
            let b = trainer.draw_batch(batch, &mut rng)?;
            split(0, timed);
            let loss = trainer.loss_tensor(&b)?;
            let value = loss
                .to_dtype(DType::F64)
                .and_then(|l| l.to_scalar::<f64>())
                .map_err(candle_err)?;
            split(1, timed);
            let grads = loss.backward().map_err(candle_err)?;
            split(2, timed);
            trainer.optimizer_mut().step(&grads)?;
            split(3, timed);
            ema.update()?;
            split(4, timed);
            losses.push(value);
        } else {
            losses.push(trainer.step(&mut rng)?);
            ema.update()?;
        }
    }
    let t = timer.map(Timer::stop).unwrap_or_default();
    let last = &losses[losses.len().saturating_sub(20)..];
    let mut r = json!({
        "mode": if profile { "profile" } else { "train" }, "batch": batch, "steps": steps, "warmup": warmup,
        "rate": steps as f64 / t.wall, "rate_unit": "steps/s", "wall_s": t.wall, "cpu_s": t.cpu,
        "other_cores_busy": t.others, "loss_first": losses.first(),
        "loss_last": last.iter().sum::<f64>() / last.len().max(1) as f64,
    });
    if profile {
        let ms = |k: usize| 1e3 * parts[k] / steps.max(1) as f64;
        r["ms_per_step"] = json!({"batch": ms(0), "forward_loss": ms(1), "backward": ms(2),
                                  "adamw": ms(3), "ema": ms(4)});
    }
    Ok(r)
}

fn sample(
    spec: &NetworkSpec,
    n: usize,
    steps: usize,
    repeats: usize,
    seed: u64,
) -> BoxResult<serde_json::Value> {
    let varmap = VarMap::new();
    spec.build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    init_seeded(&varmap, seed)?;
    // Inference: the same weights as plain tensors (no gradient graph is recorded).
    let weights = named_vars(&varmap)?
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().detach()))
        .collect();
    let net = spec.build(VarBuilder::from_tensors(weights, DType::F32, &Device::Cpu))?;
    let sde = VpSde::<f32>::default();
    let sched = *sde.schedule();
    let model = Parameterized::noise(CandleNetwork::new(net, DIM), sched);
    let dpm = DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, steps)?)?.order(2)?;
    let warm =
        DpmSolverPp::new(sde.clone(), TimeGrid::log_snr(&sched, (steps / 4).max(2))?)?.order(2)?;
    warm.sample(&model, n, DIM, &mut rand_pcg::Pcg64::seed_from_u64(seed))?;
    let mut best: Option<(Timed, usize, bool)> = None;
    let mut walls = Vec::new();
    for r in 0..repeats.max(1) {
        let timer = Timer::start();
        let run = dpm.sample(
            &model,
            n,
            DIM,
            &mut rand_pcg::Pcg64::seed_from_u64(seed + r as u64),
        )?;
        let t = timer.stop();
        walls.push(t.wall);
        let finite = run.samples.iter().all(|v| v.is_finite());
        if best.as_ref().is_none_or(|b| t.wall < b.0.wall) {
            best = Some((t, run.nfe, finite));
        }
    }
    let (t, nfe, finite) = best.unwrap_or_default();
    Ok(json!({
        "mode": "sample", "n": n, "steps": steps, "nfe": nfe, "rate": n as f64 / t.wall,
        "rate_unit": "images/s", "wall_s": t.wall, "walls": walls, "cpu_s": t.cpu,
        "other_cores_busy": t.others, "finite": finite,
    }))
}

/// The matrix products of one training step of the default U-Net at batch `batch`:
/// `(rows, inner, out)` per layer, in the network's order. A convolution's inner size is its
/// patch width `k·k·c_in + 1` (the 1 multiplies the bias); a linear layer's is its input
/// width (candle_nn adds the bias separately).
fn unet_products(batch: usize) -> Vec<(usize, usize, usize)> {
    let (c, e) = (
        UnetConfig::default().channels,
        UnetConfig::default().embedding,
    );
    let (full, half) = (batch * SIDE * SIDE, batch * (SIDE / 2) * (SIDE / 2));
    let conv = |rows, cin: usize, cout, k: usize| (rows, k * k * cin + 1, cout);
    vec![
        (batch, 17, e), // time embedding
        (batch, e, e),
        (batch, e, c), // time shifts of the four residual blocks
        (batch, e, 2 * c),
        (batch, e, 2 * c),
        (batch, e, c),
        conv(full, 1, c, 3), // conv_in
        conv(full, c, c, 3), // down.res
        conv(full, c, c, 3),
        conv(half, c, 2 * c, 3),     // down.conv, stride 2
        conv(half, 2 * c, 2 * c, 3), // mid.res1, mid.res2
        conv(half, 2 * c, 2 * c, 3),
        conv(half, 2 * c, 2 * c, 3),
        conv(half, 2 * c, 2 * c, 3),
        conv(full, 2 * c, c, 3), // up.conv
        conv(full, 2 * c, c, 3), // up.res
        conv(full, c, c, 3),
        conv(full, 2 * c, c, 1), // up.res skip
        conv(full, c, 1, 3),     // out.conv
    ]
}

/// Time the products of [`unet_products`] in candle (f32, the layouts the network uses):
/// forward `A Wᵀ`, backward `G W` and `Aᵀ G` (candle's backward pass forms both for every
/// product, also where the input needs no gradient).
fn gemm(batch: usize, reps: usize, seed: u64) -> BoxResult<serde_json::Value> {
    let dev = Device::Cpu;
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut rand = |shape: (usize, usize)| -> BoxResult<Tensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| 2.0 * f32::uniform01(&mut rng) - 1.0)
            .collect();
        Ok(Tensor::from_vec(v, shape, &dev).map_err(candle_err)?)
    };
    let layers = unet_products(batch);
    let mut inputs = Vec::new();
    for &(rows, k, out) in &layers {
        inputs.push((rand((rows, k))?, rand((out, k))?, rand((rows, out))?));
    }
    let run = |fwd: &mut f64, bwd: &mut f64| -> BoxResult<()> {
        for (a, w, g) in &inputs {
            let clock = Instant::now();
            let y = a.matmul(&w.t().map_err(candle_err)?).map_err(candle_err)?;
            *fwd += clock.elapsed().as_secs_f64();
            let clock = Instant::now();
            g.matmul(w).map_err(candle_err)?;
            a.t().and_then(|at| at.matmul(g)).map_err(candle_err)?;
            *bwd += clock.elapsed().as_secs_f64();
            drop(y);
        }
        Ok(())
    };
    run(&mut 0.0, &mut 0.0)?;
    let (mut fwd, mut bwd) = (0.0, 0.0);
    let timer = Timer::start();
    for _ in 0..reps.max(1) {
        run(&mut fwd, &mut bwd)?;
    }
    let t = timer.stop();
    let flops: usize = layers.iter().map(|&(r, k, o)| 6 * r * k * o).sum();
    let per = 1e3 / reps.max(1) as f64;
    Ok(json!({
        "mode": "gemm", "batch": batch, "steps": reps, "products": layers.len(),
        "ms_per_step": {"forward": fwd * per, "backward": bwd * per, "total": (fwd + bwd) * per},
        "gflop_per_step": flops as f64 * 1e-9, "gflops": flops as f64 * reps.max(1) as f64 * 1e-9 / (fwd + bwd),
        "wall_s": t.wall, "cpu_s": t.cpu, "other_cores_busy": t.others,
    }))
}

/// Both networks' seeded initial weights in float64, inputs and our outputs.
fn export_init(path: &str, seed: u64) -> BoxResult<()> {
    let mut ck = Checkpoint::new();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed + 1);
    let x = Array2::from_shape_fn((6, DIM), |_| 2.0 * f64::uniform01(&mut rng) - 1.0);
    let t: Vec<f64> = (0..6).map(|i| 0.05 + 0.15 * i as f64).collect();
    for kind in ["mlp", "unet"] {
        let spec = spec(kind)?;
        let varmap = VarMap::new();
        let net: std::sync::Arc<dyn TimeModule> =
            spec.build(VarBuilder::from_varmap(&varmap, DType::F64, &Device::Cpu))?;
        init_seeded(&varmap, seed)?;
        let xs = Tensor::from_iter(x.iter().copied(), &Device::Cpu)
            .and_then(|v| v.reshape((6, DIM)))
            .map_err(candle_err)?;
        let ts = Tensor::from_iter(t.iter().copied(), &Device::Cpu)
            .and_then(|v| v.reshape((6, 1)))
            .map_err(candle_err)?;
        let y = net.forward_t(&xs, &ts).map_err(candle_err)?;
        let vars = named_vars(&varmap)?;
        ck.insert(
            &format!("{kind}.net."),
            vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())),
        );
        ck.insert(
            &format!("{kind}."),
            [
                ("x".to_string(), xs),
                ("t".to_string(), ts),
                ("y".to_string(), y),
            ],
        );
        ck.set_metadata(kind, spec.to_json());
    }
    ck.save(path)?;
    println!("{}", json!({"mode": "export-init", "path": path}));
    Ok(())
}
