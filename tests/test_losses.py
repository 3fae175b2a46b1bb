"""The losses of `compiler/lower/losses.py`, each against an independent reference:

- per-example values against numpy written from the formula in the catalogue's docstring (float64),
  and against PyTorch's own functions where torch is installed (an extra: those tests skip without it);
- edge cases: a class absent from a batch, logits of +-1e4, pairs at distance 0, evaluation's masked
  padding rows;
- gradients of the batch mean through tinygrad's `.gradient` against central finite differences of
  the numpy reference in float64;
- the static checks (`trainc.compiler.lint`) on the new arguments;
- each new spec in specs/ lints clean and trains briefly in process to a concrete outcome.

References: PyTorch BCEWithLogitsLoss, CrossEntropyLoss, MultiMarginLoss, KLDivLoss and
TripletMarginLoss; Keras' `class_weight` for weighted means; Hermans, Beyer and Leibe 2017 ("In
Defense of the Triplet Loss for Person Re-Identification": batch-hard triplets); Hadsell, Chopra and
LeCun 2006 ("Dimensionality Reduction by Learning an Invariant Mapping": the contrastive loss).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from trainc.compiler import analyze, lint
from trainc.compiler import catalog as C

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]
SPECS = ROOT / "specs"
DIGITS_CSV = ROOT / "examples" / "data" / "digits.csv"
DIABETES_CSV = ROOT / "examples" / "data" / "diabetes.csv"
NEW_SPECS = ["linear_svm", "imbalanced_digits", "embedding_triplet", "embedding_contrastive", "distill_kl"]


# ---------------------------------------------------------------------------------------------
# Helpers: running a loss, and the numpy references (float64, written from the formulas)
# ---------------------------------------------------------------------------------------------


def _tensor(a: np.ndarray):
    from tinygrad import Tensor, dtypes

    return Tensor(a.astype(np.int32), dtype=dtypes.int32) if a.dtype.kind in "iu" else Tensor(a.astype(np.float32))


def _loss(kind: str, pred: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, **args) -> np.ndarray:
    """Per-example values [B] of LOSS_IMPL[kind], as float64."""
    from trainc.compiler.lower import LOSS_IMPL

    extra = {"mask": _tensor(mask.astype(np.float32))} if mask is not None else {}
    out = LOSS_IMPL[kind](_tensor(pred), _tensor(y), **args, **extra).numpy()
    assert out.shape == (len(pred),)  # one value per example
    return out.astype(np.float64)


def _grad(kind: str, pred: np.ndarray, y: np.ndarray, **args) -> np.ndarray:
    """d mean(loss) / d pred through tinygrad's autograd."""
    from trainc.compiler.lower import LOSS_IMPL

    p = _tensor(pred)
    p.requires_grad = True
    (g,) = LOSS_IMPL[kind](p, _tensor(y), **args).mean().gradient(p)
    return g.numpy().astype(np.float64)


