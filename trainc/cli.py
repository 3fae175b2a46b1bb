"""The `trainc` command: run, lint, compile.

Exit codes: 0 success (lint: clean), 1 problems in a spec or its data (lint: findings),
2 usage errors and internal errors. Problems are printed as diagnostics, never tracebacks
(set TRAINC_DEBUG=1 to see the traceback of an internal error).
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional

import typer

from .compiler import Compiled, env, ir
from .compiler.diagnostics import Diagnostic, SpecError

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
    return stream.isatty() and not env.get("NO_COLOR")


def _print_diags(diags: list[Diagnostic], sources: dict[str, str]) -> None:
    """The `full` format on stderr: each problem with its line, a caret and help; a count at the end."""
    from .compiler.formats import full

    sys.stderr.write(full(diags, sources, color=_color(sys.stderr)))


def _usage(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(2)


def _read(path: str, problems: list[Diagnostic] | None = None) -> str:
    """A spec's text (`-`: standard input), new lines as Python's text mode reads them. Bytes that are not a
    spec (not UTF-8, more than parse.MAX_SPEC_BYTES: never more is read) and a file that cannot be read are
    a diagnostic: appended to `problems` (lint goes on with the other files, and shows the text returned),
    else printed, and exit 1. A path that names no file is a usage error (exit 2)."""
    from .compiler.parse import MAX_SPEC_BYTES, decode

    def refuse(found: Diagnostic, text: str) -> str:
        if problems is None:
            _print_diags([found], {found.span.file: text})
            raise typer.Exit(1)
        problems.append(found)
        return text

    name, size = "<stdin>" if path == "-" else path, None
    if path == "-":  # bytes, decoded here: the locale's decoding would fail (or let garbage through) on its own
        data = sys.stdin.buffer.read(MAX_SPEC_BYTES + 1) if hasattr(sys.stdin, "buffer") else sys.stdin.read()
        data = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    else:
        if not os.path.exists(path):
            _usage(f"no such file: {path}")
        if os.path.isdir(path):
            _usage(f"{path} is a directory; pass a .train file")
        try:  # O_NONBLOCK: a FIFO without a writer reads as empty instead of waiting forever
            with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as f:
                os.set_blocking(f.fileno(), True)
                size = os.fstat(f.fileno()).st_size
                data = f.read(MAX_SPEC_BYTES + 1)  # /dev/zero, or a 5 GB file: no more than the limit
        except (OSError, ValueError) as e:  # no permission, a broken link, an I/O error
            return refuse(Diagnostic(code="E108", message=f"cannot read {path}: {getattr(e, 'strerror', None) or e}",
                                     span=ir.Span(name, 1, 1, 1, 1)), "")
    text, found = decode(data, name, size)
    return refuse(found, text) if found else text


def _allowed(allow: list[str]) -> tuple[str, ...]:
    """--allow W302 --allow W401,W402: the codes, each stripped."""
    return tuple(c.strip() for a in allow for c in a.split(",") if c.strip())


def _compile(path: str, sets: list[str] | None = None, allow: tuple[str, ...] = (), until: str = "check") -> Compiled:
    """The spec at `path` (- for stdin) through the pipeline (compiler.compile_spec); its problems printed
    (warnings shown, the command goes on), exit 1 on an error. A malformed --set is a usage error (exit 2).
    Warnings allowed by `allow` or a `# trainc: allow CODE` comment on their line are not shown."""
    from .compiler import OverrideError, compile_spec

    text = _read(path)
    try:
        compiled = compile_spec(text, path, sets or (), until=until, allow=allow)
    except OverrideError as e:
        _usage(str(e))
    if compiled.problems:
        _print_diags(list(compiled.problems), compiled.sources)
    if compiled.syntax or compiled.failed:
        raise typer.Exit(1)
    return compiled


@app.command()
def run(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                       help="run directory (default: runs/<spec>-<time>)"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE",
                                   help='override a setting: --set stop.max="3 epochs"'),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines"),
    resume: Optional[str] = typer.Option(None, "--resume", metavar="[DIR]",
                                         help="continue a run from its latest checkpoint (default: the newest "
                                              "runs/<spec>-* directory)"),
    force: bool = typer.Option(False, "--force", help="replace the finished run in --out; with --resume: go on even "
                                                      "though the spec changed"),
    log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                   help="json: one JSON object per line on stdout (messages, epochs, the end)"),
    allow: List[str] = typer.Option([], "--allow", metavar="CODE", help="silence a warning: --allow W302"),
):
    """Train a spec: check it, load the data, compile the step and run the loop."""
    allowed = _allowed(allow)
    compiled = _compile(spec_path, set_, allowed)
    spec, sources = compiled.spec, compiled.sources
    from .compiler.operative import operative
    from .compiler.summary import over_memory
    from .runtime import rundir
    from .runtime.data import DataError, fit_batch, load_data
    from .runtime.loop import check_against_data
    from .runtime.progress import Progress

    if log_format not in ("text", "json"):
        _usage(f"--log-format takes text or json; got {log_format!r}")
    folds = spec.data.split.folds if spec.data.split else 0
    stem = Path(spec_path).stem if spec_path != "-" else "stdin"
    if resume is not None and folds:
        _usage("--resume does not apply to k-fold runs; run the folds again")
    out_dir = _resume_dir(resume, stem, out) if resume is not None else \
        out or Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    r = _Run(spec=spec, sources=sources, doc=operative(spec, compiled.file), spec_path=spec_path, sets=list(set_),
             base=Path(spec_path).resolve().parent if spec_path != "-" else Path.cwd(), out_dir=out_dir,
             progress=Progress(quiet=quiet, json_lines=log_format == "json"))
    try:
        ds = load_data(spec.data, r.base, spec.run.seed)  # a k-fold spec: its first fold
    except DataError as e:
        _print_diags([_at_column(e.diagnostic, spec)], sources)
        raise typer.Exit(1) from None
    spec = r.spec = fit_batch(spec, len(ds.x_train))  # `batch = all`: the training split's size
    from .compiler.rules import silence

    # before the run directory is touched: an existing one keeps its files; warnings are shown, errors refuse
    mismatch = silence(check_against_data(spec, ds), sources.get(spec_path, ""), allowed)
    too_big = over_memory(spec, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))  # never a MemoryError
    if mismatch or too_big:
        _print_diags([*mismatch, *([too_big] if too_big else [])], sources)
    if any(d.is_error for d in mismatch) or too_big:
        raise typer.Exit(1)
    try:  # one trainc run at a time writes a run directory
        held = rundir.lock(out_dir, lambda m: sys.stderr.write(f"warning: {m}\n"))
    except (rundir.RunDirError, OSError) as e:
        sys.stderr.write(f"error: {e}\n")
        raise typer.Exit(1) from None
    try:
        _run_locked(r, ds, resume is not None, force)
    finally:  # a run that failed before training leaves no folder it made
        held.release(remove_created=not r.started)


@dataclass
class _Run:
    """What `trainc run` carries from the command line into the locked run directory."""

    spec: ir.Spec
    sources: dict[str, str]
    doc: dict  # the operative spec
    spec_path: str
    sets: list[str]
    base: Path  # the spec's folder: data paths start there
    out_dir: Path
    progress: object
    started: bool = False  # the step compiled and the run's records were written


def _run_locked(r: _Run, ds, resume: bool, force: bool) -> None:
    """`trainc run` under the lock of its directory: refuse to write over a finished run, check a resumed
    one, train (each fold of a k-fold spec) and print the outcome."""
    from .runtime import checkpoint as ck
    from .runtime import rundir

    folder = None
    if resume:
        try:
            folder = ck.find(r.out_dir, r.out_dir)
        except rundir.RunDirError as e:
            sys.stderr.write(f"error: cannot resume: {e}\n")
            raise typer.Exit(1) from None
        _check_same_spec(r.out_dir, r.doc, force)
    elif not force and rundir.kind(r.out_dir / "summary.json", r.out_dir) is not None:
        sys.stderr.write(f"error: {r.out_dir} holds a finished run (summary.json); trainc run does not write "
                         "over it\n  = help: continue it with --resume, replace it with --force, or choose "
                         "another --out\n")
        raise typer.Exit(1)
    if r.spec.data.split and r.spec.data.split.folds:
        _run_folds(r)
        return
    _print_result(r, ds, _train_one(r, ds, folder))


def _train_one(r: _Run, ds, folder: Path | None):
    """Train one run (from the checkpoint `folder`, when resuming); problems are diagnostics and exit 1."""
    from .runtime import rundir
    from .runtime.inference import save_preprocessing
    from .runtime.loop import train

    classes = f", {ds.n_classes} classes" if ds.n_classes else ""
    spec = r.spec
    r.progress.write(f"trainc: {r.spec_path}: {len(ds.x_train)} train / {len(ds.x_val)} val examples{classes}, "
                     f"batch {spec.data.batch}, {spec.optimizer.kind}, up to {spec.stop.max.value:g} "
                     f"{spec.stop.max.unit.value}")

    def ready() -> None:  # the step compiled: only now are an existing directory's records replaced
        if folder is None:
            _write_run_record(r.out_dir, r.spec_path, r.sources[r.spec_path], r.base, r.sets, r.doc)
        save_preprocessing(r.out_dir, spec, ds)  # for `trainc predict` without the training data
        r.started = True

    try:
        return train(spec, ds, r.out_dir, r.progress, resume=folder, spec_hash=r.doc["sha256"], base_dir=r.base,
                     ready=ready)
    except SpecError as e:
        _print_diags(e.diagnostics, r.sources)
    except rundir.RunDirError as e:
        sys.stderr.write(f"error: cannot resume from {folder}: {e}\n" if folder and not r.started else f"error: {e}\n")
    except OSError as e:
        sys.stderr.write(f"error: cannot write the run directory {r.out_dir}: {e.strerror or e}\n")
    raise typer.Exit(1)


def _run_folds(r: _Run) -> None:
    """A k-fold spec: one run per fold (DIR/fold0, ...) and their mean and spread."""
    from .runtime import rundir
    from .runtime.data import load_data
    from .runtime.loop import cross_validate

    spec, folds = r.spec, r.spec.data.split.folds
    try:
        _write_run_record(r.out_dir, r.spec_path, r.sources[r.spec_path], r.base, r.sets, r.doc)
        r.started = True
        cv = cross_validate(spec, lambda f: load_data(spec.data, r.base, spec.run.seed, fold=f), r.out_dir,
                            r.progress, base_dir=r.base)
    except SpecError as e:
        _print_diags(e.diagnostics, r.sources)
        raise typer.Exit(1) from None
    except (rundir.RunDirError, OSError) as e:
        sys.stderr.write(f"error: cannot write the run directory {r.out_dir}: {getattr(e, 'strerror', None) or e}\n")
        raise typer.Exit(1) from None
    print(f"{folds}-fold cross-validation: " + "  ".join(
        f"{k} {cv['mean'][k]:.4f} ± {cv['std'][k]:.4f}" for k in cv["mean"]))
    print(f"-> {r.out_dir}/ (summary.json, fold0/ ... fold{folds - 1}/)")


def _print_result(r: _Run, ds, result) -> None:
    """The end of a run: the stop reason, the final and test metrics, the baseline, the diagnosis."""
    out_dir, progress, final = r.out_dir, r.progress, result.final
    if progress.json:
        progress.event("end", stop_reason=result.stop_reason, epochs=result.epochs, steps=result.steps,
                       seconds=round(result.seconds, 3), final=final, test=result.test, baseline=result.baseline,
                       out_dir=str(out_dir))
        if result.stop_reason == "interrupted":
            raise typer.Exit(130)
        return
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
    _print_diagnosis(out_dir)
    if result.stop_reason == "interrupted":
        again = " ".join(["trainc run", r.spec_path, *[f"--set '{x}'" for x in r.sets], "--resume", str(out_dir)])
        sys.stderr.write(f"interrupted: the checkpoint is saved; go on with:\n  {again}\n")
        raise typer.Exit(130)


def _resume_dir(resume: str, stem: str, out: Path | None) -> Path:
    """--resume DIR, or `--resume` alone: --out if given, else the newest runs/<stem>-* directory."""
    if resume not in ("", "latest"):
        return Path(resume)
    if out is not None:
        return out
    runs = sorted((p for p in Path("runs").glob(f"{stem}-*")  # real folders only: links are not followed
                   if not p.is_symlink() and not (p / "checkpoints").is_symlink() and (p / "checkpoints").is_dir()),
                  key=lambda p: p.lstat().st_mtime)
    if not runs:
        _usage(f"--resume: no earlier run of {stem} with a checkpoint under runs/; name its directory: --resume DIR")
    return runs[-1]


def _check_same_spec(run_dir: Path, doc: dict, force: bool) -> None:
    """Refuse to resume under a spec that means something else than the run's, with what changed."""
    from .compiler.operative import diff
    from .runtime import rundir

    try:
        old = rundir.read_yaml(run_dir / "operative.yaml", rundir.OPERATIVE_YAML, rundir.TEXT_MAX, run_dir)
    except rundir.Missing:  # an older run directory: nothing to compare with
        return
    except rundir.RunDirError as e:
        if force:
            sys.stderr.write(f"warning: resuming without comparing the spec (--force): {e}\n")
            return
        sys.stderr.write(f"error: cannot resume: {e}\n  = help: pass --force to resume without comparing the spec\n")
        raise typer.Exit(1) from None
    if old["sha256"] == doc["sha256"]:
        return
    lines = diff(old, doc) or ["  (no setting differs as written: this trainc fills in other defaults than the one "
                               "that trained the run)"]
    if force:
        sys.stderr.write("warning: resuming under a changed spec (--force):\n" + "\n".join(lines) + "\n")
        return
    sys.stderr.write(f"error: the spec changed since {run_dir} was trained:\n" + "\n".join(lines) +
                     "\n  = help: resume with the same spec and --set flags, or pass --force to go on anyway\n")
    raise typer.Exit(1)


