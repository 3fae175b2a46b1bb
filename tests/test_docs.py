"""The language reference covers every catalogue entry, key and error code; shipped specs, and the specs in
the READMEs' code blocks, lint clean."""

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


# The trainc code blocks of the READMEs: an untagged block whose first line (after comments) starts a section
# is trainc source. It is a whole spec, which lints and formats clean, unless the line before its fence is
# `<!-- fragment -->`: a fragment (a section or two) formats clean, or elides with `...` and is only read.
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
SOURCE = re.compile(rf"^(?:#.*\n)*(?:{'|'.join(C.SECTIONS)})\s*[{{=]")


def code_blocks(doc: str) -> list[tuple[str, str, bool]]:
    """(where, text, is a fragment) of each trainc block of a document."""
    text = (ROOT / doc).read_text()
    out = []
    for m in FENCE.finditer(text):
        if m.group(1) or not SOURCE.match(m.group(2)):
            continue
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((f"{doc}:{text.count(chr(10), 0, m.start()) + 1}", m.group(2), before == "<!-- fragment -->"))
    return out


BLOCKS = code_blocks("README.md") + code_blocks("specs/README.md")


def test_the_docs_have_whole_specs_and_fragments():  # the pattern finds what it must, or the tests below test nothing
    assert sum(not frag for _, _, frag in BLOCKS) >= 2 and sum(frag for _, _, frag in BLOCKS) >= 10


@pytest.mark.parametrize("where, text, fragment", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_doc_specs_lint_and_format_clean(where, text, fragment):
    from trainc.compiler.fmt import format_text

    if fragment and "..." in text:
        return  # an elided fragment: prose, not a spec
    if not fragment:
        assert [(d.code, d.message) for d in lint(text, str(ROOT / "README.md"))] == [], where
    assert format_text(text, where) == text, f"{where}: not canonical (trainc fmt)"
