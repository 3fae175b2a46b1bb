"""The training loop: drives a lowered Program epoch by epoch and writes the run directory.

    DIR/metrics.jsonl   one JSON object per epoch: epoch, step, lr, train.loss, val.loss, val.<metric>, time
    DIR/summary.json    final and best values, the stop reason, wall time
    DIR/model.safetensors   the weights at the end (the best ones when restore_best is set)
    DIR/checkpoints/    last.safetensors every `checkpoint.every`, best.safetensors for `checkpoint.keep`

Every file of the run directory is read and written through rundir.py: no link below DIR is followed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import weakref
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from ..compiler import catalog as C
from ..compiler import env, ir
from ..compiler.check import at_width, every_position, mode_of, value_type
from ..compiler.diagnostics import Diagnostic, SpecError
from ..compiler.rules import run_length
from . import checkpoint as ck
from . import rundir
from .augment import epoch_inputs
from .data import Dataset, fit_batch
from .progress import Progress
from .schedule import LrSchedule, epoch_steps, run_steps

# ---------------------------------------------------------------------------------------------
# What only the data can tell: checked before anything is compiled.
# ---------------------------------------------------------------------------------------------


_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # Dataset -> (spec, its problems)


def check_against_data(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    """What only the data can tell, DATA_RULES included. Run once per spec and data: `trainc run` checks before
    the run directory is touched, then train() (which refuses bad data when called from the API) asks again
    and gets the answer already found, until the Dataset is dropped."""
    done = _CHECKED.get(ds)
    if done is not None and (done[0] is spec or done[0] == spec):
        return list(done[1])
    diags = []
    inp = spec.model.inputs[0]
    if tuple(inp.type.shape) != tuple(ds.feature_shape):
        diags.append(Diagnostic(code="E507", message=f"input {inp.name}: {inp.type} but the data has examples of "
                                f"shape [{', '.join(map(str, ds.feature_shape))}]", span=inp.span,
                                help=f"declare `input {inp.name}: f32[{', '.join(map(str, ds.feature_shape))}]`"))
    for term in spec.loss.terms:
        t = value_type(spec.model, term.pred)
        if t is not None and len(t.shape) == 2 and every_position(spec) is not None:  # [T, classes]: per position
            t = ir.TensorType(dtype=t.dtype, shape=t.shape[-1:])
        if t is None or len(t.shape) != 1 or term.target != "target":  # an autoencoder's target is its input
            continue
        outputs = C.LOSSES.get(term.kind).extra.get("outputs")  # what the loss reads: one, per_class, ...
        if outputs == "per_class" and t.shape[0] != ds.n_classes:  # at the layer that sets the width
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} logits but the data has "
                                    f"{ds.n_classes} classes", help=f"end the model with dense({ds.n_classes})",
                                    **at_width(spec.model, term, "one logit per class")))
        weights = dict(term.args).get("weights")
        if isinstance(weights, tuple) and ds.n_classes is not None and len(weights) != ds.n_classes:
            diags.append(Diagnostic(code="E508", message=f"weights has {len(weights)} entries but the data has "
                                    f"{ds.n_classes} classes", span=term.span,
                                    help=f"give one weight per class, in the order {list(ds.classes)}, or "
                                    "`weights = balanced`"))
        if outputs == "per_class_or_one" and t.shape[0] > 1 and t.shape[0] != ds.n_classes:
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} outputs but the data has "
                                    f"{ds.n_classes} classes",
                                    help=f"end the model with dense({ds.n_classes}), or dense(1) for two classes",
                                    **at_width(spec.model, term, "one score per class")))
        if outputs == "per_class_or_one" and t.shape[0] == 1 and ds.n_classes != 2:
            diags.append(Diagnostic(code="E508", message=f"{term.kind} on one output needs 2 classes, the data has "
                                    f"{ds.n_classes}", span=term.span,
                                    help=f"end the model with dense({ds.n_classes}) for a multi-class hinge"))
        if C.LOSSES.get(term.kind).extra.get("distribution"):
            tn = ds.target_normalizer
            y = ds.y_train * tn.scale + tn.shift if tn else ds.y_train
            if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
                diags.append(Diagnostic(code="E508", message=f"{term.kind} needs targets that are probability "
                                        "distributions: non-negative, each row summing to 1", span=term.span,
                                        help="check the target columns"))
        if outputs == "one" and ds.n_classes != 2:
            diags.append(Diagnostic(code="E508", message=f"{term.kind} needs 2 classes, the data has {ds.n_classes}",
                                    span=term.span, help="use cross_entropy"))
        if spec.data.task == ir.Task.regression and t.shape[0] != ds.y_train.shape[1]:
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} outputs but the data has "
                                    f"{ds.y_train.shape[1]} target column(s)",
                                    help=f"end the model with dense({ds.y_train.shape[1]})",
                                    **at_width(spec.model, term, "one output per target column")))
    if spec.data.batch > len(ds.x_train):
        diags.append(Diagnostic(code="E505", message=f"batch {spec.data.batch} is larger than the training split "
                                f"({len(ds.x_train)} examples)", span=spec.data.span_of("batch"),
                                help=f"use `batch = {min(len(ds.x_train), 32)}` or fewer, or `batch = all` for the "
                                     "whole training split"))
    elif spec.data.batch * spec.regularization.accumulate > len(ds.x_train):
        n = spec.data.batch * spec.regularization.accumulate
        diags.append(Diagnostic(code="E505", message=f"batch {spec.data.batch} x accumulate "
                                f"{spec.regularization.accumulate} = {n} is larger than the training split "
                                f"({len(ds.x_train)} examples)", span=spec.regularization.span_of("accumulate"),
                                help="lower `accumulate` or `data.batch`"))
    diags += [d for check in DATA_RULES for d in check(spec, ds)]
    _CHECKED[ds] = (spec, tuple(diags))
    return diags


def _vocabulary(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    """E510: a token id past an embedding's table would read outside it (tinygrad does not check)."""
    inp, out = spec.model.inputs[0], []
    arrays = [a for a in (ds.x_train, ds.x_val, ds.x_test) if a is not None and a.size]
    top = max((int(np.max(a)) for a in arrays), default=-1) if inp.type.dtype == ir.DType.i32 else -1
    for layer in spec.model.layers:
        vocab = dict(layer.args).get("vocab")
        if layer.op == "embedding" and layer.inputs == (inp.name,) and isinstance(vocab, int) and top >= vocab:
            out.append(Diagnostic(code="E510", message=f"embedding: the data holds token ids up to {top}, but the "
                                  f"table has {vocab} rows (ids 0..{vocab - 1})", span=layer.span,
                                  help=f"use embedding({top + 1}, ...) or more"))
    return out


