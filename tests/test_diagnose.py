"""The end-of-run diagnosis on crafted curves: each rule fires on the curve built for it, with the numbers it
cites recomputed here, and stays silent on a healthy curve. The real runs are in test_report.py."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from trainc.runtime import diagnose as D
from trainc.runtime.diagnose import Finding, RunDirError, diagnose, read_metrics, record


def curve(train, val, lr=1e-3, steps=10, **series) -> list[dict]:
    """metrics.jsonl records from lists: one per epoch; `lr` a number or a list; more series by name."""
    rows = []
    for i, (t, v) in enumerate(zip(train, val)):
        row = {"epoch": i + 1, "step": steps * (i + 1), "lr": lr[i] if isinstance(lr, list) else lr,
               "train.loss": t, "val.loss": v}
        row.update({k.replace("_", ".", 1) if k.startswith(("train_", "val_")) else k: s[i]
                    for k, s in series.items()})
        rows.append(row)
    return rows


def decay(n, start=2.0, end=0.3, rate=0.3) -> list[float]:
    """A healthy loss: an exponential approach from `start` to `end`."""
    return [end + (start - end) * math.exp(-rate * i) for i in range(n)]


def kinds(findings: list[Finding]) -> list[str]:
    return [f.kind for f in findings]


HEALTHY = curve(decay(30), decay(30, 1.8, 0.35), lr=[3e-3 * (1 + math.cos(math.pi * i / 30)) / 2 for i in range(30)])


def test_a_healthy_run_has_no_findings():
    assert diagnose(HEALTHY, {"stop_reason": "reached stop.max (30 epochs)"}) == []
    assert diagnose(HEALTHY[:3], None) == []  # too short to judge anything
    assert diagnose([], None) == []


# overfitting


def u_shape(n=30, best=6, rise=0.3):
    """val.loss falls to its minimum at epoch `best`, then climbs linearly by `rise` (relative) to the end."""
    val = decay(best, 1.5, 0.5, 0.8) + [0.0] * (n - best)
    low = val[best - 1]
    for i in range(best, n):
        val[i] = low * (1 + rise * (i - best + 1) / (n - best))
    return decay(n, 1.5, 0.001, 0.4), val


def test_overfitting_names_the_epoch_it_began_and_cites_the_rise_and_gap():
    train, val = u_shape()
    (f,) = diagnose(curve(train, val), {"stop_reason": "reached stop.max (30 epochs)", "restored_best": False})
    assert f.kind == "overfitting" and f.severity == "warning"
    assert f.epoch == 7  # the minimum is at epoch 6: it began after
    end = sum(val[-3:]) / 3
    assert f.values["val_loss_min"] == pytest.approx(val[5])
    assert f.values["rise"] == pytest.approx(end / val[5] - 1)
    assert f.values["gap_at_min"] == pytest.approx(val[5] - train[5])
    assert f.values["gap_end"] == pytest.approx(val[-1] - train[-1])
    assert f"lowest at epoch 6 ({val[5]:.4g})" in f.message
    assert f"rose {(end / val[5] - 1) * 100:.0f}%" in f.message and f"{train[-1]:.4g}" in f.message


def test_overfitting_is_info_when_the_best_epoch_was_restored():
    train, val = u_shape()
    (f,) = diagnose(curve(train, val), {"restored_best": True})
    assert (f.kind, f.severity) == ("overfitting", "info")
    assert "restore_best" in f.message


@pytest.mark.parametrize("rise, train_falls, fires", [
    (0.30, True, True),
    (0.06, True, False),   # a rise within noise
    (0.30, False, False),  # both rising: not overfitting
])
def test_overfitting_needs_a_clear_rise_while_train_loss_falls(rise, train_falls, fires):
    train, val = u_shape(rise=rise)
    if not train_falls:
        train = [t if i < 6 else train[5] * (1 + 0.5 * (i - 5) / 24) for i, t in enumerate(train)]
    assert ("overfitting" in kinds(diagnose(curve(train, val), None))) is fires


# underfitting


def test_underfitting_classification_cites_accuracy_and_baseline():
    n = 20
    train = decay(n, 2.3, 1.8, 0.6)
    rows = curve(train, [t + 0.02 for t in train], train_accuracy=[0.3] * n)
    (f,) = diagnose(rows, {"baseline": {"val.accuracy": 0.1}})
    assert f.kind == "underfitting"
    assert f.values["train.accuracy"] == 0.3 and f.values["baseline"] == 0.1
    assert f.values["loss_before"] == pytest.approx(sum(train[-6:-3]) / 3)
    assert "train.accuracy is 0.3 after 20 epochs" in f.message and "0.1" in f.message
    # a model that fits its training data is not underfitting, even with a flat loss
    assert diagnose(curve(train, train, train_accuracy=[0.97] * n), {"baseline": {"val.accuracy": 0.1}}) == []


def test_underfitting_at_chance_points_at_the_lr():
    n = 12
    rows = curve([40.0] + [2.303] * (n - 1), [2.31] * n, train_accuracy=[0.1] * n)
    (f,) = [f for f in diagnose(rows, {"baseline": {"val.accuracy": 0.1}}) if f.kind == "underfitting"]
    assert "check the lr first" in f.message and "train.loss was 40" in f.message


def test_underfitting_regression_against_the_baseline_error():
    n = 15
    train = decay(n, 1.0, 0.93, 0.5)
    rows = curve(train, train, train_rmse=[68.0] * n)
    (f,) = diagnose(rows, {"baseline": {"val.rmse": 70.0}})
    assert f.kind == "underfitting" and f.values["train.rmse"] == 68.0
    assert "97% of the baseline's 70" in f.message
    assert diagnose(curve(train, train, train_rmse=[50.0] * n), {"baseline": {"val.rmse": 70.0}}) == []


def test_underfitting_without_a_baseline_compares_with_the_first_epoch():
    n = 15
    train = decay(n, 1.0, 0.9, 0.5)
    (f,) = diagnose(curve(train, train), None)
    assert f.kind == "underfitting" and f.values["first_train_loss"] == 1.0
    assert f"{train[-1] * 100:.0f}% of the first epoch's 1" in f.message


# divergence


def test_divergence_from_a_loss_that_is_not_finite():
    train = decay(6) + [None]
    rows = curve(train, decay(7))
    rows[-1]["diverged"] = "the loss is not finite"
    stop = "diverged: the loss is not finite; lower the learning rate or clip gradients"
    (f,) = diagnose(rows, {"stop_reason": stop})
    assert (f.kind, f.epoch, f.step) == ("divergence", 7, 70)
    assert f.values["best_train_loss"] == pytest.approx(min(train[:6]))
    assert "the run stopped there" in f.message


def test_divergence_from_an_exploding_loss_without_the_guard():
    train = decay(8)
    train[5] = 12 * min(train[:5])
    (f, *_) = diagnose(curve(train, decay(8)), None)
    assert (f.kind, f.epoch) == ("divergence", 6)
    assert "more than 10x its best so far" in f.message and f"{train[5]:.4g}" in f.message


def test_divergence_from_the_stop_reason_alone():
    (f,) = diagnose([], {"stop_reason": "diverged: train.loss 55 is more than 5x its best (1.1)"})
    assert f.kind == "divergence" and "5x its best" in f.message


def test_rolled_back_epochs_are_left_out_of_the_other_rules():
    rows = curve(decay(10), decay(10, 1.8, 0.35))
    bad = dict(rows[4], **{"train.loss": None, "val.loss": None, "diverged": "the loss is not finite"})
    rows = rows[:4] + [bad] + rows[4:]  # epoch 5 diverged, was rolled back and repeated
    (f,) = diagnose(rows, {"stop_reason": "reached stop.max (10 epochs)"})
    assert (f.kind, f.epoch) == ("divergence", 5)
    assert "the run went on after rolling back" in f.message


# gradients


def test_exploding_gradients_from_grad_norm():
    n = 10
    grads = [2.0, 1.5, 1.2, 1.1, 1.0, 30.0, 1.0, 1.0, 1.0, 1.0]
    (f,) = diagnose(curve(decay(n), decay(n, 1.8, 0.35), grad_norm=grads, grad_norm_max=[g * 3 for g in grads]))
    assert (f.kind, f.epoch) == ("exploding_gradients", 6)
    assert f.values["median_before"] == pytest.approx(1.2) and f.values["grad_norm"] == 30.0
    assert "largest step 90" in f.message
    assert diagnose(curve(decay(n), decay(n, 1.8, 0.35), grad_norm=[2.0 / (i + 1) for i in range(n)])) == []


def test_vanishing_gradients_while_the_loss_is_stuck():
    n = 10
    train = [2.3 - 0.001 * i for i in range(n)]
    grads = [1.0] * 4 + [1e-2, 1e-3] + [1e-4] * 4  # below 1e-3 x its largest, above the absolute floor
    found = diagnose(curve(train, train, grad_norm=grads))
    (f,) = [f for f in found if f.kind == "vanishing_gradients"]
    assert f.values["grad_norm"] == grads[-1] and f.values["grad_norm_largest"] == 1.0
    # the same collapse of the gradient after the loss has converged is just convergence
    assert "vanishing_gradients" not in kinds(diagnose(curve(decay(n, 2.3, 0.01, 1.0), decay(n), grad_norm=grads)))


# plateau


def plateau_run(lr):
    val = decay(8, 1.5, 0.5, 0.8) + [0.5 + 0.0004 * (i % 2) for i in range(22)]
    return curve(decay(30, 1.5, 0.4, 0.3), val, lr=lr)


def test_a_plateau_at_a_constant_lr_suggests_a_schedule():
    (f,) = diagnose(plateau_run(3e-3), {"stop_reason": "reached stop.max (30 epochs)"})
    assert f.kind == "plateau" and f.severity == "info"
    best_epoch = f.epoch
    assert f.values["epochs"] == 30 - best_epoch and f.values["epochs"] >= 10
    assert "at a constant lr of 0.003" in f.message and "cosine" in f.message


def test_no_plateau_when_the_lr_moves_or_early_stopping_ended_it():
    cosine = [3e-3 * (1 + math.cos(math.pi * i / 30)) / 2 + 1e-5 for i in range(30)]
    assert diagnose(plateau_run(cosine), None) == []
    assert diagnose(plateau_run(3e-3), {"stop_reason": "early stopping: val.loss did not improve for 22 epochs"}) == []


# lr too high


def test_lr_too_high_from_a_val_loss_spike():
    val = decay(12, 1.8, 0.35)
    val[5] = 6 * val[4]
    (f,) = diagnose(curve(decay(12), val, lr=0.3))
    assert (f.kind, f.epoch) == ("lr_too_high", 6)
    assert f.values["before"] == pytest.approx(val[4]) and f.values["after"] == pytest.approx(val[5])
    assert "lr 0.3" in f.message


def test_lr_too_high_from_an_early_rise():
    train = [2.0, 2.2, 2.4, 2.3, 2.0, 1.8, 1.7, 1.6]
    (f,) = [f for f in diagnose(curve(train, [t - 0.1 for t in train])) if f.kind == "lr_too_high"]
    assert f.epoch == 2 and f.values == {"first": 2.0, "later": 2.2, "lr": 1e-3}


def test_lr_too_high_from_a_rebound():
    train = [2.0, 1.6, 1.4, 1.35, 1.3, 1.3, 1.4, 1.55, 1.7, 1.75, 1.8, 1.8]
    (f,) = [f for f in diagnose(curve(train, train)) if f.kind == "lr_too_high"]
    low = min(sum(train[i - 2:i + 1]) / 3 for i in range(2, 8))
    assert f.values["lowest"] == pytest.approx(low)
    assert f.values["mean"] > 1.15 * low


def test_noise_in_a_converged_loss_is_not_a_spike():
    train = decay(20, 1.5, 0.001, 0.6)
    train[15] = 2 * train[14]  # doubles, but by far less than 5% of the first epoch's loss
    assert diagnose(curve(train, decay(20, 1.0, 0.3, 0.6))) == []


# lr too low


def test_lr_too_low_from_a_slow_steady_decrease():
    val = [3.15 - 0.035 * i for i in range(30)]
    (f,) = diagnose(curve([v + 0.1 for v in val], val), {"stop_reason": "reached stop.max (30 epochs)"})
    assert f.kind == "lr_too_low"
    assert f.values["first_drop"] == pytest.approx(0.35) and f.values["last_drop"] == pytest.approx(0.35)
    assert f.values["falls"] == 10
    assert diagnose(curve([v + 0.1 for v in val], val), {"stop_reason": "threshold reached: ..."}) == []


# records and summary.json


def test_record_writes_the_findings_into_summary_json(tmp_path):
    train, val = u_shape()
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in curve(train, val)))
    (tmp_path / "summary.json").write_text(json.dumps({"spec": "x.train", "stop_reason": "reached stop.max"}))
    findings = record(tmp_path)
    stored = json.loads((tmp_path / "summary.json").read_text())
    assert stored["spec"] == "x.train"
    assert [d["kind"] for d in stored["diagnosis"]] == kinds(findings) == ["overfitting"]
    assert stored["diagnosis"][0]["epoch"] == 7 and stored["diagnosis"][0]["values"]["best_epoch"] == 6
    assert findings[0].line().startswith("overfitting at epoch 7: val.loss was lowest at epoch 6")


def test_a_corrupt_metrics_file_names_its_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2,\n')
    with pytest.raises(RunDirError, match=r"metrics.jsonl:2: not a JSON record"):
        read_metrics(tmp_path / "metrics.jsonl")


def test_thresholds_are_documented_with_their_values():
    reference = (Path(__file__).parents[1] / "specs" / "README.md").read_text()
    section = reference.split("## Diagnosis", 1)[1].split("\n## ", 1)[0]
    pct = {"OVERFIT_RISE", "FLAT_GAIN", "PLATEAU_DELTA", "NOISE", "REBOUND"}
    for name in ("OVERFIT_RISE", "TAIL", "FLAT_WINDOW", "FLAT_GAIN", "UNDERFIT_ACC", "UNDERFIT_LOSS", "CHANCE",
                 "EXPLODE", "GRAD_EXPLODE", "PLATEAU_DELTA", "PLATEAU_EPOCHS", "PLATEAU_SHARE", "CONSTANT_LR", "SPIKE",
                 "NOISE", "EARLY", "REBOUND", "SLOW_MIN_EPOCHS", "SLOW_STEADY", "SLOW_RATIO"):
        value = getattr(D, name)
        shown = f"{value * 100:g}%" if name in pct else f"{value:g}"
        assert f"{name} = {shown}`" in section, name
    for kind in ("overfitting", "underfitting", "divergence", "exploding_gradients", "vanishing_gradients",
                 "plateau", "lr_too_high", "lr_too_low"):
        assert f"`{kind}`" in section, kind


# every rule against a table of curves it must and must not fire on

MAX = {"stop_reason": "reached stop.max (20 epochs)"}
SLOW_VAL = [2.30 - 0.004 * i for i in range(20)]  # sgd(lr = 1e-4): val.loss falls every epoch, slowly
SLOW_TRAIN = [v + 0.02 + (0.006 if i == 1 else 0.0) for i, v in enumerate(SLOW_VAL)]  # its batches jitter
SPIKE_VAL = decay(12, 1.8, 0.35)
SPIKE_VAL[5] = 6 * SPIKE_VAL[4]
GRADS_FIRST_NAN = [math.nan] + [1.0] * 9  # the first epoch explodes: nothing before it to compare with
CURVES = {  # name -> (records, summary)
    "healthy": (HEALTHY, MAX),
    "overfit": (curve(*u_shape()), MAX),
    "stuck": (curve(decay(15, 1.0, 0.9, 0.5), decay(15, 1.0, 0.9, 0.5)), MAX),
    "slow": (curve(SLOW_TRAIN, SLOW_VAL, lr=1e-4), MAX),
    "val spike": (curve(decay(12), SPIKE_VAL, lr=0.3), None),
    "early rise": (curve([2.0, 2.2, 2.4, 2.3, 2.0, 1.8, 1.7, 1.6], [1.9, 2.1, 2.3, 2.2, 1.9, 1.7, 1.6, 1.5]), None),
    "plateau": (plateau_run(3e-3), MAX),
    "not finite": (curve([2.0, 1.5, math.nan, 1.0], [2.0, 1.5, 1.2, 1.0]), None),
    "first epoch explodes": (curve(decay(10), decay(10, 1.8, 0.35), grad_norm=GRADS_FIRST_NAN), MAX),
}
FIRES = {  # rule -> the curves it must fire on; on every other curve of CURVES it must not
    "overfitting": {"overfit"},
    "underfitting": {"stuck"},
    "lr_too_low": {"slow"},
    "lr_too_high": {"val spike", "early rise"},
    "plateau": {"plateau"},
    "divergence": {"not finite"},
    "exploding_gradients": {"first epoch explodes"},
}


@pytest.mark.parametrize("rule, name", [(r, n) for r in FIRES for n in CURVES])
def test_each_rule_fires_on_its_curves_and_on_no_other(rule, name):
    records, summary = CURVES[name]
    assert (rule in kinds(diagnose(records, summary))) == (name in FIRES[rule])


def test_a_first_epoch_that_explodes_cites_no_median():
    (f,) = [f for f in diagnose(*CURVES["first epoch explodes"]) if f.kind == "exploding_gradients"]
    assert f.epoch == 1 and "median" not in f.message and "in epoch 1, the first epoch" in f.message
    assert f.values["median_before"] is None
