"""Optimizers, PyTorch semantics.

Each optimizer is a pair (state, update):
    state(p, args) -> {name: zero tensor}                     its per-parameter state
    update(w, g, st, lr, t, args) -> (new w, [state assigns])  one step: `w` is the parameter's
                                                              current value (detached), `t` the
                                                              step number (1-based), `lr` a tensor
The caller assigns the new value, so decoupled weight decay and parameter groups compose with
every optimizer. With dynamic loss scaling (`precision = f16`) the args carry `OK`, a boolean
tensor: false when the step's gradients overflowed, and then every state keeps its value.
"""

from typing import Callable

from tinygrad import Tensor

from ..catalog.base import OPTIMIZERS


OK = "__grads_finite__"  # args key of the overflow gate


def _set(buf: Tensor, value: Tensor, a) -> Tensor:
    """buf := value, unless the step is skipped (gradients overflowed under loss scaling)."""
    ok = a.get(OK)
    return buf.assign(value if ok is None else ok.where(value, buf))


def _zeros(p: Tensor) -> Tensor:
    return Tensor.zeros(p.shape, dtype=p.dtype).contiguous()


def _sgd_state(p: Tensor, a) -> dict:
    return {"buf": _zeros(p)} if a["momentum"] else {}


@OPTIMIZERS.implement("sgd", state=_sgd_state)
def _sgd(w, g, st, lr, t, a):
    if a["weight_decay"]:
        g = g + a["weight_decay"] * w
    if a["momentum"]:
        # first step: buf = g (t == 1 selects it without a Python branch in the jitted graph)
        buf = _set(st["buf"], (t == 1).where(g, st["buf"] * a["momentum"] + g), a)
        g = g + a["momentum"] * buf if a["nesterov"] else buf
        return w - lr * g, [buf]
    return w - lr * g, []


def _adam_state(p: Tensor, a) -> dict:
    return {"m": _zeros(p), "v": _zeros(p)}


@OPTIMIZERS.implement("adam", state=_adam_state)
def _adam(w, g, st, lr, t, a, decoupled=0.0):
    b1, b2 = a["b1"], a["b2"]
    if decoupled:
        w = w * (1 - lr * decoupled)
    m = _set(st["m"], st["m"] * b1 + g * (1 - b1), a)
    v = _set(st["v"], st["v"] * b2 + g * g * (1 - b2), a)
    mhat = m / (1 - b1 ** t)
    vhat = v / (1 - b2 ** t)
    return w - lr * mhat / (vhat.sqrt() + a["eps"]), [m, v]


def _rmsprop_state(p: Tensor, a) -> dict:
    st = {"v": _zeros(p)}
    if a["centered"]:
        st["gavg"] = _zeros(p)
    if a["momentum"]:
        st["buf"] = _zeros(p)
    return st


@OPTIMIZERS.implement("rmsprop", state=_rmsprop_state)
def _rmsprop(w, g, st, lr, t, a):
    alpha = a["alpha"]
    if a["weight_decay"]:
        g = g + a["weight_decay"] * w
    v = _set(st["v"], st["v"] * alpha + g * g * (1 - alpha), a)
    assigns = [v]
    if a["centered"]:
        gavg = _set(st["gavg"], st["gavg"] * alpha + g * (1 - alpha), a)
        assigns.append(gavg)
        # v - gavg^2 >= 0 in exact arithmetic; the clamp keeps float rounding from taking sqrt of a tiny negative
        d = (v - gavg * gavg).maximum(0.0).sqrt() + a["eps"]
    else:
        d = v.sqrt() + a["eps"]
    if a["momentum"]:  # torch: the buffer starts at zero, no first-step special case
        buf = _set(st["buf"], st["buf"] * a["momentum"] + g / d, a)
        return w - lr * buf, [*assigns, buf]
    return w - lr * g / d, assigns


def _adagrad_state(p: Tensor, a) -> dict:
    return {"sum": Tensor.full(p.shape, float(a["initial_accumulator_value"]), dtype=p.dtype).contiguous()}


@OPTIMIZERS.implement("adagrad", state=_adagrad_state)
def _adagrad(w, g, st, lr, t, a):
    if a["weight_decay"]:
        g = g + a["weight_decay"] * w
    s = _set(st["sum"], st["sum"] + g * g, a)
    clr = lr / (1 + (t - 1) * a["lr_decay"]) if a["lr_decay"] else lr
    return w - clr * g / (s.sqrt() + a["eps"]), [s]


@OPTIMIZERS.implement("lamb", state=_adam_state)
def _lamb(w, g, st, lr, t, a):
    b1, b2 = a["b1"], a["b2"]
    m = _set(st["m"], st["m"] * b1 + g * (1 - b1), a)
    v = _set(st["v"], st["v"] * b2 + g * g * (1 - b2), a)
    r = (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + a["eps"])
    if a["weight_decay"]:
        r = r + a["weight_decay"] * w
    w_norm, r_norm = (w * w).sum().sqrt(), (r * r).sum().sqrt()
    trust = ((w_norm > 0) & (r_norm > 0)).where(w_norm / r_norm.maximum(1e-30), 1.0)  # no 0/0 in either branch
    return w - lr * trust * r, [m, v]


OPTIMIZERS.implement("adamw", state=_adam_state)(
    lambda w, g, st, lr, t, a: _adam(w, g, st, lr, t, a, decoupled=a["weight_decay"]))

# name -> (state, update), from the registry (the lowering reads OPTIMIZERS.impl(kind, part) itself)
OPT_IMPL: dict[str, tuple[Callable, Callable]] = {
    name: (OPTIMIZERS.impl(name, "state"), OPTIMIZERS.impl(name)) for name in OPTIMIZERS.table()}
