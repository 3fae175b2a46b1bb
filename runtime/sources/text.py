"""`text(path, level, window, vocab_from)`: next-token prediction over a UTF-8 text file.

The text is split into tokens: characters (`level = char`), or words and punctuation marks
(`level = word`: runs of letters, digits and `_`, and each other non-space character; whitespace
separates tokens and is dropped). Example i is `x = ids[i : i + window]` (token ids, for
`input x: i32[window]`) and `y = ids[i + window]`, the next token, as a class: the class index is
the token id. N tokens give N - window examples, marked `ordered`, so the split is chronological:
the beginning of the text trains, its end validates.

The vocabulary. The reader cannot see `split`, so `vocab_from` (default 0.8, the usual
`split.train`) says which part of the text is the training part: the tokens of the first
`round(vocab_from * (N - window))` examples (their windows and targets). Those tokens, sorted
(characters by code point, words as strings), get ids 0, 1, ...; any later token never seen there
is mapped to one extra id `<unk>`, the last, added only when needed. So no token of the validation
text leaks into the vocabulary when `vocab_from` equals `split.train`, and a token first seen in
validation is predicted as `<unk>`, as usual for held-out text.

The vocabulary in id order is on the returned table as `raw.vocab` (a tuple of strings).
"""

from __future__ import annotations

import math
import pathlib
import re

import numpy as np

from ...compiler import ir
from ..tables import _fail, _Raw
from ..tables import read_text as read_file

UNK = "<unk>"
_WORD = re.compile(r"\w+|[^\w\s]")


def tokenize(text: str, level: str) -> list[str]:
    """Characters, or words and punctuation marks."""
    return list(text) if level == "char" else _WORD.findall(text)


def build_vocab(tokens: list[str], window: int, vocab_from: float) -> tuple[tuple[str, ...], np.ndarray]:
    """The vocabulary (in id order) and every token's id; see the module docstring."""
    n = len(tokens) - window
    seen_end = min(math.floor(vocab_from * n + 0.5 + 1e-9) + window, len(tokens))
    vocab = sorted(set(tokens[:seen_end]))
    index = {t: i for i, t in enumerate(vocab)}
    unk = len(vocab)
    ids = np.array([index.get(t, unk) for t in tokens], dtype=np.int64)
    if (ids == unk).any():
        vocab.append(UNK)
    return tuple(vocab), ids


def read_text(source: ir.Source, base_dir: pathlib.Path, task: ir.Task) -> _Raw:
    args = ir.argdict(source.args)
    level, window, vocab_from = args.get("level", "char"), args.get("window", 32), args.get("vocab_from", 0.8)
    every = args.get("targets", "next") == "every"  # the next token at every position, not only after the window
    if task is not ir.Task.classification:
        _fail("E506", f"text source '{source.path}' gives classification targets (the next token's id), but the "
              "loss is for regression", source.span, help="use cross_entropy(logits, target)")
    text = read_file(source, base_dir)

    tokens = tokenize(text, level)
    n = len(tokens) - window
    if n < 2:
        _fail("E505", f"'{source.path}' has {len(tokens)} {level} tokens, too few for examples of window {window} "
              f"(it needs at least {window + 2})", source.span, help="use a smaller window or a longer text")
    vocab, ids = build_vocab(tokens, window, vocab_from)
    starts = np.arange(n)
    x = ids[starts[:, None] + np.arange(window)[None, :]].astype(np.float64)  # [n, window]
    y = ids[starts[:, None] + 1 + np.arange(window)[None, :]] if every else ids[window:]  # class ids: token ids
    y = y.astype(np.int64)
    raw = _Raw(x=x, y=y, feature_names=None, source=source, ordered=True, classes=tuple(vocab))
    raw.vocab = vocab
    return raw
