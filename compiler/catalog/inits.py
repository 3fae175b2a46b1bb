"""Initialisers: how a layer's weights start.

fan_in and fan_out are computed as in PyTorch: for dense (W of shape [inputs, units]) they are
inputs and units; for a convolution (W of shape [filters, channels/groups, k, ...]) they are
channels/groups * k^d and filters * k^d.
"""

import inspect

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries
from .base import INITS, Float, Positive

# ---- initialisers ------------------------------------------------------------------------------


@INITS.register
def he():
    """Kaiming/He normal: std = sqrt(2 / fan_in). The default for layers followed by relu."""


@INITS.register
def he_uniform():
    """Kaiming/He uniform: U(-a, a) with a = sqrt(6 / fan_in). For layers followed by relu."""


@INITS.register
def xavier():
    """Xavier/Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out)). Suits tanh and sigmoid."""


@INITS.register
def xavier_normal():
    """Xavier/Glorot normal: std = sqrt(2 / (fan_in + fan_out)). Suits tanh and sigmoid."""


@INITS.register
def normal(std: Positive = 0.01, mean: Float() = 0.0):
    """Normal distribution N(mean, std^2)."""


@INITS.register
def uniform(a: Positive = 0.05):
    """Uniform distribution U(-a, a)."""


@INITS.register
def orthogonal(gain: Positive = 1.0):
    """A (semi-)orthogonal matrix times gain, the weight seen as [shape[0], the rest] (as torch)."""


@INITS.register
def zeros():
    """All zeros (biases are zero by default)."""


@INITS.register
def ones():
    """All ones."""


ALIASES = {  # another name -> the initialiser it means
    "glorot": "xavier",
    "glorot_normal": "xavier_normal",
    "kaiming": "he",
    "kaiming_uniform": "he_uniform",
}


def _alias(name: str, of: str) -> None:
    target = INITS.get(of)

    def f():
        pass

    f.__name__ = name
    f.__doc__ = f"The same as `{of}`: " + target.doc[0].lower() + target.doc[1:]
    f.__signature__ = inspect.Signature(
        [inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=p.type, default=p.default)
         for p in target.params])
    INITS.register(f, alias_of=of)


for _name, _of in ALIASES.items():
    _alias(_name, _of)
