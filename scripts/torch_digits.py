#!/usr/bin/env python3
"""The digits networks of score-sde's candle backend, in PyTorch: the same layers, sizes,
parameter names and initialisation scheme, trained and sampled the same way, for
`scripts/bench_digits_vs_torch.py` (the race) and for the test fixture of
`tests/candle_digits.rs`.

    python scripts/torch_digits.py train  --net unet --batch 128 --steps 200 --threads 1
    python scripts/torch_digits.py sample --net unet --n 256 --steps 20 --threads 1
    python scripts/torch_digits.py gemm   --batch 128 --steps 20 --threads 1
    python scripts/torch_digits.py check  target/digits-bench/init_unet.safetensors
    python scripts/torch_digits.py fixture tests/fixtures/digits_nets.safetensors

`train` and `sample` print one JSON line (wall time, rate, CPU seconds, cores other processes
kept busy), after an untimed warm-up. What is matched (see src/backend/candle/unet.rs and
src/backend/candle.rs for our side):

* TimeMlp: [x, t, sin(2 pi f_k t), cos(2 pi f_k t)] (8 frequencies geometric 1/4..16) ->
  3 x (Linear, SiLU) of width 256 -> Linear to 64.
* TimeUnet (C = 32, embedding 128, 8 groups): see the diagram in unet.rs.
* Initialisation: PyTorch's defaults (U(+-1/sqrt(fan_in)) for linear and conv weights and
  biases, GroupNorm 1/0) -- the scheme `init_seeded` reproduces in Rust.
* Training step: batch rows drawn with replacement from 16 dequantisations of 1,437 digits,
  t ~ U[1e-3, 1], x_t = alpha x_0 + sigma eps on the VP SDE (beta 0.1..20), loss
  mean_i ||eps_hat - eps||^2, AdamW (lr 2e-3 cosine-decayed, betas 0.9/0.999, eps 1e-8,
  no weight decay), then the EMA update (decay 0.999 with warm-up).
* Sampling: DPM-Solver++ 2M (Lu et al. 2022b) in data prediction on the continuous VP SDE,
  log-SNR-uniform grid from T = 1 to 1e-3, lower-order final step: NFE = steps, as
  score-sde's `DpmSolverPp::new(sde, TimeGrid::log_snr(..)).order(2)`.
"""
import argparse
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BETA_MIN, BETA_MAX, T_MIN = 0.1, 20.0, 1e-3


# ------------------------------------------------------------------ networks

def fourier_omega(k=8, max_frequency=16.0):
    fr = [i / (k - 1) if k > 1 else 0.0 for i in range(k)]
    # float64 like ours; `build` rounds it to the network's dtype.
    return torch.tensor([2 * math.pi * 0.25 * (4 * max_frequency) ** f for f in fr], dtype=torch.float64).view(1, k)


def time_features(t, omega):
    phase = t * omega
    return torch.cat([t, torch.sin(phase), torch.cos(phase)], 1)


class TimeMlp(nn.Module):
    def __init__(self, dim=64, hidden=256, layers=3, frequencies=8, max_frequency=16.0):
        super().__init__()
        self.register_buffer("omega", fourier_omega(frequencies, max_frequency), persistent=False)
        width = dim + 2 * frequencies + 1
        self.n_hidden = layers
        for i in range(layers):
            setattr(self, f"hidden{i}", nn.Linear(width, hidden))
            width = hidden
        self.out = nn.Linear(width, dim)

    def forward(self, x, t):
        h = torch.cat([x, time_features(t, self.omega)], 1)
        for i in range(self.n_hidden):
            h = F.silu(getattr(self, f"hidden{i}")(h))
        return self.out(h)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(emb, cout)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class TimeUnet(nn.Module):
    def __init__(self, side=8, channels=32, embedding=128, groups=8, frequencies=8, max_frequency=16.0):
        super().__init__()
        c, e = channels, embedding
        self.side = side
        self.register_buffer("omega", fourier_omega(frequencies, max_frequency), persistent=False)
        self.temb = nn.ModuleList([nn.Linear(2 * frequencies + 1, e), nn.Linear(e, e)])
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)
        self.down = nn.Module()
        self.down.res = ResBlock(c, c, e, groups)
        self.down.conv = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)
        self.mid = nn.Module()
        self.mid.res1 = ResBlock(2 * c, 2 * c, e, groups)
        self.mid.res2 = ResBlock(2 * c, 2 * c, e, groups)
        self.up = nn.Module()
        self.up.conv = nn.Conv2d(2 * c, c, 3, padding=1)
        self.up.res = ResBlock(2 * c, c, e, groups)
        self.out = nn.Module()
        self.out.norm = nn.GroupNorm(groups, c)
        self.out.conv = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x, t):
        n, s = x.shape[0], self.side
        emb = self.temb[1](F.silu(self.temb[0](time_features(t, self.omega))))
        ea = F.silu(emb)
        h0 = self.conv_in(x.view(n, 1, s, s))
        h1 = self.down.res(h0, ea)
        h = self.down.conv(h1)
        h = self.mid.res1(h, ea)
        h = self.mid.res2(h, ea)
        h = self.up.conv(F.interpolate(h, scale_factor=2, mode="nearest"))
        h = self.up.res(torch.cat([h, h1], 1), ea)
        h = self.out.conv(F.silu(self.out.norm(h)))
        return h.reshape(n, s * s)


