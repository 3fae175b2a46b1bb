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
the header is checked (size, JSON, dtypes, offsets inside the file) before any data is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
           "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16, "U32": np.uint32, "U64": np.uint64,
           "BOOL": np.bool_}
_NAMES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 1024 * 1024
FAULT_HOOK = None  # tests: called half-way through a checkpoint write (see loop._fault_in_save)


class CheckpointError(Exception):
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


def decode_safetensors(raw: bytes, name: str = "file") -> dict[str, np.ndarray]:
    """Parse and validate safetensors bytes; CheckpointError on anything malformed."""
    if len(raw) < 8:
        raise CheckpointError(f"{name} is truncated ({len(raw)} bytes)")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > _MAX_HEADER or 8 + n > len(raw):
        raise CheckpointError(f"{name} is truncated or corrupted (header of {n} bytes in a {len(raw)}-byte file)")
    try:
        header = json.loads(raw[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{name} has a corrupted header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name} has a corrupted header (not a JSON object)")
    body, out = raw[8 + n:], {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<")
            shape = tuple(int(d) for d in info["shape"])
            start, end = (int(v) for v in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{name}: tensor '{key}' has a malformed header entry") from None
        if any(d < 0 for d in shape) or not 0 <= start <= end <= len(body) or \
                end - start != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise CheckpointError(f"{name}: tensor '{key}' lies outside the file or has the wrong size "
                                  "(truncated or corrupted)")
        out[key] = np.frombuffer(body[start:end], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return out


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    return decode_safetensors(raw, str(path))


# ---- atomic writes -------------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not every platform opens folders
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_file_atomic(path: Path, data: bytes) -> None:
    """Write to a temp file beside `path`, fsync, rename over it: readers see the old or the new file, whole."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save(ckpt_dir: Path, name: str, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
         state: dict) -> Path:
    """Write checkpoint `name` under `ckpt_dir` atomically; returns its folder. `state` must be JSON-able."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = ckpt_dir / name
    tmp = ckpt_dir / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        files = {"model.safetensors": encode_safetensors(model), "optimizer.safetensors": encode_safetensors(optimizer)}
        for fname, data in files.items():
            with open(tmp / fname, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if FAULT_HOOK is not None:
                FAULT_HOOK()
        body = {"format_version": FORMAT_VERSION, **state, "files": {k: _sha256(v) for k, v in files.items()}}
        with open(tmp / "state.json", "w") as f:
            f.write(json.dumps(body, indent=1, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        if final.exists():  # the same epoch again (after a roll-back): never change a folder in place
            old = ckpt_dir / f".{name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(ckpt_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def point(ckpt_dir: Path, pointer: str, name: str) -> None:
    """Make `latest` or `best` name checkpoint `name`."""
    write_file_atomic(ckpt_dir / pointer, (name + "\n").encode())


def pointed(ckpt_dir: Path, pointer: str) -> str | None:
    try:
        name = (ckpt_dir / pointer).read_text().strip()
    except OSError:
        return None
    return name if name and "/" not in name and not name.startswith(".") else None


def prune(ckpt_dir: Path, keep_last: int) -> None:
    """Remove all but the newest `keep_last` epoch checkpoints (and the one `best` names), and stale temps."""
    protected = {pointed(ckpt_dir, "best"), pointed(ckpt_dir, "latest")}

    def written(p: Path) -> float:  # in the order written (after a roll-back, a lower step can be newer)
        try:
            return (p / "state.json").stat().st_mtime_ns
        except OSError:
            return 0

    epochs = [p.name for p in sorted((p for p in ckpt_dir.glob("step-*") if p.is_dir()), key=written)]
    for name in epochs[:-keep_last] if keep_last > 0 else epochs:
        if name not in protected:
            shutil.rmtree(ckpt_dir / name, ignore_errors=True)
    for p in ckpt_dir.glob(".*.tmp-*"):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


# ---- reading back --------------------------------------------------------------------------------------


def load(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict]:
    """(model tensors, optimizer tensors, state) of one checkpoint folder, every file verified."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{folder} is not a complete checkpoint (no state.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{folder}/state.json is unreadable or corrupted ({e})") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{folder}/state.json: unknown checkpoint format "
                              f"{state.get('format_version') if isinstance(state, dict) else state!r}")
    out = []
    for fname in ("model.safetensors", "optimizer.safetensors"):
        try:
            raw = (folder / fname).read_bytes()
        except OSError as e:
            raise CheckpointError(f"cannot read {folder / fname}: {e.strerror or e}") from None
        if _sha256(raw) != state.get("files", {}).get(fname):
            raise CheckpointError(f"{folder / fname} does not match the checksum in state.json "
                                  "(truncated or corrupted)")
        out.append(decode_safetensors(raw, str(folder / fname)))
    return out[0], out[1], state


def find(path: Path) -> Path:
    """The checkpoint folder meant by `path`: a run directory (its latest), a checkpoints folder, a
    checkpoint folder, or `RUN/best` / `RUN/latest`."""
    path = Path(path)
    if (path / "state.json").exists():
        return path
    for ckpt_dir, pointer in ((path / "checkpoints", "latest"), (path, "latest"),
                              (path.parent / "checkpoints", path.name), (path.parent, path.name)):
        if pointer in ("latest", "best") and (name := pointed(ckpt_dir, pointer)) and (ckpt_dir / name).is_dir():
            return ckpt_dir / name
    if (path / "checkpoints").is_dir() or path.name == "checkpoints":
        raise CheckpointError(f"{path} has no complete checkpoint yet")
    raise CheckpointError(f"no checkpoint at {path}")


def check_tensors(kind: str, saved: dict[str, np.ndarray], expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Names, shapes and dtypes of saved tensors against the model's; CheckpointError naming the first difference."""
    missing = sorted(set(expected) - set(saved))
    extra = sorted(set(saved) - set(expected))
    if missing or extra:
        parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + \
                ([f"unexpected {', '.join(extra[:5])}"] if extra else [])
        raise CheckpointError(f"the checkpoint's {kind} tensors do not match this model: {'; '.join(parts)}")
    for k, (shape, dtype) in expected.items():
        a = saved[k]
        if tuple(a.shape) != tuple(shape):
            raise CheckpointError(f"{kind} tensor '{k}': the checkpoint has shape {list(a.shape)}, the model "
                                  f"{list(shape)}")
        if np.dtype(a.dtype) != np.dtype(dtype):
            raise CheckpointError(f"{kind} tensor '{k}': the checkpoint has dtype {a.dtype}, the model {dtype}")
