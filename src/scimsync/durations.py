"""Durations in settings: a number of seconds, or `90s`, `30m`, `24h`, `7d`, `2w`."""

from __future__ import annotations

from typing import Any

from scimsync.errors import UsageError

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: Any, name: str) -> float:
    """Seconds from a non-negative number or a duration string; UsageError naming the
    setting otherwise."""
    if isinstance(value, bool):
        raise UsageError(f"{name} is a number of seconds or a duration like 24h")
    if isinstance(value, int | float):
        out = float(value)
    elif isinstance(value, str) and value.replace(".", "", 1).isdigit():
        out = float(value)  # seconds, as typed on a command line
    elif isinstance(value, str) and value[-1:] in UNITS and value[:-1].replace(".", "", 1) \
            .isdigit():
        out = float(value[:-1]) * UNITS[value[-1]]
    else:
        raise UsageError(f"{name} {value!r} is not a duration (e.g. 3600, 30m, 24h, 7d)")
    if out < 0:
        raise UsageError(f"{name} cannot be negative")
    return out
