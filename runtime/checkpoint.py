"""Checkpoints: atomic, validated, resumable.

A run directory's checkpoints:

    DIR/checkpoints/step-00000066/model.safetensors      weights and buffers (batchnorm statistics)
                              optimizer.safetensors  optimizer state, step count, the dropout RNG counter
                              state.json             everything else (below); written last: it marks the
                                                     checkpoint complete and holds the files' sha256
    DIR/checkpoints/latest                           the name of the newest complete checkpoint
    DIR/checkpoints/best                             the name of the best one (`keep = best(metric)`)

state.json holds the format version, the epoch and step, the schedule's state, the early-stopping and
divergence-guard state, the numpy RNG state that orders the epochs, the metrics so far, and the hash
of the operative spec it was trained under.

Writes are atomic: a checkpoint is written into a temporary folder, each file flushed with fsync,
then renamed into place, and only then do `latest`/`best` (tiny files, themselves written to a temp
file and renamed) point at it. A kill at any instant leaves the previous checkpoint whole and
pointed at. Checkpoint folders are never changed once written; old ones are pruned after the
pointers moved past them.

Tensors are stored as safetensors written and read here with numpy (no pickle, nothing executed):
the header is checked (size, JSON, dtypes, shapes, offsets covering the file exactly) before any data
is read, and the tensors' names, shapes and dtypes against the model's when the caller knows them.
Every load of a checkpoint's weights, for every command, checks the sha256 that state.json records.
A run directory is untrusted input: every file here is read and written through `rundir` (no link
followed, only regular files read, sizes bounded, temps created O_EXCL), and `root` names the run
directory below which nothing is followed (by default the folder given).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import rundir
from .rundir import RunDirError

FORMAT_VERSION = 1
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
           "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_DIMS = 32
FILES = ("model.safetensors", "optimizer.safetensors")
POINTERS = ("latest", "best")


class CheckpointError(RunDirError):
    """A checkpoint that cannot be used: missing, truncated, corrupted, or not this model's."""


# ---- safetensors, by hand ------------------------------------------------------------------------------


def encode_safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        if a.dtype not in _NAMES:
            raise TypeError(f"cannot store {name} of dtype {a.dtype} in safetensors")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the format aligns the data to 8 bytes
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def _entry(info) -> tuple[np.dtype, tuple[int, ...], int, int] | None:
    """(dtype, shape, start, end) of one header entry, or None when it is malformed."""
    if not isinstance(info, dict) or not isinstance(info.get("dtype"), str) or info["dtype"] not in _DTYPES:
        return None
    shape, offsets = info.get("shape"), info.get("data_offsets")

    def whole(v) -> bool:  # JSON integers >= 0: not true/false, not 1e400
        return isinstance(v, list) and all(type(d) is int and d >= 0 for d in v)

    if not whole(shape) or len(shape) > _MAX_DIMS or not whole(offsets) or len(offsets) != 2:
        return None
    return np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"), tuple(shape), offsets[0], offsets[1]


def _entries(head: bytes, body_len: int, name) -> dict[str, tuple[np.dtype, tuple[int, ...], int, int]]:
    """The validated header: every tensor inside the data, whose length the tensors cover exactly."""
    try:
        header = rundir.parse_json(head, name)
    except RunDirError as e:
        raise CheckpointError(f"{name} has a corrupted header ({str(e).removeprefix(f'{name}: ')})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} has a corrupted header (not a JSON object)")
    out, end_max = {}, 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        entry = _entry(info)
        if entry is None:
            raise CheckpointError(f"{name}: tensor {rundir.quote(key)} has a malformed header entry")
        dtype, shape, start, end = entry
        if not start <= end <= body_len or end - start != math.prod(shape) * dtype.itemsize:
            raise CheckpointError(f"{name}: tensor {rundir.quote(key)} lies outside the file or has the wrong size "
                                  "(truncated or corrupted)")
        out[key], end_max = entry, max(end_max, end)
    if end_max != body_len:
        raise CheckpointError(f"{name}: the header describes {end_max} bytes of data, the file holds {body_len} "
                              "(truncated or corrupted)")
    return out


