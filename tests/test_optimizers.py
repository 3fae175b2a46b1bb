"""Optimizers, regularization in the step, gradient accumulation and parameter groups.

Every numeric test names its reference in its docstring: the independent float64 numpy
implementation (tests/numpy_ref.py), torch.optim when torch is installed, or a second compiled
program that must agree (accumulation, group lr). The compiled steps run several times with a
changing learning rate, so the JIT's capture and replay paths both run (as in test_numerics.py).
"""

from __future__ import annotations

import functools
import re
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import numpy_ref  # noqa: E402
from trainc.compiler import analyze, lint  # noqa: E402

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]
DIGITS = ROOT / "examples" / "data" / "digits.csv"

SPEC = """
data {{
  source = csv("unused.csv", target = "y")
  split = {{ train = 0.8, val = 0.2 }}
  batch = {batch}
  normalize = none
}}
model {{
  input x: f32[64]
  body = x -> dense({hidden}) -> {act}
  head = body -> dense(10)
}}
loss = cross_entropy(head, target)
optimizer = {optimizer}
regularization {{ {reg} }}
stop {{ max = 1 epochs }}
"""
NAMES = {"l0": "body.dense0", "l1": "head.dense0"}  # numpy_ref's layers -> the compiled layers
HIDDEN = 12
LRS = [1.0, 0.8, 0.5, 0.5, 0.2]  # times the base lr, one per step


@functools.lru_cache(maxsize=1)
def _all_digits() -> tuple[np.ndarray, np.ndarray]:
    raw = np.loadtxt(DIGITS, delimiter=",", skiprows=1)
    return raw[:, :64] / 16.0, raw[:, 64].astype(np.int64)


def digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _all_digits()
    return x[:n], y[:n]


def compile_program(optimizer: str, reg: str = "", batch: int = 16, act: str = "tanh", n: int = 80,
                    init: dict | None = None, seed: int = 1):
    """Lower the two-layer spec over the first `n` digits and load numpy_ref's weights into it."""
    from tinygrad import Tensor
    from trainc.compiler.lower import lower

    x, y = digits(n)
    spec = analyze(SPEC.format(batch=batch, hidden=HIDDEN, act=act, optimizer=optimizer, reg=reg), "opt.train")
    program = lower(spec, x.astype(np.float32), y.astype(np.int32), x[:batch].astype(np.float32),
                    y[:batch].astype(np.int32))
    ref = init if init is not None else numpy_ref.init_params([64, HIDDEN, 10], seed=seed)
    for key, value in ref.items():
        layer, p = key.split(".")
        program.layers[NAMES[layer]].params[p].assign(Tensor(value.astype(np.float32))).realize()
    return program, ref


def run_steps(program, lrs: list[float], batch: int = 16) -> list[float]:
    """One jitted step per lr over consecutive batches; the losses the step returned."""
    from tinygrad import Tensor

    losses = []
    for s, lr in enumerate(lrs):
        idx = Tensor(np.arange(s * batch, (s + 1) * batch, dtype=np.int32))
        losses.append(program.train_step(idx, Tensor([lr], dtype="float32")).item())
    return losses


