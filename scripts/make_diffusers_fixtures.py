#!/usr/bin/env python3
"""Fixtures for tests/diffusers_parity.rs: diffusers' own schedulers driving an exact
Gaussian-mixture epsilon model, in float64, with recorded initial states, noise and results.

Run with the peers' environment (diffusers 0.42.1, torch):

    /tmp/peers-venv/bin/python scripts/make_diffusers_fixtures.py

It writes tests/fixtures/diffusers_parity.json. The Rust test needs no Python.

What is fixed so that the comparison tests the algorithms and nothing else:

* The beta table: linspace(1e-4, 0.02, 1000) in float64 (diffusers' `beta_schedule="linear"`
  with the DDPM values; our `DiscreteVp::ddpm_linear(1000, 1e-4, 0.02)`). diffusers builds it
  in float32; the script overrides `betas`, `alphas`, `alphas_cumprod` (and the derived
  tables) with the float64 ones, and after `set_timesteps` replaces the float32 `sigmas`
  table by the same formula in float64 (checked against diffusers' own to 1e-6).
* float64 all through: diffusers' `step()` casts the sample to float32 (an "upcast" meant for
  fp16); during the runs that cast is a no-op for float64 tensors.
* The model: eps(x, t) = -sigma_t * score_t(x) for the mixture below diffused to the
  scheduler's noise level at timestep t (sigma/alpha interpolated linearly in t between
  training timesteps, as diffusers' Euler schedulers do; exact at integer t), evaluated in
  float64 numpy. The model sees `scale_model_input(x, t)`, the VP-scaled state.
* Noise: `randn_tensor` inside the schedulers returns pre-drawn float64 normals (numpy
  default_rng), recorded per step, which the Rust side feeds through `NoiseTable`.
* The initial state handed to the Rust sampler is the VP-scaled input of the first model
  call (`scale_model_input(x_T, t_0)`).
"""
import json
import os

import numpy as np
import torch
import diffusers
import diffusers.schedulers.scheduling_dpmsolver_multistep as dpm_mod
import diffusers.schedulers.scheduling_euler_ancestral_discrete as ea_mod
from diffusers import (DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, HeunDiscreteScheduler, UniPCMultistepScheduler)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "diffusers_parity.json")

N_TRAIN = 1000
ROWS = 16
BETAS = np.linspace(1e-4, 0.02, N_TRAIN)
ACP = np.cumprod(1.0 - BETAS)
SIG_TABLE = np.sqrt((1.0 - ACP) / ACP)  # sigma/alpha of training timestep k

# A small mixture in D = 3 with unequal weights and full covariances.
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[1.5, -0.5, 0.0], [-1.0, 1.0, 0.5], [0.0, -1.5, -1.0]])
COVS = np.array([
    [[0.30, 0.05, 0.00], [0.05, 0.20, 0.02], [0.00, 0.02, 0.10]],
    [[0.15, -0.03, 0.01], [-0.03, 0.25, 0.00], [0.01, 0.00, 0.20]],
    [[0.40, 0.00, 0.10], [0.00, 0.05, 0.00], [0.10, 0.00, 0.30]],
])


def score(x, a, s):
    """Exact score of sum_k w_k N(a mu_k, a^2 S_k + s^2 I) at the rows of x."""
    d = x.shape[1]
    logs, grads = [], []
    for w, m, c in zip(WEIGHTS, MEANS, COVS):
        cov = a * a * c + s * s * np.eye(d)
        inv = np.linalg.inv(cov)
        diff = x - a * m
        _, logdet = np.linalg.slogdet(cov)
        q = np.einsum("ni,ij,nj->n", diff, inv, diff)
        logs.append(np.log(w) - 0.5 * (q + logdet))
        grads.append(-diff @ inv)
    logs = np.stack(logs)
    r = np.exp(logs - logs.max(axis=0))
    r /= r.sum(axis=0)
    return np.einsum("kn,knd->nd", r, np.stack(grads))


def sigma_ve(t):
    return float(np.interp(float(t), np.arange(N_TRAIN, dtype=np.float64), SIG_TABLE))


def eps_model(x_vp, t):
    sve = sigma_ve(t)
    a = 1.0 / np.sqrt(1.0 + sve * sve)
    s = sve * a
    x = x_vp.numpy()
    return torch.from_numpy(-s * score(x, a, s))


def to_f64(sched):
    """Replace diffusers' float32 beta tables by float64 ones."""
    sched.betas = torch.from_numpy(BETAS.copy())
    sched.alphas = 1.0 - sched.betas
    sched.alphas_cumprod = torch.from_numpy(ACP.copy())
    if hasattr(sched, "alpha_t"):
        sched.alpha_t = torch.sqrt(sched.alphas_cumprod)
        sched.sigma_t = torch.sqrt(1 - sched.alphas_cumprod)
        sched.lambda_t = torch.log(sched.alpha_t) - torch.log(sched.sigma_t)
    if hasattr(sched, "final_alpha_cumprod"):
        one = sched.config.set_alpha_to_one
        sched.final_alpha_cumprod = torch.tensor(1.0 if one else ACP[0], dtype=torch.float64)
    if isinstance(sched, (EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler,
                          DPMSolverMultistepScheduler, UniPCMultistepScheduler)):
        sched.sigmas = torch.from_numpy(SIG_TABLE[::-1].copy())


