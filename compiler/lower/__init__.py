"""lower: checked IR + data -> Program, a set of tinygrad tensors and two jitted functions.

The only part of the compiler that imports tinygrad (this package: layers, losses, metrics and
optimizers each have a module with their implementations, keyed by the catalogue's names).

One `TinyJit` holds the whole training step (batch gather on device, forward, loss,
backward, penalties, gradient clipping, optimizer update, on-device accumulation of the loss
and the train metrics); another holds evaluation. The learning rate is an input of the step,
so a schedule never recompiles anything.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tinygrad import Context, Device, Tensor, TinyJit, dtypes

from .. import ir
from ..catalog.base import LAYERS, LOSSES, METRICS, OPTIMIZERS
from ..diagnostics import Diagnostic, SpecError
from .adapt import GATHER_KERNEL, cpu_threads, program_cache, step_jit
from .layers import INIT_IMPL, LAYER_IMPL, MAKE, LayerState  # noqa: F401 - importing registers the layers
from .losses import LOSS_IMPL  # noqa: F401 - importing registers the losses
from .metrics import METRIC_IMPL, MetricCtx, Slot, finish, layout
from .optim import OK, OPT_IMPL

# ---------------------------------------------------------------------------------------------
# The program
# ---------------------------------------------------------------------------------------------

DEVICE_NAMES = {"cpu": "CPU", "cuda": "CUDA", "metal": "METAL"}


SCALE_INIT = 2.0 ** 16  # dynamic loss scaling (f16), torch's GradScaler defaults: start, halve on overflow,
SCALE_GROWTH_INTERVAL = 2000  # double after this many steps without one


def select_device(run: ir.Run) -> str:
    """The tinygrad device for `run.device`; a diagnostic when it cannot be opened."""
    name = Device.DEFAULT if run.device == "auto" else DEVICE_NAMES[run.device]
    try:
        Device[name]
    except Exception as e:  # tinygrad raises many kinds here: missing driver, library, compiler
        raise SpecError([Diagnostic(code="E601", message=f"cannot open device {name}: {str(e).splitlines()[0]}",
                                    span=run.span_of("device"), help="use `run { device = cpu }`; the CPU device "
                                    "needs `clang` on PATH")]) from None
    if run.device != "auto" and Device.DEFAULT != name:
        from tinygrad.helpers import DEV

        DEV.value = name
    return name


def _check_precision(half, device: str, run: ir.Run) -> None:
    """Whether the device compiles this half type at all (the CPU device's clang may lack __bf16)."""
    import os
    import sys

    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)  # the compiler's own messages (a subprocess's stderr) are not for the user
    try:  # a realized half buffer, as the step has
        a = Tensor(np.arange(4, dtype=np.float32).reshape(2, 2)).realize()
        (a.cast(half) @ a.cast(half)).contiguous().realize().float().realize()
    except Exception as e:  # a compiler error, of whichever kind the backend raises
        name = "bf16" if half == dtypes.bfloat16 else "f16"
        raise SpecError([Diagnostic(code="E602", message=f"precision = {name} is not supported on {device} here "
                                    f"({type(e).__name__})", span=run.span_of("precision"),
                                    help="use precision = f16 (with loss scaling) or f32")]) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@dataclass
