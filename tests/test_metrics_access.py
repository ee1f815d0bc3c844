"""/metrics is behind a token unless configured open, and names no tenant's targets
unless asked to."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from downstream import ThreadedServer
from scimsync.api.app import create_app
from scimsync.api.settings import Settings
from scimsync.store.directories import Directories
from scimsync.store.targets import Targets
from test_webhooks import new_secret

METRICS_TOKEN = secrets.token_urlsafe(24)


@pytest.fixture
def target(engine: Engine, directories: Directories) -> dict[str, Any]:
    d = directories.create(f"metrics-{secrets.token_hex(3)}")
    t = Targets(engine).add(d["id"], "acme-payroll-secret-project", "webhook",
                            {"url": "http://127.0.0.1:9/hook", "secret": new_secret()})
    return {"directory": d, "target": t}


def served(engine: Engine, **settings: Any) -> Iterator[str]:
    app = create_app(engine=engine, settings=Settings(**settings))
    with ThreadedServer(app) as server:
        yield server.url


@pytest.fixture
def default(engine: Engine) -> Iterator[str]:
    yield from served(engine, metrics_token=METRICS_TOKEN)


def test_metrics_need_a_bearer_token(default: str, target: dict[str, Any],
                                     directories: Directories) -> None:
    anonymous = httpx.get(f"{default}/metrics", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert "scimsync_" not in anonymous.text
    wrong = httpx.get(f"{default}/metrics", timeout=10,
                      headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    # A directory's token is an IdP's credential: it does not read other tenants' health.
    idp = target["directory"]["token"]
    assert httpx.get(f"{default}/metrics", timeout=10,
                     headers={"Authorization": f"Bearer {idp}"}).status_code == 401
    for token in (METRICS_TOKEN, directories.create_token(None, "prometheus")["token"]):
        r = httpx.get(f"{default}/metrics", timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "scimsync_target_active" in r.text


def test_metrics_carry_ids_not_names_by_default(default: str, target: dict[str, Any]) -> None:
    text = httpx.get(f"{default}/metrics", timeout=10,
                     headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    tid, did = target["target"]["id"], target["directory"]["id"]
    assert f'scimsync_target_active{{directory_id="{did}",status="active",' \
           f'target_id="{tid}"}} 1.0' in text
    assert "acme-payroll-secret-project" not in text
    assert target["directory"]["name"] not in text


def test_metrics_open_and_with_names_when_configured(engine: Engine,
                                                     target: dict[str, Any]) -> None:
    for url in served(engine, metrics_open=True, metrics_names=True):
        r = httpx.get(f"{url}/metrics", timeout=10)
        assert r.status_code == 200
        assert f'target="acme-payroll-secret-project",target_id="{target["target"]["id"]}"' \
            in r.text
