//! The blocked, structure-of-arrays evaluation: the fast path for batches.
//!
//! A block of `B` rows is transposed to `X` (`D×B`, one contiguous run of rows per
//! coordinate), so that every step below is a loop over contiguous rows that the
//! compiler vectorises — including the exponentials, through the polynomial
//! [`exp_poly`](crate::num::exp::PolyExp::exp_poly). Per component `k`, with the
//! precision `P_k = (α² S_k + σ² I)⁻¹ = U_k diag(1/c_k) U_kᵀ` formed once per call:
//!
//! ```text
//! R_k = X − α μ_k                      (D×B, elementwise, formed inside the product)
//! G_k = P_k R_k                        (D×D · D×B; elementwise 1/c_k if S_k is diagonal)
//! ℓ_k = log w_k − ½ Σ_d R_k ⊙ G_k − ½ log det(2π (α² S_k + σ² I))
//! r   = softmax_k ℓ_k                  (max-shifted, per row)
//! ∇ log p = −Σ_k r_k G_k
//! Δ log p = Σ_k r_k (|G_k|² − tr P_k) − |∇ log p|²
//! ```
//!
//! This needs one `D×D` product per component and row instead of the two of the
//! eigenbasis form (`y = Uᵀ r`, then `U (y/c)`), because `P_k` is applied directly; the
//! product is a register-tiled micro-kernel ([`matmul`]). A mixture whose components
//! share one covariance takes the tied path instead (`tied`: linear logits, one `P y`
//! per row), for every output. The transposes in and out of the block go through AVX2
//! registers where available (`transpose`).
//! The loops are plain slice loops rather than `Zip`s so that, marked
//! `#[inline(always)]`, they are compiled inside the per-instruction-set entry points
//! ([`Isa`]) with that instruction set's vector width.

use super::{Outputs, Parts, transpose};
use crate::num::Real;
use crate::num::exp::madd;
use ndarray::{ArrayView2, s};

/// Rows are processed in chunks of this many: a multiple of every SIMD width, so the
/// inner loops need no remainder handling (blocks are zero-padded to a multiple).
pub(crate) const CHUNK: usize = 16;

/// Elements budgeted for the per-block buffers (`K·(D + 2)` per row): 64 KiB in f64,
/// so that the several passes over a block hit L1/L2.
const BLOCK_BUDGET: usize = 8 * 1024;

/// Largest block, in rows.
const MAX_BLOCK: usize = 1024;

/// Reusable buffers for the blocked path; per-block arrays are `[component][coordinate][row]`.
#[derive(Debug, Clone)]
pub(crate) struct BlockWorkspace<F> {
    pub(super) k: usize,
    pub(super) d: usize,
    /// Rows per block (a multiple of [`CHUNK`]).
    pub(super) bm: usize,
    /// `α μ_k`, `K×D`.
    pub(super) shift: Vec<F>,
    /// `1/c_k`, `K×D` (used for diagonal `S_k`).
    pub(super) inv_c: Vec<F>,
    /// `log w_k − ½ log det(2π Σ_k)`.
    pub(super) log_norm: Vec<F>,
    /// `tr P_k`.
    pub(super) trace_prec: Vec<F>,
    /// `P_k`, `K×D×D`, each packed by [`pack_precision`] (used for non-diagonal `S_k`).
    pub(super) prec: Vec<F>,
    /// The block transposed, `D×bm`.
    pub(super) xt: Vec<F>,
    /// `G_k` for every component, `K×D×bm`.
    pub(super) g: Vec<F>,
    /// `ℓ_k`, then `exp(ℓ_k − max)`, then `r_k`: `K×bm`.
    pub(super) logits: Vec<F>,
    /// `|G_k|²`, `K×bm` (Laplacian only).
    pub(super) sq: Vec<F>,
    /// Row maxima of the logits, then the Laplacian.
    pub(super) mx: Vec<F>,
    /// Row sums of the shifted exponentials.
    pub(super) sum: Vec<F>,
    /// `Σ_k r_k G_k`, `D×bm` (tied path: `P Y − Σ_k r_k h_k`, i.e. minus the score).
    pub(super) s: Vec<F>,
    /// The mixture takes the tied path (`tied`); set by `set_up`.
    pub(super) tied: bool,
    /// Tied path: `S` is diagonal, `P = diag(inv_c[..D])`.
    pub(super) diag: bool,
    /// Tied path: `h_k = α P (μ_k − c)`, `K×D` (`c = Σ_k w_k μ_k`, and `α c` is `center`).
    pub(super) h: Vec<F>,
    /// Tied path: `b_k = log w_k − ½ α² (μ_k − c)ᵀ P (μ_k − c)`.
    pub(super) b: Vec<F>,
    /// Tied path: `|h_k|²`.
    pub(super) h_sq: Vec<F>,
    /// Tied path: `α c`, `D`.
    pub(super) center: Vec<F>,
    /// f64 scratch for `set_up`: `α² λ + σ²` (`D`) and `P` (`D×D`), kept to avoid
    /// allocating per call.
    pub(super) c64: Vec<f64>,
    pub(super) p64: Vec<f64>,
    /// `(mixture, α, σ)` the constants were last computed for: a workspace serves one
    /// mixture at a time (each `AnalyticScore` pools its own), and consecutive blocks of
    /// a batch share `(α, σ)`, so `set_up` runs once per call instead of once per block.
    pub(super) key: Option<(usize, u64, u64)>,
}

