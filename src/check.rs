//! Input validation shared by every module (crate-private).

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{Array2, ArrayBase, ArrayView2, Data, Dimension};

/// `true` if every entry is finite, in one pass that vectorises on contiguous arrays:
/// `v · 0` is `0` for finite `v` and NaN for ±∞ or NaN, so the sum of those terms is finite
/// exactly when every entry is. Eight independent accumulators let the pass vectorise
/// instead of waiting on one chain of dependent additions.
pub(crate) fn all_finite<F: Real, S: Data<Elem = F>, D: Dimension>(a: &ArrayBase<S, D>) -> bool {
    let total = match a.as_slice_memory_order() {
        Some(s) => {
            let mut acc = [F::zero(); 8];
            let chunks = s.chunks_exact(8);
            let tail = chunks
                .remainder()
                .iter()
                .fold(F::zero(), |t, &v| t + v * F::zero());
            for c in chunks {
                for (t, &v) in acc.iter_mut().zip(c) {
                    *t += v * F::zero();
                }
            }
            acc.iter().fold(tail, |t, &v| t + v)
        }
        None => a.iter().fold(F::zero(), |t, &v| t + v * F::zero()),
    };
    total.is_finite()
}

/// Error unless every entry is finite; names the first offending flat index.
pub(crate) fn finite<F: Real, S: Data<Elem = F>, D: Dimension>(
    what: &'static str,
    a: &ArrayBase<S, D>,
) -> Result<()> {
    if all_finite(a) {
        return Ok(());
    }
    for (i, &v) in a.iter().enumerate() {
        if !v.is_finite() {
            return Err(Error::NonFinite {
                what,
                index: i,
                value: v.as_f64(),
            });
        }
    }
    Ok(())
}

/// Error unless `a` has exactly `shape`.
pub(crate) fn same_shape(what: &'static str, expected: &[usize], got: &[usize]) -> Result<()> {
    if expected != got {
        return Err(Error::shape(what, expected, got));
    }
    Ok(())
}

/// Error unless the batch has at least one row and one column.
pub(crate) fn nonempty_batch<F>(what: &'static str, x: &ArrayView2<F>) -> Result<()> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(Error::Empty { what });
    }
    Ok(())
}

/// Error unless `v` is finite.
pub(crate) fn finite_scalar<F: Real>(name: &'static str, v: F) -> Result<()> {
    if !v.is_finite() {
        return Err(Error::param(name, v.as_f64(), "must be finite"));
    }
    Ok(())
}

/// `v` if it is finite and `> 0`, else [`Error::InvalidParameter`] naming it.
pub(crate) fn positive<F: Real>(name: &'static str, v: F) -> Result<F> {
    if v.is_finite() && v > F::zero() {
        Ok(v)
    } else {
        Err(Error::param(name, v.as_f64(), "must be finite and > 0"))
    }
}

/// `v` if it is finite and `≥ 0`, else [`Error::InvalidParameter`] naming it.
pub(crate) fn non_negative<F: Real>(name: &'static str, v: F) -> Result<F> {
    if v.is_finite() && v >= F::zero() {
        Ok(v)
    } else {
        Err(Error::param(name, v.as_f64(), "must be finite and >= 0"))
    }
}

/// `v` if it lies in `[0, 1]`, else [`Error::InvalidParameter`] naming it.
pub(crate) fn unit_interval<F: Real>(name: &'static str, v: F) -> Result<F> {
    if v.is_finite() && v >= F::zero() && v <= F::one() {
        Ok(v)
    } else {
        Err(Error::param(name, v.as_f64(), "must be in [0, 1]"))
    }
}

/// A zeroed `n × d` batch, or a typed error when the size overflows `usize` or the memory
/// cannot be reserved — checked before anything is allocated, so a count from a user or a
/// file never aborts the process.
pub(crate) fn zeros_batch<F: Real>(what: &'static str, n: usize, d: usize) -> Result<Array2<F>> {
    if n == 0 || d == 0 {
        return Err(Error::Empty { what });
    }
    let too_large = || {
        Error::param(
            what,
            n as f64,
            "batch of n × d values is too large to allocate",
        )
    };
    let len = n.checked_mul(d).ok_or_else(too_large)?;
    let mut v: Vec<F> = Vec::new();
    v.try_reserve_exact(len).map_err(|_| too_large())?;
    v.resize(len, F::zero());
    Array2::from_shape_vec((n, d), v).map_err(|_| too_large())
}

#[cfg(test)]
mod finite_tests {
    use super::{all_finite, finite};
    use ndarray::{Array2, s};

    #[test]
    fn all_finite_finds_every_non_finite_entry_in_every_layout() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            // 7 × 3 = 21 entries: two full chunks of eight and a tail of five.
            for pos in 0..21 {
                let mut a = Array2::<f64>::from_shape_fn((7, 3), |(i, j)| 1e300 * (i + j) as f64);
                assert!(all_finite(&a));
                a[[pos / 3, pos % 3]] = bad;
                assert!(!all_finite(&a), "standard layout, entry {pos}");
                assert!(!all_finite(&a.t()), "transposed, entry {pos}");
                let sliced_has_bad = pos % 3 != 1;
                assert_eq!(!all_finite(&a.slice(s![.., ..;2])), sliced_has_bad);
                let err = finite("x", &a).unwrap_err();
                assert!(matches!(err, crate::Error::NonFinite { index, .. } if index == pos));
            }
        }
    }
}
