"""Configuration changes through `apply -f`, the CLI and the admin API, end to end with
a real SCIM application downstream (python-scim's scim2-server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.store.directories import Directories
from scimsync.store.targets import Targets
from test_targets_admin import cli


def spec(scim: Scim, peer: Peer, **sections: Any) -> str:
    """A declarative file for one SCIM target (sections as YAML flow mappings)."""
    extra = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in sections.items())
    return f"""targets:
  - directory: {scim.directory_id}
    name: crm
    url: {peer.base}
    auth: {{type: bearer, token: "${{CRM_TOKEN}}"}}
{extra}"""


def test_apply_converges_a_mapping_change_and_refuses_a_typo_d_scope(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    users = [scim.user(f"crm{i}@x.test")["id"] for i in range(4)]
    scim.group("CRM Users", users)
    env = {"CRM_TOKEN": PEER_TOKEN}
    path = tmp_path / "scimsync.yaml"
    path.write_text(spec(scim, peer, scope={"groups": ["CRM Users"]}))
    cli(engine, "apply", "-f", str(path), env=env)
    tid = Targets(engine).show("crm", scim.directory_id)["id"]
    converge(engine, tid)
    assert set(peer.users()) == set(users)
    path.write_text(spec(scim, peer, scope={"groups": ["CRM Users"]},
                         mapping=[{"target": "title", "value": "Customer rep"}]))
    done = json.loads(cli(engine, "apply", "-f", str(path), "--json", env=env).stdout)
    assert done == [{"name": "crm", "directory": scim.directory_id, "result": "updated",
                     "resync": True}]
    converge(engine, tid)
    assert {u["title"] for u in peer.users().values()} == {"Customer rep"}
    again = json.loads(cli(engine, "apply", "-f", str(path), "--json", env=env).stdout)
    assert again[0]["resync"] is False  # the same file twice: nothing to re-evaluate
    # A typo in a scope group is refused, and nothing is stored.
    before = Targets(engine).show(tid)["config"]
    path.write_text(spec(scim, peer, scope={"groups": ["CRM Usres"]}))
    proc = cli(engine, "apply", "-f", str(path), env=env, ok=False)
    assert proc.returncode == 2
    assert "scope.groups[0]: no group 'CRM Usres' in the directory" in proc.stderr
    assert Targets(engine).show(tid)["config"] == before
    converge(engine, tid)
    assert all(u["active"] for u in peer.users().values())


def test_resync_by_cli_and_a_held_batch_decided_by_cli(
        engine: Engine, scim: Scim, peer: Peer, tmp_path: Path) -> None:
    users = [scim.user(f"held{i}@x.test")["id"] for i in range(13)]
    scim.group("CRM Users", users[:2])
    env = {"CRM_TOKEN": PEER_TOKEN}
    path = tmp_path / "scimsync.yaml"
    path.write_text(spec(scim, peer))
    cli(engine, "apply", "-f", str(path), env=env)
    tid = Targets(engine).show("crm", scim.directory_id)["id"]
    converge(engine, tid)
    started = json.loads(cli(engine, "resync", "crm", "--directory", scim.directory_id,
                             "--json").stdout)
    assert started["resync"] is True and started["id"] == tid
    assert converge(engine, tid).error is None
    path.write_text(spec(scim, peer, scope={"groups": ["CRM Users"]}))
    cli(engine, "apply", "-f", str(path), env=env)
    converge(engine, tid)
    shown = json.loads(cli(engine, "targets", "show", "crm", "--directory",
                           scim.directory_id, "--json").stdout)
    assert shown["status"] == "held" and shown["hold"]["count"] == 11
    rejected = cli(engine, "targets", "reject", "crm", "--directory", scim.directory_id)
    assert "11 deprovisionings held since" in rejected.stdout
    converge(engine, tid)
    assert all(u["active"] for u in peer.users().values())
    proc = cli(engine, "targets", "approve", "crm", "--directory", scim.directory_id,
               ok=False)
    assert proc.returncode == 2 and "holds no deprovisionings" in proc.stderr


def test_admin_api_updates_resyncs_and_decides_held_batches(
        client: Any, directories: Directories, engine: Engine, scim: Scim,
        peer: Peer) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'a')['token']}"}
    users = [scim.user(f"api{i}@x.test")["id"] for i in range(13)]
    scim.group("CRM Users", users[:2])
    body = {"url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN}}
    r = client.post(f"/admin/directories/{scim.directory_id}/targets", headers=admin,
                    json={"name": "api-crm", **body})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    converge(engine, tid)
    r = client.post(f"/admin/targets/{tid}/resync", headers=admin)
    assert r.status_code == 200 and r.json()["resync"] is True
    converge(engine, tid)
    typo = client.put(f"/admin/targets/{tid}", headers=admin,
                      json={**body, "scope": {"groups": ["CRM Userz"]}})
    assert typo.status_code == 400
    assert "scope.groups[0]: no group 'CRM Userz'" in typo.json()["error"]
    r = client.put(f"/admin/targets/{tid}", headers=admin,
                   json={**body, "scope": {"groups": ["CRM Users"]}})
    assert r.status_code == 200 and r.json()["resync"] is True
    converge(engine, tid)
    shown = client.get(f"/admin/targets/{tid}", headers=admin).json()
    assert shown["status"] == "held" and shown["hold"]["count"] == 11
    assert sorted(i["userName"] for i in shown["hold"]["identities"]) == sorted(
        f"api{i}@x.test" for i in range(2, 13))
    r = client.post(f"/admin/targets/{tid}/approve", headers=admin)
    assert r.json() == {"target_id": tid, "approved_deprovisions": 11}
    converge(engine, tid)
    remote = peer.users()
    assert {u for u in users if remote[u]["active"]} == set(users[:2])
    r = client.post(f"/admin/targets/{tid}/reject", headers=admin)
    assert r.status_code == 400 and "holds no deprovisionings" in r.json()["error"]
    paths = client.get("/admin/openapi.json").json()["paths"]
    assert {"put", "get"} <= set(paths["/targets/{tid}"])
    for action in ("approve", "reject", "resync"):
        assert "post" in paths[f"/targets/{{tid}}/{action}"]
