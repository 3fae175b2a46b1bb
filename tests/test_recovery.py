"""Syntax-error recovery: a top-level item with a syntax error is left out, the rest of the file is
still resolved and checked at exact positions, and what the rest would say about the item left out
(missing, unknown value, unmeasured metric) stays quiet."""

from __future__ import annotations

import os
import sys

import pytest
from typer.testing import CliRunner

from trainc import check
from trainc.cli import app
from trainc.compiler import SpecError, lint, parse, parse_partial
from trainc.compiler.parse import _chunks

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import make_spec, text_at, triples, where  # noqa: E402

DATA_64 = 'data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2 }\n  batch 64\n}'
I32_MODEL = "model {\n  input x: i32[8]\n  logits = x -> embedding(50, 4) -> flatten -> dense(3)\n}"


def test_a_syntax_error_in_data_does_not_hide_the_optimizer_or_the_metric():
    src = make_spec(data=DATA_64, optimizer="optimizer = adamm(lr = 1e-3)", metrics="metrics = [acuracy]")
    diags = lint(src, "t.train")
    assert triples(diags) == [("E102", *where(src, "64")), ("E201", *where(src, "adamm")),
                              ("E201", *where(src, "acuracy"))]
    assert [text_at(src, d.span) for d in diags] == ["64", "adamm", "acuracy"]
    assert [d.help for d in diags[1:]] == ["did you mean 'adam'?", "did you mean 'accuracy'?"]


def test_trainc_check_is_the_same_core():
    src = make_spec(data=DATA_64, optimizer="optimizer = adamm(lr = 1e-3)")
    assert check(src, "t.train") == lint(src, "t.train")
    assert triples(check(src, "t.train")) == [("E102", *where(src, "64")), ("E201", *where(src, "adamm"))]


def test_a_syntax_error_in_every_item_is_reported_once_each():
    src = make_spec(loss="loss = cross_entropy(logits target)", optimizer="optimizer = adam(lr = )",
                    stop="stop { max = 5 epochs epochs }", metrics="metrics = [accuracy,, f1]")
    (lr, col), (comma, col2) = where(src, "= )"), where(src, ",,")
    assert triples(lint(src, "t.train")) == [("E102", *where(src, "target)")), ("E102", lr, col + 2),
                                             ("E102", *where(src, "epochs", 2)), ("E102", comma, col2 + 1)]


def test_parse_raises_with_every_syntax_error_and_parse_partial_keeps_the_rest():
    src = make_spec(data=DATA_64, stop="stop { max = 5 epochs epochs }")
    with pytest.raises(SpecError) as e:
        parse(src, "t.train")
    want = [("E102", *where(src, "64")), ("E102", *where(src, "epochs", 2))]
    assert triples(e.value.diagnostics) == want
    file, problems, broken = parse_partial(src, "t.train")
    assert [getattr(i, "name", getattr(i, "key", None)) for i in file.items] == ["model", "loss", "optimizer"]
    assert triples(problems) == want
    assert broken == {"data", "stop"}


def test_a_valid_file_parses_in_one_piece():
    src = make_spec()
    file, problems, broken = parse_partial(src, "t.train")
    assert (file, problems, broken) == (parse(src, "t.train"), [], frozenset())


@pytest.mark.parametrize("broken, part, noise", [
    ("model", "model {\n  input x: f32[8]\n  logits = x -> dense(16 -> dense(3)\n}", "E206 unknown model value"),
    ("model", "model {\n  input x f32[8]\n  logits = x -> dense(3)\n}", "E205 model has no input"),
    ("data", DATA_64, "E205 missing data source"),
    ("loss", "loss = cross_entropy(logits target)", "E205 missing loss"),
    ("stop", "stop { max = 5 epochs epochs }", "E205 missing stop.max"),
    ("optimizer", "optimizer = adam(lr = )", "E205 missing optimizer"),
])
def test_an_item_left_out_is_not_reported_missing_or_unknown(broken, part, noise):
    src = make_spec(**{broken: part})
    diags = lint(src, "t.train")
    assert [d.code for d in diags] == ["E102"], f"{noise}: {diags}"


def test_monitors_of_a_broken_metrics_list_stay_quiet_but_unknown_splits_do_not():
    src = make_spec(metrics="metrics = [accuracy f1]",
                    stop="stop { max = 5 epochs, early = plateau(val.accuracy), when = vall.f1 >= 0.9 }")
    assert triples(lint(src, "t.train")) == [("E207", *where(src, "vall")), ("E102", *where(src, "f1]"))]


