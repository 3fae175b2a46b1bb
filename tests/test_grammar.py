"""The grammar and the parse step: tables of accepted snippets (with the tree they build, written
compactly) and of rejected snippets (with the exact code and position of the diagnostic)."""

from __future__ import annotations

import pytest

from trainc.compiler import ir
from trainc.compiler.diagnostics import SpecError
from trainc.compiler.parse import parse, parse_expr


def show(node) -> str:
    """A syntax tree as compact text, so a table row can state the tree it expects."""
    match node:
        case ir.File(items=items):
            return "; ".join(show(i) for i in items)
        case ir.Section(name=name, body=body):
            return f"{name}{{{'; '.join(show(s) for s in body)}}}"
        case ir.Entry(key=key, value=value):
            return f"{key}={show(value)}"
        case ir.InputDecl(name=name, dtype=dtype, dims=dims):
            return f"input {name}:{dtype}[{','.join(map(str, dims))}]"
        case ir.BlockDef(name=name, params=params, body=body):
            return f"block {name}({', '.join(show(p) for p in params)}){{{show(body)}}}"
        case ir.Param(name=name, default=None):
            return name
        case ir.Param(name=name, default=default):
            return f"{name}={show(default)}"
        case ir.Number(value=v):
            return f"{type(v).__name__}:{v!r}"
        case ir.Quantity(value=v, unit=unit):
            return f"<{v!r} {unit}>"
        case ir.Str(value=v):
            return f"str:{v!r}"
        case ir.Bool(value=v):
            return "true" if v else "false"
        case ir.Ref():
            return node.dotted
        case ir.Call(name=name, args=args, kwargs=kwargs):
            return f"{name.dotted}({', '.join([show(a) for a in args] + [show(k) for k in kwargs])})"
        case ir.KwArg(name=name, value=value):
            return f"{name}={show(value)}"
        case ir.ListExpr(items=items):
            return f"[{', '.join(show(i) for i in items)}]"
        case ir.Record(entries=entries):
            return f"{{{', '.join(show(e) for e in entries)}}}"
        case ir.BinOp(op=op, left=left, right=right):
            return f"({show(left)} {op} {show(right)})"
        case ir.Neg(operand=operand):
            return f"-({show(operand)})"
        case ir.Pipeline(stages=stages):
            return "(" + " -> ".join(show(s) for s in stages) + ")"
        case ir.Then(parts=parts):
            return "(" + " then ".join(show(p) for p in parts) + ")"
    raise AssertionError(f"show: no case for {node!r}")


