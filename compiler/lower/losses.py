"""Losses: per-example values [B]; the step takes their mean.

`LOSSES.impl(kind)(pred, target, **args)`: classification targets are int32 class indices [B],
regression targets float and shaped like the prediction. Losses marked `pairwise` in the catalogue
compare the examples of a batch with each other and also get `mask` (float [B], 1 for real
examples, 0 for evaluation's padding; None in training).
"""

from collections.abc import Callable

from tinygrad import Tensor

from ..catalog.base import LOSSES

# Inside the square root of pairwise distances: keeps the gradient finite at distance 0.
DIST_EPS = 1e-12


@LOSSES.implement("cross_entropy")
def _cross_entropy(pred, y, smoothing, weights):
    k = pred.shape[-1]
    logp = pred.log_softmax(-1)
    onehot = y.one_hot(k).cast(logp.dtype)
    target = onehot * (1 - smoothing) + smoothing / k
    loss = -(logp * target).sum(-1)
    if weights is not None:  # the true class's weight; the batch mean still divides by B (Keras' class_weight)
        loss = loss * (onehot * Tensor(list(weights), dtype=logp.dtype)).sum(-1)
    return loss


@LOSSES.implement("bce")
def _bce(pred, y, pos_weight):
    y = y.reshape(pred.shape).cast(pred.dtype)
    # -log σ(x) = softplus(-x), -log(1 - σ(x)) = softplus(x), softplus(z) = max(z, 0) + log(1 + exp(-|z|))
    log1p = (1 + (-pred.abs()).exp()).log()
    if pos_weight == 1.0:  # the plain form: max(x, 0) - x*y + log(1 + exp(-|x|))
        return (pred.relu() - pred * y + log1p).mean(-1)
    sp_neg, sp_pos = (-pred).relu() + log1p, pred.relu() + log1p
    return (pos_weight * y * sp_neg + (1 - y) * sp_pos).mean(-1)


@LOSSES.implement("huber")
def _huber(pred, y, delta):
    e = (pred - y).abs()
    return (e <= delta).where(0.5 * e * e, delta * (e - 0.5 * delta)).mean(-1)


@LOSSES.implement("hinge")
def _hinge(pred, y, margin):
    k = pred.shape[-1]
    if k == 1:  # binary: labels {0, 1} -> s = -1, +1
        s = (y.reshape(pred.shape) > 0).where(1.0, -1.0).cast(pred.dtype)
        return (margin - s * pred).relu().mean(-1)
    onehot = y.one_hot(k).cast(pred.dtype)
    xy = (pred * onehot).sum(-1, keepdim=True)
    return ((margin - xy + pred).relu() * (1 - onehot)).sum(-1) / k


@LOSSES.implement("kl_div")
def _kl_div(pred, t):
    logq = pred.log_softmax(-1)
    pos = t > 0
    logt = pos.where(t, 1.0).log()  # log 1 = 0 where t = 0: 0*log 0 counts 0, with a finite gradient
    return pos.where(t * (logt - logq), 0.0).sum(-1)


def _pairs(pred, y, mask):
    """Euclidean distances [B, B], same-label pairs, the pairs (i, j != i) with j a real example."""
    b = pred.shape[0]
    diff = pred.unsqueeze(1) - pred.unsqueeze(0)
    sq = (diff * diff).sum(-1)
    d = (sq + DIST_EPS).sqrt()
    same = y.reshape(b, 1) == y.reshape(1, b)
    i = Tensor.arange(b).to(pred.device)
    other = i.reshape(b, 1) != i.reshape(1, b)
    real = Tensor.ones(b, device=pred.device) > 0 if mask is None else mask > 0
    pair = other * real.reshape(1, b)
    return sq, d, same, pair, real


@LOSSES.implement("triplet")
def _triplet(pred, y, margin, mask=None):
    _, d, same, pair, real = _pairs(pred, y, mask)
    pos = pair * same
    neg = pair * same.logical_not()
    d_ap = pos.where(d, 0.0).max(-1)  # hardest positive: the farthest of its class (d >= 0)
    d_an = neg.where(d, d.detach().max() + 1.0).min(-1)  # hardest negative: the nearest of another class
    ok = pos.any(-1) * neg.any(-1) * real
    return ok.where((d_ap - d_an + margin).relu(), 0.0)


@LOSSES.implement("contrastive")
def _contrastive(pred, y, margin, mask=None):
    sq, d, same, pair, real = _pairs(pred, y, mask)
    per_pair = same.where(sq, (margin - d).relu().square())
    n = pair.cast(pred.dtype).sum(-1)
    total = pair.where(per_pair, 0.0).sum(-1)
    return (n > 0).where(total / n.maximum(1.0), 0.0) * real.cast(pred.dtype)


@LOSSES.implement("focal")
def _focal(pred, y, gamma):
    """-(1 - p_t)^gamma * log p_t with p_t = softmax(pred)_y; gamma = 0 is cross_entropy without smoothing."""
    logp_t = (pred.log_softmax(-1) * y.one_hot(pred.shape[-1]).cast(pred.dtype)).sum(-1)
    if gamma == 0:
        return -logp_t
    return -((1 - logp_t.exp()) ** gamma) * logp_t


LOSSES.implement("mse")(lambda p, y: ((p - y) ** 2).mean(-1))
LOSSES.implement("mae")(lambda p, y: (p - y).abs().mean(-1))

# For callers outside a spec (tests): name -> the loss, with the catalogue's defaults for arguments left out.
LOSS_IMPL: dict[str, Callable] = {name: LOSSES.defaulted(name) for name in LOSSES.table()}
# Losses that compare examples of a batch with each other; they get the batch's mask in evaluation.
PAIRWISE: dict[str, bool] = {name: True for name in LOSSES.names() if LOSSES.get(name).extra.get("pairwise")}
