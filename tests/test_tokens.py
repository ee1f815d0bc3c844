"""Directory and admin tokens: hashed, prefixed, rotated with overlap, revoked, expiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from starlette.routing import Mount, Route

from conftest import Scim
from scimsync.protocol.timefmt import parse_time
from scimsync.store import directories as dir_module
from scimsync.store.directories import Directories
from scimsync.store.tables import tokens


def test_tokens_are_prefixed_random_and_stored_only_as_hash(
        engine: Engine, directories: Directories) -> None:
    d = directories.create("hash-check")
    token = d["token"]
    assert token.startswith("scs_d")
    assert len(token) > 50
    with engine.connect() as conn:
        rows = conn.execute(sa.select(tokens).where(tokens.c.directory_id == d["id"])).all()
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert token not in stored and token.split("_", 2)[2] not in stored
    assert directories.create("other")["token"] != token


def test_list_never_shows_secrets(directories: Directories) -> None:
    d = directories.create("listing")
    listed = directories.list_tokens(d["id"])
    assert [t["id"] for t in listed] == [d["token_id"]]
    assert "token" not in listed[0] and "secret_hash" not in listed[0]


def test_rotation_keeps_both_valid_during_overlap(scim: Scim,
                                                  directories: Directories) -> None:
    new = directories.rotate_token(scim.directory_id, scim.token_id, timedelta(hours=1))
    assert new["previous_token_id"] == scim.token_id
    assert scim.get("/Users").status_code == 200
    r = scim.http.get(f"{scim.base}/Users", headers={"Authorization": f"Bearer {new['token']}"})
    assert r.status_code == 200


def test_rotation_with_zero_overlap_retires_old_token(scim: Scim,
                                                      directories: Directories) -> None:
    new = directories.rotate_token(scim.directory_id, scim.token_id, timedelta(0))
    time.sleep(0.01)
    assert scim.get("/Users").status_code == 401
    r = scim.http.get(f"{scim.base}/Users", headers={"Authorization": f"Bearer {new['token']}"})
    assert r.status_code == 200


def test_revocation_through_the_admin_api_is_immediate(scim: Scim,
                                                       directories: Directories) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'rev')['token']}"}
    assert scim.get("/Users").status_code == 200
    r = scim.http.delete(f"/admin/directories/{scim.directory_id}/tokens/{scim.token_id}",
                         headers=admin)
    assert r.status_code == 204
    assert scim.get("/Users").status_code == 401


def test_revocation_reaches_other_processes_within_the_cache_window(
        scim: Scim, engine: Engine) -> None:
    assert scim.get("/Users").status_code == 200
    Directories(engine).revoke_token(scim.directory_id, scim.token_id)  # "another process"
    time.sleep(dir_module.CACHE_SECONDS + 0.1)
    assert scim.get("/Users").status_code == 401


def test_expiry(scim: Scim, directories: Directories) -> None:
    short = directories.create_token(scim.directory_id, "short", timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {short['token']}"}
    assert scim.http.get(f"{scim.base}/Users", headers=headers).status_code == 200
    time.sleep(1.1)
    assert scim.http.get(f"{scim.base}/Users", headers=headers).status_code == 401


def test_admin_token_is_not_a_directory_token(scim: Scim, directories: Directories) -> None:
    admin = directories.create_token(None, "ops")
    r = scim.http.get(f"{scim.base}/Users", headers={"Authorization": f"Bearer {admin['token']}"})
    assert r.status_code == 401
    r = scim.http.get("/admin/directories", headers=scim.headers())
    assert r.status_code == 401


def test_admin_api_directory_and_token_lifecycle(client: object,
                                                 directories: Directories) -> None:
    http = client
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'api')['token']}"}
    r = http.post("/admin/directories", json={"name": "via-api"}, headers=admin)  # type: ignore[attr-defined]
    assert r.status_code == 201
    d = r.json()
    assert d["scim_path"] == f"/scim/v2/{d['id']}" and d["token"].startswith("scs_")
    assert d["scim_url"].endswith(d["scim_path"])
    listed = http.get("/admin/directories", headers=admin).json()["directories"]  # type: ignore[attr-defined]
    assert d["id"] in {x["id"] for x in listed}
    t = http.post(f"/admin/directories/{d['id']}/tokens", json={"name": "okta",  # type: ignore[attr-defined]
                  "expires_in_seconds": 3600}, headers=admin)
    assert t.status_code == 201 and t.json()["expires_at"]
    rot = http.post(f"/admin/directories/{d['id']}/tokens/{t.json()['id']}/rotate",  # type: ignore[attr-defined]
                    json={"overlap_seconds": 60}, headers=admin)
    assert rot.status_code == 201
    names = [x["name"] for x in http.get(f"/admin/directories/{d['id']}/tokens",  # type: ignore[attr-defined]
                                         headers=admin).json()["tokens"]]
    assert names.count("okta") == 2
    assert http.delete(f"/admin/directories/{d['id']}/tokens/{rot.json()['id']}",  # type: ignore[attr-defined]
                       headers=admin).status_code == 204
    assert http.get("/admin/directories/nope", headers=admin).status_code == 404  # type: ignore[attr-defined]
    assert http.post("/admin/directories", content=b"{", headers=admin).status_code == 400  # type: ignore[attr-defined]
    assert http.delete(f"/admin/directories/{d['id']}", headers=admin).status_code == 204  # type: ignore[attr-defined]
    r = http.get(f"/scim/v2/{d['id']}/Users", headers={"Authorization": f"Bearer {d['token']}"})  # type: ignore[attr-defined]
    assert r.status_code == 401


def test_openapi_document_describes_admin_api(client: object) -> None:
    doc = client.get("/admin/openapi.json").json()  # type: ignore[attr-defined]
    assert doc["openapi"].startswith("3.")
    assert "/directories/{did}/tokens/{tid}/rotate" in doc["paths"]
    assert "/directories/{did}/journal" in doc["paths"]


def test_admin_tokens_through_the_api(client: object, directories: Directories) -> None:
    http: Any = client
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'root')['token']}"}
    t = http.post("/admin/admin-tokens", json={"name": "ci"}, headers=admin)
    assert t.status_code == 201 and t.json()["kind"] == "admin"
    mine = {"Authorization": f"Bearer {t.json()['token']}"}
    assert http.get("/admin/directories", headers=mine).status_code == 200
    names = [x["name"] for x in http.get("/admin/admin-tokens", headers=admin).json()["tokens"]]
    assert "ci" in names
    rot = http.post(f"/admin/admin-tokens/{t.json()['id']}/rotate",
                    json={"overlap_seconds": 0}, headers=admin)
    assert rot.status_code == 201
    assert http.get("/admin/directories", headers=mine).status_code == 401
    assert http.delete(f"/admin/admin-tokens/{rot.json()['id']}",
                       headers=admin).status_code == 204
    assert http.get("/admin/directories", headers={
        "Authorization": f"Bearer {rot.json()['token']}"}).status_code == 401


def _lifetime(token: dict[str, Any], row_created: str) -> timedelta:
    return parse_time(token["expires_at"]) - parse_time(row_created)


def _created(directories: Directories, directory_id: str | None, token_id: str) -> str:
    return next(t["created"] for t in directories.list_tokens(directory_id)
                if t["id"] == token_id)


def test_a_rotated_token_keeps_its_lifetime(directories: Directories) -> None:
    d = directories.create("lifetime")
    old = directories.create_token(d["id"], "okta", timedelta(days=90))
    new = directories.rotate_token(d["id"], old["id"], timedelta(hours=1))
    lifetime = _lifetime(new, _created(directories, d["id"], new["id"]))
    assert abs(lifetime - timedelta(days=90)) < timedelta(seconds=5)
    # ... through any number of rotations, and for admin tokens too.
    again = directories.rotate_token(d["id"], new["id"])
    assert abs(_lifetime(again, _created(directories, d["id"], again["id"]))
               - timedelta(days=90)) < timedelta(seconds=5)
    admin = directories.create_token(None, "ops", timedelta(days=7))
    rotated = directories.rotate_token(None, admin["id"])
    assert abs(_lifetime(rotated, _created(directories, None, rotated["id"]))
               - timedelta(days=7)) < timedelta(seconds=5)


def test_a_token_without_expiry_rotates_to_one_without_expiry(
        directories: Directories) -> None:
    d = directories.create("forever")
    assert directories.rotate_token(d["id"], d["token_id"])["expires_at"] is None


def test_rotation_can_set_or_drop_the_lifetime_when_told(directories: Directories) -> None:
    d = directories.create("told")
    old = directories.create_token(d["id"], "okta", timedelta(days=90))
    shorter = directories.rotate_token(d["id"], old["id"], expires_in=timedelta(days=30))
    assert abs(_lifetime(shorter, _created(directories, d["id"], shorter["id"]))
               - timedelta(days=30)) < timedelta(seconds=5)
    assert directories.rotate_token(d["id"], shorter["id"], expires_in=None)[
        "expires_at"] is None


def test_rotation_lifetime_through_the_admin_api(client: object,
                                                 directories: Directories) -> None:
    http: Any = client
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'life')['token']}"}
    d = directories.create("api-lifetime")
    base = f"/admin/directories/{d['id']}/tokens"
    t = http.post(base, json={"name": "idp", "expires_in_seconds": 86400}, headers=admin)
    kept = http.post(f"{base}/{t.json()['id']}/rotate", json={}, headers=admin)
    assert kept.status_code == 201
    assert abs(_lifetime(kept.json(), _created(directories, d["id"], kept.json()["id"]))
               - timedelta(days=1)) < timedelta(seconds=5)
    never = http.post(f"{base}/{kept.json()['id']}/rotate",
                      json={"expires_in_seconds": None}, headers=admin)
    assert never.status_code == 201 and never.json()["expires_at"] is None
    bad = http.post(f"{base}/{never.json()['id']}/rotate",
                    json={"expires_in_seconds": "soon"}, headers=admin)
    assert bad.status_code == 400
    assert len(directories.list_tokens(d["id"])) == 4  # the refused one issued nothing


def test_rotation_lifetime_through_the_cli(engine: Engine, directories: Directories) -> None:
    d = directories.create("cli-lifetime")
    old = directories.create_token(d["id"], "idp", timedelta(days=90))
    env = {**os.environ,
           "SCIMSYNC_DATABASE_URL": engine.url.render_as_string(hide_password=False)}
    out = subprocess.run([sys.executable, "-m", "scimsync.cli", "tokens", "rotate", d["id"],
                          old["id"], "--json"], capture_output=True, text=True, env=env,
                         timeout=60, check=True).stdout
    new = json.loads(out)
    assert abs(_lifetime(new, _created(directories, d["id"], new["id"]))
               - timedelta(days=90)) < timedelta(seconds=5)
    out = subprocess.run([sys.executable, "-m", "scimsync.cli", "tokens", "rotate", d["id"],
                          new["id"], "--expires-in", "never", "--json"], capture_output=True,
                         text=True, env=env, timeout=60, check=True).stdout
    assert json.loads(out)["expires_at"] is None


def test_every_admin_route_is_in_the_openapi_document(app: Any, client: Any) -> None:
    """Everything the CLI does is in the admin API, and all of it is described."""
    def walk(routes: list[Any], prefix: str = "") -> Iterator[tuple[str, str]]:
        for r in routes:
            if isinstance(r, Mount):
                yield from walk(r.routes, prefix + r.path)
            elif isinstance(r, Route):
                for method in r.methods or ():
                    if method != "HEAD":
                        yield prefix + r.path, method.lower()

    served = {(path.removeprefix("/admin"), m) for path, m in walk(app.routes)
              if path.startswith("/admin/")}
    paths = client.get("/admin/openapi.json").json()["paths"]
    described = {(path, m) for path, ops in paths.items() for m in ops if m != "parameters"}
    assert len(served) > 30
    assert served - described == set()  # served but not described
    assert described - served == set()  # described but not served

