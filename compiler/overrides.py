"""--set overrides: `stop.max="3 epochs"` replaces (or adds) one setting of the syntax tree before it is resolved.

One function for every command that takes them (`trainc run`, `compile`, `sweep`) and for those that re-read
a run directory's recorded overrides (`eval`, `predict`, `report`), so an override cannot apply in one place
and not another. Each value is parsed with the span `<--set KEY>`, so diagnostics point at the override.
"""

from __future__ import annotations

from dataclasses import replace

from . import ir
from .diagnostics import Diagnostic, SpecError
from .parse import parse_expr


class OverrideError(ValueError):
    """A --set that is not KEY=VALUE with KEY a setting name; the message says what was expected."""


def override(file: ir.File, sets: list[str], sources: dict[str, str]) -> tuple[ir.File, list[Diagnostic]]:
    """`apply_overrides` for the pipeline (compiler.compile_spec): a value that does not parse is returned as its
    diagnostics (at `<--set KEY>`, its text added to `sources`) with the file as it was. A --set that is not
    KEY=VALUE still raises OverrideError: a usage error, not a problem of the spec."""
    try:
        return apply_overrides(file, sets, sources), []
    except SpecError as e:
        return file, list(e.diagnostics)


def apply_overrides(file: ir.File, sets: list[str], sources: dict[str, str]) -> ir.File:
    """`--set stop.max="3 epochs"`: replace (or add) one setting before the spec is resolved."""
    items = list(file.items)
    for s in sets:
        if "=" not in s:
            raise OverrideError(f"--set takes KEY=VALUE, like --set stop.max=\"3 epochs\"; got {s!r}")
        key, value = s.split("=", 1)
        key = key.strip()
        origin = f"<--set {key}>"
        sources[origin] = value
        expr = parse_expr(value, origin)
        span = expr.span
        section, _, sub = key.partition(".")
        if not section.isidentifier() or (sub and not sub.isidentifier()):
            raise OverrideError(f"--set: {key!r} is not a setting name like stop.max or optimizer")
        entry = ir.Entry(key=sub or section, value=expr, key_span=span, span=span)
        for i, item in enumerate(items):
            name = item.name if isinstance(item, ir.Section) else getattr(item, "key", None)
            if name != section:
                continue
            if isinstance(item, ir.Entry) and isinstance(item.value, ir.Record):  # `stop = { ... }`
                item = ir.Section(name=name, body=item.value.entries, name_span=item.key_span, span=item.span)
            if sub and isinstance(item, ir.Entry) and isinstance(item.value, ir.Call):  # optimizer.lr=1e-3
                call = item.value
                kw = ir.KwArg(name=sub, value=expr, span=span)
                kwargs = tuple(k for k in call.kwargs if k.name != sub) + (kw,)
                items[i] = replace(item, value=replace(call, kwargs=kwargs))
                break
            if not sub:
                items[i] = replace(entry, key=section)
                break
            if not isinstance(item, ir.Section):
                raise OverrideError(f"--set: '{section}' is not a section, write --set {section}=VALUE")
            body = [b for b in item.body if not (isinstance(b, ir.Entry) and b.key == sub)]
            items[i] = replace(item, body=tuple(body) + (entry,))
            break
        else:
            if sub:
                items.append(ir.Section(name=section, body=(entry,), name_span=span, span=span))
            else:
                items.append(entry)
    return replace(file, items=tuple(items))
