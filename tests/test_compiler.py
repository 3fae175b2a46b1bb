"""resolve and check: IR equality, spans, shapes, blocks, units, defaults, cross-field rules, and the
`trainc compile` command (--emit ir|ast, --set)."""

from __future__ import annotations

import inspect
import os
import sys

import pytest
import yaml
from typer.testing import CliRunner

from trainc.cli import app
from trainc.compiler import analyze, catalog, ir, lint
from trainc.compiler.diagnostics import SpecError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import DIGITS, make_spec, text_at, triples, where  # noqa: E402


def errors(src: str) -> list:
    """Every diagnostic of a spec; the spec must not be accepted by analyze either."""
    diags = lint(src, "t.train")
    with pytest.raises(SpecError):
        analyze(src, "t.train")
    return diags


def only(src: str, code: str):
    """The one diagnostic of a spec, which must have this code."""
    diags = errors(src)
    assert [d.code for d in diags] == [code], [(d.code, d.message) for d in diags]
    return diags[0]


def layers(spec: ir.Spec) -> list[tuple[str, str, tuple[str, ...], str]]:
    return [(layer.name, layer.op, layer.inputs, str(layer.out)) for layer in spec.model.layers]


# ---- IR equality ignores layout ------------------------------------------------------------------

SAME_SPEC_OTHER_LAYOUT = """# The spec of make_spec(), written differently: order, spacing, comments, trailing commas,
# a record for the data section, 0.001 for 1e-3, a multi-line call, kwargs out of order.
stop{max=5 epochs}
optimizer = adam(
  lr = 0.001,   # same value
)
loss=cross_entropy(logits,target)

model {
    input x: f32[8,]
    logits = x->dense(16)->relu->dense(3)   # same layers
}
data = {
  source = csv("d.csv",
               target = "y",),
  split = { val = 0.2, train = 0.8, },
}
"""


def test_layout_comments_and_order_do_not_change_the_ir():
    a = analyze(make_spec(), "t.train")
    b = analyze(SAME_SPEC_OTHER_LAYOUT, "t.train")
    assert a.model.layers[0].span != b.model.layers[0].span  # the spans differ, equality ignores them
    assert a == b


@pytest.mark.parametrize("old, new", [
    ("dense(16)", "dense(17)"),
    ("lr = 1e-3", "lr = 2e-3"),
    ("5 epochs", "5 steps"),
    ("train = 0.8", "train = 0.7"),
    ("-> relu ->", "-> gelu ->"),
    ("f32[8]", "f32[9]"),
])
def test_a_semantic_change_changes_the_ir(old, new):
    src = make_spec()
    assert old in src
    assert analyze(src, "t.train") != analyze(src.replace(old, new), "t.train")


# ---- spans point at the text they came from ------------------------------------------------------

SPANNED = make_spec(
    model="model {\n  input x: f32[8]\n  block head(f) { f -> dense(3) }\n  logits = x -> dense(16) -> head(tanh)\n}",
    loss="loss = cross_entropy(logits, target) + 0.1 * cross_entropy(logits, target, smoothing = 0.1)",
    optimizer="optimizer = adamw(lr = 3e-3,\n  weight_decay = 0.01)",
    schedule="schedule = warmup(2 epochs) then cosine(to = 1e-5)",
)


@pytest.mark.parametrize("get, text", [
    (lambda s: s.model.inputs[0].span, "input x: f32[8]"),
    (lambda s: s.model.layers[0].span, "dense(16)"),
    (lambda s: s.model.layers[1].span, "tanh"),  # a layer passed to a block: where it was passed
    (lambda s: s.model.layers[2].span, "dense(3)"),  # a layer in a block: in the block's body
    (lambda s: s.optimizer.span, "adamw(lr = 3e-3,\n  weight_decay = 0.01)"),
    (lambda s: s.loss.terms[0].span, "cross_entropy(logits, target)"),
    (lambda s: s.loss.terms[1].span, "cross_entropy(logits, target, smoothing = 0.1)"),
    (lambda s: s.schedule.phases[0].span, "warmup(2 epochs)"),
    (lambda s: s.schedule.phases[0].length.span, "2 epochs"),
    (lambda s: s.stop.max.span, "5 epochs"),
    (lambda s: s.data.split.span, "{ train = 0.8, val = 0.2 }"),
])
def test_ir_spans_cover_their_source_text(get, text):
    span = get(analyze(SPANNED, "t.train"))
    assert span.file == "t.train"
    assert text_at(SPANNED, span) == text


