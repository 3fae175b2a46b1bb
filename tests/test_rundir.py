"""A run directory is untrusted input (runtime/rundir.py): tampered and planted files end in a diagnostic
naming the file (exit 1), never an internal error; nothing outside the directory is written, deleted or
quoted; `trainc run` holds a lock and never writes over a finished run unless told to.

One small run is trained once per module; each case copies it, tampers with it, runs a command through
the real entry point and checks: the exit code, a fragment of the message, no traceback or internal error,
a canary folder outside the run directory unchanged, and the canary's secret in no output and no file of
the run directory. Commands run in this process (cheap); those that meet a FIFO or a device run as
subprocesses with a timeout, so a regression fails instead of hanging or eating the memory."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from trainc.runtime import checkpoint as ck
from trainc.runtime import rundir

EXE = str(Path(sys.executable).with_name("trainc"))
SECRET = "CANARY-SECRET-5d1e9"
SECRET_NAME = "canary_secret_5d1e9"  # in the canary's own spec, secret.train
MB = 1024 * 1024
SPEC = """data {
  source = csv("DATA", target = "y")
  split  = { train = 0.8, val = 0.2 }
}
model {
  input x: f32[4]
  logits = x -> dense(3) -> relu -> dense(2)
}
loss = cross_entropy(logits, target)
optimizer = adam(lr = 1e-2)
stop { max = 2 epochs }
checkpoint { keep = best(val.accuracy) }
metrics = [accuracy]
"""
STEP = "checkpoints/step-00000002"


# ---- the finished run, the canary, the commands ------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """proj/t.train over proj/d.csv, trained once into finished/ (the real `trainc run`, as a subprocess)."""
    root = tmp_path_factory.mktemp("rundir")
    proj = root / "proj"
    proj.mkdir()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    rows = [",".join(f"{v:.3f}" for v in r) + f",{int(r[0] > 0)}" for r in x]
    (proj / "d.csv").write_text("a,b,c,d,y\n" + "\n".join(rows) + "\n")
    (proj / "inputs.csv").write_text("a,b,c,d\n" + "\n".join(r.rsplit(",", 1)[0] for r in rows[:5]) + "\n")
    (proj / "t.train").write_text(SPEC.replace("DATA", "d.csv"))
    r = subprocess.run([EXE, "run", str(proj / "t.train"), "-q", "--out", str(root / "finished")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return root


class Case:
    """A copy of the finished run (`run`), a canary folder outside it, and where the commands find things."""

    def __init__(self, project: Path, tmp: Path):
        self.proj, self.tmp = project / "proj", tmp
        self.run = tmp / "run"
        shutil.copytree(project / "finished", self.run, symlinks=True)
        self.canary = tmp / "canary"
        (self.canary / "folder").mkdir(parents=True)
        (self.canary / "secret.txt").write_text(f"{SECRET}\n")
        (self.canary / "secret.csv").write_text(f"{SECRET},y\n1,2\n3,4\n")
        (self.canary / "secret.train").write_text(SPEC.replace("logits", SECRET_NAME))
        shutil.copytree(self.run / "checkpoints", self.canary / "folder" / "checkpoints")
        shutil.copytree(self.run / STEP, self.canary / "folder" / "checkpoints" / "step-00000001")  # prune bait
        (self.canary / "folder" / "keep-me.txt").write_text(SECRET)

    def snapshot(self) -> dict:
        return {str(p.relative_to(self.canary)): (p.read_bytes() if p.is_file() else None, p.lstat().st_mtime_ns)
                for p in sorted(self.canary.rglob("*"))}

    def tune_spec(self, weights: str = "final") -> Path:
        """A spec that starts from this run's weights: init = from(RUN[, weights = ...])."""
        args = f'"{self.run}"' + (f", weights = {weights}" if weights != "final" else "")
        text = SPEC.replace("DATA", str(self.proj / "d.csv")).replace(
            "  input x: f32[4]\n", f"  init = from({args})\n  input x: f32[4]\n")
        (self.tmp / "tune.train").write_text(text)
        return self.tmp / "tune.train"


