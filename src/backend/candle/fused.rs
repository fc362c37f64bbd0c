//! Two operations of the U-Net as single candle operations with their own backward passes:
//! group normalisation + SiLU ([`GroupNormSilu`]) and the patch matrix of a convolution
//! ([`Im2Col`]). Written with candle's tensor operations each is several graph nodes on
//! full-size activations, and candle's backward pass allocates a zero tensor and adds into it
//! for every node (a third of a training step, docs/performance.md).
//!
//! **Group norm + SiLU.** `y = silu(z)`, `z = x̂ w_c + b_c`, `x̂ = (x' − μ_{n,g}) / √(σ²_{n,g} + ε)`
//! with `x' = x + s_{n,c}` (an optional per-sample, per-channel shift: the U-Net's time
//! embedding) and the statistics over the pixels and
//! channels of group `g` of sample `n` (Wu & He 2018, eq. 1–3; PyTorch's `GroupNorm`: biased
//! variance, `ε` inside the root), `silu(z) = z σ(z)` (Elfwing et al. 2018). The forward pass
//! reads `x` twice and writes `y` once; the backward pass is the closed form
//!
//! ```text
//! g_z = g_y σ(z) (1 + z (1 − σ(z)))        g_w_c = Σ g_z x̂        g_b_c = Σ g_z
//! g_x = (1/√(σ² + ε)) (g_x̂ − mean(g_x̂) − x̂ mean(g_x̂ x̂)),   g_x̂ = g_z w_c
//! ```
//!
//! (means over the group's `M = P · C/G` entries), `g_s = Σ_p g_x`. Activations are rows of
//! channels, `[N·P, C]` (pixel-major within a sample), contiguous; CPU, `f32` or `f64`.
//!
//! **Patch matrix.** For a `k × k` convolution with stride `s` and zero padding `k/2`, row
//! `(n, i, j)` of the output holds the `k·k` input pixels of its window (channels innermost,
//! zeros outside the image) and a final 1 that multiplies the bias (Chellapilla et al. 2006):
//! the convolution is then one matrix product. Its backward pass adds each row back onto the
//! pixels it came from.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Storage, Tensor};
use num_traits::Float;

/// Group norm + SiLU of `x` `[N·P, C]` with shift `[N, C]` and `[weight; bias]` `[2, C]`;
/// `groups` divides `C`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupNormSilu {
    pub(super) groups: usize,
    pub(super) eps: f64,
}

fn contiguous<'a, T>(data: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("group-norm-silu: the input must be contiguous"),
    }
}

/// Sizes of one call: samples, pixels, channels, groups, channels per group.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    p: usize,
    c: usize,
    g: usize,
    cg: usize,
}

impl GroupNormSilu {
    fn dims(&self, x: &Shape, shift: &Shape, wb: &Shape) -> candle_core::Result<Dims> {
        let (rows, c) = x.dims2()?;
        let (n, cs) = shift.dims2()?;
        if self.groups == 0 || c % self.groups != 0 || cs != c || n == 0 || rows % n != 0 {
            candle_core::bail!(
                "group-norm-silu: x {x:?}, shift {shift:?} and {} groups do not fit",
                self.groups
            );
        }
        if wb.dims() != [2, c] {
            candle_core::bail!("group-norm-silu: [weight; bias] must be [2, {c}], got {wb:?}");
        }
        let p = rows / n;
        Ok(Dims {
            n,
            p,
            c,
            g: self.groups,
            cg: c / self.groups,
        })
    }
}

/// Mean and `1/√(var + ε)` of group `g` of sample `n` of `x + shift`, accumulated in f64.
fn stats<T: Float>(x: &[T], shift: &[T], d: Dims, n: usize, g: usize, eps: f64) -> (f64, f64) {
    let base = n * d.p * d.c + g * d.cg;
    let sh = &shift[n * d.c + g * d.cg..n * d.c + (g + 1) * d.cg];
    let m = (d.p * d.cg) as f64;
    let f = |v: T| v.to_f64().unwrap_or(f64::NAN);
    let mut sum = 0.0;
    for p in 0..d.p {
        for (&v, &s) in x[base + p * d.c..base + p * d.c + d.cg].iter().zip(sh) {
            sum += f(v + s);
        }
    }
    let mean = sum / m;
    let mut ss = 0.0;
    for p in 0..d.p {
        for (&v, &s) in x[base + p * d.c..base + p * d.c + d.cg].iter().zip(sh) {
            let e = f(v + s) - mean;
            ss += e * e;
        }
    }
    (mean, 1.0 / (ss / m + eps).sqrt())
}

fn cast<T: Float>(v: f64) -> T {
    T::from(v).unwrap_or_else(T::nan)
}

fn sigmoid<T: Float>(z: T) -> T {
    T::one() / (T::one() + (-z).exp())
}

