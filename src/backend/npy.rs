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

use crate::check;
use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array2, ArrayView2};
use ndarray_npy::{WritableElement, write_npy};
use std::path::Path;

/// Write `x` to `path` as a `.npy` file of `x`'s element type (C order).
pub fn save_npy<F: Real + WritableElement>(path: impl AsRef<Path>, x: ArrayView2<F>) -> Result<()> {
    let path = path.as_ref();
    write_npy(path, &x).map_err(|e| Error::Io(format!("writing {}: {e}", path.display())))
}

/// Read a 2-D (or 1-D, as one column) `float32` or `float64` `.npy` file as `Array2<F>`.
///
/// The file is read whole (its length checked against the memory available first) and
/// parsed by [`from_npy_bytes`]: the header is checked against the payload before
/// anything is allocated from it, so a file that claims a shape larger than its data is an
/// error, not an abort.
///
/// Errors: [`Error::Io`] if the file is missing or not an `.npy` of floats, or its header
/// and payload disagree; [`Error::ShapeMismatch`] if it has another number of dimensions;
/// [`Error::NonFinite`] for a NaN or infinite value; [`Error::Unrepresentable`] for a
/// float64 value outside the range of `F` (an f64 `1e300` read as f32);
/// [`Error::TooLarge`] if the file cannot be held in memory.
pub fn load_npy<F: Real>(path: impl AsRef<Path>) -> Result<Array2<F>> {
    let path = path.as_ref();
    let io = |e: &dyn std::fmt::Display| Error::Io(format!("reading {}: {e}", path.display()));
    let len = std::fs::metadata(path).map_err(|e| io(&e))?.len();
    let len = usize::try_from(len).map_err(|_| Error::TooLarge {
        what: "npy file",
        reason: format!("{len} bytes do not fit in memory"),
    })?;
    let mut bytes = check::vec_with_capacity::<u8>("npy file", len)?;
    let mut file = std::fs::File::open(path).map_err(|e| io(&e))?;
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| io(&e))?;
    from_npy_bytes(&bytes).map_err(|e| match e {
        Error::Io(m) => io(&m),
        other => other,
    })
}

