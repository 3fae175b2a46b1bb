"""Adapters over tinygrad 0.14's internals, each kept because a measurement justifies it (bench/README.md):
the kernel program cache (below), the batch gather's kernel (GATHER_KERNEL), BEAM for the training step
(step_jit) and parallel CPU kernels (cpu_threads).

`program_cache()`: tinygrad keeps the kernels it has generated (AST -> rendered and compiled
program) in an in-memory dict, so every new process generates every kernel again; on disk it
caches only the C compiler's output, the cheap part. Most of a step's time to first step is
that code generation (an LSTM over 32 steps: ~2 minutes on 2 cores). Backing the dict with
tinygrad's own disk cache (CACHEDB, the table `trainc_program`) lets a later run of the same
spec, or any spec with the same kernels, skip it.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Callable

from .. import env

_installed: set[str] = set()

# The batch gather realized as its own kernel under SPLIT_REDUCEOP=0 (bench/README.md: 1.5x on the MLP).
# TRAINC_GATHER=fused leaves `X[idx]` to tinygrad's fusion, as a hand-written loop does: for measuring.
GATHER_KERNEL = env.get("TRAINC_GATHER", "kernel") != "fused"


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
    if "program_cache" in _installed or env.get("TRAINC_PROGRAM_CACHE", "1") == "0":
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


# A kernel whose first (serial) run took less than this stays on the calling thread: waking a worker costs tens
# of microseconds, more than it saves on the LSTM's 60 us kernels (bench/README.md, lever c)
MIN_PARALLEL_S = 200e-6


class _Piece:
    """One piece of a threaded CPU kernel (its `core_id`), run by whichever thread claims it first."""

    __slots__ = ("fxn", "args", "claim", "done", "error")

    def __init__(self, fxn, args):
        self.fxn, self.args, self.error = fxn, args, None
        self.claim, self.done = threading.Lock(), threading.Event()

    def run(self) -> None:
        try:
            self.fxn(*self.args)
        except BaseException as e:  # raised again on the calling thread
            self.error = e
        finally:
            self.done.set()


class _Worker(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True, name="trainc-cpu")
        self.wake, self.piece = threading.Semaphore(0), None

    def run(self):
        while True:
            self.wake.acquire()
            piece = self.piece
            if piece is not None and piece.claim.acquire(blocking=False):
                piece.run()


def _fork_join(pieces: list[_Piece], workers: list[_Worker]) -> None:
    """Piece 0 on the calling thread, the others on workers (started as needed); a piece no worker has
    started by the time the caller is done with its own, the caller runs itself."""
    while len(workers) < len(pieces) - 1:
        workers.append(_Worker())
        workers[-1].start()
    for w, piece in zip(workers, pieces[1:]):
        w.piece = piece
        w.wake.release()
    pieces[0].fxn(*pieces[0].args)
    for piece in pieces[1:]:
        if piece.claim.acquire(blocking=False):  # no worker has started it: run it here
            piece.run()
        else:
            piece.done.wait()
        if piece.error is not None:
            raise piece.error


def cpu_threads() -> None:
    """Run the pieces of a threaded CPU kernel at the same time. Idempotent; off with TRAINC_CPU_THREADS=0 or
    OMP_NUM_THREADS=1 (what `trainc sweep` sets when its trials share the cores).

    tinygrad 0.14 compiles a large CPU kernel in NUM_CPU_THREADS pieces (its `core_id` argument) and runs them
    one after another on the calling thread (`CPUProgram.__call__`). Here piece 0 runs on the calling thread
    and the others on worker threads (a ctypes call releases the GIL); a piece that no worker has started by
    the time the caller is done with its own, the caller runs itself, so a busy machine whose cores are taken
    costs little more than running serially. A kernel runs serially the first time, timed, and stays serial if
    it took under MIN_PARALLEL_S. The pieces write disjoint outputs: results are identical."""
    if "cpu_threads" in _installed or env.get("TRAINC_CPU_THREADS", "1") == "0" or \
            env.get("OMP_NUM_THREADS") == "1":
        return
    import ctypes
    import time

    from tinygrad.runtime.ops_cpu import CPUProgram

    serial = CPUProgram.__call__

    workers: list[_Worker] = []
    lock = threading.Lock()  # one kernel at a time uses the workers

    def parallel(self, *bufs, global_size=(1, 1, 1), local_size=(1, 1, 1), vals=(), wait=False, timeout=None):
        slot = self.runtimevars.get("core_id")
        big = getattr(self, "_trainc_big", None)
        if big is None and slot is not None:  # the first call runs serially, timed: is the kernel worth a fork-join?
            st = time.perf_counter()
            out = serial(self, *bufs, global_size=global_size, local_size=local_size, vals=vals, wait=wait,
                         timeout=timeout)
            self._trainc_big = time.perf_counter() - st >= MIN_PARALLEL_S
            return out
        if not big or self.lvp or global_size[0] < 2 or not lock.acquire(blocking=False):
            return serial(self, *bufs, global_size=global_size, local_size=local_size, vals=vals, wait=wait,
                          timeout=timeout)
        try:
            st = time.perf_counter()
            raw = [*[b.va_addr for b in bufs], *vals]
            pieces = []
            for tid in range(global_size[0]):
                raw[slot] = tid
                pieces.append(_Piece(self.fxn, [ctypes.c_uint64(x) for x in raw]))
            _fork_join(pieces, workers)
            return time.perf_counter() - st if wait else None
        finally:
            lock.release()

    CPUProgram.__call__ = parallel
    _installed.add("cpu_threads")
