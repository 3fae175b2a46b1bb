"""rules: the cross-field rules, one function each, in one table (`RULES`); `check` runs them all.

Each rule reads the resolved spec and returns its problems; none depends on another, so one
problem never hides another. `run_length` also runs with the data known (steps per epoch), from
the runtime's `check_against_data`. `silence` drops the warnings a user allowed.
"""

from __future__ import annotations

import dataclasses

import re

from . import catalog as C
from . import ir
from .diagnostics import Diagnostic

# A metric's possible values: a threshold outside them is never met. Losses and errors are >= 0.
BOUNDS = {"accuracy": (0.0, 1.0), "top_k": (0.0, 1.0), "precision": (0.0, 1.0), "recall": (0.0, 1.0),
          "f1": (0.0, 1.0), "auc": (0.0, 1.0), "map_at_k": (0.0, 1.0), "r2": (None, 1.0), "rmse": (0.0, None),
          "mae": (0.0, None)}  # the loss: from its terms (below)
LOGITS_LOSSES = tuple(n for n in C.LOSSES.names() if C.LOSSES.get(n).extra.get("logits"))  # the `logits` flag


def _mode(name: str) -> str:
    entry = C.METRICS.get(name)
    return entry.extra["mode"] if entry else "min"


def _known(ref: ir.MetricRef) -> bool:
    """A monitor whose direction is known: the loss or a registered metric (an unknown one is E207's)."""
    return ref.name == "loss" or C.METRICS.get(ref.name) is not None


def _warn(code: str, message: str, span: ir.Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, severity="warning", message=message, span=span, help=help)


def _error(code: str, message: str, span: ir.Span, help: str | None = None) -> Diagnostic:
    return Diagnostic(code=code, message=message, span=span, help=help)


def _steps(d: ir.Duration, per_epoch: int | None) -> float | None:
    """A duration in steps; None when it cannot be said (epochs without the data, a fraction)."""
    if d.unit == ir.Unit.steps:
        return d.value
    if d.unit == ir.Unit.epochs and per_epoch:
        return d.value * per_epoch
    return None


def _past(d: ir.Duration | None, start: float, mx: ir.Duration, per_epoch: int | None,
          strict: bool = False) -> str | None:
    """How `start + d` compares with the run's length: a phrase when it is at or past the end, else None.
    Without the data only the same unit is compared; with it (per_epoch) steps and epochs are, in steps."""
    if d is None or mx.span == ir.NOWHERE or d.unit == ir.Unit.fraction:
        return None
    if per_epoch is None:
        if d.unit != mx.unit or start + d.value < mx.value + strict:
            return None
        return f"{start + d.value:g} {d.unit.value}, and the run lasts {mx.value:g} {mx.unit.value}"
    if d.unit == mx.unit:  # already found without the data
        return None
    at, end = _steps(d, per_epoch), _steps(mx, per_epoch)
    if at is None or end is None or start * (per_epoch if d.unit == ir.Unit.epochs else 1) + at < end + strict:
        return None
    return f"step {start * (per_epoch if d.unit == ir.Unit.epochs else 1) + at:g}, and the run lasts {end:g} " \
           f"steps ({per_epoch} per epoch)"


