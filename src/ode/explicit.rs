//! The stages of an explicit Runge–Kutta step on a batch, for any [`Tableau`].

use super::{OdeRhs, Tableau};
use crate::error::Result;
use crate::num::Real;
use ndarray::Array2;

/// `out = y + h Σ c_k k_k` over flat, equally long slices (terms in the given order).
#[inline]
pub(crate) fn lincomb<F: Real>(out: &mut [F], y: &[F], h: F, terms: &[(F, &[F])]) {
    for (i, o) in out.iter_mut().enumerate() {
        let mut acc = F::zero();
        for (c, k) in terms {
            acc += *c * k[i];
        }
        *o = y[i] + h * acc;
    }
}

/// `x += h Σ c_k k_k` (the same arithmetic as [`lincomb`] with `y = x`).
#[inline]
pub(crate) fn add_lincomb<F: Real>(x: &mut [F], h: F, terms: &[(F, &[F])]) {
    for (i, o) in x.iter_mut().enumerate() {
        let mut acc = F::zero();
        for (c, k) in terms {
            acc += *c * k[i];
        }
        *o += h * acc;
    }
}

/// A standard-layout array as a slice (every buffer here is made in standard layout, and
/// states are made so before integrating).
pub(crate) fn flat<F>(a: &Array2<F>) -> &[F] {
    a.as_slice().unwrap_or(&[])
}
pub(crate) fn flat_mut<F>(a: &mut Array2<F>) -> &mut [F] {
    a.as_slice_mut().unwrap_or(&mut [])
}

/// One step's times: from `t` by `h` to `t_new` (`= t + h`, or exactly the end point on a
/// final step, so that stages with `c = 1` are evaluated there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval<F> {
    pub t: F,
    pub h: F,
    pub t_new: F,
}

impl<F: Real> Interval<F> {
    fn at(&self, c: f64) -> F {
        if c == 1.0 {
            self.t_new
        } else if c == 0.0 {
            self.t
        } else {
            self.t + F::lit(c) * self.h
        }
    }
}

/// Stage buffers of one tableau for batches of one shape, made once per integration.
#[derive(Debug)]
pub(crate) struct RkWork<F> {
    /// `k_1 … k_s` (and `k_{s+1}` for an FSAL pair).
    pub k: Vec<Array2<F>>,
    /// The stage input `y + h Σ a_ij k_j`.
    pub tmp: Array2<F>,
}

impl<F: Real> RkWork<F> {
    pub fn new(tab: &Tableau, shape: (usize, usize)) -> Self {
        let n = tab.stages() + usize::from(tab.fsal);
        Self {
            k: (0..n).map(|_| Array2::zeros(shape)).collect(),
            tmp: Array2::zeros(shape),
        }
    }

    /// Stages `2 … s` from `(t, x)` (with `k_1 = F(t, x)` already in `k[0]`), each at
    /// `t + c_i h`. Returns the right-hand-side calls made (`s − 1`).
    pub fn stages(
        &mut self,
        tab: &Tableau,
        rhs: &mut dyn OdeRhs<F>,
        iv: Interval<F>,
        x: &Array2<F>,
    ) -> Result<usize> {
        let y = flat(x);
        for i in 1..tab.stages() {
            let (done, rest) = self.k.split_at_mut(i);
            let terms = weighted(tab.a[i], done);
            lincomb(flat_mut(&mut self.tmp), y, iv.h, &terms);
            rhs.eval(iv.at(tab.c[i]), self.tmp.view(), rest[0].view_mut())?;
        }
        Ok(tab.stages() - 1)
    }

    /// `out = x + h Σ b_i k_i`.
    pub fn solution_into(&self, tab: &Tableau, h: F, x: &Array2<F>, out: &mut Array2<F>) {
        let terms = weighted(tab.b, &self.k);
        lincomb(flat_mut(out), flat(x), h, &terms);
    }

    /// `x += h Σ b_i k_i`.
    pub fn solution_inplace(&self, tab: &Tableau, h: F, x: &mut Array2<F>) {
        let terms = weighted(tab.b, &self.k);
        add_lincomb(flat_mut(x), h, &terms);
    }

    /// The local error estimate `h Σ e_i k_i` (over the FSAL stage too) into `out`.
    pub fn error_into(&self, e: &[f64], h: F, out: &mut Array2<F>) {
        let terms = weighted(e, &self.k);
        let out = flat_mut(out);
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = F::zero();
            for (c, k) in terms.iter() {
                acc += *c * k[i];
            }
            *o = h * acc;
        }
    }
}

/// Most stages (FSAL stage included) a tableau may have: the terms of a combination live
/// in a fixed-size array on the stack, so a step allocates nothing.
pub(crate) const MAX_STAGES: usize = 16;

/// The non-zero coefficients of `w` paired with the matching stages, on the stack.
struct Terms<'a, F> {
    items: [(F, &'a [F]); MAX_STAGES],
    len: usize,
}

impl<'a, F> std::ops::Deref for Terms<'a, F> {
    type Target = [(F, &'a [F])];
    fn deref(&self) -> &Self::Target {
        &self.items[..self.len]
    }
}

fn weighted<'a, F: Real>(w: &[f64], k: &'a [Array2<F>]) -> Terms<'a, F> {
    let mut t = Terms {
        items: [(F::zero(), &[][..]); MAX_STAGES],
        len: 0,
    };
    for (&c, k) in w.iter().zip(k) {
        if c != 0.0 && t.len < MAX_STAGES {
            t.items[t.len] = (F::lit(c), flat(k));
            t.len += 1;
        }
    }
    t
}
