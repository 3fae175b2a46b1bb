"""Learning-rate schedules (`runtime/schedule.py`), their schema (`compiler/catalog/schedules.py`) and
the preview (`runtime/preview.py`).

Every schedule is checked against an independent numpy implementation of its formula (specs/README.md
and the catalogue's docstrings) at its boundaries: the first and last step of each phase, the first
step of the next phase and past the end of the run. Where PyTorch has the schedule and torch is
installed (`.venv/bin/pip install torch`), the whole curve is also checked against torch's scheduler
stepped once per optimizer step. `plateau` is driven through `LrSchedule.observe` with metric rows,
and against torch's ReduceLROnPlateau on the same sequence of values.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from trainc.compiler import analyze, ir, lint
from trainc.runtime import preview
from trainc.runtime.schedule import LrSchedule, epoch_steps

from helpers import SCHEDULE_SPEC

ROOT = Path(__file__).parents[1]
NEW_SPECS = ["one_cycle_digits.train", "cosine_restarts_digits.train", "plateau_diabetes.train"]



def spec_of(schedule: str, lr: float = 0.1, max_: str = "10 epochs", path: str = "sched.train") -> ir.Spec:
    return analyze(SCHEDULE_SPEC.format(lr=lr, schedule=f"schedule = {schedule}" if schedule else "", max=max_), path)


def sched(schedule: str, steps_per_epoch: int, total_steps: int, lr: float = 0.1) -> LrSchedule:
    spec = spec_of(schedule, lr)
    return LrSchedule(spec.schedule, float(dict(spec.optimizer.args)["lr"]), steps_per_epoch, total_steps)


def curve_of(s: LrSchedule, steps) -> np.ndarray:
    return np.array([s(int(i)) for i in steps])


def torch_lrs(make, steps: int, base: float = 0.1) -> list[float]:
    """The lr torch's scheduler sets before each of `steps` optimizer steps, stepped once per step."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base, momentum=0.9)
    scheduler = make(torch.optim.lr_scheduler, opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


# ---------------------------------------------------------------------------------------------
# Independent references: the formulas, vectorised over steps s of a phase of n steps
# ---------------------------------------------------------------------------------------------


def ref_exponential(base, s, gamma, spe):
    return base * gamma ** (np.asarray(s, float) / spe)


def ref_multistep(base, s, milestones, gamma):
    s = np.asarray(s)
    return base * gamma ** (s[:, None] >= np.asarray(milestones)[None, :]).sum(1)


def ref_cosine_restarts(base, s, period, mult, to):
    # torch's closed form for a given epoch (CosineAnnealingWarmRestarts.step(epoch))
    s = np.asarray(s, float)
    if mult == 1:
        t, length = s % period, np.full_like(s, period)
    else:
        i = np.floor(np.log2(s / period * (mult - 1) + 1) / np.log2(mult) + 1e-12)
        t, length = s - period * (mult ** i - 1) / (mult - 1), period * mult ** i
    return to + (base - to) * (1 + np.cos(np.pi * t / length)) / 2


def ref_cyclic(s, low, high, period):
    # the CLR paper's triangular policy: cycle = floor(1 + s / (2 stepsize)), x = |s / stepsize - 2 cycle + 1|
    s = np.asarray(s, float)
    half = period / 2
    cycle = np.floor(1 + s / (2 * half))
    x = np.abs(s / half - 2 * cycle + 1)
    return low + (high - low) * np.maximum(0, 1 - x)


def ref_one_cycle(s, n, max_lr, pct_start=0.3, div=25.0, final_div=1e4):
    s = np.asarray(s, float)
    lo, hi = max_lr / div, max_lr / div / final_div
    peak = pct_start * n - 1  # the step where max_lr is reached
    up = lo + (max_lr - lo) * (1 - np.cos(np.pi * s / peak)) / 2
    down = hi + (max_lr - hi) * (1 + np.cos(np.pi * (s - peak) / (n - 1 - peak))) / 2
    return np.where(s <= peak, up, down)


def ref_polynomial(base, s, n, power, to):
    return to + (base - to) * (1 - np.asarray(s, float) / n) ** power


# ---------------------------------------------------------------------------------------------
# exponential
# ---------------------------------------------------------------------------------------------


def test_exponential_after_warmup_at_the_boundaries():
    spe, total = 4, 40  # warmup 2 steps, then exponential for 38
    lr = sched("warmup(2 steps) then exponential(gamma = 0.5)", spe, total)
    assert (lr(0), lr(1)) == pytest.approx((0.05, 0.1), rel=1e-12)
    s = np.arange(38)
    np.testing.assert_allclose(curve_of(lr, s + 2), ref_exponential(0.1, s, 0.5, spe), rtol=1e-12)
    assert lr(2) == pytest.approx(0.1, rel=1e-12)  # first step of the phase: s = 0
    assert lr(3) == pytest.approx(0.1 * 0.5 ** 0.25, rel=1e-12)  # smoothly within the epoch
    assert lr(2 + spe) == pytest.approx(0.05, rel=1e-12)  # one epoch in: x gamma
    assert lr(39) == pytest.approx(0.1 * 0.5 ** (37 / 4), rel=1e-12)  # the run's last step
    assert lr(40) == lr(39) and lr(1000) == lr(39)  # past the end: held


def test_exponential_matches_torch():
    spe, n = 5, 30
    ours = curve_of(sched("exponential(gamma = 0.8)", spe, n), range(n))
    # per step: torch's ExponentialLR with gamma^(1 / steps per epoch)
    theirs = torch_lrs(lambda S, o: S.ExponentialLR(o, gamma=0.8 ** (1 / spe)), n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)
    # per epoch: torch's ExponentialLR(0.8) stepped once an epoch agrees at every epoch's first step
    per_epoch = torch_lrs(lambda S, o: S.ExponentialLR(o, gamma=0.8), n // spe)
    np.testing.assert_allclose(ours[::spe], per_epoch, rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# multistep: the runtime now; from a spec once resolve converts DurList
# ---------------------------------------------------------------------------------------------


def _dur(v, unit):
    return ir.Duration(value=float(v), unit=ir.Unit(unit), span=ir.NOWHERE)


def _multistep_schedule(milestones, gamma=0.1, first: ir.Phase | None = None) -> ir.Schedule:
    ph = ir.Phase(kind="multistep", args=(("milestones", tuple(milestones)), ("gamma", gamma)), length=None,
                  span=ir.NOWHERE)
    return ir.Schedule(phases=((first,) if first else ()) + (ph,), span=ir.NOWHERE)


def test_multistep_runtime_milestones_in_epochs_steps_and_percent():
    spe, total = 10, 100
    warm = ir.Phase(kind="warmup", args=(("start", 0.0),), length=_dur(5, "steps"), span=ir.NOWHERE)
    # milestones count from the phase's start: 3 epochs = 30 steps, 45 steps, 70% of 100 = 70 steps
    lr = LrSchedule(_multistep_schedule([_dur(3, "epochs"), _dur(45, "steps"), _dur(0.7, "fraction")], 0.5, warm),
                    0.2, spe, total)
    s = np.arange(95)
    np.testing.assert_allclose(curve_of(lr, s + 5), ref_multistep(0.2, s, [30, 45, 70], 0.5), rtol=1e-12)
    expected = {4: 0.2, 5: 0.2, 34: 0.2, 35: 0.1, 49: 0.1, 50: 0.05, 74: 0.05, 75: 0.025, 99: 0.025, 500: 0.025}
    for step, v in expected.items():
        assert lr(step) == pytest.approx(v, rel=1e-12), step


def test_multistep_runtime_unsorted_and_repeated_milestones_as_torch():
    # torch counts a repeated milestone twice and does not need them sorted
    lr = LrSchedule(_multistep_schedule([_dur(6, "steps"), _dur(3, "steps"), _dur(6, "steps")], 0.5), 1.0, 1, 10)
    assert [lr(s) for s in range(8)] == pytest.approx([1, 1, 1, 0.5, 0.5, 0.5, 0.125, 0.125], rel=1e-12)
    theirs = torch_lrs(lambda S, o: S.MultiStepLR(o, milestones=[6, 3, 6], gamma=0.5), 10, base=1.0)
    np.testing.assert_allclose(curve_of(lr, range(10)), theirs, rtol=1e-12)


def test_multistep_from_a_spec():
    spe = 10
    lr = sched("multistep(milestones = [3 epochs, 60 steps], gamma = 0.1)", spe, 100)
    assert [lr(s) for s in (0, 29, 30, 59, 60, 99, 150)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001, 0.001], rel=1e-12)
    spec = spec_of("warmup(10%) then multistep(milestones = [50%], length = 60%) then constant()")
    assert spec.schedule.phases[1].args[0] == ("milestones", (_dur(0.5, "fraction"),))


@pytest.mark.parametrize("milestones, code", [("[3, 6]", "E306"), ("[3 fortnights]", "E306"), ("[0 steps]", "E304"),
                                              ("[]", "E303"), ("3", "E306")])
def test_multistep_bad_milestones(milestones, code):
    src = SCHEDULE_SPEC.format(lr=0.1, schedule=f"schedule = multistep(milestones = {milestones})", max="10 epochs")
    assert [d.code for d in lint(src, "t.train")] == [code]


# ---------------------------------------------------------------------------------------------
# cosine_restarts
# ---------------------------------------------------------------------------------------------


def test_cosine_restarts_mult_two_at_the_boundaries():
    spe, total, base, to = 5, 80, 0.1, 0.001  # period 2 epochs = 10 steps: cycles 10, 20, 40, 80 steps
    lr = sched("cosine_restarts(period = 2 epochs, mult = 2, to = 0.001)", spe, total, base)
    np.testing.assert_allclose(curve_of(lr, range(total)), ref_cosine_restarts(base, np.arange(total), 10, 2, to),
                               rtol=1e-12)

    def cos(t, n):
        return to + (base - to) * (1 + math.cos(math.pi * t / n)) / 2

    for step, v in {0: base, 9: cos(9, 10), 10: base, 20: cos(10, 20), 29: cos(19, 20), 30: base, 69: cos(39, 40),
                    70: base, 79: cos(9, 80), 200: cos(9, 80)}.items():
        assert lr(step) == pytest.approx(v, rel=1e-12), step


def test_cosine_restarts_mult_one_then_constant():
    lr = sched("warmup(4 steps) then cosine_restarts(period = 6 steps, length = 12 steps) then constant()", 10, 30)
    s = np.arange(12)
    np.testing.assert_allclose(curve_of(lr, s + 4), ref_cosine_restarts(0.1, s, 6, 1, 0.0), rtol=1e-12, atol=1e-15)
    assert lr(3) == pytest.approx(0.1)  # warmup's last step
    assert lr(4) == pytest.approx(0.1) and lr(10) == pytest.approx(0.1)  # each cycle starts at the lr
    assert lr(9) == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 6)) / 2, rel=1e-12)  # a cycle's last step
    assert lr(15) == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 6)) / 2, rel=1e-12)
    assert lr(16) == pytest.approx(0.1, rel=1e-12) and lr(29) == lr(16)  # constant() from step 16


