//! A small convolutional U-Net for square single-channel images (e.g. the 8×8 digits), in
//! the style of the DDPM network (Ho et al. 2020, App. B; Ronneberger et al. 2015): residual
//! blocks with group normalisation, SiLU and a per-channel time-embedding shift, one 2×
//! down-sampling, a two-block middle, nearest up-sampling and a skip connection.
//!
//! ```text
//! t ─ Fourier features ─ Linear ─ SiLU ─ Linear ─────────────── emb (to every block)
//! x [N, S²] → [N, 1, S, S] ─ conv_in 3×3 (1→C) ─ down.res (C) ─┬─ down.conv 3×3/2 (C→2C)
//!   ─ mid.res1 (2C) ─ mid.res2 (2C) ─ ×2 nearest ─ up.conv 3×3 (2C→C) ─ cat ─┘
//!   ─ up.res (2C→C) ─ out.norm ─ SiLU ─ out.conv 3×3 (C→1) → [N, S²]
//! res(x) = skip(x) + conv2(SiLU(GN2(conv1(SiLU(GN1(x))) + Linear(SiLU(emb))))))
//! ```
//!
//! `scripts/torch_digits.py` builds the same network in PyTorch (same parameter names and
//! shapes); `tests/candle_digits.rs` checks the two agree on a fixture.

use super::fused::GroupNormSilu;
use super::{TimeModule, candle_err, fourier_frequencies, time_features};
use crate::error::{Error, Result};
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{Init, Linear, VarBuilder};

/// Sizes of [`TimeUnet`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct UnetConfig {
    /// Channels `C` at full resolution (`2C` at half resolution; default 32).
    pub channels: usize,
    /// Width of the time embedding (default 128).
    pub embedding: usize,
    /// Groups of every group normalisation (default 8; must divide `C`).
    pub groups: usize,
    /// Number of Fourier frequencies of the time features (default 8).
    pub frequencies: usize,
    /// The highest frequency in cycles per unit time (default 16).
    pub max_frequency: f64,
}

impl Default for UnetConfig {
    fn default() -> Self {
        Self {
            channels: 32,
            embedding: 128,
            groups: 8,
            frequencies: 8,
            max_frequency: 16.0,
        }
    }
}

impl UnetConfig {
    /// Set the base channel count `C`.
    pub fn channels(mut self, c: usize) -> Self {
        self.channels = c;
        self
    }
    /// Set the embedding width.
    pub fn embedding(mut self, e: usize) -> Self {
        self.embedding = e;
        self
    }
    /// Set the number of normalisation groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
}

/// The group-norm epsilon (PyTorch's default).
const GN_EPS: f64 = 1e-5;

// Broadcasts as matrix products. candle 0.11 differentiates a broadcast by summing the
// gradient over the broadcast axes, and its CPU sum over a non-innermost axis is a strided
// loop: summing a [8192, 32] gradient over its rows took 37 times as long as the same sum
// as a product with a vector of ones (docs/performance.md). Written as products with
// ones, the broadcasts' backward passes are GEMMs too.

/// `[M, C]`, every row `v` (`[C]`): the outer product `1_M vᵀ`.
fn rows_of(v: &Tensor, m: usize) -> candle_core::Result<Tensor> {
    let c = v.dim(0)?;
    Tensor::ones((m, 1), v.dtype(), v.device())?.matmul(&v.reshape((1, c))?)
}

/// `[N, P, C]` from per-sample values `[N, 1, C]`: `1_P vₙᵀ` for every sample.
fn per_pixel(v: &Tensor, pixels: usize) -> candle_core::Result<Tensor> {
    let n = v.dim(0)?;
    Tensor::ones((n, pixels, 1), v.dtype(), v.device())?.matmul(v)
}

/// `[N, 1, C]`: the sums over the `P` pixels of `x` `[N, P, C]`, `1_Pᵀ xₙ` per sample.
#[cfg(test)]
fn pixel_sum(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, p, _) = x.dims3()?;
    Tensor::ones((n, 1, p), x.dtype(), x.device())?.matmul(x)
}

