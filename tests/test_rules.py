"""The cross-field rules (compiler/rules.py), the data-aware ones (runtime/loop.py's check_against_data),
silencing a warning (`# trainc: allow W302`, `--allow`), and lint reporting every independent problem.

Static cases are tables of spec variations and the (code, text under the span) each must give;
data cases write a small data file next to the spec and lint it through the real entry point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from trainc.compiler import lint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import REPO, make_spec, text_at  # noqa: E402

# parts of make_spec -> [(code, text under the span)]
STATIC = {
    "warm-up past the end": (dict(schedule="schedule = warmup(10 epochs)"), [("W302", "10 epochs")]),
    "warm-up as long as the run, then cosine": (dict(schedule="schedule = warmup(5 epochs) then cosine()"),
                                                [("E308", "5 epochs")]),
    "step every past the end": (dict(schedule="schedule = step(every = 6 epochs)"), [("W302", "6 epochs")]),
    "step within the run": (dict(schedule="schedule = step(every = 2 epochs)"), []),
    "restart period past the end": (dict(schedule="schedule = cosine_restarts(period = 5 epochs)"),
                                    [("W302", "5 epochs")]),
    "restart period within the run": (dict(schedule="schedule = cosine_restarts(period = 2 epochs)"), []),
    "cyclic peak past the end": (dict(schedule="schedule = cyclic(low = 1e-4, high = 1e-2, period = 12 epochs)"),
                                 [("W302", "12 epochs")]),
    "cyclic peak within the run": (dict(schedule="schedule = cyclic(low = 1e-4, high = 1e-2, period = 8 epochs)"),
                                   []),
    "milestone past the end": (dict(schedule="schedule = multistep([2 epochs, 7 epochs])"), [("W302", "7 epochs")]),
    "milestones in steps, run in epochs (needs the data)": (dict(schedule="schedule = multistep([9000 steps])"), []),
    "early patience past the end": (dict(stop="stop { max = 5 epochs, early = plateau(val.loss, patience = 6) }"),
                                    [("W302", "plateau(val.loss, patience = 6)")]),
    "early patience as long as the run": (dict(stop="stop { max = 5 epochs, early = plateau(val.loss) }"), []),
    "checkpoint past the end": (dict(extra="checkpoint { every = 9 epochs }"), [("W302", "9 epochs")]),
    "checkpoint at the end": (dict(extra="checkpoint { every = 5 epochs }"), []),
    "accuracy above one": (dict(metrics="metrics = [accuracy]", stop="stop { max = 5 epochs, when = val.accuracy "
                                ">= 1.5 }"), [("E311", "val.accuracy >= 1.5")]),
    "accuracy at one": (dict(metrics="metrics = [accuracy]", stop="stop { max = 5 epochs, when = val.accuracy "
                             ">= 1 }"), []),
    "loss below zero": (dict(stop="stop { max = 5 epochs, when = val.loss < 0 }"), [("E311", "val.loss < 0")]),
    "loss at zero or below": (dict(stop="stop { max = 5 epochs, when = val.loss <= 0 }"), []),
    "loss above a value": (dict(stop="stop { max = 5 epochs, when = val.loss >= 0.1 }"),
                           [("W304", "val.loss >= 0.1")]),
    "mode against the loss": (dict(stop="stop { max = 5 epochs, early = plateau(val.loss, patience = 2, "
                                   "mode = max) }"), [("W304", "plateau(val.loss, patience = 2, mode = max)")]),
    "mode with the loss": (dict(stop="stop { max = 5 epochs, early = plateau(val.loss, patience = 2, "
                                "mode = min) }"), []),
    "relu before cross_entropy": (dict(model="model {\n  input x: f32[8]\n  logits = x -> dense(3) -> relu\n}"),
                                  [("W401", "relu")]),
    "dropout before cross_entropy": (dict(model="model {\n  input x: f32[8]\n  logits = x -> dense(3) -> "
                                          "dropout(0.1)\n}"), [("W401", "dropout(0.1)")]),
    "relu before mse": (dict(model="model {\n  input x: f32[8]\n  logits = x -> dense(1) -> relu\n}",
                             loss="loss = mse(logits, target)"), []),
    "batchnorm at batch 1": (dict(data='data {\n  source = csv("d.csv", target = "y")\n  split = { train = 0.8, '
                                  'val = 0.2 }\n  batch = 1\n}', model="model {\n  input x: f32[8]\n  logits = x -> "
                                  "dense(16) -> batchnorm -> dense(3)\n}"), [("E312", "1")]),
    "nesterov without momentum": (dict(optimizer="optimizer = sgd(nesterov = true)"),
                                  [("E313", "sgd(nesterov = true)")]),
    "nesterov with momentum": (dict(optimizer="optimizer = sgd(momentum = 0.9, nesterov = true)"), []),
    "warm-up start over one": (dict(schedule="schedule = warmup(1 epochs, start = 1.5) then cosine()"),
                               [("E304", "1.5")]),
    "stratify on regression": (dict(data='data {\n  source = csv("d.csv", target = "y")\n  split = { train = 0.8, '
                                    'val = 0.2, stratify = true }\n}', loss="loss = mse(logits, target)",
                                    model="model {\n  input x: f32[8]\n  logits = x -> dense(1)\n}"),
                               [("E314", "true")]),
    "stratify left out on regression": (dict(loss="loss = mse(logits, target)",
                                             model="model {\n  input x: f32[8]\n  logits = x -> dense(1)\n}"), []),
    "early stopping on train": (dict(stop="stop { max = 5 epochs, early = plateau(train.loss, patience = 2) }"),
                                [("W305", "train.loss")]),
    "every layer frozen": (dict(optimizer="optimizer = adam(freeze = [logits])"),
                           [("E315", "adam(freeze = [logits])")]),
    "typos in groups and freeze": (dict(model="model {\n  input x: f32[8]\n  h = x -> dense(16)\n  logits = h -> "
                                        "dense(3)\n}", optimizer="optimizer = adam(groups = { hh = { lr = 1e-4 } }, "
                                        "freeze = [logit])"), [("E206", "hh"), ("E206", "logit")]),
    "a misspelt argument hides nothing": (dict(model="model {\n  input x: f32[8]\n  logits = x -> dense(3, int = "
                                               "he) -> softmax\n}"),
                                          [("E202", "int = he"), ("W401", "softmax")]),
}


@pytest.mark.parametrize("parts, want", STATIC.values(), ids=STATIC.keys())
def test_static_rule(parts, want):
    src = make_spec(**parts)
    assert [(d.code, text_at(src, d.span)) for d in lint(src, "t.train")] == want


def test_a_misspelt_block_parameter_gets_a_did_you_mean():
    src = make_spec(model="model {\n  input x: f32[8]\n  block mlp(width) { dense(widht) -> relu }\n  logits = x -> "
                    "mlp(16) -> dense(3)\n}")
    (d,) = lint(src, "t.train")
    assert (d.code, text_at(src, d.span), d.help) == ("E303", "widht", "did you mean 'width'?")


ALLOW = {  # the comment, and whether the W302 on the schedule line stays
    "": True,
    "  # trainc: allow W302": False,
    "  # trainc: allow W401, W302": False,
    "  # trainc: allow W401": True,
    "  # trainc:allow W302": False,
}


@pytest.mark.parametrize("comment, stays", ALLOW.items(), ids=[c or "none" for c in ALLOW])
def test_a_warning_is_silenced_on_its_line(comment, stays):
    src = make_spec(schedule="schedule = warmup(10 epochs)" + comment)
    assert [d.code for d in lint(src, "t.train")] == (["W302"] if stays else [])


def test_an_error_cannot_be_silenced():
    src = make_spec(optimizer="optimizer = sgd(nesterov = true)  # trainc: allow E313")
    assert [d.code for d in lint(src, "t.train")] == ["E313"]


def test_an_allow_on_another_line_does_not_silence():
    src = make_spec(schedule="schedule = warmup(10 epochs)", extra="# trainc: allow W302")
    assert [d.code for d in lint(src, "t.train")] == ["W302"]


def trainc(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_allow_on_the_command_line(tmp_path):
    (tmp_path / "a.train").write_text(make_spec(schedule="schedule = warmup(10 epochs)"))
    assert trainc("lint", str(tmp_path / "a.train")).returncode == 1
    r = trainc("lint", "--allow", "W302", str(tmp_path / "a.train"))
    assert (r.returncode, r.stdout) == (0, "1 file checked, no problems\n")


def test_skipped_data_checks_are_said(tmp_path):
    (tmp_path / "a.train").write_text(make_spec())
    r = trainc("lint", str(tmp_path / "a.train"))
    assert (r.returncode, r.stdout) == (0, "1 file checked, no problems\n")
    assert "data checks skipped" in r.stderr and "'d.csv' not found" in r.stderr


@pytest.mark.parametrize("sibling, path, hint", [("data.csv", "d.csv", "did you mean 'data.csv'?"),
                                                 ("digits.csv", "sub/digit.csv", "did you mean 'sub/digits.csv'?")])
def test_a_data_path_beside_a_close_name_is_a_typo(tmp_path, sibling, path, hint):
    """A missing file with a sibling of nearly its name is a warning at the path (W502), with the sibling; a
    missing file with none stays a note (the data may come later)."""
    (tmp_path / path).parent.mkdir(exist_ok=True)
    (tmp_path / path).parent.joinpath(sibling).write_text("a,y\n1,0\n")
    (tmp_path / "a.train").write_text(make_spec().replace('"d.csv"', f'"{path}"'))
    r = trainc("lint", "--format", "json", str(tmp_path / "a.train"))
    (d,) = json.loads(r.stdout)["diagnostics"]
    assert (d["code"], d["severity"], d["help"]) == ("W502", "warning", hint), d
    assert d["range"]["start"]["line"] == 2 and r.returncode == 1


def _csv(tmp_path, rows: list[str]) -> None:
    (tmp_path / "d.csv").write_text("\n".join(["a,b,y", *rows]) + "\n")


TWO = 'data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.5, val = 0.5, stratify = false }\n' \
      '  shuffle = false\n  batch = 2\n}'


def test_a_class_only_in_val(tmp_path):
    (tmp_path / "t.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    (tmp_path / "v.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,2\n")
    data = 'data {\n  train = csv("t.csv", target = "y")\n  val = csv("v.csv", target = "y")\n  batch = 2\n}'
    (tmp_path / "a.train").write_text(make_spec(data=data, model="model {\n  input x: f32[2]\n  logits = x -> "
                                                "dense(3)\n}"))
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    assert "[W501]" in r.stdout and "class 2 appears in val but not in train" in r.stdout, r.stdout + r.stderr


def test_class_count_points_at_the_layer(tmp_path):
    _csv(tmp_path, ["1,2,0", "3,4,1", "5,6,0", "7,8,1"] * 4)
    spec = make_spec(data=TWO, model="model {\n  input x: f32[2]\n  logits = x -> dense(3) -> relu\n}")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "json", str(tmp_path / "a.train"))
    found = {d["code"]: d for d in json.loads(r.stdout)["diagnostics"]}
    assert found["E508"]["range"]["start"] == {"line": 9, "col": 17}  # dense(3), not the loss
    (related,) = found["E508"]["related"]  # the loss that reads the width, as a second location
    assert "cross_entropy reads 'logits'" in related["message"]
    loss_line = spec.splitlines().index(next(l for l in spec.splitlines() if l.startswith("loss"))) + 1
    assert related["range"]["start"]["line"] == loss_line
    sarif = json.loads(trainc("lint", "--format", "sarif", str(tmp_path / "a.train")).stdout)
    (result,) = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "E508"]
    assert result["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == loss_line
    text = trainc("lint", str(tmp_path / "a.train")).stderr + trainc("lint", str(tmp_path / "a.train")).stdout
    assert f"a.train:{loss_line}:" in text and "= note:" in text  # the text formats show it as a note


# (the val targets' labels, the loss, the metric, a threshold met by a model that learned nothing, one not met)
MET = {  # val rows i = 20..39 (a 0.5 split, unshuffled); targets as below; hand-computed trivial scores in comments
    "rmse of the mean": (lambda i: 50 + 10 * (i % 7), "mse(logits, target)", 1, "rmse", "<= 5000", "<= 5"),
    "mae of the median": (lambda i: 50 + 10 * (i % 7), "mse(logits, target)", 1, "mae", "< 25", "< 10"),
    "r2 of the mean is 0": (lambda i: 50 + 10 * (i % 7), "mse(logits, target)", 1, "r2", ">= -0.5", ">= 0.5"),
    # classes 0 (3 of 4 rows in train: the majority) and 1: val accuracy of always 0 is 15/20 = 0.75
    "accuracy of the majority": (lambda i: int(i % 4 == 3), "cross_entropy(logits, target)", 2, "accuracy",
                                 ">= 0.7", ">= 0.8"),
    "auc of a constant is 0.5": (lambda i: int(i % 4 == 3), "cross_entropy(logits, target)", 2, "auc", "> 0.4",
                                 ">= 0.9"),
}


@pytest.mark.parametrize("label, loss, width, metric, met, unmet", MET.values(), ids=list(MET))
def test_threshold_met_before_training(tmp_path, label, loss, width, metric, met, unmet):
    _csv(tmp_path, [f"{i},{i % 3},{label(i)}" for i in range(40)])
    spec = make_spec(data=TWO.replace("batch = 2", "batch = 4"),
                     model=f"model {{\n  input x: f32[2]\n  logits = x -> dense({width})\n}}", loss=f"loss = {loss}",
                     metrics=f"metrics = [{metric}]", stop=f"stop {{ max = 5 epochs, when = val.{metric} {met} }}")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    assert "[W303]" in r.stdout and "is met before the model learns anything" in r.stdout, r.stdout + r.stderr
    (tmp_path / "a.train").write_text(spec.replace(met, unmet))
    r = trainc("lint", str(tmp_path / "a.train"))
    assert r.returncode == 0 and "W303" not in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.parametrize("schedule, code", [("warmup(60 steps)", "W302"), ("warmup(60 steps) then cosine()", "W302")])
def test_steps_compared_with_the_data(tmp_path, schedule, code):
    _csv(tmp_path, ["1,2,0", "3,4,1"] * 20)  # 20 train examples, batch 2: 10 steps an epoch, 50 in the run
    spec = make_spec(data=TWO, model="model {\n  input x: f32[2]\n  logits = x -> dense(2)\n}",
                     schedule=f"schedule = {schedule}")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    assert f"[{code}]" in r.stdout and "run lasts 50" in r.stdout and "(10 per epoch)" in r.stdout, r.stdout
    (tmp_path / "a.train").write_text(spec.replace("60 steps", "40 steps"))
    assert trainc("lint", str(tmp_path / "a.train")).returncode == 0


def test_token_ids_past_the_embedding(tmp_path):
    (tmp_path / "t.txt").write_text("the quick brown fox jumps over the lazy dog " * 20)
    spec = ('data {\n  source = text("t.txt", level = char, window = 8)\n  split = { train = 0.8, val = 0.2 }\n'
            '  normalize = none\n  batch = 16\n}\nmodel {\n  input x: i32[8]\n  logits = x -> embedding(20, 8) -> '
            'flatten -> dense(28)\n}\nloss = cross_entropy(logits, target)\noptimizer = adam(lr = 1e-3)\n'
            'stop { max = 1 epochs }\n')
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    assert "[E510]" in r.stdout and "embedding(20, 8)" not in r.stdout, r.stdout + r.stderr
    assert ":9:17:" in r.stdout.split("[E510]")[0].splitlines()[-1]


def test_a_missing_column_points_at_its_name(tmp_path):
    _csv(tmp_path, ["1,2,0", "3,4,1"] * 4)
    spec = make_spec(data=TWO.replace('target = "y")', 'target = "y", features = ["a", "bb"])'),
                     model="model {\n  input x: f32[2]\n  logits = x -> dense(2)\n}")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    assert r.stdout.startswith(f"{tmp_path / 'a.train'}:2:56: error: feature column 'bb' not found"), r.stdout


def test_the_input_width_is_checked_beside_other_errors(tmp_path):
    _csv(tmp_path, ["1,2,0", "3,4,1"] * 4)
    spec = make_spec(data=TWO, model="model {\n  input x: f32[3]\n  logits = x -> dense(2)\n}",
                     optimizer="optimizer = adamm(lr = 1e-3)")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"))
    codes = re.findall(r"\[([EW]\d{3})\]", r.stdout)
    assert codes == ["E507", "E201"], r.stdout
    assert r.stdout.startswith(f"{tmp_path / 'a.train'}:8:3:"), r.stdout  # the `input` line


NEW_CLASSES = {"runlength_": "W302", "threshold_": "E311", "mode_": "W304", "logits_": "W401"}


@pytest.mark.parametrize("prefix, code", NEW_CLASSES.items())
def test_golden_specs_of_each_new_class(prefix, code):
    """specs/errors/ holds at least three realistic cases of each class, and the class's code occurs."""
    paths = sorted((REPO / "specs" / "errors").glob(f"{prefix}*.train"))
    assert len(paths) >= 3
    assert any(f"# expect: {code} " in p.read_text() for p in paths)


