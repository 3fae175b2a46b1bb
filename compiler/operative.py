"""The operative spec: every setting a run used, defaults filled in, each marked with where it came from.

    operative(spec, file) -> {"spec": PATH, "sha256": HASH,
                              "settings": {"data.batch": {"value": "64", "from": "spec"},
                                           "optimizer": {"value": "adam(lr = 0.001, b1 = 0.9, ...)",
                                                         "defaults": ["b1", ...], "from": "spec"}, ...}}

`value` is spec text, as a spec would write the setting (`6 epochs`, `val.loss`); `defaults` names the
arguments of a call that the spec left out and trainc filled in. `from` is `spec` (written in the file),
`override` (`--set` on the command line) or `default`. The hash is over the checked IR, not over this
text, and without source positions or the spec's path (span-typed fields are left out by `to_data`), so
reformatting, commenting or moving a spec does not change it, while any change of meaning does. A resume
compares it with the hash its checkpoint was written under.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib

import yaml

from . import catalog as C
from . import ir
from .emit import data_fields, to_data

TOP_LEVEL = ("model", "loss", "optimizer", "schedule", "metrics")  # sections written as one value or block
# what trainc does for a setting left out of a section it was not written in at all
UNWRITTEN = {"checkpoint": ir.Checkpoint(every=ir.Duration(value=1, unit=ir.Unit.epochs, span=ir.NOWHERE), keep=None,
                                         last=1, span=ir.NOWHERE)}
REGISTRIES = (C.OPTIMIZERS, C.LOSSES, C.SCHEDULES, C.METRICS, C.SOURCES, C.STOP_RULES, C.DIVERGENCE)


def written(file: ir.File) -> dict[str, ir.Entry | ir.Section]:
    """`section.key` (or a top-level name) -> the statement that gives it, for every setting the file gives."""
    out = {}
    for item in file.items:
        if isinstance(item, ir.Section):
            out[item.name] = item
            out.update({f"{item.name}.{b.key}": b for b in item.body if isinstance(b, ir.Entry)})
        elif isinstance(item, ir.Entry):
            out[item.key] = item
            if isinstance(item.value, ir.Record):  # `stop = { max = 3 epochs }`
                out.update({f"{item.key}.{b.key}": b for b in item.value.entries if isinstance(b, ir.Entry)})
    return out


def origins(file: ir.File) -> dict[str, str]:
    """`section.key` (or a top-level name) -> spec | override, for every setting the file gives."""
    return {name: "override" if s.span.file.startswith("<--set") else "spec" for name, s in written(file).items()}


def spec_hash(spec: ir.Spec) -> str:
    """sha256 of the checked IR's meaning: no positions (by type), no path of the spec itself."""
    body = to_data(dataclasses.replace(spec, path=""), positions=False)
    return hashlib.sha256(yaml.safe_dump(body, sort_keys=True).encode()).hexdigest()


def operative(spec: ir.Spec, file: ir.File) -> dict:
    stmts = written(file)
    settings = {}
    for section, keys in C.SECTIONS.items():
        if section in TOP_LEVEL:
            value = spec.metrics if section == "metrics" else getattr(spec, section)
            settings[section] = _setting(value, stmts.get(section))
            continue
        node = getattr(spec, section, None)
        node = UNWRITTEN.get(section, node) if node is None else node
        for key in keys:
            name = f"{section}.{key}"
            if name not in stmts and not hasattr(node, key):
                continue  # a key folded into others (elastic_net -> l1, l2): shown where it landed
            value = getattr(node, key, None)
            if getattr(node, f"{key}_on", None):  # l2 = { value = 1e-4, on = [head] }
                value = (("value", value), ("on", getattr(node, f"{key}_on")))
            settings[name] = _setting(value, stmts.get(name))
    return {"spec": spec.path, "sha256": spec_hash(spec), "settings": settings}


def _setting(value, stmt) -> dict:
    out = {"value": spell(value)}
    left_out = _defaulted(value, _calls(stmt)) if stmt is not None else []
    if left_out:
        out["defaults"] = left_out
    out["from"] = "default" if stmt is None else "override" if stmt.span.file.startswith("<--set") else "spec"
    return out


def _calls(stmt) -> dict[str, set[str]]:
    """call name -> the argument names written in it (keywords, and positionals by the registry's order)."""
    out: dict[str, set[str]] = {}

    def walk(e):
        if isinstance(e, ir.Call):
            entry = next((r.get(e.name.dotted) for r in REGISTRIES if r.get(e.name.dotted)), None)
            names = {k.name for k in e.kwargs} | {p.name for p in (entry.params if entry else ())[:len(e.args)]}
            out.setdefault(e.name.dotted, set()).update(names)
        if dataclasses.is_dataclass(e):
            for f in data_fields(type(e)):
                walk(getattr(e, f))
        elif isinstance(e, tuple):
            for x in e:
                walk(x)

    walk(stmt)
    return out


def _defaulted(value, calls: dict[str, set[str]]) -> list[str]:
    """The arguments of the value's calls that the spec did not write: trainc's defaults."""
    nodes = value if isinstance(value, tuple) else getattr(value, "phases", None) or getattr(value, "terms", None) \
        or (value,)
    out = []
    for n in nodes:
        kind, args = getattr(n, "kind", None), getattr(n, "args", None)
        if kind in calls and isinstance(args, tuple):
            out += [k for k, _ in args if k not in calls[kind] and k not in out]
    return out


