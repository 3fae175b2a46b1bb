"""`trainc lsp`: the language server for .train files (LSP over stdio, pygls 2).

Every editor feature is a plain function of the document's text and a client position that
returns lsprotocol types, so it is tested without a client; the handlers in `server()` only fetch
the document and call them. What the server answers:

    diagnostics      `lint` on open and save at once, on change after a 0.3 s pause
    completion       sections, keys, layers, losses, ... and a call's keyword arguments
    hover            the documentation of the name under the cursor; a model value's shape
    definition       blocks, named values, inputs and block parameters
    document symbols sections with their keys; the model's inputs, blocks and values
    formatting       the whole document, from `compiler/fmt.py`
    code actions     a quick fix for each diagnostic whose help is "did you mean 'X'?" (or an alias's
                     "... here it is 'X'")

Positions. trainc's spans count lines and columns from 1, columns in code points (Python
characters), the end exclusive; LSP counts both from 0, columns in the negotiated encoding:
UTF-16 code units unless the client lists others in `general.positionEncodings` (pygls takes
the first one it supports, in the client's order). `Lines` converts both ways.

Limits, so that no document blocks the server: completion reads the text with regexes that never
backtrack (linear in the document) and follows at most MAX_CALL_DEPTH calls inside calls; a document
shows at most MAX_DIAGNOSTICS problems, the last saying how many more there are; a spec over
parse.MAX_SPEC_BYTES is one problem (E109), as in `trainc lint`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass, field

from lsprotocol import types

from . import __version__
from .compiler import check_file, ir, lint, parse
from .compiler import catalog as C
from .compiler.diagnostics import Diagnostic, SpecError, clip
from .compiler.parse import MAX_SPEC_BYTES

DEBOUNCE = 0.3  # seconds of quiet after a change before the document is linted again
MAX_CALL_DEPTH = 64  # calls inside calls followed to find what an argument means (`init = normal(...)`)
MAX_DIAGNOSTICS = 1000  # per document: a client slows down long before, and the first are the ones to fix

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Positions: code points (trainc) <-> the client's encoding
# ---------------------------------------------------------------------------------------------


def units(s: str, encoding: str = "utf-16") -> int:
    """The length of `s` in the code units of `encoding`: 🙂 is 1 in UTF-32, 2 in UTF-16, 4 in UTF-8."""
    if encoding == "utf-32":
        return len(s)
    if encoding == "utf-8":
        return len(s.encode("utf-8", "surrogatepass"))  # a lone surrogate (JSON carries them): 3 bytes
    return len(s.encode("utf-16-le", "surrogatepass")) // 2  # 2 units past U+FFFF; a lone surrogate 1


class Lines:
    """A document's lines, for converting positions. Lines end at '\\n' (and an optional '\\r'), as Lark counts."""

    def __init__(self, text: str, encoding: str = "utf-16"):
        self.lines = [line.removesuffix("\r") for line in text.split("\n")]
        self.encoding = str(getattr(encoding, "value", encoding))

    def position(self, line: int, col: int) -> types.Position:
        """0-based line and code-point column -> a client position (clamped to the document)."""
        line = max(0, min(line, len(self.lines) - 1))
        return types.Position(line=line, character=units(self.lines[line][:max(col, 0)], self.encoding))

    def range(self, span: ir.Span) -> types.Range:
        """A span (1-based, end exclusive) -> a client range. Builtin spans (line 0) map to the first character."""
        if span.line < 1:
            return types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0))
        return types.Range(start=self.position(span.line - 1, span.col - 1),
                           end=self.position(span.end_line - 1, span.end_col - 1))

    def offset(self, pos: types.Position) -> tuple[int, int]:
        """A client position -> 0-based line and code-point column. Inside a character (half of a UTF-16
        surrogate pair), the column is that character's."""
        line = max(0, min(pos.line, len(self.lines) - 1))
        n = 0
        for i, ch in enumerate(self.lines[line]):
            n += units(ch, self.encoding)
            if n > pos.character:
                return line, i
        return line, len(self.lines[line])

    def end(self) -> types.Position:
        return self.position(len(self.lines) - 1, len(self.lines[-1]))

    def before(self, line: int, col: int) -> str:
        """The document's text up to a 0-based line and code-point column."""
        return "\n".join(self.lines[:line] + [self.lines[line][:col]])


def _contains(span: ir.Span, line: int, col: int) -> bool:
    """Whether a 1-based position lies in a span (its end included: a cursor just after a word is on it)."""
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


# ---------------------------------------------------------------------------------------------
# Analysis: the parsed file and the checked IR of a text, cached
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Analysis:
    file: ir.File | None  # None: a syntax error
    spec: ir.Spec | None


