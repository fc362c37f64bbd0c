//! The UCI handwritten digits: 1,797 images of 8×8 pixels with 17 grey levels (0–16) and
//! their labels 0–9, as shipped in `data/digits/digits.txt` (CC BY 4.0; attribution and
//! format in `data/digits/README.md`, written by `scripts/make_digits.py` from
//! scikit-learn's `load_digits`).
//!
//! [`Digits`] reads the file, splits it into train and test sets by a seed, and dequantises
//! the levels for a continuous model: `u = (y + U[0, 1)) / 17`, `x = 2u − 1 ∈ [−1, 1)`
//! (uniform dequantisation, Theis et al. 2016), with [`Digits::scaling`] the matching
//! [`DataScaling`] for bits per dimension.
//!
//! For judging a model of these data: density baselines fitted to the training set whose
//! exact log-density [`GaussianMixture`](crate::gmm::GaussianMixture) computes
//! ([`fit_gaussian`], [`fit_mixture`] by EM), nearest-neighbour distances ([`nearest`]) and
//! a k-nearest-neighbour classifier ([`knn_classify`]).
//!
//! ```
//! use score_sde::backend::digits::{Digits, DIM};
//! use rand::SeedableRng;
//! let digits = Digits::load(Digits::default_path())?;
//! assert_eq!((digits.len(), DIM), (1797, 64));
//! let (train, test) = digits.split(360, 0)?;
//! assert_eq!((train.len(), test.len()), (1437, 360));
//! let x: ndarray::Array2<f32> = train.dequantize(&mut rand_pcg::Pcg64::seed_from_u64(1))?;
//! assert!(x.iter().all(|&v| (-1.0..1.0).contains(&v)));
//! # Ok::<(), score_sde::Error>(())
//! ```

mod baseline;
mod neighbours;

pub use baseline::{EmConfig, EmReport, fit_gaussian, fit_mixture};
pub use neighbours::{knn_classify, nearest};

use crate::error::{Error, Result};
use crate::likelihood::{DataScaling, dequantize_uniform};
use crate::num::Real;
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, RngCore, SeedableRng};
use std::path::{Path, PathBuf};

/// Image side in pixels.
pub const SIDE: usize = 8;
/// Pixels per image (`SIDE²`), the data dimension.
pub const DIM: usize = SIDE * SIDE;
/// Grey levels per pixel (0–16).
pub const LEVELS: u32 = 17;
/// Number of classes (digits 0–9).
pub const CLASSES: usize = 10;

/// The symbols of the levels 0–16 in the file, in order.
const ALPHABET: &[u8; LEVELS as usize] = b"0123456789abcdefg";

/// Files above this size are refused before they are read (the data set is 121 kB).
const MAX_FILE_BYTES: u64 = 64 << 20;

/// Images with their labels: `levels` is `N × 64` (row-major pixels, values 0–16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    levels: Array2<u8>,
    labels: Vec<u8>,
}

