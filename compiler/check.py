"""check: shapes and cross-field rules. Fills `Layer.out` and returns every problem found.

Everything here is static: no data is read and no tensor is built. What can only be known from
the data (the number of features and classes) is checked by the runtime against the same spans.
"""

from __future__ import annotations

import math
from dataclasses import replace

from . import catalog as C
from . import ir
from .diagnostics import Diagnostic, did_you_mean, one_of
from .rules import apply_rules
from .summary import over_memory


def infer_shapes(model: ir.Model) -> tuple[ir.Model, list[Diagnostic]]:
    """Give every layer its output type, in topological order."""
    types: dict[str, ir.TensorType | None] = {i.name: i.type for i in model.inputs}
    layers, diags = [], []
    for layer in model.layers:
        entry = C.LAYERS.get(layer.op)
        xs = [types.get(i) for i in layer.inputs]
        out = None
        if all(x is not None for x in xs):
            try:
                x = xs if entry.extra.get("multi") else xs[0]
                out = entry.extra["shape"](x, ir.argdict(layer.args))
            except C.ShapeError as e:
                d = Diagnostic(code="E401", message=str(e), help=e.help, **_in_block(layer))
                declared = [(f"'{i.name}' is declared {i.type} here", i.span) for i in model.inputs
                            if i.name in layer.inputs]  # the input's declaration may be what to change
                diags.append(replace(d, related=d.related + tuple(declared)))
        owner = ir.argdict(layer.args).get("share")
        if owner is not None and out is not None:
            first = next(la for la in layers if la.name == owner)
            if types.get(first.inputs[0]) != xs[0] or ir.argdict(first.args) | {"share": owner} != \
                    ir.argdict(layer.args) | {"init": ir.argdict(first.args).get("init")}:
                diags.append(Diagnostic(code="E401", message=f"{layer.op} shares the weights of {owner}, but its "
                                        f"input {xs[0]} or settings differ from {types.get(first.inputs[0])}",
                                        span=layer.span, help="shared layers need the same input shape and settings"))
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


def metric_names(spec: ir.Spec, split: str = "val") -> list[str]:
    """What is measured on a split: the loss and the configured metrics; on train, only those that
    accumulate during the steps (not the ones that need every example at once, like auc)."""
    extra = {m.kind: C.METRICS.get(m.kind).extra for m in spec.metrics}
    kinds = [k for k, e in extra.items() if e.get("scalar", True)]  # a confusion matrix is not a monitor
    if split == "train":
        kinds = [k for k in kinds if not extra[k].get("host")]
    return ["loss"] + kinds


def _in_block(layer: ir.Layer) -> dict:
    """Where a layer's problem is reported: its own place, or, inside a block, the block's call in the model
    (which call of several, with which arguments) with the layer in the block's definition beside it."""
    if layer.called == ir.NOWHERE or layer.called == layer.span:
        return {"span": layer.span}
    return {"span": layer.called, "related": ((f"{layer.op} in the block's definition", layer.span),)}


def width_layer(model: ir.Model, value: str) -> ir.Layer | None:
    """The layer that sets a value's width: its own, or the one before its activations and dropout."""
    layers = {la.name: la for la in model.layers}
    layer = layers.get(dict(model.values).get(value))
    while layer is not None and C.LAYERS.get(layer.op).extra.get("elementwise") and layer.inputs[0] in layers:
        layer = layers[layer.inputs[0]]
    return layer


def at_width(model: ir.Model, term: ir.LossTerm, reads: str) -> dict:
    """Where a width mismatch between a layer and its loss is reported: at the layer that sets the width (what
    to change), the loss as a related place; at the loss alone when the layer has no place of its own."""
    layer = width_layer(model, term.pred)
    if layer is None or layer.span == ir.NOWHERE:
        return {"span": term.span}
    return {"span": layer.span, "related": ((f"{term.kind} reads '{term.pred}' as {reads}", term.span),)}


def check(spec: ir.Spec) -> tuple[ir.Spec, list[Diagnostic]]:
    """Shapes, then the rules that tie sections together (CHECKS, in order). Returns the annotated spec and
    problems."""
    model, diags = infer_shapes(spec.model)
    spec = replace(spec, model=model)
    for rule in CHECKS:
        diags += rule(spec)
    if spec.stop.early and spec.stop.early.mode == "auto":  # min or max, as the monitor's metric says
        spec = replace(spec, stop=replace(spec.stop, early=replace(spec.stop.early, mode=mode_of(
            spec.stop.early.monitor))))
    return spec, diags


def every_position(spec: ir.Spec) -> int | None:
    """The window of a `text(..., targets = every)` source (a target at every position), else None."""
    src = spec.data.source or spec.data.train
    args = dict(src.args) if src is not None and src.kind == "text" else {}
    return args.get("window", 32) if args.get("targets") == "every" else None


