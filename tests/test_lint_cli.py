"""`trainc lint` through the real entry point: `python -m trainc` in a subprocess, and typer's
CliRunner on trainc.cli.app for the cases that need no fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from typer.testing import CliRunner

from trainc.cli import app

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import DIGITS, REPO, make_spec, where  # noqa: E402

runner = CliRunner()


def trainc(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60)


TYPO = make_spec(optimizer="optimizer = adamm(lr = 1e-3)")


def test_clean_example_is_exit_0():
    r = trainc("lint", str(DIGITS))
    assert (r.returncode, r.stdout, r.stderr) == (0, "1 file checked, no problems\n", "")


def test_typo_in_the_optimizer_name(tmp_path):
    path = tmp_path / "typo.train"
    path.write_text(TYPO)
    r = trainc("lint", str(path))
    assert r.returncode == 1
    assert r.stdout == ""
    line, col = where(TYPO, "adamm")
    assert (line, col) == (10, 13)
    assert r.stderr == textwrap.dedent(f"""\
        {path}:10:13: error[E201]: unknown optimizer 'adamm'
           |
        10 | optimizer = adamm(lr = 1e-3)
           |             ^^^^^
          = help: did you mean 'adam'?

        1 error
        """)


def test_caret_sits_under_the_name(tmp_path):
    path = tmp_path / "typo.train"
    path.write_text(TYPO)
    lines = trainc("lint", str(path)).stderr.splitlines()
    source, caret = lines[2], lines[3]
    assert source == "10 | optimizer = adamm(lr = 1e-3)"
    start = caret.index("^")
    assert source[start : start + caret.count("^")] == "adamm"
    assert caret.strip(" |") == "^^^^^"


def test_several_errors_in_different_sections_are_all_reported_sorted():
    src = make_spec(model="model {\n  input x: f32[8]\n  logits = x -> dense(16) -> rellu -> dense(3)\n}",
                    optimizer="optimizer = adamm(lr = 1e-3)", stop="stop { max = 5 epohcs }",
                    metrics="metrics = [acuracy]")
    r = runner.invoke(app, ["lint", "-"], input=src)
    assert r.exit_code == 1
    heads = [line for line in r.stderr.splitlines() if line.startswith("<stdin>:")]
    assert heads == [
        "<stdin>:7:30: error[E201]: unknown layer 'rellu'",
        "<stdin>:10:13: error[E201]: unknown optimizer 'adamm'",
        "<stdin>:11:14: error[E306]: unknown unit 'epohcs'",
        "<stdin>:12:12: error[E201]: unknown metric 'acuracy'",
    ]
    assert [where(src, s) for s in ("rellu", "adamm", "5 epohcs", "acuracy")] == [(7, 30), (10, 13), (11, 14), (12, 12)]
    assert r.stderr.count("= help: did you mean") == 4
    assert r.stderr.endswith("\n\n4 errors\n")


def test_several_files_are_sorted_by_file(tmp_path):
    (tmp_path / "a.train").write_text(TYPO)
    (tmp_path / "b.train").write_text(make_spec(stop="stop { max = 5 epohcs }"))
    r = runner.invoke(app, ["lint", str(tmp_path / "b.train"), str(DIGITS), str(tmp_path / "a.train")])
    assert r.exit_code == 1
    heads = [line.split(": error")[0] for line in r.stderr.splitlines() if ": error[" in line]
    assert heads == [f"{tmp_path / 'a.train'}:10:13", f"{tmp_path / 'b.train'}:11:14"]


def test_stdin_is_read_for_dash():
    r = trainc("lint", "-", stdin=TYPO)
    assert r.returncode == 1
    assert r.stderr.startswith("<stdin>:10:13: error[E201]: unknown optimizer 'adamm'\n")
    clean = trainc("lint", "-", stdin=DIGITS.read_text())
    assert (clean.returncode, clean.stdout) == (0, "1 file checked, no problems\n")


def test_syntax_error_is_a_diagnostic():
    src = make_spec(data="data {\n  batch 64\n}")
    r = runner.invoke(app, ["lint", "-"], input=src)
    assert r.exit_code == 1
    assert r.stderr.splitlines()[0] == "<stdin>:2:9: error[E102]: unexpected '64'"
    assert r.stderr.splitlines()[3] == "  |         ^^"
    assert r.stderr.endswith("\n\n1 error\n")  # the data section left out is not reported missing


def test_missing_file_is_exit_2_without_a_traceback():
    r = trainc("lint", "no/such/file.train")
    assert r.returncode == 2
    assert r.stderr == "error: no such file: no/such/file.train\n"
    assert r.stdout == ""


def test_directory_without_specs_is_exit_2(tmp_path):
    r = runner.invoke(app, ["lint", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr == f"error: no .train files under {tmp_path}\n"


def test_bad_escape_is_a_diagnostic_not_an_internal_error(tmp_path):
    path = tmp_path / "win.train"
    path.write_text(make_spec(data='data {\n  source = csv("C:\\users\\d.csv", target = "y")\n'
                                   "  split = { train = 0.8, val = 0.2 }\n}"))
    r = trainc("lint", str(path))  # was a bug: an internal error (Lark's VisitError), exit 2
    assert r.returncode == 1
    assert r.stderr.startswith(f"{path}:2:19: error[E105]: unknown escape '\\u' in a string\n")
    assert "internal error" not in r.stderr


def test_lint_never_imports_tinygrad():
    code = textwrap.dedent(f"""
        import sys
        from typer.testing import CliRunner
        from trainc.cli import app
        for path in [{str(DIGITS)!r}, "-"]:
            r = CliRunner().invoke(app, ["lint", path], input="optimizer = adamm()\\n")
            assert r.exit_code in (0, 1), r.output
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "tinygrad")
        assert not loaded, loaded
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