def _finite_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of a scalar numpy function, in float64."""
    g = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        up, down = x.astype(np.float64), x.astype(np.float64)
        up[i] += h
        down[i] -= h
        g[i] = (f(up) - f(down)) / (2 * h)
    return g


def log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def np_bce(z, y, pos_weight=1.0):
    """-[pos_weight*y*log σ(z) + (1-y)*log(1-σ(z))] with log(1-σ(z)) = log σ(-z)."""
    z, y = z.reshape(-1).astype(np.float64), y.reshape(-1).astype(np.float64)
    return -(pos_weight * y * log_sigmoid(z) + (1 - y) * log_sigmoid(-z))


def np_cross_entropy(z, y, smoothing=0.0, weights=None):
    """-w[y] * sum_k t_k log softmax(z)_k, t = (1-s)*onehot(y) + s/K."""
    n, k = z.shape
    t = np.full((n, k), smoothing / k)
    t[np.arange(n), y] += 1 - smoothing
    loss = -(t * log_softmax(z.astype(np.float64))).sum(1)
    return loss * (np.asarray(weights, np.float64)[y] if weights is not None else 1.0)


def np_hinge(z, y, margin=1.0):
    """One logit: max(0, margin - s*z), s = +1 for class 1, -1 for class 0. K logits:
    sum_{j != y} max(0, margin - z_y + z_j) / K."""
    z = z.astype(np.float64)
    n, k = z.shape
    if k == 1:
        s = np.where(y > 0, 1.0, -1.0)
        return np.maximum(0.0, margin - s * z[:, 0])
    out = np.zeros(n)
    for i in range(n):
        for j in range(k):
            if j != y[i]:
                out[i] += max(0.0, margin - z[i, y[i]] + z[i, j])
    return out / k


def np_kl_div(z, t):
    """sum_k t_k (log t_k - log softmax(z)_k), terms with t_k = 0 count 0."""
    logq = log_softmax(z.astype(np.float64))
    t = t.astype(np.float64)
    terms = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - logq), 0.0)
    return terms.sum(1)


def np_dist(e):
    diff = e[:, None, :].astype(np.float64) - e[None, :, :]
    return np.sqrt((diff ** 2).sum(-1))


def np_triplet(e, y, margin=1.0, mask=None):
    """Batch-hard (Hermans et al. 2017), anchor by anchor, over the real examples only."""
    n = len(e)
    real = np.ones(n, bool) if mask is None else mask > 0
    d = np_dist(e)
    out = np.zeros(n)
    for a in range(n):
        if not real[a]:
            continue
        pos = [d[a, p] for p in range(n) if p != a and real[p] and y[p] == y[a]]
        neg = [d[a, q] for q in range(n) if real[q] and y[q] != y[a]]
        if pos and neg:
            out[a] = max(0.0, max(pos) - min(neg) + margin)
    return out


def np_hardest(e, y):
    """(anchor, positive, negative) index triples of the batch-hard rule, for anchors that have both."""
    d = np_dist(e)
    triples = []
    for a in range(len(e)):
        pos = [p for p in range(len(e)) if p != a and y[p] == y[a]]
        neg = [q for q in range(len(e)) if y[q] != y[a]]
        if pos and neg:
            triples.append((a, max(pos, key=lambda p: d[a, p]), min(neg, key=lambda q: d[a, q])))
    return triples


def np_contrastive(e, y, margin=1.0, mask=None):
    """Per example i: mean over real j != i of d^2 (same label) or max(0, margin - d)^2 (different)."""
    n = len(e)
    real = np.ones(n, bool) if mask is None else mask > 0
    d = np_dist(e)
    out = np.zeros(n)
    for i in range(n):
        terms = [d[i, j] ** 2 if y[i] == y[j] else max(0.0, margin - d[i, j]) ** 2
                 for j in range(n) if j != i and real[j]]
        if real[i] and terms:
            out[i] = sum(terms) / len(terms)
    return out


# ---------------------------------------------------------------------------------------------
# 1. The catalogue
# ---------------------------------------------------------------------------------------------


def test_every_loss_in_the_catalogue_has_an_implementation_and_a_one_line_formula():
    from trainc.compiler.lower import LOSS_IMPL

    assert set(C.LOSSES.names()) == set(LOSS_IMPL)
    for name in ("bce", "cross_entropy", "hinge", "kl_div", "triplet", "contrastive"):
        doc = C.LOSSES.get(name).doc
        assert doc and "\n" not in doc, name


def test_signatures_are_the_schemas():
    sig = {n: C.LOSSES.get(n).signature for n in ("bce", "cross_entropy", "hinge", "kl_div", "triplet", "contrastive")}
    assert sig == {
        "bce": "bce(pred, target, pos_weight = 1.0)",
        "cross_entropy": "cross_entropy(pred, target, smoothing = 0.0, weights = none)",
        "hinge": "hinge(pred, target, margin = 1.0)",
        "kl_div": "kl_div(pred, target)",
        "triplet": "triplet(pred, target, margin = 1.0)",
        "contrastive": "contrastive(pred, target, margin = 1.0)",
    }
    w = C.LOSSES.get("cross_entropy").param("weights").type
    assert isinstance(w, C.NumList) and w.words == ("balanced",)
    tasks = {n: C.LOSSES.get(n).extra["task"].value for n in ("hinge", "kl_div", "triplet", "contrastive")}
    assert tasks == {"hinge": "classification", "kl_div": "regression", "triplet": "classification",
                     "contrastive": "classification"}


def test_embedding_losses_are_marked_and_pairwise():
    from trainc.compiler.lower.losses import PAIRWISE

    marked = {n for n in C.LOSSES.names() if C.LOSSES.get(n).extra.get("embedding")}
    assert marked == {"triplet", "contrastive"}
    assert {k for k, v in PAIRWISE.items() if v} == {"triplet", "contrastive"}


# ---------------------------------------------------------------------------------------------
# 2. Per-example values against numpy (and torch where installed)
# ---------------------------------------------------------------------------------------------

BIG = np.array([[-1e4], [-100.0], [-20.0], [-1.0], [0.0], [0.5], [30.0], [100.0], [1e4], [-3.0], [7.0], [1e4]])
BIG_Y = np.array([1, 0, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1])


@pytest.mark.parametrize("pos_weight", [1.0, 0.25, 3.0])
def test_bce_pos_weight_against_the_formula(pos_weight):
    """BCEWithLogitsLoss's pos_weight, written out: -[pw*y*log σ(x) + (1-y)*log(1-σ(x))]."""
    got = _loss("bce", BIG, BIG_Y, pos_weight=pos_weight)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_bce(BIG, BIG_Y, pos_weight), rtol=1e-6, atol=1e-6)
    # by hand: a wrong confident logit costs |x| (times pos_weight when the label is 1), a right one 0
    assert got[0] == pytest.approx(pos_weight * 1e4, rel=1e-6)
    assert got[8] == pytest.approx(1e4, rel=1e-6)
    assert abs(got[11]) < 1e-6 and abs(got[1]) < 1e-6
    assert got[4] == pytest.approx(pos_weight * math.log(2), rel=1e-6)


