"""Fuzzing the front end: nothing a user feeds `check`, `trainc fmt`, `trainc lint` or the language
server yields a traceback, a hang or a blow-up.

Inputs (hypothesis):
- mutations of every shipped spec (`specs/**/*.train`, `examples/*.train`): tokens of the real
  lexer deleted, duplicated, swapped or replaced by a registry name, truncation at any point,
  random characters inserted (control characters, non-ASCII, lone surrogates, brackets, quotes),
  numbers replaced by huge or tiny ones (1e308, 1e999, 99999999999999999999, 400 digits), and
  brackets nested around a token up to 60 deep, balanced or not;
- specs generated from the grammar: sections, entries, calls of registry entries with their own
  keyword names, pipelines, schedules, blocks, `repeat`, lists and records, with random values;
- fixed pathological inputs: empty and whitespace-only files, brackets, calls and operators nested
  5,000 deep, a 5,000-digit integer, huge repeat counts, a 10,000-line file; non-UTF-8 bytes, NUL
  and binary garbage through the CLI.

Properties: `check` returns Diagnostics whose spans lie inside the text (or on line 0, the
builtin span) and render; `format_text` raises SpecError or returns text that parses to the
same syntax tree and formats to itself; every case runs within the deadline (2 s); the language
server's features (diagnostics, completion, hover, definition, symbols, code actions,
formatting) answer at any position without raising or reporting an internal error (E000).

Bugs it found have a test each below: the parser's recursion and Python's int(str) limit (now
E106 past 100 levels, E107 past 4,300 digits), a lone surrogate in the language server, a line of
stray whitespace dropped by recovery, "unexpected end of file" placed by str.splitlines(), and
recovery costing O(n^2) in broken items.

CI-sized by default: about 2,300 cases in under a minute on two cores, the same cases every run
(derandomized). The long run explores fresh random cases, N per property (20,000: ~7 minutes):

    TRAINC_FUZZ_EXAMPLES=20000 .venv/bin/pytest -q tests/test_fuzz.py -p no:cacheprovider -W ignore
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lark.exceptions import LarkError
from lsprotocol import types

from trainc import check, lsp
from trainc.compiler import catalog as C
from trainc.compiler.diagnostics import Diagnostic, SpecError, render
from trainc.compiler.fmt import format_text
from trainc.compiler.parse import parse
from trainc.grammar import parser

ROOT = Path(__file__).resolve().parents[1]
CORPUS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in
          sorted([*ROOT.glob("specs/**/*.train"), *ROOT.glob("examples/*.train")])}
PATH = "fuzz.train"

LONG = os.environ.get("TRAINC_FUZZ_EXAMPLES")
N = int(LONG or 1000)  # cases per property in CI; the slower properties take a share of it


def fuzz_settings(share: float = 1.0):
    return settings(max_examples=max(10, int(N * share)), deadline=2000, derandomize=not LONG, database=None,
                    print_blob=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                            HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------------------------
# The properties
# ---------------------------------------------------------------------------------------------


def assert_checks(text: str) -> list[Diagnostic]:
    """`check` answers with diagnostics inside the text, each renderable, and never raises."""
    diags = check(text, PATH)
    assert isinstance(diags, list)
    lines = text.split("\n")  # Lark counts lines by "\n" only
    for d in diags:
        assert isinstance(d, Diagnostic) and re.fullmatch(r"[EW]\d{3}", d.code) and d.message, d
        s = d.span
        if s.line == 0:  # the builtin span: a default nobody wrote
            continue
        assert s.file == PATH, d
        assert 1 <= s.line <= s.end_line <= len(lines), (d, len(lines))
        assert 1 <= s.col <= len(lines[s.line - 1]) + 1, (d, lines[s.line - 1])
        assert s.end_col <= len(lines[s.end_line - 1]) + 2 and (s.line, s.col) <= (s.end_line, s.end_col), d
        assert render(d, text).startswith(f"{s}: ")
    return diags


def assert_formats(text: str) -> None:
    """`format_text` refuses with diagnostics, or means the same and is a fixed point."""
    try:
        out = format_text(text, PATH)
    except SpecError as e:
        assert e.diagnostics and all(d.code.startswith("E1") for d in e.diagnostics), e.diagnostics
        return
    assert parse(out, PATH) == parse(text, PATH)
    assert format_text(out, PATH) == out


def assert_front_end(text: str) -> None:
    assert_checks(text)
    assert_formats(text)


# ---------------------------------------------------------------------------------------------
# Mutations of the shipped specs
# ---------------------------------------------------------------------------------------------

_FALLBACK = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*|->|[0-9.][0-9.eE+-]*|\w+|\S')
HUGE = ["1e308", "1e999", "-1e308", "1e-400", "99999999999999999999", "9" * 400, "0.000000000000000000001",
        "1e308 epochs", "99999999999999999999 steps", "1e999%"]
NAMES = sorted({n for r in vars(C).values() if isinstance(r, C.Registry) for n in r.names()} | set(C.SECTIONS)
               | {k for keys in C.SECTIONS.values() for k in keys} | {"input", "block", "repeat", "then", "true",
                                                                      "false", "val.loss", "train.accuracy", "x"})
CHARS = st.one_of(st.characters(), st.sampled_from(list('{}()[]",=#\\\n\r\t\x00\x0b\x0c\ufeff\u2028\udcff🙂->.%')))


def tokens(text: str) -> list[tuple[int, int]]:
    """(start, end) of each token: the real lexer's, or a rough split when it refuses the text."""
    try:
        return [(t.start_pos, t.end_pos) for t in parser().lex(text, dont_ignore=True) if t.end_pos > t.start_pos]
    except LarkError:
        return [m.span() for m in _FALLBACK.finditer(text)]


