"""The accidental-deletion guard counts groups and agents as it counts users: each kind
against those of its kind the target holds, held as one batch that a person approves
or rejects (docs/provisioning.md: Accidental-deletion guard)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import Engine
from starlette.testclient import TestClient

from conftest import Scim
from downstream import converge
from scimsync.connectors import memory
from scimsync.store import holds
from scimsync.store.directories import Directories
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler
from test_targets_admin import cli

AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"


class Teams:
    """Twelve people, all in Sales, and fourteen other teams, provisioned with their
    groups (and agents, where the application takes them) to an in-memory application."""

    def __init__(self, engine: Engine, scim: Scim, teams: int = 14,
                 kinds: tuple[str, ...] = ("User", "Group")) -> None:
        self.engine, self.scim = engine, scim
        self.store_name = secrets.token_hex(4)
        self.users = [scim.user(f"t{i:02}@x.test")["id"] for i in range(12)]
        self.sales = scim.group("Sales", self.users)["id"]
        self.teams = [scim.group(f"Team {i:02}", self.users[i % 12:i % 12 + 1])["id"]
                      for i in range(teams)]
        self.settings: dict[str, Any] = {"store": self.store_name, "kinds": list(kinds)}
        self.tid = str(Targets(engine).add(scim.directory_id, f"app-{self.store_name}",
                                           "memory", self.settings)["id"])

    def remote(self, kind: str) -> set[str]:
        """The directory ids of what the application holds of this kind."""
        data = memory.store(self.store_name)
        with data.lock:
            return {d["externalId"] for d in data.of(kind).values()
                    if d.get("active") is not False}

    def change(self, **settings: Any) -> None:
        Targets(self.engine).update(self.tid, {**self.settings, **settings})

    def hold(self) -> dict[str, Any] | None:
        return Targets(self.engine).show(self.tid)["hold"]


def test_a_scope_change_that_would_delete_most_groups_is_held_then_rejected(
        engine: Engine, scim: Scim) -> None:
    t = Teams(engine, scim)
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams}
    t.change(scope={"groups": ["Sales"]})  # everyone stays; fourteen groups would go
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams}
    shown = Targets(engine).show(t.tid)
    assert shown["status"] == "held"
    hold = shown["hold"]
    assert hold["count"] == 14 and hold["by_type"] == {"Group": 14}
    assert [i["displayName"] for i in hold["identities"]] == [
        f"Team {i:02}" for i in range(14)]
    assert {i["type"] for i in hold["identities"]} == {"Group"}
    # Meanwhile the group that stays is kept in step.
    joiner = scim.user("joiner@x.test")["id"]
    r = scim.patch(f"/Groups/{t.sales}", [
        {"op": "add", "path": "members", "value": [{"value": joiner}]}])
    assert r.status_code in (200, 204)
    converge(engine, t.tid)
    assert joiner in t.remote("User")
    rejected = cli(engine, "targets", "reject", t.tid).stdout
    assert "14 deprovisionings held since" in rejected
    assert "Team 00, Team 01" in rejected and "and 4 more" in rejected
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams}
    assert t.hold() == {"count": 0, "by_type": {}, "since": None, "kept": 14,
                        "identities": []}
    # A kept group that is deleted in the directory goes, as any leaver.
    assert scim.delete(f"/Groups/{t.teams[0]}").status_code == 204
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams[1:]}


def test_an_approved_batch_of_groups_deletes_those_still_out_of_scope(
        engine: Engine, scim: Scim, client: TestClient, directories: Directories) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'a')['token']}"}
    t = Teams(engine, scim)
    converge(engine, t.tid)
    t.change(scope={"groups": ["Sales", "Team 13"]})
    converge(engine, t.tid)
    assert t.hold()["count"] == 13  # type: ignore[index]
    # A group that takes the name of one in scope meanwhile stays after all.
    assert scim.delete(f"/Groups/{t.teams[13]}").status_code == 204
    converge(engine, t.tid)
    r = scim.patch(f"/Groups/{t.teams[0]}", [
        {"op": "replace", "path": "displayName", "value": "Team 13"}])
    assert r.status_code in (200, 204), r.text
    converge(engine, t.tid)
    assert t.hold()["count"] == 12  # type: ignore[index]
    r = client.post(f"/admin/targets/{t.tid}/approve", headers=admin)
    assert r.json() == {"target_id": t.tid, "approved_deprovisions": 12}
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, t.teams[0]}
    assert t.hold() is None and Targets(engine).show(t.tid)["status"] == "active"
    assert Reconciler(engine).run(t.tid).applied == 0


def test_groups_deleted_in_the_directory_at_once_are_held_by_the_run(
        engine: Engine, scim: Scim, client: TestClient, directories: Directories) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'a')['token']}"}
    t = Teams(engine, scim)
    converge(engine, t.tid)
    for gid in t.teams[:12]:
        assert scim.delete(f"/Groups/{gid}").status_code == 204
    plan = Reconciler(engine).plan(t.tid)
    assert [a["detail"] for a in plan.actions if a["action"] == "hold"] == [
        "would deprovision 12 of 15 provisioned groups: held for a person "
        "(scimsync targets approve, or reject)"]
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams}
    hold = t.hold()
    assert hold is not None and hold["by_type"] == {"Group": 12}
    assert all(i["left_directory"] for i in hold["identities"])
    r = client.post(f"/admin/targets/{t.tid}/reject", headers=admin)
    assert r.json() == {"target_id": t.tid, "rejected_deprovisions": 12}
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, *t.teams}


def test_a_few_groups_leaving_the_scope_go_when_the_pass_is_over(
        engine: Engine, scim: Scim) -> None:
    t = Teams(engine, scim, teams=3)
    converge(engine, t.tid)
    t.change(scope={"groups": ["Sales", "Team 02"]})
    converge(engine, t.tid)
    assert t.remote("Group") == {t.sales, t.teams[2]}
    assert t.hold() is None


def test_agents_deleted_in_the_directory_at_once_are_held_then_approved(
        engine: Engine, scim: Scim) -> None:
    t = Teams(engine, scim, teams=0, kinds=("User", "Group", "Agent"))
    bots = []
    for i in range(12):
        r = scim.post("/Agents", {"schemas": [AGENT], "name": f"bot-{i:02}"})
        assert r.status_code == 201, r.text
        bots.append(r.json()["id"])
    converge(engine, t.tid)
    assert t.remote("Agent") == set(bots)
    for bot in bots[:11]:
        assert scim.delete(f"/Agents/{bot}").status_code == 204
    converge(engine, t.tid)
    assert t.remote("Agent") == set(bots)
    hold = t.hold()
    assert hold is not None and hold["by_type"] == {"Agent": 11}
    assert sorted(i["name"] for i in hold["identities"]) == [
        f"bot-{i:02}" for i in range(11)]
    assert t.remote("User") == set(t.users)  # people are not held with them
    assert holds.approve(engine, t.tid)["approved_deprovisions"] == 11
    converge(engine, t.tid)
    assert t.remote("Agent") == {bots[11]}
