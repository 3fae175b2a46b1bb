"""The runtime and the parts of the lowering no other test drives, each against an independent
reference (numpy or a hand computation from the formulas in specs/README.md):

- learning-rate schedules (`runtime/schedule.py`), values at chosen steps computed by hand;
- losses, metrics and initialisers of `compiler/lower.py` on small tensors;
- batch normalisation's running statistics through the jitted step, and evaluation with them;
- real training runs through `runtime.loop.train` (in process): a binary task with `bce`, a
  multi-axis input through `flatten`, every stopping rule, checkpoints, and the checks that only
  the data can make. Validation metrics of a run are recomputed in numpy from the weights it saved.

Training runs share one model shape where they can, so tinygrad compiles each kernel once.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from trainc.compiler import analyze, lint
from trainc.compiler.diagnostics import SpecError
from trainc.runtime.schedule import LrSchedule

from helpers import SCHEDULE_SPEC

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]
DIGITS_CSV = ROOT / "examples" / "data" / "digits.csv"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def digits() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The digits as (x float64 [n, 64], labels int [n], header)."""
    header = DIGITS_CSV.read_text().splitlines()[0].split(",")
    raw = np.loadtxt(DIGITS_CSV, delimiter=",", skiprows=1)
    return raw[:, :64], raw[:, 64].astype(np.int64), header


def run_spec(tmp_path: Path, text: str, name: str = "t"):
    """Check, load and train a spec written into tmp_path; returns (spec, dataset, result)."""
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    path = tmp_path / f"{name}.train"
    path.write_text(text)
    spec = analyze(text, str(path))
    ds = load_data(spec.data, tmp_path, spec.run.seed)
    result = train(spec, ds, tmp_path / f"{name}-run", Progress(quiet=True))
    return spec, ds, result


def load_weights(path: Path) -> dict[str, np.ndarray]:
    from tinygrad.nn.state import safe_load

    return {k: v.numpy().astype(np.float64) for k, v in safe_load(str(path)).items()}


