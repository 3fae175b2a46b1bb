"""Transfer learning: `init = from(RUN, only = [...])` starts from another run's weights, exactly; frozen
layers stay as loaded; tensors that do not fit are refused before training, naming them and both shapes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainc.runtime import checkpoint as ck

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("trainc"))
DIGITS = (ROOT / "examples" / "digits.train").read_text().replace('"data/digits.csv"',
                                                                  f'"{ROOT / "examples" / "data" / "digits.csv"}"')


def run(spec_text: str, tmp: Path, name: str, *sets: str, force: bool = False) -> subprocess.CompletedProcess:
    spec = tmp / f"{name}.train"
    spec.write_text(spec_text)
    args = [EXE, "run", str(spec), "-q", "--out", str(tmp / name)] + (["--force"] if force else [])
    for s in sets:
        args += ["--set", s]
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def pretrain(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("transfer")
    r = run(DIGITS, tmp, "pretrain", "stop.max=3 epochs")
    assert r.returncode == 0, r.stderr
    return tmp


def with_init(init: str, text: str = DIGITS) -> str:
    return text.replace("  input x: f32[64]\n", f"  init = {init}\n  input x: f32[64]\n")


def rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_fine_tune_starts_at_the_pretrained_loss(pretrain):
    text = with_init('from("pretrain")')
    r = run(text, pretrain, "tune", "stop.max=1 epochs", "optimizer.lr=1e-30", "schedule=constant")
    assert r.returncode == 0, r.stderr
    before = rows(pretrain / "pretrain")[-1]
    after = rows(pretrain / "tune")[0]
    assert after["val.loss"] == pytest.approx(before["val.loss"], rel=1e-6)
    assert after["val.accuracy"] == before["val.accuracy"]


def test_only_and_freeze_keep_the_chosen_layers_as_loaded(pretrain):
    text = with_init('from("pretrain", only = [mlp])').replace(
        "optimizer = adamw(lr = 3e-3, weight_decay = 0.01)", "optimizer = adam(lr = 3e-3, freeze = [mlp])")
    r = run(text, pretrain, "frozen", "stop.max=1 epochs")
    assert r.returncode == 0, r.stderr
    assert "init: 4 tensors from pretrain" not in r.stdout  # -q: quiet
    old = ck.read_safetensors(pretrain / "pretrain" / "model.safetensors")
    new = ck.read_safetensors(pretrain / "frozen" / "model.safetensors")
    for k in ("logits.mlp0.dense0.W", "logits.mlp0.dense0.b", "logits.mlp1.dense0.W", "logits.mlp1.dense0.b"):
        np.testing.assert_array_equal(new[k], old[k])  # taken and frozen
    assert not np.array_equal(new["logits.dense0.W"], old["logits.dense0.W"])  # fresh and trained


def test_a_tensor_that_does_not_fit_is_refused_with_both_shapes(pretrain):
    text = with_init('from("pretrain")').replace("mlp(128)", "mlp(100)")
    r = run(text, pretrain, "misfit", "stop.max=1 epochs")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error[E509]: the weights in 'pretrain' do not fit: 'logits.mlp0.dense0.W' has shape [64, 128] in " \
           "model.safetensors, the model needs [64, 100]" in r.stderr
    assert not (pretrain / "misfit").exists()  # nothing half-written is left behind


@pytest.mark.parametrize("init, code, message", [
    ('from("nowhere")', "E509", "cannot take weights from 'nowhere'"),
    ('from("pretrain", only = [mpl])', "E206", "unknown model value or block 'mpl'"),
    ('from("pretrain", weights = worst)', "E303", "weights must be final, best or latest"),
    ('from(pretrain)', "E303", "from(...) takes the path of a run directory"),
])
def test_bad_from_is_a_located_error(pretrain, init, code, message):
    r = run(with_init(init), pretrain, "bad", "stop.max=1 epochs")
    assert r.returncode == 1 and f"error[{code}]: {message}" in r.stderr


def test_a_refused_init_leaves_an_existing_run_directory_as_it_was(pretrain):
    """E509 comes from the lowering: a run directory that held an earlier run keeps its records and weights."""
    before = {p.name: p.read_bytes() for p in (pretrain / "pretrain").iterdir() if p.is_file()}
    text = with_init('from("nowhere")')
    r = run(text, pretrain, "pretrain", "stop.max=1 epochs", force=True)  # --out: the finished pretraining run
    assert r.returncode == 1 and "error[E509]" in r.stderr
    after = {p.name: p.read_bytes() for p in (pretrain / "pretrain").iterdir() if p.is_file()}
    assert after == before and "spec.train" in after and "metrics.jsonl" in after
