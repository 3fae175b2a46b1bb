"""Output formats of `trainc lint`: diagnostics and their sources -> text. Pure functions, one per format.

| format    | for                                   | one problem looks like                                       |
|-----------|---------------------------------------|--------------------------------------------------------------|
| `full`    | people (the default)                  | `path:line:col: error[E201]: message`, the line, a caret, help |
| `concise` | editors: Vim, Emacs, VS Code matchers | `path:line:col: error: message [E201] (help: ...)`             |
| `json`    | scripts                               | an object in `diagnostics`; see `json_` for the schema         |
| `github`  | GitHub Actions annotations            | `::error file=path,line=..,col=..,...,title=E201::message`     |
| `sarif`   | code scanning (SARIF 2.1.0)           | a `result` with a `ruleId` and a `physicalLocation`            |

Positions are 1-based lines and columns (Unicode code points), the end exclusive, as in `ir.Span`.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Callable, Iterable
from urllib.parse import quote

from .diagnostics import Diagnostic, clip, render_all, sort_key, visible
from .ir import Span

FORMAT_VERSION = 1  # of the json format; raised when a field changes meaning or goes away

# What each code means, for SARIF's rule list (specs/README.md holds the same table, with examples).
CODES = {
    "E101": "unexpected character",
    "E102": "unexpected token, unexpected end of file, or a bracket that is not closed",
    "E103": "unterminated string",
    "E104": "positional argument after a keyword argument",
    "E105": "unknown escape in a string",
    "E106": "nested too deep (more than 100 levels of brackets, calls and operators)",
    "E107": "a whole number with too many digits to read",
    "E108": "a spec file that is not UTF-8 text, or cannot be read",
    "E109": "a spec larger than 256 KiB (not checked)",
    "E110": "a string longer than 4,096 characters",
    "E201": "unknown layer, loss, optimizer, schedule, metric, initialiser, source or stopping rule",
    "E202": "unknown argument of a call or block",
    "E203": "unknown section, or input/block outside the model",
    "E204": "unknown key in a section",
    "E205": "something required is missing",
    "E206": "unknown model value or target",
    "E207": "unknown split, or a monitored metric that is not measured",
    "E208": "an argument given twice",
    "E209": "a section, key, value, block or metric defined twice",
    "E210": "a value written as a section, or a section as a value",
    "E211": "conflicting keys",
    "E212": "blocks nested too deep (recursive)",
    "W211": "weight decay set twice: adamw's weight_decay and regularization.weight_decay both apply",
    "E301": "a required argument is missing",
    "E302": "too many positional arguments",
    "E303": "a value of the wrong kind",
    "E304": "a value out of range",
    "E305": "unknown option or dtype",
    "E306": "missing, unknown or wrong unit",
    "E307": "task mismatch",
    "E308": "a schedule phase as long as the whole run",
    "E309": "a second input",
    "E310": "plateau followed by another schedule phase",
    "W301": "early stopping with no more patience than the plateau schedule",
    "W302": "a setting that never takes effect within the run (a milestone, warm-up, patience past its end)",
    "W303": "a stopping threshold met before training (what predicting the mean already scores)",
    "W304": "a threshold or monitor mode against the metric's direction",
    "W305": "stopping on a training metric while a val split exists",
    "E311": "a stopping threshold the metric can never reach",
    "E312": "batchnorm with batch = 1",
    "E313": "nesterov = true without momentum",
    "E314": "stratify on a regression target",
    "E315": "an optimizer with nothing to train (every layer frozen)",
    "E316": "a class sampler with a class at every position (text(targets = every))",
    "E401": "a layer cannot take its input's shape",
    "E402": "a loss cannot take its prediction's shape",
    "E403": "an augmentation that does not fit the input",
    "E404": "a model whose training memory estimate is more than 1 TB",
    "W401": "a loss on logits given a value that ends in an activation or dropout",
    "E501": "data file not found",
    "E502": "unreadable or malformed data file",
    "E503": "unknown column or array",
    "E504": "missing or non-numeric value in the data",
    "E505": "a split too small, or a batch larger than the training split",
    "E506": "inconsistent data files or settings",
    "E507": "the declared input shape does not match the data",
    "E508": "the model's outputs do not match the classes or targets",
    "E509": "the weights to start from are missing, unreadable or do not fit the model",
    "E510": "token ids in the data beyond an embedding's vocabulary",
    "W501": "a class in val or test that train never shows",
    "W502": "a data path that does not exist, beside one of nearly that name (a typo)",
    "E601": "the requested device cannot be opened",
    "E602": "the device cannot compile the requested precision",
    "E603": "the model needs more memory to train than this machine has",
}
FAMILIES = {"1": "syntax", "2": "names", "3": "values", "4": "shapes", "5": "data", "6": "device"}


def describe(code: str) -> str:
    """A code's one-line meaning; a code not in the table (yet) is described by its family."""
    return CODES.get(code) or f"{FAMILIES.get(code[1:2], 'other')} problem"