@pytest.mark.parametrize("mult", [1, 2, 3])
def test_cosine_restarts_matches_torch(mult):
    n = 100
    ours = curve_of(sched(f"cosine_restarts(period = 7 steps, mult = {mult}, to = 1e-4)", 10, n), range(n))
    theirs = torch_lrs(lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=7, T_mult=mult, eta_min=1e-4), n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# cyclic
# ---------------------------------------------------------------------------------------------


def test_cyclic_triangle_ignores_the_optimizer_lr():
    spe, total = 5, 50
    text = "cyclic(low = 0.001, high = 0.011, period = 2 epochs)"  # 10 steps a cycle: 5 up, 5 down
    lr = sched(text, spe, total, lr=0.1)
    np.testing.assert_allclose(curve_of(lr, range(total)), ref_cyclic(np.arange(total), 0.001, 0.011, 10),
                               rtol=1e-12)
    for step, v in {0: 0.001, 2: 0.005, 5: 0.011, 7: 0.007, 9: 0.003, 10: 0.001, 15: 0.011, 49: 0.003,
                    60: 0.003}.items():
        assert lr(step) == pytest.approx(v, rel=1e-12), step
    other = sched(text, spe, total, lr=0.5)  # another optimizer lr: the same curve
    assert [other(s) for s in range(total)] == [lr(s) for s in range(total)]


