"""A run directory is untrusted input: every read and write under one goes through this module.

Run directories (`trainc run --out DIR`) are shared, copied and pulled from shared disks, so any file
in one may be planted or tampered with. Below the directory named on the command line (or in
`from(...)`), which is taken as named:

- nothing is followed: a path is walked one name at a time with O_NOFOLLOW, and a symbolic link
  anywhere on the way is refused, for reading and for writing;
- only regular files are read: a FIFO, a device or a folder in a file's place is refused (opened
  with O_NONBLOCK, then fstat, so a FIFO never blocks), and the size is bounded before a byte is
  read (the limits below);
- JSON and YAML are bounded in depth (YAML also in nodes: an alias repeats a subtree without making
  the file larger), then checked against the small schema of each file (the tables at the end): a
  wrong type is a message naming the key, never a crash further on;
- a file is written as a new temp file (`.NAME.tmp-PID`, O_CREAT|O_EXCL|O_NOFOLLOW) renamed over its
  name: a link or a hard link in its place is never written through;
- only what trainc makes is deleted: the names it writes, `step-NNNNNNNN` checkpoint folders and
  `.NAME.tmp-PID` temps, never a link, and a folder only once nothing else is left in it;
- `trainc run` holds `DIR/.lock` (its pid, flock'ed) while it writes the directory.

Every problem is a RunDirError whose message names the file and says what is wrong. Messages quote
no content of a file that is not what it should be; a name taken from a file is quoted short and
escaped (`quote`).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path

MB = 1024 * 1024
POINTER_MAX = 256  # checkpoints/latest and best: the name of a checkpoint folder
JSON_MAX = 64 * MB  # state.json, summary.json, preprocess.json, run.json
METRICS_MAX = 256 * MB  # metrics.jsonl
TEXT_MAX = 4 * MB  # spec.train, operative.yaml
HEADER_MAX = 16 * MB  # a safetensors header
DEPTH_MAX = 64  # nesting of JSON and YAML values
YAML_NODES_MAX = 1_000_000
INT_LIMIT = 2 ** 63  # integers in a schema fit in int64

LOCK = ".lock"
STEP = re.compile(r"step-\d{8}")  # a checkpoint folder
TEMP = re.compile(r"\.[\w.-]+\.(?:tmp|old)-\d+")  # a temp file or folder of an interrupted write
RECORDS = frozenset({"spec.train", "run.json", "operative.yaml", "preprocess.json", "preprocess.safetensors",
                     "metrics.jsonl", "model.safetensors", "summary.json", "report.html", "curves.png"})
CHECKPOINT_FILES = frozenset({"model.safetensors", "optimizer.safetensors", "state.json"})

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class RunDirError(ValueError):
    """A file of a run directory that cannot be used; the message names it and says why."""


class Missing(RunDirError):
    """The file (or a folder on its way) does not exist."""


class _FileOnTheWay(RunDirError):
    """A regular file where a folder on the way was expected."""


def quote(text, limit: int = 40) -> str:
    """A name taken from a file, for a message: escaped (no control characters reach the terminal), capped."""
    s = str(text)
    return repr(s[:limit]) + ("..." if len(s) > limit else "")


def _size(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB else f"{n} bytes"


# ---- walking without following ---------------------------------------------------------------------------


def _parts(path, root) -> tuple[Path, tuple[str, ...]]:
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise RunDirError(f"{path} is not inside the run directory {root}") from None
    if ".." in parts:
        raise RunDirError(f"{path}: '..' leads out of the run directory {root}")
    return root, parts


def _what(mode: int) -> str:
    return ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else
            "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a file")


def _odd(shown, mode: int, want: str = "a file") -> RunDirError:
    if stat.S_ISLNK(mode):
        return RunDirError(f"{shown} is a symbolic link: trainc follows no link inside a run directory")
    return RunDirError(f"{shown} is {_what(mode)}, not {want}")


def _open_at(dfd: int, name: str, flags: int, shown, want: str) -> int:
    """os.open relative to a folder descriptor; a refusal says what is in the way."""
    try:
        return os.open(name, flags, 0o666, dir_fd=dfd)
    except FileNotFoundError:
        raise Missing(f"{shown}: no such {'folder' if want == 'a folder' else 'file'}") from None
    except OSError as e:
        try:
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except OSError:
            mode = None
        if mode is None or _what(mode) == want:  # the right kind, another problem (permissions)
            raise RunDirError(f"{shown}: {e.strerror or e}") from None
        if want == "a folder" and stat.S_ISREG(mode):
            raise _FileOnTheWay(str(_odd(shown, mode, want))) from None
        raise _odd(shown, mode, want) from None


def _open_root(root: Path, create: bool) -> int:
    """The run directory itself, as the user named it (it may be a link)."""
    try:
        if create:
            os.makedirs(root, exist_ok=True)
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise Missing(f"{root}: no such directory") from None
    except (NotADirectoryError, FileExistsError):
        raise RunDirError(f"{root} is not a directory") from None
    except OSError as e:
        raise RunDirError(f"{root}: {e.strerror or e}") from None


def _walk(root: Path, names, create: bool = False) -> int:
    """A descriptor of the folder root/names..., each name a real folder (made when `create`)."""
    fd, shown = _open_root(root, create), root
    try:
        for name in names:
            shown = shown / name
            if create:
                try:
                    os.mkdir(name, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
            nfd = _open_at(fd, name, _DIR, shown, "a folder")
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _parent(path, root, create: bool = False):
    """(descriptor of the folder holding `path`, its name): the folders on the way are real ones."""
    root, parts = _parts(path, root)
    if not parts:
        raise RunDirError(f"{path} is the run directory itself, not a file in it")
    dfd = _walk(root, parts[:-1], create)
    try:
        yield dfd, parts[-1]
    finally:
        os.close(dfd)


def kind(path, root=None) -> str | None:
    """What is at `path` without following it: "file", "folder", "link", "other", or None when nothing is
    (or a folder on the way is missing). A link or a non-folder on the way is a RunDirError."""
    root, parts = _parts(path, root)
    if not parts:
        return "folder" if Path(root).is_dir() else None
    try:
        with _parent(path, root) as (dfd, name):
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except (Missing, _FileOnTheWay, FileNotFoundError):
        return None
    return "file" if stat.S_ISREG(mode) else "folder" if stat.S_ISDIR(mode) else \
        "link" if stat.S_ISLNK(mode) else "other"


def is_file(path, root=None) -> bool:
    """True for a regular file, False when nothing is there; anything else in its place is a RunDirError."""
    k = kind(path, root)
    if k in ("link", "folder", "other"):
        with _parent(path, root) as (dfd, name):
            raise _odd(path, os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
    return k == "file"


def is_folder(path, root=None) -> bool:
    """True for a real folder, False when nothing is there; anything else in its place is a RunDirError."""
    k = kind(path, root)
    if k in ("link", "file", "other"):
        with _parent(path, root) as (dfd, name):
            raise _odd(path, os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode, "a folder")
    return k == "folder"


def entries(path, root=None) -> dict[str, str]:
    """The names in a folder and their kinds (as `kind`), nothing followed; {} for a missing folder."""
    root, parts = _parts(path, root)
    try:
        fd = _walk(root, parts)
    except Missing:
        return {}
    try:
        with os.scandir(fd) as it:
            return {e.name: "link" if e.is_symlink() else "folder" if e.is_dir(follow_symlinks=False) else
                    "file" if e.is_file(follow_symlinks=False) else "other" for e in it}
    finally:
        os.close(fd)


def mtime_ns(path, root=None) -> int:
    """When the file at `path` was last written (not following it), 0 when it is missing."""
    try:
        with _parent(path, root) as (dfd, name):
            return os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mtime_ns
    except (Missing, FileNotFoundError):
        return 0


# ---- reading ---------------------------------------------------------------------------------------------


@contextmanager
def open_file(path, limit: int | None = None, root=None):
    """(file, size) of the regular file at `path`, open for reading in binary; refused before reading when
    it is a link, not a regular file, or larger than `limit` bytes."""
    with _parent(path, root) as (dfd, name):
        fd = _open_at(dfd, name, _READ, path, "a file")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _odd(path, st.st_mode)
        if limit is not None and st.st_size > limit:
            raise RunDirError(f"{path} is {_size(st.st_size)}, more than the {_size(limit)} such a file may have "
                              "(corrupted, or not trainc's)")
        f = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with f:
        try:
            yield f, st.st_size
        except OSError as e:  # an I/O error while reading: the file's problem, named
            raise RunDirError(f"{path}: cannot read: {e.strerror or e}") from None


def read_bytes(path, limit: int, root=None) -> bytes:
    with open_file(path, limit, root) as (f, size):
        return f.read(size)


def read_text(path, limit: int = TEXT_MAX, root=None) -> str:
    try:
        return read_bytes(path, limit, root).decode("utf-8")
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not UTF-8 text") from None


def _too_deep(value, depth_max: int = DEPTH_MAX, nodes_max: int | None = None) -> str | None:
    """Why a parsed value is too deep or too large to walk safely, or None. Iterative: any depth is fine here."""
    stack, nodes = [(value, 1)], 0
    while stack:
        v, depth = stack.pop()
        if depth > depth_max:
            return f"nested more than {depth_max} levels deep"
        children = v.values() if isinstance(v, dict) else v
        for c in children:
            nodes += 1
            if nodes_max is not None and nodes > nodes_max:
                return f"more than {nodes_max:,} values (repeated aliases?)"
            if isinstance(c, (dict, list)):
                stack.append((c, depth + 1))
    return None


def parse_json(data: bytes, shown, what: str = "valid JSON") -> object:
    """JSON bytes as Python values; a RunDirError naming `shown` for invalid, non-UTF-8 or too deeply nested JSON."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise RunDirError(f"{shown} is not UTF-8 text") from None
    try:
        value = json.loads(text)
    except RecursionError:
        raise RunDirError(f"{shown}: nested more than {DEPTH_MAX} levels deep") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{shown}: not {what} ({e.msg} at line {e.lineno} column {e.colno})") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise RunDirError(f"{shown}: not {what} (a number too long to read)") from None
    why = _too_deep(value) if isinstance(value, (dict, list)) else None
    if why:
        raise RunDirError(f"{shown}: {why}")
    return value


