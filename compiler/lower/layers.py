"""The core layers (initialisers and the shared pieces: layers_base.py), registered on the catalogue's LAYERS."""

import math
from typing import Callable

import numpy as np

from .. import ir
from ..catalog.base import LAYERS
from .layers_base import INIT_IMPL, LayerState, _gelu, fans, init_weight  # noqa: F401 - what others import from here


def _make_dense(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    a = ir.argdict(layer.args)
    fan_in, units = x.shape[-1], a["units"]  # the last axis: features, or per position on [T, D]
    st = LayerState(params={"W": init_weight(a["init"], (fan_in, units), rng, dense=True)})
    if a["bias"]:
        st.params["b"] = np.zeros(units)
    return st


def _make_batchnorm(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    n = x.shape[0]  # features of [n], channels of [C, ...]
    return LayerState(params={"gamma": np.ones(n), "beta": np.zeros(n)},
                      buffers={"running_mean": np.zeros(n), "running_var": np.ones(n)})


@LAYERS.implement("dense", make=_make_dense)
def _dense(x, st, a, training):
    y = x @ st.params["W"]
    return y + st.params["b"] if "b" in st.params else y


@LAYERS.implement("batchnorm", make=_make_batchnorm)
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


LAYERS.implement("relu")(lambda x, st, a, t: x.relu())
LAYERS.implement("gelu")(lambda x, st, a, t: _gelu(x))
LAYERS.implement("tanh")(lambda x, st, a, t: x.tanh())
LAYERS.implement("sigmoid")(lambda x, st, a, t: x.sigmoid())
LAYERS.implement("leaky_relu")(lambda x, st, a, t: x.leaky_relu(a["slope"]))
LAYERS.implement("softmax")(lambda x, st, a, t: x.softmax(-1))
LAYERS.implement("dropout")(lambda x, st, a, t: x.dropout(a["p"]) if t else x)
LAYERS.implement("flatten")(lambda x, st, a, t: x.reshape(x.shape[0], -1))
LAYERS.implement("stop_gradient")(lambda x, st, a, t: x.detach())


@LAYERS.implement("minibatch_std")
def _minibatch_std(x, st, a, training):
    """x [B, n] -> [B, n + 1]: sqrt(var over the batch + 1e-8) per feature (the biased variance), averaged, as
    one more feature of every example."""
    s = ((x - x.mean(0)) ** 2).mean(0).add(1e-8).sqrt().mean()
    return x.cat(s.reshape(1, 1).expand(x.shape[0], 1), dim=1)
LAYERS.implement("add")(lambda xs, st, a, t: sum(xs[1:], xs[0]))
LAYERS.implement("concat")(
    lambda xs, st, a, t: xs[0].cat(*xs[1:], dim=a["axis"] if a["axis"] < 0 else a["axis"] + 1))

# The layer families register themselves when imported; they import layers_base, never this module.
from . import layers_attention, layers_sequence, layers_vision  # noqa: E402,F401

# The registry's own tables (replacing an item replaces the implementation the lowering uses):
MAKE: dict[str, Callable] = LAYERS.table("make")  # op -> (layer, input type, rng) -> LayerState with numpy params
LAYER_IMPL: dict[str, Callable] = LAYERS.table("fn")  # op -> (x, state, args, training) -> y