def mlp(w: dict[str, np.ndarray], x: np.ndarray, prefix: str = "logits", layers: int = 2) -> np.ndarray:
    """dense -> relu -> ... -> dense, in float64, from saved weights."""
    h = x.reshape(len(x), -1).astype(np.float64)
    for i in range(layers):
        h = h @ w[f"{prefix}.dense{i}.W"] + w[f"{prefix}.dense{i}.b"]
        if i < layers - 1:
            h = np.maximum(h, 0.0)
    return h


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_cross_entropy(z: np.ndarray, y: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Per-example softmax cross-entropy with label smoothing, float64."""
    k = z.shape[-1]
    target = np.full(z.shape, smoothing / k)
    target[np.arange(len(y)), y] += 1.0 - smoothing
    return -(target * np_log_softmax(z.astype(np.float64))).sum(-1)


def np_bce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-example binary cross-entropy on logits: -y log s(z) - (1-y) log(1 - s(z)), stably."""
    z = z.astype(np.float64)
    return np.logaddexp(0.0, z) - y * z  # log(1 + e^z) - y z


# A spec over the digits; every training run on them shares the model's shapes and the split.
DIGITS_SPEC = """
data {{
  source = csv("{csv}", target = "label")
  split  = {{ train = 0.6, val = 0.4, stratify = true }}
  batch  = 64
}}
model {{
  input x: f32[64]
  logits = x -> dense(32) -> relu -> dense(10)
}}
loss      = cross_entropy(logits, target)
optimizer = {optimizer}
{extra}
stop {{ {stop} }}
metrics   = [accuracy]
"""


def digits_spec(stop: str, optimizer: str = "adam(lr = 1e-2)", extra: str = "") -> str:
    return DIGITS_SPEC.format(csv=DIGITS_CSV.as_posix(), optimizer=optimizer, extra=extra, stop=stop)


def check_val_metrics(row: dict, weights: dict[str, np.ndarray], ds, rel: float = 1e-4) -> None:
    """val.loss and val.accuracy of a metrics row, recomputed in numpy from saved weights."""
    z = mlp(weights, ds.x_val)
    assert row["val.loss"] == pytest.approx(np_cross_entropy(z, ds.y_val).mean(), rel=rel)
    assert row["val.accuracy"] == pytest.approx((z.argmax(-1) == ds.y_val).mean(), abs=1.5 / len(ds.y_val))


# ---------------------------------------------------------------------------------------------
# 1. Learning-rate schedules, by hand from the formulas in specs/README.md
# ---------------------------------------------------------------------------------------------



def schedule(text: str, steps_per_epoch: int, total_steps: int, lr: float = 0.1) -> LrSchedule:
    spec = analyze(SCHEDULE_SPEC.format(lr=lr, schedule=text, max="10 epochs"), "sched.train")
    base = float(dict(spec.optimizer.args)["lr"])
    assert base == lr
    return LrSchedule(spec.schedule, base, steps_per_epoch, total_steps)


@pytest.mark.parametrize("text", ["", "schedule = constant()"])
def test_schedule_constant(text):
    lr = schedule(text, steps_per_epoch=10, total_steps=100, lr=0.03)
    for s in (0, 1, 50, 99, 100, 1000):
        assert lr(s) == pytest.approx(0.03, rel=1e-12)


def test_schedule_warmup_then_cosine():
    base, to, n, total = 0.1, 1e-5, 10, 100
    lr = schedule("schedule = warmup(10 steps) then cosine(to = 1e-5)", steps_per_epoch=10, total_steps=total)
    # warmup: base * (s + 1) / n
    assert lr(0) == pytest.approx(base / n, rel=1e-12)
    assert lr(4) == pytest.approx(base * 5 / n, rel=1e-12)
    assert lr(n - 1) == pytest.approx(base, rel=1e-12)
    # cosine over the remaining 90 steps: to + (base - to)(1 + cos(pi s / 90)) / 2
    m = total - n
    assert lr(n) == pytest.approx(base, rel=1e-12)  # s = 0
    assert lr(n + 1) == pytest.approx(to + (base - to) * (1 + math.cos(math.pi / m)) / 2, rel=1e-12)
    assert lr(n + m // 2) == pytest.approx(to + (base - to) / 2, rel=1e-12)  # halfway
    last = to + (base - to) * (1 + math.cos(math.pi * (m - 1) / m)) / 2
    assert lr(total - 1) == pytest.approx(last, rel=1e-12)
    assert lr(total - 1) == pytest.approx(4.0458e-5, rel=1e-3)  # the same, as a number
    # past the end the lr of the last step is held
    for s in (total, total + 1, total + 7, 10 * total):
        assert lr(s) == lr(total - 1)
    # monotone: non-decreasing in the warmup, non-increasing after
    vals = [lr(s) for s in range(total)]
    assert all(a < b for a, b in itertools.pairwise(vals[:n]))
    assert all(a >= b for a, b in itertools.pairwise(vals[n:]))


def test_schedule_warmup_start():
    lr = schedule("schedule = warmup(5 steps, start = 0.1) then constant()", steps_per_epoch=10, total_steps=50)
    # lr * (start + (1 - start)(s + 1)/n)
    assert [lr(s) for s in range(6)] == pytest.approx([0.1 * (0.1 + 0.9 * (s + 1) / 5) for s in range(5)] + [0.1])
    assert lr(0) == pytest.approx(0.028)


def test_schedule_step_every_two_epochs():
    spe = 7  # 2 epochs = 14 steps
    lr = schedule("schedule = step(every = 2 epochs, gamma = 0.5)", steps_per_epoch=spe, total_steps=10 * spe)
    expected = {0: 0.1, 13: 0.1, 14: 0.05, 27: 0.05, 28: 0.025, 41: 0.025, 42: 0.0125, 56: 0.00625, 69: 0.00625,
                70: 0.00625, 200: 0.00625}  # past the end (70 steps): the last step's lr
    for s, v in expected.items():
        assert lr(s) == pytest.approx(v, rel=1e-12), s
    # the same spec with another epoch length changes every step boundary
    lr = schedule("schedule = step(every = 2 epochs, gamma = 0.5)", steps_per_epoch=10, total_steps=100)
    assert (lr(19), lr(20), lr(39), lr(40)) == pytest.approx((0.1, 0.05, 0.05, 0.025), rel=1e-12)


def test_schedule_step_every_in_steps_after_warmup():
    # the step phase counts its own steps: from the end of the warmup
    lr = schedule("schedule = warmup(4 steps) then step(every = 3 steps, gamma = 0.1)", steps_per_epoch=10,
                  total_steps=40)
    assert [lr(s) for s in range(4)] == pytest.approx([0.025, 0.05, 0.075, 0.1], rel=1e-12)
    assert [lr(s) for s in range(4, 11)] == pytest.approx([0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001], rel=1e-9)


def test_schedule_lengths_in_epochs():
    lr = schedule("schedule = warmup(2 epochs) then cosine()", steps_per_epoch=7, total_steps=70)
    assert lr(0) == pytest.approx(0.1 / 14, rel=1e-12)  # warmup is 14 steps long
    assert lr(13) == pytest.approx(0.1, rel=1e-12)
    assert lr(14 + 28) == pytest.approx(0.05, rel=1e-12)  # halfway through the 56-step cosine
    assert lr(69) == pytest.approx(0.1 * (1 + math.cos(math.pi * 55 / 56)) / 2, rel=1e-12)


def test_schedule_lengths_in_percent():
    total = 200  # 10% = 20 steps of warmup, 20% = 40 of constant, the rest (140) cosine
    lr = schedule("schedule = warmup(10%) then constant(20%) then cosine(to = 0.001)", steps_per_epoch=20,
                  total_steps=total)
    assert lr(0) == pytest.approx(0.1 / 20, rel=1e-12)
    assert lr(19) == pytest.approx(0.1, rel=1e-12)
    assert lr(20) == pytest.approx(0.1, rel=1e-12)
    assert lr(59) == pytest.approx(0.1, rel=1e-12)
    assert lr(60) == pytest.approx(0.1, rel=1e-12)  # cosine at s = 0
    assert lr(60 + 70) == pytest.approx(0.001 + 0.099 / 2, rel=1e-12)
    assert lr(199) == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi * 139 / 140)) / 2, rel=1e-12)
    # a fraction of a run that is not a whole number of steps rounds: 10% of 37 steps is 4 steps
    lr = schedule("schedule = warmup(10%) then constant()", steps_per_epoch=37, total_steps=37)
    assert [lr(s) for s in range(5)] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1], rel=1e-12)


