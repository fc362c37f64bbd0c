//! Externally given step noise: reproduce another library's stochastic run (diffusers'
//! `generator`, a recorded Brownian path) by feeding the exact normal draws a method uses.
//!
//! The stochastic methods that accept it ([`DpmSolverPp`](super::DpmSolverPp) with
//! [`DpmVariant::Sde`](super::DpmVariant), [`EulerAncestral`](super::EulerAncestral),
//! [`GottaGoFast`](super::GottaGoFast)) take draw `k` of a run from entry `k` of the table
//! instead of the driver's per-row streams ([`StepContext::noise`]): one entry per step of a
//! grid method, one per attempted step of the adaptive SDE solver. Each entry must have the
//! batch's shape. The driver still seeds its streams (it does not know the method reads a
//! table), so the caller's RNG advances as usual; the samples then depend only on the table.

use super::driver::StepContext;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array2, ArrayViewMut2};
use std::sync::Arc;

/// A run's step noise given from outside: entry `k` is the standard-normal draw `z` of the
/// method's `k`-th noise draw, one row per sample.
///
/// The stochastic methods that accept it ([`DpmSolverPp`](super::DpmSolverPp) with
/// [`DpmVariant::Sde`](super::DpmVariant), [`EulerAncestral`](super::EulerAncestral),
/// [`GottaGoFast`](super::GottaGoFast)) take draw `k` from entry `k` instead of the driver's
/// per-row streams: one entry per step of a grid method, one per attempted step of the
/// adaptive SDE solver. Each entry must have the batch's shape. The driver still seeds its
/// streams, so the caller's RNG advances as usual; the samples depend only on the table.
/// Use it to reproduce another library's stochastic run (diffusers' `generator`) or to
/// couple Brownian increments in a test.
///
/// ```
/// use score_sde::sample::NoiseTable;
/// use ndarray::Array2;
/// let table = NoiseTable::new(vec![Array2::<f64>::zeros((4, 2)); 3]).unwrap();
/// assert_eq!(table.len(), 3);
/// assert!(NoiseTable::<f64>::new(vec![]).is_err());
/// assert!(NoiseTable::new(vec![Array2::from_elem((1, 1), f64::NAN)]).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseTable<F> {
    draws: Arc<Vec<Array2<F>>>,
}

impl<F: Real> NoiseTable<F> {
    /// A table of draws: at least one, all finite and of one shape.
    pub fn new(draws: Vec<Array2<F>>) -> Result<Self> {
        let Some(first) = draws.first() else {
            return Err(Error::Empty {
                what: "noise table",
            });
        };
        let shape = first.dim();
        for z in &draws {
            if z.dim() != shape {
                return Err(Error::shape("noise table entry", shape, z.dim()));
            }
            crate::check::finite("noise table entry", &z.view())?;
        }
        Ok(Self {
            draws: Arc::new(draws),
        })
    }
    /// Number of draws.
    pub fn len(&self) -> usize {
        self.draws.len()
    }
    /// Always false: a table has at least one draw.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Copy draw `k` into `z` (same shape).
    pub(crate) fn fill(&self, k: usize, mut z: ArrayViewMut2<F>) -> Result<()> {
        let Some(d) = self.draws.get(k) else {
            return Err(Error::Unsupported {
                what: "a noise table that runs out",
                reason: format!(
                    "draw {k} was asked for but the table has {} entries",
                    self.draws.len()
                ),
            });
        };
        if d.dim() != z.dim() {
            return Err(Error::shape(
                "noise table entry (the batch)",
                z.dim(),
                d.dim(),
            ));
        }
        z.assign(d);
        Ok(())
    }
}

/// Fill `z` with draw `k`: from `table` when given, else from the run's per-row streams.
pub(crate) fn draw<F: Real>(
    table: Option<&NoiseTable<F>>,
    ctx: &mut StepContext<'_, F>,
    k: usize,
    z: ArrayViewMut2<F>,
) -> Result<()> {
    match table {
        Some(t) => t.fill(k, z),
        None => {
            ctx.noise()?.fill(z);
            Ok(())
        }
    }
}