def _write_run_record(out_dir: Path, spec_path: str, text: str, base: Path, sets: list[str], doc: dict) -> None:
    """DIR/spec.train (the text as run), DIR/run.json (where it came from), DIR/operative.yaml (every setting).
    Raises RunDirError or OSError when the directory cannot be written."""
    import json

    from . import __version__
    from .compiler.operative import render
    from .runtime.checkpoint import write_file_atomic

    write_file_atomic(out_dir / "spec.train", text.encode(), out_dir)
    record = {"spec": str(Path(spec_path).resolve()) if spec_path != "-" else "-", "base_dir": str(base),
              "overrides": list(sets), "trainc": __version__, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_file_atomic(out_dir / "run.json", (json.dumps(record, indent=2) + "\n").encode(), out_dir)
    write_file_atomic(out_dir / "operative.yaml", render(doc).encode(), out_dir)


def _near_miss(base: Path, path: str) -> str | None:
    """'did you mean ...' for a data path that does not exist while a file or folder of a close name does, in
    the folder it names (at most 1,000 entries are read: a huge folder is not listed for a hint)."""
    from itertools import islice

    from .compiler.diagnostics import did_you_mean

    target = Path(os.path.expanduser(path))
    folder = (base / target).parent
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in islice(it, 1000)]
    except (OSError, ValueError):
        return None
    hint = did_you_mean(target.name, names)
    close = re.fullmatch(r"did you mean '(.+)'\?", hint or "")
    return f"did you mean '{target.parent / close[1]}'?" if close and str(target.parent) != "." else hint