impl<F: Real> BlockWorkspace<F> {
    pub(crate) fn new(k: usize, d: usize) -> Self {
        let per_row = (k * (d + 2)).max(1);
        let bm = (BLOCK_BUDGET / per_row / CHUNK * CHUNK).clamp(CHUNK, MAX_BLOCK);
        let z = |n: usize| vec![F::zero(); n];
        Self {
            k,
            d,
            bm,
            shift: z(k * d),
            inv_c: z(k * d),
            log_norm: z(k),
            trace_prec: z(k),
            prec: z(k * d * d),
            xt: z(d * bm),
            g: z(k * d * bm),
            logits: z(k * bm),
            sq: z(k * bm),
            mx: z(bm),
            sum: z(bm),
            s: z(d * bm),
            tied: false,
            diag: false,
            h: z(k * d),
            b: z(k),
            h_sq: z(k),
            center: z(d),
            c64: vec![0.0; d],
            p64: vec![0.0; d * d],
            key: None,
        }
    }

    /// Per-call constants at `(α, σ)`, computed in f64 (skipped when the workspace
    /// already holds them: the same mixture at the same `(α, σ)` gives the same values).
    pub(super) fn set_up(&mut self, parts: &Parts<'_, F>, alpha: F, sigma: F) {
        let key = (
            parts.means.as_ptr() as usize,
            alpha.as_f64().to_bits(),
            sigma.as_f64().to_bits(),
        );
        if self.key == Some(key) {
            return;
        }
        self.key = Some(key);
        self.tied = parts.tied;
        if parts.tied {
            self.set_up_tied(parts, alpha, sigma);
            return;
        }
        let (k_n, d) = (self.k, self.d);
        let (a, s2) = (alpha.as_f64(), sigma.as_f64() * sigma.as_f64());
        let log2pi = (2.0 * std::f64::consts::PI).ln();
        for k in 0..k_n {
            let mut log_det = 0.0;
            let mut tr = 0.0;
            for j in 0..d {
                let c = a * a * parts.eigvals[[k, j]].as_f64() + s2;
                self.c64[j] = c;
                self.inv_c[k * d + j] = F::lit(1.0 / c);
                self.shift[k * d + j] = F::lit(a * parts.means[[k, j]].as_f64());
                log_det += c.ln();
                tr += 1.0 / c;
            }
            self.log_norm[k] =
                F::lit(parts.log_weights[k].as_f64() - 0.5 * log_det - 0.5 * d as f64 * log2pi);
            self.trace_prec[k] = F::lit(tr);
            if !parts.axis_aligned[k] {
                self.precision_f64(parts, k);
                let pm = &self.p64;
                pack_precision(
                    |i, j| F::lit(pm[i * d + j]),
                    d,
                    tile_width::<F>(),
                    &mut self.prec[k * d * d..(k + 1) * d * d],
                );
            }
        }
    }

