"""Ownership policy, expiry and credential revocation for non-human identities, on
SQLite and PostgreSQL: the sweep applied at chosen times, the notices read back
through the events API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from conftest import Scim
from scimsync.errors import UsageError
from scimsync.nhi.policy import get_policy, set_policy
from scimsync.nhi.sweep import Sweeper
from scimsync.store.directories import Directories

AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"
AGENT_NHI = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:Agent"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
NHI = "urn:scimsync:params:scim:schemas:extension:nhi:1.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def admin(directories: Directories) -> dict[str, str]:
    return {"Authorization": f"Bearer {directories.create_token(None, 'nhi')['token']}"}


def agent(scim: Scim, name: str, **attrs: Any) -> dict[str, Any]:
    r = scim.post("/Agents", {"schemas": [AGENT, AGENT_NHI], "name": name, **attrs})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def deactivate(scim: Scim, path: str) -> None:
    r = scim.patch(path, [{"op": "replace", "path": "active", "value": False}])
    assert r.status_code == 200, r.text


def events(scim: Scim, admin: dict[str, str], rid: str | None = None) -> list[dict[str, Any]]:
    out = scim.http.get(f"/admin/directories/{scim.directory_id}/events", headers=admin,
                        params={"limit": "1000"}).json()["events"]
    return [e for e in out if rid is None or e["resource_id"] == rid]


def event_data(scim: Scim, admin: dict[str, str], rid: str, kind: str) -> dict[str, Any]:
    """The data of the one event of this type about `rid`."""
    found = [e["data"] for e in events(scim, admin, rid) if e["type"] == kind]
    assert len(found) == 1, found
    return found[0]  # type: ignore[no-any-return]


def nhi_events(scim: Scim, admin: dict[str, str], rid: str) -> list[str]:
    return [e["type"] for e in events(scim, admin, rid) if e["type"].startswith("nhi.")]


def test_owner_leaves_and_the_manager_takes_over(engine: Engine, scim: Scim,
                                                 admin: dict[str, str]) -> None:
    boss = scim.user("boss@x.test")
    alice = scim.user("alice@x.test", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    bot = agent(scim, "release-bot", owners=[{"value": alice["id"]}])
    sweeper = Sweeper(engine)
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {}  # all is well
    deactivate(scim, f"/Users/{alice['id']}")
    done = sweeper.run(scim.directory_id, NOW)
    assert done["notices"] == {"owner_departed": 1, "reassigned": 1}
    now = scim.get(f"/Agents/{bot['id']}").json()
    assert [(o["value"], o["type"]) for o in now["owners"]] == [(boss["id"], "User")]
    assert now["active"] is True
    assert nhi_events(scim, admin, bot["id"]) == ["nhi.owner_departed", "nhi.reassigned"]
    reassigned = event_data(scim, admin, bot["id"], "nhi.reassigned")
    assert reassigned["reason"] == "manager" and reassigned["from"] == [alice["id"]]
    # The change itself is journaled too (and provisioned like any other).
    assert "agent.updated" in [e["type"] for e in events(scim, admin, bot["id"])]
    # Nothing more to do: a second sweep is silent.
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {}


def test_a_deleted_owner_is_succeeded_by_the_manager_seen_before(
        engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    boss = scim.user("boss2@x.test")
    alice = scim.user("alice2@x.test", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    svc = scim.user("svc-ci", **{"schemas": [USER, NHI], NHI: {
        "kind": "service", "owners": [{"value": alice["id"]}]}})
    Sweeper(engine).run(scim.directory_id, NOW)  # notes alice's manager
    assert scim.delete(f"/Users/{alice['id']}").status_code == 204
    done = Sweeper(engine).run(scim.directory_id, NOW)
    assert done["notices"] == {"owner_departed": 1, "reassigned": 1}
    owners = scim.get(f"/Users/{svc['id']}").json()[NHI]["owners"]
    assert [(o["value"], o["type"]) for o in owners] == [(boss["id"], "User")]
    departed = event_data(scim, admin, svc["id"], "nhi.owner_departed")
    assert departed["owners"] == [{"value": alice["id"], "status": "deleted"}]


def test_fallback_group_takes_over(engine: Engine, scim: Scim) -> None:
    team = scim.group("platform", [scim.user("pat@x.test")["id"]])
    set_policy(engine, scim.directory_id, {"on_owner_departure": "group",
                                           "fallback_group": team["id"]})
    alice = scim.user("alice3@x.test")
    bot = agent(scim, "bot3", owners=[{"value": alice["id"]}])
    deactivate(scim, f"/Users/{alice['id']}")
    assert Sweeper(engine).run(scim.directory_id, NOW)["notices"] == {
        "owner_departed": 1, "reassigned": 1}
    owners = scim.get(f"/Agents/{bot['id']}").json()["owners"]
    assert [(o["value"], o["type"]) for o in owners] == [(team["id"], "Group")]


def test_no_heir_suspends_after_the_grace_period_and_requests_revocation(
        engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    set_policy(engine, scim.directory_id, {"on_owner_departure": "manager", "grace": "2d"})
    alice = scim.user("alice4@x.test")  # no manager, no fallback group
    bot = agent(scim, "bot4", owners=[{"value": alice["id"]}], **{AGENT_NHI: {
        "credentials": [{"value": "key-1", "type": "apiKey", "system": "vault"},
                        {"value": "client-9", "type": "oauthClient"}]}})
    deactivate(scim, f"/Users/{alice['id']}")
    sweeper = Sweeper(engine)
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {"owner_departed": 1}
    assert sweeper.run(scim.directory_id, NOW + timedelta(days=1))["notices"] == {}
    assert scim.get(f"/Agents/{bot['id']}").json()["active"] is True  # still in grace
    later = sweeper.run(scim.directory_id, NOW + timedelta(days=2, seconds=1))
    assert later["notices"] == {"suspended": 1}
    assert scim.get(f"/Agents/{bot['id']}").json()["active"] is False
    kinds = [e["type"] for e in events(scim, admin, bot["id"])]
    assert kinds[-3:] == ["agent.deactivated", "nhi.credentials_revoke_requested",
                          "nhi.suspended"]
    revoke = event_data(scim, admin, bot["id"], "nhi.credentials_revoke_requested")
    assert revoke["reason"] == "owner_departed"
    assert [(c["value"], c["type"]) for c in revoke["credentials"]] == [
        ("key-1", "apiKey"), ("client-9", "oauthClient")]
    assert sweeper.run(scim.directory_id, NOW + timedelta(days=3))["notices"] == {}


def test_suspend_policy_hands_over_to_no_one(engine: Engine, scim: Scim) -> None:
    set_policy(engine, scim.directory_id, {"on_owner_departure": "suspend", "grace": "1h"})
    boss = scim.user("boss9@x.test")
    alice = scim.user("alice9@x.test", **{ENTERPRISE: {"manager": {"value": boss["id"]}}})
    bot = agent(scim, "bot9", owners=[{"value": alice["id"]}])
    deactivate(scim, f"/Users/{alice['id']}")
    sweeper = Sweeper(engine)
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {"owner_departed": 1}
    assert sweeper.run(scim.directory_id, NOW + timedelta(hours=1))["notices"] == {
        "suspended": 1}
    now = scim.get(f"/Agents/{bot['id']}").json()
    assert now["active"] is False
    assert [o["value"] for o in now["owners"]] == [alice["id"]]  # not handed to the boss


def test_expiry_suspends(engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    owner = scim.user("owner5@x.test")
    svc = scim.user("svc-expiring", **{"schemas": [USER, NHI], NHI: {
        "kind": "workload", "owners": [{"value": owner["id"]}],
        "validUntil": "2026-12-01T00:00:00Z",
        "credentials": [{"value": "ssh-key-7", "type": "sshKey"}]}})
    sweeper = Sweeper(engine)
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {}
    done = sweeper.run(scim.directory_id, datetime(2026, 12, 1, tzinfo=UTC))
    assert done["notices"] == {"expired": 1, "suspended": 1}
    assert scim.get(f"/Users/{svc['id']}").json()["active"] is False
    assert nhi_events(scim, admin, svc["id"]) == [
        "nhi.expired", "nhi.credentials_revoke_requested", "nhi.suspended"]


def test_unowned_is_flagged_once(engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    bot = agent(scim, "stray")
    sweeper = Sweeper(engine)
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {"unowned": 1}
    assert sweeper.run(scim.directory_id, NOW)["notices"] == {}
    assert nhi_events(scim, admin, bot["id"]) == ["nhi.unowned"]


def test_reject_policy_refuses_identities_without_an_active_owner(
        engine: Engine, scim: Scim) -> None:
    set_policy(engine, scim.directory_id, {"unowned": "reject"})
    gone = scim.user("gone@x.test", active=False)
    empty = scim.group("nobody-home")
    for owners in ([], [{"value": gone["id"]}], [{"value": empty["id"]}]):
        r = scim.post("/Agents", {"schemas": [AGENT], "name": "strict", "owners": owners})
        assert r.status_code == 400 and r.json()["scimType"] == "invalidValue", r.text
        assert "active owner" in r.json()["detail"]
    ok = scim.post("/Agents", {"schemas": [AGENT], "name": "strict", "owners": [
        {"value": scim.user("here@x.test")["id"]}]})
    assert ok.status_code == 201
    # A group whose active people are in a nested group is staffed.
    inner = scim.group("inner", [scim.user("deep@x.test")["id"]])
    outer = scim.group("outer", [inner["id"], gone["id"]])
    nested = scim.post("/Agents", {"schemas": [AGENT], "name": "nested-owner",
                                   "owners": [{"value": outer["id"]}]})
    assert nested.status_code == 201, nested.text
    # An inactive identity needs no owner.
    assert scim.post("/Agents", {"schemas": [AGENT], "name": "parked",
                                 "active": False}).status_code == 201


def test_policy_is_validated(engine: Engine, scim: Scim) -> None:
    for raw, message in (({"unowned": "maybe"}, "unowned"),
                         ({"on_owner_departure": "group"}, "fallback_group"),
                         ({"fallback_group": "nope"}, "no Group"),
                         ({"grace": "soon"}, "grace"), ({"colour": "red"}, "unknown")):
        with pytest.raises(UsageError, match=message):
            set_policy(engine, scim.directory_id, raw)
    assert get_policy(engine, scim.directory_id).on_owner_departure == "manager"


def test_deleting_an_identity_requests_revocation_until_acknowledged(
        client: Any, engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    import csv
    import io

    owner = scim.user("own6@x.test")
    bot = agent(scim, "bot6", owners=[{"value": owner["id"]}], **{AGENT_NHI: {
        "credentials": [{"value": "key-6", "type": "apiKey", "system": "vault"}]}})
    svc = scim.user("svc-6", **{"schemas": [USER, NHI], NHI: {
        "kind": "bot", "owners": [{"value": owner["id"]}],
        "credentials": [{"value": "token-6", "type": "token"}]}})
    assert scim.delete(f"/Agents/{bot['id']}").status_code == 204
    deactivate(scim, f"/Users/{svc['id']}")
    deactivate(scim, f"/Users/{svc['id']}")  # no change, no second request
    listed = client.get("/admin/revocations", headers=admin, params={
        "directory": scim.directory_id, "status": "open"}).json()["revocations"]
    assert sorted((r["credential"], r["reason"], r["identity"]) for r in listed) == [
        ("key-6", "deleted", "bot6"), ("token-6", "deactivated", "svc-6")]
    as_csv = client.get("/admin/revocations", headers=admin, params={
        "directory": scim.directory_id, "format": "csv"})
    assert sorted(r["credential"] for r in csv.DictReader(io.StringIO(as_csv.text))) == [
        "key-6", "token-6"]
    key = next(r for r in listed if r["credential"] == "key-6")
    bad = client.post(f"/admin/revocations/{key['id']}/acknowledge", headers=admin, json={})
    assert bad.status_code == 400
    ok = client.post(f"/admin/revocations/{key['id']}/acknowledge", headers=admin,
                     json={"by": "secops@x.test", "note": "rotated in vault"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "acknowledged"
    assert ok.json()["acknowledged_by"] == "secops@x.test"
    again = client.post(f"/admin/revocations/{key['id']}/acknowledge", headers=admin,
                        json={"by": "secops@x.test"})
    assert again.status_code == 400 and "acknowledged" in again.json()["error"]
    assert client.post("/admin/revocations/nope/acknowledge", headers=admin,
                       json={"by": "x"}).status_code == 404
    still_open = client.get("/admin/revocations", headers=admin, params={
        "directory": scim.directory_id, "status": "open"}).json()["revocations"]
    assert [r["credential"] for r in still_open] == ["token-6"]
    revoked = event_data(scim, admin, bot["id"], "nhi.credential_revoked")
    assert revoked["credential"] == "key-6" and revoked["by"] == "secops@x.test"


def test_reports(client: Any, engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    import csv
    import io

    alice = scim.user("alice7@x.test")
    bob = scim.user("bob7@x.test")
    kept = agent(scim, "kept", owners=[{"value": alice["id"]}],
                 **{AGENT_NHI: {"validUntil": "2027-06-01T00:00:00Z"}})
    soon = agent(scim, "soon", owners=[{"value": alice["id"]}],
                 **{AGENT_NHI: {"validUntil": "2026-12-10T00:00:00Z"}})
    left = agent(scim, "left", owners=[{"value": bob["id"]}],
                 **{AGENT_NHI: {"credentials": [{"value": "k7"}]}})
    stray = agent(scim, "stray7")
    deactivate(scim, f"/Users/{bob['id']}")
    Sweeper(engine).run(scim.directory_id, NOW)

    def rows(kind: str, **params: Any) -> list[dict[str, Any]]:
        r = client.get(f"/admin/directories/{scim.directory_id}/nhi/reports/{kind}",
                       headers=admin, params=params)
        assert r.status_code == 200, r.text
        return r.json()["rows"]  # type: ignore[no-any-return]

    inventory = {r["name"]: r for r in rows("inventory")}
    assert set(inventory) == {"kept", "soon", "left", "stray7"}
    assert inventory["kept"]["owners"] == ["alice7@x.test (active)"]
    assert inventory["left"]["owner_status"] == "departed"
    assert inventory["left"]["owners"] == ["bob7@x.test (inactive)"]
    assert inventory["stray7"]["owner_status"] == "none"
    assert inventory["kept"]["kind"] == "agent" and inventory["kept"]["targets"] == []
    assert sorted(r["id"] for r in rows("orphaned")) == sorted([left["id"], stray["id"]])
    expiring = rows("expiring", days=30)
    assert [r["id"] for r in expiring] == [soon["id"]]
    assert [r["id"] for r in rows("expiring", days=365)] == [soon["id"], kept["id"]]
    leavers = rows("leavers", days=3650)
    assert [(r["id"], r["outcome"], r["departed_owners"]) for r in leavers] == [
        (left["id"], "waiting", [bob["id"]])]
    as_csv = client.get(f"/admin/directories/{scim.directory_id}/nhi/reports/orphaned",
                        headers={**admin, "Accept": "text/csv"})
    assert sorted(r["name"] for r in csv.DictReader(io.StringIO(as_csv.text))) == [
        "left", "stray7"]
    assert client.get(f"/admin/directories/{scim.directory_id}/nhi/reports/bogus",
                      headers=admin).status_code == 400
    # The policy over the admin API.
    r = client.put(f"/admin/directories/{scim.directory_id}/nhi/policy", headers=admin,
                   json={"on_owner_departure": "suspend", "grace": "1d"})
    assert r.status_code == 200 and r.json()["grace"] == 86400
    assert client.get(f"/admin/directories/{scim.directory_id}/nhi/policy",
                      headers=admin).json()["on_owner_departure"] == "suspend"
    assert client.put(f"/admin/directories/{scim.directory_id}/nhi/policy", headers=admin,
                      json={"unowned": "sometimes"}).status_code == 400
    swept = client.post(f"/admin/directories/{scim.directory_id}/nhi/sweep", headers=admin)
    assert swept.status_code == 200 and swept.json()["checked"] == 4


def test_worker_sweeps(engine: Engine, scim: Scim, admin: dict[str, str]) -> None:
    from scimsync.sync.worker import Worker

    bot = agent(scim, "worker-swept")
    Worker(engine).run_once()
    assert nhi_events(scim, admin, bot["id"]) == ["nhi.unowned"]


def test_cli(engine: Engine, scim: Scim, tmp_path: Any) -> None:
    """`scimsync nhi ...` as real processes."""
    import csv
    import io
    import json
    import os
    import subprocess
    import sys

    url = engine.url.render_as_string(hide_password=False)

    def cli(*args: str, ok: bool = True) -> str:
        r = subprocess.run([sys.executable, "-m", "scimsync.cli", *args, "--database", url],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "COLUMNS": "250"})
        assert (r.returncode == 0) == ok, r.stderr + r.stdout
        return r.stdout + r.stderr

    owner = scim.user("own8@x.test")
    bot = agent(scim, "cli-bot", owners=[{"value": owner["id"]}], **{AGENT_NHI: {
        "credentials": [{"value": "cli-key"}]}})
    policy = json.loads(cli("nhi", "policy", scim.directory_id, "--on-owner-departure",
                            "suspend", "--grace", "0", "--json"))
    assert policy["on_owner_departure"] == "suspend" and policy["grace"] == 0
    assert "unowned is one of" not in cli("nhi", "policy", scim.directory_id)
    assert "error:" in cli("nhi", "policy", scim.directory_id, "--fallback-group", "nope",
                           ok=False)
    deactivate(scim, f"/Users/{owner['id']}")
    out = cli("nhi", "sweep", "--directory", scim.directory_id)
    assert "owner_departed: 1" in out and "suspended: 1" in out
    inventory = list(csv.DictReader(io.StringIO(cli(
        "nhi", "report", "inventory", "--directory", scim.directory_id, "--csv"))))
    assert [(r["name"], r["active"], r["open_revocations"]) for r in inventory] == [
        ("cli-bot", "False", "1")]
    assert "cli-bot" in cli("nhi", "report", "leavers", "--directory", scim.directory_id)
    revocations = json.loads(cli("nhi", "revocations", "--directory", scim.directory_id,
                                 "--status", "open", "--json"))
    assert [(r["credential"], r["reason"]) for r in revocations] == [
        ("cli-key", "owner_departed")]
    acked = json.loads(cli("nhi", "ack", revocations[0]["id"], "--by", "ops", "--json"))
    assert acked["status"] == "acknowledged"
    assert "already" not in cli("nhi", "revocations", "--directory", scim.directory_id)
    assert "was acknowledged" in cli("nhi", "ack", revocations[0]["id"], "--by", "ops",
                                     ok=False)
    assert bot["id"] == inventory[0]["id"]
