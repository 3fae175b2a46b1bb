"""PyTorch eager on the CPU: each workload as the usual torch loop (`nn` modules, `optim.Adam`,
`X[idx]` on tensors held in memory), from the same initial weights as trainc's (`init.py`)."""

from __future__ import annotations

import numpy as np

from init import initial_weights


def build(workload: str, x: np.ndarray, y: np.ndarray, seed: int, lr: float):
    """-> step(idx numpy int array) -> loss tensor."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    w = {k: torch.tensor(np.asarray(v, dtype=np.float32)) for k, v in initial_weights(workload, seed).items()}
    if workload == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        weights = {"0.weight": w["l1.W"].T, "0.bias": w["l1.b"], "2.weight": w["l2.W"].T, "2.bias": w["l2.b"]}
    elif workload == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 10))
        weights = {"0.weight": w["c1.W"], "0.bias": w["c1.b"], "3.weight": w["c2.W"], "3.bias": w["c2.b"],
                   "7.weight": w["fc.W"].T, "7.bias": w["fc.b"]}
    elif workload == "lstm":
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm, self.fc = nn.LSTM(8, 64, batch_first=True), nn.Linear(64, 10)

            def forward(self, xb):
                return self.fc(self.lstm(xb)[1][0][0])

        model = Net()
        weights = {"lstm.weight_ih_l0": w["W_ih"], "lstm.weight_hh_l0": w["W_hh"], "lstm.bias_ih_l0": w["b_ih"],
                   "lstm.bias_hh_l0": w["b_hh"], "fc.weight": w["fc.W"].T, "fc.bias": w["fc.b"]}
    else:
        raise ValueError(workload)
    model.load_state_dict({k: v.contiguous() for k, v in weights.items()})
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    X, Y = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step(idx: np.ndarray):
        i = torch.from_numpy(idx)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(X[i]), Y[i])
        loss.backward()
        opt.step()
        return loss.detach()

    return step
