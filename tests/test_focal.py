"""The focal loss (Lin et al. 2017) against a numpy reference; gamma = 0 is cross_entropy."""

import numpy as np
import pytest

from trainc.compiler import catalog as C


def _run(kind, pred, y, **args):
    from tinygrad import Tensor, dtypes

    from trainc.compiler.lower import LOSS_IMPL

    return LOSS_IMPL[kind](Tensor(pred.astype(np.float32)), Tensor(y, dtype=dtypes.int32), **args).numpy()


def _reference(pred, y, gamma):
    z = pred.astype(np.float64) - pred.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    logp_t = logp[np.arange(len(y)), y]
    return -((1 - np.exp(logp_t)) ** gamma) * logp_t


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0, 5.0])
def test_focal_matches_numpy(gamma):
    rng = np.random.default_rng(0)
    pred, y = rng.normal(0, 3, (16, 5)), rng.integers(0, 5, 16).astype(np.int32)
    np.testing.assert_allclose(_run("focal", pred, y, gamma=gamma), _reference(pred, y, gamma), rtol=1e-4, atol=1e-6)


def test_gamma_zero_is_cross_entropy():
    rng = np.random.default_rng(1)
    pred, y = rng.normal(0, 2, (32, 4)), rng.integers(0, 4, 32).astype(np.int32)
    np.testing.assert_allclose(_run("focal", pred, y, gamma=0.0), _run("cross_entropy", pred, y), rtol=1e-6, atol=1e-6)


def test_focal_down_weights_easy_examples_and_has_a_finite_gradient():
    from tinygrad import Tensor, dtypes

    from trainc.compiler.lower import LOSS_IMPL

    pred = np.array([[8.0, 0.0, 0.0], [0.0, 0.1, 0.0]])
    y = np.array([0, 0], dtype=np.int32)
    focal, ce = _run("focal", pred, y), _run("cross_entropy", pred, y)
    assert focal[0] < ce[0] * 1e-3 and focal[1] > ce[1] * 0.3  # an easy example counts far less
    p = Tensor(pred.astype(np.float32))
    p.requires_grad = True
    (g,) = LOSS_IMPL["focal"](p, Tensor(y, dtype=dtypes.int32)).mean().gradient(p)
    assert np.isfinite(g.numpy()).all()


def test_catalogue_entry():
    e = C.LOSSES.get("focal")
    assert e.signature == "focal(pred, target, gamma = 2.0)"
    assert e.extra["task"].value == "classification" and e.extra["logits"] and e.extra["softmax"]