def _token(draw, text):
    toks = tokens(text)
    return draw(st.sampled_from(toks)) if toks else (0, 0)


def delete(draw, text):
    s, e = _token(draw, text)
    return text[:s] + text[e:]


def duplicate(draw, text):
    s, e = _token(draw, text)
    return text[:e] + draw(st.sampled_from([" ", "", "\n", ", "])) + text[s:e] + text[e:]


def swap(draw, text):
    (s1, e1), (s2, e2) = sorted([_token(draw, text), _token(draw, text)])
    if e1 > s2:
        return text
    return text[:s1] + text[s2:e2] + text[e1:s2] + text[s1:e1] + text[e2:]


def replace(draw, text):
    s, e = _token(draw, text)
    return text[:s] + draw(st.sampled_from(NAMES)) + text[e:]


def truncate(draw, text):
    return text[:draw(st.integers(0, len(text)))]


def insert(draw, text):
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.text(CHARS, min_size=1, max_size=6)) + text[at:]


def huge(draw, text):
    numbers = [m.span() for m in re.finditer(r"(?<![\w.])[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?", text)]
    if not numbers:
        return text
    s, e = draw(st.sampled_from(numbers))
    return text[:s] + draw(st.sampled_from(HUGE)) + text[e:]


def nest(draw, text):
    s, e = _token(draw, text)
    depth = draw(st.integers(1, 60))
    opener, closer = draw(st.sampled_from(["()", "[]", "{}", ["f(", ")"], ["-", ""]]))
    close = closer * depth if draw(st.booleans()) else closer * draw(st.integers(0, depth))
    return text[:s] + opener * depth + text[s:e] + close + text[e:]


MUTATIONS = [delete, duplicate, swap, replace, truncate, insert, huge, nest]


@st.composite
def mutated(draw) -> str:
    text = CORPUS[draw(st.sampled_from(sorted(CORPUS)))]
    for _ in range(draw(st.integers(1, 4))):
        text = draw(st.sampled_from(MUTATIONS))(draw, text)
    return text


@fuzz_settings()
@given(mutated())
def test_mutated_specs(text):
    assert_front_end(text)


# ---------------------------------------------------------------------------------------------
# Specs generated from the grammar
# ---------------------------------------------------------------------------------------------

