"""Learning-rate schedules: phases joined by `then`."""

from dataclasses import dataclass

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries


@dataclass(frozen=True)
class DurList:
    """A list of quantities with units: `milestones = [30 epochs, 60 epochs]`.

    Each item is converted like a `Dur` with the same units; the value is a tuple of
    `ir.Duration`. (Kept here until the converter in resolve.py handles it; it may move to base.)
    """

    units: tuple[str, ...]  # "steps", "epochs", "fraction"

    def __init__(self, *units: str):
        object.__setattr__(self, "units", units)

    def item(self) -> Dur:
        """The type of one item."""
        return Dur(*self.units)

    def describe(self) -> str:
        words = {"steps": "30 steps", "epochs": "30 epochs", "fraction": "50%"}
        return f"a list of quantities like [{', '.join(words[u] for u in self.units)}]"


# ---- schedules ---------------------------------------------------------------------------------
# A schedule is phases joined by `then`; each phase's lr is a function of its own progress: step
# `s` (0-based, counted from the phase's start) of `n` (the phase's length in steps). `length`: how
# long the phase lasts (the last phase runs to the end of the run). Quantities in epochs or % of
# the run become steps once the number of steps per epoch is known (runtime/schedule.py).

_LENGTH = Dur("steps", "epochs", "fraction")


@SCHEDULES.register
def constant(length: _LENGTH = None):
    """The optimizer's lr, unchanged."""


@SCHEDULES.register
def warmup(length: _LENGTH, start: Float(0.0, 1.0) = 0.0):
    """Linear warm-up from `start` x lr to lr over `length`."""


@SCHEDULES.register
def step(every: Dur("steps", "epochs"), gamma: Positive = 0.1, length: _LENGTH = None):
    """Multiplies the lr by `gamma` every `every` steps or epochs."""


@SCHEDULES.register
def multistep(milestones: DurList("steps", "epochs", "fraction"), gamma: Positive = 0.1, length: _LENGTH = None):
    """lr x gamma^(milestones reached), counted from the phase's start (PyTorch MultiStepLR)."""


@SCHEDULES.register
def exponential(gamma: Positive, length: _LENGTH = None):
    """lr x gamma^(s / steps per epoch): x gamma per epoch, smoothly at every step (PyTorch ExponentialLR)."""


@SCHEDULES.register
def cosine(to: NonNegative = 0.0, length: _LENGTH = None):
    """Cosine annealing from lr down to `to` over the phase."""


@SCHEDULES.register
def cosine_restarts(period: _LENGTH, mult: Int(min=1) = 1, to: NonNegative = 0.0, length: _LENGTH = None):
    """SGDR: cosine from lr to `to` over `period`, restarting, each period x mult (CosineAnnealingWarmRestarts)."""


@SCHEDULES.register
def cyclic(low: Positive, high: Positive, period: _LENGTH, length: _LENGTH = None):
    """Triangle between the absolute lrs `low` and `high`, once per `period`; ignores the optimizer's lr (CyclicLR)."""


@SCHEDULES.register
def one_cycle(max_lr: Positive, pct_start: Fraction = 0.3, div_factor: Positive = 25.0,
              final_div_factor: Positive = 1e4, length: _LENGTH = None):
    """1cycle: cosine up to `max_lr` over pct_start of the phase, then down; ignores the optimizer's lr (OneCycleLR)."""


@SCHEDULES.register
def polynomial(power: Positive = 1.0, to: NonNegative = 0.0, length: _LENGTH = None):
    """to + (lr - to) x (1 - s/n)^power over the phase (PyTorch PolynomialLR, with a floor `to`)."""


@SCHEDULES.register
def plateau(monitor: MetricName(), factor: Float(0.0, 1.0, min_open=True, max_open=True) = 0.1,
            patience: Int(min=0) = 10, min_lr: NonNegative = 0.0, min_delta: NonNegative = 0.0,
            mode: Choice("auto", "min", "max") = "auto", length: _LENGTH = None):
    """lr x factor^k after k plateaus of `monitor` (> patience epochs), >= min_lr (PyTorch ReduceLROnPlateau, abs)."""