COMMANDS = {
    "eval": lambda c: ["eval", c.run],
    "eval-latest": lambda c: ["eval", c.run, "--weights", "latest"],
    "eval-best": lambda c: ["eval", c.run, "--weights", "best"],
    "predict": lambda c: ["predict", c.run, c.proj / "inputs.csv"],
    "predict-latest": lambda c: ["predict", c.run, c.proj / "inputs.csv", "--weights", "latest"],
    "report": lambda c: ["report", c.run],
    "resume": lambda c: ["run", c.proj / "t.train", "-q", "--out", c.run, "--resume"],
    "rerun": lambda c: ["run", c.proj / "t.train", "-q", "--out", c.run],
    "force": lambda c: ["run", c.proj / "t.train", "-q", "--out", c.run, "--force"],
    "from": lambda c: ["run", c.tune_spec(), "-q", "--out", c.tmp / "tune"],
    "from-latest": lambda c: ["run", c.tune_spec("latest"), "-q", "--out", c.tmp / "tune"],
}


def in_process(args, capsys) -> tuple[int, str]:
    """`trainc ARGS` through the real entry point, in this process, with at most 2 GB more address space: a
    regression that reads a 300 MB file into a parser fails with MemoryError instead of exhausting the machine."""
    import resource

    from trainc.cli import main

    argv, limits = sys.argv, resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (in_use + 2048 * MB, limits[1]))
    sys.argv = ["trainc", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    finally:
        sys.argv = argv
        resource.setrlimit(resource.RLIMIT_AS, limits)
    out = capsys.readouterr()
    return code, out.out + out.err


def _limit_memory():  # a regression that reads /dev/zero fails with MemoryError, not by swapping the machine
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (6 * 1024 * MB, 6 * 1024 * MB))


def subprocess_(args, timeout: float = 60) -> tuple[int, str]:
    r = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       preexec_fn=_limit_memory)
    return r.returncode, r.stdout + r.stderr


def run_case(case: Case, tamper, command: str, capsys, via_subprocess: bool = False) -> tuple[int, str]:
    """Tamper, run, and check what holds for every case; (exit code, output)."""
    tamper(case)
    before = case.snapshot()
    args = COMMANDS[command](case)
    code, out = subprocess_(args) if via_subprocess else in_process(args, capsys)
    assert "Traceback" not in out and "internal error" not in out, out
    assert SECRET not in out and SECRET_NAME not in out, out
    assert case.snapshot() == before, "something outside the run directory was written or deleted"
    leaked = [p for p in case.run.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size < 64 * MB
              and (SECRET.encode() in p.read_bytes() or SECRET_NAME.encode() in p.read_bytes())]
    assert not leaked, leaked
    return code, out


@pytest.fixture
def case(project, tmp_path) -> Case:
    return Case(project, tmp_path)


# ---- tampering -------------------------------------------------------------------------------------------


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()


def replaced(rel: str, how):
    """A tampering: the file (or folder) `rel` of the run replaced by what `how(case, path)` makes."""
    def tamper(c: Case) -> None:
        path = c.run / rel
        old = path.read_bytes() if path.is_file() else b""
        _remove(path)
        how(c, path, old)
    return tamper


def _write(data: bytes):
    return lambda c, p, old: p.write_bytes(data)


def _sparse(c, p, old):  # 300 MB of nothing: over every size bound, nothing on disk
    with open(p, "wb") as f:
        f.truncate(300 * MB)


