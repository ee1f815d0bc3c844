"""Deliveries: the evidence of every operation a run applied or failed (the deliveries
table), read back to time work that does not come from the journal or a pass.

A delivery carries when the change it applied was made (`changed_at`) and why
(`lifecycle`): a retry of it is timed from the same change.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from scimsync.store.tables import deliveries

D = deliveries.c
CHUNK = 500  # ids per IN list


@dataclass(frozen=True)
class Origin:
    """The change an operation applied: its journal position, time and lifecycle."""

    seq: int
    changed_at: str
    lifecycle: str | None


def failed_origins(conn: Connection, target_id: str, ids: list[str]) -> dict[str, Origin]:
    """For each of these resources, the change its latest dead delivery was about."""
    out: dict[str, Origin] = {}
    for i in range(0, len(ids), CHUNK):
        rows = conn.execute(
            select(D.resource_id, D.seq, D.changed_at, D.lifecycle)
            .where(D.target_id == target_id, D.outcome == "dead",
                   D.resource_id.in_(ids[i:i + CHUNK]))
            .order_by(D.id))
        for r in rows:  # the latest one wins
            out[r.resource_id] = Origin(r.seq, r.changed_at, r.lifecycle)
    return out
