"""Durability and atomicity under concurrency and crashes (group commit on SQLite).

A write is acknowledged only after the commit that holds it; the journal commits
with the change; one failing request in a group is rolled back alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import USER, free_port
from downstream import wait_http
from scimsync.store.directories import Directories
from scimsync.store.tables import journal, resources


def _create(http: httpx2.Client, base: str, name: str) -> int:
    r = http.post(f"{base}/Users", json={"schemas": [USER], "userName": name})
    return r.status_code


def test_concurrent_writes_with_failures_in_the_same_group(
        live_server: str, directories: Directories, engine: Engine) -> None:
    d = directories.create("concurrent")
    base = f"{live_server}/scim/v2/{d['id']}"
    headers = {"Authorization": f"Bearer {d['token']}"}
    names = [f"user{i % 150}" for i in range(300)]  # every name twice: one must fail
    with httpx2.Client(headers=headers, timeout=30) as http, \
            ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda n: _create(http, base, n), names))
    assert statuses.count(201) == 150
    assert statuses.count(409) == 150
    with engine.connect() as conn:
        users = conn.execute(sa.select(sa.func.count()).select_from(resources).where(
            resources.c.directory_id == d["id"])).scalar_one()
        seqs = list(conn.execute(sa.select(journal.c.seq).where(
            journal.c.directory_id == d["id"]).order_by(journal.c.seq)).scalars())
    assert users == 150
    assert seqs == list(range(1, 151))


def _write_until_killed(proc: subprocess.Popen[bytes], base: str, token: str,
                        tag: str) -> list[str]:
    """Eight clients create users; the server is SIGKILLed after a second."""
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        with httpx2.Client(headers={"Authorization": f"Bearer {token}"}, timeout=5) as http:
            i = 0
            while not stop.is_set():
                name = f"{tag}-w{worker}-{i}"
                i += 1
                try:
                    status = _create(http, base, name)
                except httpx2.TransportError:
                    return
                if status == 201:
                    with lock:
                        acknowledged.append(name)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stop.set()
    for t in threads:
        t.join()
    return acknowledged


def test_killed_server_loses_no_acknowledged_write(tmp_path: Path, engine: Engine) -> None:
    """SIGKILL the server while clients write; every 201 must survive with its entry."""
    url = engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": url}
    cli = [sys.executable, "-m", "scimsync.cli"]
    d = json.loads(subprocess.run([*cli, "directories", "create", "crash", "--json"],
                                  env=env, capture_output=True, text=True, check=True).stdout)
    for round_ in range(2):
        port = free_port()
        proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}{d['scim_path']}"
        wait_http(f"http://127.0.0.1:{port}/healthz")
        acknowledged = _write_until_killed(proc, base, d["token"], f"r{round_}")
        assert len(acknowledged) > 20
        with engine.connect() as conn:
            stored = set(conn.execute(sa.select(resources.c.user_name).where(
                resources.c.directory_id == d["id"])).scalars())
            entries = conn.execute(sa.select(journal.c.seq, journal.c.resource_id).where(
                journal.c.directory_id == d["id"]).order_by(journal.c.seq)).all()
            ids = set(conn.execute(sa.select(resources.c.id).where(
                resources.c.directory_id == d["id"])).scalars())
        missing = [n for n in acknowledged if n not in stored]
        assert missing == []
        # Journal and state committed together: one entry per stored user, no gaps.
        assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
        assert {e.resource_id for e in entries} == ids


def test_commit_failure_fails_every_request_in_the_group(
        engine: Engine, directories: Directories, monkeypatch: Any) -> None:
    from starlette.testclient import TestClient

    from scimsync.api.app import create_app

    app = create_app(engine=engine)  # a store whose group commit this client's loop owns
    writer = app.state.store.writer
    if writer is None:
        return  # PostgreSQL: each request commits itself
    d = directories.create("commit-failure")
    headers = {"Authorization": f"Bearer {d['token']}"}
    original = writer._finish

    def failing(conn: Any) -> None:
        writer._raw.rollback()
        conn.close()
        raise OSError("disk full")

    with TestClient(app, raise_server_exceptions=False) as http:
        base = d["scim_path"]
        assert http.post(f"{base}/Users", json={"schemas": [USER], "userName": "first"},
                         headers=headers).status_code == 201
        monkeypatch.setattr(writer, "_finish", failing)
        r = http.post(f"{base}/Users", json={"schemas": [USER], "userName": "never-stored"},
                      headers=headers)
        assert r.status_code == 500
        assert r.json()["detail"] == "internal server error"
        monkeypatch.setattr(writer, "_finish", original)
        found = http.get(f'{base}/Users?filter=userName eq "never-stored"', headers=headers)
        assert found.json()["totalResults"] == 0
        assert http.post(f"{base}/Users", json={"schemas": [USER], "userName": "after"},
                         headers=headers).status_code == 201
