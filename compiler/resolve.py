"""resolve: syntax tree -> IR. Binds every name to a section, key, registry entry or model value,
normalises units, fills defaults and expands blocks into layers. Collects every problem it can.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import sys

from . import catalog as C
from . import ir
from .diagnostics import Diagnostic, SpecError, did_you_mean, one_of


class _Bad(Exception):
    """One problem in one value; resolution of the enclosing item stops, the rest goes on."""

    def __init__(self, diag: Diagnostic):
        self.diag = diag


def _err(code: str, message: str, span: ir.Span, help: str | None = None) -> _Bad:
    return _Bad(Diagnostic(code=code, message=message, span=span, help=help))


def _describe(expr: ir.Expr) -> str:
    match expr:
        case ir.Number(value=v):
            return f"the number {v:g}" if isinstance(v, float) else f"the number {v}"
        case ir.Quantity(value=v, unit=u):
            return f"'{v:g} {u}'" if u != "%" else f"'{v:g}%'"
        case ir.Str(value=v):
            return f'the string "{v}"'
        case ir.Bool(value=v):
            return "true" if v else "false"
        case ir.Ref():
            return f"'{expr.dotted}'"
        case ir.Call(name=n):
            return f"a call to '{n.dotted}'"
        case ir.ListExpr():
            return "a list"
        case ir.Record():
            return "a { ... } record"
        case ir.Pipeline():
            return "a pipeline"
        case ir.Repeat():
            return "a repeat { ... } stage"
        case ir.Then():
            return "a schedule"
    return "an expression"


# ---------------------------------------------------------------------------------------------
# Values against a parameter's type
# ---------------------------------------------------------------------------------------------


def _number(expr: ir.Expr, typ: C.Num, what: str) -> int | float:
    """A number in the declared range; an integer also at most 2^53 (MAX_INT)."""
    if not isinstance(expr, ir.Number):
        raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)
    v = expr.value
    if not math.isfinite(v):  # `1e999`, or a block's arithmetic past the float range
        raise _err("E304", f"{what} is out of range: {v:g}", expr.span, f"expected {typ.describe()}")
    if typ.integer and not (isinstance(v, int) or float(v).is_integer()):
        raise _err("E303", f"{what} must be an integer, found {v:g}", expr.span)
    v = int(v) if typ.integer else float(v)
    lo_bad = v < typ.lo or (typ.lo_open and v == typ.lo)
    hi_bad = v > typ.hi or (typ.hi_open and v == typ.hi)
    if lo_bad or hi_bad:
        raise _err("E304", f"{what} is out of range: {v:g}", expr.span, f"expected {typ.describe()}")
    if typ.integer and abs(v) > MAX_INT:
        raise _err("E304", f"{what} is out of range: {v:g}", expr.span, f"expected {typ.describe()}, at most "
                   f"2^53 = {MAX_INT:,}: the largest whole number a float holds exactly")
    return v


def _bool(expr: ir.Expr, typ: C.Bool_, what: str) -> bool:
    if isinstance(expr, ir.Bool):
        return expr.value
    raise _err("E303", f"{what} must be true or false, found {_describe(expr)}", expr.span)


def _text(expr: ir.Expr, typ: C.Text, what: str) -> str:
    if isinstance(expr, ir.Str):
        return expr.value
    hint = f'write "{expr.dotted}" in quotes' if isinstance(expr, ir.Ref) else None
    raise _err("E303", f"{what} must be a string, found {_describe(expr)}", expr.span, hint)


def _names(expr: ir.Expr, typ: C.Names, what: str) -> str | tuple[str, ...]:
    if isinstance(expr, ir.Str):
        return expr.value
    if isinstance(expr, ir.ListExpr) and all(isinstance(i, ir.Str) for i in expr.items) and expr.items:
        return tuple(i.value for i in expr.items)
    raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)


def _delta(expr: ir.Expr, typ: C.Delta, what: str) -> tuple[float, bool]:
    if isinstance(expr, ir.Quantity) and expr.unit == "%":
        if expr.value < 0:
            raise _err("E304", f"{what} must not be negative", expr.span)
        return (expr.value / 100.0, True)
    return (convert(expr, C.NonNegative, what), False)


def _padding(expr: ir.Expr, typ, what: str):
    if isinstance(expr, ir.Number):
        return convert(expr, C.Int(min=0), what)
    return _num_list(expr, typ, what)


def _dims(expr: ir.Expr, typ, what: str):
    if isinstance(expr, ir.ListExpr):
        bad = next((i for i in expr.items if isinstance(i, ir.Number) and not float(i.value).is_integer()), None)
        if bad is not None:
            raise _err("E303", f"{what} must be integers, found {bad.value:g}", bad.span)
    return _num_list(expr, typ, what)


def _num_list(expr: ir.Expr, typ: C.NumList, what: str):
    if isinstance(expr, ir.Ref) and expr.dotted in typ.words:
        return expr.dotted
    if isinstance(expr, ir.ListExpr) and expr.items and all(isinstance(i, ir.Number) for i in expr.items):
        values = tuple(float(i.value) for i in expr.items)
        bad = next((i for i in expr.items if typ.positive and i.value <= 0), None)
        if bad is not None:
            raise _err("E304", f"{what} must be positive, found {bad.value:g}", bad.span)
        return values
    raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)


def _choice(expr: ir.Expr, typ: C.Choice, what: str) -> str:
    word = expr.dotted if isinstance(expr, ir.Ref) else expr.value if isinstance(expr, ir.Str) else None
    if word in typ.options:
        return word
    if word is None:
        raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)
    raise _err("E305", f"unknown value '{word}' for {what}", expr.span,
               did_you_mean(word, typ.options) or one_of(typ.options))


def _dur_list(expr: ir.Expr, typ, what: str) -> tuple:
    """milestones = [30 epochs, 60 epochs]"""
    items = expr.items if isinstance(expr, ir.ListExpr) else (expr,) if isinstance(expr, (ir.Quantity, ir.Number)) \
        else ()
    if not items:
        raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)
    return tuple(convert(i, typ.item(), what) for i in items)


def _dur(expr: ir.Expr, typ: C.Dur, what: str) -> ir.Duration:
    if isinstance(expr, ir.Quantity):
        if expr.unit not in C.UNITS:
            raise _err("E306", f"unknown unit '{expr.unit}'", expr.span,
                       did_you_mean(expr.unit, C.UNITS) or one_of(C.UNITS))
        unit, factor = C.UNITS[expr.unit]
        if unit not in typ.units:
            raise _err("E306", f"{what} takes {typ.describe()}, found a quantity in {unit}", expr.span)
        value = expr.value * factor
        if value <= 0 or (unit in ("steps", "epochs") and not float(value).is_integer()):
            raise _err("E304", f"{what} must be a positive whole number of {unit}", expr.span)
        if unit == "fraction" and value > 1:
            raise _err("E304", f"{what} is more than the whole run ({expr.value:g}%)", expr.span)
        return ir.Duration(value=float(value), unit=ir.Unit(unit), span=expr.span)
    if isinstance(expr, ir.Number):
        raise _err("E306", f"{what} needs a unit", expr.span, f"write it as {typ.describe()}")
    raise _err("E303", f"{what} must be {typ.describe()}, found {_describe(expr)}", expr.span)


def _as_is(expr: ir.Expr, typ, what: str) -> ir.Expr:
    return expr  # resolved by the caller, who knows the names in scope


CONVERTERS = {  # schema type class -> its converter(expr, typ, what); a subclass without one uses its base's
    C.Num: _number, C.Bool_: _bool, C.Text: _text, C.Names: _names, C.Delta: _delta,
    C.layers_vision.Padding: _padding, C.layers_vision.Dims: _dims, C.NumList: _num_list, C.Choice: _choice,
    C.schedules.DurList: _dur_list, C.Dur: _dur,
    C.MetricName: lambda expr, typ, what: metric_ref(expr, what),
    C.Value: _as_is, C.InitRef: _as_is,
}


def convert(expr: ir.Expr, typ, what: str):
    """Turn one expression into the Python value `typ` describes, or raise _Bad."""
    fn = next((CONVERTERS[c] for c in type(typ).__mro__ if c in CONVERTERS), None)
    if fn is None:
        raise AssertionError(f"no converter for {typ!r}")
    return fn(expr, typ, what)


SPLITS = ("train", "val")
MAX_INT = 2**53  # of an integer argument: past it a float is not exact, and numpy's int64 is near (2^63)
MAX_FOLDS = 1000  # of kfold(k): each fold is a whole training run (and k is at most the examples: lint checks)


def _arg_spans(keys: dict[str, ir.Entry]) -> tuple[tuple[str, ir.Span], ...]:
    """Where a data source's path and kfold's k are written (`source.path`, `split.k`), for the checks
    against the data (`trainc lint`), which find problems with them."""
    out = []
    for key, name in (("source", "path"), ("train", "path"), ("val", "path"), ("test", "path"), ("split", "k")):
        expr = keys[key].value if key in keys else None
        if isinstance(expr, ir.Call):
            arg = next((k.value for k in expr.kwargs if k.name == name), expr.args[0] if expr.args else None)
            if arg is not None:
                out.append((f"{key}.{name}", arg.span))
    for key in ("source", "train", "val", "test"):  # each column named in target/features, for E503 at its name
        expr = keys[key].value if key in keys else None
        for kw in expr.kwargs if isinstance(expr, ir.Call) else ():
            items = kw.value.items if isinstance(kw.value, ir.ListExpr) else (kw.value,)
            out += [(f"column:{i.value}", i.span) for i in items if kw.name in ("target", "features", "column")
                    and isinstance(i, ir.Str)]
    split = keys["split"].value if "split" in keys else None  # a `stratify` written out: the rules check it
    written = split.entries if isinstance(split, ir.Record) else split.kwargs if isinstance(split, ir.Call) else ()
    out += [("split.stratify", e.value.span) for e in written if getattr(e, "key", getattr(e, "name", None))
            == "stratify"]
    return tuple(out)


def metric_ref(expr: ir.Expr, what: str) -> ir.MetricRef:
    if isinstance(expr, ir.Ref) and len(expr.parts) == 2:
        split, name = expr.parts
        if split not in SPLITS:
            test = "the test split is evaluated once, at the end, and never monitored: use val" if split == "test" \
                else None
            raise _err("E207", f"unknown split '{split}' in {what}", expr.span,
                       test or did_you_mean(split, SPLITS) or one_of(SPLITS))
        return ir.MetricRef(split=split, name=name, span=expr.span)
    raise _err("E303", f"{what} must name a metric on a split, like val.loss, found {_describe(expr)}", expr.span)


def bind(entry: C.Entry, reg: C.Registry, call: ir.Expr, skip: tuple[str, ...] = (),
         recover: list[Diagnostic] | None = None) -> dict:
    """Bind a call (or a bare name) to a registry entry's signature; returns name -> value.

    With `recover`, an unknown or repeated keyword (E202, E208) is recorded there and left out, and the
    call binds without it: one misspelt argument does not hide what the rest of the spec would show."""
    args = call.args if isinstance(call, ir.Call) else ()
    kwargs = call.kwargs if isinstance(call, ir.Call) else ()
    params = [p for p in entry.params if p.name not in skip]
    out: dict = {}
    spans: dict = {}
    problems: list[Diagnostic] = []
    if len(args) > len(params):
        extra = args[len(params)]
        raise _err("E302", f"too many arguments to {entry.name}: it takes {len(params)}", extra.span,
                   f"signature: {entry.signature}")
    for p, a in zip(params, args):
        out[p.name], spans[p.name] = a, a.span
    for kw in kwargs:
        if entry.param(kw.name) is None or kw.name in skip:
            names = [p.name for p in params] + [n for n in reg.shared_for(entry) if n not in skip]
            help_ = did_you_mean(kw.name, names) or (f"{entry.name} takes: {', '.join(names)}" if names else
                                                     f"{entry.name} takes no arguments")
            problems.append(Diagnostic(code="E202", message=f"unknown argument '{kw.name}' for {reg.kind} "
                                       f"'{entry.name}'", span=kw.span, help=help_))
            continue
        if kw.name in out:
            problems.append(Diagnostic(code="E208", message=f"argument '{kw.name}' given twice", span=kw.span))
            continue
        out[kw.name], spans[kw.name] = kw.value, kw.span
    for p in params:
        if p.name not in out:
            if p.default is C.REQUIRED:
                problems.append(Diagnostic(code="E301", message=f"{reg.kind} '{entry.name}' needs argument "
                                           f"'{p.name}'", span=call.span, help=f"signature: {entry.signature}"))
            else:
                out[p.name] = p.default
            continue
        try:
            out[p.name] = convert(out[p.name], p.type, f"'{p.name}' of {entry.name}")
        except _Bad as b:
            problems.append(b.diag)
    if recover is not None and all(d.code in ("E202", "E208") for d in problems):
        recover.extend(problems)
    elif problems:
        raise SpecError(problems)
    return {p.name: out[p.name] for p in params}


def lookup(reg: C.Registry, expr: ir.Expr, what: str | None = None) -> C.Entry:
    """The registry entry a bare name or call refers to."""
    if isinstance(expr, ir.Call):
        ref = expr.name
    elif isinstance(expr, ir.Ref):
        ref = expr
    else:
        raise _err("E303", f"expected {what or 'a ' + reg.kind}, found {_describe(expr)}", expr.span,
                   one_of(reg.names()))
    entry = reg.get(ref.dotted)
    if entry is None:
        names = reg.names()
        if isinstance(expr, ir.Call) and expr.kwargs:
            # prefer a close name that takes every keyword given: adamm(weight_decay = ...) -> adamw
            fits = [n for n in names if all(reg.get(n).param(k.name) for k in expr.kwargs)]
            names = fits if did_you_mean(ref.dotted, fits) else names
        raise _err("E201", f"unknown {reg.kind} '{ref.dotted}'", ref.span,
                   did_you_mean(ref.dotted, names) or one_of(reg.names()))
    return entry


# ---------------------------------------------------------------------------------------------
# The whole file
# ---------------------------------------------------------------------------------------------


class _Resolver:
    def __init__(self, file: ir.File, path: str):
        self.file = file
        self.path = path
        self.diags: list[Diagnostic] = []
        self.items: dict[str, ir.Section | ir.Entry] = {}
        self.broken_values: set[str] = set()
        self.malformed: set[str] = set()  # sections reported as written in the wrong form
        self.selectors: list[str] = []  # values and blocks that `groups` and `freeze` may name
        self.input_names: list[str] = []

    def guard(self, fn, *args, default=None):
        """Run one resolution step; record its problems and go on with `default`."""
        try:
            return fn(*args)
        except _Bad as b:
            self.diags.append(b.diag)
        except SpecError as e:
            self.diags.extend(e.diagnostics)
        return default

    def error(self, code, message, span, help=None):
        self.diags.append(Diagnostic(code=code, message=message, span=span, help=help))

    # ---- top level ------------------------------------------------------------------------------

    def collect(self):
        for item in self.file.items:
            if isinstance(item, (ir.InputDecl, ir.BlockDef)):
                word = "input" if isinstance(item, ir.InputDecl) else "block"
                self.error("E203", f"`{word}` belongs in the model section", item.span,
                           "move it into `model { ... }`")
                continue
            name = item.name if isinstance(item, ir.Section) else item.key
            name_span = item.name_span if isinstance(item, ir.Section) else item.key_span
            if name not in C.SECTIONS:
                self.error("E203", f"unknown section '{name}'", name_span,
                           did_you_mean(name, C.SECTIONS) or one_of(C.SECTIONS))
                continue
            if name in self.items:
                self.error("E209", f"section '{name}' appears twice", name_span,
                           f"merge it with the one at line {self.items[name].span.line}")
                continue
            if isinstance(item, ir.Section) and name in C.VALUE_SECTIONS:
                self.malformed.add(name)
                self.error("E210", f"'{name}' is a value, not a section", name_span,
                           f"write `{name} = ...`")
                continue
            if isinstance(item, ir.Entry) and name in C.BLOCK_SECTIONS:
                if not isinstance(item.value, ir.Record):
                    self.malformed.add(name)
                    self.error("E210", f"'{name}' is a section", name_span, f"write `{name} {{ ... }}`")
                    continue
                item = ir.Section(name=name, body=item.value.entries, name_span=item.key_span, span=item.span)
            self.items[name] = item

    def keys(self, section: str) -> dict[str, ir.Entry]:
        """The entries of a block section, checked against its known keys."""
        item = self.items.get(section)
        if item is None:
            return {}
        known = C.SECTIONS[section]
        out: dict[str, ir.Entry] = {}
        for stmt in item.body:
            if not isinstance(stmt, ir.Entry):
                word = {ir.InputDecl: "`input`", ir.BlockDef: "`block`"}.get(type(stmt)) or f"section `{stmt.name}`"
                self.error("E204", f"unexpected {word} in {section}",
                           stmt.span, f"{section} holds `key = value` settings")
                continue
            if stmt.key not in known:
                self.error("E204", f"unknown key '{stmt.key}' in {section}", stmt.key_span,
                           did_you_mean(stmt.key, known) or one_of(known))
                continue
            if stmt.key in out:
                self.error("E209", f"'{stmt.key}' is set twice in {section}", stmt.key_span)
                continue
            out[stmt.key] = stmt
        return out

    def getter(self, section: str, keys: dict[str, ir.Entry]):
        """get(key, *extra, task=None): the setting `key` of `section`, converted as its declaration in
        catalog/sections.py says (by `convert` against its type, or by the resolver method it names, given
        the value and `extra`), or its declared default when absent or bad (`task` picks a ByTask default)."""

        def get(key: str, *extra, task: ir.Task | None = None):
            decl = C.sections.key(section, key)
            default = decl.default.for_task(task.value) if isinstance(decl.default, C.ByTask) \
                else None if decl.default is C.REQUIRED else decl.default
            if key not in keys:
                return default
            if decl.via is not None:
                return self.guard(getattr(self, decl.via), keys[key].value, *extra, default=default)
            return self.guard(convert, keys[key].value, decl.type, f"{section}.{key}", default=default)

        return get

    def missing(self, section: str, what: str, example: str) -> ir.Span:
        span = ir.Span(self.path, 1, 1, 1, 1)
        if section not in self.malformed:
            self.error("E205", f"missing {what}", span, f"add {example}")
        return span

    # ---- data -------------------------------------------------------------------------------------

    def source(self, expr: ir.Expr) -> ir.Source:
        entry = lookup(C.SOURCES, expr)
        args = bind(entry, C.SOURCES, expr)
        path = args.pop("path")
        return ir.Source(kind=entry.name, path=path, args=tuple(args.items()), span=expr.span)

    def split(self, expr: ir.Expr) -> ir.Split:
        if isinstance(expr, (ir.Call, ir.Ref)) and (expr.name if isinstance(expr, ir.Call) else expr).dotted == "kfold":
            entry = C.Entry("kfold", (C.ParamSpec("k", C.Int(min=2, max=MAX_FOLDS), C.REQUIRED),
                                      C.ParamSpec("stratify", C.Bool, True)), "k-fold cross-validation")
            a = bind(entry, C.Registry("split"), expr)
            return ir.Split(train=1.0 - 1.0 / a["k"], val=1.0 / a["k"], stratify=a["stratify"], folds=a["k"],
                            span=expr.span)
        if not isinstance(expr, ir.Record):
            raise _err("E303", f"split must be a record like {{ train = 0.8, val = 0.2 }}, found {_describe(expr)}",
                       expr.span)
        vals = {"train": None, "val": None, "test": 0.0, "stratify": True}
        for e in expr.entries:
            if not isinstance(e, ir.Entry) or e.key not in vals:
                name = getattr(e, "key", "?")
                raise _err("E204", f"unknown key '{name}' in split", getattr(e, "key_span", e.span),
                           did_you_mean(name, vals) or one_of(vals))
            typ = C.Bool if e.key == "stratify" else C.Float(0.0, 1.0, min_open=True)
            vals[e.key] = convert(e.value, typ, f"split.{e.key}")
        if vals["train"] is None or vals["val"] is None:
            raise _err("E301", "split needs both train and val fractions", expr.span,
                       "write { train = 0.8, val = 0.2 }")
        total = vals["train"] + vals["val"] + vals["test"]
        if total > 1 + 1e-9:
            raise _err("E304", f"split fractions add up to {total:g}, more than 1", expr.span)
        return ir.Split(train=vals["train"], val=vals["val"], test=vals["test"], stratify=vals["stratify"],
                        span=expr.span)

    def data(self, task: ir.Task | None) -> ir.Data:
        keys = self.keys("data")
        sec = self.items.get("data")
        span = sec.span if sec else self.missing("data", "data section", "`data { source = csv(\"file.csv\", "
                                                 "target = \"label\") }`")
        get = self.getter("data", keys)
        source, split, train, val = get("source"), get("split"), get("train"), get("val")
        if sec is not None:
            if "source" in keys and ("train" in keys or "val" in keys):
                k = keys.get("train") or keys["val"]
                self.error("E211", "give either `source` with `split`, or `train` and `val` files, not both",
                           k.key_span)
            elif "source" in keys and "split" not in keys:
                self.error("E205", "data.source needs a `split`", keys["source"].key_span,
                           "add `split = { train = 0.8, val = 0.2 }`")
            elif "source" not in keys and not ("train" in keys and "val" in keys):
                self.error("E205", "missing data source", sec.name_span,
                           "add `source = csv(\"file.csv\", target = \"label\")` and a `split`, "
                           "or separate `train` and `val` files")
        given_task = get("task")
        known = given_task is not None or task is not None  # else the loss did not resolve: the task is a guess
        task = ir.Task(given_task) if given_task else (task or ir.Task.classification)
        target_normalize = get("target_normalize", task=task)
        if task == ir.Task.classification and target_normalize != "none" and known:
            self.error("E307", "target_normalize is for regression targets; class labels are not normalised",
                       keys["target_normalize"].key_span, "remove it")
        test = get("test")
        if test is not None and source is not None:
            self.error("E211", "with `source`, a test split is a fraction: split = { train = 0.7, val = 0.15, "
                       "test = 0.15 }", keys["test"].key_span)
        sampler = get("sampler")
        if sampler != "none" and task != ir.Task.classification:
            self.error("E307", f"sampler = {sampler} balances classes, but the task is {task.value}",
                       keys["sampler"].key_span, "remove it")
        augment = get("augment")
        return ir.Data(source=source, split=split, train=train, val=val, test=test, sampler=sampler, augment=augment,
                       normalize=get("normalize"), target_normalize=target_normalize,
                       batch=None if _is_all(keys.get("batch")) else get("batch"), shuffle=get("shuffle"),
                       task=task, span=span,
                       where=tuple((k, e.value.span) for k, e in keys.items()) + _arg_spans(keys))

    def augment(self, expr: ir.Expr) -> tuple[ir.Augment, ...]:
        """`augment = [flip, crop(padding = 1)]` (or one call): each bound to its registry entry, in order."""
        out = []
        for e in expr.items if isinstance(expr, ir.ListExpr) else (expr,):
            entry = self.guard(lookup, C.AUGMENTATIONS, e, "an augmentation like flip or noise(std = 0.05)")
            args = self.guard(bind, entry, C.AUGMENTATIONS, e) if entry is not None else None
            if args is not None:
                out.append(ir.Augment(kind=entry.name, args=tuple(args.items()), span=e.span))
        return tuple(out)

    # ---- model ------------------------------------------------------------------------------------

    def model(self) -> ir.Model:
        sec = self.items.get("model")
        if sec is None:
            span = self.missing("model", "model section", "`model { input x: f32[4]  logits = x -> dense(3) }`")
            return ir.Model(inputs=(), layers=(), values=(), span=span)
        m = _ModelBuilder(self)
        body = list(sec.body)
        m.below = {s.key: s.key_span for s in body if isinstance(s, ir.Entry) and s.key != "init"}
        pretrained = None
        for stmt in body:  # `init = xavier`: the model's default initialiser, wherever it is written
            if isinstance(stmt, ir.Entry) and stmt.key == "init":
                if isinstance(stmt.value, ir.Call) and stmt.value.name.dotted == "from":
                    pretrained = stmt.value  # checked once the values and blocks are known
                else:
                    m.default_init = self.guard(m.init, stmt.value)
        for stmt in body:
            if isinstance(stmt, ir.Entry) and stmt.key == "init":
                continue
            self.guard(m.statement, stmt)
        self.broken_values = m.broken
        self.input_names = [i.name for i in m.inputs]
        self.selectors = sorted(set(m.values) - {i.name for i in m.inputs} | set(m.blocks))
        if not m.inputs and not any(isinstance(s, ir.InputDecl) for s in sec.body):
            self.error("E205", "the model has no input", sec.name_span, "declare one: `input x: f32[64]`")
        return ir.Model(inputs=tuple(m.inputs), layers=tuple(m.layers), values=tuple(m.values.items()),
                        span=sec.span, pretrained=self.guard(self.pretrained, pretrained) if pretrained else None)

    def pretrained(self, call: ir.Call) -> ir.Pretrained:
        """`from(PATH, only = [values or blocks], weights = final | best | latest)`."""
        kw = {k.name: k for k in call.kwargs}
        for k in kw:
            if k not in ("only", "weights"):
                raise _err("E202", f"unknown argument '{k}' for from(...)", kw[k].span,
                           did_you_mean(k, ("only", "weights")) or "expected one of: only, weights")
        if len(call.args) != 1 or not isinstance(call.args[0], ir.Str):
            raise _err("E303", "from(...) takes the path of a run directory or a .safetensors file, as a string",
                       call.span, 'write `init = from("runs/pretrain", only = [encoder])`')
        only = self.freeze(kw["only"].value, what="only") if "only" in kw else ()
        weights = "final"
        if "weights" in kw:
            w = kw["weights"].value
            weights = w.dotted if isinstance(w, ir.Ref) else None
            if weights not in ("final", "best", "latest"):
                raise _err("E303", f"weights must be final, best or latest, found {_describe(w)}", w.span)
        return ir.Pretrained(path=call.args[0].value, only=only, weights=weights, span=call.span)

    # ---- loss, optimizer, schedule, metrics -------------------------------------------------------

    def loss(self, values: set[str]) -> ir.Loss | None:
        item = self.items.get("loss")
        if item is None:
            self.missing("loss", "loss", "`loss = cross_entropy(logits, target)`")
            return None
        terms = self.guard(self.loss_terms, item.value, 1.0, values, default=())
        return ir.Loss(terms=tuple(terms), span=item.span) if terms else None

    def loss_task(self, loss: ir.Loss | None) -> ir.Task | None:
        """The task the loss implies: from its first term, or, where the loss did not resolve (a value of a
        broken model), from the name of its first call, so the data checks do not guess (stratify on a
        regression target)."""
        if loss is not None and loss.terms:
            return C.LOSSES.get(loss.terms[0].kind).extra["task"]
        expr = self.items["loss"].value if "loss" in self.items else None
        while isinstance(expr, ir.BinOp) and expr.op in ("+", "*"):
            expr = expr.right if isinstance(expr.left, ir.Number) else expr.left
        name = expr.name.dotted if isinstance(expr, ir.Call) else expr.dotted if isinstance(expr, ir.Ref) else None
        entry = C.LOSSES.get(name) if name else None
        return entry.extra["task"] if entry else None

    def loss_terms(self, expr: ir.Expr, weight: float, values: set[str]) -> list[ir.LossTerm]:
        if isinstance(expr, ir.BinOp) and expr.op == "+":
            return self.loss_terms(expr.left, weight, values) + self.loss_terms(expr.right, weight, values)
        if isinstance(expr, ir.BinOp) and expr.op == "*":
            if isinstance(expr.left, ir.Number):
                return self.loss_terms(expr.right, weight * expr.left.value, values)
            if isinstance(expr.right, ir.Number):
                return self.loss_terms(expr.left, weight * expr.right.value, values)
        if weight <= 0:
            raise _err("E304", f"loss weights must be positive, found {weight:g}", expr.span,
                       "a loss is minimised; to maximise something, minimise its opposite with a loss made for it")
        if not isinstance(expr, (ir.Call, ir.Ref)):
            raise _err("E303", f"loss must be a loss call like cross_entropy(logits, target), or a weighted sum of "
                       f"them, found {_describe(expr)}", expr.span)
        entry = lookup(C.LOSSES, expr)
        args = bind(entry, C.LOSSES, expr, recover=self.diags)
        pred, target = args.pop("pred"), args.pop("target")
        for what, e in (("prediction", pred), ("target", target)):
            if not isinstance(e, ir.Ref) or len(e.parts) != 1:
                raise _err("E303", f"the {what} of {entry.name} must be a name, found {_describe(e)}", e.span)
        if pred.dotted in self.broken_values or "model" in self.malformed or "model" not in self.items:
            raise SpecError([])  # reported already, where the value or the model is defined (or missing)
        if pred.dotted not in values:
            raise _err("E206", f"unknown model value '{pred.dotted}'", pred.span,
                       did_you_mean(pred.dotted, values) or one_of(values))
        inputs = set(self.input_names)
        if target.dotted != "target" and target.dotted not in inputs:
            raise _err("E206", f"unknown target '{target.dotted}'", target.span,
                       "the data's target column is called `target`; an autoencoder compares with its input "
                       f"({', '.join(sorted(inputs)) or 'none declared'})")
        return [ir.LossTerm(kind=entry.name, pred=pred.dotted, target=target.dotted, weight=float(weight),
                            args=tuple(args.items()), span=expr.span)]

    def optimizer(self) -> ir.Optimizer:
        item = self.items.get("optimizer")
        if item is None:
            span = self.missing("optimizer", "optimizer", "`optimizer = adam(lr = 1e-3)`")
            return ir.Optimizer(kind="adam", args=tuple(bind(C.OPTIMIZERS.get("adam"), C.OPTIMIZERS,
                                                             ir.Ref(parts=("adam",), span=span)).items()), span=span)
        expr = item.value
        entry = lookup(C.OPTIMIZERS, expr)
        shared = {k.name: k for k in expr.kwargs if k.name in ("groups", "freeze")} if isinstance(expr, ir.Call) \
            else {}
        if shared:  # every optimizer takes these two; they are not part of its own signature
            expr = ir.Call(name=expr.name, args=expr.args, kwargs=tuple(k for k in expr.kwargs if k.name not in shared),
                           span=expr.span)
        args = bind(entry, C.OPTIMIZERS, expr, recover=self.diags)
        # each reported on its own: a typo in `groups` does not hide one in `freeze`
        groups = self.guard(self.groups, entry, shared["groups"].value, default=()) if "groups" in shared else ()
        freeze = self.guard(self.freeze, shared["freeze"].value, default=()) if "freeze" in shared else ()
        return ir.Optimizer(kind=entry.name, args=tuple(args.items()), groups=groups, freeze=freeze, span=expr.span)

    def selector(self, name: str, span: ir.Span) -> str:
        """A model value or block name, as used by `groups` and `freeze`."""
        if name not in self.selectors and "model" in self.items and "model" not in self.malformed:  # else reported
            raise _err("E206", f"unknown model value or block '{name}'", span,
                       did_you_mean(name, self.selectors) or one_of(self.selectors or ["(none)"]))
        return name

    def groups(self, entry: C.Entry, expr: ir.Expr) -> tuple[ir.Group, ...]:
        if not isinstance(expr, ir.Record):
            raise _err("E303", f"groups must be a record like {{ encoder = {{ lr = 1e-4 }} }}, found {_describe(expr)}",
                       expr.span)
        found = [self.guard(self.group, entry, e) for e in expr.entries]  # every group's problems are reported
        return tuple(g for g in found if g is not None)

    def group(self, entry: C.Entry, e: ir.Entry) -> ir.Group:
        """One `name = { lr = 1e-4, ... }` of an optimizer's groups: a known value or block, its settings bound
        as the optimizer's own arguments."""
        sel = self.guard(self.selector, e.key, e.key_span)
        if not isinstance(e.value, ir.Record):
            raise _err("E303", f"the settings of group '{e.key}' must be a record like {{ lr = 1e-4 }}",
                       e.value.span)
        call = ir.Call(name=ir.Ref(parts=(entry.name,), span=e.span), args=(),
                       kwargs=tuple(ir.KwArg(name=s.key, value=s.value, span=s.span) for s in e.value.entries),
                       span=e.span)
        given = {s.key for s in e.value.entries}
        bound = bind(entry, C.OPTIMIZERS, call)
        if sel is None:
            raise SpecError([])  # the unknown name is already reported
        return ir.Group(selector=sel, args=tuple((k, v) for k, v in bound.items() if k in given), span=e.span)

    def freeze(self, expr: ir.Expr, what: str = "freeze") -> tuple[str, ...]:
        """A list of model values or blocks (`freeze`, a penalty's `on`); every unknown name is reported."""
        items = expr.items if isinstance(expr, ir.ListExpr) else (expr,)
        out, bad = [], []
        for i in items:
            if not (isinstance(i, ir.Ref) and len(i.parts) == 1):
                bad.append(Diagnostic(code="E303", message=f"{what} lists model values or blocks, like [encoder], "
                                      f"found {_describe(i)}", span=i.span))
            elif (sel := self.guard(self.selector, i.dotted, i.span)) is not None:
                out.append(sel)
        if bad:
            raise SpecError(bad)
        return tuple(out)

    def schedule(self) -> ir.Schedule:
        item = self.items.get("schedule")
        if item is None:
            span = ir.NOWHERE
            return ir.Schedule(phases=(ir.Phase(kind="constant", args=(), length=None, span=span),), span=span)
        parts = item.value.parts if isinstance(item.value, ir.Then) else (item.value,)
        phases = []
        for i, part in enumerate(parts):
            entry = lookup(C.SCHEDULES, part)
            args = bind(entry, C.SCHEDULES, part, recover=self.diags)
            length = args.pop("length")
            last = i == len(parts) - 1
            if length is None and not last:
                raise _err("E301", f"'{entry.name}' is followed by another phase, so it needs a length", part.span,
                           f"give it one: {entry.name}(..., length = 10 epochs)")
            phases.append(ir.Phase(kind=entry.name, args=tuple(args.items()), length=length, span=part.span))
        return ir.Schedule(phases=tuple(phases), span=item.value.span)

    def metrics(self) -> tuple[ir.Metric, ...]:
        item = self.items.get("metrics")
        if item is None:
            return ()
        items = item.value.items if isinstance(item.value, ir.ListExpr) else (item.value,)
        out, seen = [], set()
        for e in items:
            entry = self.guard(lookup, C.METRICS, e)
            if entry is None:
                continue
            args = self.guard(bind, entry, C.METRICS, e)
            if args is None:
                continue
            if entry.name in seen:
                self.error("E209", f"metric '{entry.name}' is listed twice", e.span)
                continue
            seen.add(entry.name)
            out.append(ir.Metric(kind=entry.name, args=tuple(args.items()), span=e.span))
        return tuple(out)

    # ---- regularization, stop, checkpoint, run ----------------------------------------------------

    def regularization(self) -> ir.Regularization:
        keys = self.keys("regularization")
        sec = self.items.get("regularization")
        get = self.getter("regularization", keys)
        (l1, l1_on), (l2, l2_on) = get("l1", "l1"), get("l2", "l2")
        if "elastic_net" in keys:
            # scikit-learn's form: alpha * (l1_ratio * |w|_1 + (1 - l1_ratio) / 2 * |w|^2)
            en = get("elastic_net")
            if en and (l1_on or l2_on):
                self.error("E303", "elastic_net penalises every weight, and l1 or l2 here only some "
                           f"([{', '.join(l1_on or l2_on)}])", keys["elastic_net"].value.span,
                           "write the two penalties as l1 and l2, each with its own `on`")
            elif en:
                l1, l2 = l1 + en["alpha"] * en["l1_ratio"], l2 + en["alpha"] * (1 - en["l1_ratio"])
        return ir.Regularization(l1=l1, l2=l2, l1_on=l1_on, l2_on=l2_on,
                                 weight_decay=get("weight_decay"), clip_grad_norm=get("clip_grad_norm"),
                                 clip_grad_value=get("clip_grad_value"), accumulate=get("accumulate"),
                                 span=sec.span if sec else ir.NOWHERE,
                                 where=tuple((k, e.value.span) for k, e in keys.items()))

    def penalty(self, expr: ir.Expr, key: str) -> tuple[float, tuple[str, ...]]:
        """`l2 = 1e-4` (every weight tensor of 2+ dimensions) or `l2 = { value = 1e-4, on = [encoder, head] }`
        (only those of the named model values or blocks)."""
        if not isinstance(expr, ir.Record):
            return convert(expr, C.NonNegative, f"regularization.{key}"), ()
        fields = {"value": "the penalty's strength", "on": "the model values or blocks it applies to"}
        given = {}
        for e in expr.entries:
            if e.key not in fields:
                raise _err("E204", f"unknown key '{e.key}' in {key}", e.key_span,
                           did_you_mean(e.key, fields) or one_of(fields))
            given[e.key] = e
        if "value" not in given:
            raise _err("E205", f"{key} needs a value", expr.span, f"write {{ value = 1e-4, on = [...] }}")
        value = convert(given["value"].value, C.NonNegative, f"regularization.{key}.value")
        on = self.freeze(given["on"].value, what=f"{key}.on") if "on" in given else ()
        return value, on

    def elastic_net(self, expr: ir.Expr) -> dict:
        entry = lookup(C.REGULARIZERS, expr, "elastic_net(alpha, l1_ratio)")
        return bind(entry, C.REGULARIZERS, expr)

    def stop(self) -> ir.Stop:
        keys = self.keys("stop")
        sec = self.items.get("stop")
        span = sec.span if sec else ir.NOWHERE
        get = self.getter("stop", keys)
        mx = get("max")
        if mx is None and "max" not in keys and "stop" not in self.malformed:
            where = sec.name_span if sec else ir.Span(self.path, 1, 1, 1, 1)
            self.error("E205", "missing stop.max: how long may the run last?", where,
                       "add `stop { max = 20 epochs }` (or `max = 1000 steps`)")
        mx = mx or ir.Duration(value=1.0, unit=ir.Unit.epochs, span=ir.NOWHERE)  # NOWHERE: already reported
        early, when, budget, diverge = get("early"), get("when"), get("budget"), get("diverge")
        return ir.Stop(max=mx, early=early, when=when, budget=budget.value if budget else None, diverge=diverge,
                       min=get("min"), span=span)

    def early(self, expr: ir.Expr) -> ir.EarlyStop:
        entry = lookup(C.STOP_RULES, expr, "an early-stopping rule like plateau(val.loss, patience = 5)")
        a = bind(entry, C.STOP_RULES, expr, recover=self.diags)
        delta, relative = a["min_delta"] if isinstance(a["min_delta"], tuple) else (a["min_delta"], False)
        return ir.EarlyStop(monitor=a["monitor"], mode=a["mode"], patience=a["patience"], min_delta=delta,
                            restore_best=a["restore_best"], relative=relative, span=expr.span)

    def diverge(self, expr: ir.Expr) -> ir.Divergence:
        entry = lookup(C.DIVERGENCE, expr, "stop or rollback(lr_factor = 0.5, retries = 3)")
        a = bind(entry, C.DIVERGENCE, expr)
        return ir.Divergence(action=entry.name, explode=a["explode"], lr_factor=a.get("lr_factor", 1.0),
                             retries=a.get("retries", 0), span=expr.span)

    def when(self, expr: ir.Expr) -> ir.Threshold:
        if not (isinstance(expr, ir.BinOp) and expr.op in (">=", "<=", ">", "<")):
            raise _err("E303", f"stop.when must be a comparison like val.accuracy >= 0.99, found {_describe(expr)}",
                       expr.span)
        monitor = metric_ref(expr.left, "stop.when")
        value = convert(expr.right, C.Float(), "the threshold")
        return ir.Threshold(monitor=monitor, op=expr.op, value=value, span=expr.span)

    def checkpoint(self) -> ir.Checkpoint | None:
        sec = self.items.get("checkpoint")
        if sec is None:
            return None
        keys = self.keys("checkpoint")
        get = self.getter("checkpoint", keys)
        return ir.Checkpoint(every=get("every"), keep=get("keep"), last=get("last"), span=sec.span)

    def keep(self, expr: ir.Expr) -> ir.MetricRef:
        if isinstance(expr, ir.Call) and expr.name.dotted == "best" and len(expr.args) == 1 and not expr.kwargs:
            return metric_ref(expr.args[0], "best(...)")
        raise _err("E303", f"checkpoint.keep must be best(<metric>), like best(val.loss), found {_describe(expr)}",
                   expr.span)

    def run(self) -> ir.Run:
        keys = self.keys("run")
        sec = self.items.get("run")
        get = self.getter("run", keys)
        precision = get("precision")
        return ir.Run(seed=get("seed"), device=get("device"), precision=C.PRECISIONS[precision], beam=get("beam"),
                      span=sec.span if sec else ir.NOWHERE, where=tuple((k, e.value.span) for k, e in keys.items()))


