"""A spec's learning-rate schedule before running it: every step's lr, a terminal table, a PNG plot.

Pure Python (matplotlib only for `plot`, imported there): `trainc schedule` uses it without
tinygrad. The run's length comes from `stop.max`; `steps_per_epoch` from the data
(`schedule.epoch_steps(spec, n_train)`, as the loop computes it). A `plateau` phase depends on metrics
that only exist at run time: the preview shows it flat at its starting lr, and says so.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from ..compiler import ir
from .schedule import LrSchedule, run_steps

BAR = 24  # width of the table's bar at the run's highest lr


def lr_schedule(spec: ir.Spec, steps_per_epoch: int) -> LrSchedule:
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    base = float(dict(spec.optimizer.args)["lr"])
    return LrSchedule(spec.schedule, base, steps_per_epoch, run_steps(spec, steps_per_epoch))


def curve(spec: ir.Spec, steps_per_epoch: int) -> list[float]:
    """The lr of every step of the run: [lr(0), ..., lr(total - 1)]."""
    sched = lr_schedule(spec, steps_per_epoch)
    return [sched(s) for s in range(sched.total_steps)]


def _value(v) -> str:
    if isinstance(v, ir.Duration):
        if v.unit == ir.Unit.fraction:
            return f"{v.value * 100:g}%"
        return f"{v.value:g} {v.unit.value if v.value != 1 else v.unit.value[:-1]}"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return str(v)


def describe(schedule: ir.Schedule) -> str:
    """The schedule as written, with every argument: `warmup(length = 10 steps, start = 0) then cosine(to = 1e-05)`."""
    parts = []
    for ph in schedule.phases:
        args = [f"{k} = {_value(v)}" for k, v in ph.args]
        if ph.length is not None:
            args.insert(0 if ph.kind == "warmup" else len(args), f"length = {_value(ph.length)}")
        parts.append(f"{ph.kind}({', '.join(args)})")
    return " then ".join(parts)


def _jumps(ph) -> list[int]:
    """Steps inside a phase where its lr jumps: the restarts of cosine_restarts, the milestones of multistep
    and step. Past the phase's end the lr is held, so none there."""
    a, marks = ph.args, []
    if ph.kind == "cosine_restarts":
        s, length = a["period"], a["period"]
        while s < ph.n:
            marks.append(s)
            length *= a.get("mult", 1)
            s += length
    elif ph.kind == "multistep":
        marks = sorted(set(a["milestones"]))
    elif ph.kind == "step":
        marks = list(range(a["every"], ph.n, a["every"]))
    return [ph.begin + m for m in marks if 0 < m < ph.n]


def _plateau_note(sched: LrSchedule) -> list[str]:
    notes = []
    for ph in sched.phases:
        p = ph.plateau
        if p is not None:
            notes.append(f"plateau: shown flat; at run time the lr is multiplied by {p.factor:g} whenever {p.monitor} "
                         f"({p.mode}) has not improved for more than {p.patience} epochs (never below "
                         f"{p.min_lr:g})")
    return notes


