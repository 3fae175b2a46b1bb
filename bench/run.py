"""trainc's performance benchmark: the compiled step against a hand-written tinygrad loop and PyTorch eager.

    .venv/bin/python bench/run.py            # the full run (several minutes per workload)
    .venv/bin/python bench/run.py --quick    # a few minutes: one cold and one warm process per variant
    .venv/bin/python bench/run.py --smoke    # seconds: every figure once, for the tests (timings meaningless)
    .venv/bin/python bench/run.py --levers   # also the levers: gather kernel off, BEAM, two threads

Every measurement runs in its own process (`--child`), the variants alternating round by round, so
one variant's caches, allocator and warm-up never help another. Prints a table, then as its last
line one JSON object with every figure (see bench/README.md for the keys).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SEED = 0
LR = 1e-3

# workload -> input shape, training examples, batch
WORKLOADS = {
    "mlp": {"shape": (784,), "n": 60000, "batch": 128},
    "cnn": {"shape": (1, 28, 28), "n": 60000, "batch": 64},
    "lstm": {"shape": (32, 8), "n": 20000, "batch": 64},
}
N_VAL, N_CLASSES = 512, 10
MODES = {
    # rounds: processes per variant and workload; cold: the workloads whose first process starts with empty
    # kernel caches (smoke: the MLP twice, so its warm first step uses the cache this run warmed itself);
    # blocks: timed blocks per process, each about `block_s` seconds of steps and one sync
    "smoke": {"rounds": {"mlp": 2, "cnn": 1, "lstm": 1}, "cold": ("mlp",), "blocks": 2, "block_s": 0.05, "warmup": 1},
    "quick": {"rounds": {"mlp": 2, "cnn": 2, "lstm": 1}, "cold": ("mlp", "cnn"), "blocks": 5, "block_s": 0.3,
              "warmup": 3},
    "full": {"rounds": {"mlp": 5, "cnn": 5, "lstm": 3}, "cold": ("mlp", "cnn", "lstm"), "blocks": 9, "block_s": 0.5,
             "warmup": 5},
}
# The hand-written LSTM generates its unrolled kernels for minutes in every process (plain tinygrad keeps
# generated code in memory only): it gets at most this many processes, and in --quick and --smoke it
# reuses them from disk through trainc's program cache (its first step is then not plain tinygrad's)
SLOW = {("lstm", "hand"): 2}
VARIANTS = ("trainc", "hand", "torch", "torch:threads=1")
# each lever: a variant `base:option=value` measured against its base
LEVERS = ("trainc:gather=fused", "trainc:feed=tensor", "trainc:progcache=0", "trainc:threads=1", "trainc:beam=1",
          "trainc:beam=2", "hand:threads=2")


# ---------------------------------------------------------------------------------------------
# Child: one variant of one workload, measured in this process
# ---------------------------------------------------------------------------------------------


SMOKE_STEPS = 4  # the LSTM's sequence length under --smoke, where only the figures' presence matters


def shape_of(workload: str, smoke: bool = False) -> tuple[int, ...]:
    shape = WORKLOADS[workload]["shape"]
    return (SMOKE_STEPS, *shape[1:]) if smoke and workload == "lstm" else shape


def make_data(workload: str, smoke: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random inputs and labels of the workload's shapes (this benchmark measures speed, not accuracy)."""
    w = WORKLOADS[workload]
    n = (w["batch"] * 8 if smoke else w["n"]) + N_VAL
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((n, *shape_of(workload, smoke)), dtype=np.float32)
    return x, rng.integers(0, N_CLASSES, n).astype(np.int32)