def test_a_broken_data_section_says_nothing_about_normalising_token_ids():
    src = make_spec(data=DATA_64, model=I32_MODEL)
    assert triples(lint(src, "t.train")) == [("E102", *where(src, "64"))]
    whole = make_spec(data=DATA_64.replace("batch 64", "batch = 64"), model=I32_MODEL)
    assert [d.code for d in lint(whole, "t.train")] == ["E307"]  # the rule itself still holds


def test_a_missing_model_does_not_make_the_loss_value_unknown():
    src = make_spec(model="")
    assert [(d.code, d.message) for d in lint(src, "t.train")] == [("E205", "missing model section")]


def test_escape_errors_leave_their_item_out_and_keep_the_others():
    src = make_spec(data=DATA_64.replace('"d.csv"', '"C:\\d\\e.csv"').replace("  batch 64\n", ""),
                    optimizer="optimizer = adamm(lr = 1e-3)")
    assert triples(lint(src, "t.train")) == [("E105", *where(src, "\\d")), ("E105", *where(src, "\\e")),
                                             ("E201", *where(src, "adamm"))]


def test_an_unclosed_brace_is_cut_at_the_next_section_and_named():
    src = make_spec(model="model {\n  input x: f32[8]\n  logits = x -> dense(3)", optimizer="optimizer = adamm()")
    diags = lint(src, "t.train")
    assert triples(diags) == [("E102", *where(src, "{", 3)), ("E201", *where(src, "adamm"))]
    assert diags[0].message == "'{' is not closed"
    assert diags[0].help == f"close it with '}}' before the next section, on line {where(src, 'loss')[0]}"


def test_a_closing_brace_closes_the_section_indented_like_it():
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2\n}',
                    model="model {\n  input x: f32[8]\n  logits = x -> dense(16) -> rellu -> dense(3)\n}")
    diags = lint(src, "t.train")
    assert triples(diags) == [("E102", 3, 12), ("E201", *where(src, "rellu"))]
    assert (diags[0].message, diags[0].help) == ("'{' is not closed", "close it with '}'")


def test_an_unclosed_brace_at_the_end_of_the_file_is_an_unexpected_end():
    src = make_spec(stop="stop { max = 5 epochs", optimizer="optimizer = adamm()")
    diags = lint(src, "t.train")
    assert [(d.code, d.message) for d in diags] == [("E201", "unknown optimizer 'adamm'"),
                                                    ("E102", "unexpected end of file")]


def test_a_stray_closer_closes_nothing():
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y"))\n  split  = { train = 0.8, val = 0.2 }\n}')
    (line, col) = where(src, "))")
    assert triples(lint(src, "t.train")) == [("E102", line, col + 1)]


@pytest.mark.parametrize("text, items", [
    ('a = 1\nb { c = "}" # }\n}\n\n# x {\nd = [1,\n 2]\n', [(1, "a"), (2, "b"), (6, "d")]),
    ("data {\n  x = (1\nmodel {\n}\n", [(1, "data"), (3, "model")]),  # a section name in column 1 cuts
    ("data {\n  x = (1\n  model {\n}\n", [(1, "data")]),  # ... an indented one does not
    ('s = "\\"{"\nt = 2\n', [(1, "s"), (2, "t")]),  # an escaped quote does not end the string
    ('s = "open\nt = 2\n', [(1, "s"), (2, "t")]),  # an unterminated string ends at the line's end
    ("a = 1\x0cb\nc = 2", [(1, "a"), (2, "c")]),  # a form feed is not a line break (Lark agrees)
])
def test_items_are_split_by_brackets_skipping_strings_and_comments(text, items):
    chunks = _chunks(text)
    assert [(c.line, c.name) for c in chunks] == items
    for c in chunks:  # each is whole lines of the text, from the start of its first line
        start = sum(len(line) + 1 for line in text.split("\n")[: c.line - 1])
        assert text[start : start + len(c.text)] == c.text and (c.text.endswith("\n") or text.endswith(c.text))


def test_positions_stay_exact_with_crlf_and_form_feeds():
    src = make_spec(data=DATA_64, optimizer="optimizer =\x0cadamm()").replace("\n", "\r\n")
    assert triples(lint(src, "t.train")) == [("E102", *where(src, "64")), ("E201", *where(src, "adamm"))]


def test_run_refuses_with_the_same_report_as_lint(tmp_path):
    path = tmp_path / "bad.train"
    path.write_text(make_spec(data=DATA_64, optimizer="optimizer = adamm(lr = 1e-3)"))
    runner = CliRunner()
    ran, linted = runner.invoke(app, ["run", str(path)]), runner.invoke(app, ["lint", str(path)])
    assert ran.exit_code == linted.exit_code == 1
    assert ran.stderr == linted.stderr
    assert "error[E102]" in ran.stderr and "error[E201]: unknown optimizer 'adamm'" in ran.stderr
