"""sweep: one spec trained many times with other settings, the runs ranked by the monitored metric.

    trainc sweep specs/logistic_regression.train --grid optimizer="[adam(lr = 0.01), adam(lr = 0.1)]" \\
        --grid regularization.l2="[1e-3, 1e-2]"
    trainc sweep SPEC --random 20 --range regularization.l2="loguniform(1e-4, 1e-1)" --seed 0

Every trial is its own `trainc run SPEC -q --out SWEEP_DIR/trial-NNN --set KEY=VALUE ...` process;
up to `jobs` run at once. The ranked table is printed and saved as SWEEP_DIR/sweep.json and
SWEEP_DIR/sweep.csv. Values are written as in a spec and passed to the trials as text; the
trials import tinygrad, this module does not.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Callable

from ..compiler import ir
from ..compiler.check import mode_of
from ..compiler.parse import parse_expr
from . import rundir
from .diagnose import read_metrics, read_summary


class SweepUsage(ValueError):
    """A malformed --grid, --range or --random: a usage error (exit 2), not a problem in the spec."""


# ---------------------------------------------------------------------------------------------
# Arguments: --grid KEY=[v1, v2], --range KEY=loguniform(lo, hi)
# ---------------------------------------------------------------------------------------------


def split_setting(arg: str, flag: str, example: str) -> tuple[str, str]:
    """`optimizer.lr=[1e-3, 3e-3]` -> ("optimizer.lr", "[1e-3, 3e-3]"); the key is `section` or `section.key`."""
    if "=" not in arg:
        raise SweepUsage(f"{flag} takes KEY=VALUE, like {flag} {example}; got {arg!r}")
    key, value = (s.strip() for s in arg.split("=", 1))
    section, _, sub = key.partition(".")
    if not section.isidentifier() or (sub and not sub.isidentifier()):
        raise SweepUsage(f"{flag}: {key!r} is not a setting name like data.batch or optimizer")
    if not value:
        raise SweepUsage(f"{flag} {key}= has no value; like {flag} {example}")
    return key, value


def source_of(expr: ir.Expr, text: str) -> str:
    """The text an expression was parsed from: the value as the user wrote it, to pass on with --set."""
    lines = text.splitlines(keepends=True)
    s = expr.span
    if s.line == s.end_line:
        return lines[s.line - 1][s.col - 1:s.end_col - 1]
    return (lines[s.line - 1][s.col - 1:] + "".join(lines[s.line:s.end_line - 1])
            + lines[s.end_line - 1][:s.end_col - 1])


@dataclass(frozen=True)
class Grid:
    """`--grid data.batch=[32, 64]`: every value is tried (with every value of the other grids)."""

    key: str
    values: tuple[str, ...]  # spec text of each value


def parse_grid(arg: str, sources: dict[str, str]) -> Grid:
    """Read `KEY=[v1, v2, ...]` with the spec's own expression syntax. Raises SweepUsage, or SpecError
    (a syntax error, located in `<--grid KEY>`, whose text is added to `sources`)."""
    key, value = split_setting(arg, "--grid", "data.batch=[32,64]")
    origin = f"<--grid {key}>"
    sources[origin] = value
    expr = parse_expr(value, origin)
    if not isinstance(expr, ir.ListExpr):
        raise SweepUsage(f"--grid {key} takes a list of values, like --grid {key}=[a,b]; got {value!r} "
                         f"(to fix one value for every trial, use --set)")
    if not expr.items:
        raise SweepUsage(f"--grid {key}=[] is empty: give at least one value")
    return Grid(key=key, values=tuple(source_of(item, value) for item in expr.items))


def _uniform(rng: random.Random, low: float, high: float) -> float:
    return rng.uniform(low, high)


def _loguniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _int(rng: random.Random, low: int, high: int) -> int:
    return rng.randint(low, high)


# name -> (draw, what it needs of its bounds, what it means). `choice` takes any values and is handled apart.
DISTRIBUTIONS: dict[str, tuple[Callable, Callable[[float, float], bool], str]] = {
    "uniform": (_uniform, lambda lo, hi: lo < hi, "low < high"),
    "loguniform": (_loguniform, lambda lo, hi: 0 < lo < hi, "0 < low < high"),
    "int": (_int, lambda lo, hi: lo == int(lo) and hi == int(hi) and lo <= hi, "whole numbers, low <= high"),
}
RANGE_KINDS = (*DISTRIBUTIONS, "choice")


@dataclass(frozen=True)
class Range:
    """`--range optimizer.lr=loguniform(1e-4, 1e-2)`: a value drawn for each trial of a random sweep."""

    key: str
    kind: str  # uniform | loguniform | int | choice
    text: str  # as written
    low: float = 0.0
    high: float = 0.0
    unit: str | None = None  # `int(2 epochs, 6 epochs)` draws quantities
    choices: tuple[str, ...] = ()

    def draw(self, rng: random.Random) -> str:
        """One value, as spec text."""
        if self.kind == "choice":
            return self.choices[rng.randrange(len(self.choices))]
        fn = DISTRIBUTIONS[self.kind][0]
        v = fn(rng, int(self.low), int(self.high)) if self.kind == "int" else fn(rng, self.low, self.high)
        text = str(v) if isinstance(v, int) else f"{v:.4g}"
        return f"{text} {self.unit}" if self.unit else text


def _bound(expr: ir.Expr) -> tuple[float, str | None] | None:
    if isinstance(expr, ir.Number):
        return expr.value, None
    if isinstance(expr, ir.Neg) and isinstance(expr.operand, ir.Number):
        return -expr.operand.value, None
    if isinstance(expr, ir.Quantity) and expr.unit != "%":
        return expr.value, expr.unit
    return None


def parse_range(arg: str, sources: dict[str, str]) -> Range:
    """Read `KEY=uniform(a, b)`, `loguniform(a, b)`, `int(a, b)` or `choice(v1, v2, ...)`."""
    key, value = split_setting(arg, "--range", "optimizer.lr=\"loguniform(1e-4, 1e-2)\"")
    origin = f"<--range {key}>"
    sources[origin] = value
    expr = parse_expr(value, origin)
    kinds = ", ".join(f"{k}(...)" for k in RANGE_KINDS)
    if not isinstance(expr, ir.Call) or expr.name.dotted not in RANGE_KINDS:
        raise SweepUsage(f"--range {key}: {value!r} is not a distribution; write one of {kinds}")
    kind = expr.name.dotted
    if expr.kwargs:
        raise SweepUsage(f"--range {key}: {kind}(...) takes its values by position, like {kind}(a, b)")
    if kind == "choice":
        if not expr.args:
            raise SweepUsage(f"--range {key}: choice() is empty: give at least one value")
        return Range(key=key, kind=kind, text=value, choices=tuple(source_of(a, value) for a in expr.args))
    bounds = [_bound(a) for a in expr.args]
    if len(bounds) != 2 or None in bounds:
        raise SweepUsage(f"--range {key}: {kind} takes two numbers, {kind}(low, high); got {value!r}")
    (low, unit), (high, unit2) = bounds
    if unit != unit2:
        raise SweepUsage(f"--range {key}: both bounds need the same unit; got {value!r}")
    _, ok, needs = DISTRIBUTIONS[kind]
    if not ok(low, high):
        raise SweepUsage(f"--range {key}: {kind} needs {needs}; got {value!r}")
    return Range(key=key, kind=kind, text=value, low=low, high=high, unit=unit)


def plan(grids: list[Grid], ranges: list[Range], random_n: int | None, seed: int = 0,
         fixed: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The overrides of every trial, {key: spec text}, in trial order.

    Without `random_n`: every combination of the grids (the last grid varies fastest). With it:
    `random_n` independent draws, each key drawn from its range, or uniformly from its grid list."""
    keys = [g.key for g in grids] + [r.key for r in ranges]
    fixed_keys = {s.split("=", 1)[0].strip() for s in fixed}
    for i, k in enumerate(keys):
        if k in keys[:i]:
            raise SweepUsage(f"{k} is swept twice; give it one --grid or --range")
        if k in fixed_keys:
            raise SweepUsage(f"{k} is both swept and fixed with --set; drop one")
    if not keys:
        raise SweepUsage("nothing to sweep: give --grid KEY=[v1,v2,...], or --random N with --range KEY=DIST")
    if random_n is None:
        if ranges:
            raise SweepUsage("--range draws values for a random sweep: add --random N (the number of trials)")
        return [dict(zip(keys, combo)) for combo in product(*(g.values for g in grids))]
    if random_n < 1:
        raise SweepUsage(f"--random takes a number of trials >= 1, got {random_n}")
    rng = random.Random(seed)
    draws = []
    for _ in range(random_n):  # one trial after another, keys in command-line order: reproducible per seed
        trial = {g.key: g.values[rng.randrange(len(g.values))] for g in grids}
        trial.update({r.key: r.draw(rng) for r in ranges})
        draws.append(trial)
    return draws


