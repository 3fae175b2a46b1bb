"""parse: text -> syntax tree (ir.File). The Lark boundary: Lark's errors become diagnostics here."""

from __future__ import annotations

import dataclasses
import math
import re

from lark import Token, Transformer_NonRecursive, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..grammar import parser
from . import ir
from .diagnostics import Diagnostic, SpecError

# What each terminal is called in a message.
TOKEN_WORDS = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "a new line",
    "COMMA": "','",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "LSQB": "'['",
    "RSQB": "']'",
    "EQUAL": "'='",
    "COLON": "':'",
    "DOT": "'.'",
    "CMP": "a comparison",
    "$END": "the end of the file",
    "PLUS": "'+'",
    "MINUS": "'-'",
    "STAR": "'*'",
    "SLASH": "'/'",
    "PERCENT": "'%'",
    "__ANON_0": "'->'",
}


ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t"}

# The later passes (resolve, check, fmt, the language server) walk the syntax tree recursively, a few frames
# per level: deeper nesting is refused here, where its position is known, instead of overflowing Python's
# stack there. At 100 levels lint takes under half of the default 1000 frames, fmt under 800.
MAX_DEPTH = 100
# What counts as a level: every bracket and operator that leaves a node (parentheses leave none).
NESTING = {"section", "block_def", "call", "list", "record", "repeat", "neg", "add", "sub", "mul", "div", "compare",
           "then", "pipeline"}
MAX_DIGITS = 4300  # of a whole number: Python's default limit on int(str), past which it raises ValueError
# Bounds on hostile input, so that time and memory stay linear and small. Lark's pattern for a string holds
# about 150 bytes per character while it matches (750 MB for a 5 MB string): a longer string is cut out
# before Lark sees it. A spec is a page or two; one past MAX_SPEC_BYTES is refused before it is parsed.
MAX_STRING = 4096  # characters between the quotes: Linux's longest path
MAX_SPEC_BYTES = 1 << 18  # of UTF-8: 256 KiB, a hundred times the longest spec in specs/ (Lark: ~5 s at most)


def _word(tok_type: str) -> str:
    if tok_type in TOKEN_WORDS:
        return TOKEN_WORDS[tok_type]
    if tok_type.startswith("__ANON") or tok_type.isupper():
        pattern = _terminal_text(tok_type)
        return f"'{pattern}'" if pattern else tok_type.lower()
    return tok_type


def _terminal_text(tok_type: str) -> str | None:
    for t in parser().terminals:
        if t.name == tok_type and t.pattern.type == "str":
            return t.pattern.value
    return None


def _span(file: str, meta, lines: int = 0) -> ir.Span:
    if getattr(meta, "empty", False):
        return ir.Span(file, 1, 1, 1, 1)
    return ir.Span(file, meta.line + lines, meta.column, meta.end_line + lines, meta.end_column)


def _tok_span(file: str, tok: Token, lines: int = 0) -> ir.Span:
    return ir.Span(file, tok.line + lines, tok.column, tok.end_line + lines, tok.end_column)


def _shift(d: Diagnostic, lines: int) -> Diagnostic:
    """A diagnostic of a piece of text moved down to where the piece starts in its file."""
    s = d.span
    return dataclasses.replace(d, span=ir.Span(s.file, s.line + lines, s.col, s.end_line + lines, s.end_col))


def _line(text: str, n: int) -> str:
    """Line `n` (from 1) of `text`, as Lark counts lines, without splitting all of it."""
    start = 0
    for _ in range(n - 1):
        start = text.find("\n", start) + 1
        if not start:
            return ""
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


# A string as the lexer reads it (closed, or open to the end of its line), or a comment, which may hold quotes.
_STRING_OR_COMMENT = re.compile(r'#[^\n]*|"[^"\\\n]*(?:\\.[^"\\\n]*)*("?)')


