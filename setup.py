"""Packaging: the four top-level folders are mapped into the one `trainc` package, and every folder
below them that holds Python files (or the grammar) ships, found here so that a new subpackage cannot
be left out of the wheel. Metadata and dependencies are in pyproject.toml."""

from pathlib import Path

from setuptools import setup

ROOTS = {"trainc": "trainc", "trainc.grammar": "grammar", "trainc.compiler": "compiler", "trainc.runtime": "runtime"}
DATA = ("*.lark",)  # non-Python files the package reads at run time


def _folders(root: str):
    """`root` and every folder below it holding a .py or data file (never __pycache__ or hidden ones)."""
    for folder in sorted({Path(root), *(p.parent for p in Path(root).rglob("*") if p.is_file())}):
        rel = folder.relative_to(root)
        if any(part.startswith((".", "__pycache__")) for part in rel.parts):
            continue
        if any(folder.glob("*.py")) or any(folder.glob(d) for d in DATA) or folder == Path(root):
            yield rel


packages, package_dir = [], {}
for name, root in ROOTS.items():
    for rel in _folders(root):
        pkg = ".".join((name, *rel.parts))
        packages.append(pkg)
        package_dir[pkg] = str(Path(root, rel).as_posix())

setup(packages=packages, package_dir=package_dir, package_data={pkg: list(DATA) for pkg in packages})