def build(net, dtype=torch.float32, small=False):
    if net == "mlp":
        m = TimeMlp(hidden=16 if small else 256)
    elif net == "unet":
        m = TimeUnet(channels=8 if small else 32, embedding=16 if small else 128, groups=4 if small else 8)
    else:
        raise SystemExit(f"unknown net {net}")
    return m.to(dtype)


# ------------------------------------------------------------------ VP SDE

def alpha_sigma(t):
    log_alpha = -0.25 * t * t * (BETA_MAX - BETA_MIN) - 0.5 * t * BETA_MIN
    a = torch.exp(log_alpha)
    return a, torch.sqrt(1.0 - a * a)


def t_of_lambda(lam):
    """Inverse of the log-SNR lambda(t) = log(alpha/sigma) of the linear VP schedule."""
    # log alpha = -0.5 log(1 + e^{-2 lambda}); solve 0.25 (bmax-bmin) t^2 + 0.5 bmin t = -log alpha
    la = 0.5 * math.log1p(math.exp(-2.0 * lam))
    a, b = 0.25 * (BETA_MAX - BETA_MIN), 0.5 * BETA_MIN
    return (-b + math.sqrt(b * b + 4 * a * la)) / (2 * a)


def log_snr(t):
    a, s = alpha_sigma(torch.tensor(t, dtype=torch.float64))
    return float(torch.log(a / s))


# ------------------------------------------------------------------ data

