//! Checkpoints in safetensors: the weights, their moving average, the optimiser's moments
//! and string metadata (e.g. the network's kind and sizes, the step, the seed) in one file.
//!
//! Tensors are stored under prefixes: [`NET`] (`net.<parameter>`), [`EMA`] and [`ADAM`]
//! (`adam.m.<parameter>`, `adam.v.<parameter>`). Any program that reads safetensors (e.g.
//! `safetensors.torch.load_file` in Python) reads the file.
//!
//! ```no_run
//! use score_sde::backend::candle::{Checkpoint, NET, named_vars};
//! use score_sde::backend::candle::candle_core::Device;
//! # fn f(varmap: &score_sde::backend::candle::candle_nn::VarMap) -> score_sde::Result<()> {
//! let vars = named_vars(varmap)?;
//! let mut ck = Checkpoint::new();
//! ck.insert(NET, vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())));
//! ck.set_metadata("step", "1000");
//! ck.save("run.safetensors")?;
//! let back = Checkpoint::load("run.safetensors", &Device::Cpu)?;
//! back.restore(NET, &vars)?; // shapes are checked; a missing tensor is an error
//! # Ok(()) }
//! ```

use super::{Adam, Ema, candle_err};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Prefix of the weights.
pub const NET: &str = "net.";
/// Prefix of the moving average of the weights.
pub const EMA: &str = "ema.";
/// Prefix of the optimiser's moments.
pub const ADAM: &str = "adam.";

/// Files above this size are refused before they are read (1 GiB: far above any network of
/// this crate's examples, far below the machine's memory).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;

/// `tensors[key]` converted to `like`'s dtype, after checking that it is there, has
/// `like`'s shape and only finite entries (errors name `what` and the key).
pub(super) fn matching(
    tensors: &HashMap<String, Tensor>,
    key: &str,
    like: &Var,
    what: &'static str,
) -> Result<Tensor> {
    let t = tensors
        .get(key)
        .ok_or_else(|| Error::Model(format!("{what}: {key} is missing")))?;
    if t.dims() != like.dims() {
        return Err(Error::shape(what, like.dims(), t.dims()));
    }
    let t = t.to_dtype(like.dtype()).map_err(candle_err)?;
    let values: Vec<f64> = t
        .flatten_all()
        .and_then(|f| f.to_dtype(DType::F64))
        .and_then(|f| f.to_vec1())
        .map_err(candle_err)?;
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what,
            index: i,
            value: values[i],
        });
    }
    Ok(t)
}

/// The variables of `varmap` with their names, sorted by name.
pub fn named_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| Error::Model("candle: the VarMap lock is poisoned".into()))?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// Named tensors and string metadata, saved as one safetensors file.
#[derive(Debug, Clone, Default)]
pub struct Checkpoint {
    tensors: BTreeMap<String, Tensor>,
    metadata: BTreeMap<String, String>,
}

impl Checkpoint {
    /// An empty checkpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `tensors` under `prefix` (e.g. [`NET`]), replacing any of the same name.
    pub fn insert(&mut self, prefix: &str, tensors: impl IntoIterator<Item = (String, Tensor)>) {
        for (name, t) in tensors {
            self.tensors.insert(format!("{prefix}{name}"), t);
        }
    }

    /// Set a metadata entry.
    pub fn set_metadata(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata.insert(key.into(), value.into());
    }

