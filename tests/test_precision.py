"""Mixed precision (`run { precision = f16 }`): float32 master weights, a half-precision forward pass,
dynamic loss scaling that skips a step whose gradients overflowed (weights, optimizer state and step
count untouched; the scale halves) and trains on. bf16 trains where the device compiles it, else E602."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tinygrad")

from trainc.compiler import analyze  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("trainc"))

SPEC = """
data {{
  source = csv("unused.csv", target = "y")
  split = {{ train = 0.8, val = 0.2 }}
  batch = 32
  normalize = none
}}
model {{
  input x: f32[16]
  logits = x -> dense(32) -> relu -> dense(4)
}}
loss = cross_entropy(logits, target)
optimizer = adam(lr = 1e-2)
stop {{ max = 5 steps }}
run {{ seed = 0, precision = {precision} }}
"""


def program(precision: str):
    from trainc.compiler.lower import lower

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 16)).astype(np.float32)
    y = rng.integers(0, 4, size=64).astype(np.int32)
    return lower(analyze(SPEC.format(precision=precision), "p.train"), x, y, x[:32], y[:32], n_classes=4), x


def step(p, lr=1e-2):
    from tinygrad import Tensor

    p.step([Tensor(np.arange(32, dtype=np.int32))], Tensor([lr], dtype="float32"))


def weights(p) -> dict[str, np.ndarray]:
    return {k: t.numpy().copy() for k, t in p.state().items()}


def test_f16_forward_is_close_to_f32_and_weights_stay_f32():
    p16, x = program("f16")
    p32, _ = program("f32")
    assert all(t.dtype.name == "float" for t in p16.state().values())  # the masters
    a, b = p16.predict(x), p32.predict(x)
    assert np.allclose(a, b, rtol=2e-2, atol=2e-2) and not np.array_equal(a, b)  # really computed in half


def test_an_overflowing_step_is_skipped_and_the_scale_halves():
    from tinygrad import Tensor

    p, _ = program("f16")
    p.loss_scale.assign(Tensor([2.0 ** 100, 0.0, 0.0])).realize()  # any half gradient overflows
    before, opt_before = weights(p), {k: t.numpy().copy() for k, t in p.optimizer_state().items()}
    for _ in range(3):  # capture and replay paths of the JIT
        step(p)
    after = weights(p)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert p.step_count.numpy()[0] == 0
    assert all(np.array_equal(opt_before[k], t.numpy()) for k, t in p.optimizer_state().items()
               if k not in ("loss_scale",))
    assert p.loss_scale.numpy().tolist() == [2.0 ** 97, 0.0, 3.0]
    p.loss_scale.assign(Tensor([1024.0, 0.0, 3.0])).realize()  # a sane scale: steps go through again
    step(p)
    assert p.step_count.numpy()[0] == 1 and p.loss_scale.numpy().tolist() == [1024.0, 1.0, 3.0]
    assert any(not np.array_equal(before[k], t.numpy()) for k, t in p.state().items())


def test_f16_equals_unscaled_training_when_nothing_overflows():
    """Loss scaling must not change the update: scaled then unscaled gradients feed the same Adam step.
    Reference: the same f16 program with the scale held at 1."""
    from tinygrad import Tensor

    a, _ = program("f16")
    b, _ = program("f16")
    b.loss_scale.assign(Tensor([1.0, 0.0, 0.0])).realize()
    for _ in range(4):
        step(a)
        step(b)
    for k, t in a.state().items():
        np.testing.assert_allclose(t.numpy(), b.state()[k].numpy(), rtol=1e-3, atol=1e-5)


def test_digits_train_in_f16(tmp_path):
    r = subprocess.run([EXE, "run", str(ROOT / "examples" / "digits.train"), "-q", "--out", str(tmp_path),
                        "--set", "run.precision=f16", "--set", "stop.max=5 epochs"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    last = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["val.accuracy"] >= 0.95 and last["loss_scale"] > 0 and last["skipped_steps"] >= 0


def test_bf16_trains_or_is_refused_with_a_diagnostic(tmp_path):
    r = subprocess.run([EXE, "run", str(ROOT / "examples" / "digits.train"), "-q", "--out", str(tmp_path),
                        "--set", "run.precision=bf16", "--set", "stop.max=1 epochs"], capture_output=True, text=True,
                       timeout=600)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert r.returncode == 0 or (r.returncode == 1 and "error[E602]: precision = bf16 is not supported" in r.stderr)
