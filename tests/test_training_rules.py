"""Stopping rules, the divergence guard, cross-field checks and the commands around them.

References: hand computation from the definitions in specs/README.md, and numpy.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainc.compiler import analyze, lint

ROOT = Path(__file__).parents[1]
EXAMPLES = ROOT / "examples"
DIGITS = (EXAMPLES / "digits.train").read_text()


def trainc(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("trainc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainc"]
    return subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


def codes(text: str) -> list[str]:
    return [d.code for d in lint(text, "t.train")]


# ---- early stopping: improvement rule (hand computation) -----------------------------------------


def test_improvement_absolute_and_relative():
    from trainc.runtime.loop import improved

    assert improved(0.9, None, "min", 0.1)  # the first value is always an improvement
    assert not improved(0.95, 1.0, "min", 0.1)  # absolute: must drop below 0.9
    assert improved(0.89, 1.0, "min", 0.1)
    assert not improved(1.9, 2.0, "min", 0.05, relative=True)  # relative: below 2.0 * 0.95 = 1.9
    assert improved(1.89, 2.0, "min", 0.05, relative=True)
    assert improved(0.95, 0.9, "max", 0.01, relative=True)  # above 0.9 * 1.01 = 0.909
    assert not improved(0.905, 0.9, "max", 0.01, relative=True)
    assert not improved(float("nan"), 1.0, "min", 0.0) and not improved(None, 1.0, "min", 0.0)


def test_relative_min_delta_is_parsed():
    spec = analyze(DIGITS.replace("min_delta = 1e-4", "min_delta = 2%"), "d.train")
    assert (spec.stop.early.min_delta, spec.stop.early.relative) == (0.02, True)
    spec = analyze(DIGITS, "d.train")
    assert (spec.stop.early.min_delta, spec.stop.early.relative) == (1e-4, False)


def test_divergence_rule_hand_cases():
    from trainc.compiler import ir
    from trainc.runtime.loop import diverged

    guard = ir.Divergence(action="stop", explode=10.0, span=ir.NOWHERE)
    assert diverged(float("nan"), 1.0, None, None) == "the loss is not finite"
    assert diverged(1.0, float("inf"), 0.5, guard) == "the loss is not finite"
    assert diverged(5.0, 1.0, 0.5, guard) is None  # 5 <= 10 x 0.5
    assert diverged(5.1, 1.0, 0.5, guard).startswith("train.loss 5.1 is more than 10x its best")
    assert diverged(1e9, 1.0, 0.5, None) is None  # without explode only non-finite losses count


# ---- the divergence guard, end to end ------------------------------------------------------------

EXPLODING = ["--set", "optimizer=sgd(lr = 100.0)", "--set", "regularization={}", "--set", "stop.max=4 epochs",
             "--set", "schedule=warmup(3 epochs, start = 0.0001) then constant"]


def test_divergence_stops_by_default(tmp_path):
    r = trainc("run", "examples/digits.train", "-q", "--out", str(tmp_path), *EXPLODING)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert summary["stop_reason"].startswith("diverged: the loss is not finite")
    assert rows[-1]["diverged"] == "the loss is not finite" and rows[-1]["train.loss"] is None


def test_rollback_recovers_with_a_lower_lr(tmp_path):
    r = trainc("run", "examples/digits.train", "--out", str(tmp_path), *EXPLODING,
               "--set", "stop.diverge=rollback(lr_factor = 0.001, retries = 2)")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((tmp_path / "summary.json").read_text())
    bad = [row for row in rows if "diverged" in row]
    good = [row for row in rows if "diverged" not in row]
    assert 1 <= len(bad) <= 2 and "rolled back to epoch" in r.stderr
    assert good and all(np.isfinite(row["train.loss"]) for row in good)
    assert summary["stop_reason"] == "reached stop.max (4 epochs)"
    # after the roll-back the lr is the schedule's value times the factor
    first_good_after = next(row for row in rows if row["epoch"] == bad[-1]["epoch"] and "diverged" not in row)
    assert first_good_after["lr"] == pytest.approx(bad[-1]["lr"] * 0.001, rel=1e-6)
    assert summary["final"]["val.accuracy"] > 0.5


def test_diverge_needs_a_known_action():
    text = DIGITS.replace("  when", "  diverge = rolback()\n  when")
    d = [d for d in lint(text, "t.train") if d.code == "E201"]
    assert d and d[0].help == "did you mean 'rollback'?"


# ---- cross-field checks --------------------------------------------------------------------------


def test_class_weights_must_match_the_classes():
    text = DIGITS.replace("smoothing = 0.05", "weights = [1, 2, 3]")
    diags = lint(text, "t.train")
    assert [d.code for d in diags] == ["E402"]
    assert diags[0].message == "weights has 3 entries but 'logits' has 10 classes"


def test_top_k_larger_than_the_classes():
    text = DIGITS.replace("metrics = [accuracy]", "metrics = [accuracy, top_k(k = 12)]")
    assert codes(text) == ["E304"]


def test_plateau_schedule_must_be_last():
    text = DIGITS.replace("schedule  = warmup(50 steps) then cosine(to = 1e-5)",
                          "schedule  = plateau(val.loss, patience = 2, length = 5 epochs) then cosine()")
    assert "E310" in codes(text)


def test_early_stopping_must_outwait_plateau():
    text = DIGITS.replace("schedule  = warmup(50 steps) then cosine(to = 1e-5)",
                          "schedule  = warmup(50 steps) then plateau(val.loss, factor = 0.5, patience = 5)")
    diags = lint(text, "t.train")
    assert [d.code for d in diags] == ["W301"]
    assert diags[0].severity == "warning" and "e.g. 12" in diags[0].help


def test_metrics_of_an_embedding_loss_are_refused():
    text = DIGITS.replace("cross_entropy(logits, target, smoothing = 0.05)", "triplet(logits, target)")
    text = text.replace("  when  = val.accuracy >= 0.99\n", "")
    assert codes(text) == ["E307"]


def test_lint_checks_the_spec_against_its_data(tmp_path):
    spec = tmp_path / "d.train"
    data = f'"{EXAMPLES / "data" / "digits.csv"}"'
    spec.write_text(DIGITS.replace('"data/digits.csv"', data).replace("batch     = 64", "batch = 4000"))
    r = trainc("lint", str(spec))
    assert r.returncode == 1
    assert "d.train:8:11: error[E505]: batch 4000 is larger than the training split (1438 examples)" in r.stderr
    assert trainc("lint", "--no-data", str(spec)).returncode == 0
    spec.write_text(DIGITS.replace('"data/digits.csv"', data).replace("dense(10)", "dense(9)"))
    r = trainc("lint", str(spec))
    assert "error[E508]: 'logits' has 9 logits but the data has 10 classes" in r.stderr
    spec.write_text(DIGITS.replace('"data/digits.csv"', '"missing.csv"'))
    assert trainc("lint", str(spec)).returncode == 0  # data not there yet: the static checks only


def test_schedule_command_prints_the_curve(tmp_path):
    r = trainc("schedule", "examples/digits.train")
    assert r.returncode == 0, r.stderr
    assert "warmup" in r.stdout and "cosine" in r.stdout
    r = trainc("schedule", "examples/digits.train", "--steps-per-epoch", "10", "--set", "stop.max=2 epochs")
    assert r.returncode == 0, r.stderr
    assert "20 steps = 2 epochs of 10 steps" in r.stdout
    pytest.importorskip("matplotlib")
    png = tmp_path / "lr.png"
    r = trainc("schedule", "examples/digits.train", "--plot", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    r = trainc("schedule", "examples/digits.train", "--set", 'data.source=csv("nope.csv", target = "label")')
    assert r.returncode == 1 and "--steps-per-epoch" in r.stderr


def test_schedule_of_a_kfold_spec_counts_steps_on_one_fold():
    # 569 examples, 5 folds: 455 train a fold, 7 full batches of 64 (the loader did not know the folds: E505)
    r = trainc("schedule", "specs/kfold_logistic.train")
    assert r.returncode == 0, r.stderr
    assert "210 steps = 30 epochs of 7 steps" in r.stdout


# ---- schedules in real runs ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["one_cycle_digits.train", "cosine_restarts_digits.train"])
def test_the_run_follows_the_previewed_curve(tmp_path, name):
    """The lr logged for each epoch (that of its last step) is the preview's value at that step."""
    from trainc.runtime import preview

    r = trainc("run", f"specs/{name}", "-q", "--out", str(tmp_path), "--set", "stop.max=3 epochs",
               "--set", "stop.early=plateau(val.loss, patience = 50)")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    per_epoch = rows[0]["step"]
    text = (ROOT / "specs" / name).read_text()
    spec = analyze(re.sub(r"max\s*=\s*\d+ epochs", "max = 3 epochs", text, count=1), name)
    curve = preview.curve(spec, per_epoch)
    assert [row["lr"] for row in rows] == pytest.approx([curve[row["step"] - 1] for row in rows], rel=1e-9)


