"""Untrusted input: a spec (or a data file it names) never executes code, and its paths mean one thing.

1. The package sources (compiler/, runtime/, trainc/, grammar/) are scanned, as syntax trees, for
   the ways Python runs code it is handed: eval/exec/compile/__import__, pickle and its kin,
   `importlib.import_module` of a computed name, `allow_pickle=True`, `yaml.load` without a safe
   loader, `shell=True`, os.system/popen/exec/spawn, and any subprocess. The few legitimate uses are
   allow-listed below, each with its reason; the scanner is itself tested on snippets of each form.
2. Specs that try to run code get diagnostics and run nothing.
3. Data paths in a spec resolve against the spec's folder, never the working directory.
"""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ["compiler", "runtime", "trainc", "grammar"]

FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}  # builtins that run or load code
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "runpy"}
OS_RUNNERS = {"system", "popen", "execv", "execve", "execvp", "execvpe", "execl", "execle", "execlp", "execlpe",
              "spawnv", "spawnve", "spawnvp", "spawnvpe", "spawnl", "spawnle", "spawnlp", "spawnlpe", "startfile"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}

# (file, what) -> why it is fine. `what` is the finding's name as `scan` reports it.
ALLOWED = {
    ("runtime/sweep.py", "import subprocess"):
        "the sweep starts one `trainc run` per trial: our own CLI, as an argument list, never a shell",
    ("runtime/sweep.py", "subprocess.Popen"):
        "the trial's command is `trial_command(...)`: [trainc, 'run', SPEC, --out, --set ...], no shell",
}


