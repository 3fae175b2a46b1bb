"""The Lark grammar of .train specs and the parser built from it; nothing else of substance."""

from __future__ import annotations

from pathlib import Path

from lark import Lark, Token

GRAMMAR_PATH = Path(__file__).with_name("train.lark")

_OPEN = {"LPAR": "RPAR", "LSQB": "RSQB", "LBRACE": "RBRACE"}
_CLOSE = set(_OPEN.values())


class NewlinesInBrackets:
    """Post-lexer: newlines separate statements, except inside (...) and [...].

    A stack of open brackets decides: inside `{ ... }` (a section or record body) newlines
    stay separators, inside `( ... )` or `[ ... ]` they are dropped so calls and lists span lines.
    """

    always_accept = ("_NL",)

    def process(self, stream):
        stack: list[str] = []
        for tok in stream:
            if tok.type in _OPEN:
                stack.append(tok.type)
            elif tok.type in _CLOSE and stack:
                stack.pop()
            elif tok.type == "_NL" and stack and stack[-1] != "LBRACE":
                continue
            yield tok


_PARSER: Lark | None = None


def parser() -> Lark:
    """The LALR parser, built once per process (tables cached on disk by Lark)."""
    global _PARSER
    if _PARSER is None:
        _PARSER = Lark(
            GRAMMAR_PATH.read_text(),
            parser="lalr",
            lexer="basic",
            postlex=NewlinesInBrackets(),
            propagate_positions=True,
            maybe_placeholders=True,
            start=["start", "expr"],
            cache=True,
        )
    return _PARSER


__all__ = ["parser", "Token", "GRAMMAR_PATH"]
