"""Progress on the terminal: a live line on a TTY, plain lines otherwise (logs, CI, pipes), or a JSON-lines
stream for machines (`--log-format json`: one object per line on stdout, each with an "event": "message",
"epoch" (the metrics row plus seconds and examples_per_s) or "end" (written by the CLI))."""

from __future__ import annotations

import json
import math
import sys
import time


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, stream=None, live: bool | None = None, quiet: bool = False, json_lines: bool = False):
        self.json = json_lines
        self.stream = stream or (sys.stdout if json_lines else sys.stderr)
        self.live = False if json_lines else self.stream.isatty() if live is None else live
        self.quiet = quiet
        self.last_draw = 0.0

    def event(self, kind: str, **fields):
        """One JSON object on its own line (JSON mode only)."""
        if self.json:
            clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in fields.items()}
            self.stream.write(json.dumps({"event": kind, **clean}, default=str) + "\n")
            self.stream.flush()

    def write(self, line: str):
        if self.json:
            self.event("message", text=line)
            return
        if not self.quiet:
            if self.live:
                self.stream.write("\r\x1b[2K")
            self.stream.write(line + "\n")
            self.stream.flush()

    def want_step(self) -> bool:
        """Whether a live update is due (the caller then syncs the loss, so keep this rare)."""
        return self.live and not self.quiet and time.perf_counter() - self.last_draw > 0.25

    def step(self, epoch: int, max_epochs: int | None, step: int, in_epoch: int, per_epoch: int, loss: float,
             rate: float, lr: float | None = None, eta: float | None = None):
        self.last_draw = time.perf_counter()
        width = 20
        done = int(width * in_epoch / max(per_epoch, 1))
        bar = "#" * done + "." * (width - done)
        ep = f"{epoch}/{max_epochs}" if max_epochs else str(epoch)
        extra = (f"  lr {lr:.2e}" if lr is not None else "") + (f"  ETA {_clock(eta)}" if eta is not None else "")
        self.stream.write(f"\r\x1b[2Kepoch {ep} [{bar}] step {step}  loss {loss:.4f}{extra}  {rate:,.0f} ex/s")
        self.stream.flush()

    def epoch(self, row: dict, max_epochs: int | None, seconds: float, rate: float, note: str | None = None):
        if self.json:
            self.event("epoch", **row, seconds=round(seconds, 4), examples_per_s=round(rate, 1))
            return
        ep = f"{row['epoch']:>{len(str(max_epochs))}}/{max_epochs}" if max_epochs else str(row["epoch"])
        parts = [f"epoch {ep}", f"step {row['step']:>5}", f"lr {row['lr']:.2e}"]
        parts += [f"{k} {fmt(v)}" for k, v in row.items() if k.startswith(("train.", "val."))]
        parts.append(f"{seconds:.1f}s ({rate:,.0f} ex/s{', ' + note if note else ''})")
        self.write("  ".join(parts))
