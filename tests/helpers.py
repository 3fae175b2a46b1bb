"""Shared helpers for the compiler tests: a small valid spec to vary, and position helpers.

Positions in asserts are 1-based (line, col), as in diagnostics and `ir.Span`.
"""

from __future__ import annotations

import pathlib

from trainc.compiler import ir

REPO = pathlib.Path(__file__).resolve().parent.parent
DIGITS = REPO / "examples" / "digits.train"
ERROR_SPECS = REPO / "specs" / "errors"

# A small valid spec; each part can be replaced by keyword in `make_spec`.
PARTS = {
    "data": 'data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2 }\n}',
    "model": "model {\n  input x: f32[8]\n  logits = x -> dense(16) -> relu -> dense(3)\n}",
    "loss": "loss = cross_entropy(logits, target)",
    "optimizer": "optimizer = adam(lr = 1e-3)",
    "schedule": "",
    "stop": "stop { max = 5 epochs }",
    "metrics": "",
    "extra": "",
}


def make_spec(**parts: str) -> str:
    """The small valid spec with some parts replaced: make_spec(optimizer="optimizer = sgd()")."""
    unknown = set(parts) - set(PARTS)
    assert not unknown, f"no such part: {unknown}"
    merged = {**PARTS, **parts}
    return "\n".join(text for text in merged.values() if text) + "\n"


def where(src: str, needle: str, nth: int = 1) -> tuple[int, int]:
    """(line, col) of the nth occurrence of `needle` in `src`, 1-based."""
    start = -1
    for _ in range(nth):
        start = src.index(needle, start + 1)
    line = src.count("\n", 0, start) + 1
    col = start - (src.rfind("\n", 0, start) + 1) + 1
    return line, col


def text_at(src: str, span: ir.Span) -> str:
    """The source text a span covers (single- or multi-line)."""
    lines = src.splitlines(keepends=True)
    if span.line == span.end_line:
        return lines[span.line - 1][span.col - 1 : span.end_col - 1]
    first = lines[span.line - 1][span.col - 1 :]
    middle = "".join(lines[span.line : span.end_line - 1])
    last = lines[span.end_line - 1][: span.end_col - 1]
    return first + middle + last


def triples(diags) -> list[tuple[str, int, int]]:
    """[(code, line, col), ...] of a list of diagnostics, in the order given."""
    return [(d.code, d.span.line, d.span.col) for d in diags]


# A small spec around a schedule, for schedule tests: format(lr=..., schedule=..., max=...)
SCHEDULE_SPEC = """
data {{
  source = csv("unused.csv", target = "y")
  split  = {{ train = 0.8, val = 0.2 }}
}}
model {{
  input x: f32[4]
  logits = x -> dense(3)
}}
loss      = cross_entropy(logits, target)
optimizer = sgd(lr = {lr})
{schedule}
stop {{ max = {max} }}
metrics = [accuracy]
"""