def spell(v):
    """A value as a spec writes it: `6 epochs`, `val.loss`, `adamw(lr = 0.003, weight_decay = 0.01)`; None
    (not set) stays None. The model, which a spec writes as a graph, is one line per layer."""
    if v is None:
        return None
    if isinstance(v, ir.Model):
        return [f"{x.name}: {x.type}" for x in v.inputs] + [_layer(x) for x in v.layers]
    return _text(v)


def _text(v) -> str:
    for kind, how in _SPELLING:
        if isinstance(v, kind):
            return how(v)
    if dataclasses.is_dataclass(v):  # any other node: a record of its fields
        return _record((f, getattr(v, f)) for f in data_fields(type(v)) if f != "span")
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], tuple):
        return f"{v[0]}({_args(v[1])})" if v[1] else v[0]  # a call as an argument: init = he, or normal(std = 0.1)
    if isinstance(v, tuple) and v and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in v):
        return _record(v)
    if isinstance(v, (tuple, list)):
        return f"[{', '.join(_text(x) for x in v)}]"
    return str(v)


def _number(x) -> str:
    text = f"{x:g}" if isinstance(x, float) else str(x)
    return text.replace("e-0", "e-").replace("e+0", "e").replace("e+", "e")


def _name(s: str) -> str:
    return s if s.replace(".", "").replace("_", "a").isalnum() and not s[:1].isdigit() else f'"{s}"'


def _args(args, written=()) -> str:
    return ", ".join([*written, *(f"{k} = {_text(v)}" for k, v in args if v is not None)])


def _record(pairs) -> str:
    return "{ " + ", ".join(f"{k} = {_text(v)}" for k, v in pairs if v is not None) + " }"


def _duration(d: ir.Duration) -> str:
    if d.unit is ir.Unit.fraction:
        return f"{_number(d.value * 100)}%"
    return f"{_number(d.value)} {d.unit.value}"


def _optimizer(o: ir.Optimizer) -> str:
    groups = ", ".join(f"{g.selector} = {_record(g.args)}" for g in o.groups)
    extra = [*([f"groups = {{ {groups} }}"] if o.groups else []),
             *([f"freeze = [{', '.join(o.freeze)}]"] if o.freeze else [])]
    return f"{o.kind}({', '.join([_args(o.args), *extra])})"


def _term(t: ir.LossTerm) -> str:
    call = f"{t.kind}({_args(t.args, (t.pred, t.target))})"
    return call if t.weight == 1 else f"{_number(t.weight)} * {call}"


def _phase(p: ir.Phase) -> str:
    return f"{p.kind}({_args(p.args, (_duration(p.length),) if p.length else ())})"


def _early(e: ir.EarlyStop) -> str:
    delta = f"{_number(e.min_delta * 100)}%" if e.relative else _number(e.min_delta)
    return (f"plateau({e.monitor}, patience = {e.patience}, min_delta = {delta}, mode = {e.mode}, "
            f"restore_best = {_text(e.restore_best)})")


def _layer(x: ir.Layer) -> str:
    return f"{x.name} = {x.op}({_args(x.args, x.inputs)}){f' : {x.out}' if x.out else ''}"


_SPELLING = (  # node type -> its spec text; the first that matches wins (bool before int)
    (bool, lambda b: "true" if b else "false"),
    ((int, float), _number),
    (str, _name),
    (enum.Enum, lambda e: e.value),
    (ir.TensorType, str),
    (ir.Duration, _duration),
    (ir.MetricRef, str),
    (ir.Threshold, lambda t: f"{t.monitor} {t.op} {_number(t.value)}"),
    (ir.Source, lambda s: f'{s.kind}({_args(s.args, (chr(34) + s.path + chr(34),))})'),
    (ir.Optimizer, _optimizer),
    (ir.Loss, lambda lo: " + ".join(_term(t) for t in lo.terms)),
    (ir.Schedule, lambda s: " then ".join(_phase(p) for p in s.phases)),
    (ir.Metric, lambda m: f"{m.kind}({_args(m.args)})" if m.args else m.kind),
    (ir.EarlyStop, _early),
    (ir.Augment, lambda a: f"{a.kind}({_args(a.args)})"),
)


def render(doc: dict) -> str:
    """The operative spec as YAML, one setting per entry, with its origin."""
    head = (f"# the operative spec of this run: every setting, defaults filled in, and where each came from\n"
            f"# (spec: written in {doc['spec']}; override: --set; default: trainc's default;\n"
            f"#  defaults: the arguments of a call that trainc filled in)\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=10_000, allow_unicode=True)


def diff(old: dict, new: dict) -> list[str]:
    """What changed between two operative specs, one line per setting, as a spec writes them."""
    a, b = old.get("settings", {}), new.get("settings", {})
    lines = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name, {}).get("value"), b.get(name, {}).get("value")
        if va != vb:
            lines.append(f"  {name}: {_short(va)} -> {_short(vb)}")
    return lines


def _short(v) -> str:
    if v is None:
        return "(not set)"
    text = v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True, width=10_000).strip() \
        .removesuffix("...").strip()
    return text if len(text) <= 100 else text[:97] + "..."
