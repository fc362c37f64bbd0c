//! An exponential moving average of the weights (Polyak & Juditsky 1992; the EMA of
//! Song et al. 2021, App. H, and Ho et al. 2020, App. B, decay 0.999–0.9999).
//!
//! After each optimiser step, `θ̄ ← d θ̄ + (1 − d) θ` with the warm-up
//! `d = min(decay, (1 + n)/(10 + n))` after `n` earlier updates (TensorFlow's
//! `ExponentialMovingAverage` with `num_updates`), so a short run is not dominated by the
//! initial weights. Samples are drawn with the averaged weights.

use super::candle_err;
use super::checkpoint::matching;
use crate::error::{Error, Result};
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// The moving average of named parameters.
#[derive(Debug)]
pub struct Ema {
    decay: f64,
    updates: u64,
    slots: Vec<(String, Var, Tensor)>,
}

impl Ema {
    /// Start averaging `vars` (the average starts at their current values); `decay` in
    /// `[0, 1)`.
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::param("EMA decay", decay, "must be in [0, 1)"));
        }
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                // `detach` shares the variable's storage, which `Var::set` overwrites: copy it.
                let copy = var.as_tensor().detach().copy().map_err(candle_err)?;
                Ok((name, var, copy))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            decay,
            updates: 0,
            slots,
        })
    }

    /// The decay the next update uses: `min(decay, (1 + n)/(10 + n))`.
    pub fn current_decay(&self) -> f64 {
        let n = self.updates as f64;
        self.decay.min((1.0 + n) / (10.0 + n))
    }

    /// Updates so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// `θ̄ ← d θ̄ + (1 − d) θ` for every parameter.
    pub fn update(&mut self) -> Result<()> {
        let d = self.current_decay();
        for (_, var, avg) in &mut self.slots {
            let next = (&*avg * d).and_then(|a| a + (var.as_tensor() * (1.0 - d))?);
            *avg = next.map_err(candle_err)?.detach();
        }
        self.updates += 1;
        Ok(())
    }

    /// The averaged weights by parameter name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .map(|(n, _, t)| (n.clone(), t.clone()))
            .collect()
    }

    /// Restore an average saved by [`Ema::tensors`] and its update count: every parameter
    /// must be present with its shape and finite.
    pub fn load(&mut self, tensors: &HashMap<String, Tensor>, updates: u64) -> Result<()> {
        let loaded = self
            .slots
            .iter()
            .map(|(name, var, _)| matching(tensors, name, var, "EMA tensor"))
            .collect::<Result<Vec<_>>>()?;
        for ((_, _, avg), t) in self.slots.iter_mut().zip(loaded) {
            *avg = t;
        }
        self.updates = updates;
        Ok(())
    }
}