def _name(node: ast.AST) -> str:
    """`a.b.c` for a chain of attributes, the bare name, or '' for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        head = _name(node.value)
        return f"{head}.{node.attr}" if head else node.attr
    return ""


def scan(source: str) -> list[tuple[int, str]]:
    """(line, what) for every way of running or loading code found in one module's source."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_MODULES or root == "subprocess":
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES or root == "subprocess":
                found.append((node.lineno, f"from {node.module} import"))
            if root == "os" or node.module == "os":
                found += [(node.lineno, f"from os import {a.name}") for a in node.names if a.name in OS_RUNNERS]
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            last = name.rsplit(".", 1)[-1]
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            if name in FORBIDDEN_CALLS or name in {f"builtins.{c}" for c in FORBIDDEN_CALLS}:
                found.append((node.lineno, f"{name}()"))
            if last == "import_module" and not (node.args and isinstance(node.args[0], ast.Constant)):
                found.append((node.lineno, "import_module() of a computed name"))
            if "allow_pickle" in kw and not (isinstance(kw["allow_pickle"], ast.Constant)
                                             and kw["allow_pickle"].value is False):
                found.append((node.lineno, "allow_pickle"))
            if "shell" in kw and not (isinstance(kw["shell"], ast.Constant) and kw["shell"].value is False):
                found.append((node.lineno, "shell=True"))
            if name.startswith("yaml.") and last in ("load", "load_all", "full_load", "full_load_all", "unsafe_load",
                                                      "unsafe_load_all"):
                loader = kw.get("Loader", node.args[1] if len(node.args) > 1 else None)
                if last.startswith(("full", "unsafe")) or loader is None or \
                        _name(loader).rsplit(".", 1)[-1] not in SAFE_LOADERS:
                    found.append((node.lineno, f"{name}() without a safe loader"))
            if name.startswith("os.") and last in OS_RUNNERS:
                found.append((node.lineno, f"{name}()"))
            if name.startswith("subprocess."):
                found.append((node.lineno, name))
            if last == "load" and name.startswith("torch.") and not (
                    isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                found.append((node.lineno, "torch.load() without weights_only=True"))
    return sorted(found)


def package_files() -> list[Path]:
    return sorted(p for d in PACKAGE for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def test_the_package_runs_no_code_it_is_handed():
    findings = []
    for path in package_files():
        rel = path.relative_to(ROOT).as_posix()
        findings += [f"{rel}:{line}: {what}" for line, what in scan(path.read_text()) if (rel, what) not in ALLOWED]
    assert not findings, "code that could run what a spec or a file hands it:\n" + "\n".join(findings)


def test_the_allow_list_is_not_stale():
    used = {(p.relative_to(ROOT).as_posix(), what) for p in package_files() for _, what in scan(p.read_text())}
    assert set(ALLOWED) <= used, set(ALLOWED) - used
    assert len(package_files()) > 30  # the scan saw the package, not an empty folder


@pytest.mark.parametrize("snippet, what", [
    ("eval(text)", "eval()"),
    ("exec(code, {})", "exec()"),
    ("builtins.eval(x)", "builtins.eval()"),
    ("compile(src, 'f', 'exec')", "compile()"),
    ("__import__(name)", "__import__()"),
    ("import pickle", "import pickle"),
    ("from dill import loads", "from dill import"),
    ("import marshal", "import marshal"),
    ("importlib.import_module(spec_name)", "import_module() of a computed name"),
    ("np.load(path, allow_pickle=True)", "allow_pickle"),
    ("np.load(path, allow_pickle=flag)", "allow_pickle"),
    ("yaml.load(text)", "yaml.load() without a safe loader"),
    ("yaml.load(text, Loader=yaml.Loader)", "yaml.load() without a safe loader"),
    ("yaml.unsafe_load(text)", "yaml.unsafe_load() without a safe loader"),
    ("run(cmd, shell=True)", "shell=True"),
    ("os.system(cmd)", "os.system()"),
    ("os.popen(cmd)", "os.popen()"),
    ("from os import system", "from os import system"),
    ("subprocess.run(['ls'])", "subprocess.run"),
    ("torch.load(path)", "torch.load() without weights_only=True"),
])
def test_the_scanner_finds_each_form(snippet, what):
    assert what in [w for _, w in scan(snippet)]


@pytest.mark.parametrize("snippet", [
    "re.compile(r'x')",  # a regular expression, not code
    "importlib.import_module('trainc.compiler.lower')",  # a constant name: our own module
    "np.load(path, allow_pickle=False)",
    "yaml.safe_load(text)",
    "yaml.load(text, Loader=yaml.SafeLoader)",
    "torch.load(path, weights_only=True)",
    "model.eval()",  # a method named eval
    "os.path.join(a, b)",
])
def test_the_scanner_lets_safe_forms_pass(snippet):
    assert scan(snippet) == []


# ---------------------------------------------------------------------------------------------
# Specs that try to run code
# ---------------------------------------------------------------------------------------------


def trainc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=120)


SPEC = """data {{
  source = {source}
  split  = {{ train = 0.5, val = 0.5 }}
  batch  = 2
}}
model {{
  input x: f32[2]
  logits = x -> dense(2)
}}
loss      = {loss}
optimizer = {optimizer}
stop {{ max = 1 epochs }}
"""
OK = dict(source='csv("d.csv", target = "y")', loss="cross_entropy(logits, target)", optimizer="adam(lr = 1e-3)")


@pytest.mark.parametrize("part, text, code", [
    ("optimizer", 'eval("adam(lr = 1e-3)")', "E201"),
    ("optimizer", '__import__("os").system("touch PWNED")', "E102"),
    ("loss", 'exec("open(\'PWNED\', \'w\')")', "E201"),
    ("source", 'os.system("touch PWNED")', "E201"),
    ("source", 'csv("$(touch PWNED)", target = "y")', "E501"),
    ("source", 'csv("d.csv; touch PWNED", target = "y")', "E501"),
    ("source", 'npz("x.pkl")', "E502"),
])
def test_a_spec_that_tries_to_run_code_runs_nothing(tmp_path, part, text, code):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")

    class Boom:  # a real pickle: loading it would create PWNED
        def __reduce__(self):
            return (open, ("PWNED", "w"))

    (tmp_path / "x.pkl").write_bytes(pickle.dumps(Boom()))
    (tmp_path / "s.train").write_text(SPEC.format(**{**OK, part: text}))
    lint = trainc(tmp_path, "lint", "s.train")  # a data file that does not exist yet is not lint's business
    assert lint.returncode == (0 if code == "E501" else 1) and "Traceback" not in lint.stderr, lint.stderr
    r = trainc(tmp_path, "run", "s.train", "--out", "run", "-q")
    assert r.returncode == 1, r.stderr
    assert f"error[{code}]" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Paths resolve against the spec's folder
# ---------------------------------------------------------------------------------------------


def test_data_paths_resolve_against_the_spec_folder_not_the_cwd(tmp_path):
    """The spec's folder holds a good d.csv; the working directory holds a decoy d.csv that would fail."""
    from trainc.compiler import analyze
    from trainc.runtime.data import load_data

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    rows = "".join(f"{i},{i % 3},{i % 2}\n" for i in range(20))
    (project / "data" / "d.csv").write_text("a,b,y\n" + rows)
    (elsewhere / "data").mkdir()
    (elsewhere / "data" / "d.csv").write_text("a,b,y\n1,oops,0\n")  # read from the cwd, this would be E504
    text = SPEC.format(**{**OK, "source": 'csv("data/d.csv", target = "y")'})
    (project / "s.train").write_text(text)

    r = trainc(elsewhere, "lint", str(project / "s.train"))  # lint reads the data when it exists
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    r = trainc(elsewhere, "lint", "../project/s.train")  # a relative spec path too
    assert (r.returncode, r.stderr) == (0, ""), r.stderr

    (elsewhere / "data" / "d.csv").unlink()  # `schedule` reads the data too (to count the steps): the spec's
    r = trainc(elsewhere, "schedule", "../project/s.train")
    assert r.returncode == 0 and "5 steps = 1 epochs of 5 steps" in r.stdout, r.stdout + r.stderr

    spec = analyze(text, str(project / "s.train"))
    ds = load_data(spec.data, project, seed=0)  # the library takes the spec's folder as the base
    assert len(ds.x_train) + len(ds.x_val) == 20


def test_a_missing_relative_path_names_where_it_looked(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "s.train").write_text(SPEC.format(**{**OK, "source": 'csv("d.csv", target = "y")'}))
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n")  # next to the cwd, not next to the spec
    r = trainc(tmp_path, "run", "specs/s.train", "--out", "run", "-q")
    assert r.returncode == 1
    assert f"data file 'd.csv' not found (looked for {tmp_path / 'specs' / 'd.csv'})" in r.stderr, r.stderr
    assert "paths are relative to the directory of the spec file" in r.stderr
