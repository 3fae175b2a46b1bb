"""Independent pure-numpy (float64) reference for a small dense network's training step.

This module deliberately imports nothing from the project: it is the oracle the
tinygrad-compiled training step is checked against.  Everything (forward,
explicit backprop, losses, L2, gradient clipping, optimizers) is written out by
hand with PyTorch semantics.

Conventions
-----------
* A network is an ordered dict of parameters ``"<layer>.W"`` (shape [in, out])
  and ``"<layer>.b"`` (shape [out]); layers are taken in the dict's insertion
  order of their ``.W`` entries.  Dense forward is ``x @ W + b``.
* ``activations[i]`` is applied after dense layer ``i``; one of
  ``"relu" | "tanh" | "sigmoid" | "gelu" | "leaky_relu" | None``.
  ``gelu`` is the tanh approximation, ``leaky_relu`` has slope 0.01.
* Losses are means over the batch (``cross_entropy``) or over all elements
  (``mse``, ``mae``, ``huber``, ``bce``).
* L2 with coefficient ``lam`` adds ``lam/2 * sum(W**2)`` for every dense weight
  matrix (not biases); L1 with coefficient ``l1`` adds ``l1 * sum|W|`` (gradient
  ``l1 * sign(W)``, 0 at 0).
* ``make_optimizer`` builds sgd/adam/adamw; ``make_any_optimizer`` also builds
  rmsprop, adagrad (torch.optim semantics) and lamb (You et al. 2020).
* ``train_steps`` optionally applies L1, clip-by-value, per-parameter lr
  multipliers, frozen parameters, per-parameter optimizers (groups) and
  decoupled weight decay (``p_new -= lr * wd * p_before``), in the order of the
  compiled step.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "init_params",
    "layer_names",
    "forward",
    "loss_and_grads",
    "grad_norm",
    "clip_grads",
    "clip_grad_value",
    "penalties",
    "Optimizer",
    "AnyOptimizer",
    "make_optimizer",
    "make_any_optimizer",
    "train_steps",
]

LEAKY_SLOPE = 0.01
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


# ----------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------

def init_params(sizes: list[int], seed: int) -> dict[str, np.ndarray]:
    """Dense chain ``sizes[0] -> sizes[1] -> ...``; names ``l0.W, l0.b, l1.W, ...``.

    Weights and biases are float64 standard normal * 0.3 from
    ``np.random.default_rng(seed)`` (drawn in the order l0.W, l0.b, l1.W, ...).
    """
    if len(sizes) < 2:
        raise ValueError("need at least an input and an output size")
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        params[f"l{i}.W"] = rng.standard_normal((n_in, n_out)) * 0.3
        params[f"l{i}.b"] = rng.standard_normal((n_out,)) * 0.3
    return params


def layer_names(params: dict[str, np.ndarray]) -> list[str]:
    """Dense layer names in order (every key ending in ``.W``)."""
    return [k[:-2] for k in params if k.endswith(".W")]


# ----------------------------------------------------------------------------
# activations: (f(z), f'(z)) elementwise
# ----------------------------------------------------------------------------

def _sigmoid(z: np.ndarray) -> np.ndarray:
    # numerically stable logistic
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def _act_relu(z):
    return np.maximum(z, 0.0), (z > 0).astype(z.dtype)


def _act_tanh(z):
    t = np.tanh(z)
    return t, 1.0 - t * t


def _act_sigmoid(z):
    s = _sigmoid(z)
    return s, s * (1.0 - s)


def _act_gelu(z):
    u = _GELU_C * (z + _GELU_K * z ** 3)
    t = np.tanh(u)
    f = 0.5 * z * (1.0 + t)
    df = 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * z * z)
    return f, df


def _act_leaky_relu(z):
    pos = z > 0
    return np.where(pos, z, LEAKY_SLOPE * z), np.where(pos, 1.0, LEAKY_SLOPE)


def _act_none(z):
    return z, np.ones_like(z)


ACTIVATIONS: dict[str | None, Callable] = {
    "relu": _act_relu,
    "tanh": _act_tanh,
    "sigmoid": _act_sigmoid,
    "gelu": _act_gelu,
    "leaky_relu": _act_leaky_relu,
    None: _act_none,
    "none": _act_none,
    "linear": _act_none,
}


def _activation(name):
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}") from None


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------

def _forward_cached(params, x, activations):
    names = layer_names(params)
    if len(activations) != len(names):
        raise ValueError(f"{len(names)} dense layers but {len(activations)} activations")
    h = np.asarray(x, dtype=np.float64)
    cache = []  # (layer name, layer input, activation derivative at pre-activation)
    for name, act in zip(names, activations):
        z = h @ params[name + ".W"]
        if name + ".b" in params:
            z = z + params[name + ".b"]
        a, da = _activation(act)(z)
        cache.append((name, h, da))
        h = a
    return h, cache


def forward(params: dict[str, np.ndarray], x: np.ndarray, activations: list) -> np.ndarray:
    """Network output (after the last activation, usually ``None``)."""
    out, _ = _forward_cached(params, x, activations)
    return out


# ----------------------------------------------------------------------------
# losses: (scalar loss, dloss/dout)
# ----------------------------------------------------------------------------

def _as_target(y, pred):
    y = np.asarray(y, dtype=np.float64)
    if y.shape != pred.shape:
        if y.size != pred.size:
            raise ValueError(f"target shape {y.shape} does not match prediction {pred.shape}")
        y = y.reshape(pred.shape)
    return y


def _loss_cross_entropy(logits, y, smoothing=0.0):
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError("cross_entropy expects logits of shape [batch, classes]")
    n, k = logits.shape
    yi = np.asarray(y).reshape(-1).astype(np.int64)
    if yi.shape[0] != n:
        raise ValueError("cross_entropy: one integer label per row expected")
    shifted = logits - logits.max(axis=1, keepdims=True)
    logz = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    logp = shifted - logz
    target = np.zeros_like(logits)
    target[np.arange(n), yi] = 1.0
    target = (1.0 - smoothing) * target + smoothing / k
    loss = -(target * logp).sum() / n
    grad = (np.exp(logp) - target) / n
    return float(loss), grad


def _loss_mse(pred, y):
    y = _as_target(y, pred)
    e = pred - y
    return float(np.mean(e * e)), 2.0 * e / e.size


def _loss_mae(pred, y):
    y = _as_target(y, pred)
    e = pred - y
    return float(np.mean(np.abs(e))), np.sign(e) / e.size


def _loss_huber(pred, y, delta=1.0):
    y = _as_target(y, pred)
    e = pred - y
    ae = np.abs(e)
    quad = ae <= delta
    per = np.where(quad, 0.5 * e * e, delta * (ae - 0.5 * delta))
    grad = np.where(quad, e, delta * np.sign(e)) / e.size
    return float(np.mean(per)), grad


def _loss_bce(logits, y):
    y = _as_target(y, logits)
    z = logits
    # log(1 + exp(z)) - y z, computed stably
    per = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    grad = (_sigmoid(z) - y) / z.size
    return float(np.mean(per)), grad


LOSSES: dict[str, Callable] = {
    "cross_entropy": _loss_cross_entropy,
    "mse": _loss_mse,
    "mae": _loss_mae,
    "huber": _loss_huber,
    "bce": _loss_bce,
}


def cross_entropy(logits, y_int, smoothing=0.0):
    return _loss_cross_entropy(logits, y_int, smoothing)[0]


def mse(pred, y):
    return _loss_mse(np.asarray(pred, dtype=np.float64), y)[0]


def mae(pred, y):
    return _loss_mae(np.asarray(pred, dtype=np.float64), y)[0]


def huber(pred, y, delta=1.0):
    return _loss_huber(np.asarray(pred, dtype=np.float64), y, delta)[0]


def bce(logits, y):
    return _loss_bce(np.asarray(logits, dtype=np.float64), y)[0]


# ----------------------------------------------------------------------------
# loss + explicit backprop
# ----------------------------------------------------------------------------

def loss_and_grads(params, x, y, activations, loss: str, loss_args: dict | None = None,
                   l2: float = 0.0) -> tuple[float, dict[str, np.ndarray]]:
    """Loss (including ``l2/2 * sum W**2``) and its gradient for every parameter.

    Gradients are returned in the same key order as ``params``.
    """
    try:
        loss_fn = LOSSES[loss]
    except KeyError:
        raise ValueError(f"unknown loss {loss!r}") from None
    out, cache = _forward_cached(params, x, activations)
    value, g = loss_fn(out, y, **(loss_args or {}))

    grads: dict[str, np.ndarray] = {}
    for name, h_in, da in reversed(cache):
        gz = g * da                                   # through the activation
        grads[name + ".W"] = h_in.T @ gz
        if name + ".b" in params:
            grads[name + ".b"] = gz.sum(axis=0)
        g = gz @ params[name + ".W"].T                # to the layer input

    if l2:
        for name, _, _ in cache:
            w = params[name + ".W"]
            value += 0.5 * l2 * float(np.sum(w * w))
            grads[name + ".W"] = grads[name + ".W"] + l2 * w

    return float(value), {k: grads[k] for k in params}


# ----------------------------------------------------------------------------
# gradient clipping (torch.nn.utils.clip_grad_norm_ semantics)
# ----------------------------------------------------------------------------

def grad_norm(grads: dict[str, np.ndarray]) -> float:
    return math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))


def clip_grads(grads: dict[str, np.ndarray], max_norm: float) -> dict[str, np.ndarray]:
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``."""
    total = grad_norm(grads)
    coef = min(max_norm / (total + 1e-6), 1.0)
    return {k: g * coef for k, g in grads.items()}