KINDS = {  # how a file is replaced
    "link-out": lambda c, p, old: p.symlink_to(c.canary / "secret.txt"),
    "link-zero": lambda c, p, old: p.symlink_to("/dev/zero"),
    "fifo": lambda c, p, old: os.mkfifo(p),
    "folder": lambda c, p, old: p.mkdir(),
    "empty": _write(b""),
    "truncated": lambda c, p, old: p.write_bytes(old[: len(old) // 2]),
    "huge": _sparse,
    "deep": _write(b"[" * 100_000 + b"]" * 100_000),
}
FOLDER_KINDS = {  # how a folder is replaced
    "link-out": lambda c, p, old: p.symlink_to(c.canary / "folder" / "checkpoints" / p.name if p.name != "checkpoints"
                                               else c.canary / "folder" / "checkpoints"),
    "link-zero": lambda c, p, old: p.symlink_to("/dev/zero"),
    "fifo": lambda c, p, old: os.mkfifo(p),
    "file": _write(b"{}"),
}


def safetensors(header, body: bytes = b"") -> bytes:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + body


def _huge_header(c, p, old):
    p.write_bytes(struct.pack("<Q", 2 ** 40) + old[8:])


WRONG_TYPES = {  # per file: well-formed, of the wrong shape
    "spec.train": _write(b"\xff\xfe not utf-8 \x80"),
    "run.json": _write(b"[]"),
    "preprocess.json": _write(b'{"task": 1}'),
    "preprocess.safetensors": _write(safetensors({"x_shift": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}},
                                                 bytes(16))),
    "model.safetensors": _write(safetensors({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}},
                                            bytes(4))),
    "summary.json": _write(b'{"final": "fine", "best": [1]}'),
    "metrics.jsonl": _write(b'{"epoch": "one", "train.loss": 1}\n'),
    "operative.yaml": _write(b"- a list\n- not a mapping\n"),
    "checkpoints/latest": _write(b"../../canary\n"),
    f"{STEP}/state.json": _write(b'{"format_version": "1", "files": {}}'),
    f"{STEP}/model.safetensors": _write(safetensors({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}},
                                                    bytes(4))),
    f"{STEP}/optimizer.safetensors": _write(safetensors([1, 2])),
}
READER = {  # the command that reads each file
    "spec.train": "eval", "run.json": "eval", "preprocess.json": "predict", "preprocess.safetensors": "predict",
    "model.safetensors": "eval", "summary.json": "report", "metrics.jsonl": "report", "operative.yaml": "resume",
    "checkpoints/latest": "eval-latest", f"{STEP}/state.json": "eval-latest",
    f"{STEP}/model.safetensors": "eval-latest", f"{STEP}/optimizer.safetensors": "resume",
}
SAFETENSORS = {f for f in READER if f.endswith(".safetensors")}
# what the message says for each kind of replacement, by file (a file's own entry first)
SAYS = {
    "link-out": "is a symbolic link", "link-zero": "is a symbolic link", "fifo": "is a FIFO", "folder": "is a folder",
    "huge": "more than the", "deep": "nested more than 64 levels deep",
}
SAYS_BY_FILE = {
    ("spec.train", "empty"): "missing", ("spec.train", "truncated"): "error[E", ("spec.train", "deep"): "error[E1",
    ("spec.train", "types"): "not UTF-8", ("metrics.jsonl", "empty"): "holds no epochs",
    ("metrics.jsonl", "truncated"): "not a JSON record", ("operative.yaml", "empty"): "expected an object, found null",
    ("operative.yaml", "truncated"): "not valid YAML",  # cut mid-setting: refused, with --force as the way on
    ("operative.yaml", "types"): "expected an object, found a list",
    ("checkpoints/latest", "empty"): "does not name a checkpoint", ("checkpoints/latest", "truncated"):
    "does not name a checkpoint", ("checkpoints/latest", "deep"): "more than the 256",
    ("checkpoints/latest", "types"): "does not name a checkpoint", ("checkpoints/latest", "huge"): "more than the 256",
    ("run.json", "types"): "expected an object, found a list", ("preprocess.json", "types"): "task: expected a string",
    ("summary.json", "types"): "final: expected an object", ("metrics.jsonl", "types"): "epoch: expected an integer",
    (f"{STEP}/state.json", "types"): "format_version: expected an integer",
}


