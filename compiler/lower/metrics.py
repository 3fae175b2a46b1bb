"""Metrics: per-example sums accumulated on the device, finished on the host at log time."""

import math
from typing import Callable

from tinygrad import dtypes

METRIC_SUM: dict[str, Callable] = {  # (pred, y) -> per-example contribution [B]
    "accuracy": lambda p, y: (p.argmax(-1) == y).cast(dtypes.float32) if p.shape[-1] > 1 else
    ((p.reshape(-1) > 0).cast(dtypes.int32) == y).cast(dtypes.float32),
    "rmse": lambda p, y: ((p - y) ** 2).mean(-1),
    "mae": lambda p, y: (p - y).abs().mean(-1),
}
METRIC_FINISH: dict[str, Callable] = {  # (sum, count) -> value
    "accuracy": lambda s, n: s / n,
    "rmse": lambda s, n: math.sqrt(s / n),
    "mae": lambda s, n: s / n,
}
