"""The augmentations of `data.augment`, as pure numpy functions over a batch of examples.

Each is `fn(x: [n, ...] float32, rng: np.random.Generator, **args) -> a new array of x's shape`,
named and parameterised as its schema in `compiler/catalog/augment.py`. They act on the training
inputs before normalisation, so their amounts are in the data's units (the images source gives
pixels in [0, 1]). The trainer calls `epoch_inputs` at the start of every epoch and copies the
result into the device buffer the jitted step gathers its batches from; validation and test
inputs are never augmented.

Geometry: images are [C, H, W] with rows going down; positive angles rotate counter-clockwise
as displayed (as np.rot90 and torchvision); pixels that come from outside the image are 0.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..compiler import ir
from ..compiler.catalog.base import AUGMENTATIONS

AUGMENT: dict[str, Callable] = AUGMENTATIONS.table()  # registry key -> implementation: the registry's own table


def _register(fn: Callable) -> Callable:
    """Register `fn` as the augmentation of its name; the module's name for it takes the catalogue's defaults
    (a spec's call always binds every argument, a direct call need not)."""
    AUGMENTATIONS.implement(fn.__name__)(fn)
    return AUGMENTATIONS.defaulted(fn.__name__, fn)


def _per_example(values: np.ndarray, ndim: int) -> np.ndarray:
    """[n] -> [n, 1, 1, ...], to broadcast one value per example over an example's axes."""
    return values.reshape((-1,) + (1,) * (ndim - 1))


def augment(x: np.ndarray, calls: tuple[ir.Augment, ...], rng: np.random.Generator) -> np.ndarray:
    """Every call in order, each drawing from `rng`; returns float32 of x's shape."""
    out = np.asarray(x, dtype=np.float32)
    for call in calls:
        out = AUGMENTATIONS.impl(call.kind)(out, rng, **dict(call.args)).astype(np.float32, copy=False)
    return out


def epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch's augmentation: from `run.seed` and the epoch, so the same seed repeats a run
    (a rolled-back epoch gets the same draws again) and every epoch differs."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, int(epoch), 0x61756720]))


def epoch_inputs(x_raw: np.ndarray, normalizer, calls: tuple[ir.Augment, ...], seed: int, epoch: int) -> np.ndarray:
    """One epoch's training inputs: the raw ones augmented, then normalised as the un-augmented split was."""
    return np.ascontiguousarray(normalizer.apply(augment(x_raw, calls, epoch_rng(seed, epoch))))


# ---- images: [n, C, H, W] ----------------------------------------------------------------------


@_register
def flip(x, rng, horizontal, vertical, p):
    out = x.copy()
    if horizontal:
        m = rng.random(len(x)) < p
        out[m] = out[m][..., ::-1]
    if vertical:
        m = rng.random(len(x)) < p
        out[m] = out[m][..., ::-1, :]
    return out


@_register
def crop(x, rng, padding):
    n, c, h, w = x.shape
    if padding == 0:
        return x.copy()
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    top = rng.integers(0, 2 * padding + 1, n)  # the window's corner in the padded image, as RandomCrop
    left = rng.integers(0, 2 * padding + 1, n)
    rows = (top[:, None] + np.arange(h))[:, None, :, None]
    cols = (left[:, None] + np.arange(w))[:, None, None, :]
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]


