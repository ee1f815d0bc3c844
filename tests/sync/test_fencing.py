"""Fenced leases: a worker that stalled past its lease, and was taken over, writes
nothing (no link, delivery, dead letter, retry, hold or cursor) over its successor's."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import converge, taken_over
from scimsync.connectors import memory
from scimsync.protocol.timefmt import now
from scimsync.store.tables import (
    dead_letters,
    deliveries,
    deprovision_holds,
    directories,
    links,
    retries,
    targets,
)
from scimsync.store.targets import Targets
from scimsync.sync import engine as engine_module
from scimsync.sync import lease as lease_module
from scimsync.sync.engine import Reconciler, make_connector
from scimsync.sync.lease import Lease, LeaseLost
from scimsync.sync.worker import Worker

T = targets.c


def memory_target(engine: Engine, scim: Scim, **profile: Any) -> tuple[str, memory.MemoryStore]:
    name = secrets.token_hex(4)
    t = Targets(engine).add(scim.directory_id, f"mem-{name}", "memory",
                            {"store": name, "profile": profile})
    return str(t["id"]), memory.store(name)


def written(engine: Engine, tid: str) -> dict[str, Any]:
    """Everything a run writes for a target, as rows."""
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(
            sa.select(table).where(table.c.target_id == tid)).all())
            for table in (links, deliveries, dead_letters, retries, deprovision_holds)} | {
            "target": tuple(conn.execute(sa.select(targets).where(T.id == tid)).one())}


def through_a_takeover(engine: Engine, tid: str) -> dict[str, int]:
    """Each run twice, until the target has nothing left to do: under a stale lease
    (refused: it writes nothing), then under its successor's; the holds by state."""
    stale, successor = taken_over(engine, tid)
    try:
        for _ in range(50):
            before = written(engine, tid)
            with contextlib.suppress(LeaseLost):
                Reconciler(engine).run(tid, lease=stale)
            assert written(engine, tid) == before
            result = Reconciler(engine).run(tid, lease=successor)
            assert result.error is None
            if result.done and idle(engine, tid):
                assert stale.lost.is_set()
                return held(engine, tid)
        raise AssertionError("the target never converged")
    finally:
        stale.release()
        successor.release()