def clip_grad_value(grads: dict[str, np.ndarray], value: float) -> dict[str, np.ndarray]:
    """Clamp every gradient element to ``[-value, value]`` (torch.nn.utils.clip_grad_value_)."""
    return {k: np.clip(g, -value, value) for k, g in grads.items()}


# ----------------------------------------------------------------------------
# penalties on the weight matrices
# ----------------------------------------------------------------------------

def penalties(params: dict[str, np.ndarray], grads: dict[str, np.ndarray], l1: float = 0.0, l2: float = 0.0,
              skip=()) -> tuple[float, dict[str, np.ndarray]]:
    """(penalty value, grads with the penalty gradients added) for every ``.W`` not in ``skip``.

    L2: ``l2/2 * sum(W**2)``, gradient ``l2 * W``.  L1: ``l1 * sum|W|``, gradient
    ``l1 * sign(W)`` (the subgradient 0 at W = 0).
    """
    value = 0.0
    out = dict(grads)
    for k, w in params.items():
        if not k.endswith(".W") or k in skip:
            continue
        if l2:
            value += 0.5 * l2 * float(np.sum(w * w))
            out[k] = out[k] + l2 * w
        if l1:
            value += l1 * float(np.sum(np.abs(w)))
            out[k] = out[k] + l1 * np.sign(w)
    return value, out