def _data_checks(spec: ir.Spec, path: str, skipped: list[str] | None = None) -> list[Diagnostic]:
    """What the data can tell without training: feature shape, classes, class weights, batch size, folds.

    Reads the data files (numpy only, no tinygrad); skipped when they are missing, since a spec may
    be written before its data exists: `trainc run` reports that. A path the system refuses (a name too
    long, a NUL in it) is reported at the path."""
    import errno

    base = Path(path).resolve().parent if path != "-" else Path.cwd()
    keys = [k for k in ("source", "train", "val") if getattr(spec.data, k) is not None]
    for key in keys:
        s = getattr(spec.data, key)
        try:
            os.stat(os.path.join(base, os.path.expanduser(s.path)))
        except (FileNotFoundError, NotADirectoryError):
            if (typo := _near_miss(base, s.path)) is not None:  # a sibling of nearly that name: surely a typo
                return [Diagnostic(code="W502", severity="warning", message=f"'{s.path}' not found; the data checks "
                                   "were skipped", span=spec.data.span_of(f"{key}.path"), help=typo)]
            if skipped is not None:  # said, not silent: lint's "no problems" covers less than usual
                skipped.append(f"data checks skipped (input shape, classes, vocabulary, batch, steps per epoch): "
                               f"'{s.path}' not found")
            return []
        except (OSError, ValueError) as e:  # ENAMETOOLONG, ELOOP, EACCES; ValueError: a NUL character
            why = getattr(e, "strerror", None) or ("it holds a NUL character" if "null" in str(e) else str(e))
            long = getattr(e, "errno", None) == errno.ENAMETOOLONG
            return [Diagnostic(code="E502", message=f"cannot open the data path '{s.path}': {why}",
                               span=spec.data.span_of(f"{key}.path"),
                               help="a file's name is at most 255 bytes, and a path 4096" if long else None)]
    if not keys:
        return []
    from .runtime.data import DataError, fit_batch, load_data  # numpy: only when there is data to read
    from .runtime.loop import check_against_data

    try:  # a k-fold split is checked on its first fold, as `trainc run` starts with it
        ds = load_data(spec.data, base, spec.run.seed)
    except DataError as e:
        return [_at_column(e.diagnostic, spec)]
    folds, n = spec.data.split.folds if spec.data.split else 0, len(ds.x_train) + len(ds.x_val)
    if folds > n:  # every fold validates on at least one example
        return [Diagnostic(code="E505", message=f"kfold({folds}) needs at least {folds} examples, one per fold, but "
                           f"the data has {n}", span=spec.data.span_of("split.k"),
                           help=f"use k <= {n} ({n} is leave-one-out)")]
    return check_against_data(fit_batch(spec, len(ds.x_train)), ds)  # `batch = all`: the split's size


