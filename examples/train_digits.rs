//! Train a score network on the UCI handwritten digits (8×8 pixels, 17 grey levels;
//! `data/digits`) with candle, on the CPU:
//!
//! ```text
//! cargo run --release --features candle --example train_digits                 # U-Net, a few minutes on 2 cores
//! cargo run --release --features candle --example train_digits -- --net mlp    # the MLP, faster
//! cargo run --release --features candle,progress --example train_digits -- --steps 20000 --resume
//! ```
//!
//! Data: the training part of a seeded split (1,437 images; 360 are held out for
//! `sample_digits`), each image dequantised `--copies` times to `x = 2 (y + U[0,1))/17 − 1`.
//! Training: denoising score matching on the VP SDE (ε-prediction, λ = σ², t uniform;
//! Ho et al. 2020; Song et al. 2021, eq. 7) with AdamW at a cosine-decayed learning rate, an
//! exponential moving average of the weights (decay `--ema`, with warm-up), initial weights
//! from `init_seeded` (PyTorch's scheme). Each step's batch and noise come from a generator
//! seeded by (seed, step), so a run stopped and resumed with `--resume` (same `--steps`)
//! ends with the same weights as one run straight through.
//!
//! Writes into `target/examples-out/train_digits/` (or beside `--out`): the checkpoint
//! `<net>.safetensors` (weights, EMA, AdamW moments, the loss of every step; metadata: the
//! network's description, step, seed) every `--save-every` steps and at the end, and the
//! loss curve `loss_<net>.png`. With the feature `progress` a progress bar shows the
//! running loss; without it a line is printed every tenth of the run.

#[allow(dead_code)]
mod common;
#[path = "common/digits.rs"]
mod digits_common;

use common::BoxResult;
use digits_common::Flags;
use ndarray::Array2;
use plotters::style::RGBColor;
use rand::SeedableRng;
use score_sde::backend::candle::candle_core::{DType, Device, Tensor};
use score_sde::backend::candle::candle_nn::{VarBuilder, VarMap};
use score_sde::backend::candle::{
    CandleNetwork, Checkpoint, DsmTrainer, Ema, FitConfig, MlpConfig, NetworkSpec, UnetConfig,
    candle_err, init_seeded, named_vars,
};
use score_sde::backend::digits::{DIM, Digits, SIDE};
use score_sde::prelude::*;
use std::path::PathBuf;
use std::time::Instant;

const USAGE: &str = "train_digits [--net unet|mlp] [--steps N] [--batch N] [--lr X] [--ema DECAY] \
[--channels C] [--hidden H] [--copies K] [--seed S] [--save-every N] [--out FILE.safetensors] [--resume]";

/// Held-out test images and the split's seed (shared with `sample_digits`).
pub const TEST_IMAGES: usize = 360;
/// Seed of the train/test split.
pub const SPLIT_SEED: u64 = 0;

struct Settings {
    spec: NetworkSpec,
    steps: usize,
    batch: usize,
    lr: f64,
    ema: f64,
    copies: usize,
    seed: u64,
    save_every: usize,
    path: PathBuf,
    resume: bool,
}

fn settings() -> BoxResult<Settings> {
    let f = Flags::parse(
        &[
            "net",
            "steps",
            "batch",
            "lr",
            "ema",
            "channels",
            "hidden",
            "copies",
            "seed",
            "save-every",
            "out",
        ],
        &["resume"],
        USAGE,
    )?;
    let kind = f.string("net", "unet");
    let spec = match kind.as_str() {
        "mlp" => NetworkSpec::mlp(DIM, MlpConfig::default().hidden(f.get("hidden", 256)?)),
        "unet" => NetworkSpec::unet(SIDE, UnetConfig::default().channels(f.get("channels", 32)?)),
        other => return Err(format!("--net {other}: expected unet or mlp").into()),
    };
    let default_steps = if kind == "mlp" { 8000 } else { 2000 };
    let path = match f.has("out") {
        true => PathBuf::from(f.string("out", "")),
        false => common::default_out_dir("train_digits")?.join(format!("{kind}.safetensors")),
    };
    Ok(Settings {
        spec,
        steps: f.get("steps", default_steps)?,
        batch: f.get("batch", 128)?,
        lr: f.get("lr", 2e-3)?,
        ema: f.get("ema", 0.999)?,
        copies: f.get("copies", 16)?,
        seed: f.get("seed", 0)?,
        save_every: f.get("save-every", 1000)?,
        path,
        resume: f.has("resume"),
    })
}