def read_json(path, schema, limit: int = JSON_MAX, root=None) -> object:
    """A JSON file, checked against `schema` (see `check`)."""
    value = parse_json(read_bytes(path, limit, root), path)
    why = check(value, schema)
    if why:
        raise RunDirError(f"{path}: {why}")
    return value


def read_jsonl(path, schema, limit: int = METRICS_MAX, root=None) -> list:
    """One JSON value per line (blank lines skipped), each checked against `schema`."""
    try:
        text = read_bytes(path, limit, root).decode("utf-8")
    except UnicodeDecodeError:
        raise RunDirError(f"{path} is not UTF-8 text") from None
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json(line.encode(), f"{path}:{n}", "a JSON record")
        why = check(row, schema)
        if why:
            raise RunDirError(f"{path}:{n}: {why}")
        rows.append(row)
    return rows


def _yaml_too_deep(text: str) -> bool:
    """A quick bound before parsing (PyYAML takes seconds to find 100,000 brackets too deep): flow brackets, and
    block indentation, deeper than DEPTH_MAX. Brackets inside strings count too; trainc's own files have few."""
    depth = 0
    for m in re.finditer(r"[\[\]{}]", text):
        depth += 1 if m.group() in "[{" else -1
        if depth > DEPTH_MAX:
            return True
    return max((len(line) - len(line.lstrip(" -")) for line in text.splitlines()), default=0) > 4 * DEPTH_MAX


