"""Statement timeouts for the database work of requests, on SQLite and PostgreSQL.

A thread that serves a request (the database pool of scimsync.api.pool, the SQLite
writer) runs its call inside `bounded(seconds)`; the provisioning worker, drift runs
and migrations do not, and keep running as long as their work needs.

- PostgreSQL enforces `statement_timeout` itself: a connection handed to a bounded
  thread gets the thread's timeout (one `SET` when the wish of the thread differs
  from what the connection has), and any other thread gets none.
- SQLite has no statement timeout, so a progress handler, called every
  PROGRESS_STEPS virtual-machine instructions, interrupts the running statement once
  the call has run past its deadline (it applies to all the statements of one call).
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from scimsync.errors import BadRequest, ScimError

# Virtual-machine instructions between checks: about a millisecond of ordinary SQLite
# work, more where JSON functions (one instruction each) parse large documents, so
# the deadline is seen within a fraction of a second; a check is one Python call
# that needs the GIL, and ordinary statements end before the first one.
PROGRESS_STEPS = 50_000
_local = threading.local()


@contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Statements of this thread inside the block may run `seconds` (0: no limit)."""
    before = getattr(_local, "seconds", 0.0), getattr(_local, "deadline", None)
    _local.seconds = seconds
    _local.deadline = time.monotonic() + seconds if seconds > 0 else None
    try:
        yield
    finally:
        _local.seconds, _local.deadline = before


def _past_deadline() -> int:
    deadline = getattr(_local, "deadline", None)
    return 1 if deadline is not None and time.monotonic() > deadline else 0


def install(engine: Engine) -> None:
    """Enforce `bounded` on every connection of this engine."""
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.set_progress_handler(_past_deadline, PROGRESS_STEPS)
        return
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        seconds = getattr(_local, "seconds", 0.0)
        wanted = max(1, math.ceil(seconds * 1000)) if seconds > 0 else 0  # 0 is no limit
        if record.info.get("statement_timeout_ms", 0) == wanted:
            return
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET statement_timeout = {wanted}")
        dbapi_conn.commit()  # a session setting, kept after the pool's rollback
        record.info["statement_timeout_ms"] = wanted


def timed_out(exc: BaseException) -> bool:
    """Whether an error (raw or wrapped by SQLAlchemy) is a statement cut short by
    `bounded`."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    return getattr(orig, "sqlstate", None) == "57014"  # query_canceled


def scim_error(exc: Exception, seconds: float) -> Exception:
    """A timed-out statement as a SCIM 503; any other error as it is."""
    if timed_out(exc):
        return ScimError(f"the database did not answer within {seconds:g} s", status=503)
    return exc


@contextmanager
def as_too_many() -> Iterator[None]:
    """A search cut short by the timeout is refused as 400 tooMany (RFC7644 §3.12): the
    filter asks for more than the server is willing to calculate."""
    try:
        yield
    except Exception as exc:
        if timed_out(exc):
            raise BadRequest("the search took longer than the statement timeout: narrow "
                             "the filter", scim_type="tooMany") from exc
        raise
