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
  matrix (not biases).
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
    "Optimizer",
    "make_optimizer",
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


# ----------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------

def train_steps(params, batches, activations, loss, loss_args, optimizer: Optimizer, lrs,
                l2: float = 0.0, clip: float | None = None):
    """Run one step per batch. Returns (losses before each update incl. L2, final params).

    ``lrs`` is one learning rate per step (a float is used for every step).
    Order per step: loss+grads (L2 included) -> clip (if ``clip``) -> optimizer.
    """
    if np.isscalar(lrs):
        lrs = [float(lrs)] * len(batches)
    if len(lrs) != len(batches):
        raise ValueError(f"{len(batches)} batches but {len(lrs)} learning rates")
    params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
    losses = []
    for (x, y), lr in zip(batches, lrs):
        value, grads = loss_and_grads(params, x, y, activations, loss, loss_args, l2)
        if clip is not None:
            grads = clip_grads(grads, clip)
        params = optimizer.step(params, grads, lr)
        losses.append(value)
    return losses, params