def read_yaml(path, schema, limit: int = TEXT_MAX, root=None) -> object:
    """A YAML file (safe_load: plain data only), bounded in depth and nodes, checked against `schema`."""
    import yaml

    text = read_text(path, limit, root)
    if _yaml_too_deep(text):
        raise RunDirError(f"{path}: nested more than {DEPTH_MAX} levels deep")
    try:
        value = yaml.safe_load(text)
    except RecursionError:
        raise RunDirError(f"{path}: nested more than {DEPTH_MAX} levels deep") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise RunDirError(f"{path}: not valid YAML" + (f" (line {mark.line + 1})" if mark else "")) from None
    why = _too_deep(value, DEPTH_MAX, YAML_NODES_MAX) if isinstance(value, (dict, list)) else None
    why = why or check(value, schema)
    if why:
        raise RunDirError(f"{path}: {why}")
    return value


# ---- schemas ---------------------------------------------------------------------------------------------
# A schema is: a type (int and float are numbers, not true/false; float takes an integer too; object takes
# anything), None (null), a tuple of alternatives, [schema] (a list of them), {"key": schema} (an object with
# those keys, "?key" optional, others allowed), {str: schema} (an object of any keys), or a function
# (value, where) -> message or None, whose `kind` is the type it takes.

_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "an object",
          list: "a list", object: "a value", None: "null"}


