"""Attention and transformer layers against torch, their shape errors, the `text` source, and the
char-level transformer spec against the unigram baseline."""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys

import numpy as np
import pytest
from trainc.compiler import analyze, ir, lint

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import REPO, make_spec, where

torch = pytest.importorskip("torch")

B, T, D, H = 3, 5, 8, 2
SPAN = ir.Span("t.train", 1, 1, 1, 2)


def _make(op: str, args: dict, d: int = D, seed: int = 0):
    """A layer's numpy parameters, as the lowering makes them."""
    from trainc.compiler.lower.layers import MAKE

    layer = ir.Layer(name="h.l0", op=op, args=tuple(args.items()), inputs=("x",), span=SPAN)
    return MAKE[op](layer, ir.TensorType(dtype=ir.DType.f32, shape=(T, d)), np.random.default_rng(seed)).params


def _run(op: str, args: dict, x: np.ndarray, params: dict, training: bool = False) -> np.ndarray:
    from tinygrad import Tensor
    from trainc.compiler.lower.layers import LAYER_IMPL, LayerState

    st = LayerState(params={k: Tensor(v.astype(np.float32)) for k, v in params.items()})
    return LAYER_IMPL[op](Tensor(x.astype(np.float32)), st, args, training).numpy()


def _torch_mha(params: dict, heads: int) -> torch.nn.MultiheadAttention:
    m = torch.nn.MultiheadAttention(D, heads, batch_first=True).double()
    with torch.no_grad():
        m.in_proj_weight.copy_(torch.tensor(params["in_proj_weight"]))
        m.in_proj_bias.copy_(torch.tensor(params["in_proj_bias"]))
        m.out_proj.weight.copy_(torch.tensor(params["out_proj_weight"]))
        m.out_proj.bias.copy_(torch.tensor(params["out_proj_bias"]))
    return m


def _random_params(params: dict, seed: int = 1) -> dict:
    """Non-trivial values for every parameter (biases and norms too), same shapes."""
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.5, v.shape) + (1.0 if "norm" in k and "weight" in k else 0.0)
            for k, v in params.items()}


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_torch_multihead_attention(causal):
    params = _random_params(_make("attention", {"heads": H, "causal": causal, "dropout": 0.0}))
    x = np.random.default_rng(2).normal(size=(B, T, D))
    ours = _run("attention", {"heads": H, "causal": causal, "dropout": 0.0}, x, params)
    xt = torch.tensor(x)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64) if causal else None
    ref, _ = _torch_mha(params, H)(xt, xt, xt, attn_mask=mask, need_weights=False)
    np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    if causal:  # the first step sees only itself: changing later steps leaves it alone
        x2 = x.copy()
        x2[:, 1:] += 1.0
        again = _run("attention", {"heads": H, "causal": True, "dropout": 0.0}, x2, params)
        np.testing.assert_allclose(again[:, 0], ours[:, 0], rtol=1e-5, atol=1e-6)


def test_attention_initialisation_is_torchs():
    p = _make("attention", {"heads": H, "causal": False, "dropout": 0.0})
    assert p["in_proj_weight"].shape == (3 * D, D) and p["out_proj_weight"].shape == (D, D)
    assert np.abs(p["in_proj_weight"]).max() <= math.sqrt(6 / (4 * D))
    assert np.abs(p["out_proj_weight"]).max() <= 1 / math.sqrt(D)
    assert not p["in_proj_bias"].any() and not p["out_proj_bias"].any()


