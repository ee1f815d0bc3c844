"""A small, safe expression language for attribute mappings (no eval).

    expr    := literal | path | NAME "(" [expr ("," expr)*] ")"
    literal := "string" | number | true | false | null
    path    := an attribute path: userName, name.givenName, emails,
               urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department

Functions: coalesce(a, b, ...), default(a, b), lower(s), upper(s), concat(a, ...),
join(separator, list), split(s, separator), replace(s, old, new),
if("<SCIM filter>", then, else). A path to a multi-valued attribute yields its
values (the `value` of each complex value); a missing attribute yields null, and
functions pass null through, so mappings never fail on absent data.

Every value a function makes is bounded before it is made: text of at most MAX_TEXT
characters, lists of at most MAX_ITEMS items and MAX_TEXT characters in all, so no
expression of MAX_LENGTH characters can ask for more memory than that, however it
nests. `split` takes a non-empty string literal as its separator.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scimsync.errors import UsageError
from scimsync.protocol.evaluate import matches
from scimsync.protocol.filter import Filter, parse_attr_path, parse_filter
from scimsync.protocol.resources import USER
from scimsync.protocol.schema import resolve

MAX_LENGTH = 2000
MAX_DEPTH = 16
MAX_TEXT = 64 * 1024  # characters in a text a function returns, or in a list in all
MAX_ITEMS = 1000  # items in a list a function returns
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?\d+(?:\.\d+)?)|'
                    r'(?P<name>[A-Za-z_$][\w:.$-]*)|(?P<punct>[(),]))')


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Path:
    text: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    condition: Filter | None = None  # if(): the parsed filter


Expr = Lit | Path | Call
Doc = dict[str, Any]


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, list):
        v = v[0] if v else None
        return _text(v)
    return v if isinstance(v, str) else json.dumps(v)


class ExpressionLimit(UsageError):
    """A function would make a value over MAX_TEXT or MAX_ITEMS."""


def _bounded(fn: str, length: int, items: int = 1) -> None:
    """Refuse a value before it is made, from the size it would have."""
    if length > MAX_TEXT:
        raise ExpressionLimit(f"{fn}() would make {length} characters; a value holds at "
                              f"most {MAX_TEXT}")
    if items > MAX_ITEMS:
        raise ExpressionLimit(f"{fn}() would make {items} items; a list holds at most "
                              f"{MAX_ITEMS}")


def _concat(*xs: Any) -> Any:
    parts = [_text(x) for x in xs]
    if all(p is None for p in parts):
        return None
    _bounded("concat", sum(len(p) for p in parts if p is not None))
    return "".join(p or "" for p in parts)


def _join(sep: Any, xs: Any) -> Any:
    if xs is None:
        return None
    items = xs if isinstance(xs, list) else [xs]
    texts = [t for t in (_text(x) for x in items) if t is not None]
    glue = str(sep)
    _bounded("join", sum(len(t) for t in texts) + len(glue) * max(len(texts) - 1, 0))
    return glue.join(texts)


def _split(s: Any, sep: Any) -> Any:
    t = _text(s)
    if t is None:
        return None
    glue = str(sep)
    if not glue:
        raise UsageError("split needs a separator that is not empty")
    _bounded("split", len(t), t.count(glue) + 1)
    return t.split(glue)


def _replace(s: Any, old: Any, new: Any) -> Any:
    t = _text(s)
    if t is None:
        return None
    old, new = str(old), str(new)
    # An empty `old` matches between every two characters and at both ends.
    count = t.count(old) if old else len(t) + 1
    _bounded("replace", len(t) + count * (len(new) - len(old)))
    return t.replace(old, new)


def _lower(s: Any) -> Any:
    t = _text(s)
    if t is None:
        return None
    out = t.lower()  # at most a few times longer (case mappings), and checked after
    _bounded("lower", len(out))
    return out


def _upper(s: Any) -> Any:
    t = _text(s)
    if t is None:
        return None
    out = t.upper()
    _bounded("upper", len(out))
    return out


def _coalesce(*xs: Any) -> Any:
    return next((x for x in xs if x not in (None, "", [])), None)


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "coalesce": (_coalesce, 1, 16), "default": (_coalesce, 2, 2),
    "lower": (_lower, 1, 1), "upper": (_upper, 1, 1), "concat": (_concat, 1, 16),
    "join": (_join, 2, 2), "split": (_split, 2, 2), "replace": (_replace, 3, 3),
}


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_LENGTH:
            raise UsageError(f"expression is longer than {MAX_LENGTH} characters")
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos].isspace():
                pos += 1
                continue
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise UsageError(f"unexpected character in expression at {pos}: {text!r}")
            kind = m.lastgroup
            assert kind is not None
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise UsageError("unexpected end of expression")
        self.i += 1
        return tok

    def expr(self, depth: int = 0) -> Expr:
        if depth > MAX_DEPTH:
            raise UsageError("expression is nested too deeply")
        kind, text = self.take()
        if kind == "str":
            return Lit(json.loads(text))
        if kind == "num":
            return Lit(json.loads(text))
        if kind != "name":
            raise UsageError(f"unexpected {text!r} in expression")
        if text in ("true", "false", "null"):
            return Lit(json.loads(text))
        nxt = self.peek()
        if nxt is None or nxt != ("punct", "("):
            rp = resolve(USER, text)
            if rp is None and not (":" in text and USER.extension(text)):
                raise UsageError(f"unknown attribute {text!r} in expression")
            parse_attr_path(text, lambda m: UsageError(m))
            return Path(text)
        self.take()
        args: list[Expr] = []
        if self.peek() != ("punct", ")"):
            while True:
                args.append(self.expr(depth + 1))
                if self.peek() == ("punct", ","):
                    self.take()
                    continue
                break
        if self.take() != ("punct", ")"):
            raise UsageError(f"expected ) after the arguments of {text}")
        name = text.lower()
        if name == "if":
            if len(args) != 3 or not isinstance(args[0], Lit) or not isinstance(
                    args[0].value, str):
                raise UsageError('if takes ("<SCIM filter>", then, else)')
            try:
                condition = parse_filter(args[0].value)
            except Exception as exc:
                raise UsageError(f"if: invalid filter {args[0].value!r}") from exc
            return Call(name, tuple(args), condition)
        if name == "split" and len(args) == 2 and not (
                isinstance(args[1], Lit) and isinstance(args[1].value, str) and args[1].value):
            raise UsageError('split takes a separator that is a non-empty string, such as '
                             'split(userName, "@")')
        if name not in FUNCTIONS:
            raise UsageError(f"unknown function {text!r}; known: if, "
                             + ", ".join(sorted(FUNCTIONS)))
        _, low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise UsageError(f"{name} takes {low} to {high} arguments")
        return Call(name, tuple(args))


def parse(text: str) -> Expr:
    """Parse an expression; a readable UsageError if it is not one."""
    p = _Parser(text)
    out = p.expr()
    if p.peek() is not None:
        raise UsageError(f"unexpected {p.peek()[1]!r} after the expression")  # type: ignore[index]
    return out


def _path_value(doc: Doc, text: str) -> Any:
    rp = resolve(USER, text)
    if rp is None:
        return doc.get(text)
    container: Any = doc.get(rp.schema.id, {}) if rp.extension and rp.schema else doc
    value = container.get(rp.attr.name) if isinstance(container, dict) else None
    if value is None:
        return None
    if rp.sub is not None:
        if isinstance(value, list):
            return [v.get(rp.sub.name) for v in value if isinstance(v, dict)] or None
        return value.get(rp.sub.name) if isinstance(value, dict) else None
    if rp.attr.multi_valued and rp.attr.type == "complex":
        return [v.get("value") for v in value if isinstance(v, dict)] or None
    return value


def evaluate(expr: Expr, doc: Doc) -> Any:
    """The value of an expression for a user document (full, with id and meta)."""
    if isinstance(expr, Lit):
        return expr.value
    if isinstance(expr, Path):
        return _path_value(doc, expr.text)
    if expr.name == "if":
        assert expr.condition is not None
        branch = expr.args[1] if matches(USER, expr.condition, doc) else expr.args[2]
        return evaluate(branch, doc)
    fn = FUNCTIONS[expr.name][0]
    return fn(*(evaluate(a, doc) for a in expr.args))
