"""Golden error specs: each specs/errors/*.train states its diagnostics in `# expect: CODE line:col`
header lines; lint must report exactly those, in that order, and each must render with a caret.

File names say the category: syntax_, recovery_ (a syntax error that does not hide the others),
name_, value_, unit_, shape_, conflict_, and for the cross-field rules runlength_, threshold_, mode_, logits_;
the tests below hold the corpus to covering each."""

from __future__ import annotations

import os
import re
import sys

import pytest

from trainc.compiler import catalog as C
from trainc.compiler import lint, parse_partial
from trainc.compiler.diagnostics import render

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import ERROR_SPECS, triples  # noqa: E402

EXPECT = re.compile(r"# expect: ([EW]\d{3}) (\d+):(\d+)$")
SPECS = sorted(ERROR_SPECS.glob("*.train"))


def expected(text: str) -> list[tuple[str, int, int]]:
    """The `# expect:` lines at the top of a spec, up to the first line that is not one."""
    out = []
    for line in text.splitlines():
        m = EXPECT.match(line)
        if not m:
            break
        out.append((m[1], int(m[2]), int(m[3])))
    return out


def test_there_are_enough_golden_specs_in_every_family_and_category():
    assert len(SPECS) >= 45
    families = {code[:2] for path in SPECS for code, _, _ in expected(path.read_text())}
    assert families >= {"E1", "E2", "E3", "E4", "W2", "W3", "W4"}
    categories = {p.stem.split("_")[0] for p in SPECS}
    assert categories >= {"syntax", "recovery", "name", "value", "unit", "shape", "conflict"}


def test_there_is_a_syntax_error_in_every_section():
    """The items that fail to parse, over every syntax_ and recovery_ spec, are every section."""
    broken = set()
    for path in SPECS:
        if path.stem.startswith(("syntax_", "recovery_")):
            broken |= parse_partial(path.read_text(), str(path))[2]
    assert broken >= set(C.SECTIONS), sorted(set(C.SECTIONS) - broken)


def test_a_shape_error_for_every_kind_of_layer():
    kinds = {"dense", "conv2d", "conv1d", "maxpool", "lstm", "gru", "attention", "transformer", "embedding",
             "reshape", "concat", "add", "groupnorm"}
    found = set()
    for path in SPECS:
        text = path.read_text()
        for d in lint(text, str(path)):
            if d.code == "E401":
                found.add(re.match(r"\w+", d.message.replace("cannot reshape", "reshape"))[0])
    assert found >= kinds, sorted(kinds - found)


@pytest.mark.parametrize("path", [p for p in SPECS if p.stem.startswith("name_unknown_")], ids=lambda p: p.stem)
def test_near_misses_get_a_did_you_mean(path):
    (d,) = lint(path.read_text(), str(path))
    assert d.help and d.help.startswith("did you mean '"), d.help


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_golden_spec_header(path):
    lines = path.read_text().splitlines()
    n = len(expected(path.read_text()))
    assert n >= 1, "no `# expect: CODE line:col` header"
    assert lines[n].startswith("# ") and len(lines[n]) > 10, "no comment saying what is wrong"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_golden_spec_diagnostics(path):
    text = path.read_text()
    diags = lint(text, str(path))
    assert triples(diags) == expected(text)
    assert {d.span.file for d in diags} == {str(path)}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_golden_spec_diagnostics_render_with_a_caret(path):
    text = path.read_text()
    for d in lint(text, str(path)):
        out = render(d, text).splitlines()
        assert out[0] == f"{path}:{d.span.line}:{d.span.col}: {d.severity}[{d.code}]: {d.message}"
        source_line = text.splitlines()[d.span.line - 1]
        assert out[2] == f"{d.span.line} | {source_line}"
        gutter = " " * len(str(d.span.line))
        caret = out[3]
        assert caret.startswith(f"{gutter} | ")
        marks = caret[len(gutter) + 3 :]
        assert marks.lstrip(" ").strip("^") == ""
        assert len(marks) - len(marks.lstrip(" ")) == d.span.col - 1  # the caret starts under the span
        if d.span.end_line == d.span.line and d.span.col < d.span.end_col <= len(source_line) + 1:
            assert marks.count("^") == d.span.end_col - d.span.col  # ... and is as wide as the span
        else:
            assert marks.count("^") >= 1
