"""Metrics: state accumulated on the device batch by batch, finished on the host at log time.

Each metric has a flat state vector of a fixed size; every batch adds its (masked) increment
inside the jitted step or evaluation, so nothing is synchronised until the metric is logged.
Metrics that need every example's score at once (AUC) instead hand per-example scores to the
host after evaluation (`scores`); they are measured on the validation split only.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from tinygrad import Tensor, dtypes  # noqa: F401 - Tensor for annotations


@dataclass(frozen=True)
class MetricCtx:
    """What a metric may depend on besides its arguments."""

    n_classes: int | None  # classification: number of classes; regression: None
    n_outputs: int  # width of the prediction the metric reads


@dataclass(frozen=True)
class MetricImpl:
    # size(ctx, args) -> number of floats of state
    size: Callable[[MetricCtx, dict], int]
    # update(pred [B, n_outputs], y ([B] int classes or [B, k] floats), mask [B] float, ctx, args) -> state increment [size]
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
                      update=lambda p, y, m, ctx, a: (fn(p, y, ctx, **a) * m).sum().reshape(1),
                      finish=lambda s, n, ctx, a: finish(float(s[0]), n))


def _predicted_class(p: Tensor) -> Tensor:
    """argmax of the logits; with one logit, class 1 when it is positive."""
    return p.argmax(-1) if p.shape[-1] > 1 else (p.reshape(-1) > 0).cast(dtypes.int32)


METRIC_IMPL: dict[str, MetricImpl] = {
    "accuracy": per_example(lambda p, y, ctx: (_predicted_class(p) == y).cast(dtypes.float32)),
    "rmse": per_example(lambda p, y, ctx: ((p - y) ** 2).mean(-1), lambda s, n: math.sqrt(s / n)),
    "mae": per_example(lambda p, y, ctx: (p - y).abs().mean(-1)),
}


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
        impl = METRIC_IMPL[kind]
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