def test_bce_pos_weight_against_torch():
    """torch.nn.BCEWithLogitsLoss(pos_weight=..., reduction='none')."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 5, (9, 1)), BIG])
    y = np.concatenate([rng.integers(0, 2, 9), BIG_Y])
    want = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([2.5], dtype=torch.float64), reduction="none")(
        torch.tensor(z[:, 0]), torch.tensor(y.astype(np.float64))).numpy()
    np.testing.assert_allclose(_loss("bce", z, y, pos_weight=2.5), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_class_weights_against_the_formula(smoothing):
    """-w[y] * sum_k t_k log softmax(x)_k: the example's true class's weight multiplies its loss."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, (8, 4))
    z[0] = [1e4, -1e4, 0.0, 5.0]  # large logits stay finite
    y = np.array([1, 0, 2, 3, 3, 1, 0, 2])
    w = (0.5, 2.0, 1.0, 4.0)
    got = _loss("cross_entropy", z, y, smoothing=smoothing, weights=w)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_cross_entropy(z, y, smoothing, w), rtol=1e-5, atol=1e-5)
    plain = _loss("cross_entropy", z, y, smoothing=smoothing)
    np.testing.assert_allclose(got, plain * np.array(w)[y], rtol=1e-6, atol=1e-6)
    # Keras' class_weight: the batch mean divides by the batch size B, not by sum(w[y])
    assert got.mean() == pytest.approx((plain * np.array(w)[y]).sum() / len(y), rel=1e-6)


def test_cross_entropy_class_weights_against_torch():
    """torch.nn.CrossEntropyLoss(weight=w, reduction='none'): the same per-example values; torch's
    weighted *mean* divides by sum(w[y]) where trainc (Keras' convention) divides by the batch size."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, (7, 3))
    y = np.array([0, 1, 2, 2, 1, 0, 2])
    w = (1.0, 3.0, 0.5)
    args = (torch.tensor(z), torch.tensor(y.astype(np.int64)))
    want = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float64), reduction="none")(*args).numpy()
    got = _loss("cross_entropy", z, y, weights=w)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    torch_mean = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float64))(*args).item()
    assert torch_mean == pytest.approx(want.sum() / np.array(w)[y].sum(), rel=1e-9)
    assert got.mean() == pytest.approx(want.sum() / len(y), rel=1e-5) and got.mean() != pytest.approx(torch_mean)
    # without weights, label smoothing matches torch's label_smoothing (with weights torch also
    # weights the smoothing term class by class, so only the unweighted case is compared)
    want = torch.nn.CrossEntropyLoss(label_smoothing=0.2, reduction="none")(*args).numpy()
    np.testing.assert_allclose(_loss("cross_entropy", z, y, smoothing=0.2), want, rtol=1e-5, atol=1e-6)


def test_balanced_weights_with_a_class_absent():
    """`balanced` = n / (K * count_k) (scikit-learn); a class with no training example stays finite,
    and a batch without some class is an ordinary batch."""
    from trainc.compiler.lower import _class_weights

    np.testing.assert_allclose(_class_weights("balanced", np.array([30, 10, 60])),
                               [100 / (3 * 30), 100 / (3 * 10), 100 / (3 * 60)], rtol=1e-12)
    w = _class_weights("balanced", np.array([30, 10, 0, 60]))  # class 2 never seen in training
    assert np.isfinite(w).all() and len(w) == 4
    assert w[2] > w[1] > w[0] > w[3]  # rarer classes weigh more
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, (6, 4))
    y = np.array([0, 0, 1, 3, 3, 3])  # class 2 absent from the batch
    got = _loss("cross_entropy", z, y, weights=w)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_cross_entropy(z, y, 0.0, w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("margin", [1.0, 0.5, 2.0])
def test_hinge_binary_one_logit(margin):
    """max(0, margin - s*x), labels {0, 1} -> s = -1, +1 (the soft-margin SVM's loss)."""
    z = np.array([[0.3], [2.0], [-0.5], [0.2], [-3.0], [0.0], [1e4], [-1e4], [1e4]])
    y = np.array([1, 1, 0, 0, 1, 0, 0, 1, 1])
    got = _loss("hinge", z, y, margin=margin)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_hinge(z, y, margin), rtol=1e-6, atol=1e-6)
    # by hand
    assert got[0] == pytest.approx(max(0.0, margin - 0.3), abs=1e-6)
    assert got[2] == pytest.approx(max(0.0, margin - 0.5), abs=1e-6)
    assert got[3] == pytest.approx(margin + 0.2, abs=1e-6)
    assert got[5] == pytest.approx(margin, abs=1e-6)
    assert got[6] == pytest.approx(1e4 + margin, rel=1e-6) and got[8] == 0.0


