"""The catalogues: one registry each for layers, initialisers, losses, optimizers, schedules,
metrics, data sources and stopping rules.

A registered function's signature *is* its schema: parameter names, defaults and annotations
(`Int(min=1)`, `Choice(...)`, `Dur(...)`) decide what a spec may write, and the docstring is the
documentation shown by `trainc lint`, the docs and the editor. No tinygrad here: lint reads this
module. The tinygrad implementation of each entry lives in `lower.py`, keyed by the same name.
"""


import inspect
import math
from dataclasses import dataclass, field
from typing import Callable

from .ir import DType, Task, TensorType

# ---------------------------------------------------------------------------------------------
# Argument types: what a parameter accepts, as markers used in annotations.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Num:
    """A number, optionally bounded. `lo_open`/`hi_open` make a bound exclusive."""

    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        if self.lo == -math.inf and self.hi == math.inf:
            return kind
        if self.hi == math.inf:
            return f"{kind} {'>' if self.lo_open else '>='} {_num(self.lo)}"
        lo = "(" if self.lo_open else "["
        hi = ")" if self.hi_open else "]"
        return f"{kind} in {lo}{_num(self.lo)}, {_num(self.hi)}{hi}"


def _num(v: float) -> str:
    return "inf" if v == math.inf else "-inf" if v == -math.inf else f"{v:g}"


def Int(min: float = -math.inf, max: float = math.inf) -> Num:  # noqa: A002 - reads as a schema
    return Num(lo=min, hi=max, integer=True)


def Float(min: float = -math.inf, max: float = math.inf, min_open: bool = False, max_open: bool = False) -> Num:
    return Num(lo=min, hi=max, lo_open=min_open, hi_open=max_open)


Positive = Float(0.0, min_open=True)
NonNegative = Float(0.0)
Fraction = Float(0.0, 1.0, max_open=True)


@dataclass(frozen=True)
class Bool_:
    def describe(self) -> str:
        return "true or false"


Bool = Bool_()


@dataclass(frozen=True)
class Text:
    def describe(self) -> str:
        return "a string"


String = Text()


@dataclass(frozen=True)
class Names:
    """A string or a list of strings (column names)."""

    def describe(self) -> str:
        return "a string or a list of strings"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of bare words: `normalize = standard`."""

    options: tuple[str, ...]

    def __init__(self, *options: str):
        object.__setattr__(self, "options", options)

    def describe(self) -> str:
        return "one of " + ", ".join(self.options)


@dataclass(frozen=True)
class Dur:
    """A quantity with a unit: steps/epochs (and % of the run), or seconds for time budgets."""

    units: tuple[str, ...]  # "steps", "epochs", "fraction", "seconds"

    def __init__(self, *units: str):
        object.__setattr__(self, "units", units)

    def describe(self) -> str:
        words = {"steps": "N steps", "epochs": "N epochs", "fraction": "N% of the run", "seconds": "10 min, 30 s, 1 h"}
        return "a quantity like " + " or ".join(words[u] for u in self.units)


@dataclass(frozen=True)
class MetricName:
    """A dotted metric reference: `val.loss`, `val.accuracy`."""

    def describe(self) -> str:
        return "a metric like val.loss or val.accuracy"


@dataclass(frozen=True)
class Value:
    """A named value of the model (`logits`) or `target`."""

    def describe(self) -> str:
        return "a model value (e.g. logits) or target"


@dataclass(frozen=True)
class InitRef:
    """An initialiser: `he`, `normal(std = 0.02)`."""

    def describe(self) -> str:
        return "an initialiser: " + ", ".join(INITS.names())


REQUIRED = inspect.Parameter.empty

UNITS = {  # spelling in a spec -> (canonical unit, factor)
    "step": ("steps", 1), "steps": ("steps", 1),
    "epoch": ("epochs", 1), "epochs": ("epochs", 1),
    "%": ("fraction", 0.01),
    "s": ("seconds", 1), "sec": ("seconds", 1), "secs": ("seconds", 1), "second": ("seconds", 1),
    "seconds": ("seconds", 1), "min": ("seconds", 60), "mins": ("seconds", 60), "minute": ("seconds", 60),
    "minutes": ("seconds", 60), "h": ("seconds", 3600), "hour": ("seconds", 3600), "hours": ("seconds", 3600),
}


# ---------------------------------------------------------------------------------------------
# Registries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: object
    default: object  # REQUIRED when there is none


@dataclass
class Entry:
    name: str
    params: tuple[ParamSpec, ...]
    doc: str
    extra: dict = field(default_factory=dict)

    @property
    def signature(self) -> str:
        parts = []
        for p in self.params:
            if p.default is REQUIRED:
                parts.append(p.name)
            else:
                parts.append(f"{p.name} = {_show(p.default)}")
        return f"{self.name}({', '.join(parts)})"

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return v
    return repr(v)


class Registry:
    """name -> Entry. `kind` is the word used in messages ("layer", "loss", ...)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.entries: dict[str, Entry] = {}

    def register(self, fn: Callable | None = None, **extra):
        def add(f: Callable) -> Callable:
            sig = inspect.signature(f)
            params = tuple(ParamSpec(p.name.rstrip("_"), p.annotation, p.default) for p in sig.parameters.values())
            doc = inspect.cleandoc(f.__doc__ or "")
            self.entries[f.__name__.rstrip("_")] = Entry(f.__name__.rstrip("_"), params, doc, extra)
            return f

        return add(fn) if fn is not None else add

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries


