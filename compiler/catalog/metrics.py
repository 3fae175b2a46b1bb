"""Metrics: measured on the device, finished on the host when logged.

Definitions follow scikit-learn's (the formula reference of tests/test_metrics.py). Extras:
`task` (which task a metric is for), `mode` (`max` for scores, `min` for errors: what early
stopping and `keep = best(...)` optimise), `scalar = False` for a metric whose value is not a
number (reported at the end, never a monitor), `binary = True` for a metric that needs one score
per example (one logit, or two), `host = True` for a metric finished on the host from every
validation example (measured on val only).
"""

from ..ir import Task
from .base import *

AVERAGE = Choice("macro", "micro", "weighted")

# ---- classification ------------------------------------------------------------------------------


@METRICS.register(task=Task.classification, mode="max")
def accuracy():
    """Fraction of examples whose highest logit is the target class."""


@METRICS.register(task=Task.classification, mode="max")
def top_k(k: Int(min=1) = 5):
    """Fraction of examples whose target class is among the `k` highest logits (ties count as
    hits: the target is in the top k when fewer than k logits are strictly greater)."""


@METRICS.register(task=Task.classification, mode="max")
def precision(average: AVERAGE = "macro"):
    """Of the examples predicted as a class, the fraction that are of it, per class then averaged:
    `macro` (unweighted mean over the classes present in the targets or the predictions), `micro`
    (over all examples: equals accuracy) or `weighted` (by each class's number of examples).
    A class never predicted scores 0 (scikit-learn's zero_division = 0)."""


@METRICS.register(task=Task.classification, mode="max")
def recall(average: AVERAGE = "macro"):
    """Of the examples of a class, the fraction predicted as it, per class then averaged
    (`macro`, `micro`, `weighted` as for precision)."""


@METRICS.register(task=Task.classification, mode="max")
def f1(average: AVERAGE = "macro"):
    """Harmonic mean of precision and recall per class, 2 tp / (2 tp + fp + fn), then averaged
    (`macro`, `micro`, `weighted` as for precision)."""


@METRICS.register(task=Task.classification, mode="max", binary=True, host=True)
def auc():
    """Area under the ROC curve of a binary classifier (one logit, or two: logit1 - logit0 is the
    score): the probability that a positive example scores above a negative one, ties counting
    one half. Measured on val only; nan when val holds a single class."""


@METRICS.register(task=Task.classification, mode="max")
def map_at_k(k: Int(min=1) = 5):
    """Mean over examples of 1 / rank of the target class when that rank is at most `k`, else 0
    (rank = 1 + the number of logits strictly greater than the target's)."""


@METRICS.register(task=Task.classification, mode="max", scalar=False)
def confusion():
    """The confusion matrix (rows: true class, columns: predicted class), counts on val; reported
    at the end of the run, not per epoch, and not a monitor."""


# ---- regression ----------------------------------------------------------------------------------


@METRICS.register(task=Task.regression, mode="min")
def rmse():
    """Root mean squared error."""


@METRICS.register(task=Task.regression, mode="min")
def mae_():
    """Mean absolute error."""


@METRICS.register(task=Task.regression, mode="max")
def r2():
    """Coefficient of determination, 1 - SSE / SST, per target column then averaged (1 is a perfect
    fit, 0 predicting the mean); a constant column scores 1 when predicted exactly, else 0."""
