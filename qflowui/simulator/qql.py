"""A small QQL subset for the simulator's `query` parameter.

Supported: `field: value` terms, values bare (one or more words), "double-quoted" or
`backticked` (exact, case-sensitive); AND, OR, NOT (upper case) and parentheses. For example
`status: Success`, `status: "Timed Out"`, `(status: Success OR status: Failed) AND source: UI`.
Ranges and comparison operators are not supported: they raise QQLError, as does an unknown field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Record = Mapping[str, Any]
Predicate = Callable[[Record], bool]
# field name -> (getter, mode) where mode is "eq" (case-insensitive equality) or "contains".
FieldSpec = Mapping[str, tuple[Callable[[Record], Any], str]]

# Range brackets and comparison operators are left out on purpose: they fail to tokenize.
_TOKEN = re.compile(r'\s*(?:(\()|(\))|"((?:[^"\\]|\\.)*)"|`([^`]*)`|(:)|([^\s():"`\[\]<>]+))')
_ESCAPE = re.compile(r"\\(.)")
_KEYWORDS = {"AND", "OR", "NOT"}


class QQLError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise QQLError(f"cannot parse query near {text[pos : pos + 20]!r}")
        pos = match.end()
        lparen, rparen, dquoted, bquoted, colon, word = match.groups()
        if lparen:
            tokens.append(("(", lparen))
        elif rparen:
            tokens.append((")", rparen))
        elif dquoted is not None:
            tokens.append(("quoted", _ESCAPE.sub(r"\1", dquoted)))
        elif bquoted is not None:
            tokens.append(("exact", bquoted))
        elif colon:
            tokens.append((":", colon))
        elif word in _KEYWORDS:
            tokens.append((word, word))
        else:
            tokens.append(("word", word))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], fields: FieldSpec) -> None:
        self.tokens = tokens
        self.pos = 0
        self.fields = fields

    def peek(self) -> str | None:
        return self.tokens[self.pos][0] if self.pos < len(self.tokens) else None

    def take(self, kind: str) -> str:
        if self.peek() != kind:
            found = self.tokens[self.pos][1] if self.pos < len(self.tokens) else "end of query"
            raise QQLError(f"expected {kind!r} but found {found!r}")
        value = self.tokens[self.pos][1]
        self.pos += 1
        return value

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.pos != len(self.tokens):
            raise QQLError(f"unexpected {self.tokens[self.pos][1]!r}")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == "OR":
            self.take("OR")
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.peek() == "AND":
            self.take("AND")
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def not_expr(self) -> Predicate:
        if self.peek() == "NOT":
            self.take("NOT")
            inner = self.not_expr()
            return lambda r: not inner(r)
        if self.peek() == "(":
            self.take("(")
            inner = self.or_expr()
            self.take(")")
            return inner
        return self.term()

    def term(self) -> Predicate:
        field = self.take("word")
        if field not in self.fields:
            raise QQLError(f"unknown field {field!r}; known: {', '.join(sorted(self.fields))}")
        self.take(":")
        kind = self.peek()
        if kind in ("quoted", "exact"):
            value = self.take(kind)
        elif kind == "word":
            words = []
            while self.peek() == "word":
                words.append(self.take("word"))
            value = " ".join(words)
        else:
            raise QQLError(f"missing value for {field!r}")
        getter, mode = self.fields[field]
        return _matcher(getter, mode, value, exact=kind == "exact")


def _matcher(getter: Callable[[Record], Any], mode: str, value: str, exact: bool) -> Predicate:
    wanted = value if exact else value.casefold()

    def one(candidate: Any) -> bool:
        if candidate is None:
            return False
        text = str(candidate) if exact else str(candidate).casefold()
        return wanted in text if mode == "contains" and not exact else text == wanted

    def predicate(record: Record) -> bool:
        got = getter(record)
        if isinstance(got, list | tuple):
            return any(one(item) for item in got)
        return one(got)

    return predicate


def compile_query(text: str | None, fields: FieldSpec) -> Predicate | None:
    """A predicate over records, or None for an empty query. Raises QQLError."""
    if text is None or not text.strip():
        return None
    return _Parser(_tokenize(text), fields).parse()
