"""The compiled training step against an independent numpy implementation (tests/numpy_ref.py).

Each case compiles a spec, loads the reference's initial weights into the program, runs several
steps of the jitted step (so the JIT's capture and replay paths both run) with a changing learning
rate, and compares every step's loss and the final weights to float64 numpy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import numpy_ref  # noqa: E402

from trainc.compiler import analyze  # noqa: E402

pytest.importorskip("tinygrad")

DIGITS = Path(__file__).parents[1] / "examples" / "data" / "digits.csv"

SPEC = """
data {{
  source = csv("unused.csv", target = "y")
  split = {{ train = 0.8, val = 0.2 }}
  batch = {batch}
  normalize = none
}}
model {{
  input x: f32[{features}]
  out = x -> dense({hidden}) -> {act} -> dense({outputs})
}}
loss = {loss}(out, target{loss_args})
optimizer = {optimizer}
regularization {{ {reg} }}
stop {{ max = 1 epochs }}
"""

CASES = {  # name: (optimizer in the spec, numpy_ref optimizer, loss, loss args, act, l2, clip)
    "sgd": ("sgd(lr = 0.1)", ("sgd", {}), "cross_entropy", {}, "relu", 0.0, None),
    "sgd_momentum_l2_clip": ("sgd(lr = 0.1, momentum = 0.9)", ("sgd", {"momentum": 0.9}), "cross_entropy", {},
                             "tanh", 1e-2, 0.5),
    "sgd_nesterov_wd": ("sgd(lr = 0.05, momentum = 0.8, nesterov = true, weight_decay = 0.01)",
                        ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01}), "cross_entropy",
                        {"smoothing": 0.1}, "relu", 0.0, None),
    "adam_l2_clip": ("adam(lr = 0.01)", ("adam", {}), "cross_entropy", {}, "gelu", 1e-3, 1.0),
    "adamw": ("adamw(lr = 0.01, weight_decay = 0.1)", ("adamw", {"weight_decay": 0.1}), "cross_entropy",
              {"smoothing": 0.05}, "sigmoid", 0.0, None),
    "adam_mse": ("adam(lr = 0.005, b1 = 0.8, b2 = 0.99, eps = 1e-6)",
                 ("adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}), "mse", {}, "leaky_relu", 1e-3, 2.0),
}


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.loadtxt(DIGITS, delimiter=",", skiprows=1, max_rows=n)
    x = raw[:, :64] / 16.0
    return x, raw[:, 64].astype(np.int64)


@pytest.mark.parametrize("case", sorted(CASES))
def test_steps_match_numpy(case):
    from tinygrad import Tensor

    from trainc.compiler.lower import lower

    spec_opt, (ref_kind, ref_hyper), loss, loss_args, act, l2, clip = CASES[case]
    batch, steps, hidden = 16, 5, 12
    x, labels = _digits(batch * steps)
    if loss == "mse":  # a real regression target: the digit's mean ink, two outputs
        y = np.stack([x.mean(1), x[:, :32].mean(1)], axis=1)
        outputs = 2
    else:
        y, outputs = labels, 10
    reg = ", ".join(([f"l2 = {l2}"] if l2 else []) + ([f"clip_grad_norm = {clip}"] if clip else []))
    largs = "".join(f", {k} = {v}" for k, v in loss_args.items())
    text = SPEC.format(batch=batch, features=64, hidden=hidden, act=act, outputs=outputs, loss=loss, loss_args=largs,
                       optimizer=spec_opt, reg=reg)
    spec = analyze(text, f"{case}.train")
    y_arr = y.astype(np.float32) if loss == "mse" else y.astype(np.int32)
    program = lower(spec, x.astype(np.float32), y_arr, x[:batch].astype(np.float32), y_arr[:batch])

    ref = numpy_ref.init_params([64, hidden, outputs], seed=1)
    names = {"l0": "out.dense0", "l1": "out.dense1"}
    for key, value in ref.items():
        layer, p = key.split(".")
        program.layers[names[layer]].params[p].assign(Tensor(value.astype(np.float32))).realize()

    lrs = [0.1, 0.08, 0.05, 0.05, 0.02] if ref_kind == "sgd" else [0.01, 0.008, 0.005, 0.005, 0.002]
    if "lr = 0.005" in spec_opt:
        lrs = [v / 2 for v in lrs]
    got = []
    for s in range(steps):
        idx = Tensor(np.arange(s * batch, (s + 1) * batch, dtype=np.int32))
        got.append(program.train_step(idx, Tensor([lrs[s]], dtype="float32")).item())

    batches = [(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]) for s in range(steps)]
    opt = numpy_ref.make_optimizer(ref_kind, **ref_hyper)
    acts = [None if act == "none" else act, None]
    want, final = numpy_ref.train_steps(ref, batches, acts, loss, loss_args, opt, lrs, l2=l2, clip=clip)

    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for key, value in final.items():
        layer, p = key.split(".")
        np.testing.assert_allclose(program.layers[names[layer]].params[p].numpy(), value, rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    # and the weights moved: a step that did nothing would pass the loss check on step 0 only
    assert not np.allclose(final["l0.W"], ref["l0.W"])
