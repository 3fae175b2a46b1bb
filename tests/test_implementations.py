"""Every catalogue entry has an implementation attached to it, and nothing is implemented that the catalogue lacks."""

import pytest

from trainc.compiler import catalog as C
from trainc.compiler.catalog import base

import trainc.compiler.lower  # noqa: F401 - registers the layers, initialisers, losses, metrics and optimizers
import trainc.runtime.augment  # noqa: F401 - the augmentations
import trainc.runtime.schedule  # noqa: F401 - the schedules

IMPLEMENTED = {  # registry -> the parts every entry has
    C.LAYERS: ("fn",), C.INITS: ("fn",), C.LOSSES: ("fn",), C.METRICS: ("fn",), C.OPTIMIZERS: ("fn", "state"),
    C.SCHEDULES: ("fn",), C.AUGMENTATIONS: ("fn",),
}


@pytest.mark.parametrize("registry", list(IMPLEMENTED), ids=lambda r: r.kind)
def test_every_entry_has_an_implementation(registry):
    for part in IMPLEMENTED[registry]:
        missing = set(registry.names()) - set(registry.table(part))
        assert not missing, f"{registry.kind}s without a {part!r} implementation: {sorted(missing)}"


@pytest.mark.parametrize("registry", list(IMPLEMENTED), ids=lambda r: r.kind)
def test_no_implementation_without_an_entry(registry):
    for part, table in registry.impls.items():
        extra = set(table) - set(registry.names())
        assert not extra, f"{registry.kind} {part!r} implementations of names not in the catalogue: {sorted(extra)}"


def test_layers_with_weights_have_a_make_part():
    with_params = {n for n in C.LAYERS.names() if C.LAYERS.get(n).extra.get("params")}
    assert with_params <= set(C.LAYERS.table("make"))


def test_an_unknown_name_raises_at_once():
    with pytest.raises(KeyError, match="not in the catalogue"):
        C.LOSSES.implement("no_such_loss")


def test_the_old_tables_are_the_registry_s():
    from trainc.compiler.lower import LAYER_IMPL, MAKE, METRIC_IMPL
    from trainc.compiler.lower.losses import PAIRWISE

    assert LAYER_IMPL is C.LAYERS.table("fn") and MAKE is C.LAYERS.table("make")
    assert METRIC_IMPL is C.METRICS.table()
    assert set(PAIRWISE) == {n for n in C.LOSSES.names() if C.LOSSES.get(n).extra.get("pairwise")}


def test_defaulted_fills_the_catalogue_defaults():
    f = C.LOSSES.defaulted("huber", lambda p, y, delta: delta)
    assert f(0, 0) == 1.0 and f(0, 0, 2.0) == 2.0 and f(0, 0, delta=3.0) == 3.0


def test_the_catalogue_does_not_import_tinygrad():
    text = open(base.__file__).read()
    assert "import tinygrad" not in text and "from tinygrad" not in text


def test_every_layer_with_weights_has_a_parameter_formula_for_summary():
    """`trainc summary` counts parameters by formula (compiler/summary.py, no tinygrad); a layer that makes
    weights without one would be counted as 0: the make parts and the formulas name the same layers."""
    from trainc.compiler.summary import PARAMS

    assert set(C.LAYERS.table("make")) == set(PARAMS)
