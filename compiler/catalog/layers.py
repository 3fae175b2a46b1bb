"""Layers: the model's building blocks, each with a shape function."""

import inspect
import math

from ..ir import TensorType
from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- layers ------------------------------------------------------------------------------------


@LAYERS.register(params=True)
def dense(units: Int(min=1), init: InitRef() = "he", bias: Bool = True):
    """Fully connected layer: y = x @ W + b, W of shape [inputs, units]. The input size is inferred; on a
    sequence [T, D] it acts at every position."""


def _activation(name: str, doc: str, **params):
    def f(**kw):
        pass

    f.__name__ = name
    f.__doc__ = doc
    f.__signature__ = inspect.Signature(
        [inspect.Parameter(k, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t, default=d)
         for k, (t, d) in params.items()])
    LAYERS.register(f, elementwise=True)


_activation("relu", "Rectified linear unit: max(x, 0).")
_activation("gelu", "Gaussian error linear unit (tanh approximation).")
_activation("tanh", "Hyperbolic tangent.")
_activation("sigmoid", "Logistic sigmoid: 1 / (1 + exp(-x)).")
_activation("leaky_relu", "Leaky ReLU: x if x > 0 else slope * x.", slope=(NonNegative, 0.01))
_activation("softmax", "Softmax over the last axis. Losses take logits: use it for outputs you read, "
            "not before a loss.")
_activation("dropout", "Zeroes each element with probability p during training and scales the rest by 1/(1-p).",
            p=(Fraction, 0.5))


@LAYERS.register
def stop_gradient():
    """The value unchanged, but no gradient flows back through it: the layers before it are not trained by
    what comes after (a feature extractor used as is, a target that must not move)."""


@LAYERS.register
def minibatch_std():
    """Appends one feature: the standard deviation of each feature across the batch, averaged (Karras et al.'s
    minibatch standard deviation, a remedy for a GAN's mode collapse: a discriminator sees how varied a batch
    is). [n] -> [n + 1]."""


@shape_fn("minibatch_std")
def _minibatch_std_shape(x: TensorType, args: dict) -> TensorType:
    if len(x.shape) != 1:
        raise ShapeError(f"minibatch_std expects one axis of features per example, found {x}",
                         help="put `flatten` before it")
    return TensorType(dtype=x.dtype, shape=(x.shape[0] + 1,))


@LAYERS.register(params=True)
def batchnorm(momentum: Float(0.0, 1.0) = 0.1, eps: Positive = 1e-5):
    """Batch normalisation per feature ([n]) or per channel ([C, ...]), with running statistics for eval."""


@LAYERS.register
def flatten():
    """Flattens each example to one axis: f32[1, 8, 8] -> f32[64]."""


@shape_fn("dense")
def _dense_shape(x: TensorType, args: dict) -> TensorType:
    """[D] -> [units]; on a sequence [T, D], at every position: [T, units] (Keras' Dense on the last axis). An
    image [C, H, W] would mix its columns only: surely a missing flatten."""
    if len(x.shape) > 2:
        raise ShapeError(f"dense expects one axis of features per example (or [T, features], per position), "
                         f"found {x}", help="put `flatten` before it")
    return TensorType(dtype=x.dtype, shape=(*x.shape[:-1], args["units"]))


@shape_fn("flatten")
def _flatten_shape(x: TensorType, args: dict) -> TensorType:
    return TensorType(dtype=x.dtype, shape=(math.prod(x.shape),))


@shape_fn("batchnorm")
def _batchnorm_shape(x: TensorType, args: dict) -> TensorType:
    # [n]: per feature (BatchNorm1d on [B, n]); [C, ...]: per channel over batch and the other axes
    # (BatchNorm1d on [B, C, L], BatchNorm2d on [B, C, H, W])
    if len(x.shape) < 1 or x.shape[0] < 1:
        raise ShapeError(f"batchnorm needs at least one feature or channel axis, found {x}")
    return x


# ---- layers with several inputs: `h -> add(x)` (h and x), `concat(a, b)` ---------------------------
# Their positional arguments are model values; in a pipeline the value flowing in comes first.


@LAYERS.register(multi=True)
def add():
    """Element-wise sum of its inputs, all of one shape: residual connections (`h -> add(x)`)."""


@LAYERS.register(multi=True)
def concat(axis: Int() = -1):
    """Joins its inputs along `axis` of the example (0 is the first axis after the batch; -1 the last)."""


@shape_fn("add")
def _add_shape(xs: list, args: dict) -> TensorType:
    first = xs[0]
    for x in xs[1:]:
        if x.shape != first.shape:
            raise ShapeError(f"add needs inputs of one shape, found {first} and {x}",
                             help="project one of them with dense(...) to the other's size")
    return first


@shape_fn("concat")
def _concat_shape(xs: list, args: dict) -> TensorType:
    rank = len(xs[0].shape)
    axis = args["axis"] + rank if args["axis"] < 0 else args["axis"]
    if not 0 <= axis < rank:
        raise ShapeError(f"concat axis {args['axis']} is out of range for {xs[0]}")
    for x in xs[1:]:
        if len(x.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, xs[0].shape)) if i != axis):
            raise ShapeError(f"concat along axis {args['axis']} needs the other axes equal, found {xs[0]} and {x}")
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return TensorType(dtype=xs[0].dtype, shape=tuple(shape))

