"""`trainc lint --format full|concise|json|github|sarif`, exit codes, stdin, several files and
directories. The formats are pure functions (compiler/formats.py), checked here exactly; the
command is checked through the real entry point (a subprocess: the fast path) and through typer."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from trainc.cli import app
from trainc.compiler import formats, ir
from trainc.compiler.diagnostics import Diagnostic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from helpers import DIGITS, REPO, make_spec, where  # noqa: E402

runner = CliRunner()

TYPO = make_spec(optimizer="optimizer = adamm(lr = 1e-3)")  # E201 at 10:13, with a did-you-mean
SOFTMAX = make_spec(model="model {\n  input x: f32[8]\n  logits = x -> dense(3) -> softmax\n}")  # W401 at 7:29


def trainc(*args: str, stdin: str | None = None, cwd=REPO) -> subprocess.CompletedProcess:
    """The installed command's code path: `python -m trainc` runs trainc.cli.main."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("TRAINC_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "trainc", *args], input=stdin, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=60)


@pytest.fixture
def two(tmp_path):
    """Two specs: a.train with an error (and a help), b.train with a warning (no data files exist)."""
    (tmp_path / "a.train").write_text(TYPO)
    (tmp_path / "b.train").write_text(SOFTMAX)
    return tmp_path / "a.train", tmp_path / "b.train"


def test_where_the_fixture_problems_are():
    assert where(TYPO, "adamm") == (10, 13)
    assert where(SOFTMAX, "cross_entropy") == (9, 8)


# ---- each format, exactly --------------------------------------------------------------------


def test_full_is_the_default_on_stderr(two):
    a, b = two
    r = trainc("lint", str(a), str(b))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(f"{a}:10:13: error[E201]: unknown optimizer 'adamm'\n")
    assert f"\n\n{b}:7:29: warning[W401]: cross_entropy takes logits, but 'logits' ends in softmax\n" in r.stderr
    assert r.stderr.endswith("\n\n1 error, 1 warning\n")
    assert trainc("lint", "--format", "full", str(a), str(b)).stderr == r.stderr


def test_concise_is_one_line_each_on_stdout(two):
    a, b = two
    r = trainc("lint", "--format", "concise", str(b), str(a))
    assert (r.returncode, r.stderr) == (1, "")
    assert r.stdout == (
        f"{a}:10:13: error: unknown optimizer 'adamm' [E201] (help: did you mean 'adam'?)\n"
        f"{b}:7:29: warning: cross_entropy takes logits, but 'logits' ends in softmax [W401] "
        "(help: remove the final softmax: the loss applies it itself, stably)\n")


# VS Code's `$gcc` problem matcher (the C/C++ extension's; a tasks.json matcher can use it as is),
# Vim's default 'errorformat' entry `%f:%l:%c: %m`, and Emacs' `gnu` compilation regexp, simplified.
GCC = re.compile(r"^(.*?):(\d+):(\d*):?\s+(?:fatal\s+)?(warning|error):\s+(.*)$")
VIM = re.compile(r"^(.+?):(\d+):(\d+): (.*)$")
EMACS = re.compile(r"^([^:\n]+):(\d+):(\d+): (?:(error)|(warning)):")


def test_concise_is_read_by_editor_problem_matchers(two):
    a, b = two
    lines = trainc("lint", "--format", "concise", str(a), str(b)).stdout.splitlines()
    assert [GCC.match(line).group(1, 2, 3, 4) for line in lines] == [(str(a), "10", "13", "error"),
                                                                   (str(b), "7", "29", "warning")]
    assert GCC.match(lines[0])[5] == "unknown optimizer 'adamm' [E201] (help: did you mean 'adam'?)"
    assert [VIM.match(line).group(1, 2, 3) for line in lines] == [(str(a), "10", "13"), (str(b), "7", "29")]
    assert [EMACS.match(line).group(4, 5) for line in lines] == [("error", None), (None, "warning")]


