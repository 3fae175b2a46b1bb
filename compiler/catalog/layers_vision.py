"""Convolutions, pooling, normalisation and reshaping layers.

Shapes exclude the batch axis and are channels-first, as in PyTorch: an image is [C, H, W], a
sequence for `conv1d` is [C, L]. Each shape function raises ShapeError naming the shape it got.
"""

import math
from dataclasses import dataclass

from ..ir import TensorType
from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries
from .base import LAYERS, Bool, InitRef, Int, NumList, Positive, ShapeError, shape_fn

# ---- argument types ----------------------------------------------------------------------------
# Both are NumLists, so resolve.convert's NumList branch reads them today: a list of numbers (as
# floats) or one of `words`. The shape functions check that the numbers are integers.


@dataclass(frozen=True)
class Dims(NumList):
    """A shape without the batch axis: `[1, 8, 8]`; one entry may be -1 (inferred)."""

    words: tuple[str, ...] = ()
    positive: bool = False

    def describe(self) -> str:
        return "a list of integers like [1, 8, 8] (one may be -1)"


@dataclass(frozen=True)
class Padding(NumList):
    """Convolution padding: `valid` (none), `same` (output as long as the input, stride 1), or a list
    of integers, `[1]` for every axis or one per spatial axis `[1, 2]`. A bare integer (`padding = 1`)
    needs a branch in resolve.convert (see conv_padding: it accepts an int already)."""

    words: tuple[str, ...] = ("valid", "same")
    positive: bool = False

    def describe(self) -> str:
        return "valid, same, an integer, or a list of integers: [1] (every axis) or [1, 2] (one per spatial axis)"


# ---- layers ------------------------------------------------------------------------------------


@LAYERS.register
def reshape(shape: Dims()):
    """Reshapes each example: f32[64] -> reshape([1, 8, 8]) -> f32[1, 8, 8]; one axis may be -1."""


@LAYERS.register(params=True)
def conv2d(filters: Int(min=1), kernel: Int(min=1), stride: Int(min=1) = 1, padding: Padding() = "valid",
           dilation: Int(min=1) = 1, groups: Int(min=1) = 1, init: InitRef() = "he", bias: Bool = True):
    """2-D convolution on [channels, height, width]: W of shape [filters, channels/groups, kernel, kernel]."""


@LAYERS.register(params=True)
def conv1d(filters: Int(min=1), kernel: Int(min=1), stride: Int(min=1) = 1, padding: Padding() = "valid",
           dilation: Int(min=1) = 1, groups: Int(min=1) = 1, init: InitRef() = "he", bias: Bool = True):
    """1-D convolution on [channels, length]: W of shape [filters, channels/groups, kernel]."""


@LAYERS.register
def maxpool(size: Int(min=1) = 2, stride: Int(min=1) = None):
    """Max pooling over windows of `size` (stride defaults to size), on [C, L] or [C, H, W]."""


@LAYERS.register
def avgpool(size: Int(min=1) = 2, stride: Int(min=1) = None):
    """Average pooling over windows of `size` (stride defaults to size), on [C, L] or [C, H, W]."""


@LAYERS.register
def global_avgpool():
    """Mean over every axis after the channels: [C, H, W] -> [C]."""


@LAYERS.register
def global_maxpool():
    """Maximum over every axis after the channels: [C, H, W] -> [C]."""


@LAYERS.register(params=True)
def layernorm(eps: Positive = 1e-5):
    """Layer normalisation over the last axis, with learned scale and shift (no running statistics)."""


@LAYERS.register(params=True)
def groupnorm(groups: Int(min=1), eps: Positive = 1e-5):
    """Group normalisation on [C, ...]: statistics per example over groups of C/groups channels."""


# ---- shape functions ---------------------------------------------------------------------------


def _ints(values, what: str) -> tuple[int, ...]:
    if any(not float(v).is_integer() for v in values):
        raise ShapeError(f"{what} must be integers, found [{', '.join(f'{v:g}' for v in values)}]")
    return tuple(int(v) for v in values)


def _show(shape) -> str:
    return f"[{', '.join(map(str, shape))}]"


