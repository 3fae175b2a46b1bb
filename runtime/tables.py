"""What every reader of a data source shares: the DataError and its diagnostics, the raw table a reader
returns (`_Raw`), and streaming reads of untrusted files (text, CSV tables and columns).

data.py (csv and npz, splitting, encoding, normalising) and the readers of sources/ (images, text, time
series) both build on this module; it imports neither. See data.py for the codes and the limits on input.
"""

from __future__ import annotations

import codecs
import csv
import errno
import io
import math
import operator
import os
import pathlib
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..compiler import ir
from ..compiler.diagnostics import Diagnostic, did_you_mean

QUOTE_LIMIT = 64  # characters of a file's content (a cell, a column or array name) that a message quotes
BLOCK_BYTES = 1 << 20  # read and decoded at a time
CHUNK_CELLS = 1 << 17  # CSV cells converted to numbers at a time
FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataError(Exception):
    """A problem with the data a spec points at; `diagnostic` says what and where."""

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic
        super().__init__(diagnostic.message)


def _diag(code: str, message: str, span: ir.Span, help: str | None = None, notes: tuple[str, ...] = ()) -> Diagnostic:
    return Diagnostic(code=code, message=message, span=span, help=help, notes=notes)


def _fail(code: str, message: str, span: ir.Span, help: str | None = None, notes: tuple[str, ...] = ()):
    raise DataError(_diag(code, message, span, help, notes))


# ---------------------------------------------------------------------------------------------
# Raw tables: what one source file holds, before labels are encoded.
# ---------------------------------------------------------------------------------------------


@dataclass
class _Raw:
    x: np.ndarray  # float32 or float64 [n, *feature_shape]
    y: np.ndarray  # classification: str [n] (or codes, with `labels`); regression: float64 [n, n_targets]
    feature_names: tuple[str, ...] | None
    source: ir.Source
    ordered: bool = False  # rows follow time (series windows, text): split in order, never shuffled across
    classes: tuple | None = None  # set by readers whose labels are already class ids (token ids): y is int
    labels: tuple[str, ...] | None = None  # compact labels: y holds int32 indices into these label texts