def as_sets(overrides: dict[str, str]) -> list[str]:
    """{key: value} -> ["key=value", ...], the form `--set` takes."""
    return [f"{k}={v}" for k, v in overrides.items()]


@dataclass(frozen=True)
class Monitor:
    """What a sweep ranks by, and how a run's summary.json judged its own `best` epoch."""

    metric: str
    mode: str  # min | max
    judged_by: str  # summary.json's `best` is the best epoch by this metric


def monitor(spec: ir.Spec) -> Monitor:
    """The early-stopping monitor, else the checkpoint's `keep`, else val.loss (min)."""
    early, keep = spec.stop.early, spec.checkpoint.keep if spec.checkpoint else None
    judged_by = str(early.monitor) if early else "val.loss"  # as runtime/loop.py picks `best`
    if early is not None:
        return Monitor(str(early.monitor), early.mode, judged_by)
    if keep is not None:
        return Monitor(str(keep), mode_of(keep), judged_by)
    return Monitor("val.loss", "min", judged_by)


# ---------------------------------------------------------------------------------------------
# Running: one `trainc run` process per trial, `jobs` at a time
# ---------------------------------------------------------------------------------------------


@dataclass
class Trial:
    index: int
    overrides: dict[str, str]
    dir: Path
    status: str = "not run"  # ok | failed | diverged | interrupted | not run
    exit_code: int | None = None
    value: float | None = None  # the monitored metric at its best epoch
    row: dict | None = None  # that epoch's metrics.jsonl record
    epochs: int | None = None
    stop_reason: str | None = None
    seconds: float | None = None
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.dir.name


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def best_of(run_dir: Path, mon: Monitor) -> tuple[float | None, dict | None]:
    """The best value of the monitored metric in a finished run, and its epoch's record.

    summary.json's `best` when the run judged it by the same metric; otherwise (a checkpoint `keep`)
    the best epoch of metrics.jsonl, diverged epochs left out."""
    metric = mon.metric
    summary = read_summary(run_dir / "summary.json", run_dir)
    if "mean" in summary:  # k-fold cross-validation: the folds' mean final value
        v = summary["mean"].get(metric)
        return (v if _finite(v) else None), {k: summary["mean"][k] for k in summary["mean"]}
    if metric == mon.judged_by:
        row = summary.get("best")
        v = row.get(metric) if row else None
        return (v if _finite(v) else None), row
    best, best_row = None, None
    for row in read_metrics(run_dir / "metrics.jsonl", run_dir):
        v = row.get(metric)
        if "diverged" in row or not _finite(v):
            continue
        if best is None or (v < best if mon.mode == "min" else v > best):
            best, best_row = v, row
    return best, best_row


