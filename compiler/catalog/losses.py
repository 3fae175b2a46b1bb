"""Losses: every loss takes (prediction, target); `task` tells which kind of target it expects."""

from ..ir import Task
from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- losses ------------------------------------------------------------------------------------
# Every loss takes (prediction, target); `task` tells which kind of target it expects.


@LOSSES.register(task=Task.regression)
def mse(pred: Value(), target: Value()):
    """Mean squared error: mean((pred - target)^2)."""


@LOSSES.register(task=Task.regression)
def mae(pred: Value(), target: Value()):
    """Mean absolute error: mean(|pred - target|)."""


@LOSSES.register(task=Task.regression)
def huber(pred: Value(), target: Value(), delta: Positive = 1.0):
    """Huber loss: squared below `delta`, linear above; robust to outliers."""


@LOSSES.register(task=Task.classification, binary=True)
def bce(pred: Value(), target: Value()):
    """Binary cross-entropy on logits (the sigmoid is inside, numerically stable). Targets 0 or 1."""


@LOSSES.register(task=Task.classification)
def cross_entropy(pred: Value(), target: Value(), smoothing: Fraction = 0.0):
    """Softmax cross-entropy on logits against integer class targets; `smoothing` spreads that mass uniformly."""
