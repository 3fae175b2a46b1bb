"""Data files as untrusted, possibly huge input (runtime/data.py): only regular files are read, CSVs are streamed,
and a diagnostic quotes a bounded amount of a file.

Tables: every data source kind (csv, npz, text, series) against every kind of path that is no data file (FIFO,
folder, device, kernel file, a link to one, a name too long or with a NUL, a missing file); files whose content
must not be quoted whole; CSVs read in the smallest chunks and blocks against the defaults (the same result,
the same first error); npz archives whose headers promise too much. Then the memory of loading a generated
30 MB CSV, in a fresh process, and the smoke run of bench/inputs.py.
"""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import zipfile

import numpy as np
import pytest

from trainc.compiler import ir
from trainc.runtime import data as data_module
from trainc.runtime import tables  # the streaming reads: CHUNK_CELLS, BLOCK_BYTES
from trainc.runtime.data import DataError, load_data

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPAN = ir.Span("t.train", 3, 5, 3, 40)
SPLIT = ir.Span("t.train", 4, 5, 4, 30)
ARGS = {"csv": {"target": "y"}, "npz": {}, "text": {"window": 2}, "series": {"column": "v", "window": 2}}


def spec_data(kind: str, path: str, **args) -> ir.Data:
    source = ir.Source(kind=kind, path=path, args=tuple({**ARGS[kind], **args}.items()), span=SPAN)
    task = ir.Task.regression if kind == "series" else ir.Task.classification
    return ir.Data(source=source, split=ir.Split(train=0.5, val=0.5, stratify=False, span=SPLIT), train=None,
                   val=None, normalize="standard", target_normalize="none", batch=2, shuffle=True, task=task,
                   span=SPAN)


def outcome(data: ir.Data, base: pathlib.Path):
    """("ok", dataset) or ("error", diagnostic), read in a thread: a read that blocks fails the test, not hangs it."""
    result = []

    def load():
        try:
            result.append(("ok", load_data(data, base, seed=0)))
        except DataError as e:
            result.append(("error", e.diagnostic))
        except Exception as e:  # noqa: BLE001 - what should have been a diagnostic, for the assertion to show
            result.append(("crash", f"{type(e).__name__}: {e}"))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(30)
    assert result, "the read blocked"
    return result[0]


def error(data: ir.Data, base: pathlib.Path):
    kind, value = outcome(data, base)
    assert kind == "error", f"expected a diagnostic, got {kind}: {value}"
    return value


# ---------------------------------------------------------------------------------------------
# Paths that name no data file: every source kind refuses them with a diagnostic at the source
# ---------------------------------------------------------------------------------------------


def _fifo(folder: pathlib.Path) -> str:
    os.mkfifo(folder / "pipe")
    return "pipe"


def _folder(folder: pathlib.Path) -> str:
    (folder / "sub").mkdir()
    return "sub"


def _kernel_link(folder: pathlib.Path) -> str:
    (folder / "link").symlink_to("/proc/self/environ")
    return "link"


def _sys_file(folder: pathlib.Path) -> str:  # a /sys file has a size (4096) but is no data file either
    return next((p for p in ("/sys/kernel/mm/transparent_hugepage/enabled", "/sys/power/state", "/sys/kernel/profiling")
                 if os.path.isfile(p)), "")


# name -> (makes the path in a folder, code, words of the message)
NOT_DATA = {
    "fifo": (_fifo, "E502", ["'pipe'", "not a regular file"]),
    "folder": (_folder, "E502", ["'sub'", "not a regular file"]),
    "device": (lambda folder: "/dev/zero", "E502", ["'/dev/zero'", "not a regular file"]),
    "kernel file": (lambda folder: "/proc/self/environ", "E502", ["'/proc/self/environ'", "kernel's interface"]),
    "link to a kernel file": (_kernel_link, "E502", ["'link'", "kernel's interface"]),
    "sys file": (_sys_file, "E502", ["not a regular file", "kernel's interface"]),
    "name too long": (lambda folder: "a" * 300 + ".csv", "E502", ["cannot open data file", "name is too long"]),
    "NUL in the name": (lambda folder: "a\0b.csv", "E502", ["cannot open data file", "NUL character"]),
    "missing": (lambda folder: "nope.csv", "E501", ["'nope.csv' not found"]),
}


