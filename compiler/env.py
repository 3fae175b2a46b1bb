"""Every environment switch trainc reads, in one place (documented in README.md, "Environment").

Each is read when asked, not at import, so a test that sets one with monkeypatch sees it."""

from __future__ import annotations

import os

SWITCHES = {  # name -> what it does (the README's table is this one)
    "TRAINC_DEBUG": "show the Python traceback of an internal error instead of the one-line report",
    "NO_COLOR": "no colour in diagnostics, even on a terminal",
    "TRAINC_GATHER": "`fused`: gather a batch inside the step's kernel (default `kernel`: a kernel of its own)",
    "TRAINC_PROGRAM_CACHE": "`0`: do not keep compiled step programs in tinygrad's on-disk cache",
    "TRAINC_CPU_THREADS": "`0`: one CPU thread for tinygrad's CPU device (as OMP_NUM_THREADS=1)",
    "OMP_NUM_THREADS": "`1`: as TRAINC_CPU_THREADS=0",
    "TRAINC_FAULT": "tests only: kill the run at a named moment (`step:N`, `checkpoint:N`) to test resume",
    "TRAINC_FUZZ_EXAMPLES": "tests only: cases per fuzzed property (the long run)",
}


def get(name: str, default: str | None = None) -> str | None:
    """The switch's value, or `default` when unset; only names in SWITCHES (a typo is a bug, not a no-op)."""
    if name not in SWITCHES:
        raise KeyError(f"{name} is not one of trainc's switches: add it to SWITCHES with its doc")
    return os.environ.get(name, default)


def on(name: str) -> bool:
    """Set to anything but empty."""
    return bool(get(name))
