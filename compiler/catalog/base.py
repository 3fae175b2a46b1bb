"""The schema vocabulary and the registries.

A registered function's signature *is* its schema: parameter names, defaults and annotations
(`Int(min=1)`, `Choice(...)`, `Dur(...)`) decide what a spec may write, and the docstring is the
documentation shown by `trainc lint`, the docs and the editor.
"""

import functools
import inspect
import math
from dataclasses import dataclass, field
from typing import Callable


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
class Delta:
    """An improvement threshold: absolute (`1e-4`) or relative to the best value (`1%`)."""

    def describe(self) -> str:
        return "a non-negative number (absolute) or a percentage like 1% (relative to the best value)"


@dataclass(frozen=True)
class NumList:
    """A list of numbers, or one of a few bare words: `weights = [1, 2, 1]` or `weights = balanced`."""

    words: tuple[str, ...] = ()
    positive: bool = True

    def describe(self) -> str:
        return "a list of numbers" + "".join(f" or {w}" for w in self.words)


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
        # arguments every entry takes besides its own signature, resolved apart (an optimizer's `groups` and
        # `freeze`, a weight layer's `share`): name -> (what it takes, its default as written)
        self.shared: dict[str, tuple[str, str | None]] = {}
        # part ("fn", a layer's "make", an optimizer's "state") -> entry name -> implementation; see `implement`
        self.impls: dict[str, dict[str, Callable]] = {}

    def shared_for(self, entry: Entry) -> dict[str, tuple[str, str | None]]:
        """The shared arguments `entry` takes: all of them, except that a layer takes them only if it has weights."""
        return self.shared if self.kind != "layer" or entry.extra.get("params") else {}

    def register(self, fn: Callable | None = None, **extra):
        def add(f: Callable) -> Callable:
            sig = inspect.signature(f)
            params = tuple(ParamSpec(p.name.rstrip("_"), p.annotation, p.default) for p in sig.parameters.values())
            doc = inspect.cleandoc(f.__doc__ or "")
            self.entries[f.__name__.rstrip("_")] = Entry(f.__name__.rstrip("_"), params, doc, extra)
            return f

        return add(fn) if fn is not None else add

    def implement(self, name: str, **parts: Callable):
        """Attach the implementation of entry `name`: `@LOSSES.implement("mse")` over the function (part
        "fn"), other parts by keyword (`@LAYERS.implement("dense", make=_make_dense)`). They live in a
        table apart from the entries, so the catalogue itself never imports what implements it (tinygrad).
        An unknown name raises at once, when the implementing module is imported."""
        if name not in self.entries:
            raise KeyError(f"{self.kind} {name!r} is implemented but not in the catalogue")
        for part, fn in parts.items():
            self.table(part)[name] = fn

        def add(fn: Callable) -> Callable:
            self.table("fn")[name] = fn
            return fn

        return add

    def table(self, part: str = "fn") -> dict[str, Callable]:
        """name -> implementation `part` (the dict itself: replacing an item replaces the implementation)."""
        return self.impls.setdefault(part, {})

    def impl(self, name: str, part: str = "fn") -> Callable:
        """The implementation `part` of entry `name`; KeyError if there is none."""
        return self.impls[part][name]

    def defaulted(self, name: str, fn: Callable | None = None) -> Callable:
        """`fn` (the implementation of `name`) taking the catalogue's default for every keyword argument left
        out: for callers outside a spec (tests, tools); a resolved spec always binds every argument."""
        fn = fn if fn is not None else self.impl(name)
        defaults = {p.name: p.default for p in self.entries[name].params if p.default is not REQUIRED}

        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def call(*args, **kw):
            given = sig.bind_partial(*args, **kw).arguments
            return fn(*args, **kw, **{k: v for k, v in defaults.items() if k not in given})

        return call

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
REGULARIZERS = Registry("regularizer")
DIVERGENCE = Registry("divergence guard")
OPTIMIZERS.shared.update(groups=("a record: { VALUE_OR_BLOCK = { lr = ... } }", "{}"),
                         freeze=("a list of model values or blocks", "[]"))
LAYERS.shared.update(share=("a model value made by a layer of the same kind", None))
AUGMENTATIONS = Registry("augmentation")


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
