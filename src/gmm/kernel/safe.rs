//! The scale-aware fallback: rows whose fast-path result is not finite (or whose Laplacian
//! lost its precision to cancellation) are evaluated again here, one at a time, in `f64`
//! with every quantity that can leave the float range written as a scaled value.
//!
//! The fast kernel forms the exponent `ℓ_k = log w_k − ½ q_k − ½ log det(2π Σ_k)` with
//! `q_k = (x − α μ_k)ᵀ P_k (x − α μ_k)` directly. For a finite but huge `x` (≈ 1e200 in f64,
//! ≈ 1e20 in f32) or huge means, `q_k` overflows for every component, every `ℓ_k` is `−∞`
//! and the max-shifted log-sum-exp computes `(−∞) − (−∞)` = NaN; the Laplacian's
//! `Σ r_k |G_k|² − |s|²` overflows to `∞ − ∞`, and a responsibility of 0 times an infinite
//! component score is `0 · ∞`. The exact answers are finite (the score ≈ `−P (x − α μ)`, the
//! Laplacian of a single Gaussian is `−tr P` wherever `x` is), so they are computed here
//! without forming the huge intermediates:
//!
//! ```text
//! x̂ = x 2^−e,  μ̂_k = α μ_k 2^−e          (e ≥ 0: the smallest power of two with |x̂|, |μ̂| ≤ 1)
//! q_k = 4^e q̂_k,   q̂_k = r̂_kᵀ P_k r̂_k,   r̂_k = x̂ − μ̂_k           (exact scaling by 2^e)
//! ℓ_k − ℓ_j = (n_k − n_j) − ½ 4^e (q̂_k − q̂_j)      (n_k = log w_k − ½ log det(2π Σ_k))
//! r = softmax_k (ℓ_k − ℓ_j0)                         (j0 = argmin q̂; the shift is the exact max)
//! ∇ log p = −2^e Σ_k r_k Ĝ_k,  Ĝ_k = P_k r̂_k
//! Δ log p = 4^e Σ_k r_k |Ĝ_k − Ḡ|² − Σ_k r_k tr P_k    (Ḡ = Σ_k r_k Ĝ_k; the variance form of
//!                                                    Σ r |G|² − |Σ r G|², no cancellation)
//! log p = ℓ_j0 + log Σ_k exp(ℓ_k − ℓ_j0)
//! ```
//!
//! Terms with `r_k = 0` are skipped, so no `0 · ∞` arises. A value that is still outside the
//! float type's range after all this (a log-density below `−f64::MAX`, a score above
//! `f64::MAX`) has no finite representation: the row is reported as a [`Failure`] and the
//! caller turns it into [`Error::Unrepresentable`](crate::Error::Unrepresentable).
//!
//! The scaling changes nothing in exact arithmetic (`e = 0` for ordinary inputs), so this
//! path agrees with the fast one to rounding wherever both are finite (`kernel/tests.rs`).

use super::{Outputs, Parts};
use crate::num::Real;
use ndarray::{ArrayView2, Axis};

/// A row whose result cannot be represented in the float type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    /// Row within the evaluated batch.
    pub row: usize,
    /// The quantity ("mixture log-density", "mixture score", ...).
    pub what: &'static str,
    /// Why, with the sizes involved.
    pub reason: String,
}

/// `v · 2^n` without forming `2^n` when it would over- or underflow (steps of `2^±1000`,
/// each exact while the result stays normal).
pub(crate) fn ldexp(mut v: f64, mut n: i64) -> f64 {
    let big = 2f64.powi(1000);
    let small = 2f64.powi(-1000);
    while n > 1000 && v.is_finite() && v != 0.0 {
        v *= big;
        n -= 1000;
    }
    while n < -1000 && v != 0.0 && v.is_finite() {
        v *= small;
        n += 1000;
    }
    if !(-1000..=1000).contains(&n) {
        return v; // already ±∞ or 0
    }
    v * 2f64.powi(n as i32)
}

/// The smallest `e ≥ 0` with `m · 2^−e ≤ 1` (`m` finite, ≥ 0): the scale of
/// [`softmax_into`]'s inputs.
pub(crate) fn scale_exponent(m: f64) -> i64 {
    if m <= 1.0 || !m.is_finite() {
        // (Callers pass finite magnitudes; a non-finite one gets no scaling rather than a
        // meaningless exponent.)
        return 0;
    }
    let mut e = m.log2().ceil() as i64;
    while ldexp(m, -e) > 1.0 {
        e += 1;
    }
    while e > 0 && ldexp(m, -(e - 1)) <= 1.0 {
        e -= 1;
    }
    e
}

