"""`series(path, column, window, horizon, features)`: sliding windows over a time-ordered CSV.

Rows are time steps, in file order. Example i is the window `x = values[i : i + window]` of shape
[window, n_features] (the `features` columns, default just `column`) and the target
`y = column[i + window + horizon - 1]`: the value `horizon` steps after the window's last row.
A file of N rows gives N - window - horizon + 1 examples. The examples are marked `ordered`, so
the split is chronological: the first windows train, the later ones validate.
"""

from __future__ import annotations

import pathlib

import numpy as np

from ...compiler import ir
from ..tables import DataError, _clip, _fail, _feature_arg, _Raw, _unknown_name_help, read_columns


def read_series(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> _Raw:
    args = ir.argdict(source.args)
    column, window, horizon = args.get("column"), args.get("window", 32), args.get("horizon", 1)
    if task is ir.Task.classification:
        _fail("E506", f"series source '{source.path}' gives regression targets (future values of a column), "
              "but the loss is for classification", source.span, help="use a regression loss such as mse or mae")
    if not isinstance(column, str):
        _fail("E506", f"series source '{source.path}': `column` must be a column name, found {column!r}", source.span,
              help='e.g. series("data.csv", column = "value")')
    for name, v in (("window", window), ("horizon", horizon)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            _fail("E506", f"series source '{source.path}': `{name}` must be a positive integer, found {v!r}",
                  source.span)
    features = _feature_arg(source, args) or (column,)

    def choose(header: list[str]) -> list[tuple[list[int], type]]:
        if len(set(header)) != len(header):
            dup = next(h for h in header if header.count(h) > 1)
            _fail("E502", f"'{source.path}' header names column '{_clip(dup)}' twice", source.span)
        index = {h: i for i, h in enumerate(header)}
        for kind, names in (("series", (column,)), ("feature", features)):
            for name in names:
                if name not in index:
                    _fail("E503", f"{kind} column '{name}' not found in '{source.path}'", source.span,
                          help=_unknown_name_help(name, header, "columns"))
        return [([index[f] for f in features], np.float64), ([index[column]], np.float64)]

    n_rows, (values, target), errors = read_columns(source, base_dir, choose)  # values [N, F], target [N, 1]
    n = n_rows - window - horizon + 1
    if n < 1:
        _fail("E505", f"'{source.path}' has {n_rows} rows, too few for one example of window {window} and "
              f"horizon {horizon} (it needs {window + horizon})", source.span,
              help="use a smaller window or more rows")
    for error in errors:  # the first bad feature cell, then the first bad target cell
        if error is not None:
            raise DataError(error)
    target = target[:, 0]
    starts = np.arange(n)
    x = values[starts[:, None] + np.arange(window)[None, :]]  # [n, window, F]
    y = target[starts + window + horizon - 1][:, None]  # [n, 1]
    return _Raw(x=x, y=y, feature_names=tuple(features), source=source, ordered=True)
