"""Convolutions, pooling, normalisation and reshaping layers. (tinygrad implementations)

Tensors here carry the batch axis first: [B, C, H, W] for conv2d, [B, C, L] for conv1d.
"""

from typing import Callable

import numpy as np

from .. import ir
from ..catalog.layers_vision import conv_padding
from ..catalog.base import LAYERS
from .layers_base import LayerState, init_weight


def _make_conv(dims: int) -> Callable:
    def make(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
        a = ir.argdict(layer.args)
        shape = (a["filters"], x.shape[0] // a["groups"], *[a["kernel"]] * dims)
        st = LayerState(params={"W": init_weight(a["init"], shape, rng)})
        if a["bias"]:
            st.params["b"] = np.zeros(a["filters"])
        return st

    return make


def _make_norm(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    n = x.shape[-1] if layer.op == "layernorm" else x.shape[0]
    return LayerState(params={"gamma": np.ones(n), "beta": np.zeros(n)})


def _conv(x, st, a, training):
    dims = x.ndim - 2
    pads = conv_padding(a["padding"], dims, a["kernel"], a["dilation"], a["stride"])
    # tinygrad's explicit form: (before, after) of the last axis first, then the one before it
    padding = [p for pair in reversed(pads) for p in pair]
    return x.conv2d(st.params["W"], st.params.get("b"), groups=a["groups"], stride=a["stride"],
                    dilation=a["dilation"], padding=padding)


def _pool(kind: str) -> Callable:
    def pool(x, st, a, training):
        k = (a["size"],) * (x.ndim - 2)
        s = a["stride"] if a["stride"] is not None else a["size"]
        s = (s,) * (x.ndim - 2)
        return x.max_pool2d(k, stride=s) if kind == "max" else x.avg_pool2d(k, stride=s)

    return pool


def _layernorm(x, st, a, training):
    return x.layernorm(axis=-1, eps=a["eps"]) * st.params["gamma"] + st.params["beta"]


def _groupnorm(x, st, a, training):
    b, c = x.shape[0], x.shape[1]
    h = x.reshape(b, a["groups"], -1).layernorm(axis=-1, eps=a["eps"]).reshape(x.shape)
    bshape = (c, *[1] * (x.ndim - 2))
    return h * st.params["gamma"].reshape(bshape) + st.params["beta"].reshape(bshape)


LAYERS.implement("reshape")(lambda x, st, a, t: x.reshape(x.shape[0], *(int(d) for d in a["shape"])))
LAYERS.implement("conv2d", make=_make_conv(2))(_conv)
LAYERS.implement("conv1d", make=_make_conv(1))(_conv)
LAYERS.implement("maxpool")(_pool("max"))
LAYERS.implement("avgpool")(_pool("avg"))
LAYERS.implement("global_avgpool")(lambda x, st, a, t: x.mean(axis=tuple(range(2, x.ndim))))
LAYERS.implement("global_maxpool")(lambda x, st, a, t: x.max(axis=tuple(range(2, x.ndim))))
LAYERS.implement("layernorm", make=_make_norm)(_layernorm)
LAYERS.implement("groupnorm", make=_make_norm)(_groupnorm)
