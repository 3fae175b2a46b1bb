"""fmt: the one canonical layout of a spec, like gofmt; no options (`trainc fmt`).

The formatter prints the token stream, comments included, not the syntax tree: every comment,
the spelling of every number and string and the user's parentheses survive by construction.
The syntax tree refuses broken files (the parse diagnostics) and proves that the result means
the same as the input. The layout (documented in specs/README.md, "Formatting"):

- line breaks between statements are the user's; blank lines collapse to one, none after `{`,
  before `}` or at the ends of the file; a comma that separates statements on two lines goes;
- a section written on one line stays `name { a = 1, b = 2 }`, any other is
  `name {`, one statement per line indented by two spaces, `}`; `{}` when empty;
- one space around `=`, `->`, `then`, comparisons and binary + - * /, after `,` and `:`; none
  inside (...) and [...], before `(` of a call, around `.`, after a unary `-`, before `%`;
- `=` aligned over a run of `key = value` lines of one body: a blank line or a section (or
  block) spanning lines ends the run; comment lines and other one-line statements pass through;
- inside (...) and [...] the user's line breaks stay; continuation lines line up after the
  bracket, or, when the bracket ends its line, are indented two spaces with the closing
  bracket on a line of its own; a trailing comma goes, a comma starting a line moves up;
- trailing comments sit two spaces after the longest code of consecutive commented lines.

    >>> format_text("stop{max=3 epochs}\\n")
    'stop { max = 3 epochs }\\n'
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from lark import Token
from lark.exceptions import LarkError, UnexpectedInput

from ..grammar import parser
from .diagnostics import Diagnostic, SpecError
from .ir import Span
from .parse import _syntax_diagnostic, parse

_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_NO_SPACE_AFTER = {"LPAR", "LSQB", "DOT"}
_NO_SPACE_BEFORE = {"RPAR", "RSQB", "COMMA", "DOT", "PERCENT", "COLON"}
_OPERAND_END = {"NAME", "NUMBER", "STRING", "TRUE", "FALSE", "PERCENT", "RPAR", "RSQB", "RBRACE"}  # `-` after: binary
COMMENT_GAP = 2  # spaces between code and a trailing comment


@dataclass
class _Group:
    """A bracketed stretch of tokens: `(...)`, `[...]` or `{...}`, with nested groups as items."""

    open: Token
    items: list = field(default_factory=list)
    close: Token | None = None


def _first(item) -> Token:
    return item.open if isinstance(item, _Group) else item


def _last(item) -> Token:
    return item.close if isinstance(item, _Group) else item


def _is(item, kind: str) -> bool:
    return isinstance(item, Token) and item.type == kind


def _comment(tok: Token) -> str:
    return str(tok).rstrip()


@dataclass
class _BodyLine:
    """One line of a section body (or of the file): a comment, or statements with a trailing comment."""

    blank_before: bool
    comment: str | None = None  # a comment line
    stmts: list[list] = field(default_factory=list)
    trailing: str | None = None

    def entry_key(self) -> str | None:
        """The key when the line is a single `key = value`."""
        if len(self.stmts) == 1 and len(self.stmts[0]) > 1 and _is(self.stmts[0][0], "NAME") \
                and _is(self.stmts[0][1], "EQUAL"):
            return str(self.stmts[0][0])
        return None

    def spans_lines(self) -> bool:
        """A section or block whose body is written over several lines."""
        return any(isinstance(it, _Group) and it.open.type == "LBRACE" and _brace_multiline(it)
                   for stmt in self.stmts for it in stmt)


@dataclass
class _Line:
    indent: int
    code: str = ""
    comment: str | None = None


def _tokens(text: str) -> list:
    """Lex with comments kept; whitespace and newlines dropped (token lines say where lines break)."""
    toks = [t for t in parser().lex(text, dont_ignore=True) if t.type != "_NL" and not t.type.startswith("__IGNORE")]
    top = _Group(open=None)
    stack = [top]
    for t in toks:
        if t.type in _OPEN:
            g = _Group(open=t)
            stack[-1].items.append(g)
            stack.append(g)
        elif t.type in _OPEN.values():
            stack.pop().close = t
        else:
            stack[-1].items.append(t)
    return top.items


def _brace_multiline(g: _Group) -> bool:
    """Whether a `{...}` is laid out over lines: the user broke a line at its level, or it holds a
    comment or a `{...}` laid out over lines."""
    edges = [g.open, *g.items, g.close]
    return any(_is(it, "COMMENT") or isinstance(it, _Group) and it.open.type == "LBRACE" and _brace_multiline(it)
               for it in g.items) or any(_first(b).line > _last(a).end_line for a, b in zip(edges, edges[1:]))


def _split_body(items: list, open_tok: Token | None) -> tuple[list[_BodyLine], str | None]:
    """Statements by line, comments attached: -> (lines, the comment after the opening `{`)."""
    lines: list[_BodyLine] = []
    opener = None
    cur = stmt = None
    prev_end = open_tok.line if open_tok is not None else None
    for it in items:
        gap = _first(it).line - prev_end if prev_end is not None else 0
        if _is(it, "COMMENT"):
            if prev_end is not None and gap == 0 and (cur is not None or open_tok is not None):  # not `,# c` atop
                if cur is None:
                    opener = _comment(it)
                else:
                    cur.trailing = _comment(it)
            else:
                lines.append(_BodyLine(blank_before=gap >= 2, comment=_comment(it)))
                cur = stmt = None
        elif _is(it, "COMMA"):
            stmt = None
        else:
            if cur is None or gap > 0:
                cur, stmt = _BodyLine(blank_before=gap >= 2), None
                lines.append(cur)
            if stmt is None:
                stmt = []
                cur.stmts.append(stmt)
            stmt.append(it)
        prev_end = _last(it).end_line
    return lines, opener


def _key_widths(lines: list[_BodyLine]) -> list[int | None]:
    """For each `key = value` line, the width its key is padded to: the longest key of its run."""
    widths: list[int | None] = [None] * len(lines)
    run: list[int] = []

    def flush():
        width = max((len(lines[i].entry_key()) for i in run), default=0)
        for i in run:
            widths[i] = width
        run.clear()

    for i, line in enumerate(lines):
        if line.blank_before:
            flush()
        if line.entry_key() is not None:
            run.append(i)
        elif line.spans_lines():
            flush()
    flush()
    return widths


class _Printer:
    def __init__(self):
        self.lines: list[_Line | None] = []  # None: a blank line
        self.prev: Token | None = None  # the last token printed
        self.unary = False  # whether `prev` is a unary minus

    @property
    def cur(self) -> _Line:
        return self.lines[-1]

    def newline(self, indent: int) -> None:
        self.lines.append(_Line(indent))

    def blank(self) -> None:
        self.lines.append(None)

    def col(self) -> int:
        return self.cur.indent + len(self.cur.code)

    def trailing(self, text: str) -> None:
        if self.cur.comment is not None:  # cannot happen by construction; keep the comment anyway
            self.newline(self.cur.indent)
        self.cur.comment = text

    def comment_line(self, indent: int, text: str) -> None:
        self.newline(indent)
        self.cur.comment = text

    def attach(self, text: str) -> None:
        """Add to the last line holding code, before its comment (a comma after a comment moves up)."""
        for line in reversed(self.lines):
            if line is not None and line.code:
                line.code += text
                return

    def space(self, tok: Token) -> str:
        prev = self.prev
        if prev is None or tok.type in _NO_SPACE_BEFORE or prev.type in _NO_SPACE_AFTER or self.unary:
            return ""
        if tok.type in ("LPAR", "LSQB") and prev.type == "NAME":  # a call, a block, `f32[...]`
            return ""
        return " "

    def token(self, tok: Token, at_line_start: bool = False) -> None:
        if not at_line_start:
            self.cur.code += self.space(tok)
        self.unary = tok.type == "MINUS" and (self.prev is None or self.prev.type not in _OPERAND_END)
        self.cur.code += str(tok)
        self.prev = tok

    def item(self, it, at_line_start: bool = False) -> None:
        if not isinstance(it, _Group):
            self.token(it, at_line_start)
        elif it.open.type == "LBRACE":
            self.brace(it, at_line_start)
        else:
            self.paren(it, at_line_start)

    # ---- bodies: the file, sections, records, block and repeat bodies -------------------------------

    def body(self, items: list, indent: int, open_tok: Token | None) -> None:
        lines, _ = _split_body(items, open_tok)
        widths = _key_widths(lines)
        for i, line in enumerate(lines):
            if line.blank_before and i > 0:
                self.blank()
            if line.comment is not None:
                self.comment_line(indent, line.comment)
                continue
            self.newline(indent)
            for j, stmt in enumerate(line.stmts):
                if j:
                    self.cur.code += ", "
                self.prev, self.unary = None, False
                for k, it in enumerate(stmt):
                    self.item(it)
                    if k == 0 and widths[i] is not None:
                        self.cur.code += " " * (widths[i] - len(str(it)))
            if line.trailing is not None:
                self.trailing(line.trailing)

    def brace(self, g: _Group, at_line_start: bool) -> None:
        self.token(g.open, at_line_start)
        content = [it for it in g.items if not _is(it, "COMMA")]
        if not content:
            self.cur.code += "}"
        elif not _brace_multiline(g):
            lines, _ = _split_body(g.items, g.open)
            for i, stmt in enumerate(lines[0].stmts):
                self.cur.code += ", " if i else " "
                self.prev, self.unary = None, False
                for it in stmt:
                    self.item(it)
            self.cur.code += " }"
        else:
            base = self.cur.indent
            _, opener = _split_body(g.items, g.open)
            if opener is not None:
                self.trailing(opener)
            self.body(g.items, base + 2, g.open)
            self.newline(base)
            self.cur.code += "}"
        self.prev, self.unary = g.close, False

    # ---- (...) and [...]: calls, lists, parentheses, block parameters, input dimensions ----------------

    def paren(self, g: _Group, at_line_start: bool) -> None:
        base = self.cur.indent
        self.token(g.open, at_line_start)
        items = list(g.items)
        code = [i for i, it in enumerate(items) if not _is(it, "COMMENT")]
        if code and _is(items[code[-1]], "COMMA"):  # a trailing comma goes
            del items[code[-1]]
            code.pop()
        hanging = (_first(items[code[0]]).line > g.open.line) if code else bool(items)  # only comments: hanging
        cont = base + 2 if hanging else self.col()
        prev_end, started, moved = g.open.line, False, False
        for it in items:
            line = _first(it).line
            if _is(it, "COMMENT"):
                if line == prev_end and self.cur.comment is None:
                    self.trailing(_comment(it))
                else:
                    if line - prev_end >= 2 and started:
                        self.blank()
                    self.comment_line(cont, _comment(it))
            elif _is(it, "COMMA"):
                self.attach(",")
                self.prev, self.unary = it, False
                moved = line > prev_end  # a comma that started a line: the next item starts it instead
            else:
                brk = line > prev_end or moved or self.cur.comment is not None
                moved = False
                if brk:
                    if line - prev_end >= 2 and started:
                        self.blank()
                    self.newline(cont)
                self.item(it, at_line_start=brk)
                started = True
            prev_end = _last(it).end_line
        if hanging or self.cur.comment is not None:  # never after a comment: it runs to the end of the line
            self.newline(base)
        self.cur.code += str(g.close)
        self.prev, self.unary = g.close, False


def _align_comments(lines: list[_Line | None]) -> list[str]:
    """Render lines; trailing comments of consecutive lines share one column."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line is None:
            out.append("")
            i += 1
            continue
        if not (line.code and line.comment is not None):
            text = " " * line.indent + line.code if line.code else " " * line.indent + (line.comment or "")
            out.append(text.rstrip())
            i += 1
            continue
        j = i
        while j < len(lines) and lines[j] is not None and lines[j].code and lines[j].comment is not None:
            j += 1
        col = max(lines[k].indent + len(lines[k].code) for k in range(i, j)) + COMMENT_GAP
        for k in range(i, j):
            code = " " * lines[k].indent + lines[k].code
            out.append(code.ljust(col) + lines[k].comment)
        i = j
    return out