/// A 2-D convolution computed as one matrix product (im2col; Chellapilla et al. 2006) on
/// channels-last `[N, H, W, C]` activations. Its parameters are PyTorch's `Conv2d`'s
/// (`weight` `[out, in, k, k]`, `bias` `[out]`, same names). candle 0.11's own CPU
/// `conv2d` forms each output pixel by a dot product and its backward pass runs
/// `conv_transpose2d` as plain loops: on this network they took most of a training step
/// (docs/performance.md); the product form sends the work to the GEMM kernel, forward and
/// backward, and the patch matrix is one `index_select` (backward: one `index_add`).
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    k: usize,
    stride: usize,
    pad: usize,
}

impl Conv {
    fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let bound = 1.0 / ((cin * k * k) as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Ok(Self {
            weight: vb.get_with_hints((cout, cin, k, k), "weight", init)?,
            bias: vb.get_with_hints(cout, "bias", init)?,
            k,
            stride,
            pad: k / 2,
        })
    }

    /// `x` `[N, H, W, C_in]` → `[N, H', W', C_out]`.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let (k, s, p) = (self.k, self.stride, self.pad);
        let cout = self.weight.dim(0)?;
        if h + 2 * p < k || w + 2 * p < k {
            candle_core::bail!("Conv: {h}x{w} input is smaller than the {k}x{k} kernel");
        }
        let (oh, ow) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let cols = if k == 1 && s == 1 {
            x.reshape((n * h * w, c))?
        } else {
            // One gather builds the patch matrix: row (i, j) of the output image holds the
            // k·k input pixels its window covers, u32::MAX (a zero row for index_select, and
            // skipped by the index_add of its backward pass) where the window leaves the
            // image, i.e. the zero padding.
            let mut idx = Vec::with_capacity(oh * ow * k * k);
            for i in 0..oh {
                for j in 0..ow {
                    for di in 0..k {
                        for dj in 0..k {
                            let r = (i * s + di).checked_sub(p).filter(|&r| r < h);
                            let q = (j * s + dj).checked_sub(p).filter(|&q| q < w);
                            idx.push(match (r, q) {
                                (Some(r), Some(q)) => (r * w + q) as u32,
                                _ => u32::MAX,
                            });
                        }
                    }
                }
            }
            let idx = Tensor::from_vec(idx, oh * ow * k * k, x.device())?;
            x.reshape((n, h * w, c))?
                .index_select(&idx, 1)?
                .reshape((n * oh * ow, k * k * c))?
        };
        // Rows of (kh, kw, c_in) against the weight in the same order.
        let wmat = self
            .weight
            .permute((0, 2, 3, 1))?
            .reshape((cout, k * k * c))?;
        let m = n * oh * ow;
        (cols.matmul(&wmat.t()?)? + rows_of(&self.bias, m)?)?.reshape((n, oh, ow, cout))
    }
}

/// Group normalisation (Wu & He 2018) of channels-last activations; PyTorch's `GroupNorm`
/// (biased variance, `ε` inside the root, per-channel `weight` and `bias`).
#[derive(Debug, Clone)]
struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
}

impl GroupNorm {
    fn new(groups: usize, channels: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        if groups == 0 || channels % groups != 0 {
            candle_core::bail!("GroupNorm: {groups} groups do not divide {channels} channels");
        }
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
        })
    }

    /// `[N, 1, C]` per-channel sums → `[N, 1, C]` means of each channel's group.
    #[cfg(test)]
    fn group_mean(&self, sums: &Tensor, count: f64) -> candle_core::Result<Tensor> {
        let (n, _, c) = sums.dims3()?;
        let (g, cg) = (self.groups, c / self.groups);
        (sums.reshape((n, g, cg))?.sum_keepdim(2)? / count)?
            .broadcast_as((n, g, cg))?
            .reshape((n, 1, c))
    }

    /// `silu(gn(x))` by the fused operation of `fused.rs` (one graph node).
    fn forward_silu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let op = GroupNormSilu {
            groups: self.groups,
            eps: GN_EPS,
        };
        x.reshape((n, h * w, c))?
            .apply_op3(&self.weight, &self.bias, op)?
            .reshape((n, h, w, c))
    }

    /// `gn(x)` from candle's tensor operations: the reference the fused operation is tested
    /// against.
    #[cfg(test)]
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, h, w, c) = x.dims4()?;
        let p = h * w;
        let count = (p * (c / self.groups)) as f64;
        let x3 = x.reshape((n, p, c))?;
        let mean = self.group_mean(&pixel_sum(&x3)?, count)?;
        let xc = (x3 - per_pixel(&mean, p)?)?;
        let var = self.group_mean(&pixel_sum(&xc.sqr()?)?, count)?;
        // y = (x − μ) · w/√(σ² + ε) + b, the per-sample, per-channel factor formed small.
        let scale = (var + GN_EPS)?
            .sqrt()?
            .recip()?
            .broadcast_mul(&self.weight)?;
        let shift = rows_of(&self.bias, n)?.reshape((n, 1, c))?;
        ((xc * per_pixel(&scale, p)?)? + per_pixel(&shift, p)?)?.reshape((n, h, w, c))
    }
}