/// Per-call constants of the fallback, in f64.
struct Constants {
    k: usize,
    d: usize,
    /// `α μ_k`, `K×D`.
    am: Vec<f64>,
    /// `1 / (α² λ_kj + σ²)`, `K×D`.
    inv_c: Vec<f64>,
    /// `log w_k − ½ log det(2π Σ_k)`.
    log_norm: Vec<f64>,
    /// `tr P_k`.
    trace: Vec<f64>,
    /// `max |α μ_kj|`.
    max_am: f64,
}

impl Constants {
    fn new<F: Real>(parts: &Parts<'_, F>, alpha: F, sigma: F) -> Result<Self, String> {
        let (k_n, d) = parts.means.dim();
        let (a, s2) = (alpha.as_f64(), sigma.as_f64() * sigma.as_f64());
        let log2pi = (2.0 * std::f64::consts::PI).ln();
        let mut c = Self {
            k: k_n,
            d,
            am: vec![0.0; k_n * d],
            inv_c: vec![0.0; k_n * d],
            log_norm: vec![0.0; k_n],
            trace: vec![0.0; k_n],
            max_am: 0.0,
        };
        for k in 0..k_n {
            let mut log_det = 0.0;
            let mut tr = 0.0;
            for j in 0..d {
                let lam = parts.eigvals[[k, j]].as_f64();
                // α² λ + σ², with α² λ formed as (α √λ)² so that neither factor overflows alone.
                let cj = (a * lam.sqrt()).powi(2) + s2;
                if !(cj.is_finite() && cj >= f64::MIN_POSITIVE) {
                    return Err(format!(
                        "the diffused variance α²λ + σ² = {cj:e} of component {k} (α = {a:e}, \
                         λ = {lam:e}, σ² = {s2:e}) is outside the normal range of f64"
                    ));
                }
                c.inv_c[k * d + j] = 1.0 / cj;
                log_det += cj.ln();
                tr += 1.0 / cj;
                let m = a * parts.means[[k, j]].as_f64();
                if !m.is_finite() {
                    return Err(format!(
                        "the diffused mean α μ of component {k} overflows (α = {a:e}, μ = {:e})",
                        parts.means[[k, j]].as_f64()
                    ));
                }
                c.am[k * d + j] = m;
                c.max_am = c.max_am.max(m.abs());
            }
            c.log_norm[k] = parts.log_weights[k].as_f64() - 0.5 * log_det - 0.5 * d as f64 * log2pi;
            c.trace[k] = tr;
        }
        Ok(c)
    }
}

/// One row's results, in f64.
struct RowResult {
    log_prob: f64,
    /// `−2^e Ḡ` (the score); may hold ±∞ if it cannot be represented.
    score: Vec<f64>,
    laplacian: f64,
    resp: Vec<f64>,
}

/// Scratch for [`row`]: `Ĝ_k` for every component and the eigenbasis vectors.
struct Scratch {
    g: Vec<f64>,
    y: Vec<f64>,
    q: Vec<f64>,
}

