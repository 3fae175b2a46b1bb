"""Bad data through the real entry point: `trainc run SPEC` (and `trainc lint SPEC`) in a subprocess.

Each case of the robustness issue writes a spec and a broken data file into a fresh folder and
checks that the run refuses before training: exit 1, one error with its code at the spec line
that asked for the data (`s.train:LINE:COL`), the file named (with its row and column where one
applies), no traceback, and no run directory left behind. An existing run directory keeps its
files untouched.

Decisions these tests pin down: class labels are names or whole numbers, so a fractional, NaN
or infinite label is E504 (a numeric target wants a regression loss); a negative integer label is
a class like any other (`-1` sorts first), so an npz with an unexpected `-1` shows up as one
class too many for the model (E508); a class with a single example cannot be stratified (E505,
scikit-learn's rule).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

SPEC = """data {{
  source = {source}
  split  = {split}
  batch  = 2{more}
}}
model {{
  input x: {input}
  out = x -> {model}
}}
loss      = {loss}
optimizer = adam(lr = 1e-3)
stop {{ max = 1 epochs }}
"""
SOURCE, SPLIT, LOSS = (2, 12), (3, 12), (10, 13)  # where the spec asks for the data, the split, the loss

CLASSIFY = dict(input="f32[2]", model="dense(2)", loss="cross_entropy(out, target)")
REGRESS = dict(input="f32[2]", model="dense(1)", loss="mse(out, target)")
HALF = "{ train = 0.5, val = 0.5 }"


def spec(source: str, split: str = HALF, more: str = "", **kw) -> str:
    return SPEC.format(source=source, split=split, more=more, **{**CLASSIFY, **kw})


def csv(*rows: str) -> str:
    return "\n".join(rows) + "\n"


def png(h: int, w: int, value: int = 128) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w), value, dtype=np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


GOOD = csv("a,b,y", "1,2,0", "3,4,1", "5,6,0", "7,8,1")
RNG = np.random.default_rng(0)
X40 = RNG.normal(size=(40, 2))

# id -> (files, spec text, code, where, words that the message must hold)
CASES = {
    "missing file": (
        {}, spec('csv("nope.csv", target = "y")'), "E501", SOURCE, ["'nope.csv' not found"]),
    "not a file (a folder)": (
        {"d.csv/": None}, spec('csv("d.csv", target = "y")'), "E502", SOURCE, ["'d.csv'", "not a regular file"]),
    "binary garbage": (
        {"d.csv": bytes(range(256)) * 4}, spec('csv("d.csv", target = "y")'), "E502", SOURCE,
        ["'d.csv'", "not UTF-8"]),
    "empty file": (
        {"d.csv": b""}, spec('csv("d.csv", target = "y")'), "E502", SOURCE, ["'d.csv' is empty"]),
    "header only": (
        {"d.csv": "a,b,y\n"}, spec('csv("d.csv", target = "y")'), "E505", SOURCE, ["'d.csv'", "no data rows"]),
    "missing target column": (
        {"d.csv": GOOD}, spec('csv("d.csv", target = "label")'), "E503", (2, 34),
        ["target column 'label' not found in 'd.csv'"]),
    "unknown feature column": (
        {"d.csv": GOOD}, spec('csv("d.csv", target = "y", features = ["a", "bb"])'), "E503", (2, 56),
        ["feature column 'bb' not found in 'd.csv'", "did you mean 'b'?"]),
    "non-numeric cell": (
        {"d.csv": csv("a,b,y", "1,2,0", "3,4,1", "5,six,0", "7,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 4, column 'b'", "found 'six'"]),
    "empty cell": (
        {"d.csv": csv("a,b,y", "1,2,0", ",4,1", "5,6,0", "7,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 3, column 'a'", "missing value"]),
    "NaN feature": (
        {"d.csv": csv("a,b,y", "1,2,0", "3,4,1", "5,6,0", "nan,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 5, column 'a'", "finite number, found 'nan'"]),
    "inf feature": (
        {"d.csv": csv("a,b,y", "1,inf,0", "3,4,1", "5,6,0", "7,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 2, column 'b'", "finite number, found 'inf'"]),
    "NaN regression target": (
        {"d.csv": csv("a,b,y", "1,2,0.5", "3,4,NaN", "5,6,0.1", "7,8,1.5")},
        spec('csv("d.csv", target = "y")', **REGRESS), "E504", SOURCE, ["'d.csv' line 3, column 'y'", "'NaN'"]),
    "inf regression target": (
        {"d.csv": csv("a,b,y", "1,2,0.5", "3,4,1", "5,6,-inf", "7,8,1.5")},
        spec('csv("d.csv", target = "y")', **REGRESS), "E504", SOURCE, ["'d.csv' line 4, column 'y'", "'-inf'"]),
    "NaN feature in npz": (
        {"d.npz": npz(x=np.where(np.arange(80).reshape(40, 2) == 13, np.nan, X40), y=np.arange(40) % 2)},
        spec('npz("d.npz")'), "E504", SOURCE, ["'d.npz'", "array 'x' row 6", "finite number, found nan"]),
    "fractional class label": (
        {"d.csv": csv("a,b,y", "1,2,0", "3,4,1", "5,6,0.5", "7,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 4, column 'y'", "class label '0.5' is not a whole number", "regression loss"]),
    "NaN class label": (
        {"d.csv": csv("a,b,y", "1,2,0", "3,4,nan", "5,6,0", "7,8,1")}, spec('csv("d.csv", target = "y")'), "E504",
        SOURCE, ["'d.csv' line 3, column 'y'", "missing label ('nan')"]),
    "npz fractional labels": (
        {"d.npz": npz(x=X40, y=np.r_[np.arange(39) % 2, 0.25])}, spec('npz("d.npz")'), "E504", SOURCE,
        ["'d.npz'", "array 'y' row 39", "class label 0.25 is not a whole number"]),
    "npz NaN label": (
        {"d.npz": npz(x=X40, y=np.r_[np.nan, np.arange(39) % 2])}, spec('npz("d.npz")'), "E504", SOURCE,
        ["'d.npz'", "array 'y' row 0", "missing label"]),
    "npz negative label (one class too many)": (
        {"d.npz": npz(x=X40, y=np.r_[np.arange(38) % 2, -1, -1])}, spec('npz("d.npz")'), "E508", (8, 14),
        ["'out' has 2 logits but the data has 3 classes", "dense(3)"]),
    "npz string features": (
        {"d.npz": npz(x=np.array([["a", "b"]] * 40), y=np.arange(40) % 2)}, spec('npz("d.npz")'), "E504", SOURCE,
        ["'d.npz'", "array 'x'", "expected numbers"]),
    "split leaves val empty": (
        {"d.csv": csv("a,b,y", "1,2,0", "3,4,1")},
        spec('csv("d.csv", target = "y")', "{ train = 0.8, val = 0.2, stratify = false }"), "E505", SPLIT,
        ["of 2 examples in 'd.csv' leaves the val split empty"]),
    "class too rare to stratify": (
        {"d.csv": csv("a,b,y", *(f"{i},{i},{'rare' if i == 5 else 'common'}" for i in range(10)))},
        spec('csv("d.csv", target = "y")', "{ train = 0.5, val = 0.5, stratify = true }"), "E505", SPLIT,
        ["class 'rare' has a single example in 'd.csv'", "too few to stratify"]),
    "images of mixed sizes": (
        {"img/cat/0.png": png(8, 8), "img/cat/1.png": png(8, 8), "img/dog/0.png": png(8, 6)},
        spec('images("img")', input="f32[1, 8, 8]", model="flatten -> dense(2)"), "E506", SOURCE,
        ["image 'img/dog/0.png' is 8x6 (HxW), but 'img/cat/0.png' is 8x8", "size = [8, 8]"]),
    "corrupt image": (
        {"img/cat/0.png": png(8, 8), "img/dog/0.png": png(8, 8)[:40]},
        spec('images("img")', input="f32[1, 8, 8]", model="flatten -> dense(2)"), "E502", SOURCE,
        ["cannot read image 'img/dog/0.png'"]),
    "series shorter than its window": (
        {"s.csv": csv("t,v", *(f"{i},{i * 0.5}" for i in range(5)))},
        spec('series("s.csv", column = "v", window = 8)', input="f32[8, 1]", model="flatten -> dense(1)",
             loss="mse(out, target)"), "E505", SOURCE, ["'s.csv' has 5 rows", "window 8"]),
    "text shorter than its window": (
        {"t.txt": "to be"}, spec('text("t.txt", window = 8)', more=", normalize = none", input="i32[8]",
                                 model="embedding(8, 4) -> mean_pool -> dense(2)"), "E505", SOURCE,
        ["'t.txt' has 5 char tokens", "window 8"]),
}


def write_files(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        if name.endswith("/"):
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)


def trainc(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], capture_output=True, text=True, cwd=folder,
                          env=env, timeout=120)


def assert_refused(r: subprocess.CompletedProcess, code: str, where: tuple[int, int], words: list[str]) -> None:
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert f"s.train:{where[0]}:{where[1]}: error[{code}]: " in r.stderr, r.stderr
    assert r.stderr.rstrip().endswith("\n1 error"), r.stderr  # one clear error, not a cascade
    for word in words:
        assert word in r.stderr, (word, r.stderr)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_run_refuses_bad_data_before_training(tmp_path, case):
    files, text, code, where, words = CASES[case]
    write_files(tmp_path, files)
    (tmp_path / "s.train").write_text(text)
    out = tmp_path / "run"
    r = trainc(tmp_path, "run", "s.train", "--out", str(out), "-q")
    assert_refused(r, code, where, words)
    assert not out.exists()  # nothing half-written
    assert "epoch" not in r.stdout  # not one step trained
    if case != "missing file":  # lint checks the data when the files exist, and says the same
        assert_refused(trainc(tmp_path, "lint", "s.train"), code, where, words)


@pytest.mark.parametrize("case", ["non-numeric cell", "npz negative label (one class too many)"])
def test_an_existing_run_directory_keeps_its_files(tmp_path, case):
    files, text, code, where, words = CASES[case]
    write_files(tmp_path, files)
    (tmp_path / "s.train").write_text(text)
    out = tmp_path / "earlier-run"
    out.mkdir()
    (out / "spec.train").write_text("# the spec of an earlier run\n")
    (out / "summary.json").write_text("{}\n")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert_refused(trainc(tmp_path, "run", "s.train", "--out", str(out), "-q"), code, where, words)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_load_data_raises_the_same_diagnostic(tmp_path):
    """The library entry point: a DataError whose diagnostic the CLI renders as is."""
    from trainc.compiler import analyze
    from trainc.runtime.data import DataError, load_data

    files, text, code, where, words = CASES["fractional class label"]
    write_files(tmp_path, files)
    s = analyze(text, str(tmp_path / "s.train"))
    with pytest.raises(DataError) as e:
        load_data(s.data, tmp_path, seed=0)
    d = e.value.diagnostic
    assert (d.code, d.span.line, d.span.col) == (code, *where)
    assert all(w in d.message or w in (d.help or "") for w in words)


def test_whole_number_labels_still_load(tmp_path):
    """The label rules refuse fractions, not integers written as floats, negative integers or names."""
    from trainc.compiler import analyze
    from trainc.runtime.data import load_data

    rows = [f"{i},{i},{label}" for i, label in enumerate(["1.0", "2", "-1", "1e0", "2.0", "-1.0"] * 2)]
    write_files(tmp_path, {"d.csv": csv("a,b,y", *rows), "n.csv": csv("a,b,y", "1,2,cat", "3,4,1.5", "5,6,dog")})
    ds = load_data(analyze(spec('csv("d.csv", target = "y")'), "s.train").data, tmp_path, seed=0)
    assert ds.classes == (-1, 1, 2)
    names = spec('csv("n.csv", target = "y")', "{ train = 0.6, val = 0.4, stratify = false }")
    ds = load_data(analyze(names, "s.train").data, tmp_path, seed=0)
    assert ds.classes == ("1.5", "cat", "dog")  # a column of names: 1.5 is a name too


def test_the_shipped_specs_and_their_data_lint_clean():
    """The data rules refuse nothing the shipped data holds (k-fold specs are checked on their first fold)."""
    shipped = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("specs/*.train"), *ROOT.glob("examples/*.train")])
    r = trainc(ROOT, "lint", *shipped)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
