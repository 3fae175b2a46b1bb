"""Metrics: measured on the device, finished on the host when logged."""

from ..ir import Task
from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- metrics -----------------------------------------------------------------------------------


@METRICS.register(task=Task.classification, mode="max")
def accuracy():
    """Fraction of examples whose highest logit is the target class."""


@METRICS.register(task=Task.regression, mode="min")
def rmse():
    """Root mean squared error."""


@METRICS.register(task=Task.regression, mode="min")
def mae_():
    """Mean absolute error."""