def _cut_long_strings(text: str) -> tuple[str, dict[tuple[int, int], tuple[int, bool]]]:
    """`text` with each string longer than MAX_STRING replaced by `""` and spaces of the same length, so
    that every position stays where it was, and where each was: (line, col) -> (its length, closed)."""
    long, pieces, last, line, counted = {}, [], 0, 1, 0
    for m in _STRING_OR_COMMENT.finditer(text):
        if m.end() - m.start() - 2 <= MAX_STRING or text[m.start()] == "#":
            continue
        line += text.count("\n", counted, m.start())
        counted = m.start()
        col = m.start() - text.rfind("\n", 0, m.start())
        long[line, col] = (m.end() - m.start(), bool(m.group(1)))
        pieces += [text[last:m.start()], '""', " " * (m.end() - m.start() - 2)]
        last = m.end()
    return ("".join(pieces) + text[last:], long) if long else (text, long)


def _long_string(found: tuple[int, bool], span: ir.Span) -> Diagnostic:
    length, closed = found
    if not closed:  # what Lark says of a short one
        return Diagnostic(code="E103", message="unterminated string", span=ir.Span(
            span.file, span.line, span.col, span.line, span.col + 1), help='close the string with " on the same line')
    span = ir.Span(span.file, span.line, span.col, span.line, span.col + length)
    return Diagnostic(code="E110", message=f"a string of {length - 2:,} characters, longer than the {MAX_STRING:,} "
                      "trainc reads", span=span, help=f"a path or a name is at most {MAX_STRING:,} characters")


def _too_large(text: str, path: str) -> Diagnostic | None:
    """E109 at the first character past MAX_SPEC_BYTES of UTF-8, or None."""
    if len(text) <= MAX_SPEC_BYTES // 4:  # at most 4 bytes a character: surely small enough
        return None
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_SPEC_BYTES:
        return None
    return too_large(path, len(data), *_end(data[:MAX_SPEC_BYTES].decode("utf-8", "ignore")))


def too_large(path: str, size: int | None, line: int, col: int) -> Diagnostic:
    """The diagnostic of a spec of `size` bytes (None: unknown), more than MAX_SPEC_BYTES; at (line, col),
    where the limit falls."""
    size_ = f"{size:,} bytes, more than" if size and size > MAX_SPEC_BYTES else "more than"
    return Diagnostic(code="E109", message=f"the spec is {size_} the {MAX_SPEC_BYTES:,} bytes trainc reads; nothing "
                      "in it was checked", span=ir.Span(path, line, col, line, col + 1),
                      help="a spec is a page or two of settings: is this the right file?")


def _end(text: str) -> tuple[int, int]:
    """The line and column just after `text`."""
    return text.count("\n") + 1, len(text) - text.rfind("\n")


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as Python's text mode reads a file


def decode(data: bytes, path: str, size: int | None = None) -> tuple[str, Diagnostic | None]:
    """A spec's bytes -> its text, with new lines as Python's text mode reads them, and None; or, for bytes
    that are not a spec, the text that can be shown and why: more than MAX_SPEC_BYTES (E109, where the limit
    falls; `size`: the whole file's when `data` is its start) or not UTF-8 (E108, at the first bad byte).

    >>> decode(b"data {\\n  batch = 64 \\xff\\n}", "t.train")[1].span
    Span(file='t.train', line=2, col=14, end_line=2, end_col=15)
    """
    if len(data) > MAX_SPEC_BYTES:
        head = _newlines(data[:MAX_SPEC_BYTES].decode("utf-8", "replace"))
        return head, too_large(path, size, *_end(head))
    try:
        return _newlines(data.decode("utf-8")), None
    except UnicodeDecodeError as e:
        line, col = _end(_newlines(data[:e.start].decode("utf-8")))
        utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
        return _newlines(data.decode("utf-8", "replace")), Diagnostic(
            code="E108", message=f"not UTF-8 text: byte 0x{data[e.start]:02x} is an {e.reason}"
            if e.reason.startswith("invalid") else "not UTF-8 text: it ends inside a character",
            span=ir.Span(path, line, col, line, col + 1),
            help="it looks like UTF-16: save it as UTF-8" if utf16 else "save it as UTF-8 (a spec is text)")


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


