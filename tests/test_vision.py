"""Vision layers (reshape, conv1d/conv2d, pooling, layernorm, groupnorm, batchnorm on [C, ...])
and initialisers.

- every layer's forward pass against PyTorch (skipped without torch) and, for convolutions and
  pooling, against direct numpy loops written from the definitions;
- conv2d's gradients against PyTorch;
- shape inference (valid/same/stride/dilation/groups) and its E401 errors with their positions;
- initialiser statistics and torch's fan_in/fan_out for dense and convolution weights;
- specs/cnn_digits.train trains in process to a concrete accuracy.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import make_spec, where  # noqa: E402

from trainc.compiler import analyze, ir, lint  # noqa: E402
from trainc.compiler import catalog as C  # noqa: E402

pytest.importorskip("tinygrad")

ROOT = Path(__file__).parents[1]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def layer_args(op: str, **kw) -> dict:
    """A layer's arguments as the resolver gives them: the catalogue's defaults, then `kw`."""
    a = {p.name: p.default for p in C.LAYERS.get(op).params}
    a.update(kw)
    if "init" in a and isinstance(a["init"], str):
        a["init"] = (a["init"], ())
    return a


def run_layer(op: str, x: np.ndarray, params: dict | None = None, buffers: dict | None = None,
              training: bool = False, **kw):
    """Apply one layer's tinygrad implementation; returns (y as float64, state)."""
    from tinygrad import Tensor

    from trainc.compiler.lower import LAYER_IMPL, LayerState

    st = LayerState(params={k: Tensor(np.asarray(v, np.float32)) for k, v in (params or {}).items()},
                    buffers={k: Tensor(np.asarray(v, np.float32)).contiguous().realize()
                             for k, v in (buffers or {}).items()})
    y = LAYER_IMPL[op](Tensor(x.astype(np.float32)), st, layer_args(op, **kw), training)
    if st.pending:
        Tensor.realize(y, *st.pending)
    return y.numpy().astype(np.float64), st


