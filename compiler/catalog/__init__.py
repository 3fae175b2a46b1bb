"""The catalogues: one registry each for layers, initialisers, losses, optimizers, schedules,
metrics, data sources and stopping rules, and the sections and keys of a spec.

A registered function's signature *is* its schema (see `base.py`); each family lives in its own
module and registers itself on import. No tinygrad here: lint reads this package. The tinygrad
implementation of each entry lives in `compiler/lower/`, keyed by the same name.
"""

from . import base, data, inits, layers, losses, metrics, optimizers, schedules  # noqa: F401 - they register
from . import layers_attention, layers_sequence, layers_vision  # noqa: F401 - they register
from . import augment  # noqa: F401 - registers the augmentations of data.augment
from . import sections

from .base import *  # noqa: F403
from .base import REQUIRED, UNITS, Registry  # noqa: F401 - named for readers
from ..ir import DType
from .sections import DEVICES, PRECISIONS, ByTask, Form, Key  # noqa: F401 - the declarations of section keys

for _entry in base.LAYERS.entries.values():  # layers without a shape function keep their input's shape
    _entry.extra.setdefault("shape", lambda x, args: x)

# ---------------------------------------------------------------------------------------------
# Sections and keys
# ---------------------------------------------------------------------------------------------

SECTIONS = {section: {k: d.doc for k, d in keys.items()}  # section -> {key: description}, from sections.py
            for section, keys in sections.KEYS.items()}

VALUE_SECTIONS = {"loss", "optimizer", "schedule", "metrics"}  # written `name = value`
BLOCK_SECTIONS = {"data", "model", "regularization", "stop", "checkpoint", "run"}  # written `name { ... }`

DTYPES = {"f32": DType.f32, "i32": DType.i32}  # i32: token ids, for `embedding`


# What the value of a key names where it is one word: a registry's entry, or one of a few bare words. The
# language server completes `key = ` from it and the editor grammar highlights its words; resolve.py reads
# the bare-word keys with the same choices (tests/test_completion_schema.py checks both ways).
KEY_VALUES = {  # (section, key) -> a Registry, a Choice or Bool; section "" is the top level
    ("", "loss"): LOSSES, ("", "optimizer"): OPTIMIZERS, ("", "schedule"): SCHEDULES,
    ("", "metrics"): METRICS, ("model", "init"): INITS,
    **sections.key_values(),  # the block sections' keys, as declared in sections.py
}
