"""Optimizers: PyTorch semantics, state per parameter."""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- optimizers --------------------------------------------------------------------------------


@OPTIMIZERS.register
def sgd(lr: Positive = 0.01, momentum: Float(0.0, 1.0, max_open=True) = 0.0, nesterov: Bool = False,
        weight_decay: NonNegative = 0.0):
    """Stochastic gradient descent, with optional (Nesterov) momentum and coupled weight decay.

    Batch, mini-batch and stochastic gradient descent differ only in `data.batch`."""


@OPTIMIZERS.register
def adam(lr: Positive = 1e-3, b1: Fraction = 0.9, b2: Fraction = 0.999, eps: Positive = 1e-8):
    """Adam (Kingma & Ba), with bias correction."""


@OPTIMIZERS.register
def adamw(lr: Positive = 1e-3, b1: Fraction = 0.9, b2: Fraction = 0.999, eps: Positive = 1e-8,
          weight_decay: NonNegative = 0.01):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p -= lr * weight_decay * p each step."""