def batches(lrs: list[float], batch: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    x, y = digits(batch * len(lrs))
    return [(x[s * batch:(s + 1) * batch], y[s * batch:(s + 1) * batch]) for s in range(len(lrs))]


def weights(program) -> dict[str, np.ndarray]:
    """The compiled program's parameters under numpy_ref's names, as float64."""
    out = {}
    for short, layer in NAMES.items():
        for p, t in program.layers[layer].params.items():
            out[f"{short}.{p}"] = t.numpy().astype(np.float64)
    return out


def assert_weights(program, want: dict[str, np.ndarray], tol: float = 1e-5) -> None:
    got = weights(program)
    for k, v in want.items():
        np.testing.assert_allclose(got[k], v, rtol=tol, atol=tol, err_msg=k)


def ref_run(ref, lrs, optimizer, act="tanh", **kw):
    return numpy_ref.train_steps(ref, batches(lrs), [act, None], "cross_entropy", {}, optimizer, lrs, **kw)


# ---------------------------------------------------------------------------------------------
# 1. Every optimizer against numpy_ref (and torch, when installed)
# ---------------------------------------------------------------------------------------------

OPT_CASES = {  # name: (optimizer in the spec, numpy_ref kind and hyper-parameters)
    "sgd_momentum": ("sgd(lr = 0.1, momentum = 0.9)", ("sgd", {"momentum": 0.9})),
    "sgd_nesterov_wd": ("sgd(lr = 0.1, momentum = 0.8, nesterov = true, weight_decay = 0.01)",
                        ("sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01})),
    "adam": ("adam(lr = 0.01, b1 = 0.8, b2 = 0.99)", ("adam", {"b1": 0.8, "b2": 0.99})),
    "adamw": ("adamw(lr = 0.01, weight_decay = 0.1)", ("adamw", {"weight_decay": 0.1})),
    "rmsprop": ("rmsprop(lr = 0.01)", ("rmsprop", {})),
    "rmsprop_centered_momentum": (("rmsprop(lr = 0.005, alpha = 0.9, eps = 1e-6, momentum = 0.9, centered = true, "
                                   "weight_decay = 0.01)"),
                                  ("rmsprop", {"alpha": 0.9, "eps": 1e-6, "momentum": 0.9, "centered": True,
                                               "weight_decay": 0.01})),
    "rmsprop_momentum": ("rmsprop(lr = 0.005, momentum = 0.5)", ("rmsprop", {"momentum": 0.5})),
    "adagrad": ("adagrad(lr = 0.05)", ("adagrad", {})),
    "adagrad_lr_decay": (("adagrad(lr = 0.05, lr_decay = 0.5, eps = 1e-3, initial_accumulator_value = 0.1, "
                          "weight_decay = 0.01)"),
                         ("adagrad", {"lr_decay": 0.5, "eps": 1e-3, "initial_accumulator_value": 0.1,
                                      "weight_decay": 0.01})),
    "lamb": ("lamb(lr = 0.01)", ("lamb", {})),
    "lamb_wd": ("lamb(lr = 0.02, b1 = 0.8, b2 = 0.99, eps = 1e-5, weight_decay = 0.1)",
                ("lamb", {"b1": 0.8, "b2": 0.99, "eps": 1e-5, "weight_decay": 0.1})),
}


def _base_lr(spec_opt: str) -> float:
    return float(re.search(r"lr = ([0-9.e-]+)", spec_opt).group(1))


@pytest.mark.parametrize("case", sorted(OPT_CASES))
def test_optimizer_matches_numpy(case):
    """Reference: numpy_ref.make_any_optimizer, 5 jitted steps with a changing lr, losses and weights to 1e-5."""
    spec_opt, (kind, hyper) = OPT_CASES[case]
    program, ref = compile_program(spec_opt)
    lrs = [_base_lr(spec_opt) * f for f in LRS]
    got = run_steps(program, lrs)
    want, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer(kind, **hyper))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, final)
    assert not np.allclose(final["l0.W"], ref["l0.W"])  # the step did something


TORCH_CASES = ["rmsprop", "rmsprop_centered_momentum", "rmsprop_momentum", "adagrad", "adagrad_lr_decay"]


def _torch_optimizer(torch, kind, hyper, plist):
    if kind == "rmsprop":
        return torch.optim.RMSprop(plist, lr=0.0, alpha=hyper.get("alpha", 0.99), eps=hyper.get("eps", 1e-8),
                                   momentum=hyper.get("momentum", 0.0), centered=hyper.get("centered", False),
                                   weight_decay=hyper.get("weight_decay", 0.0))
    return torch.optim.Adagrad(plist, lr=0.0, lr_decay=hyper.get("lr_decay", 0.0), eps=hyper.get("eps", 1e-10),
                               initial_accumulator_value=hyper.get("initial_accumulator_value", 0.0),
                               weight_decay=hyper.get("weight_decay", 0.0))


@pytest.mark.parametrize("case", TORCH_CASES)
def test_compiled_step_matches_torch(case):
    """Reference: torch.optim.RMSprop / torch.optim.Adagrad (float64) on the same network and batches."""
    torch = pytest.importorskip("torch")
    spec_opt, (kind, hyper) = OPT_CASES[case]
    program, ref = compile_program(spec_opt)
    lrs = [_base_lr(spec_opt) * f for f in LRS]
    got = run_steps(program, lrs)

    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in ref.items()}
    opt = _torch_optimizer(torch, kind, hyper, list(tp.values()))
    want = []
    for (x, y), lr in zip(batches(lrs), lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        h = torch.tanh(torch.as_tensor(x) @ tp["l0.W"] + tp["l0.b"])
        loss = torch.nn.functional.cross_entropy(h @ tp["l1.W"] + tp["l1.b"], torch.as_tensor(y))
        loss.backward()
        opt.step()
        want.append(loss.item())
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, {k: v.detach().numpy() for k, v in tp.items()})


