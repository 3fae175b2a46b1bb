"""The training loop: drives a lowered Program epoch by epoch and writes the run directory.

    DIR/metrics.jsonl   one JSON object per epoch: epoch, step, lr, train.loss, val.loss, val.<metric>, time
    DIR/summary.json    final and best values, the stop reason, wall time
    DIR/model.safetensors   the weights at the end (the best ones when restore_best is set)
    DIR/checkpoints/    last.safetensors every `checkpoint.every`, best.safetensors for `checkpoint.keep`
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..compiler import catalog as C
from ..compiler import ir
from ..compiler.check import mode_of, value_type
from ..compiler.diagnostics import Diagnostic, SpecError
from .data import Dataset
from .progress import Progress
from .schedule import LrSchedule, epoch_steps, run_steps

# ---------------------------------------------------------------------------------------------
# What only the data can tell: checked before anything is compiled.
# ---------------------------------------------------------------------------------------------


def check_against_data(spec: ir.Spec, ds: Dataset) -> list[Diagnostic]:
    diags = []
    inp = spec.model.inputs[0]
    if tuple(inp.type.shape) != tuple(ds.feature_shape):
        diags.append(Diagnostic(code="E507", message=f"input {inp.name}: {inp.type} but the data has examples of "
                                f"shape [{', '.join(map(str, ds.feature_shape))}]", span=inp.span,
                                help=f"declare `input {inp.name}: f32[{', '.join(map(str, ds.feature_shape))}]`"))
    for term in spec.loss.terms:
        t = value_type(spec.model, term.pred)
        if t is None or len(t.shape) != 1 or term.target != "target":  # an autoencoder's target is its input
            continue
        if term.kind == "cross_entropy" and t.shape[0] != ds.n_classes:
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} logits but the data has "
                                    f"{ds.n_classes} classes", span=term.span,
                                    help=f"end the model with dense({ds.n_classes})"))
        weights = dict(term.args).get("weights")
        if isinstance(weights, tuple) and ds.n_classes is not None and len(weights) != ds.n_classes:
            diags.append(Diagnostic(code="E508", message=f"weights has {len(weights)} entries but the data has "
                                    f"{ds.n_classes} classes", span=term.span,
                                    help=f"give one weight per class, in the order {list(ds.classes)}, or "
                                    "`weights = balanced`"))
        if term.kind == "hinge" and t.shape[0] > 1 and t.shape[0] != ds.n_classes:
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} outputs but the data has "
                                    f"{ds.n_classes} classes", span=term.span,
                                    help=f"end the model with dense({ds.n_classes}), or dense(1) for two classes"))
        if term.kind == "hinge" and t.shape[0] == 1 and ds.n_classes != 2:
            diags.append(Diagnostic(code="E508", message=f"hinge on one output needs 2 classes, the data has "
                                    f"{ds.n_classes}", span=term.span,
                                    help=f"end the model with dense({ds.n_classes}) for a multi-class hinge"))
        if C.LOSSES.get(term.kind).extra.get("distribution"):
            tn = ds.target_normalizer
            y = ds.y_train * tn.scale + tn.shift if tn else ds.y_train
            if (y < 0).any() or not np.allclose(y.sum(axis=1), 1.0, atol=1e-3):
                diags.append(Diagnostic(code="E508", message=f"{term.kind} needs targets that are probability "
                                        "distributions: non-negative, each row summing to 1", span=term.span,
                                        help="check the target columns"))
        if term.kind == "bce" and ds.n_classes != 2:
            diags.append(Diagnostic(code="E508", message=f"bce needs 2 classes, the data has {ds.n_classes}",
                                    span=term.span, help="use cross_entropy"))
        if spec.data.task == ir.Task.regression and t.shape[0] != ds.y_train.shape[1]:
            diags.append(Diagnostic(code="E508", message=f"'{term.pred}' has {t.shape[0]} outputs but the data has "
                                    f"{ds.y_train.shape[1]} target column(s)", span=term.span,
                                    help=f"end the model with dense({ds.y_train.shape[1]})"))
    if spec.data.batch > len(ds.x_train):
        diags.append(Diagnostic(code="E505", message=f"batch {spec.data.batch} is larger than the training split "
                                f"({len(ds.x_train)} examples)", span=spec.data.span_of("batch"),
                                help=f"use `batch = {min(len(ds.x_train), 32)}` or fewer"))
    elif spec.data.batch * spec.regularization.accumulate > len(ds.x_train):
        n = spec.data.batch * spec.regularization.accumulate
        diags.append(Diagnostic(code="E505", message=f"batch {spec.data.batch} x accumulate "
                                f"{spec.regularization.accumulate} = {n} is larger than the training split "
                                f"({len(ds.x_train)} examples)", span=spec.regularization.span_of("accumulate"),
                                help="lower `accumulate` or `data.batch`"))
    return diags


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


def baseline(spec: ir.Spec, ds: Dataset) -> dict[str, float]:
    """What a model that ignores its input scores on val: the bar any trained model must clear.

    Regression: always predict the training mean (in the target's units). Classification: always
    predict the most frequent training class."""
    measured = {m.kind for m in spec.metrics}
    if spec.data.task == ir.Task.classification:
        if "accuracy" not in measured:
            return {}
        majority = np.bincount(ds.y_train).argmax()
        return {"val.accuracy": float((ds.y_val == majority).mean())}
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


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")
    tmp.replace(path)


def _save(program, path: Path) -> None:
    from tinygrad.nn.state import safe_save

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    safe_save(program.state(), str(tmp))
    tmp.replace(path)


def train(spec: ir.Spec, ds: Dataset, out_dir: Path, progress: Progress | None = None) -> Result:
    """Compile the spec over the loaded data and train it. Raises SpecError on data/spec mismatches."""
    from ..compiler.lower import finish_eval, finish_train, lower  # tinygrad is imported only once training starts

    problems = check_against_data(spec, ds)
    if problems:
        raise SpecError(problems)
    progress = progress or Progress()
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tn = ds.target_normalizer
    program = lower(spec, ds.x_train, ds.y_train, ds.x_val, ds.y_val, tn.shift if tn else None,
                    tn.scale if tn else None, n_classes=ds.n_classes, x_test=ds.x_test, y_test=ds.y_test)

    from tinygrad import Tensor

    batch = program.train_batch
    micro = program.accumulate  # micro-batches per optimizer step
    per_epoch = epoch_steps(spec, epoch_size(spec, ds.y_train))  # the last partial step is dropped
    mx = spec.stop.max
    n_steps = run_steps(spec, per_epoch)
    max_epochs = int(mx.value) if mx.unit == ir.Unit.epochs else math.ceil(n_steps / per_epoch)
    base_lr = float(dict(spec.optimizer.args)["lr"])
    lr_at = LrSchedule(spec.schedule, base_lr, per_epoch, n_steps)
    rng = np.random.default_rng(spec.run.seed)

    # Evaluation indices: fixed-size chunks, the last one padded and masked, so one compiled graph serves all.
    eb = program.eval_batch

    def chunks(n: int) -> list[tuple]:
        out = []
        for c in range(math.ceil(n / eb)):
            idx = np.arange(c * eb, (c + 1) * eb)
            out.append((Tensor(np.where(idx < n, idx, 0).astype(np.int32)).realize(),
                        Tensor((idx < n).astype(np.float32)).realize()))
        return out

    val_chunks = chunks(program.n_val)

    def evaluate(step=program.eval_step, parts=val_chunks, n=program.n_val, labels=ds.y_val) -> dict[str, object]:
        program.eval_acc.assign(Tensor.zeros(program.eval_acc.shape)).realize()
        scores = []
        for idx, mask in parts:
            s = step(idx, mask)
            if program.host_metrics:  # AUC and the like need every example's score: one copy per chunk
                scores.append(s.numpy())
        return finish_eval(program, program.eval_acc.numpy(), np.concatenate(scores)[:n] if scores else None, labels)

    early = spec.stop.early
    # "best" is judged by the early-stopping monitor, else by val.loss
    monitor = early.monitor if early else ir.MetricRef(split="val", name="loss", span=spec.stop.span)
    monitor_mode = early.mode if early else "min"
    min_delta = early.min_delta if early else 0.0
    relative = early.relative if early else False
    guard = spec.stop.diverge
    lr_scale, rollbacks, best_train, snapshot = 1.0, 0, None, None  # divergence guard state
    when = spec.stop.when
    keep = spec.checkpoint.keep if spec.checkpoint else None
    best_value, best_row, best_state, bad_epochs = None, None, None, 0
    keep_best = None
    metrics_path = out_dir / "metrics.jsonl"
    metrics_file = metrics_path.open("w")
    history: list[dict] = []
    step, epoch, stop_reason = 0, 0, None
    startup, compile_in_epoch = None, 0.0  # seconds until the jitted step was captured
    def take_snapshot(epoch: int, step: int) -> dict:
        """The last good state, on the host: weights, buffers and optimizer state."""
        tensors = {**program.state(), **program.optimizer_state()}
        return {"epoch": epoch, "step": step, "schedule": lr_at.state(),
                "tensors": {k: t.numpy().copy() for k, t in tensors.items()}}

    if guard and guard.action == "rollback":
        snapshot = take_snapshot(0, 0)  # the initial weights are a good state too
    t_train = time.perf_counter()

    try:
        while stop_reason is None:
            epoch += 1
            t_epoch = time.perf_counter()
            order = epoch_order(spec, ds.y_train, rng)
            steps_this_epoch = 0
            lr = lr_at(step) * lr_scale  # the lr logged for an epoch is that of its last step
            for b in range(per_epoch):
                if step >= n_steps:
                    break
                lr = lr_at(step) * lr_scale
                first = b * batch * micro
                idxs = [Tensor(order[first + i * batch:first + (i + 1) * batch].astype(np.int32)) for i in range(micro)]
                program.step(idxs, Tensor([lr], dtype="float32"))
                step += 1
                steps_this_epoch += 1
                if step == 2:  # TinyJit has traced and captured the step: what is left is replay
                    program.train_acc.numpy()
                    startup = time.perf_counter() - t0
                    compile_in_epoch = time.perf_counter() - t_epoch
                if progress.want_step():
                    acc = program.train_acc.numpy()
                    rate = steps_this_epoch * batch * micro / max(time.perf_counter() - t_epoch, 1e-9)
                    progress.step(epoch, max_epochs, step, b + 1, per_epoch, float(acc[0] / max(acc[1], 1)), rate)
                if spec.stop.budget and time.perf_counter() - t_train > spec.stop.budget:
                    stop_reason = f"time budget of {spec.stop.budget:g} s used"
                    break
            acc = program.train_acc.numpy()  # also waits for the epoch's last step
            train_seconds = time.perf_counter() - t_epoch
            program.train_acc.assign(Tensor.zeros(program.train_acc.shape)).realize()
            train = finish_train(program, acc)
            train_loss = train["loss"]
            val = evaluate()
            seconds = time.perf_counter() - t_epoch
            row = {"epoch": epoch, "step": step, "lr": lr}
            row.update({f"train.{k}": v for k, v in train.items()})
            row.update({f"val.{k}": v for k, v in val.items() if not isinstance(v, list)})
            row["time"] = round(time.perf_counter() - t_train, 3)
            why = diverged(train_loss, val["loss"], best_train, guard)
            if why:
                row["diverged"] = why
            history.append(row)
            metrics_file.write(json.dumps(json_safe(row), allow_nan=False) + "\n")
            metrics_file.flush()
            # throughput without the one-off tracing and compiling of the first steps
            fast_steps = steps_this_epoch - (2 if epoch == 1 and step >= 2 else 0)
            fast_seconds = train_seconds - (compile_in_epoch if epoch == 1 else 0.0)
            rate = fast_steps * batch * micro / fast_seconds if fast_steps > 0 and fast_seconds > 0 else 0.0
            progress.epoch(row, max_epochs, seconds, rate,
                           note=f"incl. {compile_in_epoch:.1f}s compiling" if epoch == 1 and startup else None)

            if why and guard and guard.action == "rollback" and snapshot is not None and rollbacks < guard.retries:
                rollbacks += 1
                lr_scale *= guard.lr_factor
                epoch, step = snapshot["epoch"], snapshot["step"]
                lr_at.restore(snapshot["schedule"])
                for k, t in {**program.state(), **program.optimizer_state()}.items():
                    t.assign(Tensor(snapshot["tensors"][k])).realize()
                progress.write(f"diverged ({why}): rolled back to epoch {epoch}, lr x{guard.lr_factor:g} "
                               f"(roll-back {rollbacks} of {guard.retries})")
                continue
            if why:
                tried = f" after {rollbacks} roll-back(s)" if rollbacks else ""
                stop_reason = f"diverged{tried}: {why}; lower the learning rate or clip gradients"
                break
            best_train = train_loss if best_train is None else min(best_train, train_loss)
            lr_note = lr_at.observe(row)  # a plateau schedule lowers the lr here
            if lr_note:
                progress.write(lr_note)
            if guard and guard.action == "rollback":
                snapshot = take_snapshot(epoch, step)
            value = row.get(str(monitor))
            if improved(value, best_value, monitor_mode, min_delta, relative):
                best_value, best_row, bad_epochs = value, row, 0
                if early is not None and early.restore_best:
                    best_state = {k: t.numpy().copy() for k, t in program.state().items()}
            else:
                bad_epochs += 1
                if early is not None and bad_epochs >= early.patience:
                    by = f" by {early.min_delta * 100:g}%" if relative else f" by {early.min_delta:g}" \
                        if early.min_delta else ""
                    stop_reason = (f"early stopping: {early.monitor} did not improve{by} for {early.patience} "
                                   f"epochs (best {best_value:.4g} at epoch {best_row['epoch']})")
            if spec.checkpoint is not None:
                if spec.checkpoint.every and epoch % int(spec.checkpoint.every.value) == 0:
                    _save(program, out_dir / "checkpoints" / "last.safetensors")
                if keep is not None:
                    v = row.get(str(keep))
                    if improved(v, keep_best, mode_of(keep), 0.0):
                        keep_best = v
                        _save(program, out_dir / "checkpoints" / "best.safetensors")
            if stop_reason is None and when is not None:
                v = row.get(str(when.monitor))
                if v is not None and _CMP[when.op](v, when.value):
                    stop_reason = f"threshold reached: {when.monitor} = {v:.4g} {when.op} {when.value:g}"
            if stop_reason is None and step >= n_steps:
                stop_reason = f"reached stop.max ({mx.value:g} {mx.unit.value})"
    except KeyboardInterrupt:
        stop_reason = "interrupted"
    finally:
        metrics_file.close()

    restored = False
    if early is not None and early.restore_best and best_state is not None and best_row is not history[-1]:
        for k, t in program.state().items():
            t.assign(Tensor(best_state[k])).realize()
        restored = True
    final = dict(best_row) if restored else dict(history[-1]) if history else {}
    # non-scalar metrics (a confusion matrix) of the model as saved
    reports = {k: v for k, v in evaluate().items() if isinstance(v, list)} if history else {}
    test = None
    if program.test_step is not None and history:  # the held-out split, once, on the model as saved
        test = evaluate(program.test_step, chunks(program.n_test), program.n_test, ds.y_test)
        reports.update({f"test.{k}": v for k, v in test.items() if isinstance(v, list)})
        test = {f"test.{k}": v for k, v in test.items() if not isinstance(v, list)}
    _save(program, out_dir / "model.safetensors")
    seconds = time.perf_counter() - t0
    result = Result(out_dir=out_dir, stop_reason=stop_reason, epochs=epoch, steps=step, seconds=seconds,
                    history=history, best=best_row, final=final, baseline=baseline(spec, ds), reports=reports,
                    test=test)
    summary = {
        "spec": spec.path,
        "stop_reason": stop_reason,
        "epochs": epoch,
        "steps": step,
        "wall_time_s": round(seconds, 3),
        "startup_s": round(startup, 3) if startup is not None else None,  # until the jitted step was captured
        "device": program.device,
        "restored_best": restored,
        "final": final,
        "best": best_row,
        "last": history[-1] if history else None,
        "examples": {"train": program.n_train, "val": program.n_val},
        "baseline": result.baseline,
        "reports": reports,
        "test": test,
        "classes": [c if isinstance(c, (int, str)) else str(c) for c in ds.classes] if ds.classes else None,
    }
    _write_json(out_dir / "summary.json", summary)
    return result


def cross_validate(spec: ir.Spec, load, out_dir: Path, progress: Progress | None = None) -> dict:
    """`split = kfold(k)`: k runs, each validating on one fold; every final metric's mean and spread.

    `load(fold)` returns the Dataset of one fold. Each fold writes its own run directory
    (DIR/fold0, ...); DIR/summary.json holds the folds' final values and their mean and std."""
    progress = progress or Progress()
    k = spec.data.split.folds
    results = []
    for fold in range(k):
        progress.write(f"fold {fold + 1}/{k}")
        results.append(train(spec, load(fold), out_dir / f"fold{fold}", progress))
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
