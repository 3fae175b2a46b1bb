"""Optimizers, PyTorch semantics.

Each optimizer is a pair (state, update):
    state(p, args) -> {name: zero tensor}                     its per-parameter state
    update(w, g, st, lr, t, args) -> (new w, [state assigns])  one step: `w` is the parameter's
                                                              current value (detached), `t` the
                                                              step number (1-based), `lr` a tensor
The caller assigns the new value, so decoupled weight decay and parameter groups compose with
every optimizer.
"""

from typing import Callable

from tinygrad import Tensor


def _zeros(p: Tensor) -> Tensor:
    return Tensor.zeros(p.shape, dtype=p.dtype).contiguous()


def _sgd_state(p: Tensor, a) -> dict:
    return {"buf": _zeros(p)} if a["momentum"] else {}


def _sgd(w, g, st, lr, t, a):
    if a["weight_decay"]:
        g = g + a["weight_decay"] * w
    if a["momentum"]:
        # first step: buf = g (t == 1 selects it without a Python branch in the jitted graph)
        buf = st["buf"].assign((t == 1).where(g, st["buf"] * a["momentum"] + g))
        g = g + a["momentum"] * buf if a["nesterov"] else buf
        return w - lr * g, [buf]
    return w - lr * g, []


def _adam_state(p: Tensor, a) -> dict:
    return {"m": _zeros(p), "v": _zeros(p)}


def _adam(w, g, st, lr, t, a, decoupled=0.0):
    b1, b2 = a["b1"], a["b2"]
    if decoupled:
        w = w * (1 - lr * decoupled)
    m = st["m"].assign(st["m"] * b1 + g * (1 - b1))
    v = st["v"].assign(st["v"] * b2 + g * g * (1 - b2))
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return w - lr * mhat / (vhat.sqrt() + a["eps"]), [m, v]


OPT_IMPL: dict[str, tuple[Callable, Callable]] = {
    "sgd": (_sgd_state, _sgd),
    "adam": (_adam_state, _adam),
    "adamw": (_adam_state, lambda w, g, st, lr, t, a: _adam(w, g, st, lr, t, a, decoupled=a["weight_decay"])),
}
