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


IMAGES_SPEC = """data {
  source = images("pics", color = gray, size = [4, 4])
  split  = { train = 0.5, val = 0.5 }
  batch  = 2
}
model {
  input x: f32[1, 4, 4]
  logits = x -> flatten -> dense(2)
}
loss      = cross_entropy(logits, target)
optimizer = adam(lr = 0.01)
stop { max = 1 epochs }
"""
TEXT_SPEC = """data {
  source    = text("t.txt", level = char, window = 4)
  split     = { train = 0.8, val = 0.2 }
  normalize = none
  batch     = 4
}
model {
  input x: i32[4]
  logits = x -> embedding(8, 4) -> flatten -> dense(8)
}
loss      = cross_entropy(logits, target)
optimizer = adam(lr = 0.01)
stop { max = 1 epochs }
"""


def _image(path: Path, value: int, size: int = 6) -> np.ndarray:
    """A gray PNG of one value with a brighter corner; returned as the model sees it after resizing to 4x4."""
    from PIL import Image

    a = np.full((size, size), value, np.uint8)
    a[:2, :2] = 255
    Image.fromarray(a).save(path)
    return np.asarray(Image.fromarray(a).resize((4, 4), Image.Resampling.BILINEAR), np.float64)[None] / 255.0


def _predict_rows(run: Path, inputs: Path) -> list[list[str]]:
    r = trainc("predict", run, inputs)
    assert r.returncode == 0, r.stderr
    return list(csv.reader(r.stdout.splitlines()))


def test_predict_reads_images_as_an_images_model_was_trained(tmp_path):
    for label, value in (("a", 20), ("b", 200)):
        (tmp_path / "pics" / label).mkdir(parents=True)
        for i in range(4):
            _image(tmp_path / "pics" / label / f"{i}.png", value + 5 * i)
    (tmp_path / "s.train").write_text(IMAGES_SPEC)
    assert trainc("run", "s.train", "-q", "--out", "run", cwd=tmp_path).returncode == 0
    new = tmp_path / "new"
    new.mkdir()
    x = np.stack([_image(new / f"{n}.png", v) for n, v in (("p", 30), ("q", 190))])  # name order
    np.save(tmp_path / "x.npy", x)
    as_array = _predict_rows(tmp_path / "run", tmp_path / "x.npy")  # the independent path: arrays made here
    assert _predict_rows(tmp_path / "run", new) == as_array and len(as_array) == 3
    assert _predict_rows(tmp_path / "run", new / "q.png") == [as_array[0], as_array[2]]


def test_predict_reads_raw_text_as_a_text_model_was_trained(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefg " * 12)
    (tmp_path / "s.train").write_text(TEXT_SPEC)
    r = trainc("run", "s.train", "-q", "--out", "run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    vocab = sorted(set("abcdefg "))  # ids in sorted order, as the text source assigns them
    text = "gabc def"
    ids = np.array([vocab.index(c) for c in text], np.float64)
    np.save(tmp_path / "x.npy", np.stack([ids[i:i + 4] for i in range(len(text) - 3)]))
    (tmp_path / "new.txt").write_text(text)
    as_array = _predict_rows(tmp_path / "run", tmp_path / "x.npy")
    assert _predict_rows(tmp_path / "run", tmp_path / "new.txt") == as_array and len(as_array) == 1 + 5
