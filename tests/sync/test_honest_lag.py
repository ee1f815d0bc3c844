"""Honest lag: every delivery is timed from when its identity entered the target's
scope or changed, never from the moment it is applied (docs/provisioning.md: Lag).

Times are set by hand in the database (a target created an hour ago, a pass started
an hour ago), so nothing here sleeps.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import converge
from scimsync.connectors import memory
from scimsync.drift.detect import Detector
from scimsync.drift.remediate import fix
from scimsync.protocol.timefmt import format_time, now
from scimsync.store import holds
from scimsync.store.tables import (
    dead_letters,
    deliveries,
    findings,
    resources,
    targets,
)
from scimsync.store.targets import Targets
from scimsync.sync import origins
from scimsync.sync.engine import retry_dead_letters
from scimsync.sync.lag import target_lag
from test_targets_admin import cli

HOUR_MS = 3600 * 1000
CREATED: list[str] = []


@pytest.fixture(autouse=True)
def paused_after(engine: Engine) -> Iterator[None]:
    """The session's database is shared: these targets must not take another module's
    worker's lanes once the test is over."""
    yield
    with engine.begin() as conn:
        conn.execute(sa.update(targets).where(targets.c.id.in_(CREATED))
                     .values(status="paused"))
    CREATED.clear()


def ago(hours: float) -> str:
    return format_time(datetime.now(UTC) - timedelta(hours=hours))


def target(engine: Engine, scim: Scim, **settings: Any) -> tuple[str, str]:
    """A new in-memory target: its id and the name of its store."""
    name = secrets.token_hex(4)
    tid = str(Targets(engine).add(scim.directory_id, f"lag-{name}", "memory",
                                  {"store": name, **settings})["id"])
    CREATED.append(tid)
    return tid, name


def backdate(engine: Engine, table: sa.Table, ids: list[str], when: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id.in_(ids)).values(created=when))


def applied(engine: Engine, tid: str, **where: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(deliveries).where(
            deliveries.c.target_id == tid, deliveries.c.outcome == "ok",
            *[deliveries.c[k] == v for k, v in where.items()])
            .order_by(deliveries.c.id)).all())


def deactivated_by_hand(store: str, rid: str) -> None:
    """An account deactivated by hand in the application: drift."""
    data = memory.store(store)
    with data.lock:
        [account] = [d for d in data.of("User").values() if d.get("externalId") == rid]
        account["active"] = False


def test_an_initial_load_counts_from_the_targets_creation_not_from_its_first_run(
        engine: Engine, scim: Scim) -> None:
    """People who existed when the target was added waited since then; someone who
    joined after it was added waited since they joined."""
    old = [scim.user(f"old{i}-{secrets.token_hex(2)}@x.test")["id"] for i in range(3)]
    group = scim.group(f"Old {secrets.token_hex(2)}", old)["id"]
    backdate(engine, resources, [*old, group], ago(2))
    tid, _ = target(engine, scim)
    added = ago(1)
    backdate(engine, targets, [tid], added)
    joined = scim.user(f"new-{secrets.token_hex(2)}@x.test")["id"]
    converge(engine, tid)
    rows = {r.resource_id: r for r in applied(engine, tid, lifecycle="initial")}
    assert set(rows) >= {*old, group, joined}
    for rid in [*old, group]:
        assert rows[rid].changed_at == added
        assert rows[rid].lag_ms >= HOUR_MS
    with engine.connect() as conn:
        created = conn.execute(sa.select(resources.c.created).where(
            resources.c.id == joined)).scalar_one()
    assert rows[joined].changed_at == created
    assert rows[joined].lag_ms < HOUR_MS


