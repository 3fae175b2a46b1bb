"""Completion comes from the same schema as lint (catalog KEY_VALUES): every word the language server
offers after `key = ` lints clean when inserted in place, and lint rejects what it does not offer."""

from __future__ import annotations

import re

import pytest
from helpers import DIGITS, REPO
from lsprotocol import types
from trainc.compiler import catalog as C
from trainc.compiler import lint

from trainc import lsp

REGRESSION = REPO / "specs" / "linear_regression.train"
BASES = {  # a key -> the valid specs its words go into; each word must lint clean in one of them
    ("data", "target_normalize"): (REGRESSION,),
    ("data", "task"): (DIGITS, REGRESSION),
}
WORD_KEYS = [k for k, v in C.KEY_VALUES.items() if isinstance(v, (C.Choice, C.Bool_))]


def with_key(text: str, section: str, key: str) -> tuple[str, types.Position]:
    """`text` with `key = ` as the first line of `section { ... }` (any earlier setting of it removed), and
    the position after it."""
    text = re.sub(rf"^\s*{key}\s*=.*\n", "", text, flags=re.M)
    head = re.search(rf"^{section} \{{", text, re.M)
    assert head, f"no {section} section"
    before = text[:head.end()] + f"\n  {key} = "
    line = before.count("\n")
    return before + "\n" + text[head.end():], types.Position(line=line, character=len(before) - before.rfind("\n") - 1)


def insert(text: str, at: types.Position, word: str) -> str:
    lines = text.split("\n")
    lines[at.line] = lines[at.line][:at.character] + word + lines[at.line][at.character:]
    return "\n".join(lines)


@pytest.mark.parametrize("where", WORD_KEYS, ids=".".join)
def test_every_completed_word_lints_clean(where):
    section, key = where
    errors: dict[str, list] = {}  # word -> its errors in each base spec
    for base in BASES.get(where, (DIGITS,)):
        text, at = with_key(base.read_text(), section, key)
        words = [i.label for i in lsp.completions(text, at)]
        assert words, f"nothing completes `{key} = `"
        for word in words:
            found = [(d.code, d.message) for d in lint(insert(text, at, word), str(base)) if d.is_error]
            errors.setdefault(word, []).append(found)
    rejected = {w: why for w, why in errors.items() if all(why)}
    assert not rejected, f"completed for {section}.{key}, but lint rejects them: {rejected}"


@pytest.mark.parametrize("where", WORD_KEYS, ids=".".join)
def test_lint_offers_the_same_words(where):
    section, key = where
    text, at = with_key(DIGITS.read_text(), section, key)
    [d] = [d for d in lint(insert(text, at, "zzzz"), str(DIGITS)) if d.code in ("E303", "E305")]
    words = C.KEY_VALUES[where].options if isinstance(C.KEY_VALUES[where], C.Choice) else ("true", "false")
    if d.code == "E305":
        assert d.help == "expected one of: " + ", ".join(sorted(words)), d.help
    else:  # a boolean: `true or false`
        assert "true or false" in d.message, d.message


def test_precision_completes_precisions_not_input_types():
    text, at = with_key(DIGITS.read_text(), "run", "precision")
    assert {i.label for i in lsp.completions(text, at)} == {"f32", "f16", "bf16"}