def np_conv(x, w, b, stride=1, pad=((0, 0), (0, 0)), dilation=1, groups=1):
    """Direct 2-D convolution (cross-correlation, as torch) by loops: x [B, C, H, W], w [F, C/g, k, k]."""
    x = np.pad(x, ((0, 0), (0, 0), *pad))
    B, _, H, W = x.shape
    F, cg, kh, kw = w.shape
    oh = (H - dilation * (kh - 1) - 1) // stride + 1
    ow = (W - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((B, F, oh, ow))
    fg = F // groups
    for f in range(F):
        g = f // fg
        for i in range(oh):
            for j in range(ow):
                patch = x[:, g * cg:(g + 1) * cg, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                          j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
                out[:, f, i, j] = (patch * w[f]).sum(axis=(1, 2, 3)) + (b[f] if b is not None else 0.0)
    return out


def np_pool(x, size, stride, reduce):
    """Direct pooling over the trailing 1 or 2 axes of [B, C, ...] by loops."""
    spatial = x.shape[2:]
    outs = [(n - size) // stride + 1 for n in spatial]
    out = np.zeros(x.shape[:2] + tuple(outs))
    for idx in np.ndindex(*outs):
        window = x[(slice(None), slice(None), *[slice(i * stride, i * stride + size) for i in idx])]
        out[(slice(None), slice(None), *idx)] = reduce(window.reshape(*x.shape[:2], -1), axis=-1)
    return out


RNG = np.random.default_rng(0)


# ---------------------------------------------------------------------------------------------
# 1. Convolutions: numpy loops and torch
# ---------------------------------------------------------------------------------------------

CONV2D = {  # name: (input [B, C, H, W], filters, kernel, stride, padding, dilation, groups, bias)
    "valid": ((2, 3, 7, 6), 4, 3, 1, "valid", 1, 1, True),
    "same_odd": ((2, 2, 6, 6), 3, 3, 1, "same", 1, 1, True),
    "same_even_dilated": ((1, 2, 7, 5), 2, 4, 1, "same", 2, 1, False),
    "stride2_pad1": ((2, 3, 8, 7), 5, 3, 2, (1.0,), 1, 1, True),
    "pad_per_axis": ((1, 2, 5, 6), 2, 2, 1, (1.0, 2.0), 1, 1, True),
    "groups": ((2, 4, 6, 6), 6, 3, 1, "valid", 1, 2, True),
    "dilation_stride": ((1, 2, 9, 9), 3, 3, 2, "valid", 2, 1, True),
}


def _torch_pad(padding):
    return padding if isinstance(padding, str) else tuple(int(p) for p in padding) if len(padding) > 1 \
        else int(padding[0])


@pytest.mark.parametrize("case", sorted(CONV2D))
def test_conv2d_forward_matches_numpy_and_torch(case):
    from trainc.compiler.catalog.layers_vision import conv_padding

    shape, f, k, s, p, d, g, bias = CONV2D[case]
    x = RNG.normal(size=shape)
    w = RNG.normal(size=(f, shape[1] // g, k, k))
    b = RNG.normal(size=f) if bias else None
    params = {"W": w, **({"b": b} if bias else {})}
    y, _ = run_layer("conv2d", x, params, filters=f, kernel=k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    pads = conv_padding(p, 2, k, d, s)
    want = np_conv(x, w, b, s, pads, d, g)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    # and the catalogue's shape function agrees with the computed shape
    t = C.LAYERS.get("conv2d").extra["shape"](ir.TensorType(dtype=ir.DType.f32, shape=shape[1:]),
                                               layer_args("conv2d", filters=f, kernel=k, stride=s, padding=p,
                                                          dilation=d, groups=g))
    assert (shape[0], *t.shape) == y.shape

    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), torch.tensor(b) if bias else None, stride=s,
                                     padding=_torch_pad(p), dilation=d, groups=g)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding,stride,dilation,groups", [("valid", 1, 1, 1), ("same", 1, 1, 1), ("same", 1, 3, 2),
                                                           ((2.0,), 2, 1, 1)])
@pytest.mark.filterwarnings("ignore:Using padding=.same.")
def test_conv1d_forward_matches_torch(padding, stride, dilation, groups):
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=(3, 4, 11))
    w, b = RNG.normal(size=(6, 4 // groups, 4)), RNG.normal(size=6)
    y, _ = run_layer("conv1d", x, {"W": w, "b": b}, filters=6, kernel=4, stride=stride, padding=padding,
                     dilation=dilation, groups=groups)
    ref = torch.nn.functional.conv1d(torch.tensor(x), torch.tensor(w), torch.tensor(b), stride=stride,
                                     padding=_torch_pad(padding), dilation=dilation, groups=groups)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


def test_conv2d_gradients_match_torch():
    torch = pytest.importorskip("torch")
    from tinygrad import Tensor

    from trainc.compiler.lower import LAYER_IMPL, LayerState

    x = RNG.normal(size=(2, 4, 6, 5))
    w, b = RNG.normal(size=(6, 2, 3, 3)), RNG.normal(size=6)
    r = RNG.normal(size=(2, 6, 3, 3))  # the output's cotangent: stride 2, padding 1
    tx, tw, tb = (Tensor(v.astype(np.float32)) for v in (x, w, b))
    a = layer_args("conv2d", filters=6, kernel=3, stride=2, padding=(1.0,), groups=2)
    y = LAYER_IMPL["conv2d"](tx, LayerState(params={"W": tw, "b": tb}), a, True)
    gx, gw, gb = (y * Tensor(r.astype(np.float32))).sum().gradient(tx, tw, tb)

    px, pw, pb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    ref = torch.nn.functional.conv2d(px, pw, pb, stride=2, padding=1, groups=2)
    (ref * torch.tensor(r)).sum().backward()
    assert y.shape == tuple(ref.shape)
    for got, want in ((gx, px), (gw, pw), (gb, pb)):
        np.testing.assert_allclose(got.numpy(), want.grad.numpy(), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 2. Pooling and reshape
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["maxpool", "avgpool"])
@pytest.mark.parametrize("shape,size,stride", [((2, 3, 8, 8), 2, None), ((2, 3, 7, 5), 3, 2), ((2, 3, 9), 2, None),
                                               ((1, 2, 10), 3, 1)])
def test_pooling_matches_numpy_and_torch(op, shape, size, stride):
    x = RNG.normal(size=shape)
    y, _ = run_layer(op, x, size=size, stride=stride)
    s = stride or size
    np.testing.assert_allclose(y, np_pool(x, size, s, np.max if op == "maxpool" else np.mean), rtol=1e-5, atol=1e-6)
    torch = pytest.importorskip("torch")
    fn = getattr(torch.nn.functional, f"{op[:3]}_pool{len(shape) - 2}d")
    np.testing.assert_allclose(y, fn(torch.tensor(x), size, s).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (3, 4, 7)])
def test_global_pooling(shape):
    x = RNG.normal(size=shape)
    axes = tuple(range(2, len(shape)))
    np.testing.assert_allclose(run_layer("global_avgpool", x)[0], x.mean(axes), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run_layer("global_maxpool", x)[0], x.max(axes), rtol=1e-6)


def test_reshape_is_row_major():
    x = RNG.normal(size=(3, 64))
    y, _ = run_layer("reshape", x, shape=(1.0, 8.0, 8.0))
    np.testing.assert_array_equal(y, x.astype(np.float32).reshape(3, 1, 8, 8))
    y, _ = run_layer("reshape", x, shape=(4.0, -1.0))
    assert y.shape == (3, 4, 16)


# ---------------------------------------------------------------------------------------------
# 3. Normalisation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 6), (3, 5, 7), (2, 3, 4, 6)])
def test_layernorm_matches_torch(shape):
    x = RNG.normal(size=shape) * 3 + 1
    g, b = RNG.normal(size=shape[-1]), RNG.normal(size=shape[-1])
    y, _ = run_layer("layernorm", x, {"gamma": g, "beta": b}, eps=1e-3)
    want = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * g + b
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    torch = pytest.importorskip("torch")
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (shape[-1],), torch.tensor(g), torch.tensor(b), eps=1e-3)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape,groups", [((2, 6, 5, 4), 3), ((3, 4, 7), 2), ((2, 4, 3, 3), 4), ((2, 4, 5), 1)])
def test_groupnorm_matches_torch(shape, groups):
    torch = pytest.importorskip("torch")
    x = RNG.normal(size=shape) * 2 - 1
    g, b = RNG.normal(size=shape[1]), RNG.normal(size=shape[1])
    y, _ = run_layer("groupnorm", x, {"gamma": g, "beta": b}, groups=groups)
    ref = torch.nn.functional.group_norm(torch.tensor(x), groups, torch.tensor(g), torch.tensor(b), eps=1e-5)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(8, 5), (6, 3, 7), (4, 3, 5, 6)])
