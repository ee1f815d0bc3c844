"""Configuration changes converge, under the accidental-deletion guard: a change of
scope, mapping, roles or profile re-evaluates everyone as bulk work, and what it would
deprovision is judged as one batch that a person approves or rejects."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import converge
from scimsync.connectors import memory
from scimsync.errors import UsageError
from scimsync.store import holds
from scimsync.store.tables import links, targets
from scimsync.store.targets import Targets
from scimsync.sync import engine as engine_module
from scimsync.sync.engine import Reconciler


class Setup:
    """A directory of people, some in Sales, provisioned to an in-memory application."""

    def __init__(self, engine: Engine, scim: Scim, people: int = 40, sales: int = 5,
                 **settings: Any) -> None:
        self.engine, self.scim = engine, scim
        self.store_name = secrets.token_hex(4)
        self.users = [scim.user(f"u{i:02}@x.test")["id"] for i in range(people)]
        self.sales = scim.group("Sales", self.users[:sales])["id"]
        self.settings: dict[str, Any] = {"store": self.store_name, **settings}
        self.tid = str(Targets(engine).add(scim.directory_id, f"app-{self.store_name}",
                                           "memory", self.settings)["id"])
        converge(engine, self.tid)
        assert len(self.remote()) == people

    @property
    def data(self) -> memory.MemoryStore:
        return memory.store(self.store_name)

    def remote(self) -> dict[str, dict[str, Any]]:
        with self.data.lock:
            return {d["externalId"]: d for d in self.data.of("User").values()}

    def active(self) -> set[str]:
        return {k for k, v in self.remote().items() if v.get("active") is not False}

    def change(self, **settings: Any) -> dict[str, Any]:
        """Replace the target's configuration, as `apply -f` or the admin API does."""
        changed = Targets(self.engine).update(self.tid, {**self.settings, **settings})
        self.settings = {**self.settings, **settings}
        return changed

    def show(self) -> dict[str, Any]:
        return Targets(self.engine).show(self.tid)

    def bulk(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(targets.c.bulk).where(
                targets.c.id == self.tid)).scalar_one()

    def join_sales(self, user_name: str) -> str:
        uid = str(self.scim.user(user_name)["id"])
        r = self.scim.patch(f"/Groups/{self.sales}", [
            {"op": "add", "path": "members", "value": [{"value": uid}]}])
        assert r.status_code in (200, 204), r.text
        return uid


def test_a_mapping_change_converges_every_user_and_reapplying_it_is_a_no_op(
        engine: Engine, scim: Scim) -> None:
    s = Setup(engine, scim, people=30)
    changed = s.change(mapping=[{"target": "title", "value": "Employee"}])
    assert changed["resync"] is True
    assert s.bulk()["kind"] == "resync"
    converge(engine, s.tid)
    assert {u["title"] for u in s.remote().values()} == {"Employee"}
    assert s.bulk() is None
    # The same configuration again (pacing aside) starts nothing.
    again = s.change(mapping=[{"target": "title", "value": "Employee"}],
                     profile={"concurrency": 2})
    assert again["resync"] is False and s.bulk() is None


def test_a_scope_change_is_held_as_one_batch_while_a_joiner_is_provisioned(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "BULK_USERS", 8)  # the pass takes several chunks
    monkeypatch.setattr(engine_module, "BULK_SLICE_SECONDS", 0)  # a run, a chunk
    s = Setup(engine, scim)
    s.change(scope={"groups": ["Sales"]})
    rec = Reconciler(engine)
    first = rec.run(s.tid)
    assert first.error is None and not first.done
    assert s.active() == set(s.users)  # a chunk defers its deprovisionings
    joiner = s.join_sales("joiner@x.test")
    converge(engine, s.tid)
    assert s.remote()[joiner]["active"] is True  # joiners keep flowing
    assert s.active() == {*s.users, joiner}  # nobody was taken out
    shown = s.show()
    assert shown["status"] == "held"
    assert shown["hold"]["count"] == 35  # every chunk's deprovisionings, one batch
    assert [i["userName"] for i in shown["hold"]["identities"]] == [
        f"u{i:02}@x.test" for i in range(5, 40)]
    assert Targets(engine).list(scim.directory_id)[0]["status"] == "held"