def test_cyclic_after_warmup_then_constant():
    lr = sched("warmup(3 steps) then cyclic(0.01, 0.03, period = 4 steps, length = 8 steps) then constant()", 10, 20)
    assert lr(2) == pytest.approx(0.1)  # warmup ends at the optimizer's lr
    assert [lr(s) for s in range(3, 11)] == pytest.approx([0.01, 0.02, 0.03, 0.02] * 2, rel=1e-12)
    assert lr(11) == pytest.approx(0.1) and lr(19) == pytest.approx(0.1)


@pytest.mark.parametrize("period", [10, 7])
def test_cyclic_matches_torch(period):
    n = 40
    ours = curve_of(sched(f"cyclic(low = 0.001, high = 0.006, period = {period} steps)", 10, n), range(n))
    theirs = torch_lrs(lambda S, o: S.CyclicLR(o, base_lr=0.001, max_lr=0.006, step_size_up=period / 2,
                                               mode="triangular", cycle_momentum=False), n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# one_cycle
# ---------------------------------------------------------------------------------------------


def test_one_cycle_at_the_boundaries():
    n = 100  # the phase's length: the whole run
    lr = sched("one_cycle(max_lr = 0.1)", 10, n, lr=0.5)  # the optimizer's lr is not used
    np.testing.assert_allclose(curve_of(lr, range(n)), ref_one_cycle(np.arange(n), n, 0.1), rtol=1e-12)
    assert lr(0) == pytest.approx(0.1 / 25, rel=1e-12)  # max_lr / div_factor
    assert lr(29) == pytest.approx(0.1, rel=1e-12)  # peak at pct_start * n - 1
    assert lr(99) == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)  # the last step: initial / final_div_factor
    assert lr(100) == lr(99) and lr(10 ** 6) == lr(99)  # past the end: held


