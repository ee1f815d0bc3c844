"""A target that fails: 429 with Retry-After, 5xx, timeouts, resets, outages.

A real HTTP proxy on loopback stands between the hub and scim2-server and injects
the faults; the hub must retry, back off, quarantine, and converge when it heals.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import Engine

from conftest import Scim, free_port
from downstream import PEER_TOKEN, Peer, converge, read_body
from scimsync.connectors.http import retry_after
from scimsync.protocol.timefmt import now
from scimsync.store.tables import retries as retries_table
from scimsync.store.tables import targets
from scimsync.store.targets import Targets
from scimsync.sync import engine as engine_module
from scimsync.sync.engine import Reconciler
from scimsync.sync.worker import Worker


class Faults:
    """Queued behaviours, one per request: 'ok', '429', '500', 'slow', 'reset'."""

    def __init__(self) -> None:
        self.plan: deque[str] = deque()
        self.seen: list[str] = []
        self.no_patch = False  # advertise patch.supported = false, refuse PATCH
        self.failing_ids: set[str] = set()  # remote ids whose every request answers 500

    def __call__(self) -> str:
        return self.plan.popleft() if self.plan else "ok"


def proxy_app(upstream: str, faults: Faults) -> Any:
    client = httpx.AsyncClient(timeout=30)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        action = faults()
        faults.seen.append(f"{scope['method']} {action}")
        if faults.no_patch and scope["path"].endswith("/ServiceProviderConfig"):
            doc = b'{"schemas":["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],' \
                  b'"patch":{"supported":false},"filter":{"supported":true,"maxResults":100}}'
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/scim+json")]})
            await send({"type": "http.response.body", "body": doc})
            return
        if faults.no_patch and scope["method"] == "PATCH":
            await send({"type": "http.response.start", "status": 501, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if action == "429":
            await send({"type": "http.response.start", "status": 429,
                        "headers": [(b"retry-after", b"1")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if action == "500":
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b"busy"})
            return
        if action == "slow":
            await asyncio.sleep(2)
        if scope["path"].rsplit("/", 1)[-1] in faults.failing_ids:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"boom"})
            return
        if action == "reset":
            raise ConnectionResetError("injected")  # uvicorn drops the connection
        path = scope["path"] + ("?" + scope["query_string"].decode()
                                if scope["query_string"] else "")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]
                   if k.decode() in ("authorization", "content-type", "accept")}
        r = await client.request(scope["method"], upstream + path, content=body,
                                 headers=headers)
        await send({"type": "http.response.start", "status": r.status_code,
                    "headers": [(b"content-type", r.headers.get("content-type",
                                                                 "application/json").encode())]})
        await send({"type": "http.response.body", "body": r.content})

    return app


class Proxy:
    def __init__(self, upstream: str):
        self.faults = Faults()
        self.port = free_port()
        self.upstream = upstream
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(proxy_app(self.upstream, self.faults), host="127.0.0.1",
                                port=self.port, log_level="critical", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def proxy(peer_root: str) -> Iterator[tuple[Proxy, Peer]]:
    tenant = f"t{secrets.token_hex(4)}"
    p = Proxy(peer_root)
    p.start()
    yield p, Peer(f"{peer_root}/{tenant}")
    if p.server is not None and not p.server.should_exit:
        p.stop()


def target_via(engine: Engine, scim: Scim, proxy: Proxy, peer: Peer, **profile: Any) -> str:
    tenant = peer.base.rsplit("/", 1)[1]
    t = Targets(engine).add(scim.directory_id, f"flaky-{secrets.token_hex(2)}", "scim", {
        "url": f"http://127.0.0.1:{proxy.port}/{tenant}",
        "auth": {"type": "bearer", "token": PEER_TOKEN}, "profile": profile})
    return str(t["id"])


def target_row(engine: Engine, tid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(targets).where(targets.c.id == tid)).one()


def test_retry_after_header_forms() -> None:
    assert retry_after("7") == 7.0
    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 <= (retry_after(format_datetime(later, usegmt=True)) or 0) <= 31
    assert retry_after("garbage") is None
    assert retry_after(None) is None


def test_429_with_retry_after_is_honoured_then_converges(
        engine: Engine, scim: Scim, proxy: tuple[Proxy, Peer]) -> None:
    p, peer = proxy
    u = scim.user("throttled@x.test")
    tid = target_via(engine, scim, p, peer)
    # The first requests read ServiceProviderConfig, ResourceTypes and Schemas.
    p.faults.plan.extend(["ok", "ok", "ok", "429"])
    result = Reconciler(engine).run(tid)
    assert result.error is not None and "429" in result.error
    row = target_row(engine, tid)
    assert row.failures == 1 and row.bulk is not None  # the initial load is still due
    # Retry-After: 1 second, not the exponential backoff.
    assert now() < row.retry_at <= (datetime.now(UTC) + timedelta(seconds=1.5)).strftime(
        "%Y-%m-%dT%H:%M:%S.999Z")
    assert tid not in Worker(engine).due()
    time.sleep(1.1)
    assert tid in Worker(engine).due()
    converge(engine, tid)
    assert u["id"] in peer.users()
    assert target_row(engine, tid).failures == 0


@pytest.mark.parametrize("fault", ["500", "slow"])
def test_transient_faults_back_off_and_lose_nothing(
        engine: Engine, scim: Scim, proxy: tuple[Proxy, Peer], fault: str) -> None:
    """503 and timeouts say the application as a whole is in trouble: the run fails and
    the target backs off."""
    p, peer = proxy
    users = [scim.user(f"f{i}@x.test")["id"] for i in range(3)]
    tid = target_via(engine, scim, p, peer, timeout=0.5, concurrency=1)
    # Discovery (three requests) and the first user go through, then the next one fails.
    p.faults.plan.extend(["ok", "ok", "ok", "ok", "ok", fault])
    result = Reconciler(engine).run(tid)
    assert result.error is not None
    row = target_row(engine, tid)
    assert row.failures == 1 and row.retry_at > now() and row.bulk is not None
    converge(engine, tid)
    remote = peer.users()
    assert set(remote) == set(users)
    assert len(peer.get("Users")["Resources"]) == 3  # no duplicates after the retry


def test_one_failing_operation_is_retried_then_set_aside_while_the_rest_flows(
        engine: Engine, scim: Scim, proxy: tuple[Proxy, Peer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 500 for one resource while the application answers the others is that
    operation's failure: the target moves on, the resource is retried after a delay,
    and after too many attempts it is a dead letter naming the request."""
    from scimsync.store import retries as retry_store

    monkeypatch.setattr(retry_store, "delay", lambda attempt: 0.0)
    p, peer = proxy
    poison = scim.user("poison@x.test")
    tid = target_via(engine, scim, p, peer, concurrency=1)
    converge(engine, tid)
    p.faults.failing_ids.add(peer.users()[poison["id"]]["id"])
    scim.patch(f"/Users/{poison['id']}", [{"op": "replace", "path": "title", "value": "X"}])
    later = [scim.user(f"later{i}@x.test")["id"] for i in range(3)]
    result = Reconciler(engine).run(tid)
    assert result.error is None  # the application answered the others
    assert set(later) <= set(peer.users())
    row = target_row(engine, tid)
    assert row.failures == 0 and row.status == "active"
    with engine.connect() as conn:
        waiting = conn.execute(sa.select(retries_table)).all()
    assert [(r.resource_id, r.attempts) for r in waiting] == [(poison["id"], 1)]
    for _ in range(retry_store.POISON_AFTER - 1):
        Reconciler(engine).run(tid)
    dead = Targets(engine).show(tid)["dead_letters"]
    assert dead == 1
    from scimsync.store.targets import list_dead_letters

    letter = list_dead_letters(engine, tid)[0]
    assert letter["resource_id"] == poison["id"] and "500" in letter["error"]
    # The first attempt PATCHed; one that failed leaves its link unknown (an intent),
    # so each retry verifies the account and sends it whole: the last request is a PUT.
    assert letter["request"]["method"] == "PUT"
    with engine.connect() as conn:
        assert conn.execute(sa.select(retries_table)).all() == []
    # The leaver behind it was never held.
    scim.patch(f"/Users/{later[0]}", [{"op": "replace", "path": "active", "value": False}])
    converge(engine, tid)
    assert peer.users()[later[0]]["active"] is False