def test_plateau_lowers_the_lr_in_a_run(tmp_path):
    r = trainc("run", "specs/plateau_diabetes.train", "--out", str(tmp_path), "--set", "stop.max=40 epochs")
    assert r.returncode == 0, r.stderr
    notes = [line for line in r.stderr.splitlines() if line.startswith("plateau:")]
    assert notes and "lr x0.5 -> 5.00e-03" in notes[0]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    after_warmup = [row["lr"] for row in rows if row["epoch"] > 5]
    assert after_warmup[0] == pytest.approx(1e-2)
    drops = [b / a for a, b in zip(after_warmup, after_warmup[1:]) if b != a]
    assert drops and all(d == pytest.approx(0.5) for d in drops)
    # every reduction announced shows in the next epoch's lr (the last may come after the last epoch)
    announced = [float(n.rsplit("-> ", 1)[1]) for n in notes]
    seen = sorted(set(after_warmup), reverse=True)[1:]
    assert seen == pytest.approx(announced[:len(seen)], rel=1e-2) and len(seen) >= len(announced) - 1


# ---- samplers -----------------------------------------------------------------------------------


def _sampler_spec(sampler: str):
    return analyze(DIGITS.replace("shuffle   = true", f"shuffle   = true\n  sampler   = {sampler}"), "s.train")


