"""Drift under the target's lease: a drift run or fix never works on a target at once
with its lane, and one that lost the lease writes and sends nothing."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import converge, expire
from downstream import taken_over as take_over
from scimsync.connectors import memory
from scimsync.drift import detect
from scimsync.drift.detect import Detector
from scimsync.drift.findings import list_findings
from scimsync.drift.remediate import fix
from scimsync.errors import TargetBusy
from scimsync.store.tables import (
    dead_letters,
    deliveries,
    drift_runs,
    findings,
    links,
    retries,
    targets,
)
from scimsync.store.targets import Targets
from scimsync.sync import lease as lease_module
from scimsync.sync.engine import make_connector
from scimsync.sync.lease import Lease, LeaseLost
from scimsync.sync.worker import Worker

T = targets.c
FIXED = ["attribute_drift", "orphaned_account"]


@pytest.fixture(autouse=True)
def no_work_left(engine: Engine) -> Iterator[None]:
    """The session's database is shared: this module's targets (a pending change, a
    due drift run) must not take the lane of another module's worker."""
    yield
    with engine.begin() as conn:
        conn.execute(sa.update(targets).where(T.id.in_(CREATED)).values(status="paused"))
    CREATED.clear()


CREATED: list[str] = []


def drifted(engine: Engine, scim: Scim, interval: int = 0,
            **remediate: str) -> tuple[str, memory.MemoryStore]:
    """A converged memory target that has since drifted: an account nobody linked, and
    an account deactivated by hand in the application."""
    name = secrets.token_hex(4)
    alice = scim.user(f"alice-{name}@x.test")["id"]
    tid = str(Targets(engine).add(scim.directory_id, f"mem-{name}", "memory", {
        "store": name, "drift": {"interval": interval, "remediate": remediate}})["id"])
    CREATED.append(tid)
    converge(engine, tid)
    data = memory.store(name)
    with data.lock:
        data.of("User")["ghost"] = {"id": "ghost", "userName": f"ghost-{name}@x.test",
                                    "active": True}
        [account] = [d for d in data.of("User").values() if d.get("externalId") == alice]
        account["active"] = False  # deactivated by hand
    return tid, data


class Passed:
    """A connector passed through, but for what a test's subclass says."""

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def written(engine: Engine, tid: str) -> dict[str, Any]:
    """Everything drift and the engine write for a target, as rows (but its lease)."""
    with engine.connect() as conn:
        return {table.name: sorted(tuple(r) for r in conn.execute(
            sa.select(table).where(table.c.target_id == tid)).all())
            for table in (links, deliveries, dead_letters, retries, findings, drift_runs)} | {
            "target": tuple(conn.execute(sa.select(*(c for c in targets.c if not c.name.startswith(
                "lease_"))).where(T.id == tid)).one())}  # the lease is the successor's


@pytest.fixture
def taken_over() -> Iterator[Any]:
    """A stale lease and its successor's on a target; both released at the end."""
    held: list[Lease] = []

    def take(engine: Engine, tid: str) -> tuple[Lease, Lease]:
        stale, successor = take_over(engine, tid)
        held.extend((stale, successor))
        return stale, successor

    yield take
    for lease in held:
        lease.release()


def open_classes(engine: Engine, tid: str) -> list[str]:
    return sorted(f["class"] for f in list_findings(engine, target_id=tid, status="open"))


def test_a_drift_run_under_a_lease_taken_over_writes_and_sends_nothing(
        engine: Engine, scim: Scim, taken_over: Any) -> None:
    """Its first write, the run's row, is fenced and comes before any request."""
    tid, data = drifted(engine, scim, orphaned_account="auto")
    stale, successor = taken_over(engine, tid)
    before, sent = written(engine, tid), len(data.requests)
    with pytest.raises(LeaseLost):
        Detector(engine).run(tid, lease=stale)
    assert written(engine, tid) == before
    assert data.requests[sent:] == []
    # The lease's holder runs as usual, and fixes what is in `auto` mode.
    run = Detector(engine).run(tid, lease=successor)
    assert run["status"] == "complete"
    assert run["remediation"]["fixed"] == 1
    assert "ghost" not in data.of("User") or data.of("User")["ghost"]["active"] is False


