//! AdamW with named, saveable state.
//!
//! The update of Loshchilov & Hutter (2019), Alg. 2, as PyTorch's `torch.optim.AdamW` and
//! candle's `AdamW` implement it: at step `t` with gradient `g`,
//!
//! ```text
//! θ ← θ (1 − η λ)
//! m ← β₁ m + (1 − β₁) g          v ← β₂ v + (1 − β₂) g²
//! θ ← θ − η (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```
//!
//! Unlike candle's `AdamW`, the moments `m`, `v` and the step count are readable and
//! settable by parameter name ([`Adam::state`], [`Adam::load_state`]), so a checkpoint can
//! hold them and a resumed run continue exactly where it stopped.

use super::candle_err;
use super::checkpoint::matching;
use crate::error::{Error, Result};
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use std::collections::HashMap;

/// Hyper-parameters of [`Adam`] (PyTorch's names and defaults, except `weight_decay`,
/// which is 0 here and 0.01 in `torch.optim.AdamW`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct AdamParams {
    /// Learning rate `η` (default 10⁻³).
    pub lr: f64,
    /// `β₁` (default 0.9).
    pub beta1: f64,
    /// `β₂` (default 0.999).
    pub beta2: f64,
    /// `ε` (default 10⁻⁸).
    pub eps: f64,
    /// Decoupled weight decay `λ` (default 0).
    pub weight_decay: f64,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamParams {
    /// Set the learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }
    /// Set the weight decay.
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }
    fn validate(&self) -> Result<()> {
        let unit = |name, v: f64| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::param(name, v, "must be in [0, 1)"))
            }
        };
        unit("beta1", self.beta1)?;
        unit("beta2", self.beta2)?;
        for (name, v) in [
            ("lr", self.lr),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::param(name, v, "must be finite and >= 0"));
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// AdamW over named parameters (see the module docs).
#[derive(Debug)]
pub struct Adam {
    params: AdamParams,
    slots: Vec<Slot>,
    step: u64,
}

impl Adam {
    /// An optimiser of `vars` (`(name, var)`, e.g. from [`named_vars`](super::named_vars));
    /// the moments start at zero. Names must be distinct; non-float variables are skipped.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        params.validate()?;
        let mut seen = std::collections::HashSet::new();
        let mut slots = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if !seen.insert(name.clone()) {
                return Err(Error::Model(format!(
                    "Adam: parameter name {name:?} appears twice"
                )));
            }
            if !var.dtype().is_float() {
                continue;
            }
            let m = var.zeros_like().map_err(candle_err)?;
            let v = var.zeros_like().map_err(candle_err)?;
            slots.push(Slot { name, var, m, v });
        }
        Ok(Self {
            params,
            slots,
            step: 0,
        })
    }

    /// The hyper-parameters.
    pub fn params(&self) -> &AdamParams {
        &self.params
    }

    /// Set the learning rate (finite, `≥ 0`).
    pub fn set_lr(&mut self, lr: f64) -> Result<()> {
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::param("lr", lr, "must be finite and >= 0"));
        }
        self.params.lr = lr;
        Ok(())
    }

    /// Steps taken so far (`t` of the bias corrections).
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update from `grads`; parameters without a gradient are left alone.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let p = self.params;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let (scale_m, scale_v) = (1.0 / (1.0 - p.beta1.powi(t)), 1.0 / (1.0 - p.beta2.powi(t)));
        for slot in &mut self.slots {
            let Some(g) = grads.get(&slot.var) else {
                continue;
            };
            let update = || -> candle_core::Result<(Tensor, Tensor, Tensor)> {
                let m = ((&slot.m * p.beta1)? + (g * (1.0 - p.beta1))?)?;
                let v = ((&slot.v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
                let step = ((&m * scale_m)? / ((&v * scale_v)?.sqrt()? + p.eps)?)?;
                let theta =
                    ((slot.var.as_tensor() * (1.0 - p.lr * p.weight_decay))? - (step * p.lr)?)?;
                Ok((m, v, theta))
            };
            let (m, v, theta) = update().map_err(candle_err)?;
            slot.var.set(&theta).map_err(candle_err)?;
            // Gradients can carry the graph they came from: keep the moments as leaves so
            // that no step holds on to the previous one's graph.
            slot.m = m.detach();
            slot.v = v.detach();
        }
        Ok(())
    }

    /// Back-propagate `loss` and take one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward().map_err(candle_err)?;
        self.step(&grads)
    }

    /// The moments by name: `m.<name>` and `v.<name>` for every parameter.
    pub fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .flat_map(|s| {
                [
                    (format!("m.{}", s.name), s.m.clone()),
                    (format!("v.{}", s.name), s.v.clone()),
                ]
            })
            .collect()
    }

    /// Restore moments saved by [`Adam::state`] and the step count. Every parameter's `m.`
    /// and `v.` must be present with its shape (converted to its dtype); the moments must be
    /// finite and `v ≥ 0`.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>, steps: u64) -> Result<()> {
        let mut loaded = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let m = matching(
                state,
                &format!("m.{}", slot.name),
                &slot.var,
                "Adam first moment",
            )?;
            let v = matching(
                state,
                &format!("v.{}", slot.name),
                &slot.var,
                "Adam second moment",
            )?;
            let min = v
                .flatten_all()
                .and_then(|f| f.min(0))
                .and_then(|f| f.to_dtype(candle_core::DType::F64))
                .and_then(|f| f.to_scalar::<f64>())
                .map_err(candle_err)?;
            if min < 0.0 {
                return Err(Error::param(
                    "Adam second moment",
                    min,
                    "must be >= 0 (a squared-gradient average)",
                ));
            }
            loaded.push((m, v));
        }
        for (slot, (m, v)) in self.slots.iter_mut().zip(loaded) {
            slot.m = m;
            slot.v = v;
        }
        self.step = steps;
        Ok(())
    }
}