def load_digits_dequantised(copies=16, seed=0):
    levels = []
    with open(os.path.join(REPO, "data", "digits", "digits.txt")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            _, px = line.split()
            levels.append(["0123456789abcdefg".index(c) for c in px])
    y = np.array(levels, dtype=np.float64)
    rng = np.random.default_rng(seed)
    train = y[rng.permutation(len(y))[360:]]  # timing only: a split of the same size as ours
    rep = np.concatenate([train] * copies)
    x = 2.0 * (rep + rng.random(rep.shape)) / 17.0 - 1.0
    return torch.tensor(x, dtype=torch.float32)


# ------------------------------------------------------------------ measurement helpers

def busy_jiffies():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - (v[4] if len(v) > 4 else 0)


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Timer:
    def __enter__(self):
        self.b0, self.c0, self.w0 = busy_jiffies(), cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = cpu_seconds() - self.c0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (busy_jiffies() - self.b0) / hz
        self.others = max(0.0, (busy - self.cpu) / self.wall) if self.wall > 0 else None


# ------------------------------------------------------------------ train / sample

def train(args):
    torch.manual_seed(args.seed)
    net = build(args.net)
    data = load_digits_dequantised()
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ema = [p.detach().clone() for p in params]
    total = args.warmup + args.steps
    losses = []

    def step(i):
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1 + math.cos(math.pi * i / total))
        idx = torch.randint(0, data.shape[0], (args.batch,))
        x0 = data[idx]
        t = T_MIN + (1.0 - T_MIN) * torch.rand(args.batch, 1)
        a, s = alpha_sigma(t)
        eps = torch.randn_like(x0)
        xt = a * x0 + s * eps
        loss = ((net(xt, t) - eps) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        d = min(args.ema, (1.0 + i) / (10.0 + i))
        with torch.no_grad():
            for pe, p in zip(ema, params):
                pe.mul_(d).add_(p, alpha=1.0 - d)
        return float(loss.detach())

    for i in range(args.warmup):
        losses.append(step(i))
    with Timer() as tm:
        for i in range(args.warmup, total):
            losses.append(step(i))
    return {"mode": "train", "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "rate": args.steps / tm.wall, "rate_unit": "steps/s", "wall_s": tm.wall, "cpu_s": tm.cpu,
            "other_cores_busy": tm.others, "loss_first": losses[0], "loss_last": float(np.mean(losses[-20:]))}


@torch.no_grad()
def dpm_solver_2m(net, n, steps, gen):
    """DPM-Solver++ 2M, log-SNR grid T -> t_min, lower-order final step (NFE = steps)."""
    l0, l1 = log_snr(1.0), log_snr(T_MIN)
    ts = [1.0] + [t_of_lambda(l0 + (l1 - l0) * i / steps) for i in range(1, steps)] + [T_MIN]
    x = torch.randn(n, 64, generator=gen)
    prev_d, prev_h = None, None
    for i in range(steps):
        t, s = ts[i], ts[i + 1]
        at, st = alpha_sigma(torch.tensor(t))
        as_, ss = alpha_sigma(torch.tensor(s))
        eps = net(x, torch.full((n, 1), t))
        d0 = (x - st * eps) / at
        h = float(torch.log(as_ / ss) - torch.log(at / st))
        phi = math.expm1(-h)
        order = 1 if (prev_d is None or i == steps - 1) else 2
        x = (ss / st) * x - as_ * phi * d0
        if order == 2:
            r0 = prev_h / h
            x = x - 0.5 * as_ * phi * (d0 - prev_d) / r0
        prev_d, prev_h = d0, h
    return x


def sample(args):
    torch.manual_seed(args.seed)
    net = build(args.net).eval()
    gen = torch.Generator().manual_seed(args.seed)
    dpm_solver_2m(net, args.n, max(2, args.steps // 4), gen)  # warm-up
    walls, cpus, others = [], [], []
    for _ in range(args.repeats):
        with Timer() as tm:
            x = dpm_solver_2m(net, args.n, args.steps, gen)
        walls.append(tm.wall)
        cpus.append(tm.cpu)
        others.append(tm.others)
    k = int(np.argmin(walls))
    return {"mode": "sample", "n": args.n, "steps": args.steps, "nfe": args.steps,
            "rate": args.n / walls[k], "rate_unit": "images/s", "wall_s": walls[k], "walls": walls,
            "cpu_s": cpus[k], "other_cores_busy": others[k], "finite": bool(torch.isfinite(x).all())}


def unet_products(batch, side=8, c=32, e=128):
    """(rows, inner, out) of the matrix products of one U-Net training step as our candle
    network forms them (bench_digits.rs `unet_products`): convolutions as patch matrices
    with a ones column for the bias, linear layers as x W^T."""
    full, half = batch * side * side, batch * (side // 2) ** 2

    def conv(rows, cin, cout, k):
        return rows, k * k * cin + 1, cout
    return [(batch, 17, e), (batch, e, e), (batch, e, c), (batch, e, 2 * c), (batch, e, 2 * c), (batch, e, c),
            conv(full, 1, c, 3), conv(full, c, c, 3), conv(full, c, c, 3), conv(half, c, 2 * c, 3),
            conv(half, 2 * c, 2 * c, 3), conv(half, 2 * c, 2 * c, 3), conv(half, 2 * c, 2 * c, 3),
            conv(half, 2 * c, 2 * c, 3), conv(full, 2 * c, c, 3), conv(full, 2 * c, c, 3), conv(full, c, c, 3),
            conv(full, 2 * c, c, 1), conv(full, c, 1, 3)]


@torch.no_grad()
def gemm(args):
    """The same matrix products as `bench_digits --mode gemm`, with torch.mm (float32):
    forward A W^T, backward G W and A^T G, per product."""
    gen = torch.Generator().manual_seed(args.seed)
    layers = unet_products(args.batch)
    ins = [(torch.rand(r, k, generator=gen) * 2 - 1, torch.rand(o, k, generator=gen) * 2 - 1,
            torch.rand(r, o, generator=gen) * 2 - 1) for r, k, o in layers]

    def run(acc):
        for a, w, g in ins:
            t0 = time.perf_counter()
            torch.mm(a, w.t())
            t1 = time.perf_counter()
            torch.mm(g, w)
            torch.mm(a.t(), g)
            t2 = time.perf_counter()
            acc[0] += t1 - t0
            acc[1] += t2 - t1
    run([0.0, 0.0])
    acc = [0.0, 0.0]
    with Timer() as tm:
        for _ in range(args.steps):
            run(acc)
    flops = sum(6 * r * k * o for r, k, o in layers)
    per = 1e3 / args.steps
    return {"mode": "gemm", "batch": args.batch, "steps": args.steps, "products": len(layers),
            "ms_per_step": {"forward": acc[0] * per, "backward": acc[1] * per, "total": (acc[0] + acc[1]) * per},
            "gflop_per_step": flops * 1e-9, "gflops": flops * args.steps * 1e-9 / (acc[0] + acc[1]),
            "wall_s": tm.wall, "cpu_s": tm.cpu, "other_cores_busy": tm.others}


# ------------------------------------------------------------------ equivalence with ours

def load_into(net, tensors, prefix=""):
    sd = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    net.load_state_dict(sd, strict=True)


def check(args):
    """Load our initial weights and our outputs on fixed inputs (bench_digits --export-init)
    and compare PyTorch's forward pass with them."""
    from safetensors.torch import load_file
    ts = load_file(args.path)
    out = {}
    for net_name in ("mlp", "unet"):
        if f"{net_name}.x" not in ts:
            continue
        net = build(net_name, dtype=torch.float64)
        load_into(net, {k: v.double() for k, v in ts.items()}, f"{net_name}.net.")
        x, t, y = ts[f"{net_name}.x"].double(), ts[f"{net_name}.t"].double(), ts[f"{net_name}.y"].double()
        with torch.no_grad():
            got = net(x, t)
        err = float((got - y).abs().max())
        scale = float(y.abs().max())
        out[net_name] = {"max_abs_err": err, "max_abs_out": scale,
                         "params": sum(p.numel() for p in net.parameters())}
    return {"mode": "check", **out}


def fixture(args):
    """Small networks initialised by PyTorch, inputs and outputs (float64 forward) for
    tests/candle_digits.rs: our forward pass must reproduce them."""
    from safetensors.torch import save_file
    torch.manual_seed(17)
    tensors = {}
    for net_name in ("mlp", "unet"):
        net = build(net_name, dtype=torch.float64, small=True)
        with torch.no_grad():
            for name, p in net.named_parameters():  # GroupNorm 1/0 would hide a swapped scale/shift
                if "norm" in name:
                    p.add_(0.3 * torch.randn_like(p))
        x = torch.rand(5, 64, dtype=torch.float64) * 2 - 1
        t = torch.rand(5, 1, dtype=torch.float64) * 0.9 + 0.05
        with torch.no_grad():
            y = net(x, t)
        for k, v in net.state_dict().items():
            tensors[f"{net_name}.net.{k}"] = v.contiguous()
        tensors[f"{net_name}.x"], tensors[f"{net_name}.t"], tensors[f"{net_name}.y"] = x, t, y
    save_file(tensors, args.path, metadata={
        "mlp": json.dumps({"Mlp": {"dim": 64, "config": {"hidden": 16, "layers": 3, "frequencies": 8, "max_frequency": 16.0}}}),
        "unet": json.dumps({"Unet": {"side": 8, "config": {"channels": 8, "embedding": 16, "groups": 4, "frequencies": 8, "max_frequency": 16.0}}}),
        "torch": torch.__version__, "written_by": "scripts/torch_digits.py fixture"})
    return {"mode": "fixture", "path": args.path, "tensors": len(tensors)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["train", "sample", "gemm", "check", "fixture"])
    ap.add_argument("path", nargs="?")
    ap.add_argument("--net", default="unet", choices=["mlp", "unet"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1) if args.mode in ("train", "sample", "gemm") else None
    r = {"check": check, "fixture": fixture, "train": train, "sample": sample, "gemm": gemm}[args.mode](args)
    r.update({"impl": "torch", "net": args.net, "threads": args.threads, "torch": torch.__version__,
              "mkldnn": torch.backends.mkldnn.is_available()})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
