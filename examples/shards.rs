//! One run split over processes, the way a Slurm array job or a Ray task pool runs it, and
//! checked against the run made whole: bit for bit (docs/scaling.md).
//!
//! ```text
//! cargo run --release --features npy --example shards -- --n 200000 --shards 4
//! cargo run --release --features npy,rayon --example shards -- --n 200000 --shards 2   # threads inside each shard
//! ```
//!
//! The parent process starts `--shards` copies of this program (`std::process::Command`,
//! as an array job's tasks), each computing rows `part(i, shards)` of the run `--seed` with
//! `Sampler::sample_rows` and writing them as a `.npy` shard (`backend::shards`); it then
//! gathers the shards (checking that they cover the run exactly once), makes the whole
//! run in one process, and compares. A task is also this program: `--task i` (0-based)
//! computes and writes one shard, as `$SLURM_ARRAY_TASK_ID` would select it.
//! Flags: `--n N` (default 20000), `--shards K` (4), `--seed S` (2026), `--steps T` (100),
//! `--sampler pc|dpm` (pc: reverse diffusion + σ-rule Langevin; dpm: DPM-Solver++ 3M),
//! `--out DIR` (target/examples-out/shards).

use score_sde::backend::shards::{read_run, write_shard};
use score_sde::prelude::*;
use score_sde::sample::{DpmSolverPp, Pc, PredictorKind, RunSpec, StepRule};
use std::process::Command;
use std::time::Instant;

struct Args {
    n: usize,
    shards: usize,
    seed: u64,
    steps: usize,
    sampler: String,
    out: std::path::PathBuf,
    task: Option<usize>,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        n: 20_000,
        shards: 4,
        seed: 2026,
        steps: 100,
        sampler: "pc".into(),
        out: "target/examples-out/shards".into(),
        task: None,
    };
    let mut it = std::env::args().skip(1);
    let bad = |what: &str| Error::Io(format!("bad or missing value for {what}"));
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| bad(&flag));
        match flag.as_str() {
            "--n" => a.n = val()?.parse().map_err(|_| bad("--n"))?,
            "--shards" => a.shards = val()?.parse().map_err(|_| bad("--shards"))?,
            "--seed" => a.seed = val()?.parse().map_err(|_| bad("--seed"))?,
            "--steps" => a.steps = val()?.parse().map_err(|_| bad("--steps"))?,
            "--sampler" => a.sampler = val()?,
            "--out" => a.out = val()?.into(),
            "--task" => a.task = Some(val()?.parse().map_err(|_| bad("--task"))?),
            other => return Err(Error::Io(format!("unknown argument {other}"))),
        }
    }
    Ok(a)
}

fn sampler(a: &Args) -> Result<Box<dyn Sampler<f64>>> {
    let sde = VpSde::<f64>::default();
    Ok(match a.sampler.as_str() {
        "pc" => Box::new(
            Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), a.steps)?)?
                .predictor(PredictorKind::ReverseDiffusion)?
                .snr(0.16)?
                .step_rule(StepRule::Sigma)?
                .denoise_final(true),
        ),
        "dpm" => Box::new(
            DpmSolverPp::new(sde.clone(), TimeGrid::quadratic(sde.schedule(), a.steps)?)?
                .order(3)?,
        ),
        other => return Err(Error::Io(format!("unknown sampler {other} (pc or dpm)"))),
    })
}

/// One task: rows `part(i, shards)` of the run, written as a shard. Prints its timings.
fn task(a: &Args, i: usize) -> Result<()> {
    let t0 = Instant::now();
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
    let s = sampler(a)?;
    let shard = RunSpec::new(a.seed, a.n)?.part(i, a.shards)?;
    let setup = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let run = s.sample_rows(&model, 2, &shard)?;
    let sampling = t1.elapsed().as_secs_f64();
    write_shard(&a.out, &a.sampler, &shard, run.samples.view())?;
    println!(
        "task {i}: rows {:?}, setup {setup:.4} s, sampling {sampling:.3} s, {} NFE",
        shard.rows, run.nfe
    );
    Ok(())
}