    /// `P_k = U_k diag(1/c) U_kᵀ` in f64 into `p64`, with `c = c64` already set.
    fn precision_f64(&mut self, parts: &Parts<'_, F>, k: usize) {
        let d = self.d;
        let u = parts.eigvecs.index_axis(ndarray::Axis(0), k);
        for i in 0..d {
            for j in 0..=i {
                let mut v = 0.0;
                for l in 0..d {
                    v += u[[i, l]].as_f64() * u[[j, l]].as_f64() / self.c64[l];
                }
                self.p64[i * d + j] = v;
                self.p64[j * d + i] = v;
            }
        }
    }

    /// The tied path's constants (see `tied`): with `Σ = α² S + σ² I` common to all
    /// components and `P = Σ⁻¹` (from component 0's eigendecomposition), `h_k`, `b_k`,
    /// `|h_k|²`, `α c`, `tr P`, `−½ log det(2π Σ)` (in `log_norm[0]`), and `P` itself
    /// (`inv_c[..D]` if `S` is diagonal, else packed in `prec[..D²]`).
    fn set_up_tied(&mut self, parts: &Parts<'_, F>, alpha: F, sigma: F) {
        let (k_n, d) = (self.k, self.d);
        let (a, s2) = (alpha.as_f64(), sigma.as_f64() * sigma.as_f64());
        let log2pi = (2.0 * std::f64::consts::PI).ln();
        let (mut log_det, mut tr) = (0.0, 0.0);
        for j in 0..d {
            let c = a * a * parts.eigvals[[0, j]].as_f64() + s2;
            self.c64[j] = c;
            self.inv_c[j] = F::lit(1.0 / c);
            log_det += c.ln();
            tr += 1.0 / c;
        }
        self.log_norm[0] = F::lit(-0.5 * log_det - 0.5 * d as f64 * log2pi);
        self.trace_prec[0] = F::lit(tr);
        let diag = parts.axis_aligned[0];
        self.diag = diag;
        if diag {
            for i in 0..d {
                for j in 0..d {
                    self.p64[i * d + j] = if i == j { 1.0 / self.c64[i] } else { 0.0 };
                }
            }
        } else {
            self.precision_f64(parts, 0);
            let pm = &self.p64;
            pack_precision(
                |i, j| F::lit(pm[i * d + j]),
                d,
                tile_width::<F>(),
                &mut self.prec[..d * d],
            );
        }
        // Centre c = Σ_k w_k μ_k: the logits are then O(spread of the means), not
        // O(distance of the means from the origin), which bounds their cancellation.
        for j in 0..d {
            let c: f64 = (0..k_n)
                .map(|k| parts.log_weights[k].as_f64().exp() * parts.means[[k, j]].as_f64())
                .sum();
            self.center[j] = F::lit(a * c);
            // c in f64 for the offsets below (c64 is free again once P is formed).
            self.c64[j] = c;
        }
        for k in 0..k_n {
            let mut quad = 0.0;
            let mut h_sq = 0.0;
            for i in 0..d {
                let mut h = 0.0;
                for j in 0..d {
                    let dj = a * (parts.means[[k, j]].as_f64() - self.c64[j]);
                    h += self.p64[i * d + j] * dj;
                }
                let di = a * (parts.means[[k, i]].as_f64() - self.c64[i]);
                quad += di * h;
                h_sq += h * h;
                self.h[k * d + i] = F::lit(h);
            }
            self.b[k] = F::lit(parts.log_weights[k].as_f64() - 0.5 * quad);
            self.h_sq[k] = F::lit(h_sq);
        }
    }
}

/// All blocks of `x` for an untied mixture (the dispatch is in `dispatch`).
#[inline(always)]
pub(super) fn run_untied<F: Real, const FMA: bool, const AVX2: bool>(
    axis_aligned: &[bool],
    x: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
) {
    let n = x.nrows();
    let need_g = out.score.is_some() || out.laplacian.is_some();
    let need_sq = out.laplacian.is_some();
    let mut start = 0;
    while start < n {
        let b = ws.bm.min(n - start);
        let len = b.div_ceil(CHUNK) * CHUNK;
        gather::<F, AVX2>(x.slice(s![start..start + b, ..]), ws, len);
        components::<F, FMA>(axis_aligned, ws, len, need_sq);
        softmax::<F, FMA>(ws, len);
        write_log_prob(ws, out, start, b);
        weigh::<F, FMA>(ws, len);
        if need_g {
            score_sum::<F, FMA>(ws, len, need_sq);
        }
        scatter::<F, AVX2>(ws, out, start, b);
        start += b;
    }
}

