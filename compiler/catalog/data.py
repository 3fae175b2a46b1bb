"""Data sources, stopping rules and regularizers."""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- data sources ------------------------------------------------------------------------------


@SOURCES.register
def csv(path: String, target: Names(), features: Names() = None):
    """A CSV file with a header row. `target`: the target column(s); `features`: default every other column."""


@SOURCES.register
def npz(path: String, x: String = "x", y: String = "y"):
    """A NumPy .npz archive with a features array and a targets array."""


# ---- stopping rules ----------------------------------------------------------------------------


@STOP_RULES.register
def plateau(monitor: MetricName(), patience: Int(min=1) = 5, min_delta: NonNegative = 0.0,
            restore_best: Bool = True, mode: Choice("auto", "min", "max") = "auto"):
    """Early stopping: stop when `monitor` has not improved by `min_delta` for `patience` evaluations."""


# ---- regularizers ------------------------------------------------------------------------------


@REGULARIZERS.register
def elastic_net(alpha: NonNegative, l1_ratio: Float(0.0, 1.0) = 0.5):
    """alpha * (l1_ratio * sum|w| + (1 - l1_ratio) / 2 * sum(w^2)) over weight matrices."""