def _loss_terms(spec: ir.Spec) -> list[Diagnostic]:
    """Each loss term against the task and the width of what it reads (E307, E402)."""
    model, task, diags = spec.model, spec.data.task, []
    every = every_position(spec)
    for term in spec.loss.terms:
        loss = C.LOSSES.get(term.kind)
        if loss.extra["task"] != task:
            diags.append(Diagnostic(code="E307", message=f"loss '{term.kind}' is for {loss.extra['task'].value}, "
                                    f"but data.task is {task.value}", span=term.span))
        t = value_type(model, term.pred)
        if t is None:
            continue
        if term.target != "target":
            src = next(i.type for i in model.inputs if i.name == term.target)
            if math.prod(src.shape) != math.prod(t.shape):
                diags.append(Diagnostic(code="E402", message=f"{term.kind} compares '{term.pred}' {t} with the input "
                                        f"'{term.target}' {src}: their sizes differ", span=term.span,
                                        help=f"end the decoder with dense({math.prod(src.shape)})"))
            continue
        if every is not None and (len(t.shape) != 2 or t.shape[0] != every):
            diags.append(Diagnostic(code="E402", message=f"text(targets = every) gives a target at each of the "
                                    f"{every} positions, so {term.kind} reads [{every}, classes], but '{term.pred}' "
                                    f"is {t}", span=term.span, help="end the model per position, without take_last: "
                                    "`h -> dense(<classes>)`"))
        elif every is None and len(t.shape) != 1:
            diags.append(Diagnostic(code="E402", message=f"{term.kind} expects one axis per example, "
                                    f"'{term.pred}' is {t}", span=term.span, help="flatten it first, or, on a text, "
                                    "give a target at every position: text(..., targets = every)"))
        elif loss.extra.get("binary") and t.shape[-1] != 1:
            diags.append(Diagnostic(code="E402", message=f"bce expects one logit per example, '{term.pred}' is {t}",
                                    help="end the model with dense(1), or use cross_entropy",
                                    **at_width(model, term, "one logit")))
        if loss.extra.get("distribution") and spec.data.target_normalize != "none":
            diags.append(Diagnostic(code="E307", message=f"{term.kind} compares probability distributions, but "
                                    "data.target_normalize would standardise them", span=term.span,
                                    help="set `target_normalize = none` in data"))
        if loss.extra.get("softmax") and len(t.shape) in (1, 2) and t.shape[-1] < 2:  # a softmax over one output
            diags.append(Diagnostic(code="E402", message=f"{term.kind} needs one logit per class, '{term.pred}' "
                                    f"is {t}", help="end the model with dense(<classes>), or use bce",
                                    **at_width(model, term, "one logit per class")))
        weights = dict(term.args).get("weights")
        if isinstance(weights, tuple) and len(t.shape) == 1 and len(weights) != t.shape[0]:
            diags.append(Diagnostic(code="E402", message=f"weights has {len(weights)} entries but '{term.pred}' has "
                                    f"{t.shape[0]} classes", span=term.span,
                                    help=f"give one weight per class ({t.shape[0]}), or `weights = balanced`"))
    return diags


def _one_input(spec: ir.Spec) -> list[Diagnostic]:
    """A model reads one input (E309)."""
    return [Diagnostic(code="E309", message=f"a second input '{extra.name}': a model reads one input (the data's "
                       "feature columns)", span=extra.span, help="declare one input; several inputs are not "
                       "supported yet") for extra in spec.model.inputs[1:]]


def _metrics_fit(spec: ir.Spec) -> list[Diagnostic]:
    """The metrics read class scores of the loss's first term: not an embedding (E307), of a width they fit
    (E402, E304)."""
    model, diags = spec.model, []
    embedding = next((t for t in spec.loss.terms if C.LOSSES.get(t.kind).extra.get("embedding")), None)
    if embedding is not None and spec.loss.terms[0] is embedding:
        for m in spec.metrics:
            diags.append(Diagnostic(code="E307", message=f"metric '{m.kind}' reads class scores, but the loss's "
                                    f"first term ({embedding.kind}) trains an embedding", span=m.span,
                                    help="measure the loss only (val.loss), or put a classification term first"))
    width = (value_type(model, spec.loss.terms[0].pred) if spec.loss.terms else None)
    for m in spec.metrics:
        if C.METRICS.get(m.kind).extra.get("binary") and width is not None and width.shape[-1] > 2:
            diags.append(Diagnostic(code="E402", message=f"{m.kind} is for binary classification: one logit or "
                                    f"two, but '{spec.loss.terms[0].pred}' is {width}", span=m.span,
                                    help="end the model with dense(1) and use bce"))
        k = dict(m.args).get("k")
        if isinstance(k, int) and width is not None and len(width.shape) == 1 and k > width.shape[0]:
            diags.append(Diagnostic(code="E304", message=f"{m.kind}: k = {k} is more than the {width.shape[0]} classes",
                                    span=m.span, help=f"use k <= {width.shape[0]}"))
    return diags


