//! The tied path: every component has the same covariance `S` (scikit-learn's `'tied'`
//! and `'spherical'`-with-one-variance mixtures; the ring2d problem).
//!
//! With `Σ = α² S + σ² I` and `P = Σ⁻¹` common to all components, the quadratic term
//! `yᵀ P y` of every component's exponent is the same and factors out of the softmax.
//! Writing `y = x − α c` (centre `c = Σ_k w_k μ_k`) and `d_k = α (μ_k − c)`:
//!
//! ```text
//! log N(x; α μ_k, Σ) = −½ (y − d_k)ᵀ P (y − d_k) − ½ log det(2π Σ)
//!                    = −½ yᵀ P y − ½ log det(2π Σ) + ℓ_k
//! ℓ_k = h_kᵀ y + b_k,       h_k = P d_k,       b_k = log w_k − ½ d_kᵀ P d_k
//! log p   = −½ yᵀ P y − ½ log det(2π Σ) + logsumexp_k ℓ_k
//! ∇ log p = −P y + Σ_k r_k h_k                              (∇ℓ_k = h_k, ∇ lse = Σ r_k ∇ℓ_k)
//! Δ log p = −tr P + Σ_k r_k |h_k|² − |Σ_k r_k h_k|²         (∇² lse = Cov_r(h): its trace)
//! ```
//!
//! with `r = softmax_k ℓ_k` the responsibilities, exactly those of the general form since
//! the common factor cancels (Bishop 2006, §4.2.1, eq. 4.68–4.70: shared covariance makes
//! the posterior class logits linear in `x`). Per row this costs `D` multiply-adds per
//! component for the logit and `D` for the score sum, plus one `P y` (`D` products for a
//! diagonal `S`, one `D×D` product otherwise), instead of a `D×D` product per component.
//!
//! Centring at the weighted mean `c` keeps the cancellation in `log p` (and in `∇ log p`
//! near a mean) at the scale `α² |μ_k − c|²_P ≤ max_j α² |μ_k − μ_j|²_P`, the spread of the
//! means in Mahalanobis units, instead of their distance from the origin.

use super::Outputs;
use super::block::{self, BlockWorkspace, CHUNK, matmul};
use crate::num::Real;
use crate::num::exp::madd;
use ndarray::{ArrayView2, s};

/// All blocks of `x` on the tied path.
#[inline(always)]
pub(super) fn run<F: Real, const FMA: bool, const AVX2: bool>(
    x: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
) {
    let n = x.nrows();
    // `P y` (score) and `yᵀ P y` (log-density) are computed the same way whichever of
    // them is asked for, so every output is independent of the others.
    let need_py = out.score.is_some() || out.log_prob.is_some();
    let need_hbar = out.score.is_some() || out.laplacian.is_some();
    let mut start = 0;
    while start < n {
        let b = ws.bm.min(n - start);
        let len = b.div_ceil(CHUNK) * CHUNK;
        block::gather::<F, AVX2>(x.slice(s![start..start + b, ..]), ws, len);
        centre::<F>(ws, len);
        if need_py {
            precision_product::<F, FMA>(ws, len);
        }
        logits::<F, FMA>(ws, len);
        block::exp_sum::<F, FMA>(ws, len);
        write_log_prob(ws, out, start, b);
        block::weigh::<F, FMA>(ws, len);
        if need_hbar {
            score_sum::<F, FMA>(ws, len, out.score.is_some(), out.laplacian.is_some());
        }
        block::scatter::<F, AVX2>(ws, out, start, b);
        start += b;
    }
}

/// `Y = X − α c`, in place.
#[inline(always)]
fn centre<F: Real>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (d, bm) = (ws.d, ws.bm);
    for j in 0..d {
        let c = ws.center[j];
        for v in &mut ws.xt[j * bm..j * bm + len] {
            *v -= c;
        }
    }
}

/// `P Y` into `s` and `yᵀ P y` into `sq[..len]`.
#[inline(always)]
fn precision_product<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (d, bm) = (ws.d, ws.bm);
    let quad = &mut ws.sq[..len];
    quad.fill(F::zero());
    if ws.diag {
        for j in 0..d {
            let ic = ws.inv_c[j];
            let yj = &ws.xt[j * bm..j * bm + len];
            let pj = &mut ws.s[j * bm..j * bm + len];
            for i in 0..len {
                pj[i] = yj[i] * ic;
                quad[i] = madd::<F, FMA>(yj[i], pj[i], quad[i]);
            }
        }
    } else {
        matmul::<F, FMA>(
            &ws.prec[..d * d],
            d,
            &ws.xt,
            None,
            &mut ws.s,
            bm,
            len,
            quad,
            None,
        );
    }
}