REGISTRIES = {"loss": C.LOSSES, "optimizer": C.OPTIMIZERS, "schedule": C.SCHEDULES, "metrics": C.METRICS,
              "source": C.SOURCES, "early": C.STOP_RULES, "diverge": C.DIVERGENCE, "elastic_net": C.REGULARIZERS,
              "augment": C.AUGMENTATIONS, "init": C.INITS}
ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: s not in ("true", "false", "input", "block", "repeat", "then"))
small = st.integers(1, 64).map(str)
number = st.one_of(small, small, st.integers(0, 300).map(str),
                   st.sampled_from(["0.5", "1e-3", "3e-4", "0.0", ".5", "1.", "2e5"]), st.sampled_from(HUGE[:7]))
string = st.one_of(st.sampled_from(['"d.csv"', '"../examples/data/digits.csv"', '"label"', '""', '"a\\"b"',
                                    '"C:\\\\data"', '"\\n\\t"']),
                   st.text(st.characters(blacklist_characters='"\\\n\r'), max_size=12).map(lambda s: f'"{s}"'))
unit = st.sampled_from(sorted(C.UNITS) + ["parsecs"])


def call(reg: C.Registry, value) -> st.SearchStrategy[str]:
    """A call of one registry entry, with its own keyword names (and a wrong one now and then)."""
    @st.composite
    def make(draw):
        entry = reg.get(draw(st.sampled_from(reg.names())))
        names = [p.name for p in entry.params] + ["bogus"]
        pos = draw(st.lists(value, max_size=2))
        kws = [f"{k} = {draw(value)}" for k in draw(st.lists(st.sampled_from(names), max_size=3, unique=True))]
        return f"{entry.name}({', '.join(pos + kws)})"
    return make()


def atoms() -> st.SearchStrategy[str]:
    return st.one_of(number, st.tuples(number, unit).map(" ".join), number.map(lambda n: n + "%"), string,
                     st.sampled_from(["true", "false", "val.loss", "val.accuracy", "train.loss", "x", "target",
                                      "standard", "none", "he", "balanced", "same"]), ident)


def values() -> st.SearchStrategy[str]:
    def extend(inner):
        return st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
            st.lists(st.tuples(ident, inner), max_size=3).map(lambda kv: "{ " + ", ".join(f"{k} = {v}" for k, v in kv)
                                                              + " }"),
            st.tuples(ident, st.lists(inner, max_size=3)).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", ">=", "<", "then", "->"]), inner).map(" ".join),
            inner.map(lambda v: f"-{v}"), inner.map(lambda v: f"({v})"))
    return st.recursive(atoms(), extend, max_leaves=8)


VALUE = values()
LAYER_CALL = st.one_of(call(C.LAYERS, VALUE), st.sampled_from(C.LAYERS.names()))


@st.composite
def pipeline(draw, names: list[str]) -> str:
    stages = draw(st.lists(st.one_of(LAYER_CALL, LAYER_CALL.map(lambda s: f"repeat {draw(number)} {{ {s} }}"),
                                     st.sampled_from(names)), min_size=1, max_size=6))
    return " -> ".join([draw(st.sampled_from(names))] + stages)


@st.composite
def model(draw) -> list[str]:
    names = ["x"]
    body = [f"input x: {draw(st.sampled_from(['f32', 'f32', 'i32', 'f64']))}"
            f"[{', '.join(draw(st.lists(st.one_of(small, number), min_size=0, max_size=3)))}]"]
    if draw(st.booleans()):
        params = draw(st.lists(ident, max_size=2, unique=True))
        body.append(f"block blk({', '.join(params)}) {{ {draw(pipeline(names + params))} }}")
        names.append("blk")
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(["logits", "pred", "h", "z"]))
        body.append(f"{name} = {draw(pipeline(names))}")
        names.append(name)
    if draw(st.booleans()):
        body.append(f"init = {draw(call(C.INITS, VALUE))}")
    return body


