"""Fixtures: every storage-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from sqlalchemy import Engine
from starlette.testclient import TestClient

from downstream import free_port, peer, peer_root  # noqa: F401  (shared fixtures)
from lying import liar  # noqa: F401  (shared fixture)
from scimsync.api.app import create_app
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade

# Target credentials are encrypted with a key file: one per test session, never the
# working directory's.
os.environ["SCIMSYNC_SECRET_KEY_FILE"] = os.path.join(tempfile.mkdtemp(prefix="scimsync-key-"),
                                                      "scimsync.key")
# Every downstream the tests run listens on loopback, which the outbound URL policy
# denies unless an operator allows it (docs/security.md): allow it, and nothing more.
os.environ["SCIMSYNC_TARGET_ALLOW"] = "127.0.0.0/8,::1"

PG_ADMIN_URL = os.environ.get(
    "SCIMSYNC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def _pg_available() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any connection failure means: not available
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {type(exc).__name__}"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    reason = _pg_available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    name = f"scimsync_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
        ), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine(backend: str, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'scimsync.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    eng = make_engine(url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def app(engine: Engine) -> Any:
    return create_app(engine=engine)


@pytest.fixture(scope="session")
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://scim.test") as c:
        yield c


@dataclass
class Scim:
    """A SCIM client for one directory: base path plus its bearer token."""

    http: Any
    directory_id: str
    token: str
    token_id: str

    @property
    def base(self) -> str:
        return f"/scim/v2/{self.directory_id}"

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/scim+json"}
        h.update(extra or {})
        return h

    def req(self, method: str, path: str, json: Any = None, **kw: Any) -> Any:
        headers = self.headers(kw.pop("headers", None))
        return self.http.request(method, self.base + path, json=json, headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.req("GET", path, **kw)

    def post(self, path: str, json: Any, **kw: Any) -> Any:
        return self.req("POST", path, json, **kw)

    def put(self, path: str, json: Any, **kw: Any) -> Any:
        return self.req("PUT", path, json, **kw)

    def patch(self, path: str, ops: list[dict[str, Any]], **kw: Any) -> Any:
        return self.req("PATCH", path, {"schemas": [PATCH], "Operations": ops}, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.req("DELETE", path, **kw)

    def user(self, user_name: str, **attrs: Any) -> dict[str, Any]:
        r = self.post("/Users", {"schemas": [USER], "userName": user_name, **attrs})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    def group(self, name: str, members: list[str] | None = None, **attrs: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [GROUP], "displayName": name, **attrs}
        if members:
            body["members"] = [{"value": m} for m in members]
        r = self.post("/Groups", body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def directories(engine: Engine) -> Directories:
    return Directories(engine)


@pytest.fixture
def scim(client: TestClient, directories: Directories) -> Scim:
    """A fresh directory per test: directories isolate tenants, so tests do too."""
    d = directories.create(f"test-{secrets.token_hex(4)}")
    return Scim(client, d["id"], d["token"], d["token_id"])


@pytest.fixture
def other_scim(client: TestClient, directories: Directories) -> Scim:
    d = directories.create(f"other-{secrets.token_hex(4)}")
    return Scim(client, d["id"], d["token"], d["token_id"])


@pytest.fixture
def web(live_server: str, directories: Directories) -> Iterator[Scim]:
    """A fresh directory, spoken to over a real socket."""
    d = directories.create(f"web-{secrets.token_hex(4)}")
    with httpx.Client(base_url=live_server, timeout=10) as http:
        yield Scim(http, d["id"], d["token"], d["token_id"])


@pytest.fixture
def live_scim(live_server: str, directories: Directories) -> Iterator[Callable[[str], Scim]]:
    """Makes fresh directories, each spoken to over a real socket by a client of its own."""
    clients: list[Any] = []

    def make(prefix: str) -> Scim:
        d = directories.create(f"{prefix}-{secrets.token_hex(4)}")
        clients.append(httpx.Client(base_url=live_server, timeout=60))
        return Scim(clients[-1], d["id"], d["token"], d["token_id"])

    yield make
    for c in clients:
        c.close()


@pytest.fixture(scope="session")
def live_server(app: Any) -> Iterator[str]:
    """The app behind a real uvicorn HTTP server on loopback."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