def table(spec: ir.Spec, steps_per_epoch: int, rows: int = 20) -> str:
    """A terminal table of the schedule: step, epoch, lr, phase and a bar, at `rows` evenly spaced steps plus
    the first and last step of every phase. `step` counts steps already taken (0 is the first);
    `epoch` is the 1-based epoch the step belongs to."""
    sched = lr_schedule(spec, steps_per_epoch)
    total = sched.total_steps
    lrs = curve(spec, steps_per_epoch)
    picked = {0, total - 1}
    if rows > 1:
        picked |= {round(i * (total - 1) / (rows - 1)) for i in range(rows)}
    for ph in sched.phases:
        picked |= {s for s in (ph.begin, ph.end - 1) if 0 <= s < total}
        jumps = [j for j in _jumps(ph) if j < total]
        if len(jumps) <= rows:  # where the lr jumps inside a phase: restarts, milestones (when they are few)
            picked |= {s for j in jumps for s in (j - 1, j)}
    starts = {ph.begin: ph for ph in sched.phases}
    top = max(lrs) if lrs else 0.0
    w_step = max(4, len(str(total - 1)))
    w_epoch = max(5, len(str(math.ceil(total / steps_per_epoch))))
    w_phase = max(5, *(len(ph.kind) + (ph.plateau is not None) for ph in sched.phases))
    epochs = total / steps_per_epoch
    lines = [
        f"{spec.path}: {describe(spec.schedule)}",
        f"base lr {sched.base:g}, {total} steps = {epochs:g} epochs of {steps_per_epoch} steps",
        f"{'step':>{w_step}}  {'epoch':>{w_epoch}}  {'lr':<9}    {'phase':<{w_phase}}  lr / max",
    ]
    for s in sorted(picked):
        lr = lrs[s]
        ph = sched.phase_at(s)
        k = round(BAR * lr / top) if top > 0 else 0
        bar = "#" * k if k or lr <= 0 else "."
        start = ">" if s in starts and s > 0 else " "  # a phase begins at this step
        name = ph.kind + ("*" if ph.plateau is not None else "")
        lines.append(f"{s:>{w_step}}  {s // steps_per_epoch + 1:>{w_epoch}}  {lr:.3e}  {start} "
                     f"{name:<{w_phase}}  |{bar}")
    if len(sched.phases) > 1:
        lines.append("  > a phase begins")
    for ph in sched.phases:
        if ph.begin < total:
            last = min(ph.end, total) - 1
            e0, e1 = ph.begin // steps_per_epoch + 1, last // steps_per_epoch + 1
            epochs_ = f"epoch {e0}" if e0 == e1 else f"epochs {e0}-{e1}"
            lines.append(f"  {ph.kind}: steps {ph.begin}-{last} ({epochs_})")
        else:
            lines.append(f"  {ph.kind}: starts at step {ph.begin}, after the run ends ({total} steps)")
    if sched.phases[-1].end < total:
        lines.append(f"  the lr of step {sched.phases[-1].end - 1} is held to the end of the run")
    lines += [f"  * {note}" for note in _plateau_note(sched)]
    return "\n".join(lines) + "\n"


def plot(spec: ir.Spec, steps_per_epoch: int, path) -> None:
    """Write a PNG of the schedule: lr against steps (epochs on the top axis), a dashed line where each phase
    begins, the spec's path in the title."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter, MaxNLocator
    except ImportError as e:
        raise ImportError("plotting a schedule needs matplotlib: pip install matplotlib "
                          "(the table needs nothing)") from e
    sched = lr_schedule(spec, steps_per_epoch)
    lrs = curve(spec, steps_per_epoch)
    steps = len(lrs)
    fig = Figure(figsize=(9, 4.8), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(range(len(lrs)), lrs, lw=1.5, color="C0", label="lr")
    ax.set_xlim(0, max(len(lrs) - 1, 1))
    ax.set_ylim(bottom=0)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(alpha=0.3)
    for i, ph in enumerate(sched.phases):
        if ph.begin >= len(lrs):
            continue
        if i > 0:
            ax.axvline(ph.begin, color="0.4", ls="--", lw=1)
        label = ph.kind + (" (reduces on " + ph.plateau.monitor + " at run time)" if ph.plateau else "")
        ax.annotate(label, xy=(ph.begin, 0.0), xycoords=("data", "axes fraction"), xytext=(3, 4),
                    textcoords="offset points", fontsize=8, color="0.3")
    spe = steps_per_epoch
    top = ax.secondary_xaxis("top", functions=(lambda s: s / spe, lambda e: e * spe))
    top.set_xlabel("epoch")
    top.xaxis.set_major_locator(MaxNLocator(integer=True))
    what = textwrap.fill(describe(spec.schedule), 110)
    fig.suptitle(f"{spec.path}: {steps} steps, {steps_per_epoch} per epoch\n{what}", fontsize=9)
    fig.savefig(Path(path), format="png")
