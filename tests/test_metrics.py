"""The metrics of `compiler/lower/metrics.py`, each against an independent numpy implementation
of scikit-learn's definition (the formula reference; scikit-learn itself is not a dependency):

- top_k            sklearn.metrics.top_k_accuracy_score (ties: counted as hits, see below)
- map_at_k         mean of 1/rank of the target when rank <= k (one relevant class per example);
                   for k >= K, sklearn.metrics.label_ranking_average_precision_score
- precision/recall/f1   sklearn.metrics.precision_score / recall_score / f1_score with
                   zero_division=0 and the default labels (classes in the targets or predictions)
- confusion        sklearn.metrics.confusion_matrix with labels=range(K)
- auc              sklearn.metrics.roc_auc_score (binary): the Mann-Whitney pair count
- r2               sklearn.metrics.r2_score, multioutput="uniform_average", force_finite=True

Each metric's device state (update) and host finish are checked on hand-made and random arrays,
with the edge cases (absent classes, single-class AUC, ties, k >= K), the additivity of states
across batches and the masking of padded rows. Then the metrics are checked through the jitted
evaluation of a lowered program (padded last chunk, host AUC), and through two training runs
(digits with every classification metric; digits 3 vs 8 with one logit, bce and auc) whose final
validation metrics are recomputed in numpy from the saved weights.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from trainc.compiler import analyze, lint
from trainc.compiler import catalog as C

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]
DIGITS_CSV = ROOT / "examples" / "data" / "digits.csv"
DIABETES_CSV = ROOT / "examples" / "data" / "diabetes.csv"
DIGITS_SPEC = ROOT / "specs" / "metrics_digits.train"
BINARY_SPEC = ROOT / "specs" / "metrics_binary.train"

# ---------------------------------------------------------------------------------------------
# numpy references: the scikit-learn formulas, written per example / per label with loops
# ---------------------------------------------------------------------------------------------


def np_predicted(z: np.ndarray) -> np.ndarray:
    """argmax; one logit: class 1 when it is positive."""
    return (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(1)


def np_confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((k, k), dtype=np.int64)
    for t, p in zip(y, pred):
        out[t, p] += 1
    return out


def np_prf(y: np.ndarray, pred: np.ndarray, which: str, average: str) -> float:
    """sklearn precision_score/recall_score/f1_score(y, pred, average=..., zero_division=0)."""
    labels = np.union1d(y, pred)
    if average == "micro":
        tp = sum(((pred == c) & (y == c)).sum() for c in labels)
        return tp / len(y)  # sum tp / sum predicted (= sum support = n)
    scores, support = [], []
    for c in labels:
        tp = int(((pred == c) & (y == c)).sum())
        fp = int(((pred == c) & (y != c)).sum())
        fn = int(((pred != c) & (y == c)).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0
        scores.append({"precision": p, "recall": r, "f1": f}[which])
        support.append(tp + fn)
    scores, support = np.array(scores), np.array(support, dtype=np.float64)
    if average == "macro":
        return float(scores.mean())
    return float((scores * support).sum() / support.sum()) if support.sum() else 0.0


def np_top_k(z: np.ndarray, y: np.ndarray, k: int) -> float:
    """sklearn top_k_accuracy_score (for inputs without ties): the target among the k largest."""
    if z.shape[1] == 1:
        z = np.concatenate([np.zeros_like(z), z], axis=1)
    top = np.argsort(-z, axis=1, kind="stable")[:, :k]
    return float(np.mean([y[i] in top[i] for i in range(len(y))]))


def np_map_at_k(z: np.ndarray, y: np.ndarray, k: int) -> float:
    total = 0.0
    for i in range(len(y)):
        rank = 1 + int((z[i] > z[i, y[i]]).sum())
        total += 1.0 / rank if rank <= k else 0.0
    return total / len(y)


def np_lrap(z: np.ndarray, y: np.ndarray) -> float:
    """sklearn label_ranking_average_precision_score with one relevant label per example:
    1 / |{j : z_j >= z_target}|."""
    return float(np.mean([1.0 / (z[i] >= z[i, y[i]]).sum() for i in range(len(y))]))


def np_auc(s: np.ndarray, y: np.ndarray) -> float:
    """sklearn roc_auc_score: P(score of a positive > score of a negative), ties one half."""
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return math.nan
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (len(pos) * len(neg)))


def np_r2(pred: np.ndarray, y: np.ndarray) -> float:
    """sklearn r2_score(y, pred) (uniform average over columns, force_finite)."""
    out = []
    for j in range(y.shape[1]):
        sse = ((y[:, j] - pred[:, j]) ** 2).sum()
        sst = ((y[:, j] - y[:, j].mean()) ** 2).sum()
        out.append(1.0 - sse / sst if sst > 0 else (1.0 if sse == 0 else 0.0))
    return float(np.mean(out))


def mlp(w: dict[str, np.ndarray], x: np.ndarray, layers: int = 2) -> np.ndarray:
    """dense -> relu -> dense in float64 from saved weights (`logits.dense{i}.W`, `.b`)."""
    h = x.astype(np.float64)
    for i in range(layers):
        h = h @ w[f"logits.dense{i}.W"] + w[f"logits.dense{i}.b"]
        if i < layers - 1:
            h = np.maximum(h, 0.0)
    return h


# ---------------------------------------------------------------------------------------------
# Driving one metric: update on the device, finish on the host
# ---------------------------------------------------------------------------------------------


def _args(kind: str, **given) -> dict:
    """The catalogue's defaults, with `given` on top (what the resolver hands the lowering)."""
    return {**{p.name: p.default for p in C.METRICS.get(kind).params}, **given}


