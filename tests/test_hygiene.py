"""Request limits, error hygiene and the live HTTP server."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from conftest import USER, Scim
from scimsync.store.directories import Directories


def test_oversized_body_is_413_before_parsing(scim: Scim) -> None:
    big = b'{"schemas":["' + USER.encode() + b'"],"userName":"' + b"x" * 2_000_000 + b'"}'
    r = scim.http.post(f"{scim.base}/Users", content=big, headers=scim.headers())
    assert r.status_code == 413
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]


def test_internal_errors_carry_no_details(scim: Scim, app: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("database password=hunter2 at line 42")

    monkeypatch.setattr(app.state.store, "get", boom)
    with __import__("starlette.testclient").testclient.TestClient(
            app, raise_server_exceptions=False) as c:
        r = c.get(f"{scim.base}/Users/x", headers=scim.headers())
    assert r.status_code == 500
    assert r.json() == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                        "status": "500", "detail": "internal server error"}
    assert "hunter2" not in r.text and "Traceback" not in r.text


def test_patch_body_must_be_patch_op(scim: Scim) -> None:
    u = scim.user("p")
    r = scim.req("PATCH", f"/Users/{u['id']}", {"Operations": []})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidSyntax"


def test_live_server_round_trip(live_server: str, directories: Directories) -> None:
    d = directories.create("live")
    headers = {"Authorization": f"Bearer {d['token']}"}
    base = f"{live_server}/scim/v2/{d['id']}"
    with httpx2.Client(headers=headers, timeout=10) as http:
        r = http.post(f"{base}/Users", json={"schemas": [USER], "userName": "live"})
        assert r.status_code == 201
        assert r.headers["location"].startswith(base)
        uid = r.json()["id"]
        got = http.get(f"{base}/Users/{uid}")
        assert got.status_code == 200 and got.json()["userName"] == "live"
        assert http.get(f"{base}/Users/{uid}",
                        headers={"If-None-Match": got.headers["etag"]}).status_code == 304
        assert http.delete(f"{base}/Users/{uid}").status_code == 204
