"""Using a finished run: `trainc eval DIR` and `trainc predict DIR INPUT`.

Training writes the preprocessing it fitted next to the weights:

    DIR/preprocess.json          task, input shape and dtype, feature names, classes, normalisation kinds,
                                 the training class counts (class weights of the loss)
    DIR/preprocess.safetensors   the fitted shift and scale of the inputs (and of regression targets)

so `predict` needs only the run directory and the new inputs, never the training data. `eval`
on `val` or `test` reads the data as the spec names it and splits it again (the same seed gives
the same split); on a FILE, it reads the file with the spec's source settings and the saved
preprocessing. Both load the weights of `final` (DIR/model.safetensors: the best epoch's when the
spec restores the best), `best` or `latest` (the checkpoints), each checked against the sha256 recorded
for it (summary.json for `final`, the checkpoint's state.json for the others) and against the model's
tensor names, shapes and dtypes before use.

The run directory is untrusted input (see rundir.py): its files are read through `rundir`, checked
against their schemas, and data errors of a spec that is not on this machine as run are not quoted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..compiler import ir
from . import checkpoint as ck
from . import rundir
from .data import NORMALIZE_KINDS, Dataset, Normalizer, _Raw
from .rundir import RunDirError, quote

MAX_FEATURES = 2 ** 28  # values in one example
MAX_EXAMPLES = 2 ** 26  # the training class counts a run records (eval rebuilds a label per example)
MAX_OVERRIDES = 100
_OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)?=.*", re.DOTALL)


class RunError(RunDirError):
    """A run directory (or an input) that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class RunRecord:
    """DIR/run.json and DIR/spec.train, checked: the spec as run, its --set flags, the folder its data paths
    start from, and whether that spec is the user's own (see `load_run_record`)."""

    spec_file: Path
    overrides: tuple[str, ...]
    base_dir: Path
    own: bool


@dataclass(frozen=True)
class Weights:
    """A weights file of a run directory and the sha256 recorded for it (None: an older run recorded none)."""

    path: Path
    root: Path
    sha256: str | None
    checksum_in: str

    def __str__(self) -> str:
        return str(self.path)


@dataclass
class Preprocessing:
    task: ir.Task
    feature_shape: tuple[int, ...]
    feature_names: tuple[str, ...] | None
    classes: tuple | None
    class_counts: tuple[int, ...] | None
    normalizer: Normalizer
    target_normalizer: Normalizer | None
    target_names: tuple[str, ...] | None


def save_preprocessing(out_dir: Path, spec: ir.Spec, ds: Dataset) -> None:
    src = spec.data.source or spec.data.train
    targets = ir.argdict(src.args).get("target") if src is not None and src.kind == "csv" else None
    meta = {
        "task": spec.data.task.value,
        "feature_shape": list(ds.feature_shape),
        "feature_names": list(ds.feature_names) if ds.feature_names else None,
        "classes": list(ds.classes) if ds.classes else None,
        "class_counts": np.bincount(ds.y_train.reshape(-1), minlength=ds.n_classes).tolist() if ds.classes else None,
        "normalize": ds.normalizer.kind,
        "target_normalize": ds.target_normalizer.kind if ds.target_normalizer else None,
        "target_names": [targets] if isinstance(targets, str) else list(targets) if targets else None,
    }
    tensors = {"x_shift": ds.normalizer.shift, "x_scale": ds.normalizer.scale}
    if ds.target_normalizer:
        tensors.update(y_shift=ds.target_normalizer.shift, y_scale=ds.target_normalizer.scale)
    ck.write_file_atomic(out_dir / "preprocess.json", (json.dumps(meta, indent=2, default=str) + "\n").encode(),
                         out_dir)
    ck.write_file_atomic(out_dir / "preprocess.safetensors",
                         ck.encode_safetensors({k: np.asarray(v, np.float32) for k, v in tensors.items()}), out_dir)


def _check_meta(meta: dict, shown: Path) -> None:
    """What preprocess.json's schema cannot say: known kinds, sizes in bounds, classes for a classifier."""
    if meta["task"] not in {t.value for t in ir.Task}:
        raise RunError(f"{shown}: unknown task {quote(meta['task'])}; expected classification or regression")
    for key in ("normalize", "target_normalize"):
        if meta[key] is not None and meta[key] not in NORMALIZE_KINDS:
            raise RunError(f"{shown}: {key}: unknown kind {quote(meta[key])}; expected {', '.join(NORMALIZE_KINDS)}")
    shape = meta["feature_shape"]
    if not 1 <= len(shape) <= 8 or math.prod(shape) > MAX_FEATURES:
        raise RunError(f"{shown}: feature_shape: expected 1 to 8 dimensions of at most {MAX_FEATURES} values in all")
    if meta["feature_names"] is not None and len(meta["feature_names"]) != math.prod(shape):
        raise RunError(f"{shown}: {len(meta['feature_names'])} feature_names for {math.prod(shape)} features")
    if meta["task"] == "classification":
        classes, counts = meta["classes"], meta["class_counts"]
        if not classes or counts is None or len(counts) != len(classes):
            raise RunError(f"{shown}: a classifier needs its classes and a class_counts entry for each")
        if sum(counts) > MAX_EXAMPLES:
            raise RunError(f"{shown}: class_counts: more than {MAX_EXAMPLES} training examples in all")
    elif meta["classes"] is not None:
        raise RunError(f"{shown}: a regression run has no classes")


