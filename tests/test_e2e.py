"""End to end through the real `trainc` command: the shipped examples, shortened, train and write
their run directories."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"


def trainc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("trainc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainc"]
    return subprocess.run(cmd + list(args), cwd=cwd, capture_output=True, text=True, timeout=300)


def read_metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_digits_trains_to_95_percent(tmp_path):
    out = tmp_path / "run"
    r = trainc("run", "examples/digits.train", "--out", str(out), "--set", "stop.max=8 epochs")
    assert r.returncode == 0, r.stderr
    rows = read_metrics(out)
    summary = json.loads((out / "summary.json").read_text())
    assert 1 <= len(rows) <= 8
    for row in rows:
        assert {"epoch", "step", "lr", "train.loss", "val.loss", "val.accuracy"} <= set(row)
    assert [r_["epoch"] for r_ in rows] == list(range(1, len(rows) + 1))
    assert rows[-1]["step"] == len(rows) * (1438 // 64)  # 1,438 training examples, full batches of 64
    assert rows[-1]["val.loss"] < rows[0]["val.loss"]
    assert summary["final"]["val.accuracy"] >= 0.95
    assert summary["stop_reason"]
    assert summary["examples"] == {"train": 1438, "val": 359}  # 80/20 of 1,797, stratified
    assert (out / "model.safetensors").stat().st_size > 4 * (64 * 128 + 128 * 64 + 64 * 10)
    # plain lines when not a terminal: one per epoch, and the summary on stdout
    assert r.stderr.count("val.accuracy") == len(rows)
    assert "stopped:" in r.stdout and "final" in r.stdout


def test_same_seed_same_losses(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        r = trainc("run", "examples/digits.train", "-q", "--out", str(out), "--set", "stop.max=2 epochs")
        assert r.returncode == 0, r.stderr
        runs.append([(row["train.loss"], row["val.loss"]) for row in read_metrics(out)])
    assert runs[0] == runs[1]
    out = tmp_path / "c"
    r = trainc("run", "examples/digits.train", "-q", "--out", str(out), "--set", "stop.max=2 epochs",
               "--set", "run.seed=1")
    assert r.returncode == 0, r.stderr
    assert [(row["train.loss"], row["val.loss"]) for row in read_metrics(out)] != runs[0]


def test_regression_beats_the_training_mean(tmp_path):
    from trainc.compiler import analyze
    from trainc.runtime.data import load_data

    out = tmp_path / "run"
    r = trainc("run", "examples/diabetes.train", "--out", str(out), "--set", "stop.max=40 epochs")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    # the baseline, computed here from the same split in the target's units
    spec = analyze((EXAMPLES / "diabetes.train").read_text(), "diabetes.train")
    ds = load_data(spec.data, EXAMPLES, spec.run.seed)
    tn = ds.target_normalizer
    y_tr, y_va = ds.y_train * tn.scale + tn.shift, ds.y_val * tn.scale + tn.shift
    baseline_rmse = float(np.sqrt(((y_va - y_tr.mean()) ** 2).mean()))
    assert summary["baseline"]["val.rmse"] == pytest.approx(baseline_rmse, rel=1e-4)
    assert summary["final"]["val.rmse"] < 0.9 * baseline_rmse
    assert 0 < summary["final"]["val.mae"] < summary["final"]["val.rmse"]


def test_early_stopping_restores_best(tmp_path):
    out = tmp_path / "run"
    r = trainc("run", "examples/diabetes.train", "-q", "--out", str(out), "--set",
               "stop.early=plateau(val.loss, patience = 2, restore_best = true)", "--set",
               "optimizer=adam(lr = 0.05)")
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = read_metrics(out)
    assert summary["stop_reason"].startswith("early stopping: val.loss did not improve for 2 epochs")
    best = min(rows, key=lambda row: row["val.loss"])
    assert summary["best"]["epoch"] == best["epoch"]
    assert rows[-1]["epoch"] - best["epoch"] == 2
    assert summary["restored_best"] is True and summary["final"]["epoch"] == best["epoch"]


def test_run_with_a_bad_spec_shows_a_diagnostic(tmp_path):
    spec = tmp_path / "bad.train"
    text = (EXAMPLES / "digits.train").read_text().replace("adamw(", "adamm(")
    spec.write_text(text.replace('"data/digits.csv"', f'"{EXAMPLES / "data" / "digits.csv"}"'))
    r = trainc("run", str(spec), "--out", str(tmp_path / "run"))
    assert r.returncode == 1
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "adamm(" in t)
    assert f"bad.train:{line}:13: error[E201]: unknown optimizer 'adamm'" in r.stderr
    assert "did you mean 'adamw'?" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists()


def test_run_with_bad_data_shows_a_diagnostic(tmp_path):
    shutil.copy(EXAMPLES / "digits.train", tmp_path / "digits.train")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "digits.csv").write_text("p0,p1,label\n1,2,0\n3,x,1\n")
    r = trainc("run", str(tmp_path / "digits.train"))
    assert r.returncode == 1
    assert "error[E504]" in r.stderr and "Traceback" not in r.stderr
    assert "digits.train:5:" in r.stderr  # points at the source line of the spec


def test_input_shape_checked_against_data(tmp_path):
    text = (EXAMPLES / "digits.train").read_text().replace("f32[64]", "f32[60]")
    spec = tmp_path / "d.train"
    spec.write_text(text.replace('"data/digits.csv"', f'"{EXAMPLES / "data" / "digits.csv"}"'))
    r = trainc("run", str(spec), "--out", str(tmp_path / "run"))
    assert r.returncode == 1
    assert "error[E507]: input x: f32[60] but the data has examples of shape [64]" in r.stderr
    assert "help: declare `input x: f32[64]`" in r.stderr