def test_block_layer_spans():
    spec = analyze(SPANNED, "t.train")
    assert [(layer.name, layer.span.line, layer.span.col) for layer in spec.model.layers] == [
        ("logits.dense0", *where(SPANNED, "dense(16)")),
        ("logits.head0.tanh0", *where(SPANNED, "tanh)")),
        ("logits.head0.dense0", *where(SPANNED, "dense(3) }")),
    ]


def test_unknown_key_points_at_the_key():
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2 }\n'
                         "  bach   = 64\n}")
    d = only(src, "E204")
    assert text_at(src, d.span) == "bach"
    assert (d.span.line, d.span.col) == (4, 3)
    assert d.message == "unknown key 'bach' in data"
    assert d.help == "did you mean 'batch'?"


# ---- shapes --------------------------------------------------------------------------------------


def test_dense_chain_shapes():
    spec = analyze(make_spec(), "t.train")
    assert layers(spec) == [
        ("logits.dense0", "dense", ("x",), "f32[16]"),
        ("logits.relu0", "relu", ("logits.dense0",), "f32[16]"),
        ("logits.dense1", "dense", ("logits.relu0",), "f32[3]"),
    ]
    assert dict(spec.model.values) == {"x": "x", "logits": "logits.dense1"}


def test_flatten_of_an_image_gives_one_axis():
    spec = analyze(make_spec(model="model {\n  input x: f32[1, 8, 8]\n  logits = x -> flatten -> dense(10)\n}"),
                   "t.train")
    assert spec.model.inputs[0].type == ir.TensorType(dtype=ir.DType.f32, shape=(1, 8, 8))
    assert layers(spec) == [
        ("logits.flatten0", "flatten", ("x",), "f32[64]"),
        ("logits.dense0", "dense", ("logits.flatten0",), "f32[10]"),
    ]


def test_dense_after_an_image_is_a_shape_error_that_suggests_flatten():
    src = make_spec(model="model {\n  input x: f32[1, 8, 8]\n  logits = x -> dense(10)\n}")
    d = only(src, "E401")
    assert (d.span.line, d.span.col) == where(src, "dense(10)")
    assert text_at(src, d.span) == "dense(10)"
    assert "f32[1, 8, 8]" in d.message
    assert "flatten" in d.help


def test_named_values_form_a_dag():
    src = make_spec(
        model="model {\n  input x: f32[8]\n  h = x -> dense(32) -> relu\n  a = h -> dense(10)\n  b = h -> dense(1)\n}",
        loss="loss = cross_entropy(a, target) + 0.5 * bce(b, target)",
    )
    spec = analyze(src, "t.train")
    assert layers(spec) == [
        ("h.dense0", "dense", ("x",), "f32[32]"),
        ("h.relu0", "relu", ("h.dense0",), "f32[32]"),
        ("a.dense0", "dense", ("h.relu0",), "f32[10]"),
        ("b.dense0", "dense", ("h.relu0",), "f32[1]"),
    ]
    assert dict(spec.model.values) == {"x": "x", "h": "h.relu0", "a": "a.dense0", "b": "b.dense0"}
    assert [(t.kind, t.pred, t.weight) for t in spec.loss.terms] == [("cross_entropy", "a", 1.0), ("bce", "b", 0.5)]


def test_bce_on_a_wide_output_is_a_shape_error():
    src = make_spec(loss="loss = bce(logits, target)")
    d = only(src, "E402")
    assert text_at(src, d.span) == "dense(3)"  # the layer that sets the width; the loss beside it
    assert [text_at(src, span) for _, span in d.related] == ["bce(logits, target)"]
    assert "f32[3]" in d.message


def test_a_later_stage_cannot_be_a_value():
    src = make_spec(model="model {\n  input x: f32[8]\n  h = x -> dense(4)\n  logits = x -> h -> dense(3)\n}")
    d = only(src, "E206")
    assert (d.span.line, d.span.col) == where(src, "h -> dense(3)")


# ---- blocks ----------------------------------------------------------------------------------------

BLOCKS = "model {{\n  input x: f32[8]\n  block mlp(width, p = 0.1) {{ dense(width) -> relu -> dropout(p) }}\n  {}\n}}"


def block_spec(line: str) -> str:
    return make_spec(model=BLOCKS.format(line))