class _ModelBuilder:
    """Expands the model section into a flat list of layers (a DAG through named values)."""

    MAX_DEPTH = 16
    MAX_LAYERS = 10_000  # what repeats may expand to: `repeat 1e9 { ... }` is a typo, not a model

    def __init__(self, r: _Resolver):
        self.r = r
        self.inputs: list[ir.Input] = []
        self.layers: list[ir.Layer] = []
        self.values: dict[str, str] = {}  # user-visible value -> layer or input name
        self.blocks: dict[str, ir.BlockDef] = {}
        self.counts: dict[str, int] = {}
        self.broken: set[str] = set()  # values whose definition failed
        self.default_init: tuple | None = None  # `init = ...` in the model section
        self.below: dict[str, ir.Span] = {}  # every value the section names -> where (a use before it is made)
        self.call_site: ir.Span | None = None  # inside a block: the call in the model's own lines that led here

    def statement(self, stmt):
        if isinstance(stmt, ir.InputDecl):
            if stmt.dtype not in C.DTYPES or not stmt.dims or any(not float(d).is_integer() or d < 1
                                                                   for d in stmt.dims):
                self.broken.add(stmt.name)  # reported below; uses of it stay quiet
            if stmt.dtype not in C.DTYPES:
                raise _err("E305", f"unknown dtype '{stmt.dtype}'", stmt.span, did_you_mean(stmt.dtype, C.DTYPES)
                           or one_of(C.DTYPES))
            if not stmt.dims or any(not float(d).is_integer() or d < 1 for d in stmt.dims):
                raise _err("E304", "input dimensions must be positive integers, like f32[64] or f32[1, 8, 8]",
                           stmt.span)
            if any(d > MAX_INT for d in stmt.dims):
                self.broken.add(stmt.name)
                raise _err("E304", f"an input dimension of {max(stmt.dims):g} is more than 2^53 = {MAX_INT:,}, the "
                           "largest whole number a float holds exactly", stmt.span)
            self.define(stmt.name, stmt.name, stmt.span)
            self.inputs.append(ir.Input(name=stmt.name, type=ir.TensorType(dtype=C.DTYPES[stmt.dtype], shape=tuple(
                int(d) for d in stmt.dims)), span=stmt.span))
        elif isinstance(stmt, ir.BlockDef):
            if stmt.name in self.blocks or stmt.name in C.LAYERS:
                raise _err("E209", f"block '{stmt.name}' is already defined" if stmt.name in self.blocks else
                           f"block '{stmt.name}' hides the built-in layer of that name", stmt.span)
            self.blocks[stmt.name] = stmt
        elif isinstance(stmt, ir.Entry):
            try:
                out = self.flow(stmt.value, stmt.key, {}, 0)
            except (_Bad, SpecError):
                self.broken.add(stmt.key)  # reported once here; later uses of it stay quiet
                raise
            self.define(stmt.key, out, stmt.key_span)
        else:
            raise _err("E204", "unexpected section inside model", stmt.span,
                       "the model holds `input`, `block` and `name = x -> layer -> ...` lines")

    def define(self, name: str, target: str, span: ir.Span):
        if name in self.values or name == "target":
            raise _err("E209", f"'{name}' is already defined" if name != "target" else "'target' is reserved for "
                       "the data's target", span)
        self.values[name] = target

    def fresh(self, prefix: str, op: str) -> str:
        """A unique node name: `logits.dense0`, `logits.mlp1.dense0`."""
        key = f"{prefix}.{op}"
        self.counts[key] = self.counts.get(key, 0) + 1
        return f"{key}{self.counts[key] - 1}"

    def flow(self, expr: ir.Expr, prefix: str, env: dict[str, ir.Expr], depth: int, start: str | None = None) -> str:
        """Lower a pipeline into layers; returns the name of the node holding its result."""
        stages = expr.stages if isinstance(expr, ir.Pipeline) else (expr,)
        cur = start
        for stage in stages:
            stage = env.get(stage.dotted, stage) if isinstance(stage, ir.Ref) and len(stage.parts) == 1 else stage
            if cur is None:
                cur = self.value(stage, prefix, env)
                continue
            cur = self.apply(stage, cur, prefix, env, depth)
        return cur

    @staticmethod
    def repeat_count(expr: ir.Expr, env: dict[str, ir.Expr], example: str) -> int:
        times = _substitute(expr, env)
        if not (isinstance(times, ir.Number) and float(times.value).is_integer() and times.value >= 1):
            raise _err("E303", f"a repeat count must be a positive integer, found {_describe(times)}", expr.span,
                       example)
        if times.value > _ModelBuilder.MAX_LAYERS:
            raise _err("E304", f"a repeat count of {times.value:g} is more than the {_ModelBuilder.MAX_LAYERS} layers "
                       "a model may have", expr.span)
        return int(times.value)

    def grow(self, span: ir.Span) -> None:
        """Before each repetition: repeats inside repeats (or blocks) multiply, so bound the total."""
        if len(self.layers) > self.MAX_LAYERS:
            raise _err("E304", f"the model expands to more than {self.MAX_LAYERS} layers", span,
                       "lower the repeat counts")

    def value(self, stage: ir.Expr, prefix: str = "", env: dict | None = None) -> str:
        if isinstance(stage, ir.Ref) and stage.dotted in self.values:
            return self.values[stage.dotted]
        if isinstance(stage, ir.Call) and (entry := C.LAYERS.get(stage.name.dotted)) and entry.extra.get("multi"):
            return self.multi(entry, stage, None, prefix, env or {})  # `r = add(h, x) -> relu`
        if isinstance(stage, ir.Ref) and stage.dotted in self.broken:
            raise SpecError([])
        if isinstance(stage, ir.Ref) and (stage.dotted in C.LAYERS or stage.dotted in self.blocks):
            raise _err("E206", f"a pipeline starts from a value, found the layer '{stage.dotted}'", stage.span,
                       f"start from an input or named value: `x -> {stage.dotted}`")
        if isinstance(stage, ir.Call) and (stage.name.dotted in C.LAYERS or stage.name.dotted in self.blocks):
            raise _err("E206", f"a pipeline starts from a value, found a call to '{stage.name.dotted}'", stage.span,
                       f"start from an input or named value: `x -> {stage.name.dotted}(...)`")
        if isinstance(stage, ir.Ref) and stage.dotted in self.below:
            raise self.used_before(stage)
        if isinstance(stage, ir.Ref):
            raise _err("E206", f"unknown value '{stage.dotted}'", stage.span,
                       did_you_mean(stage.dotted, self.values) or (one_of(self.values) if self.values else
                                                                   "declare an input first: `input x: f32[64]`"))
        raise _err("E303", f"a pipeline starts from a value, found {_describe(stage)}", stage.span)

    def used_before(self, ref: ir.Ref) -> _Bad:
        """A value used above the line that makes it: the graph is read top to bottom."""
        at = self.below[ref.dotted]
        return _Bad(Diagnostic(code="E206", message=f"'{ref.dotted}' is used before it is made (at line {at.line})",
                               span=ref.span, help=f"move `{ref.dotted} = ...` above this line: a model is read "
                               "top to bottom", related=((f"'{ref.dotted}' is made here", at),)))

    def apply(self, stage: ir.Expr, cur: str, prefix: str, env: dict[str, ir.Expr], depth: int) -> str:
        if isinstance(stage, ir.BinOp) and stage.op == "*":  # `mlp(64) * 3`: the same stage three times in a row
            for _ in range(self.repeat_count(stage.right, env, "write `block(...) * 3`")):
                self.grow(stage.span)
                cur = self.apply(stage.left, cur, prefix, env, depth)  # each repetition has its own weights
            return cur
        if isinstance(stage, ir.Repeat):  # `repeat 3 { dense(64) -> relu }`: the same, for a whole pipeline
            for _ in range(self.repeat_count(stage.times, env, "write `repeat 3 { dense(64) -> relu }`")):
                self.grow(stage.span)
                cur = self.flow(stage.body, prefix, env, depth, start=cur)
            return cur
        if not isinstance(stage, (ir.Ref, ir.Call)):
            raise _err("E303", f"expected a layer or block, found {_describe(stage)}", stage.span)
        ref = stage.name if isinstance(stage, ir.Call) else stage
        name = ref.dotted
        if isinstance(stage, ir.Call):
            stage = _substitute(stage, env)
        if name in self.blocks:
            if depth >= self.MAX_DEPTH:
                raise _err("E212", f"blocks nest deeper than {self.MAX_DEPTH} (is '{name}' recursive?)", stage.span)
            block = self.blocks[name]
            bound = self.bind_block(block, stage)
            inner = self.fresh(prefix, name)
            # `in` names the block's own input inside its body: `block res(w) { dense(w) -> add(in) }`
            self.values[f"{inner}.in"] = cur
            bound.setdefault("in", ir.Ref(parts=(f"{inner}.in",), span=stage.span))
            outer = self.call_site is None
            self.call_site = stage.span if outer else self.call_site
            try:
                return self.flow(block.body, inner, bound, depth + 1, start=cur)
            finally:
                del self.values[f"{inner}.in"]
                self.call_site = None if outer else self.call_site
        if name in self.values:
            raise _err("E206", f"'{name}' is a value; only the first stage of a pipeline can be a value",
                       ref.span, f"start a new line: `... = {name} -> ...`")
        entry = lookup(C.LAYERS, stage, "a layer")
        if entry.extra.get("multi"):
            return self.multi(entry, stage, cur, prefix, env)
        share = next((k for k in stage.kwargs if k.name == "share"), None) if isinstance(stage, ir.Call) else None
        if share is not None:  # `dense(64, share = h)`: the weights of the layer that made h, not new ones
            stage = ir.Call(name=stage.name, args=stage.args, kwargs=tuple(k for k in stage.kwargs if k is not share),
                            span=stage.span)
        args = self.bind_layer(entry, stage, env)
        given = {k.name for k in stage.kwargs} if isinstance(stage, ir.Call) else set()
        if "init" in args:
            explicit = "init" in given or (isinstance(stage, ir.Call) and len(stage.args) > [
                p.name for p in entry.params].index("init"))
            args["init"] = self.init(args["init"]) if explicit or self.default_init is None else self.default_init
        if share is not None:
            args["share"] = self.shared(entry, share)
        layer = ir.Layer(name=self.fresh(prefix, entry.name), op=entry.name,
                         args=tuple(args.items()), inputs=(cur,), span=stage.span, called=self.call_site or ir.NOWHERE)
        self.layers.append(layer)
        return layer.name

    def bind_layer(self, entry: C.Entry, stage: ir.Expr, env: dict[str, ir.Expr]) -> dict:
        """`bind` for a layer: a misspelt keyword is reported and skipped; inside a block, a name that is
        close to one of the block's parameters (`dense(widht)`) gets a did-you-mean."""
        try:
            return bind(entry, C.LAYERS, stage, recover=self.r.diags)
        except SpecError as e:
            refs = {a.span: a.dotted for a in (*stage.args, *(k.value for k in stage.kwargs))
                    if isinstance(a, ir.Ref)} if isinstance(stage, ir.Call) else {}
            params = [k for k in env if k != "in"]
            raise SpecError([dataclasses.replace(d, help=hint) if d.code == "E303" and d.span in refs and
                             (hint := did_you_mean(refs[d.span], params)) else d for d in e.diagnostics]) from None

    def shared(self, entry: C.Entry, kw: ir.KwArg) -> str:
        """The layer whose weights `share = value` reuses: the one that produced that value."""
        if isinstance(kw.value, ir.Ref) and kw.value.dotted in self.below and kw.value.dotted not in self.values:
            raise self.used_before(kw.value)
        if not (isinstance(kw.value, ir.Ref) and len(kw.value.parts) == 1 and kw.value.dotted in self.values):
            raise _err("E206", "share names a model value made by a layer of the same kind", kw.value.span,
                       did_you_mean(getattr(kw.value, "dotted", ""), self.values) or "e.g. `dense(64, share = h)`")
        node = self.values[kw.value.dotted]
        owner = next((la for la in self.layers if la.name == node), None)
        if owner is None or owner.op != entry.name:
            found = owner.op if owner else "an input"
            raise _err("E303", f"share = {kw.value.dotted}: '{kw.value.dotted}' is made by {found}, not {entry.name}",
                       kw.value.span, f"name a value whose last layer is a {entry.name}")
        return dict(owner.args).get("share", owner.name)  # sharing with a sharer shares with its owner

    def multi(self, entry: C.Entry, stage: ir.Expr, cur: str | None, prefix: str, env: dict) -> str:
        """A layer of several inputs: its positional arguments are values, after the one flowing in."""
        pos = stage.args if isinstance(stage, ir.Call) else ()
        inputs = [cur] if cur is not None else []
        for a in pos:
            a = env.get(a.dotted, a) if isinstance(a, ir.Ref) and len(a.parts) == 1 else a
            inputs.append(self.value(a))
        if len(inputs) < 2:
            raise _err("E301", f"{entry.name} needs at least two inputs", stage.span,
                       f"write `h -> {entry.name}(x)` or `{entry.name}(a, b)`")
        call = ir.Call(name=ir.Ref(parts=(entry.name,), span=stage.span), args=(),
                       kwargs=stage.kwargs if isinstance(stage, ir.Call) else (), span=stage.span)
        args = bind(entry, C.LAYERS, call)
        layer = ir.Layer(name=self.fresh(prefix, entry.name), op=entry.name, args=tuple(args.items()),
                         inputs=tuple(inputs), span=stage.span, called=self.call_site or ir.NOWHERE)
        self.layers.append(layer)
        return layer.name

    def init(self, expr) -> tuple:
        if isinstance(expr, str):
            return (expr, ())
        entry = lookup(C.INITS, expr, "an initialiser")
        return (entry.name, tuple(bind(entry, C.INITS, expr).items()))

    def bind_block(self, block: ir.BlockDef, call: ir.Expr) -> dict[str, ir.Expr]:
        args = call.args if isinstance(call, ir.Call) else ()
        kwargs = call.kwargs if isinstance(call, ir.Call) else ()
        names = [p.name for p in block.params]
        if len(args) > len(names):
            raise _err("E302", f"too many arguments to block '{block.name}': it takes {len(names)}", args[len(names)]
                       .span, f"block {block.name}({', '.join(names)})")
        env = dict(zip(names, args))
        for kw in kwargs:
            if kw.name not in names:
                raise _err("E202", f"unknown argument '{kw.name}' for block '{block.name}'", kw.span,
                           did_you_mean(kw.name, names) or f"it takes: {', '.join(names) or 'nothing'}")
            if kw.name in env:
                raise _err("E208", f"argument '{kw.name}' given twice", kw.span)
            env[kw.name] = kw.value
        for p in block.params:
            if p.name not in env:
                if p.default is None:
                    raise _err("E301", f"block '{block.name}' needs argument '{p.name}'", call.span,
                               f"block {block.name}({', '.join(names)})")
                env[p.name] = p.default
        return env


