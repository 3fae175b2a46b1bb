"""lower: checked IR + data -> Program, a set of tinygrad tensors and two jitted functions.

The only part of the compiler that imports tinygrad (this package: layers, losses, metrics and
optimizers each have a module with their implementations, keyed by the catalogue's names).

One `TinyJit` holds the whole training step (batch gather on device, forward, loss, L2,
backward, gradient clipping, optimizer update, on-device loss accumulation); another holds
evaluation. The learning rate is an input of the
step, so a schedule never recompiles anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from tinygrad import Context, Device, Tensor, TinyJit, dtypes

from .. import ir
from ..diagnostics import Diagnostic, SpecError
from .layers import INIT_IMPL, LAYER_IMPL, MAKE, LayerState
from .losses import LOSS_IMPL
from .metrics import METRIC_FINISH, METRIC_SUM
from .optim import OPT_IMPL

# ---------------------------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------------------------

DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "metal": "METAL"}


def select_device(run: ir.Run) -> str:
    """The tinygrad device for `run.device`; a diagnostic when it cannot be opened."""
    name = Device.DEFAULT if run.device == "auto" else DEVICE_NAMES[run.device]
    try:
        Device[name]
    except Exception as e:  # tinygrad raises many kinds here: missing driver, library, compiler
        raise SpecError([Diagnostic(code="E601", message=f"cannot open device {name}: {str(e).splitlines()[0]}",
                                    span=run.span, help="use `run { device = cpu }`; the CPU device needs `clang` "
                                    "on PATH")]) from None
    if run.device != "auto" and Device.DEFAULT != name:
        from tinygrad.helpers import DEV

        DEV.value = name
    return name


@dataclass
class Program:
    """What the runtime drives. Tensors live on `device`; the two jitted functions own the graph."""

    spec: ir.Spec
    device: str
    layers: dict[str, LayerState]
    opt_state: dict[str, dict[str, Tensor]]
    metric_kinds: tuple[str, ...]
    train_batch: int
    eval_batch: int
    n_train: int
    n_val: int
    train_step: Callable  # (idx int32[B], lr f32[1]) -> total loss (scalar, with L2)
    eval_step: Callable  # (idx int32[E], mask f32[E]) -> None; accumulates into eval_acc
    train_acc: Tensor  # [2]: sum of data loss over steps, number of steps
    eval_acc: Tensor  # [2 + metrics]: loss sum, count, metric sums
    step_count: Tensor  # [1]: optimizer steps taken (Adam's t)

    def named_params(self) -> dict[str, Tensor]:
        return {f"{ln}.{k}": t for ln, st in self.layers.items() for k, t in st.params.items()}

    def named_buffers(self) -> dict[str, Tensor]:
        return {f"{ln}.{k}": t for ln, st in self.layers.items() for k, t in st.buffers.items()}

    def state(self) -> dict[str, Tensor]:
        """Everything that defines the model (for checkpoints and restore-best)."""
        return {**self.named_params(), **self.named_buffers()}


def _to_tensor(a: np.ndarray, dtype=dtypes.float32) -> Tensor:
    """A realized device copy of a host array: float32, or int32 for class labels."""
    host = np.ascontiguousarray(a, dtype=np.float32 if dtype == dtypes.float32 else np.int32)
    return Tensor(host, dtype=dtype).realize()


def lower(spec: ir.Spec, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          target_shift: np.ndarray | None = None, target_scale: np.ndarray | None = None) -> Program:
    """Build the program for a checked spec over arrays already loaded and normalised.

    Regression targets may be standardised (`target_shift`, `target_scale`): the loss sees them
    as they are, the metrics see predictions and targets back in the data's units."""
    device = select_device(spec.run)
    Tensor.manual_seed(spec.run.seed)
    rng = np.random.default_rng(spec.run.seed)
    model = spec.model
    task = spec.data.task
    y_dtype = dtypes.int32 if task == ir.Task.classification else dtypes.float32

    # Parameters, in layer order so that initialisation is seed-stable.
    types = {i.name: i.type for i in model.inputs}
    layers: dict[str, LayerState] = {}
    for layer in model.layers:
        make = MAKE.get(layer.op)
        st = make(layer, types[layer.inputs[0]], rng) if make else LayerState()
        st.params = {k: _to_tensor(v) for k, v in st.params.items()}
        st.buffers = {k: _to_tensor(v) for k, v in st.buffers.items()}
        for t in st.params.values():
            t.requires_grad = True
        layers[layer.name] = st
        types[layer.name] = layer.out
    named_params = [(f"{ln}.{k}", t) for ln, st in layers.items() for k, t in st.params.items()]
    params = [t for _, t in named_params]
    weights = [st.params["W"] for st in layers.values() if "W" in st.params]  # L2 applies to weights only

    opt = spec.optimizer
    oargs = ir.argdict(opt.args)
    make_state, update = OPT_IMPL[opt.kind]
    opt_state = {name: make_state(t, oargs) for name, t in named_params}
    for s in opt_state.values():
        for t in s.values():
            t.realize()
    step_count = Tensor.zeros(1).contiguous().realize()

    X_tr, Y_tr = _to_tensor(x_train), _to_tensor(y_train, y_dtype)
    X_va, Y_va = _to_tensor(x_val), _to_tensor(y_val, y_dtype)
    input_name = model.inputs[0].name
    values = dict(model.values)
    terms = spec.loss.terms
    metric_kinds = tuple(m.kind for m in spec.metrics)
    metric_pred = values[terms[0].pred]  # metrics read the first loss term's prediction

    def forward(x: Tensor, training: bool) -> dict[str, Tensor]:
        out = {input_name: x}
        for layer in model.layers:
            out[layer.name] = LAYER_IMPL[layer.op](out[layer.inputs[0]], layers[layer.name],
                                                   ir.argdict(layer.args), training)
        return out

    def data_loss(out: dict[str, Tensor], y: Tensor) -> Tensor:
        """Per-example weighted sum of the loss terms: [B]."""
        total = None
        for term in terms:
            pred = out[values[term.pred]]
            target = y if task == ir.Task.classification else y.reshape(pred.shape)
            v = LOSS_IMPL[term.kind](pred, target, **ir.argdict(term.args)) * term.weight
            total = v if total is None else total + v
        return total

    train_acc = Tensor.zeros(2).contiguous().realize()
    l2 = spec.regularization.l2
    clip = spec.regularization.clip_grad_norm

    def step(idx: Tensor, lr: Tensor) -> Tensor:
        with Context(TRAINING=1):
            with Context(SPLIT_REDUCEOP=0):  # the gather as one small kernel (see PERF.md)
                x = X_tr[idx].contiguous().realize()
                y = Y_tr[idx].contiguous().realize()
            out = forward(x, True)
            dloss = data_loss(out, y).mean()
            loss = dloss
            if l2:
                loss = loss + (l2 / 2) * sum((w * w).sum() for w in weights)
            grads = loss.gradient(*params)
            if clip:
                norm = sum((g * g).sum() for g in grads).sqrt()
                coef = (clip / (norm + 1e-6)).minimum(1.0)
                grads = [g * coef for g in grads]
            t = step_count.assign(step_count + 1)
            pending = [t, train_acc.assign(train_acc + Tensor.stack(dloss.detach(), Tensor(1.0)))]
            lr_ = lr.reshape(())
            for (name, p), g in zip(named_params, grads):
                pending += update(p, g, opt_state[name], lr_, t.reshape(()), oargs)
            for st in layers.values():
                pending += st.pending
                st.pending = []
            Tensor.realize(loss, *pending)
            return loss

    eval_acc = Tensor.zeros(2 + len(metric_kinds)).contiguous().realize()
    t_scale = _to_tensor(target_scale) if target_scale is not None else None
    t_shift = _to_tensor(target_shift) if target_shift is not None else None

    def evaluate(idx: Tensor, mask: Tensor) -> None:
        x = X_va[idx]
        y = Y_va[idx]
        out = forward(x, False)
        per = [data_loss(out, y), Tensor.ones(mask.shape)]
        pred = out[metric_pred]
        target = y if task == ir.Task.classification else y.reshape(pred.shape)
        if t_scale is not None:
            pred, target = pred * t_scale + t_shift, target * t_scale + t_shift
        for kind in metric_kinds:
            per.append(METRIC_SUM[kind](pred, target))
        sums = (Tensor.stack(*per, dim=1) * mask.reshape(-1, 1)).sum(0)
        eval_acc.assign(eval_acc + sums).realize()

    n_train, n_val = len(x_train), len(x_val)
    batch = spec.data.batch
    return Program(spec=spec, device=device, layers=layers, opt_state=opt_state, metric_kinds=metric_kinds,
                   train_batch=batch, eval_batch=min(n_val, 512), n_train=n_train, n_val=n_val,
                   train_step=TinyJit(step), eval_step=TinyJit(evaluate), train_acc=train_acc, eval_acc=eval_acc,
                   step_count=step_count)


def finish_eval(program: Program, sums: np.ndarray) -> dict[str, float]:
    """Host side of evaluation: sums -> {loss, metric...}."""
    n = float(sums[1])
    out = {"loss": float(sums[0]) / n}
    for kind, s in zip(program.metric_kinds, sums[2:]):
        out[kind] = METRIC_FINISH[kind](float(s), n)
    return out


__all__ = ["lower", "Program", "finish_eval", "select_device", "INIT_IMPL", "LAYER_IMPL", "LOSS_IMPL", "METRIC_SUM",
           "METRIC_FINISH", "OPT_IMPL", "LayerState"]