class _Build(Transformer_NonRecursive):
    """Lark tree -> ir syntax nodes. One method per grammar rule or alias. Not recursive: the depth
    is bounded by `_too_nested` for the passes after, not by Python's stack here.

    `lines`: how many lines of the file come before the text parsed (see `parse_partial`)."""

    def __init__(self, file: str, lines: int = 0, long: dict[tuple[int, int], tuple[int, bool]] | None = None):
        super().__init__()
        self.file, self.lines = file, lines
        self.long = long or {}  # (line, col) of a string cut out by `_cut_long_strings` -> (length, closed)
        self.errors: list[Diagnostic] = []

    def s(self, meta) -> ir.Span:
        return _span(self.file, meta, self.lines)

    def tok(self, tok: Token) -> ir.Span:
        return _tok_span(self.file, tok, self.lines)

    def num(self, tok: Token) -> int | float:
        text = str(tok)
        if text.isdigit() and len(text) > MAX_DIGITS:
            self.errors.append(Diagnostic(code="E107", message=f"a whole number of {len(text)} digits, too long to "
                                          "read", span=self.tok(tok), help=f"a whole number has at most {MAX_DIGITS} "
                                          "digits"))
            return 0
        return _number(text)

    @v_args(meta=True)
    def start(self, meta, items):
        return ir.File(items=tuple(items), span=self.s(meta))

    @v_args(meta=True)
    def section(self, meta, c):
        name, body = c
        return ir.Section(name=str(name), body=body, name_span=self.tok(name), span=self.s(meta))

    def body(self, stmts):
        return tuple(stmts)

    @v_args(meta=True)
    def entry(self, meta, c):
        key, value = c
        return ir.Entry(key=str(key), value=value, key_span=self.tok(key), span=self.s(meta))

    @v_args(meta=True)
    def input_decl(self, meta, c):
        name, dtype, dims = c
        return ir.InputDecl(name=str(name), dtype=str(dtype), dims=dims or (), span=self.s(meta))

    def dims(self, toks):
        return tuple(self.num(t) for t in toks)

    @v_args(meta=True)
    def block_def(self, meta, c):
        name, params, body = c
        return ir.BlockDef(name=str(name), params=params or (), body=body, span=self.s(meta))

    def params(self, ps):
        return tuple(ps)

    @v_args(meta=True)
    def param(self, meta, c):
        name, *default = c
        return ir.Param(name=str(name), default=default[0] if default else None, span=self.s(meta))

    @v_args(meta=True)
    def then(self, meta, parts):
        return ir.Then(parts=tuple(parts), span=self.s(meta))

    @v_args(meta=True)
    def compare(self, meta, c):
        left, op, right = c
        return ir.BinOp(op=str(op), left=left, right=right, span=self.s(meta))

    @v_args(meta=True)
    def pipeline(self, meta, stages):
        return ir.Pipeline(stages=tuple(stages), span=self.s(meta))

    def _binop(op):
        @v_args(meta=True)
        def method(self, meta, c):
            return ir.BinOp(op=op, left=c[0], right=c[1], span=self.s(meta))

        return method

    add, sub, mul, div = _binop("+"), _binop("-"), _binop("*"), _binop("/")

    @v_args(meta=True)
    def neg(self, meta, c):
        (operand,) = c
        if isinstance(operand, ir.Number):
            return ir.Number(value=-operand.value, span=self.s(meta))
        if isinstance(operand, ir.Quantity):
            return ir.Quantity(value=-operand.value, unit=operand.unit, span=self.s(meta))
        return ir.Neg(operand=operand, span=self.s(meta))

    @v_args(meta=True)
    def number(self, meta, c):
        return ir.Number(value=self.num(c[0]), span=self.s(meta))

    @v_args(meta=True)
    def quantity(self, meta, c):
        return ir.Quantity(value=self.num(c[0]), unit=str(c[1]), span=self.s(meta))

    @v_args(meta=True)
    def percent(self, meta, c):
        return ir.Quantity(value=self.num(c[0]), unit="%", span=self.s(meta))

    @v_args(meta=True)
    def string(self, meta, c):
        span = self.s(meta)
        if (c[0].line, c[0].column) in self.long:
            self.errors.append(_long_string(self.long[c[0].line, c[0].column], span))
            return ir.Str(value="", span=span)
        raw = str(c[0])[1:-1]
        if "\\" not in raw:
            return ir.Str(value=raw, span=span)
        parts, i = [], 0
        while i < len(raw):
            ch = raw[i]
            if ch == "\\":
                nxt = raw[i + 1]  # the grammar guarantees a character after a backslash
                if nxt not in ESCAPES:
                    col = span.col + 1 + i
                    self.errors.append(Diagnostic(
                        code="E105", message=f"unknown escape '\\{nxt}' in a string",
                        span=ir.Span(self.file, span.line, col, span.line, col + 2),
                        help="write paths with '/' (it works on Windows too), or double the backslash: '\\\\'"))
                parts.append(ESCAPES.get(nxt, nxt))
                i += 2
                continue
            parts.append(ch)
            i += 1
        return ir.Str(value="".join(parts), span=span)

    @v_args(meta=True)
    def true(self, meta, c):
        return ir.Bool(value=True, span=self.s(meta))

    @v_args(meta=True)
    def false(self, meta, c):
        return ir.Bool(value=False, span=self.s(meta))

    @v_args(meta=True)
    def ref(self, meta, c):
        return ir.Ref(parts=tuple(str(t) for t in c), span=self.s(meta))

    @v_args(meta=True)
    def call(self, meta, c):
        name, args = c
        args = args or ()
        seen_kw = False
        for a in args:
            if isinstance(a, ir.KwArg):
                seen_kw = True
            elif seen_kw:
                self.errors.append(Diagnostic(code="E104", message="positional argument after a keyword argument",
                                              span=a.span, help="move it before the keyword arguments"))
        pos = tuple(a for a in args if not isinstance(a, ir.KwArg))
        kw = tuple(a for a in args if isinstance(a, ir.KwArg))
        return ir.Call(name=name, args=pos, kwargs=kw, span=self.s(meta))

    def args(self, c):
        return tuple(c)

    @v_args(meta=True)
    def kwarg(self, meta, c):
        name, value = c
        return ir.KwArg(name=str(name), value=value, span=self.s(meta))

    @v_args(meta=True)
    def list(self, meta, c):
        (items,) = c
        return ir.ListExpr(items=tuple(items or ()), span=self.s(meta))

    def items(self, c):
        return tuple(c)

    @v_args(meta=True)
    def repeat(self, meta, c):
        times, body = c
        return ir.Repeat(times=times, body=body, span=self.s(meta))

    @v_args(meta=True)
    def record(self, meta, c):
        (body,) = c
        return ir.Record(entries=tuple(body), span=self.s(meta))