def test_json_document(two):
    a, b = two
    r = trainc("lint", "--format", "json", str(a), str(b))
    assert (r.returncode, r.stderr) == (1, "")
    assert json.loads(r.stdout) == {
        "format_version": 1,
        "files": 2,
        "diagnostics": [
            {"path": str(a), "code": "E201", "severity": "error", "message": "unknown optimizer 'adamm'",
             "help": "did you mean 'adam'?", "notes": [],
             "range": {"start": {"line": 10, "col": 13}, "end": {"line": 10, "col": 18}}, "related": [],
             "fix": {"range": {"start": {"line": 10, "col": 13}, "end": {"line": 10, "col": 18}},
                     "replacement": "adam"}},
            {"path": str(b), "code": "W401", "severity": "warning",
             "message": "cross_entropy takes logits, but 'logits' ends in softmax",
             "help": "remove the final softmax: the loss applies it itself, stably", "notes": [],
             "range": {"start": {"line": 7, "col": 29}, "end": {"line": 7, "col": 36}},
             "related": [{"message": "cross_entropy reads 'logits' as logits", "path": str(b),
                          "range": {"start": {"line": 9, "col": 8}, "end": {"line": 9, "col": 37}}}],
             "fix": {"range": {"start": {"line": 7, "col": 25}, "end": {"line": 7, "col": 36}}, "replacement": ""}},
        ],
        "summary": {"errors": 1, "warnings": 1, "files_with_problems": 2},
    }
    assert SOFTMAX.splitlines()[6][28:35] == "softmax"  # the W401 span, end exclusive
    assert SOFTMAX.splitlines()[6][24:35] == " -> softmax"  # its fix: removed
    assert SOFTMAX.splitlines()[8][7:36] == "cross_entropy(logits, target)"  # the loss that reads it


def test_json_of_a_clean_file_is_still_a_document():
    r = trainc("lint", "--format", "json", str(DIGITS))
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"format_version": 1, "files": 1, "diagnostics": [],
                                    "summary": {"errors": 0, "warnings": 0, "files_with_problems": 0}}


def test_github_annotations(two):
    a, b = two
    r = trainc("lint", "--format", "github", str(a), str(b))
    assert (r.returncode, r.stderr) == (1, "")
    assert r.stdout == (
        f"::error file={a},line=10,col=13,endLine=10,endColumn=18,title=E201::unknown optimizer 'adamm'%0A"
        "help: did you mean 'adam'?\n"
        f"::warning file={b},line=7,col=29,endLine=7,endColumn=36,title=W401::cross_entropy takes logits, but "
        "'logits' ends in softmax%0Ahelp: remove the final softmax: the loss applies it itself, stably\n")


def test_github_escapes_data_and_properties():
    d = Diagnostic(code="E999", message="100% sure\r\nreally", span=ir.Span("C:/a,b.train", 2, 3, 2, 4))
    assert formats.github([d], {}) == ("::error file=C%3A/a%2Cb.train,line=2,col=3,endLine=2,endColumn=4,"
                                       "title=E999::100%25 sure%0D%0Areally\n")


def test_sarif_log(two):
    a, b = two
    r = trainc("lint", "--format", "sarif", str(a), str(b))
    assert (r.returncode, r.stderr) == (1, "")
    log = json.loads(r.stdout)
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (driver["name"], driver["version"]) == ("trainc", "0.1.0")
    ids = [rule["id"] for rule in driver["rules"]]
    assert len(ids) == len(set(ids)) and {"E101", "E201", "W401", "E508"} <= set(ids)
    assert all(rule["shortDescription"]["text"] for rule in driver["rules"])
    results = run["results"]
    assert [(x["ruleId"], x["level"]) for x in results] == [("E201", "error"), ("W401", "warning")]
    for x in results:
        assert driver["rules"][x["ruleIndex"]]["id"] == x["ruleId"]
        assert x["message"]["text"]
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc == {"artifactLocation": {"uri": a.as_uri()},
                   "region": {"startLine": 10, "startColumn": 13, "endLine": 10, "endColumn": 18}}
    assert results[0]["message"]["text"] == "unknown optimizer 'adamm'\nhelp: did you mean 'adam'?"
    assert run["columnKind"] == "unicodeCodePoints"