def _at_column(d: Diagnostic, spec: ir.Spec) -> Diagnostic:
    """An unknown column (E503) pointed at its name in `target = ...` or `features = [...]`, not at the call."""
    import re
    from dataclasses import replace

    name = re.search(r"column '(.*?)' not found", d.message) if d.code == "E503" else None
    span = dict(spec.data.where).get(f"column:{name[1]}") if name else None
    return replace(d, span=span) if span is not None else d


def _data_checkable(spec: ir.Spec, found: list[Diagnostic]) -> bool:
    """Whether the data checks can run beside the spec's other errors: the data section and the input
    resolved (no error inside the data section), and nothing failed to parse or read."""
    data = spec.data.span
    inside = [d for d in found if d.is_error and (d.code < "E2" or (data.line <= d.span.line <= data.end_line))]
    return bool(spec.model.inputs) and not inside and data.line > 0


def _lint_data(path: str, skipped: list[str]):
    """lint's data checks, as compile_spec's `data` pass: run when `_data_checkable` (other errors elsewhere do
    not hide the data's findings); what could not be checked is added to `skipped`."""
    return lambda spec, found: _data_checks(spec, path, skipped) if _data_checkable(spec, found) else []


def confusion_table(matrix: list[list[int]], classes) -> str:
    """Rows: true class; columns: predicted class."""
    labels = [str(c) for c in (classes or range(len(matrix)))]
    width = max(max(len(lb) for lb in labels), max(len(str(v)) for row in matrix for v in row), 4)
    head = " " * (width + 1) + " ".join(f"{lb:>{width}}" for lb in labels)
    lines = ["confusion (rows: true class, columns: predicted):", head]
    for lb, row in zip(labels, matrix):
        lines.append(f"{lb:>{width}} " + " ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def _spec_paths(paths: list[str]) -> list[str]:
    """The files named, a directory standing for every *.train below it (not in hidden folders), each once."""
    out: list[str] = []
    for path in paths:
        p = Path(path)
        if path != "-" and os.path.isdir(path):  # not Path.is_dir(), which raises for a name too long
            found = sorted(str(f) for f in p.rglob("*.train")
                           if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not found:
                _usage(f"no .train files under {path}")
            out += found
        else:
            out.append(path)
    return list(dict.fromkeys(out))


@app.command()
def lint(paths: List[str] = typer.Argument(..., metavar="PATH...",
                                           help=".train files, directories (every *.train below them), or - for stdin"),
         format_: str = typer.Option("full", "--format", metavar="FORMAT",
                                     help="full (default, on stderr), or on stdout: concise, json, github, sarif"),
         data: bool = typer.Option(True, "--data/--no-data", help="also check the spec against its data files "
                                   "(features, classes, batch size) when they exist"),
         allow: List[str] = typer.Option([], "--allow", metavar="CODE",
                                         help="silence a warning for this run: --allow W302 (repeat, or W302,W401)")):
    """Check specs without running anything: syntax, names, arguments, units, shapes, and the data.

    Exit 0 when clean, 1 with any finding (error or warning), 2 on a usage or internal error."""
    from .compiler import compile_spec
    from .compiler.formats import FORMATS, render

    if format_ not in FORMATS:
        _usage(f"--format takes {', '.join(FORMATS)}; not {format_!r}")
    files = _spec_paths(paths)
    unread: list[Diagnostic] = []  # files that are not specs (not UTF-8, too large, unreadable): one problem each
    texts = {path: _read(path, unread) for path in files}  # every file is read before any is reported
    sources, diags, crashed, notes = {}, list(unread), [], []
    allowed = _allowed(allow)
    for path, text in texts.items():
        name = "<stdin>" if path == "-" else path
        sources[name] = text
        if any(d.span.file == name for d in unread):
            continue
        skipped: list[str] = []
        try:  # a bug met in one file is reported, at the end; the other files are still checked
            found = list(compile_spec(text, name, allow=allowed, data=_lint_data(path, skipped) if data else None
                                      ).problems)
            if data and not found:  # "no problems" says what it could not check
                notes += [f"note: {name}: {why}" for why in skipped]
        except Exception as e:
            if env.on("TRAINC_DEBUG"):
                raise
            from .compiler.diagnostics import clip, visible

            crashed.append(visible(clip(f"internal error: {name}: {type(e).__name__}: {e}")))
            continue
        diags += found
    if format_ == "full":
        if diags:
            _print_diags(diags, sources)
        elif not crashed:
            print(f"{len(files)} file{'s' * (len(files) != 1)} checked, no problems")
        if notes:  # what was not checked, on stderr: the exit code and stdout stay as they were
            sys.stderr.write("\n".join(notes) + "\n")
    else:
        from . import __version__

        sys.stdout.write(render(format_, diags, sources, **({"version": __version__} if format_ == "sarif" else {})))
    if crashed:
        sys.stderr.write("\n".join(crashed) + "\nthis is a bug in trainc; rerun with TRAINC_DEBUG=1 for the "
                         "traceback and report it\n")
        raise typer.Exit(2)
    if diags:
        raise typer.Exit(1) from None


def _lint_args(argv: list[str]) -> dict | None:
    """`trainc lint`'s arguments read without typer, whose start-up (it imports pydantic) takes longer
    than linting a 300-line spec. None for anything else (--help, a typo): typer reads and answers that."""
    args, options, i = {"paths": [], "format_": "full", "data": True, "allow": []}, True, 0
    while i < len(argv):
        a = argv[i]
        if options and a == "--":
            options = False
        elif options and a == "--format" and i + 1 < len(argv):
            args["format_"], i = argv[i + 1], i + 1
        elif options and a.startswith("--format="):
            args["format_"] = a.partition("=")[2]
        elif options and a == "--allow" and i + 1 < len(argv):
            args["allow"].append(argv[i + 1])
            i += 1
        elif options and a.startswith("--allow="):
            args["allow"].append(a.partition("=")[2])
        elif options and a in ("--data", "--no-data"):
            args["data"] = a == "--data"
        elif a == "-" or not options or not a.startswith("-"):
            args["paths"].append(a)
        else:
            return None
        i += 1
    return args if args["paths"] else None


@app.command()
def schedule(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="PNG", help="also draw the curve into a PNG file"),
    steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1, metavar="N",
                                                  help="instead of reading the data to count them"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="override a setting, as for run"),
):
    """Preview the learning-rate schedule over the whole run, without training."""
    compiled = _compile(spec_path, set_)
    spec, sources = compiled.spec, compiled.sources
    from .runtime import preview
    from .runtime.schedule import epoch_steps, run_steps

    most = 1_000_000  # steps previewed: the preview computes every step's lr (a million take about a second)

    if steps_per_epoch is None:
        from .runtime.data import DataError, load_data

        base = Path(spec_path).resolve().parent if spec_path != "-" else Path.cwd()
        try:
            ds = load_data(spec.data, base, spec.run.seed)
        except DataError as e:
            _print_diags([e.diagnostic], sources)
            sys.stderr.write("(or give --steps-per-epoch N to preview without the data)\n")
            raise typer.Exit(1) from None
        from .runtime.data import fit_batch
        from .runtime.loop import check_against_data, epoch_size

        spec = fit_batch(spec, len(ds.x_train))  # `batch = all`: the training split's size
        mismatch = [d for d in check_against_data(spec, ds) if d.is_error]  # a batch larger than the data: no step
        if mismatch:
            _print_diags(mismatch, sources)
            raise typer.Exit(1)
        steps_per_epoch = epoch_steps(spec, epoch_size(spec, ds.y_train))
    if run_steps(spec, steps_per_epoch) > most:
        _usage(f"the run is {run_steps(spec, steps_per_epoch):,} steps; trainc schedule previews at most {most:,} "
               "(it computes the lr of every step)")
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
    spec = _compile(spec_path, set_).spec
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
    compiled = _compile(spec_path, set_, until="parse" if emit == "ast" else "check")
    sys.stdout.write(to_yaml(compiled.file if emit == "ast" else compiled.spec))


