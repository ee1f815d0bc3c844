"""Drift detection against real downstream applications: python-scim's scim2-server
and a second scimsync directory behind a real HTTP server."""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, converge
from scimsync.connectors.contract import Transient
from scimsync.drift.detect import Detector
from scimsync.drift.findings import accept, list_findings
from scimsync.errors import UsageError
from scimsync.store.directories import Directories
from scimsync.store.tables import findings
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler, make_connector

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class App:
    """A downstream SCIM application, driven directly (as its own admins would)."""

    base: str
    token: str

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = httpx2.request(method, f"{self.base}/{path}", json=body, timeout=10,
                           headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    def users(self) -> dict[str, dict[str, Any]]:
        """Remote users by externalId (the hub's id), or by userName without one."""
        found = self.call("GET", "Users?count=1000")["Resources"]
        return {u.get("externalId") or u["userName"]: u for u in found}

    def groups(self) -> dict[str, dict[str, Any]]:
        found = self.call("GET", "Groups?count=1000")["Resources"]
        return {g.get("externalId") or g["displayName"]: g for g in found}

    def patch(self, path: str, ops: list[dict[str, Any]]) -> None:
        self.call("PATCH", path, {"schemas": [PATCH], "Operations": ops})


@pytest.fixture(params=["scim2-server", "scimsync"])
def app_(request: pytest.FixtureRequest, peer_root: str) -> Iterator[App]:
    if request.param == "scim2-server":
        yield App(f"{peer_root}/t{secrets.token_hex(4)}", PEER_TOKEN)
        return
    live = request.getfixturevalue("live_server")
    d = request.getfixturevalue("directories").create(f"app-{secrets.token_hex(3)}")
    yield App(f"{live}{d['scim_path']}", d["token"])


def add_target(engine: Engine, scim: Scim, app: App, **settings: Any) -> str:
    t = Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(2)}", "scim", {
        "url": app.base, "auth": {"type": "bearer", "token": app.token}, **settings})
    return str(t["id"])


def open_findings(engine: Engine, tid: str) -> set[tuple[str, str]]:
    return {(f["class"], f["subject"]) for f in list_findings(engine, target_id=tid,
                                                              status="open")}


def seed(scim: Scim) -> dict[str, Any]:
    people = {n: scim.user(f"{n}@x.test", title=n.title()) for n in
              ("alice", "bob", "carol", "dave")}
    people["Team"] = scim.group("Team", [people["alice"]["id"], people["bob"]["id"]])
    people["Admins"] = scim.group("Admins", [people["alice"]["id"]])
    return people


ROLES = {"roles": [{"group": "Admins", "value": "admin"}]}


def test_a_converged_target_has_no_findings(engine: Engine, scim: Scim, app_: App) -> None:
    seed(scim)
    tid = add_target(engine, scim, app_, **ROLES)
    converge(engine, tid)
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert run["stats"]["findings"] == {}
    assert run["stats"]["listed_users"] == 4 and run["stats"]["listed_groups"] == 2
    assert list_findings(engine, target_id=tid) == []