def _check_normalizers(t: dict[str, np.ndarray], meta: dict, shown: Path) -> None:
    names = {"x_shift", "x_scale"} | ({"y_shift", "y_scale"} if meta["target_normalize"] is not None else set())
    if set(t) != names:
        raise RunError(f"{shown}: expected the tensors {', '.join(sorted(names))}")
    for k, a in t.items():
        want = tuple(meta["feature_shape"]) if k[0] == "x" else t["y_shift"].shape
        if a.dtype != np.float32 or a.shape != want or (k[0] == "y" and a.ndim != 1):
            raise RunError(f"{shown}: tensor '{k}' has shape {list(a.shape)} and dtype {a.dtype}; expected "
                           f"{list(want)} float32")
        if not np.isfinite(a).all() or (k.endswith("scale") and (a == 0).any()):
            raise RunError(f"{shown}: tensor '{k}' holds a zero scale or a value that is not finite")


def load_preprocessing(run_dir: Path) -> Preprocessing:
    json_path, tensors_path = run_dir / "preprocess.json", run_dir / "preprocess.safetensors"
    try:
        meta = rundir.read_json(json_path, rundir.PREPROCESS_JSON, rundir.JSON_MAX, run_dir)
        _check_meta(meta, json_path)
        limit = rundir.MB + 16 * math.prod(meta["feature_shape"])  # four float32 tensors of that shape, at most
        t = ck.read_safetensors(tensors_path, run_dir, limit=limit)
    except rundir.Missing as e:
        raise RunError(f"{e}: not a trainc run directory, or one from an older trainc") from None
    _check_normalizers(t, meta, tensors_path)
    tn = Normalizer(meta["target_normalize"], t["y_shift"], t["y_scale"]) if "y_shift" in t else None
    return Preprocessing(task=ir.Task(meta["task"]), feature_shape=tuple(meta["feature_shape"]),
                         feature_names=tuple(meta["feature_names"]) if meta["feature_names"] else None,
                         classes=tuple(meta["classes"]) if meta["classes"] else None,
                         class_counts=tuple(meta["class_counts"]) if meta["class_counts"] else None,
                         normalizer=Normalizer(meta["normalize"], t["x_shift"], t["x_scale"]), target_normalizer=tn,
                         target_names=tuple(meta["target_names"]) if meta.get("target_names") else None)


def load_run_record(run_dir: Path) -> RunRecord:
    """DIR/run.json and DIR/spec.train, checked (spec.train: a regular file of the run directory, not a link).

    `own` is True when run.json names a spec on this machine with the very text of DIR/spec.train and the
    base_dir is its folder: then the data files the spec names are the user's own choice, and errors
    reading them may quote them. A run directory from elsewhere gets its data errors without quotes."""
    record = rundir.read_json(run_dir / "run.json", rundir.RUN_JSON, rundir.JSON_MAX, run_dir)
    text = rundir.read_text(run_dir / "spec.train", rundir.TEXT_MAX, run_dir)
    overrides = record["overrides"]
    if len(overrides) > MAX_OVERRIDES or not all(len(o) <= 1000 and _OVERRIDE.fullmatch(o) for o in overrides):
        raise RunError(f"{run_dir / 'run.json'}: overrides: expected at most {MAX_OVERRIDES} settings like "
                       "\"stop.max=3 epochs\"")
    base = Path(record["base_dir"])
    if not base.is_absolute():
        raise RunError(f"{run_dir / 'run.json'}: base_dir: expected an absolute path")
    spec = Path(record["spec"])
    own = False
    if record["spec"] != "-" and spec.is_absolute() and spec.parent == base:
        try:
            own = rundir.read_text(spec, rundir.TEXT_MAX, base) == text
        except (RunDirError, OSError):
            own = False
    return RunRecord(spec_file=run_dir / "spec.train", overrides=tuple(overrides), base_dir=base, own=own)


