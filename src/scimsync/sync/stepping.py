"""How a run's steps run and fail (docs/provisioning.md: Reliability).

Up to profile.concurrency steps are in flight at once (scimsync.sync.pacing), one per
resource, each after the intents of its wave are recorded. A step's failure is
classified: a refusal (4xx, 501) is a dead letter at once; a failure of the
application as a whole (timeouts, refused connections, 429, 503, or every operation
failing) stops the run and backs the target off; any other failure of one operation
while others succeed is retried later, and set aside as a dead letter after
retry_store.POISON_AFTER attempts, while the cursor moves on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scimsync.connectors.contract import Rejected, RemoteConflict, RemoteNotFound, Transient
from scimsync.store import retries as retry_store
from scimsync.sync.context import APP_DOWN, RunContext
from scimsync.sync.work import Work


class Stepping(RunContext):
    """A run's steps: run with up to the window's size in flight, their failures sorted."""

    def guarded(self, work: Work, step: Any) -> None:
        """Run one resource's step. A refusal is a dead letter; a failure of this one
        operation is kept for `settle`; a failure of the application stops the run."""
        if self.down is not None:
            return
        self.progress()  # a worker that lost its lease stops before its next request
        self.window.acquire()
        ok = overloaded = False
        try:
            step()
            ok = True
            self.settled(work)
        except (Rejected, RemoteConflict, RemoteNotFound) as exc:
            ok = True  # the application answered; this operation is what failed
            self.dead_letter(work, "apply", exc)
        except Transient as exc:
            if exc.status is None or exc.status in APP_DOWN:
                overloaded = exc.status in (429, 503)
                with self.lock:
                    self.down = self.down or exc
            else:
                with self.lock:
                    self.failed[work.resource_id] = (work, exc)
        finally:
            self.window.release(ok, overloaded)
            if ok:
                with self.lock:
                    self.ok += 1
        self.progress()

    def each(self, works: list[Work], step: Any,
             intent: Callable[[Work], str | None] | None = None) -> None:
        """`step(work)` for every work, up to the window's size at once; `intent` says
        what each is about to send (None: nothing), recorded before the first request."""
        def one(w: Work) -> Callable[[], None]:
            return lambda: self.guarded(w, lambda: step(w))

        works = [w for w in works if w.resource_id not in self.stuck]

        if intent is not None and self.down is None:
            self.intend([(w, a) for w in works if (a := intent(w)) is not None])

        self.steps.run([one(w) for w in works])
        if self.down is not None:
            raise self.down

    def settle(self, retried: list[str]) -> None:
        """After a batch: operations that failed alone are retried later, and dead letters
        once they have failed too often; if nothing succeeded while several failed, the
        application is down and the run fails as a whole (nothing moves on)."""
        if self.dry_run:
            return
        if self.failed and self.ok == 0 and len(self.failed) > 1:
            first = next(iter(self.failed.values()))[1]
            raise Transient(f"every operation failed: {first}", status=first.status,
                            retry_after=first.retry_after)
        done = [rid for rid in retried if rid not in self.failed]
        if not done and not self.failed:
            self.ok = 0
            return  # nothing was retried and nothing failed: no write at all
        with self.begin() as conn:
            if done:
                retry_store.clear(conn, self.row.id, done)
            known = retry_store.attempts(conn, self.row.id, list(self.failed))
            for rid, (work, exc) in self.failed.items():
                attempt = (known[rid].attempts if rid in known else 0) + 1
                if attempt >= retry_store.POISON_AFTER:
                    retry_store.clear(conn, self.row.id, [rid])
                    continue
                retry_store.schedule(conn, self.row.id, work.resource_type, rid, attempt,
                                     work.seq, work.changed_at, work.lifecycle, str(exc))
        for rid, (work, exc) in self.failed.items():
            if rid in known and known[rid].attempts + 1 >= retry_store.POISON_AFTER:
                self.dead_letter(work, "apply", exc)  # a poison operation: set aside
        self.failed, self.ok = {}, 0
