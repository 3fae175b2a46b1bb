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


SMALL = """data {{
  source = csv("d.csv", target = "y")
  split  = {{ train = 0.8, val = 0.2 }}
  batch  = 8
}}
model {{
  input x: {shape}
  {body}
}}
loss      = mse(pred, target)
optimizer = sgd(lr = 0.1)
regularization {{ {reg} }}
run {{ seed = 0 }}
stop {{ max = 1 epochs }}
"""
CONV = "h    = x -> conv1d(2, 3) -> flatten\n  pred = h -> dense(1)"  # a 3-D kernel, dense matrices, biases


@pytest.mark.parametrize("reg, on", [("l2 = 0.5", ("h.", "pred.")), ("l2 = { value = 0.5, on = [h] }", ("h.",)),
                                     ("l2 = { value = 0.5, on = [pred] }", ("pred.",))])
def test_l2_decays_every_weight_tensor_of_two_or_more_dimensions_and_no_bias(reg, on):
    """As documented: conv kernels (3-D) and dense matrices decay by lr * l2 * W beyond the data's gradient;
    biases do not; `on` keeps the decay to the values named. Two programs from the same seed, with and without
    l2, one sgd step each."""
    from trainc.compiler.lower import lower

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 1, 8)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    idx = np.arange(8, dtype=np.int32)
    weights = []
    for r in ("", reg):
        spec, problems = check_file(parse(SMALL.format(shape="f32[1, 8]", body=CONV, reg=r), "f.train"), "f.train")
        assert not [d for d in problems if d.is_error], problems
        program = lower(spec, x, y, x[:8], y[:8])
        before = {k: t.numpy().copy() for k, t in program.state().items()}
        program.step([idx, idx], 0.1)
        weights.append((before, {k: t.numpy() for k, t in program.state().items()}))
    (b0, a0), (b1, a1) = weights
    assert b0.keys() == b1.keys() and all(np.array_equal(b0[k], b1[k]) for k in b0)  # the same start
    decayed = {k for k in b0 if b0[k].ndim >= 2 and k.startswith(on)}
    assert any(b0[k].ndim == 3 for k in b0) and any(b0[k].ndim == 1 for k in b0)  # a kernel and biases
    assert decayed and {k.split(".")[0] + "." for k in decayed} == set(on)
    for k in b0:
        want = -0.1 * 0.5 * b0[k] if k in decayed else np.zeros_like(b0[k])
        np.testing.assert_allclose(a1[k] - a0[k], want, atol=1e-6, err_msg=k)


def test_dense_on_a_sequence_acts_at_every_position():
    """`dense` on [T, D]: the same W and b at each of the T positions (Keras' Dense on the last axis), against
    numpy; [T, units] out, parameters counted from D alone. An image [C, H, W] is still E401 (flatten first)."""
    from trainc.compiler.lower import lower
    from trainc.compiler.summary import rows

    body = "pred = x -> dense(5) -> flatten -> dense(1)"
    spec, problems = check_file(parse(SMALL.format(shape="f32[4, 3]", body=body, reg=""), "f.train"), "f.train")
    assert not [d for d in problems if d.is_error], problems
    first = spec.model.layers[0]
    assert str(first.out) == "f32[4, 5]" and rows(spec)[1].params == 3 * 5 + 5
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 4, 3)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    program = lower(spec, x, y, x[:8], y[:8])
    w = {k: t.numpy().astype(np.float64) for k, t in program.state().items()}
    (w1, b1), (w2, b2) = [(w[f"{la.name}.W"], w[f"{la.name}.b"]) for la in spec.model.layers if la.op == "dense"]
    want = ((x.astype(np.float64) @ w1 + b1).reshape(16, -1) @ w2 + b2)
    np.testing.assert_allclose(program.predict(x).reshape(want.shape), want, rtol=1e-5, atol=1e-5)
    image = SMALL.format(shape="f32[1, 4, 3]", body=body, reg="")
    assert [d.code for d in check_file(parse(image, "f.train"), "f.train")[1]] == ["E401"]


def _one_sgd_step(body: str, x: np.ndarray, y: np.ndarray):
    from trainc.compiler.lower import lower

    spec, problems = check_file(parse(SMALL.format(shape=f"f32[{x.shape[1]}]", body=body, reg=""), "f.train"),
                                "f.train")
    assert not [d for d in problems if d.is_error], problems
    program = lower(spec, x, y, x[:8], y[:8])
    before = {k: t.numpy().copy() for k, t in program.state().items()}
    idx = np.arange(8, dtype=np.int32)
    program.step([idx, idx], 0.1)
    return spec, program, before, {k: t.numpy() for k, t in program.state().items()}


def test_stop_gradient_keeps_the_layers_before_it_as_they_were():
    """One sgd step: the dense before `stop_gradient` does not move, the one after it does."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    spec, _, before, after = _one_sgd_step("pred = x -> dense(4) -> stop_gradient -> dense(1)", x, y)
    first, last = [la.name for la in spec.model.layers if la.op == "dense"]
    assert np.array_equal(before[f"{first}.W"], after[f"{first}.W"])
    assert not np.array_equal(before[f"{last}.W"], after[f"{last}.W"])


def test_minibatch_std_appends_the_batch_spread_against_numpy():
    """[n] -> [n + 1]: the last feature is mean over features of sqrt(var over the batch + 1e-8), the same
    for every example of the batch (Karras et al. 2018, section 3)."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=(16, 1)).astype(np.float32)
    spec, program, _, _ = _one_sgd_step("pred = x -> minibatch_std -> dense(1, init = zeros, bias = false)", x, y)
    assert str(spec.model.layers[0].out) == "f32[4]"
    from trainc.compiler.lower import LAYER_IMPL
    from tinygrad import Tensor

    got = LAYER_IMPL["minibatch_std"](Tensor(x), None, {}, True).numpy()
    want = np.sqrt(x.astype(np.float64).var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(got[:, :3], x, rtol=1e-6)
    np.testing.assert_allclose(got[:, 3], np.full(16, want), rtol=1e-5)