def test_every_class_is_found_exactly(engine: Engine, scim: Scim, app_: App) -> None:
    p = seed(scim)
    tid = add_target(engine, scim, app_, **ROLES)
    converge(engine, tid)
    before = app_.users()
    alice, bob = before[p["alice"]["id"]], before[p["bob"]["id"]]
    extra = make_drift(scim, app_, p)
    stranger, newbie, later = extra["stranger"], extra["newbie"], extra["later"]
    later_remote = app_.users()["later@x.test"]
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    expected = {
        ("orphaned_account", f"remote:{stranger['id']}"),
        ("lingering_access", p["bob"]["id"]),
        ("lingering_access", p["dave"]["id"]),
        ("missing_account", newbie["id"]),
        ("attribute_drift", p["alice"]["id"]),
        ("membership_drift", p["alice"]["id"]),
        ("membership_drift", p["Team"]["id"]),
        ("unmanaged_matchable", later["id"]),
    }
    assert open_findings(engine, tid) == expected
    by = {(f["class"], f["subject"]): f for f in list_findings(engine, target_id=tid)}
    title = by[("attribute_drift", p["alice"]["id"])]["evidence"]["differences"]
    assert title == [{"attribute": "title", "desired": "Alice", "actual": "CEO"}]
    roles = by[("membership_drift", p["alice"]["id"])]
    assert roles["evidence"]["entitlements"] == [
        {"attribute": "roles", "extra": ["superuser"], "missing": []}]
    assert roles["severity"] == "high"
    group = by[("membership_drift", p["Team"]["id"])]["evidence"]
    assert group["extra_members"] == [stranger["id"]]
    assert group["missing_members"] == [bob["id"]]
    assert by[("lingering_access", p["bob"]["id"])]["severity"] == "critical"
    assert by[("lingering_access", p["dave"]["id"])]["evidence"]["reason"].startswith(
        "deleted from the directory")
    assert by[("orphaned_account", f"remote:{stranger['id']}")]["remote"]["userName"] == \
        "stranger@x.test"
    assert by[("unmanaged_matchable", later["id"])]["remote_id"] == later_remote["id"]
    # Re-running finds the same, adds nothing.
    again = Detector(engine).run(tid)
    assert again["stats"]["new"] == 0 and again["stats"]["resolved"] == 0
    with engine.connect() as conn:
        rows = conn.execute(sa.select(sa.func.count()).select_from(findings).where(
            findings.c.target_id == tid)).scalar_one()
    assert rows == len(expected)
    # Put the title back by hand: that finding resolves, the others stay.
    app_.patch(f"Users/{alice['id']}", [{"op": "replace", "path": "title", "value": "Alice"}])
    third = Detector(engine).run(tid)
    assert third["stats"]["resolved"] == 1
    assert open_findings(engine, tid) == expected - {("attribute_drift", p["alice"]["id"])}