def test_one_cycle_as_a_phase_in_epochs():
    spe = 6  # one_cycle for 5 epochs = 30 steps, then the optimizer's lr
    lr = sched("one_cycle(max_lr = 0.2, pct_start = 0.25, div_factor = 10, final_div_factor = 100, "
               "length = 5 epochs) then constant()", spe, 60, lr=0.05)
    s = np.arange(30)
    np.testing.assert_allclose(curve_of(lr, s), ref_one_cycle(s, 30, 0.2, 0.25, 10, 100), rtol=1e-12)
    assert lr(0) == pytest.approx(0.02, rel=1e-12)
    assert lr(29) == pytest.approx(0.0002, rel=1e-12)
    assert lr(30) == pytest.approx(0.05, rel=1e-12)  # constant() at the optimizer's lr


def test_one_cycle_peak_on_the_first_step():
    # pct_start * n = 1: torch divides by zero; here the rise is one point, the peak itself
    lr = sched("one_cycle(max_lr = 0.1, pct_start = 0.1)", 10, 10)
    assert lr(0) == pytest.approx(0.1, rel=1e-12)
    assert lr(9) == pytest.approx(0.1 / 25 / 1e4, rel=1e-12)
    assert lr(5) == pytest.approx(4e-7 + (0.1 - 4e-7) * (1 + math.cos(math.pi * 5 / 9)) / 2, rel=1e-12)


