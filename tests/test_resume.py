"""Exact resume: real `trainc run` processes killed with SIGKILL mid-epoch and half-way through a
checkpoint write, stopped with SIGINT and SIGTERM, then resumed; the final weights must equal an
uninterrupted run's bit for bit, and the metrics too (but for wall time).

Faults are injected at exact points with TRAINC_FAULT (see runtime/loop.py `_fault`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainc.runtime import checkpoint as ck

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("trainc"))
SPEC = str(ROOT / "examples" / "digits.train")  # has dropout: the device RNG must resume too
SETS = ["--set", "stop.max=3 epochs", "--set", "checkpoint.every=10 steps", "--set", "checkpoint.last=2"]


def trainc(out: Path, *extra: str, fault: str | None = None, sets=SETS) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRAINC_FAULT": fault} if fault else {**os.environ}
    env.pop("TRAINC_FAULT", None) if not fault else None
    return subprocess.run([EXE, "run", SPEC, "-q", "--out", str(out), *sets, *extra], capture_output=True,
                          text=True, env=env, timeout=600)


def metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time")
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref")
    r = trainc(out)
    assert r.returncode == 0, r.stderr
    return out


def assert_same_run(a: Path, b: Path):
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert metrics(a) == metrics(b)


@pytest.mark.parametrize("fault, rc", [
    ("step:35", -9),  # SIGKILL in epoch 2 (22 steps an epoch), 5 steps after the step-30 checkpoint
    ("checkpoint:4", -9),  # SIGKILL half-way through writing the 4th checkpoint (step 40)
    ("step:22", -9),  # SIGKILL right after the last step of epoch 1, before its checkpoint
])
def test_sigkill_then_resume_is_bit_exact(tmp_path, reference, fault, rc):
    r = trainc(tmp_path, fault=fault)
    assert r.returncode == rc
    before = ck.pointed(tmp_path / "checkpoints", "latest")
    assert before is not None and ck.load(tmp_path / "checkpoints" / before)  # the last complete one is whole
    r = trainc(tmp_path, "--resume")  # --out names the run; --resume alone takes its latest checkpoint
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["resumes"] == 1


@pytest.mark.parametrize("signal_name", ["sigint", "sigterm"])
def test_sigint_and_sigterm_stop_cleanly_with_a_checkpoint_and_say_how_to_resume(tmp_path, reference, signal_name):
    r = trainc(tmp_path, fault=f"{signal_name}:27")
    assert r.returncode == 130, r.stderr
    assert "interrupted: the checkpoint is saved; go on with:" in r.stderr and f"--resume {tmp_path}" in r.stderr
    assert ck.pointed(tmp_path / "checkpoints", "latest") == "step-00000027"  # saved where it stopped, mid-epoch
    assert json.loads((tmp_path / "summary.json").read_text())["stop_reason"] == "interrupted"
    r = trainc(tmp_path, "--resume", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert_same_run(reference, tmp_path)


def test_a_changed_spec_is_refused_with_what_changed_unless_forced(tmp_path):
    short = ["--set", "stop.max=1 epochs"]
    assert trainc(tmp_path, sets=short).returncode == 0
    r = trainc(tmp_path, "--resume", sets=["--set", "stop.max=2 epochs", "--set", "optimizer.lr=1e-3"])
    assert r.returncode == 1
    assert "the spec changed since" in r.stderr
    assert "stop.max: 1 epochs -> 2 epochs" in r.stderr and "--force" in r.stderr  # as a spec writes them
    assert "optimizer: adamw(lr = 0.003, b1 = 0.9, b2 = 0.999, eps = 1e-8, weight_decay = 0.01) -> " \
        "adamw(lr = 0.001, b1 = 0.9, b2 = 0.999, eps = 1e-8, weight_decay = 0.01)" in r.stderr
    r = trainc(tmp_path, "--resume", "--force", sets=["--set", "stop.max=2 epochs"])
    assert r.returncode == 0, r.stderr
    assert [m["epoch"] for m in metrics(tmp_path)] == [1, 2]


def test_a_corrupted_checkpoint_is_refused_with_a_clear_error(tmp_path):
    assert trainc(tmp_path, sets=["--set", "stop.max=1 epochs"]).returncode == 0
    folder = ck.find(tmp_path)
    raw = bytearray((folder / "optimizer.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (folder / "optimizer.safetensors").write_bytes(bytes(raw))
    r = trainc(tmp_path, "--resume", sets=["--set", "stop.max=1 epochs"])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot resume" in r.stderr and "does not match the checksum" in r.stderr


def test_the_run_directory_holds_the_operative_spec_with_origins(tmp_path):
    import yaml

    assert trainc(tmp_path, sets=["--set", "stop.max=1 epochs", "--set", "checkpoint.last=2"]).returncode == 0
    doc = yaml.safe_load((tmp_path / "operative.yaml").read_text())
    s = doc["settings"]
    assert s["stop.max"] == {"value": "1 epochs", "from": "override"}
    assert s["data.batch"] == {"value": "64", "from": "spec"}
    assert s["data.sampler"] == {"value": "none", "from": "default"}
    assert s["optimizer"] == {"value": "adamw(lr = 0.003, b1 = 0.9, b2 = 0.999, eps = 1e-8, weight_decay = 0.01)",
                              "defaults": ["b1", "b2", "eps"], "from": "spec"}  # the defaults filled in, marked
    assert s["schedule"] == {"value": "warmup(50 steps, start = 0) then cosine(to = 1e-5)", "defaults": ["start"],
                             "from": "spec"}
    assert s["stop.when"] == {"value": "val.accuracy >= 0.99", "from": "spec"}
    assert s["checkpoint.last"] == {"value": "2", "from": "override"}
    assert s["checkpoint.keep"] == {"value": None, "from": "default"}
    assert (tmp_path / "spec.train").read_text() == Path(SPEC).read_text()
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["overrides"] == ["stop.max=1 epochs", "checkpoint.last=2"] and run["spec"] == SPEC


def test_log_format_json_streams_one_object_per_line(tmp_path):
    r = trainc(tmp_path, "--log-format", "json", sets=["--set", "stop.max=2 epochs"])
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]  # every line is one JSON object
    kinds = [e["event"] for e in events]
    assert kinds[-3:] == ["epoch", "epoch", "end"] and set(kinds[:-3]) == {"message"}
    assert any(e.get("text", "").startswith("device: ") for e in events)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert events[-1]["final"] == summary["final"] and events[-1]["stop_reason"] == summary["stop_reason"]
    assert [e["val.loss"] for e in events[-3:-1]] == [m["val.loss"] for m in metrics(tmp_path)]
    assert all(e["examples_per_s"] >= 0 and "grad_norm" in e for e in events[-3:-1])
    bad = trainc(tmp_path, "--log-format", "xml", sets=["--set", "stop.max=1 epochs"])
    assert bad.returncode == 2 and "--log-format takes text or json" in bad.stderr


def test_killed_at_random_moments_and_resumed_each_time_ends_bit_exact(tmp_path):
    """Real signals from outside, at moments drawn at random (seeded): SIGKILL and SIGTERM alternate, each
    process after the first resumes the one before; wherever the kills land (start-up, a step, a checkpoint
    write), the last complete checkpoint loads and the run ends as if never stopped. 8 epochs (about 4 s of
    steps) so that three kills within 2 s of each start land before the end on any machine."""
    import random
    import signal
    import time

    sets = ["--set", "stop.max=8 epochs", *SETS[2:]]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    assert trainc(ref, sets=sets).returncode == 0
    rng = random.Random(7)
    env = {k: v for k, v in os.environ.items() if k != "TRAINC_FAULT"}
    codes = []
    for attempt in range(4):
        started = ck.pointed(out / "checkpoints", "latest") is not None
        p = subprocess.Popen([EXE, "run", SPEC, "-q", "--out", str(out), *sets, *(["--resume"] if started else [])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        if attempt < 3:
            time.sleep(rng.uniform(0.5, 2.0))
            p.send_signal(signal.SIGKILL if attempt % 2 == 0 else signal.SIGTERM)
        _, err = p.communicate(timeout=600)
        codes.append(p.returncode)
        assert "Traceback" not in err, err
        latest = ck.pointed(out / "checkpoints", "latest")
        if latest is not None:
            ck.load(out / "checkpoints" / latest)  # whole: it loads and its checksums hold
    assert codes[:3] in ([-9, 130, -9], [-9, -15, -9]) and codes[3] == 0, codes  # -15: during start-up
    assert_same_run(ref, out)


TINY = """data {{
  source = csv("{data}", target = "progression")
  split  = {{ train = 0.8, val = 0.2 }}
  batch  = 32
}}
model {{
  input x: f32[10]
  pred = x -> dense(1)
}}
loss      = mse(pred, target)
optimizer = sgd(lr = 0.01)
stop {{ max = 2 epochs }}
run {{ seed = 0 }}
"""
SAME = {  # the same spec as TINY, written otherwise: each must resume the run that TINY started
    "a comment line": lambda t: "# a comment that moves every line down\n" + t,
    "reformatted": lambda t: t.replace("  batch  = 32\n", "  batch=32  # per step\n").replace(" = ", "=") + "\n\n",
    "an extra blank line": lambda t: t.replace("model {", "\nmodel {"),
}


@pytest.mark.parametrize("change, where", [(c, w) for c in SAME for w in ("a.train", "./a.train")] +
                         [("reformatted", "moved/b.train")])
def test_resume_accepts_the_same_spec_reformatted_commented_or_moved(tmp_path, interrupted_tiny, change, where):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(interrupted_tiny, run)
    (tmp_path / where).parent.mkdir(exist_ok=True)
    (tmp_path / where).write_text(SAME[change](TINY.format(data=ROOT / "examples/data/diabetes.csv")))
    r = subprocess.run([EXE, "run", where, "-q", "--out", str(run), "--resume"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    assert [m["epoch"] for m in metrics(run)] == [1, 2]


@pytest.fixture(scope="module")
def interrupted_tiny(tmp_path_factory) -> Path:
    """TINY run as `a.train`, stopped by SIGINT in its second epoch (12 steps an epoch) with a checkpoint."""
    home = tmp_path_factory.mktemp("tiny")
    (home / "a.train").write_text(TINY.format(data=ROOT / "examples/data/diabetes.csv"))
    env = {**os.environ, "TRAINC_FAULT": "sigint:15"}
    r = subprocess.run([EXE, "run", "a.train", "-q", "--out", "run"], capture_output=True, text=True, cwd=home,
                       env=env, timeout=600)
    assert r.returncode == 130, r.stderr
    return home / "run"
