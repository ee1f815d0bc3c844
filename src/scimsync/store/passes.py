"""Bulk passes over a directory (an initial load, a resync): starting one.

A pass walks every resource in chunks, between the target's journal changes; where it
is lives in `targets.bulk` ({"kind", "type", "after", "seq", "at"}, and why it was
started), while the journal cursor moves on (docs/architecture.md: Lanes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, case, select, update

from scimsync.protocol.timefmt import now
from scimsync.store.tables import directories, targets

T = targets.c


def begin(conn: Connection, target_id: str, directory_id: str, kind: str,
          reason: str | None = None) -> dict[str, Any]:
    """Start a pass from the first resource; the journal is followed from now on (a
    target that never followed it starts at its end)."""
    seq = conn.execute(select(directories.c.journal_seq).where(
        directories.c.id == directory_id)).scalar_one()
    bulk: dict[str, Any] = {"kind": kind, "type": "User", "after": "", "seq": seq,
                            "at": now()}
    if reason is not None:
        bulk["reason"] = reason
    conn.execute(update(targets).where(T.id == target_id).values(
        bulk=bulk, cursor=case((T.cursor < 0, seq), else_=T.cursor), updated=now()))
    return bulk
