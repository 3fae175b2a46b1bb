"""Augmentations: `data { augment = [flip, crop(padding = 1), rotate(10)] }`.

Each entry's `input` says what a model input must be for it (checked by `check`, E403):
`image` an f32 input of shape [C, H, W], `series` an f32 input of shape [T, F], `tokens` an i32
input (token ids), `numbers` any f32 input. The numpy implementation of each entry lives in
`runtime/augment.py`, keyed by the same name.
"""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Bool, registries

Probability = Float(0.0, 1.0)
Amount = Float(0.0, 1.0, max_open=True)

# ---- images: [C, H, W] -------------------------------------------------------------------------


@AUGMENTATIONS.register(input="image")
def flip(horizontal: Bool = True, vertical: Bool = False, p: Probability = 0.5):
    """Mirror each image left-right (`horizontal`) and/or upside down (`vertical`), each with probability `p`."""


@AUGMENTATIONS.register(input="image")
def crop(padding: Int(min=0) = 1):
    """Pad each image with `padding` zeros on every side, then crop a random window of the original size
    (torchvision's RandomCrop): a shift by whole pixels, up to `padding` along each axis."""


@AUGMENTATIONS.register(input="image")
def rotate(degrees: Float(0.0, 180.0) = 10.0):
    """Rotate each image about its centre by an angle drawn uniformly in [-degrees, degrees] (bilinear, zero fill)."""


@AUGMENTATIONS.register(input="image")
def translate(pixels: NonNegative = 1.0):
    """Shift each image by dy, dx drawn uniformly in [-pixels, pixels] (sub-pixel, bilinear, zero fill)."""


@AUGMENTATIONS.register(input="image")
def brightness(amount: Amount = 0.1):
    """Multiply each image by a factor drawn uniformly in [1 - amount, 1 + amount]."""


@AUGMENTATIONS.register(input="image")
def contrast(amount: Amount = 0.1):
    """Scale each image's deviations from its own mean by a factor drawn uniformly in [1 - amount, 1 + amount]."""


@AUGMENTATIONS.register(input="numbers")
def noise(std: NonNegative = 0.05):
    """Add gaussian noise of standard deviation `std` (in the data's units) to every value."""


# ---- time series: [T, F] -----------------------------------------------------------------------


@AUGMENTATIONS.register(input="series")
def jitter(std: NonNegative):
    """Add gaussian noise of standard deviation `std` (in the series' units) to every step of every feature."""


@AUGMENTATIONS.register(input="series")
def scale(std: NonNegative = 0.1):
    """Multiply each window by one factor drawn from a normal distribution N(1, std^2)."""


@AUGMENTATIONS.register(input="series")
def time_warp(strength: NonNegative = 0.2, knots: Int(min=1) = 4):
    """Resample each window along a randomly sped-up and slowed-down time axis: the speed is exp(N(0, strength^2))
    at `knots` + 2 evenly spaced points, linear between them; the warped window keeps its first and last step."""


# ---- token ids: i32 -----------------------------------------------------------------------------


@AUGMENTATIONS.register(input="tokens")
def token_dropout(p: Probability = 0.1, token: Int(min=0) = 0):
    """Replace each token id, with probability `p`, by the id `token`."""


@AUGMENTATIONS.register(input="tokens")
def token_swap(p: Probability = 0.1):
    """Going left to right, each token but the last trades places with the next one with probability `p`."""
