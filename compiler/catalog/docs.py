"""The reference table of section keys in specs/README.md, generated from the declarations of
catalog/sections.py between two marker comments:

    <!-- generated: keys -->
    ...
    <!-- end generated -->

    .venv/bin/python -m trainc.compiler.catalog.docs            # rewrite the region in specs/README.md
    .venv/bin/python -m trainc.compiler.catalog.docs --check    # exit 1 if it is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import sections

BEGIN = "<!-- generated: keys -->"
END = "<!-- end generated -->"


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


def render(text: str) -> str:
    """`text` (the README) with its generated region replaced by the current table."""
    head, sep, rest = text.partition(BEGIN)
    if not sep or END not in rest:
        raise ValueError(f"no {BEGIN} ... {END} region")
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{keys_table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = readme()
    text = path.read_text()
    new = render(text)
    if "--check" in argv:
        if new != text:
            print(f"{path}: the generated key table is out of date: run python -m trainc.compiler.catalog.docs",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
