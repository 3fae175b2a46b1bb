"""summary: what a checked model is made of, without data and without training.

For every node: its output shape, its parameters (counted from the arrays the lowering would
create, so the count is the implementation's), the floating-point operations per example of its
forward pass (a multiply-add counts 2), and an estimate of training memory per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import ir


@dataclass(frozen=True)
class Row:
    name: str
    op: str
    out: str
    params: int
    flops: int  # forward, per example


def _count(layer: ir.Layer, types: dict[str, ir.TensorType]) -> int:
    from .lower.layers import MAKE  # numpy only, but the package imports tinygrad: summary is not lint

    make = MAKE.get(layer.op)
    if make is None or "share" in ir.argdict(layer.args):  # shared weights are counted once, at their owner
        return 0
    st = make(layer, types[layer.inputs[0]], np.random.default_rng(0))
    return int(sum(np.size(v) for v in st.params.values()))


def _flops(layer: ir.Layer, types: dict[str, ir.TensorType]) -> int:
    """Forward FLOPs per example; layers without a formula count one operation per output value."""
    x = types[layer.inputs[0]]
    out = layer.out
    a = ir.argdict(layer.args)
    n_out = math.prod(out.shape) if out else 0
    op = layer.op
    if op == "dense":
        return 2 * math.prod(x.shape) * a["units"] + (a["units"] if a.get("bias", True) else 0)
    if op in ("conv1d", "conv2d"):
        k = a["kernel"] ** (1 if op == "conv1d" else 2)
        return 2 * (x.shape[0] // a.get("groups", 1)) * k * n_out
    if op in ("rnn", "gru", "lstm"):
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[op]
        t, d = x.shape
        h = a["units"]
        return (2 if a.get("bidirectional") else 1) * t * gates * 2 * (d + h) * h
    if op == "attention":
        t, d = x.shape
        return 2 * 4 * t * d * d + 2 * 2 * t * t * d
    if op == "transformer":
        t, d = x.shape
        ff = a.get("ff") or 4 * d
        return 2 * 4 * t * d * d + 2 * 2 * t * t * d + 2 * 2 * t * d * ff
    return n_out


def rows(spec: ir.Spec) -> list[Row]:
    types = {i.name: i.type for i in spec.model.inputs}
    out = [Row(i.name, "input", str(i.type), 0, 0) for i in spec.model.inputs]
    for layer in spec.model.layers:
        out.append(Row(layer.name, layer.op, str(layer.out), _count(layer, types), _flops(layer, types)))
        types[layer.name] = layer.out
    return out


OPT_STATE = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 3, "adagrad": 1, "lamb": 2}  # tensors per parameter


def memory(spec: ir.Spec, table: list[Row]) -> dict[str, int]:
    """Bytes for one training step: weights, gradients, optimizer state and activations (f32)."""
    n_params = sum(r.params for r in table)
    batch = spec.data.batch
    acts = sum(math.prod(la.out.shape) for la in spec.model.layers if la.out) * batch
    state = OPT_STATE.get(spec.optimizer.kind, 2)
    return {"weights": 4 * n_params, "gradients": 4 * n_params, "optimizer": 4 * state * n_params,
            "activations": 2 * 4 * acts}  # kept for backward, and their gradients


def _human(n: float, unit: str = "") -> str:
    for prefix in ("", "K", "M", "G", "T"):
        if abs(n) < 1000:
            return f"{n:.3g}{prefix}{unit}" if prefix else f"{n:g}{unit}"
        n /= 1000
    return f"{n:.3g}P{unit}"


def render(spec: ir.Spec) -> str:
    table = rows(spec)
    width = max(len(r.name) for r in table)
    lines = [f"{'node':<{width}}  {'layer':<14} {'output':<16} {'params':>10} {'FLOPs/example':>14}"]
    for r in table:
        lines.append(f"{r.name:<{width}}  {r.op:<14} {r.out:<16} {r.params:>10,} {r.flops:>14,}")
    total_p, total_f = sum(r.params for r in table), sum(r.flops for r in table)
    mem = memory(spec, table)
    lines.append(f"{'total':<{width}}  {'':<14} {'':<16} {total_p:>10,} {total_f:>14,}")
    lines.append("")
    lines.append(f"training step, batch {spec.data.batch}: about {_human(3 * total_f * spec.data.batch, 'FLOP')} "
                 "(forward and backward)")
    lines.append("memory estimate per step (f32): " + ", ".join(f"{k} {_human(v, 'B')}" for k, v in mem.items())
                 + f"; total {_human(sum(mem.values()), 'B')}")
    return "\n".join(lines)