    /// A metadata entry.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).map(String::as_str)
    }

    /// A metadata entry parsed as an integer; an error naming the key if it is missing or not
    /// a number.
    pub fn metadata_u64(&self, key: &str) -> Result<u64> {
        let v = self
            .metadata(key)
            .ok_or_else(|| Error::Model(format!("checkpoint: metadata {key:?} is missing")))?;
        v.parse().map_err(|_| {
            Error::Model(format!(
                "checkpoint: metadata {key} = {v:?} is not a whole number"
            ))
        })
    }

    /// The tensors under `prefix`, with the prefix removed from their names.
    pub fn section(&self, prefix: &str) -> HashMap<String, Tensor> {
        self.tensors
            .iter()
            .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.clone())))
            .collect()
    }

    /// Write the checkpoint (creating the parent directory).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
            }
        }
        let meta: HashMap<String, String> = self.metadata.clone().into_iter().collect();
        safetensors::serialize_to_file(self.tensors.iter(), Some(meta), path)
            .map_err(|e| Error::Io(format!("{}: {e}", path.display())))
    }

    /// Read a checkpoint onto `device`. The safetensors header (size, offsets, dtypes,
    /// shapes) is validated before any tensor is built; files above
    /// [`MAX_CHECKPOINT_BYTES`] are refused unread.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let io = |e: String| Error::Io(format!("{}: {e}", path.display()));
        let len = std::fs::metadata(path)
            .map_err(|e| io(e.to_string()))?
            .len();
        if len > MAX_CHECKPOINT_BYTES {
            return Err(io(format!(
                "{len} bytes, more than the {MAX_CHECKPOINT_BYTES} a checkpoint may have"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| io(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io(e.to_string()))?;
        let metadata = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| io(e.to_string()))?
            .1
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let t = candle_core::safetensors::Load::load(&view, device)
                .map_err(|e| io(format!("tensor {name}: {e}")))?;
            tensors.insert(name, t);
        }
        Ok(Self { tensors, metadata })
    }

    /// Set `vars` to the tensors under `prefix` (converted to each variable's dtype). Every
    /// variable needs a finite tensor of its shape; extra tensors are ignored. Nothing is set
    /// unless all are good.
    pub fn restore(&self, prefix: &str, vars: &[(String, Var)]) -> Result<()> {
        let section = self.section(prefix);
        let values = vars
            .iter()
            .map(|(name, var)| matching(&section, name, var, "checkpoint tensor"))
            .collect::<Result<Vec<_>>>()?;
        for ((_, var), t) in vars.iter().zip(values) {
            var.set(&t).map_err(candle_err)?;
        }
        Ok(())
    }

    /// The state of a training run: the weights `vars` under [`NET`], their moving average
    /// under [`EMA`], the optimiser's moments under [`ADAM`], and the metadata `step` (the
    /// optimiser's step count) and `ema_updates`.
    pub fn of_training(vars: &[(String, Var)], ema: &Ema, opt: &Adam) -> Self {
        let mut ck = Self::new();
        ck.insert(
            NET,
            vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())),
        );
        ck.insert(EMA, ema.tensors());
        ck.insert(ADAM, opt.state());
        ck.set_metadata("step", opt.steps().to_string());
        ck.set_metadata("ema_updates", ema.updates().to_string());
        ck
    }

    /// Restore a state saved by [`Checkpoint::of_training`] into `vars`, `ema` and `opt`;
    /// returns the step to continue from.
    pub fn restore_training(
        &self,
        vars: &[(String, Var)],
        ema: &mut Ema,
        opt: &mut Adam,
    ) -> Result<u64> {
        let step = self.metadata_u64("step")?;
        let updates = self.metadata_u64("ema_updates")?;
        self.restore(NET, vars)?;
        opt.load_state(&self.section(ADAM), step)?;
        ema.load(&self.section(EMA), updates)?;
        Ok(step)
    }

    /// A [`VarBuilder`] over the tensors under `prefix` as plain (untracked) tensors in
    /// `dtype`: builds a network for inference, whose backward passes (e.g. an exact
    /// divergence, a classifier gradient) then compute no parameter gradients. A network
    /// built from it errors on a missing name or a wrong shape.
    pub fn var_builder(
        &self,
        prefix: &str,
        dtype: DType,
        device: &Device,
    ) -> Result<VarBuilder<'static>> {
        let section = self
            .section(prefix)
            .into_iter()
            .map(|(k, t)| Ok((k, t.to_dtype(dtype).map_err(candle_err)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        if section.is_empty() {
            return Err(Error::Model(format!(
                "checkpoint: no tensors under {prefix:?}"
            )));
        }
        Ok(VarBuilder::from_tensors(section, dtype, device))
    }
}
