"""Resources whose operation failed while their target answered others (the retries table).

The journal cursor moves on past them, so that one bad operation never holds the
changes behind it; each is tried again after a growing delay, and becomes a dead
letter after `POISON_AFTER` attempts (docs/provisioning.md: Poison operations).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update

from scimsync.protocol.timefmt import format_time, now
from scimsync.store.tables import retries

R = retries.c
POISON_AFTER = 4  # attempts, the first included
MAX_DELAY = 300.0


@dataclass
class Retry:
    resource_type: str
    resource_id: str
    attempts: int
    seq: int
    changed_at: str | None
    lifecycle: str | None


def due(conn: Connection, target_id: str, limit: int) -> list[Retry]:
    """Retries whose time has come, oldest change first."""
    rows = conn.execute(select(retries).where(R.target_id == target_id, R.retry_at <= now())
                        .order_by(R.changed_at).limit(limit)).all()
    return [Retry(r.resource_type, r.resource_id, r.attempts, r.seq, r.changed_at, r.lifecycle)
            for r in rows]


def attempts(conn: Connection, target_id: str, resource_ids: list[str]) -> dict[str, Any]:
    """The retry rows of these resources, by resource id."""
    if not resource_ids:
        return {}
    rows = conn.execute(select(retries).where(R.target_id == target_id,
                                              R.resource_id.in_(resource_ids))).all()
    return {r.resource_id: r for r in rows}


def delay(attempt: int) -> float:
    """Seconds before attempt number `attempt + 1`: 2, 4, 8, ... up to five minutes."""
    return min(MAX_DELAY, 2.0 ** min(attempt, 16))


def schedule(conn: Connection, target_id: str, resource_type: str, resource_id: str,
             attempt: int, seq: int, changed_at: str | None, lifecycle: str | None,
             error: str) -> None:
    """Record that `resource_id` failed for the `attempt`-th time and when to try again."""
    at = format_time(datetime.now(UTC) + timedelta(seconds=delay(attempt)))
    values = {"resource_type": resource_type, "attempts": attempt, "retry_at": at,
              "seq": seq, "lifecycle": lifecycle, "last_error": error[:2000]}
    done = conn.execute(update(retries).where(R.target_id == target_id,
                                              R.resource_id == resource_id)
                        .values(**values)).rowcount
    if not done:
        conn.execute(retries.insert().values(target_id=target_id, resource_id=resource_id,
                                             changed_at=changed_at, **values))


def clear(conn: Connection, target_id: str, resource_ids: list[str]) -> None:
    """Forget the retries of resources that were applied (or dead-lettered)."""
    for i in range(0, len(resource_ids), 500):
        conn.execute(delete(retries).where(R.target_id == target_id,
                                           R.resource_id.in_(resource_ids[i:i + 500])))


def pending(conn: Connection, target_id: str) -> int:
    """How many resources of the target wait for a retry."""
    return len(conn.execute(select(R.resource_id).where(R.target_id == target_id)).all())
