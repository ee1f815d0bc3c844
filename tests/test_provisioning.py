"""Outbound provisioning to a real third-party SCIM server (python-scim's scim2-server)."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import ENTERPRISE, Scim, free_port
from downstream import PEER_TOKEN, Peer, converge, wait_http
from scimsync.connectors.contract import Capabilities
from scimsync.connectors.memory import MemoryConnector, MemoryStore
from scimsync.store.tables import dead_letters, links, targets
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler


def add_target(engine: Engine, scim: Scim, peer: Peer, **settings: Any) -> str:
    profile = settings.pop("profile", {})
    t = Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(2)}", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN},
        "profile": profile, **settings})
    return str(t["id"])


def test_initial_load_then_changes_converge(engine: Engine, scim: Scim, peer: Peer) -> None:
    boss = scim.user("boss@x.test", name={"givenName": "Big", "familyName": "Boss"})
    alice = scim.user("alice@x.test", title="Engineer", **{
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
        ENTERPRISE: {"department": "R&D", "manager": {"value": boss["id"]}}})
    bob = scim.user("bob@x.test")
    team = scim.group("Team", [alice["id"], bob["id"]])
    tid = add_target(engine, scim, peer)
    converge(engine, tid)
    remote = peer.users()
    assert set(remote) == {boss["id"], alice["id"], bob["id"]}
    assert remote[alice["id"]]["userName"] == "alice@x.test"
    assert remote[alice["id"]][ENTERPRISE]["manager"]["value"] == remote[boss["id"]]["id"]
    rgroup = peer.groups()[team["id"]]
    assert {m["value"] for m in rgroup["members"]} == {remote[alice["id"]]["id"],
                                                       remote[bob["id"]]["id"]}
    # Changes flow through the journal.
    scim.patch(f"/Users/{alice['id']}", [{"op": "replace", "path": "title", "value": "Lead"}])
    scim.patch(f"/Groups/{team['id']}",
               [{"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}])
    scim.patch(f"/Users/{bob['id']}", [{"op": "replace", "path": "active", "value": False}])
    converge(engine, tid)
    remote = peer.users()
    assert remote[alice["id"]]["title"] == "Lead"
    assert remote[bob["id"]]["active"] is False
    rgroup = peer.groups()[team["id"]]
    assert [m["value"] for m in rgroup["members"]] == [remote[alice["id"]]["id"]]
    # A second run with nothing new changes nothing.
    assert Reconciler(engine).run(tid).applied == 0


@pytest.mark.parametrize("mode", ["deactivate", "delete"])
def test_leaver_is_deprovisioned(engine: Engine, scim: Scim, peer: Peer, mode: str) -> None:
    leaver = scim.user("leaver@x.test")
    scim.group("Everyone", [leaver["id"]])
    tid = add_target(engine, scim, peer, profile={"deprovision": mode})
    converge(engine, tid)
    remote_id = peer.users()[leaver["id"]]["id"]
    scim.delete(f"/Users/{leaver['id']}")
    converge(engine, tid)
    if mode == "delete":
        assert leaver["id"] not in peer.users()
    else:
        assert peer.users()[leaver["id"]]["active"] is False
    assert all(m["value"] != remote_id for m in peer.groups().popitem()[1].get("members", []))


def test_group_scoping(engine: Engine, scim: Scim, peer: Peer) -> None:
    inside, outside = scim.user("in@x.test"), scim.user("out@x.test")
    g = scim.group("App Users", [inside["id"]])
    scim.group("Others", [outside["id"]])
    tid = add_target(engine, scim, peer, scope={"groups": ["App Users"]})
    converge(engine, tid)
    assert set(peer.users()) == {inside["id"]}
    assert set(peer.groups()) == {g["id"]}
    # Joining the group provisions; leaving it deprovisions.
    scim.patch(f"/Groups/{g['id']}", [{"op": "add", "path": "members",
                                        "value": [{"value": outside["id"]}]}])
    converge(engine, tid)
    assert set(peer.users()) == {inside["id"], outside["id"]}
    scim.patch(f"/Groups/{g['id']}", [{"op": "remove", "path": "members",
                                        "value": [{"value": inside["id"]}]}])
    converge(engine, tid)
    assert peer.users()[inside["id"]]["active"] is False


def test_filter_scoping(engine: Engine, scim: Scim, peer: Peer) -> None:
    rd = scim.user("rd@x.test", **{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                                               ENTERPRISE], ENTERPRISE: {"department": "R&D"}})
    scim.user("sales@x.test")
    tid = add_target(engine, scim, peer, scope={
        "filter": f'active eq true and {ENTERPRISE}:department eq "R&D"'})
    converge(engine, tid)
    assert set(peer.users()) == {rd["id"]}


def test_lost_links_are_adopted_not_duplicated(engine: Engine, scim: Scim, peer: Peer) -> None:
    users = [scim.user(f"u{i}@x.test")["id"] for i in range(3)]
    tid = add_target(engine, scim, peer)
    converge(engine, tid)
    before = {k: v["id"] for k, v in peer.users().items()}
    # As if the hub crashed after creating the accounts but before saving the links.
    with engine.begin() as conn:
        conn.execute(sa.delete(links).where(links.c.target_id == tid))
        conn.execute(sa.update(targets).where(targets.c.id == tid).values(cursor=-1))
    converge(engine, tid)
    after = {k: v["id"] for k, v in peer.users().items()}
    assert after == before
    assert set(after) == set(users)


def test_credentials_are_encrypted_and_never_shown(engine: Engine, scim: Scim,
                                                   peer: Peer) -> None:
    tid = add_target(engine, scim, peer)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(targets).where(targets.c.id == tid)).one()
    assert PEER_TOKEN not in str(tuple(stored))
    shown = Targets(engine).show(tid)
    assert PEER_TOKEN not in str(shown) and shown["has_credentials"] is True


def test_rejected_request_goes_to_dead_letters(engine: Engine, scim: Scim,
                                               peer: Peer) -> None:
    ok = scim.user("fine@x.test")
    tid = add_target(engine, scim, peer)
    converge(engine, tid)
    # A userName the peer refuses as taken by another remote account it already has.
    r = httpx2.post(f"{peer.base}/Users", json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "clash@x.test"},
        headers={"Authorization": f"Bearer {PEER_TOKEN}"})
    assert r.status_code == 201
    clash = scim.user("clash@x.test")
    result = Reconciler(engine).run(tid)
    assert result.error is None
    with engine.connect() as conn:
        dead = conn.execute(sa.select(dead_letters).where(dead_letters.c.target_id == tid)).all()
        cursor = conn.execute(sa.select(targets.c.cursor).where(targets.c.id == tid)).scalar_one()
    # An account made by hand (no externalId) is not adopted by default: a conflict
    # for a person, never a duplicate, never an overwrite, never a stall.
    remote = peer.get("Users", filter='userName eq "clash@x.test"')["Resources"]
    assert len(remote) == 1
    assert not remote[0].get("externalId")
    assert [(d.resource_id, d.action) for d in dead] == [(clash["id"], "conflict")]
    assert cursor > 0
    assert ok["id"] in peer.users()


def test_served_changes_reach_the_app_within_a_second(engine: Engine, peer: Peer) -> None:
    """`scimsync serve` embeds a worker: an accepted change is applied downstream fast."""
    import json
    import os
    import signal

    url = engine.url.render_as_string(hide_password=False)
    # The session's key: the database holds other tests' credentials, sealed with it.
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": url}
    cli = [sys.executable, "-m", "scimsync.cli"]
    d = json.loads(subprocess.run([*cli, "directories", "create", "live", "--json"], env=env,
                                  capture_output=True, text=True, check=True).stdout)
    added = subprocess.run([*cli, "targets", "add", d["id"], "app", "--url", peer.base,
                            "--bearer-token-env", "PEER"], env={**env, "PEER": PEER_TOKEN},
                           check=False, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}{d['scim_path']}"
        headers = {"Authorization": f"Bearer {d['token']}"}
        wait_http(f"http://127.0.0.1:{port}/healthz")
        r = httpx2.post(f"{base}/Users", headers=headers, json={
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "fast"})
        assert r.status_code == 201
        uid = r.json()["id"]
        start = time.monotonic()
        while uid not in peer.users():
            assert time.monotonic() - start < 5, "not propagated"
            time.sleep(0.02)
        r = httpx2.patch(f"{base}/Users/{uid}", headers=headers, json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}]})
        start = time.monotonic()
        while peer.users()[uid]["active"] is not False:
            assert time.monotonic() - start < 5, "leaver not propagated"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_mass_deprovisioning_waits_for_approval_while_the_rest_flows(
        engine: Engine, scim: Scim, peer: Peer) -> None:
    from scimsync.store.holds import approve

    users = [scim.user(f"m{i}@x.test")["id"] for i in range(6)]
    tid = add_target(engine, scim, peer, profile={"max_deprovisions": 3})
    converge(engine, tid)
    for uid in users[:4]:
        scim.delete(f"/Users/{uid}")
    joiner = scim.user("joiner@x.test")["id"]
    result = Reconciler(engine).run(tid)
    assert result.error is None
    shown = Targets(engine).show(tid)
    assert shown["status"] == "held"
    assert shown["hold"]["count"] == 4
    assert sorted(i["userName"] for i in shown["hold"]["identities"]) == [
        f"m{i}@x.test" for i in range(4)]
    remote = peer.users()
    assert all(remote[u]["active"] for u in users)  # nothing was taken out
    assert remote[joiner]["active"] is True  # the joiner did not wait
    assert approve(engine, tid) == {"target_id": tid, "approved_deprovisions": 4}
    converge(engine, tid)
    remote = peer.users()
    assert [remote[u]["active"] for u in users] == [False] * 4 + [True] * 2
    shown = Targets(engine).show(tid)
    assert shown["status"] == "active" and shown["hold"] is None


def test_hub_to_hub(engine: Engine, scim: Scim, tmp_path: Path) -> None:
    """A second scimsync instance as the downstream application."""
    import json
    import os
    import signal

    db = f"sqlite:///{tmp_path / 'downstream.db'}"
    env = {**os.environ, "SCIMSYNC_DATABASE_URL": db}
    cli = [sys.executable, "-m", "scimsync.cli"]
    d = json.loads(subprocess.run([*cli, "directories", "create", "downstream", "--json"],
                                  env=env, capture_output=True, text=True, check=True).stdout)
    port = free_port()
    proc = subprocess.Popen([*cli, "serve", "--port", str(port), "--no-worker",
                             "--log-level", "warning"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}{d['scim_path']}"
    headers = {"Authorization": f"Bearer {d['token']}"}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        a, b = scim.user("a@hub.test", title="A"), scim.user("b@hub.test")
        g = scim.group("Hubbers", [a["id"], b["id"]])
        t = Targets(engine).add(scim.directory_id, "hub-b", "scim", {
            "url": base, "auth": {"type": "bearer", "token": d["token"]}})
        converge(engine, t["id"])
        users = httpx2.get(f"{base}/Users", headers=headers).json()["Resources"]
        by_ext = {u["externalId"]: u for u in users}
        assert set(by_ext) == {a["id"], b["id"]}
        assert by_ext[a["id"]]["title"] == "A"
        groups = httpx2.get(f"{base}/Groups", headers=headers).json()["Resources"]
        assert {m["value"] for m in groups[0]["members"]} == {u["id"] for u in users}
        scim.patch(f"/Users/{a['id']}", [{"op": "replace", "path": "active", "value": False}])
        scim.patch(f"/Groups/{g['id']}", [{"op": "remove", "path": "members",
                                            "value": [{"value": b["id"]}]}])
        converge(engine, t["id"])
        got = httpx2.get(f"{base}/Users/{by_ext[a['id']]['id']}", headers=headers).json()
        assert got["active"] is False
        group = httpx2.get(f"{base}/Groups/{groups[0]['id']}", headers=headers).json()
        assert [m["value"] for m in group["members"]] == [by_ext[a["id"]]["id"]]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_unexpected_error_backs_off_instead_of_looping(engine: Engine, scim: Scim,
                                                       peer: Peer) -> None:
    scim.user("surprise@x.test")
    tid = add_target(engine, scim, peer)

    class Broken(MemoryConnector):
        def __init__(self, *args: Any) -> None:
            super().__init__(MemoryStore(), Capabilities())

        def find(self, *args: Any) -> Any:
            raise KeyError("a field the app was expected to send")

    with pytest.raises(KeyError):
        Reconciler(engine, connector_factory=Broken).run(tid)
    with engine.connect() as conn:
        row = conn.execute(sa.select(targets).where(targets.c.id == tid)).one()
    assert row.failures == 1 and row.retry_at is not None
    assert "internal error: KeyError" in row.last_error
    from scimsync.sync.worker import Worker
    assert tid not in Worker(engine).due()  # not retried before its backoff ends