def _classes_seen(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    """W501: a class in val or test that training never shows: the model cannot learn to predict it."""
    if ds.classes is None or spec.data.task != ir.Task.classification or ds.y_train.ndim != 1:
        return []
    seen, out = set(np.unique(ds.y_train).tolist()), []
    for split, y in (("val", ds.y_val), ("test", ds.y_test)):
        only = sorted(set(np.unique(y).tolist()) - seen) if y is not None and y.ndim == 1 else []
        if only:
            key = split if getattr(spec.data, split) is not None else "split"
            out.append(Diagnostic(code="W501", severity="warning", message=f"class{'es' * (len(only) > 1)} "
                                  f"{', '.join(str(ds.classes[i]) for i in only[:5])} appear{'s' * (len(only) == 1)} "
                                  f"in {split} but not in train", span=spec.data.span_of(key),
                                  help="stratify the split, or give train examples of every class"))
    return out


def _trivial_scores(spec: ir.Spec, ds: Dataset) -> dict[str, tuple[float, str]]:
    """What a model that learned nothing scores on val, by metric: (score, the predictor that scores it)."""
    if spec.data.task == ir.Task.regression:
        tn = ds.target_normalizer
        y = np.asarray(ds.y_val * tn.scale + tn.shift if tn else ds.y_val, dtype=np.float64)
        return {"rmse": (float(np.sqrt(np.mean((y - y.mean(axis=0)) ** 2))), "predicting the mean"),
                "mae": (float(np.mean(np.abs(y - np.median(y, axis=0)))), "predicting the median"),
                "r2": (0.0, "predicting the mean")}
    if ds.y_train.ndim != 1 or ds.n_classes is None:
        return {}
    top = majority_class(ds)
    name = ds.classes[top] if ds.classes is not None and top < len(ds.classes) else top
    out = {"accuracy": (float(np.mean(ds.y_val == top)), f"always predicting class {name}, the most frequent")}
    if ds.n_classes == 2:
        out["auc"] = (0.5, "a constant score")
    return out


def _met_before_training(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    """W303: `when = val.rmse <= X` (or `val.accuracy >= X`) that a model which learned nothing already meets:
    the mean's rmse, the majority class's accuracy, a constant's auc."""
    when = spec.stop.when
    if when is None or when.monitor.split != "val" or not len(ds.y_val):
        return []
    base, how = _trivial_scores(spec, ds).get(when.monitor.name, (None, ""))
    lower = when.op in ("<=", "<")  # the rule stops once the metric is low enough
    if base is None or lower != (C.METRICS.get(when.monitor.name).extra.get("mode") == "min"):
        return []  # against the metric's direction: W304's business
    met = {"<=": base <= when.value, "<": base < when.value, ">=": base >= when.value, ">": base > when.value}
    if not met[when.op]:
        return []
    better = "below" if lower else "above"
    return [Diagnostic(code="W303", severity="warning", message=f"{when.monitor} of {how} is already {base:.4g}: "
                       f"`{when.monitor} {when.op} {when.value:g}` is met before the model learns anything",
                       span=when.span, help=f"a threshold well {better} {base:.4g}")]


def _run_length(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    """W302 in steps: a setting in steps against a run in epochs (or the reverse), with steps per epoch known."""
    per_epoch = epoch_steps(spec, epoch_size(spec, ds.y_train)) if ds.y_train.ndim == 1 or \
        spec.data.sampler != "oversample" else 0
    return run_length(spec, per_epoch) if per_epoch > 0 else []


DATA_RULES = (  # each: (spec, data) -> problems
    _vocabulary,  # E510 token ids past an embedding's table
    _classes_seen,  # W501 a class only in val or test
    _met_before_training,  # W303 a threshold the mean already meets
    _run_length,  # W302 settings past the run's end, in steps
)


# ---------------------------------------------------------------------------------------------
# Stopping rules
# ---------------------------------------------------------------------------------------------


def epoch_order(spec: ir.Spec, y_train: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The training examples one epoch visits, in order.

    none: every example once (shuffled when `shuffle`). balanced: as many draws as examples, with
    replacement, each class equally likely. oversample: every class repeated up to the largest
    class's count (the extra copies drawn at random), then shuffled."""
    n = len(y_train)
    sampler = spec.data.sampler
    if sampler == "none":
        return rng.permutation(n) if spec.data.shuffle else np.arange(n)
    counts = np.bincount(y_train)
    if sampler == "balanced":
        present = counts > 0
        p = np.where(present[y_train], 1.0 / (present.sum() * np.maximum(counts[y_train], 1)), 0.0)
        return rng.choice(n, size=n, replace=True, p=p / p.sum())
    top = counts.max()
    parts = []
    for c in np.flatnonzero(counts):
        members = np.flatnonzero(y_train == c)
        extra = rng.choice(members, size=top - len(members), replace=True)
        parts.append(np.concatenate([members, extra]))
    order = np.concatenate(parts)
    return order[rng.permutation(len(order))]


def epoch_size(spec: ir.Spec, y_train: np.ndarray) -> int:
    if spec.data.sampler == "oversample":
        counts = np.bincount(y_train)
        return int((counts > 0).sum() * counts.max())
    return len(y_train)


def improved(value: float | None, best: float | None, mode: str, min_delta: float, relative: bool = False) -> bool:
    """Whether `value` beats `best` by more than `min_delta` (a fraction of |best| when relative)."""
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    delta = abs(best) * min_delta if relative else min_delta
    return value < best - delta if mode == "min" else value > best + delta


def diverged(train_loss: float, val_loss: float, best_train: float | None, guard: ir.Divergence | None) -> str | None:
    """Why an epoch counts as diverged, or None."""
    if not math.isfinite(train_loss) or not math.isfinite(val_loss):
        return "the loss is not finite"
    if guard and guard.explode and best_train is not None and train_loss > guard.explode * max(best_train, 1e-12):
        return f"train.loss {train_loss:.4g} is more than {guard.explode:g}x its best ({best_train:.4g})"
    return None


_CMP = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def majority_class(ds: Dataset) -> int:
    """The most frequent training class (over every position, where there is a class at each): what the
    baseline predicts, and what W303's trivial accuracy is measured with."""
    return int(np.bincount(ds.y_train.astype(np.int64).reshape(-1), minlength=ds.n_classes).argmax())


def baseline(spec: ir.Spec, ds: Dataset) -> dict[str, float]:
    """What a model that ignores its input scores on val: the bar any trained model must clear.

    Regression: always predict the training mean (in the target's units). Classification: always
    predict the most frequent training class."""
    measured = {m.kind for m in spec.metrics}
    if spec.data.task == ir.Task.classification:
        if "accuracy" not in measured:
            return {}
        return {"val.accuracy": float((ds.y_val == majority_class(ds)).mean())}
    tn = ds.target_normalizer
    y_tr = tn.shift + tn.scale * ds.y_train if tn else ds.y_train
    y_va = tn.shift + tn.scale * ds.y_val if tn else ds.y_val
    if spec.loss.terms and spec.loss.terms[0].target != "target":  # an autoencoder: the input is the target
        y_tr, y_va = ds.x_train.reshape(len(ds.x_train), -1), ds.x_val.reshape(len(ds.x_val), -1)
    err = y_va - y_tr.mean(axis=0)
    out = {"val.rmse": float(np.sqrt((err ** 2).mean())), "val.mae": float(np.abs(err).mean())}
    return {k: v for k, v in out.items() if k.split(".")[1] in measured}


@dataclass
class Result:
    out_dir: Path
    stop_reason: str
    epochs: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    final: dict = field(default_factory=dict)
    baseline: dict = field(default_factory=dict)
    reports: dict = field(default_factory=dict)  # non-scalar metrics of the saved model: {"confusion": [[...]]}
    test: dict | None = None  # test.<metric> of the saved model, when there is a test split


def json_safe(obj):
    """Strict JSON: NaN and infinities (a diverged run) become null, which every parser reads."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _write_json(path: Path, obj, root: Path | None = None) -> None:
    """Strict JSON written atomically under the run directory `root` (default: the file's folder)."""
    rundir.write_bytes(path, (json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n").encode(), root)


def eval_chunks(program, n: int) -> list[tuple]:
    """Evaluation indices: fixed-size chunks, the last one padded and masked, so one compiled graph serves all."""
    from tinygrad import Tensor

    eb, out = program.eval_batch, []
    for c in range(math.ceil(n / eb)):
        idx = np.arange(c * eb, (c + 1) * eb)
        out.append((Tensor(np.where(idx < n, idx, 0).astype(np.int32)).realize(),
                    Tensor((idx < n).astype(np.float32)).realize()))
    return out


def evaluate_split(program, step, parts: list[tuple], n: int, labels: np.ndarray) -> dict[str, object]:
    """Loss and metrics of one split: `step` is the program's eval_step (val) or test_step."""
    from tinygrad import Tensor

    from ..compiler.lower import finish_eval

    program.eval_acc.assign(Tensor.zeros(program.eval_acc.shape)).realize()
    scores = []
    for idx, mask in parts:
        s = step(idx, mask)
        if program.host_metrics:  # AUC and the like need every example's score: one copy per chunk
            scores.append(s.numpy())
    return finish_eval(program, program.eval_acc.numpy(), np.concatenate(scores)[:n] if scores else None, labels)


def _save(program, path: Path) -> str:
    """The weights alone, as safetensors (model.safetensors), written atomically; returns their sha256."""
    data = ck.encode_safetensors({k: t.numpy() for k, t in program.state().items()})
    ck.write_file_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


class Interrupt:
    """SIGINT and SIGTERM while training: the first asks the loop to stop at the next step boundary (after
    saving a checkpoint); a second SIGINT stops at once."""

    def __init__(self):
        self.requested: str | None = None
        self._old = {}

    def __enter__(self):
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        import signal

        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _fault(kind: str, n: int) -> None:
    """Fault injection for the tests: TRAINC_FAULT=step:N or checkpoint:N sends SIGKILL to this process after
    step N or half-way through writing checkpoint N; sigint:N and sigterm:N send those signals after step N."""
    want = env.get("TRAINC_FAULT")
    if not want:
        return
    import signal

    for name, sig in (("", signal.SIGKILL), ("sigint", signal.SIGINT), ("sigterm", signal.SIGTERM)):
        if want == f"{name or kind}:{n}" and (name == "" or kind == "step"):
            os.kill(os.getpid(), sig)


def _rng_counter():
    """tinygrad's dropout RNG counter on the default device (created on first use), or None."""
    from tinygrad import Device, Tensor

    return Tensor._device_rng_counters.get(Device.DEFAULT)


@dataclass
class LoopState:
    """Everything the loop carries from step to step besides tensors: what a checkpoint's state.json holds."""

    epoch: int = 0  # the epoch in progress (mid-epoch) or last completed (at an epoch boundary)
    step: int = 0
    batch_index: int = 0  # batches of `epoch` done; 0 at an epoch boundary
    lr_scale: float = 1.0  # divergence roll-backs multiply it
    rollbacks: int = 0
    best_train: float | None = None
    best_value: float | None = None
    best_row: dict | None = None
    bad_epochs: int = 0
    keep_best: float | None = None
    train_seconds: float = 0.0  # training time of earlier processes, for stop.budget
    resumes: int = 0
    stopped: str | None = None  # why the run ended, when the checkpoint is its last
    history: list = field(default_factory=list)


def _tensor_specs(tensors) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(t.shape), np.dtype(t.dtype.fmt).name) for k, t in tensors.items()}


def _pretrained_weights(pre: ir.Pretrained, path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The tensors `from(...)` names, and the file's name: a .safetensors file, or a run directory's final
    weights (checked against summary.json's sha256 when it records one) or checkpoint (against state.json's)."""
    if path.suffix == ".safetensors":
        return ck.read_safetensors(path, path.parent), path.name
    if pre.weights == "final" and rundir.is_file(path / "model.safetensors", path):
        try:
            summary = rundir.read_json(path / "summary.json", rundir.SUMMARY_JSON, rundir.JSON_MAX, path)
        except rundir.Missing:
            summary = {}
        sha = (summary.get("files") or {}).get("model.safetensors")
        return ck.read_safetensors(path / "model.safetensors", path, sha, checksum_in="summary.json"), \
            "model.safetensors"
    has_checkpoints = rundir.kind(path / "checkpoints", path) is not None if path.is_dir() else False
    folder = ck.find(path / "checkpoints" / pre.weights if has_checkpoints else path, path if path.is_dir() else None)
    return ck.model_weights(folder, path if path.is_dir() else folder), "model.safetensors"


def load_pretrained(program, pre: ir.Pretrained, base_dir: Path) -> int:
    """`init = from(...)`: copy the selected layers' weights from another run; returns how many tensors.
    Raises SpecError at the from(...) for a missing run or a tensor whose shape or dtype differs."""
    from tinygrad import Tensor

    from ..compiler.lower import selects

    path = (Path(base_dir) / pre.path).resolve()
    try:
        saved, fname = _pretrained_weights(pre, path)
    except rundir.RunDirError as e:
        raise SpecError([Diagnostic(code="E509", message=f"cannot take weights from '{pre.path}': {e}",
                                    span=pre.span, help="give a run directory (its --out) or a .safetensors file")])
    wanted = {k: t for k, t in program.state().items()
              if not pre.only or any(selects(sel, k.rsplit(".", 1)[0]) for sel in pre.only)}
    problems = []
    for k, t in wanted.items():
        if k not in saved:
            problems.append(f"'{k}' is not in {fname}")
        elif tuple(saved[k].shape) != tuple(t.shape):
            problems.append(f"'{k}' has shape {list(saved[k].shape)} in {fname}, the model needs {list(t.shape)}")
        elif saved[k].dtype != np.dtype(t.dtype.fmt):
            problems.append(f"'{k}' has dtype {saved[k].dtype} in {fname}, the model needs {np.dtype(t.dtype.fmt)}")
    if problems:
        raise SpecError([Diagnostic(code="E509", message=f"the weights in '{pre.path}' do not fit: " + problems[0],
                                    span=pre.span, notes=tuple(problems[1:6]),
                                    help="take only the layers that match: from(..., only = [encoder])")])
    for k, t in wanted.items():
        t.assign(Tensor(np.ascontiguousarray(saved[k]), dtype=t.dtype)).realize()
    return len(wanted)


def train(spec: ir.Spec, ds: Dataset, out_dir: Path, progress: Progress | None = None,
          resume: Path | None = None, spec_hash: str | None = None, base_dir: Path | None = None,
          ready: Callable[[], None] | None = None) -> Result:
    """Compile the spec over the loaded data and train it. Raises SpecError on data/spec mismatches and
    CheckpointError when `resume` (a checkpoint folder) cannot be used. `ready` is called once the step is
    compiled and the weights are in place, before the first file of the run is written: what the caller
    writes there (the run's records) is not written over when the lowering fails (E509, E601)."""
    from ..compiler.lower import lower  # tinygrad is imported only once training starts

    spec = fit_batch(spec, len(ds.x_train))  # `batch = all`: this split's size (each fold's own)
    problems = [d for d in check_against_data(spec, ds) if d.is_error]  # warnings: the caller showed them
    if problems:
        raise SpecError(problems)
    progress = progress or Progress()
    rundir.make_dirs(out_dir, out_dir)
    t0 = time.perf_counter()
    tn = ds.target_normalizer
    program = lower(spec, ds.x_train, ds.y_train, ds.x_val, ds.y_val, tn.shift if tn else None,
                    tn.scale if tn else None, n_classes=ds.n_classes, x_test=ds.x_test, y_test=ds.y_test)
    run = _Run(spec, ds, out_dir, progress, program, spec_hash, t0)
    run.start(resume, base_dir, ready)
    run.epochs()
    return run.finish()


class _Run:
    """One training run after lowering: its settings, the loop state, and the epoch loop with its rules
    (divergence and roll-back, early stopping, stop.when, stop.max, the time budget, checkpoints).
    `fault(kind, n)` is called after each step (kind "step") and handed to each checkpoint write; the
    default one reads TRAINC_FAULT (tests kill the process there)."""

    def __init__(self, spec: ir.Spec, ds: Dataset, out_dir: Path, progress: Progress, program,
                 spec_hash: str | None, t0: float, fault: Callable[[str, int], None] | None = None):
        self.spec, self.ds, self.out_dir, self.progress, self.program = spec, ds, out_dir, progress, program
        self.spec_hash, self.t0, self.fault = spec_hash, t0, fault or _fault
        progress.write(f"device: {program.device}" + (" (device = auto: tinygrad's best available)"
                                                      if spec.run.device == "auto" else ""))
        self.batch = program.train_batch
        self.micro = program.accumulate  # micro-batches per optimizer step
        self.per_epoch = epoch_steps(spec, epoch_size(spec, ds.y_train))  # the last partial step is dropped
        self.mx = mx = spec.stop.max
        self.n_steps = run_steps(spec, self.per_epoch)
        self.max_epochs = int(mx.value) if mx.unit == ir.Unit.epochs else math.ceil(self.n_steps / self.per_epoch)
        base_lr = float(dict(spec.optimizer.args)["lr"])
        self.lr_at = LrSchedule(spec.schedule, base_lr, self.per_epoch, self.n_steps)
        self.rng = np.random.default_rng(spec.run.seed)
        self.val_chunks = eval_chunks(program, program.n_val)
        self.early = early = spec.stop.early
        # "best" is judged by the early-stopping monitor, else by val.loss
        self.monitor = early.monitor if early else ir.MetricRef(split="val", name="loss", span=spec.stop.span)
        self.monitor_mode = early.mode if early else "min"
        self.min_delta = early.min_delta if early else 0.0
        self.relative = early.relative if early else False
        self.guard = spec.stop.diverge
        self.when = spec.stop.when
        self.min_epochs = int(spec.stop.min.value) if spec.stop.min else 0  # before it, early and when wait
        cp = spec.checkpoint
        self.keep = cp.keep if cp else None
        every = cp.every if cp and cp.every else ir.Duration(value=1, unit=ir.Unit.epochs, span=spec.stop.span)
        self.every_steps = int(every.value) if every.unit == ir.Unit.steps else 0
        self.every_epochs = int(every.value) if every.unit == ir.Unit.epochs else 0
        self.keep_last = cp.last if cp else 1
        self.ckpt_dir = out_dir / "checkpoints"
        self.st = LoopState()
        self.snapshot, self.best_state, self.order = None, None, None
        self.stop_reason = None
        self.startup, self.compile_in_epoch = None, 0.0  # seconds until the jitted step was captured
        self.n_saves = 0

    # ---- helpers the rules share ----

    def evaluate(self, step=None, parts=None, n=None, labels=None) -> dict[str, object]:
        """Loss and metrics of the val split (or of the one given)."""
        p = self.program
        return evaluate_split(p, p.eval_step if step is None else step, self.val_chunks if parts is None else parts,
                              p.n_val if n is None else n, self.ds.y_val if labels is None else labels)

    @staticmethod
    def host(tensors: dict) -> dict[str, np.ndarray]:
        return {k: t.numpy().copy() for k, t in tensors.items()}

    def take_snapshot(self) -> dict:
        """The last good state, on the host: weights, buffers and optimizer state."""
        return {"epoch": self.st.epoch, "step": self.st.step, "schedule": self.lr_at.state(),
                "tensors": self.host({**self.program.state(), **self.program.optimizer_state()})}

    @staticmethod
    def assign(t, a: np.ndarray) -> None:
        from tinygrad import Tensor

        t.assign(Tensor(np.ascontiguousarray(a), dtype=t.dtype)).realize()

    def elapsed(self) -> float:
        return self.train_before + time.perf_counter() - self.t_train

    def save_checkpoint(self, best: bool = False) -> None:
        """Write the whole loop state (see checkpoint.py); point `latest` (and `best`) at it; prune."""
        st, program, snapshot, out_dir, ckpt_dir = self.st, self.program, self.snapshot, self.out_dir, self.ckpt_dir
        self.n_saves += 1
        extra = {"loop/train_acc": program.train_acc.numpy(), "loop/grad_acc": program.grad_acc.numpy()}
        counter = _rng_counter()
        if counter is not None:
            extra["loop/rng_counter"] = counter.numpy()
        if st.batch_index:
            extra["loop/order"] = self.order.astype(np.int64)
        if self.best_state is not None:
            extra.update({f"best/{k}": v for k, v in self.best_state.items()})
        if snapshot is not None:
            extra.update({f"snapshot/{k}": v for k, v in snapshot["tensors"].items()})
        state = {"spec_hash": self.spec_hash, "loop": json_safe(asdict(st)), "rng": self.rng.bit_generator.state,
                 "schedule": _schedule_json(self.lr_at.state()),
                 "snapshot": {"epoch": snapshot["epoch"], "step": snapshot["step"],
                              "schedule": _schedule_json(snapshot["schedule"])} if snapshot else None}
        name = f"step-{st.step:08d}"
        ck.save(ckpt_dir, name, self.host(program.state()), {**self.host(program.optimizer_state()), **extra}, state,
                out_dir, fault=_fault_in_save(self.n_saves, self.fault))
        ck.point(ckpt_dir, "latest", name, out_dir)
        if best:
            ck.point(ckpt_dir, "best", name, out_dir)
        ck.prune(ckpt_dir, self.keep_last, out_dir)

    # ---- set-up ----

    def start(self, resume: Path | None, base_dir: Path | None, ready: Callable[[], None] | None) -> None:
        """Weights from `init = from(...)` or a checkpoint, then the run directory's first files."""
        spec, progress, out_dir = self.spec, self.progress, self.out_dir
        if spec.model.pretrained is not None and resume is None:
            n = load_pretrained(self.program, spec.model.pretrained, base_dir or Path(spec.path).resolve().parent)
            progress.write(f"init: {n} tensors from {spec.model.pretrained.path}")
        if resume is not None:
            self.resume(resume)
        elif self.guard and self.guard.action == "rollback":
            self.snapshot = self.take_snapshot()  # the initial weights are a good state too
        if ready is not None:
            ready()
        if resume is None:  # a fresh run in an old directory: the old checkpoints are not this run's
            ck.clear(self.ckpt_dir, out_dir)
        self.metrics_file = rundir.open_new(out_dir / "metrics.jsonl", out_dir)  # on resume: the epochs so far, again
        for row in self.st.history:
            self.metrics_file.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        self.metrics_file.flush()
        self.t_train = time.perf_counter()
        self.train_before = self.st.train_seconds

    def resume(self, resume: Path) -> None:
        """Put every tensor and counter back as the checkpoint left them."""
        from tinygrad import Tensor

        program, assign, spec_hash = self.program, self.assign, self.spec_hash
        model_t, opt_t, saved = ck.load(resume, self.out_dir if self.out_dir in Path(resume).parents else None,
                                        _tensor_specs(program.state()))
        changed = spec_hash is not None and saved.get("spec_hash") not in (None, spec_hash)
        if changed:
            self.progress.write("resuming under a changed spec (--force)")
        parts = {p: {k[len(p) + 1:]: v for k, v in opt_t.items() if k.startswith(p + "/")}
                 for p in ("loop", "best", "snapshot")}
        ck.check_tensors("optimizer", {k: v for k, v in opt_t.items() if "/" not in k},
                         _tensor_specs(program.optimizer_state()))
        _check_resume(resume, saved, parts, program, len(self.lr_at.state()), self.per_epoch,
                      epoch_size(self.spec, self.ds.y_train), len(self.ds.y_train))
        for k, t in program.state().items():
            assign(t, model_t[k])
        for k, t in program.optimizer_state().items():
            assign(t, opt_t[k])
        assign(program.train_acc, parts["loop"]["train_acc"])
        assign(program.grad_acc, parts["loop"]["grad_acc"])
        if "rng_counter" in parts["loop"]:
            if _rng_counter() is None:
                Tensor.rand(1).realize()  # creates the counter (and its seed) exactly as the first dropout does
            ck.check_tensors("loop", {"rng_counter": parts["loop"]["rng_counter"]},
                             _tensor_specs({"rng_counter": _rng_counter()}))
            assign(_rng_counter(), parts["loop"]["rng_counter"])
        loop = saved["loop"]
        st = self.st = LoopState(**{**loop, "history": loop["history"]})
        st.resumes += 1
        self.rng.bit_generator.state = saved["rng"]
        self.lr_at.restore(_schedule_from_json(saved["schedule"]))
        self.order = parts["loop"].get("order")
        self.best_state = parts["best"] or None
        if saved.get("snapshot"):
            snap = saved["snapshot"]
            self.snapshot = {"epoch": snap["epoch"], "step": snap["step"],
                             "schedule": _schedule_from_json(snap["schedule"]), "tensors": parts["snapshot"]}
        # a finished run stays finished (its summary is written again), unless the spec changed: a longer
        # stop.max, say, with --force
        self.stop_reason = None if changed else st.stopped
        self.progress.write(f"resumed from {resume} (epoch {st.epoch}, step {st.step})")

    # ---- the epoch loop ----

    def epochs(self) -> None:
        """Epoch after epoch until a rule gives a stop reason; a second Ctrl-C stops at once."""
        with Interrupt() as self.interrupt:
            try:
                while self.stop_reason is None:
                    if self.st.batch_index == 0 and self.st.step >= self.n_steps:  # resumed at the very end
                        self.stop_reason = f"reached stop.max ({self.mx.value:g} {self.mx.unit.value})"
                        break
                    self.epoch()
            except KeyboardInterrupt:  # a second Ctrl-C: stop now, keep the last checkpoint
                self.stop_reason = "interrupted"
            finally:
                self.metrics_file.close()

    def epoch(self) -> None:
        """One epoch (or the rest of one, after a resume): its steps, its row, then the rules in order."""
        st = self.st
        if st.batch_index == 0:  # a new epoch
            st.epoch += 1
            self.order = epoch_order(self.spec, self.ds.y_train, self.rng)
        epoch = st.epoch
        t_epoch = time.perf_counter()
        if self.spec.data.augment:
            self.augment(epoch)
        lr, steps_this_epoch = self.steps(epoch, t_epoch)
        if self.interrupt.requested:  # stop between steps, resumable from exactly here
            st.train_seconds = self.elapsed()
            self.save_checkpoint()
            self.stop_reason = "interrupted"
            return
        st.batch_index = 0
        row, why = self.end_epoch(epoch, lr, steps_this_epoch, t_epoch)
        if why:
            self.diverged(why)
            return
        self.improvement(row)
        new_best = self.new_best(row)
        self.thresholds(row)
        self.checkpoint(epoch, new_best)

    def augment(self, epoch: int) -> None:
        """This epoch's augmented inputs, into the very buffer the jitted step reads."""
        from tinygrad import Tensor, dtypes

        ds, program = self.ds, self.program
        x = epoch_inputs(ds.x_train_raw, ds.normalizer, self.spec.data.augment, self.spec.run.seed, epoch)
        x = x.astype(np.int32) if program.x_train.dtype == dtypes.int32 else x
        program.x_train.assign(Tensor(x, dtype=program.x_train.dtype)).realize()

    def steps(self, epoch: int, t_epoch: float) -> tuple[float, int]:
        """The epoch's optimizer steps, until its end, stop.max, an interrupt or the time budget: the lr of the
        last step (the one an epoch logs) and how many steps ran."""
        st, program, batch, micro, budget = self.st, self.program, self.batch, self.micro, self.spec.stop.budget
        steps_this_epoch = 0
        lr = self.lr_at(st.step) * st.lr_scale  # the lr logged for an epoch is that of its last step
        for b in range(st.batch_index, self.per_epoch):
            if st.step >= self.n_steps:
                break
            lr = self.lr_at(st.step) * st.lr_scale
            first = b * batch * micro
            program.step([self.order[first + i * batch:first + (i + 1) * batch] for i in range(micro)], lr)
            st.step += 1
            st.batch_index = b + 1
            steps_this_epoch += 1
            self.fault("step", st.step)
            if steps_this_epoch == 2 and self.startup is None:  # TinyJit has captured the step: replay from here
                program.train_acc.numpy()
                self.startup = time.perf_counter() - self.t0
                self.compile_in_epoch = time.perf_counter() - t_epoch
            if self.interrupt.requested:
                break
            if self.every_steps and st.step % self.every_steps == 0 and b + 1 < self.per_epoch:
                st.train_seconds = self.elapsed()
                self.save_checkpoint()
            if self.progress.want_step():
                acc = program.train_acc.numpy()
                rate = steps_this_epoch * batch * micro / max(time.perf_counter() - t_epoch, 1e-9)
                eta = (self.n_steps - st.step) * batch * micro / rate if rate > 0 else None
                self.progress.step(epoch, self.max_epochs, st.step, b + 1, self.per_epoch,
                                   float(acc[0] / max(acc[1], 1)), rate, lr=lr, eta=eta)
            if budget and self.elapsed() > budget:
                self.stop_reason = f"time budget of {budget:g} s used"
                break
        return lr, steps_this_epoch

    def end_epoch(self, epoch: int, lr: float, steps_this_epoch: int, t_epoch: float) -> tuple[dict, str | None]:
        """The epoch's row (train and val values, gradient norms, time), logged and shown; why it diverged."""
        from tinygrad import Tensor

        from ..compiler.lower import finish_train

        program, st, batch, micro = self.program, self.st, self.batch, self.micro
        acc = program.train_acc.numpy()  # also waits for the epoch's last step
        gacc = program.grad_acc.numpy()
        train_seconds = time.perf_counter() - t_epoch
        program.train_acc.assign(Tensor.zeros(program.train_acc.shape)).realize()
        program.grad_acc.assign(Tensor.zeros(program.grad_acc.shape)).realize()
        train = finish_train(program, acc)
        val = self.evaluate()
        seconds = time.perf_counter() - t_epoch
        row = {"epoch": epoch, "step": st.step, "lr": lr}
        row.update({f"train.{k}": v for k, v in train.items()})
        row.update({f"val.{k}": v for k, v in val.items() if not isinstance(v, list)})
        steps_done = int(round(float(acc[1]) / max(batch * micro, 1))) if acc[1] else 0
        if steps_done:
            row["grad_norm"] = float(gacc[0]) / steps_done  # mean global norm before clipping
            row["grad_norm_max"] = float(gacc[1])
        if program.loss_scale is not None:  # f16: dynamic loss scaling
            scale = program.loss_scale.numpy()
            row["loss_scale"], row["skipped_steps"] = float(scale[0]), int(scale[2])
        row["time"] = round(self.elapsed(), 3)
        why = diverged(train["loss"], val["loss"], st.best_train, self.guard)
        if why:
            row["diverged"] = why
        st.history.append(row)
        self.metrics_file.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
        self.metrics_file.flush()
        # throughput without the one-off tracing and compiling of the first steps
        first = len(st.history) == 1
        fast_steps = steps_this_epoch - (2 if self.compile_in_epoch and first else 0)
        fast_seconds = train_seconds - (self.compile_in_epoch if first else 0.0)
        rate = fast_steps * batch * micro / fast_seconds if fast_steps > 0 and fast_seconds > 0 else 0.0
        self.progress.epoch(row, self.max_epochs, seconds, rate,
                            note=f"incl. {self.compile_in_epoch:.1f}s compiling" if first and self.startup else None)
        return row, why

    # ---- the rules, after each epoch ----

    def diverged(self, why: str) -> None:
        """stop.diverge: roll back to the last good state with a lower lr (while retries last), else stop."""
        st, guard = self.st, self.guard
        if guard and guard.action == "rollback" and self.snapshot is not None and st.rollbacks < guard.retries:
            st.rollbacks += 1
            st.lr_scale *= guard.lr_factor
            snapshot = self.snapshot
            st.epoch, st.step = snapshot["epoch"], snapshot["step"]
            self.lr_at.restore(snapshot["schedule"])
            for k, t in {**self.program.state(), **self.program.optimizer_state()}.items():
                self.assign(t, snapshot["tensors"][k])
            self.progress.write(f"diverged ({why}): rolled back to epoch {st.epoch}, lr x{guard.lr_factor:g} "
                                f"(roll-back {st.rollbacks} of {guard.retries})")
            return
        tried = f" after {st.rollbacks} roll-back(s)" if st.rollbacks else ""
        self.stop_reason = f"diverged{tried}: {why}; lower the learning rate or clip gradients"

    def improvement(self, row: dict) -> None:
        """A good epoch: the best train loss, a plateau schedule, the roll-back snapshot, early stopping."""
        st, early = self.st, self.early
        train_loss = row["train.loss"]
        st.best_train = train_loss if st.best_train is None else min(st.best_train, train_loss)
        lr_note = self.lr_at.observe(row)  # a plateau schedule lowers the lr here
        if lr_note:
            self.progress.write(lr_note)
        if self.guard and self.guard.action == "rollback":
            self.snapshot = self.take_snapshot()
        value = row.get(str(self.monitor))
        if improved(value, st.best_value, self.monitor_mode, self.min_delta, self.relative):
            st.best_value, st.best_row, st.bad_epochs = value, row, 0
            if early is not None and early.restore_best:
                self.best_state = self.host(self.program.state())
        else:
            st.bad_epochs += 1
            if early is not None and st.bad_epochs >= early.patience and row["epoch"] >= self.min_epochs:
                by = f" by {early.min_delta * 100:g}%" if self.relative else f" by {early.min_delta:g}" \
                    if early.min_delta else ""
                self.stop_reason = (f"early stopping: {early.monitor} did not improve{by} for {early.patience} "
                                    f"epochs (best {st.best_value:.4g} at epoch {st.best_row['epoch']})")

    def new_best(self, row: dict) -> bool:
        """checkpoint.keep: whether this epoch is the best one so far by its metric."""
        if self.keep is not None:
            v = row.get(str(self.keep))
            if improved(v, self.st.keep_best, mode_of(self.keep), 0.0):
                self.st.keep_best = v
                return True
        return False

    def thresholds(self, row: dict) -> None:
        """stop.when, then stop.max (unless an earlier rule stopped the run)."""
        when = self.when
        if self.stop_reason is None and when is not None and row["epoch"] >= self.min_epochs:
            v = row.get(str(when.monitor))
            if v is not None and _CMP[when.op](v, when.value):
                self.stop_reason = f"threshold reached: {when.monitor} = {v:.4g} {when.op} {when.value:g}"
        if self.stop_reason is None and self.st.step >= self.n_steps:
            self.stop_reason = f"reached stop.max ({self.mx.value:g} {self.mx.unit.value})"

    def checkpoint(self, epoch: int, new_best: bool) -> None:
        """checkpoint.every (and a new best): save; a failed write stops the run, the previous one intact."""
        st, every_epochs, every_steps = self.st, self.every_epochs, self.every_steps
        if new_best or (every_epochs and epoch % every_epochs == 0) or (every_steps and st.step % every_steps == 0):
            st.train_seconds, st.stopped = self.elapsed(), self.stop_reason
            try:
                self.save_checkpoint(best=new_best)
            except (OSError, rundir.RunDirError) as e:
                why = e.strerror if isinstance(e, OSError) and e.strerror else e
                self.stop_reason = f"could not write a checkpoint ({why}); the previous one is intact"

    # ---- the end of the run ----

    def finish(self) -> Result:
        """The best weights back (restore_best), the final evaluation and test, the weights and summary.json."""
        st, program, ds, early, history = self.st, self.program, self.ds, self.early, self.st.history
        restored = False
        if early is not None and early.restore_best and self.best_state is not None and history \
                and st.best_row is not history[-1] and st.best_row != history[-1]:
            for k, t in program.state().items():
                self.assign(t, self.best_state[k])
            restored = True
        final = dict(st.best_row) if restored else dict(history[-1]) if history else {}
        # non-scalar metrics (a confusion matrix) of the model as saved
        reports = {k: v for k, v in self.evaluate().items() if isinstance(v, list)} if history else {}
        test = None
        if program.test_step is not None and history:  # the held-out split, once, on the model as saved
            test = self.evaluate(program.test_step, eval_chunks(program, program.n_test), program.n_test, ds.y_test)
            reports.update({f"test.{k}": v for k, v in test.items() if isinstance(v, list)})
            test = {f"test.{k}": v for k, v in test.items() if not isinstance(v, list)}
        weights_sha = _save(program, self.out_dir / "model.safetensors")
        seconds = time.perf_counter() - self.t0
        result = Result(out_dir=self.out_dir, stop_reason=self.stop_reason, epochs=st.epoch, steps=st.step,
                        seconds=seconds, history=history, best=st.best_row, final=final,
                        baseline=baseline(self.spec, ds), reports=reports, test=test)
        _write_json(self.out_dir / "summary.json", self.summary(result, restored, weights_sha))
        return result

    def summary(self, result: Result, restored: bool, weights_sha: str) -> dict:
        """summary.json's content."""
        st, history, ds, program = self.st, result.history, self.ds, self.program
        return {
            "spec": self.spec.path,
            "stop_reason": result.stop_reason,
            "epochs": st.epoch,
            "steps": st.step,
            "wall_time_s": round(result.seconds, 3),
            "startup_s": round(self.startup, 3) if self.startup is not None else None,  # until the step was captured
            "device": program.device,
            "restored_best": restored,
            "resumes": st.resumes,
            "final": result.final,
            "best": st.best_row,
            "last": history[-1] if history else None,
            "examples": {"train": program.n_train, "val": program.n_val},
            "baseline": result.baseline,
            "reports": result.reports,
            "test": result.test,
            "classes": [c if isinstance(c, (int, str)) else str(c) for c in ds.classes] if ds.classes else None,
            "files": {"model.safetensors": weights_sha},  # eval, predict and from() check the weights against it
        }


def _check_resume(folder: Path, saved: dict, parts: dict, program, n_phases: int, per_epoch: int, n_order: int,
                  n_train: int) -> None:
    """What a checkpoint must hold to be resumed from, beyond its checksums and the model's tensors: a
    state.json of the right shape, and loop tensors that fit this program and data. CheckpointError if not."""
    where = f"{folder}/state.json"
    why = rundir.check(saved, rundir.RESUME_JSON)
    if why:
        raise ck.CheckpointError(f"{where}: {why}")
    from .schedule import Plateau

    loop, snap = saved["loop"], saved["snapshot"]
    plateaus = [p for p in saved["schedule"] + (snap["schedule"] if snap else []) if p]
    for d, known in [(loop, LoopState.__dataclass_fields__)] + [(p, Plateau.__dataclass_fields__) for p in plateaus]:
        if set(d) - set(known):
            raise ck.CheckpointError(f"{where}: unknown key {rundir.quote(sorted(set(d) - set(known))[0])}")
    if loop["batch_index"] > per_epoch or len(saved["schedule"]) != n_phases or \
            (snap and len(snap["schedule"]) != n_phases):
        raise ck.CheckpointError(f"{where}: the loop state does not fit this spec and data (batch_index "
                                 f"{loop['batch_index']} of {per_epoch}, {len(saved['schedule'])} schedule phases)")
    try:
        np.random.default_rng().bit_generator.state = saved["rng"]
    except (TypeError, ValueError, KeyError, OverflowError):
        raise ck.CheckpointError(f"{where}: rng: not the state of numpy's random generator") from None
    ck.check_tensors("loop", {k: v for k, v in parts["loop"].items() if k in ("train_acc", "grad_acc")},
                     _tensor_specs({"train_acc": program.train_acc, "grad_acc": program.grad_acc}))
    order = parts["loop"].get("order")
    if loop["batch_index"] and (order is None or order.shape != (n_order,) or order.dtype != np.int64 or
                                (n_order and not 0 <= order.min() <= order.max() < n_train)):
        raise ck.CheckpointError(f"{folder}: loop/order is not an order of this data's {n_train} training examples")
    if parts["best"]:
        ck.check_tensors("best", parts["best"], _tensor_specs(program.state()))
    if snap:
        ck.check_tensors("snapshot", parts["snapshot"], _tensor_specs({**program.state(), **program.optimizer_state()}))


def _fault_in_save(n: int, fault: Callable[[str, int], None] | None = None) -> Callable[[], None] | None:
    """The hook handed to the writer of the Nth checkpoint: with TRAINC_FAULT=checkpoint:N, `fault` (default
    `_fault`) kills the process half-way through the write. None otherwise."""
    if env.get("TRAINC_FAULT") != f"checkpoint:{n}":
        return None
    return partial(fault or _fault, "checkpoint", n)


def _schedule_json(state: list) -> list:
    return [asdict(p) if p is not None else None for p in state]


def _schedule_from_json(state: list) -> list:
    from .schedule import Plateau

    return [Plateau(**p) if p is not None else None for p in state]


def cross_validate(spec: ir.Spec, load, out_dir: Path, progress: Progress | None = None,
                   base_dir: Path | None = None) -> dict:
    """`split = kfold(k)`: k runs, each validating on one fold; every final metric's mean and spread.

    `load(fold)` returns the Dataset of one fold. Each fold writes its own run directory
    (DIR/fold0, ...); DIR/summary.json holds the folds' final values and their mean and std."""
    progress = progress or Progress()
    k = spec.data.split.folds
    results = []
    for fold in range(k):
        progress.write(f"fold {fold + 1}/{k}")
        rundir.make_dirs(out_dir / f"fold{fold}", out_dir)  # a real folder of DIR, not a link out of it
        results.append(train(spec, load(fold), out_dir / f"fold{fold}", progress, base_dir=base_dir))
    keys = [key for key in results[0].final if key.startswith("val.")]
    table = {key: [r.final[key] for r in results] for key in keys}
    summary = {
        "spec": spec.path,
        "folds": k,
        "mean": {key: float(np.mean(v)) for key, v in table.items()},
        "std": {key: float(np.std(v)) for key, v in table.items()},  # population std over the folds
        "per_fold": [{"fold": i, "stop_reason": r.stop_reason, **{key: r.final[key] for key in keys}}
                     for i, r in enumerate(results)],
    }
    _write_json(out_dir / "summary.json", summary)
    return summary