@functools.lru_cache(maxsize=16)
def analyze(text: str, path: str) -> Analysis:
    try:
        file = parse(text, path)
    except SpecError:
        return Analysis(None, None)
    except Exception:  # a bug in the parser: diagnostics() reports it (E000); hover and symbols stay up
        log.exception("parse failed")
        return Analysis(None, None)
    try:
        spec, _ = check_file(file, path)
    except Exception:  # a half-written model must not take hover and symbols down with it
        log.exception("check_file failed")
        spec = None
    return Analysis(file, spec)


def _model(file: ir.File | None) -> tuple[ir.Stmt, ...]:
    """The statements of the model section (`model { ... }` or `model = { ... }`)."""
    for item in file.items if file else ():
        if isinstance(item, ir.Section) and item.name == "model":
            return item.body
        if isinstance(item, ir.Entry) and item.key == "model" and isinstance(item.value, ir.Record):
            return item.value.entries
    return ()


def _shape(spec: ir.Spec | None, value: str) -> str | None:
    """The inferred type of a model value or input: `f32[10]`."""
    if spec is None:
        return None
    node = dict(spec.model.values).get(value)
    types_ = {i.name: i.type for i in spec.model.inputs} | {la.name: la.out for la in spec.model.layers}
    out = types_.get(node)
    return str(out) if out is not None else None


# ---------------------------------------------------------------------------------------------
# Context: where the cursor is, from the text before it (works on half-written files)
# ---------------------------------------------------------------------------------------------

# Strings unrolled (`"[^"\\]*(\\.[^"\\]*)*"`): an alternation inside a repeat holds ~150 bytes per character.
_TOKEN = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*(?P<close>")?|#[^\n]*|->'
                    r"|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*|[0-9]+\.?[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+|\n|\S")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_."
_GIVEN = re.compile(r"(?<!\w)([A-Za-z_]\w*+)\s*+=[^=]")  # `name =` of a keyword argument; possessive: linear


@dataclass
class Frame:
    """One open bracket (or the top level) and the tokens of its current statement or argument."""

    kind: str  # top | section | record | block | params | call | list | dims
    head: str  # what opened it: a section's, call's or block's name, a record's or list's key
    toks: list[str] = field(default_factory=list)


@dataclass
class Names:
    """What the model defines, found by scanning the text: inputs, named values, blocks and their parameters."""

    inputs: list[str] = field(default_factory=list)
    values: list[str] = field(default_factory=list)
    blocks: dict[str, list[list]] = field(default_factory=dict)  # block -> [[param, default tokens], ...]


_BRACKET = {"top": "", "section": "{", "record": "{", "block": "{", "params": "(", "call": "(", "list": "[",
            "dims": "["}


def _opened(parent: Frame, bracket: str) -> Frame:
    t = parent.toks
    name = t[-1] if t and _NAME.match(t[-1]) else ""
    if bracket == "(":
        return Frame("params" if t[-2:-1] == ["block"] else "call", name)
    if bracket == "{":
        if t[:1] == ["block"] and len(t) > 1:
            return Frame("block", t[1])
        if len(t) == 1 and name and parent.kind in ("top", "section", "record"):
            return Frame("section", name)
        return Frame("record", t[-2] if t[-1:] == ["="] and len(t) > 1 else "")
    if t[:1] == ["input"]:
        return Frame("dims", "")
    return Frame("list", t[-2] if t[-1:] == ["="] and len(t) > 1 else "")


def scan(text: str) -> tuple[list[Frame], Names, bool]:
    """The open brackets at the end of `text` (outermost first), the model's names defined in it, and
    whether `text` ends inside a string or a comment."""
    frames, names = [Frame("top", "")], Names()
    opened = {"(": 0, "{": 0, "[": 0}  # how many frames each bracket opened: a closer finds its match in O(1)
    for m in _TOKEN.finditer(text):
        tok, top = m.group(), frames[-1]
        if tok.startswith("#") or (tok.startswith('"') and not m.group("close")):
            if m.end() == len(text):
                return frames, names, True
            continue
        if tok == "\n" and top.kind in ("top", "section", "record", "block"):
            top.toks = []
        elif tok == ",":
            top.toks = []
        elif tok in ("(", "{", "["):
            frames.append(_opened(top, tok))
            opened[tok] += 1
            top.toks.append(tok)
        elif tok in (")", "}", "]"):
            opener = {")": "(", "}": "{", "]": "["}[tok]
            while opened[opener]:  # close up to its match: `f(x }` closes both
                opened[_BRACKET[frames[-1].kind]] -= 1
                if _BRACKET[frames.pop().kind] == opener:
                    break
            frames[-1].toks.append(tok)
        elif tok != "\n":
            top.toks.append(tok)
            _define(frames, names)
    return frames, names, False