def _clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` as a message quotes it: control characters escaped, at most `limit` characters."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return shown if len(text) <= limit and len(shown) <= limit else shown[: limit - 3] + "..."


def _available(names: Sequence[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(f"'{_clip(n)}'" for n in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names)} in all)"
    return shown


def _unknown_name_help(word: str, names: Sequence[str], what: str) -> str:
    if not all(len(n) <= QUOTE_LIMIT and n.isprintable() for n in names):  # not a row of names: quote none of it
        return (f"its {what} are not listed: one is longer than {QUOTE_LIMIT} characters or holds control "
                "characters, so this may not be the file meant")
    return did_you_mean(word, names) or f"available {what}: {_available(names)}"


# ---------------------------------------------------------------------------------------------
# Opening and streaming a data file.
# ---------------------------------------------------------------------------------------------


def _data_path(source: ir.Source, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(source.path))
    return path if path.is_absolute() else pathlib.Path(base_dir) / path


def _open(source: ir.Source, base_dir: pathlib.Path) -> tuple[io.FileIO, int]:
    """The source's file opened for reading, and its size, if it is a regular file; else E501/E502 at the source.

    Opened without blocking and checked with fstat (what is checked is what is read), so a FIFO, a device
    or a folder is refused without hanging; so is a kernel interface file (under /proc or /sys, or any file
    whose size reads 0 but which has content). Readers read at most the size it had when opened."""
    path = _data_path(source, base_dir)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        _fail("E501", f"data file '{source.path}' not found (looked for {path})", source.span,
              help="paths are relative to the directory of the spec file")
    except ValueError:  # a NUL character in the name
        _fail("E502", f"cannot open data file '{_clip(source.path)}': its name holds a NUL character", source.span)
    except OSError as e:
        why = "the name is too long" if e.errno == errno.ENAMETOOLONG else e.strerror or str(e)
        _fail("E502", f"cannot open data file '{source.path}': {why}", source.span)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        _fail("E502", f"data file '{source.path}' is not a regular file ({path})", source.span)
    file = os.fdopen(fd, "rb", buffering=0)
    if _kernel_file(fd) or st.st_size == 0 and _read_bytes(file, 1, source):  # /proc files: size 0, yet content
        file.close()
        _fail("E502", f"data file '{source.path}' is not a regular file ({path}): it is one of the kernel's "
              "interface files, like those of /proc and /sys", source.span)
    return file, st.st_size


def _kernel_file(fd: int) -> bool:
    """Whether the open file is under /proc or /sys (asked of the descriptor, so no link or rename can hide it)."""
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # no /proc: the size test above still catches its files
        return False
    return where.startswith(("/proc/", "/sys/"))


def _read_bytes(file: io.FileIO, n: int, source: ir.Source) -> bytes:
    try:
        return file.read(n) or b"" if n > 0 else b""
    except OSError as e:
        file.close()
        _fail("E502", f"cannot read '{source.path}': {e.strerror or e}", source.span)


def _text_blocks(source: ir.Source, file: io.FileIO, size: int) -> Iterator[str]:
    """The file's text a block at a time: UTF-8 (a BOM dropped), every line end as '\\n'; at most `size` bytes."""
    decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8-sig")(), translate=True)
    done = 0
    while True:
        block = _read_bytes(file, min(BLOCK_BYTES, size - done), source)
        done += len(block)
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:  # e.object: the bytes held back from the last block, then this block
            _fail("E502", f"cannot read '{source.path}': not UTF-8 text ({e.reason} at byte "
                  f"{done - len(e.object) + e.start})", source.span)
        if text:
            yield text
        if not block:
            return


def _lines(blocks: Iterable[str]) -> Iterator[str]:
    """Lines, each with its '\\n' (the last perhaps without), from blocks of text whose line ends are '\\n'."""
    pending: list[str] = []  # the start of a line that began in an earlier block
    for block in blocks:
        cut = block.rfind("\n") + 1
        if not cut:
            pending.append(block)
            continue
        head = "".join(pending) + block[:cut] if pending else block[:cut]
        pending = [block[cut:]] if cut < len(block) else []
        yield from io.StringIO(head, newline="")  # splits at '\n' only: the text has no other line end
    tail = "".join(pending)
    if tail:
        yield tail


def read_text(source: ir.Source, base_dir: pathlib.Path) -> str:
    """A source's file as text (UTF-8, a BOM allowed); unreadable files are E501/E502 at the source."""
    file, size = _open(source, base_dir)
    with file:
        return "".join(_text_blocks(source, file, size))


def _csv_chunks(source: ir.Source, base_dir: pathlib.Path) -> Iterator:
    """A CSV with a header row, streamed: first the header (its stripped cells), then chunks `(rows, lines)` of
    the data rows (their cells, not stripped) and the file line of each. Blank lines are skipped.

    The file's own problems are E502: not UTF-8, not CSV, a row of the wrong width, no header, a header of
    numbers. They are raised once the whole file is decoded and in the order a reading of the whole file
    finds them, so each comes before anything found in the rows, as when the file was read at once."""
    file, size = _open(source, base_dir)
    with file:
        blocks = _text_blocks(source, file, size)
        reader = csv.reader(_lines(blocks))
        header: list[str] | None = None
        rows: list[list[str]] = []
        lines: list[int] = []
        problem = None
        try:
            for record in reader:
                if not record or not record[0].strip() and all(not cell.strip() for cell in record):
                    continue  # blank line
                if header is None:
                    header = [cell.strip() for cell in record]
                    per_chunk = max(CHUNK_CELLS // len(header), 1)
                    yield header
                elif len(record) != len(header):
                    problem = (f"'{source.path}' line {reader.line_num}: found {len(record)} fields, "
                               f"expected {len(header)} like the header")
                    break
                else:
                    rows.append(record)
                    lines.append(reader.line_num)
                    if len(rows) >= per_chunk:
                        yield rows, lines
                        rows, lines = [], []
        except csv.Error as e:
            problem = f"'{source.path}' is not valid CSV: {e}"
        if problem:
            for _ in blocks:  # a byte that is not UTF-8, later in the file, is reported first
                pass
            _fail("E502", problem, source.span)
        if header is None:
            _fail("E502", f"'{source.path}' is empty; expected a header row of column names", source.span)
        if rows:
            yield rows, lines
    if all(_is_number(h) for h in header):
        _fail("E502", f"'{source.path}' has no header: its first row holds numbers "
              f"({', '.join(_clip(h) for h in header[:4])}{', ...' if len(header) > 4 else ''}), expected column "
              "names", source.span, help="add a first line naming the columns, e.g. 'p0,p1,...,label'")


def read_table(source: ir.Source, base_dir: pathlib.Path) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV with a header row, read whole: (header, rows of stripped cells, the file line of each row).

    For small files (predict's inputs): the data sources stream theirs (`read_columns`). Blank lines are
    skipped; a row of the wrong width, a missing or numeric header is E502."""
    chunks = _csv_chunks(source, base_dir)
    header = next(chunks)
    rows: list[list[str]] = []
    lines: list[int] = []
    for part, at in chunks:
        rows += ([cell.strip() for cell in row] for row in part)
        lines += at
    return header, rows, lines


# ---------------------------------------------------------------------------------------------
# CSV columns: numbers and class labels, a chunk of rows at a time.
# ---------------------------------------------------------------------------------------------


class _Rows:
    """An array of rows of one shape and dtype, appended a block at a time. It grows in place (numpy's resize is a
    realloc, which moves pages rather than copying them), so unlike blocks joined at the end it never needs a
    second copy of itself."""

    def __init__(self, shape: tuple[int, ...], dtype):
        self.data = np.empty((1024, *shape), dtype)
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        end = self.n + len(block)
        if end > len(self.data):
            self.data.resize((max(end, len(self.data) * 5 // 4), *self.data.shape[1:]), refcheck=False)
        self.data[self.n:end] = block
        self.n = end

    def array(self) -> np.ndarray:
        self.data.resize((self.n, *self.data.shape[1:]), refcheck=False)
        return self.data


LABEL_HELP = "class labels are whole numbers or names; for a numeric target use a regression loss such as mse"


class _Labels:
    """A column of class labels, streamed: an int32 code per row into `texts`, the distinct labels (stripped) in
    the order met, with the file line where each first appears."""

    def __init__(self):
        self.codes = _Rows((), np.int32)
        self.index: dict[str, int] = {}  # label -> code
        self.first_lines: list[int] = []

    def add(self, rows: list[list[str]], lines: list[int], col: int) -> None:
        column = np.array([row[col].strip() for row in rows], dtype=str)
        distinct, first, inverse = np.unique(column, return_index=True, return_inverse=True)
        codes = np.empty(len(distinct), np.int32)
        for k, (text, at) in enumerate(zip(distinct.tolist(), first.tolist())):
            if text not in self.index:
                self.index[text] = len(self.index)
                self.first_lines.append(lines[at])
            codes[k] = self.index[text]
        self.codes.add(codes[inverse.reshape(-1)])

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(self.index)

    def problem(self, source: ir.Source, name: str) -> Diagnostic | None:
        """E504 for the first row whose label is missing, or a number that is not whole: labels are names or whole
        numbers, and in a column of numbers every label must be whole."""
        numeric = all(_is_number(text) for text in self.index)
        found = []
        for text, line in zip(self.index, self.first_lines):
            where = f"'{source.path}' line {line}, column '{_clip(name)}'"
            if not text or (_is_number(text) and math.isnan(float(text))):
                found.append((line, _diag("E504", f"{where}: missing label" + (f" ('{_clip(text)}')" if text else ""),
                                          source.span, help="every row needs a class label")))
            elif _is_number(text) and not math.isfinite(float(text)) or numeric and not float(text).is_integer():
                found.append((line, _diag("E504", f"{where}: class label '{_clip(text)}' is not a whole number",
                                          source.span, help=LABEL_HELP)))
        return min(found, key=lambda f: f[0])[1] if found else None


def _numbers(rows: list[list[str]], lines: list[int], cols: list[int], header: list[str], source: ir.Source,
             dtype) -> tuple[np.ndarray | None, Diagnostic | None]:
    """Columns `cols` of a chunk of rows as `dtype` (float32 or float64), or the E504 of its first bad cell, row by
    row: missing, not a number, not finite, or beyond float32."""
    cells = list(map(operator.itemgetter(*cols), rows)) if len(cols) > 1 else [(row[cols[0]],) for row in rows]
    try:
        values = np.array(cells, dtype=np.float64)  # each cell as Python's float() reads it: spaces around allowed
    except ValueError:
        values = None

    def bad(r: int, c: int, what: str) -> tuple[None, Diagnostic]:
        where = f"'{source.path}' line {lines[r]}, column '{_clip(header[cols[c]])}'"
        return None, _diag("E504", f"{where}: {what}", source.span)

    if values is not None and np.isfinite(values).all():
        if dtype == np.float64:
            return values, None
        with np.errstate(over="ignore"):
            narrow = values.astype(dtype)
        if np.isfinite(narrow).all():
            return narrow, None
        r, c = (int(i) for i in np.argwhere(~np.isfinite(narrow))[0])
        return bad(r, c, f"expected a number of at most {FLOAT32_MAX:.4g} in size (float32), found "
                         f"'{_clip(cells[r][c].strip())}'")
    for r, row in enumerate(cells):
        for c, text in enumerate(row):
            text = text.strip()
            if not text:
                return bad(r, c, "missing value, expected a number")
            try:
                value = float(text)
            except ValueError:
                return bad(r, c, f"expected a number, found '{_clip(text)}'")
            if not math.isfinite(value):
                return bad(r, c, f"expected a finite number, found '{_clip(text)}'")
    raise AssertionError("unreachable: a conversion failed but every cell parsed")  # pragma: no cover


def read_columns(source: ir.Source, base_dir: pathlib.Path,
                 choose: Callable[[list[str]], list[tuple[list[int], type]]]) -> tuple[int, list, list]:
    """Stream a CSV, keeping only the columns a reader needs.

    `choose(header)` checks the header (raising a DataError) and names the groups of columns to keep, each
    `(column indexes, dtype)`: np.float32 or np.float64 for numbers, kept as an array [rows, len(cols)], or
    str for one column of class labels, kept as `_Labels`. Returns the number of data rows, each group's
    values, and each numeric group's first bad cell (an E504 diagnostic, or None), which the reader raises
    in its own order, after its checks of the row count."""
    chunks = _csv_chunks(source, base_dir)
    header = next(chunks)
    try:
        groups = choose(header)
    except DataError:
        for _ in chunks:  # the file's own problems come first, as when it was read whole
            pass
        raise
    stores = [_Labels() if dtype is str else _Rows((len(cols),), dtype) for cols, dtype in groups]
    errors: list[Diagnostic | None] = [None] * len(groups)
    n = 0
    for rows, lines in chunks:
        n += len(rows)
        for g, ((cols, dtype), store) in enumerate(zip(groups, stores)):
            if dtype is str:
                store.add(rows, lines, cols[0])
            elif errors[g] is None:  # after the first bad cell, only the file's own problems are looked for
                block, errors[g] = _numbers(rows, lines, cols, header, source, dtype)
                if block is not None:
                    store.add(block)
    return n, [s if isinstance(s, _Labels) else s.array() for s in stores], errors


def _target_names(source: ir.Source, args: dict, task: ir.Task, fallback: tuple[str, ...] | None) -> tuple[str, ...]:
    target = args.get("target")
    if target is None:
        if fallback is not None:
            return fallback
        _fail(
            "E506",
            f"csv source '{source.path}' has no target column",
            source.span,
            help="name the column to predict, e.g. csv(\"data.csv\", target = \"label\")",
        )
    names = (target,) if isinstance(target, str) else target
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        _fail(
            "E506",
            f"target of '{source.path}' must be a column name or a list of names, found {target!r}",
            source.span,
        )
    if len(set(names)) != len(names):
        _fail("E506", f"target of '{source.path}' names a column twice: {list(names)}", source.span)
    if task is ir.Task.classification and len(names) != 1:
        _fail(
            "E506",
            f"classification needs exactly one target column, found {len(names)}: {', '.join(names)}",
            source.span,
            help="several target columns are only supported for regression",
        )
    return names


def _feature_arg(source: ir.Source, args: dict) -> tuple[str, ...] | None:
    features = args.get("features")
    if features is None:
        return None
    names = (features,) if isinstance(features, str) else features
    if not isinstance(names, tuple) or not names or not all(isinstance(n, str) for n in names):
        _fail("E506", f"features of '{source.path}' must be a list of column names, found {features!r}", source.span)
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        _fail("E506", f"features of '{source.path}' lists column '{dup}' twice", source.span)
    return names


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
