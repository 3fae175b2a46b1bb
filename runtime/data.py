"""Loading a spec's `data` section into numpy arrays: read, encode labels, split, normalise.

Pure numpy (no tinygrad): the trainer turns these arrays into tensors. Every problem with the
user's data is raised as a `DataError` carrying a `Diagnostic` (codes E501-E506) that points at
the spec node responsible, so the CLI renders it like any other spec error; raw numpy or IO
exceptions never escape for bad input.

    E501  file not found
    E502  file unreadable or malformed (bad encoding, ragged rows, no header, bad npz)
    E503  unknown column or array key
    E504  non-numeric, missing or non-finite value
    E505  a split is empty or has too few examples
    E506  anything else (bad arguments, mismatched train/val files, ...)
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
import zipfile
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..compiler import ir
from ..compiler.diagnostics import Diagnostic, did_you_mean

SOURCE_KINDS = ("csv", "npz")
NORMALIZE_KINDS = ("standard", "minmax", "none")


class DataError(Exception):
    """A problem with the data a spec points at; `diagnostic` says what and where."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.message)


def _fail(code: str, message: str, span: ir.Span, help: str | None = None, notes: tuple[str, ...] = ()):
    raise DataError(Diagnostic(code=code, message=message, span=span, help=help, notes=notes))


@dataclass(frozen=True, eq=False)
class Normalizer:
    """`x_norm = (x - shift) / scale`, fitted on the training split."""

    kind: str  # standard | minmax | none
    shift: np.ndarray  # float32, feature shape
    scale: np.ndarray  # float32, feature shape, never 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float32) - self.shift) / self.scale).astype(np.float32, copy=False)


@dataclass(frozen=True, eq=False)
class Dataset:
    x_train: np.ndarray  # float32 [n_train, *feature_shape], normalised
    y_train: np.ndarray  # classification: int32 [n]; regression: float32 [n, n_targets]
    x_val: np.ndarray
    y_val: np.ndarray
    feature_names: tuple[str, ...] | None
    classes: tuple | None  # classification: index i -> original label (sorted); regression: None
    normalizer: Normalizer
    target_normalizer: Normalizer | None = None  # regression with target_normalize = standard
    x_test: np.ndarray | None = None  # held out: evaluated once, at the end
    y_test: np.ndarray | None = None
    x_train_raw: np.ndarray | None = None  # float32, before normalisation: kept for data.augment, else None

    @property
    def n_classes(self) -> int | None:
        return None if self.classes is None else len(self.classes)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.x_train.shape[1:])


# ---------------------------------------------------------------------------------------------
# Raw tables: what one source file holds, before labels are encoded.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    x: np.ndarray  # float64 [n, *feature_shape]
    y: np.ndarray  # classification: str [n]; regression: float64 [n, n_targets]
    feature_names: tuple[str, ...] | None
    source: ir.Source
    ordered: bool = False  # rows follow time (series windows, text): split in order, never shuffled across
    classes: tuple | None = None  # set by readers whose labels are already class ids (token ids): y is int


def _available(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names)} in all)"
    return shown


def _unknown_name_help(word: str, names: Sequence[str], what: str) -> str:
    return did_you_mean(word, names) or f"available {what}: {_available(names)}"


def _resolve(source: ir.Source, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(source.path))
    if not path.is_absolute():
        path = pathlib.Path(base_dir) / path
    try:
        exists, is_file = path.exists(), path.is_file()
    except OSError as e:
        _fail("E502", f"cannot open data file '{source.path}': {e}", source.span)
    if not exists:
        _fail(
            "E501",
            f"data file '{source.path}' not found (looked for {path})",
            source.span,
            help="paths are relative to the directory of the spec file",
        )
    if not is_file:
        _fail("E502", f"data file '{source.path}' is not a regular file ({path})", source.span)
    return path


def _target_names(source: ir.Source, args: dict, task: ir.Task, fallback: tuple[str, ...] | None) -> tuple[str, ...]:
    target = args.get("target")
    if target is None:
        if fallback is not None:
            return fallback
        _fail(
            "E506",
            f"csv source '{source.path}' has no target column",
            source.span,
            help="name the column to predict, e.g. csv(\"data.csv\", target = \"label\")",
        )
    names = (target,) if isinstance(target, str) else target
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        _fail(
            "E506",
            f"target of '{source.path}' must be a column name or a list of names, found {target!r}",
            source.span,
        )
    if len(set(names)) != len(names):
        _fail("E506", f"target of '{source.path}' names a column twice: {list(names)}", source.span)
    if task is ir.Task.classification and len(names) != 1:
        _fail(
            "E506",
            f"classification needs exactly one target column, found {len(names)}: {', '.join(names)}",
            source.span,
            help="several target columns are only supported for regression",
        )
    return names