@pytest.mark.parametrize("case", TORCH_CASES)
def test_numpy_reference_matches_torch(case):
    """Reference: torch.optim (float64) on random parameters and gradients, some of them exactly zero, to 1e-10."""
    torch = pytest.importorskip("torch")
    _, (kind, hyper) = OPT_CASES[case]
    rng = np.random.default_rng(5)
    params = {"a": rng.normal(size=(3, 4)), "b": rng.normal(size=(4,))}
    grads = [{k: rng.normal(size=v.shape) * (rng.random(v.shape) > 0.2) for k, v in params.items()}
             for _ in range(6)]
    grads[2] = {k: np.zeros_like(v) for k, v in params.items()}  # a step with no gradient at all
    lrs = [0.01, 0.02, 0.005, 0.01, 0.03, 0.01]
    opt = numpy_ref.make_any_optimizer(kind, **hyper)
    p = params
    for g, lr in zip(grads, lrs):
        p = opt.step(p, g, lr)
    tp = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    topt = _torch_optimizer(torch, kind, hyper, list(tp.values()))
    for g, lr in zip(grads, lrs):
        for group in topt.param_groups:
            group["lr"] = lr
        for k, t in tp.items():
            t.grad = torch.tensor(g[k], dtype=torch.float64)
        topt.step()
    for k in params:
        np.testing.assert_allclose(p[k], tp[k].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)