def test_the_apps_own_objects_are_ignored_but_never_a_claimed_one(
        engine: Engine, scim: Scim, app_: App) -> None:
    """drift.ignore names the app's own accounts: unclaimed, they are counted, not
    reported; one that is linked (lingering access) or matchable is reported anyway."""
    p = seed(scim)
    own = {"User": ['userName sw "svc-"', 'userName eq "dave@x.test"',
                    'userName eq "later@x.test"'], "Group": ['displayName eq "Ops"']}
    tid = add_target(engine, scim, app_, drift={"ignore": own}, **ROLES)
    converge(engine, tid)
    app_.call("POST", "Users", {"schemas": [CORE], "userName": "svc-backup", "active": True})
    stray = app_.call("POST", "Users", {"schemas": [CORE], "userName": "stray@x.test",
                                        "active": True})
    app_.call("POST", "Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                 "displayName": "Ops"})
    app_.call("POST", "Users", {"schemas": [CORE], "userName": "later@x.test",
                                "active": True})
    later = scim.user("later@x.test")
    scim.delete(f"/Users/{p['dave']['id']}")  # linked: its account is lingering access
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert open_findings(engine, tid) == {
        ("orphaned_account", f"remote:{stray['id']}"),
        ("lingering_access", p["dave"]["id"]),
        ("unmanaged_matchable", later["id"])}
    assert run["stats"]["ignored"] == 2  # svc-backup and the Ops group


def test_accepted_risk_stays_accepted_until_it_expires(engine: Engine, scim: Scim,
                                                        app_: App) -> None:
    scim.user("kept@x.test")
    tid = add_target(engine, scim, app_)
    converge(engine, tid)
    app_.call("POST", "Users", {"schemas": [CORE], "userName": "breakglass@x.test"})
    Detector(engine).run(tid)
    (finding,) = list_findings(engine, target_id=tid)
    assert finding["class"] == "orphaned_account"
    accepted = accept(engine, finding["id"], "break-glass account, reviewed quarterly",
                      "ciso@x.test", "2099-01-01T00:00:00Z")
    assert accepted["status"] == "accepted"
    assert accepted["accepted"]["approver"] == "ciso@x.test"
    assert Detector(engine).run(tid)["stats"]["new"] == 0
    assert list_findings(engine, target_id=tid)[0]["status"] == "accepted"
    # Its acceptance runs out: it is open again (and counts as new on the next run).
    with engine.begin() as conn:
        conn.execute(sa.update(findings).where(findings.c.id == finding["id"]).values(
            accepted_until="2000-01-01T00:00:00.000Z"))
    assert list_findings(engine, target_id=tid)[0]["status"] == "open"


def test_a_target_that_fails_mid_listing_yields_an_incomplete_run(
        engine: Engine, scim: Scim, app_: App) -> None:
    for i in range(5):
        scim.user(f"page{i}@x.test")
    tid = add_target(engine, scim, app_, profile={"page_size": 2})
    converge(engine, tid)
    app_.call("POST", "Users", {"schemas": [CORE], "userName": "orphan@x.test"})
    assert Detector(engine).run(tid)["stats"]["findings"] == {"orphaned_account": 1}

    def failing(kind: str, config: Any, secrets_: dict[str, Any]) -> Any:
        real = make_connector(kind, config, secrets_)
        listing = real.list

        def list_then_fail(k: str) -> Iterator[Any]:
            for n, item in enumerate(listing(k)):
                if n == 3:
                    raise Transient("GET Users: ReadTimeout")
                yield item

        real.list = list_then_fail
        return real

    run = Detector(engine, connector_factory=failing).run(tid)
    assert run["status"] == "incomplete"
    assert "could not be read whole" in run["error"]
    # Nothing was resolved or added on the strength of a partial listing.
    (finding,) = list_findings(engine, target_id=tid)
    assert finding["status"] == "open" and finding["class"] == "orphaned_account"


def test_webhook_targets_are_reported_not_reconcilable(engine: Engine, scim: Scim,
                                                       directories: Directories) -> None:
    t = Targets(engine).add(scim.directory_id, f"hook-{secrets.token_hex(2)}", "webhook", {
        "url": "http://127.0.0.1:9/hook", "secret": "whsec_" + "A" * 32})
    run = Detector(engine).run(t["id"])
    assert run["status"] == "not_reconcilable"
    assert "cannot be read back" in run["error"]


def make_drift(scim: Scim, app: App, p: dict[str, Any]) -> dict[str, Any]:
    """One finding of each class (as in test_every_class_is_found_exactly)."""
    remote, rgroups = app.users(), app.groups()
    alice, bob = remote[p["alice"]["id"]], remote[p["bob"]["id"]]
    stranger = app.call("POST", "Users", {"schemas": [CORE], "userName": "stranger@x.test",
                                          "active": True})
    app.patch(f"Users/{alice['id']}", [
        {"op": "replace", "path": "title", "value": "CEO"},
        {"op": "add", "path": "roles", "value": [{"value": "superuser"}]}])
    app.patch(f"Groups/{rgroups[p['Team']['id']]['id']}", [
        {"op": "remove", "path": f'members[value eq "{bob["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": stranger["id"]}]}])
    app.call("POST", "Users", {"schemas": [CORE], "userName": "later@x.test", "active": True})
    scim.patch(f"/Users/{p['bob']['id']}", [{"op": "replace", "path": "active",
                                              "value": False}])
    scim.delete(f"/Users/{p['dave']['id']}")
    return {"stranger": stranger, "newbie": scim.user("newbie@x.test"),
            "later": scim.user("later@x.test")}


def test_fixing_every_class_converges_the_target(engine: Engine, scim: Scim,
                                                 app_: App) -> None:
    from scimsync.drift.remediate import fix
    from scimsync.sync.config import DRIFT_CLASSES

    p = seed(scim)
    # An account made by hand is adopted only where the profile says so (adopt: match).
    tid = add_target(engine, scim, app_, **ROLES, profile={"adopt": "match"})
    converge(engine, tid)
    extra = make_drift(scim, app_, p)
    first = Detector(engine).run(tid)
    assert sum(first["stats"]["findings"].values()) == 8
    done = fix(engine, tid, list(DRIFT_CLASSES))
    assert done["error"] is None and (done["fixed"], done["failed"]) == (8, 0)
    assert {f["status"] for f in list_findings(engine, target_id=tid)} == {"remediated"}
    after = Detector(engine).run(tid)
    assert after["stats"]["findings"] == {}, list_findings(engine, target_id=tid,
                                                          status="open")
    assert after["stats"]["resolved"] == 8
    remote = app_.users()
    assert remote[p["alice"]["id"]]["title"] == "Alice"
    assert {r["value"] for r in remote[p["alice"]["id"]]["roles"]} == {"admin"}
    assert remote[p["bob"]["id"]]["active"] is False
    assert remote[p["dave"]["id"]]["active"] is False  # deactivate is the default mode
    assert remote["stranger@x.test"]["active"] is False
    assert remote[extra["newbie"]["id"]]["userName"] == "newbie@x.test"
    assert remote[extra["later"]["id"]]["userName"] == "later@x.test"  # adopted: externalId
    assert "later@x.test" not in remote  # no duplicate was created


def test_an_unmanaged_account_is_not_adopted_by_default(engine: Engine, scim: Scim,
                                                       app_: App) -> None:
    """The fix for unmanaged_matchable adopts under the engine's rules: an account
    without this identity's externalId stays as it is, and the finding stays open."""
    from scimsync.drift.remediate import fix

    p = seed(scim)
    tid = add_target(engine, scim, app_, **ROLES)
    converge(engine, tid)
    extra = make_drift(scim, app_, p)
    Detector(engine).run(tid)
    done = fix(engine, tid, ["unmanaged_matchable"])
    assert (done["fixed"], done["failed"]) == (0, 1)
    remote = app_.users()
    assert "later@x.test" in remote and extra["later"]["id"] not in remote
    assert ("unmanaged_matchable", extra["later"]["id"]) in open_findings(engine, tid)


def test_a_linked_account_deleted_by_hand_is_recreated_and_relinked(
        engine: Engine, scim: Scim, app_: App) -> None:
    """missing_account on a linked account: the diff against the state last applied is
    empty, so the fix must look for the account, find it gone, and create it again."""
    from scimsync.drift.remediate import fix
    from scimsync.store.tables import links

    gone = scim.user("gone@x.test", title="Gone")
    team = scim.group("Team", [gone["id"]])
    tid = add_target(engine, scim, app_)
    converge(engine, tid)
    before = app_.users()[gone["id"]]
    app_.call("DELETE", f"Users/{before['id']}")
    Detector(engine).run(tid)
    assert ("missing_account", gone["id"]) in open_findings(engine, tid)
    done = fix(engine, tid, ["missing_account"])
    assert done["error"] is None and (done["fixed"], done["failed"]) == (1, 0)
    again = app_.users()[gone["id"]]
    assert again["id"] != before["id"]
    assert (again["userName"], again["title"], again["active"]) == ("gone@x.test", "Gone", True)
    with engine.connect() as conn:
        link = conn.execute(sa.select(links).where(links.c.target_id == tid,
                                                   links.c.resource_id == gone["id"])).one()
    assert (link.remote_id, link.state, link.intent) == (again["id"], "provisioned", None)
    assert [m["value"] for m in app_.groups()[team["id"]]["members"]] == [again["id"]]
    # The next reconciliation finds nothing to reopen.
    after = Detector(engine).run(tid)
    assert ("missing_account", gone["id"]) not in open_findings(engine, tid), after


def test_remediation_respects_modes_the_guard_and_incomplete_runs(
        engine: Engine, scim: Scim, app_: App) -> None:
    from scimsync.drift.remediate import fix
    from scimsync.errors import UsageError

    for i in range(12):
        scim.user(f"m{i}@x.test")
    tid = add_target(engine, scim, app_, drift={"remediate": {
        "missing_account": "auto", "attribute_drift": "report"}},
        profile={"max_deprovisions": 5})
    converge(engine, tid)
    for i in range(6):
        app_.call("POST", "Users", {"schemas": [CORE], "userName": f"ghost{i}@x.test",
                                    "active": True})
    late = scim.user("late@x.test")
    run = Detector(engine).run(tid)
    # missing_account is fixed automatically after the run.
    assert run["remediation"]["fixed"] == 1
    assert late["id"] in app_.users()
    with pytest.raises(UsageError, match="report-only"):
        fix(engine, tid, ["attribute_drift"])
    # Six orphans to take out: past the guard of five, a person must approve.
    with pytest.raises(UsageError, match="deletion guard"):
        fix(engine, tid, ["orphaned_account"])
    assert all(u["active"] is True for n, u in app_.users().items() if "ghost" in n)
    done = fix(engine, tid, ["orphaned_account"], approved=True)
    assert done["fixed"] == 6
    assert all(u["active"] is False for n, u in app_.users().items() if "ghost" in n)
    # Each take-out is a delivery, as the engine's own are: the audit trail.
    from scimsync.store.tables import deliveries
    orphan_ids = {f["id"] for f in list_findings(engine, target_id=tid,
                                                 cls="orphaned_account")}
    with engine.connect() as conn:
        taken = conn.execute(sa.select(deliveries).where(
            deliveries.c.target_id == tid, deliveries.c.lifecycle == "remediation")).all()
    # So is the missing account the engine provisioned (a remediation, timed from
    # when its finding was first seen).
    fixed = [r.action for r in taken if r.resource_id == late["id"]]
    assert fixed == ["create"]
    taken = [r for r in taken if r.resource_id != late["id"]]
    assert sorted(r.resource_id for r in taken) == sorted(orphan_ids)
    assert {(r.action, r.outcome) for r in taken} == {("deactivate", "ok")}
    assert all("orphaned account" in r.detail for r in taken)
    # After an incomplete run nothing is fixed.
    with engine.begin() as conn:
        from scimsync.store.tables import drift_runs
        conn.execute(sa.update(drift_runs).where(drift_runs.c.target_id == tid).values(
            status="incomplete"))
    with pytest.raises(UsageError, match="incomplete"):
        fix(engine, tid, ["lingering_access"])


def test_drift_and_findings_commands(engine: Engine, scim: Scim, app_: App) -> None:
    """`scimsync drift` and `scimsync findings` as real processes."""
    import csv
    import io
    import json
    import os
    import subprocess
    import sys

    db = engine.url.render_as_string(hide_password=False)

    def cli(*args: str, code: int = 0) -> str:
        proc = subprocess.run([sys.executable, "-m", "scimsync.cli", *args],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "SCIMSYNC_DATABASE_URL": db,
                                   "COLUMNS": "250"})
        assert proc.returncode == code, proc.stderr
        return proc.stdout + proc.stderr

    scim.user("kept@x.test")
    tid = add_target(engine, scim, app_)
    converge(engine, tid)
    ghost = app_.call("POST", "Users", {"schemas": [CORE], "userName": "ghost@x.test",
                                        "active": True})
    out = json.loads(cli("drift", tid, "--json"))
    assert out["run"]["status"] == "complete"
    assert [(f["class"], f["remote_id"]) for f in out["findings"]] == [
        ("orphaned_account", ghost["id"])]
    table = cli("drift", tid)
    assert "orphaned_account" in table and "ghost@x.test" in table
    rows = list(csv.DictReader(io.StringIO(cli("findings", "list", "--target", tid, "--csv"))))
    assert [(r["class"], r["identity"]) for r in rows] == [("orphaned_account", "ghost@x.test")]
    assert "needs a reason" not in cli("findings", "accept", rows[0]["id"], "--reason",
                                       "test account", "--approver", "me@x.test", "--until",
                                       "2099-01-01T00:00:00Z")
    assert "in the future" in cli("findings", "accept", rows[0]["id"], "--reason", "r",
                                  "--approver", "a", "--until", "2001-01-01", code=2)
    listed = json.loads(cli("findings", "list", "--target", tid, "--status", "accepted",
                            "--json"))
    assert [f["id"] for f in listed] == [rows[0]["id"]]
    fixed = json.loads(cli("drift", tid, "--fix", "orphaned_account", "--json"))
    assert fixed["remediation"]["fixed"] == 0  # accepted findings are not fixed
    assert rows[0]["id"] in cli("findings", "list", "--json")
    assert "lingering_access" in cli("findings", "list", "--class", "nonsense", code=2)


def test_admin_api_runs_lists_accepts_and_fixes(client: Any, directories: Directories,
                                                 engine: Engine, scim: Scim,
                                                 app_: App) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    kept = scim.user("kept@x.test")
    tid = add_target(engine, scim, app_)
    converge(engine, tid)
    ghost = app_.call("POST", "Users", {"schemas": [CORE], "userName": "ghost@x.test",
                                        "active": True})
    app_.patch(f"Users/{app_.users()[kept['id']]['id']}",
               [{"op": "replace", "path": "active", "value": False}])
    r = client.post(f"/admin/targets/{tid}/drift", headers=admin, json={})
    assert r.status_code == 200, r.text
    assert r.json()["run"]["stats"]["findings"] == {"orphaned_account": 1,
                                                    "attribute_drift": 1}
    # New findings are announced: drift.detected in the directory's events.
    events = client.get(f"/admin/directories/{scim.directory_id}/events", headers=admin,
                        params={"limit": "1000"}).json()["events"]
    detected = [e for e in events if e["type"] == "drift.detected"]
    assert len(detected) == 1 and detected[0]["resource_id"] == tid
    assert detected[0]["data"]["new_findings"] == 2
    assert detected[0]["data"]["findings"] == {"orphaned_account": 1, "attribute_drift": 1}
    assert Reconciler(engine).run(tid).error is None  # provisioning steps over it
    runs = client.get(f"/admin/targets/{tid}/drift-runs", headers=admin).json()["runs"]
    assert [x["status"] for x in runs] == ["complete"]
    listed = client.get("/admin/findings", headers=admin, params={
        "target": tid, "class": "orphaned_account"}).json()["findings"]
    assert [f["remote_id"] for f in listed] == [ghost["id"]]
    by_identity = client.get("/admin/findings", headers=admin, params={
        "directory": scim.directory_id, "identity": kept["id"]}).json()["findings"]
    assert [f["class"] for f in by_identity] == ["attribute_drift"]
    assert by_identity[0]["evidence"]["differences"] == [
        {"attribute": "active", "desired": True, "actual": False}]
    fid = listed[0]["id"]
    # The same report as CSV, by query parameter or by Accept header.
    for params, extra in (({"format": "csv"}, {}), ({}, {"Accept": "text/csv"})):
        r = client.get("/admin/findings", headers={**admin, **extra},
                       params={"target": tid, **params})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert sorted((x["class"], x["identity"], x["status"]) for x in rows) == [
            ("attribute_drift", "kept@x.test", "open"),
            ("orphaned_account", "ghost@x.test", "open")]
        assert {x["id"] for x in rows} == {f["id"] for f in client.get(
            "/admin/findings", headers=admin, params={"target": tid}).json()["findings"]}
    assert client.get("/admin/findings", headers=admin, params={"format": "xml"}
                      ).status_code == 400
    assert client.get(f"/admin/findings/{fid}", headers=admin).json()["id"] == fid
    assert client.get("/admin/findings/nope", headers=admin).status_code == 404
    bad = client.post(f"/admin/findings/{fid}/accept", headers=admin, json={"reason": "x"})
    assert bad.status_code == 400 and "approver" in bad.json()["error"]
    ok = client.post(f"/admin/findings/{fid}/accept", headers=admin, json={
        "reason": "vendor support login", "approver": "ciso@x.test",
        "until": "2099-12-31T00:00:00Z"})
    assert ok.json()["status"] == "accepted"
    assert client.get("/admin/findings", headers=admin, params={"class": "bogus"}
                      ).status_code == 400
    fixed = client.post(f"/admin/targets/{tid}/drift/fix", headers=admin,
                        json={"classes": ["attribute_drift"]}).json()
    assert fixed["fixed"] == 1
    assert app_.users()[kept["id"]]["active"] is True
    assert client.post(f"/admin/targets/{tid}/drift/fix", headers=admin,
                       json={"classes": "all"}).status_code == 400


def test_worker_runs_scheduled_reconciliations(engine: Engine, scim: Scim, app_: App,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.drift.detect import list_runs
    from scimsync.sync import worker as worker_module

    monkeypatch.setattr(worker_module, "DRIFT_CHECK_SECONDS", 0.0)
    scim.user("sched@x.test")
    tid = add_target(engine, scim, app_, drift={"interval": "1h"})
    w = worker_module.Worker(engine)
    w.run_once()  # provisions, then reconciles (never reconciled before)
    runs = list_runs(engine, tid)
    assert [(r["trigger"], r["status"]) for r in runs] == [("schedule", "complete")]
    w.run_once()
    assert len(list_runs(engine, tid)) == 1  # not due again for an hour
    with engine.begin() as conn:
        from scimsync.store.tables import drift_runs
        conn.execute(sa.update(drift_runs).where(drift_runs.c.target_id == tid).values(
            started="2000-01-01T00:00:00.000Z"))
    w.run_once()
    assert len(list_runs(engine, tid)) == 2
    with pytest.raises(UsageError, match="at least 60 seconds"):
        add_target(engine, scim, app_, drift={"interval": 5})


def test_fewer_collections_overlapping_runs_restore_the_thresholds() -> None:
    import gc
    import threading

    from scimsync.drift.detect import fewer_collections

    before = gc.get_threshold()
    inside: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def other_run() -> None:
        with fewer_collections():
            entered.set()
            release.wait(10)

    t = threading.Thread(target=other_run)
    with fewer_collections():
        inside.append(gc.get_threshold()[0])
        t.start()
        assert entered.wait(10)
    # The first run is out, the other is still in: the relaxed setting holds.
    inside.append(gc.get_threshold()[0])
    release.set()
    t.join()
    assert inside == [max(before[0], 50_000)] * 2
    assert gc.get_threshold() == before