@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_hinge_multiclass(margin):
    """sum_{j != y} max(0, margin - x_y + x_j) / K, PyTorch's MultiMarginLoss with p = 1."""
    rng = np.random.default_rng(4)
    z = rng.normal(0, 1.5, (9, 5))
    z[0] = [1e4, -1e4, 0.0, 3.0, -2.0]
    y = np.array([1, 0, 4, 2, 2, 3, 1, 0, 4])
    got = _loss("hinge", z, y, margin=margin)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, np_hinge(z, y, margin), rtol=1e-5, atol=1e-5)
    # by hand: scores (2, 0, 0.5), class 0, margin 1: max(0, 1-2+0) + max(0, 1-2+0.5) = 0
    # class 2: max(0, 1-0.5+2) + max(0, 1-0.5+0) = 3, over K = 3 -> 1
    two = _loss("hinge", np.array([[2.0, 0.0, 0.5]] * 2), np.array([0, 2]))
    np.testing.assert_allclose(two, [0.0, 1.0], atol=1e-6)


def test_hinge_multiclass_against_torch():
    """torch.nn.MultiMarginLoss(margin, reduction='none')."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    z = rng.normal(0, 1, (10, 4))
    y = rng.integers(0, 4, 10)
    want = torch.nn.MultiMarginLoss(margin=0.7, reduction="none")(torch.tensor(z),
                                                                    torch.tensor(y.astype(np.int64))).numpy()
    np.testing.assert_allclose(_loss("hinge", z, y, margin=0.7), want, rtol=1e-5, atol=1e-6)


def _distributions(rng, n, k, zeros=True):
    t = rng.dirichlet(np.ones(k), n)
    if zeros:
        t[0] = 0.0
        t[0, 1] = 1.0  # one-hot: 0*log 0 terms
        t[1, 0] = 0.0
        t[1] /= t[1].sum()
    return t


def test_kl_div_against_the_formula():
    """sum_k t_k (log t_k - log softmax(x)_k), with 0*log 0 = 0."""
    rng = np.random.default_rng(6)
    z = rng.normal(0, 2, (6, 3))
    z[2] = [1e4, -1e4, 0.0]  # large logits stay finite
    t = _distributions(rng, 6, 3)
    got = _loss("kl_div", z, t)
    assert np.isfinite(got).all() and (got >= -1e-6).all()
    np.testing.assert_allclose(got, np_kl_div(z, t), rtol=1e-5, atol=1e-5)
    # a one-hot target: KL is the cross-entropy; the target itself as the prediction: KL = 0
    assert got[0] == pytest.approx(-log_softmax(z[:1])[0, 1], rel=1e-5)
    same = _loss("kl_div", np.log(t[3:]), t[3:])
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_kl_div_against_torch():
    """torch.nn.KLDivLoss(reduction='none', log_target=False)(log_softmax(x), t), summed per example."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    z = rng.normal(0, 2, (8, 4))
    t = _distributions(rng, 8, 4)
    want = torch.nn.KLDivLoss(reduction="none", log_target=False)(torch.log_softmax(torch.tensor(z), -1),
                                                                   torch.tensor(t)).sum(1).numpy()
    np.testing.assert_allclose(_loss("kl_div", z, t), want, rtol=1e-5, atol=1e-6)


EMB = np.random.default_rng(8).normal(0, 1, (10, 3))
EMB_Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 3, 0])  # class 3 has one example: an anchor without positive


@pytest.mark.parametrize("margin", [1.0, 3.0])
def test_triplet_batch_hard_against_the_formula(margin):
    """Per anchor: max(0, max_p d(a,p) - min_n d(a,n) + margin) (Hermans et al. 2017)."""
    got = _loss("triplet", EMB, EMB_Y, margin=margin)
    np.testing.assert_allclose(got, np_triplet(EMB, EMB_Y, margin), rtol=1e-5, atol=1e-5)
    assert got[8] == 0.0  # no other example of class 3
    assert (got[EMB_Y != 3] > 0).any()