# ----------------------------------------------------------------------------
# optimizers (PyTorch semantics, per-parameter state)
# ----------------------------------------------------------------------------

class Optimizer:
    """Stateful optimizer; ``step(params, grads, lr)`` returns a new params dict.

    kinds and hyper-parameters (defaults as in torch):
      sgd:   momentum=0, nesterov=False, weight_decay=0 (coupled)
      adam:  b1=0.9, b2=0.999, eps=1e-8, weight_decay=0 (coupled, as torch.optim.Adam)
      adamw: b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01 (decoupled, all params)
    ``betas=(b1, b2)`` is accepted as an alias for b1/b2.
    """

    _DEFAULTS = {
        "sgd": {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
        "adam": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.0},
        "adamw": {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.01},
    }

    def __init__(self, kind: str, **hyper):
        kind = kind.lower()
        if kind not in self._DEFAULTS:
            raise ValueError(f"unknown optimizer {kind!r}")
        hyper = dict(hyper)
        if "betas" in hyper:
            hyper["b1"], hyper["b2"] = hyper.pop("betas")
        unknown = set(hyper) - set(self._DEFAULTS[kind])
        if unknown:
            raise ValueError(f"unknown hyper-parameters for {kind}: {sorted(unknown)}")
        self.kind = kind
        self.hyper = {**self._DEFAULTS[kind], **hyper}
        if kind == "sgd" and self.hyper["nesterov"] and self.hyper["momentum"] <= 0:
            raise ValueError("nesterov requires momentum > 0")
        self.state: dict[str, dict] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float):
        new = {}
        for name, p in params.items():
            g = np.asarray(grads[name], dtype=np.float64)
            st = self.state.setdefault(name, {})
            if self.kind == "sgd":
                new[name] = self._sgd(p, g, lr, st)
            else:
                new[name] = self._adam(p, g, lr, st)
        return new

    def _sgd(self, p, g, lr, st):
        h = self.hyper
        if h["weight_decay"]:
            g = g + h["weight_decay"] * p
        mu = h["momentum"]
        if mu:
            if "buf" not in st:
                buf = g.copy()
            else:
                buf = mu * st["buf"] + g
            st["buf"] = buf
            g = g + mu * buf if h["nesterov"] else buf
        return p - lr * g

    def _adam(self, p, g, lr, st):
        h = self.hyper
        b1, b2, eps, wd = h["b1"], h["b2"], h["eps"], h["weight_decay"]
        if self.kind == "adamw":
            p = p * (1.0 - lr * wd)
        elif wd:
            g = g + wd * p
        t = st.get("t", 0) + 1
        m = b1 * st.get("m", 0.0) + (1.0 - b1) * g
        v = b2 * st.get("v", 0.0) + (1.0 - b2) * g * g
        st["t"], st["m"], st["v"] = t, m, v
        mhat = m / (1.0 - b1 ** t)
        vhat = v / (1.0 - b2 ** t)
        return p - lr * mhat / (np.sqrt(vhat) + eps)


