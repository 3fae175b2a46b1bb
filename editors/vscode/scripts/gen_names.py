"""Regenerate the word lists of the TextMate grammar from the catalog, so highlighting follows the
registries as they grow.

    .venv/bin/python editors/vscode/scripts/gen_names.py           # rewrite syntaxes/trainc.tmLanguage.json
    .venv/bin/python editors/vscode/scripts/gen_names.py --check   # exit 1 if it is out of date

Only the generated repository rules change (`section`, `registry`, `option`, `dtype`, `number`);
everything else in the grammar is written by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trainc.compiler import catalog as C

GRAMMAR = Path(__file__).resolve().parents[1] / "syntaxes" / "trainc.tmLanguage.json"

REGISTRIES = {  # scope suffix -> registry; earlier rules win for a name in two registries (`mae`)
    "layer": C.LAYERS,
    "loss": C.LOSSES,
    "optimizer": C.OPTIMIZERS,
    "schedule": C.SCHEDULES,
    "metric": C.METRICS,
    "init": C.INITS,
    "source": C.SOURCES,
    "stop-rule": C.STOP_RULES,
    "regularizer": C.REGULARIZERS,
    "divergence": C.DIVERGENCE,
}

NUMBER = r"(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?"  # train.lark's NUMBER


def words(names) -> str:
    """A word alternation, sorted so the file diffs cleanly."""
    return "|".join(sorted(set(names)))


def _words_of(typ) -> set[str]:
    """The bare words a schema type takes: a Choice's options, a NumList's words (`balanced`, `same`)."""
    if isinstance(typ, C.Choice):
        return set(typ.options)
    if isinstance(typ, C.NumList):
        return set(typ.words)
    return set()


def options() -> list[str]:
    """Every bare word a setting can take, from the imported catalogue: the declared section keys
    (catalog/sections.py) and the parameters of every registry's entries."""
    types = [d.type for keys in C.sections.KEYS.values() for d in keys.values()]
    types += [v for v in C.KEY_VALUES.values()]
    types += [p.type for reg in vars(C).values() if isinstance(reg, C.Registry) for e in reg.entries.values()
              for p in e.params]
    found = set().union(*(_words_of(t) for t in types))
    return sorted(w for w in found if w.isidentifier() and w not in dtypes() and w not in ("true", "false"))


def dtypes() -> set[str]:
    """Element types of inputs and the precisions of `run.precision` (f16, bf16)."""
    return set(C.DTYPES) | set(C.PRECISIONS)


def generated() -> dict[str, dict]:
    units = [u for u in C.UNITS if u.isidentifier()]
    return {
        "section": {
            "comment": "generated: a section name starting a line, before `{` or `=`",
            "match": rf"^\s*\b({words(C.SECTIONS)})\b(?=\s*(?:\{{|=(?!=)))",
            "captures": {"1": {"name": "entity.name.section.trainc"}},
        },
        "registry": {
            "comment": "generated: one rule per registry of compiler/catalog",
            "patterns": [{"match": rf"\b(?:{words(reg.names())})\b", "name": f"support.function.{kind}.trainc"}
                         for kind, reg in REGISTRIES.items()],
        },
        "option": {
            "comment": "generated: the bare words of Choice(...) arguments and settings",
            "match": rf"\b(?:{words(options())})\b",
            "name": "support.constant.option.trainc",
        },
        "dtype": {
            "comment": "generated: element types of `input x: f32[64]` and `run.precision`",
            "match": rf"\b(?:{words(dtypes())})\b",
            "name": "storage.type.dtype.trainc",
        },
        "number": {
            "comment": "generated: train.lark's NUMBER, then an optional unit (`200 steps`, `10%`)",
            "match": rf"(?<![A-Za-z0-9_.])({NUMBER})(?:\s*(%)|\s*({words(units)})\b)?",
            "captures": {
                "1": {"name": "constant.numeric.trainc"},
                "2": {"name": "keyword.other.unit.trainc"},
                "3": {"name": "keyword.other.unit.trainc"},
            },
        },
    }


def render(grammar: dict) -> str:
    """The grammar with its generated rules replaced, as the file's text."""
    grammar = dict(grammar, repository={**grammar["repository"], **generated()})
    return json.dumps(grammar, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = GRAMMAR.read_text()
    new = render(json.loads(text))
    if "--check" in argv:
        if new != text:
            print(f"{GRAMMAR} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    GRAMMAR.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
