"""Diagnostics: positions, not text. One renderer prints every problem trainc reports.

    digits.train:21:13: error[E201]: unknown optimizer 'adamm'
       |
    21 | optimizer = adamm(lr = 3e-3)
       |             ^^^^^
       = help: did you mean 'adam'?

Codes by family: E1xx syntax, E2xx names (sections, keys, layers, ...), E3xx values and types,
E4xx shapes, E5xx data, E6xx devices and runtime.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Iterable

from .ir import Span


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    help: str | None = None
    severity: str = "error"  # error | warning
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity == "error"


class SpecError(Exception):
    """Raised when a pass cannot go on; carries every diagnostic collected so far."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=sort_key)
        super().__init__("\n".join(f"{d.span}: {d.message}" for d in self.diagnostics))


def sort_key(d: Diagnostic):
    return (d.span.file, d.span.line, d.span.col, d.code)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A help line for a misspelt name, or None when nothing is close."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return None


def one_of(choices: Iterable[str]) -> str:
    return "expected one of: " + ", ".join(sorted(set(choices)))


def render(d: Diagnostic, source: str | None, color: bool = False) -> str:
    """`path:line:col: error[CODE]: message`, the source line, a caret under the span, `help:`."""
    red, blue, bold, reset = ("\x1b[31m", "\x1b[34m", "\x1b[1m", "\x1b[0m") if color else ("",) * 4
    sev = red + d.severity + reset if d.severity == "error" else "\x1b[33m" * color + d.severity + reset
    out = [f"{bold}{d.span}{reset}: {sev}[{d.code}]: {bold}{d.message}{reset}"]
    lines = source.split("\n") if source is not None else []  # as the parser counts: not str.splitlines()'s \r, \f
    if 1 <= d.span.line <= len(lines):
        text = lines[d.span.line - 1].removesuffix("\r").expandtabs(1)
        gutter = " " * len(str(d.span.line))
        start = max(d.span.col, 1)
        end = d.span.end_col if d.span.end_line == d.span.line and d.span.end_col > start else len(text) + 1
        end = max(min(end, len(text) + 1), start + 1)
        out.append(f"{blue}{gutter} |{reset}")
        out.append(f"{blue}{d.span.line} |{reset} {text}")
        out.append(f"{blue}{gutter} |{reset} {' ' * (start - 1)}{red}{'^' * (end - start)}{reset}")
    for note in d.notes:
        out.append(f"  = note: {note}")
    if d.help:
        out.append(f"  = help: {d.help}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    return "\n\n".join(render(d, sources.get(d.span.file), color) for d in sorted(diagnostics, key=sort_key))
