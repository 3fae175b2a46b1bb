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
folder without images, an image that cannot be decoded, an image of another size, an image of more
than MAX_PIXELS pixels (read from its header, before anything is decoded: a 48 KB PNG can claim
20000 x 20000 pixels, 1.2 GB as RGB).
"""

from __future__ import annotations

import os
import pathlib
import re
import stat

import numpy as np

from ...compiler import ir
from ..tables import _fail, _Raw

EXTENSIONS = (".png", ".jpg", ".jpeg")
MAX_FILE = 256 * 1024 * 1024  # bytes of one image file
MAX_PIXELS = 89_478_485  # Pillow's own bound (Image.MAX_IMAGE_PIXELS) on an image that is not a decompression bomb


def _folder(source: ir.Source, base_dir: pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(source.path))
    path = path if path.is_absolute() else pathlib.Path(base_dir) / path
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError) as e:  # a name too long, a loop of links, no permission; ValueError: a NUL in it
        _fail("E502", f"cannot open image folder '{source.path}': {getattr(e, 'strerror', None) or e}", source.span)
    if not os.path.exists(path):
        _fail("E501", f"image folder '{source.path}' not found (looked for {path})", source.span,
              help="paths are relative to the directory of the spec file")
    if not os.path.isdir(path):
        _fail("E502", f"'{source.path}' is a file, expected a folder with one sub-folder of images per class",
              source.span, help="e.g. images(\"pets\") reading pets/cat/*.png and pets/dog/*.png")
    return path


def _visible(folder: pathlib.Path, source: ir.Source) -> list[pathlib.Path]:
    """The entries of a folder not hidden, by name; a folder that cannot be listed names itself."""
    try:
        return sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda e: e.name)
    except OSError as e:
        _fail("E502", f"cannot list folder '{folder}': {e.strerror or e}", source.span)


def _regular(file: pathlib.Path, shown: str, source: ir.Source):
    """The image file opened for reading, if it is a regular file of at most MAX_FILE bytes: opened without
    blocking (a FIFO put in its place after the folder was listed is refused, never waited on)."""
    try:
        fd = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        _fail("E502", f"cannot open image '{shown}': {getattr(e, 'strerror', None) or e}", source.span)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE:
        os.close(fd)
        what = f"{info.st_size:,} bytes, more than {MAX_FILE:,}" if stat.S_ISREG(info.st_mode) else \
            "not a regular file"
        _fail("E502", f"image '{shown}' is {what}", source.span, help="remove it from the image folder")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _decode(file: pathlib.Path, shown: str, color: str, size: tuple[int, int] | None, source: ir.Source) -> np.ndarray:
    """One image as uint8 [H, W] (gray) or [H, W, 3] (rgb). Any error of Pillow's (its decoders raise OSError,
    ValueError, SyntaxError, struct.error, EOFError, IndexError, DecompressionBombError, ...) names the file."""
    import warnings

    from PIL import Image

    pixels = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # a warning too is a refusal
            with Image.open(_regular(file, shown, source)) as img:  # reads the header only
                pixels = img.size[0] * img.size[1]
                if pixels > MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                img = img.convert("L" if color == "gray" else "RGB")
                if size is not None and img.size != (size[1], size[0]):
                    img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(img, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        claimed = re.search(r"\((\d+) pixels\)", str(e))  # Pillow's own check, in open(): "Image size (N pixels)"
        many = f"{pixels or int(claimed[1]):,} pixels" if pixels or claimed else "too many pixels"
        _fail("E502", f"image '{shown}' has {many}, more than the {MAX_PIXELS:,} trainc decodes", source.span,
              help="shrink it (images(..., size = [H, W]) resizes only after decoding), or remove it")
    except Exception as e:  # noqa: BLE001 - the boundary with Pillow: whatever it raises is a bad file
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
    classes = [d for d in _visible(root, source) if d.is_dir()]
    if not classes:
        _fail("E502", f"image folder '{source.path}' has no sub-folders; expected one sub-folder of images per class",
              source.span, help=f"e.g. {source.path}/cat/1.png, {source.path}/dog/1.png")
    images, labels = [], []
    first: tuple[str, tuple[int, ...]] | None = None  # the first image read and its size, for messages
    for folder in classes:
        files = [f for f in _visible(folder, source) if f.is_file() and f.suffix.lower() in EXTENSIONS]
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
