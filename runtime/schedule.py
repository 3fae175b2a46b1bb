"""Learning-rate schedules as pure functions of the step: lr(step) for a checked spec.

A schedule is phases joined by `then`; each phase sees its own progress (steps since it began)
and its own length. Lengths in epochs or fractions of the run become steps here, once the
number of steps per epoch is known. Pure Python: `trainc schedule` previews it without tinygrad.

Step `s` is the number of optimizer steps already taken in the phase (0 for its first step), `n`
its length in steps. Where PyTorch has the schedule, lr(s) is the lr PyTorch's scheduler gives
after `s` calls of `scheduler.step()`, stepped once per optimizer step. The one schedule that is not
a function of the step alone is `plateau`: the loop reports every epoch's metrics through
`LrSchedule.observe`, which counts bad epochs and reduces the lr.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field, replace

from ..compiler import catalog as C
from ..compiler import ir


@C.SCHEDULES.implement("warmup")
def _warmup(base, s, n, start):
    # (s + 1) / n: the first step already trains; the phase's last step reaches the full lr
    return base * (start + (1.0 - start) * min(1.0, (s + 1) / n))


@C.SCHEDULES.implement("step")
def _step(base, s, n, every, gamma):
    return base * gamma ** (s // every)


@C.SCHEDULES.implement("multistep")
def _multistep(base, s, n, milestones, gamma):
    """base · gamma^(number of milestones <= s); `milestones` in steps, sorted (repeats count twice, as in torch)."""
    return base * gamma ** bisect.bisect_right(milestones, s)


@C.SCHEDULES.implement("exponential")
def _exponential(base, s, n, gamma, per_epoch):
    """base · gamma^(s / steps_per_epoch): at every epoch's first step, torch's ExponentialLR stepped per epoch."""
    return base * gamma ** (s / per_epoch)


@C.SCHEDULES.implement("cosine")
def _cosine(base, s, n, to):
    return to + (base - to) * 0.5 * (1.0 + math.cos(math.pi * min(s, n) / n))


@C.SCHEDULES.implement("cosine_restarts")
def _cosine_restarts(base, s, n, period, mult, to):
    """to + (base - to)·(1 + cos(pi·t/T))/2, t = steps into the current cycle of T = period·mult^i steps."""
    t, length = s, period
    if mult == 1:
        t %= period
    else:
        while t >= length:  # exact in integers; cycles grow geometrically, so this loops O(log s) times
            t -= length
            length *= mult
    return to + (base - to) * 0.5 * (1.0 + math.cos(math.pi * t / length))


@C.SCHEDULES.implement("cyclic")
def _cyclic(base, s, n, low, high, period):
    """low + (high - low)·(1 - |2·frac(s / period) - 1|): torch's CyclicLR(mode="triangular",
    step_size_up = step_size_down = period / 2). The optimizer's lr (`base`) is not used."""
    x = s / period - math.floor(s / period)  # position in the cycle, [0, 1)
    scale = x / 0.5 if x <= 0.5 else (x - 1.0) / (0.5 - 1.0)  # torch's form: up for half, down for half
    return low + (high - low) * scale


@C.SCHEDULES.implement("one_cycle")
def _one_cycle(base, s, n, max_lr, pct_start, div_factor, final_div_factor):
    """torch's OneCycleLR(total_steps = n, anneal_strategy="cos", three_phase=False): from
    initial = max_lr/div_factor up to max_lr until step pct_start·n - 1, then down to
    initial/final_div_factor at step n - 1, each part a half cosine. `base` is not used."""
    initial = max_lr / div_factor
    phases = ((float(pct_start * n) - 1.0, initial, max_lr), (float(n - 1), max_lr, initial / final_div_factor))
    begin = 0.0
    for i, (end, start_lr, end_lr) in enumerate(phases):
        if s <= end or i == len(phases) - 1:
            # torch divides by zero when pct_start·n = 1 (or n = 1): that part is then one point, its end
            pct = (s - begin) / (end - begin) if end != begin else 1.0
            return end_lr + (start_lr - end_lr) / 2.0 * (math.cos(math.pi * pct) + 1.0)
        begin = end
    raise AssertionError("unreachable")


@C.SCHEDULES.implement("polynomial")
def _polynomial(base, s, n, power, to):
    """to + (base - to)·(1 - s/n)^power: torch's PolynomialLR(total_iters = n) when to = 0."""
    return to + (base - to) * (1.0 - min(s, n) / n) ** power


@C.SCHEDULES.implement("plateau")
def _plateau(base, s, n, factor, min_lr, reductions=0, **_):
    """base · factor^k after k reductions, never reduced below min_lr (the lr is flat between reductions)."""
    return base if reductions == 0 else max(base * factor ** reductions, min_lr)


C.SCHEDULES.implement("constant")(lambda base, s, n: base)
# (base lr, step within phase, phase length in steps, **args) -> lr: the registry's own table
PHASE_LR = C.SCHEDULES.table()

PLATEAU_EPS = 1e-8  # torch's `eps`: a reduction smaller than this is ignored


def to_steps(d: ir.Duration, steps_per_epoch: int, total_steps: int) -> int:
    if d.unit == ir.Unit.steps:
        return int(d.value)
    if d.unit == ir.Unit.epochs:
        return int(d.value) * steps_per_epoch
    return max(1, round(d.value * total_steps))  # fraction of the run


def mode_of(metric: str) -> str:
    """min for losses and errors, max for scores (accuracy, f1, ...): as early stopping decides."""
    entry = C.METRICS.get(metric)
    return entry.extra.get("mode", "min") if entry else "min"