def test_triplet_by_hand():
    # on a line: a = 0, positives at 1 and 3, negatives at 2 and 10; margin 1 -> max(0, 3 - 2 + 1) = 2
    e = np.array([[0.0], [1.0], [3.0], [2.0], [10.0]])
    y = np.array([0, 0, 0, 1, 1])
    assert _loss("triplet", e, y)[0] == pytest.approx(2.0, abs=1e-5)
    # every example of one class: no negatives, all 0; every class once: no positives, all 0
    assert (_loss("triplet", e, np.zeros(5, np.int64)) == 0).all()
    assert (_loss("triplet", e, np.arange(5)) == 0).all()


def test_triplet_against_torch_on_the_hardest_triplets():
    """torch.nn.TripletMarginLoss(margin, p=2, reduction='none') on the triplets the batch-hard rule picks."""
    torch = pytest.importorskip("torch")
    triples = np_hardest(EMB, EMB_Y)
    a, p, n = (torch.tensor(EMB[list(ix)]) for ix in zip(*triples))
    want = torch.nn.TripletMarginLoss(margin=1.0, p=2, reduction="none")(a, p, n).numpy()
    got = _loss("triplet", EMB, EMB_Y)
    np.testing.assert_allclose(got[[t[0] for t in triples]], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_contrastive_against_the_formula(margin):
    """Mean over j != i of d^2 (same label) or max(0, margin - d)^2 (Hadsell et al. 2006 without the 1/2)."""
    got = _loss("contrastive", EMB, EMB_Y, margin=margin)
    np.testing.assert_allclose(got, np_contrastive(EMB, EMB_Y, margin), rtol=1e-5, atol=1e-5)


def test_contrastive_by_hand():
    # two points 0.5 apart: same label -> 0.25; different labels, margin 1 -> (1 - 0.5)^2 = 0.25,
    # margin 0.4 -> 0; three points: example 0 averages its two pairs
    e = np.array([[0.0, 0.0], [0.3, 0.4]])
    np.testing.assert_allclose(_loss("contrastive", e, np.array([1, 1])), [0.25, 0.25], atol=1e-6)
    np.testing.assert_allclose(_loss("contrastive", e, np.array([0, 1])), [0.25, 0.25], atol=1e-6)
    np.testing.assert_allclose(_loss("contrastive", e, np.array([0, 1]), margin=0.4), [0.0, 0.0], atol=1e-6)
    three = _loss("contrastive", np.array([[0.0], [2.0], [0.5]]), np.array([0, 0, 1]))
    assert three[0] == pytest.approx((4.0 + 0.25) / 2, abs=1e-5)


def test_zero_distance_pairs():
    """Identical embeddings: same label costs 0, different labels cost margin^2 (contrastive) and make
    the hardest negative 0 away (triplet); values and gradients stay finite."""
    e = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [4.0, 6.0]])
    y = np.array([0, 0, 1, 1])
    c = _loss("contrastive", e, y, margin=1.0)
    np.testing.assert_allclose(c[:3], np_contrastive(e, y, 1.0)[:3], atol=1e-5)
    assert c[0] == pytest.approx((0 + 1 + 0) / 3, abs=1e-5)  # pairs: same at 0, different at 0, different at 5
    t = _loss("triplet", e, y, margin=1.0)
    np.testing.assert_allclose(t, np_triplet(e, y, 1.0), atol=1e-5)
    assert t[0] == pytest.approx(1.0, abs=1e-5)  # d_ap = 0, d_an = 0
    for kind in ("triplet", "contrastive"):
        g = _grad(kind, e, y)
        assert np.isfinite(g).all(), kind


