"""Classic models as specs, against their closed-form (or Newton) solutions computed in numpy:
linear regression vs least squares, logistic regression vs Newton's method, an autoencoder vs PCA
with the same code size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tinygrad.nn.state import safe_load

from trainc.compiler import analyze
from trainc.runtime.data import load_data
from trainc.runtime.loop import train
from trainc.runtime.progress import Progress

SPECS = Path(__file__).parents[1] / "specs"


def run(name: str, tmp_path: Path):
    spec = analyze((SPECS / name).read_text(), name)
    ds = load_data(spec.data, SPECS, spec.run.seed)
    result = train(spec, ds, tmp_path, Progress(quiet=True))
    w = {k: v.numpy().astype(np.float64) for k, v in safe_load(str(tmp_path / "model.safetensors")).items()}
    return spec, ds, result, w


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """The linear-regression spec, trained once for the tests below (400 full-batch epochs)."""
    return run("linear_regression.train", tmp_path_factory.mktemp("linear"))


def test_linear_regression_reaches_least_squares(linear):
    spec, ds, result, w = linear
    x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)  # standardised target
    a = np.hstack([x, np.ones((len(x), 1))])
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)  # the closed-form optimum
    got = np.r_[w["pred.dense0.W"][:, 0], w["pred.dense0.b"]][:, None]
    # the features are nearly collinear (s1..s6): compare fits, not coefficients
    train_mse = lambda c: float(((a @ c - y) ** 2).mean())  # noqa: E731
    assert train_mse(got) == pytest.approx(train_mse(coef), rel=2e-3)
    tn = ds.target_normalizer
    pred = (np.hstack([ds.x_val, np.ones((len(ds.x_val), 1))]) @ coef) * tn.scale + tn.shift
    y_val = ds.y_val * tn.scale + tn.shift
    rmse = float(np.sqrt(((pred - y_val) ** 2).mean()))
    assert result.final["val.rmse"] == pytest.approx(rmse, rel=1e-2)
    assert result.final["val.rmse"] < result.baseline["val.rmse"]


def test_batch_all_is_the_whole_training_split(linear):
    """`batch = all`: one step an epoch over every training example. From zero weights the first step's loss
    is mean(y^2) over its batch, exactly 1 over the whole standardised split (353 of 354 examples is not)."""
    spec, ds, result, _ = linear
    assert spec.data.batch is None  # `all`: known only with the data
    assert result.steps == result.epochs
    y = ds.y_train.astype(np.float64)
    assert result.history[0]["train.loss"] == pytest.approx(float((y ** 2).mean()), rel=1e-6)
    assert result.history[0]["train.loss"] == pytest.approx(1.0, rel=1e-6)


def test_logistic_regression_reaches_newtons_optimum(tmp_path):
    spec, ds, result, w = run("logistic_regression.train", tmp_path)
    lam = spec.regularization.l2
    x, y = ds.x_train.astype(np.float64), ds.y_train.astype(np.float64)
    n, d = x.shape

    def objective(beta):  # mean bce + lam/2 |w|^2 (the bias is not penalised), as trainc defines it
        z = x @ beta[:-1] + beta[-1]
        return np.mean(np.logaddexp(0, z) - y * z) + lam / 2 * (beta[:-1] ** 2).sum()

    beta = np.zeros(d + 1)
    a = np.hstack([x, np.ones((n, 1))])
    for _ in range(50):  # Newton's method on a convex objective
        p = 1 / (1 + np.exp(-(a @ beta)))
        grad = a.T @ (p - y) / n + lam * np.r_[beta[:-1], 0.0]
        hess = (a * (p * (1 - p))[:, None]).T @ a / n + lam * np.diag(np.r_[np.ones(d), 0.0])
        beta -= np.linalg.solve(hess, grad)
    got = np.r_[w["logit.dense0.W"][:, 0], w["logit.dense0.b"]]
    assert objective(got) == pytest.approx(objective(beta), rel=1e-3)
    np.testing.assert_allclose(got, beta, atol=0.05)
    z = ds.x_val @ beta[:-1] + beta[-1]
    assert result.final["val.accuracy"] == pytest.approx(((z > 0) == ds.y_val).mean(), abs=1 / len(z) + 1e-9)
    assert result.final["val.accuracy"] > 0.95


def test_autoencoder_matches_or_beats_pca(tmp_path):
    spec, ds, result, w = run("autoencoder_digits.train", tmp_path)
    code = next(la.out.shape[0] for la in spec.model.layers if la.name.startswith("code.") and
                la.name == dict(spec.model.values)["code"])
    xt, xv = ds.x_train.astype(np.float64), ds.x_val.astype(np.float64)
    mu = xt.mean(0)
    _, _, vt = np.linalg.svd(xt - mu, full_matrices=False)
    p = vt[:code]
    pca_mse = float((((xv - mu) @ p.T @ p + mu - xv) ** 2).mean())
    assert code == 16
    assert result.final["val.loss"] <= 1.1 * pca_mse  # within 10% of PCA, or better
    assert result.final["val.rmse"] == pytest.approx(np.sqrt(result.final["val.loss"]), rel=1e-4)


# ---- trainc summary ---------------------------------------------------------------------------

HAND_COUNTS = {  # parameters counted by hand from the layer definitions
    "examples/digits.train": (64 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10),
    "examples/diabetes.train": (10 * 32 + 32) + (32 + 1),
    "specs/linear_regression.train": 10 + 1,
    "specs/logistic_regression.train": 30 + 1,
    "specs/autoencoder_digits.train": (64 * 128 + 128) + (128 * 16 + 16) + (16 * 128 + 128) + (128 * 64 + 64),
    # conv2d(16, 3): 16*1*3*3 + 16, batchnorm(16): 2*16; conv2d(32, 3): 32*16*3*3 + 32, batchnorm: 2*32;
    # after two 2x2 pools 32 x 2 x 2 = 128 features -> dense(10)
    "specs/cnn_digits.train": (16 * 9 + 16) + 32 + (32 * 16 * 9 + 32) + 64 + (128 * 10 + 10),
    # lstm(32) on 1 feature: 4 gates x (W_ih 32x1 + W_hh 32x32 + b_ih 32 + b_hh 32); dense(1) on 32
    "specs/lstm_sunspots.train": 4 * (32 * 1 + 32 * 32 + 32 + 32) + (32 + 1),
    "specs/gru_sunspots.train": 3 * (32 * 1 + 32 * 32 + 32 + 32) + (32 + 1),
    # embedding 58x32, positions 16x32, two blocks: norms 2*(2*32), attention in 3*32*32 + 3*32 and out 32*32 + 32,
    # mlp 32->64->32; then dense(58) on 32
    "specs/transformer_chars.train": 58 * 32 + 16 * 32 + 2 * (4 * 32 + (3 * 32 * 32 + 3 * 32) + (32 * 32 + 32)
                                                             + (32 * 64 + 64) + (64 * 32 + 32)) + (32 * 58 + 58),
}
ROOT = SPECS.parent
ALL_SPECS = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("examples/*.train"), *ROOT.glob("specs/*.train")])


@pytest.mark.parametrize("path", sorted(HAND_COUNTS))
def test_summary_agrees_with_a_hand_count(path):
    from trainc.compiler.summary import rows

    spec = analyze((ROOT / path).read_text(), path)
    assert sum(r.params for r in rows(spec)) == HAND_COUNTS[path]


@pytest.mark.parametrize("path", ALL_SPECS)
def test_summary_counts_what_the_lowering_builds(path):
    """For every shipped spec: the summary's count is the number of trained values the program holds."""
    from trainc.compiler.lower import lower
    from trainc.compiler.summary import rows

    spec = analyze((ROOT / path).read_text(), path)
    inp = spec.model.inputs[0].type
    x = np.zeros((4, *inp.shape), np.float32)
    if spec.data.task.value == "classification":
        y = np.array([0, 1, 0, 1], np.int32)
    else:
        k = 1
        for term in spec.loss.terms:
            t = next((la.out for la in spec.model.layers if la.name == dict(spec.model.values)[term.pred]), None)
            k = t.shape[-1] if t is not None else 1
        y = np.zeros((4, k), np.float32)
    program = lower(spec, x, y, x, y, n_classes=10 if spec.data.task.value == "classification" else None)
    built = sum(int(np.prod(t.shape)) for t in program.named_params().values())
    assert sum(r.params for r in rows(spec)) == built