/// `ℓ_k = b_k + h_kᵀ y` for every component, and their row maxima into `mx`: one chunk
/// of rows at a time, each logit accumulated in registers and stored once (the same
/// multiply-adds in the same order as a pass per coordinate, so the same values).
#[inline(always)]
fn logits<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    for c in (0..len).step_by(CHUNK) {
        let mut mx = [F::neg_infinity(); CHUNK];
        for k in 0..k_n {
            let mut acc = [ws.b[k]; CHUNK];
            for j in 0..d {
                let h = ws.h[k * d + j];
                let yj = &ws.xt[j * bm + c..j * bm + c + CHUNK];
                for t in 0..CHUNK {
                    acc[t] = madd::<F, FMA>(h, yj[t], acc[t]);
                }
            }
            for t in 0..CHUNK {
                // `max` rather than a select (see `block::softmax`).
                mx[t] = mx[t].max(acc[t]);
            }
            ws.logits[k * bm + c..k * bm + c + CHUNK].copy_from_slice(&acc);
        }
        ws.mx[c..c + CHUNK].copy_from_slice(&mx);
    }
}

/// `log p = −½ yᵀ P y − ½ log det(2π Σ) + max + log Σ exp(ℓ − max)`.
fn write_log_prob<F: Real>(
    ws: &BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
    start: usize,
    b: usize,
) {
    if let Some(lp) = out.log_prob.as_mut() {
        let (norm, half) = (ws.log_norm[0], F::lit(0.5));
        for i in 0..b {
            lp[start + i] = (norm - half * ws.sq[i]) + (ws.mx[i] + ws.sum[i].ln());
        }
    }
}

/// `h̄ = Σ_k r_k h_k`; then `s = P y − h̄` (minus the score, as `scatter` expects) and
/// the Laplacian `Σ_k r_k |h_k|² − |h̄|² − tr P` into `mx`.
#[inline(always)]
fn score_sum<F: Real, const FMA: bool>(
    ws: &mut BlockWorkspace<F>,
    len: usize,
    score: bool,
    laplacian: bool,
) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    // `sum` held 1/Σ e until `weigh`; it is free now and holds one coordinate of h̄.
    // `sq[..len]` (yᵀ P y, used by `write_log_prob` before this) now holds Σ_k r_k |h_k|²
    // and `mx` accumulates |h̄|², kept apart for `block::flag_cancellation`.
    let hbar = &mut ws.sum[..len];
    let lap = &mut ws.mx[..len];
    let pos = &mut ws.sq[..len];
    if laplacian {
        lap.fill(F::zero());
        pos.fill(F::zero());
        for k in 0..k_n {
            let r = &ws.logits[k * bm..k * bm + len];
            let hs = ws.h_sq[k];
            for i in 0..len {
                pos[i] = madd::<F, FMA>(r[i], hs, pos[i]);
            }
        }
    }
    for j in 0..d {
        hbar.fill(F::zero());
        for k in 0..k_n {
            let r = &ws.logits[k * bm..k * bm + len];
            let h = ws.h[k * d + j];
            for i in 0..len {
                hbar[i] = madd::<F, FMA>(r[i], h, hbar[i]);
            }
        }
        if score {
            let sj = &mut ws.s[j * bm..j * bm + len];
            for i in 0..len {
                sj[i] -= hbar[i];
            }
        }
        if laplacian {
            for i in 0..len {
                lap[i] = madd::<F, FMA>(hbar[i], hbar[i], lap[i]);
            }
        }
    }
    if laplacian {
        // lap ← Σ_k r_k |h_k|² − |h̄|² − tr P, or NaN where that cancels (see there).
        let tr = [ws.trace_prec[0]; CHUNK];
        for c in (0..len).step_by(CHUNK) {
            let mut v = [F::zero(); CHUNK];
            v.copy_from_slice(&pos[c..c + CHUNK]);
            block::flag_cancellation(&mut v, &lap[c..c + CHUNK], &tr);
            lap[c..c + CHUNK].copy_from_slice(&v);
        }
    }
}
