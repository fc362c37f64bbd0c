//! The peer comparison's Rust side: our samplers on the peer harness's problems with each
//! peer's settings, one JSON line per run with the fields the peers print
//! (`shared/peers/README.md`): wall seconds, samples·NFE per second, SW1, mean and
//! covariance error, weight TV, log-likelihood gap, plus how busy the machine was.
//!
//! ```text
//! cargo run --release --example peer_bench -- --problem ring2d --n 100000 --steps 1000 \
//!     --algo em pc-rd-langevin --dtype float64
//! cargo run --release --example peer_bench -- --problem path/to/rand16d.json --n 20000 \
//!     --algo dpmsolver++2m --steps 10 20 --dtype float32
//! cargo run --release --features rayon --example peer_bench -- --threads 2 ...
//! ```
//!
//! `--problem` is `ring2d` / `rand16d` (the embedded copies, identical to the peers'
//! `problems/*.json`) or a path to such a JSON file. Algorithms and what they match:
//!
//! | `--algo` | ours | peer |
//! |---|---|---|
//! | `em` | `Pc`, Euler–Maruyama predictor, no corrector, uniform grid of `steps` steps | score_sde `EulerMaruyamaPredictor` (numpy / torch ports) |
//! | `pc-rd-langevin` | `Pc`, reverse-diffusion predictor + Langevin corrector, snr 0.16, 1 step, batch-mean rule | score_sde `ReverseDiffusionPredictor` + `LangevinCorrector` |
//! | `pc-em-langevin` | `Pc`, Euler–Maruyama predictor + the same corrector | score_sde `EulerMaruyamaPredictor` + `LangevinCorrector` |
//! | `dpmsolver++2m` | `DpmSolverPp` 2M on `DiscreteVp::ddpm_linear(1000, 1e-4, 0.02)` at diffusers' `"linspace"` timesteps, second order up to the last step, which is the first-order step to σ = 0 (= a Tweedie denoise) | diffusers `DPMSolverMultistepScheduler(dpmsolver++, order 2)` |
//! | `dpmsolver++2m/quadratic`, `dpmsolver++2m/logsnr` | `DpmSolverPp` 2M on the continuous VP SDE, quadratic / log-SNR grid, `steps` steps | ours at the same NFE |
//!
//! Deliberate differences from score_sde's quirks (the work per step is identical, the
//! sample quality differs slightly; see `docs/stochastic.md`): our grid has `steps + 1`
//! points and `dt` is the grid spacing (score_sde: `linspace(T, eps, N)` with `dt = −1/N`);
//! the reverse-diffusion predictor and the corrector's `α_i` use the exact transition of the
//! continuous schedule instead of a table of `N` betas indexed by `int(t (N−1)/T)`; noise
//! comes from per-row streams. The last predictor step adds no noise (`noise_removal`).
//!
//! Timing: `wall_s` covers what the peers time — initial noise and all steps (the whole
//! `Sampler::sample` call, with its per-step non-finite check) — after an untimed warm-up
//! run of `--warmup-steps` steps; up to `--repeats` runs (default 3, as the peers) within
//! 6 s in total, minimum kept. Metrics use `metrics::Reference` with `N` exact samples of `p_eps` drawn by our
//! generator (seed 777): the peers draw theirs with numpy's `default_rng(777)`, which we do
//! not reproduce, so SW1 differs by reference-sample luck (its noise floor at this `N`, from
//! `peer_exact.py`, is the scale to compare against).

use ndarray::Array2;
use rand::SeedableRng;
use score_sde::metrics::Reference;
use score_sde::prelude::*;
use score_sde::sample::{DpmSolverPp, Pc, PredictorKind};
use serde_json::{Value, json};
use std::time::Instant;

const T_EPS: f64 = 1e-3;

