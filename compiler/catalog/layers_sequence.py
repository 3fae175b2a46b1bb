"""Sequence layers: embedding, rnn, lstm, gru.

A sequence is one example of shape [T, D]: time first, then features (the batch axis is not
written). Token ids are `input x: i32[T]`; `embedding` turns them into [T, dim].
"""

from ..ir import DType, TensorType
from .base import *

# ---- layers ------------------------------------------------------------------------------------


@LAYERS.register(params=True)
def embedding(vocab: Int(min=1), dim: Int(min=1)):
    """Looks up a learned vector per token id: i32[T] -> f32[T, dim], weights N(0, 1) as torch; ids in [0, vocab)."""


@LAYERS.register(params=True, recurrent=True)
def rnn(units: Int(min=1), return_sequences: Bool = False, bidirectional: Bool = False):
    """Elman RNN, h = tanh(W_ih x + b_ih + W_hh h + b_hh), as torch.nn.RNN: [T, D] -> [units] or [T, units]."""


@LAYERS.register(params=True, recurrent=True)
def lstm(units: Int(min=1), return_sequences: Bool = False, bidirectional: Bool = False):
    """Long short-term memory (gates i, f, g, o as torch.nn.LSTM): [T, D] -> [units], or [T, units] for sequences."""


@LAYERS.register(params=True, recurrent=True)
def gru(units: Int(min=1), return_sequences: Bool = False, bidirectional: Bool = False):
    """Gated recurrent unit (gates r, z, n as torch.nn.GRU): [T, D] -> [units], or [T, units] for sequences."""


@shape_fn("embedding")
def _embedding_shape(x: TensorType, args: dict) -> TensorType:
    if x.dtype != DType.i32:
        raise ShapeError(f"embedding looks up token ids and expects an i32 input, found {x}",
                         help=f"declare the input as token ids: `input x: i32[{', '.join(map(str, x.shape))}]`")
    return TensorType(dtype=DType.f32, shape=(*x.shape, args["dim"]))


def _recurrent_shape(op: str):
    def shape(x: TensorType, args: dict) -> TensorType:
        if x.dtype != DType.f32:
            raise ShapeError(f"{op} expects a float sequence [T, D], found {x} (token ids)",
                             help=f"put `embedding(vocab, dim)` before {op}")
        if len(x.shape) != 2:
            if len(x.shape) == 1:
                help = (f"{op} reads a sequence of shape [time, features]; for one value per step declare "
                        f"`input x: f32[{x.shape[0]}, 1]`")
            else:
                help = f"{op} reads [time, features]: reshape or flatten the trailing axes first"
            raise ShapeError(f"{op} expects a sequence [T, D] (time, features) per example, found {x}", help=help)
        width = args["units"] * (2 if args["bidirectional"] else 1)
        out = (x.shape[0], width) if args["return_sequences"] else (width,)
        return TensorType(dtype=DType.f32, shape=out)

    return shape


for _op in ("rnn", "lstm", "gru"):
    shape_fn(_op)(_recurrent_shape(_op))