def run_length(spec: ir.Spec, per_epoch: int | None = None) -> list[Diagnostic]:
    """W302: a milestone, step interval, warm-up, patience or checkpoint interval at or past the run's end."""
    mx, out, start = spec.stop.max, [], {u: 0.0 for u in ir.Unit}
    phases = spec.schedule.phases
    for i, ph in enumerate(phases):
        args, offset = dict(ph.args), start.copy()
        if ph.length is not None:
            start[ph.length.unit] += ph.length.value
        if ph.kind == "warmup" and i == len(phases) - 1 and (why := _past(ph.length, 0.0, mx, per_epoch)):
            out.append(_warn("W302", f"the warm-up ends at {why}: the lr never reaches its value",
                             ph.length.span, "shorten the warm-up, e.g. to a tenth of the run"))
        if ph.kind == "step" and (why := _past(args.get("every"), offset[args["every"].unit], mx, per_epoch)):
            out.append(_warn("W302", f"step lowers the lr first at {why}: the lr never changes", args["every"].span,
                             "step every fewer epochs, or lengthen stop.max"))
        period = args.get("period") if ph.kind in ("cosine_restarts", "cyclic") else None
        if ph.kind == "cyclic" and period is not None:  # the peak, half a period in: past the end, the lr only rises
            period = ir.Duration(value=period.value / 2, unit=period.unit, span=period.span)
        if period is not None and (why := _past(period, offset[period.unit], mx, per_epoch)):
            what, so = ("the first restart would be", "it is one plain cosine") if ph.kind == "cosine_restarts" \
                else ("the lr would peak", "it only rises")
            out.append(_warn("W302", f"{what} at {why}: {so}", args["period"].span,
                             "a period of a fraction of the run, e.g. period = 25%"))
        for m in args.get("milestones") or () if ph.kind == "multistep" else ():
            if why := _past(m, offset[m.unit], mx, per_epoch):
                out.append(_warn("W302", f"milestone at {why}: it is never reached", m.span,
                                 "use milestones within the run"))
    out += _phases_in_steps(spec, per_epoch)
    patience = [(spec.stop.early.patience, spec.stop.early.span, "early stopping")] if spec.stop.early else []
    patience += [(dict(ph.args).get("patience", 10), ph.span, "plateau") for ph in phases[-1:] if ph.kind == "plateau"]
    for n, span, what in patience:
        if why := _past(ir.Duration(value=n, unit=ir.Unit.epochs, span=span), 0.0, mx, per_epoch, strict=True):
            out.append(_warn("W302", f"{what} (patience = {n}) needs {why}, so it never acts", span,
                             "lower its patience, or lengthen stop.max"))
    least = spec.stop.min
    if least is not None and (spec.stop.early or spec.stop.when) and (why := _past(least, 0.0, mx, per_epoch)):
        out.append(_warn("W302", f"stop.min reaches {why}: early stopping and `when` never end the run", least.span,
                         "a stop.min shorter than stop.max"))
    every = spec.checkpoint.every if spec.checkpoint else None
    if why := _past(every, 0.0, mx, per_epoch, strict=True):
        out.append(_warn("W302", f"the first checkpoint would be at {why}: none is written during the run",
                         every.span, "checkpoint more often than the run's length"))
    return out


def _phases_in_steps(spec: ir.Spec, per_epoch: int | None) -> list[Diagnostic]:
    """W302 with the data: phases in steps before a run in epochs (or the reverse) that fill the whole run, so
    the phases after them never start (in one unit, check.py's E308 finds it without the data). A warning, not
    E308: a run shortened for a smoke test (`--set stop.max=1 epochs`) still starts."""
    mx, used, out = spec.stop.max, 0.0, []
    end = _steps(mx, per_epoch) if per_epoch and mx.span != ir.NOWHERE else None
    for ph in spec.schedule.phases[:-1] if end else ():
        n = ph.length
        if n is None or n.unit == ir.Unit.fraction:
            continue
        used += _steps(n, per_epoch)
        if n.unit != mx.unit and used >= end:
            out.append(_warn("W302", f"the phases up to {ph.kind} last {used:g} steps, and the run lasts {end:g} "
                              f"({per_epoch} per epoch), so the phases after it never start", n.span,
                              "shorten it, or lengthen stop.max"))
            break
    return out