def make_optimizer(kind: str, **hyper) -> Optimizer:
    return Optimizer(kind, **hyper)


class AnyOptimizer(Optimizer):
    """``Optimizer`` plus rmsprop, adagrad and lamb (``t`` is the parameter's 1-based step):

      rmsprop: alpha=0.99, eps=1e-8, momentum=0, centered=False, weight_decay=0 (torch.optim.RMSprop)
          g += wd*p; v = alpha*v + (1-alpha)*g^2;
          centered: a = alpha*a + (1-alpha)*g, d = sqrt(v - a^2) + eps; else d = sqrt(v) + eps;
          momentum: buf = momentum*buf + g/d (buf starts at 0), p -= lr*buf; else p -= lr*g/d
      adagrad: lr_decay=0, eps=1e-10, initial_accumulator_value=0, weight_decay=0 (torch.optim.Adagrad)
          g += wd*p; s += g^2 (s starts at initial_accumulator_value);
          p -= lr/(1 + (t-1)*lr_decay) * g/(sqrt(s) + eps)
      lamb: b1=0.9, b2=0.999, eps=1e-6, weight_decay=0 (You et al. 2020; no torch builtin)
          Adam's m, v with bias correction; r = mhat/(sqrt(vhat) + eps) + wd*p;
          p -= lr * trust * r, trust = ||p||/||r|| per tensor (1 when either norm is 0)
    """

    _DEFAULTS = {
        **Optimizer._DEFAULTS,
        "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False, "weight_decay": 0.0},
        "adagrad": {"lr_decay": 0.0, "eps": 1e-10, "initial_accumulator_value": 0.0, "weight_decay": 0.0},
        "lamb": {"b1": 0.9, "b2": 0.999, "eps": 1e-6, "weight_decay": 0.0},
    }

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray], lr: float):
        if self.kind in Optimizer._DEFAULTS:
            return super().step(params, grads, lr)
        update = {"rmsprop": self._rmsprop, "adagrad": self._adagrad, "lamb": self._lamb}[self.kind]
        new = {}
        for name, p in params.items():
            g = np.asarray(grads[name], dtype=np.float64)
            new[name] = update(np.asarray(p, dtype=np.float64), g, lr, self.state.setdefault(name, {}))
        return new

    def _rmsprop(self, p, g, lr, st):
        h = self.hyper
        alpha, eps, mu = h["alpha"], h["eps"], h["momentum"]
        if h["weight_decay"]:
            g = g + h["weight_decay"] * p
        v = alpha * st.get("v", 0.0) + (1.0 - alpha) * g * g
        st["v"] = v
        if h["centered"]:
            a = alpha * st.get("a", 0.0) + (1.0 - alpha) * g
            st["a"] = a
            d = np.sqrt(v - a * a) + eps
        else:
            d = np.sqrt(v) + eps
        if mu:
            buf = mu * st.get("buf", 0.0) + g / d
            st["buf"] = buf
            return p - lr * buf
        return p - lr * g / d

    def _adagrad(self, p, g, lr, st):
        h = self.hyper
        t = st.get("t", 0) + 1
        if h["weight_decay"]:
            g = g + h["weight_decay"] * p
        s = st.get("sum", np.full_like(p, h["initial_accumulator_value"])) + g * g
        st["t"], st["sum"] = t, s
        clr = lr / (1.0 + (t - 1) * h["lr_decay"])
        return p - clr * g / (np.sqrt(s) + h["eps"])

    def _lamb(self, p, g, lr, st):
        h = self.hyper
        b1, b2 = h["b1"], h["b2"]
        t = st.get("t", 0) + 1
        m = b1 * st.get("m", 0.0) + (1.0 - b1) * g
        v = b2 * st.get("v", 0.0) + (1.0 - b2) * g * g
        st["t"], st["m"], st["v"] = t, m, v
        r = (m / (1.0 - b1 ** t)) / (np.sqrt(v / (1.0 - b2 ** t)) + h["eps"]) + h["weight_decay"] * p
        w_norm, r_norm = float(np.sqrt(np.sum(p * p))), float(np.sqrt(np.sum(r * r)))
        trust = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
        return p - lr * trust * r