@pytest.mark.parametrize("kind", ["triplet", "contrastive"])
def test_masked_padding_rows_do_not_change_real_rows(kind):
    """Evaluation pads the last chunk with copies of example 0 and masks them: the real rows' values are
    those of the batch without padding, and padded rows count 0. The padding here is adversarial too:
    copies of real examples under other labels, which would be the hardest pairs if they counted."""
    n = len(EMB)
    pad_e = np.concatenate([EMB[:1], EMB[:1], EMB[3:4] + 1e-3, EMB[5:6]])
    pad_y = np.array([EMB_Y[0], 5, 1, 0])
    e, y = np.concatenate([EMB, pad_e]), np.concatenate([EMB_Y, pad_y])
    mask = np.r_[np.ones(n), np.zeros(len(pad_e))]
    real = _loss(kind, EMB, EMB_Y)
    got = _loss(kind, e, y, mask=mask)
    np.testing.assert_allclose(got[:n], real, rtol=1e-5, atol=1e-6)
    assert (got[n:] == 0).all()
    # the padding would matter unmasked (so the test can fail)
    assert np.abs(_loss(kind, e, y)[:n] - real).max() > 1e-2
    # a mask of ones is no mask
    np.testing.assert_allclose(_loss(kind, EMB, EMB_Y, mask=np.ones(n)), real, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 3. Gradients: tinygrad's autograd against central finite differences in float64
# ---------------------------------------------------------------------------------------------


def _check_grad(kind, pred, y, ref, **args):
    got = _grad(kind, pred, y, **args)
    want = _finite_differences(lambda p: ref(p, y, **args).mean(), pred)
    assert np.abs(want).max() > 1e-3  # a gradient that is not trivially 0
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-5)


def test_gradient_hinge_binary_and_multiclass():
    rng = np.random.default_rng(9)
    z1 = np.array([[0.3], [2.0], [-0.5], [0.2], [-3.0], [0.7]])
    _check_grad("hinge", z1, np.array([1, 1, 0, 0, 1, 0]), np_hinge, margin=1.0)
    z = rng.normal(0, 1, (6, 4))
    y = rng.integers(0, 4, 6)
    m = np.array([1.0 - z[i, y[i]] + z[i] for i in range(6)])  # away from the kinks at 0
    assert np.abs(m).min() > 1e-3
    _check_grad("hinge", z, y, np_hinge, margin=1.0)


def test_gradient_kl_div():
    rng = np.random.default_rng(10)
    z = rng.normal(0, 1, (5, 3))
    _check_grad("kl_div", z, _distributions(rng, 5, 3), np_kl_div)


def test_gradient_triplet():
    rng = np.random.default_rng(11)
    e = rng.normal(0, 0.6, (8, 3))
    y = np.array([0, 0, 1, 1, 2, 2, 0, 3])
    assert (np_triplet(e, y) > 0).sum() >= 3  # several active anchors
    _check_grad("triplet", e, y, np_triplet, margin=1.0)


def test_gradient_contrastive():
    rng = np.random.default_rng(12)
    e = rng.normal(0, 0.5, (7, 3))
    y = np.array([0, 0, 1, 1, 2, 0, 1])
    d = np_dist(e)
    assert ((d < 1.0) & (y[:, None] != y[None, :])).any()  # some negatives inside the margin
    _check_grad("contrastive", e, y, np_contrastive, margin=1.0)


# ---------------------------------------------------------------------------------------------
# 4. Static checks
# ---------------------------------------------------------------------------------------------

SPEC = """
data {{
  source = csv("d.csv", target = "y")
  split  = {{ train = 0.8, val = 0.2 }}
}}
model {{
  input x: f32[8]
  logits = x -> dense(16) -> relu -> dense({units})
}}
loss      = {loss}
optimizer = adam(lr = 1e-3)
stop {{ max = 5 epochs }}
"""


def test_weights_list_and_balanced_are_accepted():
    for w, want in (("[1, 2, 0.5]", (1.0, 2.0, 0.5)), ("balanced", "balanced")):
        text = SPEC.format(units=3, loss=f"cross_entropy(logits, target, weights = {w})")
        assert lint(text, "w.train") == []
        spec = analyze(text, "w.train")
        assert dict(spec.loss.terms[0].args)["weights"] == want


def test_weights_must_be_positive_numbers():
    text = SPEC.format(units=3, loss="cross_entropy(logits, target, weights = [1, -2, 1])")
    assert [d.code for d in lint(text, "w.train")] == ["E304"]
    text = SPEC.format(units=3, loss="cross_entropy(logits, target, weights = balance)")
    assert [d.code for d in lint(text, "w.train")] == ["E303"]


def test_weights_of_the_wrong_length_is_an_error():
    text = SPEC.format(units=10, loss="cross_entropy(logits, target, weights = [1, 2])")
    diags = lint(text, "w.train")
    assert [d.code for d in diags] == ["E402"] and diags[0].is_error
    assert "2 entries" in diags[0].message and "10" in diags[0].message


@pytest.mark.parametrize("kind", ["triplet", "contrastive"])
def test_accuracy_on_an_embedding_loss_is_an_error(kind):
    """The catalogue's `embedding` mark: the output is an embedding, not class scores."""
    text = SPEC.format(units=16, loss=f"{kind}(logits, target)")
    assert lint(text, "e.train") == []
    diags = lint(text + "metrics = [accuracy]\n", "e.train")
    assert [d.code for d in diags] == ["E307"] and kind in diags[0].message