def _trials_monitor(spec_path: str, text: str, sources: dict[str, str], plans: list[dict[str, str]],
                    sets: list[str]):
    """Every trial's spec through the pipeline before any trial runs: a syntax error, or a problem of any trial
    (each shown once, however many trials share it), stops the sweep. Returns the one monitor they rank by."""
    from .compiler import OverrideError, compile_spec
    from .compiler.diagnostics import render
    from .runtime import sweep as sw

    parsed = compile_spec(text, spec_path, until="parse")
    if parsed.problems:
        _print_diags(list(parsed.problems), {**sources, **parsed.sources})
        raise typer.Exit(1)
    shown: dict[tuple, tuple[str, bool]] = {}  # problem -> (rendered, is an error)
    monitors: dict[sw.Monitor, dict] = {}
    for overrides in plans:
        try:  # allow=None: every warning, those a `# trainc: allow` comment names too
            trial = compile_spec(text, spec_path, [*sets, *sw.as_sets(overrides)], allow=None)
        except OverrideError as e:
            _usage(str(e))
        srcs = {**sources, **trial.sources}
        for d in trial.problems:  # the same problem in many trials (a bad key) is shown once
            key = (d.code, d.message, str(d.span))
            shown.setdefault(key, (render(d, srcs.get(d.span.file), _color(sys.stderr)), d.is_error))
        if trial.spec is not None and not trial.failed:
            monitors.setdefault(sw.monitor(trial.spec), overrides)
    _report_trial_problems(shown)
    if len(monitors) > 1:
        _usage("the trials monitor different metrics (" + "; ".join(
            f"{m.metric} with {' '.join(sw.as_sets(o)) or 'the spec as is'}" for m, o in monitors.items())
            + "); a sweep ranks its trials by one: set the monitor with --set, not --grid or --range")
    return next(iter(monitors))


