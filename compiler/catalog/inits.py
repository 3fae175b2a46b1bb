"""Initialisers: how a layer's weights start."""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- initialisers ------------------------------------------------------------------------------


@INITS.register
def he():
    """Kaiming/He normal: std = sqrt(2 / fan_in). The default for layers followed by relu."""


@INITS.register
def xavier():
    """Xavier/Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)). Suits tanh and sigmoid."""


@INITS.register
def normal(std: Positive = 0.01, mean: Float() = 0.0):
    """Normal distribution N(mean, std^2)."""


@INITS.register
def zeros():
    """All zeros (biases are zero by default)."""
