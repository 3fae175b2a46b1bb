"""Attention and transformer layers.

They read a sequence [T, D] per example (time first, then features; the batch axis is not
written), as `embedding` produces from token ids. `take_last` and `mean_pool` reduce a sequence
to one vector [D] for a classifier head.
"""

from ..ir import DType, TensorType
from .base import *

# ---- layers ------------------------------------------------------------------------------------


@LAYERS.register(params=True)
def position_embedding():
    """Adds a learned position table [T, D] (drawn from N(0, 0.02), as GPT-2) to a sequence [T, D]."""


@LAYERS.register(params=True)
def attention(heads: Int(min=1), causal: Bool = False, dropout: Fraction = 0.0):
    """Multi-head self-attention as torch.nn.MultiheadAttention: [T, D] -> [T, D]; `causal` hides later steps."""


@LAYERS.register(params=True)
def transformer(heads: Int(min=1), ff: Int(min=0) = 0, dropout: Fraction = 0.1, causal: Bool = False):
    """Pre-norm encoder block: x + attention(norm1(x)), then + linear2(gelu(linear1(norm2(x)))); ff = 0 means 4 * D."""


@LAYERS.register
def take_last():
    """The last step of a sequence: [T, D] -> [D] (the state that has read every token under a causal mask)."""


@LAYERS.register
def mean_pool():
    """The mean over the steps of a sequence: [T, D] -> [D]."""


# ---- shapes ------------------------------------------------------------------------------------


def _sequence(op: str, x: TensorType) -> tuple[int, int]:
    if x.dtype == DType.i32:
        raise ShapeError(f"{op} reads a float sequence [T, D], found token ids {x}",
                         help=f"put `embedding(vocab, dim)` before {op}")
    if len(x.shape) != 2:
        raise ShapeError(f"{op} expects a sequence [T, D] (time, features) per example, found {x}",
                         help="put `embedding(vocab, dim)` or a [T, D] input before it")
    return x.shape


def _heads(op: str, x: TensorType, heads: int) -> None:
    d = x.shape[1]
    if d % heads:
        fit = max(h for h in range(1, min(heads, d + 1)) if d % h == 0)  # divisors of d are at most d
        raise ShapeError(f"{op} splits the features into {heads} heads, but D = {d} is not divisible by {heads}",
                         help=f"use heads = {fit} (a divisor of {d}), or a width divisible by {heads}")


@shape_fn("position_embedding")
def _position_embedding_shape(x: TensorType, args: dict) -> TensorType:
    _sequence("position_embedding", x)
    return x


@shape_fn("attention")
def _attention_shape(x: TensorType, args: dict) -> TensorType:
    _sequence("attention", x)
    _heads("attention", x, args["heads"])
    return x


@shape_fn("transformer")
def _transformer_shape(x: TensorType, args: dict) -> TensorType:
    _sequence("transformer", x)
    _heads("transformer", x, args["heads"])
    return x


@shape_fn("take_last")
def _take_last_shape(x: TensorType, args: dict) -> TensorType:
    return TensorType(dtype=x.dtype, shape=(_sequence("take_last", x)[1],))


@shape_fn("mean_pool")
def _mean_pool_shape(x: TensorType, args: dict) -> TensorType:
    return TensorType(dtype=x.dtype, shape=(_sequence("mean_pool", x)[1],))