def test_block_expands_with_params_and_defaults():
    spec = analyze(block_spec("logits = x -> mlp(32) -> mlp(16, p = 0.3) -> mlp(width = 8) -> dense(3)"), "t.train")
    dense = [(lay.name, ir.argdict(lay.args)["units"]) for lay in spec.model.layers if lay.op == "dense"]
    drop = [(lay.name, ir.argdict(lay.args)["p"]) for lay in spec.model.layers if lay.op == "dropout"]
    assert dense == [("logits.mlp0.dense0", 32), ("logits.mlp1.dense0", 16), ("logits.mlp2.dense0", 8),
                     ("logits.dense0", 3)]
    assert drop == [("logits.mlp0.dropout0", 0.1), ("logits.mlp1.dropout0", 0.3), ("logits.mlp2.dropout0", 0.1)]
    assert spec.model.layers[3].inputs == ("logits.mlp0.dropout0",)  # mlp1 starts where mlp0 ended


def test_nested_blocks_substitute_and_fold_arguments():
    src = make_spec(model="model {\n  input x: f32[8]\n  block inner(w) { dense(w) -> relu }\n"
                          "  block outer(w) { inner(w * 2) -> inner(w) }\n  logits = x -> outer(4) -> dense(3)\n}")
    spec = analyze(src, "t.train")
    assert layers(spec) == [
        ("logits.outer0.inner0.dense0", "dense", ("x",), "f32[8]"),
        ("logits.outer0.inner0.relu0", "relu", ("logits.outer0.inner0.dense0",), "f32[8]"),
        ("logits.outer0.inner1.dense0", "dense", ("logits.outer0.inner0.relu0",), "f32[4]"),
        ("logits.outer0.inner1.relu0", "relu", ("logits.outer0.inner1.dense0",), "f32[4]"),
        ("logits.dense0", "dense", ("logits.outer0.inner1.relu0",), "f32[3]"),
    ]


def test_block_with_too_many_arguments():
    src = block_spec("logits = x -> mlp(32, 0.1, 7) -> dense(3)")
    d = only(src, "E302")
    assert (d.span.line, d.span.col, text_at(src, d.span)) == (*where(src, "7)"), "7")
    assert d.message == "too many arguments to block 'mlp': it takes 2"


def test_block_with_an_unknown_keyword():
    src = block_spec("logits = x -> mlp(widht = 32) -> dense(3)")
    d = only(src, "E202")
    assert text_at(src, d.span) == "widht = 32"
    assert d.help == "did you mean 'width'?"


def test_block_missing_an_argument():
    src = block_spec("logits = x -> mlp() -> dense(3)")
    d = only(src, "E301")
    assert text_at(src, d.span) == "mlp()"


def test_recursive_block_is_reported_once():
    src = make_spec(model="model {\n  input x: f32[8]\n  block b(w) { dense(w) -> b(w) }\n  logits = x -> b(3)\n}")
    d = only(src, "E212")
    assert (d.span.line, d.span.col) == where(src, "b(w) }")
    assert "recursive" in d.message


def test_block_argument_given_twice():
    # was a bug: a keyword silently overrode the positional argument
    src = block_spec("logits = x -> mlp(32, width = 16) -> dense(3)")
    d = only(src, "E208")
    assert d.message == "argument 'width' given twice"
    assert text_at(src, d.span) == "width = 16"


def test_input_in_the_wrong_section_is_named_as_written():
    # was a bug: the message said `inputdecl`, the class name
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.8, val = 0.2 }\n'
                         "  input z: f32[8]\n}")
    d = only(src, "E204")
    assert (d.span.line, d.span.col) == (4, 3)
    assert d.message == "unexpected `input` in data"


def test_layer_argument_given_twice():
    src = make_spec(model="model {\n  input x: f32[8]\n  logits = x -> dense(3, units = 4)\n}")
    d = only(src, "E208")
    assert text_at(src, d.span) == "units = 4"


# ---- units -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("written, value, unit", [
    ("3 epochs", 3.0, ir.Unit.epochs),
    ("1 epoch", 1.0, ir.Unit.epochs),
    ("200 steps", 200.0, ir.Unit.steps),
    ("1 step", 1.0, ir.Unit.steps),
    ("1e3 steps", 1000.0, ir.Unit.steps),
])
def test_stop_max_units(written, value, unit):
    spec = analyze(make_spec(stop=f"stop {{ max = {written} }}"), "t.train")
    assert spec.stop.max == ir.Duration(value=value, unit=unit, span=ir.NOWHERE)
    assert type(spec.stop.max.value) is float