def _define(frames: list[Frame], names: Names) -> None:
    """Record what the statement just extended defines, if anything."""
    top = frames[-1]
    t = top.toks
    if top.kind in ("section", "record") and top.head == "model" and len(t) == 2:
        if t[0] == "input" and _NAME.match(t[1]):
            names.inputs.append(t[1])
        elif t[0] == "block" and _NAME.match(t[1]):
            names.blocks[t[1]] = []
        elif t[1] == "=" and t[0] != "init":
            names.values.append(t[0])
    elif top.kind == "params" and top.head in names.blocks:
        params = names.blocks[top.head]
        if len(t) == 1:
            params.append([t[0], []])
        elif len(t) > 2 and params:
            params[-1][1].append(t[-1])


# ---------------------------------------------------------------------------------------------
# What a name means where it is written
# ---------------------------------------------------------------------------------------------

REGISTRIES = [r for r in vars(C).values() if isinstance(r, C.Registry)]  # every family, layers first

# `key = ` completes from the catalogue's declaration of each key (catalog/sections.py; C.KEY_VALUES adds the
# top-level values and model.init, which name registries)
VALUE_REGISTRY = {k: v for k, v in C.KEY_VALUES.items() if isinstance(v, C.Registry)}  # "" is the top level
WORDS = {(section, key): d.type.options if isinstance(d.type, C.Choice) else ("true", "false")  # bare-word settings
         for section, keys in C.sections.KEYS.items() for key, d in keys.items()
         if isinstance(d.type, (C.Choice, C.Bool_))}


def _key_doc(section: str, key: str) -> str:
    """A section key's documentation, from its declaration: what it means, what it takes, its default."""
    d = C.sections.key(section, key)
    return f"{d.doc}\n\ntakes {d.describe()}; default: {d.show_default()}"

SPLITS = ("train", "val")
KEYWORDS = {"input": "`input NAME: f32[D1, ...]`: the shape of one example, without the batch axis",
            "block": "`block NAME(PARAMS) { PIPELINE }`: a reusable piece of model with parameters",
            "init": "the default initialiser of every layer that takes one: " + ", ".join(C.INITS.names())}


def setting(frames: list[Frame]) -> tuple[str, str]:
    """(section, key) of the setting the frames are in: ("data", "source"), ("", "loss"), ("model", "logits")."""
    section = frames[0].toks[0] if frames[0].toks else ""
    if section in C.VALUE_SECTIONS:
        return "", section
    if len(frames) > 1 and frames[1].kind in ("section", "record") and frames[1].toks[1:2] == ["="]:
        return section, frames[1].toks[0]
    return section, ""


def _block_entry(name: str, params: list[list]) -> C.Entry:
    specs = tuple(C.ParamSpec(p, None, " ".join(d) if d else C.REQUIRED) for p, d in params)
    return C.Entry(name, specs, "A block defined in this file.")


def entry_in(frames: list[Frame], name: str, names: Names, depth: int = 0) -> C.Entry | None:
    """The registry entry (or block) that `name` means as a value written inside `frames`."""
    up = frames[-1]
    if up.kind == "call" and depth >= MAX_CALL_DEPTH:  # a thousand calls deep: no spec, so no answer
        return None
    if up.kind == "call":  # a call inside a call's argument: `init = normal(...)`
        outer = entry_in(frames[:-1], up.head, names, depth + 1)
        param = outer.param(up.toks[0]) if outer and up.toks[1:2] == ["="] else None
        if param is not None and isinstance(param.type, C.InitRef):
            return C.INITS.get(name)
    if up.kind == "list" and up.head in ("metrics", "augment"):
        reg = VALUE_REGISTRY.get(("", "metrics") if up.head == "metrics" else ("data", "augment"))
        return reg.get(name) if reg else None
    section, key = setting(frames)
    if section == "model" and key != "init":
        if name in names.blocks:
            return _block_entry(name, names.blocks[name])
        return C.LAYERS.get(name)
    reg = VALUE_REGISTRY.get((section, key))
    if reg is not None and name in reg:
        return reg.get(name)
    return next((r.get(name) for r in REGISTRIES if name in r), None)


def _registry(entry: C.Entry) -> C.Registry | None:
    """The catalogue family `entry` belongs to (None: a block of the spec's own)."""
    return next((r for r in REGISTRIES if r.get(entry.name) is entry), None)


def _kind(entry: C.Entry) -> str:
    reg = _registry(entry)
    return reg.kind if reg else "block"


def _describe_param(p: C.ParamSpec) -> str:
    what = p.type.describe() if hasattr(p.type, "describe") else "a value"
    if p.default is C.REQUIRED:
        return f"{p.name}: {what} (required)"
    return f"{p.name}: {what} = {C.base._show(p.default)}"