def _substitute(expr: ir.Expr, env: dict[str, ir.Expr]) -> ir.Expr:
    """Replace block parameters inside a call's arguments with the values they were bound to."""
    if not env:
        return expr
    match expr:
        case ir.Ref(parts=(name,)) if name in env:
            return env[name]
        case ir.Call():
            return ir.Call(name=expr.name, args=tuple(_substitute(a, env) for a in expr.args),
                           kwargs=tuple(ir.KwArg(name=k.name, value=_substitute(k.value, env), span=k.span)
                                        for k in expr.kwargs), span=expr.span)
        case ir.BinOp():
            return _fold(ir.BinOp(op=expr.op, left=_substitute(expr.left, env), right=_substitute(expr.right, env),
                                  span=expr.span))
        case ir.ListExpr():
            return ir.ListExpr(items=tuple(_substitute(i, env) for i in expr.items), span=expr.span)
    return expr


def _is_all(entry: ir.Entry | None) -> bool:
    """`batch = all`: full-batch gradient descent (the batch is the training split, known with the data)."""
    return entry is not None and isinstance(entry.value, ir.Ref) and entry.value.dotted == "all"


def _fold(e: ir.BinOp) -> ir.Expr:
    """Arithmetic on numbers inside blocks: `dense(width * 2)`."""
    if isinstance(e.left, ir.Number) and isinstance(e.right, ir.Number) and e.op in "+-*/":
        a, b = e.left.value, e.right.value
        if e.op == "/" and b == 0:
            raise _err("E304", "division by zero", e.span)
        try:
            v = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}[e.op](a, b)
        except OverflowError:  # a huge integer meets a float, or divides into one: past any range
            v = math.inf
        v = _as_float_range(v)
        return ir.Number(value=int(v) if isinstance(v, float) and v.is_integer() and e.op != "/" else v, span=e.span)
    return e