def test_batchnorm_per_channel_matches_torch(shape):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x = RNG.normal(size=shape) * 2 + 3
    g, b = RNG.normal(size=c), RNG.normal(size=c)
    rm0, rv0 = RNG.normal(size=c), RNG.uniform(0.5, 2, size=c)
    bufs = {"running_mean": rm0, "running_var": rv0}
    y, st = run_layer("batchnorm", x, {"gamma": g, "beta": b}, bufs, training=True, momentum=0.2)
    trm, trv = torch.tensor(rm0), torch.tensor(rv0)
    ref = torch.nn.functional.batch_norm(torch.tensor(x), trm, trv, torch.tensor(g), torch.tensor(b), training=True,
                                         momentum=0.2, eps=1e-5)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(st.buffers["running_mean"].numpy(), trm.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(st.buffers["running_var"].numpy(), trv.numpy(), rtol=1e-5, atol=1e-5)
    # evaluation normalises with the running statistics
    y, _ = run_layer("batchnorm", x, {"gamma": g, "beta": b}, bufs, training=False)
    ref = torch.nn.functional.batch_norm(torch.tensor(x), torch.tensor(rm0), torch.tensor(rv0), torch.tensor(g),
                                         torch.tensor(b), training=False, eps=1e-5)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------
# 4. Shape inference and its errors
# ---------------------------------------------------------------------------------------------

SHAPES = [  # (input shape, pipeline, output shape)
    ("64", "reshape([1, 8, 8])", (1, 8, 8)),
    ("64", "reshape([4, -1])", (4, 16)),
    ("1, 8, 8", "conv2d(16, 3)", (16, 6, 6)),
    ("1, 8, 8", "conv2d(16, 3, padding = same)", (16, 8, 8)),
    ("1, 8, 8", "conv2d(16, 4, padding = same)", (16, 8, 8)),
    ("1, 8, 8", "conv2d(16, 3, padding = [1])", (16, 8, 8)),
    ("1, 8, 9", "conv2d(4, 3, padding = [0, 2])", (4, 6, 11)),
    ("3, 9, 9", "conv2d(8, 3, stride = 2)", (8, 4, 4)),
    ("3, 10, 10", "conv2d(8, 3, stride = 2, padding = [1])", (8, 5, 5)),
    ("3, 9, 9", "conv2d(8, 3, dilation = 2)", (8, 5, 5)),
    ("3, 9, 9", "conv2d(8, 3, dilation = 2, padding = same)", (8, 9, 9)),
    ("4, 6, 6", "conv2d(8, 1, groups = 4)", (8, 6, 6)),
    ("4, 20", "conv1d(8, 5)", (8, 16)),
    ("4, 20", "conv1d(8, 5, padding = same)", (8, 20)),
    ("4, 20", "conv1d(8, 4, stride = 3)", (8, 6)),
    ("16, 8, 8", "maxpool(2)", (16, 4, 4)),
    ("16, 7, 7", "avgpool(3, stride = 2)", (16, 3, 3)),
    ("16, 9", "maxpool", (16, 4)),
    ("16, 5, 5", "global_avgpool", (16,)),
    ("16, 5", "global_maxpool", (16,)),
    ("16, 5, 5", "layernorm", (16, 5, 5)),
    ("16, 5, 5", "groupnorm(4)", (16, 5, 5)),
    ("16, 5, 5", "batchnorm", (16, 5, 5)),
    ("1, 8, 8", "conv2d(8, 3, padding = same) -> maxpool -> conv2d(4, 3) -> flatten", (16,)),
]


@pytest.mark.parametrize("inp,pipe,out", SHAPES, ids=[p for _, p, _ in SHAPES])
def test_shape_inference(inp, pipe, out):
    src = make_spec(model=f"model {{\n  input x: f32[{inp}]\n  h = x -> {pipe}\n"
                          f"  logits = h -> flatten -> dense(3)\n}}")
    spec = analyze(src, "s.train")
    h = [la for la in spec.model.layers if la.name.startswith("h.")][-1]
    assert h.out.shape == out


ERRORS = [  # (input shape, pipeline, the layer the error is at, words the message has)
    ("64", "reshape([1, 8, 9])", "reshape", ["f32[64]", "[1, 8, 9]", "64"]),
    ("64", "reshape([3, -1])", "reshape", ["f32[64]", "multiple of 3"]),
    ("64", "conv2d(8, 3)", "conv2d", ["f32[64]", "[channels, height, width]"]),
    ("4, 20", "conv2d(8, 3)", "conv2d", ["f32[4, 20]"]),
    ("1, 8, 8", "conv1d(8, 3)", "conv1d", ["f32[1, 8, 8]", "[channels, length]"]),
    ("1, 8, 8", "conv2d(8, 9)", "conv2d", ["f32[1, 8, 8]", "spanning 9"]),
    ("3, 8, 8", "conv2d(8, 3, groups = 2)", "conv2d", ["f32[3, 8, 8]", "divisible by 2"]),
    ("1, 8, 8", "conv2d(8, 3, stride = 2, padding = same)", "conv2d", ["stride = 1"]),
    ("1, 8, 8", "conv2d(8, 3, padding = [1, 1, 1])", "conv2d", ["3 entries"]),
    ("1, 8, 8", "conv2d(8, 3, padding = [-1])", "conv2d", ["negative"]),
    ("64", "maxpool(2)", "maxpool", ["f32[64]"]),
    ("1, 3, 3", "avgpool(4)", "avgpool", ["f32[1, 3, 3]", "window of 4"]),
    ("64", "global_avgpool", "global_avgpool", ["f32[64]"]),
    ("6, 4, 4", "groupnorm(4)", "groupnorm", ["f32[6, 4, 4]", "divisible by 4"]),
]


@pytest.mark.parametrize("inp,pipe,at,words", ERRORS, ids=[p for _, p, _, _ in ERRORS])
def test_shape_errors_are_e401_at_the_layer(inp, pipe, at, words):
    src = make_spec(model=f"model {{\n  input x: f32[{inp}]\n  logits = x -> {pipe} -> flatten -> dense(3)\n}}")
    diags = lint(src, "s.train")
    assert [(d.code, d.span.line, d.span.col) for d in diags] == [("E401", *where(src, at))], diags
    for w in words:
        assert w in diags[0].message, diags[0].message


def test_shape_error_helps_with_a_reshape():
    src = make_spec(model="model {\n  input x: f32[64]\n  logits = x -> conv2d(8, 3) -> flatten -> dense(3)\n}")
    (d,) = lint(src, "s.train")
    assert d.help == "reshape it first: reshape([1, 8, 8])"


# ---------------------------------------------------------------------------------------------
# 5. Initialisers
# ---------------------------------------------------------------------------------------------


def test_fans_follow_torch():
    torch = pytest.importorskip("torch")
    from trainc.compiler.lower.layers import fans

    for shape in [(16, 3, 5, 5), (8, 2, 3), (7, 4, 2, 3)]:
        assert fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))
    # dense W is [inputs, units]; torch's Linear weight is its transpose
    assert fans((30, 20), dense=True) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(20, 30))