def _doc(entry: C.Entry) -> str:
    """Markdown: the signature, the family, the docstring."""
    return f"```\n{entry.signature}\n```\n{_kind(entry)}: {entry.doc}"


# ---------------------------------------------------------------------------------------------
# Completion
# ---------------------------------------------------------------------------------------------

K = types.CompletionItemKind


def _md(text: str) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=text)


def _item(label: str, kind: K, detail: str | None = None, doc: str | None = None,
          insert: str | None = None) -> types.CompletionItem:
    return types.CompletionItem(label=label, kind=kind, detail=detail, documentation=_md(doc) if doc else None,
                                insert_text=insert)


def _entries(reg: C.Registry, kind: K = K.Function) -> list[types.CompletionItem]:
    return [_item(e.name, kind, e.signature, _doc(e)) for e in (reg.get(n) for n in reg.names())]


def _values(names: Names, blocks: bool = False, skip: str = "") -> list[types.CompletionItem]:
    """Model values (and inputs; or blocks, for `groups` and `freeze`, which name values and blocks)."""
    out = [] if blocks else [_item(n, K.Variable, "input") for n in names.inputs]
    out += [_item(n, K.Variable, "model value") for n in names.values if n != skip]
    if blocks:
        out += [_item(n, K.Class, "block") for n in names.blocks]
    return out


def _layers(names: Names) -> list[types.CompletionItem]:
    blocks = [_block_entry(n, ps) for n, ps in names.blocks.items()]
    return _entries(C.LAYERS) + [_item(b.name, K.Class, b.signature, _doc(b)) for b in blocks]


def _words(words) -> list[types.CompletionItem]:
    return [_item(w, K.EnumMember) for w in words]


def _monitors() -> list[types.CompletionItem]:
    names = ["loss"] + [n for n in C.METRICS.names() if C.METRICS.get(n).extra.get("scalar", True)]
    return [_item(f"{s}.{n}", K.Value) for s in SPLITS for n in names]


def _argument_values(p: C.ParamSpec, names: Names) -> list[types.CompletionItem]:
    """What may follow `name =` inside a call, by the parameter's type."""
    t = p.type
    if isinstance(t, C.InitRef):
        return _entries(C.INITS)
    if isinstance(t, C.Choice):
        return _words(t.options)
    if isinstance(t, C.Bool_):
        return _words(("true", "false"))
    if isinstance(t, C.Value):
        return _values(names) + [_item("target", K.Variable, "the data's target")]
    if isinstance(t, C.MetricName):
        return _monitors()
    return []


class _Words:
    def __init__(self, text: str):
        self.text = text

    def describe(self) -> str:
        return self.text


def _params(entry: C.Entry) -> tuple[C.ParamSpec, ...]:
    reg = _registry(entry)
    shared = reg.shared_for(entry) if reg is not None else {}  # groups, freeze, share: declared in the catalogue
    return entry.params + tuple(C.ParamSpec(n, _Words(doc), default) for n, (doc, default) in shared.items())


def _arguments(entry: C.Entry, given: set[str]) -> list[types.CompletionItem]:
    return [_item(p.name, K.Property, _describe_param(p), _doc(entry), insert=f"{p.name} = ")
            for p in _params(entry) if p.name not in given]