def says(rel: str, kind: str) -> str:
    if (rel, kind) in SAYS_BY_FILE:
        return SAYS_BY_FILE[rel, kind]
    if rel in SAFETENSORS:
        return {"empty": "truncated", "truncated": "truncated", "huge": "header of 1099511627776 bytes",
                "deep": "corrupted header (nested more than 64", "types": "malformed header entry" if "optimizer"
                not in rel else "corrupted header (not a JSON object)"}.get(kind, SAYS.get(kind))
    return SAYS.get(kind) or ("not valid JSON" if kind in ("empty", "truncated") else "expected")


EVERY_FILE = [(rel, kind) for rel in READER for kind in (*KINDS, "types")]


def _tampering(rel: str, kind: str):
    if kind == "types":
        return replaced(rel, WRONG_TYPES[rel])
    if kind == "huge" and rel in SAFETENSORS:
        return replaced(rel, _huge_header)
    if kind == "deep" and rel in SAFETENSORS:
        return replaced(rel, _write(safetensors(b"[" * 100_000 + b"]" * 100_000)))
    return replaced(rel, KINDS[kind])


@pytest.mark.parametrize("rel, kind", EVERY_FILE, ids=[f"{r}-{k}" for r, k in EVERY_FILE])
def test_every_file_of_a_run_directory_replaced(case, capsys, rel, kind):
    """Each file a command reads, replaced by a link out, a link to /dev/zero, a FIFO, a folder, nothing,
    half of itself, 300 MB, 100,000-deep JSON, or well-formed JSON (or safetensors) of the wrong shape."""
    code, out = run_case(case, _tampering(rel, kind), READER[rel], capsys, via_subprocess=kind in ("fifo", "link-zero"))
    if (rel, kind) == ("operative.yaml", "truncated") and code == 0:
        # half of it may still be valid YAML (where the cut lands depends on the run's path): then its sha256 is
        # the spec's own, and the resume goes on, as it should
        assert "stopped: reached stop.max" in out and "Traceback" not in out, out
        return
    assert code == 1, out
    assert says(rel, kind) in out, out
    assert rel.rsplit("/", 1)[-1] in out or code == 0, out


FOLDERS = [(rel, kind, command) for rel, command in (("checkpoints", "resume"), (STEP, "eval-latest"))
           for kind in FOLDER_KINDS]


@pytest.mark.parametrize("rel, kind, command", FOLDERS, ids=[f"{r}-{k}" for r, k, _ in FOLDERS])
def test_every_folder_of_a_run_directory_replaced(case, capsys, rel, kind, command):
    """checkpoints/ or a step folder as a link (to a copy of the checkpoints, outside: `--resume` would write and
    prune there), a link to /dev/zero, a FIFO, a file."""
    code, out = run_case(case, replaced(rel, FOLDER_KINDS[kind]), command, capsys,
                         via_subprocess=kind in ("fifo", "link-zero"))
    assert code == 1 and rel.rsplit("/", 1)[-1] in out, out
    assert {"link-out": "is a symbolic link", "link-zero": "is a symbolic link", "fifo": "is a FIFO",
            "file": "is a file, not a folder"}[kind] in out, out


# ---- the cases of issue 13, one by one ----------------------------------------------------------------------


def edit_json(rel: str, change):
    def tamper(c: Case) -> None:
        p = c.run / rel
        doc = json.loads(p.read_text())
        p.write_text(json.dumps(change(doc)))
    return tamper


def edit_model(rel: str, change, record_sha: str | None = None):
    """Rewrite a safetensors file's tensors (and, with `record_sha`, the sha256 a JSON file records for it, as a
    careful tamperer would)."""
    def tamper(c: Case) -> None:
        p = c.run / rel
        data = ck.encode_safetensors(change(ck.read_safetensors(p)))
        p.write_bytes(data)
        if record_sha:
            import hashlib

            edit_json(record_sha, lambda d: {**d, "files": {**d.get("files", {}),
                                                            "model.safetensors": hashlib.sha256(data).hexdigest()}})(c)
    return tamper


def bit_flip(rel: str):
    def tamper(c: Case) -> None:
        raw = bytearray((c.run / rel).read_bytes())
        raw[-3] ^= 0x10
        (c.run / rel).write_bytes(bytes(raw))
    return tamper


