"""The worker: finds targets with work, leases them, runs the reconciler.

A lease (`targets.lease_owner`, `lease_until`) is taken with one conditional UPDATE,
so several workers sharing a PostgreSQL database never run the same target, and so
never apply the same (target, resource) at once. A worker that dies loses its lease
when it expires; another worker continues from the target's cursor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, and_, func, or_, select, update

from scimsync.connectors import registry
from scimsync.drift.detect import Detector
from scimsync.nhi.sweep import Sweeper
from scimsync.protocol.timefmt import format_time, now
from scimsync.store.tables import directories, drift_runs, targets
from scimsync.store.targets import FULL_SYNC
from scimsync.sync.engine import Reconciler

log = logging.getLogger("scimsync.worker")
T = targets.c
D = directories.c
R = drift_runs.c
LEASE_SECONDS = float(os.environ.get("SCIMSYNC_LEASE_SECONDS", "60"))
POLL_SECONDS = 0.05
# Under a stream of writes every commit wakes the worker; passes are at least this
# far apart so that wakes coalesce instead of competing with the API for the CPU.
MIN_PASS_INTERVAL = 0.02
TARGETS_CHECK_SECONDS = 1.0
DRIFT_CHECK_SECONDS = float(os.environ.get("SCIMSYNC_DRIFT_CHECK_SECONDS", "30"))
# How often the ownership policy and expiry are applied to non-human identities.
NHI_SWEEP_SECONDS = float(os.environ.get("SCIMSYNC_NHI_SWEEP_SECONDS", "60"))


class LeaseLost(Exception):
    """Another worker took the target (this one stalled past its lease)."""


class Worker:
    def __init__(self, engine: Engine, name: str | None = None,
                 reconciler: Reconciler | None = None):
        self.engine = engine
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.reconciler = reconciler or Reconciler(engine, keep_actions=False)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._targets_checked = -TARGETS_CHECK_SECONDS
        self._any_targets = True
        self._drift_checked = -DRIFT_CHECK_SECONDS
        self._nhi_swept = -NHI_SWEEP_SECONDS

    def any_targets(self) -> bool:
        """Whether any target could have work (checked at most once a second), so a
        hub without targets pays nothing for its embedded worker."""
        clock = time.monotonic()
        if clock - self._targets_checked >= TARGETS_CHECK_SECONDS:
            with self.engine.connect() as conn:
                self._any_targets = conn.execute(select(T.id).where(
                    T.status.in_(("active", "quarantined"))).limit(1)).first() is not None
            self._targets_checked = clock
        return self._any_targets

    def wake(self) -> None:
        """Look for work now (called after a write commits in this process)."""
        self._wake.set()

    def due(self) -> list[str]:
        """Targets with unprocessed journal entries (or a pending full pass) and no
        live lease held by another worker."""
        ts = now()
        stmt = (
            select(T.id)
            .join(directories, D.id == T.directory_id)
            .where(
                T.status.in_(("active", "quarantined")),
                or_(T.retry_at.is_(None), T.retry_at <= ts),
                or_(T.cursor == FULL_SYNC, T.cursor < D.journal_seq),
                or_(T.lease_until.is_(None), T.lease_until < ts, T.lease_owner == self.name),
            )
            .order_by(T.updated)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def claim(self, target_id: str) -> bool:
        """Take or renew the lease on a target; False if another worker holds it."""
        ts = now()
        until = format_time(datetime.now(UTC) + timedelta(seconds=LEASE_SECONDS))
        with self.engine.begin() as conn:
            got = conn.execute(update(targets).where(
                T.id == target_id,
                or_(T.lease_until.is_(None), T.lease_until < ts, T.lease_owner == self.name),
            ).values(lease_owner=self.name, lease_until=until)).rowcount
        return bool(got)

    def release(self, target_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(
                and_(T.id == target_id, T.lease_owner == self.name)
            ).values(lease_owner=None, lease_until=None))

    def _leased(self, tid: str, work: Callable[[Callable[..., None]], int]) -> int:
        """Run `work` under the target's lease (renewed through its progress callback)."""
        if self._stop.is_set() or not self.claim(tid):
            return 0
        renewed = [time.monotonic()]

        def keep_lease(*_: object) -> None:
            # Renew well before expiry; stop at once if the lease was lost.
            if time.monotonic() - renewed[0] > LEASE_SECONDS / 3:
                if not self.claim(tid):
                    raise LeaseLost(tid)
                renewed[0] = time.monotonic()

        try:
            return work(keep_lease)
        except LeaseLost:
            log.warning("lost the lease on target %s; another worker continues", tid)
        except Exception as exc:  # one broken target must not stop the others
            log.error("target %s failed: %s", tid, type(exc).__name__, exc_info=exc)
        finally:
            self.release(tid)
        return 0

    def run_once(self) -> int:
        """One pass over due targets; returns how many resources were processed."""
        processed = 0
        if time.monotonic() - self._nhi_swept >= NHI_SWEEP_SECONDS:
            self._nhi_swept = time.monotonic()
            self.sweep_nhi()
        if not self.any_targets():
            return 0
        for tid in self.due():

            def provision(keep_lease: Callable[..., None], tid: str = tid) -> int:
                result = self.reconciler.run(tid, progress=keep_lease)
                if result.error:
                    log.warning("target %s: %s", tid, result.error)
                return result.processed

            processed += self._leased(tid, provision)
        if time.monotonic() - self._drift_checked >= DRIFT_CHECK_SECONDS:
            self._drift_checked = time.monotonic()
            for tid in self.drift_due():

                def reconcile(keep_lease: Callable[..., None], tid: str = tid) -> int:
                    run = Detector(self.engine).run(tid, trigger="schedule",
                                                    progress=keep_lease)
                    return int((run["stats"] or {}).get("compared", 0))

                processed += self._leased(tid, reconcile)
        return processed

    def sweep_nhi(self) -> None:
        """The ownership policy and expiry, for every directory (scimsync.nhi.sweep)."""
        try:
            done = Sweeper(self.engine).run()
        except Exception as exc:  # the next sweep tries again
            log.error("non-human identity sweep failed: %s", type(exc).__name__,
                      exc_info=exc)
            return
        if done["notices"]:
            log.info("non-human identity sweep: %s", done["notices"])

    def drift_due(self) -> list[str]:
        """Targets whose periodic full reconciliation (drift.interval) is due."""
        with self.engine.connect() as conn:
            readable = [k for k in registry.names() if registry.get(k).readable]
            rows = conn.execute(select(T.id, T.config).where(
                T.status == "active", T.kind.in_(readable))).all()
            scheduled = {r.id: float((r.config.get("drift") or {}).get("interval") or 0)
                         for r in rows}
            scheduled = {k: v for k, v in scheduled.items() if v > 0}
            if not scheduled:
                return []
            last = dict(conn.execute(select(R.target_id, func.max(R.started)).where(
                R.target_id.in_(list(scheduled))).group_by(R.target_id)).all())
        clock = datetime.now(UTC)
        return [tid for tid, every in scheduled.items()
                if tid not in last or format_time(clock - timedelta(seconds=every)) >= last[tid]]

    def run_forever(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            wait = MIN_PASS_INTERVAL - (time.monotonic() - last)
            if wait > 0:
                time.sleep(wait)
            last = time.monotonic()
            try:
                busy = self.run_once()
            except Exception as exc:  # the database may be briefly unavailable
                log.error("worker pass failed: %s", type(exc).__name__, exc_info=exc)
                busy = 0
            if not busy:
                self._wake.wait(POLL_SECONDS)
                self._wake.clear()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="scimsync-worker",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
