"""Deprovisionings the accidental-deletion guard holds back (the deprovision_holds table).

One row per (target, identity) that should leave the target but has not yet: a user, a
group, an agent or an agentic application (`resource_type`; `user_name` keeps the name
people know it by: userName, displayName or name):

- `deferred`: a configuration change's pass (a resync) found it; the pass judges all it
  found as one batch once it has seen everyone;
- `held`: the batch went past the guard and waits for a person;
- `approved`: a person approved it (or the batch was under the guard): the target's
  lane applies it, chunk by chunk, if it is still wanted;
- `kept`: a person rejected it: the account stays, and is not proposed again until the
  target's configuration changes, or the identity leaves the directory or comes back
  into scope.

docs/provisioning.md: Accidental-deletion guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, update

from scimsync.errors import UsageError
from scimsync.protocol.timefmt import now
from scimsync.store.tables import deprovision_holds, targets

H = deprovision_holds.c
STATES = ("deferred", "held", "approved", "kept")
CHUNK = 500  # ids per IN list
SHOWN = 1000  # identities of a held batch listed by `targets show`
NAMES = {"User": "userName", "Group": "displayName"}  # what each kind is known by


@dataclass(frozen=True)
class Hold:
    """One held-back deprovisioning."""

    resource_type: str
    resource_id: str
    user_name: str | None
    gone: bool
    state: str = "deferred"
    since: str | None = None  # when the hub first held it back


def of(conn: Connection, target_id: str, ids: list[str]) -> dict[str, Hold]:
    """The holds of these identities in the target, by id."""
    out: dict[str, Hold] = {}
    for i in range(0, len(ids), CHUNK):
        for r in conn.execute(select(deprovision_holds).where(
                H.target_id == target_id, H.resource_id.in_(ids[i:i + CHUNK]))):
            out[r.resource_id] = Hold(r.resource_type, r.resource_id, r.user_name, r.gone,
                                      r.state)
    return out


def put(conn: Connection, target_id: str, holds: list[Hold], state: str) -> None:
    """Record these holds in `state` (replacing what was held of the same identities)."""
    if not holds:
        return
    ids = [h.resource_id for h in holds]
    drop(conn, target_id, ids)
    ts = now()
    conn.execute(deprovision_holds.insert(), [
        {"target_id": target_id, "resource_id": h.resource_id,
         "resource_type": h.resource_type, "user_name": (h.user_name or "")[:255] or None,
         "gone": h.gone, "state": state, "since": ts} for h in holds])


def drop(conn: Connection, target_id: str, ids: list[str]) -> None:
    """Forget the holds of these identities (they left, or came back into scope)."""
    for i in range(0, len(ids), CHUNK):
        conn.execute(delete(deprovision_holds).where(
            H.target_id == target_id, H.resource_id.in_(ids[i:i + CHUNK])))


def clear(conn: Connection, target_id: str, states: tuple[str, ...] = STATES) -> None:
    """Forget every hold of the target in these states."""
    conn.execute(delete(deprovision_holds).where(H.target_id == target_id,
                                                 H.state.in_(states)))


def promote(conn: Connection, target_id: str, old: str, new: str) -> int:
    """Move every hold of the target from `old` to `new`; how many moved."""
    result = conn.execute(update(deprovision_holds).where(
        H.target_id == target_id, H.state == old).values(state=new))
    return int(result.rowcount or 0)


def count(conn: Connection, target_id: str, state: str) -> int:
    """How many holds of the target are in `state`."""
    return int(conn.execute(select(func.count()).select_from(deprovision_holds).where(
        H.target_id == target_id, H.state == state)).scalar_one())


def counts(conn: Connection, target_id: str, state: str) -> dict[str, int]:
    """How many holds of the target are in `state`, by kind (User, Group, ...)."""
    rows = conn.execute(select(H.resource_type, func.count()).where(
        H.target_id == target_id, H.state == state).group_by(H.resource_type)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def take(conn: Connection, target_id: str, state: str, limit: int) -> list[Hold]:
    """Up to `limit` holds of the target in `state`, in a stable order."""
    rows = conn.execute(select(deprovision_holds).where(
        H.target_id == target_id, H.state == state).order_by(H.resource_id).limit(limit))
    return [Hold(r.resource_type, r.resource_id, r.user_name, r.gone, r.state, r.since)
            for r in rows]


def held_counts(conn: Connection) -> dict[str, int]:
    """How many deprovisionings each target holds for a person, by target id."""
    rows = conn.execute(select(H.target_id, func.count()).where(H.state == "held")
                        .group_by(H.target_id)).all()
    return {str(r[0]): int(r[1]) for r in rows}


def shown_status(status: str, held: int) -> str:
    """A running target that holds deprovisionings for a person shows as `held`."""
    return "held" if status == "active" and held else status


def batch(conn: Connection, target_id: str) -> dict[str, Any] | None:
    """The held batch as people read it: how many (of each kind), since when, and who
    (a user's userName, a group's displayName, an agent's name)."""
    held = counts(conn, target_id, "held")
    kept = count(conn, target_id, "kept")
    if not held and not kept:
        return None
    since = conn.execute(select(func.min(H.since)).where(
        H.target_id == target_id, H.state == "held")).scalar()
    rows = conn.execute(select(H.resource_type, H.resource_id, H.user_name, H.gone).where(
        H.target_id == target_id, H.state == "held")
        .order_by(H.resource_type.desc(), H.user_name, H.resource_id).limit(SHOWN)).all()
    return {"count": sum(held.values()), "by_type": held, "since": since, "kept": kept,
            "identities": [{"id": r.resource_id, "type": r.resource_type,
                            NAMES.get(r.resource_type, "name"): r.user_name,
                            "left_directory": bool(r.gone)} for r in rows]}


def _decide(engine: Engine, target_id: str, new: str) -> int:
    with engine.begin() as conn:
        name = conn.execute(select(targets.c.name).where(
            targets.c.id == target_id)).scalar_one()
        moved = promote(conn, target_id, "held", new)
    if not moved:
        raise UsageError(f"target {name} holds no deprovisionings for approval")
    return moved


def approve(engine: Engine, target_id: str) -> dict[str, Any]:
    """Approve the held batch: the target's lane applies those still wanted."""
    return {"target_id": target_id,
            "approved_deprovisions": _decide(engine, target_id, "approved")}


def reject(engine: Engine, target_id: str) -> dict[str, Any]:
    """Reject the held batch: nobody is deprovisioned, and the accounts are kept."""
    return {"target_id": target_id,
            "rejected_deprovisions": _decide(engine, target_id, "kept")}
