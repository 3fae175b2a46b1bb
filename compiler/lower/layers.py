"""Initialisers and layers: numpy-initialised parameters, tinygrad forward functions."""

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tinygrad import Tensor

from .. import ir

# ---------------------------------------------------------------------------------------------
# Initialisers: numpy, seeded, so weights do not depend on tinygrad's RNG.
# ---------------------------------------------------------------------------------------------

INIT_IMPL: dict[str, Callable] = {
    "he": lambda rng, shape, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / fan_in), shape),
    "xavier": lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape) * math.sqrt(6.0 / (fan_in + fan_out)),
    "normal": lambda rng, shape, fan_in, fan_out, std=0.01, mean=0.0: rng.normal(mean, std, shape),
    "zeros": lambda rng, shape, fan_in, fan_out: np.zeros(shape),
}

# ---------------------------------------------------------------------------------------------
# Layers: (x, params, args) -> y. `params` are this layer's tensors by short name.
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerState:
    params: dict[str, Tensor] = field(default_factory=dict)  # trained
    buffers: dict[str, Tensor] = field(default_factory=dict)  # updated in the step, not trained
    pending: list[Tensor] = field(default_factory=list)  # buffer updates the forward pass scheduled


def _make_dense(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    a = ir.argdict(layer.args)
    fan_in, units = x.shape[0], a["units"]
    init, init_args = a["init"]
    w = INIT_IMPL[init](rng, (fan_in, units), fan_in, units, **dict(init_args))
    st = LayerState(params={"W": w})
    if a["bias"]:
        st.params["b"] = np.zeros(units)
    return st


def _make_batchnorm(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    n = x.shape[0]
    return LayerState(params={"gamma": np.ones(n), "beta": np.zeros(n)},
                      buffers={"running_mean": np.zeros(n), "running_var": np.ones(n)})


MAKE: dict[str, Callable] = {"dense": _make_dense, "batchnorm": _make_batchnorm}


def _dense(x, st, a, training):
    y = x @ st.params["W"]
    return y + st.params["b"] if "b" in st.params else y


def _batchnorm(x, st, a, training):
    g, b = st.params["gamma"], st.params["beta"]
    if not training:
        return (x - st.buffers["running_mean"]) * (st.buffers["running_var"] + a["eps"]).rsqrt() * g + b
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    n = x.shape[0]
    m = a["momentum"]
    st.pending = [  # running statistics, assigned inside the jitted step (unbiased variance, as torch)
        st.buffers["running_mean"].assign(st.buffers["running_mean"] * (1 - m) + mean.detach() * m),
        st.buffers["running_var"].assign(st.buffers["running_var"] * (1 - m) + var.detach() * (m * n / max(n - 1, 1))),
    ]
    return (x - mean) * (var + a["eps"]).rsqrt() * g + b


def _gelu(x):  # tanh approximation
    return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())


LAYER_IMPL: dict[str, Callable] = {
    "dense": _dense,
    "batchnorm": _batchnorm,
    "relu": lambda x, st, a, t: x.relu(),
    "gelu": lambda x, st, a, t: _gelu(x),
    "tanh": lambda x, st, a, t: x.tanh(),
    "sigmoid": lambda x, st, a, t: x.sigmoid(),
    "leaky_relu": lambda x, st, a, t: x.leaky_relu(a["slope"]),
    "softmax": lambda x, st, a, t: x.softmax(-1),
    "dropout": lambda x, st, a, t: x.dropout(a["p"]) if t else x,
    "flatten": lambda x, st, a, t: x.reshape(x.shape[0], -1),
    "add": lambda xs, st, a, t: sum(xs[1:], xs[0]),
    "concat": lambda xs, st, a, t: xs[0].cat(*xs[1:], dim=a["axis"] if a["axis"] < 0 else a["axis"] + 1),
}


def _merge_families() -> None:
    """Layer families live in their own modules (layers_vision, layers_sequence, layers_attention)."""
    from . import layers_attention, layers_sequence, layers_vision

    for fam in (layers_vision, layers_sequence, layers_attention):
        MAKE.update(fam.MAKE)
        LAYER_IMPL.update(fam.LAYER_IMPL)


_merge_families()
