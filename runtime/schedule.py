"""Learning-rate schedules as pure functions of the step: lr(step) for a checked spec.

A schedule is phases joined by `then`; each phase sees its own progress (steps since it began)
and its own length. Lengths in epochs or fractions of the run become steps here, once the
number of steps per epoch is known. Pure Python: `trainc schedule` previews it without tinygrad.
"""

from __future__ import annotations

import math

from ..compiler import ir


def _warmup(base, s, n, start=0.0):
    # (s + 1) / n: the first step already trains; the phase's last step reaches the full lr
    return base * (start + (1.0 - start) * min(1.0, (s + 1) / n))


def _step(base, s, n, every, gamma):
    return base * gamma ** (s // every)


def _cosine(base, s, n, to=0.0):
    return to + (base - to) * 0.5 * (1.0 + math.cos(math.pi * min(s, n) / n))


PHASE_LR = {  # (base lr, step within phase, phase length in steps, **args) -> lr
    "constant": lambda base, s, n: base,
    "warmup": _warmup,
    "step": _step,
    "cosine": _cosine,
}


def to_steps(d: ir.Duration, steps_per_epoch: int, total_steps: int) -> int:
    if d.unit == ir.Unit.steps:
        return int(d.value)
    if d.unit == ir.Unit.epochs:
        return int(d.value) * steps_per_epoch
    return max(1, round(d.value * total_steps))  # fraction of the run


class LrSchedule:
    """lr(step) for step = 0, 1, ... (the number of optimizer steps already taken)."""

    def __init__(self, schedule: ir.Schedule, base_lr: float, steps_per_epoch: int, total_steps: int):
        self.base = base_lr
        self.phases = []
        begin = 0
        for ph in schedule.phases:
            n = to_steps(ph.length, steps_per_epoch, total_steps) if ph.length else max(1, total_steps - begin)
            args = dict(ph.args)
            if ph.kind == "step":
                args["every"] = to_steps(args["every"], steps_per_epoch, total_steps)
            self.phases.append((begin, n, PHASE_LR[ph.kind], args))
            begin += n

    def __call__(self, step: int) -> float:
        for begin, n, fn, args in reversed(self.phases):
            if step >= begin:
                # past its end, the last phase holds the lr of its last step
                return float(fn(self.base, min(step - begin, n - 1), n, **args))
        return self.base