@pytest.mark.parametrize("noticed", [True, False], ids=["heartbeat-noticed", "unnoticed"])
def test_a_drift_run_that_loses_its_lease_half_way_writes_and_fixes_nothing(
        engine: Engine, scim: Scim, noticed: bool) -> None:
    """The lease is taken over while the run lists the target. If its heartbeat noticed,
    the run stops before its next request; if not, its first write of findings is
    refused. Either way no finding is written or resolved and no `auto` fix is sent;
    the run's own row says it failed, so it does not stay `running`."""
    tid, data = drifted(engine, scim, orphaned_account="auto", attribute_drift="auto")
    runs = Detector(engine).run(tid)  # findings of an earlier run, for the stale one to resolve
    assert runs["status"] == "complete"
    with data.lock:
        data.of("User")["ghost"]["active"] = True  # deactivated by that run's fix
        [alice] = [d for d in data.of("User").values() if "externalId" in d]
        alice["active"] = False  # and so was this one's account, by hand
    stale = Lease(engine, tid, "stale")
    assert stale.acquire()
    successor = Lease(engine, tid, "successor")
    taken = threading.Event()

    class TakenOverWhileListing(Passed):
        def list(self, kind: str) -> Iterator[Any]:
            yield from self.inner.list(kind)
            if not taken.is_set():
                expire(engine, tid)
                assert successor.acquire()
                taken.set()
                if noticed:
                    assert not stale.renew()

    try:
        before = written(engine, tid)
        sent = len(data.requests)
        with pytest.raises(LeaseLost):
            Detector(engine, lambda *a: TakenOverWhileListing(make_connector(*a))).run(
                tid, lease=stale)
        after = written(engine, tid)
        del after["drift_runs"], before["drift_runs"]
        assert after == before
        with engine.connect() as conn:
            assert conn.execute(sa.select(drift_runs.c.status, drift_runs.c.error).where(
                drift_runs.c.target_id == tid).order_by(drift_runs.c.started)).all() == [
                ("complete", None),
                ("failed", "lost the target's lease; another worker has it")]
        ops = [r[:2] for r in data.requests[sent:]]
        assert ("list", "User") in ops
        assert all(op == "list" for op, _ in ops)
        if noticed:
            assert ("list", "Group") not in ops  # stopped before its next request
        assert data.of("User")["ghost"]["active"] is True
        assert alice["active"] is False
    finally:
        stale.release()
        successor.release()


def test_a_fix_under_a_lease_taken_over_writes_and_sends_nothing(
        engine: Engine, scim: Scim, taken_over: Any) -> None:
    """Orphans are taken out by remediation itself, the rest by the engine's run: both
    are fenced, so a stale fix neither changes a link nor sends a request."""
    tid, data = drifted(engine, scim)
    assert Detector(engine).run(tid)["status"] == "complete"
    assert open_classes(engine, tid) == FIXED
    stale, successor = taken_over(engine, tid)
    before, sent = written(engine, tid), len(data.requests)
    with pytest.raises(LeaseLost):
        fix(engine, tid, FIXED, lease=stale)
    assert written(engine, tid) == before
    assert data.requests[sent:] == []
    assert fix(engine, tid, FIXED, lease=successor)["fixed"] == 2
    assert open_classes(engine, tid) == []


