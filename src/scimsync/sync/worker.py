"""The worker: finds targets with work and runs each in its own lane.

A lane is one thread working one target under its lease (scimsync.sync.lease): its
journal changes, then a chunk of its bulk work, again and again until nothing is
left or its time slice ends. Up to `SCIMSYNC_LANES` targets run at once, so one
target's initial load, outage, timeouts, rate limit, guard hold or drift run never
delays another's changes. Several workers sharing a PostgreSQL database divide the
targets by lease; a worker that dies loses its leases when they expire, and another
continues from each target's cursor.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, exists, func, or_, select

from scimsync.connectors import registry
from scimsync.drift.detect import Detector
from scimsync.nhi.sweep import Sweeper
from scimsync.protocol.timefmt import format_time, now
from scimsync.store.tables import deprovision_holds, directories, drift_runs, retries, targets
from scimsync.store.targets import FULL_SYNC
from scimsync.sync.engine import Reconciler
from scimsync.sync.lease import LEASE_SECONDS, Lease, LeaseLost

log = logging.getLogger("scimsync.worker")
T = targets.c
D = directories.c
R = drift_runs.c
__all__ = ["LEASE_SECONDS", "LeaseLost", "Worker"]
POLL_SECONDS = 0.05
# Under a stream of writes every commit wakes the worker; passes are at least this
# far apart so that wakes coalesce instead of competing with the API for the CPU.
MIN_PASS_INTERVAL = 0.02
TARGETS_CHECK_SECONDS = 1.0
DRIFT_CHECK_SECONDS = float(os.environ.get("SCIMSYNC_DRIFT_CHECK_SECONDS", "30"))
# How often the ownership policy and expiry are applied to non-human identities.
NHI_SWEEP_SECONDS = float(os.environ.get("SCIMSYNC_NHI_SWEEP_SECONDS", "60"))
# How many targets one worker runs at once, and how long a lane keeps its target
# before it lets others take a turn (it is rescheduled at once if still due).
LANES = int(os.environ.get("SCIMSYNC_LANES", "16"))
LANE_SLICE_SECONDS = float(os.environ.get("SCIMSYNC_LANE_SLICE_SECONDS", "30"))


class Worker:
    def __init__(self, engine: Engine, name: str | None = None,
                 reconciler: Reconciler | None = None, lanes: int | None = None):
        self.engine = engine
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.reconciler = reconciler or Reconciler(engine, keep_actions=False)
        self.lanes = max(1, lanes if lanes is not None else LANES)
        self._pool = ThreadPoolExecutor(max_workers=self.lanes,
                                        thread_name_prefix="scimsync-lane")
        self._running: dict[str, Future[int]] = {}
        self._lock = threading.Lock()
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
        """Targets with unprocessed journal entries, bulk work, retries due or approved
        deprovisionings, and no live lease held by another worker."""
        ts = now()
        stmt = (
            select(T.id)
            .join(directories, D.id == T.directory_id)
            .where(
                T.status.in_(("active", "quarantined")),
                or_(T.retry_at.is_(None), T.retry_at <= ts),
                or_(T.cursor == FULL_SYNC, T.cursor < D.journal_seq, T.bulk.is_not(None),
                    exists().where(retries.c.target_id == T.id, retries.c.retry_at <= ts),
                    exists().where(deprovision_holds.c.target_id == T.id,
                                   deprovision_holds.c.state == "approved")),
                or_(T.lease_until.is_(None), T.lease_until < ts),
            )
            .order_by(T.updated)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).scalars())

    def _lane(self, tid: str, work: Callable[[Lease], int]) -> int:
        """Run `work` under the target's lease; a lost lease is not the target's fault."""
        lease = Lease(self.engine, tid, self.name)
        if self._stop.is_set() or not lease.acquire():
            return 0
        try:
            return work(lease)
        except LeaseLost:
            log.warning("lost the lease on target %s; another worker continues", tid)
        except Exception as exc:  # one broken target must not stop the others
            log.error("target %s failed: %s", tid, type(exc).__name__, exc_info=exc)
        finally:
            lease.release()
        return 0

    def _work(self, tid: str, reconcile: bool) -> int:
        """A lane's turn on a target: its changes and bulk work, then, when it is due,
        its periodic full reconciliation (drift), all under one lease."""

        def work(lease: Lease) -> int:
            processed = 0
            started = time.monotonic()
            while not self._stop.is_set() and \
                    time.monotonic() - started < LANE_SLICE_SECONDS:
                lease.check()
                result = self.reconciler.run(tid, lease=lease)
                processed += result.processed
                if result.error:
                    log.warning("target %s: %s", tid, result.error)
                if result.done or result.error:
                    break
            if reconcile and not self._stop.is_set():
                run = Detector(self.engine).run(tid, trigger="schedule", lease=lease)
                processed += int((run["stats"] or {}).get("compared", 0))
            return processed

        return self._lane(tid, work)

    def _submit(self, tid: str, reconcile: bool, block: bool = False) -> Future[int] | None:
        """Start a lane for the target unless one runs already; when every lane is busy,
        wait for one (`block`) or leave the target for the next pass."""
        while True:
            with self._lock:
                for done in [k for k, f in self._running.items() if f.done()]:
                    del self._running[done]
                if tid in self._running:
                    return None
                if len(self._running) < self.lanes:
                    future = self._pool.submit(self._work, tid, reconcile)
                    self._running[tid] = future
                    future.add_done_callback(lambda _f: self._wake.set())
                    return future
                busy = list(self._running.values())
            if not block:
                return None
            wait(busy, return_when=FIRST_COMPLETED)

    def run_once(self, wait_for_lanes: bool = True) -> int:
        """Start lanes for the due targets (and due drift runs); with
        `wait_for_lanes`, wait for them and return how many resources they processed."""
        if time.monotonic() - self._nhi_swept >= NHI_SWEEP_SECONDS:
            self._nhi_swept = time.monotonic()
            self.sweep_nhi()
        if not self.any_targets():
            return 0
        drift: set[str] = set()
        if time.monotonic() - self._drift_checked >= DRIFT_CHECK_SECONDS:
            self._drift_checked = time.monotonic()
            drift = set(self.drift_due())
        due = self.due()
        started = [f for tid in [*due, *sorted(drift - set(due))]
                   if (f := self._submit(tid, tid in drift, block=wait_for_lanes))]
        if not wait_for_lanes:
            return len(started)
        wait(started)
        return sum(f.result() for f in started)

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
            pause = MIN_PASS_INTERVAL - (time.monotonic() - last)
            if pause > 0:
                time.sleep(pause)
            last = time.monotonic()
            try:
                self.run_once(wait_for_lanes=False)
            except Exception as exc:  # the database may be briefly unavailable
                log.error("worker pass failed: %s", type(exc).__name__, exc_info=exc)
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
        self._pool.shutdown(wait=True, cancel_futures=True)