/// Evaluate one row `x` by the scaled formulas of the module docs.
///
/// Errors (with the reason) if even the scaled quadratic form of the nearest component
/// overflows, which needs a precision `(α² λ + σ²)⁻¹` near the top of the f64 range.
fn row<F: Real>(
    parts: &Parts<'_, F>,
    c: &Constants,
    x: ndarray::ArrayView1<F>,
    sc: &mut Scratch,
    out: &mut RowResult,
) -> Result<(), String> {
    let (k_n, d) = (c.k, c.d);
    let max_x = x.iter().fold(0.0_f64, |m, v| m.max(v.as_f64().abs()));
    let e = scale_exponent(max_x.max(c.max_am));
    for k in 0..k_n {
        let u = parts.eigvecs.index_axis(Axis(0), k);
        let rk = |j: usize| ldexp(x[j].as_f64(), -e) - ldexp(c.am[k * d + j], -e);
        // y = Uᵀ r̂ (r̂ itself for an axis-aligned component).
        for l in 0..d {
            sc.y[l] = if parts.axis_aligned[k] {
                rk(l)
            } else {
                (0..d).map(|j| u[[j, l]].as_f64() * rk(j)).sum()
            };
        }
        let mut q = 0.0;
        for l in 0..d {
            let w = sc.y[l] * c.inv_c[k * d + l];
            q += sc.y[l] * w;
            sc.y[l] = w;
        }
        sc.q[k] = q;
        // Ĝ_k = U (y / c).
        for j in 0..d {
            sc.g[k * d + j] = if parts.axis_aligned[k] {
                sc.y[j]
            } else {
                (0..d).map(|l| u[[j, l]].as_f64() * sc.y[l]).sum()
            };
        }
    }
    if !sc.q.iter().any(|q| q.is_finite()) {
        return Err(format!(
            "the scaled quadratic form (x − αμ)ᵀ P (x − αμ) of every component overflows \
             (largest precision {:e})",
            c.inv_c.iter().fold(0.0_f64, |m, &v| m.max(v))
        ));
    }
    out.log_prob = softmax_into(&c.log_norm, &sc.q, e, &mut out.resp);
    // Ḡ = Σ r_k Ĝ_k (into out.score, scaled back below), skipping r_k = 0.
    for j in 0..d {
        let mut gbar = 0.0;
        for k in 0..k_n {
            let r = out.resp[k];
            if r != 0.0 {
                gbar += r * sc.g[k * d + j];
            }
        }
        out.score[j] = gbar;
    }
    let mut var = 0.0;
    let mut tr = 0.0;
    for k in 0..k_n {
        let r = out.resp[k];
        if r == 0.0 {
            continue;
        }
        let mut dev = 0.0;
        for j in 0..d {
            let v = sc.g[k * d + j] - out.score[j];
            dev += v * v;
        }
        var += r * dev;
        tr += r * c.trace[k];
    }
    out.laplacian = ldexp(var, 2 * e) - tr;
    for v in out.score.iter_mut() {
        *v = -ldexp(*v, e);
    }
    Ok(())
}

/// Whether row `i` of any requested output is non-finite.
fn row_needs_repair<F: Real>(out: &Outputs<'_, F>, i: usize) -> bool {
    out.log_prob.as_ref().is_some_and(|l| !l[i].is_finite())
        || out.laplacian.as_ref().is_some_and(|l| !l[i].is_finite())
        || out
            .score
            .as_ref()
            .is_some_and(|s| s.row(i).iter().any(|v| !v.is_finite()))
        || out
            .responsibilities
            .as_ref()
            .is_some_and(|r| r.row(i).iter().any(|v| !v.is_finite()))
}