def test_schedule_last_phase_with_a_length_holds_past_its_end():
    # the cosine phase ends after 20 steps, 30 steps before the run does: its end value is held
    lr = schedule("schedule = warmup(10 steps) then cosine(to = 0.002, length = 20 steps)", steps_per_epoch=10,
                  total_steps=60)
    assert lr(20) == pytest.approx(0.051, rel=1e-12)  # s = 10 of 20: halfway
    last = 0.002 + 0.098 * (1 + math.cos(math.pi * 19 / 20)) / 2  # s = 19 of 20
    assert lr(29) == pytest.approx(last, rel=1e-12)
    assert [lr(s) for s in range(30, 60)] == pytest.approx([last] * 30, rel=1e-12)


def test_schedule_step_phase_holds_its_final_value():
    # step(every = 10 steps, gamma = 0.5, length = 30 steps): 0.1 for s 0-9, 0.05 for 10-19, 0.025 for 20-29;
    # after its end the lr stays at its last step's value, 0.025 (not one more decay, 0.0125)
    lr = schedule("schedule = step(every = 10 steps, gamma = 0.5, length = 30 steps)", steps_per_epoch=10,
                  total_steps=60)
    assert (lr(0), lr(10), lr(29)) == pytest.approx((0.1, 0.05, 0.025), rel=1e-12)
    assert [lr(s) for s in range(30, 60)] == pytest.approx([0.025] * 30, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# 2. Losses: per-example values against numpy
# ---------------------------------------------------------------------------------------------


def _loss(kind: str, pred: np.ndarray, y: np.ndarray, **args) -> np.ndarray:
    from tinygrad import Tensor, dtypes
    from trainc.compiler.lower import LOSS_IMPL

    yt = Tensor(y, dtype=dtypes.int32) if y.dtype.kind == "i" else Tensor(y.astype(np.float32))
    out = LOSS_IMPL[kind](Tensor(pred.astype(np.float32)), yt, **args).numpy()
    assert out.shape == (len(pred),)  # one value per example
    return out


REG_PRED = np.array([[0.5, -1.0], [2.0, 0.0], [-3.0, 4.0], [0.1, 0.2]])
REG_Y = np.array([[0.0, 0.0], [1.0, 1.5], [1.0, -1.0], [0.1, 1.4]])


def test_loss_mse_and_mae():
    e = REG_PRED - REG_Y
    np.testing.assert_allclose(_loss("mse", REG_PRED, REG_Y), (e ** 2).mean(1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_loss("mae", REG_PRED, REG_Y), np.abs(e).mean(1), rtol=1e-6, atol=1e-6)
    # by hand, the first example: ((0.5)^2 + 1^2) / 2 and (0.5 + 1) / 2
    assert _loss("mse", REG_PRED, REG_Y)[0] == pytest.approx(0.625, rel=1e-6)
    assert _loss("mae", REG_PRED, REG_Y)[0] == pytest.approx(0.75, rel=1e-6)


@pytest.mark.parametrize("delta", [1.0, 0.5, 3.0])
def test_loss_huber_both_branches(delta):
    e = REG_PRED - REG_Y  # |e| from 0 to 5: some below delta, some above, for every delta
    a = np.abs(e)
    assert (a <= delta).any() and (a > delta).any()
    want = np.where(a <= delta, 0.5 * e ** 2, delta * (a - delta / 2)).mean(1)
    args = {} if delta == 1.0 else {"delta": delta}
    np.testing.assert_allclose(_loss("huber", REG_PRED, REG_Y, **args), want, rtol=1e-6, atol=1e-6)


def test_loss_huber_by_hand():
    got = _loss("huber", np.array([[0.5], [3.0], [-2.0]]), np.array([[0.0], [0.0], [0.0]]), delta=1.0)
    np.testing.assert_allclose(got, [0.125, 2.5, 1.5], rtol=1e-6)


def test_loss_bce_on_logits_including_large_values():
    z = np.array([[-1e4], [-100.0], [-20.0], [-1.0], [0.0], [0.5], [30.0], [100.0], [1e4], [-3.0], [7.0]])
    y = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1], dtype=np.int32)
    got = _loss("bce", z, y)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_bce(z[:, 0], y), rtol=1e-6, atol=1e-6)
    # by hand: a wrong confident logit costs |z|, a right one nothing, z = 0 costs log 2
    assert got[0] == pytest.approx(1e4, rel=1e-6) and got[8] == pytest.approx(1e4, rel=1e-6)
    assert abs(got[1]) < 1e-6 and abs(got[7]) < 1e-6
    assert got[4] == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_loss_cross_entropy(smoothing):
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, (7, 5))
    z[0] = [50.0, -50.0, 0.0, 10.0, 49.0]  # large logits: log_softmax must stay stable
    y = rng.integers(0, 5, 7).astype(np.int32)
    got = _loss("cross_entropy", z, y, **({"smoothing": smoothing} if smoothing else {}))
    np.testing.assert_allclose(got, np_cross_entropy(z, y, smoothing), rtol=1e-6, atol=1e-6)
    # uniform logits: the loss is log K whatever the smoothing
    flat = _loss("cross_entropy", np.zeros((2, 4)), np.array([0, 3], dtype=np.int32), smoothing=smoothing)
    np.testing.assert_allclose(flat, [math.log(4)] * 2, rtol=1e-6)