def _ctx(pred: np.ndarray, y: np.ndarray, n_classes: int | None = None):
    from trainc.compiler.lower import MetricCtx

    if y.dtype.kind in "iu":
        n_classes = n_classes or max(int(y.max()) + 1, 2)
    return MetricCtx(n_classes=n_classes, n_outputs=pred.shape[1])


def _state(kind: str, pred: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None, ctx=None,
           **args) -> np.ndarray:
    from tinygrad import Tensor, dtypes
    from trainc.compiler.lower import METRIC_IMPL

    ctx = ctx or _ctx(pred, y)
    yt = Tensor(y.astype(np.int32), dtype=dtypes.int32) if y.dtype.kind in "iu" else Tensor(y.astype(np.float32))
    m = np.ones(len(pred), np.float32) if mask is None else mask.astype(np.float32)
    impl = METRIC_IMPL[kind]
    state = impl.update(Tensor(pred.astype(np.float32)), yt, Tensor(m), ctx, _args(kind, **args)).numpy()
    assert state.shape == (impl.size(ctx, _args(kind, **args)),)
    return state


def _finish(kind: str, state: np.ndarray, n: float, ctx, **args):
    from trainc.compiler.lower import METRIC_IMPL

    return METRIC_IMPL[kind].finish(state, float(n), ctx, _args(kind, **args))


def metric(kind: str, pred: np.ndarray, y: np.ndarray, n_classes: int | None = None, **args):
    ctx = _ctx(pred, y, n_classes)
    return _finish(kind, _state(kind, pred, y, ctx=ctx, **args), len(pred), ctx, **args)


def auc(pred: np.ndarray, y: np.ndarray) -> float:
    """The host metric: per-example scores from the device, AUC on the host."""
    from tinygrad import Tensor
    from trainc.compiler.lower import METRIC_IMPL

    impl = METRIC_IMPL["auc"]
    ctx = _ctx(pred, y)
    scores = impl.scores(Tensor(pred.astype(np.float32)), ctx, {}).numpy()
    assert scores.shape == (len(pred),)
    return impl.host(scores, y, ctx, {})


RNG = np.random.default_rng(7)
Z6 = RNG.normal(size=(200, 6))  # continuous logits: no ties
Y6 = RNG.integers(0, 6, size=200)
Y6_GOOD = np.where(RNG.random(200) < 0.5, Z6.argmax(1), Y6)  # a better-than-chance "model"


