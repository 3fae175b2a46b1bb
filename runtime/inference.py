"""Using a finished run: `trainc eval DIR` and `trainc predict DIR INPUT`.

Training writes the preprocessing it fitted next to the weights:

    DIR/preprocess.json          task, input shape and dtype, feature names, classes, normalisation kinds,
                                 the training class counts (class weights of the loss)
    DIR/preprocess.safetensors   the fitted shift and scale of the inputs (and of regression targets)

so `predict` needs only the run directory and the new inputs, never the training data. `eval`
on `val` or `test` reads the data as the spec names it and splits it again (the same seed gives
the same split); on a FILE, it reads the file with the spec's source settings and the saved
preprocessing. Both load the weights of `final` (DIR/model.safetensors: the best epoch's when the
spec restores the best), `best` or `latest` (the checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..compiler import ir
from . import checkpoint as ck
from .data import Dataset, Normalizer, _Raw


class RunError(Exception):
    """A run directory (or an input) that cannot be used; the message says which file and why."""


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
        "class_counts": np.bincount(ds.y_train, minlength=ds.n_classes).tolist() if ds.classes else None,
        "normalize": ds.normalizer.kind,
        "target_normalize": ds.target_normalizer.kind if ds.target_normalizer else None,
        "target_names": [targets] if isinstance(targets, str) else list(targets) if targets else None,
    }
    tensors = {"x_shift": ds.normalizer.shift, "x_scale": ds.normalizer.scale}
    if ds.target_normalizer:
        tensors.update(y_shift=ds.target_normalizer.shift, y_scale=ds.target_normalizer.scale)
    ck.write_file_atomic(out_dir / "preprocess.json", (json.dumps(meta, indent=2, default=str) + "\n").encode())
    ck.write_file_atomic(out_dir / "preprocess.safetensors",
                         ck.encode_safetensors({k: np.asarray(v, np.float32) for k, v in tensors.items()}))


def load_preprocessing(run_dir: Path) -> Preprocessing:
    try:
        meta = json.loads((run_dir / "preprocess.json").read_text())
        t = ck.read_safetensors(run_dir / "preprocess.safetensors")
    except FileNotFoundError:
        raise RunError(f"{run_dir} has no preprocess.json: not a trainc run directory, or one from an older "
                       "trainc") from None
    except (json.JSONDecodeError, ck.CheckpointError) as e:
        raise RunError(f"{run_dir}: the saved preprocessing is unreadable ({e})") from None
    tn = Normalizer(meta["target_normalize"], t["y_shift"], t["y_scale"]) if "y_shift" in t else None
    return Preprocessing(task=ir.Task(meta["task"]), feature_shape=tuple(meta["feature_shape"]),
                         feature_names=tuple(meta["feature_names"]) if meta["feature_names"] else None,
                         classes=tuple(meta["classes"]) if meta["classes"] else None,
                         class_counts=tuple(meta["class_counts"]) if meta["class_counts"] else None,
                         normalizer=Normalizer(meta["normalize"], t["x_shift"], t["x_scale"]), target_normalizer=tn,
                         target_names=tuple(meta["target_names"]) if meta.get("target_names") else None)


def weights_file(run_dir: Path, which: str) -> Path:
    """final: DIR/model.safetensors; best, latest: that checkpoint's weights."""
    if which == "final":
        path = run_dir / "model.safetensors"
        if not path.exists():
            raise RunError(f"{run_dir} has no model.safetensors (did the run finish?); try --weights latest")
        return path
    try:
        return ck.find(run_dir / "checkpoints" / which) / "model.safetensors"
    except ck.CheckpointError as e:
        raise RunError(f"no '{which}' checkpoint in {run_dir}: {e}") from None


def build(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, y: np.ndarray, weights: Path):
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
    saved = ck.read_safetensors(weights)
    state = program.state()
    ck.check_tensors("model", saved, {k: (tuple(t.shape), np.dtype(t.dtype.fmt).name) for k, t in state.items()})
    for k, t in state.items():
        t.assign(Tensor(np.ascontiguousarray(saved[k]), dtype=t.dtype)).realize()
    return program


def evaluate(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, y: np.ndarray, weights: Path) -> dict[str, object]:
    from .loop import eval_chunks, evaluate_split

    program = build(spec, prep, x, y, weights)
    return evaluate_split(program, program.eval_step, eval_chunks(program, len(x)), len(x), y)


def read_file(spec: ir.Spec, prep: Preprocessing, path: Path, base_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A labelled file read with the spec's source settings; inputs normalised and labels encoded as in training."""
    from .data import _read, _label_text

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


def read_inputs(prep: Preprocessing, path: Path) -> np.ndarray:
    """Unlabelled inputs for predict: a CSV with the training feature columns (by name, any order, others
    ignored), or an .npz/.npy array of examples."""
    from .data import read_table

    if path.suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
            x = data[data.files[0] if "x" not in data.files else "x"] if path.suffix == ".npz" else data
        except (OSError, ValueError) as e:
            raise RunError(f"cannot read {path}: {e}") from None
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


def predict(spec: ir.Spec, prep: Preprocessing, x: np.ndarray, weights: Path) -> tuple[list[str], list[list]]:
    """Column names and rows: the predicted class and each class's probability, or the predicted targets."""
    classify = prep.task is ir.Task.classification
    y = np.zeros(len(x), np.int32) if classify else np.zeros((len(x), len(prep.target_names or (0,))), np.float32)
    program = build(spec, prep, x, y, weights)
    out = np.asarray(program.predict(x), dtype=np.float64)
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
