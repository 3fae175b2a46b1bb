"""The end-of-run diagnosis: what the recorded curves say about a run, each finding citing its numbers.

`diagnose(records, summary)` reads the epochs of `metrics.jsonl` (and `summary.json` for the stop
reason, the baseline and whether the best epoch was restored) and returns findings: overfitting,
underfitting, divergence, exploding or vanishing gradients (from `grad_norm` when recorded), a
plateau at a constant lr, an lr too high or too low. A healthy run yields none. Pure Python: no
tinygrad, so `trainc report` can read a run directory anywhere.

    >>> rows = [{"epoch": e, "step": 10 * e, "lr": 1e-3, "train.loss": 1 / e, "val.loss": 1 / e} for e in range(1, 9)]
    >>> diagnose(rows, None)
    []

Thresholds are the constants below; specs/README.md (section "Diagnosis") documents each rule.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import median

from . import rundir
from .rundir import RunDirError  # noqa: F401  (the error of a run directory that cannot be read; report uses it)

# overfitting: val.loss ends more than OVERFIT_RISE above its minimum (mean of the last TAIL epochs,
# at least TAIL epochs after the minimum) while train.loss keeps falling
OVERFIT_RISE = 0.10
TAIL = 3
# underfitting: over the last FLAT_WINDOW epochs train.loss improved by less than FLAT_GAIN (relative), and it is
# still high: classification accuracy below baseline + UNDERFIT_ACC of the way to 1; a regression error above
# UNDERFIT_ERR x the baseline's; otherwise a loss above UNDERFIT_LOSS x the first epoch's
FLAT_WINDOW = 6
FLAT_GAIN = 0.02
UNDERFIT_ACC = 0.5
CHANCE = 0.05  # a train.accuracy within this of the baseline's is chance level: the message points at the lr
UNDERFIT_ERR = 0.8
UNDERFIT_LOSS = 0.8
# divergence: a loss that is not finite, an epoch the divergence guard flagged, or train.loss above
# EXPLODE x its best so far
EXPLODE = 10.0
# exploding gradients: an epoch's grad_norm above GRAD_EXPLODE x the median of the epochs before it
GRAD_EXPLODE = 10.0
# vanishing gradients: grad_norm below GRAD_VANISH x its largest value (or below GRAD_TINY) while train.loss
# is still above STUCK_LOSS x the first epoch's
GRAD_VANISH = 1e-3
GRAD_TINY = 1e-7
STUCK_LOSS = 0.5
# plateau: no new best val.loss (by more than PLATEAU_DELTA, relative) for at least PLATEAU_EPOCHS epochs and
# PLATEAU_SHARE of the run, at an lr that varied by at most CONSTANT_LR (max / min) meanwhile; not when early
# stopping ended the run
PLATEAU_DELTA = 1e-3
PLATEAU_EPOCHS = 10
PLATEAU_SHARE = 0.25
CONSTANT_LR = 1.05
# lr too high: a loss that jumps by more than SPIKE x the epoch before (val.loss: and falls back after); train.loss
# above the first epoch's within the first EARLY epochs; or the TAIL-epoch mean of train.loss rebounding REBOUND
# above its lowest
SPIKE = 1.5
EARLY = 5
REBOUND = 0.15
NOISE = 0.05  # a jump or rebound smaller than this share of the first epoch's train.loss is noise
# lr too low (runs of at least SLOW_MIN_EPOCHS that ran to stop.max): val.loss still fell in SLOW_STEADY of
# the last third's epochs, and by at least SLOW_RATIO of what it fell in the first third
SLOW_MIN_EPOCHS = 9
SLOW_STEADY = 0.8
SLOW_RATIO = 0.25


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One diagnosis: `kind` (overfitting, underfitting, divergence, exploding_gradients, vanishing_gradients,
    plateau, lr_too_high, lr_too_low), a message that cites the numbers, where it applies, and those numbers."""

    kind: str
    severity: str  # "warning" or "info"
    message: str
    epoch: int | None = None
    step: int | None = None
    values: dict = field(default_factory=dict)

    def line(self) -> str:
        where = f" at epoch {self.epoch}" if self.epoch is not None else ""
        where += f" (step {self.step})" if self.step is not None else ""
        return f"{self.kind.replace('_', ' ')}{where}: {self.message}"