/// Nearest-neighbour 2× up-sampling of `[N, H, W, C]`, as a gather.
fn upsample2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, h, w, c) = x.dims4()?;
    let idx: Vec<u32> = (0..2 * h)
        .flat_map(|i| (0..2 * w).map(move |j| ((i / 2) * w + j / 2) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, 4 * h * w, x.device())?;
    x.reshape((n, h * w, c))?
        .index_select(&idx, 1)?
        .reshape((n, 2 * h, 2 * w, c))
}

/// A residual block with a time-embedding shift.
#[derive(Debug, Clone)]
struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv,
    temb: Linear,
    norm2: GroupNorm,
    conv2: Conv,
    skip: Option<Conv>,
}

impl ResBlock {
    fn new(cin: usize, cout: usize, cfg: &UnetConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let skip = if cin == cout {
            None
        } else {
            Some(Conv::new(cin, cout, 1, 1, vb.pp("skip"))?)
        };
        Ok(Self {
            norm1: GroupNorm::new(cfg.groups, cin, vb.pp("norm1"))?,
            conv1: Conv::new(cin, cout, 3, 1, vb.pp("conv1"))?,
            temb: candle_nn::linear(cfg.embedding, cout, vb.pp("temb"))?,
            norm2: GroupNorm::new(cfg.groups, cout, vb.pp("norm2"))?,
            conv2: Conv::new(cout, cout, 3, 1, vb.pp("conv2"))?,
            skip,
        })
    }

    /// `x` `[N, H, W, cin]`, `emb_act` = SiLU(emb) `[N, E]`.
    fn forward(&self, x: &Tensor, emb_act: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward_silu(x)?)?;
        let (n, hh, ww, c) = h.dims4()?;
        let shift = self.temb.forward(emb_act)?.reshape((n, 1, c))?;
        let h =
            (h.reshape((n, hh * ww, c))? + per_pixel(&shift, hh * ww)?)?.reshape((n, hh, ww, c))?;
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        match &self.skip {
            Some(s) => s.forward(x)? + h,
            None => x + h,
        }
    }
}

/// The U-Net of the module docs as a [`TimeModule`]: `x` `[N, S²]`, `t` `[N, 1]`, output
/// `[N, S²]` (a noise prediction when wrapped in
/// [`Parameterized::noise`](crate::score::Parameterized::noise)).
#[derive(Debug, Clone)]
pub struct TimeUnet {
    side: usize,
    omega: Tensor,
    temb0: Linear,
    temb1: Linear,
    conv_in: Conv,
    down_res: ResBlock,
    down_conv: Conv,
    mid_res1: ResBlock,
    mid_res2: ResBlock,
    up_conv: Conv,
    up_res: ResBlock,
    out_norm: GroupNorm,
    out_conv: Conv,
    dtype: DType,
    device: Device,
}

