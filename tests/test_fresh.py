"""The suite runs on its own empty caches (tests/conftest.py): what it finds warm, it warmed itself."""

import os
import tempfile
from pathlib import Path

import conftest


def test_every_cache_and_temporary_folder_is_this_runs_own():
    from tinygrad.helpers import CACHEDB

    root = conftest._ROOT
    paths = {"tinygrad CACHEDB": Path(CACHEDB), "tempfile": Path(tempfile.gettempdir()),
             "XDG_CACHE_HOME": Path(os.environ["XDG_CACHE_HOME"]), "MPLCONFIGDIR": Path(os.environ["MPLCONFIGDIR"])}
    assert {k: str(p) for k, p in paths.items() if not p.is_relative_to(root)} == {}
    assert root.name.startswith("trainc-tests-") and root.stat().st_uid == os.getuid()