def _syntax_diagnostic(e: UnexpectedInput, path: str, text: str) -> Diagnostic:
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = ir.Span(path, e.line, e.column, e.line, e.column + 1)
        if ch == '"':
            return Diagnostic(code="E103", message="unterminated string", span=span,
                              help='close the string with " on the same line')
        return Diagnostic(code="E101", message=f"unexpected character {ch!r}", span=span,
                          help="names are letters, digits and '_'; comments start with '#'")
    if isinstance(e, UnexpectedEOF) or (isinstance(e, UnexpectedToken) and e.token.type == "$END"):
        lines = text.split("\n")  # Lark counts lines by "\n" only (not str.splitlines()'s \r, \f, \u2028, ...)
        if len(lines) > 1 and not lines[-1]:
            lines.pop()  # after a final new line: at the end of the line before
        line = len(lines)
        span = ir.Span(path, line, len(lines[-1]) + 1, line, len(lines[-1]) + 2)
        expected = sorted({_word(t) for t in e.expected if not t.startswith("_") or t == "_NL"})
        return Diagnostic(code="E102", message="unexpected end of file",
                          span=span, help=f"expected {_join(expected)}; is a '}}' or ')' missing?")
    assert isinstance(e, UnexpectedToken)
    tok = e.token
    span = _tok_span(path, tok) if tok.line is not None else ir.Span(path, e.line, e.column, e.line, e.column + 1)
    found = "a new line" if tok.type == "_NL" else f"'{tok}'"
    if tok.type == "_NL":
        span = ir.Span(path, tok.line, tok.column, tok.line, tok.column + 1)
    expected = sorted({_word(t) for t in e.expected})
    help_ = f"expected {_join(expected)}"
    before = _line(text, tok.line)[max(tok.column - 201, 0): tok.column - 1] if tok.line else ""  # 200 is plenty
    glued = re.search(r"[0-9.]\s+([A-Za-z_]\w*)\s*$", before)
    if tok.type == "EQUAL" and glued:
        # `batch = 64 shuffle = true`: the parser read `64 shuffle` as a number with a unit
        name = glued.group(1)
        return Diagnostic(code="E102", message=f"unexpected '=' after '{name}'",
                          span=ir.Span(path, tok.line, tok.column - len(before) + glued.start(1), tok.line,
                                       tok.column - len(before) + glued.end(1)),
                          help=f"'{name}' reads as the unit of the number before it; put each setting on its own "
                               "line or separate them with ','")
    if tok.type == "NAME" and "EQUAL" in e.expected:
        help_ += f"; a key is followed by '=' (write `{tok} = ...`)"
    elif tok.type in ("NAME", "NUMBER", "STRING") and "_NL" in e.expected:
        help_ += "; put each setting on its own line or separate them with ','"
    return Diagnostic(code="E102", message=f"unexpected {found}", span=span, help=help_)


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return words[0] if words else "something else"
    if len(words) > 6:
        return ", ".join(words[:6]) + ", ..."
    return ", ".join(words[:-1]) + " or " + words[-1]


