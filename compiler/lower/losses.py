"""Losses: per-example values [B]; the step takes their mean."""

from typing import Callable


def _cross_entropy(pred, y, smoothing=0.0):
    k = pred.shape[-1]
    logp = pred.log_softmax(-1)
    target = y.one_hot(k).cast(logp.dtype) * (1 - smoothing) + smoothing / k
    return -(logp * target).sum(-1)


def _bce(pred, y):
    y = y.reshape(pred.shape).cast(pred.dtype)
    # max(x, 0) - x*y + log(1 + exp(-|x|)): stable for large |x|
    return (pred.relu() - pred * y + (1 + (-pred.abs()).exp()).log()).mean(-1)


def _huber(pred, y, delta=1.0):
    e = (pred - y).abs()
    return (e <= delta).where(0.5 * e * e, delta * (e - 0.5 * delta)).mean(-1)


LOSS_IMPL: dict[str, Callable] = {
    "mse": lambda p, y: ((p - y) ** 2).mean(-1),
    "mae": lambda p, y: (p - y).abs().mean(-1),
    "huber": _huber,
    "bce": _bce,
    "cross_entropy": _cross_entropy,
}

# Losses that compare examples of a batch with each other; they get the batch's mask in evaluation.
PAIRWISE: dict[str, bool] = {}
