//! NumPy `.npy` files (feature `npy`): save samples, load data, no glue code in Python.
//!
//! Arrays are 2-D, rows are samples, as everywhere in the crate. [`save_npy`] writes the
//! element type it is given (`<f4` for `f32`, `<f8` for `f64`); [`load_npy`] reads either
//! float type into either (NumPy defaults to `float64`, PyTorch to `float32`) and a 1-D
//! array as one column.
//!
//! ```
//! use score_sde::backend::npy::{load_npy, save_npy};
//! use ndarray::array;
//! let path = std::env::temp_dir().join("score_sde_npy_doctest.npy");
//! let x = array![[1.0_f32, 2.0], [3.0, 4.5]];
//! save_npy(&path, x.view())?;
//! let y = load_npy::<f64>(&path)?; // f32 file read as f64: exact
//! assert_eq!(y, array![[1.0, 2.0], [3.0, 4.5]]);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), score_sde::Error>(())
//! ```
//!
//! In Python: `np.save("data.npy", x)` and `np.load("samples.npy")`.

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array1, Array2, ArrayView2};
use ndarray_npy::{ReadNpyError, WritableElement, read_npy, write_npy};
use std::path::Path;

/// Write `x` to `path` as a `.npy` file of `x`'s element type (C order).
pub fn save_npy<F: Real + WritableElement>(path: impl AsRef<Path>, x: ArrayView2<F>) -> Result<()> {
    let path = path.as_ref();
    write_npy(path, &x).map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))
}

fn io(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("reading {}: {e}", path.display()))
}

/// Read a 2-D (or 1-D, as one column) `float32` or `float64` `.npy` file as `Array2<F>`.
///
/// Errors: [`Error::Io`] if the file is missing or not an `.npy` of floats;
/// [`Error::ShapeMismatch`] if it has another number of dimensions.
pub fn load_npy<F: Real>(path: impl AsRef<Path>) -> Result<Array2<F>> {
    let path = path.as_ref();
    match read_float::<F, 2>(path) {
        Ok(a) => Ok(a),
        Err(ReadNpyError::WrongNdim(_, 1)) => {
            let v: Array1<F> = read_float::<F, 1>(path).map_err(|e| io(path, e))?;
            let n = v.len();
            v.into_shape_with_order((n, 1)).map_err(|e| io(path, e))
        }
        Err(ReadNpyError::WrongNdim(_, got)) => {
            Err(Error::shape("npy file (number of dimensions)", 2, got))
        }
        Err(e) => Err(io(path, e)),
    }
}

/// Read an array of `f64` or, failing on the type descriptor, of `f32`, as `F`.
fn read_float<F: Real, const N: usize>(
    path: &Path,
) -> std::result::Result<ndarray::Array<F, ndarray::Dim<[usize; N]>>, ReadNpyError>
where
    ndarray::Dim<[usize; N]>: ndarray::Dimension,
{
    let r: std::result::Result<ndarray::Array<f64, ndarray::Dim<[usize; N]>>, _> = read_npy(path);
    match r {
        Ok(a) => Ok(a.mapv(F::lit)),
        Err(ReadNpyError::WrongDescriptor(_)) => {
            let a: ndarray::Array<f32, ndarray::Dim<[usize; N]>> = read_npy(path)?;
            Ok(a.mapv(|v| F::lit(f64::from(v))))
        }
        Err(e) => Err(e),
    }
}
