"""How the code reads (issue 15): no function of the package over 80 lines, and no import circle between
its modules. Both walk the source with `ast`, so they see every module without importing any."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).parents[1]
PACKAGE = ("compiler", "runtime", "trainc", "grammar")  # installed as trainc.compiler, trainc.runtime, ...
LIMIT = 80


def _modules() -> dict[str, Path]:
    """Dotted module name (as installed: trainc.compiler.resolve) -> its file."""
    out = {}
    for top in PACKAGE:
        for path in (REPO / top).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            out[name if top == "trainc" else f"trainc.{name}"] = path
    return out


def test_no_function_over_80_lines():
    long = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > LIMIT:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "\n".join(long)


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules a module imports, at its top level or inside a function (a late import hides a
    circle from Python, not from a reader)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.add(sub if sub in known else base)
    return {m for m in out if m in known and m != name}


def test_no_import_circle():
    mods = _modules()
    graph = {name: _imports(name, path, set(mods)) for name, path in mods.items()}
    state, circles = {}, []

    def visit(n, stack):
        state[n] = "open"
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                circles.append(" -> ".join(stack[stack.index(m):] + [m]))
            elif m not in state:
                visit(m, stack + [m])
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not circles, "\n".join(circles)


def test_environment_switches_are_read_in_one_module_and_documented():
    from trainc.compiler import env

    readme = (REPO / "README.md").read_text()
    assert all(f"`{name}" in readme for name in env.SWITCHES), [n for n in env.SWITCHES if f"`{n}" not in readme]
    readers = []
    for name, path in _modules().items():
        text = path.read_text()
        if path.name != "env.py" and any(f'"{s}"' in text for s in env.SWITCHES) and "os.environ" in text:
            readers.append(name)
    assert not readers, f"read a switch with os.environ instead of compiler/env.py: {readers}"
