"""The SCIM filter and PATCH path grammar, parsed to a tree (RFC7644 §3.4.2.2, §3.5.2).

The parser is a hand-written recursive descent with hard limits on length, depth and
node count, so hostile input fails fast with `invalidFilter` instead of exhausting
the stack.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from scimsync.errors import BadRequest, invalid_filter, invalid_path
from scimsync.limits import fits_int64

MAX_FILTER_LENGTH = 8192
MAX_DEPTH = 32
MAX_NODES = 512
MAX_NUMBER_LENGTH = 32  # digits, sign, point and exponent of one literal

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})


@dataclass(frozen=True)
class AttrPath:
    """`[urn:]attr[.sub]` as written; resolution against a schema happens later."""

    urn: str | None
    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        base = self.attr if self.sub is None else f"{self.attr}.{self.sub}"
        return f"{self.urn}:{base}" if self.urn else base

    @property
    def full_attr(self) -> str:
        return f"{self.urn}:{self.attr}" if self.urn else self.attr


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class ValuePath:
    """`attr[filter]`: the filter applies to each value of the multi-valued `attr`."""

    path: AttrPath
    filter: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH target: `attrPath` or `valuePath [.subAttr]` (RFC7644 §3.5.2)."""

    path: AttrPath
    filter: Filter | None = None
    sub: str | None = None  # only with a filter: emails[type eq "work"].value


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lparen>\() | (?P<rparen>\)) | (?P<lbrack>\[) | (?P<rbrack>\]) |
      (?P<string>"(?:[^"\\]|\\.)*") |
      (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![\w:.$-])) |
      (?P<word>[A-Za-z_$][\w:.$-]*) |
      (?P<subattr>\.[A-Za-z_$][\w$-]*)
    )""",
    re.VERBOSE,
)


class _Parser:
    def __init__(self, text: str, path_mode: bool = False):
        self.text = text
        self.pos = 0
        self.nodes = 0
        self.path_mode = path_mode
        self._error = invalid_path if path_mode else invalid_filter
        self.tokens: list[tuple[str, str]] = []
        self._tokenize()
        self.i = 0

    def fail(self, msg: str) -> BadRequest:
        return self._error(msg)

    def _tokenize(self) -> None:
        text, pos, n = self.text, 0, len(self.text)
        while pos < n:
            if text[pos].isspace():
                pos += 1
                continue
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise self.fail(f"unexpected character at position {pos}: {text[pos:pos + 10]!r}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            if len(self.tokens) > MAX_NODES * 4:
                raise self.fail("filter has too many terms")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end of filter")
        self.i += 1
        return tok

    def expect(self, kind: str) -> str:
        tok = self.take()
        if tok[0] != kind:
            raise self.fail(f"expected {kind!s} but found {tok[1]!r}")
        return tok[1]

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.fail("filter has too many terms")

    # filter = or-expr
    def parse_or(self, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise self.fail("filter is nested too deeply")
        left = self.parse_and(depth)
        while self.keyword("or"):
            self.count()
            left = Or(left, self.parse_and(depth))
        return left

    def parse_and(self, depth: int) -> Filter:
        left = self.parse_atom(depth)
        while self.keyword("and"):
            self.count()
            left = And(left, self.parse_atom(depth))
        return left

    def parse_atom(self, depth: int, in_brackets: bool = False) -> Filter:
        self.count()
        tok = self.peek()
        if tok is None:
            raise self.fail("unexpected end of filter")
        if tok[0] == "lparen":
            self.i += 1
            inner = self.parse_or(depth + 1)
            self.expect("rparen")
            return inner
        if tok[0] == "word" and tok[1].lower() == "not":
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if nxt is not None and nxt[0] == "lparen":
                self.i += 2
                inner = self.parse_or(depth + 1)
                self.expect("rparen")
                return Not(inner)
        path = self.parse_attr_path()
        nxt = self.peek()
        if nxt is not None and nxt[0] == "lbrack":
            if in_brackets:
                raise self.fail("value filters cannot nest")
            if path.sub is not None:
                raise self.fail(f"a value filter applies to an attribute, not {path}")
            self.i += 1
            inner = self.parse_value_filter(depth + 1)
            self.expect("rbrack")
            return ValuePath(path, inner)
        return self.parse_comparison(path)

    def parse_value_filter(self, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise self.fail("filter is nested too deeply")
        left = self.parse_value_and(depth)
        while self.keyword("or"):
            self.count()
            left = Or(left, self.parse_value_and(depth))
        return left

    def parse_value_and(self, depth: int) -> Filter:
        left = self.parse_value_atom(depth)
        while self.keyword("and"):
            self.count()
            left = And(left, self.parse_value_atom(depth))
        return left

    def parse_value_atom(self, depth: int) -> Filter:
        tok = self.peek()
        if tok is not None and tok[0] == "lparen":
            self.count()
            self.i += 1
            inner = self.parse_value_filter(depth + 1)
            self.expect("rparen")
            return inner
        if tok is not None and tok[0] == "word" and tok[1].lower() == "not":
            nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else None
            if nxt is not None and nxt[0] == "lparen":
                self.count()
                self.i += 2
                inner = self.parse_value_filter(depth + 1)
                self.expect("rparen")
                return Not(inner)
        return self.parse_atom(depth, in_brackets=True)

    def parse_attr_path(self) -> AttrPath:
        kind, word = self.take()
        if kind != "word":
            raise self.fail(f"expected an attribute name but found {word!r}")
        return parse_attr_path(word, self.fail)

    def parse_comparison(self, path: AttrPath) -> Filter:
        kind, word = self.take()
        op = word.lower()
        if kind != "word" or (op not in COMPARE_OPS and op != "pr"):
            raise self.fail(f"expected an operator after {path} but found {word!r}")
        if op == "pr":
            return Present(path)
        kind, raw = self.take()
        value: Any
        if kind == "string":
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise self.fail(f"invalid string literal {raw}") from exc
        elif kind == "number":
            value = _number(raw, self.fail)
        elif kind == "word" and raw.lower() in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[raw.lower()]
        else:
            raise self.fail(f"expected a value after {path} {op} but found {raw!r}")
        return Compare(path, op, value)


def _number(raw: str, fail: Any) -> int | float:
    """A number literal, refused unless it is a 64-bit integer or a finite float."""
    if len(raw) > MAX_NUMBER_LENGTH:
        raise fail(f"number literal {raw[:20]}... is too long")
    value = json.loads(raw)
    if (isinstance(value, int) and not fits_int64(value)) or \
            (isinstance(value, float) and not math.isfinite(value)):
        raise fail(f"number {raw} is out of range")
    return value  # type: ignore[no-any-return]


_ATTRNAME = re.compile(r"^[A-Za-z_$][\w$-]*$")


def parse_attr_path(word: str, fail: Any = invalid_filter) -> AttrPath:
    """Split `urn:...:attr.sub` into its parts (RFC7644 §3.10)."""
    urn: str | None = None
    rest = word
    if ":" in word:
        urn, _, rest = word.rpartition(":")
        # A dotted URN version (`2.0`) sits before the last colon; a sub-attribute after it.
        if not urn:
            raise fail(f"invalid attribute path {word!r}")
    parts = rest.split(".")
    if len(parts) > 2 or not all(_ATTRNAME.match(p) for p in parts):
        raise fail(f"invalid attribute path {word!r}")
    return AttrPath(urn, parts[0], parts[1] if len(parts) == 2 else None)


def parse_filter(text: str) -> Filter:
    """Parse a filter expression (RFC7644 §3.4.2.2)."""
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_filter(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise invalid_filter("filter is empty")
    p = _Parser(text)
    result = p.parse_or(0)
    if p.peek() is not None:
        raise invalid_filter(f"unexpected {p.peek()[1]!r} in filter")  # type: ignore[index]
    return result


def parse_patch_path(text: str) -> PatchPath:
    """Parse a PATCH `path` (RFC7644 §3.5.2): attrPath or valuePath[.subAttr]."""
    if len(text) > MAX_FILTER_LENGTH:
        raise invalid_path(f"path is longer than {MAX_FILTER_LENGTH} characters")
    if not text.strip():
        raise invalid_path("path is empty")
    p = _Parser(text, path_mode=True)
    path = p.parse_attr_path()
    if p.peek() is None:
        return PatchPath(path)
    if path.sub is not None:
        raise invalid_path(f"a value filter applies to an attribute, not {path}")
    p.expect("lbrack")
    flt = p.parse_value_filter(1)
    p.expect("rbrack")
    sub: str | None = None
    tok = p.peek()
    if tok is not None:
        if tok[0] != "subattr":
            raise invalid_path(f"unexpected {tok[1]!r} in path")
        p.i += 1
        sub = tok[1][1:]
    if p.peek() is not None:
        raise invalid_path(f"unexpected {p.peek()[1]!r} in path")  # type: ignore[index]
    return PatchPath(path, flt, sub)