@pytest.mark.parametrize("written, seconds", [("10 min", 600.0), ("30 s", 30.0), ("1.5 h", 5400.0),
                                              ("2 minutes", 120.0)])
def test_budget_is_normalised_to_seconds(written, seconds):
    spec = analyze(make_spec(stop=f"stop {{ max = 5 epochs, budget = {written} }}"), "t.train")
    assert spec.stop.budget == seconds


def test_percent_is_a_fraction_of_the_run():
    spec = analyze(make_spec(schedule="schedule = warmup(10%) then cosine()"), "t.train")
    assert spec.schedule.phases[0].length == ir.Duration(value=0.1, unit=ir.Unit.fraction, span=ir.NOWHERE)
    assert spec.schedule.phases[1].length is None


@pytest.mark.parametrize("written, needle, message, help_", [
    ("5 epohcs", "5 epohcs", "unknown unit 'epohcs'", "did you mean 'epochs'?"),
    ("5 stpes", "5 stpes", "unknown unit 'stpes'", "did you mean 'steps'?"),
    ("5", "5 }", "stop.max needs a unit", "write it as a quantity like N steps or N epochs"),
    ("10 min", "10 min", "stop.max takes a quantity like N steps or N epochs, found a quantity in seconds", None),
])
def test_bad_units(written, needle, message, help_):
    src = make_spec(stop=f"stop {{ max = {written} }}")
    d = only(src, "E306")
    assert (d.span.line, d.span.col) == where(src, needle)
    assert (d.message, d.help) == (message, help_)


@pytest.mark.parametrize("written", ["2.5 epochs", "0 steps", "-3 epochs"])
def test_stop_max_must_be_a_positive_whole_number(written):
    d = only(make_spec(stop=f"stop {{ max = {written} }}"), "E304")
    assert d.message.startswith("stop.max must be a positive whole number of ")


# ---- defaults come from the catalogue's signatures -------------------------------------------------


def signature_defaults(fn) -> dict:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()}


def test_optimizer_defaults_are_filled_from_the_signature():
    spec = analyze(make_spec(), "t.train")
    assert spec.optimizer.kind == "adam"
    assert dict(spec.optimizer.args) == {"lr": 1e-3, "b1": 0.9, "b2": 0.999, "eps": 1e-8}
    assert dict(spec.optimizer.args) == {**signature_defaults(catalog.optimizers.adam), "lr": 1e-3}


def test_sgd_with_only_momentum():
    spec = analyze(make_spec(optimizer="optimizer = sgd(momentum = 0.9)"), "t.train")
    assert dict(spec.optimizer.args) == {"lr": 0.01, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}


def test_other_defaults():
    spec = analyze(make_spec(stop="stop { max = 5 epochs, early = plateau(val.loss) }"), "t.train")
    assert dict(spec.model.layers[0].args) == {"units": 16, "init": ("he", ()), "bias": True}
    assert dict(spec.loss.terms[0].args) == {"smoothing": 0.0, "weights": None}
    early = spec.stop.early
    assert (early.patience, early.min_delta, early.restore_best) == (5, 0.0, True)
    assert (spec.data.batch, spec.data.normalize, spec.data.shuffle) == (32, "standard", True)
    assert spec.data.split.stratify is True
    assert (spec.run.seed, spec.run.device, spec.run.precision) == (0, "auto", ir.DType.f32)
    assert [(p.kind, p.length) for p in spec.schedule.phases] == [("constant", None)]


def test_initialiser_call_gets_its_defaults():
    src = make_spec(model="model {\n  input x: f32[8]\n  logits = x -> dense(3, init = normal(std = 0.02))\n}")
    init = ir.argdict(analyze(src, "t.train").model.layers[0].args)["init"]
    assert init == ("normal", (("std", 0.02), ("mean", 0.0)))


# ---- cross-field checks ----------------------------------------------------------------------------


def test_loss_for_another_task():
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y")\n  split = { train = 0.8, val = 0.2 }\n'
                         "  task = classification\n}",
                    model="model {\n  input x: f32[8]\n  y = x -> dense(1)\n}", loss="loss = mse(y, target)")
    d = only(src, "E307")
    assert text_at(src, d.span) == "mse(y, target)"
    assert d.message == "loss 'mse' is for regression, but data.task is classification"


