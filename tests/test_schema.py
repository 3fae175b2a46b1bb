"""One schema for section keys (issue 15): every key of a block section is declared once, in
compiler/catalog/sections.py, with its type, default and doc; resolve, completion, hover and the README's
key table all read it from there."""

from __future__ import annotations

import ast
import re

import pytest
from helpers import REPO
from lsprotocol import types
from trainc.compiler import catalog as C
from trainc.compiler import parse, resolve_partial
from trainc.compiler.catalog import docs, sections

from trainc import lsp

DECLARED = [(s, k) for s, keys in sections.KEYS.items() for k in keys]

EVERY_KEY = """\
data {
  source = csv("x.csv", target = "y")
  split = { train = 0.8, val = 0.2 }
  train = csv("a.csv", target = "y")
  val = csv("b.csv", target = "y")
  test = csv("c.csv", target = "y")
  normalize = standard
  target_normalize = none
  batch = 8
  shuffle = true
  sampler = none
  task = classification
  augment = [noise(std = 0.05)]
}
model {
  input x: f32[4]
  logits = x -> dense(3)
}
loss = cross_entropy(logits, target)
optimizer = adam(lr = 1e-3)
regularization {
  l1 = 0.1
  l2 = { value = 0.1, on = [logits] }
  elastic_net = elastic_net(0.1)
  weight_decay = 0.1
  clip_grad_norm = 1
  clip_grad_value = 1
  accumulate = 2
}
stop {
  max = 3 epochs
  early = plateau(val.loss)
  when = val.accuracy >= 0.9
  budget = 10 min
  min = 1 epochs
  diverge = stop
}
checkpoint {
  every = 1 epochs
  keep = best(val.loss)
  last = 2
}
run {
  seed = 1
  device = cpu
  precision = f32
  beam = 0
}
"""


@pytest.mark.parametrize("where", [(s, k) for s, keys in C.SECTIONS.items() for k in keys], ids=".".join)
def test_every_section_key_is_declared(where):
    section, key = where
    d = sections.key(section, key)
    assert d.doc and d.doc == C.SECTIONS[section][key]
    assert isinstance(d.type, C.Registry) or d.describe(), "a type that describes itself"
    assert d.show_default(), "a default the docs can spell"
    if d.via is None:  # converted by resolve.convert against the type: the default is a value of it
        default = d.default
        values = (default.classification, default.regression) if isinstance(default, C.ByTask) else (default,)
        for v in values:
            if isinstance(d.type, C.Choice):
                assert v is None or v in d.type.options, v
            elif isinstance(d.type, C.Num):
                assert v is None or d.type.lo <= v <= d.type.hi, v
            elif isinstance(d.type, C.Bool_):
                assert isinstance(v, bool), v


def test_sections_and_key_values_derive_from_the_declarations():
    assert {s: list(keys) for s, keys in C.SECTIONS.items()} == {s: list(keys) for s, keys in sections.KEYS.items()}
    for (section, key), typ in C.KEY_VALUES.items():
        if section in sections.KEYS and key in sections.KEYS[section]:
            assert typ is sections.key(section, key).type


def test_resolve_reads_every_declared_key_and_no_other(monkeypatch):
    """Resolving a spec that sets every key reads each one through its declaration, and nothing else."""
    bodies = {s: re.search(rf"^{s} \{{(.*?)^\}}", EVERY_KEY, re.M | re.S).group(1) for s, keys in sections.KEYS.items()
              if keys}
    written = {(s, k) for s, k in DECLARED if re.search(rf"^  {k} =", bodies[s], re.M)}
    assert written == set(DECLARED), f"add these keys to EVERY_KEY: {sorted(set(DECLARED) - written)}"
    read = []
    original = sections.key
    monkeypatch.setattr(sections, "key", lambda s, k: read.append((s, k)) or original(s, k))
    spec, _ = resolve_partial(parse(EVERY_KEY, "every.train"), "every.train")
    assert set(read) == set(DECLARED), sorted(set(DECLARED) ^ set(read))
    assert spec.regularization.weight_decay == 0.1 and spec.checkpoint.last == 2 and spec.run.seed == 1


def test_resolve_writes_no_type_or_default_for_a_declared_key():
    """In resolve.py, a section's `get(...)` names a declared key and gives it no type or default."""
    tree = ast.parse((REPO / "compiler" / "resolve.py").read_text())
    names = {k for _, k in DECLARED}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
             and n.func.id == "get" and n.args and isinstance(n.args[0], ast.Constant)]
    assert len(calls) >= 25
    for c in calls:
        assert c.args[0].value in names, c.args[0].value
        extra = [a for a in c.args[1:] if not (isinstance(a, ast.Name) or isinstance(a, ast.Constant)
                                               and a.value == c.args[0].value)]
        assert not extra, f"line {c.lineno}: get({c.args[0].value!r}, ...) passes a type or default"


def test_readme_key_table_is_current():
    text = docs.readme().read_text()
    assert docs.BEGIN in text and docs.END in text
    assert docs.render(text) == text, "run: .venv/bin/python -m trainc.compiler.catalog.docs"
    for section, key in DECLARED:
        assert f"`{section}.{key}`" in text


def _after(section: str, key: str) -> tuple[str, types.Position]:
    text = f"{section} {{\n  {key} = \n}}\n"
    return text, types.Position(line=1, character=len(f"  {key} = "))


@pytest.mark.parametrize("where", [w for w in DECLARED if isinstance(sections.key(*w).type, (C.Choice, C.Bool_,
                                                                                               C.Registry))],
                         ids=".".join)
def test_value_completion_comes_from_the_declaration(where):
    d = sections.key(*where)
    labels = {i.label for i in lsp.completions(*_after(*where))}
    if isinstance(d.type, C.Choice):
        assert labels == set(d.type.options)
    elif isinstance(d.type, C.Bool_):
        assert labels == {"true", "false"}
    else:
        assert labels == set(d.type.names())


@pytest.mark.parametrize("section", [s for s, keys in sections.KEYS.items() if keys])
def test_key_completion_and_hover_come_from_the_declaration(section):
    items = {i.label: i for i in lsp.completions(f"{section} {{\n  \n}}\n", types.Position(line=1, character=2))}
    assert list(items) == list(sections.KEYS[section])
    for key, d in sections.KEYS[section].items():
        doc = items[key].documentation.value
        assert d.doc in doc and d.show_default() in doc
        text = f"{section} {{\n  {key} = 1\n}}\n"
        h = lsp.hover(text, "x.train", types.Position(line=1, character=3))
        assert h is not None and f"`{section}.{key}`: {d.doc}" in h.contents.value