impl Digits {
    /// `data/digits/digits.txt` in this crate's source directory.
    pub fn default_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data")
            .join("digits")
            .join("digits.txt")
    }

    /// Read a file in the format of `data/digits/README.md`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let io = |e: std::io::Error| Error::Io(format!("{}: {e}", path.display()));
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_FILE_BYTES {
            return Err(Error::Io(format!(
                "{}: {len} bytes, more than the {MAX_FILE_BYTES} a digits file may have",
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text).map_err(|e| match e {
            Error::Io(m) => Error::Io(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Parse the text of a digits file: `#` comment lines, then one `<label> <64 symbols>`
    /// line per image (blank lines are skipped).
    ///
    /// ```
    /// use score_sde::backend::digits::Digits;
    /// let line = format!("7 {}", "0g".repeat(32));
    /// let d = Digits::parse(&format!("# one image\n{line}\n"))?;
    /// assert_eq!((d.len(), d.labels()[0], d.levels()[[0, 1]]), (1, 7, 16));
    /// assert!(Digits::parse("7 0g\n").is_err()); // too few pixels
    /// # Ok::<(), score_sde::Error>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let mut levels = Vec::new();
        let mut labels = Vec::new();
        for (no, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| Error::Io(format!("line {}: {why}", no + 1));
            let (label, pixels) = line
                .split_once(' ')
                .ok_or_else(|| bad("expected `<label> <64 pixel symbols>`".into()))?;
            let label = match label.as_bytes() {
                [c @ b'0'..=b'9'] => c - b'0',
                _ => return Err(bad(format!("label {label:?} is not a digit 0-9"))),
            };
            if pixels.len() != DIM {
                return Err(bad(format!(
                    "{} pixel symbols, expected {DIM}",
                    pixels.len()
                )));
            }
            for c in pixels.bytes() {
                let level = ALPHABET.iter().position(|&a| a == c).ok_or_else(|| {
                    bad(format!("pixel symbol {:?} is not one of 0-9a-g", c as char))
                })?;
                levels.push(level as u8);
            }
            labels.push(label);
        }
        if labels.is_empty() {
            return Err(Error::Empty {
                what: "digits file (no image lines)",
            });
        }
        let levels = Array2::from_shape_vec((labels.len(), DIM), levels)
            .map_err(|e| Error::Io(format!("digits: {e}")))?;
        Ok(Self { levels, labels })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixel levels, `N × 64`, values 0–16.
    pub fn levels(&self) -> ArrayView2<'_, u8> {
        self.levels.view()
    }

    /// The labels 0–9.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images at `idx` (in that order; repeats allowed).
    pub fn select(&self, idx: &[usize]) -> Result<Self> {
        if let Some(&i) = idx.iter().find(|&&i| i >= self.len()) {
            return Err(Error::param(
                "image index",
                i as f64,
                "must be below the number of images",
            ));
        }
        Ok(Self {
            levels: self.levels.select(Axis(0), idx),
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
        })
    }

    /// Split into `(train, test)` with `n_test` test images, by a permutation drawn from
    /// `rand_pcg::Pcg64::seed_from_u64(seed)` (Fisher–Yates): the same seed gives the same
    /// split on every machine. Both parts keep the file's order.
    pub fn split(&self, n_test: usize, seed: u64) -> Result<(Self, Self)> {
        if n_test == 0 || n_test >= self.len() {
            return Err(Error::param(
                "n_test",
                n_test as f64,
                "must be at least 1 and below the number of images",
            ));
        }
        let mut perm: Vec<usize> = (0..self.len()).collect();
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        for i in (1..perm.len()).rev() {
            let j = rng.random_range(0..=i);
            perm.swap(i, j);
        }
        let (test, train) = perm.split_at_mut(n_test);
        test.sort_unstable();
        train.sort_unstable();
        Ok((self.select(train)?, self.select(test)?))
    }

    /// The dequantisation of these data: 17 levels onto `[−1, 1)`, i.e. `x = 2u − 1`
    /// (the offset of [`bits_per_dim`](crate::likelihood::bits_per_dim) is
    /// `log₂ 17 − log₂ 2 ≈ 3.087` bits).
    pub fn scaling() -> DataScaling {
        DataScaling {
            bins: LEVELS,
            scale: 2.0,
        }
    }

    /// Uniformly dequantised images in `[−1, 1)`: `x = 2 (y + U[0, 1)) / 17 − 1`.
    pub fn dequantize<F: Real>(&self, rng: &mut dyn RngCore) -> Result<Array2<F>> {
        dequantize_uniform(self.levels.view(), Self::scaling(), -1.0, rng)
    }

    /// The centres of the dequantisation bins, `x = 2 (y + ½) / 17 − 1` (for pictures and
    /// nearest-neighbour distances).
    pub fn centres<F: Real>(&self) -> Array2<F> {
        self.levels.mapv(level_centre)
    }
}

/// The centre `2 (y + ½) / 17 − 1` of level `y`'s bin in `[−1, 1)`.
pub fn level_centre<F: Real>(y: u8) -> F {
    F::lit(2.0 * (f64::from(y) + 0.5) / f64::from(LEVELS) - 1.0)
}

/// The level whose bin holds `x`: `⌊(x + 1) · 17 / 2⌋`, clamped to 0–16 (values outside
/// `[−1, 1)` go to the nearest end; NaN to 0).
pub fn quantize<F: Real>(x: F) -> u8 {
    let v = ((x.as_f64() + 1.0) * f64::from(LEVELS) / 2.0).floor();
    if v.is_nan() {
        0
    } else {
        v.clamp(0.0, f64::from(LEVELS - 1)) as u8
    }
}