@pytest.mark.parametrize("kind", list(ARGS))
@pytest.mark.parametrize("case", list(NOT_DATA))
def test_only_regular_files_are_read(tmp_path, kind, case):
    make, code, words = NOT_DATA[case]
    path = make(tmp_path)
    if not path or path.startswith("/") and not os.path.exists(path):
        pytest.skip(f"{case}: no such file on this machine")
    d = error(spec_data(kind, path), tmp_path)
    assert (d.code, d.span) == (code, SPAN), d.message
    assert all(w in d.message for w in words), d.message
    assert "secret" not in d.message.lower() and len(d.message) < 600


# ---------------------------------------------------------------------------------------------
# What a diagnostic quotes of a file is bounded
# ---------------------------------------------------------------------------------------------

SECRET = "SECRET-" + "s" * 20  # placed past every limit: a message that shows it quotes too much
LONG = "x" * 5000


def npz_bytes(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# name -> (file name, content, source kind, extra args, code, words of the message or help)
QUOTED = {
    "a header that is one long line": (
        "d.csv", f"A={LONG}{SECRET}\n1\n", "csv", {}, "E503", ["its columns are not listed"]),
    "control characters in the header": (
        "d.csv", "A=1\x00B=2,C\n1,2\n", "csv", {}, "E503", ["its columns are not listed"]),
    "many columns": (
        "d.csv", ",".join(f"c{i}" for i in range(1000)) + "\n" + ",".join("1" * 1000) + "\n", "csv", {}, "E503",
        ["'c0', 'c1'", "(1000 in all)"]),
    "a long bad cell": ("d.csv", f"a,y\n{LONG}{SECRET},1\n2,0\n", "csv", {}, "E504", ["line 2, column 'a'", "..."]),
    "a long column name of a bad cell": (
        "d.csv", f"{LONG}{SECRET},y\nx,1\n", "csv", {}, "E504", ["line 2, column 'xxx", "...'"]),
    "a long fractional label": ("d.csv", f"a,y\n1,0.{'5' * 5000}1\n2,0\n", "csv", {}, "E504",
                                ["line 2, column 'y'", "is not a whole number", "..."]),
    "a header of long numbers": ("d.csv", f"{'1' * 5000},2\n3,4\n", "csv", {}, "E502", ["has no header", "..."]),
    "a long duplicate name": (
        "d.csv", f"{LONG}{SECRET},{LONG}{SECRET},y\n1,2,3\n", "csv", {}, "E502", ["twice"]),
    "a series header that is one long line": (
        "s.csv", f"{LONG}{SECRET}\n1\n", "series", {}, "E503", ["its columns are not listed"]),
    "npz arrays with long names": (
        "d.npz", npz_bytes(**{f"{LONG}{SECRET}{i}": np.zeros(2) for i in range(3)}), "npz", {}, "E503",
        ["its arrays are not listed"]),
}


@pytest.mark.parametrize("case", list(QUOTED))
def test_diagnostics_quote_a_bounded_amount_of_the_file(tmp_path, case):
    name, content, kind, args, code, words = QUOTED[case]
    (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    d = error(spec_data(kind, name, **args), tmp_path)
    text = "\n".join([d.message, d.help or "", *d.notes])
    assert d.code == code, text
    assert all(w in text for w in words), text
    assert SECRET not in text and len(text) < 1200, text


# ---------------------------------------------------------------------------------------------
# Streaming: the smallest chunks and blocks give what the defaults give, first error included
# ---------------------------------------------------------------------------------------------

ROWS = "".join(f"{i},{i % 3}.5,{i % 2}\n" for i in range(40))
# name -> (file bytes, code or "ok", words of the message); `ok` cases are compared array by array
STREAMED = {
    "BOM, CRLF, blank lines, quoted new lines, UTF-8": (
        "\ufeffa,b,y\r\n".encode() + ROWS.replace("\n", "\r\n").encode()
        + b'\r\n\r\n"7\n",8,\xc3\xa9\r\n9,1,\xc3\xa9\r\n', "ok", []),
    "a ragged row after a quoted new line": (
        b'a,b,y\n"1\n2",3,0\n' + ROWS.encode() + b"4,5\n", "E502", ["line 44: found 2 fields, expected 3"]),
    "a bad cell, then a ragged row": (b"a,b,y\n1,x,0\n" + ROWS.encode() + b"1,2\n", "E502", ["line 43"]),
    "a ragged row, then a byte that is not UTF-8": (
        b"a,b,y\n1,2\n" + ROWS.encode() + b"\xff\n", "E502", ["not UTF-8", "at byte 360"]),  # 10 + 350
    "an unknown column, then a ragged row": (b"a,b,z\n" + ROWS.encode() + b"1,2\n", "E502", ["line 42"]),
    "a header of numbers and a bad cell": (b"1,2,3\n1,x,0\n" + ROWS.encode(), "E502", ["has no header"]),
    "a bad feature after a bad label": (
        b"a,b,y\n" + ROWS.encode() + b"1,2,0.5\n3,x,1\n", "E504", ["line 43, column 'b'", "found 'x'"]),
    "a missing label, row after row": (b"a,b,y\n" + ROWS.encode() + b"1,2,\n3,4,nan\n", "E504", ["line 42",
                                                                                                "missing label"]),
    "a feature beyond float32": (b"a,b,y\n" + ROWS.encode() + b"1e39,2,0\n", "E504", ["line 42", "float32"]),
}


@pytest.mark.parametrize("case", list(STREAMED))
def test_streaming_in_any_chunks_reads_the_same(tmp_path, monkeypatch, case):
    content, code, words = STREAMED[case]
    (tmp_path / "d.csv").write_bytes(content)
    whole = outcome(spec_data("csv", "d.csv"), tmp_path)
    monkeypatch.setattr(tables, "CHUNK_CELLS", 1)  # a row per chunk
    monkeypatch.setattr(tables, "BLOCK_BYTES", 1)  # a byte per block: every line end and character split
    pieces = outcome(spec_data("csv", "d.csv"), tmp_path)
    assert whole[0] == pieces[0] == ("ok" if code == "ok" else "error")
    if code == "ok":
        for name in ("x_train", "y_train", "x_val", "y_val"):
            np.testing.assert_array_equal(getattr(whole[1], name), getattr(pieces[1], name))
        assert whole[1].classes == pieces[1].classes == ("0", "1", "é")
        return
    assert whole[1] == pieces[1]
    assert whole[1].code == code and all(w in whole[1].message for w in words), whole[1].message


def test_csv_features_are_float32_and_labels_compact(tmp_path):
    rows = "".join(f"{i * 0.1},{'a-rather-long-class-name-' + str(i % 3)}\n" for i in range(30))
    (tmp_path / "d.csv").write_text("f,y\n" + rows)
    raw = data_module._read(spec_data("csv", "d.csv").source, tmp_path, ir.Task.classification, compact=True)
    assert raw.x.dtype == np.float32 and raw.y.dtype == np.int32 and len(raw.labels) == 3
    texts = data_module._read(spec_data("csv", "d.csv").source, tmp_path, ir.Task.classification)
    assert texts.labels is None and texts.y.tolist()[:4] == [f"a-rather-long-class-name-{i}" for i in (0, 1, 2, 0)]


# ---------------------------------------------------------------------------------------------
# npz: sizes are checked from the headers before any array is read
# ---------------------------------------------------------------------------------------------


def npz_claiming(shape: tuple[int, ...]) -> bytes:
    """An archive whose 'x' header promises `shape` of float64 but holds 16 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(16))
        z.writestr("y.npy", npz_member(np.zeros(2)))
    return buf.getvalue()


def npz_member(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# name -> (file bytes, physical memory to pretend (None: the machine's), code, words)
NPZ = {
    "a header promising 8 TB": (npz_claiming((10 ** 12,)), None, "E502", ["claims 8,000,000,000,000 bytes"]),
    "arrays beyond the memory": (npz_bytes(x=np.zeros((64, 4)), y=np.zeros(64)), 1024, "E502",
                                 ["take 0.0 GB to load", "more than this machine's"]),
    "a single array": (npz_member(np.zeros((4, 2))), None, "E502", ["holds a single array"]),
    "an object array": (npz_bytes(x=np.array([[1], "a"], dtype=object), y=np.zeros(2)), None, "E502",
                        ["cannot read 'd.npz' as an .npz archive"]),
}


@pytest.mark.parametrize("case", list(NPZ))
def test_npz_sizes_are_checked_before_reading(tmp_path, monkeypatch, case):
    content, memory, code, words = NPZ[case]
    (tmp_path / "d.npz").write_bytes(content)
    if memory is not None:
        monkeypatch.setattr(data_module, "_memory_bytes", lambda: memory)
    d = error(spec_data("npz", "d.npz"), tmp_path)
    assert d.code == code and all(w in d.message + "".join(d.notes) for w in words), (d.message, d.notes)


def test_npz_values_beyond_float32_are_refused(tmp_path):
    (tmp_path / "d.npz").write_bytes(npz_bytes(x=np.array([[1.0], [1e39], [2.0], [3.0]]), y=np.arange(4) % 2))
    d = error(spec_data("npz", "d.npz"), tmp_path)
    assert d.code == "E504" and "array 'x' row 1" in d.message and "float32" in d.message


# ---------------------------------------------------------------------------------------------
# Memory: a 30 MB CSV loads within 3x its size, measured in a fresh process
# ---------------------------------------------------------------------------------------------

MEASURE = textwrap.dedent("""
    import json, pathlib, resource, sys
    from trainc.compiler import ir
    from trainc.runtime.data import load_data
    span = ir.Span("t.train", 1, 1, 1, 2)
    source = ir.Source(kind="csv", path=sys.argv[1], args=(("target", "label"),), span=span)
    data = ir.Data(source=source, split=ir.Split(train=0.8, val=0.2, stratify=True, span=span), train=None,
                   val=None, normalize="standard", target_normalize="none", batch=64, shuffle=True,
                   task=ir.Task.classification, span=span)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ds = load_data(data, pathlib.Path(sys.argv[1]).parent, 0)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grown_kb": after - before, "rows": len(ds.x_train) + len(ds.x_val)}))
""")


def test_a_big_csv_loads_within_three_times_its_size(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    from inputs import write_csv  # bench/inputs.py: the benchmark's generated CSV

    size = write_csv(tmp_path / "big.csv", 30)
    p = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path / "big.csv")], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["rows"] > 100_000
    assert result["grown_kb"] * 1024 < 3 * size, result  # the whole file read at once took 17x


def test_bench_inputs_quick_prints_its_table(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "bench" / "inputs.py"), "--quick"], capture_output=True,
                       text=True, timeout=300, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert any(ln.startswith("| 0.1mb | ") for ln in lines) and any(ln.startswith("| 2mb | 2.0 | ") for ln in lines)
    figures = json.loads(lines[-1])
    assert figures["spec.0.1mb"]["rc"] == 0 and figures["csv.2mb"]["ratio"] is not None


# ---------------------------------------------------------------------------------------------
# `trainc predict`'s input arrays (.npy, .npz) get the same checks as every data file
# ---------------------------------------------------------------------------------------------


def npy_claiming(shape: tuple[int, ...]) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return header.getvalue() + bytes(16)


# name -> (file name, makes the file in a folder (None: /dev/zero), code, words; None code: reads (shape))
ARRAYS = {
    "an npy": ("a.npy", lambda p: np.save(p, np.ones((3, 2))), None, (3, 2)),
    "an npz with x": ("a.npz", lambda p: p.write_bytes(npz_bytes(z=np.zeros(1), x=np.ones((5, 2)))), None, (5, 2)),
    "an npz without x: its first": ("a.npz", lambda p: p.write_bytes(npz_bytes(w=np.ones((4, 2)))), None, (4, 2)),
    "a header promising 8 TB": ("a.npy", lambda p: p.write_bytes(npy_claiming((10 ** 12,))), "E502", ["claims"]),
    "an npz promising 8 TB": ("a.npz", lambda p: p.write_bytes(npz_claiming((10 ** 12,))), "E502", ["claims"]),
    "a FIFO": ("a.npy", lambda p: os.mkfifo(p), "E502", ["not a regular file"]),
    "a folder": ("a.npy", lambda p: p.mkdir(), "E502", ["not a regular file"]),
    "a link to the zero device": ("a.npy", lambda p: p.symlink_to("/dev/zero"), "E502", ["not a regular file"]),
    "text": ("a.npz", lambda p: p.write_text("x,y\n1,2\n"), "E502", ["neither an .npy array nor an .npz"]),
    "an object array": ("a.npy", lambda p: np.save(p, np.array([1, "a"], dtype=object)), "E502", ["Python objects"]),
}


@pytest.mark.parametrize("case", list(ARRAYS))
def test_input_arrays_are_read_only_when_they_are_arrays(tmp_path, case):
    name, make, code, want = ARRAYS[case]
    make(tmp_path / name)
    src = ir.Source(kind="npz", path=name, args=(), span=SPAN)
    if code is None:
        assert data_module.read_array(src, tmp_path, "x").shape == want
        return
    with pytest.raises(DataError) as e:
        data_module.read_array(src, tmp_path, "x")
    d = e.value.diagnostic
    assert d.code == code and all(w in d.message for w in want), d.message