#[derive(Debug, Clone)]
struct Args {
    problem: String,
    n: usize,
    steps: Vec<usize>,
    algos: Vec<String>,
    dtype: String,
    seed: u64,
    repeats: usize,
    warmup_steps: usize,
    threads: usize,
    metrics: bool,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        problem: "ring2d".into(),
        n: 100_000,
        steps: vec![1000],
        algos: vec!["em".into()],
        dtype: "float64".into(),
        seed: 0,
        repeats: 3,
        warmup_steps: 5,
        threads: 1,
        metrics: true,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let bad = |what: &str, v: &str| Error::Io(format!("bad value for {what}: {v:?}"));
    let mut i = 0;
    while i < argv.len() {
        let key = argv[i].clone();
        // Values: every following argument up to the next `--flag`.
        let mut vals = Vec::new();
        i += 1;
        while i < argv.len() && !argv[i].starts_with("--") {
            vals.push(argv[i].clone());
            i += 1;
        }
        let one = |vals: &[String]| -> Result<String> {
            match vals {
                [v] => Ok(v.clone()),
                _ => Err(Error::Io(format!("{key} takes one value"))),
            }
        };
        let num = |vals: &[String]| -> Result<usize> {
            let v = one(vals)?;
            v.parse().map_err(|_| bad(&key, &v))
        };
        match key.as_str() {
            "--problem" => a.problem = one(&vals)?,
            "--n" => a.n = num(&vals)?,
            "--steps" => {
                a.steps = vals
                    .iter()
                    .map(|v| v.parse().map_err(|_| bad("--steps", v)))
                    .collect::<Result<_>>()?
            }
            "--algo" => a.algos = vals,
            "--dtype" => a.dtype = one(&vals)?,
            "--seed" => a.seed = num(&vals)? as u64,
            "--repeats" => a.repeats = num(&vals)?.max(1),
            "--warmup-steps" => a.warmup_steps = num(&vals)?,
            "--threads" => a.threads = num(&vals)?.max(1),
            "--metrics" => a.metrics = num(&vals)? != 0,
            _ => return Err(Error::Io(format!("unknown argument {key}"))),
        }
    }
    Ok(a)
}

/// The mixture and its name: an embedded problem or a peer-harness JSON file.
fn load_problem(p: &str) -> Result<(String, MixtureSpec)> {
    match p {
        "ring2d" => Ok((p.into(), MixtureSpec::from_json(problems::RING2D_JSON)?)),
        "rand16d" => Ok((p.into(), MixtureSpec::from_json(problems::RAND16D_JSON)?)),
        path => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{path}: {e}")))?;
            let name = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("name").and_then(|n| n.as_str().map(String::from)))
                .unwrap_or_else(|| path.to_string());
            Ok((name, MixtureSpec::from_json(&text)?))
        }
    }
}

/// diffusers' `timestep_spacing="linspace"` for `steps` of 1000 training steps, as times
/// of [`DiscreteVp`] (index `i` sits at `t = (i + 1)/1000`): `linspace(0, 999, steps + 1)`
/// rounded, reversed, the last (0) dropped.
fn diffusers_linspace_times(steps: usize) -> Vec<f64> {
    let mut ts: Vec<f64> = (0..=steps)
        .map(|j| (999.0 * j as f64 / steps as f64).round())
        .collect();
    ts.reverse();
    ts.pop();
    ts.into_iter().map(|i| (i + 1.0) / 1000.0).collect()
}

/// A sampler, its model, and a description for the JSON line.
type Built<F> = (Box<dyn Sampler<F>>, Box<dyn ScoreModel<F>>, Value);

