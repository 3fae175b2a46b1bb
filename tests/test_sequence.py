"""Sequence layers (embedding, rnn, lstm, gru), the `series` data source and the sunspot specs.

References: torch.nn.Embedding/RNN/LSTM/GRU with the same weights copied in (forward and, for the
LSTM, gradients), a small numpy LSTM written from the gate formulas, windows of a tiny CSV worked
out by hand, and the naive forecast ("next year = this year") computed in numpy from the CSV.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from trainc.compiler import analyze, ir, lint

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]
SUNSPOTS = ROOT / "examples" / "data" / "sunspots.csv"

B, T, D, H = 3, 5, 2, 4  # small shapes: one compile serves every configuration


def tt(dtype: ir.DType, shape: tuple[int, ...]) -> ir.TensorType:
    return ir.TensorType(dtype=dtype, shape=shape)


def layer(op: str, **args) -> ir.Layer:
    return ir.Layer(name="h", op=op, args=tuple(args.items()), inputs=("x",), span=ir.NOWHERE)


def run_layer(op: str, params: dict[str, np.ndarray], x: np.ndarray, **args) -> np.ndarray:
    from tinygrad import Tensor, dtypes
    from trainc.compiler.lower import LAYER_IMPL, LayerState

    st = LayerState(params={k: Tensor(v.astype(np.float32)) for k, v in params.items()})
    xt = Tensor(x.astype(np.int32), dtype=dtypes.int32) if x.dtype.kind == "i" else Tensor(x.astype(np.float32))
    return LAYER_IMPL[op](xt, st, args, False).numpy()


def make(op: str, x_type: ir.TensorType, seed: int = 0, **args) -> dict[str, np.ndarray]:
    from trainc.compiler.lower import MAKE

    return MAKE[op](layer(op, **args), x_type, np.random.default_rng(seed)).params


TORCH_NAMES = {"W_ih": "weight_ih_l0", "W_hh": "weight_hh_l0", "b_ih": "bias_ih_l0", "b_hh": "bias_hh_l0"}


def torch_module(op: str, params: dict[str, np.ndarray], bidirectional: bool):
    torch = pytest.importorskip("torch")
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[op]
    m = cls(D, H, batch_first=True, bidirectional=bidirectional).double()
    with torch.no_grad():
        for k, v in params.items():
            base, rev = (k[:-8], "_reverse") if k.endswith("_reverse") else (k, "")
            getattr(m, TORCH_NAMES[base] + rev).copy_(torch.from_numpy(v))
    return m


# ---------------------------------------------------------------------------------------------
# Forward passes against torch
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_recurrent_layers_match_torch(op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, D))
    for bidirectional in (False, True):
        params = make(op, tt(ir.DType.f32, (T, D)), units=H, return_sequences=False,
                      bidirectional=bidirectional)
        m = torch_module(op, params, bidirectional)
        out, h_n = m(torch.from_numpy(x))
        h_n = (h_n[0] if op == "lstm" else h_n).detach().numpy()  # [dirs, B, H]
        last = np.concatenate(list(h_n), axis=1)  # forward after the last step, backward after the first
        for seqs, want in ((True, out.detach().numpy()), (False, last)):
            got = run_layer(op, params, x, units=H, return_sequences=seqs, bidirectional=bidirectional)
            assert got.shape == want.shape, (bidirectional, seqs)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{op} bi={bidirectional} seq={seqs}")


def test_recurrent_parameters_have_torch_layout_and_init():
    for op, gates in (("rnn", 1), ("lstm", 4), ("gru", 3)):
        p = make(op, tt(ir.DType.f32, (T, 7)), units=50, return_sequences=False, bidirectional=True)
        assert sorted(p) == sorted(f"{n}{s}" for n in TORCH_NAMES for s in ("", "_reverse"))
        assert p["W_ih"].shape == (gates * 50, 7) and p["W_hh"].shape == (gates * 50, 50)
        assert p["b_ih"].shape == p["b_hh_reverse"].shape == (gates * 50,)
        bound = 1 / math.sqrt(50)
        w = np.concatenate([v.ravel() for v in p.values()])
        assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound  # U(-1/sqrt(H), 1/sqrt(H))
        assert abs(w.mean()) < 0.01 and abs(w.std() - bound / math.sqrt(3)) < 0.01


def test_embedding_matches_torch_and_initialises_standard_normal():
    torch = pytest.importorskip("torch")
    p = make("embedding", tt(ir.DType.i32, (T,)), vocab=11, dim=3)
    assert p["W"].shape == (11, 3)
    big = make("embedding", tt(ir.DType.i32, (T,)), vocab=1000, dim=50)["W"]
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1.0) < 0.02  # N(0, 1) like torch
    ids = np.random.default_rng(2).integers(0, 11, size=(B, T))
    m = torch.nn.Embedding(11, 3).double()
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(p["W"]))
    want = m(torch.from_numpy(ids)).detach().numpy()
    np.testing.assert_allclose(run_layer("embedding", p, ids, vocab=11, dim=3), want, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# An independent numpy LSTM, from the gate formulas
# ---------------------------------------------------------------------------------------------


def np_lstm(x: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """x [B, T, D] -> hidden states [B, T, H]; gates i, f, g, o stacked in that order."""
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731 - the formula, as written in the paper
    n_h = p["W_hh"].shape[1]
    h = c = np.zeros((x.shape[0], n_h))
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ p["W_ih"].T + p["b_ih"] + h @ p["W_hh"].T + p["b_hh"]
        i, f, g, o = (z[:, k * n_h:(k + 1) * n_h] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def test_lstm_matches_a_numpy_cell():
    x = np.random.default_rng(3).normal(size=(B, T, D))
    p = make("lstm", tt(ir.DType.f32, (T, D)), seed=4, units=H, return_sequences=True, bidirectional=False)
    want = np_lstm(x, p)
    got = run_layer("lstm", p, x, units=H, return_sequences=True, bidirectional=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    last = run_layer("lstm", p, x, units=H, return_sequences=False, bidirectional=False)
    np.testing.assert_allclose(last, want[:, -1], rtol=1e-4, atol=1e-5)


def recurrent_gradients(op: str, x: np.ndarray, r: np.ndarray, p: dict[str, np.ndarray], dtype=np.float32):
    """The gradients of sum(layer(x) * r) with respect to x and every parameter, from tinygrad."""
    from tinygrad import Tensor
    from trainc.compiler.lower import LAYER_IMPL, LayerState

    ps = {k: Tensor(v.astype(dtype)) for k, v in p.items()}
    xt = Tensor(x.astype(dtype))
    y = LAYER_IMPL[op](xt, LayerState(params=ps), {"units": H, "return_sequences": True, "bidirectional": True},
                       True)
    grads = (y * Tensor(r.astype(dtype))).sum().gradient(xt, *ps.values())
    Tensor.realize(*grads)  # one schedule for every gradient
    return [g.numpy() for g in grads]


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_recurrent_gradients_match_finite_differences(op):
    """In float64, against central differences of the layer's own forward (itself checked against torch and
    numpy above), along a random direction in every input and parameter at once."""
    from tinygrad import Tensor
    from trainc.compiler.lower import LAYER_IMPL, LayerState

    rng = np.random.default_rng(8)
    t_len = 3
    x, r = rng.normal(size=(B, t_len, D)), rng.normal(size=(B, t_len, 2 * H))
    p = make(op, tt(ir.DType.f32, (t_len, D)), seed=9, units=H, return_sequences=True, bidirectional=True)
    grads = recurrent_gradients(op, x, r, p, np.float64)
    dirs = [rng.normal(size=x.shape)] + [rng.normal(size=v.shape) for v in p.values()]

    def loss(eps: float) -> float:
        ps = {k: Tensor(v + eps * d) for (k, v), d in zip(p.items(), dirs[1:])}
        y = LAYER_IMPL[op](Tensor(x + eps * dirs[0]), LayerState(params=ps),
                           {"units": H, "return_sequences": True, "bidirectional": True}, True)
        return float((y.numpy() * r).sum())

    eps = 1e-5
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, dirs))
    assert analytic == pytest.approx(numeric, rel=1e-6)


@pytest.mark.parametrize("op", ["rnn", "lstm", "gru"])
def test_recurrent_gradients_match_torch(op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    t_len = 3  # three steps carry gradients through time; fewer kernels to compile
    x = rng.normal(size=(B, t_len, D))
    r = rng.normal(size=(B, t_len, 2 * H))  # loss = sum(y * r): a gradient that differs per output
    p = make(op, tt(ir.DType.f32, (t_len, D)), seed=6, units=H, return_sequences=True, bidirectional=True)
    names = list(p)
    grads = recurrent_gradients(op, x, r, p)

    m = torch_module(op, p, bidirectional=True)
    tx = torch.from_numpy(x).requires_grad_()
    (m(tx)[0] * torch.from_numpy(r)).sum().backward()
    np.testing.assert_allclose(grads[0], tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for k, g in zip(names, grads[1:]):
        base, rev = (k[:-8], "_reverse") if k.endswith("_reverse") else (k, "")
        want = getattr(m, TORCH_NAMES[base] + rev).grad.numpy()
        np.testing.assert_allclose(g, want, rtol=1e-4, atol=1e-5, err_msg=k)


# ---------------------------------------------------------------------------------------------
# Shapes and diagnostics
# ---------------------------------------------------------------------------------------------


SPEC = """data {{
  source = series("s.csv", column = "v", window = 8)
  split  = {{ train = 0.8, val = 0.2 }}
  normalize = none
}}
model {{
  input x: {input}
  pred = x -> {layers}
}}
loss      = mse(pred, target)
optimizer = adam(lr = 1e-2)
stop {{ max = 1 epochs }}
"""


def shapes(input_: str, layers: str) -> list[str]:
    spec = analyze(SPEC.format(input=input_, layers=layers), "t.train")
    return [str(la.out) for la in spec.model.layers]


def test_shape_inference():
    assert shapes("f32[8, 3]", "lstm(16) -> dense(1)") == ["f32[16]", "f32[1]"]
    assert shapes("f32[8, 3]", "gru(16, return_sequences = true) -> rnn(4, bidirectional = true) -> dense(1)") == [
        "f32[8, 16]", "f32[8]", "f32[1]"]
    assert shapes("f32[8, 3]", "lstm(5, return_sequences = true, bidirectional = true) -> flatten -> dense(1)") == [
        "f32[8, 10]", "f32[80]", "f32[1]"]
    assert shapes("i32[8]", "embedding(100, 6) -> gru(4) -> dense(1)") == ["f32[8, 6]", "f32[4]", "f32[1]"]


def test_shape_errors_point_at_the_layer():
    text = SPEC.format(input="f32[64]", layers="rnn(8) -> dense(1)")
    (d,) = lint(text, "t.train")
    assert d.code == "E401" and (d.span.line, d.span.col) == (8, 15)
    assert "rnn expects a sequence [T, D]" in d.message and "f32[64]" in d.message
    assert "f32[64, 1]" in d.help
    (d,) = lint(SPEC.format(input="f32[8, 2, 2]", layers="lstm(8) -> dense(1)"), "t.train")
    assert d.code == "E401" and "f32[8, 2, 2]" in d.message
    (d,) = lint(SPEC.format(input="f32[8]", layers="embedding(10, 4) -> gru(2) -> dense(1)"), "t.train")
    assert d.code == "E401" and "i32" in d.message and "i32[8]" in d.help
    (d,) = lint(SPEC.format(input="i32[8]", layers="lstm(4) -> dense(1)"), "t.train")
    assert d.code == "E401" and "embedding" in d.help
    (d,) = lint(SPEC.format(input="f32[8, 1]", layers="lstm(0) -> dense(1)"), "t.train")
    assert d.code.startswith("E3")  # units >= 1, checked by the schema


# ---------------------------------------------------------------------------------------------
# The series source
# ---------------------------------------------------------------------------------------------


def load(tmp_path: Path, csv_text: str, source: str, split: str = "{ train = 0.5, val = 0.5 }",
         loss: str = "mse", normalize: str = "none"):
    from trainc.runtime.data import load_data

    (tmp_path / "s.csv").write_text(csv_text)
    text = (f"data {{\n  source = {source}\n  split = {split}\n  normalize = {normalize}\n"
            f"  target_normalize = none\n}}\nmodel {{\n  input x: f32[3, 1]\n  pred = x -> lstm(2) -> dense(1)\n}}\n"
            f"loss = {loss}(pred, target)\noptimizer = adam(lr = 1e-2)\nstop {{ max = 1 epochs }}\n")
    spec = analyze(text, str(tmp_path / "t.train"))
    return load_data(spec.data, tmp_path, seed=0)


SQUARES = "t,v,w\n" + "".join(f"{t},{t * t},{-t}\n" for t in range(10))


def test_series_windows_by_hand(tmp_path):
    ds = load(tmp_path, SQUARES, 'series("s.csv", column = "v", window = 3, horizon = 2)',
              split="{ train = 0.5, val = 0.5 }")
    # 10 rows, window 3, horizon 2: 10 - 3 - 2 + 1 = 6 examples; example i = v[i..i+2] -> v[i + 4]
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    assert x.shape == (6, 3, 1) and y.shape == (6, 1)
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 4])
    np.testing.assert_array_equal(x[5, :, 0], [25, 36, 49])
    np.testing.assert_array_equal(y[:, 0], [16, 25, 36, 49, 64, 81])
    assert ds.feature_names == ("v",)


def test_series_several_features(tmp_path):
    ds = load(tmp_path, SQUARES, 'series("s.csv", column = "v", window = 2, features = ["w", "v"])',
              split="{ train = 0.75, val = 0.25 }")
    assert ds.x_train.shape == (6, 2, 2) and ds.x_val.shape == (2, 2, 2)
    np.testing.assert_array_equal(ds.x_train[1], [[-1, 1], [-2, 4]])  # rows 1, 2 of [w, v]
    np.testing.assert_array_equal(ds.y_train[:, 0], [4, 9, 16, 25, 36, 49])  # v one row after the window
    assert ds.feature_names == ("w", "v")


def test_series_split_is_chronological(tmp_path):
    text = "v\n" + "".join(f"{t}\n" for t in range(40))
    ds = load(tmp_path, text, 'series("s.csv", column = "v", window = 3)', split="{ train = 0.75, val = 0.25 }",
              normalize="standard")
    # 37 windows: the first 28 train, the last 9 validate, in time order, never shuffled across
    y_tr, y_va = ds.y_train[:, 0], ds.y_val[:, 0]
    np.testing.assert_array_equal(y_tr, np.arange(3, 31))
    np.testing.assert_array_equal(y_va, np.arange(31, 40))
    first = ds.x_val[:, 0, 0] * ds.normalizer.scale[0, 0] + ds.normalizer.shift[0, 0]
    np.testing.assert_allclose(first, np.arange(28, 37), atol=1e-4)
    assert y_tr.max() < y_va.min()


@pytest.mark.parametrize("csv_text, source, code, words", [
    (SQUARES, 'series("s.csv", column = "vv", window = 3)', "E503", "did you mean 'v'"),
    (SQUARES, 'series("s.csv", column = "v", window = 3, features = ["w", "z"])', "E503", "'z'"),
    (SQUARES, 'series("s.csv", column = "v", window = 9, horizon = 2)', "E505", "10 rows"),
    ("t,v\n0,1\n1,x\n2,3\n3,4\n4,5\n", 'series("s.csv", column = "v", window = 2)', "E504", "line 3"),
    ("0,1\n1,2\n", 'series("s.csv", column = "v", window = 1)', "E502", "no header"),
    (SQUARES, 'series("missing.csv", column = "v")', "E501", "not found"),
], ids=["unknown-column", "unknown-feature", "too-few-rows", "not-a-number", "no-header", "no-file"])
def test_series_errors(tmp_path, csv_text, source, code, words):
    from trainc.runtime.data import DataError

    with pytest.raises(DataError) as e:
        load(tmp_path, csv_text, source)
    d = e.value.diagnostic
    assert d.code == code and words in f"{d.message} {d.help}"
    assert d.span.line == 2  # the source line of the spec


def test_series_is_regression_only(tmp_path):
    from trainc.compiler.diagnostics import SpecError
    from trainc.runtime.data import DataError

    with pytest.raises((DataError, SpecError)) as e:
        load(tmp_path, SQUARES, 'series("s.csv", column = "v", window = 3)', loss="cross_entropy")
    if isinstance(e.value, DataError):
        assert e.value.diagnostic.code == "E506"


# ---------------------------------------------------------------------------------------------
# The sunspot specs train and beat the naive forecast
# ---------------------------------------------------------------------------------------------


def naive_val_rmse(window: int, train: float) -> float:
    """RMSE of "next year = this year" on the chronological val split, from the CSV."""
    v = np.loadtxt(SUNSPOTS, delimiter=",", skiprows=1)[:, 1]
    n = len(v) - window  # windows with horizon 1
    n_train = math.floor(train * n + 0.5)
    targets = np.arange(window + n_train, len(v))  # row of each val target
    return float(np.sqrt(((v[targets] - v[targets - 1]) ** 2).mean()))


def test_sunspots_csv():
    rows = SUNSPOTS.read_text().splitlines()
    assert rows[0] == "year,sunspots" and len(rows) == 310
    years = np.loadtxt(SUNSPOTS, delimiter=",", skiprows=1)[:, 0]
    np.testing.assert_array_equal(years, np.arange(1700, 2009))


@pytest.mark.parametrize("name", ["lstm_sunspots", "gru_sunspots"])
def test_sunspot_specs_beat_the_naive_forecast(tmp_path, name):
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    path = ROOT / "specs" / f"{name}.train"
    text = path.read_text()
    assert "max   = 60 epochs" in text  # the shipped length; the suite runs the first 12 epochs (both beat 0.65x
    # the naive forecast by epoch 3 and end near 0.5x; `--set stop.max` shortens the cosine schedule the same way)
    spec = analyze(text.replace("max   = 60 epochs", "max   = 12 epochs"), str(path))
    ds = load_data(spec.data, path.parent, spec.run.seed)
    window = spec.model.inputs[0].type.shape[0]
    naive = naive_val_rmse(window, spec.data.split.train)
    # the val targets are the last years of the file, so the naive forecast reads off their inputs
    tn, nz = ds.target_normalizer, ds.normalizer
    last = ds.x_val[:, -1, 0] * nz.scale[-1, 0] + nz.shift[-1, 0]
    y_val = ds.y_val[:, 0] * tn.scale[0] + tn.shift[0]
    assert naive == pytest.approx(float(np.sqrt(((y_val - last) ** 2).mean())), rel=1e-4)
    result = train(spec, ds, tmp_path / name, Progress(quiet=True))
    rmse = result.final["val.rmse"]
    assert rmse < 0.7 * naive, f"{name}: val.rmse {rmse:.2f}, naive forecast {naive:.2f}"
    assert result.seconds < 120
