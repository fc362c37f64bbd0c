//! The row-by-row evaluation in the eigenbasis (the kernel before the blocked one), kept
//! as a second reference for the tests.
//!
//! With `S_k = U_k diag(λ_k) U_kᵀ` the covariance at `(α, σ)` is `U_k diag(c_k) U_kᵀ`,
//! `c_k = α² λ_k + σ²`. For a row `x`, `y_k = U_kᵀ (x − α μ_k)` and
//!
//! ```text
//! log N_k = −½ Σ y²/c − ½ Σ log c − (D/2) log 2π
//! s_k     = −U_k (y_k / c_k)                               (component score)
//! ```
//!
//! Work per block: one `B×D · D×D` product per component and direction (none for
//! diagonal covariances), a max-shifted log-sum-exp over components.

use super::{Outputs, Parts};
use crate::num::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis, s};

/// Rows per block: small enough that the block's buffers stay in L1/L2.
const BLOCK: usize = 128;

/// Reusable buffers for the row-wise path.
#[derive(Debug, Clone)]
pub(crate) struct RowWorkspace<F> {
    shift: Array2<F>,
    inv_c: Array2<F>,
    log_norm: Array1<F>,
    trace_prec: Array1<F>,
    r: Array2<F>,
    y: Array2<F>,
    v: Array3<F>,
    logits: Array2<F>,
    sq: Array2<F>,
}

impl<F: Real> RowWorkspace<F> {
    pub(crate) fn new(k: usize, d: usize) -> Self {
        Self {
            shift: Array2::zeros((k, d)),
            inv_c: Array2::zeros((k, d)),
            log_norm: Array1::zeros(k),
            trace_prec: Array1::zeros(k),
            r: Array2::zeros((BLOCK, d)),
            y: Array2::zeros((BLOCK, d)),
            v: Array3::zeros((k, BLOCK, d)),
            logits: Array2::zeros((BLOCK, k)),
            sq: Array2::zeros((BLOCK, k)),
        }
    }
}

/// Evaluate the mixture at `(α, σ)` on the rows of `x`, row by row (see the module docs).
pub(crate) fn evaluate<F: Real>(
    parts: &Parts<'_, F>,
    alpha: F,
    sigma: F,
    x: ArrayView2<F>,
    ws: &mut RowWorkspace<F>,
    mut out: Outputs<'_, F>,
) {
    let (k_n, d) = parts.means.dim();
    let half = F::lit(0.5);
    let log2pi = F::lit((2.0 * std::f64::consts::PI).ln());
    let s2 = sigma * sigma;
    let a2 = alpha * alpha;
    for k in 0..k_n {
        let mut log_det = F::zero();
        let mut tr = F::zero();
        for j in 0..d {
            let c = a2 * parts.eigvals[[k, j]] + s2;
            ws.inv_c[[k, j]] = F::one() / c;
            ws.shift[[k, j]] = alpha * parts.means[[k, j]];
            log_det += c.ln();
            tr += F::one() / c;
        }
        ws.log_norm[k] =
            parts.log_weights[k] - half * log_det - half * F::from_usize_lossy(d) * log2pi;
        ws.trace_prec[k] = tr;
    }
    let need_vec = out.score.is_some() || out.laplacian.is_some();
    let n = x.nrows();
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let b = end - start;
        let xb = x.slice(s![start..end, ..]);
        for k in 0..k_n {
            let shift = ws.shift.row(k);
            let inv_c = ws.inv_c.row(k);
            {
                let mut r = ws.r.slice_mut(s![..b, ..]);
                r.assign(&xb);
                r -= &shift;
            }
            // y = U_kᵀ (x − αμ_k), rows: Y = R U_k.
            let y_is_r = parts.axis_aligned[k];
            if !y_is_r {
                let u = parts.eigvecs.index_axis(Axis(0), k);
                general_mat_mul(
                    F::one(),
                    &ws.r.slice(s![..b, ..]),
                    &u,
                    F::zero(),
                    &mut ws.y.slice_mut(s![..b, ..]),
                );
            }
            let y = if y_is_r {
                ws.r.slice(s![..b, ..])
            } else {
                ws.y.slice(s![..b, ..])
            };
            let mut vk = ws.v.index_axis_mut(Axis(0), k);
            for i in 0..b {
                let yi = y.row(i);
                let mut q = F::zero();
                let mut p2 = F::zero();
                if need_vec {
                    let mut vi = vk.row_mut(i);
                    for j in 0..d {
                        let w = yi[j] * inv_c[j];
                        q += yi[j] * w;
                        p2 += w * w;
                        vi[j] = w;
                    }
                } else {
                    for j in 0..d {
                        q += yi[j] * yi[j] * inv_c[j];
                    }
                }
                ws.logits[[i, k]] = ws.log_norm[k] - half * q;
                ws.sq[[i, k]] = p2;
            }
            // Back to data coordinates: P_k (x − αμ_k) = U_k (y/c), rows: V U_kᵀ.
            if need_vec && !y_is_r {
                let u = parts.eigvecs.index_axis(Axis(0), k);
                let mut tmp = ws.r.slice_mut(s![..b, ..]);
                general_mat_mul(
                    F::one(),
                    &vk.slice(s![..b, ..]),
                    &u.t(),
                    F::zero(),
                    &mut tmp,
                );
                vk.slice_mut(s![..b, ..]).assign(&tmp);
            }
        }
        // Softmax over components, per row (max-shifted).
        for i in 0..b {
            let row = ws.logits.row(i);
            let m = row.iter().fold(F::neg_infinity(), |a, &v| a.max(v));
            let mut sum = F::zero();
            for k in 0..k_n {
                let e = (ws.logits[[i, k]] - m).exp();
                ws.logits[[i, k]] = e;
                sum += e;
            }
            let inv = F::one() / sum;
            if let Some(lp) = out.log_prob.as_mut() {
                lp[start + i] = m + sum.ln();
            }
            for k in 0..k_n {
                ws.logits[[i, k]] *= inv;
            }
            if let Some(resp) = out.responsibilities.as_mut() {
                for k in 0..k_n {
                    resp[[start + i, k]] = ws.logits[[i, k]];
                }
            }
        }
        if need_vec {
            for i in 0..b {
                let mut norm2 = F::zero();
                let mut lap = F::zero();
                for j in 0..d {
                    let mut acc = F::zero();
                    for k in 0..k_n {
                        acc += ws.logits[[i, k]] * ws.v[[k, i, j]];
                    }
                    let sj = -acc;
                    norm2 += sj * sj;
                    if let Some(sc) = out.score.as_mut() {
                        sc[[start + i, j]] = sj;
                    }
                }
                if let Some(l) = out.laplacian.as_mut() {
                    for k in 0..k_n {
                        lap += ws.logits[[i, k]] * (ws.sq[[i, k]] - ws.trace_prec[k]);
                    }
                    l[start + i] = lap - norm2;
                }
            }
        }
        start = end;
    }
}