def test_loss_cross_entropy_smoothing_by_hand():
    # logits (0, ln 3): p = (1/4, 3/4); target 1, s = 0.2, K = 2 -> t = (0.1, 0.9)
    got = _loss("cross_entropy", np.array([[0.0, math.log(3)]]), np.array([1], dtype=np.int32), smoothing=0.2)
    assert got[0] == pytest.approx(-(0.1 * math.log(0.25) + 0.9 * math.log(0.75)), rel=1e-6)


def test_losses_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    z = rng.normal(0, 2, (6, 4))
    y = rng.integers(0, 4, 6).astype(np.int32)
    want = F.cross_entropy(torch.tensor(z), torch.tensor(y.astype(np.int64)), label_smoothing=0.1,
                           reduction="none").numpy()
    np.testing.assert_allclose(_loss("cross_entropy", z, y, smoothing=0.1), want, rtol=1e-5, atol=1e-6)
    b = rng.normal(0, 20, (6, 1))
    yb = rng.integers(0, 2, 6).astype(np.int32)
    want = F.binary_cross_entropy_with_logits(torch.tensor(b[:, 0]), torch.tensor(yb.astype(np.float64)),
                                              reduction="none").numpy()
    np.testing.assert_allclose(_loss("bce", b, yb), want, rtol=1e-5, atol=1e-6)
    want = F.huber_loss(torch.tensor(REG_PRED), torch.tensor(REG_Y), delta=0.5, reduction="none").mean(1).numpy()
    np.testing.assert_allclose(_loss("huber", REG_PRED, REG_Y, delta=0.5), want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 3. Metrics
# ---------------------------------------------------------------------------------------------


def _metric(kind: str, pred: np.ndarray, y: np.ndarray) -> float:
    from tinygrad import Tensor, dtypes
    from trainc.compiler.lower import METRIC_IMPL, MetricCtx

    yt = Tensor(y, dtype=dtypes.int32) if y.dtype.kind == "i" else Tensor(y.astype(np.float32))
    impl = METRIC_IMPL[kind]
    ctx = MetricCtx(n_classes=int(y.max()) + 1 if y.dtype.kind == "i" else None, n_outputs=pred.shape[1])
    state = impl.update(Tensor(pred.astype(np.float32)), yt, Tensor.ones(len(pred)), ctx, {}).numpy()
    assert state.shape == (impl.size(ctx, {}),)
    return impl.finish(state, float(len(pred)), ctx, {})


def test_metric_accuracy_many_logits():
    z = np.array([[0.1, 0.9, 0.0], [2.0, -1.0, 1.0], [0.0, 0.1, 0.2], [5.0, 6.0, -7.0], [1.0, 0.0, 0.5]])
    y = np.array([1, 0, 0, 1, 2], dtype=np.int32)
    assert _metric("accuracy", z, y) == pytest.approx(3 / 5)
    assert _metric("accuracy", z, z.argmax(-1).astype(np.int32)) == pytest.approx(1.0)


def test_metric_accuracy_one_logit():
    # one logit: class 1 when logit > 0 (so a logit of exactly 0 is class 0)
    z = np.array([[3.0], [-0.5], [0.0], [1e-3], [-8.0], [0.7]])
    y = np.array([1, 0, 1, 0, 1, 1], dtype=np.int32)
    want = ((z[:, 0] > 0).astype(int) == y).mean()
    assert want == pytest.approx(3 / 6)
    assert _metric("accuracy", z, y) == pytest.approx(want)


def test_metric_rmse_and_mae():
    e = REG_PRED - REG_Y
    assert _metric("rmse", REG_PRED, REG_Y) == pytest.approx(math.sqrt((e ** 2).mean()), rel=1e-6)
    assert _metric("mae", REG_PRED, REG_Y) == pytest.approx(np.abs(e).mean(), rel=1e-6)


REG_SPEC = """
data {
  source = csv("unused.csv", target = ["a", "b"])
  split  = { train = 0.8, val = 0.2 }
  batch  = 8
}
model {
  input x: f32[3]
  pred = x -> dense(2)
}
loss      = mse(pred, target) + 0.5 * mae(pred, target)
optimizer = sgd(lr = 0.1)
stop { max = 1 epochs }
metrics = [rmse, mae]
"""


def test_eval_step_regression_metrics_in_target_units():
    """The jitted evaluation: loss on standardised targets, rmse/mae back in the data's units."""
    from tinygrad import Tensor
    from trainc.compiler.lower import finish_eval, lower

    rng = np.random.default_rng(11)
    x_tr, y_tr = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    x_va, y_va = rng.normal(size=(10, 3)), rng.normal(size=(10, 2))
    shift, scale = np.array([100.0, -3.0]), np.array([15.0, 0.5])
    spec = analyze(REG_SPEC, "reg.train")
    prog = lower(spec, x_tr.astype(np.float32), y_tr.astype(np.float32), x_va.astype(np.float32),
                 y_va.astype(np.float32), shift.astype(np.float32), scale.astype(np.float32))
    assert [s.kind for s in prog.val_slots] == ["rmse", "mae"] and prog.eval_batch == 10
    w = {k: t.numpy().astype(np.float64) for k, t in prog.named_params().items()}
    # half the rows masked out: they must not count
    mask = np.array([1, 1, 0, 1, 1, 0, 1, 1, 1, 0], dtype=np.float32)
    prog.eval_step(Tensor(np.arange(10, dtype=np.int32)), Tensor(mask))
    got = finish_eval(prog, prog.eval_acc.numpy())

    keep = mask.astype(bool)
    p = x_va[keep] @ w["pred.dense0.W"] + w["pred.dense0.b"]
    e = p - y_va[keep]
    assert got["loss"] == pytest.approx(((e ** 2).mean(1) + 0.5 * np.abs(e).mean(1)).mean(), rel=1e-5)
    e_units = e * scale
    assert got["rmse"] == pytest.approx(math.sqrt((e_units ** 2).mean()), rel=1e-5)
    assert got["mae"] == pytest.approx(np.abs(e_units).mean(), rel=1e-5)


# ---------------------------------------------------------------------------------------------
# 4. Initialisers
# ---------------------------------------------------------------------------------------------

INIT_SPEC = """
data {{
  source = csv("unused.csv", target = "y")
  split  = {{ train = 0.8, val = 0.2 }}
}}
model {{
  input x: f32[64]
  he     = x -> dense(256, init = he)
  xa     = x -> dense(256, init = xavier)
  nrm    = x -> dense(256, init = normal(std = 0.05))
  shift  = x -> dense(256, init = normal(std = 0.05, mean = 0.5))
  zero   = x -> dense(256, init = zeros)
  logits = x -> dense(3, bias = false)
}}
loss      = cross_entropy(logits, target)
optimizer = sgd()
stop {{ max = 1 epochs }}
run {{ seed = {seed} }}
"""


def _init_weights(seed: int) -> dict[str, np.ndarray]:
    from trainc.compiler.lower import lower

    spec = analyze(INIT_SPEC.format(seed=seed), "init.train")
    x = np.zeros((8, 64), np.float32)
    y = np.arange(8, dtype=np.int32) % 3
    prog = lower(spec, x, y, x, y)
    return {k: t.numpy() for k, t in prog.named_params().items()}


def test_initialisers():
    w = _init_weights(seed=0)
    assert set(w) == {f"{v}.dense0.{p}" for v in ("he", "xa", "nrm", "shift", "zero") for p in "Wb"} | {
        "logits.dense0.W"}  # bias = false: no bias at all
    for v in ("he", "xa", "nrm", "shift", "zero"):
        assert w[f"{v}.dense0.W"].shape == (64, 256)
        np.testing.assert_array_equal(w[f"{v}.dense0.b"], np.zeros(256))

    he = w["he.dense0.W"]
    assert he.std() == pytest.approx(math.sqrt(2 / 64), rel=0.05)
    assert abs(he.mean()) < 0.01
    assert np.abs(he).max() > 3 * math.sqrt(2 / 64)  # a normal, not a bounded uniform

    bound = math.sqrt(6 / (64 + 256))
    xa = w["xa.dense0.W"]
    assert np.abs(xa).max() <= bound * (1 + 1e-6)
    assert np.abs(xa).max() > 0.98 * bound  # fills the interval
    assert xa.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    assert abs(xa.mean()) < 0.01

    nrm = w["nrm.dense0.W"]
    assert nrm.std() == pytest.approx(0.05, rel=0.05)
    assert abs(nrm.mean()) < 0.005
    shift = w["shift.dense0.W"]
    assert shift.std() == pytest.approx(0.05, rel=0.05)
    assert shift.mean() == pytest.approx(0.5, abs=0.005)

    np.testing.assert_array_equal(w["zero.dense0.W"], np.zeros((64, 256)))
    assert w["logits.dense0.W"].std() == pytest.approx(math.sqrt(2 / 64), rel=0.2)  # he by default


def test_initialisers_are_seeded():
    a, b, c = _init_weights(seed=0), _init_weights(seed=0), _init_weights(seed=1)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for k in ("he.dense0.W", "xa.dense0.W", "nrm.dense0.W", "logits.dense0.W"):
        assert not np.allclose(a[k], c[k]), k
    np.testing.assert_array_equal(a["zero.dense0.W"], c["zero.dense0.W"])


# ---------------------------------------------------------------------------------------------
# 5. Batch normalisation: running statistics through the jitted step, evaluation with them
# ---------------------------------------------------------------------------------------------

BN_SPEC = """
data {
  source = csv("unused.csv", target = "y")
  split  = { train = 0.8, val = 0.2 }
  batch  = 8
}
model {
  input x: f32[5]
  out = x -> batchnorm -> dense(3)
}
loss      = cross_entropy(out, target)
optimizer = sgd(lr = 0.5)
stop { max = 1 epochs }
"""


def test_batchnorm_running_statistics_and_eval():
    from tinygrad import Tensor
    from trainc.compiler.lower import finish_eval, lower

    rng = np.random.default_rng(7)
    scale, offset = np.array([1.0, 2.0, 0.5, 4.0, 1.5]), np.array([3.0, -1.0, 0.0, 10.0, 2.0])
    x_tr = (rng.normal(size=(32, 5)) * scale + offset).astype(np.float32)
    y_tr = rng.integers(0, 3, 32).astype(np.int32)
    x_va = (rng.normal(size=(12, 5)) * scale + offset).astype(np.float32)
    y_va = rng.integers(0, 3, 12).astype(np.int32)
    spec = analyze(BN_SPEC, "bn.train")
    prog = lower(spec, x_tr, y_tr, x_va, y_va)
    assert set(prog.named_buffers()) == {"out.batchnorm0.running_mean", "out.batchnorm0.running_var"}
    w0 = {k: t.numpy().astype(np.float64) for k, t in prog.named_params().items()}
    np.testing.assert_array_equal(w0["out.batchnorm0.gamma"], np.ones(5))
    np.testing.assert_array_equal(w0["out.batchnorm0.beta"], np.zeros(5))

    m, eps = 0.1, 1e-5  # the defaults
    rm, rv = np.zeros(5), np.ones(5)
    for s in range(3):  # three steps: the JIT's plain, capture and replay paths
        idx = np.arange(s * 8, (s + 1) * 8)
        xb = x_tr[idx].astype(np.float64)
        loss = prog.train_step(Tensor(idx.astype(np.int32)), Tensor([0.5], dtype="float32")).item()
        if s == 0:  # training mode normalises with the batch's own statistics (biased variance)
            h = (xb - xb.mean(0)) / np.sqrt(xb.var(0) + eps)
            z = h @ w0["out.dense0.W"] + w0["out.dense0.b"]
            assert loss == pytest.approx(np_cross_entropy(z, y_tr[idx]).mean(), rel=1e-5)
            # from zeros and ones: momentum * mean, and (1 - momentum) + momentum * unbiased var
            np.testing.assert_allclose(prog.named_buffers()["out.batchnorm0.running_mean"].numpy(),
                                       m * xb.mean(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(prog.named_buffers()["out.batchnorm0.running_var"].numpy(),
                                       (1 - m) + m * xb.var(0, ddof=1), rtol=1e-5, atol=1e-6)
        rm = (1 - m) * rm + m * xb.mean(0)
        rv = (1 - m) * rv + m * xb.var(0, ddof=1)
        np.testing.assert_allclose(prog.named_buffers()["out.batchnorm0.running_mean"].numpy(), rm, rtol=1e-5,
                                   atol=1e-6, err_msg=f"step {s}")
        np.testing.assert_allclose(prog.named_buffers()["out.batchnorm0.running_var"].numpy(), rv, rtol=1e-5,
                                   atol=1e-6, err_msg=f"step {s}")
    w = {k: t.numpy().astype(np.float64) for k, t in prog.named_params().items()}
    assert not np.allclose(w["out.batchnorm0.gamma"], 1.0)  # gamma and beta are trained

    # evaluation uses the running statistics, not the batch's
    prog.eval_step(Tensor(np.arange(12, dtype=np.int32)), Tensor(np.ones(12, np.float32)))
    got = finish_eval(prog, prog.eval_acc.numpy())["loss"]

    def head(h):
        return (h * w["out.batchnorm0.gamma"] + w["out.batchnorm0.beta"]) @ w["out.dense0.W"] + w["out.dense0.b"]

    xv = x_va.astype(np.float64)
    want = np_cross_entropy(head((xv - rm) / np.sqrt(rv + eps)), y_va).mean()
    with_batch_stats = np_cross_entropy(head((xv - xv.mean(0)) / np.sqrt(xv.var(0) + eps)), y_va).mean()
    assert abs(want - with_batch_stats) > 0.05  # the two modes are distinguishable here
    assert got == pytest.approx(want, rel=1e-5)


# ---------------------------------------------------------------------------------------------
# 6. A binary task with bce
# ---------------------------------------------------------------------------------------------

BCE_SPEC = """
data {{
  source = csv("{csv}", target = "label")
  split  = {{ train = 0.8, val = 0.2 }}
  batch  = 32
}}
model {{
  input x: f32[64]
  logit = x -> dense(16) -> relu -> dense({units})
}}
loss      = bce(logit, target)
optimizer = adam(lr = 1e-2)
stop {{ max = 3 epochs }}
metrics   = [accuracy]
"""


def test_binary_digits_with_bce(tmp_path):
    x, y, header = digits()
    keep = y <= 1
    rows = [",".join(header)] + [",".join(f"{v:g}" for v in r) + f",{c}" for r, c in zip(x[keep], y[keep])]
    (tmp_path / "zero_one.csv").write_text("\n".join(rows) + "\n")
    text = BCE_SPEC.format(csv="zero_one.csv", units=1)
    _, ds, result = run_spec(tmp_path, text, "bce")

    assert ds.classes == (0, 1) and len(ds.y_train) + len(ds.y_val) == int(keep.sum())
    assert result.stop_reason == "reached stop.max (3 epochs)"
    assert result.epochs == 3 and result.steps == 3 * (len(ds.y_train) // 32)
    final = result.final
    assert final["val.accuracy"] > 0.95
    assert final["val.loss"] < 0.3
    # recomputed in numpy from the saved weights: one logit, class 1 when it is positive
    w = load_weights(result.out_dir / "model.safetensors")
    assert w["logit.dense1.W"].shape == (16, 1)
    z = mlp(w, ds.x_val, prefix="logit")[:, 0]
    assert final["val.loss"] == pytest.approx(np_bce(z, ds.y_val).mean(), rel=1e-4, abs=1e-6)
    assert final["val.accuracy"] == pytest.approx(((z > 0).astype(int) == ds.y_val).mean(), abs=1e-9)
    assert result.baseline["val.accuracy"] == pytest.approx(
        (ds.y_val == np.bincount(ds.y_train).argmax()).mean())


def test_bce_on_ten_logits_is_a_lint_error():
    text = BCE_SPEC.format(csv="zero_one.csv", units=10)
    diags = lint(text, "bce10.train")
    assert [d.code for d in diags] == ["E402"]
    assert "one logit per example" in diags[0].message and "dense(1)" in diags[0].help
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "dense(10)" in t)  # the layer that sets it
    assert diags[0].span.line == line and text.splitlines()[line - 1][diags[0].span.col - 1:].startswith("dense(10)")
    loss = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("loss"))
    assert [(span.line, span.col) for _, span in diags[0].related] == [(loss, 13)]


# ---------------------------------------------------------------------------------------------
# 7. A multi-axis input through flatten
# ---------------------------------------------------------------------------------------------

FLAT_SPEC = """
data {
  source = npz("digits.npz")
  split  = { train = 0.6, val = 0.4, stratify = true }
  batch  = 64
}
model {
  input x: f32[1, 8, 8]
  logits = x -> flatten -> dense(32) -> relu -> dense(10)
}
loss      = cross_entropy(logits, target)
optimizer = adam(lr = 1e-2)
stop { max = 3 epochs }
metrics   = [accuracy]
"""


def test_images_through_flatten(tmp_path):
    x, y, _ = digits()
    np.savez(tmp_path / "digits.npz", x=x.reshape(-1, 1, 8, 8), y=y)
    _, ds, result = run_spec(tmp_path, FLAT_SPEC, "flat")
    assert ds.x_train.shape[1:] == (1, 8, 8)
    assert result.epochs == 3 and result.stop_reason == "reached stop.max (3 epochs)"
    assert result.final["val.accuracy"] > 0.85
    w = load_weights(result.out_dir / "model.safetensors")
    assert w["logits.dense0.W"].shape == (64, 32)  # flatten: 1 * 8 * 8 inputs
    # flatten is row-major over (channel, row, column), like numpy's reshape
    check_val_metrics(result.final, w, ds)


# ---------------------------------------------------------------------------------------------
# 8. Stopping rules and outputs
# ---------------------------------------------------------------------------------------------


def test_max_steps_with_checkpoints_and_schedule(tmp_path):
    extra = ("schedule = warmup(10 steps) then cosine(to = 1e-4)\n"
             "checkpoint { every = 1 epoch, keep = best(val.loss) }")
    _, ds, result = run_spec(tmp_path, digits_spec("max = 30 steps", extra=extra), "steps")
    per_epoch = len(ds.y_train) // 64
    assert per_epoch == 16  # so 30 steps end in the middle of the second epoch
    assert len(ds.y_val) > 512  # and evaluation runs in two chunks, the second padded and masked
    assert result.stop_reason == "reached stop.max (30 steps)"
    assert result.steps == 30 and result.epochs == 2
    out = result.out_dir
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["step"]) for r in rows] == [(1, 16), (2, 30)]
    # each row's lr is the schedule's value at the last step taken: steps 15 and 29 (cosine s = 5, 19 of 20)
    cos = [1e-4 + (1e-2 - 1e-4) * (1 + math.cos(math.pi * s / 20)) / 2 for s in (5, 19)]
    assert [r["lr"] for r in rows] == pytest.approx(cos, rel=1e-9)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == result.stop_reason and summary["steps"] == 30
    assert summary["examples"] == {"train": len(ds.y_train), "val": len(ds.y_val)}

    names = {"logits.dense0.W": (64, 32), "logits.dense0.b": (32,), "logits.dense1.W": (32, 10),
             "logits.dense1.b": (10,)}
    final = load_weights(out / "model.safetensors")
    from trainc.runtime import checkpoint as ck

    last = load_weights(ck.find(out / "checkpoints" / "latest") / "model.safetensors")
    best = load_weights(ck.find(out / "checkpoints" / "best") / "model.safetensors")
    for w in (final, last, best):
        assert {k: v.shape for k, v in w.items()} == names
    for k in names:  # the last checkpoint is of epoch 2, the end of the run
        np.testing.assert_array_equal(last[k], final[k])
    check_val_metrics(rows[-1], final, ds)
    # the best checkpoint holds the epoch with the lowest val.loss
    best_row = min(rows, key=lambda r: r["val.loss"])
    check_val_metrics(best_row, best, ds)