def idle(engine: Engine, tid: str) -> bool:
    """No bulk work left, and every journal entry handled (the hold's alert included)."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(T.bulk, T.cursor, directories.c.journal_seq).join(
            directories, directories.c.id == T.directory_id).where(T.id == tid)).one()
    return row.bulk is None and row.cursor >= row.journal_seq


def held(engine: Engine, tid: str) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(deprovision_holds.c.state, sa.func.count()).where(
            deprovision_holds.c.target_id == tid).group_by(deprovision_holds.c.state)).all())


def test_a_stalled_worker_writes_no_hold_of_a_scope_change(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    """A scope change's pass defers what it would deprovision (users, then groups), chunk
    by chunk, and judges the batch when it has seen everyone: none of it is written
    under a lost lease."""
    monkeypatch.setattr(engine_module, "BULK_USERS", 8)  # several chunks
    users = [scim.user(f"h{i:02}@x.test")["id"] for i in range(20)]
    scim.group("Sales", users[:2])
    for i in range(12):
        scim.group(f"Team {i:02}", users[i:i + 1])  # out of the new scope too
    tid, data = memory_target(engine, scim)
    converge(engine, tid)
    config = Targets(engine).show(tid)["config"]
    Targets(engine).update(tid, {**config, "scope": {"groups": ["Sales"]}})
    assert through_a_takeover(engine, tid) == {"held": 18 + 12}
    with data.lock:
        assert all(d["active"] for d in data.of("User").values())


def test_a_stalled_worker_writes_no_hold_of_a_mass_deprovisioning(
        engine: Engine, scim: Scim) -> None:
    """The per-run guard holds a run's leavers before any request: under a lost lease
    that hold is refused, and its successor records it."""
    users = [scim.user(f"m{i:02}@x.test")["id"] for i in range(20)]
    tid, data = memory_target(engine, scim)
    converge(engine, tid)
    for uid in users[:15]:
        scim.delete(f"/Users/{uid}")
    assert through_a_takeover(engine, tid) == {"held": 15}
    with data.lock:
        assert all(d["active"] for d in data.of("User").values())


def test_a_run_under_a_lease_taken_over_writes_and_sends_nothing(
        engine: Engine, scim: Scim) -> None:
    """The first write of the run is its intents, before any request: fenced, it is
    refused, so the stale run neither writes nor sends anything."""
    users = [scim.user(f"f{i}@x.test")["id"] for i in range(3)]
    tid, data = memory_target(engine, scim)
    converge(engine, tid)
    scim.patch(f"/Users/{users[0]}", [{"op": "replace", "path": "title", "value": "New"}])
    stale, successor = taken_over(engine, tid)
    try:
        before, sent = written(engine, tid), len(data.requests)
        with pytest.raises(LeaseLost):
            Reconciler(engine).run(tid, lease=stale)
        assert written(engine, tid) == before
        assert data.requests[sent:] == []
        assert stale.lost.is_set()
        # The lease's holder runs as usual.
        assert Reconciler(engine).run(tid, lease=successor).error is None
        with data.lock:
            assert [d.get("title") for d in data.of("User").values()
                    if d["externalId"] == users[0]] == ["New"]
    finally:
        stale.release()
        successor.release()


def test_a_worker_stalled_past_its_lease_writes_nothing(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Worker A stalls inside a connector call (the account is created, the answer does
    not come back) and its heartbeat with it; its lease runs out and worker B takes the
    target over and converges it. When A wakes up, every write it tries is refused."""
    monkeypatch.setattr(lease_module, "LEASE_SECONDS", 1.0)
    ids = [scim.user(f"s{i}@x.test")["id"] for i in range(6)]
    victim = ids[3]
    tid, data = memory_target(engine, scim, concurrency=2)
    stalled, release = threading.Event(), threading.Event()

    class Stalling:
        def __init__(self, inner: Any):
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def create(self, kind: str, attrs: dict[str, Any]) -> Any:
            remote = self.inner.create(kind, attrs)
            if attrs.get("externalId") == victim:
                stalled.set()
                release.wait(30)
            return remote

    def stalling(kind: str, config: Any, secrets_: Any) -> Any:
        return Stalling(make_connector(kind, config, secrets_))

    renew = Lease.renew

    def stalled_renew(self: Lease) -> bool:
        if self.owner == "A" and stalled.is_set():
            release.wait(30)  # the whole worker stalls, its heartbeat too
        return renew(self)

    monkeypatch.setattr(Lease, "renew", stalled_renew)
    # Lanes to spare: targets other tests left due must not keep A from this one.
    a = Worker(engine, name="A", reconciler=Reconciler(engine, stalling), lanes=16)
    b = Worker(engine, name="B", lanes=1)
    try:
        a.run_once(wait_for_lanes=False)
        assert stalled.wait(20), "worker A never reached the connector"
        deadline = time.monotonic() + 20
        while not expired(engine, tid):
            assert time.monotonic() < deadline, "A's lease never ran out"
            time.sleep(0.05)
        b.start()
        deadline = time.monotonic() + 30
        while not converged(engine, tid, len(ids)):
            assert time.monotonic() < deadline, "worker B did not converge the target"
            time.sleep(0.05)
    finally:
        b.stop()
    before = written(engine, tid)
    with caplog.at_level(logging.WARNING, logger="scimsync.worker"):
        release.set()
        a.stop()  # waits for A's lane to finish
    assert any("lost the lease" in r.getMessage() for r in caplog.records)
    assert written(engine, tid) == before
    with data.lock:
        accounts = sorted(d["externalId"] for d in data.of("User").values())
        creates = [r for r in data.requests if r[0] == "create"]
    assert accounts == sorted(ids)
    assert len(creates) == len(ids)  # A's accounts were found by B, not created again
    remote_of = {r[1]: r[3] for r in before["links"]}  # resource id -> remote id
    with data.lock:
        assert {rid: data.of("User")[remote_of[rid]]["externalId"] for rid in ids} == \
            {rid: rid for rid in ids}


def expired(engine: Engine, tid: str) -> bool:
    with engine.connect() as conn:
        until = conn.execute(sa.select(T.lease_until).where(T.id == tid)).scalar_one()
    return until is not None and until < now()


def converged(engine: Engine, tid: str, users: int) -> bool:
    with engine.connect() as conn:
        row = conn.execute(sa.select(T.bulk, T.cursor).where(T.id == tid)).one()
        linked = conn.execute(sa.select(sa.func.count()).select_from(links).where(
            links.c.target_id == tid, links.c.remote_id.is_not(None),
            links.c.intent.is_(None))).scalar_one()
    return row.bulk is None and row.cursor >= 0 and linked == users
