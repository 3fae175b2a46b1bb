"""The `trainc` command: run, lint, compile.

Exit codes: 0 success (lint: clean), 1 problems in a spec or its data (lint: findings),
2 usage errors and internal errors. Problems are printed as diagnostics, never tracebacks
(set TRAINC_DEBUG=1 to see the traceback of an internal error).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import List, Optional

import typer

from .compiler import ir, lint as lint_text
from .compiler.diagnostics import Diagnostic, SpecError, render_all
from .compiler.parse import parse, parse_expr

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="trainc: a declarative training language for deep learning, compiled to tinygrad.")


def _show_version(value: bool):
    if value:
        from . import __version__

        print(f"trainc {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                          help="print the version and exit")):
    """trainc: a declarative training language for deep learning, compiled to tinygrad."""


def _color(stream) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _print_diags(diags: list[Diagnostic], sources: dict[str, str]) -> None:
    text = render_all(diags, sources, color=_color(sys.stderr))
    errors = sum(d.is_error for d in diags)
    warnings = len(diags) - errors
    tail = []
    if errors:
        tail.append(f"{errors} error{'s' * (errors != 1)}")
    if warnings:
        tail.append(f"{warnings} warning{'s' * (warnings != 1)}")
    sys.stderr.write(text + "\n\n" + ", ".join(tail) + "\n")


def _usage(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if not p.exists():
        _usage(f"no such file: {path}")
    if p.is_dir():
        _usage(f"{path} is a directory; pass a .train file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        _usage(f"{path} is not UTF-8 text")


def _apply_overrides(file: ir.File, sets: list[str], sources: dict[str, str]) -> ir.File:
    """`--set stop.max="3 epochs"`: replace (or add) one setting before the spec is resolved."""
    items = list(file.items)
    for s in sets:
        if "=" not in s:
            _usage(f"--set takes KEY=VALUE, like --set stop.max=\"3 epochs\"; got {s!r}")
        key, value = s.split("=", 1)
        key = key.strip()
        origin = f"<--set {key}>"
        sources[origin] = value
        expr = parse_expr(value, origin)
        span = expr.span
        section, _, sub = key.partition(".")
        if not section.isidentifier() or (sub and not sub.isidentifier()):
            _usage(f"--set: {key!r} is not a setting name like stop.max or optimizer")
        entry = ir.Entry(key=sub or section, value=expr, key_span=span, span=span)
        for i, item in enumerate(items):
            name = item.name if isinstance(item, ir.Section) else getattr(item, "key", None)
            if name != section:
                continue
            if isinstance(item, ir.Entry) and isinstance(item.value, ir.Record):  # `stop = { ... }`
                item = ir.Section(name=name, body=item.value.entries, name_span=item.key_span, span=item.span)
            if not sub:
                items[i] = replace(entry, key=section)
                break
            if not isinstance(item, ir.Section):
                _usage(f"--set: '{section}' is not a section, write --set {section}=VALUE")
            body = [b for b in item.body if not (isinstance(b, ir.Entry) and b.key == sub)]
            items[i] = replace(item, body=tuple(body) + (entry,))
            break
        else:
            if sub:
                items.append(ir.Section(name=section, body=(entry,), name_span=span, span=span))
            else:
                items.append(entry)
    return replace(file, items=tuple(items))


def _analyze(path: str, sets: list[str] | None = None) -> tuple[ir.Spec, dict[str, str]]:
    from .compiler import check_file

    text = _read(path)
    sources = {path: text}
    try:
        file = parse(text, path)
        if sets:
            file = _apply_overrides(file, sets, sources)
    except SpecError as e:
        _print_diags(e.diagnostics, sources)
        raise typer.Exit(1) from None
    spec, problems = check_file(file, path)
    if problems:  # warnings are shown and the run goes on; errors stop it
        _print_diags(problems, sources)
    if any(d.is_error for d in problems):
        raise typer.Exit(1) from None
    return spec, sources


@app.command()
def run(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                       help="run directory (default: runs/<spec>-<time>)"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help='override a setting: --set stop.max="3 epochs"'),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
):
    """Train a spec: check it, load the data, compile the step and run the loop."""
    spec, sources = _analyze(spec_path, set_)
    from .runtime.data import DataError, load_data
    from .runtime.loop import train
    from .runtime.progress import Progress

    base = Path(spec_path).resolve().parent if spec_path != "-" else Path.cwd()
    folds = spec.data.split.folds if spec.data.split else 0
    try:
        ds = load_data(spec.data, base, spec.run.seed, fold=0 if folds else None)
    except DataError as e:
        _print_diags([e.diagnostic], sources)
        raise typer.Exit(1) from None
    stem = Path(spec_path).stem if spec_path != "-" else "stdin"
    out_dir = out or Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    progress = Progress(quiet=quiet)
    if folds:
        from .runtime.loop import cross_validate

        try:
            cv = cross_validate(spec, lambda f: load_data(spec.data, base, spec.run.seed, fold=f), out_dir, progress)
        except SpecError as e:
            _print_diags(e.diagnostics, sources)
            raise typer.Exit(1) from None
        print(f"{folds}-fold cross-validation: " + "  ".join(
            f"{k} {cv['mean'][k]:.4f} ± {cv['std'][k]:.4f}" for k in cv["mean"]))
        print(f"-> {out_dir}/ (summary.json, fold0/ ... fold{folds - 1}/)")
        return
    classes = f", {ds.n_classes} classes" if ds.n_classes else ""
    progress.write(f"trainc: {spec_path}: {len(ds.x_train)} train / {len(ds.x_val)} val examples{classes}, "
                   f"batch {spec.data.batch}, {spec.optimizer.kind}, up to {spec.stop.max.value:g} "
                   f"{spec.stop.max.unit.value}")
    try:
        result = train(spec, ds, out_dir, progress)
    except SpecError as e:
        _print_diags(e.diagnostics, sources)
        raise typer.Exit(1) from None
    final = result.final
    shown = "  ".join(f"{k} {v:.4f}" for k, v in final.items() if k.startswith("val."))
    print(f"stopped: {result.stop_reason}")
    which = "best epoch" if result.best is not None and final.get("epoch") != result.history[-1]["epoch"] else \
        "last epoch"
    print(f"final ({which} {final.get('epoch')}): {shown}")
    if result.test:
        print("test (held out, once): " + "  ".join(f"{k} {v:.4f}" for k, v in result.test.items()))
    if "confusion" in result.reports:
        print(confusion_table(result.reports["confusion"], ds.classes))
    if result.baseline:
        what = "always the most frequent class" if "val.accuracy" in result.baseline else "always the training mean"
        print(f"baseline ({what}): " + "  ".join(f"{k} {v:.4f}" for k, v in result.baseline.items()))
    print(f"{result.epochs} epochs, {result.steps} steps in {result.seconds:.1f}s -> {out_dir}/ "
          f"(metrics.jsonl, summary.json, model.safetensors)")


def _data_checks(text: str, name: str, path: str) -> list[Diagnostic]:
    """What the data can tell without training: feature shape, classes, class weights, batch size.

    Reads the data files (numpy only, no tinygrad); skipped when they are missing, since a spec may
    be written before its data exists: `trainc run` reports that."""
    from .compiler import analyze
    from .runtime.data import DataError, load_data
    from .runtime.loop import check_against_data

    try:
        spec = analyze(text, name)
    except SpecError:
        return []
    base = Path(path).resolve().parent if path != "-" else Path.cwd()
    sources = [s for s in (spec.data.source, spec.data.train, spec.data.val) if s is not None]
    if not sources or not all((base / s.path).exists() for s in sources):
        return []
    try:
        ds = load_data(spec.data, base, spec.run.seed)
    except DataError as e:
        return [e.diagnostic]
    return check_against_data(spec, ds)


def confusion_table(matrix: list[list[int]], classes) -> str:
    """Rows: true class; columns: predicted class."""
    labels = [str(c) for c in (classes or range(len(matrix)))]
    width = max(max(len(lb) for lb in labels), max(len(str(v)) for row in matrix for v in row), 4)
    head = " " * (width + 1) + " ".join(f"{lb:>{width}}" for lb in labels)
    lines = ["confusion (rows: true class, columns: predicted):", head]
    for lb, row in zip(labels, matrix):
        lines.append(f"{lb:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


@app.command()
def lint(paths: List[str] = typer.Argument(..., metavar="PATH...", help=".train files, or - for stdin"),
         data: bool = typer.Option(True, "--data/--no-data", help="also check the spec against its data files "
                                   "(features, classes, batch size) when they exist")):
    """Check specs without running anything: syntax, names, arguments, units, shapes, and the data."""
    sources, diags = {}, []
    for path in paths:
        name = "<stdin>" if path == "-" else path
        text = _read(path)
        sources[name] = text
        found = lint_text(text, name)
        if data and not any(d.is_error for d in found):
            found += _data_checks(text, name, path)
        diags += found
    if diags:
        _print_diags(diags, sources)
        raise typer.Exit(1) from None
    n = len(paths)
    print(f"{n} file{'s' * (n != 1)} checked, no problems")


@app.command()
def schedule(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="PNG", help="also draw the curve into a PNG file"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1, metavar="N",
                                                  help="instead of reading the data to count them"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="override a setting, as for run"),
):
    """Preview the learning-rate schedule over the whole run, without training."""
    spec, sources = _analyze(spec_path, set_)
    from .runtime import preview
    from .runtime.schedule import epoch_steps

    if steps_per_epoch is None:
        from .runtime.data import DataError, load_data

        base = Path(spec_path).resolve().parent if spec_path != "-" else Path.cwd()
        try:
            ds = load_data(spec.data, base, spec.run.seed)
        except DataError as e:
            _print_diags([e.diagnostic], sources)
            sys.stderr.write("(or give --steps-per-epoch N to preview without the data)\n")
            raise typer.Exit(1) from None
        from .runtime.loop import epoch_size

        steps_per_epoch = epoch_steps(spec, epoch_size(spec, ds.y_train))
    print(preview.table(spec, steps_per_epoch))
    if plot is not None:
        try:
            preview.plot(spec, steps_per_epoch, plot)
        except ImportError as e:
            _usage(str(e))
        print(f"plot written to {plot}")


@app.command()
def summary(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="override a setting, as for run"),
):
    """Each node's output shape, parameter count and FLOPs per example, and a memory estimate."""
    spec, _ = _analyze(spec_path, set_)
    from .compiler.summary import render

    print(render(spec))


@app.command("compile")
def compile_(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    emit: str = typer.Option("ir", "--emit", metavar="ir|ast",
                             help="what to print: ast (the syntax tree) or ir (the checked IR)"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="override a setting, as for run"),
):
    """Print a stage of the compiler as YAML, for inspection and diffs."""
    from .compiler.emit import to_yaml

    if emit not in ("ast", "ir"):
        _usage(f"--emit takes ast or ir, not {emit!r}")
    if emit == "ast":
        text = _read(spec_path)
        sources = {spec_path: text}
        try:
            node = _apply_overrides(parse(text, spec_path), set_, sources)
        except SpecError as e:
            _print_diags(e.diagnostics, sources)
            raise typer.Exit(1) from None
    else:
        node, _ = _analyze(spec_path, set_)
    sys.stdout.write(to_yaml(node))


def main():
    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as e:  # an internal error: a bug in trainc, not in the spec
        if os.environ.get("TRAINC_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(e).__name__}: {e}\n"
                         "this is a bug in trainc; rerun with TRAINC_DEBUG=1 for the traceback and report it\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
