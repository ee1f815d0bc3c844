"""A worker's lease on one target, renewed by a heartbeat (docs/architecture.md: Lanes).

A lease is taken with one conditional UPDATE and carries a fresh token, so that
several workers sharing a PostgreSQL database never run the same target, and so
never apply the same (target, resource) at once. Renewal does not depend on
progress: a heartbeat thread renews it while the lane works, however long one
request or one lookup takes. When a renewal finds the token changed (the worker
stalled past its lease and another took over) the lease is lost: `check` raises
before the lane's next request, and the lane stops.

Writes are fenced too: a run under a lease opens each of its transactions with
`fence`, a conditional UPDATE on the token. A token that changed raises LeaseLost and
the transaction rolls back, so a worker that stalled past its lease writes nothing
(no link, delivery, dead letter, retry, hold or cursor) over its successor's. The UPDATE
holds the target's row until commit, so a takeover waits for a write in progress
rather than slipping in between the check and the commit.

Work on a target outside a worker's lane (a drift run or fix asked for by a person,
from the CLI or the admin API) takes the same lease for its length (`held`), so that
it never applies a (target, resource) at once with the target's lane.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, update

from scimsync.errors import TargetBusy
from scimsync.protocol.timefmt import format_time, now
from scimsync.store.tables import targets

T = targets.c
LEASE_SECONDS = float(os.environ.get("SCIMSYNC_LEASE_SECONDS", "60"))
# How long work asked for by hand waits for the lane that holds its target.
LEASE_WAIT_SECONDS = float(os.environ.get("SCIMSYNC_LEASE_WAIT_SECONDS", "60"))


class LeaseLost(Exception):
    """Another worker took the target (this one stalled past its lease)."""


class Lease:
    """A fenced, self-renewing lease on one target for one worker."""

    def __init__(self, engine: Engine, target_id: str, owner: str,
                 seconds: float | None = None):
        self.engine = engine
        self.target_id = target_id
        self.owner = owner
        self.seconds = seconds if seconds is not None else LEASE_SECONDS
        self.token = str(uuid.uuid4())
        self.lost = threading.Event()
        self._done = threading.Event()
        self._beat: threading.Thread | None = None

    def _until(self) -> str:
        return format_time(datetime.now(UTC) + timedelta(seconds=self.seconds))

    def acquire(self) -> bool:
        """Take the lease if it is free or expired; start renewing it."""
        with self.engine.begin() as conn:
            got = conn.execute(update(targets).where(
                T.id == self.target_id,
                or_(T.lease_until.is_(None), T.lease_until < now()),
            ).values(lease_owner=self.owner, lease_until=self._until(),
                     lease_token=self.token)).rowcount
        if got:
            self._beat = threading.Thread(target=self._heartbeat, daemon=True,
                                          name=f"scimsync-lease-{self.target_id[:8]}")
            self._beat.start()
        return bool(got)

    def renew(self) -> bool:
        """Extend the lease; False (and lost) if another worker holds it now."""
        with self.engine.begin() as conn:
            got = conn.execute(update(targets).where(
                T.id == self.target_id, T.lease_token == self.token,
            ).values(lease_until=self._until())).rowcount
        if not got:
            self.lost.set()
        return bool(got)

    def _heartbeat(self) -> None:
        while not self._done.wait(self.seconds / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # noqa: S112  (the database is briefly away: try again)
                continue

    def check(self, *_: object) -> None:
        """Raise LeaseLost if the lease was lost (called before each request)."""
        if self.lost.is_set():
            raise LeaseLost(self.target_id)

    def fence(self, conn: Connection) -> None:
        """Raise LeaseLost (rolling the transaction back) unless the lease is still ours."""
        held = conn.execute(update(targets).where(
            T.id == self.target_id, T.lease_token == self.token,
        ).values(lease_token=self.token)).rowcount
        if not held:
            self.lost.set()
            raise LeaseLost(self.target_id)

    def release(self) -> None:
        """Stop renewing and give the lease up (only if it is still ours)."""
        self._done.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(
                T.id == self.target_id, T.lease_token == self.token,
            ).values(lease_owner=None, lease_until=None, lease_token=None))


@contextlib.contextmanager
def fenced(engine: Engine, lease: Lease | None) -> Iterator[Connection]:
    """A write transaction, fenced by `lease` when there is one (direct runs are not)."""
    with engine.begin() as conn:
        if lease is not None:
            lease.fence(conn)
        yield conn


@contextlib.contextmanager
def held(engine: Engine, target_id: str, lease: Lease | None = None) -> Iterator[Lease]:
    """`lease` when there is one (a worker's lane), else the target's lease taken for the
    block, waiting up to SCIMSYNC_LEASE_WAIT_SECONDS for whoever holds it (TargetBusy)."""
    if lease is not None:
        yield lease
        return
    own = Lease(engine, target_id, f"{socket.gethostname()}-{os.getpid()}-by-hand")
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    while not own.acquire():
        if time.monotonic() >= deadline:
            with engine.connect() as conn:
                holder = conn.execute(select(T.lease_owner).where(
                    T.id == target_id)).scalar()
            raise TargetBusy(f"target {target_id} is being worked on by {holder or 'a worker'}"
                             f" (it holds the target's lease): try again when it is done")
        time.sleep(0.02)  # a lane gives its target up between turns: take it then
    try:
        yield own
    finally:
        own.release()
