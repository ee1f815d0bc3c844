"""Checking settings so that every problem says where it is.

A ConfigError is a UsageError that carries a path inside the settings it was found
in: keys and list indexes, such as `("mapping", 1, "target")`. A configuration file's
loader turns the path into a line and column (scimsync.configfile); the admin API and
`targets add` answer with the message alone, so messages name the setting themselves.
Checks collect every problem they can before failing (Problems), so that one pass
over a file shows all of them rather than one per attempt.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, TypeVar

from scimsync.errors import UsageError

Path = tuple[str | int, ...]
T = TypeVar("T")


class ConfigError(UsageError):
    """One problem with a setting, and where: `path` inside the settings checked;
    `key` says the key itself is wrong (unknown, repeated), not its value."""

    def __init__(self, message: str, path: Path = (), *, key: bool = False):
        super().__init__(message)
        self.message = message
        self.path = path
        self.key = key

    def under(self, prefix: Path) -> ConfigError:
        """The same problem, seen from settings that hold these at `prefix`."""
        return ConfigError(self.message, (*prefix, *self.path), key=self.key)


class ConfigErrors(UsageError):
    """Several problems at once; the message lists every one."""

    def __init__(self, errors: list[ConfigError]):
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


def problems_of(exc: UsageError) -> list[ConfigError]:
    """The problems an error stands for (a plain UsageError is one, without a path)."""
    if isinstance(exc, ConfigErrors):
        return list(exc.errors)
    if isinstance(exc, ConfigError):
        return [exc]
    return [ConfigError(str(exc))]


class Problems:
    """Collects problems from independent checks, then fails with all of them."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    @contextmanager
    def check(self, *prefix: str | int) -> Iterator[None]:
        """Run a check; what it raises is kept, its paths put under `prefix`."""
        try:
            yield
        except UsageError as exc:
            self.errors.extend(e.under(prefix) for e in problems_of(exc))

    def add(self, message: str, *path: str | int, key: bool = False) -> None:
        self.errors.append(ConfigError(message, path, key=key))

    def raise_any(self) -> None:
        """Fail with what was collected, if anything was."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(list(self.errors))


def at(path: Path, check: Callable[..., T], *args: Any) -> T:
    """`check(*args)`, its errors placed at `path` (a check that knows no paths)."""
    try:
        return check(*args)
    except ConfigError:
        raise
    except UsageError as exc:
        raise ConfigError(str(exc), path) from exc


def reject_unknown(where: str, raw: dict[str, Any], known: tuple[str, ...] | list[str],
                   path: Path = ()) -> None:
    """A ConfigError for each key of `raw` that is not in `known`, with the nearest
    known key as a suggestion (`scopes` is probably `scope`)."""
    problems = Problems()
    for key in raw:
        if key in known:
            continue
        text = str(key)
        close = difflib.get_close_matches(text, [str(k) for k in known], n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        problems.add(f"unknown {where} setting `{text}`{hint} (known: {', '.join(known)})",
                     *path, text, key=True)
    problems.raise_any()


def check_fields(cls: type, raw: Any, where: str, path: Path = (),
                 own: tuple[str, ...] = (), problems: Problems | None = None
                 ) -> dict[str, Any]:
    """The settings of dataclass `cls` in `raw`: a mapping of its fields only, each of
    the type the field declares (a YAML `true` for a number is an error, not 1) but
    those in `own`, whose caller checks them (a duration may be `24h`).

    With `problems`, what is wrong is added there and the sound settings returned, so
    that the caller can go on checking them."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping", path)
    found = Problems() if problems is None else problems
    with found.check():
        reject_unknown(where, raw, [f.name for f in fields(cls)], path)
    hints = typing.get_type_hints(cls)
    sound = {}
    for name, value in raw.items():
        if name not in hints:
            continue
        if name not in own and not _is(value, hints[name]):
            found.add(f"{where}.{name} must be {_describe(hints[name])}", *path, name)
        else:
            sound[name] = value
    if problems is None:
        found.raise_any()
    return sound


def _is(value: Any, expected: Any) -> bool:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected is str:
        return isinstance(value, str)
    if origin is tuple:  # tuple[str, ...] is written as a list
        return isinstance(value, list | tuple) and all(_is(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, a) for a in args)
    if expected is type(None):
        return value is None
    return True  # a type this check does not know: its own validation decides


def _describe(expected: Any) -> str:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    names = {bool: "true or false", int: "a whole number", float: "a number",
             str: "a string", type(None): "null"}
    if expected in names:
        return names[expected]
    if origin is tuple:
        return f"a list of {_describe(args[0]).removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    return " or ".join(_describe(a) for a in args) if args else str(expected)
