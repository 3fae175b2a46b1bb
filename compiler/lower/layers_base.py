"""What every layer module shares: the layer state, initialisers, and helpers (tinygrad).

layers.py and the family modules (layers_vision, layers_sequence, layers_attention) import this one; none of
them imports another, so there is no import circle.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from tinygrad import Tensor

from ..catalog.base import INITS

# ---------------------------------------------------------------------------------------------
# Initialisers: numpy, seeded, so weights do not depend on tinygrad's RNG.
# (rng, shape, fan_in, fan_out, **args) -> float64 array of `shape`
# ---------------------------------------------------------------------------------------------


@INITS.implement("orthogonal")
def _orthogonal(rng, shape, fan_in, fan_out, gain):
    """torch.nn.init.orthogonal_: QR of a normal matrix [shape[0], rest], signs fixed by R's diagonal."""
    rows = shape[0]
    cols = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    flat = rng.normal(0.0, 1.0, (rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


INITS.implement("he")(lambda rng, shape, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / fan_in), shape))
INITS.implement("he_uniform")(lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape) * math.sqrt(6.0 / fan_in))
INITS.implement("xavier")(
    lambda rng, shape, fan_in, fan_out: rng.uniform(-1, 1, shape) * math.sqrt(6.0 / (fan_in + fan_out)))
INITS.implement("xavier_normal")(
    lambda rng, shape, fan_in, fan_out: rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), shape))
INITS.implement("normal")(lambda rng, shape, fan_in, fan_out, std, mean: rng.normal(mean, std, shape))
INITS.implement("uniform")(lambda rng, shape, fan_in, fan_out, a: rng.uniform(-a, a, shape))
INITS.implement("zeros")(lambda rng, shape, fan_in, fan_out: np.zeros(shape))
INITS.implement("ones")(lambda rng, shape, fan_in, fan_out: np.ones(shape))
for _name in INITS.names():  # another name for an initialiser (glorot = xavier): the same implementation
    if "alias_of" in INITS.get(_name).extra:
        INITS.implement(_name)(INITS.impl(INITS.get(_name).extra["alias_of"]))

# For callers outside a spec (tests): name -> the initialiser, with the catalogue's defaults for arguments left out.
INIT_IMPL = {name: INITS.defaulted(name) for name in INITS.table()}


def fans(shape: tuple[int, ...], dense: bool = False) -> tuple[int, int]:
    """(fan_in, fan_out) as torch computes them. Dense weights here are [inputs, units] (torch's
    Linear stores the transpose); convolution weights are [filters, channels/groups, k, ...]."""
    if dense:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def init_weight(init: tuple, shape: tuple[int, ...], rng, dense: bool = False) -> np.ndarray:
    """Draw a weight of `shape` with a resolved `init` argument: (name, ((arg, value), ...))."""
    name, init_args = init
    fan_in, fan_out = fans(shape, dense)
    return INITS.impl(name)(rng, shape, fan_in, fan_out, **dict(init_args))

# ---------------------------------------------------------------------------------------------
# Layers: (x, params, args) -> y. `params` are this layer's tensors by short name.
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerState:
    params: dict[str, Tensor] = field(default_factory=dict)  # trained
    buffers: dict[str, Tensor] = field(default_factory=dict)  # updated in the step, not trained
    pending: list[Tensor] = field(default_factory=list)  # buffer updates the forward pass scheduled


def _gelu(x):  # tanh approximation
    return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())
