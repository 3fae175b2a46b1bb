"""trainc: a declarative training language for deep learning, compiled to tinygrad."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .compiler.diagnostics import Diagnostic

__version__ = "0.1.0"


def check(text: str, path: str = "<string>") -> list[Diagnostic]:
    """Every static problem in a spec, sorted by position: syntax, names, argument types and ranges,
    units, shapes and cross-field rules, without reading data or building a tensor. The one
    diagnostics core behind `trainc lint`, `trainc run`'s refusal, the language server and the tests.

    >>> [(d.code, d.span.line, d.span.col) for d in check("optimizer = adamm()\\n", "t.train")][-1]
    ('E201', 1, 13)
    """
    from .compiler import lint  # imported here: `import trainc` stays cheap

    return lint(text, path)


__all__ = ["check", "__version__"]