/// `xt[j][i] = x[i][j]`, rows `b..len` set to zero (finite padding).
#[inline(always)]
pub(super) fn gather<F: Real, const AVX2: bool>(
    xb: ArrayView2<F>,
    ws: &mut BlockWorkspace<F>,
    len: usize,
) {
    let (b, d, bm) = (xb.nrows(), ws.d, ws.bm);
    let xt = &mut ws.xt;
    if let Some(xs) = xb.as_slice() {
        transpose::gather::<F, AVX2>(xs, d, b, xt, bm);
    } else {
        for (i, row) in xb.rows().into_iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                xt[j * bm + i] = v;
            }
        }
    }
    for j in 0..d {
        xt[j * bm + b..j * bm + len].fill(F::zero());
    }
}

/// `ℓ_k`, `G_k` and (if asked) `|G_k|²` for every component.
#[inline(always)]
fn components<F: Real, const FMA: bool>(
    axis_aligned: &[bool],
    ws: &mut BlockWorkspace<F>,
    len: usize,
    need_sq: bool,
) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    for k in 0..k_n {
        let q = &mut ws.logits[k * bm..k * bm + len];
        let sq = &mut ws.sq[k * bm..k * bm + len];
        q.fill(F::zero());
        if need_sq {
            sq.fill(F::zero());
        }
        let gk = &mut ws.g[k * d * bm..(k + 1) * d * bm];
        if axis_aligned[k] {
            // P_k = diag(1/c_k): G = R / c, no product needed.
            for j in 0..d {
                let (m, ic) = (ws.shift[k * d + j], ws.inv_c[k * d + j]);
                let xj = &ws.xt[j * bm..j * bm + len];
                let gj = &mut gk[j * bm..j * bm + len];
                for i in 0..len {
                    let r = xj[i] - m;
                    let g = r * ic;
                    gj[i] = g;
                    q[i] = madd::<F, FMA>(r, g, q[i]);
                }
                if need_sq {
                    for i in 0..len {
                        sq[i] = madd::<F, FMA>(gj[i], gj[i], sq[i]);
                    }
                }
            }
        } else {
            matmul::<F, FMA>(
                &ws.prec[k * d * d..(k + 1) * d * d],
                d,
                &ws.xt,
                Some(&ws.shift[k * d..(k + 1) * d]),
                gk,
                bm,
                len,
                q,
                need_sq.then_some(sq),
            );
        }
        // ℓ = log_norm − ½ q, in place.
        let (ln, mhalf) = (ws.log_norm[k], F::lit(-0.5));
        for v in q.iter_mut() {
            *v = madd::<F, FMA>(mhalf, *v, ln);
        }
    }
}

/// Output coordinates per register tile of [`matmul`]: 6 in f32 (tiles of 16 rows, 2 AVX
/// registers per coordinate) and 4 in f64 (tiles of 8 rows, also 2 registers), i.e. 12
/// or 8 independent accumulators — at least the FMA latency (4 cycles on Zen 3) times
/// its two pipes — with registers left for the source rows and the broadcast weight.
/// Measured alternatives on rand16d (criterion, same run): f32 4 × 16 rows ~10 % slower;
/// f64 2 × 16 rows (the previous kernel's shape) ~5–10 % slower, 3 × 16 and 6 × 8 spill
/// (1.4–1.6× slower).
#[inline(always)]
pub(super) fn tile_width<F>() -> usize {
    if std::mem::size_of::<F>() <= 4 { 6 } else { 4 }
}

/// `P` packed for [`matmul`]: the output coordinates in tiles of `J` = [`tile_width`]
/// (the last one narrower), each tile stored column by column (`[l][jj]`), so that the
/// micro-kernel reads the `J` weights of source coordinate `l` contiguously. The tile
/// starting at output coordinate `j0` begins at offset `j0 · D`.
pub(super) fn pack_precision<F: Copy>(
    p: impl Fn(usize, usize) -> F,
    d: usize,
    j: usize,
    out: &mut [F],
) {
    let mut j0 = 0;
    while j0 < d {
        let jw = j.min(d - j0);
        for l in 0..d {
            for jj in 0..jw {
                out[j0 * d + l * jw + jj] = p(j0 + jj, l);
            }
        }
        j0 += jw;
    }
}