def test_metric_for_another_task():
    src = make_spec(metrics="metrics = [accuracy, rmse]")
    d = only(src, "E307")
    assert (d.span.line, d.span.col) == where(src, "rmse")
    assert d.message == "metric 'rmse' is for regression, but the task is classification"
    want = sorted(n for n, e in catalog.METRICS.entries.items() if e.extra["task"] == ir.Task.classification)
    assert "accuracy" in want and d.help == "expected one of: " + ", ".join(want)


def test_regression_task_comes_from_the_loss():
    src = make_spec(model="model {\n  input x: f32[8]\n  y = x -> dense(1)\n}", loss="loss = mse(y, target)",
                    metrics="metrics = [rmse, mae]")
    spec = analyze(src, "t.train")
    assert spec.data.task is ir.Task.regression
    assert [m.kind for m in spec.metrics] == ["rmse", "mae"]


def test_unmeasured_monitor_suggests_the_close_name():
    src = make_spec(stop="stop {\n  max = 5 epochs\n  early = plateau(val.los)\n}")
    d = only(src, "E207")
    assert (d.span.line, d.span.col, text_at(src, d.span)) == (*where(src, "val.los"), "val.los")
    assert d.message == "'val.los' is not measured"
    assert d.help == "did you mean 'val.loss'?"  # the whole reference, as written


def test_threshold_on_an_unlisted_metric_says_to_add_it():
    src = make_spec(stop="stop { max = 5 epochs, when = val.accuracy >= 0.9 }")
    d = only(src, "E207")
    assert text_at(src, d.span) == "val.accuracy"
    assert d.help == "measured on val: loss; add it to `metrics = [...]`"


@pytest.mark.parametrize("monitor, extra, mode", [
    ("val.accuracy", "", "max"),
    ("train.loss", "", "min"),
    ("val.loss", "", "min"),
    ("val.loss", ", mode = max", "max"),  # an explicit mode wins
])
def test_early_stopping_mode_is_inferred(monitor, extra, mode):
    src = make_spec(stop=f"stop {{ max = 5 epochs, early = plateau({monitor}{extra}) }}",
                    metrics="metrics = [accuracy]")
    early = analyze(src, "t.train").stop.early
    assert (str(early.monitor), early.mode) == (monitor, mode)


def test_regression_metric_mode_is_min():
    src = make_spec(model="model {\n  input x: f32[8]\n  y = x -> dense(1)\n}", loss="loss = mse(y, target)",
                    metrics="metrics = [rmse]", stop="stop { max = 5 epochs, early = plateau(val.rmse) }")
    assert analyze(src, "t.train").stop.early.mode == "min"


@pytest.mark.parametrize("warmup", ["5 epochs", "6 epochs"])
def test_warmup_as_long_as_the_run(warmup):
    src = make_spec(schedule=f"schedule = warmup({warmup}) then cosine()")
    d = only(src, "E308")
    assert text_at(src, d.span) == warmup
    assert d.message.startswith(f"warmup lasts {warmup}, as long as the whole run (5 epochs)")


def test_warmup_shorter_than_the_run_is_fine():
    assert lint(make_spec(schedule="schedule = warmup(4 epochs) then cosine()"), "t.train") == []


def test_warmup_of_the_whole_run_in_percent():
    # was a bug: only lengths in the unit of stop.max were compared
    src = make_spec(schedule="schedule = warmup(100%) then cosine()")
    d = only(src, "E308")
    assert text_at(src, d.span) == "100%"
    assert lint(make_spec(schedule="schedule = warmup(99%) then cosine()"), "t.train") == []


def test_split_fractions_over_one():
    src = make_spec(data='data {\n  source = csv("d.csv", target = "y")\n  split = { train = 0.8, val = 0.3 }\n}')
    d = only(src, "E304")
    assert text_at(src, d.span) == "{ train = 0.8, val = 0.3 }"
    assert d.message == "split fractions add up to 1.1, more than 1"


def test_missing_stop_max_points_at_the_stop_section():
    src = make_spec(stop="stop { early = plateau(val.loss) }")
    d = only(src, "E205")
    assert (d.span.line, d.span.col, text_at(src, d.span)) == (*where(src, "stop {"), "stop")
    assert d.message == "missing stop.max: how long may the run last?"


