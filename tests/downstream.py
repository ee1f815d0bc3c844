"""A real third-party SCIM server downstream: python-scim's scim2-server from PyPI."""

from __future__ import annotations

import secrets
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import Engine

from processes import free_port, launch
from scimsync.store.tables import targets
from scimsync.sync.engine import Reconciler
from scimsync.sync.lease import Lease

PEER_TOKEN = secrets.token_urlsafe(16)


def wait_http(url: str, timeout: float = 20) -> None:
    """Wait until a server on loopback answers at `url`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx2.get(url, timeout=1)
            return
        except httpx2.TransportError:
            assert time.monotonic() < deadline, f"nothing answers at {url}"
            time.sleep(0.05)


async def read_body(receive: Any) -> bytes:
    """The whole body of an ASGI request."""
    body = b""
    while True:
        msg = await receive()
        body += msg.get("body", b"")
        if not msg.get("more_body"):
            return body


@pytest.fixture(scope="session")
def peer_root() -> Iterator[str]:
    """scim2-server from PyPI on loopback, one tenant per test (tests/processes.py)."""
    exe = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
    assert exe is not None
    for port in launch([exe, "--port", "{port}", "--dynamic-tenants",
                        "--bearer-token", PEER_TOKEN],
                       ready="http://127.0.0.1:{port}/ServiceProviderConfig"):
        yield f"http://127.0.0.1:{port}"


@dataclass
class Peer:
    """One tenant of the running scim2-server."""

    base: str

    def get(self, path: str, **params: str) -> Any:
        r = httpx2.get(f"{self.base}/{path}", params=params,
                       headers={"Authorization": f"Bearer {PEER_TOKEN}"}, timeout=10)
        r.raise_for_status()
        return r.json()

    def users(self) -> dict[str, dict[str, Any]]:
        """Remote users by externalId (the hub's id)."""
        found = self.get("Users", count="1000")["Resources"]
        return {u["externalId"]: u for u in found if u.get("externalId")}

    def groups(self) -> dict[str, dict[str, Any]]:
        found = self.get("Groups", count="1000")["Resources"]
        return {g["externalId"]: g for g in found}


@pytest.fixture
def peer(peer_root: str) -> Peer:
    return Peer(f"{peer_root}/t{secrets.token_hex(4)}")


def converge(engine: Engine, tid: str) -> Any:
    """Run the reconciler until the target has no pending journal entries."""
    rec = Reconciler(engine)
    total = None
    for _ in range(20):
        result = rec.run(tid)
        total = result if total is None else total
        if result.processed == 0 and not result.error:
            return result
        assert result.error is None, result.error
    raise AssertionError("did not converge")




class ThreadedServer:
    """An ASGI app behind a real uvicorn server on loopback, in a thread."""

    def __init__(self, app: Any, **options: Any):
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical",
                                lifespan="off", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def expire(engine: Engine, tid: str) -> None:
    """A target's lease runs out (its worker stalled, its heartbeat with it)."""
    with engine.begin() as conn:
        conn.execute(sa.update(targets).where(targets.c.id == tid).values(
            lease_until="2000-01-01T00:00:00.000Z"))


def taken_over(engine: Engine, tid: str) -> tuple[Lease, Lease]:
    """A stale lease (its worker stalled until it ran out) and its successor's."""
    stale = Lease(engine, tid, "stale")
    assert stale.acquire()
    expire(engine, tid)
    successor = Lease(engine, tid, "successor")
    assert successor.acquire()
    return stale, successor