class Program:
    """What the runtime drives. Tensors live on `device`; the jitted functions own the graph.

    With `accumulate = 1` one jitted `train_step(idx, lr)` is the whole step. With `accumulate = N`
    the step is split in two jitted functions: `micro_step(idx)` adds one micro-batch's gradients
    to buffers, `apply_step(lr)` updates the parameters from their mean; `step()` drives either.
    """

    spec: ir.Spec
    device: str
    layers: dict[str, LayerState]
    opt_state: dict[str, dict[str, Tensor]]
    ctx: MetricCtx
    train_slots: tuple[Slot, ...]  # metrics accumulated during training (after [loss, count])
    val_slots: tuple[Slot, ...]
    host_metrics: tuple[tuple[str, dict], ...]  # (kind, args) of metrics finished on the host (val only)
    train_batch: int
    eval_batch: int
    n_train: int
    n_val: int
    accumulate: int
    train_step: Callable | None  # (idx int32[B], lr f32[1]) -> total loss (scalar, with penalties)
    micro_step: Callable | None  # (idx int32[B]) -> data loss
    apply_step: Callable | None  # (lr f32[1]) -> None
    eval_step: Callable  # (idx int32[E], mask f32[E]) -> per-example host scores [E, H] (or a dummy)
    train_acc: Tensor  # [loss sum, steps, train metric states...]
    eval_acc: Tensor  # [loss sum, count, val metric states...]
    step_count: Tensor  # [1]: optimizer steps taken (Adam's t)
    frozen: tuple[str, ...] = ()  # parameter names that are not trained
    test_step: Callable | None = None  # as eval_step, over the test split
    n_test: int = 0
    x_train: Tensor | None = None  # the training inputs on the device, read by the step (data.augment rewrites it)
    grad_acc: Tensor | None = None  # [sum of the global gradient norms (before clipping), their max]
    predict_step: Callable | None = None  # (x [E, ...]) -> the first loss term's prediction, in the data's units
    loss_scale: Tensor | None = None  # precision = f16: [scale, steps since the last overflow, steps skipped]
    x_dtype: object = None
    feeds: dict = field(default_factory=dict, repr=False)  # step inputs written from the host: name -> (Tensor, view)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for normalised inputs, in fixed-size chunks (the last one padded) so one graph serves all."""
        n, eb = len(x), self.eval_batch
        out = []
        for start in range(0, n, eb):
            part = x[start:start + eb]
            if len(part) < eb:
                part = np.concatenate([part, np.repeat(part[-1:], eb - len(part), axis=0)])
            out.append(self.predict_step(_to_tensor(part, self.x_dtype)).numpy()[:min(eb, n - start)])
        return np.concatenate(out) if out else np.zeros((0,))

    def step(self, idxs: list, lr) -> None:
        """One optimizer step over `accumulate` micro-batches: `idxs` the index arrays (numpy or Tensors), `lr` a
        float (or a Tensor [1])."""
        lr = self.feed("lr", lr, np.float32)
        if self.train_step is not None:
            self.train_step(self.feed("idx", idxs[0], np.int32), lr)
            return
        for idx in idxs:
            self.micro_step(self.feed("idx", idx, np.int32))
        self.apply_step(lr)

    def feed(self, name: str, value, dtype) -> Tensor:
        """A step input from the host, written into a device buffer made once that the jitted step reads.
        A new Tensor per input per step costs tinygrad a schedule and a copy, ~2 ms (bench/README.md). Only
        on the CPU, which runs the step before returning, so the buffer is free to be written again."""
        if isinstance(value, Tensor):
            return value
        host = np.ascontiguousarray(value, dtype=dtype).reshape(-1)
        t, view = self.feeds.get(name, (None, None))
        if view is None or view.shape != host.shape:
            t = Tensor(host).realize()
            if self.device.split(":")[0] != "CPU" or os.environ.get("HCQ2"):  # asynchronous: a new tensor each step
                return t
            view = np.frombuffer(t.uop.buffer.as_memoryview(force_zero_copy=True), dtype=dtype)
            self.feeds[name] = (t, view)
        view[:] = host
        return t

    def owners(self) -> dict[str, LayerState]:
        return owners(self.layers)

    def named_params(self) -> dict[str, Tensor]:
        return {f"{ln}.{k}": t for ln, st in self.owners().items() for k, t in st.params.items()}

    def named_buffers(self) -> dict[str, Tensor]:
        return {f"{ln}.{k}": t for ln, st in self.owners().items() for k, t in st.buffers.items()}

    def state(self) -> dict[str, Tensor]:
        """Everything that defines the model (for checkpoints and restore-best)."""
        return {**self.named_params(), **self.named_buffers()}

    def optimizer_state(self) -> dict[str, Tensor]:
        scale = {"loss_scale": self.loss_scale} if self.loss_scale is not None else {}
        return {"step_count": self.step_count, **scale, **{f"{p}.{k}": t for p, st in self.opt_state.items()
                                                            for k, t in st.items()}}


def owners(layers: dict[str, LayerState]) -> dict[str, LayerState]:
    """Each layer's state once: a layer that shares another's weights is left out."""
    seen, out = set(), {}
    for ln, st in layers.items():
        if id(st) not in seen:
            seen.add(id(st))
            out[ln] = st
    return out


