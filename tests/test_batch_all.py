"""`batch = all`: full-batch gradient descent, the batch made the training split's size once the data is known."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from trainc.compiler import analyze, lint
from trainc.compiler.summary import render
from trainc.runtime.data import fit_batch, load_data

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("trainc"))
SPEC = """data {{
  source = csv("{data}", target = "progression")
  split  = {{ train = 0.8, val = 0.2 }}
  batch  = {batch}
}}
model {{
  input x: f32[10]
  pred = x -> dense(1)
}}
loss      = mse(pred, target)
optimizer = sgd(lr = 0.01)
stop {{ max = 1 epochs }}
"""
DATA = ROOT / "examples/data/diabetes.csv"


@pytest.mark.parametrize("batch, codes", [
    ("all", []),
    ("32", []),
    ("every", ["E303"]),  # a word other than `all`: still a type error
    ("0", ["E304"]),
])
def test_batch_takes_a_count_or_all(batch, codes):
    assert [d.code for d in lint(SPEC.format(data=DATA, batch=batch), "b.train") if d.is_error] == codes


def test_batch_all_becomes_the_training_split_size_with_the_data():
    spec = analyze(SPEC.format(data=DATA, batch="all"), "b.train")
    assert spec.data.batch is None and "training step, batch all" in render(spec)
    ds = load_data(spec.data, ROOT, spec.run.seed)
    assert fit_batch(spec, len(ds.x_train)).data.batch == len(ds.x_train) == 354
    fixed = analyze(SPEC.format(data=DATA, batch="16"), "b.train")
    assert fit_batch(fixed, 354) is fixed


def test_a_batch_larger_than_the_split_suggests_batch_all(tmp_path):
    (tmp_path / "b.train").write_text(SPEC.format(data=DATA, batch="400"))
    r = subprocess.run([EXE, "lint", str(tmp_path / "b.train")], capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "E505" in out and "`batch = all`" in out, out
    (tmp_path / "b.train").write_text(SPEC.format(data=DATA, batch="all"))
    r = subprocess.run([EXE, "lint", str(tmp_path / "b.train")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
