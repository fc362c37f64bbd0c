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

use super::fused::{GroupNormSilu, Im2Col};
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

/// Activations as rows of channels: `x` is `[N·H·W, C]`, pixel-major within a sample (the
/// channels-last layout, flattened), so that a convolution is one matrix product and no
/// reshape node enters the graph.
#[derive(Debug, Clone)]
struct Maps {
    x: Tensor,
    n: usize,
    h: usize,
    w: usize,
}

impl Maps {
    fn with(&self, x: Tensor) -> Self {
        Self { x, ..*self }
    }
}

/// A 2-D convolution as one matrix product: the patch matrix ([`Im2Col`], a single candle
/// operation, with a column of ones for the bias) times `[W | b]ᵀ`. Its parameters are
/// PyTorch's `Conv2d`'s (`weight` `[out, in, k, k]`, `bias` `[out]`, same names). candle
/// 0.11's own CPU `conv2d` forms each output pixel by a dot product and its backward pass
/// runs `conv_transpose2d` as plain loops: 4.7 times slower on this network's layers
/// (docs/performance.md).
#[derive(Debug, Clone)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
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
            stride,
        })
    }

    fn forward(&self, m: &Maps) -> candle_core::Result<Maps> {
        let (cout, cin, k, _) = self.weight.dims4()?;
        let op = Im2Col {
            n: m.n,
            h: m.h,
            w: m.w,
            k,
            stride: self.stride,
        };
        let (oh, ow) = op.out_hw();
        // [W | b]: rows of (kh, kw, c_in) as in the patch matrix, then the bias.
        let wb = Tensor::cat(
            &[
                &self
                    .weight
                    .permute((0, 2, 3, 1))?
                    .reshape((cout, k * k * cin))?,
                &self.bias.reshape((cout, 1))?,
            ],
            1,
        )?;
        let y = m.x.apply_op1(op)?.matmul(&wb.t()?)?;
        Ok(Maps {
            x: y,
            n: m.n,
            h: oh,
            w: ow,
        })
    }
}

