"""Metrics: state accumulated on the device batch by batch, finished on the host at log time.

Each metric has a flat state vector of a fixed size; every batch adds its (masked) increment
inside the jitted step or evaluation, so nothing is synchronised until the metric is logged.
Metrics that need every example's score at once (AUC) instead hand per-example scores to the
host after evaluation (`scores`); they are measured on the validation split only.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tinygrad import Tensor, dtypes

from ..catalog.base import METRICS


@dataclass(frozen=True)
class MetricCtx:
    """What a metric may depend on besides its arguments."""

    n_classes: int | None  # classification: number of classes; regression: None
    n_outputs: int  # width of the prediction the metric reads
    # regression: a value near each target column's mean (the training mean, in the data's units),
    # subtracted before sums of squares are accumulated so that float32 keeps their precision; None: 0
    target_center: tuple[float, ...] | None = None


@dataclass(frozen=True)
class MetricImpl:
    # size(ctx, args) -> number of floats of state
    size: Callable[[MetricCtx, dict], int]
    # update(pred [B, n_outputs], y ([B] int classes or [B, k] floats), mask [B] float, ctx, args)
    #   -> state increment [size]
    update: Callable[..., Tensor]
    # finish(state np.ndarray [size], count, ctx, args) -> float (or a nested list for non-scalar metrics)
    finish: Callable[..., object]
    scalar: bool = True  # False: reported at the end (confusion), not in the per-epoch rows
    # scores(pred, ctx, args) -> per-example score [B], for metrics finished on the host from every example
    scores: Callable[..., Tensor] | None = None
    # host(scores np.ndarray [n], labels np.ndarray [n], ctx, args) -> float
    host: Callable[..., float] | None = None


def per_example(fn: Callable, finish: Callable = lambda s, n: s / n) -> MetricImpl:
    """A metric that is a function of a sum of per-example values: accuracy, mae, ..."""
    return MetricImpl(size=lambda ctx, a: 1,
                      update=lambda p, y, m, ctx, a: (_per_example(fn(p, y, ctx, **a)) * m).sum().reshape(1),
                      finish=lambda s, n, ctx, a: finish(float(s[0]), n))


def _per_example(v: Tensor) -> Tensor:
    """[B], from a value at every position ([B, T]: text(targets = every)) by its mean over the positions."""
    return v.mean(tuple(range(1, v.ndim))) if v.ndim > 1 else v


def _predicted_class(p: Tensor) -> Tensor:
    """argmax of the logits; with one logit, class 1 when it is positive."""
    return p.argmax(-1) if p.shape[-1] > 1 else (p.reshape(-1) > 0).cast(dtypes.int32)


# ---- ranks: top_k, map_at_k ------------------------------------------------------------------------


def _above(p: Tensor, y: Tensor) -> Tensor:
    """Per example, the number of logits strictly greater than the target class's: [B] float.
    One logit z reads as the two logits [0, z] (the same probabilities: sigmoid(z) = softmax([0, z])[1])."""
    if p.shape[-1] == 1:
        p = Tensor.cat(p.zeros_like(), p, dim=-1)
    is_target = y.reshape(-1, 1) == Tensor.arange(p.shape[-1]).reshape(1, -1)
    target = is_target.where(p, 0.0).sum(-1, keepdim=True)
    return (p > target).cast(dtypes.float32).sum(-1)


def _top_k(p: Tensor, y: Tensor, ctx: MetricCtx, k: int) -> Tensor:
    return (_above(p, y) < k).cast(dtypes.float32)


def _map_at_k(p: Tensor, y: Tensor, ctx: MetricCtx, k: int) -> Tensor:
    rank = _above(p, y) + 1.0
    return (rank <= k).where(1.0 / rank, 0.0)


# ---- the confusion matrix and what is read from it: precision, recall, f1 ----------------------------


def _confusion_size(ctx: MetricCtx, a: dict) -> int:
    return ctx.n_classes * ctx.n_classes


def _confusion_update(p: Tensor, y: Tensor, m: Tensor, ctx: MetricCtx, a: dict) -> Tensor:
    """Counts [K, K] flattened: rows the true class, columns the predicted one (masked rows add nothing)."""
    k = ctx.n_classes
    classes = Tensor.arange(k).reshape(1, k)
    true = (y.reshape(-1, 1) == classes).cast(dtypes.float32) * m.reshape(-1, 1)
    pred = (_predicted_class(p).reshape(-1, 1) == classes).cast(dtypes.float32)
    return (true.unsqueeze(2) * pred.unsqueeze(1)).sum(0).reshape(k * k)


def confusion_matrix(state: np.ndarray, ctx: MetricCtx) -> np.ndarray:
    """A confusion state as a [K, K] float64 matrix."""
    k = ctx.n_classes
    return np.asarray(state, dtype=np.float64).reshape(k, k)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0 (scikit-learn's zero_division = 0)."""
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def class_scores(conf: np.ndarray, which: str, average: str) -> float:
    """precision, recall or f1 from a confusion matrix, as scikit-learn's precision_score,
    recall_score and f1_score with zero_division = 0 and labels = the classes present in the
    targets or the predictions (so `macro` averages over those)."""
    total = conf.sum()
    if total == 0:
        return math.nan
    tp = np.diag(conf)
    predicted, support = conf.sum(0), conf.sum(1)
    if average == "micro":  # one label per example: tp / predicted = tp / support = accuracy
        return float(tp.sum() / total)
    score = {"precision": lambda: _ratio(tp, predicted), "recall": lambda: _ratio(tp, support),
             "f1": lambda: _ratio(2 * tp, predicted + support)}[which]()
    if average == "weighted":
        return float((score * support).sum() / support.sum()) if support.sum() > 0 else 0.0
    present = (predicted + support) > 0
    return float(score[present].mean())