/// `dst[j] = Σ_l P[j][l] R[l]` for rows of length `len` (stride `bm`): `G = P R`, with
/// `P` packed by [`pack_precision`] and `R = src − shift` (`R = src` without a shift);
/// and, while each tile of `G` is in registers, `q += Σ_j R_j ⊙ G_j` and (if given)
/// `sq += Σ_j G_j²`.
///
/// `R` is formed on the fly from each loaded source chunk (the subtractions run on the
/// adder pipes beside the multiply-adds) rather than stored by a separate pass: the
/// same `fl(x − m)` either way, so the result is unchanged.
///
/// A register-tiled micro-kernel: `J` output coordinates × `ROWS` rows (a divisor of
/// [`CHUNK`]) are accumulated in registers over the `D` source coordinates, each source
/// vector loaded once per `J` multiply-adds. Each output element is the same sequence of
/// multiply-adds whatever the tiling, so the tile shape does not change results.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn matmul<F: Real, const FMA: bool>(
    p: &[F],
    d: usize,
    src: &[F],
    shift: Option<&[F]>,
    dst: &mut [F],
    bm: usize,
    len: usize,
    q: &mut [F],
    sq: Option<&mut [F]>,
) {
    match (tile_width::<F>() == 6, shift) {
        (true, Some(m)) => matmul_tiles::<F, FMA, 6, true, 16>(p, d, src, m, dst, bm, len, q, sq),
        (true, None) => matmul_tiles::<F, FMA, 6, false, 16>(p, d, src, &[], dst, bm, len, q, sq),
        (false, Some(m)) => matmul_tiles::<F, FMA, 4, true, 8>(p, d, src, m, dst, bm, len, q, sq),
        (false, None) => matmul_tiles::<F, FMA, 4, false, 8>(p, d, src, &[], dst, bm, len, q, sq),
    }
}

/// [`matmul`] with tiles of `J` output coordinates (the narrower last one dispatched to
/// its own instance, so every tile's loops have constant trip counts).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn matmul_tiles<F: Real, const FMA: bool, const J: usize, const SUB: bool, const ROWS: usize>(
    p: &[F],
    d: usize,
    src: &[F],
    shift: &[F],
    dst: &mut [F],
    bm: usize,
    len: usize,
    q: &mut [F],
    mut sq: Option<&mut [F]>,
) {
    let mut j0 = 0;
    while j0 < d {
        let jw = J.min(d - j0);
        let pt = &p[j0 * d..(j0 + jw) * d];
        let sq = sq.as_deref_mut();
        match jw {
            1 => tile::<F, FMA, 1, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
            2 => tile::<F, FMA, 2, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
            3 => tile::<F, FMA, 3, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
            4 => tile::<F, FMA, 4, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
            5 => tile::<F, FMA, 5, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
            _ => tile::<F, FMA, 6, SUB, ROWS>(pt, d, j0, src, shift, dst, bm, len, q, sq),
        }
        j0 += jw;
    }
}

/// One tile of [`matmul`]: output coordinates `j0..j0 + W` for every chunk of rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile<F: Real, const FMA: bool, const W: usize, const SUB: bool, const ROWS: usize>(
    pt: &[F],
    d: usize,
    j0: usize,
    src: &[F],
    shift: &[F],
    dst: &mut [F],
    bm: usize,
    len: usize,
    q: &mut [F],
    mut sq: Option<&mut [F]>,
) {
    let src = &src[..d * bm];
    let pt = &pt[..d * W];
    let mut c = 0;
    while c < len {
        let mut acc = [[F::zero(); ROWS]; W];
        for (l, (srow, w)) in src.chunks_exact(bm).zip(pt.chunks_exact(W)).enumerate() {
            let mut v = [F::zero(); ROWS];
            v.copy_from_slice(&srow[c..c + ROWS]);
            if SUB {
                let m = shift[l];
                for vt in &mut v {
                    *vt -= m;
                }
            }
            for jj in 0..W {
                let wj = w[jj];
                for t in 0..ROWS {
                    acc[jj][t] = madd::<F, FMA>(wj, v[t], acc[jj][t]);
                }
            }
        }
        let mut qc = [F::zero(); ROWS];
        qc.copy_from_slice(&q[c..c + ROWS]);
        for jj in 0..W {
            let j = j0 + jj;
            dst[j * bm + c..j * bm + c + ROWS].copy_from_slice(&acc[jj]);
            let r = &src[j * bm + c..j * bm + c + ROWS];
            let m = if SUB { shift[j] } else { F::zero() };
            for t in 0..ROWS {
                let rt = if SUB { r[t] - m } else { r[t] };
                qc[t] = madd::<F, FMA>(rt, acc[jj][t], qc[t]);
            }
        }
        q[c..c + ROWS].copy_from_slice(&qc);
        if let Some(sq) = sq.as_deref_mut() {
            let sqc = &mut sq[c..c + ROWS];
            for acc_j in &acc {
                for t in 0..ROWS {
                    sqc[t] = madd::<F, FMA>(acc_j[t], acc_j[t], sqc[t]);
                }
            }
        }
        c += ROWS;
    }
}