def _to_tensor(a: np.ndarray, dtype=dtypes.float32) -> Tensor:
    """A realized device copy of a host array: float32, or int32 for class labels."""
    host = np.ascontiguousarray(a, dtype=np.float32 if dtype == dtypes.float32 else np.int32)
    return Tensor(host).realize()  # the dtype from host's; naming it again costs a second copy (+180 MB for MNIST)


def penalties(reg: ir.Regularization, layer_name: str, t: Tensor) -> tuple[float, float]:
    """The l1 and l2 strengths on one parameter: weight tensors of two or more dimensions (not biases or norm
    scales), within the penalty's `on` values or blocks when it names any."""
    if len(t.shape) < 2:
        return 0.0, 0.0
    on = lambda sels: not sels or any(selects(s, layer_name) for s in sels)  # noqa: E731
    return (reg.l1 if on(reg.l1_on) else 0.0), (reg.l2 if on(reg.l2_on) else 0.0)


def selects(selector: str, layer_name: str) -> bool:
    """Whether `groups`/`freeze` selector names this layer: its value (`h`) or a block it is in (`mlp`)."""
    parts = layer_name.split(".")
    return parts[0] == selector or any(re.sub(r"\d+$", "", p) == selector for p in parts[1:-1])


def _class_weights(weights, class_counts: np.ndarray | None) -> tuple[float, ...] | None:
    """`balanced`: n / (K * count_k) from the training labels (scikit-learn's formula)."""
    if weights != "balanced":
        return weights
    n = float(class_counts.sum())
    counts = np.maximum(class_counts.astype(np.float64), 1.0)  # a class absent from training: finite weight
    return tuple(float(w) for w in n / (len(counts) * counts))