/// The `.npy` header fields this loader reads.
struct Header {
    /// `'<f8'`-style type: element size (4 or 8) and byte order.
    size: usize,
    big_endian: bool,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Parse `.npy` bytes (format versions 1.0, 2.0 and 3.0: NumPy's `numpy.lib.format`) into a
/// 2-D array, as [`load_npy`] does for a file.
///
/// Nothing is allocated from the header's numbers until the shape's element count times
/// the element size has been computed without overflow and found equal to the payload's
/// length: a header claiming shape `(10¹², 2)` over 16 bytes of data is [`Error::Io`].
/// Float64 values read as f32 must lie within f32's range ([`Error::Unrepresentable`]
/// otherwise, rather than an infinity), and every value must be finite.
///
/// ```
/// use score_sde::backend::npy::from_npy_bytes;
/// // A version-1.0 file: magic, version, header length, header dictionary, data.
/// let npy = |shape: &str, data: &[f64]| {
///     let header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}\n");
///     let mut b = b"\x93NUMPY\x01\x00".to_vec();
///     b.extend_from_slice(&(header.len() as u16).to_le_bytes());
///     b.extend_from_slice(header.as_bytes());
///     data.iter().for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
///     b
/// };
/// let x = from_npy_bytes::<f32>(&npy("(1, 2)", &[1.5, -2.0]))?;
/// assert_eq!(x, ndarray::array![[1.5_f32, -2.0]]);
/// // A header claiming 10¹² rows over the same 16 bytes: an error, nothing allocated.
/// assert!(from_npy_bytes::<f64>(&npy("(1000000000000, 2)", &[1.5, -2.0])).is_err());
/// // float64 1e300 does not fit in f32: an error, not an infinity.
/// assert!(from_npy_bytes::<f32>(&npy("(1, 1)", &[1e300])).is_err());
/// # Ok::<(), score_sde::Error>(())
/// ```
pub fn from_npy_bytes<F: Real>(bytes: &[u8]) -> Result<Array2<F>> {
    let bad = |m: String| Error::Io(format!("npy: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy file (no \\x93NUMPY magic)".into()));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10usize),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported format version {v}.{}", bytes[7]))),
    };
    let end = start
        .checked_add(header_len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            bad(format!(
                "the header claims {header_len} bytes but the file has {}",
                bytes.len()
            ))
        })?;
    let text = std::str::from_utf8(&bytes[start..end])
        .map_err(|_| bad("the header is not text".into()))?;
    let h = parse_header(text).map_err(bad)?;
    let payload = &bytes[end..];
    match h.shape.len() {
        1 | 2 => {}
        n => return Err(Error::shape("npy file (number of dimensions)", 2, n)),
    }
    let (rows, cols) = if h.shape.len() == 1 {
        (h.shape[0], 1)
    } else {
        (h.shape[0], h.shape[1])
    };
    let count = rows.checked_mul(cols);
    let need = count.and_then(|c| c.checked_mul(h.size));
    if need != Some(payload.len()) {
        return Err(bad(format!(
            "the header's shape {:?} of {}-byte values needs {} bytes of data but the file has {}",
            h.shape,
            h.size,
            need.map_or("more than usize::MAX".to_string(), |n| n.to_string()),
            payload.len()
        )));
    }
    let count = count.unwrap_or(0);
    let mut values = check::vec_with_capacity::<F>("npy array", count)?;
    let narrow = F::EPS.as_f64() > 1e-10;
    for (i, chunk) in payload.chunks_exact(h.size).enumerate() {
        let v = match (h.size, h.big_endian) {
            (8, false) => f64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])),
            (8, true) => f64::from_be_bytes(chunk.try_into().unwrap_or([0; 8])),
            (_, false) => f64::from(f32::from_le_bytes(chunk.try_into().unwrap_or([0; 4]))),
            (_, true) => f64::from(f32::from_be_bytes(chunk.try_into().unwrap_or([0; 4]))),
        };
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what: "npy values",
                index: i,
                value: v,
            });
        }
        let x = F::lit(v);
        if !x.is_finite() {
            return Err(Error::Unrepresentable {
                what: "npy value",
                index: i,
                reason: format!(
                    "the float64 value {v:e} is outside the range of {} (±{:e})",
                    if narrow { "f32" } else { "f64" },
                    F::max_value().as_f64()
                ),
            });
        }
        values.push(x);
    }
    let a = if h.fortran_order {
        // Column-major data: the array (rows, cols) in Fortran order.
        Array2::from_shape_vec(ndarray::ShapeBuilder::f((rows, cols)), values)
            .map(|a| a.as_standard_layout().into_owned())
    } else {
        Array2::from_shape_vec((rows, cols), values)
    };
    a.map_err(|e| bad(e.to_string()))
}

/// At most `n` characters of `s`, `…` marking a cut: a message quotes a file's header or
/// a field of it, which can be 4 GiB long (a version-2 header) or a 5000-digit "count".
fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Parse the header dictionary `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`.
fn parse_header(text: &str) -> std::result::Result<Header, String> {
    let field = |key: &str| -> std::result::Result<&str, String> {
        let k = text
            .find(&format!("'{key}'"))
            .or_else(|| text.find(&format!("\"{key}\"")))
            .ok_or_else(|| format!("the header has no '{key}': {:?}", clip(text, 120)))?;
        let rest = &text[k + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("no value for '{key}'"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = field("descr")?;
    let quote = descr.chars().next().filter(|c| *c == '\'' || *c == '"');
    let descr = quote
        .and_then(|q| descr[1..].split(q).next())
        .ok_or_else(|| "'descr' is not a string".to_string())?;
    let (size, big_endian) = match descr {
        "<f8" | "=f8" => (8, false),
        ">f8" => (8, true),
        "<f4" | "=f4" => (4, false),
        ">f4" => (4, true),
        other => {
            return Err(format!(
                "element type {:?} is not float32 or float64",
                clip(other, 24)
            ));
        }
    };
    let fo = field("fortran_order")?;
    let fortran_order = if fo.starts_with("True") {
        true
    } else if fo.starts_with("False") {
        false
    } else {
        return Err("'fortran_order' is not True or False".into());
    };
    let sh = field("shape")?;
    let close = sh.find(')').filter(|_| sh.starts_with('('));
    let inner = close
        .map(|c| &sh[1..c])
        .ok_or_else(|| "'shape' is not a tuple".to_string())?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("shape entry {:?} is not a count", clip(p, 24)))
        })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Header {
        size,
        big_endian,
        fortran_order,
        shape,
    })
}
