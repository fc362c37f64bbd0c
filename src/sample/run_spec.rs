//! Runs identified by a seed, split into row ranges: the same samples whether a run is made
//! whole or in shards over processes and machines.
//!
//! Every row of a run has its own random streams, seeded from the run's seed and the row's
//! index ([`RowNoise::for_rows`](crate::num::RowNoise::for_rows)): the initial state (the
//! prior draw) from one derived seed, every step's noise from another. Rows `a..b` of a run
//! can therefore be computed alone and equal rows `a..b` of the whole run bit for bit — for
//! every sampler whose rows do not interact ([`Sampler::sample_rows`](super::Sampler::sample_rows)
//! refuses the two that do: a Langevin corrector with the batch-mean step rule, and an
//! adaptive ODE solver, whose step size is shared by the batch).
//!
//! ```
//! use score_sde::prelude::*;
//! use score_sde::sample::{Pc, RunSpec};
//! let sde = VpSde::<f64>::default();
//! let model = AnalyticScore::new(problems::ring2d(), *sde.schedule());
//! let pc = Pc::new(sde.clone(), TimeGrid::uniform(sde.schedule(), 50)?)?;
//! let run = RunSpec::new(42, 1000)?;                    // 1000 samples, seed 42
//! let whole = pc.sample_rows(&model, 2, &run)?.samples;
//! let mut parts = Vec::new();
//! for shard in run.split(3)? {                           // e.g. three array-job tasks
//!     parts.push(pc.sample_rows(&model, 2, &shard)?.samples);
//! }
//! let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
//! assert_eq!(ndarray::concatenate(ndarray::Axis(0), &views).unwrap(), whole);
//! # Ok::<(), score_sde::Error>(())
//! ```

use crate::error::{Error, Result};
use crate::num::normal::splitmix64;
use rand::RngCore;
use std::ops::Range;

/// Rows `rows` of a run of `total` samples identified by `seed` (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct RunSpec {
    /// The run's seed.
    pub seed: u64,
    /// The number of samples of the whole run.
    pub total: usize,
    /// The rows wanted, `0 ≤ start < end ≤ total`.
    pub rows: Range<usize>,
}

/// Distinct streams for the prior draw and the steps' noise of one seed.
const PRIOR: u64 = 0x7072_696f_725f_7331; // "prior_s1"
const STEPS: u64 = 0x7374_6570_735f_7331; // "steps_s1"

impl RunSpec {
    /// The whole run: rows `0..total` of the run `seed` (`total ≥ 1`).
    pub fn new(seed: u64, total: usize) -> Result<Self> {
        if total == 0 {
            return Err(Error::Empty {
                what: "run (total = 0 samples)",
            });
        }
        Ok(Self {
            seed,
            total,
            rows: 0..total,
        })
    }
    /// A run whose seed is one `u64` from a plain RNG: the documented way to get a
    /// reproducible, splittable run from an `Rng` (keep the seed to re-run or shard it).
    pub fn from_rng(rng: &mut dyn RngCore, total: usize) -> Result<Self> {
        Self::new(rng.next_u64(), total)
    }
    /// Rows `rows` of this run (non-empty, inside `0..total`).
    pub fn shard(&self, rows: Range<usize>) -> Result<Self> {
        if rows.start >= rows.end || rows.end > self.total {
            return Err(Error::param(
                "rows",
                rows.end as f64,
                "a shard must be a non-empty range inside 0..total",
            ));
        }
        Ok(Self {
            seed: self.seed,
            total: self.total,
            rows,
        })
    }
    /// The whole run cut into `parts` contiguous shards of near-equal size (the first
    /// `total mod parts` one row larger), `1 ≤ parts ≤ total`.
    pub fn split(&self, parts: usize) -> Result<Vec<Self>> {
        self.check_parts(parts)?;
        // One `RunSpec` per part: sized before allocating (parts may be ~total ~ 10¹²).
        let mut all = crate::check::vec_with_capacity("run shards (parts)", parts)?;
        for i in 0..parts {
            all.push(self.shard(Self::part_rows(self.total, i, parts))?);
        }
        Ok(all)
    }
    /// Shard `index` of `parts` (0-based), as an array job's task would ask for it: the
    /// shard [`split`](Self::split) would give at `index`, computed without the others.
    pub fn part(&self, index: usize, parts: usize) -> Result<Self> {
        self.check_parts(parts)?;
        if index >= parts {
            return Err(Error::param(
                "index",
                index as f64,
                "must be below the number of parts",
            ));
        }
        self.shard(Self::part_rows(self.total, index, parts))
    }
    fn check_parts(&self, parts: usize) -> Result<()> {
        if parts == 0 || parts > self.total {
            return Err(Error::param(
                "parts",
                parts as f64,
                "must be between 1 and the number of samples",
            ));
        }
        Ok(())
    }
    /// Rows of part `i` of `parts` over `0..n`: `q = n / parts` rows each, the first
    /// `n mod parts` one more (`i·q + min(i, r) ≤ n`, so nothing overflows).
    fn part_rows(n: usize, i: usize, parts: usize) -> Range<usize> {
        let (q, r) = (n / parts, n % parts);
        let start = i * q + i.min(r);
        start..start + q + usize::from(i < r)
    }
    /// The number of rows of this shard.
    pub fn len(&self) -> usize {
        self.rows.end - self.rows.start
    }
    /// Whether the shard has no rows (never, for a spec built by this type's constructors).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether these are all the rows of the run.
    pub fn is_whole(&self) -> bool {
        self.rows.start == 0 && self.rows.end == self.total
    }
    /// The seed of the initial states' row streams.
    pub fn prior_seed(&self) -> u64 {
        splitmix64(self.seed ^ PRIOR)
    }
    /// The seed of the steps' row streams.
    pub fn noise_seed(&self) -> u64 {
        splitmix64(self.seed ^ STEPS)
    }
}