/// Max-shifted exponentials of the logits (in place) and their row sums.
#[inline(always)]
pub(super) fn softmax<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (k_n, bm) = (ws.k, ws.bm);
    let mx = &mut ws.mx[..len];
    mx.copy_from_slice(&ws.logits[..len]);
    for k in 1..k_n {
        let l = &ws.logits[k * bm..k * bm + len];
        for i in 0..len {
            // `max` rather than a select, which LLVM turns into a masked store (slow on AMD).
            mx[i] = mx[i].max(l[i]);
        }
    }
    exp_sum::<F, FMA>(ws, len);
}

/// The exponentials `exp(ℓ − max)` in place and their row sums, with the row maxima
/// already in `mx`.
#[inline(always)]
pub(super) fn exp_sum<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (k_n, bm) = (ws.k, ws.bm);
    let mx = &ws.mx[..len];
    let sum = &mut ws.sum[..len];
    sum.fill(F::zero());
    for k in 0..k_n {
        let l = &mut ws.logits[k * bm..k * bm + len];
        for i in 0..len {
            let e = (l[i] - mx[i]).exp_poly::<FMA>();
            l[i] = e;
            sum[i] += e;
        }
    }
}

/// `log p = max + log Σ exp(ℓ − max)`; scalar `ln`, as only the log-density needs it.
fn write_log_prob<F: Real>(
    ws: &BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
    start: usize,
    b: usize,
) {
    if let Some(lp) = out.log_prob.as_mut() {
        for i in 0..b {
            lp[start + i] = ws.mx[i] + ws.sum[i].ln();
        }
    }
}

/// Responsibilities `r_k = e_k / Σ e`, in place of the exponentials.
#[inline(always)]
pub(super) fn weigh<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize) {
    let (k_n, bm) = (ws.k, ws.bm);
    let inv = &mut ws.sum[..len];
    for v in inv.iter_mut() {
        *v = F::one() / *v;
    }
    for k in 0..k_n {
        let l = &mut ws.logits[k * bm..k * bm + len];
        for i in 0..len {
            l[i] *= inv[i];
        }
    }
}

/// `Σ_k r_k G_k` into `s` and, if asked, the Laplacian into `mx`.
#[inline(always)]
fn score_sum<F: Real, const FMA: bool>(ws: &mut BlockWorkspace<F>, len: usize, need_sq: bool) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    if std::mem::size_of::<F>() <= 4 {
        mix_scores::<F, FMA, 4>(ws, len);
    } else {
        mix_scores::<F, FMA, 2>(ws, len);
    }
    if need_sq {
        // Δ log p = (Σ_k r_k |G_k|² − |s|²) − Σ_k r_k tr P_k, with the three sums kept apart
        // (in `mx`, `sq[..len]`, `sum`; `sum` is free after `weigh`, `sq` after the loop
        // over components) so that the cancellation can be measured: see `flag_cancellation`.
        let lap = &mut ws.mx[..len];
        let trr = &mut ws.sum[..len];
        lap.fill(F::zero());
        trr.fill(F::zero());
        for k in 0..k_n {
            let r = &ws.logits[k * bm..k * bm + len];
            let sq = &ws.sq[k * bm..k * bm + len];
            let tr = ws.trace_prec[k];
            for i in 0..len {
                lap[i] = madd::<F, FMA>(r[i], sq[i], lap[i]);
                trr[i] = madd::<F, FMA>(r[i], tr, trr[i]);
            }
        }
        let s2 = &mut ws.sq[..len];
        s2.fill(F::zero());
        for j in 0..d {
            let sj = &ws.s[j * bm..j * bm + len];
            for i in 0..len {
                s2[i] = madd::<F, FMA>(sj[i], sj[i], s2[i]);
            }
        }
        flag_cancellation(lap, s2, trr);
    }
}