fn main() -> BoxResult<()> {
    let s = settings()?;
    let digits = Digits::load(Digits::default_path())?;
    let (train, test) = digits.split(TEST_IMAGES, SPLIT_SEED)?;
    let repeated: Vec<usize> = (0..s.copies.max(1)).flat_map(|_| 0..train.len()).collect();
    let data: Array2<f32> = train
        .select(&repeated)?
        .dequantize(&mut rand_pcg::Pcg64::seed_from_u64(s.seed ^ 0xD1617))?;
    println!(
        "digits: {} training images ({} dequantisations each), {} held out",
        train.len(),
        s.copies.max(1),
        test.len()
    );

    let varmap = VarMap::new();
    let net = s
        .spec
        .build(VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu))?;
    init_seeded(&varmap, s.seed)?;
    let vars = named_vars(&varmap)?;
    let n_params: usize = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let sde = VpSde::<f32>::default();
    let model = Parameterized::noise(CandleNetwork::new(net, DIM), *sde.schedule());
    let cfg = FitConfig::default()
        .steps(s.steps)
        .batch_size(s.batch)
        .lr(s.lr);
    let mut trainer = DsmTrainer::from_varmap(&model, &varmap, &sde, data.view(), cfg)?;
    let mut ema = Ema::new(vars.clone(), s.ema)?;
    let mut losses: Vec<f64> = Vec::with_capacity(s.steps);
    if s.resume && s.path.exists() {
        let ck = Checkpoint::load(&s.path, &Device::Cpu)?;
        let saved = NetworkSpec::from_json(ck.metadata("network").unwrap_or("?"))?;
        if saved != s.spec {
            return Err(format!(
                "{} holds {saved:?}, not the requested {:?}",
                s.path.display(),
                s.spec
            )
            .into());
        }
        let step = ck.restore_training(&vars, &mut ema, trainer.optimizer_mut())?;
        if let Some(l) = ck.section("log.").get("loss") {
            losses = l
                .to_dtype(DType::F64)
                .and_then(|l| l.to_vec1::<f64>())
                .map_err(candle_err)?;
        }
        if losses.len() as u64 != step {
            return Err(format!(
                "{}: a loss log of {} steps for step {step}",
                s.path.display(),
                losses.len()
            )
            .into());
        }
        println!("resumed {} at step {step}", s.path.display());
    }
    let start = losses.len();
    println!(
        "training {} ({n_params} parameters): steps {}..{} of batch {}, AdamW lr {} cosine-decayed, EMA {}",
        s.spec.kind(),
        start,
        s.steps,
        s.batch,
        s.lr,
        s.ema
    );

    let save = |losses: &[f64], trainer: &DsmTrainer<'_, f32, _, _>, ema: &Ema| -> BoxResult<()> {
        let mut ck = Checkpoint::of_training(&vars, ema, trainer.optimizer());
        let log = Tensor::new(losses, &Device::Cpu).map_err(candle_err)?;
        ck.insert("log.", [("loss".to_string(), log)]);
        ck.set_metadata("network", s.spec.to_json());
        ck.set_metadata("seed", s.seed.to_string());
        ck.set_metadata(
            "training",
            format!(
                "DSM on the VP SDE, eps-prediction, sigma^2 weighting; AdamW lr {} cosine over {} steps, batch {}, EMA {}; digits split {TEST_IMAGES}/{SPLIT_SEED}, {} dequantisations",
                s.lr, s.steps, s.batch, s.ema, s.copies
            ),
        );
        ck.save(&s.path)?;
        Ok(())
    };

    let mut progress = Progress::new(start, s.steps);
    let clock = Instant::now();
    for step in start..s.steps {
        // Cosine decay to 0 (Loshchilov & Hutter 2017).
        let frac = step as f64 / s.steps as f64;
        trainer.set_lr(s.lr * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()))?;
        let mut rng = rand_pcg::Pcg64::new(u128::from(s.seed), step as u128);
        let loss = trainer.step(&mut rng)?;
        ema.update()?;
        losses.push(loss);
        progress.tick(step + 1, &losses);
        if (step + 1) % s.save_every.max(1) == 0 && step + 1 < s.steps {
            save(&losses, &trainer, &ema)?;
        }
    }
    progress.finish();
    let secs = clock.elapsed().as_secs_f64();
    let done = s.steps.saturating_sub(start);
    if done > 0 {
        println!(
            "{done} steps in {secs:.1} s ({:.1} steps/s, {:.0} images/s)",
            done as f64 / secs,
            (done * s.batch) as f64 / secs
        );
    }
    save(&losses, &trainer, &ema)?;
    println!("checkpoint: {}", s.path.display());
    let dir = s.path.parent().map(PathBuf::from).unwrap_or_default();
    let curve = digits_common::loss_curve(
        &dir.join(format!("loss_{}.png", s.spec.kind())),
        &format!(
            "train_digits: {} on the digits, batch {}",
            s.spec.kind(),
            s.batch
        ),
        &[(s.spec.kind(), &losses, RGBColor(31, 119, 180))],
        (losses.len() / 40).clamp(1, 200),
    )?;
    common::report(&[curve]);
    Ok(())
}

/// A progress bar with the feature `progress`, else a line every tenth of the run.
struct Progress {
    #[cfg(feature = "progress")]
    bar: indicatif::ProgressBar,
    #[cfg(not(feature = "progress"))]
    every: usize,
}

impl Progress {
    fn new(start: usize, steps: usize) -> Self {
        #[cfg(feature = "progress")]
        {
            let bar = indicatif::ProgressBar::new(steps as u64).with_position(start as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} steps  {per_sec}  eta {eta}  {msg}",
            ) {
                bar.set_style(style);
            }
            Self { bar }
        }
        #[cfg(not(feature = "progress"))]
        {
            let _ = start;
            Self {
                every: (steps / 10).max(1),
            }
        }
    }
    fn tick(&mut self, step: usize, losses: &[f64]) {
        let recent = &losses[losses.len().saturating_sub(100)..];
        let mean = recent.iter().sum::<f64>() / recent.len().max(1) as f64;
        #[cfg(feature = "progress")]
        {
            self.bar.set_position(step as u64);
            if step % 10 == 0 {
                self.bar.set_message(format!("loss {mean:.3}"));
            }
        }
        #[cfg(not(feature = "progress"))]
        if step % self.every == 0 {
            println!(
                "  step {step:>6}  loss (mean of last {}) {mean:.4}",
                recent.len()
            );
        }
    }
    fn finish(&self) {
        #[cfg(feature = "progress")]
        self.bar.finish();
    }
}
