"""Initial weights for the hand-written references: the same numpy draws, in the same order, as
trainc's lowering makes for bench/specs/*.train (dense and conv2d: He normal, biases zero; lstm:
U(-1/sqrt(H), 1/sqrt(H)) for W_ih, W_hh, b_ih, b_hh, as torch.nn.LSTM). Layouts are trainc's:
dense W [in, out], conv W [filters, C, k, k], lstm W_ih [4H, D]."""

from __future__ import annotations

import math

import numpy as np


def _he(rng, shape, fan_in):
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)


def initial_weights(workload: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if workload == "mlp":
        return {"l1.W": _he(rng, (784, 256), 784), "l1.b": np.zeros(256),
                "l2.W": _he(rng, (256, 10), 256), "l2.b": np.zeros(10)}
    if workload == "cnn":
        return {"c1.W": _he(rng, (16, 1, 3, 3), 9), "c1.b": np.zeros(16),
                "c2.W": _he(rng, (32, 16, 3, 3), 144), "c2.b": np.zeros(32),
                "fc.W": _he(rng, (800, 10), 800), "fc.b": np.zeros(10)}
    if workload == "lstm":
        k = 1.0 / math.sqrt(64)
        w = {"W_ih": rng.uniform(-k, k, (256, 8)), "W_hh": rng.uniform(-k, k, (256, 64)),
             "b_ih": rng.uniform(-k, k, (256,)), "b_hh": rng.uniform(-k, k, (256,))}
        return {**w, "fc.W": _he(rng, (64, 10), 64), "fc.b": np.zeros(10)}
    raise ValueError(workload)