def test_oversample_repeats_the_rarer_classes():
    from trainc.runtime.loop import epoch_order, epoch_size

    y = np.array([0] * 10 + [1] * 3 + [2] * 1)
    spec = _sampler_spec("oversample")
    order = epoch_order(spec, y, np.random.default_rng(0))
    assert epoch_size(spec, y) == len(order) == 30
    assert np.bincount(y[order]).tolist() == [10, 10, 10]
    assert set(order[y[order] == 0]) == set(range(10))  # the largest class is seen once each, not resampled


def test_balanced_draws_classes_equally_often():
    from trainc.runtime.loop import epoch_order

    y = np.array([0] * 900 + [1] * 90 + [2] * 10)
    order = epoch_order(_sampler_spec("balanced"), y, np.random.default_rng(0))
    freq = np.bincount(y[order], minlength=3) / len(order)
    assert len(order) == 1000 and np.allclose(freq, 1 / 3, atol=0.05)


def test_sampler_is_for_classification():
    text = (EXAMPLES / "diabetes.train").read_text().replace("batch     = 32", "batch     = 32\n  sampler   = balanced")
    assert codes(text) == ["E307"]


# ---- stop.min: early stopping and `when` wait for it (the key of issue 15's demonstration) ----------------------

@pytest.mark.parametrize("least, epochs", [("", 1), ("min = 3 epochs", 3)])
def test_stop_min_keeps_a_met_threshold_from_ending_the_run(tmp_path, least, epochs):
    """`when = val.loss <= 1e6` is met after the first epoch; with `min = 3 epochs` the run goes on to the
    third, and stops there for the threshold (Lightning's min_epochs)."""
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    text = (EXAMPLES / "diabetes.train").read_text()
    stop = "stop {\n  max   = 150 epochs\n  early = plateau(val.loss, patience = 15, restore_best = true)\n}"
    assert stop in text
    text = text.replace(stop, f"stop {{\n  max = 10 epochs\n  when = val.loss <= 1e6\n  {least}\n}}")
    spec = analyze(text, str(EXAMPLES / "diabetes.train"))
    assert (spec.stop.min.value if spec.stop.min else 0) == (3 if least else 0)
    result = train(spec, load_data(spec.data, EXAMPLES, spec.run.seed), tmp_path / "r", Progress(quiet=True))
    assert result.epochs == epochs and result.stop_reason.startswith("threshold reached"), result.stop_reason


def test_stop_min_past_the_end_is_a_warning():
    text = DIGITS.replace("max   = 30 epochs", "max   = 30 epochs\n  min   = 40 epochs")
    assert "min   = 40 epochs" in text
    assert "W302" in codes(text)