def test_a_resync_counts_from_its_start(engine: Engine, scim: Scim) -> None:
    """Widening the scope brings people in: they entered it when the resync began."""
    tag = secrets.token_hex(2)
    inside = scim.user(f"in-{tag}@x.test")["id"]
    outside = scim.user(f"out-{tag}@x.test")["id"]
    scim.group(f"Scoped {tag}", [inside])
    backdate(engine, resources, [inside, outside], ago(3))
    tid, store = target(engine, scim, scope={"groups": [f"Scoped {tag}"]})
    converge(engine, tid)
    Targets(engine).update(tid, {"store": store})  # everyone
    started = ago(1)
    with engine.begin() as conn:
        bulk = conn.execute(sa.select(targets.c.bulk).where(targets.c.id == tid)).scalar_one()
        assert bulk["kind"] == "resync"
        conn.execute(sa.update(targets).where(targets.c.id == tid).values(
            bulk={**bulk, "at": started}))
    converge(engine, tid)
    [row] = [r for r in applied(engine, tid, lifecycle="resync") if r.resource_id == outside]
    assert (row.action, row.changed_at) == ("create", started)
    assert row.lag_ms >= HOUR_MS


def test_a_dead_letter_retried_counts_from_the_change_that_failed(
        engine: Engine, scim: Scim) -> None:
    user = scim.user(f"dead-{secrets.token_hex(2)}@x.test")["id"]
    tid, _ = target(engine, scim)
    changed = ago(2)
    with engine.begin() as conn:  # the change that was refused, two hours ago
        conn.execute(sa.insert(deliveries).values(
            target_id=tid, resource_type="User", resource_id=user, action="apply",
            outcome="dead", seq=7, lifecycle="joiner", changed_at=changed,
            applied_at=ago(1), lag_ms=HOUR_MS, detail="refused"))
        conn.execute(sa.insert(dead_letters).values(
            target_id=tid, resource_type="User", resource_id=user, action="apply",
            error="refused", status="open", created=ago(1)))
    assert retry_dead_letters(engine, tid)["retried"] == 1
    [row] = applied(engine, tid, resource_id=user)
    assert (row.action, row.seq, row.lifecycle, row.changed_at) == (
        "create", 7, "joiner", changed)
    assert row.lag_ms >= 2 * HOUR_MS


def test_a_sync_by_hand_counts_from_the_change_it_applies(engine: Engine, scim: Scim
                                                          ) -> None:
    """A pending change: from its journal entry. Nothing pending: a repair of what the
    target should have held since the last change."""
    user = scim.user(f"hand-{secrets.token_hex(2)}@x.test", title="A")
    tid, _ = target(engine, scim)
    converge(engine, tid)
    scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "title", "value": "B"}])
    pending = origins.by_hand(engine, tid, "User", user["id"])
    assert pending.lifecycle == "mover" and pending.changed_at is not None
    assert pending.seq > 0
    converge(engine, tid)
    repair = origins.by_hand(engine, tid, "User", user["id"])
    with engine.connect() as conn:
        modified = conn.execute(sa.select(resources.c.last_modified).where(
            resources.c.id == user["id"])).scalar_one()
    assert (repair.lifecycle, repair.changed_at) == ("remediation", modified)


def test_a_drift_fix_counts_from_when_the_drift_was_first_seen(
        engine: Engine, scim: Scim) -> None:
    alice = scim.user(f"alice-{secrets.token_hex(2)}@x.test")["id"]
    tid, store = target(engine, scim)
    converge(engine, tid)
    deactivated_by_hand(store, alice)
    Detector(engine).run(tid)
    first_seen = ago(1)
    with engine.begin() as conn:
        conn.execute(sa.update(findings).where(findings.c.target_id == tid)
                     .values(first_seen=first_seen))
    assert fix(engine, tid, ["attribute_drift"])["fixed"] == 1
    [row] = applied(engine, tid, resource_id=alice, lifecycle="remediation")
    assert row.changed_at == first_seen and row.lag_ms >= HOUR_MS
    assert row.applied_at <= now()


