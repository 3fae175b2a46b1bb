"""emit: any syntax-tree or IR node as YAML (`trainc compile SPEC --emit ir`)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing

import yaml

from . import ir


@functools.cache
def data_fields(cls) -> tuple[str, ...]:
    """The fields of a node class that are not positions: any field whose declared type holds an `ir.Span`
    (`span`, `key_span`, `where: tuple[tuple[str, Span], ...]`) is left out, by its type, not its name."""
    hints = typing.get_type_hints(cls, vars(ir))
    return tuple(f.name for f in dataclasses.fields(cls) if not _holds_span(hints.get(f.name)))


def _holds_span(tp) -> bool:
    return tp is ir.Span or any(_holds_span(a) for a in typing.get_args(tp))


def to_data(node, positions: bool = True):
    """Plain data for YAML: node -> {node: ClassName, fields..., at: "line:col"}. Span-typed fields never
    appear; `positions=False` also leaves out `at`, so the data depends on meaning alone (the spec hash)."""
    if isinstance(node, ir.TensorType):
        return str(node)  # f32[64]
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        out = {"node": type(node).__name__}
        for name in data_fields(type(node)):
            out[name] = to_data(getattr(node, name), positions)
        span = getattr(node, "span", None)
        if positions and isinstance(span, ir.Span) and span.line > 0:
            # positions in the spec itself as line:col; those from elsewhere (--set) name their origin
            out["at"] = f"{span.line}:{span.col}" if not span.file.startswith("<") else str(span)
        return out
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, tuple) and node and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                                                for p in node):
        return {k: to_data(v, positions) for k, v in node}  # Args: (name, value) pairs
    if isinstance(node, (tuple, list)):
        return [to_data(x, positions) for x in node]
    return node


def to_yaml(node) -> str:
    return yaml.safe_dump(to_data(node), sort_keys=False, default_flow_style=None, width=100)