LAYERS = Registry("layer")
INITS = Registry("initialiser")
LOSSES = Registry("loss")
OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
METRICS = Registry("metric")
SOURCES = Registry("data source")
STOP_RULES = Registry("stopping rule")


class ShapeError(Exception):
    """Raised by a layer's shape function; `help` says how to fix it."""

    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def shape_fn(layer: str):
    def add(f):
        LAYERS.entries[layer].extra["shape"] = f
        return f

    return add


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


# ---- layers ------------------------------------------------------------------------------------


@LAYERS.register(params=True)
def dense(units: Int(min=1), init: InitRef() = "he", bias: Bool = True):
    """Fully connected layer: y = x @ W + b, W of shape [inputs, units]. The input size is inferred."""


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


@LAYERS.register(params=True)
def batchnorm(momentum: Float(0.0, 1.0) = 0.1, eps: Positive = 1e-5):
    """Batch normalisation over the batch axis, with learned scale and shift and running statistics for eval."""


@LAYERS.register
def flatten():
    """Flattens each example to one axis: f32[1, 8, 8] -> f32[64]."""


@shape_fn("dense")
def _dense_shape(x: TensorType, args: dict) -> TensorType:
    if len(x.shape) != 1:
        raise ShapeError(f"dense expects one axis of features per example, found {x}",
                         help="put `flatten` before it")
    return TensorType(dtype=x.dtype, shape=(args["units"],))


@shape_fn("flatten")
def _flatten_shape(x: TensorType, args: dict) -> TensorType:
    return TensorType(dtype=x.dtype, shape=(math.prod(x.shape),))


@shape_fn("batchnorm")
def _batchnorm_shape(x: TensorType, args: dict) -> TensorType:
    if len(x.shape) != 1:
        raise ShapeError(f"batchnorm here normalises one axis of features per example, found {x}",
                         help="put `flatten` before it")
    return x


for _name, _entry in LAYERS.entries.items():
    _entry.extra.setdefault("shape", lambda x, args: x)


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


# ---- schedules ---------------------------------------------------------------------------------
# A schedule is phases joined by `then`; each phase's lr is a function of its own progress.
# `length`: how long the phase lasts (the last phase runs to the end of the run).


@SCHEDULES.register
def constant(length: Dur("steps", "epochs", "fraction") = None):
    """The optimizer's lr, unchanged."""


@SCHEDULES.register
def warmup(length: Dur("steps", "epochs", "fraction"), start: NonNegative = 0.0):
    """Linear warm-up from `start` x lr to lr over `length`."""


@SCHEDULES.register
def step(every: Dur("steps", "epochs"), gamma: Positive = 0.1, length: Dur("steps", "epochs", "fraction") = None):
    """Multiplies the lr by `gamma` every `every` steps or epochs."""


@SCHEDULES.register
def cosine(to: NonNegative = 0.0, length: Dur("steps", "epochs", "fraction") = None):
    """Cosine annealing from lr down to `to` over the phase."""


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


# ---- data sources ------------------------------------------------------------------------------


@SOURCES.register
def csv(path: String, target: Names(), features: Names() = None):
    """A CSV file with a header row. `target`: the target column(s); `features`: default every other column."""


@SOURCES.register
def npz(path: String, x: String = "x", y: String = "y"):
    """A NumPy .npz archive with a features array and a targets array."""


# ---- stopping rules ----------------------------------------------------------------------------


@STOP_RULES.register
def plateau(monitor: MetricName(), patience: Int(min=1) = 5, min_delta: NonNegative = 0.0,
            restore_best: Bool = True, mode: Choice("auto", "min", "max") = "auto"):
    """Early stopping: stop when `monitor` has not improved by `min_delta` for `patience` evaluations."""


# ---------------------------------------------------------------------------------------------
# Sections and keys
# ---------------------------------------------------------------------------------------------

SECTIONS = {  # section -> {key: description}
    "data": {
        "source": "where the examples come from: csv(...) or npz(...)",
        "split": "fractions of `source`: { train = 0.8, val = 0.2, stratify = true }",
        "train": "a separate training file (with `val`, instead of source + split)",
        "val": "a separate validation file",
        "normalize": "standard, minmax or none (fitted on the training split only)",
        "target_normalize": "regression only: standard (default) or none; metrics stay in the target's units",
        "batch": "examples per step",
        "shuffle": "reshuffle the training split every epoch",
        "task": "classification or regression (default: from the loss)",
    },
    "model": {},
    "loss": {},
    "optimizer": {},
    "schedule": {},
    "regularization": {
        "l2": "penalty lambda/2 * sum(w^2) over weight matrices (not biases)",
        "clip_grad_norm": "rescale gradients whose global L2 norm exceeds this",
    },
    "stop": {
        "max": "the longest run: N epochs or N steps",
        "early": "early stopping: plateau(val.loss, patience = 5, ...)",
        "when": "stop once a metric reaches a threshold: val.accuracy >= 0.99",
        "budget": "wall-clock limit: 10 min",
    },
    "metrics": {},
    "checkpoint": {
        "every": "save the weights every N epochs",
        "keep": "also keep the best weights: best(val.loss)",
    },
    "run": {
        "seed": "seed for initialisation, splits, shuffling and dropout",
        "device": "auto, cpu, cuda or metal",
        "precision": "f32",
    },
}

VALUE_SECTIONS = {"loss", "optimizer", "schedule", "metrics"}  # written `name = value`
BLOCK_SECTIONS = {"data", "model", "regularization", "stop", "checkpoint", "run"}  # written `name { ... }`

DTYPES = {"f32": DType.f32}
DEVICES = ("auto", "cpu", "cuda", "metal")