def _as_float_range(v):
    """An integer past what a float holds reads as `1e999` does: inf. The checks compare numbers as
    floats, and each says where an infinite value is out of range."""
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > _MAX_FLOAT_INT:
        return math.inf if v > 0 else -math.inf
    return v


_MAX_FLOAT_INT = int(sys.float_info.max)


def _clamp_numbers(node):
    """The syntax tree with every integer literal past the float range (`99...9`, 400 digits) as inf.
    Unchanged nodes are returned as they are."""
    if isinstance(node, (int, float)):
        return _as_float_range(node)
    if isinstance(node, tuple):
        new = tuple(_clamp_numbers(n) for n in node)
        return node if all(a is b for a, b in zip(new, node)) else new
    if dataclasses.is_dataclass(node) and not isinstance(node, ir.Span):
        changes = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if isinstance(value, ir.Span):
                continue
            new = _clamp_numbers(value)
            if new is not value:
                changes[f.name] = new
        return dataclasses.replace(node, **changes) if changes else node
    return node


def resolve(file: ir.File, path: str) -> ir.Spec:
    """Bind names and build the IR; raises SpecError with every problem found."""
    spec, diags = resolve_partial(file, path)
    if diags:
        raise SpecError(diags)
    return spec


def resolve_partial(file: ir.File, path: str, broken: frozenset[str] = frozenset()) -> tuple[ir.Spec,
                                                                                             list[Diagnostic]]:
    """The IR as far as it could be built, and the problems found. Lint checks the rest of it too.

    `broken` names top-level items left out for a syntax error: they are not reported missing."""
    r = _Resolver(_clamp_numbers(file), path)
    r.malformed |= broken
    r.collect()
    model = r.model()
    values = {name for name in dict(model.values)}
    loss = r.loss(values)
    task = r.loss_task(loss)
    spec = ir.Spec(
        path=path,
        data=r.data(task),
        model=model,
        loss=loss or ir.Loss(terms=(), span=ir.NOWHERE),
        optimizer=r.guard(r.optimizer) or ir.Optimizer(kind="adam", args=(), span=ir.NOWHERE),
        schedule=r.guard(r.schedule) or ir.Schedule(phases=(), span=ir.NOWHERE),
        regularization=r.regularization(),
        stop=r.stop(),
        metrics=r.metrics(),
        checkpoint=r.checkpoint(),
        run=r.run(),
        span=file.span,
    )
    return spec, r.diags


__all__ = ["resolve", "convert", "bind", "lookup"]
