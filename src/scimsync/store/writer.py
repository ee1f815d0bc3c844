"""Group commit for SQLite: many requests, one transaction, one fsync, on one thread.

With synchronous=FULL every SQLite commit waits for an fsync and SQLite admits one
writer at a time, so committing each request alone caps writes. Writes therefore run
one after another on a writer thread, each in its own SAVEPOINT of one open
transaction (a failing request is rolled back alone); the writes that queued while a
transaction ran join the next one, and a commit covers them all. A request is
answered only after the commit that holds it: nothing is acknowledged before it is
durable, and the journal commits with the change.

Writes used to run on the event loop, with only the COMMIT on a thread (220 us per
write against 650 us on a thread then), but then one costly write (a Bulk of 1,000
operations, a PATCH naming thousands of values) or a wait for the write lock held by
the provisioning worker stopped every request of every tenant, /healthz included.
Each job runs under the statement timeout. The writer thread begins no write
transaction but its own, so no other thread waits on it for more than a group: a
write transaction begun elsewhere waits in SQLite's busy handler, and whatever
still finds the lock taken after the busy timeout is `Busy`, a 503 (contention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from scimsync.errors import Busy, ScimError
from scimsync.store import timeouts
from scimsync.store.contention import is_contention
from scimsync.store.lean import Lean, LeanConnection

T = TypeVar("T")
log = logging.getLogger("scimsync.writer")
Job = Callable[[LeanConnection], Any]
Reply = Callable[[bool, Any], None]
MAX_GROUP = 256  # writes per transaction at most, so a steady stream still commits
IDLE_SECONDS = 30.0  # the thread and its connection go away after this long unused


class GroupCommit:
    """Runs write jobs on a writer thread and commits them together."""

    def __init__(self, lean: Lean, timeout: float = 0.0):
        self.lean = lean
        self.timeout = timeout
        self._raw: Any = None
        self._queue: deque[tuple[Job, Reply]] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[[LeanConnection], T]) -> T:
        """Queue a write; its result (or error) once the transaction that holds it has
        committed."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def reply(ok: bool, value: Any) -> None:
            # A closed loop raises RuntimeError: nobody is waiting for the answer any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, fut, ok, value)

        with self._ready:
            self._queue.append((fn, reply))
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="scimsync-writer",
                                                daemon=True)
                self._thread.start()
            self._ready.notify()
        value: T = await fut
        return value

    def _serve(self) -> None:
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(IDLE_SECONDS)
                if not self._queue:
                    self._thread = None
                    self._close()
                    return
            try:
                self._group()
            except Exception as exc:  # no transaction could begin: fail what waits
                log.error("the SQLite writer could not begin a transaction: %s",
                          type(exc).__name__)
                self._close()
                with self._ready:
                    waiting, self._queue = list(self._queue), deque()
                for _, reply in waiting:
                    reply(False, _mapped(exc, self.timeout))

    def _group(self) -> None:
        """One transaction: queued jobs in savepoints, then one commit."""
        if self._raw is None:
            self._raw = self.lean.engine.raw_connection()
        self._raw.cursor().execute("BEGIN IMMEDIATE")
        conn = LeanConnection(self.lean, self._raw)
        done: list[tuple[Reply, Any]] = []
        for _ in range(MAX_GROUP):
            with self._ready:
                if not self._queue:
                    break
                fn, reply = self._queue.popleft()
            try:
                with timeouts.bounded(self.timeout), conn.begin_nested():
                    result = fn(conn)
            except Exception as exc:  # the request's own error; its savepoint is undone
                reply(False, _mapped(exc, self.timeout))
                if not self._raw.in_transaction:
                    # An interrupted write statement takes the whole transaction with it:
                    # the writes before it in this group are gone too, and must say so.
                    lost = ScimError("the write was rolled back; retry it", status=503)
                    for earlier, _ in done:
                        earlier(False, lost)
                    conn.close()
                    return
                continue
            done.append((reply, result))
        try:
            self._finish(conn)
        except Exception as exc:
            log.error("a group commit of %d writes failed: %s", len(done), type(exc).__name__)
            for reply, _ in done:
                reply(False, _mapped(exc, self.timeout))
            return
        for reply, result in done:
            reply(True, result)

    def _finish(self, conn: LeanConnection) -> None:
        try:
            self._raw.commit()
        except BaseException:
            self._raw.rollback()
            raise
        finally:
            conn.close()

    def _close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            finally:
                self._raw = None


def _settle(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


def _mapped(exc: Exception, timeout: float) -> Exception:
    """What a writer's error becomes for the request: a lock held past the busy timeout
    is `Busy` (503, retry), a statement past the statement timeout a 503 too."""
    if is_contention(exc):
        return Busy()
    return timeouts.scim_error(exc, timeout)
