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
from .parse import parse, parse_partial
from .resolve import resolve, resolve_partial
from .rules import silence


# Top-level items left out for a syntax error count as present but unreadable: the resolver does
# not report them missing, and what check would say because their contents are unknown is dropped.
FOLLOW_ONS = {
    "metrics": {"E207"},  # a monitor names a metric of the list that did not parse
    "data": {"E307"},  # the task and the normalisation settings are unknown
}


def check_file(file: ir.File, path: str, broken: frozenset[str] = frozenset()) -> tuple[ir.Spec, list[Diagnostic]]:
    """resolve -> check over a parsed file; every problem found, sorted by position.

    Check also runs over a partially resolved spec, so a bad optimizer does not hide a bad metric.
    `broken` names the top-level items that did not parse (see `parse_partial`)."""
    spec, problems = resolve_partial(file, path, broken)
    spec, more = check(spec)
    quiet = set().union(*(FOLLOW_ONS.get(name, ()) for name in broken))
    more = [d for d in more if d.code not in quiet]
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
    """Every static problem in a spec, sorted by position: the one diagnostics core behind
    `trainc lint`, `trainc run`'s refusal, the language server and the tests. Never imports tinygrad.

    A syntax error leaves its top-level item out; the rest of the file is still checked.

    >>> [d.code for d in lint("optimizer = adamm()\\n", "t.train")][-1]
    'E201'
    """
    return lint_spec(text, path)[1]


def lint_spec(text: str, path: str) -> tuple[ir.Spec, list[Diagnostic]]:
    """`lint`, with the IR as far as it was built (`trainc lint` checks it against the data)."""
    file, problems, broken = parse_partial(text, path)  # syntax (E1xx): the items that parse, the others
    spec, more = check_file(file, path, broken)
    return spec, silence(sorted(problems + more, key=sort_key), text)  # less the `# trainc: allow W302` ones


__all__ = ["analyze", "lint", "lint_spec", "check_file", "parse", "parse_partial", "resolve", "check", "ir",
           "Diagnostic", "SpecError"]
