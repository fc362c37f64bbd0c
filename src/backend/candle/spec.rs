//! Which network, with which sizes: a serialisable description that a checkpoint carries
//! in its metadata, so a program can rebuild the network it was trained with.

use super::{MlpConfig, TimeMlp, TimeModule, TimeUnet, UnetConfig};
use crate::error::{Error, Result};
use candle_nn::VarBuilder;
use std::sync::Arc;

/// A score network for `dim`-dimensional data: [`TimeMlp`] or [`TimeUnet`].
///
/// ```
/// use score_sde::backend::candle::{NetworkSpec, UnetConfig};
/// let spec = NetworkSpec::unet(8, UnetConfig::default().channels(16));
/// let json = spec.to_json();
/// assert_eq!(NetworkSpec::from_json(&json)?, spec);
/// assert_eq!(spec.dim(), 64);
/// # Ok::<(), score_sde::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum NetworkSpec {
    /// [`TimeMlp`] on `dim` inputs.
    Mlp {
        /// Data dimension.
        dim: usize,
        /// Sizes.
        config: MlpConfig,
    },
    /// [`TimeUnet`] on `side × side` images.
    Unet {
        /// Image side.
        side: usize,
        /// Sizes.
        config: UnetConfig,
    },
}

impl NetworkSpec {
    /// An MLP for `dim`-dimensional data.
    pub fn mlp(dim: usize, config: MlpConfig) -> Self {
        NetworkSpec::Mlp { dim, config }
    }
    /// A U-Net for `side × side` images.
    pub fn unet(side: usize, config: UnetConfig) -> Self {
        NetworkSpec::Unet { side, config }
    }
    /// The data dimension.
    pub fn dim(&self) -> usize {
        match self {
            NetworkSpec::Mlp { dim, .. } => *dim,
            NetworkSpec::Unet { side, .. } => side * side,
        }
    }
    /// A short name: `mlp` or `unet`.
    pub fn kind(&self) -> &'static str {
        match self {
            NetworkSpec::Mlp { .. } => "mlp",
            NetworkSpec::Unet { .. } => "unet",
        }
    }
    /// Build the network with parameters from `vb`.
    pub fn build(&self, vb: VarBuilder) -> Result<Arc<dyn TimeModule>> {
        Ok(match self {
            NetworkSpec::Mlp { dim, config } => Arc::new(TimeMlp::new(*dim, config, vb)?),
            NetworkSpec::Unet { side, config } => Arc::new(TimeUnet::new(*side, config, vb)?),
        })
    }
    /// The description as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    /// Parse a description written by [`NetworkSpec::to_json`].
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Io(format!("network description: {e}")))
    }
}