def test_budget_stops_a_long_run(tmp_path):
    _, ds, result = run_spec(tmp_path, digits_spec("max = 100000 epochs, budget = 1 s"), "budget")
    assert result.stop_reason == "time budget of 1 s used"
    assert 1 <= result.steps < 100000 * (len(ds.y_train) // 64)
    assert result.history[-1]["time"] >= 1.0
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["stop_reason"] == "time budget of 1 s used"
    assert (result.out_dir / "model.safetensors").exists()


def test_threshold_stops_early(tmp_path):
    *_, result = run_spec(tmp_path, digits_spec("max = 20 epochs, when = val.accuracy >= 0.5"), "when")
    accs = [r["val.accuracy"] for r in result.history]
    # stops at the first epoch that passes, well before the maximum
    assert accs[-1] >= 0.5 and all(a < 0.5 for a in accs[:-1])
    assert result.epochs == len(accs) < 20
    assert result.stop_reason == f"threshold reached: val.accuracy = {accs[-1]:.4g} >= 0.5"
    assert json.loads((result.out_dir / "summary.json").read_text())["stop_reason"] == result.stop_reason


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """One run whose learning rate makes the loss explode, shared by the tests that read it."""
    return run_spec(tmp_path_factory.mktemp("diverged"), digits_spec("max = 20 epochs", optimizer="sgd(lr = 1e6)"),
                    "nan")


def test_diverging_run_stops_and_still_writes_a_summary(diverged):
    *_, result = diverged
    assert result.stop_reason.startswith("diverged: the loss is not finite")
    assert result.history[-1]["diverged"] == "the loss is not finite"
    assert result.epochs < 20
    last = result.history[-1]
    assert not (math.isfinite(last["train.loss"]) and math.isfinite(last["val.loss"]))
    summary = json.loads((result.out_dir / "summary.json").read_text())
    assert summary["stop_reason"] == result.stop_reason
    assert summary["epochs"] == result.epochs and summary["steps"] == result.steps
    assert (result.out_dir / "model.safetensors").exists()


def _strict_json(text: str):
    def reject(token):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=reject)