def _too_deep(text: str, path: str) -> Diagnostic:
    """E106 at the innermost bracket of the deepest nesting."""
    depth, deepest, at = 0, 0, None
    try:
        for t in parser().lex(text, dont_ignore=True):
            if t.type in _OPEN:
                depth += 1
                if depth > deepest:
                    deepest, at = depth, t
            elif t.type in _OPEN.values():
                depth -= 1
    except LarkError:  # a character the lexer refuses, further on: the deepest bracket before it
        pass
    span = Span(path, at.line, at.column, at.line, at.column + 1) if at is not None else Span(path, 1, 1, 1, 1)
    return Diagnostic(code="E106", message=f"brackets nested {deepest} deep, too deep to format", span=span,
                      help="remove redundant parentheses, or name the inner parts (a block, a value)")


def comments(text: str) -> list[str]:
    """The comments of a spec, in order (for checking that formatting keeps them all)."""
    return [_comment(t) for t in parser().lex(text, dont_ignore=True) if t.type == "COMMENT"]


def format_text(text: str, path: str = "<stdin>") -> str:
    """The canonical layout of a spec. Raises SpecError with the syntax diagnostics when it does not parse.

    The result is parsed again and compared with the input (syntax tree and comments); a mismatch,
    a bug in the formatter, raises AssertionError rather than return a spec that means something else."""
    try:  # parsing, printing and comparing trees recurse once per bracket: `((((...))))` thousands deep
        before = parse(text, path)  # refuses broken files
        try:
            tokens = _tokens(text)
        except UnexpectedInput as e:  # a character the parser's recovery skipped: a '\r' before a comment
            raise SpecError([_syntax_diagnostic(e, path, text)]) from None
        printer = _Printer()
        printer.body(tokens, 0, None)
        lines = _align_comments(printer.lines)
        out = "\n".join(lines) + "\n" if lines else ""
        try:
            after = parse(out, path)
        except SpecError as e:
            raise AssertionError(f"trainc fmt broke {path}: {e}; this is a bug in trainc fmt") from None
        same = after == before
    except RecursionError:
        raise SpecError([_too_deep(text, path)]) from None
    if not same or Counter(comments(out)) != Counter(comments(text)):
        raise AssertionError(f"trainc fmt changed the meaning or the comments of {path}; this is a bug in trainc fmt")
    return out


__all__ = ["format_text", "comments"]
