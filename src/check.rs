//! Input validation shared by every module (crate-private).

use crate::error::{Error, Result};
use crate::float::Real;
use ndarray::{ArrayBase, ArrayView2, Data, Dimension};

/// Error unless every entry is finite; names the first offending flat index.
pub(crate) fn finite<F: Real, S: Data<Elem = F>, D: Dimension>(
    what: &'static str,
    a: &ArrayBase<S, D>,
) -> Result<()> {
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

/// `v` if it lies in `[0, 1]`, else [`Error::InvalidParameter`] naming it.
pub(crate) fn unit_interval<F: Real>(name: &'static str, v: F) -> Result<F> {
    if v.is_finite() && v >= F::zero() && v <= F::one() {
        Ok(v)
    } else {
        Err(Error::param(name, v.as_f64(), "must be in [0, 1]"))
    }
}
