"""The generated reference tables of specs/README.md: the section keys (from catalog/sections.py) and every
name of every registry with its signature and doc (from the registered signatures), each between two
marker comments:

    <!-- generated: keys -->          (or <!-- generated: names -->)
    ...
    <!-- end generated -->

    .venv/bin/python -m trainc.compiler.catalog.docs            # rewrite the region in specs/README.md
    .venv/bin/python -m trainc.compiler.catalog.docs --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import base, sections

BEGIN = "<!-- generated: keys -->"
END = "<!-- end generated -->"
REGISTRIES = (("layers", base.LAYERS), ("initialisers", base.INITS), ("losses", base.LOSSES),
              ("optimizers", base.OPTIMIZERS), ("schedules", base.SCHEDULES), ("metrics", base.METRICS),
              ("data sources", base.SOURCES), ("augmentations", base.AUGMENTATIONS),
              ("stopping rules", base.STOP_RULES), ("divergence guards", base.DIVERGENCE),
              ("regularizers", base.REGULARIZERS))


def readme() -> Path:
    """specs/README.md of the source tree (the package is installed from it, in place)."""
    return Path(sections.__file__).resolve().parents[2] / "specs" / "README.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def keys_table() -> str:
    """The generated region's text, markers excluded: one row per declared key, section by section."""
    lines = ["### Section keys at a glance", "",
             ("Generated from `compiler/catalog/sections.py` by `python -m trainc.compiler.catalog.docs`; the "
              "sections below say more."), "",
             "| key | takes | default | meaning |", "|---|---|---|---|"]
    for section, keys in sections.KEYS.items():
        for name, d in keys.items():
            lines.append(f"| `{section}.{name}` | {_cell(d.describe())} | {_cell(d.show_default())} | "
                         f"{_cell(d.doc)} |")
    return "\n".join(lines)


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split())
    end = text.find(". ")
    return text if end < 0 else text[:end + 1]


def names_table() -> str:
    """The generated names region: each registry's entries, signature (defaults included) and first sentence."""
    lines = ["## Catalogue at a glance", "",
             ("Every name a spec can write, generated from the registered signatures (`compiler/catalog/`) by "
              "`python -m trainc.compiler.catalog.docs`; the sections above say more."), ""]
    for title, registry in REGISTRIES:
        lines += [f"**{title}**", "", "| name | meaning |", "|---|---|"]
        lines += [f"| `{_cell(e.signature)}` | {_cell(_first_sentence(e.doc))} |" for e in registry.entries.values()]
        lines.append("")
    return "\n".join(lines).rstrip()


TABLES = {BEGIN: keys_table, "<!-- generated: names -->": names_table}


def render(text: str) -> str:
    """`text` (the README) with each generated region replaced by the current table."""
    for begin, table in TABLES.items():
        head, sep, rest = text.partition(begin)
        if not sep or END not in rest:
            raise ValueError(f"no {begin} ... {END} region")
        _, _, tail = rest.partition(END)
        text = f"{head}{begin}\n{table()}\n{END}{tail}"
    return text


def main(argv: list[str]) -> int:
    path = readme()
    text = path.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{path}: a generated table is out of date: run python -m trainc.compiler.catalog.docs",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
