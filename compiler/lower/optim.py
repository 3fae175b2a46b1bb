"""Optimizers: (param, grad, state, lr, step, args) -> tensors to realize. PyTorch semantics."""

from typing import Callable

from tinygrad import Tensor

def _sgd_state(p: Tensor, a) -> dict:
    return {"buf": Tensor.zeros(p.shape, dtype=p.dtype).contiguous()} if a["momentum"] else {}


def _sgd(p, g, st, lr, t, a):
    if a["weight_decay"]:
        g = g + a["weight_decay"] * p.detach()
    if a["momentum"]:
        # first step: buf = g (t == 1 selects it without a Python branch in the jitted graph)
        buf = st["buf"].assign((t == 1).where(g, st["buf"] * a["momentum"] + g))
        g = g + a["momentum"] * buf if a["nesterov"] else buf
        return [p.assign(p.detach() - lr * g), buf]
    return [p.assign(p.detach() - lr * g)]


def _adam_state(p: Tensor, a) -> dict:
    return {"m": Tensor.zeros(p.shape, dtype=p.dtype).contiguous(), "v": Tensor.zeros(p.shape, dtype=p.dtype)
            .contiguous()}


def _adam(p, g, st, lr, t, a, decoupled=0.0):
    b1, b2 = a["b1"], a["b2"]
    w = p.detach() * (1 - lr * decoupled) if decoupled else p.detach()
    m = st["m"].assign(st["m"] * b1 + g * (1 - b1))
    v = st["v"].assign(st["v"] * b2 + g * g * (1 - b2))
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return [p.assign(w - lr * mhat / (vhat.sqrt() + a["eps"])), m, v]


OPT_IMPL: dict[str, tuple[Callable, Callable]] = {
    "sgd": (_sgd_state, _sgd),
    "adam": (_adam_state, _adam),
    "adamw": (_adam_state, lambda p, g, st, lr, t, a: _adam(p, g, st, lr, t, a, decoupled=a["weight_decay"])),
}