/// `lap ← (pos − s2) − tr` per row, where `pos = Σ_k r_k |v_k|² ≥ s2 = |Σ_k r_k v_k|²` (the
/// component scores `v_k = G_k`, or `h_k` on the tied path) and `tr` is the trace term; a row
/// whose rounding error `≈ 2ε·pos` exceeds `√ε` times the result's scale `|pos − s2| + tr`
/// gets NaN instead, so that `kernel::evaluate` recomputes it by the variance form of
/// `safe` (far from every component `pos` grows like `|x|²` while the Laplacian stays
/// `O(tr P)`, and the difference would be rounding noise).
#[inline(always)]
pub(super) fn flag_cancellation<F: Real>(lap: &mut [F], s2: &[F], tr: &[F]) {
    let thr = F::lit(2.0) * F::EPS.sqrt();
    for i in 0..lap.len() {
        let pos = lap[i];
        let var = pos - s2[i];
        let v = var - tr[i];
        lap[i] = if pos * thr > var.abs() + tr[i] {
            F::nan()
        } else {
            v
        };
    }
}

/// `s_j = Σ_k r_k G_kj`, with `J` coordinates × one chunk of rows accumulated in
/// registers (`2 J` independent chains per chunk, one store each), as in [`matmul`].
#[inline(always)]
fn mix_scores<F: Real, const FMA: bool, const J: usize>(ws: &mut BlockWorkspace<F>, len: usize) {
    let d = ws.d;
    let mut j0 = 0;
    while j0 < d {
        match J.min(d - j0) {
            1 => mix_tile::<F, FMA, 1>(ws, len, j0),
            2 => mix_tile::<F, FMA, 2>(ws, len, j0),
            3 => mix_tile::<F, FMA, 3>(ws, len, j0),
            _ => mix_tile::<F, FMA, 4>(ws, len, j0),
        }
        j0 += J.min(d - j0);
    }
}

/// One tile of [`mix_scores`]: coordinates `j0..j0 + W`.
#[inline(always)]
fn mix_tile<F: Real, const FMA: bool, const W: usize>(
    ws: &mut BlockWorkspace<F>,
    len: usize,
    j0: usize,
) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    for c in (0..len).step_by(CHUNK) {
        let mut acc = [[F::zero(); CHUNK]; W];
        for k in 0..k_n {
            let r = &ws.logits[k * bm + c..k * bm + c + CHUNK];
            for (jj, a) in acc.iter_mut().enumerate() {
                let row = (k * d + j0 + jj) * bm + c;
                let g = &ws.g[row..row + CHUNK];
                for t in 0..CHUNK {
                    a[t] = madd::<F, FMA>(r[t], g[t], a[t]);
                }
            }
        }
        for (jj, a) in acc.iter().enumerate() {
            let row = (j0 + jj) * bm + c;
            ws.s[row..row + CHUNK].copy_from_slice(a);
        }
    }
}

/// Copy the block's score (negated sum), Laplacian and responsibilities to the outputs.
#[inline(always)]
pub(super) fn scatter<F: Real, const AVX2: bool>(
    ws: &BlockWorkspace<F>,
    out: &mut Outputs<'_, F>,
    start: usize,
    b: usize,
) {
    let (k_n, d, bm) = (ws.k, ws.d, ws.bm);
    if let Some(sc) = out.score.as_mut() {
        let mut sb = sc.slice_mut(s![start..start + b, ..]);
        if let Some(so) = sb.as_slice_mut() {
            transpose::scatter_neg::<F, AVX2>(&ws.s, bm, d, b, so);
        } else {
            for (i, mut row) in sb.rows_mut().into_iter().enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = -ws.s[j * bm + i];
                }
            }
        }
    }
    if let Some(l) = out.laplacian.as_mut() {
        for i in 0..b {
            l[start + i] = ws.mx[i];
        }
    }
    if let Some(resp) = out.responsibilities.as_mut() {
        for k in 0..k_n {
            for i in 0..b {
                resp[[start + i, k]] = ws.logits[k * bm + i];
            }
        }
    }
}
