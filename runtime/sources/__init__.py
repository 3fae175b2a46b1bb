"""More data sources, one module each, registered by kind.

A reader is `(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> tables._Raw` (features `x`
of shape [n, ...], targets `y`, `feature_names` or None) and raises `tables.DataError` with a
diagnostic for bad input. Splitting, normalisation and label encoding happen in `data.py`.
The readers build on `runtime/tables.py` (as data.py does), never on data.py or this package.
"""

from collections.abc import Callable

from .images import read_images
from .text import read_text
from .timeseries import read_series

READERS: dict[str, Callable] = {"series": read_series, "text": read_text, "images": read_images}  # by kind
