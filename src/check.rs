//! Input validation shared by every module (crate-private).

use crate::error::{Error, Result};
use crate::num::Real;
use ndarray::{ArrayBase, ArrayView2, Data, Dimension};

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

// ------------------------------------------------------------------ counts and allocations

/// Allocations of more bytes than this are also checked against the memory the system
/// reports as available: a request the allocator grants lazily (Linux overcommits) is
/// killed by the out-of-memory killer when it is filled, which is an abort, not an error.
const LARGE_ALLOCATION: u128 = 1 << 30;

/// `a + b`, or [`Error::TooLarge`] naming `what` if it overflows `usize`.
pub(crate) fn add_count(what: &'static str, a: usize, b: usize) -> Result<usize> {
    a.checked_add(b).ok_or_else(|| Error::TooLarge {
        what,
        reason: format!("{a} + {b} overflows usize"),
    })
}

/// The product of `dims` as a count of elements, or [`Error::TooLarge`].
pub(crate) fn elements(what: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter().try_fold(1usize, |n, &d| {
        n.checked_mul(d).ok_or_else(|| Error::TooLarge {
            what,
            reason: format!("shape {dims:?} has more elements than usize can count"),
        })
    })
}

/// Bytes the system reports as available (Linux: `MemAvailable` + `SwapFree` from
/// `/proc/meminfo`, capped by a cgroup v2 `memory.max` minus `memory.current`), or `None`
/// where that is not known.
fn available_memory() -> Option<u128> {
    let kib = |text: &str, key: &str| -> Option<u128> {
        let line = text.lines().find(|l| l.starts_with(key))?;
        let n: u128 = line[key.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(n * 1024)
    };
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let mut avail = kib(&info, "MemAvailable:")? + kib(&info, "SwapFree:").unwrap_or(0);
    let read = |p: &str| std::fs::read_to_string(p).ok();
    if let (Some(max), Some(cur)) = (
        read("/sys/fs/cgroup/memory.max"),
        read("/sys/fs/cgroup/memory.current"),
    ) {
        if let (Ok(max), Ok(cur)) = (max.trim().parse::<u128>(), cur.trim().parse::<u128>()) {
            avail = avail.min(max.saturating_sub(cur));
        }
    }
    Some(avail)
}

/// Error unless `len` elements of `T` can be allocated: the byte count fits `isize`
/// (Rust's limit for one allocation) and, above 1 GiB, is at most half the memory the
/// system reports as available (a batch comes with working buffers of its size: a sampler
/// keeps a score and a noise buffer beside the state, so one array that takes more than
/// half the memory leaves the run no room).
pub(crate) fn allocation<T>(what: &'static str, len: usize) -> Result<()> {
    let bytes = len as u128 * std::mem::size_of::<T>() as u128;
    if bytes > isize::MAX as u128 {
        return Err(Error::TooLarge {
            what,
            reason: format!("{len} elements need {bytes} bytes, more than one allocation can hold"),
        });
    }
    if bytes > LARGE_ALLOCATION {
        if let Some(avail) = available_memory() {
            if bytes > avail / 2 {
                return Err(Error::TooLarge {
                    what,
                    reason: format!(
                        "{len} elements need {:.3e} bytes, more than half the {:.3e} bytes \
                         of memory available",
                        bytes as f64, avail as f64
                    ),
                });
            }
        }
    }
    Ok(())
}

/// An empty `Vec` with room for `len` elements, or [`Error::TooLarge`] if the size is
/// impossible ([`allocation`]) or the allocator refuses it (`try_reserve_exact`).
pub(crate) fn vec_with_capacity<T>(what: &'static str, len: usize) -> Result<Vec<T>> {
    allocation::<T>(what, len)?;
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|e| Error::TooLarge {
        what,
        reason: format!("allocating {len} elements failed: {e}"),
    })?;
    Ok(v)
}

/// A zeroed `n × d` batch ([`zeros`]), or [`Error::Empty`] if `n` or `d` is 0: the one
/// allocator of sample batches (priors, initial states), so a count from a user or a file
/// never aborts the process.
pub(crate) fn zeros_batch<F: Clone + num_traits::Zero>(
    what: &'static str,
    n: usize,
    d: usize,
) -> Result<ndarray::Array2<F>> {
    if n == 0 || d == 0 {
        return Err(Error::Empty { what });
    }
    zeros(what, ndarray::Ix2(n, d))
}

/// A zero-filled array of `shape`, allocated only after [`vec_with_capacity`]'s checks.
pub(crate) fn zeros<F: Clone + num_traits::Zero, D: Dimension>(
    what: &'static str,
    shape: D,
) -> Result<ndarray::Array<F, D>> {
    let len = elements(what, shape.slice())?;
    let mut v = vec_with_capacity::<F>(what, len)?;
    v.resize(len, F::zero());
    ndarray::Array::from_shape_vec(shape, v).map_err(|e| Error::TooLarge {
        what,
        reason: e.to_string(),
    })
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
