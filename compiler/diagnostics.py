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
import re
from array import array
from dataclasses import dataclass, field, replace
from typing import Iterable

from .catalog.aliases import alias
from .ir import Span


@dataclass(frozen=True, slots=True, kw_only=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    help: str | None = None
    severity: str = "error"  # error | warning
    notes: tuple[str, ...] = field(default=())
    related: tuple[tuple[str, Span], ...] = field(default=())  # (what, where): another place the problem involves
    fix: tuple[Span, str] | None = None  # an edit that surely fixes it: replace the span's text (editors offer it)

    def with_related(self) -> tuple[str, ...]:
        """The notes, then each related place as `file:line:col: what` (how the text formats show it)."""
        return self.notes + tuple(f"{span}: {what}" for what, span in self.related)

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
    """A help line for a misspelt name, or None when nothing is close. Another framework's name for one
    of the choices (catalog/aliases.py) ranks before edit distance:

    >>> did_you_mean("binary_crossentropy", ["bce", "cross_entropy"])
    "`binary_crossentropy` is Keras' name; here it is 'bce'"
    """
    if len(word) > 100:  # no name is that long: not worth comparing (difflib's time grows with it)
        return None
    choices = sorted(set(choices))
    if known := alias(word, choices):
        whose, name = known
        whose += "'" if whose.endswith("s") else "'s"  # Keras' name, PyTorch's name
        return f"`{word}` is {whose} name; here it is '{name}'"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return None


def one_of(choices: Iterable[str]) -> str:
    return "expected one of: " + ", ".join(sorted(set(choices)))


# What a report shows of hostile input, so that its size stays bounded by what it reports, not by the file:
WIDTH = 200  # columns of a source line shown around the caret (a longer line is cut, with "…" at each cut end)
MAX_TEXT = 1000  # characters of a message, help or note (a longer one keeps its start and end around "…")
MAX_SHOWN = 100  # diagnostics shown per file in the `full` format; a last line counts the rest

# Characters that would act on a terminal or reorder the line (C0 and C1 controls, DEL, bidirectional
# overrides) are shown as visible stand-ins of one column each, so the caret stays under its span:
# the control pictures U+2400.. for C0 and DEL, U+FFFD for the others and for lone surrogates (a file
# name's undecodable bytes), which no UTF-8 stream can write.
_VISIBLE = {c: 0x2400 + c for c in range(32)} | {0x7F: 0x2421} | {c: 0xFFFD for c in (
    *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029,
    *range(0xD800, 0xE000))}
_VISIBLE_TEXT = {k: v for k, v in _VISIBLE.items() if k != 0x0A}  # messages keep their new lines


def visible(text: str, newlines: bool = False) -> str:
    """`text` with every control character replaced by a one-column stand-in (`\\n` kept when `newlines`)."""
    return text.translate(_VISIBLE_TEXT if newlines else _VISIBLE)


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """At most about `limit` characters: a longer text keeps its first and last parts around a count."""
    if len(text) <= limit:
        return text
    head, tail = limit * 2 // 3, limit // 4
    return f"{text[:head]}…[{len(text) - head - tail} characters]…{text[len(text) - tail:]}"


class Lines:
    """A file's lines as the parser counts them (split at "\\n" only, not str.splitlines()'s \\r, \\f, ...),
    indexed once: finding line n costs the same in a file of 10 lines and of 10 million."""

    def __init__(self, text: str):
        self.text = text
        self.starts = array("q", [0])
        self.starts.extend(m.end() for m in re.finditer("\n", text))

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, n: int) -> str:
        """Line `n`, counted from 1, without its "\\n"."""
        end = self.starts[n] - 1 if n < len(self.starts) else len(self.text)
        return self.text[self.starts[n - 1]:end]