def parse(text: str, path: str) -> ir.File:
    """Parse a whole spec. Raises SpecError with the syntax diagnostics (E1xx) of every item that fails.

    >>> parse("batch = 64", "t.train").items[0].key
    'batch'
    """
    file, problems, _ = parse_partial(text, path)
    if problems:
        raise SpecError(problems)
    return file


def parse_partial(text: str, path: str) -> tuple[ir.File, list[Diagnostic], frozenset[str]]:
    """Parse what parses: the file made of the top-level items without syntax errors, the syntax
    diagnostics of the others (the first Lark error of each, or every E104/E105 in it), and the
    names of the items left out, so that later passes stay quiet about them.

    A valid file is parsed once, as a whole. Otherwise it is split into top-level items (a
    `name { ... }` section to its matching brace, a `name = value` entry to the end of its
    brackets) and each is parsed on its own, its positions moved down to its own lines.

    >>> [d.code for d in parse_partial("data {\\n  batch 64\\n}\\nloss = mse(y, target)\\n", "t")[1]]
    ['E102']
    """
    huge = _too_large(text, path)
    if huge:  # nothing is parsed: every section counts as present but unreadable, so nothing follows on
        from .catalog import SECTIONS

        return ir.File(items=(), span=ir.Span(path, 1, 1, 1, 1)), [huge], frozenset(SECTIONS)
    try:
        return _parse_text(text, path), [], frozenset()
    except SpecError as e:
        whole = e.diagnostics
    chunks = _chunks(text)
    if len(chunks) == 1 and chunks[0].unclosed is None and not {d.code for d in whole} & {"E101", "E102", "E103"}:
        return ir.File(items=(), span=ir.Span(path, 1, 1, 1, 1)), whole, frozenset({chunks[0].name})  # no second try:
        # one item, whose problems do not depend on where it ends (E104-E107, E110), as parsed already
    items, problems, broken = [], [], set()
    for chunk in chunks:
        try:
            items += _parse_text(chunk.text, path, unclosed=chunk.unclosed, lines=chunk.line - 1).items
        except SpecError as e:
            problems += e.diagnostics
            broken.add(chunk.name)
    spans = [i.span for i in items]
    span = ir.Span(path, spans[0].line, spans[0].col, spans[-1].end_line, spans[-1].end_col) if spans else \
        ir.Span(path, 1, 1, 1, 1)
    return ir.File(items=tuple(items), span=span), problems, frozenset(broken)


