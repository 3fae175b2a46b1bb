"""`trainc eval` and `trainc predict` on a finished run: the same numbers as training reported, the same
preprocessing, and predictions that reproduce eval's accuracy (classification) and RMSE (regression)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("trainc"))


def trainc(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("digits")
    r = trainc("run", ROOT / "examples" / "digits.train", "-q", "--out", out, "--set", "stop.max=3 epochs",
               "--set", "checkpoint.keep=best(val.accuracy)")
    assert r.returncode == 0, r.stderr
    return out


def test_eval_on_val_reproduces_the_training_numbers(digits_run):
    r = trainc("eval", digits_run, "--json")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    final = json.loads((digits_run / "summary.json").read_text())["final"]
    assert got["val.loss"] == pytest.approx(final["val.loss"], rel=1e-6)
    assert got["val.accuracy"] == final["val.accuracy"] and got["examples"] == 359


def test_predict_reproduces_eval_accuracy_on_a_file(digits_run, tmp_path):
    lines = (ROOT / "examples" / "data" / "digits.csv").read_text().splitlines()
    (tmp_path / "some.csv").write_text("\n".join(lines[:401]) + "\n")
    r = trainc("eval", digits_run, "--split", tmp_path / "some.csv", "--json")
    assert r.returncode == 0, r.stderr
    acc = json.loads(r.stdout)["file.accuracy"]
    # predict reads features by name: drop the label and shuffle the column order
    rows = list(csv.DictReader(lines[:401]))
    names = [k for k in rows[0] if k != "label"][::-1]
    with open(tmp_path / "inputs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(names)
        w.writerows([[row[k] for k in names] for row in rows])
    r = trainc("predict", digits_run, tmp_path / "inputs.csv", "--out", tmp_path / "p.csv")
    assert r.returncode == 0, r.stderr
    preds = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(preds) == 400 and list(preds[0])[:2] == ["prediction", "p_0"]
    hits = np.mean([p["prediction"] == row["label"] for p, row in zip(preds, rows)])
    assert hits == pytest.approx(acc, abs=1e-12)
    probs = np.array([[float(p[f"p_{c}"]) for c in range(10)] for p in preds])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_best_and_latest_weights(digits_run):
    best = json.loads(trainc("eval", digits_run, "--weights", "best", "--json").stdout)
    rows = [json.loads(x) for x in (digits_run / "metrics.jsonl").read_text().splitlines()]
    assert best["val.accuracy"] == max(r["val.accuracy"] for r in rows)
    assert trainc("eval", digits_run, "--weights", "worst").returncode == 2


@pytest.mark.parametrize("args, message", [
    (["predict", "{run}", "{missing}"], "no such file"),
    (["eval", "{tmp}"], "not a run directory"),
    (["predict", "{run}", "{bad}"], "feature column(s) p0, p1, p2, p3, p4 missing"),
])
def test_bad_inputs_are_clear_errors(digits_run, tmp_path, args, message):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    subs = {"{run}": digits_run, "{missing}": tmp_path / "nope.csv", "{tmp}": tmp_path, "{bad}": tmp_path / "bad.csv"}
    r = trainc(*[subs.get(a, a) for a in args])
    assert r.returncode in (1, 2) and message in r.stderr and "Traceback" not in r.stderr


def test_regression_predictions_are_in_the_target_units(tmp_path):
    out = tmp_path / "run"
    r = trainc("run", ROOT / "examples" / "diabetes.train", "-q", "--out", out, "--set", "stop.max=5 epochs")
    assert r.returncode == 0, r.stderr
    data = ROOT / "examples" / "data" / "diabetes.csv"
    r = trainc("eval", out, "--split", data, "--json")
    assert r.returncode == 0, r.stderr
    rmse = json.loads(r.stdout)["file.rmse"]
    r = trainc("predict", out, data)
    assert r.returncode == 0, r.stderr
    pred = np.array([float(row[0]) for row in csv.reader(r.stdout.splitlines()[1:])])
    rows = list(csv.DictReader(open(data)))
    target = json.loads((out / "preprocess.json").read_text())["target_names"][0]
    y = np.array([float(row[target]) for row in rows])
    assert np.sqrt(np.mean((pred - y) ** 2)) == pytest.approx(rmse, rel=1e-4)