def header(rel: str, entry: bytes):
    """model.safetensors with one tensor entry written by hand (shapes JSON cannot hold in numpy)."""
    return replaced(rel, _write(safetensors(b'{"logits.dense0.W": ' + entry + b"}", bytes(48))))


def link(rel: str, target):
    return lambda c: (_remove(c.run / rel) if (c.run / rel).exists() or (c.run / rel).is_symlink() else None,
                      (c.run / rel).symlink_to(target(c)))


def untouched(c: Case) -> None:
    pass


def leak_through_data(c: Case) -> None:  # run.json's base_dir and spec.train's data: the canary's secret.csv
    edit_json("run.json", lambda d: {**d, "base_dir": str(c.canary), "spec": str(c.canary / "secret.txt")})(c)
    spec = (c.run / "spec.train").read_text().replace('csv("d.csv", target = "y")', 'csv("secret.csv", target = "q")')
    (c.run / "spec.train").write_text(spec)


def int32(tensors):
    return {k: v.astype(np.int32) for k, v in tensors.items()}


ISSUE_CASES = [  # (what, tampering, command, exit code, message fragment)
    # writes and deletes escaping the directory
    ("checkpoints links to a copy outside", link("checkpoints", lambda c: c.canary / "folder" / "checkpoints"),
     "resume", 1, "checkpoints is a symbolic link"),
    ("metrics.jsonl links outside", link("metrics.jsonl", lambda c: c.canary / "secret.txt"), "resume", 1,
     "metrics.jsonl is a symbolic link"),
    ("summary.json.tmp links outside (not a name trainc writes)",
     link("summary.json.tmp", lambda c: c.canary / "secret.txt"), "resume", 0, "stopped: reached stop.max"),
    ("report.html links outside", link("report.html", lambda c: c.canary / "secret.txt"), "report", 1,
     "report.html is a symbolic link"),
    ("curves.png links outside", link("curves.png", lambda c: c.canary / "secret.txt"), "report", 1,
     "curves.png is a symbolic link"),
    ("the latest step folder links outside",
     link(STEP, lambda c: c.canary / "folder" / "checkpoints" / "step-00000002"),
     "eval-latest", 1, "step-00000002 is a symbolic link"),
    ("a link planted in checkpoints/ on --force", link("checkpoints/step-00000001", lambda c: c.canary / "folder"),
     "force", 0, "stopped"),
    ("a file planted in checkpoints/ on --force", lambda c: (c.run / "checkpoints" / "notes.txt").write_text("mine"),
     "force", 0, "stopped"),
    # what used to be an internal error
    ("deep JSON in a safetensors header", replaced("model.safetensors", _write(safetensors(b"[" * 50_000))),
     "eval", 1, "corrupted header"),
    ("deep state.json", replaced(f"{STEP}/state.json", _write(b'{"a": ' * 50_000)), "resume", 1,
     "nested more than 64 levels deep"),
    ("shape [2^32, 2^32]", header("model.safetensors", b'{"dtype": "F32", "shape": [4294967296, 4294967296], '
                                                       b'"data_offsets": [0, 48]}'), "eval", 1, "outside the file"),
    ("shape [1e400]", header("model.safetensors", b'{"dtype": "F32", "shape": [1e400], "data_offsets": [0, 48]}'),
     "eval", 1, "malformed header entry"),
    ("preprocess.json {}", replaced("preprocess.json", _write(b"{}")), "predict", 1, 'no "task"'),
    ("preprocess.json []", replaced("preprocess.json", _write(b"[]")), "eval", 1, "expected an object, found a list"),
    ("preprocess.json: unknown task", edit_json("preprocess.json", lambda d: {**d, "task": "telepathy"}), "predict",
     1, "unknown task 'telepathy'"),
    ("preprocess.json: null classes", edit_json("preprocess.json", lambda d: {**d, "classes": None}), "eval", 1,
     "a classifier needs its classes"),
    ("preprocess.safetensors without x_scale",
     edit_model("preprocess.safetensors", lambda t: {"x_shift": t["x_shift"]}),
     "predict", 1, "expected the tensors x_scale, x_shift"),
    ("preprocess.safetensors of the wrong shape",
     edit_model("preprocess.safetensors", lambda t: {k: np.zeros(7, np.float32) for k in t}), "predict", 1,
     "has shape [7]"),
    ("run.json is a list", replaced("run.json", _write(b"[1, 2]")), "eval", 1, "expected an object, found a list"),
    ("garbage loop in state.json", edit_json(f"{STEP}/state.json", lambda d: {**d, "loop": {"epoch": "x"}}), "resume",
     1, "loop.epoch: expected an integer"),
    ("unknown loop key in state.json",
     edit_json(f"{STEP}/state.json", lambda d: {**d, "loop": {**d["loop"], "evil": 1}}), "resume", 1,
     "unknown key 'evil'"),
    ("garbage rng in state.json", edit_json(f"{STEP}/state.json", lambda d: {**d, "rng": {"bit_generator": "x"}}),
     "resume", 1, "rng: not the state of numpy"),
    ("a 10 MB latest pointer", replaced("checkpoints/latest", _write(b"step-00000002" + b" " * 10 * MB)),
     "eval-latest", 1, "more than the 256 bytes"),
    # validation on every load, not only --resume
    ("bit flip in the latest checkpoint: eval", bit_flip(f"{STEP}/model.safetensors"), "eval-latest", 1,
     "does not match the checksum in state.json"),
    ("bit flip in the latest checkpoint: predict", bit_flip(f"{STEP}/model.safetensors"), "predict-latest", 1,
     "does not match the checksum in state.json"),
    ("bit flip in the best checkpoint: eval", bit_flip(f"{STEP}/model.safetensors"), "eval-best", 1,
     "does not match the checksum in state.json"),
    ("bit flip in the latest checkpoint: from()", bit_flip(f"{STEP}/model.safetensors"), "from-latest", 1,
     "does not match the checksum in state.json"),
    ("bit flip in the final weights: eval", bit_flip("model.safetensors"), "eval", 1,
     "does not match the checksum in summary.json"),
    ("bit flip in the final weights: from()", bit_flip("model.safetensors"), "from", 1,
     "does not match the checksum in summary.json"),
    ("int32 weights, checksum recorded: eval", edit_model("model.safetensors", int32, "summary.json"), "eval", 1,
     "the checkpoint has dtype int32, the model float32"),
    ("int32 weights, checksum recorded: from()", edit_model("model.safetensors", int32, "summary.json"), "from", 1,
     "has dtype int32 in model.safetensors, the model needs float32"),
    ("a tensor missing from the final weights", edit_model("model.safetensors", lambda t: dict(list(t.items())[1:]),
                                                           "summary.json"), "eval", 1, "missing logits.dense0.W"),
    # information leaks
    ("spec.train links to a secret", link("spec.train", lambda c: c.canary / "secret.txt"), "eval", 1,
     "spec.train is a symbolic link"),
    ("run.json and spec.train point the data at a secret", leak_through_data, "eval", 1,
     "cannot read the data this run's spec names (E503)"),
    ("summary.json names a secret spec, no spec.train",
     lambda c: (edit_json("summary.json", lambda d: {**d, "spec": str(c.canary / "secret.train")})(c),
                (c.run / "spec.train").unlink()), "report", 0, "report.html"),
    # untampered: every command works (and the checks above can pass)
    ("nothing: eval", untouched, "eval", 0, "val.accuracy"),
    ("nothing: eval --weights latest", untouched, "eval-latest", 0, "val.accuracy"),
    ("nothing: predict", untouched, "predict", 0, "prediction,p_0,p_1"),
    ("nothing: report", untouched, "report", 0, "curves.png"),
    ("nothing: --resume", untouched, "resume", 0, "stopped: reached stop.max"),
    ("nothing: from()", untouched, "from", 0, "stopped"),
]