fn forward<T: Float>(x: &[T], shift: &[T], wb: &[T], d: Dims, eps: f64) -> Vec<T> {
    let (w, b) = wb.split_at(d.c);
    let mut y = vec![T::zero(); x.len()];
    for n in 0..d.n {
        let sh = &shift[n * d.c..(n + 1) * d.c];
        for g in 0..d.g {
            let (mean, r) = stats(x, shift, d, n, g, eps);
            let (mean, r) = (cast::<T>(mean), cast::<T>(r));
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let z = (x[row + c] + sh[c] - mean) * r * w[c] + b[c];
                    y[row + c] = z * sigmoid(z);
                }
            }
        }
    }
    y
}

/// `(g_x, g_shift, g_[w; b])` from the inputs and the output gradient.
fn backward<T: Float>(
    x: &[T],
    shift: &[T],
    wb: &[T],
    gy: &[T],
    d: Dims,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (w, b) = wb.split_at(d.c);
    let mut gx = vec![T::zero(); x.len()];
    let mut gs = vec![0.0f64; d.n * d.c];
    // [g_w; g_b]
    let mut gwb = vec![0.0f64; 2 * d.c];
    let m = (d.p * d.cg) as f64;
    for n in 0..d.n {
        let sh = &shift[n * d.c..(n + 1) * d.c];
        for g in 0..d.g {
            let (mean, r) = stats(x, shift, d, n, g, eps);
            let (mean_t, r_t) = (cast::<T>(mean), cast::<T>(r));
            // First pass: g_x̂ into gx, and the group sums of g_x̂ and g_x̂ x̂.
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let xhat = (x[row + c] + sh[c] - mean_t) * r_t;
                    let z = xhat * w[c] + b[c];
                    let s = sigmoid(z);
                    let gz = gy[row + c] * s * (T::one() + z * (T::one() - s));
                    let gxhat = gz * w[c];
                    let (gz64, xhat64, gxhat64) = (
                        gz.to_f64().unwrap_or(f64::NAN),
                        xhat.to_f64().unwrap_or(f64::NAN),
                        gxhat.to_f64().unwrap_or(f64::NAN),
                    );
                    gwb[c] += gz64 * xhat64;
                    gwb[d.c + c] += gz64;
                    s1 += gxhat64;
                    s2 += gxhat64 * xhat64;
                    gx[row + c] = gxhat;
                }
            }
            let (a1, a2) = (cast::<T>(s1 / m), cast::<T>(s2 / m));
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let xhat = (x[row + c] + sh[c] - mean_t) * r_t;
                    let v = r_t * (gx[row + c] - a1 - xhat * a2);
                    gx[row + c] = v;
                    gs[n * d.c + c] += v.to_f64().unwrap_or(f64::NAN);
                }
            }
        }
    }
    (
        gx,
        gs.into_iter().map(cast).collect(),
        gwb.into_iter().map(cast).collect(),
    )
}

impl CustomOp3 for GroupNormSilu {
    fn name(&self) -> &'static str {
        "group-norm-silu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.dims(l1.shape(), l2.shape(), l3.shape())?;
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(s), CpuStorage::F32(wb)) => {
                let (x, s, wb) = (contiguous(x, l1)?, contiguous(s, l2)?, contiguous(wb, l3)?);
                CpuStorage::F32(forward(x, s, wb, d, self.eps))
            }
            (CpuStorage::F64(x), CpuStorage::F64(s), CpuStorage::F64(wb)) => {
                let (x, s, wb) = (contiguous(x, l1)?, contiguous(s, l2)?, contiguous(wb, l3)?);
                CpuStorage::F64(forward(x, s, wb, d, self.eps))
            }
            _ => candle_core::bail!("group-norm-silu: f32 or f64 tensors of one type only"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        shift: &Tensor,
        wb: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.shape(), shift.shape(), wb.shape())?;
        let (x, shift, wb, grad) = (
            x.contiguous()?,
            shift.contiguous()?,
            wb.contiguous()?,
            grad.contiguous()?,
        );
        let (xs, xl) = x.storage_and_layout();
        let (ss, sl) = shift.storage_and_layout();
        let (ws, wl) = wb.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let dev = x.device();
        macro_rules! run {
            ($variant:ident) => {{
                let (
                    Storage::Cpu(CpuStorage::$variant(xv)),
                    Storage::Cpu(CpuStorage::$variant(sv)),
                    Storage::Cpu(CpuStorage::$variant(wv)),
                    Storage::Cpu(CpuStorage::$variant(gv)),
                ) = (&*xs, &*ss, &*ws, &*gs)
                else {
                    candle_core::bail!("group-norm-silu: CPU tensors of one float type only");
                };
                let (gx, gsh, gwb) = backward(
                    contiguous(xv, xl)?,
                    contiguous(sv, sl)?,
                    contiguous(wv, wl)?,
                    contiguous(gv, gl)?,
                    d,
                    self.eps,
                );
                (
                    Tensor::from_vec(gx, x.shape(), dev)?,
                    Tensor::from_vec(gsh, (d.n, d.c), dev)?,
                    Tensor::from_vec(gwb, (2, d.c), dev)?,
                )
            }};
        }
        let (gx, gsh, gwb) = match x.dtype() {
            candle_core::DType::F32 => run!(F32),
            candle_core::DType::F64 => run!(F64),
            other => candle_core::bail!("group-norm-silu: {other:?} is not supported"),
        };
        Ok((Some(gx), Some(gsh), Some(gwb)))
    }
}

