"""Data sources, stopping rules and regularizers."""

from .base import *  # noqa: F403 - the schema vocabulary: Int, Float, Choice, registries

# ---- data sources ------------------------------------------------------------------------------


@SOURCES.register
def csv(path: String, target: Names(), features: Names() = None):
    """A CSV file with a header row. `target`: the target column(s); `features`: default every other column."""


@SOURCES.register
def npz(path: String, x: String = "x", y: String = "y"):
    """A NumPy .npz archive with a features array and a targets array."""


# ---- stopping rules ----------------------------------------------------------------------------


@STOP_RULES.register
def plateau(monitor: MetricName(), patience: Int(min=1) = 5, min_delta: Delta() = 0.0,
            restore_best: Bool = True, mode: Choice("auto", "min", "max") = "auto"):
    """Early stopping: stop when `monitor` has not improved by `min_delta` (absolute, or `1%` relative) for
    `patience` epochs."""


# ---- divergence guards -------------------------------------------------------------------------


@DIVERGENCE.register
def stop(explode: Float(1.0, min_open=True) = None):
    """Stop when the training loss is not finite, or more than `explode` x its best epoch so far."""


@DIVERGENCE.register
def rollback(lr_factor: Float(0.0, 1.0, min_open=True, max_open=True) = 0.5, retries: Int(min=1) = 3,
             explode: Float(1.0, min_open=True) = None):
    """On divergence, restore the last good epoch (weights and optimizer state), multiply the lr by
    `lr_factor` and go on; stop after `retries` roll-backs."""


# ---- regularizers ------------------------------------------------------------------------------


@REGULARIZERS.register
def elastic_net(alpha: NonNegative, l1_ratio: Float(0.0, 1.0) = 0.5):
    """alpha * (l1_ratio * sum|w| + (1 - l1_ratio) / 2 * sum(w^2)) over weight matrices."""


@SOURCES.register
def series(path: String, column: String, window: Int(min=1) = 32, horizon: Int(min=1) = 1, features: Names() = None):
    """A time-ordered CSV as sliding windows: x = rows [i, i+window) of `features` (default `column`) as
    [window, n_features], y = `column` `horizon` rows after the window. The split keeps time order."""


@SOURCES.register
def text(path: String, level: Choice("char", "word") = "char", window: Int(min=1) = 32,
         vocab_from: Float(0.0, 1.0, min_open=True) = 0.8, targets: Choice("next", "every") = "next"):
    """A UTF-8 text for next-token prediction: x = token ids [i, i+window) as i32[window], y = the next token's id
    (a class); `targets = every`: the next token at every position, y = ids [i+1, i+window+1) (a [T, K] model). `level`: characters, or words and punctuation. The vocabulary is the tokens of the first
    `vocab_from` of the examples (set it to split.train); later unseen tokens become `<unk>`. The split keeps order."""


@SOURCES.register
def images(path: String, color: Choice("gray", "rgb") = "gray", size: NumList() = None):
    """A folder of PNG/JPEG images, one sub-folder per class (the class names are the sub-folder names): x is
    [n, C, H, W] (C = 1 for gray, 3 for rgb), pixel values scaled to [0, 1]. `size = [H, W]` resizes every image
    (bilinear); without it, all images must have one size."""
