"""`pip install .` gives a working trainc: the wheel holds every module and data file of the tree, and
installed into a fresh virtual environment (no network: the dependencies come from this environment),
its `trainc` lints, trains, and serves the language protocol.

The editable install the other tests use maps the source folders directly, so it cannot see a module
the wheel leaves out; these tests use the wheel itself."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROOTS = {"trainc": "trainc", "grammar": "trainc/grammar", "compiler": "trainc/compiler", "runtime": "trainc/runtime"}
SHIPPED = ("*.py", "*.lark")  # what the package reads at run time
BUILD_FILES = ("pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the tree (the build writes build/ and egg-info where it runs)."""
    tree = tmp_path_factory.mktemp("src")
    for folder in ROOTS:
        shutil.copytree(ROOT / folder, tree / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in BUILD_FILES:
        shutil.copy(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    p = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                        "-q", "-w", str(out), str(tree)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    (whl,) = out.glob("trainc-*.whl")
    return whl


def tree_files() -> set[str]:
    """Every file of the package as the wheel must name it: compiler/lower/losses.py -> trainc/compiler/lower/..."""
    out = set()
    for folder, target in ROOTS.items():
        for pattern in SHIPPED:
            for f in (ROOT / folder).rglob(pattern):
                if "__pycache__" not in f.parts:
                    out.add(f"{target}/{f.relative_to(ROOT / folder).as_posix()}")
    return out


def test_the_wheel_holds_every_module_and_data_file(wheel):
    names = {n for n in zipfile.ZipFile(wheel).namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert {"trainc/compiler/catalog/__init__.py", "trainc/runtime/sources/images.py",
            "trainc/grammar/train.lark"} <= names  # the three the first wheel lacked
    assert sorted(tree_files() - names) == []
    assert sorted(names - tree_files()) == []  # nothing else either (tests, editors, bench stay out)


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; it sees this environment's packages for the dependencies only."""
    env_dir = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = Path(sysconfig.get_paths()["purelib"])  # lark, tinygrad, numpy, ... (never our editable trainc: its
    (site / "deps.pth").write_text(f"{deps}\n")    # finder is a .pth there, and .pth files are not read twice)
    p = subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install",
                        "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return env_dir


def installed(venv: Path, *args: str, cwd: Path, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run([str(venv / "bin" / "trainc"), *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout, **kw)


@pytest.fixture
def example(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "examples" / "digits.train", tmp_path / "digits.train")
    shutil.copy(ROOT / "examples" / "data" / "digits.csv", tmp_path / "data" / "digits.csv")
    return tmp_path


def test_installed_trainc_is_the_wheel(venv, example):
    p = subprocess.run([str(venv / "bin" / "python"), "-c", "import trainc.compiler.lower, trainc.runtime.sources."
                        "images as m, trainc; print(trainc.__file__)"], capture_output=True, text=True, cwd=example,
                       timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert Path(p.stdout.strip()).is_relative_to(venv)  # not the source tree
    v = installed(venv, "--version", cwd=example)
    assert v.returncode == 0 and v.stdout.strip().endswith("0.1.0"), v.stdout + v.stderr


def test_installed_trainc_lints_and_trains(venv, example):
    lint = installed(venv, "lint", "digits.train", cwd=example)
    assert lint.returncode == 0 and "no problems" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    bad = example / "bad.train"
    bad.write_text((example / "digits.train").read_text().replace("adamw(", "adamx("))
    lint = installed(venv, "lint", "bad.train", cwd=example)
    assert lint.returncode == 1 and "E2" in lint.stdout + lint.stderr and "adamw" in lint.stdout + lint.stderr
    run = installed(venv, "run", "digits.train", "--out", "out", "--set", "stop.max=1 epochs", "-q", cwd=example)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    rows = [json.loads(line) for line in (example / "out" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and rows[0]["val.accuracy"] > 0.3  # chance: 0.1


def _message(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return f"Content-Length: {len(data)}\r\n\r\n".encode() + data


def test_installed_language_server_answers_initialize(venv, example):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}}}
    stdin = _message(init) + _message({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}) + \
        _message({"jsonrpc": "2.0", "method": "exit"})
    p = subprocess.run([str(venv / "bin" / "trainc"), "lsp"], input=stdin, capture_output=True, cwd=example,
                       timeout=120)
    head, _, rest = p.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"Content-Length: "), p.stdout[:500] + p.stderr[-2000:]
    length = int(head.split(b"\r\n")[0].split(b":")[1])
    reply = json.loads(rest[:length])
    assert reply["id"] == 1 and "completionProvider" in reply["result"]["capabilities"], reply
    assert reply["result"].get("serverInfo", {}).get("name") == "trainc", reply