def _window(text: str, start: int, end: int) -> tuple[str, int, int]:
    """At most WIDTH columns of a line around columns [start, end) (1-based): the text shown and the
    caret's columns in it. A cut end is marked with "…"."""
    if len(text) <= WIDTH:
        return text, start, end
    lo = max(0, min(start - 1 - WIDTH // 4, len(text) - WIDTH))
    hi = lo + WIDTH
    shown = ("…" if lo else "") + text[lo:hi] + ("…" if hi < len(text) else "")
    shift = lo - (1 if lo else 0)
    return shown, start - shift, max(min(end, hi + 1), start + 1) - shift


def _source_lines(d: Diagnostic, lines: Lines, color: bool) -> list[str]:
    """The source line of a diagnostic (cut to WIDTH columns, controls made visible) and its caret."""
    red, blue, reset = ("\x1b[31m", "\x1b[34m", "\x1b[0m") if color else ("",) * 3
    text = lines[d.span.line].removesuffix("\r")
    start = max(d.span.col, 1)
    end = d.span.end_col if d.span.end_line == d.span.line and d.span.end_col > start else len(text) + 1
    end = max(min(end, len(text) + 1), start + 1)
    text, start, end = _window(text, start, end)
    gutter = " " * len(str(d.span.line))
    return [f"{blue}{gutter} |{reset}", f"{blue}{d.span.line} |{reset} {visible(text.expandtabs(1))}",
            f"{blue}{gutter} |{reset} {' ' * (start - 1)}{red}{'^' * (end - start)}{reset}"]


def render(d: Diagnostic, source: str | Lines | None, color: bool = False) -> str:
    """`path:line:col: error[CODE]: message`, the source line, a caret under the span, `help:`.

    `source` is the file's text, or its `Lines` when many diagnostics of one file are rendered."""
    red, bold, reset = ("\x1b[31m", "\x1b[1m", "\x1b[0m") if color else ("",) * 3
    sev = red + d.severity + reset if d.severity == "error" else "\x1b[33m" * color + d.severity + reset
    out = [f"{bold}{visible(clip(str(d.span)))}{reset}: {sev}[{d.code}]: {bold}{visible(clip(d.message))}{reset}"]
    lines = Lines(source) if isinstance(source, str) else source
    if lines is not None and 1 <= d.span.line <= len(lines):
        out += _source_lines(d, lines, color)
    for note in d.with_related():
        out.append(f"  = note: {visible(clip(note), newlines=True)}")
    if d.help:
        out.append(f"  = help: {visible(clip(d.help), newlines=True)}")
    return "\n".join(out)


def render_all(diagnostics: Iterable[Diagnostic], sources: dict[str, str], color: bool = False,
               limit: int = MAX_SHOWN) -> str:
    """Every diagnostic rendered, sorted by position; past `limit` in one file, a line counts the rest.
    Each file's lines are indexed once, so the time is linear in the files and the diagnostics."""
    by_file: dict[str, list[Diagnostic]] = {}
    for d in sorted(diagnostics, key=sort_key):
        by_file.setdefault(d.span.file, []).append(d)
    out = []
    for file, diags in by_file.items():
        lines = Lines(sources[file]) if sources.get(file) is not None else None
        out += [render(d, lines, color) for d in diags[:limit]]
        if len(diags) > limit:
            out.append(f"... and {len(diags) - limit} more in {visible(clip(file))} (`--format concise` lists "
                       "every one)")
    return "\n\n".join(out)


_DID_YOU_MEAN = re.compile(r"(?:did you mean|here it is) '([^']+)'")  # did_you_mean's two forms


def suggested_fix(d: Diagnostic, src: str) -> tuple[Span, str] | None:
    """The edit a did-you-mean diagnostic suggests, on its line `src`: the misspelt name's span and the name.

    The misspelt name is the first quoted name of the message found in the span (or the span's text);
    for a dotted name, only the parts that the suggestion replaces (`val.acuracy` -> `accuracy`)."""
    m = _DID_YOU_MEAN.search(d.help or "")
    if m is None or d.span.line < 1 or d.span.line != d.span.end_line:
        return None
    new, lo, hi = m.group(1), d.span.col - 1, d.span.end_col - 1
    for old in re.findall(r"'([^']+)'", d.message) + [src[lo:hi].strip()]:
        hit = re.compile(rf"(?<![\w.]){re.escape(old)}(?![\w.])").search(src, lo, hi)
        if hit is None:
            continue
        parts, want = old.split("."), len(new.split("."))
        if len(parts) > want:  # replace the run of parts the suggestion is closest to
            at = max(range(len(parts) - want + 1),
                     key=lambda i: difflib.SequenceMatcher(None, ".".join(parts[i:i + want]), new).ratio())
            start = hit.start() + sum(len(p) + 1 for p in parts[:at])
            end = start + len(".".join(parts[at:at + want]))
        else:
            start, end = hit.span()
        if src[start:end] == new:
            return None
        return Span(d.span.file, d.span.line, start + 1, d.span.line, end + 1), new
    return None


def with_fixes(diags: Iterable[Diagnostic], sources: dict[str, str]) -> list[Diagnostic]:
    """Every diagnostic with its `fix`: a rule's own, or the did-you-mean's replacement. Each file's lines are
    split once."""
    lines: dict[str, list[str]] = {}
    out = []
    for d in diags:
        text = sources.get(d.span.file)
        if d.fix is None and d.help and text is not None and d.span.line >= 1:
            if d.span.file not in lines:
                lines[d.span.file] = [x.removesuffix("\r") for x in text.split("\n")]
            rows = lines[d.span.file]
            if d.span.line <= len(rows) and (fix := suggested_fix(d, rows[d.span.line - 1])) is not None:
                d = replace(d, fix=fix)
        out.append(d)
    return out