@st.composite
def section(draw, name: str) -> str:
    keys = sorted(C.SECTIONS[name]) + ["bogus"]
    body = []
    for key in draw(st.lists(st.sampled_from(keys), max_size=5)):
        reg = REGISTRIES.get(key)
        value = draw(st.one_of(VALUE, call(reg, VALUE))) if reg else draw(VALUE)
        if key == "split" and draw(st.booleans()):
            stratify = draw(st.sampled_from(["true", "false", "1"]))
            value = f"{{ train = {draw(number)}, val = {draw(number)}, stratify = {stratify} }}"
        body.append(f"{key} = {value}")
    if name == "model":
        body = draw(model())
    sep = draw(st.sampled_from(["\n  ", ", ", "\n\n  "]))
    return f"{name} {{\n  {sep.join(body)}\n}}" if body else f"{name} {{}}"


BASE = ['data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2 }\n}',
        "loss = cross_entropy(logits, target)", "optimizer = adam(lr = 1e-3)", "stop { max = 5 epochs }"]


@st.composite
def generated(draw) -> str:
    items, names = [], draw(st.lists(st.sampled_from(sorted(C.SECTIONS) + ["bogus"]), min_size=1, max_size=9))
    if draw(st.booleans()):  # every required part there and a generated model: the checks get to the shapes
        items, names = [*BASE, draw(section("model"))], names[:draw(st.integers(0, 3))]
    for name in names:
        if name in C.VALUE_SECTIONS:
            reg = REGISTRIES[name]
            if name == "metrics":
                value = f"[{', '.join(draw(st.lists(st.sampled_from(reg.names() + ['bogus']), max_size=4)))}]"
            elif name == "schedule":
                value = " then ".join(draw(st.lists(call(reg, VALUE), min_size=1, max_size=3)))
            else:
                value = draw(call(reg, VALUE))
            items.append(f"{name} = {value}")
        elif name == "stop" and draw(st.booleans()):
            items.append(f"stop {{\n  max = {draw(number)} {draw(unit)}\n  when = val.accuracy >= {draw(number)}\n"
                         f"  early = {draw(call(C.STOP_RULES, VALUE))}\n}}")
        else:
            items.append(draw(section(name if name in C.SECTIONS else "data")))
    return "\n\n".join(items) + draw(st.sampled_from(["\n", "", "\n\n", "  # end\n"]))


@fuzz_settings(0.3)
@given(generated())
def test_generated_specs(text):
    assert_front_end(text)


# ---------------------------------------------------------------------------------------------
# The language server's features on the same inputs
# ---------------------------------------------------------------------------------------------


@fuzz_settings(0.1)
@given(st.one_of(mutated(), generated()), st.data())
def test_language_server_features(text, data):
    lines = text.split("\n")
    uri = "file:///fuzz.train"
    assert not [d for d in lsp.diagnostics(text, PATH) if d.code == "E000"]  # E000: lint raised
    for _ in range(2):
        line = data.draw(st.integers(0, len(lines) - 1))
        pos = types.Position(line=line, character=data.draw(st.integers(0, len(lines[line]) + 1)))
        encoding = data.draw(st.sampled_from(["utf-16", "utf-8", "utf-32"]))
        lsp.completions(text, pos, encoding)
        lsp.hover(text, PATH, pos, encoding)
        lsp.definition(text, PATH, uri, pos, encoding)
        lsp.code_actions(text, PATH, uri, types.Range(start=types.Position(line=0, character=0), end=pos), encoding)
    lsp.symbols(text, PATH)
    lsp.formatting(text, PATH)


# ---------------------------------------------------------------------------------------------
# Fixed pathological inputs
# ---------------------------------------------------------------------------------------------

DIGITS = CORPUS["examples/digits.train"]