/// Build the sampler and the model for `algo` at `steps` steps, with a description.
fn build<F: Real>(algo: &str, steps: usize, mixture: &GaussianMixture<F>) -> Result<Built<F>> {
    let sde = VpSde::<F>::default();
    let sched = *sde.schedule();
    let continuous =
        || -> Box<dyn ScoreModel<F>> { Box::new(AnalyticScore::new(mixture.clone(), sched)) };
    let uniform = || TimeGrid::uniform(&sched, steps);
    Ok(match algo {
        "em" => (
            Box::new(Pc::new(sde.clone(), uniform()?)?),
            continuous(),
            json!({"description": "Pc: Euler–Maruyama predictor, no corrector, uniform grid"}),
        ),
        "pc-rd-langevin" | "pc-em-langevin" => {
            let p = if algo == "pc-rd-langevin" {
                PredictorKind::ReverseDiffusion
            } else {
                PredictorKind::EulerMaruyama
            };
            (
                Box::new(Pc::new(sde.clone(), uniform()?)?.predictor(p)?.snr(0.16)?),
                continuous(),
                json!({"description": format!("Pc: {p:?} predictor + Langevin corrector (batch-mean rule)"),
                       "snr": 0.16, "n_steps_each": 1, "langevin_norm": "batch"}),
            )
        }
        "dpmsolver++2m" => {
            if steps < 2 {
                return Err(Error::param(
                    "steps",
                    steps as f64,
                    "diffusers' grid needs ≥ 2",
                ));
            }
            let disc = DiscreteVp::<F>::ddpm_linear(1000, F::lit(1e-4), F::lit(0.02))?;
            let times: Vec<F> = diffusers_linspace_times(steps)
                .into_iter()
                .map(F::lit)
                .collect();
            let first_last = [times[0].as_f64(), times[steps - 1].as_f64()];
            let grid = TimeGrid::custom(&disc, times)?;
            let dsde = LinearSde::new(disc.clone()).with_prior_std(F::one())?;
            (
                Box::new(
                    DpmSolverPp::new(dsde, grid)?
                        .order(2)?
                        .lower_order_final(false)
                        .denoise_final(true),
                ),
                Box::new(AnalyticScore::new(mixture.clone(), disc)),
                json!({"description": "DPM-Solver++ 2M on diffusers' discrete linear betas (1e-4..0.02, 1000) at its linspace timesteps; last step to sigma 0 = first-order (Tweedie)",
                       "times_first_last": first_last}),
            )
        }
        "dpmsolver++2m/quadratic" | "dpmsolver++2m/logsnr" => {
            let grid = if algo.ends_with("quadratic") {
                TimeGrid::quadratic(&sched, steps)?
            } else {
                TimeGrid::log_snr(&sched, steps)?
            };
            (
                Box::new(DpmSolverPp::new(sde.clone(), grid)?.order(2)?),
                continuous(),
                json!({"description": "DPM-Solver++ 2M, continuous VP SDE, lower-order final step"}),
            )
        }
        other => return Err(Error::Io(format!("unknown --algo {other}"))),
    })
}

/// `(busy, total)` jiffies over all CPUs from `/proc/stat`.
fn proc_stat_busy() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let total: u64 = v.iter().sum();
    Some((total - idle, total))
}

/// This process's CPU seconds (all threads), from the nanosecond run times in
/// `/proc/self/task/*/schedstat` (finer than the 10 ms ticks of `/proc/self/stat`).
fn cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let p = task.ok()?.path().join("schedstat");
        let s = std::fs::read_to_string(p).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