def _sorted(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=sort_key)


def _counts(diags: list[Diagnostic]) -> tuple[int, int]:
    errors = sum(d.is_error for d in diags)
    return errors, len(diags) - errors


def _one_line(text: str) -> str:
    """A message, help or path on one line: clipped, new lines as spaces, other controls made visible."""
    return visible(" ".join(clip(text).split("\n")))


def full(diags: list[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    """Each problem with its source line, a caret under the span and `help:`; a count at the end."""
    errors, warnings = _counts(diags)
    tail = [f"{n} {word}{'s' * (n != 1)}" for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return render_all(diags, sources, color) + "\n\n" + ", ".join(tail) + "\n" if diags else ""


def concise(diags: list[Diagnostic], sources: dict[str, str]) -> str:
    """One line per problem, gcc's layout: `path:line:col: error: message [E201] (help: ...)`.

    Matched by Vim's default 'errorformat' (`%f:%l:%c: %m`), Emacs' compilation mode and the
    `$gcc`-style regex `^(.*?):(\\d+):(\\d*):?\\s+(?:fatal\\s+)?(warning|error):\\s+(.*)$`."""
    out = []
    for d in _sorted(diags):
        help_ = f" (help: {_one_line(d.help)})" if d.help else ""
        out.append(f"{_one_line(str(d.span))}: {d.severity}: {_one_line(d.message)} [{d.code}]{help_}\n")
    return "".join(out)


def _range(d: Diagnostic | Span) -> dict:
    s = d.span if isinstance(d, Diagnostic) else d
    return {"start": {"line": s.line, "col": s.col}, "end": {"line": s.end_line, "col": s.end_col}}


def _region(s: Span) -> dict:
    return {"startLine": s.line, "startColumn": s.col, "endLine": s.end_line, "endColumn": s.end_col}


def json_(diags: list[Diagnostic], sources: dict[str, str]) -> str:
    """One JSON document:

        {"format_version": 1, "files": 2,
         "diagnostics": [{"path": "a.train", "code": "E201", "severity": "error",
                          "message": "unknown optimizer 'adamm'", "help": "did you mean 'adam'?", "notes": [],
                          "range": {"start": {"line": 10, "col": 13}, "end": {"line": 10, "col": 18}},
                          "related": [], "fix": null}],
         "summary": {"errors": 1, "warnings": 0, "files_with_problems": 1}}

    `help` is null when there is none; `files` counts the files checked; `related` lists other places the
    problem involves, each `{"message", "path", "range"}` (E508: the loss that reads a layer's width); `fix` is
    null, or an edit that surely fixes the problem, `{"range", "replacement"}` (W401: remove ` -> softmax`)."""
    diags = _sorted(diags)
    errors, warnings = _counts(diags)
    doc = {
        "format_version": FORMAT_VERSION,
        "files": len(sources),
        "diagnostics": [{"path": d.span.file, "code": d.code, "severity": d.severity, "message": clip(d.message),
                         "help": d.help and clip(d.help), "notes": [clip(n) for n in d.notes], "range": _range(d),
                         "related": [{"message": clip(what), "path": span.file, "range": _range(span)}
                                     for what, span in d.related],
                         "fix": d.fix and {"range": _range(d.fix[0]), "replacement": d.fix[1]}}
                        for d in diags],
        "summary": {"errors": errors, "warnings": warnings, "files_with_problems": len({d.span.file for d in diags})},
    }
    return _dump(doc)


def _dump(doc: dict) -> str:
    """JSON in UTF-8, a lone surrogate (an undecodable byte of a file name) as its escape `\\udcff`."""
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8", "backslashreplace").decode() + "\n"


def _escape_data(text: str) -> str:
    return visible(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github(diags: list[Diagnostic], sources: dict[str, str]) -> str:
    """GitHub Actions workflow commands, one annotation per problem (escaped as the runner expects):
    `::error file=a.train,line=10,col=13,endLine=10,endColumn=18,title=E201::unknown optimizer 'adamm'`."""
    out = []
    for d in _sorted(diags):
        s = d.span
        props = {"file": s.file, "line": s.line, "col": s.col, "endLine": s.end_line, "endColumn": s.end_col,
                 "title": d.code}
        message = clip(d.message) + (f"\nhelp: {clip(d.help)}" if d.help else "")
        level = "error" if d.is_error else "warning"
        out.append(f"::{level} " + ",".join(f"{k}={_escape_property(str(v))}" for k, v in props.items())
                   + f"::{_escape_data(message)}\n")
    return "".join(out)


def _uri(path: str) -> dict:
    """SARIF's artifactLocation: a relative path is a URI reference under %SRCROOT%."""
    if PureWindowsPath(path).is_absolute() and not PurePosixPath(path).is_absolute():
        return {"uri": PureWindowsPath(path).as_uri()}
    if PurePosixPath(path).is_absolute():
        return {"uri": PurePosixPath(path).as_uri()}
    return {"uri": quote(path.replace("\\", "/"), errors="surrogateescape"), "uriBaseId": "%SRCROOT%"}


def sarif(diags: list[Diagnostic], sources: dict[str, str], version: str = "0.0.0") -> str:
    """SARIF 2.1.0: one run of the `trainc` driver, every known code as a rule, one result per problem."""
    diags = _sorted(diags)
    codes = sorted(set(CODES) | {d.code for d in diags})
    index = {c: i for i, c in enumerate(codes)}
    rules = [{"id": c, "name": c, "shortDescription": {"text": describe(c)},
              "defaultConfiguration": {"level": "warning" if c.startswith("W") else "error"}} for c in codes]
    results = []
    for d in diags:
        s = d.span
        text = clip(d.message) + (f"\nhelp: {clip(d.help)}" if d.help else "")
        related = [{"id": i, "message": {"text": clip(what)},
                    "physicalLocation": {"artifactLocation": _uri(span.file), "region": _region(span)}}
                   for i, (what, span) in enumerate(d.related)]
        results.append({
            "ruleId": d.code, "ruleIndex": index[d.code], "level": "error" if d.is_error else "warning",
            "message": {"text": text},
            "locations": [{"physicalLocation": {"artifactLocation": _uri(s.file), "region": _region(s)}}],
            **({"relatedLocations": related} if related else {}),
        })
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "trainc", "version": version, "rules": rules}},
                  "columnKind": "unicodeCodePoints", "results": results}],
    }
    return _dump(doc)


FORMATS: dict[str, Callable[[list[Diagnostic], dict[str, str]], str]] = {
    "full": full, "concise": concise, "json": json_, "github": github, "sarif": sarif,
}


def render(fmt: str, diags: list[Diagnostic], sources: dict[str, str], **options) -> str:
    """`diags` in format `fmt` (a key of FORMATS); `sources` maps every path checked to its text."""
    return FORMATS[fmt](diags, sources, **options)


__all__ = ["FORMATS", "FORMAT_VERSION", "CODES", "render", "describe", "full", "concise", "json_", "github", "sarif"]