# ---------------------------------------------------------------------------------------------
# 1. The catalogue: schema, task and mode
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, signature, task, mode", [
    ("top_k", "top_k(k = 5)", "classification", "max"),
    ("map_at_k", "map_at_k(k = 5)", "classification", "max"),
    ("precision", "precision(average = macro)", "classification", "max"),
    ("recall", "recall(average = macro)", "classification", "max"),
    ("f1", "f1(average = macro)", "classification", "max"),
    ("auc", "auc()", "classification", "max"),
    ("confusion", "confusion()", "classification", "max"),
    ("r2", "r2()", "regression", "max"),
    ("accuracy", "accuracy()", "classification", "max"),
    ("rmse", "rmse()", "regression", "min"),
    ("mae", "mae()", "regression", "min"),
])
def test_catalogue_entries(name, signature, task, mode):
    from trainc.compiler.lower import METRIC_IMPL

    e = C.METRICS.get(name)
    assert (e.signature, e.extra["task"].value, e.extra["mode"]) == (signature, task, mode)
    assert name in METRIC_IMPL
    assert METRIC_IMPL[name].scalar == e.extra.get("scalar", True)
    assert (METRIC_IMPL[name].host is not None) == e.extra.get("host", False)


def test_every_catalogue_metric_has_an_implementation():
    from trainc.compiler.lower import METRIC_IMPL

    assert set(C.METRICS.names()) == set(METRIC_IMPL)


def test_metric_arguments_are_checked():
    from helpers import make_spec

    assert lint(make_spec(metrics="metrics = [f1(average = weighted), top_k(k = 3), map_at_k(2), confusion]"),
                "t.train") == []
    assert [d.code for d in lint(make_spec(metrics="metrics = [auc]"), "t.train")] == ["E402"]  # 3 logits
    assert [d.code for d in lint(make_spec(metrics="metrics = [f1(average = mean)]"), "t.train")] == ["E305"]
    assert [d.code for d in lint(make_spec(metrics="metrics = [top_k(k = 0)]"), "t.train")] == ["E304"]
    assert [d.code for d in lint(make_spec(metrics="metrics = [r2]"), "t.train")] == ["E307"]


def test_parsed_arguments_reach_the_ir():
    from helpers import make_spec

    spec = analyze(make_spec(metrics="metrics = [precision, f1(average = micro), top_k(k = 2)]"), "t.train")
    assert [(m.kind, dict(m.args)) for m in spec.metrics] == [
        ("precision", {"average": "macro"}), ("f1", {"average": "micro"}), ("top_k", {"k": 2})]


# ---------------------------------------------------------------------------------------------
# 2. top_k and map_at_k
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 5, 6, 9])
def test_top_k_random(k):
    want = np_top_k(Z6, Y6_GOOD, k)
    assert metric("top_k", Z6, Y6_GOOD, k=k) == pytest.approx(want, abs=1e-6)
    if k >= 6:
        assert want == 1.0
    if k == 1:  # top-1 is accuracy
        assert want == pytest.approx((Z6.argmax(1) == Y6_GOOD).mean())


