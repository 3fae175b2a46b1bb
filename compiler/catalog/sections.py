"""The keys of the block sections (data, regularization, stop, checkpoint, run): each declared once, here.

A key is declared as

    name=Key(TYPE, DEFAULT, "doc")

- TYPE is what the value takes: a schema type of `base.py` (`Int(min=1)`, `Choice("standard", "none")`,
  `Dur("seconds")`, `Bool`, ...), a `Registry` (`SOURCES`: the value names one of its entries), or a
  `Form("...")` for a structured value (a record, a comparison) described in words.
- DEFAULT is the value the resolver uses when the key is absent: a Python value, `None` (unset), `REQUIRED`,
  or `ByTask(classification=..., regression=...)` where it follows the task.
- doc is the one-line description shown by completion, hover and the generated key table of specs/README.md.
- `via="method"` names the resolver method that converts a structured value (`data.split` -> `_Resolver.split`);
  without it the value is converted by `resolve.convert` against TYPE.
- `shown="..."` is how the docs spell a default that is not a plain value (`every epoch`).

`compiler/resolve.py` reads type and default from here (`get("weight_decay")`); `SECTIONS` and `KEY_VALUES` in
`catalog/__init__.py`, the language server's completion and hover, the editor grammar and the README table are
all derived from `KEYS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import DType
from .base import (AUGMENTATIONS, DIVERGENCE, REGULARIZERS, REQUIRED, SOURCES, STOP_RULES, Bool, Choice, Dur, Int,
                   NonNegative, Positive, Registry, _show)

PRECISIONS = {"f32": DType.f32, "f16": DType.f16, "bf16": DType.bf16}  # run.precision: the forward pass
DEVICES = ("auto", "cpu", "cuda", "metal")


@dataclass(frozen=True)
class Form:
    """A structured value (a record, a comparison, a call of a fixed name), described in words."""

    text: str

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class ByTask:
    """A default that follows the task."""

    classification: object
    regression: object

    def for_task(self, task: str) -> object:
        return self.regression if task == "regression" else self.classification


@dataclass(frozen=True)
class Key:
    type: object  # a schema type, a Registry or a Form
    default: object  # a value, None, REQUIRED or ByTask(...)
    doc: str
    via: str | None = None  # the resolver method converting a structured value
    shown: str | None = None  # the default as the docs spell it, where it is not a plain value

    def describe(self) -> str:
        """What the value takes, in words."""
        if isinstance(self.type, Registry):
            article = "an" if self.type.kind[0] in "aeiou" else "a"
            return f"{article} {self.type.kind}: " + ", ".join(self.type.names())
        return self.type.describe()

    def show_default(self) -> str:
        """The default, as the docs spell it."""
        if self.shown is not None:
            return self.shown
        if self.default is REQUIRED:
            return "required"
        if isinstance(self.default, ByTask):
            return f"{_show(self.default.regression)} for regression, {_show(self.default.classification)} for " \
                   "classification"
        return _show(self.default)


def _keys(**keys: Key) -> dict[str, Key]:
    return keys


KEYS: dict[str, dict[str, Key]] = {  # section -> key -> declaration, in the order of SECTIONS
    "data": _keys(
        source=Key(SOURCES, None, "where the examples come from: csv(...) or npz(...)", via="source",
                   shown="with `split`, or `train` + `val`"),
        split=Key(Form("a record { train = F, val = F, test = F, stratify = true } or kfold(k, stratify = true)"),
                  None, "fractions of `source`: { train = 0.8, val = 0.2, stratify = true }", via="split",
                  shown="required with `source`"),
        train=Key(SOURCES, None, "a separate training file (with `val`, instead of source + split)", via="source"),
        val=Key(SOURCES, None, "a separate validation file", via="source"),
        test=Key(SOURCES, None, "a separate test file, evaluated once at the end (with train and val files)",
                 via="source"),
        normalize=Key(Choice("standard", "minmax", "none"), "standard",
                      "standard, minmax or none (fitted on the training split only)"),
        target_normalize=Key(Choice("standard", "none"), ByTask(classification="none", regression="standard"),
                             "regression only: standard (default) or none; metrics stay in the target's units"),
        batch=Key(Int(min=1), 32,
                  "examples per step, or `all`: the whole training split (full-batch gradient descent)"),
        shuffle=Key(Bool, True, "reshuffle the training split every epoch"),
        sampler=Key(Choice("none", "balanced", "oversample"), "none",
                    "classification: none, balanced (draw classes equally often) or oversample (repeat the rarer)"),
        task=Key(Choice("classification", "regression"), None,
                 "classification or regression (default: from the loss)", shown="from the loss"),
        augment=Key(AUGMENTATIONS, (), "training inputs changed afresh every epoch: [flip, crop(padding = 1), "
                    "noise(std = 0.05), ...]", via="augment", shown="none"),
    ),
    "model": {},
    "loss": {},
    "optimizer": {},
    "schedule": {},
    "regularization": _keys(
        l1=Key(Form("a number >= 0, or { value = 1e-4, on = [values or blocks] }"), (0.0, ()),
               "penalty l1 * sum|w| over every weight tensor of 2+ dimensions (not biases or norm scales); "
               "{ value = 1e-4, on = [head] } for some model values or blocks only", via="penalty", shown="0"),
        l2=Key(Form("a number >= 0, or { value = 1e-4, on = [values or blocks] }"), (0.0, ()),
               "penalty l2/2 * sum(w^2) over every weight tensor of 2+ dimensions (not biases or norm scales); "
               "{ value = 1e-4, on = [head] } for some model values or blocks only", via="penalty", shown="0"),
        elastic_net=Key(REGULARIZERS, None, "elastic_net(alpha, l1_ratio = 0.5): both penalties, scikit-learn's form",
                        via="elastic_net"),
        weight_decay=Key(NonNegative, 0.0,
                         "decoupled decay p -= lr * weight_decay * p on every parameter, any optimizer"),
        clip_grad_norm=Key(Positive, None, "rescale gradients whose global L2 norm exceeds this"),
        clip_grad_value=Key(Positive, None, "clamp every gradient element to [-v, v]"),
        accumulate=Key(Int(min=1), 1, "micro-batches of `data.batch` per optimizer step (gradient accumulation)"),
    ),
    "stop": _keys(
        max=Key(Dur("steps", "epochs"), REQUIRED, "the longest run: N epochs or N steps"),
        min=Key(Dur("epochs"), None, "the shortest run: early stopping and `when` do not end it before N epochs "
                "(Lightning's min_epochs, Keras' start_from_epoch)", shown="none"),
        early=Key(STOP_RULES, None, "early stopping: plateau(val.loss, patience = 5, ...)", via="early"),
        when=Key(Form("a comparison like val.accuracy >= 0.99"), None,
                 "stop once a metric reaches a threshold: val.accuracy >= 0.99", via="when"),
        budget=Key(Dur("seconds"), None, "wall-clock limit: 10 min"),
        diverge=Key(DIVERGENCE, None,
                    "what a non-finite or exploding loss does: stop (default) or rollback(lr_factor = 0.5)",
                    via="diverge", shown="stop"),
    ),
    "metrics": {},
    "checkpoint": _keys(
        every=Key(Dur("epochs", "steps"), None,
                  "write a resumable checkpoint every N epochs or N steps (default: every epoch)", shown="every epoch"),
        keep=Key(Form("best(<metric>), like best(val.loss)"), None, "also keep the best checkpoint: best(val.loss)",
                 via="keep"),
        last=Key(Int(min=1), 1, "how many of the newest checkpoints stay on disk, besides the best (default 1)"),
    ),
    "run": _keys(
        seed=Key(Int(min=0), 0, "seed for initialisation, splits, shuffling and dropout"),
        device=Key(Choice(*DEVICES), "auto", "auto, cpu, cuda or metal"),
        precision=Key(Choice(*PRECISIONS), "f32",  # not DTYPES: i32 is an input's type, not a precision
                      "f32, or mixed precision: f16 (with dynamic loss scaling) or bf16; weights stay f32"),
        beam=Key(Int(min=0, max=32), 0,
                 "search each kernel of the training step among N candidates (tinygrad's BEAM), cached on disk"),
    ),
}


def key(section: str, name: str) -> Key:
    """The declaration of `section.name`."""
    return KEYS[section][name]


def key_values() -> dict[tuple[str, str], object]:
    """(section, key) -> the Registry, Choice or Bool a key's one-word value names (for KEY_VALUES)."""
    return {(s, k): d.type for s, keys in KEYS.items() for k, d in keys.items()
            if isinstance(d.type, (Registry, Choice, type(Bool)))}
