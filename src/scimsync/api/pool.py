"""Where request handlers run database work: a bounded pool of threads, shared fairly
between directories (docs/architecture.md, Invariants: no request of one tenant can stall
the service for another).

The event loop only parses requests and writes responses. Every store call runs on one
of `db_threads` threads, inside the statement timeout; a directory may hold at most
`db_threads_per_directory` of them at once, so one tenant's expensive searches queue
behind each other while other tenants still find a free thread. SQLite statements
release the GIL while they run, so a long query on a pool thread leaves the loop free.

SCIMSYNC_DB_THREADS=0 runs SQLite reads on the event loop instead (slightly faster for
a trusted client; any slow request then stalls every other one).
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from scimsync import limits
from scimsync.store import timeouts

T = TypeVar("T")


class Gates:
    """At most `most` calls in flight per key (a directory), on one event loop."""

    def __init__(self, most: int):
        self.most = most
        self._held: dict[str, tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        sem, users = self._held.get(key, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self.most)
        self._held[key] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._held[key]
            if users == 1:
                del self._held[key]
            else:
                self._held[key] = (sem, users - 1)


class DatabasePool:
    """Bounded threads for the store calls of requests."""

    def __init__(self, threads: int, per_directory: int, timeout: float):
        self.timeout = timeout
        self.per_directory = max(1, min(per_directory, threads))
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scimsync-db")
        self._gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Gates] = \
            weakref.WeakKeyDictionary()

    def bounded(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` here under the statement timeout; a timeout becomes a SCIM 503."""
        try:
            with timeouts.bounded(self.timeout):
                return fn(*args)
        except Exception as exc:
            mapped = timeouts.scim_error(exc, self.timeout)
            if mapped is exc:
                raise
            raise mapped from exc

    async def run(self, directory: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on a pool thread, at most `per_directory` at once per
        directory. The directory's share is given back when the thread is done, not
        when a client gives up waiting, so abandoned calls still count against it."""
        loop = asyncio.get_running_loop()
        gates = self._gates.get(loop)
        if gates is None:
            gates = self._gates[loop] = Gates(self.per_directory)
        async with gates.hold(directory):
            fut = loop.run_in_executor(self.executor, functools.partial(self.bounded, fn, *args))
            try:
                return await asyncio.shield(fut)
            except asyncio.CancelledError:
                await asyncio.wait([fut])  # hold the share until the thread is free
                raise


class DatabaseCalls:
    """The pool of this process, and whether SQLite reads run on the loop instead."""

    inline = False
    _pool: DatabasePool | None = None

    @classmethod
    def configure(cls, dialect: str) -> None:
        forced = os.environ.get("SCIMSYNC_DB_THREADS")
        cls.inline = dialect == "sqlite" and forced == "0"

    @classmethod
    def pool(cls) -> DatabasePool:
        if cls._pool is None:
            bounds = limits.current()
            cls._pool = DatabasePool(bounds.db_threads, bounds.db_threads_per_directory,
                                     bounds.statement_timeout)
        return cls._pool