def test_top_k_by_hand_with_ties():
    z = np.array([[0.1, 0.9, 0.5], [2.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    y = np.array([2, 1, 2, 0])
    # strictly greater logits than the target's: 1, 0 (a tie is not greater), 2, 0
    assert metric("top_k", z, y, k=1) == pytest.approx(2 / 4)
    assert metric("top_k", z, y, k=2) == pytest.approx(3 / 4)
    assert metric("top_k", z, y, k=3) == pytest.approx(1.0)


def test_top_k_one_logit():
    z = np.array([[2.0], [-1.0], [0.5], [-0.3], [1.5]])  # as the two logits [0, z]
    y = np.array([1, 1, 0, 0, 1])
    assert metric("top_k", z, y, k=1) == pytest.approx(np_top_k(z, y, 1)) == pytest.approx(3 / 5)
    assert metric("top_k", z, y, k=1) == pytest.approx(metric("accuracy", z, y))
    assert metric("top_k", z, y, k=2) == 1.0


@pytest.mark.parametrize("k", [1, 2, 4, 6, 10])
def test_map_at_k_random(k):
    want = np_map_at_k(Z6, Y6_GOOD, k)
    assert metric("map_at_k", Z6, Y6_GOOD, k=k) == pytest.approx(want, abs=1e-6)
    if k >= 6:  # every rank counts: label ranking average precision
        assert want == pytest.approx(np_lrap(Z6, Y6_GOOD))
    if k == 1:
        assert want == pytest.approx((Z6.argmax(1) == Y6_GOOD).mean())


def test_map_at_k_by_hand():
    z = np.array([[0.1, 0.9, 0.5, 0.0], [4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    y = np.array([2, 0, 1, 0])  # ranks 2, 1, 1 (tie), 4
    assert metric("map_at_k", z, y, k=3) == pytest.approx((1 / 2 + 1 + 1 + 0) / 4)
    assert metric("map_at_k", z, y, k=4) == pytest.approx((1 / 2 + 1 + 1 + 1 / 4) / 4)
    assert metric("map_at_k", z, y, k=1) == pytest.approx(2 / 4)


# ---------------------------------------------------------------------------------------------
# 3. The confusion matrix; precision, recall and f1 from it
# ---------------------------------------------------------------------------------------------


def test_confusion_random():
    got = metric("confusion", Z6, Y6_GOOD)
    assert isinstance(got, list) and all(isinstance(v, int) for row in got for v in row)
    assert np.array_equal(np.array(got), np_confusion(Y6_GOOD, Z6.argmax(1), 6))
    assert sum(map(sum, got)) == len(Y6_GOOD)


def test_confusion_by_hand_one_logit():
    z = np.array([[2.0], [-1.0], [0.0], [0.5], [-3.0]])  # predicted 1, 0, 0 (0 is not > 0), 1, 0
    y = np.array([1, 1, 0, 0, 0])
    assert metric("confusion", z, y) == [[2, 1], [1, 1]]


@pytest.mark.parametrize("which", ["precision", "recall", "f1"])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_precision_recall_f1_random(which, average):
    pred = Z6.argmax(1)
    want = np_prf(Y6_GOOD, pred, which, average)
    assert metric(which, Z6, Y6_GOOD, average=average) == pytest.approx(want, abs=1e-9)
    if average == "micro":
        assert want == pytest.approx((pred == Y6_GOOD).mean())


# 5 classes; class 4 never occurs and is never predicted; class 3 is never predicted;
# class 2 is predicted once but never occurs.
HAND_Y = np.array([0, 0, 0, 1, 1, 3, 3, 0])
HAND_P = np.array([0, 0, 1, 1, 2, 0, 1, 0])
# labels present: 0, 1, 2, 3
#   class 0: tp 3, predicted 4, support 4 -> p 3/4, r 3/4, f1 6/8
#   class 1: tp 1, predicted 3, support 2 -> p 1/3, r 1/2, f1 2/5
#   class 2: tp 0, predicted 1, support 0 -> p 0, r 0 (zero_division), f1 0
#   class 3: tp 0, predicted 0, support 2 -> p 0 (zero_division), r 0, f1 0
HAND = {
    ("precision", "macro"): (3 / 4 + 1 / 3) / 4, ("recall", "macro"): (3 / 4 + 1 / 2) / 4,
    ("f1", "macro"): (6 / 8 + 2 / 5) / 4,
    ("precision", "weighted"): (4 * 3 / 4 + 2 * 1 / 3) / 8, ("recall", "weighted"): (3 + 1) / 8,
    ("f1", "weighted"): (4 * 6 / 8 + 2 * 2 / 5) / 8,
    ("precision", "micro"): 4 / 8, ("recall", "micro"): 4 / 8, ("f1", "micro"): 4 / 8,
}


@pytest.mark.parametrize("which, average", list(HAND), ids=lambda v: v if isinstance(v, str) else None)
def test_precision_recall_f1_by_hand_with_absent_classes(which, average):
    z = np.eye(5)[HAND_P] * 3.0 + 0.1 * np.arange(5)[::-1]  # argmax is HAND_P
    assert np.array_equal(z.argmax(1), HAND_P)
    assert np_prf(HAND_Y, HAND_P, which, average) == pytest.approx(HAND[which, average])
    assert metric(which, z, HAND_Y, n_classes=5, average=average) == pytest.approx(HAND[which, average])


def test_confusion_keeps_absent_classes():
    z = np.eye(5)[HAND_P]
    got = np.array(metric("confusion", z, HAND_Y, n_classes=5))
    assert got.shape == (5, 5)
    assert np.array_equal(got, np_confusion(HAND_Y, HAND_P, 5))
    assert got[4].sum() == 0 and got[:, 4].sum() == 0 and got[:, 3].sum() == 0


@pytest.mark.parametrize("which", ["precision", "recall", "f1"])
def test_precision_recall_f1_binary_one_logit(which):
    z = RNG.normal(size=(60, 1))
    y = (RNG.random(60) < 0.4).astype(np.int64)
    for average in ("macro", "micro", "weighted"):
        want = np_prf(y, (z[:, 0] > 0).astype(np.int64), which, average)
        assert metric(which, z, y, average=average) == pytest.approx(want, abs=1e-9)


def test_class_scores_of_an_empty_state_are_nan():
    from trainc.compiler.lower import MetricCtx

    ctx = MetricCtx(n_classes=3, n_outputs=3)
    assert math.isnan(_finish("f1", np.zeros(9), 0, ctx))
    assert _finish("confusion", np.zeros(9), 0, ctx) == [[0] * 3] * 3


# ---------------------------------------------------------------------------------------------
# 4. auc (host)
# ---------------------------------------------------------------------------------------------


def test_auc_random_one_logit():
    y = (RNG.random(300) < 0.3).astype(np.int64)
    z = (RNG.normal(size=300) + 1.2 * y).reshape(-1, 1)
    want = np_auc(z[:, 0], y)
    assert 0.6 < want < 0.95
    assert auc(z, y) == pytest.approx(want, abs=1e-6)


def test_auc_two_logits_uses_their_difference():
    y = (RNG.random(100) < 0.5).astype(np.int64)
    z = RNG.normal(size=(100, 2)) + np.stack([-0.5 * y, 0.5 * y], 1)
    assert auc(z, y) == pytest.approx(np_auc(z[:, 1] - z[:, 0], y), abs=1e-6)


def test_auc_by_hand_with_ties():
    # pairs (pos, neg): 0.8 beats 0.1, 0.4 and ties 0.8 twice; 0.4 beats 0.1, ties 0.4, loses to 0.8 x2
    s = np.array([[0.8], [0.4], [0.1], [0.4], [0.8], [0.8]])
    y = np.array([1, 1, 0, 0, 0, 0])
    want = (1 + 1 + 0.5 + 0.5 + 1 + 0.5 + 0 + 0) / 8
    assert np_auc(s[:, 0], y) == pytest.approx(want)
    assert auc(s, y) == pytest.approx(want)
    assert auc(np.zeros((6, 1)), y) == pytest.approx(0.5)  # all tied: chance
    ties = np.round(RNG.normal(size=(400, 1)), 1)  # many ties
    yt = (RNG.random(400) < ties[:, 0] / 4 + 0.5).astype(np.int64)
    assert auc(ties, yt) == pytest.approx(np_auc(ties[:, 0], yt), abs=1e-9)


def test_auc_perfect_and_reversed():
    y = np.array([0, 0, 1, 1, 0, 1])
    z = np.where(y == 1, 1.0, -1.0).reshape(-1, 1) + 0.01 * np.arange(6).reshape(-1, 1)
    assert auc(z, y) == 1.0
    assert auc(-z, y) == 0.0


@pytest.mark.parametrize("label", [0, 1])
def test_auc_of_one_class_is_nan(label):
    z = RNG.normal(size=(10, 1))
    assert math.isnan(auc(z, np.full(10, label)))


def test_auc_of_more_than_two_logits_is_refused():
    with pytest.raises(ValueError, match="one or two logits"):
        auc(Z6, Y6)


# ---------------------------------------------------------------------------------------------
# 5. r2
# ---------------------------------------------------------------------------------------------


def test_r2_random_columns():
    from trainc.compiler.lower import MetricCtx

    y = RNG.normal(size=(80, 3)) * np.array([1.0, 10.0, 0.1]) + np.array([0.0, 50.0, -3.0])
    p = y + RNG.normal(size=y.shape) * np.array([0.3, 8.0, 0.2])  # third column: worse than the mean
    want = np_r2(p, y)
    per_column = [np_r2(p[:, [j]], y[:, [j]]) for j in range(3)]
    assert per_column[2] < 0 < per_column[1] < per_column[0] < 1
    # centred near the mean (as with the training mean), float32 sums keep the precision
    ctx = MetricCtx(n_classes=None, n_outputs=3, target_center=(0.1, 49.0, -3.02))
    assert _finish("r2", _state("r2", p, y, ctx=ctx), len(p), ctx) == pytest.approx(want, abs=1e-6)
    # without a centre, a column far from 0 relative to its spread (-3 +- 0.1) loses digits
    assert metric("r2", p, y) == pytest.approx(want, abs=1e-3)
    assert metric("r2", p[:, :2], y[:, :2]) == pytest.approx(np_r2(p[:, :2], y[:, :2]), abs=1e-5)


def test_r2_by_hand():
    y = np.array([[3.0], [-0.5], [2.0], [7.0]])
    p = np.array([[2.5], [0.0], [2.0], [8.0]])
    assert metric("r2", p, y) == pytest.approx(0.9486081370449679, abs=1e-6)  # sklearn's docstring example
    assert metric("r2", y, y) == pytest.approx(1.0)
    assert metric("r2", np.full_like(y, y.mean()), y) == pytest.approx(0.0, abs=1e-6)


def test_r2_constant_column():
    y = np.stack([np.full(6, 4.0), np.arange(6.0)], 1)
    exact = np.stack([np.full(6, 4.0), np.arange(6.0)], 1)
    off = np.stack([np.full(6, 4.5), np.arange(6.0)], 1)
    assert np_r2(exact, y) == 1.0 and np_r2(off, y) == 0.5
    assert metric("r2", exact, y) == pytest.approx(1.0)
    assert metric("r2", off, y) == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------
# 6. States add up across batches; masked rows add nothing
# ---------------------------------------------------------------------------------------------

DEVICE_CASES = [
    ("accuracy", {}), ("top_k", {"k": 3}), ("map_at_k", {"k": 4}), ("precision", {"average": "macro"}),
    ("recall", {"average": "weighted"}), ("f1", {"average": "macro"}), ("confusion", {}),
    ("rmse", {}), ("mae", {}), ("r2", {}),
]


def _case_data(kind: str):
    if kind in ("rmse", "mae", "r2"):
        y = RNG.normal(size=(70, 2)) * 3 + 1
        return y + RNG.normal(size=y.shape), y, None
    return Z6[:70], Y6_GOOD[:70], 6


@pytest.mark.parametrize("kind, args", DEVICE_CASES, ids=[k for k, _ in DEVICE_CASES])
def test_states_add_up_across_batches(kind, args):
    p, y, k = _case_data(kind)
    ctx = _ctx(p, y, k)
    whole = _state(kind, p, y, ctx=ctx, **args)
    parts = _state(kind, p[:25], y[:25], ctx=ctx, **args) + _state(kind, p[25:], y[25:], ctx=ctx, **args)
    assert np.allclose(parts, whole, rtol=1e-5, atol=1e-4)
    a, b = _finish(kind, parts, len(p), ctx, **args), _finish(kind, whole, len(p), ctx, **args)
    assert np.asarray(a) == pytest.approx(np.asarray(b), rel=1e-5)


@pytest.mark.parametrize("kind, args", DEVICE_CASES, ids=[k for k, _ in DEVICE_CASES])
def test_masked_rows_are_ignored(kind, args):
    p, y, k = _case_data(kind)
    ctx = _ctx(p, y, k)
    # padding as the evaluation pads its last chunk: copies of real rows (here reversed), masked out
    p_pad, y_pad = np.concatenate([p, p[::-1][:30]]), np.concatenate([y, y[::-1][:30]])
    mask = np.r_[np.ones(len(p)), np.zeros(30)]
    padded = _state(kind, p_pad, y_pad, mask, ctx=ctx, **args)
    assert np.allclose(padded, _state(kind, p, y, ctx=ctx, **args), rtol=1e-5, atol=1e-4)
    assert not np.allclose(_state(kind, p_pad, y_pad, ctx=ctx, **args), padded)  # the mask does something


# ---------------------------------------------------------------------------------------------
# 7. The jitted evaluation of a lowered program: two chunks, the last padded and masked
# ---------------------------------------------------------------------------------------------


def _lowered_eval(text: str, path: Path, n_val: int, chunk: int):
    """Lower a spec over its data (val cut to n_val) and evaluate the initial weights in chunks as
    runtime.loop does: returns (finished val metrics, dataset, weights, val features, val labels)."""
    from tinygrad import Tensor
    from trainc.compiler.lower import finish_eval, lower
    from trainc.runtime.data import load_data

    spec = analyze(text, str(path))
    ds = load_data(spec.data, path.parent, spec.run.seed)
    tn = ds.target_normalizer
    x_val, y_val = ds.x_val[:n_val], ds.y_val[:n_val]
    program = lower(spec, ds.x_train, ds.y_train, x_val, y_val, tn.shift if tn else None,
                    tn.scale if tn else None, n_classes=ds.n_classes)
    chunks = []
    for c in range(math.ceil(n_val / chunk)):
        idx = np.arange(c * chunk, (c + 1) * chunk)
        mask = (idx < n_val).astype(np.float32)
        out = program.eval_step(Tensor(np.where(idx < n_val, idx, 0).astype(np.int32)), Tensor(mask))
        chunks.append(out.numpy())
    scores = np.concatenate(chunks)[:n_val] if program.host_metrics else None
    val = finish_eval(program, program.eval_acc.numpy(), scores, y_val)
    weights = {k: t.numpy().astype(np.float64) for k, t in program.state().items()}
    return val, ds, weights, x_val, y_val


def test_lowered_evaluation_classification():
    text = DIGITS_SPEC.read_text()
    val, _, w, x, y = _lowered_eval(text, DIGITS_SPEC, n_val=300, chunk=128)  # 128 + 128 + 44 (84 padded)
    z = mlp(w, x)
    pred = z.argmax(1)
    assert val["confusion"] == np_confusion(y, pred, 10).tolist()
    assert val["accuracy"] == pytest.approx((pred == y).mean(), abs=1e-6)
    assert val["top_k"] == pytest.approx(np_top_k(z, y, 3), abs=1e-6)
    assert val["map_at_k"] == pytest.approx(np_map_at_k(z, y, 3), abs=1e-6)
    assert val["precision"] == pytest.approx(np_prf(y, pred, "precision", "macro"), abs=1e-6)
    assert val["recall"] == pytest.approx(np_prf(y, pred, "recall", "macro"), abs=1e-6)
    assert val["f1"] == pytest.approx(np_prf(y, pred, "f1", "weighted"), abs=1e-6)


def test_lowered_evaluation_regression_r2_in_target_units(tmp_path):
    text = f"""
data {{
  source = csv("{DIABETES_CSV.as_posix()}", target = ["progression", "bmi"])
  split  = {{ train = 0.8, val = 0.2 }}
  normalize = standard
  batch  = 32
}}
model {{
  input x: f32[9]
  logits = x -> dense(8) -> relu -> dense(2)
}}
loss      = mse(logits, target)
optimizer = adam(lr = 1e-3)
stop {{ max = 1 epochs }}
metrics   = [rmse, r2]
"""
    val, ds, w, x, y = _lowered_eval(text, tmp_path / "r2.train", n_val=80, chunk=64)
    tn = ds.target_normalizer
    assert tn is not None
    p = mlp(w, x) * tn.scale + tn.shift  # back in the data's units
    y = y * tn.scale + tn.shift
    assert val["r2"] == pytest.approx(np_r2(p, y), abs=1e-4)
    assert val["rmse"] == pytest.approx(np.sqrt(((p - y) ** 2).mean()), rel=1e-4)


# ---------------------------------------------------------------------------------------------
# 8. Training runs: the reported metrics against numpy on the saved model
# ---------------------------------------------------------------------------------------------


def _train(spec_path: Path, text: str, out: Path):
    from tinygrad.nn.state import safe_load
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    spec = analyze(text, str(spec_path))
    ds = load_data(spec.data, spec_path.parent, spec.run.seed)
    result = train(spec, ds, out, Progress(quiet=True))
    weights = {k: v.numpy().astype(np.float64) for k, v in safe_load(str(out / "model.safetensors")).items()}
    return ds, result, weights


def _two_epochs(text: str) -> str:
    assert "max   = 20 epochs" in text
    return text.replace("max   = 20 epochs", "max   = 2 epochs")


def test_digits_run_reports_every_metric(tmp_path):
    ds, result, w = _train(DIGITS_SPEC, _two_epochs(DIGITS_SPEC.read_text()), tmp_path / "run")
    scalar = ["accuracy", "top_k", "precision", "recall", "f1", "map_at_k"]
    assert len(result.history) == 2
    for row in result.history:
        for name in scalar:
            for split in ("train", "val"):
                assert 0.0 <= row[f"{split}.{name}"] <= 1.0, (split, name)
        assert "val.confusion" not in row and "train.confusion" not in row  # not a number: not in the rows
    final = result.final
    assert final["val.accuracy"] > 0.8  # it learnt something, so the checks below are not vacuous
    z = mlp(w, ds.x_val)
    y = ds.y_val
    pred = z.argmax(1)
    want = {
        "accuracy": (pred == y).mean(),
        "top_k": np_top_k(z, y, 3),
        "precision": np_prf(y, pred, "precision", "macro"),
        "recall": np_prf(y, pred, "recall", "macro"),
        "f1": np_prf(y, pred, "f1", "weighted"),
        "map_at_k": np_map_at_k(z, y, 3),
    }
    for name, v in want.items():
        assert final[f"val.{name}"] == pytest.approx(v, abs=1e-4), name
    assert final["val.top_k"] >= final["val.map_at_k"] >= final["val.accuracy"]


def test_binary_run_reports_auc(tmp_path):
    ds, result, w = _train(BINARY_SPEC, _two_epochs(BINARY_SPEC.read_text()), tmp_path / "run")
    assert ds.n_classes == 2 and ds.classes == ("benign", "malignant") and set(np.unique(ds.y_val)) == {0, 1}
    for row in result.history:
        assert "val.auc" in row and "train.auc" not in row  # measured on val only
        assert "train.f1" in row and "val.f1" in row
    final = result.final
    z = mlp(w, ds.x_val)
    y = ds.y_val
    want = np_auc(z[:, 0], y)
    assert 0.9 < want < 1.0  # learnt, and not so perfect that any ordering would pass
    assert final["val.auc"] == pytest.approx(want, abs=1e-4)
    pred = (z[:, 0] > 0).astype(np.int64)
    assert final["val.accuracy"] == pytest.approx((pred == y).mean(), abs=1e-4)
    assert final["val.f1"] == pytest.approx(np_prf(y, pred, "f1", "macro"), abs=1e-4)
