"""The trainc compiler: spec text -> checked IR -> tinygrad program.

Every command reaches the passes through one entry, `compile_spec`, whose body is the pipeline:

    file = parse(text, path)                # grammar -> syntax tree with spans        (E1xx)
    file = apply_overrides(file, sets)      # --set KEY=VALUE edits the syntax tree    (E1xx at <--set KEY>)
    spec, problems = resolve(file, path)    # names, registries, units, blocks -> IR    (E2xx, E3xx)
    spec, problems = check(spec)            # shapes and cross-field rules              (E3xx, E4xx)
    problems += data(spec, problems)        # the caller's checks against the data     (E5xx, W5xx)
    problems = silence(problems, allow)     # less the warnings allowed (`# trainc: allow W302`, --allow)
    problems = with_fixes(problems)         # each did-you-mean also as a structured edit (`fix`)
    program = lower(spec, data)             # tinygrad: jitted train and eval steps     (runtime only)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from . import ir
from .check import check
from .diagnostics import Diagnostic, SpecError, sort_key, with_fixes
from .overrides import OverrideError, override
from .parse import parse, parse_partial
from .resolve import resolve, resolve_partial
from .rules import silence


# Top-level items left out for a syntax error count as present but unreadable: the resolver does
# not report them missing, and what check would say because their contents are unknown is dropped.
FOLLOW_ONS = {
    "metrics": {"E207"},  # a monitor names a metric of the list that did not parse
    "data": {"E307"},  # the task and the normalisation settings are unknown
}

DataChecks = Callable[[ir.Spec, list[Diagnostic]], list[Diagnostic]]  # (checked spec, its problems) -> more


@dataclass(frozen=True)
class Compiled:
    """What `compile_spec` found. `problems` is everything to show, sorted by position; `syntax` is what stopped
    the parse (syntax errors, or a --set value that does not parse), empty when the whole file parsed."""

    file: ir.File  # the syntax tree, with the overrides; after a syntax error, the items that parsed
    spec: ir.Spec | None  # the checked IR, as far as it was built; None when `until="parse"` or a --set failed
    problems: tuple[Diagnostic, ...]
    sources: dict[str, str]  # file name -> text, each --set value's included: what diagnostics quote
    syntax: tuple[Diagnostic, ...] = ()

    @property
    def failed(self) -> bool:
        """An error anywhere: the spec cannot be run."""
        return any(d.is_error for d in self.problems)


def compile_spec(text: str, path: str, overrides: Iterable[str] = (), until: str = "check",
                 allow: tuple[str, ...] | None = (), data: DataChecks | None = None) -> Compiled:
    """The pipeline: parse -> --set overrides -> resolve -> check -> data checks -> silence allowed warnings.

    `until="parse"` stops after the overrides (`trainc compile --emit ast`). A syntax error leaves its
    top-level item out and the rest is still checked (the overrides, which edit a whole file, are not
    applied then). `allow`: warning codes silenced besides those a `# trainc: allow CODE` comment names on
    their line; None keeps every warning. A --set that is not KEY=VALUE raises OverrideError (a usage error)."""
    sources = {path: text}
    file, syntax, broken = parse_partial(text, path)  # syntax (E1xx): the items that parse, the others
    if overrides and not syntax:
        file, syntax = override(file, list(overrides), sources)  # --set KEY=VALUE; a bad value: E1xx at <--set KEY>
        if syntax:
            return Compiled(file, None, tuple(syntax), sources, tuple(syntax))
    if until == "parse":
        return Compiled(file, None, tuple(syntax), sources, tuple(syntax))
    spec, problems = check_file(file, path, broken)  # resolve -> check (E2xx-E4xx)
    problems = sorted(syntax + problems, key=sort_key)
    if data is not None:  # the caller's checks against the data files; a problem found twice is shown once
        seen = {(d.code, d.span) for d in problems}
        problems += [d for d in data(spec, problems) if (d.code, d.span) not in seen]
    if allow is not None:
        problems = silence(problems, text, allow)  # less `# trainc: allow W302` and --allow W302
    problems = with_fixes(problems, sources)  # each did-you-mean as a structured edit (editors apply it)
    return Compiled(file, spec, tuple(problems), sources, tuple(syntax))


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
    """parse -> resolve -> check. Returns the checked IR; raises SpecError with every problem
    (after a syntax error: the syntax errors).

    >>> analyze("...", "digits.train")  # doctest: +SKIP
    """
    compiled = compile_spec(text, path, allow=None)
    if compiled.syntax or compiled.failed:
        raise SpecError(compiled.syntax or compiled.problems)
    return compiled.spec


def lint(text: str, path: str) -> list[Diagnostic]:
    """Every static problem in a spec, sorted by position: the one diagnostics core behind
    `trainc lint`, `trainc run`'s refusal, the language server and the tests. Never imports tinygrad.

    A syntax error leaves its top-level item out; the rest of the file is still checked.

    >>> [d.code for d in lint("optimizer = adamm()\\n", "t.train")][-1]
    'E201'
    """
    return lint_spec(text, path)[1]


def lint_spec(text: str, path: str) -> tuple[ir.Spec, list[Diagnostic]]:
    """`lint`, with the IR as far as it was built."""
    compiled = compile_spec(text, path)
    return compiled.spec, list(compiled.problems)


__all__ = ["compile_spec", "Compiled", "OverrideError", "analyze", "lint", "lint_spec", "check_file", "parse",
           "parse_partial", "resolve", "check", "ir", "Diagnostic", "SpecError"]