def test_misspelt_arguments_in_loss_schedule_and_stop_hide_nothing():
    src = make_spec(loss="loss = cross_entropy(logits, target, smoothin = 0.1)",
                    schedule="schedule = warmup(10 epochs, strat = 0.1)", metrics="metrics = [accuracy]",
                    stop="stop { max = 5 epochs, early = plateau(val.loss, patiance = 6), when = val.accuracy >= 1.5 }")
    assert [(d.code, text_at(src, d.span)) for d in lint(src, "t.train")] == [
        ("E202", "smoothin = 0.1"), ("W302", "10 epochs"), ("E202", "strat = 0.1"), ("E202", "patiance = 6"),
        ("E311", "val.accuracy >= 1.5")]


def test_run_allows_a_warning_too(tmp_path):
    (tmp_path / "a.train").write_text(make_spec(schedule="schedule = warmup(10 epochs)"))  # and d.csv is missing
    shown = trainc("run", str(tmp_path / "a.train"), "--out", str(tmp_path / "r"))
    quiet = trainc("run", str(tmp_path / "a.train"), "--out", str(tmp_path / "r"), "--allow", "W302")
    assert "warning[W302]" in shown.stderr and "error[E501]" in shown.stderr, shown.stderr
    assert "W302" not in quiet.stderr and "error[E501]" in quiet.stderr, quiet.stderr