def _found(v) -> str:
    return ("null" if v is None else "true or false" if isinstance(v, bool) else "an integer" if isinstance(v, int)
            else "a number" if isinstance(v, float) else "a string" if isinstance(v, str) else
            "a list" if isinstance(v, list) else "an object" if isinstance(v, dict) else "a value")


def _name(schema) -> str:
    if callable(schema) and not isinstance(schema, type):
        return _NAMES[getattr(schema, "kind", object)]
    if isinstance(schema, list):
        return "a list"
    if isinstance(schema, dict):
        return "an object"
    if isinstance(schema, tuple):
        return " or ".join(_name(s) for s in schema)
    return _NAMES.get(schema, "a value")


def _is(value, t) -> bool:
    if t is None:
        return value is None
    if t is object:
        return True
    if isinstance(value, bool):
        return t is bool
    if t is float:
        return isinstance(value, (int, float)) and (not isinstance(value, int) or abs(value) < INT_LIMIT)
    if t is int:
        return isinstance(value, int) and abs(value) < INT_LIMIT
    return isinstance(value, t)


def check(value, schema, where: str = "") -> str | None:
    """Why `value` does not fit `schema` (naming the key: `loop.epoch: expected an integer, found a string`), or
    None. Never quotes the value itself."""
    at = f"{where}: " if where else ""
    if callable(schema) and not isinstance(schema, type):
        return schema(value, where)
    if isinstance(schema, tuple):
        if any(check(value, s, where) is None for s in schema):
            return None
        for s in schema:  # the same kind, wrong inside: say what is wrong inside
            if (isinstance(s, (list, dict)) and isinstance(value, type(s))) or \
                    (callable(s) and not isinstance(s, type) and _is(value, getattr(s, "kind", object))):
                return check(value, s, where)
        return f"{at}expected {_name(schema)}, found {_found(value)}"
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{at}expected a list, found {_found(value)}"
        return next((w for i, v in enumerate(value) if (w := check(v, schema[0], f"{where}[{i}]"))), None)
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{at}expected an object, found {_found(value)}"
        if list(schema) == [str]:
            return next((w for k, v in value.items() if (w := check(v, schema[str], f"{where}[{quote(k)}]"))),
                        None)
        for key, s in schema.items():
            name = key.lstrip("?")
            if name not in value:
                if key.startswith("?"):
                    continue
                return f"{at}no \"{name}\"" if where else f"no \"{name}\""
            why = check(value[name], s, f"{where}.{name}" if where else name)
            if why:
                return why
        return None
    return None if _is(value, schema) else f"{at}expected {_name(schema)}, found {_found(value)}"