/// Group normalisation (Wu & He 2018) followed by SiLU, PyTorch's `GroupNorm` parameters
/// (`weight`, `bias`); computed by the fused operation [`GroupNormSilu`].
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

    /// `silu(gn(x + shift))`, `shift` `[N, C]` (zero if `None`).
    fn silu(&self, m: &Maps, shift: Option<&Tensor>) -> candle_core::Result<Maps> {
        let c = self.weight.dim(0)?;
        let zeros;
        let shift = match shift {
            Some(s) => s,
            None => {
                zeros = Tensor::zeros((m.n, c), m.x.dtype(), m.x.device())?;
                &zeros
            }
        };
        let wb = Tensor::stack(&[&self.weight, &self.bias], 0)?;
        let op = GroupNormSilu {
            groups: self.groups,
            eps: GN_EPS,
        };
        Ok(m.with(m.x.apply_op3(shift, &wb, op)?))
    }

    /// `gn(x)` from candle's tensor operations, `x` `[N, P, C]`: the reference the fused
    /// operation is tested against.
    #[cfg(test)]
    fn composed(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (n, p, c) = x.dims3()?;
        let (g, cg) = (self.groups, c / self.groups);
        let count = (p * cg) as f64;
        let group_mean = |t: &Tensor| -> candle_core::Result<Tensor> {
            (t.sum_keepdim(1)?.reshape((n, g, cg))?.sum_keepdim(2)? / count)?
                .broadcast_as((n, g, cg))?
                .reshape((n, 1, c))
        };
        let xc = x.broadcast_sub(&group_mean(x)?)?;
        let var = group_mean(&xc.sqr()?)?;
        xc.broadcast_div(&(var + GN_EPS)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// Nearest-neighbour 2× up-sampling, as one gather of rows.
fn upsample2(m: &Maps) -> candle_core::Result<Maps> {
    let (h, w) = (m.h, m.w);
    let idx: Vec<u32> = (0..m.n)
        .flat_map(|n| {
            (0..2 * h).flat_map(move |i| {
                (0..2 * w).map(move |j| (n * h * w + (i / 2) * w + j / 2) as u32)
            })
        })
        .collect();
    let len = idx.len();
    let idx = Tensor::from_vec(idx, len, m.x.device())?;
    Ok(Maps {
        x: m.x.index_select(&idx, 0)?,
        n: m.n,
        h: 2 * h,
        w: 2 * w,
    })
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

    /// `emb_act` = SiLU(emb) `[N, E]`.
    fn forward(&self, m: &Maps, emb_act: &Tensor) -> candle_core::Result<Maps> {
        let h = self.conv1.forward(&self.norm1.silu(m, None)?)?;
        // The time shift enters the second normalisation: gn(h + Linear(SiLU(emb))).
        let shift = self.temb.forward(emb_act)?;
        let h = self.conv2.forward(&self.norm2.silu(&h, Some(&shift))?)?;
        let skip = match &self.skip {
            Some(s) => s.forward(m)?.x,
            None => m.x.clone(),
        };
        Ok(h.with((skip + h.x.clone())?))
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
        // Rows of channels throughout: [N·S·S, 1] is the row-major images themselves.
        let x = Maps {
            x: x.reshape((n * s * s, 1))?,
            n,
            h: s,
            w: s,
        };
        let h0 = self.conv_in.forward(&x)?;
        let h1 = self.down_res.forward(&h0, &emb_act)?;
        let h = self.down_conv.forward(&h1)?;
        let h = self.mid_res1.forward(&h, &emb_act)?;
        let h = self.mid_res2.forward(&h, &emb_act)?;
        let h = self.up_conv.forward(&upsample2(&h)?)?;
        let h = h.with(Tensor::cat(&[&h.x, &h1.x], 1)?);
        let h = self.up_res.forward(&h, &emb_act)?;
        let h = self.out_conv.forward(&self.out_norm.silu(&h, None)?)?.x;
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

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .and_then(|d| d.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>())
            .unwrap_or(f64::INFINITY)
    }

    /// The fused group norm + shift + SiLU against the same function from candle's tensor
    /// operations (and candle's autograd for the gradients), in f64.
    #[test]
    fn the_fused_group_norm_silu_matches_the_composed_one() {
        let dev = Device::Cpu;
        let (n, p, c) = (3, 20, 8);
        let x =
            Var::from_tensor(&(Tensor::randn(0f64, 1.5, (n * p, c), &dev).unwrap() + 0.7).unwrap())
                .unwrap();
        let shift = Var::from_tensor(&Tensor::randn(0f64, 1.0, (n, c), &dev).unwrap()).unwrap();
        let varmap = candle_nn::VarMap::new();
        let gn = GroupNorm::new(4, c, VarBuilder::from_varmap(&varmap, DType::F64, &dev)).unwrap();
        // Non-trivial scale and shift.
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let v = Tensor::randn(0f64, 1.0, c, &dev).unwrap();
            var.set(&if name.ends_with("weight") {
                (v + 1.0).unwrap()
            } else {
                v
            })
            .unwrap();
        }
        let r = Tensor::randn(0f64, 1.0, (n * p, c), &dev).unwrap();
        let m = Maps {
            x: x.as_tensor().clone(),
            n,
            h: 4,
            w: 5,
        };
        let fused = gn.silu(&m, Some(shift.as_tensor())).unwrap().x;
        let shifted = x
            .reshape((n, p, c))
            .unwrap()
            .broadcast_add(&shift.reshape((n, 1, c)).unwrap())
            .unwrap();
        let composed = gn
            .composed(&shifted)
            .unwrap()
            .silu()
            .unwrap()
            .reshape((n * p, c))
            .unwrap();
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
        for t in [x.as_tensor(), shift.as_tensor(), &gn.weight, &gn.bias] {
            let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
            assert!(max_diff(a, b) < 1e-10, "{}", max_diff(a, b));
        }
    }

    /// The patch-matrix convolution against candle's own `conv2d` (forward and the gradients
    /// of input, weight and bias), stride 1 and 2, kernels 3 and 1, in f64.
    #[test]
    fn the_patch_matrix_convolution_matches_candles_conv2d() {
        let dev = Device::Cpu;
        for (k, stride, (h, w)) in [
            (3, 1, (5, 4)),
            (3, 2, (6, 6)),
            (3, 2, (5, 7)),
            (1, 1, (3, 3)),
        ] {
            let (n, cin, cout) = (2, 3, 4);
            let varmap = candle_nn::VarMap::new();
            let conv = Conv::new(
                cin,
                cout,
                k,
                stride,
                VarBuilder::from_varmap(&varmap, DType::F64, &dev),
            )
            .unwrap();
            let nchw =
                Var::from_tensor(&Tensor::randn(0f64, 1.0, (n, cin, h, w), &dev).unwrap()).unwrap();
            let rows = nchw
                .permute((0, 2, 3, 1))
                .unwrap()
                .reshape((n * h * w, cin))
                .unwrap();
            let ours = conv.forward(&Maps { x: rows, n, h, w }).unwrap();
            let theirs = nchw
                .conv2d(&conv.weight, k / 2, stride, 1, 1)
                .unwrap()
                .broadcast_add(&conv.bias.reshape((1, cout, 1, 1)).unwrap())
                .unwrap();
            let (oh, ow) = (theirs.dim(2).unwrap(), theirs.dim(3).unwrap());
            assert_eq!((ours.h, ours.w), (oh, ow));
            let theirs_rows = theirs
                .permute((0, 2, 3, 1))
                .unwrap()
                .reshape((n * oh * ow, cout))
                .unwrap();
            assert!(
                max_diff(&ours.x, &theirs_rows) < 1e-12,
                "k {k} stride {stride}"
            );
            let r = Tensor::randn(0f64, 1.0, (n * oh * ow, cout), &dev).unwrap();
            let g1 = (&ours.x * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs_rows * &r)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for t in [nchw.as_tensor(), &conv.weight, &conv.bias] {
                let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
                assert!(
                    max_diff(a, b) < 1e-11,
                    "k {k} stride {stride}: {}",
                    max_diff(a, b)
                );
            }
        }
    }
}