def _feature_arg(source: ir.Source, args: dict) -> tuple[str, ...] | None:
    features = args.get("features")
    if features is None:
        return None
    names = (features,) if isinstance(features, str) else features
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        _fail("E506", f"features of '{source.path}' must be a list of column names, found {features!r}", source.span)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        _fail("E506", f"features of '{source.path}' lists column '{dup}' twice", source.span)
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_text(source: ir.Source, base_dir: pathlib.Path) -> str:
    """A source's file as text (UTF-8, a BOM allowed); unreadable files are E501/E502 at the source."""
    path = _resolve(source, base_dir)
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        _fail("E502", f"cannot read '{source.path}': not UTF-8 text ({e.reason} at byte {e.start})", source.span)
    except OSError as e:
        _fail("E502", f"cannot read '{source.path}': {e.strerror or e}", source.span)


def read_table(source: ir.Source, base_dir: pathlib.Path) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV with a header row: (header, rows of stripped cells, the file line of each row).

    Blank lines are skipped; a row of the wrong width, a missing or numeric header is E502."""
    text = read_text(source, base_dir)
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header: list[str] | None = None
        rows: list[list[str]] = []
        lines: list[int] = []  # file line of each row, for messages
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue  # blank line
            record = [cell.strip() for cell in record]
            if header is None:
                header = record
                continue
            if len(record) != len(header):
                _fail(
                    "E502",
                    f"'{source.path}' line {reader.line_num}: found {len(record)} fields, "
                    f"expected {len(header)} like the header",
                    source.span,
                )
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as e:
        _fail("E502", f"'{source.path}' is not valid CSV: {e}", source.span)

    if header is None:
        _fail("E502", f"'{source.path}' is empty; expected a header row of column names", source.span)
    if all(_is_number(h) for h in header):
        _fail(
            "E502",
            f"'{source.path}' has no header: its first row holds numbers ({', '.join(header[:4])}"
            f"{', ...' if len(header) > 4 else ''}), expected column names",
            source.span,
            help="add a first line naming the columns, e.g. 'p0,p1,...,label'",
        )
    return header, rows, lines


def _read_csv(
    source: ir.Source,
    base_dir: pathlib.Path,
    task: ir.Task,
    default_target: tuple[str, ...] | None = None,
    default_features: tuple[str, ...] | None = None,
) -> _Raw:
    args = ir.argdict(source.args)
    targets = _target_names(source, args, task, default_target)
    features = _feature_arg(source, args)
    header, rows, lines = read_table(source, base_dir)
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        _fail("E502", f"'{source.path}' header: column {blank[0]} has no name", source.span)
    seen: set[str] = set()
    for h in header:
        if h in seen:
            _fail("E502", f"'{source.path}' header names column '{h}' twice", source.span)
        seen.add(h)

    index = {h: i for i, h in enumerate(header)}

    def require(names, kind: str) -> None:
        for name in names:
            if name not in index:
                _fail("E503", f"{kind} column '{name}' not found in '{source.path}'", source.span,
                      help=_unknown_name_help(name, header, "columns"))

    require(targets, "target")
    if features is None:
        features = default_features if default_features is not None else tuple(h for h in header if h not in targets)
    require(features, "feature")
    for name in features:
        if name in targets:
            _fail("E506", f"column '{name}' of '{source.path}' is both a feature and the target", source.span)
    if not features:
        _fail("E506", f"'{source.path}' has no feature columns besides the target", source.span)

    if not rows:
        _fail("E505", f"'{source.path}' has a header but no data rows; expected at least one example", source.span)

    table = np.array(rows, dtype=str)
    x = _numbers(table, [index[f] for f in features], header, lines, source)
    if task is ir.Task.classification:
        col = index[targets[0]]
        y = table[:, col]
        numeric = all(_is_number(value) for value in y)  # a column of numbers: labels must be whole numbers
        for r, value in enumerate(y):
            where = f"'{source.path}' line {lines[r]}, column '{targets[0]}'"
            if not value or (_is_number(value) and math.isnan(float(value))):
                _fail("E504", f"{where}: missing label" + (f" ('{value}')" if value else ""), source.span,
                      help="every row needs a class label")
            if _is_number(value) and not math.isfinite(float(value)) or numeric and not float(value).is_integer():
                _fail("E504", f"{where}: class label '{value}' is not a whole number", source.span, help=LABEL_HELP)
    else:
        y = _numbers(table, [index[t] for t in targets], header, lines, source)
    return _Raw(x=x, y=y, feature_names=tuple(features), source=source)


LABEL_HELP = "class labels are whole numbers or names; for a numeric target use a regression loss such as mse"


def _numbers(table: np.ndarray, cols: list[int], header: list[str], lines: list[int], source: ir.Source) -> np.ndarray:
    """The given columns as float64, or E504 naming the first bad cell."""
    cells = table[:, cols]
    try:
        values = cells.astype(np.float64)
    except ValueError:
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    for r in range(cells.shape[0]):
        for c in range(cells.shape[1]):
            text = str(cells[r, c])
            where = f"'{source.path}' line {lines[r]}, column '{header[cols[c]]}'"
            if not text:
                _fail("E504", f"{where}: missing value, expected a number", source.span)
            try:
                value = float(text)
            except ValueError:
                _fail("E504", f"{where}: expected a number, found '{text}'", source.span)
            if not math.isfinite(value):
                _fail("E504", f"{where}: expected a finite number, found '{text}'", source.span)
    raise AssertionError("unreachable: a conversion failed but every cell parsed")  # pragma: no cover


def _read_npz(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> _Raw:
    path = _resolve(source, base_dir)
    args = ir.argdict(source.args)
    xkey, ykey = args.get("x", "x"), args.get("y", "y")
    for role, key in (("x", xkey), ("y", ykey)):
        if not isinstance(key, str):
            _fail("E506", f"npz source '{source.path}': '{role}' must be an array name, found {key!r}", source.span)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic != b"\x93NUMPY" and not zipfile.is_zipfile(path):
            _fail(
                "E502",
                f"'{source.path}' is not an .npz archive (found neither a zip nor a numpy header)",
                source.span,
                help="write it with numpy.savez(path, x=features, y=targets)",
            )
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            _fail(
                "E502",
                f"'{source.path}' holds a single array, expected an .npz archive with arrays '{xkey}' and '{ykey}'",
                source.span,
                help="write it with numpy.savez(path, x=features, y=targets)",
            )
        with archive:
            keys = list(archive.files)
            for role, key in (("features", xkey), ("targets", ykey)):
                if key not in keys:
                    _fail(
                        "E503",
                        f"array '{key}' ({role}) not found in '{source.path}'",
                        source.span,
                        help=_unknown_name_help(key, keys, "arrays"),
                    )
            x, y = archive[xkey], archive[ykey]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        _fail(
            "E502",
            f"cannot read '{source.path}' as an .npz archive of numeric arrays",
            source.span,
            notes=(str(e),),
            help="write it with numpy.savez(path, x=features, y=targets)",
        )

    if x.ndim == 0 or y.ndim == 0:
        _fail(
            "E502",
            f"'{source.path}': arrays '{xkey}' and '{ykey}' must have one row per example, found scalars",
            source.span,
        )
    if x.shape[0] != y.shape[0]:
        _fail(
            "E502",
            f"'{source.path}': '{xkey}' has {x.shape[0]} rows but '{ykey}' has {y.shape[0]}; "
            "expected one target per example",
            source.span,
        )
    if x.shape[0] == 0:
        _fail("E505", f"'{source.path}' holds no examples; expected at least one", source.span)
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind not in "biuf":
        _fail("E504", f"'{source.path}': array '{xkey}' holds {x.dtype} values, expected numbers", source.span)
    x = x.astype(np.float64)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        row, *pos = (int(i) for i in bad[0])
        _fail(
            "E504",
            f"'{source.path}': array '{xkey}' row {row}, feature {tuple(pos)}: "
            f"expected a finite number, found {x[tuple(bad[0])]}",
            source.span,
        )

    if task is ir.Task.classification:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            _fail(
                "E502",
                f"'{source.path}': labels '{ykey}' have shape {y.shape}, expected one label per example",
                source.span,
            )
        if np.issubdtype(y.dtype, np.floating):
            bad = np.flatnonzero(~np.isfinite(y))
            if len(bad):
                _fail(
                    "E504",
                    f"'{source.path}': array '{ykey}' row {int(bad[0])}: missing label ({y[bad[0]]})",
                    source.span,
                )
            bad = np.flatnonzero(y != np.round(y))
            if len(bad):
                _fail("E504", f"'{source.path}': array '{ykey}' row {int(bad[0])}: class label {y[bad[0]]} is not a "
                      "whole number", source.span, help=LABEL_HELP)
        elif y.dtype.kind not in "biuUS":
            _fail(
                "E504",
                f"'{source.path}': labels '{ykey}' hold {y.dtype} values, expected integers or strings",
                source.span,
            )
        if y.dtype.kind == "S":
            y = np.char.decode(y, "utf-8", errors="replace")
        labels = np.array([_label_text(v) for v in y.tolist()], dtype=str)
        return _Raw(x=x, y=labels, feature_names=None, source=source)

    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        _fail(
            "E502",
            f"'{source.path}': targets '{ykey}' have shape {y.shape}, expected [examples] or [examples, targets]",
            source.span,
        )
    if y.dtype.kind not in "biuf":
        _fail("E504", f"'{source.path}': targets '{ykey}' hold {y.dtype} values, expected numbers", source.span)
    y = y.astype(np.float64)
    bad = np.argwhere(~np.isfinite(y))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        _fail(
            "E504",
            f"'{source.path}': array '{ykey}' row {row}, target {col}: expected a finite number, found {y[row, col]}",
            source.span,
        )
    return _Raw(x=x, y=y, feature_names=None, source=source)


def _label_text(v) -> str:
    if isinstance(v, bool):
        return str(int(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read(
    source: ir.Source,
    base_dir: pathlib.Path,
    task: ir.Task,
    default_target: tuple[str, ...] | None = None,
    default_features: tuple[str, ...] | None = None,
) -> _Raw:
    if source.kind == "csv":
        return _read_csv(source, base_dir, task, default_target, default_features)
    if source.kind == "npz":
        return _read_npz(source, base_dir, task)
    from .sources import READERS  # more kinds: image folders, text, time series

    if source.kind in READERS:
        return READERS[source.kind](source, base_dir, task)
    kinds = (*SOURCE_KINDS, *sorted(READERS))
    _fail(
        "E506",
        f"unknown data source kind '{source.kind}'; expected one of: {', '.join(kinds)}",
        source.span,
        help=did_you_mean(source.kind, kinds),
    )


# ---------------------------------------------------------------------------------------------
# Labels, splits, normalisation.
# ---------------------------------------------------------------------------------------------


def _encode_labels(label_sets: Sequence[np.ndarray]) -> tuple[tuple, list[np.ndarray]]:
    """Sorted class values over every set, and each set as int32 class indices.

    Labels that all read as integers are classes sorted numerically (`2 < 10`); all numbers,
    numerically; otherwise they are strings, sorted as strings.
    """
    unique = sorted(set().union(*(set(s.tolist()) for s in label_sets)))
    values: list
    try:
        values = [int(u) for u in unique]
    except ValueError:
        try:
            values = [float(u) for u in unique]
            if not all(math.isfinite(v) for v in values):
                values = list(unique)
            elif all(v.is_integer() for v in values):
                values = [int(v) for v in values]
        except ValueError:
            values = list(unique)
    # two spellings of one number ("1", "01") are one class
    canon = {u: v for u, v in zip(unique, values)}
    classes = tuple(sorted(set(values)))
    position = {v: i for i, v in enumerate(classes)}
    lookup = {u: position[canon[u]] for u in unique}
    encoded = [np.array([lookup[v] for v in s.tolist()], dtype=np.int32) for s in label_sets]
    return classes, encoded


def _round(x: float) -> int:
    return int(math.floor(x + 0.5 + 1e-9))


def _split_indices(n: int, split: ir.Split, labels: np.ndarray | None, rng: np.random.Generator, what: str,
                   ordered: bool = False, fold: int | None = None):
    """Indices of the train, val and test examples (test may be empty).

    Fractions cut one seeded permutation (per class when stratified; in file order for ordered
    sources). With `kfold(k)`, example i goes to fold (its position in that order) mod k, and fold
    `fold` is the validation split."""
    train, val, test = split.train, split.val, split.test
    if not split.folds and not (0 < train <= 1 and 0 < val <= 1 and train + val + test <= 1 + 1e-9):
        _fail(
            "E505",
            f"split fractions must be above 0 and sum to at most 1, found train = {train:g}, val = {val:g}",
            split.span,
            help="e.g. split = { train = 0.8, val = 0.2 }",
        )
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels is not None and not ordered \
        else [np.arange(n)]
    parts: tuple[list, list, list] = ([], [], [])
    offset = 0
    for members in groups:
        if not ordered:
            members = members[rng.permutation(len(members))]
        m = len(members)
        if split.folds:
            fold_of = (np.arange(m) + offset) % split.folds  # offset spreads the remainders over the folds
            offset += m
            parts[0].append(members[fold_of != fold])
            parts[1].append(members[fold_of == fold])
            continue
        n_train = max(_round(train * m), 1) if labels is not None and not ordered else _round(train * m)
        n_val = min(max(_round((train + val) * m), n_train), m)
        n_test = min(max(_round((train + val + test) * m), n_val), m)
        parts[0].append(members[:n_train])
        parts[1].append(members[n_train:n_val])
        parts[2].append(members[n_val:n_test])
    out = []
    for p in parts:
        idx = np.concatenate(p) if p else np.array([], dtype=np.int64)
        if not ordered and len(groups) > 1:
            idx = idx[rng.permutation(len(idx))]
        out.append(idx.astype(np.int64))
    train_idx, val_idx, test_idx = out
    for name, idx in (("train", train_idx), ("val", val_idx)) + ((("test", test_idx),) if test else ()):
        if len(idx) == 0:
            _fail(
                "E505",
                f"split train = {train:g}, val = {val:g} of {n} examples in {what} leaves the {name} split empty",
                split.span,
                help="use a larger fraction or more data",
            )
    return train_idx, val_idx, test_idx


def _fit_normalizer(kind: str, x: np.ndarray, span: ir.Span) -> Normalizer:
    shape = x.shape[1:]
    if kind == "none":
        return Normalizer("none", np.zeros(shape, np.float32), np.ones(shape, np.float32))
    if kind == "standard":
        shift, scale = x.mean(axis=0), x.std(axis=0)
    elif kind == "minmax":
        shift, scale = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    else:
        _fail(
            "E506",
            f"unknown normalization '{kind}'; expected one of: {', '.join(NORMALIZE_KINDS)}",
            span,
            help=did_you_mean(kind, NORMALIZE_KINDS),
        )
    constant = (x.max(axis=0) == x.min(axis=0)) | ~(scale > 0)
    scale = np.where(constant, 1.0, scale)
    return Normalizer(kind, shift.astype(np.float32), scale.astype(np.float32))


def load_data(data: ir.Data, base_dir: pathlib.Path, seed: int, fold: int | None = None) -> Dataset:
    """Read, split, encode and normalise the data a spec describes; with `split = kfold(k)`, the given fold
    as the val split (fold 0 when none is given)."""
    base_dir = pathlib.Path(base_dir)
    task = data.task
    classify = task is ir.Task.classification
    if data.normalize not in NORMALIZE_KINDS:
        _fail(
            "E506",
            f"unknown normalization '{data.normalize}'; expected one of: {', '.join(NORMALIZE_KINDS)}",
            data.span,
            help=did_you_mean(data.normalize, NORMALIZE_KINDS),
        )

    if data.source is not None:
        if data.train is not None or data.val is not None:
            _fail("E506", "data has both a source and separate train/val files; expected one or the other", data.span)
        if data.split is None:
            _fail(
                "E506",
                "data source has no split; expected e.g. split = { train = 0.8, val = 0.2 }",
                data.source.span,
            )
        raw = _read(data.source, base_dir, task)
        n = raw.x.shape[0]
        rng = np.random.default_rng(np.random.SeedSequence(int(seed) % 2**64))
        if classify:
            if raw.classes is not None:  # e.g. text: class index == token id, every token a class
                classes, y_all = raw.classes, raw.y.astype(np.int32)
            else:
                classes, (y_all,) = _encode_labels([raw.y])
        else:
            classes, y_all = None, raw.y
        strata = y_all if (classify and data.split.stratify) else None
        if strata is not None and not data.split.folds and not raw.ordered:
            counts = np.bincount(strata, minlength=len(classes))
            if (counts == 1).any():  # scikit-learn's rule: it cannot be in both the train and the val split
                _fail("E505", f"class {classes[int(np.argmax(counts == 1))]!r} has a single example in "
                      f"'{data.source.path}': too few to stratify", data.split.span,
                      help="add examples of it, remove it from the file, or set stratify = false")
        if fold is None and data.split.folds:  # a single dataset of a k-fold spec (summary, schedule): fold 0
            fold = 0
        tr, va, te = _split_indices(n, data.split, strata, rng, f"'{data.source.path}'", ordered=raw.ordered,
                                    fold=fold)
        x_tr, x_va, y_tr, y_va = raw.x[tr], raw.x[va], y_all[tr], y_all[va]
        x_te, y_te = (raw.x[te], y_all[te]) if len(te) else (None, None)
        names = raw.feature_names
    else:
        if data.train is None or data.val is None:
            given = data.train or data.val
            missing = "val" if data.train is not None else "train"
            _fail(
                "E506",
                f"data has no {missing} file; expected a source with a split, or both train and val files",
                given.span if given is not None else data.span,
            )
        raw_tr = _read(data.train, base_dir, task)
        default_target = None
        default_features = None
        if data.val.kind == "csv" and data.train.kind == "csv":
            default_target = _target_names(data.train, ir.argdict(data.train.args), task, None)
            if "features" not in ir.argdict(data.val.args):
                default_features = raw_tr.feature_names
        raw_va = _read(data.val, base_dir, task, default_target, default_features)
        raw_te = _read(data.test, base_dir, task, default_target, default_features) if data.test else None
        if raw_te is not None and raw_te.x.shape[1:] != raw_tr.x.shape[1:]:
            _fail("E506", f"test file '{data.test.path}' has features of shape {list(raw_te.x.shape[1:])}, "
                  f"but train file '{data.train.path}' has {list(raw_tr.x.shape[1:])}", data.test.span)
        if raw_tr.x.shape[1:] != raw_va.x.shape[1:]:
            _fail(
                "E506",
                f"val file '{data.val.path}' has features of shape {list(raw_va.x.shape[1:])}, "
                f"but train file '{data.train.path}' has {list(raw_tr.x.shape[1:])}",
                data.val.span,
                help="train and val files must have the same feature columns",
            )
        if raw_tr.feature_names is not None and raw_va.feature_names is not None:
            if raw_tr.feature_names != raw_va.feature_names:
                diff = next(i for i, (a, b) in enumerate(zip(raw_tr.feature_names, raw_va.feature_names)) if a != b)
                _fail(
                    "E506",
                    f"feature {diff + 1} is '{raw_va.feature_names[diff]}' in val file '{data.val.path}' "
                    f"but '{raw_tr.feature_names[diff]}' in train file '{data.train.path}'",
                    data.val.span,
                    help="train and val files must have the same feature columns, in the same order",
                )
        if classify:
            classes, encoded = _encode_labels([raw_tr.y, raw_va.y] + ([raw_te.y] if raw_te is not None else []))
            y_tr, y_va = encoded[0], encoded[1]
            y_te = encoded[2] if raw_te is not None else None
        else:
            classes, y_tr, y_va = None, raw_tr.y, raw_va.y
            y_te = raw_te.y if raw_te is not None else None
            if y_tr.shape[1] != y_va.shape[1]:
                _fail(
                    "E506",
                    f"val file '{data.val.path}' has {y_va.shape[1]} targets, "
                    f"train file '{data.train.path}' has {y_tr.shape[1]}",
                    data.val.span,
                )
        x_tr, x_va = raw_tr.x, raw_va.x
        x_te = raw_te.x if raw_te is not None else None
        names = raw_tr.feature_names

    normalizer = _fit_normalizer(data.normalize, x_tr, data.span)
    target_normalizer = None
    if not classify:
        y_tr, y_va = y_tr.astype(np.float32), y_va.astype(np.float32)
        y_te = y_te.astype(np.float32) if y_te is not None else None
        if data.target_normalize != "none":
            target_normalizer = _fit_normalizer(data.target_normalize, y_tr, data.span)
            y_tr, y_va = target_normalizer.apply(y_tr), target_normalizer.apply(y_va)
            y_te = target_normalizer.apply(y_te) if y_te is not None else None
    return Dataset(
        x_train=normalizer.apply(x_tr),
        y_train=y_tr,
        x_val=normalizer.apply(x_va),
        y_val=y_va,
        feature_names=names,
        classes=classes,
        normalizer=normalizer,
        target_normalizer=target_normalizer,
        x_test=normalizer.apply(x_te) if x_te is not None else None,
        y_test=y_te,
        x_train_raw=np.asarray(x_tr, dtype=np.float32) if data.augment else None,
    )
