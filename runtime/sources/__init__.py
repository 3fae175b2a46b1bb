"""More data sources, one module each, registered by kind.

A reader is `(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> data._Raw` (features `x`
of shape [n, ...], targets `y`, `feature_names` or None) and raises `data.DataError` with a
diagnostic for bad input. Splitting, normalisation and label encoding happen in `data.py`.
"""

from typing import Callable

READERS: dict[str, Callable] = {}

from . import timeseries  # noqa: E402,F401 - registers `series`
from . import text  # noqa: E402,F401 - registers `text`
from . import images  # noqa: E402,F401 - registers `images`