def test_sarif_uris():
    span = lambda path: ir.Span(path, 1, 1, 1, 2)  # noqa: E731
    diags = [Diagnostic(code="E101", message="m", span=span(p)) for p in ("specs/my spec.train", "/abs/x.train",
                                                                         "<stdin>")]
    results = json.loads(formats.sarif(diags, {}))["runs"][0]["results"]
    assert [x["locations"][0]["physicalLocation"]["artifactLocation"] for x in results] == [
        {"uri": "file:///abs/x.train"},
        {"uri": "%3Cstdin%3E", "uriBaseId": "%SRCROOT%"},
        {"uri": "specs/my%20spec.train", "uriBaseId": "%SRCROOT%"},
    ]


def test_every_described_code_is_documented_and_unknown_codes_fall_back_to_their_family():
    documented = set(re.findall(r"^\| ([EW]\d{3}) \|", (REPO / "specs" / "README.md").read_text(), re.M))
    assert set(formats.CODES) <= documented, sorted(set(formats.CODES) - documented)
    assert formats.describe("E201").startswith("unknown layer")
    assert formats.describe("E499") == "shapes problem"


# ---- exit codes, usage errors ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(formats.FORMATS))
def test_exit_codes_in_every_format(fmt, two):
    a, b = two
    assert trainc("lint", "--format", fmt, str(DIGITS)).returncode == 0
    assert trainc("lint", "--format", fmt, str(a)).returncode == 1
    assert trainc("lint", "--format", fmt, str(b)).returncode == 1  # a warning is a finding too


def test_an_unknown_format_is_a_usage_error_listing_the_formats():
    r = trainc("lint", "--format", "xml", str(DIGITS))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "error: --format takes full, concise, json, github, sarif; not 'xml'\n"


def test_an_unreadable_file_stops_before_any_report(tmp_path):
    (tmp_path / "a.train").write_text(TYPO)
    r = trainc("lint", "--format", "concise", str(tmp_path / "a.train"), str(tmp_path / "missing.train"))
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"error: no such file: {tmp_path / 'missing.train'}\n"


def test_a_directory_without_specs_is_a_usage_error(tmp_path):
    r = trainc("lint", str(tmp_path))
    assert (r.returncode, r.stderr) == (2, f"error: no .train files under {tmp_path}\n")


# ---- stdin, several files, directories -------------------------------------------------------


@pytest.mark.parametrize("fmt, head", [
    ("full", "<stdin>:10:13: error[E201]"), ("concise", "<stdin>:10:13: error: unknown optimizer"),
    ("github", "::error file=<stdin>,line=10,col=13,"), ("json", '{\n  "format_version": 1'),
])
def test_stdin_is_shown_as_stdin(fmt, head):
    r = trainc("lint", "--format", fmt, "-", stdin=TYPO)
    assert r.returncode == 1
    assert (r.stderr if fmt == "full" else r.stdout).startswith(head)


def test_a_directory_stands_for_every_spec_below_it_once(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "z.train").write_text(TYPO)
    (tmp_path / "sub" / "a.train").write_text(SOFTMAX)
    (tmp_path / ".hidden" / "h.train").write_text(TYPO)  # hidden folders (.git, .venv) are skipped
    (tmp_path / "notes.txt").write_text("not a spec")
    r = trainc("lint", "--format", "concise", str(tmp_path), str(tmp_path / "z.train"))
    assert r.returncode == 1
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == [str(tmp_path / "sub" / "a.train"),
                                                                      str(tmp_path / "z.train")]
    clean = trainc("lint", str(REPO / "examples"))
    assert (clean.returncode, clean.stdout) == (0, "2 files checked, no problems\n")


def test_the_error_corpus_fails_as_a_directory():
    r = trainc("lint", "--format", "json", "--no-data", str(REPO / "specs" / "errors"))
    doc = json.loads(r.stdout)
    assert r.returncode == 1
    assert doc["files"] == doc["summary"]["files_with_problems"] == len(list(REPO.glob("specs/errors/*.train")))


