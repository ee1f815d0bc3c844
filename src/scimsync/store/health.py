"""Each target's health as monitoring reads it: state, failures, error, last success."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from scimsync.store import holds
from scimsync.store.tables import deliveries, targets

T = targets.c
DL = deliveries.c


@dataclass(frozen=True)
class TargetHealth:
    """What an alert needs to know of one target, without its name or credentials."""

    id: str
    directory_id: str
    # active, paused, quarantined (scimsync.store.targets.STATUSES), or held: running,
    # with deprovisionings waiting for a person
    status: str
    failures: int  # failed runs in a row
    has_error: bool  # the last run left an error (a failure, or a hold)
    retry_at: str | None  # while backing off: when the worker tries again
    last_applied: str | None  # when a change last went through to the application


def last_applied(conn: Connection, target_id: str) -> str | None:
    """When a change last went through to the target's application, if ever."""
    # Newest first along ix_deliveries_target: stops at the first success.
    found = conn.execute(select(DL.applied_at).where(DL.target_id == target_id,
                                                     DL.outcome == "ok")
                         .order_by(DL.id.desc()).limit(1)).scalar()
    return None if found is None else str(found)


def target_health(engine: Engine) -> list[TargetHealth]:
    """Every target's health, read from the database (every process sees the same)."""
    with engine.connect() as conn:
        rows = conn.execute(select(T.id, T.directory_id, T.status, T.failures,
                                   T.last_error, T.retry_at).order_by(T.id)).all()
        held = holds.held_counts(conn)
        return [TargetHealth(r.id, r.directory_id, holds.shown_status(r.status,
                                                                       held.get(r.id, 0)),
                             int(r.failures),
                             r.last_error is not None, r.retry_at, last_applied(conn, r.id))
                for r in rows]