def _f(x) -> float:
    """A recorded number: null (a non-finite value in strict JSON) and missing keys read as nan."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _g(v: float) -> str:
    return f"{v:.4g}"


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else math.nan


def _epochs(records: list[dict]) -> list[dict]:
    """The epochs that count: diverged ones are left out, and after a roll-back the repeated epoch
    replaces the one it repeats."""
    by_epoch: dict[int, dict] = {}
    for r in records:
        if "epoch" not in r or "train.loss" not in r or r.get("diverged"):
            continue
        if not (math.isfinite(_f(r["train.loss"])) and math.isfinite(_f(r.get("val.loss")))):
            continue
        by_epoch.pop(int(r["epoch"]), None)
        by_epoch[int(r["epoch"])] = r
    return sorted(by_epoch.values(), key=lambda r: r["epoch"])


def _divergence(records: list[dict], summary: dict) -> Finding | None:
    best = None
    events = []
    for r in records:
        if "train.loss" not in r:
            continue
        tl, vl = _f(r.get("train.loss")), _f(r.get("val.loss"))
        why = r.get("diverged")
        if not why and not (math.isfinite(tl) and math.isfinite(vl)):
            why = "the loss is not finite"
        if not why and best is not None and tl > EXPLODE * max(best, 1e-12):
            why = f"train.loss {_g(tl)} is more than {EXPLODE:g}x its best so far ({_g(best)})"
        if why:
            events.append((r, why, tl, best))
        elif math.isfinite(tl):
            best = tl if best is None else min(best, tl)
    stop = summary.get("stop_reason") or ""
    if not events:
        if stop.startswith("diverged"):
            return Finding(kind="divergence", severity="warning", message=f"the run stopped: {stop}")
        return None
    r, why, tl, best = events[0]
    rest = f"; {len(events) - 1} more diverged epoch(s) after it" if len(events) > 1 else ""
    ended = "the run stopped there" if stop.startswith("diverged") else \
        "the run went on" + (" after rolling back" if any(e[0].get("diverged") for e in events) else "")
    return Finding(kind="divergence", severity="warning", epoch=r.get("epoch"), step=r.get("step"),
                   message=f"{why} (train.loss {_g(tl)}, best before {_g(best) if best is not None else 'none'}, "
                           f"lr {_g(_f(r.get('lr')))}){rest}; {ended}. Lower the lr, clip gradients "
                           "(regularization.clip_grad_norm) or warm up (schedule = warmup(...) then ...)",
                   values={"train.loss": tl, "best_train_loss": best, "lr": _f(r.get("lr")), "events": len(events)})


def _gradients(rows: list[dict], records: list[dict]) -> list[Finding]:
    out = []
    grads = [(r, _f(r.get("grad_norm"))) for r in records if "grad_norm" in r]
    if not grads:
        return out
    seen: list[float] = []
    for r, g in grads:
        top = _f(r.get("grad_norm_max"))
        if not math.isfinite(g) or (len(seen) >= 2 and g > GRAD_EXPLODE * median(seen)):
            ref = median(seen) if seen else None  # a first epoch that explodes has nothing before it to compare
            extra = f" (largest step {_g(top)})" if math.isfinite(top) else ""
            against = f", against a median of {_g(ref)} over the epochs before it (more than {GRAD_EXPLODE:g}x)" \
                if ref is not None and math.isfinite(g) else \
                f" in epoch {r.get('epoch')}, " + ("the first epoch" if not seen else f"after a median of {_g(ref)}")
            out.append(Finding(
                kind="exploding_gradients", severity="warning", epoch=r.get("epoch"), step=r.get("step"),
                message=f"the mean gradient norm reached {_g(g)}{extra}{against}. Clip gradients "
                        "(regularization.clip_grad_norm = 1.0), lower the lr or warm up",
                values={"grad_norm": g, "median_before": ref, "grad_norm_max": top}))
            break
        seen.append(g)
    finite = [(r, g) for r, g in grads if math.isfinite(g)]
    if finite and rows and not out:
        r_last, g_last = finite[-1]
        g_top = max(g for _, g in finite)
        first, last = _f(rows[0]["train.loss"]), _f(rows[-1]["train.loss"])
        stuck = math.isfinite(first) and first > 0 and last > STUCK_LOSS * first
        if stuck and (g_last < GRAD_TINY or g_last < GRAD_VANISH * g_top):
            out.append(Finding(
                kind="vanishing_gradients", severity="warning", epoch=r_last.get("epoch"),
                message=f"the gradient norm fell to {_g(g_last)} (largest {_g(g_top)}) while train.loss is still "
                        f"{_g(last)} (first epoch {_g(first)}): the weights barely move. Check the initialisation "
                        "(init = he for relu), the activations (relu or gelu over sigmoid/tanh in deep stacks), "
                        "or add normalisation layers",
                values={"grad_norm": g_last, "grad_norm_largest": g_top, "train.loss": last,
                        "first_train_loss": first}))
    return out


def _overfitting(rows: list[dict], summary: dict) -> Finding | None:
    val = [_f(r["val.loss"]) for r in rows]
    train = [_f(r["train.loss"]) for r in rows]
    if len(rows) < 2 * TAIL:
        return None
    i = min(range(len(val)), key=val.__getitem__)
    if len(rows) - 1 - i < TAIL:
        return None
    tail_val, tail_train = _mean(val[-TAIL:]), _mean(train[-TAIL:])
    rise = tail_val / val[i] - 1 if val[i] > 0 else (math.inf if tail_val > val[i] else 0.0)
    if not (rise > OVERFIT_RISE and tail_train < train[i]):
        return None
    gap0, gap1 = val[i] - train[i], val[-1] - train[-1]
    restored = summary.get("restored_best")
    fix = " The saved model is the best epoch's (restore_best); to narrow the gap add dropout or weight decay, or " \
        "use more data." if restored else " Stop early (stop.early = plateau(val.loss, restore_best = true)), add " \
        "dropout or weight decay, or use more data."
    return Finding(
        kind="overfitting", severity="info" if restored else "warning", epoch=rows[i + 1]["epoch"],
        message=f"val.loss was lowest at epoch {rows[i]['epoch']} ({_g(val[i])}) and rose {rise * 100:.0f}% to "
                f"{_g(tail_val)} (mean of the last {TAIL} epochs, to epoch {rows[-1]['epoch']}) while train.loss fell "
                f"from {_g(train[i])} to {_g(train[-1])}; the gap val.loss - train.loss grew from {_g(gap0)} to "
                f"{_g(gap1)}.{fix}",
        values={"best_epoch": rows[i]["epoch"], "val_loss_min": val[i], "val_loss_end": tail_val, "rise": rise,
                "train_loss_at_min": train[i], "train_loss_end": train[-1], "gap_at_min": gap0, "gap_end": gap1})


def _flat(train: list[float]) -> tuple[bool, float, float]:
    """Whether train.loss stopped improving: the mean of the window's second half against its first half."""
    w = train[-FLAT_WINDOW:]
    half = len(w) // 2
    before, after = _mean(w[:half]), _mean(w[half:])
    gain = (before - after) / abs(before) if before else 0.0
    return gain < FLAT_GAIN, before, after