def test_numpy_reference_by_hand():
    """Reference: arithmetic by hand for the numpy reference's adagrad (lr_decay), rmsprop and lamb."""
    # adagrad: s = 1 + 2^2 = 5, p = 1 - 0.1 * 2 / sqrt(5); then s = 6 and clr = 0.1 / (1 + 0.5)
    opt = numpy_ref.make_any_optimizer("adagrad", lr_decay=0.5, initial_accumulator_value=1.0, eps=0.0)
    p1 = opt.step({"a": np.array([1.0])}, {"a": np.array([2.0])}, 0.1)
    p2 = opt.step(p1, {"a": np.array([1.0])}, 0.1)
    np.testing.assert_allclose(p1["a"], [1 - 0.2 / np.sqrt(5)], rtol=1e-12)
    np.testing.assert_allclose(p2["a"], p1["a"] - 0.1 / 1.5 / np.sqrt(6), rtol=1e-12)
    # rmsprop: v = 0.01 * g^2 -> the first move is lr * g / (0.1 |g|) = 10 lr sign(g)
    opt = numpy_ref.make_any_optimizer("rmsprop", eps=0.0)
    np.testing.assert_allclose(opt.step({"a": np.array([1.0, 1.0])}, {"a": np.array([3.0, -0.5])}, 0.01)["a"],
                               [0.9, 1.1], rtol=1e-12)
    # centered: a = 0.01 g, d = sqrt(0.01 g^2 - 1e-4 g^2) = |g| sqrt(0.0099)
    opt = numpy_ref.make_any_optimizer("rmsprop", eps=0.0, centered=True)
    np.testing.assert_allclose(opt.step({"a": np.array([1.0])}, {"a": np.array([3.0])}, 0.01)["a"],
                               [1 - 0.01 / np.sqrt(0.0099)], rtol=1e-12)
    # lamb, first step: r = g / |g| (eps = 0) = [1, -1]; trust = |p| / |r| = 5 / sqrt(2)
    opt = numpy_ref.make_any_optimizer("lamb", eps=0.0)
    q = opt.step({"a": np.array([3.0, 4.0])}, {"a": np.array([0.5, -2.0])}, 0.1)
    np.testing.assert_allclose(q["a"], [3 - 0.5 / np.sqrt(2), 4 + 0.5 / np.sqrt(2)], rtol=1e-12)
    # lamb with a zero weight norm: trust 1
    opt = numpy_ref.make_any_optimizer("lamb", eps=0.0)
    q = opt.step({"a": np.zeros(2)}, {"a": np.array([0.5, -2.0])}, 0.1)
    np.testing.assert_allclose(q["a"], [-0.1, 0.1], rtol=1e-12)
    # the original factory still knows only sgd/adam/adamw
    with pytest.raises(ValueError):
        numpy_ref.make_optimizer("lamb")
    with pytest.raises(ValueError):
        numpy_ref.make_any_optimizer("rmsprop", b1=0.9)


# ---------------------------------------------------------------------------------------------
# 2. Edge cases: zero gradients, lr 0
# ---------------------------------------------------------------------------------------------

ZERO_GRAD_CASES = {
    "adam": ("adam(lr = 0.01)", ("adam", {})),
    "rmsprop_centered_momentum": ("rmsprop(lr = 0.005, momentum = 0.9, centered = true)",
                                  ("rmsprop", {"momentum": 0.9, "centered": True})),
    "rmsprop": ("rmsprop(lr = 0.01)", ("rmsprop", {})),
    "adagrad": ("adagrad(lr = 0.05)", ("adagrad", {})),
    "lamb": ("lamb(lr = 0.01)", ("lamb", {})),
}


@pytest.mark.parametrize("case", sorted(ZERO_GRAD_CASES))
def test_zero_gradient_leaves_weights_finite_and_unchanged(case):
    """Reference: numpy_ref. A dead relu layer (bias -100) gives the first layer and the head's weights an exactly
    zero gradient on every step: they stay finite and unchanged, the head's bias trains as numpy says."""
    spec_opt, (kind, hyper) = ZERO_GRAD_CASES[case]
    init = numpy_ref.init_params([64, HIDDEN, 10], seed=3)
    init["l0.b"] = np.full(HIDDEN, -100.0)
    program, ref = compile_program(spec_opt, act="relu", init=init)
    lrs = [_base_lr(spec_opt) * f for f in LRS[:3]]
    run_steps(program, lrs)
    got = weights(program)
    for k, v in got.items():
        assert np.isfinite(v).all(), k
    for name, st in program.opt_state.items():
        for s, t in st.items():
            assert np.isfinite(t.numpy()).all(), f"{name}.{s}"
    for k in ("l0.W", "l0.b", "l1.W"):
        np.testing.assert_array_equal(got[k], init[k].astype(np.float32), err_msg=k)
    assert not np.allclose(got["l1.b"], init["l1.b"])
    _, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer(kind, **hyper), act="relu")
    assert_weights(program, final)


@pytest.mark.parametrize("case", ["sgd_nesterov_wd", "adam", "adamw", "rmsprop_centered_momentum", "adagrad_lr_decay",
                                  "lamb_wd"])
