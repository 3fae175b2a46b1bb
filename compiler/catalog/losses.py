"""Losses: every loss takes (prediction, target); `task` tells which kind of target it expects.

Extras read by the checks: `binary` (one logit per example), `embedding` (the prediction is an
embedding compared between the examples of a batch, not a score per class: accuracy-style metrics
mean nothing on it), `distribution` (regression targets that are a probability distribution per
example, so they must not be standardised), `logits` (the prediction is raw scores: an activation
before it is a mistake), `softmax` (a softmax over the outputs: it needs at least 2 of them),
`outputs` (how many outputs against the classes: "per_class", "per_class_or_one" or "one"),
`pairwise` (compares the examples of a batch with each other: evaluation gives it the batch's mask).
"""

from ..ir import Task
from .base import *  # the schema vocabulary: Int, Float, Choice, registries

# ---- losses ------------------------------------------------------------------------------------
# Every loss takes (prediction, target); `task` tells which kind of target it expects.


@LOSSES.register(task=Task.regression)
def mse(pred: Value(), target: Value()):
    """Mean squared error: mean((pred - target)^2)."""


@LOSSES.register(task=Task.regression)
def mae(pred: Value(), target: Value()):
    """Mean absolute error: mean(|pred - target|)."""


@LOSSES.register(task=Task.regression)
def huber(pred: Value(), target: Value(), delta: Positive = 1.0):
    """Huber loss: squared below `delta`, linear above; robust to outliers."""


# PyTorch's BCEWithLogitsLoss(pos_weight): log σ(x) = -softplus(-x), log(1 - σ(x)) = -softplus(x).
@LOSSES.register(task=Task.classification, binary=True, logits=True, outputs="one")
def bce(pred: Value(), target: Value(), pos_weight: Positive = 1.0):
    """Binary cross-entropy on one logit x, y in {0, 1}: -[pos_weight*y*log σ(x) + (1-y)*log(1-σ(x))], stable."""


# `weights`: one per class, or `balanced` = n / (K * count_k) over the training labels (scikit-learn).
# Each example's loss is multiplied by its true class's weight (with smoothing too) and the batch mean
# still divides by the batch size B: Keras' class_weight. PyTorch's CrossEntropyLoss(weight) has the
# same per-example values without smoothing, but its mean divides by sum(w_y).
@LOSSES.register(task=Task.classification, logits=True, softmax=True, outputs="per_class")
def cross_entropy(pred: Value(), target: Value(), smoothing: Fraction = 0.0,
                  weights: NumList(words=("balanced",)) = None):
    """Softmax cross-entropy: -w_y*sum_k t_k*log softmax(x)_k, t = (1-s)*onehot(y) + s/K; mean over B (Keras)."""


# dense(1) + hinge + l2 is a linear soft-margin SVM; the K-logit form is PyTorch's MultiMarginLoss (p = 1).
@LOSSES.register(task=Task.classification, logits=True, outputs="per_class_or_one")
def hinge(pred: Value(), target: Value(), margin: Positive = 1.0):
    """Hinge (SVM): one logit, y {0,1} -> s = ±1: max(0, m - s*x); K logits: sum_{j!=y} max(0, m - x_y + x_j) / K."""


# PyTorch's KLDivLoss(log_softmax(x), t, log_target=False) summed over the k outputs. The targets are
# k regression columns, each row a probability distribution: use `target_normalize = none`.
@LOSSES.register(task=Task.regression, distribution=True, logits=True, softmax=True)
def kl_div(pred: Value(), target: Value()):
    """KL(t || softmax(x)) = sum_k t_k*(log t_k - log_softmax(x)_k), 0*log 0 = 0; t: a distribution per row."""


# Lin et al. 2017 (RetinaNet), the softmax form without the alpha weights: p_t = softmax(x)_y. Down-weights
# the examples already classified well; gamma = 0 is cross_entropy.
@LOSSES.register(task=Task.classification, logits=True, softmax=True, outputs="per_class")
def focal(pred: Value(), target: Value(), gamma: NonNegative = 2.0):
    """Focal loss on K logits: -(1 - p_t)^gamma * log p_t, p_t = softmax(x)_y; mean over B; gamma = 0: cross_entropy."""


# Embedding losses: `pred` is an embedding, d the Euclidean distance between two examples of a batch
# (sqrt(|a - b|^2 + 1e-12), finite gradients at 0). Evaluation's padding rows are masked out.
# triplet: the hardest positive is the farthest other example of the anchor's class, the hardest
# negative the nearest example of another class; an anchor lacking either counts 0.
@LOSSES.register(task=Task.classification, embedding=True, pairwise=True)
def triplet(pred: Value(), target: Value(), margin: Positive = 1.0):
    """Batch-hard triplet (Hermans 2017): per anchor max(0, max_pos d(a,p) - min_neg d(a,n) + margin), else 0."""


# contrastive: Hadsell, Chopra and LeCun 2006 sum (1/2) d^2 and (1/2) max(0, margin - d)^2 over pairs;
# here the 1/2 is dropped and each example averages its pairs with the other examples of the batch.
@LOSSES.register(task=Task.classification, embedding=True, pairwise=True)
def contrastive(pred: Value(), target: Value(), margin: Positive = 1.0):
    """Contrastive (Hadsell 2006, no 1/2): mean over j != i of d^2 if same class, else max(0, margin - d)^2."""
