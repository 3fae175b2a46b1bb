"""`data.augment`: each augmentation against an independent numpy expectation, seeding, the static
check of where an augmentation may go, and that training sees fresh augmented inputs every epoch while
validation never does."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import make_spec, triples, where
from trainc.compiler import analyze, lint
from trainc.compiler.emit import to_yaml
from trainc.runtime import augment as A


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def images(n: int = 64, c: int = 2, h: int = 5, w: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, c, h, w)).astype(np.float32)


def shifted(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """[C, H, W] moved dy rows down and dx columns right, zeros coming in."""
    out = np.zeros_like(img)
    h, w = img.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def test_flip():
    x = images()
    np.testing.assert_array_equal(A.flip(x, rng(), p=1.0), np.flip(x, axis=-1))
    np.testing.assert_array_equal(A.flip(x, rng(), horizontal=False, vertical=True, p=1.0), np.flip(x, axis=-2))
    np.testing.assert_array_equal(A.flip(x, rng(), p=0.0), x)
    x = images(n=4000, c=1, h=2, w=2)
    out = A.flip(x, rng(), p=0.3)
    mirrored = (out == np.flip(x, axis=-1)).all(axis=(1, 2, 3))
    assert ((out == x).all(axis=(1, 2, 3)) | mirrored).all()  # each image is itself or its mirror
    assert mirrored.mean() == pytest.approx(0.3, abs=0.03)


def test_crop_shifts_within_the_padding():
    x = images(n=400)
    np.testing.assert_array_equal(A.crop(x, rng(), padding=0), x)
    out = A.crop(x, rng(), padding=2)
    seen = set()
    for img, got in zip(x, out):
        moves = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if np.array_equal(got, shifted(img, dy, dx))]
        assert moves, "not a shift of the image within the padding"
        seen.add(moves[0])
    assert len(seen) == 25  # every offset of RandomCrop's window occurs


def test_rotate():
    x = images(c=3, h=6, w=6)
    np.testing.assert_array_equal(A.rotate(x, rng(), degrees=0.0), x)
    quarter = np.full(len(x), 90.0)
    zero = np.zeros(len(x))
    np.testing.assert_allclose(A.affine(x, quarter, zero, zero), np.rot90(x, 1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(A.affine(x, -quarter, zero, zero), np.rot90(x, -1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(A.affine(x, 2 * quarter, zero, zero), np.rot90(x, 2, axes=(2, 3)), atol=1e-6)
    # bilinear interpolation is exact on a linear ramp: rotated by 30 degrees, it is the ramp read at the
    # rotated positions (where those lie inside the image)
    rows, cols = np.mgrid[0:7, 0:7].astype(np.float64)
    ramp = (2 * rows + cols)[None, None].astype(np.float32)
    out = A.affine(ramp, np.array([30.0]), np.zeros(1), np.zeros(1))[0, 0]
    t = np.pi / 6
    back = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]).T  # undo a counter-clockwise turn (y up)
    up, right = 3 - rows, cols - 3
    src_right, src_up = np.einsum("ij,jab->iab", back, np.stack([right, up]))
    src_r, src_c = 3 - src_up, 3 + src_right
    inside = (src_r >= 0) & (src_r <= 6) & (src_c >= 0) & (src_c <= 6)
    assert inside.sum() > 25
    np.testing.assert_allclose(out[inside], (2 * src_r + src_c)[inside], atol=1e-5)
    far = (src_r <= -1) | (src_r >= 7) | (src_c <= -1) | (src_c >= 7)
    assert far.sum() >= 4 and (out[far] == 0).all()  # zeros come in from outside


def test_translate():
    x = images()
    np.testing.assert_array_equal(A.translate(x, rng(), pixels=0.0), x)
    n = len(x)
    out = A.affine(x, np.zeros(n), np.full(n, 1.0), np.full(n, -2.0))
    np.testing.assert_allclose(out, np.stack([shifted(i, 1, -2) for i in x]), atol=1e-6)
    half = A.affine(x, np.zeros(n), np.zeros(n), np.full(n, 0.5))  # half a pixel: the mean of two columns
    np.testing.assert_allclose(half, (x + np.stack([shifted(i, 0, 1) for i in x])) / 2, atol=1e-6)
    moved = A.translate(x, rng(), pixels=1.0)
    assert not np.allclose(moved, x)


def test_brightness_and_contrast():
    x = images(n=2000) + 0.1
    out = A.brightness(x, rng(), amount=0.2)
    factor = out / x
    np.testing.assert_allclose(factor, factor[:, :1, :1, :1] * np.ones_like(x), rtol=1e-5)  # one per image
    f = factor[:, 0, 0, 0]
    assert f.min() >= 0.8 - 1e-6 and f.max() <= 1.2 + 1e-6 and f.std() == pytest.approx(0.4 / np.sqrt(12), rel=0.1)
    out = A.contrast(x, rng(), amount=0.2)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3), keepdims=True), mean, atol=1e-5)  # the mean stays
    f = ((out - mean) / (x - mean)).reshape(len(x), -1)
    np.testing.assert_allclose(f, f[:, :1] * np.ones_like(f), rtol=1e-3, atol=1e-3)
    assert f.min() >= 0.8 - 1e-3 and f.max() <= 1.2 + 1e-3


def test_noise_has_the_stated_std():
    x = images(n=1000)
    d = A.noise(x, rng(), std=0.05) - x
    assert d.std() == pytest.approx(0.05, rel=0.02) and abs(d.mean()) < 1e-3
    np.testing.assert_array_equal(A.noise(x, rng(), std=0.0), x)


# ---------------------------------------------------------------------------------------------
# Series and tokens
# ---------------------------------------------------------------------------------------------


def series(n: int = 2000, t: int = 12, f: int = 2) -> np.ndarray:
    return np.random.default_rng(2).normal(5.0, 2.0, (n, t, f)).astype(np.float32)


def test_jitter_and_scale():
    x = series()
    d = A.jitter(x, rng(), std=0.3) - x
    assert d.std() == pytest.approx(0.3, rel=0.02)
    out = A.scale(x, rng(), std=0.1)
    factor = (out / x).reshape(len(x), -1)
    np.testing.assert_allclose(factor, factor[:, :1] * np.ones_like(factor), rtol=1e-5)  # one factor per window
    assert factor[:, 0].mean() == pytest.approx(1.0, abs=0.01) and factor[:, 0].std() == pytest.approx(0.1, rel=0.05)


def test_time_warp():
    x = series(n=200)
    np.testing.assert_allclose(A.time_warp(x, rng(), strength=0.0), x, atol=1e-5)
    ramp = np.broadcast_to(np.arange(12, dtype=np.float32)[None, :, None], (200, 12, 1))
    out = A.time_warp(ramp, rng(), strength=0.5)[:, :, 0]  # a ramp read at warped times gives those times
    np.testing.assert_allclose(out[:, [0, -1]], [[0, 11]] * 200, atol=1e-5)  # the ends stay
    assert (np.diff(out, axis=1) > 0).all()  # time still runs forward
    assert np.abs(out - np.arange(12)).max() > 0.5  # and is warped
    warped = A.time_warp(x, rng(), strength=0.5)
    lo, hi = np.minimum(x[:, :-1], x[:, 1:]).min(axis=1), np.maximum(x[:, :-1], x[:, 1:]).max(axis=1)
    assert (warped.min(axis=1) >= lo - 1e-5).all() and (warped.max(axis=1) <= hi + 1e-5).all()  # interpolation


def test_token_dropout():
    x = np.random.default_rng(3).integers(1, 50, (500, 40)).astype(np.float32)  # no id 0 in the data
    out = A.token_dropout(x, rng(), p=0.15, token=0)
    dropped = out == 0
    np.testing.assert_array_equal(out[~dropped], x[~dropped])
    assert dropped.mean() == pytest.approx(0.15, abs=0.01)
    np.testing.assert_array_equal(A.token_dropout(x, rng(), p=0.0), x)


def test_token_swap():
    pairs = np.tile(np.array([[1.0, 2.0]], np.float32), (20000, 1))
    out = A.token_swap(pairs, rng(), p=0.2)
    assert (out[:, 0] == 2).mean() == pytest.approx(0.2, abs=0.01)  # one chance to swap
    np.testing.assert_array_equal(A.token_swap(np.array([[1.0, 2.0, 3.0]]), rng(), p=1.0), [[2, 3, 1]])  # in turn
    x = np.random.default_rng(4).permutation(64).reshape(4, 16).astype(np.float32)
    out = A.token_swap(x, rng(), p=0.3)
    np.testing.assert_array_equal(np.sort(out, axis=1), np.sort(x, axis=1))  # the same tokens, moved
    assert not np.array_equal(out, x)
    np.testing.assert_array_equal(A.token_swap(x, rng(), p=0.0), x)


# ---------------------------------------------------------------------------------------------
# Order and seeding
# ---------------------------------------------------------------------------------------------


def data_section(augment: str, shape: str = "1, 5, 5", dtype: str = "f32", layers: str = "flatten -> dense(3)",
                 normalize: str = "standard") -> str:
    return make_spec(data=f'data {{\n  source = npz("d.npz")\n  split = {{ train = 0.8, val = 0.2 }}\n'
                     f'  normalize = {normalize}\n  augment = {augment}\n}}',
                     model=f"model {{\n  input x: {dtype}[{shape}]\n  logits = x -> {layers}\n}}")


def test_listed_order_and_seeding():
    spec = analyze(data_section("[noise(std = 0.1), brightness(0.5)]"), "t.train")
    calls = spec.data.augment
    assert [(c.kind, dict(c.args)) for c in calls] == [("noise", {"std": 0.1}), ("brightness", {"amount": 0.5})]
    x = images()
    r = A.epoch_rng(7, 3)
    np.testing.assert_allclose(A.augment(x, calls, A.epoch_rng(7, 3)), A.brightness(A.noise(x, r, 0.1), r, 0.5),
                               rtol=1e-6)
    np.testing.assert_array_equal(A.augment(x, calls, A.epoch_rng(7, 3)), A.augment(x, calls, A.epoch_rng(7, 3)))
    assert not np.allclose(A.augment(x, calls, A.epoch_rng(7, 3)), A.augment(x, calls, A.epoch_rng(7, 4)))
    assert not np.allclose(A.augment(x, calls, A.epoch_rng(7, 3)), A.augment(x, calls, A.epoch_rng(8, 3)))
    # before normalisation: the normaliser fitted on the clean split applies to the augmented inputs
    from trainc.runtime.data import Normalizer

    norm = Normalizer("standard", np.full((2, 5, 5), 0.5, np.float32), np.full((2, 5, 5), 2.0, np.float32))
    np.testing.assert_allclose(A.epoch_inputs(x, norm, calls, 7, 3),
                               (A.augment(x, calls, A.epoch_rng(7, 3)) - 0.5) / 2.0, rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Static checks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("augment, shape, dtype, layers", [
    ("[flip, crop(padding = 2), rotate(15), translate(0.5), brightness(0.2), contrast(0.2), noise(std = 0.1)]",
     "1, 5, 5", "f32", "flatten -> dense(3)"),
    ("[jitter(0.1), scale(std = 0.2), time_warp(strength = 0.2, knots = 3), noise]", "16, 2", "f32",
     "flatten -> dense(3)"),
    ("[token_dropout(p = 0.1, token = 3), token_swap(0.05)]", "16", "i32", "embedding(10, 4) -> mean_pool -> dense(3)"),
    ("flip(p = 1)", "3, 8, 8", "f32", "flatten -> dense(3)"),
])
def test_augmentations_that_fit_their_input(augment, shape, dtype, layers):
    text = data_section(augment, shape, dtype, layers, "none" if dtype == "i32" else "standard")
    assert lint(text, "t.train") == []


@pytest.mark.parametrize("augment, shape, dtype, bad, code", [
    ("[noise, flip]", "25", "f32", "flip", "E403"),  # image augmentation on a flat input
    ("[rotate(10)]", "5, 5", "f32", "rotate", "E403"),
    ("[crop]", "4, 1, 5, 5", "f32", "crop", "E403"),
    ("[time_warp]", "1, 5, 5", "f32", "time_warp", "E403"),  # series augmentation on images
    ("[token_swap]", "16", "f32", "token_swap", "E403"),  # token augmentation on numbers
    ("[noise(std = 1)]", "16", "i32", "noise", "E403"),  # noise on token ids
    ("[flip(p = 2)]", "1, 5, 5", "f32", "2)", "E304"),
    ("[flip, flipp]", "1, 5, 5", "f32", "flipp", "E201"),
    ("[crop(pad = 1)]", "1, 5, 5", "f32", "pad = 1", "E202"),
    ("[jitter]", "16, 1", "f32", "jitter", "E301"),
])
def test_misplaced_or_misspelt_augmentations(augment, shape, dtype, bad, code):
    layers = "embedding(10, 4) -> mean_pool -> dense(3)" if dtype == "i32" else "flatten -> dense(3)"
    text = data_section(augment, shape, dtype, layers, "none" if dtype == "i32" else "standard")
    assert triples(lint(text, "t.train")) == [(code, *where(text, bad))]


def test_misplaced_augmentation_message():
    (d,) = lint(data_section("[flip]", "25"), "t.train")
    assert d.message == "flip needs an image input f32[C, H, W], but input x is f32[25]"
    assert "images source" in d.help


def test_token_dropout_outside_the_vocabulary():
    text = data_section("[token_dropout(token = 10)]", "16", "i32", "embedding(10, 4) -> mean_pool -> dense(3)", "none")
    (d,) = lint(text, "t.train")
    assert (d.code, (d.span.line, d.span.col)) == ("E304", where(text, "token_dropout")) and "0..9" in d.message


def test_emit_ir_shows_the_augmentations():
    spec = analyze(data_section("[crop(padding = 2), noise]"), "t.train")
    text = to_yaml(spec.data)
    assert "augment:" in text and "kind: crop" in text and "padding: 2" in text and "std: 0.05" in text


# ---------------------------------------------------------------------------------------------
# Training: the step reads this epoch's augmented inputs; validation is never augmented
# ---------------------------------------------------------------------------------------------


TRAIN_SPEC = """data {{
  source = npz("d.npz")
  split = {{ train = 0.75, val = 0.25, stratify = false }}
  normalize = standard
  batch = 48
  shuffle = false
  {augment}
}}
model {{
  input x: f32[1, 4, 4]
  logits = x -> flatten -> dense(3)
}}
loss = cross_entropy(logits, target)
optimizer = sgd(lr = 1e-30)
stop {{ max = 3 epochs }}
run {{ seed = 5 }}
"""


def test_training_sees_fresh_augmentations_and_validation_none(tmp_path):
    from tinygrad.nn.state import safe_load

    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    g = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=g.normal(0, 1, (64, 1, 4, 4)), y=g.integers(0, 3, 64))
    runs = {}
    for name, augment in (("plain", ""), ("augmented", "augment = [noise(std = 1), flip(p = 0.5)]")):
        spec = analyze(TRAIN_SPEC.format(augment=augment), str(tmp_path / "t.train"))
        ds = load_data(spec.data, tmp_path, spec.run.seed)
        runs[name] = (spec, ds, train(spec, ds, tmp_path / name, Progress(quiet=True)))
    (_, _, plain), (spec, ds, aug) = runs["plain"], runs["augmented"]
    # lr 1e-30 leaves the weights as initialised, so the same val.loss shows val was not augmented
    assert [r["val.loss"] for r in aug.history] == [r["val.loss"] for r in plain.history]
    assert len({r["train.loss"] for r in plain.history}) == 1  # the same 48 clean examples every epoch
    assert len({r["train.loss"] for r in aug.history}) == 3  # fresh draws every epoch
    # each epoch's train.loss is the loss, in numpy, on exactly that epoch's augmented inputs
    w = {k: v.numpy() for k, v in safe_load(str(tmp_path / "augmented" / "model.safetensors")).items()}
    W, b = w["logits.dense0.W"], w["logits.dense0.b"]
    for row in aug.history:
        x = A.epoch_inputs(ds.x_train_raw, ds.normalizer, spec.data.augment, spec.run.seed, row["epoch"])
        z = x.reshape(48, 16).astype(np.float64) @ W + b
        logp = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
        assert row["train.loss"] == pytest.approx(-logp[np.arange(48), ds.y_train].mean(), rel=1e-5)


def test_every_augmentation_is_implemented_and_documented():
    import inspect
    from pathlib import Path

    from trainc.compiler import catalog as C

    reference = (Path(__file__).parents[1] / "specs" / "README.md").read_text()
    assert sorted(A.AUGMENT) == C.AUGMENTATIONS.names()
    for name, entry in C.AUGMENTATIONS.entries.items():
        params = list(inspect.signature(A.AUGMENT[name]).parameters)[2:]  # after x, rng
        assert params == [p.name for p in entry.params], name
        row = next((line for line in reference.splitlines() if line.startswith(f"| `{name}(")), "")
        assert all(p.name in row for p in entry.params), f"specs/README.md does not document {entry.signature}"
