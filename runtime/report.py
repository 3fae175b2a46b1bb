"""`trainc report DIR`: the learning curves of a run as a PNG, and a self-contained HTML page.

The page (`DIR/report.html`) embeds the curves as a base64 PNG and its CSS inline, so it can be mailed
or archived alone. It holds the spec path, the stop reason, the final, best and last metrics against
the baseline, the test metrics, the confusion matrix with class names, the model summary and the
diagnosis (runtime/diagnose.py). A k-fold run directory gets a table of the folds and each fold's
curves (`DIR/foldK/curves.png`). Needs matplotlib (`pip install 'trainc[plot]'`), no tinygrad.

The run directory is untrusted input: it is read and written through rundir.py (no link below it followed,
every file checked against its schema), and only its own spec.train is summarised.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path

from . import rundir
from .diagnose import Finding, RunDirError, diagnose, read_metrics, read_summary

PLOT_HINT = "trainc report needs matplotlib to draw the curves: pip install 'trainc[plot]'"
# a curve whose largest value is more than this many times its smallest is drawn on a log scale; losses only
# beyond a wider span, so that a val.loss rising by a fifth still shows next to a train.loss falling to zero
LOG_SPAN = {"lr": 50, "grad_norm": 50}
LOG_SPAN_OTHER = 1e4

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2330; margin: 2em auto;
       max-width: 1180px; padding: 0 1.2em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 1.8em;
     border-bottom: 1px solid #d8dce4; padding-bottom: 0.2em; } h3 { font-size: 1.05em; }
.meta { color: #4a5263; } .meta b { color: #1d2330; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dce4; padding: 0.25em 0.7em; text-align: right; }
th { background: #f2f4f8; } td:first-child, th:first-child { text-align: left; }
table.confusion td { min-width: 2.6em; } table.confusion td.diag { background: #dff3e4; font-weight: 600; }
table.confusion td.off { background: #fbe3e1; }
img { max-width: 100%; border: 1px solid #e3e6ec; }
pre { background: #f6f7f9; padding: 0.8em; overflow-x: auto; font-size: 13px; }
ul.findings { padding-left: 1.2em; } li.warning { color: #8a2d12; } li.info { color: #1e4f8a; }
li .kind { font-weight: 600; } .healthy { color: #2a6a35; }
"""


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return html.escape(str(v))
    if isinstance(v, int):
        return str(v)
    if not math.isfinite(v):
        return str(v)
    return f"{v:.4g}"


def _figure_api():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(PLOT_HINT) from e
    return Figure, FigureCanvasAgg


def _series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in rows:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(r["epoch"])
            ys.append(float(v))
    return xs, ys


def panels(records: list[dict]) -> list[str]:
    """The curves to draw: loss, then each metric recorded on train or val, then lr and grad_norm if present."""
    names = []
    for r in records:
        for k in r:
            split, _, name = k.partition(".")
            if split in ("train", "val") and name and name != "loss" and name not in names:
                names.append(name)
    out = ["loss", *names]
    out += [k for k in ("lr", "grad_norm") if any(k in r for r in records)]
    return out


def plot_curves(records: list[dict], path: Path, title: str, best_epoch: int | None = None,
                findings: list[Finding] = (), root: Path | None = None) -> Path:
    """Draw one subplot per curve (train and val together) against the epoch and write a PNG (under the run
    directory `root`, default its folder); the epochs where the diagnosis found something are marked on the loss."""
    rundir.write_bytes(Path(path), draw_curves(records, title, best_epoch, findings), root)
    return Path(path)