@pytest.mark.parametrize("causal", [False, True])
def test_attention_gradients_match_torch(causal):
    from tinygrad import Tensor
    from trainc.compiler.lower.layers import LAYER_IMPL, LayerState

    args = {"heads": H, "causal": causal, "dropout": 0.0}
    params = _random_params(_make("attention", args))
    x = np.random.default_rng(3).normal(size=(B, T, D))
    w = np.random.default_rng(4).normal(size=(B, T, D))  # loss = sum(y * w)
    st = LayerState(params={k: Tensor(v.astype(np.float32)) for k, v in params.items()})
    xt = Tensor(x.astype(np.float32))
    for t in (xt, *st.params.values()):
        t.requires_grad = True
    loss = (LAYER_IMPL["attention"](xt, st, args, False) * Tensor(w.astype(np.float32))).sum()
    names = list(params)
    grads = loss.gradient(xt, *[st.params[k] for k in names])

    m = _torch_mha(params, H)
    xr = torch.tensor(x, requires_grad=True)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64) if causal else None
    y, _ = m(xr, xr, xr, attn_mask=mask, need_weights=False)
    (y * torch.tensor(w)).sum().backward()
    ref = {"in_proj_weight": m.in_proj_weight.grad, "in_proj_bias": m.in_proj_bias.grad,
           "out_proj_weight": m.out_proj.weight.grad, "out_proj_bias": m.out_proj.bias.grad}
    np.testing.assert_allclose(grads[0].numpy(), xr.grad.numpy(), rtol=1e-3, atol=1e-4)
    for k, g in zip(names, grads[1:]):
        np.testing.assert_allclose(g.numpy(), ref[k].numpy(), rtol=1e-3, atol=1e-4, err_msg=k)


class _PreNormBlock(torch.nn.Module):
    """The reference: x + attn(ln1(x)); x + linear2(gelu(linear1(ln2(x)))), from torch modules."""

    def __init__(self, d, heads, ff):
        super().__init__()
        self.norm1, self.norm2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.linear1, self.linear2 = torch.nn.Linear(d, ff), torch.nn.Linear(ff, d)

    def forward(self, x, mask=None):
        h = self.norm1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.linear2(torch.nn.functional.gelu(self.linear1(self.norm2(x)), approximate="tanh"))


TORCH_NAMES = {  # ours -> torch.nn.TransformerEncoderLayer's state_dict
    "norm1_weight": "norm1.weight", "norm1_bias": "norm1.bias", "norm2_weight": "norm2.weight",
    "norm2_bias": "norm2.bias", "in_proj_weight": "self_attn.in_proj_weight", "in_proj_bias": "self_attn.in_proj_bias",
    "out_proj_weight": "self_attn.out_proj.weight", "out_proj_bias": "self_attn.out_proj.bias",
    "linear1_weight": "linear1.weight", "linear1_bias": "linear1.bias", "linear2_weight": "linear2.weight",
    "linear2_bias": "linear2.bias"}


@pytest.mark.parametrize("causal", [False, True])
def test_transformer_block_matches_torch(causal):
    args = {"heads": H, "ff": 12, "dropout": 0.1, "causal": causal}
    made = _make("transformer", args)
    assert set(made) == set(TORCH_NAMES) and made["linear1_weight"].shape == (12, D)
    params = _random_params(made)
    x = np.random.default_rng(5).normal(size=(B, T, D))
    ours = _run("transformer", args, x, params)  # evaluation: no dropout
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=torch.float64) if causal else None

    block = _PreNormBlock(D, H, 12).double()
    own = {"norm1.weight": "norm1_weight", "norm1.bias": "norm1_bias", "norm2.weight": "norm2_weight",
           "norm2.bias": "norm2_bias", "attn.in_proj_weight": "in_proj_weight", "attn.in_proj_bias": "in_proj_bias",
           "attn.out_proj.weight": "out_proj_weight", "attn.out_proj.bias": "out_proj_bias",
           "linear1.weight": "linear1_weight", "linear1.bias": "linear1_bias", "linear2.weight": "linear2_weight",
           "linear2.bias": "linear2_bias"}
    block.load_state_dict({k: torch.tensor(params[v]) for k, v in own.items()})
    ref = block(torch.tensor(x), mask).detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)

    # and torch's own encoder layer, norm_first, with the tanh gelu, loads our weights by name
    layer = torch.nn.TransformerEncoderLayer(D, H, 12, dropout=0.0, activation=torch.nn.GELU(approximate="tanh"),
                                             batch_first=True, norm_first=True).double().eval()
    layer.load_state_dict({TORCH_NAMES[k]: torch.tensor(v) for k, v in params.items()})
    ref2 = layer(torch.tensor(x), src_mask=mask, is_causal=causal).detach().numpy()
    np.testing.assert_allclose(ours, ref2, rtol=1e-4, atol=1e-4)