# (source, the tree it parses to)
ACCEPTED = [
    ("", ""),
    ("# only a comment\n", ""),
    ("\n\n  \n", ""),
    ("batch = 64", "batch=int:64"),
    ("a = 1  # trailing comment\nb = 2\n", "a=int:1; b=int:2"),
    ("a = 1, b = 2", "a=int:1; b=int:2"),
    ("a = 1\r\nb = [1,\r\n 2]\r\nc { d = 3 }\r\n", "a=int:1; b=[int:1, int:2]; c{d=int:3}"),
    ("data { batch = 64\n  shuffle = true }", "data{batch=int:64; shuffle=true}"),
    ("run {\n\n  seed = 0,\n  device = cpu,\n}", "run{seed=int:0; device=cpu}"),
    ("stop { max = 200 steps }", "stop{max=<200 steps>}"),
    ("stop { max = 3 epochs, budget = 10 min }", "stop{max=<3 epochs>; budget=<10 min>}"),
    ("a = warmup(10%)", "a=warmup(<10 %>)"),
    ("a = 1.5 h", "a=<1.5 h>"),
    ("a = -1", "a=int:-1"),
    ("a = -3e-4", "a=float:-0.0003"),
    ("a = 1.5E+3", "a=float:1500.0"),
    ("a = .5 + 5.", "a=(float:0.5 + float:5.0)"),
    ("a = - 3 epochs", "a=<-3 epochs>"),
    ("a = -b", "a=-(b)"),
    ('a = "x\\"y\\\\z"', "a=str:'x\"y\\\\z'"),
    ('a = "é"', "a=str:'é'"),
    (r'a = "C:\\users\\d.csv"', r"a=str:'C:\\users\\d.csv'"),
    (r'a = "a\tb\n"', r"a=str:'a\tb\n'"),
    ("a = true, b = false", "a=true; b=false"),
    ("optimizer = adamw(lr = 3e-3, weight_decay = 0.01)", "optimizer=adamw(lr=float:0.003, weight_decay=float:0.01)"),
    ('s = csv("d.csv", target = "y")', "s=csv(str:'d.csv', target=str:'y')"),
    ("o = adam()", "o=adam()"),
    ("o = sgd(\n  lr = 0.1,\n\n  momentum = 0.9,\n)", "o=sgd(lr=float:0.1, momentum=float:0.9)"),
    ("m = [accuracy,\n  rmse,\n]", "m=[accuracy, rmse]"),
    ("m = []", "m=[]"),
    ("split = { train = 0.8, val = 0.2 }", "split={train=float:0.8, val=float:0.2}"),
    ("split = {\n  train = 0.8\n  val = 0.2,\n}", "split={train=float:0.8, val=float:0.2}"),
    ("r = { a = { b = 1 } }", "r={a={b=int:1}}"),
    ("e = plateau(val.loss, patience = 5)", "e=plateau(val.loss, patience=int:5)"),
    ("y = x -> dense(10) -> relu", "y=(x -> dense(int:10) -> relu)"),
    ("y = x->flatten->dense(10)", "y=(x -> flatten -> dense(int:10))"),
    ("s = warmup(50 steps) then cosine(to = 1e-5)", "s=(warmup(<50 steps>) then cosine(to=float:1e-05))"),
    ("s = a then b then c", "s=(a then b then c)"),
    ("w = val.accuracy >= 0.99", "w=(val.accuracy >= float:0.99)"),
    ("w = train.loss < 1", "w=(train.loss < int:1)"),
    ("l = ce(a, t) + 0.1 * mse(b, t)", "l=(ce(a, t) + (float:0.1 * mse(b, t)))"),
    ("l = 2 * (a + b) / 4 - c", "l=(((int:2 * (a + b)) / int:4) - c)"),
    ("model { input x: f32[1, 8, 8] }", "model{input x:f32[1,8,8]}"),
    ("model { input x: f32[64,] }", "model{input x:f32[64]}"),
    ("model {\n  block mlp(w) { dense(w) -> relu }\n}", "model{block mlp(w){(dense(w) -> relu)}}"),
    ("model { block b(w, p = 0.1) {\n  dense(w) -> dropout(p)\n} }",
     "model{block b(w, p=float:0.1){(dense(w) -> dropout(p))}}"),
    ("model { block b(\n  w,\n  p = 0.5,\n) { relu } }", "model{block b(w, p=float:0.5){relu}}"),
    ("model { block id() { relu } }", "model{block id(){relu}}"),
    ("model {\n  input x: f32[8]\n  h = x -> dense(32)\n  a = h -> dense(10)\n}",
     "model{input x:f32[8]; h=(x -> dense(int:32)); a=(h -> dense(int:10))}"),
    ("inputs = 1, blocks = 2, thence = 3, trueish = x", "inputs=int:1; blocks=int:2; thence=int:3; trueish=x"),
]


@pytest.mark.parametrize("src, tree", ACCEPTED)
def test_accepted(src, tree):
    assert show(parse(src, "t.train")) == tree


# (source, code, line, col) of the first diagnostic
REJECTED = [
    ('data { source = "a.csv\n}', "E103", 1, 17),
    ('data {\n  source = csv("a.csv, target = "y")\n}', "E102", 2, 34),  # the quote closes at `= "`: 'y' is next
    ("batch = 64 $", "E101", 1, 12),
    ("a = 1 – 2", "E101", 1, 7),
    ('s = csv("C:\\users\\d.csv")', "E105", 1, 12),
    ("data {\n  batch = 64 ;\n}", "E101", 2, 14),
    ("data { batch 64 }", "E102", 1, 14),
    ("optimizer adam()", "E102", 1, 11),
    ("data { shuffle = true batch = 64 }", "E102", 1, 23),
    ("data { batch = 64 shuffle = true }", "E102", 1, 19),  # `64 shuffle` reads as a quantity; points at the key
    ('data { source = "a" split = 1 }', "E102", 1, 21),
    ("data {\n  batch = 64\n", "E102", 2, 13),
    ("model {\n  input x: f32[8]\n  block b(w) { dense(w)", "E102", 3, 24),
    ("a = (1", "E102", 1, 7),
    ("m = [accuracy, rmse", "E102", 1, 20),
    ("= 1", "E102", 1, 1),
    ("a = 1 = 2", "E102", 1, 7),
    ("a = 1 >= 2 >= 3", "E102", 1, 12),
    ("a = \nb = 1", "E102", 1, 5),
    ("a = f(,)", "E102", 1, 7),
    ("model { input x f32[8] }", "E102", 1, 17),
    ("model { input x: f32[8 }", "E102", 1, 24),
    ("stop { max = 3 epochs epochs }", "E102", 1, 23),
    ("data { batch = 64 } }", "E102", 1, 21),
    ("optimizer = adam(lr = 1e-3, 0.9)", "E104", 1, 29),
    ("l = ce(a, target = t, b)", "E104", 1, 23),
    ("y = x -> f(g(k = 1, 2))", "E104", 1, 21),
]


