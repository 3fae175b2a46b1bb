"""Loading a spec's `data` section into numpy arrays: read, encode labels, split, normalise.

Pure numpy (no tinygrad): the trainer turns these arrays into tensors. Every problem with the
user's data is raised as a `DataError` carrying a `Diagnostic` (codes E501-E506) that points at
the spec node responsible, so the CLI renders it like any other spec error; raw numpy or IO
exceptions never escape for bad input.

    E501  file not found
    E502  file unreadable or malformed (not a regular file, bad encoding, ragged rows, no header, bad npz)
    E503  unknown column or array key
    E504  non-numeric, missing or non-finite value
    E505  a split is empty or has too few examples
    E506  anything else (bad arguments, mismatched train/val files, ...)

A data file is untrusted input. Only a regular file is read: it is opened without blocking and
checked with fstat, so a FIFO, a device or a folder is refused (E502) without hanging, and at
most the size it had when opened is read. A CSV is streamed, a block of rows at a time converted
into float32 features and compact labels, so memory stays a small multiple of the file. A
message quotes at most QUOTE_LIMIT characters of one cell or column name, and lists a file's
columns only when its first row looks like names. The reading itself (files, CSV streaming, DataError)
lives in tables.py, which the readers of sources/ share.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import pathlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..compiler import ir
from ..compiler.diagnostics import did_you_mean
from .tables import (  # noqa: F401 - DataError, read_table and read_text are imported from here too
    FLOAT32_MAX,
    LABEL_HELP,
    DataError,
    _clip,
    _fail,
    _feature_arg,
    _open,
    _Raw,
    _read_bytes,
    _target_names,
    _unknown_name_help,
    read_columns,
    read_table,
    read_text,
)

SOURCE_KINDS = ("csv", "npz")
NORMALIZE_KINDS = ("standard", "minmax", "none")
@dataclass(frozen=True, eq=False)
class Normalizer:
    """`x_norm = (x - shift) / scale`, fitted on the training split."""

    kind: str  # standard | minmax | none
    shift: np.ndarray  # float32, feature shape
    scale: np.ndarray  # float32, feature shape, never 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = np.subtract(x, self.shift, dtype=np.float32)  # float32 throughout, one new array
        out /= self.scale
        return out


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


def _csv_features(source: ir.Source, header: list[str], targets: tuple[str, ...], features: tuple[str, ...] | None,
                  default_features: tuple[str, ...] | None) -> tuple[str, ...]:
    """The feature columns of a CSV, its header checked: names present, each once, a target apart."""
    blank = [i + 1 for i, h in enumerate(header) if not h]
    if blank:
        _fail("E502", f"'{source.path}' header: column {blank[0]} has no name", source.span)
    seen: set[str] = set()
    for h in header:
        if h in seen:
            _fail("E502", f"'{source.path}' header names column '{_clip(h)}' twice", source.span)
        seen.add(h)

    def require(names, kind: str) -> None:
        for name in names:
            if name not in seen:
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
    return features


def _read_csv(
    source: ir.Source,
    base_dir: pathlib.Path,
    task: ir.Task,
    default_target: tuple[str, ...] | None = None,
    default_features: tuple[str, ...] | None = None,
) -> _Raw:
    args = ir.argdict(source.args)
    targets = _target_names(source, args, task, default_target)
    classify = task is ir.Task.classification
    chosen: list[tuple[str, ...]] = []

    def choose(header: list[str]) -> list[tuple[list[int], type]]:
        chosen.append(_csv_features(source, header, targets, _feature_arg(source, args), default_features))
        index = {h: i for i, h in enumerate(header)}
        return [([index[f] for f in chosen[0]], np.float32),
                ([index[t] for t in targets], str if classify else np.float64)]

    n, (x, y), (x_error, y_error) = read_columns(source, base_dir, choose)
    if n == 0:
        _fail("E505", f"'{source.path}' has a header but no data rows; expected at least one example", source.span)
    problem = x_error or (y.problem(source, targets[0]) if classify else y_error)
    if problem is not None:
        raise DataError(problem)
    if classify:
        return _Raw(x=x, y=y.codes.array(), labels=y.texts, feature_names=chosen[0], source=source)
    return _Raw(x=x, y=y, feature_names=chosen[0], source=source)


def _npz_archive(source: ir.Source, file: io.FileIO, keys: tuple[str, str]) -> np.lib.npyio.NpzFile:
    """The file as an .npz archive holding both arrays, each checked from its header to fit in memory before any
    is read (an archive's header can promise more than its bytes, or than the machine holds)."""
    magic = _read_bytes(file, 6, source)
    file.seek(0)
    if magic == b"\x93NUMPY":
        _fail("E502", f"'{source.path}' holds a single array, expected an .npz archive with arrays '{keys[0]}' and "
              f"'{keys[1]}'", source.span, help="write it with numpy.savez(path, x=features, y=targets)")
    if not zipfile.is_zipfile(file):
        _fail("E502", f"'{source.path}' is not an .npz archive (found neither a zip nor a numpy header)",
              source.span, help="write it with numpy.savez(path, x=features, y=targets)")
    file.seek(0)
    archive = np.load(file, allow_pickle=False)
    names = list(archive.files)
    for role, key in zip(("features", "targets"), keys):
        if key not in names:
            _fail("E503", f"array '{_clip(key)}' ({role}) not found in '{source.path}'", source.span,
                  help=_unknown_name_help(key, names, "arrays"))
    need = 0
    members = set(archive.zip.namelist())
    for key in keys:
        info = archive.zip.getinfo(f"{key}.npy" if f"{key}.npy" in members else key)
        with archive.zip.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
        size = math.prod(shape) * dtype.itemsize
        if size > info.file_size:
            _fail("E502", f"'{source.path}': array '{key}' claims {size:,} bytes ({list(shape)} of "
                  f"{_clip(str(dtype))}) but its archive entry holds {info.file_size:,}", source.span)
        need += size + math.prod(shape) * 4  # the array, then its float32 copy
    memory = _memory_bytes()
    if need > memory:
        _fail("E502", f"'{source.path}': arrays '{keys[0]}' and '{keys[1]}' take {need / 2**30:.1f} GB to load, more "
              f"than this machine's {memory / 2**30:.1f} GB of memory", source.span)
    return archive


def read_array(source: ir.Source, base_dir: pathlib.Path, key: str | None = None) -> np.ndarray:
    """One array of an .npy file, or of an .npz archive (`key`, else its only or first array), read with the
    checks of every data file: a regular file, a header that fits its bytes and the memory; no pickle."""
    file, _ = _open(source, base_dir)
    try:
        with file:
            if _read_bytes(file, 6, source) != b"\x93NUMPY":
                file.seek(0)
                if not zipfile.is_zipfile(file):
                    _fail("E502", f"'{source.path}' is neither an .npy array nor an .npz archive", source.span)
                file.seek(0)
                names = list(np.load(file, allow_pickle=False).files)
                if not names:
                    _fail("E502", f"'{source.path}' holds no arrays", source.span)
                key = key if key in names else names[0]
                file.seek(0)
                with _npz_archive(source, file, (key, key)) as archive:
                    return archive[key]
            file.seek(0)
            version = np.lib.format.read_magic(file)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(file)
            size = math.prod(shape) * dtype.itemsize
            if dtype.hasobject:
                _fail("E502", f"'{source.path}' holds Python objects, not a numpy array of numbers", source.span)
            if size > os.fstat(file.fileno()).st_size or 2 * size > _memory_bytes():
                _fail("E502", f"'{source.path}': its header claims {list(shape)} of {_clip(str(dtype))}, more than "
                      "the file holds or the machine can load", source.span)
            file.seek(0)
            return np.load(file, allow_pickle=False)
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        _fail("E502", f"cannot read '{source.path}' as a numpy array", source.span, notes=(_clip(str(e), 300),))


def _memory_bytes() -> int:
    """The machine's physical memory, the most an archive may take to load."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _read_npz(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> _Raw:
    args = ir.argdict(source.args)
    xkey, ykey = args.get("x", "x"), args.get("y", "y")
    for role, key in (("x", xkey), ("y", ykey)):
        if not isinstance(key, str):
            _fail("E506", f"npz source '{source.path}': '{role}' must be an array name, found {key!r}", source.span)
    file, _ = _open(source, base_dir)
    try:
        with file, _npz_archive(source, file, (xkey, ykey)) as archive:
            x, y = archive[xkey], archive[ykey]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        _fail("E502", f"cannot read '{source.path}' as an .npz archive of numeric arrays", source.span,
              notes=(_clip(str(e), 300),), help="write it with numpy.savez(path, x=features, y=targets)")

    if x.ndim == 0 or y.ndim == 0:
        _fail("E502", f"'{source.path}': arrays '{xkey}' and '{ykey}' must have one row per example, found scalars",
              source.span)
    if x.shape[0] != y.shape[0]:
        _fail("E502", f"'{source.path}': '{xkey}' has {x.shape[0]} rows but '{ykey}' has {y.shape[0]}; "
              "expected one target per example", source.span)
    if x.shape[0] == 0:
        _fail("E505", f"'{source.path}' holds no examples; expected at least one", source.span)
    x = _npz_features(source, x, xkey)
    if task is ir.Task.classification:
        codes, labels = _npz_labels(source, y, ykey)
        return _Raw(x=x, y=codes, labels=labels, feature_names=None, source=source)
    return _Raw(x=x, y=_npz_targets(source, y, ykey), feature_names=None, source=source)


def _npz_features(source: ir.Source, x: np.ndarray, xkey: str) -> np.ndarray:
    """The features as float32 [n, ...], or E504 for the first value that is not a finite float32."""
    if x.ndim == 1:
        x = x[:, None]
    if x.dtype.kind not in "biuf":
        _fail("E504", f"'{source.path}': array '{xkey}' holds {_clip(str(x.dtype))} values, expected numbers",
              source.span)
    bad = np.argwhere(~np.isfinite(x)) if x.dtype.kind == "f" else ()
    if len(bad):
        row, *pos = (int(i) for i in bad[0])
        _fail("E504", f"'{source.path}': array '{xkey}' row {row}, feature {tuple(pos)}: expected a finite number, "
              f"found {x[tuple(bad[0])]}", source.span)
    with np.errstate(over="ignore"):
        narrow = x.astype(np.float32)
    bad = np.argwhere(~np.isfinite(narrow))
    if len(bad):
        row, *pos = (int(i) for i in bad[0])
        _fail("E504", f"'{source.path}': array '{xkey}' row {row}, feature {tuple(pos)}: expected a number of at "
              f"most {FLOAT32_MAX:.4g} in size (float32), found {x[tuple(bad[0])]}", source.span)
    return narrow


def _npz_labels(source: ir.Source, y: np.ndarray, ykey: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class labels as int32 codes into their distinct texts, or E502/E504 for labels that are not one per example,
    missing, or numbers that are not whole."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        _fail("E502", f"'{source.path}': labels '{ykey}' have shape {y.shape}, expected one label per example",
              source.span)
    if np.issubdtype(y.dtype, np.floating):
        bad = np.flatnonzero(~np.isfinite(y))
        if len(bad):
            _fail("E504", f"'{source.path}': array '{ykey}' row {int(bad[0])}: missing label ({y[bad[0]]})",
                  source.span)
        bad = np.flatnonzero(y != np.round(y))
        if len(bad):
            _fail("E504", f"'{source.path}': array '{ykey}' row {int(bad[0])}: class label {y[bad[0]]} is not a "
                  "whole number", source.span, help=LABEL_HELP)
    elif y.dtype.kind not in "biuUS":
        _fail("E504", f"'{source.path}': labels '{ykey}' hold {_clip(str(y.dtype))} values, expected integers or "
              "strings", source.span)
    if y.dtype.kind == "S":
        y = np.char.decode(y, "utf-8", errors="replace")
    distinct, codes = np.unique(y, return_inverse=True)
    return codes.reshape(-1).astype(np.int32), tuple(_label_text(v) for v in distinct.tolist())


def _npz_targets(source: ir.Source, y: np.ndarray, ykey: str) -> np.ndarray:
    """Regression targets as float64 [n, targets], or E502/E504."""
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        _fail("E502", f"'{source.path}': targets '{ykey}' have shape {y.shape}, expected [examples] or "
              "[examples, targets]", source.span)
    if y.dtype.kind not in "biuf":
        _fail("E504", f"'{source.path}': targets '{ykey}' hold {_clip(str(y.dtype))} values, expected numbers",
              source.span)
    y = y.astype(np.float64)
    bad = np.argwhere(~np.isfinite(y))
    if len(bad):
        row, col = (int(i) for i in bad[0])
        _fail("E504", f"'{source.path}': array '{ykey}' row {row}, target {col}: expected a finite number, found "
              f"{y[row, col]}", source.span)
    return y


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
    compact: bool = False,
) -> _Raw:
    """One source's table. Class labels come as texts (`y`), or with `compact` as int32 codes into `labels` where
    the reader keeps them so."""
    if source.kind == "csv":
        raw = _read_csv(source, base_dir, task, default_target, default_features)
    elif source.kind == "npz":
        raw = _read_npz(source, base_dir, task)
    else:
        from .sources import READERS  # more kinds: image folders, text, time series

        if source.kind not in READERS:
            kinds = (*SOURCE_KINDS, *sorted(READERS))
            _fail("E506", f"unknown data source kind '{source.kind}'; expected one of: {', '.join(kinds)}",
                  source.span, help=did_you_mean(source.kind, kinds))
        raw = READERS[source.kind](source, base_dir, task)
    if raw.labels is not None and not compact:
        raw.y, raw.labels = np.array(raw.labels, dtype=str)[raw.y], None
    return raw


# ---------------------------------------------------------------------------------------------
# Labels, splits, normalisation.
# ---------------------------------------------------------------------------------------------


def _encode_labels(raws: Sequence[_Raw]) -> tuple[tuple, list[np.ndarray]]:
    """Sorted class values over every table's labels, and each table's labels as int32 class indices.

    Labels that all read as integers are classes sorted numerically (`2 < 10`); all numbers,
    numerically; otherwise they are strings, sorted as strings.
    """
    sets = []
    for raw in raws:
        if raw.labels is not None:
            sets.append((raw.y, raw.labels))
        else:
            distinct, codes = np.unique(raw.y, return_inverse=True)
            sets.append((codes.reshape(-1), distinct.tolist()))
    unique = sorted(set().union(*(set(texts) for _, texts in sets)))
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
    encoded = [np.array([position[canon[t]] for t in texts], dtype=np.int32)[codes] for codes, texts in sets]
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



def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (numpy's: over n) in float64, a block of rows at a time, so a float32
    split never has a float64 copy of itself made."""
    mean = x.mean(axis=0, dtype=np.float64)
    squares = np.zeros(x.shape[1:], np.float64)
    step = max(1, (1 << 20) // max(1, math.prod(x.shape[1:])))  # rows per block: about a million values
    for start in range(0, len(x), step):
        d = np.subtract(x[start:start + step], mean, dtype=np.float64)
        d *= d
        squares += d.sum(axis=0)
    return mean, np.sqrt(squares / len(x))


def _fit_normalizer(kind: str, x: np.ndarray, span: ir.Span) -> Normalizer:
    shape = x.shape[1:]
    if kind == "none":
        return Normalizer("none", np.zeros(shape, np.float32), np.ones(shape, np.float32))
    lo, hi = x.min(axis=0), x.max(axis=0)
    if kind == "standard":
        shift, scale = _mean_std(x)
    elif kind == "minmax":
        shift, scale = lo, hi - lo
    else:
        _fail(
            "E506",
            f"unknown normalization '{kind}'; expected one of: {', '.join(NORMALIZE_KINDS)}",
            span,
            help=did_you_mean(kind, NORMALIZE_KINDS),
        )
    constant = (hi == lo) | ~(scale > 0)
    scale = np.where(constant, 1.0, scale)
    return Normalizer(kind, shift.astype(np.float32), scale.astype(np.float32))


def _normalized(normalizer: Normalizer, x: np.ndarray, keep: bool) -> np.ndarray:
    """`normalizer.apply(x)`; in place (the same numbers, no second copy) when x is float32 and `keep` is false: the
    arrays load_data passes are its own, fresh from a reader or a split."""
    if keep or x.dtype != np.float32:
        return normalizer.apply(x)
    x -= normalizer.shift
    x /= normalizer.scale
    return x


@dataclass
class _Splits:
    """Features and targets of each split, before normalisation; labels already class indices."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    classes: tuple | None
    names: tuple[str, ...] | None


def _split_source(data: ir.Data, base_dir: pathlib.Path, seed: int, fold: int | None) -> _Splits:
    """One source cut into splits; its table is dropped on return, so only the splits stay in memory."""
    if data.train is not None or data.val is not None:
        _fail("E506", "data has both a source and separate train/val files; expected one or the other", data.span)
    if data.split is None:
        _fail("E506", "data source has no split; expected e.g. split = { train = 0.8, val = 0.2 }", data.source.span)
    classify = data.task is ir.Task.classification
    raw = _read(data.source, base_dir, data.task, compact=True)
    n = raw.x.shape[0]
    rng = np.random.default_rng(np.random.SeedSequence(int(seed) % 2**64))
    if classify:
        if raw.classes is not None:  # e.g. text: class index == token id, every token a class
            classes, y_all = raw.classes, raw.y.astype(np.int32)
        else:
            classes, (y_all,) = _encode_labels([raw])
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
    tr, va, te = _split_indices(n, data.split, strata, rng, f"'{data.source.path}'", ordered=raw.ordered, fold=fold)
    test = (raw.x[te], y_all[te]) if len(te) else (None, None)
    return _Splits(raw.x[tr], y_all[tr], raw.x[va], y_all[va], *test, classes, raw.feature_names)


def _read_files(data: ir.Data, base_dir: pathlib.Path) -> _Splits:
    """Separate train, val (and test) files, checked to agree on their features (and targets)."""
    task = data.task
    if data.train is None or data.val is None:
        given = data.train or data.val
        missing = "val" if data.train is not None else "train"
        _fail("E506", f"data has no {missing} file; expected a source with a split, or both train and val files",
              given.span if given is not None else data.span)
    raw_tr = _read(data.train, base_dir, task, compact=True)
    default_target = None
    default_features = None
    if data.val.kind == "csv" and data.train.kind == "csv":
        default_target = _target_names(data.train, ir.argdict(data.train.args), task, None)
        if "features" not in ir.argdict(data.val.args):
            default_features = raw_tr.feature_names
    raw_va = _read(data.val, base_dir, task, default_target, default_features, compact=True)
    raw_te = _read(data.test, base_dir, task, default_target, default_features, compact=True) if data.test else None
    if raw_te is not None and raw_te.x.shape[1:] != raw_tr.x.shape[1:]:
        _fail("E506", f"test file '{data.test.path}' has features of shape {list(raw_te.x.shape[1:])}, "
              f"but train file '{data.train.path}' has {list(raw_tr.x.shape[1:])}", data.test.span)
    if raw_tr.x.shape[1:] != raw_va.x.shape[1:]:
        _fail("E506", f"val file '{data.val.path}' has features of shape {list(raw_va.x.shape[1:])}, "
              f"but train file '{data.train.path}' has {list(raw_tr.x.shape[1:])}", data.val.span,
              help="train and val files must have the same feature columns")
    names = raw_tr.feature_names, raw_va.feature_names
    if None not in names and names[0] != names[1]:
        diff = next(i for i, (a, b) in enumerate(zip(*names)) if a != b)
        _fail("E506", f"feature {diff + 1} is '{_clip(names[1][diff])}' in val file '{data.val.path}' "
              f"but '{_clip(names[0][diff])}' in train file '{data.train.path}'", data.val.span,
              help="train and val files must have the same feature columns, in the same order")
    if task is ir.Task.classification:
        classes, encoded = _encode_labels([raw_tr, raw_va] + ([raw_te] if raw_te is not None else []))
        y_tr, y_va, y_te = encoded[0], encoded[1], encoded[2] if raw_te is not None else None
    else:
        classes, y_tr, y_va = None, raw_tr.y, raw_va.y
        y_te = raw_te.y if raw_te is not None else None
        if y_tr.shape[1] != y_va.shape[1]:
            _fail("E506", f"val file '{data.val.path}' has {y_va.shape[1]} targets, "
                  f"train file '{data.train.path}' has {y_tr.shape[1]}", data.val.span)
    x_te = raw_te.x if raw_te is not None else None
    return _Splits(raw_tr.x, y_tr, raw_va.x, y_va, x_te, y_te, classes, raw_tr.feature_names)


def fit_batch(spec: ir.Spec, n_train: int) -> ir.Spec:
    """The spec with `batch = all` (None) made the training split's size, once the data is known; others as they are.

    >>> fit_batch(spec_with_batch_all, 354).data.batch  # doctest: +SKIP
    354"""
    if spec.data.batch is not None:
        return spec
    return dataclasses.replace(spec, data=dataclasses.replace(spec.data, batch=max(n_train, 1)))


def load_data(data: ir.Data, base_dir: pathlib.Path, seed: int, fold: int | None = None) -> Dataset:
    """Read, split, encode and normalise the data a spec describes; with `split = kfold(k)`, the given fold
    as the val split (fold 0 when none is given)."""
    base_dir = pathlib.Path(base_dir)
    if data.normalize not in NORMALIZE_KINDS:
        _fail(
            "E506",
            f"unknown normalization '{data.normalize}'; expected one of: {', '.join(NORMALIZE_KINDS)}",
            data.span,
            help=did_you_mean(data.normalize, NORMALIZE_KINDS),
        )
    s = _split_source(data, base_dir, seed, fold) if data.source is not None else _read_files(data, base_dir)

    normalizer = _fit_normalizer(data.normalize, s.x_train, data.span)
    target_normalizer = None
    y_tr, y_va, y_te = s.y_train, s.y_val, s.y_test
    if data.task is not ir.Task.classification:
        y_tr, y_va = y_tr.astype(np.float32), y_va.astype(np.float32)
        y_te = y_te.astype(np.float32) if y_te is not None else None
        if data.target_normalize != "none":
            target_normalizer = _fit_normalizer(data.target_normalize, y_tr, data.span)
            y_tr, y_va = target_normalizer.apply(y_tr), target_normalizer.apply(y_va)
            y_te = target_normalizer.apply(y_te) if y_te is not None else None
    x_train_raw = np.asarray(s.x_train, dtype=np.float32) if data.augment else None
    return Dataset(
        x_train=_normalized(normalizer, s.x_train, keep=x_train_raw is not None),
        y_train=y_tr,
        x_val=_normalized(normalizer, s.x_val, keep=False),
        y_val=y_va,
        feature_names=s.names,
        classes=s.classes,
        normalizer=normalizer,
        target_normalizer=target_normalizer,
        x_test=_normalized(normalizer, s.x_test, keep=False) if s.x_test is not None else None,
        y_test=y_te,
        x_train_raw=x_train_raw,
    )
