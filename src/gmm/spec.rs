//! Serialisable mixture descriptions and the built-in benchmark problems.

use super::GaussianMixture;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array1, Array2, Array3};

use serde::{Deserialize, Serialize};

/// A mixture as plain numbers: the JSON layout of `../shared/peers/problems/*.json`
/// (`weights`, `means`, `covs`; other fields are ignored on reading).
///
/// ```
/// use score_sde::gmm::{GaussianMixture, MixtureSpec};
/// let json = r#"{"weights": [1.0], "means": [[0.0, 1.0]], "covs": [[[1.0, 0.0], [0.0, 2.0]]]}"#;
/// let gm: GaussianMixture<f64> = MixtureSpec::from_json(json).unwrap().build().unwrap();
/// let back = MixtureSpec::from_json(&gm.to_spec().to_json()).unwrap();
/// assert_eq!(back, gm.to_spec());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MixtureSpec {
    /// Component weights (positive, summing to 1).
    pub weights: Vec<f64>,
    /// Component means, one list of `D` numbers each.
    pub means: Vec<Vec<f64>>,
    /// Component covariances, `D × D` each, row-major nested lists.
    pub covs: Vec<Vec<Vec<f64>>>,
}

impl MixtureSpec {
    /// Parse from JSON.
    pub fn from_json(s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Io(format!("mixture JSON: {e}")))
    }
    /// Serialise to pretty JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain vectors of f64 cannot fail except for non-finite numbers,
        // which serde_json writes as null; the spec of a validated mixture has none.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
    /// Read a JSON file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let p = path.as_ref();
        let s =
            std::fs::read_to_string(p).map_err(|e| Error::Io(format!("{}: {e}", p.display())))?;
        Self::from_json(&s)
    }
    /// Write a JSON file.
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        let p = path.as_ref();
        std::fs::write(p, self.to_json()).map_err(|e| Error::Io(format!("{}: {e}", p.display())))
    }
    /// Build (and validate) the mixture in float type `F`.
    pub fn build<F: Real>(&self) -> Result<GaussianMixture<F>> {
        let k = self.weights.len();
        if k == 0 || self.means.is_empty() {
            return Err(Error::Empty {
                what: "mixture spec",
            });
        }
        let d = self.means[0].len();
        if self.means.len() != k {
            return Err(Error::shape(
                "means (rows = number of weights)",
                k,
                self.means.len(),
            ));
        }
        if self.covs.len() != k {
            return Err(Error::shape(
                "covs (count = number of weights)",
                k,
                self.covs.len(),
            ));
        }
        // Every shape is checked against the lists before the arrays are allocated: a spec
        // with one long mean and short covariances must not allocate K × D × D first.
        for c in 0..k {
            if self.means[c].len() != d {
                return Err(Error::shape("mean length", d, self.means[c].len()));
            }
            if self.covs[c].len() != d || self.covs[c].iter().any(|r| r.len() != d) {
                return Err(Error::shape("covariance", (d, d), format!("component {c}")));
            }
        }
        let mut means: Array2<F> = crate::check::zeros("mixture means", ndarray::Ix2(k, d))?;
        let mut covs: Array3<F> =
            crate::check::zeros("mixture covariances", ndarray::Ix3(k, d, d))?;
        for c in 0..k {
            for j in 0..d {
                means[[c, j]] = F::lit(self.means[c][j]);
            }
            for i in 0..d {
                for j in 0..d {
                    covs[[c, i, j]] = F::lit(self.covs[c][i][j]);
                }
            }
        }
        let w = Array1::from_iter(self.weights.iter().map(|&w| F::lit(w)));
        GaussianMixture::new(w, means, covs)
    }
}

impl<F: Real> GaussianMixture<F> {
    /// Build from a [`MixtureSpec`].
    pub fn from_spec(spec: &MixtureSpec) -> Result<Self> {
        spec.build()
    }
}

/// The built-in problems of the peer harness (`../shared/peers/problems/*.json`, embedded
/// in the crate bit for bit), so examples and tests need no files.
pub mod problems {
    use super::*;

    /// JSON of the 2-D ring: eight isotropic components (std 0.3) on a circle of radius 4.
    pub const RING2D_JSON: &str = include_str!("../../data/problems/ring2d.json");
    /// JSON of the 16-D five-component mixture with full covariances (seed 0).
    pub const RAND16D_JSON: &str = include_str!("../../data/problems/rand16d.json");

    fn embedded<F: Real>(json: &str) -> GaussianMixture<F> {
        // The embedded files are valid (a unit test builds both); an invalid one is a
        // build defect of this crate, not user input.
        match MixtureSpec::from_json(json).and_then(|s| s.build()) {
            Ok(g) => g,
            Err(e) => unreachable!("embedded problem is invalid: {e}"),
        }
    }

    /// The 2-D eight-component ring (`ring2d`).
    pub fn ring2d<F: Real>() -> GaussianMixture<F> {
        embedded(RING2D_JSON)
    }
    /// The 16-D five-component mixture (`rand16d`).
    pub fn rand16d<F: Real>() -> GaussianMixture<F> {
        embedded(RAND16D_JSON)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn embedded_problems_build() {
            let r = super::ring2d::<f64>();
            assert_eq!((r.n_components(), r.dim()), (8, 2));
            let q = super::rand16d::<f32>();
            assert_eq!((q.n_components(), q.dim()), (5, 16));
        }
    }
}