def test_misspelt_argument_gets_did_you_mean():
    text = SPEC.format(units=1, loss="bce(logits, target, pos_wieght = 2)")
    diags = lint(text, "b.train")
    assert [d.code for d in diags] == ["E202"]
    assert "pos_wieght" in diags[0].message and "did you mean 'pos_weight'" in diags[0].help
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("loss"))
    assert (diags[0].span.line, diags[0].span.col) == (line, text.splitlines()[line - 1].index("pos_wieght") + 1)


def test_kl_div_on_classes_is_a_task_mismatch():
    text = SPEC.format(units=3, loss="kl_div(logits, target)") + "metrics = [accuracy]\n"
    assert "E307" in [d.code for d in lint(text, "k.train")]


# ---------------------------------------------------------------------------------------------
# 5. The new specs: lint clean, train briefly in process
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NEW_SPECS)
def test_new_spec_lints_clean(name):
    path = SPECS / f"{name}.train"
    assert lint(path.read_text(), str(path)) == []


def _digits() -> tuple[np.ndarray, np.ndarray, str]:
    header = DIGITS_CSV.read_text().splitlines()[0]
    raw = np.loadtxt(DIGITS_CSV, delimiter=",", skiprows=1)
    return raw[:, :64], raw[:, 64].astype(np.int64), header


def _write_csv(path: Path, header: str, x: np.ndarray, y: np.ndarray) -> None:
    rows = [header] + [",".join(f"{v:g}" for v in r) + f",{c}" for r, c in zip(x, y)]
    path.write_text("\n".join(rows) + "\n")


def _train(name: str, tmp_path: Path, epochs: int, csv: Path | None = None, **replace: str):
    """Train specs/NAME.train with stop.max = `epochs` (and the csv path or other text replaced)."""
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    text = (SPECS / f"{name}.train").read_text()
    text, n = re.subn(r"max\s*=\s*\d+ epochs", f"max = {epochs} epochs", text)
    assert n == 1
    if csv is not None:
        text, n = re.subn(r'csv\("[^"]+"', f'csv("{csv.name}"', text)
        assert n == 1
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    base = csv.parent if csv is not None else SPECS
    spec = analyze(text, str(base / f"{name}.train"))
    ds = load_data(spec.data, base, spec.run.seed)
    result = train(spec, ds, tmp_path / f"{name}-run", Progress(quiet=True))
    assert result.epochs == epochs and result.stop_reason == f"reached stop.max ({epochs} epochs)"
    return ds, result


def _weights(result) -> dict[str, np.ndarray]:
    from tinygrad.nn.state import safe_load

    return {k: v.numpy().astype(np.float64) for k, v in safe_load(str(result.out_dir / "model.safetensors")).items()}


def _mlp(w, x, prefix):
    h = np.maximum(x @ w[f"{prefix}.dense0.W"] + w[f"{prefix}.dense0.b"], 0.0)
    return h @ w[f"{prefix}.dense1.W"] + w[f"{prefix}.dense1.b"]


def test_linear_svm_multiclass_on_digits(tmp_path):
    """The shipped spec: 10 scores, the multi-class hinge and L2: a linear SVM over the 10 digits."""
    ds, result = _train("linear_svm", tmp_path, epochs=3)
    assert result.final["val.accuracy"] > 0.9
    w = _weights(result)
    z = ds.x_val @ w["scores.dense0.W"] + w["scores.dense0.b"]
    assert result.final["val.loss"] == pytest.approx(np_hinge(z, ds.y_val).mean(), rel=1e-4, abs=1e-6)


def test_linear_svm_binary_on_two_digits(tmp_path):
    """dense(1) + hinge + l2 is the soft-margin SVM: digits 3 against 8, labels read as -1 and +1."""
    x, y, header = _digits()
    keep = (y == 3) | (y == 8)
    _write_csv(tmp_path / "three_eight.csv", header, x[keep], (y[keep] == 8).astype(int))
    ds, result = _train("linear_svm", tmp_path, epochs=3, csv=tmp_path / "three_eight.csv",
                        **{"dense(10)": "dense(1)"})
    assert ds.classes == (0, 1)
    assert result.final["val.accuracy"] > 0.9
    w = _weights(result)
    assert w["scores.dense0.W"].shape == (64, 1)
    z = ds.x_val @ w["scores.dense0.W"] + w["scores.dense0.b"]
    assert result.final["val.loss"] == pytest.approx(np_hinge(z, ds.y_val).mean(), rel=1e-4, abs=1e-6)
    assert result.final["val.accuracy"] == pytest.approx(((z[:, 0] > 0) == ds.y_val).mean(), abs=1e-9)