fn main() -> Result<()> {
    let a = parse()?;
    std::fs::create_dir_all(&a.out).map_err(|e| Error::Io(e.to_string()))?;
    std::fs::create_dir_all(a.out.join("probe")).map_err(|e| Error::Io(e.to_string()))?;
    if let Some(i) = a.task {
        return task(&a, i);
    }
    // Clear old shards of this stem so the coverage check sees only this run's.
    for e in std::fs::read_dir(&a.out)
        .map_err(|e| Error::Io(e.to_string()))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(&format!("{}.seed-", a.sampler)) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    let exe = std::env::current_exe().map_err(|e| Error::Io(e.to_string()))?;
    let task_args = |i: usize| {
        let mut v: Vec<String> = [
            "--n",
            &a.n.to_string(),
            "--shards",
            &a.shards.to_string(),
            "--seed",
            &a.seed.to_string(),
            "--steps",
            &a.steps.to_string(),
            "--sampler",
            &a.sampler,
            "--task",
            &i.to_string(),
            "--out",
        ]
        .map(String::from)
        .to_vec();
        v.push(a.out.to_string_lossy().to_string());
        v
    };
    // A shard's start-up cost: a process that builds the model and sampler and exits
    // (`--task` with one step and the smallest shard), timed by the parent, five times.
    let mut startup = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let probe = Command::new(&exe)
            .args([
                "--n",
                &a.shards.to_string(),
                "--shards",
                &a.shards.to_string(),
                "--steps",
                "1",
            ])
            .args(["--sampler", &a.sampler, "--task", "0", "--out"])
            .arg(a.out.join("probe"))
            .output()
            .map_err(|e| Error::Io(format!("probe: {e}")))?;
        if !probe.status.success() {
            return Err(Error::Io("the start-up probe failed".into()));
        }
        startup.push(t.elapsed().as_secs_f64());
    }
    startup.sort_by(f64::total_cmp);
    println!(
        "a shard's start-up (spawn, build, write a tiny shard, exit): median {:.4} s",
        startup[2]
    );
    // The tasks, all at once, as an array job.
    let t0 = Instant::now();
    let running: Vec<_> = (0..a.shards)
        .map(|i| {
            Command::new(&exe)
                .args(task_args(i))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| Error::Io(format!("task {i}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut children = Vec::new();
    for (i, c) in running.into_iter().enumerate() {
        children.push(
            c.wait_with_output()
                .map_err(|e| Error::Io(format!("task {i}: {e}")))?,
        );
    }
    let parallel = t0.elapsed().as_secs_f64();
    for (i, c) in children.iter().enumerate() {
        print!("{}", String::from_utf8_lossy(&c.stdout));
        if !c.status.success() {
            return Err(Error::Io(format!(
                "task {i} failed: {}",
                String::from_utf8_lossy(&c.stderr)
            )));
        }
    }
    let run = RunSpec::new(a.seed, a.n)?;
    let gathered = read_run::<f64>(&a.out, &a.sampler, &run)?;
    let t1 = Instant::now();
    let sde = VpSde::<f64>::default();
    let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
    let whole = sampler(&a)?.sample_rows(&model, 2, &run)?.samples;
    let single = t1.elapsed().as_secs_f64();
    let same = gathered
        .iter()
        .zip(whole.iter())
        .all(|(x, y)| x.to_bits() == y.to_bits());
    println!(
        "{} shards in {} concurrent processes: {parallel:.3} s; the whole run in one process: {single:.3} s",
        a.shards, a.shards
    );
    if !same {
        return Err(Error::Io("the shards differ from the whole run".into()));
    }
    println!(
        "OK: {} rows from {} shards equal the whole run bit for bit ({})",
        a.n,
        a.shards,
        if cfg!(feature = "rayon") {
            "rayon inside each shard"
        } else {
            "one thread each"
        }
    );
    Ok(())
}
