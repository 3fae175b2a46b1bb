"""Learning-rate schedules: phases joined by `then`."""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- schedules ---------------------------------------------------------------------------------
# A schedule is phases joined by `then`; each phase's lr is a function of its own progress.
# `length`: how long the phase lasts (the last phase runs to the end of the run).


@SCHEDULES.register
def constant(length: Dur("steps", "epochs", "fraction") = None):
    """The optimizer's lr, unchanged."""


@SCHEDULES.register
def warmup(length: Dur("steps", "epochs", "fraction"), start: NonNegative = 0.0):
    """Linear warm-up from `start` x lr to lr over `length`."""


@SCHEDULES.register
def step(every: Dur("steps", "epochs"), gamma: Positive = 0.1, length: Dur("steps", "epochs", "fraction") = None):
    """Multiplies the lr by `gamma` every `every` steps or epochs."""


@SCHEDULES.register
def cosine(to: NonNegative = 0.0, length: Dur("steps", "epochs", "fraction") = None):
    """Cosine annealing from lr down to `to` over the phase."""
