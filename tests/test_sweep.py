"""`trainc sweep`: the --grid / --range arguments, the trial plan, the ranking, and real sweeps through
the `trainc` command, checked against the trials' own run directories."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainc.compiler import analyze
from trainc.compiler.diagnostics import SpecError
from trainc.runtime import sweep as sw

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import REPO, make_spec  # noqa: E402

LOGISTIC = "specs/logistic_regression.train"  # 455 training examples, one full-batch step per epoch


def trainc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------

GRID_OK = [
    ("optimizer.lr=[1e-3, 3e-3]", "optimizer.lr", ("1e-3", "3e-3")),
    ("data.batch=[32,64]", "data.batch", ("32", "64")),
    ('data.normalize=["a", "b"]', "data.normalize", ('"a"', '"b"')),
    ("stop.max=[3 epochs, 5 epochs]", "stop.max", ("3 epochs", "5 epochs")),
    ("optimizer=[adam(lr = 1e-3), sgd(lr = 0.1, momentum = 0.9)]", "optimizer",
     ("adam(lr = 1e-3)", "sgd(lr = 0.1, momentum = 0.9)")),
    ("regularization.l2=[0, -1, 1e-2,]", "regularization.l2", ("0", "-1", "1e-2")),
    (" run.seed = [1] ", "run.seed", ("1",)),
    ("metrics=[[accuracy], [accuracy, auc]]", "metrics", ("[accuracy]", "[accuracy, auc]")),
    ('stop.max=[\n  2 epochs,\n  4 epochs\n]', "stop.max", ("2 epochs", "4 epochs")),
]

GRID_BAD = [  # (argument, exception, words in the message)
    ("data.batch", sw.SweepUsage, "takes KEY=VALUE"),
    ("data.batch=", sw.SweepUsage, "has no value"),
    ("data.batch=[]", sw.SweepUsage, "is empty"),
    ("data.batch=64", sw.SweepUsage, "takes a list"),
    ("data.batch.size=[1]", sw.SweepUsage, "not a setting name"),
    ("1data=[1]", sw.SweepUsage, "not a setting name"),
    ("=[1]", sw.SweepUsage, "not a setting name"),
    ("data.batch=[1,", SpecError, "E102"),
    ("data.batch=[1 2]", SpecError, "E102"),
]


@pytest.mark.parametrize("arg, key, values", GRID_OK)
def test_grid_accepted(arg, key, values):
    assert sw.parse_grid(arg, {}) == sw.Grid(key=key, values=values)


@pytest.mark.parametrize("arg, exc, words", GRID_BAD)
def test_grid_rejected(arg, exc, words):
    sources = {}
    with pytest.raises(exc) as e:
        sw.parse_grid(arg, sources)
    text = str(e.value) if exc is sw.SweepUsage else " ".join(d.code for d in e.value.diagnostics)
    assert words in text
    if exc is SpecError:  # located in the argument, whose text is there to render the caret
        assert e.value.diagnostics[0].span.file == "<--grid data.batch>"
        assert sources["<--grid data.batch>"] == arg.split("=", 1)[1]


RANGE_OK = [
    ("optimizer.lr=loguniform(1e-4, 1e-2)", dict(kind="loguniform", low=1e-4, high=1e-2, unit=None)),
    ("regularization.l2=uniform(0, 0.1)", dict(kind="uniform", low=0, high=0.1, unit=None)),
    ("x.y=uniform(-1, 1)", dict(kind="uniform", low=-1, high=1, unit=None)),
    ("data.batch=int(16, 128)", dict(kind="int", low=16, high=128, unit=None)),
    ("stop.max=int(2 epochs, 6 epochs)", dict(kind="int", low=2, high=6, unit="epochs")),
    ("data.batch=int(32, 32)", dict(kind="int", low=32, high=32, unit=None)),
    ('optimizer=choice(adam(lr = 1e-3), sgd(lr = 0.1))', dict(kind="choice", choices=("adam(lr = 1e-3)",
                                                                                      "sgd(lr = 0.1)"))),
    ('data.normalize=choice("a")', dict(kind="choice", choices=('"a"',))),
]

RANGE_BAD = [
    ("optimizer.lr=normal(0, 1)", "not a distribution"),
    ("optimizer.lr=[1e-3, 1e-2]", "not a distribution"),
    ("optimizer.lr=1e-3", "not a distribution"),
    ("optimizer.lr=loguniform(0, 1e-2)", "0 < low < high"),
    ("optimizer.lr=loguniform(1e-2, 1e-4)", "0 < low < high"),
    ("optimizer.lr=uniform(1, 1)", "low < high"),
    ("optimizer.lr=uniform(1)", "takes two numbers"),
    ("optimizer.lr=uniform(1, 2, 3)", "takes two numbers"),
    ("optimizer.lr=uniform(low = 1, high = 2)", "by position"),
    ('optimizer.lr=uniform("a", 2)', "takes two numbers"),
    ("data.batch=int(1.5, 4)", "whole numbers"),
    ("data.batch=int(8, 4)", "low <= high"),
    ("stop.max=int(2 epochs, 6 steps)", "same unit"),
    ("stop.max=int(2 epochs, 6)", "same unit"),
    ("stop.max=uniform(1%, 5%)", "takes two numbers"),
    ("optimizer=choice()", "is empty"),
    ("optimizer", "takes KEY=VALUE"),
]


@pytest.mark.parametrize("arg, fields", RANGE_OK)
def test_range_accepted(arg, fields):
    r = sw.parse_range(arg, {})
    assert {k: getattr(r, k) for k in fields} == fields
    assert r.key == arg.split("=", 1)[0] and r.text == arg.split("=", 1)[1]


@pytest.mark.parametrize("arg, words", RANGE_BAD)
def test_range_rejected(arg, words):
    with pytest.raises(sw.SweepUsage, match=words.replace("(", r"\(")):
        sw.parse_range(arg, {})


def _draws(arg: str, n: int = 400) -> list[str]:
    import random

    r, rng = sw.parse_range(arg, {}), random.Random(0)
    return [r.draw(rng) for _ in range(n)]


def test_loguniform_draws_spread_evenly_in_log_space():
    logs = [math.log10(float(v)) for v in _draws("k=loguniform(1e-4, 1e-2)")]
    assert all(-4 <= x <= -2 for x in logs)
    assert abs(sum(logs) / len(logs) - (-3)) < 0.1  # uniform in log10 on [-4, -2]: mean -3, sd 0.58
    assert sum(x < -3 for x in logs) / len(logs) == pytest.approx(0.5, abs=0.08)


def test_int_draws_every_whole_number_and_keeps_the_unit():
    assert set(_draws("k=int(2, 4)")) == {"2", "3", "4"}
    assert set(_draws("stop.max=int(2 epochs, 3 epochs)")) == {"2 epochs", "3 epochs"}
    values = [float(v) for v in _draws("k=uniform(-1, 1)")]
    assert all(-1 <= v <= 1 for v in values) and min(values) < -0.9 and max(values) > 0.9


def test_drawn_values_parse_back_to_what_was_drawn():
    from trainc.compiler.parse import parse_expr

    for text in _draws("k=loguniform(1e-7, 1e3)", 50) + _draws("k=uniform(-5, 5)", 50):
        v = parse_expr(text, "<x>")
        assert float(text) == (v.value if hasattr(v, "value") else -v.operand.value)


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def grids(*args: str) -> list[sw.Grid]:
    return [sw.parse_grid(a, {}) for a in args]


def ranges(*args: str) -> list[sw.Range]:
    return [sw.parse_range(a, {}) for a in args]


def test_grid_plan_is_every_combination_last_grid_fastest():
    plan = sw.plan(grids("optimizer.lr=[1e-3,3e-3]", "data.batch=[32,64,128]"), [], None)
    assert plan == [{"optimizer.lr": lr, "data.batch": b} for lr in ("1e-3", "3e-3") for b in ("32", "64", "128")]


def test_random_plan_is_reproducible_with_its_seed():
    args = (grids("data.batch=[32,64,128]"), ranges("optimizer.lr=loguniform(1e-4, 1e-2)", "run.seed=int(0, 9)"))
    a, b = sw.plan(*args, 6, seed=3), sw.plan(*args, 6, seed=3)
    assert a == b and len(a) == 6
    assert all(set(t) == {"data.batch", "optimizer.lr", "run.seed"} for t in a)
    assert sw.plan(*args, 6, seed=4) != a
    assert len({t["optimizer.lr"] for t in a}) == 6  # real draws, not one value repeated


PLAN_BAD = [  # (grids, ranges, --random, --set, message)
    ([], [], None, (), "nothing to sweep"),
    ([], [], 3, (), "nothing to sweep"),
    (["data.batch=[1,2]", "data.batch=[3]"], [], None, (), "swept twice"),
    (["data.batch=[1,2]"], ["data.batch=int(1, 4)"], 2, (), "swept twice"),
    (["data.batch=[1,2]"], [], None, ("data.batch=3",), "both swept and fixed"),
    ([], ["data.batch=int(1, 4)"], None, (), "add --random N"),
    ([], ["data.batch=int(1, 4)"], 0, (), ">= 1"),
]


@pytest.mark.parametrize("g, r, n, fixed, words", PLAN_BAD)
def test_plan_rejected(g, r, n, fixed, words):
    with pytest.raises(sw.SweepUsage, match=words):
        sw.plan(grids(*g), ranges(*r), n, 0, fixed)


MONITORS = [  # (spec parts, expected monitor)
    ({}, ("val.loss", "min")),
    ({"stop": "stop { max = 5 epochs, early = plateau(val.accuracy) }", "metrics": "metrics = [accuracy]"},
     ("val.accuracy", "max")),
    ({"stop": "stop { max = 5 epochs, early = plateau(train.loss) }"}, ("train.loss", "min")),
    ({"metrics": "metrics = [accuracy]\ncheckpoint { keep = best(val.accuracy) }"}, ("val.accuracy", "max")),
    ({"stop": "stop { max = 5 epochs, early = plateau(val.loss) }",
      "metrics": "metrics = [accuracy]\ncheckpoint { keep = best(val.accuracy) }"}, ("val.loss", "min")),
]


@pytest.mark.parametrize("parts, expected", MONITORS)
def test_monitor_is_early_stopping_then_checkpoint_then_val_loss(parts, expected):
    m = sw.monitor(analyze(make_spec(**parts), "t.train"))
    assert (m.metric, m.mode) == expected
    assert m.judged_by == (expected[0] if "early" in parts.get("stop", "") else "val.loss")


def test_rank_best_first_by_mode_and_unfinished_last():
    def t(i, value, status="ok"):
        return sw.Trial(index=i, overrides={}, dir=Path(f"trial-{i:03d}"), status=status, value=value)

    trials = [t(0, 0.5), t(1, None, "failed"), t(2, 0.2), t(3, 0.9, "interrupted"), t(4, 0.7), t(5, 0.2),
              t(6, None, "not run")]
    assert [x.index for x in sw.rank(trials, "min")] == [2, 5, 0, 4, 3, 1, 6]
    assert [x.index for x in sw.rank(trials, "max")] == [4, 0, 2, 5, 3, 1, 6]


def test_best_of_reads_metrics_jsonl_for_another_monitor(tmp_path):
    rows = [{"epoch": 1, "val.loss": 0.5, "val.accuracy": 0.7}, {"epoch": 2, "val.loss": 0.4, "val.accuracy": 0.9},
            {"epoch": 3, "val.loss": 0.3, "val.accuracy": 0.95, "diverged": "train.loss nan"},
            {"epoch": 3, "val.loss": 0.45, "val.accuracy": 0.8}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "summary.json").write_text(json.dumps({"best": rows[1]}))
    assert sw.best_of(tmp_path, sw.Monitor("val.accuracy", "max", "val.loss")) == (0.9, rows[1])
    assert sw.best_of(tmp_path, sw.Monitor("val.loss", "min", "val.loss")) == (0.4, rows[1])
    assert sw.best_of(tmp_path, sw.Monitor("val.loss", "max", "val.accuracy")) == (0.5, rows[0])


# ---------------------------------------------------------------------------------------------
# Through the `trainc` command
# ---------------------------------------------------------------------------------------------

USAGE = [  # (arguments after the spec, words on stderr); all exit 2 before anything runs
    ([], "nothing to sweep"),
    (["--grid", "data.batch"], "takes KEY=VALUE"),
    (["--grid", "data.batch=[]"], "is empty"),
    (["--grid", "data.batch=64"], "takes a list"),
    (["--random", "2", "--range", "optimizer.lr=gauss(1, 2)"], "not a distribution"),
    (["--range", "regularization.l2=uniform(0, 1)"], "add --random N"),
    (["--grid", "data.batch=[32]", "--set", "data.batch=64"], "both swept and fixed"),
    (["--grid", "data.batch=[32]", "--jobs", "0"], "--jobs"),
]


@pytest.mark.parametrize("args, words", USAGE)
def test_sweep_usage_errors(tmp_path, args, words):
    r = trainc("sweep", LOGISTIC, "--out", str(tmp_path / "sw"), *args)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "sw").exists()


def test_bad_key_in_a_grid_is_refused_once_before_any_trial(tmp_path):
    r = trainc("sweep", LOGISTIC, "--out", str(tmp_path / "sw"), "--grid", "data.bach=[32,64]",
               "--grid", "run.seed=[0,1,2]")
    assert r.returncode == 1
    assert r.stderr.count("error[E204]: unknown key 'bach' in data") == 1, r.stderr
    assert "did you mean 'batch'?" in r.stderr and r.stderr.endswith("\n1 error\n")
    assert not (tmp_path / "sw").exists()


def test_bad_value_in_one_trial_is_refused_before_any_trial(tmp_path):
    r = trainc("sweep", LOGISTIC, "--out", str(tmp_path / "sw"), "--grid", 'data.batch=[32, "x"]')
    assert r.returncode == 1
    assert 'error[E303]: data.batch must be an integer >= 1, found the string "x"' in r.stderr
    assert not (tmp_path / "sw").exists()


def test_syntax_error_in_a_grid_points_into_it(tmp_path):
    r = trainc("sweep", LOGISTIC, "--out", str(tmp_path / "sw"), "--grid", "data.batch=[32, 64")
    assert r.returncode == 1
    assert r.stderr.startswith("<--grid data.batch>:1:8: error[E102]: unexpected end of file")
    assert "1 | [32, 64\n" in r.stderr


def _summary(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def test_a_2x2_sweep_ranks_four_runs(tmp_path):
    out = tmp_path / "sw"
    # val.auc is a score: ranked by the largest, as early stopping's `mode = auto` would judge it
    r = trainc("sweep", LOGISTIC, "--out", str(out), "-j", "2", "--set", "stop.max=3 epochs",
               "--set", "stop.early=plateau(val.auc, patience = 3)",
               "--grid", "optimizer=[adam(lr = 0.003), adam(lr = 0.1)]", "--grid", "data.batch=[64, 128]")
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert (doc["metric"], doc["mode"], doc["complete"]) == ("val.auc", "max", True)
    assert len(doc["trials"]) == 4 and len(r.stderr.splitlines()) == 5  # a header, one line per trial
    by_name = {t["trial"]: t for t in doc["trials"]}
    expected = [{"optimizer": o, "data.batch": b} for o in ("adam(lr = 0.003)", "adam(lr = 0.1)")
                for b in ("64", "128")]
    for i, want in enumerate(expected):
        t = by_name[f"trial-{i:03d}"]
        assert t["overrides"] == want and t["status"] == "ok"
        d = out / t["trial"]
        summary = _summary(d)
        rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        # the trial ran with its overrides: its lr, its steps per epoch (n_train // batch), the fixed stop.max
        assert {row["lr"] for row in rows} == {float(want["optimizer"].split("= ")[1].rstrip(")"))}
        assert summary["steps"] == 3 * (summary["examples"]["train"] // int(want["data.batch"]))
        assert summary["epochs"] == t["epochs"] == 3
        assert t["value"] == summary["best"]["val.auc"]
    # best first, judged against the trials' own summaries
    values = {name: _summary(out / name)["best"]["val.auc"] for name in by_name}
    assert doc["ranking"] == sorted(values, key=lambda n: (-values[n], n))
    assert [by_name[n]["rank"] for n in doc["ranking"]] == [1, 2, 3, 4]
    # the printed table and the CSV, in the same order
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["rank", "trial", "optimizer", "data.batch", "val.auc", "(max)", "val.loss", "epochs",
                                "time", "status"]
    assert [ln.split()[1] for ln in lines[1:5]] == doc["ranking"]
    csv_rows = (out / "sweep.csv").read_text().splitlines()
    assert csv_rows[0] == "rank,trial,optimizer,data.batch,val.auc,val.loss,epochs,time_s,status"
    assert [row.split(",")[1] for row in csv_rows[1:]] == doc["ranking"]
    best = csv_rows[1].split(",")
    assert float(best[4]) == values[doc["ranking"][0]]


def test_a_failed_trial_is_reported_and_ranked_last(tmp_path):
    out = tmp_path / "sw"
    r = trainc("sweep", LOGISTIC, "--out", str(out), "--set", "stop.max=1 epochs", "--grid", "data.batch=[455000, 64]")
    assert r.returncode == 1  # the sweep went on, then says a trial failed
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["ranking"] == ["trial-001", "trial-000"]
    failed = doc["trials"][0]
    assert (failed["status"], failed["exit_code"], failed["value"]) == ("failed", 1, None)
    stderr_txt = (out / "trial-000" / "stderr.txt").read_text()
    assert "error[E505]: batch 455000 is larger than the training split" in stderr_txt
    assert "exit code 1" in r.stderr and "| <--set data.batch>:1:1: error[E505]" in r.stderr
    assert doc["trials"][1]["status"] == "ok" and (out / "trial-001" / "summary.json").exists()


def test_a_finished_sweep_is_replaced_only_with_force(tmp_path):
    out = tmp_path / "sw"
    args = ("sweep", LOGISTIC, "--out", str(out), "--set", "stop.max=1 epochs", "--grid", "data.batch=[64]")
    assert trainc(*args).returncode == 0
    first = (out / "trial-000" / "summary.json").read_bytes()
    r = trainc(*args)
    assert r.returncode == 1 and "holds the finished runs of an earlier sweep" in r.stderr and "--force" in r.stderr
    assert (out / "trial-000" / "summary.json").read_bytes() == first  # untouched
    r = trainc(*args, "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "sweep.json").read_text())["trials"][0]["status"] == "ok"


def test_a_random_sweep_draws_what_its_seed_says(tmp_path):
    out = tmp_path / "sw"
    args = ["--random", "2", "--seed", "5", "--range", "regularization.l2=loguniform(1e-4, 1e-1)",
            "--range", "stop.max=int(1 epochs, 3 epochs)"]
    r = trainc("sweep", LOGISTIC, "--out", str(out), *args)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "sweep.json").read_text())
    plan = sw.plan([], ranges("regularization.l2=loguniform(1e-4, 1e-1)", "stop.max=int(1 epochs, 3 epochs)"), 2, 5)
    assert [t["overrides"] for t in doc["trials"]] == plan
    assert doc["seed"] == 5 and doc["range"]["stop.max"] == "int(1 epochs, 3 epochs)"
    for t in doc["trials"]:  # each trial trained for the number of epochs drawn for it
        assert _summary(out / t["trial"])["epochs"] == int(t["overrides"]["stop.max"].split()[0])


def test_ctrl_c_stops_the_trials_and_still_writes_the_table(tmp_path):
    out = tmp_path / "sw"
    cmd = [sys.executable, "-m", "trainc", "sweep", LOGISTIC, "--out", str(out), "-j", "1",
           "--set", "stop.max=1000000 epochs", "--grid", "run.seed=[0, 1]"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    metrics = out / "trial-000" / "metrics.jsonl"
    while not metrics.exists() or not metrics.stat().st_size:  # it has trained an epoch
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["complete"] is False
    first, second = doc["trials"]
    assert first["status"] == "interrupted" and first["value"] is not None  # it had trained some epochs
    assert _summary(out / "trial-000")["stop_reason"] == "interrupted"
    assert second["status"] == "not run" and not (out / "trial-001").exists()
    assert "interrupted" in stderr and "trial-000" in stdout


def test_sweep_checks_never_import_tinygrad():
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from trainc.cli import app
        r = CliRunner().invoke(app, ["sweep", {LOGISTIC!r}, "--grid", "data.bach=[1, 2]"])
        assert r.exit_code == 1, r.output
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tinygrad")
        assert not loaded, loaded
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (r.returncode, r.stdout) == (0, "ok\n"), r.stderr
