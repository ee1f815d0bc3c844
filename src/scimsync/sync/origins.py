"""When the change that a piece of work applies was made, for work that comes from
neither the journal nor a bulk pass: dead letters retried, and `scimsync sync --user`.

A delivery's lag counts from the change it applies (docs/provisioning.md: Lag), so
work made up by hand must carry that change's time and lifecycle; without them it
would be timed from the moment it is applied, and show a lag of 0.
"""

from __future__ import annotations

from sqlalchemy import Engine

from scimsync.errors import NotFound
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.protocol.timefmt import parse_time
from scimsync.store import deliveries, journal
from scimsync.store.resources import Loads, Store
from scimsync.store.targets import FULL_SYNC, Targets
from scimsync.sync.work import Work, coalesce

# Journal entries of one resource read to time a sync by hand: past these, the
# oldest pending one is still among them (entries are read oldest first).
PENDING = 1000


def retried(engine: Engine, target_id: str, pairs: list[tuple[str, str]]) -> list[Work]:
    """Work for dead letters retried by hand, timed from the change that failed (and
    reported in its phase), not from the retry."""
    with engine.connect() as conn:
        found = deliveries.failed_origins(conn, target_id, [r for _, r in pairs])
    out = []
    for kind, rid in pairs:
        o = found.get(rid)
        out.append(Work(kind, rid) if o is None else
                   Work(kind, rid, o.seq, o.changed_at, o.lifecycle))
    return out


def by_hand(engine: Engine, target_id: str, kind: str, rid: str) -> Work:
    """Work for one resource synced by hand: timed from its changes the target has not
    applied yet; else, while a pass is under way, from the pass; else it repairs
    what the target should have held since the resource last changed (remediation)."""
    row = Targets(engine).runtime(target_id)[0]
    if row.cursor != FULL_SYNC:
        with engine.connect() as conn:
            entries = journal.read(conn, row.directory_id, row.cursor, PENDING, rid)
        pending = [w for w in coalesce(entries) if w.resource_id == rid]
        if pending:
            return pending[0]
    try:
        rec = Store(engine, group_commit=False).get(row.directory_id, RESOURCE_TYPES[kind], rid,
                                Loads(members=False, groups=False))
    except NotFound:
        return Work(kind, rid)  # gone, and already applied: nothing to time
    if row.bulk:
        b = row.bulk
        return Work(kind, rid, b["seq"], max(b["at"], rec.created, key=parse_time), b["kind"])
    return Work(kind, rid, 0, rec.last_modified, "remediation")