def sigmas_f64(sched):
    """The float64 version of diffusers' `sigmas` after set_timesteps (its own formula)."""
    ts = sched.timesteps.double().numpy()
    if isinstance(sched, HeunDiscreteScheduler):
        ts = ts[::2] if len(ts) > 1 else ts  # t0, t1, t1, t2, t2, ... -> t0, t1, t2, ...
        ts = np.concatenate([ts[:1], ts[1:]])
    sig = np.interp(ts, np.arange(N_TRAIN, dtype=np.float64), SIG_TABLE)
    final = getattr(sched.config, "final_sigmas_type", "zero")
    last = SIG_TABLE[0] if final == "sigma_min" else 0.0
    sig = np.concatenate([sig, [last]])
    if isinstance(sched, HeunDiscreteScheduler):
        sig = np.concatenate([sig[:1], np.repeat(sig[1:-1], 2), sig[-1:]])
    return sig


class Noise:
    def __init__(self, rng):
        self.rng = rng
        self.drawn = []

    def __call__(self, shape, *args, **kwargs):
        z = self.rng.standard_normal(tuple(shape))
        self.drawn.append(z)
        return torch.from_numpy(z)


_orig_to = torch.Tensor.to


def _keep_f64(self, *args, **kwargs):
    wants32 = any(a is torch.float32 for a in args) or kwargs.get("dtype") is torch.float32
    if wants32 and self.dtype == torch.float64:
        rest = [a for a in args if a is not torch.float32]
        kwargs.pop("dtype", None)
        return _orig_to(self, *rest, **kwargs) if (rest or kwargs) else self
    return _orig_to(self, *args, **kwargs)


COMMON = dict(num_train_timesteps=N_TRAIN, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
              prediction_type="epsilon")

CONFIGS = {
    "dpm2m": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2)),
    "dpm3m": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=3)),
    "dpm2m-sde": (DPMSolverMultistepScheduler, dict(algorithm_type="sde-dpmsolver++", solver_order=2)),
    "dpm2m-trailing-sigmamin": (DPMSolverMultistepScheduler, dict(algorithm_type="dpmsolver++", solver_order=2,
                                                                  timestep_spacing="trailing",
                                                                  final_sigmas_type="sigma_min")),
    "ddim": (DDIMScheduler, dict(clip_sample=False)),
    "ddim-offset1-noalpha1": (DDIMScheduler, dict(clip_sample=False, steps_offset=1, set_alpha_to_one=False)),
    "euler": (EulerDiscreteScheduler, dict()),
    "euler-ancestral": (EulerAncestralDiscreteScheduler, dict()),
    "heun": (HeunDiscreteScheduler, dict()),
    "unipc": (UniPCMultistepScheduler, dict()),
    "unipc3": (UniPCMultistepScheduler, dict(solver_order=3)),
    "unipc-bh1-sigmamin": (UniPCMultistepScheduler, dict(solver_type="bh1", final_sigmas_type="sigma_min")),
}


def run(name, steps, z0, noise_seed):
    cls, kw = CONFIGS[name]
    sched = cls(**COMMON, **kw)
    to_f64(sched)
    sched.set_timesteps(steps)
    sig64 = sigmas_f64(sched)
    if hasattr(sched, "sigmas") and not isinstance(sched, DDIMScheduler):
        ours = sched.sigmas.double().numpy()
        assert ours.shape == sig64.shape, (name, ours.shape, sig64.shape)
        assert np.allclose(ours, sig64, rtol=1e-6, atol=0), (name, np.abs(ours - sig64).max())
        sched.sigmas = torch.from_numpy(sig64)
    noise = Noise(np.random.default_rng(noise_seed))
    dpm_mod.randn_tensor = noise
    ea_mod.randn_tensor = noise
    x = torch.from_numpy(z0.copy()) * float(sched.init_noise_sigma)
    x_vp0 = None
    nfe = 0
    torch.Tensor.to = _keep_f64
    try:
        for t in sched.timesteps:
            xin = sched.scale_model_input(x, t)
            if x_vp0 is None:
                x_vp0 = xin.numpy().copy()
            eps = eps_model(xin, t)
            nfe += 1
            x = sched.step(eps, t, x).prev_sample
    finally:
        torch.Tensor.to = _orig_to
    assert x.dtype == torch.float64
    out = x.numpy()
    assert np.all(np.isfinite(out)), name
    return {
        "name": name,
        "scheduler": cls.__name__,
        "steps": steps,
        "nfe": nfe,
        "config": {k: v for k, v in dict(sched.config).items()
                   if not k.startswith("_") and k != "trained_betas" and isinstance(v, (int, float, str, bool))
                   and not (isinstance(v, float) and not np.isfinite(v))},
        "timesteps": [float(t) for t in sched.timesteps],
        "x_init": x_vp0.tolist(),
        "noise": [z.tolist() for z in noise.drawn],
        "samples": out.tolist(),
    }


def main():
    rng = np.random.default_rng(0)
    z0 = rng.standard_normal((ROWS, MEANS.shape[1]))
    runs = []
    for name in CONFIGS:
        for steps in (10, 25):
            runs.append(run(name, steps, z0, 1000 + steps))
            print(name, steps, "nfe", runs[-1]["nfe"], "noise draws", len(runs[-1]["noise"]))
    fixture = {
        "generator": "scripts/make_diffusers_fixtures.py",
        "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__, "numpy": np.__version__},
        "betas": {"kind": "linspace", "start": 1e-4, "end": 0.02, "n": N_TRAIN},
        "mixture": {"weights": WEIGHTS.tolist(), "means": MEANS.tolist(), "covs": COVS.tolist()},
        "runs": runs,
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
    print("wrote", OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