def _tensors(entries: dict, body) -> dict[str, np.ndarray]:
    body = memoryview(body)
    return {k: np.frombuffer(body[start:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
            for k, (dtype, shape, start, end) in entries.items()}


def decode_safetensors(raw: bytes, name: str = "file") -> dict[str, np.ndarray]:
    """Parse and validate safetensors bytes; CheckpointError on anything malformed."""
    if len(raw) < 8:
        raise CheckpointError(f"{name} is truncated ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > rundir.HEADER_MAX or 8 + n > len(raw):
        raise CheckpointError(f"{name} is truncated or corrupted (header of {n} bytes in a {len(raw)}-byte file)")
    return _tensors(_entries(raw[8:8 + n], len(raw) - 8 - n, name), raw[8 + n:])


def read_safetensors(path: Path, root=None, sha256: str | None = None, expected: dict | None = None,
                     kind: str = "model", limit: int | None = None,
                     checksum_in: str = "state.json") -> dict[str, np.ndarray]:
    """The tensors of a safetensors file under the run directory `root`: the header is validated first (and,
    with `expected` {name: (shape, dtype)}, compared with the model's) before the data is read; with `sha256`
    (recorded in `checksum_in`), the file must match it."""
    path = Path(path)
    with rundir.open_file(path, limit, root) as (f, size):
        if size < 8:
            raise CheckpointError(f"{path} is truncated ({size} bytes)")
        first = f.read(8)
        (n,) = struct.unpack("<Q", first)
        if n > rundir.HEADER_MAX or 8 + n > size:
            raise CheckpointError(f"{path} is truncated or corrupted (header of {n} bytes in a {size}-byte file)")
        head = f.read(n)
        entries = _entries(head, size - 8 - n, path)
        if expected is not None:
            _compare(kind, {k: (shape, dtype.newbyteorder("=")) for k, (dtype, shape, _, _) in entries.items()},
                     expected)
        body = f.read(size - 8 - n)
    if len(head) != n or len(body) != size - 8 - n:
        raise CheckpointError(f"{path} changed while it was read")
    if sha256 is not None and hashlib.sha256(first + head + body).hexdigest() != sha256:
        raise CheckpointError(f"{path} does not match the checksum in {checksum_in} (truncated or corrupted)")
    return _tensors(entries, body)


# ---- atomic writes -------------------------------------------------------------------------------------


def write_file_atomic(path: Path, data: bytes, root=None) -> None:
    """Write to a temp file beside `path`, fsync, rename over it: readers see the old or the new file, whole.
    Nothing below `root` (default: the file's folder) is followed."""
    rundir.write_bytes(path, data, root)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(ckpt_dir: Path, name: str, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
         state: dict, root=None, fault: Callable[[], None] | None = None) -> Path:
    """Write checkpoint `name` under `ckpt_dir` atomically; returns its folder. `state` must be JSON-able.
    `fault`, when given, is called after each tensor file is written (tests kill the process there: see
    loop._fault_in_save)."""
    ckpt_dir = Path(ckpt_dir)
    root = Path(root) if root is not None else ckpt_dir
    rundir.make_dirs(ckpt_dir, root)
    final = ckpt_dir / name
    tmp = ckpt_dir / f".{name}.tmp-{os.getpid()}"
    rundir.remove_folder(tmp, root)  # a leftover of this pid
    rundir.make_dirs(tmp, root)
    try:
        files = {"model.safetensors": encode_safetensors(model), "optimizer.safetensors": encode_safetensors(optimizer)}
        for fname, data in files.items():
            rundir.create(tmp / fname, data, root)
            if fault is not None:
                fault()
        body = {"format_version": FORMAT_VERSION, **state, "files": {k: _sha256(v) for k, v in files.items()}}
        rundir.create(tmp / "state.json", (json.dumps(body, indent=1, allow_nan=False) + "\n").encode(), root)
        if rundir.is_folder(final, root):  # the same step again (after a roll-back): never change a folder in place
            old = ckpt_dir / f".{name}.old-{os.getpid()}"
            rundir.rename(final, old, root)
            rundir.rename(tmp, final, root)
            rundir.remove_folder(old, root)
        else:
            rundir.rename(tmp, final, root)
    except BaseException:
        rundir.remove_folder(tmp, root)
        raise
    return final


def point(ckpt_dir: Path, pointer: str, name: str, root=None) -> None:
    """Make `latest` or `best` name checkpoint `name`."""
    write_file_atomic(Path(ckpt_dir) / pointer, (name + "\n").encode(), root if root is not None else ckpt_dir)


def pointed(ckpt_dir: Path, pointer: str, root=None) -> str | None:
    """The checkpoint folder `latest` or `best` names, None when there is no such pointer."""
    path = Path(ckpt_dir) / pointer
    try:
        raw = rundir.read_bytes(path, rundir.POINTER_MAX, root if root is not None else ckpt_dir)
    except rundir.Missing:
        return None
    name = raw.decode("ascii", "replace").strip()
    if not rundir.STEP.fullmatch(name):
        raise CheckpointError(f"{path} does not name a checkpoint folder (step-NNNNNNNN): corrupted")
    return name


def prune(ckpt_dir: Path, keep_last: int, root=None) -> None:
    """Remove all but the newest `keep_last` epoch checkpoints (and the one `best` names), and stale temps."""
    root = root if root is not None else ckpt_dir
    protected = set()
    for pointer in POINTERS:
        try:
            protected.add(pointed(ckpt_dir, pointer, root))
        except RunDirError:
            pass
    names = rundir.entries(ckpt_dir, root)
    # in the order written (after a roll-back, a lower step can be newer)
    epochs = sorted((n for n, k in names.items() if k == "folder" and rundir.STEP.fullmatch(n)),
                    key=lambda n: rundir.mtime_ns(Path(ckpt_dir) / n / "state.json", root))
    for name in epochs[:-keep_last] if keep_last > 0 else epochs:
        if name not in protected:
            rundir.remove_folder(Path(ckpt_dir) / name, root)
    _remove_temps(ckpt_dir, names, root)


def _remove_temps(ckpt_dir: Path, names: dict[str, str], root) -> None:
    for name, k in names.items():
        if rundir.TEMP.fullmatch(name):
            (rundir.remove_folder if k == "folder" else rundir.remove_file)(Path(ckpt_dir) / name, root)


def clear(ckpt_dir: Path, root=None) -> None:
    """Delete an earlier run's checkpoints (a fresh run in an old directory): the folders and pointers trainc
    writes, then the folder once empty. Anything else stays; a link in the folder's place is a RunDirError."""
    root = root if root is not None else ckpt_dir
    names = rundir.entries(ckpt_dir, root)
    for name, k in names.items():
        if k == "folder" and rundir.STEP.fullmatch(name):
            rundir.remove_folder(Path(ckpt_dir) / name, root)
        elif k == "file" and name in POINTERS:
            rundir.remove_file(Path(ckpt_dir) / name, root)
    _remove_temps(ckpt_dir, names, root)
    if names:
        rundir.remove_folder(ckpt_dir, root, files=())


# ---- reading back --------------------------------------------------------------------------------------


def read_state(folder: Path, root=None) -> dict:
    """A checkpoint's state.json: its format and the checksums of its files, checked."""
    folder = Path(folder)
    try:
        state = rundir.read_json(folder / "state.json", rundir.CHECKPOINT_JSON, root=root if root is not None
                                 else folder)
    except rundir.Missing:
        raise CheckpointError(f"{folder} is not a complete checkpoint (no state.json)") from None
    if state["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{folder}/state.json: unknown checkpoint format {state['format_version']}")
    return state


def load(folder: Path, root=None, expected: dict | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                                         dict]:
    """(model tensors, optimizer tensors, state) of one checkpoint folder, every file verified; `expected`:
    the model's {name: (shape, dtype)}, compared with the header before the weights are read."""
    folder = Path(folder)
    root = root if root is not None else folder
    state = read_state(folder, root)
    model = read_safetensors(folder / FILES[0], root, state["files"][FILES[0]], expected)
    optimizer = read_safetensors(folder / FILES[1], root, state["files"][FILES[1]])
    return model, optimizer, state


def model_weights(folder: Path, root=None, expected: dict | None = None) -> dict[str, np.ndarray]:
    """The model tensors of one checkpoint, checked against the sha256 in its state.json."""
    folder = Path(folder)
    root = root if root is not None else folder
    return read_safetensors(folder / FILES[0], root, read_state(folder, root)["files"][FILES[0]], expected)


def _kind(path: Path, root: Path) -> str | None:
    """"file", "folder" or None; a link or anything else there is a RunDirError saying what it is."""
    k = rundir.kind(path, root)
    if k in ("link", "other"):
        rundir.is_file(path, root)  # raises, naming what is there
    return k


def _pointed_folder(ckpt_dir: Path, pointer: str, root: Path) -> Path:
    name = pointed(ckpt_dir, pointer, root)
    if not name or not rundir.is_folder(ckpt_dir / name, root):
        raise CheckpointError(f"{ckpt_dir} has no complete checkpoint yet ({pointer} names a missing folder)")
    return ckpt_dir / name


def find(path: Path, root=None) -> Path:
    """The checkpoint folder meant by `path`: a run directory (its latest), a checkpoints folder, a
    checkpoint folder, or `RUN/best` / `RUN/latest` (or RUN/checkpoints/best...). Nothing below `root`
    (default: `path` if it is a folder, else its folder) is followed."""
    path = Path(path)
    root = Path(root) if root is not None else path if path.is_dir() else path.parent
    kind = _kind(path, root)
    if kind == "folder" and path.name in POINTERS and path.parent.name == "checkpoints":
        rundir.is_file(path, root)  # raises: a folder where the pointer should be
    if kind == "folder" and _kind(path / "checkpoints", root) == "file":
        rundir.is_folder(path / "checkpoints", root)  # raises: a file where the checkpoints should be
    if kind == "folder":
        if _kind(path / "state.json", root) == "file":
            return path
        for ckpt_dir in (path / "checkpoints", path):
            if _kind(ckpt_dir, root) == "folder" and _kind(ckpt_dir / "latest", root) == "file":
                return _pointed_folder(ckpt_dir, "latest", root)
    elif path.name in POINTERS:
        for ckpt_dir in (path.parent / "checkpoints", path.parent):
            if _kind(ckpt_dir, root) == "folder" and _kind(ckpt_dir / path.name, root) == "file":
                return _pointed_folder(ckpt_dir, path.name, root)
    if kind == "folder" and (path.name == "checkpoints" or _kind(path / "checkpoints", root) == "folder") or \
            path.name in POINTERS and _kind(path.parent, root) == "folder":
        raise CheckpointError(f"{path} has no complete checkpoint yet")
    raise CheckpointError(f"no checkpoint at {path}")


def _compare(kind: str, saved: dict[str, tuple[tuple[int, ...], np.dtype]],
             expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(rundir.quote(k) for k in extra[:5])}"] if extra else [])
        raise CheckpointError(f"the checkpoint's {kind} tensors do not match this model: {'; '.join(parts)}")
    for k, (shape, dtype) in expected.items():
        got_shape, got_dtype = saved[k]
        if tuple(got_shape) != tuple(shape):
            raise CheckpointError(f"{kind} tensor '{k}': the checkpoint has shape {list(got_shape)}, the model "
                                  f"{list(shape)}")
        if np.dtype(got_dtype) != np.dtype(dtype):
            raise CheckpointError(f"{kind} tensor '{k}': the checkpoint has dtype {np.dtype(got_dtype)}, the model "
                                  f"{np.dtype(dtype)}")


def check_tensors(kind: str, saved: dict[str, np.ndarray], expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Names, shapes and dtypes of saved tensors against the model's; CheckpointError naming the first difference."""
    _compare(kind, {k: (a.shape, a.dtype) for k, a in saved.items()}, expected)