def test_the_language_server_sends_related_places():
    from trainc.compiler.diagnostics import Diagnostic
    from trainc.compiler.ir import Span
    from trainc.lsp import Lines, to_lsp
    d = Diagnostic(code="E508", message="m", span=Span("a.train", 2, 3, 2, 5),
                   related=(("the loss", Span("a.train", 4, 1, 4, 5)),))
    out = to_lsp(d, Lines("a\nbcdef\nc\nloss = x\n"), "file:///a.train")
    (info,) = out.related_information
    assert info.location.uri == "file:///a.train" and info.location.range.start.line == 3  # 0-based
    assert info.message == "the loss" and "note: a.train:4:1: the loss" in out.message
    assert to_lsp(d, Lines("a\nb\nc\nd\n")).related_information is None  # no document uri: text only


@pytest.mark.parametrize("model, line", [
    ("model {\n  input x: f32[2]\n  a = b -> dense(1)\n  b = x -> dense(2)\n  pred = a -> dense(1)\n}", 8),
    ("model {\n  input x: f32[2]\n  a = x -> dense(2, share = b)\n  b = x -> dense(2)\n  pred = a -> dense(1)\n}", 8),
])
def test_a_value_used_before_it_is_made_is_said_so_and_breaks_nothing_else(tmp_path, model, line):
    """The graph is read top to bottom: a use above the line that makes a value says so (not 'unknown'), points
    at the line that makes it, and the broken model does not make the data checks guess the task: an mse loss
    is regression, so the one-example values of y are not 'too few to stratify' (E505)."""
    _csv(tmp_path, [f"{i},{i % 3},{i}" for i in range(20)])  # 20 distinct targets
    data = 'data {\n  source = csv("d.csv", target = "y")\n  split  = { train = 0.5, val = 0.5 }\n  batch = 2\n}'
    spec = make_spec(data=data, model=model, loss="loss = mse(pred, target)", metrics="metrics = [rmse]")
    (tmp_path / "a.train").write_text(spec)
    r = trainc("lint", "--format", "json", str(tmp_path / "a.train"))
    (d,) = json.loads(r.stdout)["diagnostics"]
    assert d["code"] == "E206" and "'b' is used before it is made" in d["message"], d
    assert d["range"]["start"]["line"] == line and d["related"][0]["range"]["start"]["line"] == line + 1