def _parse_text(text: str, path: str, unclosed: tuple[int, int, str, int] | None = None, lines: int = 0) -> ir.File:
    """`text` as a file, its positions moved down by `lines`; `unclosed` (in the file's lines) as `_Chunk`'s."""
    text, long = _cut_long_strings(text)
    try:
        tree = parser().parse(text, start="start")
    except UnexpectedInput as e:
        tok = getattr(e, "token", None)
        at_end = isinstance(e, UnexpectedEOF) or (tok is not None and tok.type == "$END")
        at = (math.inf, 0) if at_end else (tok.line, tok.column) if tok is not None and tok.line else (e.line, e.column)
        cut = min((pos for pos, (_, closed) in long.items() if not closed and pos < at), default=None)
        if cut is not None:  # an unterminated string cut out: Lark would have stopped there, before `at`
            raise SpecError([_shift(_long_string(long[cut], ir.Span(path, *cut, *cut)), lines)]) from None
        closer = tok is not None and tok.type in ("RBRACE", "RPAR", "RSQB") and unclosed is not None and \
            (tok.line + lines, tok.column) > unclosed[:2]
        if unclosed and (at_end or closer):  # say which bracket is left open, not "end of file" or "unexpected '}'"
            raise SpecError([_unclosed_diagnostic(unclosed, path)]) from None
        raise SpecError([_shift(_syntax_diagnostic(e, path, text), lines)]) from None
    return _build(tree, path, lines, long)


def _build(tree: Tree, path: str, lines: int = 0, long: dict | None = None):
    """A Lark tree -> ir syntax nodes, or SpecError: nested too deep, or what _Build found (E104, E105, E107)."""
    deep = _too_nested(tree, path, lines)
    if deep:
        raise SpecError([deep])
    build = _Build(path, lines, long)
    out = build.transform(tree)
    if build.errors:
        raise SpecError(build.errors)
    return out


def _too_nested(tree: Tree, path: str, lines: int = 0) -> Diagnostic | None:
    """E106 at the first node nested more than MAX_DEPTH deep (without recursing: it may be thousands)."""
    deepest, first, stack = 0, None, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in NESTING:
            depth += 1
            if depth > MAX_DEPTH and first is None:
                first = node
            deepest = max(deepest, depth)
        stack += [(c, depth) for c in reversed(node.children) if isinstance(c, Tree)]  # reversed: the first on top
    if first is None:
        return None
    m = first.meta
    return Diagnostic(code="E106", message=f"nested {deepest} deep, more than the {MAX_DEPTH} levels trainc reads",
                      span=ir.Span(path, m.line + lines, m.column, m.line + lines, m.column + 1),
                      help="each bracket, call and operator is a level; name the inner parts (a block, a value)")


def _unclosed_diagnostic(unclosed: tuple[int, int, str, int], path: str) -> Diagnostic:
    line, col, bracket, next_line = unclosed
    close = {"{": "}", "(": ")", "[": "]"}[bracket]
    where = f" before the next section, on line {next_line}" if next_line else ""
    return Diagnostic(code="E102", message=f"'{bracket}' is not closed", span=ir.Span(path, line, col, line, col + 1),
                      help=f"close it with '{close}'{where}")