def test_missing_stop_section():
    d = only(make_spec(stop=""), "E205")
    assert (d.span.line, d.span.col) == (1, 1)
    assert "stop.max" in d.message


def test_bad_stop_max_does_not_cascade_into_the_schedule():
    # was a bug: the fallback of 1 epoch for a bad stop.max gave a spurious E308
    only(make_spec(schedule="schedule = warmup(2 epochs) then cosine()", stop="stop { max = 5 fortnights }"), "E306")


def test_unknown_loss_does_not_cascade_into_the_metrics():
    # was a bug: with the loss unknown the task was taken as classification, and rmse got E307
    src = make_spec(model="model {\n  input x: f32[8]\n  y = x -> dense(1)\n}", loss="loss = msee(y, target)",
                    metrics="metrics = [rmse]")
    only(src, "E201")


def test_problems_in_several_sections_are_all_reported_in_order():
    src = make_spec(model="model {\n  input x: f32[1, 8, 8]\n  logits = x -> dense(10)\n}",
                    optimizer="optimizer = adamm(lr = 1e-3)", metrics="metrics = [accuracy, rmse]",
                    stop="stop { max = 5 epohcs }")
    assert triples(errors(src)) == [
        ("E401", *where(src, "dense(10)")),
        ("E201", *where(src, "adamm")),
        ("E306", *where(src, "5 epohcs")),
        ("E307", *where(src, "rmse")),
    ]


# ---- one problem, one diagnostic: (parts of make_spec, code, where the span starts, help) -------

DATA_WITH = 'data {{\n  source = csv("d.csv", target = "y")\n  split  = {{ train = 0.8, val = 0.2 }}\n  {}\n}}'
MODEL_WITH = "model {{\n  input x: f32[8]\n  {}\n}}"

ONE_PROBLEM = [
    (dict(extra="optimiser = adam()"), "E203", "optimiser", "did you mean 'optimizer'?"),
    (dict(data=DATA_WITH.format("normalize = standrd")), "E305", "standrd", "did you mean 'standard'?"),
    (dict(data=DATA_WITH.format('train = csv("t.csv", target = "y")')), "E211", "train = csv", None),
    (dict(data='data {\n  source = csv("d.csv", target = "y")\n}'), "E205", "source", None),
    (dict(data='data {\n  source = csv("d.csv")\n  split  = { train = 0.8, val = 0.2 }\n}'), "E301", 'csv("d.csv")',
     None),
    (dict(data=DATA_WITH.format("target_normalize = standard")), "E307", "target_normalize", None),
    (dict(model=MODEL_WITH.format("logits = x -> dense")), "E301", "dense\n", None),
    (dict(model=MODEL_WITH.format("logits = dense(3)")), "E206", "dense(3)", None),
    (dict(model=MODEL_WITH.format("logits = x -> dropout(1) -> dense(3)")), "E304", "1)", None),
    (dict(model=MODEL_WITH.format("logits = x -> dense(3, init = hee)")), "E201", "hee", "did you mean 'he'?"),
    (dict(model=MODEL_WITH.format("logits = x -> dense(3)\n  logits = x -> dense(3)")), "E209",
     "logits = x -> dense(3)\n}", None),
    (dict(model=MODEL_WITH.format("block relu() { dense(3) }\n  logits = x -> dense(3)")), "E209", "block relu", None),
    (dict(loss="loss = cross_entropy(logit, target)"), "E206", "logit,", "did you mean 'logits'?"),
    (dict(loss="loss = cross_entropy(logits, label)"), "E206", "label", None),
    (dict(optimizer='optimizer = adam(lr = "fast")'), "E303", '"fast"', None),
    (dict(optimizer="optimizer = adam(lr = 0)"), "E304", "0)", "expected a number > 0"),
    (dict(optimizer="optimizer = adam(rate = 0.1)"), "E202", "rate", None),
    (dict(schedule="schedule = cosinee()"), "E201", "cosinee", "did you mean 'cosine'?"),
    (dict(schedule="schedule = cosine() then constant()"), "E301", "cosine()", None),
    (dict(stop="stop { max = 5 epochs, max = 3 epochs }"), "E209", "max = 3", None),
    (dict(stop="stop { max = 5 epochs, budget = 3 epochs }"), "E306", "3 epochs", None),
    (dict(stop="stop { max = 5 epochs, when = val.loss == 0 }"), "E303", "val.loss ==", None),
    (dict(stop="stop { max = 5 epochs, early = plateau(test.loss) }"), "E207", "test.loss", None),
    (dict(extra="stop { max = 3 epochs }"), "E209", "stop { max = 3", None),
    (dict(metrics="metrics = [accuracy, accuracy]"), "E209", "accuracy]", None),
    (dict(extra="checkpoint { every = 10 min }"), "E306", "10 min", None),
    (dict(extra="checkpoint { last = 0 }"), "E304", "0 }", None),
    (dict(extra="checkpoint { keep = val.loss }"), "E303", "val.loss }", None),
    (dict(extra="run { seed = 1.5 }"), "E303", "1.5", None),
    (dict(extra="run { device = gpu }"), "E305", "gpu", None),
    (dict(extra="regularization { l2 = -1 }"), "E304", "-1", "expected a number >= 0"),
]