def at_least(low: int):
    """An integer >= low."""
    def rule(value, where):
        if not _is(value, int):
            return f"{where + ': ' if where else ''}expected an integer, found {_found(value)}"
        return None if value >= low else f"{where + ': ' if where else ''}expected an integer of at least {low}"
    rule.kind = int
    return rule


def text(limit: int):
    """A string of at most `limit` characters, none of them control characters: it may reach a terminal."""
    def rule(value, where):
        if not isinstance(value, str):
            return f"{where + ': ' if where else ''}expected a string, found {_found(value)}"
        if len(value) > limit or not value.isprintable():
            return f"{where + ': ' if where else ''}expected at most {limit} printable characters"
        return None
    rule.kind = str
    return rule


def label(limit: int):
    """A class name: as `text`, or one whitespace character (a character vocabulary's "\n" or "\t" is a class),
    which cannot move a terminal's cursor the way an escape sequence can."""
    printable = text(limit)

    def rule(value, where):
        return None if isinstance(value, str) and len(value) == 1 and value.isspace() else printable(value, where)
    rule.kind = str
    return rule


TEXT = text(1000)
SCALAR = (float, TEXT, bool, None)
LABEL = (float, label(1000), bool, None)
COUNT = at_least(0)


def metrics_row(value, where) -> str | None:
    """One epoch's record (metrics.jsonl, the history in state.json, summary.json's final/best/last)."""
    if not isinstance(value, dict):
        return f"{where + ': ' if where else ''}expected an object, found {_found(value)}"
    why = check(value, {"?epoch": COUNT, "?step": COUNT}, where)
    return why or check(value, {str: SCALAR}, where)


metrics_row.kind = dict


ROW_OR_NULL = (metrics_row, None)
PLATEAU = {"monitor": str, "factor": float, "patience": COUNT, "min_lr": float, "min_delta": float, "mode": str,
           "best": (float, None), "bad_epochs": COUNT, "reductions": COUNT}

RUN_JSON = {"spec": str, "base_dir": str, "overrides": [str], "?trainc": str, "?started": str}
PREPROCESS_JSON = {"task": str, "feature_shape": [at_least(1)], "feature_names": ([str], None),
                   "classes": ([(int, float, str, bool)], None), "class_counts": ([COUNT], None),
                   "normalize": str, "target_normalize": (str, None), "?target_names": ([str], None)}
CHECKPOINT_JSON = {"format_version": int, "files": {"model.safetensors": str, "optimizer.safetensors": str}}
LOOP_STATE = {"epoch": COUNT, "step": COUNT, "batch_index": COUNT, "lr_scale": float, "rollbacks": COUNT,
              "best_train": (float, None), "best_value": (float, None), "best_row": ROW_OR_NULL,
              "bad_epochs": COUNT, "keep_best": (float, None), "train_seconds": float, "resumes": COUNT,
              "stopped": (TEXT, None), "history": [metrics_row]}
RESUME_JSON = {**CHECKPOINT_JSON, "spec_hash": (str, None), "loop": LOOP_STATE, "rng": dict,
               "schedule": [(PLATEAU, None)],
               "snapshot": ({"epoch": COUNT, "step": COUNT, "schedule": [(PLATEAU, None)]}, None)}
SUMMARY_JSON = {"?spec": (TEXT, None), "?stop_reason": (TEXT, None), "?epochs": (COUNT, None),
                "?steps": (COUNT, None), "?wall_time_s": (float, None), "?device": (str, None),
                "?final": ROW_OR_NULL, "?best": ROW_OR_NULL, "?last": ROW_OR_NULL,
                "?examples": ({str: COUNT}, None), "?baseline": ({str: (float, None)}, None),
                "?reports": ({str: [[(float, None)]]}, None), "?test": ({str: SCALAR}, None),
                "?classes": ([LABEL], None), "?diagnosis": list, "?files": {str: str},
                "?folds": COUNT, "?mean": {str: (float, None)}, "?std": {str: (float, None)},
                "?per_fold": [{str: SCALAR}]}