def test_lr_zero_leaves_weights_unchanged(case):
    """Reference: the initial weights. Three steps at lr 0 (with decoupled decay and l2 on) change nothing."""
    spec_opt, _ = OPT_CASES[case]
    program, ref = compile_program(spec_opt, reg="l2 = 0.01, weight_decay = 0.1")
    run_steps(program, [0.0, 0.0, 0.0])
    got = weights(program)
    for k, v in ref.items():
        np.testing.assert_array_equal(got[k], v.astype(np.float32), err_msg=k)
    for name, st in program.opt_state.items():
        for s, t in st.items():
            assert np.isfinite(t.numpy()).all(), f"{name}.{s}"


# ---------------------------------------------------------------------------------------------
# 3. Regularization in the step
# ---------------------------------------------------------------------------------------------

REG_CASES = {  # name: (optimizer, numpy_ref optimizer, regularization section, numpy_ref.train_steps arguments)
    "l1_sgd": ("sgd(lr = 0.1, momentum = 0.9)", ("sgd", {"momentum": 0.9}), "l1 = 0.003", {"l1": 0.003}),
    "l1_l2_adam": ("adam(lr = 0.01)", ("adam", {}), "l1 = 0.002, l2 = 0.01", {"l1": 0.002, "l2": 0.01}),
    "weight_decay_sgd": ("sgd(lr = 0.1)", ("sgd", {}), "weight_decay = 0.05", {"weight_decay": 0.05}),
    "weight_decay_rmsprop": ("rmsprop(lr = 0.005)", ("rmsprop", {}), "weight_decay = 0.1", {"weight_decay": 0.1}),
    "clip_grad_value_sgd": ("sgd(lr = 0.1)", ("sgd", {}), "clip_grad_value = 0.02", {"clip_value": 0.02}),
    "clip_value_then_norm_lamb": ("lamb(lr = 0.01)", ("lamb", {}), "clip_grad_value = 0.02, clip_grad_norm = 0.05",
                                  {"clip_value": 0.02, "clip": 0.05}),
    "everything_sgd": ("sgd(lr = 0.1, momentum = 0.9)", ("sgd", {"momentum": 0.9}),
                       "l1 = 1e-3, l2 = 1e-2, clip_grad_value = 0.05, clip_grad_norm = 0.5, weight_decay = 0.01",
                       {"l1": 1e-3, "l2": 1e-2, "clip_value": 0.05, "clip": 0.5, "weight_decay": 0.01}),
}


@pytest.mark.parametrize("case", sorted(REG_CASES))
def test_regularization_matches_numpy(case):
    """Reference: numpy_ref.train_steps with l1 / l2 / clip_value / clip / decoupled weight_decay."""
    spec_opt, (kind, hyper), reg, kw = REG_CASES[case]
    program, ref = compile_program(spec_opt, reg=reg)
    lrs = [_base_lr(spec_opt) * f for f in LRS]
    got = run_steps(program, lrs)
    want, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer(kind, **hyper), **kw)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, final)
    # the setting mattered: without it the reference ends elsewhere
    _, plain = ref_run(ref, lrs, numpy_ref.make_any_optimizer(kind, **hyper))
    assert max(np.abs(final[k] - plain[k]).max() for k in final) > 1e-4
    if "clip_value" in kw:  # clipping by value was active on some elements and not on others
        (x, y), = batches(lrs[:1])
        _, g = numpy_ref.loss_and_grads(ref, x, y, ["tanh", None], "cross_entropy", {})
        everything = np.concatenate([np.abs(v).ravel() for v in g.values()])
        assert (everything > kw["clip_value"]).any() and (everything < kw["clip_value"]).any()


