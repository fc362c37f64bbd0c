#!/usr/bin/env python3
"""Writes data/problems/ill32d.json: an ill-conditioned 32-D Gaussian mixture (issue 16).

Four components with unequal weights (0.45, 0.30, 0.15, 0.10), means drawn N(0, 1.5^2 I),
and full covariances Q_k diag(lam) Q_k^T whose eigenvalues lam are log-spaced over two
decades, 0.01 to 2 (so every component has one direction 14x thinner in standard
deviation than its widest), each with its own random rotation Q_k (QR of a Gaussian
matrix, signs fixed). numpy default_rng(16). Same JSON layout as ring2d.json and
rand16d.json (read by score_sde::gmm::MixtureSpec).

    python3 scripts/make_ill_problem.py      # needs numpy
"""
import json
import os

import numpy as np

D, SEED = 32, 16
WEIGHTS = [0.45, 0.30, 0.15, 0.10]
rng = np.random.default_rng(SEED)
lam = 0.01 * (2.0 / 0.01) ** np.linspace(0.0, 1.0, D)
means, covs = [], []
for _ in WEIGHTS:
    means.append(rng.normal(0.0, 1.5, D))
    q, r = np.linalg.qr(rng.standard_normal((D, D)))
    q = q * np.sign(np.diag(r))
    c = (q * lam) @ q.T
    covs.append(0.5 * (c + c.T))
out = {
    "name": "ill32d",
    "description": "4 components in D=32 from seed 16: weights (0.45, 0.30, 0.15, 0.10), means N(0, 1.5^2 I), "
                   "full covs Q diag(lam) Q^T with lam log-spaced over [0.01, 2] (two decades), own rotation each",
    "D": D,
    "K": len(WEIGHTS),
    "weights": WEIGHTS,
    "means": [m.tolist() for m in means],
    "covs": [c.tolist() for c in covs],
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "problems", "ill32d.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