def draw_curves(records: list[dict], title: str, best_epoch: int | None = None, findings: list[Finding] = ()) -> bytes:
    """The PNG of `plot_curves`, in memory."""
    Figure, FigureCanvasAgg = _figure_api()
    from matplotlib.ticker import MaxNLocator
    rows = [r for r in records if "epoch" in r and "train.loss" in r]
    names = panels(rows)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig = Figure(figsize=(4.6 * ncols, 3.3 * nrows), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    diverged = [r["epoch"] for r in rows if r.get("diverged")]
    for i, name in enumerate(names):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if name in ("lr", "grad_norm"):
            lines = [(name, name, "C2" if name == "lr" else "C3", "-")]
            if name == "grad_norm":
                lines.append(("grad_norm_max", "largest step", "C3", ":"))
        else:
            lines = [(f"train.{name}", "train", "C0", "-"), (f"val.{name}", "val", "C1", "-")]
        values, drawn = [], 0
        for key, label, color, style in lines:
            xs, ys = _series([r for r in rows if not r.get("diverged")], key)
            if xs:
                ax.plot(xs, ys, style, color=color, lw=1.6, marker="." if len(xs) < 40 else None, label=label)
                values += ys
                drawn += 1
        positive = [v for v in values if v > 0]
        if positive and len(positive) == len(values) and \
                max(positive) > LOG_SPAN.get(name, LOG_SPAN_OTHER) * min(positive):
            ax.set_yscale("log")
        elif name == "lr" and values:
            ax.set_ylim(bottom=0, top=max(values) * 1.1 or 1)
        if name == "loss":
            for f in findings:
                if f.epoch is not None:
                    ax.axvline(f.epoch, color="C4", ls="-.", lw=1)
                    ax.annotate(f.kind.replace("_", " "), xy=(f.epoch, 1.0), xycoords=("data", "axes fraction"),
                                xytext=(3, -12), textcoords="offset points", fontsize=8, color="C4")
        if best_epoch is not None:
            ax.axvline(best_epoch, color="0.45", ls="--", lw=1)
        for e in diverged:
            ax.axvline(e, color="red", ls=":", lw=1.2)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(lines) > 1 and drawn:
            ax.legend(fontsize=8)
    note = f" (dashed: best epoch {best_epoch})" if best_epoch is not None else ""
    note += " (red: diverged epochs)" if diverged else ""
    fig.suptitle(title + note, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def model_summary(run_dir: Path, summary: dict) -> str:
    """The spec's `trainc summary` table, from DIR/spec.train with the --set overrides of DIR/run.json (checked as
    `trainc eval` checks them), applied as `trainc run` applied them. Never from the spec path summary.json names:
    that file is outside the run directory, and the run directory is not trusted to choose what is read."""
    from ..compiler import SpecError, compile_spec
    from ..compiler.summary import render
    from .inference import load_run_record

    spec_file = run_dir / "spec.train"
    try:
        text = rundir.read_text(spec_file, rundir.TEXT_MAX, run_dir)
    except rundir.Missing:
        return "(no model summary: the run directory holds no spec.train)"
    except RunDirError as e:
        return f"(no model summary: {e})"
    try:
        overrides = load_run_record(run_dir).overrides
    except rundir.Missing:  # an older run directory: spec.train as it is
        overrides = ()
    except RunDirError as e:
        return f"(no model summary: {e})"
    try:
        compiled = compile_spec(text, str(spec_file), list(overrides), allow=None)  # the pipeline of `trainc run`
        if compiled.syntax:
            raise SpecError(compiled.syntax)
        if compiled.failed:
            raise ValueError(next(d.message for d in compiled.problems if d.is_error))
        return render(compiled.spec)
    except Exception as e:  # a spec edited or broken since the run: the report goes on without it
        why = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return f"(no model summary: {spec_file} cannot be read as a spec: {why})"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def _findings_html(findings: list[Finding]) -> str:
    if not findings:
        return '<p class="healthy">Nothing to report: the curves show no overfitting, underfitting, divergence, ' \
               'plateau or lr problem.</p>'
    items = []
    for f in findings:
        where = f" at epoch {f.epoch}" if f.epoch is not None else ""
        where += f" (step {f.step})" if f.step is not None else ""
        items.append(f'<li class="{f.severity}"><span class="kind">{html.escape(f.kind.replace("_", " "))}'
                     f'{where}</span> ({f.severity}): {html.escape(f.message)}</li>')
    return '<ul class="findings">' + "".join(items) + "</ul>"


def _metrics_html(summary: dict) -> str:
    cols = [(k, summary.get(k)) for k in ("final", "best", "last") if isinstance(summary.get(k), dict)]
    if not cols:
        return "<p>No metrics recorded.</p>"
    keys = []
    for _, rec in cols:
        keys += [k for k in rec if k.split(".")[0] in ("train", "val") and k not in keys]
    base = summary.get("baseline") or {}
    head = "".join(f"<th>{name} (epoch {_fmt(rec.get('epoch'))})</th>" for name, rec in cols)
    rows = [f"<tr><th>metric</th>{head}<th>baseline</th></tr>"]
    for k in keys:
        cells = "".join(f"<td>{_fmt(rec.get(k))}</td>" for _, rec in cols)
        rows.append(f"<tr><td>{html.escape(k)}</td>{cells}<td>{_fmt(base.get(k)) if k in base else ''}</td></tr>")
    note = ""
    if "val.accuracy" in base:
        note = "<p class=meta>baseline: always the most frequent class.</p>"
    elif base:
        note = "<p class=meta>baseline: always the training mean.</p>"
    return "<table>" + "".join(rows) + "</table>" + note


def _confusion_html(matrix: list[list[int]], classes) -> str:
    labels = [str(c) for c in (classes or range(len(matrix)))]
    if len(labels) != len(matrix):
        labels = [str(i) for i in range(len(matrix))]
    head = "".join(f"<th>{html.escape(lb)}</th>" for lb in labels)
    rows = [f"<tr><th>true \\ predicted</th>{head}</tr>"]
    for i, (lb, row) in enumerate(zip(labels, matrix)):
        cells = "".join(f'<td class="diag">{_fmt(v)}</td>' if i == j else f'<td class="off">{_fmt(v)}</td>' if v
                        else f"<td>{_fmt(v)}</td>" for j, v in enumerate(row))
        rows.append(f"<tr><th>{html.escape(lb)}</th>{cells}</tr>")
    return '<table class="confusion">' + "".join(rows) + "</table>"


def _reports_html(summary: dict) -> str:
    out = []
    reports = summary.get("reports") or {}
    for key, title in (("confusion", "Confusion matrix (val, rows: true class, columns: predicted)"),
                       ("test.confusion", "Confusion matrix (test)")):
        if isinstance(reports.get(key), list):
            out.append(f"<h2>{title}</h2>" + _confusion_html(reports[key], summary.get("classes")))
    return "".join(out)


def _page(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _meta(summary: dict, run_dir: Path) -> str:
    parts = [("spec", summary.get("spec")), ("run directory", str(run_dir)), ("stopped", summary.get("stop_reason")),
             ("epochs", summary.get("epochs")), ("steps", summary.get("steps")),
             ("wall time", f"{summary['wall_time_s']:.1f} s" if isinstance(summary.get("wall_time_s"), (int, float))
              else None), ("device", summary.get("device")),
             ("examples", ", ".join(f"{v} {k}" for k, v in (summary.get("examples") or {}).items()) or None)]
    return "<p class=meta>" + "<br>".join(f"{k}: <b>{html.escape(str(v))}</b>" for k, v in parts if v is not None) \
        + "</p>"


def _single(run_dir: Path, summary: dict, records: list[dict]) -> list[Path]:
    if not any("train.loss" in r for r in records):
        raise RunDirError(f"{run_dir / 'metrics.jsonl'} holds no epochs: the run ended before its first epoch")
    findings = diagnose(records, summary)
    best = (summary.get("best") or {}).get("epoch")
    png = draw_curves(records, f"{summary.get('spec') or run_dir}", best, findings)
    rundir.write_bytes(run_dir / "curves.png", png, run_dir)
    title = f"trainc report: {summary.get('spec') or run_dir}"
    body = [f"<h1>{html.escape(title)}</h1>", _meta(summary, run_dir),
            "<h2>Diagnosis</h2>", _findings_html(findings),
            "<h2>Learning curves</h2>", _img(png, "learning curves"),
            "<h2>Metrics</h2>", _metrics_html(summary)]
    if summary.get("test"):
        body += ["<h2>Test (held out, evaluated once on the saved model)</h2>",
                 "<table><tr><th>metric</th><th>value</th></tr>" + "".join(
                     f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in summary["test"].items())
                 + "</table>"]
    body.append(_reports_html(summary))
    body += ["<h2>Model</h2>", f"<pre>{html.escape(model_summary(run_dir, summary))}</pre>"]
    page = run_dir / "report.html"
    rundir.write_bytes(page, _page(title, body).encode("utf-8"), run_dir)
    return [run_dir / "curves.png", page]


def _kfold(run_dir: Path, summary: dict, folds: list[tuple[Path, dict, list[dict]]]) -> list[Path]:
    title = f"trainc report: {summary.get('spec') or run_dir} ({len(folds)}-fold cross-validation)"
    body = [f"<h1>{html.escape(title)}</h1>", _meta(summary, run_dir), "<h2>Folds</h2>"]
    per_fold = summary.get("per_fold") or []
    keys = [k for k in (summary.get("mean") or {})]
    if per_fold and keys:
        rows = ["<tr><th>fold</th><th>stopped</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in keys) + "</tr>"]
        for f in per_fold:
            rows.append(f"<tr><td>{_fmt(f.get('fold'))}</td><td>{html.escape(str(f.get('stop_reason')))}</td>"
                        + "".join(f"<td>{_fmt(f.get(k))}</td>" for k in keys) + "</tr>")
        rows.append("<tr><th>mean ± std</th><td></td>" + "".join(
            f"<td>{_fmt(summary['mean'][k])} ± {_fmt((summary.get('std') or {}).get(k))}</td>" for k in keys) + "</tr>")
        body.append("<table>" + "".join(rows) + "</table>")
    written = []
    for fold_dir, fold_summary, records in folds:
        best = (fold_summary.get("best") or {}).get("epoch")
        findings = diagnose(records, fold_summary)
        png = draw_curves(records, f"{fold_dir.name}: {summary.get('spec') or run_dir}", best, findings)
        rundir.write_bytes(fold_dir / "curves.png", png, run_dir)
        written.append(fold_dir / "curves.png")
        body += [f"<h2>{fold_dir.name}</h2>",
                 f"<p class=meta>stopped: <b>{html.escape(str(fold_summary.get('stop_reason')))}</b></p>",
                 _findings_html(findings), _img(png, f"learning curves of {fold_dir.name}")]
    body += ["<h2>Model</h2>", f"<pre>{html.escape(model_summary(run_dir, summary))}</pre>"]
    page = run_dir / "report.html"
    rundir.write_bytes(page, _page(title, body).encode("utf-8"), run_dir)
    return [*written, page]


def write_report(run_dir) -> list[Path]:
    """Write DIR/curves.png and DIR/report.html for a run directory; return the paths written.

    Raises RunDirError for a directory that is not a readable run, ImportError (naming the fix) without
    matplotlib. For example: `write_report("runs/digits")` -> [runs/digits/curves.png, runs/digits/report.html].
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(f"no such directory: {run_dir}" if not run_dir.exists() else f"{run_dir} is not a directory")
    single = rundir.is_file(run_dir / "metrics.jsonl", run_dir)
    names = sorted((n for n in rundir.entries(run_dir, run_dir) if re.fullmatch(r"fold\d{1,6}", n)),
                   key=lambda n: int(n[4:]))
    folds = [run_dir / n for n in names if not single and rundir.is_file(run_dir / n / "metrics.jsonl", run_dir)]
    if not single and not folds:
        raise RunDirError(f"{run_dir} is not a run directory: it has no metrics.jsonl "
                          "(trainc run SPEC --out DIR writes one)")
    summary = read_summary(run_dir / "summary.json", run_dir)  # everything is read and checked before drawing
    if single:
        records = read_metrics(run_dir / "metrics.jsonl", run_dir)
        _figure_api()
        return _single(run_dir, summary, records)
    read = [(f, read_summary(f / "summary.json", run_dir), read_metrics(f / "metrics.jsonl", run_dir)) for f in folds]
    _figure_api()
    return _kfold(run_dir, summary, read)