INIT_STATS = {  # init (with args) -> (expected mean, expected std) for a conv weight [64, 32, 3, 3]
    "he": (0.0, math.sqrt(2 / 288)),
    "kaiming": (0.0, math.sqrt(2 / 288)),
    "he_uniform": (0.0, math.sqrt(6 / 288) / math.sqrt(3)),
    "kaiming_uniform": (0.0, math.sqrt(6 / 288) / math.sqrt(3)),
    "xavier": (0.0, math.sqrt(6 / (288 + 576)) / math.sqrt(3)),
    "glorot": (0.0, math.sqrt(6 / (288 + 576)) / math.sqrt(3)),
    "xavier_normal": (0.0, math.sqrt(2 / (288 + 576))),
    "glorot_normal": (0.0, math.sqrt(2 / (288 + 576))),
    "normal(std = 0.5, mean = 1)": (1.0, 0.5),
    "uniform(a = 0.2)": (0.0, 0.2 / math.sqrt(3)),
    "zeros": (0.0, 0.0),
    "ones": (1.0, 0.0),
}


def _conv_layer(init: str):
    src = make_spec(model=f"model {{\n  input x: f32[32, 6, 6]\n  logits = x -> conv2d(64, 3, init = {init}) -> "
                          "flatten -> dense(3)\n}")
    spec = analyze(src, "s.train")
    return spec.model.layers[0], spec.model.inputs[0].type