def test_elastic_net_is_l1_plus_l2():
    """Reference: a compiled program with the l1 and l2 elastic_net expands to, and numpy_ref with them."""
    en, _ = compile_program("sgd(lr = 0.1, momentum = 0.9)", reg="elastic_net = elastic_net(alpha = 0.01, "
                                                                  "l1_ratio = 0.3)")
    both, ref = compile_program("sgd(lr = 0.1, momentum = 0.9)", reg="l1 = 0.003, l2 = 0.007")
    assert en.spec.regularization.l1 == pytest.approx(0.003) and en.spec.regularization.l2 == pytest.approx(0.007)
    lrs = [0.1 * f for f in LRS]
    got_en, got_both = run_steps(en, lrs), run_steps(both, lrs)
    np.testing.assert_allclose(got_en, got_both, rtol=1e-6, atol=1e-6)
    w_both = weights(both)
    assert_weights(en, w_both, tol=1e-6)
    want, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer("sgd", momentum=0.9), l1=0.003, l2=0.007)
    np.testing.assert_allclose(got_en, want, rtol=1e-5, atol=1e-5)
    assert_weights(en, final)


# ---------------------------------------------------------------------------------------------
# 4. Gradient accumulation
# ---------------------------------------------------------------------------------------------


def test_accumulate_four_batches_of_8_equals_one_batch_of_32():
    """Reference: a compiled program with batch 32 and no accumulation, and numpy_ref on the same 32 examples."""
    from tinygrad import Tensor

    opt, reg = "sgd(lr = 0.1, momentum = 0.9)", "l2 = 0.01, clip_grad_norm = 0.5"
    acc, ref = compile_program(opt, reg=reg + ", accumulate = 4", batch=8, n=64)
    one, _ = compile_program(opt, reg=reg, batch=32, n=64)
    assert acc.accumulate == 4 and acc.train_step is None and one.train_step is not None
    lrs = [0.1, 0.05]
    for s, lr in enumerate(lrs):
        micro = [Tensor(np.arange(s * 32 + i * 8, s * 32 + (i + 1) * 8, dtype=np.int32)) for i in range(4)]
        acc.step(micro, Tensor([lr], dtype="float32"))
        one.step([Tensor(np.arange(s * 32, (s + 1) * 32, dtype=np.int32))], Tensor([lr], dtype="float32"))
        assert_weights(acc, weights(one))
    _, final = numpy_ref.train_steps(ref, batches(lrs, batch=32), ["tanh", None], "cross_entropy", {},
                                     numpy_ref.make_any_optimizer("sgd", momentum=0.9), lrs, l2=0.01, clip=0.5)
    assert_weights(acc, final)
    assert acc.step_count.numpy()[0] == 2  # optimizer steps, not micro-batches


# ---------------------------------------------------------------------------------------------
# 5. Parameter groups and freeze
# ---------------------------------------------------------------------------------------------


def test_frozen_parameters_are_unchanged_and_have_no_state():
    """Reference: the initial weights for the frozen layer, numpy_ref (frozen=...) for the rest."""
    program, ref = compile_program("adam(lr = 0.01, freeze = [body])",
                                   reg="l2 = 0.01, clip_grad_norm = 0.5, weight_decay = 0.01")
    assert program.frozen == ("body.dense0.W", "body.dense0.b")
    assert sorted(program.opt_state) == ["head.dense0.W", "head.dense0.b"]
    lrs = [0.01 * f for f in LRS]
    got = run_steps(program, lrs)
    w = weights(program)
    for k in ("l0.W", "l0.b"):
        np.testing.assert_array_equal(w[k], ref[k].astype(np.float32), err_msg=k)
    want, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer("adam"), l2=0.01, clip=0.5, weight_decay=0.01,
                          frozen=("l0.W", "l0.b"))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, final)
    assert not np.allclose(final["l1.W"], ref["l1.W"])