def test_imbalanced_digits_with_balanced_weights(tmp_path):
    """Digits 0-4 whole, 5-9 cut to 15%: `weights = balanced` trains to val accuracy > 0.8, and the
    reported val.loss is the class-weighted mean (Keras' convention) with n / (K * count_k)."""
    x, y, header = _digits()
    rng = np.random.default_rng(0)
    keep = (y < 5) | (rng.random(len(y)) < 0.15)
    _write_csv(tmp_path / "skewed.csv", header, x[keep], y[keep])
    ds, result = _train("imbalanced_digits", tmp_path, epochs=3, csv=tmp_path / "skewed.csv")
    counts = np.bincount(ds.y_train, minlength=10)
    assert counts[:5].min() > 4 * counts[5:].max()  # really imbalanced
    assert result.final["val.accuracy"] > 0.8
    bal = len(ds.y_train) / (10 * counts)
    z = _mlp(_weights(result), ds.x_val, "logits")
    want = np_cross_entropy(z, ds.y_val, 0.0, bal).mean()
    assert result.final["val.loss"] == pytest.approx(want, rel=1e-4)
    assert abs(want - np_cross_entropy(z, ds.y_val).mean()) > 1e-2  # the weights made a difference


def _centroid_accuracy(emb_tr, y_tr, emb_va, y_va) -> float:
    centroids = np.stack([emb_tr[y_tr == k].mean(0) for k in range(10)])
    return float((np_dist(np.concatenate([emb_va, centroids]))[:len(emb_va), len(emb_va):].argmin(1) == y_va).mean())


@pytest.mark.parametrize("name,kind,floor", [("embedding_triplet", "triplet", 0.9),
                                             ("embedding_contrastive", "contrastive", 0.75)])
def test_embedding_specs_reduce_the_loss(tmp_path, name, kind, floor):
    """The val loss falls over the epochs, and the embedding separates the classes: a nearest class
    centroid classifier on it is right far more often than chance (0.1; after 3 of the spec's 30
    epochs: about 0.96 with the triplet loss, 0.81 with the contrastive one). The val loss is the loss over the
    whole validation split as one batch (the padding masked), recomputed here in numpy."""
    ds, result = _train(name, tmp_path, epochs=3)
    losses = [row["val.loss"] for row in result.history]
    assert losses[-1] < losses[0]
    w = _weights(result)
    emb_va = _mlp(w, ds.x_val, "emb")
    assert _centroid_accuracy(_mlp(w, ds.x_train, "emb"), ds.y_train, emb_va, ds.y_val) > floor
    ref = np_triplet if kind == "triplet" else np_contrastive
    margin = dict(analyze((SPECS / f"{name}.train").read_text(), "x.train").loss.terms[0].args)["margin"]
    assert result.final["val.loss"] == pytest.approx(ref(emb_va, ds.y_val, margin).mean(), rel=1e-3)


def test_distill_kl_on_soft_diabetes_targets(tmp_path):
    """kl_div against a two-outcome distribution per patient, p_high = logistic((progression - 140) / 40):
    the val loss falls, beats predicting the training split's mean distribution, and is the KL
    recomputed in numpy from the saved weights (targets not standardised)."""
    header = DIABETES_CSV.read_text().splitlines()[0].split(",")
    raw = np.loadtxt(DIABETES_CSV, delimiter=",", skiprows=1)
    p_high = 1 / (1 + np.exp(-(raw[:, -1] - 140) / 40))
    rows = [",".join(header[:-1] + ["p_low", "p_high"])]
    rows += [",".join(f"{v:g}" for v in r[:-1]) + f",{1 - p:.6f},{p:.6f}" for r, p in zip(raw, p_high)]
    csv = tmp_path / "diabetes_soft.csv"
    csv.write_text("\n".join(rows) + "\n")
    ds, result = _train("distill_kl", tmp_path, epochs=4, csv=csv)
    assert ds.y_train.shape[1] == 2 and np.allclose(ds.y_train.sum(1), 1.0, atol=1e-5)  # not standardised
    losses = [row["val.loss"] for row in result.history]
    assert losses[-1] < losses[0]
    mean_pred = np.log(np.broadcast_to(ds.y_train.mean(0), ds.y_val.shape))
    assert result.final["val.loss"] < np_kl_div(mean_pred, ds.y_val).mean()
    z = _mlp(_weights(result), ds.x_val, "logits")
    assert result.final["val.loss"] == pytest.approx(np_kl_div(z, ds.y_val).mean(), rel=1e-4, abs=1e-6)
