"""emit: any syntax-tree or IR node as YAML (`trainc compile SPEC --emit ir`)."""

from __future__ import annotations

import dataclasses
import enum

import yaml

from . import ir


def to_data(node):
    """Plain data for YAML: node -> {node: ClassName, fields..., at: "line:col"}."""
    if isinstance(node, ir.TensorType):
        return str(node)  # f32[64]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out = {"node": type(node).__name__}
        for f in dataclasses.fields(node):
            if f.name.endswith("span"):
                continue
            out[f.name] = to_data(getattr(node, f.name))
        span = getattr(node, "span", None)
        if isinstance(span, ir.Span) and span.line > 0:
            # positions in the spec itself as line:col; those from elsewhere (--set) name their origin
            out["at"] = f"{span.line}:{span.col}" if not span.file.startswith("<") else str(span)
        return out
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, tuple) and node and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                                for p in node):
        return {k: to_data(v) for k, v in node}  # Args: (name, value) pairs
    if isinstance(node, (tuple, list)):
        return [to_data(x) for x in node]
    return node


def to_yaml(node) -> str:
    return yaml.safe_dump(to_data(node), sort_keys=False, default_flow_style=None, width=100)
