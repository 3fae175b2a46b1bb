"""The trainc compiler: spec text -> checked IR -> tinygrad program.

The pipeline, one pass per line (`lint` stops after check; `--emit ir` prints the checked IR):

    file = parse(text, path)                # grammar -> syntax tree with spans        (E1xx)
    spec, problems = resolve(file, path)    # names, registries, units, blocks -> IR    (E2xx, E3xx)
    spec, problems = check(spec)            # shapes and cross-field rules              (E3xx, E4xx)
    program = lower(spec, data)             # tinygrad: jitted train and eval steps     (runtime only)
"""

from __future__ import annotations

from . import ir
from .check import check
from .diagnostics import Diagnostic, SpecError, sort_key
from .parse import parse
from .resolve import resolve, resolve_partial


def check_file(file: ir.File, path: str) -> tuple[ir.Spec, list[Diagnostic]]:
    """resolve -> check over a parsed file; every problem found, sorted by position.

    Check also runs over a partially resolved spec, so a bad optimizer does not hide a bad metric."""
    spec, problems = resolve_partial(file, path)
    spec, more = check(spec)
    seen = {(d.code, d.span) for d in problems}
    problems = problems + [d for d in more if (d.code, d.span) not in seen]
    return spec, sorted(problems, key=sort_key)


def analyze(text: str, path: str) -> ir.Spec:
    """parse -> resolve -> check. Returns the checked IR; raises SpecError with every problem.

    >>> analyze("...", "digits.train")  # doctest: +SKIP
    """
    spec, problems = check_file(parse(text, path), path)
    if any(d.is_error for d in problems):
        raise SpecError(problems)
    return spec


def lint(text: str, path: str) -> list[Diagnostic]:
    """Every static problem in a spec, sorted by position. Never imports tinygrad."""
    try:
        file = parse(text, path)
    except SpecError as e:
        return e.diagnostics
    return check_file(file, path)[1]


__all__ = ["analyze", "lint", "check_file", "parse", "resolve", "check", "ir", "Diagnostic", "SpecError"]
