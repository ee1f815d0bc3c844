"""Targets through the CLI, the admin API, apply -f, plan, sync, lag and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.store.directories import Directories
from scimsync.store.tables import deliveries

CLI = [sys.executable, "-m", "scimsync.cli"]


def cli(engine: Engine, *args: str, env: dict[str, str] | None = None,
        ok: bool = True) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "SCIMSYNC_DATABASE_URL":
            engine.url.render_as_string(hide_password=False), **(env or {})}
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=full, timeout=60,
                          check=False)
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_target_lifecycle_plan_sync_and_lag(engine: Engine, scim: Scim,
                                                peer: Peer) -> None:
    u = scim.user("cli@x.test")
    added = json.loads(cli(engine, "targets", "add", scim.directory_id, "crm", "--url",
                           peer.base, "--bearer-token-env", "TOK", "--json",
                           env={"TOK": PEER_TOKEN}).stdout)
    assert added["status"] == "active" and added["has_credentials"] is True
    assert PEER_TOKEN not in json.dumps(added)
    shown = cli(engine, "targets", "show", "crm", "--directory", scim.directory_id).stdout
    assert PEER_TOKEN not in shown
    plan = json.loads(cli(engine, "plan", "crm", "--directory", scim.directory_id,
                          "--json").stdout)
    assert {(a["resource_id"], a["action"]) for a in plan["actions"]} == {(u["id"], "create")}
    assert peer.users() == {}  # plan changed nothing
    sync = json.loads(cli(engine, "sync", "crm", "--directory", scim.directory_id,
                          "--user", u["id"], "--json").stdout)
    assert [a["action"] for a in sync["actions"]] == ["create"]
    assert u["id"] in peer.users()
    assert "paused" in cli(engine, "targets", "pause", "crm", "--directory",
                           scim.directory_id).stdout
    lag = json.loads(cli(engine, "lag", "--json").stdout)
    mine = next(t for t in lag if t["id"] == added["id"])
    assert mine["samples"] == 1 and mine["p50_ms"] is not None
    proc = cli(engine, "targets", "add", scim.directory_id, "bad", "--url",
               "http://169.254.169.254/latest", ok=False)
    assert proc.returncode == 2 and "denied by the network policy" in proc.stderr
    proc = cli(engine, "targets", "add", scim.directory_id, "bad2", "--url", peer.base,
               "--scope-filter", "userName eq", ok=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_apply_file_is_idempotent(engine: Engine, scim: Scim, peer: Peer,
                                  tmp_path: Path) -> None:
    scim.group("Wiki Users")  # a scope names groups that exist
    spec = tmp_path / "scimsync.yaml"
    spec.write_text(f"""
targets:
  - directory: {scim.directory_id}
    name: wiki
    url: {peer.base}
    auth: {{type: bearer, token: "${{WIKI_TOKEN}}"}}
    profile: {{deprovision: delete, match: [externalId, email]}}
    scope: {{groups: [Wiki Users]}}
""")
    env = {"WIKI_TOKEN": PEER_TOKEN}
    first = json.loads(cli(engine, "apply", "-f", str(spec), "--json", env=env).stdout)
    second = json.loads(cli(engine, "apply", "-f", str(spec), "--json", env=env).stdout)
    assert [r["result"] for r in first] == ["created"]
    assert [r["result"] for r in second] == ["unchanged"]
    listed = json.loads(cli(engine, "targets", "list", "--directory", scim.directory_id,
                            "--json").stdout)
    assert [t["name"] for t in listed] == ["wiki"]
    assert listed[0]["config"]["profile"]["deprovision"] == "delete"
    missing = cli(engine, "apply", "-f", str(spec), ok=False)
    assert missing.returncode == 2 and "WIKI_TOKEN" in missing.stderr


def test_admin_api_targets_dead_letters_and_metrics(client: Any, directories: Directories,
                                                    engine: Engine, scim: Scim,
                                                    peer: Peer) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    r = client.post(f"/admin/directories/{scim.directory_id}/targets", headers=admin, json={
        "name": "api-app", "kind": "scim", "url": peer.base,
        "auth": {"type": "bearer", "token": PEER_TOKEN}})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    assert PEER_TOKEN not in r.text
    scim.user("api@x.test")
    converge(engine, tid)
    assert client.get(f"/admin/targets/{tid}", headers=admin).json()["provisioned"] == 1
    lag = client.get(f"/admin/targets/{tid}/lag", headers=admin).json()
    assert lag["samples"] == 1 and lag["deliveries"] == {"ok": 1}
    assert client.get(f"/admin/targets/{tid}/dead-letters",
                      headers=admin).json() == {"dead_letters": []}
    assert client.post(f"/admin/targets/{tid}/pause", headers=admin).json()["status"] == \
        "paused"
    metrics = client.get("/metrics", headers=admin).text
    assert f'scimsync_target_active{{directory_id="{scim.directory_id}",status="paused",' \
           f'target_id="{tid}"}} 0.0' in metrics
    assert "scimsync_propagation_lag_seconds{" in metrics
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(deliveries).where(
            deliveries.c.target_id == tid)).scalar_one() == 1
    bad = client.post(f"/admin/directories/{scim.directory_id}/targets", headers=admin,
                      json={"name": "x", "kind": "ftp", "url": peer.base})
    assert bad.status_code == 400 and "unknown target kind" in bad.json()["error"]
    assert client.delete(f"/admin/targets/{tid}", headers=admin).status_code == 204
