"""The catalogues: one registry each for layers, initialisers, losses, optimizers, schedules,
metrics, data sources and stopping rules, and the sections and keys of a spec.

A registered function's signature *is* its schema (see `base.py`); each family lives in its own
module and registers itself on import. No tinygrad here: lint reads this package. The tinygrad
implementation of each entry lives in `compiler/lower/`, keyed by the same name.
"""

from . import base, data, inits, layers, losses, metrics, optimizers, schedules  # noqa: F401 - they register
from . import layers_attention, layers_sequence, layers_vision  # noqa: F401 - they register
from . import augment  # noqa: F401 - registers the augmentations of data.augment

from .base import *  # noqa: F403
from .base import REQUIRED, UNITS, Registry  # noqa: F401 - named for readers
from ..ir import DType

for _entry in base.LAYERS.entries.values():  # layers without a shape function keep their input's shape
    _entry.extra.setdefault("shape", lambda x, args: x)

# ---------------------------------------------------------------------------------------------
# Sections and keys
# ---------------------------------------------------------------------------------------------

SECTIONS = {  # section -> {key: description}
    "data": {
        "source": "where the examples come from: csv(...) or npz(...)",
        "split": "fractions of `source`: { train = 0.8, val = 0.2, stratify = true }",
        "train": "a separate training file (with `val`, instead of source + split)",
        "val": "a separate validation file",
        "test": "a separate test file, evaluated once at the end (with train and val files)",
        "normalize": "standard, minmax or none (fitted on the training split only)",
        "target_normalize": "regression only: standard (default) or none; metrics stay in the target's units",
        "batch": "examples per step, or `all`: the whole training split (full-batch gradient descent)",
        "shuffle": "reshuffle the training split every epoch",
        "sampler": "classification: none, balanced (draw classes equally often) or oversample (repeat the rarer)",
        "task": "classification or regression (default: from the loss)",
        "augment": "training inputs changed afresh every epoch: [flip, crop(padding = 1), noise(std = 0.05), ...]",
    },
    "model": {},
    "loss": {},
    "optimizer": {},
    "schedule": {},
    "regularization": {
        "l1": "penalty l1 * sum|w| over every weight tensor of 2+ dimensions (not biases or norm scales); "
              "{ value = 1e-4, on = [head] } for some model values or blocks only",
        "l2": "penalty l2/2 * sum(w^2) over every weight tensor of 2+ dimensions (not biases or norm scales); "
              "{ value = 1e-4, on = [head] } for some model values or blocks only",
        "elastic_net": "elastic_net(alpha, l1_ratio = 0.5): both penalties, scikit-learn's form",
        "weight_decay": "decoupled decay p -= lr * weight_decay * p on every parameter, any optimizer",
        "clip_grad_norm": "rescale gradients whose global L2 norm exceeds this",
        "clip_grad_value": "clamp every gradient element to [-v, v]",
        "accumulate": "micro-batches of `data.batch` per optimizer step (gradient accumulation)",
    },
    "stop": {
        "max": "the longest run: N epochs or N steps",
        "early": "early stopping: plateau(val.loss, patience = 5, ...)",
        "when": "stop once a metric reaches a threshold: val.accuracy >= 0.99",
        "budget": "wall-clock limit: 10 min",
        "diverge": "what a non-finite or exploding loss does: stop (default) or rollback(lr_factor = 0.5)",
    },
    "metrics": {},
    "checkpoint": {
        "every": "write a resumable checkpoint every N epochs or N steps (default: every epoch)",
        "keep": "also keep the best checkpoint: best(val.loss)",
        "last": "how many of the newest checkpoints stay on disk, besides the best (default 1)",
    },
    "run": {
        "seed": "seed for initialisation, splits, shuffling and dropout",
        "device": "auto, cpu, cuda or metal",
        "precision": "f32, or mixed precision: f16 (with dynamic loss scaling) or bf16; weights stay f32",
        "beam": "search each kernel of the training step among N candidates (tinygrad's BEAM), cached on disk",
    },
}

VALUE_SECTIONS = {"loss", "optimizer", "schedule", "metrics"}  # written `name = value`
BLOCK_SECTIONS = {"data", "model", "regularization", "stop", "checkpoint", "run"}  # written `name { ... }`

DTYPES = {"f32": DType.f32, "i32": DType.i32}  # i32: token ids, for `embedding`
PRECISIONS = {"f32": DType.f32, "f16": DType.f16, "bf16": DType.bf16}  # run.precision: the forward pass
DEVICES = ("auto", "cpu", "cuda", "metal")


# What the value of a key names where it is one word: a registry's entry, or one of a few bare words. The
# language server completes `key = ` from it and the editor grammar highlights its words; resolve.py reads
# the bare-word keys with the same choices (tests/test_completion_schema.py checks both ways).
KEY_VALUES = {  # (section, key) -> a Registry, a Choice or Bool; section "" is the top level
    ("", "loss"): LOSSES, ("", "optimizer"): OPTIMIZERS, ("", "schedule"): SCHEDULES,
    ("", "metrics"): METRICS, ("model", "init"): INITS,
    ("data", "source"): SOURCES, ("data", "train"): SOURCES, ("data", "val"): SOURCES,
    ("data", "test"): SOURCES, ("data", "augment"): AUGMENTATIONS,
    ("stop", "early"): STOP_RULES, ("stop", "diverge"): DIVERGENCE,
    ("regularization", "elastic_net"): REGULARIZERS,
    ("data", "normalize"): Choice("standard", "minmax", "none"),
    ("data", "target_normalize"): Choice("standard", "none"),
    ("data", "sampler"): Choice("none", "balanced", "oversample"),
    ("data", "task"): Choice("classification", "regression"),
    ("data", "shuffle"): Bool,
    ("run", "device"): Choice(*DEVICES),
    ("run", "precision"): Choice(*PRECISIONS),  # not DTYPES: i32 is an input's type, not a precision
}