@pytest.mark.parametrize("src, code, line, col", REJECTED)
def test_rejected(src, code, line, col):
    with pytest.raises(SpecError) as e:
        parse(src, "t.train")
    d = e.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.col, d.span.file) == (code, line, col, "t.train")


def test_every_positional_after_keyword_is_reported():
    with pytest.raises(SpecError) as e:
        parse("o = f(a = 1, 2, b = 3, 4)", "t.train")
    assert [(d.code, d.span.col, d.span.end_col) for d in e.value.diagnostics] == [("E104", 14, 15), ("E104", 24, 25)]


def test_missing_equals_says_how_to_write_a_key():
    with pytest.raises(SpecError) as e:
        parse("data {\n  batch 64\n}", "t.train")
    (d,) = e.value.diagnostics
    assert (d.code, d.span.line, d.span.col, d.message) == ("E102", 2, 9, "unexpected '64'")
    assert "'='" in d.help


def test_two_settings_on_one_line_say_to_separate_them():
    with pytest.raises(SpecError) as e:
        parse("data { shuffle = true batch = 64 }", "t.train")
    (d,) = e.value.diagnostics
    assert d.message == "unexpected 'batch'"
    assert d.help.endswith("put each setting on its own line or separate them with ','")


def test_two_settings_after_a_number_say_to_separate_them():
    # `64 shuffle` reads as a number with a unit; the diagnostic still names the key and the fix
    with pytest.raises(SpecError) as e:
        parse("data { batch = 64 shuffle = true }", "t.train")
    (d,) = e.value.diagnostics
    assert (d.code, d.span.line, d.span.col, d.span.end_col) == ("E102", 1, 19, 26)
    assert d.help.endswith("put each setting on its own line or separate them with ','")


def test_unexpected_end_of_file_points_past_the_last_character():
    with pytest.raises(SpecError) as e:
        parse("data {\n  batch = 64", "t.train")
    (d,) = e.value.diagnostics
    assert (d.message, d.span.line, d.span.col, d.span.end_col) == ("unexpected end of file", 2, 13, 14)
    assert "'}'" in d.help


def test_columns_count_characters_after_a_tab_and_non_ascii_text():
    with pytest.raises(SpecError) as e:
        parse('\ta = "é" $', "t.train")
    d = e.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.col) == ("E101", 1, 10)


def test_bad_escape_in_a_string_points_at_the_escape():
    # was a bug: Lark's VisitError escaped parse (an internal error) for a Windows path
    with pytest.raises(SpecError) as e:
        parse('data {\n  source = csv("C:\\users\\d.csv", target = "y")\n}', "t.train")
    d = e.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.col, d.span.end_col) == ("E105", 2, 19, 21)


def test_parse_expr_reads_one_value_with_its_own_file_name():
    expr = parse_expr("3 epochs", "<--set stop.max>")
    assert show(expr) == "<3 epochs>"
    assert (expr.span.file, expr.span.line, expr.span.col, expr.span.end_col) == ("<--set stop.max>", 1, 1, 9)


def test_entries_carry_key_and_value_spans():
    src = "data {\n  batch = 64\n}\n"
    (section,) = parse(src, "t.train").items
    (entry,) = section.body
    assert (section.name_span.line, section.name_span.col, section.name_span.end_col) == (1, 1, 5)
    assert (entry.key_span.line, entry.key_span.col, entry.key_span.end_col) == (2, 3, 8)
    assert (entry.value.span.line, entry.value.span.col, entry.value.span.end_col) == (2, 11, 13)
    assert (section.span.line, section.span.end_line, section.span.end_col) == (1, 3, 2)