# ---- the fast path and typer read the arguments alike -----------------------------------------


@pytest.mark.parametrize("args", [
    ["{a}"], ["--format", "concise", "{a}", "{b}"], ["--format=json", "{b}"], ["{a}", "--format", "github"],
    ["--no-data", "--format", "sarif", "{a}"], ["--data", "{digits}"], ["--", "{a}"], ["--format", "nope", "{a}"],
    ["-"],
])
def test_the_fast_path_and_typer_agree(args, two):
    a, b = two
    argv = [x.format(a=a, b=b, digits=DIGITS) for x in args]
    fast = trainc("lint", *argv, stdin=TYPO)
    slow = runner.invoke(app, ["lint", *argv], input=TYPO)
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.exit_code, slow.stdout, slow.stderr)


def test_help_and_unknown_options_go_to_typer():
    assert "--format" in trainc("lint", "--help").stdout
    r = trainc("lint", "--formt", "json", str(DIGITS))
    assert r.returncode == 2 and "--formt" in r.stderr


def test_lint_imports_neither_tinygrad_nor_numpy_nor_pydantic(tmp_path):
    """What keeps `trainc lint` fast: no tensor library, and not typer's pydantic (the fast path)."""
    path = tmp_path / "big.train"
    path.write_text(big_spec())
    code = textwrap.dedent(f"""
        import sys
        sys.argv = ["trainc", "lint", {str(path)!r}]
        from trainc.cli import main
        try:
            main()
        except SystemExit as e:
            assert e.code == 0, e.code
        print(sorted({{m.split(".")[0] for m in sys.modules}} & {{"tinygrad", "numpy", "pydantic"}}))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert (r.returncode, r.stdout.splitlines()[-1]) == (0, "[]")
    assert r.stderr.count("\n") == 1 and "data checks skipped" in r.stderr, r.stderr  # d.csv is not there


def big_spec(lines: int = 300) -> str:
    """A valid spec of about `lines` lines (a deep residual MLP), for timing `trainc lint`:
    python -c "import tests.test_lint_formats as t; print(t.big_spec(), end='')" > /tmp/big.train
    time trainc lint /tmp/big.train"""
    head = ["# a generated spec, for timing `trainc lint`", "data {", '  source = csv("d.csv", target = "y")',
            "  split  = { train = 0.8, val = 0.2 }", "  batch  = 64", "}", "", "model {", "  input x: f32[64]",
            "  block mlp(width, p = 0.1) { dense(width, init = he) -> relu -> dropout(p) }", "  h0 = x -> mlp(64)"]
    tail = ["  logits = h{n} -> dense(10)", "}", "", "loss      = cross_entropy(logits, target, smoothing = 0.05)",
            "optimizer = adamw(lr = 3e-3, weight_decay = 0.01)", "schedule  = warmup(50 steps) then cosine(to = 1e-5)",
            "regularization {", "  l2 = 1e-4", "  clip_grad_norm = 1.0", "}", "stop {", "  max   = 30 epochs",
            "  early = plateau(val.loss, patience = 5)", "  when  = val.accuracy >= 0.99", "}",
            "metrics = [accuracy, f1(average = macro)]", "run { seed = 0 }"]
    body, n = [], 0
    while len(head) + len(body) + len(tail) < lines:
        n += 1
        if n % 3 == 0:
            body.append(f"  # group {n}")
        body.append(f"  h{n} = h{n - 1} -> mlp(64) -> dense(64) -> add(h{n - 1})")
    return "\n".join(head + body + [tail[0].format(n=n)] + tail[1:]) + "\n"


def test_the_big_spec_is_300_lines_and_clean():
    text = big_spec()
    assert len(text.splitlines()) == 300
    r = trainc("lint", "-", stdin=text)
    assert (r.returncode, r.stdout) == (0, "1 file checked, no problems\n")
    assert r.stderr.startswith("note: <stdin>: data checks skipped") and r.stderr.count("\n") == 1  # d.csv
