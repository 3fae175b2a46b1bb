"""summary: what a checked model is made of, without data and without training.

For every node: its output shape, its parameters (counted by formula from the shapes of the arrays
the lowering creates; tests/test_hostile_input.py checks each formula against the lowering), the
floating-point operations per example of its forward pass (a multiply-add counts 2), and an estimate
of training memory per batch. Nothing is allocated, so a model too large to build is still described,
and `check` refuses one whose estimate passes MAX_TRAINING_BYTES (E404) before anything is created.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import ir
from .diagnostics import Diagnostic


@dataclass(frozen=True)
class Row:
    name: str
    op: str
    out: str
    params: int
    flops: int  # forward, per example


def _recurrent(g: int):
    def count(x: tuple[int, ...], a: dict) -> int:  # W_ih [g*h, d], W_hh [g*h, h], b_ih and b_hh [g*h], per direction
        h = a["units"]
        return (2 if a.get("bidirectional") else 1) * (g * h * x[-1] + g * h * h + 2 * g * h)

    return count


def _conv(dims: int):
    def count(x: tuple[int, ...], a: dict) -> int:  # W [filters, C / groups, k, ...], b [filters]
        f = a["filters"]
        return f * (x[0] // a.get("groups", 1)) * a["kernel"] ** dims + (f if a.get("bias", True) else 0)

    return count


def _attention(d: int) -> int:
    return 3 * d * d + 3 * d + d * d + d  # in_proj [3D, D] and [3D], out_proj [D, D] and [D]


def _transformer(d: int, ff: int) -> int:
    return 4 * d + _attention(d) + (ff * d + ff) + (d * ff + d)  # two norms, attention, linear1, linear2


PARAMS = {  # op -> (input shape, arguments) -> parameters, as the arrays lower/layers*.py's MAKE creates
    "dense": lambda x, a: x[-1] * a["units"] + (a["units"] if a.get("bias", True) else 0),
    "batchnorm": lambda x, a: 2 * x[0],  # gamma, beta (the running statistics are buffers)
    "layernorm": lambda x, a: 2 * x[-1],
    "groupnorm": lambda x, a: 2 * x[0],
    "conv1d": _conv(1),
    "conv2d": _conv(2),
    "embedding": lambda x, a: a["vocab"] * a["dim"],
    "position_embedding": lambda x, a: math.prod(x),
    "rnn": _recurrent(1), "gru": _recurrent(3), "lstm": _recurrent(4),
    "attention": lambda x, a: _attention(x[1]),
    "transformer": lambda x, a: _transformer(x[1], a.get("ff") or 4 * x[1]),
}


def parameters(layer: ir.Layer, types: dict[str, ir.TensorType | None]) -> int:
    """Parameters of one layer; shared weights are counted once, at their owner. 0 after a shape error (E401):
    the input does not fit the formula."""
    count = PARAMS.get(layer.op)
    x = types.get(layer.inputs[0]) if layer.inputs else None
    if count is None or x is None or layer.out is None or "share" in ir.argdict(layer.args):
        return 0
    return int(count(x.shape, ir.argdict(layer.args)))


def _flops(layer: ir.Layer, types: dict[str, ir.TensorType]) -> int:
    """Forward FLOPs per example; layers without a formula count one operation per output value."""
    x = types[layer.inputs[0]]
    out = layer.out
    a = ir.argdict(layer.args)
    n_out = math.prod(out.shape) if out else 0
    op = layer.op
    if op == "dense":
        return 2 * math.prod(x.shape) * a["units"] + (n_out if a.get("bias", True) else 0)  # a bias per output
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
        out.append(Row(layer.name, layer.op, str(layer.out), parameters(layer, types), _flops(layer, types)))
        types[layer.name] = layer.out
    return out


OPT_STATE = {"sgd": 1, "adam": 2, "adamw": 2, "rmsprop": 3, "adagrad": 1, "lamb": 2}  # tensors per parameter
# A training step's estimate (`memory`) past this is refused (E404): 1 TB is more than any one machine trainc
# trains on holds, in host or device memory. A fixed bound, not this machine's memory, so that lint answers
# the same on a laptop and in CI; a model under it that does not fit here still fails when `run` allocates it.
MAX_TRAINING_BYTES = 10**12


def memory(spec: ir.Spec, table: list[Row]) -> dict[str, int]:
    """Bytes for one training step: weights, gradients, optimizer state and activations (f32)."""
    n_params = sum(r.params for r in table)
    batch = spec.data.batch or 1  # `batch = all` before the data is known: per example
    acts = sum(math.prod(la.out.shape) for la in spec.model.layers if la.out) * batch
    state = OPT_STATE.get(spec.optimizer.kind, 2)
    return {"weights": 4 * n_params, "gradients": 4 * n_params, "optimizer": 4 * state * n_params,
            "activations": 2 * 4 * acts}  # kept for backward, and their gradients


def over_memory(spec: ir.Spec, available: int | None = None) -> Diagnostic | None:
    """E404 at the layer that needs the most, when a training step's memory estimate passes MAX_TRAINING_BYTES;
    with `available` (this machine's memory, for `trainc run`), E603 when it passes that."""
    limit = MAX_TRAINING_BYTES if available is None else min(available, MAX_TRAINING_BYTES)
    types: dict[str, ir.TensorType | None] = {i.name: i.type for i in spec.model.inputs}
    per_param = 4 * (2 + OPT_STATE.get(spec.optimizer.kind, 2))  # f32 weights, gradients, optimizer state
    total, worst = 0, (0, None, 0, 0)
    for layer in spec.model.layers:
        params = parameters(layer, types)
        acts = math.prod(layer.out.shape) * (spec.data.batch or 1) if layer.out else 0  # all: per example
        need = per_param * params + 2 * 4 * acts  # activations kept for backward, and their gradients
        total += need
        worst = max(worst, (need, layer, params, acts), key=lambda w: w[0])
        types[layer.name] = layer.out
    if total <= limit:
        return None
    need, layer, params, acts = worst

    def about(n: int) -> str:
        return f"about {_human(n, 'B')}" if n < 1e300 else _human(n, "B")

    machine = total <= MAX_TRAINING_BYTES
    bound = f"this machine's {_human(limit, 'B')}" if machine else \
        f"the {_human(MAX_TRAINING_BYTES, 'B')} trainc allows"
    return Diagnostic(code="E603" if machine else "E404", message=f"the model needs {about(total)} of memory to "
                      f"train, more than {bound}: this {layer.op} needs {about(need)} "
                      f"({params:,} parameters, {acts:,} values of output per batch)",
                      span=layer.span, help=f"make it smaller: fewer units or filters, a smaller vocabulary or "
                      f"input, or a smaller batch (now {spec.data.batch})")


def _human(n: float, unit: str = "") -> str:
    if not abs(n) < 1e300:  # a product of huge dimensions: past what a float holds
        return f"more than 1e300 {unit}"
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
    batch = spec.data.batch or 1
    lines.append(f"training step, batch {spec.data.batch or 'all (per example until the data is known)'}: about "
                 f"{_human(3 * total_f * batch, 'FLOP')} "
                 "(forward and backward)")
    lines.append("memory estimate per step (f32): " + ", ".join(f"{k} {_human(v, 'B')}" for k, v in mem.items())
                 + f"; total {_human(sum(mem.values()), 'B')}")
    return "\n".join(lines)
