"""`trainc fmt`: round-trips over every spec, a table of messy inputs and their canonical layout,
and the command through the real entry point."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter

import pytest

from trainc.compiler import check_file, ir, lint
from trainc.compiler import fmt as fmt_module
from trainc.compiler.diagnostics import SpecError
from trainc.compiler.fmt import format_text
from trainc.compiler.parse import parse
from trainc.grammar import parser

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import REPO  # noqa: E402


def _parses(path) -> bool:
    try:
        parse(path.read_text(), str(path))
    except SpecError:
        return False
    return True


SPECS = sorted(REPO.glob("specs/*.train")) + sorted(REPO.glob("examples/*.train")) + \
    [p for p in sorted(REPO.glob("specs/errors/*.train")) if _parses(p)]
BROKEN = [p for p in sorted(REPO.glob("specs/errors/*.train")) if not _parses(p)]


def comment_texts(text: str) -> Counter:
    return Counter(fmt_module.comments(text))


# ---- (a) every spec: idempotent, same IR, same lint codes, every comment kept ---------------------------


def test_there_are_specs_of_both_kinds():
    assert len(SPECS) >= 20 and len(BROKEN) >= 5


@pytest.mark.parametrize("path", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_format_round_trip(path):
    name = str(path)
    text = path.read_text()
    once = format_text(text, name)
    assert format_text(once, name) == once
    assert check_file(parse(once, name), name)[0] == check_file(parse(text, name), name)[0]
    assert [d.code for d in lint(once, name)] == [d.code for d in lint(text, name)]
    assert comment_texts(once) == comment_texts(text)
    assert comment_texts(text)  # every spec explains itself, so the comparison above compares something


def respace(text: str, rng: random.Random) -> str:
    """The same tokens and line breaks, with random spaces and tabs between the tokens of a line."""
    toks = [t for t in parser().lex(text, dont_ignore=True) if t.type != "_NL" and not t.type.startswith("__IGNORE")]
    out, prev = [], None
    for tok in toks:
        if prev is not None and tok.line > prev.end_line:
            out.append("\n" * (tok.line - prev.end_line) + rng.choice(["", " ", "    ", "\t"]))
        elif prev is not None:  # some space stays where there was some: `input x` must not become `inputx`
            out.append(rng.choice([" ", "  ", "\t", " \t  "] + [""] * (tok.column == prev.end_column)))
        out.append(str(tok))
        prev = tok
    return "".join(out)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_spaces_within_a_line_do_not_matter(path):
    text = path.read_text()
    rng = random.Random(path.name)
    messy = respace(text, rng)
    assert messy != text
    assert format_text(messy, str(path)) == format_text(text, str(path))


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.stem)
def test_a_spec_with_a_syntax_error_is_refused_with_its_diagnostic(path):
    text = path.read_text()
    with pytest.raises(SpecError) as e:
        format_text(text, str(path))
    code, at = text.splitlines()[0].removeprefix("# expect: ").split()
    assert [(d.code, f"{d.span.line}:{d.span.col}") for d in e.value.diagnostics] == [(code, at)]


SHIPPED = sorted(REPO.glob("specs/*.train")) + sorted(REPO.glob("examples/*.train"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_spec_is_canonical_and_lints_clean(path):
    """`trainc fmt --check specs/*.train examples/*.train` passes, and lint finds nothing (the broken specs in
    specs/errors are exempt: their columns are what the tests expect)."""
    text = path.read_text()
    assert format_text(text, str(path)) == text
    assert lint(text, str(path)) == []


# ---- (b) messy input -> the canonical layout ----------------------------------------------------------------

CASES = [
    # spacing within a line
    ("a=1", "a = 1\n"),
    ("loss=cross_entropy( logits ,target,smoothing=0.05 )", "loss = cross_entropy(logits, target, smoothing = 0.05)\n"),
    ("h = x->dense( 10 ,init=he)->relu", "h = x -> dense(10, init = he) -> relu\n"),
    ("s = warmup(200 steps)then cosine(to=1e-5)", "s = warmup(200 steps) then cosine(to = 1e-5)\n"),
    ("w = val.accuracy>=0.99", "w = val.accuracy >= 0.99\n"),
    ("v = a+b*c/d-e", "v = a + b * c / d - e\n"),
    ("v = - x * -2 + (a - - 3)", "v = -x * -2 + (a - -3)\n"),
    ("v = x -> - y", "v = x -> -y\n"),
    ("v = [ - 1, 2 *- 1 ]", "v = [-1, 2 * -1]\n"),
    ("v = ((a + b)) * c", "v = ((a + b)) * c\n"),  # the user's parentheses stay
    ("n = [3e-3, 1.0, 1E5, .5, 1., 007]", "n = [3e-3, 1.0, 1E5, .5, 1., 007]\n"),  # numbers as spelt
    ("q = [10 %, 3   epochs, -2 steps]", "q = [10%, 3 epochs, -2 steps]\n"),
    ('s = "a  \\"b\\"  c"', 's = "a  \\"b\\"  c"\n'),
    ("b = [true,false]", "b = [true, false]\n"),
    ("r = {train=0.8,val=0.2}", "r = { train = 0.8, val = 0.2 }\n"),
    ("r = { }\nq = {\n}", "r = {}\nq = {}\n"),
    ("l = [ ]\nf = g( )", "l = []\nf = g()\n"),
    ("m = f(x, y = [1, { a = 1 }])", "m = f(x, y = [1, { a = 1 }])\n"),
    ("stop{max=3 epochs , when=val.loss<0.1,}", "stop { max = 3 epochs, when = val.loss < 0.1 }\n"),
    ("model {\ninput x :f32 [ 1,8,8 ]\n}", "model {\n  input x: f32[1, 8, 8]\n}\n"),
    ("model {\n  block mlp( w , d = 2 ){dense( w )->relu}\n}",
     "model {\n  block mlp(w, d = 2) { dense(w) -> relu }\n}\n"),
    ("model {\n  block b(x) {\n      dense(x)  }\n}", "model {\n  block b(x) {\n    dense(x)\n  }\n}\n"),
    ("h = x->repeat 3{dense(64)->relu}->dense(10)", "h = x -> repeat 3 { dense(64) -> relu } -> dense(10)\n"),
    ("h = x -> blk(2) * 3", "h = x -> blk(2) * 3\n"),
    ("a = 1, b = 2", "a = 1, b = 2\n"),  # statements the user put on one line stay there
    # line breaks, blank lines, indentation
    ("\n\n\na = 1\n\n\n\nb = 2\n\n\n", "a = 1\n\nb = 2\n"),
    ("data {\n\n\n    batch = 64\n\n\n\n        shuffle = true\n\n}",
     "data {\n  batch = 64\n\n  shuffle = true\n}\n"),
    ("data { batch = 64\n shuffle = true }", "data {\n  batch   = 64\n  shuffle = true\n}\n"),
    ("data {\n  batch = 64,\n  shuffle = true,\n}", "data {\n  batch   = 64\n  shuffle = true\n}\n"),
    ("a = 1\r\nb = 2\r\n", "a = 1\nb = 2\n"),
    ("data {\n\tbatch = 1\n}", "data {\n  batch = 1\n}\n"),
    # alignment of `=`
    ("source = csv(\"d.csv\")\nbatch = 64\nnormalize = standard",
     'source    = csv("d.csv")\nbatch     = 64\nnormalize = standard\n'),
    ("a = 1\nlonger = 2\n\nb = 3\nc = 4", "a      = 1\nlonger = 2\n\nb = 3\nc = 4\n"),  # a blank line ends a run
    ("a = 1\n# why b\nlonger = 2", "a      = 1\n# why b\nlonger = 2\n"),  # a comment line does not
    ("loss = l\nstop { max = 1 epochs }\noptimizer = o",  # nor does a one-line section, itself unaligned
     "loss      = l\nstop { max = 1 epochs }\noptimizer = o\n"),
    ("a = 1\nrun {\n  seed = 0\n}\nlonger = 2",  # a section over several lines does
     "a = 1\nrun {\n  seed = 0\n}\nlonger = 2\n"),
    ("model {\n  input x: f32[4]\n  h = x\n  logits = h\n}",
     "model {\n  input x: f32[4]\n  h      = x\n  logits = h\n}\n"),
    ("split = {\ntrain = 0.8\nvalidation = 0.2\n}\nb = 1",
     "split = {\n  train      = 0.8\n  validation = 0.2\n}\nb     = 1\n"),
    # lines broken inside (...) and [...]
    ("optimizer = sgd(lr = 0.05,\n  momentum = 0.9,\n      freeze = [features],)",
     "optimizer = sgd(lr = 0.05,\n                momentum = 0.9,\n                freeze = [features])\n"),
    ("optimizer = sgd(\n      lr = 0.05, momentum = 0.9,\n   nesterov = true)",
     "optimizer = sgd(\n  lr = 0.05, momentum = 0.9,\n  nesterov = true\n)\n"),
    ("m = [\n  accuracy\n  , f1\n]", "m = [\n  accuracy,\n  f1\n]\n"),
    ("m = [accuracy,\n\n\n   f1]", "m = [accuracy,\n\n     f1]\n"),
    ("x = f(a, g(b,\n c))", "x = f(a, g(b,\n           c))\n"),
    ("data {\n  split = kfold(5,\n  seed = 1)\n}", "data {\n  split = kfold(5,\n                seed = 1)\n}\n"),
    ("o = sgd(groups = {\nbody = { lr = 1 }\n})", "o = sgd(groups = {\n  body = { lr = 1 }\n})\n"),
    ("h = (x -> dense(1)\n  -> relu)", "h = (x -> dense(1)\n     -> relu)\n"),
    # comments
    ("# header\n\n\n# more\na = 1  # why\n", "# header\n\n# more\na = 1  # why\n"),
    ("a = 1 # one   \nlonger = 2      # two\nc = 3\nd = 4 # four",
     "a      = 1  # one\nlonger = 2  # two\nc      = 3\nd      = 4  # four\n"),
    ("data {   # where from\n  batch = 1\n}   # end", "data {  # where from\n  batch = 1\n}  # end\n"),
    ("data {\n  batch = 1\n  # after the last\n}", "data {\n  batch = 1\n  # after the last\n}\n"),
    ("data {\n      # only a comment\n}", "data {\n  # only a comment\n}\n"),
    ("data {\n  a = 1,  # one\n  b = 2\n}", "data {\n  a = 1  # one\n  b = 2\n}\n"),
    ("f = g(a,  # first\n  b)", "f = g(a,  # first\n      b)\n"),
    ("f = g(a  # first\n  , b)", "f = g(a,  # first\n      b)\n"),
    ("f = g(  # why\n  a)", "f = g(  # why\n  a\n)\n"),
    ("f = g(a,\n  # before b\n  b)", "f = g(a,\n      # before b\n      b)\n"),
    ("f = g(a  # last\n)", "f = g(a  # last\n)\n"),
    ("f = g(a\n  # last\n)", "f = g(a\n      # last\n)\n"),
    ("m = [\n  accuracy,  # share right\n  top_k(k = 3),  # in the top three\n]",
     "m = [\n  accuracy,     # share right\n  top_k(k = 3)  # in the top three\n]\n"),
    ("", ""),
    ("\n\n# only a comment\n\n", "# only a comment\n"),
]


@pytest.mark.parametrize("messy, canonical", CASES)
def test_canonical_layout(messy, canonical):
    assert format_text(messy) == canonical
    assert format_text(canonical) == canonical


def test_repeat_prints_back():
    if not hasattr(ir, "Repeat"):
        pytest.skip("ir.Repeat does not exist yet")
    text = "model {\n  block stack(n) { repeat n{dense(8)->relu} }\n  h = x->repeat 2 {\n    stack(3)\n  }\n}\n"
    out = format_text(text)
    assert out == ("model {\n  block stack(n) { repeat n { dense(8) -> relu } }\n"
                   "  h = x -> repeat 2 {\n    stack(3)\n  }\n}\n")
    assert parse(out, "t") == parse(text, "t")


def test_a_syntax_error_raises_the_parse_diagnostics():
    with pytest.raises(SpecError) as e:
        format_text("data {\n  batch 64\n}\n", "t.train")
    assert [(d.code, d.span.line, d.span.col) for d in e.value.diagnostics] == [("E102", 2, 9)]


def test_a_formatter_bug_is_caught_before_it_changes_a_spec(monkeypatch):
    """The result is parsed again and compared: a layout that changes the meaning never comes out."""
    monkeypatch.setattr(fmt_module._Printer, "space", lambda self, tok: "")  # `input x` -> `inputx`
    with pytest.raises(AssertionError, match="bug in trainc fmt"):
        format_text("model {\n  input x: f32[4]\n}\n")
    monkeypatch.undo()
    monkeypatch.setattr(fmt_module._Printer, "trailing", lambda self, text: None)  # trailing comments lost
    with pytest.raises(AssertionError, match="bug in trainc fmt"):
        format_text("a = 1  # c\n")


# ---- (c) the command ---------------------------------------------------------------------------------------------

MESSY = "stop{max=3 epochs}\nloss=mse(y,target)  # the loss\n"
CANONICAL = "stop { max = 3 epochs }\nloss = mse(y, target)  # the loss\n"


def trainc(*args: str, stdin: str | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


def test_check_lists_what_would_change_and_writes_nothing(tmp_path):
    messy, clean = tmp_path / "messy.train", tmp_path / "clean.train"
    messy.write_text(MESSY)
    clean.write_text(CANONICAL)
    r = trainc("fmt", "--check", str(messy), str(clean))
    assert (r.returncode, r.stdout, r.stderr) == (1, f"{messy}\n", "1 file would be reformatted\n")
    assert messy.read_text() == MESSY
    r = trainc("fmt", "--check", str(clean))
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_check_passes_on_a_canonical_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.train").write_text(CANONICAL)
    (tmp_path / "b.train").write_text(CANONICAL)
    (tmp_path / "notes.txt").write_text(MESSY)  # not a spec: left alone
    assert trainc("fmt", "--check", str(tmp_path)).returncode == 0
    (tmp_path / "sub" / "a.train").write_text(MESSY)
    r = trainc("fmt", "--check", str(tmp_path))
    assert (r.returncode, r.stdout) == (1, f"{tmp_path / 'sub' / 'a.train'}\n")


def test_diff_prints_a_unified_diff_and_writes_nothing(tmp_path):
    path = tmp_path / "messy.train"
    path.write_text(MESSY)
    r = trainc("fmt", "--diff", str(path))
    assert r.returncode == 0
    assert r.stdout == (f"--- {path}\n+++ {path}\n@@ -1,2 +1,2 @@\n"
                        "-stop{max=3 epochs}\n-loss=mse(y,target)  # the loss\n"
                        "+stop { max = 3 epochs }\n+loss = mse(y, target)  # the loss\n")
    assert path.read_text() == MESSY


def test_stdin_to_stdout():
    r = trainc("fmt", "-", stdin=MESSY)
    assert (r.returncode, r.stdout, r.stderr) == (0, CANONICAL, "")


def test_rewrites_in_place_only_what_changes(tmp_path):
    messy, clean = tmp_path / "messy.train", tmp_path / "clean.train"
    messy.write_text(MESSY)
    clean.write_text(CANONICAL)
    os.chmod(messy, 0o640)
    before = clean.stat().st_mtime_ns
    r = trainc("fmt", str(messy), str(clean))
    assert (r.returncode, r.stdout, r.stderr) == (0, f"reformatted {messy}\n", "")
    assert messy.read_text() == CANONICAL
    assert messy.stat().st_mode & 0o777 == 0o640
    assert clean.stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.train", "messy.train"]  # no temporary left


def test_a_syntax_error_is_reported_and_the_file_left_alone(tmp_path):
    bad, messy = tmp_path / "bad.train", tmp_path / "messy.train"
    bad.write_text("data {\n  batch 64\n}\n")
    messy.write_text(MESSY)
    r = trainc("fmt", str(bad), str(messy))
    assert r.returncode == 1
    assert r.stderr.startswith(f"{bad}:2:9: error[E102]: unexpected '64'\n")
    assert r.stderr.endswith("\n1 error\n")
    assert bad.read_text() == "data {\n  batch 64\n}\n"
    assert messy.read_text() == CANONICAL  # the others are still formatted


def test_usage_errors_exit_2(tmp_path):
    assert trainc("fmt", str(tmp_path / "missing.train")).returncode == 2
    assert trainc("fmt").returncode == 2
    assert trainc("fmt", "-", "-", stdin="a = 1\n").returncode == 2