def test_a_rejected_batch_deprovisions_nobody_and_is_not_proposed_again(
        engine: Engine, scim: Scim) -> None:
    s = Setup(engine, scim)
    s.change(scope={"groups": ["Sales"]})
    converge(engine, s.tid)
    assert holds.reject(engine, s.tid) == {"target_id": s.tid, "rejected_deprovisions": 35}
    converge(engine, s.tid)
    assert s.active() == set(s.users)
    shown = s.show()
    assert shown["status"] == "active" and shown["hold"]["count"] == 0
    assert shown["hold"]["kept"] == 35
    with pytest.raises(UsageError, match="holds no deprovisionings"):
        holds.approve(engine, s.tid)
    # A resync by hand does not propose the rejected batch again.
    Targets(engine).resync(s.tid)
    converge(engine, s.tid)
    assert s.active() == set(s.users) and s.show()["status"] == "active"
    # A kept account whose identity leaves the directory goes, as any leaver.
    leaver = s.users[-1]
    scim.delete(f"/Users/{leaver}")
    converge(engine, s.tid)
    assert s.remote()[leaver]["active"] is False
    # A kept account that comes back into scope is an ordinary one again.
    back = s.users[10]
    r = scim.patch(f"/Groups/{s.sales}", [
        {"op": "add", "path": "members", "value": [{"value": back}]}])
    assert r.status_code in (200, 204)
    converge(engine, s.tid)
    with engine.connect() as conn:
        assert back not in holds.of(conn, s.tid, [back])
    # A new configuration proposes the others again, as a new batch.
    s.change(scope={"groups": ["Sales"]}, mapping=[{"target": "title", "value": "Rep"}])
    converge(engine, s.tid)
    assert s.show()["hold"]["count"] == 33
    assert s.active() == set(s.users) - {leaver}


def test_an_approved_batch_deprovisions_exactly_those_still_wanted(
        engine: Engine, scim: Scim) -> None:
    s = Setup(engine, scim)
    s.change(scope={"groups": ["Sales"]})
    converge(engine, s.tid)
    assert s.show()["hold"]["count"] == 35
    stays = s.users[20]  # joins Sales while the batch waits: it should stay after all
    r = scim.patch(f"/Groups/{s.sales}", [
        {"op": "add", "path": "members", "value": [{"value": stays}]}])
    assert r.status_code in (200, 204)
    converge(engine, s.tid)
    assert s.show()["hold"]["count"] == 34
    assert holds.approve(engine, s.tid) == {"target_id": s.tid, "approved_deprovisions": 34}
    converge(engine, s.tid)
    assert s.active() == {*s.users[:5], stays}
    shown = s.show()
    assert shown["status"] == "active" and shown["hold"] is None
    assert Reconciler(engine).run(s.tid).applied == 0


def test_a_small_batch_is_applied_when_the_pass_is_over(engine: Engine, scim: Scim) -> None:
    s = Setup(engine, scim, people=12, sales=9)
    s.change(scope={"groups": ["Sales"]})  # three of twelve: under the guard
    converge(engine, s.tid)
    assert s.active() == set(s.users[:9])
    assert s.show()["hold"] is None


@pytest.mark.parametrize("rule", [{"scope": {"groups": ["Sales", "Salse"]}},
                                  {"roles": [{"group": "Sales", "value": "rep"},
                                             {"group": "CRM Admins", "value": "admin"}]}])
def test_a_rule_naming_a_group_that_does_not_exist_is_refused(
        engine: Engine, scim: Scim, rule: dict[str, Any]) -> None:
    s = Setup(engine, scim, people=3, sales=1)
    where, missing = ("scope.groups[1]", "Salse") if "scope" in rule else (
        "roles[1]", "CRM Admins")
    message = re.escape(f"{where}: no group '{missing}' in the directory")
    with pytest.raises(UsageError, match=message):
        Targets(engine).add(scim.directory_id, "typo", "memory",
                            {"store": s.store_name, **rule})
    assert [t["name"] for t in Targets(engine).list(scim.directory_id)] == [
        f"app-{s.store_name}"]
    before = s.show()["config"]
    with pytest.raises(UsageError, match=message):
        s.change(**rule)
    assert s.show()["config"] == before and s.bulk() is None
    # The group's id, or its name in another case, is a group that exists.
    assert s.change(scope={"groups": [s.sales.upper(), "sales"]})["resync"] is True
    converge(engine, s.tid)
    assert s.active() == {s.users[0]}  # two leave the scope: too few to hold


def test_a_lost_link_is_found_again_by_a_resync(engine: Engine, scim: Scim) -> None:
    s = Setup(engine, scim, people=5, sales=5)
    lost = s.users[2]
    remote_id = s.remote()[lost]["id"]
    with engine.begin() as conn:
        conn.execute(sa.delete(links).where(links.c.target_id == s.tid,
                                            links.c.resource_id == lost))
    assert Targets(engine).resync(s.tid)["resync"] is True
    converge(engine, s.tid)
    assert len(s.remote()) == 5  # adopted again, not created twice
    with engine.connect() as conn:
        assert conn.execute(sa.select(links.c.remote_id).where(
            links.c.target_id == s.tid, links.c.resource_id == lost)).scalar_one() == remote_id
