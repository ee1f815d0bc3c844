"""What one request may ask for, so that every request has a bounded cost
(docs/architecture.md: Invariants). Each limit has a default and an environment variable,
read once at start; docs/security.md "Request limits" lists them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

# Integers a request carries (startIndex, count, filter literals, integer attributes)
# must fit the databases' 64-bit integers; anything wider is refused, never converted.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_INT_DIGITS = 19  # a string longer than this is refused before int() reads it


@dataclass(frozen=True)
class Limits:
    """The limits in force; `from_env` reads the SCIMSYNC_MAX_* overrides."""

    json_depth: int = 32  # nesting of any request body
    attribute_values: int = 1_000  # values of one multi-valued attribute of a resource
    document_values: int = 10_000  # JSON values (every scalar, object, array) in a resource
    members_per_request: int = 10_000  # group members named by one POST, PUT or PATCH
    filter_json_terms: int = 16  # filter terms that must read the JSON document
    statement_timeout: float = 10.0  # seconds one SQL statement may run (0: no limit)
    db_threads: int = 8  # threads that run database calls of requests
    db_threads_per_directory: int = 4  # of which one directory may hold at most

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        """Defaults, overridden by SCIMSYNC_MAX_JSON_DEPTH and the like (see ENV)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, float | int] = {}
        for f in fields(cls):
            raw = env.get(ENV[f.name])
            if raw is None or not raw.strip():
                continue
            kind = float if f.type in (float, "float") else int
            try:
                value = kind(raw.strip())
            except ValueError as exc:
                raise ValueError(f"{ENV[f.name]} must be a number, not {raw!r}") from exc
            if value < 0 or (value == 0 and f.name != "statement_timeout"):
                raise ValueError(f"{ENV[f.name]} must be positive, not {raw!r}")
            values[f.name] = value
        return cls(**values)  # type: ignore[arg-type]


ENV = {
    "json_depth": "SCIMSYNC_MAX_JSON_DEPTH",
    "attribute_values": "SCIMSYNC_MAX_ATTRIBUTE_VALUES",
    "document_values": "SCIMSYNC_MAX_DOCUMENT_VALUES",
    "members_per_request": "SCIMSYNC_MAX_MEMBERS_PER_REQUEST",
    "filter_json_terms": "SCIMSYNC_MAX_FILTER_JSON_TERMS",
    "statement_timeout": "SCIMSYNC_STATEMENT_TIMEOUT",
    "db_threads": "SCIMSYNC_DB_POOL_THREADS",
    "db_threads_per_directory": "SCIMSYNC_DB_POOL_THREADS_PER_DIRECTORY",
}

_active: Limits | None = None


def current() -> Limits:
    """The limits of this process (read from the environment on first use)."""
    global _active
    if _active is None:
        _active = Limits.from_env()
    return _active


def use(limits: Limits | None) -> None:
    """Replace the limits in force (None: read the environment again on next use)."""
    global _active
    _active = limits


def int64(text: str) -> int | None:
    """The integer a decimal string spells if it fits in 64 bits, else None."""
    digits = text.strip()
    body = digits[1:] if digits[:1] in ("-", "+") else digits
    if not body.isdigit() or not body.isascii() or len(body) > MAX_INT_DIGITS:
        return None
    value = int(digits)
    return value if INT64_MIN <= value <= INT64_MAX else None


def fits_int64(value: int) -> bool:
    """Whether an integer fits the databases' 64-bit integers."""
    return INT64_MIN <= value <= INT64_MAX
