"""The `images` source: a folder of PNG/JPEG files, one sub-folder per class; its errors; the shipped
`digits_png` folder against the CSV it was made from; the spec that trains on it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainc.compiler import analyze, lint

ROOT = Path(__file__).parents[1]
DIGITS_PNG = ROOT / "examples" / "data" / "digits_png"

SPEC = """data {{
  source = {source}
  split = {{ train = 0.5, val = 0.5 }}
  normalize = none
}}
model {{
  input x: f32[{shape}]
  logits = x -> flatten -> dense(2)
}}
loss = {loss}(logits, target)
optimizer = adam(lr = 1e-2)
stop {{ max = 1 epochs }}
"""


def load(folder: Path, source: str = 'images("img")', shape: str = "1, 2, 3", loss: str = "cross_entropy"):
    from trainc.runtime.data import load_data

    spec = analyze(SPEC.format(source=source, shape=shape, loss=loss), str(folder / "t.train"))
    return load_data(spec.data, folder, seed=0)


def write(path: Path, pixels, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8), mode=mode).save(path)


def two_classes(tmp_path: Path, n: int = 2) -> dict[str, list[np.ndarray]]:
    """img/cat/*.png and img/dog/*.png, 2x3 gray images with known pixels."""
    rng = np.random.default_rng(0)
    made = {}
    for cls in ("cat", "dog"):
        made[cls] = [rng.integers(0, 256, (2, 3)) for _ in range(n)]
        for i, px in enumerate(made[cls]):
            write(tmp_path / "img" / cls / f"{i}.png", px)
    return made


def test_pixels_classes_and_layout(tmp_path):
    made = two_classes(tmp_path, n=4)
    (tmp_path / "img" / "cat" / "notes.txt").write_text("not an image")  # ignored, like hidden files
    ds = load(tmp_path)
    assert ds.classes == ("cat", "dog") and ds.feature_shape == (1, 2, 3)
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    assert x.shape == (8, 1, 2, 3) and x.dtype == np.float32
    np.testing.assert_allclose(x * 255, np.rint(x * 255), atol=1e-4)  # pixel / 255
    for cls, k in (("cat", 0), ("dog", 1)):  # every image is there once, with its class
        want = sorted(tuple(px.ravel()) for px in made[cls])
        got = sorted(tuple(np.rint(row.ravel() * 255).astype(int)) for row in x[y == k])
        assert got == want


def test_rgb_is_channels_first(tmp_path):
    px = np.zeros((2, 3, 3), np.uint8)
    px[..., 0], px[..., 1], px[..., 2] = 10, 20, 30  # R, G, B
    px[0, 0] = (255, 0, 128)
    for name in ("a/0", "a/1", "b/0", "b/1"):
        write(tmp_path / "img" / f"{name}.png", px, "RGB")
    ds = load(tmp_path, 'images("img", color = rgb)', shape="3, 2, 3")
    x = ds.x_train[0]
    assert x.shape == (3, 2, 3)
    np.testing.assert_allclose(x[:, 1, 2], np.array([10, 20, 30]) / 255, rtol=1e-6)
    np.testing.assert_allclose(x[:, 0, 0], np.array([255, 0, 128]) / 255, rtol=1e-6)
    gray = load(tmp_path, 'images("img")', shape="1, 2, 3").x_train[0, 0]  # ITU-R 601-2 luma, as Pillow's "L"
    assert gray[1, 2] == pytest.approx((10 * 299 + 20 * 587 + 30 * 114) / 1000 / 255, abs=1 / 255)


def test_size_resizes_every_image(tmp_path):
    for i in range(2):
        write(tmp_path / "img" / "a" / f"{i}.png", np.full((4, 6), 200))
        write(tmp_path / "img" / "b" / f"{i}.png", np.full((2, 3), 50))  # another size: fine with `size`
    ds = load(tmp_path, 'images("img", size = [5, 7])', shape="1, 5, 7")
    x = np.concatenate([ds.x_train, ds.x_val])
    assert x.shape == (4, 1, 5, 7)
    assert sorted(np.unique(x).round(6)) == [round(50 / 255, 6), round(200 / 255, 6)]  # constant stays constant


def test_jpeg_is_read(tmp_path):
    for name, v in (("a/0", 40), ("a/1", 40), ("b/0", 220), ("b/1", 220)):
        path = tmp_path / "img" / f"{name}.JPG"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 8), v, np.uint8), mode="L").save(path, format="JPEG", quality=95)
    ds = load(tmp_path, shape="1, 8, 8")
    x = np.concatenate([ds.x_train, ds.x_val])
    y = np.concatenate([ds.y_train, ds.y_val])
    np.testing.assert_allclose(x[y == 0].mean(), 40 / 255, atol=2 / 255)
    np.testing.assert_allclose(x[y == 1].mean(), 220 / 255, atol=2 / 255)


def corrupt(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "img" / "dog" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")


def mixed_sizes(tmp_path):
    two_classes(tmp_path)
    write(tmp_path / "img" / "dog" / "2.png", np.zeros((3, 3)))


def empty_class(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "img" / "eel").mkdir()


def no_classes(tmp_path):
    write(tmp_path / "img" / "0.png", np.zeros((2, 3)))


def a_file(tmp_path):
    two_classes(tmp_path)
    (tmp_path / "img.png").write_bytes(b"")


@pytest.mark.parametrize("make, source, code, words", [
    (corrupt, 'images("img")', "E502", ["img/dog/1.png"]),
    (mixed_sizes, 'images("img")', "E506", ["img/dog/2.png", "3x3", "img/cat/0.png", "2x3", "size = [2, 3]"]),
    (empty_class, 'images("img")', "E505", ["img/eel", "no images"]),
    (no_classes, 'images("img")', "E502", ["no sub-folders"]),
    (a_file, 'images("img.png")', "E502", ["img.png", "expected a folder"]),
    (two_classes, 'images("pics")', "E501", ["pics", "not found"]),
], ids=["corrupt-file", "mixed-sizes", "empty-class", "no-sub-folders", "not-a-folder", "missing"])
def test_errors_name_the_file_at_the_source(tmp_path, make, source, code, words):
    from trainc.runtime.data import DataError

    make(tmp_path)
    with pytest.raises(DataError) as e:
        load(tmp_path, source)
    d = e.value.diagnostic
    text = f"{d.message} {d.help}"
    assert d.code == code and all(w in text for w in words), text
    assert (d.span.line, d.span.col) == (2, 12)  # the source call in the spec


def test_regression_loss_is_refused(tmp_path):
    from trainc.runtime.data import DataError

    two_classes(tmp_path)
    with pytest.raises(DataError) as e:
        load(tmp_path, loss="mse")
    assert e.value.diagnostic.code == "E506" and "classification" in e.value.diagnostic.message


def test_size_must_be_two_whole_numbers():
    (d,) = lint(SPEC.format(source='images("img", size = [8])', shape="1, 8", loss="cross_entropy"), "t.train")
    assert (d.code, d.span.line, d.span.col) == ("E303", 2, 12) and "[H, W]" in d.message


# ---------------------------------------------------------------------------------------------
# The shipped digits_png folder and its spec
# ---------------------------------------------------------------------------------------------


def test_digits_png_holds_the_csv_digits():
    from trainc.compiler import ir
    from trainc.runtime.sources.images import read_images

    table = np.loadtxt(ROOT / "examples" / "data" / "digits.csv", delimiter=",", skiprows=1)
    source = ir.Source(kind="images", path="digits_png", args=(("color", "gray"), ("size", None)),
                       span=ir.NOWHERE)
    raw = read_images(source, DIGITS_PNG.parent, ir.Task.classification)
    # files are read class by class, in name order; each name is the 0-based row of the CSV
    rows = [int(p.stem) for c in sorted(DIGITS_PNG.iterdir()) for p in sorted(c.glob("*.png"))]
    assert len(rows) == len(table) == 1797 and sorted(rows) == list(range(1797))
    np.testing.assert_array_equal(raw.y.astype(int), table[rows, 64])
    want = np.floor(table[rows, :64] * 255 / 16 + 0.5) / 255  # 0..16 -> 0..255 gray, then / 255
    np.testing.assert_allclose(raw.x.reshape(1797, 64), want, atol=1e-12)
    assert sum(p.stat().st_size for p in DIGITS_PNG.rglob("*.png")) < 400_000  # small enough to ship


def test_cnn_digits_images_spec_trains(tmp_path):
    exe = Path(sys.executable).with_name("trainc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainc"]
    out = tmp_path / "run"
    r = subprocess.run(cmd + ["run", "specs/cnn_digits_images.train", "-q", "--out", str(out),
                              "--set", "stop.max=2 epochs"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == 2 and summary["examples"] == {"train": 1438, "val": 359}
    assert summary["classes"] == list(range(10))
    assert rows[-1]["val.accuracy"] > 0.5 > summary["baseline"]["val.accuracy"]  # learning, 2 epochs in
