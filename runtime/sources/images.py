"""`images(path, color, size)`: a folder of images, one sub-folder per class.

`path` is a folder; each sub-folder is a class, named by the sub-folder (torchvision's ImageFolder
layout: `digits_png/3/0003.png` is an example of class `3`). In each class folder the files ending
in `.png`, `.jpg` or `.jpeg` (any case) are examples, in name order; other files, hidden entries
and deeper folders are ignored. The class names become labels like any others (sorted
numerically when they are all integers, else as strings).

Each image is decoded with Pillow and converted to 8-bit grayscale (`color = gray`, one channel)
or RGB (`color = rgb`, three channels; an alpha channel is dropped). `x` has shape [n, C, H, W],
channels first, with the pixel values divided by 255, so in [0, 1] (torchvision's ToTensor);
`data.normalize` applies after that. With `size = [H, W]` every image is resized to H x W
(Pillow's bilinear filter, antialiased when shrinking); without it, every image must have the
size of the first one read.

Errors name the file: a path that is not a folder, a folder without class sub-folders, a class
folder without images, an image that cannot be decoded, an image of another size.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

from ...compiler import ir
from ..data import _fail, _Raw

EXTENSIONS = (".png", ".jpg", ".jpeg")


def _folder(source: ir.Source, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(source.path))
    path = path if path.is_absolute() else pathlib.Path(base_dir) / path
    if not path.exists():
        _fail("E501", f"image folder '{source.path}' not found (looked for {path})", source.span,
              help="paths are relative to the directory of the spec file")
    if not path.is_dir():
        _fail("E502", f"'{source.path}' is a file, expected a folder with one sub-folder of images per class",
              source.span, help="e.g. images(\"pets\") reading pets/cat/*.png and pets/dog/*.png")
    return path


def _visible(entries) -> list[pathlib.Path]:
    return sorted((e for e in entries if not e.name.startswith(".")), key=lambda e: e.name)


def _decode(file: pathlib.Path, shown: str, color: str, size: tuple[int, int] | None, source: ir.Source) -> np.ndarray:
    """One image as uint8 [H, W] (gray) or [H, W, 3] (rgb)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img = img.convert("L" if color == "gray" else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:  # Pillow's decoders raise all of these
        _fail("E502", f"cannot read image '{shown}': {str(e).splitlines()[0] if str(e) else type(e).__name__}",
              source.span, help="remove the file or replace it with a valid PNG or JPEG")


def read_images(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> _Raw:
    args = ir.argdict(source.args)
    color, size = args.get("color", "gray"), args.get("size")
    if task is not ir.Task.classification:
        _fail("E506", f"images source '{source.path}' gives classification targets (the class of each sub-folder), "
              "but the loss is for regression", source.span, help="use cross_entropy(logits, target)")
    if size is not None:
        if len(size) != 2 or not all(float(d).is_integer() and d >= 1 for d in size):
            _fail("E506", f"images source '{source.path}': size must be [H, W], two positive integers, found "
                  f"{list(size)}", source.span)
        size = (int(size[0]), int(size[1]))
    root = _folder(source, base_dir)
    classes = [d for d in _visible(root.iterdir()) if d.is_dir()]
    if not classes:
        _fail("E502", f"image folder '{source.path}' has no sub-folders; expected one sub-folder of images per class",
              source.span, help=f"e.g. {source.path}/cat/1.png, {source.path}/dog/1.png")
    images, labels = [], []
    first: tuple[str, tuple[int, ...]] | None = None  # the first image read and its size, for messages
    for folder in classes:
        files = [f for f in _visible(folder.iterdir()) if f.is_file() and f.suffix.lower() in EXTENSIONS]
        if not files:
            _fail("E505", f"class folder '{source.path}/{folder.name}' holds no images (.png, .jpg or .jpeg)",
                  source.span, help="every class needs at least one image; remove the empty folder")
        for file in files:
            shown = f"{source.path}/{folder.name}/{file.name}"
            pixels = _decode(file, shown, color, size, source)
            if first is None:
                first = (shown, pixels.shape[:2])
            elif pixels.shape[:2] != first[1]:
                (h, w), (h0, w0) = pixels.shape[:2], first[1]
                _fail("E506", f"image '{shown}' is {h}x{w} (HxW), but '{first[0]}' is {h0}x{w0}; without `size`, "
                      "all images must have one size", source.span,
                      help=f"resize them all: images(\"{source.path}\", size = [{h0}, {w0}])")
            images.append(pixels)
            labels.append(folder.name)
    x = np.stack(images)
    x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)  # channels first: [n, C, H, W]
    return _Raw(x=x.astype(np.float64) / 255.0, y=np.array(labels, dtype=str), feature_names=None, source=source)


from . import READERS  # noqa: E402 - sources/__init__ defines READERS, then imports this module

READERS["images"] = read_images