def weights_file(run_dir: Path, which: str) -> Weights:
    """final: DIR/model.safetensors (its sha256 in summary.json, when recorded); best, latest: that checkpoint's
    weights (the sha256 in its state.json)."""
    if which == "final":
        path = run_dir / "model.safetensors"
        if not rundir.is_file(path, run_dir):
            raise RunError(f"{run_dir} has no model.safetensors (did the run finish?); try --weights latest")
        try:
            summary = rundir.read_json(run_dir / "summary.json", rundir.SUMMARY_JSON, rundir.JSON_MAX, run_dir)
        except rundir.Missing:
            summary = {}
        return Weights(path, run_dir, (summary.get("files") or {}).get("model.safetensors"), "summary.json")
    try:
        folder = ck.find(run_dir / "checkpoints" / which, run_dir)
    except ck.CheckpointError as e:
        raise RunError(f"no '{which}' checkpoint in {run_dir}: {e}") from None
    state = ck.read_state(folder, run_dir)
    return Weights(folder / "model.safetensors", run_dir, state["files"]["model.safetensors"], "state.json")


def build(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, y: np.ndarray, weights: Weights):
    """The lowered program with `x`, `y` as its validation split and the saved weights loaded."""
    from tinygrad import Tensor

    from ..compiler.lower import lower

    classify = prep.task is ir.Task.classification
    # the training split is never stepped on; its labels only give the class counts (balanced loss weights)
    y_train = np.repeat(np.arange(len(prep.class_counts)), prep.class_counts).astype(np.int32) if classify \
        else np.zeros((1, y.shape[1] if y.ndim > 1 else 1), np.float32)
    tn = prep.target_normalizer
    program = lower(spec, x[:1], y_train, x, y, tn.shift if tn else None, tn.scale if tn else None,
                    n_classes=len(prep.classes) if classify else None)
    state = program.state()
    expected = {k: (tuple(t.shape), np.dtype(t.dtype.fmt).name) for k, t in state.items()}
    saved = ck.read_safetensors(weights.path, weights.root, weights.sha256, expected, checksum_in=weights.checksum_in)
    for k, t in state.items():
        t.assign(Tensor(np.ascontiguousarray(saved[k]), dtype=t.dtype)).realize()
    return program


def evaluate(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, y: np.ndarray, weights: Weights) -> dict[str, object]:
    from .loop import eval_chunks, evaluate_split

    program = build(spec, prep, x, y, weights)
    return evaluate_split(program, program.eval_step, eval_chunks(program, len(x)), len(x), y)


