//! Shards of a split run on disk (feature `npy`): each shard's samples as a `.npy` file
//! whose name carries the run's seed, the shard's rows and the run's size, and one call
//! that gathers them back, checking that they cover the run exactly once.
//!
//! ```
//! use score_sde::backend::shards::{read_run, write_shard};
//! use score_sde::prelude::*;
//! use score_sde::sample::{Ddim, RunSpec};
//! let dir = std::env::temp_dir().join(format!("score-sde-shards-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! let ddim = Ddim::new(sde.clone(), TimeGrid::log_snr(sde.schedule(), 10)?)?;
//! let run = RunSpec::new(7, 500)?;
//! for shard in run.split(4)? {                       // in four processes, say
//!     let s = ddim.sample_rows(&model, 2, &shard)?.samples;
//!     write_shard(&dir, "ring", &shard, s.view())?;
//! }
//! let all = read_run::<f64>(&dir, "ring", &run)?;  // checks the rows are covered once
//! assert_eq!(all, ddim.sample_rows(&model, 2, &run)?.samples);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), score_sde::Error>(())
//! ```

use super::npy::{load_npy, save_npy};
use crate::error::{Error, Result};
use crate::num::Real;
use crate::sample::RunSpec;
use ndarray::{Array2, ArrayView2, Axis};
use ndarray_npy::WritableElement;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The file name of a shard: `{stem}.seed-{seed as 16 hex digits}.rows-{a}-{b}.of-{total}.npy`.
pub fn shard_file_name(stem: &str, spec: &RunSpec) -> String {
    format!(
        "{stem}.seed-{:016x}.rows-{}-{}.of-{}.npy",
        spec.seed, spec.rows.start, spec.rows.end, spec.total
    )
}

/// Parse a shard file name of `stem`: `(seed, rows, total)`, or `None` for another file.
pub fn parse_shard_file_name(stem: &str, name: &str) -> Option<(u64, Range<usize>, usize)> {
    let rest = name.strip_prefix(stem)?.strip_prefix(".seed-")?;
    let rest = rest.strip_suffix(".npy")?;
    let (seed, rest) = rest.split_once(".rows-")?;
    let (rows, total) = rest.split_once(".of-")?;
    let (a, b) = rows.split_once('-')?;
    let seed = u64::from_str_radix(seed, 16).ok()?;
    Some((seed, a.parse().ok()?..b.parse().ok()?, total.parse().ok()?))
}

/// Write one shard's samples (`spec.len()` rows) to `dir/shard_file_name(stem, spec)`.
pub fn write_shard<F: Real + WritableElement>(
    dir: impl AsRef<Path>,
    stem: &str,
    spec: &RunSpec,
    samples: ArrayView2<F>,
) -> Result<PathBuf> {
    if samples.nrows() != spec.len() {
        return Err(Error::shape(
            "shard samples (rows of the spec)",
            spec.len(),
            samples.nrows(),
        ));
    }
    let path = dir.as_ref().join(shard_file_name(stem, spec));
    save_npy(&path, samples)?;
    Ok(path)
}

/// Gather the shards of the run `run` (its seed and size) written under `dir` with `stem`,
/// in row order. Errors unless they cover rows `0..run.total` exactly once — a gap, an
/// overlap, a shard of another seed or size, or a file whose rows disagree with its name —
/// naming the rows at fault.
pub fn read_run<F: Real>(dir: impl AsRef<Path>, stem: &str, run: &RunSpec) -> Result<Array2<F>> {
    let io = |e: std::io::Error| Error::Io(format!("{}: {e}", dir.as_ref().display()));
    let mut shards: Vec<(Range<usize>, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir.as_ref()).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some((seed, rows, total)) = parse_shard_file_name(stem, name) {
            if seed != run.seed || total != run.total {
                return Err(Error::Io(format!(
                    "{name}: a shard of another run (seed {seed:016x}, {total} rows; expected seed {:016x}, {} rows)",
                    run.seed, run.total
                )));
            }
            shards.push((rows, path));
        }
    }
    shards.sort_by_key(|(r, _)| (r.start, r.end));
    let mut next = 0;
    for (rows, path) in &shards {
        if rows.start != next || rows.end <= rows.start {
            let what = if rows.start < next { "overlap" } else { "gap" };
            return Err(Error::Io(format!(
                "shards of {stem}: {what} at row {next} ({} starts at row {})",
                path.display(),
                rows.start
            )));
        }
        next = rows.end;
    }
    if next != run.total {
        return Err(Error::Io(format!(
            "shards of {stem}: rows {next}..{} missing",
            run.total
        )));
    }
    let mut parts = Vec::with_capacity(shards.len());
    for (rows, path) in &shards {
        let a: Array2<F> = load_npy(path)?;
        if a.nrows() != rows.end - rows.start {
            return Err(Error::Io(format!(
                "{}: {} rows, its name says {}",
                path.display(),
                a.nrows(),
                rows.end - rows.start
            )));
        }
        parts.push(a);
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views)
        .map_err(|e| Error::Io(format!("shards of {stem}: widths differ ({e})")))
}