def _token_ids(spec: ir.Spec) -> list[Diagnostic]:
    """Token ids (an i32 input) are not rescaled (E307)."""
    model = spec.model
    if model.inputs and model.inputs[0].type.dtype == ir.DType.i32 and spec.data.normalize != "none":
        return [Diagnostic(code="E307", message=f"input {model.inputs[0].name} holds token ids (i32), but "
                           f"data.normalize = {spec.data.normalize} would rescale them",
                           span=spec.data.span_of("normalize") if "normalize" in dict(spec.data.where)
                           else model.inputs[0].span, help="set `normalize = none` in data")]
    return []


def _metric_tasks(spec: ir.Spec) -> list[Diagnostic]:
    """Each metric is for the task (E307); when the loss failed to resolve, the task is a guess: stay quiet."""
    task, diags = spec.data.task, []
    for m in spec.metrics if spec.loss.terms else ():
        want = C.METRICS.get(m.kind).extra["task"]
        if want != task:
            diags.append(Diagnostic(code="E307", message=f"metric '{m.kind}' is for {want.value}, but the task is "
                                    f"{task.value}", span=m.span,
                                    help=one_of(n for n, e in C.METRICS.entries.items() if e.extra["task"] == task)))
    return diags


def _monitors(spec: ir.Spec) -> list[Diagnostic]:
    """What early stopping, `stop.when`, the checkpoint's `keep` and plateau watch is measured (E207)."""
    monitors, diags = [], []
    if spec.stop.early:
        monitors.append(spec.stop.early.monitor)
    if spec.stop.when:
        monitors.append(spec.stop.when.monitor)
    if spec.checkpoint and spec.checkpoint.keep:
        monitors.append(spec.checkpoint.keep)
    monitors += [dict(ph.args)["monitor"] for ph in spec.schedule.phases if ph.kind == "plateau"]
    for ref in monitors:
        names = metric_names(spec, ref.split)
        if ref.name not in names:
            hint = did_you_mean(f"{ref}", [f"{ref.split}.{n}" for n in names])
            if hint is None and ref.split == "train" and ref.name in metric_names(spec, "val"):
                hint = f"metrics are measured on val; use val.{ref.name}"
            diags.append(Diagnostic(code="E207", message=f"'{ref}' is not measured", span=ref.span,
                                    help=hint or f"measured on {ref.split}: {', '.join(names)}"
                                    + ("; add it to `metrics = [...]`" if ref.split == "val" else "")))
    return diags


def _phase_lengths(spec: ir.Spec) -> list[Diagnostic]:
    """A phase followed by another must leave it some of the run (E308)."""
    mx, diags = spec.stop.max, []
    used = {ir.Unit.fraction: 0.0, ir.Unit.steps: 0.0, ir.Unit.epochs: 0.0}  # run consumed by earlier phases
    for phase in spec.schedule.phases[:-1]:
        n = phase.length
        if n is None:
            continue
        used[n.unit] += n.value
        whole = used[ir.Unit.fraction] >= 1.0 or (n.unit == mx.unit and used[n.unit] >= mx.value and
                                                  mx.span != ir.NOWHERE)
        if whole:
            lasts = f"{used[n.unit] * 100:g}% of the run" if n.unit == ir.Unit.fraction else \
                f"{used[n.unit]:g} {n.unit.value}"
            upto = "the phases up to it last" if used[n.unit] != n.value else f"{phase.kind} lasts"
            diags.append(Diagnostic(code="E308", message=f"{upto} {lasts}, as long as the whole run "
                                    f"({mx.value:g} {mx.unit.value}), so the phases after it never start",
                                    span=n.span,
                                    help="shorten it, or lengthen stop.max"))
    return diags


def _decay_twice(spec: ir.Spec) -> list[Diagnostic]:
    """adamw's weight_decay and regularization.weight_decay: the same decoupled decay twice (W211)."""
    decay = dict(spec.optimizer.args).get("weight_decay") if spec.optimizer.kind == "adamw" else None
    if decay and spec.regularization.weight_decay:  # surely meant once
        return [Diagnostic(code="W211", severity="warning", message=f"weight decay is set twice: adamw's "
                           f"weight_decay ({decay:g}) and regularization.weight_decay "
                           f"({spec.regularization.weight_decay:g}) both decay every parameter after each step",
                           span=spec.regularization.span_of("weight_decay"),
                           help="keep one: adamw(weight_decay = ...) (0.01 when not given), or adamw(weight_decay "
                           "= 0) with regularization.weight_decay")]
    return []