def bounded(text: str, seconds: float = 10.0, megabytes: float = 200) -> None:
    """The front end on one input within a time bound (CPU time: the machine may be shared), and `check`
    within a memory bound."""
    t0 = time.process_time()
    assert_front_end(text)
    assert time.process_time() - t0 < seconds
    tracemalloc.start()
    try:
        check(text, PATH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < megabytes * 2**20


MODEL = "model {{\n  input x: f32[8]\n  {body}\n  logits = x -> {stage} -> dense(3)\n}}\n"


@pytest.mark.parametrize("text", [
    "", " ", "\n\n\n", "\t \r\n", "#", "# only a comment\n", "\x00", "\ufeff", "{", "}", "(((", "]]]", '"', "\\",
    "data", "data {", "data = ", "=", "->", "model { input x: f32[] }", "stop { max = 1e999 epochs }",
    "optimizer = adam(lr = " + "9" * 400 + ")", "optimizer = adam(lr = 1e999)",
    DIGITS.replace("\n", "\r\n"), DIGITS.replace("\n", "\r"), DIGITS * 3, DIGITS + "\x00" * 10,
    ",# a comment after a leading comma\n" + DIGITS, "\r# a comment after a stray carriage return\n" + DIGITS,
    MODEL.format(body="", stage="repeat 1e9 { dense(4) }"),
    MODEL.format(body="", stage="repeat 100 { repeat 100 { repeat 100 { dense(4) } } }"),
    MODEL.format(body="block a() { dense(4) }\n  block b() { a * 100 }\n  block c() { b * 100 }\n"
                      "  block d() { c * 100 }", stage="d"),
    MODEL.format(body="block r(n) { repeat n { relu } }", stage="r(99999999999999999999)"),
    MODEL.format(body="block w(n) { dense(n * n * n * n * n * n * n * n * n * n * n * n * n * n * n * n / 3) }",
                 stage="w(99999999999999999999)"),
    MODEL.format(body="", stage=" -> ".join(["relu"] * 5000)),
    "model {\n  input x: f32[16, 8]\n  logits = x -> attention(1e308) -> take_last -> dense(10)\n}\n",
    "model {\n  input x: f32[16, 8]\n  logits = x -> attention(99999999999999999999) -> take_last -> dense(10)\n}\n",
    "loss = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
    "data {\n" * 300,
    "metrics = [" + "accuracy, " * 2000 + "]\n",
    "\n".join(f"# line {i}" for i in range(10_000)),
], ids=lambda t: repr(t[:24]) + (f"...{len(t)}" if len(t) > 24 else ""))
def test_pathological_inputs_are_bounded(text):
    bounded(text)


def test_fmt_refuses_brackets_too_deep_to_lay_out():
    """The parser follows parentheses any depth (they leave no node); the formatter's printer recurses."""
    text = "loss = mse(" + "(" * 5000 + "y" + ")" * 5000 + ", target)\n"
    assert_checks(text)
    with pytest.raises(SpecError) as e:
        format_text(text, PATH)
    (d,) = e.value.diagnostics
    assert (d.code, d.span.line, d.span.col) == ("E106", 1, 12 + 4999)  # the innermost "(", after "loss = mse("
    assert d.message == "brackets nested 5001 deep, too deep to format"  # mse( counts too


def refused(text: str) -> list[Diagnostic]:
    """The diagnostics parse raises for a text."""
    with pytest.raises(SpecError) as e:
        parse(text, PATH)
    return e.value.diagnostics


@pytest.mark.parametrize("text, code, col, deepest", [
    pytest.param("metrics = " + "[" * 5000 + "]" * 5000 + "\n", "E106", 11 + 100, 5000, id="[] 5000 deep"),
    pytest.param("data = " + "{ a = " * 5000 + "1" + " }" * 5000 + "\n", "E106", 8 + 6 * 100, 5000, id="{} 5000 deep"),
    pytest.param("loss = " + "f(" * 5000 + ")" * 5000 + "\n", "E106", 8 + 2 * 100, 5000, id="calls 5000 deep"),
    pytest.param("loss = " + "-" * 5000 + "1\n", "E106", 8 + 100, 5000, id="unary minus 5000 deep"),
    pytest.param("loss = " + " + ".join(["1"] * 5000) + "\n", "E106", 8, 4999, id="a sum of 5000 terms"),
    pytest.param("stop { max = " + "9" * 5000 + " epochs }\n", "E107", 14, None, id="5000-digit integer"),
])
def test_deep_nesting_in_the_parser(text, code, col, deepest):
    """Was a RecursionError (Lark's Transformer recursed once per level) or a ValueError (int() refuses
    4,300+ digits) out of parse; now one syntax error at the first level past the limit, or at the number."""
    bounded(text)
    (d,) = [d for d in check(text, PATH) if d.code.startswith("E1")]
    assert (d.code, d.span.line, d.span.col) == (code, 1, col)
    if deepest:
        assert d.message == f"nested {deepest} deep, more than the 100 levels trainc reads"
    else:
        assert (d.message, d.span.end_col) == ("a whole number of 5000 digits, too long to read", 14 + 5000)


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{ a = ", " }"), ("f(", ")"), ("f(a = ", ")"), ("-", ""),
                                            ("repeat 2 { ", " }"), ("(-", ")")])