def test_a_fix_whose_lease_is_lost_between_orphans_sends_no_more(
        engine: Engine, scim: Scim) -> None:
    """The lease is checked before each orphan's request, and what was sent before the
    loss is not recorded over the successor's."""
    tid, data = drifted(engine, scim)
    with data.lock:
        data.of("User")["ghost2"] = {"id": "ghost2", "userName": "ghost2@x.test",
                                     "active": True}
    assert Detector(engine).run(tid)["status"] == "complete"
    stale = Lease(engine, tid, "stale")
    assert stale.acquire()
    successor = Lease(engine, tid, "successor")

    def taken_over_after_first(kind: str, config: Any, secrets_: Any) -> Any:
        inner = make_connector(kind, config, secrets_)

        class TakenOver(Passed):
            def update(self, *args: Any) -> Any:
                out = self.inner.update(*args)
                expire(engine, tid)
                assert successor.acquire()
                assert not stale.renew()  # the heartbeat finds another token
                return out

        return TakenOver(inner)

    try:
        before, sent = written(engine, tid), len(data.requests)
        with pytest.raises(LeaseLost):
            fix(engine, tid, ["orphaned_account"], lease=stale,
                connector_factory=taken_over_after_first)
        assert [r[0] for r in data.requests[sent:]] == ["update"]
        assert written(engine, tid) == before  # no delivery, nothing marked remediated
    finally:
        stale.release()
        successor.release()


def test_drift_by_hand_holds_the_target_from_its_lane(engine: Engine, scim: Scim) -> None:
    """A drift run asked for by a person (CLI, admin API) takes the target's lease for
    its length, fixes included: the lane cannot take the target meanwhile, and the
    worker does not count it as due."""
    tid, _ = drifted(engine, scim, orphaned_account="auto")
    scim.user(f"new-{secrets.token_hex(3)}@x.test")  # a change for the lane
    seen: list[tuple[bool, bool]] = []

    class Watched(Passed):
        def list(self, kind: str) -> Iterator[Any]:
            seen.append((Lease(engine, tid, "lane").acquire(), tid in Worker(engine).due()))
            yield from self.inner.list(kind)

        def update(self, *args: Any) -> Any:
            seen.append((Lease(engine, tid, "lane").acquire(), tid in Worker(engine).due()))
            return self.inner.update(*args)

    run = Detector(engine, lambda *a: Watched(make_connector(*a))).run(tid)
    assert run["status"] == "complete" and run["remediation"]["fixed"] == 1
    assert seen and set(seen) == {(False, False)}
    with engine.connect() as conn:
        assert conn.execute(sa.select(T.lease_owner, T.lease_token).where(
            T.id == tid)).one() == (None, None)  # given up after the run
    assert tid in Worker(engine).due()


def test_drift_by_hand_waits_for_the_lane_and_then_gives_up(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a lane holds the target, a run or fix by hand waits; if the lane keeps it
    past SCIMSYNC_LEASE_WAIT_SECONDS it is refused (409 in the admin API), having
    written and sent nothing."""
    tid, data = drifted(engine, scim)
    assert Detector(engine).run(tid)["status"] == "complete"
    monkeypatch.setattr(lease_module, "LEASE_WAIT_SECONDS", 0.3)
    lane = Lease(engine, tid, "lane")
    assert lane.acquire()
    try:
        before, sent = written(engine, tid), len(data.requests)
        with pytest.raises(TargetBusy, match="lane"):
            Detector(engine).run(tid)
        with pytest.raises(TargetBusy) as busy:
            fix(engine, tid, FIXED)
        assert busy.value.status == 409
        assert written(engine, tid) == before
        assert data.requests[sent:] == []
        monkeypatch.setattr(lease_module, "LEASE_WAIT_SECONDS", 20.0)
        threading.Timer(0.3, lane.release).start()  # the lane's turn ends
        assert fix(engine, tid, FIXED)["fixed"] == 2
    finally:
        lane.release()


def test_a_scheduled_drift_run_runs_under_its_lanes_lease(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    tid, _ = drifted(engine, scim, interval=3600)
    leases: list[str | None] = []
    held = detect.held

    def spy(engine_: Engine, target_id: str, lease: Lease | None = None) -> Any:
        leases.append(lease.owner if lease is not None else None)
        return held(engine_, target_id, lease)

    monkeypatch.setattr(detect, "held", spy)
    # Only this target (the session's database holds other tests' targets).
    monkeypatch.setattr(Worker, "due", lambda self: [])
    monkeypatch.setattr(Worker, "drift_due", lambda self: [tid])
    Worker(engine, name="W", lanes=1).run_once()
    assert leases == ["W"]
