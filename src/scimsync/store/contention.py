"""Writers wait, they do not fail: lock and serialisation conflicts, recognised and retried.

SQLite admits one writer at a time. A writer that takes the lock up front (BEGIN
IMMEDIATE) waits for it in SQLite's busy handler; one that reads first and then
writes fails at once if another writer committed in between, so every write
transaction here takes the lock up front (engine.py). PostgreSQL instead aborts one
of two transactions that deadlock (40P01) or, under stricter isolation, conflict
(40001); such a transaction is run again from the start.

What still fails after the retries (a lock held for longer than the busy timeout,
say) becomes `Busy`: a 503 with Retry-After that clients may retry, never a 500.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from scimsync.errors import Busy

T = TypeVar("T")
log = logging.getLogger("scimsync.store")

ATTEMPTS = 6
# SQLITE_BUSY and SQLITE_LOCKED, with their extended codes (BUSY_SNAPSHOT = 517 ...).
_SQLITE_CODES = {5, 6}
_SQLITE_MESSAGES = ("database is locked", "database table is locked", "database is busy")
# serialization_failure, deadlock_detected, lock_not_available (RFC-less: SQLSTATE).
_PG_STATES = {"40001", "40P01", "55P03"}


def is_contention(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps) is a lock or serialisation conflict."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, Busy):
            return True
        if isinstance(current, DBAPIError) and current.orig is not None:
            current = current.orig
            continue
        if isinstance(current, sqlite3.OperationalError):
            code = getattr(current, "sqlite_errorcode", None)
            if code is not None:
                return code & 0xFF in _SQLITE_CODES
            return any(m in str(current) for m in _SQLITE_MESSAGES)
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str):
            return state in _PG_STATES
        current = current.__cause__ or current.__context__
    return False


def backoff(attempt: int) -> float:
    """Seconds before attempt `attempt + 1`: short, growing, jittered so that two
    transactions that collided do not collide again."""
    return float(min(0.5, 0.01 * 2**attempt) * random.uniform(0.5, 1.5))  # noqa: S311


def retrying(fn: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Run `fn` (a whole transaction) again while it loses lock or serialisation
    conflicts; `Busy` once the attempts are spent."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            if not is_contention(exc):
                raise
            if attempt == attempts - 1:
                log.warning("a write lost %d lock conflicts in a row: %s", attempts,
                            type(exc).__name__)
                raise Busy() from exc
            time.sleep(backoff(attempt))
    raise AssertionError("unreachable")


class Yielding(Protocol):
    """A holder of an open write transaction that can commit it on demand."""

    def make_way(self) -> None: ...


_HOLDERS: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[Any]] = \
    weakref.WeakKeyDictionary()
_HOLDERS_LOCK = threading.Lock()


def register_holder(engine: Engine, holder: Yielding) -> None:
    """`holder` may keep a write transaction open between calls (the group commit)."""
    with _HOLDERS_LOCK:
        _HOLDERS.setdefault(engine, weakref.WeakSet()).add(holder)


def make_way(engine: Engine) -> None:
    """Before a write transaction begins: let this thread's own open write transaction
    on `engine` commit first. Waiting for a lock that only this thread can release
    would last the whole busy timeout and then fail."""
    with _HOLDERS_LOCK:
        holders = list(_HOLDERS.get(engine, ()))
    for holder in holders:
        holder.make_way()