@pytest.mark.parametrize("init", sorted(INIT_STATS))
def test_init_statistics_on_conv_weights(init):
    from trainc.compiler.lower import MAKE

    layer, t = _conv_layer(init)
    st = MAKE["conv2d"](layer, t, np.random.default_rng(0))
    w = st.params["W"]
    assert w.shape == (64, 32, 3, 3) and np.all(st.params["b"] == 0)
    mean, std = INIT_STATS[init]
    assert w.mean() == pytest.approx(mean, abs=0.02 * max(std, 0.05))
    assert w.std() == pytest.approx(std, rel=0.03, abs=1e-12)
    if "uniform" in init or init in ("xavier", "glorot"):
        assert np.abs(w).max() <= std * math.sqrt(3) + 1e-12  # bounded by a


def test_aliases_draw_the_same_weights():
    from trainc.compiler.lower import MAKE

    for alias, of in [("glorot", "xavier"), ("kaiming", "he"), ("kaiming_uniform", "he_uniform")]:
        a, b = (MAKE["conv2d"](*_conv_layer(n), np.random.default_rng(3)).params["W"] for n in (alias, of))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("shape", [(64, 32, 3, 3), (8, 4, 5, 5), (20, 30)])
def test_orthogonal(shape):
    from trainc.compiler.lower.layers import init_weight

    w = init_weight(("orthogonal", (("gain", 2.0),)), shape, np.random.default_rng(0))
    m = w.reshape(shape[0], -1) / 2.0
    small = min(m.shape)
    gram = m @ m.T if m.shape[0] == small else m.T @ m
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)


def test_dense_init_uses_inputs_and_units():
    from trainc.compiler.lower import MAKE

    src = make_spec(model="model {\n  input x: f32[400]\n  logits = x -> dense(300, init = xavier_normal)\n}")
    spec = analyze(src, "s.train")
    w = MAKE["dense"](spec.model.layers[0], spec.model.inputs[0].type, np.random.default_rng(0)).params["W"]
    assert w.shape == (400, 300)
    assert w.std() == pytest.approx(math.sqrt(2 / 700), rel=0.02)


# ---------------------------------------------------------------------------------------------
# 6. The CNN spec trains
# ---------------------------------------------------------------------------------------------


def test_cnn_digits_spec_trains(tmp_path):
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    path = ROOT / "specs" / "cnn_digits.train"
    text = path.read_text()
    # the spec as shipped, with a lower threshold so that it stops early (stop.max stays, so the
    # cosine schedule is the shipped one): seed 0 reaches 0.9805 at epoch 6
    assert "when  = val.accuracy >= 0.99" in text
    text = text.replace("when  = val.accuracy >= 0.99", "when  = val.accuracy >= 0.98")
    spec = analyze(text, str(path))
    kinds = [la.op for la in spec.model.layers]
    assert kinds[:3] == ["reshape", "conv2d", "batchnorm"] and "maxpool" in kinds
    ds = load_data(spec.data, path.parent, spec.run.seed)
    train(spec, ds, tmp_path / "run", Progress(quiet=True))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["final"]["val.accuracy"] >= 0.98, summary["final"]
    assert summary["epochs"] <= 10, summary["stop_reason"]


def test_non_integer_sizes_are_caught_at_the_argument():
    src = make_spec(model="model {\n  input x: f32[64]\n  logits = x -> reshape([1.5, 8]) -> flatten -> dense(3)\n}")
    diags = lint(src, "t.train")
    assert [(d.code, d.message) for d in diags] == [("E303", "'shape' of reshape must be integers, found 1.5")]