def _collect(trial: Trial, mon: Monitor) -> None:
    """Fill in a finished trial from its exit code and its run directory."""
    trial.stderr_tail = _tail(trial.dir / "stderr.txt", trial.dir)
    try:
        summary = read_summary(trial.dir / "summary.json", trial.dir)
        if trial.exit_code in (0, 130) and summary:  # 130: interrupted, its summary written
            trial.value, trial.row = best_of(trial.dir, mon)
    except rundir.RunDirError as e:
        summary = {}
        trial.stderr_tail.append(str(e))
    if trial.exit_code not in (0, 130) or not summary:
        if trial.status != "interrupted":
            trial.status = "failed"
        return
    trial.epochs = summary.get("epochs")
    trial.stop_reason = summary.get("stop_reason")
    reason = trial.stop_reason or ""
    trial.status = "interrupted" if reason == "interrupted" else "diverged" if reason.startswith("diverged") else "ok"


def _tail(path: Path, root: Path, lines: int = 8) -> list[str]:
    """The last non-blank lines of a trial's stderr.txt (its last 64 KB), [] when there is none."""
    try:
        with rundir.open_file(path, None, root) as (f, size):
            f.seek(max(0, size - 65536))
            text = f.read(65536).decode("utf-8", "replace")
    except rundir.RunDirError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-lines:]


