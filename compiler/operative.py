"""The operative spec: every setting a run used, defaults filled in, each marked with where it came from.

    operative(spec, file) -> {"spec": PATH, "sha256": HASH,
                              "settings": {"data.batch": {"value": 64, "from": "spec"}, ...}}

`from` is `spec` (written in the file), `override` (`--set` on the command line) or `default`.
The hash is over the checked IR without source positions, so reformatting a spec or moving its
lines does not change it, while any change of meaning does. A resume compares it with the hash
its checkpoint was written under.
"""

from __future__ import annotations

import hashlib

import yaml

from . import catalog as C
from . import ir
from .emit import to_data

TOP_LEVEL = ("model", "loss", "optimizer", "schedule", "metrics")  # sections written as one value or block


def _plain(data):
    """to_data without positions."""
    if isinstance(data, dict):
        return {k: _plain(v) for k, v in data.items() if k != "at"}
    if isinstance(data, list):
        return [_plain(v) for v in data]
    return data


def origins(file: ir.File) -> dict[str, str]:
    """`section.key` (or a top-level name) -> spec | override, for every setting the file gives."""
    out = {}

    def mark(name: str, span: ir.Span):
        out[name] = "override" if span.file.startswith("<--set") else "spec"

    for item in file.items:
        if isinstance(item, ir.Section):
            mark(item.name, item.span)
            for b in item.body:
                if isinstance(b, ir.Entry):
                    mark(f"{item.name}.{b.key}", b.span)
        elif isinstance(item, ir.Entry):
            mark(item.key, item.span)
            if isinstance(item.value, ir.Record):  # `stop = { max = 3 epochs }`
                for b in item.value.entries:
                    if isinstance(b, ir.Entry):
                        mark(f"{item.key}.{b.key}", b.span)
    return out


def spec_hash(spec: ir.Spec) -> str:
    body = _plain(to_data(spec))
    body.pop("path", None)
    return hashlib.sha256(yaml.safe_dump(body, sort_keys=True).encode()).hexdigest()


def operative(spec: ir.Spec, file: ir.File) -> dict:
    where = origins(file)
    settings = {}
    for section, keys in C.SECTIONS.items():
        if section in TOP_LEVEL:
            value = spec.metrics if section == "metrics" else getattr(spec, section)
            origin = where.get(section, "default")
            if section == "model":  # the model is written, never defaulted; its resolved layers are what ran
                value = spec.model
            settings[section] = {"value": _plain(to_data(value)), "from": origin}
            continue
        node = getattr(spec, section, None)
        for key in keys:
            name = f"{section}.{key}"
            value = getattr(node, key, None) if node is not None else None
            if value is None and name not in where and not hasattr(node, key):
                continue  # a key folded into others (elastic_net -> l1, l2): shown where it landed
            settings[name] = {"value": _plain(to_data(value)), "from": where.get(name, "default")}
    return {"spec": spec.path, "sha256": spec_hash(spec), "settings": settings}


def render(doc: dict) -> str:
    """The operative spec as YAML, one setting per entry, with its origin."""
    head = (f"# the operative spec of this run: every setting, defaults filled in, and where each came from\n"
            f"# (spec: written in {doc['spec']}; override: --set; default: trainc's default)\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def diff(old: dict, new: dict) -> list[str]:
    """What changed between two operative specs, one line per setting."""
    a, b = old.get("settings", {}), new.get("settings", {})
    lines = []
    for name in sorted(set(a) | set(b)):
        va, vb = a.get(name, {}).get("value"), b.get(name, {}).get("value")
        if va != vb:
            lines.append(f"  {name}: {_short(va)} -> {_short(vb)}")
    return lines


def _short(v) -> str:
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()
    return text if len(text) <= 100 else text[:97] + "..."