@pytest.mark.parametrize("n, pct", [(100, 0.3), (37, 0.25), (50, 0.0)])
def test_one_cycle_matches_torch(n, pct):
    ours = curve_of(sched(f"one_cycle(max_lr = 0.1, pct_start = {pct})", 10, n), range(n))
    theirs = torch_lrs(lambda S, o: S.OneCycleLR(o, max_lr=0.1, total_steps=n, pct_start=pct,
                                                 cycle_momentum=False), n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# polynomial
# ---------------------------------------------------------------------------------------------


def test_polynomial_with_a_floor_after_warmup():
    lr = sched("warmup(10%) then polynomial(power = 2, to = 0.01)", 10, 50)  # warmup 5 steps, polynomial 45
    s = np.arange(45)
    np.testing.assert_allclose(curve_of(lr, s + 5), ref_polynomial(0.1, s, 45, 2, 0.01), rtol=1e-12)
    assert lr(4) == pytest.approx(0.1, rel=1e-12)
    assert lr(5) == pytest.approx(0.1, rel=1e-12)
    assert lr(49) == pytest.approx(0.01 + 0.09 / 45 ** 2, rel=1e-12)
    assert lr(50) == lr(49)


@pytest.mark.parametrize("power", [1.0, 0.5, 3.0])
def test_polynomial_matches_torch(power):
    n = 40
    ours = curve_of(sched(f"polynomial(power = {power})", 10, n), range(n))
    theirs = torch_lrs(lambda S, o: S.PolynomialLR(o, total_iters=n, power=power), n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-15)


# ---------------------------------------------------------------------------------------------
# The existing schedules against torch
# ---------------------------------------------------------------------------------------------


def test_cosine_and_step_match_torch():
    n = 50
    ours = curve_of(sched("cosine(to = 0.001)", 10, n), range(n))
    np.testing.assert_allclose(ours, torch_lrs(lambda S, o: S.CosineAnnealingLR(o, T_max=n, eta_min=0.001), n),
                               rtol=1e-9)
    ours = curve_of(sched("step(every = 7 steps, gamma = 0.5)", 10, n), range(n))
    np.testing.assert_allclose(ours, torch_lrs(lambda S, o: S.StepLR(o, step_size=7, gamma=0.5), n), rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Every new schedule is a phase like the others: lengths in steps, epochs and % of the run
# ---------------------------------------------------------------------------------------------

PHASES = {  # kind -> (arguments, lr at the phase's first step and at its last (8th) step, for base 0.1)
    "exponential": ("gamma = 0.5", 0.1, 0.1 * 0.5 ** (7 / 4)),
    "cosine_restarts": ("period = 3 steps", 0.1, 0.075),  # s = 7: 1 of 3 into the third cycle
    "cyclic": ("low = 0.01, high = 0.02, period = 4 steps", 0.01, 0.015),
    "one_cycle": ("max_lr = 0.25", 0.01, 0.25 / 25 / 1e4),
    "polynomial": ("power = 2", 0.1, 0.1 / 64),
}


@pytest.mark.parametrize("length, n", [("8 steps", 8), ("2 epochs", 8), ("20%", 8)])
@pytest.mark.parametrize("kind", sorted(PHASES))
def test_new_schedules_are_phases(kind, length, n):
    spe, total = 4, 40  # 20% of 40 steps = 8 steps = 2 epochs
    args, first, last = PHASES[kind]
    lr = sched(f"constant(5 steps) then {kind}({args}, length = {length}) then warmup(4 steps)", spe, total, lr=0.1)
    assert [(p.kind, p.begin, p.n) for p in lr.phases] == [("constant", 0, 5), (kind, 5, n), ("warmup", 5 + n, 4)]
    assert lr(4) == pytest.approx(0.1)  # the constant phase's last step
    assert lr(5) == pytest.approx(first, rel=1e-12)  # the new phase's first step
    assert lr(4 + n) == pytest.approx(last, rel=1e-12)  # its last step
    assert lr(5 + n) == pytest.approx(0.025, rel=1e-12)  # the warmup's first step: 1/4 of the lr
    assert lr(5 + n + 3) == pytest.approx(0.1) and lr(total + 10) == pytest.approx(0.1)  # held past its end


@pytest.mark.parametrize("length", ["8 steps", "2 epochs", "20%"])
def test_plateau_is_a_last_phase_with_or_without_a_length(length):
    lr = sched(f"warmup(5 steps) then plateau(val.loss, factor = 0.5, patience = 0, length = {length})", 4, 40)
    assert [(p.kind, p.begin, p.n) for p in lr.phases] == [("warmup", 0, 5), ("plateau", 5, 8)]
    assert (lr(4), lr(5), lr(12), lr(13), lr(100)) == pytest.approx((0.1,) * 5)
    lr.observe({"step": 8, "val.loss": 1.0})
    lr.observe({"step": 40, "val.loss": 2.0})  # past the phase's end it still counts: the last phase holds
    assert (lr(5), lr(39)) == pytest.approx((0.05, 0.05))
    assert lr(4) == pytest.approx(0.1)  # the warmup is not changed by the reduction
    lr = sched("warmup(5 steps) then plateau(val.loss)", 4, 40)
    assert [(p.kind, p.begin, p.n) for p in lr.phases] == [("warmup", 0, 5), ("plateau", 5, 35)]


def test_plateau_followed_by_another_phase_is_refused():
    src = SCHEDULE_SPEC.format(lr=0.1, schedule="schedule = plateau(val.loss, length = 2 epochs) then constant()",
                      max="10 epochs")
    assert [d.code for d in lint(src, "t.train")] == ["E310"]


def test_a_phase_followed_by_another_needs_a_length():
    src = SCHEDULE_SPEC.format(lr=0.1, schedule="schedule = one_cycle(max_lr = 0.1) then constant()", max="10 epochs")
    assert [d.code for d in lint(src, "t.train")] == ["E301"]


@pytest.mark.parametrize("schedule, code", [
    ("cosine_restarts(period = 2 epochs, mult = 0)", "E304"),
    ("cosine_restarts(period = 2 epochs, mult = 1.5)", "E303"),
    ("cosine_restarts(period = 2)", "E306"),
    ("cyclic(low = 0.001, high = 0.01)", "E301"),
    ("cyclic(low = 0, high = 0.01, period = 4 steps)", "E304"),
    ("one_cycle(max_lr = 0.1, pct_start = 1)", "E304"),
    ("one_cycle()", "E301"),
    ("exponential()", "E301"),
    ("polynomial(power = 0)", "E304"),
    ("plateau(val.loss, factor = 1)", "E304"),
    ("plateau(val.loss, patience = -1)", "E304"),
    ("plateau(val.loss, mode = up)", "E305"),
    ("plateau(test.loss)", "E207"),
    ("plateau()", "E301"),
])
def test_schedule_arguments_are_checked(schedule, code):
    src = SCHEDULE_SPEC.format(lr=0.1, schedule=f"schedule = {schedule}", max="10 epochs")
    assert [d.code for d in lint(src, "t.train")] == [code]


def test_plateau_monitor_must_be_measured():
    src = SCHEDULE_SPEC.format(lr=0.1, schedule="schedule = plateau(val.f1)", max="10 epochs")
    assert [d.code for d in lint(src, "t.train")] == ["E207"]


# ---------------------------------------------------------------------------------------------
# plateau: LrSchedule.observe
# ---------------------------------------------------------------------------------------------


def feed(lr: LrSchedule, values, key="val.loss", first_step=1, spe=1):
    """Observe one row per epoch; returns (lr after each epoch, messages)."""
    lrs, msgs = [], []
    for i, v in enumerate(values):
        step = first_step + i * spe
        msgs.append(lr.observe({"epoch": i + 1, "step": step, key: v, "train.loss": 1.0}))
        lrs.append(lr(step))
    return lrs, msgs


def test_plateau_counts_patience_then_reduces():
    lr = sched("plateau(val.loss, factor = 0.5, patience = 2)", 1, 100, lr=0.1)
    assert lr.adaptive
    lrs, msgs = feed(lr, [1.0, 0.9, 0.95, 0.9, 0.91, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8])
    # best 0.9 at epoch 2; epochs 3, 4, 5 do not improve: the third (more than patience = 2) reduces
    assert lrs == pytest.approx([0.1] * 4 + [0.05] * 4 + [0.025] * 3 + [0.0125], rel=1e-12)
    assert [i + 1 for i, m in enumerate(msgs) if m] == [5, 9, 12]
    assert msgs[4] == "plateau: val.loss did not improve for 3 epochs, lr x0.5 -> 5.00e-02"


def test_plateau_patience_zero_reduces_on_every_bad_epoch():
    lr = sched("plateau(val.loss, factor = 0.1, patience = 0)", 1, 100, lr=1.0)
    lrs, _ = feed(lr, [1.0, 1.0, 0.5, 0.6, 0.7])
    assert lrs == pytest.approx([1.0, 0.1, 0.1, 0.01, 0.001], rel=1e-12)


def test_plateau_min_delta_is_absolute():
    lr = sched("plateau(val.loss, factor = 0.5, patience = 1, min_delta = 0.01)", 1, 100, lr=0.1)
    # 0.995 and 0.99 are not below best - 0.01 (0.99, then still 0.99): bad epochs; 0.97 is
    lrs, msgs = feed(lr, [1.0, 0.995, 0.99, 0.97, 0.965])
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05], rel=1e-12)
    assert msgs[2] == "plateau: val.loss did not improve by 0.01 for 2 epochs, lr x0.5 -> 5.00e-02"