OPERATIVE_YAML = {"sha256": str, "?settings": {str: {"?value": object}}}


# ---- writing ---------------------------------------------------------------------------------------------


def make_dirs(path, root=None) -> None:
    """Make the folder `path` (and those on its way) below `root`, refusing links on the way."""
    root, parts = _parts(path, root)
    os.close(_walk(root, parts, create=True))


def _ready_to_replace(dfd: int, name: str, shown, folder: bool = False) -> None:
    """What is about to be written over must be a regular file (a folder, with `folder`) or nothing: never a
    link, a FIFO or the other kind."""
    try:
        mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if not (stat.S_ISDIR(mode) if folder else stat.S_ISREG(mode)):
        raise _odd(shown, mode, "a folder" if folder else "a file")


def _new_temp(dfd: int, name: str, shown) -> str:
    """Create `.NAME.tmp-PID` beside `name` (a stale one of this pid, a regular file, is replaced)."""
    tmp = f".{name}.tmp-{os.getpid()}"
    try:
        mode = os.stat(tmp, dir_fd=dfd, follow_symlinks=False).st_mode
        if not stat.S_ISREG(mode):
            raise _odd(Path(shown).with_name(tmp), mode)
        os.unlink(tmp, dir_fd=dfd)
    except FileNotFoundError:
        pass
    return tmp


def write_bytes(path, data: bytes, root=None, fsync: bool = True) -> None:
    """Write a file atomically: a new temp file, flushed, renamed over `path`. Readers see the old or the new
    file, whole; a link or a hard link at `path` is replaced, never written through."""
    with _parent(path, root, create=True) as (dfd, name):
        _ready_to_replace(dfd, name, path)
        tmp = _new_temp(dfd, name, path)
        fd = os.open(tmp, _NEW, 0o644, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except OSError:
                pass
            raise
        if fsync:
            fsync_folder(dfd)


def fsync_folder(dfd: int) -> None:
    try:
        os.fsync(dfd)
    except OSError:  # not every file system syncs folders
        pass


def open_new(path, root=None):
    """A new, empty file at `path` (put in place at once, as `write_bytes` does), open for writing text:
    for a file written as the run goes (metrics.jsonl)."""
    with _parent(path, root, create=True) as (dfd, name):
        _ready_to_replace(dfd, name, path)
        tmp = _new_temp(dfd, name, path)
        fd = os.open(tmp, _NEW, 0o644, dir_fd=dfd)
        try:
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dfd)
            raise
    return os.fdopen(fd, "w", encoding="utf-8")