@pytest.mark.parametrize("parts, code, needle, help_", ONE_PROBLEM, ids=lambda v: v if isinstance(v, str) else None)
def test_one_problem_one_diagnostic(parts, code, needle, help_):
    src = make_spec(**parts)
    d = only(src, code)
    assert (d.span.line, d.span.col) == where(src, needle)
    if help_ is not None:
        assert d.help == help_


def test_a_bare_name_is_a_call_without_arguments():
    assert analyze(make_spec(optimizer="optimizer = adam"), "t.train") == \
        analyze(make_spec(optimizer="optimizer = adam()"), "t.train")


@pytest.mark.parametrize("stop", ["stop { max = 5 epochs, early = plateau(train.accuracy) }",
                                  "stop { max = 5 epochs, when = train.accuracy >= 0.9 }"])
def test_a_train_metric_is_measured_when_listed(stop):
    found = lint(make_spec(metrics="metrics = [accuracy]", stop=stop), "t.train")
    assert [d.code for d in found] == ["W305"]  # measured, but stopping on train while val exists: a warning
    src = make_spec(metrics="metrics = []", stop=stop)
    d = only(src, "E207")
    assert text_at(src, d.span) == "train.accuracy"


@pytest.mark.parametrize("decl, code", [("input x: f16[8]", "E305"), ("input x: f32[0]", "E304")])
def test_a_bad_input_declaration_does_not_cascade(decl, code):
    only(make_spec(model=f"model {{\n  {decl}\n  logits = x -> dense(3)\n}}"), code)


@pytest.mark.parametrize("parts", [dict(optimizer="optimizer { lr = 1 }"), dict(stop="stop = 5 epochs")])
def test_a_section_of_the_wrong_form_does_not_cascade(parts):
    only(make_spec(**parts), "E210")


def test_phases_that_together_fill_the_run():
    src = make_spec(schedule="schedule = warmup(3 epochs) then constant(3 epochs) then cosine()")
    d = only(src, "E308")
    assert text_at(src, d.span) == "3 epochs"
    assert (d.span.line, d.span.col) == where(src, "3 epochs", nth=2)


def test_input_outside_the_model():
    src = make_spec(extra="input z: f32[8]")
    d = only(src, "E203")
    assert (d.span.line, d.span.col) == where(src, "input z")


def test_integer_range_help_has_no_huge_bound():
    d = only(make_spec(stop="stop { max = 5 epochs, early = plateau(val.loss, patience = 0) }"), "E304")
    assert d.message == "'patience' of plateau is out of range: 0"
    assert "e+18" not in d.help


# ---- trainc compile ----------------------------------------------------------------------------------

runner = CliRunner()


def compile_(*args: str):
    return runner.invoke(app, ["compile", *args])


def at(needle: str) -> str:
    """Where `needle` is in examples/digits.train, as emit writes it: "line:col"."""
    return "%d:%d" % where(DIGITS.read_text(), needle)


