"""The trainc compiler: spec text -> checked IR -> tinygrad program.

The pipeline, one pass per line (`lint` stops after check; `--emit ir` prints the checked IR):

    file = parse(text, path)        # grammar -> syntax tree with spans         (E1xx)
    spec = resolve(file, path)      # names, registries, units, blocks -> IR     (E2xx, E3xx)
    spec, problems = check(spec)    # shapes and cross-field rules               (E3xx, E4xx)
    program = lower(spec, data)     # tinygrad: jitted train and eval steps      (runtime only)
"""

from __future__ import annotations

from . import ir
from .check import check
from .diagnostics import Diagnostic, SpecError
from .parse import parse
from .resolve import resolve


def analyze(text: str, path: str) -> ir.Spec:
    """parse -> resolve -> check. Returns the checked IR; raises SpecError with every problem.

    >>> spec = analyze(open("examples/digits.train").read(), "examples/digits.train")  # doctest: +SKIP
    """
    file = parse(text, path)
    spec = resolve(file, path)
    spec, problems = check(spec)
    if any(d.is_error for d in problems):
        raise SpecError(problems)
    return spec


def lint(text: str, path: str) -> list[Diagnostic]:
    """Every static problem in a spec, sorted by position. Never imports tinygrad."""
    try:
        file = parse(text, path)
        spec = resolve(file, path)
        _, problems = check(spec)
        return sorted(problems, key=lambda d: (d.span.line, d.span.col))
    except SpecError as e:
        return e.diagnostics


__all__ = ["analyze", "lint", "parse", "resolve", "check", "ir", "Diagnostic", "SpecError"]