def bilinear(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """x [n, C, H, W] read at fractional positions rows, cols [n, H, W]; 0 outside the image."""
    n, c, h, w = x.shape
    # a border of zeros, every corner clipped into it (so a corner outside the image reads 0), and the pixels as
    # rows of C values, so one gather reads every channel
    padded = np.pad(x.astype(np.float32, copy=False), ((0, 0), (0, 0), (1, 1), (1, 1)))
    padded = padded.transpose(0, 2, 3, 1).reshape(-1, c)  # [n * (H + 2) * (W + 2), C]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(np.float32)[..., None], (cols - c0).astype(np.float32)[..., None]
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    first = (np.arange(n) * ((h + 2) * (w + 2)))[:, None, None]  # where each image starts
    ra, rb = first + (np.clip(r0, -1, h) + 1) * (w + 2), first + (np.clip(r0 + 1, -1, h) + 1) * (w + 2)
    ca, cb = np.clip(c0, -1, w) + 1, np.clip(c0 + 1, -1, w) + 1
    top = padded[ra + ca] * (1 - fc) + padded[ra + cb] * fc
    bottom = padded[rb + ca] * (1 - fc) + padded[rb + cb] * fc
    return np.ascontiguousarray((top * (1 - fr) + bottom * fr).transpose(0, 3, 1, 2))


def affine(x: np.ndarray, angles: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Each image rotated counter-clockwise by angles[i] degrees about its centre, then shifted by dy[i] rows
    (down) and dx[i] columns (right); bilinear, 0 outside."""
    n, _, h, w = x.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    r, c = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    t = np.deg2rad(angles)[:, None, None]
    u = c[None] - dx[:, None, None] - cx  # right of the centre, in the output before the shift
    v = cy - (r[None] - dy[:, None, None])  # up from the centre
    us, vs = u * np.cos(t) + v * np.sin(t), -u * np.sin(t) + v * np.cos(t)  # the inverse rotation
    return bilinear(x, cy - vs, us + cx)


@_register
def rotate(x, rng, degrees):
    zero = np.zeros(len(x))
    return affine(x, rng.uniform(-degrees, degrees, len(x)), zero, zero)


@_register
def translate(x, rng, pixels):
    dy, dx = rng.uniform(-pixels, pixels, len(x)), rng.uniform(-pixels, pixels, len(x))
    return affine(x, np.zeros(len(x)), dy, dx)


@_register
def brightness(x, rng, amount):
    return x * _per_example(rng.uniform(1 - amount, 1 + amount, len(x)), x.ndim)


@_register
def contrast(x, rng, amount):
    mean = x.mean(axis=tuple(range(1, x.ndim)), keepdims=True)
    return mean + (x - mean) * _per_example(rng.uniform(1 - amount, 1 + amount, len(x)), x.ndim)


@_register
def noise(x, rng, std):
    return x + rng.normal(0.0, std, x.shape)


# ---- time series: [n, T, F] --------------------------------------------------------------------


@_register
def jitter(x, rng, std):
    return x + rng.normal(0.0, std, x.shape)


@_register
def scale(x, rng, std):
    return x * _per_example(rng.normal(1.0, std, len(x)), x.ndim)


@_register
def time_warp(x, rng, strength, knots):
    n, t = x.shape[:2]
    if t < 2:
        return x.copy()
    at = np.linspace(0, t - 1, knots + 2)
    speed = np.exp(rng.normal(0.0, strength, (n, knots + 2)))
    speed = np.stack([np.interp(np.arange(t), at, s) for s in speed])  # [n, T], linear between the knots
    pos = np.concatenate([np.zeros((n, 1)), np.cumsum((speed[:, 1:] + speed[:, :-1]) / 2, axis=1)], axis=1)
    pos = pos * ((t - 1) / pos[:, -1:])  # the warped window starts and ends where the original does
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, t - 2)
    frac = (pos - i0)[:, :, None]
    b = np.arange(n)[:, None]
    return x[b, i0] * (1 - frac) + x[b, i0 + 1] * frac


# ---- token ids: [n, T] -------------------------------------------------------------------------


@_register
def token_dropout(x, rng, p, token):
    return np.where(rng.random(x.shape) < p, np.float32(token), x)


@_register
def token_swap(x, rng, p):
    out = x.copy()
    t = x.shape[-1]
    for i in range(t - 1):  # left to right, so a token can travel several places
        m = rng.random(out.shape[:-1]) < p
        a, b = out[..., i].copy(), out[..., i + 1].copy()
        out[..., i], out[..., i + 1] = np.where(m, b, a), np.where(m, a, b)
    return out