def make_any_optimizer(kind: str, **hyper) -> AnyOptimizer:
    """Any of sgd, adam, adamw, rmsprop, adagrad, lamb."""
    return AnyOptimizer(kind, **hyper)


# ----------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------

def train_steps(params, batches, activations, loss, loss_args, optimizer: Optimizer | dict, lrs,
                l2: float = 0.0, clip: float | None = None, *, l1: float = 0.0, clip_value: float | None = None,
                weight_decay: float = 0.0, lr_scale: dict[str, float] | None = None, frozen=()):
    """Run one step per batch. Returns (losses before each update incl. penalties, final params).

    ``lrs`` is one learning rate per step (a float is used for every step).
    Order per step: loss+grads -> L2 and L1 on the trained ``.W`` -> clip by value (if
    ``clip_value``) -> clip the global norm (if ``clip``) -> optimizer -> decoupled decay.

    ``optimizer`` is one optimizer for every parameter or a dict name -> optimizer (parameter
    groups with their own settings). ``lr_scale`` multiplies a parameter's lr (a group's
    ``lr / base lr``); ``frozen`` names parameters that never change, get no penalty and do not
    count in the clipping norm; ``weight_decay`` is decoupled: ``p_new -= lr * wd * p_before``
    with that parameter's (scaled) lr, on every trained parameter.
    """
    if np.isscalar(lrs):
        lrs = [float(lrs)] * len(batches)
    if len(lrs) != len(batches):
        raise ValueError(f"{len(batches)} batches but {len(lrs)} learning rates")
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    unknown = (set(frozen) | set(lr_scale or {})) - set(params)
    if unknown:
        raise ValueError(f"no such parameters: {sorted(unknown)}")
    plain = not (l1 or clip_value is not None or weight_decay or lr_scale or frozen or isinstance(optimizer, dict))
    losses = []
    for (x, y), lr in zip(batches, lrs):
        if plain:  # the original path, kept exactly
            value, grads = loss_and_grads(params, x, y, activations, loss, loss_args, l2)
            if clip is not None:
                grads = clip_grads(grads, clip)
            params = optimizer.step(params, grads, lr)
            losses.append(value)
            continue
        value, grads = loss_and_grads(params, x, y, activations, loss, loss_args)
        extra, grads = penalties(params, grads, l1=l1, l2=l2, skip=frozen)
        grads = {k: g for k, g in grads.items() if k not in frozen}
        if clip_value is not None:
            grads = clip_grad_value(grads, clip_value)
        if clip is not None:
            grads = clip_grads(grads, clip)
        new = dict(params)
        for name, g in grads.items():
            plr = lr * (lr_scale or {}).get(name, 1.0)
            opt = optimizer[name] if isinstance(optimizer, dict) else optimizer
            new[name] = opt.step({name: params[name]}, {name: g}, plr)[name]
            if weight_decay:
                new[name] = new[name] - plr * weight_decay * params[name]
        params = new
        losses.append(value + extra)
    return losses, params
