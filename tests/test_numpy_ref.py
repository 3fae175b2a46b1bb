"""Tests of the pure-numpy reference training step (tests/numpy_ref.py).

* finite differences check the hand-written backprop for every loss/activation,
* a few steps are worked out by hand,
* if torch is importable, gradients and 5-step training runs are compared with
  torch in float64 (skipped otherwise).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_ref as ref  # noqa: E402

ACTS = ["relu", "tanh", "sigmoid", "gelu", "leaky_relu", None]

# (loss name, loss_args) pairs; huber with a small delta so both branches are hit
LOSS_CASES = [
    ("cross_entropy", {}),
    ("cross_entropy", {"smoothing": 0.1}),
    ("mse", {}),
    ("mae", {}),
    ("huber", {}),
    ("huber", {"delta": 0.3}),
    ("bce", {}),
]

SIZES = [4, 6, 5, 3]


def make_batch(loss, n=7, n_in=SIZES[0], n_out=SIZES[-1], seed=0):
    rng = np.random.default_rng(1000 + seed)
    x = rng.standard_normal((n, n_in))
    if loss == "cross_entropy":
        y = rng.integers(0, n_out, size=n)
    elif loss == "bce":
        y = rng.integers(0, 2, size=(n, n_out)).astype(np.float64)
    else:
        y = rng.standard_normal((n, n_out))
    return x, y


def numeric_grads(params, x, y, acts, loss, loss_args, l2, h=1e-6):
    out = {}
    for name, p in params.items():
        g = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][idx] += h
            minus[name][idx] -= h
            fp, _ = ref.loss_and_grads(plus, x, y, acts, loss, loss_args, l2)
            fm, _ = ref.loss_and_grads(minus, x, y, acts, loss, loss_args, l2)
            g[idx] = (fp - fm) / (2 * h)
        out[name] = g
    return out


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-8))


# ----------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("l2", [0.0, 0.1])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss,loss_args", LOSS_CASES)
def test_gradients_finite_difference(loss, loss_args, act, l2):
    params = ref.init_params(SIZES, seed=3)
    x, y = make_batch(loss)
    acts = [act, act, None]
    value, grads = ref.loss_and_grads(params, x, y, acts, loss, loss_args, l2)
    assert np.isfinite(value)
    assert list(grads) == list(params)
    num = numeric_grads(params, x, y, acts, loss, loss_args, l2)
    for name in params:
        assert grads[name].shape == params[name].shape
        assert rel_err(grads[name], num[name]) < 1e-6, name


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "gelu"])
def test_gradients_finite_difference_output_activation(act):
    # an activation on the last layer too (e.g. sigmoid output with mse)
    params = ref.init_params([3, 4, 2], seed=5)
    x, y = make_batch("mse", n_in=3, n_out=2)
    acts = ["relu", act]
    _, grads = ref.loss_and_grads(params, x, y, acts, "mse", {}, 0.05)
    num = numeric_grads(params, x, y, acts, "mse", {}, 0.05)
    for name in params:
        assert rel_err(grads[name], num[name]) < 1e-6, name


# ----------------------------------------------------------------------------
# losses / forward by hand
# ----------------------------------------------------------------------------

def test_init_params_layout():
    p = ref.init_params([4, 6, 3], seed=1)
    assert list(p) == ["l0.W", "l0.b", "l1.W", "l1.b"]
    assert p["l0.W"].shape == (4, 6) and p["l0.b"].shape == (6,)
    assert p["l1.W"].shape == (6, 3) and p["l1.b"].shape == (3,)
    assert all(v.dtype == np.float64 for v in p.values())
    q = ref.init_params([4, 6, 3], seed=1)
    assert all(np.array_equal(p[k], q[k]) for k in p)


def test_forward_by_hand():
    p = {"l0.W": np.array([[1.0, -2.0]]), "l0.b": np.array([0.5, 0.0]),
         "l1.W": np.array([[2.0], [3.0]]), "l1.b": np.array([-1.0])}
    x = np.array([[1.0], [-1.0]])
    # hidden pre-act: [1.5, -2], [-0.5, 2]; relu -> [1.5, 0], [0, 2]; out: 2, 5
    np.testing.assert_allclose(ref.forward(p, x, ["relu", None]), [[2.0], [5.0]])
    # leaky: [1.5, -0.02], [-0.005, 2] -> 3 - 0.06 - 1 = 1.94 ; -0.01 + 6 - 1 = 4.99
    np.testing.assert_allclose(ref.forward(p, x, ["leaky_relu", None]), [[1.94], [4.99]])


def test_gelu_tanh_formula():
    z = np.linspace(-4, 4, 17)
    f, _ = ref._act_gelu(z)
    expect = 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
    np.testing.assert_allclose(f, expect, rtol=1e-15, atol=1e-15)


def test_loss_values_by_hand():
    logits = np.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    y = np.array([0, 1])
    # p(correct) = 1/2 and 1/4
    np.testing.assert_allclose(ref.cross_entropy(logits, y), (np.log(2) + np.log(4)) / 2)
    s = 0.2  # target rows: [0.9, 0.1] and [0.1, 0.9]
    ce_s = -(0.9 * np.log(0.5) + 0.1 * np.log(0.5) + 0.1 * np.log(0.75) + 0.9 * np.log(0.25)) / 2
    np.testing.assert_allclose(ref.cross_entropy(logits, y, smoothing=s), ce_s)
    pred, tgt = np.array([[1.0, 2.0]]), np.array([[0.0, 4.0]])
    np.testing.assert_allclose(ref.mse(pred, tgt), (1 + 4) / 2)
    np.testing.assert_allclose(ref.mae(pred, tgt), (1 + 2) / 2)
    np.testing.assert_allclose(ref.huber(pred, tgt), (0.5 + (2 - 0.5)) / 2)
    np.testing.assert_allclose(ref.huber(pred, tgt, delta=3.0), (0.5 + 2.0) / 2)
    z, t = np.array([[0.0, 2.0]]), np.array([[1.0, 0.0]])
    np.testing.assert_allclose(ref.bce(z, t), (np.log(2) + np.log1p(np.exp(2.0))) / 2)


def test_bce_and_ce_are_stable_for_large_logits():
    z = np.array([[1000.0, -1000.0]])
    assert np.isclose(ref.bce(z, np.array([[1.0, 0.0]])), 0.0)
    assert np.isclose(ref.bce(z, np.array([[0.0, 1.0]])), 1000.0)
    assert np.isclose(ref.cross_entropy(z, np.array([1])), 2000.0)


def test_mae_gradient_is_zero_at_zero_error():
    p = {"l0.W": np.array([[1.0]]), "l0.b": np.array([0.0])}
    _, g = ref.loss_and_grads(p, np.array([[2.0]]), np.array([[2.0]]), [None], "mae", {})
    assert g["l0.W"][0, 0] == 0.0 and g["l0.b"][0] == 0.0


def test_l2_only_on_weights():
    p = ref.init_params([3, 2], seed=0)
    x, y = make_batch("mse", n_in=3, n_out=2)
    v0, g0 = ref.loss_and_grads(p, x, y, [None], "mse", {}, 0.0)
    v1, g1 = ref.loss_and_grads(p, x, y, [None], "mse", {}, 0.5)
    np.testing.assert_allclose(v1 - v0, 0.25 * np.sum(p["l0.W"] ** 2), rtol=1e-12)
    np.testing.assert_allclose(g1["l0.W"] - g0["l0.W"], 0.5 * p["l0.W"], rtol=1e-12)
    np.testing.assert_array_equal(g1["l0.b"], g0["l0.b"])


# ----------------------------------------------------------------------------
# optimizers and clipping by hand
# ----------------------------------------------------------------------------

def tiny():
    # pred = w*x + b = 0.5*2 + 0.1 = 1.1, y = 1 -> e = 0.1, loss = 0.01
    # dL/dw = 2*e*x = 0.4 ; dL/db = 2*e = 0.2
    p = {"l0.W": np.array([[0.5]]), "l0.b": np.array([0.1])}
    return p, np.array([[2.0]]), np.array([[1.0]])


def test_tiny_grads_by_hand():
    p, x, y = tiny()
    v, g = ref.loss_and_grads(p, x, y, [None], "mse", {})
    np.testing.assert_allclose(v, 0.01, rtol=1e-12)
    np.testing.assert_allclose(g["l0.W"], [[0.4]], rtol=1e-12)
    np.testing.assert_allclose(g["l0.b"], [0.2], rtol=1e-12)
    v, g = ref.loss_and_grads(p, x, y, [None], "mse", {}, l2=0.1)
    np.testing.assert_allclose(v, 0.01 + 0.05 * 0.25, rtol=1e-12)
    np.testing.assert_allclose(g["l0.W"], [[0.4 + 0.05]], rtol=1e-12)
    np.testing.assert_allclose(g["l0.b"], [0.2], rtol=1e-12)


def test_sgd_step_by_hand():
    p, x, y = tiny()
    opt = ref.make_optimizer("sgd")
    losses, q = ref.train_steps(p, [(x, y)], [None], "mse", {}, opt, [0.1])
    np.testing.assert_allclose(losses, [0.01], rtol=1e-12)
    np.testing.assert_allclose(q["l0.W"], [[0.5 - 0.1 * 0.4]], rtol=1e-12)
    np.testing.assert_allclose(q["l0.b"], [0.1 - 0.1 * 0.2], rtol=1e-12)
    assert p["l0.W"][0, 0] == 0.5 and p["l0.b"][0] == 0.1  # inputs not mutated


def test_sgd_momentum_by_hand():
    p, x, y = tiny()
    opt = ref.make_optimizer("sgd", momentum=0.9)
    # step 1: buf = g -> w = 0.46, b = 0.08 ; then pred = 0.46*2 + 0.08 = 1.0 -> g = 0
    # step 2: buf = 0.9*buf -> w = 0.46 - 0.1*0.36 = 0.424, b = 0.08 - 0.1*0.18 = 0.062
    losses, q = ref.train_steps(p, [(x, y), (x, y)], [None], "mse", {}, opt, [0.1, 0.1])
    np.testing.assert_allclose(losses, [0.01, 0.0], atol=1e-15)
    np.testing.assert_allclose(q["l0.W"], [[0.424]], rtol=1e-12)
    np.testing.assert_allclose(q["l0.b"], [0.062], rtol=1e-12)


def test_sgd_nesterov_and_weight_decay_by_hand():
    p, x, y = tiny()
    # nesterov first step: g + 0.9*buf = 1.9*g
    q = ref.make_optimizer("sgd", momentum=0.9, nesterov=True).step(p, {"l0.W": np.array([[0.4]]),
                                                                        "l0.b": np.array([0.2])}, 0.1)
    np.testing.assert_allclose(q["l0.W"], [[0.5 - 0.1 * 1.9 * 0.4]], rtol=1e-12)
    np.testing.assert_allclose(q["l0.b"], [0.1 - 0.1 * 1.9 * 0.2], rtol=1e-12)
    # coupled weight decay: g + wd*p (biases included)
    q = ref.make_optimizer("sgd", weight_decay=0.5).step(p, {"l0.W": np.array([[0.4]]),
                                                             "l0.b": np.array([0.2])}, 0.1)
    np.testing.assert_allclose(q["l0.W"], [[0.5 - 0.1 * (0.4 + 0.25)]], rtol=1e-12)
    np.testing.assert_allclose(q["l0.b"], [0.1 - 0.1 * (0.2 + 0.05)], rtol=1e-12)
    with pytest.raises(ValueError):
        ref.make_optimizer("sgd", nesterov=True)


def test_adam_first_step_is_lr_sign():
    params = ref.init_params(SIZES, seed=2)
    x, y = make_batch("mse")
    _, g = ref.loss_and_grads(params, x, y, ["tanh", "tanh", None], "mse", {})
    lr = 0.01
    q = ref.make_optimizer("adam").step(params, g, lr)
    for k in params:
        # mhat = g, vhat = g**2 on the first step: the move is lr * g / (|g| + eps) ~ lr * sign(g)
        np.testing.assert_allclose(q[k] - params[k], -lr * g[k] / (np.abs(g[k]) + 1e-8), rtol=1e-9)
        np.testing.assert_allclose(q[k] - params[k], -lr * np.sign(g[k]), rtol=1e-3)
    wd = 0.1
    q = ref.make_optimizer("adamw", weight_decay=wd).step(params, g, lr)
    for k in params:  # decoupled decay on every parameter, biases included
        np.testing.assert_allclose(q[k], params[k] * (1 - lr * wd) - lr * g[k] / (np.abs(g[k]) + 1e-8), rtol=1e-9)


def test_adam_second_step_by_hand():
    p = {"a": np.array([1.0])}
    opt = ref.make_optimizer("adam", b1=0.5, b2=0.75, eps=0.0)
    p1 = opt.step(p, {"a": np.array([2.0])}, 0.1)
    p2 = opt.step(p1, {"a": np.array([-1.0])}, 0.2)
    m = 0.5 * (0.5 * 2.0) + 0.5 * -1.0          # 0
    assert m == 0.0
    np.testing.assert_allclose(p2["a"], [1.0 - 0.1], rtol=1e-12)
    p3 = opt.step(p2, {"a": np.array([4.0])}, 0.1)
    m = 0.5 * 0.0 + 0.5 * 4.0                    # 2
    v = 0.75 * (0.75 * 0.25 * 4 + 0.25 * 1) + 0.25 * 16
    mhat, vhat = m / (1 - 0.5 ** 3), v / (1 - 0.75 ** 3)
    np.testing.assert_allclose(p3["a"], [0.9 - 0.1 * mhat / np.sqrt(vhat)], rtol=1e-12)


def test_clip_grads():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}  # global norm 5
    c = ref.clip_grads(g, 1.0)
    np.testing.assert_allclose(ref.grad_norm(c), 1.0, rtol=1e-6)
    np.testing.assert_allclose(c["a"], g["a"] * (1.0 / (5.0 + 1e-6)), rtol=1e-15)
    u = ref.clip_grads(g, 10.0)
    for k in g:
        np.testing.assert_array_equal(u[k], g[k])
    assert g["a"][0] == 3.0  # not mutated


def test_train_steps_decreases_loss():
    params = ref.init_params([4, 8, 3], seed=0)
    x, y = make_batch("cross_entropy", n=32, n_out=3)
    opt = ref.make_optimizer("adam")
    losses, _ = ref.train_steps(params, [(x, y)] * 50, ["relu", None], "cross_entropy", {}, opt,
                                [0.05] * 50, l2=1e-4, clip=5.0)
    assert len(losses) == 50 and losses[-1] < 0.5 * losses[0]


def test_bad_arguments():
    params = ref.init_params([2, 2], seed=0)
    x, y = make_batch("mse", n_in=2, n_out=2)
    with pytest.raises(ValueError):
        ref.loss_and_grads(params, x, y, [None, None], "mse", {})
    with pytest.raises(ValueError):
        ref.loss_and_grads(params, x, y, ["swish"], "mse", {})
    with pytest.raises(ValueError):
        ref.loss_and_grads(params, x, y, [None], "hinge", {})
    with pytest.raises(ValueError):
        ref.make_optimizer("rmsprop")
    with pytest.raises(ValueError):
        ref.make_optimizer("adam", momentum=0.9)
    with pytest.raises(ValueError):
        ref.train_steps(params, [(x, y)], [None], "mse", {}, ref.make_optimizer("sgd"), [0.1, 0.1])


# ----------------------------------------------------------------------------
# torch cross-check (float64), skipped without torch
# ----------------------------------------------------------------------------

def _torch_act(torch, name):
    F = torch.nn.functional
    return {
        "relu": F.relu,
        "tanh": torch.tanh,
        "sigmoid": torch.sigmoid,
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
        "leaky_relu": lambda z: F.leaky_relu(z, negative_slope=0.01),
        None: lambda z: z,
    }[name]


def _torch_loss(torch, out, y, loss, loss_args):
    F = torch.nn.functional
    if loss == "cross_entropy":
        return F.cross_entropy(out, torch.as_tensor(y, dtype=torch.long),
                               label_smoothing=loss_args.get("smoothing", 0.0))
    yt = torch.as_tensor(y, dtype=torch.float64)
    if loss == "mse":
        return F.mse_loss(out, yt)
    if loss == "mae":
        return F.l1_loss(out, yt)
    if loss == "huber":
        return F.huber_loss(out, yt, delta=loss_args.get("delta", 1.0))
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(out, yt)
    raise ValueError(loss)


def _torch_loss_value(torch, tp, x, y, acts, loss, loss_args, l2):
    h = torch.as_tensor(x, dtype=torch.float64)
    names = [k[:-2] for k in tp if k.endswith(".W")]
    for name, act in zip(names, acts):
        h = _torch_act(torch, act)(h @ tp[name + ".W"] + tp[name + ".b"])
    value = _torch_loss(torch, h, y, loss, loss_args)
    if l2:
        value = value + 0.5 * l2 * sum((tp[n + ".W"] ** 2).sum() for n in names)
    return value


def _torch_params(torch, params):
    return {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}


@pytest.mark.parametrize("l2", [0.0, 0.01])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("loss,loss_args", LOSS_CASES)
def test_grads_match_torch(loss, loss_args, act, l2):
    torch = pytest.importorskip("torch")
    params = ref.init_params(SIZES, seed=11)
    x, y = make_batch(loss, seed=4)
    acts = [act, act, None]
    value, grads = ref.loss_and_grads(params, x, y, acts, loss, loss_args, l2)
    tp = _torch_params(torch, params)
    tv = _torch_loss_value(torch, tp, x, y, acts, loss, loss_args, l2)
    tv.backward()
    np.testing.assert_allclose(value, tv.item(), rtol=1e-12, atol=1e-14)
    for k in params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=k)


TRAIN_CASES = [
    # (loss, loss_args, acts, optimizer kind, hyper, l2, clip)
    ("cross_entropy", {"smoothing": 0.1}, ["relu", "gelu", None], "sgd", {}, 0.0, None),
    ("cross_entropy", {}, ["gelu", "tanh", None], "sgd", {"momentum": 0.9}, 0.01, 0.25),  # clips on some steps only
    ("mse", {}, ["tanh", "sigmoid", None], "sgd", {"momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
     0.001, 0.3),
    ("huber", {"delta": 0.5}, ["leaky_relu", "relu", None], "sgd", {"momentum": 0.9, "nesterov": True}, 0.0, 100.0),
    ("mae", {}, ["sigmoid", "tanh", None], "adam", {}, 0.01, 0.2),
    ("bce", {}, ["gelu", "leaky_relu", None], "adam", {"b1": 0.8, "b2": 0.99, "eps": 1e-6}, 0.0, None),
    ("cross_entropy", {"smoothing": 0.05}, ["tanh", "relu", None], "adamw", {}, 0.005, 0.4),
    ("mse", {}, ["relu", "gelu", None], "adamw", {"weight_decay": 0.1, "b1": 0.85}, 0.0, None),
    ("huber", {}, ["gelu", "gelu", None], "adam", {"weight_decay": 0.02}, 0.0, 1.0),
]


def _torch_optimizer(torch, kind, hyper, tparams):
    plist = list(tparams.values())
    if kind == "sgd":
        return torch.optim.SGD(plist, lr=0.0, momentum=hyper.get("momentum", 0.0),
                               nesterov=hyper.get("nesterov", False), weight_decay=hyper.get("weight_decay", 0.0))
    betas = (hyper.get("b1", 0.9), hyper.get("b2", 0.999))
    eps = hyper.get("eps", 1e-8)
    if kind == "adam":
        return torch.optim.Adam(plist, lr=0.0, betas=betas, eps=eps, weight_decay=hyper.get("weight_decay", 0.0))
    return torch.optim.AdamW(plist, lr=0.0, betas=betas, eps=eps, weight_decay=hyper.get("weight_decay", 0.01))


@pytest.mark.parametrize("case", range(len(TRAIN_CASES)))
def test_training_matches_torch(case):
    torch = pytest.importorskip("torch")
    loss, loss_args, acts, kind, hyper, l2, clip = TRAIN_CASES[case]
    params = ref.init_params(SIZES, seed=20 + case)
    batches = [make_batch(loss, n=6, seed=100 * case + i) for i in range(5)]
    lrs = [0.1, 0.05, 0.08, 0.02, 0.03] if kind == "sgd" else [0.01, 0.02, 0.005, 0.015, 0.01]

    losses, final = ref.train_steps(params, batches, acts, loss, loss_args,
                                    ref.make_optimizer(kind, **hyper), lrs, l2=l2, clip=clip)

    tp = _torch_params(torch, params)
    opt = _torch_optimizer(torch, kind, hyper, tp)
    t_losses = []
    for (x, y), lr in zip(batches, lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        opt.zero_grad()
        value = _torch_loss_value(torch, tp, x, y, acts, loss, loss_args, l2)
        value.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(list(tp.values()), clip)
        opt.step()
        t_losses.append(value.item())

    np.testing.assert_allclose(losses, t_losses, rtol=1e-10, atol=1e-12)
    for k in params:
        np.testing.assert_allclose(final[k], tp[k].detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=k)
    # the parameters actually moved
    assert any(not np.allclose(final[k], params[k]) for k in params)