/// Recompute every row of `x` with a non-finite output by the scaled formulas; returns the
/// first row whose result cannot be represented in `F` (its outputs are left non-finite).
pub(crate) fn repair<F: Real>(
    parts: &Parts<'_, F>,
    alpha: F,
    sigma: F,
    x: ArrayView2<F>,
    out: &mut Outputs<'_, F>,
) -> Result<(), Failure> {
    let rows: Vec<usize> = (0..x.nrows())
        .filter(|&i| row_needs_repair(out, i))
        .collect();
    let Some(&first) = rows.first() else {
        return Ok(());
    };
    let c = Constants::new(parts, alpha, sigma).map_err(|reason| Failure {
        row: first,
        what: "diffused mixture",
        reason,
    })?;
    let (k_n, d) = (c.k, c.d);
    let mut sc = Scratch {
        g: vec![0.0; k_n * d],
        y: vec![0.0; d],
        q: vec![0.0; k_n],
    };
    let mut res = RowResult {
        log_prob: 0.0,
        score: vec![0.0; d],
        laplacian: 0.0,
        resp: vec![0.0; k_n],
    };
    let mut failure: Option<Failure> = None;
    // The first failure is kept (the caller reports one row).
    let fail =
        |failure: &mut Option<Failure>, row: usize, what: &'static str, value: f64, why: &str| {
            if failure.is_none() {
                *failure = Some(Failure {
                    row,
                    what,
                    reason: format!("its value {value:e} {why}"),
                });
            }
        };
    let range = if F::EPS.as_f64() > 1e-10 {
        "is outside the range of f32"
    } else {
        "is outside the range of f64"
    };
    for i in rows {
        if let Err(reason) = row(parts, &c, x.row(i), &mut sc, &mut res) {
            if failure.is_none() {
                failure = Some(Failure {
                    row: i,
                    what: "mixture evaluation",
                    reason,
                });
            }
            continue;
        }
        if let Some(l) = out.log_prob.as_mut() {
            let v = F::lit(res.log_prob);
            if !v.is_finite() {
                fail(
                    &mut failure,
                    i,
                    "mixture log-density",
                    res.log_prob,
                    &format!("{range} (x is too far from every component)"),
                );
            }
            l[i] = v;
        }
        if let Some(s) = out.score.as_mut() {
            for (j, o) in s.row_mut(i).iter_mut().enumerate() {
                let v = F::lit(res.score[j]);
                if !v.is_finite() {
                    fail(&mut failure, i, "mixture score", res.score[j], range);
                }
                *o = v;
            }
        }
        if let Some(l) = out.laplacian.as_mut() {
            let v = F::lit(res.laplacian);
            if !v.is_finite() {
                fail(
                    &mut failure,
                    i,
                    "mixture Laplacian (Hessian trace)",
                    res.laplacian,
                    range,
                );
            }
            l[i] = v;
        }
        if let Some(r) = out.responsibilities.as_mut() {
            for (k, o) in r.row_mut(i).iter_mut().enumerate() {
                // In [0, 1] by construction; NaN only if every exponent was NaN.
                let v = F::lit(res.resp[k]);
                if !v.is_finite() {
                    fail(
                        &mut failure,
                        i,
                        "mixture responsibilities",
                        res.resp[k],
                        range,
                    );
                }
                *o = v;
            }
        }
    }
    match failure {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The component the softmax of [`softmax_into`] is taken relative to: the smallest `q̂`
/// (ties: the largest `n_k`), whose exponent is the maximum up to the bounded differences
/// of the `n_k`.
pub(crate) fn nearest(log_norm: &[f64], q_hat: &[f64]) -> usize {
    let mut j0 = 0;
    for k in 1..log_norm.len() {
        let better = q_hat[k] < q_hat[j0] || !q_hat[j0].is_finite();
        if better || (q_hat[k] == q_hat[j0] && log_norm[k] > log_norm[j0]) {
            j0 = k;
        }
    }
    j0
}

/// The normalised weights `p_k ∝ exp(n_k − ½ 4^e q̂_k)` (a softmax over Gaussian exponents
/// whose quadratic forms `q_k = 4^e q̂_k` were computed on inputs scaled by `2^−e`), written
/// into `p`, and `log Σ_k exp(n_k − ½ q_k)` returned (`−∞` if below the f64 range).
///
/// The exponents are taken relative to [`nearest`]'s `j0`:
/// `(n_k − n_j0) − ½ 4^e (q̂_k − q̂_j0)`. No exponent is formed on its own, so huge `q_k`
/// give the limiting weights instead of `(−∞) − (−∞)`. Needs at least one finite `q̂_k`
/// (an infinite one gets weight 0) and finite `n_k`.
pub(crate) fn softmax_into(log_norm: &[f64], q_hat: &[f64], e: i64, p: &mut [f64]) -> f64 {
    let j0 = nearest(log_norm, q_hat);
    for (pk, &q) in p.iter_mut().zip(q_hat) {
        *pk = q - q_hat[j0];
    }
    softmax_diffs(log_norm, j0, q_hat[j0], e, p)
}

/// [`softmax_into`] with the differences `q̂_k − q̂_j0` given in `p` (on entry), for callers
/// that compute them more accurately than by subtracting two large `q̂` (see
/// [`crate::linalg::quad_difference`]); `p` holds the weights on exit.
pub(crate) fn softmax_diffs(log_norm: &[f64], j0: usize, q_j0: f64, e: i64, p: &mut [f64]) -> f64 {
    let mut d_max = f64::NEG_INFINITY;
    for (k, pk) in p.iter_mut().enumerate() {
        let dq = *pk;
        let quad = if dq == 0.0 { 0.0 } else { ldexp(dq, 2 * e) };
        *pk = (log_norm[k] - log_norm[j0]) - 0.5 * quad;
        d_max = d_max.max(*pk);
    }
    let mut sum = 0.0;
    for v in p.iter_mut() {
        *v = (*v - d_max).exp();
        sum += *v;
    }
    for v in p.iter_mut() {
        *v /= sum;
    }
    log_norm[j0] - 0.5 * ldexp(q_j0, 2 * e) + d_max + sum.ln()
}