def test_transformer_ff_defaults_to_four_times_width_and_dropout_trains_only():
    made = _make("transformer", {"heads": H, "ff": 0, "dropout": 0.5, "causal": False})
    assert made["linear1_weight"].shape == (4 * D, D)
    x = np.random.default_rng(6).normal(size=(B, T, D))
    args = {"heads": H, "ff": 0, "dropout": 0.5, "causal": False}
    a, b = _run("transformer", args, x, made), _run("transformer", args, x, made)
    np.testing.assert_array_equal(a, b)
    from tinygrad import Context

    with Context(TRAINING=1):
        c = _run("transformer", args, x, made, training=True)
    assert not np.allclose(a, c)


def test_position_embedding_take_last_and_mean_pool():
    made = _make("position_embedding", {})
    assert made["W"].shape == (T, D) and 0.01 < made["W"].std() < 0.03
    x = np.random.default_rng(7).normal(size=(B, T, D))
    np.testing.assert_allclose(_run("position_embedding", {}, x, made), x + made["W"], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(_run("take_last", {}, x, {}), x[:, -1], rtol=1e-6)
    np.testing.assert_allclose(_run("mean_pool", {}, x, {}), x.mean(1), rtol=1e-5, atol=1e-6)


# ---- shapes ------------------------------------------------------------------------------------

SEQ_MODEL = "model {{\n  input x: f32[16, 12]\n  logits = x -> {layers} -> dense(3)\n}}"


def test_heads_must_divide_the_width():
    for layer in ("attention(5)", "transformer(5)"):
        src = make_spec(model=SEQ_MODEL.format(layers=f"{layer} -> take_last"))
        diags = lint(src, "t.train")
        assert [(d.code, d.span.line, d.span.col) for d in diags] == [("E401", *where(src, layer))]
        assert "D = 12 is not divisible by 5" in diags[0].message and "heads = 4" in diags[0].help
    assert lint(make_spec(model=SEQ_MODEL.format(layers="transformer(4) -> mean_pool")), "t.train") == []


def test_sequence_layers_refuse_other_shapes():
    src = make_spec()  # x: f32[8]
    src = src.replace("dense(16) -> relu", "attention(2)")
    diags = lint(src, "t.train")
    assert [(d.code, *(d.span.line, d.span.col)) for d in diags] == [("E401", *where(src, "attention(2)"))]
    assert "[T, D]" in diags[0].message
    ids = make_spec(model="model {\n  input x: i32[16]\n  logits = x -> take_last -> dense(3)\n}")
    diags = [d for d in lint(ids, "t.train") if d.code != "E307"]  # E307: token ids must not be normalised
    assert [d.code for d in diags] == ["E401"] and "embedding" in diags[0].help
    shapes = analyze(make_spec(model=SEQ_MODEL.format(layers="position_embedding -> transformer(3) -> take_last")),
                     "t.train").model.layers
    assert [tuple(la.out.shape) for la in shapes] == [(16, 12), (16, 12), (12,), (3,)]


# ---- the text source ---------------------------------------------------------------------------


def _text_data(path: pathlib.Path, level="char", window=3, vocab_from=0.8, train=0.8):
    from trainc.runtime.data import load_data

    src = (f'data {{\n  source = text("{path.name}", level = {level}, window = {window}, vocab_from = {vocab_from})\n'
           f"  split = {{ train = {train}, val = {1 - train:.4g} }}\n  normalize = none\n  batch = 2\n}}")
    model = f"model {{\n  input x: i32[{window}]\n  logits = x -> embedding(9, 4) -> take_last -> dense(3)\n}}"
    spec = analyze(make_spec(data=src, model=model), "t.train")
    return load_data(spec.data, path.parent, 0)


def test_text_windows_and_vocabulary_by_hand(tmp_path):
    from trainc.runtime.sources.text import read_text

    (tmp_path / "t.txt").write_text("abcabcabdd")  # 10 chars: 7 examples of window 3
    ds = _text_data(tmp_path / "t.txt", window=3, vocab_from=0.75)
    # the first round(0.75 * 7) = 5 examples read chars [0, 8): "abcabcab" -> a=0 b=1 c=2; 'd' is <unk> = 3
    ids = [0, 1, 2, 0, 1, 2, 0, 1, 3, 3]
    x = np.array([ids[i:i + 3] for i in range(7)], dtype=np.float32)
    y = np.array([ids[i + 3] for i in range(7)])
    n_tr = round(0.8 * 7)  # the split is chronological
    np.testing.assert_array_equal(ds.x_train, x[:n_tr])
    np.testing.assert_array_equal(ds.x_val, x[n_tr:])
    np.testing.assert_array_equal(ds.y_train, y[:n_tr])  # class index == token id: every id is a target here
    np.testing.assert_array_equal(ds.y_val, y[n_tr:])
    assert ds.classes == ("a", "b", "c", "<unk>") and ds.n_classes == 4  # class index == token id

    src = ir.Source(kind="text", path="t.txt", args=(("level", "char"), ("window", 3), ("vocab_from", 0.75)), span=SPAN)
    raw = read_text(src, tmp_path, ir.Task.classification)
    assert raw.vocab == ("a", "b", "c", "<unk>") and raw.ordered


def test_text_word_level_and_no_unk_when_all_seen(tmp_path):
    from trainc.runtime.sources.text import read_text, tokenize

    assert tokenize("The cat, the CAT.\nA cat!", "word") == ["The", "cat", ",", "the", "CAT", ".", "A", "cat", "!"]
    (tmp_path / "w.txt").write_text("to be , or not to be , to be")
    src = ir.Source(kind="text", path="w.txt", args=(("level", "word"), ("window", 2), ("vocab_from", 1.0)), span=SPAN)
    raw = read_text(src, tmp_path, ir.Task.classification)
    assert raw.vocab == (",", "be", "not", "or", "to")
    np.testing.assert_array_equal(raw.x[0], [4, 1]) and raw.y[0] == "0"


def test_text_errors(tmp_path):
    from trainc.runtime.data import DataError
    from trainc.runtime.sources.text import read_text

    (tmp_path / "short.txt").write_text("abc")
    src = ir.Source(kind="text", path="short.txt", span=SPAN,
                    args=(("level", "char"), ("window", 3), ("vocab_from", 0.8)))
    with pytest.raises(DataError) as e:
        read_text(src, tmp_path, ir.Task.classification)
    assert e.value.diagnostic.code == "E505"
    with pytest.raises(DataError) as e:
        read_text(src, tmp_path, ir.Task.regression)
    assert e.value.diagnostic.code == "E506"
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00abc")
    with pytest.raises(DataError) as e:
        read_text(ir.Source(kind="text", path="bin.txt", args=(), span=SPAN), tmp_path, ir.Task.classification)
    assert e.value.diagnostic.code == "E502"


# ---- the spec ----------------------------------------------------------------------------------

SPEC = REPO / "specs" / "transformer_chars.train"


def _unigram(ds) -> tuple[float, float]:
    """Entropy of the training targets' frequencies, and their cross-entropy on val (add-one smoothed)."""
    counts = np.bincount(ds.y_train, minlength=ds.n_classes).astype(np.float64)
    p = counts / counts.sum()
    h = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    q = (counts + 1) / (counts.sum() + len(counts))
    return h, float(-np.log(q[ds.y_val]).mean())


def _ensure_embedding(monkeypatch):
    """Until the sequence family's embedding runs on tinygrad 0.14 (it passes `device=` to arange)."""
    from tinygrad import Tensor
    from trainc.compiler.lower.layers import LAYER_IMPL, LayerState

    try:
        LAYER_IMPL["embedding"](Tensor([[1, 0]]), LayerState(params={"W": Tensor.ones(3, 2)}), {}, False).realize()
    except TypeError:
        def embedding(x, st, a, training):
            w = st.params["W"]
            return (x.unsqueeze(-1) == Tensor.arange(w.shape[0])).float() @ w

        monkeypatch.setitem(LAYER_IMPL, "embedding", embedding)


def test_transformer_chars_spec_beats_the_unigram_baseline(tmp_path, monkeypatch):
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    _ensure_embedding(monkeypatch)
    assert lint(SPEC.read_text(), str(SPEC)) == []
    spec = analyze(SPEC.read_text(), str(SPEC))
    ds = load_data(spec.data, SPEC.parent, spec.run.seed)
    assert ds.n_classes == 58 and len(ds.classes) == 58 and ds.classes[1] == " "  # class index == character id
    h, cross = _unigram(ds)
    assert 3.0 < h < 3.5
    train(spec, ds, tmp_path / "run", Progress(quiet=True))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]["val.loss"]
    assert final < h - 0.6 and final < cross - 0.6, (final, h, cross)
