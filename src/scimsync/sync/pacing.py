"""How many requests a lane keeps in flight (docs/architecture.md: Lanes).

Threads, not async I/O: the store and the connectors are synchronous (SQLAlchemy,
httpx), a request spends nearly all its time waiting on the network with the GIL
released, and sixteen threads per lane cost a few hundred kilobytes. A `Window`
admits up to `limit` steps at once; when the application says it is overloaded
(429 or 503) the window halves, and it grows back by one step for every `window`
steps that succeed, up to the configured concurrency.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor


class Window:
    """An adaptive bound on the steps in flight (additive increase, halving decrease)."""

    def __init__(self, limit: int):
        self.limit = max(1, limit)
        self.size = self.limit
        self.inflight = 0
        self._successes = 0
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.inflight >= self.size:
                self._cond.wait()
            self.inflight += 1

    def release(self, ok: bool, overloaded: bool = False) -> None:
        with self._cond:
            self.inflight -= 1
            if overloaded:
                self.size = max(1, self.size // 2)
                self._successes = 0
            elif ok and self.size < self.limit:
                self._successes += 1
                if self._successes >= self.size:
                    self.size += 1
                    self._successes = 0
            self._cond.notify_all()


class Steps:
    """Runs steps on up to `window.limit` threads and waits for them all.

    A step that raises something other than what it handles itself (a bug) is re-raised
    here once every step has finished, so no request is left running behind it.
    """

    def __init__(self, window: Window):
        self.window = window
        self._pool: ThreadPoolExecutor | None = None

    def run(self, steps: Iterable[Callable[[], None]]) -> None:
        todo = list(steps)
        if self.window.limit == 1 or len(todo) <= 1:
            for step in todo:
                step()
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.window.limit,
                                            thread_name_prefix="scimsync-step")
        futures: list[Future[None]] = [self._pool.submit(step) for step in todo]
        error: BaseException | None = None
        for f in futures:
            exc = f.exception()
            if exc is not None and error is None:
                error = exc
        if error is not None:
            raise error

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
