"""Writers wait, they do not fail: the admin API, SCIM writes, the CLI and a worker
recording a failing target's deliveries, all at once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from conftest import USER
from downstream import ThreadedServer, read_body
from scimsync.errors import Busy
from scimsync.protocol.resources import USER as USER_TYPE
from scimsync.protocol.values import normalise_body
from scimsync.store.contention import is_contention, retrying
from scimsync.store.directories import Directories
from scimsync.store.resources import Store
from scimsync.store.targets import list_dead_letters
from scimsync.sync.worker import Worker

SPC = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
       "patch": {"supported": True}, "filter": {"supported": True, "maxResults": 200}}
LIST = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"], "totalResults": 0,
        "Resources": []}
REFUSED = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "status": "400",
           "scimType": "invalidValue", "detail": "this application refuses everyone"}
SCIM_WRITERS, USERS_EACH = 4, 25
ADMIN_WRITERS, ADMIN_ROUNDS = 2, 8


async def refusing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A SCIM application that answers reads and refuses every write with a 400."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    if scope["method"] == "GET":
        status, doc = 200, SPC if scope["path"].endswith("/ServiceProviderConfig") else LIST
    else:
        status, doc = 400, REFUSED
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/scim+json")]})
    await send({"type": "http.response.body", "body": json.dumps(doc).encode()})


@pytest.fixture
def refusing() -> Iterator[str]:
    with ThreadedServer(refusing_app) as server:
        yield server.url


@pytest.fixture
def worker(engine: Engine) -> Iterator[Worker]:
    w = Worker(engine, name="contention-worker")
    w.start()
    yield w
    w.stop()


def _cli(engine: Engine, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ,
           "SCIMSYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    return subprocess.run([sys.executable, "-m", "scimsync.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


def test_admin_scim_cli_and_a_failing_worker_at_once_never_5xx(
        engine: Engine, live_server: str, directories: Directories, refusing: str,
        worker: Worker) -> None:
    d = directories.create("contention")
    did = d["id"]
    scim_headers = {"Authorization": f"Bearer {d['token']}",
                    "Content-Type": "application/scim+json"}
    admin_headers = {"Authorization":
                     f"Bearer {directories.create_token(None, 'contention')['token']}"}
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    created: list[str] = []
    targets_added: list[str] = []
    lock = threading.Lock()

    def note(r: httpx.Response, what: str) -> httpx.Response:
        with lock:
            statuses[r.status_code] += 1
            if r.status_code >= 500:
                failures.append(f"{what}: {r.status_code} {r.text[:200]}")
        return r

    with httpx.Client(base_url=live_server, timeout=120) as http:
        first = note(http.post(f"/admin/directories/{did}/targets", headers=admin_headers,
                               json={"name": "refuser", "kind": "scim", "url": refusing}),
                     "first target")
        assert first.status_code == 201, first.text

        def scim_writer(n: int) -> None:
            for i in range(USERS_EACH):
                r = note(http.post(f"/scim/v2/{did}/Users", headers=scim_headers,
                                   json={"schemas": [USER], "userName": f"u{n}-{i}"}),
                         "POST /Users")
                if r.status_code == 201:
                    uid = r.json()["id"]
                    with lock:
                        created.append(uid)
                    note(http.patch(f"/scim/v2/{did}/Users/{uid}", headers=scim_headers,
                                    json={"schemas": [
                                        "urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                        "Operations": [{"op": "replace", "path": "title",
                                                        "value": f"t{i}"}]}), "PATCH")

        def admin_writer(n: int) -> None:
            for i in range(ADMIN_ROUNDS):
                r = note(http.post(f"/admin/directories/{did}/targets", headers=admin_headers,
                                   json={"name": f"t{n}-{i}", "kind": "scim",
                                         "url": refusing}), "add target")
                if r.status_code == 201:
                    tid = r.json()["id"]
                    with lock:
                        targets_added.append(tid)
                    note(http.post(f"/admin/targets/{tid}/pause", headers=admin_headers),
                         "pause")
                    note(http.post(f"/admin/targets/{tid}/resume", headers=admin_headers),
                         "resume")
                note(http.post(f"/admin/directories/{did}/tokens", headers=admin_headers,
                               json={"name": f"tok{n}-{i}"}), "create token")

        cli_results: list[subprocess.CompletedProcess[str]] = []

        def cli_writer(_n: int) -> None:
            for i in range(2):
                cli_results.append(_cli(engine, "tokens", "create", did, "--name",
                                        f"cli{i}", "--json"))

        jobs: list[tuple[Callable[[int], None], int]] = [
            *((scim_writer, n) for n in range(SCIM_WRITERS)),
            *((admin_writer, n) for n in range(ADMIN_WRITERS)), (cli_writer, 0)]
        threads = [threading.Thread(target=fn, args=(n,)) for fn, n in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        assert failures == []
        assert all(p.returncode == 0 for p in cli_results), [p.stderr for p in cli_results]
        assert statuses[201] + statuses[200] == sum(statuses.values()), statuses
        # Consistent results: everything acknowledged is there, once.
        assert len(created) == SCIM_WRITERS * USERS_EACH
        listed = http.get(f"/scim/v2/{did}/Users", headers=scim_headers,
                          params={"count": "1000", "attributes": "title"}).json()
        assert sorted(r["id"] for r in listed["Resources"]) == sorted(created)
        assert all(r.get("title", "").startswith("t") for r in listed["Resources"])
        shown = http.get("/admin/targets", headers=admin_headers,
                         params={"directory": did}).json()["targets"]
        assert {t["id"] for t in shown} == {first.json()["id"], *targets_added}
        assert len(targets_added) == ADMIN_WRITERS * ADMIN_ROUNDS
        tokens = http.get(f"/admin/directories/{did}/tokens", headers=admin_headers).json()
        assert len(tokens["tokens"]) == 1 + ADMIN_WRITERS * ADMIN_ROUNDS + 2
        # Two journal entries per user (created, updated), in sequence.
        assert directories.get(did)["journal_seq"] == 2 * len(created)

    # The worker recorded each refusal once (it keeps going meanwhile: no wait on it
    # inside the assertions above).
    deadline = time.monotonic() + 120
    tid = first.json()["id"]
    while len({x["resource_id"] for x in list_dead_letters(engine, tid)}) < len(created):
        assert time.monotonic() < deadline, "the worker did not record every refusal"
        worker.wake()
        time.sleep(0.2)
    dead = list_dead_letters(engine, tid)
    assert sorted({x["resource_id"] for x in dead}) == sorted(created)


def test_lock_and_serialisation_conflicts_are_recognised() -> None:
    locked = sqlite3.OperationalError("database is locked")
    assert is_contention(locked)
    assert is_contention(OperationalError("UPDATE", {}, locked))
    assert is_contention(psycopg.errors.DeadlockDetected("deadlock detected"))
    assert is_contention(psycopg.errors.SerializationFailure("could not serialize"))
    assert is_contention(Busy())
    assert not is_contention(sqlite3.OperationalError("no such table: x"))
    assert not is_contention(psycopg.errors.UniqueViolation("duplicate key"))
    assert not is_contention(ValueError("database is locked"))


def test_retrying_gives_up_with_busy_and_leaves_other_errors_alone() -> None:
    calls: list[int] = []

    def always_locked() -> None:
        calls.append(1)
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(Busy) as info:
        retrying(always_locked, attempts=3)
    assert len(calls) == 3
    assert info.value.status == 503 and info.value.headers == {"Retry-After": "1"}

    def broken() -> None:
        calls.append(1)
        raise KeyError("not a conflict")

    calls.clear()
    with pytest.raises(KeyError):
        retrying(broken)
    assert len(calls) == 1


def _title(title: str) -> list[dict[str, Any]]:
    return [{"op": "replace", "path": "title", "value": title}]


def test_a_deadlock_victim_runs_again_from_the_start(engine: Engine, backend: str,
                                                     directories: Directories) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite writers queue for one lock: they cannot deadlock")
    store = Store(engine, group_commit=False)
    # Two directories: a write also locks its directory's journal counter.
    where = {n: directories.create(f"deadlock-{n}")["id"] for n in ("a", "b")}
    a, b = (store.create(where[n], USER_TYPE, normalise_body(USER_TYPE, {
        "schemas": [USER], "userName": n}), None).id for n in ("a", "b"))
    home = {a: where["a"], b: where["b"]}
    barrier = threading.Barrier(2)
    runs: Counter[str] = Counter()
    done: dict[str, int] = {}

    def crosswise(name: str, first: str, second: str) -> None:
        def fn(conn: Any) -> int:
            runs[name] += 1
            store.patch(home[first], USER_TYPE, first, _title(name), None, None, conn)
            if runs[name] == 1:
                barrier.wait(timeout=30)  # both hold their first row: now cross
            return store.patch(home[second], USER_TYPE, second, _title(name), None, None,
                               conn).version

        done[name] = store.transact(fn)

    threads = [threading.Thread(target=crosswise, args=("x", a, b)),
               threading.Thread(target=crosswise, args=("y", b, a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(done) == {"x", "y"}  # both committed, neither failed
    assert sorted(runs.values()) == [1, 2]  # PostgreSQL chose one victim; it ran again
    assert {store.get(home[r], USER_TYPE, r).version for r in (a, b)} == {3}


def test_a_write_on_the_event_loop_does_not_wait_for_its_own_group_commit(
        engine: Engine, backend: str, directories: Directories) -> None:
    if backend != "sqlite":
        pytest.skip("group commit is SQLite's")
    store = Store(engine)
    assert store.writer is not None
    did = directories.create("loop")["id"]
    body = normalise_body(USER_TYPE, {"schemas": [USER], "userName": "queued"})

    async def main() -> tuple[str, str]:
        queued = asyncio.ensure_future(store.writer.run(  # type: ignore[union-attr]
            lambda c: store.create(did, USER_TYPE, body, None, c)))
        await asyncio.sleep(0)  # the batch is open on this thread, its commit scheduled
        # A blocking write on the same thread, as an inline admin call makes it.
        other = Directories(engine).create("inline")["id"]
        return (await queued).id, other

    rid, other = asyncio.run(main())
    assert store.get(did, USER_TYPE, rid).doc["userName"] == "queued"
    assert directories.get(other)["name"] == "inline"
