"""Bulk passes over a directory (an initial load, a resync): starting one, saving where
it is, and whether journal work waits meanwhile.

A pass walks every resource in chunks, between the target's journal changes; where it
is lives in `targets.bulk` ({"kind", "type", "after", "seq", "at"}, and why it was
started), while the journal cursor moves on (docs/architecture.md: Lanes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, exists, null, or_, select, update

from scimsync.protocol.timefmt import now
from scimsync.store.tables import (
    deprovision_holds,
    directories,
    links,
    resources,
    retries,
    targets,
)

T = targets.c


def begin(conn: Connection, target_id: str, directory_id: str, kind: str,
          reason: str | None = None, at: str | None = None) -> dict[str, Any]:
    """Start a pass from the first resource; the journal is followed from now on (a
    target that never followed it starts at its end). `at` is when the identities
    entered the target's scope (default now): the lag of what the pass applies counts
    from it."""
    seq = conn.execute(select(directories.c.journal_seq).where(
        directories.c.id == directory_id)).scalar_one()
    bulk: dict[str, Any] = {"kind": kind, "type": "User", "after": "", "seq": seq,
                            "at": at or now()}
    if reason is not None:
        bulk["reason"] = reason
    conn.execute(update(targets).where(T.id == target_id).values(
        bulk=bulk, cursor=case((T.cursor < 0, seq), else_=T.cursor), updated=now()))
    return bulk


def save(conn: Connection, target_id: str, bulk: dict[str, Any] | None) -> None:
    """Record how far the pass went (None: it is over)."""
    conn.execute(update(targets).where(T.id == target_id).values(
        bulk=null() if bulk is None else bulk, updated=now()))


def waiting(conn: Connection, target_id: str, directory_id: str, cursor: int) -> bool:
    """Whether the target has work that goes before its next chunk of bulk work: journal
    entries past `cursor`, retries that are due, or approved deprovisionings."""
    ts = now()
    return bool(conn.execute(select(or_(
        exists().where(directories.c.id == directory_id,
                       directories.c.journal_seq > cursor),
        exists().where(retries.c.target_id == target_id, retries.c.retry_at <= ts),
        exists().where(deprovision_holds.c.target_id == target_id,
                       deprovision_holds.c.state == "approved"),
    ))).scalar())


def next_ids(conn: Connection, directory_id: str, rtype: str, after: str,
             limit: int) -> list[tuple[str, str]]:
    """(id, created) of the next `limit` resources of a type after `after`, in id
    order."""
    return [(r.id, r.created) for r in conn.execute(
        select(resources.c.id, resources.c.created).where(
            resources.c.directory_id == directory_id, resources.c.type == rtype,
            resources.c.id > after)
        .order_by(resources.c.id).limit(limit))]


def gone(conn: Connection, target_id: str) -> list[tuple[str, str]]:
    """(type, id) of the target's links whose resource left the directory: provisioned
    ones, and those a stopped run was about to send something for (sync/intents.py)."""
    return [(t, r) for t, r in conn.execute(
        select(links.c.resource_type, links.c.resource_id)
        .outerjoin(resources, resources.c.id == links.c.resource_id)
        .where(links.c.target_id == target_id,
               or_(links.c.state == "provisioned", links.c.intent.is_not(None)),
               resources.c.id.is_(None))).all()]
