"""The language reference covers every catalogue entry, key and error code; shipped specs lint clean."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainc.compiler import catalog as C
from trainc.compiler import lint

ROOT = Path(__file__).parents[1]
REFERENCE = (ROOT / "specs" / "README.md").read_text()
SOURCES = "\n".join(p.read_text() for p in [*(ROOT / "compiler").glob("*.py"), *(ROOT / "runtime").glob("*.py")])


@pytest.mark.parametrize("registry", [C.LAYERS, C.INITS, C.LOSSES, C.OPTIMIZERS, C.SCHEDULES, C.METRICS, C.SOURCES,
                                      C.DIVERGENCE, C.REGULARIZERS,
                                      C.STOP_RULES], ids=lambda r: r.kind)
def test_every_catalogue_entry_is_documented(registry):
    missing = [n for n in registry.names() if not re.search(rf"`{n}[(`]", REFERENCE)]
    assert not missing, f"specs/README.md does not document these {registry.kind}s: {missing}"


def test_every_section_key_is_documented():
    missing = [f"{s}.{k}" for s, keys in C.SECTIONS.items() for k in keys if f"`{k}`" not in REFERENCE]
    assert not missing, missing


def test_every_error_code_used_is_documented():
    used = set(re.findall(r'"(E\d{3})"', SOURCES))
    documented = set(re.findall(r"^\| (E\d{3}) \|", REFERENCE, re.M))
    assert used and used <= documented, sorted(used - documented)


SHIPPED = sorted(p for p in [*ROOT.glob("examples/*.train"), *ROOT.glob("specs/*.train")])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_specs_lint_clean(path):
    assert lint(path.read_text(), str(path)) == []


def test_readme_example_is_the_digits_spec():
    readme = (ROOT / "README.md").read_text()
    spec = (ROOT / "examples" / "digits.train").read_text()
    body = spec.split("\n\n", 1)[1]  # after the header comment
    assert body.strip() in readme
