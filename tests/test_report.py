"""`trainc report` and the end-of-run diagnosis on real runs through the `trainc` command: the spec built to
overfit is diagnosed as overfitting, a healthy digits run stays silent, and the report's PNG and HTML are
opened and checked."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
from PIL import Image  # noqa: E402

from trainc.runtime.report import write_report  # noqa: E402

ROOT = Path(__file__).parents[1]


def trainc(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("trainc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "trainc"]
    return subprocess.run(cmd + list(args), cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def overfit(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("overfit") / "run"
    r = trainc("run", "specs/overfit_digits.train", "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out, r


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("digits") / "run"
    r = trainc("run", "examples/digits.train", "--out", str(out), "-q")
    assert r.returncode == 0, r.stderr
    return out, r


def summary_of(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_the_overfit_spec_is_diagnosed_as_overfitting(overfit):
    out, r = overfit
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    val = [row["val.loss"] for row in rows]
    best = val.index(min(val))
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("diagnosis:")]
    assert lines and lines[0].startswith(f"diagnosis: overfitting at epoch {best + 2}: val.loss was lowest at "
                                         f"epoch {best + 1} ({val[best]:.4g})"), r.stdout
    stored = summary_of(out)["diagnosis"]
    assert stored[0]["kind"] == "overfitting" and stored[0]["severity"] == "warning"
    assert stored[0]["values"]["rise"] == pytest.approx(sum(val[-3:]) / 3 / val[best] - 1)


def test_a_healthy_digits_run_has_no_diagnosis(healthy):
    out, r = healthy
    assert "diagnosis" not in r.stdout
    assert summary_of(out)["diagnosis"] == []


def test_report_writes_a_png_and_a_self_contained_html(overfit):
    out, _ = overfit
    r = trainc("report", str(out))
    assert r.returncode == 0, r.stderr
    png, page = out / "curves.png", out / "report.html"
    assert r.stdout.split() == [str(png), str(page)]

    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 250
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 20  # lines, not a blank

    text = page.read_text()
    embedded = re.search(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert embedded and base64.b64decode(embedded.group(1)) == png.read_bytes()
    assert not re.search(r'(src|href)="(?!data:)', text) and "<script" not in text and "<link" not in text

    summary = summary_of(out)
    assert "specs/overfit_digits.train" in text and summary["stop_reason"] in text
    assert f"<td>val.accuracy</td><td>{summary['final']['val.accuracy']:.4g}</td>" in text
    assert "overfitting" in text and "Nothing to report" not in text

    matrix = summary["reports"]["confusion"]
    assert sum(map(sum, matrix)) == summary["examples"]["val"]
    for i, row in enumerate(matrix):
        assert f'<tr><th>{summary["classes"][i]}</th><td' in text
        assert f'<td class="diag">{row[i]}</td>' in text

    # the model summary: 32 inputs -> 256 -> 256 -> 10, weights and biases
    params = 32 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert f"{params:,}" in text and "f32[256]" in text


def test_report_of_a_healthy_run_says_nothing_is_wrong(healthy):
    out, _ = healthy
    paths = write_report(out)
    assert [p.name for p in paths] == ["curves.png", "report.html"]
    text = paths[1].read_text()
    assert "Nothing to report" in text
    assert "baseline: always the most frequent class" in text


def copy_run(src: Path, dst: Path, **summary_changes) -> Path:
    dst.mkdir()
    shutil.copy(src / "metrics.jsonl", dst / "metrics.jsonl")
    summary = {**summary_of(src), **summary_changes}
    (dst / "summary.json").write_text(json.dumps(summary))
    return dst


def test_the_model_summary_comes_from_spec_train_else_notes_what_is_missing(overfit, tmp_path):
    out, _ = overfit
    spec = ROOT / "specs" / "overfit_digits.train"  # a real spec: still never read, it is outside the run directory
    run = copy_run(out, tmp_path / "missing", spec=str(spec))
    write_report(run)
    assert "no model summary: the run directory holds no spec.train" in (run / "report.html").read_text()

    spec = (ROOT / "specs" / "overfit_digits.train").read_text().replace("dense(10)", "dense(7) -> dense(10)")
    (run / "spec.train").write_text(spec)
    write_report(run)
    assert "f32[7]" in (run / "report.html").read_text()

    (run / "spec.train").write_text("model {\n  logits = x -> \n")
    write_report(run)
    assert "cannot be read as a spec" in (run / "report.html").read_text()


def test_a_kfold_directory_gets_a_fold_table_and_curves_per_fold(tmp_path):
    run = tmp_path / "cv"
    per_fold = []
    for k, acc in enumerate([0.9, 0.8]):
        fold = run / f"fold{k}"
        fold.mkdir(parents=True)
        rows = [{"epoch": e, "step": 5 * e, "lr": 0.01, "train.loss": 1 / e, "train.accuracy": acc - 0.1 / e,
                 "val.loss": 1.1 / e, "val.accuracy": acc - 0.2 / e} for e in range(1, 7)]
        (fold / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (fold / "summary.json").write_text(json.dumps({"stop_reason": "reached stop.max (6 epochs)",
                                                       "final": rows[-1], "best": rows[-1]}))
        per_fold.append({"fold": k, "stop_reason": "reached stop.max (6 epochs)",
                         "val.accuracy": rows[-1]["val.accuracy"]})
    (run / "summary.json").write_text(json.dumps({"spec": "specs/kfold_logistic.train", "folds": 2,
                                                  "mean": {"val.accuracy": 0.8167}, "std": {"val.accuracy": 0.05},
                                                  "per_fold": per_fold}))
    paths = write_report(run)
    assert [p.relative_to(run).as_posix() for p in paths] == ["fold0/curves.png", "fold1/curves.png", "report.html"]
    for p in paths[:2]:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width >= 400
    text = paths[-1].read_text()
    assert "2-fold cross-validation" in text and "0.8167 ± 0.05" in text
    assert text.count('<img src="data:image/png;base64,') == 2
    assert "<h2>fold1</h2>" in text and f"<td>{0.8 - 0.2 / 6:.4g}</td>" in text


@pytest.mark.parametrize("make, code, message", [
    (lambda d: d / "nope", 2, "no such directory"),
    (lambda d: d, 1, "is not a run directory: it has no metrics.jsonl"),
    (lambda d: (d / "metrics.jsonl").write_text('{"epoch": 1, "train.loss": 1}\n{oops\n') and d, 1,
     "metrics.jsonl:2: not a JSON record"),
])
def test_report_errors_are_messages_not_tracebacks(tmp_path, make, code, message):
    r = trainc("report", str(make(tmp_path)))
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr


def test_report_without_matplotlib_names_the_extra(overfit):
    out, _ = overfit
    code = ("import sys; sys.modules['matplotlib'] = None; sys.argv = ['trainc', 'report', sys.argv[1]]; "
            "from trainc.cli import main; main()")
    r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "pip install 'trainc[plot]'" in r.stderr and "Traceback" not in r.stderr


def test_the_png_is_a_real_image_in_memory_too(overfit, tmp_path):
    from trainc.runtime.report import plot_curves

    rows = [json.loads(line) for line in (overfit[0] / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r["grad_norm"] = 1.0 / r["epoch"]
    path = plot_curves(rows, tmp_path / "c.png", "with grad_norm")
    with Image.open(io.BytesIO(path.read_bytes())) as im:
        assert im.width >= 3 * 400 and im.height >= 2 * 250  # loss, accuracy, lr, grad_norm: two rows of three


@pytest.mark.parametrize("overrides, shown", [
    ([], "training step, batch 64:"),
    (["data.batch=16"], "training step, batch 16:"),  # the run's --set, as `trainc run` applied it
    (["data.batch=16", "data.batch=8"], "training step, batch 8:"),  # in order: the last one holds
    (["data.batch=16", "model=1"], "no model summary: "),  # an override that does not resolve: no summary
])
def test_the_report_summarises_the_spec_with_the_runs_overrides(tmp_path, overrides, shown):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ROOT / "examples/digits.train", run / "spec.train")
    (run / "run.json").write_text(json.dumps({"spec": str(ROOT / "examples/digits.train"),
                                              "base_dir": str(ROOT / "examples"), "overrides": overrides}))
    rows = [{"epoch": e, "step": 22 * e, "train.loss": 1.0 / e, "val.loss": 1.1 / e} for e in (1, 2)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "summary.json").write_text(json.dumps({"spec": "examples/digits.train", "epochs": 2}))
    write_report(run)
    model = (run / "report.html").read_text().split("<h2>Model</h2>")[1]
    assert shown in model and (overrides == [] or "batch 64" not in model)