def test_summary_command_prints_the_table():
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("trainc")
    r = subprocess.run([str(exe), "summary", "examples/digits.train"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "logits.mlp0.dense0    dense          f32[128]              8,320         16,512" in r.stdout
    assert "total" in r.stdout and "17,226" in r.stdout and "memory estimate per step" in r.stdout


# ---- test split and k-fold cross-validation ------------------------------------------------------

CANCER = (SPECS / "kfold_logistic.train").read_text()


def _identity(ds, which):  # rows as hashable tuples, to compare splits as sets of examples
    x = {"train": ds.x_train, "val": ds.x_val, "test": ds.x_test}[which]
    return {tuple(np.round(r, 5)) for r in x}


def test_kfold_partitions_the_data():
    spec = analyze(CANCER.replace("normalize = standard", "normalize = none"), "k.train")  # raw rows compare
    folds = [load_data(spec.data, SPECS, 0, fold=f) for f in range(5)]
    vals = [_identity(ds, "val") for ds in folds]
    assert sum(len(v) for v in vals) == 569 and len(set().union(*vals)) == 569
    for ds, v in zip(folds, vals):
        assert not (_identity(ds, "train") & v) and len(ds.x_train) + len(ds.x_val) == 569
        assert abs(np.mean(ds.y_val) - 212 / 569) < 0.02  # stratified: each fold keeps the class balance


def test_a_test_fraction_is_held_out_and_evaluated_once(tmp_path):
    text = CANCER.replace("split     = kfold(5)", "split     = { train = 0.6, val = 0.2, test = 0.2 }")
    spec = analyze(text, "t.train")
    ds = load_data(spec.data, SPECS, 0)
    assert len(ds.x_train) + len(ds.x_val) + len(ds.x_test) == 569
    assert [round(len(a) / 569, 1) for a in (ds.x_train, ds.x_val, ds.x_test)] == [0.6, 0.2, 0.2]
    assert not (_identity(ds, "test") & (_identity(ds, "train") | _identity(ds, "val")))
    result = train(spec, ds, tmp_path, Progress(quiet=True))
    w = {k: v.numpy().astype(np.float64) for k, v in safe_load(str(tmp_path / "model.safetensors")).items()}
    z = ds.x_test @ w["logit.dense0.W"][:, 0] + w["logit.dense0.b"][0]
    assert result.test["test.accuracy"] == pytest.approx(((z > 0) == ds.y_test).mean(), abs=1e-6)
    assert set(result.test) == {"test.loss", "test.accuracy", "test.auc"}


def test_kfold_run_reports_mean_and_spread(tmp_path):
    import json
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("trainc")
    r = subprocess.run([str(exe), "run", "specs/kfold_logistic.train", "-q", "--out", str(tmp_path), "--set",
                        "stop.max=5 epochs"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    acc = [f["val.accuracy"] for f in summary["per_fold"]]
    assert summary["folds"] == 5 and len(acc) == 5 and all((tmp_path / f"fold{i}" / "summary.json").exists()
                                                           for i in range(5))
    assert summary["mean"]["val.accuracy"] == pytest.approx(np.mean(acc)) and min(acc) > 0.9
    assert summary["std"]["val.accuracy"] == pytest.approx(np.std(acc))
    assert "5-fold cross-validation: val.loss" in r.stdout


def test_a_block_repeated_has_its_own_weights_each_time():
    from trainc.compiler import lint
    from trainc.compiler.summary import rows

    text = (ROOT / "examples" / "digits.train").read_text().replace(
        "logits = x -> mlp(128) -> mlp(64) -> dense(10)", "logits = x -> mlp(32) * 3 -> dense(10)")
    spec = analyze(text, "r.train")
    dense = [la.name for la in spec.model.layers if la.op == "dense"]
    assert dense == ["logits.mlp0.dense0", "logits.mlp1.dense0", "logits.mlp2.dense0", "logits.dense0"]
    assert sum(r.params for r in rows(spec)) == (64 * 32 + 32) + 2 * (32 * 32 + 32) + (32 * 10 + 10)
    bad = [(d.code, d.message) for d in lint(text.replace("* 3", "* 1.5"), "r.train")]
    assert bad == [("E303", "a repeat count must be a positive integer, found the number 1.5")]


@pytest.mark.parametrize("model, dense_names, params", [
    ("logits = x -> repeat 2 { dense(32) -> relu } -> dense(10)",
     ["logits.dense0", "logits.dense1", "logits.dense2"], (64 * 32 + 32) + (32 * 32 + 32) + (32 * 10 + 10)),
    ("logits = x -> repeat 2 {\n    dense(16) -> relu\n  } -> stack(2, 8) -> dense(10)",
     ["logits.dense0", "logits.dense1", "logits.stack0.dense0", "logits.stack0.dense1", "logits.dense2"],
     (64 * 16 + 16) + (16 * 16 + 16) + (16 * 8 + 8) + (8 * 8 + 8) + (8 * 10 + 10)),
])
def test_repeat_statement_makes_fresh_weights_each_time(model, dense_names, params):
    from trainc.compiler.summary import rows

    text = (ROOT / "examples" / "digits.train").read_text().replace(
        "logits = x -> mlp(128) -> mlp(64) -> dense(10)",
        "block stack(n, w) { repeat n { dense(w) -> relu } }\n  " + model)
    spec = analyze(text, "r.train")
    assert [la.name for la in spec.model.layers if la.op == "dense"] == dense_names
    assert sum(r.params for r in rows(spec)) == params


@pytest.mark.parametrize("stage, col, found", [
    ("repeat 0 { dense(8) }", 17, "the number 0"),
    ("repeat 2.5 { dense(8) }", 17, "the number 2.5"),
    ("repeat w { dense(8) }", 17, "'w'"),
])
def test_repeat_count_must_be_a_positive_integer(stage, col, found):
    from trainc.compiler import lint

    text = (ROOT / "examples" / "digits.train").read_text().replace(
        "logits = x -> mlp(128) -> mlp(64) -> dense(10)", f"logits = x -> {stage} -> dense(10)")
    line = text.splitlines().index(f"  logits = x -> {stage} -> dense(10)") + 1
    assert [(d.code, d.span.line, d.span.col, d.message) for d in lint(text, "r.train")] == [
        ("E303", line, col + 7, f"a repeat count must be a positive integer, found {found}")]


def test_a_model_wide_default_initialiser():
    from trainc.compiler import lint

    text = (ROOT / "examples" / "digits.train").read_text().replace(
        "  input x: f32[64]\n", "  init = xavier\n  input x: f32[64]\n").replace("dense(10)", "dense(10, init = zeros)")
    spec = analyze(text, "i.train")
    inits = {la.name: dict(la.args)["init"][0] for la in spec.model.layers if la.op == "dense"}
    # the block's explicit `init = he` wins, the final layer's explicit zeros too; nothing is left at the default
    assert inits == {"logits.mlp0.dense0": "he", "logits.mlp1.dense0": "he", "logits.dense0": "zeros"}
    text2 = text.replace("dense(width, init = he)", "dense(width)")
    inits2 = {la.name: dict(la.args)["init"][0] for la in analyze(text2, "i.train").model.layers if la.op == "dense"}
    assert inits2 == {"logits.mlp0.dense0": "xavier", "logits.mlp1.dense0": "xavier", "logits.dense0": "zeros"}
    assert [d.code for d in lint(text2.replace("init = xavier", "init = xavir"), "i.train")] == ["E201"]


SHARED = """
data {
  source = csv("../examples/data/digits.csv", target = "label")
  split  = { train = 0.8, val = 0.2 }
  batch  = 64
}
model {
  input x: f32[64]
  h      = x -> dense(64) -> relu
  a      = h -> dense(64)
  b      = a -> relu -> dense(64, share = a) -> relu
  logits = b -> dense(10)
}
loss      = cross_entropy(logits, target)
optimizer = sgd(lr = 0.1)
stop      { max = 1 epochs }
"""


def test_shared_weights_are_one_set_trained_by_both_uses(tmp_path):
    from tinygrad import Tensor

    from trainc.compiler import lint
    from trainc.compiler.lower import lower
    from trainc.compiler.summary import rows

    spec = analyze(SHARED, "s.train")
    assert dict(spec.model.layers[4].args)["share"] == "a.dense0"
    assert sum(r.params for r in rows(spec)) == 2 * (64 * 64 + 64) + (64 * 10 + 10)
    ds = load_data(spec.data, SPECS, 0)
    program = lower(spec, ds.x_train, ds.y_train, ds.x_val, ds.y_val, n_classes=10)
    assert program.layers["b.dense0"] is program.layers["a.dense0"]
    assert "b.dense0.W" not in program.named_params() and "a.dense0.W" in program.named_params()
    w0 = program.named_params()["a.dense0.W"].numpy().copy()
    program.step([Tensor(np.arange(64, dtype=np.int32))], Tensor([0.1], dtype="float32"))
    assert not np.allclose(program.named_params()["a.dense0.W"].numpy(), w0)  # trained, once, from both uses
    wrong = SHARED.replace("dense(64, share = a)", "dense(32, share = a)")
    assert [d.code for d in lint(wrong, "s.train")] == ["E401"]
    assert [d.code for d in lint(SHARED.replace("share = a)", "share = h)"), "s.train")] == ["E303"]