def thresholds(spec: ir.Spec) -> list[Diagnostic]:
    """E311: `when` asks for a value the metric never takes; W304: it or a mode runs against the metric."""
    out = []
    when = spec.stop.when
    if when is not None and _known(when.monitor):
        low, high = BOUNDS.get(when.monitor.name, (None, None))
        if when.monitor.name == "loss" and spec.loss.terms and all(
                C.LOSSES.get(t.kind).extra.get("low", 0.0) >= 0 for t in spec.loss.terms):
            low = 0.0  # every loss term (and penalty) is at least 0 unless its entry registers a lower `low`
        v, op = when.value, when.op
        never = (op in (">=", ">") and high is not None and (v > high or (op == ">" and v == high))) or \
                (op in ("<=", "<") and low is not None and (v < low or (op == "<" and v == low)))
        if never:
            out.append(_error("E311", f"{when.monitor.name} lies in [{'-inf' if low is None else f'{low:g}'}, "
                              f"{'inf' if high is None else f'{high:g}'}]: `{when.monitor} {op} {v:g}` is never met",
                              when.span, f"a threshold within that range, e.g. {when.monitor} {op} "
                              f"{0.95 if high == 1.0 else 0.1 if op[0] == '<' else 0.9:g}"))
        elif op in ("<=", "<", ">=", ">") and (op[0] == "<") != (_mode(when.monitor.name) == "min"):
            better = "lower" if _mode(when.monitor.name) == "min" else "higher"
            side, other = ("below", "above") if op[0] == "<" else ("above", "below")
            out.append(_warn("W304", f"{when.monitor} is better when {better}, but `when` stops once it is {side} "
                             f"{v:g}: that holds before training, not after", when.span,
                             f"stop when it is {other}: {when.monitor} {'<=' if op[0] == '>' else '>='} {v:g}"))
    modes = [(spec.stop.early.monitor, spec.stop.early.mode, spec.stop.early.span)] if spec.stop.early else []
    modes += [(dict(ph.args)["monitor"], dict(ph.args).get("mode", "auto"), ph.span)
              for ph in spec.schedule.phases if ph.kind == "plateau"]
    for ref, mode, span in modes:
        if mode != "auto" and _known(ref) and mode != _mode(ref.name):
            out.append(_warn("W304", f"mode = {mode}, but {ref} is better when "
                             f"{'lower' if _mode(ref.name) == 'min' else 'higher'}", span,
                             f"use mode = {_mode(ref.name)}, or leave mode out (auto)"))
    return out


def logits_tail(spec: ir.Spec) -> list[Diagnostic]:
    """W401: a logits loss given a value that ends in an activation or dropout (softmax, relu, ...)."""
    out = []
    for term in spec.loss.terms:
        node = dict(spec.model.values).get(term.pred)
        layer = next((la for la in spec.model.layers if la.name == node), None)
        entry = C.LAYERS.get(layer.op) if layer is not None else None
        if term.kind not in LOGITS_LOSSES or entry is None or not entry.extra.get("elementwise"):
            continue
        why = "the loss applies it itself, stably" if layer.op in ("softmax", "sigmoid") else \
            "dropout after the last layer drops logits, not features" if layer.op == "dropout" else \
            f"logits take any sign, and {layer.op} bends or clips them"
        at = layer.span if layer.span != ir.NOWHERE else term.span  # the layer to remove, the loss beside it
        out.append(dataclasses.replace(
            _warn("W401", f"{term.kind} takes logits, but '{term.pred}' ends in {layer.op}", at,
                  f"remove the final {layer.op}: {why}"),
            related=((f"{term.kind} reads '{term.pred}' as logits", term.span),) if at != term.span else (),
            fix=_removal(spec.model, layer)))
    return out


def _removal(model: ir.Model, layer: ir.Layer) -> tuple[ir.Span, str] | None:
    """The edit that removes the last stage of a pipeline (` -> relu`): from the end of the stage before it, on
    the same line; None where that is not one plain line of the model (a block's layer, a stage of its own)."""
    before = next((la for la in model.layers if la.name == layer.inputs[0]), None)
    s = layer.span
    if before is None or layer.called != ir.NOWHERE or before.span.end_line != s.line or s.line != s.end_line or \
            before.span.end_col >= s.col or before.span.file != s.file:
        return None
    return ir.Span(s.file, s.line, before.span.end_col, s.line, s.end_col), ""