@pytest.mark.parametrize("what, tamper, command, code, message", ISSUE_CASES, ids=[c[0] for c in ISSUE_CASES])
def test_tampered_run_directories(case, capsys, what, tamper, command, code, message):
    got, out = run_case(case, tamper, command, capsys)
    assert got == code and message in out, out
    if command.startswith("from") and code:
        assert not (case.tmp / "tune").exists()  # a run refused before training leaves no folder behind


def test_a_planted_link_in_checkpoints_is_left_alone_and_its_target_kept(case, capsys):
    run_case(case, link("checkpoints/step-00000001", lambda c: c.canary / "folder"), "force", capsys)
    assert (case.run / "checkpoints" / "step-00000001").is_symlink()
    assert (case.canary / "folder" / "keep-me.txt").read_text() == SECRET


FIFO_CASES = [  # (what, command) beyond the table above: model.safetensors as a FIFO blocked predict and from()
    ("model.safetensors", "predict"), ("model.safetensors", "from"), ("checkpoints/latest", "from-latest"),
    (f"{STEP}/model.safetensors", "from-latest"),
]


@pytest.mark.parametrize("rel, command", FIFO_CASES)
def test_a_fifo_never_blocks(case, capsys, rel, command):
    code, out = run_case(case, replaced(rel, KINDS["fifo"]), command, capsys, via_subprocess=True)
    assert code == 1 and "is a FIFO (named pipe), not a file" in out, out