class _Chunk:
    """One top-level item of a file that does not parse: its first line, its lines, its name, and
    the bracket guessed to be left open (line, col, char, line of the next item or 0), if any."""

    __slots__ = ("line", "text", "name", "unclosed")

    def __init__(self, line: int, text: str, name: str, unclosed: tuple[int, int, str, int] | None):
        self.line, self.text, self.name, self.unclosed = line, text, name, unclosed


_ITEM_START = re.compile(r"([A-Za-z_]\w*)\s*[{=]")  # `data {`, `loss =` at the start of a line
_NAME = re.compile(r"\s*([A-Za-z_]\w*)")


_OPENER = {"}": "{", ")": "(", "]": "["}
# A bracket, a comment's start, or a string to skip (to its closing quote or, unterminated, the end of the line).
_BRACKET_OR_SKIP = re.compile(r'[{}()\[\]#]|"[^"\\\n]*(?:\\[\s\S][^"\\\n]*)*"?')
_BLANK = re.compile(r"[ \t\f]*(#[^\n]*)?\r?\n?")  # blank to the lexer: not str.strip()'s \r, \v, NBSP, ...


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _chunks(text: str) -> list[_Chunk]:
    """Split a file into top-level items by brackets, skipping strings and comments.

    An item ends at the end of a line where every bracket it opened is closed. Two guesses keep
    one missing bracket from swallowing the rest of the file:
    - a line that starts in column 1 with a section name and `{` or `=` starts a new item even
      inside brackets (sections do not nest); the innermost open bracket is the unclosed one;
    - a closing bracket that starts its line closes the bracket opened on a line indented as
      much; brackets opened on lines indented more are left open (the outermost is reported).
    A closing bracket of the wrong kind is left for Lark to report; it closes nothing.
    """
    from .catalog import SECTIONS  # the names that may start a top-level item

    chunks: list[_Chunk] = []
    lines = text.split("\n")  # not splitlines(): Lark counts lines by "\n" only, and so must we
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    start, stack, unclosed = None, [], None  # the current item: first line, open brackets, a guess

    def close(end: int):
        name = _NAME.match(lines[start])
        chunks.append(_Chunk(start + 1, "".join(lines[start:end]), name[1] if name else "", unclosed))

    for n, line in enumerate(lines):
        head = _ITEM_START.match(line)
        if stack and head and head[1] in SECTIONS:
            unclosed = unclosed or (*stack[-1][:3], n + 1)
            close(n)
            start, stack, unclosed = None, [], None
        if start is None:
            if _BLANK.fullmatch(line):
                continue  # blank and comment lines between items belong to none
            start = n
        indent = _indent(line)
        for m in _BRACKET_OR_SKIP.finditer(line):  # linear in the line: a regex finds each bracket
            i = m.start()
            ch = line[i]
            if ch == "#":
                break
            if ch in "{([":
                stack.append((n + 1, i + 1, ch, indent))
            elif ch in "})]" and stack:
                opened = None
                while i == indent and len(stack) > 1 and stack[-1][3] > i:  # `}` first on its line:
                    opened = stack.pop()  # what was opened on lines indented more is left open
                unclosed = unclosed or (opened and (*opened[:3], 0))
                if stack[-1][2] == _OPENER[ch]:  # a stray closer stays for Lark to report
                    stack.pop()
        if not stack:
            close(n + 1)
            start, unclosed = None, None
    if start is not None:
        close(len(lines))  # open at the end of the file: Lark says "unexpected end of file"
    return chunks


def parse_expr(text: str, path: str) -> ir.Expr:
    """Parse one value, as given on the command line (`--set stop.max="3 epochs"`)."""
    text, long = _cut_long_strings(text)
    try:
        tree = parser().parse(text, start="expr")
    except UnexpectedInput as e:
        raise SpecError([_syntax_diagnostic(e, path, text)]) from None
    return _build(tree, path, long=long)
