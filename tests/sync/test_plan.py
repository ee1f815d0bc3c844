"""The plan is what runs: a property test over random directories and changes, and
what `scimsync plan` shows a person."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from conftest import Scim
from downstream import converge
from scimsync.connectors import memory
from scimsync.store.directories import Directories
from scimsync.store.tables import links
from scimsync.store.targets import Targets
from scimsync.sync.engine import Reconciler
from scimsync.sync.work import Work

change = st.sampled_from(["retitle", "deactivate", "reactivate", "delete", "join", "leave",
                          "new"])


def user_actions(actions: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(a["resource_id"], a["action"]) for a in actions
            if a["resource_type"] == "User" and a["outcome"] == "ok"}


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(people=st.integers(2, 8), teams=st.integers(0, 2),
       deprovision=st.sampled_from(["deactivate", "delete"]),
       concurrency=st.sampled_from([1, 4]),
       changes=st.lists(st.tuples(change, st.integers(0, 50)), max_size=10))
def test_applying_the_plan_leaves_nothing_to_plan(
        engine: Engine, client: Any, directories: Directories, people: int, teams: int,
        deprovision: str, concurrency: int, changes: list[tuple[str, int]]) -> None:
    d = directories.create(f"plan-{secrets.token_hex(4)}")
    scim = Scim(client, d["id"], d["token"], d["token_id"])
    users = [scim.user(f"u{i}@x.test", title="T")["id"] for i in range(people)]
    groups = [scim.group(f"G{g}", users[g::2])["id"] for g in range(teams)]
    store = secrets.token_hex(4)
    tid = str(Targets(engine).add(d["id"], "app", "memory", {
        "store": store, "profile": {"deprovision": deprovision,
                                    "concurrency": concurrency}})["id"])
    converge(engine, tid)
    alive = list(users)
    for kind, n in changes:
        if not alive:
            break
        uid = alive[n % len(alive)]
        if kind == "retitle":
            scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "title", "value": f"T{n}"}])
        elif kind in ("deactivate", "reactivate"):
            scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "active",
                                          "value": kind == "reactivate"}])
        elif kind == "delete":
            scim.delete(f"/Users/{uid}")
            alive.remove(uid)
        elif kind in ("join", "leave") and groups:
            gid = groups[n % len(groups)]
            op = "add" if kind == "join" else "remove"
            scim.patch(f"/Groups/{gid}", [{"op": op, "path": "members",
                                           "value": [{"value": uid}]}])
        elif kind == "new":
            alive.append(scim.user(f"n{n}-{secrets.token_hex(2)}@x.test")["id"])
    planned = Reconciler(engine).plan(tid)
    assert planned.error is None
    applied = Reconciler(engine).run(tid)
    assert applied.error is None
    converge(engine, tid)
    # What was planned for people is exactly what was applied to them.
    assert user_actions(applied.actions) == user_actions(planned.actions)
    # And once applied, nothing is left to plan.
    again = Reconciler(engine).plan(tid)
    assert [a for a in again.actions if a["outcome"] == "ok"] == []
    memory.drop(store)


def test_plan_shows_names_changes_deprovisioning_and_the_guard(
        engine: Engine, scim: Scim, tmp_path: Any) -> None:
    users = [scim.user(f"g{i}@x.test", title="Old")["id"] for i in range(14)]
    store = secrets.token_hex(4)
    t = Targets(engine).add(scim.directory_id, f"shown-{store}", "memory", {
        "store": store, "profile": {"max_deprovisions": 5}})
    converge(engine, t["id"])
    scim.patch(f"/Users/{users[0]}", [{"op": "replace", "path": "title", "value": "New"}])
    for uid in users[1:8]:
        scim.delete(f"/Users/{uid}")
    url = engine.url.render_as_string(hide_password=False)
    shown = subprocess.run([sys.executable, "-m", "scimsync.cli", "plan", t["id"], "--json",
                            "--database", url], capture_output=True, text=True, check=True)
    actions = json.loads(shown.stdout)["actions"]
    by_id = {a["resource_id"]: a for a in actions}
    assert by_id[users[0]]["action"] == "update"
    assert by_id[users[0]]["name"] == "g0@x.test"
    assert by_id[users[0]]["changes"] == {"set": {"title": "New"}}
    assert {by_id[u]["action"] for u in users[1:8]} == {"deactivate"}  # gone from it
    assert by_id[t["id"]]["action"] == "hold"  # 7 deprovisionings, past the guard's 5
    table = subprocess.run([sys.executable, "-m", "scimsync.cli", "plan", t["id"],
                            "--database", url], capture_output=True, text=True, check=True)
    assert "g0@x.test" in table.stdout and "title=New" in table.stdout
    memory.drop(store)


def test_a_plan_reads_back_a_link_a_stopped_run_left_unknown(
        engine: Engine, scim: Scim) -> None:
    """A run stopped between a request and the write of its link: the link carries an
    intent, and the application holds something else than the link says. The plan
    compares with the application, shows the repair, and writes nothing."""
    uid = scim.user("unknown@x.test", title="Engineer")["id"]
    name = secrets.token_hex(4)
    tid = str(Targets(engine).add(scim.directory_id, f"mem-{name}", "memory",
                                  {"store": name})["id"])
    converge(engine, tid)
    data = memory.store(name)
    with data.lock:
        (account,) = [d for d in data.of("User").values() if d["externalId"] == uid]
        account["title"] = "Intruder"  # what the interrupted request left, say
    with engine.begin() as conn:
        conn.execute(sa.update(links).where(links.c.target_id == tid,
                                            links.c.resource_id == uid).values(intent="put"))
    planned = Reconciler(engine).plan(tid)
    shown = [a for a in planned.actions if a["resource_id"] == uid]
    assert [a["action"] for a in shown] == ["replace"], shown
    with data.lock:
        assert account["title"] == "Intruder"  # a plan sends nothing
    with engine.connect() as conn:
        intent = conn.execute(sa.select(links.c.intent).where(
            links.c.target_id == tid, links.c.resource_id == uid)).scalar_one()
    assert intent == "put"  # and writes nothing
    Reconciler(engine).run(tid, only=[Work("User", uid)])
    with data.lock:
        assert [d["title"] for d in data.of("User").values()
                if d["externalId"] == uid] == ["Engineer"]
