"""check: shapes and cross-field rules. Fills `Layer.out` and returns every problem found.

Everything here is static: no data is read and no tensor is built. What can only be known from
the data (the number of features and classes) is checked by the runtime against the same spans.
"""

from __future__ import annotations

from dataclasses import replace

from . import catalog as C
from . import ir
from .diagnostics import Diagnostic, did_you_mean, one_of


def infer_shapes(model: ir.Model) -> tuple[ir.Model, list[Diagnostic]]:
    """Give every layer its output type, in topological order."""
    types: dict[str, ir.TensorType | None] = {i.name: i.type for i in model.inputs}
    layers, diags = [], []
    for layer in model.layers:
        x = types.get(layer.inputs[0])
        out = None
        if x is not None:
            try:
                out = C.LAYERS.get(layer.op).extra["shape"](x, ir.argdict(layer.args))
            except C.ShapeError as e:
                diags.append(Diagnostic(code="E401", message=str(e), span=layer.span, help=e.help))
        types[layer.name] = out
        layers.append(replace(layer, out=out))
    return replace(model, layers=tuple(layers)), diags


def value_type(model: ir.Model, value: str) -> ir.TensorType | None:
    node = dict(model.values).get(value)
    for i in model.inputs:
        if i.name == node:
            return i.type
    for layer in model.layers:
        if layer.name == node:
            return layer.out
    return None


def metric_names(spec: ir.Spec) -> list[str]:
    return ["loss"] + [m.kind for m in spec.metrics]


def check(spec: ir.Spec) -> tuple[ir.Spec, list[Diagnostic]]:
    """Shapes, then the rules that tie sections together. Returns the annotated spec and problems."""
    model, diags = infer_shapes(spec.model)
    spec = replace(spec, model=model)
    task = spec.data.task

    for term in spec.loss.terms:
        loss = C.LOSSES.get(term.kind)
        if loss.extra["task"] != task:
            diags.append(Diagnostic(code="E307", message=f"loss '{term.kind}' is for {loss.extra['task'].value}, "
                                    f"but data.task is {task.value}", span=term.span))
        t = value_type(model, term.pred)
        if t is None:
            continue
        if len(t.shape) != 1:
            diags.append(Diagnostic(code="E402", message=f"{term.kind} expects one axis per example, "
                                    f"'{term.pred}' is {t}", span=term.span, help="flatten it first"))
        elif loss.extra.get("binary") and t.shape[0] != 1:
            diags.append(Diagnostic(code="E402", message=f"bce expects one logit per example, '{term.pred}' is {t}",
                                    span=term.span, help="end the model with dense(1), or use cross_entropy"))
        elif term.kind == "cross_entropy" and t.shape[0] < 2:
            diags.append(Diagnostic(code="E402", message=f"cross_entropy needs one logit per class, '{term.pred}' "
                                    f"is {t}", span=term.span, help="end the model with dense(<classes>), or use bce"))

    for m in spec.metrics:
        want = C.METRICS.get(m.kind).extra["task"]
        if want != task:
            diags.append(Diagnostic(code="E307", message=f"metric '{m.kind}' is for {want.value}, but the task is "
                                    f"{task.value}", span=m.span,
                                    help=one_of(n for n, e in C.METRICS.entries.items() if e.extra["task"] == task)))

    names = metric_names(spec)
    monitors = []
    if spec.stop.early:
        monitors.append(spec.stop.early.monitor)
    if spec.stop.when:
        monitors.append(spec.stop.when.monitor)
    if spec.checkpoint and spec.checkpoint.keep:
        monitors.append(spec.checkpoint.keep)
    for ref in monitors:
        if ref.name not in names:
            diags.append(Diagnostic(code="E207", message=f"'{ref}' is not measured", span=ref.span,
                                    help=did_you_mean(ref.name, names) or
                                    f"measured on {ref.split}: {', '.join(names)}; add it to `metrics = [...]`"))

    if spec.stop.early and spec.stop.early.mode == "auto":
        spec = replace(spec, stop=replace(spec.stop, early=replace(spec.stop.early, mode=mode_of(
            spec.stop.early.monitor))))

    mx = spec.stop.max
    for phase in spec.schedule.phases:
        if phase.length and phase.length.unit == mx.unit and phase.length.value >= mx.value and \
                phase is not spec.schedule.phases[-1]:
            diags.append(Diagnostic(code="E308", message=f"{phase.kind} lasts {phase.length.value:g} "
                                    f"{phase.length.unit.value}, as long as the whole run ({mx.value:g} "
                                    f"{mx.unit.value})", span=phase.length.span,
                                    help="shorten it, or lengthen stop.max"))
    return spec, diags


def mode_of(ref: ir.MetricRef) -> str:
    """min for losses and errors, max for scores."""
    entry = C.METRICS.get(ref.name)
    return entry.extra["mode"] if entry else "min"