def _underfitting(rows: list[dict], summary: dict) -> Finding | None:
    if len(rows) < FLAT_WINDOW:
        return None
    train = [_f(r["train.loss"]) for r in rows]
    flat, before, after = _flat(train)
    if not flat:
        return None
    last = rows[-1]
    base = summary.get("baseline") or {}
    n = len(rows)
    trend = (f"train.loss has stopped falling ({_g(before)} -> {_g(after)}, the means of the two halves of the "
             f"last {FLAT_WINDOW} epochs)")
    fix = "a larger model, a longer run, less regularization (l2, dropout), better features, or another lr"
    acc, acc0 = _f(last.get("train.accuracy")), _f(base.get("val.accuracy"))
    if math.isfinite(acc) and math.isfinite(acc0):
        bar = acc0 + UNDERFIT_ACC * (1 - acc0)
        if acc >= bar:
            return None
        if acc <= acc0 + CHANCE:  # stuck at chance: most often weights blown up by a too-high lr in the first steps
            fix = f"check the lr first (a too-high lr can wreck the weights in the first steps; the first epoch's " \
                  f"train.loss was {_g(train[0])}), then {fix}"
        return Finding(kind="underfitting", severity="warning",
                       message=f"train.accuracy is {_g(acc)} after {n} epochs, less than halfway from the baseline's "
                               f"{_g(acc0)} (always the most frequent class) to 1; {trend}. The model does not fit "
                               f"even its training data: {fix}",
                       values={"train.accuracy": acc, "baseline": acc0, "loss_before": before, "loss_after": after})
    for m in ("rmse", "mae"):
        err, err0 = _f(last.get(f"train.{m}")), _f(base.get(f"val.{m}"))
        if math.isfinite(err) and math.isfinite(err0) and err0 > 0:
            if err <= UNDERFIT_ERR * err0:
                return None
            return Finding(kind="underfitting", severity="warning",
                           message=f"train.{m} is {_g(err)} after {n} epochs, {err / err0 * 100:.0f}% of the "
                                   f"baseline's {_g(err0)} (always the training mean); {trend}. The model does not "
                                   f"fit even its training data: {fix}",
                           values={f"train.{m}": err, "baseline": err0, "loss_before": before, "loss_after": after})
    first = train[0]
    if not (first > 0 and train[-1] > UNDERFIT_LOSS * first):
        return None
    return Finding(kind="underfitting", severity="warning",
                   message=f"train.loss is {_g(train[-1])} after {n} epochs, {train[-1] / first * 100:.0f}% of the "
                           f"first epoch's {_g(first)}; {trend}. The model does not fit even its training data: {fix}",
                   values={"train.loss": train[-1], "first_train_loss": first, "loss_before": before,
                           "loss_after": after})