def _from_confusion(which: str) -> MetricImpl:
    return MetricImpl(size=_confusion_size, update=_confusion_update,
                      finish=lambda s, n, ctx, a: class_scores(confusion_matrix(s, ctx), which, a["average"]))


CONFUSION = MetricImpl(size=_confusion_size, update=_confusion_update, scalar=False,
                       finish=lambda s, n, ctx, a: np.rint(confusion_matrix(s, ctx)).astype(np.int64).tolist())


# ---- auc: finished on the host from every validation example's score ------------------------------


def binary_score(p: Tensor, ctx: MetricCtx, a: dict) -> Tensor:
    """One score per example: the logit, or logit1 - logit0 with two logits: [B]."""
    if p.shape[-1] == 1:
        return p.reshape(-1)
    if p.shape[-1] == 2:
        return p[:, 1] - p[:, 0]
    raise ValueError(f"auc needs one or two logits per example, the model gives {p.shape[-1]}")


def roc_auc(scores: np.ndarray, labels: np.ndarray, ctx: MetricCtx | None = None, a: dict | None = None) -> float:
    """Exact ROC AUC by the Mann-Whitney U statistic: ties get their average rank, so a tied
    positive/negative pair counts one half. nan when the labels hold a single class (scikit-learn
    raises there) or a score is nan."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    pos = np.asarray(labels).reshape(-1) == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0 or np.isnan(s).any():
        return math.nan
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # 1-based rank of each distinct value's last occurrence
    ranks = (last - (counts - 1) / 2.0)[inverse.reshape(-1)]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _no_device_state(*_args, **_kw):
    raise AssertionError("a host metric has no device state")


AUC = MetricImpl(size=lambda ctx, a: 0, update=_no_device_state, finish=_no_device_state,
                 scores=binary_score, host=roc_auc)


# ---- r2: per column sums of y, y^2 and squared errors ----------------------------------------------


def _r2_update(p: Tensor, y: Tensor, m: Tensor, ctx: MetricCtx, a: dict) -> Tensor:
    """Per column: sum of (y - c), sum of (y - c)^2 and of squared errors, c = ctx.target_center
    (SST does not depend on c; a c near the mean avoids cancelling large float32 sums)."""
    m = m.reshape(-1, 1)
    if ctx.target_center is not None:
        y_c = y - Tensor.cat(*[Tensor.full((1,), float(c)) for c in ctx.target_center]).reshape(1, -1)
    else:
        y_c = y
    return Tensor.cat((y_c * m).sum(0), (y_c * y_c * m).sum(0), ((p - y) ** 2 * m).sum(0))


def r2_score(state: np.ndarray, n: float, ctx: MetricCtx, a: dict | None = None) -> float:
    """scikit-learn's r2_score (multioutput = uniform_average, force_finite = True) from the sums.
    A column whose spread is below what float32 sums resolve (SST <= 1e-5 sum (y - c)^2) is
    constant: 1 when predicted exactly, else 0."""
    if not n:
        return math.nan
    k = ctx.n_outputs
    s = np.asarray(state, dtype=np.float64)
    sy, syy, sse = s[:k], s[k:2 * k], s[2 * k:3 * k]
    sst = syy - sy * sy / n
    constant = sst <= 1e-5 * np.maximum(syy, np.finfo(np.float64).tiny)
    per_column = np.where(constant, np.where(sse == 0, 1.0, 0.0), 1.0 - sse / np.where(constant, 1.0, sst))
    return float(per_column.mean())


R2 = MetricImpl(size=lambda ctx, a: 3 * ctx.n_outputs, update=_r2_update, finish=r2_score)


METRICS.implement("accuracy")(per_example(lambda p, y, ctx: (_predicted_class(p) == y).cast(dtypes.float32)))
METRICS.implement("top_k")(per_example(_top_k))
METRICS.implement("map_at_k")(per_example(_map_at_k))
for _name in ("precision", "recall", "f1"):
    METRICS.implement(_name)(_from_confusion(_name))
METRICS.implement("confusion")(CONFUSION)
METRICS.implement("auc")(AUC)
METRICS.implement("rmse")(per_example(lambda p, y, ctx: ((p - y) ** 2).mean(-1), lambda s, n: math.sqrt(s / n)))
METRICS.implement("mae")(per_example(lambda p, y, ctx: (p - y).abs().mean(-1)))
METRICS.implement("r2")(R2)

METRIC_IMPL: dict[str, MetricImpl] = METRICS.table()  # name -> MetricImpl: the registry's own table


@dataclass(frozen=True)
class Slot:
    """One metric's place in a split's state vector."""

    kind: str
    impl: MetricImpl
    args: dict
    offset: int
    size: int


def layout(kinds_args: list[tuple[str, dict]], ctx: MetricCtx, split: str) -> tuple[tuple[Slot, ...], int]:
    """Slots after [loss sum, count]; host metrics are left out (they have no device state)."""
    slots, offset = [], 2
    for kind, args in kinds_args:
        impl = METRICS.impl(kind)
        if impl.host is not None:
            continue
        size = impl.size(ctx, args)
        slots.append(Slot(kind, impl, args, offset, size))
        offset += size
    return tuple(slots), offset


def finish(slots: tuple[Slot, ...], state: np.ndarray, ctx: MetricCtx) -> dict[str, object]:
    """Host side: a split's state vector -> {loss, metric: value}."""
    n = float(state[1])
    out: dict[str, object] = {"loss": float(state[0]) / n if n else math.nan}
    for s in slots:
        out[s.kind] = s.impl.finish(state[s.offset:s.offset + s.size], n, ctx, s.args)
    return out
