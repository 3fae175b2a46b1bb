"""Every test run starts from nothing: its own empty caches and temporary folders.

Before any test module imports tinygrad (which reads CACHEDB when imported), the environment is
pointed at one fresh folder for this pytest run: tinygrad's kernel cache and trainc's program
cache (both in CACHEDB), XDG_CACHE_HOME (~/.cache), TMPDIR (the bench's caches, tempfile),
matplotlib's config. Subprocesses inherit it, and so do pytest-xdist's workers, which share the
run's folder (the first process makes it, and removes it at exit). A test that needs a warm cache
warms it itself; no test can pass only because an earlier run left something behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_OWNER = "TRAINC_TEST_ROOT" not in os.environ  # False in an xdist worker: the controller made the folder
if _OWNER:
    os.environ["TRAINC_TEST_ROOT"] = tempfile.mkdtemp(prefix="trainc-tests-")
_ROOT = Path(os.environ["TRAINC_TEST_ROOT"])
for _name, _sub in (("XDG_CACHE_HOME", "cache"), ("TMPDIR", "tmp"), ("MPLCONFIGDIR", "matplotlib")):
    (_ROOT / _sub).mkdir(exist_ok=True)
    os.environ[_name] = str(_ROOT / _sub)
os.environ["CACHEDB"] = str(_ROOT / "cache" / "tinygrad" / "cache.db")
tempfile.tempdir = None  # tempfile reads TMPDIR again


def pytest_unconfigure(config):
    if _OWNER:
        shutil.rmtree(_ROOT, ignore_errors=True)
        os.environ.pop("TRAINC_TEST_ROOT", None)


# The files that train the longest, longest first. xdist (`--dist loadfile`) hands files to the workers in
# collection order, so starting with these leaves short files to fill the end on both cores, instead of one
# long file running alone at the end (measured with --durations: about a minute of the suite's wall time).
HEAVY_FIRST = ("test_models.py", "test_sequence.py", "test_resume.py", "test_fuzz.py", "test_bench.py",
               "test_inference.py", "test_precision.py", "test_report.py", "test_sweep.py", "test_optimizers.py",
               "test_vision.py", "test_e2e.py", "test_losses.py", "test_metrics.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