def _memory(spec: ir.Spec) -> list[Diagnostic]:
    """Before `run` creates anything: a model that cannot fit is refused here."""
    too_big = over_memory(spec)
    return [too_big] if too_big else []


AUGMENT_INPUTS = {  # an augmentation's `input` kind -> (does it fit the input type, what it needs)
    "image": (lambda t: t.dtype == ir.DType.f32 and len(t.shape) == 3, "an image input f32[C, H, W]"),
    "series": (lambda t: t.dtype == ir.DType.f32 and len(t.shape) == 2, "a series input f32[T, F]"),
    "tokens": (lambda t: t.dtype == ir.DType.i32, "token ids, an i32 input"),
    "numbers": (lambda t: t.dtype == ir.DType.f32, "an f32 input"),
}
AUGMENT_HELP = {
    "image": "image augmentations act on the data, so the data must hold images: the images source, or an npz "
             "array of shape [n, C, H, W] with `input x: f32[C, H, W]`",
    "series": "series augmentations need windows of a series: the series source with `input x: f32[window, F]`",
    "tokens": "token augmentations need token ids: the text source with `input x: i32[window]`",
    "numbers": "token ids are not numbers to perturb: use token_dropout or token_swap",
}


def _data_checks(spec: ir.Spec) -> list[Diagnostic]:
    """Each augmentation fits the model's input (E403); the images source's `size` is [H, W] (E303)."""
    diags = []
    inp = spec.model.inputs[0] if spec.model.inputs else None
    for aug in spec.data.augment if inp is not None else ():
        kind = C.AUGMENTATIONS.get(aug.kind).extra["input"]
        fits, needs = AUGMENT_INPUTS[kind]
        if not fits(inp.type):
            diags.append(Diagnostic(code="E403", message=f"{aug.kind} needs {needs}, but input {inp.name} is "
                                    f"{inp.type}", span=aug.span, help=AUGMENT_HELP[kind]))
        token = dict(aug.args).get("token") if aug.kind == "token_dropout" else None
        for layer in spec.model.layers if token is not None else ():
            vocab = dict(layer.args).get("vocab")
            if layer.op == "embedding" and layer.inputs == (inp.name,) and isinstance(vocab, int) and token >= vocab:
                diags.append(Diagnostic(code="E304", message=f"token_dropout: token {token} is outside the "
                                        f"vocabulary of the embedding (ids 0..{vocab - 1})", span=aug.span,
                                        help=f"use a token id below {vocab}"))
    for source in (spec.data.source, spec.data.train, spec.data.val, spec.data.test):
        size = dict(source.args).get("size") if source is not None and source.kind == "images" else None
        if size is not None and (len(size) != 2 or not all(float(d).is_integer() for d in size)):
            diags.append(Diagnostic(code="E303", message=f"images: size must be two whole numbers [H, W], found "
                                    f"[{', '.join(f'{d:g}' for d in size)}]", span=source.span,
                                    help="e.g. size = [28, 28]"))
    return diags


def _schedule_checks(spec: ir.Spec) -> list[Diagnostic]:
    """`plateau` lowers the lr at run time: it must be the last phase, and early stopping must give it time."""
    diags = []
    phases = spec.schedule.phases
    for ph in phases[:-1]:
        if ph.kind == "plateau":
            diags.append(Diagnostic(code="E310", message="plateau must be the last phase: it lowers the lr when the "
                                    "monitor stalls, and a phase after it would override that", span=ph.span,
                                    help="put warm-up or other fixed phases before it, not after"))
    plateau = next((ph for ph in phases if ph.kind == "plateau"), None)
    early = spec.stop.early
    if plateau is not None and early is not None:
        patience = dict(plateau.args).get("patience", 0)
        if early.patience <= patience + 1:  # plateau lowers the lr after more than `patience` bad epochs
            diags.append(Diagnostic(code="W301", severity="warning", message=f"early stopping (patience "
                                    f"{early.patience}) ends the run before plateau (patience {patience}) can lower "
                                    "the lr", span=early.span,
                                    help=f"give early stopping more patience than plateau, e.g. {2 * patience + 2}"))
    return diags


def _last_op(model: ir.Model, value: str) -> str | None:
    node = dict(model.values).get(value)
    return next((layer.op for layer in model.layers if layer.name == node), None)


def mode_of(ref: ir.MetricRef) -> str:
    """min for losses and errors, max for scores."""
    entry = C.METRICS.get(ref.name)
    return entry.extra["mode"] if entry else "min"


CHECKS = (  # each: spec (its shapes inferred) -> problems; run in this order, so the problems come in it
    _loss_terms, _one_input, _metrics_fit, _token_ids, _metric_tasks, _monitors,
    apply_rules,  # the cross-field rules, a table (rules.py)
    _phase_lengths, _decay_twice, _schedule_checks, _data_checks, _memory,
)