def test_compile_emits_the_checked_ir_as_yaml():
    r = compile_(str(DIGITS), "--emit", "ir")
    assert r.exit_code == 0, r.stderr
    ir_ = yaml.safe_load(r.stdout)
    assert ir_["node"] == "Spec"
    assert ir_["optimizer"]["kind"] == "adamw"
    assert ir_["optimizer"]["args"] == {"lr": 0.003, "b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 0.01}
    assert ir_["stop"]["max"] == {"node": "Duration", "value": 30.0, "unit": "epochs", "at": at("30 epochs")}
    assert ir_["stop"]["early"]["mode"] == "min"
    assert ir_["model"]["inputs"] == [{"node": "Input", "name": "x", "type": "f32[64]", "at": at("input x")}]
    assert [(lay["name"], lay["out"]) for lay in ir_["model"]["layers"]][-1] == ("logits.dense0", "f32[10]")
    assert [p["kind"] for p in ir_["schedule"]["phases"]] == ["warmup", "cosine"]
    assert ir_["data"]["split"]["train"] == 0.8


def test_compile_ir_is_the_default():
    assert compile_(str(DIGITS)).stdout == compile_(str(DIGITS), "--emit", "ir").stdout


def test_compile_emits_the_syntax_tree():
    r = compile_(str(DIGITS), "--emit", "ast")
    assert r.exit_code == 0, r.stderr
    ast = yaml.safe_load(r.stdout)
    assert ast["node"] == "File"
    assert [(i["node"], i.get("name", i.get("key"))) for i in ast["items"]] == [
        ("Section", "data"), ("Section", "model"), ("Entry", "loss"), ("Entry", "optimizer"), ("Entry", "schedule"),
        ("Section", "regularization"), ("Section", "stop"), ("Entry", "metrics"), ("Section", "run")]
    optimizer = ast["items"][3]["value"]
    assert (optimizer["node"], optimizer["name"]["parts"], optimizer["at"]) == ("Call", ["adamw"], at("adamw("))
    assert ast["items"][4]["value"]["node"] == "Then"


def test_compile_rejects_an_unknown_stage():
    r = compile_(str(DIGITS), "--emit", "tokens")
    assert r.exit_code == 2
    assert "--emit takes ast or ir" in r.stderr


def test_set_overrides_a_setting():
    r = compile_(str(DIGITS), "--set", "stop.max=3 epochs")
    assert r.exit_code == 0, r.stderr
    assert yaml.safe_load(r.stdout)["stop"]["max"]["value"] == 3.0
    assert yaml.safe_load(r.stdout)["stop"]["early"]["patience"] == 5  # the rest of the section is kept


def test_set_replaces_a_value_and_adds_a_section():
    r = compile_(str(DIGITS), "--set", "optimizer=sgd(lr = 0.1)", "--set", "checkpoint.every=2 epochs")
    assert r.exit_code == 0, r.stderr
    out = yaml.safe_load(r.stdout)
    assert out["optimizer"]["args"] == {"lr": 0.1, "momentum": 0.0, "nesterov": False, "weight_decay": 0.0}
    assert out["checkpoint"]["every"]["value"] == 2.0


@pytest.mark.parametrize("value, code, col, caret", [
    ("3 fortnights", "E306", 1, "^^^^^^^^^^^^"),
    ("3 epochs epochs", "E102", 10, "         ^^^^^^"),
])
def test_bad_set_value_is_reported_against_the_override(value, code, col, caret):
    r = compile_(str(DIGITS), "--set", f"stop.max={value}")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[0].startswith(f"<--set stop.max>:1:{col}: error[{code}]: ")
    assert lines[2] == f"1 | {value}"
    assert lines[3] == f"  | {caret}"
    assert r.stdout == ""


def test_set_without_equals_is_a_usage_error():
    r = compile_(str(DIGITS), "--set", "stop.max")
    assert r.exit_code == 2
    assert "--set takes KEY=VALUE" in r.stderr


def test_set_into_a_section_written_as_a_record(tmp_path):
    # was a bug: --set refused `stop = { ... }` as "not a section"
    path = tmp_path / "r.train"
    path.write_text(make_spec(stop="stop = { max = 5 epochs }"))
    r = compile_(str(path), "--set", "stop.max=3 epochs")
    assert r.exit_code == 0, r.stderr
    assert yaml.safe_load(r.stdout)["stop"]["max"]["value"] == 3.0


@pytest.mark.parametrize("call, help_", [
    ("adam(lr = 1e-3, frezee = [logits])", "did you mean 'freeze'?"),
    ("adam(lr = 1e-3, grops = {})", "did you mean 'groups'?"),
    ("adam(lr = 1e-3, momentum = 0.9)", "adam takes: lr, b1, b2, eps, groups, freeze"),
])
def test_an_optimizers_help_names_the_arguments_every_optimizer_takes(call, help_):
    """groups and freeze are declared once, in the catalogue, for every optimizer: the help lists them too."""
    src = make_spec(optimizer=f"optimizer = {call}")
    d = only(src, "E202")
    assert d.help == help_

