"""Progress on the terminal: a live line on a TTY, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import sys
import time


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


class Progress:
    def __init__(self, stream=None, live: bool | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.quiet = quiet
        self.last_draw = 0.0

    def write(self, line: str):
        if not self.quiet:
            if self.live:
                self.stream.write("\r\x1b[2K")
            self.stream.write(line + "\n")
            self.stream.flush()

    def want_step(self) -> bool:
        """Whether a live update is due (the caller then syncs the loss, so keep this rare)."""
        return self.live and not self.quiet and time.perf_counter() - self.last_draw > 0.25

    def step(self, epoch: int, max_epochs: int | None, step: int, in_epoch: int, per_epoch: int, loss: float,
             rate: float):
        self.last_draw = time.perf_counter()
        width = 20
        done = int(width * in_epoch / max(per_epoch, 1))
        bar = "#" * done + "." * (width - done)
        ep = f"{epoch}/{max_epochs}" if max_epochs else str(epoch)
        self.stream.write(f"\r\x1b[2Kepoch {ep} [{bar}] step {step}  loss {loss:.4f}  {rate:,.0f} ex/s")
        self.stream.flush()

    def epoch(self, row: dict, max_epochs: int | None, seconds: float, rate: float, note: str | None = None):
        ep = f"{row['epoch']:>{len(str(max_epochs))}}/{max_epochs}" if max_epochs else str(row["epoch"])
        parts = [f"epoch {ep}", f"step {row['step']:>5}", f"lr {row['lr']:.2e}"]
        parts += [f"{k} {fmt(v)}" for k, v in row.items() if k.startswith(("train.", "val."))]
        parts.append(f"{seconds:.1f}s ({rate:,.0f} ex/s{', ' + note if note else ''})")
        self.write("  ".join(parts))
