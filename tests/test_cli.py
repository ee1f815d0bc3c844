"""The command line, run as a real process against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine

from conftest import USER, free_port
from downstream import wait_http

SCIMSYNC = [sys.executable, "-m", "scimsync.cli"]


@pytest.fixture
def db(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def run(db: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db}
    proc = subprocess.run([*SCIMSYNC, *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def run_json(db: str, *args: str) -> Any:
    return json.loads(run(db, *args).stdout)


def test_migrate_is_idempotent(db: str, engine: Engine) -> None:
    from scimsync.store.engine import current_revision

    head = current_revision(engine)
    assert head is not None
    assert run(db, "migrate").stdout == f"schema at revision {head}\n"
    assert run(db, "migrate").stdout == f"schema at revision {head}\n"


def test_fresh_database_in_any_order(tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert run_json(fresh, "directories", "list", "--json") == []
    d = run_json(fresh, "directories", "create", "acme", "--json")
    assert set(d) >= {"id", "name", "scim_path", "token"}


def test_directory_and_token_commands(db: str) -> None:
    d = run_json(db, "directories", "create", "Acme Corp", "--json")
    assert d["name"] == "Acme Corp"
    assert d["scim_path"] == f"/scim/v2/{d['id']}"
    assert d["token"].startswith("scs_")
    assert d["id"] in {x["id"] for x in run_json(db, "directories", "list", "--json")}
    human = run(db, "directories", "list").stdout
    assert "Acme Corp" in human and d["token"] not in human
    t = run_json(db, "tokens", "create", d["id"], "--name", "entra", "--expires-in", "90d",
                 "--json")
    assert t["expires_at"] and t["token"].startswith("scs_")
    listed = run_json(db, "tokens", "list", d["id"], "--json")
    assert {x["name"] for x in listed} == {"initial", "entra"}
    assert all("token" not in x for x in listed)
    rot = run_json(db, "tokens", "rotate", d["id"], t["id"], "--overlap", "10m", "--json")
    assert rot["previous_token_id"] == t["id"]
    assert "revoked" in run(db, "tokens", "revoke", d["id"], rot["id"]).stdout
    admin = run_json(db, "admin-tokens", "create", "--name", "ops", "--json")
    assert admin["kind"] == "admin"
    assert "deleted" in run(db, "directories", "delete", d["id"], "--yes").stdout


@pytest.mark.parametrize("args,message", [
    (("directories", "show", "no-such-id"), "no directory no-such-id"),
    (("directories", "create", " "), "1 to 255 characters"),
    (("tokens", "create", "no-such-id"), "no directory"),
    (("tokens", "revoke", "no-such-id", "tok"), "no token"),
    (("tokens", "create", "x", "--expires-in", "soon"), "is not a duration"),
])
def test_bad_input_is_a_readable_error(db: str, args: tuple[str, ...], message: str) -> None:
    proc = run(db, *args, ok=False)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_serve_journal_and_logs_keep_secrets(db: str, tmp_path: Path) -> None:
    d = run_json(db, "directories", "create", "served", "--json")
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db}
    with log.open("w") as out:
        proc = subprocess.Popen([*SCIMSYNC, "serve", "--port", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        headers = {"Authorization": f"Bearer {d['token']}"}
        r = httpx2.post(f"{base}{d['scim_path']}/Users", headers=headers, json={
            "schemas": [USER], "userName": "logged", "password": "Pa55-word-NEVER"})
        assert r.status_code == 201, r.text
        bad = httpx2.get(f"{base}{d['scim_path']}/Users",
                         headers={"Authorization": "Bearer scs_dfake_secretvalue123"})
        assert bad.status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    text = log.read_text()
    assert '"status":201' in text
    assert d["token"] not in text and d["token"].split("_", 2)[2] not in text
    assert "Pa55-word-NEVER" not in text and "secretvalue123" not in text
    lines = run(db, "journal", d["id"], "--json").stdout.splitlines()
    (entry,) = [json.loads(x) for x in lines]
    assert entry["op"] == "created" and entry["lifecycle"] == "joiner"
    assert "password" not in json.dumps(entry)
    table = run(db, "journal", d["id"]).stdout
    assert "created" in table and "joiner" in table


def test_directory_discovery_command(db: str) -> None:
    d = run_json(db, "directories", "create", "draft-clients", "--json")
    assert run_json(db, "directories", "discovery", d["id"], "--json") == {
        "agent_extension": False}
    assert run_json(db, "directories", "discovery", d["id"], "--agent-extension",
                    "--json") == {"agent_extension": True}
    assert run_json(db, "directories", "discovery", d["id"], "--json") == {
        "agent_extension": True}
    proc = run(db, "directories", "discovery", "no-such-directory", ok=False)
    assert proc.returncode == 2 and "no directory" in proc.stderr
