"""The checked IR of every shipped spec, as `trainc compile --emit ir` prints it, against the copy kept in
tests/golden/ir/: a refactoring of the front end (issue 15: one schema, one pipeline) must leave what every
spec means, down to positions and defaults, as it was. A change of meaning is made on purpose: regenerate
with `TRAINC_GOLDEN=write pytest tests/test_golden_ir.py` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trainc.compiler import check_file, parse
from trainc.compiler.emit import to_yaml

REPO = Path(__file__).parents[1]
GOLDEN = REPO / "tests" / "golden" / "ir"
SPECS = sorted([*REPO.glob("specs/*.train"), *REPO.glob("examples/*.train")])


def _name(path: Path) -> str:
    return "_".join(path.relative_to(REPO).with_suffix("").parts)


def test_every_shipped_spec_has_a_golden_copy_and_no_other():
    assert len(SPECS) >= 20
    assert {_name(p) for p in SPECS} == {p.stem for p in GOLDEN.glob("*.yaml")}


@pytest.mark.parametrize("path", SPECS, ids=_name)
def test_the_ir_is_unchanged(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the IR records the spec's path as given, relative to the repository
    rel = str(path.relative_to(REPO))
    spec, problems = check_file(parse(path.read_text(), rel), rel)
    assert not [d for d in problems if d.is_error], problems
    got = to_yaml(spec)
    golden = GOLDEN / f"{_name(path)}.yaml"
    if os.environ.get("TRAINC_GOLDEN") == "write":
        golden.write_text(got)
    assert got == golden.read_text(), f"the IR of {rel} changed; see the module's doc to accept a change"