impl TimeUnet {
    /// A fresh U-Net for images of `side × side` pixels (`side` even, at least 2), its
    /// parameters created by `vb`.
    pub fn new(side: usize, config: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        if side < 2 || side % 2 != 0 {
            return Err(Error::param(
                "side",
                side as f64,
                "must be even and at least 2 (one 2x down-sampling)",
            ));
        }
        let c = config.channels;
        if c == 0 || config.embedding == 0 || config.groups == 0 || c % config.groups != 0 {
            return Err(Error::param(
                "channels/groups",
                c as f64,
                "channels, embedding and groups must be at least 1 and groups must divide channels",
            ));
        }
        let (dtype, device) = (vb.dtype(), vb.device().clone());
        let omega = fourier_frequencies(config.frequencies, config.max_frequency, dtype, &device)?;
        let features = 2 * config.frequencies + 1;
        let e = config.embedding;
        let build = || -> candle_core::Result<Self> {
            Ok(Self {
                side,
                omega: omega.clone(),
                temb0: candle_nn::linear(features, e, vb.pp("temb.0"))?,
                temb1: candle_nn::linear(e, e, vb.pp("temb.1"))?,
                conv_in: Conv::new(1, c, 3, 1, vb.pp("conv_in"))?,
                down_res: ResBlock::new(c, c, config, vb.pp("down.res"))?,
                down_conv: Conv::new(c, 2 * c, 3, 2, vb.pp("down.conv"))?,
                mid_res1: ResBlock::new(2 * c, 2 * c, config, vb.pp("mid.res1"))?,
                mid_res2: ResBlock::new(2 * c, 2 * c, config, vb.pp("mid.res2"))?,
                up_conv: Conv::new(2 * c, c, 3, 1, vb.pp("up.conv"))?,
                up_res: ResBlock::new(2 * c, c, config, vb.pp("up.res"))?,
                out_norm: GroupNorm::new(config.groups, c, vb.pp("out.norm"))?,
                out_conv: Conv::new(c, 1, 3, 1, vb.pp("out.conv"))?,
                dtype,
                device: device.clone(),
            })
        };
        build().map_err(candle_err)
    }

    /// The image side `S`.
    pub fn side(&self) -> usize {
        self.side
    }
}

impl TimeModule for TimeUnet {
    fn forward_t(&self, x: &Tensor, t: &Tensor) -> candle_core::Result<Tensor> {
        let (n, d) = x.dims2()?;
        let s = self.side;
        if d != s * s {
            candle_core::bail!("TimeUnet: {d} input columns for {s}x{s} images");
        }
        let emb = self.temb1.forward(
            &self
                .temb0
                .forward(&time_features(t, &self.omega)?)?
                .silu()?,
        )?;
        let emb_act = emb.silu()?;
        // Channels last throughout: [N, S, S, 1] is the row-major image itself.
        let x = x.reshape((n, s, s, 1))?;
        let h0 = self.conv_in.forward(&x)?;
        let h1 = self.down_res.forward(&h0, &emb_act)?;
        let h = self.down_conv.forward(&h1)?;
        let h = self.mid_res1.forward(&h, &emb_act)?;
        let h = self.mid_res2.forward(&h, &emb_act)?;
        let h = self.up_conv.forward(&upsample2(&h)?)?;
        let h = self
            .up_res
            .forward(&Tensor::cat(&[&h, &h1], 3)?, &emb_act)?;
        let h = self.out_conv.forward(&self.out_norm.forward_silu(&h)?)?;
        h.reshape((n, d))
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
    fn device(&self) -> &Device {
        &self.device
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused group norm + SiLU against the same function from candle's tensor operations
    /// (and candle's autograd for the gradients), in f64.
    #[test]
    fn the_fused_group_norm_silu_matches_the_composed_one() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(
            &(Tensor::randn(0f64, 1.5, (3, 4, 5, 8), &dev).unwrap() + 0.7).unwrap(),
        )
        .unwrap();
        let varmap = candle_nn::VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F64, &dev);
        let gn = GroupNorm::new(4, 8, vb).unwrap();
        // Non-trivial scale and shift.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let v = Tensor::randn(0f64, 1.0, 8, &dev).unwrap();
            var.set(&if name.ends_with("weight") {
                (v + 1.0).unwrap()
            } else {
                v
            })
            .unwrap();
        }
        let r = Tensor::randn(0f64, 1.0, (3, 4, 5, 8), &dev).unwrap();
        let fused = gn.forward_silu(&x).unwrap();
        let composed = gn.forward(&x).unwrap().silu().unwrap();
        let max_diff = |a: &Tensor, b: &Tensor| -> f64 {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        // Both are f64 evaluations of one formula in a different order: rounding only.
        assert!(max_diff(&fused, &composed) < 1e-12);
        let g1 = (&fused * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (&composed * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for t in [x.as_tensor(), &gn.weight, &gn.bias] {
            let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
            assert!(max_diff(a, b) < 1e-10, "{}", max_diff(a, b));
        }
    }
}
