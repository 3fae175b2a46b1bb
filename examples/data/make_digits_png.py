"""Write `digits_png/`: the UCI digits of `digits.csv` as one 8x8 grayscale PNG per example.

`digits_png/<label>/<row>.png`, `<row>` the 0-based data row of `digits.csv`, four digits. A pixel
value v in 0..16 becomes round(v * 255 / 16) in 0..255 (0 stays black, 16 becomes white). The
output is deterministic: rerunning it rewrites the same bytes.

    .venv/bin/python examples/data/make_digits_png.py
"""

from __future__ import annotations

import pathlib
import shutil

import numpy as np
from PIL import Image

HERE = pathlib.Path(__file__).resolve().parent


def main() -> None:
    table = np.loadtxt(HERE / "digits.csv", delimiter=",", skiprows=1, dtype=np.int64)
    pixels, labels = table[:, :64], table[:, 64]
    gray = np.floor(pixels * 255 / 16 + 0.5).astype(np.uint8).reshape(-1, 8, 8)
    out = HERE / "digits_png"
    if out.exists():
        shutil.rmtree(out)
    for row, (image, label) in enumerate(zip(gray, labels)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{row:04d}.png", optimize=True)
    print(f"wrote {len(labels)} images to {out}")


if __name__ == "__main__":
    main()