def _plateau(rows: list[dict], summary: dict) -> Finding | None:
    if (summary.get("stop_reason") or "").startswith("early stopping"):  # the spec already handles a plateau
        return None
    val = [_f(r["val.loss"]) for r in rows]
    best_i = 0
    for i, v in enumerate(val):
        if v < val[best_i] - PLATEAU_DELTA * abs(val[best_i]):
            best_i = i
    stalled = len(rows) - 1 - best_i
    if stalled < max(PLATEAU_EPOCHS, PLATEAU_SHARE * len(rows)):
        return None
    lrs = [_f(r.get("lr")) for r in rows[best_i:]]
    if not all(math.isfinite(x) and x > 0 for x in lrs) or max(lrs) > CONSTANT_LR * min(lrs):
        return None
    return Finding(kind="plateau", severity="info", epoch=rows[best_i]["epoch"],
                   message=f"val.loss has not improved for {stalled} epochs (best {_g(val[best_i])} at epoch "
                           f"{rows[best_i]['epoch']}, last {_g(val[-1])}) at a constant lr of {_g(lrs[-1])}: a "
                           "schedule that lowers it (schedule = cosine(), or plateau(val.loss)) may gain more, and "
                           "early stopping (stop.early = plateau(val.loss)) saves the epochs",
                   values={"epochs": stalled, "best": val[best_i], "last": val[-1], "lr": lrs[-1]})


def _falls_every_epoch(xs: list[float]) -> bool:
    return all(b < a for a, b in itertools.pairwise(xs))


def _lr_too_high(rows: list[dict]) -> Finding | None:
    train = [_f(r["train.loss"]) for r in rows]
    val = [_f(r["val.loss"]) for r in rows]
    floor = NOISE * abs(train[0])
    if _falls_every_epoch(val):  # steps that overshoot do not make val.loss fall in every epoch
        return None

    def lr(i: int) -> float:
        return _f(rows[i].get("lr"))

    for name, xs in (("train.loss", train), ("val.loss", val)):
        for i in range(1, len(xs)):
            jump = xs[i - 1] > 0 and xs[i] > SPIKE * xs[i - 1] and xs[i] - xs[i - 1] > floor
            if name == "val.loss":  # a val.loss that climbs and stays up is overfitting; a spike comes back down
                jump = jump and i + 1 < len(xs) and xs[i + 1] < xs[i] / SPIKE
            if jump:
                return Finding(kind="lr_too_high", severity="warning", epoch=rows[i]["epoch"], step=rows[i]["step"],
                               message=f"{name} jumped from {_g(xs[i - 1])} to {_g(xs[i])} in epoch "
                                       f"{rows[i]['epoch']} (lr {_g(lr(i))}): the steps overshoot. Lower the lr, "
                                       "warm up, or clip gradients",
                               values={"before": xs[i - 1], "after": xs[i], "lr": lr(i)})
    for i in range(1, min(EARLY, len(train))):
        if train[i] > train[0] and train[i] - train[0] > floor:  # a rise above noise, not the batches' jitter
            return Finding(kind="lr_too_high", severity="warning", epoch=rows[i]["epoch"],
                           message=f"train.loss rose early, from {_g(train[0])} in epoch {rows[0]['epoch']} to "
                                   f"{_g(train[i])} in epoch {rows[i]['epoch']} (lr {_g(lr(i))}). Lower the lr or "
                                   "warm up (schedule = warmup(...) then ...)",
                           values={"first": train[0], "later": train[i], "lr": lr(i)})
    low = math.inf
    for i in range(TAIL - 1, len(train)):
        s = _mean(train[i - TAIL + 1:i + 1])
        if s > (1 + REBOUND) * low and s - low > floor:
            return Finding(kind="lr_too_high", severity="warning", epoch=rows[i]["epoch"],
                           message=f"train.loss went back up: its {TAIL}-epoch mean reached {_g(s)} by epoch "
                                   f"{rows[i]['epoch']}, {(s / low - 1) * 100:.0f}% above its lowest ({_g(low)}), at "
                                   f"lr {_g(lr(i))}. Lower the lr or use a schedule that decays it",
                           values={"mean": s, "lowest": low, "lr": lr(i)})
        low = min(low, s)
    return None