def completions(text: str, position: types.Position, encoding: str = "utf-16") -> list[types.CompletionItem]:
    """The completion items at a position, from the text around it (the file need not parse)."""
    if len(text) > MAX_SPEC_BYTES:  # refused as a whole (E109): nothing to complete
        return []
    lines = Lines(text, encoding)
    line, col = lines.offset(position)
    before = lines.before(line, col)
    before = before.rstrip(_WORD_CHARS)  # the word being typed (a regex anchored at the end would be quadratic)
    frames, _, inside = scan(before)
    if inside:
        return []
    names = scan(text)[1]
    cur = frames[-1]
    t = cur.toks
    if cur.kind == "call":
        entry = entry_in(frames[:-1], cur.head, names)
        if entry is None:
            return []
        if len(t) == 2 and t[1] == "=":
            p = entry.param(t[0])
            return _argument_values(p, names) if p else []
        if t:
            return []
        given = {m.group(1) for m in _GIVEN.finditer(before, max(before.rfind("("), 0))}
        takes_values = entry.extra.get("multi") or any(isinstance(p.type, C.Value) for p in entry.params)
        return _arguments(entry, given) + (_values(names) if takes_values else [])
    if cur.kind == "list":
        if t:
            return []
        if cur.head == "freeze":
            return _values(names, blocks=True)
        reg = {"metrics": C.METRICS, "augment": VALUE_REGISTRY.get(("data", "augment"))}.get(cur.head)
        return _entries(reg) if reg else []
    if cur.kind == "record" and setting(frames)[0] != cur.head:
        if cur.head == "split" and not t:
            return _words(("train", "val", "test", "stratify"))
        if cur.head == "groups" and not t:
            return _values(names, blocks=True)
        if len(frames) > 2 and frames[-2].kind == "record" and frames[-2].head == "groups" and not t:
            entry = entry_in(frames[:-3], frames[-3].head, names) if frames[-3].kind == "call" else None
            return _arguments(entry, set()) if entry else []
        return []
    if cur.kind == "block":
        return _layers(names) if not t or t[-1] == "->" else []
    if cur.kind in ("params", "dims"):
        return []
    # the top level, or a section's body: a key, or the value after `key =`
    section = cur.head if cur.kind != "top" else ""
    if not t:
        if cur.kind == "top":
            return [_item(s, K.Module, "section") for s in C.SECTIONS]
        if section == "model":
            return [_item(k, K.Keyword, doc=d) for k, d in KEYWORDS.items()]
        return [_item(k, K.Field, doc=_key_doc(section, k)) for k in C.sections.KEYS.get(section, {})]
    if t[1:2] != ["="] or t[-1] not in ("=", "->", "then", "+", "-", "*"):
        return []
    key = t[0]
    if section == "model" and key != "init":
        if t[-1] == "->":
            return _layers(names)
        multi = [C.LAYERS.get(n) for n in C.LAYERS.names() if C.LAYERS.get(n).extra.get("multi")]
        return _values(names, skip=key) + [_item(e.name, K.Function, e.signature, _doc(e)) for e in multi]
    where = ("", key) if cur.kind == "top" else (section, key)
    if where in WORDS:
        return _words(WORDS[where])
    reg = VALUE_REGISTRY.get(where)
    return _entries(reg) if reg else []


# ---------------------------------------------------------------------------------------------
# Hover
# ---------------------------------------------------------------------------------------------


def word_at(line: str, col: int) -> tuple[str, int, int] | None:
    """The (possibly dotted) name at or just before a code-point column: (word, start, end)."""
    ok = re.compile(r"[A-Za-z0-9_.]")
    start = col if col < len(line) and ok.match(line[col]) else col - 1
    if start < 0 or start >= len(line) or not ok.match(line[start]):
        return None
    end = start
    while start > 0 and ok.match(line[start - 1]):
        start -= 1
    while end < len(line) and ok.match(line[end]):
        end += 1
    word = line[start:end]
    lead = len(word) - len(word.lstrip("."))
    word = word.strip(".")
    if not word or not _NAME.match(word.split(".")[0]):
        return None
    return word, start + lead, start + lead + len(word)


def _section_doc(name: str) -> str | None:
    if name not in C.SECTIONS:
        return None
    if name in C.VALUE_SECTIONS:
        reg = VALUE_REGISTRY[("", name)]
        return f"`{name} = ...`: one of {', '.join(reg.names())}"
    keys = C.SECTIONS[name]
    return f"section `{name}`" + (": " + ", ".join(f"`{k}`" for k in keys) if keys else "")


def _block_use(a: Analysis, block: str, line: int, col: int) -> str | None:
    """The output type of the use of `block` under a 1-based position, in a model value's pipeline."""
    for stmt in _model(a.file):
        if not (isinstance(stmt, ir.Entry) and _contains(stmt.span, line, col)):
            continue
        n = 0
        for stage in stmt.value.stages if isinstance(stmt.value, ir.Pipeline) else (stmt.value,):
            reps, inner = 1, stage
            if isinstance(stage, ir.BinOp) and stage.op == "*" and isinstance(stage.right, ir.Number):
                reps, inner = int(stage.right.value), stage.left
            name = inner.name.dotted if isinstance(inner, ir.Call) else getattr(inner, "dotted", None)
            if name != block:
                continue
            if _contains(stage.span, line, col) and a.spec is not None:
                prefix = f"{stmt.key}.{block}{n + reps - 1}."
                outs = [la for la in a.spec.model.layers if la.name.startswith(prefix) and la.out is not None]
                return f"{stmt.key}.{block}{n + reps - 1}: {outs[-1].out}" if outs else None
            n += reps
    return None