def batches(n: int, batch: int):
    """The index batches, endlessly: shuffled epochs, as the trainc loop draws them; the same in every variant."""
    rng = np.random.default_rng(SEED + 1)
    while True:
        order = rng.permutation(n).astype(np.int32)
        for i in range(n // batch):
            yield order[i * batch:(i + 1) * batch]


def parse_variant(variant: str) -> tuple[str, dict[str, str]]:
    """`trainc:beam=2,threads=2` -> ("trainc", {"beam": "2", "threads": "2"})."""
    base, _, opts = variant.partition(":")
    return base, dict(o.split("=", 1) for o in opts.split(",") if o)


def spec_text(workload: str, opts: dict[str, str], smoke: bool = False) -> str:
    text = (BENCH / "specs" / f"{workload}.train").read_text()
    if smoke and workload == "lstm":
        text = text.replace("f32[32, 8]", f"f32[{SMOKE_STEPS}, 8]")
    if "beam" in opts:
        text = text.replace("run       { seed = 0 }", f"run       {{ seed = 0, beam = {int(opts['beam'])} }}")
    return text


def build_trainc(workload: str, x, y, opts, smoke: bool = False):
    from tinygrad import Tensor

    from trainc.compiler import analyze
    from trainc.compiler.lower import lower

    path = str(BENCH / "specs" / f"{workload}.train")
    spec = analyze(spec_text(workload, opts, smoke), path)
    n = len(x) - N_VAL
    program = lower(spec, x[:n], y[:n], x[n:], y[n:], n_classes=N_CLASSES)

    def step(idx: np.ndarray) -> None:  # what runtime/loop.py does per step: host arrays in, no new tensors
        program.step([idx], LR)

    if opts.get("feed") == "tensor":  # the lever off: new index and lr tensors every step, as the loop did before

        def step(idx: np.ndarray) -> None:  # noqa: F811
            program.step([Tensor(idx)], Tensor([LR], dtype="float32"))

    def last_loss(idx: np.ndarray) -> float:
        return float(program.train_step(Tensor(idx), Tensor([LR], dtype="float32")).numpy())

    return step, lambda: program.train_acc.numpy(), last_loss


def build_hand(workload: str, x, y, opts, smoke: bool = False):
    from tinygrad import Tensor

    import hand

    jitted = hand.build(workload, x[:len(x) - N_VAL], y[:len(y) - N_VAL], SEED, LR)
    state = {}

    def step(idx: np.ndarray) -> None:
        state["loss"] = jitted(Tensor(idx))

    return step, lambda: state["loss"].numpy(), lambda idx: float(jitted(Tensor(idx)).numpy())


def build_torch(workload: str, x, y, opts, smoke: bool = False):
    import torch

    import torch_ref

    if "threads" in opts:
        torch.set_num_threads(int(opts["threads"]))
    fn = torch_ref.build(workload, x[:len(x) - N_VAL], y[:len(y) - N_VAL], SEED, LR)
    state = {}

    def step(idx: np.ndarray) -> None:
        state["loss"] = fn(idx)

    return step, lambda: float(state["loss"]), lambda idx: float(fn(idx))


def kernel_counter(base: str):
    if base == "torch":
        return None
    from tinygrad.helpers import GlobalCounters

    return lambda: GlobalCounters.kernel_count


def child(cfg: dict) -> dict:
    """Build, two steps (TinyJit compiles, then captures), warm-up, one step read back (the loss every variant
    must agree on), then `blocks` timed blocks of steps, one sync per block, each about `block_s` seconds."""
    workload, variant, smoke = cfg["workload"], cfg["variant"], cfg.get("smoke", False)
    base, opts = parse_variant(variant)
    x, y = make_data(workload, smoke)
    order = batches(len(x) - N_VAL, WORKLOADS[workload]["batch"])
    t_data = time.perf_counter()

    if opts.get("gather") == "fused":  # read by trainc's lowering when it is imported
        os.environ["TRAINC_GATHER"] = "fused"
    if opts.get("progcache") == "0":
        os.environ["TRAINC_PROGRAM_CACHE"] = "0"
    if opts.get("progcache") == "1":  # trainc's kernel program cache, for a hand-written loop
        from trainc.compiler.lower import adapt

        adapt.program_cache()
    if opts.get("threads") == "1" and base == "trainc":  # the lever off: kernel pieces one after another
        os.environ["TRAINC_CPU_THREADS"] = "0"
    if opts.get("threads") == "2" and base == "hand":  # trainc's adapter under the hand-written loop
        from trainc.compiler.lower import adapt

        adapt.cpu_threads()
    build = {"trainc": build_trainc, "hand": build_hand, "torch": build_torch}[base]
    step, sync, last_loss = build(workload, x, y, opts, smoke)
    t_built = time.perf_counter()
    step(next(order))
    sync()
    t_first = time.perf_counter()
    step(next(order))  # TinyJit captures the step on its second call: from here on, replays
    sync()
    t_ready = time.perf_counter()
    t = time.perf_counter()
    for _ in range(cfg["warmup"]):
        step(next(order))
    sync()
    one = (time.perf_counter() - t) / max(cfg["warmup"], 1)
    count = kernel_counter(base)
    before = count() if count else 0
    loss = last_loss(next(order))  # after 3 + warmup steps
    kernels = count() - before if count else None

    block = max(1, round(cfg["block_s"] / max(one, 1e-4)))
    per_step, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for _ in range(cfg["blocks"]):
        t = time.perf_counter()
        for _ in range(block):
            step(next(order))
        sync()
        per_step.append((time.perf_counter() - t) / block * 1e3)
    wall = time.perf_counter() - wall0
    cores = (time.process_time() - cpu0) / wall
    return {"workload": workload, "variant": variant, "ms_blocks": per_step, "ms": statistics.median(per_step),
            "cpu_ms": (time.process_time() - cpu0) / (block * cfg["blocks"]) * 1e3, "block": block,
            "build_s": t_built - t_data, "first_step_s": t_first - t_data, "ready_s": t_ready - t_data,
            "kernels": kernels, "cores": cores, "loss": loss, "threads": threads_of(base, opts),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def threads_of(base: str, opts: dict[str, str]) -> int:
    """Threads that run the step's arithmetic: torch's intra-op pool; for tinygrad, the pieces a large kernel is
    split in (NUM_CPU_THREADS) when they run at once (trainc's adapter), else 1."""
    if base == "torch":
        import torch

        return torch.get_num_threads()
    from tinygrad.helpers import NUM_CPU_THREADS

    parallel = opts.get("threads", "2" if base == "trainc" else "1") != "1"
    return NUM_CPU_THREADS.value if parallel else 1


def parallel_speedup(seconds: float = 0.2) -> float:
    """How much faster two threads finish two GIL-free jobs than one thread does: ~2 with two free cores, ~1
    when other processes hold one. The ceiling, at that moment, for any use of the second core."""
    import hashlib
    import threading

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


# ---------------------------------------------------------------------------------------------
# Child: the compiler's own costs (lint, parse + check + lower)
# ---------------------------------------------------------------------------------------------


def lint_spec_text(lines: int = 300) -> str:
    """A valid spec of about `lines` lines: a deep model of dense blocks, every section present."""
    head = ["# generated by bench/run.py: a 300-line spec for timing `trainc lint`", "",
            "data {", '  source    = npz("data/wide.npz")', "  split     = { train = 0.8, val = 0.2 }",
            "  normalize = standard", "  batch     = 64", "}", "", "model {", "  input x: f32[64]",
            "  block mlp(width) { dense(width, init = he) -> relu -> dropout(0.1) }", "  h0 = x -> mlp(32)"]
    tail = ["  logits = LAST -> dense(10)", "}", "", "loss      = cross_entropy(logits, target, smoothing = 0.05)",
            "optimizer = adamw(lr = 3e-3, weight_decay = 0.01)", "schedule  = warmup(50 steps) then cosine(to = 1e-5)",
            "", "regularization {", "  l2             = 1e-4", "  clip_grad_norm = 1.0", "}", "",
            "stop {", "  max   = 30 epochs", "  early = plateau(val.loss, patience = 5, restore_best = true)",
            "  when  = val.accuracy >= 0.99", "}", "", "metrics = [accuracy]", "run { seed = 0 }"]
    body = [f"  h{i} = h{i - 1} -> mlp(32)" + ("   # layer " + str(i) if i % 10 == 0 else "")
            for i in range(1, lines - len(head) - len(tail) + 1)]
    return "\n".join(head + body + tail).replace("LAST", f"h{len(body)}") + "\n"


def child_compiler(cfg: dict) -> dict:
    """Parse + check + lower of examples/digits.train and its first step; `trainc lint` in process on a
    300-line spec. A fresh process: the first parse includes building the parser."""
    out, repeats = {}, cfg["repeats"]

    def ms(t: float) -> float:
        return (time.perf_counter() - t) * 1e3

    t = time.perf_counter()
    from trainc.compiler import analyze, lint

    out["compiler.import_ms"] = ms(t)
    path = ROOT / "examples" / "digits.train"
    digits = path.read_text()
    t = time.perf_counter()
    spec = analyze(digits, str(path))
    out["digits.parse_check_first_ms"] = ms(t)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        analyze(digits, str(path))
        times.append(ms(t))
    out["digits.parse_check_ms"] = statistics.median(times)

    from trainc.runtime.data import load_data

    t = time.perf_counter()
    ds = load_data(spec.data, path.parent, spec.run.seed)
    out["digits.load_data_ms"] = ms(t)
    t = time.perf_counter()
    from trainc.compiler.lower import lower

    out["digits.import_tinygrad_ms"] = ms(t)

    def lower_once():
        return lower(spec, ds.x_train, ds.y_train, ds.x_val, ds.y_val, n_classes=ds.n_classes)

    # the first lowering compiles the few kernels that fill the state with zeros; later ones reuse them, so
    # they time the lowering alone (the step's kernels are compiled by its first call, below)
    t = time.perf_counter()
    program = lower_once()
    out["digits.lower_first_ms"] = ms(t)
    times = []
    for _ in range(max(3, repeats // 4)):
        t = time.perf_counter()
        lower_once()
        times.append(ms(t))
    out["digits.lower_ms"] = statistics.median(times)
    out["digits.parse_check_lower_ms"] = out["digits.parse_check_first_ms"] + out["digits.lower_ms"]

    from tinygrad import Tensor

    def step():
        program.step([Tensor(np.arange(spec.data.batch, dtype=np.int32))], Tensor([1e-3], dtype="float32"))
        program.train_acc.numpy()

    t = time.perf_counter()
    step()
    out["digits.first_step_s"] = ms(t) / 1e3
    t = time.perf_counter()
    step()
    out["digits.capture_step_s"] = ms(t) / 1e3

    text = lint_spec_text()
    out["lint.lines"] = text.count("\n")
    t = time.perf_counter()
    problems = lint(text, "wide.train")
    out["lint.first_ms"] = ms(t)
    assert not problems, [str(p) for p in problems]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        lint(text, "wide.train")
        times.append(ms(t))
    out["lint.in_process_ms"] = statistics.median(times)
    return out


# ---------------------------------------------------------------------------------------------
# Parent: processes, rounds, the table and the JSON
# ---------------------------------------------------------------------------------------------


def run_child(cfg: dict, cache_db: Path | None, timeout: float) -> dict:
    env = dict(os.environ)
    if cache_db is not None:
        env["CACHEDB"] = str(cache_db)
    cmd = [sys.executable, str(BENCH / "run.py"), "--child", json.dumps(cfg)]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(BENCH))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if p.returncode != 0:
        return {"error": (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def have_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def lint_cold(repeats: int) -> float:
    """Seconds for `trainc lint` on the generated 300-line spec as a fresh command (median)."""
    trainc = Path(sys.executable).parent / "trainc"
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "wide.train"
        path.write_text(lint_spec_text())
        cmd = [str(trainc), "lint", str(path)] if trainc.exists() else [sys.executable, "-m", "trainc.cli", "lint",
                                                                        str(path)]
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if p.returncode != 0:
                raise RuntimeError(f"trainc lint failed: {p.stderr.strip()}")
    return statistics.median(times)


def summarise(results: list[dict]) -> dict:
    """Per workload and variant: the median over processes of each process's median ms/step, and the rest."""
    out: dict = {}
    for r in results:
        out.setdefault((r["workload"], r["variant"]), []).append(r)
    figures = {}
    for (wl, var), rs in out.items():
        good = [r for r in rs if "error" not in r]
        key = f"{wl}.{var}"
        if not good:
            figures[f"{key}.error"] = rs[-1]["error"]
            continue
        plain = [r for r in good if not r.get("reused")]  # first steps of plain tinygrad only
        cold = [r for r in plain if r["cold"]]
        warm = [r for r in plain if not r["cold"]]
        figures.update({
            f"{key}.ms_per_step": statistics.median(r["ms"] for r in good),
            f"{key}.ms_runs": [round(r["ms"], 3) for r in good],
            f"{key}.cpu_ms_per_step": statistics.median(r["cpu_ms"] for r in good),
            f"{key}.first_step_cold_s": cold[0]["first_step_s"] if cold else None,
            f"{key}.first_step_warm_s": statistics.median(r["first_step_s"] for r in warm) if warm else None,
            f"{key}.ready_cold_s": cold[0]["ready_s"] if cold else None,
            f"{key}.ready_warm_s": statistics.median(r["ready_s"] for r in warm) if warm else None,
            f"{key}.kernels_per_step": good[0]["kernels"],
            f"{key}.cores": statistics.median(r["cores"] for r in good),
            f"{key}.threads": good[0]["threads"],
            f"{key}.peak_rss_mb": statistics.median(r["rss_mb"] for r in good),
            f"{key}.final_loss": good[0]["loss"],
            f"{key}.processes": len(good),
        })
        if len(plain) < len(good):
            figures[f"{key}.kernels_reused_from_disk"] = True
    return figures


def ratios(figures: dict, workloads) -> None:
    """x hand, x torch (the faster of torch's default threads and one thread) and each lever's speed-up."""
    def ms(wl, var):
        return figures.get(f"{wl}.{var}.ms_per_step")

    for wl in workloads:
        torch = min((v for v in (ms(wl, "torch"), ms(wl, "torch:threads=1")) if v), default=None)
        if torch:
            figures[f"{wl}.torch_best.ms_per_step"] = torch
        if ms(wl, "trainc") and ms(wl, "hand"):
            figures[f"{wl}.ratio_vs_hand"] = ms(wl, "trainc") / ms(wl, "hand")
        if ms(wl, "trainc") and torch:
            figures[f"{wl}.ratio_vs_torch"] = ms(wl, "trainc") / torch
        # torch's fastest single process (its two-thread runs are bimodal here: a process either gets the second
        # vCPU in time or waits at every barrier), against trainc's fastest: the least flattering comparison
        fastest = min((x for v in ("torch", "torch:threads=1") for x in figures.get(f"{wl}.{v}.ms_runs", [])),
                      default=None)
        if fastest and figures.get(f"{wl}.trainc.ms_runs"):
            figures[f"{wl}.ratio_vs_torch_fastest"] = min(figures[f"{wl}.trainc.ms_runs"]) / fastest
        if ms(wl, "hand") and torch:
            figures[f"{wl}.hand_ratio_vs_torch"] = ms(wl, "hand") / torch
        a, b = figures.get(f"{wl}.trainc.final_loss"), figures.get(f"{wl}.hand.final_loss")
        if a is not None and b is not None:
            figures[f"{wl}.loss_diff_vs_hand"] = abs(a - b)
        for lever in LEVERS:
            base = lever.split(":")[0]
            if ms(wl, lever) and ms(wl, base):
                figures[f"{wl}.{lever}.speedup"] = ms(wl, base) / ms(wl, lever)


def fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(figures: dict, workloads, variants) -> str:
    head = ("| workload | variant | ms/step | CPU ms/step | x hand | x torch | first step cold / warm (s) "
            "| kernels/step | cores | peak RSS MB | loss |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for wl in workloads:
        hand, torch = figures.get(f"{wl}.hand.ms_per_step"), figures.get(f"{wl}.torch_best.ms_per_step")
        for var in variants:
            key = f"{wl}.{var}"
            if f"{key}.error" in figures:
                lines.append(f"| {wl} | {var} | error: {figures[key + '.error']} |")
                continue
            ms = figures.get(f"{key}.ms_per_step")
            if ms is None:
                continue
            lines.append(" ".join([
                f"| {wl} | {var} | {ms:.2f} | {figures[key + '.cpu_ms_per_step']:.2f} |",
                f"{fmt(ms / hand if hand else None)} | {fmt(ms / torch if torch else None)} |",
                f"{fmt(figures[key + '.first_step_cold_s'], 1)} / {fmt(figures[key + '.first_step_warm_s'], 1)} |",
                f"{fmt(figures[key + '.kernels_per_step'])} | {fmt(figures[key + '.cores'])} |",
                f"{fmt(figures[key + '.peak_rss_mb'], 0)} | {fmt(figures[key + '.final_loss'], 4)} |"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few minutes: fewer processes, shorter blocks")
    ap.add_argument("--smoke", action="store_true", help="every figure once on small data (seconds; for the tests)")
    ap.add_argument("--levers", action="store_true", help="also measure each lever (gather, BEAM, threads)")
    ap.add_argument("--workloads", default="mlp,cnn,lstm", help="comma-separated: mlp, cnn, lstm")
    ap.add_argument("--variants", default=None, help="comma-separated, e.g. trainc,hand,trainc:beam=2 (default: "
                    + ",".join(VARIANTS) + ")")
    ap.add_argument("--rounds", type=int, default=None, help="processes per variant")
    ap.add_argument("--warm", action="store_true", help="keep the kernel caches earlier runs left (no cold process)")
    ap.add_argument("--timeout", type=float, default=1200.0, help="seconds before a process is given up")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        cfg = json.loads(args.child)
        print(json.dumps(child_compiler(cfg) if cfg["workload"] == "compiler" else child(cfg)))
        return 0

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    m = MODES[mode]
    rounds = {wl: args.rounds or n for wl, n in m["rounds"].items()}
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        ap.error(f"unknown workload {unknown[0]!r}: choose from {', '.join(WORKLOADS)}")
    torch = have_torch()
    variants = args.variants.split(",") if args.variants else [
        v for v in VARIANTS if torch and (mode != "smoke" or v == "torch") or not v.startswith("torch")]
    if args.levers:
        variants += [v for v in LEVERS if v not in variants]
    cache = Path(tempfile.gettempdir()) / f"trainc-bench-{os.getuid()}"  # one kernel cache (CACHEDB) per variant
    cache.mkdir(exist_ok=True)
    load_before = os.getloadavg()[0]
    t_all = time.perf_counter()
    speedups = [parallel_speedup()]

    results = []
    for r in range(max(rounds[wl] for wl in workloads)):
        for wl in workloads:
            for var in variants[r % len(variants):] + variants[:r % len(variants)]:  # rotate the order each round
                base = var.split(":")[0]
                if r >= min(rounds[wl], SLOW.get((wl, base), rounds[wl])) or mode == "smoke" and r and base != "trainc":
                    continue  # smoke: only trainc runs again, for its warm first step
                t = time.perf_counter()
                db = cache / f"{wl}-{var.replace(':', '-').replace('=', '').replace(',', '-')}-{mode == 'smoke'}.db"
                if r == 0 and wl in m["cold"] and not args.warm:  # an empty kernel cache: generate, compile, search
                    for f in cache.glob(db.name + "*"):
                        f.unlink()
                cold = not db.exists() if base != "torch" else r == 0
                reused = (wl, base) in SLOW and mode != "full"
                child_var = var + ("," if ":" in var else ":") + "progcache=1" if reused else var
                cfg = {"workload": wl, "variant": child_var, "blocks": m["blocks"], "warmup": m["warmup"],
                       "block_s": m["block_s"], "smoke": mode == "smoke"}
                res = run_child(cfg, db if base != "torch" else None, args.timeout)
                res.update({"workload": wl, "variant": var, "cold": cold, "reused": reused})
                results.append(res)
                status = res.get("error") or f"{res['ms']:.2f} ms/step, first step {res['first_step_s']:.1f} s"
                print(f"round {r + 1}/{rounds[wl]} {wl:4s} {var:22s} {'cold' if cold else 'warm'} {status} "
                      f"({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        speedups.append(parallel_speedup())

    figures = summarise(results)
    ratios(figures, workloads)
    compiler = run_child({"workload": "compiler", "repeats": 5 if mode == "smoke" else 20},
                         cache / f"compiler-{mode == 'smoke'}.db", args.timeout)
    figures.update(compiler if "error" not in compiler else {"compiler.error": compiler["error"]})
    figures["lint.cold_s"] = lint_cold(1 if mode == "smoke" else 5)
    figures.update({"meta.mode": mode, "meta.rounds": [rounds[wl] for wl in workloads], "meta.cpus": os.cpu_count(),
                    "meta.load_before": load_before, "meta.load_after": os.getloadavg()[0],
                    "meta.two_thread_speedup": statistics.median(speedups),
                    "meta.seconds": time.perf_counter() - t_all, "meta.python": sys.version.split()[0]})

    print(table(figures, workloads, variants))
    print()
    print(f"lint, {figures.get('lint.lines')}-line spec: {fmt(figures.get('lint.in_process_ms'))} ms in process, "
          f"{fmt(figures['lint.cold_s'], 3)} s as a command")
    d = {k.split(".", 1)[1]: fmt(v) for k, v in figures.items() if k.startswith("digits.")}
    print(f"digits.train: parse + check {d.get('parse_check_first_ms')} ms (the first, building the parser; then "
          f"{d.get('parse_check_ms')} ms) + lower {d.get('lower_ms')} ms = {d.get('parse_check_lower_ms')} ms; "
          f"first step {d.get('first_step_s')} s, second (capture) {d.get('capture_step_s')} s")
    print(f"load average {load_before:.2f} before, {figures['meta.load_after']:.2f} after, on {os.cpu_count()} cores "
          f"(two threads ran {figures['meta.two_thread_speedup']:.2f}x one: the parallelism left to us); "
          f"{figures['meta.seconds']:.0f} s")
    print(json.dumps({k: (round(v, 5) if isinstance(v, float) else v) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