def test_plateau_never_below_min_lr():
    lr = sched("plateau(val.loss, factor = 0.1, patience = 0, min_lr = 0.003)", 1, 100, lr=0.1)
    lrs, msgs = feed(lr, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert lrs == pytest.approx([0.1, 0.01, 0.003, 0.003, 0.003], rel=1e-12)
    assert msgs[2] == "plateau: val.loss did not improve for 1 epochs, lr x0.1 -> 3.00e-03 (min_lr)"
    assert msgs[3] is None and msgs[4] is None  # at the floor: nothing to reduce, nothing said


@pytest.mark.parametrize("mode, key, values, reduced", [
    ("auto", "val.accuracy", [0.5, 0.6, 0.7, 0.8], False),  # accuracy: higher is better
    ("auto", "val.accuracy", [0.8, 0.7, 0.6, 0.5], True),
    ("max", "val.loss", [0.5, 0.6, 0.7, 0.8], False),  # told max: a rising loss improves
    ("min", "val.accuracy", [0.5, 0.6, 0.7, 0.8], True),
    ("auto", "val.loss", [0.8, 0.7, 0.6, 0.5], False),
])
def test_plateau_mode(mode, key, values, reduced):
    monitor = key
    lr = sched(f"plateau({monitor}, factor = 0.5, patience = 1, mode = {mode})", 1, 100, lr=0.1)
    lrs, msgs = feed(lr, values, key=key)
    assert (lrs[-1] < 0.1) is reduced
    assert any(msgs) is reduced


def test_plateau_counts_only_its_own_epochs():
    spe = 10  # warmup 2 epochs, then plateau
    lr = sched("warmup(2 epochs) then plateau(val.loss, factor = 0.5, patience = 0)", spe, 100, lr=0.1)
    worse = [1.0, 2.0, 3.0, 4.0, 5.0]  # every epoch worse than the one before
    lrs, msgs = feed(lr, worse, first_step=spe, spe=spe)  # rows after epochs 1..5: step 10, 20, ...
    # epochs 1-2 end in the warmup (not counted); epoch 3 is the plateau's first (sets best); 4 and 5 reduce
    assert [m is not None for m in msgs] == [False, False, False, True, True]
    assert lrs == pytest.approx([0.055, 0.1, 0.1, 0.05, 0.025], rel=1e-12)  # lr(10) is the warmup's
    assert lr(19) == pytest.approx(0.1) and lr(20) == pytest.approx(0.025, rel=1e-12)  # warmup's end, plateau's


def test_plateau_nan_and_missing_values_never_improve():
    lr = sched("plateau(val.loss, factor = 0.5, patience = 1)", 1, 100, lr=0.1)
    assert lr.observe({"step": 1, "val.loss": 1.0}) is None
    assert lr.observe({"step": 2, "val.loss": float("nan")}) is None
    assert lr.observe({"step": 3}) is not None  # the second bad epoch in a row
    assert lr(3) == pytest.approx(0.05)


def test_plateau_state_rolls_back():
    lr = sched("plateau(val.loss, factor = 0.5, patience = 0)", 1, 100, lr=0.1)
    feed(lr, [1.0, 2.0])
    saved = lr.state()
    assert lr(2) == pytest.approx(0.05)
    feed(lr, [3.0, 4.0], first_step=3)  # two more reductions...
    assert lr(4) == pytest.approx(0.0125)
    lr.restore(saved)  # ...undone
    assert lr(4) == pytest.approx(0.05)
    assert lr.observe({"step": 5, "val.loss": 0.5}) is None  # best is still 1.0: 0.5 improves
    assert lr.observe({"step": 6, "val.loss": 0.6}) is not None and lr(6) == pytest.approx(0.025)
    lr.restore(saved)
    assert lr.phases[0].plateau is not saved[0]  # restoring copies: the saved state stays as it was
    feed(lr, [9.0], first_step=7)
    assert saved[0].reductions == 1 and lr.phases[0].plateau.reductions == 2


def test_observe_without_plateau_and_without_step():
    lr = sched("warmup(2 steps) then cosine()", 1, 10)
    assert not lr.adaptive
    assert lr.observe({"step": 5, "val.loss": 1.0}) is None
    assert lr(5) == sched("warmup(2 steps) then cosine()", 1, 10)(5)
    with pytest.raises(ValueError, match="step"):
        lr.observe({"val.loss": 1.0})


@pytest.mark.parametrize("kw", [
    {"factor": 0.5, "patience": 3, "min_lr": 0.0, "min_delta": 0.0, "mode": "min"},
    {"factor": 0.3, "patience": 1, "min_lr": 0.004, "min_delta": 0.005, "mode": "min"},
    {"factor": 0.5, "patience": 0, "min_lr": 0.0, "min_delta": 0.01, "mode": "max"},
])
def test_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    e = np.arange(60)
    values = 1 / (1 + 0.3 * e) + rng.normal(0, 0.02, e.size)
    if kw["mode"] == "max":
        values = 1 - values
    key = "val.loss" if kw["mode"] == "min" else "val.accuracy"
    lr = sched(f"plateau({key}, factor = {kw['factor']}, patience = {kw['patience']}, min_lr = {kw['min_lr']}, "
               f"min_delta = {kw['min_delta']})", 1, 100, lr=0.1)
    ours, msgs = feed(lr, values.tolist(), key=key)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    rop = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=kw["mode"], factor=kw["factor"],
                                                     patience=kw["patience"], threshold=kw["min_delta"],
                                                     threshold_mode="abs", min_lr=kw["min_lr"])
    theirs = []
    for v in values:
        rop.step(float(v))
        theirs.append(opt.param_groups[0]["lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert sum(m is not None for m in msgs) == len(set(theirs)) - 1 >= 2  # one message per reduction


# ---------------------------------------------------------------------------------------------
# Preview: curve, table, plot
# ---------------------------------------------------------------------------------------------


def test_curve_is_every_step_of_the_run():
    spec = spec_of("warmup(20 steps) then cosine()", max_="10 epochs")
    c = preview.curve(spec, 10)
    assert len(c) == 100
    assert c[0] == pytest.approx(0.005) and c[19] == pytest.approx(0.1) and c[20] == pytest.approx(0.1)
    assert c[99] == pytest.approx(0.1 * (1 + math.cos(math.pi * 79 / 80)) / 2, rel=1e-12)
    assert len(preview.curve(spec, 3)) == 30  # 10 epochs of 3 steps
    assert len(preview.curve(spec_of("cosine()", max_="45 steps"), 7)) == 45  # stop.max in steps
    assert preview.curve(spec_of(""), 2) == [0.1] * 20  # no schedule: constant


def test_steps_per_epoch_as_the_loop_counts():
    spec = spec_of("")  # batch 32 (the default), no accumulation
    assert spec.data.batch == 32
    assert epoch_steps(spec, 1437) == 44  # the last partial batch is dropped
    assert epoch_steps(spec, 64) == 2


def test_table_rows_and_boundaries():
    spec = spec_of("warmup(20 steps) then cosine()", max_="10 epochs", path="specs/x.train")
    text = preview.table(spec, 10, rows=11)
    lines = text.splitlines()
    assert lines[0] == "specs/x.train: warmup(length = 20 steps, start = 0) then cosine(to = 0)"
    assert lines[1] == "base lr 0.1, 100 steps = 10 epochs of 10 steps"
    assert lines[2].split() == ["step", "epoch", "lr", "phase", "lr", "/", "max"]
    rows = [ln for ln in lines[3:] if ln[:4].strip().isdigit()]
    # 11 evenly spaced steps plus the first and last step of each phase (19, 20)
    assert [int(r.split()[0]) for r in rows] == [0, 10, 19, 20, 30, 40, 50, 59, 69, 79, 89, 99]
    assert "  20      3  1.000e-01  > cosine  |########################" in lines  # a phase begins
    assert "  19      2  1.000e-01    warmup  |########################" in lines
    assert "   0      1  5.000e-03    warmup  |#" in lines
    assert "  50      6  6.913e-02    cosine  |#################" in lines  # s = 30 of 80: 0.05 (1 + cos(3 pi / 8))
    assert "  warmup: steps 0-19 (epochs 1-2)" in lines and "  cosine: steps 20-99 (epochs 3-10)" in lines


def test_table_shows_the_jumps_inside_a_phase_when_few():
    spec = spec_of("warmup(1 epoch) then cosine_restarts(period = 3 epochs)", max_="10 epochs")
    rows = [ln for ln in preview.table(spec, 10, rows=2).splitlines()[3:] if ln[:4].strip().isdigit()]
    # phases: 0-9, 10-99; restarts 30 steps into the phase and every 30 after: the step before and the restart
    assert [int(r.split()[0]) for r in rows] == [0, 9, 10, 39, 40, 69, 70, 99]
    assert rows[4] == "  40      5  1.000e-01    cosine_restarts  |########################"
    spec = spec_of("step(every = 1 step)", max_="10 epochs")  # 99 jumps: more than the rows, not shown
    rows = [ln for ln in preview.table(spec, 10, rows=3).splitlines()[3:] if ln[:4].strip().isdigit()]
    assert [int(r.split()[0]) for r in rows] == [0, 50, 99]
    assert "  warmup: steps 0-9 (epoch 1)" in preview.table(spec_of("warmup(1 epoch) then cosine()"), 10)


def test_table_notes_plateau_and_a_held_end():
    spec = spec_of("warmup(1 epoch) then plateau(val.accuracy, factor = 0.5, patience = 2, length = 5 epochs)",
                   max_="10 epochs")
    text = preview.table(spec, 4, rows=5)
    assert "plateau*" in text
    assert ("* plateau: shown flat; at run time the lr is multiplied by 0.5 whenever val.accuracy (max) has not "
            "improved for more than 2 epochs (never below 0)") in text
    assert "the lr of step 23 is held to the end of the run" in text


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    spec = spec_of("warmup(2 epochs) then cosine_restarts(period = 2 epochs, length = 4 epochs) then "
                   "plateau(val.loss)", path="specs/p.train")
    out = tmp_path / "lr.png"
    preview.plot(spec, 5, out)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path, monkeypatch):
    import sys
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(ImportError, match="pip install matplotlib"):
        preview.plot(spec_of("cosine()"), 5, tmp_path / "lr.png")
    assert not (tmp_path / "lr.png").exists()


# ---------------------------------------------------------------------------------------------
# The shipped specs that use the new schedules
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, kinds", [
    ("one_cycle_digits.train", ["one_cycle"]),
    ("cosine_restarts_digits.train", ["warmup", "cosine_restarts"]),
    ("plateau_diabetes.train", ["warmup", "plateau"]),
])
def test_new_specs_lint_clean(name, kinds):
    path = ROOT / "specs" / name
    text = path.read_text()
    assert lint(text, str(path)) == []
    spec = analyze(text, str(path))
    assert [p.kind for p in spec.schedule.phases] == kinds
    assert (path.parent / spec.data.source.path).resolve().is_file()  # the data path is relative to the spec