/// A `/proc/self/status` field in kB (e.g. `VmHWM`, peak resident memory).
fn status_kb(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Timed {
    wall: f64,
    cpu: Option<f64>,
    other_cores: Option<f64>,
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, Timed) {
    let s0 = proc_stat_busy();
    let c0 = cpu_seconds();
    let w0 = Instant::now();
    let r = f();
    let wall = w0.elapsed().as_secs_f64();
    let c1 = cpu_seconds();
    let s1 = proc_stat_busy();
    let cpu = c0.zip(c1).map(|(a, b)| b - a);
    let other_cores = match (s0, s1, cpu) {
        (Some(a), Some(b), Some(cpu)) => {
            let busy = (b.0 - a.0) as f64 / 100.0;
            Some(((busy - cpu).max(0.0) / wall.max(1e-9) * 1000.0).round() / 1000.0)
        }
        _ => None,
    };
    (
        r,
        Timed {
            wall,
            cpu,
            other_cores,
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn run_one<F: Real>(
    args: &Args,
    name: &str,
    mixture64: &GaussianMixture<f64>,
    mixture: &GaussianMixture<F>,
    reference: &mut Option<Reference>,
    algo: &str,
    steps: usize,
) -> Result<()> {
    let (sampler, model, mut config) = build::<F>(algo, steps, mixture)?;
    let d = mixture.dim();
    let n = args.n;
    if args.warmup_steps > 0 {
        let (ws, wm, _) = build::<F>(algo, args.warmup_steps.max(2), mixture)?;
        let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed + 1);
        ws.sample(wm.as_ref(), n, d, &mut rng)?;
    }
    let load0 = loadavg();
    let mut walls = Vec::new();
    let mut best: Option<(f64, Timed, Array2<F>, usize)> = None;
    loop {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(args.seed);
        let (run, tm) = timed(|| sampler.sample(model.as_ref(), n, d, &mut rng));
        let run = run?;
        walls.push(tm.wall);
        if best.as_ref().is_none_or(|b| tm.wall < b.0) {
            best = Some((tm.wall, tm, run.samples, run.nfe));
        }
        if walls.len() >= args.repeats || walls.iter().sum::<f64>() >= 6.0 {
            break;
        }
    }
    let Some((wall, tm, samples, nfe)) = best else {
        return Err(Error::Empty { what: "timed runs" });
    };
    // Peak resident memory of the process so far: the sampler's buffers, the samples, the
    // mixture and the program — not yet the metrics' reference (built below, on first use).
    let peak_rss_kb = status_kb("VmHWM:");
    let (rep, ll_ref) = if args.metrics {
        if reference.is_none() {
            *reference = Some(Reference::new(
                mixture64,
                &VpLinear::<f64>::default(),
                T_EPS,
                n,
                777,
            )?);
        }
        let r = reference
            .as_ref()
            .ok_or(Error::Empty { what: "reference" })?;
        (Some(r.evaluate(samples.view())?), r.loglik_p0_ref())
    } else {
        (None, f64::NAN)
    };
    let obj = config
        .as_object_mut()
        .ok_or(Error::Empty { what: "config" })?;
    obj.insert(
        "walls".into(),
        json!(
            walls
                .iter()
                .map(|w| (w * 1e4).round() / 1e4)
                .collect::<Vec<_>>()
        ),
    );
    obj.insert("cpu_s".into(), json!(tm.cpu));
    obj.insert("other_cores_busy".into(), json!(tm.other_cores));
    obj.insert("loadavg_before".into(), json!(load0));
    obj.insert("loadavg_after".into(), json!(loadavg()));
    obj.insert("threads".into(), json!(args.threads));
    obj.insert("warmup_steps".into(), json!(args.warmup_steps));
    obj.insert("rayon".into(), json!(cfg!(feature = "rayon")));
    obj.insert("peak_rss_kb".into(), json!(peak_rss_kb));
    obj.insert("rss_at_start_kb".into(), json!(RSS_AT_START.get()));
    obj.insert(
        "state_array_bytes".into(),
        json!(n * d * std::mem::size_of::<F>()),
    );
    let m = |f: fn(&score_sde::metrics::Report) -> f64| rep.as_ref().map(f);
    let rec = json!({
        "peer": "score-sde",
        "algorithm": algo,
        "problem": name,
        "D": d,
        "K": mixture64.n_components(),
        "N": n,
        "steps": steps,
        "NFE": nfe,
        "wall_s": (wall * 1e4).round() / 1e4,
        "sample_steps_per_s": (n * steps) as f64 / wall,
        "sample_nfe_per_s": (n * nfe) as f64 / wall,
        "dtype": args.dtype,
        "seed": args.seed,
        "mean_err": m(|r| r.mean_err),
        "cov_err_fro": m(|r| r.cov_err_fro),
        "cov_err_rel": m(|r| r.cov_err_rel),
        "weight_tv": m(|r| r.weight_tv),
        "sw1": m(|r| r.sw1),
        "loglik_p0": m(|r| r.loglik_p0),
        "loglik_p0_ref": rep.as_ref().map(|_| ll_ref),
        "loglik_gap": m(|r| r.loglik_gap),
        "nonfinite": rep.as_ref().map(|r| r.nonfinite),
        "config": config,
        "versions": {"score-sde": env!("CARGO_PKG_VERSION")},
        "host": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                 "machine": std::env::consts::ARCH},
    });
    println!("{rec}");
    Ok(())
}

fn run_all<F: Real>(args: &Args) -> Result<()> {
    let (name, spec) = load_problem(&args.problem)?;
    let mixture64: GaussianMixture<f64> = spec.build()?;
    let mixture: GaussianMixture<F> = spec.build()?;
    let mut reference = None;
    for algo in &args.algos {
        for &steps in &args.steps {
            run_one(
                args,
                &name,
                &mixture64,
                &mixture,
                &mut reference,
                algo,
                steps,
            )?;
        }
    }
    Ok(())
}

static RSS_AT_START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

fn main() -> Result<()> {
    if let Some(kb) = status_kb("VmRSS:") {
        let _ = RSS_AT_START.set(kb);
    }
    let args = parse_args()?;
    #[cfg(feature = "rayon")]
    rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build_global()
        .map_err(|e| Error::Io(format!("rayon pool: {e}")))?;
    #[cfg(not(feature = "rayon"))]
    if args.threads != 1 {
        return Err(Error::Io("--threads > 1 needs --features rayon".into()));
    }
    match args.dtype.as_str() {
        "float64" | "f64" => run_all::<f64>(&args),
        "float32" | "f32" => run_all::<f32>(&args),
        other => Err(Error::Io(format!("--dtype {other}: float32 or float64"))),
    }
}
