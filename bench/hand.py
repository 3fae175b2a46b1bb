"""The naive reference: each workload as a hand-written tinygrad loop, the way tinygrad's own
examples write one (examples/beautiful_mnist.py): `nn` layers, `nn.optim.Adam`, one `TinyJit`
over the whole step with the batch gather `X[idx]` inside it, training mode via
`Context(TRAINING=1)`. Weights start from the same numpy draws as trainc's (`init.py`), so the
losses of the two agree and the comparison is like for like.
"""

from __future__ import annotations

import numpy as np

from init import initial_weights


def build(workload: str, x: np.ndarray, y: np.ndarray, seed: int, lr: float):
    """-> step(idx Tensor) -> loss Tensor, jitted."""
    from tinygrad import Context, Tensor, TinyJit, nn

    w = initial_weights(workload, seed)

    def param(name: str, transpose: bool = False) -> Tensor:  # nn.Linear keeps W as [out, in]
        a = w[name].T if transpose else w[name]
        return Tensor(np.ascontiguousarray(a, dtype=np.float32)).realize()

    if workload == "mlp":
        l1, l2 = nn.Linear(784, 256), nn.Linear(256, 10)
        l1.weight, l1.bias, l2.weight, l2.bias = param("l1.W", True), param("l1.b"), param("l2.W", True), param("l2.b")
        layers = {"l1": l1, "l2": l2}

        def model(xb):
            return l2(l1(xb).relu())
    elif workload == "cnn":
        c1, c2, fc = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 32, 3), nn.Linear(800, 10)
        c1.weight, c1.bias, c2.weight, c2.bias = param("c1.W"), param("c1.b"), param("c2.W"), param("c2.b")
        fc.weight, fc.bias = param("fc.W", True), param("fc.b")
        layers = {"c1": c1, "c2": c2, "fc": fc}

        def model(xb):
            h = c1(xb).relu().max_pool2d(2)
            h = c2(h).relu().max_pool2d(2)
            return fc(h.flatten(1))
    elif workload == "lstm":
        cell, fc = nn.LSTMCell(8, 64), nn.Linear(64, 10)
        cell.weight_ih, cell.weight_hh = param("W_ih"), param("W_hh")
        cell.bias_ih, cell.bias_hh = param("b_ih"), param("b_hh")
        fc.weight, fc.bias = param("fc.W", True), param("fc.b")
        layers = {"cell": cell, "fc": fc}

        def model(xb):
            hc = None
            for t in range(xb.shape[1]):
                hc = cell(xb[:, t], hc)
            return fc(hc[0])
    else:
        raise ValueError(workload)

    opt = nn.optim.Adam(nn.state.get_parameters(layers), lr=lr)
    X, Y = Tensor(x).realize(), Tensor(y.astype(np.int32)).realize()

    @TinyJit
    def step(idx: Tensor) -> Tensor:
        with Context(TRAINING=1):
            opt.zero_grad()
            loss = model(X[idx]).sparse_categorical_crossentropy(Y[idx]).backward()
            return loss.realize(*opt.schedule_step())

    return step
