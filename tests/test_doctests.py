"""The examples in the package's docstrings (`>>> ...`) run as tests: every module that has one is found by
reading the source, so a new example is tested without being listed here."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


def _modules_with_examples() -> list[str]:
    out = []
    for top in ("compiler", "runtime", "trainc"):
        for path in sorted((REPO / top).rglob("*.py")):
            if ">>> " not in path.read_text():
                continue
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out.append(".".join(parts) if top == "trainc" else "trainc." + ".".join(parts))
    return out


MODULES = _modules_with_examples()


def test_the_examples_are_found_and_run():
    assert len(MODULES) >= 5
    ran = sum(doctest.testmod(importlib.import_module(n)).attempted for n in MODULES)
    assert ran >= 6  # examples marked `+SKIP` (they need files) are not counted


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (see the output)"