@dataclass
class Plateau:
    """The run-time state of one `plateau` phase: torch's ReduceLROnPlateau with threshold_mode="abs",
    cooldown 0. An epoch improves when its value < best - min_delta (max: > best + min_delta); after
    more than `patience` epochs without one the lr is multiplied by `factor` (never below `min_lr`)
    and the count starts again. NaN or a missing value never improves."""

    monitor: str
    factor: float
    patience: int
    min_lr: float
    min_delta: float
    mode: str  # min or max
    best: float | None = None
    bad_epochs: int = 0
    reductions: int = 0

    def improved(self, value: float) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta

    def observe(self, value, base: float) -> str | None:
        if self.improved(value):
            self.best, self.bad_epochs = value, 0
            return None
        self.bad_epochs += 1
        if self.bad_epochs <= self.patience:
            return None
        bad, self.bad_epochs = self.bad_epochs, 0
        old = _plateau(base, 0, 1, self.factor, self.min_lr, self.reductions)
        new = _plateau(base, 0, 1, self.factor, self.min_lr, self.reductions + 1)
        if old - new <= PLATEAU_EPS:  # at min_lr already
            return None
        self.reductions += 1
        by = f" by {self.min_delta:g}" if self.min_delta else ""
        floor = " (min_lr)" if new == self.min_lr else ""
        return f"plateau: {self.monitor} did not improve{by} for {bad} epochs, lr x{self.factor:g} -> {new:.2e}{floor}"


@dataclass
class Phase:
    """One phase of a schedule, in steps: it covers steps [begin, begin + n)."""

    kind: str
    begin: int
    n: int
    args: dict = field(default_factory=dict)
    plateau: Plateau | None = None

    @property
    def end(self) -> int:
        return self.begin + self.n


class LrSchedule:
    """lr(step) for step = 0, 1, ... (the number of optimizer steps already taken)."""

    def __init__(self, schedule: ir.Schedule, base_lr: float, steps_per_epoch: int, total_steps: int):
        self.base = base_lr
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = total_steps
        self.phases: list[Phase] = []
        begin = 0

        def steps(d: ir.Duration) -> int:
            return to_steps(d, steps_per_epoch, total_steps)

        for ph in schedule.phases:
            n = steps(ph.length) if ph.length else max(1, total_steps - begin)
            args = dict(ph.args)
            plateau = None
            if ph.kind == "step":
                args["every"] = steps(args["every"])
            elif ph.kind == "multistep":
                args["milestones"] = sorted(steps(m) for m in args["milestones"])
            elif ph.kind == "exponential":
                args["per_epoch"] = steps_per_epoch
            elif ph.kind in ("cosine_restarts", "cyclic"):
                args["period"] = steps(args["period"])
            elif ph.kind == "plateau":
                monitor = str(args.pop("monitor"))
                mode = args.pop("mode", "auto")
                mode = mode_of(monitor.split(".", 1)[-1]) if mode == "auto" else mode
                plateau = Plateau(monitor=monitor, factor=args["factor"], patience=args.pop("patience"),
                                  min_lr=args["min_lr"], min_delta=args.pop("min_delta"), mode=mode)
            self.phases.append(Phase(ph.kind, begin, n, args, plateau))
            begin += n

    def phase_at(self, step: int) -> Phase:
        """The phase that sets the lr of `step` (the last one past the end)."""
        for ph in reversed(self.phases):
            if step >= ph.begin:
                return ph
        return self.phases[0]

    def __call__(self, step: int) -> float:
        ph = self.phase_at(step)
        if step < ph.begin:
            return self.base
        args = ph.args if ph.plateau is None else {**ph.args, "reductions": ph.plateau.reductions}
        # past its end, the last phase holds the lr of its last step
        return float(C.SCHEDULES.impl(ph.kind)(self.base, min(step - ph.begin, ph.n - 1), ph.n, **args))

    def observe(self, row: dict) -> str | None:
        """Report an epoch's metrics row (`step`, `val.loss`, ...), after the epoch. A `plateau` phase
        in effect at the epoch's last step counts it; returns a message when it reduced the lr."""
        if "step" not in row:
            raise ValueError("LrSchedule.observe needs the row's 'step' (optimizer steps taken so far)")
        ph = self.phase_at(max(int(row["step"]) - 1, 0))
        if ph.plateau is None:
            return None
        value = row.get(ph.plateau.monitor)
        return ph.plateau.observe(None if value is None else float(value), self.base)

    def state(self) -> list:
        """A copy of the run-time state (the plateau counters), for a snapshot the loop may roll back to."""
        return [replace(ph.plateau) if ph.plateau else None for ph in self.phases]

    def restore(self, state: list) -> None:
        """Go back to a `state()`: e.g. after a divergence roll-back, forget the epochs that were undone."""
        for ph, p in zip(self.phases, state):
            ph.plateau = replace(p) if p else None

    @property
    def adaptive(self) -> bool:
        """True when the lr also depends on the metrics (a `plateau` phase): call `observe` every epoch."""
        return any(ph.plateau is not None for ph in self.phases)


def epoch_steps(spec: ir.Spec, n_train: int) -> int:
    """Optimizer steps in one epoch, as the loop counts them: the last partial step is dropped.

    `n_train` is the number of examples an epoch draws (see loop.epoch_order: with `sampler =
    oversample` that is classes x the largest class)."""
    return n_train // (spec.data.batch * spec.regularization.accumulate)


def run_steps(spec: ir.Spec, steps_per_epoch: int) -> int:
    """The run's length in steps, from stop.max (the loop's rule)."""
    mx = spec.stop.max
    return int(mx.value) * steps_per_epoch if mx.unit == ir.Unit.epochs else int(mx.value)
