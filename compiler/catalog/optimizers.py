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


@OPTIMIZERS.register
def rmsprop(lr: Positive = 0.01, alpha: Fraction = 0.99, eps: Positive = 1e-8,
            momentum: Float(0.0, 1.0, max_open=True) = 0.0, centered: Bool = False, weight_decay: NonNegative = 0.0):
    """RMSprop as torch.optim.RMSprop: g += wd*p; v = alpha*v + (1-alpha)*g^2; centered: a = alpha*a +
    (1-alpha)*g, d = sqrt(v - a^2) + eps, else d = sqrt(v) + eps; momentum: buf = momentum*buf + g/d,
    p -= lr*buf, else p -= lr*g/d."""


@OPTIMIZERS.register
def adagrad(lr: Positive = 0.01, lr_decay: NonNegative = 0.0, eps: Positive = 1e-10,
            initial_accumulator_value: NonNegative = 0.0, weight_decay: NonNegative = 0.0):
    """Adagrad as torch.optim.Adagrad: g += wd*p; s += g^2 (s starts at initial_accumulator_value);
    p -= lr / (1 + (t-1)*lr_decay) * g / (sqrt(s) + eps)."""


@OPTIMIZERS.register
def lamb(lr: Positive = 1e-3, b1: Fraction = 0.9, b2: Fraction = 0.999, eps: Positive = 1e-6,
         weight_decay: NonNegative = 0.0):
    """LAMB (You et al. 2020; no torch builtin), per parameter tensor: m = b1*m + (1-b1)*g;
    v = b2*v + (1-b2)*g^2; r = (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) + weight_decay*p;
    p -= lr * (|p| / |r| if both L2 norms > 0 else 1) * r."""