def _report_trial_problems(shown: dict[tuple, tuple[str, bool]]) -> None:
    """The problems of the trials' specs, each once; exit 1 when one is an error."""
    if not shown:
        return
    errors = sum(e for _, e in shown.values())
    counts = [f"{n} {w}{'s' * (n != 1)}" for n, w in ((errors, "error"), (len(shown) - errors, "warning")) if n]
    sys.stderr.write("\n\n".join(r for r, _ in shown.values()) + "\n\n" + ", ".join(counts) + "\n")
    if errors:
        raise typer.Exit(1)


def _sweep_dir(out: Path | None, spec_path: str, force: bool) -> Path:
    """The sweep's directory; one that holds an earlier sweep's finished runs is refused unless --force."""
    out_dir = out or Path("runs") / f"sweep-{Path(spec_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        finished = (out_dir / "sweep.json").exists() or any((t / "summary.json").exists()
                                                            for t in out_dir.glob("trial-*"))
    except OSError:
        finished = False  # an unreadable directory: the trials say what is wrong with it
    if finished and not force:
        sys.stderr.write(f"error: {out_dir} holds the finished runs of an earlier sweep\n"
                         f"  = help: choose another --out, or pass --force to replace them\n")
        raise typer.Exit(1)
    return out_dir


@app.command()
def sweep(
    spec_path: str = typer.Argument(..., metavar="SPEC", help="the .train file"),
    grid: List[str] = typer.Option([], "--grid", metavar="KEY=[V,...]",
                                   help="try each value, in every combination with the other grids: "
                                   "--grid data.batch=[32,64]"),
    random_n: Optional[int] = typer.Option(None, "--random", metavar="N",
                                           help="N random trials (from --range, and the --grid lists) instead"),
    range_: List[str] = typer.Option([], "--range", metavar="KEY=DIST",
                                     help="a value drawn per random trial: loguniform(a, b), uniform(a, b), "
                                     "int(a, b) or choice(v1, v2, ...): --range regularization.l2=\"uniform(0, 0.1)\""),
    seed: int = typer.Option(0, "--seed", help="seed of the random draws"),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="override a setting in every trial"),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, metavar="J",
                                       help="trials at once (default: the number of cores)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                       help="sweep directory (default: runs/sweep-<spec>-<time>)"),
    force: bool = typer.Option(False, "--force", help="replace the finished runs of an earlier sweep in --out"),
):
    """Train a spec once per setting of a grid (or per random draw), in parallel, and rank the runs."""
    from .runtime import sweep as sw

    if spec_path == "-":
        _usage("sweep reads the spec again in every trial: pass a .train file, not -")
    text = _read(spec_path)
    sources = {spec_path: text}
    try:
        grids = [sw.parse_grid(a, sources) for a in grid]
        ranges = [sw.parse_range(a, sources) for a in range_]
        plans = sw.plan(grids, ranges, random_n, seed, tuple(set_))
    except sw.SweepUsage as e:
        _usage(str(e))
    except SpecError as e:
        _print_diags(e.diagnostics, sources)
        raise typer.Exit(1) from None
    mon = _trials_monitor(spec_path, text, sources, plans, list(set_))
    out_dir = _sweep_dir(out, spec_path, force)
    width = max(3, len(str(len(plans) - 1)))
    trials = [sw.Trial(index=i, overrides=o, dir=out_dir / f"trial-{i:0{width}d}") for i, o in enumerate(plans)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    jobs = min(jobs or cores, len(trials))
    keys = [g.key for g in grids] + [r.key for r in ranges]

    def say(line: str) -> None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    say(f"trainc sweep: {spec_path}: {len(trials)} trials, {jobs} at a time, ranked by {mon.metric} ({mon.mode})"
        f" -> {out_dir}/")
    complete = sw.run_trials(spec_path, trials, tuple(set_), jobs, mon, say, force=force)
    ranked = sw.rank(trials, mon.mode)
    sw.save(out_dir, ranked, keys, mon.metric, mon.mode, {
        "spec": spec_path, "set": list(set_), "grid": {g.key: list(g.values) for g in grids},
        "range": {r.key: r.text for r in ranges}, "random": random_n, "seed": seed, "jobs": jobs,
        "complete": complete})
    print(sw.table(ranked, keys, mon.metric, mon.mode))
    print(f"-> {out_dir}/ (sweep.json, sweep.csv, trial-*/)")
    if not complete:
        say("interrupted: the table holds the trials that had finished")
        raise typer.Exit(130)
    failed = sum(t.status == "failed" for t in trials)
    if failed:
        say(f"{failed} of {len(trials)} trials failed (their stderr.txt says why)")
        raise typer.Exit(1)


@app.command("fmt")
def fmt(paths: List[str] = typer.Argument(..., metavar="PATH...",
                                          help=".train files, folders (every .train in them), or - for stdin"),
        check: bool = typer.Option(False, "--check", help="write nothing; list the files that would change, exit 1"),
        diff: bool = typer.Option(False, "--diff", help="write nothing; print what would change as a unified diff")):
    """Rewrite specs in the one canonical layout (like gofmt); files with syntax errors are left alone."""
    import difflib
    import tempfile

    from .compiler.fmt import format_text

    files: list[str] = []
    for path in paths:
        p = Path(path)
        files += sorted(str(f) for f in p.rglob("*.train")) if path != "-" and p.is_dir() else [path]
    if files.count("-") > 1:
        _usage("- (stdin) can be given once")
    texts = {path: _read(path) for path in files}  # every path is read before any is written
    sources, diags, changed = {}, [], []
    for path, text in texts.items():
        name = "<stdin>" if path == "-" else path
        try:
            out = format_text(text, name)
        except SpecError as e:
            sources[name] = text
            diags += e.diagnostics
            continue
        if path == "-" and not (check or diff):
            sys.stdout.write(out)
            continue
        if out == text:
            continue
        changed.append(name)
        if diff:
            sys.stdout.writelines(difflib.unified_diff(text.splitlines(True), out.splitlines(True), name, name))
        if check:
            print(name)
        if not (check or diff):  # atomically: a temporary file in the same folder, renamed over the spec
            target = Path(path)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
                    f.write(out)
                os.chmod(tmp, target.stat().st_mode & 0o7777)
                os.replace(tmp, target)
            except BaseException:
                os.unlink(tmp)
                raise
            print(f"reformatted {name}")
    if diags:
        _print_diags(diags, sources)
    if check and changed:
        n = len(changed)
        sys.stderr.write(f"{n} file{'s' * (n != 1)} would be reformatted\n")
    if diags or (check and changed):
        raise typer.Exit(1)


@app.command()
def lsp():
    """Start the language server (LSP over stdin/stdout), for editors: diagnostics, completion, hover, ..."""
    from .lsp import serve  # pygls only here: the other commands never import it

    serve()


def _print_diagnosis(out_dir: Path) -> None:
    """The end-of-run diagnosis: one `diagnosis:` line per finding (none for a healthy run), also stored in
    summary.json under "diagnosis". It never fails the run that it diagnoses."""
    from .runtime.diagnose import RunDirError, record

    try:
        findings = record(out_dir)
    except (OSError, RunDirError) as e:
        sys.stderr.write(f"diagnosis skipped: {e}\n")
        return
    for f in findings:
        print(f"diagnosis: {f.line()}")


@app.command()
def report(run_dir: Path = typer.Argument(..., metavar="DIR", help="a run directory written by trainc run"),
           open_: bool = typer.Option(False, "--open", help="also open the HTML page in a browser")):
    """Learning curves (PNG) and a self-contained HTML page: metrics, confusion matrix, model, diagnosis."""
    from .runtime.diagnose import RunDirError
    from .runtime.report import write_report

    if not run_dir.exists():
        _usage(f"no such directory: {run_dir}")
    try:
        paths = write_report(run_dir)
    except RunDirError as e:
        sys.stderr.write(f"error: {e}\n")
        raise typer.Exit(1) from None
    except OSError as e:
        sys.stderr.write(f"error: cannot write the report in {run_dir}: {e.strerror or e}\n")
        raise typer.Exit(1) from None
    except ImportError as e:
        _usage(str(e))
    for p in paths:
        print(p)
    if open_:
        import webbrowser

        webbrowser.open(paths[-1].resolve().as_uri())


def _load_run(run_dir: Path) -> tuple[ir.Spec, dict[str, str], Path, bool]:
    """The spec a run was trained with (DIR/spec.train and its --set flags), the folder its paths start from, and
    whether that spec is the user's own (see inference.load_run_record: only then are data errors quoted)."""
    from .runtime import inference as inf
    from .runtime import rundir

    if not run_dir.is_dir():
        _usage(f"no such directory: {run_dir}" if not run_dir.exists() else f"{run_dir} is not a directory")
    try:
        rec = inf.load_run_record(run_dir)
    except rundir.Missing as e:
        sys.stderr.write(f"error: {run_dir} is not a run directory ({e})\n"
                         "  = help: give the --out of a `trainc run`\n")
        raise typer.Exit(1) from None
    except rundir.RunDirError as e:
        sys.stderr.write(f"error: {e}\n")
        raise typer.Exit(1) from None
    try:
        compiled = _compile(str(rec.spec_file), list(rec.overrides))
    except typer.Exit as e:
        if e.exit_code != 2:
            raise
        # a --set of run.json that does not apply to spec.train: the run directory's problem, not the command's
        sys.stderr.write(f"error: {run_dir / 'run.json'}: its overrides do not apply to {rec.spec_file}\n")
        raise typer.Exit(1) from None
    return compiled.spec, compiled.sources, rec.base_dir, rec.own


def _run_data(spec: ir.Spec, sources: dict[str, str], base: Path, own: bool, run_dir: Path):
    """The data a run's spec names (for eval on val or test). Its errors are quoted only for the user's own spec:
    a run directory from elsewhere does not choose which of the user's files get quoted."""
    from .runtime.data import DataError, load_data

    try:
        return load_data(spec.data, base, spec.run.seed)
    except DataError as e:
        d = e.diagnostic
        if not own:
            d = replace(d, message=f"cannot read the data this run's spec names ({d.code})", notes=(),
                        help=f"{run_dir / 'run.json'} does not name a spec on this machine with the text of "
                             f"{run_dir / 'spec.train'}, so the files it names are not quoted; evaluate on a file "
                             "you give: --split FILE")
        _print_diags([d], sources)
        raise typer.Exit(1) from None


WEIGHTS = typer.Option("final", "--weights", metavar="final|best|latest",
                       help="final: DIR/model.safetensors; best or latest: that checkpoint")


@app.command("eval")
def eval_(
    run_dir: Path = typer.Argument(..., metavar="DIR", help="a run directory"),
    split: str = typer.Option("val", "--split", metavar="val|test|FILE", help="what to evaluate on"),
    weights: str = WEIGHTS,
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
):
    """Evaluate a trained model on its validation or test split, or on a file, with the training preprocessing."""
    import json

    from .runtime import inference as inf
    from .runtime.data import DataError

    if weights not in ("final", "best", "latest"):
        _usage(f"--weights takes final, best or latest; got {weights!r}")
    spec, sources, base, own = _load_run(run_dir)
    try:
        prep = inf.load_preprocessing(run_dir)
        wfile = inf.weights_file(run_dir, weights)
        if split in ("val", "test"):
            ds = _run_data(spec, sources, base, own, run_dir)
            x, y = (ds.x_val, ds.y_val) if split == "val" else (ds.x_test, ds.y_test)
            if x is None:
                _usage("this run has no test split; give --split val or a FILE")
        else:
            if not Path(split).exists():
                _usage(f"--split: no such file: {split} (expected val, test or a file)")
            x, y = inf.read_file(spec, prep, Path(split), base)
        result = inf.evaluate(spec, prep, x, y, wfile)
    except DataError as e:  # the file given with --split: the user's own
        _print_diags([e.diagnostic], sources)
        raise typer.Exit(1) from None
    except ck_error() as e:
        sys.stderr.write(f"error: {e}\n")
        raise typer.Exit(1) from None
    name = split if split in ("val", "test") else "file"
    scalars = {f"{name}.{k}": v for k, v in result.items() if not isinstance(v, list)}
    if as_json:
        print(json.dumps({"weights": str(wfile), "examples": len(x), **scalars, **{
            k: v for k, v in result.items() if isinstance(v, list)}}))
        return
    print(f"{len(x)} examples, weights {wfile}")
    print("  ".join(f"{k} {v:.4f}" for k, v in scalars.items()))
    if "confusion" in result:
        print(confusion_table(result["confusion"], prep.classes))


def ck_error():
    """The error of a run directory that cannot be used: the base of CheckpointError and inference's RunError."""
    from .runtime.rundir import RunDirError

    return RunDirError


@app.command()
def predict(
    run_dir: Path = typer.Argument(..., metavar="DIR", help="a run directory"),
    inputs: Path = typer.Argument(..., metavar="INPUT", help="what the model was trained from: a CSV with the "
                                  "feature columns, an image or a folder of images, a text; or .npy/.npz"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE",
                                       help="write the CSV here (default: stdout)"),
    weights: str = WEIGHTS,
):
    """Predict with a trained model: the class and its probabilities, or the regression targets, one row per input."""
    import csv
    import io

    from .runtime import inference as inf

    if weights not in ("final", "best", "latest"):
        _usage(f"--weights takes final, best or latest; got {weights!r}")
    if not inputs.exists():
        _usage(f"no such file: {inputs}")
    spec, _, _, _ = _load_run(run_dir)
    try:
        prep = inf.load_preprocessing(run_dir)
        x = inf.read_inputs(prep, inputs, spec.data.source or spec.data.train)  # as the model was trained from
        names, rows = inf.predict(spec, prep, x, inf.weights_file(run_dir, weights))
    except ck_error() as e:
        sys.stderr.write(f"error: {e}\n")
        raise typer.Exit(1) from None
    except Exception as e:  # a DataError from reading the CSV
        from .runtime.data import DataError

        if not isinstance(e, DataError):
            raise
        _print_diags([e.diagnostic], {})
        raise typer.Exit(1) from None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names)
    w.writerows(rows)
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        from .runtime.checkpoint import write_file_atomic

        try:
            write_file_atomic(out, buf.getvalue().encode())
        except (ck_error(), OSError) as e:
            sys.stderr.write(f"error: cannot write {out}: {getattr(e, 'strerror', None) or e}\n")
            raise typer.Exit(1) from None
        sys.stderr.write(f"{len(rows)} predictions -> {out}\n")


def _optional_resume(argv: list[str]) -> list[str]:
    """`--resume` may stand alone (`trainc run SPEC --resume`): then it means the newest run."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--resume" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out.insert(i + 1, "latest")
            break
    return out


def main():
    sys.argv[1:] = _optional_resume(sys.argv[1:])
    try:
        if sys.argv[1:2] == ["lint"] and (args := _lint_args(sys.argv[2:])) is not None:
            try:  # the fast path to the same function
                lint(**args)
            except typer.Exit as e:
                sys.exit(e.exit_code)
            sys.exit(0)
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except Exception as e:  # an internal error: a bug in trainc, not in the spec
        if env.on("TRAINC_DEBUG"):
            raise
        sys.stderr.write(f"internal error: {type(e).__name__}: {e}\n"
                         "this is a bug in trainc; rerun with TRAINC_DEBUG=1 for the traceback and report it\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