def _lr_too_low(rows: list[dict], summary: dict) -> Finding | None:
    n = len(rows)
    stop = summary.get("stop_reason") or ""
    if n < SLOW_MIN_EPOCHS or (stop and not stop.startswith(("reached stop.max", "time budget"))):
        return None
    val = [_f(r["val.loss"]) for r in rows]
    third = n // 3
    first_drop = val[0] - val[third]
    last = val[n - 1 - third:]
    last_drop = last[0] - last[-1]
    falls = sum(b < a for a, b in zip(last, last[1:]))
    if not (first_drop > 0 and last_drop >= SLOW_RATIO * first_drop and falls >= SLOW_STEADY * third):
        return None
    lr = _f(rows[-1].get("lr"))
    return Finding(kind="lr_too_low", severity="info",
                   message=f"val.loss was still falling steadily when the run ended: by {_g(last_drop)} over the last "
                           f"{third} epochs (in {falls} of them) against {_g(first_drop)} over the first {third}, "
                           f"at lr {_g(lr)}. The lr may be too low, or the run too short: raise the lr or train longer",
                   values={"last_drop": last_drop, "first_drop": first_drop, "falls": falls, "lr": lr})


def diagnose(records: list[dict], summary: dict | None = None) -> list[Finding]:
    """Findings from a run's per-epoch records (`metrics.jsonl`) and its `summary.json`; none for a healthy run."""
    summary = summary or {}
    findings = []
    diverged = _divergence(records, summary)
    if diverged:
        findings.append(diverged)
    rows = _epochs(records)
    findings += _gradients(rows, records)
    if len(rows) < 2:
        return findings
    over = _overfitting(rows, summary)
    low = None if over else _lr_too_low(rows, summary)
    under = None if over or low else _underfitting(rows, summary)  # still falling steadily: slow, not stuck
    findings += [f for f in (over, under) if f]
    if not diverged:
        high = _lr_too_high(rows)
        if high:
            findings.append(high)
    if not (over or under):
        findings += [f for f in (_plateau(rows, summary), low) if f]
    return findings


def read_metrics(path: Path, root: Path | None = None) -> list[dict]:
    """The records of metrics.jsonl, each checked (an object; epoch and step whole numbers, scalar values)."""
    return rundir.read_jsonl(Path(path), rundir.metrics_row, rundir.METRICS_MAX, root)


def read_summary(path: Path, root: Path | None = None) -> dict:
    """summary.json, checked against its schema; {} when there is none."""
    try:
        return rundir.read_json(Path(path), rundir.SUMMARY_JSON, rundir.JSON_MAX, root)
    except rundir.Missing:
        return {}


def record(run_dir: Path) -> list[Finding]:
    """Diagnose a finished run directory and store the findings in its summary.json under "diagnosis"."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir / "summary.json", run_dir)
    findings = diagnose(read_metrics(run_dir / "metrics.jsonl", run_dir), summary)
    if summary:
        from .loop import _write_json  # strict JSON (NaN -> null), written atomically

        summary["diagnosis"] = [asdict(f) for f in findings]
        _write_json(run_dir / "summary.json", summary, run_dir)
    return findings
