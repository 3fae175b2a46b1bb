"""The two-cores lever, as an adapter measured by the benchmark (variant `trainc:threads=2`), not part of trainc.

tinygrad 0.14's CPU device compiles a large kernel in `NUM_CPU_THREADS` pieces (its `core_id`
argument), then calls the pieces one after another on the calling thread
(`CPUProgram.__call__`, runtime/ops_cpu.py); its HCQ2 queue path has one worker thread per
device, so it is serial too. A ctypes call releases the GIL, so the pieces can run on threads of
their own: `install()` replaces `CPUProgram.__call__` with a fork-join over persistent worker
threads (piece 0 on the calling thread). Results are identical (the pieces write disjoint
outputs). Whether it pays depends on a second core being free at every kernel: see README.md.
"""

from __future__ import annotations

import ctypes
import threading
import time


class Worker(threading.Thread):
    """Runs one piece per request; the piece's ctypes call releases the GIL."""

    def __init__(self):
        super().__init__(daemon=True)
        self.go, self.done, self.job, self.error = threading.Semaphore(0), threading.Semaphore(0), None, None

    def run(self):
        while True:
            self.go.acquire()
            try:
                self.job[0](*self.job[1])
            except BaseException as e:  # handed to the caller
                self.error = e
            self.done.release()


def install() -> None:
    from tinygrad.runtime.ops_cpu import CPUProgram

    serial = CPUProgram.__call__
    workers: list[Worker] = []

    def parallel(self, *bufs, global_size=(1, 1, 1), local_size=(1, 1, 1), vals=(), wait=False, timeout=None):
        slot = self.runtimevars.get("core_id")
        if slot is None or self.lvp or global_size[0] < 2:
            return serial(self, *bufs, global_size=global_size, local_size=local_size, vals=vals, wait=wait,
                          timeout=timeout)
        st = time.perf_counter()
        raw = [*[b.va_addr for b in bufs], *vals]
        n = global_size[0]
        while len(workers) < n - 1:
            workers.append(Worker())
            workers[-1].start()
        for tid in range(1, n):
            raw[slot] = tid
            w = workers[tid - 1]
            w.job = (self.fxn, [ctypes.c_uint64(x) for x in raw])
            w.go.release()
        raw[slot] = 0
        self.fxn(*[ctypes.c_uint64(x) for x in raw])
        for w in workers[:n - 1]:
            w.done.acquire()
            if w.error is not None:
                e, w.error = w.error, None
                raise e
        return time.perf_counter() - st if wait else None

    CPUProgram.__call__ = parallel


def parallel_speedup(seconds: float = 0.2) -> float:
    """How much faster two threads finish two GIL-free jobs than one thread: ~2 on two free cores, ~1 when the
    machine's other load leaves one. The ceiling for this lever (and for torch's threads) at that moment."""
    import hashlib

    data = b"x" * (16 << 20)

    def work():
        for _ in range(max(1, int(seconds * 20))):
            hashlib.sha256(data).digest()

    t = time.perf_counter()
    work()
    work()
    serial = time.perf_counter() - t
    t = time.perf_counter()
    th = threading.Thread(target=work)
    th.start()
    work()
    th.join()
    return serial / (time.perf_counter() - t)