def test_nesting_past_100_levels_is_refused_where_it_passes(opener, closer):
    """100 levels parse; the 101st is E106, at its position, in a whole file and in one item of a broken one.
    Parentheses leave no node, so they count no level: `(-` is one level, at its '-'."""
    assert parse(f"loss = {opener * 99}1{closer * 99}\n", PATH)  # 100 levels: the entry's value counts one
    col = 8 + 100 * len(opener) + opener.count("(-")  # the 101st level starts there
    (d,) = refused(f"loss = {opener * 101}1{closer * 101}\n")
    assert (d.code, d.span.line, d.span.col) == ("E106", 1, col)
    broken = f"data {{\n  batch 64\n}}\n\nloss = {opener * 101}1{closer * 101}\n"
    assert [(d.code, d.span.line, d.span.col) for d in check(broken, PATH) if d.code.startswith("E1")] == \
        [("E102", 2, 9), ("E106", 5, col)]


def test_a_whole_number_of_4300_digits_still_reads():
    assert [d.code for d in check("stop { max = " + "9" * 4300 + " epochs }\n", PATH) if d.code.startswith("E1")] == []
    (d,) = refused("stop { max = " + "9" * 4301 + " epochs }\n")
    assert d.code == "E107"


def test_language_server_on_deep_nesting():
    """Was an internal error (E000): the parser's RecursionError went through lsp.analyze and lint."""
    text = "metrics = " + "[" * 5000 + "]" * 5000 + "\n"
    found = lsp.diagnostics(text, PATH)
    assert [(d.code, d.range.start.character) for d in found if d.code.startswith(("E0", "E1"))] == [("E106", 110)]
    assert [s.name for s in lsp.symbols(text, PATH)] == []
    assert lsp.hover(text, PATH, types.Position(line=0, character=5)) is not None  # the section's documentation


def test_language_server_lone_surrogate():
    """Was a UnicodeEncodeError: units() encoded a line to count UTF-8 code units; a lone surrogate
    (which JSON can carry) counts 3, as its surrogatepass encoding."""
    text = 'stop { max = 3 epochs }\nrun { device = "\ud800" }\n'
    (d,) = [d for d in lsp.diagnostics(text, PATH, "utf-8") if d.code == "E305"]
    assert (d.range.start.line, d.range.start.character, d.range.end.character) == (1, 15, 20)


@pytest.mark.parametrize("text", ["\r# a comment after a stray carriage return\n", "\xa0\n", "\x0b\n"],
                         ids=["CR", "NBSP", "VT"])
def test_a_line_of_stray_whitespace_is_a_syntax_error(text):
    """Was silent: recovery skipped lines that str.strip() finds blank, the lexer's refused character with them."""
    assert [(d.code, d.span.line, d.span.col) for d in check(text + DIGITS, PATH) if d.code.startswith("E1")] == \
        [("E101", 1, 1)]


