"""The operative spec (compiler/operative.py): its hash depends on meaning alone, and its values read as spec text."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from trainc.compiler import analyze, parse
from trainc.compiler.emit import to_data
from trainc.compiler.operative import operative, spec_hash
from trainc.compiler.parse import parse_expr

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted([*ROOT.glob("specs/*.train"), *ROOT.glob("examples/*.train")])
DIGITS = (ROOT / "examples/digits.train").read_text()


def _hash(text: str, path: str = "examples/digits.train") -> str:
    return spec_hash(analyze(text, path))


@pytest.mark.parametrize("text, path, same", [
    ("# a comment\n" + DIGITS, "examples/digits.train", True),  # every line moves down
    (DIGITS.replace("batch     = 64", "batch = 64"), "examples/digits.train", True),  # columns move
    (DIGITS, "./examples/digits.train", True),
    (DIGITS, "/elsewhere/digits.train", True),
    (DIGITS.replace("lr = 3e-3", "lr = 0.003"), "examples/digits.train", True),  # the same number
    (DIGITS.replace("lr = 3e-3", "lr = 1e-3"), "examples/digits.train", False),
    (DIGITS.replace("batch     = 64", "batch     = 32"), "examples/digits.train", False),
    (DIGITS.replace("dropout(0.1)", "dropout(0.2)"), "examples/digits.train", False),
])
def test_the_spec_hash_changes_with_meaning_not_with_layout_or_path(text, path, same):
    assert (_hash(text, path) == _hash(DIGITS)) is same


def _nodes(data):
    if isinstance(data, dict):
        yield data.get("node")
        for v in data.values():
            yield from _nodes(v)
    elif isinstance(data, list):
        for v in data:
            yield from _nodes(v)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_hashed_data_holds_no_position_and_every_value_reads_as_spec_text(path):
    text = path.read_text()
    spec = analyze(text, str(path))
    data = to_data(spec, positions=False)
    assert "Span" not in set(_nodes(data)) and "at" not in yaml.safe_dump(data).split(":")[0::2]
    doc = operative(spec, parse(text, str(path)))
    for name, s in doc["settings"].items():
        if isinstance(s["value"], str):
            parse_expr(s["value"], name)  # raises SpecError when not spec syntax


@pytest.mark.parametrize("name, value, origin", [
    ("checkpoint.every", "1 epochs", "default"),  # no checkpoint section: its defaults are still shown
    ("checkpoint.last", "1", "default"),
    ("checkpoint.keep", None, "default"),
    ("stop.max", "30 epochs", "spec"),
    ("loss", "cross_entropy(logits, target, smoothing = 0.05)", "spec"),
    ("metrics", "[accuracy]", "spec"),
    ("data.source", 'csv("data/digits.csv", target = label)', "spec"),
    ("stop.early", "plateau(val.loss, patience = 5, min_delta = 0.0001, mode = min, restore_best = true)", "spec"),
])
def test_operative_values_are_written_as_a_spec_writes_them(name, value, origin):
    s = operative(analyze(DIGITS, "d.train"), parse(DIGITS, "d.train"))["settings"][name]
    assert (s["value"], s["from"]) == (value, origin)


@pytest.mark.parametrize("optimizer, defaults", [
    ("adamw(lr = 3e-3, weight_decay = 0.01)", ["b1", "b2", "eps"]),
    ("adamw(lr = 3e-3, b2 = 0.99, weight_decay = 0.01)", ["b1", "eps"]),
    ("sgd(1e-2)", ["momentum", "nesterov", "weight_decay"]),  # a positional lr is written
])
def test_defaulted_call_arguments_are_marked(optimizer, defaults):
    text = DIGITS.replace("adamw(lr = 3e-3, weight_decay = 0.01)", optimizer)
    s = operative(analyze(text, "d.train"), parse(text, "d.train"))["settings"]["optimizer"]
    assert s["defaults"] == defaults