def hover(text: str, path: str, position: types.Position, encoding: str = "utf-16") -> types.Hover | None:
    """Documentation of the name under the cursor; in the model, the inferred shapes."""
    lines = Lines(text, encoding)
    line, col = lines.offset(position)
    found = word_at(lines.lines[line], col)
    if found is None:
        return None
    word, start, end = found
    frames, _, inside = scan(lines.before(line, start))
    if inside:
        return None
    names = scan(text)[1]
    rest = lines.lines[line][end:]
    is_key = re.match(r"\s*=(?!=)", rest) is not None
    cur = frames[-1]
    a = analyze(text, path)
    parts: list[str] = []
    if cur.kind == "call" and is_key and not cur.toks:
        entry = entry_in(frames[:-1], cur.head, names)
        p = next((p for p in _params(entry) if p.name == word), None) if entry else None
        if p is not None:
            parts.append(f"`{_describe_param(p)}`\n\n{_doc(entry)}")
    elif cur.kind == "top" and not cur.toks:
        parts.append(_section_doc(word) or "")
    elif cur.kind in ("section", "record") and not cur.toks and cur.head == setting(frames)[0]:
        section = cur.head
        if section == "model" and word in KEYWORDS:
            parts.append(KEYWORDS[word])
        elif section != "model" and word in C.sections.KEYS.get(section, {}):
            parts.append(f"`{section}.{word}`: {_key_doc(section, word)}")
    if not parts and "." in word and word.split(".")[0] in SPLITS:
        split, metric = word.split(".", 1)
        entry = C.METRICS.get(metric)
        parts.append(f"`{word}`: the {'mean loss' if metric == 'loss' else metric} on the {split} split"
                     + (f"\n\n{_doc(entry)}" if entry else ""))
    if not parts and (word in names.inputs or word in names.values):
        shape = _shape(a.spec, word)
        parts.append(f"```\n{word}: {shape or '?'}\n```\n" + ("input" if word in names.inputs else "model value"))
    if not parts and not is_key:
        entry = entry_in(frames, word, names)
        if entry is not None:
            parts.append(_doc(entry))
            if a.spec is not None and setting(frames)[0] == "model":
                here = (line + 1, start + 1)
                outs = [f"{la.name}: {la.out}" for la in a.spec.model.layers
                        if la.op == word and la.out is not None and _contains(la.span, *here)]
                use = _block_use(a, word, *here) if word in names.blocks else None
                outs += [use] if use else []
                if outs:
                    parts.append("output:\n```\n" + "\n".join(outs) + "\n```")
    parts = [p for p in parts if p]
    if not parts:
        return None
    rng = types.Range(start=lines.position(line, start), end=lines.position(line, end))
    return types.Hover(contents=_md("\n\n".join(parts)), range=rng)


# ---------------------------------------------------------------------------------------------
# Definition and document symbols (from the parsed file)
# ---------------------------------------------------------------------------------------------


def _name_span(stmt, keyword: str, lines: Lines, path: str) -> ir.Span:
    """The span of the name in `input NAME: ...` or `block NAME(...)`."""
    text = lines.lines[stmt.span.line - 1]
    m = re.compile(rf"{keyword}\s+({re.escape(stmt.name)})\b").match(text, stmt.span.col - 1)
    if m is None:
        return stmt.span
    return ir.Span(path, stmt.span.line, m.start(1) + 1, stmt.span.line, m.end(1) + 1)


def definitions(text: str, path: str) -> dict[str, ir.Span]:
    """Where each model name is defined: inputs, named values and blocks."""
    lines, out = Lines(text), {}
    for stmt in _model(analyze(text, path).file):
        if isinstance(stmt, ir.InputDecl):
            out.setdefault(stmt.name, _name_span(stmt, "input", lines, path))
        elif isinstance(stmt, ir.BlockDef):
            out.setdefault(stmt.name, _name_span(stmt, "block", lines, path))
        elif isinstance(stmt, ir.Entry):
            out.setdefault(stmt.key, stmt.key_span)
    return out


def definition(text: str, path: str, uri: str, position: types.Position,
               encoding: str = "utf-16") -> types.Location | None:
    """Go to the definition of a block, a named value, an input, or a block's parameter."""
    lines = Lines(text, encoding)
    line, col = lines.offset(position)
    found = word_at(lines.lines[line], col)
    if found is None or scan(lines.before(line, found[1]))[2]:
        return None
    word = found[0]
    for stmt in _model(analyze(text, path).file):  # a parameter, inside its block
        if isinstance(stmt, ir.BlockDef) and _contains(stmt.span, line + 1, col + 1):
            p = next((p for p in stmt.params if p.name == word), None)
            if p is not None:
                span = ir.Span(path, p.span.line, p.span.col, p.span.line, p.span.col + len(p.name))
                return types.Location(uri=uri, range=lines.range(span))
    span = definitions(text, path).get(word)
    return types.Location(uri=uri, range=lines.range(span)) if span else None


SK = types.SymbolKind


def _symbol(name: str, kind: SK, span: ir.Span, name_span: ir.Span, lines: Lines, detail: str | None = None,
            children: list | None = None) -> types.DocumentSymbol:
    return types.DocumentSymbol(name=name, kind=kind, range=lines.range(span), selection_range=lines.range(name_span),
                                detail=detail, children=children)