def create(path, data: bytes, root=None) -> None:
    """Write a file that must not exist yet (in a folder trainc just made), flushed."""
    with _parent(path, root) as (dfd, name):
        fd = os.open(name, _NEW, 0o644, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def rename(src, dst, root=None) -> None:
    """Rename within one folder of the run directory (a finished temp folder into place)."""
    with _parent(src, root) as (dfd, a):
        b = Path(dst).name
        if Path(dst).parent != Path(src).parent:
            raise RunDirError(f"{dst}: not in the folder of {src}")
        _ready_to_replace(dfd, b, dst, folder=True)
        os.replace(a, b, src_dir_fd=dfd, dst_dir_fd=dfd)
        fsync_folder(dfd)


# ---- deleting only what trainc made ----------------------------------------------------------------------


def remove_file(path, root=None) -> bool:
    """Delete a regular file trainc wrote; a link or anything else there stays. True when it is gone."""
    try:
        with _parent(path, root) as (dfd, name):
            mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
            if not stat.S_ISREG(mode):
                return False
            os.unlink(name, dir_fd=dfd)
    except (Missing, FileNotFoundError):
        pass
    return True


def remove_folder(path, root=None, files=CHECKPOINT_FILES) -> bool:
    """Delete a folder trainc made: the regular files in it named in `files` (or temps), then the folder if
    nothing else is left. A link, or a name trainc does not write, stays, and so does the folder then."""
    try:
        names = entries(path, root)
    except RunDirError:  # a link or a file where the folder was: not ours
        return False
    for name, k in names.items():
        if k == "file" and (name in files or TEMP.fullmatch(name)):
            remove_file(Path(path) / name, root)
    with _parent(path, root) as (dfd, name):
        try:
            os.rmdir(name, dir_fd=dfd)
        except FileNotFoundError:
            return True
        except OSError:  # not empty: something trainc did not make
            return False
    return True


# ---- the lock of `trainc run` ----------------------------------------------------------------------------


class Lock:
    """DIR/.lock of a `trainc run`: created O_EXCL|O_NOFOLLOW, holding the pid, flock'ed while held."""

    def __init__(self, root: Path, fd: int, created: bool):
        self.root, self.fd, self.created = root, fd, created

    def release(self, remove_created: bool = False) -> None:
        """Let go of the lock; `remove_created`: also remove the directory when this run made it and wrote
        nothing that matters (a run that failed before training), deleting only the names trainc writes."""
        if self.fd < 0:
            return
        try:
            with _parent(self.root / LOCK, self.root) as (dfd, name):
                if os.stat(name, dir_fd=dfd, follow_symlinks=False).st_ino == os.fstat(self.fd).st_ino:
                    os.unlink(name, dir_fd=dfd)
        except (OSError, RunDirError):
            pass
        os.close(self.fd)
        self.fd = -1
        if remove_created and self.created:
            remove_folder(self.root, self.root.parent, RECORDS)


def _holder(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() and len(text) < 10 else None


def _alive(pid: int | None) -> bool:
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def lock(run_dir, warn=None) -> Lock:
    """Take DIR/.lock for a `trainc run` (making DIR when missing); RunDirError naming the holder's pid while
    another run holds it. A stale lock (its process gone) is taken over, with `warn(message)`."""
    run_dir = Path(run_dir)
    created = not os.path.lexists(run_dir)
    fd = _open_root(run_dir, create=True)
    shown = run_dir / LOCK
    try:
        for _ in range(3):
            try:
                lfd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                              dir_fd=fd)
                fresh = True
            except FileExistsError:
                try:
                    lfd = _open_at(fd, LOCK, os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, shown, "a file")
                except Missing:
                    continue  # released meanwhile: try again
                fresh = False
            taken = _take(lfd, fd, shown, fresh, warn)
            if taken:
                return Lock(run_dir, lfd, created)
        raise RunDirError(f"{shown}: the lock keeps changing hands; is another trainc run starting in {run_dir}?")
    finally:
        os.close(fd)


def _take(lfd: int, dfd: int, shown, fresh: bool, warn) -> bool:
    """Hold `lfd` (the lock file just opened) or raise RunDirError naming its live holder. False: the file was
    replaced meanwhile, open it again."""
    try:
        st = os.fstat(lfd)
        if not stat.S_ISREG(st.st_mode):
            raise _odd(shown, st.st_mode)
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _holder(lfd)
            raise RunDirError(f"{shown.parent} is in use by another trainc run (pid {pid if pid else 'unknown'}); "
                              "wait for it to finish, or choose another --out") from None
        if not fresh:
            try:
                same = os.stat(LOCK, dir_fd=dfd, follow_symlinks=False).st_ino == st.st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(lfd)
                return False
            pid = _holder(lfd)
            if _alive(pid):
                raise RunDirError(f"{shown.parent} is in use by another trainc run (pid {pid}); wait for it to "
                                  f"finish, or choose another --out (or remove {shown} if pid {pid} is not trainc)")
            if warn is not None:
                warn(f"{shown}: taking over the stale lock of pid {pid if pid else 'unknown'} (no such process)")
        os.ftruncate(lfd, 0)
        os.lseek(lfd, 0, os.SEEK_SET)
        os.write(lfd, f"{os.getpid()}\n".encode())
        return True
    except BaseException:
        try:
            os.close(lfd)
        except OSError:
            pass
        raise