def _selects(selector: str, layer_name: str) -> bool:
    """As lowering's `selects`: a value (`h`) or a block the layer is in (`mlp`)."""
    parts = layer_name.split(".")
    return parts[0] == selector or any(re.sub(r"\d+$", "", p) == selector for p in parts[1:-1])


def settings(spec: ir.Spec) -> list[Diagnostic]:
    """Settings that contradict one another (E312-E316, W305)."""
    out, opt, data = [], spec.optimizer, spec.data
    src = data.source or data.train
    if data.sampler != "none" and src is not None and src.kind == "text" and \
            dict(src.args).get("targets") == "every":
        out.append(_error("E316", f"sampler = {data.sampler} draws examples by their class, but "
                          "text(targets = every) gives a class at every position", data.span_of("sampler"),
                          "remove the sampler (sampler = none)"))
    if data.batch == 1 and any(la.op == "batchnorm" for la in spec.model.layers):
        out.append(_error("E312", "batchnorm with batch = 1: each example is normalised by its own mean, which "
                          "zeroes it", data.span_of("batch"), "use batch >= 16, or layernorm"))
    args = dict(opt.args)
    if args.get("nesterov") is True and not args.get("momentum"):
        out.append(_error("E313", f"{opt.kind}: nesterov = true needs momentum, which is 0", opt.span,
                          "add momentum = 0.9"))
    if data.task == ir.Task.regression and "split.stratify" in dict(data.where) and data.split and \
            data.split.stratify:
        out.append(_error("E314", "stratify keeps each class's share in every split, but the task is regression: "
                          "there are no classes", data.span_of("split.stratify"), "leave stratify out"))
    has_val = data.val is not None or (data.split is not None and data.split.val > 0)
    refs = [spec.stop.early.monitor] if spec.stop.early else []
    refs += [spec.stop.when.monitor] if spec.stop.when else []
    for ref in refs if has_val else ():
        if ref.split == "train" and (ref.name == "loss" or any(m.kind == ref.name for m in spec.metrics)):
            out.append(_warn("W305", f"stopping on {ref}, a training metric, while a val split exists: it keeps "
                             "improving as the model overfits", ref.span, f"monitor val.{ref.name}"))
    trained = [la for la in spec.model.layers if C.LAYERS.get(la.op) and C.LAYERS.get(la.op).extra.get("params")]
    if opt.freeze and trained and all(any(_selects(s, la.name) for s in opt.freeze) for la in trained):
        out.append(_error("E315", f"freeze = [{', '.join(opt.freeze)}] freezes every layer: {opt.kind} has nothing "
                          "to train", opt.span, "freeze only the layers to keep, e.g. the first block"))
    return out


RULES = (  # each: spec -> problems
    run_length,  # W302 settings that never take effect within the run
    thresholds,  # E311 a threshold never met; W304 a direction against the metric's
    logits_tail,  # W401 an activation or dropout before a logits loss
    settings,  # E312 batchnorm at batch 1, E313 nesterov, E314 stratify, E315 all frozen, W305 train monitor
)


def apply_rules(spec: ir.Spec) -> list[Diagnostic]:
    return [d for rule in RULES for d in rule(spec)]


ALLOW = re.compile(r"#[ \t]*trainc:[ \t]*allow[ \t]+([A-Z0-9, \t]*)")


def allowed_lines(text: str) -> dict[int, set[str]]:
    """Line -> the codes a `# trainc: allow W302, W401` comment on it names. One pass over the text."""
    out: dict[int, set[str]] = {}
    line, pos = 1, 0
    for m in ALLOW.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        out.setdefault(line, set()).update(c for c in re.split(r"[,\s]+", m[1]) if c)
    return out


def silence(diags: list[Diagnostic], text: str, allow: tuple[str, ...] = ()) -> list[Diagnostic]:
    """The diagnostics without the warnings allowed on their line or for the run (errors stay)."""
    lines = allowed_lines(text) if "trainc:" in text else {}
    return [d for d in diags if d.is_error or (d.code not in allow and d.code not in lines.get(d.span.line, ()))]
