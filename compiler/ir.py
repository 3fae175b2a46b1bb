"""Every node of trainc: the syntax tree (what the grammar produced) and the checked IR.

All nodes are frozen, slotted, keyword-only dataclasses with tuple children. Every node carries
a `span`, excluded from equality, so two specs that differ only in layout compare equal. Passes
never mutate a node: they build new ones with `dataclasses.replace`, and a node a pass creates
inherits the span of the node it came from.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based lines and columns, `end_col` exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Span("<builtin>", 0, 0, 0, 0)


def _span():
    return field(compare=False, repr=False)


def node(cls):
    return dataclass(frozen=True, slots=True, kw_only=True)(cls)


# ---------------------------------------------------------------------------------------------
# Syntax tree: the grammar's output, before names mean anything.
# ---------------------------------------------------------------------------------------------


@node
class Number:
    value: float | int
    span: Span = _span()


@node
class Quantity:
    """A number with a unit: `200 steps`, `3 epochs`, `10 min`."""

    value: float | int
    unit: str
    span: Span = _span()


@node
class Str:
    value: str
    span: Span = _span()


@node
class Bool:
    value: bool
    span: Span = _span()


@node
class Ref:
    """A possibly dotted name: `relu`, `val.loss`."""

    parts: tuple[str, ...]
    span: Span = _span()

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)


@node
class KwArg:
    name: str
    value: "Expr"
    span: Span = _span()


@node
class Call:
    name: Ref
    args: tuple["Expr", ...]
    kwargs: tuple[KwArg, ...]
    span: Span = _span()


@node
class ListExpr:
    items: tuple["Expr", ...]
    span: Span = _span()


@node
class Record:
    """`{ train = 0.8, val = 0.2 }` as a value."""

    entries: tuple["Entry", ...]
    span: Span = _span()


@node
class BinOp:
    op: str  # one of + - * / >= <= > < == !=
    left: "Expr"
    right: "Expr"
    span: Span = _span()


@node
class Neg:
    operand: "Expr"
    span: Span = _span()


@node
class Pipeline:
    """`x -> dense(10) -> relu`: data flows left to right."""

    stages: tuple["Expr", ...]
    span: Span = _span()


@node
class Then:
    """`warmup(200 steps) then cosine()`: schedule phases one after another."""

    parts: tuple["Expr", ...]
    span: Span = _span()


@node
class Repeat:
    """`repeat 3 { dense(64) -> relu }`: a pipeline stage applied `times` times in a row, each with its own weights."""

    times: "Expr"
    body: "Expr"
    span: Span = _span()


Expr = Union[Number, Quantity, Str, Bool, Ref, Call, ListExpr, Record, BinOp, Neg, Pipeline, Then, Repeat]


@node
class Entry:
    """`key = value`, at the top level, in a section or in a record."""

    key: str
    value: Expr
    key_span: Span = _span()
    span: Span = _span()


@node
class Section:
    """`name { ... }`."""

    name: str
    body: tuple["Stmt", ...]
    name_span: Span = _span()
    span: Span = _span()


@node
class InputDecl:
    """`input x: f32[64]` in the model section."""

    name: str
    dtype: str
    dims: tuple[int, ...]
    span: Span = _span()


@node
class Param:
    name: str
    default: Expr | None
    span: Span = _span()


@node
class BlockDef:
    """`block mlp(width) { dense(width) -> relu }`: a parameterised, reusable pipeline."""

    name: str
    params: tuple[Param, ...]
    body: Expr
    span: Span = _span()


Stmt = Union[Entry, Section, InputDecl, BlockDef]


@node
class File:
    items: tuple[Stmt, ...]
    span: Span = _span()


# ---------------------------------------------------------------------------------------------
# Checked IR: names bound to registries, units normalised, defaults filled, shapes known.
# ---------------------------------------------------------------------------------------------


class DType(enum.Enum):
    f32 = "f32"
    f16 = "f16"
    bf16 = "bf16"
    i32 = "i32"


class Unit(enum.Enum):
    steps = "steps"
    epochs = "epochs"
    fraction = "fraction"  # of the whole run
    seconds = "seconds"


class Task(enum.Enum):
    classification = "classification"
    regression = "regression"


# Args are (name, value) pairs so nodes stay hashable; values are plain Python data
# (int, float, str, bool, Duration, MetricRef, tuples of those).
Args = tuple[tuple[str, object], ...]


@node
class Duration:
    value: float
    unit: Unit
    span: Span = _span()


@node
class MetricRef:
    """`val.loss`, `train.accuracy`: a metric on a split."""

    split: str
    name: str
    span: Span = _span()

    def __str__(self) -> str:
        return f"{self.split}.{self.name}"


@node
class Source:
    kind: str  # registry key: csv, npz
    path: str
    args: Args
    span: Span = _span()


@node
class Split:
    train: float
    val: float
    stratify: bool
    test: float = 0.0  # held out, evaluated once at the end on the model as saved
    folds: int = 0  # kfold(k): k runs, each validating on one k-th; train/val fractions unused
    span: Span = _span()


@node
class Augment:
    """One entry of `data.augment`: `flip(p = 0.5)`, applied to the training inputs every epoch."""

    kind: str  # augmentation registry key
    args: Args
    span: Span = _span()


@node
class Data:
    source: Source | None  # one source split by `split`, or
    split: Split | None
    train: Source | None  # separate train and val files
    val: Source | None
    test: Source | None = None  # a separate test file (or split.test)
    normalize: str  # standard | minmax | none
    target_normalize: str  # standard | none: regression targets, fitted on train; metrics in original units
    sampler: str = "none"  # none | balanced | oversample: how a classification epoch draws its examples
    augment: tuple[Augment, ...] = ()  # in order, on the training inputs before normalisation, afresh each epoch
    batch: int | None  # None: `batch = all`, the training split's size, known once the data is loaded
    shuffle: bool
    task: Task
    span: Span = _span()
    where: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)  # key -> value span

    def span_of(self, key: str) -> Span:
        """The span of one setting's value, for messages about it (the section's when not written)."""
        return dict(self.where).get(key, self.span)


@node
class TensorType:
    dtype: DType
    shape: tuple[int, ...]  # per example, without the batch dimension

    def __str__(self) -> str:
        return f"{self.dtype.value}[{', '.join(map(str, self.shape))}]"


@node
class Input:
    name: str
    type: TensorType
    span: Span = _span()


@node
class Layer:
    """One node of the model graph. `name` is unique in the model; `out` is filled by check."""

    name: str
    op: str  # layer registry key
    args: Args
    inputs: tuple[str, ...]
    out: TensorType | None = None
    span: Span = _span()
    called: Span = field(default=NOWHERE, compare=False, repr=False)  # in a block: where the model calls it


@node
class Pretrained:
    """`init = from("runs/pretrain", only = [encoder])`: weights taken from another run."""

    path: str  # a run directory or a .safetensors file, relative to the spec
    only: tuple[str, ...]  # model values or blocks whose weights are taken; () = every layer
    weights: str  # final | best | latest
    span: Span = _span()


@node
class Model:
    inputs: tuple[Input, ...]
    layers: tuple[Layer, ...]  # in topological order
    values: tuple[tuple[str, str], ...]  # user-visible name -> layer (or input) name
    span: Span = _span()
    pretrained: Pretrained | None = None


@node
class LossTerm:
    kind: str  # loss registry key
    pred: str  # a model value
    target: str  # "target": the data's target column
    weight: float
    args: Args
    span: Span = _span()


@node
class Loss:
    terms: tuple[LossTerm, ...]
    span: Span = _span()


@node
class Group:
    """Settings for the layers of one model value or block: `groups = { encoder = { lr = 1e-4 } }`."""

    selector: str  # a model value (`h`) or a block (`mlp`)
    args: Args  # overrides of the optimizer's arguments
    span: Span = _span()


@node
class Optimizer:
    kind: str
    args: Args  # lr, momentum, betas, ... with defaults filled
    groups: tuple[Group, ...] = ()
    freeze: tuple[str, ...] = ()  # selectors whose parameters are not trained
    span: Span = _span()


@node
class Phase:
    kind: str  # schedule registry key
    args: Args
    length: Duration | None  # None: until the end of the run
    span: Span = _span()


@node
class Schedule:
    phases: tuple[Phase, ...]
    span: Span = _span()


@node
class Regularization:
    l1: float  # penalty l1 * sum|w| over weight tensors of 2+ dimensions
    l2: float  # penalty l2/2 * sum(w^2) over the same (elastic_net adds to both)
    weight_decay: float  # decoupled: p -= lr * weight_decay * p, every parameter, any optimizer
    clip_grad_norm: float | None
    clip_grad_value: float | None
    accumulate: int  # micro-batches per optimizer step
    l1_on: tuple[str, ...] = ()  # the model values or blocks l1 applies to; () = every one
    l2_on: tuple[str, ...] = ()
    span: Span = _span()
    where: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)  # key -> value span

    def span_of(self, key: str) -> Span:
        return dict(self.where).get(key, self.span)


@node
class EarlyStop:
    monitor: MetricRef
    mode: str  # min | max
    patience: int
    min_delta: float
    restore_best: bool
    relative: bool = False  # min_delta is a fraction of the best value (`1%`)
    span: Span = _span()


@node
class Divergence:
    """What a non-finite or exploding training loss does."""

    action: str  # stop | rollback
    explode: float | None  # a loss above explode x the best epoch's counts as diverged
    lr_factor: float = 1.0
    retries: int = 0
    span: Span = _span()


@node
class Threshold:
    """`when = val.accuracy >= 0.99`."""

    monitor: MetricRef
    op: str
    value: float
    span: Span = _span()


@node
class Stop:
    max: Duration
    early: EarlyStop | None
    when: Threshold | None
    budget: float | None  # seconds of wall-clock time
    diverge: Divergence | None = None
    min: Duration | None = None  # early stopping and `when` act from this epoch on
    span: Span = _span()


@node
class Metric:
    kind: str
    args: Args
    span: Span = _span()


@node
class Checkpoint:
    every: Duration | None  # epochs or steps; None: every epoch
    keep: MetricRef | None
    last: int = 1  # how many of the newest checkpoints stay on disk (besides the best)
    span: Span = _span()


@node
class Run:
    seed: int
    device: str  # auto | cpu | cuda | metal
    precision: DType
    beam: int = 0  # tinygrad's BEAM search width for the training step's kernels; 0: none
    span: Span = _span()
    where: tuple[tuple[str, Span], ...] = field(default=(), compare=False, repr=False)  # key -> value span

    def span_of(self, key: str) -> Span:
        """Where `key` is written (a --set override's own span), the section's span when it is not."""
        return dict(self.where).get(key, self.span)


@node
class Spec:
    path: str
    data: Data
    model: Model
    loss: Loss
    optimizer: Optimizer
    schedule: Schedule
    regularization: Regularization
    stop: Stop
    metrics: tuple[Metric, ...]
    checkpoint: Checkpoint | None
    run: Run
    span: Span = _span()


def argdict(args: Args) -> dict[str, object]:
    return dict(args)
