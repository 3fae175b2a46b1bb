"""Edges of the lowering: it never crashes on a spec with nothing to train (lint refuses it with E315, but the
lowering is also reached through the API): every parameter frozen, with each clipping setting; and its device and
precision errors (E601, E602) point at the setting, or at the --set override that gave it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tinygrad")

from trainc.compiler import check_file, parse  # noqa: E402

SPEC = """data {{
  source = csv("d.csv", target = "y")
  split  = {{ train = 0.8, val = 0.2 }}
  batch  = 8
}}
model {{
  input x: f32[4]
  pred = x -> dense(1)
}}
loss      = mse(pred, target)
optimizer = {optimizer}(lr = 0.1, freeze = [pred])
regularization {{ {reg} }}
stop {{ max = 1 epochs }}
"""


@pytest.mark.parametrize("optimizer, reg", [
    ("adam", "clip_grad_value = 1.0, clip_grad_norm = 1.0"),  # was: 'int' object has no attribute 'sqrt'
    ("adam", "clip_grad_norm = 1.0"),
    ("sgd", "clip_grad_value = 1.0"),
    ("sgd", "l2 = 0.1, clip_grad_value = 1.0, clip_grad_norm = 1.0, accumulate = 2"),
])
def test_every_layer_frozen_trains_nothing_without_crashing(optimizer, reg):

    from trainc.compiler.lower import lower

    spec, problems = check_file(parse(SPEC.format(optimizer=optimizer, reg=reg), "f.train"), "f.train")
    assert {d.code for d in problems if d.is_error} <= {"E315"}  # nothing to train: lint's error, not a crash
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    program = lower(spec, x, y, x[:8], y[:8])
    (layer,) = program.layers.values()
    before = {k: t.numpy().copy() for k, t in layer.params.items()}
    idx = np.arange(8, dtype=np.int32)
    for _ in range(2):
        program.step([idx, idx], 0.1)
    after = {k: t.numpy() for k, t in layer.params.items()}
    assert before.keys() == {"W", "b"} and all(np.array_equal(before[k], after[k]) for k in before)
    mse = float(np.mean((x[:8] @ before["W"] + before["b"] - y[:8]) ** 2))
    loss_sum, examples = program.train_acc.numpy()[:2]
    assert loss_sum / examples == pytest.approx(mse, rel=1e-5)  # the loss is still measured, of the untouched model


RUN = SPEC.format(optimizer="sgd", reg="") + "run {\n  seed = 0\n  device = metal\n  precision = f16\n}\n"


@pytest.mark.parametrize("sets, device_at, precision_at", [
    ([], ("f.train", 16), ("f.train", 17)),  # the value as written, not the `run` line
    (["run.device=metal", "run.precision=f16"], ("<--set run.device>", 1), ("<--set run.precision>", 1)),
])
def test_device_and_precision_errors_point_at_the_setting_or_its_override(sets, device_at, precision_at):
    from trainc.compiler.diagnostics import SpecError
    from trainc.compiler.lower import _check_precision, select_device
    from trainc.compiler.overrides import apply_overrides

    text = RUN if not sets else RUN.replace("  device = metal\n  precision = f16\n", "")
    spec, _ = check_file(apply_overrides(parse(text, "f.train"), sets, {}), "f.train")
    with pytest.raises(SpecError) as e:
        select_device(spec.run)  # no Metal on this machine
    (d,) = e.value.diagnostics
    assert (d.code, d.span.file, d.span.line) == ("E601", *device_at)
    with pytest.raises(SpecError) as e:
        _check_precision(None, "CPU", spec.run)  # a half type the device cannot compile
    (d,) = e.value.diagnostics
    assert (d.code, d.span.file, d.span.line) == ("E602", *precision_at)