@shape_fn("reshape")
def _reshape_shape(x: TensorType, args: dict) -> TensorType:
    dims = _ints(args["shape"], "reshape's sizes")
    n = math.prod(x.shape)
    if any(d == 0 or d < -1 for d in dims) or dims.count(-1) > 1:
        raise ShapeError(f"reshape to {_show(dims)}: sizes must be positive, with at most one -1",
                         help=f"for {x} write e.g. reshape([{n}])")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if n % known:
            raise ShapeError(f"cannot reshape {x} ({n} elements) to {_show(dims)}: {n} is not a multiple of {known}")
        dims = tuple(n // known if d == -1 else d for d in dims)
    elif known != n:
        raise ShapeError(f"cannot reshape {x} ({n} elements) to {_show(dims)} ({known} elements)",
                         help="the sizes must multiply to the input's element count")
    return TensorType(dtype=x.dtype, shape=dims)


def conv_padding(padding, dims: int, kernel: int, dilation: int, stride: int) -> tuple[tuple[int, int], ...]:
    """(before, after) per spatial axis, as torch: `same` puts the odd extra element after."""
    if padding == "valid":
        return ((0, 0),) * dims
    if padding == "same":
        total = dilation * (kernel - 1)
        return ((total // 2, total - total // 2),) * dims
    if isinstance(padding, (int, float)):
        padding = (padding,)
    p = _ints(padding, "padding")
    if len(p) == 1:
        p = p * dims
    if len(p) != dims:
        raise ShapeError(f"padding has {len(p)} entries, this convolution has {dims} spatial "
                         f"ax{'is' if dims == 1 else 'es'}", help="give one per axis, or one for every axis")
    if any(v < 0 for v in p):
        raise ShapeError(f"padding must not be negative, found {_show(p)}")
    return tuple((v, v) for v in p)


def _conv_shape(op: str, dims: int, x: TensorType, a: dict) -> TensorType:
    want = "[channels, height, width]" if dims == 2 else "[channels, length]"
    if len(x.shape) != dims + 1:
        help_ = {2: "use conv1d", 3: "use conv2d"}.get(len(x.shape))
        if len(x.shape) == 1:
            n, s = x.shape[0], math.isqrt(x.shape[0])
            to = f"[1, {n}]" if dims == 1 else f"[1, {s}, {s}]" if s * s == n else "[channels, height, width]"
            help_ = f"reshape it first: reshape({to})"
        raise ShapeError(f"{op} expects {want} per example, found {x}", help=help_)
    c, g = x.shape[0], a["groups"]
    if c % g or a["filters"] % g:
        raise ShapeError(f"{op} with groups = {g} needs channels and filters divisible by {g}: input {x} has {c} "
                         f"channels, filters = {a['filters']}")
    if a["padding"] == "same" and a["stride"] != 1:
        raise ShapeError(f"{op}: padding = same needs stride = 1, found stride = {a['stride']}",
                         help=f"give the padding as an integer, e.g. padding = {(a['kernel'] - 1) // 2}")
    pads = conv_padding(a["padding"], dims, a["kernel"], a["dilation"], a["stride"])
    span = a["dilation"] * (a["kernel"] - 1) + 1
    out = []
    for size, (pb, pa) in zip(x.shape[1:], pads):
        o = (size + pb + pa - span) // a["stride"] + 1
        if o < 1:
            raise ShapeError(f"{op}: a kernel spanning {span} does not fit in {x} with padding {pb + pa}",
                             help="use a smaller kernel or dilation, or padding = same")
        out.append(o)
    return TensorType(dtype=x.dtype, shape=(a["filters"], *out))


@shape_fn("conv2d")
def _conv2d_shape(x: TensorType, args: dict) -> TensorType:
    return _conv_shape("conv2d", 2, x, args)


@shape_fn("conv1d")
def _conv1d_shape(x: TensorType, args: dict) -> TensorType:
    return _conv_shape("conv1d", 1, x, args)


def _pool_shape(op: str, x: TensorType, a: dict) -> TensorType:
    if len(x.shape) not in (2, 3):
        raise ShapeError(f"{op} expects [channels, length] or [channels, height, width] per example, found {x}",
                         help="reshape it first, e.g. reshape([1, 8, 8])" if len(x.shape) == 1 else None)
    k = a["size"]
    s = a["stride"] if a["stride"] is not None else k
    out = [(n - k) // s + 1 for n in x.shape[1:]]
    if min(out) < 1:
        raise ShapeError(f"{op}: a window of {k} does not fit in {x}", help="use a smaller size")
    return TensorType(dtype=x.dtype, shape=(x.shape[0], *out))


@shape_fn("maxpool")
def _maxpool_shape(x: TensorType, args: dict) -> TensorType:
    return _pool_shape("maxpool", x, args)


@shape_fn("avgpool")
def _avgpool_shape(x: TensorType, args: dict) -> TensorType:
    return _pool_shape("avgpool", x, args)


def _global_shape(op: str, x: TensorType) -> TensorType:
    if len(x.shape) < 2:
        raise ShapeError(f"{op} expects [channels, ...] with at least one axis after the channels, found {x}",
                         help="it pools the output of a convolution")
    return TensorType(dtype=x.dtype, shape=(x.shape[0],))


@shape_fn("global_avgpool")
def _global_avgpool_shape(x: TensorType, args: dict) -> TensorType:
    return _global_shape("global_avgpool", x)


@shape_fn("global_maxpool")
def _global_maxpool_shape(x: TensorType, args: dict) -> TensorType:
    return _global_shape("global_maxpool", x)


@shape_fn("groupnorm")
def _groupnorm_shape(x: TensorType, args: dict) -> TensorType:
    g = args["groups"]
    if x.shape[0] % g:
        raise ShapeError(f"groupnorm with groups = {g} needs the channels divisible by {g}, found {x}",
                         help=f"use a divisor of {x.shape[0]}")
    return x
