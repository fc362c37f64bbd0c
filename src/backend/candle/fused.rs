//! Group normalisation followed by SiLU as one candle operation with its own backward pass.
//!
//! `y = silu(z)`, `z = x̂ w_c + b_c`, `x̂ = (x − μ_{n,g}) / √(σ²_{n,g} + ε)` over the pixels and
//! channels of group `g` of sample `n` (Wu & He 2018, eq. 1–3; PyTorch's `GroupNorm`: biased
//! variance, `ε` inside the root), `silu(z) = z σ(z)` (Elfwing et al. 2018). Written with
//! candle's tensor operations this is about twenty graph nodes on full-size activations, and
//! candle's backward pass allocates a zero tensor and adds into it for every node; as one
//! node the forward pass reads `x` twice and writes `y` once, and the backward pass is the
//! closed form
//!
//! ```text
//! g_z = g_y σ(z) (1 + z (1 − σ(z)))        g_w_c = Σ g_z x̂        g_b_c = Σ g_z
//! g_x = (1/√(σ² + ε)) (g_x̂ − mean(g_x̂) − x̂ mean(g_x̂ x̂)),   g_x̂ = g_z w_c
//! ```
//!
//! (means over the group's `M = P · C/G` entries). Activations are channels-last
//! `[N, P, C]`, contiguous; CPU, `f32` or `f64`.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Storage, Tensor};
use num_traits::Float;

/// The fused operation; `groups` divides the channel count.
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
    fn dims(&self, shape: &Shape) -> candle_core::Result<Dims> {
        let (n, p, c) = shape.dims3()?;
        if self.groups == 0 || c % self.groups != 0 {
            candle_core::bail!("group-norm-silu: {} groups for {c} channels", self.groups);
        }
        Ok(Dims {
            n,
            p,
            c,
            g: self.groups,
            cg: c / self.groups,
        })
    }
}

/// Mean and `1/√(var + ε)` of group `g` of sample `n`, accumulated in f64.
fn stats<T: Float>(x: &[T], d: Dims, n: usize, g: usize, eps: f64) -> (f64, f64) {
    let base = n * d.p * d.c + g * d.cg;
    let m = (d.p * d.cg) as f64;
    let mut sum = 0.0;
    for p in 0..d.p {
        for &v in &x[base + p * d.c..base + p * d.c + d.cg] {
            sum += v.to_f64().unwrap_or(f64::NAN);
        }
    }
    let mean = sum / m;
    let mut ss = 0.0;
    for p in 0..d.p {
        for &v in &x[base + p * d.c..base + p * d.c + d.cg] {
            let e = v.to_f64().unwrap_or(f64::NAN) - mean;
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

fn forward<T: Float>(x: &[T], w: &[T], b: &[T], d: Dims, eps: f64) -> Vec<T> {
    let mut y = vec![T::zero(); x.len()];
    for n in 0..d.n {
        for g in 0..d.g {
            let (mean, r) = stats(x, d, n, g, eps);
            let (mean, r) = (cast::<T>(mean), cast::<T>(r));
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let z = (x[row + c] - mean) * r * w[c] + b[c];
                    y[row + c] = z * sigmoid(z);
                }
            }
        }
    }
    y
}

/// `(g_x, g_w, g_b)` from the input, parameters and the output gradient.
fn backward<T: Float>(
    x: &[T],
    w: &[T],
    b: &[T],
    gy: &[T],
    d: Dims,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut gx = vec![T::zero(); x.len()];
    let mut gw = vec![0.0f64; d.c];
    let mut gb = vec![0.0f64; d.c];
    let m = (d.p * d.cg) as f64;
    for n in 0..d.n {
        for g in 0..d.g {
            let (mean, r) = stats(x, d, n, g, eps);
            let (mean_t, r_t) = (cast::<T>(mean), cast::<T>(r));
            // First pass: g_x̂ into gx, and the group sums of g_x̂ and g_x̂ x̂.
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let xhat = (x[row + c] - mean_t) * r_t;
                    let z = xhat * w[c] + b[c];
                    let s = sigmoid(z);
                    let gz = gy[row + c] * s * (T::one() + z * (T::one() - s));
                    let gxhat = gz * w[c];
                    let (gz64, xhat64, gxhat64) = (
                        gz.to_f64().unwrap_or(f64::NAN),
                        xhat.to_f64().unwrap_or(f64::NAN),
                        gxhat.to_f64().unwrap_or(f64::NAN),
                    );
                    gw[c] += gz64 * xhat64;
                    gb[c] += gz64;
                    s1 += gxhat64;
                    s2 += gxhat64 * xhat64;
                    gx[row + c] = gxhat;
                }
            }
            let (a1, a2) = (cast::<T>(s1 / m), cast::<T>(s2 / m));
            for p in 0..d.p {
                let row = n * d.p * d.c + p * d.c;
                for c in g * d.cg..(g + 1) * d.cg {
                    let xhat = (x[row + c] - mean_t) * r_t;
                    gx[row + c] = r_t * (gx[row + c] - a1 - xhat * a2);
                }
            }
        }
    }
    (
        gx,
        gw.into_iter().map(cast).collect(),
        gb.into_iter().map(cast).collect(),
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
        let d = self.dims(l1.shape())?;
        if l2.shape().dims() != [d.c] || l3.shape().dims() != [d.c] {
            candle_core::bail!("group-norm-silu: weight and bias must be [{}]", d.c);
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (x, w, b) = (contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?);
                CpuStorage::F32(forward(x, w, b, d, self.eps))
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let (x, w, b) = (contiguous(x, l1)?, contiguous(w, l2)?, contiguous(b, l3)?);
                CpuStorage::F64(forward(x, w, b, d, self.eps))
            }
            _ => candle_core::bail!("group-norm-silu: f32 or f64 tensors of one type only"),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.shape())?;
        let (x, w, b, grad) = (
            x.contiguous()?,
            w.contiguous()?,
            b.contiguous()?,
            grad.contiguous()?,
        );
        let (xs, xl) = x.storage_and_layout();
        let (ws, wl) = w.storage_and_layout();
        let (bs, bl) = b.storage_and_layout();
        let (gs, gl) = grad.storage_and_layout();
        let dev = x.device();
        macro_rules! run {
            ($variant:ident) => {{
                let (
                    Storage::Cpu(CpuStorage::$variant(xv)),
                    Storage::Cpu(CpuStorage::$variant(wv)),
                    Storage::Cpu(CpuStorage::$variant(bv)),
                    Storage::Cpu(CpuStorage::$variant(gv)),
                ) = (&*xs, &*ws, &*bs, &*gs)
                else {
                    candle_core::bail!("group-norm-silu: CPU tensors of one float type only");
                };
                let (gx, gw, gb) = backward(
                    contiguous(xv, xl)?,
                    contiguous(wv, wl)?,
                    contiguous(bv, bl)?,
                    contiguous(gv, gl)?,
                    d,
                    self.eps,
                );
                (
                    Tensor::from_vec(gx, x.shape(), dev)?,
                    Tensor::from_vec(gw, d.c, dev)?,
                    Tensor::from_vec(gb, d.c, dev)?,
                )
            }};
        }
        let (gx, gw, gb) = match x.dtype() {
            candle_core::DType::F32 => run!(F32),
            candle_core::DType::F64 => run!(F64),
            other => candle_core::bail!("group-norm-silu: {other:?} is not supported"),
        };
        Ok((Some(gx), Some(gw), Some(gb)))
    }
}
