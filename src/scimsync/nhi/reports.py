"""Reports on non-human identities, for operators and auditors (CLI tables, JSON, CSV,
and the admin API):

- `inventory`: every Agent and non-human User, its owners and their status, age,
  expiry, last change, the targets it is provisioned to, open revocations;
- `orphaned`: active identities without an active owner;
- `expiring`: identities past or within `days` of their `validUntil`;
- `leavers`: identities whose owners left in the last `days` days, and what became
  of them (reassigned, suspended, still waiting).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select

from scimsync.errors import UsageError
from scimsync.nhi.revocations import list_revocations
from scimsync.nhi.sweep import STATE, identities
from scimsync.protocol.agents import facets
from scimsync.protocol.timefmt import format_time, parse_time
from scimsync.store.lean import json_value
from scimsync.store.nhi import owner_status
from scimsync.store.resources import Store
from scimsync.store.tables import links, targets

Doc = dict[str, Any]
KINDS = ("inventory", "orphaned", "expiring", "leavers")
COLUMNS = ["name", "resource_type", "kind", "active", "owners", "owner_status", "age_days",
           "valid_until", "last_modified", "targets", "open_revocations", "id"]
LEAVER_COLUMNS = ["name", "resource_type", "departed_at", "departed_owners", "outcome",
                  "owners", "active", "id"]


def _name(status: Doc) -> str:
    doc = status.get("doc") or {}
    return str(doc.get("userName") or doc.get("displayName") or "")


def inventory(engine: Engine, directory_id: str, at: datetime | None = None) -> list[Doc]:
    at = at or datetime.now(UTC)
    store = Store(engine, group_commit=False)
    found = list(identities(store, directory_id))
    ids = [rec.id for _, rec in found]
    provisioned: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for i in range(0, len(ids), 500):
            for rid, name in conn.execute(
                    select(links.c.resource_id, targets.c.name)
                    .join(targets, targets.c.id == links.c.target_id)
                    .where(links.c.resource_id.in_(ids[i:i + 500]),
                           links.c.state == "provisioned",
                           links.c.remote_id.is_not(None))
                    .order_by(targets.c.name)):
                provisioned.setdefault(rid, []).append(name)
        open_by: dict[str, int] = {}
        for r in list_revocations(engine, directory_id, "open", limit=100_000):
            open_by[r["resource_id"]] = open_by.get(r["resource_id"], 0) + 1
        rows = []
        for rtype, rec in found:
            f = facets(rtype.name, rec.doc)
            assert f is not None
            status = owner_status(conn, directory_id, f.owners)
            owners = []
            for o in f.owners:
                s = status.get(str(o.get("value")))
                state = "deleted" if s is None else "active" if s["active"] else (
                    "no active member" if s["type"] == "Group" else "inactive")
                owners.append(f"{_name(s) if s else o.get('value')} ({state})")
            any_active = any(s["active"] for s in status.values())
            rows.append({
                "id": rec.id, "resource_type": rtype.name,
                "name": rec.doc.get("name") or rec.doc.get("userName"),
                "kind": f.kind, "active": f.active, "owners": owners,
                "owner_status": "active" if any_active else "departed" if f.owners
                else "none",
                "created": rec.created,
                "age_days": (at - parse_time(rec.created)).days,
                "valid_until": f.valid_until, "last_modified": rec.last_modified,
                "targets": provisioned.get(rec.id, []),
                "open_revocations": open_by.get(rec.id, 0)})
    return rows


def report(engine: Engine, directory_id: str, kind: str, days: int = 30,
           at: datetime | None = None) -> list[Doc]:
    """One of KINDS, as rows."""
    if kind not in KINDS:
        raise UsageError(f"report is one of {', '.join(KINDS)}")
    if days < 0:
        raise UsageError("days cannot be negative")
    at = at or datetime.now(UTC)
    if kind == "leavers":
        return _leavers(engine, directory_id, days, at)
    rows = inventory(engine, directory_id, at)
    if kind == "orphaned":
        return [r for r in rows if r["active"] and r["owner_status"] != "active"]
    if kind == "expiring":
        horizon = at + timedelta(days=days)
        soon = [r for r in rows if r["valid_until"] and parse_time(r["valid_until"]) <= horizon]
        for r in soon:
            r["expired"] = parse_time(r["valid_until"]) <= at
        return sorted(soon, key=lambda r: parse_time(r["valid_until"]))
    return rows


def _leavers(engine: Engine, directory_id: str, days: int, at: datetime) -> list[Doc]:
    since = format_time(at - timedelta(days=days))
    rows = []
    by_id = {r["id"]: r for r in inventory(engine, directory_id, at)}
    with engine.connect() as conn:
        for rid, row in by_id.items():
            state = conn.execute(STATE, {"rid": rid}).first()
            notified = json_value(state[3]) if state is not None and state[3] else {}
            departed_at = notified.get("owner_departed")
            if not departed_at or departed_at < since:
                continue
            waiting = state is not None and state[1] is not None
            outcome = "suspended" if not row["active"] else "waiting" if waiting \
                else "reassigned"
            rows.append({**row, "departed_at": departed_at,
                         "departed_owners": notified.get("departed_owners") or [],
                         "outcome": outcome})
    return sorted(rows, key=lambda r: r["departed_at"], reverse=True)
