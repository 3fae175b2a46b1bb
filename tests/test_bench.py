"""The benchmark harness (bench/run.py) and the speed levers it measures. Timings are never asserted here:
they belong to the benchmark's own output (bench/README.md)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from trainc.compiler import analyze, lint

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
sys.path.insert(0, str(BENCH))

import run as bench  # noqa: E402  (bench/run.py)
from init import initial_weights  # noqa: E402


def test_smoke_prints_the_table_and_every_figure():
    p = subprocess.run([sys.executable, str(BENCH / "run.py"), "--smoke", "--workloads", "mlp"], capture_output=True,
                       text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.startswith("| workload | variant | ms/step"))
    rows = {ln.split("|")[2].strip() for ln in lines[header + 2:] if ln.startswith("| mlp |")}
    assert {"trainc", "hand"} <= rows
    figures = json.loads(lines[-1])
    want = ["mlp.ratio_vs_hand", "mlp.trainc.ms_per_step", "mlp.hand.ms_per_step", "mlp.trainc.first_step_warm_s",
            "mlp.trainc.kernels_per_step", "mlp.trainc.cores", "mlp.trainc.peak_rss_mb", "mlp.loss_diff_vs_hand",
            "lint.in_process_ms", "lint.cold_s", "digits.parse_check_ms", "digits.lower_ms",
            "digits.parse_check_lower_ms", "digits.first_step_s", "meta.load_before", "meta.two_thread_speedup"]
    if "torch" in rows:
        want += ["mlp.ratio_vs_torch", "mlp.torch.ms_per_step"]
    assert [k for k in want if figures.get(k) is None] == []
    assert figures["lint.lines"] == 300
    assert figures["mlp.loss_diff_vs_hand"] < 1e-3  # the same weights, batches and math: the same loss


@pytest.mark.parametrize("workload", ["mlp", "cnn", "lstm"])
def test_spec_lints_clean(workload):
    path = BENCH / "specs" / f"{workload}.train"
    assert lint(path.read_text(), str(path)) == []


def test_generated_lint_spec_is_300_clean_lines():
    text = bench.lint_spec_text()
    assert text.count("\n") == 300 and lint(text, "wide.train") == []


@pytest.mark.parametrize("workload", ["mlp", "cnn", "lstm"])
def test_hand_written_weights_are_trainc_weights(workload):
    """bench/init.py repeats trainc's draws: both variants start from the same point, so their losses agree."""
    from trainc.compiler.lower import lower

    x, y = bench.make_data(workload, smoke=True)
    spec = analyze(bench.spec_text(workload, {}, smoke=True), str(BENCH / "specs" / f"{workload}.train"))
    program = lower(spec, x[:-bench.N_VAL], y[:-bench.N_VAL], x[-bench.N_VAL:], y[-bench.N_VAL:], n_classes=10)
    got = [t.numpy() for t in program.state().values()]
    want = list(initial_weights(workload, bench.SEED).values())
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.astype(np.float32), rtol=0, atol=0)


def test_run_beam_is_a_run_setting():
    spec = analyze(bench.spec_text("mlp", {"beam": "2"}), "mlp.train")
    assert spec.run.beam == 2
    assert analyze(bench.spec_text("mlp", {}), "mlp.train").run.beam == 0
    assert [d.code for d in lint(bench.spec_text("mlp", {}).replace("seed = 0 }", "seed = 0, beam = 99 }"),
                                 "mlp.train")] == ["E304"]


PROGRAM = textwrap.dedent("""
    import json
    from trainc.compiler.lower.adapt import program_cache
    program_cache()
    import tinygrad.codegen as codegen
    generated, original = [], codegen.do_to_program
    codegen.do_to_program = lambda *a: generated.append(1) or original(*a)
    from tinygrad import Tensor
    value = ((Tensor.arange(12).reshape(3, 4).float() * 3 + 1).exp2().sum() / 7).numpy()
    print(json.dumps({"generated": len(generated), "value": float(value)}))
""")


def test_program_cache_skips_code_generation_in_a_later_process(tmp_path):
    env = dict(os.environ, CACHEDB=str(tmp_path / "cache.db"), PARALLEL="0")

    def once(**extra):
        p = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120,
                           env={**env, **extra})
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    first, second, off = once(), once(), once(TRAINC_PROGRAM_CACHE="0")
    assert first["generated"] > 0 and second["generated"] == 0 and off["generated"] > 0
    assert first["value"] == second["value"] == off["value"]


def test_gather_knob_gives_the_same_losses():
    """TRAINC_GATHER=fused (the benchmark's lever off) changes the kernels, not the numbers."""
    script = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {str(BENCH)!r})
        import run
        cfg = {{"workload": "mlp", "variant": sys.argv[1], "blocks": 1, "warmup": 1, "block_s": 0.01,
               "smoke": True}}
        print(json.dumps(run.child(cfg)))
    """)
    out = {}
    for variant in ("trainc", "trainc:gather=fused"):
        p = subprocess.run([sys.executable, "-c", script, variant], capture_output=True, text=True, timeout=300,
                           cwd=BENCH)
        assert p.returncode == 0, p.stderr[-2000:]
        out[variant] = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["trainc"]["loss"] == pytest.approx(out["trainc:gather=fused"]["loss"], rel=1e-5)
    code = "from trainc.compiler.lower.adapt import GATHER_KERNEL; print(GATHER_KERNEL)"
    read = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "TRAINC_GATHER": v}).stdout.strip() for v in ("kernel", "fused")]
    assert read == ["True", "False"]


THREADS = textwrap.dedent("""
    import hashlib, json, threading
    import numpy as np
    from trainc.compiler.lower.adapt import cpu_threads
    cpu_threads()
    from tinygrad import Tensor
    rng = np.random.default_rng(0)
    a, b = (Tensor(rng.standard_normal(s, dtype=np.float32)) for s in ((256, 784), (784, 256)))
    for _ in range(3):  # the first run is serial and timed; the kernel is big enough to be split and run in parallel
        out = (a @ b).relu().sum(axis=0).numpy()
    workers = sum(t.name == "trainc-cpu" for t in threading.enumerate())
    print(json.dumps({"digest": hashlib.sha256(out.tobytes()).hexdigest(), "workers": workers}))
""")


def test_cpu_threads_runs_kernel_pieces_on_workers_with_identical_results(tmp_path):
    def once(**extra):
        env = {**os.environ, "CACHEDB": str(tmp_path / "cache.db"), "NUM_CPU_THREADS": "2", **extra}
        p = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0, p.stderr[-2000:]
        return json.loads(p.stdout.strip().splitlines()[-1])

    on, off = once(), once(TRAINC_CPU_THREADS="0")
    assert on["workers"] == 1 and off["workers"] == 0
    assert on["digest"] == off["digest"]
