"""Adapters over tinygrad 0.14's internals, each kept because a measurement justifies it (bench/README.md).

`program_cache()`: tinygrad keeps the kernels it has generated (AST -> rendered and compiled
program) in an in-memory dict, so every new process generates every kernel again; on disk it
caches only the C compiler's output, the cheap part. Most of a step's time to first step is
that code generation (an LSTM over 32 steps: ~2 minutes on 2 cores). Backing the dict with
tinygrad's own disk cache (CACHEDB, the table `trainc_program`) lets a later run of the same
spec, or any spec with the same kernels, skip it.
"""

from __future__ import annotations

import hashlib
import os
from typing import Callable

_installed: set[str] = set()

# The batch gather realized as its own kernel under SPLIT_REDUCEOP=0 (bench/README.md: 1.5x on the MLP).
# TRAINC_GATHER=fused leaves `X[idx]` to tinygrad's fusion, as a hand-written loop does: for measuring.
GATHER_KERNEL = os.environ.get("TRAINC_GATHER", "kernel") != "fused"


class SearchedJit:
    """A TinyJit whose kernels tinygrad's BEAM search picks (`run { beam = N }`). Kernels are compiled
    on the first call and captured on the second (both under BEAM=N); later calls replay them.
    tinygrad keeps each search's result in its disk cache (CACHEDB), so a later run reuses it."""

    def __init__(self, jit, beam: int):
        self.jit, self.beam = jit, beam

    def __call__(self, *args):
        if self.jit.cnt >= 2:
            return self.jit(*args)
        from tinygrad import Context

        with Context(BEAM=self.beam):
            return self.jit(*args)


def step_jit(fn: Callable, beam: int = 0) -> Callable:
    """The training step's TinyJit, searched with BEAM=`beam` when it is not 0."""
    from tinygrad import TinyJit

    return SearchedJit(TinyJit(fn), beam) if beam else TinyJit(fn)


def _digest(key: tuple) -> str:
    """A stable name for tinygrad's `to_program_key`: (AST hash, renderer class, target, codegen settings)."""
    import tinygrad

    ast_key, renderer, *rest = key
    h = hashlib.sha256(ast_key)
    h.update(repr((getattr(tinygrad, "__version__", ""), renderer.__module__, renderer.__qualname__, rest)).encode())
    return h.hexdigest()


def program_cache() -> None:
    """Back tinygrad's in-memory kernel program cache with its disk cache. Idempotent; off with TRAINC_PROGRAM_CACHE=0
    (and, like tinygrad's own caches, with CACHELEVEL=0)."""
    if "program_cache" in _installed or os.environ.get("TRAINC_PROGRAM_CACHE", "1") == "0":
        return
    import tinygrad.codegen as codegen
    import tinygrad.engine.realize as realize
    from tinygrad.helpers import diskcache_get, diskcache_put

    class DiskBacked(dict):
        def __contains__(self, key) -> bool:
            if dict.__contains__(self, key):
                return True
            prg = diskcache_get("trainc_program", _digest(key))
            if prg is None:
                return False
            dict.__setitem__(self, key, prg)
            return True

        def get(self, key, default=None):
            return self[key] if key in self else default

        def __setitem__(self, key, prg) -> None:
            dict.__setitem__(self, key, prg)
            diskcache_put("trainc_program", _digest(key), prg)

    cache = DiskBacked(codegen.to_program_cache)
    codegen.to_program_cache = cache  # read as a module global by to_program ...
    realize.to_program_cache = cache  # ... and by lower_and_compile, which imported the name

    # the CPU device generates four helper programs each time it opens, outside that cache (~0.8 s)
    import tinygrad.runtime.ops_cpu as ops_cpu

    generate = ops_cpu.do_to_program

    def device_program(ast, renderer):
        key = _digest((ast.key, type(renderer), renderer.target, "device"))
        prg = diskcache_get("trainc_program", key)
        return prg if prg is not None else diskcache_put("trainc_program", key, generate(ast, renderer))

    ops_cpu.do_to_program = device_program
    _installed.add("program_cache")