def test_group_lr_scales_the_move():
    """Reference: the same step with the base lr everywhere (sgd, no momentum: the group's move is exactly
    lr_group / lr_base times it), and numpy_ref with lr_scale over 5 steps with decoupled weight decay."""
    base, ref = compile_program("sgd(lr = 0.1)")
    group, _ = compile_program("sgd(lr = 0.1, groups = { head = { lr = 0.01 } })")
    run_steps(base, [0.2])  # a scheduled lr: the group's lr follows it (0.2 * 0.01 / 0.1)
    run_steps(group, [0.2])
    wb, wg = weights(base), weights(group)
    for k in ("l0.W", "l0.b"):
        np.testing.assert_allclose(wg[k] - ref[k], wb[k] - ref[k], rtol=1e-5, atol=1e-7, err_msg=k)
    for k in ("l1.W", "l1.b"):
        np.testing.assert_allclose(wg[k] - ref[k], 0.1 * (wb[k] - ref[k]), rtol=1e-4, atol=1e-7, err_msg=k)
        assert np.abs(wb[k] - ref[k]).max() > 1e-3

    program, ref = compile_program("sgd(lr = 0.1, momentum = 0.9, groups = { head = { lr = 0.01 } })",
                                   reg="weight_decay = 0.05")
    lrs = [0.1 * f for f in LRS]
    got = run_steps(program, lrs)
    want, final = ref_run(ref, lrs, numpy_ref.make_any_optimizer("sgd", momentum=0.9), weight_decay=0.05,
                          lr_scale={"l1.W": 0.1, "l1.b": 0.1})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, final)


def test_group_weight_decay_applies_only_to_the_group():
    """Reference: numpy_ref with one optimizer per parameter, and the ungrouped compiled step for the body."""
    program, ref = compile_program("sgd(lr = 0.1, momentum = 0.9, groups = { head = { weight_decay = 0.1 } })")
    plain, _ = compile_program("sgd(lr = 0.1, momentum = 0.9)")
    run_steps(program, [0.1])
    run_steps(plain, [0.1])
    wg, wp = weights(program), weights(plain)
    for k in ("l0.W", "l0.b"):  # same gradient at the same weights, no decay
        np.testing.assert_allclose(wg[k], wp[k], rtol=1e-6, atol=1e-7, err_msg=k)
    for k in ("l1.W", "l1.b"):  # first step: buf = g + wd * p, so the move differs by lr * wd * p
        np.testing.assert_allclose(wg[k], wp[k] - 0.1 * 0.1 * ref[k], rtol=1e-5, atol=1e-6, err_msg=k)

    program, ref = compile_program("sgd(lr = 0.1, momentum = 0.9, groups = { head = { weight_decay = 0.1 } })")
    lrs = [0.1 * f for f in LRS]
    got = run_steps(program, lrs)
    body, head = numpy_ref.make_any_optimizer("sgd", momentum=0.9), numpy_ref.make_any_optimizer(
        "sgd", momentum=0.9, weight_decay=0.1)
    per_param = {"l0.W": body, "l0.b": body, "l1.W": head, "l1.b": head}
    want, final = ref_run(ref, lrs, per_param)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert_weights(program, final)


def _lint(optimizer: str):
    return lint(SPEC.format(batch=16, hidden=HIDDEN, act="tanh", optimizer=optimizer, reg=""), "g.train")


def test_lint_unknown_group_name_is_e206_with_did_you_mean():
    """Reference: the diagnostic (code, place, help)."""
    assert _lint("sgd(lr = 0.1, groups = { head = { lr = 0.01 } }, freeze = [body])") == []
    diags = _lint("sgd(lr = 0.1, groups = { haed = { lr = 0.01 } })")
    assert [d.code for d in diags] == ["E206"]
    assert "haed" in diags[0].message and "did you mean 'head'?" in diags[0].help
    diags = _lint("sgd(lr = 0.1, freeze = [bdy])")
    assert [d.code for d in diags] == ["E206"] and "did you mean 'body'?" in diags[0].help


def test_lint_group_setting_unknown_to_the_optimizer_is_e202():
    """Reference: the diagnostic (code, help); a setting of another optimizer is unknown too."""
    diags = _lint("sgd(lr = 0.1, groups = { head = { momentm = 0.9 } })")
    assert [d.code for d in diags] == ["E202"]
    assert "momentm" in diags[0].message and "did you mean 'momentum'?" in diags[0].help
    diags = _lint("rmsprop(lr = 0.01, groups = { head = { lr_decay = 0.1 } })")
    assert [d.code for d in diags] == ["E202"]
    diags = _lint("rmsprop(lr = 0.01, centred = true)")
    assert [d.code for d in diags] == ["E202"] and "did you mean 'centered'?" in diags[0].help