def _head(expr: ir.Expr) -> str | None:
    """A short description of a value for the outline: the name called."""
    if isinstance(expr, ir.Call):
        return expr.name.dotted
    if isinstance(expr, ir.Ref):
        return expr.dotted
    if isinstance(expr, ir.Then):
        return " then ".join(filter(None, map(_head, expr.parts)))
    if isinstance(expr, ir.ListExpr):
        return ", ".join(filter(None, map(_head, expr.items)))
    return None


def symbols(text: str, path: str, encoding: str = "utf-16") -> list[types.DocumentSymbol]:
    """The outline: sections with their keys; in the model, inputs, blocks and named values."""
    a = analyze(text, path)
    if a.file is None:
        return []
    lines, out = Lines(text, encoding), []
    for item in a.file.items:
        if isinstance(item, ir.Section) or (isinstance(item, ir.Entry) and isinstance(item.value, ir.Record)):
            name = item.name if isinstance(item, ir.Section) else item.key
            name_span = item.name_span if isinstance(item, ir.Section) else item.key_span
            body = item.body if isinstance(item, ir.Section) else item.value.entries
            children = [_child(stmt, name, a.spec, lines, path) for stmt in body]
            out.append(_symbol(name, SK.Module, item.span, name_span, lines, children=children))
        elif isinstance(item, ir.Entry):
            out.append(_symbol(item.key, SK.Property, item.span, item.key_span, lines, _head(item.value)))
    return out


def _child(stmt: ir.Stmt, section: str, spec: ir.Spec | None, lines: Lines, path: str) -> types.DocumentSymbol:
    if isinstance(stmt, ir.InputDecl):
        detail = f"{stmt.dtype}[{', '.join(str(d) for d in stmt.dims)}]"
        return _symbol(stmt.name, SK.Variable, stmt.span, _name_span(stmt, "input", lines, path), lines, detail)
    if isinstance(stmt, ir.BlockDef):
        detail = f"block {stmt.name}({', '.join(p.name for p in stmt.params)})"
        return _symbol(stmt.name, SK.Function, stmt.span, _name_span(stmt, "block", lines, path), lines, detail)
    if isinstance(stmt, ir.Section):
        return _symbol(stmt.name, SK.Module, stmt.span, stmt.name_span, lines)
    if section == "model" and stmt.key != "init":
        return _symbol(stmt.key, SK.Variable, stmt.span, stmt.key_span, lines, _shape(spec, stmt.key))
    return _symbol(stmt.key, SK.Field, stmt.span, stmt.key_span, lines, _head(stmt.value))


# ---------------------------------------------------------------------------------------------
# Diagnostics, quick fixes, formatting
# ---------------------------------------------------------------------------------------------


def to_lsp(d: Diagnostic, lines: Lines, uri: str | None = None) -> types.Diagnostic:
    """A trainc diagnostic for the client. The help (and any notes) follow the message on their own lines,
    as `help: ...`, so every client shows them."""
    message = "\n".join([clip(d.message)] + [f"note: {clip(n)}" for n in d.with_related()] +
                        ([f"help: {clip(d.help)}"] if d.help else []))
    severity = types.DiagnosticSeverity.Error if d.is_error else types.DiagnosticSeverity.Warning
    related = [types.DiagnosticRelatedInformation(location=types.Location(uri=uri, range=lines.range(span)),
                                                  message=clip(what))
               for what, span in d.related if uri and span.file == d.span.file]  # another place in this document
    return types.Diagnostic(range=lines.range(d.span), message=message, severity=severity, code=d.code,
                            source="trainc", related_information=related or None)


def diagnostics(text: str, path: str, encoding: str = "utf-16", uri: str | None = None) -> list[types.Diagnostic]:
    lines = Lines(text, encoding)
    try:
        found = lint(text, path)
    except Exception as e:  # a bug in trainc: say so where the user looks, instead of going quiet
        log.exception("lint failed")
        return [types.Diagnostic(range=lines.range(ir.NOWHERE), source="trainc", code="E000",
                                 message=f"internal error: {type(e).__name__}: {e}\nthis is a bug in trainc; "
                                         "please report it", severity=types.DiagnosticSeverity.Error)]
    shown = [to_lsp(d, lines, uri) for d in found[:MAX_DIAGNOSTICS]]
    if len(found) > MAX_DIAGNOSTICS:
        shown.append(types.Diagnostic(range=lines.range(found[MAX_DIAGNOSTICS].span), source="trainc",
                                      severity=types.DiagnosticSeverity.Information,
                                      message=f"{len(found) - MAX_DIAGNOSTICS} more problems, not shown"))
    return shown