def trial_command(spec_path: str, trial: Trial, fixed: tuple[str, ...], force: bool = False) -> list[str]:
    """The `trainc run` command line of one trial (the console script next to this Python, else -m trainc)."""
    exe = Path(sys.executable).with_name("trainc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainc"]
    cmd += ["run", spec_path, "-q", "--out", str(trial.dir), *(["--force"] if force else [])]
    for s in (*fixed, *as_sets(trial.overrides)):
        cmd += ["--set", s]
    return cmd


def run_trials(spec_path: str, trials: list[Trial], fixed: tuple[str, ...], jobs: int, mon: Monitor,
               say: Callable[[str], None] = print, force: bool = False) -> bool:
    """Run every trial, `jobs` at a time; `say` one line per finished trial. Returns False when
    interrupted (Ctrl-C or SIGTERM): running trials are stopped, the rest stay `not run`. A failed trial
    never stops the others."""
    env = dict(os.environ)
    if jobs > 1:  # the trials share the cores: no thread pool in a trial may take them all
        threads = str(max(1, (os.cpu_count() or 1) // jobs))
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    pending = list(trials)
    running: dict[subprocess.Popen, tuple[Trial, float]] = {}
    done = 0

    def finish(proc: subprocess.Popen, trial: Trial, t0: float) -> None:
        trial.exit_code = proc.returncode
        trial.seconds = round(time.monotonic() - t0, 3)
        _collect(trial, mon)

    def report(trial: Trial) -> None:
        nonlocal done
        done += 1
        what = f"{mon.metric} {trial.value:.4f}" if trial.value is not None else f"{mon.metric} -"
        say(f"[{done}/{len(trials)}] {trial.name}  {'  '.join(as_sets(trial.overrides))}  {what}  "
            f"{trial.seconds:.1f}s  {trial.status}")
        if trial.status == "failed":
            say(f"  exit code {trial.exit_code}; last lines of {trial.dir / 'stderr.txt'}:")
            for line in trial.stderr_tail:
                say(f"  | {line}")

    def interrupt(*_):
        raise KeyboardInterrupt

    # The trials run in their own sessions, so that a Ctrl-C reaches only the sweep, which then stops
    # each of them once (a second SIGINT would cut a run short before it writes its summary).
    # SIGTERM stops the sweep the same way, rather than leaving its trials running.
    old_term = signal.signal(signal.SIGTERM, interrupt) if _main_thread() else None
    try:
        while pending or running:
            while pending and len(running) < jobs:
                trial = pending.pop(0)
                rundir.make_dirs(trial.dir, trial.dir.parent)
                with rundir.open_new(trial.dir / "stdout.txt", trial.dir.parent) as out, \
                        rundir.open_new(trial.dir / "stderr.txt", trial.dir.parent) as err:
                    proc = subprocess.Popen(trial_command(spec_path, trial, fixed, force), stdin=subprocess.DEVNULL,
                                            stdout=out, stderr=err, env=env, start_new_session=True)
                running[proc] = (trial, time.monotonic())
            for proc in [p for p in running if p.poll() is not None]:
                trial, t0 = running.pop(proc)
                finish(proc, trial, t0)
                report(trial)
            time.sleep(0.05)
        return True
    except KeyboardInterrupt:
        for proc in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # a run stops after its step, checkpoints and writes its summary
        deadline = time.monotonic() + 10
        for proc, (trial, t0) in running.items():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            trial.status = "interrupted"
            finish(proc, trial, t0)  # `ok` when it had finished before the signal came
        return False
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------------------------------------
# The result: a ranked table, sweep.json and sweep.csv
# ---------------------------------------------------------------------------------------------


def rank(trials: list[Trial], mode: str) -> list[Trial]:
    """Best first: finished trials by their value (`mode` min or max), then unfinished ones with a value,
    then those without one (failed, diverged, not run); ties keep trial order."""
    def key(t: Trial):
        missing = t.value is None
        signed = 0.0 if missing else t.value if mode == "min" else -t.value
        return (missing, t.status != "ok", signed, t.index)

    return sorted(trials, key=key)


def _columns(ranked: list[Trial], keys: list[str], metric: str) -> tuple[list[str], list[list]]:
    head = ["rank", "trial", *keys, metric] + (["val.loss"] if metric != "val.loss" else []) + \
        ["epochs", "time_s", "status"]
    rows = []
    for i, t in enumerate(ranked, 1):
        loss = [t.row.get("val.loss") if t.row else None] if metric != "val.loss" else []
        rows.append([i, t.name, *(t.overrides.get(k) for k in keys), t.value, *loss, t.epochs, t.seconds, t.status])
    return head, rows


def table(ranked: list[Trial], keys: list[str], metric: str, mode: str) -> str:
    """The ranked trials as aligned text columns."""
    head, rows = _columns(ranked, keys, metric)
    head[head.index(metric)] = f"{metric} ({mode})"
    head[head.index("time_s")] = "time"

    def cell(v, col: str) -> str:
        if v is None:
            return "-"
        if col == "time":
            return f"{v:.1f}s"
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    cells = [[cell(v, c) for v, c in zip(row, head)] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(head)]
    numeric = {"rank", "epochs", "time", head[head.index(f"{metric} ({mode})")], "val.loss"}
    lines = []
    for r in [head, *cells]:
        lines.append("  ".join(c.rjust(w) if h in numeric else c.ljust(w)
                               for c, w, h in zip(r, widths, head)).rstrip())
    return "\n".join(lines)


def save(out_dir: Path, ranked: list[Trial], keys: list[str], metric: str, mode: str, info: dict) -> None:
    """SWEEP_DIR/sweep.json (every trial: overrides, result, rank; the metric and mode) and sweep.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    trials = sorted(ranked, key=lambda t: t.index)
    ranks = {t.name: i for i, t in enumerate(ranked, 1)}
    doc = {
        **info,
        "metric": metric,
        "mode": mode,
        "keys": keys,
        "ranking": [t.name for t in ranked],
        "trials": [{
            "trial": t.name,
            "rank": ranks[t.name],
            "dir": str(t.dir),
            "overrides": t.overrides,
            "status": t.status,
            "exit_code": t.exit_code,
            "value": t.value,
            "best": t.row,
            "epochs": t.epochs,
            "stop_reason": t.stop_reason,
            "time_s": t.seconds,
        } for t in trials],
    }
    rundir.write_bytes(out_dir / "sweep.json", (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode(), out_dir)
    head, rows = _columns(ranked, keys, metric)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(head)
    w.writerows([["" if v is None else v for v in row] for row in rows])
    rundir.write_bytes(out_dir / "sweep.csv", buf.getvalue().encode(), out_dir)