@pytest.mark.parametrize("optimizer,code", [("rmsprop(alpha = 1)", "E304"), ("adagrad(lr_decay = -1)", "E304"),
                                            ("lamb(b2 = 1.5)", "E304"), ("rmsprop(centered = 1)", "E303"),
                                            ("lamb(momentum = 0.9)", "E202")])
def test_lint_bad_optimizer_arguments(optimizer, code):
    """Reference: the schema (the catalogue's signatures)."""
    assert [d.code for d in _lint(optimizer)] == [code]


# ---------------------------------------------------------------------------------------------
# 6. The shipped specs: lint clean and train briefly
# ---------------------------------------------------------------------------------------------


def _train_spec(name: str, tmp_path: Path, epochs: int):
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    path = ROOT / "specs" / f"{name}.train"
    text = path.read_text()
    assert lint(text, str(path)) == []
    text, n = re.subn(r"max\s*=\s*\d+ epochs", f"max = {epochs} epochs", text)
    assert n == 1
    spec = analyze(text, str(path))
    ds = load_data(spec.data, path.parent, spec.run.seed)
    return spec, ds, train(spec, ds, tmp_path / name, Progress(quiet=True))


def test_spec_rmsprop_digits(tmp_path):
    """Reference: a threshold on val.accuracy (the majority class scores 0.10)."""
    spec, _, result = _train_spec("rmsprop_digits", tmp_path, 2)
    assert spec.optimizer.kind == "rmsprop" and dict(spec.optimizer.args)["centered"] is True
    assert result.final["val.accuracy"] >= 0.9


def test_spec_adagrad_diabetes(tmp_path):
    """Reference: the training loss going down and val.rmse below the always-the-mean baseline."""
    spec, _, result = _train_spec("adagrad_diabetes", tmp_path, 6)
    assert spec.optimizer.kind == "adagrad"
    losses = [r["train.loss"] for r in result.history]
    assert losses[-1] < 0.7 * losses[0]
    assert result.final["val.rmse"] < 0.9 * result.baseline["val.rmse"]


def test_spec_finetune_groups(tmp_path):
    """Reference: the frozen block's initial weights (the program lowered from the same spec and seed) against
    model.safetensors; the other layers moved, and val.accuracy above a threshold."""
    from tinygrad.nn.state import safe_load
    from trainc.compiler.lower import lower

    spec, ds, result = _train_spec("finetune_groups", tmp_path, 2)
    assert [g.selector for g in spec.optimizer.groups] == ["body"] and spec.optimizer.freeze == ("features",)
    initial = {k: t.numpy() for k, t in lower(spec, ds.x_train, ds.y_train, ds.x_val, ds.y_val,
                                              n_classes=ds.n_classes).named_params().items()}
    saved = {k: v.numpy() for k, v in safe_load(str(tmp_path / "finetune_groups" / "model.safetensors")).items()}
    frozen = [k for k in initial if k.startswith("features.")]
    assert frozen == ["features.mlp0.dense0.W", "features.mlp0.dense0.b"]
    for k in frozen:
        np.testing.assert_array_equal(saved[k], initial[k], err_msg=k)
    for k, v in initial.items():
        if k not in frozen:
            assert not np.allclose(saved[k], v), k
    assert result.final["val.accuracy"] >= 0.85


def test_spec_accumulate(tmp_path):
    """Reference: the number of optimizer steps (n_train // (batch * 4) per epoch) and a val.accuracy threshold."""
    spec, ds, result = _train_spec("accumulate", tmp_path, 2)
    assert spec.regularization.accumulate == 4
    assert result.steps == 2 * (len(ds.x_train) // (spec.data.batch * 4))
    assert result.final["val.accuracy"] >= 0.9
