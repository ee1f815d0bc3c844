"""Issue 12's tests: each real app, with the profile scimsync ships for it, through the
engine: a joiner, a mover with a group change, a leaver and a deletion reach it,
groups hold their members, a converged drift run finds nothing, and an account made
in the app behind the hub's back is found (docs/apps.md).

Each test starts its own app, so that nothing another test made is in it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from apps.probe import USER, Wire
from apps.servers import RUNNING, App
from conftest import Scim
from downstream import converge
from scimsync.drift.detect import Detector
from scimsync.drift.findings import list_findings
from scimsync.store.targets import Targets

# What each app's target says besides its shipped profile: django-scim2's host project
# has an account of its own (the one the token maps to), which the hub must leave be.
EXTRA: dict[str, dict[str, Any]] = {
    "canaille": {}, "better-auth": {},
    "django-scim2": {"drift": {"ignore": {"User": ['userName eq "scim-service"']}}}}


@pytest.fixture(params=sorted(RUNNING))
def fresh(request: pytest.FixtureRequest) -> Iterator[App]:
    with RUNNING[request.param]() as app:
        yield app


class AppView:
    """What the app holds, read over the wire; members by userName whatever the app
    names them by."""

    def __init__(self, app: App):
        self.wire = Wire(app)

    def users(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        start = 1
        while True:  # no count: Canaille fails on any
            page = self.wire("GET", "Users", startIndex=str(start)).json()
            items = page.get("Resources") or []
            out |= {u["userName"]: u for u in items}
            start += len(items)
            if not items or len(out) >= page.get("totalResults", 0) or start > 1000:
                return out

    def groups(self) -> dict[str, set[str]]:
        by_id = {u["id"]: name for name, u in self.users().items()}
        page = self.wire("GET", "Groups").json()
        return {g["displayName"]: {by_id.get(str(m["value"]), str(m["value"]))
                                   for m in g.get("members") or []}
                for g in page.get("Resources") or []}


def person(scim: Scim, given: str, tag: str, **extra: Any) -> dict[str, Any]:
    name = f"{given.lower()}.{tag}@example.com"
    return scim.user(name, name={"givenName": given, "familyName": f"Tester{tag}"},
                     displayName=f"{given} Tester", title="Engineer",
                     emails=[{"value": name, "type": "work", "primary": True}], **extra)


def findings(engine: Engine, tid: str) -> list[dict[str, Any]]:
    return [f for f in list_findings(engine, target_id=tid) if f.get("status") == "open"]


def test_the_whole_lifecycle_reaches_each_app_with_its_profile(
        engine: Engine, scim: Scim, fresh: App) -> None:
    tag = secrets.token_hex(3)
    ada, bob, cy = (person(scim, n, tag) for n in ("Ada", "Bob", "Cy"))
    eng = scim.group(f"eng {tag}", [ada["id"], bob["id"]])
    ops = scim.group(f"ops {tag}", [cy["id"]])
    tid = str(Targets(engine).add(scim.directory_id, f"{fresh.name}-{tag}", "scim", {
        **fresh.target(app=fresh.name), **EXTRA[fresh.name]})["id"])
    view = AppView(fresh)
    try:
        # Joiners and groups with members.
        converge(engine, tid)
        assert Targets(engine).show(tid)["dead_letters"] == 0
        users = view.users()
        assert {ada["userName"], bob["userName"], cy["userName"]} <= set(users)
        assert all(users[u["userName"]]["active"] for u in (ada, bob, cy))
        assert view.groups()[eng["displayName"]] == {ada["userName"], bob["userName"]}
        assert view.groups()[ops["displayName"]] == {cy["userName"]}

        # A mover: a new title and family name, from eng to ops.
        assert scim.patch(f"/Users/{ada['id']}", [
            {"op": "replace", "path": "title", "value": "Manager"},
            {"op": "replace", "path": "name.familyName", "value": f"Moved{tag}"}
        ]).status_code == 200
        scim.patch(f"/Groups/{eng['id']}", [
            {"op": "remove", "path": f'members[value eq "{ada["id"]}"]'}])
        scim.patch(f"/Groups/{ops['id']}", [
            {"op": "add", "path": "members", "value": [{"value": ada["id"]}]}])
        converge(engine, tid)
        groups = view.groups()
        assert groups[eng["displayName"]] == {bob["userName"]}
        assert groups[ops["displayName"]] == {cy["userName"], ada["userName"]}
        moved = view.users()[ada["userName"]]
        assert moved["name"]["familyName"] == f"Moved{tag}"
        if "title" in view.users()[bob["userName"]]:  # an app that stores titles
            assert moved["title"] == "Manager"

        # A leaver: deactivated in the directory, then in the app.
        assert scim.patch(f"/Users/{bob['id']}", [
            {"op": "replace", "path": "active", "value": False}]).status_code == 200
        converge(engine, tid)
        assert view.users()[bob["userName"]]["active"] is False

        # Converged: a drift run reads the whole app and finds nothing.
        run = Detector(engine).run(tid)
        assert run["status"] == "complete", run
        assert [(f["class"], f["evidence"]) for f in findings(engine, tid)] == []

        # An account made in the app behind the hub's back is an orphan.
        stray = f"stray.{tag}@example.com"
        made = view.wire("POST", "Users", {
            "schemas": [USER], "userName": stray, "active": True,
            "name": {"givenName": "Stray", "familyName": "Account", "formatted": "Stray A"},
            "emails": [{"value": stray}]})
        assert made.status_code == 201, made.text
        run = Detector(engine).run(tid)
        assert run["status"] == "complete", run
        found = findings(engine, tid)
        assert [(f["class"], f["remote_id"]) for f in found] == \
            [("orphaned_account", str(made.json()["id"]))]

        # A deletion: the identity leaves the directory; its account is deactivated
        # (the default `deprovision`), and its group membership goes with it.
        assert scim.delete(f"/Users/{cy['id']}").status_code == 204
        converge(engine, tid)
        assert view.users()[cy["userName"]]["active"] is False
        assert Targets(engine).show(tid)["dead_letters"] == 0
    finally:
        view.wire.close()