def test_diverged_run_outputs_are_strict_json(diverged):
    _, _, result = diverged
    summary = _strict_json((result.out_dir / "summary.json").read_text())
    assert summary["stop_reason"] == result.stop_reason
    assert summary["last"]["val.loss"] is None  # the NaN, written as null
    for line in (result.out_dir / "metrics.jsonl").read_text().splitlines():
        _strict_json(line)


# ---------------------------------------------------------------------------------------------
# 9. What only the data can tell
# ---------------------------------------------------------------------------------------------


def _data_problems(text: str):
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import check_against_data

    spec = analyze(text, "d.train")
    ds = load_data(spec.data, ROOT, spec.run.seed)
    return spec, ds, check_against_data(spec, ds)


def test_wrong_class_count(tmp_path):
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    text = digits_spec("max = 1 epochs").replace("dense(10)", "dense(3)")
    spec, ds, diags = _data_problems(text)
    assert [d.code for d in diags] == ["E508"]
    assert diags[0].message == "'logits' has 3 logits but the data has 10 classes"
    assert diags[0].help == "end the model with dense(10)"
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "dense(3)" in t)  # the layer that sets the width
    assert diags[0].span.line == line and diags[0].related[0][0].endswith("reads 'logits' as one logit per class")
    # train() refuses before compiling or writing anything
    with pytest.raises(SpecError) as e:
        train(spec, ds, tmp_path / "run", Progress(quiet=True))
    assert [d.code for d in e.value.diagnostics] == ["E508"]
    assert not (tmp_path / "run").exists()


