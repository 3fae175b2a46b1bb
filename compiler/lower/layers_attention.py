"""Attention and transformer layers. (tinygrad implementations)

Parameters follow torch's layout so weights move across by name: `attention` holds
`in_proj_weight` [3D, D] (rows: Q, then K, then V), `in_proj_bias` [3D], `out_proj_weight` [D, D],
`out_proj_bias` [D], applied as `x @ W.T + b` (torch.nn.MultiheadAttention, batch_first). The
`transformer` block holds the same four plus `norm1_*`, `norm2_*` (LayerNorm, eps 1e-5) and
`linear1_*` [ff, D], `linear2_*` [D, ff] (torch.nn.TransformerEncoderLayer with norm_first = True,
its dotted names written with `_`). Initialisation is torch's: in_proj xavier-uniform, biases 0,
linear and out_proj weights U(+-1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), linear biases
U(+-1/sqrt(fan_in)), norms 1 and 0.

Dropout follows TransformerEncoderLayer: on the attention weights, after the attention (before
the residual add), after the activation and after linear2; only while training.
"""

import math
import numpy as np
from tinygrad import Tensor

from .. import ir
from ..catalog.base import LAYERS
from .layers_base import LayerState, _gelu


def _linear(rng, out: int, fan_in: int) -> tuple[np.ndarray, np.ndarray]:
    k = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-k, k, (out, fan_in)), rng.uniform(-k, k, (out,))


def _attention_params(rng, d: int) -> dict[str, np.ndarray]:
    bound = math.sqrt(6.0 / (d + 3 * d))  # xavier_uniform_ on [3D, D]
    k = 1.0 / math.sqrt(d)
    return {"in_proj_weight": rng.uniform(-bound, bound, (3 * d, d)), "in_proj_bias": np.zeros(3 * d),
            "out_proj_weight": rng.uniform(-k, k, (d, d)), "out_proj_bias": np.zeros(d)}


def _make_position_embedding(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    return LayerState(params={"W": rng.normal(0.0, 0.02, x.shape)})


def _make_attention(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    return LayerState(params=_attention_params(rng, x.shape[1]))


def _make_transformer(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    d = x.shape[1]
    ff = ir.argdict(layer.args)["ff"] or 4 * d
    p = {"norm1_weight": np.ones(d), "norm1_bias": np.zeros(d)}
    p.update(_attention_params(rng, d))
    p.update({"norm2_weight": np.ones(d), "norm2_bias": np.zeros(d)})
    p["linear1_weight"], p["linear1_bias"] = _linear(rng, ff, d)
    p["linear2_weight"], p["linear2_bias"] = _linear(rng, d, ff)
    return LayerState(params=p)


def multi_head_attention(x: Tensor, p: dict[str, Tensor], heads: int, causal: bool, dropout: float,
                         training: bool) -> Tensor:
    """Self-attention over [B, T, D] with torch's packed in-projection; returns [B, T, D]."""
    b, t, d = x.shape
    hd = d // heads
    qkv = x @ p["in_proj_weight"].T + p["in_proj_bias"]  # [B, T, 3D]
    q, k, v = (qkv[:, :, i * d:(i + 1) * d].reshape(b, t, heads, hd).transpose(1, 2) for i in range(3))
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # [B, H, T, T]
    if causal:  # step i sees steps <= i
        scores = Tensor.ones(t, t, dtype="bool", device=x.device).tril().where(scores, -math.inf)
    w = scores.softmax(-1)
    if training and dropout > 0:
        w = w.dropout(dropout)
    y = (w @ v).transpose(1, 2).reshape(b, t, d)
    return y @ p["out_proj_weight"].T + p["out_proj_bias"]


def _layer_norm(x: Tensor, g: Tensor, b: Tensor, eps: float = 1e-5) -> Tensor:
    return x.layernorm(-1, eps) * g + b


def _drop(x: Tensor, p: float, training: bool) -> Tensor:
    return x.dropout(p) if training and p > 0 else x


def _position_embedding(x, st, a, training):
    return x + st.params["W"]


def _attention(x, st, a, training):
    return multi_head_attention(x, st.params, a["heads"], a["causal"], a["dropout"], training)


def _transformer(x, st, a, training):
    p, drop = st.params, a["dropout"]
    h = _layer_norm(x, p["norm1_weight"], p["norm1_bias"])
    x = x + _drop(multi_head_attention(h, p, a["heads"], a["causal"], drop, training), drop, training)
    h = _layer_norm(x, p["norm2_weight"], p["norm2_bias"])
    h = _drop(_gelu(h @ p["linear1_weight"].T + p["linear1_bias"]), drop, training)
    return x + _drop(h @ p["linear2_weight"].T + p["linear2_bias"], drop, training)


LAYERS.implement("position_embedding", make=_make_position_embedding)(_position_embedding)
LAYERS.implement("attention", make=_make_attention)(_attention)
LAYERS.implement("transformer", make=_make_transformer)(_transformer)
LAYERS.implement("take_last")(lambda x, st, a, t: x[:, -1, :])
LAYERS.implement("mean_pool")(lambda x, st, a, t: x.mean(axis=1))
