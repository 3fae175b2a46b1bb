"""parse: text -> syntax tree (ir.File). The Lark boundary: Lark's errors become diagnostics here."""

from __future__ import annotations

import re

from lark import Token, Transformer, v_args
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


def _span(file: str, meta) -> ir.Span:
    if getattr(meta, "empty", False):
        return ir.Span(file, 1, 1, 1, 1)
    return ir.Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(file: str, tok: Token) -> ir.Span:
    return ir.Span(file, tok.line, tok.column, tok.end_line, tok.end_column)


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


class _Build(Transformer):
    """Lark tree -> ir syntax nodes. One method per grammar rule or alias."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.errors: list[Diagnostic] = []

    def s(self, meta) -> ir.Span:
        return _span(self.file, meta)

    @v_args(meta=True)
    def start(self, meta, items):
        return ir.File(items=tuple(items), span=self.s(meta))

    @v_args(meta=True)
    def section(self, meta, c):
        name, body = c
        return ir.Section(name=str(name), body=body, name_span=_tok_span(self.file, name), span=self.s(meta))

    def body(self, stmts):
        return tuple(stmts)

    @v_args(meta=True)
    def entry(self, meta, c):
        key, value = c
        return ir.Entry(key=str(key), value=value, key_span=_tok_span(self.file, key), span=self.s(meta))

    @v_args(meta=True)
    def input_decl(self, meta, c):
        name, dtype, dims = c
        return ir.InputDecl(name=str(name), dtype=str(dtype), dims=dims or (), span=self.s(meta))

    def dims(self, toks):
        return tuple(_number(str(t)) for t in toks)

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
        return ir.Number(value=_number(str(c[0])), span=self.s(meta))

    @v_args(meta=True)
    def quantity(self, meta, c):
        return ir.Quantity(value=_number(str(c[0])), unit=str(c[1]), span=self.s(meta))

    @v_args(meta=True)
    def percent(self, meta, c):
        return ir.Quantity(value=_number(str(c[0])), unit="%", span=self.s(meta))

    @v_args(meta=True)
    def string(self, meta, c):
        span = self.s(meta)
        parts, raw, i = [], str(c[0])[1:-1], 0
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
        lines = text.splitlines() or [""]
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
    before = text.splitlines()[tok.line - 1][: tok.column - 1] if tok.line else ""
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
    """Parse a whole spec. Raises SpecError with a syntax diagnostic (E1xx).

    >>> parse("batch = 64", "t.train").items[0].key
    'batch'
    """
    try:
        tree = parser().parse(text, start="start")
        build = _Build(path)
        out = build.transform(tree)
    except UnexpectedInput as e:
        raise SpecError([_syntax_diagnostic(e, path, text)]) from None
    if build.errors:
        raise SpecError(build.errors)
    return out


def parse_expr(text: str, path: str) -> ir.Expr:
    """Parse one value, as given on the command line (`--set stop.max="3 epochs"`)."""
    try:
        tree = parser().parse(text, start="expr")
        build = _Build(path)
        out = build.transform(tree)
    except UnexpectedInput as e:
        raise SpecError([_syntax_diagnostic(e, path, text)]) from None
    if build.errors:
        raise SpecError(build.errors)
    return out