# ---- the lock, and a finished run ----------------------------------------------------------------------------

HOLDER = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
if sys.argv[2] == "flock":
    fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, b"%d\\n" % os.getpid())
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["flock", "pid only"])
def test_a_second_run_is_refused_while_another_holds_the_directory(case, capsys, how):
    out_dir = case.tmp / "busy"
    out_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out_dir / ".lock"), how], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, out = in_process(["run", case.proj / "t.train", "-q", "--out", out_dir], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 1 and f"is in use by another trainc run (pid {holder.pid})" in out, out
    assert sorted(p.name for p in out_dir.iterdir()) == [".lock"]  # nothing of the refused run was written


def test_two_real_runs_at_once_and_a_killed_one(case, capsys):
    """A `trainc run` that trains on holds the lock: a second one is refused naming its pid; once it is killed
    (SIGKILL: no chance to clean up), the next run takes the stale lock over and finishes."""
    import time

    out_dir = case.tmp / "shared"
    first = subprocess.Popen([EXE, "run", case.proj / "t.train", "-q", "--out", out_dir, "--set",
                              "stop.max=100000 epochs"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out_dir / ".lock").exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        code, out = in_process(["run", case.proj / "t.train", "-q", "--out", out_dir], capsys)
        assert code == 1 and f"is in use by another trainc run (pid {first.pid})" in out, out
    finally:
        first.kill()
        first.wait()
    code, out = in_process(["run", case.proj / "t.train", "-q", "--out", out_dir], capsys)
    assert code == 0 and f"taking over the stale lock of pid {first.pid}" in out, out
    assert not (out_dir / ".lock").exists()


def test_a_stale_lock_is_taken_over_and_the_lock_released_at_exit(case, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out_dir = case.tmp / "stale"
    out_dir.mkdir()
    (out_dir / ".lock").write_text(f"{dead.pid}\n")
    code, out = in_process(["run", case.proj / "t.train", "-q", "--out", out_dir], capsys)
    assert code == 0, out
    assert f".lock: taking over the stale lock of pid {dead.pid} (no such process)" in out
    assert not (out_dir / ".lock").exists() and (out_dir / "summary.json").is_file()


def test_a_lock_that_is_a_link_is_refused(case, capsys):
    code, out = run_case(case, link(".lock", lambda c: c.canary / "secret.txt"), "force", capsys)
    assert code == 1 and ".lock is a symbolic link" in out, out


def test_a_finished_run_is_not_written_over_without_force(case, capsys):
    files = {p: p.read_bytes() for p in case.run.rglob("*") if p.is_file()}
    code, out = in_process(COMMANDS["rerun"](case), capsys)
    assert code == 1 and "holds a finished run (summary.json)" in out and "--force" in out, out
    assert {p: p.read_bytes() for p in case.run.rglob("*") if p.is_file()} == files
    code, out = in_process(COMMANDS["force"](case), capsys)
    assert code == 0, out
    assert json.loads((case.run / "run.json").read_text())["started"] != json.loads(files[case.run / "run.json"])[
        "started"] or (case.run / "metrics.jsonl").read_bytes() != files[case.run / "metrics.jsonl"]


def test_a_run_refused_before_training_leaves_no_folder_it_made(case, capsys):
    spec = case.tmp / "bad.train"
    spec.write_text(SPEC.replace("DATA", str(case.proj / "d.csv")).replace(
        "  input x: f32[4]\n", '  init = from("nowhere")\n  input x: f32[4]\n'))
    code, out = in_process(["run", spec, "-q", "--out", case.tmp / "new" / "run"], capsys)
    assert code == 1 and "error[E509]" in out, out
    assert not (case.tmp / "new" / "run").exists()


# ---- the schemas ----------------------------------------------------------------------------------------------


def test_the_state_schemas_name_every_field_of_the_loop_and_the_plateau():
    from trainc.runtime.loop import LoopState
    from trainc.runtime.schedule import Plateau

    assert set(rundir.LOOP_STATE) == {f.name for f in fields(LoopState)}
    assert set(rundir.PLATEAU) == {f.name for f in fields(Plateau)}


@pytest.mark.parametrize("value, schema, message", [
    ({"epoch": "1"}, {"epoch": int}, 'epoch: expected an integer, found a string'),
    ({"epoch": True}, {"epoch": int}, "epoch: expected an integer, found true or false"),
    ({"epoch": 2 ** 70}, {"epoch": int}, "epoch: expected an integer, found an integer"),
    ({}, {"epoch": int}, 'no "epoch"'),
    ({}, {"?epoch": int}, None),
    ({"a": [1, "x"]}, {"a": [float]}, "a[1]: expected a number, found a string"),
    ({"a": {"k\x1b[31m": "x"}}, {"a": {str: float}}, "a['k\\x1b[31m']: expected a number, found a string"),
    ({"a": None}, {"a": ([int], None)}, None),
    ({"a": [None]}, {"a": ([int], None)}, "a[0]: expected an integer, found null"),
    ({"best_row": {"epoch": -1}}, {"best_row": rundir.ROW_OR_NULL},
     "best_row.epoch: expected an integer of at least 0"),
    ({"stopped": "done\x1b[2J"}, {"stopped": (rundir.TEXT, None)},
     "stopped: expected at most 1000 printable characters"),
    ({"stopped": 3}, {"stopped": (rundir.TEXT, None)}, "stopped: expected a string or null, found an integer"),
    ({"history": [{"val.loss": [1]}]}, {"history": [rundir.metrics_row]},
     "history[0]['val.loss']: expected a number or a string or true or false or null, found a list"),
])
def test_schema_messages_name_the_key_and_quote_no_value(value, schema, message):
    assert rundir.check(value, schema) == message


def test_quote_escapes_and_caps_what_it_quotes():
    assert rundir.quote("a\x1b[2Jb" + "x" * 100) == repr("a\x1b[2Jb" + "x" * 34) + "..."  # 40 characters


@pytest.mark.parametrize("name, ok", [("\n", True), ("\t", True), (" ", True), ("a", True), ("\x1b", False),
                                      ("\x1b[2J", False), ("a\nb", False)])
def test_a_class_name_may_be_one_whitespace_character_but_no_escape(name, ok):
    """A character vocabulary has "\\n" as a class (text sources): summary.json keeps it and is read back; a
    control character that could drive a terminal stays refused."""
    from trainc.runtime import rundir

    why = rundir.check({"spec": "a", "stop_reason": "x", "epochs": 1, "steps": 1, "classes": ["a", name]},
                       {"?classes": ([rundir.LABEL], None)})
    assert (why is None) == ok, why