def test_bce_on_ten_classes():
    text = digits_spec("max = 1 epochs").replace("dense(10)", "dense(1)").replace("cross_entropy(", "bce(")
    _, _, diags = _data_problems(text)
    assert [d.code for d in diags] == ["E508"]
    assert diags[0].message == "bce needs 2 classes, the data has 10"


def test_batch_larger_than_training_split():
    text = digits_spec("max = 1 epochs").replace("batch  = 64", "batch  = 2000")
    _, ds, diags = _data_problems(text)
    n = len(ds.y_train)
    assert n < 2000
    assert [d.code for d in diags] == ["E505"]
    assert diags[0].message == f"batch 2000 is larger than the training split ({n} examples)"
    assert diags[0].help == "use `batch = 32` or fewer, or `batch = all` for the whole training split"
    # a batch of exactly the training split is fine (batch gradient descent)
    _, _, ok = _data_problems(text.replace("batch  = 2000", f"batch  = {n}"))
    assert ok == []


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint_and_stops(tmp_path, monkeypatch):
    """The third checkpoint write fails with ENOSPC: the run stops saying so, `latest` still names the
    second one, which loads whole (its checksums hold), and nothing temporary is left behind."""
    from trainc.runtime import checkpoint as ck

    real_save, calls = ck.save, []

    def save(*args, **kw):
        calls.append(args[1])
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_save(*args, **kw)

    monkeypatch.setattr(ck, "save", save)
    _, _, result = run_spec(tmp_path, digits_spec("max = 10 epochs"), "full")
    assert result.stop_reason == "could not write a checkpoint (No space left on device); the previous one is intact"
    assert result.epochs == 3 and calls == ["step-00000016", "step-00000032", "step-00000048"]
    ckpt = result.out_dir / "checkpoints"
    assert ck.pointed(ckpt, "latest") == "step-00000032"
    _, _, state = ck.load(ckpt / "step-00000032")
    assert state["loop"]["epoch"] == 2
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest", "step-00000032"]
