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

def _orthogonal(rng, shape, fan_in, fan_out, gain=1.0):
    """torch.nn.init.orthogonal_: QR of a normal matrix [shape[0], rest], signs fixed by R's diagonal."""
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    flat = rng.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


INIT_IMPL: dict[str, Callable] = {  # (rng, shape, fan_in, fan_out, **args) -> float64 array of `shape`
    "he": lambda rng, shape, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / fan_in), shape),
    "he_uniform": lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape) * math.sqrt(6.0 / fan_in),
    "xavier": lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape) * math.sqrt(6.0 / (fan_in + fan_out)),
    "xavier_normal": lambda rng, shape, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape),
    "normal": lambda rng, shape, fan_in, fan_out, std=0.01, mean=0.0: rng.normal(mean, std, shape),
    "uniform": lambda rng, shape, fan_in, fan_out, a=0.05: rng.uniform(-a, a, shape),
    "orthogonal": _orthogonal,
    "zeros": lambda rng, shape, fan_in, fan_out: np.zeros(shape),
    "ones": lambda rng, shape, fan_in, fan_out: np.ones(shape),
}


def _add_aliases() -> None:
    from ..catalog.inits import ALIASES

    for name, of in ALIASES.items():
        INIT_IMPL[name] = INIT_IMPL[of]


_add_aliases()


def fans(shape: tuple[int, ...], dense: bool = False) -> tuple[int, int]:
    """(fan_in, fan_out) as torch computes them. Dense weights here are [inputs, units] (torch's
    Linear stores the transpose); convolution weights are [filters, channels/groups, k, ...]."""
    if dense:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def init_weight(init: tuple, shape: tuple[int, ...], rng, dense: bool = False) -> np.ndarray:
    """Draw a weight of `shape` with a resolved `init` argument: (name, ((arg, value), ...))."""
    name, init_args = init
    fan_in, fan_out = fans(shape, dense)
    return INIT_IMPL[name](rng, shape, fan_in, fan_out, **dict(init_args))

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
    st = LayerState(params={"W": init_weight(a["init"], (fan_in, units), rng, dense=True)})
    if a["bias"]:
        st.params["b"] = np.zeros(units)
    return st


def _make_batchnorm(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    n = x.shape[0]  # features of [n], channels of [C, ...]
    return LayerState(params={"gamma": np.ones(n), "beta": np.zeros(n)},
                      buffers={"running_mean": np.zeros(n), "running_var": np.ones(n)})


MAKE: dict[str, Callable] = {"dense": _make_dense, "batchnorm": _make_batchnorm}


def _dense(x, st, a, training):
    y = x @ st.params["W"]
    return y + st.params["b"] if "b" in st.params else y


def _batchnorm(x, st, a, training):
    """[B, n]: per feature; [B, C, ...]: per channel over the batch and the other axes (torch's
    BatchNorm1d/2d). Running variance is unbiased, the normalisation uses the biased one."""
    g, b = st.params["gamma"], st.params["beta"]
    axes = (0, *range(2, x.ndim))
    bshape = (x.shape[1], *[1] * (x.ndim - 2))  # broadcasts against [B, C, ...]
    if not training:
        rm, rv = st.buffers["running_mean"].reshape(bshape), st.buffers["running_var"].reshape(bshape)
        return (x - rm) * (rv + a["eps"]).rsqrt() * g.reshape(bshape) + b.reshape(bshape)
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(bshape)) ** 2).mean(axis=axes)
    n = math.prod(x.shape[i] for i in axes)
    m = a["momentum"]
    st.pending = [  # running statistics, assigned inside the jitted step (unbiased variance, as torch)
        st.buffers["running_mean"].assign(st.buffers["running_mean"] * (1 - m) + mean.detach() * m),
        st.buffers["running_var"].assign(st.buffers["running_var"] * (1 - m) + var.detach() * (m * n / max(n - 1, 1))),
    ]
    return (x - mean.reshape(bshape)) * (var.reshape(bshape) + a["eps"]).rsqrt() * g.reshape(bshape) + b.reshape(bshape)


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