def code_actions(text: str, path: str, uri: str, rng: types.Range,
                 encoding: str = "utf-16") -> list[types.CodeAction]:
    """Quick fixes for the did-you-mean diagnostics that touch a range."""
    lines = Lines(text, encoding)
    out = []
    for d in lint(text, path):
        diag = to_lsp(d, lines)
        r = diag.range
        if (r.end.line, r.end.character) < (rng.start.line, rng.start.character) or \
                (r.start.line, r.start.character) > (rng.end.line, rng.end.character):
            continue
        fix = d.fix  # the rule's own edit, or the did-you-mean's name (compile_spec attaches both)
        if fix is None or not 1 <= fix[0].line == fix[0].end_line <= len(lines.lines):
            continue
        span, new = fix
        old = lines.lines[span.line - 1][span.col - 1:span.end_col - 1]
        edit = types.WorkspaceEdit(changes={uri: [types.TextEdit(range=lines.range(span), new_text=new)]})
        title = f"Replace '{old}' with '{new}'" if new else f"Remove '{old.strip()}'"
        out.append(types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix,
                                    diagnostics=[diag], edit=edit, is_preferred=True))
    return out


def formatting(text: str, path: str, encoding: str = "utf-16") -> list[types.TextEdit]:
    """One edit replacing the whole document with `format_text`'s; none when it does not parse."""
    try:
        from .compiler.fmt import format_text
    except ImportError:
        return []
    try:
        new = format_text(text, path)
    except SpecError:
        return []
    if new == text:
        return []
    lines = Lines(text, encoding)
    return [types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=lines.end()),
                           new_text=new)]


# ---------------------------------------------------------------------------------------------
# The server: thin handlers over the functions above
# ---------------------------------------------------------------------------------------------


def server():
    """A pygls LanguageServer with every feature registered. `server().start_io()` serves over stdio."""
    from pygls.lsp.server import LanguageServer

    ls = LanguageServer("trainc", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
    pending: dict[str, asyncio.TimerHandle] = {}
    opened: set[str] = set()

    def encoding() -> str:
        return str(getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding or "utf-16"))

    def document(uri: str):
        doc = ls.workspace.get_text_document(uri)
        return doc, doc.source, doc.path or uri

    def publish(uri: str) -> None:
        pending.pop(uri, None)
        if uri not in opened:
            return
        doc, text, path = document(uri)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=diagnostics(text, path, encoding(), uri)))

    def now(uri: str) -> None:
        if (h := pending.pop(uri, None)) is not None:
            h.cancel()
        publish(uri)

    _sync_features(ls, pending, opened, publish, now)
    _request_features(ls, document, encoding)
    return ls


def _sync_features(ls, pending: dict, opened: set[str], publish, now) -> None:
    """The document notifications: diagnostics on open and save at once, while typing after DEBOUNCE."""

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams):
        opened.add(params.text_document.uri)
        now(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams):
        now(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(params: types.DidChangeTextDocumentParams):
        uri = params.text_document.uri
        if (h := pending.pop(uri, None)) is not None:
            h.cancel()
        pending[uri] = asyncio.get_running_loop().call_later(DEBOUNCE, publish, uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        opened.discard(uri)
        if (h := pending.pop(uri, None)) is not None:
            h.cancel()
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


def _request_features(ls, document, encoding) -> None:
    """The requests: each a thin handler over the function of the same name above."""

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION,
                types.CompletionOptions(trigger_characters=["(", "[", "{", ",", "=", ">", " "]))
    def completion(params: types.CompletionParams):
        _, text, _ = document(params.text_document.uri)
        return types.CompletionList(is_incomplete=False, items=completions(text, params.position, encoding()))

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(params: types.HoverParams):
        _, text, path = document(params.text_document.uri)
        return hover(text, path, params.position, encoding())

    @ls.feature(types.TEXT_DOCUMENT_DEFINITION)
    def on_definition(params: types.DefinitionParams):
        uri = params.text_document.uri
        _, text, path = document(uri)
        return definition(text, path, uri, params.position, encoding())

    @ls.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(params: types.DocumentSymbolParams):
        _, text, path = document(params.text_document.uri)
        return symbols(text, path, encoding())

    @ls.feature(types.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(params: types.DocumentFormattingParams):
        _, text, path = document(params.text_document.uri)
        return formatting(text, path, encoding())

    @ls.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def on_code_action(params: types.CodeActionParams):
        uri = params.text_document.uri
        _, text, path = document(uri)
        return code_actions(text, path, uri, params.range, encoding())


def serve() -> None:
    """Serve over stdin/stdout until the client says exit."""
    server().start_io()