def test_outage_quarantine_and_recovery(engine: Engine, scim: Scim,
                                        proxy: tuple[Proxy, Peer],
                                        monkeypatch: pytest.MonkeyPatch,
                                        caplog: pytest.LogCaptureFixture) -> None:
    p, peer = proxy
    monkeypatch.setattr(engine_module, "QUARANTINE_AFTER", 3)
    u = scim.user("patient@x.test")
    tid = target_via(engine, scim, p, peer, timeout=0.5)
    p.stop()  # the application is down: connections are refused
    for _ in range(3):
        assert Reconciler(engine).run(tid).error is not None
    row = target_row(engine, tid)
    assert row.status == "quarantined" and row.failures == 3
    assert any('"event": "target.quarantined"' in r.getMessage() and tid in r.getMessage()
               for r in caplog.records)
    assert row.retry_at > (datetime.now(UTC) + timedelta(minutes=10)).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")
    p.start()  # back (same port)
    converge(engine, tid)
    row = target_row(engine, tid)
    assert row.status == "active" and row.failures == 0
    assert u["id"] in peer.users()
    assert any('"event": "target.released"' in r.getMessage() for r in caplog.records)


def test_worker_killed_repeatedly_converges_without_duplicates(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Any) -> None:
    """SIGKILL `scimsync worker` mid-run again and again; restart; the app ends equal
    to the directory, with no duplicate account and no lost change."""
    import os
    import random
    import signal
    import subprocess
    import sys

    users = [scim.user(f"k{i:03d}@x.test")["id"] for i in range(120)]
    group = scim.group("All", users[:60])
    Targets(engine).add(scim.directory_id, "killed", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": url, "SCIMSYNC_LEASE_SECONDS": "1"}
    cmd = [sys.executable, "-m", "scimsync.cli", "worker"]
    rng = random.Random(7)
    for round_ in range(5):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.6, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # Changes keep arriving between crashes.
        scim.patch(f"/Users/{users[round_]}", [{"op": "replace", "path": "title",
                                                 "value": f"round {round_}"}])
        time.sleep(1.1)  # the killed worker's lease expires
    converge(engine, Targets(engine).show("killed", scim.directory_id)["id"])
    remote_users = peer.get("Users", count="1000")["Resources"]
    by_ext = {u["externalId"]: u for u in remote_users}
    assert len(remote_users) == len(by_ext) == len(users)
    assert set(by_ext) == set(users)
    for round_ in range(5):
        assert by_ext[users[round_]]["title"] == f"round {round_}"
    rgroup = peer.groups()[group["id"]]
    assert {m["value"] for m in rgroup["members"]} == {by_ext[u]["id"] for u in users[:60]}


def test_several_workers_share_targets_without_overlap(engine: Engine, scim: Scim,
                                                        peer_root: str) -> None:
    """Three workers, four targets: every target converges, and no (target, resource)
    is ever applied by two workers at once (leases)."""
    from scimsync.sync.engine import make_connector

    users = [scim.user(f"w{i:03d}@x.test")["id"] for i in range(60)]
    peers = [Peer(f"{peer_root}/t{secrets.token_hex(4)}") for _ in range(4)]
    tids = [str(Targets(engine).add(scim.directory_id, f"shared-{i}", "scim", {
        "url": p.base, "auth": {"type": "bearer", "token": PEER_TOKEN}})["id"])
        for i, p in enumerate(peers)]
    in_flight: set[tuple[str, str]] = set()
    overlaps: list[tuple[str, str]] = []
    lock = threading.Lock()

    class Watched:
        def __init__(self, inner: Any, target: str):
            self.inner, self.target = inner, target

        def __getattr__(self, name: str) -> Any:
            method = getattr(self.inner, name)
            if name not in ("create", "replace", "patch", "delete"):
                return method

            def watched(kind: str, *args: Any) -> Any:
                key = (self.target, str(args[0].get("externalId") if isinstance(args[0], dict)
                                        else args[0]))
                with lock:
                    if key in in_flight:
                        overlaps.append(key)
                    in_flight.add(key)
                try:
                    time.sleep(0.001)
                    return method(kind, *args)
                finally:
                    with lock:
                        in_flight.discard(key)

            return watched

    def factory(kind: str, config: Any, secrets_: Any) -> Any:
        return Watched(make_connector(kind, config, secrets_), config.settings["url"])

    workers = [Worker(engine, name=f"w{i}", reconciler=Reconciler(engine, factory))
               for i in range(3)]
    for w in workers:
        w.start()
    try:
        deadline = time.monotonic() + 60
        while not all(set(p.users()) == set(users) for p in peers):
            assert time.monotonic() < deadline, "workers did not converge"
            time.sleep(0.2)
        scim.patch(f"/Users/{users[0]}", [{"op": "replace", "path": "title", "value": "x"}])
        while not all(p.users()[users[0]].get("title") == "x" for p in peers):
            assert time.monotonic() < deadline, "change not propagated"
            time.sleep(0.1)
    finally:
        for w in workers:
            w.stop()
    assert overlaps == []
    for tid in tids:
        assert Targets(engine).show(tid)["failures"] == 0


def test_discovered_capabilities_narrow_the_profile(
        engine: Engine, scim: Scim, proxy: tuple[Proxy, Peer]) -> None:
    """An app whose ServiceProviderConfig says no PATCH gets full PUTs."""
    from scimsync.connectors import discovery

    p, peer = proxy
    p.faults.no_patch = True
    discovery.CACHE.forget()
    u = scim.user("put-only@x.test", title="A")
    tid = target_via(engine, scim, p, peer)
    converge(engine, tid)
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "title", "value": "B"}])
    scim.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": False}])
    converge(engine, tid)
    remote = peer.users()[u["id"]]
    assert remote["title"] == "B" and remote["active"] is False
    methods = {m.split()[0] for m in p.faults.seen}
    assert "PUT" in methods and "PATCH" not in methods
    discovery.CACHE.forget()
