"""Lanes, priority and concurrency: one target never holds another, a leaver never
waits behind bulk work, and many requests in flight keep the ordering invariants."""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.connectors import memory
from scimsync.store.tables import targets
from scimsync.store.targets import Targets
from scimsync.sync import engine as engine_module
from scimsync.sync.engine import Reconciler
from scimsync.sync.worker import Worker


class BlackHole:
    """A server that accepts connections and never answers (an app that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def wait_for(check: Any, seconds: float = 20.0) -> Any:
    """Poll until `check()` is truthy (bounded); the value it returned."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)


def memory_target(engine: Engine, scim: Scim, **profile: Any) -> tuple[str, memory.MemoryStore]:
    name = secrets.token_hex(4)
    t = Targets(engine).add(scim.directory_id, f"mem-{name}", "memory",
                            {"store": name, "profile": profile})
    return str(t["id"]), memory.store(name)


def by_external_id(data: memory.MemoryStore, kind: str = "User") -> dict[str, dict[str, Any]]:
    with data.lock:
        return {d["externalId"]: d for d in data.of(kind).values()}


def test_a_hanging_target_does_not_delay_another(engine: Engine, scim: Scim, peer: Peer,
                                                black_hole: BlackHole) -> None:
    directory = scim.directory_id
    fast = Targets(engine).add(directory, f"fast-{secrets.token_hex(2)}", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})["id"]
    Targets(engine).add(directory, f"hangs-{secrets.token_hex(2)}", "scim", {
        "url": f"http://127.0.0.1:{black_hole.port}/scim", "profile": {"timeout": 8}})
    worker = Worker(engine)
    worker.start()
    try:
        leaver = scim.user("leaver@x.test")
        wait_for(lambda: leaver["id"] in peer.users())
        scim.patch(f"/Users/{leaver['id']}", [{"op": "replace", "path": "active",
                                                "value": False}])
        wait_for(lambda: peer.users()[leaver["id"]]["active"] is False)
        # The hanging application still holds the other lane's request, unanswered.
        assert black_hole.held
        with engine.connect() as conn:
            row = conn.execute(sa.select(targets).where(targets.c.id == fast)).one()
        assert row.failures == 0
    finally:
        worker.stop()


def test_a_leaver_is_applied_before_the_rest_of_an_initial_load(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "BULK_USERS", 20)
    monkeypatch.setattr(engine_module, "BULK_SLICE_SECONDS", 0)  # a run, a chunk
    users = sorted(scim.user(f"bulk{i}@x.test")["id"] for i in range(70))
    tid, data = memory_target(engine, scim)
    rec = Reconciler(engine)
    first = rec.run(tid)
    assert not first.done and len(by_external_id(data)) == 20  # one chunk of the load
    leaver = users[3]  # provisioned by the first chunk
    scim.patch(f"/Users/{leaver}", [{"op": "replace", "path": "active", "value": False}])
    rec.run(tid)
    assert by_external_id(data)[leaver]["active"] is False
    with engine.connect() as conn:
        bulk = conn.execute(sa.select(targets.c.bulk).where(targets.c.id == tid)).scalar_one()
    assert bulk is not None  # the initial load is not over, and the leaver did not wait
    converge(engine, tid)
    assert set(by_external_id(data)) == set(users)


def test_bulk_work_goes_on_from_chunk_to_chunk_until_a_change_waits(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "BULK_USERS", 10)
    users = sorted(scim.user(f"chunk{i}@x.test")["id"] for i in range(45))
    # Nothing else waits: one run goes through every chunk of the initial load.
    tid, data = memory_target(engine, scim)
    assert Reconciler(engine).run(tid).done
    assert set(by_external_id(data)) == set(users)
    # A change made while the second chunk is sent ends the run after that chunk.
    created = 0

    def opening(*args: Any) -> Any:
        connector = engine_module.make_connector(*args)
        create = connector.create

        def creating(kind: str, body: dict[str, Any]) -> Any:
            nonlocal created
            created += 1
            if created == 15:
                scim.patch(f"/Users/{users[0]}", [{"op": "replace", "path": "active",
                                                   "value": False}])
            return create(kind, body)

        connector.create = creating
        return connector

    tid, data = memory_target(engine, scim, concurrency=1)
    rec = Reconciler(engine, connector_factory=opening)
    first = rec.run(tid)
    assert not first.done and len(by_external_id(data)) == 20  # two chunks, then stop
    assert by_external_id(data)[users[0]]["active"] is True
    rec.run(tid)  # the change first
    assert by_external_id(data)[users[0]]["active"] is False
    converge(engine, tid)
    assert set(by_external_id(data)) == set(users)


@pytest.mark.parametrize("deprovision", ["deactivate", "delete"])
def test_many_requests_in_flight_keep_the_ordering_invariants(
        engine: Engine, scim: Scim, deprovision: str) -> None:
    """The memory connector refuses a membership naming an object it does not hold, so
    a group sent before its users, or a user deleted before its memberships, fails."""
    people = [scim.user(f"p{i}@x.test")["id"] for i in range(60)]
    teams = [scim.group(f"Team {g}", people[g::3]) for g in range(3)]
    tid, data = memory_target(engine, scim, concurrency=16, deprovision=deprovision)
    converge(engine, tid)
    assert Targets(engine).show(tid)["dead_letters"] == 0
    groups = by_external_id(data, "Group")
    remote = {k: v["id"] for k, v in by_external_id(data).items()}
    for g, team in enumerate(teams):
        assert sorted(m["value"] for m in groups[team["id"]]["members"]) == sorted(
            remote[p] for p in people[g::3])
    # Leavers, deleted in the directory while they are members downstream.
    for p in people[:9]:
        scim.delete(f"/Users/{p}")
    converge(engine, tid)
    assert Targets(engine).show(tid)["dead_letters"] == 0
    users = by_external_id(data)
    if deprovision == "delete":
        assert not set(people[:9]) & set(users)
    else:
        assert all(users[p]["active"] is False for p in people[:9])
    groups = by_external_id(data, "Group")
    listed = {m["value"] for g in groups.values() for m in g["members"]}
    assert not listed & {remote[p] for p in people[:9]}


def test_concurrency_is_validated() -> None:
    from scimsync.errors import UsageError
    from scimsync.sync.config import parse_config

    for bad in (0, 65, "8"):
        with pytest.raises(UsageError, match="concurrency"):
            parse_config("memory", {"store": "s", "profile": {"concurrency": bad}})
