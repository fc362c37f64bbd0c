#!/usr/bin/env python3
"""Write the small ONNX fixtures of score-sde's `onnx` backend tests (tests/fixtures/*.onnx).

Needs only the `onnx` and `numpy` packages (no PyTorch):

    python3 -m venv /tmp/onnxenv && /tmp/onnxenv/bin/pip install onnx numpy
    /tmp/onnxenv/bin/python scripts/make_onnx_fixture.py

Every graph computes a closed-form answer under the VP linear schedule with the crate's
defaults (beta_min = 0.1, beta_max = 20; Song et al. 2021, eq. 33):

    log alpha(t) = -1/4 t^2 (beta_max - beta_min) - 1/2 t beta_min,   sigma^2 = 1 - alpha^2.

For data N(mu_k, s^2 I) the diffused component is N(alpha mu_k, v I) with v = alpha^2 s^2 + sigma^2,
so the exact score of a mixture is  -sum_k w_k(x) (x - alpha mu_k) / v  with responsibilities
w_k = softmax_k(log pi_k - |x - alpha mu_k|^2 / (2 v)) (all components share v here).

Fixtures (inputs are named as the export recipe in docs/networks.md asks: x [N, D], t [N] or [N, 1]):

* gaussian_score.onnx   - score parameterisation, one Gaussian (mu = (1.5, -0.5), s = 0.6), t [N].
* ring_noise.onnx       - noise (epsilon) parameterisation, the 2-D ring of data/problems/ring2d.json:
                          eps = -sigma * score, t [N, 1].
* wrong_input_name.onnx - as gaussian_score but the data input is called "input".
* wrong_time_shape.onnx - t declared [N, 2] (the graph ignores it and returns -x).
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BETA_MIN, BETA_MAX = 0.1, 20.0
C2 = -0.25 * (BETA_MAX - BETA_MIN)  # coefficient of t^2 in log alpha
C1 = -0.5 * BETA_MIN  # coefficient of t
OPSET = 17
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures")


def const(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.float32), name)


def const_i64(name, value):
    return numpy_helper.from_array(np.asarray(value, dtype=np.int64), name)


def schedule_nodes(t):
    """Nodes computing alpha, alpha^2 and sigma^2 = 1 - alpha^2 from t (any shape)."""
    return [
        helper.make_node("Mul", [t, t], ["tt"]),
        helper.make_node("Mul", ["tt", "C2"], ["q"]),
        helper.make_node("Mul", [t, "C1"], ["l"]),
        helper.make_node("Add", ["q", "l"], ["log_alpha"]),
        helper.make_node("Exp", ["log_alpha"], ["alpha"]),
        helper.make_node("Mul", ["alpha", "alpha"], ["a2"]),
        helper.make_node("Sub", ["ONE", "a2"], ["sigma2"]),
    ], [const("C2", C2), const("C1", C1), const("ONE", 1.0)]


def save(graph, name):
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="score-sde scripts/make_onnx_fixture.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = os.path.join(OUT, name)
    onnx.save(model, path)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
    return model


def gaussian_score(x_name="x"):
    mu, s2 = [1.5, -0.5], 0.36
    nodes, inits = schedule_nodes("t")
    nodes += [
        # v = alpha^2 s^2 + sigma^2, per row: [N] -> [N, 1]
        helper.make_node("Mul", ["a2", "S2"], ["a2s2"]),
        helper.make_node("Add", ["a2s2", "sigma2"], ["v"]),
        helper.make_node("Unsqueeze", ["v", "AX1"], ["v_col"]),
        helper.make_node("Unsqueeze", ["alpha", "AX1"], ["alpha_col"]),
        helper.make_node("Mul", ["alpha_col", "MU"], ["mean"]),  # [N, 1] * [1, D]
        helper.make_node("Sub", [x_name, "mean"], ["diff"]),
        helper.make_node("Div", ["diff", "v_col"], ["q_over_v"]),
        helper.make_node("Neg", ["q_over_v"], ["score"]),
    ]
    inits += [const("S2", s2), const("MU", [mu]), const_i64("AX1", [1])]
    graph = helper.make_graph(
        nodes,
        "gaussian_score",
        [
            helper.make_tensor_value_info(x_name, TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N"]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return graph


def ring_noise():
    with open(os.path.join(ROOT, "data", "problems", "ring2d.json")) as f:
        spec = json.load(f)
    means = np.asarray(spec["means"], dtype=np.float64)  # [K, D]
    covs = np.asarray(spec["covs"], dtype=np.float64)
    s2 = float(covs[0][0][0])
    # The graph assumes isotropic components of one common variance (true of the ring).
    assert np.allclose(covs, s2 * np.eye(means.shape[1])[None])
    logw = np.log(np.asarray(spec["weights"], dtype=np.float64))
    nodes, inits = schedule_nodes("t")  # t is [N, 1]: alpha etc. are [N, 1]
    nodes += [
        helper.make_node("Sqrt", ["sigma2"], ["sigma"]),
        helper.make_node("Mul", ["a2", "S2"], ["a2s2"]),
        helper.make_node("Add", ["a2s2", "sigma2"], ["v"]),  # [N, 1]
        helper.make_node("Unsqueeze", ["x", "AX1"], ["x3"]),  # [N, 1, D]
        helper.make_node("Unsqueeze", ["alpha", "AX2"], ["alpha3"]),  # [N, 1, 1]
        helper.make_node("Mul", ["alpha3", "MU"], ["m"]),  # [N, K, D]
        helper.make_node("Sub", ["x3", "m"], ["diff"]),  # [N, K, D]
        helper.make_node("Mul", ["diff", "diff"], ["d2"]),
        helper.make_node("ReduceSum", ["d2", "AX2"], ["sq"], keepdims=0),  # [N, K]
        helper.make_node("Mul", ["v", "TWO"], ["two_v"]),
        helper.make_node("Div", ["sq", "two_v"], ["half_m"]),
        helper.make_node("Sub", ["LOGW", "half_m"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["w"], axis=1),  # responsibilities
        helper.make_node("Unsqueeze", ["w", "AX2"], ["w3"]),  # [N, K, 1]
        helper.make_node("Mul", ["w3", "diff"], ["wd"]),
        helper.make_node("ReduceSum", ["wd", "AX1"], ["num"], keepdims=0),  # [N, D]
        helper.make_node("Div", ["num", "v"], ["neg_score"]),
        helper.make_node("Mul", ["neg_score", "sigma"], ["eps"]),  # eps = -sigma * score
    ]
    inits += [
        const("S2", s2),
        const("TWO", 2.0),
        const("MU", means[None]),
        const("LOGW", logw[None]),
        const_i64("AX1", [1]),
        const_i64("AX2", [2]),
    ]
    return helper.make_graph(
        nodes,
        "ring_noise",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("eps", TensorProto.FLOAT, ["N", 2])],
        inits,
    )


def wrong_time_shape():
    return helper.make_graph(
        [helper.make_node("Neg", ["x"], ["score"])],
        "wrong_time_shape",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("t", TensorProto.FLOAT, ["N", 2]),
        ],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])],
    )


def check_gaussian(model):
    """Evaluate with onnx's reference runtime against numpy (float64)."""
    from onnx.reference import ReferenceEvaluator

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 2)).astype(np.float32)
    t = np.linspace(0.01, 1.0, 5).astype(np.float32)
    (got,) = ReferenceEvaluator(model).run(None, {"x": x, "t": t})
    td = t.astype(np.float64)
    a = np.exp(C2 * td * td + C1 * td)[:, None]
    v = a * a * 0.36 + 1 - a * a
    want = -(x - a * np.array([[1.5, -0.5]])) / v
    assert np.allclose(got, want, rtol=1e-5, atol=1e-5), (got, want)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    check_gaussian(save(gaussian_score(), "gaussian_score.onnx"))
    save(ring_noise(), "ring_noise.onnx")
    save(gaussian_score("input"), "wrong_input_name.onnx")
    save(wrong_time_shape(), "wrong_time_shape.onnx")