/// The patch matrix of a `k × k` convolution (stride `stride`, padding `k/2`) of `x`
/// `[N·H·W, C]`: `[N·H'·W', k·k·C + 1]`, the last column ones (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(super) struct Im2Col {
    pub(super) n: usize,
    pub(super) h: usize,
    pub(super) w: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
}

impl Im2Col {
    /// Output height and width.
    pub(super) fn out_hw(&self) -> (usize, usize) {
        let p = self.k / 2;
        (
            (self.h + 2 * p - self.k) / self.stride + 1,
            (self.w + 2 * p - self.k) / self.stride + 1,
        )
    }

    /// For every output pixel and window position, the input pixel (within a sample) or
    /// `None` in the padding.
    fn sources(&self) -> Vec<Option<usize>> {
        let (k, s, p) = (self.k, self.stride, self.k / 2);
        let (oh, ow) = self.out_hw();
        let mut idx = Vec::with_capacity(oh * ow * k * k);
        for i in 0..oh {
            for j in 0..ow {
                for di in 0..k {
                    for dj in 0..k {
                        let r = (i * s + di).checked_sub(p).filter(|&r| r < self.h);
                        let q = (j * s + dj).checked_sub(p).filter(|&q| q < self.w);
                        idx.push(r.zip(q).map(|(r, q)| r * self.w + q));
                    }
                }
            }
        }
        idx
    }

    fn check(&self, shape: &Shape) -> candle_core::Result<usize> {
        let (rows, c) = shape.dims2()?;
        let p = self.k / 2;
        if rows != self.n * self.h * self.w
            || self.stride == 0
            || self.h + 2 * p < self.k
            || self.w + 2 * p < self.k
        {
            candle_core::bail!("im2col: input {shape:?} does not fit {self:?}");
        }
        Ok(c)
    }

    fn gather<T: Float>(&self, x: &[T], c: usize) -> Vec<T> {
        let (oh, ow) = self.out_hw();
        let kk = self.k * self.k;
        let width = kk * c + 1;
        let src = self.sources();
        let mut out = vec![T::zero(); self.n * oh * ow * width];
        for n in 0..self.n {
            let xs = &x[n * self.h * self.w * c..(n + 1) * self.h * self.w * c];
            for o in 0..oh * ow {
                let row = &mut out[(n * oh * ow + o) * width..(n * oh * ow + o + 1) * width];
                for (t, s) in src[o * kk..(o + 1) * kk].iter().enumerate() {
                    if let Some(s) = s {
                        row[t * c..(t + 1) * c].copy_from_slice(&xs[s * c..(s + 1) * c]);
                    }
                }
                row[kk * c] = T::one();
            }
        }
        out
    }

    fn scatter<T: Float>(&self, g: &[T], c: usize) -> Vec<T> {
        let (oh, ow) = self.out_hw();
        let kk = self.k * self.k;
        let width = kk * c + 1;
        let src = self.sources();
        let mut gx = vec![T::zero(); self.n * self.h * self.w * c];
        for n in 0..self.n {
            let gxs = &mut gx[n * self.h * self.w * c..(n + 1) * self.h * self.w * c];
            for o in 0..oh * ow {
                let row = &g[(n * oh * ow + o) * width..(n * oh * ow + o + 1) * width];
                for (t, s) in src[o * kk..(o + 1) * kk].iter().enumerate() {
                    if let Some(s) = s {
                        for (a, &b) in gxs[s * c..(s + 1) * c]
                            .iter_mut()
                            .zip(&row[t * c..(t + 1) * c])
                        {
                            *a = *a + b;
                        }
                    }
                }
            }
        }
        gx
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let c = self.check(l.shape())?;
        let (oh, ow) = self.out_hw();
        let shape = Shape::from((self.n * oh * ow, self.k * self.k * c + 1));
        let out = match s {
            CpuStorage::F32(x) => CpuStorage::F32(self.gather(contiguous(x, l)?, c)),
            CpuStorage::F64(x) => CpuStorage::F64(self.gather(contiguous(x, l)?, c)),
            _ => candle_core::bail!("im2col: f32 or f64 only"),
        };
        Ok((out, shape))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let c = self.check(x.shape())?;
        let grad = grad.contiguous()?;
        let (gs, gl) = grad.storage_and_layout();
        let gx = match &*gs {
            Storage::Cpu(CpuStorage::F32(g)) => {
                Tensor::from_vec(self.scatter(contiguous(g, gl)?, c), x.shape(), x.device())?
            }
            Storage::Cpu(CpuStorage::F64(g)) => {
                Tensor::from_vec(self.scatter(contiguous(g, gl)?, c), x.shape(), x.device())?
            }
            _ => candle_core::bail!("im2col: CPU f32 or f64 only"),
        };
        Ok(Some(gx))
    }
}
