"""Sequence layers: embedding, rnn, lstm, gru. (tinygrad implementations)

Recurrent layers follow torch.nn.RNN/LSTM/GRU exactly: per direction `W_ih` [G*H, D], `W_hh`
[G*H, H], `b_ih`, `b_hh` [G*H] (G = 1, 4, 3 gates; LSTM gates i, f, g, o; GRU r, z, n), the
backward direction's with a `_reverse` suffix, all drawn from U(-1/sqrt(H), 1/sqrt(H)). The time
loop is unrolled in Python over the static T, so one jitted graph holds the whole sequence.
Without `return_sequences` the output is the final state (torch's h_n): for a bidirectional
layer, the forward direction after the last step joined with the backward one after the first.
"""

import math
from collections.abc import Callable

from tinygrad import Tensor

from .. import ir
from ..catalog.base import LAYERS
from .layers_base import LayerState

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _make_embedding(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    a = ir.argdict(layer.args)
    return LayerState(params={"W": rng.normal(0.0, 1.0, (a["vocab"], a["dim"]))})


def _make_recurrent(layer: ir.Layer, x: ir.TensorType, rng) -> LayerState:
    a = ir.argdict(layer.args)
    h, d, g = a["units"], x.shape[-1], GATES[layer.op]
    k = 1.0 / math.sqrt(h)
    params = {}
    for suffix in ("", "_reverse") if a["bidirectional"] else ("",):
        params[f"W_ih{suffix}"] = rng.uniform(-k, k, (g * h, d))
        params[f"W_hh{suffix}"] = rng.uniform(-k, k, (g * h, h))
        params[f"b_ih{suffix}"] = rng.uniform(-k, k, (g * h,))
        params[f"b_hh{suffix}"] = rng.uniform(-k, k, (g * h,))
    return LayerState(params=params)


def _embedding(x: Tensor, st: LayerState, a: dict, training: bool) -> Tensor:
    w = st.params["W"]  # [vocab, dim]: one-hot @ W, a differentiable gather that needs no index kernel
    return x.one_hot(w.shape[0]).float() @ w


def _rec(h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """The recurrent term h @ W_hh^T + b_hh, its own kernel forwards and backwards (see `_direction`)."""
    return (h @ w_hh.T + b_hh).contiguous().contiguous_backward()


def _saved(x: Tensor, y: Tensor, dy: Callable[[Tensor], Tensor]) -> Tensor:
    """y = f(x), realized once, whose gradient is dy(y): the backward reads y instead of recomputing f.

    tinygrad differentiates sigmoid and tanh through their primitives (exp2, reciprocal), and its
    backward kernels recompute those from x; the clang renderer expands each exp2 into a polynomial,
    once per gate a kernel touches. Measured on the benchmark's LSTM: 645 -> 62 us for the gates'
    backward kernel, 51 -> 27 ms a step (bench/README.md). The value is y exactly (x - x is 0); the
    gradient is the same function of y, up to rounding."""
    y = y.contiguous()
    return y + (x - x.detach()) * dy(y)


def _sigmoid(x: Tensor) -> Tensor:
    return _saved(x, x.detach().sigmoid(), lambda y: y * (1 - y))


def _tanh(x: Tensor) -> Tensor:
    return _saved(x, x.detach().tanh(), lambda y: 1 - y * y)


def _cell(op: str) -> Callable:
    """(input projection at t [B, G*H], state, W_hh, b_hh) -> new state; state is (h,) or (h, c)."""

    def rnn(xp, state, w_hh, b_hh):
        return (_tanh(xp + _rec(state[0], w_hh, b_hh)),)

    def lstm(xp, state, w_hh, b_hh):
        h, c = state
        z = xp + _rec(h, w_hh, b_hh)  # [B, 4H]: the gates i, f, g, o
        units = z.shape[1] // 4
        col = Tensor.arange(4 * units).to(z.device)
        is_g = (col >= 2 * units) & (col < 3 * units)
        s = _sigmoid(z * is_g.where(2.0, 1.0))  # one sigmoid for the four: tanh(z) = 2 sigmoid(2z) - 1 (as tinygrad)
        i, f, g, o = is_g.where(2.0 * s - 1.0, s).chunk(4, dim=1)
        c = f * c + i * g
        return o * _tanh(c), c

    def gru(xp, state, w_hh, b_hh):
        h = state[0]
        rec, two = _rec(h, w_hh, b_hh), 2 * h.shape[1]
        r, z = _sigmoid(xp[:, :two] + rec[:, :two]).chunk(2, dim=1)  # one sigmoid for both gates
        n = _tanh(xp[:, two:] + r * rec[:, two:])
        return ((1 - z) * n + z * h,)

    return {"rnn": rnn, "lstm": lstm, "gru": gru}[op]


def _direction(op: str, x: Tensor, st: LayerState, suffix: str, reverse: bool) -> tuple[list[Tensor], Tensor]:
    """One direction over x [B, T, D]: the hidden state at each time step (in time order) and the final one."""
    p = st.params
    w_ih, w_hh, b_ih, b_hh = (p[f"{n}{suffix}"] for n in ("W_ih", "W_hh", "b_ih", "b_hh"))
    b, t_len = x.shape[0], x.shape[1]
    units = w_hh.shape[1]
    xp = x @ w_ih.T + b_ih  # [B, T, G*H]: the input projections of every step in one matmul
    cell = _cell(op)
    zero = Tensor.zeros(b, units, device=x.device)
    state = (zero, zero) if op == "lstm" else (zero,)
    hs: list[Tensor] = [None] * t_len  # type: ignore[list-item]
    # Compile time: without the realization points below tinygrad fuses the T per-step gradients of
    # W_hh into one kernel with T reduce loops and recomputes the recurrence inside the backward
    # kernels; both make the unrolled graph slow to compile (minutes at T = 20 on a CPU). Each step
    # takes its own view of W_hh and b_hh whose gradient is realized on its own, and each state is
    # a buffer, so every kernel stays small.
    w_steps = w_hh.unsqueeze(0).expand(t_len, *w_hh.shape)
    b_steps = b_hh.unsqueeze(0).expand(t_len, *b_hh.shape)
    for t in (reversed(range(t_len)) if reverse else range(t_len)):
        w_t, b_t = w_steps[t].contiguous_backward(), b_steps[t].contiguous_backward()
        state = tuple(s.contiguous() for s in cell(xp[:, t], state, w_t, b_t))
        hs[t] = state[0]
    return hs, state[0]


def _recurrent(op: str) -> Callable:
    def forward(x: Tensor, st: LayerState, a: dict, training: bool) -> Tensor:
        hs, last = _direction(op, x, st, "", reverse=False)
        if a["bidirectional"]:
            hs_r, last_r = _direction(op, x, st, "_reverse", reverse=True)
            if a["return_sequences"]:
                return Tensor.stack(*[f.cat(r, dim=1) for f, r in zip(hs, hs_r)], dim=1)
            return last.cat(last_r, dim=1)
        return Tensor.stack(*hs, dim=1) if a["return_sequences"] else last

    return forward


LAYERS.implement("embedding", make=_make_embedding)(_embedding)
for _op in GATES:
    LAYERS.implement(_op, make=_make_recurrent)(_recurrent(_op))
