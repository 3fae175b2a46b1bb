"""`text(..., targets = every)`: the next token at every position (issue 16's per-position outputs): the
reader's targets, lint's shape rules for a [T, K] model, and a run whose reported val.loss is the mean over
every position of the cross-entropy, recomputed in numpy from the saved weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainc.compiler import lint

ROOT = Path(__file__).parents[1]
TEXT = ROOT / "examples" / "data" / "coriolanus.txt"

SPEC = """data {{
  source    = text("{path}", level = char, window = 8{targets})
  split     = {{ train = 0.8, val = 0.2 }}
  normalize = none
  batch     = 64
}}
model {{
  input x: i32[8]
  logits = x -> embedding({vocab}, 16) -> {tail}
}}
loss      = cross_entropy(logits, target)
optimizer = adam(lr = 1e-2)
stop {{ max = 60 steps }}
metrics   = [accuracy]
run {{ seed = 0 }}
"""


def spec(tmp_path, targets=", targets = every", tail="dense(58)", vocab=58) -> str:
    text = TEXT.read_text()[:6000]
    (tmp_path / "t.txt").write_text(text)
    return SPEC.format(path="t.txt", targets=targets, tail=tail, vocab=vocab)


def test_the_reader_gives_the_next_token_at_every_position(tmp_path):
    from trainc.compiler import analyze
    from trainc.runtime.data import load_data

    s = analyze(spec(tmp_path), str(tmp_path / "a.train"))
    ds = load_data(s.data, tmp_path, s.run.seed)
    assert ds.x_train.shape[1:] == (8,) and ds.y_train.shape[1:] == (8,)
    np.testing.assert_array_equal(ds.y_train[:, :-1], ds.x_train[:, 1:])  # y is x shifted by one
    np.testing.assert_array_equal(ds.y_train[:-1, -1], ds.x_train[1:, -1])  # and its last, the next window's


@pytest.mark.parametrize("targets, tail, code", [
    (", targets = every", "dense(58)", None),  # [8, 58] at every position
    (", targets = every", "mean_pool -> dense(58)", "E402"),  # one prediction per example: not every position
    ("", "dense(58)", "E402"),  # [8, 58] against one target: the help names targets = every
])
def test_lint_holds_the_model_to_the_targets(tmp_path, targets, tail, code):
    found = [d for d in lint(spec(tmp_path, targets, tail), "a.train") if d.is_error]
    assert [d.code for d in found] == ([code] if code else []), found
    if code and not targets:
        assert "targets = every" in found[0].help


def test_the_loss_is_the_mean_over_every_position(tmp_path):
    """A bigram model (embedding -> dense at every position) for 60 steps; its val.loss against numpy's
    cross-entropy over every position of every val example, from the saved weights."""
    from tinygrad.nn.state import safe_load

    from trainc.compiler import analyze
    from trainc.runtime.data import load_data
    from trainc.runtime.loop import train
    from trainc.runtime.progress import Progress

    k = _width(tmp_path)  # the characters of this part of the text
    s = analyze(spec(tmp_path, tail=f"dense({k})", vocab=k), str(tmp_path / "a.train"))
    ds = load_data(s.data, tmp_path, s.run.seed)
    result = train(s, ds, tmp_path / "run", Progress(quiet=True))
    w = {k: v.numpy().astype(np.float64) for k, v in safe_load(str(tmp_path / "run" / "model.safetensors")).items()}
    emb, dense_w, dense_b = (next(v for k, v in w.items() if k.endswith(end))
                             for end in ("embedding0.W", "dense0.W", "dense0.b"))
    z = emb[ds.x_val.astype(np.int64)] @ dense_w + dense_b  # [N, 8, 58]
    logp = z - z.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    ce = -np.take_along_axis(logp, ds.y_val.astype(np.int64)[..., None], -1).mean()
    assert result.final["val.loss"] == pytest.approx(ce, rel=1e-4)
    acc = (z.argmax(-1) == ds.y_val).mean()
    assert result.final["val.accuracy"] == pytest.approx(acc, abs=1e-6)
    assert result.final["val.accuracy"] > result.baseline["val.accuracy"]


def _width(tmp_path) -> int:
    """The number of classes (characters) in the training part of the test's text."""
    from trainc.compiler import analyze
    from trainc.runtime.data import load_data

    s = analyze(spec(tmp_path), str(tmp_path / "a.train"))
    return load_data(s.data, tmp_path, s.run.seed).n_classes


def test_predict_gives_the_token_after_each_window(tmp_path):
    """`trainc predict` on a per-position run: one row per window, the next token's class and probabilities
    (the last position's prediction), as for a last-position model."""
    import csv
    import subprocess
    import sys

    k = _width(tmp_path)
    (tmp_path / "a.train").write_text(spec(tmp_path, tail=f"dense({k})", vocab=k).replace("60 steps", "5 steps"))
    exe = Path(sys.executable).with_name("trainc")
    run = subprocess.run([str(exe), "run", "a.train", "-q", "--out", "r"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    text = "First Citizen: before we proceed"
    (tmp_path / "in.txt").write_text(text)
    out = subprocess.run([str(exe), "predict", "r", "in.txt"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(out.stdout.splitlines()))
    assert rows[0][0] == "prediction" and len(rows[0]) == k + 1
    assert len(rows) - 1 == len(text) - 8 + 1  # one row per window of 8
    assert all(abs(sum(float(p) for p in r[1:]) - 1) < 1e-3 for r in rows[1:])