def read_file(spec: ir.Spec, prep: Preprocessing, path: Path, base_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A labelled file read with the spec's source settings; inputs normalised and labels encoded as in training."""
    from .data import _label_text, _read

    src = spec.data.source or spec.data.train
    if src is None:
        raise RunError("the spec names no data source to read the file with")
    raw: _Raw = _read(replace(src, path=str(path.resolve())), base_dir, spec.data.task)
    if tuple(raw.x.shape[1:]) != prep.feature_shape:
        raise RunError(f"{path}: examples of shape {list(raw.x.shape[1:])}, the model takes {list(prep.feature_shape)}")
    x = prep.normalizer.apply(raw.x)
    if prep.task is not ir.Task.classification:
        y = raw.y.astype(np.float32)
        return x, prep.target_normalizer.apply(y) if prep.target_normalizer else y
    index = {_label_text(c): i for i, c in enumerate(prep.classes)}
    labels = [_label_text(v) for v in raw.y.tolist()] if raw.classes is None else None
    if labels is None:
        return x, raw.y.astype(np.int32)
    unknown = sorted({lb for lb in labels if lb not in index})
    if unknown:
        raise RunError(f"{path}: label(s) {', '.join(unknown[:5])} never seen in training; the classes are "
                       f"{', '.join(map(str, prep.classes))}")
    return x, np.array([index[lb] for lb in labels], dtype=np.int32)


def read_inputs(prep: Preprocessing, path: Path, source: ir.Source | None = None) -> np.ndarray:
    """Unlabelled inputs for predict: what the model was trained from (`source`, the spec's training source),
    read with the training readers: an image file or a folder of images for `images(...)`, a UTF-8 text for
    `text(...)`; a CSV with the training feature columns (by name, any order, others ignored); or an .npz/.npy
    array of examples, for any model."""
    from .data import DataError, read_array, read_table

    kind = source.kind if source is not None else None
    if path.suffix not in (".npy", ".npz") and kind in _READ_AS:
        try:
            x = _READ_AS[kind](prep, path, source)
        except DataError as e:
            raise RunError(f"{path}: {e.diagnostic.message}") from None
    elif path.suffix in (".npy", ".npz"):
        src = ir.Source(kind="npz", path=str(path), args=(), span=ir.Span(str(path), 1, 1, 1, 2))
        try:
            x = read_array(src, Path.cwd(), "x")
        except DataError as e:
            raise RunError(f"{path}: {e.diagnostic.message.removeprefix(repr(str(path)) + ': ')}") from None
    else:
        if prep.feature_names is None:
            raise RunError(f"{path}: this model was trained on {list(prep.feature_shape)} arrays, not named "
                           "columns; give an .npy or .npz file")
        src = ir.Source(kind="csv", path=str(path.resolve()), args=(), span=ir.Span(str(path), 1, 1, 1, 2))
        header, rows, _ = read_table(src, path.parent)
        missing = [f for f in prep.feature_names if f not in header]
        if missing:
            raise RunError(f"{path}: feature column(s) {', '.join(missing[:5])} missing; the model was trained on "
                           f"{', '.join(prep.feature_names)}")
        cols = [header.index(f) for f in prep.feature_names]
        try:
            x = np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
        except ValueError as e:
            raise RunError(f"{path}: a feature value is not a number ({e})") from None
    x = np.asarray(x, dtype=np.float64)
    if tuple(x.shape[1:]) != prep.feature_shape:
        raise RunError(f"{path}: examples of shape {list(x.shape[1:])}, the model takes {list(prep.feature_shape)}")
    if not np.isfinite(x).all():
        raise RunError(f"{path}: NaN or infinite inputs (row {int(np.argwhere(~np.isfinite(x))[0][0]) + 1})")
    return prep.normalizer.apply(x)


def _read_images(prep: Preprocessing, path: Path, source: ir.Source) -> np.ndarray:
    """One image file, or every image of a folder in name order (as training reads a class folder), decoded as
    training decodes them: [n, C, H, W] in [0, 1], resized to `size` when the spec gives it."""
    from .sources.images import EXTENSIONS, _decode

    args = ir.argdict(source.args)
    size = tuple(int(d) for d in args["size"]) if args.get("size") is not None else None
    files = [path] if not path.is_dir() else sorted(
        f for f in path.iterdir() if not f.name.startswith(".") and f.is_file() and f.suffix.lower() in EXTENSIONS)
    if not files:
        raise RunError(f"{path}: no images (.png, .jpg or .jpeg) in this folder")
    images = [_decode(f, str(f), args.get("color", "gray"), size, source) for f in files]
    if len({im.shape for im in images}) > 1:
        raise RunError(f"{path}: the images have different sizes; the model takes {list(prep.feature_shape)}")
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return x.astype(np.float64) / 255.0


def _read_text(prep: Preprocessing, path: Path, source: ir.Source) -> np.ndarray:
    """Every window of the text's tokens, ids from the training vocabulary (a token it never saw is `<unk>`): the
    last row predicts the token after the text."""
    from .data import read_text as read_file
    from .sources.text import UNK, tokenize

    window = prep.feature_shape[0]
    src = ir.Source(kind="text", path=str(path.resolve()), args=(), span=ir.Span(str(path), 1, 1, 1, 2))
    tokens = tokenize(read_file(src, path.parent), ir.argdict(source.args).get("level", "char"))
    if len(tokens) < window:
        raise RunError(f"{path}: {len(tokens)} tokens, fewer than the model's window of {window}")
    index = {t: i for i, t in enumerate(prep.classes or ())}
    if any(t not in index for t in tokens) and UNK not in index:
        unknown = next(t for t in tokens if t not in index)
        raise RunError(f"{path}: token {quote(unknown)} is not in the training vocabulary (which has no <unk>)")
    ids = np.array([index.get(t, index.get(UNK, 0)) for t in tokens], dtype=np.float64)
    starts = np.arange(len(tokens) - window + 1)
    return ids[starts[:, None] + np.arange(window)[None, :]]


_READ_AS = {"images": _read_images, "text": _read_text}  # source kind -> how predict reads its raw inputs


def predict(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, weights: Weights) -> tuple[list[str], list[list]]:
    """Column names and rows: the predicted class and each class's probability, or the predicted targets."""
    classify = prep.task is ir.Task.classification
    y = np.zeros(len(x), np.int32) if classify else np.zeros((len(x), len(prep.target_names or (0,))), np.float32)
    program = build(spec, prep, x, y, weights)
    out = np.asarray(program.predict(x), dtype=np.float64)
    if classify and out.ndim == 3:  # a class at every position (text(targets = every)): the last position's,
        out = out[:, -1, :]  # the token after the window, as a last-position model predicts it
    if not classify:
        names = list(prep.target_names or [f"y{i}" for i in range(out.shape[1])])
        return names, out.reshape(len(x), -1).tolist()
    if out.ndim == 1 or out.shape[1] == 1:  # one logit: P(second class)
        p1 = 1 / (1 + np.exp(-out.reshape(-1)))
        probs = np.stack([1 - p1, p1], axis=1)
    else:
        z = np.exp(out - out.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
    labels = [prep.classes[i] for i in probs.argmax(axis=1)]
    names = ["prediction"] + [f"p_{c}" for c in prep.classes]
    return names, [[lb, *(round(float(p), 6) for p in row)] for lb, row in zip(labels, probs)]