class _Lowering:
    """The state the steps of `lower` share, built in the order `lower` calls them (the order fixes the
    seeded initialisation and the tensors' creation), and the functions the jitted steps trace."""

    def __init__(self, spec: ir.Spec, y_train: np.ndarray, y_val: np.ndarray, n_classes: int | None):
        program_cache()  # generated kernels kept on disk: a later run skips most of its time to first step
        self.spec = spec
        self.device = select_device(spec.run)
        if self.device.split(":")[0] == "CPU":
            cpu_threads()  # the pieces of a large kernel on all cores, not one after another
        Tensor.manual_seed(spec.run.seed)
        self.rng = np.random.default_rng(spec.run.seed)
        self.model = spec.model
        self.reg = spec.regularization
        self.classify = spec.data.task == ir.Task.classification
        self.y_dtype = dtypes.int32 if self.classify else dtypes.float32
        if self.classify and n_classes is None:
            n_classes = int(max(y_train.max(), y_val.max())) + 1
        self.n_classes = n_classes
        self.class_counts = np.bincount(y_train.astype(np.int64).reshape(-1), minlength=n_classes) \
            if self.classify else None  # reshape: a class at every position counts at each

    # -- parameters and the optimizer ----------------------------------------------------------------

    def build_layers(self) -> None:
        """Parameters, in layer order so that initialisation is seed-stable."""
        types = {i.name: i.type for i in self.model.inputs}
        layers: dict[str, LayerState] = {}
        for layer in self.model.layers:
            owner = ir.argdict(layer.args).get("share")
            if owner is not None:  # the same LayerState: one set of weights, trained once
                layers[layer.name] = layers[owner]
                types[layer.name] = layer.out
                continue
            make = LAYERS.table("make").get(layer.op)
            st = make(layer, types[layer.inputs[0]], self.rng) if make else LayerState()
            st.params = {k: _to_tensor(v) for k, v in st.params.items()}
            st.buffers = {k: _to_tensor(v) for k, v in st.buffers.items()}
            layers[layer.name] = st
            types[layer.name] = layer.out
        self.layers = layers

    def select_trained(self) -> None:
        """Which parameters train, and with which optimizer settings (groups: the last match wins) and penalties."""
        opt = self.spec.optimizer
        self.base = ir.argdict(opt.args)
        trained, frozen, pargs = [], [], {}
        for ln, st in owners(self.layers).items():
            for k, t in st.params.items():
                name = f"{ln}.{k}"
                if any(selects(sel, ln) for sel in opt.freeze):
                    frozen.append(name)
                    continue
                a = dict(self.base)
                for g in opt.groups:
                    if selects(g.selector, ln):
                        a.update(dict(g.args))
                t.requires_grad = True
                trained.append((name, t, penalties(self.spec.regularization, ln, t)))
                pargs[name] = a
        self.trained, self.frozen, self.pargs = trained, frozen, pargs
        self.params = [t for _, t, _ in trained]

    def build_optimizer_state(self) -> None:
        """The optimizer's state per trained parameter, the step counter and (f16) the loss scale."""
        opt = self.spec.optimizer
        make_state, self.update = OPTIMIZERS.impl(opt.kind, "state"), OPTIMIZERS.impl(opt.kind)
        self.opt_state = {name: make_state(t, self.pargs[name]) for name, t, _ in self.trained}
        for s in self.opt_state.values():
            for t in s.values():
                t.realize()
        self.step_count = Tensor.zeros(1).contiguous().realize()
        # f16: [loss scale, steps since the last overflow, steps skipped]
        self.loss_scale = (Tensor([SCALE_INIT, 0.0, 0.0]).contiguous().realize()
                           if self.spec.run.precision == ir.DType.f16 else None)

    # -- data, loss and metrics ------------------------------------------------------------------------

    def load_data(self, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray) -> None:
        """The training and validation arrays on the device."""
        self.x_dtype = dtypes.int32 if self.model.inputs[0].type.dtype == ir.DType.i32 else dtypes.float32  # token ids
        self.X_tr, self.Y_tr = _to_tensor(x_train, self.x_dtype), _to_tensor(y_train, self.y_dtype)
        self.X_va, self.Y_va = _to_tensor(x_val, self.x_dtype), _to_tensor(y_val, self.y_dtype)
        self.n_train, self.n_val = len(x_train), len(x_val)

    def build_loss_and_metrics(self, y_train: np.ndarray, target_shift: np.ndarray | None,
                               target_scale: np.ndarray | None) -> None:
        """The loss terms' arguments, the metrics' layouts (train and val) and the targets' de-standardisation."""
        spec, model = self.spec, self.model
        self.input_name = model.inputs[0].name
        self.values = dict(model.values)
        self.terms = [(t, ir.argdict(t.args)) for t in spec.loss.terms]
        for _, a in self.terms:
            if "weights" in a:
                a["weights"] = _class_weights(a["weights"], self.class_counts)
        self.metric_pred = self.values[spec.loss.terms[0].pred]  # metrics read the first loss term's prediction
        pred_width = next((la.out.shape[-1] for la in model.layers if la.name == self.metric_pred), 1)
        # r2 sums (y - c) and (y - c)^2 around a centre near the data, so float32 keeps its digits
        center = None if self.classify else tuple(float(c) for c in np.ravel(
            target_shift if target_shift is not None else y_train.mean(0)))
        self.ctx = ctx = MetricCtx(n_classes=self.n_classes, n_outputs=pred_width, target_center=center)
        kinds_args = [(m.kind, ir.argdict(m.args)) for m in spec.metrics]
        self.val_slots, self.val_size = layout(kinds_args, ctx, "val")
        self.train_slots, self.train_size = layout([(k, a) for k, a in kinds_args if METRICS.impl(k).scalar], ctx,
                                                   "train")
        self.host_metrics = tuple((k, a) for k, a in kinds_args if METRICS.impl(k).host is not None)
        self.t_scale = _to_tensor(target_scale) if target_scale is not None else None
        self.t_shift = _to_tensor(target_shift) if target_shift is not None else None

    def select_precision(self) -> None:
        """Mixed precision (run.precision = f16 | bf16): the weights stay float32 (the masters the optimizer
        updates); the forward pass runs on half-precision copies of the inputs, weights and activations, except
        layers with running statistics (batchnorm), which compute in float32 as torch's autocast does. Losses and
        metrics see float32. f16 adds dynamic loss scaling (`apply`); bf16 has float32's range and needs none."""
        self.half = {ir.DType.f16: dtypes.half, ir.DType.bf16: dtypes.bfloat16}.get(self.spec.run.precision)
        if self.half is not None:
            _check_precision(self.half, self.device, self.spec.run)

    def forward(self, x: Tensor, training: bool) -> dict[str, Tensor]:
        half = self.half
        out = {self.input_name: x.cast(half) if half and dtypes.is_float(x.dtype) else x}
        for layer in self.model.layers:
            xs = [out[i] for i in layer.inputs]
            x = xs if len(layer.inputs) > 1 else xs[0]
            st = self.layers[layer.name]
            if half and st.params and not st.buffers:
                st = LayerState(params={k: v.cast(half) for k, v in st.params.items()})
            y = LAYERS.impl(layer.op)(x, st, ir.argdict(layer.args), training)
            out[layer.name] = y.cast(half) if half and dtypes.is_float(y.dtype) else y
        if half:
            out = {k: v.float() if dtypes.is_float(v.dtype) else v for k, v in out.items()}
        return out

    def data_loss(self, out: dict[str, Tensor], y: Tensor, mask: Tensor | None = None) -> Tensor:
        """Per-example weighted sum of the loss terms: [B]."""
        total = None
        for term, a in self.terms:
            pred = out[self.values[term.pred]]
            if term.target != "target":  # an autoencoder: the target is the model's input
                target = out[term.target].reshape(pred.shape)
            else:
                target = y if self.classify else y.reshape(pred.shape)
            extra = {"mask": mask} if LOSSES.get(term.kind).extra.get("pairwise") else {}
            v = LOSSES.impl(term.kind)(pred, target, **a, **extra) * term.weight
            if v.ndim > 1:  # a loss at every position ([B, T]): its mean over the positions, per example
                v = v.mean(tuple(range(1, v.ndim)))
            total = v if total is None else total + v
        return total

    def metric_inputs(self, out: dict[str, Tensor], y: Tensor) -> tuple[Tensor, Tensor]:
        """The prediction and target metrics see: in the data's units for standardised targets."""
        pred = out[self.metric_pred]
        first = self.spec.loss.terms[0].target
        if first != "target":  # an autoencoder: metrics compare the reconstruction with the (normalised) input
            return pred, out[first].reshape(pred.shape)
        target = y if self.classify else y.reshape(pred.shape)
        if self.t_scale is not None:
            pred, target = pred * self.t_scale + self.t_shift, target * self.t_scale + self.t_shift
        return pred, target

    def metric_state(self, slots, out, y, mask) -> list[Tensor]:
        pred, target = self.metric_inputs(out, y)
        return [s.impl.update(pred.detach(), target, mask, self.ctx, s.args) for s in slots]

    # -- the training step -----------------------------------------------------------------------------

    def penalty(self) -> Tensor | float:
        """The value of the L1/L2 penalties (their gradients are added to the step directly)."""
        total = 0.0
        for _, w, (l1, l2) in self.trained:
            if l2:
                total = total + (l2 / 2) * (w * w).sum()
            if l1:
                total = total + l1 * w.abs().sum()
        return total

    def apply(self, grads: list[Tensor], lr: Tensor) -> list[Tensor]:
        """Penalties, clipping, decoupled decay and the optimizer update; returns what to realize."""
        reg, loss_scale, pargs, step_count = self.reg, self.loss_scale, self.pargs, self.step_count
        grads = list(grads)
        for i, (_, w, (l1, l2)) in enumerate(self.trained):
            if l2:
                grads[i] = grads[i] + l2 * w.detach()
            if l1:
                grads[i] = grads[i] + l1 * w.detach().sign()
        # the global gradient norm before clipping, recorded per epoch (mean and max) to show exploding or
        # vanishing gradients; clip_grad_norm reuses it
        gate = dict(pargs)  # optimizer args, with the overflow gate under loss scaling
        if loss_scale is not None:
            grads = [g / loss_scale[0] for g in grads]
        norm = sum((g.float() * g.float()).sum() for g in grads).sqrt() if grads else Tensor.zeros(())
        pending = []
        if loss_scale is not None:  # dynamic loss scaling, as torch's GradScaler: skip a step that overflowed
            ok = (norm.isnan() | norm.isinf()).logical_not()
            gate = {k: {**a, OK: ok} for k, a in pargs.items()}
            scale, good, skipped = loss_scale[0], loss_scale[1], loss_scale[2]
            grow = good + 1 >= SCALE_GROWTH_INTERVAL
            pending.append(loss_scale.assign(Tensor.stack(
                ok.where(grow.where(scale * 2, scale), scale * 0.5), ok.where(grow.where(0.0, good + 1), 0.0),
                skipped + ok.logical_not().cast(dtypes.float32))))
            norm = ok.where(norm, 0.0)
        pending.append(self.grad_acc.assign(Tensor.cat(self.grad_acc[0:1] + norm.reshape(1),
                                                       self.grad_acc[1:2].maximum(norm.reshape(1)))))
        if reg.clip_grad_value:
            grads = [g.clip(-reg.clip_grad_value, reg.clip_grad_value) for g in grads]
        if reg.clip_grad_norm:
            norm = sum(((g * g).sum() for g in grads), Tensor.zeros(())).sqrt() if reg.clip_grad_value else norm
            coef = (reg.clip_grad_norm / (norm + 1e-6)).minimum(1.0)
            grads = [g * coef for g in grads]
        t = step_count.assign(step_count + 1 if loss_scale is None else ok.where(step_count + 1, step_count))
        pending.append(t)
        lr_ = lr.reshape(())
        base_lr = self.base["lr"]
        for (name, p, _), g in zip(self.trained, grads):
            a = gate[name]
            plr = lr_ * (a["lr"] / base_lr) if a["lr"] != base_lr else lr_  # groups scale with the schedule
            w = p.detach()
            new, state = self.update(w, g, self.opt_state[name], plr, t.reshape(()), a)
            if reg.weight_decay:  # decoupled, as in AdamW, for any optimizer
                new = new - plr * reg.weight_decay * w
            pending += [p.assign(new if loss_scale is None else ok.where(new, w)), *state]
        return pending

    def make_accumulators(self) -> None:
        """The on-device accumulators the steps add to, and (accumulate = N) the gradient buffers."""
        self.train_acc = Tensor.zeros(self.train_size).contiguous().realize()
        self.grad_acc = Tensor.zeros(2).contiguous().realize()  # [sum of the steps' gradient norms, their max]
        self.accumulate = n = self.reg.accumulate
        self.grad_bufs = [Tensor.zeros(p.shape).contiguous().realize() for p in self.params] if n > 1 else []
        self.eval_acc = Tensor.zeros(self.val_size).contiguous().realize()

    def gather(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        if not GATHER_KERNEL:
            return self.X_tr[idx], self.Y_tr[idx]
        with Context(SPLIT_REDUCEOP=0):  # the gather as one small kernel (see bench/README.md)
            return self.X_tr[idx].contiguous().realize(), self.Y_tr[idx].contiguous().realize()

    def forward_backward(self, idx: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        x, y = self.gather(idx)
        out = self.forward(x, True)
        dloss = self.data_loss(out, y).mean()
        loss_scale = self.loss_scale
        grads = (dloss * loss_scale[0] if loss_scale is not None else dloss).gradient(*self.params)
        b = idx.shape[0]
        acc = [dloss.detach().reshape(1) * b, Tensor.full((1,), float(b))]  # [loss sum, examples]
        acc += self.metric_state(self.train_slots, out, y, Tensor.ones(b))
        pending = [self.train_acc.assign(self.train_acc + Tensor.cat(*acc))]
        for st in self.layers.values():
            pending += st.pending
            st.pending = []
        return dloss, grads, pending

    def step(self, idx: Tensor, lr: Tensor) -> Tensor:
        with Context(TRAINING=1):
            dloss, grads, pending = self.forward_backward(idx)
            loss = dloss + self.penalty()
            pending += self.apply(grads, lr)
            Tensor.realize(loss, *pending)
            return loss

    def micro_step(self, idx: Tensor) -> Tensor:
        with Context(TRAINING=1):
            dloss, grads, pending = self.forward_backward(idx)
            pending += [b.assign(b + g) for b, g in zip(self.grad_bufs, grads)]
            Tensor.realize(dloss, *pending)
            return dloss

    def apply_step(self, lr: Tensor) -> None:
        with Context(TRAINING=1):
            pending = self.apply([b / self.accumulate for b in self.grad_bufs], lr)
            pending += [b.assign(b.zeros_like()) for b in self.grad_bufs]
            Tensor.realize(*pending)

    # -- evaluation ------------------------------------------------------------------------------------

    def make_eval(self, X: Tensor, Y: Tensor) -> Callable:
        def evaluate(idx: Tensor, mask: Tensor) -> Tensor:
            return self.evaluate_on(X[idx], Y[idx], mask)

        return evaluate

    def evaluate_on(self, x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
        out = self.forward(x, False)
        acc = [(self.data_loss(out, y, mask) * mask).sum().reshape(1), mask.sum().reshape(1)]
        acc += self.metric_state(self.val_slots, out, y, mask)
        pending = [self.eval_acc.assign(self.eval_acc + Tensor.cat(*acc))]
        pred, _ = self.metric_inputs(out, y)
        scores = [METRICS.impl(k).scores(pred, self.ctx, a) for k, a in self.host_metrics]
        result = Tensor.stack(*scores, dim=1) if scores else mask.reshape(-1, 1)
        Tensor.realize(result, *pending)
        return result

    def predict_on(self, x: Tensor) -> Tensor:
        """The first loss term's prediction, in the data's units (regression targets de-standardised)."""
        pred = self.forward(x, False)[self.metric_pred]
        if self.t_scale is not None and self.spec.loss.terms[0].target == "target":
            pred = pred * self.t_scale + self.t_shift
        return pred.realize()

    # -- the program -----------------------------------------------------------------------------------

    def program(self, x_test: np.ndarray | None, y_test: np.ndarray | None) -> Program:
        """The jitted steps (the test split's evaluation when there is one) and the Program around them."""
        spec, n = self.spec, self.accumulate
        test_step = None
        if x_test is not None:
            X_te, Y_te = _to_tensor(x_test, self.x_dtype), _to_tensor(y_test, self.y_dtype)
            test_step = TinyJit(self.make_eval(X_te, Y_te))
        beam = spec.run.beam  # the training steps' kernels only: they run every step, evaluation once an epoch
        return Program(spec=spec, device=self.device, layers=self.layers, opt_state=self.opt_state, ctx=self.ctx,
                       train_slots=self.train_slots, val_slots=self.val_slots, host_metrics=self.host_metrics,
                       train_batch=spec.data.batch, eval_batch=min(self.n_val, 512), n_train=self.n_train,
                       n_val=self.n_val, accumulate=n, train_step=step_jit(self.step, beam) if n == 1 else None,
                       micro_step=step_jit(self.micro_step, beam) if n > 1 else None,
                       apply_step=step_jit(self.apply_step, beam) if n > 1 else None,
                       eval_step=TinyJit(self.make_eval(self.X_va, self.Y_va)), test_step=test_step,
                       n_test=len(x_test) if x_test is not None else 0, x_train=self.X_tr, train_acc=self.train_acc,
                       eval_acc=self.eval_acc, step_count=self.step_count, frozen=tuple(self.frozen),
                       grad_acc=self.grad_acc, predict_step=TinyJit(self.predict_on), x_dtype=self.x_dtype,
                       loss_scale=self.loss_scale)


def lower(spec: ir.Spec, x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
          target_shift: np.ndarray | None = None, target_scale: np.ndarray | None = None,
          n_classes: int | None = None, x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> Program:
    """Build the program for a checked spec over arrays already loaded and normalised.

    Regression targets may be standardised (`target_shift`, `target_scale`): the loss sees them
    as they are, the metrics see predictions and targets back in the data's units."""
    lw = _Lowering(spec, y_train, y_val, n_classes)  # device, seeds, the task
    lw.build_layers()  # parameters, in layer order (seed-stable)
    lw.select_trained()  # which train, their optimizer args and penalties
    lw.build_optimizer_state()
    lw.load_data(x_train, y_train, x_val, y_val)
    lw.build_loss_and_metrics(y_train, target_shift, target_scale)
    lw.select_precision()
    lw.make_accumulators()
    return lw.program(x_test, y_test)


def finish_train(program: Program, state: np.ndarray) -> dict[str, object]:
    """Host side of the training accumulators: the epoch's mean loss and the train metrics."""
    return finish(program.train_slots, state, program.ctx)


def finish_eval(program: Program, state: np.ndarray, scores: np.ndarray | None = None,
                labels: np.ndarray | None = None) -> dict[str, object]:
    """Host side of evaluation: the state vector (and host scores) -> {loss, metric: value}."""
    out = finish(program.val_slots, state, program.ctx)
    for j, (kind, args) in enumerate(program.host_metrics):
        out[kind] = METRICS.impl(kind).host(scores[:, j], labels, program.ctx, args)
    return out


__all__ = ["lower", "Program", "finish_eval", "finish_train", "select_device", "selects", "INIT_IMPL", "LAYER_IMPL",
           "LOSS_IMPL", "METRIC_IMPL", "OPT_IMPL", "LayerState", "MetricCtx"]