def test_an_approved_deprovisioning_counts_from_when_it_was_held_back(
        engine: Engine, scim: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resync that narrows the scope defers who would go, judges them as one batch
    (under the guard: approved), and the lane applies them: timed from the deferral,
    lifecycle `approved`."""
    tag = secrets.token_hex(2)
    users = [scim.user(f"h{i}-{tag}@x.test")["id"] for i in range(4)]
    scim.group(f"All {tag}", users)
    scim.group(f"Most {tag}", users[:3])
    tid, store = target(engine, scim, scope={"groups": [f"All {tag}"]})
    converge(engine, tid)
    Targets(engine).update(tid, {"store": store, "scope": {"groups": [f"Most {tag}"]}})
    held = ago(1)
    monkeypatch.setattr(holds, "now", lambda: held)  # the hold's clock: an hour ago
    converge(engine, tid)
    [row] = applied(engine, tid, resource_id=users[3], action="deactivate")
    assert (row.action, row.lifecycle, row.changed_at) == ("deactivate", "approved", held)
    assert row.lag_ms >= HOUR_MS


def test_lag_is_reported_per_phase_in_the_cli_the_admin_api_and_metrics(
        engine: Engine, scim: Scim, client: Any, directories: Any) -> None:
    """An initial load an hour old, two everyday changes (one a leaver) and a drift fix
    first seen an hour ago: each phase has its own figures, the overall ones stay where
    they were, and the worst leaver is still the leaver's own lag."""
    tag = secrets.token_hex(2)
    users = [scim.user(f"p{i}-{tag}@x.test")["id"] for i in range(3)]
    backdate(engine, resources, users, ago(2))
    tid, store = target(engine, scim)
    backdate(engine, targets, [tid], ago(1))
    converge(engine, tid)
    scim.patch(f"/Users/{users[0]}", [{"op": "replace", "path": "title", "value": "New"}])
    scim.patch(f"/Users/{users[1]}", [{"op": "replace", "path": "active", "value": False}])
    converge(engine, tid)
    deactivated_by_hand(store, users[2])
    Detector(engine).run(tid)
    with engine.begin() as conn:
        conn.execute(sa.update(findings).where(findings.c.target_id == tid)
                     .values(first_seen=ago(1)))
    assert fix(engine, tid, ["attribute_drift"])["fixed"] == 1

    lag = target_lag(engine, tid)
    phases = lag["phases"]
    assert set(phases) == {"initial", "incremental", "remediation"}
    assert phases["initial"]["samples"] == 3 and phases["initial"]["p50_ms"] >= HOUR_MS
    assert phases["incremental"]["samples"] == 2
    assert phases["incremental"]["max_ms"] < HOUR_MS
    assert phases["remediation"]["samples"] == 1
    assert phases["remediation"]["p50_ms"] >= HOUR_MS
    assert lag["samples"] == 6 and lag["max_ms"] >= HOUR_MS  # all phases together
    [leaver] = applied(engine, tid, resource_id=users[1], lifecycle="leaver")
    assert lag["worst_leaver"]["resource_id"] == users[1]
    assert lag["worst_leaver"]["lag_ms"] == leaver.lag_ms < HOUR_MS
    with engine.connect() as conn:
        assert {r.lifecycle: r.phase for r in conn.execute(sa.select(deliveries).where(
            deliveries.c.target_id == tid))} == {
            "initial": "initial", "mover": "incremental", "leaver": "incremental",
            "remediation": "remediation"}

    out = cli(engine, "lag", "--json").stdout
    mine = next(t for t in json.loads(out) if t["id"] == tid)
    assert mine["phases"] == phases
    assert {k: mine[k] for k in ("samples", "p50_ms", "worst_leaver")} == {
        k: lag[k] for k in ("samples", "p50_ms", "worst_leaver")}
    table = cli(engine, "lag", env={"COLUMNS": "250"}).stdout
    assert {"initial", "incremental", "remediation"} <= set(table.split())

    admin = {"Authorization": f"Bearer {directories.create_token(None, 't')['token']}"}
    assert client.get(f"/admin/targets/{tid}/lag", headers=admin).json()["phases"] == phases
    metrics = client.get("/metrics", headers=admin).text
    for phase in ("all", "initial", "incremental", "remediation"):
        line = (f'scimsync_propagation_lag_seconds{{directory_id="{scim.directory_id}",'
                f'phase="{phase}",quantile="0.5",target_id="{tid}"}}')
        assert line in metrics, phase
    labels = {m.split('phase="')[1].split('"')[0] for m in metrics.splitlines()
              if m.startswith("scimsync_propagation_lag_seconds{")}
    assert labels == {"all", "initial", "incremental", "remediation"}