@pytest.mark.parametrize("text", ['loss = mse("\r", target', 'loss = mse("\u2028", target',
                                  "loss = mse(\x0c\n  a, target"], ids=["CR", "LINE SEPARATOR", "FF"])
def test_end_of_file_is_on_the_last_line(text):
    """Was past the end: 'unexpected end of file' was placed by str.splitlines(), which also breaks at \\r, \\f,
    \\u2028, ...; Lark counts '\\n' only."""
    (d,) = [d for d in check(text, PATH) if d.code == "E102"]
    last = text.split("\n")[-1]
    assert (d.message, d.span.line, d.span.col) == ("unexpected end of file", len(text.split("\n")), len(last) + 1)


def test_broken_items_cost_linear_time():
    """Was O(n^2): each broken item was parsed again behind as many newlines as the lines before it
    (3,000 lines of `data {` took ~20 s)."""
    def seconds(n: int) -> float:
        t0 = time.process_time()
        check("data {\n" * n, PATH)
        return time.process_time() - t0

    seconds(50)  # warm up
    assert seconds(800) < 8 * seconds(200)  # linear: ~4x; quadratic: ~16x


@pytest.mark.parametrize("opener, closer", [("(", ")"), ("[", "]"), ("{ a = ", " }"), ("f(", ")"), ("-", "")])
def test_nesting_the_parser_follows_is_bounded(opener, closer):
    """100 levels, the most the parser reads (E106 past it): deeper than any spec; check and fmt stay linear."""
    for depth in (25, 50, 100):
        bounded(f"loss = {opener * depth}1{closer * depth}\n", seconds=0.5 * depth / 25)


# ---------------------------------------------------------------------------------------------
# The CLI: bytes in, a message out, never a traceback
# ---------------------------------------------------------------------------------------------


def lint(stdin: bytes | None = None, *files: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", "lint", "--no-data", *(files or ["-"])], input=stdin,
                          capture_output=True, cwd=cwd, env=env, timeout=60)


@pytest.mark.parametrize("stdin, code, words", [
    (b"data {\xff\xfe}\n", 1, b"<stdin>:1:7: error[E108]: not UTF-8 text: byte 0xff is an invalid start byte"),
    (bytes(range(256)) * 8, 1, b"<stdin>:3:115: error[E108]: not UTF-8 text: byte 0x80"),
    (DIGITS.encode("utf-16"), 1, b"<stdin>:1:1: error[E108]: not UTF-8 text"),
    (b"", 1, b"error[E205]: missing data section"),
    (b" \n\t\n", 1, b"error[E205]: missing data section"),
    (b"data {\x00}\n", 1, b"error[E101]: unexpected character '\\x00'"),
    (DIGITS.replace("1e-5", "9" * 400).encode(), 1, b"error[E304]: 'to' of cosine is out of range: inf"),
    (DIGITS.encode() * 300, 1, b"error[E209]"),
    (("loss = " + "(" * 5000 + "1" + ")" * 5000 + "\n").encode(), 1, b"error[E205]"),
])
def test_cli_lint_answers_any_bytes(stdin, code, words):
    r = lint(stdin)
    assert r.returncode == code, r.stderr
    assert words in r.stderr and b"Traceback" not in r.stderr and b"internal error" not in r.stderr, r.stderr


def test_cli_lint_non_utf8_file(tmp_path):
    (tmp_path / "bad.train").write_bytes(b"data {\n  batch = 64 \xe9\n}\n")
    (tmp_path / "deep.train").write_text("metrics = " + "[" * 5000 + "]" * 5000 + "\n")
    r = lint(None, "bad.train", cwd=tmp_path)
    assert r.returncode == 1 and b"bad.train:2:14: error[E108]: not UTF-8 text: byte 0xe9" in r.stderr, r.stderr
    r = lint(None, "deep.train", cwd=tmp_path)  # was an internal error, exit 2: the parser's RecursionError
    assert r.returncode == 1 and b"deep.train:1:111: error[E106]: nested 5000 deep" in r.stderr, r.stderr
